/* test_resize.c - Check suite "resize": ONNX Resize in every mode (nearest,
 * linear, cubic), coordinate transformation, nearest rounding, cubic_coeff_a
 * and exclude_outside, at integer and non-integer factors up and down, by
 * scales and by sizes (mpc/src/onnx_resize.c). Each case is imported from a
 * model built in C (onnx_build.c) and its plaintext evaluation compared with
 * an independent port of ONNX's reference (interpolate_nd: every output
 * element on its own, the neighbours found by sorting every index of the
 * edge-padded axis by distance, as the reference does); then run privately
 * (batch 2) against the evaluator, in no round at all (the
 * axes' linear maps composed into one local gate). Data from splitmix64.
 * Opset 18's antialias, axes and keep_aspect_ratio_policy and opset 19's
 * half_pixel_symmetric are ported from the same reference
 * (_linear_coeffs_antialias, _cubic_coeffs_antialias, the policy's
 * rounding of scale * size).
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_build.h"
#include "proto_harness.h"

Suite *resize_suite(void);

#define FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define I64(...) ((const int64_t[]){__VA_ARGS__})

typedef struct {
  const char *mode, *ctm, *nm; /* NULL: the default */
  double a;                    /* cubic_coeff_a, 0: the default */
  int exclude;
  size_t h, w;                 /* input [N, 2, h, w] */
  double sh, sw;               /* scales on H and W, or */
  size_t oh, ow;               /* sizes (when sh == 0) */
  int aa;                      /* antialias (opset 18) */
  const char *keep;            /* keep_aspect_ratio_policy (opset 18), NULL: stretch */
  int axes;                    /* scales or sizes given for axes [3, 2] only (opset 18) */
} rcase_t;

/* ---- the reference -------------------------------------------------------- */

static const rcase_t *cur;

static double ref_x(double o, double s, size_t in, size_t out) {
  const char *ctm = cur->ctm != NULL ? cur->ctm : "half_pixel";
  double ow = s * (double)in;
  if (strcmp(ctm, "align_corners") == 0)
    return ow == 1 ? 0 : o * (double)(in - 1) / (ow - 1);
  if (strcmp(ctm, "asymmetric") == 0)
    return o / s;
  if (strcmp(ctm, "pytorch_half_pixel") == 0)
    return ow == 1 ? -0.5 : (o + 0.5) / s - 0.5;
  if (strcmp(ctm, "half_pixel_symmetric") == 0) {
    double adjustment = (double)out / ow, center = (double)in / 2;
    double offset = center * (1 - adjustment);
    return offset + (o + 0.5) / s - 0.5;
  }
  return (o + 0.5) / s - 0.5;
}

static double cubic_coeff(double x, double A) {
  x = fabs(x);
  if (x <= 1)
    return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2)
    return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

static size_t ref_coeffs(double r, double s, double *c) {
  const char *mode = cur->mode != NULL ? cur->mode : "nearest";
  double A = cur->a != 0 ? (double)(float)cur->a : -0.75; /* an attribute is a float */
  if (cur->aa && strcmp(mode, "nearest") != 0) {
    double scale = s > 1.0 ? 1.0 : s, sum = 0;
    size_t n = 0;
    if (strcmp(mode, "cubic") == 0) {
      long i_start = (long)floor(-2 / scale) + 1, i_end = 2 - i_start;
      for (long i = i_start; i < i_end; i++)
        c[n++] = cubic_coeff(scale * ((double)i - r), A);
    } else {
      long start = (long)floor(-1 / scale) + 1, footprint = 2 - 2 * start;
      for (long i = start; i < start + footprint; i++) {
        double a = ((double)i - r) * scale;
        c[n++] = fmin(1, fmax(0, 1 - fabs(a)));
      }
    }
    for (size_t j = 0; j < n; j++)
      sum += c[j];
    for (size_t j = 0; j < n; j++)
      c[j] /= sum;
    return n;
  }
  if (strcmp(mode, "cubic") == 0) {
    c[0] = ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A;
    c[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
    c[2] = ((A + 2) * (1 - r) - (A + 3)) * (1 - r) * (1 - r) + 1;
    c[3] = ((A * ((1 - r) + 1) - 5 * A) * ((1 - r) + 1) + 8 * A) * ((1 - r) + 1) - 4 * A;
    return 4;
  }
  if (strcmp(mode, "linear") == 0) {
    c[0] = 1 - r;
    c[1] = r;
    return 2;
  }
  const char *nm = cur->nm != NULL ? cur->nm : "round_prefer_floor";
  int hi;
  if (r == 1 || strcmp(nm, "ceil") == 0)
    hi = 1;
  else if (strcmp(nm, "round_prefer_floor") == 0)
    hi = r > 0.5;
  else if (strcmp(nm, "round_prefer_ceil") == 0)
    hi = r >= 0.5;
  else
    hi = 0;
  c[0] = !hi;
  c[1] = hi;
  return 2;
}

static double sort_x; /* the point qsort measures from */
static int by_dist(const void *pa, const void *pb) {
  long a = *(const long *)pa, b = *(const long *)pb;
  double da = fabs(sort_x - (double)a), db = fabs(sort_x - (double)b);
  return da < db ? -1 : da > db ? 1 : (a > b) - (a < b);
}
static int by_idx(const void *pa, const void *pb) {
  long a = *(const long *)pa, b = *(const long *)pb;
  return (a > b) - (a < b);
}

/* interpolate_1d_with_x over data[0..in) (stride st). */
static double ref_1d(const double *data, size_t in, double s, size_t out, double o) {
  double x = ref_x(o, s, in, out), c[64];
  double r = x == floor(x) ? 1 : x - floor(x);
  size_t n = ref_coeffs(r, s, c);
  long pad = (long)ceil((double)n / 2), lim = (long)in + 2 * pad, all[128];
  ck_assert(lim <= 128);
  for (long i = 0; i < lim; i++)
    all[i] = i;
  sort_x = x + (double)pad;
  qsort(all, (size_t)lim, sizeof *all, by_dist);
  qsort(all, n, sizeof *all, by_idx);
  double sum = 0, y = 0;
  for (size_t j = 0; j < n; j++) {
    long i = all[j] - pad;
    if (cur->exclude && (i < 0 || i >= (long)in))
      c[j] = 0;
    sum += c[j];
  }
  for (size_t j = 0; j < n; j++) {
    long i = all[j] - pad;
    i = i < 0 ? 0 : i >= (long)in ? (long)in - 1 : i;
    y += (cur->exclude ? c[j] / sum : c[j]) * data[i];
  }
  return y;
}

/* Output element (oy, ox) of one [h, w] plane: the rows' values first. */
static double ref_2d(const double *plane, size_t h, size_t w, double sh, double sw, size_t oh,
                     size_t ow, size_t oy, size_t ox) {
  double col[64];
  ck_assert(h <= 64);
  for (size_t i = 0; i < h; i++)
    col[i] = ref_1d(plane + i * w, w, sw, ow, (double)ox);
  return ref_1d(col, h, sh, oh, (double)oy);
}

/* ---- the cases ------------------------------------------------------------ */

static const rcase_t cases[] = {
    {"nearest", NULL, NULL, 0, 0, 4, 4, 0.6, 0.6, 0, 0, 0, NULL, 0},
    {"nearest", NULL, NULL, 0, 0, 2, 2, 0, 0, 7, 8, 0, NULL, 0},
    {"nearest", "half_pixel", "ceil", 0, 0, 4, 4, 0, 0, 8, 6, 0, NULL, 0},
    {"nearest", "align_corners", "floor", 0, 0, 4, 4, 0, 0, 8, 7, 0, NULL, 0},
    {"nearest", "asymmetric", "round_prefer_ceil", 0, 0, 4, 4, 0, 0, 9, 5, 0, NULL, 0},
    {"nearest", "pytorch_half_pixel", NULL, 0, 0, 5, 3, 0, 0, 3, 1, 0, NULL, 0},
    {"linear", NULL, NULL, 0, 0, 2, 2, 2, 2, 0, 0, 0, NULL, 0},
    {"linear", NULL, NULL, 0, 0, 4, 5, 0.6, 0.6, 0, 0, 0, NULL, 0},
    {"linear", "align_corners", NULL, 0, 0, 2, 3, 2.5, 1.5, 0, 0, 0, NULL, 0},
    {"linear", "align_corners", NULL, 0, 0, 4, 4, 0.6, 0.6, 0, 0, 0, NULL, 0},
    {"linear", "pytorch_half_pixel", NULL, 0, 0, 4, 4, 0, 0, 3, 1, 0, NULL, 0},
    {"linear", "asymmetric", NULL, 0, 0, 3, 5, 0, 0, 7, 9, 0, NULL, 0},
    {"linear", "half_pixel", NULL, 0, 1, 5, 4, 0, 0, 11, 3, 0, NULL, 0},
    {"cubic", NULL, NULL, 0, 0, 4, 4, 2, 2, 0, 0, 0, NULL, 0},
    {"cubic", NULL, NULL, 0, 0, 4, 4, 0.8, 0.8, 0, 0, 0, NULL, 0},
    {"cubic", NULL, NULL, -0.5, 1, 4, 4, 2, 2, 0, 0, 0, NULL, 0},
    {"cubic", NULL, NULL, -0.5, 1, 4, 4, 0.8, 0.8, 0, 0, 0, NULL, 0},
    {"cubic", "align_corners", NULL, 0, 0, 4, 4, 2, 2, 0, 0, 0, NULL, 0},
    {"cubic", "align_corners", NULL, 0, 0, 4, 4, 0.8, 0.8, 0, 0, 0, NULL, 0},
    {"cubic", "asymmetric", NULL, 0, 0, 4, 4, 2, 2, 0, 0, 0, NULL, 0},
    {"cubic", NULL, NULL, 0, 0, 4, 4, 0, 0, 9, 10, 0, NULL, 0},
    {"cubic", NULL, NULL, 0, 0, 4, 4, 0, 0, 3, 3, 0, NULL, 0},
    {"cubic", "pytorch_half_pixel", NULL, 0, 0, 6, 5, 0, 0, 4, 13, 0, NULL, 0},
    {"cubic", "half_pixel", NULL, -0.6, 1, 7, 2, 1.7, 3.25, 0, 0, 0, NULL, 0},
    /* opset 18: antialias when downsampling (linear and cubic) */
    {"linear", NULL, NULL, 0, 0, 8, 8, 0.5, 0.5, 0, 0, 1, NULL, 0},
    {"linear", "align_corners", NULL, 0, 0, 9, 7, 0.4, 0.6, 0, 0, 1, NULL, 0},
    {"cubic", NULL, NULL, 0, 0, 8, 10, 0.5, 0.55, 0, 0, 1, NULL, 0},
    {"cubic", NULL, NULL, -0.5, 1, 7, 9, 0.45, 0.7, 0, 0, 1, NULL, 0},
    {"cubic", NULL, NULL, 0, 0, 5, 6, 0, 0, 3, 2, 1, NULL, 0},
    {"linear", NULL, NULL, 0, 0, 4, 4, 2, 1.5, 0, 0, 1, NULL, 0}, /* upsampling: no effect */
    /* opset 18: keep_aspect_ratio_policy with sizes; axes [3, 2] */
    {"linear", NULL, NULL, 0, 0, 4, 6, 0, 0, 8, 9, 0, "not_larger", 0},
    {"nearest", NULL, NULL, 0, 0, 4, 6, 0, 0, 8, 9, 0, "not_smaller", 1},
    {"cubic", NULL, NULL, 0, 0, 5, 3, 0, 0, 3, 7, 0, "not_smaller", 1},
    {"linear", NULL, NULL, 0, 0, 4, 5, 1.5, 0.75, 0, 0, 0, NULL, 1},
    {"nearest", NULL, NULL, 0, 0, 4, 5, 0, 0, 7, 3, 0, NULL, 1},
    {"cubic", NULL, NULL, 0, 0, 5, 4, 0, 0, 3, 8, 0, "not_larger", 1},
    /* opset 19: half_pixel_symmetric */
    {"linear", "half_pixel_symmetric", NULL, 0, 0, 4, 5, 0.6, 1.7, 0, 0, 0, NULL, 0},
    {"nearest", "half_pixel_symmetric", NULL, 0, 0, 5, 4, 2.5, 0.6, 0, 0, 0, NULL, 0},
    {"cubic", "half_pixel_symmetric", NULL, 0, 0, 4, 4, 0, 0, 7, 3, 0, NULL, 0},
    {"linear", "half_pixel_symmetric", NULL, 0, 0, 9, 8, 0.35, 0.55, 0, 0, 1, NULL, 0},
};

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void build(const rcase_t *c, mpc_graph_t *g, mpc_weights_t *w) {
  int sym = c->ctm != NULL && strcmp(c->ctm, "half_pixel_symmetric") == 0;
  ob_t *b = ob_new(sym ? 19 : c->aa || c->keep != NULL || c->axes ? 18 : 13);
  ob_input(b, "x", FLOAT, 4, I64(2, 2, (int64_t)c->h, (int64_t)c->w));
  ob_init_f(b, "roi", 1, I64(0), (double[]){0});
  Onnx__NodeProto *n;
  if (c->sh != 0 && c->axes) {
    ob_init_f(b, "scales", 1, I64(2), (double[]){c->sw, c->sh});
    n = ob_node(b, "Resize", "rs", "x,roi,scales", "y");
  } else if (c->sh != 0) {
    ob_init_f(b, "scales", 1, I64(4), (double[]){1, 1, c->sh, c->sw});
    n = ob_node(b, "Resize", "rs", "x,roi,scales", "y");
  } else {
    ob_init_f(b, "scales", 1, I64(0), (double[]){0});
    if (c->axes)
      ob_init_i64(b, "sizes", 2, I64((int64_t)c->ow, (int64_t)c->oh));
    else
      ob_init_i64(b, "sizes", 4, I64(2, 2, (int64_t)c->oh, (int64_t)c->ow));
    n = ob_node(b, "Resize", "rs", "x,roi,scales,sizes", "y");
  }
  if (c->axes)
    ob_attr_ints(b, n, "axes", 2, I64(3, 2));
  if (c->aa)
    ob_attr_i(b, n, "antialias", 1);
  if (c->keep != NULL)
    ob_attr_s(b, n, "keep_aspect_ratio_policy", c->keep);
  ob_attr_s(b, n, "mode", c->mode);
  if (c->ctm != NULL)
    ob_attr_s(b, n, "coordinate_transformation_mode", c->ctm);
  if (c->nm != NULL)
    ob_attr_s(b, n, "nearest_mode", c->nm);
  if (c->a != 0)
    ob_attr_f(b, n, "cubic_coeff_a", (float)c->a);
  if (c->exclude)
    ob_attr_i(b, n, "exclude_outside", 1);
  ob_output(b, "y");
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  char err[512];
  int rc = mpc_onnx_load_buffer(buf, len, g, w, err, sizeof err);
  free(buf);
  ob_free(b);
  ck_assert_msg(rc == 0, "import failed: %s", err);
}

/* Case _i: the evaluator against the reference, then privately. */
START_TEST(test_resize_case) {
  const rcase_t *c = &cases[_i];
  cur = c;
  mpc_graph_t g;
  mpc_weights_t w;
  build(c, &g, &w);
  mpc_shape_t s = {4, {2, 2, c->h, c->w}};
  mpc_ftensor_t in, out;
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  uint64_t seed = 0x5eed0 + (uint64_t)_i;
  for (size_t i = 0; i < mpc_shape_numel(&s); i++)
    in.data[i] = (double)(splitmix(&seed) >> 11) / 9007199254740992.0 * 8 - 4;
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, &out), 0);
  /* The scales the reference sees: given, or sizes over the input's, or
   * with a policy the least (not_larger) or greatest of those, the sizes
   * then round(scale * input size), half to even as numpy's round. */
  size_t oh = c->sh != 0 ? (size_t)floor((double)c->h * c->sh) : c->oh;
  size_t ow = c->sh != 0 ? (size_t)floor((double)c->w * c->sw) : c->ow;
  double sh = c->sh != 0 ? (double)(float)c->sh : (double)c->oh / (double)c->h;
  double sw = c->sh != 0 ? (double)(float)c->sw : (double)c->ow / (double)c->w;
  if (c->keep != NULL) {
    /* Without axes the batch and channel axes' sizes (2 / 2) count too. */
    int lt = strcmp(c->keep, "not_larger") == 0;
    sh = sw = lt ? fmin(sh, sw) : fmax(sh, sw);
    if (!c->axes)
      sh = sw = lt ? fmin(sh, 1) : fmax(sh, 1);
    oh = (size_t)nearbyint(sh * (double)c->h);
    ow = (size_t)nearbyint(sw * (double)c->w);
  }
  ck_assert_uint_eq(out.shape.dim[2], oh);
  ck_assert_uint_eq(out.shape.dim[3], ow);
  for (size_t p = 0; p < 4; p++)
    for (size_t y = 0; y < oh; y++)
      for (size_t x = 0; x < ow; x++) {
        double want = ref_2d(in.data + p * c->h * c->w, c->h, c->w, sh, sw, oh, ow, y, x);
        double got = out.data[(p * oh + y) * ow + x];
        ck_assert_msg(fabs(got - want) <= 1e-9, "case %d (%s %s): plane %zu [%zu,%zu] %.12g, want %.12g",
                      _i, c->mode, c->ctm != NULL ? c->ctm : "half_pixel", p, y, x, got, want);
      }
  mpc_ftensor_close(&out);
  harness_result_t r = harness_check_private(&g, &w, 2, &in, 2e-4, 1);
  ck_assert_uint_eq(r.plan_rounds, 0);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Sizes from the file that would make an axis's interpolation matrix wrap
 * size_t (2^40 input columns times 2^24 output ones: 2^64, 0 elements
 * allocated then 2^40 written) are refused with a clear error, not a crash
 * (a reviewer's reproducer, under AddressSanitizer). */
START_TEST(test_resize_matrix_too_large) {
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(1, (int64_t)1 << 40));
  ob_init_f(b, "roi", 1, I64(0), (double[]){0});
  ob_init_f(b, "scales", 1, I64(0), (double[]){0});
  ob_init_i64(b, "sizes", 2, I64(1, (int64_t)1 << 24));
  Onnx__NodeProto *n = ob_node(b, "Resize", "rs", "x,roi,scales,sizes", "y");
  ob_attr_s(b, n, "mode", "linear");
  ob_output(b, "y");
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  char err[512] = "";
  mpc_graph_t g;
  mpc_weights_t w;
  int rc = mpc_onnx_load_buffer(buf, len, &g, &w, err, sizeof err);
  free(buf);
  ob_free(b);
  ck_assert_int_ne(rc, 0);
  ck_assert_msg(strstr(err, "rs") != NULL, "%s", err);
}
END_TEST

/* tf_crop_and_resize with an extrapolation value: the rows outside the roi
 * hold it, whatever the input. */
START_TEST(test_crop_extrapolation) {
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 4, I64(1, 1, 4, 4));
  ob_init_f(b, "roi", 1, I64(8), (double[]){0, 0, 0.4, 0.6, 1, 1, 1.2, 1.7});
  ob_init_f(b, "scales", 1, I64(0), (double[]){0});
  ob_init_i64(b, "sizes", 4, I64(1, 1, 3, 3));
  Onnx__NodeProto *n = ob_node(b, "Resize", "crop", "x,roi,scales,sizes", "y");
  ob_attr_s(b, n, "mode", "linear");
  ob_attr_s(b, n, "coordinate_transformation_mode", "tf_crop_and_resize");
  ob_attr_f(b, n, "extrapolation_value", 10.0f);
  ob_output(b, "y");
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  char err[512];
  mpc_graph_t g;
  mpc_weights_t w;
  int rc = mpc_onnx_load_buffer(buf, len, &g, &w, err, sizeof err);
  free(buf);
  ob_free(b);
  ck_assert_msg(rc == 0, "import failed: %s", err);
  mpc_shape_t s = {4, {1, 1, 4, 4}};
  mpc_ftensor_t in, out;
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  for (size_t i = 0; i < 16; i++)
    in.data[i] = (double)i + 1;
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, &out), 0);
  /* ONNX's expected output (resize.py, tf_crop_and_resize_extrapolation_value). */
  static const double want[9] = {7.6, 10, 10, 12.4, 10, 10, 10, 10, 10};
  for (size_t i = 0; i < 9; i++)
    ck_assert_msg(fabs(out.data[i] - want[i]) < 1e-5, "[%zu] %g, want %g", i, out.data[i],
                  want[i]);
  mpc_ftensor_close(&out);
  harness_result_t r = harness_check_private(&g, &w, 1, &in, 1e-3, 1);
  ck_assert_uint_eq(r.plan_rounds, 0);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

Suite *resize_suite(void) {
  Suite *s = suite_create("resize");
  TCase *tc = tcase_create("modes");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_resize_case, 0, (int)(sizeof cases / sizeof cases[0]));
  tcase_add_test(tc, test_crop_extrapolation);
  tcase_add_test(tc, test_resize_matrix_too_large);
  suite_add_tcase(s, tc);
  return s;
}
