/* test_netmem.c - Check suite for net's in-memory backend (net/src/mem.c):
 * nodes on "mem:<name>" addresses in this process, through net.h's calls.
 * The semantics the cluster services rely on, as over sockets: a peer's
 * links are numbered, a new link makes calls bound to the old one fail with
 * TANDEM_ECONNRESET and drops what the old one left unread; a closed or freed
 * peer's messages already sent are still taken, then TANDEM_ECLOSED; waits end
 * at their timeouts; queue_bytes holds a sender back; a receiver's limits end
 * the link with TANDEM_EPROTO; and only declared keys get a link. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "net_harness.h"

#define NAME "mem:netmem"

/* The log lines of a node, for the checks on what it reported. */
typedef struct {
  pthread_mutex_t mu;
  char buf[4096];
  size_t len;
} mlog_t;

static void log_cb(void *ctx, const char *line) {
  mlog_t *l = ctx;
  pthread_mutex_lock(&l->mu);
  size_t k = strlen(line);
  if (l->len + k + 2 < sizeof l->buf) {
    memcpy(l->buf + l->len, line, k);
    l->len += k;
    l->buf[l->len++] = '\n';
    l->buf[l->len] = '\0';
  }
  pthread_mutex_unlock(&l->mu);
}

static int logged(mlog_t *l, const char *what) {
  pthread_mutex_lock(&l->mu);
  int r = strstr(l->buf, what) != NULL;
  pthread_mutex_unlock(&l->mu);
  return r;
}

/* A memory node listening on NAME (port chosen by the registry). */
static net_node_t *mnode(const th_id_t *id, int timeout_ms, size_t queue_bytes, mlog_t *log) {
  net_config_t cfg;
  net_node_t *n = NULL;
  memset(&cfg, 0, sizeof cfg);
  cfg.listen_host = NAME;
  cfg.pk = id->pk;
  cfg.sk = id->sk;
  cfg.timeout_ms = timeout_ms;
  cfg.queue_bytes = queue_bytes;
  if (log) {
    pthread_mutex_init(&log->mu, NULL);
    log->len = 0;
    log->buf[0] = '\0';
    cfg.log = log_cb;
    cfg.log_ctx = log;
  }
  ck_assert_int_eq(net_node_new(&n, &cfg), 0);
  ck_assert_uint_ne(net_node_port(n), 0);
  return n;
}

/* Each declared to the other as peer 0. */
static void pair(net_node_t *a, const th_id_t *ia, net_node_t *b, const th_id_t *ib) {
  ck_assert_int_eq(net_peer_add(a, 0, NAME, net_node_port(b), ib->pk), 0);
  ck_assert_int_eq(net_peer_add(b, 0, NAME, net_node_port(a), ia->pk), 0);
}

/* Two memory nodes a and b, of the same timeout and queue bound, each
 * declared to the other as peer 0 (not yet linked). */
static void two_nodes(net_node_t **a, net_node_t **b, int timeout_ms, size_t queue_bytes) {
  th_id_t ia, ib;
  th_id(&ia);
  th_id(&ib);
  *a = mnode(&ia, timeout_ms, queue_bytes, NULL);
  *b = mnode(&ib, timeout_ms, queue_bytes, NULL);
  pair(*a, &ia, *b, &ib);
}

static uint64_t links(net_node_t *n) {
  net_stats_t st;
  net_peer_stats(n, 0, &st);
  return st.links;
}

/* Takes the next message of chan on link (0: any) within ms; it must be `want`. */
static void take_is(net_node_t *n, uint64_t link, uint8_t chan, const char *want, int ms) {
  unsigned char *m = NULL;
  size_t len = 0;
  int r = net_msg_take_on(n, 0, link, chan, 1 << 20, &m, &len, ms);
  ck_assert_msg(r == 0, "take: %s", tandem_strerror(r));
  ck_assert_uint_eq(len, strlen(want));
  ck_assert(memcmp(m, want, len) == 0);
  free(m);
}

static int take_rc(net_node_t *n, uint64_t link, uint8_t chan, int ms) {
  unsigned char *m = NULL;
  size_t len = 0;
  int r = net_msg_take_on(n, 0, link, chan, 1 << 20, &m, &len, ms);
  free(m);
  return r;
}

/* Link numbers at both ends, a new link replacing the old one (either side
 * dialling), bound sends and receives, and the old link's unread messages
 * dropped: a receive bound to it gets TANDEM_ECONNRESET, not its message. */
START_TEST(link_numbers) {
  th_id_t ia, ib;
  mlog_t la;
  th_id(&ia);
  th_id(&ib);
  net_node_t *a = mnode(&ia, 2000, 0, &la), *b = mnode(&ib, 2000, 0, NULL);
  pair(a, &ia, b, &ib);
  ck_assert_int_eq(net_peer_up(a, 0), 0);
  ck_assert_int_eq(take_rc(a, 0, 1, 0), TANDEM_ECLOSED);
  ck_assert_int_eq(net_connect(b, 0), 0);
  int who = -1;
  ck_assert_int_eq(net_accept_any(a, &who, 0), 0);
  ck_assert_int_eq(who, 0);
  ck_assert_int_eq(net_accept(a, 0, 0), 0);
  ck_assert_uint_eq(links(a), 1);
  ck_assert_uint_eq(links(b), 1);
  ck_assert_int_eq(net_msg_send(b, 0, 1, "one", 3), 0);
  take_is(a, 1, 1, "one", 0);
  ck_assert_int_eq(net_msg_send(b, 0, 1, "two", 3), 0);
  /* b dials again: link 2 at both ends, "two" is dropped. */
  ck_assert_int_eq(net_connect(b, 0), 0);
  ck_assert_uint_eq(links(a), 2);
  ck_assert_uint_eq(links(b), 2);
  ck_assert_int_eq(take_rc(a, 1, 1, 1000), TANDEM_ECONNRESET);
  ck_assert_int_eq(take_rc(a, 0, 1, 0), TANDEM_ETIMEDOUT);
  ck_assert(logged(&la, "1 unread messages (3 bytes) of its earlier links dropped"));
  ck_assert(logged(&la, "new link replaces the old one"));
  ck_assert_int_eq(net_msg_send_on(b, 0, 1, 1, "old", 3), TANDEM_ECONNRESET);
  ck_assert_int_eq(net_msg_send_on(b, 0, 2, 1, "three", 5), 0);
  take_is(a, 2, 1, "three", 0);
  /* A receive bound to link 2 that waits while a dials b: ECONNRESET. */
  ck_assert_int_eq(net_msg_send(a, 0, 3, "four", 4), 0);
  ck_assert_int_eq(net_connect(a, 0), 0);
  ck_assert_uint_eq(links(b), 3);
  ck_assert_int_eq(take_rc(b, 2, 3, 1000), TANDEM_ECONNRESET);
  ck_assert_int_eq(net_accept_any(a, &who, 0), 0); /* link 3, made by a */
  ck_assert_int_eq(net_accept_any(a, &who, 0), TANDEM_ETIMEDOUT);
  /* Channels keep their own order. */
  ck_assert_int_eq(net_msg_send(a, 0, 5, "x", 1), 0);
  ck_assert_int_eq(net_msg_send(a, 0, 6, "y", 1), 0);
  ck_assert_int_eq(net_msg_send(a, 0, 5, "z", 1), 0);
  take_is(b, 0, 6, "y", 0);
  take_is(b, 3, 5, "x", 0);
  take_is(b, 0, 5, "z", 0);
  net_node_free(b);
  net_node_free(a);
  pthread_mutex_destroy(&la.mu);
}
END_TEST

typedef struct {
  net_node_t *n;
  uint64_t link;
  int rc;
} waiter_t;

static void *wait_main(void *arg) {
  waiter_t *w = arg;
  w->rc = take_rc(w->n, w->link, 0, 10000);
  return NULL;
}

/* Closing: messages sent before it are still taken, then TANDEM_ECLOSED at
 * both ends; a receiver blocked on a peer whose node is freed gets
 * TANDEM_ECLOSED, and one bound to a link that another replaces gets
 * TANDEM_ECONNRESET, well before their timeouts. */
START_TEST(close_and_free) {
  net_node_t *a, *b;
  two_nodes(&a, &b, 2000, 0);
  ck_assert_int_eq(net_connect(b, 0), 0);
  ck_assert_int_eq(net_send(b, 0, "x", 1), 0);
  ck_assert_int_eq(net_send(b, 0, "y", 1), 0);
  ck_assert_int_eq(net_peer_close(b, 0), 0);
  ck_assert_int_eq(net_peer_up(a, 0), 0);
  ck_assert_int_eq(net_peer_up(b, 0), 0);
  take_is(a, 0, 0, "x", 0);
  take_is(a, 1, 0, "y", 0);
  ck_assert_int_eq(take_rc(a, 0, 0, 1000), TANDEM_ECLOSED);
  ck_assert_int_eq(net_send(a, 0, "z", 1), TANDEM_ECLOSED);
  ck_assert_int_eq(net_send(b, 0, "z", 1), TANDEM_ECLOSED);
  /* Bound to link 2, replaced by link 3. */
  ck_assert_int_eq(net_connect(a, 0), 0);
  waiter_t w = {a, 2, 1};
  pthread_t th;
  double t0 = (double)uv_hrtime() / 1e9;
  ck_assert_int_eq(pthread_create(&th, NULL, wait_main, &w), 0);
  ck_assert_int_eq(net_connect(b, 0), 0);
  pthread_join(th, NULL);
  ck_assert_int_eq(w.rc, TANDEM_ECONNRESET);
  /* Any link, b's node freed. */
  w = (waiter_t){a, 0, 1};
  ck_assert_int_eq(pthread_create(&th, NULL, wait_main, &w), 0);
  net_node_free(b);
  pthread_join(th, NULL);
  ck_assert_int_eq(w.rc, TANDEM_ECLOSED);
  ck_assert_msg((double)uv_hrtime() / 1e9 - t0 < 5.0, "the waits ran to their timeouts");
  ck_assert_int_eq(net_peer_up(a, 0), 0);
  ck_assert_int_lt(net_connect(a, 0), 0); /* nobody listens there any more */
  net_node_free(a);
}
END_TEST

/* Timeouts on the real clock, the link left up; a sender waits while its
 * receiver's unread messages are over queue_bytes, and goes on once they are
 * taken. */
START_TEST(timeouts_and_queue_bound) {
  net_node_t *a, *b;
  two_nodes(&a, &b, 300, 1000);
  ck_assert_int_eq(net_connect(b, 0), 0);
  uint64_t t0 = uv_hrtime();
  ck_assert_int_eq(take_rc(a, 0, 0, 200), TANDEM_ETIMEDOUT);
  double s = (double)(uv_hrtime() - t0) / 1e9;
  ck_assert_msg(s >= 0.19 && s < 2.0, "%.3f s", s);
  t0 = uv_hrtime();
  ck_assert_int_eq(take_rc(a, 0, 0, NET_TIMEOUT_DEFAULT), TANDEM_ETIMEDOUT);
  s = (double)(uv_hrtime() - t0) / 1e9;
  ck_assert_msg(s >= 0.29 && s < 2.0, "%.3f s", s);
  ck_assert_int_eq(net_peer_up(a, 0), 1);
  static unsigned char big[800];
  memset(big, 7, sizeof big);
  ck_assert_int_eq(net_send(b, 0, big, sizeof big), 0);
  ck_assert_int_eq(net_send(b, 0, big, sizeof big), 0); /* 800 unread: room */
  t0 = uv_hrtime();
  ck_assert_int_eq(net_send(b, 0, big, sizeof big), TANDEM_ETIMEDOUT); /* 1600 unread */
  s = (double)(uv_hrtime() - t0) / 1e9;
  ck_assert_msg(s >= 0.29 && s < 2.0, "%.3f s", s);
  unsigned char got[800];
  ck_assert_int_eq(net_recv(a, 0, got, sizeof got), 0);
  ck_assert_int_eq(net_send(b, 0, big, sizeof big), 0);
  ck_assert_int_eq(net_recv(a, 0, got, 10), TANDEM_EPROTO); /* another length */
  net_stats_t st;
  net_peer_stats(b, 0, &st);
  ck_assert_uint_eq(st.msgs_sent, 3);
  ck_assert_uint_eq(st.payload_sent, 2400);
  net_node_free(a);
  net_node_free(b);
}
END_TEST

/* Identity by key: a node links only with a key it declared, and a dialler
 * only with the key it declared for the address; a client node (no listen
 * host) is a memory node by its peers' hosts. */
START_TEST(key_check) {
  th_id_t ia, ib, ic;
  mlog_t la;
  th_id(&ia);
  th_id(&ib);
  th_id(&ic);
  net_node_t *a = mnode(&ia, 2000, 0, &la), *b = mnode(&ib, 2000, 0, NULL);
  net_peer_decl_t decl = {0, NAME, net_node_port(a), ia.pk, {0, 0, 0}};
  net_config_t cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.pk = ic.pk;
  cfg.sk = ic.sk;
  cfg.peers = &decl;
  cfg.npeers = 1;
  net_node_t *c = NULL;
  ck_assert_int_eq(net_node_new(&c, &cfg), 0);
  ck_assert_uint_eq(net_node_port(c), 0);
  /* a does not know c's key. */
  ck_assert_int_eq(net_connect(c, 0), TANDEM_EAUTH);
  ck_assert(logged(&la, "rejected inbound handshake"));
  net_node_stats_t ns;
  net_node_stats(a, &ns);
  ck_assert_uint_eq(ns.handshakes_failed, 1);
  ck_assert_uint_eq(ns.handshakes_ok, 0);
  ck_assert_int_eq(net_peer_up(a, 0), 0);
  /* b expects another key at a's address. */
  ck_assert_int_eq(net_peer_add(b, 0, NAME, net_node_port(a), ic.pk), 0);
  ck_assert_int_eq(net_peer_add(a, 0, NULL, 0, ib.pk), 0);
  ck_assert_int_eq(net_connect(b, 0), TANDEM_EAUTH);
  /* Declared: c as a's peer 1. */
  ck_assert_int_eq(net_peer_add(a, 1, NULL, 0, ic.pk), 0);
  ck_assert_int_eq(net_connect(c, 0), 0);
  ck_assert_int_eq(net_peer_up(a, 1), 1);
  ck_assert_int_eq(net_msg_send(c, 0, 0, "c", 1), 0);
  unsigned char m;
  ck_assert_int_eq(net_recv(a, 1, &m, 1), 0);
  ck_assert_uint_eq(m, 'c');
  /* Redeclaring a's peer 1 with another key ends its link. */
  ck_assert_int_eq(net_peer_add(a, 1, NULL, 0, ib.pk), TANDEM_EINVAL); /* peer 0's key */
  th_id_t id2;
  th_id(&id2);
  ck_assert_int_eq(net_peer_add(a, 1, NULL, 0, id2.pk), 0);
  ck_assert_int_eq(net_peer_up(a, 1), 0);
  ck_assert_int_eq(net_peer_up(c, 0), 0);
  /* Nobody at that port; sockets and memory not mixed; one node per address. */
  th_id_t id3;
  th_id(&id3);
  ck_assert_int_eq(net_peer_add(b, 1, NAME, 1, id3.pk), 0);
  ck_assert_int_eq(net_connect(b, 1), -ECONNREFUSED);
  ck_assert_int_eq(net_peer_add(b, 2, "127.0.0.1", 9, id3.pk), TANDEM_EINVAL);
  net_config_t dup;
  memset(&dup, 0, sizeof dup);
  dup.pk = id2.pk;
  dup.sk = id2.sk;
  dup.listen_host = NAME;
  dup.listen_port = net_node_port(a);
  net_node_t *d = NULL;
  ck_assert_int_eq(net_node_new(&d, &dup), TANDEM_EADDRINUSE);
  dup.listen_port = 0;
  dup.peers = &decl;
  dup.npeers = 1;
  decl.host = "127.0.0.1";
  ck_assert_int_eq(net_node_new(&d, &dup), TANDEM_EINVAL);
  decl.host = NAME;
  decl.id = NET_MAX_PEERS;
  ck_assert_int_eq(net_node_new(&d, &dup), TANDEM_EINVAL);
  dup.npeers = 0;
  dup.listen_host = "mem:";
  ck_assert_int_eq(net_node_new(&d, &dup), TANDEM_EINVAL);
  net_node_free(c);
  net_node_free(b);
  net_node_free(a);
  pthread_mutex_destroy(&la.mu);
}
END_TEST

/* The receiver's limits of a peer (channels, max_msg) end the link with
 * TANDEM_EPROTO there, counted and logged (memory links have no flood
 * guard: mem.c's refuse says why); the sender's
 * call succeeded, its next one sees the link gone. */
START_TEST(limits_end_link) {
  th_id_t ia, ib;
  mlog_t la;
  th_id(&ia);
  th_id(&ib);
  net_node_t *a = mnode(&ia, 2000, 1000, &la), *b = mnode(&ib, 2000, 0, NULL);
  pair(a, &ia, b, &ib);
  net_limits_t lim = {100, 1u << 1, 0};
  ck_assert_int_eq(net_peer_limits(a, 0, &lim), 0);
  ck_assert_int_eq(net_connect(b, 0), 0);
  ck_assert_int_eq(net_msg_send(b, 0, 1, "ok", 2), 0);
  ck_assert_int_eq(net_msg_send(b, 0, 2, "no", 2), 0);
  take_is(a, 0, 1, "ok", 0);
  ck_assert_int_eq(take_rc(a, 0, 1, 0), TANDEM_EPROTO);
  ck_assert_int_eq(net_msg_send(b, 0, 1, "late", 4), TANDEM_ECLOSED);
  ck_assert(logged(&la, "a channel this peer does not use"));
  static unsigned char big[200];
  ck_assert_int_eq(net_connect(b, 0), 0);
  ck_assert_int_eq(net_msg_send(b, 0, 1, big, sizeof big), 0);
  ck_assert_int_eq(take_rc(a, 0, 1, 0), TANDEM_EPROTO);
  ck_assert(logged(&la, "longer than this peer's max_msg"));
  net_node_stats_t ns;
  net_node_stats(a, &ns);
  ck_assert_uint_eq(ns.msgs_refused, 2);
  net_node_free(b);
  net_node_free(a);
  pthread_mutex_destroy(&la.mu);
}
END_TEST

typedef struct {
  net_node_t *n;
  unsigned char *out, *in;
  size_t len;
  int rc;
} xchg_t;

static void *xchg_main(void *arg) {
  xchg_t *x = arg;
  x->rc = net_exchange(x->n, 0, x->out, x->len, x->in, x->len);
  return NULL;
}

/* Both sides exchange 4 MB at once, as an MPC round does. */
START_TEST(exchange_both_ways) {
  net_node_t *a, *b;
  two_nodes(&a, &b, 5000, 0);
  ck_assert_int_eq(net_connect(a, 0), 0);
  size_t len = (size_t)4 << 20;
  xchg_t x[2];
  for (int i = 0; i < 2; i++) {
    x[i] = (xchg_t){i ? b : a, malloc(len), malloc(len), len, 1};
    ck_assert(x[i].out && x[i].in);
    memset(x[i].out, 'a' + i, len);
  }
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, xchg_main, &x[1]), 0);
  xchg_main(&x[0]);
  pthread_join(th, NULL);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(x[i].rc, 0);
    ck_assert(memcmp(x[i].in, x[1 - i].out, len) == 0);
  }
  for (int i = 0; i < 2; i++) {
    free(x[i].out);
    free(x[i].in);
  }
  net_node_free(a);
  net_node_free(b);
}
END_TEST

/* net_msg_send_consume over the in-memory backend, which copies the
 * message whole: delivered, then the sender's buffer wiped and reported so,
 * as over sockets. */
START_TEST(send_consume_wipes) {
  net_node_t *a, *b;
  two_nodes(&a, &b, 5000, 0);
  ck_assert_int_eq(net_connect(a, 0), 0);
  size_t len = (size_t)2 << 20, wiped = 0, got = 0;
  unsigned char *s = malloc(len), *r = malloc(len);
  ck_assert(s && r);
  memset(s, 'q', len);
  ck_assert_int_eq(net_msg_send_consume(a, 0, 0, 0, s, len, &wiped), 0);
  ck_assert_uint_eq(wiped, len);
  for (size_t k = 0; k < len; k++)
    ck_assert_msg(s[k] == 0, "byte %zu not wiped", k);
  ck_assert_int_eq(net_msg_recv(b, 0, 0, r, len, &got, 5000), 0);
  ck_assert_uint_eq(got, len);
  for (size_t k = 0; k < len; k++)
    ck_assert_msg(r[k] == 'q', "byte %zu delivered otherwise", k);
  free(s);
  free(r);
  net_node_free(a);
  net_node_free(b);
}
END_TEST

Suite *netmem_suite(void) {
  Suite *s = suite_create("netmem");
  TCase *tc = tcase_create("mem");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, link_numbers);
  tcase_add_test(tc, close_and_free);
  tcase_add_test(tc, timeouts_and_queue_bound);
  tcase_add_test(tc, key_check);
  tcase_add_test(tc, send_consume_wipes);
  tcase_add_test(tc, limits_end_link);
  tcase_add_test(tc, exchange_both_ways);
  suite_add_tcase(s, tc);
  return s;
}
