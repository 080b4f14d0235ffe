/* test_onnx.c - Check suite "onnx" for the ONNX importer (mpc/src/onnx.c) and
 * the tensor files (mpc/src/tensor_io.c).
 *
 * Models are built in C (onnx_build.c) one operator or attribute at a time,
 * imported, and evaluated with mpc_eval_float at a batch other than the one
 * declared; the expected outputs come from naive loops written here, from the
 * same float32-rounded weights the model stores, independently of graph.c and
 * of the importer (BatchNormalization, for instance, is applied as the
 * formula, never folded). Error cases check the code and that the message
 * names the node and operator. Random data comes from splitmix64 with fixed
 * seeds, printed on failure.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpc.h"
#include "onnx_build.h"
#include "../test_rand.h"

Suite *onnx_suite(void);

#define FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define DOUBLE ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE
#define I64(...) ((const int64_t[]){__VA_ARGS__})
#define NI64(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

/* ---- helpers ------------------------------------------------------------- */

static uint64_t rng_state, rng_seed0;

static void rng_seed(uint64_t seed) { rng_state = rng_seed0 = seed; }

/* splitmix64 mapped to [-1, 1), rounded to float32 as the models store it. */
static double rnd(void) {
  uint64_t z = test_splitmix64(&rng_state);
  return (double)(float)((double)(z >> 11) / (double)(1ull << 52) - 1.0);
}

static double *rvec(size_t n) {
  double *v = malloc(n * sizeof *v);
  ck_assert_ptr_nonnull(v);
  for (size_t i = 0; i < n; i++)
    v[i] = rnd();
  return v;
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

/* A random input tensor of the given shape. */
static mpc_ftensor_t rin(mpc_shape_t s) {
  mpc_ftensor_t t;
  ck_assert_int_eq(mpc_ftensor_init(&t, &s), 0);
  for (size_t i = 0; i < mpc_shape_numel(&s); i++)
    t.data[i] = rnd();
  return t;
}

/* Packs and imports the model; on failure shows the importer's message. */
static void load_ok(ob_t *b, mpc_graph_t *g, mpc_weights_t *w) {
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  char err[512];
  int rc = mpc_onnx_load_buffer(buf, len, g, w, err, sizeof err);
  free(buf);
  ck_assert_msg(rc == 0, "import failed (%s): %s [seed %#llx]", tandem_err_name(rc), err,
                (unsigned long long)rng_seed0);
}

/* Imports a model expected to fail with code want and a message containing
 * each of the NULL-terminated fragments. */
static void load_fail(ob_t *b, int want, const char *frag1, const char *frag2) {
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  char err[512];
  mpc_graph_t g;
  mpc_weights_t w;
  int rc = mpc_onnx_load_buffer(buf, len, &g, &w, err, sizeof err);
  free(buf);
  ck_assert_msg(rc == want, "rc %s, want %s: %s", tandem_err_name(rc), tandem_err_name(want), err);
  ck_assert_msg(frag1 == NULL || strstr(err, frag1) != NULL, "message '%s' lacks '%s'", err, frag1);
  ck_assert_msg(frag2 == NULL || strstr(err, frag2) != NULL, "message '%s' lacks '%s'", err, frag2);
  ck_assert_uint_eq(g.nnodes, 0); /* left closed */
  ck_assert_ptr_null(w.param);
}

/* Evaluates a one-input, one-output graph and compares with want. */
static void eval_check(const mpc_graph_t *g, const mpc_weights_t *w, const mpc_ftensor_t *in,
                       const mpc_shape_t *wshape, const double *want, double tol) {
  mpc_ftensor_t out;
  int rc = mpc_eval_float(g, w, in, &out);
  ck_assert_msg(rc == 0, "eval: %s", tandem_err_name(rc));
  ck_assert_uint_eq(out.shape.ndim, wshape->ndim);
  for (unsigned d = 0; d < wshape->ndim; d++)
    ck_assert_uint_eq(out.shape.dim[d], wshape->dim[d]);
  size_t n = mpc_shape_numel(wshape);
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(fabs(out.data[i] - want[i]) <= tol * (1.0 + fabs(want[i])),
                  "element %zu: %.12g, want %.12g [seed %#llx]", i, out.data[i], want[i],
                  (unsigned long long)rng_seed0);
  mpc_ftensor_close(&out);
}

static size_t count_op(const mpc_graph_t *g, mpc_op_t op) {
  size_t n = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    n += g->nodes[i].op == op;
  return n;
}

static void closeall(mpc_graph_t *g, mpc_weights_t *w, mpc_ftensor_t *in) {
  mpc_weights_close(w);
  mpc_graph_close(g);
  if (in != NULL)
    mpc_ftensor_close(in);
}

/* ---- independent references ---------------------------------------------- */

/* y[b][n] = sum_k x[b][k] * W(k, n) + c[n]; W is [N, K] when tb, else [K, N]. */
static void ref_dense(size_t bs, size_t kk, size_t nn, const double *x, const double *wt, int tb,
                      const double *c, double *y) {
  for (size_t b = 0; b < bs; b++)
    for (size_t n = 0; n < nn; n++) {
      double acc = c != NULL ? c[n] : 0.0;
      for (size_t k = 0; k < kk; k++)
        acc += x[b * kk + k] * (tb ? wt[n * kk + k] : wt[k * nn + n]);
      y[b * nn + n] = acc;
    }
}

static void ref_relu(double *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    v[i] = v[i] > 0 ? v[i] : 0;
}

/* Convolution through an explicitly zero-padded copy of each plane. */
static void ref_conv(size_t bs, size_t ci, size_t h, size_t wd, const double *x, size_t co,
                     size_t kh, size_t kw, const double *wt, const double *bias, const size_t p[4],
                     size_t sh, size_t sw, size_t dh, size_t dw, size_t oh, size_t ow, double *y) {
  size_t ph = h + p[0] + p[2], pw = wd + p[1] + p[3];
  double *pad = calloc(ph * pw, sizeof *pad);
  ck_assert_ptr_nonnull(pad);
  for (size_t b = 0; b < bs; b++)
    for (size_t m = 0; m < co; m++)
      for (size_t i = 0; i < oh * ow; i++)
        y[(b * co + m) * oh * ow + i] = bias != NULL ? bias[m] : 0.0;
  for (size_t b = 0; b < bs; b++)
    for (size_t c = 0; c < ci; c++) {
      memset(pad, 0, ph * pw * sizeof *pad);
      for (size_t i = 0; i < h; i++)
        for (size_t j = 0; j < wd; j++)
          pad[(i + p[0]) * pw + j + p[1]] = x[((b * ci + c) * h + i) * wd + j];
      for (size_t m = 0; m < co; m++)
        for (size_t oy = 0; oy < oh; oy++)
          for (size_t ox = 0; ox < ow; ox++) {
            double acc = 0;
            for (size_t a = 0; a < kh; a++)
              for (size_t e = 0; e < kw; e++)
                acc += wt[((m * ci + c) * kh + a) * kw + e] *
                       pad[(oy * sh + a * dh) * pw + ox * sw + e * dw];
            y[((b * co + m) * oh + oy) * ow + ox] += acc;
          }
    }
  free(pad);
}

/* Pooling by listing the taps of each window inside the padded frame. */
static void ref_pool(int is_max, int incl, size_t planes, size_t h, size_t wd, const double *x,
                     size_t kh, size_t kw, const size_t p[4], size_t s, size_t oh, size_t ow,
                     double *y) {
  for (size_t q = 0; q < planes; q++)
    for (size_t oy = 0; oy < oh; oy++)
      for (size_t ox = 0; ox < ow; ox++) {
        double acc = is_max ? -1e300 : 0;
        size_t cnt = 0;
        for (size_t a = 0; a < kh; a++)
          for (size_t e = 0; e < kw; e++) {
            long iy = (long)(oy * s + a) - (long)p[0], ix = (long)(ox * s + e) - (long)p[1];
            if (iy < 0 || ix < 0 || iy >= (long)h || ix >= (long)wd)
              continue;
            double v = x[(q * h + (size_t)iy) * wd + (size_t)ix];
            acc = is_max ? (v > acc ? v : acc) : acc + v;
            cnt++;
          }
        y[(q * oh + oy) * ow + ox] = is_max ? acc : acc / (double)(incl ? kh * kw : cnt);
      }
}

/* y = scale * (x - mean) / sqrt(var + eps) + bias over channel axis 1. */
static void ref_bn(size_t bs, size_t ch, size_t plane, double *v, const double *sc,
                   const double *bi, const double *mean, const double *var, double eps) {
  for (size_t b = 0; b < bs; b++)
    for (size_t c = 0; c < ch; c++)
      for (size_t i = 0; i < plane; i++) {
        double *p = &v[(b * ch + c) * plane + i];
        *p = sc[c] * (*p - mean[c]) / sqrt(var[c] + eps) + bi[c];
      }
}

/* ---- models --------------------------------------------------------------- */

START_TEST(test_mlp) {
  rng_seed(0x0101);
  ob_t *b = ob_new(13);
  double *w1 = rvec(6 * 8), *b1 = rvec(6), *w2 = rvec(3 * 6), *b2 = rvec(3);
  ob_input(b, "x", FLOAT, 2, I64(-1, 8));
  ob_init_f(b, "W1", 2, I64(6, 8), w1);
  ob_add_init(b, ob_tensor(b, "B1", FLOAT, 1, 1, I64(6), b1)); /* raw_data */
  ob_add_init(b, ob_tensor(b, "W2", DOUBLE, 1, 2, I64(3, 6), w2));
  ob_add_init(b, ob_tensor(b, "B2", DOUBLE, 0, 1, I64(3), b2));
  Onnx__NodeProto *n = ob_node(b, "Gemm", "fc1", "x,W1,B1", "h");
  ob_attr_i(b, n, "transB", 1);
  ob_node(b, "Relu", "r", "h", "hr");
  n = ob_node(b, "Gemm", "fc2", "hr,W2,B2", "y");
  ob_attr_i(b, n, "transB", 1);
  ob_attr_f(b, n, "alpha", 1.0f);
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  ck_assert_uint_eq(count_op(&g, MPC_OP_INPUT), 1);
  ck_assert_uint_eq(count_op(&g, MPC_OP_PARAM), 4);
  ck_assert_uint_eq(count_op(&g, MPC_OP_GEMM), 2);
  ck_assert_uint_eq(count_op(&g, MPC_OP_OUTPUT), 1);
  ck_assert_str_eq(g.nodes[0].name, "x");
  ck_assert_uint_eq(g.nodes[0].shape.dim[0], 1); /* the symbolic batch, declared as 1 */
  ck_assert_str_eq(g.nodes[g.nnodes - 1].name, "y");

  mpc_ftensor_t in = rin(SHAPE(5, 8));
  double h[5 * 6], y[5 * 3];
  ref_dense(5, 8, 6, in.data, w1, 1, b1, h);
  ref_relu(h, 30);
  ref_dense(5, 6, 3, h, w2, 1, b2, y);
  mpc_shape_t ys = SHAPE(5, 3);
  eval_check(&g, &w, &in, &ys, y, 1e-12);
  closeall(&g, &w, &in);
  ob_free(b);
  free(w1), free(b1), free(w2), free(b2);
}
END_TEST

START_TEST(test_cnn) {
  rng_seed(0x0202);
  ob_t *b = ob_new(11);
  double *wc = rvec(2 * 1 * 3 * 3), *bc = rvec(2), *wf = rvec(4 * 18), *bf = rvec(4);
  ob_input(b, "img", FLOAT, 4, I64(-1, 1, 6, 6));
  ob_init_f(b, "wc", 4, I64(2, 1, 3, 3), wc);
  ob_init_f(b, "bc", 1, I64(2), bc);
  ob_init_f(b, "wf", 2, I64(4, 18), wf);
  ob_init_f(b, "bf", 1, I64(4), bf);
  Onnx__NodeProto *n = ob_node(b, "Conv", "conv", "img,wc,bc", "c");
  ob_attr_ints(b, n, "kernel_shape", 2, I64(3, 3));
  ob_attr_ints(b, n, "pads", 4, I64(1, 1, 1, 1));
  ob_attr_ints(b, n, "strides", 2, I64(1, 1));
  ob_attr_ints(b, n, "dilations", 2, I64(1, 1));
  ob_attr_i(b, n, "group", 1);
  ob_attr_s(b, n, "auto_pad", "NOTSET");
  ob_node(b, "Relu", NULL, "c", "cr");
  n = ob_node(b, "MaxPool", "pool", "cr", "p");
  ob_attr_ints(b, n, "kernel_shape", 2, I64(2, 2));
  ob_attr_ints(b, n, "strides", 2, I64(2, 2));
  n = ob_node(b, "Flatten", "flat", "p", "f");
  ob_attr_i(b, n, "axis", 1);
  n = ob_node(b, "Gemm", "fc", "f,wf,bf", "y");
  ob_attr_i(b, n, "transB", 1);
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  ck_assert_uint_eq(count_op(&g, MPC_OP_CONV), 1);
  ck_assert_uint_eq(count_op(&g, MPC_OP_MAXPOOL), 1);
  ck_assert_uint_eq(count_op(&g, MPC_OP_RESHAPE), 1);

  size_t bs = 3;
  mpc_ftensor_t in = rin(SHAPE(bs, 1, 6, 6));
  double c[3 * 2 * 36], p[3 * 2 * 9], y[3 * 4];
  size_t pads[4] = {1, 1, 1, 1}, nopad[4] = {0, 0, 0, 0};
  ref_conv(bs, 1, 6, 6, in.data, 2, 3, 3, wc, bc, pads, 1, 1, 1, 1, 6, 6, c);
  ref_relu(c, bs * 72);
  ref_pool(1, 0, bs * 2, 6, 6, c, 2, 2, nopad, 2, 3, 3, p);
  ref_dense(bs, 18, 4, p, wf, 1, bf, y);
  mpc_shape_t ys = SHAPE(bs, 4);
  eval_check(&g, &w, &in, &ys, y, 1e-12);
  closeall(&g, &w, &in);
  ob_free(b);
  free(wc), free(bc), free(wf), free(bf);
}
END_TEST

/* BatchNormalization parameters: positive variances. */
static void bn_inits(ob_t *b, const char *pre, size_t ch, double **sc, double **bi,
                     double **mean, double **var) {
  char nm[32];
  *sc = rvec(ch), *bi = rvec(ch), *mean = rvec(ch), *var = rvec(ch);
  for (size_t i = 0; i < ch; i++)
    (*var)[i] = (double)(float)(fabs((*var)[i]) + 0.25);
  const double *v[4] = {*sc, *bi, *mean, *var};
  const char *sfx[4] = {"s", "b", "m", "v"};
  for (int i = 0; i < 4; i++) {
    snprintf(nm, sizeof nm, "%s_%s", pre, sfx[i]);
    ob_init_f(b, nm, 1, I64((int64_t)ch), v[i]);
  }
}

START_TEST(test_bn_conv) {
  rng_seed(0x0303);
  ob_t *b = ob_new(9);
  double *wc = rvec(3 * 2 * 3 * 3), *sc, *bi, *mean, *var;
  ob_input(b, "x", FLOAT, 4, I64(0, 2, 5, 5)); /* dim_value 0: the batch */
  ob_init_f(b, "wc", 4, I64(3, 2, 3, 3), wc);
  bn_inits(b, "bn", 3, &sc, &bi, &mean, &var);
  Onnx__NodeProto *n = ob_node(b, "Conv", "conv", "x,wc", "c");
  ob_attr_ints(b, n, "strides", 2, I64(2, 1));
  n = ob_node(b, "BatchNormalization", "bn", "c,bn_s,bn_b,bn_m,bn_v", "d");
  ob_attr_f(b, n, "epsilon", 1e-3f);
  ob_attr_f(b, n, "momentum", 0.9f);
  ob_node(b, "Relu", NULL, "d", "y");
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  /* Folded: one Conv with weight and bias, nothing else linear. */
  ck_assert_uint_eq(count_op(&g, MPC_OP_CONV), 1);
  ck_assert_uint_eq(count_op(&g, MPC_OP_PARAM), 2);
  ck_assert_uint_eq(count_op(&g, MPC_OP_GEMM) + count_op(&g, MPC_OP_MULC), 0);

  mpc_ftensor_t in = rin(SHAPE(2, 2, 5, 5));
  double y[2 * 3 * 2 * 3];
  size_t nopad[4] = {0};
  ref_conv(2, 2, 5, 5, in.data, 3, 3, 3, wc, NULL, nopad, 2, 1, 1, 1, 2, 3, y);
  ref_bn(2, 3, 6, y, sc, bi, mean, var, (double)1e-3f);
  ref_relu(y, 36);
  mpc_shape_t ys = SHAPE(2, 3, 2, 3);
  eval_check(&g, &w, &in, &ys, y, 1e-9);
  closeall(&g, &w, &in);
  ob_free(b);
  free(wc), free(sc), free(bi), free(mean), free(var);
}
END_TEST

START_TEST(test_bn_gemm) {
  rng_seed(0x0404);
  for (int variant = 0; variant < 3; variant++) {
    /* 0: transB and a bias [N]; 1: no transpose, scalar bias, beta 0.5;
     * 2: the Gemm's output is also a graph output, so no folding. */
    ob_t *b = ob_new(15);
    double *wt = rvec(5 * 4), *cb = rvec(5), *sc, *bi, *mean, *var;
    ob_input(b, "x", FLOAT, 2, I64(-1, 4));
    ob_init_f(b, "W", 2, variant == 1 ? I64(4, 5) : I64(5, 4), wt);
    ob_init_f(b, "C", variant == 1 ? 0 : 1, I64(5), cb);
    bn_inits(b, "bn", 5, &sc, &bi, &mean, &var);
    Onnx__NodeProto *n = ob_node(b, "Gemm", "fc", "x,W,C", "h");
    if (variant != 1)
      ob_attr_i(b, n, "transB", 1);
    else
      ob_attr_f(b, n, "beta", 0.5f);
    ob_node(b, "BatchNormalization", "bn", "h,bn_s,bn_b,bn_m,bn_v", "y");
    ob_output(b, "y");
    if (variant == 2)
      ob_output(b, "h");
    mpc_graph_t g;
    mpc_weights_t w;
    load_ok(b, &g, &w);
    /* Not folded: a second Gemm with a diagonal weight. */
    ck_assert_uint_eq(count_op(&g, MPC_OP_GEMM), variant == 2 ? 2 : 1);

    mpc_ftensor_t in = rin(SHAPE(3, 4));
    double y[15], c[5];
    for (int i = 0; i < 5; i++)
      c[i] = variant == 1 ? 0.5 * cb[0] : cb[i];
    ref_dense(3, 4, 5, in.data, wt, variant != 1, c, y);
    double h[15];
    memcpy(h, y, sizeof h);
    ref_bn(3, 5, 1, y, sc, bi, mean, var, 1e-5);
    mpc_ftensor_t out[2];
    ck_assert_int_eq(mpc_eval_float(&g, &w, &in, out), 0);
    for (int i = 0; i < 15; i++)
      ck_assert_msg(fabs(out[0].data[i] - y[i]) < 1e-9, "variant %d elem %d: %g vs %g", variant,
                    i, out[0].data[i], y[i]);
    if (variant == 2)
      for (int i = 0; i < 15; i++)
        ck_assert(fabs(out[1].data[i] - h[i]) < 1e-12);
    for (int i = 0; i < (variant == 2 ? 2 : 1); i++)
      mpc_ftensor_close(&out[i]);
    closeall(&g, &w, &in);
    ob_free(b);
    free(wt), free(cb), free(sc), free(bi), free(mean), free(var);
  }
}
END_TEST

/* A BatchNormalization after a Relu (nothing to fold into): a diagonal 1x1
 * convolution for 4-D, through a reshape for 3-D. */
START_TEST(test_bn_standalone) {
  rng_seed(0x0505);
  for (unsigned rank = 3; rank <= 4; rank++) {
    ob_t *b = ob_new(14);
    double *sc, *bi, *mean, *var;
    if (rank == 4)
      ob_input(b, "x", FLOAT, 4, I64(-1, 3, 2, 4));
    else
      ob_input(b, "x", FLOAT, 3, I64(-1, 3, 8));
    bn_inits(b, "bn", 3, &sc, &bi, &mean, &var);
    ob_node(b, "Relu", "r", "x", "xr");
    Onnx__NodeProto *n = ob_node(b, "BatchNormalization", "bn", "xr,bn_s,bn_b,bn_m,bn_v", "y");
    ob_attr_i(b, n, "training_mode", 0);
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load_ok(b, &g, &w);
    ck_assert_uint_eq(count_op(&g, MPC_OP_CONV), 1);
    mpc_ftensor_t in = rank == 4 ? rin(SHAPE(2, 3, 2, 4)) : rin(SHAPE(2, 3, 8));
    double y[48];
    memcpy(y, in.data, sizeof y);
    ref_relu(y, 48);
    ref_bn(2, 3, 8, y, sc, bi, mean, var, 1e-5);
    eval_check(&g, &w, &in, &in.shape, y, 1e-9);
    closeall(&g, &w, &in);
    ob_free(b);
    free(sc), free(bi), free(mean), free(var);
  }
}
END_TEST

START_TEST(test_pad_conv) {
  rng_seed(0x0606);
  for (int opset = 9; opset <= 13; opset += 4) {
    ob_t *b = ob_new(opset);
    double *wc = rvec(2 * 2 * 2 * 3), *bc = rvec(2);
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
      ob_attr_f(b, n, "value", 0.0f);
    }
    ob_attr_s(b, n, "mode", "constant");
    n = ob_node(b, "Conv", "conv", "xp,wc,bc", "y");
    ob_attr_ints(b, n, "pads", 4, I64(0, 0, 0, 1)); /* plus the conv's own */
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load_ok(b, &g, &w);
    mpc_ftensor_t in = rin(SHAPE(2, 2, 4, 5));
    size_t p[4] = {1, 2, 2, 1};
    size_t oh = 4 + 3 - 2 + 1, ow = 5 + 3 - 3 + 1;
    double y[2 * 2 * 6 * 6];
    ref_conv(2, 2, 4, 5, in.data, 2, 2, 3, wc, bc, p, 1, 1, 1, 1, oh, ow, y);
    mpc_shape_t ys = SHAPE(2, 2, oh, ow);
    eval_check(&g, &w, &in, &ys, y, 1e-12);
    closeall(&g, &w, &in);
    ob_free(b);
    free(wc), free(bc);
  }
}
END_TEST

START_TEST(test_avgpool) {
  rng_seed(0x0707);
  for (int incl = 0; incl <= 1; incl++) {
    ob_t *b = ob_new(11);
    ob_input(b, "x", FLOAT, 4, I64(-1, 2, 5, 6));
    Onnx__NodeProto *n = ob_node(b, "AveragePool", "ap", "x", "y");
    ob_attr_ints(b, n, "kernel_shape", 2, I64(3, 3));
    ob_attr_ints(b, n, "pads", 4, I64(1, 1, 1, 1));
    ob_attr_ints(b, n, "strides", 2, I64(2, 2));
    ob_attr_i(b, n, "count_include_pad", incl);
    ob_attr_i(b, n, "ceil_mode", 0);
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load_ok(b, &g, &w);
    mpc_ftensor_t in = rin(SHAPE(3, 2, 5, 6));
    size_t p[4] = {1, 1, 1, 1};
    double y[3 * 2 * 3 * 3];
    ref_pool(0, incl, 6, 5, 6, in.data, 3, 3, p, 2, 3, 3, y);
    mpc_shape_t ys = SHAPE(3, 2, 3, 3);
    eval_check(&g, &w, &in, &ys, y, 1e-12);
    closeall(&g, &w, &in);
    ob_free(b);
  }
  /* A Pad before an AveragePool counts its zeros: count_include_pad=1. */
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 4, I64(-1, 1, 4, 4));
  ob_init_i64(b, "pads", 8, I64(0, 0, 1, 1, 0, 0, 1, 1));
  ob_node(b, "Pad", "pad", "x,pads", "xp");
  Onnx__NodeProto *n = ob_node(b, "AveragePool", "ap", "xp", "y");
  ob_attr_ints(b, n, "kernel_shape", 2, I64(2, 2));
  ob_attr_ints(b, n, "strides", 2, I64(2, 2));
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  mpc_ftensor_t in = rin(SHAPE(2, 1, 4, 4));
  size_t p[4] = {1, 1, 1, 1};
  double y[2 * 9];
  ref_pool(0, 1, 2, 4, 4, in.data, 2, 2, p, 2, 3, 3, y);
  mpc_shape_t ys = SHAPE(2, 1, 3, 3);
  eval_check(&g, &w, &in, &ys, y, 1e-12);
  closeall(&g, &w, &in);
  ob_free(b);
}
END_TEST

START_TEST(test_global_avgpool) {
  rng_seed(0x0808);
  ob_t *b = ob_new(17);
  ob_input(b, "x", FLOAT, 4, I64(-1, 3, 4, 5));
  ob_node(b, "GlobalAveragePool", "gap", "x", "y");
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  mpc_ftensor_t in = rin(SHAPE(2, 3, 4, 5));
  double y[6] = {0};
  for (size_t q = 0; q < 6; q++) {
    for (size_t i = 0; i < 20; i++)
      y[q] += in.data[q * 20 + i];
    y[q] /= 20;
  }
  mpc_shape_t ys = SHAPE(2, 3, 1, 1);
  eval_check(&g, &w, &in, &ys, y, 1e-12);
  closeall(&g, &w, &in);
  ob_free(b);
}
END_TEST

START_TEST(test_reshape) {
  rng_seed(0x0909);
  /* [N,2,3,4] -> [0,3,-1] = [N,3,8] -> Transpose(0,2,1) -> [0,-1] = [N,24]. */
  ob_t *b = ob_new(14);
  ob_input(b, "x", FLOAT, 4, I64(-1, 2, 3, 4));
  ob_init_i64(b, "s1", 3, I64(0, 3, -1));
  ob_init_i64(b, "s2", 2, I64(0, -1));
  Onnx__NodeProto *n = ob_node(b, "Reshape", "r1", "x,s1", "a");
  ob_attr_i(b, n, "allowzero", 0);
  n = ob_node(b, "Transpose", "t", "a", "at");
  ob_attr_ints(b, n, "perm", 3, I64(0, 2, 1));
  ob_node(b, "Reshape", "r2", "at,s2", "y");
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  mpc_ftensor_t in = rin(SHAPE(3, 2, 3, 4));
  double y[72];
  for (size_t bb = 0; bb < 3; bb++)
    for (size_t i = 0; i < 8; i++)
      for (size_t j = 0; j < 3; j++)
        y[bb * 24 + i * 3 + j] = in.data[bb * 24 + j * 8 + i];
  mpc_shape_t ys = SHAPE(3, 24);
  eval_check(&g, &w, &in, &ys, y, 0);
  closeall(&g, &w, &in);
  ob_free(b);

  /* Errors: two -1, a count that does not divide, a shape from a computed value. */
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 6));
  ob_init_i64(b, "s", 3, I64(-1, -1, 2));
  ob_node(b, "Reshape", "bad", "x,s", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_ESHAPE, "node 'bad' (Reshape)", "-1");
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 6));
  ob_init_i64(b, "s", 2, I64(0, 4));
  ob_node(b, "Reshape", "bad", "x,s", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_ESHAPE, "node 'bad' (Reshape)", NULL);
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 6));
  ob_node(b, "Reshape", "bad", "x,x", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EUNSUPOP, "node 'bad' (Reshape)", "must be a constant");
  ob_free(b);
}
END_TEST

START_TEST(test_squeeze_unsqueeze) {
  rng_seed(0x0a0a);
  for (int opset = 11; opset <= 13; opset += 2) {
    /* [N,3] -Unsqueeze(2,-1)-> [N,3,1,1] -Squeeze(3)-> [N,3,1] -Squeeze()-> [N,3]. */
    ob_t *b = ob_new(opset);
    ob_input(b, "x", FLOAT, 2, I64(-1, 3));
    Onnx__NodeProto *n;
    if (opset >= 13) {
      ob_init_i64(b, "ax_u", 2, I64(2, -1));
      ob_init_i64(b, "ax_s", 1, I64(3));
      ob_node(b, "Unsqueeze", "u", "x,ax_u", "a");
      ob_node(b, "Squeeze", "s", "a,ax_s", "c");
    } else {
      n = ob_node(b, "Unsqueeze", "u", "x", "a");
      ob_attr_ints(b, n, "axes", 2, I64(2, -1));
      n = ob_node(b, "Squeeze", "s", "a", "c");
      ob_attr_ints(b, n, "axes", 1, I64(3));
    }
    ob_node(b, "Relu", "r", "c", "cr");
    ob_node(b, "Squeeze", "s2", "cr", "y"); /* no axes: every 1 but the batch */
    ob_output(b, "y");
    ob_output(b, "cr");
    mpc_graph_t g;
    mpc_weights_t w;
    load_ok(b, &g, &w);
    mpc_ftensor_t in = rin(SHAPE(4, 3)), out[2];
    ck_assert_int_eq(mpc_eval_float(&g, &w, &in, out), 0);
    ck_assert_uint_eq(out[0].shape.ndim, 2);
    ck_assert_uint_eq(out[0].shape.dim[0], 4);
    ck_assert_uint_eq(out[0].shape.dim[1], 3);
    ck_assert_uint_eq(out[1].shape.ndim, 3);
    ck_assert_uint_eq(out[1].shape.dim[2], 1);
    for (int i = 0; i < 12; i++)
      ck_assert(out[0].data[i] == (in.data[i] > 0 ? in.data[i] : 0));
    mpc_ftensor_close(&out[0]);
    mpc_ftensor_close(&out[1]);
    closeall(&g, &w, &in);
    ob_free(b);
  }
  /* Axes in the wrong place for the opset, and the batch axis. */
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 3));
  Onnx__NodeProto *n = ob_node(b, "Unsqueeze", "u", "x", "y");
  ob_attr_ints(b, n, "axes", 1, I64(1));
  ob_output(b, "y");
  load_fail(b, TANDEM_EPARSE, "node 'u' (Unsqueeze)", "opset 13");
  ob_free(b);
  b = ob_new(11);
  ob_input(b, "x", FLOAT, 2, I64(-1, 3));
  n = ob_node(b, "Unsqueeze", "u", "x", "y");
  ob_attr_ints(b, n, "axes", 1, I64(0));
  ob_output(b, "y");
  load_fail(b, TANDEM_EUNSUPOP, "node 'u' (Unsqueeze)", "batch");
  ob_free(b);
}
END_TEST

START_TEST(test_scalar_ops) {
  rng_seed(0x0b0b);
  /* y = (c - (x * 2.5) / 4) + bias, with 2.5 an initializer scalar, 4 a
   * Constant (value_float), c a Constant tensor of shape [1]. */
  ob_t *b = ob_new(13);
  double *bias = rvec(3);
  ob_input(b, "x", FLOAT, 2, I64(-1, 3));
  ob_add_init(b, ob_tensor(b, "k", FLOAT, 1, 0, NULL, (double[]){2.5}));
  ob_init_f(b, "bias", 1, I64(3), bias);
  Onnx__NodeProto *n = ob_node(b, "Constant", "four", "", "four");
  ob_attr_f(b, n, "value_float", 4.0f);
  n = ob_node(b, "Constant", "cst", "", "cc");
  ob_attr_t(b, n, "value", ob_tensor(b, NULL, DOUBLE, 0, 1, I64(1), (double[]){0.75}));
  ob_node(b, "Mul", "mul", "k,x", "a");
  ob_node(b, "Div", "div", "a,four", "d");
  ob_node(b, "Sub", "sub", "cc,d", "e");
  ob_node(b, "Add", "add", "bias,e", "y");
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  /* 2.5 and 1/4 are the owner's: secret parameters of two Mul nodes, never
   * public numbers in the graph; the negation of Sub's swap is public. */
  ck_assert_uint_eq(count_op(&g, MPC_OP_MUL), 2);
  ck_assert_uint_eq(count_op(&g, MPC_OP_MULC), 1);
  for (size_t i = 0; i < g.nnodes; i++)
    if (g.nodes[i].op == MPC_OP_MULC)
      ck_assert(g.nodes[i].attr.scalar == -1.0);
  mpc_ftensor_t in = rin(SHAPE(2, 3));
  double y[6];
  for (int i = 0; i < 6; i++)
    y[i] = (0.75 - in.data[i] * 2.5 / 4.0) + bias[i % 3];
  mpc_shape_t ys = SHAPE(2, 3);
  eval_check(&g, &w, &in, &ys, y, 1e-12);
  closeall(&g, &w, &in);
  ob_free(b);
  free(bias);

  /* A factor that does not broadcast; division by a computed value;
   * division by zero (also inside a tensor). */
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 3));
  ob_init_f(b, "v", 1, I64(4), (double[]){1, 2, 3, 4});
  ob_node(b, "Mul", "m", "x,v", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_ESHAPE, "node 'm' (Mul)", "broadcast");
  ob_free(b);
  /* A constant divided by a computed value (a computed divisor is the
   * product with its Reciprocal, test_cnn_ops.c). */
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 3));
  ob_init_f(b, "v", 1, I64(3), (double[]){1, 2, 3});
  ob_node(b, "Div", "m", "v,x", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EUNSUPOP, "node 'm' (Div)", "computed");
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 3));
  ob_init_f(b, "v", 1, I64(3), (double[]){1, 0, 3});
  ob_node(b, "Div", "d", "x,v", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_ERANGE, "node 'd' (Div)", "zero");
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 3));
  ob_init_f(b, "z", 0, NULL, (double[]){0});
  ob_node(b, "Div", "d", "x,z", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_ERANGE, "node 'd' (Div)", "zero");
  ob_free(b);
}
END_TEST

START_TEST(test_identity_dropout_transpose) {
  rng_seed(0x0c0c);
  for (int opset = 10; opset <= 13; opset += 3) {
    /* x -> Identity -> Dropout -> MatMul(Transpose(W)) -> Sub(x2) with x2 a second input. */
    ob_t *b = ob_new(opset);
    double *wt = rvec(4 * 3);
    ob_input(b, "x", FLOAT, 2, I64(-1, 3));
    ob_input(b, "x2", DOUBLE, 2, I64(-1, 4));
    ob_init_f(b, "W", 2, I64(4, 3), wt); /* stored [N, K] */
    ob_node(b, "Identity", "id", "x", "a");
    Onnx__NodeProto *n;
    if (opset >= 12) {
      ob_add_init(b, ob_tensor(b, "ratio", FLOAT, 0, 0, NULL, (double[]){0.5}));
      n = ob_node(b, "Dropout", "drop", "a,ratio", "d,mask");
    } else {
      n = ob_node(b, "Dropout", "drop", "a", "d");
      ob_attr_f(b, n, "ratio", 0.5f);
    }
    ob_node(b, "Transpose", "tw", "W", "Wt");
    ob_node(b, "MatMul", "mm", "d,Wt", "m");
    ob_node(b, "Sub", "sub", "x2,m", "y"); /* activation - activation */
    ob_output(b, "y");
    mpc_graph_t g;
    mpc_weights_t w;
    load_ok(b, &g, &w);
    ck_assert_uint_eq(count_op(&g, MPC_OP_INPUT), 2);
    ck_assert_uint_eq(count_op(&g, MPC_OP_TRANSPOSE), 0); /* folded into the weight */
    mpc_ftensor_t in[2] = {rin(SHAPE(2, 3)), rin(SHAPE(2, 4))}, out;
    double y[8];
    ref_dense(2, 3, 4, in[0].data, wt, 1, NULL, y);
    for (int i = 0; i < 8; i++)
      y[i] = in[1].data[i] - y[i];
    ck_assert_int_eq(mpc_eval_float(&g, &w, in, &out), 0);
    for (int i = 0; i < 8; i++)
      ck_assert_msg(fabs(out.data[i] - y[i]) < 1e-12, "opset %d elem %d", opset, i);
    mpc_ftensor_close(&out);
    mpc_ftensor_close(&in[1]);
    closeall(&g, &w, &in[0]);
    ob_free(b);
    free(wt);
  }
}
END_TEST

/* ---- errors --------------------------------------------------------------- */

static ob_t *mlp_model(void) {
  static const double wv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_init_f(b, "W", 2, I64(3, 4), wv);
  Onnx__NodeProto *n = ob_node(b, "Gemm", "fc", "x,W", "h");
  ob_attr_i(b, n, "transB", 1);
  ob_node(b, "Relu", "r", "h", "y");
  ob_output(b, "y");
  return b;
}

START_TEST(test_err_unsupported) {
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_node(b, "LogSoftmax", "sm", "x", "s");
  ob_node(b, "Relu", "r", "s", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EUNSUPOP,
            "node 'sm' (LogSoftmax): supported only as the graph's last operator",
            NULL);
  ob_free(b);

  b = ob_new(13);
  ob_input(b, "x", FLOAT, 3, I64(-1, 4, 5));
  ob_init_f(b, "W", 3, I64(4, 2, 1), (double[8]){0});
  Onnx__NodeProto *n = ob_node(b, "Conv", "Conv_3", "x,W", "y");
  ob_attr_i(b, n, "group", 2);
  ob_output(b, "y");
  load_fail(b, TANDEM_EUNSUPOP, "node 'Conv_3' (Conv): group=2 on a 1-D Conv is not supported",
            NULL);
  ob_free(b);

  /* An unknown attribute, an unsupported auto_pad, an unnamed node. */
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  n = ob_node(b, "Relu", NULL, "x", "y");
  ob_attr_i(b, n, "frobnicate", 1);
  ob_output(b, "y");
  load_fail(b, TANDEM_EUNSUPOP, "node 'Relu_0' (Relu)", "'frobnicate'");
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 4, I64(-1, 1, 4, 4));
  n = ob_node(b, "MaxPool", "mp", "x", "y");
  ob_attr_ints(b, n, "kernel_shape", 2, I64(2, 2));
  ob_attr_s(b, n, "auto_pad", "SAME");
  ob_output(b, "y");
  load_fail(b, TANDEM_EPARSE, "node 'mp' (MaxPool)", "auto_pad=SAME is not an ONNX value");
  ob_free(b);

  /* Zero padding before a MaxPool is not folded into it (its padding is
   * -inf): a Pad of its own (a Select), the zeros compared. */
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 4, I64(-1, 1, 4, 4));
  ob_init_i64(b, "pads", 8, I64(0, 0, 1, 1, 0, 0, 1, 1));
  ob_node(b, "Pad", "pad", "x,pads", "xp");
  n = ob_node(b, "MaxPool", "mp", "xp", "y");
  ob_attr_ints(b, n, "kernel_shape", 2, I64(2, 2));
  ob_output(b, "y");
  mpc_graph_t g;
  mpc_weights_t w;
  load_ok(b, &g, &w);
  ck_assert_int_eq(g.nodes[1].op, MPC_OP_SELECT);
  ck_assert_uint_eq(g.nodes[1].shape.dim[2], 6);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  ob_free(b);

  /* Opsets outside 9..17 (below, only for operators whose form is the
   * same there), and a foreign domain. */
  b = ob_new(8);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_node(b, "Sub", "r", "x,x", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EUNSUPOP, "opset 8", "Sub");
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  n = ob_node(b, "Gelu", "ge", "x", "y");
  n->domain = "com.microsoft";
  ob_output(b, "y");
  load_fail(b, TANDEM_EUNSUPOP, "node 'ge' (Gelu)", "com.microsoft");
  ob_free(b);
}
END_TEST

START_TEST(test_err_malformed) {
  mpc_graph_t g;
  mpc_weights_t w;
  char err[512];
  size_t len;
  ob_t *b = mlp_model();
  uint8_t *buf = ob_pack(b, &len);
  ob_free(b);
  /* Every truncation of a valid model fails cleanly or, where protobuf's
   * framing happens to allow it, imports a consistent graph. */
  size_t failed = 0;
  for (size_t cut = 0; cut < len; cut++) {
    int rc = mpc_onnx_load_buffer(buf, cut, &g, &w, err, sizeof err);
    if (rc != 0) {
      ck_assert_msg(err[0] != '\0', "cut %zu: no message", cut);
      failed++;
    } else {
      closeall(&g, &w, NULL);
    }
  }
  ck_assert_uint_gt(failed, len * 9 / 10);
  ck_assert_int_eq(mpc_onnx_load_buffer(buf, len / 2, &g, &w, err, sizeof err), TANDEM_EPARSE);
  free(buf);

  /* Random bytes. */
  rng_seed(0x0d0d);
  uint8_t junk[4096];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (uint8_t)(rnd() * 127 + 128);
  ck_assert_int_ne(mpc_onnx_load_buffer(junk, sizeof junk, &g, &w, err, sizeof err), 0);
  ck_assert_str_ne(err, "");

  /* A missing initializer, a cycle, a name defined twice. */
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_node(b, "Gemm", "fc", "x,W_missing", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EPARSE, "node 'fc' (Gemm)", "'W_missing' is not produced");
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_node(b, "Add", "a1", "x,q", "p");
  ob_node(b, "Relu", "r1", "p", "q");
  ob_output(b, "q");
  load_fail(b, TANDEM_EPARSE, "cycle", NULL);
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_node(b, "Relu", "r1", "x", "y");
  ob_node(b, "Relu", "r2", "x", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EPARSE, "node 'r2' (Relu)", "already defined");
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_node(b, "Relu", "r1", "x", "y");
  ob_output(b, "nothing");
  load_fail(b, TANDEM_EPARSE, "graph output 'nothing'", NULL);
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_node(b, "Gemm", "fc", "x", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EPARSE, "node 'fc' (Gemm)", "input 1 is missing");
  ob_free(b);

  /* Wrong data types: an INT32 weight, an INT64 input, raw_data of the wrong size. */
  b = mlp_model();
  b = (ob_free(b), ob_new(13));
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  Onnx__TensorProto *t = ob_tensor(b, "W", FLOAT, 0, 2, I64(3, 4), (double[12]){0});
  t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
  ob_add_init(b, t);
  ob_node(b, "Gemm", "fc", "x,W", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EPARSE, "node 'fc' (Gemm)", "INT32");
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 2, I64(-1, 4));
  ob_node(b, "Relu", "r", "x", "y");
  ob_output(b, "y");
  /* An INT64 input is a shape input, known at import or refused. */
  load_fail(b, TANDEM_EUNSUPOP, "graph input 'x'", "INT64");
  ob_free(b);
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  t = ob_tensor(b, "W", FLOAT, 1, 2, I64(3, 4), (double[12]){0});
  t->raw_data.len -= 4;
  ob_add_init(b, t);
  ob_node(b, "Gemm", "fc", "x,W", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EPARSE, "raw_data has 44 bytes, want 48", NULL);
  ob_free(b);
  /* An int64 tensor where a weight belongs. */
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_init_i64(b, "W", 4, I64(1, 2, 3, 4));
  ob_node(b, "Add", "add", "x,W", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EPARSE, "node 'add' (Add)", "INT64");
  ob_free(b);
  /* A weight shape that does not fit. */
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 4));
  ob_init_f(b, "W", 2, I64(3, 5), (double[15]){0});
  ob_node(b, "Gemm", "fc", "x,W", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_ESHAPE, "node 'fc' (Gemm)", "inner dimensions");
  ob_free(b);
  /* NaN in a weight. */
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 3));
  ob_init_f(b, "W", 1, I64(3), (double[3]){1, NAN, 2});
  ob_node(b, "Add", "add", "x,W", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_ERANGE, "node 'add' (Add)", "NaN");
  ob_free(b);
  /* A symbolic non-batch dimension. */
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(2, -1));
  ob_node(b, "Relu", "r", "x", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EUNSUPOP, "graph input 'x'", "symbolic");
  ob_free(b);
}
END_TEST

START_TEST(test_load_file) {
  char dir[] = "/tmp/tandem-onnx-XXXXXX", path[128], err[512];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/m.onnx", dir);
  size_t len;
  ob_t *b = mlp_model();
  uint8_t *buf = ob_pack(b, &len);
  ob_free(b);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
  fclose(f);
  free(buf);
  mpc_graph_t g;
  mpc_weights_t w;
  ck_assert_int_eq(mpc_onnx_load(path, &g, &w, err, sizeof err), 0);
  ck_assert_uint_eq(count_op(&g, MPC_OP_GEMM), 1);
  /* W of the owner, exactly as stored. */
  for (size_t i = 0; i < g.nnodes; i++)
    if (g.nodes[i].op == MPC_OP_PARAM)
      for (int k = 0; k < 12; k++)
        ck_assert(w.param[i].data[k] == k + 1);
  closeall(&g, &w, NULL);
  unlink(path);
  ck_assert_int_eq(mpc_onnx_load(path, &g, &w, err, sizeof err), -ENOENT);
  ck_assert(strstr(err, "m.onnx") != NULL);
  rmdir(dir);
}
END_TEST

/* ---- tensor files ---------------------------------------------------------- */

static char tdir[64];

static void tdir_make(void) {
  snprintf(tdir, sizeof tdir, "/tmp/tandem-tensor-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tdir));
}

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(p, 1, n, f), n);
  fclose(f);
}

START_TEST(test_tensor_roundtrip) {
  rng_seed(0x0e0e);
  tdir_make();
  const char *ext[2] = {"npy", "pb"};
  mpc_shape_t shapes[4] = {SHAPE(3, 4), SHAPE(7), SHAPE(2, 1, 3, 2, 1, 2), {0, {0}}};
  for (int e = 0; e < 2; e++)
    for (int s = 0; s < 4; s++) {
      char path[128], err[256];
      snprintf(path, sizeof path, "%s/t%d.%s", tdir, s, ext[e]);
      mpc_ftensor_t t = rin(shapes[s]), u;
      t.data[0] = -0.0;
      if (mpc_shape_numel(&t.shape) > 1)
        t.data[1] = 1e-310; /* a subnormal survives too */
      ck_assert_int_eq(mpc_tensor_save(path, &t), 0);
      ck_assert_msg(mpc_tensor_load(path, &u, err, sizeof err) == 0, "%s: %s", path, err);
      ck_assert_uint_eq(u.shape.ndim, t.shape.ndim);
      for (unsigned d = 0; d < t.shape.ndim; d++)
        ck_assert_uint_eq(u.shape.dim[d], t.shape.dim[d]);
      ck_assert(memcmp(u.data, t.data, mpc_shape_numel(&t.shape) * 8) == 0);
      mpc_ftensor_close(&t);
      mpc_ftensor_close(&u);
      unlink(path);
    }
  rmdir(tdir);
}
END_TEST

/* A .npy file with the given header text and float data. */
static size_t npy_make(uint8_t *out, int major, const char *hdr, const void *data, size_t dlen) {
  size_t hl = strlen(hdr), off = major == 1 ? 10 : 12;
  memcpy(out, "\x93NUMPY", 6);
  out[6] = (uint8_t)major;
  out[7] = 0;
  if (major == 1) {
    out[8] = (uint8_t)hl;
    out[9] = (uint8_t)(hl >> 8);
  } else {
    out[8] = (uint8_t)hl;
    out[9] = (uint8_t)(hl >> 8);
    out[10] = out[11] = 0;
  }
  memcpy(out + off, hdr, hl);
  memcpy(out + off + hl, data, dlen);
  return off + hl + dlen;
}

START_TEST(test_tensor_formats) {
  uint8_t buf[1024];
  char err[256];
  mpc_ftensor_t t;
  const float f[6] = {1, -2, 3.5f, 4, 5, 6};
  /* NumPy 1.0 and 2.0 headers with float32, in other spellings NumPy accepts. */
  size_t n = npy_make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }    \n",
                      f, sizeof f);
  ck_assert_int_eq(mpc_tensor_load_buffer(buf, n, &t, err, sizeof err), 0);
  ck_assert_uint_eq(t.shape.ndim, 2);
  ck_assert(t.data[2] == 3.5 && t.data[1] == -2);
  mpc_ftensor_close(&t);
  n = npy_make(buf, 2, "{\"shape\": (6L,), \"fortran_order\": False, \"descr\": \"<f4\"}\n", f,
               sizeof f);
  ck_assert_msg(mpc_tensor_load_buffer(buf, n, &t, err, sizeof err) == 0, "%s", err);
  ck_assert_uint_eq(t.shape.ndim, 1);
  ck_assert_uint_eq(t.shape.dim[0], 6);
  mpc_ftensor_close(&t);
  /* A TensorProto in float_data, as the ONNX backend test data has. */
  ob_t *b = ob_new(13);
  /* Unnamed, so that the data is the last field and every prefix is short. */
  Onnx__TensorProto *tp = ob_tensor(b, NULL, FLOAT, 0, 2, I64(3, 2), (double[6]){1, 2, 3, 4, 5, 6});
  size_t len = onnx__tensor_proto__get_packed_size(tp);
  uint8_t *pb = malloc(len);
  onnx__tensor_proto__pack(tp, pb);
  ck_assert_int_eq(mpc_tensor_load_buffer(pb, len, &t, err, sizeof err), 0);
  ck_assert_uint_eq(t.shape.dim[0], 3);
  ck_assert(t.data[5] == 6);
  mpc_ftensor_close(&t);
  /* Truncations of the TensorProto all fail (a prefix misses data). */
  for (size_t cut = 1; cut < len; cut++)
    ck_assert_int_ne(mpc_tensor_load_buffer(pb, cut, &t, err, sizeof err), 0);
  free(pb);
  /* INT64 data reads as reals (a Max of two INT64 inputs); a STRING tensor
   * is refused, naming its type. */
  tp = ob_tensor_i64(b, "i", 0, 1, I64(2), I64(1, -2));
  len = onnx__tensor_proto__get_packed_size(tp);
  pb = malloc(len);
  onnx__tensor_proto__pack(tp, pb);
  ck_assert_int_eq(mpc_tensor_load_buffer(pb, len, &t, err, sizeof err), 0);
  ck_assert(t.data[0] == 1 && t.data[1] == -2);
  mpc_ftensor_close(&t);
  tp->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__STRING;
  onnx__tensor_proto__pack(tp, pb);
  ck_assert_int_eq(mpc_tensor_load_buffer(pb, len, &t, err, sizeof err), TANDEM_EPARSE);
  ck_assert(strstr(err, "STRING") != NULL);
  free(pb);
  ob_free(b);
}
END_TEST

START_TEST(test_tensor_errors) {
  uint8_t buf[1024];
  char err[256];
  mpc_ftensor_t t;
  const double d[6] = {1, 2, 3, 4, 5, 6};
  struct {
    int major;
    const char *hdr;
    size_t dlen;
    int want;
    const char *frag;
  } cases[] = {
      {1, "{'descr': '>f8', 'fortran_order': False, 'shape': (6,), }\n", 48, TANDEM_EUNSUPOP,
       "big-endian"},
      {1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }\n", 48, TANDEM_EUNSUPOP,
       "Fortran"},
      {1, "{'descr': '<i2', 'fortran_order': False, 'shape': (6,), }\n", 48, TANDEM_EUNSUPOP,
       "'<i2'"},
      {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }\n", 40, TANDEM_EPARSE,
       "truncated"},
      {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }\n", 48, TANDEM_EPARSE,
       "after the data"},
      {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,) \n", 48, TANDEM_EPARSE,
       "header"},
      {1, "{'descr': '<f8', 'shape': (6,), }\n", 48, TANDEM_EPARSE, "fortran_order"},
      {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), 'x': 1}\n", 48,
       TANDEM_EPARSE, "'x'"},
      {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }\n", 0, TANDEM_ESHAPE,
       "empty"},
      {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,1,1,1,1,1,6), }\n", 48,
       TANDEM_ESHAPE, "dimensions"},
      {1, "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (6,), }\n", 48,
       TANDEM_EUNSUPOP, "structured"},
      {3, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }\n", 48, TANDEM_EUNSUPOP,
       "version 3.0"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = npy_make(buf, cases[i].major, cases[i].hdr, d, cases[i].dlen);
    int rc = mpc_tensor_load_buffer(buf, n, &t, err, sizeof err);
    ck_assert_msg(rc == cases[i].want, "case %zu: %s (%s)", i, tandem_err_name(rc), err);
    ck_assert_msg(strstr(err, cases[i].frag) != NULL, "case %zu: '%s' lacks '%s'", i, err,
                  cases[i].frag);
    ck_assert_ptr_null(t.data);
  }
  /* A header length beyond the file, and every truncation of a good file. */
  size_t n = npy_make(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }\n", d,
                      48);
  for (size_t cut = 0; cut < n; cut++)
    ck_assert_int_ne(mpc_tensor_load_buffer(buf, cut, &t, err, sizeof err), 0);
  /* Files: a .npy name without the magic, a missing file, and an unwritable path. */
  tdir_make();
  char path[128];
  snprintf(path, sizeof path, "%s/x.npy", tdir);
  write_bytes(path, "hello", 5);
  ck_assert_int_eq(mpc_tensor_load(path, &t, err, sizeof err), TANDEM_EPARSE);
  ck_assert(strstr(err, "magic") != NULL);
  unlink(path);
  ck_assert_int_eq(mpc_tensor_load(path, &t, err, sizeof err), -ENOENT);
  mpc_shape_t s = SHAPE(2);
  ck_assert_int_eq(mpc_ftensor_init(&t, &s), 0);
  snprintf(path, sizeof path, "%s/no/such/dir/x.pb", tdir);
  ck_assert_int_eq(mpc_tensor_save(path, &t), -ENOENT);
  mpc_ftensor_close(&t);
  ck_assert_int_eq(mpc_tensor_save(path, &t), TANDEM_EINVAL);
  rmdir(tdir);
}
END_TEST

/* Writes len bytes to dir/name; the path goes to path. */
static void put_file(const char *dir, const char *name, const uint8_t *buf, size_t len,
                     char *path, size_t plen) {
  snprintf(path, plen, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
  ck_assert_int_eq(fclose(f), 0);
}

/* Shape inputs given at import (mpc_onnx_load_bound): an INT64 graph input
 * feeding Reshape's shape becomes a constant from its file and leaves the
 * client's inputs; without a file it is refused, naming it. A rank-0 FLOAT
 * input is a fixed [1]; Unsqueeze at axis 0 is fine in a graph of fixed
 * shapes; GlobalAveragePool of opset 1 imports, Add of opset 1 does not. */
START_TEST(test_bound_inputs) {
  char dir[] = "/tmp/tandem-bound-XXXXXX", mpath[160], spath[160], err[512];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  ob_t *b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(2, 6));
  ob_input(b, "shape", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, I64(3));
  ob_input(b, "s", FLOAT, 0, NULL);
  ob_node(b, "Reshape", "r", "x,shape", "y");
  ob_node(b, "Mul", "m", "y,s", "z");
  ob_init_i64(b, "ax", 1, I64(0));
  ob_node(b, "Unsqueeze", "u", "z,ax", "o");
  ob_output(b, "o");
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  put_file(dir, "m.onnx", buf, len, mpath, sizeof mpath);
  free(buf);
  ob_t *tb = ob_new(13);
  Onnx__TensorProto *t = ob_tensor_i64(tb, "shape", 1, 1, I64(3), I64(3, -1, 2));
  len = onnx__tensor_proto__get_packed_size(t);
  buf = malloc(len);
  onnx__tensor_proto__pack(t, buf);
  put_file(dir, "shape.pb", buf, len, spath, sizeof spath);
  free(buf);
  ob_free(tb);
  const char *paths[3] = {"unread-x.pb", spath, "unread-s.pb"};
  unsigned char bound[3] = {9, 9, 9};
  mpc_graph_t g;
  mpc_weights_t w;
  int rc = mpc_onnx_load_bound(mpath, paths, 3, bound, &g, &w, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_int_eq(bound[0] + bound[2], 0);
  ck_assert_int_eq(bound[1], 1);
  ck_assert_uint_eq(g.nodes[0].op, MPC_OP_INPUT);
  ck_assert_uint_eq(g.nodes[1].op, MPC_OP_INPUT);
  ck_assert_uint_eq(g.nodes[1].shape.ndim, 1);
  ck_assert_uint_eq(g.nodes[1].shape.dim[0], 1);
  ck_assert_int_eq(g.nodes[0].batched + g.nodes[1].batched, 0);
  mpc_ftensor_t in[2] = {rin(SHAPE(2, 6)), rin(SHAPE(1))};
  mpc_ftensor_t out;
  ck_assert_int_eq(mpc_eval_float(&g, &w, in, &out), 0);
  ck_assert_uint_eq(out.shape.ndim, 4);
  ck_assert_uint_eq(out.shape.dim[0], 1);
  ck_assert_uint_eq(out.shape.dim[1], 3);
  ck_assert_uint_eq(out.shape.dim[2], 2);
  for (size_t i = 0; i < 12; i++)
    ck_assert_double_eq(out.data[i], in[0].data[i] * in[1].data[0]);
  mpc_ftensor_close(&out);
  mpc_ftensor_close(&in[0]);
  mpc_ftensor_close(&in[1]);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  rc = mpc_onnx_load(mpath, &g, &w, err, sizeof err);
  ck_assert_int_eq(rc, TANDEM_EUNSUPOP);
  ck_assert_msg(strstr(err, "'shape'") != NULL && strstr(err, "INT64") != NULL, "%s", err);
  unlink(spath);
  unlink(mpath);
  rmdir(dir);
  ob_free(b);

  /* Axis 0 of an activation stays the batch when an input has one. */
  b = ob_new(13);
  ob_input(b, "x", FLOAT, 2, I64(-1, 6));
  ob_init_i64(b, "ax", 1, I64(0));
  ob_node(b, "Unsqueeze", "u", "x,ax", "o");
  ob_output(b, "o");
  load_fail(b, TANDEM_EUNSUPOP, "axis 0, the batch dimension", NULL);
  ob_free(b);

  b = ob_new(1);
  ob_input(b, "x", FLOAT, 4, I64(1, 3, 2, 2));
  ob_node(b, "GlobalAveragePool", "gap", "x", "y");
  ob_output(b, "y");
  load_ok(b, &g, &w);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  ob_free(b);
  b = ob_new(1);
  ob_input(b, "x", FLOAT, 1, I64(3));
  ob_node(b, "Add", "add", "x,x", "y");
  ob_output(b, "y");
  load_fail(b, TANDEM_EUNSUPOP, "opset 1", "Add");
  ob_free(b);
}
END_TEST

Suite *onnx_suite(void) {
  Suite *s = suite_create("onnx");
  TCase *tc = tcase_create("import");
  tcase_add_test(tc, test_mlp);
  tcase_add_test(tc, test_cnn);
  tcase_add_test(tc, test_bn_conv);
  tcase_add_test(tc, test_bn_gemm);
  tcase_add_test(tc, test_bn_standalone);
  tcase_add_test(tc, test_pad_conv);
  tcase_add_test(tc, test_avgpool);
  tcase_add_test(tc, test_global_avgpool);
  tcase_add_test(tc, test_reshape);
  tcase_add_test(tc, test_squeeze_unsqueeze);
  tcase_add_test(tc, test_scalar_ops);
  tcase_add_test(tc, test_identity_dropout_transpose);
  tcase_add_test(tc, test_load_file);
  tcase_add_test(tc, test_bound_inputs);
  suite_add_tcase(s, tc);
  tc = tcase_create("errors");
  tcase_add_test(tc, test_err_unsupported);
  tcase_add_test(tc, test_err_malformed);
  suite_add_tcase(s, tc);
  tc = tcase_create("tensor_files");
  tcase_add_test(tc, test_tensor_roundtrip);
  tcase_add_test(tc, test_tensor_formats);
  tcase_add_test(tc, test_tensor_errors);
  suite_add_tcase(s, tc);
  return s;
}
