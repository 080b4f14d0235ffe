/* aes_vaes256.c - AES-128 with VAES on 256-bit registers, two blocks per
 * register (compiled with -mvaes -maes -mavx2 only; dispatch runs it where
 * cpuid reports VAES and AVX2 and the OS saves YMM state): the batched ECB
 * kernel (eight registers, sixteen blocks in flight) and the DCF walk of
 * dcf_walk.h on two instances per register. Round keys come from the AES-NI
 * expansion (x86_64/aes_x86.h), broadcast to both lanes.
 */
#include <immintrin.h>
#include <string.h>

#include "kern_int.h"

static int ecb_vaes256(const kern_aes_ks_t *ks, const uint8_t *in,
                       uint8_t *out, size_t nblocks) {
  __m256i rk[11];
#pragma GCC unroll 16
  for (int i = 0; i < 11; i++)
    rk[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)ks->rk[i]));
  size_t i = 0;
  for (; i + 16 <= nblocks; i += 16) {
    __m256i b[8];
#pragma GCC unroll 16
    for (int j = 0; j < 8; j++)
      b[j] = _mm256_xor_si256(
          _mm256_loadu_si256((const __m256i *)(in + 16 * (i + 2 * j))), rk[0]);
#pragma GCC unroll 16
    for (int r = 1; r < 10; r++)
#pragma GCC unroll 16
      for (int j = 0; j < 8; j++)
        b[j] = _mm256_aesenc_epi128(b[j], rk[r]);
#pragma GCC unroll 16
    for (int j = 0; j < 8; j++)
      _mm256_storeu_si256((__m256i *)(out + 16 * (i + 2 * j)),
                          _mm256_aesenclast_epi128(b[j], rk[10]));
  }
  for (; i + 2 <= nblocks; i += 2) {
    __m256i b = _mm256_xor_si256(
        _mm256_loadu_si256((const __m256i *)(in + 16 * i)), rk[0]);
#pragma GCC unroll 16
    for (int r = 1; r < 10; r++)
      b = _mm256_aesenc_epi128(b, rk[r]);
    _mm256_storeu_si256((__m256i *)(out + 16 * i),
                        _mm256_aesenclast_epi128(b, rk[10]));
  }
  if (i < nblocks) {
    __m128i b = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(in + 16 * i)),
                              _mm256_castsi256_si128(rk[0]));
#pragma GCC unroll 16
    for (int r = 1; r < 10; r++)
      b = _mm_aesenc_si128(b, _mm256_castsi256_si128(rk[r]));
    _mm_storeu_si128((__m128i *)(out + 16 * i),
                     _mm_aesenclast_si128(b, _mm256_castsi256_si128(rk[10])));
  }
  return 0;
}

/* ---- The DCF walk on two instances per register. ---- */

typedef uint64_t vq __attribute__((vector_size(32)));
#define DCF_VB 32
/* 16 YMM registers: 4 registers (8 instances, 16 blocks in flight at
 * w <= 2) when evaluating, 1 (2 instances, 12 blocks at w = 1) when
 * generating; more spill. */
#define DCF_UE 4
#define DCF_UG 1
#define DCF_NAME(s) s##_vaes256

#define AES_X86_BCAST(p) ((vq)_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p))))
#define AES_X86_ENC(b, k) ((vq)_mm256_aesenc_epi128((__m256i)(b), (__m256i)(k)))
#define AES_X86_ENCLAST(b, k) ((vq)_mm256_aesenclast_epi128((__m256i)(b), (__m256i)(k)))
#include "../aes_x86.h"

#include "dcf_lanes256.h"

#include "../../dcf_walk.h"

const kern__aes_impl_t kern__aes_vaes256 = {KERN_AES_VAES256, ecb_vaes256,
                                            dcf_eval_vaes256, dcf_gen_vaes256};
