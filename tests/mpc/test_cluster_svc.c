/* test_cluster_svc.c - Check suite for the cluster services (mpc_cluster.h)
 * in one process: a dealer, two parties and clients over real loopback
 * sockets (cluster_harness.h), and each case again over net's in-memory
 * backend (the *_mem cases). A query's output against the float
 * evaluator, bit for bit the same on a second query; two clusters (two
 * dealers) in one process; the control and stats codec at its fixed
 * little-endian offsets; and the dealer's clock hook: a query whose
 * preprocessing is still being made when its deadline passes is refused
 * with the reason. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_harness.h"

#define TIMEOUT_MS 20000

/* A cluster sharing "mlp", over loopback sockets or (mem) net's in-memory
 * backend: each service case runs both ways (the *_mem cases). */
static void start(ch_cluster_t *c, unsigned pool, int mem) {
  ch_opts_t o = {.mem = mem};
  ch_start_opts(c, TIMEOUT_MS, pool, 1, &o);
}

/* A query's output matches the float evaluator, twice (fresh
 * preprocessing each time), with the MLP's 4 online rounds. */
static void query_matches_float_run(int mem) {
  ch_cluster_t c;
  start(&c, 2, mem);
  cl_client_t cl;
  ch_client_open(&c, 0, &cl);
  mpc_ftensor_t y[2];
  cl_query_stats_t st;
  char err[512] = "";
  for (int k = 0; k < 2; k++) {
    ck_assert_msg(ch_query(&c, &cl, 3, 2, &y[k], &st, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(st.rounds, 4);
    ck_assert_uint_gt(st.offline_bytes[0], 0);
    ck_assert_uint_gt(st.online_bytes[1], 0);
    cl_query_stats_close(&st);
  }
  ch_check_output(&c, 3, 2, &y[0]);
  ch_check_output(&c, 3, 2, &y[1]);
  for (int k = 0; k < 2; k++)
    mpc_ftensor_close(&y[k]);
  cl_client_close(&cl);
  ch_stop(&c);
}

START_TEST(query_matches_float) {
  query_matches_float_run(0);
}
END_TEST

START_TEST(query_matches_float_mem) {
  query_matches_float_run(1);
}
END_TEST

/* Two clusters, so two dealers, in one process: no service keeps static
 * state. Each serves its own client. */
static void two_dealers_one_process_run(int mem) {
  ch_cluster_t *c = calloc(2, sizeof *c);
  ck_assert_ptr_nonnull(c);
  start(&c[0], 1, mem);
  start(&c[1], 1, mem);
  for (int i = 0; i < 2; i++) {
    cl_client_t cl;
    ch_client_open(&c[i], 1, &cl);
    mpc_ftensor_t y;
    cl_query_stats_t st;
    char err[512] = "";
    ck_assert_msg(ch_query(&c[i], &cl, (size_t)i, 1, &y, &st, err, sizeof err) == 0, "%s", err);
    ch_check_output(&c[i], (size_t)i, 1, &y);
    mpc_ftensor_close(&y);
    cl_query_stats_close(&st);
    cl_client_close(&cl);
  }
  ch_stop(&c[1]);
  ch_stop(&c[0]);
  free(c);
}

START_TEST(two_dealers_one_process) {
  two_dealers_one_process_run(0);
}
END_TEST

START_TEST(two_dealers_one_process_mem) {
  two_dealers_one_process_run(1);
}
END_TEST

/* The control header and the party stats at their documented offsets,
 * little-endian whatever the host, and back. */
START_TEST(codec_offsets) {
  cl_ctrl_t h, g;
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_QUERY;
  h.status = TANDEM_ETIMEDOUT;
  h.seq = 0x0102030405060708ull;
  h.batch = 300;
  h.peer = 9;
  h.flags = CL_FLAG_WAITED;
  snprintf(h.name, sizeof h.name, "mlp");
  h.tag = 0x1122334455667788ull;
  h.version = 42;
  uint8_t b[CL_CTRL_HDR];
  cl_ctrl_encode(&h, b);
  ck_assert_uint_eq(b[0], CL_MSG_QUERY);
  ck_assert_uint_eq(b[1] | b[2] | b[3], 0);
  int32_t st = (int32_t)((uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 |
                         (uint32_t)b[7] << 24);
  ck_assert_int_eq(st, TANDEM_ETIMEDOUT);
  ck_assert_uint_eq(b[8], 0x08);
  ck_assert_uint_eq(b[15], 0x01);
  ck_assert_uint_eq(b[16], 300 & 0xff);
  ck_assert_uint_eq(b[17], 300 >> 8);
  ck_assert_uint_eq(b[24], 9);
  ck_assert_uint_eq(b[28], CL_FLAG_WAITED);
  ck_assert(memcmp(b + 32, "mlp\0", 4) == 0);
  ck_assert_uint_eq(b[96], 0x88);
  ck_assert_uint_eq(b[103], 0x11);
  ck_assert_uint_eq(b[104], 42);
  cl_ctrl_decode(b, &g);
  ck_assert(memcmp(&h, &g, sizeof h) == 0);
  /* A name that fills its field is cut to 63 characters and terminated. */
  memset(b + 32, 'x', CL_NAME_MAX);
  cl_ctrl_decode(b, &g);
  ck_assert_uint_eq(strlen(g.name), CL_NAME_MAX - 1);

  cl_party_stats_t s, t;
  memset(&s, 0, sizeof s);
  s.rounds = 4;
  s.online_sent = 417600;
  s.offline_recvd = 94976032;
  s.online_s = 0.25;
  s.offline_s = 1.5;
  s.online_start = 10.0;
  s.online_end = 10.25;
  s.fail_party = CL_P1;
  s.fail_where = CL_FAIL_ONLINE;
  s.fail_code = TANDEM_ECONNRESET;
  uint8_t sb[CL_STATS_BYTES];
  cl_stats_encode(&s, sb);
  ck_assert_uint_eq(sb[0], 4);
  ck_assert_uint_eq(sb[56], CL_P1);
  ck_assert_uint_eq(sb[60], CL_FAIL_ONLINE);
  ck_assert_uint_eq(sb[64], (uint8_t)TANDEM_ECONNRESET);
  ck_assert_uint_eq(sb[31], 0x3f); /* 0.25 = 0x3fd0000000000000, its top byte last */
  memset(&t, 0xff, sizeof t);
  cl_stats_decode(sb, &t);
  ck_assert_uint_eq(t.rounds, 4);
  ck_assert_uint_eq(t.offline_recvd, 94976032);
  ck_assert(t.online_s == 0.25 && t.offline_s == 1.5 && t.online_end == 10.25);
  ck_assert_uint_eq(t.fail_party, CL_P1);
  ck_assert_uint_eq(t.fail_where, CL_FAIL_ONLINE);
  ck_assert_int_eq(t.fail_code, TANDEM_ECONNRESET);
}
END_TEST

/* The dealer's deadlines run on its clock hook: the moment a query starts
 * waiting for preprocessing nobody made yet (batch 7, no pool), the fake
 * clock jumps past the client's timeout, and the dealer refuses the query at
 * once with the reason, instead of serving it when the preprocessing is
 * made. */
static void jump_on_wait(ch_cluster_t *c, const char *who, const char *line) {
  (void)who;
  if (strstr(line, "no preprocessing ready, waiting for it") != NULL)
    atomic_store(&c->offset_us, (long long)(TIMEOUT_MS + 1000) * 1000);
}

static void fake_clock_deadline_run(int mem) {
  ch_cluster_t c;
  start(&c, 1, mem);
  c.on_log = jump_on_wait;
  cl_client_t cl;
  ch_client_open(&c, 2, &cl);
  mpc_ftensor_t y;
  cl_query_stats_t st;
  char err[512] = "";
  int rc = ch_query(&c, &cl, 0, 7, &y, &st, err, sizeof err);
  ck_assert_int_eq(rc, TANDEM_ETIMEDOUT);
  ck_assert_msg(strstr(err, "within the timeout") != NULL, "%s", err);
  cl_query_stats_close(&st);
  /* Back on time, the same batch is served. */
  c.on_log = NULL;
  atomic_store(&c.offset_us, 0);
  ck_assert_msg(ch_query(&c, &cl, 0, 7, &y, &st, err, sizeof err) == 0, "%s", err);
  mpc_ftensor_close(&y);
  cl_query_stats_close(&st);
  cl_client_close(&cl);
  ch_stop(&c);
}

START_TEST(fake_clock_deadline) {
  fake_clock_deadline_run(0);
}
END_TEST

START_TEST(fake_clock_deadline_mem) {
  fake_clock_deadline_run(1);
}
END_TEST

/* The dealer's generators: a query of a batch size with no pool is made on
 * demand while the refill of another size is held up (here by the fault
 * hook, as a slow generation would): it does not wait behind it. */
static atomic_int refill_held, release_refill;

static int hold_refill(ch_cluster_t *c, int who, cl_fault_t where, uint64_t batch, int demand) {
  (void)c;
  if (who == CL_DEALER && where == CL_FAULT_DEALER_GENERATE && batch == 9 && !demand) {
    atomic_store(&refill_held, 1);
    while (!atomic_load(&release_refill)) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  return 0;
}

static void on_demand_not_behind_refill_run(int mem) {
  ch_cluster_t c;
  start(&c, 2, mem);
  atomic_store(&refill_held, 0);
  atomic_store(&release_refill, 0);
  c.fault = hold_refill;
  cl_client_t cl;
  ch_client_open(&c, 0, &cl);
  mpc_ftensor_t y;
  cl_query_stats_t st;
  char err[512] = "";
  /* Batch 9: the first query is made on demand, then the refill of its pool
   * starts and is held. */
  size_t from = ch_mark(&c);
  ck_assert_msg(ch_query(&c, &cl, 0, 9, &y, &st, err, sizeof err) == 0, "%s", err);
  mpc_ftensor_close(&y);
  cl_query_stats_close(&st);
  for (int i = 0; i < 500 && !atomic_load(&refill_held); i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  ck_assert(atomic_load(&refill_held));
  /* Batch 4, never asked for: served while the refill of 9 is held. */
  double t0 = cl_now();
  int rc = ch_query(&c, &cl, 0, 4, &y, &st, err, sizeof err);
  double took = cl_now() - t0;
  atomic_store(&release_refill, 1);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert(st.waited);
  ck_assert_msg(took < TIMEOUT_MS / 2000.0, "%.1f s", took);
  (void)from;
  mpc_ftensor_close(&y);
  cl_query_stats_close(&st);
  cl_client_close(&cl);
  c.fault = NULL;
  ch_stop(&c);
}

START_TEST(on_demand_not_behind_refill) {
  on_demand_not_behind_refill_run(0);
}
END_TEST

START_TEST(on_demand_not_behind_refill_mem) {
  on_demand_not_behind_refill_run(1);
}
END_TEST

/* The pool is bounded: queries of more batch sizes than the dealer keeps
 * pools for evict the one asked for least recently, and every query is
 * still served. */
static void pool_bounded_run(int mem) {
  ch_cluster_t c;
  start(&c, 1, mem);
  cl_client_t cl;
  ch_client_open(&c, 1, &cl);
  size_t from = ch_mark(&c);
  for (size_t b = 2; b <= 11; b++) { /* 10 sizes, and batch 1's pool */
    mpc_ftensor_t y;
    cl_query_stats_t st;
    char err[512] = "";
    ck_assert_msg(ch_query(&c, &cl, 0, b, &y, &st, err, sizeof err) == 0, "batch %zu: %s", b,
                  err);
    mpc_ftensor_close(&y);
    cl_query_stats_close(&st);
  }
  ck_assert(ch_wait_line(&c, from, "dealer", "pool evicted (8 pools at most)", 5000));
  cl_client_close(&cl);
  ch_stop(&c);
}

START_TEST(pool_bounded) {
  pool_bounded_run(0);
}
END_TEST

START_TEST(pool_bounded_mem) {
  pool_bounded_run(1);
}
END_TEST

Suite *cluster_svc_suite(void) {
  Suite *s = suite_create("cluster_svc");
  TCase *tc = tcase_create("svc");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, codec_offsets);
  tcase_add_test(tc, query_matches_float);
  tcase_add_test(tc, query_matches_float_mem);
  tcase_add_test(tc, two_dealers_one_process);
  tcase_add_test(tc, two_dealers_one_process_mem);
  tcase_add_test(tc, fake_clock_deadline);
  tcase_add_test(tc, fake_clock_deadline_mem);
  tcase_add_test(tc, on_demand_not_behind_refill);
  tcase_add_test(tc, on_demand_not_behind_refill_mem);
  tcase_add_test(tc, pool_bounded);
  tcase_add_test(tc, pool_bounded_mem);
  suite_add_tcase(s, tc);
  return s;
}
