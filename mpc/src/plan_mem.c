/* plan_mem.c - the memory a plan of a graph takes, estimated from the graph
 * alone (mpc_plan_mem_bytes, mpc.h), before anything is compiled: what a
 * daemon checks against its budget when a graph comes from the model owner
 * and a batch size from a client. A 1 KB graph of two Transposes of
 * 1x8192x8192 made plan compilation allocate 515 MB (issue 15); the
 * estimate reads only the node shapes, so a graph is refused before its
 * plan, its party or its dealer object allocates anything.
 *
 * It counts what grows with the graph: a value of the plan holds a layout
 * map (4 bytes per element for a Reshape or Transpose), a party's slots up
 * to three words per element (the public masked value, the mask share, the
 * share), a gate's state more, the dealer's masks one, the round buffers
 * one; a convolution's im2col operand once per output position. The
 * dealer's messages that an object holds (a party's own, the dealer's
 * three) the callers add from the plan (mpc_plan_prep_bytes), once one at
 * batch 1 and 2 is compiled. The figures below, with those messages added,
 * are 10 to 30% above what mpc_plan_new, mpc_party_new and mpc_dealer_new
 * allocate together (mallinfo2, 2026-12-07): fashion_mlp 8.2 vs 6.3 MB at
 * batch 1, 73.5 vs 60.0 MB at 100; fashion_cnn 36.3 vs 32.8 MB at 1, 3,498
 * vs 3,187 MB at 100 (of which P1's message is 3,083 MB). */
#include <math.h>
#include <stdlib.h>

#include "mpc.h"

#define ACT_BYTES 80.0    /* per activation element, as above (with headroom) */
#define PARAM_BYTES 64.0  /* per weight element: share, mask share, W^, dealer mask */
#define IM2COL_BYTES 16.0 /* per element of a convolution's im2col operand */
/* per element of a smooth function (and of a softmax or layer norm, which
 * hold one): a party's working buffers for its one DCF key of width 4
 * evaluated at up to 47 points (each point and its outputs, gate_smooth.c),
 * 8 (1 + 5 * 47) bytes; the dealer's alpha and payload while it makes the
 * key are 40 */
#define SMOOTH_BYTES 2048.0

size_t mpc_plan_mem_bytes(const mpc_graph_t *g, size_t batch) {
  if (g == NULL || g->nnodes == 0)
    return 0;
  /* The batch the graph declares: the first dimension of its first input. */
  double declared = 0;
  for (size_t i = 0; i < g->nnodes && declared == 0; i++)
    if (g->nodes[i].op == MPC_OP_INPUT && g->nodes[i].shape.ndim > 0)
      declared = (double)g->nodes[i].shape.dim[0];
  double scale = batch == 0 || declared == 0 ? 1.0 : (double)batch / declared;
  char *dyn = calloc(g->nnodes, 1);
  if (dyn == NULL)
    return SIZE_MAX; /* no room even to estimate: refuse */
  double total = 0;
  for (size_t i = 0; i < g->nnodes; i++) {
    const mpc_node_t *nd = &g->nodes[i];
    double n = (double)mpc_shape_numel(&nd->shape);
    dyn[i] = nd->op == MPC_OP_INPUT;
    for (int k = 0; k < 3; k++)
      if (nd->in[k] >= 0 && (size_t)nd->in[k] < i && dyn[nd->in[k]])
        dyn[i] = 1;
    if (!dyn[i]) {
      total += n * PARAM_BYTES;
      continue;
    }
    /* An activation's elements grow with the batch (ceil: at least one row). */
    total += ceil(n * scale) * ACT_BYTES;
    if (mpc_op_is_smooth(nd->op) || nd->op == MPC_OP_SOFTMAX || nd->op == MPC_OP_LNORM)
      total += ceil(n * scale) * SMOOTH_BYTES;
    if (nd->op == MPC_OP_CONV && nd->in[1] >= 0 && nd->shape.ndim == 4) {
      const mpc_shape_t *w = &g->nodes[nd->in[1]].shape;
      double cols = w->ndim == 4 ? (double)w->dim[1] * w->dim[2] * w->dim[3] : 0;
      double pos = ceil((double)nd->shape.dim[0] * scale) * nd->shape.dim[2] * nd->shape.dim[3];
      total += pos * cols * IM2COL_BYTES;
    }
  }
  free(dyn);
  return total >= (double)SIZE_MAX ? SIZE_MAX : (size_t)total;
}
