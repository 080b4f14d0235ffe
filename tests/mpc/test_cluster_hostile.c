/* test_cluster_hostile.c - Check suite for the dealer's and the parties'
 * side of issue 15 (hostile clients and owners) in one process
 * (cluster_harness.h, real loopback sockets): an authenticated client or
 * owner that misbehaves through the control protocol, and what the cluster
 * does about it.
 * - size checks before work: a batch whose preprocessing exceeds max_msg is
 *   refused with the reason before any plan is compiled or pool made (the
 *   sizes are linear in the batch, computed once per model); a graph whose
 *   plan would exceed plan_mem_max is refused before it is compiled, by the
 *   dealer and by the parties; the dealer compiles plans without its lock;
 * - a failed query whose client never connected to the parties leaves
 *   nothing on the parties' dealer links;
 * - one outstanding query per client key, and back-off for a key whose
 *   queries keep failing;
 * - cached plan objects keep no query's keys or masks between queries. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cluster_harness.h"
#include "cluster_int.h"
#include "mpc_int.h"

#define TIMEOUT_MS 10000

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
  nanosleep(&ts, NULL);
}

static long peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

/* Sends a raw REQ of model `name` at `batch` from client cl (nonce) and
 * takes the dealer's REPLY into *h (its payload freed). */
static int raw_req(cl_client_t *cl, const char *name, uint64_t batch, uint64_t nonce,
                   cl_ctrl_t *h, char *why, size_t whylen) {
  memset(h, 0, sizeof *h);
  h->type = CL_MSG_REQ;
  h->batch = batch;
  h->version = nonce;
  snprintf(h->name, sizeof h->name, "%s", name);
  int rc = cl_ctrl_send(cl->node, CL_DEALER, h, NULL, 0);
  if (rc != 0)
    return rc;
  uint8_t *payload = NULL;
  size_t plen = 0;
  rc = cl_ctrl_recv(cl->node, CL_DEALER, h, &payload, &plen, 3 * TIMEOUT_MS);
  if (why != NULL)
    snprintf(why, whylen, "%s", rc == 0 && h->status != 0 && payload ? (char *)payload : "");
  free(payload);
  return rc;
}

/* ---- size checks before work ------------------------------------------------------ */

/* A query's preprocessing bytes are linear in the batch: the dealer's
 * estimate from batches 1 and 2 is exact at other batch sizes. */
START_TEST(prep_bytes_linear) {
  static const char *const models[2] = {"fashion_mlp.onnx", "fashion_cnn.onnx"};
  static const mpc_role_t roles[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
  for (int k = 0; k < 2; k++) {
    char path[600], err[512] = "";
    snprintf(path, sizeof path, "%s/models/%s", TANDEM_SRC_DIR, models[k]);
    cl_model_t m;
    memset(&m, 0, sizeof m);
    mpc_weights_t w;
    ck_assert_msg(mpc_onnx_load(path, &m.graph, &w, err, sizeof err) == 0, "%s", err);
    cl_store_t s;
    memset(&s, 0, sizeof s);
    s.role = MPC_DEALER;
    static const size_t batches[4] = {1, 3, 7, 16};
    for (int i = 0; i < 4; i++) {
      size_t est[3];
      ck_assert_int_eq(cl_model_prep_bytes(&s, &m, batches[i], est, err, sizeof err), 0);
      mpc_plan_t *p;
      ck_assert_int_eq(mpc_plan_new(&p, &m.graph, batches[i], err, sizeof err), 0);
      for (int r = 0; r < 3; r++)
        ck_assert_msg(est[r] == mpc_plan_prep_bytes(p, roles[r]), "%s batch %zu role %d: %zu vs %zu",
                      models[k], batches[i], r, est[r], mpc_plan_prep_bytes(p, roles[r]));
      mpc_plan_free(p);
    }
    mpc_weights_close(&w);
    mpc_graph_close(&m.graph);
  }
}
END_TEST

/* A client asks for a batch whose preprocessing is over max_msg (here 4 MB,
 * standing for the 1 GiB default that CNN batches of 20000 exceed): refused
 * with the reason at once, and the dealer neither made a pool for it nor
 * compiled its plan (before, both happened first: batches of 20000 left
 * the dealer at 7 GB). A batch over the plan memory budget is refused so
 * too. */
START_TEST(big_batch_refused_before_work) {
  ch_cluster_t c;
  ch_opts_t o;
  memset(&o, 0, sizeof o);
  o.cluster_lines = "max_msg = 4000000\n";
  ch_start_opts(&c, TIMEOUT_MS, 1, 1, &o);
  cl_client_t cl;
  ch_client_open(&c, 0, &cl);
  size_t from = ch_mark(&c);
  cl_ctrl_t h;
  char why[512] = "";
  ck_assert_int_eq(raw_req(&cl, "mlp", CL_MAX_BATCH, 2, &h, why, sizeof why), 0);
  ck_assert_msg(h.status == TANDEM_ENOMEM && strstr(why, "plan_mem_max") != NULL, "%s", why);
  ck_assert_int_eq(raw_req(&cl, "mlp", 2000, 1, &h, why, sizeof why), 0);
  ck_assert_int_ne(h.status, 0);
  ck_assert_msg(strstr(why, "over max_msg") != NULL && strstr(why, "rows per query") != NULL,
                "%s", why);
  ck_assert(ch_wait_line(&c, from, "dealer", "query from client 8 refused", TIMEOUT_MS));
  ck_assert_msg(!ch_seen(&c, from, "waiting for it") && !ch_seen(&c, from, "cannot prepare"),
                "a pool or a plan was made for a refused batch:\n%s", c.log + from);
  /* The client is still served at a batch that fits. */
  ch_query_ok(&c, &cl, 0, 2);
  cl_client_close(&cl);
  ch_stop(&c);
}
END_TEST

/* A graph of two Transposes of n x n (one input, 1 x n x n), saved. */
static void transposes(size_t n, uint8_t **gb, size_t *glen) {
  mpc_graph_t g;
  mpc_graph_init(&g);
  size_t dim[3] = {1, n, n};
  int x = mpc_graph_input(&g, "x", 3, dim);
  ck_assert_int_ge(x, 0);
  mpc_attr_t at;
  memset(&at, 0, sizeof at);
  at.perm[0] = 0;
  at.perm[1] = 2;
  at.perm[2] = 1;
  int t1 = mpc_graph_op(&g, MPC_OP_TRANSPOSE, x, -1, -1, &at, "t1");
  ck_assert_int_ge(t1, 0);
  int t2 = mpc_graph_op(&g, MPC_OP_TRANSPOSE, t1, -1, -1, &at, "t2");
  ck_assert_int_ge(t2, 0);
  ck_assert_int_ge(mpc_graph_op(&g, MPC_OP_OUTPUT, t2, -1, -1, NULL, "y"), 0);
  ck_assert_int_eq(mpc_graph_save(&g, gb, glen), 0);
  mpc_graph_close(&g);
}

/* The owner sends graph gb as model `name`: the dealer's REPLY, then (if it
 * accepted) both parties' ACKs. Returns the first refusal's status, its
 * text in why. */
static int raw_share(ch_cluster_t *c, const char *name, const uint8_t *gb, size_t glen,
                     char *why, size_t whylen) {
  cl_client_t owner;
  char err[512] = "";
  ck_assert_msg(cl_client_open(&owner, &c->cfg, CL_OWNER, err, sizeof err) == 0, "%s", err);
  cl_ctrl_t h;
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_SHARE;
  snprintf(h.name, sizeof h.name, "%s", name);
  ck_assert_int_eq(cl_ctrl_send(owner.node, CL_DEALER, &h, gb, glen), 0);
  static const int peers[3] = {CL_DEALER, CL_P0, CL_P1};
  int status = 0;
  for (int k = 0; k < 3 && status == 0; k++) {
    uint8_t *payload = NULL;
    size_t plen = 0;
    ck_assert_int_eq(cl_ctrl_recv(owner.node, peers[k], &h, &payload, &plen, 3 * TIMEOUT_MS), 0);
    status = h.status;
    if (status != 0)
      snprintf(why, whylen, "%s: %s", c->cfg.m[peers[k]].name, payload ? (char *)payload : "");
    free(payload);
  }
  cl_client_close(&owner);
  return status;
}

/* The 1.1 KB graph of issue 15 (two Transposes of 1x8192x8192, whose plan
 * took 515 MB): refused by the dealer before compiling (this process's peak
 * memory barely moves). */
START_TEST(huge_graph_refused_by_dealer) {
  ch_cluster_t c;
  ch_start(&c, TIMEOUT_MS, 1, 0);
  uint8_t *gb;
  size_t glen;
  transposes(8192, &gb, &glen);
  ck_assert_uint_lt(glen, 4096);
  long rss0 = peak_rss_mb();
  char why[512] = "";
  ck_assert_int_eq(raw_share(&c, "big", gb, glen, why, sizeof why), TANDEM_ENOMEM);
  ck_assert_msg(strstr(why, "dealer: ") == why && strstr(why, "plan_mem_max") != NULL, "%s",
                why);
  ck_assert_msg(peak_rss_mb() - rss0 < 200, "peak memory grew by %ld MB", peak_rss_mb() - rss0);
  free(gb);
  ch_stop(&c);
}
END_TEST

/* The same at the parties, whose budget is their own: a dealer with room
 * for the graph tells them, and each refuses it before compiling. */
START_TEST(huge_graph_refused_by_parties) {
  ch_cluster_t c;
  ch_opts_t o;
  memset(&o, 0, sizeof o);
  o.plan_mem_max[CL_P0] = o.plan_mem_max[CL_P1] = (size_t)64 << 20;
  o.plan_mem_max[CL_DEALER] = (size_t)1 << 30;
  ch_start_opts(&c, TIMEOUT_MS, 1, 0, &o);
  uint8_t *gb;
  size_t glen;
  transposes(1024, &gb, &glen); /* about 200 MB by the estimate */
  char why[512] = "";
  ck_assert_int_eq(raw_share(&c, "big", gb, glen, why, sizeof why), TANDEM_ENOMEM);
  ck_assert_msg((strncmp(why, "p0: ", 4) == 0 || strncmp(why, "p1: ", 4) == 0) &&
                    strstr(why, "plan_mem_max") != NULL,
                "%s", why);
  free(gb);
  ch_stop(&c);
}
END_TEST

/* The dealer compiles a plan without its lock: while a generator compiles
 * the plan of a new batch size (held here by the fault hook, as a large plan
 * takes seconds), the dealer goes on: client a, who asked for that batch,
 * leaves, and client b's query of a batch whose preprocessing is ready is
 * served before the compilation ends. Under the lock, the worker waited for
 * the compilation to notice a had left, and b's query timed out. */
static atomic_int compile_held, release_compile;

static int hold_compile(ch_cluster_t *c, int who, cl_fault_t where, uint64_t batch, int peer) {
  (void)c, (void)peer;
  if (who == CL_DEALER && where == CL_FAULT_DEALER_COMPILE && batch == 5) {
    atomic_store(&compile_held, 1);
    while (!atomic_load(&release_compile))
      nap_ms(5);
  }
  return 0;
}

START_TEST(compile_outside_lock) {
  ch_cluster_t c;
  ch_start(&c, TIMEOUT_MS, 1, 1);
  atomic_store(&compile_held, 0);
  atomic_store(&release_compile, 0);
  c.fault = hold_compile;
  cl_client_t ca, cb;
  ch_client_open(&c, 0, &ca);
  ch_client_open(&c, 1, &cb);
  cl_ctrl_t h;
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_REQ;
  h.batch = 5;
  h.version = 7;
  snprintf(h.name, sizeof h.name, "mlp");
  ck_assert_int_eq(cl_ctrl_send(ca.node, CL_DEALER, &h, NULL, 0), 0);
  for (int i = 0; i < 1000 && !atomic_load(&compile_held); i++)
    nap_ms(10);
  ck_assert(atomic_load(&compile_held));
  cl_client_close(&ca);
  mpc_ftensor_t y;
  cl_query_stats_t st;
  char err[512] = "";
  int rc = ch_query(&c, &cb, 0, 1, &y, &st, err, sizeof err);
  int still_held = !atomic_load(&release_compile);
  atomic_store(&release_compile, 1);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert(still_held);
  mpc_ftensor_close(&y);
  cl_query_stats_close(&st);
  c.fault = NULL;
  cl_client_close(&cb);
  ch_stop(&c);
}
END_TEST

/* ---- a client that never connects to the parties ------------------------------------ */

/* Client a asks, takes its reply and its part from the dealer, and never
 * connects to P0 or P1. Each party gives the query up at its timeout and
 * leaves nothing of it on its dealer link (the dealer's part of a CNN query
 * is hundreds of MB; left unread, a later client's query failed on it
 * once); the next client is served. */
START_TEST(client_never_connected) {
  ch_cluster_t c;
  ch_start(&c, TIMEOUT_MS / 2, 1, 1);
  net_node_t *node;
  char err[512] = "";
  ck_assert_msg(cl_node_open(&c.cfg, CL_CLIENT0, 0, &node, NULL, NULL, err, sizeof err) == 0,
                "%s", err);
  ck_assert_int_eq(cl_connect(node, CL_DEALER, TIMEOUT_MS), 0);
  size_t from = ch_mark(&c);
  cl_ctrl_t h;
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_REQ;
  h.batch = 1;
  h.version = 3;
  snprintf(h.name, sizeof h.name, "mlp");
  ck_assert_int_eq(cl_ctrl_send(node, CL_DEALER, &h, NULL, 0), 0);
  uint8_t *payload = NULL;
  size_t plen = 0;
  ck_assert_int_eq(cl_ctrl_recv(node, CL_DEALER, &h, &payload, &plen, TIMEOUT_MS), 0);
  free(payload);
  ck_assert_int_eq(h.status, 0);
  for (int id = 0; id < 2; id++) {
    const char *who = id == 0 ? "party p0" : "party p1";
    ck_assert(ch_wait_line(&c, from, who, "client 8): the client did not connect", 3 * TIMEOUT_MS));
    /* Nothing of the query is queued on the party's dealer link. */
    unsigned char *b = NULL;
    size_t len = 0;
    int rc = net_msg_take_on(cl_party_node(c.party[id].party), CL_DEALER, 0, CL_CHAN_DATA,
                             SIZE_MAX, &b, &len, 0);
    free(b);
    ck_assert_msg(rc != 0, "%s: a %zu-byte message of the failed query was left on its dealer link",
                  who, len);
  }
  ck_assert_msg(!ch_seen(&c, from, "closing the dealer link"), "%s", c.log + from);
  net_node_free(node);
  cl_client_t cb;
  ch_client_open(&c, 1, &cb);
  mpc_ftensor_t y;
  cl_query_stats_t st;
  ck_assert_msg(ch_query(&c, &cb, 0, 1, &y, &st, err, sizeof err) == 0, "%s", err);
  mpc_ftensor_close(&y);
  cl_query_stats_close(&st);
  cl_client_close(&cb);
  ch_stop(&c);
}
END_TEST

/* ---- no query's secrets in cached plans ------------------------------------------------ */

static int all_zero(const void *p, size_t n) {
  const unsigned char *b = p;
  unsigned char acc = 0;
  for (size_t i = 0; i < n; i++)
    acc |= b[i];
  return acc == 0;
}

/* After a query, the cached plan objects of both parties and the dealer
 * hold none of its keys, masks or shares (they held the last query's until
 * the next query of that batch size overwrote them); the next query is
 * still right. */
START_TEST(cached_plans_wiped) {
  ch_cluster_t c;
  ch_start(&c, TIMEOUT_MS, 1, 1);
  cl_client_t cl;
  ch_client_open(&c, 0, &cl);
  ch_query_ok(&c, &cl, 4, 2);
  /* The parties' objects now (each wipes before it reports the query's end),
   * the dealer's once its generators stopped (one may be refilling). */
  for (int who = 0; who < 3; who++) {
    if (who == CL_DEALER) {
      /* The wiped objects serve the next query right. */
      mpc_ftensor_t y;
      cl_query_stats_t st;
      char err[512] = "";
      ck_assert_msg(ch_query(&c, &cl, 6, 2, &y, &st, err, sizeof err) == 0, "%s", err);
      ch_check_output(&c, 6, 2, &y);
      mpc_ftensor_close(&y);
      cl_query_stats_close(&st);
      cl_dealer_stop(c.dealer);
    }
    cl_store_t *s = who == CL_DEALER ? cl__dealer_store(c.dealer) : cl__party_store(c.party[who].party);
    cl_model_t *m = NULL;
    for (cl_model_t *q = s->models; q != NULL; q = q->next_model)
      if (strcmp(q->name, "mlp") == 0)
        m = q;
    ck_assert_ptr_nonnull(m);
    cl_plan_t *pl = cl_model_plan_find(m, 2);
    ck_assert_ptr_nonnull(pl);
    const mpc_plan_t *p = pl->plan;
    if (who == CL_DEALER) {
      for (size_t v = 0; v < p->nvals; v++)
        if (p->vals[v].kind == MPC__V_MASKED)
          ck_assert_msg(all_zero(mpc__dealer_mask(pl->obj, (int)v), p->vals[v].n * 8),
                        "dealer: the mask of value %zu kept", v);
      continue;
    }
    mpc_party_t *pt = pl->obj;
    ck_assert_msg(all_zero(pt->prepbuf, pt->prepbytes), "p%d: the dealer's message kept", who);
    for (size_t v = 0; v < p->nvals; v++)
      if (p->vals[v].kind == MPC__V_MASKED)
        ck_assert_msg(all_zero(pt->slot[v].msh, p->vals[v].n * 8) &&
                          all_zero(pt->slot[v].pub, p->vals[v].n * 8),
                      "p%d: value %zu kept", who, v);
    for (size_t i = 0; i < p->ngates; i++)
      ck_assert_msg(pt->gs[i].pre == NULL || all_zero(pt->gs[i].pre, pt->gs[i].npre * 8),
                    "p%d: gate %zu's offsets kept", who, i);
  }
  cl_client_close(&cl);
  ch_stop(&c);
}
END_TEST

/* ---- one query per client key; back-off ------------------------------------------------ */

/* Client a asks, takes its reply and never sends its input (the parties
 * hold the query until their timeout), then asks again at once. The
 * second request is not served while the first query runs at the parties:
 * its reply comes only once both parties ended the first (then it may be a
 * refusal naming the query still running). Before, the dealer accepted it
 * at once and queued a second stalled query behind the first. */
START_TEST(one_query_per_key) {
  ch_cluster_t c;
  ch_start(&c, TIMEOUT_MS / 2, 1, 1);
  cl_client_t ca;
  ch_client_open(&c, 0, &ca);
  size_t from = ch_mark(&c);
  cl_ctrl_t h;
  char why[512] = "";
  ck_assert_int_eq(raw_req(&ca, "mlp", 1, 11, &h, why, sizeof why), 0);
  ck_assert_int_eq(h.status, 0);
  ck_assert_int_eq(raw_req(&ca, "mlp", 1, 12, &h, why, sizeof why), 0);
  int first_done = ch_seen(&c, from, "client 8): online phase failed");
  ck_assert_msg(first_done || (h.status != 0 && strstr(why, "one query at a time") != NULL),
                "the second query was accepted while the first ran (status %d: %s)", h.status,
                why);
  if (h.status != 0)
    ck_assert_msg(strstr(why, "one query at a time") != NULL, "%s", why);
  cl_client_close(&ca);
  /* Another client is served. */
  cl_client_t cb;
  ch_client_open(&c, 1, &cb);
  ch_query_ok(&c, &cb, 0, 1);
  cl_client_close(&cb);
  ch_stop(&c);
}
END_TEST

/* A client key whose queries fail three times in a row (here refused: batch
 * 0) has its next requests refused for a while, with the reason, on the
 * dealer's clock; another key is served meanwhile; once the back-off is
 * over (the fake clock jumps), the key is served again. */
START_TEST(backoff_failing_key) {
  ch_cluster_t c;
  ch_start(&c, TIMEOUT_MS, 1, 1);
  cl_client_t ca, cb;
  ch_client_open(&c, 0, &ca);
  ch_client_open(&c, 1, &cb);
  cl_ctrl_t h;
  char why[512] = "";
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(raw_req(&ca, "mlp", 0, 20 + (uint64_t)i, &h, why, sizeof why), 0);
    ck_assert_msg(h.status != 0 && strstr(why, "outside") != NULL, "%s", why);
  }
  ck_assert_int_eq(raw_req(&ca, "mlp", 1, 30, &h, why, sizeof why), 0);
  ck_assert_msg(h.status != 0 && strstr(why, "back-off") != NULL,
                "a failing key was served at once (status %d: %s)", h.status, why);
  ch_query_ok(&c, &cb, 0, 1);
  atomic_store(&c.offset_us, 5LL * 1000 * 1000);
  ch_query_ok(&c, &ca, 1, 1);
  cl_client_close(&cb);
  cl_client_close(&ca);
  ch_stop(&c);
}
END_TEST

Suite *cluster_hostile_suite(void) {
  Suite *s = suite_create("cluster_hostile");
  TCase *tc = tcase_create("hostile");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, prep_bytes_linear);
  tcase_add_test(tc, big_batch_refused_before_work);
  tcase_add_test(tc, huge_graph_refused_by_dealer);
  tcase_add_test(tc, huge_graph_refused_by_parties);
  tcase_add_test(tc, compile_outside_lock);
  tcase_add_test(tc, client_never_connected);
  tcase_add_test(tc, cached_plans_wiped);
  tcase_add_test(tc, one_query_per_key);
  tcase_add_test(tc, backoff_failing_key);
  suite_add_tcase(s, tc);
  return s;
}
