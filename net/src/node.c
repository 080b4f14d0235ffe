/* node.c - a net node: the libuv loop thread, its connections, and the
 * blocking public calls of net.h that hand work to it.
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
 * Receiving copies nothing in user space: the ciphertext of a frame is read
 * straight into the message it belongs to and decrypted there in place once
 * its tag is in. The message is either memory of the node's, queued for a
 * later receive, or the buffer a waiting receiver posted (post_t), when
 * nothing of its channel is queued before it. The loop reads from every
 * connection at all times, whatever is queued for writing, so two peers
 * exchanging large messages at once cannot deadlock; it pauses reading a
 * connection only while the peer's received-but-not-taken messages exceed
 * queue_bytes and no receiver waits on that peer. A waiting receiver has
 * nothing of its channel queued (else it would have taken it), so what it
 * waits for can only be behind the unread bytes of the stream: pausing then
 * would starve it for good (a large message of a step nobody runs any more,
 * on a data channel, in front of the control message that starts the next
 * one). So a receiver that waits resumes reading, and the loop keeps reading
 * while one waits; what bounds memory then is a second, hard limit of twice
 * queue_bytes: a message of a channel nobody waits on that would take the
 * peer's unread messages past it is dropped and ends the link (a peer that
 * floods one channel while the receiver waits on another).
 *
 * Timeouts of a receive count time without progress: while bytes of the
 * message a receiver waits for keep arriving (it is being reassembled on the
 * link, and nothing of its channel is queued before it), its deadline moves
 * on, so one very large message on a slow or loaded link is not cut off at
 * the timeout of the whole transfer. A sender waiting for room in a full
 * queue, and net_peer_close waiting for it to drain, count the same way the
 * time since the last write that completed.
 *
 * With link emulation on (cfg.emu_*), frames pass through a per-connection
 * queue of held frames (emit), after the write queue and before the socket.
 * A sender puts its frames there itself, under node->mu, with the time each
 * may reach the socket; the loop writes them when a timerfd armed for the
 * first one's time (absolute CLOCK_MONOTONIC nanoseconds) turns readable.
 * libuv's own timers count milliseconds, too coarse for a LAN's 150 us; a
 * timerfd fires within the scheduler's wake-up latency (tens of
 * microseconds), and the loop sleeps in epoll meanwhile.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "net_int.h"

/* Bytes read at once where the parser is between messages (a burst of small
 * messages is parsed out of one read). Inside a long message the ciphertext
 * of each frame is read straight into the message instead. */
#define READ_CHUNK (64u << 10)
/* A long message is sealed and queued in pieces of about this many payload
 * bytes, so the loop writes the first frames while the sender seals the
 * rest. */
#define SEAL_CHUNK ((size_t)1 << 20)
/* A sender whose link has nothing queued writes a piece of at most this many
 * wire bytes to the socket itself (non-blocking), saving the hand-off to the
 * loop thread that dominates a small message's latency. */
#define DIRECT_MAX ((size_t)256 << 10)

typedef struct rmsg_s {
  struct rmsg_s *next;
  uint8_t chan;
  int user; /* data is a posted receiver's buffer, not ours */
  size_t len;
  unsigned char *data;
} rmsg_t;

typedef struct conn_s conn_t;

typedef struct wreq_s {
  uv_write_t req;
  struct wreq_s *next;
  conn_t *c;
  size_t len;    /* bytes at buf */
  size_t off;    /* bytes of buf the sender already wrote to the socket */
  size_t qbytes; /* bytes counted in c->queued (0 for handshake frames) */
  uint64_t due;  /* link emulation: when it may reach the socket (emu_now) */
  unsigned char buf[];
} wreq_t;

typedef struct creq_s {
  struct creq_s *next;
  int id;
  int result;
  int done;
  conn_t *c;
} creq_t;

typedef enum { C_CONNECTING, C_WAIT1, C_WAIT2, C_WAIT3, C_UP, C_CLOSING } cstate_t;

struct conn_s {
  net_node_t *node;
  conn_t *next;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect;
  uv_shutdown_t shutdown;
  int handles; /* open libuv handles */
  int refs;    /* senders using tx */
  cstate_t state;
  int peer; /* -1 until the handshake names it */
  int initiator;
  int want_close; /* 1 graceful (flush then FIN), 2 hard */
  int kill_err;
  creq_t *cr;
  net__hs_t *hs;
  net__aead_t tx, rx;
  uv_mutex_t send_mu;
  /* receive parser */
  unsigned char hdr_raw[NET_HDR_BYTES];
  size_t hdr_have;
  int have_hdr;
  net__hdr_t h;
  unsigned char hsbuf[NET_HS1_BYTES];
  /* Where the current frame's body goes: hsbuf for a handshake frame, the
   * message being reassembled (c->cur->data + c->cur_off) for a DATA frame,
   * whose ciphertext is decrypted in place there; its tag goes to tag. */
  unsigned char *fdst;
  size_t fhave, fneed;
  int fmsg;    /* fdst is in c->cur */
  int in_read; /* a read into a posted buffer is under way (alloc_cb to read_cb) */
  unsigned char tag[NET_TAG_BYTES];
  size_t thave, tneed;
  unsigned char *rbuf;
  rmsg_t *cur;
  size_t cur_off;
  uint64_t cur_prog; /* uv_hrtime of the last bytes read of cur */
  uint64_t wprog;    /* uv_hrtime of the last write that completed */
  int paused;
  int fd; /* the socket, for senders' direct writes (valid while C_UP) */
  /* send queue: frames not yet handed to uv_write */
  wreq_t *pend_head, *pend_tail;
  unsigned inflight; /* uv_write requests not yet completed */
  size_t queued;
  /* link emulation (node->emu): frames held until their due time, and a
   * timerfd (emu_fd, watched by emu_poll) armed for the first one's */
  uv_poll_t emu_poll;
  int emu_fd;
  wreq_t *emu_head, *emu_tail;
  uint64_t emu_busy; /* when the emulated wire is free again (emu_now) */
  int emu_shut;      /* a graceful close waits for the held frames */
  uint64_t wire_in, wire_out;
};

/* A receiver's buffer offered to the loop (net_msg_recv): the next message
 * of chan that starts while nothing of chan is queued, and fits in cap, is
 * decrypted straight into buf instead of a malloc'd message that the
 * receiver would copy out and wipe. One per peer; other receivers queue. */
typedef struct {
  int active;
  uint8_t chan;
  unsigned char *buf;
  size_t cap;
  rmsg_t *m;  /* the message being received into buf, or NULL */
  conn_t *c;  /* its connection */
  int done;   /* buf holds a whole, authenticated message of len bytes */
  size_t len;
  int cancelling; /* the receiver waits for a read into buf to end */
} post_t;

typedef struct {
  int declared;
  unsigned char pk[NET_KEY_BYTES];
  int has_addr;
  struct sockaddr_storage addr;
  conn_t *link;
  int err;
  uint64_t gen;
  uint64_t up_seq;
  rmsg_t *rq_head, *rq_tail;
  size_t rq_bytes;
  /* Receivers blocked on this peer, in all and per channel: each has nothing
   * of its channel queued, so reading must go on while there is one. */
  unsigned rwaiters;
  unsigned rwait[256];
  post_t post;
  net_stats_t st;
} peer_t;

struct net_node_s {
  net_config_t cfg;
  unsigned char *keys; /* sodium_malloc'd: pk | sk */
  uv_loop_t loop;
  uv_thread_t thread;
  int thread_started;
  uv_async_t async;
  uv_tcp_t listener;
  int listening;
  uint16_t port;
  uv_mutex_t mu;
  uv_cond_t cv;
  peer_t peers[NET_MAX_PEERS];
  conn_t *conns;
  creq_t *creqs;
  int stopping;
  uint64_t up_seq, any_seen;
  int qwaiters; /* callers waiting for a send queue to drain */
  int emu;      /* link emulation on (cfg.emu_delay_us or cfg.emu_rate_bps) */
  net_node_stats_t st;
};

/* ---- helpers ------------------------------------------------------------ */

static void node_log(net_node_t *n, const char *fmt, ...) {
  char line[256];
  va_list ap;
  if (!n->cfg.log)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  n->cfg.log(n->cfg.log_ctx, line);
}

static void key_hint(char out[17], const unsigned char *pk) {
  net__hex_encode(out, pk, 8);
}

static uint64_t deadline_of(int timeout_ms) {
  return uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
}

/* Moves *deadline on to timeout_ms after `prog` (a uv_hrtime of the last
 * progress) if that is later; returns nonzero if it did. */
static int extend(uint64_t *deadline, uint64_t prog, int timeout_ms) {
  uint64_t d = prog + (uint64_t)timeout_ms * 1000000u;
  if (prog == 0 || d <= *deadline)
    return 0;
  *deadline = d;
  return 1;
}

/* Waits on node->cv until the deadline; returns nonzero once it has passed. */
static int wait_until(net_node_t *n, uint64_t deadline) {
  uint64_t now = uv_hrtime();
  if (now >= deadline)
    return 1;
  (void)uv_cond_timedwait(&n->cv, &n->mu, deadline - now);
  return 0;
}

static void wake(net_node_t *n) {
  uv_async_send(&n->async);
}

/* Received messages are decrypted plaintext (shares, seeds, masked inputs):
 * wiped before their memory goes back to the allocator. */
static void rmsg_free(rmsg_t *m) {
  if (!m)
    return;
  if (m->data && !m->user) {
    sodium_memzero(m->data, m->len ? m->len : 1);
    free(m->data);
  }
  free(m);
}

/* Bytes of the message being reassembled on c that are in place so far. */
static size_t msg_got(const conn_t *c) {
  return c->cur_off + (c->have_hdr && c->fmsg ? c->fhave : 0);
}

/* Takes the message being received on c out of its posted buffer, which
 * the receiver is leaving: what arrived is moved to a buffer of our own (or,
 * with detach_only, dropped), and the receiver's copy is wiped. The caller
 * holds node->mu and has made sure no read into the buffer is under way. */
static int post_detach(conn_t *c, post_t *po, int detach_only) {
  rmsg_t *m = c->cur;
  size_t got = msg_got(c);
  unsigned char *d = NULL;
  int r = 0;
  if (!detach_only) {
    d = malloc(m->len ? m->len : 1);
    if (d)
      memcpy(d, m->data, got);
    else
      r = TANDEM_ENOMEM; /* the read path sees data == NULL and ends the link */
  }
  sodium_memzero(m->data, got ? got : 1);
  m->data = d;
  m->user = 0;
  if (c->fmsg)
    c->fdst = d ? d + c->cur_off : NULL;
  po->m = NULL;
  po->c = NULL;
  return r;
}

static void wreq_list_free(conn_t *c, wreq_t **head, wreq_t **tail) {
  while (*head) {
    wreq_t *w = *head;
    *head = w->next;
    c->queued -= w->qbytes;
    free(w);
  }
  *tail = NULL;
}

static void conn_maybe_free(conn_t *c) {
  if (c->handles > 0 || c->refs > 0)
    return;
  wreq_list_free(c, &c->pend_head, &c->pend_tail);
  wreq_list_free(c, &c->emu_head, &c->emu_tail);
  net__hs_free(c->hs);
  net__aead_free(&c->tx);
  net__aead_free(&c->rx);
  uv_mutex_destroy(&c->send_mu);
  if (c->cur) {
    /* Only the bytes received so far need wiping (a message cut short may
     * be mostly untouched memory). */
    size_t got = msg_got(c);
    c->cur->len = got < c->cur->len ? got : c->cur->len;
    rmsg_free(c->cur);
  }
  free(c->rbuf);
  free(c);
}

static void conn_unlink(conn_t *c) {
  conn_t **pp = &c->node->conns;
  while (*pp && *pp != c)
    pp = &(*pp)->next;
  if (*pp)
    *pp = c->next;
}

static void handle_close_cb(uv_handle_t *h) {
  conn_t *c = h->data;
  net_node_t *n = c->node;
  /* libuv no longer watches the timerfd once its handle is closed. */
  if (h == (uv_handle_t *)&c->emu_poll)
    (void)close(c->emu_fd);
  if (--c->handles == 0)
    conn_unlink(c);
  conn_maybe_free(c);
  uv_cond_broadcast(&n->cv);
}

static void conn_close_handles(conn_t *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, handle_close_cb);
  if (!uv_is_closing((uv_handle_t *)&c->timer))
    uv_close((uv_handle_t *)&c->timer, handle_close_cb);
  if (c->node->emu && !uv_is_closing((uv_handle_t *)&c->emu_poll))
    uv_close((uv_handle_t *)&c->emu_poll, handle_close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  conn_t *c = req->data;
  net_node_t *n = c->node;
  (void)status;
  uv_mutex_lock(&n->mu);
  conn_close_handles(c);
  uv_mutex_unlock(&n->mu);
}

static void write_cb(uv_write_t *req, int status);
static void emu_poll_cb(uv_poll_t *h, int status, int events);
static void conn_fail(conn_t *c, int err);

/* Hands w to libuv (which frees it through write_cb); on failure frees it. */
static int start_write(conn_t *c, wreq_t *w) {
  uv_buf_t b = uv_buf_init((char *)w->buf + w->off, (unsigned)(w->len - w->off));
  int r;
  w->req.data = w;
  r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
  if (r < 0) {
    c->queued -= w->qbytes;
    free(w);
    return r;
  }
  c->inflight++;
  return 0;
}

/* The emulation's clock: CLOCK_MONOTONIC in nanoseconds, the clock of the
 * timerfd, so a frame's due time is the timer's absolute deadline. */
static uint64_t emu_now(void) {
  struct timespec ts;
  (void)clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Arms c's timerfd for its first held frame's due time; one already past
 * fires at once. A plain system call on the fd, so a sender may arm it as
 * well as the loop (both under node->mu, which orders the arming with the
 * queue it reflects). The due time is never 0, which would disarm. */
static void emu_arm(conn_t *c) {
  uint64_t due = c->emu_head->due;
  struct itimerspec its = {.it_value = {.tv_sec = (time_t)(due / 1000000000u),
                                        .tv_nsec = (long)(due % 1000000000u)}};
  (void)timerfd_settime(c->emu_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Sends w now, or with link emulation on, when the emulated wire would
 * deliver it: it leaves once the wire is free and its bytes have been
 * serialised at emu_rate_bps, and arrives emu_delay_us later. Frames keep
 * their order (departures only grow), and they stay counted in c->queued
 * until written, so senders still wait on a full queue. With emulation on
 * this touches no libuv handle, so senders call it too (under node->mu). */
static int emit(conn_t *c, wreq_t *w) {
  net_node_t *n = c->node;
  uint64_t now, start;
  if (!n->emu)
    return start_write(c, w);
  now = emu_now();
  start = c->emu_busy > now ? c->emu_busy : now;
  if (n->cfg.emu_rate_bps)
    start += (uint64_t)((double)(w->len - w->off) * 1e9 / (double)n->cfg.emu_rate_bps);
  c->emu_busy = start;
  w->due = start + (uint64_t)n->cfg.emu_delay_us * 1000u;
  w->next = NULL;
  if (c->emu_tail) {
    c->emu_tail->next = w;
    c->emu_tail = w;
    return 0;
  }
  c->emu_head = c->emu_tail = w;
  emu_arm(c);
  return 0;
}

/* Hands the queued frames of c to libuv (or to the emulated wire). */
static int conn_flush(conn_t *c) {
  while (c->pend_head) {
    wreq_t *w = c->pend_head;
    int r;
    c->pend_head = w->next;
    if (!c->pend_head)
      c->pend_tail = NULL;
    r = emit(c, w);
    if (r < 0)
      return r;
  }
  return 0;
}

/* Ends connection c with err (0 for a local close). graceful: send what is
 * queued, then FIN. Wakes every caller that waits on it. */
static void conn_close(conn_t *c, int err, int graceful) {
  net_node_t *n = c->node;
  if (c->state == C_CLOSING)
    return;
  if (c->cur && c->cur->user) /* reading stops here: hand the buffer back */
    (void)post_detach(c, &n->peers[c->peer].post, 1);
  if (c->cr) {
    c->cr->result = err ? err : TANDEM_ECLOSED;
    c->cr->done = 1;
    c->cr = NULL;
  }
  if (c->state == C_UP && c->peer >= 0 && n->peers[c->peer].link == c) {
    n->peers[c->peer].link = NULL;
    n->peers[c->peer].err = err ? err : TANDEM_ECLOSED;
  }
  c->state = C_CLOSING;
  uv_timer_stop(&c->timer);
  if (graceful && uv_is_active((uv_handle_t *)&c->tcp) && conn_flush(c) == 0) {
    if (c->emu_head) { /* emu_poll_cb shuts down after the held frames */
      c->emu_shut = 1;
      uv_read_stop((uv_stream_t *)&c->tcp);
      goto out;
    }
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, shutdown_cb) == 0) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      goto out;
    }
  }
  wreq_list_free(c, &c->pend_head, &c->pend_tail);
  wreq_list_free(c, &c->emu_head, &c->emu_tail);
  conn_close_handles(c);
out:
  uv_cond_broadcast(&n->cv);
}

/* The timerfd fired: writes the held frames that are due, re-arms for the
 * next, and after the last one finishes a graceful close that waited for
 * them. The expiry count is read first (else the fd stays readable and the
 * loop would spin); a sender arming the timer meanwhile waits on node->mu,
 * and the queue is looked at only after the read, so no expiry is lost. */
static void emu_poll_cb(uv_poll_t *h, int status, int events) {
  conn_t *c = h->data;
  net_node_t *n = c->node;
  uint64_t now, ticks;
  int r = status; /* < 0: libuv stopped watching the fd, the frames cannot go */
  (void)events;
  uv_mutex_lock(&n->mu);
  while (r == 0 && read(c->emu_fd, &ticks, sizeof(ticks)) < 0 && errno == EINTR)
    ;
  now = emu_now();
  while (c->emu_head && c->emu_head->due <= now && r == 0) {
    wreq_t *w = c->emu_head;
    c->emu_head = w->next;
    if (!c->emu_head)
      c->emu_tail = NULL;
    r = start_write(c, w);
  }
  if (r < 0) {
    wreq_list_free(c, &c->emu_head, &c->emu_tail);
    if (c->state == C_CLOSING)
      conn_close_handles(c);
    else
      conn_fail(c, TANDEM_ECLOSED);
  } else if (c->emu_head) {
    emu_arm(c);
  } else if (c->emu_shut) {
    c->emu_shut = 0;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, shutdown_cb) != 0)
      conn_close_handles(c);
  }
  uv_mutex_unlock(&n->mu);
}

/* A handshake failed (err) or an established link broke: count and log it. */
static void conn_fail(conn_t *c, int err) {
  net_node_t *n = c->node;
  if (c->state == C_CLOSING)
    return;
  if (c->state == C_UP) {
    if (err != TANDEM_ECLOSED)
      n->st.links_failed++;
    node_log(n, "net: link to peer %d ended: %s", c->peer, tandem_strerror(err));
  } else {
    n->st.handshakes_failed++;
    node_log(n, "net: handshake failed (%s, peer %d): %s", c->initiator ? "outbound" : "inbound", c->peer,
             tandem_strerror(err));
  }
  conn_close(c, err, 0);
}

static void write_cb(uv_write_t *req, int status) {
  wreq_t *w = req->data;
  conn_t *c = w->c;
  net_node_t *n = c->node;
  uv_mutex_lock(&n->mu);
  c->queued -= w->qbytes;
  c->inflight--;
  c->wprog = uv_hrtime();
  if (status == 0) {
    c->wire_out += w->len - w->off;
    if (c->state == C_UP && c->peer >= 0)
      n->peers[c->peer].st.wire_sent += w->len - w->off;
  }
  free(w);
  if (status < 0 && status != UV_ECANCELED)
    conn_fail(c, TANDEM_ECLOSED);
  /* Only a sender over its queue bound or net_peer_close waits for this; a
   * broadcast per write would wake every receiver for nothing. */
  if (n->qwaiters > 0)
    uv_cond_broadcast(&n->cv);
  uv_mutex_unlock(&n->mu);
}

/* Writes one handshake frame (type, payload of len bytes) from the loop. */
static int send_hs(conn_t *c, uint8_t type, const unsigned char *payload, size_t len) {
  wreq_t *w = malloc(sizeof(*w) + NET_HDR_BYTES + len);
  net__hdr_t h = {.type = type, .len = (uint32_t)len};
  if (!w)
    return TANDEM_ENOMEM;
  w->c = c;
  w->len = NET_HDR_BYTES + len;
  w->off = 0;
  w->qbytes = 0;
  w->next = NULL;
  net__hdr_put(w->buf, &h);
  if (len)
    memcpy(w->buf + NET_HDR_BYTES, payload, len);
  return emit(c, w);
}

/* Makes c, whose handshake just finished, the link of its peer. */
static int link_up(conn_t *c) {
  net_node_t *n = c->node;
  peer_t *p = &n->peers[c->peer];
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
  if (p->link && p->link != c) {
    node_log(n, "net: peer %d: new link replaces the old one", c->peer);
    conn_close(p->link, TANDEM_ECONNRESET, 0);
  }
  c->state = C_UP;
  p->link = c;
  p->err = 0;
  p->gen++;
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
  key_hint(hint, p->pk);
  node_log(n, "net: link up with peer %d (key %s..., %s)", c->peer, hint,
           c->initiator ? "outbound" : "inbound");
  uv_cond_broadcast(&n->cv);
  return 0;
}

static int chan_queued(const peer_t *p, uint8_t chan) {
  for (const rmsg_t *m = p->rq_head; m; m = m->next)
    if (m->chan == chan)
      return 1;
  return 0;
}

/* Checks a header against the connection state and says where its payload
 * goes. Every length is checked here, before anything is allocated. */
static int on_header(conn_t *c) {
  net_node_t *n = c->node;
  net__hdr_t *h = &c->h;
  int r = net__hdr_get(h, c->hdr_raw);
  if (r)
    return r;
  switch (c->state) {
  case C_WAIT1:
    if (h->type != NET_FT_HS1 || h->len != NET_HS1_BYTES)
      return TANDEM_EPROTO;
    break;
  case C_WAIT2:
    if (h->type == NET_FT_REJECT)
      return h->len == 0 ? TANDEM_EAUTH : TANDEM_EPROTO;
    if (h->type != NET_FT_HS2 || h->len != NET_HS2_BYTES)
      return TANDEM_EPROTO;
    break;
  case C_WAIT3:
    if (h->type != NET_FT_HS3 || h->len != NET_HS3_BYTES)
      return TANDEM_EPROTO;
    break;
  case C_UP:
    if (h->type != NET_FT_DATA || h->len > n->cfg.max_frame || h->msg_len > n->cfg.max_msg)
      return TANDEM_EPROTO;
    if (h->seq != c->rx.seq || h->link_id != c->rx.link_id)
      return TANDEM_EPROTO;
    if (c->cur) {
      if ((h->flags & NET_FF_FIRST) || h->chan != c->cur->chan || h->msg_len != c->cur->len)
        return TANDEM_EPROTO;
    } else if (!(h->flags & NET_FF_FIRST)) {
      return TANDEM_EPROTO;
    }
    {
      uint64_t off = c->cur ? c->cur_off : 0;
      if (off + h->len > h->msg_len || (h->len == 0 && h->msg_len != 0) ||
          !(h->flags & NET_FF_LAST) != (off + h->len != h->msg_len))
        return TANDEM_EPROTO;
    }
    if (!c->cur) {
      /* The message is placed at its first header, whose lengths were just
       * checked, so its ciphertext can be read straight into it: into a
       * waiting receiver's buffer if it may take this message (nothing of
       * the channel queued before it), else into memory of our own. */
      post_t *po = &n->peers[c->peer].post;
      rmsg_t *m = calloc(1, sizeof(*m));
      if (!m)
        return TANDEM_ENOMEM;
      if (po->active && !po->m && !po->done && po->chan == h->chan && h->msg_len > 0 &&
          h->msg_len <= po->cap && !chan_queued(&n->peers[c->peer], h->chan)) {
        m->data = po->buf;
        m->user = 1;
        po->m = m;
        po->c = c;
      } else {
        m->data = malloc(h->msg_len ? h->msg_len : 1);
        if (!m->data) {
          free(m);
          return TANDEM_ENOMEM;
        }
      }
      m->chan = h->chan;
      m->len = h->msg_len;
      c->cur = m;
      c->cur_off = 0;
    }
    c->fdst = c->cur->data + c->cur_off;
    c->fmsg = 1;
    c->fneed = h->len;
    c->fhave = 0;
    c->tneed = NET_TAG_BYTES;
    c->thave = 0;
    return 0;
  default:
    return TANDEM_EPROTO;
  }
  c->fdst = c->hsbuf;
  c->fmsg = 0;
  c->fneed = h->len;
  c->fhave = 0;
  c->tneed = 0;
  c->thave = 0;
  return 0;
}

static int find_peer_by_key(net_node_t *n, const unsigned char *pk) {
  for (int i = 0; i < NET_MAX_PEERS; i++)
    if (n->peers[i].declared && sodium_memcmp(n->peers[i].pk, pk, NET_KEY_BYTES) == 0)
      return i;
  return -1;
}

/* Rejects an inbound handshake: REJECT, then FIN. */
static void reject(conn_t *c, const char *why) {
  net_node_t *n = c->node;
  char hint[17];
  key_hint(hint, c->hsbuf + 32);
  node_log(n, "net: rejected inbound handshake from key %s...: %s", hint, why);
  n->st.handshakes_failed++;
  (void)send_hs(c, NET_FT_REJECT, NULL, 0);
  conn_close(c, TANDEM_EAUTH, 1);
}

/* Adds the payload of a checked, decrypted DATA frame to its message. */
static int on_data(conn_t *c) {
  net_node_t *n = c->node;
  peer_t *p = &n->peers[c->peer];
  net__hdr_t *h = &c->h;
  int r;
  if (!c->cur->data)
    return TANDEM_ENOMEM; /* detached from a posted buffer with no memory */
  r = net__frame_open(&c->rx, h, c->hdr_raw, c->cur->data + c->cur_off, c->tag);
  if (r)
    return r;
  c->cur_off += h->len;
  if ((h->flags & NET_FF_LAST) && c->cur->user) {
    rmsg_t *m = c->cur;
    c->cur = NULL;
    p->post.m = NULL;
    p->post.c = NULL;
    p->post.done = 1;
    p->post.len = m->len;
    p->st.payload_recvd += m->len;
    p->st.msgs_recvd++;
    free(m);
    uv_cond_broadcast(&n->cv);
  } else if (h->flags & NET_FF_LAST) {
    rmsg_t *m = c->cur;
    c->cur = NULL;
    if (p->rwaiters > 0 && !p->rwait[m->chan] && p->rq_bytes + m->len > 2 * n->cfg.queue_bytes) {
      /* A receiver waits on another channel and this one's unread messages
       * are past the hard bound: the peer floods (see the file comment). */
      node_log(n, "net: peer %d: %zu bytes unread on other channels while a receiver waits; "
               "link ended", c->peer, p->rq_bytes + m->len);
      rmsg_free(m);
      return TANDEM_EPROTO;
    }
    if (p->rq_tail)
      p->rq_tail->next = m;
    else
      p->rq_head = m;
    p->rq_tail = m;
    p->rq_bytes += m->len;
    p->st.payload_recvd += m->len;
    p->st.msgs_recvd++;
    uv_cond_broadcast(&n->cv);
    if (p->rq_bytes > n->cfg.queue_bytes && p->rwaiters == 0 && !c->paused) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      c->paused = 1;
    }
  }
  return 0;
}

/* A whole frame has arrived. */
static int on_frame(conn_t *c) {
  net_node_t *n = c->node;
  unsigned char out[NET_HS2_BYTES];
  int r, id;
  switch (c->h.type) {
  case NET_FT_HS1:
    if (sodium_memcmp(c->hsbuf + 64, n->keys, NET_KEY_BYTES) != 0) {
      reject(c, "it expects another key");
      return 0;
    }
    id = find_peer_by_key(n, c->hsbuf + 32);
    if (id < 0) {
      reject(c, "unknown key");
      return 0;
    }
    r = net__hs_respond(&c->hs, n->keys, n->keys + NET_KEY_BYTES, c->hsbuf, out);
    if (r)
      return r;
    c->peer = id;
    c->state = C_WAIT3;
    return send_hs(c, NET_FT_HS2, out, NET_HS2_BYTES);
  case NET_FT_HS2:
    r = net__hs_finish_initiator(c->hs, c->hsbuf, out);
    if (r)
      return r;
    r = send_hs(c, NET_FT_HS3, out, NET_HS3_BYTES);
    return r ? r : link_up(c);
  case NET_FT_HS3:
    r = net__hs_finish_responder(c->hs, c->hsbuf);
    return r ? r : link_up(c);
  case NET_FT_DATA:
    return on_data(c);
  default:
    return TANDEM_EPROTO;
  }
}

/* Where the next read goes. Inside a DATA frame's ciphertext: straight into
 * the message (no copy; decrypted in place once the tag is in). Between the
 * frames of a long message: just the rest of the tag and the next header, so
 * that the read after it lands in the message again. Elsewhere (a handshake,
 * a message boundary): READ_CHUNK bytes, parsed by read_cb. Runs on the loop
 * thread, which alone touches the parser state, so no lock is needed. */
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn_t *c = h->data;
  size_t want = READ_CHUNK;
  (void)suggested;
  if (c->have_hdr && c->cur && c->fhave < c->fneed) {
    /* A receiver may take its posted buffer back (post_detach) between
     * reads, so the pointer is read under the lock, and the read marked. */
    net_node_t *n = c->node;
    uv_mutex_lock(&n->mu);
    if (c->fdst) {
      size_t left = c->fneed - c->fhave;
      c->in_read = c->cur->user;
      *buf = uv_buf_init((char *)c->fdst + c->fhave, (unsigned)left);
    } else {
      *buf = uv_buf_init(NULL, 0); /* out of memory: read_cb gets UV_ENOBUFS */
    }
    uv_mutex_unlock(&n->mu);
    return;
  }
  if (c->cur && c->have_hdr && c->fhave == c->fneed && !(c->h.flags & NET_FF_LAST))
    want = c->tneed - c->thave + NET_HDR_BYTES;
  else if (c->cur && !c->have_hdr)
    want = NET_HDR_BYTES - c->hdr_have;
  if (!c->rbuf)
    c->rbuf = malloc(READ_CHUNK);
  *buf = uv_buf_init((char *)c->rbuf, c->rbuf ? (unsigned)want : 0);
}

/* A whole frame is in (header, body, tag): handles it and resets the parser. */
static int frame_done(conn_t *c) {
  c->have_hdr = 0;
  c->hdr_have = 0;
  return on_frame(c);
}

/* Moves up to need - *have bytes from *p (left of them) to dst + *have: one
 * step of reading a header, a frame body or a tag that may arrive in pieces. */
static void fill(unsigned char *dst, size_t *have, size_t need, const unsigned char **p,
                 size_t *left) {
  size_t take = need - *have < *left ? need - *have : *left;
  memcpy(dst + *have, *p, take);
  *have += take;
  *p += take;
  *left -= take;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  net_node_t *n = c->node;
  const unsigned char *p = (const unsigned char *)buf->base;
  size_t left;
  uv_mutex_lock(&n->mu);
  if (c->in_read) {
    c->in_read = 0;
    if (c->peer >= 0 && n->peers[c->peer].post.cancelling)
      uv_cond_broadcast(&n->cv);
  }
  if (c->state == C_CLOSING || nread == 0)
    goto out;
  if (c->fmsg && c->have_hdr && !c->fdst) {
    conn_fail(c, TANDEM_ENOMEM); /* a detached message found no memory */
    goto out;
  }
  if (nread < 0) {
    int mid = c->hdr_have > 0 || c->cur != NULL;
    conn_fail(c, nread == UV_ENOBUFS ? TANDEM_ENOMEM : mid ? TANDEM_EPROTO : TANDEM_ECLOSED);
    goto out;
  }
  left = (size_t)nread;
  c->wire_in += left;
  if (c->state == C_UP)
    n->peers[c->peer].st.wire_recvd += left;
  if (buf->base != (char *)c->rbuf) {
    /* Read in place (alloc_cb): ciphertext of the current frame only. */
    c->fhave += left;
    c->cur_prog = uv_hrtime();
    goto out;
  }
  while (left > 0 && c->state != C_CLOSING) {
    int r;
    if (!c->have_hdr) {
      fill(c->hdr_raw, &c->hdr_have, NET_HDR_BYTES, &p, &left);
      if (c->hdr_have < NET_HDR_BYTES)
        break;
      r = on_header(c);
      if (r) {
        conn_fail(c, r);
        break;
      }
      c->have_hdr = 1;
    } else if (c->fhave < c->fneed) {
      fill(c->fdst, &c->fhave, c->fneed, &p, &left);
    } else {
      fill(c->tag, &c->thave, c->tneed, &p, &left);
    }
    if (c->have_hdr && c->fhave == c->fneed && c->thave == c->tneed) {
      r = frame_done(c);
      if (r) {
        conn_fail(c, r);
        break;
      }
    }
  }
  if (c->cur)
    c->cur_prog = uv_hrtime();
out:
  uv_mutex_unlock(&n->mu);
}

static void timer_cb(uv_timer_t *t) {
  conn_t *c = t->data;
  net_node_t *n = c->node;
  uv_mutex_lock(&n->mu);
  if (c->state != C_UP)
    conn_fail(c, TANDEM_ETIMEDOUT);
  uv_mutex_unlock(&n->mu);
}

static conn_t *conn_new(net_node_t *n) {
  conn_t *c = calloc(1, sizeof(*c));
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
    (void)uv_poll_start(&c->emu_poll, UV_READABLE, emu_poll_cb); /* fails on bad events only */
    c->handles = 3;
  }
  c->next = n->conns;
  n->conns = c;
  uv_timer_start(&c->timer, timer_cb, (uint64_t)n->cfg.handshake_timeout_ms, 0);
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
  conn_t *c = req->data;
  net_node_t *n = c->node;
  unsigned char msg1[NET_HS1_BYTES];
  int r = status;
  uv_mutex_lock(&n->mu);
  if (c->state == C_CLOSING)
    goto out;
  if (r == 0) {
    (void)uv_tcp_nodelay(&c->tcp, 1);
    r = net__hs_start(&c->hs, n->keys, n->keys + NET_KEY_BYTES, n->peers[c->peer].pk, msg1);
  }
  if (r == 0)
    r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
  if (r == 0)
    r = send_hs(c, NET_FT_HS1, msg1, NET_HS1_BYTES);
  if (r) {
    conn_fail(c, r);
    goto out;
  }
  c->state = C_WAIT2;
out:
  uv_mutex_unlock(&n->mu);
}

static void start_connect(net_node_t *n, creq_t *cr) {
  peer_t *p = &n->peers[cr->id];
  conn_t *c;
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
  c->state = C_CONNECTING;
  c->cr = cr;
  cr->c = c;
  c->connect.data = c;
  r = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&p->addr, connect_cb);
  if (r)
    conn_fail(c, r);
}

static void connection_cb(uv_stream_t *server, int status) {
  net_node_t *n = server->data;
  conn_t *c;
  uv_mutex_lock(&n->mu);
  if (status < 0 || n->stopping)
    goto out;
  c = conn_new(n);
  if (!c)
    goto out;
  c->state = C_WAIT1;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0) {
    conn_close(c, TANDEM_ECLOSED, 0);
    goto out;
  }
  (void)uv_tcp_nodelay(&c->tcp, 1);
out:
  uv_mutex_unlock(&n->mu);
}

static void close_any_cb(uv_handle_t *h) {
  (void)h;
}

static void async_cb(uv_async_t *a) {
  net_node_t *n = a->data;
  conn_t *c, *next;
  uv_mutex_lock(&n->mu);
  if (n->stopping) {
    for (c = n->conns; c; c = next) {
      next = c->next;
      conn_close(c, TANDEM_ECLOSED, 0);
      conn_close_handles(c); /* also those still waiting for a shutdown */
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
      creq_t *cr = n->creqs;
      n->creqs = cr->next;
      cr->next = NULL;
      start_connect(n, cr);
    }
    uv_cond_broadcast(&n->cv);
  }
  for (c = n->conns; c; c = next) {
    next = c->next;
    if (c->state == C_CLOSING)
      continue;
    if (c->want_close) {
      conn_close(c, c->kill_err, c->want_close == 1);
      continue;
    }
    if (c->state != C_UP)
      continue;
    if (conn_flush(c) != 0) {
      conn_fail(c, TANDEM_ECLOSED);
      continue;
    }
    if (c->paused && (n->peers[c->peer].rq_bytes <= n->cfg.queue_bytes ||
                      n->peers[c->peer].rwaiters > 0)) {
      c->paused = 0;
      if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0)
        conn_fail(c, TANDEM_ECLOSED);
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

static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
    return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  return TANDEM_EINVAL;
}

static void node_release(net_node_t *n) {
  for (int i = 0; i < NET_MAX_PEERS; i++) {
    peer_t *p = &n->peers[i];
    while (p->rq_head) {
      rmsg_t *m = p->rq_head;
      p->rq_head = m->next;
      rmsg_free(m);
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
  if (cfg->listen_host && parse_addr(cfg->listen_host, cfg->listen_port, &ss) != 0)
    return TANDEM_EINVAL;
  if (sodium_init() < 0)
    return TANDEM_ECRYPTO;
  n = calloc(1, sizeof(*n));
  if (!n)
    return TANDEM_ENOMEM;
  n->cfg = *cfg;
  n->cfg.listen_host = NULL; /* not kept: the caller owns the string */
  n->cfg.peers = NULL;
  n->cfg.npeers = 0;
  if (!n->cfg.max_frame)
    n->cfg.max_frame = NET_DEFAULT_MAX_FRAME;
  if (!n->cfg.max_msg)
    n->cfg.max_msg = NET_DEFAULT_MAX_MSG;
  if (!n->cfg.queue_bytes)
    n->cfg.queue_bytes = NET_DEFAULT_QUEUE_BYTES;
  if (!n->cfg.timeout_ms)
    n->cfg.timeout_ms = NET_DEFAULT_TIMEOUT_MS;
  if (!n->cfg.handshake_timeout_ms)
    n->cfg.handshake_timeout_ms = NET_DEFAULT_HANDSHAKE_MS;
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
      r = uv_listen((uv_stream_t *)&n->listener, 128, connection_cb);
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
  uv_mutex_lock(&n->mu);
  n->stopping = 1;
  uv_mutex_unlock(&n->mu);
  wake(n);
  uv_thread_join(&n->thread);
  (void)uv_loop_close(&n->loop);
  node_release(n);
}

uint16_t net_node_port(const net_node_t *n) {
  return n ? n->port : 0;
}

void net_node_stats(net_node_t *n, net_node_stats_t *out) {
  uv_mutex_lock(&n->mu);
  *out = n->st;
  uv_mutex_unlock(&n->mu);
}

static int bad_id(int id) {
  return id < 0 || id >= NET_MAX_PEERS;
}

static int timeout_or_default(net_node_t *n, int timeout_ms) {
  return timeout_ms < 0 ? n->cfg.timeout_ms : timeout_ms;
}

int net_peer_add(net_node_t *n, int id, const char *host, uint16_t port, const unsigned char *pk) {
  struct sockaddr_storage ss;
  peer_t *p;
  if (!n || bad_id(id) || !pk)
    return TANDEM_EINVAL;
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
    wake(n);
  }
  p->declared = 1;
  memcpy(p->pk, pk, NET_KEY_BYTES);
  p->has_addr = host != NULL;
  if (host)
    p->addr = ss;
  uv_mutex_unlock(&n->mu);
  return 0;
}

int net_connect(net_node_t *n, int id) {
  creq_t cr = {.id = id};
  uint64_t deadline;
  int r;
  if (!n || bad_id(id))
    return TANDEM_EINVAL;
  uv_mutex_lock(&n->mu);
  if (!n->peers[id].declared || !n->peers[id].has_addr) {
    uv_mutex_unlock(&n->mu);
    return TANDEM_EINVAL;
  }
  /* The loop's handshake timer ends the attempt; the margin only guards
   * against a loop that cannot run. */
  deadline = deadline_of(n->cfg.handshake_timeout_ms + 2000);
  cr.next = n->creqs;
  n->creqs = &cr;
  wake(n);
  while (!cr.done) {
    if (wait_until(n, deadline)) {
      creq_t **pp = &n->creqs;
      while (*pp && *pp != &cr)
        pp = &(*pp)->next;
      if (*pp)
        *pp = cr.next;
      if (cr.c) {
        cr.c->cr = NULL;
        cr.c->want_close = 2;
        cr.c->kill_err = TANDEM_ETIMEDOUT;
        wake(n);
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
  if (!n || bad_id(id))
    return TANDEM_EINVAL;
  uv_mutex_lock(&n->mu);
  deadline = deadline_of(timeout_or_default(n, timeout_ms));
  while (!n->peers[id].link) {
    if (wait_until(n, deadline)) {
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
  uv_mutex_lock(&n->mu);
  deadline = deadline_of(timeout_or_default(n, timeout_ms));
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
    if (wait_until(n, deadline))
      break;
  }
  uv_mutex_unlock(&n->mu);
  return r;
}

int net_peer_up(net_node_t *n, int id) {
  int up;
  if (!n || bad_id(id))
    return 0;
  uv_mutex_lock(&n->mu);
  up = n->peers[id].link != NULL;
  uv_mutex_unlock(&n->mu);
  return up;
}

int net_peer_close(net_node_t *n, int id) {
  peer_t *p;
  conn_t *c;
  uint64_t deadline;
  int r = 0;
  if (!n || bad_id(id))
    return TANDEM_EINVAL;
  uv_mutex_lock(&n->mu);
  p = &n->peers[id];
  c = p->link;
  deadline = deadline_of(n->cfg.timeout_ms);
  while (c && p->link == c && c->queued > 0) {
    int late;
    n->qwaiters++;
    late = wait_until(n, deadline);
    n->qwaiters--;
    if (late && !(p->link == c && extend(&deadline, c->wprog, n->cfg.timeout_ms))) {
      r = TANDEM_ETIMEDOUT;
      break;
    }
  }
  if (c && p->link == c) {
    p->link = NULL;
    p->err = TANDEM_ECLOSED;
    c->want_close = r ? 2 : 1;
    c->kill_err = 0;
    node_log(n, "net: closing link to peer %d", id);
    wake(n);
    uv_cond_broadcast(&n->cv);
  }
  uv_mutex_unlock(&n->mu);
  return r;
}

void net_peer_stats(net_node_t *n, int id, net_stats_t *out) {
  memset(out, 0, sizeof(*out));
  if (!n || bad_id(id))
    return;
  uv_mutex_lock(&n->mu);
  *out = n->peers[id].st;
  uv_mutex_unlock(&n->mu);
}

static int link_error(peer_t *p) {
  return p->err ? p->err : TANDEM_ECLOSED;
}

/* Writes as much of w as the socket takes now, from the caller's thread,
 * if nothing is queued before it: with the queue empty and no uv_write in
 * flight libuv does not touch the socket for writing, and node->mu (held)
 * keeps the loop from closing it meanwhile. Returns 1 if w went out whole. */
static int direct_write(conn_t *c, peer_t *p, wreq_t *w) {
  ssize_t k;
  if (c->node->emu || c->pend_head || c->inflight || c->want_close || w->len > DIRECT_MAX)
    return 0;
  do
    k = send(c->fd, w->buf, w->len, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (k < 0 && errno == EINTR);
  if (k <= 0)
    return 0; /* EAGAIN, or an error the loop's write will meet and report */
  w->off = (size_t)k;
  c->wire_out += (size_t)k;
  p->st.wire_sent += (size_t)k;
  return w->off == w->len;
}

int net_msg_send(net_node_t *n, int id, uint8_t chan, const void *buf, size_t len) {
  return net_msg_send_on(n, id, 0, chan, buf, len);
}

int net_msg_send_on(net_node_t *n, int id, uint64_t link, uint8_t chan, const void *buf,
                    size_t len) {
  peer_t *p;
  conn_t *c;
  size_t chunk, off = 0;
  uint64_t deadline, gen;
  int r = 0;
  if (!n || bad_id(id) || (!buf && len))
    return TANDEM_EINVAL;
  if (len > n->cfg.max_msg)
    return TANDEM_EINVAL;
  /* With link emulation a frame is the unit of the emulated wire. */
  chunk = n->emu ? 1 : SEAL_CHUNK / n->cfg.max_frame;
  chunk = (chunk ? chunk : 1) * n->cfg.max_frame;
  p = &n->peers[id];
  uv_mutex_lock(&n->mu);
  deadline = deadline_of(n->cfg.timeout_ms);
  /* The link's number (p->gen counts link_up, as st.links does): a wait for
   * room below must not carry the message over to a link that came up
   * meanwhile, which may be a restarted peer's that knows nothing of it. */
  gen = link ? link : p->gen;
  for (;;) {
    int late;
    c = p->link;
    if (!c || p->gen != gen) {
      r = !c ? link_error(p) : TANDEM_ECONNRESET;
      uv_mutex_unlock(&n->mu);
      return r;
    }
    if (c->queued <= n->cfg.queue_bytes)
      break;
    n->qwaiters++;
    late = wait_until(n, deadline);
    n->qwaiters--;
    /* c may be gone once the wait returns: the link is looked up again. */
    if (late && (c = p->link) != NULL && !extend(&deadline, c->wprog, n->cfg.timeout_ms)) {
      uv_mutex_unlock(&n->mu);
      return TANDEM_ETIMEDOUT;
    }
  }
  c->refs++;
  uv_mutex_unlock(&n->mu);

  /* send_mu keeps the frames of one message together and in sequence. The
   * message is sealed a piece at a time, each piece queued (or written) as
   * soon as it is sealed. */
  uv_mutex_lock(&c->send_mu);
  do {
    size_t k = len - off < chunk ? len - off : chunk;
    size_t wire = net__msg_wire_bytes(k, n->cfg.max_frame);
    wreq_t *w = malloc(sizeof(*w) + wire);
    if (!w)
      r = TANDEM_ENOMEM;
    else
      r = net__msg_seal_part(&c->tx, chan, buf, len, off, k, n->cfg.max_frame, w->buf);
    uv_mutex_lock(&n->mu);
    if (r == 0 && c->state != C_UP)
      r = p->gen != gen ? TANDEM_ECONNRESET : link_error(p);
    if (r == 0) {
      w->c = c;
      w->len = wire;
      w->off = 0;
      w->next = NULL;
      if (direct_write(c, p, w)) {
        free(w);
      } else if (n->emu && !c->pend_head && !c->want_close) {
        /* Straight onto the emulated wire: its time starts now, not when
         * the loop would get round to it, and the timerfd wakes the loop
         * when the frame is due (no hand-off to the loop before). */
        w->qbytes = wire;
        c->queued += wire;
        (void)emit(c, w);
      } else {
        w->qbytes = wire - w->off;
        if (c->pend_tail)
          c->pend_tail->next = w;
        else
          c->pend_head = w;
        c->pend_tail = w;
        c->queued += w->qbytes;
        wake(n);
      }
    } else {
      free(w);
      /* After an OpenSSL failure the sequence numbers are out of step; after
       * a failure past the first piece the peer holds half a message. */
      if ((r == TANDEM_ECRYPTO || off > 0) && c->state == C_UP) {
        c->want_close = 2;
        c->kill_err = r;
        wake(n);
      }
    }
    uv_mutex_unlock(&n->mu);
    off += k;
  } while (r == 0 && off < len);
  uv_mutex_lock(&n->mu);
  if (r == 0) {
    p->st.payload_sent += len;
    p->st.msgs_sent++;
  }
  uv_mutex_unlock(&n->mu);
  uv_mutex_unlock(&c->send_mu);
  uv_mutex_lock(&n->mu);
  c->refs--;
  conn_maybe_free(c);
  uv_mutex_unlock(&n->mu);
  return r;
}

int net_send(net_node_t *n, int id, const void *buf, size_t len) {
  return net_msg_send(n, id, 0, buf, len);
}

/* Unlinks and returns the first queued message of chan from p, or NULL. */
static rmsg_t *dequeue(net_node_t *n, peer_t *p, uint8_t chan) {
  rmsg_t *prev = NULL;
  for (rmsg_t **pp = &p->rq_head; *pp; prev = *pp, pp = &(*pp)->next) {
    rmsg_t *m = *pp;
    if (m->chan != chan)
      continue;
    *pp = m->next;
    if (p->rq_tail == m)
      p->rq_tail = prev;
    p->rq_bytes -= m->len;
    if (p->link && p->link->paused)
      wake(n);
    return m;
  }
  return NULL;
}

/* Takes the next message of channel chan from peer id, waiting up to
 * timeout_ms. With buf (cap > 0), the wait posts buf so that the message can
 * be decrypted straight into it: then 0 is returned with *out NULL and its
 * length in *len. Else 0 with *out set, or the error. */
/* Posts buf for the next message of chan from p if the slot is free and
 * nothing of chan is queued (else the queue serves the receiver). 1 if
 * posted. Under node->mu. */
static int post_start(peer_t *p, uint8_t chan, unsigned char *buf, size_t cap) {
  post_t *po = &p->post;
  if (!buf || cap == 0 || po->active || chan_queued(p, chan))
    return 0;
  memset(po, 0, sizeof(*po));
  po->active = 1;
  po->chan = chan;
  po->buf = buf;
  po->cap = cap;
  return 1;
}

/* Withdraws p's posted buffer. A message half in it (the receiver timed out,
 * or takes a message queued before it) is moved to the loop's own memory
 * once no read into the buffer is under way, to complete and be queued for a
 * later call; a whole one the receiver will not take (its send failed) is
 * queued as a copy ahead of the rest. Under node->mu. */
static void post_end(net_node_t *n, peer_t *p) {
  post_t *po = &p->post;
  if (po->m) {
    conn_t *c = po->c;
    po->cancelling = 1;
    while (c->in_read)
      (void)uv_cond_timedwait(&n->cv, &n->mu, 1000000u);
    if (post_detach(c, po, 0) != 0)
      wake(n);
  }
  memset(po, 0, sizeof(*po));
}

/* The same when the receiver leaves without the message its buffer holds. */
static void post_abandon(net_node_t *n, peer_t *p) {
  post_t *po = &p->post;
  if (po->done) {
    rmsg_t *m = calloc(1, sizeof(*m));
    unsigned char *d = malloc(po->len);
    if (m && d) {
      memcpy(d, po->buf, po->len);
      m->data = d;
      m->len = po->len;
      m->chan = po->chan;
      m->next = p->rq_head;
      p->rq_head = m;
      if (!p->rq_tail)
        p->rq_tail = m;
      p->rq_bytes += m->len;
    } else {
      free(m);
      free(d); /* the message is lost; the link's next receive cannot tell */
    }
  }
  post_end(n, p);
}

/* posted: buf was posted by the caller already (net_exchange posts it
 * before it sends, so that the peer's reply, which may start arriving while
 * the send is being sealed, lands in it). */
static int take_msg(net_node_t *n, int id, uint64_t link, uint8_t chan, int timeout_ms,
                    unsigned char *buf, size_t cap, int posted, rmsg_t **out, size_t *len) {
  peer_t *p = &n->peers[id];
  post_t *po = &p->post;
  rmsg_t *m = NULL;
  uint64_t deadline, gen;
  int r = 0, late;
  uv_mutex_lock(&n->mu);
  timeout_ms = timeout_or_default(n, timeout_ms);
  deadline = deadline_of(timeout_ms);
  gen = link ? link : p->gen;
  for (;;) {
    if (posted && po->done) {
      *len = po->len;
      break;
    }
    if ((m = dequeue(n, p, chan)) != NULL)
      break;
    if (p->gen != gen) {
      r = TANDEM_ECONNRESET;
      break;
    }
    if (!p->link) {
      r = link_error(p);
      break;
    }
    if (!posted && timeout_ms != 0)
      posted = post_start(p, chan, buf, cap);
    /* Nothing of chan is queued: what this receiver waits for is behind the
     * unread bytes of the link, which must not stay paused (file comment). */
    p->rwaiters++;
    p->rwait[chan]++;
    if (p->link->paused)
      wake(n);
    late = wait_until(n, deadline);
    p->rwaiters--;
    p->rwait[chan]--;
    /* A message of chan being reassembled is the next one of chan, the one
     * this receiver waits for: while its bytes arrive, the wait goes on (a
     * poll's too, timeout 0, by the node's timeout without progress). */
    if (late && !(p->link && p->link->cur && p->link->cur->chan == chan &&
                  extend(&deadline, p->link->cur_prog,
                         timeout_ms ? timeout_ms : n->cfg.timeout_ms))) {
      r = TANDEM_ETIMEDOUT;
      break;
    }
  }
  if (posted)
    post_end(n, p);
  uv_mutex_unlock(&n->mu);
  *out = m;
  return r;
}

int net_msg_recv(net_node_t *n, int id, uint8_t chan, void *buf, size_t cap, size_t *len,
                 int timeout_ms) {
  rmsg_t *m;
  size_t got = 0;
  int r;
  if (!n || bad_id(id) || (!buf && cap))
    return TANDEM_EINVAL;
  if ((r = take_msg(n, id, 0, chan, timeout_ms, buf, cap, 0, &m, &got)) != 0) {
    rmsg_free(m);
    return r;
  }
  if (!m) { /* decrypted in place */
    if (len)
      *len = got;
    return 0;
  }
  if (m->len > cap) {
    r = TANDEM_EPROTO;
  } else {
    if (m->len)
      memcpy(buf, m->data, m->len);
    if (len)
      *len = m->len;
  }
  rmsg_free(m);
  return r;
}

int net_msg_take(net_node_t *n, int id, uint8_t chan, size_t cap, unsigned char **buf,
                 size_t *len, int timeout_ms) {
  return net_msg_take_on(n, id, 0, chan, cap, buf, len, timeout_ms);
}

int net_msg_take_on(net_node_t *n, int id, uint64_t link, uint8_t chan, size_t cap,
                    unsigned char **buf, size_t *len, int timeout_ms) {
  rmsg_t *m;
  int r;
  if (!n || bad_id(id) || !buf || !len)
    return TANDEM_EINVAL;
  *buf = NULL;
  *len = 0;
  if ((r = take_msg(n, id, link, chan, timeout_ms, NULL, 0, 0, &m, len)) != 0)
    return r;
  if (m->len > cap) {
    rmsg_free(m);
    return TANDEM_EPROTO;
  }
  /* The buffer changes hands: the caller wipes and frees it. */
  *buf = m->data != NULL ? m->data : malloc(1);
  *len = m->len;
  m->data = NULL;
  rmsg_free(m);
  return *buf != NULL ? 0 : TANDEM_ENOMEM;
}

int net_recv(net_node_t *n, int id, void *buf, size_t len) {
  size_t got = 0;
  int r = net_msg_recv(n, id, 0, buf, len, &got, NET_TIMEOUT_DEFAULT);
  if (r == 0 && got != len)
    r = TANDEM_EPROTO;
  return r;
}

int net_exchange(net_node_t *n, int id, const void *sbuf, size_t slen, void *rbuf, size_t rlen) {
  rmsg_t *m = NULL;
  size_t got = 0;
  int r, posted;
  if (!n || bad_id(id) || (!rbuf && rlen))
    return TANDEM_EINVAL;
  uv_mutex_lock(&n->mu);
  posted = post_start(&n->peers[id], 0, rbuf, rlen);
  uv_mutex_unlock(&n->mu);
  r = net_send(n, id, sbuf, slen);
  if (r) {
    if (posted) {
      uv_mutex_lock(&n->mu);
      post_abandon(n, &n->peers[id]);
      uv_mutex_unlock(&n->mu);
    }
    return r;
  }
  r = take_msg(n, id, 0, 0, NET_TIMEOUT_DEFAULT, rbuf, rlen, posted, &m, &got);
  if (m) {
    if (r == 0) {
      if (m->len != rlen)
        r = TANDEM_EPROTO;
      else if (rlen)
        memcpy(rbuf, m->data, rlen);
    }
    rmsg_free(m);
  } else if (r == 0 && got != rlen) {
    r = TANDEM_EPROTO;
  }
  return r;
}
