/* im2col.c - the lowering of a 2-D convolution to a matrix product
 * (kern_conv2d_out, kern_im2col, kern_col2im), the portable reference and the
 * only variant.
 *
 * The bilinear gate of mpc/ runs a convolution Y = W * X as one GEMM: W
 * reshaped to (out channels) x (c*kh*kw) times the column matrix of X, which
 * has one row per (input channel, kernel row, kernel column) and one column
 * per output pixel. kern_col2im is the adjoint of that map (it scatters and
 * adds back), used where a protocol needs the transpose of the lowering. Both
 * are pure data movement over Z_2^64 and memory-bound, so the reference is
 * also the fast version: for each row of the column matrix the range of
 * output columns that falls inside the input is computed once, and the row is
 * then a zero prefix, a copy (contiguous when the horizontal stride is 1) and
 * a zero suffix, with no per-element bounds test. Indices are unsigned: an
 * input coordinate oy*sh + i*dh - pad_t is kept as oy*sh + i*dh and compared
 * with pad_t, so nothing ever goes negative.
 */
#include <string.h>

#include "kern.h"

/* a + b, or 0 with *ok cleared when the sum overflows size_t. */
static size_t add_ok(size_t a, size_t b, int *ok) {
  if (a > SIZE_MAX - b) {
    *ok = 0;
    return 0;
  }
  return a + b;
}

/* a * b, or 0 with *ok cleared when the product overflows size_t. */
static size_t mul_ok(size_t a, size_t b, int *ok) {
  if (a != 0 && b > SIZE_MAX / a) {
    *ok = 0;
    return 0;
  }
  return a * b;
}

int kern_conv2d_out(const kern_conv2d_t *p, size_t *oh, size_t *ow) {
  if (p == NULL || oh == NULL || ow == NULL)
    return TANDEM_EINVAL;
  if (p->kh == 0 || p->kw == 0 || p->stride_h == 0 || p->stride_w == 0 ||
      p->dil_h == 0 || p->dil_w == 0)
    return TANDEM_EINVAL;
  /* The parameters come from a model file, so every size is checked for
   * overflow: the padded plane, the dilated kernel extent, and the two
   * buffers the caller sizes from them (x and the column matrix, in bytes). */
  int ok = 1;
  size_t ph = add_ok(add_ok(p->h, p->pad_t, &ok), p->pad_b, &ok);
  size_t pw = add_ok(add_ok(p->w, p->pad_l, &ok), p->pad_r, &ok);
  size_t ekh = add_ok(mul_ok(p->kh - 1, p->dil_h, &ok), 1, &ok);
  size_t ekw = add_ok(mul_ok(p->kw - 1, p->dil_w, &ok), 1, &ok);
  if (!ok || ekh > ph || ekw > pw)
    return TANDEM_EINVAL;
  size_t h_out = (ph - ekh) / p->stride_h + 1;
  size_t w_out = (pw - ekw) / p->stride_w + 1;
  size_t rows = mul_ok(mul_ok(p->c, p->kh, &ok), p->kw, &ok);
  size_t cols = mul_ok(h_out, w_out, &ok);
  (void)mul_ok(mul_ok(rows, cols, &ok), sizeof(uint64_t), &ok);
  (void)mul_ok(mul_ok(mul_ok(p->c, p->h, &ok), p->w, &ok), sizeof(uint64_t),
               &ok);
  if (!ok)
    return TANDEM_EINVAL;
  *oh = h_out;
  *ow = w_out;
  return 0;
}

/* ceil(a / s) for s >= 1, written so that a huge stride cannot overflow. */
static size_t ceil_div(size_t a, size_t s) {
  return a == 0 ? 0 : (a - 1) / s + 1;
}

/* The output positions o in [0, on) whose input coordinate o*s + off - pad
 * lies in [0, len): the half-open range [*lo, *hi), empty when *lo == *hi.
 * off is the kernel tap's offset i*d. */
static void valid_range(size_t on, size_t s, size_t off, size_t pad,
                        size_t len, size_t *lo, size_t *hi) {
  /* First o with o*s + off >= pad. */
  size_t l = off >= pad ? 0 : ceil_div(pad - off, s);
  /* First o with o*s + off >= pad + len (the end of the input; the sum was
   * checked by kern_conv2d_out). */
  size_t end = pad + len;
  size_t h = off >= end ? 0 : ceil_div(end - off, s);
  if (h > on)
    h = on;
  if (l > h)
    l = h;
  *lo = l;
  *hi = h;
}

void kern_im2col(const kern_conv2d_t *p, const uint64_t *x, uint64_t *cols) {
  size_t oh, ow;
  /* The contract requires a validated p; checking again costs nothing next
   * to the copy and turns a caller's mistake into a no-op, not a wild write. */
  if (kern_conv2d_out(p, &oh, &ow) != 0)
    return;
  const size_t sh = p->stride_h, sw = p->stride_w;
  uint64_t *row = cols;
  for (size_t ci = 0; ci < p->c; ci++) {
    const uint64_t *plane = x + ci * p->h * p->w;
    for (size_t i = 0; i < p->kh; i++) {
      size_t ylo, yhi;
      valid_range(oh, sh, i * p->dil_h, p->pad_t, p->h, &ylo, &yhi);
      for (size_t j = 0; j < p->kw; j++, row += oh * ow) {
        size_t xlo, xhi;
        valid_range(ow, sw, j * p->dil_w, p->pad_l, p->w, &xlo, &xhi);
        /* Output rows that read only padding are zero. */
        memset(row, 0, ylo * ow * sizeof *row);
        memset(row + yhi * ow, 0, (oh - yhi) * ow * sizeof *row);
        for (size_t oy = ylo; oy < yhi; oy++) {
          uint64_t *dst = row + oy * ow;
          const uint64_t *src =
              plane + (oy * sh + i * p->dil_h - p->pad_t) * p->w;
          memset(dst, 0, xlo * sizeof *dst);
          memset(dst + xhi, 0, (ow - xhi) * sizeof *dst);
          if (xlo == xhi)
            continue;
          /* The input column of output column ox is ox*sw + j*dw - pl; at
           * xlo that is non-negative by construction. The strided loop
           * indexes rather than advancing a pointer, so no pointer is ever
           * formed past the end of the input. */
          const uint64_t *s = src + (xlo * sw + j * p->dil_w - p->pad_l);
          if (sw == 1) {
            memcpy(dst + xlo, s, (xhi - xlo) * sizeof *dst);
          } else {
            for (size_t ox = xlo; ox < xhi; ox++)
              dst[ox] = s[(ox - xlo) * sw];
          }
        }
      }
    }
  }
}

void kern_col2im(const kern_conv2d_t *p, const uint64_t *cols, uint64_t *x) {
  size_t oh, ow;
  if (kern_conv2d_out(p, &oh, &ow) != 0)
    return;
  const size_t sh = p->stride_h, sw = p->stride_w;
  const uint64_t *row = cols;
  for (size_t ci = 0; ci < p->c; ci++) {
    uint64_t *plane = x + ci * p->h * p->w;
    for (size_t i = 0; i < p->kh; i++) {
      size_t ylo, yhi;
      valid_range(oh, sh, i * p->dil_h, p->pad_t, p->h, &ylo, &yhi);
      for (size_t j = 0; j < p->kw; j++, row += oh * ow) {
        size_t xlo, xhi;
        valid_range(ow, sw, j * p->dil_w, p->pad_l, p->w, &xlo, &xhi);
        if (xlo == xhi)
          continue;
        /* Entries that fall in the padding have no input to go to: the
         * adjoint of writing a zero there is dropping them. */
        for (size_t oy = ylo; oy < yhi; oy++) {
          const uint64_t *src = row + oy * ow;
          uint64_t *d = plane + (oy * sh + i * p->dil_h - p->pad_t) * p->w +
                        (xlo * sw + j * p->dil_w - p->pad_l);
          for (size_t ox = xlo; ox < xhi; ox++)
            d[(ox - xlo) * sw] += src[ox];
        }
      }
    }
  }
}
