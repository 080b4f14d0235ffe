/* seeds.c - writes the fuzzers' seed corpora: small valid ONNX models built
 * with the tests' model builder (tests/mpc/onnx_build.c), one per supported
 * operator family (and the folding paths between them), the public graphs
 * those that import make (mpc_graph_save), and tensor files in both formats.
 *
 * Usage: fuzz_seeds DIR  (creates DIR/onnx, DIR/graph and DIR/tensor). A fuzzer that
 * starts from valid protobuf reaches the importer's operator code in
 * seconds instead of having to discover the framing first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mpc.h"
#include "onnx_build.h"

#define I64(...) ((const int64_t[]){__VA_ARGS__})
#define F ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT

static const double vals[64] = {0.5, -1, 2, 0.25, -0.75, 1.5, 3, -2, 1, 0.125, -0.5, 4,
                                2.5, -3, 0.75, 1,   -1.25, 0.5, 2, 1,  -1, 0.5,  1,  -2,
                                0.5, -1, 2, 0.25, -0.75, 1.5, 3, -2, 1, 0.125, -0.5, 4,
                                2.5, -3, 0.75, 1,   -1.25, 0.5, 2, 1,  -1, 0.5,  1,  -2,
                                0.5, -1, 2, 0.25, -0.75, 1.5, 3, -2, 1, 0.125, -0.5, 4,
                                1,   2,  3, 4};

/* A [2, 3] .npy of integers (descr "<i8" or "<i4", elements of `size`
 * bytes) holding 0 .. 5, as NumPy writes token ids: 0, or -1 on error. */
static int save_int_npy(const char *path, const char *descr, size_t size) {
  char hdr[128];
  int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (2, 3), }",
                   descr);
  size_t len = (size_t)n;
  while ((10 + len + 1) % 64 != 0)
    hdr[len++] = ' ';
  hdr[len++] = '\n';
  FILE *f = fopen(path, "wb");
  if (f == NULL)
    return -1;
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff),
                           (unsigned char)(len >> 8)};
  int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre && fwrite(hdr, 1, len, f) == len;
  for (unsigned i = 0; i < 6 && ok; i++) {
    unsigned char v[8] = {(unsigned char)i, 0, 0, 0, 0, 0, 0, 0};
    ok = fwrite(v, 1, size, f) == size;
  }
  return fclose(f) == 0 && ok ? 0 : -1;
}

static void save(ob_t *b, const char *dir, const char *name) {
  char path[512];
  size_t len;
  uint8_t *buf = ob_pack(b, &len);
  snprintf(path, sizeof path, "%s/onnx/%s.onnx", dir, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(buf, 1, len, f) != len) {
    perror(path);
    exit(1);
  }
  fclose(f);
  /* The public graph of a model that imports: the graph fuzzer's seed. */
  mpc_graph_t g;
  mpc_weights_t w;
  char err[256];
  if (mpc_onnx_load_buffer(buf, len, &g, &w, err, sizeof err) == 0) {
    uint8_t *gb;
    size_t glen;
    if (mpc_graph_save(&g, &gb, &glen) == 0) {
      snprintf(path, sizeof path, "%s/graph/%s.graph", dir, name);
      f = fopen(path, "wb");
      if (f == NULL || fwrite(gb, 1, glen, f) != glen) {
        perror(path);
        exit(1);
      }
      fclose(f);
      free(gb);
    }
    mpc_weights_close(&w);
    mpc_graph_close(&g);
  }
  free(buf);
  ob_free(b);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  char sub[512];
  mkdir(argv[1], 0755);
  snprintf(sub, sizeof sub, "%s/onnx", argv[1]);
  mkdir(sub, 0755);
  snprintf(sub, sizeof sub, "%s/tensor", argv[1]);
  mkdir(sub, 0755);
  snprintf(sub, sizeof sub, "%s/graph", argv[1]);
  mkdir(sub, 0755);

  ob_t *b = ob_new(13); /* MLP */
  ob_input(b, "x", F, 2, I64(-1, 4));
  ob_init_f(b, "W", 2, I64(3, 4), vals);
  ob_init_f(b, "B", 1, I64(3), vals);
  Onnx__NodeProto *n = ob_node(b, "Gemm", "fc", "x,W,B", "h");
  ob_attr_i(b, n, "transB", 1);
  ob_node(b, "Relu", "r", "h", "y");
  ob_output(b, "y");
  save(b, argv[1], "mlp");

  b = ob_new(11); /* CNN with Pad, BatchNormalization, pools, Flatten */
  ob_input(b, "x", F, 4, I64(-1, 1, 4, 4));
  ob_init_f(b, "wc", 4, I64(2, 1, 2, 2), vals);
  ob_init_f(b, "s", 1, I64(2), vals + 60);
  ob_init_f(b, "bb", 1, I64(2), vals);
  ob_init_f(b, "m", 1, I64(2), vals);
  ob_init_f(b, "v", 1, I64(2), vals + 60);
  ob_init_i64(b, "pads", 8, I64(0, 0, 1, 1, 0, 0, 1, 1));
  ob_node(b, "Pad", "pad", "x,pads", "xp");
  n = ob_node(b, "Conv", "conv", "xp,wc", "c");
  ob_attr_ints(b, n, "strides", 2, I64(1, 1));
  ob_node(b, "BatchNormalization", "bn", "c,s,bb,m,v", "d");
  n = ob_node(b, "MaxPool", "mp", "d", "p");
  ob_attr_ints(b, n, "kernel_shape", 2, I64(2, 2));
  ob_attr_ints(b, n, "strides", 2, I64(2, 2));
  n = ob_node(b, "AveragePool", "ap", "p", "q");
  ob_attr_ints(b, n, "kernel_shape", 2, I64(2, 2));
  ob_attr_ints(b, n, "pads", 4, I64(1, 1, 0, 0));
  ob_attr_i(b, n, "count_include_pad", 1);
  ob_node(b, "GlobalAveragePool", "gap", "q", "g");
  ob_node(b, "Flatten", "fl", "g", "y");
  ob_output(b, "y");
  save(b, argv[1], "cnn");

  b = ob_new(13); /* shape operators and scalars */
  ob_input(b, "x", F, 3, I64(-1, 2, 3));
  ob_init_i64(b, "shape", 2, I64(0, -1));
  ob_init_i64(b, "ax", 1, I64(2));
  ob_add_init(b, ob_tensor(b, "k", F, 1, 0, NULL, vals + 2));
  n = ob_node(b, "Constant", "c", "", "bias");
  ob_attr_t(b, n, "value", ob_tensor(b, NULL, F, 0, 1, I64(6), vals));
  n = ob_node(b, "Transpose", "t", "x", "xt");
  ob_attr_ints(b, n, "perm", 3, I64(0, 2, 1));
  ob_node(b, "Reshape", "r", "xt,shape", "a");
  ob_node(b, "Unsqueeze", "u", "a,ax", "au");
  ob_node(b, "Squeeze", "s", "au,ax", "as");
  ob_node(b, "Mul", "mul", "as,k", "m");
  ob_node(b, "Div", "div", "m,k", "d");
  ob_node(b, "Sub", "sub", "bias,d", "e");
  ob_node(b, "Identity", "id", "e", "i");
  ob_node(b, "Dropout", "dr", "i", "y");
  ob_output(b, "y");
  save(b, argv[1], "shapes");

  b = ob_new(9); /* opset 9 style: attributes */
  ob_input(b, "x", F, 4, I64(1, 2, 3, 3));
  ob_init_f(b, "W", 2, I64(18, 2), vals);
  n = ob_node(b, "Pad", "pad", "x", "xp");
  ob_attr_ints(b, n, "pads", 8, I64(0, 0, 0, 0, 0, 0, 0, 0));
  n = ob_node(b, "Flatten", "f", "xp", "fl");
  ob_node(b, "MatMul", "mm", "fl,W", "y");
  ob_output(b, "y");
  save(b, argv[1], "opset9");

  /* Gemm + BatchNormalization (folded into the Gemm's weights), then a
   * BatchNormalization after a Relu (a stand-alone diagonal Gemm), MatMul,
   * Add: the paths a Conv-only seed never reaches. */
  b = ob_new(15);
  ob_input(b, "x", F, 2, I64(-1, 4));
  ob_init_f(b, "W", 2, I64(3, 4), vals);
  ob_init_f(b, "C", 1, I64(3), vals + 12);
  ob_init_f(b, "s", 1, I64(3), vals + 60);
  ob_init_f(b, "bb", 1, I64(3), vals);
  ob_init_f(b, "m", 1, I64(3), vals + 3);
  ob_init_f(b, "v", 1, I64(3), vals + 61);
  ob_init_f(b, "W2", 2, I64(3, 2), vals + 20);
  ob_init_f(b, "B2", 1, I64(2), vals + 30);
  n = ob_node(b, "Gemm", "fc", "x,W,C", "h");
  ob_attr_i(b, n, "transB", 1);
  ob_attr_f(b, n, "alpha", 0.5f);
  n = ob_node(b, "BatchNormalization", "bn1", "h,s,bb,m,v", "hb");
  ob_attr_f(b, n, "epsilon", 1e-3f);
  ob_node(b, "Relu", "r", "hb", "hr");
  ob_node(b, "BatchNormalization", "bn2", "hr,s,bb,m,v", "hn");
  ob_node(b, "MatMul", "mm", "hn,W2", "o");
  ob_node(b, "Add", "add", "o,B2", "y");
  ob_output(b, "y");
  save(b, argv[1], "gemm_bn");

  /* Opset 13 Pad with a constant_value input before a dilated Conv,
   * and the pools' less common attributes. */
  b = ob_new(13);
  ob_input(b, "x", F, 4, I64(-1, 2, 6, 6));
  ob_init_i64(b, "pads", 8, I64(0, 0, 1, 2, 0, 0, 2, 1));
  static const double zero = 0.0; /* the only padding value supported */
  ob_add_init(b, ob_tensor(b, "cv", F, 1, 0, NULL, &zero));
  ob_init_f(b, "wg", 4, I64(4, 2, 2, 2), vals);
  ob_init_f(b, "bg", 1, I64(4), vals + 8);
  ob_node(b, "Pad", "pad", "x,pads,cv", "xp");
  n = ob_node(b, "Conv", "conv", "xp,wg,bg", "c");
  ob_attr_i(b, n, "group", 1); /* grouped convolution is refused */
  ob_attr_ints(b, n, "dilations", 2, I64(2, 2));
  ob_attr_s(b, n, "auto_pad", "NOTSET");
  n = ob_node(b, "MaxPool", "mp", "c", "p");
  ob_attr_ints(b, n, "kernel_shape", 2, I64(3, 3));
  ob_attr_ints(b, n, "strides", 2, I64(2, 2));
  ob_attr_i(b, n, "ceil_mode", 1);
  n = ob_node(b, "AveragePool", "ap", "p", "q");
  ob_attr_ints(b, n, "kernel_shape", 2, I64(2, 2));
  ob_attr_ints(b, n, "pads", 4, I64(1, 0, 0, 1));
  ob_attr_i(b, n, "count_include_pad", 0);
  ob_node(b, "Flatten", "fl", "q", "y");
  ob_output(b, "y");
  save(b, argv[1], "pad13");

  mpc_ftensor_t t;
  mpc_shape_t s = {2, {2, 3}};
  if (mpc_ftensor_init(&t, &s) != 0)
    return 1;
  memcpy(t.data, vals, 6 * sizeof *t.data);
  const char *names[2] = {"t.npy", "t.pb"};
  for (int i = 0; i < 2; i++) {
    snprintf(sub, sizeof sub, "%s/tensor/%s", argv[1], names[i]);
    if (mpc_tensor_save(sub, &t) != 0)
      return 1;
  }
  mpc_ftensor_close(&t);
  /* Token ids as clients give them (.npy <i8 and <i4). */
  snprintf(sub, sizeof sub, "%s/tensor/ids8.npy", argv[1]);
  if (save_int_npy(sub, "<i8", 8) != 0)
    return 1;
  snprintf(sub, sizeof sub, "%s/tensor/ids4.npy", argv[1]);
  if (save_int_npy(sub, "<i4", 4) != 0)
    return 1;
  return 0;
}
