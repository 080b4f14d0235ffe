/* dealer.c - the dealer: correlated randomness from the public plan alone.
 *
 * Per model it draws two seeds whose PRG streams are P0's and P1's shares of
 * the weight masks R_W, and keeps R_W (it needs R_W to fix the products
 * R_X R_W of every later query; it never learns W, since only W + R_W is
 * opened, and only between the parties). Per query it draws fresh seeds for
 * P0, P1 and the client and its own coins for the FSS keys, runs every gate's
 * dealer hook in plan order, and sends P0 [seed | keys], P1 [seed |
 * corrections | keys] and the client [seed]. Secrets live in memory wiped on
 * every path.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

struct mpc_dealer_s {
  const mpc_plan_t *plan;
  uint64_t **mask; /* per value: full masks of MASKED values and weights */
  int model_ready;
};

int mpc__dealer_ready(const mpc_dealer_t *d) { return d->model_ready; }
void mpc__dealer_set_ready(mpc_dealer_t *d) { d->model_ready = 1; }
const mpc_plan_t *mpc__dealer_plan(const mpc_dealer_t *d) { return d->plan; }
uint64_t *mpc__dealer_mask(const mpc_dealer_t *d, int v) { return d->mask[v]; }

int mpc_dealer_new(mpc_dealer_t **out, const mpc_plan_t *p) {
  *out = NULL;
  if (p == NULL)
    return TANDEM_EINVAL;
  mpc_dealer_t *d = calloc(1, sizeof *d);
  if (d == NULL)
    return TANDEM_ENOMEM;
  d->plan = p;
  d->mask = calloc(p->nvals ? p->nvals : 1, sizeof *d->mask);
  if (d->mask == NULL)
    goto fail;
  for (size_t v = 0; v < p->nvals; v++) {
    mpc__vkind_t k = p->vals[v].kind;
    if ((k == MPC__V_MASKED || k == MPC__V_WEIGHT) &&
        (d->mask[v] = mpc__calloc(p->vals[v].n, 8)) == NULL)
      goto fail;
  }
  *out = d;
  return 0;
fail:
  mpc_dealer_free(d);
  return TANDEM_ENOMEM;
}

void mpc_dealer_free(mpc_dealer_t *d) {
  if (d == NULL)
    return;
  if (d->mask != NULL)
    for (size_t v = 0; v < d->plan->nvals; v++)
      mpc__wipe_free(d->mask[v], (d->plan->vals[v].n ? d->plan->vals[v].n : 1) * 8);
  free(d->mask);
  free(d);
}

int mpc_dealer_model(mpc_dealer_t *d, mpc_transport_t *t) {
  const mpc_plan_t *p = d->plan;
  t->phase = MPC_PHASE_SETUP;
  uint8_t *seeds = sodium_malloc(2 * MPC__SEED_BYTES);
  if (seeds == NULL)
    return TANDEM_ENOMEM;
  mpc__os_random(seeds, 2 * MPC__SEED_BYTES);
  kern_prg_t prg[2];
  int rc = TANDEM_ECRYPTO, opened = 0;
  for (; opened < 2; opened++)
    if (kern_prg_init(&prg[opened], seeds + opened * MPC__SEED_BYTES, MPC__SEED_BYTES) != 0)
      goto done;
  rc = 0;
  for (size_t i = 0; i < p->nparams && rc == 0; i++) {
    int v = p->params[i];
    size_t n = p->vals[v].n;
    if (p->vals[v].kind != MPC__V_WEIGHT)
      continue;
    uint64_t *t1 = mpc__calloc(n, 8);
    if (t1 == NULL) {
      rc = TANDEM_ENOMEM;
      break;
    }
    if (kern_prg_u64(&prg[0], d->mask[v], n) != 0 || kern_prg_u64(&prg[1], t1, n) != 0)
      rc = TANDEM_ECRYPTO;
    else
      kern_add(d->mask[v], d->mask[v], t1, n);
    mpc__wipe_free(t1, (n ? n : 1) * 8);
  }
  if (rc == 0 && (rc = mpc_net_send(t, MPC_P0, seeds, MPC__SEED_BYTES)) == 0)
    rc = mpc_net_send(t, MPC_P1, seeds + MPC__SEED_BYTES, MPC__SEED_BYTES);
  if (rc == 0)
    d->model_ready = 1;
done:
  while (opened-- > 0)
    kern_prg_close(&prg[opened]);
  sodium_free(seeds); /* sodium_free wipes */
  return rc;
}

int mpc_dealer_query(mpc_dealer_t *d, mpc_transport_t *t) {
  const mpc_plan_t *p = d->plan;
  if (!d->model_ready)
    return TANDEM_EINVAL;
  t->phase = MPC_PHASE_OFFLINE;
  size_t b0 = mpc_plan_prep_bytes(p, MPC_P0), b1 = mpc_plan_prep_bytes(p, MPC_P1);
  /* seeds: P0, P1, client, coins */
  uint8_t *seeds = sodium_malloc(4 * MPC__SEED_BYTES);
  uint8_t *m0 = mpc__calloc(b0, 1), *m1 = mpc__calloc(b1, 1);
  mpc__dealer_t st;
  memset(&st, 0, sizeof st);
  int rc = TANDEM_ENOMEM, opened = 0;
  if (seeds == NULL || m0 == NULL || m1 == NULL)
    goto done;
  mpc__os_random(seeds, 4 * MPC__SEED_BYTES);
  kern_prg_t *prgs[4] = {&st.prg[0], &st.prg[1], &st.client, &st.coins};
  rc = TANDEM_ECRYPTO;
  for (; opened < 4; opened++)
    if (kern_prg_init(prgs[opened], seeds + opened * MPC__SEED_BYTES, MPC__SEED_BYTES) != 0)
      goto done;
  memcpy(m0, seeds, MPC__SEED_BYTES);
  memcpy(m1, seeds + MPC__SEED_BYTES, MPC__SEED_BYTES);
  st.corr = (uint64_t *)(void *)(m1 + MPC__SEED_BYTES);
  st.ncorr = p->ncorr;
  st.keys[0] = m0 + MPC__SEED_BYTES;
  st.keys[1] = m1 + MPC__SEED_BYTES + 8 * p->ncorr;
  st.nkey = p->nkey;
  st.mask = d->mask;
  rc = 0;
  for (size_t i = 0; i < p->ngates && rc == 0; i++)
    rc = mpc__gate_dealer(p, &p->gates[i], &st);
  if (rc == 0 && (st.corr_pos != st.ncorr || st.key_pos != st.nkey))
    rc = TANDEM_EINVAL; /* the plan's sizes and the gates disagree: a bug */
  if (rc == 0)
    rc = mpc_net_send(t, MPC_P0, m0, b0);
  if (rc == 0)
    rc = mpc_net_send(t, MPC_P1, m1, b1);
  if (rc == 0)
    rc = mpc_net_send(t, MPC_CLIENT, seeds + 2 * MPC__SEED_BYTES, MPC__SEED_BYTES);
done:
  while (opened-- > 0)
    kern_prg_close(prgs[opened]);
  mpc__wipe_free(m0, b0 ? b0 : 1);
  mpc__wipe_free(m1, b1 ? b1 : 1);
  if (seeds != NULL)
    sodium_free(seeds);
  /* Query masks are not kept: the next query draws new ones. */
  for (size_t v = 0; v < p->nvals; v++)
    if (p->vals[v].kind == MPC__V_MASKED)
      sodium_memzero(d->mask[v], p->vals[v].n * 8);
  return rc;
}
