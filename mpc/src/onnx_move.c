/* onnx_move.c - the ONNX handlers of the operators that only move data:
 * Concat, Split, Slice, Gather (constant indices), Expand and a Pad that no
 * Conv or AveragePool absorbs (Resize/Upsample: onnx_resize.c).
 * Each becomes IR Concat or Select nodes (graph.c), which plan.c lowers to
 * layout gates: local, no round, a masked value stays masked. The graph's
 * first axis may be the batch (an input's symbolic first dimension): an
 * operator that would move data across it is refused, naming the node.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_imp.h"

/* An axis attribute in [-r, r) made non-negative. */
static int norm_axis(ctx_t *c, size_t k, int64_t a, unsigned r, unsigned *out) {
  if (a < -(int64_t)r || a >= (int64_t)r)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axis %" PRId64 " is outside [-%u, %u)", a, r, r);
  *out = (unsigned)(a < 0 ? a + (int64_t)r : a);
  return 0;
}

/* Refuses to move data along axis 0 of a batched graph's activation. */
static int batch_guard(ctx_t *c, size_t k, unsigned axis) {
  if (axis == 0 && c->any_batched)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "moving data along axis 0, the batch dimension, is not supported");
  return 0;
}

/* A Select node of x with output shape os; start/step/div per axis (NULL:
 * the identity on every axis not given); table >= 0 selects on `axis`. */
static int emit_select(ctx_t *c, size_t k, int x, const mpc_shape_t *os, const int64_t *start,
                       const int64_t *step, const uint32_t *div, int table, unsigned axis) {
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_SELECT, x, table, -1);
  nd.shape = *os;
  nd.attr.axis = (int)axis;
  for (unsigned d = 0; d < os->ndim; d++) {
    nd.attr.sel_start[d] = start != NULL ? start[d] : 0;
    nd.attr.sel_step[d] = step != NULL ? step[d] : 1;
    nd.attr.sel_div[d] = div != NULL ? div[d] : 1;
  }
  /* Axis 0 untouched: it follows the input's size (the batch, if any). */
  const mpc_shape_t *is = shape_of(c, x);
  nd.attr.sel_batch = nd.attr.sel_start[0] == 0 && nd.attr.sel_step[0] == 1 &&
                      nd.attr.sel_div[0] == 1 && !(table >= 0 && axis == 0) &&
                      os->dim[0] == is->dim[0];
  return mpc__onnx_add_node(c, k, &nd);
}

int mpc__onnx_emit_select(ctx_t *c, size_t k, int x, const mpc_shape_t *os, const int64_t *start,
                          const int64_t *step, const uint32_t *div, int table, unsigned axis) {
  return emit_select(c, k, x, os, start, step, div, table, axis);
}

int mpc__onnx_batch_guard(ctx_t *c, size_t k, unsigned axis) { return batch_guard(c, k, axis); }

static int emit_reshape_to(ctx_t *c, size_t k, int x, const mpc_shape_t *to) {
  const mpc_shape_t *s = shape_of(c, x);
  if (s->ndim == to->ndim && memcmp(s->dim, to->dim, s->ndim * sizeof s->dim[0]) == 0)
    return x;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_RESHAPE, x, -1, -1);
  nd.shape = *to;
  return mpc__onnx_add_node(c, k, &nd);
}

static int def_result(ctx_t *c, size_t k, size_t j, int r) {
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, j, r);
  return 0;
}

/* The output shape of a Concat along axis whose inputs are activations and
 * constants (of the same rank; the first activation names the rank), and
 * the first activation's node. */
static int concat_shape(ctx_t *c, size_t k, int64_t axis, mpc_shape_t *os, unsigned *axp,
                        int *first) {
  size_t n = nodep(c, k)->n_input;
  int rc;
  *first = -1;
  for (size_t j = 0; j < n && *first < 0; j++)
    if (mpc__onnx_peek_any_const(c, k, j) == NULL && (rc = mpc__onnx_in_act(c, k, j, first)) != 0)
      return rc;
  *os = *shape_of(c, *first);
  if ((rc = norm_axis(c, k, axis, os->ndim, axp)) != 0 || (rc = batch_guard(c, k, *axp)) != 0)
    return rc;
  os->dim[*axp] = 0;
  for (size_t j = 0; j < n; j++) {
    const mpc__ctensor_t *t = mpc__onnx_peek_any_const(c, k, j);
    mpc_shape_t s;
    int x;
    if (t == NULL && (rc = mpc__onnx_in_act(c, k, j, &x)) != 0)
      return rc;
    if (t == NULL)
      s = *shape_of(c, x);
    else if (t->f == NULL || t->ndim != os->ndim)
      return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "constant input %zu is not a float tensor "
                             "of rank %u", j, os->ndim);
    else
      for (unsigned d = s.ndim = t->ndim; d-- > 0;)
        s.dim[d] = t->dim[d];
    for (unsigned d = 0; d < os->ndim; d++)
      if (s.ndim != os->ndim || (d != *axp && s.dim[d] != os->dim[d]))
        return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "input %zu does not join the others", j);
    os->dim[*axp] += s.dim[*axp];
  }
  return 0;
}

/* Concat of activations and the owner's constants (a class token before
 * the patches): each activation padded with zeros to the output's extent
 * (a Select reading outside its input), the padded ones added, and one
 * parameter holding the constants in their places (zeros elsewhere) added
 * last. Local: no round, as a Concat of activations. On a batched graph
 * the constants' first dimension is 1 and the parameter broadcasts. */
static int concat_mixed(ctx_t *c, size_t k, int64_t axis) {
  size_t n = nodep(c, k)->n_input;
  mpc_shape_t os;
  unsigned ax = 0;
  int first, rc, cur = -1;
  if ((rc = concat_shape(c, k, axis, &os, &ax, &first)) != 0)
    return rc;
  size_t total = mpc_shape_numel(&os), outer = 1, inner = 1, off = 0;
  for (unsigned d = 0; d < ax; d++)
    outer *= os.dim[d];
  for (unsigned d = ax + 1; d < os.ndim; d++)
    inner *= os.dim[d];
  double *pd = calloc(total ? total : 1, sizeof *pd);
  if (pd == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t j = 0; j < n; j++, rc = 0) {
    const mpc__ctensor_t *t = mpc__onnx_peek_any_const(c, k, j);
    int x = -1;
    if (t == NULL && (rc = mpc__onnx_in_act(c, k, j, &x)) != 0)
      break;
    size_t len = t != NULL ? t->dim[ax] : shape_of(c, x)->dim[ax];
    if (t != NULL) {
      for (size_t o = 0; o < outer; o++)
        memcpy(pd + (o * os.dim[ax] + off) * inner, t->f + o * len * inner,
               len * inner * sizeof *pd);
    } else {
      int64_t start[MPC_MAX_DIMS] = {0};
      start[ax] = -(int64_t)off;
      int p = emit_select(c, k, x, &os, start, NULL, NULL, -1, 0);
      mpc_node_t nd;
      mpc__onnx_node_init(&nd, MPC_OP_ADD, cur, p, -1);
      if ((rc = p) < 0 || (cur >= 0 && (rc = p = mpc__onnx_add_node(c, k, &nd)) < 0))
        break;
      cur = p;
    }
    off += len;
  }
  if (rc < 0) {
    free(pd);
    return rc;
  }
  char name[80];
  snprintf(name, sizeof name, "%.60s.constants", mpc__onnx_node_name(c, k));
  int pn = mpc__onnx_make_param(c, k, name, os.ndim, os.dim, pd);
  if (pn < 0)
    return pn;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_ADD, cur, pn, -1);
  return def_result(c, k, 0, mpc__onnx_add_node(c, k, &nd));
}

int mpc__onnx_op_concat(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"axis", NULL};
  int rc = mpc__onnx_attr_check(c, k, known);
  int64_t axis;
  if (rc != 0 || (rc = mpc__onnx_attr_int(c, k, "axis", c->opset < 4 ? 1 : INT64_MIN, &axis)) != 0)
    return rc;
  if (axis == INT64_MIN)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axis is required");
  size_t n = nodep(c, k)->n_input;
  if (n == 0)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "needs at least one input");
  int all_const = 1;
  for (size_t j = 0; j < n && all_const; j++) {
    ent_t *e = mpc__onnx_in_ent(c, k, j, 1, &rc);
    if (e == NULL)
      return rc;
    all_const = e->kind == V_CONST;
  }
  if (all_const) /* a shape built from pieces: folded here */
    return mpc__onnx_const_concat(c, k, axis);
  for (size_t j = 0; j < n; j++)
    if (mpc__onnx_peek_any_const(c, k, j) != NULL)
      return concat_mixed(c, k, axis);
  int cur;
  if ((rc = mpc__onnx_in_act(c, k, 0, &cur)) != 0)
    return rc;
  unsigned ax = 0;
  if ((rc = norm_axis(c, k, axis, shape_of(c, cur)->ndim, &ax)) != 0)
    return rc;
  if (n > 1 && (rc = batch_guard(c, k, ax)) != 0)
    return rc;
  for (size_t j = 1; j < n; j++) {
    int x;
    if ((rc = mpc__onnx_in_act(c, k, j, &x)) != 0)
      return rc;
    mpc_node_t nd;
    mpc__onnx_node_init(&nd, MPC_OP_CONCAT, cur, x, -1);
    nd.attr.axis = (int)ax;
    if ((cur = mpc__onnx_add_node(c, k, &nd)) < 0)
      return cur;
  }
  return def_result(c, k, 0, cur);
}

int mpc__onnx_op_split(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"axis", "split", "num_outputs", NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x;
  int64_t axis, nout_attr;
  if (rc != 0 || (rc = mpc__onnx_attr_int(c, k, "axis", 0, &axis)) != 0 ||
      (rc = mpc__onnx_attr_int(c, k, "num_outputs", 0, &nout_attr)) != 0 ||
      (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  const mpc_shape_t is = *shape_of(c, x);
  unsigned ax = 0;
  if ((rc = norm_axis(c, k, axis, is.ndim, &ax)) != 0 || (rc = batch_guard(c, k, ax)) != 0)
    return rc;
  const int64_t *sv = NULL;
  size_t sn = SIZE_MAX, nout = nodep(c, k)->n_output;
  if (c->opset >= 13) {
    if (mpc__onnx_attr_find(c, k, "split") != NULL)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "split is an input from opset 13 on");
    if (mpc__onnx_in_name(c, k, 1) != NULL && (rc = mpc__onnx_in_ints(c, k, 1, 1, &sv, &sn)) != 0)
      return rc;
  } else if ((rc = mpc__onnx_attr_ints(c, k, "split", &sv, &sn)) != 0) {
    return rc;
  }
  if (sn != SIZE_MAX && sn != nout)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "split lists %zu parts for %zu outputs", sn, nout);
  size_t len = is.dim[ax], off = 0;
  size_t part = (len + nout - 1) / nout; /* equal parts; the last may be smaller (opset 18) */
  for (size_t j = 0; j < nout; j++) {
    int64_t sz = sn != SIZE_MAX ? sv[j] : (int64_t)(j + 1 < nout ? part : len - off);
    if (sn == SIZE_MAX && nout_attr == 0 && len % nout != 0)
      return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "axis of %zu does not split into %zu parts",
                             len, nout);
    if (sz <= 0 || (uint64_t)sz > len - off)
      return mpc__onnx_nfail(c, k, sz == 0 ? TANDEM_EUNSUPOP : TANDEM_ESHAPE,
                             "part %zu of %" PRId64 " elements %s", j, sz,
                             sz == 0 ? "(empty tensors are not supported)"
                                     : "does not fit the axis");
    mpc_shape_t os = is;
    os.dim[ax] = (size_t)sz;
    int64_t start[MPC_MAX_DIMS] = {0};
    start[ax] = (int64_t)off;
    off += (size_t)sz;
    if (mpc__onnx_out_ent(c, k, j) == NULL)
      continue;
    if ((rc = def_result(c, k, j, emit_select(c, k, x, &os, start, NULL, NULL, -1, 0))) != 0)
      return rc;
  }
  if (off != len)
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "parts add up to %zu, the axis has %zu", off, len);
  return 0;
}

/* Starts, ends, axes and steps of a Slice: attributes before opset 10,
 * inputs from it on. */
static int slice_args(ctx_t *c, size_t k, const int64_t *v[4], size_t n[4]) {
  static const char *const names[4] = {"starts", "ends", "axes", "steps"};
  int rc;
  for (int i = 0; i < 4; i++) {
    v[i] = NULL;
    n[i] = SIZE_MAX;
    if (c->opset >= 10)
      rc = mpc__onnx_in_name(c, k, (size_t)i + 1) == NULL && i >= 2
               ? 0
               : mpc__onnx_in_ints(c, k, (size_t)i + 1, i < 2, &v[i], &n[i]);
    else
      rc = i == 3 ? 0 : mpc__onnx_attr_ints(c, k, names[i], &v[i], &n[i]);
    if (rc != 0)
      return rc;
  }
  if (n[0] == SIZE_MAX || n[1] == SIZE_MAX || n[0] != n[1] || (n[2] != SIZE_MAX && n[2] != n[0]) ||
      (n[3] != SIZE_MAX && n[3] != n[0]))
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "starts, ends, axes and steps differ in length");
  return 0;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

int mpc__onnx_op_slice(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known9[] = {"starts", "ends", "axes", NULL};
  static const char *const known10[] = {NULL};
  int rc = mpc__onnx_attr_check(c, k, c->opset >= 10 ? known10 : known9), x = -1;
  const int64_t *v[4];
  size_t n[4];
  const mpc__ctensor_t *kt = rc == 0 ? mpc__onnx_peek_any_const(c, k, 0) : NULL;
  if (rc != 0 || (kt == NULL && (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0) ||
      (rc = slice_args(c, k, v, n)) != 0)
    return rc;
  if (kt != NULL) /* again: reading the arguments may have moved the constants */
    kt = mpc__onnx_peek_any_const(c, k, 0);
  mpc_shape_t is = {0, {0}};
  if (kt != NULL && kt->ndim > MPC_MAX_DIMS)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "a constant of rank %u", kt->ndim);
  if (kt != NULL) { /* a shape's entries: folded (never the batch's axis) */
    is.ndim = kt->ndim;
    for (unsigned d = 0; d < kt->ndim; d++)
      is.dim[d] = kt->dim[d];
  } else {
    is = *shape_of(c, x);
  }
  mpc_shape_t os = is;
  int64_t start[MPC_MAX_DIMS] = {0}, step[MPC_MAX_DIMS];
  unsigned seen = 0;
  for (unsigned d = 0; d < MPC_MAX_DIMS; d++)
    step[d] = 1;
  for (size_t i = 0; i < n[0]; i++) {
    unsigned ax = 0;
    if ((rc = norm_axis(c, k, n[2] != SIZE_MAX ? v[2][i] : (int64_t)i, is.ndim, &ax)) != 0)
      return rc;
    if ((seen >> ax) & 1u)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axis %u is listed twice", ax);
    seen |= 1u << ax;
    int64_t dim = (int64_t)is.dim[ax], st = n[3] != SIZE_MAX ? v[3][i] : 1;
    int64_t b = v[0][i], e = v[1][i];
    if (st == 0 || st < -(int64_t)MAX_WIN || st > (int64_t)MAX_WIN)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "step %" PRId64 " is not supported", st);
    b = b < 0 ? (b < -dim ? 0 : b + dim) : b; /* large magnitudes clamp, never overflow */
    e = e < 0 ? (e < -dim ? -1 : e + dim) : e;
    b = st > 0 ? clamp64(b, 0, dim) : clamp64(b, 0, dim - 1);
    e = st > 0 ? clamp64(e, 0, dim) : clamp64(e, -1, dim - 1);
    int64_t cnt = st > 0 ? (e - b + st - 1) / st : (b - e - st - 1) / -st;
    if (cnt <= 0)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                             "axis %u would be empty (empty tensors are not supported)", ax);
    if (kt == NULL && (cnt != dim || st != 1) && (rc = batch_guard(c, k, ax)) != 0)
      return rc;
    os.dim[ax] = (size_t)cnt;
    start[ax] = b;
    step[ax] = st;
  }
  if (kt != NULL) {
    dims_t to = {os.ndim, {0}};
    for (unsigned d = 0; d < os.ndim; d++)
      to.dim[d] = os.dim[d];
    return mpc__onnx_const_slice(c, k, kt, &to, start, step);
  }
  return def_result(c, k, 0, emit_select(c, k, x, &os, start, step, NULL, -1, 0));
}

/* A Gather by the client's token ids (input 1, an ids INPUT [..., V]: the
 * import checked that input 0 is the owner's table [V, H] and the axis 0):
 * the product of the one-hot ids with the table, [..., V] x [V, H] ->
 * [..., H], the input-times-weights product of every linear layer (no
 * round; the table's row exactly, a one-hot being 0 or 1). */
static int gather_ids(ctx_t *c, size_t k, int ids) {
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_MATMUL, ids, -1, -1);
  int rc = mpc__onnx_in_operand(c, k, 0, 1, &nd.in[1]);
  if (rc != 0)
    return rc;
  int r = mpc__onnx_add_node(c, k, &nd);
  if (r < 0)
    return r;
  mpc__onnx_def_act(c, k, 0, r);
  return 0;
}

int mpc__onnx_op_gather(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"axis", NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x;
  int64_t axis;
  if (rc != 0 || (rc = mpc__onnx_attr_int(c, k, "axis", 0, &axis)) != 0)
    return rc;
  const mpc__ctensor_t *t;
  ent_t *ie = mpc__onnx_in_ent(c, k, 1, 1, &rc);
  if (ie == NULL)
    return rc;
  if (ie->kind == V_ACT && c->g->nodes[ie->node].op == MPC_OP_INPUT && c->g->nodes[ie->node].ids)
    return gather_ids(c, k, ie->node);
  ent_t *de = mpc__onnx_in_ent(c, k, 0, 1, &rc);
  if (de == NULL)
    return rc;
  if (de->kind == V_CONST) { /* a shape's entries: folded here */
    if ((rc = mpc__onnx_in_const(c, k, 0, 1, &t)) != 0)
      return rc;
    return mpc__onnx_const_gather(c, k, t, axis);
  }
  if ((rc = mpc__onnx_in_act(c, k, 0, &x)) != 0 || (rc = mpc__onnx_in_const(c, k, 1, 1, &t)) != 0)
    return rc;
  const mpc_shape_t is = *shape_of(c, x);
  unsigned ax = 0;
  if ((rc = norm_axis(c, k, axis, is.ndim, &ax)) != 0 || (rc = batch_guard(c, k, ax)) != 0)
    return rc;
  if (t->i == NULL || t->numel == 0)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "indices must be a non-empty integer tensor");
  if (is.ndim - 1 + t->ndim > MPC_MAX_DIMS)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "the result would have more than %d axes",
                           MPC_MAX_DIMS);
  double *idx = malloc(t->numel * sizeof *idx);
  if (idx == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  int64_t dim = (int64_t)is.dim[ax];
  for (size_t i = 0; i < t->numel; i++) {
    int64_t j = t->i[i] < 0 ? t->i[i] + dim : t->i[i];
    if (j < 0 || j >= dim) {
      free(idx);
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "index %" PRId64 " is outside an axis of %" PRId64,
                             t->i[i], dim);
    }
    idx[i] = (double)j;
  }
  size_t tn = t->numel;
  char name[80];
  snprintf(name, sizeof name, "%.60s.indices", mpc__onnx_node_name(c, k));
  int tab = mpc_graph_const(c->g, name, 1, &tn, idx);
  free(idx);
  if (tab < 0)
    return mpc__onnx_nfail(c, k, tab, "cannot store the index table");
  mpc_shape_t os = is, fin = {0, {0}};
  os.dim[ax] = tn;
  int r = emit_select(c, k, x, &os, NULL, NULL, NULL, tab, ax);
  if (r < 0)
    return r;
  /* The indices' axes replace the gathered one. */
  for (unsigned d = 0; d < ax; d++)
    fin.dim[fin.ndim++] = is.dim[d];
  for (unsigned d = 0; d < t->ndim; d++)
    fin.dim[fin.ndim++] = t->dim[d];
  for (unsigned d = ax + 1; d < is.ndim; d++)
    fin.dim[fin.ndim++] = is.dim[d];
  if (fin.ndim == 0)
    fin.dim[fin.ndim++] = 1;
  return def_result(c, k, 0, emit_reshape_to(c, k, r, &fin));
}

int mpc__onnx_op_expand(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x;
  const int64_t *sv;
  size_t sn;
  if (rc != 0 || (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0 ||
      (rc = mpc__onnx_in_ints(c, k, 1, 1, &sv, &sn)) != 0)
    return rc;
  mpc_shape_t is = *shape_of(c, x);
  unsigned r = sn > is.ndim ? (unsigned)sn : is.ndim;
  if (r > MPC_MAX_DIMS)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "result of rank %u", r);
  /* Both shapes aligned to the right; numpy broadcasting. */
  mpc_shape_t xs = {r, {0}}, os = {r, {0}};
  int64_t step[MPC_MAX_DIMS];
  for (unsigned d = 0; d < r; d++) {
    size_t a = d + is.ndim >= r ? is.dim[d + is.ndim - r] : 1;
    int64_t b = d + sn >= r ? sv[d + sn - r] : 1;
    if (b < 1 || (b != 1 && a != 1 && (size_t)b != a))
      return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "shape entry %" PRId64 " does not broadcast with %zu",
                             b, a);
    xs.dim[d] = a;
    os.dim[d] = a != 1 ? a : (size_t)b;
    step[d] = a == 1 && os.dim[d] != 1 ? 0 : 1;
    if (step[d] == 0 && d == 0 && (rc = batch_guard(c, k, 0)) != 0)
      return rc;
  }
  if (r > is.ndim && c->any_batched)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                           "adding leading axes would displace the batch dimension");
  int xr = emit_reshape_to(c, k, x, &xs);
  if (xr < 0)
    return xr;
  return def_result(c, k, 0, emit_select(c, k, xr, &os, NULL, step, NULL, -1, 0));
}

/* A Pad that no Conv or AveragePool absorbs (onnx_window.c decides): zeros
 * around any axis (negative pads crop). pads: begins then ends. */
int mpc__onnx_emit_pad(ctx_t *c, size_t k, int x, const int64_t *pv, size_t pn) {
  const mpc_shape_t is = *shape_of(c, x);
  if (pn != 2 * (size_t)is.ndim)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "%zu pads for an input of rank %u", pn, is.ndim);
  mpc_shape_t os = is;
  int64_t start[MPC_MAX_DIMS];
  for (unsigned d = 0; d < is.ndim; d++) {
    int64_t b = pv[d], e = pv[d + is.ndim], len = (int64_t)is.dim[d] + b + e;
    if (b < -(int64_t)MAX_WIN || b > (int64_t)MAX_WIN || e < -(int64_t)MAX_WIN ||
        e > (int64_t)MAX_WIN || len < 1)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "pads %" PRId64 ", %" PRId64 " on axis %u are "
                             "not supported", b, e, d);
    int rc;
    if ((b != 0 || e != 0) && (rc = batch_guard(c, k, d)) != 0)
      return rc;
    os.dim[d] = (size_t)len;
    start[d] = -b;
  }
  return def_result(c, k, 0, emit_select(c, k, x, &os, start, NULL, NULL, -1, 0));
}

/* Pad mode edge (mode 0), reflect (1) or wrap (2, opset 19): on each
 * padded axis a Select by an index table, output o reading the input at
 * o - begin clamped to the axis (edge), mirrored about its ends without
 * repeating them (reflect, numpy's) or modulo the axis (wrap, numpy's; no
 * cropping). Local, no round. */
int mpc__onnx_emit_pad_mode(ctx_t *c, size_t k, int x, const int64_t *pv, size_t pn, int mode) {
  const int reflect = mode == 1, wrap = mode == 2;
  unsigned r = shape_of(c, x)->ndim;
  if (pn != 2 * (size_t)r)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "%zu pads for an input of rank %u", pn, r);
  for (unsigned d = 0; d < r && x >= 0; d++) {
    mpc_shape_t os = *shape_of(c, x);
    int64_t b = pv[d], e = pv[d + r], in = (int64_t)os.dim[d], len = in + b + e;
    if (b == 0 && e == 0)
      continue;
    if (b < -(int64_t)MAX_WIN || b > (int64_t)MAX_WIN || e < -(int64_t)MAX_WIN ||
        e > (int64_t)MAX_WIN || len < 1 || (reflect && (b >= in || e >= in)) ||
        (wrap && (b < 0 || e < 0)))
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "pads %" PRId64 ", %" PRId64 " on axis %u are "
                             "not supported", b, e, d);
    int rc = batch_guard(c, k, d);
    if (rc != 0)
      return rc;
    double *tab = malloc((size_t)len * sizeof *tab);
    if (tab == NULL)
      return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
    for (int64_t o = 0; o < len; o++) {
      int64_t i = o - b;
      if (reflect && in > 1)
        i = i < 0 ? -i : i >= in ? 2 * (in - 1) - i : i;
      if (wrap)
        i = ((i % in) + in) % in;
      tab[o] = (double)(i < 0 ? 0 : i >= in ? in - 1 : i);
    }
    char name[80];
    snprintf(name, sizeof name, "%.60s.pad%u", mpc__onnx_node_name(c, k), d);
    size_t n = (size_t)len;
    int t = mpc_graph_const(c->g, name, 1, &n, tab);
    free(tab);
    if (t < 0)
      return mpc__onnx_nfail(c, k, t, "cannot store the index table");
    os.dim[d] = n;
    x = emit_select(c, k, x, &os, NULL, NULL, NULL, t, d);
  }
  return def_result(c, k, 0, x);
}

/* Pad mode constant with a computed value v (a graph input: the client's
 * secret): x flattened and v joined after it, then one Select by an index
 * table reading x's element or v for each output element, reshaped: local,
 * no round. Only for an unbatched x (v is one element for all rows). */
int mpc__onnx_emit_pad_value(ctx_t *c, size_t k, int x, int v, const int64_t *pv, size_t pn) {
  const mpc_shape_t is = *shape_of(c, x);
  if (pn != 2 * (size_t)is.ndim)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "%zu pads for an input of rank %u", pn, is.ndim);
  if (c->any_batched || mpc_shape_numel(shape_of(c, v)) != 1)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "a computed padding value must be one element "
                           "of an unbatched graph");
  mpc_shape_t os = is;
  for (unsigned d = 0; d < is.ndim; d++) {
    int64_t b = pv[d], e = pv[d + is.ndim];
    if (b < -(int64_t)MAX_WIN || b > (int64_t)MAX_WIN || e < -(int64_t)MAX_WIN ||
        e > (int64_t)MAX_WIN)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "pads on axis %u are not supported", d);
    int64_t len = (int64_t)is.dim[d] + b + e; /* bounded above: no overflow */
    if (len < 1)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "pads on axis %u are not supported", d);
    os.dim[d] = (size_t)len;
  }
  size_t nin = mpc_shape_numel(&is), nout = mpc_shape_numel(&os);
  mpc_shape_t flat = {2, {1, nin}}, one = {2, {1, 1}}, wide = {2, {1, nout}};
  int xf = emit_reshape_to(c, k, x, &flat), vf = emit_reshape_to(c, k, v, &one);
  if (xf < 0 || vf < 0)
    return xf < 0 ? xf : vf;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_CONCAT, xf, vf, -1);
  nd.attr.axis = 1;
  int cat = mpc__onnx_add_node(c, k, &nd);
  if (cat < 0)
    return cat;
  double *tab = malloc((nout + 1) * sizeof *tab);
  if (tab == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t o = 0; o < nout; o++) {
    size_t rem = o, src = 0, stride = 1;
    int inside = 1;
    for (int d = (int)os.ndim - 1; d >= 0; d--) {
      int64_t i = (int64_t)(rem % os.dim[d]) - pv[d];
      rem /= os.dim[d];
      inside = inside && i >= 0 && i < (int64_t)is.dim[d];
      src += inside ? (size_t)i * stride : 0;
      stride *= is.dim[d];
    }
    tab[o] = (double)(inside ? src : nin);
  }
  char name[80];
  snprintf(name, sizeof name, "%.60s.padded", mpc__onnx_node_name(c, k));
  int t = mpc_graph_const(c->g, name, 1, &nout, tab);
  free(tab);
  if (t < 0)
    return mpc__onnx_nfail(c, k, t, "cannot store the index table");
  int sel = emit_select(c, k, cat, &wide, NULL, NULL, NULL, t, 1);
  if (sel < 0)
    return sel;
  return def_result(c, k, 0, emit_reshape_to(c, k, sel, &os));
}

/* An attribute list of n window values (absent: dflt each). */
static int win_ints(ctx_t *c, size_t k, const char *name, size_t n, int64_t dflt, int64_t lo,
                    int64_t *out) {
  const int64_t *v;
  size_t vn;
  int rc = mpc__onnx_attr_ints(c, k, name, &v, &vn);
  if (rc != 0)
    return rc;
  if (vn != SIZE_MAX && vn != n)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "%s has %zu entries, want %zu", name, vn, n);
  for (size_t i = 0; i < n; i++) {
    out[i] = vn == SIZE_MAX ? dflt : v[i];
    if (out[i] < lo || out[i] > (int64_t)MAX_WIN)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "%s[%zu] = %" PRId64 " is not supported", name,
                             i, out[i]);
  }
  return 0;
}

/* x with (s - 1) zeros between its elements on spatial axis ax (2 or 3)
 * and p0, p1 more at the ends (negative: cropped): a Select whose index
 * table reads -1 (a zero) between the input's elements. */
static int dilate_axis(ctx_t *c, size_t k, int x, unsigned ax, int64_t s, int64_t p0,
                       int64_t p1) {
  mpc_shape_t os = *shape_of(c, x);
  int64_t L = (int64_t)os.dim[ax], lz = (L - 1) * s + 1 + p0 + p1;
  if (lz < 1 || lz > (int64_t)MPC__CT_MAX_NUMEL)
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "the output would be empty");
  if (s == 1 && p0 == 0 && p1 == 0)
    return x;
  double *tab = malloc((size_t)lz * sizeof *tab);
  if (tab == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (int64_t q = 0; q < lz; q++) {
    int64_t r = q - p0;
    tab[q] = r >= 0 && r % s == 0 && r / s < L ? (double)(r / s) : -1.0;
  }
  size_t n = (size_t)lz;
  char name[80];
  snprintf(name, sizeof name, "%.60s.zeros%u", mpc__onnx_node_name(c, k), ax);
  int t = mpc_graph_const(c->g, name, 1, &n, tab);
  free(tab);
  if (t < 0)
    return mpc__onnx_nfail(c, k, t, "cannot store the index table");
  os.dim[ax] = n;
  return emit_select(c, k, x, &os, NULL, NULL, NULL, t, ax);
}

/* The weights of a ConvTranspose [Ci, Co, kh, kw] as a Conv's [Co, Ci, kh,
 * kw] with each kernel turned by 180 degrees: a new parameter for the
 * owner's constant, free layout nodes for an activation. */
static int flipped_weights(ctx_t *c, size_t k, int rank3) {
  int rc;
  ent_t *e = mpc__onnx_in_ent(c, k, 1, 1, &rc);
  if (e == NULL)
    return rc;
  if (e->kind == V_CONST) {
    const mpc__ctensor_t *t;
    if ((rc = mpc__onnx_in_const(c, k, 1, 1, &t)) != 0)
      return rc;
    if (t->f == NULL || t->ndim != (rank3 ? 3u : 4u))
      return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "weights of rank %u", t->ndim);
    size_t ci = t->dim[0], co = t->dim[1], kh = rank3 ? 1 : t->dim[2], kw = t->dim[rank3 ? 2 : 3];
    double *d = malloc(t->numel * sizeof *d);
    if (d == NULL)
      return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
    for (size_t a = 0; a < ci; a++)
      for (size_t b = 0; b < co; b++)
        for (size_t i = 0; i < kh; i++)
          for (size_t j = 0; j < kw; j++)
            d[((b * ci + a) * kh + kh - 1 - i) * kw + kw - 1 - j] = t->f[((a * co + b) * kh + i) * kw + j];
    size_t dim[4] = {co, ci, kh, kw};
    char name[80];
    snprintf(name, sizeof name, "%.60s.flipped", mpc__onnx_node_name(c, k));
    return mpc__onnx_make_param(c, k, name, 4, dim, d);
  }
  int w;
  if ((rc = mpc__onnx_in_act(c, k, 1, &w)) != 0)
    return rc;
  mpc_shape_t ws = *shape_of(c, w);
  if (ws.ndim != (rank3 ? 3u : 4u))
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "weights of rank %u", ws.ndim);
  if (rank3) {
    mpc_shape_t w4 = {4, {ws.dim[0], ws.dim[1], 1, ws.dim[2]}};
    if ((w = emit_reshape_to(c, k, w, &w4)) < 0)
      return w;
    ws = w4;
  }
  int64_t start[4] = {0, 0, (int64_t)ws.dim[2] - 1, (int64_t)ws.dim[3] - 1};
  int64_t step[4] = {1, 1, -1, -1};
  if ((w = emit_select(c, k, w, &ws, start, step, NULL, -1, 0)) < 0)
    return w;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_TRANSPOSE, w, -1, -1);
  nd.attr.perm[0] = 1;
  nd.attr.perm[1] = 0;
  nd.attr.perm[2] = 2;
  nd.attr.perm[3] = 3;
  return mpc__onnx_add_node(c, k, &nd);
}

/* ConvTranspose (group 1, 1-D and 2-D): the input with stride - 1 zeros
 * inserted and padded (two free Selects), then a Conv of unit stride with
 * the weights turned; a bilinear gate as a Conv, with s^2 times its MACs
 * (the zeros are multiplied too). */
/* A Select by index table of activation x flattened to [1, n]: output
 * element o reads tab[o] (-1: a zero), reshaped to `to`. */
static int gather_flat(ctx_t *c, size_t k, int x, double *tab, const mpc_shape_t *to,
                       const char *tag) {
  size_t n = mpc_shape_numel(shape_of(c, x)), m = mpc_shape_numel(to);
  mpc_shape_t flat = {2, {1, n}}, wide = {2, {1, m}};
  char name[80];
  snprintf(name, sizeof name, "%.60s.%s", mpc__onnx_node_name(c, k), tag);
  int t = mpc_graph_const(c->g, name, 1, &m, tab);
  if (t < 0)
    return mpc__onnx_nfail(c, k, t, "cannot store the index table");
  if ((x = emit_reshape_to(c, k, x, &flat)) < 0)
    return x;
  if ((x = emit_select(c, k, x, &wide, NULL, NULL, NULL, t, 1)) < 0)
    return x;
  return emit_reshape_to(c, k, x, to);
}

/* ConvTranspose of an unbatched [1, C, D, H, W] input (group 1, dilations
 * 1): the input spread by the strides and padded to the full convolution's
 * extent, its depth windows laid out by one index table as a batch of OD
 * images [OD, KD*C, H', W'] (zeros as -1 entries), the weights
 * [C, M, KD, KH, KW] turned and flipped into [M, KD*C, KH, KW] (a table of
 * an activation, computed at import for a constant), one 2-D Conv, and the
 * depth moved back. Local but for the Conv's product. */
static int convtranspose_3d(ctx_t *c, size_t k, int x) {
  const mpc_shape_t xs = *shape_of(c, x);
  int64_t s[3], d[3], op[3], pads[6];
  int rc;
  if ((rc = win_ints(c, k, "strides", 3, 1, 1, s)) != 0 ||
      (rc = win_ints(c, k, "dilations", 3, 1, 1, d)) != 0 ||
      (rc = win_ints(c, k, "output_padding", 3, 0, 0, op)) != 0 ||
      (rc = win_ints(c, k, "pads", 6, 0, 0, pads)) != 0)
    return rc;
  if (c->any_batched || xs.dim[0] != 1 || d[0] != 1 || d[1] != 1 || d[2] != 1 ||
      mpc__onnx_attr_find(c, k, "output_shape") != NULL || mpc__onnx_in_name(c, k, 2) != NULL)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "3-D: only one unbatched image, dilations 1, "
                           "no output_shape and no bias are supported");
  ent_t *we = mpc__onnx_in_ent(c, k, 1, 1, &rc);
  if (we == NULL)
    return rc;
  const mpc__ctensor_t *wt = NULL;
  int w = -1;
  if (we->kind == V_CONST ? (rc = mpc__onnx_in_const(c, k, 1, 1, &wt)) != 0
                          : (rc = mpc__onnx_in_act(c, k, 1, &w)) != 0)
    return rc;
  size_t wd[5];
  unsigned wr = wt != NULL ? wt->ndim : shape_of(c, w)->ndim;
  for (unsigned i = 0; i < 5 && wr == 5; i++)
    wd[i] = wt != NULL ? wt->dim[i] : shape_of(c, w)->dim[i];
  if (wr != 5 || wd[0] != xs.dim[1] || (wt != NULL && wt->f == NULL))
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "weights must be [C, M, kD, kH, kW] for %zu "
                           "channels", xs.dim[1]);
  size_t C = wd[0], M = wd[1], K[3] = {wd[2], wd[3], wd[4]}, P[3], O[3];
  for (int a = 0; a < 3; a++) {
    int64_t lo = (int64_t)K[a] - 1 - pads[a], hi = (int64_t)K[a] - 1 - pads[a + 3] + op[a];
    if (lo < 0 || hi < 0)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "pads larger than the kernel");
    P[a] = (xs.dim[2 + a] - 1) * (size_t)s[a] + 1 + (size_t)lo + (size_t)hi;
    O[a] = P[a] - K[a] + 1;
  }
  /* The depth windows: [OD, KD, C, P1, P2] reading the spread input. */
  mpc_shape_t xw = {4, {O[0], K[0] * C, P[1], P[2]}};
  size_t nx = mpc_shape_numel(&xw), at = 0;
  double *tab = malloc((nx + 1) * sizeof *tab);
  if (tab == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t od = 0; od < O[0]; od++)
    for (size_t kd = 0; kd < K[0]; kd++)
      for (size_t ch = 0; ch < C; ch++)
        for (size_t ph = 0; ph < P[1]; ph++)
          for (size_t pw = 0; pw < P[2]; pw++, at++) {
            size_t pc[3] = {od + kd, ph, pw}, src = ch, ok = 1;
            for (int a = 0; a < 3; a++) {
              int64_t q = (int64_t)pc[a] - ((int64_t)K[a] - 1 - pads[a]);
              ok = ok && q >= 0 && q % s[a] == 0 && q / s[a] < (int64_t)xs.dim[2 + a];
              src = src * xs.dim[2 + a] + (ok ? (size_t)(q / s[a]) : 0);
            }
            tab[at] = ok ? (double)src : -1;
          }
  int xi = gather_flat(c, k, x, tab, &xw, "depth");
  free(tab);
  if (xi < 0)
    return xi;
  /* The weights: [M, KD*C, KH, KW], flipped on every spatial axis. */
  mpc_shape_t wf = {4, {M, K[0] * C, K[1], K[2]}};
  size_t nw = mpc_shape_numel(&wf);
  double *wtab = malloc((nw + 1) * sizeof *wtab);
  if (wtab == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  at = 0;
  for (size_t m = 0; m < M; m++)
    for (size_t kd = 0; kd < K[0]; kd++)
      for (size_t ch = 0; ch < C; ch++)
        for (size_t i = 0; i < K[1]; i++)
          for (size_t j = 0; j < K[2]; j++, at++) {
            size_t src = (((ch * M + m) * K[0] + K[0] - 1 - kd) * K[1] + K[1] - 1 - i) * K[2] +
                         K[2] - 1 - j;
            wtab[at] = wt != NULL ? wt->f[src] : (double)src;
          }
  char name[80];
  snprintf(name, sizeof name, "%.60s.flipped", mpc__onnx_node_name(c, k));
  int wi = wt != NULL ? mpc__onnx_make_param(c, k, name, 4, wf.dim, wtab)
                      : gather_flat(c, k, w, wtab, &wf, "flipped");
  if (wt == NULL)
    free(wtab);
  if (wi < 0)
    return wi;
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_CONV, xi, wi, -1);
  nd.attr.kh = K[1];
  nd.attr.kw = K[2];
  nd.attr.strides[0] = nd.attr.strides[1] = 1;
  nd.attr.dilations[0] = nd.attr.dilations[1] = 1;
  int y = mpc__onnx_add_node(c, k, &nd); /* [OD, M, O1, O2] */
  if (y < 0)
    return y;
  mpc__onnx_node_init(&nd, MPC_OP_TRANSPOSE, y, -1, -1);
  nd.attr.perm[0] = 1;
  nd.attr.perm[1] = 0;
  nd.attr.perm[2] = 2;
  nd.attr.perm[3] = 3;
  if ((y = mpc__onnx_add_node(c, k, &nd)) < 0)
    return y;
  mpc_shape_t ys = {5, {1, M, O[0], O[1], O[2]}};
  return def_result(c, k, 0, emit_reshape_to(c, k, y, &ys));
}

int mpc__onnx_op_convtranspose(ctx_t *c, size_t k, int variant) {
  (void)variant;
  static const char *const known[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                      "output_padding", "output_shape", "pads", "strides",
                                      NULL};
  int rc = mpc__onnx_attr_check(c, k, known), x;
  int64_t group;
  char ap[32];
  if (rc != 0 || (rc = mpc__onnx_attr_int(c, k, "group", 1, &group)) != 0 ||
      (rc = mpc__onnx_attr_str(c, k, "auto_pad", "NOTSET", ap, sizeof ap)) != 0 ||
      (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  if (group != 1)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "group=%" PRId64 " is not supported", group);
  mpc_shape_t xs = *shape_of(c, x);
  if (xs.ndim == 5)
    return convtranspose_3d(c, k, x);
  if (xs.ndim != 3 && xs.ndim != 4)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "input of rank %u (1-D, 2-D and 3-D only)",
                           xs.ndim);
  int rank3 = xs.ndim == 3;
  size_t ns = rank3 ? 1 : 2;
  int64_t s[2], d[2], op[2], pads[4], osh[2] = {-1, -1};
  if ((rc = win_ints(c, k, "strides", ns, 1, 1, s)) != 0 ||
      (rc = win_ints(c, k, "dilations", ns, 1, 1, d)) != 0 ||
      (rc = win_ints(c, k, "output_padding", ns, 0, 0, op)) != 0 ||
      (rc = win_ints(c, k, "pads", 2 * ns, 0, 0, pads)) != 0)
    return rc;
  if (mpc__onnx_attr_find(c, k, "output_shape") != NULL &&
      (rc = win_ints(c, k, "output_shape", ns, 1, 1, osh)) != 0)
    return rc;
  int w = flipped_weights(c, k, rank3);
  if (w < 0)
    return w;
  const mpc_shape_t ws = *shape_of(c, w);
  if (rank3) {
    mpc_shape_t x4 = {4, {xs.dim[0], xs.dim[1], 1, xs.dim[2]}};
    if ((x = emit_reshape_to(c, k, x, &x4)) < 0)
      return x;
  }
  if (ws.dim[1] != shape_of(c, x)->dim[1])
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "weights for %zu channels, input has %zu",
                           ws.dim[1], shape_of(c, x)->dim[1]);
  int same = strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0;
  if (!same && strcmp(ap, "NOTSET") != 0)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "auto_pad=%s is not supported", ap);
  for (size_t i = 0; i < ns; i++) {
    unsigned ax = (unsigned)(4 - ns + i);
    int64_t L = (int64_t)shape_of(c, x)->dim[ax], kk = (int64_t)ws.dim[ax];
    int64_t full = s[i] * (L - 1) + op[i] + (kk - 1) * d[i] + 1, pb = pads[i], pe = pads[i + ns];
    if (osh[i] < 0 && same)
      osh[i] = L * s[i];
    if (osh[i] >= 0) { /* pads from the output shape, as ONNX says */
      int64_t tot = full - osh[i];
      int upper = strcmp(ap, "SAME_LOWER") != 0;
      pb = upper ? tot / 2 : tot - tot / 2;
      pe = tot - pb;
    }
    int64_t ext = (kk - 1) * d[i];
    if ((x = dilate_axis(c, k, x, ax, s[i], ext - pb, ext - pe + op[i])) < 0)
      return x;
  }
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_CONV, x, w, -1);
  nd.attr.kh = ws.dim[2];
  nd.attr.kw = ws.dim[3];
  nd.attr.strides[0] = nd.attr.strides[1] = 1;
  nd.attr.dilations[0] = rank3 ? 1 : (size_t)d[0];
  nd.attr.dilations[1] = (size_t)d[ns - 1];
  if (mpc__onnx_in_name(c, k, 2) != NULL && (rc = mpc__onnx_in_operand(c, k, 2, 0, &nd.in[2])) != 0)
    return rc;
  int y = mpc__onnx_add_node(c, k, &nd);
  if (y < 0 || !rank3)
    return def_result(c, k, 0, y);
  const mpc_shape_t *ys = shape_of(c, y);
  mpc_shape_t y3 = {3, {ys->dim[0], ys->dim[1], ys->dim[3]}};
  return def_result(c, k, 0, emit_reshape_to(c, k, y, &y3));
}
