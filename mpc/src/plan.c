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
 * plan).
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

typedef struct {
  mpc_plan_t *p;
  const mpc_graph_t *g;
  int *act;    /* node -> value for activations and constants, -1 */
  int *weight; /* node -> WEIGHT value, -1 */
  int *addend; /* node -> ADDEND value, -1 */
  char *relu_later; /* node -> 1: a ReLU whose only consumer is a MaxPool (see lower_relu) */
  int *rowf;   /* LNORM or SOFTMAX node -> the masked factor of each of its
                * rows (1 / sqrt(v + eps), 1 / sum) when the MatMul that
                * reads it takes the product (lower_lnorm, lower_softmax),
                * its act then the rows before it; -1 */
  char *err;
  size_t errlen;
} cc_t;

static int fail(cc_t *cc, int code, int node, const char *what) {
  if (cc->err != NULL && cc->errlen > 0) {
    if (node >= 0)
      snprintf(cc->err, cc->errlen, "node '%s' (%s): %s", cc->g->nodes[node].name,
               mpc_op_name(cc->g->nodes[node].op), what);
    else
      snprintf(cc->err, cc->errlen, "%s", what);
  }
  return code;
}

static int new_val(cc_t *cc, const mpc_shape_t *shape, mpc__vkind_t kind,
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

static mpc__gate_t *new_gate(cc_t *cc, mpc__gkind_t kind, int in0, int in1, int out,
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

static uint64_t pow2(unsigned s) { return s >= 64 ? 0 : (uint64_t)1 << s; }

/* ---- conversions --------------------------------------------------------- */

/* The value bound L (|value| * 2^(scale f) < 2^(L-1)) of the comparison
 * gate on value v, whose candidates' differences need `extra` more bits: the
 * model owner's per-node magnitude (graph.mag_log2) plus one bit of margin,
 * never more than the graph-wide bound (plus extra) nor 63, and at least shift + 2 (the gate's
 * DCF takes L + 1 - shift - 1 >= 1 bits; gate_fss.c). */
static unsigned gate_bound(const cc_t *cc, int v, unsigned shift, unsigned extra) {
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

/* A SHARED value at scale 1: v divided by 2^shift, exactly (floor), by a
 * truncation gate (one round; none if v is MASKED, whose mask the dealer
 * already knows); v needs `extra` bits above its node's bound (gate_bound). */
static int trunc_by(cc_t *cc, int v, unsigned shift, unsigned extra, const char *label) {
  mpc__val_t *val = &cc->p->vals[v];
  mpc_shape_t shape = val->shape;
  int out = new_val(cc, &shape, MPC__V_SHARED, 1, val->node);
  if (out < 0)
    return out;
  cc->p->vals[out].magset = cc->p->vals[v].magset;
  cc->p->vals[out].mag = cc->p->vals[v].mag;
  mpc__gate_t *g = new_gate(cc, MPC__G_NONLIN, v, -1, out, label);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->relu = 0;
  g->shift = shift;
  g->bound = gate_bound(cc, v, g->shift, extra);
  return out;
}

/* A SHARED value at scale 1 from v at scale 2 (a truncation by f). */
static int truncate_val(cc_t *cc, int v, const char *label) {
  return trunc_by(cc, v, cc->p->f, 0, label);
}

/* A MASKED value at scale 1 from v, as a bilinear layer needs. */
static int masked_s1(cc_t *cc, int v, const char *label) {
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
  mpc_shape_t shape = cc->p->vals[v].shape;
  int out = new_val(cc, &shape, MPC__V_MASKED, 1, cc->p->vals[v].node);
  if (out < 0)
    return out;
  cc->p->vals[out].magset = cc->p->vals[v].magset;
  cc->p->vals[out].mag = cc->p->vals[v].mag;
  if (new_gate(cc, MPC__G_OPEN, v, -1, out, label) == NULL)
    return TANDEM_ENOMEM;
  return out;
}

/* A dynamic value at scale 1 (truncating a product), any form. */
static int scale1(cc_t *cc, int v, const char *label) {
  if (v < 0)
    return TANDEM_EUNSUPOP;
  if (cc->p->vals[v].scale == 2)
    return truncate_val(cc, v, label);
  return v;
}

static int is_dynamic(const mpc__val_t *v) {
  return v->kind == MPC__V_MASKED || v->kind == MPC__V_SHARED;
}

/* The parameter at node used as a bilinear weight (scale 1, alpha folded). */
static int weight_of(cc_t *cc, int node, double fold) {
  if (cc->addend[node] >= 0)
    return fail(cc, TANDEM_EUNSUPOP, node, "a parameter used both as weight and as addend");
  if (cc->weight[node] >= 0) {
    if (cc->p->vals[cc->weight[node]].fold != fold)
      return fail(cc, TANDEM_EUNSUPOP, node, "a weight shared by layers with different alpha");
    return cc->weight[node];
  }
  int v = new_val(cc, &cc->g->nodes[node].shape, MPC__V_WEIGHT, 1, node);
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
    int v = new_val(cc, &nd->shape, MPC__V_PUBLIC, scale, node);
    if (v >= 0)
      cc->p->vals[v].fold = fold;
    return v;
  }
  if (cc->weight[node] >= 0)
    return fail(cc, TANDEM_EUNSUPOP, node, "a parameter used both as weight and as addend");
  if (cc->addend[node] >= 0) {
    const mpc__val_t *a = &cc->p->vals[cc->addend[node]];
    if (a->scale != scale || a->fold != fold)
      return fail(cc, TANDEM_EUNSUPOP, node, "a parameter added at two different scales");
    return cc->addend[node];
  }
  int v = new_val(cc, &nd->shape, MPC__V_ADDEND, scale, node);
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

static int add_bias(cc_t *cc, int node, int y, int bnode, double fold, int channel) {
  const mpc__val_t *yv = &cc->p->vals[y];
  unsigned scale = yv->scale;
  mpc_shape_t shape = yv->shape;
  int b = addend_of(cc, bnode, scale, fold);
  if (b < 0)
    return b;
  int out = new_val(cc, &shape, MPC__V_SHARED, scale, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = new_gate(cc, MPC__G_ADD, y, b, out, cc->g->nodes[node].name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  const mpc__val_t *bv = &cc->p->vals[b];
  if (channel) {
    /* Conv bias [M] over [N, M, OH, OW]. */
    size_t n = cc->p->vals[out].n, m = shape.dim[1], plane = shape.dim[2] * shape.dim[3];
    if (bv->n != m)
      return fail(cc, TANDEM_ESHAPE, node, "bias length differs from output channels");
    g->bmap = malloc(n * sizeof *g->bmap);
    if (g->bmap == NULL)
      return TANDEM_ENOMEM;
    for (size_t i = 0; i < n; i++)
      g->bmap[i] = (uint32_t)((i / plane) % m);
    return out;
  }
  int rc = broadcast_map(&shape, &bv->shape, &g->bmap);
  if (rc < 0)
    return fail(cc, rc, node, "bias does not broadcast to the output");
  return out;
}

/* Value v times the public number c (a MulC gate; an integer keeps the
 * scale, any other number is encoded at f bits and raises it by one, after
 * truncating a product first). Returns the new value or a negative error. */
static int mulc_val(cc_t *cc, int node, int v, double c) {
  const char *label = cc->g->nodes[node].name;
  if (!isfinite(c))
    return fail(cc, TANDEM_EINVAL, node, "the constant is not finite");
  uint64_t cm;
  unsigned scale = cc->p->vals[v].scale;
  if (c == nearbyint(c) && fabs(c) < 1048576.0) {
    cm = (uint64_t)(int64_t)c; /* an integer: exact, no scale change */
  } else {
    v = scale1(cc, v, label);
    if (v < 0)
      return v;
    size_t bad;
    if (kern_fix_encode(&cm, &c, 1, cc->p->f, &bad) != 0)
      return fail(cc, TANDEM_ERANGE, node, "the constant is outside the fixed-point range");
    scale = 2;
  }
  mpc_shape_t shape = cc->p->vals[v].shape;
  int out = new_val(cc, &shape, MPC__V_SHARED, scale, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = new_gate(cc, MPC__G_MULC, v, -1, out, label);
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
  if (bv < 0 || !is_dynamic(&cc->p->vals[bv]))
    return fail(cc, TANDEM_EUNSUPOP, node, "the addend is neither a parameter nor an activation");
  if (fold != 1.0 && (bv = mulc_val(cc, node, bv, fold)) < 0)
    return bv;
  const mpc__val_t *yv = &cc->p->vals[y], *b = &cc->p->vals[bv];
  mpc_shape_t shape = yv->shape;
  unsigned scale = yv->scale > b->scale ? yv->scale : b->scale;
  uint64_t ascale = pow2(cc->p->f * (scale - yv->scale));
  uint64_t bscale = pow2(cc->p->f * (scale - b->scale));
  int out = new_val(cc, &shape, MPC__V_SHARED, scale, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = new_gate(cc, MPC__G_ADD, y, bv, out, cc->g->nodes[node].name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->ascale = ascale;
  g->bscale = bscale;
  size_t n = cc->p->vals[out].n;
  if (channel) {
    size_t m = shape.dim[1], plane = shape.dim[2] * shape.dim[3];
    if (cc->p->vals[bv].n != m)
      return fail(cc, TANDEM_ESHAPE, node, "bias length differs from output channels");
    if ((g->bmap = malloc(n * sizeof *g->bmap)) == NULL)
      return TANDEM_ENOMEM;
    for (size_t i = 0; i < n; i++)
      g->bmap[i] = (uint32_t)((i / plane) % m);
    return out;
  }
  int rc = broadcast_map(&shape, &cc->p->vals[bv].shape, &g->bmap);
  if (rc < 0)
    return fail(cc, rc, node, "the addend does not broadcast to the output");
  return out;
}

/* A bias or Gemm's C: the owner's parameter or a public constant (add_bias),
 * or an activation (add_dynamic). */
static int add_any(cc_t *cc, int node, int y, int bnode, double fold, int channel) {
  mpc_op_t op = cc->g->nodes[bnode].op;
  if (op == MPC_OP_PARAM || op == MPC_OP_CONST)
    return add_bias(cc, node, y, bnode, fold, channel);
  return add_dynamic(cc, node, y, bnode, fold, channel);
}

/* The output value (SHARED, scale 2f, of shape vshape) of a matrix product
 * x * w of form `form` with dimensions m x k x n, and its gate. Returns the
 * value or a negative error. */
static int matrix_gate(cc_t *cc, int node, mpc__gkind_t kind, int x, int w,
                       const mpc_shape_t *vshape, mpc__lform_t form, size_t m, size_t k,
                       size_t n) {
  int y = new_val(cc, vshape, MPC__V_SHARED, 2, node);
  if (y < 0)
    return y;
  mpc__gate_t *gt = new_gate(cc, kind, x, w, y, cc->g->nodes[node].name);
  if (gt == NULL)
    return TANDEM_ENOMEM;
  gt->lin.form = form;
  gt->lin.m = m;
  gt->lin.k = k;
  gt->lin.n = n;
  return y;
}

static int lower_layout(cc_t *cc, int node, int v, const mpc_shape_t *shape, uint32_t *map);

/* The 2-D value v transposed by a local layout gate (no round: a MASKED value
 * stays masked, the dealer permuting its mask alike), for a Gemm's transA or
 * transB on a dynamic operand. Returns the new value or a negative error. */
static int transpose_2d(cc_t *cc, int node, int v) {
  const mpc__val_t *val = &cc->p->vals[v];
  if (val->shape.ndim != 2)
    return fail(cc, TANDEM_ESHAPE, node, "a transposed operand must be 2-D");
  size_t r = val->shape.dim[0], c = val->shape.dim[1];
  if (val->n > UINT32_MAX)
    return fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  uint32_t *map = malloc((val->n ? val->n : 1) * sizeof *map);
  if (map == NULL)
    return TANDEM_ENOMEM;
  for (size_t i = 0; i < c; i++)
    for (size_t j = 0; j < r; j++)
      map[i * r + j] = (uint32_t)(j * c + i); /* out[i][j] = in[j][i] */
  mpc_shape_t ts = {2, {c, r}};
  return lower_layout(cc, node, v, &ts, map);
}

static int row_rescale(cc_t *cc, int node, int y, int mag, int rm, size_t ncols);
static int ln_dw_mag(const cc_t *cc, int ln, int mm);
static int sm_ev_mag(const cc_t *cc, int sm, int v);

/* MatMul with batch dimensions (graph.c's infer_bmm): one gate of form BMM,
 * a triple when in1 is an activation too, whose bmap pairs every output
 * matrix with the matrices of the operands it reads (broadcasting). */
static int lower_bmm(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int b = nd->in[1];
  mpc_op_t bop = cc->g->nodes[b].op;
  if (bop == MPC_OP_CONST)
    return fail(cc, TANDEM_EUNSUPOP, node, "a public constant as matrix operand is not supported");
  int x = masked_s1(cc, cc->act[nd->in[0]], nd->name);
  if (x < 0)
    return fail(cc, x, node, "operand cannot be masked");
  int w = bop == MPC_OP_PARAM ? weight_of(cc, b, 1.0) : masked_s1(cc, cc->act[b], nd->name);
  if (w < 0)
    return bop == MPC_OP_PARAM ? w : fail(cc, w, node, "operand cannot be masked");
  mpc_shape_t xs = cc->p->vals[x].shape, ws = cc->p->vals[w].shape, ys;
  /* The output's shape from the operands' (the plan's batch may differ from
   * the declared one), as graph.c infers it. */
  ys.ndim = xs.ndim > ws.ndim ? xs.ndim : ws.ndim;
  for (unsigned i = 2; i < ys.ndim; i++) {
    size_t ad = i < xs.ndim ? xs.dim[xs.ndim - 1 - i] : 1;
    size_t bd = i < ws.ndim ? ws.dim[ws.ndim - 1 - i] : 1;
    if (ad != bd && ad != 1 && bd != 1)
      return fail(cc, TANDEM_ESHAPE, node, "batch dimensions do not broadcast");
    ys.dim[ys.ndim - 1 - i] = ad > bd ? ad : bd;
  }
  ys.dim[ys.ndim - 2] = xs.dim[xs.ndim - 2];
  ys.dim[ys.ndim - 1] = ws.dim[ws.ndim - 1];
  size_t m = ys.dim[ys.ndim - 2], n = ys.dim[ys.ndim - 1], k = xs.dim[xs.ndim - 1];
  if (k != ws.dim[ws.ndim - 2])
    return fail(cc, TANDEM_ESHAPE, node, "inner dimensions differ");
  size_t nb = mpc_shape_numel(&ys) / (m * n);
  if (nb > UINT32_MAX / 2 || mpc_shape_numel(&xs) / (m * k) > UINT32_MAX ||
      mpc_shape_numel(&ws) / (k * n) > UINT32_MAX)
    return fail(cc, TANDEM_ESHAPE, node, "too many matrices");
  int y = matrix_gate(cc, node, bop == MPC_OP_PARAM ? MPC__G_BILIN : MPC__G_TRIPLE, x, w, &ys,
                     MPC__L_BMM, m, k, n);
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
      (y = row_rescale(cc, node, y, sm_ev_mag(cc, a, b), cc->rowf[a], n)) < 0)
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
    return fail(cc, TANDEM_EUNSUPOP, node, "a public constant as matrix operand is not supported");
  if (a_param && b_param)
    return fail(cc, TANDEM_EUNSUPOP, node, "both operands are parameters (fold them offline)");
  int y;
  if (b_param) {
    int av = cc->act[a];
    if (trans_a && (av = transpose_2d(cc, node, av)) < 0)
      return av;
    /* Token ids (one-hot, MASKED at scale 0) go in as they are. */
    int ids = g->nodes[a].op == MPC_OP_INPUT && g->nodes[a].ids;
    int x = ids ? av : masked_s1(cc, av, nd->name);
    if (x < 0)
      return fail(cc, x, node, "operand cannot be masked");
    int w = weight_of(cc, b, alpha);
    if (w < 0)
      return w;
    const mpc__val_t *xv = &cc->p->vals[x], *wv = &cc->p->vals[w];
    mpc_shape_t ys;
    ys.ndim = 2;
    size_t kdim = trans_b ? wv->shape.dim[1] : wv->shape.dim[0];
    size_t ndim = trans_b ? wv->shape.dim[0] : wv->shape.dim[1];
    if (kdim == 0 || xv->n % kdim != 0)
      return fail(cc, TANDEM_ESHAPE, node, "inner dimensions differ");
    ys.dim[0] = xv->n / kdim;
    ys.dim[1] = ndim;
    mpc_shape_t full = xv->shape; /* [.., M, K] -> [.., M, N] */
    if (full.ndim >= 2 && full.dim[full.ndim - 1] == kdim)
      full.dim[full.ndim - 1] = ndim;
    else
      full = ys;
    y = matrix_gate(cc, node, MPC__G_BILIN, x, w, &full, trans_b ? MPC__L_XWT : MPC__L_XW,
                    ys.dim[0], kdim, ndim);
    if (y < 0)
      return y;
    if (ids)
      cc->p->vals[y].scale = 1; /* 0 + 1: a row of the table at f bits */
    if (cc->rowf[a] >= 0 &&
        (y = row_rescale(cc, node, y, ln_dw_mag(cc, a, node), cc->rowf[a], ndim)) < 0)
      return y;
  } else if (a_param) {
    if (trans_a || trans_b)
      return fail(cc, TANDEM_EUNSUPOP, node, "transposes with a weight on the left are not supported");
    int x = masked_s1(cc, cc->act[b], nd->name);
    if (x < 0)
      return fail(cc, x, node, "operand cannot be masked");
    int w = weight_of(cc, a, alpha);
    if (w < 0)
      return w;
    const mpc__val_t *xv = &cc->p->vals[x], *wv = &cc->p->vals[w];
    if (xv->shape.ndim != 2 || wv->shape.ndim != 2 || wv->shape.dim[1] != xv->shape.dim[0])
      return fail(cc, TANDEM_ESHAPE, node, "W x X needs 2-D operands with matching inner dimension");
    size_t kdim = wv->shape.dim[1];
    mpc_shape_t ys = {2, {wv->shape.dim[0], xv->shape.dim[1]}};
    y = matrix_gate(cc, node, MPC__G_BILIN, x, w, &ys, MPC__L_WX, ys.dim[0], kdim, ys.dim[1]);
    if (y < 0)
      return y;
  } else {
    int av = cc->act[a], bv = cc->act[b];
    if (trans_a && (av = transpose_2d(cc, node, av)) < 0)
      return av;
    if (trans_b && (bv = transpose_2d(cc, node, bv)) < 0)
      return bv;
    int x = masked_s1(cc, av, nd->name);
    if (x < 0)
      return fail(cc, x, node, "operand cannot be masked");
    int z = masked_s1(cc, bv, nd->name);
    if (z < 0)
      return fail(cc, z, node, "operand cannot be masked");
    const mpc__val_t *xv = &cc->p->vals[x], *zv = &cc->p->vals[z];
    if (zv->shape.ndim != 2 || xv->shape.dim[xv->shape.ndim - 1] != zv->shape.dim[0])
      return fail(cc, TANDEM_ESHAPE, node, "inner dimensions differ");
    size_t kdim = zv->shape.dim[0];
    mpc_shape_t ys = {2, {xv->n / kdim, zv->shape.dim[1]}};
    y = matrix_gate(cc, node, MPC__G_TRIPLE, x, z, &ys, MPC__L_XW, ys.dim[0], kdim, ys.dim[1]);
    if (y < 0)
      return y;
    /* alpha on the product (public: a MulC; the truncation it needs first
     * costs a round unless alpha is an integer). */
    if (alpha != 1.0 && (y = mulc_val(cc, node, y, alpha)) < 0)
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
    return fail(cc, TANDEM_EUNSUPOP, node, "public constant convolution weights are not supported");
  int x = masked_s1(cc, cc->act[nd->in[0]], nd->name);
  if (x < 0)
    return fail(cc, x, node, "operand cannot be masked");
  /* Weights supplied or computed per query: both operands masked, a fresh
   * triple from the dealer (as for MatMul with two activations). */
  int w = wop == MPC_OP_PARAM ? weight_of(cc, wnode, 1.0) : masked_s1(cc, cc->act[wnode], nd->name);
  if (w < 0)
    return wop == MPC_OP_PARAM ? w : fail(cc, w, node, "weights cannot be masked");
  const mpc_shape_t xs = cc->p->vals[x].shape, ws = cc->p->vals[w].shape;
  mpc_shape_t ys = nd->shape;
  ys.dim[0] = xs.dim[0];
  int y = new_val(cc, &ys, MPC__V_SHARED, 2, node);
  if (y < 0)
    return y;
  mpc__gate_t *gt =
      new_gate(cc, wop == MPC_OP_PARAM ? MPC__G_BILIN : MPC__G_TRIPLE, x, w, y, nd->name);
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
    return fail(cc, TANDEM_ESHAPE, node, "convolution geometry is inconsistent");
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
  int a_static = cc->act[a] < 0 || !is_dynamic(&cc->p->vals[cc->act[a]]);
  int b_static = cc->act[b] < 0 || !is_dynamic(&cc->p->vals[cc->act[b]]);
  if (a_static && b_static)
    return fail(cc, TANDEM_EUNSUPOP, node, "both operands are static (fold them offline)");
  if (a_static) {
    if (nd->op == MPC_OP_SUB)
      return fail(cc, TANDEM_EUNSUPOP, node, "a static minuend is not supported");
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
      bscale = pow2(cc->p->f * (scale - sb));
    else if (sb > scale) {
      ascale = pow2(cc->p->f * (sb - scale));
      scale = sb;
    }
  }
  int out = new_val(cc, &shape, MPC__V_SHARED, scale, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = new_gate(cc, nd->op == MPC_OP_ADD ? MPC__G_ADD : MPC__G_SUB, av, bv,
                            out, nd->name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->ascale = ascale;
  g->bscale = bscale;
  int rc = broadcast_map(&shape, &cc->p->vals[bv].shape, &g->bmap);
  if (rc < 0)
    return fail(cc, rc, node, "operands do not broadcast");
  cc->act[node] = out;
  return 0;
}

static int lower_mulc(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int out = mulc_val(cc, node, cc->act[nd->in[0]], nd->attr.scalar);
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
  if (cc->act[a] < 0 || !is_dynamic(&cc->p->vals[cc->act[a]]))
    return fail(cc, TANDEM_EUNSUPOP, node, "the first operand must be an activation");
  if (bop == MPC_OP_CONST)
    return fail(cc, TANDEM_EUNSUPOP, node, "a public constant factor is not supported (use MulC)");
  int x = masked_s1(cc, cc->act[a], nd->name);
  if (x < 0)
    return fail(cc, x, node, "operand cannot be masked");
  int w = bop == MPC_OP_PARAM ? weight_of(cc, b, 1.0) : masked_s1(cc, cc->act[b], nd->name);
  if (w < 0)
    return bop == MPC_OP_PARAM ? w : fail(cc, w, node, "operand cannot be masked");
  mpc_shape_t xs = cc->p->vals[x].shape, ws = cc->p->vals[w].shape;
  size_t nx = cc->p->vals[x].n, nw = cc->p->vals[w].n;
  int y = matrix_gate(cc, node, bop == MPC_OP_PARAM ? MPC__G_BILIN : MPC__G_TRIPLE, x, w, &xs,
                      MPC__L_EW, nx, nw, 1);
  if (y < 0)
    return y;
  mpc__gate_t *gt = &cc->p->gates[cc->p->ngates - 1];
  int rc = broadcast_map(&xs, &ws, &gt->bmap);
  if (rc < 0)
    return fail(cc, rc, node, "the factor does not broadcast to the operand");
  cc->act[node] = y;
  return 0;
}

/* ReLU (with the truncation of a product fused in) of value v, for node.
 * In exact mode a product is first truncated by the exact truncation gate
 * (one round) and the ReLU then runs on the truncated value with s = 0,
 * which is exact: the fused gate would drop the carry c_s, and
 * ReLU(trunc(y)) = ReLU(trunc(y) + c_s) - [trunc(y) >= 0] c_s needs the
 * product of two shared bits, itself a round (gate_fss.c). */
static int relu_gate(cc_t *cc, int node, int v) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  if (cc->g->exact && cc->p->vals[v].scale == 2 && (v = truncate_val(cc, v, nd->name)) < 0)
    return v;
  const mpc__val_t *val = &cc->p->vals[v];
  unsigned shift = val->scale == 2 ? cc->p->f : 0;
  mpc_shape_t shape = val->shape;
  int out = new_val(cc, &shape, MPC__V_SHARED, val->scale == 2 ? 1 : val->scale, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = new_gate(cc, MPC__G_NONLIN, v, -1, out, nd->name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->relu = 1;
  g->shift = shift;
  g->bound = gate_bound(cc, v, shift, 0);
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
  int out = relu_gate(cc, node, cc->act[nd->in[0]]);
  if (out < 0)
    return out;
  cc->act[node] = out;
  return 0;
}

static int lower_layout(cc_t *cc, int node, int v, const mpc_shape_t *shape, uint32_t *map);

/* Function op (gate_smooth.c) of value v / 2^pre (v at scale 1 or 2;
 * MASKED: no round, SHARED: one), then the exact truncation of its result from the gate's fout
 * fractional bits to f (one round): the SHARED scale-1 value it returns. The
 * input's bound is the value's own (gate_bound, plus `extra` bits), at most
 * 2^lmax when lmax > 0; the output's exponent eout (|f| < 2^eout) comes from
 * the function on that bound, at most `ecap` when ecap > -64, and never above
 * the graph-wide range. Gates are labelled and values attributed to node. */
static int smooth_pre(cc_t *cc, int node, mpc_op_t op, int v, unsigned extra, unsigned lmax,
                      int ecap, unsigned pre) {
  const mpc__val_t *val = &cc->p->vals[v];
  unsigned f = cc->p->f, q = mpc__smooth_q(f);
  if (q == 0 || f > 24)
    return fail(cc, TANDEM_EUNSUPOP, node, "smooth functions need 10 to 24 fractional bits");
  if (val->scale < 1 || val->scale > 2)
    return fail(cc, TANDEM_EUNSUPOP, node, "operand at an unexpected scale");
  unsigned s = val->scale * f - q + pre;
  unsigned L = gate_bound(cc, v, s, extra);
  if (lmax > 0 && L > lmax)
    L = lmax;
  if (L < s + 4)
    L = s + 4;
  double inmax = ldexp(1.0, (int)L - 1 - (int)(val->scale * f + pre));
  double omax = 1.01 * mpc__smooth_mag(op, inmax) + ldexp(1.0, 10 - (int)f);
  int eout;
  (void)frexp(omax, &eout);
  int egraph = (int)cc->p->bound - 2 * (int)f - 1;
  if (eout > egraph)
    eout = egraph;
  if (ecap > -64 && ecap < eout)
    eout = ecap;
  unsigned fout = mpc__smooth_fout(op, eout, f);
  if (fout == 0)
    return fail(cc, TANDEM_EUNSUPOP, node, "output range too wide for the fixed-point format");
  mpc_shape_t shape = val->shape;
  int mid = new_val(cc, &shape, MPC__V_SHARED, 2, node);
  if (mid < 0)
    return mid;
  mpc__gate_t *g = new_gate(cc, MPC__G_SMOOTH, v, -1, mid, cc->g->nodes[node].name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->fn = (int)op;
  g->shift = s;
  g->bound = L;
  g->fout = fout;
  int out = new_val(cc, &shape, MPC__V_SHARED, 1, node);
  if (out < 0)
    return out;
  g = new_gate(cc, MPC__G_NONLIN, mid, -1, out, cc->g->nodes[node].name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->relu = 0;
  g->shift = fout - f;
  g->bound = fout + (unsigned)(eout < 1 ? 1 : eout) + 1;
  return out;
}

static int smooth_val(cc_t *cc, int node, mpc_op_t op, int v, unsigned extra, unsigned lmax,
                      int ecap) {
  return smooth_pre(cc, node, op, v, extra, lmax, ecap, 0);
}

/* GELU (either form) of v as two gates on one opening: its pieces below 6
 * (an output under 6 whatever the input's range, so the cubic terms keep 57
 * fractional bits; as one gate whose output shared GELU's range, a wide
 * input left them 15 and an error of 2.4e-2), truncated as smooth_val's,
 * plus the ramp (x from 6 on, 0 below: its one piece the identity, exact at
 * f bits, no truncation) when the input can reach 6. Same rounds as one
 * gate: the opening (none on a MASKED value), then the truncation. Both
 * gates read the same mask at the same bits, so the ramp evaluates the
 * pieces' DCF key (keyfrom) and costs the dealer nothing. */
static int gelu_val(cc_t *cc, int node, mpc_op_t op, int v) {
  const char *name = cc->g->nodes[node].name;
  mpc__val_t *val = &cc->p->vals[v];
  unsigned f = cc->p->f, q = mpc__smooth_q(f);
  if (q == 0 || f > 24 || val->scale < 1 || val->scale > 2)
    return smooth_val(cc, node, op, v, 0, 0, -64); /* its own errors */
  unsigned s = val->scale * f - q, L = gate_bound(cc, v, s, 0);
  if (L < s + 4)
    L = s + 4;
  int inner = op == MPC_OP_GELU ? (int)MPC__FN_GELU_IN : (int)MPC__FN_GELUT_IN;
  if (ldexp(1.0, (int)L - 1 - (int)(val->scale * f)) <= 6)
    return smooth_val(cc, node, (mpc_op_t)inner, v, 0, 0, -64); /* never reaches 6 */
  mpc_shape_t shape = val->shape;
  if (val->kind != MPC__V_MASKED) { /* one opening for both gates */
    int m = new_val(cc, &shape, MPC__V_MASKED, cc->p->vals[v].scale, cc->p->vals[v].node);
    if (m < 0)
      return m;
    if (new_gate(cc, MPC__G_OPEN, v, -1, m, name) == NULL)
      return TANDEM_ENOMEM;
    v = m;
  }
  size_t gin = cc->p->ngates; /* smooth_val's first gate: GELU's pieces */
  int in = smooth_val(cc, node, (mpc_op_t)inner, v, 0, 0, -64);
  int ramp = in < 0 ? in : new_val(cc, &shape, MPC__V_SHARED, 1, node);
  if (ramp < 0)
    return ramp;
  mpc__gate_t *g = new_gate(cc, MPC__G_SMOOTH, v, -1, ramp, name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->fn = (int)MPC__FN_RAMP6;
  g->shift = s;
  g->bound = L;
  g->fout = f;
  /* Same masked input and m as the pieces' gate: its key serves both. */
  const mpc__gate_t *gp = &cc->p->gates[gin];
  if (gp->kind == MPC__G_SMOOTH && gp->in[0] == v && gp->shift == s && gp->bound == L)
    g->keyfrom = gin + 1;
  int out = new_val(cc, &shape, MPC__V_SHARED, 1, node);
  if (out < 0)
    return out;
  if ((g = new_gate(cc, MPC__G_ADD, in, ramp, out, name)) == NULL)
    return TANDEM_ENOMEM;
  return out;
}

/* A smooth operator node: its output's exponent from the model owner's
 * analysis when there is one. */
static int lower_smooth(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  const mpc_graph_t *gr = cc->g;
  int ecap = gr->mag_log2 != NULL && gr->nmag == gr->nnodes ? gr->mag_log2[node] : -64;
  if (nd->op == MPC_OP_GELU || nd->op == MPC_OP_GELU_TANH) {
    int out = gelu_val(cc, node, nd->op, cc->act[nd->in[0]]);
    if (out < 0)
      return out;
    cc->act[node] = out;
    return 0;
  }
  int out = smooth_val(cc, node, mpc__smooth_node_fn(nd->op), cc->act[nd->in[0]], 0, 0, ecap);
  if (out < 0)
    return out;
  cc->act[node] = out;
  return 0;
}

/* Rows of at most this many candidates take their maximum in two rounds
 * from every pair's comparison (n (n - 1) / 2 DCFs a row) instead of the
 * tree's ceil(log2 n) rounds (n - 1 DCFs). */
#define MAXALL_N 32

/* The maximum over the last axis (n candidates, P rows) of v: a SHARED
 * [1 x P] value at v's scale. For 5 <= n <= MAXALL_N: the candidates
 * masked (one round; none when they are), every pair compared exactly with
 * no round (a MAXALL gate: the comparisons' keys on the masks' differences),
 * each candidate's count of those it beats opened and the one that beats
 * n - 1 selected (a MAXALL pick: one round). Otherwise by a comparison tree
 * (MAXLEVEL gates, one round a level). Values keep v's node (their bound is
 * v's). */
static int row_max(cc_t *cc, int node, int v, size_t n, size_t P) {
  int vnode = cc->p->vals[v].node;
  uint32_t *map = malloc((n * P + 1) * sizeof *map);
  if (map == NULL)
    return TANDEM_ENOMEM;
  for (size_t p = 0; p < P; p++)
    for (size_t j = 0; j < n; j++)
      map[j * P + p] = (uint32_t)(p * n + j);
  mpc_shape_t cs = {2, {n, P}};
  int cur = lower_layout(cc, vnode >= 0 ? vnode : node, v, &cs, map);
  if (cur < 0)
    return cur;
  cc->p->vals[cur].node = vnode;
  unsigned scale = cc->p->vals[v].scale;
  if (n >= 5 && n <= MAXALL_N) { /* two rounds where the tree takes 3 or more */
    int xm = cur;
    if (cc->p->vals[cur].kind != MPC__V_MASKED) {
      mpc_shape_t ms = cs;
      if ((xm = new_val(cc, &ms, MPC__V_MASKED, scale, vnode)) < 0)
        return xm;
      if (new_gate(cc, MPC__G_OPEN, cur, -1, xm, cc->g->nodes[node].name) == NULL)
        return TANDEM_ENOMEM;
    }
    int cnt = new_val(cc, &cs, MPC__V_SHARED, 0, -1);
    if (cnt < 0)
      return cnt;
    mpc__gate_t *g = new_gate(cc, MPC__G_MAXALL, xm, -1, cnt, cc->g->nodes[node].name);
    if (g == NULL)
      return TANDEM_ENOMEM;
    g->levelm = n;
    g->levelp = P;
    g->shift = 0; /* exact: the order must be strict for one count to reach n - 1 */
    g->bound = gate_bound(cc, xm, 0, 1);
    mpc_shape_t ls = {2, {1, P}};
    int out = new_val(cc, &ls, MPC__V_SHARED, scale, vnode);
    if (out < 0)
      return out;
    if ((g = new_gate(cc, MPC__G_MAXALL, cnt, xm, out, cc->g->nodes[node].name)) == NULL)
      return TANDEM_ENOMEM;
    g->levelm = n;
    g->levelp = P;
    g->pick = 1;
    g->shift = 0;
    unsigned lb = 2; /* |count - (n - 1)| < n <= 2^(lb - 1) */
    while (((size_t)1 << (lb - 1)) < n)
      lb++;
    g->bound = lb;
    return out;
  }
  for (size_t m = n; m > 1; m = (m + 1) / 2) {
    mpc_shape_t ls = {2, {(m + 1) / 2, P}};
    int out = new_val(cc, &ls, MPC__V_SHARED, scale, vnode);
    if (out < 0)
      return out;
    mpc__gate_t *g = new_gate(cc, MPC__G_MAXLEVEL, cur, -1, out, cc->g->nodes[node].name);
    if (g == NULL)
      return TANDEM_ENOMEM;
    g->levelm = m;
    g->levelp = P;
    g->shift = scale == 2 ? cc->p->f : 0;
    g->bound = gate_bound(cc, cur, g->shift, 1);
    cur = out;
  }
  return cur;
}

/* The sums over the last axis (n elements, P rows) of the scale-1 value v,
 * times the public c (at f bits): a local window-sum gate, SHARED [P x 1] at
 * scale 2, attributed to no node (its bound is the graph-wide one). */
static int row_sum(cc_t *cc, int node, int v, size_t n, size_t P, double c) {
  size_t N = n * P;
  mpc_shape_t ss = {2, {P, 1}};
  int sum = new_val(cc, &ss, MPC__V_SHARED, 2, -1);
  if (sum < 0)
    return sum;
  mpc__gate_t *g = new_gate(cc, MPC__G_AVGPOOL, v, -1, sum, cc->g->nodes[node].name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->wsize = n;
  g->win = malloc((N + 1) * sizeof *g->win);
  g->wcoef = malloc((P + 1) * sizeof *g->wcoef);
  if (g->win == NULL || g->wcoef == NULL)
    return TANDEM_ENOMEM;
  for (size_t i = 0; i < N; i++)
    g->win[i] = (int32_t)i;
  for (size_t p = 0; p < P; p++)
    if (kern_fix_encode(&g->wcoef[p], &c, 1, cc->p->f, NULL) != 0)
      return TANDEM_ERANGE;
  return sum;
}

/* The plain sums over the last axis (n elements, P rows) of v: a local
 * window-sum gate with the integer coefficient 1, SHARED [P x 1] at v's own
 * scale, attributed to no node. */
static int row_total(cc_t *cc, int node, int v, size_t n, size_t P) {
  int sum = row_sum(cc, node, v, n, P, 1.0);
  if (sum < 0)
    return sum;
  mpc__gate_t *g = &cc->p->gates[cc->p->ngates - 1];
  for (size_t p = 0; p < P; p++)
    g->wcoef[p] = 1;
  cc->p->vals[sum].scale = cc->p->vals[v].scale;
  return sum;
}

/* The rows of an elementwise product y = x (*) w[i / n] (two activations:
 * a triple), its gate's broadcast map. */
static int row_bcast(cc_t *cc, mpc__gate_t *g, size_t N, size_t n) {
  if ((g->bmap = malloc((N + 1) * sizeof *g->bmap)) == NULL)
    return TANDEM_ENOMEM;
  for (size_t i = 0; i < N; i++)
    g->bmap[i] = (uint32_t)(i / n);
  (void)cc;
  return 0;
}

/* The exponent e of |e V| < 2^e for the product of Softmax node sm's
 * exponentials (each at most 1, a little more for the approximation) with
 * V (graph node v): n of them summed. */
static int sm_ev_mag(const cc_t *cc, int sm, int v) {
  const mpc_shape_t *as = &cc->g->nodes[sm].shape;
  size_t n = as->ndim ? as->dim[as->ndim - 1] : 1;
  int k = 0;
  while (((size_t)1 << k) < n)
    k++;
  return cc->g->mag_log2[v] + k + 1;
}

/* The one reader of node when nothing else reads it, else -1. */
static int sole_reader(const mpc_graph_t *g, int node) {
  int user = -1;
  for (size_t j = (size_t)node + 1; j < g->nnodes; j++)
    for (int k = 0; k < 3; k++)
      if (g->nodes[j].in[k] == node) {
        if (user >= 0)
          return -1;
        user = (int)j;
      }
  return user;
}

/* 1 when Softmax node's one reader is a batched MatMul A V of two
 * activations with A = its output, whose output rows are A's (the same
 * batch dimensions), and the bound of e V (lower_bmm) known and in range. */
static int softmax_matmul_reader(const cc_t *cc, int node) {
  const mpc_graph_t *g = cc->g;
  int user = sole_reader(g, node);
  if (user < 0 || g->mag_log2 == NULL || g->nmag != g->nnodes)
    return 0;
  const mpc_node_t *u = &g->nodes[user];
  const mpc_shape_t *as = &g->nodes[node].shape, *os = &u->shape;
  int b = u->in[1];
  if (u->op != MPC_OP_MATMUL || u->in[0] != node || b < 0 || b == node ||
      g->nodes[b].op == MPC_OP_PARAM || g->nodes[b].op == MPC_OP_CONST ||
      g->nodes[b].shape.ndim <= 2 || as->ndim < 3 || os->ndim != as->ndim)
    return 0;
  for (unsigned d = 0; d + 1 < as->ndim; d++)
    if (as->dim[d] != os->dim[d])
      return 0;
  return sm_ev_mag(cc, node, b) + 2 * (int)cc->p->f + 2 <= 63;
}

/* Softmax along the last axis (n <= 256): m = the row's maximum (a
 * comparison tree), d = x - m <= 0, e = exp(d) (a smooth gate: x <= 0 is
 * its domain), s = the row's sum of e (in [1, n]: the maximum's term is 1;
 * a local window sum), r = 1/s on the reciprocal's domain [1/4, 64] (s / k
 * for k = ceil(n / 64), then r k, one truncation round more), and y = e r
 * (a product of two activations: one round to mask both). Rounds:
 * ceil(log2 n) + 2 + 2 + 1 (+1 when n > 64), the result SHARED at scale 2f
 * (its truncation fused into the consumer's gate). */
static int lower_softmax(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int v = cc->act[nd->in[0]];
  const mpc__val_t *val = &cc->p->vals[v];
  mpc_shape_t xs = val->shape;
  size_t N = val->n, n = xs.ndim ? xs.dim[xs.ndim - 1] : 1, P = N / n;
  unsigned f = cc->p->f;
  if (n > 256 || N > UINT32_MAX)
    return fail(cc, TANDEM_EUNSUPOP, node, "Softmax over more than 256 elements is not supported");
  int m = n > 1 ? row_max(cc, node, v, n, P) : v; /* one element: d = 0 */
  if (m < 0)
    return m;
  int d = new_val(cc, &xs, MPC__V_SHARED, cc->p->vals[v].scale, cc->p->vals[v].node);
  if (d < 0)
    return d;
  mpc__gate_t *gs = new_gate(cc, MPC__G_SUB, v, m, d, nd->name);
  if (gs == NULL || (n > 1 && (gs->bmap = malloc(N * sizeof *gs->bmap)) == NULL))
    return TANDEM_ENOMEM;
  for (size_t i = 0; n > 1 && i < N; i++)
    gs->bmap[i] = (uint32_t)(i / n);
  int e = smooth_val(cc, node, MPC_OP_EXP, d, 1, 0, 1);
  if (e < 0)
    return e;
  size_t k = (n + 63) / 64;
  int sum = row_sum(cc, node, e, n, P, 1.0 / (double)k);
  if (sum < 0)
    return sum;
  /* s / k < 1.01 * 64 + slack: 8 bits above the scale, one of margin. */
  int r = smooth_val(cc, node, MPC_OP_RECIP, sum, 0, 2 * f + 8, 3);
  if (r < 0)
    return r;
  if (k > 1 && (r = mulc_val(cc, node, r, 1.0 / (double)k)) < 0)
    return r;
  int x = masked_s1(cc, e, nd->name), w = x < 0 ? x : masked_s1(cc, r, nd->name);
  if (w < 0)
    return fail(cc, w, node, "operand cannot be masked");
  if (softmax_matmul_reader(cc, node)) {
    cc->rowf[node] = w;
    cc->act[node] = x;
    return 0;
  }
  int y = matrix_gate(cc, node, MPC__G_TRIPLE, x, w, &xs, MPC__L_EW, N, P, 1);
  if (y < 0)
    return y;
  int rc = row_bcast(cc, &cc->p->gates[cc->p->ngates - 1], N, n);
  if (rc < 0)
    return rc;
  cc->act[node] = y;
  return 0;
}

/* Layer normalization along the last axis, (x - m) / sqrt(v + eps) with m
 * and v the row's mean and variance (eps: in1, the owner's or a public
 * constant, optional). It is the same for d = x - m and for any public
 * multiple of d, which saves two rounds when the row's length n is a power
 * of two 2^k (the models' widths): with S the row's sum (a local window sum,
 * no truncation), n x - S = n d exactly, at x's scale, and one exact
 * truncation by k (+ f at scale 2f) gives d at scale f (no truncation of x
 * first, none of the mean); d masked (that round and its opening), d^2 by a
 * triple on d with itself (no round) and its row sums n v at 2f, and the
 * smooth 1 / sqrt(.) reads (n v + n eps) / 2^k at its own low bits (no
 * truncation of d^2: the division by n is its shift); its output truncated
 * and opened (two rounds): 5 rounds in all, then the product of d and that
 * (no round), SHARED at 2f. Other lengths take d = x - m at 2f after
 * truncating x and m, and truncate d^2 before the window sum: 7 rounds.
 * When the one reader is a MatMul by the owner's weight, the product is
 * left to it (rowf, lower_gemm): act[node] is then d masked. */
/* The exponent e of |d W| < 2^e for the MatMul mm after LNORM node ln, d its
 * centred value (|d| < 2^(x's + 1)): the MatMul's bound is the LayerNorm's
 * (at least 2^(its e - 1)) times W's gain, so W's gain is under 2^(mm's e -
 * ln's e + 1). */
static int ln_dw_mag(const cc_t *cc, int ln, int mm) {
  const int8_t *e = cc->g->mag_log2;
  return e[cc->g->nodes[ln].in[0]] + 1 + e[mm] - e[ln] + 1;
}

/* A MatMul node that takes the product by a row factor of the LayerNorm or
 * Softmax it reads (lower_lnorm, lower_softmax): y = d W or e V (SHARED at
 * 2f, |y| < 2^mag), truncated and masked, times the masked factor of its
 * row, rm (a triple): (d rs) W = rs (d W) and (e r) V = r (e V), so the
 * product by the factor and its truncation and opening (two rounds) before
 * the MatMul are gone: y's truncation and opening overlap the factor's.
 * Returns the product (SHARED at 2f) or a negative error. */
static int row_rescale(cc_t *cc, int node, int y, int mag, int rm, size_t ncols) {
  mpc__val_t *yv = &cc->p->vals[y];
  yv->magset = 1;
  yv->mag = mag;
  yv->node = -1;
  int ym = masked_s1(cc, y, cc->g->nodes[node].name);
  if (ym < 0)
    return ym;
  mpc_shape_t ys = cc->p->vals[ym].shape;
  size_t N = cc->p->vals[ym].n, P = cc->p->vals[rm].n;
  if (ncols == 0 || N != P * ncols)
    return fail(cc, TANDEM_ESHAPE, node, "rows differ from the LayerNorm's");
  int out = matrix_gate(cc, node, MPC__G_TRIPLE, ym, rm, &ys, MPC__L_EW, N, P, 1);
  if (out < 0)
    return out;
  int rc = row_bcast(cc, &cc->p->gates[cc->p->ngates - 1], N, ncols);
  return rc < 0 ? rc : out;
}

/* 1 when LNORM node's one reader is a MatMul by the owner's 2-D weight
 * [n, M] on its last axis (and nothing else reads it), with the magnitudes
 * that bound d W (lower_gemm) known. */
static int ln_matmul_reader(const cc_t *cc, int node, size_t n) {
  const mpc_graph_t *g = cc->g;
  if (g->mag_log2 == NULL || g->nmag != g->nnodes || g->nodes[node].in[0] < 0)
    return 0;
  int user = sole_reader(g, node);
  if (user < 0)
    return 0;
  const mpc_node_t *u = &g->nodes[user];
  int b = u->in[1];
  return u->op == MPC_OP_MATMUL && u->in[0] == node && b >= 0 && b != node && g->nodes[b].op == MPC_OP_PARAM &&
         g->nodes[b].shape.ndim == 2 && g->nodes[b].shape.dim[0] == n &&
         ln_dw_mag(cc, node, user) + 2 * (int)cc->p->f + 2 <= 63;
}

static int lower_lnorm(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int x = cc->act[nd->in[0]];
  if (x < 0)
    return TANDEM_EUNSUPOP;
  unsigned f = cc->p->f;
  mpc_shape_t xs = cc->p->vals[x].shape;
  size_t N = cc->p->vals[x].n, n = xs.ndim ? xs.dim[xs.ndim - 1] : 1, P = n ? N / n : 0;
  if (N > INT32_MAX || n == 0)
    return fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  unsigned k = 0;
  while (((size_t)1 << k) < n)
    k++;
  unsigned xscale = cc->p->vals[x].scale;
  int npow2 = ((size_t)1 << k) == n && k <= 16 && (xscale == 1 || xscale == 2);
  int dm, var, rc;
  mpc__gate_t *g;
  if (npow2) {
    int sum = row_total(cc, node, x, n, P);
    int z = sum < 0 ? sum : new_val(cc, &xs, MPC__V_SHARED, xscale, cc->p->vals[x].node);
    if (z < 0)
      return z;
    if ((g = new_gate(cc, MPC__G_SUB, x, sum, z, nd->name)) == NULL)
      return TANDEM_ENOMEM;
    g->ascale = n;
    if ((rc = row_bcast(cc, g, N, n)) < 0)
      return rc;
    /* |n x - S| <= 2 n max|x|: k + 1 bits above x's bound. */
    int d = trunc_by(cc, z, (xscale - 1) * f + k, k + 1, nd->name);
    if (d < 0)
      return d;
    if ((dm = masked_s1(cc, d, nd->name)) < 0)
      return fail(cc, dm, node, "operand cannot be masked");
    int sq = matrix_gate(cc, node, MPC__G_TRIPLE, dm, dm, &xs, MPC__L_EW, N, N, 1);
    if (sq < 0)
      return sq;
    cc->p->vals[sq].node = -1;
    if ((var = row_total(cc, node, sq, n, P)) < 0)
      return var;
  } else {
    int v = scale1(cc, x, nd->name);
    if (v < 0)
      return v;
    int mean = row_sum(cc, node, v, n, P, 1.0 / (double)n);
    if (mean < 0)
      return mean;
    int d = new_val(cc, &xs, MPC__V_SHARED, 2, -1);
    if (d < 0)
      return d;
    if ((g = new_gate(cc, MPC__G_SUB, v, mean, d, nd->name)) == NULL)
      return TANDEM_ENOMEM;
    g->ascale = pow2(f);
    if ((rc = row_bcast(cc, g, N, n)) < 0)
      return rc;
    if ((dm = masked_s1(cc, d, nd->name)) < 0)
      return fail(cc, dm, node, "operand cannot be masked");
    int sq = matrix_gate(cc, node, MPC__G_TRIPLE, dm, dm, &xs, MPC__L_EW, N, N, 1);
    if (sq < 0)
      return sq;
    cc->p->vals[sq].node = -1;
    int sq1 = scale1(cc, sq, nd->name);
    if (sq1 < 0)
      return sq1;
    if ((var = row_sum(cc, node, sq1, n, P, 1.0 / (double)n)) < 0)
      return var;
  }
  if (nd->in[1] >= 0) {
    if ((var = add_bias(cc, node, var, nd->in[1], npow2 ? (double)n : 1.0, 0)) < 0)
      return var;
    cc->p->vals[var].node = -1;
  }
  /* n v < 2^(L + k) where v < 2^L: k bits more, read k bits higher. */
  int rs = smooth_pre(cc, node, MPC_OP_RSQRT, var, npow2 ? k : 0, 0, 4, npow2 ? k : 0);
  if (rs < 0)
    return rs;
  int rm = masked_s1(cc, rs, nd->name);
  if (rm < 0)
    return fail(cc, rm, node, "operand cannot be masked");
  if (ln_matmul_reader(cc, node, n)) {
    cc->rowf[node] = rm;
    cc->act[node] = dm;
    return 0;
  }
  int y = matrix_gate(cc, node, MPC__G_TRIPLE, dm, rm, &xs, MPC__L_EW, N, P, 1);
  if (y < 0)
    return y;
  if ((rc = row_bcast(cc, &cc->p->gates[cc->p->ngates - 1], N, n)) < 0)
    return rc;
  cc->act[node] = y;
  return 0;
}

/* A layout gate over v (and, for a join, v1 >= 0 after it; same scale):
 * MASKED if every operand is, so that no round is spent re-masking. */
static int layout_gate(cc_t *cc, int node, int v, int v1, const mpc_shape_t *shape,
                       uint32_t *map) {
  const mpc__val_t *val = &cc->p->vals[v];
  int masked = val->kind == MPC__V_MASKED && (v1 < 0 || cc->p->vals[v1].kind == MPC__V_MASKED);
  int out = new_val(cc, shape, masked ? MPC__V_MASKED : MPC__V_SHARED, val->scale, node);
  if (out < 0) {
    free(map);
    return out;
  }
  mpc__gate_t *g = new_gate(cc, MPC__G_LAYOUT, v, v1, out, cc->g->nodes[node].name);
  if (g == NULL) {
    free(map);
    return TANDEM_ENOMEM;
  }
  g->map = map;
  return out;
}

static int lower_layout(cc_t *cc, int node, int v, const mpc_shape_t *shape, uint32_t *map) {
  return layout_gate(cc, node, v, -1, shape, map);
}

/* Select (Slice, Pad, Resize, Expand, Gather): one index per output element,
 * from the plan's input shape (its batch). */
static int lower_select(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int v = cc->act[nd->in[0]];
  const mpc_shape_t is = cc->p->vals[v].shape;
  const double *table = nd->in[1] >= 0 ? cc->g->nodes[nd->in[1]].cdata : NULL;
  mpc_shape_t os = nd->shape;
  const mpc_attr_t *at = &nd->attr;
  if (at->sel_batch)
    os.dim[0] = is.dim[0]; /* the identity on axis 0: the batch follows */
  size_t n = mpc_shape_numel(&os);
  if (n == 0 || n >= UINT32_MAX || cc->p->vals[v].n >= UINT32_MAX)
    return fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  if (table != NULL)
    for (size_t j = 0; j < os.dim[at->axis]; j++)
      if (table[j] >= (double)is.dim[at->axis])
        return fail(cc, TANDEM_ESHAPE, node, "an index is beyond the input at this batch size");
  uint32_t *map = malloc(n * sizeof *map);
  if (map == NULL)
    return TANDEM_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    long src = mpc__select_src(at, table, &is, &os, i);
    map[i] = src < 0 ? MPC__MAP_ZERO : (uint32_t)src;
  }
  int out = lower_layout(cc, node, v, &os, map);
  if (out < 0)
    return out;
  cc->act[node] = out;
  return 0;
}

/* The taps of a LinearMap: per output element, wsize input indices (-1:
 * none) and their coefficients. */
typedef struct {
  size_t npos, wsize;
  int32_t *idx;
  double *coef;
} taps_t;

static void taps_free(taps_t *t) {
  free(t->idx);
  free(t->coef);
}

/* The taps of y = M x along axis ax of x (shape xs): M's non-zero entries. */
static int linmap_taps(const mpc_shape_t *xs, int ax, const double *M, size_t m, size_t n,
                       taps_t *t) {
  size_t outer = 1, inner = 1, K = 1;
  for (int d = 0; d < ax; d++)
    outer *= xs->dim[d];
  for (unsigned d = (unsigned)ax + 1; d < xs->ndim; d++)
    inner *= xs->dim[d];
  for (size_t r = 0; r < m; r++) {
    size_t nz = 0;
    for (size_t i = 0; i < n; i++)
      nz += M[r * n + i] != 0.0;
    K = nz > K ? nz : K;
  }
  t->npos = outer * m * inner;
  t->wsize = K;
  t->idx = malloc((t->npos * K + 1) * sizeof *t->idx);
  t->coef = malloc((t->npos * K + 1) * sizeof *t->coef);
  if (t->idx == NULL || t->coef == NULL)
    return TANDEM_ENOMEM;
  for (size_t o = 0; o < outer; o++)
    for (size_t r = 0; r < m; r++)
      for (size_t s = 0; s < inner; s++) {
        size_t q = ((o * m + r) * inner + s) * K, j = 0;
        for (size_t i = 0; i < n; i++)
          if (M[r * n + i] != 0.0) {
            t->idx[q + j] = (int32_t)((o * n + i) * inner + s);
            t->coef[q + j++] = M[r * n + i];
          }
        for (; j < K; j++) {
          t->idx[q + j] = -1;
          t->coef[q + j] = 0;
        }
      }
  return 0;
}

/* t's taps read through the taps of gate g (whose output t reads): each
 * pair of entries becomes one, the coefficients multiplied. */
static int taps_compose(const mpc__gate_t *g, unsigned f, taps_t *t) {
  size_t K0 = g->wsize, K = t->wsize * K0;
  taps_t c = {t->npos, K, malloc((t->npos * K + 1) * sizeof(int32_t)),
              malloc((t->npos * K + 1) * sizeof(double))};
  if (c.idx == NULL || c.coef == NULL) {
    taps_free(&c);
    return TANDEM_ENOMEM;
  }
  for (size_t q = 0; q < t->npos; q++)
    for (size_t j = 0; j < t->wsize; j++) {
      int32_t e = t->idx[q * t->wsize + j];
      for (size_t j0 = 0; j0 < K0; j0++) {
        size_t at = q * K + j * K0 + j0;
        double d = 0;
        if (e >= 0 && g->win[(size_t)e * K0 + j0] >= 0 &&
            kern_fix_decode(&d, &g->wtap[(size_t)e * K0 + j0], 1, f) != 0)
          d = 0;
        c.idx[at] = e >= 0 ? g->win[(size_t)e * K0 + j0] : -1;
        c.coef[at] = d * t->coef[q * t->wsize + j];
      }
    }
  taps_free(t);
  *t = c;
  return 0;
}

/* The gate that computes value v if it is a LinearMap's (a window gate with
 * coefficients per entry), else -1. */
static long linmap_producer(const cc_t *cc, int v) {
  for (size_t i = cc->p->ngates; i-- > 0;)
    if (cc->p->gates[i].out == v)
      return cc->p->gates[i].kind == MPC__G_AVGPOOL && cc->p->gates[i].wtap != NULL ? (long)i
                                                                                    : -1;
  return -1;
}

/* LinearMap (linear and cubic Resize): a window gate whose entries are the
 * matrix's non-zero entries, each with its public coefficient: local, SHARED
 * at scale 2. A LinearMap of another's result (a 2-D resize is one per axis)
 * reads that one's input through the composed taps instead, so that the
 * pair needs no truncation between them: no round. */
static int lower_linmap(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  const mpc_node_t *mn = &cc->g->nodes[nd->in[1]];
  int v = cc->act[nd->in[0]];
  long pg = linmap_producer(cc, v);
  if (pg < 0 && (v = scale1(cc, v, nd->name)) < 0)
    return v;
  const mpc_shape_t xs = cc->p->vals[v].shape;
  if (cc->p->vals[v].n > INT32_MAX)
    return fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  taps_t t = {0, 0, NULL, NULL};
  int rc = linmap_taps(&xs, nd->attr.axis, mn->cdata, mn->shape.dim[0], mn->shape.dim[1], &t);
  if (rc == 0 && pg >= 0 && t.wsize * cc->p->gates[pg].wsize <= 64) {
    rc = taps_compose(&cc->p->gates[pg], cc->p->f, &t);
    v = cc->p->gates[pg].in[0];
  } else if (rc == 0 && pg >= 0 && (v = scale1(cc, v, nd->name)) < 0) {
    rc = v;
  }
  mpc_shape_t os = xs;
  os.dim[nd->attr.axis] = mn->shape.dim[0];
  int out = rc == 0 ? new_val(cc, &os, MPC__V_SHARED, 2, node) : rc;
  mpc__gate_t *g = out >= 0 ? new_gate(cc, MPC__G_AVGPOOL, v, -1, out, nd->name) : NULL;
  if (g == NULL) {
    taps_free(&t);
    return out < 0 ? out : TANDEM_ENOMEM;
  }
  g->wsize = t.wsize;
  g->win = t.idx;
  g->wtap = malloc((t.npos * t.wsize + 1) * sizeof *g->wtap);
  if (g->wtap == NULL) {
    free(t.coef);
    return TANDEM_ENOMEM;
  }
  rc = kern_fix_encode(g->wtap, t.coef, t.npos * t.wsize, cc->p->f, NULL);
  free(t.coef);
  if (rc != 0)
    return fail(cc, TANDEM_ERANGE, node, "a coefficient is outside the fixed-point range");
  cc->act[node] = out;
  return 0;
}

/* v at scale 2 (times 2^f, exact and local) if it is at scale 1. */
static int raise_scale(cc_t *cc, int node, int v) {
  if (cc->p->vals[v].scale == 2)
    return v;
  mpc_shape_t shape = cc->p->vals[v].shape;
  int out = new_val(cc, &shape, MPC__V_SHARED, 2, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = new_gate(cc, MPC__G_MULC, v, -1, out, cc->g->nodes[node].name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->cmul = pow2(cc->p->f);
  return out;
}

/* Concat of two activations: one layout gate reading both (two masked
 * operands stay masked; a product's scale is matched, never truncated). */
static int lower_concat(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int a = cc->act[nd->in[0]], b = cc->act[nd->in[1]];
  if (a < 0 || b < 0 || !is_dynamic(&cc->p->vals[a]) || !is_dynamic(&cc->p->vals[b]))
    return fail(cc, TANDEM_EUNSUPOP, node, "both operands must be activations");
  if (cc->p->vals[a].scale != cc->p->vals[b].scale &&
      ((a = raise_scale(cc, node, a)) < 0 || (b = raise_scale(cc, node, b)) < 0))
    return a < 0 ? a : b;
  const mpc_shape_t as = cc->p->vals[a].shape, bs = cc->p->vals[b].shape;
  unsigned ax = (unsigned)nd->attr.axis;
  int ok = as.ndim == bs.ndim && ax < as.ndim;
  for (unsigned d = 0; ok && d < as.ndim; d++)
    ok = d == ax || as.dim[d] == bs.dim[d];
  if (!ok)
    return fail(cc, TANDEM_ESHAPE, node, "operands do not join at this batch size");
  mpc_shape_t os = as;
  os.dim[ax] += bs.dim[ax];
  size_t n = mpc_shape_numel(&os), outer = 1;
  if (n == 0 || n >= UINT32_MAX)
    return fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  for (unsigned d = 0; d < ax; d++)
    outer *= os.dim[d];
  size_t na = cc->p->vals[a].n, ia = na / outer, ib = cc->p->vals[b].n / outer;
  uint32_t *map = malloc(n * sizeof *map);
  if (map == NULL)
    return TANDEM_ENOMEM;
  size_t pos = 0;
  for (size_t o = 0; o < outer; o++) {
    for (size_t j = 0; j < ia; j++)
      map[pos++] = (uint32_t)(o * ia + j);
    for (size_t j = 0; j < ib; j++)
      map[pos++] = (uint32_t)(na + o * ib + j);
  }
  int out = layout_gate(cc, node, a, b, &os, map);
  if (out < 0)
    return out;
  cc->act[node] = out;
  return 0;
}

static int lower_transpose(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int v = cc->act[nd->in[0]];
  const mpc_shape_t *is = &cc->p->vals[v].shape;
  mpc_shape_t os = nd->shape;
  os.dim[0] = nd->attr.perm[0] == 0 ? is->dim[0] : os.dim[0];
  for (unsigned d = 0; d < is->ndim; d++)
    os.dim[d] = is->dim[nd->attr.perm[d]];
  size_t n = cc->p->vals[v].n;
  if (n > UINT32_MAX)
    return fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  uint32_t *map = malloc((n ? n : 1) * sizeof *map);
  if (map == NULL)
    return TANDEM_ENOMEM;
  size_t istride[MPC_MAX_DIMS];
  size_t s = 1;
  for (int d = (int)is->ndim - 1; d >= 0; d--) {
    istride[d] = s;
    s *= is->dim[d];
  }
  for (size_t i = 0; i < n; i++) {
    size_t rem = i, src = 0;
    for (int d = (int)os.ndim - 1; d >= 0; d--) {
      size_t coord = rem % os.dim[d];
      rem /= os.dim[d];
      src += coord * istride[nd->attr.perm[d]];
    }
    map[i] = (uint32_t)src;
  }
  int out = lower_layout(cc, node, v, &os, map);
  if (out < 0)
    return out;
  cc->act[node] = out;
  return 0;
}

static void pool_geometry(const mpc_node_t *nd, const mpc_shape_t *is, size_t *sh,
                          size_t *sw, size_t *dh, size_t *dw, size_t *oh, size_t *ow) {
  *sh = nd->attr.strides[0] ? nd->attr.strides[0] : 1;
  *sw = nd->attr.strides[1] ? nd->attr.strides[1] : 1;
  *dh = nd->attr.dilations[0] ? nd->attr.dilations[0] : 1;
  *dw = nd->attr.dilations[1] ? nd->attr.dilations[1] : 1;
  size_t eh = (nd->attr.kh - 1) * *dh + 1, ew = (nd->attr.kw - 1) * *dw + 1;
  *oh = (is->dim[2] + nd->attr.pads[0] + nd->attr.pads[2] - eh) / *sh + 1;
  *ow = (is->dim[3] + nd->attr.pads[1] + nd->attr.pads[3] - ew) / *sw + 1;
}

/* The input index of window element (ki, kj) of output (b, c, oy, ox), or -1
 * in the padding. */
static long window_src(const mpc_node_t *nd, const mpc_shape_t *is, size_t b, size_t c,
                       size_t oy, size_t ox, size_t ki, size_t kj, size_t sh, size_t sw,
                       size_t dh, size_t dw) {
  long iy = (long)(oy * sh + ki * dh) - (long)nd->attr.pads[0];
  long ix = (long)(ox * sw + kj * dw) - (long)nd->attr.pads[1];
  if (iy < 0 || ix < 0 || iy >= (long)is->dim[2] || ix >= (long)is->dim[3])
    return -1;
  return (long)(((b * is->dim[1] + c) * is->dim[2] + (size_t)iy) * is->dim[3] + (size_t)ix);
}

static int lower_maxpool(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int v = cc->act[nd->in[0]];
  const mpc_shape_t is = cc->p->vals[v].shape;
  size_t sh, sw, dh, dw, oh, ow;
  pool_geometry(nd, &is, &sh, &sw, &dh, &dw, &oh, &ow);
  size_t K = nd->attr.kh * nd->attr.kw;
  size_t P = is.dim[0] * is.dim[1] * oh * ow;
  if (K * P > UINT32_MAX)
    return fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  size_t nmap = K * P;
  uint32_t *map = malloc((nmap ? nmap : 1) * sizeof *map);
  if (map == NULL)
    return TANDEM_ENOMEM;
  size_t pos = 0;
  for (size_t b = 0; b < is.dim[0]; b++)
    for (size_t c = 0; c < is.dim[1]; c++)
      for (size_t oy = 0; oy < oh; oy++)
        for (size_t ox = 0; ox < ow; ox++, pos++) {
          long first = -1;
          for (size_t j = 0; j < K && first < 0; j++)
            first = window_src(nd, &is, b, c, oy, ox, j / nd->attr.kw, j % nd->attr.kw, sh, sw, dh, dw);
          if (first < 0) {
            free(map);
            return fail(cc, TANDEM_ESHAPE, node, "a pooling window lies entirely in the padding");
          }
          for (size_t j = 0; j < K; j++) {
            long s = window_src(nd, &is, b, c, oy, ox, j / nd->attr.kw, j % nd->attr.kw, sh, sw, dh, dw);
            /* Padding repeats a real element of the window: max is unchanged. */
            map[j * P + pos] = (uint32_t)(s < 0 ? first : s);
          }
        }
  /* With the ReLU moved after the pool (lower_relu), the tree compares the
   * ReLU's input, which may lie far below the ReLU's output: every value up
   * to the ReLU is bounded as that input node (gate_bound reads val->node). */
  int bnode = cc->relu_later[nd->in[0]] ? cc->g->nodes[nd->in[0]].in[0] : node;
  mpc_shape_t cs = {2, {K, P}};
  int cur = lower_layout(cc, node, v, &cs, map);
  if (cur < 0)
    return cur;
  cc->p->vals[cur].node = bnode;
  unsigned scale = cc->p->vals[v].scale;
  for (size_t m = K; m > 1; m = (m + 1) / 2) {
    mpc_shape_t ls = {2, {(m + 1) / 2, P}};
    int out = new_val(cc, &ls, MPC__V_SHARED, scale, bnode);
    if (out < 0)
      return out;
    mpc__gate_t *g = new_gate(cc, MPC__G_MAXLEVEL, cur, -1, out, nd->name);
    if (g == NULL)
      return TANDEM_ENOMEM;
    g->levelm = m;
    g->levelp = P;
    /* Untruncated products are compared on their bits above f (gate_fss.c:
     * the level's maximum is then at most one ulp at scale f short); in
     * exact mode on all their bits (f more DCF bits, the same rounds), so
     * the maximum is exact and its truncation, after the tree, too. */
    g->shift = scale == 2 && !cc->g->exact ? cc->p->f : 0;
    g->bound = gate_bound(cc, cur, g->shift, 1);
    cur = out;
  }
  mpc_shape_t os = {4, {is.dim[0], is.dim[1], oh, ow}};
  int out = lower_layout(cc, node, cur, &os, NULL);
  if (out < 0)
    return out;
  cc->p->vals[out].node = bnode;
  if (cc->relu_later[nd->in[0]] && (out = relu_gate(cc, nd->in[0], out)) < 0)
    return out;
  cc->act[node] = out;
  return 0;
}

static int lower_avgpool(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int v = scale1(cc, cc->act[nd->in[0]], nd->name);
  if (v < 0)
    return v;
  const mpc_shape_t is = cc->p->vals[v].shape;
  size_t sh, sw, dh, dw, oh, ow;
  pool_geometry(nd, &is, &sh, &sw, &dh, &dw, &oh, &ow);
  size_t K = nd->attr.kh * nd->attr.kw;
  size_t P = is.dim[0] * is.dim[1] * oh * ow;
  mpc_shape_t os = {4, {is.dim[0], is.dim[1], oh, ow}};
  int out = new_val(cc, &os, MPC__V_SHARED, 2, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = new_gate(cc, MPC__G_AVGPOOL, v, -1, out, nd->name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->wsize = K;
  size_t nwin = K * P;
  g->win = malloc((nwin ? nwin : 1) * sizeof *g->win);
  g->wcoef = malloc((P ? P : 1) * sizeof *g->wcoef);
  if (g->win == NULL || g->wcoef == NULL)
    return TANDEM_ENOMEM;
  size_t pos = 0;
  for (size_t b = 0; b < is.dim[0]; b++)
    for (size_t c = 0; c < is.dim[1]; c++)
      for (size_t oy = 0; oy < oh; oy++)
        for (size_t ox = 0; ox < ow; ox++, pos++) {
          size_t count = 0;
          for (size_t j = 0; j < K; j++) {
            long s = window_src(nd, &is, b, c, oy, ox, j / nd->attr.kw, j % nd->attr.kw, sh, sw, dh, dw);
            g->win[pos * K + j] = (int32_t)s;
            count += s >= 0;
          }
          double div = nd->attr.count_include_pad ? (double)K : (double)count;
          if (div == 0)
            return fail(cc, TANDEM_ESHAPE, node, "a pooling window lies entirely in the padding");
          double inv = 1.0 / div;
          if (kern_fix_encode(&g->wcoef[pos], &inv, 1, cc->p->f, NULL) != 0)
            return TANDEM_ERANGE;
        }
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
      return fail(cc, TANDEM_EUNSUPOP, node, "token ids may only be multiplied by the "
                  "owner's table [V, H] (a Gather by ids)");
    /* Token ids' one-hot rows at scale 0 (integers): their product with the
     * table is at scale 1, with no truncation to spend a round on. */
    int v = new_val(cc, &s, MPC__V_MASKED, nd->ids ? 0 : 1, node);
    if (v < 0)
      return v;
    if (new_gate(cc, MPC__G_INPUT, -1, -1, v, nd->name) == NULL)
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
    return lower_concat(cc, node);
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
    if (new_gate(cc, MPC__G_OUTPUT, v, -1, -1, nd->name) == NULL)
      return TANDEM_ENOMEM;
    cc->act[node] = v;
    return push_index(&p->outputs, &p->noutputs, v);
  }
  if (in < 0 || cc->act[in] < 0 || !is_dynamic(&p->vals[cc->act[in]]))
    return fail(cc, TANDEM_EUNSUPOP, node, "operand must be an activation, not a parameter or constant");
  if (mpc_op_is_smooth(nd->op))
    return lower_smooth(cc, node);
  switch (nd->op) {
  case MPC_OP_MULC:
    return lower_mulc(cc, node);
  case MPC_OP_RELU:
    return lower_relu(cc, node);
  case MPC_OP_MAXPOOL:
    return lower_maxpool(cc, node);
  case MPC_OP_AVGPOOL:
    return lower_avgpool(cc, node);
  case MPC_OP_RESHAPE: {
    mpc_shape_t s = nd->shape;
    const mpc__val_t *iv = &p->vals[cc->act[in]];
    size_t rest = 1;
    for (unsigned d = 1; d < s.ndim; d++)
      rest *= s.dim[d];
    if (s.ndim > 0 && rest > 0 && iv->n % rest == 0)
      s.dim[0] = iv->n / rest; /* the batch dimension follows the plan's batch */
    if (mpc_shape_numel(&s) != iv->n)
      return fail(cc, TANDEM_ESHAPE, node, "reshape changes the element count");
    int out = lower_layout(cc, node, cc->act[in], &s, NULL);
    if (out < 0)
      return out;
    cc->act[node] = out;
    return 0;
  }
  case MPC_OP_TRANSPOSE:
    return lower_transpose(cc, node);
  case MPC_OP_SELECT:
    return lower_select(cc, node);
  case MPC_OP_LINMAP:
    return lower_linmap(cc, node);
  case MPC_OP_SOFTMAX:
    return lower_softmax(cc, node);
  case MPC_OP_LNORM:
    return lower_lnorm(cc, node);
  case MPC_OP_OUTPUT: {
    int v = cc->act[in];
    if (new_gate(cc, MPC__G_OUTPUT, v, -1, -1, nd->name) == NULL)
      return TANDEM_ENOMEM;
    cc->act[node] = v;
    return push_index(&p->outputs, &p->noutputs, v);
  }
  default:
    return fail(cc, TANDEM_EUNSUPOP, node, "operator not supported by the protocol");
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
        fail(&cc, rc, (int)i, tandem_strerror(rc));
      goto fail;
    }
  }
  if (p->noutputs == 0) {
    rc = fail(&cc, TANDEM_EINVAL, -1, "the graph needs at least one output");
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
