/* prg.c - the pseudorandom generator of the kernels: the AES-128-CTR keystream
 * through OpenSSL's EVP interface (kern_prg_*).
 *
 * Every correlated value in Tandem is expanded from a short seed: the dealer
 * sends parties seeds instead of masks and triples, and two parties holding
 * the same seed must draw exactly the same bytes on any CPU. The stream is the
 * plain CTR keystream of `openssl enc -aes-128-ctr` (the seed is the key, and
 * optionally the initial counter block), so it can be checked against the
 * OpenSSL command line and the NIST SP 800-38A vectors. The keystream is made
 * by encrypting zeros read from a constant block of a fixed size, which keeps
 * every EVP length well inside an int, allocates nothing per call, and lets
 * OpenSSL's AES-NI path run on long runs of blocks. OpenSSL keeps the position
 * inside a partial block between calls, so the stream does not depend on how
 * a caller splits its requests. There is one variant: OpenSSL already picks
 * AES-NI (or its vector-permute fallback) at run time, and every one of its
 * implementations gives the same keystream.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "kern.h"

/* The zero plaintext, encrypted in place of a memset output. 16 KiB: large
 * enough that the per-call cost of EVP_EncryptUpdate is a few percent of the
 * work, small enough to stay in L1/L2 next to the output. */
#define ZERO_CHUNK 16384u
static const uint8_t zeros[ZERO_CHUNK];

/* Bits are expanded from this many keystream bytes at a time (on the stack). */
#define BITS_CHUNK 512u

int kern_prg_init(kern_prg_t *prg, const uint8_t *seed, size_t len) {
  static const uint8_t zero_iv[16];
  if (prg == NULL)
    return TANDEM_EINVAL;
  prg->ctx = NULL;
  if (seed == NULL ||
      (len != KERN_PRG_SEED_BYTES && len != KERN_PRG_SEED_IV_BYTES))
    return TANDEM_EINVAL;
  /* The key and the counter block are passed straight from the caller's seed,
   * so no copy of the key exists here to wipe; the context's key schedule is
   * wiped by EVP_CIPHER_CTX_free in kern_prg_close (or below on failure). */
  const uint8_t *iv = len == KERN_PRG_SEED_IV_BYTES ? seed + 16 : zero_iv;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL)
    return TANDEM_ECRYPTO;
  if (EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, seed, iv) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return TANDEM_ECRYPTO;
  }
  prg->ctx = ctx;
  return 0;
}

void kern_prg_close(kern_prg_t *prg) {
  if (prg == NULL)
    return;
  /* EVP_CIPHER_CTX_free cleanses the cipher data (the round keys) before it
   * releases it. Clearing the pointer makes a second close harmless. */
  EVP_CIPHER_CTX_free(prg->ctx);
  prg->ctx = NULL;
}

int kern_prg_bytes(kern_prg_t *prg, uint8_t *out, size_t n) {
  if (prg == NULL || prg->ctx == NULL || (out == NULL && n > 0))
    return TANDEM_EINVAL;
  while (n > 0) {
    size_t len = n < ZERO_CHUNK ? n : ZERO_CHUNK;
    int outl = 0;
    if (EVP_EncryptUpdate(prg->ctx, out, &outl, zeros, (int)len) != 1 ||
        (size_t)outl != len)
      return TANDEM_ECRYPTO;
    out += len;
    n -= len;
  }
  return 0;
}

/* Whether the host stores integers big-endian. The compiler's predefined
 * macros answer at build time where they exist; otherwise a run-time probe
 * does, and the optimiser folds it to a constant anyway. */
static int host_big_endian(void) {
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__)
  return __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__;
#else
  const uint16_t probe = 1;
  uint8_t first;
  memcpy(&first, &probe, 1);
  return first == 0;
#endif
}

int kern_prg_u64(kern_prg_t *prg, uint64_t *out, size_t n) {
  if (n > SIZE_MAX / 8)
    return TANDEM_EINVAL; /* no such buffer can exist */
  int rc = kern_prg_bytes(prg, (uint8_t *)out, 8 * n);
  if (rc != 0)
    return rc;
  /* The stream is defined as little-endian words, so that parties on hosts
   * of either byte order agree; little-endian hosts need no work. */
  if (host_big_endian()) {
    for (size_t i = 0; i < n; i++) {
      uint8_t b[8];
      memcpy(b, &out[i], 8);
      uint64_t v = 0;
      for (int j = 7; j >= 0; j--)
        v = (v << 8) | b[j];
      out[i] = v;
    }
  }
  return 0;
}

int kern_prg_bits(kern_prg_t *prg, uint8_t *out, size_t n) {
  if (prg == NULL || prg->ctx == NULL || (out == NULL && n > 0))
    return TANDEM_EINVAL;
  uint8_t buf[BITS_CHUNK];
  int rc = 0;
  while (n > 0) {
    /* Whole bytes of keystream for up to 8 * BITS_CHUNK bits; the last call
     * draws ceil(n / 8) bytes, so a partial byte's unused bits are consumed,
     * exactly as the contract says. */
    size_t nbits = n < 8 * (size_t)BITS_CHUNK ? n : 8 * (size_t)BITS_CHUNK;
    size_t nbytes = (nbits + 7) / 8;
    rc = kern_prg_bytes(prg, buf, nbytes);
    if (rc != 0)
      break;
    for (size_t i = 0; i < nbits; i++)
      out[i] = (uint8_t)((buf[i / 8] >> (i % 8)) & 1u);
    out += nbits;
    n -= nbits;
  }
  /* The keystream bytes are as secret as the bits drawn from them. */
  OPENSSL_cleanse(buf, sizeof buf);
  return rc;
}
