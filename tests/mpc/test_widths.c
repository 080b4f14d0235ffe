/* test_widths.c - Check suite "widths": the per-gate widths the model owner
 * publishes (mpc_graph_set_bounds, mpc/src/bound.c's sign-part interval
 * analysis) against values at each gate's edge, run privately (every role a
 * thread over the in-memory hub) and compared with the float evaluator.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "proto_harness.h"

Suite *widths_suite(void);

#define K 16 /* inputs: four blocks of four */
#define N 4  /* first layer: neuron j reads block j only */
#define O 3  /* second layer */
#define F 16

static double pos(double v) { return v > 0 ? v : 0; }
static double neg(double v) { return v < 0 ? -v : 0; }

/* The exponent the owner publishes for a bound M (bound.c's slack). */
static int exp_of(double M) {
  int e;
  frexp(1.01 * M + ldexp(1.0, 10 - F), &e);
  return e;
}

/* Two ReLU layers on inputs declared in [0, 1] (input_bound 1, input_min 0).
 * The first layer's neuron j reads only block j of the input, so every
 * first-layer neuron can sit at its largest or least value at once, and the
 * second layer's worst case is reachable too. Each gate's bound is the
 * sign-part one, computed here: layer 1, P_j = sum_k w+_kj + b+_j and
 * N_j = sum_k w-_kj + b-_j (the inputs have no negative part); layer 2, on
 * the ReLU's [0, P_j], P_l = sum_j w+_jl P_j + b+_l and N_l = sum_j w-_jl P_j
 * + b-_l. The |W| analysis of the symmetric input [-1, 1] would give
 * sum |w| + |b| and sum_j |w_jl| M_j + |b_l|, at least one bit more for
 * both gates with these weights (asserted). Rows at each gate's edge,
 * through the private protocol, must match the float evaluator. The gate
 * keeps one bit of margin (its arithmetic holds up to twice its bound,
 * gate_fss.c), so a bound one bit short still passes, and one two bits
 * short gives wrong results here (the comparison wraps: checked when
 * written). A negative input, or one beyond 1, is refused by the client. */
START_TEST(test_sign_widths_at_the_edge) {
  uint64_t seed = 2027;
  mpc_graph_t g;
  mpc_graph_init(&g);
  g.frac_bits = F;
  size_t rows = 2 * N + 2 * O;
  size_t xd[2] = {rows, K}, w0d[2] = {K, N}, b0d[1] = {N}, w1d[2] = {N, O}, b1d[1] = {O};
  int x = mpc_graph_input(&g, "x", 2, xd);
  int w0 = mpc_graph_param(&g, "w0", 2, w0d), b0 = mpc_graph_param(&g, "b0", 1, b0d);
  int w1 = mpc_graph_param(&g, "w1", 2, w1d), b1 = mpc_graph_param(&g, "b1", 1, b1d);
  int h0 = mpc_graph_op(&g, MPC_OP_MATMUL, x, w0, -1, NULL, "mm0");
  int a0 = mpc_graph_op(&g, MPC_OP_ADD, h0, b0, -1, NULL, "bias0");
  int r0 = mpc_graph_op(&g, MPC_OP_RELU, a0, -1, -1, NULL, "relu0");
  int h1 = mpc_graph_op(&g, MPC_OP_MATMUL, r0, w1, -1, NULL, "mm1");
  int a1 = mpc_graph_op(&g, MPC_OP_ADD, h1, b1, -1, NULL, "bias1");
  int r1 = mpc_graph_op(&g, MPC_OP_RELU, a1, -1, -1, NULL, "relu1");
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, r0, -1, -1, NULL, "r0"), 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, r1, -1, -1, NULL, "r1"), 0);
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  double *W0 = w.param[w0].data, *B0 = w.param[b0].data;
  double *W1 = w.param[w1].data, *B1 = w.param[b1].data;
  harness_fill(&w.param[w0], &seed, -3, 3);
  for (size_t k = 0; k < K; k++)
    for (size_t j = 0; j < N; j++)
      if (k / (K / N) != j)
        W0[k * N + j] = 0;
  harness_fill(&w.param[b0], &seed, -0.5, 0.5);
  harness_fill(&w.param[w1], &seed, -1, 1);
  harness_fill(&w.param[b1], &seed, -0.5, 0.5);
  /* The bounds, sign-part and |W|. */
  double P1[N], M1 = 0, P1max = 0, M1w = 0, M1wj[N], M2 = 0, M2w = 0;
  for (size_t j = 0; j < N; j++) {
    double p = pos(B0[j]), n = neg(B0[j]), a = fabs(B0[j]);
    for (size_t k = 0; k < K; k++) {
      p += pos(W0[k * N + j]);
      n += neg(W0[k * N + j]);
      a += fabs(W0[k * N + j]);
    }
    P1[j] = p;
    P1max = fmax(P1max, p);
    M1 = fmax(M1, fmax(p, n));
    M1wj[j] = a;
    M1w = fmax(M1w, a);
  }
  for (size_t l = 0; l < O; l++) {
    double p = pos(B1[l]), n = neg(B1[l]), a = fabs(B1[l]);
    for (size_t j = 0; j < N; j++) {
      p += pos(W1[j * O + l]) * P1[j];
      n += neg(W1[j * O + l]) * P1[j];
      a += fabs(W1[j * O + l]) * M1wj[j];
    }
    M2 = fmax(M2, fmax(p, n));
    M2w = fmax(M2w, a);
  }
  int e1 = exp_of(M1), e2 = exp_of(M2);
  ck_assert_int_lt(e1, exp_of(M1w));
  ck_assert_int_lt(e2, exp_of(M2w));
  g.input_bound = 1;
  g.input_min = 0;
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  ck_assert_int_eq(g.mag_log2[a0], e1);
  ck_assert_int_eq(g.mag_log2[a1], e2);
  ck_assert_int_eq(g.mag_log2[r0], exp_of(P1max)); /* a ReLU keeps the positive part */
  /* Each ReLU's DCF takes L - f bits, L = e + 2f + 1. */
  mpc_plan_t *plan;
  ck_assert_int_eq(mpc_plan_new(&plan, &g, rows, NULL, 0), 0);
  unsigned want[2] = {(unsigned)e1 + F + 1, (unsigned)e2 + F + 1}, seen = 0;
  for (size_t i = 0; i < mpc_plan_ngates(plan); i++) {
    mpc_gate_info_t gi;
    ck_assert_int_eq(mpc_plan_gate(plan, i, &gi), 0);
    if (strcmp(gi.kind, "relu+trunc") != 0)
      continue;
    ck_assert_uint_lt(seen, 2);
    ck_assert_uint_eq(gi.dcf_bits, want[seen]);
    ck_assert_uint_eq(gi.key_bytes, rows * (seen ? O : N) * kern_dcf_key_bytes(want[seen], 3));
    seen++;
  }
  ck_assert_uint_eq(seen, 2);
  mpc_plan_free(plan);
  /* Rows 2j, 2j + 1: neuron j of layer 1 at its largest and least (block j
   * is 1 where its weight is positive, resp. negative). Rows 2N + 2l,
   * 2N + 2l + 1: neuron l of layer 2 at its largest and least: hidden j at
   * its largest where w1_jl has the sign wanted, at its least elsewhere. */
  mpc_ftensor_t in;
  mpc_shape_t s = {2, {rows, K}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  for (size_t j = 0; j < N; j++)
    for (size_t k = j * (K / N); k < (j + 1) * (K / N); k++) {
      in.data[2 * j * K + k] = W0[k * N + j] > 0;
      in.data[(2 * j + 1) * K + k] = W0[k * N + j] < 0;
    }
  for (size_t l = 0; l < O; l++)
    for (size_t j = 0; j < N; j++)
      for (size_t k = j * (K / N); k < (j + 1) * (K / N); k++)
        for (int dir = 0; dir < 2; dir++) {
          int high = (W1[j * O + l] > 0) == (dir == 0);
          in.data[(2 * N + 2 * l + (size_t)dir) * K + k] =
              high ? W0[k * N + j] > 0 : W0[k * N + j] < 0;
        }
  /* The rows reach each gate's bound to within the biases: more than a
   * quarter of the gate's range. */
  mpc_ftensor_t ref[2];
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, ref), 0);
  double top1 = 0, top2 = 0;
  for (size_t i = 0; i < rows * N; i++)
    top1 = fmax(top1, ref[0].data[i]);
  for (size_t i = 0; i < rows * O; i++)
    top2 = fmax(top2, ref[1].data[i]);
  ck_assert_msg(top1 > ldexp(1.0, e1 - 2), "layer 1 reaches only %g of 2^%d", top1, e1);
  ck_assert_msg(top2 > ldexp(1.0, e2 - 2), "layer 2 reaches only %g of 2^%d", top2, e2);
  mpc_ftensor_close(&ref[0]);
  mpc_ftensor_close(&ref[1]);
  double tol = harness_layer_bound(harness_layer_bound(0, K, 1, 3, F), N, M1, 1, F);
  harness_check_private(&g, &w, rows, &in, tol, 1);
  /* A negative input, or one beyond the bound, is refused by the client. */
  mpc_ftensor_t out[2];
  harness_result_t r;
  for (int bad = 0; bad < 2; bad++) {
    double keep = in.data[5];
    in.data[5] = bad ? 1.0 + ldexp(1.0, -20) : -ldexp(1.0, -20);
    ck_assert_int_ne(harness_run(&g, &w, rows, &in, out, 1, NULL, NULL, &r), 0);
    ck_assert_int_eq(r.rc[MPC_CLIENT], TANDEM_ERANGE);
    in.data[5] = keep;
  }
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* The sign-part analysis through the operators the |W| one treated alike:
 * a subtraction (its operand's parts swap), a negative MulC (swaps too), a
 * max pool and a Gemm with negative alpha and beta. Each published exponent
 * must bound the node's value on random admissible inputs and the extreme
 * ones (0 and 1 everywhere). */
START_TEST(test_sign_bounds_hold) {
  uint64_t seed = 31;
  mpc_graph_t g;
  mpc_graph_init(&g);
  size_t xd[4] = {1, 1, 4, 4}, wd[2] = {3, 16}, cd[1] = {3};
  int x = mpc_graph_input(&g, "x", 4, xd);
  mpc_attr_t pa;
  memset(&pa, 0, sizeof pa);
  pa.kh = pa.kw = 2;
  pa.strides[0] = pa.strides[1] = 2;
  int mp = mpc_graph_op(&g, MPC_OP_MAXPOOL, x, -1, -1, &pa, "pool");
  int d = mpc_graph_op(&g, MPC_OP_SUB, x, x, -1, NULL, "zero");
  mpc_attr_t mc;
  memset(&mc, 0, sizeof mc);
  mc.scalar = -2.5;
  int neg2 = mpc_graph_op(&g, MPC_OP_MULC, x, -1, -1, &mc, "neg");
  int sum = mpc_graph_op(&g, MPC_OP_ADD, neg2, d, -1, NULL, "sum");
  int fl = mpc_graph_op(&g, MPC_OP_RESHAPE, sum, -1, -1, NULL, "flat");
  int wn = mpc_graph_param(&g, "w", 2, wd), cn = mpc_graph_param(&g, "c", 1, cd);
  mpc_attr_t ga = harness_gemm_attr(1);
  ga.alpha = -0.75;
  ga.beta = -2;
  int y = mpc_graph_op(&g, MPC_OP_GEMM, fl, wn, cn, &ga, "gemm");
  int ry = mpc_graph_op(&g, MPC_OP_RELU, y, -1, -1, NULL, "relu");
  int nodes[6] = {mp, d, neg2, sum, y, ry};
  for (int i = 0; i < 6; i++) {
    ck_assert_int_ge(nodes[i], 0);
    ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, nodes[i], -1, -1, NULL, "o"), 0);
  }
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  harness_fill(&w.param[wn], &seed, -1, 1);
  harness_fill(&w.param[cn], &seed, -1, 1);
  g.input_bound = 1;
  g.input_min = 0;
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  /* -2.5 x in [-2.5, 0]: exponent 2 (2.5 * 1.01 + slack < 4). */
  ck_assert_int_eq(g.mag_log2[neg2], 2);
  mpc_ftensor_t in;
  mpc_shape_t s = {4, {1, 1, 4, 4}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  for (int trial = 0; trial < 50; trial++) {
    if (trial < 2)
      for (size_t j = 0; j < 16; j++)
        in.data[j] = trial;
    else
      harness_fill(&in, &seed, 0, 1);
    mpc_ftensor_t out[6];
    ck_assert_int_eq(mpc_eval_float(&g, &w, &in, out), 0);
    for (int i = 0; i < 6; i++) {
      size_t n = mpc_shape_numel(&out[i].shape);
      for (size_t j = 0; j < n; j++)
        ck_assert_msg(fabs(out[i].data[j]) < ldexp(1.0, g.mag_log2[nodes[i]]),
                      "node %d element %zu: %g beyond 2^%d", nodes[i], j, out[i].data[j],
                      g.mag_log2[nodes[i]]);
      mpc_ftensor_close(&out[i]);
    }
  }
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* A ReLU whose one consumer is a MaxPool runs after the pool (plan.c), so
 * the pool's max tree compares the values before the ReLU: its gates take
 * the bound of the ReLU's input, not of the ReLU's output. With negative
 * weights on non-negative inputs the convolution's values lie far below 0
 * and the ReLU's output in [0, 0.1]: sized by the ReLU's output, the tree's
 * comparisons wrap and the result is wrong (checked when written). */
START_TEST(test_pool_before_relu_bound) {
  uint64_t seed = 8;
  mpc_graph_t g;
  mpc_graph_init(&g);
  size_t xd[4] = {2, 1, 4, 4}, wd[4] = {1, 1, 3, 3}, bd[1] = {1};
  int x = mpc_graph_input(&g, "x", 4, xd);
  int wn = mpc_graph_param(&g, "w", 4, wd), bn = mpc_graph_param(&g, "b", 1, bd);
  mpc_attr_t ca;
  memset(&ca, 0, sizeof ca);
  ca.pads[0] = ca.pads[1] = ca.pads[2] = ca.pads[3] = 1;
  int c = mpc_graph_op(&g, MPC_OP_CONV, x, wn, bn, &ca, "conv");
  int r = mpc_graph_op(&g, MPC_OP_RELU, c, -1, -1, NULL, "relu");
  mpc_attr_t pa;
  memset(&pa, 0, sizeof pa);
  pa.kh = pa.kw = 2;
  pa.strides[0] = pa.strides[1] = 2;
  int mp = mpc_graph_op(&g, MPC_OP_MAXPOOL, r, -1, -1, &pa, "pool");
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, mp, -1, -1, NULL, "y"), 0);
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  harness_fill(&w.param[wn], &seed, -1, -0.5);
  w.param[bn].data[0] = 0.1;
  g.input_bound = 1;
  g.input_min = 0;
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  ck_assert_int_lt(g.mag_log2[r] + 4, g.mag_log2[c]);
  mpc_ftensor_t in;
  mpc_shape_t s = {4, {2, 1, 4, 4}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  harness_fill(&in, &seed, 0, 1);
  for (size_t j = 0; j < 4; j++)
    in.data[j] = 0; /* a window whose maximum is the bias: 0.1 */
  harness_check_private(&g, &w, 2, &in, harness_layer_bound(0, 9, 1, 1, F), 2);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

Suite *widths_suite(void) {
  Suite *s = suite_create("widths");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_sign_widths_at_the_edge);
  tcase_add_test(tc, test_sign_bounds_hold);
  tcase_add_test(tc, test_pool_before_relu_bound);
  suite_add_tcase(s, tc);
  return s;
}
