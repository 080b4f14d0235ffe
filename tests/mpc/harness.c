/* harness.c - the in-process protocol harness (see proto_harness.h): one
 * thread per role over mpc_memnet, with a timeout so a protocol bug is a test
 * failure, never a hung test. */
#include <pthread.h>
#include <string.h>

#include "proto_harness.h"

typedef struct {
  mpc_role_t role;
  const mpc_plan_t *plan;
  const mpc_weights_t *w;
  mpc_transport_t *t;
  mpc_memnet_t *hub;
  const mpc_ftensor_t *inputs;
  mpc_ftensor_t *outputs;
  int queries;
  int rc;
} role_ctx_t;

static void *role_main(void *arg) {
  role_ctx_t *c = arg;
  int rc = 0;
  char err[256];
  switch (c->role) {
  case MPC_OWNER:
    rc = mpc_owner_share(c->plan, c->w, c->t, err, sizeof err);
    break;
  case MPC_DEALER: {
    mpc_dealer_t *d;
    if ((rc = mpc_dealer_new(&d, c->plan)) != 0)
      break;
    rc = mpc_dealer_model(d, c->t);
    for (int q = 0; q < c->queries && rc == 0; q++)
      rc = mpc_dealer_query(d, c->t);
    mpc_dealer_free(d);
    break;
  }
  case MPC_P0:
  case MPC_P1: {
    mpc_party_t *pt;
    if ((rc = mpc_party_new(&pt, c->plan, c->role)) != 0)
      break;
    rc = mpc_party_setup(pt, c->t);
    for (int q = 0; q < c->queries && rc == 0; q++)
      rc = mpc_party_query(pt, c->t);
    mpc_party_free(pt);
    break;
  }
  case MPC_CLIENT:
    for (int q = 0; q < c->queries && rc == 0; q++) {
      if (q > 0)
        for (size_t i = 0; i < mpc_plan_noutputs(c->plan); i++)
          mpc_ftensor_close(&c->outputs[i]);
      rc = mpc_client_run(c->plan, c->t, c->inputs, c->outputs, err, sizeof err);
    }
    break;
  }
  c->rc = rc;
  if (rc != 0)
    mpc_memnet_kill(c->hub, c->role); /* the others fail fast instead of timing out */
  return NULL;
}

int harness_run(const mpc_graph_t *g, const mpc_weights_t *w, size_t batch,
                const mpc_ftensor_t *inputs, mpc_ftensor_t *outputs, int queries,
                mpc_tap_cb tap, void *tapctx, harness_result_t *res) {
  memset(res, 0, sizeof *res);
  mpc_plan_t *plan;
  char err[256];
  int rc = mpc_plan_new(&plan, g, batch, err, sizeof err);
  if (rc != 0)
    return rc;
  res->plan_rounds = mpc_plan_rounds(plan);
  mpc_memnet_t *hub;
  if ((rc = mpc_memnet_new(&hub, 60000)) != 0) {
    mpc_plan_free(plan);
    return rc;
  }
  if (tap != NULL)
    mpc_memnet_set_tap(hub, tap, tapctx);
  role_ctx_t ctx[MPC_NROLES];
  pthread_t th[MPC_NROLES];
  for (int r = 0; r < MPC_NROLES; r++) {
    ctx[r] = (role_ctx_t){(mpc_role_t)r, plan, w, mpc_memnet_endpoint(hub, (mpc_role_t)r),
                          hub, inputs, outputs, queries, 0};
    pthread_create(&th[r], NULL, role_main, &ctx[r]);
  }
  rc = 0;
  for (int r = 0; r < MPC_NROLES; r++) {
    pthread_join(th[r], NULL);
    res->rc[r] = ctx[r].rc;
    res->stats[r] = ctx[r].t->stats;
    if (rc == 0 && ctx[r].rc != 0)
      rc = ctx[r].rc;
  }
  if (rc != 0 && res->rc[MPC_CLIENT] == 0)
    for (size_t i = 0; i < mpc_plan_noutputs(plan); i++)
      mpc_ftensor_close(&outputs[i]);
  mpc_memnet_free(hub);
  mpc_plan_free(plan);
  return rc;
}

uint64_t harness_rand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double harness_uniform(uint64_t *s, double lo, double hi) {
  return lo + (hi - lo) * (double)(harness_rand(s) >> 11) * 0x1.0p-53;
}

void harness_fill(mpc_ftensor_t *t, uint64_t *s, double lo, double hi) {
  size_t n = mpc_shape_numel(&t->shape);
  for (size_t i = 0; i < n; i++)
    t->data[i] = harness_uniform(s, lo, hi);
}
