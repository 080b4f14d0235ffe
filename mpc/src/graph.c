/* graph.c - the public part of a model (operators and shapes); its
 * plaintext floating-point reference is eval_float.c.
 *
 * A graph sits at the bottom of mpc/: the ONNX importer and the tests append
 * nodes here, plan.c lowers the finished graph to gates, and mpc_eval_float is
 * the IEEE-double reference that every private result is compared with (and
 * what `tandem run --plaintext` prints). Nothing here is secret-dependent or
 * talks to a peer. Shape inference is one function, mpc__infer(), used twice: by
 * mpc_graph_add on the declared shapes, so a bad model is rejected with a
 * message naming the node before any protocol starts, and by mpc_eval_float
 * on the shapes of the actual inputs, so a graph declared for one batch size
 * evaluates at any other. Sizes are bounded (2^40 elements per tensor, 2^16
 * for every window attribute) so that no shape arithmetic below can overflow
 * a 64-bit size_t.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "graph_int.h"

/* The largest tensor a graph may hold, in elements. Far above any model this
 * project runs, and low enough that products of two dimensions and byte counts
 * (8 * numel) stay far from SIZE_MAX. */
#define MAX_NUMEL ((uint64_t)1 << 40)
/* The largest kernel size, padding, stride or dilation accepted. With
 * dimensions below 2^40 this keeps every window computation in range. */
#define MAX_WINDOW ((size_t)1 << 16)

/* ---- names --------------------------------------------------------------- */

const char *mpc_role_name(mpc_role_t role) {
  static const char *const names[MPC_NROLES] = {"p0", "p1", "dealer", "client", "owner"};
  /* An out-of-range enum may come from a config or a cast; never index with it. */
  return (unsigned)role < MPC_NROLES ? names[role] : "unknown";
}

const char *mpc_op_name(mpc_op_t op) {
  static const char *const names[] = {
      "Input", "Param",   "Const",       "MatMul",  "Gemm",      "Conv",   "Add",
      "Sub",   "MulC",    "Relu",        "MaxPool", "AveragePool", "Reshape", "Transpose",
      "Output", "Mul",   "Concat",  "Select",
      "Sigmoid", "Tanh", "Exp", "Erf", "Gelu", "GeluTanh", "Reciprocal", "Rsqrt", "Sqrt",
      "Softmax", "LayerNorm", "LinearMap"};
  return (unsigned)op < sizeof names / sizeof names[0] ? names[op] : "unknown";
}

/* ---- shapes -------------------------------------------------------------- */

/* 0 stands for "no valid element count": a NULL shape, too many dimensions, a
 * zero dimension or a product that overflows size_t (never a wrapped or
 * saturated value). Graphs never hold such a shape: mpc_graph_add refuses
 * every shape whose count is 0 here or above 2^40. */
size_t mpc_shape_numel(const mpc_shape_t *s) {
  if (s == NULL || s->ndim > MPC_MAX_DIMS)
    return 0;
  size_t n = 1;
  for (unsigned d = 0; d < s->ndim; d++) {
    if (s->dim[d] == 0 || n > SIZE_MAX / s->dim[d])
      return 0;
    n *= s->dim[d];
  }
  return n;
}

int mpc__shape_eq(const mpc_shape_t *a, const mpc_shape_t *b) {
  if (a->ndim != b->ndim)
    return 0;
  for (unsigned d = 0; d < a->ndim; d++)
    if (a->dim[d] != b->dim[d])
      return 0;
  return 1;
}

mpc__sstr_t mpc__sstr(const mpc_shape_t *s) {
  mpc__sstr_t r;
  size_t pos = 0;
  unsigned nd = s->ndim > MPC_MAX_DIMS ? MPC_MAX_DIMS : s->ndim;
  r.s[pos++] = '[';
  for (unsigned d = 0; d < nd; d++) {
    int w = snprintf(r.s + pos, sizeof r.s - pos, d ? ", %zu" : "%zu", s->dim[d]);
    if (w < 0 || (size_t)w >= sizeof r.s - pos)
      break;
    pos += (size_t)w;
  }
  if (pos < sizeof r.s - 1)
    r.s[pos++] = ']';
  r.s[pos] = '\0';
  return r;
}

/* ---- errors -------------------------------------------------------------- */

int mpc__efail(const mpc__ectx_t *e, int code, const char *fmt, ...) {
  if (e != NULL && e->buf != NULL && e->len > 0) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(e->buf, e->len, "node '%s' (%s): %s", e->name, mpc_op_name(e->op), what);
  }
  return code;
}

/* A shape a graph may hold: 1..MPC_MAX_DIMS dimensions, each at least 1, at
 * most MAX_NUMEL elements. */
int mpc__check_shape(const mpc__ectx_t *e, const mpc_shape_t *s, const char *what) {
  if (s->ndim < 1 || s->ndim > MPC_MAX_DIMS)
    return mpc__efail(e, TANDEM_ESHAPE, "%s has %u dimensions (want 1 to %d)", what, s->ndim,
                 MPC_MAX_DIMS);
  for (unsigned d = 0; d < s->ndim; d++)
    if (s->dim[d] == 0)
      return mpc__efail(e, TANDEM_ESHAPE, "%s %s has a zero dimension", what, mpc__sstr(s).s);
  size_t n = mpc_shape_numel(s);
  if (n == 0 || (uint64_t)n > MAX_NUMEL)
    return mpc__efail(e, TANDEM_ESHAPE, "%s %s has more than 2^40 elements", what, mpc__sstr(s).s);
  return 0;
}

/* ---- shape inference ----------------------------------------------------- */

/* How many inputs an operator takes: req mandatory ones, then opt optional. */
static void arity(mpc_op_t op, int *req, int *opt) {
  *opt = 0;
  switch (op) {
  case MPC_OP_INPUT:
  case MPC_OP_PARAM:
  case MPC_OP_CONST:
    *req = 0;
    break;
  case MPC_OP_MATMUL:
  case MPC_OP_ADD:
  case MPC_OP_SUB:
  case MPC_OP_MUL:
  case MPC_OP_CONCAT:
  case MPC_OP_LINMAP:
    *req = 2;
    break;
  case MPC_OP_SELECT:
    *req = 1;
    *opt = 1;
    break;
  case MPC_OP_GEMM:
  case MPC_OP_CONV:
    *req = 2;
    *opt = 1;
    break;
  case MPC_OP_LNORM:
    *req = 1;
    *opt = 1;
    break;
  default:
    *req = 1;
    break;
  }
}

/* The operator is known and its input slots refer to earlier nodes (which is
 * what keeps a graph topologically ordered and acyclic); unused slots are -1,
 * so that a half-filled node (say a zeroed struct whose in[] are all node 0)
 * is caught here rather than silently read. */
int mpc__check_inputs(const mpc_node_t *nd, size_t idx, const mpc__ectx_t *e) {
  if ((unsigned)nd->op > (unsigned)MPC_OP_LAST)
    return mpc__efail(e, TANDEM_EINVAL, "unknown operator %d", (int)nd->op);
  int req, opt;
  arity(nd->op, &req, &opt);
  for (int k = 0; k < 3; k++) {
    int v = nd->in[k];
    if (k >= req + opt) {
      if (v != -1)
        return mpc__efail(e, TANDEM_EINVAL,
                          "takes %d input%s but in[%d] is %d (want -1)",
                          req + opt, req + opt == 1 ? "" : "s", k, v);
      continue;
    }
    if (v == -1 && k >= req)
      continue;
    if (v < 0 || (size_t)v >= idx)
      return mpc__efail(e, TANDEM_EINVAL,
                   "input %d refers to node %d, which is not an earlier node (nodes must be "
                   "appended in topological order; this is node %zu)",
                   k, v, idx);
  }
  return 0;
}

/* 1 if b broadcasts to a without enlarging it (numpy rules, b aligned to the
 * right: each of b's dimensions equals a's or is 1). */
static int broadcasts(const mpc_shape_t *b, const mpc_shape_t *a) {
  if (b->ndim > a->ndim)
    return 0;
  for (unsigned i = 0; i < b->ndim; i++) {
    size_t bd = b->dim[b->ndim - 1 - i], ad = a->dim[a->ndim - 1 - i];
    if (bd != ad && bd != 1)
      return 0;
  }
  return 1;
}

/* Output length of one spatial axis of a convolution or pooling window, or 0
 * when the (dilated) window is longer than the padded input. Arguments are
 * bounded (dimensions by MAX_NUMEL, the rest by MAX_WINDOW), so nothing
 * overflows. */
static size_t axis_out(size_t in, size_t p0, size_t p1, size_t k, size_t s, size_t d) {
  size_t ext = (k - 1) * d + 1, padded = in + p0 + p1;
  if (ext > padded)
    return 0;
  return (padded - ext) / s + 1;
}

/* 1 if the window of output position o along one axis has a tap inside the
 * input rather than in the padding. */
static int window_hits(size_t o, size_t in, size_t p0, size_t k, size_t s, size_t d) {
  long long st = (long long)(o * s) - (long long)p0;
  if (st >= 0)
    return st < (long long)in;
  long long i0 = (-st + (long long)d - 1) / (long long)d; /* first tap at >= 0 */
  return i0 < (long long)k && st + i0 * (long long)d < (long long)in;
}

/* 1 if no window along the axis lies entirely in the padding (where a max is
 * undefined and an average without the padding divides by zero). Only windows
 * that start before the input or after its end can miss it, and there are at
 * most p0/s + p1/s + 2 of them, so this is cheap. */
static int axis_covered(size_t in, size_t p0, size_t k, size_t s, size_t d, size_t out) {
  size_t lead = (p0 + s - 1) / s;       /* windows o with o*s < p0 start in the padding */
  size_t tail = (in + p0 + s - 1) / s;  /* windows from here on start after the input */
  for (size_t o = 0; o < out && o < lead; o++)
    if (!window_hits(o, in, p0, k, s, d))
      return 0;
  for (size_t o = tail > lead ? tail : lead; o < out; o++)
    if (!window_hits(o, in, p0, k, s, d))
      return 0;
  return 1;
}

/* Window attributes shared by Conv and the pools: all bounded, strides and
 * dilations of 0 normalised to 1 (the ONNX default). */
static int check_window(const mpc__ectx_t *e, mpc_attr_t *at) {
  size_t v[10] = {at->kh,         at->kw,         at->pads[0],     at->pads[1],
                  at->pads[2],    at->pads[3],    at->strides[0],  at->strides[1],
                  at->dilations[0], at->dilations[1]};
  for (int i = 0; i < 10; i++)
    if (v[i] > MAX_WINDOW)
      return mpc__efail(e, TANDEM_EINVAL,
                   "kernel, padding, stride or dilation %zu exceeds the limit of %zu", v[i],
                   MAX_WINDOW);
  for (int i = 0; i < 2; i++) {
    if (at->strides[i] == 0)
      at->strides[i] = 1;
    if (at->dilations[i] == 0)
      at->dilations[i] = 1;
  }
  return 0;
}


/* The output height and width of a window (a kernel or a pool's) over the
 * NCHW input a with attr's pads, strides and dilations, checked: else one
 * error naming the window (`what`) and the padded input. */
static int window_out(const mpc__ectx_t *e, const mpc_shape_t *a, mpc_attr_t *attr,
                      const char *what, size_t *oh, size_t *ow) {
  int rc = check_window(e, attr);
  if (rc != 0)
    return rc;
  *oh = axis_out(a->dim[2], attr->pads[0], attr->pads[2], attr->kh, attr->strides[0],
                 attr->dilations[0]);
  *ow = axis_out(a->dim[3], attr->pads[1], attr->pads[3], attr->kw, attr->strides[1],
                 attr->dilations[1]);
  if (*oh == 0 || *ow == 0)
    return mpc__efail(e, TANDEM_ESHAPE,
                 "%s %zux%zu (dilated %zux%zu) is larger than the padded input %zux%zu", what,
                 attr->kh, attr->kw, (attr->kh - 1) * attr->dilations[0] + 1,
                 (attr->kw - 1) * attr->dilations[1] + 1,
                 a->dim[2] + attr->pads[0] + attr->pads[2],
                 a->dim[3] + attr->pads[1] + attr->pads[3]);
  return 0;
}

/* Conv: NCHW input a, weights b [M, C, kh, kw], optional bias c [M]. */
static int infer_conv(const mpc_shape_t *a, const mpc_shape_t *b, const mpc_shape_t *c,
                      mpc_shape_t *out, mpc_attr_t *attr, const mpc__ectx_t *e) {
  int rc;
  if (a->ndim != 4 || b->ndim != 4)
    return mpc__efail(e, TANDEM_ESHAPE, "needs a 4-D NCHW input and 4-D weights, got %s and %s",
                 mpc__sstr(a).s, mpc__sstr(b).s);
  if (a->dim[1] != b->dim[1])
    return mpc__efail(e, TANDEM_ESHAPE,
                 "input channels differ: %zu vs %zu (in0 %s, weights %s; grouped "
                 "convolution is not supported)",
                 a->dim[1], b->dim[1], mpc__sstr(a).s, mpc__sstr(b).s);
  /* The kernel size comes from the weights; a kernel_shape attribute, when
   * given, must agree with them. */
  if ((attr->kh != 0 && attr->kh != b->dim[2]) || (attr->kw != 0 && attr->kw != b->dim[3]))
    return mpc__efail(e, TANDEM_ESHAPE, "kernel attribute %zux%zu differs from weights %s",
                 attr->kh, attr->kw, mpc__sstr(b).s);
  attr->kh = b->dim[2];
  attr->kw = b->dim[3];
  size_t oh, ow;
  if ((rc = window_out(e, a, attr, "kernel", &oh, &ow)) != 0)
    return rc;
  if (c != NULL && (c->ndim != 1 || c->dim[0] != b->dim[0]))
    return mpc__efail(e, TANDEM_ESHAPE, "bias must be [%zu] (one per output channel), got %s",
                 b->dim[0], mpc__sstr(c).s);
  out->ndim = 4;
  out->dim[0] = a->dim[0];
  out->dim[1] = b->dim[0];
  out->dim[2] = oh;
  out->dim[3] = ow;
  return 0;
}

/* MatMul with batch dimensions: a [.., M, K] times b [.., K, N] (b of rank
 * 3 or more), the leading dimensions broadcast both ways (numpy). */
static int infer_bmm(const mpc_shape_t *a, const mpc_shape_t *b, mpc_shape_t *out,
                     const mpc__ectx_t *e) {
  unsigned r = a->ndim > b->ndim ? a->ndim : b->ndim;
  size_t k = a->dim[a->ndim - 1];
  if (k != b->dim[b->ndim - 2])
    return mpc__efail(e, TANDEM_ESHAPE, "inner dimensions differ: %zu vs %zu (in0 %s, in1 %s)", k,
                 b->dim[b->ndim - 2], mpc__sstr(a).s, mpc__sstr(b).s);
  out->ndim = r;
  for (unsigned i = 2; i < r; i++) {
    size_t ad = i < a->ndim ? a->dim[a->ndim - 1 - i] : 1;
    size_t bd = i < b->ndim ? b->dim[b->ndim - 1 - i] : 1;
    if (ad != bd && ad != 1 && bd != 1)
      return mpc__efail(e, TANDEM_ESHAPE, "batch dimensions of %s and %s do not broadcast",
                   mpc__sstr(a).s, mpc__sstr(b).s);
    out->dim[r - 1 - i] = ad > bd ? ad : bd;
  }
  out->dim[r - 2] = a->dim[a->ndim - 2];
  out->dim[r - 1] = b->dim[b->ndim - 1];
  return 0;
}

/* MaxPool and AveragePool over an NCHW input a. */
static int infer_pool(mpc_op_t op, const mpc_shape_t *a, mpc_shape_t *out, mpc_attr_t *attr,
                      const mpc__ectx_t *e) {
  int rc;
  if (a->ndim != 4)
    return mpc__efail(e, TANDEM_ESHAPE, "needs a 4-D NCHW input, got %s", mpc__sstr(a).s);
  if (attr->kh == 0 || attr->kw == 0)
    return mpc__efail(e, TANDEM_EINVAL, "kernel %zux%zu is empty", attr->kh, attr->kw);
  size_t oh, ow;
  if ((rc = window_out(e, a, attr, "window", &oh, &ow)) != 0)
    return rc;
  /* A window entirely in the padding has no defined max, nor an average
   * that leaves the padding out. */
  if ((op == MPC_OP_MAXPOOL || !attr->count_include_pad) &&
      (!axis_covered(a->dim[2], attr->pads[0], attr->kh, attr->strides[0],
                     attr->dilations[0], oh) ||
       !axis_covered(a->dim[3], attr->pads[1], attr->kw, attr->strides[1],
                     attr->dilations[1], ow)))
    return mpc__efail(
        e, TANDEM_ESHAPE,
        "a pooling window lies entirely in the padding (pads %zu %zu "
        "%zu %zu, window %zux%zu)",
        attr->pads[0], attr->pads[1], attr->pads[2], attr->pads[3], attr->kh,
        attr->kw);
  out->ndim = 4;
  out->dim[0] = a->dim[0];
  out->dim[1] = a->dim[1];
  out->dim[2] = oh;
  out->dim[3] = ow;
  return 0;
}

/* Concat: equal ranks and dimensions but on the axis, which adds up. */
static int infer_concat(const mpc_shape_t *a, const mpc_shape_t *b, mpc_shape_t *out,
                        const mpc_attr_t *attr, const mpc__ectx_t *e) {
  if (attr->axis < 0 || (unsigned)attr->axis >= a->ndim)
    return mpc__efail(e, TANDEM_EINVAL, "axis %d is outside [0, %u)", attr->axis, a->ndim);
  int same = a->ndim == b->ndim;
  for (unsigned d = 0; same && d < a->ndim; d++)
    same = d == (unsigned)attr->axis || a->dim[d] == b->dim[d];
  if (!same)
    return mpc__efail(e, TANDEM_ESHAPE, "cannot join %s and %s along axis %d",
                      mpc__sstr(a).s, mpc__sstr(b).s, attr->axis);
  *out = *a;
  out->dim[attr->axis] += b->dim[attr->axis];
  return 0;
}

/* Select: the node's shape, of the input's rank, with bounded coefficients
 * (so that start + o * step never overflows) and a table as long as its axis. */
static int infer_select(const mpc_node_t *nd, const mpc_shape_t *a, const mpc_shape_t *b,
                        mpc_shape_t *out, const mpc_attr_t *attr, const mpc__ectx_t *e) {
  int rc = mpc__check_shape(e, &nd->shape, "target shape");
  if (rc != 0)
    return rc;
  if (nd->shape.ndim != a->ndim)
    return mpc__efail(e, TANDEM_ESHAPE, "target shape %s and input %s differ in rank",
                 mpc__sstr(&nd->shape).s, mpc__sstr(a).s);
  for (unsigned d = 0; d < a->ndim; d++) {
    int64_t st = attr->sel_start[d], sp = attr->sel_step[d];
    if (attr->sel_div[d] < 1 || attr->sel_div[d] > MAX_WINDOW || st < -(int64_t)MAX_NUMEL ||
        st > (int64_t)MAX_NUMEL || sp < -(int64_t)MAX_WINDOW || sp > (int64_t)MAX_WINDOW)
      return mpc__efail(e, TANDEM_EINVAL, "axis %u: start, step or divisor out of range", d);
  }
  if (b != NULL) {
    if (attr->axis < 0 || (unsigned)attr->axis >= a->ndim)
      return mpc__efail(e, TANDEM_EINVAL, "table axis %d is outside [0, %u)", attr->axis, a->ndim);
    if (mpc_shape_numel(b) != nd->shape.dim[attr->axis])
      return mpc__efail(e, TANDEM_ESHAPE, "the index table has %zu entries for an axis of %zu",
                   mpc_shape_numel(b), nd->shape.dim[attr->axis]);
  }
  *out = nd->shape;
  if (attr->sel_batch) {
    if (attr->sel_start[0] != 0 || attr->sel_step[0] != 1 || attr->sel_div[0] != 1 ||
        (b != NULL && attr->axis == 0))
      return mpc__efail(e, TANDEM_EINVAL, "sel_batch needs the identity on axis 0");
    out->dim[0] = a->dim[0];
  }
  return 0;
}

long mpc__select_src(const mpc_attr_t *at, const double *table, const mpc_shape_t *is,
                     const mpc_shape_t *os, size_t i) {
  size_t src = 0, stride = 1;
  for (int d = (int)os->ndim - 1; d >= 0; d--) {
    size_t o = i % os->dim[d];
    i /= os->dim[d];
    int64_t c;
    if (table != NULL && d == at->axis)
      c = (int64_t)table[o];
    else {
      /* |o * step| < 2^56 (dimensions below 2^40, steps below 2^16). */
      int64_t num = (int64_t)o * at->sel_step[d], q = num / (int64_t)at->sel_div[d];
      if (num % (int64_t)at->sel_div[d] != 0 && num < 0)
        q--; /* floor, not truncation */
      c = at->sel_start[d] + q;
    }
    if (c < 0 || c >= (int64_t)is->dim[d])
      return -1;
    src += (size_t)c * stride;
    stride *= is->dim[d];
  }
  return (long)src;
}

/* MatMul: [.., M, K] x [K, N] -> [.., M, N], or with batch dimensions (infer_bmm). */
static int infer_matmul(const mpc_shape_t *a, const mpc_shape_t *b, mpc_shape_t *out,
                        const mpc__ectx_t *e) {
  if (a->ndim >= 2 && b->ndim > 2)
    return infer_bmm(a, b, out, e);
  if (a->ndim < 2 || b->ndim != 2)
    return mpc__efail(e, TANDEM_ESHAPE, "needs operands of rank 2 or more, got %s and %s",
                 mpc__sstr(a).s, mpc__sstr(b).s);
  size_t k = a->dim[a->ndim - 1];
  if (k != b->dim[0])
    return mpc__efail(e, TANDEM_ESHAPE, "inner dimensions differ: %zu vs %zu (in0 %s, in1 %s)", k,
                 b->dim[0], mpc__sstr(a).s, mpc__sstr(b).s);
  *out = *a;
  out->dim[a->ndim - 1] = b->dim[1];
  return 0;
}

/* Gemm: 2-D operands, either transposed, and a bias that broadcasts. */
static int infer_gemm(const mpc_shape_t *a, const mpc_shape_t *b, const mpc_shape_t *c,
                      mpc_shape_t *out, const mpc_attr_t *attr, const mpc__ectx_t *e) {
  if (a->ndim != 2 || b->ndim != 2)
    return mpc__efail(e, TANDEM_ESHAPE, "needs 2-D operands, got %s and %s",
                      mpc__sstr(a).s, mpc__sstr(b).s);
  if (!isfinite(attr->alpha) || !isfinite(attr->beta))
    return mpc__efail(e, TANDEM_EINVAL, "alpha and beta must be finite");
  size_t m = attr->trans_a ? a->dim[1] : a->dim[0];
  size_t k = attr->trans_a ? a->dim[0] : a->dim[1];
  size_t k2 = attr->trans_b ? b->dim[1] : b->dim[0];
  size_t n = attr->trans_b ? b->dim[0] : b->dim[1];
  if (k != k2)
    return mpc__efail(e, TANDEM_ESHAPE, "inner dimensions differ: %zu vs %zu (in0 %s%s, in1 %s%s)",
                 k, k2, mpc__sstr(a).s, attr->trans_a ? " transposed" : "", mpc__sstr(b).s,
                 attr->trans_b ? " transposed" : "");
  out->ndim = 2;
  out->dim[0] = m;
  out->dim[1] = n;
  if (c != NULL && !broadcasts(c, out))
    return mpc__efail(e, TANDEM_ESHAPE,
                      "bias %s does not broadcast to the output %s",
                      mpc__sstr(c).s, mpc__sstr(out).s);
  return 0;
}

/* Reshape to the node's declared shape; with follow_batch its first
 * dimension follows the input's element count, as plan.c lowers it. */
static int infer_reshape(const mpc_node_t *nd, const mpc_shape_t *a, int follow_batch,
                         mpc_shape_t *out, const mpc__ectx_t *e) {
  int rc = mpc__check_shape(e, &nd->shape, "target shape");
  if (rc != 0)
    return rc;
  *out = nd->shape;
  size_t nin = mpc_shape_numel(a);
  if (follow_batch && mpc_shape_numel(out) != nin) {
    size_t rest = 1;
    for (unsigned d = 1; d < out->ndim; d++)
      rest *= out->dim[d];
    if (rest > 0 && nin % rest == 0)
      out->dim[0] = nin / rest;
  }
  if (mpc_shape_numel(out) != nin)
    return mpc__efail(e, TANDEM_ESHAPE,
                      "reshape of %s to %s changes the element count",
                      mpc__sstr(a).s, mpc__sstr(&nd->shape).s);
  return 0;
}

/* Transpose: perm must permute the input's axes. */
static int infer_transpose(const mpc_shape_t *a, mpc_shape_t *out, const mpc_attr_t *attr,
                           const mpc__ectx_t *e) {
  unsigned seen = 0;
  for (unsigned d = 0; d < a->ndim; d++) {
    unsigned p = attr->perm[d];
    if (p >= a->ndim || (seen >> p) & 1u)
      return mpc__efail(e, TANDEM_EINVAL, "perm is not a permutation of the %u axes of %s", a->ndim,
                   mpc__sstr(a).s);
    seen |= 1u << p;
  }
  out->ndim = a->ndim;
  for (unsigned d = 0; d < a->ndim; d++)
    out->dim[d] = a->dim[attr->perm[d]];
  return 0;
}

/* LinearMap: a 2-D matrix whose columns match the mapped axis. */
static int infer_linmap(const mpc_shape_t *a, const mpc_shape_t *b, mpc_shape_t *out,
                        const mpc_attr_t *attr, const mpc__ectx_t *e) {
  if (attr->axis < 0 || (unsigned)attr->axis >= a->ndim)
    return mpc__efail(e, TANDEM_EINVAL, "axis %d is outside [0, %u)", attr->axis, a->ndim);
  if (b->ndim != 2 || b->dim[1] != a->dim[attr->axis])
    return mpc__efail(e, TANDEM_ESHAPE, "the matrix %s does not map axis %d of %s", mpc__sstr(b).s,
                 attr->axis, mpc__sstr(a).s);
  *out = *a;
  out->dim[attr->axis] = b->dim[0];
  return 0;
}

/* The output shape of node nd from the shapes of its inputs (in[k] NULL for
 * absent inputs), and its attributes with defaults filled in (*attr). With
 * follow_batch, a Reshape whose declared target has the wrong element count
 * lets its first dimension follow the input (the evaluator at another batch);
 * otherwise element counts must agree exactly. */
int mpc__infer(const mpc_node_t *nd, const mpc_shape_t *const in[3], int follow_batch,
                 mpc_shape_t *out, mpc_attr_t *attr, const mpc__ectx_t *e) {
  const mpc_shape_t *a = in[0], *b = in[1], *c = in[2];
  int rc = 0;
  *attr = nd->attr;
  memset(out, 0, sizeof *out);
  if (mpc_op_is_smooth(nd->op)) {
    *out = *a; /* elementwise */
    return mpc__check_shape(e, out, "output shape");
  }
  switch (nd->op) {
  case MPC_OP_INPUT:
  case MPC_OP_PARAM:
  case MPC_OP_CONST:
    if (nd->op == MPC_OP_CONST && nd->cdata == NULL)
      return mpc__efail(e, TANDEM_EINVAL, "a constant needs data (cdata is NULL)");
    rc = mpc__check_shape(e, &nd->shape, "shape");
    if (rc != 0)
      return rc;
    *out = nd->shape;
    break;
  case MPC_OP_MATMUL:
    rc = infer_matmul(a, b, out, e);
    break;
  case MPC_OP_GEMM:
    rc = infer_gemm(a, b, c, out, attr, e);
    break;
  case MPC_OP_CONV:
    rc = infer_conv(a, b, c, out, attr, e);
    break;
  case MPC_OP_ADD:
  case MPC_OP_SUB:
  case MPC_OP_MUL:
    if (!broadcasts(b, a))
      return mpc__efail(e, TANDEM_ESHAPE,
                   "in1 %s does not broadcast to in0 %s (in1 may only be broadcast, never in0)",
                   mpc__sstr(b).s, mpc__sstr(a).s);
    *out = *a;
    break;
  case MPC_OP_MULC:
    if (!isfinite(attr->scalar))
      return mpc__efail(e, TANDEM_EINVAL, "the scalar must be finite");
    *out = *a;
    break;
  case MPC_OP_OUTPUT:
    if (nd->op == MPC_OP_OUTPUT && attr->post != MPC_POST_NONE &&
        ((attr->post & ~MPC_POST_FLAT) < MPC_POST_SOFTMAX ||
         (attr->post & ~MPC_POST_FLAT) > MPC_POST_LOGSOFTMAX || attr->post > 7 || attr->axis < 0 ||
         (unsigned)attr->axis >= a->ndim))
      return mpc__efail(e, TANDEM_EINVAL, "bad output function %d over axis %d of %s", attr->post,
                   attr->axis, mpc__sstr(a).s);
    *out = *a;
    break;
  case MPC_OP_RELU:
  case MPC_OP_SOFTMAX:
    *out = *a;
    break;
  case MPC_OP_LNORM:
    if (b != NULL && mpc_shape_numel(b) != 1)
      return mpc__efail(e, TANDEM_ESHAPE, "epsilon must be one element");
    *out = *a;
    break;
  case MPC_OP_MAXPOOL:
  case MPC_OP_AVGPOOL:
    rc = infer_pool(nd->op, a, out, attr, e);
    break;
  case MPC_OP_RESHAPE:
    rc = infer_reshape(nd, a, follow_batch, out, e);
    break;
  case MPC_OP_TRANSPOSE:
    rc = infer_transpose(a, out, attr, e);
    break;
  case MPC_OP_CONCAT:
    rc = infer_concat(a, b, out, attr, e);
    break;
  case MPC_OP_SELECT:
    rc = infer_select(nd, a, b, out, attr, e);
    break;
  case MPC_OP_LINMAP:
    rc = infer_linmap(a, b, out, attr, e);
    break;

  default:
    return mpc__efail(e, TANDEM_EINVAL, "unknown operator %d", (int)nd->op);
  }
  if (rc != 0)
    return rc;
  return mpc__check_shape(e, out, "output shape");
}

/* ---- graphs -------------------------------------------------------------- */

void mpc_graph_init(mpc_graph_t *g) {
  memset(g, 0, sizeof *g);
  g->frac_bits = KERN_FIX_FRAC_DEFAULT;
  g->bound_bits = KERN_FIX_BOUND_BITS;
  g->input_min = -HUGE_VAL;
}

void mpc_graph_close(mpc_graph_t *g) {
  if (g == NULL)
    return;
  free(g->nodes);
  free(g->cstore);
  while (g->cblocks != NULL) {
    void *next = *(void **)g->cblocks;
    free(g->cblocks);
    g->cblocks = next;
  }
  free(g->mag_log2);
  mpc_graph_init(g); /* a closed graph is an empty one: closing twice is harmless */
}

/* Copies a name of at most sizeof dst - 1 bytes; src need not be terminated
 * within that length (node names arrive in fixed arrays). */
static void copy_name(char dst[64], const char *src) {
  size_t n = src != NULL ? strnlen(src, 63) : 0;
  memcpy(dst, src != NULL ? src : "", n);
  dst[n] = '\0';
}

int mpc_graph_add(mpc_graph_t *g, const mpc_node_t *node, char *err, size_t errlen) {
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (g == NULL || node == NULL || (g->nnodes > 0 && g->nodes == NULL)) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "mpc_graph_add: no graph or no node");
    return TANDEM_EINVAL;
  }
  size_t idx = g->nnodes;
  mpc_node_t nd = *node;
  copy_name(nd.name, node->name);
  nd.batched = nd.op == MPC_OP_INPUT && node->batched != 0;
  nd.ids = nd.op == MPC_OP_INPUT && node->ids != 0;
  if (nd.name[0] == '\0')
    snprintf(nd.name, sizeof nd.name, "%s_%zu", mpc_op_name(nd.op), idx);
  mpc__ectx_t e = {err, errlen, nd.name, nd.op};
  if (idx >= (size_t)INT_MAX)
    return mpc__efail(&e, TANDEM_EINVAL, "the graph is full");

  int rc = mpc__check_inputs(&nd, idx, &e);
  if (rc != 0)
    return rc;
  /* Token ids: [..., V], the ids' axes then the vocabulary (the one-hot). */
  if (nd.ids && (nd.shape.ndim < 2 || nd.shape.dim[nd.shape.ndim - 1] == 0 ||
                 nd.shape.dim[nd.shape.ndim - 1] > MPC_IDS_VOCAB_MAX))
    return mpc__efail(&e, TANDEM_EINVAL, "a token-id input needs at least one axis of ids and a "
                 "vocabulary of 1 to %u", (unsigned)MPC_IDS_VOCAB_MAX);
  const mpc_shape_t *in[3];
  for (int k = 0; k < 3; k++)
    in[k] = nd.in[k] >= 0 ? &g->nodes[nd.in[k]].shape : NULL;
  mpc_shape_t shape;
  mpc_attr_t attr;
  rc = mpc__infer(&nd, in, 0, &shape, &attr, &e);
  if (rc != 0)
    return rc;
  if (nd.op == MPC_OP_SELECT && nd.in[1] >= 0) {
    const mpc_node_t *t = &g->nodes[nd.in[1]];
    if (t->op != MPC_OP_CONST)
      return mpc__efail(&e, TANDEM_EINVAL, "the index table must be a constant");
    size_t nt = mpc_shape_numel(&t->shape), lim = in[0]->dim[attr.axis];
    for (size_t j = 0; j < nt; j++)
      if (!(t->cdata[j] >= -1 && t->cdata[j] < (double)lim && t->cdata[j] == floor(t->cdata[j])))
        return mpc__efail(&e, TANDEM_EINVAL,
                     "index table entry %zu is neither an index below %zu nor -1 (a zero)", j,
                     lim);
  }
  if (nd.op == MPC_OP_LINMAP && g->nodes[nd.in[1]].op != MPC_OP_CONST)
    return mpc__efail(&e, TANDEM_EINVAL, "the matrix must be a constant");
  nd.shape = shape;
  nd.attr = attr;

  if (g->nnodes == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 16;
    mpc_node_t *nodes = realloc(g->nodes, cap * sizeof *nodes);
    if (nodes == NULL)
      return mpc__efail(&e, TANDEM_ENOMEM, "out of memory");
    g->nodes = nodes;
    g->cap = cap;
  }
  g->nodes[idx] = nd;
  g->nnodes++;
  return (int)idx;
}

/* INPUT and PARAM nodes differ only in their op. */
static int add_source(mpc_graph_t *g, mpc_op_t op, const char *name, unsigned ndim,
                      const size_t *dim) {
  if (g == NULL || ndim > MPC_MAX_DIMS || (ndim > 0 && dim == NULL))
    return TANDEM_EINVAL;
  mpc_node_t nd;
  memset(&nd, 0, sizeof nd);
  nd.op = op;
  nd.in[0] = nd.in[1] = nd.in[2] = -1;
  nd.shape.ndim = ndim;
  for (unsigned d = 0; d < ndim; d++)
    nd.shape.dim[d] = dim[d];
  copy_name(nd.name, name);
  nd.batched = op == MPC_OP_INPUT;
  return mpc_graph_add(g, &nd, NULL, 0);
}

int mpc_graph_input(mpc_graph_t *g, const char *name, unsigned ndim, const size_t *dim) {
  return add_source(g, MPC_OP_INPUT, name, ndim, dim);
}

int mpc_graph_param(mpc_graph_t *g, const char *name, unsigned ndim, const size_t *dim) {
  return add_source(g, MPC_OP_PARAM, name, ndim, dim);
}

/* attr NULL means the ONNX defaults: alpha = beta = 1, no transposes, no
 * padding, unit strides and dilations, scalar 1, and for Transpose the
 * reversal of in0's axes. Reshape through this builder flattens in0 to
 * [dim0, rest] (ONNX Flatten with axis 1); other targets need mpc_graph_add
 * with node->shape. Source nodes (Input, Param, Const) need a shape and are
 * refused here. */
int mpc_graph_op(mpc_graph_t *g, mpc_op_t op, int in0, int in1, int in2,
                 const mpc_attr_t *attr, const char *name) {
  if (g == NULL || op == MPC_OP_INPUT || op == MPC_OP_PARAM || op == MPC_OP_CONST)
    return TANDEM_EINVAL;
  mpc_node_t nd;
  memset(&nd, 0, sizeof nd);
  nd.op = op;
  nd.in[0] = in0;
  nd.in[1] = in1;
  nd.in[2] = in2;
  const mpc_shape_t *s0 =
      in0 >= 0 && (size_t)in0 < g->nnodes ? &g->nodes[in0].shape : NULL;
  if (attr != NULL) {
    nd.attr = *attr;
  } else {
    nd.attr.alpha = nd.attr.beta = nd.attr.scalar = 1.0;
    if (op == MPC_OP_TRANSPOSE && s0 != NULL)
      for (unsigned d = 0; d < s0->ndim; d++)
        nd.attr.perm[d] = s0->ndim - 1 - d;
  }
  if (op == MPC_OP_RESHAPE && s0 != NULL && s0->ndim >= 1) {
    nd.shape.ndim = 2;
    nd.shape.dim[0] = s0->dim[0];
    nd.shape.dim[1] = mpc_shape_numel(s0) / s0->dim[0];
  }
  copy_name(nd.name, name);
  return mpc_graph_add(g, &nd, NULL, 0);
}

/* Each block: the next block's pointer, then the values. */
int mpc_graph_const(mpc_graph_t *g, const char *name, unsigned ndim, const size_t *dim,
                    const double *data) {
  if (g == NULL || data == NULL || ndim < 1 || ndim > MPC_MAX_DIMS || dim == NULL)
    return TANDEM_EINVAL;
  mpc_node_t nd;
  memset(&nd, 0, sizeof nd);
  nd.op = MPC_OP_CONST;
  nd.in[0] = nd.in[1] = nd.in[2] = -1;
  nd.shape.ndim = ndim;
  for (unsigned d = 0; d < ndim; d++)
    nd.shape.dim[d] = dim[d];
  size_t n = mpc_shape_numel(&nd.shape);
  if (n == 0 || (uint64_t)n > MAX_NUMEL)
    return TANDEM_ESHAPE;
  double *blk = malloc(sizeof(double) * (n + 1));
  if (blk == NULL)
    return TANDEM_ENOMEM;
  memcpy(blk + 1, data, n * sizeof *blk);
  nd.cdata = blk + 1;
  copy_name(nd.name, name);
  int r = mpc_graph_add(g, &nd, NULL, 0);
  if (r < 0) {
    free(blk);
    return r;
  }
  *(void **)blk = g->cblocks;
  g->cblocks = blk;
  return r;
}

/* ---- plaintext tensors and weights -------------------------------------- */

/* A scalar (ndim 0) holds one element; an empty tensor (a zero dimension) is
 * refused, like every shape a graph can hold. */
int mpc_ftensor_init(mpc_ftensor_t *t, const mpc_shape_t *shape) {
  if (t == NULL)
    return TANDEM_EINVAL;
  memset(t, 0, sizeof *t);
  size_t n = mpc_shape_numel(shape);
  if (n == 0 || (uint64_t)n > MAX_NUMEL)
    return TANDEM_EINVAL;
  t->data = calloc(n, sizeof *t->data);
  if (t->data == NULL)
    return TANDEM_ENOMEM;
  t->shape = *shape;
  return 0;
}

/* Activations and weights are the secrets this project protects; the client's
 * and the owner's plaintext copies are wiped before they are freed. */
void mpc_ftensor_close(mpc_ftensor_t *t) {
  if (t == NULL)
    return;
  if (t->data != NULL) {
    sodium_memzero(t->data, mpc_shape_numel(&t->shape) * sizeof *t->data);
    free(t->data);
  }
  memset(t, 0, sizeof *t);
}

/* One entry per node, so that a PARAM is found by its node index. The array's
 * length is g->nnodes at this call: weights must be made once the graph is
 * complete (mpc_weights_t does not record its length, so the evaluator and
 * mpc_weights_close read it from the graph). */
int mpc_weights_init(mpc_weights_t *w, const mpc_graph_t *g) {
  if (w == NULL)
    return TANDEM_EINVAL;
  memset(w, 0, sizeof *w);
  if (g == NULL || (g->nnodes > 0 && g->nodes == NULL))
    return TANDEM_EINVAL;
  w->param = calloc(g->nnodes ? g->nnodes : 1, sizeof *w->param);
  if (w->param == NULL)
    return TANDEM_ENOMEM;
  w->graph = g;
  for (size_t i = 0; i < g->nnodes; i++) {
    if (g->nodes[i].op != MPC_OP_PARAM)
      continue;
    int rc = mpc_ftensor_init(&w->param[i], &g->nodes[i].shape);
    if (rc != 0) {
      mpc_weights_close(w);
      return rc;
    }
  }
  return 0;
}

void mpc_weights_close(mpc_weights_t *w) {
  if (w == NULL)
    return;
  if (w->param != NULL && w->graph != NULL)
    for (size_t i = 0; i < w->graph->nnodes; i++)
      mpc_ftensor_close(&w->param[i]);
  free(w->param);
  memset(w, 0, sizeof *w);
}
