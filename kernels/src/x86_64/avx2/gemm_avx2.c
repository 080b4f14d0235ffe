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

#define MR 6
#define NR 4

#define ROW_STEP(i)                                                          \
  do {                                                                       \
    __m256i ai = _mm256_set1_epi64x((long long)ap[i]);                       \
    l##i = _mm256_add_epi64(l##i, _mm256_mul_epu32(ai, b));                  \
    x##i = _mm256_add_epi32(x##i, _mm256_mullo_epi32(ai, bs));               \
  } while (0)

#define ROW_STORE(i)                                                         \
  do {                                                                       \
    uint64_t *ci = c + (size_t)(i) * ldc;                                    \
    __m256i s = _mm256_add_epi32(x##i, _mm256_srli_epi64(x##i, 32));         \
    __m256i r = _mm256_add_epi64(l##i, _mm256_slli_epi64(s, 32));            \
    _mm256_storeu_si256((__m256i *)ci,                                       \
                        _mm256_add_epi64(                                    \
                            _mm256_loadu_si256((const __m256i *)ci), r));    \
  } while (0)

static void ukr_6x4(size_t k, const uint64_t *ap, const uint64_t *bp,
                    uint64_t *c, size_t ldc) {
  __m256i l0 = _mm256_setzero_si256(), x0 = _mm256_setzero_si256();
  __m256i l1 = _mm256_setzero_si256(), x1 = _mm256_setzero_si256();
  __m256i l2 = _mm256_setzero_si256(), x2 = _mm256_setzero_si256();
  __m256i l3 = _mm256_setzero_si256(), x3 = _mm256_setzero_si256();
  __m256i l4 = _mm256_setzero_si256(), x4 = _mm256_setzero_si256();
  __m256i l5 = _mm256_setzero_si256(), x5 = _mm256_setzero_si256();

  for (size_t p = 0; p < k; p++) {
    __m256i b = _mm256_load_si256((const __m256i *)bp);
    /* Swap the 32-bit halves of every lane: (bl, bh) -> (bh, bl). */
    __m256i bs = _mm256_shuffle_epi32(b, _MM_SHUFFLE(2, 3, 0, 1));
    ROW_STEP(0);
    ROW_STEP(1);
    ROW_STEP(2);
    ROW_STEP(3);
    ROW_STEP(4);
    ROW_STEP(5);
    ap += MR;
    bp += NR;
  }

  ROW_STORE(0);
  ROW_STORE(1);
  ROW_STORE(2);
  ROW_STORE(3);
  ROW_STORE(4);
  ROW_STORE(5);
}

const kern__gemm_impl_t kern__gemm_avx2 = {
    .isa = KERN_AVX2,
    .mr = MR,
    .nr = NR,
    .mc = 120,
    .kc = 256,
    .nc = 2048,
    .ukr = ukr_6x4,
};
