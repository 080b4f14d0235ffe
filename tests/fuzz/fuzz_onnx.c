/* fuzz_onnx.c - libFuzzer target for the ONNX importer (mpc/src/onnx.c).
 *
 * Every input is a candidate model file: mpc_onnx_load_buffer must either
 * refuse it with a message or produce a graph and weights that the float
 * evaluator can run, without a crash, a leak or undefined behaviour (the
 * target is built with AddressSanitizer; see TANDEM_FUZZ in CMakeLists.txt).
 * Graphs that import are evaluated when they are small, so that a graph the
 * importer accepts but graph.c cannot execute is found too. Seeds: run
 * fuzz_seeds (tests/fuzz/seeds.c) to write small valid models.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Evaluating costs about numel of every node times a window or inner
 * dimension; this bound keeps an execution in the millisecond range. */
#define EVAL_BUDGET ((size_t)1 << 15)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mpc_graph_t g;
  mpc_weights_t w;
  char err[256];
  if (mpc_onnx_load_buffer(data, size, &g, &w, err, sizeof err) != 0) {
    if (err[0] == '\0')
      abort(); /* every refusal must say why */
    return 0;
  }
  size_t total = 0, nin = 0, nout = 0;
  for (size_t i = 0; i < g.nnodes; i++) {
    size_t n = mpc_shape_numel(&g.nodes[i].shape);
    /* A Conv or Gemm's cost also scales with its inner dimension. */
    if (g.nodes[i].op == MPC_OP_CONV || g.nodes[i].op == MPC_OP_GEMM ||
        g.nodes[i].op == MPC_OP_MATMUL || g.nodes[i].op == MPC_OP_MAXPOOL ||
        g.nodes[i].op == MPC_OP_AVGPOOL)
      n *= 64;
    total = total + n < total ? SIZE_MAX : total + n;
    nin += g.nodes[i].op == MPC_OP_INPUT;
    nout += g.nodes[i].op == MPC_OP_OUTPUT;
  }
  if (total <= EVAL_BUDGET) {
    mpc_ftensor_t *in = calloc(nin ? nin : 1, sizeof *in);
    mpc_ftensor_t *out = calloc(nout ? nout : 1, sizeof *out);
    size_t k = 0;
    int ok = in != NULL && out != NULL;
    for (size_t i = 0; ok && i < g.nnodes; i++)
      if (g.nodes[i].op == MPC_OP_INPUT) {
        ok = mpc_ftensor_init(&in[k], &g.nodes[i].shape) == 0;
        for (size_t j = 0; ok && j < mpc_shape_numel(&in[k].shape); j++)
          in[k].data[j] = (double)(j % 7) - 3.0;
        k++;
      }
    if (ok && mpc_eval_float(&g, &w, in, out) == 0)
      for (size_t j = 0; j < nout; j++)
        mpc_ftensor_close(&out[j]);
    for (size_t j = 0; in != NULL && j < k; j++)
      mpc_ftensor_close(&in[j]);
    free(in);
    free(out);
  }
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  return 0;
}
