/* link.c - the mpc transport over net (cl_step_t: a step's tag on every
 * message, stale messages dropped, a tag alone cancels) and the codec of the
 * control messages and the parties' stats, at fixed little-endian offsets
 * (mpc_cluster.h). */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cluster_int.h"

/* ---- the mpc transport --------------------------------------------------------- */

/* Both sends of a caller's buffer with CL_TAG_BYTES of headroom: as it is,
 * or consumed (net_msg_send_consume), what was wiped then to *wiped if
 * wiped is not NULL. */
static int step_send(cl_step_t *l, mpc_role_t to, uint8_t *buf, size_t len, int consume,
                     size_t *wiped) {
  if (wiped)
    *wiped = 0;
  if (l->peer[to] < 0 || len > SIZE_MAX - CL_TAG_BYTES)
    return TANDEM_EINVAL;
  memcpy(buf, &l->tag, CL_TAG_BYTES);
  if (consume)
    return net_msg_send_consume(l->node, l->peer[to], l->link[to], CL_CHAN_DATA, buf,
                                len + CL_TAG_BYTES, wiped);
  return net_msg_send_on(l->node, l->peer[to], l->link[to], CL_CHAN_DATA, buf,
                         len + CL_TAG_BYTES);
}

int cl_step_send_in_place(cl_step_t *l, mpc_role_t to, uint8_t *buf, size_t len) {
  return step_send(l, to, buf, len, 0, NULL);
}

int cl_step_send_consume(cl_step_t *l, mpc_role_t to, uint8_t *buf, size_t len,
                         size_t *wiped) {
  return step_send(l, to, buf, len, 1, wiped);
}

static int link_send(mpc_transport_t *t, mpc_role_t to, const void *buf, size_t len) {
  cl_step_t *l = (cl_step_t *)t;
  if (len > SIZE_MAX - CL_TAG_BYTES)
    return TANDEM_EINVAL;
  uint8_t *m = malloc(len + CL_TAG_BYTES);
  if (m == NULL)
    return TANDEM_ENOMEM;
  if (len > 0)
    memcpy(m + CL_TAG_BYTES, buf, len);
  int rc = cl_step_send_in_place(l, to, m, len);
  sodium_memzero(m, len + CL_TAG_BYTES); /* shares, seeds and keys pass through here */
  free(m);
  return rc;
}

static int link_recv(mpc_transport_t *t, mpc_role_t from, void *buf, size_t len) {
  cl_step_t *l = (cl_step_t *)t;
  if (l->peer[from] < 0 || len > SIZE_MAX - CL_TAG_BYTES)
    return TANDEM_EINVAL;
  /* One deadline for the receive, however many messages of other steps are
   * dropped on the way: a fresh timeout per dropped message let a party wait
   * forever for a message that never came while later steps' messages kept
   * arriving (and were dropped unread by it). */
  double end = cl_now() + l->timeout_ms / 1000.0;
  if (l->due[from] > 0 && l->due[from] < end)
    end = l->due[from];
  for (;;) {
    unsigned char *m;
    size_t got;
    /* Past the deadline, what is already queued is still taken (a poll).
     * No length limit here: a message of another step may be longer, and is
     * dropped below like any other; every error of net_msg_take is then the
     * link's (a peer that died mid-message ends it with TANDEM_EPROTO, which
     * read as "a longer message, dropped" made this loop spin for ever). */
    double left_ms = (end - cl_now()) * 1000.0;
    int rc = net_msg_take_on(l->node, l->peer[from], l->link[from], CL_CHAN_DATA, SIZE_MAX, &m,
                             &got, left_ms < 1 ? 0 : (int)left_ms);
    if (rc != 0)
      return rc;
    int mine = got >= CL_TAG_BYTES && memcmp(m, &l->tag, CL_TAG_BYTES) == 0;
    if (mine && got == len + CL_TAG_BYTES && len > 0)
      memcpy(buf, m + CL_TAG_BYTES, len);
    sodium_memzero(m, got);
    free(m);
    if (mine)
      return got == len + CL_TAG_BYTES ? 0 : got == CL_TAG_BYTES ? TANDEM_ECANCELED : TANDEM_EPROTO;
    /* else another step's message: dropped */
  }
}

/* A round: the message is queued (net sends while this side waits), then the
 * peer's is received, so both sides may call this at once. */
static int link_exchange(mpc_transport_t *t, mpc_role_t peer, const void *sbuf, size_t slen,
                         void *rbuf, size_t rlen) {
  int rc = link_send(t, peer, sbuf, slen);
  return rc != 0 ? rc : link_recv(t, peer, rbuf, rlen);
}

static void link_close(mpc_transport_t *t) { (void)t; }

int cl_step_cancel(cl_step_t *l, mpc_role_t to) {
  if (l->peer[to] < 0)
    return TANDEM_EINVAL;
  return net_msg_send_on(l->node, l->peer[to], l->link[to], CL_CHAN_DATA, &l->tag, CL_TAG_BYTES);
}

static const mpc_transport_ops_t link_ops = {link_send, link_recv, link_exchange, link_close};

void cl_step_init(cl_step_t *l, net_node_t *node, mpc_role_t self, int client_id,
                  uint64_t tag, int timeout_ms) {
  memset(l, 0, sizeof *l);
  l->tag = tag;
  l->timeout_ms = timeout_ms > 0 ? timeout_ms : NET_DEFAULT_TIMEOUT_MS;
  l->base.ops = &link_ops;
  l->base.self = self;
  l->node = node;
  l->peer[MPC_P0] = CL_P0;
  l->peer[MPC_P1] = CL_P1;
  l->peer[MPC_DEALER] = CL_DEALER;
  l->peer[MPC_OWNER] = CL_OWNER;
  l->peer[MPC_CLIENT] = client_id;
}

/* ---- control messages ------------------------------------------------------------ */

/* Little-endian fields, whatever the host's order. */
static void put32(uint8_t *b, uint32_t v) {
  for (int i = 0; i < 4; i++)
    b[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *b, uint64_t v) {
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *b) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++)
    v |= (uint32_t)b[i] << (8 * i);
  return v;
}
static uint64_t get64(const uint8_t *b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)b[i] << (8 * i);
  return v;
}
static void putd(uint8_t *b, double d) {
  uint64_t v;
  memcpy(&v, &d, 8);
  put64(b, v);
}
static double getd(const uint8_t *b) {
  uint64_t v = get64(b);
  double d;
  memcpy(&d, &v, 8);
  return d;
}

void cl_ctrl_encode(const cl_ctrl_t *h, uint8_t out[CL_CTRL_HDR]) {
  memset(out, 0, CL_CTRL_HDR);
  put32(out, h->type);
  put32(out + 4, (uint32_t)h->status);
  put64(out + 8, h->seq);
  put64(out + 16, h->batch);
  put32(out + 24, h->peer);
  put32(out + 28, h->flags);
  memcpy(out + 32, h->name, strnlen(h->name, CL_NAME_MAX - 1));
  put64(out + 96, h->tag);
  put64(out + 104, h->version);
}

void cl_ctrl_decode(const uint8_t in[CL_CTRL_HDR], cl_ctrl_t *h) {
  memset(h, 0, sizeof *h);
  h->type = get32(in);
  h->status = (int32_t)get32(in + 4);
  h->seq = get64(in + 8);
  h->batch = get64(in + 16);
  h->peer = get32(in + 24);
  h->flags = get32(in + 28);
  memcpy(h->name, in + 32, CL_NAME_MAX - 1);
  h->name[CL_NAME_MAX - 1] = '\0';
  h->tag = get64(in + 96);
  h->version = get64(in + 104);
}

void cl_stats_encode(const cl_party_stats_t *s, uint8_t out[CL_STATS_BYTES]) {
  put64(out, s->rounds);
  put64(out + 8, s->online_sent);
  put64(out + 16, s->offline_recvd);
  putd(out + 24, s->online_s);
  putd(out + 32, s->offline_s);
  putd(out + 40, s->online_start);
  putd(out + 48, s->online_end);
  put32(out + 56, s->fail_party);
  put32(out + 60, s->fail_where);
  put32(out + 64, (uint32_t)s->fail_code);
}

void cl_stats_decode(const uint8_t in[CL_STATS_BYTES], cl_party_stats_t *s) {
  s->rounds = get64(in);
  s->online_sent = get64(in + 8);
  s->offline_recvd = get64(in + 16);
  s->online_s = getd(in + 24);
  s->offline_s = getd(in + 32);
  s->online_start = getd(in + 40);
  s->online_end = getd(in + 48);
  s->fail_party = get32(in + 56);
  s->fail_where = get32(in + 60);
  s->fail_code = (int32_t)get32(in + 64);
}

int cl_ctrl_send(net_node_t *node, int peer, const cl_ctrl_t *h, const void *payload,
                 size_t plen) {
  return cl_ctrl_send_on(node, peer, 0, h, payload, plen);
}

int cl_ctrl_send_on(net_node_t *node, int peer, uint64_t link, const cl_ctrl_t *h,
                    const void *payload, size_t plen) {
  if (plen > CL_CTRL_MAX)
    return TANDEM_EINVAL;
  uint8_t *b = malloc(CL_CTRL_HDR + plen);
  if (b == NULL)
    return TANDEM_ENOMEM;
  cl_ctrl_encode(h, b);
  if (plen > 0)
    memcpy(b + CL_CTRL_HDR, payload, plen);
  int rc = net_msg_send_on(node, peer, link, CL_CHAN_CTRL, b, CL_CTRL_HDR + plen);
  free(b);
  return rc;
}

int cl_ctrl_recv(net_node_t *node, int peer, cl_ctrl_t *h, uint8_t **payload, size_t *plen,
                 int timeout_ms) {
  return cl_ctrl_recv_on(node, peer, 0, h, payload, plen, timeout_ms);
}

int cl_ctrl_recv_on(net_node_t *node, int peer, uint64_t link, cl_ctrl_t *h, uint8_t **payload,
                    size_t *plen, int timeout_ms) {
  *payload = NULL;
  *plen = 0;
  unsigned char *b;
  size_t len;
  int rc = net_msg_take_on(node, peer, link, CL_CHAN_CTRL, CL_CTRL_HDR + CL_CTRL_MAX, &b, &len,
                           timeout_ms);
  if (rc != 0)
    return rc;
  if (len < CL_CTRL_HDR) {
    free(b);
    return TANDEM_EPROTO;
  }
  cl_ctrl_decode(b, h);
  if (len > CL_CTRL_HDR) {
    /* The payload, NUL-terminated for the texts among them. */
    *plen = len - CL_CTRL_HDR;
    *payload = malloc(*plen + 1);
    if (*payload == NULL) {
      free(b);
      return TANDEM_ENOMEM;
    }
    memcpy(*payload, b + CL_CTRL_HDR, *plen);
    (*payload)[*plen] = '\0';
  }
  free(b);
  return 0;
}


void cl_link_drain(net_node_t *node, int id, uint64_t link) {
  if (link == 0)
    return;
  /* Bounded: a closed link receives nothing more, so this ends once its
   * queue is empty (ECONNRESET or another error); the bound only guards
   * against a link that is, against the caller's word, still live. */
  for (int i = 0; i < 4096; i++) {
    unsigned char *b = NULL;
    size_t len = 0;
    if (net_msg_take_on(node, id, link, CL_CHAN_DATA, SIZE_MAX, &b, &len, 0) != 0)
      return;
    sodium_memzero(b, len); /* shares or keys of the abandoned step */
    free(b);
  }
}
