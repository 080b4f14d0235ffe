/* client.c - the owner's and the client's protocol against a cluster
 * (mpc_cluster.h).
 *
 * A query: the client asks the dealer (REQ); the dealer answers with the
 * public graph and a sequence number and tells both parties; the client gets
 * its input-mask seed from the dealer, sends X + R_X to both parties, and
 * adds the two output shares it receives. Each party then sends its counters
 * (ACK). The client alone sees the input and the result.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cluster_int.h"

/* How long a failed query waits for each live party's report of why. */
#define CL_REPORT_WAIT_MS 5000

int cl_client_open(cl_client_t *c, const cl_config_t *cfg, int self, char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  c->cfg = cfg;
  c->self = self;
  int rc = cl_node_open(cfg, self, 0, &c->node, NULL, NULL, err, errlen);
  if (rc != 0)
    return rc;
  /* A daemon that refuses connections is down (or not yet up): it is named
   * after CL_DOWN_GRACE_MS of retries, not after the whole timeout (issue
   * 12: 30 s of silence before one line). */
  static const int peers[3] = {CL_DEALER, CL_P0, CL_P1};
  int grace = cfg->timeout_ms < CL_DOWN_GRACE_MS ? cfg->timeout_ms : CL_DOWN_GRACE_MS;
  for (int i = 0; i < 3; i++) {
    rc = cl_connect(c->node, peers[i], grace);
    if (rc != 0) {
      const cl_member_t *m = &cfg->m[peers[i]];
      snprintf(err, errlen, "cannot reach %s at %s port %u: %s%s", m->name, m->host,
               (unsigned)m->port, tandem_strerror(rc),
               rc == -ECONNREFUSED ? " (is it running?)" : "");
      net_node_free(c->node);
      c->node = NULL;
      return rc;
    }
  }
  return 0;
}

void cl_client_close(cl_client_t *c) {
  if (c->node != NULL)
    net_node_free(c->node);
  c->node = NULL;
}

/* Takes the next control message from peer within timeout_ms, dropping
 * what belongs to an earlier process of this client's name (it died or gave
 * up, and the message reached this one, connected in its place): a party's
 * ACK of another query than `seq`, a dealer's REPLY to another request than
 * `nonce` (0: no such check). */
static int recv_ctrl(cl_client_t *c, int peer, uint64_t seq, uint64_t nonce, int timeout_ms,
                     cl_ctrl_t *h, uint8_t **payload, size_t *plen) {
  double end = cl_now() + timeout_ms / 1000.0;
  for (;;) {
    double left_ms = (end - cl_now()) * 1000.0;
    int rc = cl_ctrl_recv(c->node, peer, h, payload, plen, left_ms < 1 ? 0 : (int)left_ms);
    int stale = rc == 0 && ((h->type == CL_MSG_ACK && seq != 0 && h->seq != seq) ||
                            (h->type == CL_MSG_REPLY && nonce != 0 && h->version != nonce));
    if (!stale)
      return rc;
    free(*payload);
    *payload = NULL;
  }
}

/* Waits for a control message of type `type` from peer (an ACK: of query
 * seq); a refusal's text goes to err. */
static int wait_ctrl(cl_client_t *c, int peer, uint32_t type, uint64_t seq, uint64_t nonce,
                     cl_ctrl_t *h, uint8_t **payload, size_t *plen, char *err, size_t errlen) {
  int rc = recv_ctrl(c, peer, seq, nonce, c->cfg->timeout_ms, h, payload, plen);
  const char *who = c->cfg->m[peer].name;
  if (rc != 0) {
    snprintf(err, errlen, "no answer from %s: %s", who, tandem_strerror(rc));
    return rc;
  }
  if (h->type != type) {
    snprintf(err, errlen, "unexpected message %u from %s", h->type, who);
    free(*payload);
    *payload = NULL;
    return TANDEM_EPROTO;
  }
  if (h->status != 0) {
    /* A query's ACK carries the party's stats (its failure record) before
     * the text. */
    size_t skip = (h->flags & CL_FLAG_STATS) && *plen >= CL_STATS_BYTES ? CL_STATS_BYTES : 0;
    snprintf(err, errlen, "%s: %s", who,
             *payload != NULL && *plen > skip ? (const char *)*payload + skip
                                              : tandem_strerror(h->status));
    free(*payload);
    *payload = NULL;
    return h->status < 0 ? h->status : TANDEM_EPROTO;
  }
  return 0;
}

int cl_client_share_model(cl_client_t *c, const char *onnx_path, const char *name,
                          unsigned flags, char *err, size_t errlen) {
  if (!cl_name_ok(name)) {
    snprintf(err, errlen, "bad model name '%s' (1-63 of letters, digits, '_', '-', '.')",
             name);
    return TANDEM_EINVAL;
  }
  mpc_graph_t g;
  mpc_weights_t w;
  int rc = mpc_onnx_load(onnx_path, &g, &w, err, errlen);
  if (rc != 0)
    return rc;
  rc = cl_client_share_graph(c, &g, &w, name, flags, err, errlen);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  return rc;
}

int cl_client_share_graph(cl_client_t *c, const mpc_graph_t *g, const mpc_weights_t *w,
                          const char *name, unsigned flags, char *err, size_t errlen) {
  int rc;
  if (!cl_name_ok(name)) {
    snprintf(err, errlen, "bad model name '%s' (1-63 of letters, digits, '_', '-', '.')",
             name);
    return TANDEM_EINVAL;
  }
  uint8_t *gb = NULL, *payload = NULL;
  size_t glen = 0, plen = 0;
  mpc_plan_t *plan = NULL;
  if ((rc = mpc_plan_new(&plan, g, 1, err, errlen)) != 0)
    goto done;
  /* The public graph carries the largest safe input, so that clients refuse
   * what would overflow inside the model (its one figure about the weights). */
  mpc_graph_t pub = *g;
  int8_t *mag = NULL;
  if ((rc = mpc_weights_bounds(g, w, g->input_bound, &pub.input_bound, &mag)) != 0) {
    snprintf(err, errlen, "%s",
             rc != TANDEM_ERANGE ? tandem_strerror(rc)
             : g->input_bound > 0
                 ? "the model's declared input range (tandem.input_bound) is more than "
                   "its weights allow in the fixed-point range"
                 : "the model's weights overflow the fixed-point range");
    goto done;
  }
  /* The graph's magnitude exponents size each comparison gate. */
  pub.mag_log2 = mag;
  pub.nmag = g->nnodes;
  rc = mpc_graph_save(&pub, &gb, &glen);
  free(mag);
  if (rc != 0) {
    snprintf(err, errlen, "cannot serialise the graph: %s", tandem_strerror(rc));
    goto done;
  }
  cl_ctrl_t h;
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_SHARE;
  h.flags = flags & CL_SHARE_REPLACE ? CL_FLAG_REPLACE : 0;
  snprintf(h.name, sizeof h.name, "%s", name);
  if ((rc = cl_ctrl_send(c->node, CL_DEALER, &h, gb, glen)) != 0) {
    snprintf(err, errlen, "cannot send the graph to the dealer: %s", tandem_strerror(rc));
    goto done;
  }
  if ((rc = wait_ctrl(c, CL_DEALER, CL_MSG_REPLY, 0, 0, &h, &payload, &plen, err, errlen)) != 0)
    goto done;
  cl_step_t link;
  cl_step_init(&link, c->node, MPC_OWNER, -1, h.tag, c->cfg->timeout_ms);
  char why[512] = "";
  if ((rc = mpc_owner_share(plan, w, &link.base, why, sizeof why)) != 0) {
    snprintf(err, errlen, "sharing the weights failed: %s",
             why[0] ? why : tandem_strerror(rc));
    goto done;
  }
  for (int id = CL_P0; id <= CL_P1 && rc == 0; id++) {
    free(payload);
    payload = NULL;
    rc = wait_ctrl(c, id, CL_MSG_ACK, 0, 0, &h, &payload, &plen, err, errlen);
  }
done:
  free(payload);
  free(gb);
  mpc_plan_free(plan);
  return rc;
}

/* Sends the dealer a request of `type` about model `name` (none: "") with
 * a nonce and waits for its REPLY, whose payload goes to *payload. */
static int ask_dealer(cl_client_t *c, uint32_t type, const char *name, uint8_t **payload,
                      size_t *plen, char *err, size_t errlen) {
  cl_ctrl_t h;
  memset(&h, 0, sizeof h);
  h.type = type;
  snprintf(h.name, sizeof h.name, "%s", name);
  uint64_t nonce;
  randombytes_buf(&nonce, sizeof nonce);
  h.version = nonce;
  int rc = cl_ctrl_send(c->node, CL_DEALER, &h, NULL, 0);
  if (rc != 0) {
    snprintf(err, errlen, "cannot reach %s: %s", c->cfg->m[CL_DEALER].name,
             tandem_strerror(rc));
    return rc;
  }
  return wait_ctrl(c, CL_DEALER, CL_MSG_REPLY, 0, nonce, &h, payload, plen, err, errlen);
}

int cl_client_models(cl_client_t *c, char **text, char *err, size_t errlen) {
  size_t len = 0;
  *text = NULL;
  return ask_dealer(c, CL_MSG_LIST, "", (uint8_t **)text, &len, err, errlen);
}

int cl_client_graph(cl_client_t *c, const char *name, mpc_graph_t *g, char *err,
                    size_t errlen) {
  uint8_t *graph = NULL;
  size_t glen = 0;
  int rc = ask_dealer(c, CL_MSG_GRAPH, name, &graph, &glen, err, errlen);
  if (rc == 0)
    rc = mpc_graph_load(g, graph, glen, err, errlen);
  free(graph);
  return rc;
}

int cl_client_remove_model(cl_client_t *c, const char *name, char *err, size_t errlen) {
  if (!cl_name_ok(name)) {
    snprintf(err, errlen, "bad model name '%s' (1-63 of letters, digits, '_', '-', '.')",
             name);
    return TANDEM_EINVAL;
  }
  cl_ctrl_t h;
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_REMOVE;
  snprintf(h.name, sizeof h.name, "%s", name);
  uint8_t *payload = NULL;
  size_t plen = 0;
  int rc = cl_ctrl_send(c->node, CL_DEALER, &h, NULL, 0);
  if (rc != 0) {
    snprintf(err, errlen, "cannot reach %s: %s", c->cfg->m[CL_DEALER].name,
             tandem_strerror(rc));
    return rc;
  }
  rc = wait_ctrl(c, CL_DEALER, CL_MSG_REPLY, 0, 0, &h, &payload, &plen, err, errlen);
  for (int id = CL_P0; id <= CL_P1 && rc == 0; id++) {
    free(payload);
    payload = NULL;
    rc = wait_ctrl(c, id, CL_MSG_ACK, 0, 0, &h, &payload, &plen, err, errlen);
  }
  free(payload);
  return rc;
}

/* Issue 12: a wrong shape was found only after the dealer had sent its
 * preprocessing, and the parties logged the client's mistake as a network
 * fault; `tandem run` checks the same before it starts its cluster. */
int cl_inputs_check(const mpc_graph_t *g, const char *name, const mpc_ftensor_t *inputs,
                    size_t ninputs, size_t noutputs, size_t *batch, char *err, size_t errlen) {
  char why[400];
  int rc = mpc_graph_batch(g, inputs, ninputs, batch, why, sizeof why);
  if (rc != 0) {
    snprintf(err, errlen, "model %s: %s", name, why);
    return rc;
  }
  size_t nout = 0, k = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    nout += g->nodes[i].op == MPC_OP_OUTPUT;
  if (nout != noutputs) {
    snprintf(err, errlen, "model %s has %zu outputs, not %zu", name, nout, noutputs);
    return TANDEM_ESHAPE;
  }
  const double lo = g->input_min;
  for (size_t i = 0; i < g->nnodes; i++) {
    if (g->nodes[i].op != MPC_OP_INPUT)
      continue;
    const mpc_ftensor_t *t = &inputs[k++];
    size_t n = mpc_shape_numel(&t->shape);
    for (size_t j = 0; j < n; j++) {
      /* Token ids arrive one-hot encoded (mpc_inputs_encode_ids checked the
       * ids): 0 or 1, whatever the bound of the other inputs. */
      if (g->nodes[i].ids && t->data[j] != 0.0 && t->data[j] != 1.0) {
        snprintf(err, errlen, "model %s: input '%s' (token ids, one-hot encoded) element %zu "
                 "is neither 0 nor 1", name, g->nodes[i].name, j);
        return TANDEM_ERANGE;
      }
      if (g->nodes[i].ids)
        continue;
      if (!isfinite(t->data[j])) {
        snprintf(err, errlen, "model %s: input '%s' element %zu is %g, not a finite number",
                 name, g->nodes[i].name, j, t->data[j]);
        return TANDEM_ERANGE;
      }
      if (t->data[j] < lo) {
        snprintf(err, errlen,
                 "model %s: input '%s' element %zu is %g, below the model's declared least "
                 "input %.6g (tandem.input_min)", name, g->nodes[i].name, j, t->data[j], lo);
        return TANDEM_ERANGE;
      }
      if (g->input_bound > 0 && !(fabs(t->data[j]) <= g->input_bound)) {
        snprintf(err, errlen,
                 "model %s: input '%s' element %zu is %g, beyond the model's safe input "
                 "range +-%.6g", name, g->nodes[i].name, j, t->data[j], g->input_bound);
        return TANDEM_ERANGE;
      }
    }
  }
  if (*batch == 0)
    *batch = 1; /* no batched input: the same plan at any batch */
  return 0;
}

/* Asks the dealer for one query of model `name` at `batch` rows: sends the
 * REQ (with a nonce the REPLY echoes: a reply to a request of an earlier
 * process of this client's name, which the dealer took only after this one
 * had connected, is not this query's) and waits for the REPLY, whose
 * payload (the public graph, malloc'd) goes to *graph. */
static int query_ask(cl_client_t *c, const char *name, size_t batch, cl_ctrl_t *h,
                     uint8_t **graph, size_t *glen, char *err, size_t errlen) {
  memset(h, 0, sizeof *h);
  h->type = CL_MSG_REQ;
  h->batch = batch;
  snprintf(h->name, sizeof h->name, "%s", name);
  uint64_t nonce;
  randombytes_buf(&nonce, sizeof nonce);
  h->version = nonce;
  int rc = cl_ctrl_send(c->node, CL_DEALER, h, NULL, 0);
  if (rc != 0) {
    snprintf(err, errlen, "cannot reach the dealer: %s", tandem_strerror(rc));
    return rc;
  }
  return wait_ctrl(c, CL_DEALER, CL_MSG_REPLY, 0, nonce, h, graph, glen, err, errlen);
}

/* Whether a party's failure code says its link to a peer ended. */
static int link_ended(int code) {
  return code == TANDEM_ECLOSED || code == -ECONNRESET || code == -EPIPE;
}

/* After a failed query: a party that gave it up says why, where and with
 * which code (its stats' failure record, then a text). When one party's
 * failure made the other's (a dropped link), the cause is the failure that
 * came before either phase ran. A party that sent no report while the other
 * reports a link that ended, or whose link to this client ended, is the one
 * that failed, and is named first (issue 12: with P1 killed mid-query the
 * line named P0, which had only seen P1's link end). Fills st's failure and
 * err. */
static void query_failure(cl_client_t *c, uint64_t seq, int rc, cl_query_stats_t *st,
                          char *err, size_t errlen) {
  char why[2][512] = {"", ""};
  cl_party_stats_t fail[2];
  int heard[2] = {0, 0};
  memset(fail, 0, sizeof fail);
  /* Whatever ended this client's query reached it first; the parties'
   * reports follow, late under load (500 ms once missed both). A party
   * whose link is down answers at once; only a live, silent one is waited
   * for this long. */
  int wait_ms = c->cfg->timeout_ms < CL_REPORT_WAIT_MS ? c->cfg->timeout_ms : CL_REPORT_WAIT_MS;
  for (int id = CL_P0; id <= CL_P1; id++) {
    cl_ctrl_t a;
    uint8_t *payload = NULL;
    size_t plen = 0;
    if (recv_ctrl(c, id, seq, 0, wait_ms, &a, &payload, &plen) == 0 && a.status != 0 &&
        (a.flags & CL_FLAG_STATS) && plen >= CL_STATS_BYTES) {
      heard[id] = 1;
      cl_stats_decode(payload, &fail[id]);
      snprintf(why[id], sizeof why[id], "%s: %s", c->cfg->m[id].name,
               (const char *)payload + CL_STATS_BYTES);
    }
    free(payload);
  }
  int pick = -1;
  for (int id = CL_P0; id <= CL_P1; id++)
    if (fail[id].fail_code != 0 && (pick < 0 || fail[pick].fail_where != CL_FAIL_BEFORE))
      pick = id;
  /* The silent party: no report, and its link ended (at this client) or
   * the other party's did. */
  int gone = -1;
  for (int id = CL_P0; id <= CL_P1; id++) {
    int other = CL_P0 + CL_P1 - id;
    if (!heard[id] && (!net_peer_up(c->node, id) ||
                       (heard[other] && link_ended(fail[other].fail_code))))
      gone = id;
  }
  if (gone >= 0) {
    const char *name = c->cfg->m[gone].name;
    st->fail_party = gone;
    st->fail_where = pick >= 0 ? (cl_fail_where_t)fail[pick].fail_where : CL_FAIL_ONLINE;
    st->fail_code = pick >= 0 ? fail[pick].fail_code : rc;
    if (pick >= 0)
      snprintf(err, errlen, "%s left the query (no report from it%s); %s", name,
               net_peer_up(c->node, gone) ? "" : ", its link to this client ended", why[pick]);
    else
      snprintf(err, errlen, "%s left the query (no report from it, its link to this client "
               "ended): %s", name, tandem_strerror(rc));
  } else if (pick >= 0) {
    st->fail_party = (int)fail[pick].fail_party;
    st->fail_where = (cl_fail_where_t)fail[pick].fail_where;
    st->fail_code = fail[pick].fail_code;
    snprintf(err, errlen, "%s", why[pick]);
  } else if (err[0] == '\0') {
    snprintf(err, errlen, "the query failed: %s", tandem_strerror(rc));
  }
}

/* One party's ACK payload (plen bytes) into st: its stats, then each
 * gate's offline and online seconds as little-endian binary64 pairs (a party
 * that sends none leaves 0); the slower party's figures are kept. */
static void query_ack_stats(cl_query_stats_t *st, int id, const uint8_t *payload, size_t plen,
                            double *start, double *end) {
  cl_party_stats_t ps;
  cl_stats_decode(payload, &ps);
  if (ps.rounds > st->rounds)
    st->rounds = (unsigned)ps.rounds;
  st->online_bytes[id] = ps.online_sent;
  st->offline_bytes[id] = ps.offline_recvd;
  if (ps.online_s > st->online_s)
    st->online_s = ps.online_s;
  if (ps.offline_s > st->offline_s)
    st->offline_s = ps.offline_s;
  *start = ps.online_start;
  *end = ps.online_end;
  if (plen != CL_STATS_BYTES + st->ngates * 16 || st->gate_offline_s == NULL ||
      st->gate_online_s == NULL)
    return;
  for (size_t i = 0; i < st->ngates; i++) {
    double t[2];
    for (int k = 0; k < 2; k++) {
      uint64_t v = 0;
      for (int b = 0; b < 8; b++)
        v |= (uint64_t)payload[CL_STATS_BYTES + i * 16 + (size_t)k * 8 + (size_t)b] << (8 * b);
      memcpy(&t[k], &v, 8);
    }
    if (t[0] > st->gate_offline_s[i])
      st->gate_offline_s[i] = t[0];
    if (t[1] > st->gate_online_s[i])
      st->gate_online_s[i] = t[1];
  }
}

int cl_client_query(cl_client_t *c, const char *name, const mpc_ftensor_t *inputs, size_t ninputs,
              mpc_ftensor_t *outputs, size_t noutputs, cl_query_stats_t *st, char *err,
              size_t errlen) {
  memset(st, 0, sizeof *st);
  st->fail_party = -1;
  double t0 = cl_now();
  if (ninputs > 0 && inputs[0].shape.ndim > 0 && inputs[0].shape.dim[0] == 0) {
    snprintf(err, errlen, "an empty input");
    return TANDEM_ESHAPE;
  }
  /* The inputs are checked against the model's public graph before the
   * dealer is asked for the query; its reply brings the graph again, which
   * is the query's (the model may be replaced meanwhile). */
  size_t ask = 0;
  mpc_graph_t pre;
  int rc = cl_client_graph(c, name, &pre, err, errlen);
  if (rc == 0) {
    rc = cl_inputs_check(&pre, name, inputs, ninputs, noutputs, &ask, err, errlen);
    mpc_graph_close(&pre);
  }
  if (rc != 0)
    return rc;
  cl_ctrl_t h;
  uint8_t *graph = NULL;
  size_t glen = 0;
  rc = query_ask(c, name, ask, &h, &graph, &glen, err, errlen);
  if (rc != 0)
    return rc;
  st->waited = (h.flags & CL_FLAG_WAITED) != 0;
  uint64_t seq = h.seq; /* the query's: the parties' ACKs carry it */
  mpc_graph_t g;
  mpc_plan_t *plan = NULL;
  rc = mpc_graph_load(&g, graph, glen, err, errlen);
  free(graph);
  if (rc != 0)
    return rc;
  size_t batch = 0;
  if ((rc = mpc_graph_batch(&g, inputs, ninputs, &batch, err, errlen)) != 0 ||
      (batch != 0 && batch != h.batch)) {
    if (rc == 0)
      snprintf(err, errlen, "model %s: the batched inputs have %zu rows, not the first "
               "input's %zu (put a batched input first)", name, batch, (size_t)h.batch);
    mpc_graph_close(&g);
    /* The parties already expect this query: they time out on it. */
    return rc != 0 ? rc : TANDEM_ESHAPE;
  }
  if ((rc = mpc_plan_new(&plan, &g, (size_t)h.batch, err, errlen)) != 0) {
    mpc_graph_close(&g);
    return rc;
  }
  if (mpc_plan_ninputs(plan) != ninputs || mpc_plan_noutputs(plan) != noutputs) {
    snprintf(err, errlen, "model %s has %zu inputs and %zu outputs, not %zu and %zu", name,
             mpc_plan_ninputs(plan), mpc_plan_noutputs(plan), ninputs, noutputs);
    rc = TANDEM_ESHAPE;
    /* The parties already expect this query: they time out on it. */
    goto done;
  }
  cl_step_t link;
  cl_step_init(&link, c->node, MPC_CLIENT, c->self, h.tag, c->cfg->timeout_ms);
  err[0] = '\0';
  rc = mpc_client_run(plan, &link.base, inputs, outputs, err, errlen);
  if (rc != 0) {
    query_failure(c, seq, rc, st, err, errlen);
    goto done;
  }
  st->client_offline = link.base.stats.recvd[MPC_DEALER][MPC_PHASE_OFFLINE];
  st->ngates = mpc_plan_ngates(plan);
  st->gate_offline_s = calloc(st->ngates + 1, sizeof(double));
  st->gate_online_s = calloc(st->ngates + 1, sizeof(double));
  double start[2] = {0, 0}, end[2] = {0, 0};
  for (int id = CL_P0; id <= CL_P1; id++) {
    uint8_t *payload = NULL;
    size_t plen = 0;
    cl_ctrl_t a;
    rc = wait_ctrl(c, id, CL_MSG_ACK, seq, 0, &a, &payload, &plen, err, errlen);
    if (rc == 0 && (a.flags & CL_FLAG_STATS) && plen >= CL_STATS_BYTES)
      query_ack_stats(st, id, payload, plen, &start[id], &end[id]);
    free(payload);
    if (rc != 0) {
      for (size_t i = 0; i < noutputs; i++)
        mpc_ftensor_close(&outputs[i]);
      goto done;
    }
  }
  st->wall_s = cl_now() - t0;
  st->queries = 1;
  {
    double s0 = start[0] > start[1] ? start[0] : start[1];
    double e0 = end[0] > end[1] ? end[0] : end[1];
    st->online_span_s = s0 > 0 && e0 >= s0 ? e0 - s0 : st->online_s;
  }
done:
  mpc_plan_free(plan);
  mpc_graph_close(&g);
  return rc;
}

static void tensors_close(mpc_ftensor_t *t, size_t n) {
  for (size_t i = 0; i < n; i++)
    mpc_ftensor_close(&t[i]);
}

/* A view of rows [r0, r0 + n) of t (no copy). */
static mpc_ftensor_t rows_of(const mpc_ftensor_t *t, size_t r0, size_t n) {
  mpc_ftensor_t v = *t;
  size_t row = t->shape.dim[0] ? mpc_shape_numel(&t->shape) / t->shape.dim[0] : 0;
  v.shape.dim[0] = n;
  v.data = t->data + r0 * row;
  return v;
}

int cl_client_query_chunked(cl_client_t *c, const char *name, size_t chunk,
                      const mpc_ftensor_t *inputs, size_t ninputs, mpc_ftensor_t *outputs,
                      size_t noutputs, cl_query_stats_t *st, char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  st->fail_party = -1;
  if (ninputs == 0 && chunk != 0 && noutputs <= CL_MAX_TENSORS) {
    /* A model without inputs (its outputs the graph's constants): one query. */
    int rc = cl_client_query(c, name, inputs, 0, outputs, noutputs, st, err, errlen);
    st->queries = 1;
    return rc;
  }
  if (ninputs == 0 || ninputs > CL_MAX_TENSORS || noutputs > CL_MAX_TENSORS ||
      inputs[0].shape.ndim == 0 || chunk == 0) {
    snprintf(err, errlen, "the input has no batch dimension");
    return TANDEM_ESHAPE;
  }
  size_t total = inputs[0].shape.dim[0];
  if (total <= chunk) {
    int rc = cl_client_query(c, name, inputs, ninputs, outputs, noutputs, st, err, errlen);
    st->queries = 1;
    return rc;
  }
  int rc = 0;
  size_t done = 0, nout_open = 0;
  while (rc == 0 && done < total) {
    size_t n = total - done < chunk ? total - done : chunk;
    mpc_ftensor_t in[CL_MAX_TENSORS], out[CL_MAX_TENSORS];
    for (size_t i = 0; i < ninputs; i++) {
      if (inputs[i].shape.ndim == 0 || inputs[i].shape.dim[0] != total) {
        snprintf(err, errlen, "input %zu has another batch size than input 1 (%zu)", i + 1,
                 total);
        rc = TANDEM_ESHAPE;
        break;
      }
      in[i] = rows_of(&inputs[i], done, n);
    }
    cl_query_stats_t q;
    memset(&q, 0, sizeof q); /* closed below even when no query ran */
    q.fail_party = -1;
    if (rc == 0)
      rc = cl_client_query(c, name, in, ninputs, out, noutputs, &q, err, errlen);
    if (rc != 0) {
      st->fail_party = q.fail_party;
      st->fail_where = q.fail_where;
      st->fail_code = q.fail_code;
      cl_query_stats_close(&q);
      break;
    }
    for (size_t i = 0; i < noutputs && rc == 0; i++) {
      size_t row = n ? mpc_shape_numel(&out[i].shape) / n : 0;
      if (done == 0) {
        mpc_shape_t full = out[i].shape;
        full.dim[0] = total;
        if ((rc = mpc_ftensor_init(&outputs[i], &full)) == 0)
          nout_open++;
      }
      if (rc == 0)
        memcpy(outputs[i].data + done * row, out[i].data, n * row * sizeof(double));
    }
    tensors_close(out, noutputs);
    /* Sums over the queries, the rounds of one. */
    st->rounds = q.rounds > st->rounds ? q.rounds : st->rounds;
    for (int p = 0; p < 2; p++) {
      st->online_bytes[p] += q.online_bytes[p];
      st->offline_bytes[p] += q.offline_bytes[p];
    }
    st->client_offline += q.client_offline;
    st->online_s += q.online_s;
    st->online_span_s += q.online_span_s;
    st->offline_s += q.offline_s;
    st->wall_s += q.wall_s;
    st->waited |= q.waited;
    if (st->gate_online_s == NULL && q.gate_online_s != NULL && q.gate_offline_s != NULL) {
      st->ngates = q.ngates;
      st->gate_online_s = q.gate_online_s;
      st->gate_offline_s = q.gate_offline_s;
      q.gate_online_s = q.gate_offline_s = NULL;
    } else if (st->gate_online_s != NULL && q.gate_online_s != NULL &&
               q.gate_offline_s != NULL && q.ngates == st->ngates) {
      for (size_t i = 0; i < q.ngates; i++) {
        st->gate_online_s[i] += q.gate_online_s[i];
        st->gate_offline_s[i] += q.gate_offline_s[i];
      }
    }
    cl_query_stats_close(&q);
    st->queries++;
    done += n;
    if (c->progress != NULL)
      c->progress(c->progress_ctx, done, total);
  }
  if (rc != 0)
    tensors_close(outputs, nout_open);
  return rc;
}



void cl_query_stats_close(cl_query_stats_t *st) {
  free(st->gate_offline_s);
  free(st->gate_online_s);
  st->gate_offline_s = st->gate_online_s = NULL;
  st->ngates = 0;
}
