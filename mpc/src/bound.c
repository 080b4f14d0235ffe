/* bound.c - the largest client input a model can take without overflow.
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
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

typedef struct {
  mpc_graph_t g;      /* the magnitude graph: the model's nodes, then an OUTPUT for each */
  mpc_weights_t w;    /* |W| */
  double *consts;     /* |constants|, owned */
  mpc_ftensor_t *in;  /* one per INPUT, filled with B */
  size_t nin, nout;
  mpc_ftensor_t *out;
} mag_t;

static void mag_close(mag_t *m) {
  for (size_t i = 0; i < m->nin; i++)
    mpc_ftensor_close(&m->in[i]);
  free(m->in);
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
    for (size_t j = 0; j < n; j++)
      m->w.param[i].data[j] = fabs(w->param[i].data[j]);
  }
  m->in = calloc(m->nin + 1, sizeof *m->in);
  m->out = calloc(m->nout + 1, sizeof *m->out);
  if (m->in == NULL || m->out == NULL)
    return TANDEM_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    if (g->nodes[i].op == MPC_OP_INPUT) {
      mpc_shape_t s = g->nodes[i].shape;
      if (g->nodes[i].batched)
        s.dim[0] = 1; /* every row of a batch has the same worst case */
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
      m->in[i].data[j] = b;
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

/* Node i's worst-case magnitude from the magnitude graph run at b. */
static int mag_nodes(mag_t *m, const mpc_graph_t *g, const mpc_weights_t *w, double b,
                     double *mag) {
  int rc = mag_eval(m, b);
  if (rc != 0)
    return rc;
  /* The evaluator returns the model's own outputs first (node order), then
   * one per computed node, appended by mag_open. */
  size_t k = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    k += g->nodes[i].op == MPC_OP_OUTPUT;
  for (size_t i = 0; i < g->nnodes; i++) {
    const mpc_node_t *nd = &g->nodes[i];
    double v = 0;
    size_t n = mpc_shape_numel(&nd->shape);
    switch (nd->op) {
    case MPC_OP_INPUT:
      v = b;
      break;
    case MPC_OP_PARAM:
      for (size_t j = 0; j < n; j++)
        v = fmax(v, fabs(w->param[i].data[j]));
      break;
    case MPC_OP_CONST:
      for (size_t j = 0; j < n; j++)
        v = fmax(v, fabs(nd->cdata[j]));
      break;
    case MPC_OP_OUTPUT:
      v = nd->in[0] >= 0 && (size_t)nd->in[0] < i ? mag[nd->in[0]] : 0;
      break;
    default: {
      const mpc_ftensor_t *o = &m->out[k++];
      size_t on = mpc_shape_numel(&o->shape);
      for (size_t j = 0; j < on; j++)
        if (!(o->data[j] <= v)) /* a NaN sticks, and is refused below */
          v = o->data[j];
      break;
    }
    }
    mag[i] = v;
  }
  for (size_t i = 0; i < m->nout; i++)
    mpc_ftensor_close(&m->out[i]);
  return 0;
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
  unsigned f = g->frac_bits ? g->frac_bits : KERN_FIX_FRAC_DEFAULT;
  double *mag = calloc(g->nnodes + 1, sizeof *mag);
  int8_t *e = malloc(g->nnodes + 1);
  mag_t m;
  if (mag == NULL || e == NULL) {
    free(mag);
    free(e);
    return TANDEM_ENOMEM;
  }
  rc = mag_open(&m, g, w);
  if (rc == 0)
    rc = mag_nodes(&m, g, w, b, mag);
  mag_close(&m);
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
