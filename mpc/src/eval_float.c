/* eval_float.c - the plaintext floating-point evaluator of a graph
 * (mpc_eval_float, mpc_graph_batch): the IEEE-double reference that every
 * private result is compared with, and what `tandem run --plaintext`
 * prints. It runs on the shapes of the actual inputs, inferred by graph.c's
 * mpc__infer, so a graph declared for one batch size evaluates at any
 * other. Nothing here is secret-dependent or talks to a peer.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "graph_int.h"

/* ---- the floating-point evaluator --------------------------------------- */

/* out[i] = sa * a[i] + sb * b[j(i)] over a's shape, with b broadcast to it
 * (aligned right, dimensions of 1 repeated). An odometer over a's coordinates
 * carries b's index along, so no division happens per element. out may be a. */
/* out = sa a + sb b, or a * b when sb is NAN (in1 broadcast to in0). */
static void ev_bcast(double sa, const double *a, const mpc_shape_t *as, double sb,
                     const double *b, const mpc_shape_t *bs, double *out) {
  int mul = isnan(sb);
  size_t st[MPC_MAX_DIMS], coord[MPC_MAX_DIMS] = {0};
  unsigned off = as->ndim - bs->ndim;
  size_t s = 1;
  for (int d = (int)as->ndim - 1; d >= 0; d--) {
    if ((unsigned)d < off) {
      st[d] = 0;
      continue;
    }
    size_t bd = bs->dim[(unsigned)d - off];
    st[d] = bd == 1 ? 0 : s;
    s *= bd;
  }
  size_t n = mpc_shape_numel(as), bi = 0;
  for (size_t i = 0; i < n; i++) {
    out[i] = mul ? a[i] * b[bi] : sa * a[i] + sb * b[bi];
    for (int d = (int)as->ndim - 1; d >= 0; d--) {
      coord[d]++;
      bi += st[d];
      if (coord[d] < as->dim[d])
        break;
      bi -= st[d] * coord[d];
      coord[d] = 0;
    }
  }
}

/* c[m][n] = sum_k opA(m,k) * opB(k,n), where element (m,k) of opA lives at
 * a[m*ams + k*aks] (strides express the transposes). The k-outer, n-inner
 * order streams through b and c rows when b is not transposed. */
static void ev_matmul(size_t m, size_t n, size_t k, const double *a, size_t ams, size_t aks,
                      const double *b, size_t bks, size_t bns, double *c) {
  memset(c, 0, m * n * sizeof *c);
  for (size_t i = 0; i < m; i++) {
    double *crow = c + i * n;
    for (size_t p = 0; p < k; p++) {
      double av = a[i * ams + p * aks];
      const double *bp = b + p * bks;
      for (size_t j = 0; j < n; j++)
        crow[j] += av * bp[j * bns];
    }
  }
}

size_t mpc__bmm_index(const mpc_shape_t *os, const mpc_shape_t *xs, size_t ob) {
  /* ob counts the output's matrices; its coordinates, last batch axis
   * fastest, map to xs's matrix with broadcast axes fixed at 0. */
  size_t idx = 0, stride = 1;
  for (unsigned i = 2; i < os->ndim; i++) {
    size_t od = os->dim[os->ndim - 1 - i];
    size_t c = ob % od;
    ob /= od;
    if (i < xs->ndim) {
      size_t xd = xs->dim[xs->ndim - 1 - i];
      idx += (xd == 1 ? 0 : c) * stride;
      stride *= xd;
    }
  }
  return idx;
}

/* MatMul with batch dimensions (infer_bmm): one product per output matrix. */
static void ev_bmm(const double *a, const mpc_shape_t *as, const double *b,
                   const mpc_shape_t *bs, const mpc_shape_t *ys, double *y) {
  size_t m = ys->dim[ys->ndim - 2], n = ys->dim[ys->ndim - 1], k = as->dim[as->ndim - 1];
  size_t nb = mpc_shape_numel(ys) / (m * n);
  for (size_t t = 0; t < nb; t++)
    ev_matmul(m, n, k, a + mpc__bmm_index(ys, as, t) * m * k, k, 1,
              b + mpc__bmm_index(ys, bs, t) * k * n, n, 1, y + t * m * n);
}

/* Direct convolution. For each (batch, out channel, in channel, tap) the
 * whole output plane is updated, so the inner loop runs along a row. */
static void ev_conv(const mpc_attr_t *at, const double *x, const mpc_shape_t *xs,
                    const double *w, const mpc_shape_t *ws, const double *bias,
                    const mpc_shape_t *os, double *y) {
  size_t nb = xs->dim[0], ci = xs->dim[1], h = xs->dim[2], wd = xs->dim[3];
  size_t co = ws->dim[0], kh = ws->dim[2], kw = ws->dim[3];
  size_t oh = os->dim[2], ow = os->dim[3];
  size_t sh = at->strides[0], sw = at->strides[1], dh = at->dilations[0], dw = at->dilations[1];
  long long pt = (long long)at->pads[0], pl = (long long)at->pads[1];
  for (size_t b = 0; b < nb; b++)
    for (size_t m = 0; m < co; m++) {
      double *plane = y + (b * co + m) * oh * ow;
      double b0 = bias != NULL ? bias[m] : 0.0;
      for (size_t i = 0; i < oh * ow; i++)
        plane[i] = b0;
      for (size_t c = 0; c < ci; c++) {
        const double *xp = x + (b * ci + c) * h * wd;
        for (size_t ki = 0; ki < kh; ki++)
          for (size_t kj = 0; kj < kw; kj++) {
            double wv = w[((m * ci + c) * kh + ki) * kw + kj];
            for (size_t oy = 0; oy < oh; oy++) {
              long long iy = (long long)(oy * sh + ki * dh) - pt;
              if (iy < 0 || iy >= (long long)h)
                continue;
              for (size_t ox = 0; ox < ow; ox++) {
                long long ix = (long long)(ox * sw + kj * dw) - pl;
                if (ix >= 0 && ix < (long long)wd)
                  plane[oy * ow + ox] += wv * xp[(size_t)iy * wd + (size_t)ix];
              }
            }
          }
      }
    }
}

/* Max or average pooling; taps in the padding are skipped (a max over -inf
 * padding, an average whose divisor counts them or not). Shape inference has
 * ensured every window has at least one tap inside the input. */
static void ev_pool(int is_max, const mpc_attr_t *at, const double *x, const mpc_shape_t *xs,
                    const mpc_shape_t *os, double *y) {
  size_t planes = xs->dim[0] * xs->dim[1], h = xs->dim[2], wd = xs->dim[3];
  size_t oh = os->dim[2], ow = os->dim[3];
  long long pt = (long long)at->pads[0], pl = (long long)at->pads[1];
  for (size_t p = 0; p < planes; p++) {
    const double *xp = x + p * h * wd;
    for (size_t oy = 0; oy < oh; oy++)
      for (size_t ox = 0; ox < ow; ox++) {
        double acc = is_max ? -INFINITY : 0.0;
        size_t cnt = 0;
        for (size_t ki = 0; ki < at->kh; ki++) {
          long long iy = (long long)(oy * at->strides[0] + ki * at->dilations[0]) - pt;
          if (iy < 0 || iy >= (long long)h)
            continue;
          for (size_t kj = 0; kj < at->kw; kj++) {
            long long ix = (long long)(ox * at->strides[1] + kj * at->dilations[1]) - pl;
            if (ix < 0 || ix >= (long long)wd)
              continue;
            double v = xp[(size_t)iy * wd + (size_t)ix];
            if (is_max)
              acc = v > acc ? v : acc;
            else
              acc += v;
            cnt++;
          }
        }
        if (!is_max)
          acc /= (double)(at->count_include_pad ? at->kh * at->kw : cnt);
        y[(p * oh + oy) * ow + ox] = acc;
      }
  }
}

/* y = x with axes permuted: y's axis d is x's axis perm[d]. */
static void ev_transpose(const unsigned *perm, const double *x, const mpc_shape_t *xs,
                         const mpc_shape_t *ys, double *y) {
  size_t xst[MPC_MAX_DIMS], st[MPC_MAX_DIMS], coord[MPC_MAX_DIMS] = {0};
  size_t s = 1;
  for (int d = (int)xs->ndim - 1; d >= 0; d--) {
    xst[d] = s;
    s *= xs->dim[d];
  }
  for (unsigned d = 0; d < ys->ndim; d++)
    st[d] = xst[perm[d]];
  size_t n = mpc_shape_numel(ys), src = 0;
  for (size_t i = 0; i < n; i++) {
    y[i] = x[src];
    for (int d = (int)ys->ndim - 1; d >= 0; d--) {
      coord[d]++;
      src += st[d];
      if (coord[d] < ys->dim[d])
        break;
      src -= st[d] * coord[d];
      coord[d] = 0;
    }
  }
}

void mpc__output_post(const mpc_attr_t *at, mpc_ftensor_t *t) {
  int fn = at->post & ~MPC_POST_FLAT;
  if (fn == MPC_POST_NONE || at->axis < 0 || (unsigned)at->axis >= t->shape.ndim)
    return;
  size_t len = t->shape.dim[at->axis], inner = 1, n = mpc_shape_numel(&t->shape);
  for (unsigned d = (unsigned)at->axis + 1; d < t->shape.ndim; d++)
    inner *= t->shape.dim[d];
  if (at->post & MPC_POST_FLAT) {
    len *= inner; /* one group of every element from the axis on */
    inner = 1;
  }
  for (size_t g0 = 0; g0 < n; g0 += len * inner)
    for (size_t in = 0; in < inner; in++) {
      double *x = t->data + g0 + in, mx = -INFINITY, sum = 0;
      for (size_t j = 0; j < len; j++)
        mx = fmax(mx, x[j * inner]);
      for (size_t j = 0; j < len; j++)
        sum += exp(x[j * inner] - mx);
      for (size_t j = 0; j < len; j++)
        x[j * inner] = fn == MPC_POST_SOFTMAX ? exp(x[j * inner] - mx) / sum
                                              : x[j * inner] - mx - log(sum);
    }
}

/* Softmax along the last axis of x (shape xs) into y; in the magnitude
 * graph (bound.c) every output is at most 1. */
static void ev_softmax(int magnitude, const double *x, const mpc_shape_t *xs, double *y) {
  size_t N = mpc_shape_numel(xs), n = xs->ndim ? xs->dim[xs->ndim - 1] : 1;
  for (size_t r = 0; r < N / n; r++) {
    const double *xr = x + r * n;
    double *yr = y + r * n, mx = xr[0], sum = 0;
    for (size_t j = 1; j < n; j++)
      mx = xr[j] > mx ? xr[j] : mx;
    for (size_t j = 0; j < n; j++)
      sum += (yr[j] = magnitude ? 1 : exp(xr[j] - mx));
    for (size_t j = 0; j < n && !magnitude; j++)
      yr[j] /= sum;
  }
}

/* Layer normalization along the last axis of x into y; in the magnitude
 * graph every output is at most sqrt(n) (a normalized row's largest). */
static void ev_lnorm(int magnitude, const double *x, const mpc_shape_t *xs, double eps,
                     double *y) {
  size_t N = mpc_shape_numel(xs), n = xs->ndim ? xs->dim[xs->ndim - 1] : 1;
  for (size_t r = 0; r < N / n; r++) {
    const double *xr = x + r * n;
    double mean = 0, var = 0;
    for (size_t j = 0; j < n; j++)
      mean += xr[j];
    mean /= (double)n;
    for (size_t j = 0; j < n; j++)
      var += (xr[j] - mean) * (xr[j] - mean);
    var /= (double)n;
    for (size_t j = 0; j < n; j++)
      y[r * n + j] = magnitude ? sqrt((double)n) : (xr[j] - mean) / sqrt(var + eps);
  }
}

/* y = M x along axis ax of x (shape xs), M of shape ms [m x n]. */
static void ev_linmap(int ax, const double *x, const mpc_shape_t *xs, const double *M,
                      const mpc_shape_t *ms, double *y) {
  size_t outer = 1, inner = 1, m = ms->dim[0], n = ms->dim[1];
  for (int d = 0; d < ax; d++)
    outer *= xs->dim[d];
  for (unsigned d = (unsigned)ax + 1; d < xs->ndim; d++)
    inner *= xs->dim[d];
  for (size_t o = 0; o < outer; o++)
    for (size_t r = 0; r < m; r++)
      for (size_t t = 0; t < inner; t++) {
        double acc = 0;
        for (size_t i = 0; i < n; i++)
          acc += M[r * n + i] * x[(o * n + i) * inner + t];
        y[(o * m + r) * inner + t] = acc;
      }
}

/* Computes a non-source node into y (shape ys, attributes at as inferred). */
static void ev_node(const mpc_node_t *nd, const mpc_attr_t *at, const double *const v[3],
                    const mpc_shape_t *const s[3], const mpc_shape_t *ys, double *y) {
  size_t n = mpc_shape_numel(ys);
  if (mpc_op_is_smooth(nd->op)) {
    for (size_t i = 0; i < n; i++)
      y[i] = at->magnitude ? mpc__smooth_mag(mpc__smooth_node_fn(nd->op), v[0][i])
                           : mpc__smooth_float(nd->op, v[0][i]);
    return;
  }
  switch (nd->op) {
  case MPC_OP_MATMUL: {
    if (s[1]->ndim > 2) {
      ev_bmm(v[0], s[0], v[1], s[1], ys, y);
      break;
    }
    size_t k = s[1]->dim[0], cols = s[1]->dim[1];
    ev_matmul(mpc_shape_numel(s[0]) / k, cols, k, v[0], k, 1, v[1], cols, 1, y);
    break;
  }
  case MPC_OP_GEMM: {
    /* A is [M,K] or, transposed, [K,M]; B is [K,N] or [N,K]. Either way the
     * row stride of the stored matrix is its second dimension. */
    size_t a0 = s[0]->dim[0], a1 = s[0]->dim[1], b1 = s[1]->dim[1];
    size_t m = ys->dim[0], cols = ys->dim[1], k = at->trans_a ? a0 : a1;
    ev_matmul(m, cols, k, v[0], at->trans_a ? 1 : a1, at->trans_a ? a1 : 1, v[1],
              at->trans_b ? 1 : b1, at->trans_b ? b1 : 1, y);
    if (v[2] != NULL)
      ev_bcast(at->alpha, y, ys, at->beta, v[2], s[2], y);
    else
      for (size_t i = 0; i < n; i++)
        y[i] *= at->alpha;
    break;
  }
  case MPC_OP_CONV:
    ev_conv(at, v[0], s[0], v[1], s[1], v[2], ys, y);
    break;
  case MPC_OP_ADD:
  case MPC_OP_SUB:
    ev_bcast(1.0, v[0], s[0], nd->op == MPC_OP_ADD ? 1.0 : -1.0, v[1], s[1], y);
    break;
  case MPC_OP_MULC:
    for (size_t i = 0; i < n; i++)
      y[i] = v[0][i] * at->scalar;
    break;
  case MPC_OP_MUL:
    ev_bcast(1.0, v[0], s[0], NAN, v[1], s[1], y);
    break;
  case MPC_OP_RELU:
    for (size_t i = 0; i < n; i++)
      y[i] = v[0][i] > 0.0 ? v[0][i] : 0.0;
    break;
  case MPC_OP_MAXPOOL:
  case MPC_OP_AVGPOOL:
    ev_pool(nd->op == MPC_OP_MAXPOOL, at, v[0], s[0], ys, y);
    break;
  case MPC_OP_TRANSPOSE:
    ev_transpose(at->perm, v[0], s[0], ys, y);
    break;
  case MPC_OP_CONCAT: {
    /* Blocks of the joined axis and the ones after it alternate. */
    size_t outer = 1, ia, ib;
    for (int d = 0; d < at->axis; d++)
      outer *= ys->dim[d];
    ia = mpc_shape_numel(s[0]) / outer;
    ib = mpc_shape_numel(s[1]) / outer;
    for (size_t o = 0; o < outer; o++) {
      memcpy(y + o * (ia + ib), v[0] + o * ia, ia * sizeof *y);
      memcpy(y + o * (ia + ib) + ia, v[1] + o * ib, ib * sizeof *y);
    }
    break;
  }
  case MPC_OP_SELECT:
    for (size_t i = 0; i < n; i++) {
      long src = mpc__select_src(at, v[1], s[0], ys, i);
      y[i] = src < 0 ? 0.0 : v[0][src];
    }
    break;
  case MPC_OP_SOFTMAX:
    ev_softmax(at->magnitude, v[0], s[0], y);
    break;
  case MPC_OP_LINMAP:
    ev_linmap(at->axis, v[0], s[0], v[1], s[1], y);
    break;
  case MPC_OP_LNORM:
    ev_lnorm(at->magnitude, v[0], s[0], v[1] != NULL ? v[1][0] : 0, y);
    break;
  default: /* RESHAPE, OUTPUT: the same elements in the same order */
    memcpy(y, v[0], n * sizeof *y);
    break;
  }
}

int mpc_graph_batch(const mpc_graph_t *g, const mpc_ftensor_t *inputs, size_t ninputs,
                    size_t *batch, char *err, size_t errlen) {
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (g == NULL || batch == NULL || (ninputs > 0 && inputs == NULL))
    return TANDEM_EINVAL;
  *batch = 0;
  size_t k = 0, first = 0, nin = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    nin += g->nodes[i].op == MPC_OP_INPUT;
  if (nin != ninputs) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "the model has %zu inputs, not %zu", nin, ninputs);
    return TANDEM_ESHAPE;
  }
  for (size_t i = 0; i < g->nnodes; i++) {
    const mpc_node_t *nd = &g->nodes[i];
    if (nd->op != MPC_OP_INPUT)
      continue;
    const mpc_ftensor_t *t = &inputs[k++];
    mpc__ectx_t e = {err, errlen, nd->name, nd->op};
    mpc_shape_t want = nd->shape;
    if (nd->batched && t->shape.ndim == want.ndim && want.ndim >= 1) {
      if (*batch == 0) {
        *batch = t->shape.dim[0];
        first = k;
      } else if (t->shape.dim[0] != *batch) {
        return mpc__efail(&e, TANDEM_ESHAPE,
                     "input %zu has %zu rows but input %zu, also batched, has %zu", k,
                     t->shape.dim[0], first, *batch);
      }
      want.dim[0] = t->shape.dim[0];
    }
    if (!mpc__shape_eq(&t->shape, &want) || want.dim[0] == 0) {
      mpc_shape_t decl = nd->shape;
      return mpc__efail(&e, TANDEM_ESHAPE, "input %zu has shape %s, the model declares %s%s", k,
                   mpc__sstr(&t->shape).s, mpc__sstr(&decl).s,
                   nd->batched ? " (dim 0: any batch size)" : "");
    }
  }
  return 0;
}

/* The evaluator keeps one value per node: borrowed for inputs, weights and
 * constants, owned for computed nodes (freed, wiped, at the end). Shapes are
 * inferred again from the actual inputs, so the batch of the inputs flows
 * through the graph. */
int mpc_eval_float(const mpc_graph_t *g, const mpc_weights_t *w, const mpc_ftensor_t *inputs,
                   mpc_ftensor_t *outputs) {
  if (g == NULL || (g->nnodes > 0 && g->nodes == NULL))
    return TANDEM_EINVAL;
  size_t nn = g->nnodes, nin = 0, nout = 0, npar = 0;
  for (size_t i = 0; i < nn; i++) {
    nin += g->nodes[i].op == MPC_OP_INPUT;
    nout += g->nodes[i].op == MPC_OP_OUTPUT;
    npar += g->nodes[i].op == MPC_OP_PARAM;
  }
  if ((nin > 0 && inputs == NULL) || (nout > 0 && outputs == NULL))
    return TANDEM_EINVAL;
  if (npar > 0 && (w == NULL || w->graph != g || w->param == NULL))
    return TANDEM_EINVAL;
  for (size_t j = 0; j < nout; j++)
    memset(&outputs[j], 0, sizeof outputs[j]); /* closable whatever happens */

  int rc = TANDEM_ENOMEM;
  size_t ii = 0, oi = 0;
  mpc_shape_t *shp = calloc(nn ? nn : 1, sizeof *shp);
  const double **val = calloc(nn ? nn : 1, sizeof *val);
  double **own = calloc(nn ? nn : 1, sizeof *own);
  if (shp == NULL || val == NULL || own == NULL)
    goto fail;

  for (size_t i = 0; i < nn; i++) {
    const mpc_node_t *nd = &g->nodes[i];
    rc = mpc__check_inputs(nd, i, NULL);
    if (rc != 0)
      goto fail;
    if (nd->op == MPC_OP_INPUT) {
      const mpc_ftensor_t *t = &inputs[ii++];
      /* Only the batch (dim 0 of a batched input) may differ from the
       * declared shape. */
      mpc_shape_t want = nd->shape;
      if (nd->batched)
        want.dim[0] = t->shape.ndim >= 1 ? t->shape.dim[0] : 0;
      rc = TANDEM_ESHAPE;
      if (t->data == NULL || !mpc__shape_eq(&t->shape, &want) ||
          mpc__check_shape(NULL, &t->shape, "") != 0)
        goto fail;
      shp[i] = t->shape;
      val[i] = t->data;
      continue;
    }
    if (nd->op == MPC_OP_PARAM) {
      const mpc_ftensor_t *t = &w->param[i];
      rc = TANDEM_ESHAPE;
      if (t->data == NULL || !mpc__shape_eq(&t->shape, &nd->shape) ||
          mpc__check_shape(NULL, &t->shape, "") != 0)
        goto fail;
      shp[i] = t->shape;
      val[i] = t->data;
      continue;
    }
    const mpc_shape_t *s[3];
    const double *v[3];
    for (int k = 0; k < 3; k++) {
      s[k] = nd->in[k] >= 0 ? &shp[nd->in[k]] : NULL;
      v[k] = nd->in[k] >= 0 ? val[nd->in[k]] : NULL;
    }
    mpc_attr_t at;
    rc = mpc__infer(nd, s, 1, &shp[i], &at, NULL);
    if (rc != 0)
      goto fail;
    if (nd->op == MPC_OP_CONST) {
      val[i] = nd->cdata;
      continue;
    }
    double *y;
    if (nd->op == MPC_OP_OUTPUT) {
      rc = mpc_ftensor_init(&outputs[oi], &shp[i]);
      if (rc != 0)
        goto fail;
      y = outputs[oi++].data;
    } else {
      y = own[i] = malloc(mpc_shape_numel(&shp[i]) * sizeof *y);
      rc = TANDEM_ENOMEM;
      if (y == NULL)
        goto fail;
    }
    ev_node(nd, &at, v, s, &shp[i], y);
    if (nd->op == MPC_OP_OUTPUT)
      mpc__output_post(&at, &outputs[oi - 1]);
    val[i] = y;
  }
  rc = 0;

fail:
  if (rc != 0)
    for (size_t j = 0; j < oi; j++)
      mpc_ftensor_close(&outputs[j]);
  if (own != NULL)
    for (size_t i = 0; i < nn; i++)
      if (own[i] != NULL) {
        sodium_memzero(own[i], mpc_shape_numel(&shp[i]) * sizeof *own[i]);
        free(own[i]);
      }
  free(own);
  free(val);
  free(shp);
  return rc;
}
