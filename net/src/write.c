/* write.c - the sending side of a net node: the sending calls of net.h
 * (net_msg_send_on and its wrappers), which seal a message on the caller's
 * thread a piece at a time and write it to the socket directly or queue it
 * for the loop, bounded by queue_bytes; the loop's hand-off of queued frames
 * to uv_write, its completion callback, and the handshake frames the loop
 * writes itself.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "net_int.h"

/* A long message is sealed and queued in pieces of about this many payload
 * bytes, so the loop writes the first frames while the sender seals the
 * rest. */
#define SEAL_CHUNK ((size_t)1 << 20)
/* A sender whose link has nothing queued writes a piece of at most this many
 * wire bytes to the socket itself (non-blocking), saving the hand-off to the
 * loop thread that dominates a small message's latency. */
#define DIRECT_MAX ((size_t)256 << 10)

static void write_cb(uv_write_t *req, int status);

/* Hands w to libuv (which frees it through write_cb); on failure frees it. */
int net__start_write(net__conn_t *c, net__wreq_t *w) {
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

static void write_cb(uv_write_t *req, int status) {
  net__wreq_t *w = req->data;
  net__conn_t *c = w->c;
  net_node_t *n = c->node;
  uv_mutex_lock(&n->mu);
  c->queued -= w->qbytes;
  c->inflight--;
  c->wprog = uv_hrtime();
  if (status == 0) {
    c->wire_out += w->len - w->off;
    if (c->state == NET_C_UP && c->peer >= 0)
      n->peers[c->peer].st.wire_sent += w->len - w->off;
  }
  free(w);
  if (status < 0 && status != UV_ECANCELED)
    net__conn_fail(c, TANDEM_ECLOSED);
  /* Only a sender over its queue bound or net_peer_close waits for this; a
   * broadcast per write would wake every receiver for nothing. */
  if (n->qwaiters > 0)
    uv_cond_broadcast(&n->cv);
  uv_mutex_unlock(&n->mu);
}

/* Hands the queued frames of c to libuv (or to the emulated wire). */
int net__conn_flush(net__conn_t *c) {
  while (c->pend_head) {
    net__wreq_t *w = c->pend_head;
    int r;
    c->pend_head = w->next;
    if (!c->pend_head)
      c->pend_tail = NULL;
    r = net__emit(c, w);
    if (r < 0)
      return r;
  }
  return 0;
}

/* Writes one handshake frame (type, payload of len bytes) from the loop. */
int net__send_hs(net__conn_t *c, uint8_t type, const unsigned char *payload, size_t len) {
  net__wreq_t *w = malloc(sizeof(*w) + NET_HDR_BYTES + len);
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
  return net__emit(c, w);
}

/* Writes as much of w as the socket takes now, from the caller's thread,
 * if nothing is queued before it: with the queue empty and no uv_write in
 * flight libuv does not touch the socket for writing, and node->mu (held)
 * keeps the loop from closing it meanwhile. Returns 1 if w went out whole. */
static int direct_write(net__conn_t *c, net__peer_t *p, net__wreq_t *w) {
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

/* What net_msg_send_consume has wiped of its buffer so far, and the page size
 * for giving whole pages back (0: none given back). */
typedef struct {
  uint8_t *buf;
  size_t done;
  uintptr_t pg;
} consume_t;

/* Wipes buf[done .. to) and gives back to the system the whole pages of
 * buf[0 .. to) not yet given back: those from the page done ended in (whole
 * now if to passed its end), but none before buf's first whole page. */
static void consume(consume_t *w, size_t to) {
  if (to == w->done)
    return; /* also keeps a NULL buf of length 0 out of the arithmetic */
  sodium_memzero(w->buf + w->done, to - w->done);
#ifdef MADV_DONTNEED
  if (w->pg > 0) {
    const uintptr_t m = ~(w->pg - 1), first = ((uintptr_t)w->buf + w->pg - 1) & m;
    const uintptr_t from = ((uintptr_t)w->buf + w->done) & m;
    uintptr_t a = from > first ? from : first, b = ((uintptr_t)w->buf + to) & m;
    if (b > a)
      (void)madvise((void *)a, b - a, MADV_DONTNEED);
  }
#endif
  w->done = to;
}

static int send_on(net_node_t *n, int id, uint64_t link, uint8_t chan, const void *buf,
                   size_t len, consume_t *wipe);

int net_msg_send_on(net_node_t *n, int id, uint64_t link, uint8_t chan, const void *buf,
                    size_t len) {
  return send_on(n, id, link, chan, buf, len, NULL);
}

int net_msg_send_consume(net_node_t *n, int id, uint64_t link, uint8_t chan, void *buf,
                         size_t len, size_t *wiped) {
  consume_t w = {buf, 0, 0};
#ifdef MADV_DONTNEED
  long ps = sysconf(_SC_PAGESIZE);
  if (ps > 0 && (ps & (ps - 1)) == 0)
    w.pg = (uintptr_t)ps;
#endif
  int r = send_on(n, id, link, chan, buf, len, &w);
  if (wiped)
    *wiped = w.done;
  return r;
}

static int send_on(net_node_t *n, int id, uint64_t link, uint8_t chan, const void *buf,
                   size_t len, consume_t *wipe) {
  net__peer_t *p;
  net__conn_t *c;
  size_t chunk, off = 0;
  uint64_t deadline, gen;
  int r = 0;
  if (!n || net__bad_id(id) || (!buf && len))
    return TANDEM_EINVAL;
  if (len > n->cfg.max_msg)
    return TANDEM_EINVAL;
  if (n->mem) {
    /* The in-memory transport copies the message whole: wiped after. */
    r = net__mem_send(n, id, link, chan, buf, len);
    if (r == 0 && wipe != NULL)
      consume(wipe, len);
    return r;
  }
  /* With link emulation a frame is the unit of the emulated wire. */
  chunk = n->emu ? 1 : SEAL_CHUNK / n->cfg.max_frame;
  chunk = (chunk ? chunk : 1) * n->cfg.max_frame;
  p = &n->peers[id];
  uv_mutex_lock(&n->mu);
  deadline = net__deadline_of(n->cfg.timeout_ms);
  /* The link's number (p->gen counts net__link_up, as st.links does): a wait for
   * room below must not carry the message over to a link that came up
   * meanwhile, which may be a restarted peer's that knows nothing of it. */
  gen = link ? link : p->gen;
  for (;;) {
    int late;
    c = p->link;
    if (!c || p->gen != gen) {
      r = !c ? net__link_error(p) : TANDEM_ECONNRESET;
      uv_mutex_unlock(&n->mu);
      return r;
    }
    if (c->queued <= n->cfg.queue_bytes)
      break;
    n->qwaiters++;
    late = net__wait_until(n, deadline);
    n->qwaiters--;
    /* c may be gone once the wait returns: the link is looked up again. */
    if (late && (c = p->link) != NULL &&
        (p->lim.strict || !net__extend(&deadline, c->wprog, n->cfg.timeout_ms))) {
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
    net__wreq_t *w = malloc(sizeof(*w) + wire);
    if (!w)
      r = TANDEM_ENOMEM;
    else
      r = net__msg_seal_part(&c->tx, chan, buf, len, off, k, n->cfg.max_frame, w->buf);
    if (r == 0 && wipe != NULL)
      consume(wipe, off + k);
    uv_mutex_lock(&n->mu);
    if (r == 0 && c->state != NET_C_UP)
      r = p->gen != gen ? TANDEM_ECONNRESET : net__link_error(p);
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
        (void)net__emit(c, w);
      } else {
        w->qbytes = wire - w->off;
        if (c->pend_tail)
          c->pend_tail->next = w;
        else
          c->pend_head = w;
        c->pend_tail = w;
        c->queued += w->qbytes;
        net__wake(n);
      }
    } else {
      free(w);
      /* After an OpenSSL failure the sequence numbers are out of step; after
       * a failure past the first piece the peer holds half a message. */
      if ((r == TANDEM_ECRYPTO || off > 0) && c->state == NET_C_UP) {
        c->want_close = 2;
        c->kill_err = r;
        net__wake(n);
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
  net__conn_maybe_free(c);
  uv_mutex_unlock(&n->mu);
  return r;
}

int net_send(net_node_t *n, int id, const void *buf, size_t len) {
  return net_msg_send(n, id, 0, buf, len);
}
