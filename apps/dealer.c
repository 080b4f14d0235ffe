/* dealer.c - `tandem dealer --config FILE`: the dealer daemon, which also
 * sequences the cluster.
 *
 * Owners and clients talk to the dealer first: a model owner's SHARE (the
 * public graph of a model) and a client's REQ (one query of a model at a
 * batch size) go into one FIFO, and a single worker thread serves it in
 * order, so both parties see the same SETUP and QUERY messages in the same
 * order. The dealer never receives a weight, an input or an output: it holds
 * the weight masks R_W of each model (stored sealed under its data
 * directory) and makes fresh correlated randomness per query.
 *
 * The preprocessing of queries is made ahead of time: a generator thread
 * keeps up to `pool` ready queries for every (model, batch size) it has been
 * asked for (batch 1 from the start), so the online phase of a query never
 * waits for key generation while queries arrive slower than the dealer makes
 * them; a query that finds its pool empty waits for the generator and the
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "apps.h"
#include "daemon.h"

#define WHO "dealer"
#define MAX_KEYS 64
#define POOL_MAX 64 /* ready queries per (model, batch) */
#define JOBS_PER_PEER 4

/* ---- one query's preprocessing, captured in memory --------------------------- */

/* Each part is kept behind CL_TAG_BYTES of headroom, where the query's tag
 * goes when it is sent (cl_link_send_in_place): a part of hundreds of MB is
 * sent without another copy. */
typedef struct {
  uint8_t *msg[3]; /* P0, P1, client: headroom, then len bytes */
  size_t len[3];
} prep_t;

static void prep_free(prep_t *p) {
  for (int i = 0; i < 3; i++)
    if (p->msg[i] != NULL) {
      sodium_memzero(p->msg[i], p->len[i] + CL_TAG_BYTES);
      free(p->msg[i]);
    }
  free(p);
}

typedef struct {
  mpc_transport_t base;
  prep_t *prep;
} capture_t;

static int cap_send(mpc_transport_t *t, mpc_role_t to, const void *buf, size_t len) {
  capture_t *c = (capture_t *)t;
  int slot = to == MPC_P0 ? 0 : to == MPC_P1 ? 1 : to == MPC_CLIENT ? 2 : -1;
  if (slot < 0 || c->prep->msg[slot] != NULL || len > SIZE_MAX - CL_TAG_BYTES)
    return TANDEM_EINVAL;
  if ((c->prep->msg[slot] = malloc(len + CL_TAG_BYTES)) == NULL)
    return TANDEM_ENOMEM;
  memcpy(c->prep->msg[slot] + CL_TAG_BYTES, buf, len);
  c->prep->len[slot] = len;
  return 0;
}
static int cap_recv(mpc_transport_t *t, mpc_role_t from, void *buf, size_t len) {
  (void)t, (void)from, (void)buf, (void)len;
  return TANDEM_EINVAL;
}
static int cap_exchange(mpc_transport_t *t, mpc_role_t peer, const void *s, size_t sl,
                        void *r, size_t rl) {
  (void)t, (void)peer, (void)s, (void)sl, (void)r, (void)rl;
  return TANDEM_EINVAL;
}
static void cap_close(mpc_transport_t *t) { (void)t; }
static const mpc_transport_ops_t cap_ops = {cap_send, cap_recv, cap_exchange, cap_close};

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
} pool_t;

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
  const cl_config_t *cfg;
  net_node_t *node;
  pthread_mutex_t gen_mu;  /* held by the generator while it uses a model */
  pthread_mutex_t mu;
  pthread_cond_t cv;       /* jobs, pool changes */
  job_t *head, *tail;
  pool_t pools[MAX_KEYS];
  unsigned npools;
  dm_store_t store;        /* guarded by mu */
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
  struct { /* the generator's measured speed per model, for the wait estimate */
    char name[CL_NAME_MAX];
    double s_per_byte;
  } rate[8];
  unsigned nrate;
} dealer_t;

static dealer_t D;

static pool_t *pool_find(const char *name, size_t batch, int create) {
  for (unsigned i = 0; i < D.npools; i++)
    if (D.pools[i].batch == batch && strcmp(D.pools[i].name, name) == 0)
      return &D.pools[i];
  if (!create)
    return NULL;
  if (D.npools == MAX_KEYS) {
    /* Forget the least useful pool: the last one. */
    pool_t *p = &D.pools[MAX_KEYS - 1];
    for (unsigned i = 0; i < p->n; i++)
      prep_free(p->ready[i]);
    D.npools--;
  }
  pool_t *p = &D.pools[D.npools++];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->batch = batch;
  return p;
}

static void pools_drop_model(const char *name) {
  for (unsigned i = 0; i < D.npools;) {
    if (strcmp(D.pools[i].name, name) == 0) {
      for (unsigned j = 0; j < D.pools[i].n; j++)
        prep_free(D.pools[i].ready[j]);
      D.pools[i] = D.pools[--D.npools];
    } else {
      i++;
    }
  }
}

/* ---- the generator ------------------------------------------------------------ */

/* Drops the pool of one (model, batch). Under D.mu. */
static void pool_drop(const char *name, size_t batch) {
  for (unsigned i = 0; i < D.npools; i++)
    if (D.pools[i].batch == batch && strcmp(D.pools[i].name, name) == 0) {
      for (unsigned j = 0; j < D.pools[i].n; j++)
        prep_free(D.pools[i].ready[j]);
      D.pools[i] = D.pools[--D.npools];
      return;
    }
}

/* Records why a (model, batch) cannot be prepared. Under D.mu. */
static void failure_note(const char *name, size_t batch, const char *why) {
  unsigned i = D.nfailed++ % 8;
  snprintf(D.failed[i].name, sizeof D.failed[i].name, "%s", name);
  D.failed[i].batch = batch;
  snprintf(D.failed[i].why, sizeof D.failed[i].why, "%s", why);
}

static const char *failure_find(const char *name, size_t batch) {
  for (unsigned k = 0; k < 8 && k < D.nfailed; k++) {
    unsigned i = (D.nfailed - 1 - k) % 8;
    if (D.failed[i].batch == batch && strcmp(D.failed[i].name, name) == 0)
      return D.failed[i].why;
  }
  return NULL;
}

static unsigned pool_target(void) {
  unsigned target = D.cfg->pool ? D.cfg->pool : 1;
  return target > POOL_MAX ? POOL_MAX : target;
}

/* The generator's seconds per byte of preprocessing for a model (0: not
 * measured yet). Under D.mu. */
static double *rate_slot(const char *name, int create) {
  for (unsigned i = 0; i < D.nrate && i < 8; i++)
    if (strcmp(D.rate[i].name, name) == 0)
      return &D.rate[i].s_per_byte;
  if (!create)
    return NULL;
  unsigned i = D.nrate++ % 8;
  snprintf(D.rate[i].name, sizeof D.rate[i].name, "%s", name);
  D.rate[i].s_per_byte = 0;
  return &D.rate[i].s_per_byte;
}

/* Seconds until the generator has one query's preprocessing ready for p,
 * from its measured rate on that model; -1 when it cannot tell (no rate yet,
 * or the size is not known until the generator first looks at the pool).
 * Under D.mu. */
static double pool_eta(const pool_t *p) {
  const double *r = rate_slot(p->name, 0);
  if (r == NULL || *r <= 0 || p->bytes == 0)
    return -1;
  double one = *r * (double)p->bytes;
  return p->making ? one - (cl_now() - p->since) : one;
}

/* The pool most in need: one with a waiting query first, else the emptiest
 * below the target. Under D.mu. */
static pool_t *pool_pick(void) {
  pool_t *best = NULL;
  unsigned target = pool_target();
  for (unsigned i = 0; i < D.npools; i++) {
    pool_t *p = &D.pools[i];
    if (p->waiting > 0 && p->n < POOL_MAX && (best == NULL || best->waiting == 0))
      best = p;
    else if ((best == NULL || best->waiting == 0) && p->n < target &&
             (best == NULL || p->n < best->n))
      best = p;
  }
  return best;
}

static void timed_wait_ms(long ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += ms * 1000 * 1000;
  ts.tv_sec += ts.tv_nsec / 1000000000;
  ts.tv_nsec %= 1000000000;
  pthread_cond_timedwait(&D.cv, &D.mu, &ts);
}

/* Lock order: gen_mu, then mu. The generator holds gen_mu only while it
 * makes keys from a model (never while idle), so a SHARE never replaces the
 * model, and the dealer object in its plan, under it.
 *
 * It starts nothing while the worker sends a query's preprocessing: the
 * parties wait for that message under their timeout, and on a small machine
 * a generator filling the pool ahead takes the cores that seal it (and that
 * the parties need to open it). No query waits for the pool meanwhile (the
 * worker serves one job at a time). */
static void *generator_main(void *arg) {
  (void)arg;
  while (!atomic_load(&dm_stop)) {
    pthread_mutex_lock(&D.mu);
    if (D.sending || pool_pick() == NULL)
      timed_wait_ms(200);
    pthread_mutex_unlock(&D.mu);
    pthread_mutex_lock(&D.gen_mu);
    pthread_mutex_lock(&D.mu);
    pool_t *best = D.sending ? NULL : pool_pick();
    if (best == NULL) {
      pthread_mutex_unlock(&D.mu);
      pthread_mutex_unlock(&D.gen_mu);
      continue;
    }
    char name[CL_NAME_MAX], err[512];
    snprintf(name, sizeof name, "%s", best->name);
    size_t batch = best->batch;
    dm_model_t *m;
    dm_plan_t *pl;
    int rc = dm_store_get(&D.store, name, &m, err, sizeof err);
    if (rc == 0)
      rc = dm_model_plan(&D.store, m, batch, &pl, err, sizeof err);
    if (rc == 0) {
      /* A query whose preprocessing exceeds the largest message is refused
       * here, before any key is made. */
      static const mpc_role_t roles[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
      size_t max = D.cfg->max_msg ? D.cfg->max_msg : NET_DEFAULT_MAX_MSG;
      for (int i = 0; i < 3 && rc == 0; i++)
        if (mpc_plan_prep_bytes(pl->plan, roles[i]) + 8 > max) {
          rc = TANDEM_EINVAL;
          snprintf(err, sizeof err, "its preprocessing (%zu bytes for %s) exceeds max_msg",
                   mpc_plan_prep_bytes(pl->plan, roles[i]), mpc_role_name(roles[i]));
        }
    }
    if (rc != 0) {
      dm_log(WHO, "cannot prepare %s at batch %zu: %s", name, batch, err);
      failure_note(name, batch, err);
      pool_drop(name, batch);
      pthread_cond_broadcast(&D.cv);
      pthread_mutex_unlock(&D.mu);
      pthread_mutex_unlock(&D.gen_mu);
      continue;
    }
    mpc_dealer_t *dl = pl->obj;
    /* What a waiting query reads to tell whether it can still be served. */
    static const mpc_role_t all[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
    best->bytes = 0;
    for (int i = 0; i < 3; i++)
      best->bytes += mpc_plan_prep_bytes(pl->plan, all[i]);
    best->making = 1;
    double t0 = best->since = cl_now();
    pthread_mutex_unlock(&D.mu);
    prep_t *prep = calloc(1, sizeof *prep);
    capture_t cap;
    memset(&cap, 0, sizeof cap);
    cap.base.ops = &cap_ops;
    cap.base.self = MPC_DEALER;
    cap.prep = prep;
    rc = prep == NULL ? TANDEM_ENOMEM : mpc_dealer_query(dl, &cap.base);
    double took = cl_now() - t0;
    pthread_mutex_lock(&D.mu);
    pool_t *p = pool_find(name, batch, 0);
    if (p != NULL)
      p->making = 0;
    if (rc == 0 && p != NULL && p->bytes > 0) {
      /* The latest measure counts most: the machine's load changes. */
      double *r = rate_slot(name, 1), now = took / (double)p->bytes;
      *r = *r > 0 ? 0.5 * *r + 0.5 * now : now;
    }
    if (rc != 0) {
      /* Not retried: the next query of this batch size asks again. */
      dm_log(WHO, "preprocessing for %s at batch %zu failed: %s", name, batch,
             tandem_strerror(rc));
      if (prep != NULL)
        prep_free(prep);
      failure_note(name, batch, tandem_strerror(rc));
      pool_drop(name, batch);
    } else if (p == NULL || p->n == POOL_MAX) {
      prep_free(prep);
    } else {
      p->ready[p->n++] = prep;
      if (!p->was_full && p->n >= pool_target()) {
        p->was_full = 1;
        dm_log(WHO, "%s at batch %zu: %u queries prepared ahead (%.1f MB, %.2f s each)", name,
               batch, p->n, (double)p->bytes / 1e6, took);
      }
    }
    pthread_cond_broadcast(&D.cv);
    pthread_mutex_unlock(&D.mu);
    pthread_mutex_unlock(&D.gen_mu);
  }
  return NULL;
}

/* ---- the worker --------------------------------------------------------------- */

static void reply(int peer, uint64_t link, const cl_ctrl_t *req, int status, uint64_t seq,
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
  if (cl_ctrl_send_on(D.node, peer, link, &h, payload, plen) != 0)
    dm_log(WHO, "could not reply to peer %d", peer);
}


/* Both parties connected, waiting for them until `deadline` (cl_now). */
static int parties_up(double deadline, char *err, size_t errlen) {
  for (int id = CL_P0; id <= CL_P1; id++) {
    double left_ms = (deadline - cl_now()) * 1e3;
    if (!net_peer_up(D.node, id) &&
        (left_ms < 1 || net_accept(D.node, id, (int)left_ms) != 0)) {
      snprintf(err, errlen, "compute party p%d is not connected to the dealer", id);
      return TANDEM_ECLOSED;
    }
  }
  return 0;
}

/* When the dealer must have answered a request that arrived at t_in: the
 * requester waits timeout_ms from its send for the reply, so the dealer
 * keeps a margin (a tenth of the timeout, 0.2 to 2 s) for the reply's trip. */
static double reply_deadline(double t_in) {
  double budget = D.cfg->timeout_ms / 1000.0, margin = budget / 10;
  margin = margin < 0.2 ? 0.2 : margin > 2.0 ? 2.0 : margin;
  return t_in + budget - margin;
}

static void do_share(job_t *j) {
  char err[512] = "";
  mpc_graph_t g;
  mpc_plan_t *plan = NULL;
  mpc_dealer_t *d = NULL;
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
  if ((rc = mpc_plan_new(&plan, &g, 1, err, sizeof err)) != 0 ||
      (rc = mpc_dealer_new(&d, plan)) != 0 ||
      (rc = parties_up(reply_deadline(j->t_in), err, sizeof err)) != 0)
    goto done;
  uint64_t tag;
  randombytes_buf(&tag, sizeof tag);
  reply(j->from, j->links, &j->h, 0, 0, 0, tag, NULL, 0);
  cl_ctrl_t h;
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_SETUP;
  h.tag = tag;
  h.peer = (uint32_t)j->from;
  memcpy(h.name, j->h.name, sizeof h.name);
  cl_link_t link;
  cl_link_init(&link, D.node, MPC_DEALER, -1, tag, D.cfg->timeout_ms);
  if ((rc = cl_ctrl_send(D.node, CL_P0, &h, j->payload, j->plen)) != 0 ||
      (rc = cl_ctrl_send(D.node, CL_P1, &h, j->payload, j->plen)) != 0 ||
      (rc = mpc_dealer_model(d, &link.base)) != 0) {
    snprintf(err, sizeof err, "could not send the setup to the parties: %s",
             tandem_strerror(rc));
    goto done;
  }
  slen = mpc_dealer_state_bytes(plan);
  if ((state = sodium_malloc(slen)) == NULL) {
    rc = TANDEM_ENOMEM;
    goto done;
  }
  if ((rc = mpc_dealer_export(d, state, slen)) != 0)
    goto done;
  pthread_mutex_lock(&D.gen_mu);
  pthread_mutex_lock(&D.mu);
  pools_drop_model(j->h.name);
  double *r = rate_slot(j->h.name, 0);
  if (r != NULL)
    *r = 0; /* another graph under the same name: measure again */
  rc = dm_store_put(&D.store, j->h.name, j->payload, j->plen, tag, state, slen, err,
                    sizeof err);
  if (rc == 0)
    pool_find(j->h.name, 1, 1);
  pthread_cond_broadcast(&D.cv);
  pthread_mutex_unlock(&D.mu);
  pthread_mutex_unlock(&D.gen_mu);
done:
  if (state != NULL)
    sodium_free(state);
  mpc_dealer_free(d);
  mpc_plan_free(plan);
  mpc_graph_close(&g);
out:
  if (rc == 0) {
    dm_log(WHO, "model %s: setup sent to the parties", j->h.name);
  } else {
    dm_log(WHO, "model %s refused: %s", j->h.name, err);
    reply(j->from, j->links, &j->h, rc, 0, 0, 0, err, strlen(err));
  }
}

/* Puts an unused preprocessing back at the front of its pool (it was never
 * sent, so another query may use it), or frees it. Under D.mu. */
static void pool_return(const char *name, size_t batch, prep_t *prep) {
  pool_t *p = pool_find(name, batch, 0);
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

/* Fault injection for the loopback tests: TANDEM_FAULT_DEALER_PAUSE=PEER:MS
 * makes the dealer wait MS milliseconds between telling the parties of a
 * query of client PEER (its peer id) and sending the query's preprocessing,
 * the window in which a client that dies leaves the parties told of a query
 * it will never send an input for. Unset, malformed or another client:
 * nothing. */
static void fault_pause(int client) {
  const char *v = getenv("TANDEM_FAULT_DEALER_PAUSE");
  int peer, ms;
  if (v == NULL || sscanf(v, "%d:%d", &peer, &ms) != 2 || peer != client || ms <= 0 ||
      ms > 60000)
    return;
  dm_log(WHO, "fault injection: pausing %d ms before sending the preprocessing", ms);
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The requester of j is still connected on the link its request came on (a
 * client that died and started again under its name is another query). */
static int requester_here(const job_t *j) {
  return net_peer_up(D.node, j->from) && cl_peer_link(D.node, j->from) == j->links;
}

static void do_query(job_t *j) {
  char err[512] = "";
  int rc = 0;
  uint32_t flags = 0;
  prep_t *prep = NULL;
  uint8_t *graph = NULL;
  size_t glen = 0;
  double t_wait = 0;
  if (j->from < CL_CLIENT0) {
    snprintf(err, sizeof err, "only clients send queries");
    reply(j->from, j->links, &j->h, TANDEM_EAUTH, 0, 0, 0, err, strlen(err));
    return;
  }
  size_t batch = (size_t)j->h.batch;
  double deadline = reply_deadline(j->t_in);
  pthread_mutex_lock(&D.mu);
  dm_model_t *m;
  rc = dm_store_get(&D.store, j->h.name, &m, err, sizeof err);
  if (rc == 0 && (batch == 0 || batch > DM_MAX_BATCH)) {
    rc = TANDEM_EINVAL;
    snprintf(err, sizeof err, "batch size %zu outside 1..%u", batch, DM_MAX_BATCH);
  }
  if (rc == 0 && (graph = malloc(m->graph_len)) == NULL)
    rc = TANDEM_ENOMEM;
  uint64_t version = 0;
  if (rc == 0) {
    memcpy(graph, m->graph_bytes, m->graph_len);
    glen = m->graph_len;
    version = m->version;
    pool_t *p = pool_find(j->h.name, batch, 1);
    /* A new request clears an old failure: memory or limits may have changed. */
    for (unsigned k = 0; k < 8; k++)
      if (D.failed[k].batch == batch && strcmp(D.failed[k].name, j->h.name) == 0)
        D.failed[k].name[0] = '\0';
    double t0 = cl_now(), eta = -1;
    if (p->n == 0) {
      flags |= CL_FLAG_WAITED;
      dm_log(WHO, "query from client %d (%s, batch %zu): no preprocessing ready, waiting for it",
             j->from, j->h.name, batch);
    }
    /* Wait while the generator can still make it in time: it is making it
     * now or will next (a waiting pool comes first), it has not given up on
     * it (the pool is gone then), and its rate does not say it takes far
     * longer than the time left. */
    int hopeless = 0, left = 0;
    while (p != NULL && p->n == 0 && !atomic_load(&dm_stop) && cl_now() < deadline) {
      eta = pool_eta(p);
      if (eta > 4.0 * (deadline - cl_now()) + 1.0) {
        hopeless = 1;
        break;
      }
      if (!requester_here(j)) {
        left = 1;
        break;
      }
      p->waiting++;
      pthread_cond_broadcast(&D.cv);
      timed_wait_ms(100);
      /* The generator may have dropped or moved the pool meanwhile. */
      p = pool_find(j->h.name, batch, 0);
      if (p != NULL)
        p->waiting--;
    }
    t_wait = cl_now() - t0;
    if (p == NULL || p->n == 0) {
      const char *why = p == NULL ? failure_find(j->h.name, batch) : NULL;
      if (why != NULL) {
        rc = TANDEM_EINVAL;
        snprintf(err, sizeof err, "no preprocessing for %s at batch %zu: %s", j->h.name, batch,
                 why);
      } else if (left) {
        rc = TANDEM_ECLOSED;
        snprintf(err, sizeof err, "the client left while its preprocessing was being made");
      } else {
        rc = TANDEM_ETIMEDOUT;
        char est[96] = "";
        if (eta >= 0)
          snprintf(est, sizeof est, ", about %.0f s more at its current rate", eta);
        snprintf(err, sizeof err,
                 "no preprocessing for %s at batch %zu %s within the timeout (%.0f s): the "
                 "dealer is still making it%s; ask again later, or raise timeout_ms",
                 j->h.name, batch, hopeless ? "can be made" : "was made",
                 D.cfg->timeout_ms / 1000.0, est);
      }
    } else {
      prep = p->ready[0];
      memmove(p->ready, p->ready + 1, (p->n - 1) * sizeof p->ready[0]);
      p->n--;
      pthread_cond_broadcast(&D.cv);
    }
  }
  pthread_mutex_unlock(&D.mu);
  if (rc == 0)
    rc = parties_up(deadline, err, sizeof err);
  /* A client that left, or gave up waiting for this reply, would never send
   * its masked input: the parties are not told of the query at all. */
  if (rc == 0 && (!requester_here(j) || cl_now() > j->t_in + D.cfg->timeout_ms / 1e3)) {
    dm_log(WHO, "query from client %d (%s, batch %zu) dropped: the client %s", j->from,
           j->h.name, batch, requester_here(j) ? "gave up waiting" : "left");
    pthread_mutex_lock(&D.mu);
    pool_return(j->h.name, batch, prep);
    pthread_cond_broadcast(&D.cv);
    pthread_mutex_unlock(&D.mu);
    prep = NULL;
    goto out;
  }
  uint64_t seq = ++D.seq;
  if (rc != 0) {
    dm_log(WHO, "query from client %d refused: %s", j->from, err);
    if (prep != NULL) {
      pthread_mutex_lock(&D.mu);
      pool_return(j->h.name, batch, prep);
      pthread_mutex_unlock(&D.mu);
      prep = NULL;
    }
    if (requester_here(j))
      reply(j->from, j->links, &j->h, rc, seq, 0, 0, err, strlen(err));
    goto out;
  }
  uint64_t tag;
  randombytes_buf(&tag, sizeof tag);
  reply(j->from, j->links, &j->h, 0, seq, flags, tag, graph, glen);
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
    links[id] = cl_peer_link(D.node, id);
  int told[2] = {0, 0}; /* which parties know of the query */
  for (int id = CL_P0; id <= CL_P1 && rc == 0; id++)
    if (!(told[id] = (rc = cl_ctrl_send_on(D.node, id, links[id], &h, NULL, 0)) == 0))
      dm_log(WHO, "query %llu: telling p%d failed: %s", (unsigned long long)seq, id,
             tandem_strerror(rc));
  cl_link_t link;
  cl_link_init(&link, D.node, MPC_DEALER, j->from, tag, D.cfg->timeout_ms);
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
  pthread_mutex_lock(&D.mu);
  D.sending = 1;
  pthread_mutex_unlock(&D.mu);
  fault_pause(j->from);
  if (rc == 0) {
    rc = cl_link_send_in_place(&link, MPC_CLIENT, prep->msg[2], prep->len[2]);
    if (rc != 0)
      dm_log(WHO, "query %llu: sending the client its preprocessing failed: %s",
             (unsigned long long)seq, tandem_strerror(rc));
  } else {
    (void)cl_link_cancel(&link, MPC_CLIENT); /* its query cannot run: it hears so now */
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
        dm_log(WHO, "query %llu: cancelled at p%d", (unsigned long long)seq, i);
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
      dm_log(WHO, "query %llu: p%d reconnected during the query", (unsigned long long)seq, i);
    else if (part[i].rc != 0)
      dm_log(WHO, "query %llu: sending p%d its preprocessing failed: %s",
             (unsigned long long)seq, i, tandem_strerror(part[i].rc));
    if (rc == 0)
      rc = part[i].rc;
  }
  pthread_mutex_lock(&D.mu);
  D.sending = 0;
  pthread_cond_broadcast(&D.cv);
  pthread_mutex_unlock(&D.mu);
  if (rc == 0 && (flags & CL_FLAG_WAITED))
    dm_log(WHO, "query %llu (%s, batch %zu, client %d): preprocessing sent (made on demand, "
           "waited %.2f s)", (unsigned long long)seq, j->h.name, batch, j->from, t_wait);
  else if (rc == 0)
    dm_log(WHO, "query %llu (%s, batch %zu, client %d): preprocessing sent",
           (unsigned long long)seq, j->h.name, batch, j->from);
out:
  if (prep != NULL)
    prep_free(prep);
  free(graph);
}

static void *worker_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&D.mu);
  while (!atomic_load(&dm_stop)) {
    if (D.head == NULL) {
      timed_wait_ms(200);
      continue;
    }
    job_t *j = D.head;
    D.head = j->next;
    if (D.head == NULL)
      D.tail = NULL;
    D.jobs[j->from]--;
    pthread_mutex_unlock(&D.mu);
    if (j->h.type == CL_MSG_SHARE)
      do_share(j);
    else if (j->h.type == CL_MSG_REQ)
      do_query(j);
    else
      dm_log(WHO, "unexpected control message %u from peer %d", j->h.type, j->from);
    free(j->payload);
    free(j);
    pthread_mutex_lock(&D.mu);
  }
  pthread_mutex_unlock(&D.mu);
  return NULL;
}

/* ---- readers ------------------------------------------------------------------ */

/* One reader per owner or client for the dealer's lifetime: it moves the
 * peer's control messages into the FIFO (at most JOBS_PER_PEER waiting, so
 * one client cannot crowd out the others) and waits for the peer to come
 * back when its link ends. */
static void *reader_main(void *arg) {
  int id = (int)(intptr_t)arg;
  while (!atomic_load(&dm_stop)) {
    if (!net_peer_up(D.node, id)) {
      if (net_accept(D.node, id, 500) != 0)
        continue; /* not connected yet: look at dm_stop again */
      continue;
    }
    pthread_mutex_lock(&D.mu);
    int full = D.jobs[id] >= JOBS_PER_PEER;
    if (full)
      timed_wait_ms(100);
    pthread_mutex_unlock(&D.mu);
    if (full)
      continue;
    job_t *j = calloc(1, sizeof *j);
    if (j == NULL)
      break;
    int rc = cl_ctrl_recv(D.node, id, &j->h, &j->payload, &j->plen, 500);
    if (rc != 0) {
      free(j);
      if (rc != TANDEM_ETIMEDOUT && rc != TANDEM_ECLOSED && rc != TANDEM_ECONNRESET)
        dm_log(WHO, "peer %d: %s", id, tandem_strerror(rc));
      if (rc != TANDEM_ETIMEDOUT && net_peer_up(D.node, id))
        (void)net_peer_close(D.node, id); /* a bad message ends that link */
      continue;
    }
    if (j->h.type == CL_MSG_REQ && j->plen != 0) {
      dm_log(WHO, "peer %d: a query with a payload; link closed", id);
      free(j->payload);
      free(j);
      (void)net_peer_close(D.node, id);
      continue;
    }
    j->from = id;
    j->t_in = cl_now();
    j->links = cl_peer_link(D.node, id);
    pthread_mutex_lock(&D.mu);
    D.jobs[id]++;
    if (D.tail != NULL)
      D.tail->next = j;
    else
      D.head = j;
    D.tail = j;
    pthread_cond_broadcast(&D.cv);
    pthread_mutex_unlock(&D.mu);
  }
  return NULL;
}

int tandem_dealer_main(int argc, char **argv) {
  static const char use[] = "usage: tandem dealer --config FILE";
  const char *config = NULL;
  const tandem_opt_t opts[] = {{"config", &config, NULL, NULL, 0}, {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use, "Runs the dealer until SIGINT or SIGTERM.\n");
  if (rc >= 0)
    return rc;
  if (config == NULL) {
    fprintf(stderr, "%s\n", use);
    return 2;
  }
  if (sodium_init() < 0) {
    tandem_app_error("dealer", "libsodium failed to initialise");
    return 1;
  }
  static cl_config_t cfg;
  char err[1024];
  if (cl_config_load(config, &cfg, err, sizeof err) != 0) {
    tandem_app_error("dealer", "%s", err);
    return 1;
  }
  const char *dir = cfg.m[CL_DEALER].data_dir;
  if (dir[0] == '\0') {
    tandem_app_error("dealer", "%s: [dealer] has no data directory", config);
    return 1;
  }
  rc = cl_mkdirs(dir);
  if (rc != 0) {
    tandem_app_error("dealer", "%s: %s", dir, tandem_strerror(rc));
    return 1;
  }
  memset(&D, 0, sizeof D);
  D.cfg = &cfg;
  pthread_mutex_init(&D.gen_mu, NULL);
  pthread_mutex_init(&D.mu, NULL);
  pthread_cond_init(&D.cv, NULL);
  dm_signals();
  if (cl_node_open(&cfg, CL_DEALER, 1, &D.node, dm_net_log, (void *)WHO, err, sizeof err) !=
      0) {
    tandem_app_error("dealer", "%s", err);
    return 1;
  }
  dm_store_init(&D.store, dir, MPC_DEALER);
  dm_log(WHO, "listening on %s port %u, pool of %u queries per model", cfg.m[CL_DEALER].host,
         (unsigned)cfg.m[CL_DEALER].port, cfg.pool);
  pthread_t worker, gen;
  pthread_create(&worker, NULL, worker_main, NULL);
  pthread_create(&gen, NULL, generator_main, NULL);
  /* A reader for the owner and for every client of the config. */
  for (int id = 0; id < NET_MAX_PEERS; id++)
    if (cfg.m[id].present && (id == CL_OWNER || id >= CL_CLIENT0) &&
        pthread_create(&D.readers[id], NULL, reader_main, (void *)(intptr_t)id) == 0)
      D.reader_started[id] = 1;
  int was_up[2] = {0, 0};
  while (!atomic_load(&dm_stop)) {
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    for (int id = CL_P0; id <= CL_P1; id++) {
      int up = net_peer_up(D.node, id);
      if (up != was_up[id])
        dm_log(WHO, "p%d %s", id, up ? "connected" : "disconnected");
      was_up[id] = up;
    }
  }
  dm_log(WHO, "stopping");
  pthread_mutex_lock(&D.mu);
  pthread_cond_broadcast(&D.cv);
  pthread_mutex_unlock(&D.mu);
  pthread_join(worker, NULL);
  pthread_join(gen, NULL);
  for (int id = 0; id < NET_MAX_PEERS; id++)
    if (D.reader_started[id])
      pthread_join(D.readers[id], NULL);
  net_node_free(D.node);
  pthread_mutex_lock(&D.mu);
  for (unsigned i = 0; i < D.npools; i++)
    for (unsigned j = 0; j < D.pools[i].n; j++)
      prep_free(D.pools[i].ready[j]);
  dm_store_close(&D.store);
  while (D.head != NULL) {
    job_t *j = D.head;
    D.head = j->next;
    free(j->payload);
    free(j);
  }
  pthread_mutex_unlock(&D.mu);
  return 0;
}
