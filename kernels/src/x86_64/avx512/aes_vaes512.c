/* aes_vaes512.c - AES-128 with VAES on 512-bit registers, four blocks per
 * register (compiled with -mvaes -maes -mavx512f only; dispatch runs it where
 * cpuid reports VAES and AVX-512 and the OS saves ZMM state): the batched ECB
 * kernel (eight registers, 32 blocks in flight, masked tail) and the DCF walk
 * of dcf_walk.h on four instances per register. Round keys come from the
 * AES-NI expansion (x86_64/aes_x86.h), broadcast to the four lanes.
 */
#include <immintrin.h>
#include <string.h>

#include "kern_int.h"

static int ecb_vaes512(const kern_aes_ks_t *ks, const uint8_t *in,
                       uint8_t *out, size_t nblocks) {
  __m512i rk[11];
#pragma GCC unroll 16
  for (int i = 0; i < 11; i++)
    rk[i] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)ks->rk[i]));
  size_t i = 0;
  for (; i + 32 <= nblocks; i += 32) {
    __m512i b[8];
#pragma GCC unroll 16
    for (int j = 0; j < 8; j++)
      b[j] = _mm512_xor_si512(
          _mm512_loadu_si512((const void *)(in + 16 * (i + 4 * j))), rk[0]);
#pragma GCC unroll 16
    for (int r = 1; r < 10; r++)
#pragma GCC unroll 16
      for (int j = 0; j < 8; j++)
        b[j] = _mm512_aesenc_epi128(b[j], rk[r]);
#pragma GCC unroll 16
    for (int j = 0; j < 8; j++)
      _mm512_storeu_si512((void *)(out + 16 * (i + 4 * j)),
                          _mm512_aesenclast_epi128(b[j], rk[10]));
  }
  /* The tail, up to four blocks per register with masked 64-bit moves. */
  for (; i < nblocks; i += 4) {
    size_t r4 = nblocks - i < 4 ? nblocks - i : 4;
    __mmask8 m = (__mmask8)((1u << (2 * r4)) - 1);
    __m512i b = _mm512_xor_si512(_mm512_maskz_loadu_epi64(m, in + 16 * i), rk[0]);
#pragma GCC unroll 16
    for (int r = 1; r < 10; r++)
      b = _mm512_aesenc_epi128(b, rk[r]);
    _mm512_mask_storeu_epi64(out + 16 * i, m, _mm512_aesenclast_epi128(b, rk[10]));
  }
  return 0;
}

/* ---- The DCF walk on four instances per register. ---- */

typedef uint64_t vq __attribute__((vector_size(64)));
#define DCF_VB 64
/* 32 ZMM registers: 4 registers (16 instances, 32 blocks in flight at
 * w <= 2) when evaluating, 2 (8 instances, 48 blocks at w = 1) when
 * generating. Larger groups spill; on the shared test machine gen at w = 1
 * went from about 420 to about 200 ns per instance from 4 to 2 registers. */
#define DCF_UE 4
#define DCF_UG 2
#define DCF_NAME(s) s##_vaes512

#define AES_X86_BCAST(p) ((vq)_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p))))
#define AES_X86_ENC(b, k) ((vq)_mm512_aesenc_epi128((__m512i)(b), (__m512i)(k)))
#define AES_X86_ENCLAST(b, k) ((vq)_mm512_aesenclast_epi128((__m512i)(b), (__m512i)(k)))
#include "../aes_x86.h"

/* Lane j's address: lanes past n repeat lane n - 1. */
static inline const uint8_t *lane(const uint8_t *p, size_t s, unsigned j,
                                  unsigned n) {
  return p + (size_t)(j < n ? j : n - 1) * s;
}

static inline vq dcf_ld16(const uint8_t *p, size_t s, unsigned n) {
  __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p));
  v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)lane(p, s, 1, n)), 1);
  v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)lane(p, s, 2, n)), 2);
  v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)lane(p, s, 3, n)), 3);
  return (vq)v;
}

static inline vq dcf_ld8(const uint8_t *p, size_t s, unsigned n) {
  __m512i v = _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)p));
  v = _mm512_inserti32x4(v, _mm_loadl_epi64((const __m128i *)lane(p, s, 1, n)), 1);
  v = _mm512_inserti32x4(v, _mm_loadl_epi64((const __m128i *)lane(p, s, 2, n)), 2);
  v = _mm512_inserti32x4(v, _mm_loadl_epi64((const __m128i *)lane(p, s, 3, n)), 3);
  return (vq)v;
}

static inline void dcf_st16(uint8_t *p, size_t s, vq v, unsigned n) {
  __m512i w = (__m512i)v;
  if (n > 0)
    _mm_storeu_si128((__m128i *)p, _mm512_castsi512_si128(w));
  if (n > 1)
    _mm_storeu_si128((__m128i *)(p + s), _mm512_extracti32x4_epi32(w, 1));
  if (n > 2)
    _mm_storeu_si128((__m128i *)(p + 2 * s), _mm512_extracti32x4_epi32(w, 2));
  if (n > 3)
    _mm_storeu_si128((__m128i *)(p + 3 * s), _mm512_extracti32x4_epi32(w, 3));
}

static inline void dcf_st8(uint8_t *p, size_t s, vq v, unsigned n) {
  __m512i w = (__m512i)v;
  if (n > 0)
    _mm_storel_epi64((__m128i *)p, _mm512_castsi512_si128(w));
  if (n > 1)
    _mm_storel_epi64((__m128i *)(p + s), _mm512_extracti32x4_epi32(w, 1));
  if (n > 2)
    _mm_storel_epi64((__m128i *)(p + 2 * s), _mm512_extracti32x4_epi32(w, 2));
  if (n > 3)
    _mm_storel_epi64((__m128i *)(p + 3 * s), _mm512_extracti32x4_epi32(w, 3));
}

/* The key fields of a vector's four lanes are contiguous (dcf_walk.h):
 * one masked 512-bit move for the four seeds; four 8-byte words are spread
 * to (or gathered from) the low halves of the lanes with one permute. */
#define DCF_HAVE_KLD 1

static inline vq dcf_kld16(const uint8_t *p, unsigned n) {
  return (vq)_mm512_maskz_loadu_epi64((__mmask8)((1u << (2 * n)) - 1), p);
}

static inline vq dcf_kld8(const uint8_t *p, unsigned n) {
  const __m512i spread = _mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0);
  __m512i v = _mm512_maskz_loadu_epi64((__mmask8)((1u << n) - 1), p);
  return (vq)_mm512_permutexvar_epi64(spread, v);
}

static inline void dcf_kst16(uint8_t *p, vq v, unsigned n) {
  _mm512_mask_storeu_epi64(p, (__mmask8)((1u << (2 * n)) - 1), (__m512i)v);
}

static inline void dcf_kst8(uint8_t *p, vq v, unsigned n) {
  const __m512i gather = _mm512_set_epi64(6, 4, 2, 0, 6, 4, 2, 0);
  _mm512_mask_storeu_epi64(p, (__mmask8)((1u << n) - 1),
                           _mm512_permutexvar_epi64(gather, (__m512i)v));
}

#include "../../dcf_walk.h"

const kern__aes_impl_t kern__aes_vaes512 = {KERN_AES_VAES512, ecb_vaes512,
                                            dcf_eval_vaes512, dcf_gen_vaes512};
