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
  /* A query's four seeds (P0, P1, client, coins), wiped after each query.
   * Made once: a sodium_malloc per query (guard pages: mmap, two mprotects,
   * munmap with its TLB flush on every CPU) took 90 us of a batch-1 MLP
   * query's 250 us on the 2-vCPU VMs. */
  uint8_t *seeds;
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
  d->seeds = sodium_malloc(4 * MPC__SEED_BYTES);
  if (d->mask == NULL || d->seeds == NULL)
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
  if (d->seeds != NULL)
    sodium_free(d->seeds); /* sodium_free wipes */
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
  if (rc == 0 && (rc = mpc_transport_send(t, MPC_P0, seeds, MPC__SEED_BYTES)) == 0)
    rc = mpc_transport_send(t, MPC_P1, seeds + MPC__SEED_BYTES, MPC__SEED_BYTES);
  if (rc == 0)
    d->model_ready = 1;
done:
  while (opened-- > 0)
    kern_prg_close(&prg[opened]);
  sodium_free(seeds); /* sodium_free wipes */
  return rc;
}

void mpc_prep_close(mpc_prep_t *p) {
  for (int i = 0; i < 3; i++)
    mpc_prep_close_part(p, i, 0);
}

void mpc_prep_close_part(mpc_prep_t *p, int i, size_t wiped) {
  if (i < 0 || i > 2)
    return;
  size_t all = p->len[i] + p->headroom;
  if (p->msg[i] != NULL && wiped < all)
    sodium_memzero(p->msg[i] + wiped, all - wiped);
  free(p->msg[i]);
  p->msg[i] = NULL;
  p->len[i] = 0;
}

/* Test hook: 0..255 fills each message with that byte before the gates
 * write it, so a test can show every byte is written; -1 (default) leaves
 * malloc's bytes. */
int mpc__prep_poison = -1;

/* A message of `bytes` after `headroom` zero bytes, the rest not zeroed:
 * the seeds, corrections and keys the dealer writes cover every byte
 * (test_protocol's test_dealer_writes_every_byte), and zeroing 57 MB per
 * batch-100 MLP query was a third of the dealer's time (perf: memset under
 * calloc, glibc recycling the previous query's buffers). */
static uint8_t *msg_alloc(size_t headroom, size_t bytes) {
  uint8_t *m = mpc__malloc(headroom + bytes);
  if (m != NULL) {
    memset(m, 0, headroom);
    if (mpc__prep_poison >= 0)
      memset(m + headroom, mpc__prep_poison, bytes);
  }
  return m;
}

int mpc_dealer_prep(mpc_dealer_t *d, size_t headroom, mpc_prep_t *out) {
  const mpc_plan_t *p = d->plan;
  memset(out, 0, sizeof *out);
  out->headroom = headroom;
  if (!d->model_ready)
    return TANDEM_EINVAL;
  size_t b0 = mpc_plan_prep_bytes(p, MPC_P0), b1 = mpc_plan_prep_bytes(p, MPC_P1);
  /* The corrections are read as u64 in place: headroom keeps them aligned. */
  if (headroom % 8 != 0 || b0 > SIZE_MAX - headroom || b1 > SIZE_MAX - headroom)
    return TANDEM_EINVAL;
  /* seeds: P0, P1, client, coins */
  uint8_t *seeds = d->seeds;
  uint8_t *m0 = msg_alloc(headroom, b0), *m1 = msg_alloc(headroom, b1);
  uint8_t *mc = mpc__calloc(MPC__SEED_BYTES + headroom, 1);
  mpc__dealer_t st;
  memset(&st, 0, sizeof st);
  int rc = TANDEM_ENOMEM, opened = 0;
  kern_prg_t *prgs[4] = {&st.prg[0], &st.prg[1], &st.client, &st.coins};
  if (m0 == NULL || m1 == NULL || mc == NULL)
    goto done;
  mpc__os_random(seeds, 4 * MPC__SEED_BYTES);
  rc = TANDEM_ECRYPTO;
  for (; opened < 4; opened++)
    if (kern_prg_init(prgs[opened], seeds + opened * MPC__SEED_BYTES, MPC__SEED_BYTES) != 0)
      goto done;
  memcpy(m0 + headroom, seeds, MPC__SEED_BYTES);
  memcpy(m1 + headroom, seeds + MPC__SEED_BYTES, MPC__SEED_BYTES);
  memcpy(mc + headroom, seeds + 2 * MPC__SEED_BYTES, MPC__SEED_BYTES);
  st.corr = (uint64_t *)(void *)(m1 + headroom + MPC__SEED_BYTES);
  st.ncorr = p->ncorr;
  st.keys[0] = m0 + headroom + MPC__SEED_BYTES;
  st.keys[1] = m1 + headroom + MPC__SEED_BYTES + 8 * p->ncorr;
  st.nkey = p->nkey;
  st.mask = d->mask;
  rc = 0;
  for (size_t i = 0; i < p->ngates && rc == 0; i++)
    rc = mpc__gate_dealer(p, &p->gates[i], &st);
  if (rc == 0 && (st.corr_pos != st.ncorr || st.key_pos != st.nkey))
    rc = TANDEM_EINVAL; /* the plan's sizes and the gates disagree: a bug */
done:
  while (opened-- > 0)
    kern_prg_close(prgs[opened]);
  sodium_memzero(seeds, 4 * MPC__SEED_BYTES);
  /* Query masks are not kept: the next query draws new ones. */
  for (size_t v = 0; v < p->nvals; v++)
    if (p->vals[v].kind == MPC__V_MASKED)
      sodium_memzero(d->mask[v], p->vals[v].n * 8);
  out->msg[0] = m0;
  out->msg[1] = m1;
  out->msg[2] = mc;
  out->len[0] = b0;
  out->len[1] = b1;
  out->len[2] = MPC__SEED_BYTES;
  if (rc != 0)
    mpc_prep_close(out);
  return rc;
}

int mpc_dealer_query(mpc_dealer_t *d, mpc_transport_t *t) {
  static const mpc_role_t to[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
  mpc_prep_t prep;
  t->phase = MPC_PHASE_OFFLINE;
  int rc = mpc_dealer_prep(d, 0, &prep);
  for (int i = 0; i < 3 && rc == 0; i++)
    rc = mpc_transport_send(t, to[i], prep.msg[i], prep.len[i]);
  mpc_prep_close(&prep);
  return rc;
}
