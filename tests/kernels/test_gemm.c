/* test_gemm.c - Check suite for the ring GEMM (kernels/src/gemm.c,
 * ref/gemm_ref.c and the AVX2 / AVX-512 micro-kernels).
 *
 * Every variant the CPU runs is compared bit for bit with kern__gemm_ref on
 * random operands and on the shapes where blocked code goes wrong: empty
 * dimensions, one row or column, register tiles plus or minus one, depths
 * around the cache block, leading dimensions wider than the matrix (the gap
 * must stay untouched), all four transpose combinations, accumulate on and
 * off, one and two threads; the small-m path (no packing, a few rows of C)
 * on its own row groups and vector widths, and split over threads. The
 * generic driver is also run with the portable 4x4 micro-kernel, so it is
 * tested on any CPU. Large products, where the
 * reference would be slow, are checked with Freivalds' test: C r == A (B r)
 * mod 2^64 for several random vectors r. Operands come from splitmix64 with
 * fixed seeds, printed in every failure message.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "kern_int.h"
#include "../test_rand.h"

/* ref/gemm_ref.c: the portable micro-kernel's descriptor. */
extern const kern__gemm_impl_t kern__gemm_portable;

static uint64_t *rand_buf(size_t len, uint64_t seed) {
  uint64_t *p = malloc((len ? len : 1) * sizeof *p);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < len; i++)
    p[i] = test_splitmix64(&seed);
  return p;
}

/* A variant under test: an ISA through the public entry point, or the
 * driver with the portable micro-kernel (isa < 0). */
typedef struct {
  int isa;
  const char *name;
} variant_t;

static int run_variant(const variant_t *v, kern_trans_t ta, kern_trans_t tb,
                       size_t m, size_t n, size_t k, const uint64_t *a,
                       size_t lda, const uint64_t *b, size_t ldb, int acc,
                       uint64_t *c, size_t ldc) {
  if (v->isa < 0)
    return kern__gemm_blocked(&kern__gemm_portable, ta, tb, m, n, k, a, lda,
                              b, ldb, acc, c, ldc);
  return kern_gemm_isa((kern_isa_t)v->isa, ta, tb, m, n, k, a, lda, b, ldb,
                       acc, c, ldc);
}

/* The variant TANDEM_KERNEL forces, or -1 when it is unset or empty. An
 * unknown name fails the test rather than testing nothing. */
static int forced_isa(void) {
  const char *env = getenv("TANDEM_KERNEL");
  if (env == NULL || env[0] == '\0')
    return -1;
  kern_isa_t isa;
  ck_assert_msg(kern_isa_parse(env, &isa) == 0,
                "TANDEM_KERNEL=%s: not a kernel variant", env);
  return (int)isa;
}

/* The variants under test. CTest runs this suite once per variant
 * (unit_kernels_ref, _avx2, _avx512), each with TANDEM_KERNEL naming it:
 * only that variant is compared with the reference, and for "ref" that is
 * the blocked driver with the portable micro-kernel as well as the public
 * entry point. A forced variant the CPU lacks leaves nothing to test, and
 * test_variant_available says so in the line CTest reads as "skipped".
 * Without TANDEM_KERNEL (the binary run by hand) every variant this CPU
 * runs is tested and the others are reported once. */
static size_t variants(variant_t *out) {
  static int reported;
  size_t nv = 0;
  int forced = forced_isa();
  if (forced >= 0) {
    if (!kern_isa_supported((kern_isa_t)forced))
      return 0;
    if (forced == KERN_REF)
      out[nv++] = (variant_t){-1, "portable-blocked"};
    out[nv++] = (variant_t){forced, kern_isa_name((kern_isa_t)forced)};
    return nv;
  }
  out[nv++] = (variant_t){-1, "portable-blocked"};
  for (int isa = 0; isa < KERN_NISA; isa++) {
    if (kern_isa_supported((kern_isa_t)isa))
      out[nv++] = (variant_t){isa, kern_isa_name((kern_isa_t)isa)};
    else if (!reported)
      fprintf(stderr, "test_gemm: skipping %s: not supported by this CPU/OS\n",
              kern_isa_name((kern_isa_t)isa));
  }
  reported = 1;
  return nv;
}

START_TEST(test_variant_available) {
  /* The one place a forced variant's absence is reported: CTest's
   * SKIP_REGULAR_EXPRESSION for unit_kernels_<isa> matches this line. */
  int forced = forced_isa();
  if (forced >= 0 && !kern_isa_supported((kern_isa_t)forced)) {
    fprintf(stderr,
            "test_gemm: TANDEM_KERNEL=%s: not supported by this CPU/OS: "
            "SKIPPED\n",
            kern_isa_name((kern_isa_t)forced));
    return;
  }
  variant_t vs[KERN_NISA + 1];
  size_t nv = variants(vs);
  ck_assert_uint_ge(nv, 1);
  for (size_t vi = 0; vi < nv; vi++)
    fprintf(stderr, "test_gemm: testing %s against the reference\n",
            vs[vi].name);
}
END_TEST

static void tile_of(const variant_t *v, kern_gemm_info_t *info) {
  if (v->isa < 0) {
    const kern__gemm_impl_t *p = &kern__gemm_portable;
    *info = (kern_gemm_info_t){p->mr, p->nr, p->mc, p->kc, p->nc, p->ukr};
    return;
  }
  ck_assert_int_eq(kern_gemm_info((kern_isa_t)v->isa, info), 0);
}

/* One comparison against the reference. The leading dimensions exceed the
 * widths by pad; C starts random everywhere, so an accumulate bug or a write
 * into the gap between rows shows up as a mismatch. */
static void check_one(const variant_t *v, kern_trans_t ta, kern_trans_t tb,
                      size_t m, size_t n, size_t k, size_t pad, int acc,
                      int threads, uint64_t seed) {
  size_t arows = ta == KERN_TRANS ? k : m, acols = ta == KERN_TRANS ? m : k;
  size_t brows = tb == KERN_TRANS ? n : k, bcols = tb == KERN_TRANS ? k : n;
  size_t lda = acols + pad, ldb = bcols + pad, ldc = n + pad;
  uint64_t *a = rand_buf(arows * lda, seed);
  uint64_t *b = rand_buf(brows * ldb, seed ^ 0x1111);
  uint64_t *want = rand_buf(m * ldc, seed ^ 0x2222);
  uint64_t *got = rand_buf(m * ldc, seed ^ 0x2222);

  ck_assert_int_eq(kern_set_threads(threads), 0);
  kern__gemm_ref(ta, tb, m, n, k, a, lda, b, ldb, acc, want, ldc);
  int rc = run_variant(v, ta, tb, m, n, k, a, lda, b, ldb, acc, got, ldc);
  ck_assert_msg(rc == 0, "%s: rc %d", v->name, rc);
  for (size_t i = 0; i < m * ldc; i++)
    ck_assert_msg(got[i] == want[i],
                  "%s: m=%zu n=%zu k=%zu ta=%d tb=%d pad=%zu acc=%d "
                  "threads=%d seed=%llu: C[%zu][%zu] differs",
                  v->name, m, n, k, (int)ta, (int)tb, pad, acc, threads,
                  (unsigned long long)seed, i / ldc, i % ldc);
  free(a);
  free(b);
  free(want);
  free(got);
}

START_TEST(test_small_all_options) {
  /* Every transpose, accumulate, padding and thread combination on a few
   * awkward small shapes. */
  static const size_t shapes[][3] = {
      {1, 1, 1}, {3, 5, 7}, {9, 17, 33}, {13, 11, 2}, {2, 40, 5}};
  variant_t vs[KERN_NISA + 1];
  size_t nv = variants(vs);
  uint64_t seed = 1000;
  for (size_t vi = 0; vi < nv; vi++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int opt = 0; opt < 32; opt++, seed++)
        check_one(&vs[vi], (kern_trans_t)(opt & 1),
                  (kern_trans_t)((opt >> 1) & 1), shapes[s][0], shapes[s][1],
                  shapes[s][2], (opt & 4) ? 3 : 0, (opt >> 3) & 1,
                  1 + ((opt >> 4) & 1), seed);
}
END_TEST

START_TEST(test_edge_shapes) {
  /* Dimensions around the variant's own register tile and depth block. The
   * transposes, accumulate flag, padding and threads rotate with the shape
   * so that every option meets every kind of edge without the full product
   * of all of them. */
  variant_t vs[KERN_NISA + 1];
  size_t nv = variants(vs);
  uint64_t seed = 2000;
  for (size_t vi = 0; vi < nv; vi++) {
    kern_gemm_info_t t;
    tile_of(&vs[vi], &t);
    size_t ms[] = {0, 1, t.mr - 1, t.mr, t.mr + 1, 2 * t.mr + 3};
    size_t ns[] = {0, 1, t.nr - 1, t.nr, t.nr + 1, 3 * t.nr - 1};
    size_t ks[] = {0, 1, 2, t.kc - 1, t.kc, t.kc + 1, 2 * t.kc + 5};
    unsigned opt = 0;
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
      for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++)
        for (size_t l = 0; l < sizeof ks / sizeof ks[0]; l++, opt++, seed++) {
          if (ms[i] == 0 && vs[vi].isa > 0 && (opt & 3) != 0)
            continue; /* empty shapes: one rotation is enough */
          check_one(&vs[vi], (kern_trans_t)(opt & 1),
                    (kern_trans_t)((opt >> 1) & 1), ms[i], ns[j], ks[l],
                    (opt % 3 == 0) ? 2 : 0, (opt / 5) & 1, 1 + (opt / 7) % 2,
                    seed);
        }
  }
}
END_TEST

START_TEST(test_blocks_and_threads) {
  /* Several ic, jc and pc blocks, ragged at every level, with one and two
   * threads (these are big enough that the driver really forks). */
  variant_t vs[KERN_NISA + 1];
  size_t nv = variants(vs);
  uint64_t seed = 3000;
  for (size_t vi = 0; vi < nv; vi++) {
    kern_gemm_info_t t;
    tile_of(&vs[vi], &t);
    size_t m = t.mc + t.mr + 1, n = 2 * t.nr + 3, k = t.kc + 7;
    for (int opt = 0; opt < 8; opt++, seed++)
      check_one(&vs[vi], (kern_trans_t)(opt & 1),
                (kern_trans_t)((opt >> 1) & 1), m, n, k, opt & 1 ? 1 : 0,
                (opt >> 2) & 1, 1 + (opt & 1), seed);
    /* A wide problem: n spans more than one NC block only for the portable
     * tile, where NC is small enough to keep the reference cheap. */
    size_t wide = vs[vi].isa < 0 ? t.nc + 2 * t.nr + 1 : 300;
    check_one(&vs[vi], KERN_NOTRANS, KERN_NOTRANS, 37, wide, 41, 0, 1, 2,
              seed++);
    check_one(&vs[vi], KERN_TRANS, KERN_TRANS, 129, 97, 100, 5, 0, 2,
              seed++);
  }
}
END_TEST

START_TEST(test_small_m) {
  /* The small-m path (m up to 8 on AVX2, 4 on AVX-512; beyond, the
   * blocked path takes over): every row-group split (4, 2, 1 rows), column
   * counts around its vector widths (4, 8, 16 columns in the axpy form, 1,
   * 2, 4 in the dot form) and depths around the dot form's 4-element step,
   * in every transpose, padding and accumulate combination. */
  static const size_t ms[] = {1, 2, 3, 4, 5, 7, 8, 9};
  static const size_t ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 130};
  static const size_t ks[] = {1, 2, 3, 4, 5, 7, 8, 9, 130};
  variant_t vs[KERN_NISA + 1];
  size_t nv = variants(vs);
  uint64_t seed = 8000;
  for (size_t vi = 0; vi < nv; vi++) {
    unsigned opt = 0;
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
      for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++)
        for (size_t l = 0; l < sizeof ks / sizeof ks[0]; l++, seed++) {
          /* Each shape in four of the eight transpose x accumulate
           * combinations, rotating, with and without padding. */
          for (int rep = 0; rep < 4; rep++, opt++) {
            unsigned o = opt * 3;
            check_one(&vs[vi], (kern_trans_t)(o & 1),
                      (kern_trans_t)((o >> 1) & 1), ms[i], ns[j], ks[l],
                      (o & 4) ? 3 : 0, (int)((o >> 2) & 1), 1, seed);
          }
        }
  }
}
END_TEST

START_TEST(test_small_m_threads) {
  /* Small-m products large enough to be split by columns over threads:
   * slices of whole 16-column groups, a ragged last slice, 1 to 3 threads
   * (3 leaves one thread a slice shorter than the others), both forms. */
  static const size_t shapes[][3] = {
      {1, 601, 1900}, {2, 999, 700}, {4, 333, 1001}, {3, 17, 30000},
      {8, 200, 700}};
  variant_t vs[KERN_NISA + 1];
  size_t nv = variants(vs);
  uint64_t seed = 9000;
  for (size_t vi = 0; vi < nv; vi++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int opt = 0; opt < 6; opt++, seed++)
        check_one(&vs[vi], (kern_trans_t)((opt >> 1) & 1),
                  (kern_trans_t)(opt & 1), shapes[s][0], shapes[s][1],
                  shapes[s][2], (opt & 2) ? 1 : 0, (opt >> 2) & 1,
                  1 + (opt % 3), seed);
}
END_TEST

START_TEST(test_ukr) {
  /* The micro-kernel alone, as the benchmark calls it, with a C tile inside
   * a wider matrix. */
  variant_t vs[KERN_NISA + 1];
  size_t nv = variants(vs);
  for (size_t vi = 0; vi < nv; vi++) {
    if (vs[vi].isa < 0)
      continue;
    kern_gemm_info_t t;
    tile_of(&vs[vi], &t);
    static const size_t ks[] = {0, 1, 5, 64, 131};
    for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++) {
      size_t k = ks[q], ldc = t.nr + 3;
      uint64_t seed = 4000 + q;
      /* aligned_alloc wants a size that is a multiple of the alignment. */
      uint64_t *ap = aligned_alloc(64, (k * t.mr + 8) / 8 * 64);
      uint64_t *bp = aligned_alloc(64, (k * t.nr + 8) / 8 * 64);
      uint64_t *c = rand_buf(t.mr * ldc, seed);
      uint64_t *want = malloc(t.mr * ldc * sizeof *want);
      ck_assert(ap && bp && want);
      for (size_t i = 0; i < k * t.mr; i++)
        ap[i] = test_splitmix64(&seed);
      for (size_t i = 0; i < k * t.nr; i++)
        bp[i] = test_splitmix64(&seed);
      memcpy(want, c, t.mr * ldc * sizeof *want);
      for (size_t i = 0; i < t.mr; i++)
        for (size_t j = 0; j < t.nr; j++)
          for (size_t p = 0; p < k; p++)
            want[i * ldc + j] += ap[p * t.mr + i] * bp[p * t.nr + j];
      t.ukr(k, ap, bp, c, ldc);
      ck_assert_msg(memcmp(c, want, t.mr * ldc * sizeof *c) == 0,
                    "%s ukr k=%zu seed=%llu", vs[vi].name, k,
                    (unsigned long long)(4000 + q));
      free(ap);
      free(bp);
      free(c);
      free(want);
    }
  }
}
END_TEST

/* Freivalds: with y = B r and z = A y, a correct C has C r == z. A wrong
 * entry survives a random r with probability about 2^-64 per vector. */
static void freivalds(const variant_t *v, kern_trans_t ta, kern_trans_t tb,
                      size_t m, size_t n, size_t k, int threads,
                      uint64_t seed) {
  size_t lda = ta == KERN_TRANS ? m : k, ldb = tb == KERN_TRANS ? k : n;
  uint64_t *a = rand_buf(m * k, seed);
  uint64_t *b = rand_buf(k * n, seed ^ 0x3333);
  uint64_t *c0 = rand_buf(m * n, seed ^ 0x4444);
  uint64_t *c = malloc(m * n * sizeof *c);
  uint64_t *y = malloc(k * sizeof *y), *cr = malloc(m * sizeof *cr);
  ck_assert(c && y && cr);
  memcpy(c, c0, m * n * sizeof *c);
  int acc = (int)(seed & 1);

  ck_assert_int_eq(kern_set_threads(threads), 0);
  int rc = run_variant(v, ta, tb, m, n, k, a, lda, b, ldb, acc, c, n);
  ck_assert_msg(rc == 0, "%s: rc %d", v->name, rc);

  for (int rep = 0; rep < 3; rep++) {
    uint64_t *r = rand_buf(n, seed + 100 + (uint64_t)rep);
    for (size_t p = 0; p < k; p++) {
      uint64_t s = 0;
      for (size_t j = 0; j < n; j++)
        s += (tb == KERN_TRANS ? b[j * ldb + p] : b[p * ldb + j]) * r[j];
      y[p] = s;
    }
    for (size_t i = 0; i < m; i++) {
      uint64_t z = 0, s = 0;
      for (size_t p = 0; p < k; p++)
        z += (ta == KERN_TRANS ? a[p * lda + i] : a[i * lda + p]) * y[p];
      for (size_t j = 0; j < n; j++)
        s += (c[i * n + j] - (acc ? c0[i * n + j] : 0)) * r[j];
      cr[i] = s - z;
    }
    for (size_t i = 0; i < m; i++)
      ck_assert_msg(cr[i] == 0,
                    "%s: Freivalds failed m=%zu n=%zu k=%zu ta=%d tb=%d "
                    "threads=%d seed=%llu row %zu",
                    v->name, m, n, k, (int)ta, (int)tb, threads,
                    (unsigned long long)seed, i);
    free(r);
  }
  free(a);
  free(b);
  free(c0);
  free(c);
  free(y);
  free(cr);
}

START_TEST(test_large_freivalds) {
  variant_t vs[KERN_NISA + 1];
  size_t nv = variants(vs);
  for (size_t vi = 0; vi < nv; vi++) {
    if (vs[vi].isa <= 0)
      continue; /* the reference and the portable tile are too slow here */
    for (int opt = 0; opt < 4; opt++)
      freivalds(&vs[vi], (kern_trans_t)(opt & 1),
                (kern_trans_t)((opt >> 1) & 1), 700, 650, 600,
                1 + (opt & 1), 5000 + (uint64_t)opt);
    freivalds(&vs[vi], KERN_NOTRANS, KERN_NOTRANS, 1029, 1100, 777, 2, 5010);
    freivalds(&vs[vi], KERN_TRANS, KERN_NOTRANS, 1500, 33, 1300, 2, 5011);
  }
}
END_TEST

START_TEST(test_thread_counts_identical) {
  /* The same product with 1, 2 and 3 threads (3 does not divide the tile
   * grid evenly) and every variant gives one result. */
  size_t m = 203, n = 190, k = 301;
  uint64_t *a = rand_buf(m * k, 6000), *b = rand_buf(k * n, 6001);
  uint64_t *first = malloc(m * n * sizeof *first);
  uint64_t *c = malloc(m * n * sizeof *c);
  ck_assert(first && c);
  kern__gemm_ref(KERN_NOTRANS, KERN_NOTRANS, m, n, k, a, k, b, n, 0, first, n);
  variant_t vs[KERN_NISA + 1];
  size_t nv = variants(vs);
  for (size_t vi = 0; vi < nv; vi++)
    for (int th = 1; th <= 3; th++) {
      ck_assert_int_eq(kern_set_threads(th), 0);
      memset(c, 0xa5, m * n * sizeof *c);
      ck_assert_int_eq(run_variant(&vs[vi], KERN_NOTRANS, KERN_NOTRANS, m, n,
                                   k, a, k, b, n, 0, c, n),
                       0);
      ck_assert_msg(memcmp(c, first, m * n * sizeof *c) == 0,
                    "%s threads=%d seed=6000", vs[vi].name, th);
    }
  free(a);
  free(b);
  free(first);
  free(c);
}
END_TEST

START_TEST(test_dispatched_entry) {
  /* kern_gemm with whatever dispatch chose agrees with the reference. */
  variant_t v = {(int)kern_isa_active(), "kern_gemm"};
  uint64_t *a = rand_buf(50 * 60, 7000), *b = rand_buf(60 * 70, 7001);
  uint64_t *c = malloc(50 * 70 * sizeof *c), *w = malloc(50 * 70 * sizeof *w);
  ck_assert(c && w);
  kern__gemm_ref(KERN_NOTRANS, KERN_TRANS, 50, 70, 60, a, 60, b, 60, 0, w, 70);
  ck_assert_int_eq(
      kern_gemm(KERN_NOTRANS, KERN_TRANS, 50, 70, 60, a, 60, b, 60, 0, c, 70),
      0);
  ck_assert_msg(memcmp(c, w, 50 * 70 * sizeof *c) == 0, "%s seed=7000",
                kern_isa_name((kern_isa_t)v.isa));
  free(a);
  free(b);
  free(c);
  free(w);
}
END_TEST

START_TEST(test_bad_arguments) {
  uint64_t a[64] = {0}, b[64] = {0}, c[64] = {0};
  variant_t vs[KERN_NISA + 1];
  size_t nv = variants(vs);
  for (size_t vi = 0; vi < nv; vi++) {
    const variant_t *v = &vs[vi];
    /* m=3, n=4, k=5: NOTRANS A needs lda >= 5, TRANS A lda >= 3;
     * NOTRANS B needs ldb >= 4, TRANS B ldb >= 5; ldc >= 4. */
    ck_assert_int_eq(run_variant(v, KERN_NOTRANS, KERN_NOTRANS, 3, 4, 5, a, 4,
                                 b, 4, 0, c, 4), TANDEM_EINVAL);
    ck_assert_int_eq(run_variant(v, KERN_TRANS, KERN_NOTRANS, 3, 4, 5, a, 2,
                                 b, 4, 0, c, 4), TANDEM_EINVAL);
    ck_assert_int_eq(run_variant(v, KERN_NOTRANS, KERN_NOTRANS, 3, 4, 5, a, 5,
                                 b, 3, 0, c, 4), TANDEM_EINVAL);
    ck_assert_int_eq(run_variant(v, KERN_NOTRANS, KERN_TRANS, 3, 4, 5, a, 5,
                                 b, 4, 0, c, 4), TANDEM_EINVAL);
    ck_assert_int_eq(run_variant(v, KERN_NOTRANS, KERN_NOTRANS, 3, 4, 5, a, 5,
                                 b, 4, 0, c, 3), TANDEM_EINVAL);
    ck_assert_int_eq(run_variant(v, (kern_trans_t)2, KERN_NOTRANS, 3, 4, 5, a,
                                 5, b, 4, 0, c, 4), TANDEM_EINVAL);
    /* The smallest valid leading dimensions are accepted. */
    ck_assert_int_eq(run_variant(v, KERN_TRANS, KERN_TRANS, 3, 4, 5, a, 3, b,
                                 5, 0, c, 4), 0);
  }
  ck_assert_int_eq(kern_gemm_isa((kern_isa_t)KERN_NISA, KERN_NOTRANS,
                                 KERN_NOTRANS, 1, 1, 1, a, 1, b, 1, 0, c, 1),
                   TANDEM_EINVAL);
  ck_assert_int_eq(kern_gemm(KERN_NOTRANS, KERN_NOTRANS, 1, 1, 2, a, 1, b, 1,
                             0, c, 1), TANDEM_EINVAL);
  kern_gemm_info_t info;
  ck_assert_int_eq(kern_gemm_info((kern_isa_t)KERN_NISA, &info), TANDEM_EINVAL);
  ck_assert_int_eq(kern_gemm_info(KERN_REF, NULL), TANDEM_EINVAL);
  for (int isa = 0; isa < KERN_NISA; isa++) {
    int rc = kern_gemm_info((kern_isa_t)isa, &info);
    if (!kern_isa_supported((kern_isa_t)isa)) {
      ck_assert_int_eq(rc, TANDEM_ENOTSUP);
      ck_assert_int_eq(kern_gemm_isa((kern_isa_t)isa, KERN_NOTRANS,
                                     KERN_NOTRANS, 1, 1, 1, a, 1, b, 1, 0, c,
                                     1), TANDEM_ENOTSUP);
      continue;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert(info.mr >= 1 && info.nr >= 1 && info.ukr != NULL);
    ck_assert(info.mc % info.mr == 0 && info.nc % info.nr == 0);
  }
}
END_TEST

Suite *gemm_suite(void) {
  Suite *s = suite_create("gemm");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  /* Every test here runs per variant (see variants()): the tag lets CTest
   * run this suite alone under each TANDEM_KERNEL and the other kernel
   * suites once. */
  tcase_set_tags(tc, "variant");
  tcase_add_test(tc, test_variant_available);
  tcase_add_test(tc, test_small_all_options);
  tcase_add_test(tc, test_edge_shapes);
  tcase_add_test(tc, test_blocks_and_threads);
  tcase_add_test(tc, test_small_m);
  tcase_add_test(tc, test_small_m_threads);
  tcase_add_test(tc, test_ukr);
  tcase_add_test(tc, test_large_freivalds);
  tcase_add_test(tc, test_thread_counts_identical);
  tcase_add_test(tc, test_dispatched_entry);
  tcase_add_test(tc, test_bad_arguments);
  suite_add_tcase(s, tc);
  return s;
}
