/* gate_linear.c - the gates that need no FSS key: the client's input, the
 * opening of a shared value under a fresh mask, and the local linear operators
 * (add, sub, multiplication by a public constant, layout changes, average
 * pooling) that each party applies to its own share without communicating.
 *
 * A MASKED value v^ = v + R is also a sharing of v: P0 holds v^ - <R>_0 and P1
 * holds -<R>_1 (mpc__share_of), so every local operator accepts it. Layout
 * gates keep a MASKED value masked (they permute v^ and the mask shares alike,
 * and the dealer permutes R), so a Flatten between a pooling layer and a Gemm
 * costs no round.
 */
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

void mpc__share_of(const mpc_plan_t *p, const mpc_party_t *pt, int v, uint64_t *out) {
  const mpc__val_t *val = &p->vals[v];
  const mpc__slot_t *s = &pt->slot[v];
  switch (val->kind) {
  case MPC__V_MASKED:
    if (pt->self == 0)
      kern_sub(out, s->pub, s->msh, val->n);
    else
      kern_neg(out, s->msh, val->n);
    break;
  case MPC__V_PUBLIC:
    if (pt->self == 0)
      memcpy(out, s->pub, val->n * sizeof *out);
    else
      memset(out, 0, val->n * sizeof *out);
    break;
  default:
    memcpy(out, s->sh, val->n * sizeof *out);
    break;
  }
}

/* out[i] = (in0 then in1)[map[i]], 0 for MAP_ZERO; map NULL: a copy of in0.
 * n0 is in0's length (in1 NULL for a single operand). */
static void apply_map(uint64_t *out, const uint64_t *in0, size_t n0, const uint64_t *in1,
                      const uint32_t *map, size_t n) {
  if (map == NULL) {
    memcpy(out, in0, n * sizeof *out);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t m = map[i];
    out[i] = m == MPC__MAP_ZERO ? 0 : m < n0 ? in0[m] : in1[m - n0];
  }
}

int mpc__linear_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d) {
  size_t n = g->out >= 0 ? p->vals[g->out].n : 0;
  switch (g->kind) {
  case MPC__G_INPUT:
    /* The client's mask comes from the client's seed; P0's share from its PRG,
     * P1's as a correction. */
    if (kern_prg_u64(&d->client, d->mask[g->out], n) != 0)
      return TANDEM_ECRYPTO;
    return mpc__deal_fixed(d, d->mask[g->out], n);
  case MPC__G_OPEN:
    return mpc__deal_rand(d, d->mask[g->out], n);
  case MPC__G_LAYOUT:
    if (p->vals[g->out].kind == MPC__V_MASKED)
      apply_map(d->mask[g->out], d->mask[g->in[0]], p->vals[g->in[0]].n,
                g->in[1] >= 0 ? d->mask[g->in[1]] : NULL, g->map, n);
    return 0;
  default:
    return 0;
  }
}

int mpc__linear_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                        mpc__prep_t *prep) {
  size_t n = g->out >= 0 ? p->vals[g->out].n : 0;
  switch (g->kind) {
  case MPC__G_INPUT:
    return mpc__prep_fixed(prep, pt->slot[g->out].msh, n);
  case MPC__G_OPEN:
    return mpc__prep_rand(prep, pt->slot[g->out].msh, n);
  case MPC__G_LAYOUT:
    if (p->vals[g->out].kind == MPC__V_MASKED)
      apply_map(pt->slot[g->out].msh, pt->slot[g->in[0]].msh, p->vals[g->in[0]].n,
                g->in[1] >= 0 ? pt->slot[g->in[1]].msh : NULL, g->map, n);
    return 0;
  default:
    return 0;
  }
}

int mpc__linear_send(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                     uint64_t *out) {
  /* Only OPEN sends: its share of v plus its share of the fresh mask. */
  size_t n = p->vals[g->out].n;
  mpc__share_of(p, pt, g->in[0], out);
  kern_add(out, out, pt->slot[g->out].msh, n);
  return 0;
}

static int addsub(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt) {
  size_t n = p->vals[g->out].n;
  uint64_t *y = pt->slot[g->out].sh;
  size_t nb = p->vals[g->in[1]].n;
  uint64_t *b = malloc((nb + 1) * sizeof *b);
  if (b == NULL)
    return TANDEM_ENOMEM;
  mpc__share_of(p, pt, g->in[0], y);
  if (g->ascale != 1)
    kern_scale(y, y, g->ascale, n);
  mpc__share_of(p, pt, g->in[1], b);
  if (g->bscale != 1)
    kern_scale(b, b, g->bscale, nb);
  int sub = g->kind == MPC__G_SUB;
  if (g->bmap == NULL) {
    if (sub)
      kern_sub(y, y, b, n);
    else
      kern_add(y, y, b, n);
  } else {
    for (size_t i = 0; i < n; i++)
      y[i] = sub ? y[i] - b[g->bmap[i]] : y[i] + b[g->bmap[i]];
  }
  mpc__wipe_free(b, (nb + 1) * sizeof *b);
  return 0;
}

static int avgpool(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt) {
  size_t nin = p->vals[g->in[0]].n, npos = p->vals[g->out].n;
  uint64_t *x = malloc((nin + 1) * sizeof *x);
  if (x == NULL)
    return TANDEM_ENOMEM;
  mpc__share_of(p, pt, g->in[0], x);
  uint64_t *y = pt->slot[g->out].sh;
  for (size_t q = 0; q < npos; q++) {
    uint64_t sum = 0;
    const int32_t *w = g->win + q * g->wsize;
    if (g->wtap != NULL) {
      const uint64_t *c = g->wtap + q * g->wsize;
      for (size_t j = 0; j < g->wsize; j++)
        if (w[j] >= 0)
          sum += x[w[j]] * c[j];
      y[q] = sum;
      continue;
    }
    for (size_t j = 0; j < g->wsize; j++)
      if (w[j] >= 0)
        sum += x[w[j]];
    y[q] = sum * g->wcoef[q];
  }
  mpc__wipe_free(x, (nin + 1) * sizeof *x);
  return 0;
}

/* A layout gate at a party: the masked values moved as the dealer moved the
 * masks, or each party's shares of its operands moved alike. */
static int layout(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt) {
  size_t n = p->vals[g->out].n, n0 = p->vals[g->in[0]].n;
  size_t n1 = g->in[1] >= 0 ? p->vals[g->in[1]].n : 0;
  mpc__slot_t *out = &pt->slot[g->out];
  if (p->vals[g->out].kind == MPC__V_MASKED) {
    apply_map(out->pub, pt->slot[g->in[0]].pub, n0, n1 ? pt->slot[g->in[1]].pub : NULL, g->map,
              n);
    return 0;
  }
  if (g->map == NULL) {
    mpc__share_of(p, pt, g->in[0], out->sh);
    return 0;
  }
  uint64_t *x = malloc((n0 + n1 + 1) * sizeof *x);
  if (x == NULL)
    return TANDEM_ENOMEM;
  mpc__share_of(p, pt, g->in[0], x);
  if (n1)
    mpc__share_of(p, pt, g->in[1], x + n0);
  apply_map(out->sh, x, n0, x + n0, g->map, n);
  mpc__wipe_free(x, (n0 + n1 + 1) * sizeof *x);
  return 0;
}

int mpc__linear_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                       const uint64_t *mine, const uint64_t *theirs) {
  size_t n = g->out >= 0 ? p->vals[g->out].n : 0;
  mpc__slot_t *out = g->out >= 0 ? &pt->slot[g->out] : NULL;
  switch (g->kind) {
  case MPC__G_INPUT:
  case MPC__G_OUTPUT:
    return 0; /* the coordinator moves the client's messages */
  case MPC__G_OPEN:
    kern_add(out->pub, mine, theirs, n);
    return 0;
  case MPC__G_ADD:
  case MPC__G_SUB:
    return addsub(p, g, pt);
  case MPC__G_MULC:
    mpc__share_of(p, pt, g->in[0], out->sh);
    kern_scale(out->sh, out->sh, g->cmul, n);
    return 0;
  case MPC__G_LAYOUT:
    return layout(p, g, pt);
  case MPC__G_AVGPOOL:
    return avgpool(p, g, pt);
  default:
    return TANDEM_EINVAL;
  }
}
