/* gemm.c - the ring GEMM entry points and the blocked driver every optimised
 * variant shares.
 *
 * kern_gemm and kern_gemm_isa validate their arguments and then run either the
 * reference loops (ref/gemm_ref.c) or kern__gemm_blocked with a variant's
 * descriptor. The driver follows BLIS's five loops around a micro-kernel: jc
 * over NC-wide column blocks of C, pc over KC-deep slices of k (B's slice is
 * packed into kc x nr micro-panels), ic over MC-tall row blocks (A's block is
 * packed into MR-interleaved kc x mr micro-panels), then jr and ir over the
 * register tiles. Packing absorbs the transposes and the leading dimensions
 * and zero-pads ragged edges, so the micro-kernels only ever see full,
 * contiguous, 64-byte aligned panels; edge tiles of C go through a small
 * temporary tile. Products with only a few rows (m <= the descriptor's
 * small_m: a batch-1 layer is a matrix-vector product) skip all of that and
 * run the variant's small-m path straight on the operands, since packing B
 * would cost as much as using it once. Threads (OpenMP) each own a disjoint rectangle of C and pack
 * their own panels, so no two threads ever write the same element and no
 * synchronisation is needed inside the loops. Because ring addition is exact
 * (associative and commutative mod 2^64), the result is bit-identical for
 * every blocking, variant and thread count.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kern_int.h"

/* The portable 4x4 micro-kernel's descriptor (ref/gemm_ref.c). It is not in
 * kern_int.h because dispatch never selects it: kern_gemm's reference path
 * is the plain loop; this descriptor only feeds kern_gemm_info(KERN_REF) and
 * the driver tests. */
extern const kern__gemm_impl_t kern__gemm_portable;

/* Below this many multiply-adds a call runs on the calling thread alone:
 * waking a second thread costs a few microseconds, about what ~100k MACs
 * take on one core. */
#define GEMM_MT_MIN_MACS ((double)(1u << 20))

/* The largest register tile the edge-tile buffer accommodates. */
#define GEMM_MAX_TILE 512

static size_t min_sz(size_t x, size_t y) { return x < y ? x : y; }
static size_t ceil_div(size_t x, size_t y) { return (x + y - 1) / y; }
static size_t round_up(size_t x, size_t y) { return ceil_div(x, y) * y; }

/* Splits len into ceil(len / max) nearly equal blocks, each a multiple of
 * unit, and returns the block size. Equal blocks avoid a thin last block:
 * k = 784 with KC = 256 runs as 4 x 196 rather than 3 x 256 + 16. */
static size_t balanced_block(size_t len, size_t max, size_t unit) {
  size_t nb = ceil_div(len, max);
  size_t bs = round_up(ceil_div(len, nb), unit);
  return bs > max ? max : bs;
}

/* Everything one call shares between threads; read-only once set. */
typedef struct {
  const kern__gemm_impl_t *impl;
  kern_trans_t ta, tb;
  size_t m, n, k;
  const uint64_t *a, *b;
  size_t lda, ldb, ldc;
  uint64_t *c;
  int accumulate;
  size_t mc, kc, nc;       /* cache blocks used by this call */
  size_t pa_stride;        /* elements per packed A micro-panel (kc x mr) */
  size_t pb_stride;        /* elements per packed B micro-panel (kc x nr) */
  size_t abuf_elems, bbuf_elems; /* per-thread packing buffers */
  size_t tm, tn;           /* thread grid over row and column tiles */
} gemm_job_t;

/* Packs rows [i0, i0 + mc) and depth [p0, p0 + kc) of op(A) into MR-wide
 * micro-panels: panel r holds ap[p * mr + i] = op(A)(i0 + r*mr + i, p0 + p),
 * zero past row m. */
static void pack_a(const gemm_job_t *job, size_t i0, size_t mc, size_t p0,
                   size_t kc, uint64_t *buf) {
  const size_t mr = job->impl->mr, lda = job->lda;
  for (size_t ir = 0; ir < mc; ir += mr) {
    uint64_t *ap = buf + (ir / mr) * job->pa_stride;
    size_t rows = min_sz(mr, mc - ir);
    if (job->ta == KERN_TRANS) {
      /* op(A)(i, p) = a[p * lda + i]: each depth step is a contiguous run. */
      const uint64_t *src = job->a + p0 * lda + i0 + ir;
      /* Plain loops rather than memcpy: the runs are a tile wide (a few
       * dozen bytes), where a library call costs more than the copy. */
      for (size_t p = 0; p < kc; p++)
        for (size_t i = 0; i < mr; i++)
          ap[p * mr + i] = i < rows ? src[p * lda + i] : 0;
    } else {
      /* op(A)(i, p) = a[i * lda + p]: walk the mr rows side by side, so
       * the panel is written sequentially (one store stream) while the
       * hardware prefetcher follows the mr read streams. */
      const uint64_t *src = job->a + (i0 + ir) * lda + p0;
      if (rows == mr) {
        for (size_t p = 0; p < kc; p++)
          for (size_t i = 0; i < mr; i++)
            ap[p * mr + i] = src[i * lda + p];
      } else {
        for (size_t p = 0; p < kc; p++)
          for (size_t i = 0; i < mr; i++)
            ap[p * mr + i] = i < rows ? src[i * lda + p] : 0;
      }
    }
  }
}

/* Packs depth [p0, p0 + kc) and columns [j0, j0 + nc) of op(B) into NR-wide
 * micro-panels: panel r holds bp[p * nr + j] = op(B)(p0 + p, j0 + r*nr + j),
 * zero past column n. */
static void pack_b(const gemm_job_t *job, size_t j0, size_t nc, size_t p0,
                   size_t kc, uint64_t *buf) {
  const size_t nr = job->impl->nr, ldb = job->ldb;
  for (size_t jr = 0; jr < nc; jr += nr) {
    uint64_t *bp = buf + (jr / nr) * job->pb_stride;
    size_t cols = min_sz(nr, nc - jr);
    if (job->tb == KERN_TRANS) {
      /* op(B)(p, j) = b[j * ldb + p]: read each stored row forwards. */
      for (size_t j = 0; j < cols; j++) {
        const uint64_t *src = job->b + (j0 + jr + j) * ldb + p0;
        for (size_t p = 0; p < kc; p++)
          bp[p * nr + j] = src[p];
      }
      for (size_t j = cols; j < nr; j++)
        for (size_t p = 0; p < kc; p++)
          bp[p * nr + j] = 0;
    } else {
      const uint64_t *src = job->b + p0 * ldb + j0 + jr;
      if (cols == nr) {
        for (size_t p = 0; p < kc; p++)
          for (size_t j = 0; j < nr; j++)
            bp[p * nr + j] = src[p * ldb + j];
      } else {
        for (size_t p = 0; p < kc; p++)
          for (size_t j = 0; j < nr; j++)
            bp[p * nr + j] = j < cols ? src[p * ldb + j] : 0;
      }
    }
  }
}

/* The sequential blocked product for the C rectangle [i0, i1) x [j0, j1),
 * with this thread's packing buffers. */
static void gemm_rect(const gemm_job_t *job, size_t i0, size_t i1, size_t j0,
                      size_t j1, uint64_t *abuf, uint64_t *bbuf) {
  const kern__gemm_impl_t *impl = job->impl;
  const size_t mr = impl->mr, nr = impl->nr, ldc = job->ldc;
  const kern_ukr_fn ukr = impl->ukr;
  _Alignas(64) uint64_t tile[GEMM_MAX_TILE];

  for (size_t jc = j0; jc < j1; jc += job->nc) {
    size_t nc = min_sz(job->nc, j1 - jc);
    for (size_t pc = 0; pc < job->k; pc += job->kc) {
      size_t kc = min_sz(job->kc, job->k - pc);
      /* The first depth slice overwrites C unless accumulating; later
       * slices add to what the earlier ones left. */
      int overwrite = pc == 0 && !job->accumulate;
      pack_b(job, jc, nc, pc, kc, bbuf);
      for (size_t ic = i0; ic < i1; ic += job->mc) {
        size_t mc = min_sz(job->mc, i1 - ic);
        pack_a(job, ic, mc, pc, kc, abuf);
        for (size_t jr = 0; jr < nc; jr += nr) {
          const uint64_t *bp = bbuf + (jr / nr) * job->pb_stride;
          size_t cols = min_sz(nr, nc - jr);
          for (size_t ir = 0; ir < mc; ir += mr) {
            const uint64_t *ap = abuf + (ir / mr) * job->pa_stride;
            size_t rows = min_sz(mr, mc - ir);
            uint64_t *cij = job->c + (ic + ir) * ldc + jc + jr;
            if (rows == mr && cols == nr) {
              if (overwrite)
                for (size_t i = 0; i < mr; i++)
                  memset(cij + i * ldc, 0, nr * sizeof *cij);
              ukr(kc, ap, bp, cij, ldc);
            } else {
              /* A ragged edge: compute the full tile aside (the padding
               * rows and columns of the panels are zero) and keep only the
               * part inside C. */
              memset(tile, 0, mr * nr * sizeof *tile);
              ukr(kc, ap, bp, tile, nr);
              for (size_t i = 0; i < rows; i++)
                for (size_t j = 0; j < cols; j++)
                  cij[i * ldc + j] =
                      (overwrite ? 0 : cij[i * ldc + j]) + tile[i * nr + j];
            }
          }
        }
      }
    }
  }
}

/* Chooses the thread grid tm x tn (tm * tn == nt) that gives the busiest
 * thread the fewest register tiles; ties go to splitting columns, so each
 * thread packs a narrower slice of B. */
static void thread_grid(size_t nt, size_t mtiles, size_t ntiles, size_t *tm,
                        size_t *tn) {
  size_t best = (size_t)-1;
  *tm = 1;
  *tn = nt;
  for (size_t x = 1; x <= nt; x++) {
    if (nt % x != 0)
      continue;
    size_t y = nt / x;
    size_t cost = ceil_div(mtiles, x) * ceil_div(ntiles, y);
    if (cost < best) {
      best = cost;
      *tm = x;
      *tn = y;
    }
  }
}

static int check_args(kern_trans_t ta, kern_trans_t tb, size_t m, size_t n,
                      size_t k, const uint64_t *a, size_t lda,
                      const uint64_t *b, size_t ldb, const uint64_t *c,
                      size_t ldc) {
  if ((ta != KERN_NOTRANS && ta != KERN_TRANS) ||
      (tb != KERN_NOTRANS && tb != KERN_TRANS))
    return TANDEM_EINVAL;
  if (lda < (ta == KERN_TRANS ? m : k) || ldb < (tb == KERN_TRANS ? k : n) ||
      ldc < n)
    return TANDEM_EINVAL;
  if ((m != 0 && n != 0 && c == NULL) ||
      (m != 0 && n != 0 && k != 0 && (a == NULL || b == NULL)))
    return TANDEM_EINVAL;
  return 0;
}

/* Handles the products with nothing to multiply: an empty C, or k == 0
 * (C = 0, or unchanged when accumulating). Returns 1 when it did the work. */
static int gemm_trivial(size_t m, size_t n, size_t k, int accumulate,
                        uint64_t *c, size_t ldc) {
  if (m == 0 || n == 0)
    return 1;
  if (k != 0)
    return 0;
  if (!accumulate)
    for (size_t i = 0; i < m; i++)
      memset(c + i * ldc, 0, n * sizeof *c);
  return 1;
}

/* The small-m path. Products big enough to share (a wide matrix-vector
 * product) split the columns of C into one slice per thread, each a
 * multiple of 16 columns so every slice but the last runs full vectors;
 * each thread reads only its slice of B. */
static int gemm_small(const kern__gemm_impl_t *impl, kern_trans_t ta,
                      kern_trans_t tb, size_t m, size_t n, size_t k,
                      const uint64_t *a, size_t lda, const uint64_t *b,
                      size_t ldb, int accumulate, uint64_t *c, size_t ldc) {
  size_t nt = (size_t)kern_threads();
  if ((double)m * (double)n * (double)k < GEMM_MT_MIN_MACS)
    nt = 1;
  size_t slice = round_up(ceil_div(n, nt), 16);
  nt = ceil_div(n, slice);
  if (nt <= 1) {
    impl->small(ta, tb, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
    return 0;
  }
#pragma omp parallel num_threads((int)nt)
  {
    size_t self = (size_t)omp_get_thread_num();
    size_t got = (size_t)omp_get_num_threads();
    for (size_t t = self; t < nt; t += got) {
      size_t j0 = t * slice, j1 = min_sz(n, j0 + slice);
      const uint64_t *bj = b + (tb == KERN_TRANS ? j0 * ldb : j0);
      impl->small(ta, tb, m, j1 - j0, k, a, lda, bj, ldb, accumulate, c + j0,
                  ldc);
    }
  }
  return 0;
}

int kern__gemm_blocked(const kern__gemm_impl_t *impl, kern_trans_t ta,
                       kern_trans_t tb, size_t m, size_t n, size_t k,
                       const uint64_t *a, size_t lda, const uint64_t *b,
                       size_t ldb, int accumulate, uint64_t *c, size_t ldc) {
  int rc = check_args(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
  if (rc != 0)
    return rc;
  if (gemm_trivial(m, n, k, accumulate, c, ldc))
    return 0;

  if (m <= impl->small_m && impl->small != NULL)
    return gemm_small(impl, ta, tb, m, n, k, a, lda, b, ldb, accumulate, c,
                      ldc);

  const size_t mr = impl->mr, nr = impl->nr;
  gemm_job_t job = {
      .impl = impl, .ta = ta, .tb = tb, .m = m, .n = n, .k = k,
      .a = a, .b = b, .lda = lda, .ldb = ldb, .ldc = ldc, .c = c,
      .accumulate = accumulate,
  };

  size_t mtiles = ceil_div(m, mr), ntiles = ceil_div(n, nr);
  size_t nt = (size_t)kern_threads();
  if ((double)m * (double)n * (double)k < GEMM_MT_MIN_MACS)
    nt = 1;
  if (nt > mtiles * ntiles)
    nt = mtiles * ntiles;
  thread_grid(nt, mtiles, ntiles, &job.tm, &job.tn);

  /* Cache blocks for this call: no larger than a thread's share of C, and
   * split into equal parts so no block is a thin remainder. */
  size_t mshare = ceil_div(mtiles, job.tm) * mr;
  size_t nshare = ceil_div(ntiles, job.tn) * nr;
  job.mc = balanced_block(mshare, impl->mc, mr);
  job.nc = balanced_block(nshare, impl->nc, nr);
  job.kc = balanced_block(k, impl->kc, 1);
  /* Panels start on 64-byte boundaries whatever kc is. */
  job.pa_stride = round_up(job.kc * mr, 8);
  job.pb_stride = round_up(job.kc * nr, 8);
  job.abuf_elems = ceil_div(job.mc, mr) * job.pa_stride;
  job.bbuf_elems = ceil_div(job.nc, nr) * job.pb_stride;

  size_t per_thread = job.abuf_elems + job.bbuf_elems;
  uint64_t *buf = aligned_alloc(64, nt * per_thread * sizeof *buf);
  if (buf == NULL)
    return TANDEM_ENOMEM;

#pragma omp parallel num_threads((int)nt) if (nt > 1)
  {
    /* The runtime may grant fewer threads than asked (nested parallelism,
     * OMP_THREAD_LIMIT): each thread then takes every got-th rectangle, so
     * the whole of C is always covered. */
    size_t self = (size_t)omp_get_thread_num();
    size_t got = (size_t)omp_get_num_threads();
    uint64_t *abuf = buf + self * per_thread;
    uint64_t *bbuf = abuf + job.abuf_elems;
    for (size_t t = self; t < nt; t += got) {
      size_t ti = t / job.tn, tj = t % job.tn;
      size_t i0 = min_sz(m, ti * mtiles / job.tm * mr);
      size_t i1 = min_sz(m, (ti + 1) * mtiles / job.tm * mr);
      size_t j0 = min_sz(n, tj * ntiles / job.tn * nr);
      size_t j1 = min_sz(n, (tj + 1) * ntiles / job.tn * nr);
      if (i0 < i1 && j0 < j1)
        gemm_rect(&job, i0, i1, j0, j1, abuf, bbuf);
    }
  }

  free(buf);
  return 0;
}

/* Runs the variant isa, already known to be supported. */
static int gemm_run(kern_isa_t isa, kern_trans_t ta, kern_trans_t tb,
                    size_t m, size_t n, size_t k, const uint64_t *a,
                    size_t lda, const uint64_t *b, size_t ldb, int accumulate,
                    uint64_t *c, size_t ldc) {
  const kern__gemm_impl_t *impl = kern__gemm_impl(isa);
  if (impl != NULL)
    return kern__gemm_blocked(impl, ta, tb, m, n, k, a, lda, b, ldb,
                              accumulate, c, ldc);
  int rc = check_args(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
  if (rc != 0)
    return rc;
  if (!gemm_trivial(m, n, k, accumulate, c, ldc))
    kern__gemm_ref(ta, tb, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
  return 0;
}

int kern_gemm_isa(kern_isa_t isa, kern_trans_t ta, kern_trans_t tb, size_t m,
                  size_t n, size_t k, const uint64_t *a, size_t lda,
                  const uint64_t *b, size_t ldb, int accumulate, uint64_t *c,
                  size_t ldc) {
  if ((unsigned)isa >= KERN_NISA)
    return TANDEM_EINVAL;
  if (!kern_isa_supported(isa))
    return TANDEM_ENOTSUP;
  return gemm_run(isa, ta, tb, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
}

/* The dispatch choice was checked when it was made; asking CPUID again on
 * every call would cost a VM exit under a hypervisor. */
int kern_gemm(kern_trans_t ta, kern_trans_t tb, size_t m, size_t n, size_t k,
              const uint64_t *a, size_t lda, const uint64_t *b, size_t ldb,
              int accumulate, uint64_t *c, size_t ldc) {
  return gemm_run(kern_isa_active(), ta, tb, m, n, k, a, lda, b, ldb,
                  accumulate, c, ldc);
}

int kern_gemm_info(kern_isa_t isa, kern_gemm_info_t *info) {
  if ((unsigned)isa >= KERN_NISA || info == NULL)
    return TANDEM_EINVAL;
  if (!kern_isa_supported(isa))
    return TANDEM_ENOTSUP;
  const kern__gemm_impl_t *impl = kern__gemm_impl(isa);
  if (impl == NULL)
    impl = &kern__gemm_portable;
  info->mr = impl->mr;
  info->nr = impl->nr;
  info->mc = impl->mc;
  info->kc = impl->kc;
  info->nc = impl->nc;
  info->ukr = impl->ukr;
  return 0;
}
