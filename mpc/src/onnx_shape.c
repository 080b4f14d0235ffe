/* onnx_shape.c - the ONNX importer's shape subgraphs, folded at import:
 * Shape, Cast and ConstantOfShape, and Concat and Gather of constants, whose
 * values are known once the input shapes are (an exporter's computations of
 * the shapes its Reshapes take). Their results are new constants, never IR
 * nodes. Split from onnx_fold.c. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_imp.h"

int mpc__onnx_const_pick(ctx_t *c, size_t k, size_t j, const mpc__ctensor_t *const *src,
                         const size_t *s, const size_t *idx, const dims_t *to) {
  mpc__ctensor_t t;
  memset(&t, 0, sizeof t);
  t.dtype = src[0]->dtype;
  t.ndim = to->ndim;
  memcpy(t.dim, to->dim, sizeof t.dim);
  t.numel = 1;
  for (unsigned d = 0; d < to->ndim; d++)
    t.numel *= to->dim[d];
  size_t n = t.numel ? t.numel : 1;
  if (src[0]->f != NULL)
    t.f = malloc(n * sizeof *t.f);
  else
    t.i = malloc(n * sizeof *t.i);
  if (t.f == NULL && t.i == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t i = 0; i < t.numel; i++) {
    const mpc__ctensor_t *from = src[s != NULL ? s[i] : 0];
    if (t.f != NULL)
      t.f[i] = from->f != NULL ? from->f[idx[i]] : (double)from->i[idx[i]];
    else
      t.i[i] = from->i != NULL ? from->i[idx[i]] : (int64_t)from->f[idx[i]];
  }
  return mpc__onnx_def_new_const(c, k, j, &t);
}

/* Shape: the dimensions of its input (an activation's as the graph declares
 * them: a batch dimension is 1 there, and a Reshape built from it lets its
 * first dimension follow the batch), start and end as in opset 15. */
int mpc__onnx_op_shape(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"start", "end", NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  int64_t st, en;
  if (rc != 0 || (rc = mpc__onnx_attr_int(c, k, "start", 0, &st)) != 0 ||
      (rc = mpc__onnx_attr_int(c, k, "end", INT64_MAX, &en)) != 0)
    return rc;
  ent_t *e = mpc__onnx_in_ent(c, k, 0, 1, &rc);
  if (e == NULL)
    return rc;
  if (e->kind == V_PAD)
    return mpc__onnx_pad_error(c, k, e);
  int64_t dims[MPC__CT_MAX_DIMS], r;
  if (e->kind == V_ACT) {
    const mpc_shape_t *s = shape_of(c, e->node);
    r = s->ndim;
    for (unsigned d = 0; d < s->ndim; d++)
      dims[d] = (int64_t)s->dim[d];
  } else {
    const mpc__ctensor_t *t = &c->konst[e->kidx].t;
    r = t->ndim;
    for (unsigned d = 0; d < t->ndim; d++)
      dims[d] = (int64_t)t->dim[d];
  }
  st = st < 0 ? (st + r < 0 ? 0 : st + r) : (st > r ? r : st);
  en = en < 0 ? (en + r < 0 ? 0 : en + r) : (en > r ? r : en);
  mpc__ctensor_t t;
  memset(&t, 0, sizeof t);
  t.dtype = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
  t.ndim = 1;
  t.numel = t.dim[0] = en > st ? (size_t)(en - st) : 0;
  if ((t.i = malloc((t.numel ? t.numel : 1) * sizeof *t.i)) == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t i = 0; i < t.numel; i++)
    t.i[i] = dims[st + (int64_t)i];
  return mpc__onnx_def_new_const(c, k, 0, &t);
}

/* Concat of constants only (a shape built from pieces). */
int mpc__onnx_const_concat(ctx_t *c, size_t k, int64_t axis) {
  size_t n = nodep(c, k)->n_input;
  const mpc__ctensor_t *src[64];
  if (n > 64)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "more than 64 constant inputs");
  int rc;
  for (size_t j = 0; j < n; j++)
    if ((rc = mpc__onnx_in_const(c, k, j, 1, &src[j])) != 0)
      return rc;
  unsigned r = src[0]->ndim;
  if (r == 0 || axis < -(int64_t)r || axis >= (int64_t)r)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axis %" PRId64 " for constants of rank %u", axis, r);
  unsigned ax = (unsigned)(axis < 0 ? axis + (int64_t)r : axis);
  dims_t to;
  to.ndim = r;
  memcpy(to.dim, src[0]->dim, sizeof to.dim);
  to.dim[ax] = 0;
  size_t outer = 1, inner = 1;
  for (unsigned d = 0; d < ax; d++)
    outer *= src[0]->dim[d];
  for (unsigned d = ax + 1; d < r; d++)
    inner *= src[0]->dim[d];
  for (size_t j = 0; j < n; j++) {
    int same = src[j]->ndim == r && (src[j]->f != NULL) == (src[0]->f != NULL);
    for (unsigned d = 0; same && d < r; d++)
      same = d == ax || src[j]->dim[d] == src[0]->dim[d];
    if (!same)
      return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "constant inputs that do not join");
    to.dim[ax] += src[j]->dim[ax];
  }
  size_t total = outer * to.dim[ax] * inner, pos = 0;
  size_t *s = malloc((total ? total : 1) * sizeof *s), *idx = malloc((total ? total : 1) * sizeof *idx);
  if (s == NULL || idx == NULL) {
    free(s);
    free(idx);
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  }
  for (size_t o = 0; o < outer; o++)
    for (size_t j = 0; j < n; j++)
      for (size_t q = 0; q < src[j]->dim[ax] * inner; q++, pos++) {
        s[pos] = j;
        idx[pos] = o * src[j]->dim[ax] * inner + q;
      }
  rc = mpc__onnx_const_pick(c, k, 0, src, s, idx, &to);
  free(s);
  free(idx);
  return rc;
}

/* Gather on a constant (a shape's entries): indices constant too. */
int mpc__onnx_const_gather(ctx_t *c, size_t k, const mpc__ctensor_t *data, int64_t axis) {
  const mpc__ctensor_t *t;
  int rc = mpc__onnx_in_const(c, k, 1, 1, &t);
  if (rc != 0)
    return rc;
  unsigned r = data->ndim;
  if (r == 0 || axis < -(int64_t)r || axis >= (int64_t)r || t->i == NULL ||
      r - 1 + t->ndim > MPC__CT_MAX_DIMS)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "cannot gather these constants");
  unsigned ax = (unsigned)(axis < 0 ? axis + (int64_t)r : axis);
  size_t outer = 1, inner = 1, len = data->dim[ax];
  for (unsigned d = 0; d < ax; d++)
    outer *= data->dim[d];
  for (unsigned d = ax + 1; d < r; d++)
    inner *= data->dim[d];
  dims_t to = {0, {0}};
  for (unsigned d = 0; d < ax; d++)
    to.dim[to.ndim++] = data->dim[d];
  for (unsigned d = 0; d < t->ndim; d++)
    to.dim[to.ndim++] = t->dim[d];
  for (unsigned d = ax + 1; d < r; d++)
    to.dim[to.ndim++] = data->dim[d];
  size_t total = outer * t->numel * inner, pos = 0;
  size_t *idx = malloc((total ? total : 1) * sizeof *idx);
  if (idx == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t o = 0; o < outer; o++)
    for (size_t q = 0; q < t->numel; q++) {
      int64_t j = t->i[q] < 0 ? t->i[q] + (int64_t)len : t->i[q];
      if (j < 0 || j >= (int64_t)len) {
        free(idx);
        return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "index %" PRId64 " is out of range", t->i[q]);
      }
      for (size_t in = 0; in < inner; in++)
        idx[pos++] = (o * len + (size_t)j) * inner + in;
    }
  rc = mpc__onnx_const_pick(c, k, 0, &data, NULL, idx, &to);
  free(idx);
  return rc;
}

/* Cast: of a constant, to FLOAT/DOUBLE (doubles) or an integer type; of an
 * activation, to FLOAT or DOUBLE only (the identity: values are reals). */
int mpc__onnx_op_cast(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"to", "saturate", NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  int64_t to;
  if (rc != 0 || (rc = mpc__onnx_attr_int(c, k, "to", -1, &to)) != 0)
    return rc;
  ent_t *e = mpc__onnx_in_ent(c, k, 0, 1, &rc);
  if (e == NULL)
    return rc;
  int tofloat = to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || to == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
  int toint = to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
  if (e->kind == V_ACT && tofloat) {
    mpc__onnx_def_alias(c, k, 0, e);
    return 0;
  }
  char tb[16];
  if (e->kind != V_CONST || (!tofloat && !toint))
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "a cast to %s of %s is not supported",
                           mpc__onnx_dtype_name(to >= 0 && to < 1000 ? (int)to : -1, tb),
                           e->kind == V_CONST ? "a constant" : "an activation");
  const mpc__ctensor_t *src = &c->konst[e->kidx].t;
  mpc__ctensor_t like = *src;
  like.dtype = (int)(tofloat ? to : ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
  double one_f = 0;
  int64_t one_i = 0;
  like.f = tofloat ? &one_f : NULL; /* only which array const_pick fills */
  like.i = tofloat ? NULL : &one_i;
  const mpc__ctensor_t *srcs[2] = {&like, src};
  size_t n = src->numel;
  size_t *idx = malloc((n ? n : 1) * sizeof *idx), *s = malloc((n ? n : 1) * sizeof *s);
  if (idx == NULL || s == NULL) {
    free(idx);
    free(s);
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    idx[i] = i;
    s[i] = 1;
  }
  dims_t d;
  d.ndim = src->ndim;
  memcpy(d.dim, src->dim, sizeof d.dim);
  rc = mpc__onnx_const_pick(c, k, 0, srcs, s, idx, &d);
  free(idx);
  free(s);
  return rc;
}

/* ConstantOfShape: a constant of the given shape filled with value (a
 * one-element tensor, FLOAT 0 by default). */
int mpc__onnx_op_const_of_shape(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"value", NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  const int64_t *sv;
  size_t sn;
  if (rc != 0 || (rc = mpc__onnx_in_ints(c, k, 0, 1, &sv, &sn)) != 0)
    return rc;
  mpc__ctensor_t val;
  memset(&val, 0, sizeof val);
  double zero = 0;
  const mpc__ctensor_t *vp = &val;
  val.dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  val.numel = 1;
  val.f = &zero;
  const attr_t *a = mpc__onnx_attr_find(c, k, "value");
  mpc__ctensor_t parsed;
  memset(&parsed, 0, sizeof parsed);
  if (a != NULL) {
    char why[200];
    if (a->t == NULL || (rc = mpc__ctensor_from_proto(a->t, &parsed, why, sizeof why)) != 0)
      return mpc__onnx_nfail(c, k, rc ? rc : TANDEM_EPARSE, "value: %s", a->t ? why : "not a tensor");
    if (parsed.numel != 1) {
      mpc__ctensor_close(&parsed);
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "value must hold one element");
    }
    vp = &parsed;
  }
  dims_t to = {0, {0}};
  size_t total = 1;
  if (sn > MPC__CT_MAX_DIMS)
    rc = mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "rank %zu", sn);
  for (size_t i = 0; rc == 0 && i < sn; i++) {
    if (sv[i] < 0 || (uint64_t)sv[i] > MPC__CT_MAX_NUMEL || (sv[i] > 0 && total > MPC__CT_MAX_NUMEL / (uint64_t)sv[i]))
      rc = mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "dimension %" PRId64 " is invalid", sv[i]);
    else {
      to.dim[to.ndim++] = (size_t)sv[i];
      total *= (size_t)sv[i];
    }
  }
  size_t *idx = rc == 0 ? calloc(total ? total : 1, sizeof *idx) : NULL;
  if (rc == 0 && idx == NULL)
    rc = mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  if (rc == 0)
    rc = mpc__onnx_const_pick(c, k, 0, &vp, NULL, idx, &to);
  free(idx);
  mpc__ctensor_close(&parsed);
  return rc;
}
