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
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "dealer_int.h"

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
    LOGW(d, "could not reply to peer %d", peer);
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

/* 0 when no model is stored under `name`; else refused
 * with the reason: a SHARE replaces a model only when it says so
 * (CL_FLAG_REPLACE; issue 12: a model shared under a name in use silently
 * replaced it, and the next query returned the other model's logits). */
static int model_absent(cl_dealer_t *d, const char *name, char *err, size_t errlen) {
  char path[1200];
  snprintf(path, sizeof path, "%s/%s.graph", d->store.dir, name);
  if (access(path, F_OK) != 0)
    return 0;
  snprintf(err, errlen, "a model named %s is already shared; share it with --replace to "
           "replace it (queries already sent finish on the old one), or remove it first "
           "(tandem remove-model)", name);
  return TANDEM_EINVAL;
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
  if (!(j->h.flags & CL_FLAG_REPLACE) && (rc = model_absent(d, j->h.name, err, sizeof err)) != 0)
    goto out;
  if ((rc = mpc_graph_load(&g, j->payload, j->plen, err, sizeof err)) != 0)
    goto out;
  if ((rc = cl_plan_mem_check(&g, 1, 0, d->cfg->plan_mem_max, err, sizeof err)) != 0 ||
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
  cl_step_t link;
  cl_step_init(&link, d->node, MPC_DEALER, -1, tag, d->cfg->timeout_ms);
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
  cl__pools_drop_model(d, j->h.name);
  double *r = cl__rate_slot(d, j->h.name, 0);
  if (r != NULL)
    *r = 0; /* another graph under the same name: measure again */
  rc = cl_store_put(&d->store, j->h.name, j->payload, j->plen, tag, state, slen, err,
                    sizeof err);
  if (rc == 0)
    cl__pool_find(d, j->h.name, 1, 1);
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
  pthread_mutex_lock(&d->mu);
  d->shares--;
  pthread_cond_broadcast(&d->cv);
  pthread_mutex_unlock(&d->mu);
  if (rc == 0) {
    LOG(d, "model %s: setup sent to the parties", j->h.name);
  } else {
    LOGW(d, "model %s refused: %s", j->h.name, err);
    reply(d, j->from, j->links, &j->h, rc, 0, 0, 0, err, strlen(err));
  }
}

/* One party's part of a query's preprocessing, sent from its own thread. */
typedef struct {
  cl_step_t *link;
  mpc_role_t to;
  uint8_t *buf; /* headroom, then len bytes */
  size_t len;
  int rc;
  int consume;  /* send it with net_msg_send_consume */
  size_t wiped; /* bytes of buf wiped as they were sealed */
} part_send_t;

/* A part of an eighth of pool_mem_max or more is wiped as it is sealed,
 * its pages given back as it goes. Held whole beside net's sealed copy, a
 * CNN query's 236 MB took the dealer up to one query over pool_mem_max
 * while it was sealed (the soak, budget 384 MiB: peaks of 466-553 MiB
 * against its bound of 544, 2026-12-07). Smaller parts are sent as they
 * were: the next generation reuses their pages, where pages given back
 * must be faulted in and zeroed again (the CNN at 8 rows: 58-59 ms a
 * generation against 36.5, one thread), and both parties' copies of such
 * parts add at most a quarter of the budget while they are sealed. */
static int part_consumed(const cl_dealer_t *d, size_t len) {
  return d->cfg->pool_mem_max > 0 && len >= d->cfg->pool_mem_max / 8;
}

static void *part_send_main(void *arg) {
  part_send_t *p = arg;
  if (p->consume)
    p->rc = cl_step_send_consume(p->link, p->to, p->buf, p->len, &p->wiped);
  else
    p->rc = cl_step_send_in_place(p->link, p->to, p->buf, p->len);
  return NULL;
}

/* The wire bytes sent so far to P0, P1 and `client` (net's counts, which
 * grow as the socket takes the frames). */
static void wire_marks(cl_dealer_t *d, int client, uint64_t out[3]) {
  const int ids[3] = {CL_P0, CL_P1, client};
  for (int i = 0; i < 3; i++) {
    net_stats_t st;
    net_peer_stats(d->node, ids[i], &st);
    out[i] = st.wire_sent;
  }
}

/* Waits until the parts just queued for P0, P1 and `client` (len[i] payload
 * bytes each, on links[i], from wire marks from[i]) have left for their
 * socket, or their link ended, or timeout_ms passed.
 *
 * Why: net seals a long message into its write queue whole, once there is
 * room for its first piece, and the send returns then. Freed at that
 * moment, a query's preprocessing left the budget while its sealed copy
 * (the same size) still sat in the queue, and the generators made the next
 * ones meanwhile: the dealer held up to one query's preprocessing more than
 * pool_mem_max (measured in the soak: the CNN at 8 rows is 236 MB a query).
 * The worker polls: net has no event for a drained queue. */
static void parts_drained(cl_dealer_t *d, int client, const uint64_t links[3],
                          const uint64_t from[3], const size_t len[3]) {
  const int ids[3] = {CL_P0, CL_P1, client};
  double end = cl_now() + d->cfg->timeout_ms / 1000.0;
  for (;;) {
    int left = 0;
    for (int i = 0; i < 3; i++) {
      net_stats_t st;
      net_peer_stats(d->node, ids[i], &st);
      if (len[i] > 0 && st.wire_sent - from[i] < len[i] && st.links == links[i] &&
          net_peer_up(d->node, ids[i]))
        left = 1;
    }
    if (!left || cl_now() >= end || atomic_load(&d->stop))
      return;
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
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
  for (int id = CL_P0; id <= CL_P1 && rc == 0; id++) {
    if (id == CL_P1)
      (void)cl__fault(&d->hooks, CL_FAULT_DEALER_TELL, seq, j->from);
    if (!(told[id] = (rc = cl_ctrl_send_on(d->node, id, links[id], &h, NULL, 0)) == 0))
      LOGW(d, "query %llu: telling p%d failed: %s", (unsigned long long)seq, id,
             tandem_strerror(rc));
  }
  cl_step_t link;
  cl_step_init(&link, d->node, MPC_DEALER, j->from, tag, d->cfg->timeout_ms);
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
  uint64_t marks[3];
  wire_marks(d, j->from, marks);
  if (rc == 0) {
    rc = cl_step_send_in_place(&link, MPC_CLIENT, prep->msg[2], prep->len[2]);
    if (rc != 0)
      LOGW(d, "query %llu: sending the client its preprocessing failed: %s",
             (unsigned long long)seq, tandem_strerror(rc));
  } else {
    /* Its query cannot run: it hears so now (a client that left hears nothing). */
    int gone = cl_step_cancel(&link, MPC_CLIENT);
    (void)gone;
  }
  part_send_t part[2];
  pthread_t helper;
  int helper_up = 0, sending = rc == 0;
  for (int i = 0; i < 2; i++) {
    part[i] = (part_send_t){&link, (mpc_role_t)i, prep->msg[i], prep->len[i], 0,
                            part_consumed(d, prep->len[i]), 0};
    if (!told[i])
      continue;
    if (!sending) {
      if (cl_step_cancel(&link, (mpc_role_t)i) == 0)
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
      LOGW(d, "query %llu: sending p%d its preprocessing failed: %s",
             (unsigned long long)seq, i, tandem_strerror(part[i].rc));
    if (rc == 0)
      rc = part[i].rc;
  }
  pthread_mutex_lock(&d->mu);
  d->sending = 0;
  pthread_cond_broadcast(&d->cv);
  pthread_mutex_unlock(&d->mu);
  if (sending) {
    /* The sealed copies in net's queues take the place of the parts: the
     * parts are freed (wiped) now, their bytes still counted as held until
     * the copies have left (cl__prep_free then counts off the rest). The
     * generators work meanwhile, within what is left of the budget. */
    const uint64_t lk[3] = {links[CL_P0], links[CL_P1], j->links};
    size_t len[3], held = prep->len[0] + prep->len[1] + prep->len[2];
    for (int i = 0; i < 3; i++)
      len[i] = i == 2 || (told[i] && part[i].rc == 0) ? prep->len[i] : 0;
    for (int i = 0; i < 2; i++) /* net wiped part[i].wiped as it sealed it */
      mpc_prep_close_part(prep, i, part[i].wiped);
    mpc_prep_close(prep);
    parts_drained(d, j->from, lk, marks, len);
    pthread_mutex_lock(&d->mu);
    atomic_fetch_sub(&d->mem_held, held);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
  }
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
  LOGW(d, "client %d: %u queries failed in a row; its requests are refused for %.0f s", k, n,
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
  int rc = cl_plan_mem_check(&m->graph, batch, 0, d->cfg->plan_mem_max, why, sizeof why);
  size_t bytes[3];
  if (rc == 0 && (rc = cl_model_prep_bytes(&d->store, m, batch, bytes, err, errlen)) != 0)
    return rc;
  /* The dealer's object holds the three messages of a query it makes. */
  if (rc == 0)
    rc = cl_plan_mem_check(&m->graph, batch, bytes[0] + bytes[1] + bytes[2],
                           d->cfg->plan_mem_max, why, sizeof why);
  if (rc != 0) {
    snprintf(err, errlen, "%s at batch %zu: %s", name, batch, why);
    return rc;
  }
  size_t all = bytes[0] + bytes[1] + bytes[2] + 3 * CL_TAG_BYTES;
  if (d->cfg->pool_mem_max && all > d->cfg->pool_mem_max) {
    size_t row = m->prep_row[0] + m->prep_row[1] + m->prep_row[2];
    size_t base = m->prep_base[0] + m->prep_base[1] + m->prep_base[2] + 3 * CL_TAG_BYTES;
    size_t fit = base < d->cfg->pool_mem_max && row > 0 ? (d->cfg->pool_mem_max - base) / row : 0;
    snprintf(err, errlen,
             "%s at batch %zu: its preprocessing would be %.1f MB, over the dealer's "
             "pool_mem_max (%.1f MB); ask for at most %zu rows per query",
             name, batch, (double)all / 1e6, (double)d->cfg->pool_mem_max / 1e6, fit);
    return TANDEM_ENOMEM;
  }
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
    rc = cl__prep_take(d, j, batch, deadline, &prep, &flags, &t_wait, err, sizeof err);
    pthread_mutex_unlock(&d->mu);
  }
  if (rc == 0)
    rc = parties_up(d, deadline, err, sizeof err);
  /* A client that left, or gave up waiting for this reply, would never send
   * its masked input: the parties are not told of the query at all. */
  if (rc == 0 && (!cl__requester_here(d, j) || cl__now(&d->hooks) > j->t_in + d->cfg->timeout_ms / 1e3)) {
    LOGW(d, "query from client %d (%s, batch %zu) dropped: the client %s", j->from,
           j->h.name, batch, cl__requester_here(d, j) ? "gave up waiting" : "left");
    pthread_mutex_lock(&d->mu);
    cl__pool_return(d, j->h.name, batch, prep);
    client_failed(d, j->from, 0);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    prep = NULL;
    goto out;
  }
  pthread_mutex_lock(&d->mu); /* the party readers compare their ACKs with it */
  uint64_t seq = ++d->seq;
  pthread_mutex_unlock(&d->mu);
  if (rc != 0) {
    LOGW(d, "query from client %d refused: %s", j->from, err);
    pthread_mutex_lock(&d->mu);
    if (prep != NULL)
      cl__pool_return(d, j->h.name, batch, prep);
    prep = NULL;
    if (admitted)
      client_failed(d, j->from, seq);
    pthread_mutex_unlock(&d->mu);
    if (cl__requester_here(d, j))
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
    cl__prep_free(d, prep);
  free(graph);
}

/* An owner's REMOVE: the dealer's pools, plans and files of the model go
 * (with both generators held, so neither uses it), then both parties are
 * told; each reports to the owner. Queries already sent finish first: the
 * parties serve the dealer's messages in order. */
static void do_remove(cl_dealer_t *d, job_t *j) {
  char err[512] = "";
  int rc;
  if (j->from != CL_OWNER) {
    rc = TANDEM_EAUTH;
    snprintf(err, sizeof err, "only the model owner may remove a model");
  } else if ((rc = parties_up(d, reply_deadline(d, j->t_in), err, sizeof err)) == 0) {
    pthread_mutex_lock(&d->gen_mu[0]);
    pthread_mutex_lock(&d->gen_mu[1]);
    pthread_mutex_lock(&d->mu);
    cl__pools_drop_model(d, j->h.name);
    rc = cl_store_remove(&d->store, j->h.name, err, sizeof err);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_unlock(&d->gen_mu[1]);
    pthread_mutex_unlock(&d->gen_mu[0]);
  }
  if (rc != 0) {
    LOGW(d, "removal of model %s refused: %s", j->h.name, err);
    reply(d, j->from, j->links, &j->h, rc, 0, 0, 0, err, strlen(err));
    return;
  }
  reply(d, j->from, j->links, &j->h, 0, 0, 0, 0, NULL, 0);
  cl_ctrl_t h;
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_REMOVE;
  h.peer = (uint32_t)j->from;
  memcpy(h.name, j->h.name, sizeof h.name);
  for (int id = CL_P0; id <= CL_P1; id++)
    if ((rc = cl_ctrl_send(d->node, id, &h, NULL, 0)) != 0)
      LOGW(d, "model %s: telling p%d of its removal failed: %s", j->h.name, id,
          tandem_strerror(rc));
  LOG(d, "model %s removed", j->h.name);
}

/* A LIST or GRAPH request, answered by the reader at once (they change
 * nothing, and a client checks its input with GRAPH before it queues a
 * REQ behind other queries). */
static void do_lookup(cl_dealer_t *d, int id, uint64_t link, const cl_ctrl_t *req) {
  char err[512] = "";
  char *text = NULL;
  size_t len = 0;
  uint8_t *graph = NULL;
  pthread_mutex_lock(&d->mu);
  int rc;
  if (req->type == CL_MSG_LIST) {
    rc = cl_store_list(&d->store, &text, &len);
    if (rc != 0)
      snprintf(err, sizeof err, "cannot list the models: %s", tandem_strerror(rc));
  } else {
    cl_model_t *m;
    char name[CL_NAME_MAX];
    memcpy(name, req->name, sizeof name);
    name[sizeof name - 1] = '\0';
    /* A share of it may be queued or under way (see shares): wait for it. */
    while ((rc = cl_store_get(&d->store, name, &m, err, sizeof err)) != 0 && d->shares > 0 &&
           !atomic_load(&d->stop))
      cl__timed_wait_ms(d, 50);
    if (rc == 0) {
      if ((graph = malloc(m->graph_len)) == NULL)
        rc = TANDEM_ENOMEM;
      else
        memcpy(graph, m->graph_bytes, len = m->graph_len);
    }
  }
  pthread_mutex_unlock(&d->mu);
  if (rc != 0)
    reply(d, id, link, req, rc, 0, 0, 0, err, strlen(err));
  else
    reply(d, id, link, req, 0, 0, 0, 0, text != NULL ? (void *)text : (void *)graph, len);
  free(text);
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
      cl__timed_wait_ms(d, 200);
      continue;
    }
    job_t *j = job_pick(d);
    if (j == NULL) { /* each waits for its client's previous query */
      cl__timed_wait_ms(d, 50);
      continue;
    }
    d->jobs[j->from]--;
    pthread_mutex_unlock(&d->mu);
    if (j->h.type == CL_MSG_SHARE)
      do_share(d, j);
    else if (j->h.type == CL_MSG_REQ)
      do_query(d, j);
    else if (j->h.type == CL_MSG_REMOVE)
      do_remove(d, j);
    else
      LOGW(d, "unexpected control message %u from peer %d", j->h.type, j->from);
    free(j->payload);
    free(j);
    cl__heap_trim(d);
    pthread_mutex_lock(&d->mu);
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

/* ---- readers ------------------------------------------------------------------ */

/* Whether the FIFO holds queue_max queries of clients (an owner's jobs are
 * not counted: a SHARE or REMOVE is never refused for clients' queries).
 * Under d->mu. */
static int queue_full(cl_dealer_t *d) {
  unsigned n = 0;
  for (int id = CL_CLIENT0; id < NET_MAX_PEERS; id++)
    n += d->jobs[id];
  /* 0: a config not made by cl_config_load, which sets the default */
  return n >= (d->cfg->queue_max ? d->cfg->queue_max : CL_QUEUE_MAX);
}

/* Refuses request j at once, as the FIFO is full (issue 12: with every
 * client key querying at once a query waited out its client's timeout
 * behind the others, and failed with "no answer from dealer"). Frees j. */
static void refuse_full(cl_dealer_t *d, job_t *j) {
  char err[256];
  snprintf(err, sizeof err, "the dealer is busy: %u queries are waiting before this one "
           "(its queue_max); ask again later", d->cfg->queue_max);
  LOGW(d, "query from client %d refused: %u queries waiting (queue_max)", j->from,
       d->cfg->queue_max);
  reply(d, j->from, j->links, &j->h, -EBUSY, 0, 0, 0, err, strlen(err));
  free(j->payload);
  free(j);
}

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
      cl__timed_wait_ms(d, 100);
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
        LOGW(d, "peer %d: %s", id, tandem_strerror(rc));
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
      LOGW(d, "peer %d: a query with a payload; link closed", id);
      free(j->payload);
      free(j);
      if (net_peer_up(d->node, id) && cl_peer_link(d->node, id) == cur)
        (void)net_peer_close(d->node, id);
      continue;
    }
    if (j->h.type == CL_MSG_LIST || j->h.type == CL_MSG_GRAPH) {
      do_lookup(d, id, cur, &j->h);
      free(j->payload);
      free(j);
      continue;
    }
    j->from = id;
    j->t_in = cl__now(&d->hooks);
    j->links = cur;
    pthread_mutex_lock(&d->mu);
    if (j->h.type == CL_MSG_REQ && queue_full(d)) {
      pthread_mutex_unlock(&d->mu);
      refuse_full(d, j);
      continue;
    }
    d->jobs[id]++;
    d->shares += j->h.type == CL_MSG_SHARE;
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
    /* A report of a query this dealer never numbered is an earlier dealer
     * process's (a party keeps a report it could not send for its next
     * dealer link): taken, it would mark this one's queries up to that
     * number done, and a client's next query would be admitted while its
     * last one still ran. */
    if (h.seq > d->seq) {
      pthread_mutex_unlock(&d->mu);
      LOG(d, "p%d reported query %llu, which this dealer never numbered (an earlier "
          "process's); ignored", id, (unsigned long long)h.seq);
      continue;
    }
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
  atomic_init(&d->mem_held, 0);
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

int cl_dealer_reload(cl_dealer_t *d, char *err, size_t errlen) {
  int added = 0;
  pthread_mutex_lock(&d->mu);
  int rc = cl_config_reload_clients(&d->cfg_copy, CL_DEALER, d->node, &added, err, errlen);
  pthread_mutex_unlock(&d->mu);
  if (rc != 0) {
    LOGW(d, "config not reloaded: %s", err);
    return rc;
  }
  for (int id = CL_CLIENT0; d->started && id < CL_CLIENT0 + d->cfg->nclients; id++) {
    if (d->reader_started[id] || !d->cfg->m[id].present)
      continue;
    d->reader_arg[id] = (reader_arg_t){d, id};
    if (pthread_create(&d->readers[id], NULL, reader_main, &d->reader_arg[id]) == 0)
      d->reader_started[id] = 1;
  }
  LOG(d, "config reloaded: %d clients, %d keys new or changed", d->cfg->nclients, added);
  return 0;
}

net_node_t *cl_dealer_node(cl_dealer_t *d) { return d->node; }

void cl_dealer_mem(cl_dealer_t *d, size_t *held, size_t *peak) {
  pthread_mutex_lock(&d->mu);
  *held = atomic_load(&d->mem_held);
  *peak = d->mem_peak;
  pthread_mutex_unlock(&d->mu);
}
cl_store_t *cl__dealer_store(cl_dealer_t *d) { return &d->store; }

int cl_dealer_start(cl_dealer_t *d) {
  if (d->started)
    return TANDEM_EINVAL;
  LOG(d, "listening on %s port %u, pool of %u queries per model within %.0f MB",
      d->cfg->m[CL_DEALER].host, (unsigned)d->cfg->m[CL_DEALER].port, d->cfg->pool,
      (double)d->cfg->pool_mem_max / 1e6);
  int rc = pthread_create(&d->worker, NULL, worker_main, d);
  if (rc != 0)
    return -rc;
  for (int g = 0; g < 2; g++) {
    d->gen_arg[g] = (gen_arg_t){d, g};
    if ((rc = pthread_create(&d->gen[g], NULL, cl__generator_main, &d->gen_arg[g])) != 0) {
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
      cl__prep_free(d, d->pools[i].ready[j]);
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
