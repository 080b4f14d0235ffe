/* mem.c - net's in-memory backend: nodes of one process linked without
 * sockets, for tests that run a whole cluster in one process where sockets
 * are not the point (tests/mpc/cluster_harness.h's ch_opts_t.mem). A node
 * is a memory node when its listen host, or the host of a peer it is made
 * with, has the form "mem:<name>"; it then listens on (name, port) in a
 * registry of this process, and net_connect finds its peer there. The
 * public calls of net.h dispatch here at their top (node.c, recv.c,
 * write.c: one test of node->mem each), so callers see the same API.
 *
 * Kept from the socket path, because the cluster services rely on it: a
 * peer's links are numbered (net_stats_t.links, the net__rmsg_t.link of its
 * messages), a new link replaces the old one at both ends (calls bound to
 * the old one fail with TANDEM_ECONNRESET, its other end sees
 * TANDEM_ECLOSED) and drops what the earlier links left unread; closing and
 * freeing end links with the same codes; every wait ends at its timeout on
 * the real clock (uv_hrtime, as node.c); queue_bytes bounds a peer's unread
 * messages (a sender waits while they are over it and nobody waits on the
 * peer, as a socket's reader pauses), and the receiver's limits (channels,
 * max_msg, the bound of read.c's admit; not its flood guard, see refuse) end the link with
 * TANDEM_EPROTO and the same log lines; identity is by public key: a node
 * accepts a link only from a key it declared, and the dialler only to the
 * key it declared for that peer (TANDEM_EAUTH otherwise).
 * Left out: the handshake and the AES-GCM framing. Both ends are in one
 * address space, so there is no wire to authenticate or encrypt; the key
 * check stands in for the handshake, the secret key is kept (wiped at free)
 * but unused, and the wire counters count payload bytes. No emulation
 * (TANDEM_EINVAL if asked for), no half-open connections, no loop thread:
 * a message is copied on the sender's thread straight into the receiver's
 * queue.
 *
 * Locking: one mutex for every memory node of the process (g_mu), not each
 * node's own: a link changes the state of two nodes at once (a connect
 * replaces the old link at the acceptor and ends it at that link's other
 * end, a third node), and one lock makes each such change atomic with no
 * lock order to keep. Each node has its own condition variable, on which
 * its callers wait and which is broadcast only for a change at that node (a
 * message queued there, a link of it up or down, room made at the other
 * end of its link): one for all woke every caller of every cluster in the
 * process at each message. The log hook is called with g_mu held, as the
 * socket path calls it with node->mu held, so it must not call into any
 * memory node.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "net_int.h"

#define MEM_PREFIX "mem:"
#define MEM_NAME 64
#define MEM_PORT0 40000u /* the first port given to a node that asks for 0 */

typedef struct net__mlink_s {
  net_node_t *end[2]; /* [0] dialled, [1] accepted */
  int id[2];          /* the id under which end[i] knows end[1 - i] */
  uint64_t gen[2];    /* its number as a link of that peer at end[i] */
} mlink_t;

struct net__mnode_s {
  net_node_t *node;
  uv_cond_t cv;       /* its callers wait on it, under g_mu */
  int cv_ok;
  net__mnode_t *next; /* the registry of listening nodes */
  char name[MEM_NAME]; /* "" for a node that only dials out */
  struct {
    int has;
    char name[MEM_NAME];
    uint16_t port;
  } addr[NET_MAX_PEERS];
  mlink_t *link[NET_MAX_PEERS];
};

static uv_once_t g_once = UV_ONCE_INIT;
static uv_mutex_t g_mu;
static net__mnode_t *g_nodes;
static uint16_t g_next_port = MEM_PORT0;

static void g_init(void) {
  if (uv_mutex_init(&g_mu) != 0)
    abort(); /* a pthread mutex without attributes: cannot fail on Linux */
}

static void g_lock(void) {
  uv_once(&g_once, g_init);
  uv_mutex_lock(&g_mu);
}

static void g_unlock(void) {
  uv_mutex_unlock(&g_mu);
}

/* As net__wait_until: a caller of n waits under g_mu. */
static int wait_until(net_node_t *n, uint64_t deadline) {
  uint64_t now = uv_hrtime();
  if (now >= deadline)
    return 1;
  (void)uv_cond_timedwait(&n->mem->cv, &g_mu, deadline - now);
  return 0;
}

static void wake(net_node_t *n) {
  uv_cond_broadcast(&n->mem->cv);
}

/* Wakes the node at the other end of n's link to peer id, if any: a sender
 * there may wait for room at n. */
static void wake_sender(net_node_t *n, int id) {
  mlink_t *l = n->mem->link[id];
  if (l)
    wake(l->end[l->end[0] == n && l->id[0] == id ? 1 : 0]);
}

int net__mem_host(const char *host) {
  return host != NULL && strncmp(host, MEM_PREFIX, strlen(MEM_PREFIX)) == 0;
}

/* The name of a "mem:<name>" host into out; TANDEM_EINVAL if it is not one
 * or its name is empty or too long. */
static int host_name(const char *host, char out[MEM_NAME]) {
  size_t k;
  if (!net__mem_host(host))
    return TANDEM_EINVAL;
  host += strlen(MEM_PREFIX);
  k = strlen(host);
  if (k == 0 || k >= MEM_NAME)
    return TANDEM_EINVAL;
  memcpy(out, host, k + 1);
  return 0;
}

static net_node_t *lookup(const char *name, uint16_t port) {
  for (net__mnode_t *m = g_nodes; m; m = m->next)
    if (m->node->port == port && strcmp(m->name, name) == 0)
      return m->node;
  return NULL;
}

/* Ends link l at both ends: err[i] is what later calls on it return at
 * end[i]; `by` is the end that ends it, whose other end logs the loss as the
 * socket path's reader does (2: both ends know, neither logs). */
static void link_end(mlink_t *l, int by, int err0, int err1) {
  int err[2] = {err0, err1};
  for (int i = 0; i < 2; i++) {
    net_node_t *n = l->end[i];
    if (n->mem->link[l->id[i]] != l)
      continue;
    n->mem->link[l->id[i]] = NULL;
    n->peers[l->id[i]].err = err[i];
    if (i != by && by != 2) {
      if (err[i] != TANDEM_ECLOSED)
        n->st.links_failed++;
      net__log(n, "net: link to peer %d ended: %s", l->id[i], tandem_strerror(err[i]));
    }
  }
  wake(l->end[0]);
  wake(l->end[1]);
  free(l);
}

/* What the earlier links of peer id left unread is dropped (conn.c's
 * drop_unread, whose log line this keeps). */
static void drop_unread(net_node_t *n, int id) {
  net__peer_t *p = &n->peers[id];
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

/* Makes l the link of its peer at end i (net__link_up's bookkeeping). */
static void link_up(mlink_t *l, int i) {
  net_node_t *n = l->end[i];
  int id = l->id[i];
  net__peer_t *p = &n->peers[id];
  mlink_t *old = n->mem->link[id];
  char hint[17];
  if (old) {
    int k = old->end[0] == n && old->id[0] == id ? 0 : 1;
    net__log(n, "net: peer %d: new link replaces the old one", id);
    link_end(old, k, k == 0 ? TANDEM_ECONNRESET : TANDEM_ECLOSED,
             k == 1 ? TANDEM_ECONNRESET : TANDEM_ECLOSED);
  }
  drop_unread(n, id);
  n->mem->link[id] = l;
  p->err = 0;
  p->gen++;
  l->gen[i] = p->gen;
  p->up_seq = ++n->up_seq;
  p->st.links++;
  n->st.handshakes_ok++;
  net__key_hint(hint, p->pk);
  net__log(n, "net: link up with peer %d (key %s..., %s)", id, hint, i == 0 ? "outbound" : "inbound");
}

/* ---- nodes ---------------------------------------------------------------- */

int net__mem_config(const net_config_t *cfg) {
  if (net__mem_host(cfg->listen_host))
    return 1;
  for (size_t i = 0; i < cfg->npeers; i++)
    if (net__mem_host(cfg->peers[i].host))
      return 1;
  return 0;
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
  if (n->mem && n->mem->cv_ok)
    uv_cond_destroy(&n->mem->cv);
  free(n->mem);
  free(n);
}

/* Takes (name, port) in the registry; port 0 gets the next free one. */
static int listen_on(net_node_t *n, const char *name, uint16_t port) {
  if (port == 0) {
    for (unsigned k = 0; k < 65536u - MEM_PORT0 && !port; k++) {
      uint16_t c = g_next_port;
      g_next_port = g_next_port == 65535 ? MEM_PORT0 : (uint16_t)(g_next_port + 1);
      if (!lookup(name, c))
        port = c;
    }
    if (!port)
      return TANDEM_EADDRINUSE;
  } else if (lookup(name, port)) {
    return TANDEM_EADDRINUSE;
  }
  memcpy(n->mem->name, name, strlen(name) + 1);
  n->port = port;
  n->mem->next = g_nodes;
  g_nodes = n->mem;
  return 0;
}

int net__mem_node_new(net_node_t **out, const net_config_t *cfg) {
  char name[MEM_NAME];
  net_node_t *n;
  int r;
  if ((cfg->listen_host && host_name(cfg->listen_host, name) != 0) || cfg->emu_delay_us ||
      cfg->emu_rate_bps)
    return TANDEM_EINVAL;
  if (sodium_init() < 0)
    return TANDEM_ECRYPTO;
  n = calloc(1, sizeof(*n));
  if (!n)
    return TANDEM_ENOMEM;
  n->mem = calloc(1, sizeof(*n->mem));
  n->keys = sodium_malloc(2 * NET_KEY_BYTES);
  if (!n->mem || !n->keys || uv_cond_init(&n->mem->cv) != 0) {
    node_release(n);
    return TANDEM_ENOMEM;
  }
  n->mem->cv_ok = 1;
  n->mem->node = n;
  memcpy(n->keys, cfg->pk, NET_KEY_BYTES);
  memcpy(n->keys + NET_KEY_BYTES, cfg->sk, NET_KEY_BYTES);
  net__config_defaults(&n->cfg, cfg);
  for (int i = 0; i < NET_MAX_PEERS; i++)
    n->peers[i].lim.max_msg = n->cfg.max_msg;
  for (size_t i = 0; i < cfg->npeers; i++) {
    const net_peer_decl_t *d = &cfg->peers[i];
    r = net_peer_add(n, d->id, d->host, d->port, d->pk); /* n->mem is set: mem.c's */
    if (r == 0)
      r = net_peer_limits(n, d->id, &d->limits);
    if (r) {
      node_release(n);
      return r;
    }
  }
  if (cfg->listen_host) {
    g_lock();
    r = listen_on(n, name, cfg->listen_port);
    g_unlock();
    if (r) {
      node_release(n);
      return r;
    }
  }
  *out = n;
  return 0;
}

void net__mem_node_free(net_node_t *n) {
  g_lock();
  for (net__mnode_t **pp = &g_nodes; *pp; pp = &(*pp)->next)
    if (*pp == n->mem) {
      *pp = n->mem->next;
      break;
    }
  for (int id = 0; id < NET_MAX_PEERS; id++) {
    mlink_t *l = n->mem->link[id];
    if (l)
      link_end(l, l->end[0] == n ? 0 : 1, TANDEM_ECLOSED, TANDEM_ECLOSED);
  }
  g_unlock();
  node_release(n);
}

void net__mem_node_stats(net_node_t *n, net_node_stats_t *out) {
  g_lock();
  *out = n->st;
  g_unlock();
}

/* ---- peers ---------------------------------------------------------------- */

int net__mem_peer_add(net_node_t *n, int id, const char *host, uint16_t port,
                      const unsigned char *pk) {
  char name[MEM_NAME];
  net__peer_t *p;
  if (host && host_name(host, name) != 0)
    return TANDEM_EINVAL; /* a memory node has no sockets */
  g_lock();
  for (int i = 0; i < NET_MAX_PEERS; i++) {
    if (i != id && n->peers[i].declared && sodium_memcmp(n->peers[i].pk, pk, NET_KEY_BYTES) == 0) {
      g_unlock();
      return TANDEM_EINVAL;
    }
  }
  p = &n->peers[id];
  if (p->declared && n->mem->link[id] && sodium_memcmp(p->pk, pk, NET_KEY_BYTES) != 0) {
    mlink_t *l = n->mem->link[id];
    link_end(l, l->end[0] == n ? 0 : 1, TANDEM_ECLOSED, TANDEM_ECLOSED);
  }
  p->declared = 1;
  memcpy(p->pk, pk, NET_KEY_BYTES);
  n->mem->addr[id].has = host != NULL;
  if (host) {
    memcpy(n->mem->addr[id].name, name, strlen(name) + 1);
    n->mem->addr[id].port = port;
  }
  g_unlock();
  return 0;
}

int net__mem_peer_limits(net_node_t *n, int id, const net_limits_t *lim) {
  g_lock();
  n->peers[id].lim = *lim;
  if (!lim->max_msg || lim->max_msg > n->cfg.max_msg)
    n->peers[id].lim.max_msg = n->cfg.max_msg;
  g_unlock();
  return 0;
}

/* A dial that fails, logged and counted as the socket path's handshake
 * failures are. */
static int connect_fail(net_node_t *n, int id, int err) {
  n->st.handshakes_failed++;
  net__log(n, "net: handshake failed (outbound, peer %d): %s", id, tandem_strerror(err));
  return err;
}

int net__mem_connect(net_node_t *n, int id) {
  net_node_t *b;
  mlink_t *l;
  int j = -1;
  g_lock();
  if (!n->peers[id].declared || !n->mem->addr[id].has) {
    g_unlock();
    return TANDEM_EINVAL;
  }
  b = lookup(n->mem->addr[id].name, n->mem->addr[id].port);
  if (!b || b == n) {
    int r = connect_fail(n, id, b ? TANDEM_EINVAL : -ECONNREFUSED);
    g_unlock();
    return r;
  }
  /* The keys, as the handshake would check them: the listener must hold
   * the key we declared for it, and must have declared ours. */
  if (sodium_memcmp(b->keys, n->peers[id].pk, NET_KEY_BYTES) != 0) {
    int r = connect_fail(n, id, TANDEM_EAUTH);
    g_unlock();
    return r;
  }
  for (int i = 0; i < NET_MAX_PEERS && j < 0; i++)
    if (b->peers[i].declared && sodium_memcmp(b->peers[i].pk, n->keys, NET_KEY_BYTES) == 0)
      j = i;
  if (j < 0) {
    char hint[17];
    int r;
    net__key_hint(hint, n->keys);
    net__log(b, "net: rejected inbound handshake from key %s...: %s", hint, "unknown key");
    b->st.handshakes_failed++;
    r = connect_fail(n, id, TANDEM_EAUTH);
    g_unlock();
    return r;
  }
  l = calloc(1, sizeof(*l));
  if (!l) {
    g_unlock();
    return TANDEM_ENOMEM;
  }
  /* The two were linked already: the new link replaces the old one at both
   * ends, as over sockets (where each end logs it). */
  if (n->mem->link[id] && n->mem->link[id] == b->mem->link[j]) {
    net__log(n, "net: peer %d: new link replaces the old one", id);
    net__log(b, "net: peer %d: new link replaces the old one", j);
    link_end(n->mem->link[id], 2, TANDEM_ECONNRESET, TANDEM_ECONNRESET);
  }
  *l = (mlink_t){{n, b}, {id, j}, {0, 0}};
  link_up(l, 0);
  link_up(l, 1);
  wake(n);
  wake(b);
  g_unlock();
  return 0;
}

int net__mem_accept(net_node_t *n, int id, int timeout_ms) {
  uint64_t deadline;
  int r = 0;
  g_lock();
  deadline = net__deadline_of(net__timeout_or_default(n, timeout_ms));
  while (!n->mem->link[id]) {
    if (wait_until(n, deadline)) {
      r = TANDEM_ETIMEDOUT;
      break;
    }
  }
  g_unlock();
  return r;
}

int net__mem_accept_any(net_node_t *n, int *id, int timeout_ms) {
  uint64_t deadline;
  int r = TANDEM_ETIMEDOUT;
  g_lock();
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
    if (wait_until(n, deadline))
      break;
  }
  g_unlock();
  return r;
}

int net__mem_peer_up(net_node_t *n, int id) {
  int up;
  g_lock();
  up = n->mem->link[id] != NULL;
  g_unlock();
  return up;
}

/* Nothing waits to be flushed: a message is in its receiver's queue when
 * its send returns. */
int net__mem_peer_close(net_node_t *n, int id) {
  mlink_t *l;
  g_lock();
  l = n->mem->link[id];
  if (l) {
    int k = l->end[0] == n && l->id[0] == id ? 0 : 1;
    net__log(n, "net: closing link to peer %d", id);
    link_end(l, k, TANDEM_ECLOSED, TANDEM_ECLOSED);
  }
  g_unlock();
  return 0;
}

void net__mem_peer_stats(net_node_t *n, int id, net_stats_t *out) {
  g_lock();
  *out = n->peers[id].st;
  g_unlock();
}

/* ---- messages ------------------------------------------------------------- */

/* read.c's checks of a message at its receiver b (peer jd there): admit's
 * at the first header. NULL if it may be queued, else why not (logged,
 * counted). */
static const char *refuse(net_node_t *b, int jd, uint8_t chan, size_t len) {
  net__peer_t *q = &b->peers[jd];
  size_t bound = q->lim.max_msg + b->cfg.queue_bytes;
  const char *why = NULL;
  if (q->lim.chans && (chan > 63 || !(q->lim.chans >> chan & 1)))
    why = "a channel this peer does not use";
  else if (len > q->lim.max_msg)
    why = "longer than this peer's max_msg";
  else if (q->rq_bytes > bound || len > bound - q->rq_bytes)
    why = "over the bound of its unread messages";
  if (why) {
    b->st.msgs_refused++;
    net__log(b,
             "net: peer %d: message of %zu bytes on channel %u refused (%s; %zu bytes unread, "
             "bound %zu); link ended",
             jd, len, (unsigned)chan, why, q->rq_bytes, bound);
    return why;
  }
  /* No flood guard (read.c's, at a message's last frame): here a whole
   * message lands at once, while a receiver just woken for the message
   * before it (a QUERY on the control channel) still counts as waiting on
   * that channel, so the guard ended a healthy link under a large part (a
   * reviewer's reproducer: 49 of 50 runs). The bound above still limits
   * what a peer leaves unread. */
  return NULL;
}

/* Queues m at the far end of link l (this node is end i, peer id). */
static void deliver(net_node_t *n, int id, mlink_t *l, int i, net__rmsg_t *m) {
  net_node_t *b = l->end[1 - i];
  net__peer_t *p = &n->peers[id], *q = &b->peers[l->id[1 - i]];
  m->link = l->gen[1 - i];
  if (q->rq_tail)
    q->rq_tail->next = m;
  else
    q->rq_head = m;
  q->rq_tail = m;
  q->rq_bytes += m->len;
  q->st.payload_recvd += m->len;
  q->st.wire_recvd += m->len;
  q->st.msgs_recvd++;
  p->st.payload_sent += m->len;
  p->st.wire_sent += m->len;
  p->st.msgs_sent++;
  wake(b);
}

int net__mem_send(net_node_t *n, int id, uint64_t link, uint8_t chan, const void *buf,
                  size_t len) {
  net__peer_t *p = &n->peers[id];
  net__rmsg_t *m = calloc(1, sizeof(*m));
  uint64_t deadline, gen;
  mlink_t *l;
  int r = 0, i;
  /* The copy is made before the lock: a large message does not hold every
   * memory node while it is copied. */
  if (m)
    m->data = malloc(len ? len : 1);
  if (!m || !m->data) {
    free(m);
    return TANDEM_ENOMEM;
  }
  if (len)
    memcpy(m->data, buf, len);
  m->len = len;
  m->chan = chan;
  g_lock();
  deadline = net__deadline_of(n->cfg.timeout_ms);
  gen = link ? link : p->gen;
  for (;;) {
    net__peer_t *q;
    l = n->mem->link[id];
    if (!l || p->gen != gen) {
      r = !l ? net__link_error(p) : TANDEM_ECONNRESET;
      goto out;
    }
    i = l->end[0] == n && l->id[0] == id ? 0 : 1;
    q = &l->end[1 - i]->peers[l->id[1 - i]];
    /* The receiver's unread messages over its bound, and nobody waiting
     * there: a socket's reader would pause, and its sender wait. */
    if (q->rq_bytes <= l->end[1 - i]->cfg.queue_bytes || q->rwaiters > 0)
      break;
    if (wait_until(n, deadline)) {
      r = TANDEM_ETIMEDOUT;
      goto out;
    }
  }
  if (refuse(l->end[1 - i], l->id[1 - i], chan, len)) {
    /* As over a socket, the send itself succeeded: the link's end is what
     * the next call on it reports. */
    link_end(l, 1 - i, i == 0 ? TANDEM_ECLOSED : TANDEM_EPROTO,
             i == 0 ? TANDEM_EPROTO : TANDEM_ECLOSED);
    goto out;
  }
  deliver(n, id, l, i, m);
  m = NULL;
out:
  g_unlock();
  net__rmsg_free(m);
  return r;
}

/* Unlinks and returns the first queued message of chan from p that arrived
 * on link (0: on any link), or NULL (recv.c's dequeue). */
static net__rmsg_t *dequeue(net_node_t *n, int id, uint64_t link, uint8_t chan) {
  net__peer_t *p = &n->peers[id];
  net__rmsg_t *prev = NULL;
  for (net__rmsg_t **pp = &p->rq_head; *pp; prev = *pp, pp = &(*pp)->next) {
    net__rmsg_t *m = *pp;
    if (m->chan != chan || (link != 0 && m->link != link))
      continue;
    *pp = m->next;
    if (p->rq_tail == m)
      p->rq_tail = prev;
    p->rq_bytes -= m->len;
    wake_sender(n, id); /* it may wait for room */
    return m;
  }
  return NULL;
}

/* recv.c's take_msg without a posted buffer: the next message of chan from
 * peer id (on link, 0: any), waiting up to timeout_ms. */
static int take(net_node_t *n, int id, uint64_t link, uint8_t chan, int timeout_ms,
                net__rmsg_t **out) {
  net__peer_t *p = &n->peers[id];
  uint64_t deadline, gen;
  int r = 0;
  *out = NULL;
  g_lock();
  deadline = net__deadline_of(net__timeout_or_default(n, timeout_ms));
  gen = link ? link : p->gen;
  for (;;) {
    if ((*out = dequeue(n, id, link, chan)) != NULL)
      break;
    if (p->gen != gen) {
      r = TANDEM_ECONNRESET;
      break;
    }
    if (!n->mem->link[id]) {
      r = net__link_error(p);
      break;
    }
    /* A waiting receiver lets senders past the queue bound (read.c). */
    p->rwaiters++;
    p->rwait[chan]++;
    wake_sender(n, id);
    r = wait_until(n, deadline);
    p->rwaiters--;
    p->rwait[chan]--;
    if (r) {
      r = TANDEM_ETIMEDOUT;
      break;
    }
  }
  g_unlock();
  return r;
}

int net__mem_take(net_node_t *n, int id, uint64_t link, uint8_t chan, size_t cap,
                  unsigned char **buf, size_t *len, int timeout_ms) {
  net__rmsg_t *m;
  int r = take(n, id, link, chan, timeout_ms, &m);
  if (r)
    return r;
  if (m->len > cap) {
    net__rmsg_free(m);
    return TANDEM_EPROTO;
  }
  *buf = m->data; /* the caller wipes and frees it */
  *len = m->len;
  m->data = NULL;
  net__rmsg_free(m);
  return 0;
}

int net__mem_recv(net_node_t *n, int id, uint8_t chan, void *buf, size_t cap, size_t *len,
                  int timeout_ms) {
  net__rmsg_t *m;
  int r = take(n, id, 0, chan, timeout_ms, &m);
  if (r)
    return r;
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

int net__mem_exchange(net_node_t *n, int id, const void *sbuf, size_t slen, void *rbuf,
                      size_t rlen) {
  size_t got = 0;
  int r = net__mem_send(n, id, 0, 0, sbuf, slen);
  if (r == 0)
    r = net__mem_recv(n, id, 0, rbuf, rlen, &got, NET_TIMEOUT_DEFAULT);
  if (r == 0 && got != rlen)
    r = TANDEM_EPROTO;
  return r;
}
