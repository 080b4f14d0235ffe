/* test_cluster_deploy.c - Check suite for issue 12 (deployments) in one
 * process (cluster_harness.h, real loopback sockets): the dealer's pools
 * within their memory budget (pool_mem_max), evicted least recently used,
 * and a query beyond the budget refused with the reason before any work;
 * the parties freeing the plans of large queries once they are done; and
 * several clients, each with its own key, querying at the same moment. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_harness.h"

#define TIMEOUT_MS 20000

/* The MLP's graph and weights, for sizes and the float reference. */
static void mlp_load(mpc_graph_t *g, mpc_weights_t *w) {
  char path[600], err[512] = "";
  snprintf(path, sizeof path, "%s/models/fashion_mlp.onnx", TANDEM_SRC_DIR);
  ck_assert_msg(mpc_onnx_load(path, g, w, err, sizeof err) == 0, "%s", err);
  /* The owner's bounds, as the shared graph carries them: they size the
   * comparison gates, so the preprocessing. */
  ck_assert_int_eq(mpc_graph_set_bounds(g, w), 0);
}

/* One query's preprocessing of the MLP at `batch`, all roles, as the dealer
 * holds it (with each part's tag headroom). */
static size_t mlp_prep_bytes(size_t batch) {
  mpc_graph_t g;
  mpc_weights_t w;
  mlp_load(&g, &w);
  char err[512] = "";
  mpc_plan_t *p;
  ck_assert_msg(mpc_plan_new(&p, &g, batch, err, sizeof err) == 0, "%s", err);
  static const mpc_role_t roles[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
  size_t b = 3 * CL_TAG_BYTES;
  for (int r = 0; r < 3; r++)
    b += mpc_plan_prep_bytes(p, roles[r]);
  mpc_plan_free(p);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  return b;
}

/* A query of "mlp" at any batch size: row i is test image i mod 16. 0 or
 * the error (message in err); the output is checked against the float
 * evaluator and closed. */
static int query_rows(ch_cluster_t *c, cl_client_t *cl, size_t n, char *err, size_t errlen) {
  size_t rows = c->images.shape.dim[0], row = mpc_shape_numel(&c->images.shape) / rows;
  mpc_ftensor_t x = c->images, y, ref;
  x.shape.dim[0] = n;
  x.data = malloc(n * row * sizeof *x.data);
  ck_assert_ptr_nonnull(x.data);
  for (size_t i = 0; i < n; i++)
    memcpy(x.data + i * row, c->images.data + (i % rows) * row, row * sizeof *x.data);
  cl_query_stats_t st;
  int rc = cl_client_query(cl, "mlp", &x, 1, &y, 1, &st, err, errlen);
  cl_query_stats_close(&st);
  if (rc == 0) {
    mpc_graph_t g;
    mpc_weights_t w;
    mlp_load(&g, &w);
    ck_assert_int_eq(mpc_eval_float(&g, &w, &x, &ref), 0);
    ck_assert_uint_eq(mpc_shape_numel(&ref.shape), mpc_shape_numel(&y.shape));
    for (size_t i = 0; i < mpc_shape_numel(&ref.shape); i++)
      ck_assert_msg(fabs(ref.data[i] - y.data[i]) < 0.05, "batch %zu output %zu: %f vs %f", n,
                    i, y.data[i], ref.data[i]);
    mpc_ftensor_close(&ref);
    mpc_weights_close(&w);
    mpc_graph_close(&g);
    mpc_ftensor_close(&y);
  }
  free(x.data);
  return rc;
}

/* The dealer's pools stay within pool_mem_max (here two and a half
 * queries of batch 16, with a pool target of 8 queries per size, so the
 * refill alone would hold 8): the most it held at once is within it across
 * queries of three batch sizes, the pools asked for least recently are
 * evicted, every query is served, and a batch whose own preprocessing
 * exceeds the budget is refused with the reason. Before the budget the
 * dealer held `pool` queries of every size ever asked for (issue 12: 893
 * MB for the MLP after one batch-100 query). */
START_TEST(pool_mem_budget) {
  size_t one16 = mlp_prep_bytes(16), budget = one16 * 5 / 2;
  char lines[128];
  snprintf(lines, sizeof lines, "pool_mem_max = %zu\n", budget);
  ch_opts_t o = {.cluster_lines = lines};
  ch_cluster_t c;
  ch_start_opts(&c, TIMEOUT_MS, 8, 1, &o);
  cl_client_t cl;
  ch_client_open(&c, 0, &cl);
  size_t from = ch_mark(&c);
  char err[512] = "";
  static const size_t sizes[6] = {16, 16, 12, 16, 12, 8};
  for (int i = 0; i < 6; i++)
    ck_assert_msg(query_rows(&c, &cl, sizes[i], err, sizeof err) == 0, "batch %zu: %s",
                  sizes[i], err);
  ck_assert(ch_wait_line(&c, from, "dealer", "evicted to stay within pool_mem_max", 10000));
  /* Beyond the budget: refused at once, naming it. */
  size_t over = 32;
  while (mlp_prep_bytes(over) <= budget)
    over *= 2;
  ck_assert_int_ne(query_rows(&c, &cl, over, err, sizeof err), 0);
  ck_assert_msg(strstr(err, "pool_mem_max") != NULL, "%s", err);
  size_t held, peak;
  cl_dealer_mem(c.dealer, &held, &peak);
  ck_assert_msg(peak <= budget, "the dealer held %zu bytes, over its budget %zu", peak, budget);
  ck_assert_uint_gt(peak, one16); /* it did hold preprocessing ahead */
  cl_client_close(&cl);
  ch_stop(&c);
}
END_TEST

/* A party frees the plan (and the buffers of its object) of a query over
 * the config's plan_keep once the query is done, and keeps small ones; the next
 * query of the large size works from a fresh plan. Before, an idle party
 * held every cached plan's buffers (3.0 GB after CNN queries). */
#define KEEP ((size_t)64 << 20) /* the config's plan_keep here */
#define KEEP_TEXT "67108864"
START_TEST(party_frees_large_plans) {
  mpc_graph_t g;
  mpc_weights_t w;
  mlp_load(&g, &w);
  size_t big = 16; /* the smallest batch (to 16 rows) over it: its query is slow */
  while (mpc_plan_mem_bytes(&g, big) <= KEEP)
    big += 16;
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  ch_cluster_t c;
  ch_opts_t o = {.cluster_lines = "plan_keep = " KEEP_TEXT "\n"};
  ch_start_opts(&c, 3 * TIMEOUT_MS, 1, 1, &o); /* a loaded machine takes seconds per query */
  cl_client_t cl;
  ch_client_open(&c, 0, &cl);
  char err[512] = "";
  size_t from = ch_mark(&c);
  ck_assert_msg(query_rows(&c, &cl, 2, err, sizeof err) == 0, "%s", err);
  ck_assert_msg(query_rows(&c, &cl, big, err, sizeof err) == 0, "batch %zu: %s", big, err);
  ck_assert(ch_wait_line(&c, from, "party p0", "large plan(s) freed", 10000));
  ck_assert(ch_wait_line(&c, from, "party p1", "large plan(s) freed", 10000));
  from = ch_mark(&c);
  ck_assert_msg(query_rows(&c, &cl, big, err, sizeof err) == 0, "batch %zu: %s", big, err);
  ck_assert(ch_wait_line(&c, from, "party p0", "large plan(s) freed", 10000));
  /* The small plan stayed: its second query frees nothing. */
  from = ch_mark(&c);
  ck_assert_msg(query_rows(&c, &cl, 2, err, sizeof err) == 0, "%s", err);
  ck_assert_msg(query_rows(&c, &cl, 3, err, sizeof err) == 0, "%s", err);
  ck_assert(!ch_seen(&c, from, "large plan(s) freed"));
  cl_client_close(&cl);
  ch_stop(&c);
}
END_TEST

/* ---- inputs checked before work ------------------------------------------------- */

/* A wrong input shape, a NaN and one input too many are refused by the
 * client before it asks the dealer for the query: one line naming the input
 * and both shapes, and neither the dealer nor a party hears of a query (the
 * parties logged a client's typo as "online phase failed: peer closed the
 * connection" before). The next good query is served. */
START_TEST(inputs_checked_before_request) {
  ch_cluster_t c;
  ch_start(&c, TIMEOUT_MS, 1, 1);
  cl_client_t cl;
  ch_client_open(&c, 0, &cl);
  size_t from = ch_mark(&c);
  mpc_ftensor_t x = c.images, y, two[2];
  x.shape.ndim = 2;
  x.shape.dim[0] = 4;
  x.shape.dim[1] = 196;
  cl_query_stats_t st;
  char err[512] = "";
  ck_assert_int_eq(cl_client_query(&cl, "mlp", &x, 1, &y, 1, &st, err, sizeof err),
                   TANDEM_ESHAPE);
  cl_query_stats_close(&st);
  ck_assert_msg(strstr(err, "input") != NULL && strstr(err, "[4, 196]") != NULL &&
                strstr(err, "28, 28]") != NULL && strchr(err, '\n') == NULL, "%s", err);
  x = c.images;
  x.shape.dim[0] = 2;
  two[0] = two[1] = x;
  ck_assert_int_eq(cl_client_query(&cl, "mlp", two, 2, &y, 1, &st, err, sizeof err),
                   TANDEM_ESHAPE);
  cl_query_stats_close(&st);
  ck_assert_msg(strstr(err, "has 1 inputs, not 2") != NULL, "%s", err);
  double keep = x.data[5];
  x.data[5] = NAN;
  ck_assert_int_eq(cl_client_query(&cl, "mlp", &x, 1, &y, 1, &st, err, sizeof err),
                   TANDEM_ERANGE);
  cl_query_stats_close(&st);
  x.data[5] = keep;
  ck_assert_msg(strstr(err, "element 5 is nan") != NULL, "%s", err);
  ck_assert(!ch_seen(&c, from, "query"));
  ch_query_ok(&c, &cl, 0, 2);
  cl_client_close(&cl);
  ch_stop(&c);
}
END_TEST

/* ---- many clients ---------------------------------------------------------------- */

typedef struct {
  ch_cluster_t *c;
  int k;
  int rc[3];
  char err[512];
} client_run_t;

static void *client_main(void *arg) {
  client_run_t *r = arg;
  cl_client_t cl;
  ch_client_open(r->c, r->k, &cl);
  for (int q = 0; q < 3; q++) {
    mpc_ftensor_t y;
    cl_query_stats_t st;
    r->rc[q] = ch_query(r->c, &cl, (size_t)r->k * 4 + (size_t)q, 2, &y, &st, r->err,
                        sizeof r->err);
    cl_query_stats_close(&st);
    if (r->rc[q] == 0) {
      ch_check_output(r->c, (size_t)r->k * 4 + (size_t)q, 2, &y);
      mpc_ftensor_close(&y);
    }
  }
  cl_client_close(&cl);
  return NULL;
}

/* Every client of the config (each its own key) queries three times at
 * the same moment: all are served, each answer right. */
START_TEST(clients_side_by_side) {
  ch_cluster_t c;
  ch_start(&c, TIMEOUT_MS, 2, 1);
  client_run_t run[CH_CLIENTS];
  pthread_t th[CH_CLIENTS];
  for (int k = 0; k < CH_CLIENTS; k++) {
    memset(&run[k], 0, sizeof run[k]);
    run[k].c = &c;
    run[k].k = k;
    ck_assert_int_eq(pthread_create(&th[k], NULL, client_main, &run[k]), 0);
  }
  for (int k = 0; k < CH_CLIENTS; k++)
    pthread_join(th[k], NULL);
  for (int k = 0; k < CH_CLIENTS; k++)
    for (int q = 0; q < 3; q++)
      ck_assert_msg(run[k].rc[q] == 0, "client %d query %d: %s", k, q, run[k].err);
  ch_stop(&c);
}
END_TEST

/* ---- peers down ------------------------------------------------------------------ */

/* P1 down: P0 logs that it cannot reach p1 once (not once per dial: it
 * dials with a back-off meanwhile), a client's open fails within a few
 * seconds naming p1 (not after the whole timeout), and P0 logs p1's return
 * once it is back. */
START_TEST(down_peer_named) {
  ch_cluster_t c;
  ch_start(&c, TIMEOUT_MS, 1, 1);
  size_t from = ch_mark(&c);
  ch_party_stop(&c, CL_P1);
  ck_assert(ch_wait_line(&c, from, "party p0", "cannot reach p1", 10000));
  size_t once = ch_mark(&c);
  cl_client_t cl;
  char err[512] = "";
  double t0 = cl_now();
  ck_assert_int_ne(cl_client_open(&cl, &c.cfg, CL_CLIENT0, err, sizeof err), 0);
  double took = cl_now() - t0;
  ck_assert_msg(strstr(err, "cannot reach p1") != NULL, "%s", err);
  ck_assert_msg(took < CL_DOWN_GRACE_MS / 1e3 + 3.0, "named after %.1f s", took);
  ck_assert(!ch_seen(&c, once, "cannot reach p1"));
  ch_party_start(&c, CL_P1);
  ck_assert(ch_wait_line(&c, from, "party p0", "p1 reachable again", 10000));
  ch_client_open(&c, 0, &cl);
  ch_query_ok(&c, &cl, 0, 2);
  cl_client_close(&cl);
  ch_stop(&c);
}
END_TEST

/* ---- the failed party named ----------------------------------------------------- */

/* Where P1 fails in the test: CL_FAULT_PARTY_BEFORE_QUERY (it "dies": the
 * service drops every link) or CL_FAULT_PARTY_ROUND (the hook drops P1's
 * links mid-step, at its first online round). Once. */
static atomic_int p1_fail_at;

static int p1_fails(ch_cluster_t *c, int who, cl_fault_t where, uint64_t seq, int peer) {
  (void)seq, (void)peer;
  if (who != CL_P1 || (int)where != atomic_load(&p1_fail_at))
    return 0;
  atomic_store(&p1_fail_at, 0);
  if (where == CL_FAULT_PARTY_BEFORE_QUERY)
    return 1;
  net_node_t *n = cl_party_node(c->party[CL_P1].party);
  for (int id = 0; id < NET_MAX_PEERS; id++)
    if (id != CL_P1 && net_peer_up(n, id))
      (void)net_peer_close(n, id);
  return 0;
}

/* P1 fails in a query, before it or mid-step, its links ended as when its
 * process is killed: the client's line names p1 first and its typed failure
 * is P1's (issue 12: the line named p0, which only saw P1's link end, and
 * st.fail_party was P0). Fails without the client's query_failure naming
 * the silent party. */
static void p1_fails_named(cl_fault_t where) {
  ch_cluster_t c;
  ch_start(&c, TIMEOUT_MS, 2, 1);
  atomic_store(&p1_fail_at, (int)where);
  c.fault = p1_fails;
  cl_client_t cl;
  ch_client_open(&c, 0, &cl);
  mpc_ftensor_t y;
  cl_query_stats_t st;
  char err[512] = "";
  ck_assert_int_ne(ch_query(&c, &cl, 0, 1, &y, &st, err, sizeof err), 0);
  ck_assert_int_eq(atomic_load(&p1_fail_at), 0); /* the fault did fire */
  ck_assert_msg(strncmp(err, "p1 ", 3) == 0 && strchr(err, '\n') == NULL, "%s", err);
  ck_assert_int_eq(st.fail_party, CL_P1);
  ck_assert_int_ne(st.fail_code, 0);
  cl_query_stats_close(&st);
  cl_client_close(&cl);
  c.fault = NULL;
  ch_stop(&c);
}

START_TEST(p1_dead_before_query_named) { p1_fails_named(CL_FAULT_PARTY_BEFORE_QUERY); }
END_TEST

START_TEST(p1_links_dropped_mid_step_named) { p1_fails_named(CL_FAULT_PARTY_ROUND); }
END_TEST

/* ---- the dealer's queue bound ----------------------------------------------------- */

static atomic_int hold_worker, worker_held;

static void nap_ms(long ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* The dealer's worker stops at client a's query (the parties told, its
 * preprocessing not sent) until the test lets it go: the FIFO fills behind. */
static int worker_pause(ch_cluster_t *c, int who, cl_fault_t where, uint64_t seq, int peer) {
  (void)c, (void)seq;
  if (who == CL_DEALER && where == CL_FAULT_DEALER_BEFORE_PREP && peer == CL_CLIENT0) {
    atomic_store(&worker_held, 1);
    while (atomic_load(&hold_worker))
      nap_ms(5);
  }
  return 0;
}

typedef struct {
  ch_cluster_t *c;
  int k;
  int rc;
  atomic_int done;
  char err[512];
} queued_t;

static void *queued_main(void *arg) {
  queued_t *q = arg;
  cl_client_t cl;
  ch_client_open(q->c, q->k, &cl);
  mpc_ftensor_t y;
  cl_query_stats_t st;
  q->rc = ch_query(q->c, &cl, (size_t)q->k, 1, &y, &st, q->err, sizeof q->err);
  if (q->rc == 0) {
    ch_check_output(q->c, (size_t)q->k, 1, &y);
    mpc_ftensor_close(&y);
  }
  cl_query_stats_close(&st);
  cl_client_close(&cl);
  atomic_store(&q->done, 1);
  return NULL;
}

/* queue_max = 1: while the worker is held at client a's query, clients b
 * and c ask; one waits in the FIFO, the other is refused at once, with the
 * reason (before the bound, it waited out its timeout, or with every key
 * querying at once 64 queries waited). Once the worker goes on, a's query
 * and the queued one are served, each answer right. Fails without the
 * bound: neither b nor c returns while a is held. */
START_TEST(queue_bound_refuses) {
  ch_opts_t o = {.cluster_lines = "queue_max = 1\n"};
  ch_cluster_t c;
  ch_start_opts(&c, TIMEOUT_MS, 1, 1, &o);
  atomic_store(&hold_worker, 1);
  atomic_store(&worker_held, 0);
  c.fault = worker_pause;
  queued_t q[3];
  pthread_t th[3];
  for (int k = 0; k < 3; k++) {
    memset(&q[k], 0, sizeof q[k]);
    q[k].c = &c;
    q[k].k = k;
  }
  ck_assert_int_eq(pthread_create(&th[0], NULL, queued_main, &q[0]), 0);
  double end = cl_now() + 10;
  while (!atomic_load(&worker_held) && cl_now() < end)
    nap_ms(5);
  ck_assert_msg(atomic_load(&worker_held), "client a's query did not reach the dealer");
  for (int k = 1; k < 3; k++)
    ck_assert_int_eq(pthread_create(&th[k], NULL, queued_main, &q[k]), 0);
  /* Neither can be served while the worker is held: the first back is the
   * refused one. */
  end = cl_now() + 10;
  while (!atomic_load(&q[1].done) && !atomic_load(&q[2].done) && cl_now() < end)
    nap_ms(5);
  int refused = atomic_load(&q[1].done) ? 1 : atomic_load(&q[2].done) ? 2 : 0;
  atomic_store(&hold_worker, 0);
  for (int k = 0; k < 3; k++)
    pthread_join(th[k], NULL);
  c.fault = NULL;
  ck_assert_msg(refused != 0, "no query was refused while the queue was full");
  ck_assert_int_eq(q[refused].rc, -EBUSY);
  ck_assert_msg(strstr(q[refused].err, "queue_max") != NULL, "%s", q[refused].err);
  ck_assert_msg(q[0].rc == 0, "client a: %s", q[0].err);
  ck_assert_msg(q[3 - refused].rc == 0, "the queued query: %s", q[3 - refused].err);
  ch_stop(&c);
}
END_TEST

/* ---- a model replaced under queries in flight ----------------------------------- */

static atomic_int round_hold, round_held;

/* P0 stops at its first online round of client a's query while round_hold
 * is set: the query is in flight (its preprocessing at both parties). */
static int p0_round_pause(ch_cluster_t *c, int who, cl_fault_t where, uint64_t seq, int peer) {
  (void)c, (void)seq;
  if (who == CL_P0 && where == CL_FAULT_PARTY_ROUND && peer == CL_CLIENT0 &&
      atomic_load(&round_hold)) {
    atomic_store(&round_held, 1);
    while (atomic_load(&round_hold))
      nap_ms(5);
  }
  return 0;
}

typedef struct {
  ch_cluster_t *c;
  cl_client_t *cl;
  const mpc_ftensor_t *x;
  const mpc_graph_t *g;
  const mpc_weights_t *w;
  mpc_ftensor_t y;
  int rc;
  char err[512];
} bg_t;

static void *bg_query(void *arg) {
  bg_t *b = arg;
  cl_query_stats_t st;
  b->rc = cl_client_query(b->cl, "mlp", b->x, 1, &b->y, 1, &st, b->err, sizeof b->err);
  cl_query_stats_close(&st);
  return NULL;
}

static void *bg_share(void *arg) {
  bg_t *b = arg;
  cl_client_t owner;
  b->rc = cl_client_open(&owner, &b->c->cfg, CL_OWNER, b->err, sizeof b->err);
  if (b->rc == 0) {
    b->rc = cl_client_share_graph(&owner, b->g, b->w, "mlp", CL_SHARE_REPLACE, b->err,
                                  sizeof b->err);
    cl_client_close(&owner);
  }
  return NULL;
}

/* The largest difference of two outputs of the same shape. */
static double max_diff(const mpc_ftensor_t *a, const mpc_ftensor_t *b) {
  ck_assert_uint_eq(mpc_shape_numel(&a->shape), mpc_shape_numel(&b->shape));
  double m = 0;
  for (size_t i = 0; i < mpc_shape_numel(&a->shape); i++)
    m = fmax(m, fabs(a->data[i] - b->data[i]));
  return m;
}

/* share-model --replace while a query is in flight (held at P0's first
 * online round until the dealer has sent the new model's setup): the query
 * finishes on the old model (its answer is the old weights' plaintext), and
 * the next query uses the new one (its answer is the new weights'; they
 * differ from the old by far more than the fixed-point error). */
START_TEST(replace_under_query_in_flight) {
  ch_cluster_t c;
  ch_start(&c, TIMEOUT_MS, 1, 1);
  char path[600], err[512] = "";
  snprintf(path, sizeof path, "%s/models/fashion_mlp.onnx", TANDEM_SRC_DIR);
  mpc_graph_t g;
  mpc_weights_t w;
  ck_assert_msg(mpc_onnx_load(path, &g, &w, err, sizeof err) == 0, "%s", err);
  mpc_ftensor_t x = c.images, ref_old, ref_new;
  x.shape.dim[0] = 2;
  ck_assert_int_eq(mpc_eval_float(&g, &w, &x, &ref_old), 0);
  /* The new model: every weight and bias halved. */
  for (size_t i = 0; i < g.nnodes; i++)
    for (size_t k = 0; w.param[i].data != NULL && k < mpc_shape_numel(&w.param[i].shape); k++)
      w.param[i].data[k] *= 0.5;
  ck_assert_int_eq(mpc_eval_float(&g, &w, &x, &ref_new), 0);
  ck_assert_double_gt(max_diff(&ref_old, &ref_new), 1.0);
  cl_client_t cl;
  ch_client_open(&c, 0, &cl);
  atomic_store(&round_hold, 1);
  atomic_store(&round_held, 0);
  c.fault = p0_round_pause;
  bg_t q = {.c = &c, .cl = &cl, .x = &x}, sh = {.c = &c, .g = &g, .w = &w};
  pthread_t tq, ts;
  ck_assert_int_eq(pthread_create(&tq, NULL, bg_query, &q), 0);
  double end = cl_now() + 10;
  while (!atomic_load(&round_held) && cl_now() < end)
    nap_ms(5);
  int held = atomic_load(&round_held);
  size_t from = ch_mark(&c);
  if (held)
    ck_assert_int_eq(pthread_create(&ts, NULL, bg_share, &sh), 0);
  int sent = held && ch_wait_line(&c, from, "dealer", "model mlp: setup sent to the parties",
                                  10000);
  atomic_store(&round_hold, 0);
  pthread_join(tq, NULL);
  if (held)
    pthread_join(ts, NULL);
  c.fault = NULL;
  ck_assert_msg(held, "the query did not reach its online phase");
  ck_assert_msg(sent, "the dealer did not send the new model's setup during the query");
  ck_assert_msg(q.rc == 0, "the query in flight: %s", q.err);
  ck_assert_msg(sh.rc == 0, "the replacement: %s", sh.err);
  ck_assert_msg(max_diff(&q.y, &ref_old) < 0.05, "the query in flight was not answered by "
                "the old model (off by %g)", max_diff(&q.y, &ref_old));
  mpc_ftensor_close(&q.y);
  cl_query_stats_t st;
  q.rc = cl_client_query(&cl, "mlp", &x, 1, &q.y, 1, &st, q.err, sizeof q.err);
  cl_query_stats_close(&st);
  ck_assert_msg(q.rc == 0, "the next query: %s", q.err);
  ck_assert_msg(max_diff(&q.y, &ref_new) < 0.05, "the next query was not answered by the "
                "new model (off by %g)", max_diff(&q.y, &ref_new));
  mpc_ftensor_close(&q.y);
  mpc_ftensor_close(&ref_old);
  mpc_ftensor_close(&ref_new);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  cl_client_close(&cl);
  ch_stop(&c);
}
END_TEST

Suite *cluster_deploy_suite(void) {
  Suite *s = suite_create("cluster_deploy");
  TCase *tc = tcase_create("deploy");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, pool_mem_budget);
  tcase_add_test(tc, party_frees_large_plans);
  tcase_add_test(tc, inputs_checked_before_request);
  tcase_add_test(tc, clients_side_by_side);
  tcase_add_test(tc, down_peer_named);
  tcase_add_test(tc, p1_dead_before_query_named);
  tcase_add_test(tc, p1_links_dropped_mid_step_named);
  tcase_add_test(tc, queue_bound_refuses);
  tcase_add_test(tc, replace_under_query_in_flight);
  suite_add_tcase(s, tc);
  return s;
}
