/* test_memnet.c - Check suite for the in-memory transport (mpc/src/memnet.c)
 * and the counting wrappers of mpc/src/transport.c.
 *
 * Roles run as threads of the test process, as the protocol tests run them:
 * per-pair FIFO order, full-duplex exchanges of large buffers, length
 * mismatches, timeouts, a role that dies while others wait on it, the tap, the
 * byte and round counters, argument checks, and freeing a hub that still holds
 * messages (a leak would show under ASan). Every blocking test uses a finite
 * hub timeout, so a bug ends in a failed assertion rather than a hang.
 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpc.h"
#include "../test_rand.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A deterministic byte pattern per (stream, index), so a receiver can check
 * a message without sharing a buffer with the sender. */
static void fill(unsigned char *buf, size_t len, unsigned seed) {
  uint64_t x = seed;
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char)test_splitmix64(&x);
}

static int check_fill(const unsigned char *buf, size_t len, unsigned seed) {
  unsigned char *want = malloc(len ? len : 1);
  if (want == NULL)
    return 0;
  fill(want, len, seed);
  int ok = len == 0 || memcmp(buf, want, len) == 0;
  free(want);
  return ok;
}

static mpc_memnet_t *hub_new(int timeout_ms) {
  mpc_memnet_t *hub = NULL;
  ck_assert_int_eq(mpc_memnet_new(&hub, timeout_ms), 0);
  ck_assert_ptr_nonnull(hub);
  return hub;
}

/* ---- a role thread running one exchange --------------------------------- */

typedef struct {
  mpc_transport_t *t;
  mpc_role_t peer;
  const void *sbuf;
  size_t slen;
  void *rbuf;
  size_t rlen;
  int reps;
  int rc;
} xchg_t;

static void *xchg_main(void *arg) {
  xchg_t *x = arg;
  x->rc = 0;
  for (int i = 0; i < x->reps && x->rc == 0; i++)
    x->rc = mpc_transport_exchange(x->t, x->peer, x->sbuf, x->slen, x->rbuf, x->rlen);
  return NULL;
}

/* Runs reps exchanges between roles a and b, each in its own thread, at once. */
static void run_pair(mpc_memnet_t *hub, mpc_role_t a, mpc_role_t b, const void *sa,
                     size_t la, void *ra, const void *sb, size_t lb, void *rb, int reps) {
  xchg_t xa = {mpc_memnet_endpoint(hub, a), b, sa, la, ra, lb, reps, -1};
  xchg_t xb = {mpc_memnet_endpoint(hub, b), a, sb, lb, rb, la, reps, -1};
  pthread_t ta, tb;
  ck_assert_int_eq(pthread_create(&ta, NULL, xchg_main, &xa), 0);
  ck_assert_int_eq(pthread_create(&tb, NULL, xchg_main, &xb), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  ck_assert_msg(xa.rc == 0, "%s", tandem_err_name(xa.rc));
  ck_assert_msg(xb.rc == 0, "%s", tandem_err_name(xb.rc));
}

/* ---- order -------------------------------------------------------------- */

#define ORDER_N 300

typedef struct {
  mpc_transport_t *t;
  unsigned stream;
  int rc;
} sender_t;

static size_t order_len(unsigned i) {
  return (i * 37u) % 200u; /* includes empty messages */
}

static void *sender_main(void *arg) {
  sender_t *s = arg;
  unsigned char buf[256];
  s->rc = 0;
  for (unsigned i = 0; i < ORDER_N && s->rc == 0; i++) {
    size_t len = order_len(i);
    fill(buf, len, s->stream * 100000u + i);
    s->rc = mpc_transport_send(s->t, MPC_P0, buf, len);
  }
  return NULL;
}

START_TEST(test_order) {
  mpc_memnet_t *hub = hub_new(5000);
  mpc_transport_t *p0 = mpc_memnet_endpoint(hub, MPC_P0);
  sender_t s1 = {mpc_memnet_endpoint(hub, MPC_P1), 1, -1};
  sender_t sd = {mpc_memnet_endpoint(hub, MPC_DEALER), 2, -1};
  pthread_t t1, td;
  ck_assert_int_eq(pthread_create(&t1, NULL, sender_main, &s1), 0);
  ck_assert_int_eq(pthread_create(&td, NULL, sender_main, &sd), 0);
  /* The two senders race; each pair's mailbox must still be in order. */
  unsigned char buf[256];
  for (unsigned i = 0; i < ORDER_N; i++) {
    size_t len = order_len(i);
    ck_assert_int_eq(mpc_transport_recv(p0, MPC_DEALER, buf, len), 0);
    ck_assert_msg(check_fill(buf, len, 2u * 100000u + i), "dealer msg %u", i);
    ck_assert_int_eq(mpc_transport_recv(p0, MPC_P1, buf, len), 0);
    ck_assert_msg(check_fill(buf, len, 1u * 100000u + i), "P1 msg %u", i);
  }
  pthread_join(t1, NULL);
  pthread_join(td, NULL);
  ck_assert_int_eq(s1.rc, 0);
  ck_assert_int_eq(sd.rc, 0);
  mpc_memnet_free(hub);
}
END_TEST

/* ---- full duplex -------------------------------------------------------- */

START_TEST(test_exchange_large) {
  const size_t n = (size_t)8 << 20;
  mpc_memnet_t *hub = hub_new(10000);
  unsigned char *s0 = malloc(n), *s1 = malloc(n), *r0 = malloc(n), *r1 = malloc(n);
  ck_assert(s0 && s1 && r0 && r1);
  fill(s0, n, 10);
  fill(s1, n, 11);
  mpc_memnet_endpoint(hub, MPC_P0)->phase = MPC_PHASE_ONLINE;
  mpc_memnet_endpoint(hub, MPC_P1)->phase = MPC_PHASE_ONLINE;
  /* Both sides send 8 MiB first and only then receive: must not deadlock. */
  run_pair(hub, MPC_P0, MPC_P1, s0, n, r0, s1, n, r1, 3);
  ck_assert(check_fill(r0, n, 11));
  ck_assert(check_fill(r1, n, 10));
  const mpc_stats_t *st = &mpc_memnet_endpoint(hub, MPC_P0)->stats;
  ck_assert_uint_eq(st->rounds[MPC_PHASE_ONLINE], 3);
  ck_assert_uint_eq(st->sent[MPC_P1][MPC_PHASE_ONLINE], 3 * (uint64_t)n);
  ck_assert_uint_eq(st->recvd[MPC_P1][MPC_PHASE_ONLINE], 3 * (uint64_t)n);
  free(s0);
  free(s1);
  free(r0);
  free(r1);
  mpc_memnet_free(hub);
}
END_TEST

/* Many small rounds: exercises the wakeup path (and gives TSan something). */
START_TEST(test_pingpong_many) {
  mpc_memnet_t *hub = hub_new(5000);
  uint64_t a = 1, b = 2, ra = 0, rb = 0;
  run_pair(hub, MPC_P1, MPC_P0, &a, sizeof a, &ra, &b, sizeof b, &rb, 2000);
  ck_assert_uint_eq(ra, 2);
  ck_assert_uint_eq(rb, 1);
  ck_assert_uint_eq(mpc_memnet_endpoint(hub, MPC_P0)->stats.rounds[MPC_PHASE_SETUP], 2000);
  ck_assert_uint_eq(mpc_memnet_endpoint(hub, MPC_P1)->stats.rounds[MPC_PHASE_SETUP], 2000);
  mpc_memnet_free(hub);
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

START_TEST(test_length_mismatch) {
  mpc_memnet_t *hub = hub_new(1000);
  mpc_transport_t *p0 = mpc_memnet_endpoint(hub, MPC_P0);
  mpc_transport_t *p1 = mpc_memnet_endpoint(hub, MPC_P1);
  unsigned char big[16], small[8], got[16];
  fill(big, sizeof big, 1);
  fill(small, sizeof small, 2);
  ck_assert_int_eq(mpc_transport_send(p1, MPC_P0, big, sizeof big), 0);
  ck_assert_int_eq(mpc_transport_send(p1, MPC_P0, small, sizeof small), 0);
  ck_assert_int_eq(mpc_transport_recv(p0, MPC_P1, got, 8), TANDEM_EPROTO);
  /* The bad message was dropped: the next one is intact. */
  ck_assert_int_eq(mpc_transport_recv(p0, MPC_P1, got, 8), 0);
  ck_assert_mem_eq(got, small, 8);
  /* Shorter than expected is an error as well. */
  ck_assert_int_eq(mpc_transport_send(p1, MPC_P0, small, sizeof small), 0);
  ck_assert_int_eq(mpc_transport_recv(p0, MPC_P1, got, 16), TANDEM_EPROTO);
  /* Only the successful receive was counted. */
  ck_assert_uint_eq(p0->stats.recvd[MPC_P1][MPC_PHASE_SETUP], 8);
  mpc_memnet_free(hub);
}
END_TEST

START_TEST(test_timeout) {
  const int ms = 150;
  mpc_memnet_t *hub = hub_new(ms);
  mpc_transport_t *p0 = mpc_memnet_endpoint(hub, MPC_P0);
  uint64_t x = 7, y;
  double t0 = now_s();
  ck_assert_int_eq(mpc_transport_recv(p0, MPC_P1, &y, sizeof y), TANDEM_ETIMEDOUT);
  double dt = now_s() - t0;
  ck_assert_msg(dt >= ms * 0.95e-3 && dt < 2 * ms * 1e-3, "recv took %.3f s", dt);
  /* An exchange whose peer never answers times out the same way (its send
   * went through and is counted nowhere: the call failed). */
  t0 = now_s();
  ck_assert_int_eq(mpc_transport_exchange(p0, MPC_P1, &x, sizeof x, &y, sizeof y),
                   TANDEM_ETIMEDOUT);
  dt = now_s() - t0;
  ck_assert_msg(dt >= ms * 0.95e-3 && dt < 2 * ms * 1e-3, "exchange took %.3f s", dt);
  ck_assert_uint_eq(p0->stats.sent[MPC_P1][MPC_PHASE_SETUP], 0);
  ck_assert_uint_eq(p0->stats.rounds[MPC_PHASE_SETUP], 0);
  mpc_memnet_free(hub);
}
END_TEST

typedef struct {
  mpc_transport_t *t;
  mpc_role_t from;
  int rc;
  double seconds;
} waiter_t;

static void *waiter_main(void *arg) {
  waiter_t *w = arg;
  uint64_t v;
  double t0 = now_s();
  w->rc = mpc_transport_recv(w->t, w->from, &v, sizeof v);
  w->seconds = now_s() - t0;
  return NULL;
}

START_TEST(test_kill_wakes) {
  /* A long timeout: if kill failed to wake them, the waiters would report
   * TANDEM_ETIMEDOUT after 5 s instead of ECLOSED at once. */
  mpc_memnet_t *hub = hub_new(5000);
  waiter_t on_peer = {mpc_memnet_endpoint(hub, MPC_P0), MPC_P1, 1, 0};
  waiter_t on_self = {mpc_memnet_endpoint(hub, MPC_DEALER), MPC_CLIENT, 1, 0};
  pthread_t ta, tb;
  ck_assert_int_eq(pthread_create(&ta, NULL, waiter_main, &on_peer), 0);
  ck_assert_int_eq(pthread_create(&tb, NULL, waiter_main, &on_self), 0);
  sleep_ms(50);
  mpc_memnet_kill(hub, MPC_P1);     /* P0 waits for it */
  mpc_memnet_kill(hub, MPC_DEALER); /* the waiter itself dies */
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  ck_assert_msg(on_peer.rc == TANDEM_ECLOSED, "%s", tandem_err_name(on_peer.rc));
  ck_assert_msg(on_self.rc == TANDEM_ECLOSED, "%s", tandem_err_name(on_self.rc));
  ck_assert(on_peer.seconds < 1.0 && on_self.seconds < 1.0);

  /* Later calls by a dead role, and sends to it, fail at once. */
  uint64_t v = 1;
  mpc_transport_t *p1 = mpc_memnet_endpoint(hub, MPC_P1);
  mpc_transport_t *p0 = mpc_memnet_endpoint(hub, MPC_P0);
  ck_assert_int_eq(mpc_transport_send(p1, MPC_P0, &v, sizeof v), TANDEM_ECLOSED);
  ck_assert_int_eq(mpc_transport_recv(p1, MPC_P0, &v, sizeof v), TANDEM_ECLOSED);
  ck_assert_int_eq(mpc_transport_exchange(p1, MPC_P0, &v, sizeof v, &v, sizeof v),
                   TANDEM_ECLOSED);
  ck_assert_int_eq(mpc_transport_send(p0, MPC_P1, &v, sizeof v), TANDEM_ECLOSED);
  ck_assert_int_eq(mpc_transport_exchange(p0, MPC_P1, &v, sizeof v, &v, sizeof v),
                   TANDEM_ECLOSED);
  /* Roles not involved carry on. */
  ck_assert_int_eq(mpc_transport_send(p0, MPC_CLIENT, &v, sizeof v), 0);
  ck_assert_int_eq(mpc_transport_recv(mpc_memnet_endpoint(hub, MPC_CLIENT), MPC_P0, &v, sizeof v), 0);
  mpc_memnet_free(hub);
}
END_TEST

START_TEST(test_kill_delivers_queued) {
  mpc_memnet_t *hub = hub_new(5000);
  mpc_transport_t *p0 = mpc_memnet_endpoint(hub, MPC_P0);
  mpc_transport_t *p1 = mpc_memnet_endpoint(hub, MPC_P1);
  uint64_t v = 42, got = 0;
  ck_assert_int_eq(mpc_transport_send(p1, MPC_P0, &v, sizeof v), 0);
  mpc_memnet_kill(hub, MPC_P1);
  /* What was sent before the death is still delivered, then the close. */
  ck_assert_int_eq(mpc_transport_recv(p0, MPC_P1, &got, sizeof got), 0);
  ck_assert_uint_eq(got, 42);
  double t0 = now_s();
  ck_assert_int_eq(mpc_transport_recv(p0, MPC_P1, &got, sizeof got), TANDEM_ECLOSED);
  ck_assert(now_s() - t0 < 1.0);

  /* Closing an endpoint is leaving the hub: the same as a kill. */
  mpc_transport_t *client = mpc_memnet_endpoint(hub, MPC_CLIENT);
  client->ops->close(client);
  ck_assert_int_eq(mpc_transport_recv(p0, MPC_CLIENT, &got, sizeof got), TANDEM_ECLOSED);
  mpc_memnet_free(hub);
}
END_TEST

/* ---- tap ---------------------------------------------------------------- */

#define TAP_MAX 16

typedef struct {
  size_t n;
  mpc_role_t from[TAP_MAX], to[TAP_MAX];
  size_t len[TAP_MAX];
  unsigned char first[TAP_MAX];
} taplog_t;

/* No locking: the hub serialises tap calls. */
static void tap_cb(void *ctx, mpc_role_t from, mpc_role_t to, const void *buf, size_t len) {
  taplog_t *log = ctx;
  if (log->n < TAP_MAX) {
    log->from[log->n] = from;
    log->to[log->n] = to;
    log->len[log->n] = len;
    log->first[log->n] = len ? ((const unsigned char *)buf)[0] : 0;
  }
  log->n++;
}

static int tap_has(const taplog_t *log, mpc_role_t from, mpc_role_t to, size_t len,
                   unsigned char first) {
  int hits = 0;
  for (size_t i = 0; i < log->n && i < TAP_MAX; i++)
    hits += log->from[i] == from && log->to[i] == to && log->len[i] == len &&
            log->first[i] == first;
  return hits;
}

START_TEST(test_tap) {
  mpc_memnet_t *hub = hub_new(5000);
  taplog_t log;
  memset(&log, 0, sizeof log);
  mpc_memnet_set_tap(hub, tap_cb, &log);
  unsigned char a[24], b[24], ra[24], rb[24], d[40], got[40];
  memset(a, 0xa0, sizeof a);
  memset(b, 0xb1, sizeof b);
  memset(d, 0xd2, sizeof d);
  run_pair(hub, MPC_P0, MPC_P1, a, sizeof a, ra, b, sizeof b, rb, 1);
  mpc_transport_t *dealer = mpc_memnet_endpoint(hub, MPC_DEALER);
  ck_assert_int_eq(mpc_transport_send(dealer, MPC_P0, d, sizeof d), 0);
  ck_assert_int_eq(mpc_transport_send(dealer, MPC_P1, d, 8), 0);
  ck_assert_int_eq(mpc_transport_send(dealer, MPC_CLIENT, NULL, 0), 0);
  /* Failed sends are not shown to the tap. */
  ck_assert_int_eq(mpc_transport_send(dealer, MPC_DEALER, d, 8), TANDEM_EINVAL);
  mpc_memnet_kill(hub, MPC_OWNER);
  ck_assert_int_eq(mpc_transport_send(dealer, MPC_OWNER, d, 8), TANDEM_ECLOSED);

  ck_assert_uint_eq(log.n, 5);
  ck_assert_int_eq(tap_has(&log, MPC_P0, MPC_P1, 24, 0xa0), 1);
  ck_assert_int_eq(tap_has(&log, MPC_P1, MPC_P0, 24, 0xb1), 1);
  ck_assert_int_eq(tap_has(&log, MPC_DEALER, MPC_P0, 40, 0xd2), 1);
  ck_assert_int_eq(tap_has(&log, MPC_DEALER, MPC_P1, 8, 0xd2), 1);
  ck_assert_int_eq(tap_has(&log, MPC_DEALER, MPC_CLIENT, 0, 0), 1);
  ck_assert_int_eq(mpc_transport_recv(mpc_memnet_endpoint(hub, MPC_P0), MPC_DEALER, got, 40), 0);
  ck_assert_mem_eq(got, d, 40);

  /* With the tap removed, sends are no longer logged. */
  mpc_memnet_set_tap(hub, NULL, NULL);
  ck_assert_int_eq(mpc_transport_send(dealer, MPC_P0, d, 8), 0);
  ck_assert_uint_eq(log.n, 5);
  mpc_memnet_free(hub);
}
END_TEST

/* ---- counters ----------------------------------------------------------- */

START_TEST(test_counters) {
  mpc_memnet_t *hub = hub_new(5000);
  mpc_transport_t *ep[MPC_NROLES];
  for (int r = 0; r < MPC_NROLES; r++) {
    ep[r] = mpc_memnet_endpoint(hub, (mpc_role_t)r);
    ck_assert_ptr_nonnull(ep[r]);
    ck_assert_int_eq(ep[r]->self, r);
    ck_assert_int_eq(ep[r]->phase, MPC_PHASE_SETUP);
  }
  unsigned char buf[256], rbuf[256];
  memset(buf, 3, sizeof buf);

  /* Setup: the owner sends 100 bytes to each party (no rounds). */
  ck_assert_int_eq(mpc_transport_send(ep[MPC_OWNER], MPC_P0, buf, 100), 0);
  ck_assert_int_eq(mpc_transport_send(ep[MPC_OWNER], MPC_P1, buf, 100), 0);
  ck_assert_int_eq(mpc_transport_recv(ep[MPC_P0], MPC_OWNER, rbuf, 100), 0);
  ck_assert_int_eq(mpc_transport_recv(ep[MPC_P1], MPC_OWNER, rbuf, 100), 0);
  /* Setup round between the parties: 16 bytes each way. */
  run_pair(hub, MPC_P0, MPC_P1, buf, 16, rbuf, buf + 16, 16, rbuf + 16, 1);

  /* Offline: the dealer sends 200 to P0 and 50 to the client. */
  for (int r = 0; r < MPC_NROLES; r++)
    ep[r]->phase = MPC_PHASE_OFFLINE;
  ck_assert_int_eq(mpc_transport_send(ep[MPC_DEALER], MPC_P0, buf, 200), 0);
  ck_assert_int_eq(mpc_transport_send(ep[MPC_DEALER], MPC_CLIENT, buf, 50), 0);
  ck_assert_int_eq(mpc_transport_recv(ep[MPC_P0], MPC_DEALER, rbuf, 200), 0);
  ck_assert_int_eq(mpc_transport_recv(ep[MPC_CLIENT], MPC_DEALER, rbuf, 50), 0);

  /* Online: two asymmetric P0-P1 rounds (P0 sends 8, P1 sends 24), and an
   * exchange between the client and P1, which is not an inter-party round. */
  for (int r = 0; r < MPC_NROLES; r++)
    ep[r]->phase = MPC_PHASE_ONLINE;
  run_pair(hub, MPC_P0, MPC_P1, buf, 8, rbuf, buf, 24, rbuf + 64, 2);
  run_pair(hub, MPC_CLIENT, MPC_P1, buf, 32, rbuf, buf, 48, rbuf + 64, 1);

  mpc_stats_t want[MPC_NROLES];
  memset(want, 0, sizeof want);
  want[MPC_OWNER].sent[MPC_P0][MPC_PHASE_SETUP] = 100;
  want[MPC_OWNER].sent[MPC_P1][MPC_PHASE_SETUP] = 100;
  want[MPC_P0].recvd[MPC_OWNER][MPC_PHASE_SETUP] = 100;
  want[MPC_P1].recvd[MPC_OWNER][MPC_PHASE_SETUP] = 100;
  want[MPC_P0].sent[MPC_P1][MPC_PHASE_SETUP] = 16;
  want[MPC_P0].recvd[MPC_P1][MPC_PHASE_SETUP] = 16;
  want[MPC_P1].sent[MPC_P0][MPC_PHASE_SETUP] = 16;
  want[MPC_P1].recvd[MPC_P0][MPC_PHASE_SETUP] = 16;
  want[MPC_P0].rounds[MPC_PHASE_SETUP] = 1;
  want[MPC_P1].rounds[MPC_PHASE_SETUP] = 1;
  want[MPC_DEALER].sent[MPC_P0][MPC_PHASE_OFFLINE] = 200;
  want[MPC_DEALER].sent[MPC_CLIENT][MPC_PHASE_OFFLINE] = 50;
  want[MPC_P0].recvd[MPC_DEALER][MPC_PHASE_OFFLINE] = 200;
  want[MPC_CLIENT].recvd[MPC_DEALER][MPC_PHASE_OFFLINE] = 50;
  want[MPC_P0].sent[MPC_P1][MPC_PHASE_ONLINE] = 16;
  want[MPC_P0].recvd[MPC_P1][MPC_PHASE_ONLINE] = 48;
  want[MPC_P1].sent[MPC_P0][MPC_PHASE_ONLINE] = 48;
  want[MPC_P1].recvd[MPC_P0][MPC_PHASE_ONLINE] = 16;
  want[MPC_P0].rounds[MPC_PHASE_ONLINE] = 2;
  want[MPC_P1].rounds[MPC_PHASE_ONLINE] = 2;
  want[MPC_CLIENT].sent[MPC_P1][MPC_PHASE_ONLINE] = 32;
  want[MPC_CLIENT].recvd[MPC_P1][MPC_PHASE_ONLINE] = 48;
  want[MPC_P1].sent[MPC_CLIENT][MPC_PHASE_ONLINE] = 48;
  want[MPC_P1].recvd[MPC_CLIENT][MPC_PHASE_ONLINE] = 32;

  for (int r = 0; r < MPC_NROLES; r++) {
    const mpc_stats_t *got = &ep[r]->stats;
    for (int ph = 0; ph < MPC_NPHASES; ph++) {
      for (int q = 0; q < MPC_NROLES; q++) {
        ck_assert_msg(got->sent[q][ph] == want[r].sent[q][ph],
                      "role %d sent to %d in phase %d: %llu", r, q, ph,
                      (unsigned long long)got->sent[q][ph]);
        ck_assert_msg(got->recvd[q][ph] == want[r].recvd[q][ph],
                      "role %d recvd from %d in phase %d: %llu", r, q, ph,
                      (unsigned long long)got->recvd[q][ph]);
      }
      ck_assert_msg(got->rounds[ph] == want[r].rounds[ph], "role %d rounds phase %d: %llu",
                    r, ph, (unsigned long long)got->rounds[ph]);
      ck_assert(got->seconds[ph] == 0.0); /* the protocol's, not touched */
    }
  }
  mpc_memnet_free(hub);
}
END_TEST

/* ---- arguments ---------------------------------------------------------- */

START_TEST(test_invalid) {
  ck_assert_int_eq(mpc_memnet_new(NULL, 0), TANDEM_EINVAL);
  mpc_memnet_t *hub = hub_new(200);
  ck_assert_ptr_null(mpc_memnet_endpoint(NULL, MPC_P0));
  ck_assert_ptr_null(mpc_memnet_endpoint(hub, (mpc_role_t)MPC_NROLES));
  ck_assert_ptr_null(mpc_memnet_endpoint(hub, (mpc_role_t)-1));

  mpc_transport_t *p0 = mpc_memnet_endpoint(hub, MPC_P0);
  mpc_transport_t bare;
  memset(&bare, 0, sizeof bare);
  uint64_t v = 5, w = 0;
  const mpc_role_t bad[] = {MPC_P0, (mpc_role_t)MPC_NROLES, (mpc_role_t)-1};

  ck_assert_int_eq(mpc_transport_send(NULL, MPC_P1, &v, 8), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_transport_recv(NULL, MPC_P1, &v, 8), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_transport_exchange(NULL, MPC_P1, &v, 8, &w, 8), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_transport_send(&bare, MPC_P1, &v, 8), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_transport_recv(&bare, MPC_P1, &v, 8), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_transport_exchange(&bare, MPC_P1, &v, 8, &w, 8), TANDEM_EINVAL);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(mpc_transport_send(p0, bad[i], &v, 8), TANDEM_EINVAL);
    ck_assert_int_eq(mpc_transport_recv(p0, bad[i], &w, 8), TANDEM_EINVAL);
    ck_assert_int_eq(mpc_transport_exchange(p0, bad[i], &v, 8, &w, 8), TANDEM_EINVAL);
    /* The ops check roles themselves, as they index the mailboxes. */
    ck_assert_int_eq(p0->ops->send(p0, bad[i], &v, 8), TANDEM_EINVAL);
    ck_assert_int_eq(p0->ops->recv(p0, bad[i], &w, 8), TANDEM_EINVAL);
  }
  ck_assert_int_eq(mpc_transport_send(p0, MPC_P1, NULL, 8), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_transport_recv(p0, MPC_P1, NULL, 8), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_transport_exchange(p0, MPC_P1, NULL, 8, &w, 8), TANDEM_EINVAL);
  ck_assert_int_eq(mpc_transport_exchange(p0, MPC_P1, &v, 8, NULL, 8), TANDEM_EINVAL);
  p0->phase = (mpc_phase_t)MPC_NPHASES;
  ck_assert_int_eq(mpc_transport_send(p0, MPC_P1, &v, 8), TANDEM_EINVAL);
  p0->phase = MPC_PHASE_SETUP;
  mpc_memnet_set_tap(NULL, tap_cb, NULL); /* ignored */
  mpc_memnet_kill(NULL, MPC_P0);          /* ignored */
  mpc_memnet_kill(hub, (mpc_role_t)MPC_NROLES);
  mpc_memnet_free(NULL);

  /* Nothing was sent or counted by the rejected calls. */
  mpc_stats_t zero;
  memset(&zero, 0, sizeof zero);
  ck_assert_mem_eq(&p0->stats, &zero, sizeof zero);
  ck_assert_int_eq(mpc_transport_recv(mpc_memnet_endpoint(hub, MPC_P1), MPC_P0, &w, 8),
                   TANDEM_ETIMEDOUT);

  /* Empty messages are valid, with or without a buffer. */
  ck_assert_int_eq(mpc_transport_send(p0, MPC_P1, NULL, 0), 0);
  ck_assert_int_eq(mpc_transport_recv(mpc_memnet_endpoint(hub, MPC_P1), MPC_P0, NULL, 0), 0);
  mpc_memnet_free(hub);
}
END_TEST

/* ---- teardown ----------------------------------------------------------- */

START_TEST(test_free_undelivered) {
  mpc_memnet_t *hub = hub_new(100);
  unsigned char *big = malloc((size_t)1 << 20);
  ck_assert_ptr_nonnull(big);
  fill(big, (size_t)1 << 20, 9);
  for (int f = 0; f < MPC_NROLES; f++) {
    mpc_transport_t *t = mpc_memnet_endpoint(hub, (mpc_role_t)f);
    for (int to = 0; to < MPC_NROLES; to++) {
      if (to == f)
        continue;
      for (int k = 0; k < 3; k++)
        ck_assert_int_eq(mpc_transport_send(t, (mpc_role_t)to, big, (size_t)(k + 1) * 1000u * (unsigned)to), 0);
    }
  }
  ck_assert_int_eq(mpc_transport_send(mpc_memnet_endpoint(hub, MPC_P0), MPC_P1, big, (size_t)1 << 20), 0);
  free(big);
  /* Everything still queued is wiped and freed here; ASan reports any leak. */
  mpc_memnet_free(hub);
}
END_TEST

/* Declared here for -Wmissing-prototypes; the generated Check main calls it. */
Suite *memnet_suite(void);
Suite *memnet_suite(void) {
  Suite *s = suite_create("memnet");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_order);
  tcase_add_test(tc, test_exchange_large);
  tcase_add_test(tc, test_pingpong_many);
  tcase_add_test(tc, test_length_mismatch);
  tcase_add_test(tc, test_timeout);
  tcase_add_test(tc, test_kill_wakes);
  tcase_add_test(tc, test_kill_delivers_queued);
  tcase_add_test(tc, test_tap);
  tcase_add_test(tc, test_counters);
  tcase_add_test(tc, test_invalid);
  tcase_add_test(tc, test_free_undelivered);
  suite_add_tcase(s, tc);
  return s;
}
