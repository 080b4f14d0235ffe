/* test_persist.c - Check suite for mpc/src/persist.c: the public graph format
 * and the model state of the parties and the dealer.
 *
 * The graph round trip must give the same bytes and the same float outputs;
 * every truncation and many bit flips of a saved graph must be refused or
 * give a valid graph, never a crash; a model set up under the plan of one
 * batch size, exported and imported into fresh parties and a fresh dealer of
 * another batch size, must still give the plaintext result privately (what a
 * restarted daemon does); a state of another model is refused.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_harness.h"

static const double consts3[3] = {0.5, -1.25, 2.0};

/* x[b,6] -> Gemm(6->5) -> Relu -> MatMul by a param (5->3) -> Add a public
 * constant vector -> MulC -> Output: every kind of node the format carries. */
static void build(mpc_graph_t *g, mpc_weights_t *w, size_t batch, uint64_t *seed) {
  mpc_graph_init(g);
  size_t xd[2] = {batch, 6}, wd[2] = {5, 6}, bd[1] = {5}, w2d[2] = {5, 3};
  int x = mpc_graph_input(g, "x", 2, xd);
  int wn = mpc_graph_param(g, "w", 2, wd);
  int bn = mpc_graph_param(g, "b", 1, bd);
  mpc_attr_t a;
  memset(&a, 0, sizeof a);
  a.trans_b = 1;
  a.alpha = 1.0;
  a.beta = 1.0;
  int y = mpc_graph_op(g, MPC_OP_GEMM, x, wn, bn, &a, "fc");
  y = mpc_graph_op(g, MPC_OP_RELU, y, -1, -1, NULL, "relu");
  int w2 = mpc_graph_param(g, "w2", 2, w2d);
  y = mpc_graph_op(g, MPC_OP_MATMUL, y, w2, -1, NULL, "mm");
  mpc_node_t c;
  memset(&c, 0, sizeof c);
  c.op = MPC_OP_CONST;
  c.in[0] = c.in[1] = c.in[2] = -1;
  c.shape.ndim = 1;
  c.shape.dim[0] = 3;
  c.cdata = consts3;
  snprintf(c.name, sizeof c.name, "shift");
  int cn = mpc_graph_add(g, &c, NULL, 0);
  ck_assert_int_ge(cn, 0);
  y = mpc_graph_op(g, MPC_OP_ADD, y, cn, -1, NULL, "add");
  mpc_attr_t m;
  memset(&m, 0, sizeof m);
  m.scalar = 0.75;
  y = mpc_graph_op(g, MPC_OP_MULC, y, -1, -1, &m, "scale");
  ck_assert_int_ge(mpc_graph_op(g, MPC_OP_OUTPUT, y, -1, -1, NULL, "out"), 0);
  ck_assert_int_eq(mpc_weights_init(w, g), 0);
  harness_fill(&w->param[wn], seed, -1, 1);
  harness_fill(&w->param[bn], seed, -1, 1);
  harness_fill(&w->param[w2], seed, -1, 1);
}

START_TEST(test_graph_round_trip) {
  uint64_t seed = 1;
  mpc_graph_t g, h;
  mpc_weights_t w, wh;
  build(&g, &w, 4, &seed);
  g.input_bound = 1234.5;
  uint8_t *b1, *b2;
  size_t n1, n2;
  ck_assert_int_eq(mpc_graph_save(&g, &b1, &n1), 0);
  char err[256];
  ck_assert_int_eq(mpc_graph_load(&h, b1, n1, err, sizeof err), 0);
  ck_assert_uint_eq(h.nnodes, g.nnodes);
  ck_assert(h.input_bound == 1234.5);
  ck_assert_int_eq(mpc_graph_save(&h, &b2, &n2), 0);
  ck_assert_uint_eq(n1, n2);
  ck_assert_mem_eq(b1, b2, n1);
  /* Same weights by node index: the float outputs are identical. */
  ck_assert_int_eq(mpc_weights_init(&wh, &h), 0);
  for (size_t i = 0; i < g.nnodes; i++)
    if (w.param[i].data != NULL)
      memcpy(wh.param[i].data, w.param[i].data,
             mpc_shape_numel(&w.param[i].shape) * sizeof(double));
  mpc_ftensor_t in, o1[1], o2[1];
  ck_assert_int_eq(mpc_ftensor_init(&in, &g.nodes[0].shape), 0);
  harness_fill(&in, &seed, -1, 1);
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, o1), 0);
  ck_assert_int_eq(mpc_eval_float(&h, &wh, &in, o2), 0);
  size_t n = mpc_shape_numel(&o1[0].shape);
  ck_assert_uint_eq(n, 12);
  ck_assert_mem_eq(o1[0].data, o2[0].data, n * sizeof(double));
  mpc_ftensor_close(&o1[0]);
  mpc_ftensor_close(&o2[0]);
  mpc_ftensor_close(&in);
  mpc_weights_close(&wh);
  mpc_graph_close(&h);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  free(b1);
  free(b2);
}
END_TEST

START_TEST(test_graph_corrupt) {
  uint64_t seed = 2;
  mpc_graph_t g, h;
  mpc_weights_t w;
  build(&g, &w, 2, &seed);
  uint8_t *b;
  size_t n;
  ck_assert_int_eq(mpc_graph_save(&g, &b, &n), 0);
  char err[256];
  /* Every proper prefix is refused. */
  for (size_t len = 0; len < n; len++) {
    int rc = mpc_graph_load(&h, b, len, err, sizeof err);
    ck_assert_msg(rc == TANDEM_EPARSE, "prefix %zu of %zu: %d", len, n, rc);
    ck_assert_uint_eq(h.nnodes, 0);
  }
  /* Trailing bytes too. */
  uint8_t *longer = malloc(n + 1);
  memcpy(longer, b, n);
  longer[n] = 0;
  ck_assert_int_eq(mpc_graph_load(&h, longer, n + 1, err, sizeof err), TANDEM_EPARSE);
  free(longer);
  /* Bit flips: refused, or a graph that passes every check of the builder. */
  size_t refused = 0;
  for (size_t i = 0; i < 4000; i++) {
    size_t bit = harness_rand(&seed) % (8 * n);
    b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    int rc = mpc_graph_load(&h, b, n, err, sizeof err);
    ck_assert(rc == 0 || rc == TANDEM_EPARSE);
    if (rc == 0)
      mpc_graph_close(&h);
    else
      refused++;
    b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }
  ck_assert_uint_gt(refused, 0);
  free(b);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* An INPUT's `batched` flag survives the format (version 4), and a graph
 * of version 3 (no flags) loads with every INPUT batched, as it meant; its
 * `ids` bit (version 7) loads, and is refused in a file of version 6. */
START_TEST(test_graph_batched_flag) {
  mpc_graph_t g, h;
  mpc_graph_init(&g);
  size_t xd[2] = {1, 4}, yd[1] = {4};
  int x = mpc_graph_input(&g, "x", 2, xd);
  mpc_node_t nd;
  memset(&nd, 0, sizeof nd);
  nd.op = MPC_OP_INPUT;
  nd.in[0] = nd.in[1] = nd.in[2] = -1;
  nd.shape.ndim = 1;
  nd.shape.dim[0] = 4;
  snprintf(nd.name, sizeof nd.name, "y");
  int y = mpc_graph_add(&g, &nd, NULL, 0);
  ck_assert_int_ge(y, 0);
  (void)yd;
  int s = mpc_graph_op(&g, MPC_OP_ADD, x, y, -1, NULL, "add");
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, s, -1, -1, NULL, "out"), 0);
  ck_assert_int_eq(g.nodes[x].batched, 1);
  ck_assert_int_eq(g.nodes[y].batched, 0);
  uint8_t *b;
  size_t n;
  char err[256];
  ck_assert_int_eq(mpc_graph_save(&g, &b, &n), 0);
  ck_assert_int_eq(mpc_graph_load(&h, b, n, err, sizeof err), 0);
  ck_assert_int_eq(h.nodes[x].batched, 1);
  ck_assert_int_eq(h.nodes[y].batched, 0);
  mpc_graph_close(&h);
  /* The same graph as version 3 wrote it: no flags word after each node's
   * name (header 32 bytes, node record 272 bytes), nor version 5's
   * Concat/Select attributes after it (axis, then per axis start, step and
   * divisor, the batch flag and the output function: 4 + 6 * 20 + 8 bytes),
   * nor version 6's graph flags and least input after the magnitudes' word. */
  const size_t hdr = 32, rec = 272, ext = 4 + 4 + 6 * 20 + 8;
  ck_assert_uint_eq(n, hdr + g.nnodes * (rec + ext) + 4 + 12);
  uint8_t *v3 = malloc(n);
  size_t m = 0;
  memcpy(v3, b, hdr);
  m = hdr;
  for (size_t i = 0; i < g.nnodes; i++) {
    memcpy(v3 + m, b + hdr + i * (rec + ext), rec);
    m += rec;
  }
  memcpy(v3 + m, b + n - 16, 4);
  m += 4;
  uint32_t three = 3;
  memcpy(v3 + 4, &three, 4);
  ck_assert_int_eq(mpc_graph_load(&h, v3, m, err, sizeof err), 0);
  ck_assert_int_eq(h.nodes[x].batched, 1);
  ck_assert_int_eq(h.nodes[y].batched, 1);
  mpc_graph_close(&h);
  /* Bit 1 of an input's flags (token ids, version 7: x [N, 4] as ids of a
   * vocabulary of 4) loads as `ids`; a file of version 6 has no such bit. */
  b[hdr + (rec + ext) * (size_t)x + rec] = 3;
  ck_assert_int_eq(mpc_graph_load(&h, b, n, err, sizeof err), 0);
  ck_assert_int_eq(h.nodes[x].ids, 1);
  ck_assert_int_eq(h.nodes[x].batched, 1);
  ck_assert_int_eq(h.nodes[y].ids, 0);
  mpc_graph_close(&h);
  uint32_t six = 6;
  memcpy(b + 4, &six, 4);
  ck_assert_int_eq(mpc_graph_load(&h, b, n, err, sizeof err), TANDEM_EPARSE);
  ck_assert(strstr(err, "bad node flags") != NULL);
  b[hdr + (rec + ext) * (size_t)x + rec] = 1;
  /* A flag on a node that is not an input is refused. */
  b[hdr + (rec + ext) * (size_t)s + rec] = 1;
  ck_assert_int_eq(mpc_graph_load(&h, b, n, err, sizeof err), TANDEM_EPARSE);
  free(v3);
  free(b);
  mpc_graph_close(&g);
}
END_TEST

/* Exact mode and the least input (version 6's graph flags and input_min)
 * survive the format; the same graph as version 5 wrote it (neither at the
 * end) loads in default mode with no least input; an unknown flag, or a
 * least input above the input bound, is refused. */
START_TEST(test_graph_exact_flag) {
  uint64_t seed = 6;
  mpc_graph_t g, h;
  mpc_weights_t w;
  build(&g, &w, 2, &seed);
  char err[256];
  uint8_t *b;
  size_t n;
  ck_assert(g.input_min == -HUGE_VAL);
  for (int exact = 0; exact <= 1; exact++) {
    g.exact = exact;
    g.input_min = exact ? 0.0 : -HUGE_VAL;
    ck_assert_int_eq(mpc_graph_save(&g, &b, &n), 0);
    ck_assert_int_eq(mpc_graph_load(&h, b, n, err, sizeof err), 0);
    ck_assert_int_eq(h.exact, exact);
    ck_assert(h.input_min == g.input_min);
    mpc_graph_close(&h);
    free(b);
  }
  ck_assert_int_eq(mpc_graph_save(&g, &b, &n), 0);
  uint32_t v;
  memcpy(&v, b + 4, 4);
  ck_assert_uint_eq(v, 7);
  v = 5;
  memcpy(b + 4, &v, 4);
  ck_assert_int_eq(mpc_graph_load(&h, b, n - 12, err, sizeof err), 0);
  ck_assert_int_eq(h.exact, 0);
  ck_assert(h.input_min == -HUGE_VAL);
  mpc_graph_close(&h);
  v = 6;
  memcpy(b + 4, &v, 4);
  b[n - 12] = 2;
  ck_assert_int_eq(mpc_graph_load(&h, b, n, err, sizeof err), TANDEM_EPARSE);
  ck_assert_uint_eq(h.nnodes, 0);
  b[n - 12] = 1;
  ck_assert_int_eq(mpc_graph_load(&h, b, n, err, sizeof err), 0);
  mpc_graph_close(&h);
  double above = 2.0;
  g.input_bound = 1.0;
  free(b);
  ck_assert_int_eq(mpc_graph_save(&g, &b, &n), 0);
  memcpy(b + n - 8, &above, 8);
  ck_assert_int_eq(mpc_graph_load(&h, b, n, err, sizeof err), TANDEM_EPARSE);
  free(b);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Set up at batch 1, restart, query at batch 5: the private result is still
 * the plaintext one. */
START_TEST(test_state_reload_other_batch) {
  uint64_t seed = 3;
  mpc_graph_t g;
  mpc_weights_t w;
  build(&g, &w, 5, &seed);
  mpc_ftensor_t in, priv[1], ref[1];
  ck_assert_int_eq(mpc_ftensor_init(&in, &g.nodes[0].shape), 0);
  harness_fill(&in, &seed, -1, 1);
  harness_result_t res;
  int rc = harness_run_reload(&g, &w, 1, 5, &in, priv, 2, &res);
  ck_assert_msg(rc == 0, "reload run: %s", tandem_strerror(rc));
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, ref), 0);
  size_t n = mpc_shape_numel(&ref[0].shape);
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(fabs(priv[0].data[i] - ref[0].data[i]) < 1e-3, "%zu: %g vs %g", i,
                  priv[0].data[i], ref[0].data[i]);
  mpc_ftensor_close(&priv[0]);
  mpc_ftensor_close(&ref[0]);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* The state of one model does not import into another's party or dealer. */
START_TEST(test_state_of_another_model) {
  uint64_t seed = 4;
  mpc_graph_t g;
  mpc_weights_t w;
  build(&g, &w, 1, &seed);
  mpc_plan_t *p;
  char err[256];
  ck_assert_int_eq(mpc_plan_new(&p, &g, 1, err, sizeof err), 0);
  size_t n = mpc_party_state_bytes(p), nd = mpc_dealer_state_bytes(p);
  ck_assert_uint_gt(n, 16);
  uint8_t *buf = calloc(1, n + 8);
  mpc_party_t *pt;
  mpc_dealer_t *d;
  ck_assert_int_eq(mpc_party_new(&pt, p, MPC_P0), 0);
  ck_assert_int_eq(mpc_dealer_new(&d, p), 0);
  /* Not set up: nothing to export. */
  ck_assert_int_eq(mpc_party_export(pt, buf, n), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_dealer_export(d, buf, nd), TANDEM_EINVAL);
  /* Garbage and a wrong size. */
  ck_assert_int_eq(mpc_party_import(pt, buf, n), TANDEM_EPARSE);
  memcpy(buf, "TMDP", 4);
  uint32_t version = 2;
  uint64_t words = (n - 16) / 8 + 1;
  memcpy(buf + 4, &version, 4);
  memcpy(buf + 8, &words, 8);
  ck_assert_int_eq(mpc_party_import(pt, buf, n + 8), TANDEM_ESHAPE);
  /* A state of version 1 (no pair key) is refused: the model is re-shared. */
  version = 1;
  memcpy(buf + 4, &version, 4);
  ck_assert_int_eq(mpc_party_import(pt, buf, n + 8), TANDEM_EPARSE);
  version = 2;
  memcpy(buf + 4, &version, 4);
  ck_assert_int_eq(mpc_party_import(pt, buf, 8), TANDEM_EPARSE);
  ck_assert_int_eq(mpc_dealer_import(d, buf, nd), TANDEM_EPARSE);
  mpc_dealer_free(d);
  mpc_party_free(pt);
  free(buf);
  mpc_plan_free(p);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

Suite *persist_suite(void) {
  Suite *s = suite_create("persist");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_graph_round_trip);
  tcase_add_test(tc, test_graph_corrupt);
  tcase_add_test(tc, test_graph_batched_flag);
  tcase_add_test(tc, test_graph_exact_flag);
  tcase_add_test(tc, test_state_reload_other_batch);
  tcase_add_test(tc, test_state_of_another_model);
  suite_add_tcase(s, tc);
  return s;
}
