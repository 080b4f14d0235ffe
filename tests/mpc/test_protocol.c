/* test_protocol.c - every gate and whole networks run privately (all five
 * roles as threads over the in-memory hub) against the float reference
 * (mpc_eval_float), with the round and byte counts the design promises.
 *
 * Error bound used by these tests. Encoding rounds inputs and weights to
 * 2^-(f+1); each truncation is a floor plus at most one dropped carry, so it
 * errs by less than 2 * 2^-f. For a layer y = W x + b with K inputs, |x| <= X,
 * |W| <= A, and an input error d, the output error is at most
 *   K A d + K (X + A) 2^-(f+1) + 2^-(f+1) + 2 * 2^-f,
 * and ReLU and max do not increase it. harness_layer_bound() applies this per layer.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_harness.h"

static uint64_t online_sent(const harness_result_t *r, mpc_role_t role) {
  uint64_t s = 0;
  for (int to = 0; to < MPC_NROLES; to++)
    s += r->stats[role].sent[to][MPC_PHASE_ONLINE];
  return s;
}

/* ---- tests ------------------------------------------------------------------- */

START_TEST(test_linear_gemm) {
  uint64_t seed = 11;
  size_t sizes[2] = {7, 5};
  mpc_graph_t g;
  mpc_weights_t w;
  harness_build_mlp(&g, &w, sizes, 2, 3, 16, &seed, 1.0);
  mpc_ftensor_t in;
  mpc_shape_t s = {2, {3, 7}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  harness_fill(&in, &seed, -2, 2);
  double tol = harness_layer_bound(0, 7, 2, 1, 16);
  harness_result_t r = harness_check_private(&g, &w, 3, &in, tol, 2);
  ck_assert_uint_eq(r.plan_rounds, 0);
  ck_assert_uint_eq(r.stats[MPC_P0].rounds[MPC_PHASE_ONLINE], 0);
  ck_assert_uint_eq(r.stats[MPC_P1].rounds[MPC_PHASE_ONLINE], 0);
  /* Online, a linear layer sends only the output shares to the client. */
  ck_assert_uint_eq(online_sent(&r, MPC_P0), 2 * 3 * 5 * 8);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

static void mlp_case(size_t batch, unsigned f, int queries) {
  uint64_t seed = 1000 + batch + f;
  size_t sizes[4] = {784, 128, 128, 10};
  mpc_graph_t g;
  mpc_weights_t w;
  double wmax = 0.05;
  harness_build_mlp(&g, &w, sizes, 4, batch, f, &seed, wmax);
  mpc_ftensor_t in;
  mpc_shape_t s = {2, {batch, 784}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  harness_fill(&in, &seed, 0, 1);
  double d = harness_layer_bound(0, 784, 1, wmax, f);
  d = harness_layer_bound(d, 128, 784 * wmax + wmax, wmax, f);
  d = harness_layer_bound(d, 128, 128 * (784 * wmax + wmax) * wmax, wmax, f);
  harness_result_t r = harness_check_private(&g, &w, batch, &in, d, queries);
  /* Two ReLU layers: two rounds each, whatever the batch. */
  ck_assert_uint_eq(r.plan_rounds, 4);
  ck_assert_uint_eq(r.stats[MPC_P0].rounds[MPC_PHASE_ONLINE], 4u * (unsigned)queries);
  ck_assert_uint_eq(r.stats[MPC_P1].rounds[MPC_PHASE_ONLINE], 4u * (unsigned)queries);
  if (batch == 1) {
    uint64_t per_query = online_sent(&r, MPC_P0) / (uint64_t)queries;
    ck_assert_msg(per_query <= 8192, "P0 sends %llu online bytes per query",
                  (unsigned long long)per_query);
    ck_assert_uint_eq(online_sent(&r, MPC_P1), online_sent(&r, MPC_P0));
  }
  /* The dealer receives nothing, ever. */
  for (int from = 0; from < MPC_NROLES; from++)
    for (int ph = 0; ph < MPC_NPHASES; ph++)
      ck_assert_uint_eq(r.stats[MPC_DEALER].recvd[from][ph], 0);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}

START_TEST(test_mlp_batch1) { mlp_case(1, 16, 3); }
END_TEST
START_TEST(test_mlp_batch100) { mlp_case(100, 16, 1); }
END_TEST
START_TEST(test_mlp_frac_bits) {
  mlp_case(4, 12, 1);
  mlp_case(4, 20, 1);
}
END_TEST

/* ReLU straight on the client's masked input: no round at all. The plan's
 * bound L is the graph's bound_bits, 62 by default at every f (graph.c), and
 * the encoder accepts exactly the reals with |x| * 2^f < 2^62, so the gate
 * sees every encodable value: the largest, just below 2^(62-f), must come out
 * right, and 2^(62-f) itself is refused by the client with TANDEM_ERANGE. */
START_TEST(test_relu_on_input) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  ck_assert_uint_eq(g.bound_bits, 62);
  size_t dim[2] = {1, 12};
  int x = mpc_graph_input(&g, "x", 2, dim);
  int y = mpc_graph_op(&g, MPC_OP_RELU, x, -1, -1, NULL, "relu");
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "y"), 0);
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  mpc_ftensor_t in;
  mpc_shape_t s = {2, {1, 12}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  double edge = nextafter(ldexp(1.0, 62 - 16), 0); /* scaled: 2^62 - 512 */
  double v[12] = {0, 1e-5, -1e-5, 1.0 / 65536, -1.0 / 65536, 3.25, -3.25,
                  edge, -edge, edge / 3, -edge / 3, 0.5};
  memcpy(in.data, v, sizeof v);
  harness_result_t r = harness_check_private(&g, &w, 1, &in, ldexp(1.0, -16), 1);
  ck_assert_uint_eq(r.plan_rounds, 0);
  mpc_ftensor_t out[1];
  for (int sign = -1; sign <= 1; sign += 2) {
    in.data[7] = sign * ldexp(1.0, 62 - 16);
    ck_assert_int_ne(harness_run(&g, &w, 1, &in, out, 1, NULL, NULL, &r), 0);
    ck_assert_int_eq(r.rc[MPC_CLIENT], TANDEM_ERANGE);
  }
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* The gates at f = 12, 16 and 20: a bilinear layer (MatMul by a weight), the
 * standalone truncation between two products with the opening after it, a
 * ReLU with its truncation fused in, and a 2x2 MaxPool, on random data. */
static void gates_case(unsigned f) {
  uint64_t seed = 700 + f;
  mpc_graph_t g;
  mpc_graph_init(&g);
  g.frac_bits = f;
  size_t xd[2] = {2, 12}, w0d[2] = {12, 8}, w1d[2] = {8, 16};
  int x = mpc_graph_input(&g, "x", 2, xd);
  int w0 = mpc_graph_param(&g, "w0", 2, w0d), w1 = mpc_graph_param(&g, "w1", 2, w1d);
  int h0 = mpc_graph_op(&g, MPC_OP_MATMUL, x, w0, -1, NULL, "mm0");
  int h1 = mpc_graph_op(&g, MPC_OP_MATMUL, h0, w1, -1, NULL, "mm1");
  int r = mpc_graph_op(&g, MPC_OP_RELU, h1, -1, -1, NULL, "relu");
  mpc_node_t rs;
  memset(&rs, 0, sizeof rs);
  rs.op = MPC_OP_RESHAPE;
  rs.in[0] = r;
  rs.in[1] = rs.in[2] = -1;
  rs.shape.ndim = 4;
  rs.shape.dim[0] = 2;
  rs.shape.dim[1] = 1;
  rs.shape.dim[2] = rs.shape.dim[3] = 4;
  snprintf(rs.name, sizeof rs.name, "to_image");
  int img = mpc_graph_add(&g, &rs, NULL, 0);
  ck_assert_int_ge(img, 0);
  mpc_attr_t pa;
  memset(&pa, 0, sizeof pa);
  pa.kh = pa.kw = 2;
  pa.strides[0] = pa.strides[1] = 2;
  int mp = mpc_graph_op(&g, MPC_OP_MAXPOOL, img, -1, -1, &pa, "pool");
  ck_assert_int_ge(mp, 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, mp, -1, -1, NULL, "y"), 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, h0, -1, -1, NULL, "h0"), 0);
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  harness_fill(&w.param[w0], &seed, -1, 1);
  harness_fill(&w.param[w1], &seed, -1, 1);
  mpc_ftensor_t in;
  mpc_shape_t s = {2, {2, 12}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  harness_fill(&in, &seed, -2, 2);
  double d = harness_layer_bound(harness_layer_bound(0, 12, 2, 1, f), 8, 24, 1, f);
  harness_result_t res = harness_check_private(&g, &w, 2, &in, d, 1);
  /* Truncation (1) + opening (1) + ReLU (1) + two max levels (2). */
  ck_assert_uint_eq(res.plan_rounds, 5);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}

START_TEST(test_gates_frac_bits) {
  for (unsigned f = 12; f <= 20; f += 4)
    gates_case(f);
}
END_TEST

/* Values near the edge the plan really uses, at f = 12, 16, 20 (L = 62):
 * a ReLU on the input at the encoder's limit |x| < 2^(62-f); a MaxPool on the
 * input at the same limit, whose comparisons open b - a with |b - a| * 2^f up
 * to 2^63 - 2^10 either way (at L = 62 the comparison works on n = L + 2 = 64
 * bits, the whole ring, so the sign of any int64 difference is exact); and a
 * ReLU after a product, whose scale-2f value must satisfy |y| < 2^(62-2f)
 * (here 0.9 of it; beyond, the truncation's wrap term is wrong for some masks
 * and the result is garbage, which nothing refuses). */
static void edges_case(unsigned f) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  g.frac_bits = f;
  size_t xd[2] = {1, 4}, pd[4] = {1, 2, 2, 2}, wd[2] = {1, 1};
  int x = mpc_graph_input(&g, "x", 2, xd);
  int rx = mpc_graph_op(&g, MPC_OP_RELU, x, -1, -1, NULL, "relu_in");
  int p = mpc_graph_input(&g, "p", 4, pd);
  mpc_attr_t pa;
  memset(&pa, 0, sizeof pa);
  pa.kh = pa.kw = 2;
  int mp = mpc_graph_op(&g, MPC_OP_MAXPOOL, p, -1, -1, &pa, "pool_in");
  size_t qd[2] = {4, 1};
  int q = mpc_graph_input(&g, "q", 2, qd);
  int wq = mpc_graph_param(&g, "wq", 2, wd);
  int hq = mpc_graph_op(&g, MPC_OP_MATMUL, q, wq, -1, NULL, "mm");
  int rq = mpc_graph_op(&g, MPC_OP_RELU, hq, -1, -1, NULL, "relu_prod");
  ck_assert_int_ge(rq, 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, rx, -1, -1, NULL, "y0"), 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, mp, -1, -1, NULL, "y1"), 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, rq, -1, -1, NULL, "y2"), 0);
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  double v = sqrt(0.9) * ldexp(1.0, 31 - (int)f);
  w.param[wq].data[0] = v;
  mpc_ftensor_t in[3];
  mpc_shape_t s0 = {2, {1, 4}}, s1 = {4, {1, 2, 2, 2}}, s2 = {2, {4, 1}};
  ck_assert_int_eq(mpc_ftensor_init(&in[0], &s0), 0);
  ck_assert_int_eq(mpc_ftensor_init(&in[1], &s1), 0);
  ck_assert_int_eq(mpc_ftensor_init(&in[2], &s2), 0);
  double e62 = nextafter(ldexp(1.0, 62 - (int)f), 0);
  const double x0[4] = {e62, -e62, e62 / 2, -ldexp(1.0, -(int)f)};
  /* Two channels: the first comparison of each opens +-(2^63 - 2^10). */
  const double x1[8] = {-e62, e62, -e62 / 2, 0.25, e62, -e62, 0.25, -e62 / 2};
  const double x2[4] = {v, -v, v / 2, -v / 3};
  memcpy(in[0].data, x0, sizeof x0);
  memcpy(in[1].data, x1, sizeof x1);
  memcpy(in[2].data, x2, sizeof x2);
  double tol = harness_layer_bound(0, 1, v, v, f);
  harness_check_private(&g, &w, 0, in, tol, 1);
  for (int i = 0; i < 3; i++)
    mpc_ftensor_close(&in[i]);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}

START_TEST(test_edges_of_the_bound) {
  for (unsigned f = 12; f <= 20; f += 4)
    edges_case(f);
}
END_TEST

/* Two linear layers in a row: a standalone truncation (one round) and an
 * opening (one round). */
START_TEST(test_trunc_between_linear) {
  uint64_t seed = 5;
  mpc_graph_t g;
  mpc_graph_init(&g);
  size_t dim[2] = {2, 9}, w0d[2] = {9, 6}, w1d[2] = {6, 4};
  int x = mpc_graph_input(&g, "x", 2, dim);
  int w0 = mpc_graph_param(&g, "w0", 2, w0d), w1 = mpc_graph_param(&g, "w1", 2, w1d);
  int h = mpc_graph_op(&g, MPC_OP_MATMUL, x, w0, -1, NULL, "mm0");
  int y = mpc_graph_op(&g, MPC_OP_MATMUL, h, w1, -1, NULL, "mm1");
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "y"), 0);
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  harness_fill(&w.param[w0], &seed, -1, 1);
  harness_fill(&w.param[w1], &seed, -1, 1);
  mpc_ftensor_t in;
  mpc_shape_t s = {2, {2, 9}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  harness_fill(&in, &seed, -3, 3);
  double d = harness_layer_bound(harness_layer_bound(0, 9, 3, 1, 16), 6, 27, 1, 16);
  harness_result_t r = harness_check_private(&g, &w, 2, &in, d, 1);
  ck_assert_uint_eq(r.plan_rounds, 2);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Exact truncation: a product truncated between two linear layers gives
 * the same output bit for bit whatever the dealer's coins, and that output
 * is the fixed-point reference computed here in integers (inputs and
 * weights rounded to nearest at encoding, the middle product floored by
 * 2^f, the last one decoded at scale 2f). Fails if the carry of the low f
 * bits is dropped (then one ulp of the middle value depends on the mask). */
START_TEST(test_exact_truncation) {
  uint64_t seed = 55;
  const unsigned f = 16;
  mpc_graph_t g;
  mpc_graph_init(&g);
  size_t dim[2] = {3, 7}, w0d[2] = {7, 5}, w1d[2] = {5, 2};
  int x = mpc_graph_input(&g, "x", 2, dim);
  int w0 = mpc_graph_param(&g, "w0", 2, w0d), w1 = mpc_graph_param(&g, "w1", 2, w1d);
  int h = mpc_graph_op(&g, MPC_OP_MATMUL, x, w0, -1, NULL, "mm0");
  int y = mpc_graph_op(&g, MPC_OP_MATMUL, h, w1, -1, NULL, "mm1");
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "y"), 0);
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  harness_fill(&w.param[w0], &seed, -1, 1);
  harness_fill(&w.param[w1], &seed, -1, 1);
  mpc_ftensor_t in;
  mpc_shape_t s = {2, {3, 7}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  harness_fill(&in, &seed, -2, 2);
  /* The integer reference. */
  double want[6];
  for (size_t b = 0; b < 3; b++) {
    int64_t hv[5];
    for (size_t j = 0; j < 5; j++) {
      int64_t acc = 0;
      for (size_t k = 0; k < 7; k++)
        acc += llround(ldexp(in.data[b * 7 + k], (int)f)) *
               llround(ldexp(w.param[w0].data[k * 5 + j], (int)f));
      hv[j] = acc >> f; /* floor: arithmetic shift */
    }
    for (size_t j = 0; j < 2; j++) {
      int64_t acc = 0;
      for (size_t k = 0; k < 5; k++)
        acc += hv[k] * llround(ldexp(w.param[w1].data[k * 2 + j], (int)f));
      want[b * 2 + j] = ldexp((double)acc, -2 * (int)f);
    }
  }
  for (uint64_t coins = 1; coins <= 4; coins++) {
    harness_fix_coins(0xc0de0000 + coins * 7919);
    harness_result_t r;
    mpc_ftensor_t out[1];
    int rc = harness_run(&g, &w, 3, &in, out, 1, NULL, NULL, &r);
    harness_fix_coins(0);
    ck_assert_int_eq(rc, 0);
    for (size_t i = 0; i < 6; i++)
      ck_assert_msg(out[0].data[i] == want[i], "coins %llu, output %zu: %.17g, want %.17g",
                    (unsigned long long)coins, i, out[0].data[i], want[i]);
    mpc_ftensor_close(&out[0]);
  }
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Per-gate widths (mpc_graph_set_bounds): with a declared input range of 1,
 * each ReLU's DCF takes only the bits its value needs, and inputs at the
 * edge of the range, chosen to reach each first-layer neuron's worst case
 * (x_k = sign(w_kj)) and its opposite, still give the right result. A bound
 * one bit short fails here (the comparison wraps). A declared range beyond
 * what the weights allow is refused. */
START_TEST(test_gate_widths_at_the_edge) {
  uint64_t seed = 77;
  const size_t K = 16, N = 6;
  mpc_graph_t g;
  mpc_graph_init(&g);
  size_t dim[2] = {2 * N, K}, w0d[2] = {K, N}, bd[1] = {N}, w1d[2] = {N, 3};
  int x = mpc_graph_input(&g, "x", 2, dim);
  int w0 = mpc_graph_param(&g, "w0", 2, w0d), b0 = mpc_graph_param(&g, "b0", 1, bd);
  int w1 = mpc_graph_param(&g, "w1", 2, w1d);
  int h = mpc_graph_op(&g, MPC_OP_MATMUL, x, w0, -1, NULL, "mm0");
  int hb = mpc_graph_op(&g, MPC_OP_ADD, h, b0, -1, NULL, "bias");
  int r = mpc_graph_op(&g, MPC_OP_RELU, hb, -1, -1, NULL, "relu");
  int y = mpc_graph_op(&g, MPC_OP_MATMUL, r, w1, -1, NULL, "mm1");
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, r, -1, -1, NULL, "r"), 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "y"), 0);
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  harness_fill(&w.param[w0], &seed, -3, 3);
  harness_fill(&w.param[b0], &seed, -1, 1);
  harness_fill(&w.param[w1], &seed, -1, 1);
  g.input_bound = 1e9; /* far beyond what 46 bits allow */
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), TANDEM_ERANGE);
  ck_assert_ptr_null(g.mag_log2);
  g.input_bound = 1;
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  ck_assert_double_eq(g.input_bound, 1);
  /* The ReLU's value: |x w0 + b0| <= max_j sum_k |w_kj| + |b_j| =: M, so
   * |v| < 2^e with e the exponent of 1.01 M + 2^(10-f) (the slack), then
   * L = e + 2f + 1 and the DCF takes L - f bits. */
  double M = 0;
  for (size_t j = 0; j < N; j++) {
    double sum = fabs(w.param[b0].data[j]);
    for (size_t k = 0; k < K; k++)
      sum += fabs(w.param[w0].data[k * N + j]);
    M = fmax(M, sum);
  }
  int e;
  frexp(1.01 * M + ldexp(1.0, 10 - 16), &e);
  ck_assert_int_eq(g.mag_log2[hb], e);
  ck_assert_int_le(e, 6);
  mpc_plan_t *plan;
  ck_assert_int_eq(mpc_plan_new(&plan, &g, 2 * N, NULL, 0), 0);
  int seen = 0;
  for (size_t i = 0; i < mpc_plan_ngates(plan); i++) {
    mpc_gate_info_t gi;
    ck_assert_int_eq(mpc_plan_gate(plan, i, &gi), 0);
    if (strcmp(gi.kind, "relu+trunc") != 0)
      continue;
    seen = 1;
    ck_assert_uint_eq(gi.bound_bits, (unsigned)e + 32 + 1);
    ck_assert_uint_eq(gi.dcf_bits, (unsigned)e + 32 + 1 - 16);
    ck_assert_uint_eq(gi.compared, 2 * N * N);
    ck_assert_uint_eq(gi.key_bytes, 2 * N * N * kern_dcf_key_bytes((unsigned)e + 17, 3));
  }
  ck_assert(seen);
  mpc_plan_free(plan);
  /* Row 2j reaches neuron j's largest value, row 2j + 1 its most negative. */
  mpc_ftensor_t in;
  mpc_shape_t s = {2, {2 * N, K}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  for (size_t j = 0; j < N; j++)
    for (size_t k = 0; k < K; k++) {
      double sg = w.param[w0].data[k * N + j] >= 0 ? 1 : -1;
      in.data[2 * j * K + k] = sg;
      in.data[(2 * j + 1) * K + k] = -sg;
    }
  /* The worst row reaches M, more than a quarter of the gate's range. */
  ck_assert_msg(M > ldexp(1.0, e - 2), "the edge case reaches only %g", M);
  double tol = harness_layer_bound(harness_layer_bound(0, K, 1, 3, 16), N, 64, 1, 16);
  harness_check_private(&g, &w, 2 * N, &in, tol, 1);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Both operands secret per query: a fresh matrix triple. */
START_TEST(test_triple_matmul) {
  uint64_t seed = 7;
  mpc_graph_t g;
  mpc_graph_init(&g);
  size_t ad[2] = {5, 8}, bd[2] = {8, 3};
  int a = mpc_graph_input(&g, "a", 2, ad);
  int b = mpc_graph_input(&g, "b", 2, bd);
  int y = mpc_graph_op(&g, MPC_OP_MATMUL, a, b, -1, NULL, "mm");
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "y"), 0);
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  mpc_ftensor_t in[2];
  mpc_shape_t s0 = {2, {5, 8}}, s1 = {2, {8, 3}};
  ck_assert_int_eq(mpc_ftensor_init(&in[0], &s0), 0);
  ck_assert_int_eq(mpc_ftensor_init(&in[1], &s1), 0);
  harness_fill(&in[0], &seed, -2, 2);
  harness_fill(&in[1], &seed, -2, 2);
  harness_result_t r = harness_check_private(&g, &w, 0, in, harness_layer_bound(0, 8, 2, 2, 16), 2);
  ck_assert_uint_eq(r.plan_rounds, 0);
  mpc_ftensor_close(&in[0]);
  mpc_ftensor_close(&in[1]);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_small_cnn) {
  uint64_t seed = 9;
  mpc_graph_t g;
  mpc_weights_t w;
  harness_build_small_cnn(&g, &w, &seed);
  mpc_ftensor_t in;
  mpc_shape_t s = {4, {2, 1, 8, 8}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  harness_fill(&in, &seed, 0, 1);
  double d = harness_layer_bound(harness_layer_bound(0, 9, 1, 0.5, 16), 64, 5, 0.5, 16);
  harness_result_t r = harness_check_private(&g, &w, 2, &in, d, 2);
  /* ReLU (1) + two max levels (2) + the opening before the Gemm (1). */
  ck_assert_uint_eq(r.plan_rounds, 4);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* The dealer's messages are not zeroed before the gates write them
 * (dealer.c msg_alloc): every byte must be written, or a byte of an older
 * buffer would go to a party. Filled with a different byte in each of five
 * preparations, a byte left unwritten holds that fill in all five; a
 * written byte does so with probability 2^-40 (random) or never (constant).
 * Covers ReLU with truncation, max levels and exact truncation alone (both
 * of its DCFs). Fails if a gate skips part of its keys or corrections. */
extern int mpc__prep_poison;

static int sink_send(mpc_transport_t *t, mpc_role_t to, const void *buf, size_t len) {
  (void)t, (void)to, (void)buf, (void)len;
  return 0;
}
static int sink_recv(mpc_transport_t *t, mpc_role_t from, void *buf, size_t len) {
  (void)t, (void)from, (void)buf, (void)len;
  return TANDEM_EPROTO;
}
static int sink_exchange(mpc_transport_t *t, mpc_role_t peer, const void *sbuf, size_t slen,
                         void *rbuf, size_t rlen) {
  (void)t, (void)peer, (void)sbuf, (void)slen, (void)rbuf, (void)rlen;
  return TANDEM_EPROTO;
}

static void check_prep_written(const mpc_graph_t *g, size_t batch) {
  mpc_plan_t *plan;
  char err[256];
  ck_assert_int_eq(mpc_plan_new(&plan, g, batch, err, sizeof err), 0);
  mpc_dealer_t *d;
  ck_assert_int_eq(mpc_dealer_new(&d, plan), 0);
  static const mpc_transport_ops_t sink = {sink_send, sink_recv, sink_exchange, NULL};
  mpc_transport_t t;
  memset(&t, 0, sizeof t);
  t.ops = &sink;
  t.self = MPC_DEALER;
  ck_assert_int_eq(mpc_dealer_model(d, &t), 0);
  enum { RUNS = 5 };
  mpc_prep_t pr[RUNS];
  for (int k = 0; k < RUNS; k++) {
    mpc__prep_poison = 0x11 * (k + 1);
    ck_assert_int_eq(mpc_dealer_prep(d, 16, &pr[k]), 0);
  }
  mpc__prep_poison = -1;
  for (int m = 0; m < 2; m++) {
    ck_assert_uint_gt(pr[0].len[m], 16);
    for (size_t i = 0; i < pr[0].len[m]; i++) {
      int all = 1;
      for (int k = 0; k < RUNS && all; k++)
        all = pr[k].msg[m][16 + i] == 0x11 * (k + 1);
      ck_assert_msg(!all, "byte %zu of %zu of P%d's message is never written", i,
                    pr[0].len[m], m);
    }
  }
  for (int k = 0; k < RUNS; k++)
    mpc_prep_close(&pr[k]);
  mpc_dealer_free(d);
  mpc_plan_free(plan);
}

START_TEST(test_dealer_writes_every_byte) {
  uint64_t seed = 77;
  mpc_graph_t g;
  mpc_weights_t w;
  size_t sizes[4] = {20, 16, 12, 4};
  harness_build_mlp(&g, &w, sizes, 4, 3, 16, &seed, 0.5);
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  check_prep_written(&g, 3);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  harness_build_small_cnn(&g, &w, &seed);
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  check_prep_written(&g, 2);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  /* Truncation alone: a product between two matmuls. */
  mpc_graph_init(&g);
  size_t dim[2] = {2, 9}, w0d[2] = {9, 6}, w1d[2] = {6, 4};
  int x = mpc_graph_input(&g, "x", 2, dim);
  int w0 = mpc_graph_param(&g, "w0", 2, w0d), w1 = mpc_graph_param(&g, "w1", 2, w1d);
  int h = mpc_graph_op(&g, MPC_OP_MATMUL, x, w0, -1, NULL, "mm0");
  int y = mpc_graph_op(&g, MPC_OP_MATMUL, h, w1, -1, NULL, "mm1");
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "y"), 0);
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  harness_fill(&w.param[w0], &seed, -1, 1);
  harness_fill(&w.param[w1], &seed, -1, 1);
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  check_prep_written(&g, 2);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Local linear operators and pools with padding. */
START_TEST(test_local_ops_and_pools) {
  uint64_t seed = 13;
  mpc_graph_t g;
  mpc_graph_init(&g);
  size_t xd[4] = {1, 2, 5, 5};
  int a = mpc_graph_input(&g, "a", 4, xd);
  int b = mpc_graph_input(&g, "b", 4, xd);
  int s = mpc_graph_op(&g, MPC_OP_ADD, a, b, -1, NULL, "add");
  int d = mpc_graph_op(&g, MPC_OP_SUB, s, b, -1, NULL, "sub");
  mpc_attr_t m;
  memset(&m, 0, sizeof m);
  m.scalar = 0.375;
  int mc = mpc_graph_op(&g, MPC_OP_MULC, d, -1, -1, &m, "mulc");
  m.scalar = -3;
  int mi = mpc_graph_op(&g, MPC_OP_MULC, a, -1, -1, &m, "muli");
  mpc_attr_t pa;
  memset(&pa, 0, sizeof pa);
  pa.kh = pa.kw = 3;
  pa.strides[0] = pa.strides[1] = 2;
  pa.pads[0] = pa.pads[1] = pa.pads[2] = pa.pads[3] = 1;
  int mp = mpc_graph_op(&g, MPC_OP_MAXPOOL, mc, -1, -1, &pa, "maxpool");
  pa.count_include_pad = 1;
  int ap1 = mpc_graph_op(&g, MPC_OP_AVGPOOL, mi, -1, -1, &pa, "avg_incl");
  pa.count_include_pad = 0;
  int ap0 = mpc_graph_op(&g, MPC_OP_AVGPOOL, b, -1, -1, &pa, "avg_excl");
  mpc_attr_t ta;
  memset(&ta, 0, sizeof ta);
  ta.perm[0] = 0;
  ta.perm[1] = 2;
  ta.perm[2] = 3;
  ta.perm[3] = 1;
  int tr = mpc_graph_op(&g, MPC_OP_TRANSPOSE, mp, -1, -1, &ta, "transpose");
  ck_assert_int_ge(tr, 0);
  ck_assert_int_ge(ap1, 0);
  ck_assert_int_ge(ap0, 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, tr, -1, -1, NULL, "y0"), 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, ap1, -1, -1, NULL, "y1"), 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, ap0, -1, -1, NULL, "y2"), 0);
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  mpc_ftensor_t in[2];
  mpc_shape_t sh = {4, {1, 2, 5, 5}};
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(mpc_ftensor_init(&in[i], &sh), 0);
    harness_fill(&in[i], &seed, -4, 4);
  }
  /* Average pools multiply a window sum (|sum| <= 9 * 12 here) by 1/9 encoded
   * to 2^-(f+1): 108 * 2^-17 plus a few ulps elsewhere. */
  harness_result_t r = harness_check_private(&g, &w, 1, in, 108 * ldexp(1.0, -17) + 8 * ldexp(1.0, -16), 1);
  /* MaxPool 3x3: ceil(log2 9) = 4 levels, one round each; the rest is local. */
  ck_assert_uint_eq(r.plan_rounds, 4);
  mpc_ftensor_close(&in[0]);
  mpc_ftensor_close(&in[1]);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Size-1 everything. */
START_TEST(test_size_one) {
  uint64_t seed = 17;
  size_t sizes[3] = {1, 1, 1};
  mpc_graph_t g;
  mpc_weights_t w;
  harness_build_mlp(&g, &w, sizes, 3, 1, 16, &seed, 1.0);
  mpc_ftensor_t in;
  mpc_shape_t s = {2, {1, 1}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  in.data[0] = -0.75;
  harness_check_private(&g, &w, 1, &in, harness_layer_bound(harness_layer_bound(0, 1, 1, 1, 16), 1, 2, 1, 16), 1);
  in.data[0] = 0.75;
  harness_check_private(&g, &w, 1, &in, harness_layer_bound(harness_layer_bound(0, 1, 1, 1, 16), 1, 2, 1, 16), 1);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Size-1 gates: a 1x1 convolution on a 1x1 image, a 1x1 MaxPool (no
 * comparison level at all) and AveragePool, and a 1x1x1 matrix triple. */
START_TEST(test_size_one_gates) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  size_t xd[4] = {1, 1, 1, 1}, wd[4] = {1, 1, 1, 1}, bd[1] = {1}, md[2] = {1, 1};
  int x = mpc_graph_input(&g, "x", 4, xd);
  int cw = mpc_graph_param(&g, "cw", 4, wd), cb = mpc_graph_param(&g, "cb", 1, bd);
  mpc_attr_t ca;
  memset(&ca, 0, sizeof ca);
  int c = mpc_graph_op(&g, MPC_OP_CONV, x, cw, cb, &ca, "conv");
  int r = mpc_graph_op(&g, MPC_OP_RELU, c, -1, -1, NULL, "relu");
  mpc_attr_t pa;
  memset(&pa, 0, sizeof pa);
  pa.kh = pa.kw = 1;
  int mp = mpc_graph_op(&g, MPC_OP_MAXPOOL, r, -1, -1, &pa, "maxpool");
  int ap = mpc_graph_op(&g, MPC_OP_AVGPOOL, mp, -1, -1, &pa, "avgpool");
  int a = mpc_graph_input(&g, "a", 2, md), b = mpc_graph_input(&g, "b", 2, md);
  int t = mpc_graph_op(&g, MPC_OP_MATMUL, a, b, -1, NULL, "triple");
  ck_assert_int_ge(ap, 0);
  ck_assert_int_ge(t, 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, ap, -1, -1, NULL, "y0"), 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, t, -1, -1, NULL, "y1"), 0);
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  w.param[cw].data[0] = -1.25;
  w.param[cb].data[0] = 0.5;
  mpc_ftensor_t in[3];
  for (int i = 0; i < 3; i++) {
    mpc_shape_t s = i == 0 ? (mpc_shape_t){4, {1, 1, 1, 1}} : (mpc_shape_t){2, {1, 1}};
    ck_assert_int_eq(mpc_ftensor_init(&in[i], &s), 0);
  }
  in[1].data[0] = 1.5;
  in[2].data[0] = -0.75;
  double tol = harness_layer_bound(harness_layer_bound(0, 1, 1, 1.25, 16), 1, 2, 1, 16);
  for (int sign = -1; sign <= 1; sign += 2) {
    in[0].data[0] = 0.875 * sign; /* both sides of the ReLU */
    harness_result_t res = harness_check_private(&g, &w, 0, in, tol, 1);
    /* ReLU (1); the 1x1 MaxPool adds no level. */
    ck_assert_uint_eq(res.plan_rounds, 1);
  }
  for (int i = 0; i < 3; i++)
    mpc_ftensor_close(&in[i]);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Zero-size shapes are refused wherever one can be declared: graph inputs,
 * parameters and reshapes (TANDEM_ESHAPE, naming the node), plaintext tensors
 * (TANDEM_EINVAL), and an empty tensor handed to the client (TANDEM_ESHAPE). */
START_TEST(test_zero_size_is_an_error) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  size_t z0[2] = {0, 4}, z1[2] = {1, 0}, ok[2] = {1, 4};
  char err[256];
  mpc_node_t nd;
  memset(&nd, 0, sizeof nd);
  nd.op = MPC_OP_INPUT;
  nd.in[0] = nd.in[1] = nd.in[2] = -1;
  nd.shape.ndim = 2;
  nd.shape.dim[0] = 0;
  nd.shape.dim[1] = 4;
  snprintf(nd.name, sizeof nd.name, "empty_in");
  ck_assert_int_eq(mpc_graph_add(&g, &nd, err, sizeof err), TANDEM_ESHAPE);
  ck_assert_msg(strstr(err, "empty_in") != NULL && strstr(err, "zero") != NULL, "message: %s",
                err);
  ck_assert_int_eq(mpc_graph_input(&g, "x", 2, z1), TANDEM_ESHAPE);
  ck_assert_int_eq(mpc_graph_param(&g, "w", 2, z0), TANDEM_ESHAPE);
  ck_assert_uint_eq(g.nnodes, 0);
  int x = mpc_graph_input(&g, "x", 2, ok);
  ck_assert_int_ge(x, 0);
  memset(&nd, 0, sizeof nd);
  nd.op = MPC_OP_RESHAPE;
  nd.in[0] = x;
  nd.in[1] = nd.in[2] = -1;
  nd.shape.ndim = 3;
  nd.shape.dim[0] = 1;
  nd.shape.dim[1] = 0;
  nd.shape.dim[2] = 4;
  snprintf(nd.name, sizeof nd.name, "empty_reshape");
  ck_assert_int_eq(mpc_graph_add(&g, &nd, err, sizeof err), TANDEM_ESHAPE);
  ck_assert_msg(strstr(err, "empty_reshape") != NULL, "message: %s", err);
  int y = mpc_graph_op(&g, MPC_OP_RELU, x, -1, -1, NULL, "relu");
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "y"), 0);
  mpc_ftensor_t t;
  mpc_shape_t zs = {2, {0, 4}};
  ck_assert_int_eq(mpc_ftensor_init(&t, &zs), TANDEM_EINVAL);
  ck_assert_ptr_null(t.data);
  /* An empty tensor built by hand reaches the client: a shape error, before
   * anything is sent. */
  mpc_weights_t w;
  ck_assert_int_eq(mpc_weights_init(&w, &g), 0);
  double dummy[4] = {0};
  mpc_ftensor_t empty = {zs, dummy}, out[1];
  harness_result_t r;
  ck_assert_int_ne(harness_run(&g, &w, 1, &empty, out, 1, NULL, NULL, &r), 0);
  ck_assert_int_eq(r.rc[MPC_CLIENT], TANDEM_ESHAPE);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* ---- view test ------------------------------------------------------------------ */

/* Everything each role receives, by sender (the tap sees every delivered
 * message; memnet serialises tap calls). */
typedef struct {
  uint8_t *buf[MPC_NROLES][MPC_NROLES]; /* [from][to] */
  size_t len[MPC_NROLES][MPC_NROLES], cap[MPC_NROLES][MPC_NROLES];
} view_t;

static void view_tap(void *ctx, mpc_role_t from, mpc_role_t to, const void *b, size_t n) {
  view_t *v = ctx;
  if (v->len[from][to] + n > v->cap[from][to]) {
    size_t cap = (v->len[from][to] + n) * 2;
    v->buf[from][to] = realloc(v->buf[from][to], cap);
    ck_assert_ptr_nonnull(v->buf[from][to]);
    v->cap[from][to] = cap;
  }
  memcpy(v->buf[from][to] + v->len[from][to], b, n);
  v->len[from][to] += n;
}

static void view_free(view_t *v) {
  for (int i = 0; i < MPC_NROLES; i++)
    for (int j = 0; j < MPC_NROLES; j++)
      free(v->buf[i][j]);
}

typedef struct {
  uint64_t word;
  size_t idx;
} wordpos_t;

static int cmp_wordpos(const void *a, const void *b) {
  uint64_t x = ((const wordpos_t *)a)->word, y = ((const wordpos_t *)b)->word;
  return x < y ? -1 : x > y;
}

/* Whether any 16-byte window of secret (two consecutive ring words) occurs in
 * hay at any byte offset (messages carry key bytes of any length, so a word
 * need not be 8-aligned in the stream). The first words, sorted, are
 * looked up at each offset. */
static int contains_words(const uint8_t *hay, size_t hlen, const uint64_t *secret, size_t n) {
  if (n < 2 || hlen < 16)
    return 0;
  wordpos_t *t = malloc((n - 1) * sizeof *t);
  ck_assert_ptr_nonnull(t);
  size_t m = 0;
  for (size_t i = 0; i + 1 < n; i++)
    if (secret[i] != 0 || secret[i + 1] != 0)
      t[m++] = (wordpos_t){secret[i], i};
  qsort(t, m, sizeof *t, cmp_wordpos);
  int found = 0;
  for (size_t off = 0; off + 16 <= hlen && !found; off++) {
    uint64_t x;
    memcpy(&x, hay + off, 8);
    size_t lo = 0, hi = m;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (t[mid].word < x)
        lo = mid + 1;
      else
        hi = mid;
    }
    for (size_t k = lo; k < m && t[k].word == x && !found; k++)
      found = memcmp(hay + off + 8, &secret[t[k].idx + 1], 8) == 0;
  }
  free(t);
  return found;
}

/* Every bit position of the 64-bit words in buf is set in 0.5 +- 0.05 of
 * them (at the sizes below, more than 5 standard deviations), the low bits
 * included, where fixed-point values of small magnitude would show. */
static void check_uniform(const uint8_t *buf, size_t len, const char *what, int run) {
  size_t nw = len / 8;
  ck_assert_msg(nw >= 2000, "%s (run %d): only %zu words", what, run, nw);
  for (unsigned bit = 0; bit < 64; bit++) {
    size_t ones = 0;
    for (size_t i = 0; i < nw; i++) {
      uint64_t x;
      memcpy(&x, buf + 8 * i, 8);
      ones += (x >> bit) & 1;
    }
    double frac = (double)ones / (double)nw;
    ck_assert_msg(fabs(frac - 0.5) < 0.05, "%s (run %d): bit %u set in %.3f of %zu words", what,
                  run, bit, frac, nw);
  }
}

/* The view test. One model (64 -> 32 -> 4 with a ReLU, batch 8, four
 * queries) is evaluated twice, on two different inputs and two different
 * weight sets, with the same coins everywhere else: the harness fixes the
 * dealer's and the owner's randomness (harness_fix_coins), so both runs draw
 * the same weight masks, input masks, FSS keys and share seeds. Then:
 *   - the dealer receives nothing, and what it sends (seeds, corrections,
 *     keys) is byte-identical in both runs: it depends on the plan and its
 *     coins only, never on an input or a weight;
 *   - no buffer P0, P1 or the dealer receives contains the plaintext input or
 *     weights (their fixed-point encodings) of either run;
 *   - every role's view has the same sizes in both runs;
 *   - the values opened between P0 and P1 (the setup's W + R_W and every
 *     online round) and the client's masked input look uniform, bit by bit,
 *     at P0 and at P1, in both runs. With the same masks in both runs these
 *     are the only parts of a party's view that differ between the runs. */
START_TEST(test_views_hide_inputs_and_weights) {
  size_t sizes[3] = {64, 32, 4};
  mpc_graph_t g;
  mpc_weights_t w[2];
  mpc_ftensor_t in[2];
  view_t v[2];
  memset(v, 0, sizeof v);
  mpc_shape_t s = {2, {8, 64}};
  for (int run = 0; run < 2; run++) {
    uint64_t seed = 21 + 1000 * (uint64_t)run;
    if (run == 0) {
      harness_build_mlp(&g, &w[0], sizes, 3, 8, 16, &seed, 0.5);
    } else {
      ck_assert_int_eq(mpc_weights_init(&w[1], &g), 0);
      for (size_t i = 0; i < g.nnodes; i++)
        if (g.nodes[i].op == MPC_OP_PARAM)
          harness_fill(&w[1].param[i], &seed, -0.5, 0.5);
    }
    ck_assert_int_eq(mpc_ftensor_init(&in[run], &s), 0);
    harness_fill(&in[run], &seed, -1, 1);
    harness_fix_coins(0x5eed);
    harness_result_t r;
    mpc_ftensor_t out[1];
    int rc = harness_run(&g, &w[run], 8, &in[run], out, 4, view_tap, &v[run], &r);
    harness_fix_coins(0);
    ck_assert_int_eq(rc, 0);
    mpc_ftensor_close(&out[0]);
  }
  ck_assert(in[0].data[0] != in[1].data[0]);
  for (int from = 0; from < MPC_NROLES; from++) {
    for (int to = 0; to < MPC_NROLES; to++)
      ck_assert_uint_eq(v[0].len[from][to], v[1].len[from][to]);
    ck_assert_uint_eq(v[0].len[from][MPC_DEALER], 0);
  }
  for (int to = 0; to < MPC_NROLES; to++)
    if (v[0].len[MPC_DEALER][to] > 0)
      ck_assert_msg(memcmp(v[0].buf[MPC_DEALER][to], v[1].buf[MPC_DEALER][to],
                           v[0].len[MPC_DEALER][to]) == 0,
                    "the dealer's message to %s depends on the input or the weights",
                    mpc_role_name((mpc_role_t)to));
  ck_assert_uint_gt(v[0].len[MPC_DEALER][MPC_P1], 0);

  /* The plaintext encodings that must never travel: each run's input, its
   * weights at f bits and its biases at f and at 2f bits. */
  for (int run = 0; run < 2; run++) {
    uint64_t xenc[512];
    ck_assert_int_eq(kern_fix_encode(xenc, in[run].data, 512, 16, NULL), 0);
    if (run == 0) { /* the search itself finds words at an odd offset */
      uint8_t probe[64] = {0};
      memcpy(probe + 13, xenc + 100, 16);
      ck_assert(contains_words(probe, sizeof probe, xenc, 512));
    }
    for (int who = 0; who < 3; who++) { /* P0, P1, the dealer */
      for (int r2 = 0; r2 < 2; r2++)
        for (int from = 0; from < MPC_NROLES; from++)
          ck_assert_msg(!contains_words(v[r2].buf[from][who], v[r2].len[from][who], xenc, 512),
                        "%s received run %d's plaintext input from %s (run %d)",
                        mpc_role_name((mpc_role_t)who), run, mpc_role_name((mpc_role_t)from),
                        r2);
    }
    for (size_t i = 0; i < g.nnodes; i++) {
      if (g.nodes[i].op != MPC_OP_PARAM)
        continue;
      size_t n = mpc_shape_numel(&g.nodes[i].shape);
      uint64_t *enc = malloc(2 * n * sizeof *enc);
      ck_assert_ptr_nonnull(enc);
      ck_assert_int_eq(kern_fix_encode(enc, w[run].param[i].data, n, 16, NULL), 0);
      for (size_t j = 0; j < n; j++)
        enc[n + j] = enc[j] << 16;
      for (int who = 0; who < 3; who++)
        for (int from = 0; from < MPC_NROLES; from++)
          for (int part = 0; part < 2; part++)
            ck_assert_msg(!contains_words(v[run].buf[from][who], v[run].len[from][who],
                                          enc + part * n, n),
                          "%s received parameter '%s' of run %d from %s",
                          mpc_role_name((mpc_role_t)who), g.nodes[i].name, run,
                          mpc_role_name((mpc_role_t)from));
      free(enc);
    }
  }

  /* The opened values, at each party and in each run. */
  for (int run = 0; run < 2; run++) {
    check_uniform(v[run].buf[MPC_P1][MPC_P0], v[run].len[MPC_P1][MPC_P0],
                  "openings P0 received from P1", run);
    check_uniform(v[run].buf[MPC_P0][MPC_P1], v[run].len[MPC_P0][MPC_P1],
                  "openings P1 received from P0", run);
    check_uniform(v[run].buf[MPC_CLIENT][MPC_P0], v[run].len[MPC_CLIENT][MPC_P0],
                  "masked input at P0", run);
    check_uniform(v[run].buf[MPC_CLIENT][MPC_P1], v[run].len[MPC_CLIENT][MPC_P1],
                  "masked input at P1", run);
  }
  for (int run = 0; run < 2; run++) {
    view_free(&v[run]);
    mpc_ftensor_close(&in[run]);
    mpc_weights_close(&w[run]);
  }
  mpc_graph_close(&g);
}
END_TEST

/* ---- errors -------------------------------------------------------------------- */

START_TEST(test_plan_errors_name_the_node) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  size_t d2[2] = {1, 4};
  int x = mpc_graph_input(&g, "x", 2, d2);
  int p = mpc_graph_param(&g, "w", 2, d2);
  int r = mpc_graph_op(&g, MPC_OP_RELU, p, -1, -1, NULL, "relu_of_weight");
  ck_assert_int_ge(r, 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, x, -1, -1, NULL, "y"), 0);
  mpc_plan_t *plan;
  char err[256];
  ck_assert_int_eq(mpc_plan_new(&plan, &g, 1, err, sizeof err), TANDEM_EUNSUPOP);
  ck_assert_msg(strstr(err, "relu_of_weight") != NULL, "message: %s", err);
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_client_rejects_bad_input) {
  uint64_t seed = 3;
  size_t sizes[2] = {4, 2};
  mpc_graph_t g;
  mpc_weights_t w;
  harness_build_mlp(&g, &w, sizes, 2, 1, 16, &seed, 1.0);
  mpc_ftensor_t in, out[1];
  harness_result_t r;
  mpc_shape_t bad = {2, {1, 5}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &bad), 0);
  ck_assert_int_ne(harness_run(&g, &w, 1, &in, out, 1, NULL, NULL, &r), 0);
  ck_assert_int_eq(r.rc[MPC_CLIENT], TANDEM_ESHAPE);
  mpc_ftensor_close(&in);
  mpc_shape_t ok = {2, {1, 4}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &ok), 0);
  in.data[2] = 1e300;
  int rc = harness_run(&g, &w, 1, &in, out, 1, NULL, NULL, &r);
  ck_assert_int_eq(r.rc[MPC_CLIENT], TANDEM_ERANGE);
  ck_assert_int_ne(rc, 0);
  in.data[2] = NAN;
  harness_run(&g, &w, 1, &in, out, 1, NULL, NULL, &r);
  ck_assert_int_eq(r.rc[MPC_CLIENT], TANDEM_ERANGE);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* P1 dies in the middle of the online phase: every role ends with an error,
 * none hangs. */
static mpc_memnet_t *kill_hub;
static void kill_p1_tap(void *ctx, mpc_role_t from, mpc_role_t to, const void *b, size_t n) {
  (void)ctx;
  (void)b;
  (void)n;
  if (from == MPC_P1 && to == MPC_P0 && kill_hub != NULL)
    mpc_memnet_kill(kill_hub, MPC_P1);
}

START_TEST(test_dead_party_is_an_error) {
  uint64_t seed = 4;
  size_t sizes[3] = {8, 8, 2};
  mpc_graph_t g;
  mpc_weights_t w;
  harness_build_mlp(&g, &w, sizes, 3, 1, 16, &seed, 1.0);
  mpc_plan_t *plan;
  ck_assert_int_eq(mpc_plan_new(&plan, &g, 1, NULL, 0), 0);
  ck_assert_int_eq(mpc_memnet_new(&kill_hub, 5000), 0);
  /* Set-up exchange first (P1 -> P0 is the weight opening): kill then. */
  mpc_memnet_set_tap(kill_hub, kill_p1_tap, NULL);
  mpc_party_t *p1;
  ck_assert_int_eq(mpc_party_new(&p1, plan, MPC_P1), 0);
  mpc_transport_t *t1 = mpc_memnet_endpoint(kill_hub, MPC_P1);
  mpc_transport_t *t0 = mpc_memnet_endpoint(kill_hub, MPC_P0);
  /* P1 receives no owner or dealer message and waits: kill it from here. */
  mpc_memnet_kill(kill_hub, MPC_P1);
  ck_assert_int_eq(mpc_party_setup(p1, t1), TANDEM_ECLOSED);
  uint8_t b[8];
  ck_assert_int_eq(mpc_transport_recv(t0, MPC_P1, b, sizeof b), TANDEM_ECLOSED);
  mpc_party_free(p1);
  mpc_memnet_free(kill_hub);
  kill_hub = NULL;
  mpc_plan_free(plan);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* A client that sends P0 and P1 different masked inputs (X^_1 = X^_0 + D)
 * would learn L(D, <W>_1) beyond the model's result. With a ReLU, both
 * parties refuse the query with TANDEM_EINPUTS before any output share
 * leaves (the hashes ride in the first round); a plan with no round sends
 * nothing between the parties, and the pair key's pads leave the client
 * noise (tens of bits above any logit). Honest queries after are served. */
START_TEST(test_different_masked_inputs) {
  for (int relu = 0; relu <= 1; relu++) {
    uint64_t seed = 0x4242 + (uint64_t)relu;
    size_t sizes[3] = {6, 5, 3};
    mpc_graph_t g;
    mpc_weights_t w;
    harness_build_mlp(&g, &w, sizes, relu ? 3 : 2, 2, 16, &seed, 1.0);
    mpc_ftensor_t in, out[1];
    mpc_shape_t s = {2, {2, 6}};
    ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
    harness_fill(&in, &seed, -1, 1);
    harness_result_t r;
    mpc_ftensor_t first[1];
    memset(first, 0, sizeof first);
    harness_lying_client(1u << 16);
    harness_keep_first(relu ? NULL : first);
    int rc = harness_run(&g, &w, 2, &in, out, relu ? 1 : 2, NULL, NULL, &r);
    harness_keep_first(NULL);
    harness_lying_client(0);
    if (relu) {
      ck_assert_int_ne(rc, 0);
      ck_assert_int_eq(r.rc[MPC_P0], TANDEM_EINPUTS);
      ck_assert_int_eq(r.rc[MPC_P1], TANDEM_EINPUTS);
      ck_assert_int_ne(r.rc[MPC_CLIENT], 0);
      ck_assert_uint_eq(r.stats[MPC_P0].sent[MPC_CLIENT][MPC_PHASE_ONLINE], 0);
      ck_assert_uint_eq(r.stats[MPC_P1].sent[MPC_CLIENT][MPC_PHASE_ONLINE], 0);
    } else {
      ck_assert_int_eq(rc, 0);
      ck_assert_uint_eq(r.stats[MPC_P0].rounds[MPC_PHASE_ONLINE], 0);
      mpc_ftensor_t ref;
      ck_assert_int_eq(mpc_eval_float(&g, &w, &in, &ref), 0);
      double d = harness_max_abs_diff(&out[0], &ref);
      ck_assert_msg(!(d < 1e6), "a lying client's result is off by only %g", d);
      /* Without the pads, the same lie on the same input gives the same
       * deviation, -L(D, <R_W>_1), query after query: a function of P1's
       * secrets. With them, fresh noise each query. */
      double again = harness_max_abs_diff(&out[0], &first[0]);
      ck_assert_msg(!(again < 1e6), "two lying queries agree to %g", again);
      mpc_ftensor_close(&first[0]);
      mpc_ftensor_close(&ref);
      mpc_ftensor_close(&out[0]);
    }
    harness_check_private(&g, &w, 2, &in, 1e-2, 1);
    mpc_ftensor_close(&in);
    mpc_weights_close(&w);
    mpc_graph_close(&g);
  }
}
END_TEST

Suite *protocol_suite(void) {
  Suite *s = suite_create("protocol");
  TCase *tc = tcase_create("gates");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_linear_gemm);
  tcase_add_test(tc, test_different_masked_inputs);
  tcase_add_test(tc, test_relu_on_input);
  tcase_add_test(tc, test_trunc_between_linear);
  tcase_add_test(tc, test_exact_truncation);
  tcase_add_test(tc, test_gate_widths_at_the_edge);
  tcase_add_test(tc, test_triple_matmul);
  tcase_add_test(tc, test_local_ops_and_pools);
  tcase_add_test(tc, test_size_one);
  tcase_add_test(tc, test_size_one_gates);
  tcase_add_test(tc, test_zero_size_is_an_error);
  tcase_add_test(tc, test_gates_frac_bits);
  tcase_add_test(tc, test_edges_of_the_bound);
  tcase_add_test(tc, test_small_cnn);
  tcase_add_test(tc, test_dealer_writes_every_byte);
  tcase_add_test(tc, test_mlp_batch1);
  tcase_add_test(tc, test_mlp_batch100);
  tcase_add_test(tc, test_mlp_frac_bits);
  tcase_add_test(tc, test_views_hide_inputs_and_weights);
  tcase_add_test(tc, test_plan_errors_name_the_node);
  tcase_add_test(tc, test_client_rejects_bad_input);
  tcase_add_test(tc, test_dead_party_is_an_error);
  suite_add_tcase(s, tc);
  return s;
}
