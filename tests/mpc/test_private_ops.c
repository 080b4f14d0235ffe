/* test_private_ops.c - Check suite "private_ops": ONNX operators that the
 * importer maps onto the protocol's gates, each run privately (owner, dealer,
 * P0, P1 and client as threads over the in-memory hub, tests/mpc/harness.c)
 * on random data and compared with the plaintext evaluator mpc_eval_float of
 * the same imported graph.
 *
 * test_onnx.c checks that the importer's graph means what the ONNX operator
 * means (in float); this suite checks that the plan computes that graph
 * privately: Div by a constant, Squeeze, Unsqueeze, Identity, Dropout,
 * Constant, Flatten, BatchNormalization folded into Conv and Gemm and
 * standalone, Pad before Conv, AveragePool, GlobalAveragePool, Conv with
 * strides and dilations, and Gemm with alpha, beta and transposes. Every
 * error is held to the fixed-point bound of test_protocol.c's header
 * (harness_layer_bound, with K the products' inner dimension and the
 * magnitudes of the weights as imported, i.e. after folding). Models are built
 * in C (onnx_build.c); data come from splitmix64 with fixed seeds.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_build.h"
#include "proto_harness.h"

Suite *private_ops_suite(void);

#define FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define I64(...) ((const int64_t[]){__VA_ARGS__})

/* ---- helpers ------------------------------------------------------------- */

/* n values uniform in [lo, hi), rounded to float32 as an ONNX model stores
 * them (the caller frees). */
static double *rvec(uint64_t *seed, size_t n, double lo, double hi) {
  double *v = malloc((n ? n : 1) * sizeof *v);
  ck_assert_ptr_nonnull(v);
  for (size_t i = 0; i < n; i++)
    v[i] = (double)(float)harness_uniform(seed, lo, hi);
  return v;
}

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

static void load(ob_t *b, mpc_graph_t *g, mpc_weights_t *w) {
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  char err[512];
  int rc = mpc_onnx_load_buffer(buf, len, g, w, err, sizeof err);
  free(buf);
  ck_assert_msg(rc == 0, "import failed (%s): %s", tandem_err_name(rc), err);
}

/* The largest |value| of the imported parameters (folded weights and biases). */
static double param_absmax(const mpc_graph_t *g, const mpc_weights_t *w) {
  double m = 0;
  for (size_t i = 0; i < g->nnodes; i++) {
    if (g->nodes[i].op != MPC_OP_PARAM)
      continue;
    for (size_t j = 0; j < mpc_shape_numel(&w->param[i].shape); j++)
      m = fmax(m, fabs(w->param[i].data[j]));
  }
  return m;
}

static size_t count_op(const mpc_graph_t *g, mpc_op_t op) {
  size_t n = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    n += g->nodes[i].op == op;
  return n;
}

static void closeall(ob_t *b, mpc_graph_t *g, mpc_weights_t *w) {
  mpc_weights_close(w);
  mpc_graph_close(g);
  ob_free(b);
}

#define F 16u /* the importer's default fractional bits */

/* ---- scalar and layout operators ------------------------------------------ */

/* y0 = Relu(x / 4) / 3 and y1 = x / 0.5: Div by a Constant (value_float) and
 * by an initializer scalar. Every divisor is the owner's: its reciprocal is a
 * secret parameter, and each Div a product at scale 2f with it (the first
 * truncated inside the ReLU). */
START_TEST(test_div_constant) {
  uint64_t seed = 0x1001;
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 6));
  Onnx__NodeProto *n = ob_node(b, "Constant", "four", "", "four");
  ob_attr_f(b, n, "value_float", 4.0f);
  ob_add_init(b, ob_tensor(b, "three", FLOAT, 1, 0, NULL, (double[]){3.0}));
  ob_add_init(b, ob_tensor(b, "half", FLOAT, 1, 0, NULL, (double[]){0.5}));
  ob_node(b, "Div", "div4", "x,four", "a");
  ob_node(b, "Relu", "relu", "a", "ar");
  ob_node(b, "Div", "div3", "ar,three", "y0");
  ob_node(b, "Div", "div_half", "x,half", "y1");
  ob_output(b, "y0");
  ob_output(b, "y1");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  ck_assert_uint_eq(count_op(&g, MPC_OP_MUL), 3);
  ck_assert_uint_eq(count_op(&g, MPC_OP_MULC), 0);
  mpc_ftensor_t in = RIN(&seed, -3, 3, 4, 6);
  double d = harness_layer_bound(0, 1, 3, 0.25, F);
  d = harness_layer_bound(d, 1, 0.75, 1.0 / 3, F);
  harness_result_t r = harness_check_private(&g, &w, 4, &in, d, 2);
  /* The ReLU on the product: one opening; its output masked for the secret
   * 1/3: a second (with a public 1/3 it was local, and the number public). */
  ck_assert_uint_eq(r.plan_rounds, 2);
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
}
END_TEST

/* y = s * (Relu(x * c) * Relu(x * c)) with c a per-channel [2,1,1] initializer
 * (broadcast over N, H, W) and s a scalar one: Mul by the owner's factors is
 * a bilinear gate with a secret parameter (no round), the square of an
 * activation a triple from the dealer. Against the float reference. */
START_TEST(test_mul_private) {
  uint64_t seed = 0x1003;
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 4, I64(-1, 2, 3, 4));
  ob_init_f(b, "c", 3, I64(2, 1, 1), (double[]){0.75, -1.25});
  ob_add_init(b, ob_tensor(b, "s", FLOAT, 1, 0, NULL, (double[]){-0.375}));
  ob_node(b, "Mul", "scale", "x,c", "a");
  ob_node(b, "Relu", "relu", "a", "r");
  ob_node(b, "Mul", "square", "r,r", "q");
  ob_node(b, "Mul", "out", "s,q", "y");
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  ck_assert_uint_eq(count_op(&g, MPC_OP_MUL), 3);
  ck_assert_uint_eq(count_op(&g, MPC_OP_MULC) + count_op(&g, MPC_OP_CONST), 0);
  mpc_ftensor_t in = RIN(&seed, -2, 2, 3, 2, 3, 4);
  /* |x c| <= 2.5 off by at most 2 ulps after the ReLU's truncation; the
   * square then is off by 2 * 2.5 * 2 ulps (+1 for its own truncation), and
   * the scale by 3/8 of that plus the last truncation: well under 40 ulps. */
  harness_check_private(&g, &w, 3, &in, 40.0 / (1 << F), 2);
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
}
END_TEST

/* auto_pad SAME_UPPER and SAME_LOWER (a Conv without kernel_shape, a
 * MaxPool) and ceil_mode=1 (an AveragePool whose last window is partial):
 * the pads the import computes from the input's size, then the private run
 * against the float evaluator. */
START_TEST(test_same_and_ceil_pads) {
  for (int lower = 0; lower <= 1; lower++) {
    uint64_t seed = 0x1004 + (uint64_t)lower;
    ob_t *b = ob_new(13);
    double *wt = rvec(&seed, 2 * 1 * 2 * 3, -1, 1);
    ob_input(b, "x", FLOAT, 4, I64(-1, 1, 5, 6));
    ob_init_f(b, "W", 4, I64(2, 1, 2, 3), wt);
    Onnx__NodeProto *n = ob_node(b, "Conv", "conv", "x,W", "c");
    ob_attr_s(b, n, "auto_pad", lower ? "SAME_LOWER" : "SAME_UPPER");
    n = ob_node(b, "MaxPool", "mp", "c", "m");
    ob_attr_ints(b, n, "kernel_shape", 2, I64(3, 3));
    ob_attr_ints(b, n, "strides", 2, I64(2, 2));
    ob_attr_s(b, n, "auto_pad", lower ? "SAME_LOWER" : "SAME_UPPER");
    n = ob_node(b, "AveragePool", "ap", "m", "y");
    ob_attr_ints(b, n, "kernel_shape", 2, I64(2, 2));
    ob_attr_ints(b, n, "strides", 2, I64(2, 2));
    ob_attr_i(b, n, "ceil_mode", 1);
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load(b, &g, &w);
    const mpc_node_t *conv = NULL, *mp = NULL, *ap = NULL;
    for (size_t i = 0; i < g.nnodes; i++) {
      const mpc_node_t *nd = &g.nodes[i];
      if (nd->op == MPC_OP_CONV)
        conv = nd;
      else if (nd->op == MPC_OP_MAXPOOL)
        mp = nd;
      else if (nd->op == MPC_OP_AVGPOOL)
        ap = nd;
    }
    ck_assert(conv != NULL && mp != NULL && ap != NULL);
    /* Conv 2x3 on 5x6: 1 row and 2 columns of padding, the odd one at the
     * end (UPPER) or the start (LOWER); its output stays 5x6. */
    ck_assert_uint_eq(conv->attr.pads[0], lower ? 1 : 0);
    ck_assert_uint_eq(conv->attr.pads[2], lower ? 0 : 1);
    ck_assert_uint_eq(conv->attr.pads[1] + conv->attr.pads[3], 2);
    ck_assert_uint_eq(conv->shape.dim[2], 5);
    ck_assert_uint_eq(conv->shape.dim[3], 6);
    /* MaxPool 3x3 stride 2 on 5x6: ceil(5/2) x ceil(6/2) = 3x3 outputs. */
    ck_assert_uint_eq(mp->shape.dim[2], 3);
    ck_assert_uint_eq(mp->shape.dim[3], 3);
    /* AveragePool 2x2 stride 2, ceil_mode on 3x3: 2x2, the last partial. */
    ck_assert_uint_eq(ap->shape.dim[2], 2);
    ck_assert_uint_eq(ap->shape.dim[3], 2);
    ck_assert_uint_eq(ap->attr.pads[2], 1);
    ck_assert_uint_eq(ap->attr.count_include_pad, 0);
    mpc_ftensor_t in = RIN(&seed, -1, 1, 2, 1, 5, 6);
    harness_check_private(&g, &w, 2, &in, harness_layer_bound(0, 6, 1, 1, F) * 2, 1);
    mpc_ftensor_close(&in);
    closeall(b, &g, &w);
    free(wt);
  }
}
END_TEST

/* Identity, Unsqueeze, Dropout (inference: the identity), Squeeze and Flatten
 * between the input and a Gemm whose bias is a Constant node: layout gates on
 * the masked input, so the Gemm needs no opening. Both opset conventions for
 * the axes (attribute before 13, input from 13). */
START_TEST(test_layout_ops) {
  for (int opset = 11; opset <= 13; opset += 2) {
    uint64_t seed = 0x1002 + (uint64_t)opset;
    ob_t *b = ob_new(opset);
    double *wt = rvec(&seed, 4 * 6, -1, 1), *cb = rvec(&seed, 4, -1, 1);
    ob_input(b, "x", FLOAT, 3, I64(-1, 2, 3));
    ob_init_f(b, "W", 2, I64(4, 6), wt);
    Onnx__NodeProto *n = ob_node(b, "Constant", "cbias", "", "C");
    ob_attr_t(b, n, "value", ob_tensor(b, NULL, FLOAT, 0, 1, I64(4), cb));
    ob_node(b, "Identity", "id", "x", "a");
    if (opset >= 13) {
      ob_init_i64(b, "ax_u", 2, I64(1, -1));
      ob_init_i64(b, "ax_s", 2, I64(1, 4));
      ob_node(b, "Unsqueeze", "unsq", "a,ax_u", "u"); /* [N,1,2,3,1] */
      ob_add_init(b, ob_tensor(b, "ratio", FLOAT, 0, 0, NULL, (double[]){0.3}));
      ob_node(b, "Dropout", "drop", "u,ratio", "dr,mask");
      ob_node(b, "Squeeze", "sq", "dr,ax_s", "s"); /* [N,2,3] */
    } else {
      n = ob_node(b, "Unsqueeze", "unsq", "a", "u");
      ob_attr_ints(b, n, "axes", 2, I64(1, -1));
      n = ob_node(b, "Dropout", "drop", "u", "dr");
      ob_attr_f(b, n, "ratio", 0.3f);
      n = ob_node(b, "Squeeze", "sq", "dr", "s");
      ob_attr_ints(b, n, "axes", 2, I64(1, 4));
    }
    n = ob_node(b, "Flatten", "flat", "s", "fl"); /* [N,6] */
    ob_attr_i(b, n, "axis", 1);
    n = ob_node(b, "Gemm", "fc", "fl,W,C", "h");
    ob_attr_i(b, n, "transB", 1);
    ob_node(b, "Relu", "relu", "h", "y");
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load(b, &g, &w);
    ck_assert_uint_eq(count_op(&g, MPC_OP_GEMM), 1);
    mpc_ftensor_t in = RIN(&seed, -2, 2, 3, 2, 3);
    harness_result_t r =
        harness_check_private(&g, &w, 3, &in, harness_layer_bound(0, 6, 2, 1, F), 1);
    ck_assert_uint_eq(r.plan_rounds, 1); /* the ReLU's opening only */
    mpc_ftensor_close(&in);
    closeall(b, &g, &w);
    free(wt), free(cb);
  }
}
END_TEST

/* ---- BatchNormalization ---------------------------------------------------- */

static void bn_inits(ob_t *b, uint64_t *seed, size_t ch) {
  double *sc = rvec(seed, ch, 0.5, 1.5), *bi = rvec(seed, ch, -1, 1);
  double *mean = rvec(seed, ch, -1, 1), *var = rvec(seed, ch, 0.25, 2);
  const double *v[4] = {sc, bi, mean, var};
  const char *nm[4] = {"bn_s", "bn_b", "bn_m", "bn_v"};
  for (int i = 0; i < 4; i++)
    ob_init_f(b, nm[i], 1, I64((int64_t)ch), v[i]);
  free(sc), free(bi), free(mean), free(var);
}

/* Conv -> BatchNormalization -> Relu and Gemm -> BatchNormalization, each
 * folded by the importer into one layer with a bias. */
START_TEST(test_bn_folded) {
  uint64_t seed = 0x1003;
  /* Conv [N,2,5,5] * [3,2,3,3], pads 1, then BN over 3 channels. */
  ob_t *b = ob_new(13);
  double *wc = rvec(&seed, 3 * 2 * 3 * 3, -0.5, 0.5);
  ob_input(b, "x", FLOAT, 4, I64(-1, 2, 5, 5));
  ob_init_f(b, "wc", 4, I64(3, 2, 3, 3), wc);
  bn_inits(b, &seed, 3);
  Onnx__NodeProto *n = ob_node(b, "Conv", "conv", "x,wc", "c");
  ob_attr_ints(b, n, "pads", 4, I64(1, 1, 1, 1));
  n = ob_node(b, "BatchNormalization", "bn", "c,bn_s,bn_b,bn_m,bn_v", "d");
  ob_attr_f(b, n, "epsilon", 1e-3f);
  ob_node(b, "Relu", "relu", "d", "y");
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  ck_assert_uint_eq(count_op(&g, MPC_OP_CONV), 1);
  ck_assert_uint_eq(count_op(&g, MPC_OP_PARAM), 2); /* folded weight and bias */
  mpc_ftensor_t in = RIN(&seed, -1, 1, 2, 2, 5, 5);
  harness_check_private(&g, &w, 2, &in, harness_layer_bound(0, 18, 1, param_absmax(&g, &w), F),
                        1);
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
  free(wc);

  /* Gemm [N,4] x [5,4]^T + C, then BN over 5 features. */
  b = ob_new(15);
  double *wt = rvec(&seed, 5 * 4, -1, 1), *cb = rvec(&seed, 5, -1, 1);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_init_f(b, "W", 2, I64(5, 4), wt);
  ob_init_f(b, "C", 1, I64(5), cb);
  bn_inits(b, &seed, 5);
  n = ob_node(b, "Gemm", "fc", "x,W,C", "h");
  ob_attr_i(b, n, "transB", 1);
  ob_node(b, "BatchNormalization", "bn", "h,bn_s,bn_b,bn_m,bn_v", "y");
  ob_output(b, "y");
  load(b, &g, &w);
  ck_assert_uint_eq(count_op(&g, MPC_OP_GEMM), 1);
  in = RIN(&seed, -2, 2, 3, 4);
  harness_check_private(&g, &w, 3, &in, harness_layer_bound(0, 4, 2, param_absmax(&g, &w), F),
                        2);
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
  free(wt), free(cb);
}
END_TEST

/* A BatchNormalization with nothing to fold into (after a Relu): an affine
 * map per channel, lowered as a diagonal 1x1 convolution (through a reshape
 * for rank 3). The Relu's output is shared, so the layer opens it first. */
START_TEST(test_bn_standalone) {
  for (unsigned rank = 3; rank <= 4; rank++) {
    uint64_t seed = 0x1004 + rank;
    ob_t *b = ob_new(14);
    if (rank == 4)
      ob_input(b, "x", FLOAT, 4, I64(-1, 3, 2, 4));
    else
      ob_input(b, "x", FLOAT, 3, I64(-1, 3, 8));
    bn_inits(b, &seed, 3);
    ob_node(b, "Relu", "relu", "x", "xr");
    ob_node(b, "BatchNormalization", "bn", "xr,bn_s,bn_b,bn_m,bn_v", "y");
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load(b, &g, &w);
    mpc_ftensor_t in = rank == 4 ? RIN(&seed, -2, 2, 3, 3, 2, 4) : RIN(&seed, -2, 2, 3, 3, 8);
    harness_result_t r = harness_check_private(
        &g, &w, 3, &in, harness_layer_bound(0, 3, 2, param_absmax(&g, &w), F), 1);
    ck_assert_uint_eq(r.plan_rounds, 1); /* the ReLU on the masked input is free; the opening */
    mpc_ftensor_close(&in);
    closeall(b, &g, &w);
  }
}
END_TEST

/* ---- convolutions and pools ------------------------------------------------ */

/* Pad (constant 0) before a Conv, with the Pad's pads as an input (opset 11+)
 * and as an attribute (opset 9), merged with the Conv's own pads. */
START_TEST(test_pad_conv) {
  for (int opset = 9; opset <= 13; opset += 4) {
    uint64_t seed = 0x1005 + (uint64_t)opset;
    ob_t *b = ob_new(opset);
    double *wc = rvec(&seed, 2 * 2 * 2 * 3, -1, 1), *bc = rvec(&seed, 2, -1, 1);
    ob_input(b, "x", FLOAT, 4, I64(-1, 2, 4, 5));
    ob_init_f(b, "wc", 4, I64(2, 2, 2, 3), wc);
    ob_init_f(b, "bc", 1, I64(2), bc);
    const int64_t pads[8] = {0, 0, 1, 2, 0, 0, 2, 0};
    Onnx__NodeProto *n;
    if (opset >= 11) {
      ob_init_i64(b, "pads", 8, pads);
      ob_add_init(b, ob_tensor(b, "zero", FLOAT, 0, 0, NULL, (double[]){0.0}));
      n = ob_node(b, "Pad", "pad", "x,pads,zero", "xp");
    } else {
      n = ob_node(b, "Pad", "pad", "x", "xp");
      ob_attr_ints(b, n, "pads", 8, pads);
    }
    ob_attr_s(b, n, "mode", "constant");
    n = ob_node(b, "Conv", "conv", "xp,wc,bc", "c");
    ob_attr_ints(b, n, "pads", 4, I64(0, 0, 0, 1));
    ob_node(b, "Relu", "relu", "c", "y");
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load(b, &g, &w);
    ck_assert_uint_eq(count_op(&g, MPC_OP_CONV), 1);
    mpc_ftensor_t in = RIN(&seed, -1, 1, 2, 2, 4, 5);
    harness_check_private(&g, &w, 2, &in, harness_layer_bound(0, 12, 1, 1, F), 1);
    mpc_ftensor_close(&in);
    closeall(b, &g, &w);
    free(wc), free(bc);
  }
}
END_TEST

/* Conv with stride 2 (and padding), with dilation 2, and with both mixed
 * per axis; then a ReLU on each, so the truncation is checked too. */
START_TEST(test_conv_stride_dilation) {
  uint64_t seed = 0x1006;
  ob_t *b = ob_new(13);
  double *w1 = rvec(&seed, 3 * 2 * 9, -1, 1), *w2 = rvec(&seed, 2 * 2 * 9, -1, 1);
  double *w3 = rvec(&seed, 2 * 2 * 6, -1, 1), *b1 = rvec(&seed, 3, -1, 1);
  ob_input(b, "x", FLOAT, 4, I64(-1, 2, 7, 8));
  ob_init_f(b, "w1", 4, I64(3, 2, 3, 3), w1);
  ob_init_f(b, "b1", 1, I64(3), b1);
  ob_init_f(b, "w2", 4, I64(2, 2, 3, 3), w2);
  ob_init_f(b, "w3", 4, I64(2, 2, 2, 3), w3);
  Onnx__NodeProto *n = ob_node(b, "Conv", "conv_s2", "x,w1,b1", "c1");
  ob_attr_ints(b, n, "strides", 2, I64(2, 2));
  ob_attr_ints(b, n, "pads", 4, I64(1, 1, 1, 1));
  n = ob_node(b, "Conv", "conv_d2", "x,w2", "c2");
  ob_attr_ints(b, n, "dilations", 2, I64(2, 2));
  n = ob_node(b, "Conv", "conv_mix", "x,w3", "c3");
  ob_attr_ints(b, n, "strides", 2, I64(2, 1));
  ob_attr_ints(b, n, "dilations", 2, I64(3, 2));
  ob_attr_ints(b, n, "pads", 4, I64(0, 1, 1, 0));
  ob_node(b, "Relu", "r1", "c1", "y1");
  ob_node(b, "Relu", "r2", "c2", "y2");
  ob_node(b, "Relu", "r3", "c3", "y3");
  ob_output(b, "y1");
  ob_output(b, "y2");
  ob_output(b, "y3");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  ck_assert_uint_eq(count_op(&g, MPC_OP_CONV), 3);
  mpc_ftensor_t in = RIN(&seed, -1, 1, 2, 2, 7, 8);
  harness_result_t r =
      harness_check_private(&g, &w, 2, &in, harness_layer_bound(0, 18, 1, 1, F), 1);
  ck_assert_uint_eq(r.plan_rounds, 1); /* the three ReLUs open in one round */
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
  free(w1), free(w2), free(w3), free(b1);
}
END_TEST

/* AveragePool (3x3, stride 2, pads 1, with and without the padding counted)
 * and GlobalAveragePool on the masked input, and an AveragePool after a
 * convolution (a product: truncated first). */
START_TEST(test_avgpools) {
  uint64_t seed = 0x1007;
  ob_t *b = ob_new(11);
  double *wc = rvec(&seed, 2 * 2 * 1 * 1, -1, 1);
  ob_input(b, "x", FLOAT, 4, I64(-1, 2, 5, 6));
  ob_init_f(b, "wc", 4, I64(2, 2, 1, 1), wc);
  for (int incl = 0; incl <= 1; incl++) {
    Onnx__NodeProto *n = ob_node(b, "AveragePool", incl ? "ap_incl" : "ap_excl", "x",
                                 incl ? "y1" : "y0");
    ob_attr_ints(b, n, "kernel_shape", 2, I64(3, 3));
    ob_attr_ints(b, n, "pads", 4, I64(1, 1, 1, 1));
    ob_attr_ints(b, n, "strides", 2, I64(2, 2));
    ob_attr_i(b, n, "count_include_pad", incl);
  }
  ob_node(b, "GlobalAveragePool", "gap", "x", "y2");
  ob_node(b, "Conv", "conv", "x,wc", "c");
  Onnx__NodeProto *n = ob_node(b, "AveragePool", "ap_conv", "c", "y3");
  ob_attr_ints(b, n, "kernel_shape", 2, I64(2, 2));
  ob_attr_ints(b, n, "strides", 2, I64(2, 2));
  for (int i = 0; i < 4; i++) {
    char nm[8];
    snprintf(nm, sizeof nm, "y%d", i);
    ob_output(b, nm);
  }
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  ck_assert_uint_eq(count_op(&g, MPC_OP_AVGPOOL), 4);
  mpc_ftensor_t in = RIN(&seed, -4, 4, 3, 2, 5, 6);
  /* A window sum of K elements times 1/count encoded to 2^-(f+1): the layer
   * bound with K = 30 (the global pool's window) covers the 3x3 pools; the
   * pool after the Conv adds the Conv's error (K = 2) times 4 * 1/4. */
  double d = harness_layer_bound(0, 30, 4, 1, F);
  double dc = harness_layer_bound(harness_layer_bound(0, 2, 4, 1, F), 4, 8, 0.25, F);
  harness_result_t r = harness_check_private(&g, &w, 3, &in, fmax(d, dc), 1);
  ck_assert_uint_eq(r.plan_rounds, 1); /* the truncation before ap_conv */
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
  free(wc);
}
END_TEST

/* ---- Gemm attributes ------------------------------------------------------- */

/* alpha != 1 and beta != 1 (folded by the import into the weight and the
 * bias, so the public graph holds neither), without and with transB. */
START_TEST(test_gemm_alpha_beta) {
  for (int tb = 0; tb <= 1; tb++) {
    uint64_t seed = 0x1008 + (uint64_t)tb;
    ob_t *b = ob_new(13);
    double *wt = rvec(&seed, 6 * 4, -1, 1), *cb = rvec(&seed, 4, -1, 1);
    ob_input(b, "x", FLOAT, 2, I64(-1, 6));
    ob_init_f(b, "W", 2, tb ? I64(4, 6) : I64(6, 4), wt);
    ob_init_f(b, "C", 1, I64(4), cb);
    Onnx__NodeProto *n = ob_node(b, "Gemm", "fc", "x,W,C", "h");
    ob_attr_f(b, n, "alpha", 0.375f);
    ob_attr_f(b, n, "beta", -2.5f);
    ob_attr_i(b, n, "transB", tb);
    ob_node(b, "Relu", "relu", "h", "y");
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load(b, &g, &w);
    for (size_t i = 0; i < g.nnodes; i++) /* the owner's numbers stay secret */
      ck_assert(g.nodes[i].attr.alpha == 1.0 && g.nodes[i].attr.beta == 1.0);
    mpc_ftensor_t in = RIN(&seed, -2, 2, 3, 6);
    harness_check_private(&g, &w, 3, &in, harness_layer_bound(0, 6, 2, 0.375, F), 1);
    mpc_ftensor_close(&in);
    closeall(b, &g, &w);
    free(wt), free(cb);
  }
}
END_TEST

/* transA on a dynamic A: a local transpose (layout gate) before the product,
 * on the client's masked input (no round) and on a shared activation (a ReLU's
 * output, opened after the transpose); with alpha, beta and transB too. The
 * shapes are fixed (batch 0: the declared ones), since A's first dimension is
 * the inner one. */
START_TEST(test_gemm_trans_a) {
  uint64_t seed = 0x100a;
  ob_t *b = ob_new(13);
  double *w1 = rvec(&seed, 4 * 6, -1, 1), *c1 = rvec(&seed, 4, -1, 1);
  double *w0 = rvec(&seed, 5 * 3, -1, 1), *w2 = rvec(&seed, 4 * 2, -1, 1);
  ob_input(b, "a", FLOAT, 2, I64(6, 3));  /* A^T is [3, 6] */
  ob_input(b, "x", FLOAT, 2, I64(4, 5));
  ob_init_f(b, "W1", 2, I64(4, 6), w1);   /* transB: W1^T is [6, 4] */
  ob_init_f(b, "C1", 1, I64(4), c1);
  ob_init_f(b, "W0", 2, I64(5, 3), w0);
  ob_init_f(b, "W2", 2, I64(4, 2), w2);
  Onnx__NodeProto *n = ob_node(b, "Gemm", "fc_ta", "a,W1,C1", "y0");
  ob_attr_i(b, n, "transA", 1);
  ob_attr_i(b, n, "transB", 1);
  ob_attr_f(b, n, "alpha", 1.5f);
  ob_attr_f(b, n, "beta", 0.5f);
  ob_node(b, "MatMul", "mm", "x,W0", "h");  /* [4, 3] */
  ob_node(b, "Relu", "relu", "h", "hr");
  n = ob_node(b, "Gemm", "fc_ta2", "hr,W2", "y1"); /* hr^T [3, 4] x [4, 2] */
  ob_attr_i(b, n, "transA", 1);
  ob_output(b, "y0");
  ob_output(b, "y1");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in[2] = {RIN(&seed, -2, 2, 6, 3), RIN(&seed, -1, 1, 4, 5)};
  double d0 = harness_layer_bound(0, 6, 2, 1.5, F);
  double d1 = harness_layer_bound(harness_layer_bound(0, 5, 1, 1, F), 4, 5, 1, F);
  harness_result_t r = harness_check_private(&g, &w, 0, in, fmax(d0, d1), 2);
  ck_assert_uint_eq(r.plan_rounds, 2); /* the ReLU (1) and the opening of hr^T (1) */
  mpc_ftensor_close(&in[0]);
  mpc_ftensor_close(&in[1]);
  closeall(b, &g, &w);
  free(w1), free(c1), free(w0), free(w2);
}
END_TEST

/* Two dynamic operands with transposes: a fresh matrix triple on the
 * transposed masked inputs. */
START_TEST(test_gemm_trans_dynamic) {
  uint64_t seed = 0x100b;
  ob_t *b = ob_new(13);
  ob_input(b, "a", FLOAT, 2, I64(4, 3)); /* A^T [3, 4] */
  ob_input(b, "b", FLOAT, 2, I64(5, 4)); /* B^T [4, 5] */
  Onnx__NodeProto *n = ob_node(b, "Gemm", "fc", "a,b", "y");
  ob_attr_i(b, n, "transA", 1);
  ob_attr_i(b, n, "transB", 1);
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in[2] = {RIN(&seed, -2, 2, 4, 3), RIN(&seed, -2, 2, 5, 4)};
  harness_result_t r =
      harness_check_private(&g, &w, 0, in, harness_layer_bound(0, 4, 2, 2, F), 1);
  ck_assert_uint_eq(r.plan_rounds, 0);
  mpc_ftensor_close(&in[0]);
  mpc_ftensor_close(&in[1]);
  closeall(b, &g, &w);
}
END_TEST

/* ---- the batch from the declared dimensions -------------------------------- */

/* x [N, 4] (symbolic N) plus y [4] (fixed, broadcast), and a Gemm of two
 * fixed inputs [3, 5] x [5, 4]: the batch comes from x alone, the fixed
 * inputs keep their declared shapes whatever the plan's batch (once, a plan
 * at batch 3 made y [3] and the Gemm's b [3, 4]: "inner dimensions
 * differ"). Against the float evaluator, privately. */
START_TEST(test_batch_from_declared_dims) {
  uint64_t seed = 0x1101;
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_input(b, "y", FLOAT, 1, I64(4));
  ob_input(b, "p", FLOAT, 2, I64(3, 5));
  ob_input(b, "q", FLOAT, 2, I64(5, 4));
  ob_node(b, "Add", "add", "x,y", "s");
  ob_node(b, "Gemm", "fc", "p,q", "t");
  ob_output(b, "s");
  ob_output(b, "t");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  ck_assert_int_eq(g.nodes[0].batched, 1);
  ck_assert_int_eq(g.nodes[1].batched + g.nodes[2].batched + g.nodes[3].batched, 0);
  mpc_ftensor_t in[4] = {RIN(&seed, -2, 2, 6, 4), RIN(&seed, -2, 2, 4), RIN(&seed, -2, 2, 3, 5),
                         RIN(&seed, -2, 2, 5, 4)};
  size_t batch = 0;
  char err[256];
  ck_assert_int_eq(mpc_graph_batch(&g, in, 4, &batch, err, sizeof err), 0);
  ck_assert_uint_eq(batch, 6);
  harness_check_private(&g, &w, batch, in, harness_layer_bound(0, 5, 2, 2, F), 1);
  /* A fixed input of another shape is named; so is a missing tensor. */
  mpc_ftensor_t bad = RIN(&seed, -2, 2, 6, 4);
  mpc_ftensor_t in2[4] = {in[0], bad, in[2], in[3]};
  ck_assert_int_eq(mpc_graph_batch(&g, in2, 4, &batch, err, sizeof err), TANDEM_ESHAPE);
  ck_assert_msg(strstr(err, "'y'") != NULL, "%s", err);
  ck_assert_int_eq(mpc_graph_batch(&g, in, 3, &batch, err, sizeof err), TANDEM_ESHAPE);
  mpc_ftensor_close(&bad);
  for (int i = 0; i < 4; i++)
    mpc_ftensor_close(&in[i]);
  closeall(b, &g, &w);

  /* No batched input: batch 0, the declared shapes at any plan batch. */
  b = ob_new(13);
  ob_input(b, "a", FLOAT, 2, I64(3, 4));
  ob_input(b, "c", FLOAT, 1, I64(4));
  ob_node(b, "Sub", "sub", "a,c", "d");
  ob_output(b, "d");
  load(b, &g, &w);
  mpc_ftensor_t in3[2] = {RIN(&seed, -2, 2, 3, 4), RIN(&seed, -2, 2, 4)};
  ck_assert_int_eq(mpc_graph_batch(&g, in3, 2, &batch, err, sizeof err), 0);
  ck_assert_uint_eq(batch, 0);
  harness_check_private(&g, &w, 3, in3, 1.0 / (1 << F), 1);
  mpc_ftensor_close(&in3[0]);
  mpc_ftensor_close(&in3[1]);
  closeall(b, &g, &w);
}
END_TEST

/* ---- products of two operands supplied per query ------------------------ */

/* Conv whose weights and bias are graph inputs (a triple of form CONV and a
 * dynamic per-channel add), Gemm of two inputs with alpha != 1 (a MulC after
 * the truncation: one round) and a dynamic C with beta != 1. */
START_TEST(test_conv_gemm_dynamic) {
  uint64_t seed = 0x1201;
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 4, I64(-1, 2, 5, 5));
  ob_input(b, "w", FLOAT, 4, I64(3, 2, 3, 3));
  ob_input(b, "cb", FLOAT, 1, I64(3));
  ob_input(b, "a", FLOAT, 2, I64(3, 4));
  ob_input(b, "m", FLOAT, 2, I64(5, 4));
  ob_input(b, "c", FLOAT, 2, I64(1, 5));
  Onnx__NodeProto *n = ob_node(b, "Conv", "conv", "x,w,cb", "y");
  ob_attr_ints(b, n, "pads", 4, I64(1, 0, 0, 1));
  ob_attr_ints(b, n, "strides", 2, I64(2, 1));
  n = ob_node(b, "Gemm", "fc", "a,m,c", "z");
  ob_attr_i(b, n, "transB", 1);
  ob_attr_f(b, n, "alpha", 0.25f);
  ob_attr_f(b, n, "beta", 0.5f);
  ob_output(b, "y");
  ob_output(b, "z");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in[6] = {RIN(&seed, -2, 2, 2, 2, 5, 5), RIN(&seed, -1, 1, 3, 2, 3, 3),
                         RIN(&seed, -1, 1, 3),          RIN(&seed, -2, 2, 3, 4),
                         RIN(&seed, -1, 1, 5, 4),       RIN(&seed, -2, 2, 1, 5)};
  harness_result_t r =
      harness_check_private(&g, &w, 2, in, harness_layer_bound(0, 18, 2, 1, F) + 2.0 / (1 << F), 1);
  ck_assert_uint_eq(r.plan_rounds, 1);
  for (int i = 0; i < 6; i++)
    mpc_ftensor_close(&in[i]);
  closeall(b, &g, &w);
}
END_TEST

/* MatMul with batch dimensions, broadcast both ways: a [2, 1, 3, 4] times
 * b [3, 4, 5] (two inputs: triples) and times an initializer [1, 4, 2] (the
 * owner's weight); the float evaluator itself checked against loops here. */
START_TEST(test_matmul_batched) {
  uint64_t seed = 0x1202;
  ob_t *b = ob_new(13);
  ob_input(b, "a", FLOAT, 4, I64(2, 1, 3, 4));
  ob_input(b, "b", FLOAT, 3, I64(3, 4, 5));
  double *wv = rvec(&seed, 8, -1, 1);
  ob_init_f(b, "w", 3, I64(1, 4, 2), wv);
  ob_node(b, "MatMul", "mm", "a,b", "y");
  ob_node(b, "MatMul", "mw", "a,w", "z");
  ob_output(b, "y");
  ob_output(b, "z");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in[2] = {RIN(&seed, -2, 2, 2, 1, 3, 4), RIN(&seed, -2, 2, 3, 4, 5)};
  mpc_ftensor_t ref[2];
  ck_assert_int_eq(mpc_eval_float(&g, &w, in, ref), 0);
  ck_assert_uint_eq(ref[0].shape.ndim, 4);
  ck_assert_uint_eq(ref[0].shape.dim[1], 3);
  for (size_t i = 0; i < 2; i++)
    for (size_t j = 0; j < 3; j++)
      for (size_t r = 0; r < 3; r++)
        for (size_t c = 0; c < 5; c++) {
          double acc = 0, acc2 = 0;
          for (size_t k = 0; k < 4; k++) {
            acc += in[0].data[(i * 3 + r) * 4 + k] * in[1].data[(j * 4 + k) * 5 + c];
            if (c < 2)
              acc2 += in[0].data[(i * 3 + r) * 4 + k] * wv[k * 2 + c];
          }
          ck_assert_double_eq_tol(ref[0].data[((i * 3 + j) * 3 + r) * 5 + c], acc, 1e-12);
          if (c < 2)
            ck_assert_double_eq_tol(ref[1].data[(i * 3 + r) * 2 + c], acc2, 1e-12);
        }
  mpc_ftensor_close(&ref[0]);
  mpc_ftensor_close(&ref[1]);
  harness_check_private(&g, &w, 0, in, harness_layer_bound(0, 4, 2, 2, F), 1);
  free(wv);
  mpc_ftensor_close(&in[0]);
  mpc_ftensor_close(&in[1]);
  closeall(b, &g, &w);
}
END_TEST

/* 1-D pools over [N, C, L] (as 2-D windows of height 1 between reshapes):
 * MaxPool k=3 s=2 pads 1,1 and AveragePool k=2 (count_include_pad=0), the
 * float evaluator checked by hand, then the private run. */
START_TEST(test_pool_1d) {
  uint64_t seed = 0x1301;
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 3, I64(-1, 2, 7));
  Onnx__NodeProto *n = ob_node(b, "MaxPool", "mp", "x", "y");
  ob_attr_ints(b, n, "kernel_shape", 1, I64(3));
  ob_attr_ints(b, n, "strides", 1, I64(2));
  ob_attr_ints(b, n, "pads", 2, I64(1, 1));
  n = ob_node(b, "AveragePool", "ap", "x", "z");
  ob_attr_ints(b, n, "kernel_shape", 1, I64(2));
  ob_output(b, "y");
  ob_output(b, "z");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in = RIN(&seed, -2, 2, 3, 2, 7), ref[2];
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, ref), 0);
  ck_assert_uint_eq(ref[0].shape.ndim, 3);
  ck_assert_uint_eq(ref[0].shape.dim[2], 4);
  ck_assert_uint_eq(ref[1].shape.dim[2], 6);
  for (size_t r = 0; r < 6; r++) {
    const double *x = in.data + r * 7;
    for (int o = 0; o < 4; o++) {
      double m = -INFINITY;
      for (int t = 2 * o - 1; t <= 2 * o + 1; t++)
        if (t >= 0 && t < 7)
          m = fmax(m, x[t]);
      ck_assert_double_eq(ref[0].data[r * 4 + (size_t)o], m);
    }
    for (int o = 0; o < 6; o++)
      ck_assert_double_eq_tol(ref[1].data[r * 6 + (size_t)o], (x[o] + x[o + 1]) / 2, 1e-12);
  }
  mpc_ftensor_close(&ref[0]);
  mpc_ftensor_close(&ref[1]);
  harness_check_private(&g, &w, 3, &in, 2.0 / (1 << F), 1);
  mpc_ftensor_close(&in);
  closeall(b, &g, &w);
}
END_TEST

/* 1-D Conv over [N, C, L]: constant weights [3, 2, 3] with a bias, stride
 * 2, pads 1,0, and a second Conv whose weights are an input (a triple); the
 * float evaluator checked by hand, then the private run. */
START_TEST(test_conv_1d) {
  uint64_t seed = 0x1302;
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 3, I64(-1, 2, 8));
  ob_input(b, "v", FLOAT, 3, I64(1, 2, 2));
  double *wv = rvec(&seed, 18, -1, 1), *bv = rvec(&seed, 3, -1, 1);
  ob_init_f(b, "w", 3, I64(3, 2, 3), wv);
  ob_init_f(b, "bias", 1, I64(3), bv);
  Onnx__NodeProto *n = ob_node(b, "Conv", "c1", "x,w,bias", "y");
  ob_attr_ints(b, n, "strides", 1, I64(2));
  ob_attr_ints(b, n, "pads", 2, I64(1, 0));
  ob_node(b, "Conv", "c2", "x,v", "z");
  ob_output(b, "y");
  ob_output(b, "z");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_ftensor_t in[2] = {RIN(&seed, -2, 2, 2, 2, 8), RIN(&seed, -1, 1, 1, 2, 2)}, ref[2];
  ck_assert_int_eq(mpc_eval_float(&g, &w, in, ref), 0);
  ck_assert_uint_eq(ref[0].shape.ndim, 3);
  ck_assert_uint_eq(ref[0].shape.dim[1], 3);
  ck_assert_uint_eq(ref[0].shape.dim[2], 4); /* (8 + 1 - 3) / 2 + 1 */
  ck_assert_uint_eq(ref[1].shape.dim[2], 7);
  for (size_t nn = 0; nn < 2; nn++)
    for (size_t m = 0; m < 3; m++)
      for (size_t o = 0; o < 4; o++) {
        double acc = bv[m];
        for (size_t ch = 0; ch < 2; ch++)
          for (size_t t = 0; t < 3; t++) {
            long p = (long)(2 * o + t) - 1;
            if (p >= 0 && p < 8)
              acc += wv[(m * 2 + ch) * 3 + t] * in[0].data[(nn * 2 + ch) * 8 + (size_t)p];
          }
        ck_assert_double_eq_tol(ref[0].data[(nn * 3 + m) * 4 + o], acc, 1e-12);
      }
  mpc_ftensor_close(&ref[0]);
  mpc_ftensor_close(&ref[1]);
  harness_check_private(&g, &w, 2, in, harness_layer_bound(0, 6, 2, 1, F), 1);
  free(wv);
  free(bv);
  mpc_ftensor_close(&in[0]);
  mpc_ftensor_close(&in[1]);
  closeall(b, &g, &w);
}
END_TEST

/* A weight on the left with a transpose stays refused, naming the node. */
START_TEST(test_gemm_weight_left_transposed_refused) {
  ob_t *b = ob_new(13);
  double wt[12] = {0};
  ob_input(b, "x", FLOAT, 2, I64(4, 2));
  ob_init_f(b, "W", 2, I64(4, 3), wt);
  Onnx__NodeProto *n = ob_node(b, "Gemm", "fc_left", "W,x", "y");
  ob_attr_i(b, n, "transA", 1);
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load(b, &g, &w);
  mpc_plan_t *plan;
  char err[256];
  ck_assert_int_eq(mpc_plan_new(&plan, &g, 0, err, sizeof err), TANDEM_EUNSUPOP);
  ck_assert_msg(strstr(err, "fc_left") != NULL && strstr(err, "Gemm") != NULL, "message: %s",
                err);
  closeall(b, &g, &w);
}
END_TEST

Suite *private_ops_suite(void) {
  Suite *s = suite_create("private_ops");
  TCase *tc = tcase_create("onnx_ops");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_div_constant);
  tcase_add_test(tc, test_mul_private);
  tcase_add_test(tc, test_same_and_ceil_pads);
  tcase_add_test(tc, test_layout_ops);
  tcase_add_test(tc, test_bn_folded);
  tcase_add_test(tc, test_bn_standalone);
  tcase_add_test(tc, test_pad_conv);
  tcase_add_test(tc, test_conv_stride_dilation);
  tcase_add_test(tc, test_avgpools);
  tcase_add_test(tc, test_gemm_alpha_beta);
  tcase_add_test(tc, test_gemm_trans_a);
  tcase_add_test(tc, test_gemm_trans_dynamic);
  tcase_add_test(tc, test_gemm_weight_left_transposed_refused);
  tcase_add_test(tc, test_batch_from_declared_dims);
  tcase_add_test(tc, test_conv_gemm_dynamic);
  tcase_add_test(tc, test_matmul_batched);
  tcase_add_test(tc, test_pool_1d);
  tcase_add_test(tc, test_conv_1d);
  suite_add_tcase(s, tc);
  return s;
}
