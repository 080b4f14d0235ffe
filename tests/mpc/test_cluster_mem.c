/* test_cluster_mem.c - Check suite for the cluster services over net's
 * in-memory backend (cluster_harness.h's ch_opts_t.mem, net/src/mem.c): the
 * cases of test_cluster_faults.c where sockets are not the point, run again
 * with every service and client linked in memory (test_cluster_svc.c runs
 * its own cases both ways):
 * - every client at once, each output checked against the float evaluator
 *   on its own rows (shares of two queries mixed, or an output handed to the
 *   wrong client, would not match);
 * - the dealer's pool: the first query of a batch size waits for its
 *   preprocessing, the next ones do not;
 * - a client gone at the dealer's pause: both parties end the query by the
 *   dealer's cancel, keep their dealer link, and the next client is served;
 * - a party dying mid-step and restarting on the same address: a new link
 *   replaces the old one at its peers, and the next queries are served.
 * Waits are for log lines (events), bounded below the timeout. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_harness.h"

#define TIMEOUT_MS 10000

static void start_mem(ch_cluster_t *c) {
  ch_opts_t o = {.mem = 1};
  ch_start_opts(c, TIMEOUT_MS, 2, 1, &o);
}

typedef struct {
  ch_cluster_t *c;
  int k;
  size_t r0, n;
  mpc_ftensor_t y;
  char err[512];
  int rc;
} many_t;

static void *many_main(void *arg) {
  many_t *m = arg;
  cl_client_t cl;
  cl_query_stats_t st;
  ch_client_open(m->c, m->k, &cl);
  m->rc = ch_query(m->c, &cl, m->r0, m->n, &m->y, &st, m->err, sizeof m->err);
  cl_query_stats_close(&st);
  cl_client_close(&cl);
  return NULL;
}

START_TEST(clients_at_once_mem) {
  ch_cluster_t c;
  start_mem(&c);
  static const size_t rows[CH_CLIENTS][2] = {{0, 5}, {5, 11}, {9, 7}};
  many_t m[CH_CLIENTS];
  pthread_t th[CH_CLIENTS];
  for (int k = 0; k < CH_CLIENTS; k++) {
    m[k] = (many_t){.c = &c, .k = k, .r0 = rows[k][0], .n = rows[k][1]};
    ck_assert_int_eq(pthread_create(&th[k], NULL, many_main, &m[k]), 0);
  }
  for (int k = 0; k < CH_CLIENTS; k++)
    pthread_join(th[k], NULL);
  for (int k = 0; k < CH_CLIENTS; k++) {
    ck_assert_msg(m[k].rc == 0, "client %d: %s", k, m[k].err);
    ch_check_output(&c, m[k].r0, m[k].n, &m[k].y);
    mpc_ftensor_close(&m[k].y);
  }
  ch_stop(&c);
}
END_TEST

START_TEST(pool_first_query_waits_mem) {
  ch_cluster_t c;
  start_mem(&c);
  cl_client_t ca, cb;
  ch_client_open(&c, 0, &ca);
  ch_client_open(&c, 1, &cb);
  size_t from = ch_mark(&c);
  mpc_ftensor_t y;
  cl_query_stats_t st;
  char err[512] = "";
  ck_assert_msg(ch_query(&c, &ca, 3, 12, &y, &st, err, sizeof err) == 0, "%s", err);
  ck_assert_msg(st.waited, "the first query of batch 12 did not wait for its preprocessing");
  mpc_ftensor_close(&y);
  cl_query_stats_close(&st);
  ck_assert(ch_wait_line(&c, from, "dealer", "mlp at batch 12: 2 queries prepared ahead",
                         3 * TIMEOUT_MS));
  for (int k = 0; k < 2; k++) {
    ck_assert_msg(ch_query(&c, k ? &cb : &ca, 3, 12, &y, &st, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_msg(!st.waited, "query %d of batch 12 waited with the pool prepared", k + 2);
    ch_check_output(&c, 3, 12, &y);
    mpc_ftensor_close(&y);
    cl_query_stats_close(&st);
  }
  cl_client_close(&cb);
  cl_client_close(&ca);
  ch_stop(&c);
}
END_TEST

/* At the dealer's pause point for client b: its link to the client ends, as
 * when the client dies there. */
static int gone_at_pause(ch_cluster_t *c, int who, cl_fault_t where, uint64_t seq, int peer) {
  (void)seq;
  if (who == CL_DEALER && where == CL_FAULT_DEALER_BEFORE_PREP && peer == CL_CLIENT0 + 1) {
    net_node_t *n = cl_dealer_node(c->dealer);
    if (net_peer_up(n, peer))
      (void)net_peer_close(n, peer);
  }
  return 0;
}

START_TEST(cancel_when_client_gone_mem) {
  ch_cluster_t c;
  start_mem(&c);
  c.fault = gone_at_pause;
  cl_client_t cb;
  ch_client_open(&c, 1, &cb);
  size_t from = ch_mark(&c);
  mpc_ftensor_t y;
  cl_query_stats_t st;
  char err[512] = "";
  double t0 = cl_now();
  ck_assert_int_ne(ch_query(&c, &cb, 0, 1, &y, &st, err, sizeof err), 0);
  const char *cancelled = "client 9): offline phase failed: cancelled by the dealer or the other party";
  ck_assert_msg(ch_wait_line(&c, from, "party p0", cancelled, TIMEOUT_MS / 3) &&
                    ch_wait_line(&c, from, "party p1", cancelled, TIMEOUT_MS / 3),
                "the parties did not end the query by the cancel.");
  ck_assert_msg(cl_now() - t0 < TIMEOUT_MS / 1000.0 / 2, "the cancel took %.1f s",
                cl_now() - t0);
  cl_query_stats_close(&st);
  cl_client_close(&cb);
  ck_assert_msg(!ch_seen(&c, from, "closing link to peer 2") &&
                    !ch_seen(&c, from, "link to peer 2 ended"),
                "a party dropped its dealer link.");
  c.fault = NULL;
  cl_client_t ca;
  ch_client_open(&c, 0, &ca);
  ck_assert_msg(ch_query(&c, &ca, 1, 1, &y, &st, err, sizeof err) == 0, "%s", err);
  mpc_ftensor_close(&y);
  cl_query_stats_close(&st);
  cl_client_close(&ca);
  ch_stop(&c);
}
END_TEST

static atomic_int die_once;

static int p1_dies(ch_cluster_t *c, int who, cl_fault_t where, uint64_t seq, int peer) {
  (void)c, (void)seq, (void)peer;
  if (who == CL_P1 && where == CL_FAULT_PARTY_BEFORE_QUERY && atomic_exchange(&die_once, 0))
    return 1;
  return 0;
}

START_TEST(party_dies_mid_step_mem) {
  ch_cluster_t c;
  start_mem(&c);
  atomic_store(&die_once, 1);
  c.fault = p1_dies;
  cl_client_t ca;
  ch_client_open(&c, 0, &ca);
  size_t from = ch_mark(&c);
  mpc_ftensor_t y;
  cl_query_stats_t st;
  char err[512] = "";
  ck_assert_int_ne(ch_query(&c, &ca, 0, 1, &y, &st, err, sizeof err), 0);
  ck_assert(ch_seen(&c, from, "this party dies"));
  cl_query_stats_close(&st);
  /* P1 restarts on the same memory address: a new node, a new link. */
  ch_party_stop(&c, CL_P1);
  ch_party_start(&c, CL_P1);
  for (int k = 1; k < 3; k++) {
    cl_client_t cl;
    ch_client_open(&c, k, &cl);
    int rc = ch_query(&c, &cl, (size_t)k, 2, &y, &st, err, sizeof err);
    ck_assert_msg(rc == 0, "query %d after the restart: %s", k, err);
    ch_check_output(&c, (size_t)k, 2, &y);
    mpc_ftensor_close(&y);
    cl_query_stats_close(&st);
    cl_client_close(&cl);
  }
  cl_client_close(&ca);
  ch_stop(&c);
}
END_TEST

#define ADD_CASE(s, t)                                                                    \
  do {                                                                                    \
    TCase *tc_ = tcase_create(#t);                                                        \
    tcase_set_timeout(tc_, 300);                                                          \
    tcase_add_test(tc_, t);                                                               \
    suite_add_tcase(s, tc_);                                                              \
  } while (0)

Suite *cluster_mem_suite(void) {
  Suite *s = suite_create("cluster_mem");
  ADD_CASE(s, clients_at_once_mem);
  ADD_CASE(s, pool_first_query_waits_mem);
  ADD_CASE(s, cancel_when_client_gone_mem);
  ADD_CASE(s, party_dies_mid_step_mem);
  return s;
}
