/* dealer.c - the dealer service (cl_dealer_t, mpc_cluster.h) of `tandem
 * dealer`, which also sequences the cluster.
 *
 * Owners and clients talk to the dealer first: a model owner's SHARE (the
 * public graph of a model) and a client's REQ (one query of a model at a
 * batch size) go into one FIFO, and a single worker thread serves it in
 * order, so both parties see the same SETUP and QUERY messages in the same
 * order. The dealer never receives a weight, an input or an output: it holds
 * the weight masks R_W of each model (stored checksummed under its data
 * directory) and makes fresh correlated randomness per query.
 *
 * The preprocessing of queries is made ahead of time: a generator thread
 * keeps up to `pool` ready queries for every (model, batch size) it has been
 * asked for (batch 1 from the start; at most POOLS_CAP such pools, the one
 * asked for least recently evicted for a new one), so the online phase of a
 * query never waits for key generation while queries arrive slower than the
 * dealer makes them; a query that finds its pool empty waits for a second,
 * on-demand generator (never behind the refill of another size) and the
 * client is told (CL_FLAG_WAITED). One reader thread per connected owner or
 * client feeds the FIFO; a dead client only ends its own reader.
 *
 * How long a query may wait: its client waits timeout_ms from sending the
 * request for the dealer's reply, so the dealer answers before then, minus a
 * margin for the reply's own trip, counting from the request's arrival (time
 * spent in the FIFO behind other queries included). Within that budget it
 * waits as long as its generator can still make the query's preprocessing:
 * it refuses at once, with the reason, when the generator gave up on it, or
 * when the generator's measured rate says the preprocessing takes several
 * times the budget. A query whose client left or gave up meanwhile is
 * dropped before the parties hear of it, and its unused preprocessing goes
 * back to the pool.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

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
 * (cl_link_send_in_place): a part of hundreds of MB is sent without another
 * copy. */
typedef mpc_prep_t prep_t;

static void prep_free(prep_t *p) {
  mpc_prep_close(p);
  free(p);
}

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
  uint64_t seq;
  int sending; /* the worker is sending a query's preprocessing */
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

static pool_t *pool_find(cl_dealer_t *d, const char *name, size_t batch, int create) {
  for (unsigned i = 0; i < d->npools; i++)
    if (d->pools[i].batch == batch && strcmp(d->pools[i].name, name) == 0)
      return &d->pools[i];
  if (!create)
    return NULL;
  if (d->npools == POOLS_CAP) {
    /* Evict the pool asked for least recently, of those nobody is making
     * or waiting for (with two generators and one worker, one always is). */
    pool_t *old = NULL;
    for (unsigned i = 0; i < d->npools; i++) {
      pool_t *q = &d->pools[i];
      if (!q->making && q->waiting == 0 && (old == NULL || q->used < old->used))
        old = q;
    }
    if (old == NULL)
      return NULL;
    LOG(d, "%s at batch %zu: pool evicted (%u pools at most)", old->name, old->batch,
        (unsigned)POOLS_CAP);
    for (unsigned i = 0; i < old->n; i++)
      prep_free(old->ready[i]);
    *old = d->pools[--d->npools];
  }
  pool_t *p = &d->pools[d->npools++];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->batch = batch;
  return p;
}

static void pools_drop_model(cl_dealer_t *d, const char *name) {
  for (unsigned i = 0; i < d->npools;) {
    if (strcmp(d->pools[i].name, name) == 0) {
      for (unsigned j = 0; j < d->pools[i].n; j++)
        prep_free(d->pools[i].ready[j]);
      d->pools[i] = d->pools[--d->npools];
    } else {
      i++;
    }
  }
}

/* ---- the generator ------------------------------------------------------------ */

/* Drops the pool of one (model, batch). Under d->mu. */
static void pool_drop(cl_dealer_t *d, const char *name, size_t batch) {
  for (unsigned i = 0; i < d->npools; i++)
    if (d->pools[i].batch == batch && strcmp(d->pools[i].name, name) == 0) {
      for (unsigned j = 0; j < d->pools[i].n; j++)
        prep_free(d->pools[i].ready[j]);
      d->pools[i] = d->pools[--d->npools];
      return;
    }
}

/* Records why a (model, batch) cannot be prepared. Under d->mu. */
static void failure_note(cl_dealer_t *d, const char *name, size_t batch, const char *why) {
  unsigned i = d->nfailed++ % 8;
  snprintf(d->failed[i].name, sizeof d->failed[i].name, "%s", name);
  d->failed[i].batch = batch;
  snprintf(d->failed[i].why, sizeof d->failed[i].why, "%s", why);
}

static const char *failure_find(cl_dealer_t *d, const char *name, size_t batch) {
  for (unsigned k = 0; k < 8 && k < d->nfailed; k++) {
    unsigned i = (d->nfailed - 1 - k) % 8;
    if (d->failed[i].batch == batch && strcmp(d->failed[i].name, name) == 0)
      return d->failed[i].why;
  }
  return NULL;
}

static unsigned pool_target(cl_dealer_t *d) {
  unsigned target = d->cfg->pool ? d->cfg->pool : 1;
  return target > POOL_MAX ? POOL_MAX : target;
}

/* The generator's seconds per byte of preprocessing for a model (0: not
 * measured yet). Under d->mu. */
static double *rate_slot(cl_dealer_t *d, const char *name, int create) {
  for (unsigned i = 0; i < d->nrate && i < 8; i++)
    if (strcmp(d->rate[i].name, name) == 0)
      return &d->rate[i].s_per_byte;
  if (!create)
    return NULL;
  unsigned i = d->nrate++ % 8;
  snprintf(d->rate[i].name, sizeof d->rate[i].name, "%s", name);
  d->rate[i].s_per_byte = 0;
  return &d->rate[i].s_per_byte;
}

/* Seconds until the generator has one query's preprocessing ready for p,
 * from its measured rate on that model; -1 when it cannot tell (no rate yet,
 * or the size is not known until the generator first looks at the pool).
 * Under d->mu. */
static double pool_eta(cl_dealer_t *d, const pool_t *p) {
  const double *r = rate_slot(d, p->name, 0);
  if (r == NULL || *r <= 0 || p->bytes == 0)
    return -1;
  double one = *r * (double)p->bytes;
  return p->making ? one - (cl__now(&d->hooks) - p->since) : one;
}

/* The pool a generator should work on, none being made already: for the
 * on-demand generator one a query waits for; for the refill generator the
 * emptiest below the target, and none while a query waits (the cores are the
 * on-demand one's then). Under d->mu. */
static pool_t *pool_pick(cl_dealer_t *d, int on_demand) {
  pool_t *best = NULL;
  unsigned target = pool_target(d);
  for (unsigned i = 0; i < d->npools; i++) {
    pool_t *p = &d->pools[i];
    if (p->waiting > 0 && p->n == 0) {
      if (!on_demand)
        return NULL;
      if (!p->making)
        return p;
    } else if (!on_demand && !p->making && p->n < target && (best == NULL || p->n < best->n)) {
      best = p;
    }
  }
  return on_demand ? NULL : best;
}

static void timed_wait_ms(cl_dealer_t *d, long ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += ms * 1000 * 1000;
  ts.tv_sec += ts.tv_nsec / 1000000000;
  ts.tv_nsec %= 1000000000;
  pthread_cond_timedwait(&d->cv, &d->mu, &ts);
}

/* The plan of (name, batch) for a generator, with *pool the pool it makes
 * it for: the cached one, or one compiled without d->mu (a large plan takes
 * seconds, and every query and generator waits on d->mu; the model is not
 * replaced meanwhile, as the generator holds its gen_mu) and then cached.
 * The pool is marked `making` meanwhile, so the other generator leaves it
 * alone; *pool is looked up again after (NULL when it was dropped or
 * evicted meanwhile). Called and returns under d->mu. */
static int gen_plan(cl_dealer_t *d, pool_t **pool, const char *name, size_t batch,
                    cl_plan_t **pl, char *err, size_t errlen) {
  cl_model_t *m;
  int rc = cl_store_get(&d->store, name, &m, err, errlen);
  if (rc != 0 || (*pl = cl_model_plan_find(m, batch)) != NULL)
    return rc;
  (*pool)->making = 1;
  pthread_mutex_unlock(&d->mu);
  (void)cl__fault(&d->hooks, CL_FAULT_DEALER_COMPILE, batch, 0);
  cl_plan_t fresh;
  rc = cl_model_plan_make(&d->store, m, batch, &fresh, err, errlen);
  pthread_mutex_lock(&d->mu);
  if ((*pool = pool_find(d, name, batch, 0)) != NULL)
    (*pool)->making = 0;
  if (rc != 0)
    return rc;
  if (*pool == NULL) {
    cl_model_plan_discard(&d->store, &fresh);
    return 0;
  }
  return cl_model_plan_put(&d->store, m, &fresh, pl, err, errlen);
}

/* Two generators: one refills the pools ahead, the other makes only what a
 * query waits for, so a query of a batch size with no pool never waits
 * behind another size's refill (it shares the cores with it instead; the
 * refill starts nothing new while a query waits). They never work on the
 * same pool (`making`), so never on the same plan's dealer object, and the
 * plan they use is marked busy, so the store never replaces it under them.
 *
 * Lock order: gen_mu[0], gen_mu[1], then mu. Generator g holds gen_mu[g]
 * only while it makes keys from a model (never while idle), so a SHARE
 * (which takes both) never replaces the model under it.
 *
 * It starts nothing while the worker sends a query's preprocessing: the
 * parties wait for that message under their timeout, and on a small machine
 * a generator filling the pool ahead takes the cores that seal it (and that
 * the parties need to open it). No query waits for the pool meanwhile (the
 * worker serves one job at a time). */
static void *generator_main(void *arg) {
  gen_arg_t *ga = arg;
  cl_dealer_t *d = ga->d;
  while (!atomic_load(&d->stop)) {
    pthread_mutex_lock(&d->mu);
    if (d->sending || pool_pick(d, ga->on_demand) == NULL)
      timed_wait_ms(d, ga->on_demand ? 50 : 200);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_lock(&d->gen_mu[ga->on_demand]);
    pthread_mutex_lock(&d->mu);
    pool_t *best = d->sending ? NULL : pool_pick(d, ga->on_demand);
    if (best == NULL) {
      pthread_mutex_unlock(&d->mu);
      pthread_mutex_unlock(&d->gen_mu[ga->on_demand]);
      continue;
    }
    char name[CL_NAME_MAX], err[512];
    snprintf(name, sizeof name, "%s", best->name);
    size_t batch = best->batch;
    cl_plan_t *pl = NULL;
    int rc = gen_plan(d, &best, name, batch, &pl, err, sizeof err);
    mpc_role_t big;
    size_t big_bytes;
    if (rc == 0 && best == NULL) { /* the pool went while the plan was compiled */
      pthread_mutex_unlock(&d->mu);
      pthread_mutex_unlock(&d->gen_mu[ga->on_demand]);
      continue;
    }
    if (rc == 0 && !cl_prep_fits(pl->plan, d->cfg->max_msg, &big, &big_bytes)) {
      /* A query whose preprocessing exceeds the largest message is refused
       * here, before any key is made. */
      rc = TANDEM_EINVAL;
      snprintf(err, sizeof err, "its preprocessing (%zu bytes for %s) exceeds max_msg",
               big_bytes, mpc_role_name(big));
    }
    if (rc != 0) {
      LOG(d, "cannot prepare %s at batch %zu: %s", name, batch, err);
      failure_note(d, name, batch, err);
      pool_drop(d, name, batch);
      pthread_cond_broadcast(&d->cv);
      pthread_mutex_unlock(&d->mu);
      pthread_mutex_unlock(&d->gen_mu[ga->on_demand]);
      continue;
    }
    mpc_dealer_t *dl = pl->obj;
    /* What a waiting query reads to tell whether it can still be served. */
    static const mpc_role_t all[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
    best->bytes = 0;
    for (int i = 0; i < 3; i++)
      best->bytes += mpc_plan_prep_bytes(pl->plan, all[i]);
    best->making = 1;
    pl->busy = 1;
    double t0 = best->since = cl__now(&d->hooks);
    pthread_mutex_unlock(&d->mu);
    (void)cl__fault(&d->hooks, CL_FAULT_DEALER_GENERATE, batch, ga->on_demand);
    prep_t *prep = calloc(1, sizeof *prep);
    rc = prep == NULL ? TANDEM_ENOMEM : mpc_dealer_prep(dl, CL_TAG_BYTES, prep);
    double took = cl__now(&d->hooks) - t0;
    pthread_mutex_lock(&d->mu);
    pool_t *p = pool_find(d, name, batch, 0);
    if (p != NULL)
      p->making = 0;
    pl->busy = 0;
    if (rc == 0 && p != NULL && p->bytes > 0) {
      /* The latest measure counts most: the machine's load changes. */
      double *r = rate_slot(d, name, 1), now = took / (double)p->bytes;
      *r = *r > 0 ? 0.5 * *r + 0.5 * now : now;
    }
    if (rc != 0) {
      /* Not retried: the next query of this batch size asks again. */
      LOG(d, "preprocessing for %s at batch %zu failed: %s", name, batch,
             tandem_strerror(rc));
      free(prep); /* mpc_dealer_prep released its messages */
      failure_note(d, name, batch, tandem_strerror(rc));
      pool_drop(d, name, batch);
    } else if (p == NULL || p->n == POOL_MAX) {
      prep_free(prep);
    } else {
      p->ready[p->n++] = prep;
      if (!p->was_full && p->n >= pool_target(d)) {
        p->was_full = 1;
        LOG(d, "%s at batch %zu: %u queries prepared ahead (%.1f MB, %.2f s each)", name,
               batch, p->n, (double)p->bytes / 1e6, took);
      }
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_unlock(&d->gen_mu[ga->on_demand]);
  }
  return NULL;
}

/* ---- the worker --------------------------------------------------------------- */

static void reply(cl_dealer_t *d, int peer, uint64_t link, const cl_ctrl_t *req, int status, uint64_t seq,
                  uint32_t flags, uint64_t tag, const void *payload, size_t plen) {
  cl_ctrl_t h;
  memset(&h, 0, sizeof h);
  h.tag = tag;
  h.type = CL_MSG_REPLY;
  h.status = status;
  h.seq = seq;
  h.batch = req->batch;
  h.flags = flags;
  h.version = req->version; /* the requester's nonce */
  memcpy(h.name, req->name, sizeof h.name);
  if (cl_ctrl_send_on(d->node, peer, link, &h, payload, plen) != 0)
    LOG(d, "could not reply to peer %d", peer);
}


/* Both parties connected, waiting for them until `deadline` (cl_now). */
static int parties_up(cl_dealer_t *d, double deadline, char *err, size_t errlen) {
  for (int id = CL_P0; id <= CL_P1; id++) {
    double left_ms = (deadline - cl__now(&d->hooks)) * 1e3;
    if (!net_peer_up(d->node, id) &&
        (left_ms < 1 || net_accept(d->node, id, (int)left_ms) != 0)) {
      snprintf(err, errlen, "compute party p%d is not connected to the dealer", id);
      return TANDEM_ECLOSED;
    }
  }
  return 0;
}

/* When the dealer must have answered a request that arrived at t_in: the
 * requester waits timeout_ms from its send for the reply, so the dealer
 * keeps a margin (a tenth of the timeout, 0.2 to 2 s) for the reply's trip. */
static double reply_deadline(cl_dealer_t *d, double t_in) {
  double budget = d->cfg->timeout_ms / 1000.0, margin = budget / 10;
  margin = margin < 0.2 ? 0.2 : margin > 2.0 ? 2.0 : margin;
  return t_in + budget - margin;
}

static void do_share(cl_dealer_t *d, job_t *j) {
  char err[512] = "";
  mpc_graph_t g;
  mpc_plan_t *plan = NULL;
  mpc_dealer_t *md = NULL;
  uint8_t *state = NULL;
  size_t slen = 0;
  int rc;
  if (j->from != CL_OWNER) {
    rc = TANDEM_EAUTH;
    snprintf(err, sizeof err, "only the model owner may share a model");
    goto out;
  }
  if (!cl_name_ok(j->h.name)) {
    rc = TANDEM_EINVAL;
    snprintf(err, sizeof err, "bad model name '%s' (use letters, digits, '_', '-', '.')",
             j->h.name);
    goto out;
  }
  if ((rc = mpc_graph_load(&g, j->payload, j->plen, err, sizeof err)) != 0)
    goto out;
  if ((rc = cl_plan_mem_check(&g, 1, d->cfg->plan_mem_max, err, sizeof err)) != 0 ||
      (rc = mpc_plan_new(&plan, &g, 1, err, sizeof err)) != 0 ||
      (rc = mpc_dealer_new(&md, plan)) != 0 ||
      (rc = parties_up(d, reply_deadline(d, j->t_in), err, sizeof err)) != 0)
    goto done;
  uint64_t tag;
  randombytes_buf(&tag, sizeof tag);
  reply(d, j->from, j->links, &j->h, 0, 0, 0, tag, NULL, 0);
  cl_ctrl_t h;
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_SETUP;
  h.tag = tag;
  h.peer = (uint32_t)j->from;
  memcpy(h.name, j->h.name, sizeof h.name);
  cl_link_t link;
  cl_link_init(&link, d->node, MPC_DEALER, -1, tag, d->cfg->timeout_ms);
  if ((rc = cl_ctrl_send(d->node, CL_P0, &h, j->payload, j->plen)) != 0 ||
      (rc = cl_ctrl_send(d->node, CL_P1, &h, j->payload, j->plen)) != 0 ||
      (rc = mpc_dealer_model(md, &link.base)) != 0) {
    snprintf(err, sizeof err, "could not send the setup to the parties: %s",
             tandem_strerror(rc));
    goto done;
  }
  slen = mpc_dealer_state_bytes(plan);
  if ((state = sodium_malloc(slen)) == NULL) {
    rc = TANDEM_ENOMEM;
    goto done;
  }
  if ((rc = mpc_dealer_export(md, state, slen)) != 0)
    goto done;
  pthread_mutex_lock(&d->gen_mu[0]);
  pthread_mutex_lock(&d->gen_mu[1]);
  pthread_mutex_lock(&d->mu);
  pools_drop_model(d, j->h.name);
  double *r = rate_slot(d, j->h.name, 0);
  if (r != NULL)
    *r = 0; /* another graph under the same name: measure again */
  rc = cl_store_put(&d->store, j->h.name, j->payload, j->plen, tag, state, slen, err,
                    sizeof err);
  if (rc == 0)
    pool_find(d, j->h.name, 1, 1);
  pthread_cond_broadcast(&d->cv);
  pthread_mutex_unlock(&d->mu);
  pthread_mutex_unlock(&d->gen_mu[1]);
  pthread_mutex_unlock(&d->gen_mu[0]);
done:
  if (state != NULL)
    sodium_free(state);
  mpc_dealer_free(md);
  mpc_plan_free(plan);
  mpc_graph_close(&g);
out:
  if (rc == 0) {
    LOG(d, "model %s: setup sent to the parties", j->h.name);
  } else {
    LOG(d, "model %s refused: %s", j->h.name, err);
    reply(d, j->from, j->links, &j->h, rc, 0, 0, 0, err, strlen(err));
  }
}

/* Puts an unused preprocessing back at the front of its pool (it was never
 * sent, so another query may use it), or frees it. Under d->mu. */
static void pool_return(cl_dealer_t *d, const char *name, size_t batch, prep_t *prep) {
  pool_t *p = pool_find(d, name, batch, 0);
  if (p == NULL || p->n == POOL_MAX) {
    prep_free(prep);
    return;
  }
  memmove(p->ready + 1, p->ready, p->n * sizeof p->ready[0]);
  p->ready[0] = prep;
  p->n++;
}

/* One party's part of a query's preprocessing, sent from its own thread. */
typedef struct {
  cl_link_t *link;
  mpc_role_t to;
  uint8_t *buf; /* headroom, then len bytes */
  size_t len;
  int rc;
} part_send_t;

static void *part_send_main(void *arg) {
  part_send_t *p = arg;
  p->rc = cl_link_send_in_place(p->link, p->to, p->buf, p->len);
  return NULL;
}

/* The requester of j is still connected on the link its request came on (a
 * client that died and started again under its name is another query). */
static int requester_here(cl_dealer_t *d, const job_t *j) {
  return net_peer_up(d->node, j->from) && cl_peer_link(d->node, j->from) == j->links;
}

/* Takes one query's preprocessing for j out of its pool, waiting for the
 * generators while they can still make it before `deadline` (cl__now).
 * Under d->mu. 0 with *prep set, or an error with the reason in err. */
static int prep_take(cl_dealer_t *d, const job_t *j, size_t batch, double deadline,
                     prep_t **prep, uint32_t *flags, double *t_wait, char *err,
                     size_t errlen) {
  int rc = 0;
  pool_t *p = pool_find(d, j->h.name, batch, 1);
  int no_room = p == NULL;
  if (p != NULL)
    p->used = cl__now(&d->hooks);
  /* A new request clears an old failure: memory or limits may have changed. */
  for (unsigned k = 0; k < 8; k++)
    if (d->failed[k].batch == batch && strcmp(d->failed[k].name, j->h.name) == 0)
      d->failed[k].name[0] = '\0';
  double t0 = cl__now(&d->hooks), eta = -1;
  if (p != NULL && p->n == 0) {
    *flags |= CL_FLAG_WAITED;
    LOG(d, "query from client %d (%s, batch %zu): no preprocessing ready, waiting for it",
           j->from, j->h.name, batch);
  }
  /* Wait while the generator can still make it in time: it is making it
   * now or will next (a waiting pool comes first), it has not given up on
   * it (the pool is gone then), and its rate does not say it takes far
   * longer than the time left. */
  int hopeless = 0, left = 0;
  while (p != NULL && p->n == 0 && !atomic_load(&d->stop) && cl__now(&d->hooks) < deadline) {
    eta = pool_eta(d, p);
    if (eta > 4.0 * (deadline - cl__now(&d->hooks)) + 1.0) {
      hopeless = 1;
      break;
    }
    if (!requester_here(d, j)) {
      left = 1;
      break;
    }
    p->waiting++;
    pthread_cond_broadcast(&d->cv);
    timed_wait_ms(d, 100);
    /* The generator may have dropped or moved the pool meanwhile. */
    p = pool_find(d, j->h.name, batch, 0);
    if (p != NULL)
      p->waiting--;
  }
  *t_wait = cl__now(&d->hooks) - t0;
  if (p == NULL || p->n == 0) {
    const char *why = p == NULL ? failure_find(d, j->h.name, batch) : NULL;
    if (no_room) {
      rc = TANDEM_ENOMEM;
      snprintf(err, errlen, "the dealer is making preprocessing for %u other batch "
               "sizes at once; ask again later", (unsigned)POOLS_CAP);
    } else if (why != NULL) {
      rc = TANDEM_EINVAL;
      snprintf(err, errlen, "no preprocessing for %s at batch %zu: %s", j->h.name, batch,
               why);
    } else if (left) {
      rc = TANDEM_ECLOSED;
      snprintf(err, errlen, "the client left while its preprocessing was being made");
    } else {
      rc = TANDEM_ETIMEDOUT;
      char est[96] = "";
      if (eta >= 0)
        snprintf(est, sizeof est, ", about %.0f s more at its current rate", eta);
      snprintf(err, errlen,
               "no preprocessing for %s at batch %zu %s within the timeout (%.0f s): the "
               "dealer is still making it%s; ask again later, or raise timeout_ms",
               j->h.name, batch, hopeless ? "can be made" : "was made",
               d->cfg->timeout_ms / 1000.0, est);
    }
  } else {
    *prep = p->ready[0];
    memmove(p->ready, p->ready + 1, (p->n - 1) * sizeof p->ready[0]);
    p->n--;
    pthread_cond_broadcast(&d->cv);
  }
  return rc;
}

/* Tells both parties of query seq (tag, the model's version) and sends the
 * client and each party its part of prep, or, when the client's part cannot
 * go (it left), the query's cancel to each party told. 0 when every part
 * went out. */
static int query_send(cl_dealer_t *d, const job_t *j, uint64_t seq, uint64_t tag,
                      uint64_t version, prep_t *prep) {
  int rc = 0;
  size_t batch = (size_t)j->h.batch;
  cl_ctrl_t h;
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_QUERY;
  h.seq = seq;
  h.batch = batch;
  h.peer = (uint32_t)j->from;
  h.tag = tag;
  h.version = version;
  memcpy(h.name, j->h.name, sizeof h.name);
  /* The links the parties learn of the query on: a party that restarts (or
   * redials after giving the query up) meanwhile knows nothing of it, and a
   * large part it never reads would stall its link (net stops reading a
   * link whose unread messages exceed queue_bytes). */
  uint64_t links[2];
  for (int id = CL_P0; id <= CL_P1; id++)
    links[id] = cl_peer_link(d->node, id);
  int told[2] = {0, 0}; /* which parties know of the query */
  for (int id = CL_P0; id <= CL_P1 && rc == 0; id++)
    if (!(told[id] = (rc = cl_ctrl_send_on(d->node, id, links[id], &h, NULL, 0)) == 0))
      LOG(d, "query %llu: telling p%d failed: %s", (unsigned long long)seq, id,
             tandem_strerror(rc));
  cl_link_t link;
  cl_link_init(&link, d->node, MPC_DEALER, j->from, tag, d->cfg->timeout_ms);
  /* A part goes only on the link its party was told of the query on: net
   * refuses it on a newer one (a killed party that is back knows nothing of
   * the query), with TANDEM_ECONNRESET. */
  link.link[MPC_P0] = links[CL_P0];
  link.link[MPC_P1] = links[CL_P1];
  link.link[MPC_CLIENT] = j->links;
  /* The client's small part first: its masked input then reaches the
   * parties while they take in their large parts. Then both parties' parts
   * at once (P0's from a second thread): sent one after the other, the
   * second party's receive would make no progress for as long as the first
   * part takes, which on a loaded machine can exceed its timeout.
   *
   * Once told of the query, each party gets its part or, when the client's
   * send failed (it left), the query's cancel message: withheld, its part
   * would leave the party waiting out its timeout, then dropping its link to
   * the dealer with the next query's messages on it. A party whose link
   * changed meanwhile knows nothing of the query and gets neither (net
   * refuses sends on another link than the step's). */
  pthread_mutex_lock(&d->mu);
  d->sending = 1;
  pthread_mutex_unlock(&d->mu);
  (void)cl__fault(&d->hooks, CL_FAULT_DEALER_BEFORE_PREP, seq, j->from);
  if (rc == 0) {
    rc = cl_link_send_in_place(&link, MPC_CLIENT, prep->msg[2], prep->len[2]);
    if (rc != 0)
      LOG(d, "query %llu: sending the client its preprocessing failed: %s",
             (unsigned long long)seq, tandem_strerror(rc));
  } else {
    /* Its query cannot run: it hears so now (a client that left hears nothing). */
    int gone = cl_link_cancel(&link, MPC_CLIENT);
    (void)gone;
  }
  part_send_t part[2];
  pthread_t helper;
  int helper_up = 0, sending = rc == 0;
  for (int i = 0; i < 2; i++) {
    part[i] = (part_send_t){&link, (mpc_role_t)i, prep->msg[i], prep->len[i], 0};
    if (!told[i])
      continue;
    if (!sending) {
      if (cl_link_cancel(&link, (mpc_role_t)i) == 0)
        LOG(d, "query %llu: cancelled at p%d", (unsigned long long)seq, i);
    } else if (i == 0 && pthread_create(&helper, NULL, part_send_main, &part[0]) == 0) {
      helper_up = 1;
    } else {
      part_send_main(&part[i]);
    }
  }
  if (helper_up)
    pthread_join(helper, NULL);
  for (int i = 0; i < 2 && sending; i++) {
    if (part[i].rc == TANDEM_ECONNRESET)
      LOG(d, "query %llu: p%d reconnected during the query", (unsigned long long)seq, i);
    else if (part[i].rc != 0)
      LOG(d, "query %llu: sending p%d its preprocessing failed: %s",
             (unsigned long long)seq, i, tandem_strerror(part[i].rc));
    if (rc == 0)
      rc = part[i].rc;
  }
  pthread_mutex_lock(&d->mu);
  d->sending = 0;
  pthread_cond_broadcast(&d->cv);
  pthread_mutex_unlock(&d->mu);
  return rc;
}

/* Counts a failed query of client k (seq 0: one the parties never heard
 * of; a query both parties report failed is counted once) and starts its
 * back-off after BACKOFF_AFTER in a row. Under d->mu. */
static void client_failed(cl_dealer_t *d, int k, uint64_t seq) {
  if (k < CL_CLIENT0 || k >= NET_MAX_PEERS || (seq != 0 && d->cli[k].failed_seq == seq))
    return;
  d->cli[k].failed_seq = seq;
  unsigned n = ++d->cli[k].fails;
  if (n < BACKOFF_AFTER)
    return;
  double wait = ldexp(1.0, (int)(n - BACKOFF_AFTER < 10 ? n - BACKOFF_AFTER : 10));
  wait = wait > BACKOFF_MAX_S ? BACKOFF_MAX_S : wait;
  d->cli[k].backoff_until = cl__now(&d->hooks) + wait;
  LOG(d, "client %d: %u queries failed in a row; its requests are refused for %.0f s", k, n,
      wait);
}

/* Client k's last query is still running at the parties: told to them, not
 * reported done by both, and not older than twice the timeout (by then
 * both gave it up; a party that died reports nothing). Under d->mu. */
static int client_busy(cl_dealer_t *d, int k) {
  uint64_t seq = d->cli[k].seq;
  return seq != 0 && (d->done[0] < seq || d->done[1] < seq) &&
         cl__now(&d->hooks) < d->cli[k].told_at + 2 * d->cfg->timeout_ms / 1000.0;
}

/* At most one query per client key at a time, and none during its
 * back-off: 0, or the refusal with its reason. Under d->mu. */
static int client_admit(cl_dealer_t *d, int k, char *err, size_t errlen) {
  double now = cl__now(&d->hooks);
  if (now < d->cli[k].backoff_until) {
    snprintf(err, errlen,
             "client %d: its last %u queries failed; refused for %.0f s more (back-off)", k,
             d->cli[k].fails, d->cli[k].backoff_until - now + 0.5);
    return TANDEM_EAUTH;
  }
  if (client_busy(d, k)) {
    snprintf(err, errlen,
             "client %d: its query %llu is still running at the parties (one query at a "
             "time per client)", k, (unsigned long long)d->cli[k].seq);
    return TANDEM_EINVAL;
  }
  return 0;
}

/* Whether a query of model m at `batch` can be served at all, before any
 * plan of that batch is compiled or pool made for it (issue 15: batches of
 * 20000 and 20001, each refused only after its plan was compiled and cached,
 * left the dealer at 7 GB): its plan's memory within plan_mem_max, and its
 * preprocessing, linear in the batch, within one message for every role (a
 * query's preprocessing is one message; the client splits a larger batch,
 * e.g. `infer --chunk`). Run by the worker without d->mu (the sizes are
 * computed once per model, from two small plans). */
static int query_admit(cl_dealer_t *d, cl_model_t *m, const char *name, size_t batch,
                       char *err, size_t errlen) {
  char why[256];
  int rc = cl_plan_mem_check(&m->graph, batch, d->cfg->plan_mem_max, why, sizeof why);
  if (rc != 0) {
    snprintf(err, errlen, "%s at batch %zu: %s", name, batch, why);
    return rc;
  }
  size_t bytes[3];
  if ((rc = cl_model_prep_bytes(&d->store, m, batch, bytes, err, errlen)) != 0)
    return rc;
  static const char *const role[3] = {"p0", "p1", "the client"};
  size_t max = d->cfg->max_msg ? d->cfg->max_msg : NET_DEFAULT_MAX_MSG;
  size_t room = max - CL_TAG_BYTES;
  for (int r = 0; r < 3; r++)
    if (bytes[r] > room) {
      size_t fit = m->prep_base[r] < room && m->prep_row[r] > 0
                       ? (room - m->prep_base[r]) / m->prep_row[r]
                       : 0;
      snprintf(err, errlen,
               "%s at batch %zu: its preprocessing for %s would be %zu bytes, over max_msg "
               "(%zu) and not split by the dealer; ask for at most %zu rows per query",
               name, batch, role[r], bytes[r], max, fit);
      return TANDEM_EINVAL;
    }
  return 0;
}

static void do_query(cl_dealer_t *d, job_t *j) {
  char err[512] = "";
  int rc = 0;
  uint32_t flags = 0;
  prep_t *prep = NULL;
  uint8_t *graph = NULL;
  size_t glen = 0;
  double t_wait = 0;
  if (j->from < CL_CLIENT0) {
    snprintf(err, sizeof err, "only clients send queries");
    reply(d, j->from, j->links, &j->h, TANDEM_EAUTH, 0, 0, 0, err, strlen(err));
    return;
  }
  size_t batch = (size_t)j->h.batch;
  double deadline = reply_deadline(d, j->t_in);
  pthread_mutex_lock(&d->mu);
  /* A refusal of the admission itself is not counted as a failure: the
   * back-off would never end. */
  int admitted = (rc = client_admit(d, j->from, err, sizeof err)) == 0;
  cl_model_t *m = NULL;
  if (rc == 0)
    rc = cl_store_get(&d->store, j->h.name, &m, err, sizeof err);
  if (rc == 0 && (batch == 0 || batch > CL_MAX_BATCH)) {
    rc = TANDEM_EINVAL;
    snprintf(err, sizeof err, "batch size %zu outside 1..%u", batch, CL_MAX_BATCH);
  }
  if (rc == 0 && (graph = malloc(m->graph_len)) == NULL)
    rc = TANDEM_ENOMEM;
  uint64_t version = 0;
  if (rc == 0) {
    memcpy(graph, m->graph_bytes, m->graph_len);
    glen = m->graph_len;
    version = m->version;
  }
  pthread_mutex_unlock(&d->mu);
  /* m stays: only this thread (do_share) replaces a model. */
  if (rc == 0)
    rc = query_admit(d, m, j->h.name, batch, err, sizeof err);
  if (rc == 0) {
    pthread_mutex_lock(&d->mu);
    rc = prep_take(d, j, batch, deadline, &prep, &flags, &t_wait, err, sizeof err);
    pthread_mutex_unlock(&d->mu);
  }
  if (rc == 0)
    rc = parties_up(d, deadline, err, sizeof err);
  /* A client that left, or gave up waiting for this reply, would never send
   * its masked input: the parties are not told of the query at all. */
  if (rc == 0 && (!requester_here(d, j) || cl__now(&d->hooks) > j->t_in + d->cfg->timeout_ms / 1e3)) {
    LOG(d, "query from client %d (%s, batch %zu) dropped: the client %s", j->from,
           j->h.name, batch, requester_here(d, j) ? "gave up waiting" : "left");
    pthread_mutex_lock(&d->mu);
    pool_return(d, j->h.name, batch, prep);
    client_failed(d, j->from, 0);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    prep = NULL;
    goto out;
  }
  uint64_t seq = ++d->seq;
  if (rc != 0) {
    LOG(d, "query from client %d refused: %s", j->from, err);
    pthread_mutex_lock(&d->mu);
    if (prep != NULL)
      pool_return(d, j->h.name, batch, prep);
    prep = NULL;
    if (admitted)
      client_failed(d, j->from, seq);
    pthread_mutex_unlock(&d->mu);
    if (requester_here(d, j))
      reply(d, j->from, j->links, &j->h, rc, seq, 0, 0, err, strlen(err));
    goto out;
  }
  uint64_t tag;
  randombytes_buf(&tag, sizeof tag);
  reply(d, j->from, j->links, &j->h, 0, seq, flags, tag, graph, glen);
  pthread_mutex_lock(&d->mu);
  d->cli[j->from].seq = seq;
  d->cli[j->from].told_at = cl__now(&d->hooks);
  pthread_mutex_unlock(&d->mu);
  rc = query_send(d, j, seq, tag, version, prep);
  if (rc != 0) {
    pthread_mutex_lock(&d->mu);
    client_failed(d, j->from, seq);
    pthread_mutex_unlock(&d->mu);
  }
  if (rc == 0 && (flags & CL_FLAG_WAITED))
    LOG(d, "query %llu (%s, batch %zu, client %d): preprocessing sent (made on demand, "
           "waited %.2f s)", (unsigned long long)seq, j->h.name, batch, j->from, t_wait);
  else if (rc == 0)
    LOG(d, "query %llu (%s, batch %zu, client %d): preprocessing sent",
           (unsigned long long)seq, j->h.name, batch, j->from);
out:
  if (prep != NULL)
    prep_free(prep);
  free(graph);
}

/* The first job of the FIFO that can be served now, taken out of it: an
 * owner's SHARE, or a client's REQ unless that client's previous query is
 * still running at the parties (then it waits its turn, behind other
 * clients' queries, until its reply is due: do_query then refuses it with
 * the reason). NULL if none. Under d->mu. */
static job_t *job_pick(cl_dealer_t *d) {
  job_t *prev = NULL;
  for (job_t *j = d->head; j != NULL; prev = j, j = j->next) {
    if (j->h.type == CL_MSG_REQ && j->from >= CL_CLIENT0 && client_busy(d, j->from) &&
        cl__now(&d->hooks) < reply_deadline(d, j->t_in))
      continue;
    if (prev != NULL)
      prev->next = j->next;
    else
      d->head = j->next;
    if (d->tail == j)
      d->tail = prev;
    j->next = NULL;
    return j;
  }
  return NULL;
}

static void *worker_main(void *arg) {
  cl_dealer_t *d = arg;
  pthread_mutex_lock(&d->mu);
  while (!atomic_load(&d->stop)) {
    if (d->head == NULL) {
      timed_wait_ms(d, 200);
      continue;
    }
    job_t *j = job_pick(d);
    if (j == NULL) { /* each waits for its client's previous query */
      timed_wait_ms(d, 50);
      continue;
    }
    d->jobs[j->from]--;
    pthread_mutex_unlock(&d->mu);
    if (j->h.type == CL_MSG_SHARE)
      do_share(d, j);
    else if (j->h.type == CL_MSG_REQ)
      do_query(d, j);
    else
      LOG(d, "unexpected control message %u from peer %d", j->h.type, j->from);
    free(j->payload);
    free(j);
    pthread_mutex_lock(&d->mu);
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

/* ---- readers ------------------------------------------------------------------ */

/* One reader per owner or client for the dealer's lifetime: it moves the
 * peer's control messages into the FIFO (at most JOBS_PER_PEER waiting, so
 * one client cannot crowd out the others) and waits for the peer to come
 * back when its link ends.
 *
 * It reads the peer's links one after the other, each to its last queued
 * message (cl_ctrl_recv_on), and a job records the link its message came
 * on: the link up when the message is taken may be a newer process's under
 * the same key. A request of a client that died, taken once the next process
 * under its key was connected, was once served on the new process's link,
 * and the parties' receive of the dead query dropped the new query's input
 * (found by retry_same_key). */
static void *reader_main(void *arg) {
  reader_arg_t *ra = arg;
  cl_dealer_t *d = ra->d;
  int id = ra->id;
  uint64_t cur = 0; /* the link read now (net's count; 0: none made yet) */
  while (!atomic_load(&d->stop)) {
    (void)cl__fault(&d->hooks, CL_FAULT_DEALER_READ, cur, id);
    uint64_t last = cl_peer_link(d->node, id);
    if (cur == 0 && last == 0) {
      if (net_accept(d->node, id, 500) != 0)
        continue; /* not connected yet: look at the stop flag again */
      continue;
    }
    if (cur == 0)
      cur = 1;
    pthread_mutex_lock(&d->mu);
    int full = d->jobs[id] >= JOBS_PER_PEER;
    if (full)
      timed_wait_ms(d, 100);
    pthread_mutex_unlock(&d->mu);
    if (full)
      continue;
    job_t *j = calloc(1, sizeof *j);
    if (j == NULL)
      break;
    int rc = cl_ctrl_recv_on(d->node, id, cur, &j->h, &j->payload, &j->plen, 500);
    if (rc != 0) {
      free(j);
      int live = net_peer_up(d->node, id) && cl_peer_link(d->node, id) == cur;
      if (rc != TANDEM_ETIMEDOUT && rc != TANDEM_ECLOSED && rc != TANDEM_ECONNRESET)
        LOG(d, "peer %d: %s", id, tandem_strerror(rc));
      /* A bad message ends that link, and that link only: the peer may
       * already be on a newer one (a client that died and came back at once
       * under its name), which closing "the peer's link" would end. */
      if (rc != TANDEM_ETIMEDOUT && rc != TANDEM_ECLOSED && rc != TANDEM_ECONNRESET && live)
        (void)net_peer_close(d->node, id);
      if (rc == TANDEM_ETIMEDOUT && live)
        continue;
      /* Link `cur` ended and nothing of it is left: on to the next one, or
       * wait for the peer to come back. */
      if (cur < cl_peer_link(d->node, id))
        cur++;
      else if (!net_peer_up(d->node, id) && net_accept(d->node, id, 500) != 0)
        continue; /* not back yet: look at the stop flag again */
      continue;
    }
    if (j->h.type == CL_MSG_REQ && j->plen != 0) {
      LOG(d, "peer %d: a query with a payload; link closed", id);
      free(j->payload);
      free(j);
      if (net_peer_up(d->node, id) && cl_peer_link(d->node, id) == cur)
        (void)net_peer_close(d->node, id);
      continue;
    }
    j->from = id;
    j->t_in = cl__now(&d->hooks);
    j->links = cur;
    pthread_mutex_lock(&d->mu);
    d->jobs[id]++;
    if (d->tail != NULL)
      d->tail->next = j;
    else
      d->head = j;
    d->tail = j;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
  }
  return NULL;
}

/* One reader per compute party: the party reports each query it ends
 * (CL_MSG_ACK: seq, status, the client in peer), which ends that client's
 * outstanding query (client_busy) and counts its failures (back-off). */
static void *party_reader_main(void *arg) {
  reader_arg_t *ra = arg;
  cl_dealer_t *d = ra->d;
  int id = ra->id;
  while (!atomic_load(&d->stop)) {
    if (!net_peer_up(d->node, id) && net_accept(d->node, id, 500) != 0)
      continue;
    cl_ctrl_t h;
    uint8_t *payload = NULL;
    size_t plen = 0;
    int rc = cl_ctrl_recv(d->node, id, &h, &payload, &plen, 500);
    free(payload);
    if (rc != 0) {
      if (rc != TANDEM_ETIMEDOUT && !net_peer_up(d->node, id)) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL); /* its link ended: wait for the next */
      }
      continue;
    }
    if (h.type != CL_MSG_ACK)
      continue;
    pthread_mutex_lock(&d->mu);
    if (h.seq > d->done[id])
      d->done[id] = h.seq;
    int k = (int)h.peer;
    if (k >= CL_CLIENT0 && k < NET_MAX_PEERS && h.seq == d->cli[k].seq) {
      if (h.status != 0)
        client_failed(d, k, h.seq);
      else if (d->cli[k].failed_seq != h.seq)
        d->cli[k].fails = 0;
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
  }
  return NULL;
}

/* ---- the service ---------------------------------------------------------------- */

int cl_dealer_new(cl_dealer_t **out, const cl_config_t *cfg, const cl_hooks_t *hooks,
                  char *err, size_t errlen) {
  *out = NULL;
  const char *dir = cfg->m[CL_DEALER].data_dir;
  if (dir[0] == '\0') {
    snprintf(err, errlen, "%s: [dealer] has no data directory", cfg->path);
    return TANDEM_ECONFIG;
  }
  int rc = cl_data_dir(dir, err, errlen);
  if (rc != 0)
    return rc;
  cl_dealer_t *d = calloc(1, sizeof *d);
  if (d == NULL)
    return TANDEM_ENOMEM;
  d->cfg_copy = *cfg;
  d->cfg = &d->cfg_copy;
  if (hooks != NULL)
    d->hooks = *hooks;
  d->netlog = (cl__netlog_t){&d->hooks, WHO};
  atomic_init(&d->stop, 0);
  for (int g = 0; g < 2; g++)
    pthread_mutex_init(&d->gen_mu[g], NULL);
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->cv, NULL);
  rc = cl_node_open(d->cfg, CL_DEALER, 1, &d->node, cl__net_log, &d->netlog, err, errlen);
  if (rc != 0) {
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    for (int g = 0; g < 2; g++)
      pthread_mutex_destroy(&d->gen_mu[g]);
    free(d);
    return rc;
  }
  cl_store_init(&d->store, d->cfg->m[CL_DEALER].data_dir, MPC_DEALER);
  d->store.mem_max = d->cfg->plan_mem_max;
  *out = d;
  return 0;
}

net_node_t *cl_dealer_node(cl_dealer_t *d) { return d->node; }
cl_store_t *cl__dealer_store(cl_dealer_t *d) { return &d->store; }

int cl_dealer_start(cl_dealer_t *d) {
  if (d->started)
    return TANDEM_EINVAL;
  LOG(d, "listening on %s port %u, pool of %u queries per model",
      d->cfg->m[CL_DEALER].host, (unsigned)d->cfg->m[CL_DEALER].port, d->cfg->pool);
  int rc = pthread_create(&d->worker, NULL, worker_main, d);
  if (rc != 0)
    return -rc;
  for (int g = 0; g < 2; g++) {
    d->gen_arg[g] = (gen_arg_t){d, g};
    if ((rc = pthread_create(&d->gen[g], NULL, generator_main, &d->gen_arg[g])) != 0) {
      atomic_store(&d->stop, 1);
      pthread_join(d->worker, NULL);
      while (g-- > 0)
        pthread_join(d->gen[g], NULL);
      return -rc;
    }
  }
  d->started = 1;
  /* A reader for each party's reports, the owner and every client of the
   * config. */
  for (int id = 0; id < NET_MAX_PEERS; id++) {
    d->reader_arg[id] = (reader_arg_t){d, id};
    void *(*fn)(void *) = id == CL_P0 || id == CL_P1 ? party_reader_main : reader_main;
    if (d->cfg->m[id].present && (id <= CL_P1 || id == CL_OWNER || id >= CL_CLIENT0) &&
        pthread_create(&d->readers[id], NULL, fn, &d->reader_arg[id]) == 0)
      d->reader_started[id] = 1;
  }
  return 0;
}

void cl_dealer_step(cl_dealer_t *d, int timeout_ms) {
  struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000 * 1000};
  nanosleep(&ts, NULL);
  for (int id = CL_P0; id <= CL_P1; id++) {
    int up = net_peer_up(d->node, id);
    uint64_t link = cl_peer_link(d->node, id);
    /* A party that restarted between two steps is up both times on a new
     * link: its old link's end and the new one are both logged. */
    if (up && d->was_up[id] && link != d->was_link[id])
      LOG(d, "p%d disconnected", id);
    if (up != d->was_up[id] || (up && link != d->was_link[id]))
      LOG(d, "p%d %s", id, up ? "connected" : "disconnected");
    d->was_up[id] = up;
    d->was_link[id] = link;
  }
}

void cl_dealer_stop(cl_dealer_t *d) {
  if (!d->started)
    return;
  LOG(d, "stopping");
  atomic_store(&d->stop, 1);
  pthread_mutex_lock(&d->mu);
  pthread_cond_broadcast(&d->cv);
  pthread_mutex_unlock(&d->mu);
  pthread_join(d->worker, NULL);
  for (int g = 0; g < 2; g++)
    pthread_join(d->gen[g], NULL);
  for (int id = 0; id < NET_MAX_PEERS; id++)
    if (d->reader_started[id]) {
      pthread_join(d->readers[id], NULL);
      d->reader_started[id] = 0;
    }
  d->started = 0;
}

void cl_dealer_free(cl_dealer_t *d) {
  if (d == NULL)
    return;
  cl_dealer_stop(d);
  net_node_free(d->node);
  for (unsigned i = 0; i < d->npools; i++)
    for (unsigned j = 0; j < d->pools[i].n; j++)
      prep_free(d->pools[i].ready[j]);
  cl_store_close(&d->store);
  while (d->head != NULL) {
    job_t *j = d->head;
    d->head = j->next;
    free(j->payload);
    free(j);
  }
  pthread_cond_destroy(&d->cv);
  pthread_mutex_destroy(&d->mu);
  for (int g = 0; g < 2; g++)
    pthread_mutex_destroy(&d->gen_mu[g]);
  free(d);
}
