/* test_ids.c - Check suite "ids": token ids (issue 13). A graph input of an
 * integer type read only as Gather indices into the owner's [V, H] table is
 * imported as an INPUT [..., V] marked ids and the Gather as its product
 * with the table (onnx_read.c, onnx_move.c); the client checks and one-hot
 * encodes the ids (ids.c); the one-hot rows are integers at scale 0, so the
 * product spends no round and no truncation (plan.c); the owner's bounds
 * take a one-hot in [0, 1] with one 1 per row (bound.c); int64 and int32
 * .npy files are read (tensor_io.c). Models are built in C (onnx_build.c).
 * Every error case checks the code and that the one line names what is
 * wrong.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpc.h"
#include "mpc_cluster.h"
#include "onnx_build.h"
#include "proto_harness.h"

Suite *ids_suite(void);

#define FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define INT64 ONNX__TENSOR_PROTO__DATA_TYPE__INT64
#define INT32 ONNX__TENSOR_PROTO__DATA_TYPE__INT32
#define I64(...) ((const int64_t[]){__VA_ARGS__})

enum { V = 5, H = 4, S = 3 };

/* The table: row v, column h = (v + 1) * 0.25 - h * 0.375 (exact in
 * binary, so the one-hot product gives it bit for bit at f = 16). */
static double table_at(size_t v, size_t h) { return (double)(v + 1) * 0.25 - (double)h * 0.375; }

/* ids [N, S] of type elem -> Gather(table [V, H], ids) -> y [N, S, H]. */
static void build_gather(ob_t *b, int elem) {
  double t[V * H];
  for (size_t v = 0; v < V; v++)
    for (size_t h = 0; h < H; h++)
      t[v * H + h] = table_at(v, h);
  ob_input(b, "ids", elem, 2, I64(-1, S));
  ob_init_f(b, "table", 2, I64(V, H), t);
  ob_node(b, "Gather", "embed", "table,ids", "y");
  ob_output(b, "y");
}

static int load(ob_t *b, mpc_graph_t *g, mpc_weights_t *w, char *err, size_t errlen) {
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  int rc = mpc_onnx_load_buffer(buf, len, g, w, err, errlen);
  free(buf);
  ob_free(b);
  return rc;
}

static void load_fail(ob_t *b, int want, const char *frag1, const char *frag2) {
  char err[512] = "";
  mpc_graph_t g;
  mpc_weights_t w;
  int rc = load(b, &g, &w, err, sizeof err);
  ck_assert_msg(rc == want, "rc %s, want %s: %s", tandem_err_name(rc), tandem_err_name(want), err);
  ck_assert_msg(strstr(err, frag1) != NULL && strstr(err, frag2) != NULL,
                "message '%s' lacks '%s' or '%s'", err, frag1, frag2);
  ck_assert_ptr_null(strchr(err, '\n'));
}

static int ids_node(const mpc_graph_t *g) {
  for (size_t i = 0; i < g->nnodes; i++)
    if (g->nodes[i].op == MPC_OP_INPUT)
      return (int)i;
  return -1;
}

/* Ids [2, S] as reals. */
static void make_ids(mpc_ftensor_t *t, const double *v) {
  mpc_shape_t s = {2, {2, S}};
  ck_assert_int_eq(mpc_ftensor_init(t, &s), 0);
  memcpy(t->data, v, 2 * S * sizeof *v);
}

/* The import (INT64 and INT32 ids): one INPUT [N, S, V] marked ids, one
 * MatMul by the table and no Select; kept by the public graph's format;
 * the client's encoding, the float evaluator and the private protocol give
 * the table's rows exactly, with no online round and no truncation. */
START_TEST(test_ids_import) {
  const int elem = _i == 0 ? INT64 : INT32;
  ob_t *b = ob_new(17);
  build_gather(b, elem);
  mpc_graph_t g;
  mpc_weights_t w;
  char err[512] = "";
  int rc = load(b, &g, &w, err, sizeof err);
  ck_assert_msg(rc == 0, "import: %s", err);
  int in = ids_node(&g);
  ck_assert_int_ge(in, 0);
  ck_assert_int_eq(g.nodes[in].ids, 1);
  ck_assert_int_eq(g.nodes[in].batched, 1);
  ck_assert_uint_eq(g.nodes[in].shape.ndim, 3);
  ck_assert_uint_eq(g.nodes[in].shape.dim[1], S);
  ck_assert_uint_eq(g.nodes[in].shape.dim[2], V);
  size_t nmm = 0, nsel = 0;
  for (size_t i = 0; i < g.nnodes; i++) {
    nmm += g.nodes[i].op == MPC_OP_MATMUL && g.nodes[i].in[0] == in;
    nsel += g.nodes[i].op == MPC_OP_SELECT;
  }
  ck_assert_uint_eq(nmm, 1);
  ck_assert_uint_eq(nsel, 0);
  /* The public graph keeps the mark (format 7). */
  uint8_t *buf;
  size_t len;
  ck_assert_int_eq(mpc_graph_save(&g, &buf, &len), 0);
  mpc_graph_t g2;
  rc = mpc_graph_load(&g2, buf, len, err, sizeof err);
  free(buf);
  ck_assert_msg(rc == 0, "reload: %s", err);
  ck_assert_int_eq(g2.nodes[ids_node(&g2)].ids, 1);
  mpc_graph_close(&g2);
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);

  const double ids[2 * S] = {0, 4, 2, 3, 3, 1};
  mpc_ftensor_t x, ref, out;
  make_ids(&x, ids);
  rc = mpc_inputs_encode_ids(&g, &x, 1, err, sizeof err);
  ck_assert_msg(rc == 0, "encode: %s", err);
  ck_assert_uint_eq(x.shape.ndim, 3);
  ck_assert_uint_eq(x.shape.dim[2], V);
  for (size_t r = 0; r < 2 * S; r++)
    for (size_t v = 0; v < V; v++)
      ck_assert(x.data[r * V + v] == (v == (size_t)ids[r] ? 1.0 : 0.0));
  ck_assert_int_eq(mpc_eval_float(&g, &w, &x, &ref), 0);
  for (size_t r = 0; r < 2 * S; r++)
    for (size_t h = 0; h < H; h++)
      ck_assert(ref.data[r * H + h] == table_at((size_t)ids[r], h));
  mpc_plan_t *plan;
  ck_assert_int_eq(mpc_plan_new(&plan, &g, 2, err, sizeof err), 0);
  ck_assert_uint_eq(mpc_plan_rounds(plan), 0);
  for (size_t i = 0; i < mpc_plan_ngates(plan); i++) {
    mpc_gate_info_t gi;
    ck_assert_int_eq(mpc_plan_gate(plan, i, &gi), 0);
    ck_assert_msg(strcmp(gi.kind, "trunc") != 0, "a truncation after the one-hot product");
  }
  mpc_plan_free(plan);
  harness_result_t res;
  rc = harness_run(&g, &w, 2, &x, &out, 1, NULL, NULL, &res);
  ck_assert_msg(rc == 0, "private: %s", tandem_strerror(rc));
  ck_assert_uint_eq(res.stats[MPC_P0].rounds[MPC_PHASE_ONLINE], 0);
  for (size_t j = 0; j < 2 * S * H; j++)
    ck_assert_msg(out.data[j] == ref.data[j], "element %zu: %.17g, want %.17g", j, out.data[j],
                  ref.data[j]);
  mpc_ftensor_close(&out);
  mpc_ftensor_close(&ref);
  mpc_ftensor_close(&x);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Ids outside [0, V), not integers, or of the wrong shape: refused by the
 * client's encoding with one line naming the input and the position, the
 * inputs left as they were. */
START_TEST(test_ids_out_of_range) {
  ob_t *b = ob_new(17);
  build_gather(b, INT64);
  mpc_graph_t g;
  mpc_weights_t w;
  char err[512] = "";
  ck_assert_int_eq(load(b, &g, &w, err, sizeof err), 0);
  static const struct {
    double bad;
    int code;
  } cases[] = {{V, TANDEM_ERANGE}, {-1, TANDEM_ERANGE}, {1.5, TANDEM_ERANGE},
               {NAN, TANDEM_ERANGE}, {1e300, TANDEM_ERANGE}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    double ids[2 * S] = {0, 1, 2, 3, 4, 0};
    ids[S + 2] = cases[c].bad; /* row 1, column 2 */
    mpc_ftensor_t x;
    make_ids(&x, ids);
    int rc = mpc_inputs_encode_ids(&g, &x, 1, err, sizeof err);
    ck_assert_msg(rc == cases[c].code, "id %g: rc %s", cases[c].bad, tandem_err_name(rc));
    ck_assert_msg(strstr(err, "'ids'") != NULL && strstr(err, "[1, 2]") != NULL &&
                      strstr(err, "[0, 5)") != NULL && strchr(err, '\n') == NULL,
                  "message: %s", err);
    ck_assert_uint_eq(x.shape.ndim, 2); /* unchanged */
    ck_assert(x.data[0] == 0 && x.data[1] == 1);
    mpc_ftensor_close(&x);
  }
  /* A one-hot (or any other shape) where ids are due. */
  mpc_shape_t s = {3, {2, S, V}};
  mpc_ftensor_t x;
  ck_assert_int_eq(mpc_ftensor_init(&x, &s), 0);
  int rc = mpc_inputs_encode_ids(&g, &x, 1, err, sizeof err);
  ck_assert_int_eq(rc, TANDEM_ESHAPE);
  ck_assert_msg(strstr(err, "'ids'") != NULL && strstr(err, "token ids of shape [1, 3]") != NULL,
                "message: %s", err);
  mpc_ftensor_close(&x);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* An integer input that a Gather takes as ids and anything reads otherwise,
 * a Gather of something other than the owner's [V, H] rows included: each
 * refused at import, naming the node and the input. */
START_TEST(test_ids_other_use) {
  /* The ids also cast to reals (an activation's Cast imports: without the
   * refusal this would read the one-hot rows). */
  ob_t *c = ob_new(17);
  build_gather(c, INT64);
  Onnx__NodeProto *cast = ob_node(c, "Cast", "to_real", "ids", "r");
  ob_attr_i(c, cast, "to", FLOAT);
  ob_output(c, "r");
  load_fail(c, TANDEM_EUNSUPOP, "'to_real'", "'ids'");
  /* The ids also read by an Add (as data). */
  ob_t *b = ob_new(17);
  build_gather(b, INT64);
  ob_init_i64(b, "one", 1, I64(1));
  ob_node(b, "Add", "shift", "ids,one", "z");
  ob_output(b, "z");
  load_fail(b, TANDEM_EUNSUPOP, "'shift'", "'ids'");
  /* Beside a lookup by the ids, a Gather by them on axis 1, of an
   * activation, of a table of rank 3. */
  for (int k = 0; k < 3; k++) {
    static const char *const names[3] = {"cols", "act", "cube"};
    static const char *const quoted[3] = {"'cols'", "'act'", "'cube'"};
    b = ob_new(17);
    build_gather(b, k == 1 ? INT32 : INT64);
    ob_input(b, "x", FLOAT, 2, I64(V, H));
    ob_init_f(b, "cube_t", 3, I64(V, 2, 2), (const double[V * 4]){0});
    Onnx__NodeProto *n = ob_node(b, "Gather", names[k], k == 0 ? "table,ids"
                                                          : k == 1 ? "x,ids" : "cube_t,ids",
                                 "y2");
    if (k == 0)
      ob_attr_i(b, n, "axis", 1);
    ob_output(b, "y2");
    load_fail(b, TANDEM_EUNSUPOP, quoted[k], "'ids' are the client's token ids");
  }
  /* Gathered by indices alone (of an activation: the ONNX backend tests'
   * form): no token ids, but structure, whose values must be known at
   * import (tandem run reads them) as before. */
  b = ob_new(17);
  ob_input(b, "ids", INT64, 2, I64(2, S));
  ob_input(b, "x", FLOAT, 2, I64(V, H));
  ob_node(b, "Gather", "act", "x,ids", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EUNSUPOP, "'ids'", "known at import");
  /* The ids as a graph output too. */
  b = ob_new(17);
  build_gather(b, INT64);
  ob_output(b, "ids");
  load_fail(b, TANDEM_EUNSUPOP, "'ids'", "graph output");
}
END_TEST

/* A compiled plan refuses an ids input read otherwise than as the left
 * operand of a product by a 2-D parameter (a public graph not from the
 * importer), before any party works. */
START_TEST(test_ids_plan_refuses) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  mpc_node_t nd;
  memset(&nd, 0, sizeof nd);
  nd.op = MPC_OP_INPUT;
  nd.in[0] = nd.in[1] = nd.in[2] = -1;
  nd.ids = 1;
  nd.batched = 1;
  nd.shape = (mpc_shape_t){3, {1, S, V}};
  snprintf(nd.name, sizeof nd.name, "ids");
  int in = mpc_graph_add(&g, &nd, NULL, 0);
  ck_assert_int_ge(in, 0);
  int r = mpc_graph_op(&g, MPC_OP_RELU, in, -1, -1, NULL, "relu");
  ck_assert_int_ge(r, 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, r, -1, -1, NULL, "y"), 0);
  mpc_plan_t *plan = NULL;
  char err[512] = "";
  ck_assert_int_eq(mpc_plan_new(&plan, &g, 1, err, sizeof err), TANDEM_EUNSUPOP);
  ck_assert_msg(strstr(err, "'ids'") != NULL && strstr(err, "token ids") != NULL, "%s", err);
  mpc_graph_close(&g);
}
END_TEST

/* The owner's bound of the one-hot product is the table's largest element
 * per column (one row), not the column's sum over the vocabulary. */
START_TEST(test_ids_bound) {
  ob_t *b = ob_new(17);
  build_gather(b, INT64);
  mpc_graph_t g;
  mpc_weights_t w;
  char err[512] = "";
  ck_assert_int_eq(load(b, &g, &w, err, sizeof err), 0);
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  int mm = -1;
  for (size_t i = 0; i < g.nnodes; i++)
    if (g.nodes[i].op == MPC_OP_MATMUL)
      mm = (int)i;
  ck_assert_int_ge(mm, 0);
  /* max |table| = 1.25 (v = 4, h = 0): with the slack, < 2^1; the sum of a
   * column's magnitudes (3.75 at h = 0) would give 2^2. */
  ck_assert_int_eq(g.mag_log2[mm], 1);
  ck_assert(g.input_bound >= 1.0);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* int64 and int32 .npy files (numpy's types for ids) load as their values. */
START_TEST(test_ids_npy) {
  static const int64_t v64[3] = {7, -2, 1023};
  static const int32_t v32[3] = {5, -1, 65536};
  for (int k = 0; k < 2; k++) {
    uint8_t buf[256];
    const char *descr = k == 0 ? "<i8" : "<i4";
    char hdr[118];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (1, 3), }",
                      descr);
    memset(hdr + hl, ' ', sizeof hdr - (size_t)hl - 1);
    hdr[sizeof hdr - 1] = '\n';
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)sizeof hdr;
    buf[9] = 0;
    memcpy(buf + 10, hdr, sizeof hdr);
    size_t off = 10 + sizeof hdr, esz = k == 0 ? 8 : 4;
    for (size_t i = 0; i < 3; i++) {
      uint64_t u = k == 0 ? (uint64_t)v64[i] : (uint64_t)(uint32_t)v32[i];
      for (size_t j = 0; j < esz; j++)
        buf[off + i * esz + j] = (uint8_t)(u >> (8 * j));
    }
    mpc_ftensor_t t;
    char err[256] = "";
    int rc = mpc_tensor_load_buffer(buf, off + 3 * esz, &t, err, sizeof err);
    ck_assert_msg(rc == 0, "%s: %s", descr, err);
    ck_assert_uint_eq(t.shape.ndim, 2);
    ck_assert_uint_eq(t.shape.dim[1], 3);
    for (size_t i = 0; i < 3; i++)
      ck_assert(t.data[i] == (k == 0 ? (double)v64[i] : (double)v32[i]));
    mpc_ftensor_close(&t);
  }
}
END_TEST

/* A query's rows fit the masked inputs the client sends: token ids count
 * as their one-hot rows (V elements an id, 8 bytes each). */
START_TEST(test_ids_input_fit) {
  ob_t *b = ob_new(17);
  build_gather(b, INT64);
  mpc_graph_t g;
  mpc_weights_t w;
  char err[512] = "";
  ck_assert_int_eq(load(b, &g, &w, err, sizeof err), 0);
  /* One row: S ids of V = 5, 8 * 15 = 120 bytes; 1200 with a tenth of
   * headroom holds 9 (45 if only the ids counted). */
  ck_assert_uint_eq(cl_input_fit(&g, 1200, 100), 9);
  ck_assert_uint_eq(cl_input_fit(&g, 1200, 4), 4);
  ck_assert_uint_eq(cl_input_fit(&g, 100, 4), 0);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

Suite *ids_suite(void) {
  Suite *s = suite_create("ids");
  TCase *tc = tcase_create("ids");
  tcase_add_loop_test(tc, test_ids_import, 0, 2);
  tcase_add_test(tc, test_ids_out_of_range);
  tcase_add_test(tc, test_ids_other_use);
  tcase_add_test(tc, test_ids_plan_refuses);
  tcase_add_test(tc, test_ids_bound);
  tcase_add_test(tc, test_ids_npy);
  tcase_add_test(tc, test_ids_input_fit);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}
