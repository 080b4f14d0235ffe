/* test_smooth.c - Check suite "smooth": the smooth-function gates
 * (mpc/src/gate_smooth.c) run privately (every role a thread over the
 * in-memory hub, tests/mpc/harness.c) on a sweep of each function's whole
 * input range, clamp regions included, against the double-precision
 * function: the error must stay within the bound the README states (at
 * f = 16). Each sweep takes every 2^-7 step of the range plus a jitter below
 * it (fixed splitmix64 seed), so every piece and every breakpoint is hit.
 * The inputs come as a client's masked input (scale f, no rounds before the
 * gate) and as the untruncated product of a MatMul (scale 2f: the gate opens
 * it and drops f low bits), and the rounds and key bytes are checked too.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_build.h"
#include "proto_harness.h"

Suite *smooth_suite(void);

typedef struct {
  mpc_op_t op;
  double lo, hi;   /* the sweep: the private domain and the clamps around it */
  double bound;    /* the stated bound at f = 16 */
  int rel;         /* 1: relative error (reciprocal, inverse square root) */
} sm_case_t;

/* The bounds of the README's table. */
static const sm_case_t cases[] = {
    {MPC_OP_SIGMOID, -24, 24, 2e-4, 0},    {MPC_OP_TANH, -12, 12, 2e-4, 0},
    {MPC_OP_EXP, -24, 0, 2e-4, 0},         {MPC_OP_ERF, -6, 6, 2e-4, 0},
    {MPC_OP_GELU, -8, 8, 2e-4, 0},         {MPC_OP_GELU_TANH, -8, 8, 2e-4, 0},
    {MPC_OP_RECIP, 0.25, 64, 1.5e-3, 1},      {MPC_OP_RSQRT, 1.0 / 256, 64, 1.5e-3, 1},
    {MPC_OP_SQRT, 0, 64, 5e-3, 0},
    /* A graph's Exp and Reciprocal also take positive and negative inputs
     * (the final floor of a negative reciprocal adds to its fit's error
     * where the positive side's partly cancel). */
    {MPC_OP_EXP, 0, 4, 2e-4, 1},           {MPC_OP_RECIP, -64, -0.25, 2e-3, 1},
    /* The inverse square root's low end densely (its pieces there are
     * narrower than the sweep's usual step; a LayerNorm of a small-variance
     * row lands there: the ViT's class token). A computed input loses up
     * to two units of 2^-16 to its truncation, 3.9e-3 of the result at
     * x = 1/256 (half the relative error of the input). */
    {MPC_OP_RSQRT, 1.0 / 256, 1.0 / 16, 4e-3, 1},
};

/* The product case's weight: x / WPROD times it is x, with low bits that
 * make the gate's carry matter. */
#define WPROD 0.7109375

/* in -> [MatMul by the 1x1 weight WPROD if product] -> op -> out, batch n. */
static void build(mpc_graph_t *g, mpc_weights_t *w, mpc_op_t op, size_t n, int product,
                  double inbound) {
  mpc_graph_init(g);
  size_t d[2] = {n, 1};
  int x = mpc_graph_input(g, "x", 2, d);
  ck_assert_int_ge(x, 0);
  int p = -1;
  if (product) {
    size_t wd[2] = {1, 1};
    p = mpc_graph_param(g, "w", 2, wd);
    ck_assert_int_ge(p, 0);
    x = mpc_graph_op(g, MPC_OP_MATMUL, x, p, -1, NULL, "mm");
    ck_assert_int_ge(x, 0);
  }
  int y = mpc_graph_op(g, op, x, -1, -1, NULL, "f");
  ck_assert_int_ge(y, 0);
  ck_assert_int_ge(mpc_graph_op(g, MPC_OP_OUTPUT, y, -1, -1, NULL, "out"), 0);
  ck_assert_int_eq(mpc_weights_init(w, g), 0);
  if (product)
    w->param[p].data[0] = WPROD;
  g->input_bound = product ? inbound / WPROD : inbound;
  ck_assert_int_eq(mpc_graph_set_bounds(g, w), 0);
}

/* Sweeps case c privately; returns the largest error (relative if c->rel). */
static double sweep(const sm_case_t *c, int product, unsigned *rounds, double *keyb) {
  const double step = fmin(1.0 / 128, (c->hi - c->lo) / 1024);
  size_t n = (size_t)((c->hi - c->lo) / step) + 1;
  mpc_graph_t g;
  mpc_weights_t w;
  build(&g, &w, c->op, n, product, fmax(fabs(c->lo), fabs(c->hi)));
  mpc_shape_t s = {2, {n, 1}};
  mpc_ftensor_t in, out;
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  uint64_t seed = 0x5eed0000u + (uint64_t)c->op;
  for (size_t i = 0; i < n; i++)
    in.data[i] = fmin(c->hi, c->lo + step * (double)i + harness_uniform(&seed, 0, step));
  in.data[0] = c->lo;
  in.data[n - 1] = c->hi;
  for (size_t i = 0; product && i < n; i++)
    in.data[i] /= WPROD;
  harness_result_t res;
  int rc = harness_run(&g, &w, 0, &in, &out, 1, NULL, NULL, &res);
  ck_assert_msg(rc == 0, "%s: private run failed: %s", mpc_op_name(c->op), tandem_strerror(rc));
  mpc_ftensor_t refo;
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, &refo), 0);
  double worst = 0, at = 0;
  for (size_t i = 0; i < n; i++) {
    double ref = refo.data[i];
    double e = fabs(out.data[i] - ref);
    if (c->rel)
      e /= fabs(ref);
    if (!(e <= worst)) {
      worst = e;
      at = in.data[i] * (product ? WPROD : 1);
    }
  }
  *rounds = res.plan_rounds;
  /* Key bytes per element of the smooth gate and of its truncation. */
  mpc_plan_t *plan;
  char err[200];
  ck_assert_int_eq(mpc_plan_new(&plan, &g, 0, err, sizeof err), 0);
  *keyb = 0;
  for (size_t i = 0; i < mpc_plan_ngates(plan); i++) {
    mpc_gate_info_t gi;
    ck_assert_int_eq(mpc_plan_gate(plan, i, &gi), 0);
    if (strcmp(gi.label, "f") == 0)
      *keyb += (double)gi.key_bytes / (double)n;
  }
  mpc_plan_free(plan);
  fprintf(stderr, "smooth %-10s %s: max %s error %.3g (at x = %.5f), %u rounds, %.0f key bytes/element\n",
          mpc_op_name(c->op), product ? "scale 2f" : "scale f ", c->rel ? "relative" : "absolute",
          worst, at, *rounds, *keyb);
  mpc_ftensor_close(&in);
  mpc_ftensor_close(&out);
  mpc_ftensor_close(&refo);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  return worst;
}

START_TEST(test_smooth_sweep) {
  const sm_case_t *c = &cases[_i];
  unsigned rounds;
  double keyb;
  double e = sweep(c, 0, &rounds, &keyb);
  ck_assert_msg(e <= c->bound, "%s: error %g exceeds the stated bound %g", mpc_op_name(c->op), e,
                c->bound);
  /* A client's masked input: the gate opens nothing; its truncation, one round. */
  ck_assert_uint_eq(rounds, 1);
  ck_assert(keyb > 0);
}
END_TEST

START_TEST(test_smooth_sweep_product) {
  const sm_case_t *c = &cases[_i];
  unsigned rounds;
  double keyb;
  double e = sweep(c, 1, &rounds, &keyb);
  /* The gate reads 16 of the 32 fractional bits and the carry below them:
   * at most one unit of 2^-16 more on the input. */
  ck_assert_msg(e <= c->bound, "%s (scale 2f): error %g exceeds the stated bound %g",
                mpc_op_name(c->op), e, c->bound);
  /* Opening the product, then the truncation. */
  ck_assert_uint_eq(rounds, 2);
}
END_TEST

/* Softmax along the last axis: rows of n (17: a ViT's tokens; 128: a
 * BERT-tiny sequence, whose sums exceed the reciprocal's domain and take
 * one round more), inputs in [-12, 12], with ties (a flat row, a tie at a
 * row's maximum); the error against the double softmax within 2e-3 (the
 * reciprocal's 1.5e-3 relative, the exp's 1e-4), and the rounds: the
 * maximum's (n = 17: every pair compared, the winner picked, one round on
 * the masked input; n = 128: the tree's ceil(log2 n) levels), exp and
 * reciprocal two each, the product's masking one (and the k = 2 scaling
 * one). */
START_TEST(test_smooth_softmax) {
  const size_t ns[2] = {17, 128}, rows = 24;
  const unsigned want_rounds[2] = {1 + 2 + 2 + 1, 7 + 2 + 2 + 1 + 1};
  size_t n = ns[_i];
  mpc_graph_t g;
  mpc_weights_t w;
  mpc_graph_init(&g);
  size_t d[2] = {rows, n};
  int x = mpc_graph_input(&g, "x", 2, d);
  int y = mpc_graph_op(&g, MPC_OP_SOFTMAX, x, -1, -1, NULL, "softmax");
  ck_assert_int_ge(y, 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "out"), 0);
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  g.input_bound = 12;
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  mpc_shape_t s2 = {2, {rows, n}};
  mpc_ftensor_t in, out, ref;
  ck_assert_int_eq(mpc_ftensor_init(&in, &s2), 0);
  uint64_t seed = 0x50f7 + n;
  harness_fill(&in, &seed, -12, 12);
  for (size_t r = 0; r < rows; r++) /* ties and a flat row too */
    in.data[r * n + (r % n)] = r % 3 == 0 ? in.data[r * n] : in.data[r * n + (r % n)];
  for (size_t j = 0; j < n; j++)
    in.data[j] = 0.5;
  in.data[2 * n + 3] = in.data[2 * n + 9] = 12.0; /* a tie at the maximum */
  harness_result_t res;
  int rc = harness_run(&g, &w, 0, &in, &out, 1, NULL, NULL, &res);
  ck_assert_msg(rc == 0, "softmax: private run failed: %s", tandem_strerror(rc));
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, &ref), 0);
  double e = harness_max_abs_diff(&out, &ref);
  fprintf(stderr, "smooth Softmax n=%zu: max absolute error %.3g, %u rounds\n", n, e,
          res.plan_rounds);
  ck_assert_msg(e <= 2e-3, "softmax n=%zu: error %g exceeds 2e-3", n, e);
  ck_assert_uint_eq(res.plan_rounds, want_rounds[_i]);
  mpc_ftensor_close(&in);
  mpc_ftensor_close(&out);
  mpc_ftensor_close(&ref);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Layer normalization along the last axis (eps = 1e-5 the owner's): rows
 * of uniform values of half-widths 0.3 to 12 (variances 0.03 to 48, inside
 * the inverse square root's domain), within 5e-3 of the double result, in 5
 * rounds when the row's length is a power of two (n = 64: the mean by n x -
 * S, the variance's division a shift of the inverse square root's input)
 * and 6 otherwise (n = 48). */
START_TEST(test_smooth_layernorm) {
  static const size_t ns[] = {64, 48};
  static const unsigned want_rounds[] = {5, 6};
  const size_t n = ns[_i], rows = 16;
  mpc_graph_t g;
  mpc_weights_t w;
  mpc_graph_init(&g);
  size_t d[2] = {rows, n}, one[1] = {1};
  int x = mpc_graph_input(&g, "x", 2, d);
  int eps = mpc_graph_param(&g, "eps", 1, one);
  int y = mpc_graph_op(&g, MPC_OP_LNORM, x, eps, -1, NULL, "ln");
  ck_assert_int_ge(y, 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "out"), 0);
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  w.param[eps].data[0] = 1e-5;
  g.input_bound = 12;
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  mpc_shape_t s2 = {2, {rows, n}};
  mpc_ftensor_t in, out, ref;
  ck_assert_int_eq(mpc_ftensor_init(&in, &s2), 0);
  uint64_t seed = 0x1a7e;
  for (size_t r = 0; r < rows; r++) {
    double a = 0.3 * pow(40.0, (double)r / (double)(rows - 1));
    for (size_t j = 0; j < n; j++)
      in.data[r * n + j] = harness_uniform(&seed, -a, a);
  }
  harness_result_t res;
  int rc = harness_run(&g, &w, 0, &in, &out, 1, NULL, NULL, &res);
  ck_assert_msg(rc == 0, "layernorm: private run failed: %s", tandem_strerror(rc));
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, &ref), 0);
  double e = harness_max_abs_diff(&out, &ref);
  fprintf(stderr, "smooth LayerNorm n=%zu: max absolute error %.3g, %u rounds\n", n, e,
          res.plan_rounds);
  ck_assert_msg(e <= 5e-3, "layernorm: error %g exceeds 5e-3", e);
  ck_assert_uint_eq(res.plan_rounds, want_rounds[_i]);
  mpc_ftensor_close(&in);
  mpc_ftensor_close(&out);
  mpc_ftensor_close(&ref);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* The ONNX importer's forms, private against plaintext: a transformer
 * block's tail as PyTorch 1.13 exports it at opset 17, LayerNormalization
 * (axis -1, Scale and B initializers, one output) on [N, 4, 16], then Erf,
 * Tanh, Sigmoid and Softmax along axis 1 (not the last: a transpose around
 * the IR's softmax). Tolerance 1e-2: LayerNorm's 2e-3 relative times the
 * scale, and the smooth gates' bounds. */
START_TEST(test_smooth_onnx) {
  ob_t *b = ob_new(17);
  ob_input(b, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 3, (const int64_t[]){-1, 4, 16});
  double gam[16], bet[16];
  for (int i = 0; i < 16; i++) {
    gam[i] = 0.5 + 0.0625 * i;
    bet[i] = -0.25 + 0.03125 * i;
  }
  ob_init_f(b, "g", 1, (const int64_t[]){16}, gam);
  ob_init_f(b, "b", 1, (const int64_t[]){16}, bet);
  Onnx__NodeProto *n = ob_node(b, "LayerNormalization", "ln", "x,g,b", "h");
  ob_attr_i(b, n, "axis", -1);
  ob_attr_f(b, n, "epsilon", 1e-5f);
  ob_node(b, "Erf", "erf", "h", "e");
  ob_node(b, "Tanh", "tanh", "e", "t");
  ob_node(b, "Sigmoid", "sig", "h", "s");
  n = ob_node(b, "Softmax", "sm", "h", "y");
  ob_attr_i(b, n, "axis", 1);
  ob_output(b, "t");
  ob_output(b, "s");
  ob_output(b, "y");
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  mpc_graph_t g;
  mpc_weights_t w;
  char err[512];
  int rc = mpc_onnx_load_buffer(buf, len, &g, &w, err, sizeof err);
  free(buf);
  ob_free(b);
  ck_assert_msg(rc == 0, "import failed (%s): %s", tandem_err_name(rc), err);
  mpc_shape_t s3 = {3, {3, 4, 16}};
  mpc_ftensor_t in;
  ck_assert_int_eq(mpc_ftensor_init(&in, &s3), 0);
  uint64_t seed = 0x0a11;
  harness_fill(&in, &seed, -3, 3);
  harness_check_private(&g, &w, 3, &in, 1e-2, 1);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

Suite *smooth_suite(void) {
  Suite *s = suite_create("smooth");
  TCase *tc = tcase_create("sweep");
  tcase_set_timeout(tc, 600);
  int nc = (int)(sizeof cases / sizeof cases[0]);
  tcase_add_loop_test(tc, test_smooth_sweep, 0, nc);
  tcase_add_loop_test(tc, test_smooth_sweep_product, 0, nc);
  tcase_add_loop_test(tc, test_smooth_softmax, 0, 2);
  tcase_add_loop_test(tc, test_smooth_layernorm, 0, 2);
  tcase_add_test(tc, test_smooth_onnx);
  suite_add_tcase(s, tc);
  return s;
}
