/* plan_layout.c - the plan compiler's layout operators and pools (plan.c
 * does the rest and walks the graph): the local gates that move, pick or
 * join elements (Reshape and its kin, Gather and Slice, Concat, Transpose,
 * and the public linear maps Resize and its kin lower to), and MaxPool's
 * comparison tree and AveragePool. Layout costs no round; a MaxPool one
 * round per level of its tree, an AveragePool none.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_int.h"

/* A layout gate over v (and, for a join, v1 >= 0 after it; same scale):
 * MASKED if every operand is, so that no round is spent re-masking. */
static int layout_gate(cc_t *cc, int node, int v, int v1, const mpc_shape_t *shape,
                       uint32_t *map) {
  const mpc__val_t *val = &cc->p->vals[v];
  int masked = val->kind == MPC__V_MASKED && (v1 < 0 || cc->p->vals[v1].kind == MPC__V_MASKED);
  int out = mpc__pc_new_val(cc, shape, masked ? MPC__V_MASKED : MPC__V_SHARED, val->scale, node);
  if (out < 0) {
    free(map);
    return out;
  }
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_LAYOUT, v, v1, out, cc->g->nodes[node].name);
  if (g == NULL) {
    free(map);
    return TANDEM_ENOMEM;
  }
  g->map = map;
  return out;
}

int mpc__pc_lower_layout(cc_t *cc, int node, int v, const mpc_shape_t *shape, uint32_t *map) {
  return layout_gate(cc, node, v, -1, shape, map);
}

/* Select (Slice, Pad, Resize, Expand, Gather): one index per output element,
 * from the plan's input shape (its batch). */
int mpc__pc_lower_select(cc_t *cc, int node) {
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
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  if (table != NULL)
    for (size_t j = 0; j < os.dim[at->axis]; j++)
      if (table[j] >= (double)is.dim[at->axis])
        return mpc__pc_fail(cc, TANDEM_ESHAPE, node,
                            "an index is beyond the input at this batch size");
  uint32_t *map = malloc(n * sizeof *map);
  if (map == NULL)
    return TANDEM_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    long src = mpc__select_src(at, table, &is, &os, i);
    map[i] = src < 0 ? MPC__MAP_ZERO : (uint32_t)src;
  }
  int out = mpc__pc_lower_layout(cc, node, v, &os, map);
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
int mpc__pc_lower_linmap(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  const mpc_node_t *mn = &cc->g->nodes[nd->in[1]];
  int v = cc->act[nd->in[0]];
  long pg = linmap_producer(cc, v);
  if (pg < 0 && (v = mpc__pc_scale1(cc, v, nd->name)) < 0)
    return v;
  const mpc_shape_t xs = cc->p->vals[v].shape;
  if (cc->p->vals[v].n > INT32_MAX)
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  taps_t t = {0, 0, NULL, NULL};
  int rc = linmap_taps(&xs, nd->attr.axis, mn->cdata, mn->shape.dim[0], mn->shape.dim[1], &t);
  if (rc == 0 && pg >= 0 && t.wsize * cc->p->gates[pg].wsize <= 64) {
    rc = taps_compose(&cc->p->gates[pg], cc->p->f, &t);
    v = cc->p->gates[pg].in[0];
  } else if (rc == 0 && pg >= 0 && (v = mpc__pc_scale1(cc, v, nd->name)) < 0) {
    rc = v;
  }
  mpc_shape_t os = xs;
  os.dim[nd->attr.axis] = mn->shape.dim[0];
  int out = rc == 0 ? mpc__pc_new_val(cc, &os, MPC__V_SHARED, 2, node) : rc;
  mpc__gate_t *g = out >= 0 ? mpc__pc_new_gate(cc, MPC__G_AVGPOOL, v, -1, out, nd->name) : NULL;
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
    return mpc__pc_fail(cc, TANDEM_ERANGE, node, "a coefficient is outside the fixed-point range");
  cc->act[node] = out;
  return 0;
}

/* v at scale 2 (times 2^f, exact and local) if it is at scale 1. */
static int raise_scale(cc_t *cc, int node, int v) {
  if (cc->p->vals[v].scale == 2)
    return v;
  mpc_shape_t shape = cc->p->vals[v].shape;
  int out = mpc__pc_new_val(cc, &shape, MPC__V_SHARED, 2, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_MULC, v, -1, out, cc->g->nodes[node].name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->cmul = mpc__pc_pow2(cc->p->f);
  return out;
}

/* Concat of two activations: one layout gate reading both (two masked
 * operands stay masked; a product's scale is matched, never truncated). */
int mpc__pc_lower_concat(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int a = cc->act[nd->in[0]], b = cc->act[nd->in[1]];
  if (a < 0 || b < 0 || !mpc__pc_is_dynamic(&cc->p->vals[a]) ||
      !mpc__pc_is_dynamic(&cc->p->vals[b]))
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node, "both operands must be activations");
  if (cc->p->vals[a].scale != cc->p->vals[b].scale &&
      ((a = raise_scale(cc, node, a)) < 0 || (b = raise_scale(cc, node, b)) < 0))
    return a < 0 ? a : b;
  const mpc_shape_t as = cc->p->vals[a].shape, bs = cc->p->vals[b].shape;
  unsigned ax = (unsigned)nd->attr.axis;
  int ok = as.ndim == bs.ndim && ax < as.ndim;
  for (unsigned d = 0; ok && d < as.ndim; d++)
    ok = d == ax || as.dim[d] == bs.dim[d];
  if (!ok)
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "operands do not join at this batch size");
  mpc_shape_t os = as;
  os.dim[ax] += bs.dim[ax];
  size_t n = mpc_shape_numel(&os), outer = 1;
  if (n == 0 || n >= UINT32_MAX)
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "tensor too large");
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

int mpc__pc_lower_transpose(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int v = cc->act[nd->in[0]];
  const mpc_shape_t *is = &cc->p->vals[v].shape;
  mpc_shape_t os = nd->shape;
  os.dim[0] = nd->attr.perm[0] == 0 ? is->dim[0] : os.dim[0];
  for (unsigned d = 0; d < is->ndim; d++)
    os.dim[d] = is->dim[nd->attr.perm[d]];
  size_t n = cc->p->vals[v].n;
  if (n > UINT32_MAX)
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "tensor too large");
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
  int out = mpc__pc_lower_layout(cc, node, v, &os, map);
  if (out < 0)
    return out;
  cc->act[node] = out;
  return 0;
}

/* A pooling node's geometry on input shape is: strides, dilations, output
 * height and width, window elements K and output positions P. */
typedef struct {
  size_t sh, sw, dh, dw, oh, ow, K, P;
} pool_t;

static pool_t pool_geometry(const mpc_node_t *nd, const mpc_shape_t *is) {
  pool_t g;
  g.sh = nd->attr.strides[0] ? nd->attr.strides[0] : 1;
  g.sw = nd->attr.strides[1] ? nd->attr.strides[1] : 1;
  g.dh = nd->attr.dilations[0] ? nd->attr.dilations[0] : 1;
  g.dw = nd->attr.dilations[1] ? nd->attr.dilations[1] : 1;
  size_t eh = (nd->attr.kh - 1) * g.dh + 1, ew = (nd->attr.kw - 1) * g.dw + 1;
  g.oh = (is->dim[2] + nd->attr.pads[0] + nd->attr.pads[2] - eh) / g.sh + 1;
  g.ow = (is->dim[3] + nd->attr.pads[1] + nd->attr.pads[3] - ew) / g.sw + 1;
  g.K = nd->attr.kh * nd->attr.kw;
  g.P = is->dim[0] * is->dim[1] * g.oh * g.ow;
  return g;
}

/* The input index of window element j (row-major in kh x kw) of output
 * position pos (b, c, oy, ox in row-major order), or -1 in the padding. */
static long window_src(const mpc_node_t *nd, const mpc_shape_t *is, const pool_t *g, size_t pos,
                       size_t j) {
  size_t ox = pos % g->ow, oy = pos / g->ow % g->oh, bc = pos / (g->ow * g->oh);
  long iy = (long)(oy * g->sh + j / nd->attr.kw * g->dh) - (long)nd->attr.pads[0];
  long ix = (long)(ox * g->sw + j % nd->attr.kw * g->dw) - (long)nd->attr.pads[1];
  if (iy < 0 || ix < 0 || iy >= (long)is->dim[2] || ix >= (long)is->dim[3])
    return -1;
  return (long)((bc * is->dim[2] + (size_t)iy) * is->dim[3] + (size_t)ix);
}

int mpc__pc_lower_maxpool(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int v = cc->act[nd->in[0]];
  const mpc_shape_t is = cc->p->vals[v].shape;
  const pool_t pg = pool_geometry(nd, &is);
  const size_t K = pg.K, P = pg.P;
  /* Map entries are input indices, UINT32_MAX the zero marker. */
  if (K * P > UINT32_MAX || cc->p->vals[v].n >= MPC__MAP_ZERO)
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  size_t nmap = K * P;
  uint32_t *map = malloc((nmap ? nmap : 1) * sizeof *map);
  if (map == NULL)
    return TANDEM_ENOMEM;
  for (size_t pos = 0; pos < P; pos++) {
    long first = -1;
    for (size_t j = 0; j < K && first < 0; j++)
      first = window_src(nd, &is, &pg, pos, j);
    if (first < 0) {
      free(map);
      return mpc__pc_fail(cc, TANDEM_ESHAPE, node,
                          "a pooling window lies entirely in the padding");
    }
    for (size_t j = 0; j < K; j++) {
      long s = window_src(nd, &is, &pg, pos, j);
      /* Padding repeats a real element of the window: max is unchanged. */
      map[j * P + pos] = (uint32_t)(s < 0 ? first : s);
    }
  }
  /* With the ReLU moved after the pool (lower_relu), the tree compares the
   * ReLU's input, which may lie far below the ReLU's output: every value up
   * to the ReLU is bounded as that input node (gate_bound reads val->node). */
  int bnode = cc->relu_later[nd->in[0]] ? cc->g->nodes[nd->in[0]].in[0] : node;
  mpc_shape_t cs = {2, {K, P}};
  int cur = mpc__pc_lower_layout(cc, node, v, &cs, map);
  if (cur < 0)
    return cur;
  cc->p->vals[cur].node = bnode;
  unsigned scale = cc->p->vals[v].scale;
  for (size_t m = K; m > 1; m = (m + 1) / 2) {
    mpc_shape_t ls = {2, {(m + 1) / 2, P}};
    int out = mpc__pc_new_val(cc, &ls, MPC__V_SHARED, scale, bnode);
    if (out < 0)
      return out;
    mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_MAXLEVEL, cur, -1, out, nd->name);
    if (g == NULL)
      return TANDEM_ENOMEM;
    g->levelm = m;
    g->levelp = P;
    /* Untruncated products are compared on their bits above f (gate_fss.c:
     * the level's maximum is then at most one ulp at scale f short); in
     * exact mode on all their bits (f more DCF bits, the same rounds), so
     * the maximum is exact and its truncation, after the tree, too. */
    g->shift = scale == 2 && !cc->g->exact ? cc->p->f : 0;
    g->bound = mpc__pc_gate_bound(cc, cur, g->shift, 1);
    cur = out;
  }
  mpc_shape_t os = {4, {is.dim[0], is.dim[1], pg.oh, pg.ow}};
  int out = mpc__pc_lower_layout(cc, node, cur, &os, NULL);
  if (out < 0)
    return out;
  cc->p->vals[out].node = bnode;
  if (cc->relu_later[nd->in[0]] && (out = mpc__pc_relu_gate(cc, nd->in[0], out)) < 0)
    return out;
  cc->act[node] = out;
  return 0;
}

int mpc__pc_lower_avgpool(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int v = mpc__pc_scale1(cc, cc->act[nd->in[0]], nd->name);
  if (v < 0)
    return v;
  const mpc_shape_t is = cc->p->vals[v].shape;
  const pool_t pg = pool_geometry(nd, &is);
  const size_t K = pg.K, P = pg.P;
  /* The window table holds input indices, -1 for the padding. */
  if (K * P > INT32_MAX || cc->p->vals[v].n > INT32_MAX)
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  mpc_shape_t os = {4, {is.dim[0], is.dim[1], pg.oh, pg.ow}};
  int out = mpc__pc_new_val(cc, &os, MPC__V_SHARED, 2, node);
  if (out < 0)
    return out;
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_AVGPOOL, v, -1, out, nd->name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->wsize = K;
  size_t nwin = K * P;
  g->win = malloc((nwin ? nwin : 1) * sizeof *g->win);
  g->wcoef = malloc((P ? P : 1) * sizeof *g->wcoef);
  if (g->win == NULL || g->wcoef == NULL)
    return TANDEM_ENOMEM;
  for (size_t pos = 0; pos < P; pos++) {
    size_t count = 0;
    for (size_t j = 0; j < K; j++) {
      long s = window_src(nd, &is, &pg, pos, j);
      g->win[pos * K + j] = (int32_t)s;
      count += s >= 0;
    }
    double div = nd->attr.count_include_pad ? (double)K : (double)count;
    if (div == 0)
      return mpc__pc_fail(cc, TANDEM_ESHAPE, node,
                          "a pooling window lies entirely in the padding");
    double inv = 1.0 / div;
    if (kern_fix_encode(&g->wcoef[pos], &inv, 1, cc->p->f, NULL) != 0)
      return TANDEM_ERANGE;
  }
  cc->act[node] = out;
  return 0;
}
