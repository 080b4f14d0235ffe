/* party.c - a compute party (cl_party_t, mpc_cluster.h), the service of
 * `tandem party --config FILE --id p0|p1`.
 *
 * The party takes its work from the dealer, which sequences the cluster: both
 * parties receive the same SETUP and QUERY messages in the same order, so
 * they always run the same protocol step against each other. A SETUP makes
 * the party receive the owner's weight shares and the dealer's weight-mask
 * seed, open W + R_W with the other party, and store its model state (checksummed,
 * 0600) under its data directory, so a restarted daemon serves the model
 * again. A QUERY runs one private inference for a client: the dealer's
 * preprocessing, the client's masked input, the online rounds with the other
 * party, the output shares to the client, then its counters to the client.
 * A query that fails (a peer died or stalled past the timeout) is logged and
 * abandoned: the party drops its link to the other party (P0 dials again
 * before the next query) and its link to the client if the client's input
 * came on it (reset_client_link), so no stale message of the failed query
 * can be read by the next one. Logs never hold a share or a key.
 *
 * A step (setup or query) talks to the other party only over the link it
 * began with. The party that gives a step up first closes that link, and P0
 * may dial a new one for its next step before P1 has noticed: P1, still busy
 * with the old step, would then wait on the new link for messages that never
 * come (until its timeout) and drop the next step's messages meanwhile, and
 * its own late reset would close the link the next step runs on. So a step
 * fails as soon as the other party's link is not the one it began with, and
 * a failed step closes only that link, never a newer one.
 *
 * The other way round, a late party may take a step up only after the other
 * gave it up and dialled anew: it then begins the step on the newer link, on
 * which nothing of the step will ever come, and waited out its timeout
 * there. So a party that gives a step up keeps its tag (step_abandoned) and
 * sends it alone on the first newer link to the other party, before anything
 * of a later step (send_abandoned): the late party's step reads it as
 * cancelled and ends at once, while every other step drops it as stale.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "cluster_int.h"

/* Steps given up whose tag the other party may still wait for: one late
 * step is the usual case; more than a few would each have waited out the
 * other party's timeout, and the oldest is dropped. */
#define CL_ABANDONED_MAX 4

struct cl_party_s {
  cl_config_t cfg;
  net_node_t *node;
  int self;   /* CL_P0 or CL_P1 */
  int other;
  const char *who;
  cl_store_t store;
  cl_hooks_t hooks;
  cl__netlog_t netlog;
  int dealer_was_up;
  uint64_t dealer_was_link; /* a dealer restarted between two steps: a new link */
  double next_try;
  /* Dialling the dealer (and P0 dialling P1): the last result per peer,
   * logged only when it changes, and the back-off between failed rounds
   * (0.2 s doubling to CL_DIAL_BACKOFF_MAX_S; 0 while all are up). */
  int dial_rc[NET_MAX_PEERS];
  double backoff;
  /* A query's end that could not be reported to the dealer (its link was
   * down, or closed by the failure itself): sent first on the next link. */
  int done_pending;
  cl_ctrl_t done_msg;
  /* Steps given up on a link to the other party whose tag it has not been
   * sent yet on a newer link (send_abandoned), oldest first. */
  struct {
    uint64_t tag;
    uint64_t link; /* the link the step was given up on (net's count) */
  } abandoned[CL_ABANDONED_MAX];
  int nabandoned;
};

#define CL_DIAL_BACKOFF_MAX_S 5.0

#define LOG(P, ...) cl__log(&(P)->hooks, (P)->who, __VA_ARGS__)
#define LOGW(P, ...) cl__logl(&(P)->hooks, CL_LOG_WARN, (P)->who, __VA_ARGS__)

/* *h = a control message of `type` and `status` about query req (its seq,
 * batch and model name), naming `peer`. */
static void ctrl_about(cl_ctrl_t *h, const cl_ctrl_t *req, uint32_t type, int status,
                       uint32_t peer) {
  memset(h, 0, sizeof *h);
  h->type = type;
  h->status = status;
  h->seq = req->seq;
  h->batch = req->batch;
  h->peer = peer;
  memcpy(h->name, req->name, sizeof h->name);
}

/* Reports a step's end to its owner or client, on the link it began with
 * (`links`, net's count; 0: the current one): a client that left and came
 * back under its name is not told of its predecessor's query. */
static void send_status(cl_party_t *P, int peer, uint64_t links, uint32_t type,
                        uint32_t flags, const cl_ctrl_t *req, int status, const void *payload,
                        size_t plen) {
  if (peer < 0 || !net_peer_up(P->node, peer))
    return;
  cl_ctrl_t h;
  ctrl_about(&h, req, type, status, (uint32_t)P->self);
  h.flags = flags;
  if (cl_ctrl_send_on(P->node, peer, links, &h, payload, plen) != 0)
    LOGW(P, "could not report to peer %d", peer);
}

/* Sends the other party, on its link if that is newer than the one each
 * abandoned step was given up on, the step's tag alone (the cancel of
 * cl_step_t), oldest first; a tag that went out is forgotten. Called before
 * any step talks to the other party and at every turn of the service, so
 * the tag precedes every message of a later step on that link. */
static void send_abandoned(cl_party_t *P) {
  if (P->nabandoned == 0 || !net_peer_up(P->node, P->other))
    return;
  uint64_t cur = cl_peer_link(P->node, P->other);
  int kept = 0;
  for (int i = 0; i < P->nabandoned; i++) {
    int sent = 0;
    if (cur > P->abandoned[i].link &&
        net_msg_send_on(P->node, P->other, cur, CL_CHAN_DATA, &P->abandoned[i].tag,
                        CL_TAG_BYTES) == 0)
      sent = 1;
    if (!sent)
      P->abandoned[kept++] = P->abandoned[i];
  }
  P->nabandoned = kept;
}

/* Step `tag`, given up on link `link` of the other party, is to be
 * cancelled at the other party once a newer link is up (send_abandoned). */
static void step_abandoned(cl_party_t *P, uint64_t tag, uint64_t link) {
  if (P->nabandoned == CL_ABANDONED_MAX) {
    memmove(&P->abandoned[0], &P->abandoned[1],
            (CL_ABANDONED_MAX - 1) * sizeof P->abandoned[0]);
    P->nabandoned--;
  }
  P->abandoned[P->nabandoned].tag = tag;
  P->abandoned[P->nabandoned].link = link;
  P->nabandoned++;
  send_abandoned(P); /* the other party may have dialled anew already */
}

/* After a failed step (`tag`): the link to the other party may hold messages
 * of the abandoned step, so it is closed (P0 redials before the next step),
 * unless it is already a newer link than the step's own (`links`; 0: any),
 * which the other party made for its next step. The other party, if it has
 * not taken the step up yet, will be told on the next link (step_abandoned). */
static void reset_party_link(cl_party_t *P, uint64_t links, uint64_t tag) {
  uint64_t cur = cl_peer_link(P->node, P->other);
  if (net_peer_up(P->node, P->other) && (links == 0 || cur == links))
    (void)net_peer_close(P->node, P->other);
  cl_link_drain(P->node, P->other, links ? links : cur);
  step_abandoned(P, tag, links ? links : cur);
}

/* The transport of one step, cl_step_t's: call once its links are up. Its
 * messages to and from the other party go on the current link only (net
 * fails them with TANDEM_ECONNRESET once the link is another one), as do the
 * client's on client_links, the client link the step began with (0: no
 * client). */
static void step_init(cl_step_t *l, cl_party_t *P, int client, uint64_t client_links,
                           uint64_t tag) {
  cl_step_init(l, P->node, (mpc_role_t)P->self, client, tag, P->cfg.timeout_ms);
  l->link[P->other] = cl_peer_link(P->node, P->other);
  /* The client's masked input is due a timeout after the step begins, not
   * after the offline phase: the client sends it as soon as it has its part
   * of the preprocessing, which the dealer sends first, so it is in by the
   * time a long offline phase ends; a stalled client then holds the parties
   * for the longer of the two, not for their sum. */
  if (client >= 0) {
    l->due[MPC_CLIENT] = cl_now() + P->cfg.timeout_ms / 1000.0;
    l->link[MPC_CLIENT] = client_links;
  }
}

/* P0 dials P1; every other link is made by the peer. A link to the other
 * party first carries the tags of the steps this party gave up. */
static int wait_peer(cl_party_t *P, int id) {
  int rc = 0;
  if (!net_peer_up(P->node, id))
    rc = P->self == CL_P0 && id == CL_P1 ? cl_connect(P->node, id, P->cfg.timeout_ms)
                                         : net_accept(P->node, id, P->cfg.timeout_ms);
  if (rc == 0 && id == P->other)
    send_abandoned(P);
  return rc;
}

static void do_setup(cl_party_t *P, const cl_ctrl_t *h, const uint8_t *graph, size_t glen) {
  char err[512] = "";
  int owner = (int)h->peer;
  if (owner != CL_OWNER) {
    LOGW(P, "setup of %s names peer %d as its owner; ignored", h->name, owner);
    (void)net_peer_close(P->node, CL_DEALER);
    return;
  }
  mpc_graph_t g;
  mpc_plan_t *plan = NULL;
  mpc_party_t *pt = NULL;
  uint8_t *state = NULL;
  size_t slen = 0;
  int rc;
  if (!cl_name_ok(h->name)) {
    rc = TANDEM_EINVAL;
    snprintf(err, sizeof err, "bad model name");
    goto done_nograph;
  }
  if ((rc = mpc_graph_load(&g, graph, glen, err, sizeof err)) != 0)
    goto done_nograph;
  /* The graph is the owner's: its plan's memory is checked before the plan
   * is compiled (the dealer checks too, with its own budget). */
  if ((rc = cl_plan_mem_check(&g, 1, 0, P->cfg.plan_mem_max, err, sizeof err)) != 0 ||
      (rc = mpc_plan_new(&plan, &g, 1, err, sizeof err)) != 0)
    goto done;
  if ((rc = mpc_party_new(&pt, plan, (mpc_role_t)P->self)) != 0)
    goto done;
  if ((rc = wait_peer(P, owner)) != 0) {
    snprintf(err, sizeof err, "the model owner did not connect: %s", tandem_strerror(rc));
    goto done;
  }
  if ((rc = wait_peer(P, P->other)) != 0) {
    snprintf(err, sizeof err, "the other party is not connected: %s", tandem_strerror(rc));
    goto done;
  }
  cl_step_t link;
  step_init(&link, P, -1, 0, h->tag);
  if ((rc = mpc_party_setup(pt, &link.base)) != 0) {
    snprintf(err, sizeof err, "setup failed: %s", tandem_strerror(rc));
    reset_party_link(P, link.link[P->other], h->tag);
    goto done;
  }
  slen = mpc_party_state_bytes(plan);
  if ((state = sodium_malloc(slen)) == NULL) {
    rc = TANDEM_ENOMEM;
    goto done;
  }
  if ((rc = mpc_party_export(pt, state, slen)) != 0 ||
      (rc = cl_store_put(&P->store, h->name, graph, glen, h->tag, state, slen, err,
                         sizeof err)) != 0)
    goto done;
done:
  if (state != NULL)
    sodium_free(state);
  mpc_party_free(pt);
  mpc_plan_free(plan);
  mpc_graph_close(&g);
done_nograph:
  if (rc == 0)
    LOG(P, "model %s stored (%zu bytes of state)", h->name, slen);
  else
    LOGW(P, "model %s not set up: %s", h->name, err[0] ? err : tandem_strerror(rc));
  send_status(P, owner, 0, CL_MSG_ACK, 0, h, rc, err, rc ? strlen(err) : 0);
}

/* The dealer's REMOVE of a model: its plans and files go (a query of it
 * already ran: the dealer's messages come in order), and the owner is told
 * (the dealer removed its own copy first). */
static void do_remove(cl_party_t *P, const cl_ctrl_t *h) {
  char err[512] = "", name[CL_NAME_MAX];
  memcpy(name, h->name, sizeof name);
  name[sizeof name - 1] = '\0';
  int rc = cl_store_remove(&P->store, name, err, sizeof err);
  if (rc == 0)
    LOG(P, "model %s removed", name);
  else
    LOGW(P, "model %s not removed: %s", name, err);
  send_status(P, CL_OWNER, 0, CL_MSG_ACK, 0, h, rc, err, rc ? strlen(err) : 0);
  if (rc == 0 && CL_GLIBC_HEAP)
    malloc_trim(0);
}

/* Tells the client that query h failed here: the stats' failure record
 * (which party, where, the code), then the text. */
static void send_failure(cl_party_t *P, int client, uint64_t links, const cl_ctrl_t *h, int rc,
                         cl_fail_where_t where, const char *err) {
  uint8_t b[CL_STATS_BYTES + 512];
  cl_party_stats_t st;
  memset(&st, 0, sizeof st);
  st.fail_party = (uint32_t)P->self;
  st.fail_where = (uint32_t)where;
  st.fail_code = rc;
  cl_stats_encode(&st, b);
  size_t n = strnlen(err, sizeof b - CL_STATS_BYTES - 1);
  memcpy(b + CL_STATS_BYTES, err, n);
  send_status(P, client, links, CL_MSG_ACK, CL_FLAG_STATS, h, rc, b, CL_STATS_BYTES + n);
}

/* After a query that failed before its offline phase read anything (its
 * client or the other party did not connect): the dealer's message of the
 * query (its part, or its cancel) is taken off the dealer link the QUERY
 * came on (`dl`) and dropped, with any older step's messages before it.
 * Left there, a part of hundreds of MB stayed unread on the link, and a
 * later query failed on it once (issue 15). When it does not come within
 * the timeout, the link is closed instead (its messages go with it). */
static void discard_dealer_part(cl_party_t *P, uint64_t dl, const cl_ctrl_t *h) {
  double end = cl_now() + P->cfg.timeout_ms / 1000.0;
  for (;;) {
    double left_ms = (end - cl_now()) * 1000.0;
    unsigned char *m = NULL;
    size_t got = 0;
    int rc = net_msg_take_on(P->node, CL_DEALER, dl, CL_CHAN_DATA, SIZE_MAX, &m, &got,
                             left_ms < 1 ? 0 : (int)left_ms);
    if (rc != 0) {
      if (rc == TANDEM_ETIMEDOUT && cl_peer_link(P->node, CL_DEALER) == dl) {
        LOGW(P, "query %llu: the dealer's part did not come; closing the dealer link",
            (unsigned long long)h->seq);
        (void)net_peer_close(P->node, CL_DEALER);
        cl_link_drain(P->node, CL_DEALER, dl);
      }
      return;
    }
    int mine = got >= CL_TAG_BYTES && memcmp(m, &h->tag, CL_TAG_BYTES) == 0;
    sodium_memzero(m, got); /* seeds and keys of the abandoned query */
    free(m);
    if (mine)
      return;
  }
}

/* Tells the dealer that query h ended here with status rc (its client in
 * peer): the dealer admits that client's next query once both parties
 * ended this one, and backs off a client whose queries keep failing.
 * Sent before the client hears of the end, so the dealer knows first. */
static void report_done(cl_party_t *P, const cl_ctrl_t *h, int rc) {
  cl_ctrl_t r;
  ctrl_about(&r, h, CL_MSG_ACK, rc, h->peer);
  /* With the dealer link down (an offline phase that failed closes it), the
   * report waits for the next link (send_pending_done): lost, it left the
   * dealer holding the client's next query as still running, up to twice
   * the timeout. Only the last one is kept: the dealer keeps the highest
   * query a party ended. */
  if (net_peer_up(P->node, CL_DEALER) && cl_ctrl_send(P->node, CL_DEALER, &r, NULL, 0) == 0)
    return;
  P->done_pending = 1;
  P->done_msg = r;
}

/* The report report_done kept for the next dealer link, sent once it is up. */
static void send_pending_done(cl_party_t *P) {
  if (!P->done_pending)
    return;
  P->done_pending = 0;
  if (cl_ctrl_send(P->node, CL_DEALER, &P->done_msg, NULL, 0) != 0)
    LOGW(P, "could not report query %llu to the dealer",
         (unsigned long long)P->done_msg.seq);
}

/* The transport of one query: cl_step_t's, with the fault hook before each
 * online round with the other party (CL_FAULT_PARTY_ROUND), where a test
 * makes a party stall mid-step with its links up, and a note of whether the
 * client's input was taken (reset_client_link). */
typedef struct {
  cl_step_t l; /* first: l.base is the query's transport */
  mpc_transport_ops_t ops;
  const mpc_transport_ops_t *inner;
  const cl_hooks_t *hooks;
  uint64_t seq;
  int client;
  int input_taken;
} query_step_t;

static int query_recv(mpc_transport_t *t, mpc_role_t from, void *buf, size_t len) {
  query_step_t *q = (query_step_t *)t;
  int rc = q->inner->recv(t, from, buf, len);
  if (rc == 0 && from == MPC_CLIENT)
    q->input_taken = 1;
  return rc;
}

static int query_exchange(mpc_transport_t *t, mpc_role_t peer, const void *sbuf, size_t slen,
                          void *rbuf, size_t rlen) {
  query_step_t *q = (query_step_t *)t;
  (void)cl__fault(q->hooks, CL_FAULT_PARTY_ROUND, q->seq, q->client);
  return q->inner->exchange(t, peer, sbuf, slen, rbuf, rlen);
}

static void query_step_init(query_step_t *q, cl_party_t *P, const cl_ctrl_t *h, int client,
                            uint64_t client_links) {
  step_init(&q->l, P, client, client_links, h->tag);
  q->inner = q->l.base.ops;
  q->ops = *q->inner;
  q->ops.exchange = query_exchange;
  q->ops.recv = query_recv;
  q->l.base.ops = &q->ops;
  q->hooks = &P->hooks;
  q->seq = h->seq;
  q->client = client;
}

/* The bytes received so far from peer id, over all its links. */
static uint64_t wire_recvd(cl_party_t *P, int id) {
  net_stats_t ns;
  net_peer_stats(P->node, id, &ns);
  return ns.wire_recvd;
}

/* After a failed query: its client link (`links`, the one up when the query
 * began; 0: none) is closed and its messages dropped only if it is the
 * query's, i.e. the client's input came on it, whole (`taken`) or in part
 * (bytes arrived on it during the query: wire0 the count at its start,
 * wire1 at its failure, before report_done; a client that trickles its
 * input is cut off so). A
 * link that carried nothing may be a newer process under the same key,
 * which connected after the dealer took the dead process's request: it
 * sends the parties nothing before the dealer admits its own query, which
 * it does once both parties ended this one (report_done), so closing or
 * draining it then failed the newer process's first query. A link already
 * replaced is the dead process's: its messages are dropped. */
static void reset_client_link(cl_party_t *P, int client, uint64_t links, int taken,
                              uint64_t wire0, uint64_t wire1) {
  if (links == 0)
    return;
  int current = cl_peer_link(P->node, client) == links;
  int ours = current && (taken || wire1 > wire0);
  if (ours)
    (void)net_peer_close(P->node, client);
  if (ours || !current)
    cl_link_drain(P->node, client, links);
}

/* A query this party refuses before its step begins: the other party is
 * told on their link (the query's tag alone, which its step's receive from
 * this party reads as cancelled), so it fails at once, not after the
 * timeout. The link stays up: this party sent nothing else of the query.
 * Closing it instead, as once, did not reach a P0 that redialled before its
 * step read the link: it waited out the timeout, the dealer held the
 * client's next query as "still running at the parties" and refused it
 * (test_daemons' stale-setup case, under load). A link that is down (P0
 * redials before each step) is waited for, as for a step. The step is also
 * kept as abandoned (step_abandoned), so its tag goes again on the first
 * newer link: the cancel is not lost when the link it went on is drained
 * (the other party failing its previous step) or was never up. */
static void cancel_other(cl_party_t *P, const cl_ctrl_t *h) {
  if (wait_peer(P, P->other) == 0) {
    cl_step_t l;
    cl_step_init(&l, P->node, (mpc_role_t)P->self, -1, h->tag, P->cfg.timeout_ms);
    l.link[P->other] = cl_peer_link(P->node, P->other);
    if (cl_step_cancel(&l, (mpc_role_t)P->other) != 0)
      LOGW(P, "query %llu: could not tell the other party it is cancelled",
           (unsigned long long)h->seq);
  }
  step_abandoned(P, h->tag, cl_peer_link(P->node, P->other));
}

/* As if this party died here (the fault hook): every link closed. */
static void drop_all_links(cl_party_t *P) {
  for (int id = 0; id < NET_MAX_PEERS; id++)
    if (id != P->self && net_peer_up(P->node, id))
      (void)net_peer_close(P->node, id);
}

static void do_query(cl_party_t *P, const cl_ctrl_t *h) {
  char err[512] = "";
  int client = (int)h->peer;
  cl_model_t *m;
  cl_plan_t *pl;
  int rc;
  if (client < CL_CLIENT0 || client >= CL_CLIENT0 + P->cfg.nclients) {
    LOGW(P, "query %llu: unknown client %d", (unsigned long long)h->seq, client);
    (void)net_peer_close(P->node, CL_DEALER);
    return;
  }
  if ((rc = cl_store_get(&P->store, h->name, &m, err, sizeof err)) == 0 &&
      m->version != h->version) {
    /* A setup of this model failed here but not at the dealer: this party's
     * state belongs to another setup, and mixing them would give garbage. */
    rc = TANDEM_ESHAPE;
    snprintf(err, sizeof err,
             "model %s: this party holds another setup than the dealer's; share it again",
             h->name);
  }
  if (rc != 0 ||
      (rc = cl_model_plan(&P->store, m, (size_t)h->batch, &pl, err, sizeof err)) != 0) {
    /* The dealer hears first, then the client; the other party's step is
     * cancelled, and the dealer's part of the query taken off the link and
     * dropped. Closing the dealer link instead, as once, lost the report:
     * net drops what a link left unread once the party's next link is up,
     * and the dealer held the client's next query as still running. */
    LOG(P, "query %llu (%s): %s", (unsigned long long)h->seq, h->name, err);
    uint64_t dl = cl_peer_link(P->node, CL_DEALER);
    report_done(P, h, rc);
    send_failure(P, client, 0, h, rc, CL_FAIL_BEFORE, err);
    cancel_other(P, h);
    discard_dealer_part(P, dl, h);
    return;
  }
  /* Logged so that an operator (and the fault tests) can tell which query a
   * party was running when it failed or was killed. */
  LOG(P, "query %llu (%s, batch %llu, client %d): started", (unsigned long long)h->seq,
         h->name, (unsigned long long)h->batch, client);
  query_step_t q;
  memset(&q, 0, sizeof q);
  cl_step_t *link = &q.l;
  uint64_t client_links = 0, client_wire0 = 0; /* the query's client link */
  uint64_t dealer_links = cl_peer_link(P->node, CL_DEALER); /* the QUERY's */
  cl_fail_where_t where = CL_FAIL_BEFORE;
  if (cl__fault(&P->hooks, CL_FAULT_PARTY_BEFORE_QUERY, h->seq, client) != 0) {
    LOG(P, "fault injection: query %llu: this party dies", (unsigned long long)h->seq);
    drop_all_links(P);
    return;
  }
  if ((rc = wait_peer(P, client)) == 0) {
    client_links = cl_peer_link(P->node, client);
    client_wire0 = wire_recvd(P, client);
  }
  if (rc != 0 || (rc = wait_peer(P, P->other)) != 0) {
    snprintf(err, sizeof err, "%s did not connect: %s",
             net_peer_up(P->node, client) ? "the other party" : "the client",
             tandem_strerror(rc));
  } else {
    query_step_init(&q, P, h, client, client_links);
    rc = mpc_party_query(pl->obj, &link->base);
    /* The plan stays cached for the next query of this batch size; this
     * query's keys, masks and shares do not stay with it. */
    mpc_party_wipe_query(pl->obj);
    where = link->base.phase == MPC_PHASE_OFFLINE ? CL_FAIL_OFFLINE : CL_FAIL_ONLINE;
    if (rc != 0)
      snprintf(err, sizeof err, "%s phase failed: %s",
               link->base.phase == MPC_PHASE_OFFLINE ? "offline" : "online",
               tandem_strerror(rc));
  }
  if (rc != 0) {
    /* Counted now: once report_done tells the dealer, it may admit the
     * client's next query, whose input may then come on the same link. */
    uint64_t client_wire1 = client_links != 0 ? wire_recvd(P, client) : 0;
    if (link->base.phase == MPC_PHASE_SETUP)
      discard_dealer_part(P, dealer_links, h);
    LOGW(P, "query %llu (%s, batch %llu, client %d): %s", (unsigned long long)h->seq,
           h->name, (unsigned long long)h->batch, client, err);
    /* A part of the dealer's cut short may be left on its link: dropped with
     * the link. A cancelled query left nothing there. */
    if (link->base.phase == MPC_PHASE_OFFLINE && rc != TANDEM_ECANCELED) {
      uint64_t dl = cl_peer_link(P->node, CL_DEALER);
      (void)net_peer_close(P->node, CL_DEALER);
      cl_link_drain(P->node, CL_DEALER, dl);
    }
    report_done(P, h, rc);
    send_failure(P, client, client_links, h, rc, where, err);
    /* Only the client link of this query, and only if it is the query's:
     * a client that retries at once (the same peer id) may already be on a
     * newer one (reset_client_link). */
    reset_client_link(P, client, client_links, q.input_taken, client_wire0, client_wire1);
    /* A query the dealer cancelled keeps the link to the other party: the
     * dealer cancels it at both, which exchanged nothing of it. Closed, it
     * could be the link the other party, done with the query first, had
     * dialled for its next step (this party took the query up late), and
     * that step failed (seen under ThreadSanitizer). */
    if (rc != TANDEM_ECANCELED)
      reset_party_link(P, link->link[P->other], h->tag);
    return;
  }
  const mpc_stats_t *s = &link->base.stats;
  cl_party_stats_t st;
  memset(&st, 0, sizeof st);
  st.rounds = s->rounds[MPC_PHASE_ONLINE];
  for (int r = 0; r < MPC_NROLES; r++)
    st.online_sent += s->sent[r][MPC_PHASE_ONLINE];
  st.offline_recvd = s->recvd[MPC_DEALER][MPC_PHASE_OFFLINE];
  st.online_s = s->seconds[MPC_PHASE_ONLINE];
  st.offline_s = s->seconds[MPC_PHASE_OFFLINE];
  st.online_start = s->online_start;
  st.online_end = s->online_end;
  /* The stats, then each gate's offline and online seconds (for bench
   * --by-gate); the client sizes the list from its own plan. */
  size_t ng = mpc_plan_ngates(pl->plan);
  size_t alen = CL_STATS_BYTES + ng * 16;
  uint8_t *ack = malloc(alen), small[CL_STATS_BYTES];
  cl_stats_encode(&st, ack != NULL ? ack : small);
  for (size_t i = 0; ack != NULL && i < ng; i++) {
    double t[2];
    if (mpc_party_gate_times(pl->obj, i, &t[0], &t[1]) != 0)
      t[0] = t[1] = 0;
    for (int k = 0; k < 2; k++) {
      uint64_t v;
      memcpy(&v, &t[k], 8);
      for (int j = 0; j < 8; j++)
        ack[CL_STATS_BYTES + i * 16 + (size_t)k * 8 + (size_t)j] = (uint8_t)(v >> (8 * j));
    }
  }
  report_done(P, h, 0);
  send_status(P, client, client_links, CL_MSG_ACK, CL_FLAG_STATS, h, 0,
              ack != NULL ? ack : small, ack != NULL ? alen : CL_STATS_BYTES);
  free(ack);
  LOG(P, "query %llu (%s, batch %llu, client %d): ok, %llu rounds, %.2f ms online",
         (unsigned long long)h->seq, h->name, (unsigned long long)h->batch, client,
         (unsigned long long)st.rounds, 1e3 * st.online_s);
}


/* ---- the service ---------------------------------------------------------------- */

int cl_party_new(cl_party_t **out, const cl_config_t *cfg, int self, const cl_hooks_t *hooks,
                 char *err, size_t errlen) {
  *out = NULL;
  if (self != CL_P0 && self != CL_P1) {
    snprintf(err, errlen, "a compute party is p0 or p1");
    return TANDEM_EINVAL;
  }
  if (cfg->m[self].data_dir[0] == '\0') {
    snprintf(err, errlen, "%s: [p%d] has no data directory", cfg->path, self);
    return TANDEM_ECONFIG;
  }
  int rc = cl_data_dir(cfg->m[self].data_dir, err, errlen);
  if (rc != 0)
    return rc;
  cl_party_t *P = calloc(1, sizeof *P);
  if (P == NULL)
    return TANDEM_ENOMEM;
  P->cfg = *cfg;
  if (hooks != NULL)
    P->hooks = *hooks;
  P->self = self;
  P->other = 1 - self;
  P->who = self == CL_P0 ? "party p0" : "party p1";
  P->netlog = (cl__netlog_t){&P->hooks, P->who};
  rc = cl_node_open(&P->cfg, self, 1, &P->node, cl__net_log, &P->netlog, err, errlen);
  if (rc != 0) {
    free(P);
    return rc;
  }
  cl_store_init(&P->store, P->cfg.m[self].data_dir, self == CL_P0 ? MPC_P0 : MPC_P1);
  P->store.mem_max = P->cfg.plan_mem_max;
  LOG(P, "listening on %s port %u", P->cfg.m[self].host, (unsigned)P->cfg.m[self].port);
  *out = P;
  return 0;
}

int cl_party_reload(cl_party_t *P, char *err, size_t errlen) {
  int added = 0;
  int rc = cl_config_reload_clients(&P->cfg, P->self, P->node, &added, err, errlen);
  if (rc != 0)
    LOGW(P, "config not reloaded: %s", err);
  else
    LOG(P, "config reloaded: %d clients, %d keys new or changed", P->cfg.nclients, added);
  return rc;
}

net_node_t *cl_party_node(cl_party_t *P) { return P->node; }
cl_store_t *cl__party_store(cl_party_t *P) { return &P->store; }

/* Dials peer id if it is down; logs, by the peer's config name, only a
 * change between reachable and not (issue 12: a refused dial was logged once
 * a second for as long as the peer was down; a peer going down shows first
 * as a closed link, then as refused dials: one absence, one line).
 * 1 if the peer is still down. */
static int dial(cl_party_t *P, int id) {
  int rc = net_peer_up(P->node, id) ? 0 : net_connect(P->node, id);
  if ((rc != 0) != (P->dial_rc[id] != 0)) {
    const cl_member_t *m = &P->cfg.m[id];
    if (rc != 0)
      LOGW(P, "cannot reach %s at %s port %u: %s; retrying every %.1f s at most", m->name,
          m->host, (unsigned)m->port, tandem_strerror(rc), CL_DIAL_BACKOFF_MAX_S);
    else
      LOG(P, "%s reachable again", m->name);
    P->dial_rc[id] = rc;
  }
  return rc != 0;
}

void cl_party_step(cl_party_t *P, int timeout_ms) {
  /* The parties dial the dealer (and P0 dials P1); a peer that restarts is
   * dialled again here, after a back-off that doubles while it stays down. */
  double now = cl_now();
  if (now >= P->next_try) {
    int fails = dial(P, CL_DEALER);
    if (P->self == CL_P0)
      fails += dial(P, CL_P1);
    P->backoff = !fails ? 0 : P->backoff == 0 ? 0.2 : P->backoff * 2;
    if (P->backoff > CL_DIAL_BACKOFF_MAX_S)
      P->backoff = CL_DIAL_BACKOFF_MAX_S;
    P->next_try = now + (fails ? P->backoff : 0.2);
  }
  /* A step given up is cancelled at the other party as soon as a newer
   * link to it is up (P0 dials it; P1 sees it here). */
  send_abandoned(P);
  int up = net_peer_up(P->node, CL_DEALER);
  uint64_t link = cl_peer_link(P->node, CL_DEALER);
  if (up != P->dealer_was_up || (up && link != P->dealer_was_link))
    LOG(P, up ? "connected to the dealer" : "waiting for the dealer");
  P->dealer_was_up = up;
  P->dealer_was_link = link;
  if (!up) {
    int ms = timeout_ms < 100 ? timeout_ms : 100;
    struct timespec ts = {0, (long)ms * 1000 * 1000};
    nanosleep(&ts, NULL);
    return;
  }
  send_pending_done(P);
  cl_ctrl_t h;
  uint8_t *payload;
  size_t plen;
  int rc = cl_ctrl_recv(P->node, CL_DEALER, &h, &payload, &plen, timeout_ms);
  if (rc == TANDEM_ETIMEDOUT)
    return;
  if (rc != 0) {
    if (rc != TANDEM_ECLOSED && rc != TANDEM_ECONNRESET)
      LOG(P, "dealer link: %s", tandem_strerror(rc));
    (void)net_peer_close(P->node, CL_DEALER);
    return;
  }
  if (h.type == CL_MSG_SETUP)
    do_setup(P, &h, payload, plen);
  else if (h.type == CL_MSG_QUERY)
    do_query(P, &h);
  else if (h.type == CL_MSG_REMOVE)
    do_remove(P, &h);
  else
    LOGW(P, "unexpected control message %u from the dealer", h.type);
  free(payload);
  /* An idle party holds its models, not the buffers of its last large
   * query (issue 12: 3.0 GB resident after CNN queries): large plans go,
   * and the allocator gives the freed pages back to the system. */
  unsigned freed = h.type == CL_MSG_QUERY ? cl_store_release(&P->store, P->cfg.plan_keep) : 0;
  if (freed > 0) {
    if (CL_GLIBC_HEAP)
      malloc_trim(0);
    LOG(P, "%u large plan(s) freed after the query (over %zu MB each)", freed,
        P->cfg.plan_keep >> 20);
  }
}

void cl_party_free(cl_party_t *P) {
  if (P == NULL)
    return;
  LOG(P, "stopping");
  net_node_free(P->node);
  cl_store_close(&P->store);
  free(P);
}
