/* onnx_elem.c - the ONNX handlers of the CNN operators that the importer
 * writes with the IR's own nodes: Sum and Mean of several inputs (Add, MulC),
 * Max, Min, Clip, LeakyRelu, PRelu, HardSigmoid and HardSwish (on ReLU: the
 * one comparison gate, max(a, b) = b + relu(a - b)), ReduceSum, ReduceMean
 * and ReduceMax (a transpose of the reduced axes to the end, then one pooling
 * window per output element) and GlobalMaxPool. Rounds follow from the gates:
 * a ReLU one round (on a masked value none), a max tree one per level, a
 * product of two activations the opening of its operands. Numbers of the
 * operators (Clip's bounds, LeakyRelu's alpha, HardSigmoid's alpha and beta)
 * are public constants of the graph; PRelu's slope is the owner's (a PARAM).
 * Also a BatchNormalization whose scale and statistics are given per query.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_imp.h"

static int node2(ctx_t *c, size_t k, mpc_op_t op, int a, int b) {
  if (a < 0)
    return a;
  if (b < 0 && op != MPC_OP_RELU)
    return b;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, op, a, op == MPC_OP_RELU ? -1 : b, -1);
  return mpc__onnx_add_node(c, k, &nd);
}

static int mulc(ctx_t *c, size_t k, int x, double v) {
  if (x < 0)
    return x;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_MULC, x, -1, -1);
  nd.attr.scalar = v;
  return mpc__onnx_add_node(c, k, &nd);
}

static int relu(ctx_t *c, size_t k, int x) { return node2(c, k, MPC_OP_RELU, x, -1); }

/* A public scalar constant of the graph (an operator's number). */
static int pub_scalar(ctx_t *c, size_t k, double v, const char *what) {
  char name[80];
  size_t one = 1;
  snprintf(name, sizeof name, "%.60s.%s", mpc__onnx_node_name(c, k), what);
  int r = mpc_graph_const(c->g, name, 1, &one, &v);
  return r < 0 ? mpc__onnx_nfail(c, k, r, "cannot store the constant %s", what) : r;
}

/* Input j: an activation, or a float constant as a public CONST node (as
 * the owner's secret PARAM with secret set: an addend of Sum and Mean). */
static int operand_any(ctx_t *c, size_t k, size_t j, int secret, int *node, int *is_const) {
  int rc;
  ent_t *e = mpc__onnx_in_ent(c, k, j, 1, &rc);
  if (e == NULL)
    return rc;
  *is_const = e->kind == V_CONST;
  if (e->kind != V_CONST)
    return mpc__onnx_in_act(c, k, j, node);
  if (secret)
    return mpc__onnx_in_operand(c, k, j, 1, node);
  const mpc__ctensor_t *t = &c->konst[e->kidx].t;
  if (t->f == NULL || t->numel == 0 || t->ndim > MPC_MAX_DIMS)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "input '%s' must be a non-empty float tensor",
                           e->name);
  size_t dim[MPC_MAX_DIMS] = {1};
  for (unsigned d = 0; d < t->ndim; d++)
    dim[d] = t->dim[d];
  *node = mpc_graph_const(c->g, e->name, t->ndim ? t->ndim : 1, dim, t->f);
  return *node < 0 ? mpc__onnx_nfail(c, k, *node, "cannot store constant '%s'", e->name) : 0;
}

static int operand_pub(ctx_t *c, size_t k, size_t j, int *node, int *is_const) {
  return operand_any(c, k, j, 0, node, is_const);
}

static size_t numel_of(ctx_t *c, int n) { return mpc_shape_numel(shape_of(c, n)); }

/* max(a, b) (is_min: min) for a the operand of the larger shape: b + relu(a
 * - b), a - relu(a - b); one ReLU gate. */
static int max2(ctx_t *c, size_t k, int a, int b, int is_min) {
  int r = relu(c, k, node2(c, k, MPC_OP_SUB, a, b));
  return is_min ? node2(c, k, MPC_OP_SUB, a, r) : node2(c, k, MPC_OP_ADD, r, b);
}

static int def_out(ctx_t *c, size_t k, int r) {
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

/* Sum (variant 0), Mean (1), Max (2), Min (3) of one or more inputs. */
int mpc__onnx_op_variadic(ctx_t *c, size_t k, int variant) {
  static const char *const known[] = {NULL};
  int rc = mpc__onnx_attr_check(c, k, known), cur, cur_const;
  size_t n = nodep(c, k)->n_input;
  if (rc != 0 || n == 0)
    return rc != 0 ? rc : mpc__onnx_nfail(c, k, TANDEM_EPARSE, "needs at least one input");
  /* Constants of a Sum or Mean are the owner's addends (secret); those of a
   * Max or Min are compared, added at two scales: public. */
  if ((rc = operand_any(c, k, 0, variant <= 1, &cur, &cur_const)) != 0)
    return rc;
  for (size_t j = 1; j < n; j++) {
    int x, x_const;
    if ((rc = operand_any(c, k, j, variant <= 1, &x, &x_const)) != 0)
      return rc;
    /* The IR broadcasts the second operand: the larger goes first. */
    int a = cur, b = x;
    if (numel_of(c, x) > numel_of(c, cur) || (cur_const && !x_const)) {
      a = x;
      b = cur;
    }
    if (c->g->nodes[a].op == MPC_OP_CONST || c->g->nodes[a].op == MPC_OP_PARAM)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "a constant larger than the activations");
    cur = variant <= 1 ? node2(c, k, MPC_OP_ADD, a, b) : max2(c, k, a, b, variant == 3);
    if (cur < 0)
      return cur;
    cur_const = 0;
  }
  if (cur_const)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "every input is a constant");
  if (variant == 1 && n > 1)
    cur = mulc(c, k, cur, 1.0 / (double)n);
  return def_out(c, k, cur);
}

/* Clip: max with the lower bound, min with the upper (absent: unbounded). */
int mpc__onnx_op_clip(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"min", "max", NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x;
  if (rc != 0 || (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  for (int side = 0; side < 2; side++) {
    int bnd = -1, is_c;
    if (c->opset >= 11) {
      if (mpc__onnx_attr_find(c, k, side ? "max" : "min") != NULL)
        return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "min and max are inputs from opset 11 on");
      if (mpc__onnx_in_name(c, k, 1 + (size_t)side) != NULL &&
          (rc = operand_pub(c, k, 1 + (size_t)side, &bnd, &is_c)) != 0)
        return rc;
    } else {
      double v;
      if ((rc = mpc__onnx_attr_float(c, k, side ? "max" : "min", NAN, &v)) != 0)
        return rc;
      if (!isnan(v) && fabs(v) < 3e38 && (bnd = pub_scalar(c, k, v, side ? "max" : "min")) < 0)
        return bnd;
    }
    if (bnd < 0)
      continue;
    if (numel_of(c, bnd) > numel_of(c, x))
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "a bound larger than the input");
    if ((x = max2(c, k, x, bnd, side)) < 0)
      return x;
  }
  return def_out(c, k, x);
}

/* LeakyRelu: alpha x + (1 - alpha) relu(x), alpha public. */
int mpc__onnx_op_leaky(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"alpha", NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x;
  double alpha;
  if (rc != 0 || (rc = mpc__onnx_attr_float(c, k, "alpha", 0.01, &alpha)) != 0 ||
      (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  if (!isfinite(alpha))
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "alpha is not finite");
  int r = relu(c, k, x);
  if (alpha == 0.0)
    return def_out(c, k, r);
  return def_out(c, k, node2(c, k, MPC_OP_ADD, mulc(c, k, r, 1.0 - alpha), mulc(c, k, x, alpha)));
}

/* PRelu: relu(x) + slope * (x - relu(x)), slope the owner's parameter (or an
 * activation), broadcast to x: a bilinear gate. */
int mpc__onnx_op_prelu(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x, s;
  if (rc != 0 || (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0 ||
      (rc = mpc__onnx_in_operand(c, k, 1, 1, &s)) != 0)
    return rc;
  if (shape_of(c, s)->ndim > shape_of(c, x)->ndim || numel_of(c, s) > numel_of(c, x))
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "the slope does not broadcast to the input");
  int r = relu(c, k, x);
  int neg = node2(c, k, MPC_OP_SUB, x, r);
  return def_out(c, k, node2(c, k, MPC_OP_ADD, r, node2(c, k, MPC_OP_MUL, neg, s)));
}

/* HardSigmoid (variant 0): min(relu(alpha x + beta), 1); HardSwish (1): x
 * times that with alpha 1/6, beta 1/2 (a product of two activations). */
int mpc__onnx_op_hard(ctx_t *c, size_t k, int swish) {
  static const char *const k0[] = {"alpha", "beta", NULL};
  static const char *const k1[] = {NULL};
  int rc = mpc__onnx_attr_check(c, k, swish ? k1 : k0), x;
  double alpha = 1.0 / 6, beta = 0.5;
  if (rc != 0 || (!swish && ((rc = mpc__onnx_attr_float(c, k, "alpha", 0.2, &alpha)) != 0 ||
                             (rc = mpc__onnx_attr_float(c, k, "beta", 0.5, &beta)) != 0)) ||
      (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  if (!isfinite(alpha) || !isfinite(beta))
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "alpha and beta must be finite");
  int t = node2(c, k, MPC_OP_ADD, mulc(c, k, x, alpha), pub_scalar(c, k, beta, "beta"));
  int h = max2(c, k, relu(c, k, t), pub_scalar(c, k, 1.0, "one"), 1);
  return def_out(c, k, swish ? node2(c, k, MPC_OP_MUL, x, h) : h);
}

/* The axes a Reduce* node reduces (bit d), from its attribute or, for
 * ReduceSum from opset 13, its input; *noop when none are given and
 * noop_with_empty_axes asks for the identity. */
static int reduce_axes(ctx_t *c, size_t k, unsigned r, unsigned *mask, int *noop) {
  const int64_t *v = NULL;
  size_t n = SIZE_MAX;
  int64_t noop_attr;
  int rc = mpc__onnx_attr_int(c, k, "noop_with_empty_axes", 0, &noop_attr);
  if (rc != 0)
    return rc;
  if (mpc__onnx_attr_find(c, k, "axes") != NULL)
    rc = mpc__onnx_attr_ints(c, k, "axes", &v, &n);
  else if (mpc__onnx_in_name(c, k, 1) != NULL)
    rc = mpc__onnx_in_ints(c, k, 1, 1, &v, &n);
  if (rc != 0)
    return rc;
  *noop = (n == SIZE_MAX || n == 0) && noop_attr != 0;
  *mask = 0;
  if (n == SIZE_MAX || n == 0) {
    *mask = *noop ? 0 : (1u << r) - 1;
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (v[i] < -(int64_t)r || v[i] >= (int64_t)r)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axis %" PRId64 " is outside [-%u, %u)", v[i],
                             r, r);
    *mask |= 1u << (v[i] < 0 ? v[i] + (int64_t)r : v[i]);
  }
  return 0;
}

/* ReduceSum (variant 0), ReduceMean (1), ReduceMax (2): the kept axes moved
 * first, the reduced ones last, as [P, 1, 1, K]; one pooling window of 1 x K
 * per output element (an average times K for the sum: exact in the ring). */
int mpc__onnx_op_reduce(ctx_t *c, size_t k, int variant) {
  static const char *const known[] = {"axes", "keepdims", "noop_with_empty_axes", NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x, noop;
  int64_t keep;
  if (rc != 0 || (rc = mpc__onnx_attr_int(c, k, "keepdims", 1, &keep)) != 0 ||
      (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  const mpc_shape_t is = *shape_of(c, x);
  unsigned mask;
  if ((rc = reduce_axes(c, k, is.ndim, &mask, &noop)) != 0)
    return rc;
  if (noop || mask == 0)
    return def_out(c, k, x);
  if ((mask & 1u) && c->any_batched)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "reducing axis 0, the batch dimension, is not supported");
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_TRANSPOSE, x, -1, -1);
  size_t P = 1, K = 1;
  unsigned np = 0, ident = 1;
  mpc_shape_t fin = {0, {0}};
  for (int pass = 0; pass < 2; pass++)
    for (unsigned d = 0; d < is.ndim; d++)
      if (((mask >> d) & 1u) == (unsigned)pass) {
        nd.attr.perm[np++] = d;
        if (pass)
          K *= is.dim[d];
        else
          P *= is.dim[d];
      }
  for (unsigned d = 0; d < is.ndim; d++)
    if (!((mask >> d) & 1u) || keep)
      fin.dim[fin.ndim++] = (mask >> d) & 1u ? 1 : is.dim[d];
  if (fin.ndim == 0)
    fin.dim[fin.ndim++] = 1;
  if (K > (size_t)MAX_WIN)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "%zu reduced elements (at most %" PRId64 ")", K,
                           MAX_WIN);
  int cur = x;
  for (unsigned d = 0; d < is.ndim; d++)
    ident = ident && nd.attr.perm[d] == d;
  if (!ident && (cur = mpc__onnx_add_node(c, k, &nd)) < 0)
    return cur;
  mpc__onnx_node_init(&nd, MPC_OP_RESHAPE, cur, -1, -1);
  nd.shape = (mpc_shape_t){4, {P, 1, 1, K}};
  if ((cur = mpc__onnx_add_node(c, k, &nd)) < 0)
    return cur;
  mpc__onnx_node_init(&nd, variant == 2 ? MPC_OP_MAXPOOL : MPC_OP_AVGPOOL, cur, -1, -1);
  nd.attr.kh = 1;
  nd.attr.kw = K;
  nd.attr.strides[0] = nd.attr.strides[1] = 1;
  nd.attr.dilations[0] = nd.attr.dilations[1] = 1;
  nd.attr.count_include_pad = 1;
  if ((cur = mpc__onnx_add_node(c, k, &nd)) < 0)
    return cur;
  if (variant == 0 && K > 1 && (cur = mulc(c, k, cur, (double)K)) < 0)
    return cur;
  mpc__onnx_node_init(&nd, MPC_OP_RESHAPE, cur, -1, -1);
  nd.shape = fin;
  return def_out(c, k, mpc__onnx_add_node(c, k, &nd));
}

/* Softmax and LogSoftmax whose output is a graph output read by nothing
 * else: the client applies them to the reconstructed output (an OUTPUT
 * node's post function). The parties' output is then the pre-softmax
 * values, which the softmax determines up to a constant per group anyway.
 * A Softmax anywhere else runs privately (gate_smooth.c's exp and
 * reciprocal: mpc__onnx_op_softmax_private); a LogSoftmax is refused. */
int mpc__onnx_op_softmax(ctx_t *c, size_t k, int variant) {
  static const char *const known[] = {"axis", NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x;
  int64_t axis;
  if (rc != 0 || (rc = mpc__onnx_attr_int(c, k, "axis", c->opset >= 13 ? -1 : 1, &axis)) != 0 ||
      (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  ent_t *o = mpc__onnx_out_ent(c, k, 0);
  int last = o != NULL && o->gout && o->nuse == 1 && nodep(c, k)->n_output == 1;
  if (!last && variant == 0) /* inside the graph: the private smooth-function gates */
    return mpc__onnx_op_softmax_private(c, k, 0);
  if (!last)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "supported only as the graph's last operator (its output a graph "
                           "output that nothing else reads)");
  unsigned r = shape_of(c, x)->ndim;
  if (axis < -(int64_t)r || axis >= (int64_t)r)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axis %" PRId64 " is outside [-%u, %u)", axis, r,
                           r);
  for (size_t i = 0; i < c->gp->n_output; i++)
    if (c->gp->output[i] != NULL && c->gp->output[i]->name != NULL &&
        nodep(c, k)->input[0] != NULL && strcmp(c->gp->output[i]->name, nodep(c, k)->input[0]) == 0)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "its input is a graph output too");
  mpc__onnx_def_act(c, k, 0, x);
  o->post = (variant ? MPC_POST_LOGSOFTMAX : MPC_POST_SOFTMAX) | (c->opset < 13 ? MPC_POST_FLAT : 0);
  o->post_axis = (int)(axis < 0 ? axis + (int64_t)r : axis);
  return 0;
}

/* A reshape node of activation x to s. */
static int reshape_to(ctx_t *c, size_t k, int x, const mpc_shape_t *s) {
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_RESHAPE, x, -1, -1);
  nd.shape = *s;
  return mpc__onnx_add_node(c, k, &nd);
}

/* BatchNormalization whose statistics or scale are given per query (graph
 * inputs: the client's secrets): y = (x - mean) * (scale * rsqrt(var +
 * epsilon)) + B, the inverse square root by its gate (var + epsilon in its
 * domain, [1/256, 64]), the per-channel vectors broadcast over the spatial
 * axes. Rounds: the gate, and two products of activations. */
int mpc__onnx_bn_computed(ctx_t *c, size_t k, int x) {
  double eps;
  int rc = mpc__onnx_attr_float(c, k, "epsilon", 1e-5, &eps), v[4];
  if (rc != 0)
    return rc;
  const mpc_shape_t xs = *shape_of(c, x);
  size_t ch = xs.dim[1];
  mpc_shape_t cs = {xs.ndim - 1, {ch, 1, 1, 1}}; /* [C, 1, ...] against [N, C, ...] */
  for (size_t j = 0; j < 4; j++) {
    ent_t *ent = mpc__onnx_in_ent(c, k, j + 1, 1, &rc);
    if (ent == NULL)
      return rc;
    if (ent->kind == V_CONST) {
      /* The owner's vector as a parameter of shape [C, 1, ...] like the
       * computed ones: one of shape [C] would broadcast along the last axis,
       * not the channels (silently wrong when W = C). */
      const mpc__ctensor_t *t;
      if ((rc = mpc__onnx_in_const(c, k, j + 1, 1, &t)) != 0)
        return rc;
      if (t->numel != ch)
        return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "input %zu is not one value per channel",
                               j + 1);
      double *d = malloc(ch * sizeof *d);
      if (d == NULL)
        return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
      for (size_t i = 0; i < ch; i++)
        d[i] = t->f != NULL ? t->f[i] : (double)t->i[i];
      char pname[80];
      snprintf(pname, sizeof pname, "%.60s.in%zu", mpc__onnx_node_name(c, k), j + 1);
      if ((v[j] = mpc__onnx_make_param(c, k, pname, cs.ndim, cs.dim, d)) < 0)
        return v[j];
      continue;
    }
    if ((rc = mpc__onnx_in_operand(c, k, j + 1, 1, &v[j])) != 0)
      return rc;
    if (mpc_shape_numel(shape_of(c, v[j])) != ch)
      return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "input %zu is not one value per channel", j + 1);
    if ((v[j] = reshape_to(c, k, v[j], &cs)) < 0)
      return v[j];
  }
  if (c->g->nodes[v[0]].op == MPC_OP_PARAM || c->g->nodes[v[3]].op == MPC_OP_PARAM)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "scale and var must both be computed (or "
                           "both constants, folded)");
  char name[80];
  snprintf(name, sizeof name, "%.60s.epsilon", mpc__onnx_node_name(c, k));
  size_t one = 1;
  int e = mpc_graph_const(c->g, name, 1, &one, &eps);
  if (e < 0)
    return mpc__onnx_nfail(c, k, e, "cannot store epsilon");
  int r = node2(c, k, MPC_OP_ADD, v[3], e);
  if (r >= 0) {
    mpc_node_t nd;
    mpc__onnx_node_init(&nd, MPC_OP_RSQRT, r, -1, -1);
    r = mpc__onnx_add_node(c, k, &nd);
  }
  if (r >= 0)
    r = node2(c, k, MPC_OP_MUL, v[0], r);
  int y = r >= 0 ? node2(c, k, MPC_OP_SUB, x, v[2]) : r;
  if (y >= 0)
    y = node2(c, k, MPC_OP_MUL, y, r);
  if (y >= 0)
    y = node2(c, k, MPC_OP_ADD, y, v[1]);
  if (y < 0)
    return y;
  mpc__onnx_def_act(c, k, 0, y);
  return 0;
}
