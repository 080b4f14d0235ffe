/* onnx.c - the ONNX importer: a ModelProto (opsets 9 to 21) into an
 * mpc_graph_t and the model owner's mpc_weights_t. This file holds the
 * public calls and the walk over the nodes; onnx_read.c reads the model's
 * nodes and onnx_io.c its inputs and outputs, onnx_ops.c holds the operator
 * handlers and onnx_fold.c the folding and the constants computed at import
 * (their shared interface: onnx_imp.h).
 *
 * This is where a user's PyTorch export meets the protocol: everything the
 * parties, the dealer and the client later agree on comes from the graph
 * built here, so every operator and attribute outside the supported set is
 * refused here, with the node and operator named, before any party does
 * work. The model file is input like any other: protobuf-c (code generated at
 * build time from Debian's onnx.proto) parses it, and every name, length,
 * type and shape is checked before use; the importer is fuzzed
 * (tests/fuzz/fuzz_onnx.c).
 *
 * The import runs in three steps. (1) Index every value name (initializers,
 * graph inputs, node outputs) in a hash table, counting readers, and refuse
 * dangling or twice-defined names. (2) Order the nodes topologically (Kahn),
 * refusing cycles; ONNX requires files to be sorted already, but exporters
 * and hand-edited files are not always right and the IR needs the order.
 * (3) Walk the nodes. A value is an activation (an IR node), a constant
 * known at import (an initializer or a Constant node, kept as an array until
 * an operator needs it as a weight, when it becomes a PARAM node), or a
 * pending zero padding (a Pad, folded into the Conv or AveragePool that reads
 * it). Shape-only constants (Reshape's shape, axes, pads) are consumed here
 * and never reach the graph. A BatchNormalization that directly follows a
 * Conv or Gemm with constant weights, as the only reader of its output, is
 * folded into that layer's weights and bias when the layer is emitted;
 * otherwise it becomes a per-channel affine map written as a 1x1 convolution
 * (or a Gemm) with a diagonal weight, since the IR has no per-channel scale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_imp.h"

/* Step 3: every node not done yet, in order. */
static int walk(ctx_t *c, const size_t *order) {
  int rc;
  for (size_t i = 0; i < c->gp->n_node; i++) {
    size_t k = order[i];
    if (c->done[k])
      continue;
    if ((rc = mpc__onnx_run_node(c, k)) != 0)
      return rc;
    /* An output someone reads must have been produced. */
    const Onnx__NodeProto *n = nodep(c, k);
    for (size_t j = 0; j < n->n_output; j++) {
      ent_t *e = mpc__onnx_out_ent(c, k, j);
      if (e != NULL && e->nuse > 0 && e->kind == V_UNDEF && !e->folded)
        return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "output %zu ('%s') is not supported", j,
                               e->name);
    }
  }
  return 0;
}

static int load_buffer(const void *buf, size_t len, const char *const *bind, size_t nbind,
                       unsigned char *bound, mpc_graph_t *g, mpc_weights_t *w, char *err,
                       size_t errlen) {
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (g == NULL || w == NULL || (buf == NULL && len > 0)) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "mpc_onnx_load: no buffer, graph or weights");
    return TANDEM_EINVAL;
  }
  mpc_graph_init(g);
  memset(w, 0, sizeof *w);
  ctx_t c;
  memset(&c, 0, sizeof c);
  c.g = g;
  c.err = err;
  c.errlen = errlen;
  c.bind = bind;
  c.nbind = nbind;
  c.bound = bound;
  if (bound != NULL)
    memset(bound, 0, nbind);
  if (len > MPC_FILE_MAX)
    return mpc__onnx_gfail(&c, TANDEM_EINVAL, "model of %zu bytes exceeds the limit of %zu", len,
                           MPC_FILE_MAX);
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
  if (m == NULL)
    return mpc__onnx_gfail(&c, TANDEM_EPARSE, "not an ONNX model (protobuf parse failed)");
  size_t *order = NULL;
  int rc = mpc__onnx_check_opset(&c, m);
  if (rc != 0)
    goto fail;
  if (m->graph == NULL) {
    rc = mpc__onnx_gfail(&c, TANDEM_EPARSE, "the model has no graph");
    goto fail;
  }
  c.gp = m->graph;
  if ((rc = mpc__onnx_index_and_sort(&c, &order)) != 0 || (rc = mpc__onnx_add_inputs(&c)) != 0)
    goto fail;
  if ((rc = mpc__onnx_const_pass(&c, order)) != 0 || (rc = walk(&c, order)) != 0)
    goto fail;
  if ((rc = mpc__onnx_add_outputs(&c)) != 0 || (rc = mpc__onnx_read_input_bound(&c, m)) != 0)
    goto fail;
  if ((rc = mpc_weights_init(w, g)) != 0) {
    mpc__onnx_gfail(&c, rc, "cannot allocate the weights: %s", tandem_strerror(rc));
    goto fail;
  }
  /* Hand the parameter arrays to w (same shape, same allocator). */
  for (size_t i = 0; i < c.npdat; i++) {
    mpc_ftensor_t *t = &w->param[c.pdat[i].node];
    free(t->data);
    t->data = c.pdat[i].data;
    c.pdat[i].data = NULL;
  }
  if ((rc = mpc__onnx_fold_scalars(g, w)) != 0) {
    mpc__onnx_gfail(&c, rc, "out of memory");
    goto fail;
  }
  free(order);
  mpc__onnx_ctx_free(&c);
  onnx__model_proto__free_unpacked(m, NULL);
  return 0;

fail:
  free(order);
  mpc__onnx_ctx_free(&c);
  onnx__model_proto__free_unpacked(m, NULL);
  mpc_weights_close(w);
  mpc_graph_close(g);
  return rc;
}

int mpc_onnx_load_buffer(const void *buf, size_t len, mpc_graph_t *g, mpc_weights_t *w,
                         char *err, size_t errlen) {
  return load_buffer(buf, len, NULL, 0, NULL, g, w, err, errlen);
}

int mpc_onnx_load(const char *path, mpc_graph_t *g, mpc_weights_t *w, char *err, size_t errlen) {
  return mpc_onnx_load_bound(path, NULL, 0, NULL, g, w, err, errlen);
}

int mpc_onnx_load_bound(const char *path, const char *const *paths, size_t npaths,
                        unsigned char *bound, mpc_graph_t *g, mpc_weights_t *w, char *err,
                        size_t errlen) {
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (g == NULL || w == NULL || path == NULL || (npaths > 0 && paths == NULL))
    return TANDEM_EINVAL;
  mpc_graph_init(g);
  memset(w, 0, sizeof *w);
  uint8_t *buf;
  size_t len;
  int rc = mpc__read_file(path, MPC_FILE_MAX, &buf, &len, err, errlen);
  if (rc != 0)
    return rc;
  char why[800];
  rc = load_buffer(buf, len, paths, npaths, bound, g, w, why, sizeof why);
  free(buf);
  if (rc != 0 && err != NULL && errlen > 0)
    snprintf(err, errlen, "%s: %s", path, why);
  return rc;
}
