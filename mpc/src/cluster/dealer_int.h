/* dealer_int.h - what the dealer's sources share (dealer.c: the worker, the
 * readers and the service; dealer_pool.c: the preprocessing pools and their
 * generators): the dealer's state and the pool functions the worker calls.
 * Nobody else includes it. */
#ifndef TANDEM_DEALER_INT_H
#define TANDEM_DEALER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "cluster_int.h"

#define WHO "dealer"
/* The pool's bound: at most POOLS_CAP (model, batch size) pools, each of at
 * most the config's `pool` ready queries (POOL_MAX at the most). A query of
 * a new (model, batch) when all POOLS_CAP are in use evicts the pool asked
 * for least recently (not one being made or waited for), so the memory held
 * ahead never grows with the number of batch sizes clients ask for. */
#define POOLS_CAP 8
#define POOL_MAX 64 /* ready queries per (model, batch) */
#define JOBS_PER_PEER 4
/* A client key whose queries failed BACKOFF_AFTER times in a row has its
 * requests refused for 1 s, then 2, 4, ... up to BACKOFF_MAX_S, until one
 * of its queries succeeds. */
#define BACKOFF_AFTER 3
#define BACKOFF_MAX_S 60.0

/* ---- one query's preprocessing, captured in memory --------------------------- */

/* A query's preprocessing (mpc_dealer_prep), each part behind CL_TAG_BYTES
 * of headroom, where the query's tag goes when it is sent
 * (cl_step_send_in_place): a part of hundreds of MB is sent without another
 * copy. */
typedef mpc_prep_t prep_t;


/* ---- state -------------------------------------------------------------------- */

typedef struct {
  char name[CL_NAME_MAX];
  size_t batch;
  prep_t *ready[POOL_MAX];
  unsigned n;
  unsigned waiting; /* queries blocked on this pool */
  int making;       /* the generator is making one for this pool now */
  int was_full;     /* reached the target once (logged once) */
  size_t bytes;     /* one query's preprocessing, all roles (0: not known yet) */
  double since;     /* when the generator started the one it is making */
  double used;      /* when a query last asked for it (eviction) */
} pool_t;

/* A generator thread: `on_demand` makes only what a query waits for; the
 * other refills the pools ahead. */
typedef struct {
  cl_dealer_t *d;
  int on_demand;
} gen_arg_t;

typedef struct job_s {
  cl_ctrl_t h;
  int from;
  double t_in; /* arrival (cl_now), from which the client's timeout runs */
  uint64_t links; /* the requester's link it came on (net's count) */
  uint8_t *payload;
  size_t plen;
  struct job_s *next;
} job_t;

typedef struct {
  cl_dealer_t *d;
  int id;
} reader_arg_t;

struct cl_dealer_s {
  cl_config_t cfg_copy;
  const cl_config_t *cfg;  /* &cfg_copy */
  cl_hooks_t hooks;
  cl__netlog_t netlog;
  atomic_int stop;
  int started;
  pthread_t worker, gen[2];
  gen_arg_t gen_arg[2];
  int gens; /* generator threads started */
  reader_arg_t reader_arg[NET_MAX_PEERS];
  int was_up[2];           /* cl_dealer_step: the parties' links, last seen */
  uint64_t was_link[2];    /* and their link numbers (a restart between two steps) */
  net_node_t *node;
  pthread_mutex_t gen_mu[2]; /* held by generator g while it uses a model; both by a SHARE */
  pthread_mutex_t mu;
  pthread_cond_t cv;       /* jobs, pool changes */
  job_t *head, *tail;
  pool_t pools[POOLS_CAP];
  unsigned npools;
  cl_store_t store;        /* guarded by mu */
  struct { /* why the generator gave up on a (model, batch), for the client */
    char name[CL_NAME_MAX];
    size_t batch;
    char why[256];
  } failed[8];
  unsigned nfailed;
  pthread_t readers[NET_MAX_PEERS];
  int reader_started[NET_MAX_PEERS];
  unsigned jobs[NET_MAX_PEERS]; /* jobs waiting in the FIFO, per peer */
  /* Shares queued or being set up: a client's GRAPH for a model not stored
   * yet waits for them (the owner hears the share's tag before the setup
   * ends, and may ask its query at once: `tandem run`). */
  unsigned shares;
  uint64_t seq;
  int sending; /* the worker is sending a query's preprocessing */
  /* The bytes of preprocessing the dealer holds (ready in pools, being made,
   * being sent), kept within cfg->pool_mem_max: added under mu when a
   * generator starts one, taken off when one is freed (cl__prep_free). The
   * peak is updated under mu (tests and the soak read it). */
  atomic_size_t mem_held;
  size_t mem_peak;
  /* Per client key (peer id), under mu: its last query told to the
   * parties, and the back-off of a key whose queries keep failing. */
  struct {
    uint64_t seq;         /* its last query told to the parties (0: none) */
    double told_at;       /* when (cl__now) */
    unsigned fails;       /* failed queries in a row */
    uint64_t failed_seq;  /* the last query counted as failed (counted once) */
    double backoff_until; /* its requests are refused until then */
  } cli[NET_MAX_PEERS];
  uint64_t done[2];       /* the last query P0, P1 reported done (CL_MSG_ACK) */
  struct { /* the generator's measured speed per model, for the wait estimate */
    char name[CL_NAME_MAX];
    double s_per_byte;
  } rate[8];
  unsigned nrate;
};

#define LOG(d, ...) cl__log(&(d)->hooks, WHO, __VA_ARGS__)
#define LOGW(d, ...) cl__logl(&(d)->hooks, CL_LOG_WARN, WHO, __VA_ARGS__)

/* dealer_pool.c. Under d->mu where their comments say so; cl__timed_wait_ms
 * waits on d->cv (under d->mu) at most ms milliseconds. */
void cl__prep_free(cl_dealer_t *d, prep_t *p);
size_t cl__prep_size(const prep_t *p);
pool_t *cl__pool_find(cl_dealer_t *d, const char *name, size_t batch, int create);
void cl__pools_drop_model(cl_dealer_t *d, const char *name);
double *cl__rate_slot(cl_dealer_t *d, const char *name, int create);
void cl__timed_wait_ms(cl_dealer_t *d, long ms);
/* Gives the heap's free memory beyond a slack back to the system (not under
 * d->mu): called once a job or a generation is done. */
void cl__heap_trim(cl_dealer_t *d);
void *cl__generator_main(void *arg);
void cl__pool_return(cl_dealer_t *d, const char *name, size_t batch, prep_t *prep);
int cl__requester_here(cl_dealer_t *d, const job_t *j);
int cl__prep_take(cl_dealer_t *d, const job_t *j, size_t batch, double deadline,
                  prep_t **prep, uint32_t *flags, double *t_wait, char *err, size_t errlen);

#endif
