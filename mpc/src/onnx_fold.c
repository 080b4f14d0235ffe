/* onnx_fold.c - the folding and constant passes of the ONNX importer: a
 * BatchNormalization that directly follows a Conv or Gemm with constant
 * weights, as the only reader of its output, folded into that layer's
 * weights and bias; the constants computed at import (a reshaped or
 * transposed constant is a new constant, never an IR node); and the pass
 * that runs the Constant nodes before the others.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_imp.h"

/* Per-channel y = s*x + t for BatchNormalization node k with ch channels:
 * s = scale / sqrt(var + eps), t = bias - mean * s. Validates the node
 * (attributes, constant parameters of length ch, one output). With quiet, a
 * failure leaves no message (the caller only asks whether folding is
 * possible; the node reports its own error later). */
int mpc__onnx_bn_params(ctx_t *c, size_t k, size_t ch, int quiet, double **sp, double **tp) {
  static const char *const known[] = {"epsilon", "momentum", "spatial", "training_mode", NULL};
  char *save = c->err;
  if (quiet)
    c->err = NULL;
  double *s = NULL, *t = NULL, eps;
  int64_t tm, spatial;
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc == 0)
    rc = mpc__onnx_attr_float(c, k, "epsilon", 1e-5, &eps);
  if (rc == 0)
    rc = mpc__onnx_attr_int(c, k, "training_mode", 0, &tm);
  if (rc == 0)
    rc = mpc__onnx_attr_int(c, k, "spatial", 1, &spatial);
  if (rc == 0 && tm != 0)
    rc = mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                         "training_mode=%" PRId64 " is not supported (inference "
                         "only)",
                         tm);
  if (rc == 0 && spatial != 1)
    rc = mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "spatial=%" PRId64 " is not supported", spatial);
  for (size_t j = 1; rc == 0 && j < nodep(c, k)->n_output; j++)
    if (mpc__onnx_out_ent(c, k, j) != NULL && mpc__onnx_out_ent(c, k, j)->nuse > 0)
      rc = mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "output %zu (running statistics) is not supported", j);
  const mpc__ctensor_t *p[4] = {NULL, NULL, NULL, NULL};
  for (size_t j = 0; rc == 0 && j < 4; j++) {
    rc = mpc__onnx_in_const(c, k, j + 1, 1, &p[j]);
    if (rc == 0 && (p[j]->f == NULL || p[j]->numel != ch || p[j]->ndim != 1))
      rc = mpc__onnx_nfail(c, k, TANDEM_ESHAPE,
                           "parameter %zu must be a 1-D float tensor of %zu values "
                           "(one per channel)",
                           j + 1, ch);
  }
  if (rc == 0 && (s = malloc(ch * sizeof *s)) == NULL)
    rc = mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  if (rc == 0 && (t = malloc(ch * sizeof *t)) == NULL)
    rc = mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t i = 0; rc == 0 && i < ch; i++) {
    double v = p[3]->f[i] + eps;
    if (!(v > 0.0) || !isfinite(v))
      rc = mpc__onnx_nfail(c, k, TANDEM_ERANGE, "variance + epsilon of channel %zu is not positive",
                           i);
    else {
      s[i] = p[0]->f[i] / sqrt(v);
      t[i] = p[1]->f[i] - p[2]->f[i] * s[i];
      if (!isfinite(s[i]) || !isfinite(t[i]))
        rc = mpc__onnx_nfail(c, k, TANDEM_ERANGE, "channel %zu has a non-finite scale or shift", i);
    }
  }
  c->err = save;
  if (rc != 0) {
    free(s);
    free(t);
    return rc;
  }
  *sp = s;
  *tp = t;
  return 0;
}

/* The BatchNormalization node that may be folded into node k (a Conv or a
 * Gemm): the only reader of k's output, not a graph output itself. SIZE_MAX
 * when there is none. */
static size_t bn_after(ctx_t *c, size_t k) {
  ent_t *e = mpc__onnx_out_ent(c, k, 0);
  if (e == NULL || e->nuse != 1 || e->gout)
    return SIZE_MAX;
  const Onnx__NodeProto *u = nodep(c, e->user);
  if (u->op_type == NULL || strcmp(u->op_type, "BatchNormalization") != 0 ||
      (u->domain != NULL && u->domain[0] != '\0' && strcmp(u->domain, "ai.onnx") != 0))
    return SIZE_MAX;
  const char *x = mpc__onnx_in_name(c, e->user, 0);
  if (x == NULL || strcmp(x, e->name) != 0)
    return SIZE_MAX;
  return e->user;
}

/* The constant behind input j (of any type), or NULL when it is not one. */
const mpc__ctensor_t *mpc__onnx_peek_any_const(ctx_t *c, size_t k, size_t j) {
  const char *nm = mpc__onnx_in_name(c, k, j);
  ent_t *e = nm != NULL ? mpc__onnx_lookup(c, nm) : NULL;
  if (e == NULL || e->kind != V_CONST)
    return NULL;
  if (e->src == S_INIT) {
    char *save = c->err;
    c->err = NULL;
    int rc = mpc__onnx_load_init(c, k, e);
    c->err = save;
    if (rc != 0)
      return NULL;
  }
  return &c->konst[e->kidx].t;
}

/* The constant behind input j, or NULL when it is not a float constant. */
const mpc__ctensor_t *mpc__onnx_peek_const(ctx_t *c, size_t k, size_t j) {
  const mpc__ctensor_t *t = mpc__onnx_peek_any_const(c, k, j);
  return t != NULL && t->f != NULL ? t : NULL;
}

/* Output 0 of BatchNormalization node bk, folded into IR node r, which
 * node k (the Conv or Gemm) emitted. */
static void bn_folded(ctx_t *c, size_t k, size_t bk, int r) {
  mpc__onnx_def_act(c, bk, 0, r);
  mpc__onnx_out_ent(c, k, 0)->folded = 1;
  c->done[bk] = 1;
}

/* Emits node nd of node k with a following BatchNormalization (node bk)
 * folded in: nd's weight operand becomes the PARAM "<node>.<wsuffix>" of the
 * folded weights w2 (wndim, wdim) and its bias the PARAM "<node>.<bsuffix>"
 * of the folded bias b2 (length nb). Takes ownership of w2 and b2. */
static int emit_folded(ctx_t *c, size_t k, size_t bk, mpc_node_t *nd, const char *wsuffix,
                       unsigned wndim, const size_t *wdim, double *w2, const char *bsuffix,
                       size_t nb, double *b2) {
  char pn[80];
  size_t bd[1] = {nb};
  snprintf(pn, sizeof pn, "%.60s.%s", mpc__onnx_node_name(c, k), wsuffix);
  nd->in[1] = mpc__onnx_make_param(c, k, pn, wndim, wdim, w2);
  if (nd->in[1] < 0) {
    free(b2);
    return nd->in[1];
  }
  snprintf(pn, sizeof pn, "%.60s.%s", mpc__onnx_node_name(c, k), bsuffix);
  if ((nd->in[2] = mpc__onnx_make_param(c, k, pn, 1, bd, b2)) < 0)
    return nd->in[2];
  int r = mpc__onnx_add_node(c, k, nd);
  if (r < 0)
    return r;
  bn_folded(c, k, bk, r);
  return 0;
}

/* Conv node k (its IR node nd, input set) with a following
 * BatchNormalization folded into its constant weights and bias, if it can
 * be: then nd is emitted and *folded set; else both are left to the caller. */
/* Inputs 1 and 2 (if named) of node k as float constants, or NULL. Twice:
 * a peek may load an initializer and so move c->konst, which the first
 * pass's pointers point into; the second pass loads nothing. The caller
 * calls it again after anything else that may load a constant. */
static void peek_wb(ctx_t *c, size_t k, const mpc__ctensor_t **w, const mpc__ctensor_t **b) {
  for (int pass = 0; pass < 2; pass++) {
    *w = mpc__onnx_peek_const(c, k, 1);
    *b = mpc__onnx_in_name(c, k, 2) != NULL ? mpc__onnx_peek_const(c, k, 2) : NULL;
  }
}

int mpc__onnx_fold_conv(ctx_t *c, size_t k, mpc_node_t *nd, int *folded) {
  *folded = 0;
  /* Fold a following BatchNormalization into constant weights and bias. */
  size_t bk = bn_after(c, k);
  const mpc__ctensor_t *wt, *bt;
  peek_wb(c, k, &wt, &bt);
  double *s = NULL, *t = NULL;
  if (bk != SIZE_MAX && wt != NULL && wt->ndim == 4 && wt->numel > 0 &&
      (mpc__onnx_in_name(c, k, 2) == NULL || (bt != NULL && bt->numel == wt->dim[0])) &&
      mpc__onnx_bn_params(c, bk, wt->dim[0], 1, &s, &t) == 0) {
    peek_wb(c, k, &wt, &bt); /* bn_params loaded the BatchNormalization's */
    size_t m = wt->dim[0], per = wt->numel / m;
    double *w2 = mpc__onnx_dup_doubles(wt->f, wt->numel), *b2 = malloc(m * sizeof *b2);
    if (w2 == NULL || b2 == NULL) {
      free(w2);
      free(b2);
      free(s);
      free(t);
      return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < m; i++) {
      for (size_t j = 0; j < per; j++)
        w2[i * per + j] *= s[i];
      b2[i] = (bt != NULL ? bt->f[i] : 0.0) * s[i] + t[i];
    }
    free(s);
    free(t);
    *folded = 1;
    return emit_folded(c, k, bk, nd, "W_bn", 4, wt->dim, w2, "B_bn", m, b2);
  }
  return 0;
}

/* Gemm node k (its IR node nd, attributes and A set) with a following
 * BatchNormalization folded into a constant B and bias, if it can be: then
 * nd is emitted and *folded set; else both are left to the caller. */
int mpc__onnx_fold_gemm(ctx_t *c, size_t k, mpc_node_t *nd, int *folded) {
  *folded = 0;
  /* Fold a following BatchNormalization (over the N output columns) into a
   * constant B and a bias that is a row vector, scalar or absent. */
  size_t bk = bn_after(c, k);
  const mpc__ctensor_t *bt, *ct;
  peek_wb(c, k, &bt, &ct);
  size_t n = bt != NULL && bt->ndim == 2 ? bt->dim[nd->attr.trans_b ? 0 : 1] : 0;
  int c_ok = mpc__onnx_in_name(c, k, 2) == NULL ||
             (ct != NULL && ct->ndim <= 2 &&
              (ct->numel == 1 || (ct->numel == n && (ct->ndim == 1 || ct->dim[0] == 1))));
  double *s = NULL, *t = NULL;
  if (bk != SIZE_MAX && n > 0 && c_ok && mpc__onnx_bn_params(c, bk, n, 1, &s, &t) == 0) {
    peek_wb(c, k, &bt, &ct); /* bn_params loaded the BatchNormalization's */
    size_t kk = bt->numel / n;
    double *b2 = mpc__onnx_dup_doubles(bt->f, bt->numel), *c2 = malloc(n * sizeof *c2);
    if (b2 == NULL || c2 == NULL) {
      free(b2);
      free(c2);
      free(s);
      free(t);
      return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
    }
    for (size_t j = 0; j < n; j++) {
      double f = nd->attr.alpha * s[j];
      for (size_t i = 0; i < kk; i++)
        b2[nd->attr.trans_b ? j * kk + i : i * n + j] *= f;
      double cv = ct == NULL ? 0.0 : ct->f[ct->numel == 1 ? 0 : j];
      c2[j] = s[j] * nd->attr.beta * cv + t[j];
    }
    free(s);
    free(t);
    nd->attr.alpha = nd->attr.beta = 1.0;
    *folded = 1;
    return emit_folded(c, k, bk, nd, "B_bn", 2, bt->dim, b2, "C_bn", n, c2);
  }
  return 0;
}

/* Output 0 of node k is constant e with new dimensions to (the same elements
 * in the same order): a relabelled copy, a new constant (emit_reshape's
 * constant case). */
int mpc__onnx_const_reshape(ctx_t *c, size_t k, const ent_t *e, const dims_t *to) {
  const mpc__ctensor_t *src = &c->konst[e->kidx].t;
  mpc__ctensor_t t = *src;
  t.ndim = to->ndim;
  memcpy(t.dim, to->dim, sizeof t.dim);
  t.f = NULL;
  t.i = NULL;
  size_t n = src->numel ? src->numel : 1;
  if (src->f != NULL)
    t.f = mpc__onnx_dup_doubles(src->f, src->numel);
  else if ((t.i = malloc(n * sizeof *t.i)) != NULL)
    memcpy(t.i, src->i, src->numel * sizeof *t.i);
  if (t.f == NULL && t.i == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  return mpc__onnx_def_new_const(c, k, 0, &t);
}

/* Output 0 of Transpose node k is constant e, of dimensions in, with its
 * axes permuted by perm: a weight stored the other way round, permuted at
 * import into a new constant. */
int mpc__onnx_const_transpose(ctx_t *c, size_t k, const ent_t *e, dims_t in,
                              const unsigned perm[MPC__CT_MAX_DIMS]) {
  const mpc__ctensor_t *src = &c->konst[e->kidx].t;
  mpc__ctensor_t t = *src;
  size_t n = src->numel, sst[MPC__CT_MAX_DIMS], s = 1;
  for (int d = (int)in.ndim - 1; d >= 0; d--) {
    sst[d] = s;
    s *= in.dim[d];
  }
  for (unsigned d = 0; d < in.ndim; d++)
    t.dim[d] = in.dim[perm[d]];
  t.f = src->f != NULL ? malloc((n ? n : 1) * sizeof *t.f) : NULL;
  t.i = src->i != NULL ? malloc((n ? n : 1) * sizeof *t.i) : NULL;
  if (t.f == NULL && t.i == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  size_t coord[MPC__CT_MAX_DIMS] = {0};
  for (size_t o = 0; o < n; o++) {
    size_t si = 0;
    for (unsigned d = 0; d < in.ndim; d++)
      si += coord[d] * sst[perm[d]];
    if (t.f != NULL)
      t.f[o] = src->f[si];
    else
      t.i[o] = src->i[si];
    for (int d = (int)in.ndim - 1; d >= 0; d--) {
      if (++coord[d] < t.dim[d])
        break;
      coord[d] = 0;
    }
  }
  return mpc__onnx_def_new_const(c, k, 0, &t);
}

/* Constants first: a BatchNormalization folded into the layer before it
 * needs its parameters when that layer is emitted. Runs the Constant nodes
 * (in order) and marks them done. */
int mpc__onnx_const_pass(ctx_t *c, const size_t *order) {
  int rc;
  for (size_t i = 0; i < c->gp->n_node; i++) {
    size_t k = order[i];
    const char *op = str_or(nodep(c, k)->op_type, "");
    if (strcmp(op, "Constant") == 0 && str_or(nodep(c, k)->domain, "")[0] == '\0') {
      if ((rc = mpc__onnx_run_node(c, k)) != 0)
        return rc;
      c->done[k] = 1;
    }
  }
  return 0;
}

/* ---- constant arithmetic: the exporter's shape computations --------------- */

/* The elementwise operators folded when every input is a constant (shape
 * arithmetic: Add/Sub/Mul/Div of dimensions, the Equal/Where pair an
 * exporter writes for a -1 in an Expand shape, Expand of a constant).
 * Constants here are public integers or the owner's own weights, folded
 * where the owner imports the model; an activation never reaches them. */
typedef enum { F_ADD, F_SUB, F_MUL, F_DIV, F_EQUAL, F_LESS, F_GREATER, F_WHERE, F_EXPAND } fop_t;

static const struct {
  const char *op;
  fop_t f;
  size_t nin;
} fold_ops[] = {
    {"Add", F_ADD, 2},     {"Div", F_DIV, 2},     {"Equal", F_EQUAL, 2},
    {"Expand", F_EXPAND, 2}, {"Greater", F_GREATER, 2}, {"Less", F_LESS, 2},
    {"Mul", F_MUL, 2},     {"Sub", F_SUB, 2},     {"Where", F_WHERE, 3},
};

/* Numpy broadcasting of n shapes (aligned to the right) into *out; -1 when
 * they do not broadcast. */
static int bcast_dims(const dims_t *in, size_t n, dims_t *out) {
  unsigned r = 0;
  for (size_t j = 0; j < n; j++)
    r = in[j].ndim > r ? in[j].ndim : r;
  out->ndim = r;
  for (unsigned d = 0; d < r; d++) {
    size_t m = 1;
    for (size_t j = 0; j < n; j++) {
      size_t v = d + in[j].ndim >= r ? in[j].dim[d + in[j].ndim - r] : 1;
      if (v != 1 && m != 1 && v != m)
        return -1;
      m = v != 1 ? v : m;
    }
    out->dim[d] = m;
  }
  return 0;
}

/* Index into a tensor of dims in (broadcast to out) of output coordinate co. */
static size_t bcast_index(const dims_t *in, const dims_t *out, const size_t *co) {
  size_t idx = 0;
  for (unsigned d = 0; d < in->ndim; d++) {
    size_t od = d + out->ndim - in->ndim;
    idx = idx * in->dim[d] + (in->dim[d] == 1 ? 0 : co[od]);
  }
  return idx;
}

static double ct_f(const mpc__ctensor_t *t, size_t i) {
  return t->f != NULL ? t->f[i] : (double)t->i[i];
}

/* Element o of the result: op f of the inputs' elements at ix. Integer
 * arithmetic wraps as int64 does in ONNX Runtime; a division by zero is an
 * error (1 returned). */
static int fold_elem(fop_t f, const mpc__ctensor_t *const *t, const size_t *ix, int isf,
                     double *rf, int64_t *ri) {
  if (f == F_WHERE) {
    int take = t[0]->i != NULL ? t[0]->i[ix[0]] != 0 : t[0]->f[ix[0]] != 0.0;
    const mpc__ctensor_t *s = t[take ? 1 : 2];
    size_t i = ix[take ? 1 : 2];
    *rf = ct_f(s, i);
    *ri = s->i != NULL ? s->i[i] : 0; /* unused when isf (a float may not fit) */
    return 0;
  }
  if (f == F_EXPAND) {
    *rf = ct_f(t[0], ix[0]);
    *ri = t[0]->i != NULL ? t[0]->i[ix[0]] : 0;
    return 0;
  }
  double a = ct_f(t[0], ix[0]), b = ct_f(t[1], ix[1]);
  if (f == F_EQUAL || f == F_LESS || f == F_GREATER) {
    int cmp = isf ? (a > b) - (a < b)
                  : (t[0]->i[ix[0]] > t[1]->i[ix[1]]) - (t[0]->i[ix[0]] < t[1]->i[ix[1]]);
    *ri = f == F_EQUAL ? cmp == 0 : f == F_LESS ? cmp < 0 : cmp > 0;
    return 0;
  }
  if (isf) {
    *rf = f == F_ADD ? a + b : f == F_SUB ? a - b : f == F_MUL ? a * b : a / b;
    return 0;
  }
  uint64_t x = (uint64_t)t[0]->i[ix[0]], y = (uint64_t)t[1]->i[ix[1]];
  if (f == F_DIV) {
    if (y == 0 || ((int64_t)x == INT64_MIN && (int64_t)y == -1))
      return 1;
    *ri = (int64_t)x / (int64_t)y;
  } else {
    *ri = (int64_t)(f == F_ADD ? x + y : f == F_SUB ? x - y : x * y);
  }
  return 0;
}

/* Checks the inputs of a folded node k (n constants t, dims in) and the
 * result's type: *isf (arithmetic in doubles) and *dtype. */
static int fold_types(ctx_t *c, size_t k, fop_t f, const mpc__ctensor_t *const *t, int *isf,
                      int *dtype) {
  const mpc__ctensor_t *a = t[f == F_WHERE ? 1 : 0], *b = t[f == F_WHERE ? 2 : 1];
  if (f == F_EXPAND) {
    *isf = a->f != NULL;
    *dtype = a->dtype;
    return 0;
  }
  if ((a->f != NULL) != (b->f != NULL))
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "constant inputs of different types");
  if (f == F_WHERE && t[0]->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__BOOL)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "the condition must be a BOOL tensor");
  *isf = a->f != NULL;
  *dtype = f == F_EQUAL || f == F_LESS || f == F_GREATER ? ONNX__TENSOR_PROTO__DATA_TYPE__BOOL
                                                         : a->dtype;
  return 0;
}

/* Evaluates node k of fold_ops entry q, whose inputs are the constants t
 * (for Expand: t[1] the shape), into a new constant. */
static int fold_run(ctx_t *c, size_t k, fop_t f, size_t nin, const mpc__ctensor_t *const *t) {
  dims_t in[3];
  int isf = 0, dtype = 0, rc;
  for (size_t j = 0; j < nin; j++) {
    in[j].ndim = t[j]->ndim;
    memcpy(in[j].dim, t[j]->dim, sizeof in[j].dim);
  }
  if (f == F_EXPAND) { /* the second input is the target shape */
    if (t[1]->i == NULL || t[1]->ndim != 1 || t[1]->numel > MPC__CT_MAX_DIMS)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "the shape must be a 1-D INT64 tensor");
    in[1].ndim = (unsigned)t[1]->numel;
    for (unsigned d = 0; d < in[1].ndim; d++) {
      if (t[1]->i[d] < 1 || (uint64_t)t[1]->i[d] > MPC__CT_MAX_NUMEL)
        return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "shape entry %" PRId64 " is invalid",
                               t[1]->i[d]);
      in[1].dim[d] = (size_t)t[1]->i[d];
    }
  }
  if ((rc = fold_types(c, k, f, t, &isf, &dtype)) != 0)
    return rc;
  mpc__ctensor_t r;
  memset(&r, 0, sizeof r);
  dims_t od = {0, {0}};
  if (bcast_dims(in, nin, &od) != 0)
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "constant inputs that do not broadcast");
  r.dtype = dtype;
  r.ndim = od.ndim;
  memcpy(r.dim, od.dim, sizeof r.dim);
  r.numel = 1;
  for (unsigned d = 0; d < od.ndim; d++) {
    if (od.dim[d] != 0 && r.numel > MPC__CT_MAX_NUMEL / od.dim[d])
      return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "the result is too large");
    r.numel *= od.dim[d];
  }
  int outf = isf && dtype != ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
  size_t n = r.numel ? r.numel : 1;
  if (outf ? (r.f = malloc(n * sizeof *r.f)) == NULL : (r.i = malloc(n * sizeof *r.i)) == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  size_t co[MPC__CT_MAX_DIMS] = {0};
  for (size_t o = 0; o < r.numel; o++) {
    size_t ix[3];
    double vf = 0;
    int64_t vi = 0;
    for (size_t j = 0; j < nin; j++)
      ix[j] = f == F_EXPAND && j == 1 ? 0 : bcast_index(&in[j], &od, co);
    if (fold_elem(f, t, ix, isf, &vf, &vi) != 0) {
      mpc__ctensor_close(&r);
      return mpc__onnx_nfail(c, k, TANDEM_ERANGE, "integer division by zero");
    }
    if (outf)
      r.f[o] = vf;
    else
      r.i[o] = vi;
    for (int d = (int)od.ndim - 1; d >= 0; d--) {
      if (++co[d] < od.dim[d])
        break;
      co[d] = 0;
    }
  }
  return mpc__onnx_def_new_const(c, k, 0, &r);
}

int mpc__onnx_fold_node(ctx_t *c, size_t k, int *folded) {
  *folded = 0;
  const Onnx__NodeProto *n = nodep(c, k);
  const char *op = str_or(n->op_type, "");
  size_t q = 0, nq = sizeof fold_ops / sizeof fold_ops[0];
  while (q < nq && strcmp(fold_ops[q].op, op) != 0)
    q++;
  if (q == nq || n->n_input != fold_ops[q].nin || n->n_attribute != 0)
    return 0;
  const mpc__ctensor_t *t[3];
  for (size_t j = 0; j < n->n_input; j++) {
    const char *nm = mpc__onnx_in_name(c, k, j);
    ent_t *e = nm != NULL ? mpc__onnx_lookup(c, nm) : NULL;
    if (e == NULL || e->kind != V_CONST)
      return 0; /* an activation among the inputs: the handler's */
  }
  /* Every input loaded first: loading an initializer may move c->konst, so
   * the pointers are taken once nothing more is loaded. */
  for (int pass = 0; pass < 2; pass++)
    for (size_t j = 0; j < n->n_input; j++) {
      int rc = mpc__onnx_in_const(c, k, j, 1, &t[j]);
      if (rc != 0)
        return rc;
    }
  *folded = 1;
  return fold_run(c, k, fold_ops[q].f, fold_ops[q].nin, t);
}

int mpc__onnx_const_slice(ctx_t *c, size_t k, const mpc__ctensor_t *t, const dims_t *to,
                          const int64_t *start, const int64_t *step) {
  size_t total = 1;
  for (unsigned d = 0; d < to->ndim; d++)
    total *= to->dim[d]; /* at most t's numel: each axis only shrinks */
  size_t *idx = malloc((total ? total : 1) * sizeof *idx), co[MPC__CT_MAX_DIMS] = {0};
  if (idx == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t o = 0; o < total; o++) {
    size_t si = 0;
    for (unsigned d = 0; d < to->ndim; d++)
      si = si * t->dim[d] + (size_t)(start[d] + (int64_t)co[d] * step[d]);
    idx[o] = si;
    for (int d = (int)to->ndim - 1; d >= 0; d--) {
      if (++co[d] < to->dim[d])
        break;
      co[d] = 0;
    }
  }
  int rc = mpc__onnx_const_pick(c, k, 0, &t, NULL, idx, to);
  free(idx);
  return rc;
}

/* ---- GELU written out: x * (1 + erf(x / sqrt 2)) * 0.5 -------------------- */

/* A chain from node k through u[0 .. n) made one gate of op on activation
 * x: defined as the last node's output; the chain's nodes marked done and
 * its inner values folded (read only inside it). */
static int chain_to_gate(ctx_t *c, size_t k, mpc_op_t op, int x, const size_t *u, int n,
                         int *folded) {
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, op, x, -1, -1);
  int r = mpc__onnx_add_node(c, u[n - 1], &nd);
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, u[n - 1], 0, r);
  mpc__onnx_out_ent(c, k, 0)->folded = 1;
  for (int i = 0; i < n; i++) {
    c->done[u[i]] = 1;
    if (i < n - 1)
      mpc__onnx_out_ent(c, u[i], 0)->folded = 1;
  }
  *folded = 1;
  return 0;
}

/* The only reader of output 0 of node k, if it is an op node of the default
 * domain reading it: its index, else SIZE_MAX. */
static size_t sole_user(ctx_t *c, size_t k, const char *op) {
  ent_t *e = mpc__onnx_out_ent(c, k, 0);
  if (e == NULL || e->nuse != 1 || e->gout)
    return SIZE_MAX;
  const Onnx__NodeProto *u = nodep(c, e->user);
  if (strcmp(str_or(u->op_type, ""), op) != 0 || str_or(u->domain, "")[0] != '\0')
    return SIZE_MAX;
  return e->user;
}

/* The input of node k other than the one named nm (k has two inputs), and
 * whether it is a one-element float constant equal to want (within 1e-6
 * relative: float32's rounding of sqrt 2). */
static int other_is(ctx_t *c, size_t k, const char *nm, double want) {
  const Onnx__NodeProto *n = nodep(c, k);
  if (n->n_input != 2)
    return 0;
  size_t j = strcmp(str_or(mpc__onnx_in_name(c, k, 0), ""), nm) == 0 ? 1 : 0;
  if (strcmp(str_or(mpc__onnx_in_name(c, k, 1 - j), ""), nm) != 0)
    return 0;
  const mpc__ctensor_t *t = mpc__onnx_peek_const(c, k, j);
  return t != NULL && t->numel == 1 && fabs(t->f[0] - want) <= 1e-6 * fabs(want);
}

/* The exact GELU as PyTorch's exporters write it before opset 20: Div(x,
 * sqrt 2) -> Erf -> Add 1 -> Mul by x -> Mul by 0.5, each the only reader of
 * the one before. At node k (the Div) the chain becomes one GELU gate on x
 * (two rounds, against seven for the pieces: the division, erf on a
 * computed value, the product of two activations and the halving), and the
 * four other nodes are marked done. */
int mpc__onnx_fold_gelu(ctx_t *c, size_t k, int *folded) {
  *folded = 0;
  const char *x = mpc__onnx_in_name(c, k, 0);
  ent_t *xe = x != NULL ? mpc__onnx_lookup(c, x) : NULL;
  const mpc__ctensor_t *d = mpc__onnx_peek_const(c, k, 1);
  if (xe == NULL || xe->kind != V_ACT || nodep(c, k)->n_input != 2 || d == NULL ||
      d->numel != 1 || fabs(d->f[0] - M_SQRT2) > 1e-6)
    return 0;
  size_t u[4];
  const char *const ops[4] = {"Erf", "Add", "Mul", "Mul"};
  size_t prev = k;
  for (int i = 0; i < 4; i++) {
    if ((u[i] = sole_user(c, prev, ops[i])) == SIZE_MAX)
      return 0;
    prev = u[i];
  }
  const char *o0 = mpc__onnx_out_ent(c, k, 0)->name, *o1 = mpc__onnx_out_ent(c, u[0], 0)->name;
  const char *o2 = mpc__onnx_out_ent(c, u[1], 0)->name, *o3 = mpc__onnx_out_ent(c, u[2], 0)->name;
  if (strcmp(str_or(mpc__onnx_in_name(c, u[0], 0), ""), o0) != 0 || !other_is(c, u[1], o1, 1.0) ||
      !other_is(c, u[3], o3, 0.5))
    return 0;
  const char *a = mpc__onnx_in_name(c, u[2], 0), *b = mpc__onnx_in_name(c, u[2], 1);
  if (a == NULL || b == NULL || !((strcmp(a, x) == 0 && strcmp(b, o2) == 0) ||
                                  (strcmp(b, x) == 0 && strcmp(a, o2) == 0)))
    return 0;
  return chain_to_gate(c, k, MPC_OP_GELU, xe->node, u, 4, folded);
}

/* 1 if node k has two inputs, named a and b in either order. */
static int reads_pair(ctx_t *c, size_t k, const char *a, const char *b) {
  const char *p = mpc__onnx_in_name(c, k, 0), *q = mpc__onnx_in_name(c, k, 1);
  return nodep(c, k)->n_input == 2 && p != NULL && q != NULL &&
         ((strcmp(p, a) == 0 && strcmp(q, b) == 0) || (strcmp(p, b) == 0 && strcmp(q, a) == 0));
}

/* The tanh form of GELU as PyTorch 1.13 exports F.gelu(approximate='tanh')
 * (opsets before 20 have no Gelu): at node k, Mul(x, x), then Mul by x,
 * Mul by 0.044715, Add x, Mul by sqrt(2/pi), Tanh, Add 1, Mul by x, Mul by
 * 0.5, each the only reader of the one before. The chain becomes one
 * GELU_TANH gate on x: two rounds, against eight for the pieces (two
 * products of activations, the truncations after the constant factors, the
 * tanh and the product by x), and about a third of their preprocessing
 * (BERT-tiny at sequence 16: 0.70 GB per party to 0.47, 114 rounds to 90). The other eight
 * nodes are marked done. */
int mpc__onnx_fold_gelu_tanh(ctx_t *c, size_t k, int *folded) {
  *folded = 0;
  const char *x = mpc__onnx_in_name(c, k, 0);
  ent_t *xe = x != NULL ? mpc__onnx_lookup(c, x) : NULL;
  if (xe == NULL || xe->kind != V_ACT || !reads_pair(c, k, x, x))
    return 0;
  static const char *const ops[8] = {"Mul", "Mul", "Add", "Mul", "Tanh", "Add", "Mul", "Mul"};
  /* The constant factor or addend of each step, 0: x is the other operand. */
  static const double kv[8] = {0, 0.044715, 0, 0.7978845608028654, -1, 1.0, 0, 0.5};
  size_t u[8], prev = k;
  for (int i = 0; i < 8; i++) {
    if ((u[i] = sole_user(c, prev, ops[i])) == SIZE_MAX)
      return 0;
    const char *in = mpc__onnx_out_ent(c, prev, 0)->name;
    int ok = kv[i] < 0 ? strcmp(str_or(mpc__onnx_in_name(c, u[i], 0), ""), in) == 0
             : kv[i] == 0 ? reads_pair(c, u[i], x, in)
                          : other_is(c, u[i], in, kv[i]);
    if (!ok)
      return 0;
    prev = u[i];
  }
  return chain_to_gate(c, k, MPC_OP_GELU_TANH, xe->node, u, 8, folded);
}

/* ---- LayerNormalization's Scale and B folded into the MatMul after it ------ */

/* The MatMul node that reads LayerNormalization node k's output as its only
 * reader, by the owner's constant W [D, M], with k's Scale (D floats) and B
 * (absent or D floats) constants too: the MatMul's index, else SIZE_MAX. */
static size_t ln_matmul_user(ctx_t *c, size_t k, size_t D, const mpc__ctensor_t **w,
                             const mpc__ctensor_t **g, const mpc__ctensor_t **b) {
  size_t u = sole_user(c, k, "MatMul");
  if (u == SIZE_MAX || nodep(c, u)->n_input != 2 ||
      strcmp(str_or(mpc__onnx_in_name(c, u, 0), ""), mpc__onnx_out_ent(c, k, 0)->name) != 0)
    return SIZE_MAX;
  /* Twice: a peek may load an initializer, and that may move c->konst (the
   * pointers of the first pass); the second pass loads nothing. */
  for (int pass = 0; pass < 2; pass++) {
    *w = mpc__onnx_peek_const(c, u, 1);
    *g = mpc__onnx_peek_const(c, k, 1);
    *b = mpc__onnx_in_name(c, k, 2) != NULL ? mpc__onnx_peek_const(c, k, 2) : NULL;
  }
  if (*w == NULL || (*w)->ndim != 2 || (*w)->dim[0] != D || *g == NULL || (*g)->numel != D ||
      (mpc__onnx_in_name(c, k, 2) != NULL && (*b == NULL || (*b)->numel != D)))
    return SIZE_MAX;
  return u;
}

int mpc__onnx_ln_foldable(ctx_t *c, size_t k, size_t D) {
  const mpc__ctensor_t *w, *g, *b;
  return ln_matmul_user(c, k, D, &w, &g, &b) != SIZE_MAX;
}

/* (LN(x) Scale + B) W = LN(x) (diag(Scale) W) + B W: the MatMul by the owner's
 * new weight diag(Scale) W and the new bias B W (both parameters, secret as
 * the old ones), so the product by Scale (a masking, two rounds) is gone.
 * ln: the LNORM node of k; the MatMul node is marked done. */
int mpc__onnx_ln_fold_matmul(ctx_t *c, size_t k, size_t D, int ln) {
  const mpc__ctensor_t *w, *g, *b;
  size_t u = ln_matmul_user(c, k, D, &w, &g, &b), M = w->dim[1];
  double *wd = malloc(D * M * sizeof *wd), *bd = calloc(M ? M : 1, sizeof *bd);
  if (wd == NULL || bd == NULL) {
    free(wd);
    free(bd);
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < D; i++)
    for (size_t j = 0; j < M; j++) {
      wd[i * M + j] = g->f[i] * w->f[i * M + j];
      bd[j] += b != NULL ? b->f[i] * w->f[i * M + j] : 0.0;
    }
  char name[80];
  snprintf(name, sizeof name, "%.60s*scale", mpc__onnx_in_name(c, u, 1));
  int wp = mpc__onnx_make_param(c, u, name, 2, w->dim, wd);
  if (wp < 0) {
    free(bd);
    return wp;
  }
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_MATMUL, ln, wp, -1);
  int r = mpc__onnx_add_node(c, u, &nd);
  if (r >= 0 && b != NULL) {
    snprintf(name, sizeof name, "%.60s*B", mpc__onnx_in_name(c, u, 1));
    int bp = mpc__onnx_make_param(c, u, name, 1, &M, bd);
    bd = NULL;
    mpc__onnx_node_init(&nd, MPC_OP_ADD, r, bp, -1);
    r = bp < 0 ? bp : mpc__onnx_add_node(c, u, &nd);
  }
  free(bd);
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, u, 0, r);
  mpc__onnx_out_ent(c, k, 0)->folded = 1;
  c->done[u] = 1;
  return 0;
}
