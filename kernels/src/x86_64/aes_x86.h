/* aes_x86.h - the AES-128 key schedule and rounds shared by the hand-written
 * x86_64 variants: x86_64/aesni.c (one block per 128-bit register),
 * avx2/aes_vaes256.c (two per YMM) and avx512/aes_vaes512.c (four per ZMM).
 * Each of them compiles it under its own ISA flags (kernels never share
 * code across ISA flags: a function built with -mavx512f may not run where
 * only AES-NI is). Static inline only; private to kernels/src/x86_64.
 *
 * aes_x86_expand(key, rk): the eleven round keys of the FIPS-197 schedule
 * with AESKEYGENASSIST (the round constant must be an immediate, hence the
 * unrolled steps); used by kern__aes128_expand_aesni, the one expansion
 * every variant's round keys come from.
 *
 * The DCF walk's AES hooks (dcf_walk.h) are defined here for every width:
 * the includer first defines vq (its vector type), AES_X86_BCAST(p): the
 * 16-byte round key at p in every 128-bit lane of a vq, and
 * AES_X86_ENC(b, k) / AES_X86_ENCLAST(b, k): one round on every lane.
 */
#ifndef TANDEM_AES_X86_H
#define TANDEM_AES_X86_H

#include <immintrin.h>
#include <stdint.h>

static inline __m128i aes_x86_expand_step(__m128i k, __m128i g) {
  g = _mm_shuffle_epi32(g, 0xff);
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  return _mm_xor_si128(k, g);
}

static inline void aes_x86_expand(const uint8_t key[16], uint8_t rk[11][16]) {
  __m128i k[11];
  k[0] = _mm_loadu_si128((const __m128i *)key);
#define AES_X86_STEP(i, rcon)                                                \
  k[i] = aes_x86_expand_step(k[i - 1], _mm_aeskeygenassist_si128(k[i - 1], rcon))
  AES_X86_STEP(1, 0x01);
  AES_X86_STEP(2, 0x02);
  AES_X86_STEP(3, 0x04);
  AES_X86_STEP(4, 0x08);
  AES_X86_STEP(5, 0x10);
  AES_X86_STEP(6, 0x20);
  AES_X86_STEP(7, 0x40);
  AES_X86_STEP(8, 0x80);
  AES_X86_STEP(9, 0x1b);
  AES_X86_STEP(10, 0x36);
#undef AES_X86_STEP
  for (int i = 0; i < 11; i++)
    _mm_storeu_si128((__m128i *)rk[i], k[i]);
}

#endif /* TANDEM_AES_X86_H */

/* The DCF hooks, once per includer (each has its own vq). */
#if defined(AES_X86_BCAST) && !defined(AES_X86_DCF_HOOKS)
#define AES_X86_DCF_HOOKS

typedef struct {
  vq k[11];
} dcf_aes_t;

static int dcf_aes_open(dcf_aes_t *a, const kern_aes_ks_t *ks) {
  for (int i = 0; i < 11; i++)
    a->k[i] = AES_X86_BCAST(ks->rk[i]);
  return 0;
}

static void dcf_aes_close(dcf_aes_t *a) { (void)a; }

/* The n blocks of b through the ten rounds, round by round across all of
 * them, so n independent AES chains are in flight. */
static KERN_AI int dcf_aes_run(const dcf_aes_t *a, vq *b, unsigned n) {
KERN_UNROLL(64)
  for (unsigned j = 0; j < n; j++)
    b[j] ^= a->k[0];
KERN_UNROLL(16)
  for (int r = 1; r < 10; r++)
KERN_UNROLL(64)
    for (unsigned j = 0; j < n; j++)
      b[j] = AES_X86_ENC(b[j], a->k[r]);
KERN_UNROLL(64)
  for (unsigned j = 0; j < n; j++)
    b[j] = AES_X86_ENCLAST(b[j], a->k[10]);
  return 0;
}
#endif
