/* test_cnn_ops.c - Check suite "cnn_ops": the operators of the common CNN
 * architectures (issue 11) that the importer maps onto existing gates, run
 * privately (owner, dealer, P0, P1 and client as threads over the in-memory
 * hub, tests/mpc/harness.c) at a batch size other than the declared one and
 * compared with the plaintext evaluator of the same imported graph; the
 * evaluator itself is held to the ONNX backend node tests
 * (test_onnx_conformance.c). Data movement (Concat, Split, Slice, Pad,
 * Gather, Expand, Resize) costs no round: a masked value stays masked.
 * Models are built in C (onnx_build.c); data from splitmix64, fixed seeds.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_build.h"
#include "proto_harness.h"

Suite *cnn_ops_suite(void);

#define FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define I64(...) ((const int64_t[]){__VA_ARGS__})
#define F 16u

static mpc_ftensor_t rin(uint64_t *seed, unsigned ndim, const size_t *dim, double lo,
                         double hi) {
  mpc_shape_t s;
  memset(&s, 0, sizeof s);
  s.ndim = ndim;
  memcpy(s.dim, dim, ndim * sizeof *dim);
  mpc_ftensor_t t;
  ck_assert_int_eq(mpc_ftensor_init(&t, &s), 0);
  harness_fill(&t, seed, lo, hi);
  return t;
}
#define RIN(seed, lo, hi, ...)                                                            \
  rin(seed, sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t), (size_t[]){__VA_ARGS__}, lo, \
      hi)

static int load_rc(ob_t *b, mpc_graph_t *g, mpc_weights_t *w, char *err, size_t errlen) {
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  int rc = mpc_onnx_load_buffer(buf, len, g, w, err, errlen);
  free(buf);
  return rc;
}

static void load(ob_t *b, mpc_graph_t *g, mpc_weights_t *w) {
  char err[512];
  int rc = load_rc(b, g, w, err, sizeof err);
  ck_assert_msg(rc == 0, "import failed (%s): %s", tandem_err_name(rc), err);
}

static void closeall(ob_t *b, mpc_graph_t *g, mpc_weights_t *w) {
  mpc_weights_close(w);
  mpc_graph_close(g);
  ob_free(b);
}

/* One element of a [N, C, H, W] tensor. */
static double at4(const mpc_ftensor_t *t, size_t n, size_t c, size_t h, size_t w) {
  const size_t *d = t->shape.dim;
  return t->data[((n * d[1] + c) * d[2] + h) * d[3] + w];
}

/* The public graph's format keeps every new attribute (graph format 5):
 * Concat's and Select's, and an output's client-side function. */
static void check_roundtrip(const mpc_graph_t *g) {
  uint8_t *buf;
  size_t blen;
  char err[256];
  mpc_graph_t h;
  ck_assert_int_eq(mpc_graph_save(g, &buf, &blen), 0);
  ck_assert_msg(mpc_graph_load(&h, buf, blen, err, sizeof err) == 0, "%s", err);
  ck_assert_uint_eq(h.nnodes, g->nnodes);
  for (size_t i = 0; i < g->nnodes; i++) {
    const mpc_attr_t *x = &g->nodes[i].attr, *y = &h.nodes[i].attr;
    ck_assert_int_eq(g->nodes[i].op, h.nodes[i].op);
    ck_assert_int_eq(x->axis, y->axis);
    ck_assert_int_eq(x->post, y->post);
    ck_assert_int_eq(x->sel_batch, y->sel_batch);
    ck_assert(memcmp(x->sel_start, y->sel_start, sizeof x->sel_start) == 0);
    ck_assert(memcmp(x->sel_step, y->sel_step, sizeof x->sel_step) == 0);
    ck_assert(memcmp(x->sel_div, y->sel_div, sizeof x->sel_div) == 0);
  }
  mpc_graph_close(&h);
  free(buf);
}

/* ---- data movement ------------------------------------------------------ */

/* Split, Concat (two masked operands, then a masked and a shared one),
 * Slice with negative steps, a stand-alone Pad, Gather, Resize and Expand,
 * on a batched input: the plaintext evaluator against loops over the input,
 * then the private run against the evaluator at batch 3 (declared 1). */
START_TEST(test_data_movement) {
  uint64_t seed = 0x1101;
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 4, I64(-1, 2, 4, 4));
  ob_init_i64(b, "sp", 2, I64(1, 1));
  Onnx__NodeProto *n = ob_node(b, "Split", "split", "x,sp", "s1,s2");
  ob_attr_i(b, n, "axis", 1);
  n = ob_node(b, "Concat", "cat1", "s2,s1", "c1"); /* channels swapped */
  ob_attr_i(b, n, "axis", 1);
  ob_node(b, "Relu", "relu", "x", "r");
  n = ob_node(b, "Concat", "cat2", "c1,r", "c2"); /* [N,4,4,4] */
  ob_attr_i(b, n, "axis", -3);
  ob_init_i64(b, "st", 2, I64(3, -1));
  ob_init_i64(b, "en", 2, I64(0, -100));
  ob_init_i64(b, "ax", 2, I64(1, 3));
  ob_init_i64(b, "sp2", 2, I64(-1, -2));
  ob_node(b, "Slice", "slice", "c2,st,en,ax,sp2", "sl"); /* [N,3,4,2]: ch 3,2,1; w 3,1 */
  ob_init_i64(b, "pads", 8, I64(0, 0, 1, 0, 0, 0, 1, 1));
  ob_node(b, "Pad", "pad", "sl,pads", "p"); /* [N,3,6,3] */
  ob_init_i64(b, "idx", 2, I64(-1, 1));
  n = ob_node(b, "Gather", "gather", "p,idx", "g"); /* [N,3,2,3]: rows 5, 1 */
  ob_attr_i(b, n, "axis", 2);
  ob_init_f(b, "scales", 1, I64(4), (double[]){1, 1, 2, 3});
  ob_node(b, "Resize", "up", "g,,scales", "y0"); /* [N,3,4,9] */
  ob_init_i64(b, "st3", 1, I64(0));
  ob_init_i64(b, "en3", 1, I64(1));
  ob_init_i64(b, "ax3", 1, I64(3));
  ob_node(b, "Slice", "col", "x,st3,en3,ax3", "x0"); /* [N,2,4,1] */
  ob_init_i64(b, "shape", 3, I64(2, 1, 3));
  ob_node(b, "Expand", "expand", "x0,shape", "y1"); /* [N,2,4,3] */
  ob_output(b, "y0");
  ob_output(b, "y1");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in = RIN(&seed, -2, 2, 3, 2, 4, 4), out[2];
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, out), 0);
  ck_assert_uint_eq(out[0].shape.ndim, 4);
  ck_assert_uint_eq(out[0].shape.dim[0], 3);
  ck_assert_uint_eq(out[0].shape.dim[2], 4);
  ck_assert_uint_eq(out[0].shape.dim[3], 9);
  /* c2's channels: x1, x0, relu(x0), relu(x1); the slice takes 3, 2, 1. */
  for (size_t nn = 0; nn < 3; nn++)
    for (size_t c = 0; c < 3; c++)
      for (size_t h = 0; h < 4; h++)
        for (size_t wo = 0; wo < 9; wo++) {
          size_t gi = h / 2, pw = wo / 3;  /* gathered row, padded column */
          size_t prow = gi == 0 ? 5 : 1;   /* rows 5 and 1 of the padded slice */
          double want = 0;
          if (prow >= 1 && prow <= 4 && pw <= 1) {
            size_t srow = prow - 1, sw = pw == 0 ? 3 : 1, ch = 3 - c;
            double v = ch == 0 ? at4(&in, nn, 1, srow, sw) : at4(&in, nn, ch == 1 ? 0 : ch - 2, srow, sw);
            want = ch >= 2 ? fmax(v, 0) : v;
          }
          ck_assert_msg(at4(&out[0], nn, c, h, wo) == want, "y0[%zu,%zu,%zu,%zu]", nn, c, h, wo);
        }
  for (size_t i = 0; i < mpc_shape_numel(&out[1].shape); i++) {
    size_t h = (i / 3) % 4, c = (i / 12) % 2, nn = i / 24;
    ck_assert(out[1].data[i] == at4(&in, nn, c, h, 0));
  }
  mpc_ftensor_close(&out[0]);
  mpc_ftensor_close(&out[1]);
  harness_result_t r = harness_check_private(&g, &w, 3, &in, 1.0 / (1 << F), 1);
  /* No round at all: the ReLU reads the masked input, the rest is local. */
  ck_assert_uint_eq(r.plan_rounds, 0);
  check_roundtrip(&g);
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
}
END_TEST

/* Moving data along the batch axis of a batched graph is refused at import,
 * naming the node. */
START_TEST(test_batch_axis_refused) {
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  Onnx__NodeProto *n = ob_node(b, "Concat", "joinrows", "x,x", "y");
  ob_attr_i(b, n, "axis", 0);
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  char err[512];
  ck_assert_int_eq(load_rc(b, &g, &w, err, sizeof err), TANDEM_EUNSUPOP);
  ck_assert_msg(strstr(err, "joinrows") != NULL && strstr(err, "batch") != NULL, "%s", err);
  ob_free(b);
}
END_TEST

/* ---- grouped and depthwise convolution ------------------------------------- */

static double *rvec(uint64_t *seed, size_t n, double lo, double hi) {
  double *v = malloc(n * sizeof *v);
  ck_assert_ptr_nonnull(v);
  for (size_t i = 0; i < n; i++)
    v[i] = (double)(float)harness_uniform(seed, lo, hi);
  return v;
}

/* Conv with group 2 (pads 1, bias) and a depthwise one (group = channels,
 * stride 2) on its output: the evaluator against a direct grouped
 * convolution, then privately at batch 2 (declared 1): the rounds of two
 * plain Convs (the truncation between the products, and the opening of its
 * result under a fresh mask), none for the groups. */
START_TEST(test_grouped_conv) {
  uint64_t seed = 0x1401;
  ob_t *b = ob_new(13);
  double *w1 = rvec(&seed, 6 * 2 * 9, -1, 1), *b1 = rvec(&seed, 6, -1, 1);
  double *w2 = rvec(&seed, 6 * 9, -1, 1);
  ob_input(b, "x", FLOAT, 4, I64(-1, 4, 5, 5));
  ob_init_f(b, "w1", 4, I64(6, 2, 3, 3), w1);
  ob_init_f(b, "b1", 1, I64(6), b1);
  ob_init_f(b, "w2", 4, I64(6, 1, 3, 3), w2);
  Onnx__NodeProto *n = ob_node(b, "Conv", "grouped", "x,w1,b1", "y1"); /* [N,6,5,5] */
  ob_attr_i(b, n, "group", 2);
  ob_attr_ints(b, n, "pads", 4, I64(1, 1, 1, 1));
  n = ob_node(b, "Conv", "depthwise", "y1,w2", "y2"); /* [N,6,2,2] */
  ob_attr_i(b, n, "group", 6);
  ob_attr_ints(b, n, "strides", 2, I64(2, 2));
  ob_output(b, "y1");
  ob_output(b, "y2");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in = RIN(&seed, -1, 1, 2, 4, 5, 5), out[2];
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, out), 0);
  for (size_t nn = 0; nn < 2; nn++)
    for (size_t m = 0; m < 6; m++)
      for (size_t oy = 0; oy < 5; oy++)
        for (size_t ox = 0; ox < 5; ox++) {
          double acc = b1[m];
          for (size_t ci = 0; ci < 2; ci++)
            for (size_t ky = 0; ky < 3; ky++)
              for (size_t kx = 0; kx < 3; kx++) {
                long iy = (long)(oy + ky) - 1, ix = (long)(ox + kx) - 1;
                if (iy >= 0 && iy < 5 && ix >= 0 && ix < 5)
                  acc += w1[((m * 2 + ci) * 3 + ky) * 3 + kx] *
                         at4(&in, nn, (m / 3) * 2 + ci, (size_t)iy, (size_t)ix);
              }
          ck_assert(fabs(at4(&out[0], nn, m, oy, ox) - acc) < 1e-9);
        }
  for (size_t nn = 0; nn < 2; nn++)
    for (size_t m = 0; m < 6; m++)
      for (size_t oy = 0; oy < 2; oy++)
        for (size_t ox = 0; ox < 2; ox++) {
          double acc = 0;
          for (size_t ky = 0; ky < 3; ky++)
            for (size_t kx = 0; kx < 3; kx++)
              acc += w2[(m * 3 + ky) * 3 + kx] * at4(&out[0], nn, m, oy * 2 + ky, ox * 2 + kx);
          ck_assert(fabs(at4(&out[1], nn, m, oy, ox) - acc) < 1e-9);
        }
  mpc_ftensor_close(&out[0]);
  mpc_ftensor_close(&out[1]);
  harness_result_t r = harness_check_private(&g, &w, 2, &in, 40.0 / (1 << F), 1);
  ck_assert_uint_eq(r.plan_rounds, 2);
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
  free(w1), free(b1), free(w2);
}
END_TEST

/* ConvTranspose with the owner's weights and bias (strides, pads,
 * output_padding): the evaluator against the definition (each input element
 * scatters its kernel), then privately at batch 2. */
START_TEST(test_conv_transpose) {
  uint64_t seed = 0x1402;
  ob_t *b = ob_new(13);
  double *wt = rvec(&seed, 2 * 3 * 9, -1, 1), *bias = rvec(&seed, 3, -1, 1);
  ob_input(b, "x", FLOAT, 4, I64(-1, 2, 3, 3));
  ob_init_f(b, "w", 4, I64(2, 3, 3, 3), wt);
  ob_init_f(b, "b", 1, I64(3), bias);
  Onnx__NodeProto *n = ob_node(b, "ConvTranspose", "up", "x,w,b", "y"); /* [N,3,6,6] */
  ob_attr_ints(b, n, "strides", 2, I64(2, 2));
  ob_attr_ints(b, n, "pads", 4, I64(1, 1, 1, 1));
  ob_attr_ints(b, n, "output_padding", 2, I64(1, 1));
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in = RIN(&seed, -1, 1, 2, 2, 3, 3), out[1];
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, out), 0);
  ck_assert_uint_eq(out[0].shape.dim[2], 6);
  ck_assert_uint_eq(out[0].shape.dim[3], 6);
  double want[2 * 3 * 36];
  for (size_t i = 0; i < 2 * 3 * 36; i++)
    want[i] = bias[(i / 36) % 3];
  for (size_t nn = 0; nn < 2; nn++)
    for (size_t ci = 0; ci < 2; ci++)
      for (size_t iy = 0; iy < 3; iy++)
        for (size_t ix = 0; ix < 3; ix++)
          for (size_t co = 0; co < 3; co++)
            for (size_t ky = 0; ky < 3; ky++)
              for (size_t kx = 0; kx < 3; kx++) {
                long oy = (long)(iy * 2 + ky) - 1, ox = (long)(ix * 2 + kx) - 1;
                if (oy >= 0 && oy < 6 && ox >= 0 && ox < 6)
                  want[(nn * 3 + co) * 36 + (size_t)oy * 6 + (size_t)ox] +=
                      at4(&in, nn, ci, iy, ix) * wt[((ci * 3 + co) * 3 + ky) * 3 + kx];
              }
  for (size_t i = 0; i < 2 * 3 * 36; i++)
    ck_assert_msg(fabs(out[0].data[i] - want[i]) < 1e-9, "y[%zu] %g want %g", i, out[0].data[i],
                  want[i]);
  mpc_ftensor_close(&out[0]);
  harness_result_t r = harness_check_private(&g, &w, 2, &in, 24.0 / (1 << F), 1);
  ck_assert_uint_eq(r.plan_rounds, 0);
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
  free(wt), free(bias);
}
END_TEST

/* ---- shape subgraphs ------------------------------------------------------ */

static size_t count_op(const mpc_graph_t *g, mpc_op_t op) {
  size_t n = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    n += g->nodes[i].op == op;
  return n;
}

/* What exporters write for x.view(x.size(0), -1) and friends: Shape ->
 * Gather -> Unsqueeze -> Concat with a constant -> Reshape, a Cast of the
 * shape, and a ConstantOfShape added to the input: folded at import into
 * constants (no party spends anything on them), the Reshape's first
 * dimension following the batch; private at batch 3 against the evaluator. */
START_TEST(test_shape_subgraph) {
  uint64_t seed = 0x1301;
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 4, I64(-1, 2, 3, 3));
  ob_node(b, "Shape", "shape", "x", "sh");
  ob_init_i64(b, "zero", 1, I64(0));
  ob_node(b, "Gather", "g0", "sh,zero", "n0"); /* [1] */
  ob_init_i64(b, "minus1", 1, I64(-1));
  Onnx__NodeProto *n = ob_node(b, "Concat", "cat", "n0,minus1", "target");
  ob_attr_i(b, n, "axis", 0);
  n = ob_node(b, "Cast", "cast", "target", "target64");
  ob_attr_i(b, n, "to", 7);
  ob_node(b, "Reshape", "flat", "x,target64", "f"); /* [N,18] */
  ob_init_i64(b, "one_by", 2, I64(1, 18));
  n = ob_node(b, "ConstantOfShape", "cos", "one_by", "half");
  ob_attr_t(b, n, "value", ob_tensor(b, NULL, FLOAT, 0, 1, I64(1), (double[]){0.5}));
  ob_node(b, "Add", "add", "f,half", "y0");
  ob_node(b, "Relu", "relu", "y0", "y");
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  ck_assert_uint_eq(g.nnodes - count_op(&g, MPC_OP_PARAM), 5); /* in, reshape, add, relu, out */
  mpc_ftensor_t in = RIN(&seed, -2, 2, 3, 2, 3, 3), out[1];
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, out), 0);
  ck_assert_uint_eq(out[0].shape.dim[0], 3);
  ck_assert_uint_eq(out[0].shape.dim[1], 18);
  for (size_t i = 0; i < 54; i++)
    ck_assert(out[0].data[i] == fmax(in.data[i] + 0.5, 0));
  mpc_ftensor_close(&out[0]);
  harness_check_private(&g, &w, 3, &in, 2.0 / (1 << F), 1);
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
}
END_TEST

/* ---- comparisons and reductions ------------------------------------------ */

/* Clip (ReLU6-like, bounds as initializers: public), LeakyRelu, PRelu (the
 * owner's slope), Max and Min of three and two inputs, Sum (with the owner's
 * constant, a secret PARAM), Mean,
 * ReduceMean/ReduceSum/ReduceMax, GlobalMaxPool, HardSigmoid, HardSwish and
 * a Softmax on a graph output, at batch 3 (declared 1) against the float
 * evaluator, whose semantics the backend node tests pin; spot checks of the
 * evaluator against loops here. */
START_TEST(test_comparisons_reductions) {
  uint64_t seed = 0x1201;
  ob_t *b = ob_new(14);
  ob_input(b, "x", FLOAT, 4, I64(-1, 3, 4, 4));
  ob_add_init(b, ob_tensor(b, "lo", FLOAT, 1, 0, NULL, (double[]){-0.5}));
  ob_add_init(b, ob_tensor(b, "hi", FLOAT, 1, 0, NULL, (double[]){1.5}));
  ob_init_f(b, "slope", 3, I64(3, 1, 1), (double[]){0.25, -0.5, 1.5});
  ob_node(b, "Clip", "clip", "x,lo,hi", "c");
  Onnx__NodeProto *n = ob_node(b, "LeakyRelu", "leaky", "x", "l");
  ob_attr_f(b, n, "alpha", 0.2f);
  ob_node(b, "PRelu", "prelu", "x,slope", "p");
  ob_node(b, "Max", "max3", "x,c,l", "m");
  ob_node(b, "Min", "min2", "x,p", "mn");
  ob_init_f(b, "sb", 3, I64(3, 1, 1), (double[]){0.5, -0.25, 1.0}); /* the owner's, secret */
  ob_node(b, "Sum", "sum4", "x,l,c,sb", "s");
  ob_node(b, "Mean", "mean2", "s,p", "me");
  ob_init_i64(b, "rax", 1, I64(1));
  ob_node(b, "ReduceSum", "rsum", "m,rax", "rs"); /* [N,1,4,4] */
  n = ob_node(b, "ReduceMean", "rmean", "rs", "rm"); /* [N,1] */
  ob_attr_ints(b, n, "axes", 2, I64(2, 3));
  ob_attr_i(b, n, "keepdims", 0);
  n = ob_node(b, "ReduceMax", "rmax", "x", "rx"); /* [N,1,4,1] */
  ob_attr_ints(b, n, "axes", 2, I64(1, -1));
  ob_node(b, "HardSigmoid", "hsig", "x", "hg");
  ob_node(b, "HardSwish", "hswish", "x", "hw");
  ob_node(b, "Add", "hsum", "hg,hw", "hx");
  ob_node(b, "GlobalMaxPool", "gmax", "mn", "gm"); /* [N,3,1,1] */
  ob_node(b, "Flatten", "flat1", "gm", "gf");
  ob_node(b, "Flatten", "flat2", "rx", "rf");
  n = ob_node(b, "Concat", "cat", "gf,rf", "cf"); /* [N,7] */
  ob_attr_i(b, n, "axis", 1);
  ob_node(b, "Softmax", "softmax", "cf", "sm");
  const char *outs[] = {"c", "l", "p", "mn", "me", "rm", "hx", "sm"};
  for (size_t i = 0; i < 8; i++)
    ob_output(b, outs[i]);
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in = RIN(&seed, -3, 3, 3, 3, 4, 4), out[8];
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, out), 0);
  const double sl[3] = {0.25, -0.5, 1.5};
  for (size_t i = 0; i < mpc_shape_numel(&in.shape); i++) {
    double v = in.data[i], p = v > 0 ? v : sl[(i / 16) % 3] * v;
    ck_assert(out[0].data[i] == fmin(fmax(v, -0.5), 1.5));
    ck_assert(fabs(out[1].data[i] - (v > 0 ? v : (double)0.2f * v)) < 1e-12);
    ck_assert(fabs(out[2].data[i] - p) < 1e-12);
    ck_assert(fabs(out[3].data[i] - fmin(v, p)) < 1e-12);
    double hs = fmin(fmax(0.2 * v + 0.5, 0), 1) + v * fmin(fmax(v / 6 + 0.5, 0), 1);
    ck_assert(fabs(out[6].data[i] - hs) < 1e-12);
  }
  ck_assert_uint_eq(out[5].shape.ndim, 2);
  ck_assert_uint_eq(out[7].shape.dim[1], 7);
  for (size_t nn = 0; nn < 3; nn++) {
    double e[7], se = 0;
    for (size_t c = 0; c < 3; c++) {
      e[c] = -INFINITY;
      for (size_t h = 0; h < 16; h++) {
        double v = in.data[(nn * 3 + c) * 16 + h];
        e[c] = fmax(e[c], fmin(v, v > 0 ? v : sl[c] * v));
      }
    }
    for (size_t h = 0; h < 4; h++) {
      e[3 + h] = -INFINITY;
      for (size_t c = 0; c < 3; c++)
        for (size_t wd = 0; wd < 4; wd++)
          e[3 + h] = fmax(e[3 + h], at4(&in, nn, c, h, wd));
    }
    for (size_t j = 0; j < 7; j++)
      se += exp(e[j]);
    for (size_t j = 0; j < 7; j++)
      ck_assert(fabs(out[7].data[nn * 7 + j] - exp(e[j]) / se) < 1e-12);
  }
  for (int i = 0; i < 8; i++)
    mpc_ftensor_close(&out[i]);
  /* Each value off by a few ulps of 2^-16 through its ReLUs, products and
   * window sums (a ReduceSum adds three maxima, each off by one or two). */
  check_roundtrip(&g);
  harness_result_t r = harness_check_private(&g, &w, 3, &in, 24.0 / (1 << F), 1);
  /* The deepest chain of gates: Clip (two ReLUs in turn), Max of three (two
   * more), then ReduceSum and ReduceMean (a truncation each): 6 rounds. */
  ck_assert_uint_eq(r.plan_rounds, 6);
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
}
END_TEST

/* A LogSoftmax anywhere but on a graph output is refused, naming the node;
 * a Softmax there is imported as the private smooth-function Softmax. */
START_TEST(test_softmax_inside_refused) {
  mpc_graph_t g;
  mpc_weights_t w;
  char err[512];
  for (int log = 0; log <= 1; log++) {
    ob_t *b = ob_new(13);
    ob_input(b, "x", FLOAT, 2, I64(-1, 4));
    ob_node(b, log ? "LogSoftmax" : "Softmax", "inner", "x", "s");
    ob_node(b, "Relu", "relu", "s", "y");
    ob_output(b, "y");
    int rc = load_rc(b, &g, &w, err, sizeof err);
    if (log) {
      ck_assert_int_eq(rc, TANDEM_EUNSUPOP);
      ck_assert_msg(strstr(err, "inner") != NULL && strstr(err, "last operator") != NULL, "%s",
                    err);
    } else {
      ck_assert_msg(rc == 0, "%s", err);
      int softmax = 0;
      for (size_t i = 0; i < g.nnodes; i++)
        softmax += g.nodes[i].op == MPC_OP_SOFTMAX;
      ck_assert_int_eq(softmax, 1);
      mpc_graph_close(&g);
      mpc_weights_close(&w);
    }
    ob_free(b);
  }
}
END_TEST

/* Div by a computed value: a times the reciprocal gate of b (b in the
 * gate's domain, [1/4, 64], and broadcast), against the plaintext evaluator
 * and against a / b itself: the gate's 1.5e-3 relative bound. Two rounds:
 * the reciprocal gate reads the masked input, and its output is masked for
 * the product of two activations. */
START_TEST(test_div_computed) {
  uint64_t seed = 0x1107;
  ob_t *b = ob_new(14);
  ob_input(b, "a", FLOAT, 2, I64(3, 5));
  ob_input(b, "d", FLOAT, 1, I64(5));
  ob_node(b, "Div", "div", "a,d", "y");
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in[2] = {RIN(&seed, -4, 4, 3, 5), RIN(&seed, 0.3, 60, 5)}, out;
  ck_assert_int_eq(mpc_eval_float(&g, &w, in, &out), 0);
  for (size_t i = 0; i < 15; i++) {
    double want = in[0].data[i] / in[1].data[i % 5];
    ck_assert_msg(fabs(out.data[i] - want) <= 1.5e-3 * fabs(want) + 1e-4, "y[%zu] %g, want %g", i,
                  out.data[i], want);
  }
  mpc_ftensor_close(&out);
  harness_result_t r = harness_check_private(&g, &w, 1, in, 2e-3, 1);
  ck_assert_uint_eq(r.plan_rounds, 2);
  mpc_ftensor_close(&in[0]);
  mpc_ftensor_close(&in[1]);
  closeall(b, &g, &w);
}
END_TEST

/* Pad modes edge and reflect (index tables per axis), and a constant pad
 * whose value is a client's input (x and the value joined, one table):
 * against loops over the input (numpy's definitions), then privately with
 * no round. */
START_TEST(test_pad_modes) {
  static const char *const modes[] = {"edge", "reflect", "constant"};
  for (int m = 0; m < 3; m++) {
    uint64_t seed = 0x1108 + (uint64_t)m;
    ob_t *b = ob_new(13);
    ob_input(b, "x", FLOAT, 4, I64(1, 2, 3, 4));
    ob_init_i64(b, "pads", 8, I64(0, 0, 2, 1, 0, 0, 1, 3)); /* [1,2,6,8] */
    Onnx__NodeProto *n;
    if (m == 2) {
      ob_input(b, "v", FLOAT, 1, I64(1));
      n = ob_node(b, "Pad", "pad", "x,pads,v", "y");
    } else {
      n = ob_node(b, "Pad", "pad", "x,pads", "y");
    }
    ob_attr_s(b, n, "mode", modes[m]);
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load(b, &g, &w);
    mpc_ftensor_t in[2] = {RIN(&seed, -3, 3, 1, 2, 3, 4), RIN(&seed, -3, 3, 1)}, out;
    ck_assert_int_eq(mpc_eval_float(&g, &w, in, &out), 0);
    ck_assert_uint_eq(out.shape.dim[2], 6);
    ck_assert_uint_eq(out.shape.dim[3], 8);
    for (size_t c = 0; c < 2; c++)
      for (long h = 0; h < 6; h++)
        for (long x = 0; x < 8; x++) {
          long i = h - 2, j = x - 1;
          double want;
          if (m == 2 && (i < 0 || i >= 3 || j < 0 || j >= 4)) {
            want = in[1].data[0];
          } else {
            if (m == 1) {
              i = i < 0 ? -i : i >= 3 ? 4 - i : i;
              j = j < 0 ? -j : j >= 4 ? 6 - j : j;
            }
            i = i < 0 ? 0 : i > 2 ? 2 : i;
            j = j < 0 ? 0 : j > 3 ? 3 : j;
            want = at4(&in[0], 0, c, (size_t)i, (size_t)j);
          }
          ck_assert_msg(at4(&out, 0, c, (size_t)h, (size_t)x) == want, "%s [%zu,%ld,%ld]",
                        modes[m], c, h, x);
        }
    mpc_ftensor_close(&out);
    harness_result_t r = harness_check_private(&g, &w, 1, in, 1.0 / (1 << F), 1);
    ck_assert_uint_eq(r.plan_rounds, 0);
    mpc_ftensor_close(&in[0]);
    mpc_ftensor_close(&in[1]);
    closeall(b, &g, &w);
  }
}
END_TEST

/* MaxPool and AveragePool over [N, C, D, H, W] (two 2-D pools between
 * reshapes), with pads, strides and both count_include_pad values: against
 * the window loops of ONNX's definition, then privately (batch 2). */
START_TEST(test_pool_3d) {
  static const int64_t ks[3] = {2, 3, 2}, st[3] = {1, 2, 1}, pd[6] = {1, 0, 1, 0, 1, 1};
  const size_t D = 3, H = 5, W = 4, OD = 3, OH = 2, OW = 5; /* (in + pads - k) / s + 1 */
  for (int v = 0; v < 3; v++) {
    int is_max = v == 0, cip = v == 2;
    uint64_t seed = 0x1109 + (uint64_t)v;
    ob_t *b = ob_new(13);
    ob_input(b, "x", FLOAT, 5, I64(-1, 2, 3, 5, 4));
    Onnx__NodeProto *n = ob_node(b, is_max ? "MaxPool" : "AveragePool", "pool", "x", "y");
    ob_attr_ints(b, n, "kernel_shape", 3, ks);
    ob_attr_ints(b, n, "strides", 3, st);
    ob_attr_ints(b, n, "pads", 6, pd);
    if (cip)
      ob_attr_i(b, n, "count_include_pad", 1);
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load(b, &g, &w);
    mpc_ftensor_t in = RIN(&seed, -2, 2, 2, 2, 3, 5, 4), out;
    ck_assert_int_eq(mpc_eval_float(&g, &w, &in, &out), 0);
    ck_assert_uint_eq(out.shape.ndim, 5);
    ck_assert_uint_eq(mpc_shape_numel(&out.shape), 2 * 2 * OD * OH * OW);
    size_t o = 0;
    for (size_t nc = 0; nc < 4; nc++)
      for (size_t od = 0; od < OD; od++)
        for (size_t oh = 0; oh < OH; oh++)
          for (size_t ow = 0; ow < OW; ow++, o++) {
            double m = -INFINITY, sum = 0;
            size_t cnt = 0;
            for (long a = 0; a < ks[0]; a++)
              for (long bb = 0; bb < ks[1]; bb++)
                for (long cc = 0; cc < ks[2]; cc++) {
                  long d = (long)od * st[0] + a - pd[0], h = (long)oh * st[1] + bb - pd[1];
                  long x = (long)ow * st[2] + cc - pd[2];
                  if (d < 0 || d >= (long)D || h < 0 || h >= (long)H || x < 0 || x >= (long)W)
                    continue;
                  double e = in.data[((nc * D + (size_t)d) * H + (size_t)h) * W + (size_t)x];
                  m = fmax(m, e);
                  sum += e;
                  cnt++;
                }
            double want = is_max ? m : sum / (double)(cip ? ks[0] * ks[1] * ks[2] : (int64_t)cnt);
            ck_assert_msg(fabs(out.data[o] - want) < 1e-12, "variant %d [%zu]: %g, want %g", v, o,
                          out.data[o], want);
          }
    mpc_ftensor_close(&out);
    harness_check_private(&g, &w, 2, &in, 1e-3, 1);
    mpc_ftensor_close(&in);
    closeall(b, &g, &w);
  }
}
END_TEST

/* ConvTranspose 3-D (depth windows by an index table, one 2-D Conv) with
 * strides, pads and output_padding, the weights an input (two activations:
 * a triple) or the owner's: against the scatter loops of ONNX's
 * definition, then privately. */
START_TEST(test_conv_transpose_3d) {
  static const int64_t st[3] = {2, 1, 2}, pd[6] = {1, 0, 1, 0, 1, 1}, opad[3] = {1, 0, 0};
  const size_t C = 2, M = 3, D = 2, H = 3, W = 3, KD = 2, KH = 3, KW = 2;
  size_t O[3];
  const size_t in3[3] = {D, H, W}, k3[3] = {KD, KH, KW};
  for (int a = 0; a < 3; a++)
    O[a] = (size_t)((int64_t)(in3[a] - 1) * st[a] + (int64_t)k3[a] - pd[a] - pd[a + 3] + opad[a]);
  for (int v = 0; v < 2; v++) {
    uint64_t seed = 0x110a + (uint64_t)v;
    ob_t *b = ob_new(13);
    ob_input(b, "x", FLOAT, 5, I64(1, 2, 2, 3, 3));
    mpc_ftensor_t in[2] = {RIN(&seed, -2, 2, 1, C, D, H, W), RIN(&seed, -1, 1, C, M, KD, KH, KW)};
    for (size_t i = 0; i < mpc_shape_numel(&in[1].shape); i++)
      in[1].data[i] = (float)in[1].data[i]; /* an initializer is FLOAT */
    if (v == 0)
      ob_input(b, "w", FLOAT, 5, I64(2, 3, 2, 3, 2));
    else
      ob_init_f(b, "w", 5, I64(2, 3, 2, 3, 2), in[1].data);
    Onnx__NodeProto *n = ob_node(b, "ConvTranspose", "ct", "x,w", "y");
    ob_attr_ints(b, n, "strides", 3, st);
    ob_attr_ints(b, n, "pads", 6, pd);
    ob_attr_ints(b, n, "output_padding", 3, opad);
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load(b, &g, &w);
    mpc_ftensor_t out;
    ck_assert_int_eq(mpc_eval_float(&g, &w, in, &out), 0);
    ck_assert_uint_eq(mpc_shape_numel(&out.shape), M * O[0] * O[1] * O[2]);
    double *want = calloc(M * O[0] * O[1] * O[2], sizeof *want);
    for (size_t ch = 0; ch < C; ch++)
      for (size_t m = 0; m < M; m++)
        for (size_t z = 0; z < D * H * W; z++)
          for (size_t kk = 0; kk < KD * KH * KW; kk++) {
            size_t i3[3] = {z / (H * W), (z / W) % H, z % W};
            size_t kc[3] = {kk / (KH * KW), (kk / KW) % KH, kk % KW}, o = m;
            int inside = 1;
            for (int a = 0; a < 3; a++) {
              int64_t q = (int64_t)i3[a] * st[a] + (int64_t)kc[a] - pd[a];
              inside = inside && q >= 0 && q < (int64_t)O[a];
              o = o * O[a] + (inside ? (size_t)q : 0);
            }
            if (inside)
              want[o] += in[0].data[ch * D * H * W + z] *
                         in[1].data[((ch * M + m) * KD * KH * KW) + kk];
          }
    for (size_t i = 0; i < M * O[0] * O[1] * O[2]; i++)
      ck_assert_msg(fabs(out.data[i] - want[i]) < 1e-12, "variant %d [%zu]: %g, want %g", v, i,
                    out.data[i], want[i]);
    free(want);
    mpc_ftensor_close(&out);
    harness_check_private(&g, &w, 1, in, 2e-3, 1);
    mpc_ftensor_close(&in[0]);
    mpc_ftensor_close(&in[1]);
    closeall(b, &g, &w);
  }
}
END_TEST

/* BatchNormalization with scale, B, mean and var given per query (the
 * client's inputs): (x - mean) scale / sqrt(var + epsilon) + B against the
 * formula, then privately (the inverse square root gate: 1.5e-3 relative). */
START_TEST(test_batchnorm_per_query) {
  uint64_t seed = 0x110b;
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 4, I64(2, 3, 4, 4));
  ob_input(b, "s", FLOAT, 1, I64(3));
  ob_input(b, "bias", FLOAT, 1, I64(3));
  ob_input(b, "mean", FLOAT, 1, I64(3));
  ob_input(b, "var", FLOAT, 1, I64(3));
  Onnx__NodeProto *n = ob_node(b, "BatchNormalization", "bn", "x,s,bias,mean,var", "y");
  ob_attr_f(b, n, "epsilon", 1e-3f);
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in[5] = {RIN(&seed, -2, 2, 2, 3, 4, 4), RIN(&seed, -1, 1, 3), RIN(&seed, -1, 1, 3),
                         RIN(&seed, -1, 1, 3), RIN(&seed, 0.02, 4, 3)},
                out;
  ck_assert_int_eq(mpc_eval_float(&g, &w, in, &out), 0);
  for (size_t i = 0; i < 96; i++) {
    size_t ch = (i / 16) % 3;
    double want = (in[0].data[i] - in[3].data[ch]) * in[1].data[ch] /
                      sqrt(in[4].data[ch] + (double)1e-3f) + in[2].data[ch];
    ck_assert_msg(fabs(out.data[i] - want) < 1e-9, "y[%zu] %g, want %g", i, out.data[i], want);
  }
  mpc_ftensor_close(&out);
  harness_check_private(&g, &w, 1, in, 0.05, 1);
  for (int i = 0; i < 5; i++)
    mpc_ftensor_close(&in[i]);
  closeall(b, &g, &w);
}
END_TEST

/* The same with the bias and mean the owner's constants, on an input whose
 * last axis is as long as its channels (W = C = 2): a constant vector of
 * shape [C] broadcast along W, not the channels, and gave 10 20 10 20 ...
 * for 10 10 10 10 20 20 20 20 (a reviewer's reproducer). */
START_TEST(test_batchnorm_per_query_const_bias) {
  uint64_t seed = 0x110c;
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 4, I64(1, 2, 2, 2));
  ob_input(b, "s", FLOAT, 1, I64(2));
  ob_input(b, "var", FLOAT, 1, I64(2));
  ob_init_f(b, "bias", 1, I64(2), (const double[]){10, 20});
  ob_init_f(b, "mean", 1, I64(2), (const double[]){0.5, -0.25});
  Onnx__NodeProto *n = ob_node(b, "BatchNormalization", "bn", "x,s,bias,mean,var", "y");
  ob_attr_f(b, n, "epsilon", 1e-3f);
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in[3] = {RIN(&seed, -2, 2, 1, 2, 2, 2), RIN(&seed, -1, 1, 2),
                         RIN(&seed, 0.02, 4, 2)},
                out;
  static const double bias[2] = {10, 20}, mean[2] = {0.5, -0.25};
  ck_assert_int_eq(mpc_eval_float(&g, &w, in, &out), 0);
  for (size_t i = 0; i < 8; i++) {
    size_t ch = i / 4;
    double want = (in[0].data[i] - mean[ch]) * in[1].data[ch] /
                      sqrt(in[2].data[ch] + (double)1e-3f) + bias[ch];
    ck_assert_msg(fabs(out.data[i] - want) < 1e-9, "y[%zu] %g, want %g", i, out.data[i], want);
  }
  mpc_ftensor_close(&out);
  harness_check_private(&g, &w, 1, in, 0.05, 1);
  for (int i = 0; i < 3; i++)
    mpc_ftensor_close(&in[i]);
  closeall(b, &g, &w);
}
END_TEST

Suite *cnn_ops_suite(void) {
  Suite *s = suite_create("cnn_ops");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_data_movement);
  tcase_add_test(tc, test_batch_axis_refused);
  tcase_add_test(tc, test_comparisons_reductions);
  tcase_add_test(tc, test_shape_subgraph);
  tcase_add_test(tc, test_grouped_conv);
  tcase_add_test(tc, test_conv_transpose);
  tcase_add_test(tc, test_softmax_inside_refused);
  tcase_add_test(tc, test_div_computed);
  tcase_add_test(tc, test_pad_modes);
  tcase_add_test(tc, test_pool_3d);
  tcase_add_test(tc, test_conv_transpose_3d);
  tcase_add_test(tc, test_batchnorm_per_query);
  tcase_add_test(tc, test_batchnorm_per_query_const_bias);
  suite_add_tcase(s, tc);
  return s;
}
