/* seeds.c - writes the fuzzers' seed corpora: small valid ONNX models built
 * with the tests' model builder (tests/mpc/onnx_build.c), one per supported
 * operator family, and tensor files in both formats.
 *
 * Usage: fuzz_seeds DIR  (creates DIR/onnx and DIR/tensor). A fuzzer that
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
  return 0;
}
