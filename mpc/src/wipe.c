/* wipe.c - wiping one query's secrets from a party's or the dealer's object
 * between queries (mpc_party_wipe_query, mpc_dealer_wipe_query, mpc.h).
 *
 * The cluster caches a plan with its party or dealer object per batch size,
 * so a query's keys and masks stayed in memory until the next query of that
 * size overwrote them, or for good (issue 15: "cached plan objects keep the
 * last query's keys and masks"). These wipe what a query wrote and the next
 * query rewrites, and keep the model state (weight shares, W + R_W, the
 * weight masks R_W, public constants) that every query reuses. */
#include <sodium.h>

#include "mpc_int.h"

void mpc_party_wipe_query(mpc_party_t *pt) {
  if (pt == NULL)
    return;
  const mpc_plan_t *p = pt->plan;
  for (size_t v = 0; v < p->nvals; v++) {
    const mpc__val_t *val = &p->vals[v];
    mpc__slot_t *s = &pt->slot[v];
    if (val->kind == MPC__V_MASKED) {
      sodium_memzero(s->pub, val->n * 8); /* the masked activation */
      sodium_memzero(s->msh, val->n * 8); /* this party's share of its mask */
    } else if (val->kind == MPC__V_SHARED) {
      sodium_memzero(s->sh, val->n * 8);
    }
  }
  for (size_t i = 0; i < p->ngates; i++) {
    mpc__gstate_t *gs = &pt->gs[i];
    if (gs->pre != NULL)
      sodium_memzero(gs->pre, gs->npre * 8);
    if (gs->consts != NULL)
      sodium_memzero(gs->consts, gs->nconsts * 8);
    gs->keys = NULL; /* pointed into prepbuf, wiped below */
  }
  /* The round buffers: as mpc_party_new sizes them (coord.c). */
  size_t mw = p->weight_words;
  for (unsigned r = 0; r < p->rounds; r++)
    mw = p->round_words[r] > mw ? p->round_words[r] : mw;
  mw = p->in_words > mw ? p->in_words : mw;
  mw = p->out_words > mw ? p->out_words : mw;
  mw = p->owner_words > mw ? p->owner_words : mw;
  sodium_memzero(pt->sendbuf, mw * 8);
  sodium_memzero(pt->recvbuf, mw * 8);
  sodium_memzero(pt->prepbuf, pt->prepbytes); /* seeds, corrections, FSS keys */
}

void mpc_dealer_wipe_query(mpc_dealer_t *d) {
  if (d == NULL)
    return;
  const mpc_plan_t *p = mpc__dealer_plan(d);
  for (size_t v = 0; v < p->nvals; v++)
    if (p->vals[v].kind == MPC__V_MASKED && mpc__dealer_mask(d, (int)v) != NULL)
      sodium_memzero(mpc__dealer_mask(d, (int)v), p->vals[v].n * 8);
}
