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

/* The constant behind input j, or NULL when it is not a float constant. */
const mpc__ctensor_t *mpc__onnx_peek_const(ctx_t *c, size_t k, size_t j) {
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
  const mpc__ctensor_t *t = &c->konst[e->kidx].t;
  return t->f != NULL ? t : NULL;
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
int mpc__onnx_fold_conv(ctx_t *c, size_t k, mpc_node_t *nd, int *folded) {
  *folded = 0;
  /* Fold a following BatchNormalization into constant weights and bias. */
  size_t bk = bn_after(c, k);
  const mpc__ctensor_t *wt = mpc__onnx_peek_const(c, k, 1);
  const mpc__ctensor_t *bt = mpc__onnx_in_name(c, k, 2) != NULL ? mpc__onnx_peek_const(c, k, 2) : NULL;
  double *s = NULL, *t = NULL;
  if (bk != SIZE_MAX && wt != NULL && wt->ndim == 4 && wt->numel > 0 &&
      (mpc__onnx_in_name(c, k, 2) == NULL || (bt != NULL && bt->numel == wt->dim[0])) &&
      mpc__onnx_bn_params(c, bk, wt->dim[0], 1, &s, &t) == 0) {
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
  const mpc__ctensor_t *bt = mpc__onnx_peek_const(c, k, 1);
  const mpc__ctensor_t *ct = mpc__onnx_in_name(c, k, 2) != NULL ? mpc__onnx_peek_const(c, k, 2) : NULL;
  size_t n = bt != NULL && bt->ndim == 2 ? bt->dim[nd->attr.trans_b ? 0 : 1] : 0;
  int c_ok = mpc__onnx_in_name(c, k, 2) == NULL ||
             (ct != NULL && ct->ndim <= 2 &&
              (ct->numel == 1 || (ct->numel == n && (ct->ndim == 1 || ct->dim[0] == 1))));
  double *s = NULL, *t = NULL;
  if (bk != SIZE_MAX && n > 0 && c_ok && mpc__onnx_bn_params(c, bk, n, 1, &s, &t) == 0) {
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
  int ki = mpc__onnx_konst_add(c, &t);
  if (ki < 0) {
    mpc__ctensor_close(&t);
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  }
  mpc__onnx_def_const(c, k, 0, ki);
  return 0;
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
  int ki = mpc__onnx_konst_add(c, &t);
  if (ki < 0) {
    mpc__ctensor_close(&t);
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  }
  mpc__onnx_def_const(c, k, 0, ki);
  return 0;
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
