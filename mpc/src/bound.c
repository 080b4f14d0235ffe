/* bound.c - the largest client input a model can take without overflow,
 * and the per-node bounds that size each comparison gate.
 *
 * The protocol computes in fixed point: a value v at scale 2 (a product not
 * yet truncated) must satisfy |v| 2^(2f) < 2^L (L = the graph's bound_bits)
 * for the comparison gates to be right, and nothing of this is visible to the
 * client, who sees only its input and the result. The model owner, who knows
 * the weights, computes here a bound B such that every input with all
 * |x| <= B keeps every value of the graph below 2^(L - 2f - 1) in magnitude
 * (the strictest of the constraints, so it holds at either scale, with one
 * bit left for the differences a max pool compares); the bound is
 * published with the public graph (mpc_graph_t.input_bound) and the client
 * refuses a larger input with TANDEM_ERANGE instead of getting garbage.
 *
 * How: the worst case of every value is what the float evaluator computes on
 * a "magnitude graph": the same operators with every weight, constant and
 * scalar replaced by its absolute value, subtraction by addition, and every
 * input element set to B. Each operator is then monotone in B and its result
 * bounds the magnitude of the real one (|sum w x| <= sum |w| |x|, ReLU and max
 * of magnitudes bound theirs, an average is at most the largest term; a
 * smooth function or a softmax gives its own bound, attr.magnitude). The
 * largest B is found by bisection on that monotone test. This reveals, by
 * design, one number about the weights: their worst-case gain.
 *
 * The per-node exponents the owner publishes (mpc_weights_bounds) come from
 * a tighter, sign-aware analysis of the same kind, the sign-part graph
 * below: for the input interval (the declared least input up to B) it
 * bounds each value's positive and negative parts apart, so that a layer
 * after a ReLU, or on non-negative inputs, is bounded by the larger of its
 * weights' positive and negative sums rather than by their total.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

/* Token ids (an INPUT marked ids) are a one-hot row per id: each element in
 * [0, 1] whatever the bound B of the other inputs, and one 1 per row. The
 * product of such a row with the owner's table [V, H] is one row of the
 * table, so its bound is the largest element of each column, not the
 * column's sum that interval arithmetic on [0, 1]^V would give (V times
 * larger for a vocabulary of V). A table read only by such products is
 * therefore replaced, in the bound graphs below, by one row of its
 * columns' maxima (of magnitudes, or of the positive and negative parts)
 * and zeros: with every one-hot element at 1 the product gives exactly
 * that row. */
static int is_ids_input(const mpc_graph_t *g, int v) {
  return v >= 0 && (size_t)v < g->nnodes && g->nodes[v].op == MPC_OP_INPUT && g->nodes[v].ids;
}

/* 1 if PARAM p is read only as the table of products by token ids. */
static int ids_table_only(const mpc_graph_t *g, size_t p) {
  size_t uses = 0;
  for (size_t i = p + 1; i < g->nnodes; i++)
    for (int k = 0; k < 3; k++) {
      if (g->nodes[i].in[k] != (int)p)
        continue;
      if (g->nodes[i].op != MPC_OP_MATMUL || k != 1 || !is_ids_input(g, g->nodes[i].in[0]) ||
          g->nodes[p].shape.ndim != 2)
        return 0;
      uses++;
    }
  return uses > 0;
}

/* Table src [V, H] into dst (same shape) as one row of its columns' largest
 * fn(x) values, then zeros. */
static void ids_table_rows(const mpc_shape_t *s, const double *src, double *dst,
                           double (*fn)(double)) {
  size_t V = s->dim[0], H = s->dim[1];
  memset(dst, 0, V * H * sizeof *dst);
  for (size_t v = 0; v < V; v++)
    for (size_t h = 0; h < H; h++)
      dst[h] = fmax(dst[h], fn(src[v * H + h]));
}

static double part_pos(double x) { return fmax(x, 0); }
static double part_neg(double x) { return fmax(-x, 0); }

typedef struct {
  mpc_graph_t g;      /* the magnitude graph: the model's nodes, then an OUTPUT for each */
  mpc_weights_t w;    /* |W| */
  double *consts;     /* |constants|, owned */
  mpc_ftensor_t *in;  /* one per INPUT, filled with B (token ids: 1) */
  unsigned char *ids; /* per INPUT: token ids */
  size_t nin, nout;
  mpc_ftensor_t *out;
} mag_t;

static void mag_close(mag_t *m) {
  for (size_t i = 0; m->in != NULL && i < m->nin; i++)
    mpc_ftensor_close(&m->in[i]);
  free(m->in);
  free(m->ids);
  free(m->out);
  mpc_weights_close(&m->w);
  mpc_graph_close(&m->g);
  free(m->consts);
}

static int mag_open(mag_t *m, const mpc_graph_t *g, const mpc_weights_t *w) {
  memset(m, 0, sizeof *m);
  mpc_graph_init(&m->g);
  m->g.frac_bits = g->frac_bits;
  m->g.bound_bits = g->bound_bits;
  size_t nconst = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    if (g->nodes[i].op == MPC_OP_CONST)
      nconst += mpc_shape_numel(&g->nodes[i].shape);
  m->consts = calloc(nconst + 1, sizeof *m->consts);
  if (m->consts == NULL)
    return TANDEM_ENOMEM;
  size_t cpos = 0;
  int rc;
  for (size_t i = 0; i < g->nnodes; i++) {
    mpc_node_t nd = g->nodes[i];
    if (nd.op == MPC_OP_SUB)
      nd.op = MPC_OP_ADD;
    nd.attr.alpha = fabs(nd.attr.alpha);
    nd.attr.beta = fabs(nd.attr.beta);
    nd.attr.scalar = fabs(nd.attr.scalar);
    /* sup |f| over |x| <= the input's bound (a softmax: 1) */
    nd.attr.magnitude =
        mpc_op_is_smooth(nd.op) || nd.op == MPC_OP_SOFTMAX || nd.op == MPC_OP_LNORM;
    if (nd.op == MPC_OP_CONST) {
      size_t n = mpc_shape_numel(&nd.shape);
      for (size_t j = 0; j < n; j++)
        m->consts[cpos + j] = fabs(nd.cdata[j]);
      nd.cdata = m->consts + cpos;
      cpos += n;
    }
    if ((rc = mpc_graph_add(&m->g, &nd, NULL, 0)) < 0)
      return rc;
    m->nin += nd.op == MPC_OP_INPUT;
  }
  /* Every computed value becomes an output, so the evaluator returns it. */
  for (size_t i = 0; i < g->nnodes; i++) {
    mpc_op_t op = g->nodes[i].op;
    if (op == MPC_OP_INPUT || op == MPC_OP_PARAM || op == MPC_OP_CONST || op == MPC_OP_OUTPUT)
      continue;
    if ((rc = mpc_graph_op(&m->g, MPC_OP_OUTPUT, (int)i, -1, -1, NULL, "bound")) < 0)
      return rc;
  }
  for (size_t i = 0; i < m->g.nnodes; i++)
    m->nout += m->g.nodes[i].op == MPC_OP_OUTPUT;
  if ((rc = mpc_weights_init(&m->w, &m->g)) != 0)
    return rc;
  for (size_t i = 0; i < g->nnodes; i++) {
    if (g->nodes[i].op != MPC_OP_PARAM)
      continue;
    if (w->param[i].data == NULL)
      return TANDEM_EINVAL;
    size_t n = mpc_shape_numel(&g->nodes[i].shape);
    if (ids_table_only(g, i)) {
      ids_table_rows(&g->nodes[i].shape, w->param[i].data, m->w.param[i].data, fabs);
      continue;
    }
    for (size_t j = 0; j < n; j++)
      m->w.param[i].data[j] = fabs(w->param[i].data[j]);
  }
  m->in = calloc(m->nin + 1, sizeof *m->in);
  m->out = calloc(m->nout + 1, sizeof *m->out);
  if (m->in == NULL || m->out == NULL)
    return TANDEM_ENOMEM;
  m->ids = calloc(m->nin + 1, 1);
  if (m->ids == NULL)
    return TANDEM_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    if (g->nodes[i].op == MPC_OP_INPUT) {
      mpc_shape_t s = g->nodes[i].shape;
      if (g->nodes[i].batched)
        s.dim[0] = 1; /* every row of a batch has the same worst case */
      m->ids[k] = (unsigned char)g->nodes[i].ids;
      if ((rc = mpc_ftensor_init(&m->in[k++], &s)) != 0)
        return rc;
    }
  return 0;
}

/* 1 if inputs of magnitude b keep every value below limit, 0 if not, or an
 * error. */
/* Runs the magnitude graph with every input element at b. */
static int mag_eval(mag_t *m, double b) {
  for (size_t i = 0; i < m->nin; i++) {
    size_t n = mpc_shape_numel(&m->in[i].shape);
    for (size_t j = 0; j < n; j++)
      m->in[i].data[j] = m->ids[i] ? 1.0 : b;
  }
  return mpc_eval_float(&m->g, &m->w, m->in, m->out);
}

static int mag_fits(mag_t *m, double b, double limit) {
  int rc = mag_eval(m, b);
  if (rc != 0)
    return rc;
  int fits = 1;
  for (size_t i = 0; i < m->nout; i++) {
    size_t n = mpc_shape_numel(&m->out[i].shape);
    for (size_t j = 0; j < n && fits; j++)
      if (!(m->out[i].data[j] < limit)) /* NaN and infinity do not fit */
        fits = 0;
    mpc_ftensor_close(&m->out[i]);
  }
  return fits;
}

int mpc_weights_input_bound(const mpc_graph_t *g, const mpc_weights_t *w, double *bound) {
  if (g == NULL || w == NULL || bound == NULL || w->graph != g)
    return TANDEM_EINVAL;
  *bound = 0;
  unsigned f = g->frac_bits ? g->frac_bits : KERN_FIX_FRAC_DEFAULT;
  unsigned L = g->bound_bits ? g->bound_bits : KERN_FIX_BOUND_BITS;
  if (L <= 2 * f)
    return TANDEM_EINVAL;
  /* One bit of headroom: a max pool may compare untruncated products (the
   * plan moves a ReLU after the pool it feeds), whose differences are up
   * to twice their size. */
  double limit = ldexp(1.0, (int)(L - 2 * f) - 1);
  mag_t m;
  int rc = mag_open(&m, g, w);
  if (rc == 0) {
    /* Bisection on the exponent, then on the value: the test is monotone in
     * b. lo always fits (0 does: the graph's constants alone must), hi never. */
    double lo = 0, hi = limit;
    rc = mag_fits(&m, 0, limit);
    if (rc == 0)
      rc = TANDEM_ERANGE; /* the biases and constants alone overflow */
    if (rc == 1) {
      double b = ldexp(1.0, -30);
      while (b < limit && (rc = mag_fits(&m, b, limit)) == 1) {
        lo = b;
        b *= 2;
      }
      if (rc >= 0) {
        hi = b < limit ? b : limit;
        for (int it = 0; it < 24 && rc >= 0; it++) {
          double mid = 0.5 * (lo + hi);
          rc = mag_fits(&m, mid, limit);
          if (rc == 1)
            lo = mid;
          else if (rc == 0)
            hi = mid;
        }
      }
    }
    if (rc >= 0) {
      *bound = lo;
      rc = 0;
    }
  }
  mag_close(&m);
  return rc;
}

/* ---- per-node bounds: the sign-part graph --------------------------------- */

/* The magnitude graph above is sign-blind: it bounds |W x| by |W| |x| even
 * where x >= 0 (after a ReLU, or a non-negative input), so every layer past
 * the first doubles its bound for weights of both signs. The per-node
 * exponents come instead from interval arithmetic in sign-part form: each
 * value v of the model gets two non-negative tensors P >= max(v, 0) and
 * N >= max(-v, 0) elementwise, for every admissible input. With a = P_a - N_a
 * in that sense (and b alike):
 *   a + b:  P_a + P_b, N_a + N_b        a - b:  P_a + N_b, N_a + P_b
 *   a b, sum of products (MatMul, Gemm, Conv, Mul):
 *           P = P_a P_b + N_a N_b,  N = P_a N_b + N_a P_b
 *   k a:    k >= 0: k P_a, k N_a;  k < 0: |k| N_a, |k| P_a
 *   ReLU:   P_a, 0       max pool, average pool, layout: each part alike
 * (a sum's positive part is at most the sum of its terms' positive parts,
 * and a product of parts is a non-negative bilinear form in them). A
 * parameter or constant w is its own parts w+ and w-; an input element in
 * [lo, hi] has parts max(hi, 0) and max(-lo, 0). Every operator of the
 * sign-part graph is one of the model's own with non-negative data, so the
 * float evaluator runs it; a node's magnitude is then the largest element of
 * its two parts. After a ReLU (N = 0) a layer's bound is the larger of its
 * weights' positive and negative sums instead of their total. */
typedef struct {
  mpc_graph_t g;
  mpc_weights_t w;
  double *store;     /* the constants' parts, owned */
  int *pos, *neg;    /* model node -> its parts' nodes */
  mpc_ftensor_t *in; /* two per model INPUT: P then N */
  size_t nin, nout;
  mpc_ftensor_t *out; /* P then N of every computed model node, in node order */
} sgn_t;

static void sgn_close(sgn_t *s) {
  for (size_t i = 0; s->in != NULL && i < s->nin; i++)
    mpc_ftensor_close(&s->in[i]);
  for (size_t i = 0; s->out != NULL && i < s->nout; i++)
    mpc_ftensor_close(&s->out[i]);
  free(s->in);
  free(s->out);
  free(s->pos);
  free(s->neg);
  mpc_weights_close(&s->w);
  mpc_graph_close(&s->g);
  free(s->store);
}

static int is_source(mpc_op_t op) {
  return op == MPC_OP_INPUT || op == MPC_OP_PARAM || op == MPC_OP_CONST;
}

/* A copy of model node nd on the parts a, b, c (alpha and beta replaced). */
static int sgn_copy(sgn_t *s, const mpc_node_t *nd, int a, int b, int c, double alpha,
                    double beta) {
  mpc_node_t n = *nd;
  n.in[0] = a;
  n.in[1] = b;
  n.in[2] = c;
  n.attr.alpha = alpha;
  n.attr.beta = beta;
  return mpc_graph_add(&s->g, &n, NULL, 0);
}

static int sgn_add(sgn_t *s, int a, int b) {
  return a < 0 || b < 0 ? TANDEM_EINVAL : mpc_graph_op(&s->g, MPC_OP_ADD, a, b, -1, NULL, "sgn");
}

static int sgn_scale(sgn_t *s, int a, double k) {
  mpc_attr_t at;
  memset(&at, 0, sizeof at);
  at.alpha = at.beta = 1.0;
  at.scalar = k;
  return mpc_graph_op(&s->g, MPC_OP_MULC, a, -1, -1, &at, "sgn");
}

/* The parts of a product node nd (MatMul, Gemm, Conv, Mul) of a and b, with
 * Gemm's or Conv's addend c (parts, or -1). */
static int sgn_product(sgn_t *s, const mpc_node_t *nd, int *P, int *N) {
  int pa = s->pos[nd->in[0]], na = s->neg[nd->in[0]];
  int pb = s->pos[nd->in[1]], nb = s->neg[nd->in[1]];
  int has_c = nd->in[2] >= 0 && nd->op != MPC_OP_MATMUL && nd->op != MPC_OP_MUL;
  double alpha = nd->op == MPC_OP_GEMM ? nd->attr.alpha : 1.0;
  double beta = nd->op == MPC_OP_GEMM ? nd->attr.beta : 1.0;
  int pc = has_c ? s->pos[nd->in[2]] : -1, nc = has_c ? s->neg[nd->in[2]] : -1;
  if (beta < 0) {
    int t = pc;
    pc = nc;
    nc = t;
  }
  /* The pairs whose products are positive: (P, P) and (N, N), or the mixed
   * ones for a negative alpha. */
  int same[4] = {pa, pb, na, nb}, mixed[4] = {pa, nb, na, pb};
  const int *up = alpha >= 0 ? same : mixed, *down = alpha >= 0 ? mixed : same;
  double al = fabs(alpha), be = fabs(beta);
  int u0 = sgn_copy(s, nd, up[0], up[1], pc, al, be);
  int u1 = sgn_copy(s, nd, up[2], up[3], -1, al, 0);
  int d0 = sgn_copy(s, nd, down[0], down[1], nc, al, be);
  int d1 = sgn_copy(s, nd, down[2], down[3], -1, al, 0);
  *P = sgn_add(s, u0, u1);
  *N = sgn_add(s, d0, d1);
  return *P < 0 ? *P : *N < 0 ? *N : 0;
}

/* A smooth function, a softmax or a layer norm: its own bound over
 * |v| <= P + N (the node's magnitude form, attr.magnitude) for both parts,
 * N = 0 for the non-negative ones (sigmoid, exp, the reciprocal, the square
 * roots, softmax). Applying such a function to each part alike, as the
 * layout operators are, is wrong (exp of the negative part). */
static int sgn_smooth(sgn_t *s, const mpc_node_t *nd, int pa, int na, int *P, int *N) {
  int ab = sgn_add(s, pa, na);
  if (ab < 0)
    return ab;
  mpc_node_t n = *nd;
  n.in[0] = ab;
  n.in[1] = n.in[2] = -1;
  n.attr.magnitude = 1;
  int m = mpc_graph_add(&s->g, &n, NULL, 0);
  if (m < 0)
    return m;
  mpc_op_t op = nd->op;
  int nonneg = op == MPC_OP_SIGMOID || op == MPC_OP_EXP || op == MPC_OP_RSQRT ||
               op == MPC_OP_SQRT || op == MPC_OP_SOFTMAX; /* a Reciprocal has both signs */
  *P = m;
  *N = nonneg ? sgn_scale(s, m, 0.0) : m;
  return *N < 0 ? *N : 0;
}

/* The parts of computed model node i. */
static int sgn_node(sgn_t *s, const mpc_graph_t *g, size_t i, int *P, int *N) {
  const mpc_node_t *nd = &g->nodes[i];
  int pa = nd->in[0] >= 0 ? s->pos[nd->in[0]] : -1, na = nd->in[0] >= 0 ? s->neg[nd->in[0]] : -1;
  int pb = nd->in[1] >= 0 ? s->pos[nd->in[1]] : -1, nb = nd->in[1] >= 0 ? s->neg[nd->in[1]] : -1;
  switch (nd->op) {
  case MPC_OP_MATMUL:
  case MPC_OP_GEMM:
  case MPC_OP_CONV:
  case MPC_OP_MUL:
  case MPC_OP_LINMAP:
    return sgn_product(s, nd, P, N);
  case MPC_OP_ADD:
    *P = sgn_copy(s, nd, pa, pb, -1, 1, 1);
    *N = sgn_copy(s, nd, na, nb, -1, 1, 1);
    break;
  case MPC_OP_SUB: {
    mpc_node_t add = *nd;
    add.op = MPC_OP_ADD;
    *P = sgn_copy(s, &add, pa, nb, -1, 1, 1);
    *N = sgn_copy(s, &add, na, pb, -1, 1, 1);
    break;
  }
  case MPC_OP_MULC: {
    double k = nd->attr.scalar;
    *P = sgn_scale(s, k >= 0 ? pa : na, fabs(k));
    *N = sgn_scale(s, k >= 0 ? na : pa, fabs(k));
    break;
  }
  case MPC_OP_RELU:
    *P = pa;
    *N = sgn_scale(s, na, 0.0);
    break;
  case MPC_OP_CONCAT: /* each part joined to its like (Inception's branches) */
    *P = sgn_copy(s, nd, pa, pb, -1, nd->attr.alpha, nd->attr.beta);
    *N = sgn_copy(s, nd, na, nb, -1, nd->attr.alpha, nd->attr.beta);
    break;
  default: /* the pools and the layout operators: each part alike */
    if (mpc_op_is_smooth(nd->op) || nd->op == MPC_OP_SOFTMAX || nd->op == MPC_OP_LNORM)
      return sgn_smooth(s, nd, pa, na, P, N);
    *P = sgn_copy(s, nd, pa, -1, -1, nd->attr.alpha, nd->attr.beta);
    *N = sgn_copy(s, nd, na, -1, -1, nd->attr.alpha, nd->attr.beta);
    break;
  }
  return *P < 0 ? *P : *N < 0 ? *N : 0;
}

/* The sources' parts: two INPUTs per input, two PARAMs per parameter (filled
 * by sgn_open), two CONSTs per constant. */
static int sgn_source(sgn_t *s, const mpc_node_t *nd, size_t *cpos, int *P, int *N) {
  mpc_node_t n = *nd;
  if (nd->op == MPC_OP_CONST) {
    size_t cn = mpc_shape_numel(&nd->shape);
    double *p = s->store + *cpos, *q = p + cn;
    for (size_t j = 0; j < cn; j++) {
      p[j] = fmax(nd->cdata[j], 0);
      q[j] = fmax(-nd->cdata[j], 0);
    }
    *cpos += 2 * cn;
    n.cdata = p;
    *P = mpc_graph_add(&s->g, &n, NULL, 0);
    n.cdata = q;
    *N = mpc_graph_add(&s->g, &n, NULL, 0);
  } else {
    *P = mpc_graph_add(&s->g, &n, NULL, 0);
    *N = mpc_graph_add(&s->g, &n, NULL, 0);
  }
  return *P < 0 ? *P : *N < 0 ? *N : 0;
}

/* Builds the sign-part graph of g, its parameters' parts from w, and its
 * input tensors filled with the parts of [lo, hi]. */
static int sgn_open(sgn_t *s, const mpc_graph_t *g, const mpc_weights_t *w, double lo,
                    double hi) {
  memset(s, 0, sizeof *s);
  mpc_graph_init(&s->g);
  s->g.frac_bits = g->frac_bits;
  s->g.bound_bits = g->bound_bits;
  size_t nconst = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    if (g->nodes[i].op == MPC_OP_CONST)
      nconst += mpc_shape_numel(&g->nodes[i].shape);
  s->store = calloc(2 * nconst + 1, sizeof *s->store);
  s->pos = malloc((g->nnodes + 1) * sizeof *s->pos);
  s->neg = malloc((g->nnodes + 1) * sizeof *s->neg);
  if (s->store == NULL || s->pos == NULL || s->neg == NULL)
    return TANDEM_ENOMEM;
  size_t cpos = 0;
  int rc = 0;
  for (size_t i = 0; i < g->nnodes && rc == 0; i++) {
    const mpc_node_t *nd = &g->nodes[i];
    s->pos[i] = s->neg[i] = -1;
    for (int k = 0; k < 3; k++)
      if (nd->in[k] >= (int)i)
        return TANDEM_EINVAL; /* not topological: the builder never makes one */
    if (nd->op == MPC_OP_OUTPUT)
      continue;
    if (is_source(nd->op)) {
      rc = sgn_source(s, nd, &cpos, &s->pos[i], &s->neg[i]);
      s->nin += nd->op == MPC_OP_INPUT ? 2 : 0;
    } else {
      rc = sgn_node(s, g, i, &s->pos[i], &s->neg[i]);
    }
  }
  for (size_t i = 0; i < g->nnodes && rc == 0; i++) {
    if (is_source(g->nodes[i].op) || g->nodes[i].op == MPC_OP_OUTPUT)
      continue;
    if ((rc = mpc_graph_op(&s->g, MPC_OP_OUTPUT, s->pos[i], -1, -1, NULL, "sgn")) >= 0)
      rc = mpc_graph_op(&s->g, MPC_OP_OUTPUT, s->neg[i], -1, -1, NULL, "sgn");
    rc = rc < 0 ? rc : 0;
    s->nout += 2;
  }
  if (rc != 0 || (rc = mpc_weights_init(&s->w, &s->g)) != 0)
    return rc;
  for (size_t i = 0; i < g->nnodes; i++) {
    if (g->nodes[i].op != MPC_OP_PARAM)
      continue;
    if (w->param[i].data == NULL)
      return TANDEM_EINVAL;
    size_t n = mpc_shape_numel(&g->nodes[i].shape);
    double *p = s->w.param[s->pos[i]].data, *q = s->w.param[s->neg[i]].data;
    if (ids_table_only(g, i)) {
      ids_table_rows(&g->nodes[i].shape, w->param[i].data, p, part_pos);
      ids_table_rows(&g->nodes[i].shape, w->param[i].data, q, part_neg);
      continue;
    }
    for (size_t j = 0; j < n; j++) {
      p[j] = fmax(w->param[i].data[j], 0);
      q[j] = fmax(-w->param[i].data[j], 0);
    }
  }
  s->in = calloc(s->nin + 1, sizeof *s->in);
  s->out = calloc(s->nout + 1, sizeof *s->out);
  if (s->in == NULL || s->out == NULL)
    return TANDEM_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < g->nnodes; i++) {
    if (g->nodes[i].op != MPC_OP_INPUT)
      continue;
    mpc_shape_t sh = g->nodes[i].shape;
    if (g->nodes[i].batched)
      sh.dim[0] = 1; /* every row of a batch has the same worst case */
    for (int part = 0; part < 2; part++, k++) {
      if ((rc = mpc_ftensor_init(&s->in[k], &sh)) != 0)
        return rc;
      size_t n = mpc_shape_numel(&sh);
      int ids = g->nodes[i].ids; /* one-hot: in [0, 1] */
      for (size_t j = 0; j < n; j++)
        s->in[k].data[j] = ids ? (part == 0 ? 1.0 : 0.0) : part == 0 ? fmax(hi, 0) : fmax(-lo, 0);
    }
  }
  return 0;
}

/* Node i's worst-case magnitude, for every input in [lo, hi]: the largest
 * element of its two parts (sources: of their data). */
static int sgn_mags(const mpc_graph_t *g, const mpc_weights_t *w, double lo, double hi,
                    double *mag) {
  sgn_t s;
  int rc = sgn_open(&s, g, w, lo, hi);
  if (rc == 0)
    rc = mpc_eval_float(&s.g, &s.w, s.in, s.out);
  size_t k = 0;
  for (size_t i = 0; rc == 0 && i < g->nnodes; i++) {
    const mpc_node_t *nd = &g->nodes[i];
    size_t n = mpc_shape_numel(&nd->shape);
    double v = 0;
    if (nd->op == MPC_OP_INPUT) {
      v = nd->ids ? 1.0 : fmax(hi, -lo);
    } else if (nd->op == MPC_OP_PARAM) {
      for (size_t j = 0; j < n; j++)
        v = fmax(v, fabs(w->param[i].data[j]));
    } else if (nd->op == MPC_OP_CONST) {
      for (size_t j = 0; j < n; j++)
        v = fmax(v, fabs(nd->cdata[j]));
    } else if (nd->op == MPC_OP_OUTPUT) {
      v = nd->in[0] >= 0 && (size_t)nd->in[0] < i ? mag[nd->in[0]] : 0;
    } else {
      for (int part = 0; part < 2; part++, k++) {
        const mpc_ftensor_t *o = &s.out[k];
        size_t on = mpc_shape_numel(&o->shape);
        for (size_t j = 0; j < on; j++)
          if (!(o->data[j] <= v)) /* a NaN sticks, and is refused by the caller */
            v = o->data[j];
      }
    }
    mag[i] = v;
  }
  sgn_close(&s);
  return rc;
}

int mpc_weights_bounds(const mpc_graph_t *g, const mpc_weights_t *w, double declared,
                       double *input_bound, int8_t **mag_log2) {
  if (g == NULL || w == NULL || input_bound == NULL || mag_log2 == NULL ||
      w->graph != g || !(declared >= 0))
    return TANDEM_EINVAL;
  *mag_log2 = NULL;
  double b = 0;
  int rc = mpc_weights_input_bound(g, w, &b);
  if (rc != 0)
    return rc;
  if (declared > 0) {
    if (declared > b)
      return TANDEM_ERANGE;
    b = declared;
  }
  /* The inputs' interval: [-b, b], or from the declared least input up. */
  double lo = g->input_min > -b ? g->input_min : -b;
  if (!(lo <= b))
    return TANDEM_ERANGE;
  unsigned f = g->frac_bits ? g->frac_bits : KERN_FIX_FRAC_DEFAULT;
  double *mag = calloc(g->nnodes + 1, sizeof *mag);
  int8_t *e = malloc(g->nnodes + 1);
  if (mag == NULL || e == NULL) {
    free(mag);
    free(e);
    return TANDEM_ENOMEM;
  }
  rc = sgn_mags(g, w, lo, b, mag);
  for (size_t i = 0; rc == 0 && i < g->nnodes; i++) {
    /* The protocol's values differ from the real ones by rounding: a
     * relative 1% and 2^10 ulps of slack cover the weights' rounding and the
     * floors of every truncation before this node. */
    double v = 1.01 * mag[i] + ldexp(1.0, 10 - (int)f);
    if (!(v < ldexp(1.0, 100))) {
      rc = TANDEM_ERANGE;
      break;
    }
    int ex;
    double fr = frexp(v, &ex); /* v = fr 2^ex, fr in [0.5, 1): v < 2^ex */
    (void)fr;
    e[i] = (int8_t)ex;
  }
  free(mag);
  if (rc != 0) {
    free(e);
    return rc;
  }
  *input_bound = b;
  *mag_log2 = e;
  return 0;
}

int mpc_graph_set_bounds(mpc_graph_t *g, const mpc_weights_t *w) {
  if (g == NULL)
    return TANDEM_EINVAL;
  double b = 0;
  int8_t *mag = NULL;
  int rc = mpc_weights_bounds(g, w, g->input_bound, &b, &mag);
  if (rc != 0)
    return rc;
  free(g->mag_log2);
  g->mag_log2 = mag;
  g->nmag = g->nnodes;
  g->input_bound = b;
  return 0;
}
