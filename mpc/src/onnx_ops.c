/* onnx_ops.c - the operator handlers of the ONNX importer, one per
 * supported op_type (some serve two, told apart by a variant flag), in a
 * table sorted by op_type that mpc__onnx_run_node searches; those of the
 * windowed operators (Conv, the pools, Pad) are in onnx_window.c. Each handler
 * checks its node's attributes and inputs and appends the IR nodes of its
 * result (onnx_read.c reads, onnx_fold.c folds).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_imp.h"

/* A BatchNormalization that cannot be folded becomes a C x C diagonal weight;
 * above this many channels that is too wasteful to be worth it. */
#define MAX_AFFINE_CH 1024

/* A handler: node k, with the table's variant flag. */
typedef int (*op_fn_t)(ctx_t *c, size_t k, int variant);
typedef struct {
  const char *op_type;
  op_fn_t fn;
  int variant;
} op_entry_t;

static int in_dims(ctx_t *c, size_t k, size_t j, ent_t **ep, dims_t *d) {
  int rc;
  ent_t *e = mpc__onnx_in_ent(c, k, j, 1, &rc);
  if (e == NULL)
    return rc;
  if (e->kind == V_PAD)
    return mpc__onnx_pad_error(c, k, e);
  memset(d, 0, sizeof *d);
  if (e->kind == V_ACT) {
    const mpc_shape_t *s = shape_of(c, e->node);
    d->ndim = s->ndim;
    for (unsigned i = 0; i < s->ndim; i++)
      d->dim[i] = s->dim[i];
  } else {
    const mpc__ctensor_t *t = &c->konst[e->kidx].t;
    d->ndim = t->ndim;
    for (unsigned i = 0; i < t->ndim; i++)
      d->dim[i] = t->dim[i];
  }
  *ep = e;
  return 0;
}

/* Output 0 of node k is input value e with new dimensions (same elements in
 * the same order): a RESHAPE node for an activation, a relabelled copy for a
 * constant. */
static int emit_reshape(ctx_t *c, size_t k, const ent_t *e, const dims_t *to) {
  if (e->kind == V_CONST)
    return mpc__onnx_const_reshape(c, k, e, to);
  if (to->ndim < 1 || to->ndim > MPC_MAX_DIMS)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "result of rank %u (supported: 1 to %d)",
                           to->ndim, MPC_MAX_DIMS);
  const mpc_shape_t *s = shape_of(c, e->node);
  int same = s->ndim == to->ndim;
  for (unsigned i = 0; same && i < to->ndim; i++)
    same = s->dim[i] == to->dim[i];
  if (same) { /* nothing to do: keep the value */
    mpc__onnx_def_act(c, k, 0, e->node);
    return 0;
  }
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_RESHAPE, e->node, -1, -1);
  nd.shape.ndim = to->ndim;
  for (unsigned i = 0; i < to->ndim; i++)
    nd.shape.dim[i] = to->dim[i];
  int r = mpc__onnx_add_node(c, k, &nd);
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

static size_t dims_numel(const dims_t *d) {
  size_t n = 1;
  for (unsigned i = 0; i < d->ndim; i++)
    n *= d->dim[i]; /* bounded: every stored shape has at most 2^40 elements */
  return n;
}

static int op_reshape(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"allowzero", NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0)
    return rc;
  int64_t allowzero;
  if ((rc = mpc__onnx_attr_int(c, k, "allowzero", 0, &allowzero)) != 0)
    return rc;
  ent_t *e;
  dims_t in, to;
  if ((rc = in_dims(c, k, 0, &e, &in)) != 0)
    return rc;
  const int64_t *sv;
  size_t sn;
  if ((rc = mpc__onnx_in_ints(c, k, 1, 1, &sv, &sn)) != 0)
    return rc;
  if (sn > MPC__CT_MAX_DIMS)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "target shape has %zu dimensions", sn);
  memset(&to, 0, sizeof to);
  to.ndim = (unsigned)sn;
  int infer = -1;
  size_t known_n = 1, total = dims_numel(&in);
  for (size_t i = 0; i < sn; i++) {
    int64_t v = sv[i];
    if (v == 0 && allowzero)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                             "allowzero=1 with a zero dimension (empty tensors are "
                             "not supported)");
    if (v == 0) {
      if (i >= in.ndim)
        return mpc__onnx_nfail(c, k, TANDEM_ESHAPE,
                               "shape[%zu] = 0 copies a dimension the input (rank "
                               "%u) does not have",
                               i, in.ndim);
      to.dim[i] = in.dim[i];
    } else if (v == -1) {
      if (infer >= 0)
        return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "more than one -1 in the target shape");
      infer = (int)i;
      continue;
    } else if (v < 0 || (uint64_t)v > MPC__CT_MAX_NUMEL) {
      return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "target dimension %" PRId64 " is invalid", v);
    } else {
      to.dim[i] = (size_t)v;
    }
    /* known_n * dim > total exactly when dim > floor(total / known_n), a
     * test that cannot overflow. */
    if (to.dim[i] == 0 || to.dim[i] > total / known_n)
      return mpc__onnx_nfail(c, k, TANDEM_ESHAPE,
                             "target shape has more elements than the input (%zu)", total);
    known_n *= to.dim[i];
  }
  if (infer >= 0) {
    if (total % known_n != 0)
      return mpc__onnx_nfail(c, k, TANDEM_ESHAPE,
                             "cannot infer the -1 dimension: %zu elements are not "
                             "a multiple of %zu",
                             total, known_n);
    to.dim[infer] = total / known_n;
  } else if (known_n != total) {
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "target shape has %zu elements, the input %zu",
                           known_n, total);
  }
  return emit_reshape(c, k, e, &to);
}

static int op_flatten(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"axis", NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0)
    return rc;
  int64_t axis;
  if ((rc = mpc__onnx_attr_int(c, k, "axis", 1, &axis)) != 0)
    return rc;
  ent_t *e;
  dims_t in, to;
  if ((rc = in_dims(c, k, 0, &e, &in)) != 0)
    return rc;
  int64_t r = (int64_t)in.ndim;
  if (axis < -r || axis > r)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axis %" PRId64 " is outside [-%u, %u]", axis,
                           in.ndim, in.ndim);
  if (axis < 0)
    axis += r;
  memset(&to, 0, sizeof to);
  to.ndim = 2;
  to.dim[0] = to.dim[1] = 1;
  for (unsigned i = 0; i < in.ndim; i++)
    to.dim[(int64_t)i < axis ? 0 : 1] *= in.dim[i];
  return emit_reshape(c, k, e, &to);
}

/* Axes from the attribute (opset < 13) or the second input (opset >= 13). */
static int get_axes(ctx_t *c, size_t k, const int64_t **v, size_t *n) {
  if (c->opset >= 13) {
    if (mpc__onnx_attr_find(c, k, "axes") != NULL)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE,
                             "axes is an input from opset 13 on, not an attribute");
    return mpc__onnx_in_ints(c, k, 1, 0, v, n);
  }
  if (mpc__onnx_in_name(c, k, 1) != NULL)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE,
                           "axes is an attribute before opset 13, not an input");
  return mpc__onnx_attr_ints(c, k, "axes", v, n);
}

static int op_squeeze(ctx_t *c, size_t k, int unsq) {
  static const char *const known[] = {"axes", NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0)
    return rc;
  ent_t *e;
  dims_t in, to;
  if ((rc = in_dims(c, k, 0, &e, &in)) != 0)
    return rc;
  const int64_t *ax;
  size_t na;
  if ((rc = get_axes(c, k, &ax, &na)) != 0)
    return rc;
  if (unsq && na == SIZE_MAX)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axes are required");
  int64_t r = (int64_t)in.ndim + (unsq ? (int64_t)(na == SIZE_MAX ? 0 : na) : 0);
  if (r > MPC__CT_MAX_DIMS)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "result would have %" PRId64 " dimensions", r);
  unsigned mark = 0; /* bit d: axis d is listed */
  for (size_t i = 0; na != SIZE_MAX && i < na; i++) {
    int64_t a = ax[i];
    if (a < -r || a >= r)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE,
                             "axis %" PRId64 " is outside [-%" PRId64 ", %" PRId64 "]", a, r,
                             r - 1);
    if (a < 0)
      a += r;
    if ((mark >> a) & 1u)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axis %" PRId64 " is listed twice", a);
    mark |= 1u << a;
  }
  /* The graph's first dimension is the batch (if an input has one); an
   * activation whose batch axis is removed or displaced could not be
   * evaluated at another batch size. */
  int act_batch = e->kind == V_ACT && c->any_batched;
  if (act_batch && (mark & 1u))
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "%s axis 0, the batch dimension, is not supported",
                           unsq ? "inserting a dimension at" : "squeezing");
  memset(&to, 0, sizeof to);
  if (unsq) {
    unsigned src = 0;
    for (unsigned d = 0; d < (unsigned)r; d++)
      to.dim[d] = (mark >> d) & 1u ? 1 : in.dim[src++];
    to.ndim = (unsigned)r;
  } else {
    for (unsigned d = 0; d < in.ndim; d++) {
      int listed = (mark >> d) & 1u;
      if (listed && in.dim[d] != 1)
        return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "cannot squeeze axis %u of size %zu", d,
                               in.dim[d]);
      /* Without axes every dimension of 1 goes, except an activation's batch. */
      int drop = na == SIZE_MAX ? in.dim[d] == 1 && !(act_batch && d == 0) : listed;
      if (!drop)
        to.dim[to.ndim++] = in.dim[d];
    }
  }
  return emit_reshape(c, k, e, &to);
}

static int op_transpose(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"perm", NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0)
    return rc;
  ent_t *e;
  dims_t in;
  if ((rc = in_dims(c, k, 0, &e, &in)) != 0)
    return rc;
  const int64_t *pv;
  size_t pn;
  if ((rc = mpc__onnx_attr_ints(c, k, "perm", &pv, &pn)) != 0)
    return rc;
  unsigned perm[MPC__CT_MAX_DIMS], seen = 0;
  if (pn != SIZE_MAX && pn != in.ndim)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "perm has %zu entries for an input of rank %u", pn,
                           in.ndim);
  for (unsigned d = 0; d < in.ndim; d++) {
    int64_t p = pn == SIZE_MAX ? (int64_t)(in.ndim - 1 - d) : pv[d];
    if (p < 0 || p >= (int64_t)in.ndim || ((seen >> p) & 1u))
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "perm is not a permutation of %u axes", in.ndim);
    seen |= 1u << p;
    perm[d] = (unsigned)p;
  }
  if (e->kind == V_ACT) {
    mpc_node_t nd;
    mpc__onnx_node_init(&nd, MPC_OP_TRANSPOSE, e->node, -1, -1);
    for (unsigned d = 0; d < in.ndim; d++)
      nd.attr.perm[d] = perm[d];
    int r = mpc__onnx_add_node(c, k, &nd);
    if (r < 0)
      return r;
    mpc__onnx_def_act(c, k, 0, r);
    return 0;
  }
  /* A constant (a weight stored the other way round): permute it here. */
  return mpc__onnx_const_transpose(c, k, e, in, perm);
}

static int op_batchnorm(ctx_t *c, size_t k, int variant) {
  (void)variant;
  int x, rc;
  if ((rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  mpc_shape_t xs = *shape_of(c, x);
  if (xs.ndim < 2 || xs.ndim > 4)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "input of rank %u (supported: 2 to 4)", xs.ndim);
  for (size_t j = 1; j <= 4; j++) {
    ent_t *e = mpc__onnx_in_ent(c, k, j, 0, &rc);
    if (e != NULL && e->kind == V_ACT && nodep(c, k)->n_output <= 1)
      return mpc__onnx_bn_computed(c, k, x);
  }
  size_t ch = xs.dim[1];
  double *s, *t;
  if ((rc = mpc__onnx_bn_params(c, k, ch, 0, &s, &t)) != 0)
    return rc;
  if (ch > MAX_AFFINE_CH) {
    free(s);
    free(t);
    return mpc__onnx_nfail(
        c, k, TANDEM_EUNSUPOP,
        "cannot be folded into a preceding Conv or Gemm, and as a stand-alone per-channel "
        "affine map it is supported for at most %d channels (got %zu)",
        MAX_AFFINE_CH, ch);
  }
  /* The IR has no per-channel scale, so y = s*x + t is a layer with a
   * diagonal weight: a Gemm for [N, C], a 1x1 Conv for [N, C, H, W] (and
   * for [N, C, L] through a reshape to [N, C, L, 1]). */
  double *diag = calloc(ch * ch, sizeof *diag);
  if (diag == NULL) {
    free(s);
    free(t);
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < ch; i++)
    diag[i * ch + i] = s[i];
  free(s);
  char pn[80];
  size_t wd[4] = {ch, ch, 1, 1};
  snprintf(pn, sizeof pn, "%.60s.scale", mpc__onnx_node_name(c, k));
  int wn = mpc__onnx_make_param(c, k, pn, xs.ndim == 2 ? 2 : 4, wd, diag);
  if (wn < 0) {
    free(t);
    return wn;
  }
  snprintf(pn, sizeof pn, "%.60s.shift", mpc__onnx_node_name(c, k));
  int bn = mpc__onnx_make_param(c, k, pn, 1, wd, t);
  if (bn < 0)
    return bn;
  mpc_node_t nd;
  int r;
  if (xs.ndim == 2) {
    mpc__onnx_node_init(&nd, MPC_OP_GEMM, x, wn, bn);
    r = mpc__onnx_add_node(c, k, &nd);
  } else {
    int xin = x;
    if (xs.ndim == 3) {
      mpc__onnx_node_init(&nd, MPC_OP_RESHAPE, x, -1, -1);
      nd.shape = xs;
      nd.shape.ndim = 4;
      nd.shape.dim[3] = 1;
      if ((xin = mpc__onnx_add_node(c, k, &nd)) < 0)
        return xin;
    }
    mpc__onnx_node_init(&nd, MPC_OP_CONV, xin, wn, bn);
    r = mpc__onnx_add_node(c, k, &nd);
    if (r >= 0 && xs.ndim == 3) {
      mpc__onnx_node_init(&nd, MPC_OP_RESHAPE, r, -1, -1);
      nd.shape = xs;
      r = mpc__onnx_add_node(c, k, &nd);
    }
  }
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

/* Input j, a constant of the owner, times factor as a new PARAM: returns 1
 * and sets *node, 0 if input j is absent or not a float constant (left to the
 * caller), or a negative error. */
static int scaled_operand(ctx_t *c, size_t k, size_t j, double factor, int *node) {
  if (mpc__onnx_in_name(c, k, j) == NULL)
    return 0;
  int rc;
  ent_t *e = mpc__onnx_in_ent(c, k, j, 0, &rc);
  if (e == NULL)
    return rc;
  if (e->kind != V_CONST || c->konst[e->kidx].t.f == NULL)
    return 0;
  const mpc__ctensor_t *t = &c->konst[e->kidx].t;
  double *d = mpc__onnx_dup_doubles(t->f, t->numel);
  if (d == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t i = 0; i < t->numel; i++)
    d[i] *= factor;
  char name[80];
  snprintf(name, sizeof name, "%s*%s", j == 1 ? "alpha" : "beta", e->name);
  int r = mpc__onnx_make_param(c, k, name, t->ndim, t->dim, d);
  if (r < 0)
    return r;
  *node = r;
  return 1;
}

/* Emits node nd of node k with its own weight (input 1, required) and bias
 * (input 2, optional) as operands. */
int mpc__onnx_emit_plain(ctx_t *c, size_t k, mpc_node_t *nd) {
  int rc;
  if ((nd->in[1] < 0 && (rc = mpc__onnx_in_operand(c, k, 1, 1, &nd->in[1])) != 0) ||
      (nd->in[2] < 0 && (rc = mpc__onnx_in_operand(c, k, 2, 0, &nd->in[2])) != 0))
    return rc;
  int r = mpc__onnx_add_node(c, k, nd);
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

static int op_gemm(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"alpha", "beta", "transA", "transB", NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0)
    return rc;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_GEMM, -1, -1, -1);
  int64_t ta, tb;
  if ((rc = mpc__onnx_attr_float(c, k, "alpha", 1.0, &nd.attr.alpha)) != 0 ||
      (rc = mpc__onnx_attr_float(c, k, "beta", 1.0, &nd.attr.beta)) != 0 ||
      (rc = mpc__onnx_attr_int(c, k, "transA", 0, &ta)) != 0 ||
      (rc = mpc__onnx_attr_int(c, k, "transB", 0, &tb)) != 0)
    return rc;
  nd.attr.trans_a = ta != 0;
  nd.attr.trans_b = tb != 0;
  if ((rc = mpc__onnx_in_operand(c, k, 0, 1, &nd.in[0])) != 0)
    return rc;

  int folded;
  if ((rc = mpc__onnx_fold_gemm(c, k, &nd, &folded)) != 0 || folded)
    return rc;
  /* alpha and beta are the owner's numbers too: folded into its constant B
   * and C (as new secret parameters), they never reach the public graph. */
  if (nd.attr.alpha != 1.0 && (rc = scaled_operand(c, k, 1, nd.attr.alpha, &nd.in[1])) > 0)
    nd.attr.alpha = 1.0;
  if (rc >= 0 && nd.attr.beta != 1.0 && (rc = scaled_operand(c, k, 2, nd.attr.beta, &nd.in[2])) > 0)
    nd.attr.beta = 1.0;
  if (rc < 0)
    return rc;
  return mpc__onnx_emit_plain(c, k, &nd);
}

static int op_matmul(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0)
    return rc;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_MATMUL, -1, -1, -1);
  if ((rc = mpc__onnx_in_operand(c, k, 0, 1, &nd.in[0])) != 0 ||
      (rc = mpc__onnx_in_operand(c, k, 1, 1, &nd.in[1])) != 0)
    return rc;
  int r = mpc__onnx_add_node(c, k, &nd);
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

static int emit_mulc(ctx_t *c, size_t k, int x, double v) {
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_MULC, x, -1, -1);
  nd.attr.scalar = v;
  return mpc__onnx_add_node(c, k, &nd);
}

static int op_addsub(ctx_t *c, size_t k, int sub) {
  static const char *const known[] = {NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0)
    return rc;
  ent_t *a = mpc__onnx_in_ent(c, k, 0, 1, &rc);
  if (a == NULL)
    return rc;
  ent_t *b = mpc__onnx_in_ent(c, k, 1, 1, &rc);
  if (b == NULL)
    return rc;
  if (a->kind == V_PAD)
    return mpc__onnx_pad_error(c, k, a);
  if (b->kind == V_PAD)
    return mpc__onnx_pad_error(c, k, b);
  if (a->kind == V_CONST && b->kind == V_CONST)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "both inputs are constants (export with constant "
                           "folding)");
  int an, bn;
  if ((rc = mpc__onnx_in_operand(c, k, 0, 1, &an)) != 0 ||
      (rc = mpc__onnx_in_operand(c, k, 1, 1, &bn)) != 0)
    return rc;
  /* The IR broadcasts only its second operand. When the first is the
   * smaller one (a constant bias on the left, or a broadcast activation),
   * swap them; for Sub that computes b - a, so negate after. */
  const mpc_shape_t *as = shape_of(c, an), *bs = shape_of(c, bn);
  int swap = a->kind == V_CONST || mpc_shape_numel(as) < mpc_shape_numel(bs);
  if (b->kind == V_CONST)
    swap = 0;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, sub ? MPC_OP_SUB : MPC_OP_ADD, swap ? bn : an, swap ? an : bn, -1);
  int r = mpc__onnx_add_node(c, k, &nd);
  if (r >= 0 && swap && sub)
    r = emit_mulc(c, k, r, -1.0);
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

/* The owner's constant factor of a Mul or Div as a PARAM: scales are weights
 * (DESIGN.md), so they are secret-shared like any other, never written into
 * the public graph. A Div takes the reciprocal, a new parameter. */
static int factor_param(ctx_t *c, size_t k, size_t j, ent_t *kc, int div, int *node) {
  const mpc__ctensor_t *t = &c->konst[kc->kidx].t;
  char nb[16];
  if (t->f == NULL)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE,
                           "constant '%s' has data type %s (want FLOAT or DOUBLE)", kc->name,
                           mpc__onnx_dtype_name(t->dtype, nb));
  if (!div)
    return mpc__onnx_in_operand(c, k, j, 1, node);
  double *d = mpc__onnx_dup_doubles(t->f, t->numel);
  if (d == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t i = 0; i < t->numel; i++) {
    if (d[i] == 0.0) {
      free(d);
      return mpc__onnx_nfail(c, k, TANDEM_ERANGE, "division by zero (divisor '%s')", kc->name);
    }
    d[i] = 1.0 / d[i];
  }
  char name[80];
  snprintf(name, sizeof name, "1/%s", kc->name);
  int r = mpc__onnx_make_param(c, k, name, t->ndim, t->dim, d);
  if (r < 0)
    return r;
  *node = r;
  return 0;
}

static int op_muldiv(ctx_t *c, size_t k, int div) {
  static const char *const known[] = {NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0)
    return rc;
  ent_t *a = mpc__onnx_in_ent(c, k, 0, 1, &rc);
  if (a == NULL)
    return rc;
  ent_t *b = mpc__onnx_in_ent(c, k, 1, 1, &rc);
  if (b == NULL)
    return rc;
  if (a->kind == V_CONST && b->kind == V_CONST)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "both inputs are constants (export with constant "
                           "folding)");
  if (a->kind == V_PAD)
    return mpc__onnx_pad_error(c, k, a);
  if (b->kind == V_PAD)
    return mpc__onnx_pad_error(c, k, b);
  int xn, fn;
  if (div && b->kind != V_CONST) {
    /* a / b = a times the reciprocal gate of b (its private domain, README). */
    if (a->kind == V_CONST)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                             "a constant divided by a computed value is not supported");
    mpc_node_t rn;
    mpc__onnx_node_init(&rn, MPC_OP_RECIP, b->node, -1, -1);
    int rb = mpc__onnx_add_node(c, k, &rn);
    if (rb < 0)
      return rb;
    xn = a->node;
    fn = rb;
    if (mpc_shape_numel(shape_of(c, xn)) < mpc_shape_numel(shape_of(c, fn))) {
      xn = rb;
      fn = a->node;
    }
  } else if (a->kind == V_CONST || b->kind == V_CONST) {
    ent_t *x = a->kind == V_CONST ? b : a, *kc = a->kind == V_CONST ? a : b;
    xn = x->node;
    if ((rc = factor_param(c, k, a->kind == V_CONST ? 0 : 1, kc, div, &fn)) != 0)
      return rc;
  } else {
    /* Two activations: the IR broadcasts only its second operand. */
    xn = a->node;
    fn = b->node;
    if (mpc_shape_numel(shape_of(c, xn)) < mpc_shape_numel(shape_of(c, fn))) {
      xn = b->node;
      fn = a->node;
    }
  }
  if (shape_of(c, fn)->ndim > shape_of(c, xn)->ndim)
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "the factor has more dimensions than the input");
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_MUL, xn, fn, -1);
  int r = mpc__onnx_add_node(c, k, &nd);
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

static int op_relu(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x;
  if (rc != 0 || (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_RELU, x, -1, -1);
  int r = mpc__onnx_add_node(c, k, &nd);
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

/* Dropout's mask output at inference: all true, of x's shape (a constant). */
static int dropout_mask(ctx_t *c, size_t k, const ent_t *x) {
  const mpc_shape_t *s = shape_of(c, x->node);
  mpc__ctensor_t t;
  memset(&t, 0, sizeof t);
  t.dtype = ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
  t.ndim = s->ndim;
  for (unsigned d = 0; d < s->ndim; d++)
    t.dim[d] = s->dim[d];
  t.numel = mpc_shape_numel(s);
  if ((t.i = malloc(t.numel * sizeof *t.i)) == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t i = 0; i < t.numel; i++)
    t.i[i] = 1;
  return mpc__onnx_def_new_const(c, k, 1, &t);
}

/* Identity, and Dropout at inference: training_mode (an input from opset
 * 12, read at import) true is accepted only with ratio 0, where it is the
 * identity too; the mask output is all true. */
static int op_identity(ctx_t *c, size_t k, int dropout) {
  static const char *const kid[] = {NULL};
  static const char *const kdrop[] = {"ratio", "seed", "is_test", NULL};
  int rc = mpc__onnx_attr_check(c, k, dropout ? kdrop : kid);
  if (rc != 0)
    return rc;
  ent_t *e = mpc__onnx_in_ent(c, k, 0, 1, &rc);
  if (e == NULL)
    return rc;
  if (dropout) {
    int64_t is_test;
    if ((rc = mpc__onnx_attr_int(c, k, "is_test", 1, &is_test)) != 0)
      return rc;
    const mpc__ctensor_t *tm = NULL, *ratio = NULL;
    if (mpc__onnx_in_name(c, k, 2) != NULL && (rc = mpc__onnx_in_const(c, k, 2, 0, &tm)) != 0)
      return rc;
    if (mpc__onnx_in_name(c, k, 1) != NULL && (rc = mpc__onnx_in_const(c, k, 1, 0, &ratio)) != 0)
      return rc;
    int zero = ratio != NULL && ratio->numel == 1 && ratio->f != NULL && ratio->f[0] == 0;
    if (tm != NULL && (tm->numel != 1 || (tm->i != NULL ? tm->i[0] : tm->f[0]) != 0) && !zero)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                             "training_mode=true is supported only with ratio 0 "
                             "(inference only)");
    ent_t *m = nodep(c, k)->n_output > 1 ? mpc__onnx_out_ent(c, k, 1) : NULL;
    if (m != NULL && m->nuse > 0) {
      if (e->kind != V_ACT)
        return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "the mask of a constant is not supported");
      if ((rc = dropout_mask(c, k, e)) != 0)
        return rc;
    }
  }
  mpc__onnx_def_alias(c, k, 0, e);
  return 0;
}

/* Constant: a tensor (or a float or int, or lists of them) known at import. */
static int op_constant(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"value", "value_float", "value_floats", "value_int",
                                      "value_ints", NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0)
    return rc;
  const Onnx__NodeProto *n = nodep(c, k);
  if (n->n_attribute != 1)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "needs exactly one value attribute, has %zu",
                           n->n_attribute);
  const attr_t *a = n->attribute[0];
  mpc__ctensor_t t;
  memset(&t, 0, sizeof t);
  if (strcmp(a->name, "value") == 0) {
    char why[300];
    if (!is_type(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR, a->t != NULL) || a->t == NULL)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "value is not a tensor");
    if ((rc = mpc__ctensor_from_proto(a->t, &t, why, sizeof why)) != 0)
      return mpc__onnx_nfail(c, k, rc, "value: %s", why);
  } else {
    int isf = strcmp(a->name, "value_float") == 0 || strcmp(a->name, "value_floats") == 0;
    int list = a->name[strlen(a->name) - 1] == 's';
    int ok = list ? is_type(a, isf ? ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
                                   : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS,
                            isf ? a->n_floats > 0 : a->n_ints > 0)
                  : is_type(a, isf ? ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
                                   : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT,
                            isf ? a->has_f : a->has_i);
    if (!ok)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "attribute '%s' has the wrong type", a->name);
    size_t cnt = list ? (isf ? a->n_floats : a->n_ints) : 1;
    t.dtype = isf ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t.ndim = list ? 1 : 0;
    t.dim[0] = cnt;
    t.numel = cnt;
    if (isf)
      t.f = malloc((cnt ? cnt : 1) * sizeof *t.f);
    else
      t.i = malloc((cnt ? cnt : 1) * sizeof *t.i);
    if (t.f == NULL && t.i == NULL)
      return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
      if (isf)
        t.f[i] = list ? (double)a->floats[i] : (double)a->f;
      else
        t.i[i] = list ? a->ints[i] : a->i;
    }
  }
  return mpc__onnx_def_new_const(c, k, 0, &t);
}

/* The supported operators of the default domain, sorted by op_type (for
 * bsearch); variant tells apart the operators one handler serves. */
static const op_entry_t ops[] = {
    {"Add", op_addsub, 0},
    {"AveragePool", mpc__onnx_op_pool, 0},
    {"BatchNormalization", op_batchnorm, 0},
    {"Cast", mpc__onnx_op_cast, 0},
    {"Clip", mpc__onnx_op_clip, 0},
    {"Concat", mpc__onnx_op_concat, 0},
    {"Constant", op_constant, 0},
    {"ConstantOfShape", mpc__onnx_op_const_of_shape, 0},
    {"Conv", mpc__onnx_op_conv, 0},
    {"ConvTranspose", mpc__onnx_op_convtranspose, 0},
    {"Div", op_muldiv, 1},
    {"Dropout", op_identity, 1},
    {"Expand", mpc__onnx_op_expand, 0},
    {"Flatten", op_flatten, 0},
    {"Gather", mpc__onnx_op_gather, 0},
    {"Gemm", op_gemm, 0},
    {"GlobalAveragePool", mpc__onnx_op_gap, 0},
    {"GlobalMaxPool", mpc__onnx_op_gap, 1},
    {"HardSigmoid", mpc__onnx_op_hard, 0},
    {"HardSwish", mpc__onnx_op_hard, 1},
    {"Identity", op_identity, 0},
    {"LeakyRelu", mpc__onnx_op_leaky, 0},
    {"LogSoftmax", mpc__onnx_op_softmax, 1},
    {"MatMul", op_matmul, 0},
    {"Max", mpc__onnx_op_variadic, 2},
    {"MaxPool", mpc__onnx_op_pool, 1},
    {"Mean", mpc__onnx_op_variadic, 1},
    {"Min", mpc__onnx_op_variadic, 3},
    {"Mul", op_muldiv, 0},
    {"PRelu", mpc__onnx_op_prelu, 0},
    {"Pad", mpc__onnx_op_pad, 0},
    {"ReduceMax", mpc__onnx_op_reduce, 2},
    {"ReduceMean", mpc__onnx_op_reduce, 1},
    {"ReduceSum", mpc__onnx_op_reduce, 0},
    {"Relu", op_relu, 0},
    {"Reshape", op_reshape, 0},
    {"Resize", mpc__onnx_op_resize, 0},
    {"Shape", mpc__onnx_op_shape, 0},
    {"Slice", mpc__onnx_op_slice, 0},
    {"Softmax", mpc__onnx_op_softmax, 0},
    {"Split", mpc__onnx_op_split, 0},
    {"Squeeze", op_squeeze, 0},
    {"Sub", op_addsub, 1},
    {"Sum", mpc__onnx_op_variadic, 0},
    {"Transpose", op_transpose, 0},
    {"Unsqueeze", op_squeeze, 1},
    {"Upsample", mpc__onnx_op_resize, 1},
};

/* ---- smooth functions (gate_smooth.c) ---------------------------------- */

/* Sigmoid, Tanh, Exp, Erf, Reciprocal, Sqrt (variant: the mpc_op_t) and
 * Gelu (variant -1: its `approximate` attribute picks the form). */
static int op_smooth(ctx_t *c, size_t k, int variant) {
  static const char *const known[] = {NULL};
  static const char *const kgelu[] = {"approximate", NULL};
  int rc = mpc__onnx_attr_check(c, k, variant < 0 ? kgelu : known), x;
  mpc_op_t op = (mpc_op_t)variant;
  if (rc == 0 && variant < 0) {
    char appr[16];
    if ((rc = mpc__onnx_attr_str(c, k, "approximate", "none", appr, sizeof appr)) != 0)
      return rc;
    if (strcmp(appr, "none") == 0)
      op = MPC_OP_GELU;
    else if (strcmp(appr, "tanh") == 0)
      op = MPC_OP_GELU_TANH;
    else
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "approximate='%.20s' is not supported",
                             appr);
  }
  if (rc != 0 || (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, op, x, -1, -1);
  int r = mpc__onnx_add_node(c, k, &nd);
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

/* Softmax: the IR's is along the last axis. Opsets 13 on take one axis
 * (a transpose to the last and back when it is another); before 13 the
 * input is seen as 2-D, [dims before axis] x [dims from axis] (a reshape to
 * that and back). */
int mpc__onnx_op_softmax_private(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"axis", NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x;
  if (rc != 0 || (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  mpc_shape_t xs = *shape_of(c, x);
  int64_t axis;
  if ((rc = mpc__onnx_attr_int(c, k, "axis", c->opset >= 13 ? -1 : 1, &axis)) != 0)
    return rc;
  int64_t rank = xs.ndim;
  if (axis < -rank || axis >= (rank ? rank : 1))
    return mpc__onnx_nfail(c, k, TANDEM_EINVAL, "axis %" PRId64 " out of range", axis);
  unsigned a = (unsigned)(axis < 0 ? axis + rank : axis), last = xs.ndim ? xs.ndim - 1 : 0;
  mpc_node_t nd;
  int cur = x;
  mpc_shape_t flat = {2, {1, 1}};
  unsigned perm[MPC_MAX_DIMS];
  for (unsigned d = 0; d < MPC_MAX_DIMS; d++)
    perm[d] = d;
  perm[a] = last;
  perm[last] = a;
  int pre = a != last ? (c->opset >= 13 ? 1 : 2) : 0; /* 1: transpose, 2: reshape */
  if (pre == 2)
    for (unsigned d = 0; d < xs.ndim; d++)
      flat.dim[d < a ? 0 : 1] *= xs.dim[d];
  for (int step = 0; step < 3; step++) {
    if (step != 1 && pre == 0)
      continue;
    if (step == 1) {
      mpc__onnx_node_init(&nd, MPC_OP_SOFTMAX, cur, -1, -1);
    } else if (pre == 1) {
      mpc__onnx_node_init(&nd, MPC_OP_TRANSPOSE, cur, -1, -1);
      memcpy(nd.attr.perm, perm, sizeof perm);
    } else {
      mpc__onnx_node_init(&nd, MPC_OP_RESHAPE, cur, -1, -1);
      nd.shape = step == 0 ? flat : xs;
    }
    if ((cur = mpc__onnx_add_node(c, k, &nd)) < 0)
      return cur;
  }
  mpc__onnx_def_act(c, k, 0, cur);
  return 0;
}

/* LayerNormalization (opset 17): the IR's last-axis LayerNorm (inputs
 * reshaped to [dims before axis] x [dims from axis] and back when axis is not
 * the last), epsilon the owner's one-element parameter, then Mul by Scale
 * and Add of B (broadcast over the normalized dimensions). The Mean and
 * InvStdDev outputs are refused when used. */
static int op_layernorm(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"axis", "epsilon", "stash_type", NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x, sn = -1, bn = -1;
  if (rc != 0 || (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  for (size_t j = 1; j < nodep(c, k)->n_output; j++)
    if (mpc__onnx_out_ent(c, k, j) != NULL && mpc__onnx_out_ent(c, k, j)->nuse > 0)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "the Mean and InvStdDev outputs are not supported");
  int64_t axis, stash;
  double eps;
  if ((rc = mpc__onnx_attr_int(c, k, "axis", -1, &axis)) != 0 ||
      (rc = mpc__onnx_attr_int(c, k, "stash_type", 1, &stash)) != 0 ||
      (rc = mpc__onnx_attr_float(c, k, "epsilon", 1e-5, &eps)) != 0)
    return rc;
  if (stash != 1 || !(eps >= 0) || !isfinite(eps))
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "stash_type %" PRId64 " or epsilon %g not supported",
                           stash, eps);
  mpc_shape_t xs = *shape_of(c, x);
  int64_t rank = xs.ndim;
  if (rank < 1 || axis < -rank || axis >= rank)
    return mpc__onnx_nfail(c, k, TANDEM_EINVAL, "axis %" PRId64 " out of range", axis);
  unsigned a = (unsigned)(axis < 0 ? axis + rank : axis);
  int fold = a + 1 == xs.ndim && mpc__onnx_ln_foldable(c, k, xs.dim[a]);
  if (!fold && ((rc = mpc__onnx_in_operand(c, k, 1, 1, &sn)) != 0 ||
      (mpc__onnx_in_name(c, k, 2) != NULL && (rc = mpc__onnx_in_operand(c, k, 2, 1, &bn)) != 0)))
    return rc;
  double *ed = mpc__onnx_dup_doubles(&eps, 1);
  if (ed == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  size_t one = 1;
  int en = mpc__onnx_make_param(c, k, "epsilon", 1, &one, ed);
  if (en < 0)
    return en;
  mpc_node_t nd;
  if (fold) { /* Scale and B into the MatMul after it */
    mpc__onnx_node_init(&nd, MPC_OP_LNORM, x, en, -1);
    int ln = mpc__onnx_add_node(c, k, &nd);
    return ln < 0 ? ln : mpc__onnx_ln_fold_matmul(c, k, xs.dim[a], ln);
  }
  mpc_shape_t flat = {2, {1, 1}};
  for (unsigned d = 0; d < xs.ndim; d++)
    flat.dim[d < a ? 0 : 1] *= xs.dim[d];
  int reshape = a + 1 != xs.ndim, cur = x;
  for (int step = 0; step < 5; step++) {
    if ((step == 0 || step == 2) && !reshape)
      continue;
    if (step == 4 && bn < 0)
      break;
    if (step == 1) {
      mpc__onnx_node_init(&nd, MPC_OP_LNORM, cur, en, -1);
    } else if (step == 3 || step == 4) {
      mpc__onnx_node_init(&nd, step == 3 ? MPC_OP_MUL : MPC_OP_ADD, cur, step == 3 ? sn : bn, -1);
    } else {
      mpc__onnx_node_init(&nd, MPC_OP_RESHAPE, cur, -1, -1);
      nd.shape = step == 0 ? flat : xs;
    }
    if ((cur = mpc__onnx_add_node(c, k, &nd)) < 0)
      return cur;
  }
  mpc__onnx_def_act(c, k, 0, cur);
  return 0;
}

/* Sorted by op_type too; searched after ops[] (kept apart so that the
 * operators of different changes stay grouped). */
static const op_entry_t smooth_ops[] = {
    {"Erf", op_smooth, MPC_OP_ERF},         {"Exp", op_smooth, MPC_OP_EXP},
    {"Gelu", op_smooth, -1},                {"LayerNormalization", op_layernorm, 0},
    {"Reciprocal", op_smooth, MPC_OP_RECIP},
    {"Sigmoid", op_smooth, MPC_OP_SIGMOID},
    {"Sqrt", op_smooth, MPC_OP_SQRT},
    {"Tanh", op_smooth, MPC_OP_TANH},
};

static int op_cmp(const void *key, const void *entry) {
  return strcmp(key, ((const op_entry_t *)entry)->op_type);
}

int mpc__onnx_run_node(ctx_t *c, size_t k) {
  const Onnx__NodeProto *n = nodep(c, k);
  const char *op = str_or(n->op_type, "");
  if (n->domain != NULL && n->domain[0] != '\0' && strcmp(n->domain, "ai.onnx") != 0)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "operator %.80s.%.80s is not supported (only the "
                           "default ONNX domain)",
                           n->domain, op);
  int folded, rc = mpc__onnx_fold_node(c, k, &folded);
  if (rc == 0 && !folded && strcmp(op, "Div") == 0)
    rc = mpc__onnx_fold_gelu(c, k, &folded);
  if (rc == 0 && !folded && strcmp(op, "Mul") == 0)
    rc = mpc__onnx_fold_gelu_tanh(c, k, &folded);
  if (rc != 0 || folded)
    return rc;
  const op_entry_t *e = bsearch(op, ops, sizeof ops / sizeof ops[0], sizeof ops[0], op_cmp);
  if (e == NULL)
    e = bsearch(op, smooth_ops, sizeof smooth_ops / sizeof smooth_ops[0], sizeof smooth_ops[0],
                op_cmp);
  if (e != NULL)
    return e->fn(c, k, e->variant);
  return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "operator %.80s is not supported",
                         op[0] ? op : "(empty)");
}
