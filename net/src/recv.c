/* recv.c - the receiving calls of net.h (net_msg_recv, net_msg_take,
 * net_recv, net_exchange): a caller's thread takes the next message of a
 * channel off its peer's queue, or posts its own buffer so that the loop
 * (read.c) decrypts the message straight into it, and waits for it with a
 * deadline that moves on while the message arrives (node.c's file comment).
 * A posted buffer is withdrawn before the call returns, whatever happened.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sodium.h>
#include <uv.h>

#include "net_int.h"

void *net__msg_alloc(size_t len) {
  const size_t huge = (size_t)2 << 20;
  void *p = malloc(len ? len : 1);
#ifdef MADV_HUGEPAGE
  if (p != NULL && len >= 2 * huge) {
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1);
    uintptr_t e = ((uintptr_t)p + len) & ~(uintptr_t)(huge - 1);
    if (e > a)
      (void)madvise((void *)a, e - a, MADV_HUGEPAGE); /* advice only */
  }
#endif
  return p;
}

/* Takes the message being received on c out of its posted buffer, which
 * the receiver is leaving: what arrived is moved to a buffer of our own (or,
 * with detach_only, dropped), and the receiver's copy is wiped. The caller
 * holds node->mu and has made sure no read into the buffer is under way. */
int net__post_detach(net__conn_t *c, net__post_t *po, int detach_only) {
  net__rmsg_t *m = c->cur;
  size_t got = net__msg_got(c);
  unsigned char *d = NULL;
  int r = 0;
  if (!detach_only) {
    d = net__msg_alloc(m->len);
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

/* Unlinks and returns the first queued message of chan from p that arrived
 * on link (0: on any link), or NULL. */
static net__rmsg_t *dequeue(net_node_t *n, net__peer_t *p, uint64_t link, uint8_t chan) {
  net__rmsg_t *prev = NULL;
  for (net__rmsg_t **pp = &p->rq_head; *pp; prev = *pp, pp = &(*pp)->next) {
    net__rmsg_t *m = *pp;
    if (m->chan != chan || (link != 0 && m->link != link))
      continue;
    *pp = m->next;
    if (p->rq_tail == m)
      p->rq_tail = prev;
    p->rq_bytes -= m->len;
    if (p->link && p->link->paused)
      net__wake(n);
    return m;
  }
  return NULL;
}

/* Posts buf for the next message of chan from p if the slot is free and
 * nothing of chan is queued (else the queue serves the receiver). 1 if
 * posted. Under node->mu. */
static int post_start(net__peer_t *p, uint8_t chan, unsigned char *buf, size_t cap) {
  net__post_t *po = &p->post;
  if (!buf || cap == 0 || po->active || net__chan_queued(p, chan))
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
static void post_end(net_node_t *n, net__peer_t *p) {
  net__post_t *po = &p->post;
  if (po->m) {
    net__conn_t *c = po->c;
    po->cancelling = 1;
    while (c->in_read)
      (void)uv_cond_timedwait(&n->cv, &n->mu, 1000000u);
    if (net__post_detach(c, po, 0) != 0)
      net__wake(n);
  }
  memset(po, 0, sizeof(*po));
}

/* The same when the receiver leaves without the message its buffer holds. */
static void post_abandon(net_node_t *n, net__peer_t *p) {
  net__post_t *po = &p->post;
  if (po->done) {
    net__rmsg_t *m = calloc(1, sizeof(*m));
    unsigned char *d = net__msg_alloc(po->len);
    if (m && d) {
      memcpy(d, po->buf, po->len);
      m->data = d;
      m->len = po->len;
      m->chan = po->chan;
      m->link = po->link;
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

/* Takes the next message of channel chan from peer id, waiting up to
 * timeout_ms. With buf (cap > 0), the wait posts buf so that the message can
 * be decrypted straight into it: then 0 is returned with *out NULL and its
 * length in *len. Else 0 with *out set, or the error.
 * link: the link the receive is bound to (net_msg_take_on), whose messages
 * alone it takes, or 0: the next message of chan whatever link it came on
 * (TANDEM_ECONNRESET if the link is replaced while nothing is queued). A
 * bound receive never posts a buffer: the loop would fill it with whatever
 * message of chan comes next.
 * posted: buf was posted by the caller already (net_exchange posts it
 * before it sends, so that the peer's reply, which may start arriving while
 * the send is being sealed, lands in it). */
static int take_msg(net_node_t *n, int id, uint64_t link, uint8_t chan, int timeout_ms,
                    unsigned char *buf, size_t cap, int posted, net__rmsg_t **out, size_t *len) {
  net__peer_t *p = &n->peers[id];
  net__post_t *po = &p->post;
  net__rmsg_t *m = NULL;
  uint64_t deadline, gen;
  int r = 0, late;
  uv_mutex_lock(&n->mu);
  timeout_ms = net__timeout_or_default(n, timeout_ms);
  deadline = net__deadline_of(timeout_ms);
  gen = link ? link : p->gen;
  for (;;) {
    if (posted && po->done) {
      *len = po->len;
      break;
    }
    /* A bound receive looks at its own link's messages only: the queue is
     * the peer's, shared by its old and new links, and taking the first
     * message of chan before checking the link let a receive bound to the
     * old link take one that had already come on the new link (or the
     * reverse). Once its link is another one, no message of it can come
     * any more (the old connection reads nothing after net__link_up closed
     * it), so then it fails once none of them is left. */
    if ((m = dequeue(n, p, link, chan)) != NULL)
      break;
    if (p->gen != gen) {
      r = TANDEM_ECONNRESET;
      break;
    }
    if (!p->link) {
      r = net__link_error(p);
      break;
    }
    if (!posted && timeout_ms != 0)
      posted = post_start(p, chan, buf, cap);
    /* Nothing of chan is queued: what this receiver waits for is behind the
     * unread bytes of the link, which must not stay paused (read.c's
     * file comment). */
    p->rwaiters++;
    p->rwait[chan]++;
    if (p->link->paused)
      net__wake(n);
    late = net__wait_until(n, deadline);
    p->rwaiters--;
    p->rwait[chan]--;
    /* A message of chan being reassembled is the next one of chan, the one
     * this receiver waits for: while its bytes arrive, the wait goes on (a
     * poll's too, timeout 0, by the node's timeout without progress);
     * except from a strict peer, whose deadline is the message's due time:
     * a trickle of bytes moved it on for ever (one byte a second held both
     * parties while the client liked). Its link is closed by the loop once
     * a message has been arriving for a timeout (read.c, msg_due). */
    if (late && !(p->link && p->link->cur && p->link->cur->chan == chan && !p->lim.strict &&
                  net__extend(&deadline, p->link->cur_prog,
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
  net__rmsg_t *m;
  size_t got = 0;
  int r;
  if (!n || net__bad_id(id) || (!buf && cap))
    return TANDEM_EINVAL;
  if (n->mem)
    return net__mem_recv(n, id, chan, buf, cap, len, timeout_ms);
  if ((r = take_msg(n, id, 0, chan, timeout_ms, buf, cap, 0, &m, &got)) != 0) {
    net__rmsg_free(m);
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
  net__rmsg_free(m);
  return r;
}

int net_msg_take(net_node_t *n, int id, uint8_t chan, size_t cap, unsigned char **buf,
                 size_t *len, int timeout_ms) {
  return net_msg_take_on(n, id, 0, chan, cap, buf, len, timeout_ms);
}

int net_msg_take_on(net_node_t *n, int id, uint64_t link, uint8_t chan, size_t cap,
                    unsigned char **buf, size_t *len, int timeout_ms) {
  net__rmsg_t *m;
  int r;
  if (!n || net__bad_id(id) || !buf || !len)
    return TANDEM_EINVAL;
  *buf = NULL;
  *len = 0;
  if (n->mem)
    return net__mem_take(n, id, link, chan, cap, buf, len, timeout_ms);
  if ((r = take_msg(n, id, link, chan, timeout_ms, NULL, 0, 0, &m, len)) != 0)
    return r;
  if (m->len > cap) {
    net__rmsg_free(m);
    return TANDEM_EPROTO;
  }
  /* The buffer changes hands: the caller wipes and frees it. */
  *buf = m->data != NULL ? m->data : malloc(1);
  *len = m->len;
  m->data = NULL;
  net__rmsg_free(m);
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
  net__rmsg_t *m = NULL;
  size_t got = 0;
  int r, posted;
  if (!n || net__bad_id(id) || (!rbuf && rlen))
    return TANDEM_EINVAL;
  if (n->mem)
    return net__mem_exchange(n, id, sbuf, slen, rbuf, rlen);
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
    net__rmsg_free(m);
  } else if (r == 0 && got != rlen) {
    r = TANDEM_EPROTO;
  }
  return r;
}
