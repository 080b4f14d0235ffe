/* gemm_ref.c - the reference ring GEMM over Z_2^64 and the portable
 * micro-kernel.
 *
 * kern__gemm_ref is the definition of correctness every optimised variant is
 * tested against: three plain loops over uint64_t, whose arithmetic wraps mod
 * 2^64 by the C standard, with the transposes and leading dimensions read
 * directly from the operands. It is single-threaded and makes no attempt at
 * speed beyond a loop order that walks memory forwards. The second half of
 * the file is the portable 4x4 register-tile micro-kernel that
 * kern_gemm_info(KERN_REF) describes: the same contract as the SIMD
 * micro-kernels, so the benchmark can quote a peak for plain C.
 */
#include <string.h>

#include "kern_int.h"

void kern__gemm_ref(kern_trans_t ta, kern_trans_t tb, size_t m, size_t n,
                    size_t k, const uint64_t *a, size_t lda, const uint64_t *b,
                    size_t ldb, int accumulate, uint64_t *c, size_t ldc) {
  for (size_t i = 0; i < m; i++) {
    uint64_t *ci = c + i * ldc;
    if (!accumulate)
      for (size_t j = 0; j < n; j++)
        ci[j] = 0;
    for (size_t p = 0; p < k; p++) {
      uint64_t aip = ta == KERN_TRANS ? a[p * lda + i] : a[i * lda + p];
      if (tb == KERN_TRANS)
        for (size_t j = 0; j < n; j++)
          ci[j] += aip * b[j * ldb + p];
      else
        for (size_t j = 0; j < n; j++)
          ci[j] += aip * b[p * ldb + j];
    }
  }
}

/* The portable micro-kernel: a 4x4 tile of C held in sixteen locals, so the
 * compiler keeps it in registers across the k loop, as the SIMD kernels keep
 * theirs in vector registers. */
#define REF_MR 4
#define REF_NR 4

static void ukr_ref_4x4(size_t k, const uint64_t *ap, const uint64_t *bp,
                        uint64_t *c, size_t ldc) {
  uint64_t t[REF_MR][REF_NR];
  memset(t, 0, sizeof t);
  for (size_t p = 0; p < k; p++) {
    for (int i = 0; i < REF_MR; i++)
      for (int j = 0; j < REF_NR; j++)
        t[i][j] += ap[i] * bp[j];
    ap += REF_MR;
    bp += REF_NR;
  }
  for (int i = 0; i < REF_MR; i++)
    for (int j = 0; j < REF_NR; j++)
      c[(size_t)i * ldc + (size_t)j] += t[i][j];
}

/* Cache blocks sized like the SIMD variants' (they only matter when this
 * descriptor drives kern__gemm_blocked, which the tests do to exercise the
 * driver with a tile of its own). */
const kern__gemm_impl_t kern__gemm_portable = {
    .isa = KERN_REF,
    .mr = REF_MR,
    .nr = REF_NR,
    .mc = 128,
    .kc = 256,
    .nc = 1024,
    .ukr = ukr_ref_4x4,
};
