/* aes.c - the batched AES-128 kernel's public entry points and its reference
 * implementation, OpenSSL's EVP AES-128-ECB. The hand-written AES-NI and VAES
 * variants (x86_64/aesni.c, x86_64/avx2/aes_vaes256.c,
 * x86_64/avx512/aes_vaes512.c; x86_64/avx2/aes_ni256.c, whose ECB is
 * aesni.c's) are tested bit for bit against this one; the
 * dispatch table (dispatch.c) picks one for kern_aes128_ecb and the DCF.
 * There is deliberately no table-lookup C AES here: its S-box lookups would
 * index memory with key- and data-dependent bytes, which kernels never do.
 */
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>

#include "kern_int.h"

void kern_aes128_init(kern_aes_ks_t *ks, const uint8_t *key) {
  memcpy(ks->key, key, 16);
  memset(ks->rk, 0, sizeof ks->rk);
  /* The round keys serve the AES-NI and VAES code only, which never runs
   * where the CPU lacks AES-NI; OpenSSL expands ks->key itself. */
  if (kern__cpu_has_aesni())
    kern__aes128_expand_aesni(ks);
}

/* The reference: one EVP context per call, so concurrent calls share no
 * mutable OpenSSL state. */
int kern__aes_ecb_openssl(const kern_aes_ks_t *ks, const uint8_t *in,
                          uint8_t *out, size_t nblocks) {
  if (nblocks == 0)
    return 0;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL)
    return TANDEM_ECRYPTO;
  int rc = 0;
  if (EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, ks->key, NULL) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
    rc = TANDEM_ECRYPTO;
    goto done;
  }
  while (nblocks > 0) {
    /* EVP takes an int length. */
    size_t n = nblocks > ((size_t)INT_MAX / 16) ? ((size_t)INT_MAX / 16) : nblocks;
    int outl = 0;
    if (EVP_EncryptUpdate(ctx, out, &outl, in, (int)(n * 16)) != 1 ||
        outl != (int)(n * 16)) {
      rc = TANDEM_ECRYPTO;
      goto done;
    }
    in += n * 16;
    out += n * 16;
    nblocks -= n;
  }
done:
  EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
  return rc;
}

int kern_aes128_ecb_impl(kern_aes_impl_t impl, const kern_aes_ks_t *ks,
                         const uint8_t *in, uint8_t *out, size_t nblocks) {
  if ((unsigned)impl >= KERN_AES_NIMPL)
    return TANDEM_EINVAL;
  if (nblocks > 0 && (ks == NULL || in == NULL || out == NULL))
    return TANDEM_EINVAL;
  if (!kern_aes_impl_supported(impl))
    return TANDEM_ENOTSUP;
  return kern__aes_impl(impl)->ecb(ks, in, out, nblocks);
}

int kern_aes128_ecb(const kern_aes_ks_t *ks, const uint8_t *in, uint8_t *out,
                    size_t nblocks) {
  if (nblocks > 0 && (ks == NULL || in == NULL || out == NULL))
    return TANDEM_EINVAL;
  return kern__active_aes()->ecb(ks, in, out, nblocks);
}
