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
 * The second half of the file is the small-m path (a few rows of C, read
 * straight from the operands, no packing) with the same arithmetic.
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

/* ------------------------------------------------------------------------ */
/* The small-m path: 1 <= m <= SMALL_M rows of C, no packing.                */

/* Up to 8 rows the small path beat the blocked one on Zen 3 at k=784,
 * n=128 (e.g. 8 rows: 5.3 vs 4.9 GMAC/s with B as stored, 6.0-7.2 vs
 * 3.4-5.2 with B transposed, best of 200 on a shared machine); at 16 rows
 * the blocked path won in one form. */
#define SMALL_M 8

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* a with its 32-bit halves swapped. */
static uint64_t swap_halves(uint64_t v) { return (v >> 32) | (v << 32); }

/* The 64-bit lanes of lo + (cross terms << 32), see the file comment. */
static ALWAYS_INLINE __m256i combine(__m256i lo, __m256i x) {
  __m256i s = _mm256_add_epi32(x, _mm256_srli_epi64(x, 32));
  return _mm256_add_epi64(lo, _mm256_slli_epi64(s, 32));
}

static ALWAYS_INLINE void store_c(uint64_t *c, __m256i r, int accumulate) {
  if (accumulate)
    r = _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)c), r);
  _mm256_storeu_si256((__m256i *)c, r);
}

/* op(B) stored k x n (B not transposed), the axpy form: C rows [0, R) and
 * columns [0, 4V) accumulate, per depth step p, op(A)(i, p) times row p of
 * B. Each B vector is loaded once for the R rows; the broadcast A value
 * comes with a copy whose halves are swapped, so the cross terms need no
 * shuffle of B. op(A)(i, p) = a[i * rsa + p * csa]. R * V <= 4 keeps the
 * 2 R V accumulators, V B vectors and two broadcasts in 16 registers; R and
 * V are constants at every call, so the arrays below live in registers. */
static ALWAYS_INLINE void axpy_tile(const int R, const int V, size_t k,
                                    const uint64_t *a, size_t rsa, size_t csa,
                                    const uint64_t *b, size_t ldb,
                                    int accumulate, uint64_t *c, size_t ldc) {
  __m256i lo[4][4], x[4][4];
#pragma GCC unroll 4
  for (int i = 0; i < R; i++)
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) {
      lo[i][v] = _mm256_setzero_si256();
      x[i][v] = _mm256_setzero_si256();
    }
  for (size_t p = 0; p < k; p++) {
    __m256i bv[4];
    const uint64_t *bp = b + p * ldb;
#pragma GCC unroll 4
    for (int v = 0; v < V; v++)
      bv[v] = _mm256_loadu_si256((const __m256i *)(bp + 4 * v));
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
      uint64_t ai = a[(size_t)i * rsa + p * csa];
      __m256i av = _mm256_set1_epi64x((long long)ai);
      __m256i as = _mm256_set1_epi64x((long long)swap_halves(ai));
#pragma GCC unroll 4
      for (int v = 0; v < V; v++) {
        lo[i][v] = _mm256_add_epi64(lo[i][v], _mm256_mul_epu32(av, bv[v]));
        x[i][v] = _mm256_add_epi32(x[i][v], _mm256_mullo_epi32(as, bv[v]));
      }
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; i++)
#pragma GCC unroll 4
    for (int v = 0; v < V; v++)
      store_c(c + (size_t)i * ldc + 4 * (size_t)v, combine(lo[i][v], x[i][v]),
              accumulate);
}

/* The last n % 4 columns, in plain C. */
static void scalar_cols(size_t rows, size_t cols, size_t k, const uint64_t *a,
                        size_t rsa, size_t csa, const uint64_t *b, size_t rsb,
                        size_t csb, int accumulate, uint64_t *c, size_t ldc) {
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++) {
      uint64_t s = 0;
      for (size_t p = 0; p < k; p++)
        s += a[i * rsa + p * csa] * b[p * rsb + j * csb];
      c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0) + s;
    }
}

/* R rows of C in the axpy form: 4V-wide column blocks, then 4-wide ones,
 * then the scalar tail. */
static ALWAYS_INLINE void axpy_rows(const int R, const int V, size_t n,
                                    size_t k, const uint64_t *a, size_t rsa,
                                    size_t csa, const uint64_t *b, size_t ldb,
                                    int accumulate, uint64_t *c, size_t ldc) {
  size_t j = 0;
  for (; j + 4 * (size_t)V <= n; j += 4 * (size_t)V)
    axpy_tile(R, V, k, a, rsa, csa, b + j, ldb, accumulate, c + j, ldc);
  for (; j + 4 <= n; j += 4)
    axpy_tile(R, 1, k, a, rsa, csa, b + j, ldb, accumulate, c + j, ldc);
  if (j < n)
    scalar_cols((size_t)R, n - j, k, a, rsa, csa, b + j, ldb, 1, accumulate,
                c + j, ldc);
}

/* The sum of the four 64-bit lanes. */
static ALWAYS_INLINE uint64_t hsum(__m256i v) {
  __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v),
                            _mm256_extracti128_si256(v, 1));
  return (uint64_t)_mm_cvtsi128_si64(s) +
         (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s));
}

/* op(B) stored n x k (B transposed, a layer's weight as PyTorch keeps it),
 * the dot form: C(i, j) is the dot product of row i of op(A) and row j of
 * the stored B, both read in 4-element vectors along the depth; the lanes
 * are summed after the loop and the last k % 4 products added in plain C.
 * With G, op(A)'s row is strided (A transposed) and gathered. R * J <= 4,
 * for the same register budget as axpy_tile. */
static ALWAYS_INLINE void dot_tile(const int R, const int J, const int G,
                                   size_t k, const uint64_t *a, size_t rsa,
                                   size_t csa, const uint64_t *b, size_t ldb,
                                   int accumulate, uint64_t *c, size_t ldc) {
  __m256i lo[4][4], x[4][4];
  const __m256i gidx = _mm256_set_epi64x((long long)(3 * csa),
                                         (long long)(2 * csa),
                                         (long long)csa, 0);
#pragma GCC unroll 4
  for (int i = 0; i < R; i++)
#pragma GCC unroll 4
    for (int j = 0; j < J; j++) {
      lo[i][j] = _mm256_setzero_si256();
      x[i][j] = _mm256_setzero_si256();
    }
  size_t k4 = k & ~(size_t)3;
  for (size_t p = 0; p < k4; p += 4) {
    __m256i bv[4];
#pragma GCC unroll 4
    for (int j = 0; j < J; j++)
      bv[j] = _mm256_loadu_si256((const __m256i *)(b + (size_t)j * ldb + p));
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
      const uint64_t *ai = a + (size_t)i * rsa + p * csa;
      __m256i av = G ? _mm256_i64gather_epi64((const long long *)ai, gidx, 8)
                     : _mm256_loadu_si256((const __m256i *)ai);
      __m256i as = _mm256_shuffle_epi32(av, _MM_SHUFFLE(2, 3, 0, 1));
#pragma GCC unroll 4
      for (int j = 0; j < J; j++) {
        lo[i][j] = _mm256_add_epi64(lo[i][j], _mm256_mul_epu32(av, bv[j]));
        x[i][j] = _mm256_add_epi32(x[i][j], _mm256_mullo_epi32(as, bv[j]));
      }
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; i++)
#pragma GCC unroll 4
    for (int j = 0; j < J; j++) {
      uint64_t s = hsum(combine(lo[i][j], x[i][j]));
      for (size_t p = k4; p < k; p++)
        s += a[(size_t)i * rsa + p * csa] * b[(size_t)j * ldb + p];
      uint64_t *cij = c + (size_t)i * ldc + j;
      *cij = (accumulate ? *cij : 0) + s;
    }
}

/* R rows of C in the dot form: J columns at a time, then single ones. */
static ALWAYS_INLINE void dot_rows(const int R, const int J, const int G,
                                   size_t n, size_t k, const uint64_t *a,
                                   size_t rsa, size_t csa, const uint64_t *b,
                                   size_t ldb, int accumulate, uint64_t *c,
                                   size_t ldc) {
  size_t j = 0;
  for (; j + (size_t)J <= n; j += (size_t)J)
    dot_tile(R, J, G, k, a, rsa, csa, b + j * ldb, ldb, accumulate, c + j,
             ldc);
  for (; j < n; j++)
    dot_tile(R, 1, G, k, a, rsa, csa, b + j * ldb, ldb, accumulate, c + j,
             ldc);
}

static void dot_all(int gathered, size_t m, size_t n, size_t k,
                    const uint64_t *a, size_t rsa, size_t csa,
                    const uint64_t *b, size_t ldb, int accumulate, uint64_t *c,
                    size_t ldc) {
  size_t i = 0;
  if (gathered) {
    for (; i + 2 <= m; i += 2)
      dot_rows(2, 2, 1, n, k, a + i * rsa, rsa, csa, b, ldb, accumulate,
               c + i * ldc, ldc);
    if (i < m)
      dot_rows(1, 4, 1, n, k, a + i * rsa, rsa, csa, b, ldb, accumulate,
               c + i * ldc, ldc);
    return;
  }
  for (; i + 2 <= m; i += 2)
    dot_rows(2, 2, 0, n, k, a + i * rsa, rsa, 1, b, ldb, accumulate,
             c + i * ldc, ldc);
  if (i < m)
    dot_rows(1, 4, 0, n, k, a + i * rsa, rsa, 1, b, ldb, accumulate,
             c + i * ldc, ldc);
}

void kern__gemm_small_avx2(kern_trans_t ta, kern_trans_t tb, size_t m, size_t n,
                           size_t k, const uint64_t *a, size_t lda,
                           const uint64_t *b, size_t ldb, int accumulate,
                           uint64_t *c, size_t ldc) {
  /* op(A)(i, p) = a[i * rsa + p * csa]. */
  size_t rsa = ta == KERN_TRANS ? 1 : lda, csa = ta == KERN_TRANS ? lda : 1;
  if (tb == KERN_TRANS) {
    dot_all(ta == KERN_TRANS, m, n, k, a, rsa, csa, b, ldb, accumulate, c,
            ldc);
    return;
  }
  size_t i = 0;
  for (; i + 4 <= m; i += 4)
    axpy_rows(4, 1, n, k, a + i * rsa, rsa, csa, b, ldb, accumulate,
              c + i * ldc, ldc);
  for (; i + 2 <= m; i += 2)
    axpy_rows(2, 2, n, k, a + i * rsa, rsa, csa, b, ldb, accumulate,
              c + i * ldc, ldc);
  if (i < m)
    axpy_rows(1, 4, n, k, a + i * rsa, rsa, csa, b, ldb, accumulate,
              c + i * ldc, ldc);
}

const kern__gemm_impl_t kern__gemm_avx2 = {
    .isa = KERN_AVX2,
    .mr = MR,
    .nr = NR,
    .mc = 120,
    .kc = 256,
    .nc = 2048,
    .ukr = ukr_4x4,
    .small_m = SMALL_M,
    .small = kern__gemm_small_avx2,
};
