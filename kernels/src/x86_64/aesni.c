/* aesni.c - AES-128 with AES-NI on 128-bit registers (compiled with -maes
 * -msse4.1 only; dispatch runs it where cpuid reports AES-NI): the key
 * expansion every hand-written variant uses, the batched ECB kernel with
 * eight blocks in flight, and the DCF walk of dcf_walk.h on one instance per
 * register. AESENC has a latency of several cycles and a throughput of one
 * or two per cycle, so eight independent blocks per round keep the unit busy.
 */
#include <immintrin.h>
#include <string.h>

#include "kern_int.h"
#include "aes_x86.h"

void kern__aes128_expand_aesni(kern_aes_ks_t *ks) { aes_x86_expand(ks->key, ks->rk); }

static inline __m128i enc1(const __m128i *rk, __m128i b) {
  b = _mm_xor_si128(b, rk[0]);
#pragma GCC unroll 16
  for (int r = 1; r < 10; r++)
    b = _mm_aesenc_si128(b, rk[r]);
  return _mm_aesenclast_si128(b, rk[10]);
}

int kern__aes_ecb_aesni(const kern_aes_ks_t *ks, const uint8_t *in, uint8_t *out,
                        size_t nblocks) {
  __m128i rk[11];
#pragma GCC unroll 16
  for (int i = 0; i < 11; i++)
    rk[i] = _mm_loadu_si128((const __m128i *)ks->rk[i]);
  size_t i = 0;
  for (; i + 8 <= nblocks; i += 8) {
    __m128i b[8];
#pragma GCC unroll 16
    for (int j = 0; j < 8; j++)
      b[j] = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(in + 16 * (i + j))),
                           rk[0]);
#pragma GCC unroll 16
    for (int r = 1; r < 10; r++)
#pragma GCC unroll 16
      for (int j = 0; j < 8; j++)
        b[j] = _mm_aesenc_si128(b[j], rk[r]);
#pragma GCC unroll 16
    for (int j = 0; j < 8; j++)
      _mm_storeu_si128((__m128i *)(out + 16 * (i + j)),
                       _mm_aesenclast_si128(b[j], rk[10]));
  }
  for (; i < nblocks; i++)
    _mm_storeu_si128((__m128i *)(out + 16 * i),
                     enc1(rk, _mm_loadu_si128((const __m128i *)(in + 16 * i))));
  return 0;
}

/* ---- The DCF walk on one instance per register. ---- */

typedef uint64_t vq __attribute__((vector_size(16)));
#define DCF_VB 16
/* 16 XMM registers: 4 instances when evaluating (8 blocks in flight at
 * w <= 2), 2 when generating (12 blocks at w = 1); more spill. */
#define DCF_UE 4
#define DCF_UG 2
#define DCF_NAME(s) s##_aesni

#define AES_X86_BCAST(p) ((vq)_mm_loadu_si128((const __m128i *)(p)))
#define AES_X86_ENC(b, k) ((vq)_mm_aesenc_si128((__m128i)(b), (__m128i)(k)))
#define AES_X86_ENCLAST(b, k) ((vq)_mm_aesenclast_si128((__m128i)(b), (__m128i)(k)))
#include "aes_x86.h"

static inline vq dcf_ld16(const uint8_t *p, size_t stride, unsigned n) {
  (void)stride;
  (void)n;
  return (vq)_mm_loadu_si128((const __m128i *)p);
}

static inline vq dcf_ld8(const uint8_t *p, size_t stride, unsigned n) {
  (void)stride;
  (void)n;
  return (vq)_mm_loadl_epi64((const __m128i *)p);
}

static inline void dcf_st16(uint8_t *p, size_t stride, vq v, unsigned n) {
  (void)stride;
  if (n > 0)
    _mm_storeu_si128((__m128i *)p, (__m128i)v);
}

static inline void dcf_st8(uint8_t *p, size_t stride, vq v, unsigned n) {
  (void)stride;
  if (n > 0)
    _mm_storel_epi64((__m128i *)p, (__m128i)v);
}

#include "../dcf_walk.h"

const kern__aes_impl_t kern__aes_aesni = {KERN_AES_AESNI, kern__aes_ecb_aesni,
                                          dcf_eval_aesni, dcf_gen_aesni};
