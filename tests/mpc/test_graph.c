/* test_graph.c - Check suite "graph" for mpc/src/graph.c: names, element
 * counts, graph building with shape inference and its error messages, the
 * plaintext tensors and weights, and the IEEE-double evaluator.
 *
 * The evaluator is tested operator by operator against values worked out by
 * hand, against naive loops written here independently of graph.c (the
 * convolution reads a zero-padded copy of its input instead of testing bounds),
 * and end to end on a small MLP and a LeNet-like CNN evaluated at a batch size
 * other than the declared one. Random data comes from a splitmix64 generator
 * with fixed seeds, printed on failure; nothing reads OS randomness.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpc.h"
#include "../test_rand.h"

Suite *graph_suite(void); /* called by the generated Check main */

/* ---- helpers ------------------------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t seed) { rng_state = seed; }

/* splitmix64, mapped to a double in [-1, 1). */
static double rnd(void) {
  uint64_t z = test_splitmix64(&rng_state);
  return (double)(z >> 11) / (double)(1ull << 52) - 1.0;
}

static mpc_shape_t mkshape(unsigned ndim, const size_t *dim) {
  mpc_shape_t s;
  memset(&s, 0, sizeof s);
  s.ndim = ndim;
  for (unsigned d = 0; d < ndim; d++)
    s.dim[d] = dim[d];
  return s;
}

#define SHAPE(...) mkshape(sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t), (size_t[]){__VA_ARGS__})

static void assert_shape_(const mpc_shape_t *s, const size_t *want, unsigned n, int line) {
  int ok = s->ndim == n;
  for (unsigned d = 0; ok && d < n; d++)
    ok = s->dim[d] == want[d];
  if (!ok) {
    char got[160] = "", exp[160] = "";
    for (unsigned d = 0; d < s->ndim && d < MPC_MAX_DIMS; d++)
      snprintf(got + strlen(got), sizeof got - strlen(got), " %zu", s->dim[d]);
    for (unsigned d = 0; d < n; d++)
      snprintf(exp + strlen(exp), sizeof exp - strlen(exp), " %zu", want[d]);
    ck_abort_msg("line %d: shape [%s ] (ndim %u), want [%s ]", line, got, s->ndim, exp);
  }
}

#define ASSERT_SHAPE(s, ...)                                                          \
  assert_shape_((s), (size_t[]){__VA_ARGS__},                                          \
                (unsigned)(sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t)), __LINE__)

static mpc_attr_t attr0(void) {
  mpc_attr_t a;
  memset(&a, 0, sizeof a);
  a.alpha = a.beta = a.scalar = 1.0;
  return a;
}

static char errbuf[512];

/* Appends an operator node with a message buffer. */
static int op(mpc_graph_t *g, mpc_op_t o, int a, int b, int c, const mpc_attr_t *at,
              const char *name) {
  mpc_node_t nd;
  memset(&nd, 0, sizeof nd);
  nd.op = o;
  nd.in[0] = a;
  nd.in[1] = b;
  nd.in[2] = c;
  nd.attr = at != NULL ? *at : attr0();
  snprintf(nd.name, sizeof nd.name, "%s", name != NULL ? name : "");
  return mpc_graph_add(g, &nd, errbuf, sizeof errbuf);
}

static int reshape(mpc_graph_t *g, int a, mpc_shape_t target, const char *name) {
  mpc_node_t nd;
  memset(&nd, 0, sizeof nd);
  nd.op = MPC_OP_RESHAPE;
  nd.in[0] = a;
  nd.in[1] = nd.in[2] = -1;
  nd.shape = target;
  snprintf(nd.name, sizeof nd.name, "%s", name);
  return mpc_graph_add(g, &nd, errbuf, sizeof errbuf);
}

static int constant(mpc_graph_t *g, mpc_shape_t s, const double *data, const char *name) {
  mpc_node_t nd;
  memset(&nd, 0, sizeof nd);
  nd.op = MPC_OP_CONST;
  nd.in[0] = nd.in[1] = nd.in[2] = -1;
  nd.shape = s;
  nd.cdata = data;
  snprintf(nd.name, sizeof nd.name, "%s", name);
  return mpc_graph_add(g, &nd, errbuf, sizeof errbuf);
}

static int input(mpc_graph_t *g, const char *name, mpc_shape_t s) {
  return mpc_graph_input(g, name, s.ndim, s.dim);
}

static int param(mpc_graph_t *g, const char *name, mpc_shape_t s) {
  return mpc_graph_param(g, name, s.ndim, s.dim);
}

/* Expects error code `code` and a message containing each of the strings. */
#define ASSERT_FAILS(call, code, ...)                                                   \
  do {                                                                                  \
    errbuf[0] = '\0';                                                                   \
    int rc_ = (call);                                                                   \
    ck_assert_msg(rc_ == (code), "line %d: got %d (%s), want %s; message: %s", __LINE__, \
                  rc_, tandem_err_name(rc_), tandem_err_name(code), errbuf);            \
    const char *subs_[] = {__VA_ARGS__};                                                \
    for (size_t i_ = 0; i_ < sizeof subs_ / sizeof subs_[0]; i_++)                      \
      ck_assert_msg(strstr(errbuf, subs_[i_]) != NULL,                                  \
                    "line %d: message '%s' lacks '%s'", __LINE__, errbuf, subs_[i_]);   \
  } while (0)

#define ASSERT_OK(call)                                                                  \
  do {                                                                                   \
    errbuf[0] = '\0';                                                                    \
    int rc_ = (call);                                                                    \
    ck_assert_msg(rc_ >= 0, "line %d: got %d (%s): %s", __LINE__, rc_, tandem_err_name(rc_), \
                  errbuf);                                                               \
  } while (0)

static int close_to(double got, double want) {
  return fabs(got - want) <= 1e-9 * (1.0 + fabs(want));
}

static void assert_close_(const double *got, const double *want, size_t n, int line) {
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(close_to(got[i], want[i]), "line %d: element %zu is %.17g, want %.17g", line,
                  i, got[i], want[i]);
}
#define ASSERT_CLOSE(got, want, n) assert_close_((got), (want), (n), __LINE__)

static mpc_ftensor_t tensor(mpc_shape_t s) {
  mpc_ftensor_t t;
  ck_assert_int_eq(mpc_ftensor_init(&t, &s), 0);
  return t;
}

static mpc_ftensor_t tensor_of(mpc_shape_t s, const double *data) {
  mpc_ftensor_t t = tensor(s);
  memcpy(t.data, data, mpc_shape_numel(&s) * sizeof *data);
  return t;
}

static void fill_random(mpc_ftensor_t *t) {
  size_t n = mpc_shape_numel(&t->shape);
  for (size_t i = 0; i < n; i++)
    t->data[i] = rnd();
}

/* ---- names and element counts ------------------------------------------- */

START_TEST(test_names) {
  ck_assert_str_eq(mpc_role_name(MPC_P0), "p0");
  ck_assert_str_eq(mpc_role_name(MPC_P1), "p1");
  ck_assert_str_eq(mpc_role_name(MPC_DEALER), "dealer");
  ck_assert_str_eq(mpc_role_name(MPC_CLIENT), "client");
  ck_assert_str_eq(mpc_role_name(MPC_OWNER), "owner");
  ck_assert_str_eq(mpc_role_name((mpc_role_t)7), "unknown");
  ck_assert_str_eq(mpc_role_name((mpc_role_t)-1), "unknown");
  static const char *const want[] = {"Input", "Param",   "Const",       "MatMul",  "Gemm",
                                     "Conv",  "Add",     "Sub",         "MulC",    "Relu",
                                     "MaxPool", "AveragePool", "Reshape", "Transpose", "Output",
                                     "Mul",   "Concat",  "Select",

                                     /* smooth functions, softmax, layer norm */
                                     "Sigmoid", "Tanh", "Exp", "Erf", "Gelu", "GeluTanh",
                                     "Reciprocal", "Rsqrt", "Sqrt", "Softmax", "LayerNorm",
                                     /* a public linear map (Resize) */
                                     "LinearMap"};
  ck_assert_uint_eq(sizeof want / sizeof want[0], (size_t)MPC_OP_LAST + 1);
  for (int o = MPC_OP_INPUT; o <= MPC_OP_LAST; o++)
    ck_assert_str_eq(mpc_op_name((mpc_op_t)o), want[o]);
  ck_assert_str_eq(mpc_op_name((mpc_op_t)(MPC_OP_LAST + 1)), "unknown");
}
END_TEST

START_TEST(test_numel) {
  mpc_shape_t s;
  memset(&s, 0, sizeof s);
  ck_assert_uint_eq(mpc_shape_numel(&s), 1); /* a scalar */
  s = SHAPE(100, 1, 28, 28);
  ck_assert_uint_eq(mpc_shape_numel(&s), 78400);
  s = SHAPE(3, 0, 2);
  ck_assert_uint_eq(mpc_shape_numel(&s), 0);
  s = SHAPE((size_t)1 << 32, (size_t)1 << 32);
  ck_assert_uint_eq(mpc_shape_numel(&s), 0); /* overflow */
  s = SHAPE(SIZE_MAX, 1);
  ck_assert_uint_eq(mpc_shape_numel(&s), SIZE_MAX); /* representable, graphs reject it */
  s = SHAPE(SIZE_MAX, 2);
  ck_assert_uint_eq(mpc_shape_numel(&s), 0);
  s.ndim = MPC_MAX_DIMS + 1;
  ck_assert_uint_eq(mpc_shape_numel(&s), 0);
  ck_assert_uint_eq(mpc_shape_numel(NULL), 0);
}
END_TEST

/* ---- building graphs ----------------------------------------------------- */

START_TEST(test_init_grow_names) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  ck_assert_uint_eq(g.nnodes, 0);
  ck_assert_uint_eq(g.frac_bits, 16);
  ck_assert_uint_eq(g.bound_bits, 62);
  int x = input(&g, NULL, SHAPE(2, 3));
  ck_assert_int_eq(x, 0);
  ck_assert_str_eq(g.nodes[0].name, "Input_0");
  int prev = x;
  for (int i = 0; i < 100; i++) {
    int r = mpc_graph_op(&g, MPC_OP_RELU, prev, -1, -1, NULL, NULL);
    ck_assert_int_eq(r, i + 1);
    prev = r;
  }
  ck_assert_uint_eq(g.nnodes, 101);
  ck_assert_uint_ge(g.cap, 101);
  ck_assert_str_eq(g.nodes[57].name, "Relu_57");
  ASSERT_SHAPE(&g.nodes[100].shape, 2, 3);

  /* Names are truncated to 63 bytes, also from an unterminated array. */
  char longname[200];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  int r = mpc_graph_op(&g, MPC_OP_OUTPUT, prev, -1, -1, NULL, longname);
  ck_assert_int_ge(r, 0);
  ck_assert_uint_eq(strlen(g.nodes[r].name), 63);
  mpc_node_t nd;
  memset(&nd, 0, sizeof nd);
  nd.op = MPC_OP_RELU;
  nd.in[0] = 0;
  nd.in[1] = nd.in[2] = -1;
  memset(nd.name, 'b', sizeof nd.name); /* no terminator */
  r = mpc_graph_add(&g, &nd, errbuf, sizeof errbuf);
  ck_assert_int_ge(r, 0);
  ck_assert_uint_eq(strlen(g.nodes[r].name), 63);
  ck_assert_int_eq(g.nodes[r].name[0], 'b');

  mpc_graph_close(&g);
  ck_assert_ptr_null(g.nodes);
  ck_assert_uint_eq(g.nnodes, 0);
  mpc_graph_close(&g); /* twice is harmless */

  ck_assert_int_eq(mpc_graph_add(NULL, &nd, NULL, 0), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_graph_input(NULL, "x", 1, (size_t[]){1}), TANDEM_EINVAL);
}
END_TEST

START_TEST(test_sources) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  ASSERT_OK(input(&g, "x", SHAPE(100, 784)));
  ASSERT_OK(param(&g, "w", SHAPE(784, 128)));
  ASSERT_SHAPE(&g.nodes[1].shape, 784, 128);
  static const double c[6] = {1, 2, 3, 4, 5, 6};
  ASSERT_OK(constant(&g, SHAPE(2, 3), c, "c"));
  ck_assert_ptr_eq(g.nodes[2].cdata, c);
  ck_assert_int_eq(g.nodes[2].op, MPC_OP_CONST);

  ASSERT_FAILS(constant(&g, SHAPE(2, 3), NULL, "nodata"), TANDEM_EINVAL, "node 'nodata' (Const)",
               "cdata");
  mpc_shape_t scalar;
  memset(&scalar, 0, sizeof scalar);
  ASSERT_FAILS(constant(&g, scalar, c, "sc"), TANDEM_ESHAPE, "node 'sc' (Const)", "0 dimensions");
  ASSERT_FAILS(constant(&g, SHAPE(2, 0), c, "z"), TANDEM_ESHAPE, "node 'z'", "[2, 0]",
               "zero dimension");
  ck_assert_int_eq(mpc_graph_input(&g, "x7", MPC_MAX_DIMS + 1, (size_t[]){1, 1, 1, 1, 1, 1, 1}),
                   TANDEM_EINVAL);
  ck_assert_int_eq(mpc_graph_input(&g, "x0", 0, NULL), TANDEM_ESHAPE);
  /* A source takes no inputs: unused slots must be -1. */
  mpc_node_t nd;
  memset(&nd, 0, sizeof nd);
  nd.op = MPC_OP_INPUT;
  nd.shape = SHAPE(1, 2);
  snprintf(nd.name, sizeof nd.name, "zeroed");
  ASSERT_FAILS(mpc_graph_add(&g, &nd, errbuf, sizeof errbuf), TANDEM_EINVAL,
               "node 'zeroed' (Input)", "in[0]");
  /* The builder refuses sources (they need a shape). */
  ck_assert_int_eq(mpc_graph_op(&g, MPC_OP_PARAM, -1, -1, -1, NULL, "p"), TANDEM_EINVAL);
  ck_assert_uint_eq(g.nnodes, 3); /* failed adds leave the graph unchanged */
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_infer_matmul) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(100, 784));
  int w = param(&g, "w", SHAPE(784, 128));
  int y = op(&g, MPC_OP_MATMUL, x, w, -1, NULL, "fc1");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 100, 128);
  int x4 = input(&g, "x4", SHAPE(2, 3, 4, 5));
  int w5 = param(&g, "w5", SHAPE(5, 7));
  int y4 = op(&g, MPC_OP_MATMUL, x4, w5, -1, NULL, "mm4");
  ASSERT_OK(y4);
  ASSERT_SHAPE(&g.nodes[y4].shape, 2, 3, 4, 7);
  /* A weight on the left: [10, 100] x [100, 784]. */
  int wl = param(&g, "wl", SHAPE(10, 100));
  int xt = input(&g, "xt", SHAPE(100, 784));
  int yl = op(&g, MPC_OP_MATMUL, wl, xt, -1, NULL, "left");
  ASSERT_OK(yl);
  ASSERT_SHAPE(&g.nodes[yl].shape, 10, 784);

  int bad = param(&g, "bad", SHAPE(100, 10));
  ASSERT_FAILS(op(&g, MPC_OP_MATMUL, x, bad, -1, NULL, "fc1"), TANDEM_ESHAPE,
               "node 'fc1' (MatMul): inner dimensions differ: 784 vs 100", "[100, 784]",
               "[100, 10]");
  /* A 4-D in1 makes a batched product, whose inner dimensions must agree. */
  ASSERT_FAILS(op(&g, MPC_OP_MATMUL, x, x4, -1, NULL, "r3"), TANDEM_ESHAPE, "node 'r3' (MatMul)",
               "inner dimensions differ: 784 vs 4");
  int v = input(&g, "v", SHAPE(784));
  ASSERT_FAILS(op(&g, MPC_OP_MATMUL, v, w, -1, NULL, "r1"), TANDEM_ESHAPE, "node 'r1'");
  ASSERT_FAILS(op(&g, MPC_OP_MATMUL, x, w, 0, NULL, "three"), TANDEM_EINVAL, "node 'three'",
               "in[2]");
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_infer_gemm) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(100, 784));
  int w = param(&g, "w", SHAPE(784, 10));
  int wt = param(&g, "wt", SHAPE(10, 784));
  mpc_attr_t at = attr0();
  int y = op(&g, MPC_OP_GEMM, x, w, -1, &at, "g");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 100, 10);
  at.trans_b = 1;
  y = op(&g, MPC_OP_GEMM, x, wt, -1, &at, "gt");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 100, 10);
  at.trans_a = 1; /* x^T: [784, 100] x wt^T: needs K = 100 vs 784 */
  ASSERT_FAILS(op(&g, MPC_OP_GEMM, x, wt, -1, &at, "fc1"), TANDEM_ESHAPE,
               "node 'fc1' (Gemm): inner dimensions differ: 100 vs 784");
  int xa = input(&g, "xa", SHAPE(784, 100));
  y = op(&g, MPC_OP_GEMM, xa, wt, -1, &at, "tt");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 100, 10);

  at = attr0();
  int wbad = param(&g, "wbad", SHAPE(100, 10));
  ASSERT_FAILS(op(&g, MPC_OP_GEMM, x, wbad, -1, &at, "fc1"), TANDEM_ESHAPE,
               "node 'fc1' (Gemm): inner dimensions differ: 784 vs 100");

  /* Bias shapes that broadcast to [100, 10], and some that do not. */
  const mpc_shape_t good[] = {SHAPE(10), SHAPE(1, 10), SHAPE(100, 10), SHAPE(100, 1), SHAPE(1),
                              SHAPE(1, 1)};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    int b = param(&g, "b", good[i]);
    ASSERT_OK(op(&g, MPC_OP_GEMM, x, w, b, &at, "biased"));
  }
  const mpc_shape_t bad[] = {SHAPE(100), SHAPE(7), SHAPE(2, 10), SHAPE(1, 100, 10)};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int b = param(&g, "b", bad[i]);
    ASSERT_FAILS(op(&g, MPC_OP_GEMM, x, w, b, &at, "fcb"), TANDEM_ESHAPE, "node 'fcb' (Gemm)",
                 "does not broadcast", "[100, 10]");
  }
  int x3 = input(&g, "x3", SHAPE(2, 3, 4));
  ASSERT_FAILS(op(&g, MPC_OP_GEMM, x3, w, -1, &at, "g3"), TANDEM_ESHAPE, "node 'g3'", "2-D");
  at.alpha = INFINITY;
  ASSERT_FAILS(op(&g, MPC_OP_GEMM, x, w, -1, &at, "ginf"), TANDEM_EINVAL, "node 'ginf'", "finite");
  at.alpha = 1.0;
  at.beta = NAN;
  ASSERT_FAILS(op(&g, MPC_OP_GEMM, x, w, -1, &at, "gnan"), TANDEM_EINVAL, "node 'gnan'");
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_infer_conv) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(100, 1, 28, 28));
  int w = param(&g, "w", SHAPE(6, 1, 5, 5));
  int b = param(&g, "b", SHAPE(6));
  mpc_attr_t at = attr0();
  int y = op(&g, MPC_OP_CONV, x, w, b, &at, "conv1");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 100, 6, 24, 24);
  ck_assert_uint_eq(g.nodes[y].attr.kh, 5);
  ck_assert_uint_eq(g.nodes[y].attr.kw, 5);
  ck_assert_uint_eq(g.nodes[y].attr.strides[0], 1); /* 0 normalised to 1 */
  ck_assert_uint_eq(g.nodes[y].attr.dilations[1], 1);

  at.pads[0] = at.pads[1] = at.pads[2] = at.pads[3] = 2;
  y = op(&g, MPC_OP_CONV, x, w, -1, &at, "same");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 100, 6, 28, 28);

  /* (28 + 1 + 0 - 5) / 2 + 1 = 13; width with dilation 2: extent 9,
   * (28 + 0 + 3 - 9) / 3 + 1 = 8. */
  at = attr0();
  at.pads[0] = 1;
  at.pads[3] = 3;
  at.strides[0] = 2;
  at.strides[1] = 3;
  at.dilations[1] = 2;
  y = op(&g, MPC_OP_CONV, x, w, b, &at, "odd");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 100, 6, 13, 8);

  at = attr0();
  int w3 = param(&g, "w3", SHAPE(6, 3, 5, 5));
  ASSERT_FAILS(op(&g, MPC_OP_CONV, x, w3, -1, &at, "c1"), TANDEM_ESHAPE,
               "node 'c1' (Conv): input channels differ: 1 vs 3");
  int wbig = param(&g, "wbig", SHAPE(6, 1, 29, 3));
  ASSERT_FAILS(op(&g, MPC_OP_CONV, x, wbig, -1, &at, "big"), TANDEM_ESHAPE, "node 'big' (Conv)",
               "larger than the padded input 28x28");
  at.pads[0] = 1; /* 28 + 1 = 29 rows: now it fits */
  y = op(&g, MPC_OP_CONV, x, wbig, -1, &at, "fits");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 100, 6, 1, 26);
  at = attr0();
  at.dilations[0] = 7; /* extent (5-1)*7+1 = 29 > 28 */
  ASSERT_FAILS(op(&g, MPC_OP_CONV, x, w, -1, &at, "dil"), TANDEM_ESHAPE, "dilated 29x5");
  at = attr0();
  int b7 = param(&g, "b7", SHAPE(7));
  ASSERT_FAILS(op(&g, MPC_OP_CONV, x, w, b7, &at, "cb"), TANDEM_ESHAPE, "node 'cb'", "bias",
               "[6]");
  at.kh = 3;
  ASSERT_FAILS(op(&g, MPC_OP_CONV, x, w, -1, &at, "kattr"), TANDEM_ESHAPE, "node 'kattr'",
               "kernel attribute");
  at = attr0();
  int x3 = input(&g, "x3", SHAPE(1, 28, 28));
  ASSERT_FAILS(op(&g, MPC_OP_CONV, x3, w, -1, &at, "c3"), TANDEM_ESHAPE, "node 'c3'", "4-D");
  at.strides[0] = (size_t)1 << 20;
  ASSERT_FAILS(op(&g, MPC_OP_CONV, x, w, -1, &at, "huge"), TANDEM_EINVAL, "node 'huge'", "limit");
  ASSERT_FAILS(op(&g, MPC_OP_CONV, x, w, -1, &at, ""), TANDEM_EINVAL, "node 'Conv_", "(Conv)");
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_infer_addsub) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(8, 3, 4, 5));
  const mpc_shape_t good[] = {SHAPE(8, 3, 4, 5), SHAPE(5), SHAPE(4, 1), SHAPE(3, 1, 1),
                              SHAPE(1, 3, 1, 1), SHAPE(1)};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    int b = param(&g, "b", good[i]);
    int y = op(&g, MPC_OP_ADD, x, b, -1, NULL, "add");
    ASSERT_OK(y);
    ASSERT_SHAPE(&g.nodes[y].shape, 8, 3, 4, 5);
    y = op(&g, MPC_OP_SUB, x, b, -1, NULL, "sub");
    ASSERT_OK(y);
    ASSERT_SHAPE(&g.nodes[y].shape, 8, 3, 4, 5);
  }
  const mpc_shape_t bad[] = {SHAPE(4), SHAPE(2, 3, 4, 5), SHAPE(1, 8, 3, 4, 5), SHAPE(3, 4, 1, 5)};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int b = param(&g, "b", bad[i]);
    ASSERT_FAILS(op(&g, MPC_OP_ADD, x, b, -1, NULL, "res"), TANDEM_ESHAPE, "node 'res' (Add)",
                 "does not broadcast", "[8, 3, 4, 5]");
  }
  /* Broadcasting never enlarges in0. */
  int small = input(&g, "small", SHAPE(1, 5));
  int large = param(&g, "large", SHAPE(4, 5));
  ASSERT_FAILS(op(&g, MPC_OP_SUB, small, large, -1, NULL, "grow"), TANDEM_ESHAPE,
               "node 'grow' (Sub)", "in1 [4, 5] does not broadcast to in0 [1, 5]");
  ASSERT_FAILS(op(&g, MPC_OP_ADD, x, -1, -1, NULL, "one"), TANDEM_EINVAL, "node 'one'");
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_infer_unary) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(10, 3, 8, 8));
  mpc_attr_t at = attr0();
  at.scalar = 0.25;
  int y = op(&g, MPC_OP_MULC, x, -1, -1, &at, "m");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 10, 3, 8, 8);
  at.scalar = NAN;
  ASSERT_FAILS(op(&g, MPC_OP_MULC, x, -1, -1, &at, "mn"), TANDEM_EINVAL, "node 'mn' (MulC)");
  y = op(&g, MPC_OP_RELU, x, -1, -1, NULL, "r");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 10, 3, 8, 8);
  y = op(&g, MPC_OP_OUTPUT, x, -1, -1, NULL, "o");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 10, 3, 8, 8);

  /* Pools. */
  at = attr0();
  at.kh = at.kw = 2;
  at.strides[0] = at.strides[1] = 2;
  y = op(&g, MPC_OP_MAXPOOL, x, -1, -1, &at, "mp");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 10, 3, 4, 4);
  at = attr0();
  at.kh = 3;
  at.kw = 2;
  at.pads[0] = 1;
  at.pads[2] = 2; /* (8+3-3)/2+1 = 5; width (8-2)/1+1 = 7 */
  at.strides[0] = 2;
  y = op(&g, MPC_OP_AVGPOOL, x, -1, -1, &at, "ap");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 10, 3, 5, 7);
  ck_assert_uint_eq(g.nodes[y].attr.strides[1], 1);
  /* pads[2] = 3 with kh 3: the last window of a max pool is all padding. */
  at.pads[2] = 3; /* (8+4-3)/2+1 = 5: windows start at -1,1,3,5,7: fine */
  y = op(&g, MPC_OP_MAXPOOL, x, -1, -1, &at, "mp2");
  ASSERT_OK(y);
  at.strides[0] = 1;
  at.pads[0] = 0; /* windows start at 0..8; the one at 8 covers rows 8,9,10 */
  ASSERT_FAILS(op(&g, MPC_OP_MAXPOOL, x, -1, -1, &at, "mpad"), TANDEM_ESHAPE,
               "node 'mpad' (MaxPool)", "entirely in the padding");
  ASSERT_FAILS(op(&g, MPC_OP_AVGPOOL, x, -1, -1, &at, "apad"), TANDEM_ESHAPE,
               "node 'apad' (AveragePool)", "entirely in the padding");
  at.count_include_pad = 1; /* then the average of such a window is 0: allowed */
  y = op(&g, MPC_OP_AVGPOOL, x, -1, -1, &at, "apad1");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 10, 3, 9, 7);
  /* Dilation can skip over the input: kh 3, dilation 2 (taps -3,-1,1 for
   * pad 3 on a 1-row input). */
  int x1 = input(&g, "x1", SHAPE(1, 1, 1, 4));
  at = attr0();
  at.kh = 3;
  at.kw = 1;
  at.dilations[0] = 2;
  at.pads[0] = 3;
  at.pads[2] = 1;
  ASSERT_FAILS(op(&g, MPC_OP_MAXPOOL, x1, -1, -1, &at, "skip"), TANDEM_ESHAPE, "node 'skip'",
               "padding");
  at.pads[0] = at.pads[2] = 2; /* taps -2,0,2: the window hits row 0 */
  ASSERT_OK(op(&g, MPC_OP_MAXPOOL, x1, -1, -1, &at, "hit"));
  at = attr0();
  ASSERT_FAILS(op(&g, MPC_OP_MAXPOOL, x, -1, -1, &at, "k0"), TANDEM_EINVAL, "node 'k0'", "empty");
  at.kh = at.kw = 9;
  ASSERT_FAILS(op(&g, MPC_OP_AVGPOOL, x, -1, -1, &at, "k9"), TANDEM_ESHAPE, "node 'k9'",
               "larger than the padded input 8x8");
  int x2 = input(&g, "x2", SHAPE(10, 64));
  at.kh = at.kw = 2;
  ASSERT_FAILS(op(&g, MPC_OP_MAXPOOL, x2, -1, -1, &at, "p2"), TANDEM_ESHAPE, "node 'p2'", "4-D");

  /* Reshape: through mpc_graph_add with a target, or flattening through the
   * builder. */
  y = reshape(&g, x, SHAPE(10, 192), "flat");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 10, 192);
  ASSERT_FAILS(reshape(&g, x, SHAPE(10, 191), "rs"), TANDEM_ESHAPE, "node 'rs' (Reshape)",
               "[10, 3, 8, 8]", "[10, 191]", "element count");
  y = mpc_graph_op(&g, MPC_OP_RESHAPE, x, -1, -1, NULL, "flat2");
  ck_assert_int_ge(y, 0);
  ASSERT_SHAPE(&g.nodes[y].shape, 10, 192);

  /* Transpose. */
  at = attr0();
  at.perm[0] = 0;
  at.perm[1] = 2;
  at.perm[2] = 3;
  at.perm[3] = 1;
  int xr = input(&g, "xr", SHAPE(2, 3, 4, 5));
  y = op(&g, MPC_OP_TRANSPOSE, xr, -1, -1, &at, "nhwc");
  ASSERT_OK(y);
  ASSERT_SHAPE(&g.nodes[y].shape, 2, 4, 5, 3);
  at.perm[3] = 2;
  ASSERT_FAILS(op(&g, MPC_OP_TRANSPOSE, xr, -1, -1, &at, "dup"), TANDEM_EINVAL,
               "node 'dup' (Transpose)", "permutation");
  at.perm[3] = 4;
  ASSERT_FAILS(op(&g, MPC_OP_TRANSPOSE, xr, -1, -1, &at, "range"), TANDEM_EINVAL, "node 'range'");
  y = mpc_graph_op(&g, MPC_OP_TRANSPOSE, xr, -1, -1, NULL, "rev"); /* default: reverse */
  ck_assert_int_ge(y, 0);
  ASSERT_SHAPE(&g.nodes[y].shape, 5, 4, 3, 2);
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_topology) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(4, 4));
  ASSERT_FAILS(op(&g, MPC_OP_RELU, 1, -1, -1, NULL, "self"), TANDEM_EINVAL,
               "node 'self' (Relu)", "refers to node 1", "not an earlier node");
  ASSERT_FAILS(op(&g, MPC_OP_ADD, x, 5, -1, NULL, "fwd"), TANDEM_EINVAL, "node 'fwd' (Add)",
               "input 1 refers to node 5");
  ASSERT_FAILS(op(&g, MPC_OP_RELU, -2, -1, -1, NULL, "neg"), TANDEM_EINVAL, "node 'neg'");
  ASSERT_FAILS(op(&g, MPC_OP_RELU, -1, -1, -1, NULL, "none"), TANDEM_EINVAL, "node 'none'");
  ASSERT_FAILS(op(&g, MPC_OP_RELU, x, x, -1, NULL, "extra"), TANDEM_EINVAL, "node 'extra'",
               "in[1]");
  ASSERT_FAILS(op(&g, (mpc_op_t)42, x, -1, -1, NULL, "what"), TANDEM_EINVAL, "node 'what'",
               "unknown operator 42");
  ck_assert_uint_eq(g.nnodes, 1);
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_numel_overflow) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  static const double dummy = 0;
  ASSERT_FAILS(input(&g, "x", SHAPE((size_t)1 << 21, (size_t)1 << 20)), TANDEM_ESHAPE, "");
  ASSERT_FAILS(constant(&g, SHAPE((size_t)1 << 21, (size_t)1 << 20), &dummy, "big"),
               TANDEM_ESHAPE, "node 'big' (Const)", "2^40");
  ASSERT_FAILS(constant(&g, SHAPE((size_t)1 << 32, (size_t)1 << 32, 2), &dummy,
                        "wrap"),
               TANDEM_ESHAPE, "node 'wrap'", "2^40");
  ASSERT_OK(input(&g, "ok", SHAPE((size_t)1 << 20, (size_t)1 << 20))); /* exactly 2^40 */
  int x = input(&g, "x", SHAPE((size_t)1 << 20, 1));
  int w = param(&g, "w", SHAPE(1, (size_t)1 << 30));
  ASSERT_FAILS(op(&g, MPC_OP_MATMUL, x, w, -1, NULL, "outer"), TANDEM_ESHAPE,
               "node 'outer' (MatMul)", "output shape", "2^40");
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_ftensor_weights) {
  mpc_ftensor_t t;
  mpc_shape_t s = SHAPE(3, 4);
  ck_assert_int_eq(mpc_ftensor_init(&t, &s), 0);
  for (int i = 0; i < 12; i++)
    ck_assert(t.data[i] == 0.0);
  ASSERT_SHAPE(&t.shape, 3, 4);
  mpc_ftensor_close(&t);
  ck_assert_ptr_null(t.data);
  mpc_ftensor_close(&t);
  mpc_shape_t scalar;
  memset(&scalar, 0, sizeof scalar);
  ck_assert_int_eq(mpc_ftensor_init(&t, &scalar), 0);
  t.data[0] = 1.5;
  mpc_ftensor_close(&t);
  s = SHAPE(3, 0);
  ck_assert_int_eq(mpc_ftensor_init(&t, &s), TANDEM_EINVAL);
  ck_assert_ptr_null(t.data);
  ck_assert_int_eq(mpc_ftensor_init(&t, NULL), TANDEM_EINVAL);

  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(2, 3));
  int w = param(&g, "w", SHAPE(3, 4));
  int b = param(&g, "b", SHAPE(4));
  mpc_weights_t wt;
  ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
  ck_assert_ptr_eq(wt.graph, &g);
  ck_assert_ptr_null(wt.param[x].data);
  ck_assert_ptr_nonnull(wt.param[w].data);
  ASSERT_SHAPE(&wt.param[w].shape, 3, 4);
  ASSERT_SHAPE(&wt.param[b].shape, 4);
  for (int i = 0; i < 4; i++)
    ck_assert(wt.param[b].data[i] == 0.0);
  mpc_weights_close(&wt);
  ck_assert_ptr_null(wt.param);
  mpc_weights_close(&wt);
  ck_assert_int_eq(mpc_weights_init(&wt, NULL), TANDEM_EINVAL);
  mpc_graph_close(&g);
}
END_TEST

/* ---- the evaluator, operator by operator ------------------------------- */

START_TEST(test_eval_matmul) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(2, 3));
  int w = param(&g, "w", SHAPE(3, 2));
  int y = op(&g, MPC_OP_MATMUL, x, w, -1, NULL, "mm");
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "out"));
  mpc_weights_t wt;
  ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
  static const double wv[6] = {1, 2, 3, 4, 5, 6}; /* [[1,2],[3,4],[5,6]] */
  memcpy(wt.param[w].data, wv, sizeof wv);
  static const double xv[6] = {1, 0, -1, 2, 1, 0.5};
  mpc_ftensor_t in = tensor_of(SHAPE(2, 3), xv), out;
  ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, &out), 0);
  /* [1,0,-1]: [1-5, 2-6] = [-4,-4]; [2,1,.5]: [2+3+2.5, 4+4+3] = [7.5, 11] */
  static const double want[4] = {-4, -4, 7.5, 11};
  ASSERT_SHAPE(&out.shape, 2, 2);
  ASSERT_CLOSE(out.data, want, 4);
  mpc_ftensor_close(&out);
  mpc_ftensor_close(&in);
  mpc_weights_close(&wt);
  mpc_graph_close(&g);

  /* Leading batch dimensions: [2, 2, 3] x [3, 2] row by row. */
  mpc_graph_init(&g);
  x = input(&g, "x", SHAPE(2, 2, 3));
  w = param(&g, "w", SHAPE(3, 2));
  y = op(&g, MPC_OP_MATMUL, x, w, -1, NULL, "mm");
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "out"));
  ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
  memcpy(wt.param[w].data, wv, sizeof wv);
  static const double xv3[12] = {1, 0, -1, 2, 1, 0.5, 0, 0, 1, 1, 1, 1};
  in = tensor_of(SHAPE(2, 2, 3), xv3);
  ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, &out), 0);
  static const double want3[8] = {-4, -4, 7.5, 11, 5, 6, 9, 12};
  ASSERT_SHAPE(&out.shape, 2, 2, 2);
  ASSERT_CLOSE(out.data, want3, 8);
  mpc_ftensor_close(&out);
  mpc_ftensor_close(&in);
  mpc_weights_close(&wt);
  mpc_graph_close(&g);
}
END_TEST

/* Reference Gemm written with explicit element formulas. */
static void ref_gemm(int ta, int tb, double alpha, double beta, size_t m, size_t n, size_t k,
                     const double *a, const double *b, const double *c, size_t cr, size_t cc,
                     double *y) {
  for (size_t i = 0; i < m; i++)
    for (size_t j = 0; j < n; j++) {
      double acc = 0;
      for (size_t p = 0; p < k; p++) {
        double av = ta ? a[p * m + i] : a[i * k + p];
        double bv = tb ? b[j * k + p] : b[p * n + j];
        acc += av * bv;
      }
      double bias = c != NULL ? c[(cr == 1 ? 0 : i) * cc + (cc == 1 ? 0 : j)] : 0.0;
      y[i * n + j] = alpha * acc + beta * bias;
    }
}

START_TEST(test_eval_gemm) {
  /* One case by hand: A = [[1,2],[3,4]], B^T stored as [[1,0],[1,1],[0,2]]
   * (so B = [[1,1,0],[0,1,2]]), alpha 2, beta 0.5, C = [10,20,30]:
   * A B = [[1,3,4],[3,7,8]] -> 2AB + C/2 = [[7,16,23],[11,24,31]]. */
  {
    mpc_graph_t g;
    mpc_graph_init(&g);
    int x = input(&g, "x", SHAPE(2, 2));
    int w = param(&g, "w", SHAPE(3, 2));
    int c = param(&g, "c", SHAPE(3));
    mpc_attr_t at = attr0();
    at.trans_b = 1;
    at.alpha = 2;
    at.beta = 0.5;
    int y = op(&g, MPC_OP_GEMM, x, w, c, &at, "g");
    ASSERT_OK(op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "out"));
    mpc_weights_t wt;
    ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
    memcpy(wt.param[w].data, (double[]){1, 0, 1, 1, 0, 2}, 6 * sizeof(double));
    memcpy(wt.param[c].data, (double[]){10, 20, 30}, 3 * sizeof(double));
    mpc_ftensor_t in = tensor_of(SHAPE(2, 2), (double[]){1, 2, 3, 4}), out;
    ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, &out), 0);
    ASSERT_SHAPE(&out.shape, 2, 3);
    ASSERT_CLOSE(out.data, ((double[]){7, 16, 23, 11, 24, 31}), 6);
    mpc_ftensor_close(&out);
    mpc_ftensor_close(&in);
    mpc_weights_close(&wt);
    mpc_graph_close(&g);
  }
  /* Every transpose combination and bias shape against the reference. */
  const size_t M = 3, N = 4, K = 5;
  const size_t bias_dims[][3] = {/* ndim, d0, d1 */ {0, 0, 0}, {1, N, 0}, {2, 1, N},
                                 {2, M, N}, {2, M, 1}, {1, 1, 0}, {2, 1, 1}};
  rng_seed(0x6e6d);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (size_t bi = 0; bi < sizeof bias_dims / sizeof bias_dims[0]; bi++) {
        mpc_graph_t g;
        mpc_graph_init(&g);
        int x = ta ? input(&g, "x", SHAPE(K, M)) : input(&g, "x", SHAPE(M, K));
        int w = tb ? param(&g, "w", SHAPE(N, K)) : param(&g, "w", SHAPE(K, N));
        int c = -1;
        size_t cr = 1, cc = 1;
        if (bias_dims[bi][0] == 1) {
          c = param(&g, "c", SHAPE(bias_dims[bi][1]));
          cc = bias_dims[bi][1];
        } else if (bias_dims[bi][0] == 2) {
          c = param(&g, "c", SHAPE(bias_dims[bi][1], bias_dims[bi][2]));
          cr = bias_dims[bi][1];
          cc = bias_dims[bi][2];
        }
        mpc_attr_t at = attr0();
        at.trans_a = ta;
        at.trans_b = tb;
        at.alpha = -1.5;
        at.beta = 0.75;
        int y = op(&g, MPC_OP_GEMM, x, w, c, &at, "g");
        ASSERT_OK(y);
        ASSERT_OK(op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "out"));
        mpc_weights_t wt;
        ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
        fill_random(&wt.param[w]);
        if (c >= 0)
          fill_random(&wt.param[c]);
        mpc_ftensor_t in = tensor(g.nodes[x].shape), out;
        fill_random(&in);
        ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, &out), 0);
        ASSERT_SHAPE(&out.shape, M, N);
        double want[12];
        ref_gemm(ta, tb, -1.5, 0.75, M, N, K, in.data, wt.param[w].data,
                 c >= 0 ? wt.param[c].data : NULL, cr, cc, want);
        ASSERT_CLOSE(out.data, want, M * N);
        mpc_ftensor_close(&out);
        mpc_ftensor_close(&in);
        mpc_weights_close(&wt);
        mpc_graph_close(&g);
      }
}
END_TEST

/* Naive convolution: copies x into a zero-padded buffer, then sums over the
 * dilated window with no bounds tests. */
static void ref_conv(const double *x, size_t nb, size_t ci, size_t h, size_t wd, const double *w,
                     size_t co, size_t kh, size_t kw, const double *bias, const size_t pads[4],
                     size_t sh, size_t sw, size_t dh, size_t dw, double *y, size_t *oh_out,
                     size_t *ow_out) {
  size_t ph = h + pads[0] + pads[2], pw = wd + pads[1] + pads[3];
  double *xp = calloc(nb * ci * ph * pw, sizeof *xp);
  ck_assert_ptr_nonnull(xp);
  for (size_t b = 0; b < nb; b++)
    for (size_t c = 0; c < ci; c++)
      for (size_t i = 0; i < h; i++)
        for (size_t j = 0; j < wd; j++)
          xp[((b * ci + c) * ph + i + pads[0]) * pw + j + pads[1]] =
              x[((b * ci + c) * h + i) * wd + j];
  size_t oh = (ph - (kh - 1) * dh - 1) / sh + 1, ow = (pw - (kw - 1) * dw - 1) / sw + 1;
  for (size_t b = 0; b < nb; b++)
    for (size_t m = 0; m < co; m++)
      for (size_t oy = 0; oy < oh; oy++)
        for (size_t ox = 0; ox < ow; ox++) {
          double acc = bias != NULL ? bias[m] : 0.0;
          for (size_t c = 0; c < ci; c++)
            for (size_t i = 0; i < kh; i++)
              for (size_t j = 0; j < kw; j++)
                acc += w[((m * ci + c) * kh + i) * kw + j] *
                       xp[((b * ci + c) * ph + oy * sh + i * dh) * pw + ox * sw + j * dw];
          y[((b * co + m) * oh + oy) * ow + ox] = acc;
        }
  free(xp);
  *oh_out = oh;
  *ow_out = ow;
}

START_TEST(test_eval_conv) {
  /* By hand: a 3x3 input 1..9, a 2x2 kernel [[1,0],[0,-1]], bias 10:
   * each output is x[i][j] - x[i+1][j+1] + 10 = 6. */
  {
    mpc_graph_t g;
    mpc_graph_init(&g);
    int x = input(&g, "x", SHAPE(1, 1, 3, 3));
    int w = param(&g, "w", SHAPE(1, 1, 2, 2));
    int b = param(&g, "b", SHAPE(1));
    int y = op(&g, MPC_OP_CONV, x, w, b, NULL, "c");
    ASSERT_OK(op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "out"));
    mpc_weights_t wt;
    ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
    memcpy(wt.param[w].data, (double[]){1, 0, 0, -1}, 4 * sizeof(double));
    wt.param[b].data[0] = 10;
    mpc_ftensor_t in = tensor_of(SHAPE(1, 1, 3, 3), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9}), out;
    ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, &out), 0);
    ASSERT_SHAPE(&out.shape, 1, 1, 2, 2);
    ASSERT_CLOSE(out.data, ((double[]){6, 6, 6, 6}), 4);
    mpc_ftensor_close(&out);
    mpc_ftensor_close(&in);
    mpc_weights_close(&wt);
    mpc_graph_close(&g);
  }
  /* Pads, strides and dilations against the naive loop. */
  static const struct {
    size_t nb, ci, h, w, co, kh, kw, pads[4], sh, sw, dh, dw;
    int bias;
  } cases[] = {
      {2, 2, 7, 6, 3, 3, 3, {0, 0, 0, 0}, 1, 1, 1, 1, 1},
      {2, 2, 7, 6, 3, 3, 3, {1, 1, 1, 1}, 1, 1, 1, 1, 0},
      {1, 3, 8, 9, 2, 3, 2, {2, 0, 1, 3}, 2, 1, 1, 1, 1},
      {2, 1, 9, 9, 4, 3, 3, {1, 2, 0, 1}, 1, 2, 2, 1, 1},
      {1, 2, 10, 7, 2, 2, 3, {0, 1, 1, 0}, 3, 2, 2, 2, 1},
      {3, 1, 5, 5, 1, 5, 5, {2, 2, 2, 2}, 1, 1, 1, 1, 0},
      {1, 1, 4, 4, 1, 1, 1, {0, 0, 0, 0}, 2, 2, 1, 1, 1},
  };
  for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
    rng_seed(0xc0de + t);
    mpc_graph_t g;
    mpc_graph_init(&g);
    int x = input(&g, "x", SHAPE(cases[t].nb, cases[t].ci, cases[t].h, cases[t].w));
    int w = param(&g, "w", SHAPE(cases[t].co, cases[t].ci, cases[t].kh, cases[t].kw));
    int b = cases[t].bias ? param(&g, "b", SHAPE(cases[t].co)) : -1;
    mpc_attr_t at = attr0();
    memcpy(at.pads, cases[t].pads, sizeof at.pads);
    at.strides[0] = cases[t].sh;
    at.strides[1] = cases[t].sw;
    at.dilations[0] = cases[t].dh;
    at.dilations[1] = cases[t].dw;
    int y = op(&g, MPC_OP_CONV, x, w, b, &at, "c");
    ASSERT_OK(y);
    ASSERT_OK(op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "out"));
    mpc_weights_t wt;
    ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
    fill_random(&wt.param[w]);
    if (b >= 0)
      fill_random(&wt.param[b]);
    mpc_ftensor_t in = tensor(g.nodes[x].shape), out;
    fill_random(&in);
    ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, &out), 0);
    size_t n = mpc_shape_numel(&out.shape), oh, ow;
    double *want = calloc(n, sizeof *want);
    ck_assert_ptr_nonnull(want);
    ref_conv(in.data, cases[t].nb, cases[t].ci, cases[t].h, cases[t].w, wt.param[w].data,
             cases[t].co, cases[t].kh, cases[t].kw, b >= 0 ? wt.param[b].data : NULL,
             cases[t].pads, cases[t].sh, cases[t].sw, cases[t].dh, cases[t].dw, want, &oh, &ow);
    ck_assert_msg(out.shape.dim[2] == oh && out.shape.dim[3] == ow, "case %zu (seed %#zx)", t,
                  (size_t)0xc0de + t);
    ASSERT_SHAPE(&out.shape, cases[t].nb, cases[t].co, oh, ow);
    ASSERT_CLOSE(out.data, want, n);
    free(want);
    mpc_ftensor_close(&out);
    mpc_ftensor_close(&in);
    mpc_weights_close(&wt);
    mpc_graph_close(&g);
  }
}
END_TEST

/* Runs one pooling node on a 1x1xHxW input and compares with want. */
static void pool_case(mpc_op_t o, const mpc_attr_t *at, size_t h, size_t w, const double *x,
                      size_t oh, size_t ow, const double *want, int line) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int xi = input(&g, "x", SHAPE(1, 1, h, w));
  int y = op(&g, o, xi, -1, -1, at, "pool");
  ck_assert_msg(y >= 0, "line %d: %s", line, errbuf);
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "out"));
  mpc_ftensor_t in = tensor_of(SHAPE(1, 1, h, w), x), out;
  ck_assert_int_eq(mpc_eval_float(&g, NULL, &in, &out), 0);
  assert_shape_(&out.shape, (size_t[]){1, 1, oh, ow}, 4, line);
  assert_close_(out.data, want, oh * ow, line);
  mpc_ftensor_close(&out);
  mpc_ftensor_close(&in);
  mpc_graph_close(&g);
}

START_TEST(test_eval_pools) {
  static const double x16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  mpc_attr_t at = attr0();
  at.kh = at.kw = 2;
  at.strides[0] = at.strides[1] = 2;
  pool_case(MPC_OP_MAXPOOL, &at, 4, 4, x16, 2, 2, (double[]){6, 8, 14, 16}, __LINE__);
  pool_case(MPC_OP_AVGPOOL, &at, 4, 4, x16, 2, 2, (double[]){3.5, 5.5, 11.5, 13.5}, __LINE__);

  /* Negative values with padding: a max ignores the padding (it is -inf,
   * not 0). 3x3 window, pad 1, stride 2 on a 3x3 input of -1..-9. */
  static const double xn[9] = {-1, -2, -3, -4, -5, -6, -7, -8, -9};
  at = attr0();
  at.kh = at.kw = 3;
  at.pads[0] = at.pads[1] = at.pads[2] = at.pads[3] = 1;
  at.strides[0] = at.strides[1] = 2;
  pool_case(MPC_OP_MAXPOOL, &at, 3, 3, xn, 2, 2, (double[]){-1, -2, -4, -5}, __LINE__);
  /* Averages of the same windows: each covers a 2x2 corner of the input.
   * Corners: {-1,-2,-4,-5} = -12, {-2,-3,-5,-6} = -16, {-4,-5,-7,-8} = -24,
   * {-5,-6,-8,-9} = -28; divided by 4 (padding left out) or 9 (counted). */
  pool_case(MPC_OP_AVGPOOL, &at, 3, 3, xn, 2, 2, (double[]){-3, -4, -6, -7}, __LINE__);
  at.count_include_pad = 1;
  pool_case(MPC_OP_AVGPOOL, &at, 3, 3, xn, 2, 2,
            (double[]){-12.0 / 9, -16.0 / 9, -24.0 / 9, -28.0 / 9}, __LINE__);

  /* Asymmetric padding, stride 1: 2x2 window, pads top 1 / right 1 on the
   * 4x4 input 1..16: output 4x4. Row 0 windows straddle the top padding. */
  at = attr0();
  at.kh = at.kw = 2;
  at.pads[0] = 1;
  at.pads[3] = 1;
  pool_case(MPC_OP_MAXPOOL, &at, 4, 4, x16, 4, 4,
            (double[]){2, 3, 4, 4, 6, 7, 8, 8, 10, 11, 12, 12, 14, 15, 16, 16}, __LINE__);
  pool_case(MPC_OP_AVGPOOL, &at, 4, 4, x16, 4, 4,
            (double[]){1.5, 2.5, 3.5, 4, 3.5, 4.5, 5.5, 6, 7.5, 8.5, 9.5, 10, 11.5, 12.5, 13.5, 14},
            __LINE__);
  at.count_include_pad = 1;
  pool_case(MPC_OP_AVGPOOL, &at, 4, 4, x16, 4, 4,
            (double[]){0.75, 1.25, 1.75, 1, 3.5, 4.5, 5.5, 3, 7.5, 8.5, 9.5, 5, 11.5, 12.5, 13.5, 7},
            __LINE__);

  /* Dilated max pool: 2x2 window, dilation 2, on the 4x4 input: taps
   * (i,j),(i,j+2),(i+2,j),(i+2,j+2) -> max is x[i+2][j+2]. */
  at = attr0();
  at.kh = at.kw = 2;
  at.dilations[0] = at.dilations[1] = 2;
  pool_case(MPC_OP_MAXPOOL, &at, 4, 4, x16, 2, 2, (double[]){11, 12, 15, 16}, __LINE__);
}
END_TEST

START_TEST(test_eval_addsub_const) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(2, 2, 3));
  static const double c3[3] = {10, 20, 30};
  static const double c21[2] = {100, 200};
  int k3 = constant(&g, SHAPE(3), c3, "k3");
  int k21 = constant(&g, SHAPE(2, 1), c21, "k21");
  int p = param(&g, "p", SHAPE(1, 2, 1));
  int one = param(&g, "one", SHAPE(1));
  int a1 = op(&g, MPC_OP_ADD, x, k3, -1, NULL, "a1");
  int s1 = op(&g, MPC_OP_SUB, x, k21, -1, NULL, "s1");
  int a2 = op(&g, MPC_OP_ADD, x, p, -1, NULL, "a2");
  int s2 = op(&g, MPC_OP_SUB, x, one, -1, NULL, "s2");
  int s3 = op(&g, MPC_OP_SUB, x, x, -1, NULL, "s3");
  int outs[] = {a1, s1, a2, s2, s3};
  for (int i = 0; i < 5; i++)
    ASSERT_OK(op(&g, MPC_OP_OUTPUT, outs[i], -1, -1, NULL, "o"));
  mpc_weights_t wt;
  ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
  wt.param[p].data[0] = 1000;
  wt.param[p].data[1] = 2000;
  wt.param[one].data[0] = 0.5;
  static const double xv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  mpc_ftensor_t in = tensor_of(SHAPE(2, 2, 3), xv), out[5];
  ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, out), 0);
  static const double want[5][12] = {
      {11, 22, 33, 14, 25, 36, 17, 28, 39, 20, 31, 42},
      {-99, -98, -97, -196, -195, -194, -93, -92, -91, -190, -189, -188},
      {1001, 1002, 1003, 2004, 2005, 2006, 1007, 1008, 1009, 2010, 2011, 2012},
      {0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5},
      {0}};
  for (int i = 0; i < 5; i++) {
    ASSERT_SHAPE(&out[i].shape, 2, 2, 3);
    ASSERT_CLOSE(out[i].data, want[i], 12);
    mpc_ftensor_close(&out[i]);
  }
  mpc_ftensor_close(&in);
  mpc_weights_close(&wt);
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_eval_elementwise_layout) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(2, 3, 4));
  mpc_attr_t at = attr0();
  at.scalar = -0.5;
  int m = op(&g, MPC_OP_MULC, x, -1, -1, &at, "m");
  int r = op(&g, MPC_OP_RELU, x, -1, -1, NULL, "r");
  int rs = reshape(&g, x, SHAPE(4, 6), "rs");
  at = attr0();
  at.perm[0] = 2;
  at.perm[1] = 0;
  at.perm[2] = 1;
  int t = op(&g, MPC_OP_TRANSPOSE, x, -1, -1, &at, "t");
  int outs[] = {m, r, rs, t, x};
  for (int i = 0; i < 5; i++)
    ASSERT_OK(op(&g, MPC_OP_OUTPUT, outs[i], -1, -1, NULL, "o"));
  double xv[24];
  for (int i = 0; i < 24; i++)
    xv[i] = (i % 3 == 0 ? -1.0 : 1.0) * (i + 1);
  mpc_ftensor_t in = tensor_of(SHAPE(2, 3, 4), xv), out[5];
  ck_assert_int_eq(mpc_eval_float(&g, NULL, &in, out), 0);
  ASSERT_SHAPE(&out[0].shape, 2, 3, 4);
  ASSERT_SHAPE(&out[2].shape, 4, 6);
  ASSERT_SHAPE(&out[3].shape, 4, 2, 3);
  ASSERT_SHAPE(&out[4].shape, 2, 3, 4);
  for (int i = 0; i < 24; i++) {
    ck_assert(out[0].data[i] == -0.5 * xv[i]);
    ck_assert(out[1].data[i] == (xv[i] > 0 ? xv[i] : 0.0));
    ck_assert(out[2].data[i] == xv[i]);
    ck_assert(out[4].data[i] == xv[i]);
  }
  /* y[k][i][j] = x[i][j][k]. */
  for (size_t i = 0; i < 2; i++)
    for (size_t j = 0; j < 3; j++)
      for (size_t k = 0; k < 4; k++)
        ck_assert(out[3].data[(k * 2 + i) * 3 + j] == xv[(i * 3 + j) * 4 + k]);
  ck_assert(out[3].data[1] == xv[4]); /* y[0][0][1] = x[0][1][0] */
  for (int i = 0; i < 5; i++)
    mpc_ftensor_close(&out[i]);
  mpc_ftensor_close(&in);
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_eval_batch_layout) {
  /* Declared batch 100; evaluated at batch 3. Reshape's first dimension and a
   * transpose that moves the batch both follow. */
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(100, 4));
  int rs = reshape(&g, x, SHAPE(100, 2, 2), "rs");
  mpc_attr_t at = attr0();
  at.perm[0] = 1;
  at.perm[1] = 0;
  int t = op(&g, MPC_OP_TRANSPOSE, x, -1, -1, &at, "t");
  ASSERT_SHAPE(&g.nodes[t].shape, 4, 100);
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, rs, -1, -1, NULL, "o1"));
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, t, -1, -1, NULL, "o2"));
  double xv[12];
  for (int i = 0; i < 12; i++)
    xv[i] = i;
  mpc_ftensor_t in = tensor_of(SHAPE(3, 4), xv), out[2];
  ck_assert_int_eq(mpc_eval_float(&g, NULL, &in, out), 0);
  ASSERT_SHAPE(&out[0].shape, 3, 2, 2);
  ASSERT_SHAPE(&out[1].shape, 4, 3);
  ASSERT_CLOSE(out[1].data, ((double[]){0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}), 12);
  mpc_ftensor_close(&out[0]);
  mpc_ftensor_close(&out[1]);
  mpc_ftensor_close(&in);
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_eval_errors) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(4, 3));
  int w = param(&g, "w", SHAPE(3, 2));
  int c = param(&g, "c", SHAPE(4, 2)); /* tied to the declared batch */
  int r = op(&g, MPC_OP_RELU, x, -1, -1, NULL, "r");
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, r, -1, -1, NULL, "o1"));
  int y = op(&g, MPC_OP_GEMM, x, w, c, NULL, "g");
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "o2"));
  mpc_weights_t wt;
  ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
  mpc_ftensor_t out[2];

  /* The declared batch works. */
  mpc_ftensor_t in = tensor(SHAPE(4, 3));
  ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, out), 0);
  mpc_ftensor_close(&out[0]);
  mpc_ftensor_close(&out[1]);
  mpc_ftensor_close(&in);

  /* Another batch breaks the bias: the first output, already made, is
   * closed again and both are left closed. */
  in = tensor(SHAPE(5, 3));
  ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, out), TANDEM_ESHAPE);
  ck_assert_ptr_null(out[0].data);
  ck_assert_ptr_null(out[1].data);
  mpc_ftensor_close(&in);

  /* Only dim 0 may differ from the declared input shape. */
  in = tensor(SHAPE(4, 4));
  ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, out), TANDEM_ESHAPE);
  mpc_ftensor_close(&in);
  in = tensor(SHAPE(12));
  ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, out), TANDEM_ESHAPE);
  mpc_ftensor_close(&in);

  in = tensor(SHAPE(4, 3));
  ck_assert_int_eq(mpc_eval_float(&g, NULL, &in, out), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_eval_float(&g, &wt, NULL, out), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, NULL), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_eval_float(NULL, &wt, &in, out), TANDEM_EINVAL);
  /* A weight tensor of the wrong shape. */
  mpc_ftensor_close(&wt.param[w]);
  mpc_shape_t ws = SHAPE(2, 3);
  ck_assert_int_eq(mpc_ftensor_init(&wt.param[w], &ws), 0);
  ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, out), TANDEM_ESHAPE);
  /* Weights of another graph. */
  mpc_graph_t g2;
  mpc_graph_init(&g2);
  ASSERT_OK(param(&g2, "w", SHAPE(3, 2)));
  mpc_weights_t wt2;
  ck_assert_int_eq(mpc_weights_init(&wt2, &g2), 0);
  ck_assert_int_eq(mpc_eval_float(&g, &wt2, &in, out), TANDEM_EINVAL);
  mpc_weights_close(&wt2);
  mpc_graph_close(&g2);
  mpc_ftensor_close(&in);
  mpc_weights_close(&wt);
  mpc_graph_close(&g);
}
END_TEST

/* ---- end to end ---------------------------------------------------------- */

/* y[b][n] = sum_k x[b][k] w[k][n] + bias[n] (w is K x N). */
static void ref_dense(const double *x, size_t nb, size_t k, const double *w, size_t n,
                      const double *bias, int relu, double *y) {
  for (size_t b = 0; b < nb; b++)
    for (size_t j = 0; j < n; j++) {
      double acc = bias[j];
      for (size_t p = 0; p < k; p++)
        acc += x[b * k + p] * w[p * n + j];
      y[b * n + j] = relu && acc < 0 ? 0 : acc;
    }
}

START_TEST(test_mlp_batch) {
  /* x[100,784] -MatMul W1[784,128] -Add b1- Relu -Gemm(transB) W2[10,128] + b2[10] */
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(100, 784));
  int w1 = param(&g, "w1", SHAPE(784, 128));
  int b1 = param(&g, "b1", SHAPE(128));
  int w2 = param(&g, "w2", SHAPE(10, 128));
  int b2 = param(&g, "b2", SHAPE(10));
  int h = op(&g, MPC_OP_MATMUL, x, w1, -1, NULL, "fc1");
  h = op(&g, MPC_OP_ADD, h, b1, -1, NULL, "bias1");
  h = op(&g, MPC_OP_RELU, h, -1, -1, NULL, "relu1");
  mpc_attr_t at = attr0();
  at.trans_b = 1;
  int y = op(&g, MPC_OP_GEMM, h, w2, b2, &at, "fc2");
  ASSERT_OK(y);
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "logits"));
  ASSERT_SHAPE(&g.nodes[y].shape, 100, 10);

  rng_seed(0x313);
  mpc_weights_t wt;
  ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
  int ps[] = {w1, b1, w2, b2};
  for (int i = 0; i < 4; i++)
    fill_random(&wt.param[ps[i]]);
  double *w2t = malloc(128 * 10 * sizeof *w2t); /* the reference wants K x N */
  ck_assert_ptr_nonnull(w2t);
  for (size_t k = 0; k < 128; k++)
    for (size_t n = 0; n < 10; n++)
      w2t[k * 10 + n] = wt.param[w2].data[n * 128 + k];

  const size_t batches[] = {7, 100, 1};
  for (size_t bi = 0; bi < 3; bi++) {
    size_t nb = batches[bi];
    mpc_ftensor_t in = tensor(SHAPE(nb, 784)), out;
    fill_random(&in);
    ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, &out), 0);
    ASSERT_SHAPE(&out.shape, nb, 10);
    double *hid = malloc(nb * 128 * sizeof *hid), *want = malloc(nb * 10 * sizeof *want);
    ck_assert(hid != NULL && want != NULL);
    ref_dense(in.data, nb, 784, wt.param[w1].data, 128, wt.param[b1].data, 1, hid);
    ref_dense(hid, nb, 128, w2t, 10, wt.param[b2].data, 0, want);
    ASSERT_CLOSE(out.data, want, nb * 10);
    free(hid);
    free(want);
    mpc_ftensor_close(&out);
    mpc_ftensor_close(&in);
  }
  free(w2t);
  mpc_weights_close(&wt);
  mpc_graph_close(&g);
}
END_TEST

/* 2x2 stride-2 max pool of planes of h x w (even). */
static void ref_maxpool2(const double *x, size_t planes, size_t h, size_t w, double *y) {
  for (size_t p = 0; p < planes; p++)
    for (size_t i = 0; i < h / 2; i++)
      for (size_t j = 0; j < w / 2; j++) {
        const double *q = x + (p * h + 2 * i) * w + 2 * j;
        double m = fmax(fmax(q[0], q[1]), fmax(q[w], q[w + 1]));
        y[(p * (h / 2) + i) * (w / 2) + j] = m;
      }
}

static void ref_relu(double *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = x[i] > 0 ? x[i] : 0;
}

START_TEST(test_cnn_batch) {
  /* LeNet-like: x[100,1,28,28] -Conv 6x5x5- Relu -MaxPool 2- Conv 16x5x5 -
   * Relu -MaxPool 2- Flatten [.,256] -Gemm 256x32- Relu -Gemm 32x10- out. */
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(100, 1, 28, 28));
  int c1w = param(&g, "c1w", SHAPE(6, 1, 5, 5));
  int c1b = param(&g, "c1b", SHAPE(6));
  int c2w = param(&g, "c2w", SHAPE(16, 6, 5, 5));
  int c2b = param(&g, "c2b", SHAPE(16));
  int f1w = param(&g, "f1w", SHAPE(256, 32));
  int f1b = param(&g, "f1b", SHAPE(32));
  int f2w = param(&g, "f2w", SHAPE(32, 10));
  int f2b = param(&g, "f2b", SHAPE(1, 10));
  mpc_attr_t pool = attr0();
  pool.kh = pool.kw = 2;
  pool.strides[0] = pool.strides[1] = 2;
  int h = op(&g, MPC_OP_CONV, x, c1w, c1b, NULL, "conv1");
  h = op(&g, MPC_OP_RELU, h, -1, -1, NULL, "relu1");
  h = op(&g, MPC_OP_MAXPOOL, h, -1, -1, &pool, "pool1");
  h = op(&g, MPC_OP_CONV, h, c2w, c2b, NULL, "conv2");
  h = op(&g, MPC_OP_RELU, h, -1, -1, NULL, "relu2");
  h = op(&g, MPC_OP_MAXPOOL, h, -1, -1, &pool, "pool2");
  ASSERT_SHAPE(&g.nodes[h].shape, 100, 16, 4, 4);
  h = mpc_graph_op(&g, MPC_OP_RESHAPE, h, -1, -1, NULL, "flatten");
  ck_assert_int_ge(h, 0);
  ASSERT_SHAPE(&g.nodes[h].shape, 100, 256);
  h = op(&g, MPC_OP_GEMM, h, f1w, f1b, NULL, "fc1");
  h = op(&g, MPC_OP_RELU, h, -1, -1, NULL, "relu3");
  int y = op(&g, MPC_OP_GEMM, h, f2w, f2b, NULL, "fc2");
  ASSERT_OK(y);
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, y, -1, -1, NULL, "logits"));

  rng_seed(0x1e7e7);
  mpc_weights_t wt;
  ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
  int ps[] = {c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b};
  for (int i = 0; i < 8; i++)
    fill_random(&wt.param[ps[i]]);

  const size_t batches[] = {3, 100};
  for (size_t bi = 0; bi < 2; bi++) {
    size_t nb = batches[bi];
    mpc_ftensor_t in = tensor(SHAPE(nb, 1, 28, 28)), out;
    fill_random(&in);
    ck_assert_int_eq(mpc_eval_float(&g, &wt, &in, &out), 0);
    ASSERT_SHAPE(&out.shape, nb, 10);

    /* The reference, layer by layer with the test's own loops. */
    static const size_t zero[4] = {0, 0, 0, 0};
    size_t oh, ow;
    double *a1 = malloc(nb * 6 * 24 * 24 * sizeof(double));
    double *p1 = malloc(nb * 6 * 12 * 12 * sizeof(double));
    double *a2 = malloc(nb * 16 * 8 * 8 * sizeof(double));
    double *p2 = malloc(nb * 256 * sizeof(double));
    double *f1 = malloc(nb * 32 * sizeof(double));
    double *want = malloc(nb * 10 * sizeof(double));
    ck_assert(a1 && p1 && a2 && p2 && f1 && want);
    ref_conv(in.data, nb, 1, 28, 28, wt.param[c1w].data, 6, 5, 5, wt.param[c1b].data, zero, 1,
             1, 1, 1, a1, &oh, &ow);
    ref_relu(a1, nb * 6 * 24 * 24);
    ref_maxpool2(a1, nb * 6, 24, 24, p1);
    ref_conv(p1, nb, 6, 12, 12, wt.param[c2w].data, 16, 5, 5, wt.param[c2b].data, zero, 1, 1, 1,
             1, a2, &oh, &ow);
    ref_relu(a2, nb * 16 * 8 * 8);
    ref_maxpool2(a2, nb * 16, 8, 8, p2);
    ref_dense(p2, nb, 256, wt.param[f1w].data, 32, wt.param[f1b].data, 1, f1);
    ref_dense(f1, nb, 32, wt.param[f2w].data, 10, wt.param[f2b].data, 0, want);
    ASSERT_CLOSE(out.data, want, nb * 10);
    free(a1);
    free(p1);
    free(a2);
    free(p2);
    free(f1);
    free(want);
    mpc_ftensor_close(&out);
    mpc_ftensor_close(&in);
  }
  mpc_weights_close(&wt);
  mpc_graph_close(&g);
}
END_TEST

/* The owner's input bound: the worst case of every value over the weights'
 * magnitudes. Here relu(x W + b) * -3 peaks at 3 * 5 B (column 1 of W has
 * magnitudes 2 and 3 and no bias), which must stay below 2^(62 - 2*16 - 1). */
START_TEST(test_input_bound) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(1, 2));
  int w = param(&g, "W", SHAPE(2, 3));
  int b = param(&g, "b", SHAPE(3));
  int mm = op(&g, MPC_OP_MATMUL, x, w, -1, NULL, "mm");
  int ad = op(&g, MPC_OP_ADD, mm, b, -1, NULL, "add");
  int re = op(&g, MPC_OP_RELU, ad, -1, -1, NULL, "relu");
  mpc_attr_t at = attr0();
  at.scalar = -3;
  int mc = op(&g, MPC_OP_MULC, re, -1, -1, &at, "mulc");
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, mc, -1, -1, NULL, "y"));
  mpc_weights_t wt;
  ck_assert_int_eq(mpc_weights_init(&wt, &g), 0);
  static const double wv[6] = {1, -2, 0.5, -1, 3, 0}, bv[3] = {-4, 0, 1};
  memcpy(wt.param[w].data, wv, sizeof wv);
  memcpy(wt.param[b].data, bv, sizeof bv);
  double bound = 0, want = ldexp(1.0, 29) / 15;
  ck_assert_int_eq(mpc_weights_input_bound(&g, &wt, &bound), 0);
  ck_assert_msg(bound <= want && bound >= want * (1 - 1e-6), "bound %.9g, want %.9g", bound,
                want);
  /* A subtraction counts as an addition of magnitudes: x - k peaks at B + 7. */
  mpc_graph_t h;
  mpc_graph_init(&h);
  static const double kv[2] = {-7, 7};
  int hx = input(&h, "x", SHAPE(1, 2));
  int hk = constant(&h, SHAPE(2), kv, "k");
  int hs = op(&h, MPC_OP_SUB, hx, hk, -1, NULL, "sub");
  ASSERT_OK(op(&h, MPC_OP_OUTPUT, hs, -1, -1, NULL, "y"));
  mpc_weights_t wh;
  ck_assert_int_eq(mpc_weights_init(&wh, &h), 0);
  want = ldexp(1.0, 29) - 7;
  ck_assert_int_eq(mpc_weights_input_bound(&h, &wh, &bound), 0);
  ck_assert_msg(bound <= want && bound >= want * (1 - 1e-6), "bound %.9g, want %.9g", bound,
                want);
  /* A bias that overflows whatever the input is refused. */
  wt.param[b].data[2] = ldexp(1.0, 30);
  ck_assert_int_eq(mpc_weights_input_bound(&g, &wt, &bound), TANDEM_ERANGE);
  /* At f = 20 the range shrinks by 2^8. */
  wt.param[b].data[2] = 1;
  g.frac_bits = 20;
  want = ldexp(1.0, 21) / 15;
  ck_assert_int_eq(mpc_weights_input_bound(&g, &wt, &bound), 0);
  ck_assert_msg(bound <= want && bound >= want * (1 - 1e-6), "f=20: bound %.9g, want %.9g",
                bound, want);
  mpc_weights_close(&wh);
  mpc_graph_close(&h);
  mpc_weights_close(&wt);
  mpc_graph_close(&g);
}
END_TEST

/* A ReLU feeding only a MaxPool runs after it (fewer elements through the
 * two-DCF gate, same rounds); one with another consumer stays in place. */
static void gate_kinds(const mpc_graph_t *g, char *buf, size_t len) {
  mpc_plan_t *p;
  char err[256];
  ck_assert_msg(mpc_plan_new(&p, g, 1, err, sizeof err) == 0, "%s", err);
  buf[0] = '\0';
  for (size_t i = 0; i < mpc_plan_ngates(p); i++) {
    mpc_gate_info_t gi;
    ck_assert_int_eq(mpc_plan_gate(p, i, &gi), 0);
    if (strcmp(gi.kind, "layout") != 0 && strcmp(gi.kind, "input") != 0)
      snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? " " : "", gi.kind);
  }
  mpc_plan_free(p);
}

START_TEST(test_plan_relu_after_pool) {
  mpc_attr_t at = attr0();
  at.kh = at.kw = 2;
  at.strides[0] = at.strides[1] = 2;
  char kinds[256];
  for (int shared = 0; shared < 2; shared++) {
    mpc_graph_t g;
    mpc_graph_init(&g);
    int x = input(&g, "x", SHAPE(1, 1, 4, 4));
    int w = param(&g, "w", SHAPE(1, 1, 1, 1));
    int c = op(&g, MPC_OP_CONV, x, w, -1, NULL, "conv");
    int r = op(&g, MPC_OP_RELU, c, -1, -1, NULL, "relu");
    int m = op(&g, MPC_OP_MAXPOOL, r, -1, -1, &at, "pool");
    ASSERT_OK(op(&g, MPC_OP_OUTPUT, m, -1, -1, NULL, "y"));
    if (shared)
      ASSERT_OK(op(&g, MPC_OP_OUTPUT, r, -1, -1, NULL, "r"));
    gate_kinds(&g, kinds, sizeof kinds);
    if (!shared)
      ck_assert_str_eq(kinds, "bilinear max-level max-level relu+trunc output");
    else
      ck_assert_str_eq(kinds, "bilinear relu+trunc max-level max-level output output");
    mpc_graph_close(&g);
  }
}
END_TEST

/* Found by fuzz_graph: a convolution of a parameter (not an activation)
 * made the plan compiler index value -1; it is refused, naming the node. */
START_TEST(test_plan_conv_of_param) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  int x = input(&g, "x", SHAPE(1, 1, 4, 4));
  int p = param(&g, "p", SHAPE(1, 1, 4, 4));
  int w = param(&g, "w", SHAPE(1, 1, 1, 1));
  int c = op(&g, MPC_OP_CONV, p, w, -1, NULL, "conv");
  ck_assert_int_ge(c, 0);
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, c, -1, -1, NULL, "y"));
  ASSERT_OK(op(&g, MPC_OP_OUTPUT, x, -1, -1, NULL, "x_out"));
  mpc_plan_t *plan = NULL;
  char err[256] = "";
  ck_assert_int_eq(mpc_plan_new(&plan, &g, 1, err, sizeof err), TANDEM_EUNSUPOP);
  ck_assert_msg(strstr(err, "conv") != NULL, "%s", err);
  mpc_graph_close(&g);
}
END_TEST

Suite *graph_suite(void) {
  Suite *s = suite_create("graph");
  TCase *tc = tcase_create("build");
  tcase_add_test(tc, test_names);
  tcase_add_test(tc, test_numel);
  tcase_add_test(tc, test_init_grow_names);
  tcase_add_test(tc, test_sources);
  tcase_add_test(tc, test_infer_matmul);
  tcase_add_test(tc, test_infer_gemm);
  tcase_add_test(tc, test_infer_conv);
  tcase_add_test(tc, test_infer_addsub);
  tcase_add_test(tc, test_infer_unary);
  tcase_add_test(tc, test_topology);
  tcase_add_test(tc, test_numel_overflow);
  tcase_add_test(tc, test_ftensor_weights);
  suite_add_tcase(s, tc);
  tc = tcase_create("eval");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_eval_matmul);
  tcase_add_test(tc, test_eval_gemm);
  tcase_add_test(tc, test_eval_conv);
  tcase_add_test(tc, test_eval_pools);
  tcase_add_test(tc, test_eval_addsub_const);
  tcase_add_test(tc, test_eval_elementwise_layout);
  tcase_add_test(tc, test_eval_batch_layout);
  tcase_add_test(tc, test_eval_errors);
  tcase_add_test(tc, test_mlp_batch);
  tcase_add_test(tc, test_cnn_batch);
  tcase_add_test(tc, test_input_bound);
  tcase_add_test(tc, test_plan_relu_after_pool);
  tcase_add_test(tc, test_plan_conv_of_param);
  suite_add_tcase(s, tc);
  return s;
}
