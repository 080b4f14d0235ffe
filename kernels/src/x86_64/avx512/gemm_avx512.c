/* gemm_avx512.c - the AVX-512 micro-kernel of the ring GEMM (AVX-512F + DQ).
 *
 * AVX-512DQ's vpmullq multiplies eight 64-bit lanes keeping the low 64 bits,
 * which is exactly multiplication in Z_2^64, and vpaddq adds mod 2^64, so the
 * micro-kernel is the textbook outer-product loop: per depth step, load one
 * 16-wide row of the packed B panel into two zmm registers, broadcast each of
 * the 8 A values of the packed A column (the compiler folds the broadcast
 * into vpmullq's memory operand, {1to8}), and accumulate the 8 x 16 tile in 16
 * zmm accumulators. Only this file is compiled with AVX-512 flags; the
 * blocked driver in gemm.c is ISA-neutral.
 */
#include <immintrin.h>

#include "kern_int.h"

#define MR 8
#define NR 16

/* The tile lives in an array indexed by constants only: with the loops fully
 * unrolled GCC keeps every element in a register, whereas sixteen named
 * locals led it to shuffle copies and spill inside the loop. */
static void ukr_8x16(size_t k, const uint64_t *ap, const uint64_t *bp,
                     uint64_t *c, size_t ldc) {
  __m512i acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) {
    acc[i][0] = _mm512_setzero_si512();
    acc[i][1] = _mm512_setzero_si512();
    /* C is read only after the depth loop; fetching it now hides the miss
     * (C is not in L1 when the driver moves on to a new tile). */
    _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + (size_t)i * ldc + 8), _MM_HINT_T0);
  }

  for (size_t p = 0; p < k; p++) {
    __m512i b0 = _mm512_load_si512(bp);
    __m512i b1 = _mm512_load_si512(bp + 8);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      __m512i a = _mm512_set1_epi64((long long)ap[i]);
      acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_mullo_epi64(a, b0));
      acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_mullo_epi64(a, b1));
    }
    ap += MR;
    bp += NR;
  }

#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) {
    uint64_t *ci = c + (size_t)i * ldc;
    _mm512_storeu_si512(ci, _mm512_add_epi64(_mm512_loadu_si512(ci), acc[i][0]));
    _mm512_storeu_si512(ci + 8,
                        _mm512_add_epi64(_mm512_loadu_si512(ci + 8), acc[i][1]));
  }
}

const kern__gemm_impl_t kern__gemm_avx512 = {
    .isa = KERN_AVX512,
    .mr = MR,
    .nr = NR,
    .mc = 128,
    .kc = 256,
    .nc = 2048,
    .ukr = ukr_8x16,
    /* A few rows of C are bound by reading B, not by multiplies: the AVX2
     * small-m path serves (every AVX-512 CPU runs AVX2). */
    .small_m = 4,
    .small = kern__gemm_small_avx2,
};
