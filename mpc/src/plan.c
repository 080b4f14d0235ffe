/* plan.c - compiles a graph into a plan: an ordered list of gates over plan
 * values, with the shapes the dealer needs and nothing more.
 *
 * Lowering keeps every activation in one of two forms: MASKED (a public masked
 * value, what a bilinear layer needs) or SHARED (what local linear operators
 * and the FSS gates produce). Conversions are inserted only where a consumer
 * needs them: a product's output has scale 2f and is truncated inside the next
 * ReLU (fused) or by a truncation gate; a SHARED value feeding a bilinear layer
 * is opened under a fresh mask. The schedule then gives every one-round gate
 * the earliest round at which its inputs exist, so that independent openings of
 * one round share one frame (plan_sched.c, with the queries on a compiled
 * plan). The operators along a row (smooth functions, Softmax, LayerNorm)
 * are lowered in plan_rows.c, the layout operators and the pools in
 * plan_layout.c; plan_int.h holds what they share.
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_int.h"


int mpc__pc_fail(cc_t *cc, int code, int node, const char *what) {
  if (cc->err != NULL && cc->errlen > 0) {
    if (node >= 0)
      snprintf(cc->err, cc->errlen, "node '%s' (%s): %s", cc->g->nodes[node].name,
               mpc_op_name(cc->g->nodes[node].op), what);
    else
      snprintf(cc->err, cc->errlen, "%s", what);
  }
  return code;
}

int mpc__pc_new_val(cc_t *cc, const mpc_shape_t *shape, mpc__vkind_t kind,
                   unsigned scale, int node) {
  mpc_plan_t *p = cc->p;
  if (p->nvals == p->capvals) {
    size_t cap = p->capvals ? 2 * p->capvals : 64;
    mpc__val_t *v = realloc(p->vals, cap * sizeof *v);
    if (v == NULL)
      return TANDEM_ENOMEM;
    p->vals = v;
    p->capvals = cap;
  }
  mpc__val_t *v = &p->vals[p->nvals];
  memset(v, 0, sizeof *v);
  v->shape = *shape;
  v->n = mpc_shape_numel(shape);
  v->kind = kind;
  v->scale = scale;
  v->node = node;
  v->fold = 1.0;
  v->pidx = -1;
  return (int)p->nvals++;
}

mpc__gate_t *mpc__pc_new_gate(cc_t *cc, mpc__gkind_t kind, int in0, int in1, int out,
                             const char *label) {
  mpc_plan_t *p = cc->p;
  if (p->ngates == p->capgates) {
    size_t cap = p->capgates ? 2 * p->capgates : 64;
    mpc__gate_t *g = realloc(p->gates, cap * sizeof *g);
    if (g == NULL)
      return NULL;
    p->gates = g;
    p->capgates = cap;
  }
  mpc__gate_t *g = &p->gates[p->ngates++];
  memset(g, 0, sizeof *g);
  g->kind = kind;
  g->in[0] = in0;
  g->in[1] = in1;
  g->out = out;
  g->bscale = g->ascale = 1;
  snprintf(g->label, sizeof g->label, "%s", label);
  return g;
}

static int push_index(int **arr, size_t *n, int v) {
  int *a = realloc(*arr, (*n + 1) * sizeof *a);
  if (a == NULL)
    return TANDEM_ENOMEM;
  a[(*n)++] = v;
  *arr = a;
  return 0;
}

uint64_t mpc__pc_pow2(unsigned s) { return s >= 64 ? 0 : (uint64_t)1 << s; }

/* ---- conversions --------------------------------------------------------- */

/* The value bound L (|value| * 2^(scale f) < 2^(L-1)) of the comparison
 * gate on value v, whose candidates' differences need `extra` more bits: the
 * model owner's per-node magnitude (graph.mag_log2) plus one bit of margin,
 * never more than the graph-wide bound (plus extra) nor 63, and at least shift + 2 (the gate's
 * DCF takes L + 1 - shift - 1 >= 1 bits; gate_fss.c). */
unsigned mpc__pc_gate_bound(const cc_t *cc, int v, unsigned shift, unsigned extra) {
  const mpc__val_t *val = &cc->p->vals[v];
  const mpc_graph_t *g = cc->g;
  int L = (int)(cc->p->bound + extra); /* at most 63: m = L + 1 <= 64 */
  if (val->magset) { /* its own bound, which may exceed the graph-wide one */
    L = val->mag + (int)(val->scale * cc->p->f) + 1 + (int)extra;
  } else if (g->mag_log2 != NULL && g->nmag == g->nnodes && val->node >= 0 &&
             (size_t)val->node < g->nnodes) {
    int e = g->mag_log2[val->node] + (int)(val->scale * cc->p->f) + 1 + (int)extra;
    if (e < L)
      L = e;
  }
  if (L > 63) /* u = y + 2^L in 64 bits */
    L = 63;
  if (L < (int)shift + 2)
    L = (int)shift + 2;
  return (unsigned)L;
}

/* Value out takes v's own bound, if it has one (val.magset). */
static void copy_bound(cc_t *cc, int out, int v) {
  cc->p->vals[out].magset = cc->p->vals[v].magset;
  cc->p->vals[out].mag = cc->p->vals[v].mag;
}

unsigned mpc__pc_log2_ceil(size_t n) {
  unsigned k = 0;
  while (k < 63 && ((size_t)1 << k) < n)
    k++;
  return k;
}

/* A SHARED value at scale 1: v divided by 2^shift, exactly (floor), by a
 * truncation gate (one round; none if v is MASKED, whose mask the dealer
 * already knows); v needs `extra` bits above its node's bound (gate_bound). */
int mpc__pc_trunc_by(cc_t *cc, int v, unsigned shift, unsigned extra, const char *label) {
  mpc__val_t *val = &cc->p->vals[v];
  mpc_shape_t shape = val->shape;
  int out = mpc__pc_new_val(cc, &shape, MPC__V_SHARED, 1, val->node);
  if (out < 0)
    return out;
  copy_bound(cc, out, v);
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_NONLIN, v, -1, out, label);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->relu = 0;
  g->shift = shift;
  g->bound = mpc__pc_gate_bound(cc, v, g->shift, extra);
  return out;
}

/* A SHARED value at scale 1 from v at scale 2 (a truncation by f). */
static int truncate_val(cc_t *cc, int v, const char *label) {
  return mpc__pc_trunc_by(cc, v, cc->p->f, 0, label);
}

/* A MASKED value at scale 1 from v, as a bilinear layer needs. */
int mpc__pc_masked_s1(cc_t *cc, int v, const char *label) {
  if (v < 0) /* not an activation: a parameter or constant where one is needed */
    return TANDEM_EUNSUPOP;
  mpc__val_t *val = &cc->p->vals[v];
  if (val->kind == MPC__V_MASKED && val->scale == 1)
    return v;
  if (val->kind != MPC__V_MASKED && val->kind != MPC__V_SHARED)
    return TANDEM_EUNSUPOP;
  if (val->scale == 2) {
    v = truncate_val(cc, v, label);
    if (v < 0)
      return v;
  } else if (val->scale != 1) {
    return TANDEM_EUNSUPOP;
  }
  return mpc__pc_open(cc, v, label);
}

int mpc__pc_open(cc_t *cc, int v, const char *label) {
  if (cc->p->vals[v].kind == MPC__V_MASKED)
    return v;
  mpc_shape_t shape = cc->p->vals[v].shape;
  int out = mpc__pc_new_val(cc, &shape, MPC__V_MASKED, cc->p->vals[v].scale,
                            cc->p->vals[v].node);
  if (out < 0)
    return out;
  copy_bound(cc, out, v);
  if (mpc__pc_new_gate(cc, MPC__G_OPEN, v, -1, out, label) == NULL)
    return TANDEM_ENOMEM;
  return out;
}

/* A dynamic value at scale 1 (truncating a product), any form. */
int mpc__pc_scale1(cc_t *cc, int v, const char *label) {
  if (v < 0)
    return TANDEM_EUNSUPOP;
  if (cc->p->vals[v].scale == 2)
    return truncate_val(cc, v, label);
  return v;
}

/* The parameter at node used as a bilinear weight (scale 1, alpha folded). */
static int weight_of(cc_t *cc, int node, double fold) {
  if (cc->addend[node] >= 0)
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node, "a parameter used both as weight and as addend");
  if (cc->weight[node] >= 0) {
    if (cc->p->vals[cc->weight[node]].fold != fold)
      return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                          "a weight shared by layers with different alpha");
    return cc->weight[node];
  }
  int v = mpc__pc_new_val(cc, &cc->g->nodes[node].shape, MPC__V_WEIGHT, 1, node);
  if (v < 0)
    return v;
  cc->p->vals[v].fold = fold;
  cc->p->vals[v].pidx = (int)cc->p->nparams;
  int rc = push_index(&cc->p->params, &cc->p->nparams, v);
  if (rc < 0)
    return rc;
  cc->weight[node] = v;
  return v;
}

/* The parameter (or public constant) at node added at `scale`. */
static int addend_of(cc_t *cc, int node, unsigned scale, double fold) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  if (nd->op == MPC_OP_CONST) {
    int v = mpc__pc_new_val(cc, &nd->shape, MPC__V_PUBLIC, scale, node);
    if (v >= 0)
      cc->p->vals[v].fold = fold;
    return v;
  }
  if (cc->weight[node] >= 0)
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node, "a parameter used both as weight and as addend");
  if (cc->addend[node] >= 0) {
    const mpc__val_t *a = &cc->p->vals[cc->addend[node]];
    if (a->scale != scale || a->fold != fold)
      return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node, "a parameter added at two different scales");
    return cc->addend[node];
  }
  int v = mpc__pc_new_val(cc, &nd->shape, MPC__V_ADDEND, scale, node);
  if (v < 0)
    return v;
  cc->p->vals[v].fold = fold;
  cc->p->vals[v].pidx = (int)cc->p->nparams;
  int rc = push_index(&cc->p->params, &cc->p->nparams, v);
  if (rc < 0)
    return rc;
  cc->addend[node] = v;
  return v;
}

/* bmap[i] = index into b (shape bs) of element i of a (shape as), numpy
 * broadcasting with b's dims aligned to the right. NULL map if same shape. */
static int broadcast_map(const mpc_shape_t *as, const mpc_shape_t *bs, uint32_t **out) {
  *out = NULL;
  size_t na = mpc_shape_numel(as), nb = mpc_shape_numel(bs);
  if (na == nb)
    return 0; /* same element count: the graph checked the shapes agree */
  if (bs->ndim > as->ndim || na > UINT32_MAX)
    return TANDEM_ESHAPE;
  uint32_t *map = malloc(na * sizeof *map);
  if (map == NULL)
    return TANDEM_ENOMEM;
  unsigned off = as->ndim - bs->ndim;
  for (size_t i = 0; i < na; i++) {
    size_t rem = i, bi = 0, bstride = 1;
    for (int d = (int)as->ndim - 1; d >= 0; d--) {
      size_t coord = rem % as->dim[d];
      rem /= as->dim[d];
      if (d >= (int)off) {
        size_t bd = bs->dim[d - off];
        bi += (bd == 1 ? 0 : coord) * bstride;
        bstride *= bd;
      }
    }
    map[i] = (uint32_t)bi;
  }
  *out = map;
  return 0;
}

/* ---- lowering of each operator ------------------------------------------ */

int mpc__pc_add_bias(cc_t *cc, int node, int y, int bnode, double fold, int channel) {
  const mpc__val_t *yv = &cc->p->vals[y];
  unsigned scale = yv->scale;
  mpc_shape_t shape = yv->shape;
  int b = addend_of(cc, bnode, scale, fold);
  if (b < 0)
    return b;
  int out = mpc__pc_new_val(cc, &shape, MPC__V_SHARED, scale, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_ADD, y, b, out, cc->g->nodes[node].name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  const mpc__val_t *bv = &cc->p->vals[b];
  if (channel) {
    /* Conv bias [M] over [N, M, OH, OW]. */
    size_t n = cc->p->vals[out].n, m = shape.dim[1], plane = shape.dim[2] * shape.dim[3];
    if (bv->n != m)
      return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "bias length differs from output channels");
    g->bmap = malloc(n * sizeof *g->bmap);
    if (g->bmap == NULL)
      return TANDEM_ENOMEM;
    for (size_t i = 0; i < n; i++)
      g->bmap[i] = (uint32_t)((i / plane) % m);
    return out;
  }
  int rc = broadcast_map(&shape, &bv->shape, &g->bmap);
  if (rc < 0)
    return mpc__pc_fail(cc, rc, node, "bias does not broadcast to the output");
  return out;
}

/* Value v times the public number c (a MulC gate; an integer keeps the
 * scale, any other number is encoded at f bits and raises it by one, after
 * truncating a product first). Returns the new value or a negative error. */
int mpc__pc_mulc_val(cc_t *cc, int node, int v, double c) {
  const char *label = cc->g->nodes[node].name;
  if (!isfinite(c))
    return mpc__pc_fail(cc, TANDEM_EINVAL, node, "the constant is not finite");
  uint64_t cm;
  unsigned scale = cc->p->vals[v].scale;
  if (c == nearbyint(c) && fabs(c) < 1048576.0) {
    cm = (uint64_t)(int64_t)c; /* an integer: exact, no scale change */
  } else {
    v = mpc__pc_scale1(cc, v, label);
    if (v < 0)
      return v;
    size_t bad;
    if (kern_fix_encode(&cm, &c, 1, cc->p->f, &bad) != 0)
      return mpc__pc_fail(cc, TANDEM_ERANGE, node, "the constant is outside the fixed-point range");
    scale = 2;
  }
  mpc_shape_t shape = cc->p->vals[v].shape;
  int out = mpc__pc_new_val(cc, &shape, MPC__V_SHARED, scale, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_MULC, v, -1, out, label);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->cmul = cm;
  return out;
}

/* y + fold * (the activation at bnode), broadcast to y (or, with channel,
 * one value per channel of an NCHW y): a local ADD gate at the larger of the
 * two scales. Returns the new value or a negative error. */
static int add_dynamic(cc_t *cc, int node, int y, int bnode, double fold, int channel) {
  int bv = cc->act[bnode];
  if (bv < 0 || !mpc__pc_is_dynamic(&cc->p->vals[bv]))
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                        "the addend is neither a parameter nor an activation");
  if (fold != 1.0 && (bv = mpc__pc_mulc_val(cc, node, bv, fold)) < 0)
    return bv;
  const mpc__val_t *yv = &cc->p->vals[y], *b = &cc->p->vals[bv];
  mpc_shape_t shape = yv->shape;
  unsigned scale = yv->scale > b->scale ? yv->scale : b->scale;
  uint64_t ascale = mpc__pc_pow2(cc->p->f * (scale - yv->scale));
  uint64_t bscale = mpc__pc_pow2(cc->p->f * (scale - b->scale));
  int out = mpc__pc_new_val(cc, &shape, MPC__V_SHARED, scale, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_ADD, y, bv, out, cc->g->nodes[node].name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->ascale = ascale;
  g->bscale = bscale;
  size_t n = cc->p->vals[out].n;
  if (channel) {
    size_t m = shape.dim[1], plane = shape.dim[2] * shape.dim[3];
    if (cc->p->vals[bv].n != m)
      return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "bias length differs from output channels");
    if ((g->bmap = malloc(n * sizeof *g->bmap)) == NULL)
      return TANDEM_ENOMEM;
    for (size_t i = 0; i < n; i++)
      g->bmap[i] = (uint32_t)((i / plane) % m);
    return out;
  }
  int rc = broadcast_map(&shape, &cc->p->vals[bv].shape, &g->bmap);
  if (rc < 0)
    return mpc__pc_fail(cc, rc, node, "the addend does not broadcast to the output");
  return out;
}

/* A bias or Gemm's C: the owner's parameter or a public constant (add_bias),
 * or an activation (add_dynamic). */
static int add_any(cc_t *cc, int node, int y, int bnode, double fold, int channel) {
  mpc_op_t op = cc->g->nodes[bnode].op;
  if (op == MPC_OP_PARAM || op == MPC_OP_CONST)
    return mpc__pc_add_bias(cc, node, y, bnode, fold, channel);
  return add_dynamic(cc, node, y, bnode, fold, channel);
}

/* The output value (SHARED, scale 2f, of shape vshape) of a matrix product
 * x * w of form `form` with dimensions m x k x n, and its gate. Returns the
 * value or a negative error. */
int mpc__pc_matrix_gate(cc_t *cc, int node, mpc__gkind_t kind, int x, int w,
                       const mpc_shape_t *vshape, mpc__lform_t form, size_t m, size_t k,
                       size_t n) {
  int y = mpc__pc_new_val(cc, vshape, MPC__V_SHARED, 2, node);
  if (y < 0)
    return y;
  mpc__gate_t *gt = mpc__pc_new_gate(cc, kind, x, w, y, cc->g->nodes[node].name);
  if (gt == NULL)
    return TANDEM_ENOMEM;
  gt->lin.form = form;
  gt->lin.m = m;
  gt->lin.k = k;
  gt->lin.n = n;
  return y;
}

/* The 2-D value v transposed by a local layout gate (no round: a MASKED value
 * stays masked, the dealer permuting its mask alike), for a Gemm's transA or
 * transB on a dynamic operand. Returns the new value or a negative error. */
static int transpose_2d(cc_t *cc, int node, int v) {
  const mpc__val_t *val = &cc->p->vals[v];
  if (val->shape.ndim != 2)
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "a transposed operand must be 2-D");
  size_t r = val->shape.dim[0], c = val->shape.dim[1];
  if (val->n > UINT32_MAX)
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  uint32_t *map = malloc((val->n ? val->n : 1) * sizeof *map);
  if (map == NULL)
    return TANDEM_ENOMEM;
  for (size_t i = 0; i < c; i++)
    for (size_t j = 0; j < r; j++)
      map[i * r + j] = (uint32_t)(j * c + i); /* out[i][j] = in[j][i] */
  mpc_shape_t ts = {2, {c, r}};
  return mpc__pc_lower_layout(cc, node, v, &ts, map);
}

/* MatMul with batch dimensions (graph.c's infer_bmm): one gate of form BMM,
 * a triple when in1 is an activation too, whose bmap pairs every output
 * matrix with the matrices of the operands it reads (broadcasting). */
static int lower_bmm(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int b = nd->in[1];
  mpc_op_t bop = cc->g->nodes[b].op;
  if (bop == MPC_OP_CONST)
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                        "a public constant as matrix operand is not supported");
  int x = mpc__pc_masked_s1(cc, cc->act[nd->in[0]], nd->name);
  if (x < 0)
    return mpc__pc_fail(cc, x, node, "operand cannot be masked");
  int w = bop == MPC_OP_PARAM ? weight_of(cc, b, 1.0) : mpc__pc_masked_s1(cc, cc->act[b], nd->name);
  if (w < 0)
    return bop == MPC_OP_PARAM ? w : mpc__pc_fail(cc, w, node, "operand cannot be masked");
  mpc_shape_t xs = cc->p->vals[x].shape, ws = cc->p->vals[w].shape, ys;
  /* The output's shape from the operands' (the plan's batch may differ from
   * the declared one), as graph.c infers it. */
  ys.ndim = xs.ndim > ws.ndim ? xs.ndim : ws.ndim;
  for (unsigned i = 2; i < ys.ndim; i++) {
    size_t ad = i < xs.ndim ? xs.dim[xs.ndim - 1 - i] : 1;
    size_t bd = i < ws.ndim ? ws.dim[ws.ndim - 1 - i] : 1;
    if (ad != bd && ad != 1 && bd != 1)
      return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "batch dimensions do not broadcast");
    ys.dim[ys.ndim - 1 - i] = ad > bd ? ad : bd;
  }
  ys.dim[ys.ndim - 2] = xs.dim[xs.ndim - 2];
  ys.dim[ys.ndim - 1] = ws.dim[ws.ndim - 1];
  size_t m = ys.dim[ys.ndim - 2], n = ys.dim[ys.ndim - 1], k = xs.dim[xs.ndim - 1];
  if (k != ws.dim[ws.ndim - 2])
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "inner dimensions differ");
  size_t nb = mpc_shape_numel(&ys) / (m * n);
  if (nb > UINT32_MAX / 2 || mpc_shape_numel(&xs) / (m * k) > UINT32_MAX ||
      mpc_shape_numel(&ws) / (k * n) > UINT32_MAX)
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "too many matrices");
  int y = mpc__pc_matrix_gate(cc, node, bop == MPC_OP_PARAM ? MPC__G_BILIN : MPC__G_TRIPLE, x, w,
                              &ys, MPC__L_BMM, m, k, n);
  if (y < 0)
    return y;
  mpc__gate_t *gt = &cc->p->gates[cc->p->ngates - 1];
  gt->lin.batch = nb;
  if ((gt->bmap = malloc(2 * nb * sizeof *gt->bmap)) == NULL)
    return TANDEM_ENOMEM;
  for (size_t t = 0; t < nb; t++) {
    gt->bmap[2 * t] = (uint32_t)mpc__bmm_index(&ys, &xs, t);
    gt->bmap[2 * t + 1] = (uint32_t)mpc__bmm_index(&ys, &ws, t);
  }
  int a = nd->in[0];
  if (cc->rowf[a] >= 0 && bop != MPC_OP_PARAM &&
      (y = mpc__pc_row_rescale(cc, node, y, mpc__pc_sm_ev_mag(cc, a, b), cc->rowf[a], n)) < 0)
    return y;
  cc->act[node] = y;
  return 0;
}


static int lower_gemm(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  const mpc_graph_t *g = cc->g;
  int a = nd->in[0], b = nd->in[1];
  if (nd->op == MPC_OP_MATMUL && g->nodes[b].shape.ndim > 2)
    return lower_bmm(cc, node);
  int trans_a = nd->op == MPC_OP_GEMM && nd->attr.trans_a;
  int trans_b = nd->op == MPC_OP_GEMM && nd->attr.trans_b;
  double alpha = nd->op == MPC_OP_GEMM ? nd->attr.alpha : 1.0;
  double beta = nd->op == MPC_OP_GEMM ? nd->attr.beta : 1.0;
  int a_param = g->nodes[a].op == MPC_OP_PARAM, b_param = g->nodes[b].op == MPC_OP_PARAM;
  if (g->nodes[a].op == MPC_OP_CONST || g->nodes[b].op == MPC_OP_CONST)
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                        "a public constant as matrix operand is not supported");
  if (a_param && b_param)
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                        "both operands are parameters (fold them offline)");
  int y;
  if (b_param) {
    int av = cc->act[a];
    if (trans_a && (av = transpose_2d(cc, node, av)) < 0)
      return av;
    /* Token ids (one-hot, MASKED at scale 0) go in as they are. */
    int ids = g->nodes[a].op == MPC_OP_INPUT && g->nodes[a].ids;
    int x = ids ? av : mpc__pc_masked_s1(cc, av, nd->name);
    if (x < 0)
      return mpc__pc_fail(cc, x, node, "operand cannot be masked");
    int w = weight_of(cc, b, alpha);
    if (w < 0)
      return w;
    const mpc__val_t *xv = &cc->p->vals[x], *wv = &cc->p->vals[w];
    mpc_shape_t ys;
    ys.ndim = 2;
    size_t kdim = trans_b ? wv->shape.dim[1] : wv->shape.dim[0];
    size_t ndim = trans_b ? wv->shape.dim[0] : wv->shape.dim[1];
    if (kdim == 0 || xv->n % kdim != 0)
      return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "inner dimensions differ");
    ys.dim[0] = xv->n / kdim;
    ys.dim[1] = ndim;
    mpc_shape_t full = xv->shape; /* [.., M, K] -> [.., M, N] */
    if (full.ndim >= 2 && full.dim[full.ndim - 1] == kdim)
      full.dim[full.ndim - 1] = ndim;
    else
      full = ys;
    y = mpc__pc_matrix_gate(cc, node, MPC__G_BILIN, x, w, &full, trans_b ? MPC__L_XWT : MPC__L_XW,
                    ys.dim[0], kdim, ndim);
    if (y < 0)
      return y;
    if (ids)
      cc->p->vals[y].scale = 1; /* 0 + 1: a row of the table at f bits */
    if (cc->rowf[a] >= 0 && (y = mpc__pc_row_rescale(cc, node, y, mpc__pc_ln_dw_mag(cc, a, node),
                                                     cc->rowf[a], ndim)) < 0)
      return y;
  } else if (a_param) {
    if (trans_a || trans_b)
      return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                          "transposes with a weight on the left are not supported");
    int x = mpc__pc_masked_s1(cc, cc->act[b], nd->name);
    if (x < 0)
      return mpc__pc_fail(cc, x, node, "operand cannot be masked");
    int w = weight_of(cc, a, alpha);
    if (w < 0)
      return w;
    const mpc__val_t *xv = &cc->p->vals[x], *wv = &cc->p->vals[w];
    if (xv->shape.ndim != 2 || wv->shape.ndim != 2 || wv->shape.dim[1] != xv->shape.dim[0])
      return mpc__pc_fail(cc, TANDEM_ESHAPE, node,
                          "W x X needs 2-D operands with matching inner dimension");
    size_t kdim = wv->shape.dim[1];
    mpc_shape_t ys = {2, {wv->shape.dim[0], xv->shape.dim[1]}};
    y = mpc__pc_matrix_gate(cc, node, MPC__G_BILIN, x, w, &ys, MPC__L_WX, ys.dim[0], kdim,
                            ys.dim[1]);
    if (y < 0)
      return y;
  } else {
    int av = cc->act[a], bv = cc->act[b];
    if (trans_a && (av = transpose_2d(cc, node, av)) < 0)
      return av;
    if (trans_b && (bv = transpose_2d(cc, node, bv)) < 0)
      return bv;
    int x = mpc__pc_masked_s1(cc, av, nd->name);
    if (x < 0)
      return mpc__pc_fail(cc, x, node, "operand cannot be masked");
    int z = mpc__pc_masked_s1(cc, bv, nd->name);
    if (z < 0)
      return mpc__pc_fail(cc, z, node, "operand cannot be masked");
    const mpc__val_t *xv = &cc->p->vals[x], *zv = &cc->p->vals[z];
    if (zv->shape.ndim != 2 || xv->shape.dim[xv->shape.ndim - 1] != zv->shape.dim[0])
      return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "inner dimensions differ");
    size_t kdim = zv->shape.dim[0];
    mpc_shape_t ys = {2, {xv->n / kdim, zv->shape.dim[1]}};
    y = mpc__pc_matrix_gate(cc, node, MPC__G_TRIPLE, x, z, &ys, MPC__L_XW, ys.dim[0], kdim,
                            ys.dim[1]);
    if (y < 0)
      return y;
    /* alpha on the product (public: a MulC; the truncation it needs first
     * costs a round unless alpha is an integer). */
    if (alpha != 1.0 && (y = mpc__pc_mulc_val(cc, node, y, alpha)) < 0)
      return y;
  }
  if (nd->op == MPC_OP_GEMM && nd->in[2] >= 0 && beta != 0.0) {
    y = add_any(cc, node, y, nd->in[2], beta, 0);
    if (y < 0)
      return y;
  }
  cc->act[node] = y;
  return 0;
}

static int lower_conv(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int wnode = nd->in[1];
  mpc_op_t wop = cc->g->nodes[wnode].op;
  if (wop == MPC_OP_CONST)
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                        "public constant convolution weights are not supported");
  int x = mpc__pc_masked_s1(cc, cc->act[nd->in[0]], nd->name);
  if (x < 0)
    return mpc__pc_fail(cc, x, node, "operand cannot be masked");
  /* Weights supplied or computed per query: both operands masked, a fresh
   * triple from the dealer (as for MatMul with two activations). */
  int w = wop == MPC_OP_PARAM ? weight_of(cc, wnode, 1.0)
                              : mpc__pc_masked_s1(cc, cc->act[wnode], nd->name);
  if (w < 0)
    return wop == MPC_OP_PARAM ? w : mpc__pc_fail(cc, w, node, "weights cannot be masked");
  const mpc_shape_t xs = cc->p->vals[x].shape, ws = cc->p->vals[w].shape;
  mpc_shape_t ys = nd->shape;
  ys.dim[0] = xs.dim[0];
  int y = mpc__pc_new_val(cc, &ys, MPC__V_SHARED, 2, node);
  if (y < 0)
    return y;
  mpc__gate_t *gt =
      mpc__pc_new_gate(cc, wop == MPC_OP_PARAM ? MPC__G_BILIN : MPC__G_TRIPLE, x, w, y, nd->name);
  if (gt == NULL)
    return TANDEM_ENOMEM;
  gt->lin.form = MPC__L_CONV;
  kern_conv2d_t *cv = &gt->lin.conv;
  cv->c = xs.dim[1];
  cv->h = xs.dim[2];
  cv->w = xs.dim[3];
  cv->kh = ws.dim[2];
  cv->kw = ws.dim[3];
  cv->pad_t = nd->attr.pads[0];
  cv->pad_l = nd->attr.pads[1];
  cv->pad_b = nd->attr.pads[2];
  cv->pad_r = nd->attr.pads[3];
  cv->stride_h = nd->attr.strides[0] ? nd->attr.strides[0] : 1;
  cv->stride_w = nd->attr.strides[1] ? nd->attr.strides[1] : 1;
  cv->dil_h = nd->attr.dilations[0] ? nd->attr.dilations[0] : 1;
  cv->dil_w = nd->attr.dilations[1] ? nd->attr.dilations[1] : 1;
  size_t oh, ow;
  if (kern_conv2d_out(cv, &oh, &ow) != 0 || oh != ys.dim[2] || ow != ys.dim[3])
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "convolution geometry is inconsistent");
  gt->lin.batch = ys.dim[0];
  gt->lin.cout = ws.dim[0];
  gt->lin.ohw = oh * ow;
  gt->lin.m = gt->lin.cout;
  gt->lin.k = cv->c * cv->kh * cv->kw;
  gt->lin.n = oh * ow;
  if (nd->in[2] >= 0) {
    y = add_any(cc, node, y, nd->in[2], 1.0, 1);
    if (y < 0)
      return y;
  }
  cc->act[node] = y;
  return 0;
}

static int lower_addsub(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int a = nd->in[0], b = nd->in[1];
  int a_static = cc->act[a] < 0 || !mpc__pc_is_dynamic(&cc->p->vals[cc->act[a]]);
  int b_static = cc->act[b] < 0 || !mpc__pc_is_dynamic(&cc->p->vals[cc->act[b]]);
  if (a_static && b_static)
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node, "both operands are static (fold them offline)");
  if (a_static) {
    if (nd->op == MPC_OP_SUB)
      return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node, "a static minuend is not supported");
    int t = a;
    a = b;
    b = t;
  }
  int av = cc->act[a];
  mpc_shape_t shape = cc->p->vals[av].shape;
  int bv;
  uint64_t ascale = 1, bscale = 1;
  unsigned scale = cc->p->vals[av].scale;
  if (b_static || a_static) {
    bv = addend_of(cc, b, scale, 1.0);
    if (bv < 0)
      return bv;
  } else {
    bv = cc->act[b];
    unsigned sb = cc->p->vals[bv].scale;
    if (sb < scale)
      bscale = mpc__pc_pow2(cc->p->f * (scale - sb));
    else if (sb > scale) {
      ascale = mpc__pc_pow2(cc->p->f * (sb - scale));
      scale = sb;
    }
  }
  int out = mpc__pc_new_val(cc, &shape, MPC__V_SHARED, scale, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = mpc__pc_new_gate(cc, nd->op == MPC_OP_ADD ? MPC__G_ADD : MPC__G_SUB, av, bv,
                            out, nd->name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->ascale = ascale;
  g->bscale = bscale;
  int rc = broadcast_map(&shape, &cc->p->vals[bv].shape, &g->bmap);
  if (rc < 0)
    return mpc__pc_fail(cc, rc, node, "operands do not broadcast");
  cc->act[node] = out;
  return 0;
}

static int lower_mulc(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int out = mpc__pc_mulc_val(cc, node, cc->act[nd->in[0]], nd->attr.scalar);
  if (out < 0)
    return out;
  cc->act[node] = out;
  return 0;
}

/* Mul: an activation times the owner's PARAM (a secret scale, broadcast to
 * it) or times another activation, elementwise: a bilinear gate of form EW
 * (no round with a weight, as for MatMul; a triple with two activations). */
static int lower_mul(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int a = nd->in[0], b = nd->in[1];
  mpc_op_t bop = cc->g->nodes[b].op;
  if (cc->act[a] < 0 || !mpc__pc_is_dynamic(&cc->p->vals[cc->act[a]]))
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node, "the first operand must be an activation");
  if (bop == MPC_OP_CONST)
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                        "a public constant factor is not supported (use MulC)");
  int x = mpc__pc_masked_s1(cc, cc->act[a], nd->name);
  if (x < 0)
    return mpc__pc_fail(cc, x, node, "operand cannot be masked");
  int w = bop == MPC_OP_PARAM ? weight_of(cc, b, 1.0) : mpc__pc_masked_s1(cc, cc->act[b], nd->name);
  if (w < 0)
    return bop == MPC_OP_PARAM ? w : mpc__pc_fail(cc, w, node, "operand cannot be masked");
  mpc_shape_t xs = cc->p->vals[x].shape, ws = cc->p->vals[w].shape;
  size_t nx = cc->p->vals[x].n, nw = cc->p->vals[w].n;
  int y = mpc__pc_matrix_gate(cc, node, bop == MPC_OP_PARAM ? MPC__G_BILIN : MPC__G_TRIPLE, x, w,
                              &xs, MPC__L_EW, nx, nw, 1);
  if (y < 0)
    return y;
  mpc__gate_t *gt = &cc->p->gates[cc->p->ngates - 1];
  int rc = broadcast_map(&xs, &ws, &gt->bmap);
  if (rc < 0)
    return mpc__pc_fail(cc, rc, node, "the factor does not broadcast to the operand");
  cc->act[node] = y;
  return 0;
}

/* ReLU (with the truncation of a product fused in) of value v, for node.
 * In exact mode a product is first truncated by the exact truncation gate
 * (one round) and the ReLU then runs on the truncated value with s = 0,
 * which is exact: the fused gate would drop the carry c_s, and
 * ReLU(trunc(y)) = ReLU(trunc(y) + c_s) - [trunc(y) >= 0] c_s needs the
 * product of two shared bits, itself a round (gate_fss.c). */
int mpc__pc_relu_gate(cc_t *cc, int node, int v) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  if (cc->g->exact && cc->p->vals[v].scale == 2 && (v = truncate_val(cc, v, nd->name)) < 0)
    return v;
  const mpc__val_t *val = &cc->p->vals[v];
  unsigned shift = val->scale == 2 ? cc->p->f : 0;
  mpc_shape_t shape = val->shape;
  int out = mpc__pc_new_val(cc, &shape, MPC__V_SHARED, val->scale == 2 ? 1 : val->scale, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_NONLIN, v, -1, out, nd->name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->relu = 1;
  g->shift = shift;
  g->bound = mpc__pc_gate_bound(cc, v, shift, 0);
  return out;
}

/* A ReLU feeding only a MaxPool is applied after the pool instead: ReLU
 * and truncation are monotone, so relu(trunc(max x)) = max relu(trunc(x)),
 * and the costly gate (two DCFs) then runs on one element per window, not
 * on every element (the CNN's 2x2 pools: a quarter), with the same rounds.
 * The pool then compares untruncated products, whose differences need one
 * more bit: mpc_weights_input_bound keeps that bit free. */
static int lower_relu(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  if (cc->relu_later[node]) {
    cc->act[node] = cc->act[nd->in[0]];
    return 0;
  }
  int out = mpc__pc_relu_gate(cc, node, cc->act[nd->in[0]]);
  if (out < 0)
    return out;
  cc->act[node] = out;
  return 0;
}

/* 1 if every reader of ids INPUT node `node` is a MatMul of it (on the
 * left) by a 2-D PARAM: the only use the import makes of token ids, and
 * the only one lowered for a value at scale 0. */
static int ids_readers_ok(const cc_t *cc, int node) {
  const mpc_graph_t *g = cc->g;
  for (size_t i = (size_t)node + 1; i < g->nnodes; i++) {
    const mpc_node_t *nd = &g->nodes[i];
    for (int k = 0; k < 3; k++)
      if (nd->in[k] == node &&
          (nd->op != MPC_OP_MATMUL || k != 0 || nd->in[1] < 0 ||
           g->nodes[nd->in[1]].op != MPC_OP_PARAM || g->nodes[nd->in[1]].shape.ndim != 2))
        return 0;
  }
  return 1;
}

static int lower_node(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  mpc_plan_t *p = cc->p;
  switch (nd->op) {
  case MPC_OP_INPUT: {
    mpc_shape_t s = nd->shape;
    if (p->batch != 0 && nd->batched)
      s.dim[0] = p->batch; /* batch 0 or a fixed input: the shapes the graph declares */
    if (nd->ids && !ids_readers_ok(cc, node))
      return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node, "token ids may only be multiplied by the "
                  "owner's table [V, H] (a Gather by ids)");
    /* Token ids' one-hot rows at scale 0 (integers): their product with the
     * table is at scale 1, with no truncation to spend a round on. */
    int v = mpc__pc_new_val(cc, &s, MPC__V_MASKED, nd->ids ? 0 : 1, node);
    if (v < 0)
      return v;
    if (mpc__pc_new_gate(cc, MPC__G_INPUT, -1, -1, v, nd->name) == NULL)
      return TANDEM_ENOMEM;
    cc->act[node] = v;
    return push_index(&p->inputs, &p->ninputs, v);
  }
  case MPC_OP_PARAM:
  case MPC_OP_CONST:
    return 0; /* lowered at their use, where their role and scale are known */
  case MPC_OP_MATMUL:
  case MPC_OP_GEMM:
    return lower_gemm(cc, node);
  case MPC_OP_CONV:
    return lower_conv(cc, node);
  case MPC_OP_ADD:
  case MPC_OP_SUB:
    return lower_addsub(cc, node);
  case MPC_OP_MUL:
    return lower_mul(cc, node);
  case MPC_OP_CONCAT:
    return mpc__pc_lower_concat(cc, node);
  default:
    break;
  }
  /* The remaining operators take one dynamic operand; an output may also be
   * a public constant (the parties hand out P0: it, P1: 0). */
  int in = nd->in[0];
  if (nd->op == MPC_OP_OUTPUT && in >= 0 && cc->g->nodes[in].op == MPC_OP_CONST) {
    int v = addend_of(cc, in, 1, 1.0);
    if (v < 0)
      return v;
    if (mpc__pc_new_gate(cc, MPC__G_OUTPUT, v, -1, -1, nd->name) == NULL)
      return TANDEM_ENOMEM;
    cc->act[node] = v;
    return push_index(&p->outputs, &p->noutputs, v);
  }
  if (in < 0 || cc->act[in] < 0 || !mpc__pc_is_dynamic(&p->vals[cc->act[in]]))
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                        "operand must be an activation, not a parameter or constant");
  if (mpc_op_is_smooth(nd->op))
    return mpc__pc_lower_smooth(cc, node);
  switch (nd->op) {
  case MPC_OP_MULC:
    return lower_mulc(cc, node);
  case MPC_OP_RELU:
    return lower_relu(cc, node);
  case MPC_OP_MAXPOOL:
    return mpc__pc_lower_maxpool(cc, node);
  case MPC_OP_AVGPOOL:
    return mpc__pc_lower_avgpool(cc, node);
  case MPC_OP_RESHAPE: {
    mpc_shape_t s = nd->shape;
    const mpc__val_t *iv = &p->vals[cc->act[in]];
    size_t rest = 1;
    for (unsigned d = 1; d < s.ndim; d++)
      rest *= s.dim[d];
    if (s.ndim > 0 && rest > 0 && iv->n % rest == 0)
      s.dim[0] = iv->n / rest; /* the batch dimension follows the plan's batch */
    if (mpc_shape_numel(&s) != iv->n)
      return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "reshape changes the element count");
    int out = mpc__pc_lower_layout(cc, node, cc->act[in], &s, NULL);
    if (out < 0)
      return out;
    cc->act[node] = out;
    return 0;
  }
  case MPC_OP_TRANSPOSE:
    return mpc__pc_lower_transpose(cc, node);
  case MPC_OP_SELECT:
    return mpc__pc_lower_select(cc, node);
  case MPC_OP_LINMAP:
    return mpc__pc_lower_linmap(cc, node);
  case MPC_OP_SOFTMAX:
    return mpc__pc_lower_softmax(cc, node);
  case MPC_OP_LNORM:
    return mpc__pc_lower_lnorm(cc, node);
  case MPC_OP_OUTPUT: {
    int v = cc->act[in];
    if (mpc__pc_new_gate(cc, MPC__G_OUTPUT, v, -1, -1, nd->name) == NULL)
      return TANDEM_ENOMEM;
    cc->act[node] = v;
    return push_index(&p->outputs, &p->noutputs, v);
  }
  default:
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node, "operator not supported by the protocol");
  }
}

/* Marks the ReLUs whose one consumer is a MaxPool (lower_relu). */
static void mark_relu_before_pool(const mpc_graph_t *g, char *mark) {
  for (size_t i = 0; i < g->nnodes; i++) {
    if (g->nodes[i].op != MPC_OP_RELU)
      continue;
    size_t uses = 0, pools = 0;
    for (size_t j = i + 1; j < g->nnodes; j++)
      for (int k = 0; k < 3; k++)
        if (g->nodes[j].in[k] == (int)i) {
          uses++;
          pools += g->nodes[j].op == MPC_OP_MAXPOOL && k == 0;
        }
    mark[i] = uses == 1 && pools == 1;
  }
}

int mpc_plan_new(mpc_plan_t **out, const mpc_graph_t *g, size_t batch, char *err,
                 size_t errlen) {
  *out = NULL;
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (g == NULL || g->nnodes == 0)
    return TANDEM_EINVAL;
  /* Every role compiles a plan first: the place to make libsodium ready
   * (sodium_malloc and randombytes_buf need it; it is idempotent). */
  if (sodium_init() < 0)
    return TANDEM_ECRYPTO;
  unsigned f = g->frac_bits ? g->frac_bits : KERN_FIX_FRAC_DEFAULT;
  if (f < KERN_FIX_FRAC_MIN || f > KERN_FIX_FRAC_MAX)
    return TANDEM_EINVAL;
  unsigned bound = g->bound_bits ? g->bound_bits : (2 * f + 16 > 62 ? 62 : 2 * f + 16);
  if (bound > 62 || bound <= f + 1)
    return TANDEM_EINVAL;
  mpc_plan_t *p = calloc(1, sizeof *p);
  cc_t cc = {p, g, NULL, NULL, NULL, NULL, NULL, err, errlen};
  int rc = TANDEM_ENOMEM;
  if (p == NULL)
    return rc;
  p->graph = g;
  p->batch = batch;
  p->f = f;
  p->bound = bound;
  cc.act = malloc(g->nnodes * sizeof *cc.act);
  cc.weight = malloc(g->nnodes * sizeof *cc.weight);
  cc.addend = malloc(g->nnodes * sizeof *cc.addend);
  cc.relu_later = calloc(g->nnodes + 1, 1);
  cc.rowf = malloc(g->nnodes * sizeof *cc.rowf);
  if (cc.act == NULL || cc.weight == NULL || cc.addend == NULL || cc.relu_later == NULL ||
      cc.rowf == NULL)
    goto fail;
  for (size_t i = 0; i < g->nnodes; i++)
    cc.act[i] = cc.weight[i] = cc.addend[i] = cc.rowf[i] = -1;
  mark_relu_before_pool(g, cc.relu_later);
  for (size_t i = 0; i < g->nnodes; i++) {
    rc = lower_node(&cc, (int)i);
    if (rc < 0) {
      if (err != NULL && errlen > 0 && err[0] == '\0')
        mpc__pc_fail(&cc, rc, (int)i, tandem_strerror(rc));
      goto fail;
    }
  }
  if (p->noutputs == 0) {
    rc = mpc__pc_fail(&cc, TANDEM_EINVAL, -1, "the graph needs at least one output");
    goto fail;
  }
  rc = mpc__plan_schedule(p);
  if (rc < 0)
    goto fail;
  free(cc.act);
  free(cc.weight);
  free(cc.addend);
  free(cc.relu_later);
  free(cc.rowf);
  *out = p;
  return 0;
fail:
  free(cc.act);
  free(cc.weight);
  free(cc.addend);
  free(cc.relu_later);
  free(cc.rowf);
  mpc_plan_free(p);
  return rc;
}

void mpc_plan_free(mpc_plan_t *p) {
  if (p == NULL)
    return;
  for (size_t i = 0; i < p->ngates; i++) {
    free(p->gates[i].bmap);
    free(p->gates[i].map);
    free(p->gates[i].win);
    free(p->gates[i].wcoef);
    free(p->gates[i].wtap);
  }
  free(p->gates);
  free(p->vals);
  free(p->inputs);
  free(p->outputs);
  free(p->params);
  free(p->round_words);
  free(p);
}
