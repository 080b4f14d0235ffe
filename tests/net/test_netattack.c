/* test_netattack.c - Check suite for the network half of the attack suite:
 * what strangers and least-trusted peers (clients) do to a node, each attack
 * checked to be refused or bounded with a clear log line while an honest
 * peer keeps being served. A client trickling its message one byte at a time
 * (a strict peer's receive ends at its due time and the link is closed);
 * messages on a channel the peer does not use, or announcing more than its
 * max_msg (refused at the first header, before any body); a peer that
 * reconnects after each unread message (its unread bytes do not grow); a
 * flood of half-open connections (per-address and total caps); a frame that
 * fails its tag (its in-place plaintext wiped). The attackers run the real
 * handshake by hand (net_harness.h) or plain sockets from other loopback
 * addresses. Waits poll the state they wait for; none sleeps to order events.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "net_harness.h"

/* ---- log capture --------------------------------------------------------- */

typedef struct {
  uv_mutex_t mu;
  char text[32768];
  size_t n;
} logbuf_t;

static void log_cb(void *ctx, const char *line) {
  logbuf_t *l = ctx;
  size_t k = strlen(line);
  uv_mutex_lock(&l->mu);
  if (l->n + k + 2 < sizeof(l->text)) {
    memcpy(l->text + l->n, line, k);
    l->n += k;
    l->text[l->n++] = '\n';
    l->text[l->n] = '\0';
  }
  uv_mutex_unlock(&l->mu);
}

/* Waits (5 s at most) for a log line holding s; 1 if it came. */
static int log_wait(logbuf_t *l, const char *s) {
  for (int i = 0; i < 5000; i++) {
    uv_mutex_lock(&l->mu);
    int has = strstr(l->text, s) != NULL;
    uv_mutex_unlock(&l->mu);
    if (has)
      return 1;
    usleep(1000);
  }
  fprintf(stderr, "log so far:\n%s", l->text);
  return 0;
}

/* ---- the arena: a server, an honest peer (0) and an attacker's key (1) ---- */

typedef struct {
  th_id_t is, ig, ix;
  net_node_t *srv, *good;
  logbuf_t log;
} arena_t;

static void arena_up(arena_t *a, net_config_t *cfg, const net_limits_t *lim) {
  memset(a, 0, sizeof(*a));
  ck_assert_int_eq(uv_mutex_init(&a->log.mu), 0);
  th_id(&a->is);
  th_id(&a->ig);
  th_id(&a->ix);
  cfg->listen_host = "127.0.0.1";
  cfg->pk = a->is.pk;
  cfg->sk = a->is.sk;
  cfg->log = log_cb;
  cfg->log_ctx = &a->log;
  if (!cfg->handshake_timeout_ms)
    cfg->handshake_timeout_ms = 2000;
  ck_assert_int_eq(net_node_new(&a->srv, cfg), 0);
  a->good = th_node(&a->ig, 0, 2000);
  th_pair(a->srv, &a->is, a->good, &a->ig);
  ck_assert_int_eq(net_peer_add(a->srv, 1, NULL, 0, a->ix.pk), 0);
  if (lim)
    ck_assert_int_eq(net_peer_limits(a->srv, 1, lim), 0);
}

/* The server serves the honest peer: a message each way. */
static void honest_served(arena_t *a) {
  unsigned char buf[5];
  if (!net_peer_up(a->good, 0))
    ck_assert_int_eq(net_connect(a->good, 0), 0);
  ck_assert_int_eq(net_accept(a->srv, 0, 2000), 0);
  ck_assert_int_eq(net_send(a->good, 0, "hello", 5), 0);
  ck_assert_int_eq(net_recv(a->srv, 0, buf, 5), 0);
  ck_assert(memcmp(buf, "hello", 5) == 0);
  ck_assert_int_eq(net_send(a->srv, 0, "olleh", 5), 0);
  ck_assert_int_eq(net_recv(a->good, 0, buf, 5), 0);
  ck_assert(memcmp(buf, "olleh", 5) == 0);
}

static void arena_free(arena_t *a) {
  net_node_free(a->srv);
  net_node_free(a->good);
  uv_mutex_destroy(&a->log.mu);
}

static net_node_stats_t stats_of(net_node_t *n) {
  net_node_stats_t s;
  net_node_stats(n, &s);
  return s;
}

static size_t rq_bytes(net_node_t *n, int id) {
  uv_mutex_lock(&n->mu);
  size_t b = n->peers[id].rq_bytes;
  uv_mutex_unlock(&n->mu);
  return b;
}

static int rwaiters(net_node_t *n, int id) {
  uv_mutex_lock(&n->mu);
  int w = (int)n->peers[id].rwaiters;
  uv_mutex_unlock(&n->mu);
  return w;
}

/* Waits (5 s at most) until peer id of n has had `msgs` messages. */
static void wait_msgs(net_node_t *n, int id, uint64_t msgs) {
  net_stats_t st;
  for (int i = 0; i < 5000; i++) {
    net_peer_stats(n, id, &st);
    if (st.msgs_recvd >= msgs)
      return;
    usleep(1000);
  }
  ck_abort_msg("peer %d: %llu messages, want %llu", id, (unsigned long long)st.msgs_recvd,
               (unsigned long long)msgs);
}

/* ---- the slow-byte sender ------------------------------------------------ */

typedef struct {
  net_node_t *n;
  uint8_t chan;
  int rc, done;
} taker_t;

static void taker_main(void *arg) {
  taker_t *t = arg;
  unsigned char *m = NULL;
  size_t len = 0;
  t->rc = net_msg_take(t->n, 1, t->chan, 4096, &m, &len, NET_TIMEOUT_DEFAULT);
  free(m);
  __atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
}

/* A strict peer (a client) sends its message one byte every 10 ms: the
 * receive ends at its due time (the node's timeout, 300 ms, from its start)
 * with TANDEM_ETIMEDOUT, long before the last byte, and the link is closed
 * then. Before, every byte moved the deadline on, and the receive took the
 * whole message after about 4 s (the attacker held both parties of
 * a cluster 40 s past the due time). The honest peer is served while the
 * receive waits and after. */
START_TEST(slow_bytes) {
  net_config_t cfg = {.timeout_ms = 300};
  net_limits_t lim = {.strict = 1};
  arena_t a;
  th_raw_t r;
  taker_t t = {0};
  uv_thread_t th;
  unsigned char msg[400], wire[512];
  arena_up(&a, &cfg, &lim);
  ck_assert_int_eq(th_raw_open(&r, net_node_port(a.srv), &a.ix, a.is.pk), 0);
  ck_assert_int_eq(net_accept(a.srv, 1, 2000), 0);
  memset(msg, 0x5a, sizeof(msg));
  size_t n = net__msg_wire_bytes(sizeof(msg), NET_DEFAULT_MAX_FRAME);
  ck_assert_uint_le(n, sizeof(wire));
  ck_assert_int_eq(net__msg_seal(&r.tx, 0, msg, sizeof(msg), NET_DEFAULT_MAX_FRAME, wire), 0);
  t.n = a.srv;
  ck_assert_int_eq(uv_thread_create(&th, taker_main, &t), 0);
  while (rwaiters(a.srv, 1) == 0)
    usleep(1000);
  /* The header at once (the receive now sees a message of its channel
   * under way), then the body a byte at a time. */
  size_t sent = NET_HDR_BYTES;
  ck_assert_int_eq(th_write(r.fd, wire, sent), 0);
  honest_served(&a);
  while (sent < n && !__atomic_load_n(&t.done, __ATOMIC_SEQ_CST)) {
    if (th_write(r.fd, wire + sent, 1) != 0)
      break; /* closed by the node */
    sent++;
    usleep(10000); /* the attacker's pace */
  }
  uv_thread_join(&th);
  ck_assert_msg(t.rc == TANDEM_ETIMEDOUT, "the trickled receive ended with %s after %zu of %zu "
                "bytes", tandem_err_name(t.rc), sent, n);
  ck_assert_uint_lt(sent, n);
  ck_assert_int_eq(th_wait_closed(r.fd, 3000), 1);
  ck_assert(log_wait(&a.log, "not in by its due time"));
  ck_assert_uint_eq(stats_of(a.srv).links_due, 1);
  ck_assert_int_eq(net_peer_up(a.srv, 1), 0);
  th_raw_close(&r);
  honest_served(&a);
  arena_free(&a);
}
END_TEST

/* ---- refused at the first header ----------------------------------------- */

/* Writes the first frame header of a message of msg_len bytes on chan, and
 * nothing of its body. */
static void send_header_only(th_raw_t *r, uint8_t chan, uint64_t msg_len) {
  unsigned char raw[NET_HDR_BYTES];
  uint32_t len = msg_len < 1024 ? (uint32_t)msg_len : 1024;
  net__hdr_t h = {.type = NET_FT_DATA, .chan = chan,
                  .flags = (uint8_t)(NET_FF_FIRST | (len == msg_len ? NET_FF_LAST : 0)),
                  .link_id = r->tx.link_id, .len = len, .seq = r->tx.seq, .msg_len = msg_len};
  net__hdr_put(raw, &h);
  ck_assert_int_eq(th_write(r->fd, raw, sizeof(raw)), 0);
}

/* A client may use channel 0 only and send 64 KiB at most: a message on
 * channel 7, or a header announcing 1 MiB, ends its link at that header,
 * before any of the body is sent (the node held each before, waiting for a
 * body it would buffer). */
START_TEST(refused_at_header) {
  net_config_t cfg = {.timeout_ms = 2000};
  net_limits_t lim = {.max_msg = 64 << 10, .chans = 1u << 0, .strict = 1};
  arena_t a;
  th_raw_t r;
  arena_up(&a, &cfg, &lim);
  ck_assert_int_eq(th_raw_open(&r, net_node_port(a.srv), &a.ix, a.is.pk), 0);
  send_header_only(&r, 7, 100);
  ck_assert_int_eq(th_wait_closed(r.fd, 3000), 1);
  ck_assert(log_wait(&a.log, "on channel 7 refused (a channel this peer does not use"));
  th_raw_close(&r);
  ck_assert_int_eq(th_raw_open(&r, net_node_port(a.srv), &a.ix, a.is.pk), 0);
  send_header_only(&r, 0, 1 << 20);
  ck_assert_int_eq(th_wait_closed(r.fd, 3000), 1);
  ck_assert(log_wait(&a.log, "message of 1048576 bytes on channel 0 refused (longer than"));
  th_raw_close(&r);
  ck_assert_uint_eq(stats_of(a.srv).msgs_refused, 2);
  honest_served(&a);
  arena_free(&a);
}
END_TEST

/* ---- unread messages across reconnections --------------------------------- */

/* Connect, send a 200 KiB message nobody takes, leave; again and again. The
 * peer's unread bytes stay at one message: a new link drops what the
 * earlier ones left (before, they piled up, 1.2 MB here after six rounds,
 * 1.3 GB in the experiment, past every bound). A message that would
 * pass the bound on one link is refused at its header. */
START_TEST(queue_across_reconnect) {
  const size_t q = 256 << 10, m = 200 << 10;
  net_config_t cfg = {.timeout_ms = 2000, .queue_bytes = q};
  net_limits_t lim = {.max_msg = q, .chans = 1u << 0 | 1u << 1};
  arena_t a;
  th_raw_t r;
  unsigned char *msg = calloc(1, m), *wire = malloc(m + 4096);
  size_t n = net__msg_wire_bytes(m, NET_DEFAULT_MAX_FRAME);
  arena_up(&a, &cfg, &lim);
  for (int i = 1; i <= 6; i++) {
    ck_assert_int_eq(th_raw_open(&r, net_node_port(a.srv), &a.ix, a.is.pk), 0);
    ck_assert_int_eq(net__msg_seal(&r.tx, 0, msg, m, NET_DEFAULT_MAX_FRAME, wire), 0);
    ck_assert_int_eq(th_write(r.fd, wire, n), 0);
    wait_msgs(a.srv, 1, (uint64_t)i);
    ck_assert_msg(rq_bytes(a.srv, 1) <= q + m, "round %d: %zu bytes unread", i,
                  rq_bytes(a.srv, 1));
    th_raw_close(&r);
  }
  ck_assert(log_wait(&a.log, "unread messages (204800 bytes) of its earlier links dropped"));
  /* On one link, while a receiver waits on channel 1 (so reading goes on
   * past queue_bytes): 200 KiB unread, 200 KiB more, and a third that
   * would pass the bound (max_msg + queue_bytes, 512 KiB) is refused at
   * its header. */
  ck_assert_int_eq(th_raw_open(&r, net_node_port(a.srv), &a.ix, a.is.pk), 0);
  ck_assert_int_eq(net_accept(a.srv, 1, 2000), 0);
  taker_t t = {.n = a.srv, .chan = 1};
  uv_thread_t th;
  ck_assert_int_eq(uv_thread_create(&th, taker_main, &t), 0);
  while (rwaiters(a.srv, 1) == 0)
    usleep(1000);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(net__msg_seal(&r.tx, 0, msg, m, NET_DEFAULT_MAX_FRAME, wire), 0);
    if (th_write(r.fd, wire, n) != 0)
      break;
  }
  uv_thread_join(&th);
  ck_assert_int_eq(t.rc, TANDEM_EPROTO);
  ck_assert(log_wait(&a.log, "refused (over the bound of its unread messages"));
  ck_assert_int_eq(th_wait_closed(r.fd, 3000), 1);
  ck_assert_uint_le(rq_bytes(a.srv, 1), q + m);
  th_raw_close(&r);
  honest_served(&a);
  arena_free(&a);
  free(msg);
  free(wire);
}
END_TEST

/* ---- half-open connections ------------------------------------------------ */

/* A TCP connection to 127.0.0.1:port from the loopback address src. */
static int dial_from(const char *src, uint16_t port) {
  struct sockaddr_in sa, me;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  memset(&me, 0, sizeof(me));
  me.sin_family = AF_INET;
  ck_assert_int_eq(inet_pton(AF_INET, src, &me.sin_addr), 1);
  ck_assert_msg(bind(fd, (struct sockaddr *)&me, sizeof(me)) == 0, "bind %s: %s", src,
                strerror(errno));
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
                strerror(errno));
  return fd;
}

static void wait_stat(net_node_t *n, size_t off, uint64_t want) {
  uint64_t v = 0;
  for (int i = 0; i < 5000; i++) {
    net_node_stats_t s = stats_of(n);
    memcpy(&v, (const char *)&s + off, sizeof(v));
    if (v >= want)
      return;
    usleep(1000);
  }
  ck_abort_msg("node counter at offset %zu is %llu, want %llu", off, (unsigned long long)v,
               (unsigned long long)want);
}

/* Strangers open connections and say nothing. From one address, past 3 the
 * new ones are closed unread (no handshake work is done for them); past 6
 * in all, the oldest go. The honest peer still connects, from its own
 * address, while the flood holds every slot (before, every connection was
 * held for the handshake timeout, and 260 of them denied every peer at a
 * low descriptor limit). A listening node also raised its descriptor limit
 * to the hard one. */
START_TEST(halfopen_flood) {
  net_config_t cfg = {.timeout_ms = 2000, .handshake_timeout_ms = 30000, .max_halfopen = 6,
                      .max_halfopen_per_addr = 3};
  arena_t a;
  int fd2[5], fd3[3], fd4[2];
  arena_up(&a, &cfg, NULL);
  uint16_t port = net_node_port(a.srv);
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  ck_assert(rl.rlim_cur == rl.rlim_max);
  for (int i = 0; i < 5; i++)
    fd2[i] = dial_from("127.0.0.2", port);
  /* The fourth and fifth from 127.0.0.2 are refused. */
  ck_assert_int_eq(th_wait_closed(fd2[3], 3000), 1);
  ck_assert_int_eq(th_wait_closed(fd2[4], 3000), 1);
  wait_stat(a.srv, offsetof(net_node_stats_t, halfopen_refused), 2);
  ck_assert(log_wait(&a.log, "refused a connection from 127.0.0.2: 4 half-open connections "
                             "(limit 3"));
  for (int i = 0; i < 3; i++)
    fd3[i] = dial_from("127.0.0.3", port);
  for (int i = 0; i < 2; i++)
    fd4[i] = dial_from("127.0.0.4", port);
  /* Eight half-open: the two oldest (127.0.0.2's first two) went. */
  ck_assert_int_eq(th_wait_closed(fd2[0], 3000), 1);
  ck_assert_int_eq(th_wait_closed(fd2[1], 3000), 1);
  wait_stat(a.srv, offsetof(net_node_stats_t, halfopen_dropped), 2);
  /* The honest peer, with the flood holding every slot. */
  honest_served(&a);
  net_node_stats_t s = stats_of(a.srv);
  ck_assert_uint_eq(s.halfopen_refused, 2);
  ck_assert_uint_ge(s.halfopen_dropped, 2);
  ck_assert_uint_eq(s.handshakes_failed, 0);
  for (int i = 0; i < 5; i++)
    close(fd2[i]);
  for (int i = 0; i < 3; i++)
    close(fd3[i]);
  for (int i = 0; i < 2; i++)
    close(fd4[i]);
  arena_free(&a);
}
END_TEST

/* ---- a frame that fails its tag -------------------------------------------- */

typedef struct {
  net_node_t *n;
  unsigned char buf[256];
  size_t got;
  int rc;
} poster_t;

static void poster_main(void *arg) {
  poster_t *p = arg;
  p->rc = net_msg_recv(p->n, 1, 0, p->buf, sizeof(p->buf), &p->got, 3000);
}

/* The frame is decrypted in place into the receiver's posted buffer before
 * its tag is checked: a bad tag ends the link, and the buffer holds none of
 * the plaintext (before, all but its first byte were left there). */
START_TEST(bad_tag_wiped) {
  net_config_t cfg = {.timeout_ms = 2000};
  arena_t a;
  th_raw_t r;
  poster_t p;
  uv_thread_t th;
  unsigned char msg[200], wire[512];
  arena_up(&a, &cfg, NULL);
  ck_assert_int_eq(th_raw_open(&r, net_node_port(a.srv), &a.ix, a.is.pk), 0);
  ck_assert_int_eq(net_accept(a.srv, 1, 2000), 0);
  memset(&p, 0, sizeof(p));
  memset(p.buf, 0xee, sizeof(p.buf));
  p.n = a.srv;
  ck_assert_int_eq(uv_thread_create(&th, poster_main, &p), 0);
  while (rwaiters(a.srv, 1) == 0)
    usleep(1000);
  memset(msg, 0x5a, sizeof(msg));
  size_t n = net__msg_wire_bytes(sizeof(msg), NET_DEFAULT_MAX_FRAME);
  ck_assert_int_eq(net__msg_seal(&r.tx, 0, msg, sizeof(msg), NET_DEFAULT_MAX_FRAME, wire), 0);
  wire[n - 1] ^= 0x01; /* the tag */
  ck_assert_int_eq(th_write(r.fd, wire, n), 0);
  uv_thread_join(&th);
  ck_assert_int_eq(p.rc, TANDEM_EAUTH);
  for (size_t i = 0; i < sizeof(p.buf); i++)
    ck_assert_msg(p.buf[i] != 0x5a, "plaintext of a forged frame left at byte %zu", i);
  th_raw_close(&r);
  honest_served(&a);
  arena_free(&a);
}
END_TEST

Suite *netattack_suite(void) {
  Suite *s = suite_create("netattack");
  TCase *tc = tcase_create("attacks");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, slow_bytes);
  tcase_add_test(tc, refused_at_header);
  tcase_add_test(tc, queue_across_reconnect);
  tcase_add_test(tc, halfopen_flood);
  tcase_add_test(tc, bad_tag_wiped);
  suite_add_tcase(s, tc);
  return s;
}
