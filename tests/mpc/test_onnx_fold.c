/* test_onnx_fold.c - Check suite "onnx_fold": the exporter's shape arithmetic
 * folded at import (mpc/src/onnx_fold.c), the Concat of the owner's
 * constants beside activations (onnx_move.c) and the exact GELU written out
 * (Div by sqrt 2, Erf, Add 1, Mul, Mul by 0.5) and its tanh form imported as
 * one gate each,
 * a LayerNormalization's Scale and B folded into the MatMul after it, and
 * attention's scalar (Q K^T / sqrt(dh)) folded into the Q columns of the
 * owner's weights.
 *
 * Models are built in C (onnx_build.c) as PyTorch 1.13 writes a ViT's class
 * token, `torch.cat([cls.expand(x.shape[0], -1, -1), x], 1)`: Shape, Gather,
 * Unsqueeze, Concat, ConstantOfShape, Mul, Equal, Where, Expand, then a Slice
 * and an integer Div of the shape. The expected outputs come from loops
 * written here; the private protocol runs the mixed Concat in zero rounds.
 * Error cases check the code and that the message names the node.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpc.h"
#include "onnx_build.h"
#include "proto_harness.h"

Suite *onnx_fold_suite(void);

#define FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define I64(...) ((const int64_t[]){__VA_ARGS__})

static void load_ok(ob_t *b, mpc_graph_t *g, mpc_weights_t *w) {
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  char err[512];
  int rc = mpc_onnx_load_buffer(buf, len, g, w, err, sizeof err);
  free(buf);
  ck_assert_msg(rc == 0, "import failed (%s): %s", tandem_err_name(rc), err);
}

static void load_fail(ob_t *b, int want, const char *frag) {
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  char err[512];
  mpc_graph_t g;
  mpc_weights_t w;
  int rc = mpc_onnx_load_buffer(buf, len, &g, &w, err, sizeof err);
  free(buf);
  ck_assert_msg(rc == want, "rc %s, want %s: %s", tandem_err_name(rc), tandem_err_name(want), err);
  ck_assert_msg(strstr(err, frag) != NULL, "message '%s' lacks '%s'", err, frag);
}

static size_t count_op(const mpc_graph_t *g, mpc_op_t op) {
  size_t n = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    n += g->nodes[i].op == op;
  return n;
}

static void init_scalar(ob_t *b, const char *name, int64_t v) {
  ob_add_init(b, ob_tensor_i64(b, name, 0, 0, NULL, (const int64_t[]){v}));
}

static void axis_node(ob_t *b, const char *op, const char *name, const char *in, const char *out,
                      int64_t axis) {
  ob_attr_i(b, ob_node(b, op, name, in, out), "axis", axis);
}

/* x [N, T, D] (T = 3, D = 4) -> y [N, T + 1, 2, D / 2]: the class token cls
 * [1, 1, D] expanded to (N, -1, -1) the exporter's way and concatenated
 * before the tokens, pos [1, T + 1, D] added, and a Reshape whose target is
 * computed from the input's shape (T + 1 by a Slice and an Add, D / 2 by a
 * Slice and an integer Div). divisor: the Div's (2; 0 for the error case). */
static void build_cls(ob_t *b, const double *cls, const double *pos, int64_t divisor) {
  ob_input(b, "x", FLOAT, 3, I64(-1, 3, 4));
  ob_init_f(b, "cls", 3, I64(1, 1, 4), cls);
  ob_init_f(b, "pos", 3, I64(1, 4, 4), pos);
  init_scalar(b, "iz", 0);
  ob_init_i64(b, "ax0", 1, I64(0));
  ob_init_i64(b, "m1", 2, I64(-1, -1));
  ob_init_i64(b, "neg", 1, I64(-1));
  ob_init_i64(b, "one", 1, I64(1));
  ob_init_i64(b, "two", 1, I64(2));
  ob_init_i64(b, "div", 1, (const int64_t[]){divisor});
  ob_init_i64(b, "b1", 1, I64(1));
  ob_init_i64(b, "b2", 1, I64(2));
  ob_init_i64(b, "b3", 1, I64(3));
  ob_node(b, "Shape", "shape", "x", "sh");
  axis_node(b, "Gather", "gather", "sh,iz", "n0", 0);
  ob_node(b, "Unsqueeze", "unsq", "n0,ax0", "n1");
  axis_node(b, "Concat", "cat_shape", "n1,m1", "want", 0);
  ob_node(b, "Shape", "shape2", "want", "sh2");
  Onnx__NodeProto *n = ob_node(b, "ConstantOfShape", "cos", "sh2", "ones");
  ob_attr_t(b, n, "value", ob_tensor_i64(b, "v", 0, 1, I64(1), I64(1)));
  ob_node(b, "Mul", "mul", "ones,neg", "negs");
  ob_node(b, "Equal", "equal", "want,negs", "eq");
  ob_node(b, "Where", "where", "eq,ones,want", "wh");
  ob_node(b, "Expand", "expand", "cls,wh", "ex");
  axis_node(b, "Concat", "cat", "ex,x", "c", 1);
  ob_node(b, "Add", "add_pos", "c,pos", "y0");
  ob_node(b, "Slice", "slice_t", "sh,b1,b2", "t");
  ob_node(b, "Add", "t_plus_1", "t,one", "t1");
  ob_node(b, "Slice", "slice_d", "sh,b2,b3", "d");
  ob_node(b, "Div", "halve", "d,div", "dh");
  axis_node(b, "Concat", "cat_target", "n1,t1,two,dh", "target", 0);
  ob_node(b, "Reshape", "reshape", "y0,target", "y");
  ob_output(b, "y");
}

START_TEST(test_class_token) {
  double cls[4] = {0.5, -0.25, 0.125, 1.0}, pos[16];
  for (int i = 0; i < 16; i++)
    pos[i] = 0.01 * (i - 7);
  ob_t *b = ob_new(17);
  build_cls(b, cls, pos, 2);
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  ob_free(b);
  /* Nothing of the shape arithmetic is left in the graph: a Concat of two
   * activations only where the class token joins (none: it is a parameter
   * added to zero-padded tokens). */
  ck_assert_uint_eq(count_op(&g, MPC_OP_CONCAT), 0);
  ck_assert_uint_eq(count_op(&g, MPC_OP_CONST), 0);
  const size_t nb = 3;
  mpc_shape_t is = {3, {nb, 3, 4}};
  mpc_ftensor_t in, out;
  ck_assert_int_eq(mpc_ftensor_init(&in, &is), 0);
  for (size_t i = 0; i < nb * 12; i++)
    in.data[i] = 0.03 * (double)((i * 7) % 23) - 0.3;
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, &out), 0);
  ck_assert_uint_eq(out.shape.ndim, 4);
  ck_assert_uint_eq(out.shape.dim[0], nb);
  ck_assert_uint_eq(out.shape.dim[1], 4);
  ck_assert_uint_eq(out.shape.dim[2], 2);
  ck_assert_uint_eq(out.shape.dim[3], 2);
  for (size_t bb = 0; bb < nb; bb++)
    for (size_t r = 0; r < 4; r++)
      for (size_t j = 0; j < 4; j++) {
        double want = (r == 0 ? cls[j] : in.data[bb * 12 + (r - 1) * 4 + j]) + pos[r * 4 + j];
        ck_assert_msg(fabs(out.data[bb * 16 + r * 4 + j] - want) < 1e-6,
                      "image %zu token %zu element %zu: %g, want %g", bb, r, j,
                      out.data[bb * 16 + r * 4 + j], want);
      }
  mpc_ftensor_close(&out);
  /* Privately: the same within the fixed-point error. */
  harness_check_private(&g, &w, nb, &in, 1e-3, 1);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

START_TEST(test_fold_errors) {
  double cls[4] = {0}, pos[16] = {0};
  ob_t *b = ob_new(17);
  build_cls(b, cls, pos, 0);
  load_fail(b, TANDEM_ERANGE, "node 'halve' (Div)");
  ob_free(b);
  /* Where's condition must be BOOL. */
  b = ob_new(17);
  ob_input(b, "x", FLOAT, 2, I64(-1, 2));
  ob_init_i64(b, "c", 1, I64(1));
  ob_init_i64(b, "s", 2, I64(1, 2));
  ob_node(b, "Where", "where", "c,s,s", "wh");
  ob_node(b, "Reshape", "reshape", "x,wh", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EPARSE, "node 'where' (Where)");
  ob_free(b);
}
END_TEST

/* y = x (1 + erf(x / sqrt 2)) 0.5 as the exporters write it; with
 * erf_out, the Erf's output is a graph output too (the chain is then left
 * as its pieces). */
static void build_gelu(ob_t *b, int erf_out) {
  ob_input(b, "x", FLOAT, 2, I64(-1, 5));
  ob_init_f(b, "sqrt2", 0, NULL, (const double[]){1.4142135381698608});
  ob_init_f(b, "onef", 0, NULL, (const double[]){1.0});
  ob_init_f(b, "half", 0, NULL, (const double[]){0.5});
  ob_node(b, "Div", "div", "x,sqrt2", "a");
  ob_node(b, "Erf", "erf", "a", "e");
  ob_node(b, "Add", "add", "e,onef", "p");
  ob_node(b, "Mul", "mul", "x,p", "q");
  ob_node(b, "Mul", "mul_half", "q,half", "y");
  ob_output(b, "y");
  if (erf_out)
    ob_output(b, "e");
}

START_TEST(test_gelu_chain) {
  ob_t *b = ob_new(17);
  build_gelu(b, 0);
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  ob_free(b);
  ck_assert_uint_eq(count_op(&g, MPC_OP_GELU), 1);
  ck_assert_uint_eq(count_op(&g, MPC_OP_ERF), 0);
  ck_assert_uint_eq(count_op(&g, MPC_OP_MUL), 0);
  mpc_shape_t is = {2, {4, 5}};
  mpc_ftensor_t in, out;
  ck_assert_int_eq(mpc_ftensor_init(&in, &is), 0);
  for (size_t i = 0; i < 20; i++)
    in.data[i] = -5 + 0.5 * (double)i;
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, &out), 0);
  for (size_t i = 0; i < 20; i++) {
    double x = in.data[i], want = 0.5 * x * (1 + erf(x / sqrt(2.0)));
    ck_assert_msg(fabs(out.data[i] - want) < 1e-6, "x = %g: %g, want %g", x, out.data[i], want);
  }
  mpc_ftensor_close(&out);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  /* The Erf's output read elsewhere: the pieces stay. */
  b = ob_new(17);
  build_gelu(b, 1);
  load_ok(b, &g, &w);
  ob_free(b);
  ck_assert_uint_eq(count_op(&g, MPC_OP_GELU), 0);
  ck_assert_uint_eq(count_op(&g, MPC_OP_ERF), 1);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* The tanh GELU as PyTorch 1.13 exports F.gelu(x, approximate='tanh'):
 * x*x*x, 0.044715, + x, sqrt(2/pi), Tanh, + 1, * x, * 0.5; with tanh_out,
 * the Tanh's output is a graph output too (the pieces then stay). */
static void build_gelu_tanh(ob_t *b, int tanh_out) {
  ob_input(b, "x", FLOAT, 2, I64(-1, 5));
  ob_init_f(b, "c3", 0, NULL, (const double[]){0.044714998453855515});
  ob_init_f(b, "k", 0, NULL, (const double[]){0.7978845834732056});
  ob_init_f(b, "onef", 0, NULL, (const double[]){1.0});
  ob_init_f(b, "half", 0, NULL, (const double[]){0.5});
  ob_node(b, "Mul", "sq", "x,x", "a");
  ob_node(b, "Mul", "cube", "x,a", "b3");
  ob_node(b, "Mul", "c3mul", "c3,b3", "c");
  ob_node(b, "Add", "addx", "x,c", "d");
  ob_node(b, "Mul", "kmul", "k,d", "e");
  ob_node(b, "Tanh", "tanh", "e", "t");
  ob_node(b, "Add", "add1", "onef,t", "u");
  ob_node(b, "Mul", "mulx", "x,u", "v");
  ob_node(b, "Mul", "halve", "half,v", "y");
  ob_output(b, "y");
  if (tanh_out)
    ob_output(b, "t");
}

START_TEST(test_gelu_tanh_chain) {
  ob_t *b = ob_new(17);
  build_gelu_tanh(b, 0);
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  ob_free(b);
  ck_assert_uint_eq(count_op(&g, MPC_OP_GELU_TANH), 1);
  ck_assert_uint_eq(count_op(&g, MPC_OP_TANH), 0);
  ck_assert_uint_eq(count_op(&g, MPC_OP_MUL), 0);
  mpc_shape_t is = {2, {4, 5}};
  mpc_ftensor_t in, out;
  ck_assert_int_eq(mpc_ftensor_init(&in, &is), 0);
  for (size_t i = 0; i < 20; i++)
    in.data[i] = -5 + 0.5 * (double)i;
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, &out), 0);
  for (size_t i = 0; i < 20; i++) {
    double x = in.data[i];
    double want = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    ck_assert_msg(fabs(out.data[i] - want) < 1e-6, "x = %g: %g, want %g", x, out.data[i], want);
  }
  /* Privately: one gate, two rounds (eight for the pieces); the inputs
   * declared within 8, as an owner would, so the gate is sized for them. */
  g.input_bound = 8;
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  harness_result_t res = harness_check_private(&g, &w, 4, &in, 2e-3, 1);
  ck_assert_uint_le(res.plan_rounds, 2);
  mpc_ftensor_close(&out);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  /* The Tanh's output read elsewhere: the pieces stay. */
  b = ob_new(17);
  build_gelu_tanh(b, 1);
  load_ok(b, &g, &w);
  ob_free(b);
  ck_assert_uint_eq(count_op(&g, MPC_OP_GELU_TANH), 0);
  ck_assert_uint_eq(count_op(&g, MPC_OP_TANH), 1);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* LayerNormalization (Scale, B) then a MatMul by the owner's W: imported as
 * the IR's LayerNorm and one MatMul by diag(Scale) W plus the bias B W (no
 * product by Scale left); against the formula, and privately. */
START_TEST(test_ln_matmul) {
  const size_t D = 8, M = 3, nb = 2, T = 4;
  double sc[8], bi[8], wt[24];
  for (size_t i = 0; i < D; i++) {
    sc[i] = 0.5 + 0.125 * (double)i;
    bi[i] = 0.05 * (double)i - 0.2;
  }
  for (size_t i = 0; i < D * M; i++)
    wt[i] = 0.1 * (double)((i * 5) % 11) - 0.5;
  ob_t *b = ob_new(17);
  ob_input(b, "x", FLOAT, 3, I64(-1, 4, 8));
  ob_init_f(b, "scale", 1, I64(8), sc);
  ob_init_f(b, "B", 1, I64(8), bi);
  ob_init_f(b, "W", 2, I64(8, 3), wt);
  ob_attr_i(b, ob_node(b, "LayerNormalization", "ln", "x,scale,B", "l"), "axis", -1);
  ob_node(b, "MatMul", "mm", "l,W", "y");
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  ob_free(b);
  ck_assert_uint_eq(count_op(&g, MPC_OP_LNORM), 1);
  ck_assert_uint_eq(count_op(&g, MPC_OP_MUL), 0);
  mpc_shape_t is = {3, {nb, T, D}};
  mpc_ftensor_t in, out;
  ck_assert_int_eq(mpc_ftensor_init(&in, &is), 0);
  for (size_t i = 0; i < nb * T * D; i++)
    in.data[i] = 0.37 * (double)((i * 13) % 17) - 2.5;
  ck_assert_int_eq(mpc_eval_float(&g, &w, &in, &out), 0);
  ck_assert_uint_eq(mpc_shape_numel(&out.shape), nb * T * M);
  for (size_t r = 0; r < nb * T; r++) {
    const double *xr = in.data + r * D;
    double mean = 0, var = 0, nrm[8];
    for (size_t i = 0; i < D; i++)
      mean += xr[i] / (double)D;
    for (size_t i = 0; i < D; i++)
      var += (xr[i] - mean) * (xr[i] - mean) / (double)D;
    for (size_t i = 0; i < D; i++) /* Scale and B as float32 stores them */
      nrm[i] = (xr[i] - mean) / sqrt(var + 1e-5) * (double)(float)sc[i] + (double)(float)bi[i];
    for (size_t j = 0; j < M; j++) {
      double want = 0;
      for (size_t i = 0; i < D; i++)
        want += nrm[i] * (double)(float)wt[i * M + j];
      ck_assert_msg(fabs(out.data[r * M + j] - want) < 1e-5, "row %zu col %zu: %g, want %g", r, j,
                    out.data[r * M + j], want);
    }
  }
  mpc_ftensor_close(&out);
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  harness_check_private(&g, &w, nb, &in, 2e-2, 1);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* Attention as the exporters write it: qkv = x W + b, Q, K, V Slices of its
 * columns, Reshape and Transpose to heads, Q K^T Div by sqrt(dh) (the
 * owner's scalar), Softmax, times V. The scalar goes into the Q columns of W
 * and b at import (no Mul left) and the result is the formula's, also
 * privately. With share_q, more outputs read the Q and the K columns too
 * (with the Q columns alone, K's take the scalar): the scalar stays a Mul,
 * the result the same. */
static void build_attention(ob_t *b, const double *wt, const double *bi, int share_q) {
  ob_input(b, "x", FLOAT, 3, I64(-1, 4, 8));
  ob_init_f(b, "W", 2, I64(8, 12), wt);
  ob_init_f(b, "b", 1, I64(12), bi);
  ob_init_f(b, "c", 0, NULL, (const double[]){1.4142135623730951});
  ob_init_i64(b, "s0", 1, I64(0));
  ob_init_i64(b, "s4", 1, I64(4));
  ob_init_i64(b, "s8", 1, I64(8));
  ob_init_i64(b, "s12", 1, I64(12));
  ob_init_i64(b, "ax2", 1, I64(2));
  ob_init_i64(b, "heads", 4, I64(0, 4, 2, 2));
  ob_node(b, "MatMul", "qkv_mm", "x,W", "xw");
  ob_node(b, "Add", "qkv_add", "b,xw", "qkv");
  ob_node(b, "Slice", "slice_q", "qkv,s0,s4,ax2", "q");
  ob_node(b, "Slice", "slice_k", "qkv,s4,s8,ax2", "k");
  ob_node(b, "Slice", "slice_v", "qkv,s8,s12,ax2", "v");
  ob_node(b, "Reshape", "rq", "q,heads", "q4");
  ob_node(b, "Reshape", "rk", "k,heads", "k4");
  ob_node(b, "Reshape", "rv", "v,heads", "v4");
  ob_attr_ints(b, ob_node(b, "Transpose", "tq", "q4", "qt"), "perm", 4, I64(0, 2, 1, 3));
  ob_attr_ints(b, ob_node(b, "Transpose", "tk", "k4", "kt"), "perm", 4, I64(0, 2, 3, 1));
  ob_attr_ints(b, ob_node(b, "Transpose", "tv", "v4", "vt"), "perm", 4, I64(0, 2, 1, 3));
  ob_node(b, "MatMul", "qk", "qt,kt", "s");
  ob_node(b, "Div", "scale", "s,c", "sd");
  axis_node(b, "Softmax", "softmax", "sd", "a", -1);
  ob_node(b, "MatMul", "av", "a,vt", "y");
  ob_output(b, "y");
  if (share_q) {
    ob_output(b, "q");
    ob_output(b, "k");
  }
}

START_TEST(test_attention_scale) {
  const size_t nb = 2, T = 4, D = 8, H = 2, dh = 2;
  double wt[96], bi[12];
  for (size_t i = 0; i < 96; i++)
    wt[i] = 0.05 * (double)((i * 7) % 13) - 0.3;
  for (size_t i = 0; i < 12; i++)
    bi[i] = 0.03 * (double)i - 0.15;
  mpc_shape_t is = {3, {nb, T, D}};
  mpc_ftensor_t in;
  ck_assert_int_eq(mpc_ftensor_init(&in, &is), 0);
  for (size_t i = 0; i < nb * T * D; i++)
    in.data[i] = 0.29 * (double)((i * 11) % 19) - 2.6;
  /* The formula, in float32's weights. */
  double want[64];
  for (size_t n = 0; n < nb; n++) {
    double qkv[4][12];
    for (size_t t = 0; t < T; t++)
      for (size_t j = 0; j < 12; j++) {
        double acc = (double)(float)bi[j];
        for (size_t i = 0; i < D; i++)
          acc += in.data[(n * T + t) * D + i] * (double)(float)wt[i * 12 + j];
        qkv[t][j] = acc;
      }
    for (size_t h = 0; h < H; h++)
      for (size_t t = 0; t < T; t++) {
        double sc[4], mx = -INFINITY, sum = 0;
        for (size_t u = 0; u < T; u++) {
          sc[u] = 0;
          for (size_t e = 0; e < dh; e++)
            sc[u] += qkv[t][h * dh + e] * qkv[u][4 + h * dh + e];
          sc[u] /= (double)(float)1.4142135623730951;
          mx = fmax(mx, sc[u]);
        }
        for (size_t u = 0; u < T; u++)
          sum += (sc[u] = exp(sc[u] - mx));
        for (size_t e = 0; e < dh; e++) {
          double acc = 0;
          for (size_t u = 0; u < T; u++)
            acc += sc[u] / sum * qkv[u][8 + h * dh + e];
          want[((n * H + h) * T + t) * dh + e] = acc;
        }
      }
  }
  for (int share_q = 0; share_q < 2; share_q++) {
    ob_t *b = ob_new(17);
    build_attention(b, wt, bi, share_q);
    mpc_graph_t g;
    mpc_weights_t w;
    load_ok(b, &g, &w);
    ob_free(b);
    ck_assert_uint_eq(count_op(&g, MPC_OP_MUL), (unsigned)(share_q ? 1 : 0));
    mpc_ftensor_t out[3];
    ck_assert_int_eq(mpc_eval_float(&g, &w, &in, out), 0);
    ck_assert_uint_eq(mpc_shape_numel(&out[0].shape), nb * H * T * dh);
    for (size_t i = 0; i < nb * H * T * dh; i++)
      ck_assert_msg(fabs(out[0].data[i] - want[i]) < 1e-5, "share_q %d, element %zu: %g, want %g",
                    share_q, i, out[0].data[i], want[i]);
    for (int i = 0; i <= 2 * share_q; i++)
      mpc_ftensor_close(&out[i]);
    ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
    harness_check_private(&g, &w, nb, &in, 2e-2, 1);
    mpc_weights_close(&w);
    mpc_graph_close(&g);
  }
  mpc_ftensor_close(&in);
}
END_TEST

Suite *onnx_fold_suite(void) {
  Suite *s = suite_create("onnx_fold");
  TCase *tc = tcase_create("fold");
  tcase_add_test(tc, test_class_token);
  tcase_add_test(tc, test_fold_errors);
  tcase_add_test(tc, test_gelu_chain);
  tcase_add_test(tc, test_gelu_tanh_chain);
  tcase_add_test(tc, test_ln_matmul);
  tcase_add_test(tc, test_attention_scale);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}
