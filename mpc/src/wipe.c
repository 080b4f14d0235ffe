/* wipe.c - wiping one query's secrets from a party's object between
 * queries (mpc_party_wipe_query, mpc.h). (The dealer's object needs no
 * such call: mpc_dealer_prep wipes its query masks before it returns.)
 *
 * The cluster caches a plan with its party or dealer object per batch size,
 * so a query's keys and masks stayed in memory until the next query of that
 * size overwrote them, or for good (issue 15: "cached plan objects keep the
 * last query's keys and masks"). This wipes what a query wrote and the next
 * query rewrites, and keeps the model state (weight shares, W + R_W, the
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
  /* The round buffers, whole (as mpc_party_new sizes them). */
  size_t mw = mpc__max_round_words(p);
  sodium_memzero(pt->sendbuf, (mw ? mw : 1) * 8);
  sodium_memzero(pt->recvbuf, (mw ? mw : 1) * 8);
  sodium_memzero(pt->prepbuf, pt->prepbytes); /* seeds, corrections, FSS keys */
}
