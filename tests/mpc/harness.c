/* harness.c - the in-process protocol harness (see proto_harness.h): one
 * thread per role over mpc_memnet, with a timeout so a protocol bug is a test
 * failure, never a hung test. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_harness.h"
#include "../test_rand.h"

/* ---- fixed coins ------------------------------------------------------------ */

static uint64_t coins_seed;           /* 0: off */
static _Thread_local int coins_role = -1; /* set by role_main */
static _Thread_local uint64_t coins_state;

static const char *coins_name(void) { return "tandem-test-fixed-coins"; }

static void coins_buf(void *const buf, const size_t size) {
  if (__atomic_load_n(&coins_seed, __ATOMIC_ACQUIRE) == 0 || coins_role < 0) {
    randombytes_sysrandom_implementation.buf(buf, size);
    return;
  }
  uint8_t *b = buf;
  for (size_t i = 0; i < size; i += 8) {
    uint64_t z = test_splitmix64(&coins_state);
    memcpy(b + i, &z, size - i < 8 ? size - i : 8);
  }
}

static uint32_t coins_random(void) {
  uint32_t r;
  coins_buf(&r, sizeof r);
  return r;
}

static randombytes_implementation coins_impl = {coins_name, coins_random, NULL, NULL,
                                                coins_buf, NULL};

void harness_fix_coins(uint64_t seed) {
  static int installed;
  if (!installed) {
    /* libsodium reads the implementation pointer at every call, so it can be
     * swapped after sodium_init; outside fixed mode it forwards to the
     * system's generator. */
    randombytes_set_implementation(&coins_impl);
    installed = 1;
  }
  __atomic_store_n(&coins_seed, seed, __ATOMIC_RELEASE);
}

typedef struct {
  mpc_role_t role;
  const mpc_plan_t *plan;
  const mpc_weights_t *w;
  mpc_transport_t *t;
  mpc_memnet_t *hub;
  const mpc_ftensor_t *inputs;
  mpc_ftensor_t *outputs;
  int queries;
  const mpc_plan_t *setup_plan; /* reload mode: setup under this plan */
  int rc;
} role_ctx_t;

/* Reload mode (harness_run_reload): the dealer and the parties set the model
 * up under a plan of another batch size, export their state, free everything,
 * and import the state into fresh objects of the query plan, as a restarted
 * daemon does. */
static size_t reload_setup_batch;

static int party_reload(role_ctx_t *c, mpc_party_t **out) {
  mpc_party_t *pt;
  int rc = mpc_party_new(&pt, c->setup_plan, c->role);
  if (rc != 0)
    return rc;
  size_t n = mpc_party_state_bytes(c->setup_plan);
  uint8_t *state = malloc(n);
  if (state == NULL) {
    mpc_party_free(pt);
    return TANDEM_ENOMEM;
  }
  if ((rc = mpc_party_setup(pt, c->t)) == 0)
    rc = mpc_party_export(pt, state, n);
  mpc_party_free(pt);
  if (rc == 0 && (rc = mpc_party_new(&pt, c->plan, c->role)) == 0) {
    rc = mpc_party_import(pt, state, n);
    if (rc == 0)
      *out = pt;
    else
      mpc_party_free(pt);
  }
  free(state);
  return rc;
}

static int dealer_reload(role_ctx_t *c, mpc_dealer_t **out) {
  mpc_dealer_t *d;
  int rc = mpc_dealer_new(&d, c->setup_plan);
  if (rc != 0)
    return rc;
  size_t n = mpc_dealer_state_bytes(c->setup_plan);
  uint8_t *state = malloc(n);
  if (state == NULL) {
    mpc_dealer_free(d);
    return TANDEM_ENOMEM;
  }
  if ((rc = mpc_dealer_model(d, c->t)) == 0)
    rc = mpc_dealer_export(d, state, n);
  mpc_dealer_free(d);
  if (rc == 0 && (rc = mpc_dealer_new(&d, c->plan)) == 0) {
    rc = mpc_dealer_import(d, state, n);
    if (rc == 0)
      *out = d;
    else
      mpc_dealer_free(d);
  }
  free(state);
  return rc;
}

/* A lying client (harness_lying_client): its online messages to P1 get
 * `lie_delta` added to their first word, so P0 and P1 hold different masked
 * inputs. The wrapper's stats are what the harness reports. */
static uint64_t lie_delta;
typedef struct {
  mpc_transport_t t;
  mpc_transport_t *inner;
} lie_t;

static int lie_send(mpc_transport_t *t, mpc_role_t to, const void *buf, size_t len) {
  lie_t *l = (lie_t *)t;
  if (to != MPC_P1 || t->phase != MPC_PHASE_ONLINE || len < 8)
    return l->inner->ops->send(l->inner, to, buf, len);
  uint8_t *copy = malloc(len);
  if (copy == NULL)
    return TANDEM_ENOMEM;
  memcpy(copy, buf, len);
  uint64_t w;
  memcpy(&w, copy, 8);
  w += lie_delta;
  memcpy(copy, &w, 8);
  int rc = l->inner->ops->send(l->inner, to, copy, len);
  free(copy);
  return rc;
}
static int lie_recv(mpc_transport_t *t, mpc_role_t from, void *buf, size_t len) {
  lie_t *l = (lie_t *)t;
  return l->inner->ops->recv(l->inner, from, buf, len);
}
static int lie_exchange(mpc_transport_t *t, mpc_role_t peer, const void *sbuf, size_t slen,
                        void *rbuf, size_t rlen) {
  lie_t *l = (lie_t *)t;
  return l->inner->ops->exchange(l->inner, peer, sbuf, slen, rbuf, rlen);
}
static const mpc_transport_ops_t lie_ops = {lie_send, lie_recv, lie_exchange, NULL};

void harness_lying_client(uint64_t delta) {
  lie_delta = delta;
}

/* harness_keep_first: where the client copies its first query's outputs. */
static mpc_ftensor_t *first_outputs;
void harness_keep_first(mpc_ftensor_t *outputs) {
  first_outputs = outputs;
}

static void *role_main(void *arg) {
  role_ctx_t *c = arg;
  int rc = 0;
  coins_role = (int)c->role;
  coins_state = __atomic_load_n(&coins_seed, __ATOMIC_ACQUIRE) ^
                (0x1000193ull * (uint64_t)(c->role + 1));
  char err[256];
  switch (c->role) {
  case MPC_OWNER:
    rc = mpc_owner_share(c->setup_plan ? c->setup_plan : c->plan, c->w, c->t, err,
                         sizeof err);
    break;
  case MPC_DEALER: {
    mpc_dealer_t *d;
    if (c->setup_plan != NULL)
      rc = dealer_reload(c, &d);
    else if ((rc = mpc_dealer_new(&d, c->plan)) == 0)
      rc = mpc_dealer_model(d, c->t);
    if (rc != 0)
      break;
    for (int q = 0; q < c->queries && rc == 0; q++)
      rc = mpc_dealer_query(d, c->t);
    mpc_dealer_free(d);
    break;
  }
  case MPC_P0:
  case MPC_P1: {
    mpc_party_t *pt;
    if (c->setup_plan != NULL)
      rc = party_reload(c, &pt);
    else if ((rc = mpc_party_new(&pt, c->plan, c->role)) == 0)
      rc = mpc_party_setup(pt, c->t);
    if (rc != 0)
      break;
    for (int q = 0; q < c->queries && rc == 0; q++)
      rc = mpc_party_query(pt, c->t);
    mpc_party_free(pt);
    break;
  }
  case MPC_CLIENT:
    for (int q = 0; q < c->queries && rc == 0; q++) {
      if (q > 0)
        for (size_t i = 0; i < mpc_plan_noutputs(c->plan); i++) {
          if (q == 1 && first_outputs != NULL)
            first_outputs[i] = c->outputs[i]; /* the caller closes it */
          else
            mpc_ftensor_close(&c->outputs[i]);
        }
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
  mpc_plan_t *setup_plan = NULL;
  if (reload_setup_batch != 0 &&
      (rc = mpc_plan_new(&setup_plan, g, reload_setup_batch, err, sizeof err)) != 0) {
    mpc_plan_free(plan);
    return rc;
  }
  /* A wait without progress fails after 60 s, or TANDEM_HARNESS_TIMEOUT_MS
   * (the conformance suite's largest cases under a sanitizer: the dealer's
   * keys for 10^5 comparisons). */
  int wait_ms = 60000;
  const char *tm = getenv("TANDEM_HARNESS_TIMEOUT_MS");
  if (tm != NULL && atoi(tm) >= 1000)
    wait_ms = atoi(tm);
  mpc_memnet_t *hub;
  if ((rc = mpc_memnet_new(&hub, wait_ms)) != 0) {
    mpc_plan_free(setup_plan);
    mpc_plan_free(plan);
    return rc;
  }
  if (tap != NULL)
    mpc_memnet_set_tap(hub, tap, tapctx);
  role_ctx_t ctx[MPC_NROLES];
  pthread_t th[MPC_NROLES];
  lie_t liar;
  memset(&liar, 0, sizeof liar);
  liar.t.ops = &lie_ops;
  liar.t.self = MPC_CLIENT;
  liar.inner = mpc_memnet_endpoint(hub, MPC_CLIENT);
  for (int r = 0; r < MPC_NROLES; r++) {
    mpc_transport_t *t = mpc_memnet_endpoint(hub, (mpc_role_t)r);
    if (r == MPC_CLIENT && lie_delta != 0)
      t = &liar.t;
    ctx[r] = (role_ctx_t){(mpc_role_t)r, plan, w, t, hub, inputs, outputs, queries, setup_plan, 0};
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
  mpc_plan_free(setup_plan);
  mpc_plan_free(plan);
  return rc;
}

int harness_run_reload(const mpc_graph_t *g, const mpc_weights_t *w, size_t setup_batch,
                       size_t batch, const mpc_ftensor_t *inputs, mpc_ftensor_t *outputs,
                       int queries, harness_result_t *res) {
  reload_setup_batch = setup_batch;
  int rc = harness_run(g, w, batch, inputs, outputs, queries, NULL, NULL, res);
  reload_setup_batch = 0;
  return rc;
}

double harness_layer_bound(double d_in, size_t k, double xmax, double amax, unsigned f) {
  double u = ldexp(1.0, -(int)f);
  return (double)k * amax * d_in + (double)k * (xmax + amax) * u / 2 + u / 2 + 2 * u;
}

double harness_max_abs_diff(const mpc_ftensor_t *a, const mpc_ftensor_t *b) {
  size_t n = mpc_shape_numel(&a->shape);
  ck_assert_uint_eq(a->shape.ndim, b->shape.ndim);
  for (unsigned d = 0; d < a->shape.ndim; d++)
    ck_assert_uint_eq(a->shape.dim[d], b->shape.dim[d]);
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs(a->data[i] - b->data[i]);
    if (d > m || isnan(d))
      m = isnan(d) ? INFINITY : d;
  }
  return m;
}

harness_result_t harness_check_private(const mpc_graph_t *g, const mpc_weights_t *w,
                                       size_t batch, const mpc_ftensor_t *in, double tol,
                                       int queries) {
  harness_result_t res;
  mpc_ftensor_t priv[8], ref[8];
  size_t nout = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    nout += g->nodes[i].op == MPC_OP_OUTPUT;
  ck_assert_uint_le(nout, 8);
  int rc = harness_run(g, w, batch, in, priv, queries, NULL, NULL, &res);
  ck_assert_msg(rc == 0, "private run failed: %s (p0 %d p1 %d dealer %d client %d owner %d)",
                tandem_strerror(rc), res.rc[0], res.rc[1], res.rc[2], res.rc[3], res.rc[4]);
  ck_assert_int_eq(mpc_eval_float(g, w, in, ref), 0);
  for (size_t o = 0; o < nout; o++) {
    double err = harness_max_abs_diff(&priv[o], &ref[o]);
    ck_assert_msg(err <= tol, "output %zu: error %g exceeds the bound %g", o, err, tol);
    mpc_ftensor_close(&priv[o]);
    mpc_ftensor_close(&ref[o]);
  }
  return res;
}

uint64_t harness_rand(uint64_t *s) {
  return test_splitmix64(s);
}

double harness_uniform(uint64_t *s, double lo, double hi) {
  return lo + (hi - lo) * (double)(harness_rand(s) >> 11) * 0x1.0p-53;
}

void harness_fill(mpc_ftensor_t *t, uint64_t *s, double lo, double hi) {
  size_t n = mpc_shape_numel(&t->shape);
  for (size_t i = 0; i < n; i++)
    t->data[i] = harness_uniform(s, lo, hi);
}

/* ---- test networks ------------------------------------------------------------- */

mpc_attr_t harness_gemm_attr(int trans_b) {
  mpc_attr_t a;
  memset(&a, 0, sizeof a);
  a.alpha = 1.0;
  a.beta = 1.0;
  a.trans_b = trans_b;
  return a;
}

/* Builds an MLP in -> hidden... -> out with ReLU between layers (Gemm with
 * transB = 1, as PyTorch exports Linear). Returns the weights, filled. */
void harness_build_mlp(mpc_graph_t *g, mpc_weights_t *w, const size_t *sizes, size_t nl,
                      size_t batch, unsigned f, uint64_t *seed, double wmax) {
  mpc_graph_init(g);
  g->frac_bits = f;
  size_t dim[2] = {batch, sizes[0]};
  int x = mpc_graph_input(g, "x", 2, dim);
  ck_assert_int_ge(x, 0);
  int wn[8], bn[8];
  for (size_t l = 0; l + 1 < nl; l++) {
    char name[32];
    size_t wd[2] = {sizes[l + 1], sizes[l]}, bd[1] = {sizes[l + 1]};
    snprintf(name, sizeof name, "w%zu", l);
    wn[l] = mpc_graph_param(g, name, 2, wd);
    snprintf(name, sizeof name, "b%zu", l);
    bn[l] = mpc_graph_param(g, name, 1, bd);
    mpc_attr_t a = harness_gemm_attr(1);
    snprintf(name, sizeof name, "fc%zu", l);
    x = mpc_graph_op(g, MPC_OP_GEMM, x, wn[l], bn[l], &a, name);
    ck_assert_int_ge(x, 0);
    if (l + 2 < nl) {
      snprintf(name, sizeof name, "relu%zu", l);
      x = mpc_graph_op(g, MPC_OP_RELU, x, -1, -1, NULL, name);
      ck_assert_int_ge(x, 0);
    }
  }
  ck_assert_int_ge(mpc_graph_op(g, MPC_OP_OUTPUT, x, -1, -1, NULL, "y"), 0);
  ck_assert_int_eq(mpc_weights_init(w, g), 0);
  for (size_t l = 0; l + 1 < nl; l++) {
    harness_fill(&w->param[wn[l]], seed, -wmax, wmax);
    harness_fill(&w->param[bn[l]], seed, -wmax, wmax);
  }
}

/* A LeNet-style CNN: conv 3x3 (4 channels) -> ReLU -> maxpool 2x2 -> Gemm to 3: every FSS mode
 * but truncation alone (ReLU + max levels; the conv's truncation fused). */
void harness_build_small_cnn(mpc_graph_t *g, mpc_weights_t *w, uint64_t *seedp) {
  uint64_t seed = *seedp;
  mpc_graph_init(g);
  size_t xd[4] = {2, 1, 8, 8}, cwd[4] = {4, 1, 3, 3}, cbd[1] = {4}, fwd[2] = {3, 64},
         fbd[1] = {3};
  int x = mpc_graph_input(g, "x", 4, xd);
  int cw = mpc_graph_param(g, "cw", 4, cwd), cb = mpc_graph_param(g, "cb", 1, cbd);
  mpc_attr_t ca;
  memset(&ca, 0, sizeof ca);
  ca.pads[0] = ca.pads[1] = ca.pads[2] = ca.pads[3] = 1;
  int c = mpc_graph_op(g, MPC_OP_CONV, x, cw, cb, &ca, "conv");
  ck_assert_int_ge(c, 0);
  int r1 = mpc_graph_op(g, MPC_OP_RELU, c, -1, -1, NULL, "relu");
  mpc_attr_t pa;
  memset(&pa, 0, sizeof pa);
  pa.kh = pa.kw = 2;
  pa.strides[0] = pa.strides[1] = 2;
  int mp = mpc_graph_op(g, MPC_OP_MAXPOOL, r1, -1, -1, &pa, "pool");
  ck_assert_int_ge(mp, 0);
  mpc_node_t rs;
  memset(&rs, 0, sizeof rs);
  rs.op = MPC_OP_RESHAPE;
  rs.in[0] = mp;
  rs.in[1] = rs.in[2] = -1;
  rs.shape.ndim = 2;
  rs.shape.dim[0] = 2;
  rs.shape.dim[1] = 64;
  snprintf(rs.name, sizeof rs.name, "flatten");
  int fl = mpc_graph_add(g, &rs, NULL, 0);
  ck_assert_int_ge(fl, 0);
  int fw = mpc_graph_param(g, "fw", 2, fwd), fb = mpc_graph_param(g, "fb", 1, fbd);
  mpc_attr_t ga = harness_gemm_attr(1);
  int y = mpc_graph_op(g, MPC_OP_GEMM, fl, fw, fb, &ga, "fc");
  ck_assert_int_ge(mpc_graph_op(g, MPC_OP_OUTPUT, y, -1, -1, NULL, "y"), 0);
  ck_assert_int_eq(mpc_weights_init(w, g), 0);
  harness_fill(&w->param[cw], &seed, -0.5, 0.5);
  harness_fill(&w->param[cb], &seed, -0.5, 0.5);
  harness_fill(&w->param[fw], &seed, -0.5, 0.5);
  harness_fill(&w->param[fb], &seed, -0.5, 0.5);
  *seedp = seed;
}
