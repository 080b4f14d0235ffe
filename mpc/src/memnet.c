/* memnet.c - the in-memory transport: a hub joining the MPC_NROLES roles of one
 * process, each role driven by its own thread.
 *
 * It sits under the mpc_transport_* wrappers of transport.c exactly where net/'s
 * sockets sit in a deployment, so the protocol, the coordinator and the tests
 * run unchanged on either. The hub holds one mailbox per directed pair
 * (from, to): a FIFO of messages, each a malloc'd copy of what was sent. A send
 * copies and enqueues and never blocks (mailboxes are unbounded: fine for tests
 * and in-process runs, whose messages are bounded by the plan, but it means a
 * sender may run arbitrarily far ahead of its receiver); a receive waits for
 * the next message of its pair, bounded by the hub's timeout. Because a send
 * never waits, an exchange is simply a send followed by a receive and is full
 * duplex at any size. mpc_memnet_kill simulates a role that dies: its own calls
 * fail with TANDEM_ECLOSED, and so does a receive from it that finds nothing
 * left to read, as on a socket whose peer has closed.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "mpc.h"

typedef struct memnet_msg_s {
  struct memnet_msg_s *next;
  size_t len;
  unsigned char data[]; /* len bytes; may hold shares, so wiped before free */
} memnet_msg_t;

typedef struct {
  memnet_msg_t *head, *tail;
} memnet_box_t;

/* The transport handed to a role. It is the first member so that the ops,
 * which receive &ep->t, can get back to the endpoint (and its hub) by a cast. */
typedef struct {
  mpc_transport_t t;
  mpc_memnet_t *hub;
} memnet_ep_t;

/* One mutex guards every mailbox and the dead flags. The critical sections
 * are a few pointer operations (copies are made outside the lock), the hub
 * joins at most five threads exchanging a handful of messages per round, and
 * a single lock lets mpc_memnet_kill flip a flag and wake everyone atomically,
 * with no lock ordering to get wrong; a mutex per mailbox would buy nothing
 * measurable. Waiters sleep on the condition variable of their own role
 * (wake[to]): a send wakes only the role that can consume it. */
struct mpc_memnet_s {
  pthread_mutex_t lock;
  pthread_cond_t wake[MPC_NROLES];            /* on the monotonic clock */
  memnet_box_t box[MPC_NROLES][MPC_NROLES];   /* [from][to] */
  int dead[MPC_NROLES];
  int timeout_ms;                             /* <= 0: wait forever */
  /* tap_lock serialises tap calls (so a tap's context needs no locking of its
   * own) and guards tap and tap_ctx. Lock order: tap_lock, then lock. */
  pthread_mutex_t tap_lock;
  mpc_tap_cb tap;
  void *tap_ctx;
  memnet_ep_t ep[MPC_NROLES];
};

static int role_ok(mpc_role_t r) {
  return (unsigned)r < MPC_NROLES;
}

static void msg_free(memnet_msg_t *m) {
  sodium_memzero(m->data, m->len);
  free(m);
}

/* The absolute monotonic time ms milliseconds from now. */
static int deadline_in(struct timespec *ts, int ms) {
  if (clock_gettime(CLOCK_MONOTONIC, ts) != 0)
    return -errno;
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
  return 0;
}

static int memnet_send(mpc_transport_t *t, mpc_role_t to, const void *buf, size_t len) {
  memnet_ep_t *ep = (memnet_ep_t *)t;
  mpc_memnet_t *hub = ep->hub;
  mpc_role_t from = t->self;
  memnet_msg_t *m;
  mpc_tap_cb tap;

  /* The ops may be called without the mpc_transport_* wrappers, and roles index
   * the mailboxes, so they are checked here too. */
  if (!role_ok(from) || !role_ok(to) || to == from || (buf == NULL && len > 0))
    return TANDEM_EINVAL;
  if (len > SIZE_MAX - sizeof *m)
    return TANDEM_ENOMEM;
  m = malloc(sizeof *m + len);
  if (m == NULL)
    return TANDEM_ENOMEM;
  m->next = NULL;
  m->len = len;
  if (len > 0)
    memcpy(m->data, buf, len);

  /* tap_lock is held from the enqueue until the tap returns: a receiver may
   * take the message at once, but any reply it sends waits for tap_lock, so
   * the tap sees messages in an order consistent with causality. */
  pthread_mutex_lock(&hub->tap_lock);
  pthread_mutex_lock(&hub->lock);
  if (hub->dead[from] || hub->dead[to]) {
    pthread_mutex_unlock(&hub->lock);
    pthread_mutex_unlock(&hub->tap_lock);
    msg_free(m);
    return TANDEM_ECLOSED;
  }
  memnet_box_t *box = &hub->box[from][to];
  if (box->tail != NULL)
    box->tail->next = m;
  else
    box->head = m;
  box->tail = m;
  /* Broadcast, not signal: if a caller broke the one-thread-per-role rule,
   * a signal could wake a thread waiting for another pair and be lost. */
  pthread_cond_broadcast(&hub->wake[to]);
  pthread_mutex_unlock(&hub->lock);

  /* Outside the hub lock, so a slow tap never stalls receivers; buf is still
   * the caller's and valid until we return. */
  tap = hub->tap;
  if (tap != NULL)
    tap(hub->tap_ctx, from, to, buf, len);
  pthread_mutex_unlock(&hub->tap_lock);
  return 0;
}

static int memnet_recv(mpc_transport_t *t, mpc_role_t from, void *buf, size_t len) {
  memnet_ep_t *ep = (memnet_ep_t *)t;
  mpc_memnet_t *hub = ep->hub;
  mpc_role_t self = t->self;
  memnet_msg_t *m = NULL;
  struct timespec deadline;
  int expired = 0, rc = 0;

  if (!role_ok(self) || !role_ok(from) || from == self || (buf == NULL && len > 0))
    return TANDEM_EINVAL;
  /* One deadline for the whole call, so spurious wakeups cannot extend it. */
  if (hub->timeout_ms > 0) {
    rc = deadline_in(&deadline, hub->timeout_ms);
    if (rc != 0)
      return rc;
  }

  pthread_mutex_lock(&hub->lock);
  memnet_box_t *box = &hub->box[from][self];
  for (;;) {
    if (hub->dead[self]) {
      rc = TANDEM_ECLOSED;
      break;
    }
    /* Messages sent before the sender died are still delivered, as a socket
     * delivers buffered data before reporting the close. */
    if (box->head != NULL) {
      m = box->head;
      box->head = m->next;
      if (box->head == NULL)
        box->tail = NULL;
      break;
    }
    if (hub->dead[from]) {
      rc = TANDEM_ECLOSED;
      break;
    }
    /* Checked after the mailbox, so a message that arrived right at the
     * deadline is still taken. */
    if (expired) {
      rc = TANDEM_ETIMEDOUT;
      break;
    }
    int e;
    if (hub->timeout_ms > 0)
      e = pthread_cond_timedwait(&hub->wake[self], &hub->lock, &deadline);
    else
      e = pthread_cond_wait(&hub->wake[self], &hub->lock);
    if (e == ETIMEDOUT) {
      expired = 1;
    } else if (e != 0) {
      rc = -e;
      break;
    }
  }
  pthread_mutex_unlock(&hub->lock);

  if (m == NULL)
    return rc;
  /* Sizes follow from the public plan, so a mismatch means the two sides run
   * different plans: the message is dropped and the caller told. */
  if (m->len != len) {
    rc = TANDEM_EPROTO;
  } else if (len > 0) {
    memcpy(buf, m->data, len);
  }
  msg_free(m);
  return rc;
}

static int memnet_exchange(mpc_transport_t *t, mpc_role_t peer, const void *sbuf,
                           size_t slen, void *rbuf, size_t rlen) {
  /* A send never blocks, so both sides may send first and then wait. */
  int rc = memnet_send(t, peer, sbuf, slen);
  if (rc != 0)
    return rc;
  return memnet_recv(t, peer, rbuf, rlen);
}

/* Closing an endpoint is its role leaving the hub: the same as a kill, so a
 * peer still waiting on it gets TANDEM_ECLOSED rather than a timeout. The
 * endpoint's memory stays the hub's until mpc_memnet_free. */
static void memnet_close(mpc_transport_t *t) {
  if (t == NULL)
    return;
  mpc_memnet_kill(((memnet_ep_t *)t)->hub, t->self);
}

static const mpc_transport_ops_t memnet_ops = {
  .send = memnet_send,
  .recv = memnet_recv,
  .exchange = memnet_exchange,
  .close = memnet_close,
};

int mpc_memnet_new(mpc_memnet_t **out, int timeout_ms) {
  pthread_condattr_t ca;
  mpc_memnet_t *hub;
  int e, r = 0;

  if (out == NULL)
    return TANDEM_EINVAL;
  *out = NULL;
  hub = calloc(1, sizeof *hub);
  if (hub == NULL)
    return TANDEM_ENOMEM;

  e = pthread_mutex_init(&hub->lock, NULL);
  if (e != 0)
    goto fail_hub;
  e = pthread_mutex_init(&hub->tap_lock, NULL);
  if (e != 0)
    goto fail_lock;
  e = pthread_condattr_init(&ca);
  if (e != 0)
    goto fail_tap_lock;
  /* Timeouts are measured on the monotonic clock so that a wall-clock step
   * (NTP, a test machine's clock) neither fires nor stretches them. */
  e = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  if (e != 0)
    goto fail_attr;
  for (r = 0; r < MPC_NROLES; r++) {
    e = pthread_cond_init(&hub->wake[r], &ca);
    if (e != 0)
      goto fail_conds;
  }
  pthread_condattr_destroy(&ca);

  hub->timeout_ms = timeout_ms;
  for (r = 0; r < MPC_NROLES; r++) {
    hub->ep[r].hub = hub;
    hub->ep[r].t.ops = &memnet_ops;
    hub->ep[r].t.self = (mpc_role_t)r;
    hub->ep[r].t.phase = MPC_PHASE_SETUP;
    /* stats are zero from calloc */
  }
  *out = hub;
  return 0;

fail_conds:
  while (r-- > 0)
    pthread_cond_destroy(&hub->wake[r]);
fail_attr:
  pthread_condattr_destroy(&ca);
fail_tap_lock:
  pthread_mutex_destroy(&hub->tap_lock);
fail_lock:
  pthread_mutex_destroy(&hub->lock);
fail_hub:
  free(hub);
  return -e;
}

mpc_transport_t *mpc_memnet_endpoint(mpc_memnet_t *hub, mpc_role_t role) {
  if (hub == NULL || !role_ok(role))
    return NULL;
  return &hub->ep[role].t;
}

void mpc_memnet_set_tap(mpc_memnet_t *hub, mpc_tap_cb tap, void *ctx) {
  if (hub == NULL)
    return;
  pthread_mutex_lock(&hub->tap_lock);
  hub->tap = tap;
  hub->tap_ctx = ctx;
  pthread_mutex_unlock(&hub->tap_lock);
}

void mpc_memnet_kill(mpc_memnet_t *hub, mpc_role_t role) {
  if (hub == NULL || !role_ok(role))
    return;
  pthread_mutex_lock(&hub->lock);
  hub->dead[role] = 1;
  /* Every role may be affected: the dead one, and any role waiting for a
   * message from it. Waiters recheck their condition and go back to sleep
   * if it does not concern them. */
  for (int r = 0; r < MPC_NROLES; r++)
    pthread_cond_broadcast(&hub->wake[r]);
  pthread_mutex_unlock(&hub->lock);
}

void mpc_memnet_free(mpc_memnet_t *hub) {
  if (hub == NULL)
    return;
  /* Undelivered messages may hold shares: each is wiped as it is freed. */
  for (int f = 0; f < MPC_NROLES; f++) {
    for (int to = 0; to < MPC_NROLES; to++) {
      memnet_msg_t *m = hub->box[f][to].head;
      while (m != NULL) {
        memnet_msg_t *next = m->next;
        msg_free(m);
        m = next;
      }
    }
  }
  for (int r = 0; r < MPC_NROLES; r++)
    pthread_cond_destroy(&hub->wake[r]);
  pthread_mutex_destroy(&hub->tap_lock);
  pthread_mutex_destroy(&hub->lock);
  free(hub);
}
