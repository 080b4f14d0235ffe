/* conn.c - the life cycle of a connection of a net node: made for an
 * outbound connect or an accepted socket, through the handshake states
 * (NET_C_CONNECTING, NET_C_WAIT1..3) to NET_C_UP, where it becomes its peer's
 * link, then NET_C_CLOSING (gracefully: flush, then FIN; or at once) until
 * the close callbacks of its libuv handles have run and no sender holds it,
 * when its memory is freed. Every function here runs with node->mu held;
 * the libuv callbacks (net__*_cb, handle_close_cb, connect_cb) take it
 * themselves.
 */
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "net_int.h"

void net__wreq_list_free(net__conn_t *c, net__wreq_t **head, net__wreq_t **tail) {
  while (*head) {
    net__wreq_t *w = *head;
    *head = w->next;
    c->queued -= w->qbytes;
    free(w);
  }
  *tail = NULL;
}

void net__conn_maybe_free(net__conn_t *c) {
  if (c->handles > 0 || c->refs > 0)
    return;
  net__wreq_list_free(c, &c->pend_head, &c->pend_tail);
  net__wreq_list_free(c, &c->emu_head, &c->emu_tail);
  net__hs_free(c->hs);
  net__aead_free(&c->tx);
  net__aead_free(&c->rx);
  uv_mutex_destroy(&c->send_mu);
  if (c->cur) {
    /* Only the bytes received so far need wiping (a message cut short may
     * be mostly untouched memory). */
    size_t got = net__msg_got(c);
    c->cur->len = got < c->cur->len ? got : c->cur->len;
    net__rmsg_free(c->cur);
  }
  free(c->rbuf);
  free(c);
}

static void conn_unlink(net__conn_t *c) {
  net__conn_t **pp = &c->node->conns;
  while (*pp && *pp != c)
    pp = &(*pp)->next;
  if (*pp)
    *pp = c->next;
}

/* Like every other libuv callback here, takes node->mu itself: a sender
 * (net_msg_send_on) drops its reference and calls net__conn_maybe_free under
 * it, so c->handles and c->refs are read and written only under the mutex,
 * and exactly one of the two sees both at zero and frees c. */
static void handle_close_cb(uv_handle_t *h) {
  net__conn_t *c = h->data;
  net_node_t *n = c->node;
  uv_mutex_lock(&n->mu);
  /* libuv no longer watches the timerfd once its handle is closed. */
  if (h == (uv_handle_t *)&c->emu_poll)
    (void)close(c->emu_fd);
  if (--c->handles == 0)
    conn_unlink(c);
  net__conn_maybe_free(c); /* c may be gone from here on */
  uv_cond_broadcast(&n->cv);
  uv_mutex_unlock(&n->mu);
}

void net__conn_close_handles(net__conn_t *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, handle_close_cb);
  if (!uv_is_closing((uv_handle_t *)&c->timer))
    uv_close((uv_handle_t *)&c->timer, handle_close_cb);
  if (c->node->emu && !uv_is_closing((uv_handle_t *)&c->emu_poll))
    uv_close((uv_handle_t *)&c->emu_poll, handle_close_cb);
}

void net__shutdown_cb(uv_shutdown_t *req, int status) {
  net__conn_t *c = req->data;
  net_node_t *n = c->node;
  (void)status;
  uv_mutex_lock(&n->mu);
  net__conn_close_handles(c);
  uv_mutex_unlock(&n->mu);
}

/* Ends connection c with err (0 for a local close). graceful: send what is
 * queued, then FIN. Wakes every caller that waits on it. */
void net__conn_close(net__conn_t *c, int err, int graceful) {
  net_node_t *n = c->node;
  if (c->state == NET_C_CLOSING)
    return;
  if (c->cur && c->cur->user) /* reading stops here: hand the buffer back */
    (void)net__post_detach(c, &n->peers[c->peer].post, 1);
  if (c->cr) {
    c->cr->result = err ? err : TANDEM_ECLOSED;
    c->cr->done = 1;
    c->cr = NULL;
  }
  if (c->state == NET_C_UP && c->peer >= 0 && n->peers[c->peer].link == c) {
    n->peers[c->peer].link = NULL;
    n->peers[c->peer].err = err ? err : TANDEM_ECLOSED;
  }
  c->state = NET_C_CLOSING;
  net__halfopen_done(c);
  uv_timer_stop(&c->timer);
  if (graceful && uv_is_active((uv_handle_t *)&c->tcp) && net__conn_flush(c) == 0) {
    if (c->emu_head) { /* net__emu_poll_cb shuts down after the held frames */
      c->emu_shut = 1;
      uv_read_stop((uv_stream_t *)&c->tcp);
      goto out;
    }
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, net__shutdown_cb) == 0) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      goto out;
    }
  }
  net__wreq_list_free(c, &c->pend_head, &c->pend_tail);
  net__wreq_list_free(c, &c->emu_head, &c->emu_tail);
  net__conn_close_handles(c);
out:
  uv_cond_broadcast(&n->cv);
}

/* A handshake failed (err) or an established link broke: count and log it. */
void net__conn_fail(net__conn_t *c, int err) {
  net_node_t *n = c->node;
  if (c->state == NET_C_CLOSING)
    return;
  if (c->state == NET_C_UP) {
    if (err != TANDEM_ECLOSED)
      n->st.links_failed++;
    net__log(n, "net: link to peer %d ended: %s", c->peer, tandem_strerror(err));
  } else {
    n->st.handshakes_failed++;
    net__log(n, "net: handshake failed (%s, peer %d): %s", c->initiator ? "outbound" : "inbound",
             c->peer, tandem_strerror(err));
  }
  net__conn_close(c, err, 0);
}

void net__halfopen_done(net__conn_t *c) {
  if (c->halfopen) {
    c->halfopen = 0;
    c->node->halfopen--;
  }
}

/* A new link of p comes up: what its earlier links left unread is dropped
 * (a receive bound to one of them fails with TANDEM_ECONNRESET, as it would
 * once they were gone). Kept, it counted against the peer's bound for
 * nothing, and a peer that reconnected after each message grew it. */
static void drop_unread(net_node_t *n, net__peer_t *p, int id) {
  size_t bytes = p->rq_bytes;
  unsigned msgs = 0;
  while (p->rq_head) {
    net__rmsg_t *m = p->rq_head;
    p->rq_head = m->next;
    net__rmsg_free(m);
    msgs++;
  }
  p->rq_tail = NULL;
  p->rq_bytes = 0;
  if (msgs)
    net__log(n, "net: peer %d: %u unread messages (%zu bytes) of its earlier links dropped", id,
             msgs, bytes);
}

/* Makes c, whose handshake just finished, the link of its peer. */
int net__link_up(net__conn_t *c) {
  net_node_t *n = c->node;
  net__peer_t *p = &n->peers[c->peer];
  const unsigned char *tx, *rx;
  uint32_t link_id;
  char hint[17];
  int r;
  net__hs_keys(c->hs, &tx, &rx, &link_id);
  r = net__aead_init(&c->tx, tx, link_id);
  if (r == 0)
    r = net__aead_init(&c->rx, rx, link_id);
  net__hs_free(c->hs);
  c->hs = NULL;
  if (r)
    return r;
  {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
      return TANDEM_ECLOSED;
    c->fd = fd;
  }
  uv_timer_stop(&c->timer);
  net__halfopen_done(c);
  if (p->link && p->link != c) {
    net__log(n, "net: peer %d: new link replaces the old one", c->peer);
    net__conn_close(p->link, TANDEM_ECONNRESET, 0);
  }
  drop_unread(n, p, c->peer);
  c->state = NET_C_UP;
  p->link = c;
  p->err = 0;
  p->gen++;
  c->gen = p->gen; /* the number its messages carry (net__rmsg_t.link) */
  p->up_seq = ++n->up_seq;
  p->st.links++;
  p->st.wire_sent += c->wire_out;
  p->st.wire_recvd += c->wire_in;
  n->st.handshakes_ok++;
  if (c->cr) {
    c->cr->result = 0;
    c->cr->done = 1;
    c->cr = NULL;
  }
  net__key_hint(hint, p->pk);
  net__log(n, "net: link up with peer %d (key %s..., %s)", c->peer, hint,
           c->initiator ? "outbound" : "inbound");
  uv_cond_broadcast(&n->cv);
  return 0;
}

/* The connection's timer: the handshake's timeout, then on a strict peer's
 * link the due time of the message under way (read.c, msg_due). */
void net__timer_cb(uv_timer_t *t) {
  net__conn_t *c = t->data;
  net_node_t *n = c->node;
  uv_mutex_lock(&n->mu);
  if (c->state == NET_C_UP && (c->cur || c->hdr_have)) {
    net__log(n, "net: peer %d: message on channel %u not in by its due time (%zu of %zu bytes); "
             "link closed", c->peer, c->cur ? (unsigned)c->cur->chan : 0u,
             c->cur ? net__msg_got(c) : 0, c->cur ? c->cur->len : 0);
    n->st.links_due++;
    net__conn_fail(c, TANDEM_ETIMEDOUT);
  } else if (c->state != NET_C_UP) {
    net__conn_fail(c, TANDEM_ETIMEDOUT);
  }
  uv_mutex_unlock(&n->mu);
}

static net__conn_t *conn_new(net_node_t *n) {
  net__conn_t *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->emu_fd = -1;
  if (uv_mutex_init(&c->send_mu) != 0)
    goto fail;
  if (n->emu) {
    /* uv_poll_init leaves no handle behind when it fails. */
    c->emu_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (c->emu_fd < 0 || uv_poll_init(&n->loop, &c->emu_poll, c->emu_fd) != 0)
      goto fail_mu;
  }
  c->node = n;
  c->peer = -1;
  uv_tcp_init(&n->loop, &c->tcp);
  uv_timer_init(&n->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->handles = 2;
  if (n->emu) {
    c->emu_poll.data = c;
    (void)uv_poll_start(&c->emu_poll, UV_READABLE, net__emu_poll_cb); /* fails on bad events only */
    c->handles = 3;
  }
  c->next = n->conns;
  n->conns = c;
  uv_timer_start(&c->timer, net__timer_cb, (uint64_t)n->cfg.handshake_timeout_ms, 0);
  return c;
fail_mu:
  if (c->emu_fd >= 0)
    (void)close(c->emu_fd);
  uv_mutex_destroy(&c->send_mu);
fail:
  free(c);
  return NULL;
}

static void connect_cb(uv_connect_t *req, int status) {
  net__conn_t *c = req->data;
  net_node_t *n = c->node;
  unsigned char msg1[NET_HS1_BYTES];
  int r = status;
  uv_mutex_lock(&n->mu);
  if (c->state == NET_C_CLOSING)
    goto out;
  if (r == 0) {
    (void)uv_tcp_nodelay(&c->tcp, 1);
    r = net__hs_start(&c->hs, n->keys, n->keys + NET_KEY_BYTES, n->peers[c->peer].pk, msg1);
  }
  if (r == 0)
    r = uv_read_start((uv_stream_t *)&c->tcp, net__alloc_cb, net__read_cb);
  if (r == 0)
    r = net__send_hs(c, NET_FT_HS1, msg1, NET_HS1_BYTES);
  if (r) {
    net__conn_fail(c, r);
    goto out;
  }
  c->state = NET_C_WAIT2;
out:
  uv_mutex_unlock(&n->mu);
}

void net__start_connect(net_node_t *n, net__creq_t *cr) {
  net__peer_t *p = &n->peers[cr->id];
  net__conn_t *c;
  int r;
  if (!p->declared || !p->has_addr) {
    cr->result = TANDEM_EINVAL;
    cr->done = 1;
    return;
  }
  c = conn_new(n);
  if (!c) {
    cr->result = TANDEM_ENOMEM;
    cr->done = 1;
    return;
  }
  c->peer = cr->id;
  c->initiator = 1;
  c->state = NET_C_CONNECTING;
  c->cr = cr;
  cr->c = c;
  c->connect.data = c;
  r = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&p->addr, connect_cb);
  if (r)
    net__conn_fail(c, r);
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return 0;
  if (a->ss_family == AF_INET)
    return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                  &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
  if (a->ss_family == AF_INET6)
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
  return 0;
}

/* One line about the caps per second at most, with the count of those not
 * logged since: a flood must not flood the log too. */
static void cap_log(net_node_t *n, const net__conn_t *c, const char *what, unsigned count,
                    unsigned cap) {
  char addr[64] = "?";
  uint64_t now = uv_hrtime();
  if (n->caplog_at && now - n->caplog_at < 1000000000u) {
    n->caplog_quiet++;
    return;
  }
  if (c->src.ss_family == AF_INET)
    (void)uv_ip4_name((const struct sockaddr_in *)&c->src, addr, sizeof(addr));
  else if (c->src.ss_family == AF_INET6)
    (void)uv_ip6_name((const struct sockaddr_in6 *)&c->src, addr, sizeof(addr));
  net__log(n, "net: %s from %s: %u half-open connections (limit %u; %llu more not logged)",
           what, addr, count, cap, (unsigned long long)n->caplog_quiet);
  n->caplog_at = now;
  n->caplog_quiet = 0;
}

/* Applies the half-open caps (net.h) to c, just accepted and not yet read:
 * returns nonzero if c was closed. Over the per-address cap c itself goes
 * (one source cannot take the others' room, and costs no key agreement);
 * over the total, the oldest half-open connection goes, so strangers
 * holding connections open cannot keep a declared peer's handshake out. */
static int halfopen_caps(net_node_t *n, net__conn_t *c) {
  unsigned same = 0;
  size_t cap = n->cfg.max_halfopen < n->fd_budget ? n->cfg.max_halfopen : n->fd_budget;
  net__conn_t *old = NULL;
  for (net__conn_t *o = n->conns; o; o = o->next) {
    if (o == c || !o->halfopen)
      continue;
    if (same_addr(&o->src, &c->src))
      same++;
    if (!old || o->born < old->born)
      old = o;
  }
  if (same >= n->cfg.max_halfopen_per_addr) {
    n->st.halfopen_refused++;
    cap_log(n, c, "refused a connection", same + 1, n->cfg.max_halfopen_per_addr);
    net__conn_close(c, TANDEM_ECLOSED, 0);
    return 1;
  }
  if (n->halfopen > cap && old) {
    n->st.halfopen_dropped++;
    cap_log(n, old, "dropped the oldest connection", n->halfopen, (unsigned)cap);
    net__conn_close(old, TANDEM_ECLOSED, 0);
  }
  return 0;
}

void net__connection_cb(uv_stream_t *server, int status) {
  net_node_t *n = server->data;
  net__conn_t *c;
  int len = sizeof(c->src);
  uv_mutex_lock(&n->mu);
  if (status < 0 || n->stopping)
    goto out;
  c = conn_new(n);
  if (!c)
    goto out;
  c->state = NET_C_WAIT1;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    net__conn_close(c, TANDEM_ECLOSED, 0);
    goto out;
  }
  c->halfopen = 1;
  n->halfopen++;
  c->born = ++n->accepted;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->src, &len) != 0)
    memset(&c->src, 0, sizeof(c->src));
  if (halfopen_caps(n, c))
    goto out;
  if (uv_read_start((uv_stream_t *)&c->tcp, net__alloc_cb, net__read_cb) != 0) {
    net__conn_close(c, TANDEM_ECLOSED, 0);
    goto out;
  }
  (void)uv_tcp_nodelay(&c->tcp, 1);
out:
  uv_mutex_unlock(&n->mu);
}
