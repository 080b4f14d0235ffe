/* read.c - the parser of a net node's connections, on the loop thread: where
 * each read goes (alloc_cb), the frame headers checked against the
 * connection's state before anything is allocated, handshake frames handed
 * on, and DATA frames decrypted and gathered into messages, queued per peer
 * or completed in a waiting receiver's buffer (recv.c takes them out).
 *
 * Receiving copies nothing in user space: the ciphertext of a frame is read
 * straight into the message it belongs to and decrypted there in place once
 * its tag is in. The message is either memory of the node's, queued for a
 * later receive, or the buffer a waiting receiver posted (net__post_t), when
 * nothing of its channel is queued before it. The loop reads from every
 * connection at all times, whatever is queued for writing, so two peers
 * exchanging large messages at once cannot deadlock; it pauses reading a
 * connection only while the peer's received-but-not-taken messages exceed
 * queue_bytes and no receiver waits on that peer. A waiting receiver has
 * nothing of its channel queued that it may take (else it would have taken
 * it; one bound to a link leaves other links' messages queued, but waits
 * only while its link is the one being read), so what it waits for can only
 * be behind the unread bytes of the stream: pausing then would starve it
 * for good (a large message of a step nobody runs any more, on a data
 * channel, in front of the control message that starts the next one). So
 * a receiver that waits resumes reading, and the loop keeps reading while
 * one waits; what bounds memory then is a second, hard limit of twice
 * queue_bytes: a message of a channel nobody waits on that would take the
 * peer's unread messages past it is dropped and ends the link (a peer that
 * floods one channel while the receiver waits on another). Both bounds
 * count every unread message of the peer. A third is checked at each
 * message's first header, before any of its body is buffered (admit): the
 * peer's channels, its max_msg, and its unread bytes at most max_msg +
 * queue_bytes. What a replaced link left unread is dropped when the new
 * link comes up (conn.c), so reconnecting never adds to it.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "net_int.h"

/* Bytes read at once where the parser is between messages (a burst of small
 * messages is parsed out of one read). Inside a long message the ciphertext
 * of each frame is read straight into the message instead. */
#define READ_CHUNK (64u << 10)

/* Bytes of the message being reassembled on c that are in place so far. */
size_t net__msg_got(const net__conn_t *c) {
  return c->cur_off + (c->have_hdr && c->fmsg ? c->fhave : 0);
}

int net__chan_queued(const net__peer_t *p, uint8_t chan) {
  for (const net__rmsg_t *m = p->rq_head; m; m = m->next)
    if (m->chan == chan)
      return 1;
  return 0;
}

/* Refuses a message at its first header, before any of its body is
 * buffered, if its peer may not send it: a channel the peer does not use, a
 * length over the peer's max_msg, or more unread bytes than the peer's
 * bound. The bound counts every unread message of the peer, those its
 * earlier links left included (net__link_up drops them when a new link
 * comes up), so reconnecting does not reset it: a stranger with a client's
 * key once left P0 1.3 GB by connecting, sending one large message on an
 * unused channel and leaving, three times. A message going straight into a
 * waiting receiver's buffer takes none of our memory. (The flood guard of
 * the file comment stays at the last frame: at the first header, the
 * receiver of a control message just queued may not have woken yet to wait
 * for the large message that follows it, which it then took for a flood.) */
static int admit(net__conn_t *c, const net__hdr_t *h, int posted) {
  net_node_t *n = c->node;
  net__peer_t *p = &n->peers[c->peer];
  const char *why = NULL;
  size_t bound = p->lim.max_msg + n->cfg.queue_bytes;
  if (p->lim.chans && (h->chan > 63 || !(p->lim.chans >> h->chan & 1)))
    why = "a channel this peer does not use";
  else if (h->msg_len > p->lim.max_msg)
    why = "longer than this peer's max_msg";
  else if (!posted && (p->rq_bytes > bound || h->msg_len > bound - p->rq_bytes))
    why = "over the bound of its unread messages";
  if (!why)
    return 0;
  n->st.msgs_refused++;
  net__log(n,
           "net: peer %d: message of %llu bytes on channel %u refused (%s; %zu bytes unread, "
           "bound %zu); link ended",
           c->peer, (unsigned long long)h->msg_len, (unsigned)h->chan, why, p->rq_bytes, bound);
  return TANDEM_EPROTO;
}

/* Checks a header against the connection state and says where its payload
 * goes. Every length is checked here, before anything is allocated. */
static int on_header(net__conn_t *c) {
  net_node_t *n = c->node;
  net__hdr_t *h = &c->h;
  int r = net__hdr_get(h, c->hdr_raw);
  if (r)
    return r;
  switch (c->state) {
  case NET_C_WAIT1:
    if (h->type != NET_FT_HS1 || h->len != NET_HS1_BYTES)
      return TANDEM_EPROTO;
    break;
  case NET_C_WAIT2:
    if (h->type == NET_FT_REJECT)
      return h->len == 0 ? TANDEM_EAUTH : TANDEM_EPROTO;
    if (h->type != NET_FT_HS2 || h->len != NET_HS2_BYTES)
      return TANDEM_EPROTO;
    break;
  case NET_C_WAIT3:
    if (h->type != NET_FT_HS3 || h->len != NET_HS3_BYTES)
      return TANDEM_EPROTO;
    break;
  case NET_C_UP:
    if (h->type != NET_FT_DATA || h->len > n->cfg.max_frame)
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
       * the channel queued before it), else into memory of our own, if the
       * peer may have that much more unread (admit). */
      net__post_t *po = &n->peers[c->peer].post;
      int posted = po->active && !po->m && !po->done && po->chan == h->chan &&
                   h->msg_len > 0 && h->msg_len <= po->cap &&
                   !net__chan_queued(&n->peers[c->peer], h->chan);
      net__rmsg_t *m;
      r = admit(c, h, posted);
      if (r)
        return r;
      m = calloc(1, sizeof(*m));
      if (!m)
        return TANDEM_ENOMEM;
      if (posted) {
        m->data = po->buf;
        m->user = 1;
        po->m = m;
        po->c = c;
      } else {
        m->data = net__msg_alloc(h->msg_len);
        if (!m->data) {
          free(m);
          return TANDEM_ENOMEM;
        }
      }
      m->chan = h->chan;
      m->len = h->msg_len;
      m->link = c->gen;
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
static void reject(net__conn_t *c, const char *why) {
  net_node_t *n = c->node;
  char hint[17];
  net__key_hint(hint, c->hsbuf + 32);
  net__log(n, "net: rejected inbound handshake from key %s...: %s", hint, why);
  n->st.handshakes_failed++;
  (void)net__send_hs(c, NET_FT_REJECT, NULL, 0);
  net__conn_close(c, TANDEM_EAUTH, 1);
}

/* Adds the payload of a checked, decrypted DATA frame to its message. */
static int on_data(net__conn_t *c) {
  net_node_t *n = c->node;
  net__peer_t *p = &n->peers[c->peer];
  net__hdr_t *h = &c->h;
  int r;
  if (!c->cur->data)
    return TANDEM_ENOMEM; /* detached from a posted buffer with no memory */
  r = net__frame_open(&c->rx, h, c->hdr_raw, c->cur->data + c->cur_off, c->tag);
  if (r) {
    /* A frame that failed its tag was decrypted in place all the same:
     * wiped here, as the bytes past cur_off are not counted as received
     * when the message is freed or its posted buffer handed back. */
    if (h->len)
      sodium_memzero(c->cur->data + c->cur_off, h->len);
    return r;
  }
  c->cur_off += h->len;
  if ((h->flags & NET_FF_LAST) && c->cur->user) {
    net__rmsg_t *m = c->cur;
    c->cur = NULL;
    p->post.m = NULL;
    p->post.c = NULL;
    p->post.done = 1;
    p->post.len = m->len;
    p->post.link = m->link;
    p->st.payload_recvd += m->len;
    p->st.msgs_recvd++;
    free(m);
    uv_cond_broadcast(&n->cv);
  } else if (h->flags & NET_FF_LAST) {
    net__rmsg_t *m = c->cur;
    c->cur = NULL;
    if (p->rwaiters > 0 && !p->rwait[m->chan] && p->rq_bytes + m->len > 2 * n->cfg.queue_bytes) {
      /* A receiver waits on another channel and this one's unread messages
       * are past the hard bound: the peer floods (see the file comment). */
      n->st.msgs_refused++;
      net__log(n,
               "net: peer %d: %zu bytes unread on other channels while a receiver waits; "
               "link ended",
               c->peer, p->rq_bytes + m->len);
      net__rmsg_free(m);
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
static int on_frame(net__conn_t *c) {
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
    c->state = NET_C_WAIT3;
    return net__send_hs(c, NET_FT_HS2, out, NET_HS2_BYTES);
  case NET_FT_HS2:
    r = net__hs_finish_initiator(c->hs, c->hsbuf, out);
    if (r)
      return r;
    r = net__send_hs(c, NET_FT_HS3, out, NET_HS3_BYTES);
    return r ? r : net__link_up(c);
  case NET_FT_HS3:
    r = net__hs_finish_responder(c->hs, c->hsbuf);
    return r ? r : net__link_up(c);
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
 * a message boundary): READ_CHUNK bytes, parsed by net__read_cb. Runs on the loop
 * thread, which alone touches the parser state, so no lock is needed. */
void net__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  net__conn_t *c = h->data;
  size_t want = READ_CHUNK;
  (void)suggested;
  if (c->have_hdr && c->cur && c->fhave < c->fneed) {
    /* A receiver may take its posted buffer back (net__post_detach) between
     * reads, so the pointer is read under the lock, and the read marked. */
    net_node_t *n = c->node;
    uv_mutex_lock(&n->mu);
    if (c->fdst) {
      size_t left = c->fneed - c->fhave;
      c->in_read = c->cur->user;
      *buf = uv_buf_init((char *)c->fdst + c->fhave, (unsigned)left);
    } else {
      *buf = uv_buf_init(NULL, 0); /* out of memory: net__read_cb gets UV_ENOBUFS */
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
static int frame_done(net__conn_t *c) {
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

/* A strict peer's message is due a timeout after its first bytes came:
 * progress does not move that on (a client sending one byte a second held
 * both parties of a cluster while it liked). The connection's timer, idle
 * once the handshake is over, runs while a message (or a header) is under
 * way, and closes the link when it fires (conn.c, timer_cb). */
static void msg_due(net__conn_t *c) {
  net_node_t *n = c->node;
  int mid = c->cur != NULL || c->hdr_have > 0;
  if (c->state != NET_C_UP || !n->peers[c->peer].lim.strict)
    return;
  if (!mid)
    uv_timer_stop(&c->timer);
  else if (!uv_is_active((uv_handle_t *)&c->timer))
    uv_timer_start(&c->timer, net__timer_cb, (uint64_t)n->cfg.timeout_ms, 0);
}

void net__read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  net__conn_t *c = s->data;
  net_node_t *n = c->node;
  const unsigned char *p = (const unsigned char *)buf->base;
  size_t left;
  uv_mutex_lock(&n->mu);
  if (c->in_read) {
    c->in_read = 0;
    if (c->peer >= 0 && n->peers[c->peer].post.cancelling)
      uv_cond_broadcast(&n->cv);
  }
  if (c->state == NET_C_CLOSING || nread == 0)
    goto out;
  if (c->fmsg && c->have_hdr && !c->fdst) {
    net__conn_fail(c, TANDEM_ENOMEM); /* a detached message found no memory */
    goto out;
  }
  if (nread < 0) {
    int mid = c->hdr_have > 0 || c->cur != NULL;
    net__conn_fail(c, nread == UV_ENOBUFS ? TANDEM_ENOMEM : mid ? TANDEM_EPROTO : TANDEM_ECLOSED);
    goto out;
  }
  left = (size_t)nread;
  c->wire_in += left;
  if (c->state == NET_C_UP)
    n->peers[c->peer].st.wire_recvd += left;
  if (buf->base != (char *)c->rbuf) {
    /* Read in place (net__alloc_cb): ciphertext of the current frame only. */
    c->fhave += left;
    c->cur_prog = uv_hrtime();
    goto out;
  }
  while (left > 0 && c->state != NET_C_CLOSING) {
    int r;
    if (!c->have_hdr) {
      fill(c->hdr_raw, &c->hdr_have, NET_HDR_BYTES, &p, &left);
      if (c->hdr_have < NET_HDR_BYTES)
        break;
      r = on_header(c);
      if (r) {
        net__conn_fail(c, r);
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
        net__conn_fail(c, r);
        break;
      }
    }
  }
  if (c->cur)
    c->cur_prog = uv_hrtime();
out:
  msg_due(c);
  uv_mutex_unlock(&n->mu);
}
