/* dcf.c - batched distributed comparison function (DCF) of Boyle, Chandran,
 * Gilboa, Gupta, Ishai, Kelkar and Pu ("Function Secret Sharing for Mixed-Mode
 * and Fixed-Point Secure Computation", Eurocrypt 2021), the kernel behind the
 * ReLU, truncation and MaxPool gates of mpc/: the dealer runs kern_dcf_gen on
 * the masks it knows, each party runs kern_dcf_eval on the opened masked value.
 * This file holds the public entry points (checks, root seeds, threads) and
 * the reference walk; the walk itself is dcf_walk.h, compiled once per AES
 * implementation (OpenSSL here; AES-NI, VAES256, VAES512 and AES-NI on
 * 256-bit lanes under x86_64/).
 *
 * The tree. A GGM tree walked from the most significant bit of x, as in the
 * DPF of Boyle, Gilboa and Ishai (2016), where every level also carries a
 * value correction V_CW so that leaving alpha's path to the left of a 1-bit
 * adds beta to the two shares. The PRG is fixed-key AES-128 in tweaked
 * Matyas-Meyer-Oseas form G_j(s) = AES_K(s ^ j) ^ (s ^ j), the tweak j
 * (0 .. 9) xored into the low byte of the seed; one seed expands to
 *   block 0: left child (bit 0: its control bit t^L, bit 1 dropped, the rest
 *            the child's seed), block 1: right child likewise (t^R),
 *   blocks 2 .. 2+w-1: 2w ring values, the left child's w words first, then
 *            the right child's (word q is half q&1 of block 2 + q/2).
 * The last level (bit 0 of x) has no children: its two leaves take their w
 * values each straight from the value blocks, and each leaf has its own
 * correction, CW_L or CW_R. That is the final correction of the paper
 * (Convert(s) of the leaf seed plus CW^(n+1)) merged into the last level:
 * one AES level and one 16-byte seed correction fewer per key, for one more
 * w-word correction. It is early termination by one level: a leaf block of
 * 128 bits holds two 64-bit leaves.
 *
 * Key of one party for one instance (kern_dcf_key_bytes), little-endian:
 *   offset 0:   root seed, 16 bytes, its two low bits 0
 *   offset 16 + l * (16 + 8w), level l = 0 .. nbits-2 (bit nbits-1-l of x):
 *       s_CW (16 bytes) whose bit 0 is t_CW^L and bit 1 t_CW^R (seeds keep
 *       their two low bits clear, so the control-bit corrections cost no
 *       byte), then V_CW (w ring elements)
 *   offset 16 + (nbits-1) * (16 + 8w): CW_L (w elements), CW_R (w elements)
 * Size: 16 + (nbits - 1) * (16 + 8w) + 16w bytes: 1544 for nbits = 64,
 * w = 1 (the old layout: 1624); 992 for nbits = 41, w = 1; 1328 for
 * nbits = 41, w = 2; 48 for nbits = 1, w = 2.
 *
 * Keys of a batch are stored by quads (kern.h): the same fields, each
 * (a 16-byte seed, or a pair of value words) written for the four
 * instances of a quad one after another, level after level. A vector of
 * the walk holds up to four instances of one quad, so it reads a level's
 * s_CW with one load and each pair of V_CW words with one more, where the
 * one-key-after-another layout took a load and an insert per instance and
 * field (and 16 to 32 strided streams per group, which the hardware
 * prefetchers do not follow). The walk keeps the value words by pairs
 * too, as the value blocks hold them: a 128-bit lane adds two words at a
 * time. The size is unchanged and the bytes of a quad are a permutation
 * of its four one-instance keys.
 *
 * Deeper early termination, weighed and left out: stopping nu levels early
 * with 2^nu leaves of w words each costs 16 + (n - nu)(16 + 8w) + 2^nu * 8w
 * bytes. From nu = 1 (this layout) to nu = 2 the key changes by
 * 32w - 16w - (16 + 8w) = 8w - 16 bytes: 8 bytes fewer at w = 1 (0.8% of
 * a 41-bit key), none at w = 2, more from w = 3 on; nu = 3 adds 24w - 16
 * more. The arithmetic payload is what stops it: a DPF leaf packs 128/64 = 2
 * group elements per block and its levels carry no value correction, but a
 * DCF level's V_CW is as wide as a leaf, so each level removed trades
 * 16 + 8w bytes for doubling a leaf table of 2^nu * 8w bytes.
 *
 * Security. Every seed has 126 uniformly random bits: roots are PRG output
 * with the two low bits cleared, children are an MMO output with bits 0 and 1
 * removed (bit 0 becomes the control bit). The 2 + w <= 10 inputs s ^ j of
 * one seed are distinct, and the fixed public AES key (the first 128 bits of
 * pi's fraction) makes G a PRG under the usual model of fixed-key AES as a
 * random permutation (MMO is then correlation robust; Guo, Katz, Wang and Yu,
 * IEEE S&P 2020): each key alone is a sequence of such outputs xored or
 * subtracted with values of the other party's seed, hence pseudorandom, with
 * advantage about q / 2^126 for q AES calls. The t_CW bits riding in s_CW's
 * low bits are the paper's t_CW, sent in the clear there too. Alpha's bits
 * and the control bits are secret, so all selections use masks, never a
 * branch or an index; x is public to its evaluator but is used the same way.
 *
 * Cost per instance, h = ceil(w/2):
 *   eval: (nbits - 1)(1 + h) + h AES blocks (only x's child is expanded):
 *         w = 1: 2 nbits - 1 (81 at nbits = 41, 125 at 63); w = 3: 122 at 41.
 *   gen:  2 ((nbits - 1)(2 + w) + w): both children of both parties:
 *         w = 1: 242 at nbits = 41, 374 at 63; w = 3: 406 at 41.
 * Measured with tests/kernels/bench_dcf.c on one core of a 2-vCPU AMD EPYC
 * (Zen 5, family 26) shared with other jobs, process CPU time per instance,
 * 25,600 instances (raw ECB: OpenSSL 0.68, VAES512 2.1 G blocks/s):
 *   VAES512, nbits 41, w 1: eval 64 ns (1.3 G AES blocks/s), gen 190-207 ns
 *   VAES512, nbits 63, w 1: eval 102 ns, gen 277 ns
 *   AES-NI,  nbits 41, w 1: eval 316 ns; OpenSSL walk: 316 ns
 * (the old EVP-chunked code: eval 460 ns and gen 1.8 us at nbits 64). Gen
 * costs three times eval's AES blocks (both children of both parties), so
 * at equal threads it stays 3x slower per instance than one party's eval.
 * With keys by quads and words by pairs (2026-12-07, `bench_dcf mlp`, the
 * MLP's ReLU DCFs: 12,800 instances of width 3, best of 9, three runs
 * alternating with the one-key-after-another build on a loaded machine):
 *   VAES512, nbits 25: eval 62.6-65.9 ns (was 71.6-75.8), 1.8-1.9x the
 *     raw ECB time of its 74 blocks; gen 171-178 ns (was 212-218), 1.5-1.6x
 *   VAES512, nbits 29: eval 74-80 ns (was 83-88); gen 205-211 (237-242)
 *   AES-NI,  nbits 25: eval 226-233 ns (was 246-270), 2.1-2.2x raw
 * A software pipeline of two half-groups a level apart (one half's AES
 * issued beside the other's folding) was tried and measured slower (eval
 * 77-84 ns at nbits 25): the extra live state spilled. What is left above
 * raw AES is the folding's arithmetic (about 45 vector operations per
 * vector and level against 30 AES rounds) and the spills of four vectors'
 * state in 32 registers.
 *
 * Threads: the instances are cut into slices of DCF_SLICE, spread over
 * kern_threads() OpenMP threads. Generation draws every root seed from the
 * caller's PRG first, serially, so keys depend on nothing but the PRG, alpha
 * and beta; each instance's output depends only on its key and x.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "kern_int.h"

/* Instances per thread task: a multiple of every implementation's group
 * (at most 32 instances) and small enough to balance two threads on the
 * gates' 10^4-instance batches. */
#define DCF_SLICE 512u

/* The fixed public AES key: the first 128 bits of the fractional part of pi,
 * a value nobody chose. */
static const uint8_t dcf_aes_key[16] = {0x24, 0x3f, 0x6a, 0x88, 0x85, 0xa3,
                                        0x08, 0xd3, 0x13, 0x19, 0x8a, 0x2e,
                                        0x03, 0x70, 0x73, 0x44};

size_t kern_dcf_key_bytes(unsigned nbits, unsigned width) {
  if (nbits < 1 || nbits > 64 || width < 1 || width > KERN_DCF_MAX_WIDTH)
    return 0;
  return 16u + (size_t)(nbits - 1) * (16u + 8u * width) + 16u * width;
}

/* ---- The reference walk: 128-bit vectors, OpenSSL EVP as the AES. ---- */

typedef uint64_t vq __attribute__((vector_size(16)));
#define DCF_VB 16
/* 32 instances per EVP call: its fixed cost is spread over 64 blocks or
 * more. */
#define DCF_UE 32
#define DCF_UG 32
#define DCF_NAME(s) s##_openssl

typedef struct {
  EVP_CIPHER_CTX *ctx;
} dcf_aes_t;

static int dcf_aes_open(dcf_aes_t *a, const kern_aes_ks_t *ks) {
  a->ctx = EVP_CIPHER_CTX_new();
  if (a->ctx == NULL)
    return TANDEM_ECRYPTO;
  if (EVP_EncryptInit_ex(a->ctx, EVP_aes_128_ecb(), NULL, ks->key, NULL) != 1 ||
      EVP_CIPHER_CTX_set_padding(a->ctx, 0) != 1) {
    EVP_CIPHER_CTX_free(a->ctx);
    return TANDEM_ECRYPTO;
  }
  return 0;
}

static void dcf_aes_close(dcf_aes_t *a) { EVP_CIPHER_CTX_free(a->ctx); }

static inline int dcf_aes_run(const dcf_aes_t *a, vq *b, unsigned n) {
  int outl = 0;
  uint8_t *p = (uint8_t *)b;
  if (EVP_EncryptUpdate(a->ctx, p, &outl, p, (int)(n * 16)) != 1 ||
      outl != (int)(n * 16))
    return TANDEM_ECRYPTO;
  return 0;
}

static inline vq dcf_ld16(const uint8_t *p, size_t stride, unsigned n) {
  (void)stride;
  (void)n;
  vq v;
  memcpy(&v, p, 16);
  return v;
}

static inline vq dcf_ld8(const uint8_t *p, size_t stride, unsigned n) {
  (void)stride;
  (void)n;
  vq v = {0, 0};
  memcpy(&v, p, 8);
  return v;
}

static inline void dcf_st16(uint8_t *p, size_t stride, vq v, unsigned n) {
  (void)stride;
  if (n > 0)
    memcpy(p, &v, 16);
}

static inline void dcf_st8(uint8_t *p, size_t stride, vq v, unsigned n) {
  (void)stride;
  if (n > 0)
    memcpy(p, &v, 8);
}

#include "dcf_walk.h"

const kern__aes_impl_t kern__aes_openssl = {
    KERN_AES_OPENSSL, kern__aes_ecb_openssl, dcf_eval_openssl, dcf_gen_openssl};

/* ---- Public entry points. ---- */

static int slice_threads(size_t nslices) {
  int nt = kern_threads();
  return (size_t)nt > nslices ? (int)nslices : nt;
}

int kern_dcf_gen(kern_prg_t *prg, unsigned nbits, unsigned width, size_t count,
                 const uint64_t *alpha, const uint64_t *beta, uint8_t *k0,
                 uint8_t *k1) {
  size_t kb = kern_dcf_key_bytes(nbits, width);
  if (kb == 0 || prg == NULL)
    return TANDEM_EINVAL;
  if (count == 0)
    return 0;
  if (alpha == NULL || beta == NULL || k0 == NULL || k1 == NULL ||
      count > SIZE_MAX / kb)
    return TANDEM_EINVAL;
  if (nbits < 64) {
    /* Or-reduce instead of testing each alpha, so no branch depends on one. */
    uint64_t high = 0;
    for (size_t i = 0; i < count; i++)
      high |= alpha[i] >> nbits;
    if (high != 0)
      return TANDEM_EINVAL;
  }

  /* Root seeds first, serially, in instance order: 16 bytes for party 0
   * then 16 for party 1, two low bits cleared. They land in a compact
   * buffer that the walk copies into the keys with the rest, so every key
   * line is written once, in order. */
  const size_t rbytes = count * 32; /* no overflow: kb >= 32 */
  uint8_t *roots = malloc(rbytes);
  if (roots == NULL)
    return TANDEM_ENOMEM;
  int rc = kern_prg_bytes(prg, roots, rbytes);
  for (size_t i = 0; i < 2 * count && rc == 0; i++)
    roots[16 * i] &= 0xfc;

  if (rc == 0) {
    kern_aes_ks_t ks;
    kern_aes128_init(&ks, dcf_aes_key);
    const kern__aes_impl_t *impl = kern__active_aes();
    const size_t nslices = (count + DCF_SLICE - 1) / DCF_SLICE;
    int err = 0;
#pragma omp parallel for schedule(static) num_threads(slice_threads(nslices))
    for (size_t s = 0; s < nslices; s++) {
      size_t i0 = s * DCF_SLICE;
      size_t n = count - i0 < DCF_SLICE ? count - i0 : DCF_SLICE;
      int r = impl->dcf_gen(&ks, nbits, width, n, roots + 32 * i0, alpha + i0,
                            beta + i0 * width, k0 + i0 * kb, k1 + i0 * kb, kb);
      if (r != 0) {
#pragma omp atomic write
        err = r;
      }
    }
    rc = err;
  }
  OPENSSL_cleanse(roots, rbytes);
  free(roots);
  if (rc != 0) {
    /* Half-written keys are of no use to anyone; do not leave them around. */
    OPENSSL_cleanse(k0, count * kb);
    OPENSSL_cleanse(k1, count * kb);
  }
  return rc;
}

/* kern_dcf_eval and kern_dcf_eval_pts: the keys by slices of `slice`
 * instances (a multiple of the quad, so each slice's keys are a batch),
 * each slice walked at its pts points in turn while its keys are in cache. */
static int eval_slices(int party, unsigned nbits, unsigned width, size_t count,
                       size_t pts, size_t slice, const uint8_t *keys,
                       const uint64_t *x, uint64_t *y) {
  size_t kb = kern_dcf_key_bytes(nbits, width);
  if (kb == 0 || (party != 0 && party != 1))
    return TANDEM_EINVAL;
  if (count == 0 || pts == 0)
    return 0;
  if (keys == NULL || x == NULL || y == NULL || count > SIZE_MAX / kb ||
      pts > SIZE_MAX / count / width / sizeof(uint64_t))
    return TANDEM_EINVAL;

  kern_aes_ks_t ks;
  kern_aes128_init(&ks, dcf_aes_key);
  const kern__aes_impl_t *impl = kern__active_aes();
  const size_t nslices = (count + slice - 1) / slice;
  int err = 0;
  /* x is read bit by bit below nbits only, which takes it mod 2^nbits. */
#pragma omp parallel for schedule(static) num_threads(slice_threads(nslices))
  for (size_t s = 0; s < nslices; s++) {
    size_t i0 = s * slice;
    size_t n = count - i0 < slice ? count - i0 : slice;
    int r = 0;
    for (size_t j = 0; j < pts && r == 0; j++)
      r = impl->dcf_eval(&ks, party, nbits, width, n, keys + i0 * kb, kb,
                         x + j * count + i0, y + (j * count + i0) * width);
    if (r != 0) {
#pragma omp atomic write
      err = r;
    }
  }
  if (err != 0)
    OPENSSL_cleanse(y, count * pts * width * sizeof(uint64_t));
  return err;
}

int kern_dcf_eval(int party, unsigned nbits, unsigned width, size_t count,
                  const uint8_t *keys, const uint64_t *x, uint64_t *y) {
  return eval_slices(party, nbits, width, count, 1, DCF_SLICE, keys, x, y);
}

int kern_dcf_eval_pts(int party, unsigned nbits, unsigned width, size_t count,
                      size_t pts, const uint8_t *keys, const uint64_t *x,
                      uint64_t *y) {
  return eval_slices(party, nbits, width, count, pts, KERN_DCF_PTS_SLICE, keys,
                     x, y);
}
