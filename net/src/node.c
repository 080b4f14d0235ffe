/* node.c - a net node: its libuv loop thread (the async wake-up that starts
 * connects, flushes queues and closes links for callers) and the blocking
 * public calls of net.h that manage the node and its peers (create, free,
 * declare a peer, connect, accept, close a link, counters). The rest of the
 * node sits beside it, as libuv's src/unix/ splits a loop: conn.c is a
 * connection's life cycle, read.c the parser of what arrives, recv.c the
 * receiving calls, write.c the write queue and the sending calls, emu.c the
 * link emulation; net_int.h holds the types they share.
 *
 * One mutex (node->mu) guards all shared state: the peer table, every
 * connection's queues and state, the counters. The loop thread holds it for
 * the whole of each libuv callback; caller threads hold it while they look at
 * or change that state and wait on one condition variable (node->cv), which
 * is broadcast on the changes callers wait for (a message complete, a link
 * up or down, a send queue drained while a sender waits on it). Callers
 * never touch libuv handles: they queue work (a connect request, frames to
 * write, a close) and wake the loop with uv_async_send. Encryption of an
 * outgoing message happens on the caller's thread under the connection's
 * send_mu (which orders frames and sequence numbers of concurrent senders),
 * outside node->mu, a piece of about SEAL_CHUNK bytes at a time, each piece
 * queued as soon as it is sealed; a reference count keeps the connection
 * alive meanwhile. A sender that finds nothing queued or in flight writes a
 * small piece to the socket itself, under node->mu (libuv then has nothing
 * to write, and the loop cannot close the socket meanwhile).
 *
 * Timeouts of a receive count time without progress: while bytes of the
 * message a receiver waits for keep arriving (it is being reassembled on the
 * link, and nothing of its channel is queued before it), its deadline moves
 * on, so one very large message on a slow or loaded link is not cut off at
 * the timeout of the whole transfer. A sender waiting for room in a full
 * queue, and net_peer_close waiting for it to drain, count the same way the
 * time since the last write that completed. A peer declared strict
 * (net_limits_t) gets none of this: its waits end at their deadlines, so
 * that a client trickling one byte a second cannot hold a party for ever.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netdb.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <sodium.h>
#include <uv.h>

#include "net_int.h"

/* ---- helpers ------------------------------------------------------------ */

void net__log(net_node_t *n, const char *fmt, ...) {
  char line[256];
  va_list ap;
  if (!n->cfg.log)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  n->cfg.log(n->cfg.log_ctx, line);
}

void net__key_hint(char out[17], const unsigned char *pk) {
  net__hex_encode(out, pk, 8);
}

uint64_t net__deadline_of(int timeout_ms) {
  return uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
}

/* Moves *deadline on to timeout_ms after `prog` (a uv_hrtime of the last
 * progress) if that is later; returns nonzero if it did. */
int net__extend(uint64_t *deadline, uint64_t prog, int timeout_ms) {
  uint64_t d = prog + (uint64_t)timeout_ms * 1000000u;
  if (prog == 0 || d <= *deadline)
    return 0;
  *deadline = d;
  return 1;
}

/* Waits on node->cv until the deadline; returns nonzero once it has passed. */
int net__wait_until(net_node_t *n, uint64_t deadline) {
  uint64_t now = uv_hrtime();
  if (now >= deadline)
    return 1;
  (void)uv_cond_timedwait(&n->cv, &n->mu, deadline - now);
  return 0;
}

void net__wake(net_node_t *n) {
  uv_async_send(&n->async);
}

/* Received messages are decrypted plaintext (shares, seeds, masked inputs):
 * wiped before their memory goes back to the allocator. */
void net__rmsg_free(net__rmsg_t *m) {
  if (!m)
    return;
  if (m->data && !m->user) {
    sodium_memzero(m->data, m->len ? m->len : 1);
    free(m->data);
  }
  free(m);
}

/* ---- the loop ------------------------------------------------------------ */

static void close_any_cb(uv_handle_t *h) {
  (void)h;
}

static void async_cb(uv_async_t *a) {
  net_node_t *n = a->data;
  net__conn_t *c, *next;
  uv_mutex_lock(&n->mu);
  if (n->stopping) {
    for (c = n->conns; c; c = next) {
      next = c->next;
      net__conn_close(c, TANDEM_ECLOSED, 0);
      net__conn_close_handles(c); /* also those still waiting for a shutdown */
    }
    if (n->listening)
      uv_close((uv_handle_t *)&n->listener, close_any_cb);
    uv_close((uv_handle_t *)&n->async, close_any_cb);
    uv_mutex_unlock(&n->mu);
    return;
  }
  /* Wakes callers only for a change they wait on: a connect request that
   * failed at once (closes and failures broadcast themselves). A broadcast
   * per wake-up would rouse every blocked receiver at each message sent. */
  if (n->creqs) {
    while (n->creqs) {
      net__creq_t *cr = n->creqs;
      n->creqs = cr->next;
      cr->next = NULL;
      net__start_connect(n, cr);
    }
    uv_cond_broadcast(&n->cv);
  }
  for (c = n->conns; c; c = next) {
    next = c->next;
    if (c->state == NET_C_CLOSING)
      continue;
    if (c->want_close) {
      net__conn_close(c, c->kill_err, c->want_close == 1);
      continue;
    }
    if (c->state != NET_C_UP)
      continue;
    if (net__conn_flush(c) != 0) {
      net__conn_fail(c, TANDEM_ECLOSED);
      continue;
    }
    if (c->paused && (n->peers[c->peer].rq_bytes <= n->cfg.queue_bytes ||
                      n->peers[c->peer].rwaiters > 0)) {
      c->paused = 0;
      if (uv_read_start((uv_stream_t *)&c->tcp, net__alloc_cb, net__read_cb) != 0)
        net__conn_fail(c, TANDEM_ECLOSED);
    }
  }
  uv_mutex_unlock(&n->mu);
}

static void loop_main(void *arg) {
  net_node_t *n = arg;
  sigset_t set;
  /* A write to a socket the peer reset raises SIGPIPE in the writing thread;
   * blocked here, the write just fails with EPIPE. */
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  uv_run(&n->loop, UV_RUN_DEFAULT);
}

/* ---- public calls --------------------------------------------------------- */

/* A numeric address of either family (an IPv4 dotted quad, an IPv6
 * literal, with a %scope for a link-local one) and a port, into ss. Names
 * are not resolved here: this runs in callers that must not block on DNS
 * (mpc/src/cluster/config.c resolves a config's hostnames once at load). */
static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss) {
  struct addrinfo hints, *ai = NULL;
  char serv[8];
  memset(ss, 0, sizeof(*ss));
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  snprintf(serv, sizeof(serv), "%u", (unsigned)port);
  if (getaddrinfo(host, serv, &hints, &ai) != 0 || !ai)
    return TANDEM_EINVAL;
  if (ai->ai_addrlen > sizeof(*ss) ||
      (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)) {
    freeaddrinfo(ai);
    return TANDEM_EINVAL;
  }
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  return 0;
}

void net__config_defaults(net_config_t *out, const net_config_t *cfg) {
  *out = *cfg;
  out->listen_host = NULL; /* not kept: the caller owns the string */
  out->peers = NULL;
  out->npeers = 0;
  if (!out->max_frame)
    out->max_frame = NET_DEFAULT_MAX_FRAME;
  if (!out->max_msg)
    out->max_msg = NET_DEFAULT_MAX_MSG;
  if (!out->queue_bytes)
    out->queue_bytes = NET_DEFAULT_QUEUE_BYTES;
  if (!out->timeout_ms)
    out->timeout_ms = NET_DEFAULT_TIMEOUT_MS;
  if (!out->handshake_timeout_ms)
    out->handshake_timeout_ms = NET_DEFAULT_HANDSHAKE_MS;
  if (!out->max_halfopen)
    out->max_halfopen = NET_DEFAULT_MAX_HALFOPEN;
  if (!out->max_halfopen_per_addr)
    out->max_halfopen_per_addr = NET_DEFAULT_MAX_HALFOPEN_ADDR;
}

static void node_release(net_node_t *n) {
  for (int i = 0; i < NET_MAX_PEERS; i++) {
    net__peer_t *p = &n->peers[i];
    while (p->rq_head) {
      net__rmsg_t *m = p->rq_head;
      p->rq_head = m->next;
      net__rmsg_free(m);
    }
  }
  if (n->keys) {
    sodium_memzero(n->keys, 2 * NET_KEY_BYTES);
    sodium_free(n->keys);
  }
  uv_cond_destroy(&n->cv);
  uv_mutex_destroy(&n->mu);
  free(n);
}

/* A listening node faces strangers: its process may hold as many
 * descriptors as the hard limit allows (daemons start with the soft one,
 * often 1024), and half-open connections may use them only beyond the
 * reserve for the process's files and its declared peers' links (a flood
 * of strangers otherwise takes the descriptors a peer's link needs). */
static size_t fd_budget(size_t cap) {
  struct rlimit rl;
  size_t reserve = NET_FD_RESERVE + 2 * NET_MAX_PEERS;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return cap;
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit up = {rl.rlim_max, rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &up) == 0)
      rl = up;
  }
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= cap + reserve)
    return cap;
  return rl.rlim_cur > reserve + 1 ? (size_t)rl.rlim_cur - reserve : 1;
}

int net_node_new(net_node_t **out, const net_config_t *cfg) {
  net_node_t *n;
  struct sockaddr_storage ss;
  int r;
  if (!out || !cfg || !cfg->pk || !cfg->sk)
    return TANDEM_EINVAL;
  *out = NULL;
  if (cfg->max_frame > NET_FRAME_LIMIT || cfg->timeout_ms < 0 || cfg->handshake_timeout_ms < 0 ||
      (cfg->npeers && !cfg->peers) || cfg->npeers > NET_MAX_PEERS)
    return TANDEM_EINVAL;
  if (net__mem_config(cfg))
    return net__mem_node_new(out, cfg);
  if (cfg->listen_host && parse_addr(cfg->listen_host, cfg->listen_port, &ss) != 0)
    return TANDEM_EINVAL;
  if (sodium_init() < 0)
    return TANDEM_ECRYPTO;
  n = calloc(1, sizeof(*n));
  if (!n)
    return TANDEM_ENOMEM;
  net__config_defaults(&n->cfg, cfg);
  n->fd_budget = n->cfg.max_halfopen;
  if (cfg->listen_host)
    n->fd_budget = fd_budget(n->cfg.max_halfopen);
  for (int i = 0; i < NET_MAX_PEERS; i++)
    n->peers[i].lim.max_msg = n->cfg.max_msg;
  n->emu = n->cfg.emu_delay_us > 0 || n->cfg.emu_rate_bps > 0;
  if (uv_mutex_init(&n->mu) != 0) {
    free(n);
    return TANDEM_ENOMEM;
  }
  if (uv_cond_init(&n->cv) != 0) {
    uv_mutex_destroy(&n->mu);
    free(n);
    return TANDEM_ENOMEM;
  }
  n->keys = sodium_malloc(2 * NET_KEY_BYTES);
  if (!n->keys) {
    node_release(n);
    return TANDEM_ENOMEM;
  }
  memcpy(n->keys, cfg->pk, NET_KEY_BYTES);
  memcpy(n->keys + NET_KEY_BYTES, cfg->sk, NET_KEY_BYTES);
  for (size_t i = 0; i < cfg->npeers; i++) {
    const net_peer_decl_t *d = &cfg->peers[i];
    r = net_peer_add(n, d->id, d->host, d->port, d->pk);
    if (r == 0)
      r = net_peer_limits(n, d->id, &d->limits);
    if (r) {
      node_release(n);
      return r;
    }
  }
  r = uv_loop_init(&n->loop);
  if (r) {
    node_release(n);
    return r;
  }
  r = uv_async_init(&n->loop, &n->async, async_cb);
  if (r)
    goto fail_loop;
  n->async.data = n;
  if (cfg->listen_host) {
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_init(&n->loop, &n->listener);
    n->listener.data = n;
    n->listening = 1;
    r = uv_tcp_bind(&n->listener, (const struct sockaddr *)&ss, 0);
    if (r == 0)
      r = uv_listen((uv_stream_t *)&n->listener, 128, net__connection_cb);
    if (r == 0)
      r = uv_tcp_getsockname(&n->listener, (struct sockaddr *)&bound, &blen);
    if (r)
      goto fail_handles;
    n->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
  }
  r = uv_thread_create(&n->thread, loop_main, n);
  if (r)
    goto fail_handles;
  n->thread_started = 1;
  *out = n;
  return 0;
fail_handles:
  if (n->listening)
    uv_close((uv_handle_t *)&n->listener, close_any_cb);
  uv_close((uv_handle_t *)&n->async, close_any_cb);
  uv_run(&n->loop, UV_RUN_DEFAULT);
fail_loop:
  (void)uv_loop_close(&n->loop);
  node_release(n);
  return r;
}

void net_node_free(net_node_t *n) {
  if (!n)
    return;
  if (n->mem) {
    net__mem_node_free(n);
    return;
  }
  uv_mutex_lock(&n->mu);
  n->stopping = 1;
  uv_mutex_unlock(&n->mu);
  net__wake(n);
  uv_thread_join(&n->thread);
  (void)uv_loop_close(&n->loop);
  node_release(n);
}

uint16_t net_node_port(const net_node_t *n) {
  return n ? n->port : 0;
}

void net_node_stats(net_node_t *n, net_node_stats_t *out) {
  if (n->mem) {
    net__mem_node_stats(n, out);
    return;
  }
  uv_mutex_lock(&n->mu);
  *out = n->st;
  uv_mutex_unlock(&n->mu);
}

int net__bad_id(int id) {
  return id < 0 || id >= NET_MAX_PEERS;
}

int net__timeout_or_default(net_node_t *n, int timeout_ms) {
  return timeout_ms < 0 ? n->cfg.timeout_ms : timeout_ms;
}

int net_peer_add(net_node_t *n, int id, const char *host, uint16_t port, const unsigned char *pk) {
  struct sockaddr_storage ss;
  net__peer_t *p;
  if (!n || net__bad_id(id) || !pk)
    return TANDEM_EINVAL;
  if (n->mem)
    return net__mem_peer_add(n, id, host, port, pk);
  if (host && parse_addr(host, port, &ss) != 0)
    return TANDEM_EINVAL;
  uv_mutex_lock(&n->mu);
  for (int i = 0; i < NET_MAX_PEERS; i++) {
    if (i != id && n->peers[i].declared && sodium_memcmp(n->peers[i].pk, pk, NET_KEY_BYTES) == 0) {
      uv_mutex_unlock(&n->mu);
      return TANDEM_EINVAL;
    }
  }
  p = &n->peers[id];
  if (p->declared && p->link && sodium_memcmp(p->pk, pk, NET_KEY_BYTES) != 0) {
    p->link->want_close = 2;
    p->link->kill_err = TANDEM_ECLOSED;
    net__wake(n);
  }
  p->declared = 1;
  memcpy(p->pk, pk, NET_KEY_BYTES);
  p->has_addr = host != NULL;
  if (host)
    p->addr = ss;
  uv_mutex_unlock(&n->mu);
  return 0;
}

int net_peer_limits(net_node_t *n, int id, const net_limits_t *lim) {
  if (!n || net__bad_id(id) || !lim)
    return TANDEM_EINVAL;
  if (n->mem)
    return net__mem_peer_limits(n, id, lim);
  uv_mutex_lock(&n->mu);
  n->peers[id].lim = *lim;
  if (!lim->max_msg || lim->max_msg > n->cfg.max_msg)
    n->peers[id].lim.max_msg = n->cfg.max_msg;
  uv_mutex_unlock(&n->mu);
  return 0;
}

int net_connect(net_node_t *n, int id) {
  net__creq_t cr = {.id = id};
  uint64_t deadline;
  int r;
  if (!n || net__bad_id(id))
    return TANDEM_EINVAL;
  if (n->mem)
    return net__mem_connect(n, id);
  uv_mutex_lock(&n->mu);
  if (!n->peers[id].declared || !n->peers[id].has_addr) {
    uv_mutex_unlock(&n->mu);
    return TANDEM_EINVAL;
  }
  /* The loop's handshake timer ends the attempt; the margin only guards
   * against a loop that cannot run. */
  deadline = net__deadline_of(n->cfg.handshake_timeout_ms + 2000);
  cr.next = n->creqs;
  n->creqs = &cr;
  net__wake(n);
  while (!cr.done) {
    if (net__wait_until(n, deadline)) {
      net__creq_t **pp = &n->creqs;
      while (*pp && *pp != &cr)
        pp = &(*pp)->next;
      if (*pp)
        *pp = cr.next;
      if (cr.c) {
        cr.c->cr = NULL;
        cr.c->want_close = 2;
        cr.c->kill_err = TANDEM_ETIMEDOUT;
        net__wake(n);
      }
      cr.result = TANDEM_ETIMEDOUT;
      break;
    }
  }
  r = cr.result;
  uv_mutex_unlock(&n->mu);
  return r;
}

int net_accept(net_node_t *n, int id, int timeout_ms) {
  uint64_t deadline;
  int r = 0;
  if (!n || net__bad_id(id))
    return TANDEM_EINVAL;
  if (n->mem)
    return net__mem_accept(n, id, timeout_ms);
  uv_mutex_lock(&n->mu);
  deadline = net__deadline_of(net__timeout_or_default(n, timeout_ms));
  while (!n->peers[id].link) {
    if (net__wait_until(n, deadline)) {
      r = TANDEM_ETIMEDOUT;
      break;
    }
  }
  uv_mutex_unlock(&n->mu);
  return r;
}

int net_accept_any(net_node_t *n, int *id, int timeout_ms) {
  uint64_t deadline;
  int r = TANDEM_ETIMEDOUT;
  if (!n || !id)
    return TANDEM_EINVAL;
  if (n->mem)
    return net__mem_accept_any(n, id, timeout_ms);
  uv_mutex_lock(&n->mu);
  deadline = net__deadline_of(net__timeout_or_default(n, timeout_ms));
  for (;;) {
    int best = -1;
    for (int i = 0; i < NET_MAX_PEERS; i++) {
      uint64_t s = n->peers[i].up_seq;
      if (s > n->any_seen && (best < 0 || s < n->peers[best].up_seq))
        best = i;
    }
    if (best >= 0) {
      n->any_seen = n->peers[best].up_seq;
      *id = best;
      r = 0;
      break;
    }
    if (net__wait_until(n, deadline))
      break;
  }
  uv_mutex_unlock(&n->mu);
  return r;
}

int net_peer_up(net_node_t *n, int id) {
  int up;
  if (!n || net__bad_id(id))
    return 0;
  if (n->mem)
    return net__mem_peer_up(n, id);
  uv_mutex_lock(&n->mu);
  up = n->peers[id].link != NULL;
  uv_mutex_unlock(&n->mu);
  return up;
}

int net_peer_close(net_node_t *n, int id) {
  net__peer_t *p;
  net__conn_t *c;
  uint64_t deadline;
  int r = 0;
  if (!n || net__bad_id(id))
    return TANDEM_EINVAL;
  if (n->mem)
    return net__mem_peer_close(n, id);
  uv_mutex_lock(&n->mu);
  p = &n->peers[id];
  c = p->link;
  deadline = net__deadline_of(n->cfg.timeout_ms);
  while (c && p->link == c && c->queued > 0) {
    int late;
    n->qwaiters++;
    late = net__wait_until(n, deadline);
    n->qwaiters--;
    if (late && !(p->link == c && !p->lim.strict &&
                  net__extend(&deadline, c->wprog, n->cfg.timeout_ms))) {
      r = TANDEM_ETIMEDOUT;
      break;
    }
  }
  if (c && p->link == c) {
    p->link = NULL;
    p->err = TANDEM_ECLOSED;
    c->want_close = r ? 2 : 1;
    c->kill_err = 0;
    net__log(n, "net: closing link to peer %d", id);
    net__wake(n);
    uv_cond_broadcast(&n->cv);
  }
  uv_mutex_unlock(&n->mu);
  return r;
}

void net_peer_stats(net_node_t *n, int id, net_stats_t *out) {
  memset(out, 0, sizeof(*out));
  if (!n || net__bad_id(id))
    return;
  if (n->mem) {
    net__mem_peer_stats(n, id, out);
    return;
  }
  uv_mutex_lock(&n->mu);
  *out = n->peers[id].st;
  uv_mutex_unlock(&n->mu);
}

int net__link_error(net__peer_t *p) {
  return p->err ? p->err : TANDEM_ECLOSED;
}
