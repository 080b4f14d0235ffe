/* plan_rows.c - the plan compiler's operators along a row (plan.c does the
 * rest and walks the graph): the smooth functions on their FSS gates
 * (gate_smooth.c) with the exact truncation after them, GELU's pieces and
 * ramp on one opening, Softmax (the row's maximum by pairs or by a tree,
 * exp, the sum, the reciprocal) and LayerNormalization (the centred value,
 * the inverse square root), and the product by a row's factor that a MatMul
 * reading a Softmax or a LayerNorm takes after it. Each states its rounds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_int.h"

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
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                        "smooth functions need 10 to 24 fractional bits");
  if (val->scale < 1 || val->scale > 2)
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node, "operand at an unexpected scale");
  unsigned s = val->scale * f - q + pre;
  unsigned L = mpc__pc_gate_bound(cc, v, s, extra);
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
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                        "output range too wide for the fixed-point format");
  mpc_shape_t shape = val->shape;
  int mid = mpc__pc_new_val(cc, &shape, MPC__V_SHARED, 2, node);
  if (mid < 0)
    return mid;
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_SMOOTH, v, -1, mid, cc->g->nodes[node].name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->fn = (int)op;
  g->shift = s;
  g->bound = L;
  g->fout = fout;
  int out = mpc__pc_new_val(cc, &shape, MPC__V_SHARED, 1, node);
  if (out < 0)
    return out;
  g = mpc__pc_new_gate(cc, MPC__G_NONLIN, mid, -1, out, cc->g->nodes[node].name);
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
  unsigned s = val->scale * f - q, L = mpc__pc_gate_bound(cc, v, s, 0);
  if (L < s + 4)
    L = s + 4;
  int inner = op == MPC_OP_GELU ? (int)MPC__FN_GELU_IN : (int)MPC__FN_GELUT_IN;
  if (ldexp(1.0, (int)L - 1 - (int)(val->scale * f)) <= 6)
    return smooth_val(cc, node, (mpc_op_t)inner, v, 0, 0, -64); /* never reaches 6 */
  mpc_shape_t shape = val->shape;
  if ((v = mpc__pc_open(cc, v, name)) < 0) /* one opening for both gates */
    return v;
  size_t gin = cc->p->ngates; /* smooth_val's first gate: GELU's pieces */
  int in = smooth_val(cc, node, (mpc_op_t)inner, v, 0, 0, -64);
  int ramp = in < 0 ? in : mpc__pc_new_val(cc, &shape, MPC__V_SHARED, 1, node);
  if (ramp < 0)
    return ramp;
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_SMOOTH, v, -1, ramp, name);
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
  int out = mpc__pc_new_val(cc, &shape, MPC__V_SHARED, 1, node);
  if (out < 0)
    return out;
  if ((g = mpc__pc_new_gate(cc, MPC__G_ADD, in, ramp, out, name)) == NULL)
    return TANDEM_ENOMEM;
  return out;
}

/* A smooth operator node: its output's exponent from the model owner's
 * analysis when there is one. */
int mpc__pc_lower_smooth(cc_t *cc, int node) {
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

/* A MAXALL gate over n candidates in each of P rows: its comparisons
 * (in1 < 0) or its selection (in1 the masked candidates), exact (shift 0),
 * on bound bits. Returns out or a negative error. */
static int maxall_gate(cc_t *cc, int node, int in0, int in1, int out, size_t n, size_t P,
                       unsigned bound) {
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_MAXALL, in0, in1, out, cc->g->nodes[node].name);
  if (g == NULL)
    return TANDEM_ENOMEM;
  g->levelm = n;
  g->levelp = P;
  g->pick = in1 >= 0;
  g->shift = 0;
  g->bound = bound;
  return out;
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
  int cur = mpc__pc_lower_layout(cc, vnode >= 0 ? vnode : node, v, &cs, map);
  if (cur < 0)
    return cur;
  cc->p->vals[cur].node = vnode;
  unsigned scale = cc->p->vals[v].scale;
  if (n >= 5 && n <= MAXALL_N) { /* two rounds where the tree takes 3 or more */
    int xm = mpc__pc_open(cc, cur, cc->g->nodes[node].name);
    int cnt = xm < 0 ? xm : mpc__pc_new_val(cc, &cs, MPC__V_SHARED, 0, -1);
    /* Exact comparisons (the order must be strict for one count to reach
     * n - 1); then |count - (n - 1)| < n <= 2^(bound - 1). */
    if (cnt >= 0)
      cnt = maxall_gate(cc, node, xm, -1, cnt, n, P, mpc__pc_gate_bound(cc, xm, 0, 1));
    mpc_shape_t ls = {2, {1, P}};
    int out = cnt < 0 ? cnt : mpc__pc_new_val(cc, &ls, MPC__V_SHARED, scale, vnode);
    return out < 0 ? out : maxall_gate(cc, node, cnt, xm, out, n, P, mpc__pc_log2_ceil(n) + 1);
  }
  for (size_t m = n; m > 1; m = (m + 1) / 2) {
    mpc_shape_t ls = {2, {(m + 1) / 2, P}};
    int out = mpc__pc_new_val(cc, &ls, MPC__V_SHARED, scale, vnode);
    if (out < 0)
      return out;
    mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_MAXLEVEL, cur, -1, out, cc->g->nodes[node].name);
    if (g == NULL)
      return TANDEM_ENOMEM;
    g->levelm = m;
    g->levelp = P;
    g->shift = scale == 2 ? cc->p->f : 0;
    g->bound = mpc__pc_gate_bound(cc, cur, g->shift, 1);
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
  int sum = mpc__pc_new_val(cc, &ss, MPC__V_SHARED, 2, -1);
  if (sum < 0)
    return sum;
  mpc__gate_t *g = mpc__pc_new_gate(cc, MPC__G_AVGPOOL, v, -1, sum, cc->g->nodes[node].name);
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
int mpc__pc_sm_ev_mag(const cc_t *cc, int sm, int v) {
  const mpc_shape_t *as = &cc->g->nodes[sm].shape;
  size_t n = as->ndim ? as->dim[as->ndim - 1] : 1;
  return cc->g->mag_log2[v] + (int)mpc__pc_log2_ceil(n) + 1;
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
  return mpc__pc_sm_ev_mag(cc, node, b) + 2 * (int)cc->p->f + 2 <= 63;
}

/* Softmax along the last axis (n <= 256): m = the row's maximum (a
 * comparison tree), d = x - m <= 0, e = exp(d) (a smooth gate: x <= 0 is
 * its domain), s = the row's sum of e (in [1, n]: the maximum's term is 1;
 * a local window sum), r = 1/s on the reciprocal's domain [1/4, 64] (s / k
 * for k = ceil(n / 64), then r k, one truncation round more), and y = e r
 * (a product of two activations: one round to mask both). Rounds:
 * ceil(log2 n) + 2 + 2 + 1 (+1 when n > 64), the result SHARED at scale 2f
 * (its truncation fused into the consumer's gate). */
int mpc__pc_lower_softmax(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int v = cc->act[nd->in[0]];
  const mpc__val_t *val = &cc->p->vals[v];
  mpc_shape_t xs = val->shape;
  size_t N = val->n, n = xs.ndim ? xs.dim[xs.ndim - 1] : 1, P = N / n;
  unsigned f = cc->p->f;
  if (n > 256 || N > UINT32_MAX)
    return mpc__pc_fail(cc, TANDEM_EUNSUPOP, node,
                        "Softmax over more than 256 elements is not supported");
  int m = n > 1 ? row_max(cc, node, v, n, P) : v; /* one element: d = 0 */
  if (m < 0)
    return m;
  int d = mpc__pc_new_val(cc, &xs, MPC__V_SHARED, cc->p->vals[v].scale, cc->p->vals[v].node);
  if (d < 0)
    return d;
  mpc__gate_t *gs = mpc__pc_new_gate(cc, MPC__G_SUB, v, m, d, nd->name);
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
  if (k > 1 && (r = mpc__pc_mulc_val(cc, node, r, 1.0 / (double)k)) < 0)
    return r;
  int x = mpc__pc_masked_s1(cc, e, nd->name), w = x < 0 ? x : mpc__pc_masked_s1(cc, r, nd->name);
  if (w < 0)
    return mpc__pc_fail(cc, w, node, "operand cannot be masked");
  if (softmax_matmul_reader(cc, node)) {
    cc->rowf[node] = w;
    cc->act[node] = x;
    return 0;
  }
  int y = mpc__pc_matrix_gate(cc, node, MPC__G_TRIPLE, x, w, &xs, MPC__L_EW, N, P, 1);
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
int mpc__pc_ln_dw_mag(const cc_t *cc, int ln, int mm) {
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
int mpc__pc_row_rescale(cc_t *cc, int node, int y, int mag, int rm, size_t ncols) {
  mpc__val_t *yv = &cc->p->vals[y];
  yv->magset = 1;
  yv->mag = mag;
  yv->node = -1;
  int ym = mpc__pc_masked_s1(cc, y, cc->g->nodes[node].name);
  if (ym < 0)
    return ym;
  mpc_shape_t ys = cc->p->vals[ym].shape;
  size_t N = cc->p->vals[ym].n, P = cc->p->vals[rm].n;
  if (ncols == 0 || N != P * ncols)
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "rows differ from the LayerNorm's");
  int out = mpc__pc_matrix_gate(cc, node, MPC__G_TRIPLE, ym, rm, &ys, MPC__L_EW, N, P, 1);
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
  return u->op == MPC_OP_MATMUL && u->in[0] == node && b >= 0 && b != node &&
         g->nodes[b].op == MPC_OP_PARAM && g->nodes[b].shape.ndim == 2 &&
         g->nodes[b].shape.dim[0] == n &&
         mpc__pc_ln_dw_mag(cc, node, user) + 2 * (int)cc->p->f + 2 <= 63;
}

int mpc__pc_lower_lnorm(cc_t *cc, int node) {
  const mpc_node_t *nd = &cc->g->nodes[node];
  int x = cc->act[nd->in[0]];
  if (x < 0)
    return TANDEM_EUNSUPOP;
  unsigned f = cc->p->f;
  mpc_shape_t xs = cc->p->vals[x].shape;
  size_t N = cc->p->vals[x].n, n = xs.ndim ? xs.dim[xs.ndim - 1] : 1, P = n ? N / n : 0;
  if (N > INT32_MAX || n == 0)
    return mpc__pc_fail(cc, TANDEM_ESHAPE, node, "tensor too large");
  unsigned k = mpc__pc_log2_ceil(n);
  unsigned xscale = cc->p->vals[x].scale;
  int npow2 = ((size_t)1 << k) == n && k <= 16 && (xscale == 1 || xscale == 2);
  int dm, var, rc;
  mpc__gate_t *g;
  if (npow2) {
    int sum = row_total(cc, node, x, n, P);
    int z = sum < 0 ? sum : mpc__pc_new_val(cc, &xs, MPC__V_SHARED, xscale, cc->p->vals[x].node);
    if (z < 0)
      return z;
    if ((g = mpc__pc_new_gate(cc, MPC__G_SUB, x, sum, z, nd->name)) == NULL)
      return TANDEM_ENOMEM;
    g->ascale = n;
    if ((rc = row_bcast(cc, g, N, n)) < 0)
      return rc;
    /* |n x - S| <= 2 n max|x|: k + 1 bits above x's bound. */
    int d = mpc__pc_trunc_by(cc, z, (xscale - 1) * f + k, k + 1, nd->name);
    if (d < 0)
      return d;
    if ((dm = mpc__pc_masked_s1(cc, d, nd->name)) < 0)
      return mpc__pc_fail(cc, dm, node, "operand cannot be masked");
    int sq = mpc__pc_matrix_gate(cc, node, MPC__G_TRIPLE, dm, dm, &xs, MPC__L_EW, N, N, 1);
    if (sq < 0)
      return sq;
    cc->p->vals[sq].node = -1;
    if ((var = row_total(cc, node, sq, n, P)) < 0)
      return var;
  } else {
    int v = mpc__pc_scale1(cc, x, nd->name);
    if (v < 0)
      return v;
    int mean = row_sum(cc, node, v, n, P, 1.0 / (double)n);
    if (mean < 0)
      return mean;
    int d = mpc__pc_new_val(cc, &xs, MPC__V_SHARED, 2, -1);
    if (d < 0)
      return d;
    if ((g = mpc__pc_new_gate(cc, MPC__G_SUB, v, mean, d, nd->name)) == NULL)
      return TANDEM_ENOMEM;
    g->ascale = mpc__pc_pow2(f);
    if ((rc = row_bcast(cc, g, N, n)) < 0)
      return rc;
    if ((dm = mpc__pc_masked_s1(cc, d, nd->name)) < 0)
      return mpc__pc_fail(cc, dm, node, "operand cannot be masked");
    int sq = mpc__pc_matrix_gate(cc, node, MPC__G_TRIPLE, dm, dm, &xs, MPC__L_EW, N, N, 1);
    if (sq < 0)
      return sq;
    cc->p->vals[sq].node = -1;
    int sq1 = mpc__pc_scale1(cc, sq, nd->name);
    if (sq1 < 0)
      return sq1;
    if ((var = row_sum(cc, node, sq1, n, P, 1.0 / (double)n)) < 0)
      return var;
  }
  if (nd->in[1] >= 0) {
    if ((var = mpc__pc_add_bias(cc, node, var, nd->in[1], npow2 ? (double)n : 1.0, 0)) < 0)
      return var;
    cc->p->vals[var].node = -1;
  }
  /* n v < 2^(L + k) where v < 2^L: k bits more, read k bits higher. */
  int rs = smooth_pre(cc, node, MPC_OP_RSQRT, var, npow2 ? k : 0, 0, 4, npow2 ? k : 0);
  if (rs < 0)
    return rs;
  int rm = mpc__pc_masked_s1(cc, rs, nd->name);
  if (rm < 0)
    return mpc__pc_fail(cc, rm, node, "operand cannot be masked");
  if (ln_matmul_reader(cc, node, n)) {
    cc->rowf[node] = rm;
    cc->act[node] = dm;
    return 0;
  }
  int y = mpc__pc_matrix_gate(cc, node, MPC__G_TRIPLE, dm, rm, &xs, MPC__L_EW, N, P, 1);
  if (y < 0)
    return y;
  if ((rc = row_bcast(cc, &cc->p->gates[cc->p->ngates - 1], N, n)) < 0)
    return rc;
  cc->act[node] = y;
  return 0;
}

