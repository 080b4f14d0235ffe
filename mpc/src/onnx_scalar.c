/* onnx_scalar.c - the importer's last pass (onnx.c runs it once the graph
 * and the owner's weights are made): a scalar the owner multiplies a
 * product of two activations by, as attention's Q K^T / sqrt(dh) is
 * exported, goes into the owner's weights of one operand's columns, so the
 * protocol never spends the truncation and opening (two rounds) that a
 * product by a secret scalar costs. It works on the IR graph and weights,
 * not on the ONNX protos.
 */
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"
#include "onnx_imp.h"

/* How many inputs of the graph's nodes read node v (*who: the last). */
static size_t nreaders(const mpc_graph_t *g, int v, int *who) {
  size_t n = 0;
  for (size_t j = 0; j < g->nnodes; j++)
    for (int k = 0; k < 3; k++)
      if (g->nodes[j].in[k] == v) {
        n++;
        *who = (int)j;
      }
  return n;
}

/* Marks in cols[M] (with bit) the columns (last-axis indices, M of them) of
 * its input that Select node s reads. */
static void select_cols(const mpc_graph_t *g, int s, size_t M, unsigned char *cols,
                        unsigned char bit) {
  const mpc_node_t *nd = &g->nodes[s];
  const mpc_shape_t *is = &g->nodes[nd->in[0]].shape;
  const double *table = nd->in[1] >= 0 ? g->nodes[nd->in[1]].cdata : NULL;
  mpc_shape_t os = nd->shape;
  if (nd->attr.sel_batch)
    os.dim[0] = is->dim[0];
  size_t n = mpc_shape_numel(&os);
  for (size_t i = 0; i < n; i++) {
    long src = mpc__select_src(&nd->attr, table, is, &os, i);
    if (src >= 0)
      cols[(size_t)src % M] |= bit;
  }
}

/* Mul node i of a product of two activations (MatMul, nothing else reading
 * it) by the owner's scalar (read by nothing else), as the exporters write
 * attention's Q K^T / sqrt(d): when one operand comes, through Reshapes and
 * Transposes read by nothing else, from columns of x W + b_1 + ... (W and
 * the b the owner's and read once) that nothing else reads (a Slice of Q from QKV, the other
 * Slices reading other columns), the scalar goes into those columns of W
 * and b and the Mul becomes a Reshape to its own shape. A product by a
 * secret scalar costs the truncation and opening of its input (two rounds);
 * the owner's weights take it for nothing. Returns 1 when folded. */
static int fold_scalar(mpc_graph_t *g, mpc_weights_t *w, size_t i) {
  mpc_node_t *m = &g->nodes[i];
  int a = m->in[0], p = m->in[1], who;
  if (m->op != MPC_OP_MUL || a < 0 || p < 0 || m->in[2] >= 0 ||
      g->nodes[p].op != MPC_OP_PARAM || mpc_shape_numel(&g->nodes[p].shape) != 1 ||
      nreaders(g, p, &who) != 1 || g->nodes[a].op != MPC_OP_MATMUL ||
      nreaders(g, a, &who) != 1)
    return 0;
  const mpc_node_t *pm = &g->nodes[a];
  for (int j = 0; j < 2; j++) {
    int cur = pm->in[j], sel = -1;
    if (cur < 0 || cur == pm->in[1 - j])
      continue;
    while (nreaders(g, cur, &who) == 1 &&
           (g->nodes[cur].op == MPC_OP_RESHAPE || g->nodes[cur].op == MPC_OP_TRANSPOSE) &&
           g->nodes[cur].in[0] >= 0)
      cur = g->nodes[cur].in[0];
    if (g->nodes[cur].op == MPC_OP_SELECT && nreaders(g, cur, &who) == 1 &&
        g->nodes[cur].in[0] >= 0) {
      sel = cur;
      cur = g->nodes[cur].in[0];
    } else if (nreaders(g, cur, &who) != 1) {
      continue;
    }
    /* cur: x W + b_1 + ... + b_t (t >= 0), each term the only reader of
     * the one before. */
    int mm = cur, bias[8], nb = 0, ok = 1;
    while (ok && g->nodes[mm].op == MPC_OP_ADD) {
      int u = g->nodes[mm].in[0], v = g->nodes[mm].in[1];
      if (u < 0 || v < 0 || nb == 8) {
        ok = 0;
        break;
      }
      if (g->nodes[u].op == MPC_OP_PARAM) {
        int t = u;
        u = v;
        v = t;
      }
      ok = g->nodes[v].op == MPC_OP_PARAM && nreaders(g, v, &who) == 1 &&
           nreaders(g, u, &who) == 1;
      bias[nb++] = v;
      mm = u;
    }
    const mpc_node_t *mn = &g->nodes[mm];
    int wp = mn->in[1];
    if (!ok || mn->op != MPC_OP_MATMUL || wp < 0 || g->nodes[wp].op != MPC_OP_PARAM ||
        g->nodes[wp].shape.ndim != 2 || nreaders(g, wp, &who) != 1 || mn->in[0] < 0 ||
        g->nodes[mn->in[0]].op == MPC_OP_PARAM)
      continue;
    size_t K = g->nodes[wp].shape.dim[0], M = g->nodes[wp].shape.dim[1];
    const mpc_shape_t *cs = &g->nodes[cur].shape;
    if (M == 0 || cs->ndim == 0 || cs->dim[cs->ndim - 1] != M)
      continue;
    for (int t = 0; t < nb; t++)
      ok = ok && mpc_shape_numel(&g->nodes[bias[t]].shape) == M;
    if (!ok)
      continue;
    unsigned char *cols = calloc(M, 1);
    if (cols == NULL)
      return TANDEM_ENOMEM;
    if (sel < 0) {
      memset(cols, 1, M);
    } else {
      select_cols(g, sel, M, cols, 1);
      for (size_t t = 0; ok && t < g->nnodes; t++)
        for (int k = 0; k < 3; k++)
          if ((int)t != sel && g->nodes[t].in[k] == cur) {
            if (g->nodes[t].op != MPC_OP_SELECT || k != 0)
              ok = 0;
            else
              select_cols(g, (int)t, M, cols, 2);
          }
      for (size_t c = 0; ok && c < M; c++)
        ok = cols[c] != 3;
    }
    if (ok) {
      double s = w->param[p].data[0], *wd = w->param[wp].data;
      for (size_t c = 0; c < M; c++) {
        if (!(cols[c] & 1))
          continue;
        for (size_t r = 0; r < K; r++)
          wd[r * M + c] *= s;
        for (int t = 0; t < nb; t++)
          w->param[bias[t]].data[c] *= s;
      }
      m->op = MPC_OP_RESHAPE;
      m->in[1] = -1;
    }
    free(cols);
    if (ok)
      return 1;
  }
  return 0;
}

int mpc__onnx_fold_scalars(mpc_graph_t *g, mpc_weights_t *w) {
  for (size_t i = 0; i < g->nnodes; i++) {
    int rc = fold_scalar(g, w, i);
    if (rc < 0)
      return rc;
  }
  return 0;
}
