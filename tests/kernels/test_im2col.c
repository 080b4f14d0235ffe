/* test_im2col.c - Check suite for the convolution lowering
 * (kernels/src/ref/im2col.c: kern_conv2d_out, kern_im2col, kern_col2im).
 *
 * kern_im2col is compared element by element with the index formula of kern.h
 * written the slow way (signed coordinates, a bounds test per element) on a
 * sweep of shapes with every combination of padding, stride and dilation
 * seen in practice; kern_col2im is checked as the adjoint of kern_im2col
 * (<im2col(x), y> == <x, col2im(y)> over Z_2^64, plus accumulation into a
 * non-zero x); a convolution lowered to kern_gemm matches a direct
 * convolution; and impossible parameters are refused.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "../test_rand.h"

static uint64_t *rand_vec(size_t n, uint64_t *s) {
  uint64_t *v = malloc((n ? n : 1) * sizeof *v);
  ck_assert_ptr_nonnull(v);
  for (size_t i = 0; i < n; i++)
    v[i] = test_splitmix64(s);
  return v;
}

/* The slow definition: one bounds test per element, signed coordinates. */
static uint64_t naive_at(const kern_conv2d_t *p, const uint64_t *x, size_t ow,
                         size_t row, size_t col) {
  size_t ci = row / (p->kh * p->kw), i = (row / p->kw) % p->kh, j = row % p->kw;
  size_t oy = col / ow, ox = col % ow;
  long long y = (long long)(oy * p->stride_h + i * p->dil_h) - (long long)p->pad_t;
  long long xx = (long long)(ox * p->stride_w + j * p->dil_w) - (long long)p->pad_l;
  if (y < 0 || xx < 0 || y >= (long long)p->h || xx >= (long long)p->w)
    return 0;
  return x[(ci * p->h + (size_t)y) * p->w + (size_t)xx];
}

static void check_one(const kern_conv2d_t *p, uint64_t *seed) {
  size_t oh, ow;
  ck_assert_int_eq(kern_conv2d_out(p, &oh, &ow), 0);
  size_t rows = p->c * p->kh * p->kw, cols = oh * ow, nx = p->c * p->h * p->w;
  uint64_t *x = rand_vec(nx, seed);
  uint64_t *m = malloc((rows * cols + 1) * sizeof *m);
  ck_assert_ptr_nonnull(m);
  m[rows * cols] = 0x5a5a5a5a5a5a5a5aull; /* guard */
  kern_im2col(p, x, m);
  ck_assert_uint_eq(m[rows * cols], 0x5a5a5a5a5a5a5a5aull);
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < cols; c++)
      if (m[r * cols + c] != naive_at(p, x, ow, r, c))
        ck_abort_msg("im2col c=%zu h=%zu w=%zu k=%zux%zu pad=%zu,%zu,%zu,%zu "
                     "s=%zu,%zu d=%zu,%zu: row %zu col %zu",
                     p->c, p->h, p->w, p->kh, p->kw, p->pad_t, p->pad_l,
                     p->pad_b, p->pad_r, p->stride_h, p->stride_w, p->dil_h,
                     p->dil_w, r, c);
  /* Adjoint: <im2col(x), y> == <x, col2im(y)>, and col2im accumulates. */
  uint64_t *y = rand_vec(rows * cols, seed);
  uint64_t *x0 = rand_vec(nx, seed);
  uint64_t *xt = malloc((nx ? nx : 1) * sizeof *xt);
  ck_assert_ptr_nonnull(xt);
  memcpy(xt, x0, nx * sizeof *xt);
  kern_col2im(p, y, xt);
  uint64_t lhs = 0, rhs = 0;
  for (size_t i = 0; i < rows * cols; i++)
    lhs += m[i] * y[i];
  for (size_t i = 0; i < nx; i++)
    rhs += x[i] * (xt[i] - x0[i]);
  ck_assert_uint_eq(lhs, rhs);
  free(x);
  free(m);
  free(y);
  free(x0);
  free(xt);
}

START_TEST(test_im2col_sweep) {
  uint64_t seed = 42;
  static const size_t hw[][2] = {{1, 1}, {5, 5}, {7, 4}, {4, 9}, {28, 28}};
  static const size_t ks[][2] = {{1, 1}, {3, 3}, {2, 3}, {5, 5}};
  static const size_t pads[][4] = {{0, 0, 0, 0}, {1, 1, 1, 1}, {2, 0, 1, 3}};
  static const size_t strides[][2] = {{1, 1}, {2, 2}, {1, 3}};
  static const size_t dils[][2] = {{1, 1}, {2, 2}, {1, 2}};
  size_t tested = 0;
  for (size_t a = 0; a < 5; a++)
    for (size_t b = 0; b < 4; b++)
      for (size_t c = 0; c < 3; c++)
        for (size_t d = 0; d < 3; d++)
          for (size_t e = 0; e < 3; e++) {
            kern_conv2d_t p = {.c = 1 + (a + b) % 3,
                               .h = hw[a][0], .w = hw[a][1],
                               .kh = ks[b][0], .kw = ks[b][1],
                               .pad_t = pads[c][0], .pad_l = pads[c][1],
                               .pad_b = pads[c][2], .pad_r = pads[c][3],
                               .stride_h = strides[d][0],
                               .stride_w = strides[d][1],
                               .dil_h = dils[e][0], .dil_w = dils[e][1]};
            size_t oh, ow;
            if (kern_conv2d_out(&p, &oh, &ow) != 0)
              continue; /* kernel larger than the padded plane */
            check_one(&p, &seed);
            tested++;
          }
  ck_assert_uint_gt(tested, 300);
}
END_TEST

/* Output size formula: floor((h + pt + pb - ((kh-1)*dh + 1)) / sh) + 1. */
START_TEST(test_conv2d_out) {
  kern_conv2d_t p = {.c = 1, .h = 28, .w = 28, .kh = 5, .kw = 5,
                     .stride_h = 1, .stride_w = 1, .dil_h = 1, .dil_w = 1};
  size_t oh, ow;
  ck_assert_int_eq(kern_conv2d_out(&p, &oh, &ow), 0);
  ck_assert_uint_eq(oh, 24);
  ck_assert_uint_eq(ow, 24);
  p.pad_t = p.pad_b = p.pad_l = p.pad_r = 2;
  p.stride_h = 2;
  p.dil_w = 3;
  ck_assert_int_eq(kern_conv2d_out(&p, &oh, &ow), 0);
  ck_assert_uint_eq(oh, 14); /* (32 - 5) / 2 + 1 */
  ck_assert_uint_eq(ow, 20); /* 32 - 13 + 1 */
  kern_conv2d_t bad = p;
  bad.stride_w = 0;
  ck_assert_int_eq(kern_conv2d_out(&bad, &oh, &ow), TANDEM_EINVAL);
  bad = p;
  bad.dil_h = 0;
  ck_assert_int_eq(kern_conv2d_out(&bad, &oh, &ow), TANDEM_EINVAL);
  bad = p;
  bad.kh = 0;
  ck_assert_int_eq(kern_conv2d_out(&bad, &oh, &ow), TANDEM_EINVAL);
  bad = p;
  bad.kh = 40; /* larger than the padded plane */
  ck_assert_int_eq(kern_conv2d_out(&bad, &oh, &ow), TANDEM_EINVAL);
  bad = p;
  bad.pad_b = SIZE_MAX; /* overflow */
  ck_assert_int_eq(kern_conv2d_out(&bad, &oh, &ow), TANDEM_EINVAL);
  bad = p;
  bad.c = SIZE_MAX / 4; /* the column matrix cannot exist */
  ck_assert_int_eq(kern_conv2d_out(&bad, &oh, &ow), TANDEM_EINVAL);
  ck_assert_int_eq(kern_conv2d_out(NULL, &oh, &ow), TANDEM_EINVAL);
}
END_TEST

/* A convolution as W (co x c*kh*kw) times im2col(x) equals the direct sum. */
START_TEST(test_conv_as_gemm) {
  uint64_t seed = 7;
  kern_conv2d_t p = {.c = 3, .h = 11, .w = 9, .kh = 3, .kw = 2,
                     .pad_t = 1, .pad_l = 0, .pad_b = 2, .pad_r = 1,
                     .stride_h = 2, .stride_w = 1, .dil_h = 1, .dil_w = 2};
  size_t oh, ow, co = 5;
  ck_assert_int_eq(kern_conv2d_out(&p, &oh, &ow), 0);
  size_t kk = p.c * p.kh * p.kw, np = oh * ow;
  uint64_t *x = rand_vec(p.c * p.h * p.w, &seed);
  uint64_t *w = rand_vec(co * kk, &seed);
  uint64_t *m = malloc(kk * np * sizeof *m), *y = malloc(co * np * sizeof *y);
  ck_assert_ptr_nonnull(m);
  ck_assert_ptr_nonnull(y);
  kern_im2col(&p, x, m);
  ck_assert_int_eq(kern_gemm(KERN_NOTRANS, KERN_NOTRANS, co, np, kk, w, kk, m,
                             np, 0, y, np),
                   0);
  for (size_t o = 0; o < co; o++)
    for (size_t oy = 0; oy < oh; oy++)
      for (size_t ox = 0; ox < ow; ox++) {
        uint64_t s = 0;
        for (size_t ci = 0; ci < p.c; ci++)
          for (size_t i = 0; i < p.kh; i++)
            for (size_t j = 0; j < p.kw; j++) {
              long long yy = (long long)(oy * p.stride_h + i * p.dil_h) - (long long)p.pad_t;
              long long xx = (long long)(ox * p.stride_w + j * p.dil_w) - (long long)p.pad_l;
              if (yy < 0 || xx < 0 || yy >= (long long)p.h || xx >= (long long)p.w)
                continue;
              s += w[(o * p.c + ci) * p.kh * p.kw + i * p.kw + j] *
                   x[(ci * p.h + (size_t)yy) * p.w + (size_t)xx];
            }
        ck_assert_uint_eq(y[o * np + oy * ow + ox], s);
      }
  free(x);
  free(w);
  free(m);
  free(y);
}
END_TEST

Suite *im2col_suite(void) {
  Suite *s = suite_create("im2col");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_im2col_sweep);
  tcase_add_test(tc, test_conv2d_out);
  tcase_add_test(tc, test_conv_as_gemm);
  suite_add_tcase(s, tc);
  return s;
}
