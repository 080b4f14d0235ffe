/* gate_bilinear.c - bilinear layers: MatMul (batched too), Gemm, 2-D
 * convolution and the elementwise product (Mul by the owner's scale, or of two activations).
 *
 * With a weight W whose mask R_W was opened once at model setup (W^ = W + R_W
 * public to both parties) and a masked input X^ = X + R_X:
 *   X W = X^ W - R_X W^ + R_X R_W,
 * so party i computes <Y>_i = L(X^, <W>_i) + O_i with the offset
 * O_i = -L(<R_X>_i, W^) + <L(R_X, R_W)>_i ready before the query arrives: the
 * online phase is ONE local kernel product and sends nothing. The dealer, who
 * knows R_X and R_W but never W or X, fixes L(R_X, R_W).
 * With two operands that are both secret per query (the triple gate), both are
 * masked: X Y = X^ (Y^ - R_Y) - R_X Y^ + R_X R_Y, two local products online.
 */
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

static size_t out_words(const mpc__gate_t *g) {
  if (g->lin.form == MPC__L_CONV)
    return g->lin.batch * g->lin.cout * g->lin.ohw;
  if (g->lin.form == MPC__L_BMM)
    return g->lin.batch * g->lin.m * g->lin.n;
  return g->lin.m * g->lin.n;
}

int mpc__bilin_apply(const mpc__gate_t *g, const uint64_t *x, const uint64_t *w,
                     uint64_t *y, int acc) {
  const mpc__lin_t *l = &g->lin;
  switch (l->form) {
  case MPC__L_XW:
    return kern_gemm(KERN_NOTRANS, KERN_NOTRANS, l->m, l->n, l->k, x, l->k, w, l->n, acc, y, l->n);
  case MPC__L_XWT:
    return kern_gemm(KERN_NOTRANS, KERN_TRANS, l->m, l->n, l->k, x, l->k, w, l->k, acc, y, l->n);
  case MPC__L_WX:
    return kern_gemm(KERN_NOTRANS, KERN_NOTRANS, l->m, l->n, l->k, w, l->k, x, l->n, acc, y, l->n);
  case MPC__L_EW:
    for (size_t i = 0; i < l->m; i++) {
      uint64_t p = x[i] * w[g->bmap != NULL ? g->bmap[i] : i]; /* wraps mod 2^64 */
      y[i] = acc ? y[i] + p : p;
    }
    return 0;
  case MPC__L_BMM: {
    size_t mk = l->m * l->k, kn = l->k * l->n, mn = l->m * l->n;
    for (size_t t = 0; t < l->batch; t++) {
      int rc = kern_gemm(KERN_NOTRANS, KERN_NOTRANS, l->m, l->n, l->k, x + g->bmap[2 * t] * mk,
                         l->k, w + g->bmap[2 * t + 1] * kn, l->n, acc, y + t * mn, l->n);
      if (rc != 0)
        return rc;
    }
    return 0;
  }
  case MPC__L_CONV: {
    size_t plane = l->conv.c * l->conv.h * l->conv.w;
    size_t ncols = l->k * l->ohw;
    uint64_t *cols = malloc((ncols ? ncols : 1) * sizeof *cols);
    if (cols == NULL)
      return TANDEM_ENOMEM;
    int rc = 0;
    for (size_t b = 0; b < l->batch && rc == 0; b++) {
      kern_im2col(&l->conv, x + b * plane, cols);
      rc = kern_gemm(KERN_NOTRANS, KERN_NOTRANS, l->cout, l->ohw, l->k, w, l->k, cols,
                     l->ohw, acc, y + b * l->cout * l->ohw, l->ohw);
    }
    mpc__wipe_free(cols, (ncols ? ncols : 1) * sizeof *cols);
    return rc;
  }
  }
  return TANDEM_EINVAL;
}

int mpc__bilin_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d) {
  (void)p;
  size_t n = out_words(g);
  uint64_t *z = mpc__calloc(n ? n : 1, sizeof *z);
  if (z == NULL)
    return TANDEM_ENOMEM;
  int rc = mpc__bilin_apply(g, d->mask[g->in[0]], d->mask[g->in[1]], z, 0);
  if (rc == 0)
    rc = mpc__deal_fixed(d, z, n);
  mpc__wipe_free(z, n * sizeof *z);
  return rc;
}

int mpc__bilin_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                       mpc__prep_t *prep) {
  size_t gi = (size_t)(g - p->gates);
  mpc__gstate_t *gs = &pt->gs[gi];
  size_t n = out_words(g);
  int rc = mpc__gstate_pre(gs, n);
  if (rc == 0)
    rc = mpc__prep_fixed(prep, gs->pre, n);
  if (rc < 0 || g->kind == MPC__G_TRIPLE)
    return rc; /* the triple's other terms need the online operands */
  uint64_t *t = mpc__calloc(n ? n : 1, sizeof *t);
  if (t == NULL)
    return TANDEM_ENOMEM;
  rc = mpc__bilin_apply(g, pt->slot[g->in[0]].msh, pt->slot[g->in[1]].pub, t, 0);
  if (rc == 0)
    kern_sub(gs->pre, gs->pre, t, n);
  mpc__wipe_free(t, n * sizeof *t);
  return rc;
}

int mpc__bilin_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt) {
  size_t gi = (size_t)(g - p->gates);
  const mpc__gstate_t *gs = &pt->gs[gi];
  const mpc__slot_t *x = &pt->slot[g->in[0]], *w = &pt->slot[g->in[1]];
  uint64_t *y = pt->slot[g->out].sh;
  size_t n = out_words(g);
  if (g->kind == MPC__G_BILIN) {
    int rc = mpc__bilin_apply(g, x->pub, w->sh, y, 0);
    if (rc == 0)
      kern_add(y, y, gs->pre, n);
    return rc;
  }
  /* Triple: <Z>_i = X^ ([i=0] Y^ - <R_Y>_i) - <R_X>_i Y^ + <R_X R_Y>_i
   * (Y: the second operand, whole: a convolution's weights, all of a
   * batched product's matrices). */
  size_t ny = p->vals[g->in[1]].n;
  uint64_t *t = mpc__calloc(ny ? ny : 1, sizeof *t);
  if (t == NULL)
    return TANDEM_ENOMEM;
  if (pt->self == 0)
    kern_sub(t, w->pub, w->msh, ny);
  else
    kern_neg(t, w->msh, ny);
  memcpy(y, gs->pre, n * sizeof *y);
  int rc = mpc__bilin_apply(g, x->pub, t, y, 1);
  if (rc == 0) {
    kern_neg(t, w->pub, ny);
    rc = mpc__bilin_apply(g, x->msh, t, y, 1);
  }
  mpc__wipe_free(t, ny * sizeof *t);
  return rc;
}
