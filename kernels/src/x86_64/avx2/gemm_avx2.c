/* gemm_avx2.c - the AVX2 micro-kernel of the ring GEMM.
 *
 * AVX2 has no 64-bit lane multiply, so products mod 2^64 are assembled from
 * 32-bit halves: with a = ah*2^32 + al and b = bh*2^32 + bl,
 *   a*b = al*bl + ((ah*bl + al*bh) mod 2^32) * 2^32   (mod 2^64).
 * vpmuludq gives al*bl exactly. For the cross term, vpmulld on a (broadcast)
 * and b with its halves swapped (one vpshufd per B vector per depth step)
 * gives al*bh and ah*bl mod 2^32 in the two 32-bit halves of each lane, and
 * both products together cost one instruction. Because every step is linear
 * mod 2^64, the kernel keeps two accumulators per output vector - the low
 * products (64-bit adds) and the cross terms (32-bit adds, so the two halves
 * never carry into each other) - and combines them once, after the depth
 * loop: C += lo + ((x_lo32 + x_hi32) << 32). Packing is the generic one.
 * Only this file is compiled with AVX2 flags.
 */
#include <immintrin.h>

#include "kern_int.h"

#define MR 4
#define NR 4

/* A 4x4 tile: eight accumulators plus b, its swapped copy and the broadcast
 * of a fit the sixteen ymm registers with room to spare. A 6x4 tile (twelve
 * accumulators) measured 26% slower on Zen 4 because GCC spilled inside the
 * depth loop. The accumulators live in arrays indexed by constants only,
 * which GCC keeps in registers once the loops are fully unrolled. */
static void ukr_4x4(size_t k, const uint64_t *ap, const uint64_t *bp,
                    uint64_t *c, size_t ldc) {
  __m256i lo[MR], x[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) {
    lo[i] = _mm256_setzero_si256();
    x[i] = _mm256_setzero_si256();
    _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
  }

  for (size_t p = 0; p < k; p++) {
    __m256i b = _mm256_load_si256((const __m256i *)bp);
    /* Swap the 32-bit halves of every lane: (bl, bh) -> (bh, bl). */
    __m256i bs = _mm256_shuffle_epi32(b, _MM_SHUFFLE(2, 3, 0, 1));
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      __m256i a = _mm256_set1_epi64x((long long)ap[i]);
      lo[i] = _mm256_add_epi64(lo[i], _mm256_mul_epu32(a, b));
      x[i] = _mm256_add_epi32(x[i], _mm256_mullo_epi32(a, bs));
    }
    ap += MR;
    bp += NR;
  }

#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) {
    uint64_t *ci = c + (size_t)i * ldc;
    __m256i s = _mm256_add_epi32(x[i], _mm256_srli_epi64(x[i], 32));
    __m256i r = _mm256_add_epi64(lo[i], _mm256_slli_epi64(s, 32));
    _mm256_storeu_si256(
        (__m256i *)ci,
        _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)ci), r));
  }
}

const kern__gemm_impl_t kern__gemm_avx2 = {
    .isa = KERN_AVX2,
    .mr = MR,
    .nr = NR,
    .mc = 120,
    .kc = 256,
    .nc = 2048,
    .ukr = ukr_4x4,
};
