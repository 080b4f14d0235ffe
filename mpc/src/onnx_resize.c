/* onnx_resize.c - the ONNX handler of Resize (opsets 10 to 21) and Upsample:
 * every mode (nearest, linear, cubic) and coordinate transformation the
 * operator defines, any scales or sizes; opset 18's axes,
 * keep_aspect_ratio_policy and antialias, opset 19's half_pixel_symmetric.
 *
 * Each output element is a fixed linear combination of input elements whose
 * coefficients depend only on the shapes and the attributes, never on the
 * data, and the map is separable: one public matrix M_d [out x in] per axis
 * (ONNX's reference, interpolate_1d_with_x: the coordinate transformation,
 * the n nearest neighbours of the edge-padded axis, the mode's coefficients,
 * exclude_outside). Nearest rows hold one 1: the axis becomes a Select
 * (strided, or by an index table for a non-integer factor), local, no round,
 * a masked value stays masked. Linear and cubic rows become IR LinearMap
 * nodes (plan.c: one window gate with a public coefficient per entry, the
 * axes composed into one gate, local, no round, the scale raised by one as a
 * product's). tf_crop_and_resize's extrapolated rows are zero rows of M_d
 * plus a public constant (the extrapolation value carried through the later
 * axes), added at the end.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_imp.h"

typedef enum { RS_NEAREST, RS_LINEAR, RS_CUBIC } rs_mode_t;
typedef enum { RS_STRETCH, RS_NOT_LARGER, RS_NOT_SMALLER } rs_keep_t;

/* Taps of one output element at most: antialias widens a linear or cubic
 * filter by 1 / scale when downsampling (2 / s or 4 / s taps). */
#define RS_MAXC 64

/* A node's resampling attributes. */
typedef struct {
  rs_mode_t mode;
  char ctm[32], nm[32];
  double a;       /* cubic_coeff_a */
  int exclude;    /* exclude_outside */
  double extrap;  /* extrapolation_value */
  int antialias;  /* opset 18 */
  rs_keep_t keep; /* keep_aspect_ratio_policy, opset 18 */
  int pos[MPC__CT_MAX_DIMS]; /* axis d's entry in scales, sizes, roi; -1 */
  unsigned na;               /* the entries: opset 18's axes, else the rank */
} rs_t;

/* Entry j of a list given for the axes (scales, sizes, roi) as axis d. */
static int rs_axis_of(const rs_t *r, unsigned d) { return r->pos[d]; }

/* Opset 18's axes attribute (every axis in order without it). */
static int read_axes(ctx_t *c, size_t k, unsigned rank, rs_t *r) {
  const int64_t *v = NULL;
  size_t n = SIZE_MAX;
  int rc = 0;
  if (mpc__onnx_attr_find(c, k, "axes") != NULL &&
      (rc = mpc__onnx_attr_ints(c, k, "axes", &v, &n)) != 0)
    return rc;
  for (unsigned d = 0; d < MPC__CT_MAX_DIMS; d++)
    r->pos[d] = v == NULL && d < rank ? (int)d : -1;
  r->na = v == NULL ? rank : (unsigned)n;
  if (v == NULL)
    return 0;
  if (n == 0 || n > rank)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axes lists %zu axes for rank %u", n, rank);
  for (size_t j = 0; j < n; j++) {
    int64_t a = v[j] < 0 ? v[j] + (int64_t)rank : v[j];
    if (a < 0 || a >= (int64_t)rank || r->pos[a] >= 0)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "axes[%zu] = %" PRId64 " is %s", j, v[j],
                             a < 0 || a >= (int64_t)rank ? "out of range" : "repeated");
    r->pos[a] = (int)j;
  }
  return 0;
}

/* The scales or sizes given, for the r->na axes of r->axes: *sc (floats)
 * or *sz (ints); Upsample's attribute is read into att. */
static int given_scales(ctx_t *c, size_t k, int upsample, const rs_t *r,
                        const mpc__ctensor_t **sc, const int64_t **sz, double *att) {
  size_t szn = SIZE_MAX;
  int rc = 0;
  *sc = NULL;
  *sz = NULL;
  const attr_t *sa = upsample ? mpc__onnx_attr_find(c, k, "scales") : NULL;
  if (sa != NULL) {
    if (sa->n_floats != r->na)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "scales has %zu entries for rank %u",
                             sa->n_floats, r->na);
    for (unsigned j = 0; j < r->na; j++)
      att[j] = sa->floats[j];
    return 0;
  }
  size_t js = upsample || c->opset < 11 ? 1 : 2;
  if (mpc__onnx_in_name(c, k, js) != NULL && (rc = mpc__onnx_in_const(c, k, js, 1, sc)) != 0)
    return rc;
  if (*sc != NULL && (*sc)->numel == 0)
    *sc = NULL;
  if (*sc == NULL && !upsample && c->opset >= 11 &&
      (rc = mpc__onnx_in_ints(c, k, 3, 1, sz, &szn)) != 0)
    return rc;
  if ((*sc != NULL ? (*sc)->numel : szn) != r->na || (*sc != NULL && (*sc)->f == NULL))
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "scales or sizes must give %u numbers", r->na);
  if (*sc == NULL && sa == NULL)
    for (unsigned j = 0; j < r->na; j++)
      if ((*sz)[j] < 1 || (*sz)[j] > (int64_t)MPC__CT_MAX_NUMEL)
        return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "size %" PRId64 " is invalid", (*sz)[j]);
  return 0;
}

/* Scales (or sizes) of a Resize or Upsample into out dims and the scale of
 * each axis (1 and the input's size on an axis not in r->axes); sizes with
 * keep_aspect_ratio_policy not_larger / not_smaller give one scale, the
 * least / greatest of the axes', and sizes round(scale * in) (the
 * reference's numpy round: half to even); 0 or an error. */
static int resize_dims(ctx_t *c, size_t k, int upsample, const rs_t *r, const mpc_shape_t *is,
                       mpc_shape_t *os, double *scale) {
  const mpc__ctensor_t *sc;
  const int64_t *sz;
  double att[MPC__CT_MAX_DIMS];
  int rc = given_scales(c, k, upsample, r, &sc, &sz, att);
  if (rc != 0)
    return rc;
  double keep = r->keep == RS_NOT_LARGER ? INFINITY : 0;
  for (unsigned d = 0; d < is->ndim && sz != NULL && r->keep != RS_STRETCH; d++) {
    int j = rs_axis_of(r, d);
    double f = j < 0 ? 0 : (double)sz[j] / (double)is->dim[d];
    if (j >= 0)
      keep = r->keep == RS_NOT_LARGER ? fmin(keep, f) : fmax(keep, f);
  }
  *os = *is;
  for (unsigned d = 0; d < is->ndim; d++) {
    int j = rs_axis_of(r, d);
    scale[d] = 1;
    if (j < 0)
      continue;
    if (sz != NULL && r->keep != RS_STRETCH) {
      double o = nearbyint(keep * (double)is->dim[d]);
      if (!(o >= 1) || o > (double)MPC__CT_MAX_NUMEL)
        return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "axis %u would have %g elements", d, o);
      os->dim[d] = (size_t)o;
      scale[d] = keep;
    } else if (sz != NULL) {
      os->dim[d] = (size_t)sz[j];
      scale[d] = (double)sz[j] / (double)is->dim[d];
    } else {
      scale[d] = sc != NULL ? sc->f[j] : att[j];
      if (!(scale[d] > 0) || scale[d] > (double)MAX_WIN)
        return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "scale %g is invalid", scale[d]);
      os->dim[d] = (size_t)floor((double)is->dim[d] * scale[d]);
      if (os->dim[d] == 0)
        return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "axis %u would be empty", d);
    }
  }
  return 0;
}

/* The input coordinate of output coordinate o on an axis of `in` elements
 * resized to `out` at scale s (ONNX's formulas; ow = s * in, a real number
 * as in the reference). *ext is set when tf_crop_and_resize falls outside
 * the input. */
static double source_coord(const rs_t *r, double o, double s, size_t in, size_t out,
                           const double *roi, int *ext) {
  double ow = s * (double)in, x;
  *ext = 0;
  if (strcmp(r->ctm, "align_corners") == 0) {
    x = ow == 1 ? 0 : o * (double)(in - 1) / (ow - 1);
  } else if (strcmp(r->ctm, "asymmetric") == 0) {
    x = o / s;
  } else if (strcmp(r->ctm, "tf_crop_and_resize") == 0) {
    x = ow == 1 ? (roi[1] - roi[0]) * (double)(in - 1) / 2
                : o * (roi[1] - roi[0]) * (double)(in - 1) / (ow - 1);
    x += roi[0] * (double)(in - 1);
    *ext = x < 0 || x > (double)(in - 1);
  } else if (strcmp(r->ctm, "pytorch_half_pixel") == 0) {
    x = ow == 1 ? -0.5 : (o + 0.5) / s - 0.5;
  } else if (strcmp(r->ctm, "tf_half_pixel_for_nn") == 0) {
    x = (o + 0.5) / s;
  } else if (strcmp(r->ctm, "half_pixel_symmetric") == 0) {
    /* Opset 19: centred when out is ow rounded down. */
    double adj = (double)out / ow, centre = (double)in / 2;
    x = centre * (1 - adj) + (o + 0.5) / s - 0.5;
  } else { /* half_pixel */
    x = (o + 0.5) / s - 0.5;
  }
  return x;
}

/* The cubic kernel at distance x (Keys, with a = A). */
static double cubic_at(double A, double x) {
  x = fabs(x);
  if (x <= 1)
    return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2)
    return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

/* The mode's coefficients at ratio t in (0, 1] and scale s; their number
 * (at most RS_MAXC), 0 if antialias would need more. Antialias (opset 18,
 * linear and cubic, s < 1): the filter stretched by 1 / s and its taps
 * normalised to sum 1, as the reference's *_coeffs_antialias. */
static size_t coeffs(const rs_t *r, double t, double s, double cf[RS_MAXC]) {
  if (r->mode != RS_NEAREST && r->antialias && s < 1) {
    double sup = r->mode == RS_CUBIC ? 2 : 1, sum = 0;
    /* Taps i0 .. 1 - i0 around floor(x): 2 / s or 4 / s of them. */
    double f0 = floor(-sup / s) + 1;
    if (f0 < 1 - RS_MAXC / 2)
      return 0;
    long i0 = (long)f0, n = 2 - 2 * i0;
    if (n < 1 || n > RS_MAXC)
      return 0;
    for (long j = 0; j < n; j++) {
      double a = s * ((double)(i0 + j) - t);
      cf[j] = r->mode == RS_CUBIC ? cubic_at(r->a, a) : fmax(0, 1 - fabs(a));
      sum += cf[j];
    }
    for (long j = 0; j < n; j++)
      cf[j] /= sum;
    return (size_t)n;
  }
  if (r->mode == RS_CUBIC) { /* the kernel at the four neighbours' distances */
    cf[0] = cubic_at(r->a, t + 1);
    cf[1] = cubic_at(r->a, t);
    cf[2] = cubic_at(r->a, 1 - t);
    cf[3] = cubic_at(r->a, 2 - t);
    return 4;
  }
  if (r->mode == RS_LINEAR) {
    cf[0] = 1 - t;
    cf[1] = t;
    return 2;
  }
  int hi = t == 1;
  if (!hi && strcmp(r->nm, "round_prefer_floor") == 0)
    hi = t > 0.5;
  else if (!hi && strcmp(r->nm, "round_prefer_ceil") == 0)
    hi = t >= 0.5;
  else if (!hi && strcmp(r->nm, "ceil") == 0)
    hi = 1;
  cf[0] = !hi;
  cf[1] = hi;
  return 2;
}

/* Row o of the axis's matrix M [out x in] (zeroed by the caller): the n
 * indices of the edge-padded axis nearest x (ties to the lower index),
 * clamped to the axis. 1 if the row is extrapolated instead, 2 if the
 * antialiased filter would need more than RS_MAXC taps. */
static int axis_row(const rs_t *r, size_t o, double s, size_t in, size_t out, const double *roi,
                    double *row) {
  int ext;
  double x = source_coord(r, (double)o, s, in, out, roi, &ext);
  if (ext)
    return 1;
  double fl = floor(x), cf[RS_MAXC];
  size_t n = coeffs(r, x == fl ? 1 : x - fl, s, cf);
  if (n == 0)
    return 2;
  long pad = (long)(n + 1) / 2, limit = (long)in + 2 * pad, idx[RS_MAXC];
  double xp = x + (double)pad;
  /* The n nearest of [0, limit) form a run; grow it from the nearest. */
  long lo = (long)floor(xp);
  if (xp - (double)lo > 0.5)
    lo++;
  lo = lo < 0 ? 0 : lo >= limit ? limit - 1 : lo;
  long hi = lo;
  for (size_t j = 1; j < n; j++) {
    int left = lo > 0 && (hi + 1 >= limit || fabs(xp - (double)(lo - 1)) <= fabs(xp - (double)(hi + 1)));
    if (left)
      lo--;
    else
      hi++;
  }
  double sum = 0;
  for (size_t j = 0; j < n; j++) {
    idx[j] = lo + (long)j - pad;
    if (r->exclude && (idx[j] < 0 || idx[j] >= (long)in))
      cf[j] = 0;
    sum += cf[j];
  }
  for (size_t j = 0; j < n; j++) {
    long i = idx[j] < 0 ? 0 : idx[j] >= (long)in ? (long)in - 1 : idx[j];
    row[i] += r->exclude ? cf[j] / sum : cf[j];
  }
  return 0;
}

/* The node's attributes; Upsample's and opset 10's defaults. */
static int read_attrs(ctx_t *c, size_t k, int upsample, rs_t *r) {
  static const char *const known[] = {"mode", "coordinate_transformation_mode", "nearest_mode",
                                      "cubic_coeff_a", "exclude_outside", "extrapolation_value",
                                      "scales", "antialias", "axes", "keep_aspect_ratio_policy",
                                      NULL};
  char mode[32], keep[32];
  int64_t excl, aa;
  int old = upsample || c->opset < 11, rc = mpc__onnx_attr_check(c, k, known);
  if (rc != 0 || (rc = mpc__onnx_attr_str(c, k, "mode", "nearest", mode, sizeof mode)) != 0 ||
      (rc = mpc__onnx_attr_str(c, k, "coordinate_transformation_mode",
                               old ? "asymmetric" : "half_pixel", r->ctm, sizeof r->ctm)) != 0 ||
      (rc = mpc__onnx_attr_str(c, k, "nearest_mode", old ? "floor" : "round_prefer_floor", r->nm,
                               sizeof r->nm)) != 0 ||
      (rc = mpc__onnx_attr_float(c, k, "cubic_coeff_a", -0.75, &r->a)) != 0 ||
      (rc = mpc__onnx_attr_int(c, k, "exclude_outside", 0, &excl)) != 0 ||
      (rc = mpc__onnx_attr_float(c, k, "extrapolation_value", 0.0, &r->extrap)) != 0 ||
      (rc = mpc__onnx_attr_int(c, k, "antialias", 0, &aa)) != 0 ||
      (rc = mpc__onnx_attr_str(c, k, "keep_aspect_ratio_policy", "stretch", keep, sizeof keep)) != 0)
    return rc;
  r->exclude = excl != 0;
  r->antialias = aa != 0;
  if (strcmp(keep, "stretch") == 0)
    r->keep = RS_STRETCH;
  else if (strcmp(keep, "not_larger") == 0)
    r->keep = RS_NOT_LARGER;
  else if (strcmp(keep, "not_smaller") == 0)
    r->keep = RS_NOT_SMALLER;
  else
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "keep_aspect_ratio_policy=%s is not supported",
                           keep);
  if (strcmp(mode, "nearest") == 0)
    r->mode = RS_NEAREST;
  else if (strcmp(mode, "linear") == 0 || strcmp(mode, "bilinear") == 0)
    r->mode = RS_LINEAR;
  else if (strcmp(mode, "cubic") == 0)
    r->mode = RS_CUBIC;
  else
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "mode=%s is not supported", mode);
  static const char *const ctms[] = {"half_pixel", "pytorch_half_pixel", "align_corners",
                                     "asymmetric", "tf_half_pixel_for_nn",
                                     "tf_crop_and_resize", "half_pixel_symmetric", NULL};
  for (size_t i = 0; ctms[i] != NULL; i++)
    if (strcmp(r->ctm, ctms[i]) == 0)
      return 0;
  return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                         "coordinate_transformation_mode=%s is not supported", r->ctm);
}

/* The nearest axis d of x (one 1 a row, src[o] its column) as a Select:
 * strided when src is start + floor(o step / div), else by an index table. */
static int nearest_axis(ctx_t *c, size_t k, int x, unsigned d, const long *src, size_t out) {
  mpc_shape_t os = *shape_of(c, x);
  size_t in = os.dim[d];
  os.dim[d] = out;
  int64_t start[MPC_MAX_DIMS] = {0}, step[MPC_MAX_DIMS];
  uint32_t div[MPC_MAX_DIMS];
  for (unsigned e = 0; e < os.ndim; e++) {
    step[e] = 1;
    div[e] = 1;
  }
  int up = out >= in;
  size_t f = up ? out / in : in / out;
  int strided = f >= 1 && f <= (size_t)MAX_WIN;
  for (size_t o = 0; o < out && strided; o++)
    strided = src[o] == src[0] + (long)(up ? o / f : o * f);
  if (strided) {
    start[d] = src[0];
    step[d] = up ? 1 : (int64_t)f;
    div[d] = up ? (uint32_t)f : 1;
    return mpc__onnx_emit_select(c, k, x, &os, start, step, div, -1, 0);
  }
  double *tab = malloc(out * sizeof *tab);
  if (tab == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t o = 0; o < out; o++)
    tab[o] = (double)src[o];
  char name[80];
  snprintf(name, sizeof name, "%.60s.rows%u", mpc__onnx_node_name(c, k), d);
  int t = mpc_graph_const(c->g, name, 1, &out, tab);
  free(tab);
  if (t < 0)
    return mpc__onnx_nfail(c, k, t, "cannot store the index table");
  return mpc__onnx_emit_select(c, k, x, &os, NULL, NULL, NULL, t, d);
}

/* Axis d of x by the public matrix M [out x in]: a LinearMap node. */
static int linear_axis(ctx_t *c, size_t k, int x, unsigned d, const double *M, size_t out,
                       size_t in) {
  size_t dim[2] = {out, in};
  char name[80];
  snprintf(name, sizeof name, "%.60s.map%u", mpc__onnx_node_name(c, k), d);
  int m = mpc_graph_const(c->g, name, 2, dim, M);
  if (m < 0)
    return mpc__onnx_nfail(c, k, m, "cannot store the interpolation matrix");
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_LINMAP, x, m, -1);
  nd.attr.axis = (int)d;
  return mpc__onnx_add_node(c, k, &nd);
}

/* The constant term of tf_crop_and_resize after axis d: T (shape ts: the
 * sizes of the axes mapped so far, 1 elsewhere, so constant along d) times
 * M's row sums, the extrapolated rows set to e. Frees T; NULL if out of
 * memory. */
static double *bias_axis(double *T, mpc_shape_t *ts, unsigned d, const double *M,
                         const unsigned char *ext, size_t out, size_t in, double e) {
  size_t outer = 1, inner = 1;
  for (unsigned a = 0; a < d; a++)
    outer *= ts->dim[a];
  for (unsigned a = d + 1; a < ts->ndim; a++)
    inner *= ts->dim[a];
  double *y = calloc(outer * out * inner + 1, sizeof *y);
  if (y != NULL)
    for (size_t r = 0; r < out; r++) {
      double rs = 0;
      for (size_t i = 0; i < in; i++)
        rs += M[r * in + i];
      for (size_t o = 0; o < outer; o++)
        for (size_t t = 0; t < inner; t++)
          y[(o * out + r) * inner + t] = ext[r] ? e : rs * T[o * inner + t];
    }
  free(T);
  ts->dim[d] = out;
  return y;
}

/* Adds the constant term T (shape ts) to x unless it is all zeros. */
static int add_bias(ctx_t *c, size_t k, int x, const double *T, const mpc_shape_t *ts) {
  size_t n = mpc_shape_numel(ts), nz = 0;
  for (size_t i = 0; i < n; i++)
    nz += T[i] != 0;
  if (nz == 0)
    return x;
  char name[80];
  snprintf(name, sizeof name, "%.60s.extrapolated", mpc__onnx_node_name(c, k));
  int b = mpc_graph_const(c->g, name, ts->ndim, ts->dim, T);
  if (b < 0)
    return mpc__onnx_nfail(c, k, b, "cannot store the extrapolated values");
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_ADD, x, b, -1);
  return mpc__onnx_add_node(c, k, &nd);
}

/* One axis: its matrix, then a Select (nearest) or LinearMap; identity axes
 * are skipped. T/ts: the constant term so far. Returns the new node. */
static int resize_axis(ctx_t *c, size_t k, const rs_t *r, int x, unsigned d, size_t out,
                       double s, const double *roi, double **T, mpc_shape_t *ts) {
  size_t in = shape_of(c, x)->dim[d];
  /* out and in come from the file (sizes or scales, a declared shape): the
   * matrix's size is checked before it is made, or out * in could wrap. */
  if (in == 0 || out == 0 || out > MPC__CT_MAX_NUMEL / in)
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "axis %u: a %zu x %zu interpolation matrix is "
                           "too large", d, out, in);
  double *M = calloc(out * in + 1, sizeof *M);
  unsigned char *ext = calloc(out + 1, 1);
  long *src = malloc((out + 1) * sizeof *src);
  int rc = 0, ident = out == in, anyext = 0, onehot = 1;
  if (M == NULL || ext == NULL || src == NULL) {
    rc = mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t o = 0; o < out; o++) {
    int row = axis_row(r, o, s, in, out, roi, M + o * in);
    if (row == 2) {
      rc = mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "axis %u: antialias at scale %g needs more than "
                           "%d taps per element", d, s, RS_MAXC);
      goto done;
    }
    ext[o] = (unsigned char)row;
    anyext |= ext[o];
    size_t ones = 0;
    src[o] = -1;
    for (size_t i = 0; i < in; i++) {
      double v = M[o * in + i];
      ident = ident && v == (i == o ? 1.0 : 0.0);
      if (v == 1.0) {
        ones++;
        src[o] = (long)i;
      } else if (v != 0.0) {
        onehot = 0;
      }
    }
    onehot = onehot && ones == 1 && !ext[o];
  }
  if (ident && !anyext) {
    rc = x;
    goto done;
  }
  if ((rc = mpc__onnx_batch_guard(c, k, d)) != 0)
    goto done;
  rc = onehot ? nearest_axis(c, k, x, d, src, out) : linear_axis(c, k, x, d, M, out, in);
  if (rc >= 0 && (*T = bias_axis(*T, ts, d, M, ext, out, in, r->extrap)) == NULL)
    rc = mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
done:
  free(M);
  free(ext);
  free(src);
  return rc;
}

/* Resize (opset 10+) and Upsample (variant 1). The axes are mapped last
 * first, as the reference nests them (an outer axis's extrapolated rows
 * hold the extrapolation value whatever the inner axes gave). */
int mpc__onnx_op_resize(ctx_t *c, size_t k, int upsample) {
  rs_t r;
  int rc, x;
  if ((rc = read_attrs(c, k, upsample, &r)) != 0 || (rc = mpc__onnx_in_act(c, k, 0, &x)) != 0)
    return rc;
  const mpc_shape_t is = *shape_of(c, x);
  mpc_shape_t os;
  double scale[MPC__CT_MAX_DIMS], roi[2 * MPC__CT_MAX_DIMS];
  if ((rc = read_axes(c, k, is.ndim, &r)) != 0 ||
      (rc = resize_dims(c, k, upsample, &r, &is, &os, scale)) != 0)
    return rc;
  for (unsigned d = 0; d < is.ndim; d++) {
    roi[2 * d] = 0;
    roi[2 * d + 1] = 1;
  }
  if (strcmp(r.ctm, "tf_crop_and_resize") == 0) {
    const mpc__ctensor_t *rt = NULL;
    if ((rc = mpc__onnx_in_const(c, k, 1, 1, &rt)) != 0)
      return rc;
    if (rt->f == NULL || rt->numel != 2 * (size_t)r.na)
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "roi must give %u numbers", 2 * r.na);
    for (unsigned d = 0; d < is.ndim; d++) {
      int j = rs_axis_of(&r, d);
      if (j >= 0) {
        roi[2 * d] = rt->f[j];
        roi[2 * d + 1] = rt->f[(unsigned)j + r.na];
      }
    }
  }
  mpc_shape_t ts = is; /* the constant term: the resized axes so far */
  for (unsigned d = 0; d < ts.ndim; d++)
    ts.dim[d] = 1;
  double *T = calloc(2, sizeof *T);
  if (T == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (unsigned d = is.ndim; d-- > 0 && x >= 0;) {
    int y = resize_axis(c, k, &r, x, d, os.dim[d], scale[d], roi + 2 * d, &T, &ts);
    x = y;
  }
  if (x >= 0)
    x = add_bias(c, k, x, T, &ts);
  free(T);
  if (x < 0)
    return x;
  mpc__onnx_def_act(c, k, 0, x);
  return 0;
}
