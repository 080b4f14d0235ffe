/* cluster_harness.h - a whole cluster in one test process for the cluster
 * suites (tests/mpc/test_cluster_*.c): fresh keys and a config in a
 * temporary directory with loopback ports free at run time (or, with
 * ch_opts_t.mem, addresses in net's in-memory backend), the dealer
 * service, two party services each stepped by its own thread, and clients
 * opened on demand. Every service logs into the harness, where a test waits
 * for a line (an event, never a sleep); the hooks' clock and faults are the
 * test's to set. */
#ifndef TANDEM_CLUSTER_HARNESS_H
#define TANDEM_CLUSTER_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>

#include "mpc_cluster.h"

#define CH_CLIENTS 3 /* [client a], [client b], [client c]: ids CL_CLIENT0.. */

typedef struct ch_cluster_s ch_cluster_t;

/* The hooks' context of one service: who is CL_DEALER, CL_P0 or CL_P1. */
typedef struct {
  ch_cluster_t *c;
  int who;
} ch_svc_t;

typedef struct {
  ch_cluster_t *c;
  int self;
  cl_party_t *party;
  pthread_t thread;
  atomic_int stop;
  int running;
} ch_party_t;

struct ch_cluster_s {
  char dir[256];
  char config[300];
  cl_config_t cfg;
  cl_config_t svc_cfg[3];   /* P0's, P1's and the dealer's copy (ch_opts_t) */
  ch_svc_t svc[3];          /* the hooks' contexts of P0, P1, the dealer */
  cl_hooks_t hooks[3];      /* the services': the harness's log, clock and faults */
  cl_dealer_t *dealer;
  ch_party_t party[2];
  /* The log: every line of every service, "who: line\n", appended. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *log;
  size_t log_len, log_cap;
  /* The test's hooks (NULL: none), atomic: a test sets them while the
   * services' threads run. */
  int (*_Atomic fault)(ch_cluster_t *c, int who, cl_fault_t where, uint64_t seq, int peer);
  void (*_Atomic on_log)(ch_cluster_t *c, const char *who, const char *line);
  void *test_ctx;
  /* The fake clock: the real one plus offset_us (the dealer's deadlines). */
  atomic_llong offset_us;
  /* The model in every cluster: models/fashion_mlp.onnx shared as "mlp". */
  mpc_ftensor_t images; /* models/fashion_test16.npy, 16 rows */
};

/* Makes the directory, keys, config (timeout_ms, pool) and starts the dealer
 * and both parties; shares "mlp" when share is set. Fails the test on error. */
void ch_start(ch_cluster_t *c, int timeout_ms, unsigned pool, int share);

/* What ch_start_opts changes from ch_start's cluster. */
typedef struct {
  const char *cluster_lines; /* more lines of the config's [cluster] section */
  size_t plan_mem_max[3];    /* P0, P1, dealer: their copy's plan_mem_max (0: the config's) */
  /* 1: every service and client on net's in-memory backend (net/src/mem.c)
   * instead of loopback sockets: the members' addresses become
   * "mem:<the cluster's directory name>" (the ports stay, as names), for the
   * cases where sockets are not the point. */
  int mem;
} ch_opts_t;
void ch_start_opts(ch_cluster_t *c, int timeout_ms, unsigned pool, int share,
                   const ch_opts_t *o);
/* Stops every service and removes the directory. */
void ch_stop(ch_cluster_t *c);

/* Starts (again) party id: a fresh service on the same config, key, data
 * and port, as a restarted daemon. */
void ch_party_start(ch_cluster_t *c, int id);
/* Stops party id's thread and frees the service (its links end). */
void ch_party_stop(ch_cluster_t *c, int id);

/* Waits up to ms for a log line containing `what` after offset `from` (a
 * log_mark); 1 if it came. */
int ch_wait_log(ch_cluster_t *c, size_t from, const char *what, int ms);
/* The same for a line of service `who` ("dealer", "party p0", ...). */
int ch_wait_line(ch_cluster_t *c, size_t from, const char *who, const char *what, int ms);
/* 1 if a line containing `what` was logged after `from`. */
int ch_seen(ch_cluster_t *c, size_t from, const char *what);
size_t ch_mark(ch_cluster_t *c);

/* Opens client k (0..CH_CLIENTS-1) of the config. */
void ch_client_open(ch_cluster_t *c, int k, cl_client_t *out);
/* One query of "mlp" on rows [r0, r0 + n) of the test images; the output
 * (initialised on success) into *y. */
int ch_query(ch_cluster_t *c, cl_client_t *cl, size_t r0, size_t n, mpc_ftensor_t *y,
             cl_query_stats_t *st, char *err, size_t errlen);
/* The same query, which must succeed (the current test fails with the error
 * otherwise); its output and stats are closed. */
void ch_query_ok(ch_cluster_t *c, cl_client_t *cl, size_t r0, size_t n);

/* y (rows r0 .. r0+n of c->images) matches the MLP's float evaluator. */
void ch_check_output(ch_cluster_t *c, size_t r0, size_t n, const mpc_ftensor_t *y);

#endif
