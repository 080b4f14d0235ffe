/* onnx_window.c - the ONNX importer's handlers of the windowed operators:
 * Conv, MaxPool, AveragePool, GlobalAveragePool and Pad (a pending zero
 * padding folded into the Conv or AveragePool that reads it), with their
 * window attributes (kernel, strides, dilations, pads, auto_pad, ceil_mode)
 * and the 1-D forms run as 2-D windows of height 1. Called through
 * onnx_ops.c's table (the interface: onnx_imp.h).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_imp.h"

/* Reads a list attribute of exactly n non-negative values, each < MAX_WIN,
 * with a lower bound lo (1 for strides). */
static int attr_list(ctx_t *c, size_t k, const char *name, size_t n, int64_t lo, size_t *out) {
  const int64_t *v;
  size_t m;
  int rc = mpc__onnx_attr_ints(c, k, name, &v, &m);
  if (rc != 0 || m == SIZE_MAX)
    return rc;
  if (m != n)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "%s has %zu values (want %zu: 1-D, 2-D and 3-D pools, 1-D and 2-D convolutions)", name, m, n);
  for (size_t i = 0; i < n; i++) {
    if (v[i] < lo || v[i] > MAX_WIN)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "%s[%zu] = %" PRId64 " is not supported", name,
                             i, v[i]);
    out[i] = (size_t)v[i];
  }
  return 0;
}

enum { PAD_NOTSET, PAD_VALID, PAD_SAME_UPPER, PAD_SAME_LOWER };

/* auto_pad: NOTSET (explicit pads), VALID (none), SAME_UPPER or SAME_LOWER
 * (computed from the input's size once it is known: apply_window_pads). */
static int check_autopad(ctx_t *c, size_t k, int *mode) {
  char ap[32];
  int rc = mpc__onnx_attr_str(c, k, "auto_pad", "NOTSET", ap, sizeof ap);
  if (rc != 0)
    return rc;
  static const char *const names[] = {"NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"};
  for (int i = 0; i < 4; i++)
    if (strcmp(ap, names[i]) == 0) {
      *mode = i;
      return 0;
    }
  return mpc__onnx_nfail(c, k, TANDEM_EPARSE,
                         "auto_pad=%s is not an ONNX value (NOTSET, VALID, SAME_UPPER, "
                         "SAME_LOWER)",
                         ap);
}

/* The attributes of a 1-D window (3-D input [N, C, L]) as those of the 2-D
 * window [1, k] over [N, C, 1, L]: the import runs a 1-D pool as a 2-D one
 * of height 1 between two reshapes. */
static int window_attrs_1d(ctx_t *c, size_t k, int dil, mpc_attr_t *at, int *pad_mode) {
  int rc = check_autopad(c, k, pad_mode);
  size_t ks = 0, st = 1, dl = 1, pads[2] = {0, 0};
  if (rc == 0)
    rc = attr_list(c, k, "kernel_shape", 1, 1, &ks);
  if (rc == 0)
    rc = attr_list(c, k, "strides", 1, 1, &st);
  if (rc == 0 && dil)
    rc = attr_list(c, k, "dilations", 1, 1, &dl);
  if (rc == 0 && *pad_mode == PAD_NOTSET)
    rc = attr_list(c, k, "pads", 2, 0, pads);
  at->kh = ks ? 1 : 0;
  at->kw = ks;
  at->strides[0] = at->dilations[0] = 1;
  at->strides[1] = st;
  at->dilations[1] = dl;
  at->pads[1] = pads[0];
  at->pads[3] = pads[1];
  return rc;
}

/* A reshape of activation x to shape s (the 1-D windows' way in and out). */
static int reshape_act(ctx_t *c, size_t k, int x, const mpc_shape_t *s, const char *tag) {
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_RESHAPE, x, -1, -1);
  nd.shape = *s;
  snprintf(nd.name, sizeof nd.name, "%.50s/%s", mpc__onnx_node_name(c, k), tag);
  return mpc__onnx_add_node(c, k, &nd);
}

/* 1 if input 0 of node k is an activation of rank 3 (a 1-D window). */
static int window_1d(ctx_t *c, size_t k) {
  int rc;
  ent_t *e = mpc__onnx_in_ent(c, k, 0, 1, &rc);
  return e != NULL && e->kind == V_ACT && shape_of(c, e->node)->ndim == 3;
}

/* The window attributes common to Conv and the pools into at. */
static int window_attrs(ctx_t *c, size_t k, int dil, mpc_attr_t *at, int *pad_mode) {
  int rc = check_autopad(c, k, pad_mode);
  int valid = *pad_mode != PAD_NOTSET;
  size_t ks[2] = {0, 0};
  if (rc == 0)
    rc = attr_list(c, k, "kernel_shape", 2, 1, ks);
  at->kh = ks[0];
  at->kw = ks[1];
  at->strides[0] = at->strides[1] = 1;
  at->dilations[0] = at->dilations[1] = 1;
  if (rc == 0)
    rc = attr_list(c, k, "strides", 2, 1, at->strides);
  if (rc == 0 && dil)
    rc = attr_list(c, k, "dilations", 2, 1, at->dilations);
  if (rc == 0 && !valid)
    rc = attr_list(c, k, "pads", 4, 0, at->pads);
  return rc;
}

/* The input of a Conv or pool, with any pending Pad folded into at->pads. */
static int window_input(ctx_t *c, size_t k, int allow_pad, mpc_attr_t *at, int *x, int *padded) {
  int rc;
  ent_t *e = mpc__onnx_in_ent(c, k, 0, 1, &rc);
  if (e == NULL)
    return rc;
  *padded = 0;
  if (e->kind == V_PAD) {
    if (!allow_pad)
      return mpc__onnx_pad_error(c, k, e);
    for (int i = 0; i < 4; i++)
      at->pads[i] += e->pads[i];
    *padded = 1;
    *x = e->node;
  } else if ((rc = mpc__onnx_in_act(c, k, 0, x)) != 0) {
    return rc;
  }
  const mpc_shape_t *s = shape_of(c, *x);
  if (s->ndim != 4)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "input of rank %u: only windows over 4-D NCHW (2-D) or "
                           "3-D NCL (1-D) inputs are supported",
                           s->ndim);
  return 0;
}

/* The pads of auto_pad SAME_* and of ceil_mode=1, from the input x's size:
 * SAME gives ceil(in / stride) outputs, the odd pad at the end (UPPER) or at
 * the start (LOWER); ceil_mode adds at the end what the last partial window
 * needs (a window starting in the end padding is dropped, as ONNX and
 * PyTorch do). Pads count in no max and, with count_include_pad=0, in no
 * average; the extra cells of ceil_mode would count in an average with
 * count_include_pad=1, which ONNX does not do, so that one is refused. */
static int apply_window_pads(ctx_t *c, size_t k, int x, mpc_attr_t *at, int mode, int ceil_mode,
                             int avg_counts_pads) {
  const mpc_shape_t *s = shape_of(c, x);
  for (int a = 0; a < 2; a++) {
    size_t in = s->dim[2 + a], kk = a ? at->kw : at->kh, st = at->strides[a];
    if (kk == 0 || st == 0)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "kernel_shape is needed with auto_pad=SAME");
    size_t ext = (kk - 1) * at->dilations[a] + 1;
    if (mode == PAD_SAME_UPPER || mode == PAD_SAME_LOWER) {
      size_t out = (in + st - 1) / st, need = (out - 1) * st + ext;
      size_t total = need > in ? need - in : 0;
      at->pads[a] = mode == PAD_SAME_UPPER ? total / 2 : total - total / 2;
      at->pads[a + 2] = total - at->pads[a];
    }
    size_t padded = in + at->pads[a] + at->pads[a + 2];
    if (!ceil_mode || ext > padded || (padded - ext) % st == 0)
      continue;
    size_t out = (padded - ext + st - 1) / st + 1;
    if ((out - 1) * st >= in + at->pads[a])
      out--; /* the last window would start in the end padding */
    size_t need = (out - 1) * st + ext;
    if (need <= padded)
      continue;
    if (avg_counts_pads)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                             "ceil_mode=1 with count_include_pad=1 and a partial last window "
                             "is not supported");
    at->pads[a + 2] += need - padded;
  }
  return 0;
}

/* A 1-D Conv (input [N, C, L], weights [M, C, k]) as a 2-D one of height 1
 * between two reshapes; constant weights become the owner's [M, C, 1, k]
 * parameter, computed ones are reshaped like the input. */
static int conv_1d(ctx_t *c, size_t k, mpc_node_t *nd, int mode) {
  int rc, x, wn;
  if ((rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  mpc_shape_t s1 = *shape_of(c, x);
  mpc_shape_t s2 = {4, {s1.dim[0], s1.dim[1], 1, s1.dim[2]}};
  if ((x = reshape_act(c, k, x, &s2, "2d")) < 0)
    return x;
  ent_t *e = mpc__onnx_in_ent(c, k, 1, 1, &rc);
  if (e == NULL)
    return rc;
  if (e->kind == V_CONST) {
    const mpc__ctensor_t *t = &c->konst[e->kidx].t;
    if (t->f == NULL || t->ndim != 3)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "1-D weights must be a 3-D float tensor");
    double *d = mpc__onnx_dup_doubles(t->f, t->numel);
    if (d == NULL)
      return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
    size_t dims[4] = {t->dim[0], t->dim[1], 1, t->dim[2]};
    if ((wn = mpc__onnx_make_param(c, k, e->name, 4, dims, d)) < 0)
      return wn;
  } else if ((rc = mpc__onnx_in_act(c, k, 1, &wn)) != 0) {
    return rc;
  } else {
    const mpc_shape_t *ws = shape_of(c, wn);
    if (ws->ndim != 3)
      return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "1-D weights must be 3-D");
    mpc_shape_t w4 = {4, {ws->dim[0], ws->dim[1], 1, ws->dim[2]}};
    if ((wn = reshape_act(c, k, wn, &w4, "w2d")) < 0)
      return wn;
  }
  nd->in[0] = x;
  nd->in[1] = wn;
  if (nd->attr.kw == 0) {
    nd->attr.kh = 1;
    nd->attr.kw = shape_of(c, wn)->dim[3];
  }
  if ((mode == PAD_SAME_UPPER || mode == PAD_SAME_LOWER) &&
      (rc = apply_window_pads(c, k, x, &nd->attr, mode, 0, 0)) != 0)
    return rc;
  if ((rc = mpc__onnx_in_operand(c, k, 2, 0, &nd->in[2])) != 0)
    return rc;
  int r = mpc__onnx_add_node(c, k, nd);
  if (r < 0)
    return r;
  s1.dim[1] = shape_of(c, r)->dim[1];
  s1.dim[2] = shape_of(c, r)->dim[3];
  if ((r = reshape_act(c, k, r, &s1, "1d")) < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

/* Rows [r0, r0 + nr) of constant t (rows of `row` values) as a new PARAM. */
static int param_rows(ctx_t *c, size_t k, const mpc__ctensor_t *t, size_t r0, size_t nr,
                      size_t row, const char *what, size_t g) {
  double *d = mpc__onnx_dup_doubles(t->f + r0 * row, nr * row);
  if (d == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  size_t dim[4] = {nr, t->ndim > 1 ? t->dim[1] : 1, t->ndim > 2 ? t->dim[2] : 1,
                   t->ndim > 3 ? t->dim[3] : 1};
  char name[80];
  snprintf(name, sizeof name, "%.56s.%s%zu", mpc__onnx_node_name(c, k), what, g);
  return mpc__onnx_make_param(c, k, name, t->ndim, dim, d);
}

/* A grouped (or depthwise) Conv with the owner's weights: one Conv per
 * group on its channels (a Select each, free), joined by Concat; the same
 * bilinear gates as one Conv, no round more. nd: the Conv's input and
 * window attributes. */
static int conv_grouped(ctx_t *c, size_t k, mpc_node_t *nd, size_t G) {
  const mpc__ctensor_t *wt, *bt = NULL;
  int rc = mpc__onnx_in_const(c, k, 1, 1, &wt);
  if (rc == 0 && mpc__onnx_in_name(c, k, 2) != NULL)
    rc = mpc__onnx_in_const(c, k, 2, 1, &bt);
  if (rc != 0)
    return rc;
  mpc_shape_t xs = *shape_of(c, nd->in[0]);
  if (wt->f == NULL || wt->ndim != 4 || xs.ndim != 4 || xs.dim[1] % G != 0 ||
      wt->dim[0] % G != 0 || wt->dim[1] != xs.dim[1] / G ||
      (bt != NULL && (bt->f == NULL || bt->numel != wt->dim[0])))
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE,
                           "group=%zu: input channels, weights [M, C/group, kh, kw] and bias [M] "
                           "do not agree",
                           G);
  size_t cg = xs.dim[1] / G, mg = wt->dim[0] / G, wrow = wt->numel / wt->dim[0];
  int cur = -1;
  for (size_t g = 0; g < G; g++) {
    mpc_node_t sel;
    mpc__onnx_node_init(&sel, MPC_OP_SELECT, nd->in[0], -1, -1);
    sel.shape = xs;
    sel.shape.dim[1] = cg;
    for (unsigned d = 0; d < 4; d++)
      sel.attr.sel_step[d] = sel.attr.sel_div[d] = 1;
    sel.attr.sel_start[1] = (int64_t)(g * cg);
    sel.attr.sel_batch = 1;
    mpc_node_t cv = *nd;
    cv.in[0] = G == 1 ? nd->in[0] : mpc__onnx_add_node(c, k, &sel);
    cv.in[1] = param_rows(c, k, wt, g * mg, mg, wrow, "w", g);
    cv.in[2] = bt != NULL ? param_rows(c, k, bt, g * mg, mg, 1, "b", g) : -1;
    if (cv.in[0] < 0 || cv.in[1] < 0 || (bt != NULL && cv.in[2] < 0))
      return cv.in[0] < 0 ? cv.in[0] : cv.in[1] < 0 ? cv.in[1] : cv.in[2];
    int y = mpc__onnx_add_node(c, k, &cv);
    if (y < 0 || g == 0) {
      cur = y;
      if (y < 0)
        return y;
      continue;
    }
    mpc_node_t cat;
    mpc__onnx_node_init(&cat, MPC_OP_CONCAT, cur, y, -1);
    cat.attr.axis = 1;
    if ((cur = mpc__onnx_add_node(c, k, &cat)) < 0)
      return cur;
  }
  mpc__onnx_def_act(c, k, 0, cur);
  return 0;
}

int mpc__onnx_op_conv(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"auto_pad",     "dilations", "group", "kernel_shape",
                                      "pads",         "strides",   NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0)
    return rc;
  int64_t group;
  if ((rc = mpc__onnx_attr_int(c, k, "group", 1, &group)) != 0)
    return rc;
  if (group < 1 || group > (int64_t)MAX_WIN)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "group=%" PRId64 " is invalid", group);
  if (group != 1 && window_1d(c, k))
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "group=%" PRId64 " on a 1-D Conv is not supported",
                           group);
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_CONV, -1, -1, -1);
  int x, padded, mode;
  if (window_1d(c, k)) {
    if ((rc = window_attrs_1d(c, k, 1, &nd.attr, &mode)) != 0)
      return rc;
    return conv_1d(c, k, &nd, mode);
  }
  if ((rc = window_attrs(c, k, 1, &nd.attr, &mode)) != 0)
    return rc;
  if ((rc = window_input(c, k, 1, &nd.attr, &x, &padded)) != 0)
    return rc;
  nd.in[0] = x;
  if (mode == PAD_SAME_UPPER || mode == PAD_SAME_LOWER) {
    if (nd.attr.kh == 0) { /* the kernel's size from the weights */
      const mpc__ctensor_t *wt = mpc__onnx_in_name(c, k, 1) != NULL ? mpc__onnx_peek_const(c, k, 1) : NULL;
      if (wt == NULL || wt->ndim != 4)
        return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                               "auto_pad=SAME needs kernel_shape or constant 4-D weights");
      nd.attr.kh = wt->dim[2];
      nd.attr.kw = wt->dim[3];
    }
    if ((rc = apply_window_pads(c, k, x, &nd.attr, mode, 0, 0)) != 0)
      return rc;
  }

  if (group != 1)
    return conv_grouped(c, k, &nd, (size_t)group);
  int folded;
  if ((rc = mpc__onnx_fold_conv(c, k, &nd, &folded)) != 0 || folded)
    return rc;
  return mpc__onnx_emit_plain(c, k, &nd);
}

/* A 2-D pool node over activation x with kernel kh x kw, strides, dilations
 * and pads (top, left, bottom, right). */
static int pool_node(ctx_t *c, size_t k, int is_max, int x, const size_t *kw, const size_t *st,
                     const size_t *dl, const size_t *pads, int cip) {
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, is_max ? MPC_OP_MAXPOOL : MPC_OP_AVGPOOL, x, -1, -1);
  nd.attr.kh = kw[0];
  nd.attr.kw = kw[1];
  for (int i = 0; i < 2; i++) {
    nd.attr.strides[i] = st[i];
    nd.attr.dilations[i] = dl[i];
  }
  for (int i = 0; i < 4; i++)
    nd.attr.pads[i] = pads[i];
  nd.attr.count_include_pad = cip;
  return mpc__onnx_add_node(c, k, &nd);
}

/* A 3-D pool over [N, C, D, H, W] as two 2-D ones: the H x W window over
 * [N, C*D, H, W], then the D window (kd x 1) over [N, C, D, OH*OW]. Exact: a
 * max of maxes is the max, and an average's divisor is the product of the
 * two stages' (a window box meets the padded input in a box, whose count is
 * the product of the per-axis counts). auto_pad NOTSET or VALID, ceil_mode 0. */
static int pool_3d(ctx_t *c, size_t k, int is_max, int x) {
  size_t ks[3] = {0, 0, 0}, st[3] = {1, 1, 1}, dl[3] = {1, 1, 1}, p[6] = {0, 0, 0, 0, 0, 0};
  int mode, rc = check_autopad(c, k, &mode);
  int64_t cip = 0, ceil_mode = 0;
  if (rc == 0)
    rc = attr_list(c, k, "kernel_shape", 3, 1, ks);
  if (rc == 0)
    rc = attr_list(c, k, "strides", 3, 1, st);
  if (rc == 0 && (is_max || c->opset >= 19))
    rc = attr_list(c, k, "dilations", 3, 1, dl);
  if (rc == 0 && mode == PAD_NOTSET)
    rc = attr_list(c, k, "pads", 6, 0, p);
  if (rc == 0 && (rc = mpc__onnx_attr_int(c, k, "count_include_pad", 0, &cip)) == 0)
    rc = mpc__onnx_attr_int(c, k, "ceil_mode", 0, &ceil_mode);
  if (rc != 0)
    return rc;
  if (ks[0] == 0)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "kernel_shape is required");
  if (ceil_mode != 0 || mode >= PAD_SAME_UPPER)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "3-D windows: ceil_mode and auto_pad SAME "
                           "are not supported");
  const mpc_shape_t s = *shape_of(c, x);
  mpc_shape_t s1 = {4, {s.dim[0], s.dim[1] * s.dim[2], s.dim[3], s.dim[4]}};
  int y = reshape_act(c, k, x, &s1, "3d_hw");
  if (y >= 0)
    y = pool_node(c, k, is_max, y, ks + 1, st + 1, dl + 1, (size_t[]){p[1], p[2], p[4], p[5]},
                  cip != 0);
  if (y < 0)
    return y;
  size_t oh = shape_of(c, y)->dim[2], ow = shape_of(c, y)->dim[3];
  mpc_shape_t s2 = {4, {s.dim[0], s.dim[1], s.dim[2], oh * ow}};
  y = reshape_act(c, k, y, &s2, "3d_d");
  if (y >= 0)
    y = pool_node(c, k, is_max, y, (size_t[]){ks[0], 1}, (size_t[]){st[0], 1},
                  (size_t[]){dl[0], 1}, (size_t[]){p[0], 0, p[3], 0}, cip != 0);
  if (y < 0)
    return y;
  mpc_shape_t s3 = {5, {s.dim[0], s.dim[1], shape_of(c, y)->dim[2], oh, ow}};
  if ((y = reshape_act(c, k, y, &s3, "3d")) < 0)
    return y;
  mpc__onnx_def_act(c, k, 0, y);
  return 0;
}

int mpc__onnx_op_pool(ctx_t *c, size_t k, int is_max) {
  static const char *const kmax[] = {"auto_pad", "ceil_mode", "dilations", "kernel_shape",
                                     "pads", "storage_order", "strides", NULL};
  static const char *const kavg[] = {"auto_pad", "ceil_mode", "count_include_pad",
                                     "kernel_shape", "pads", "strides", NULL};
  /* AveragePool has dilations from opset 19 on. */
  static const char *const kavg19[] = {"auto_pad",     "ceil_mode", "count_include_pad",
                                       "dilations",    "kernel_shape", "pads",
                                       "strides",      NULL};
  const int dil = is_max || c->opset >= 19;
  int rc = mpc__onnx_attr_check(c, k, is_max ? kmax : dil ? kavg19 : kavg);
  if (rc != 0)
    return rc;
  for (size_t j = 1; j < nodep(c, k)->n_output; j++)
    if (mpc__onnx_out_ent(c, k, j) != NULL && mpc__onnx_out_ent(c, k, j)->nuse > 0)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "the Indices output is not supported");
  ent_t *e = mpc__onnx_in_ent(c, k, 0, 1, &rc);
  if (e != NULL && e->kind == V_ACT && shape_of(c, e->node)->ndim == 5)
    return pool_3d(c, k, is_max, e->node);
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, is_max ? MPC_OP_MAXPOOL : MPC_OP_AVGPOOL, -1, -1, -1);
  int mode, oned = window_1d(c, k);
  if ((rc = (oned ? window_attrs_1d : window_attrs)(c, k, dil, &nd.attr, &mode)) != 0)
    return rc;
  if (nd.attr.kh == 0)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "kernel_shape is required");
  int64_t cip, so;
  if ((rc = mpc__onnx_attr_int(c, k, "count_include_pad", 0, &cip)) != 0 ||
      (rc = mpc__onnx_attr_int(c, k, "storage_order", 0, &so)) != 0)
    return rc;
  if (so != 0)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "storage_order=%" PRId64 " is not supported", so);
  /* Zero padding from a Pad counts in every average, so it folds into an
   * AveragePool only when the pool's own padding counts too (or it has none):
   * the result is one padding with count_include_pad=1. */
  int own_pads = nd.attr.pads[0] | nd.attr.pads[1] | nd.attr.pads[2] | nd.attr.pads[3];
  int x, padded = 0;
  mpc_shape_t s1;
  if (oned) {
    if ((rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
      return rc;
    s1 = *shape_of(c, x);
    mpc_shape_t s2 = {4, {s1.dim[0], s1.dim[1], 1, s1.dim[2]}};
    if ((x = reshape_act(c, k, x, &s2, "2d")) < 0)
      return x;
  } else if ((rc = window_input(c, k, !is_max && (cip != 0 || !own_pads), &nd.attr, &x,
                                &padded)) != 0) {
    return rc;
  }
  nd.attr.count_include_pad = cip != 0 || padded;
  nd.in[0] = x;
  int64_t ceil_mode;
  if ((rc = mpc__onnx_attr_int(c, k, "ceil_mode", 0, &ceil_mode)) != 0 ||
      (rc = apply_window_pads(c, k, x, &nd.attr, mode, ceil_mode != 0,
                              !is_max && nd.attr.count_include_pad)) != 0)
    return rc;
  int r = mpc__onnx_add_node(c, k, &nd);
  if (r >= 0 && oned) {
    s1.dim[2] = shape_of(c, r)->dim[3];
    r = reshape_act(c, k, r, &s1, "1d");
  }
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

int mpc__onnx_op_gap(ctx_t *c, size_t k, int is_max) {
  static const char *const known[] = {NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  int x, padded;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, is_max ? MPC_OP_MAXPOOL : MPC_OP_AVGPOOL, -1, -1, -1);
  if (rc == 0)
    rc = window_input(c, k, 0, &nd.attr, &x, &padded);
  if (rc != 0)
    return rc;
  const mpc_shape_t *s = shape_of(c, x);
  nd.in[0] = x;
  nd.attr.kh = s->dim[2];
  nd.attr.kw = s->dim[3];
  nd.attr.strides[0] = nd.attr.strides[1] = 1;
  nd.attr.dilations[0] = nd.attr.dilations[1] = 1;
  if (nd.attr.kh > (size_t)MAX_WIN || nd.attr.kw > (size_t)MAX_WIN)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "plane %zux%zu is too large", nd.attr.kh,
                           nd.attr.kw);
  int r = mpc__onnx_add_node(c, k, &nd);
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

/* 1 if Pad node k's zeros go into the window of the one Conv or
 * AveragePool that reads its output (spatial pads of a 4-D input only);
 * otherwise the Pad is a Select of its own (onnx_move.c). */
static int pad_folds(ctx_t *c, size_t k, const mpc_shape_t *s, const int64_t *pv, size_t pn) {
  ent_t *o = mpc__onnx_out_ent(c, k, 0);
  if (o == NULL || o->nuse != 1 || o->gout || s->ndim != 4 || pn != 8)
    return 0;
  for (int i = 0; i < 8; i++)
    if (pv[i] < 0 || ((i % 4) < 2 && pv[i] != 0))
      return 0;
  const char *op = str_or(nodep(c, o->user)->op_type, "");
  return strcmp(op, "Conv") == 0 || strcmp(op, "AveragePool") == 0;
}

/* Opset 18's axes input: pads then speak of those axes only (begins, then
 * ends, in the axes' order); *pv and *pn are made the full rank's, in full. */
static int pad_axes(ctx_t *c, size_t k, const int64_t **pv, size_t *pn, int64_t *full) {
  if (mpc__onnx_in_name(c, k, 3) == NULL)
    return 0;
  const int64_t *av;
  size_t an;
  int rc = mpc__onnx_in_ints(c, k, 3, 1, &av, &an);
  ent_t *e = rc == 0 ? mpc__onnx_in_ent(c, k, 0, 1, &rc) : NULL;
  if (e == NULL)
    return rc;
  if (e->kind != V_ACT && e->kind != V_PAD)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "padding a constant is not supported");
  const unsigned r = shape_of(c, e->node)->ndim;
  if (*pn != 2 * an)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "%zu pads for %zu axes", *pn, an);
  for (unsigned i = 0; i < 2 * r; i++)
    full[i] = 0;
  unsigned seen = 0;
  for (size_t j = 0; j < an; j++) {
    int64_t a = av[j] < 0 ? av[j] + (int64_t)r : av[j];
    if (a < 0 || a >= (int64_t)r || (seen >> a) & 1u)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axes[%zu] = %" PRId64 " is %s for rank %u", j,
                             av[j], a < 0 || a >= (int64_t)r ? "out of range" : "repeated", r);
    seen |= 1u << a;
    full[a] = (*pv)[j];
    full[a + r] = (*pv)[j + an];
  }
  *pv = full;
  *pn = 2 * r;
  return 0;
}

int mpc__onnx_op_pad(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"mode", "pads", "value", NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0)
    return rc;
  char mode[32];
  if ((rc = mpc__onnx_attr_str(c, k, "mode", "constant", mode, sizeof mode)) != 0)
    return rc;
  /* Modes other than constant: 1 edge, 2 reflect, 3 wrap (opset 19). */
  int other = strcmp(mode, "edge") == 0      ? 1
              : strcmp(mode, "reflect") == 0 ? 2
              : strcmp(mode, "wrap") == 0    ? 3
                                             : 0;
  if (strcmp(mode, "constant") != 0 && other == 0)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "mode=%s is not supported", mode);
  const int64_t *pv;
  size_t pn;
  int64_t full[2 * MPC__CT_MAX_DIMS];
  double value = 0.0;
  if (c->opset >= 11) {
    if (mpc__onnx_attr_find(c, k, "pads") != NULL || mpc__onnx_attr_find(c, k, "value") != NULL)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "pads and value are inputs from opset 11 on");
    if ((rc = mpc__onnx_in_ints(c, k, 1, 1, &pv, &pn)) != 0 ||
        (rc = pad_axes(c, k, &pv, &pn, full)) != 0)
      return rc;
    const mpc__ctensor_t *cv = NULL;
    ent_t *ve = mpc__onnx_in_name(c, k, 2) != NULL ? mpc__onnx_in_ent(c, k, 2, 0, &rc) : NULL;
    int x;
    if (ve != NULL && ve->kind == V_ACT && !other) {
      if ((rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
        return rc;
      return mpc__onnx_emit_pad_value(c, k, x, ve->node, pv, pn);
    }
    if ((rc = mpc__onnx_in_const(c, k, 2, 0, &cv)) != 0)
      return rc;
    if (cv != NULL) {
      if (cv->numel != 1)
        return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "constant_value must be a scalar");
      value = cv->f != NULL ? cv->f[0] : (double)cv->i[0];
    }
  } else {
    if ((rc = mpc__onnx_attr_ints(c, k, "pads", &pv, &pn)) != 0 ||
        (rc = mpc__onnx_attr_float(c, k, "value", 0.0, &value)) != 0)
      return rc;
    if (pn == SIZE_MAX)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "pads is required");
  }
  if (value != 0.0)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "padding value %g is not supported (only 0)",
                           value);
  int rc2;
  ent_t *e = mpc__onnx_in_ent(c, k, 0, 1, &rc2);
  if (e == NULL)
    return rc2;
  if (e->kind == V_CONST)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "padding a constant is not supported");
  if (other) {
    int x;
    if ((rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
      return rc;
    return mpc__onnx_emit_pad_mode(c, k, x, pv, pn, other - 1);
  }
  const mpc_shape_t *s = shape_of(c, e->node);
  if (e->kind == V_ACT && !pad_folds(c, k, s, pv, pn))
    return mpc__onnx_emit_pad(c, k, e->node, pv, pn);
  if (s->ndim != 4 || pn != 8)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "only padding of the two spatial axes of a 4-D NCHW "
                           "input is supported (input rank %u, %zu pads)",
                           s->ndim, pn == SIZE_MAX ? (size_t)0 : pn);
  for (int i = 0; i < 8; i++) {
    if (pv[i] < 0 || pv[i] > MAX_WIN)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "pads[%d] = %" PRId64 " is not supported", i,
                             pv[i]);
    if ((i % 4) < 2 && pv[i] != 0)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                             "padding the batch or channel axis is not supported");
  }
  ent_t *o = mpc__onnx_out_ent(c, k, 0);
  if (o == NULL)
    return 0;
  size_t add[4] = {(size_t)pv[2], (size_t)pv[3], (size_t)pv[6], (size_t)pv[7]};
  if (!(add[0] | add[1] | add[2] | add[3])) {
    mpc__onnx_def_alias(c, k, 0, e);
    return 0;
  }
  o->kind = V_PAD;
  o->node = e->node;
  for (int i = 0; i < 4; i++) {
    o->pads[i] = (e->kind == V_PAD ? e->pads[i] : 0) + add[i];
    if (o->pads[i] > (size_t)MAX_WIN)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "total padding %zu is too large", o->pads[i]);
  }
  /* node_name may return a scratch buffer: keep the model's own string where
   * there is one, else name the padded value, which lives as long. */
  if (e->kind == V_PAD)
    o->pad_from = e->pad_from;
  else
    o->pad_from = str_or(nodep(c, k)->name, o->name);
  return 0;
}
