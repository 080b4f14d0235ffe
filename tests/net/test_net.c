/* test_net.c - Check suite for net links between two nodes of this process on
 * 127.0.0.1: handshakes, unknown keys, message sizes around max_frame and a
 * 64 MiB full-duplex exchange, channels and order, timeouts (counting time
 * without progress), length mismatches, reconnection, flow control (a
 * channel never starved behind an unread one; a flooding peer bounded). Payloads come from a fixed-seed generator. */
#include <errno.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uv.h>

#include "net_harness.h"
#include "../test_rand.h"

static void fill(unsigned char *p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) {
    p[i] = (unsigned char)(test_splitmix64(&seed) >> 56);
  }
}

typedef struct {
  net_node_t *a, *b;
  th_id_t ia, ib;
} duo_t;

static void duo_up(duo_t *d, size_t max_frame, int timeout_ms) {
  th_id(&d->ia);
  th_id(&d->ib);
  d->a = th_node(&d->ia, max_frame, timeout_ms);
  d->b = th_node(&d->ib, max_frame, timeout_ms);
  th_pair(d->a, &d->ia, d->b, &d->ib);
  ck_assert_int_eq(net_connect(d->a, 0), 0);
  ck_assert_int_eq(net_accept(d->b, 0, 2000), 0);
}

static void duo_free(duo_t *d) {
  net_node_free(d->a);
  net_node_free(d->b);
}

START_TEST(handshake_ok) {
  duo_t d;
  net_stats_t st;
  net_node_stats_t ns;
  int id = -1;
  duo_up(&d, 0, 2000);
  ck_assert_int_eq(net_peer_up(d.a, 0), 1);
  ck_assert_int_eq(net_peer_up(d.b, 0), 1);
  ck_assert_int_eq(net_accept_any(d.b, &id, 1000), 0);
  ck_assert_int_eq(id, 0);
  ck_assert_int_eq(net_accept_any(d.b, &id, 50), TANDEM_ETIMEDOUT);
  net_peer_stats(d.a, 0, &st);
  ck_assert_uint_eq(st.links, 1);
  net_node_stats(d.b, &ns);
  ck_assert_uint_eq(ns.handshakes_ok, 1);
  ck_assert_int_eq(net_peer_up(d.a, 5), 0);
  ck_assert_int_eq(net_send(d.a, 5, "x", 1), TANDEM_ECLOSED);
  duo_free(&d);
}
END_TEST

START_TEST(unknown_key_rejected) {
  th_id_t ia, ib, ix;
  net_node_t *a, *b;
  net_node_stats_t ns;
  th_id(&ia);
  th_id(&ib);
  th_id(&ix);
  a = th_node(&ia, 0, 2000);
  b = th_node(&ib, 0, 2000);
  /* b knows a stranger's key as peer 0, not a's: a is rejected. */
  ck_assert_int_eq(net_peer_add(a, 0, "127.0.0.1", net_node_port(b), ib.pk), 0);
  ck_assert_int_eq(net_peer_add(b, 0, "127.0.0.1", net_node_port(a), ix.pk), 0);
  ck_assert_int_eq(net_connect(a, 0), TANDEM_EAUTH);
  ck_assert_int_eq(net_peer_up(b, 0), 0);
  /* The other direction: a expects another key at b's address. */
  ck_assert_int_eq(net_peer_add(a, 1, "127.0.0.1", net_node_port(b), ix.pk), 0);
  ck_assert_int_eq(net_peer_add(b, 1, NULL, 0, ia.pk), 0);
  ck_assert_int_eq(net_connect(a, 1), TANDEM_EAUTH);
  ck_assert_int_eq(net_peer_up(a, 1), 0);
  net_node_stats(b, &ns);
  ck_assert_uint_eq(ns.handshakes_ok, 0);
  ck_assert_uint_ge(ns.handshakes_failed, 2);
  /* A key used by two ids is refused. */
  ck_assert_int_eq(net_peer_add(a, 2, NULL, 0, ib.pk), TANDEM_EINVAL);
  ck_assert_int_eq(net_peer_add(a, NET_MAX_PEERS, NULL, 0, ib.pk), TANDEM_EINVAL);
  ck_assert_int_eq(net_peer_add(a, 3, "localhost", 1, ib.pk), TANDEM_EINVAL);
  /* Nobody listening. */
  net_node_free(b);
  ck_assert_int_lt(net_connect(a, 0), 0);
  net_node_free(a);
}
END_TEST

START_TEST(msg_sizes) {
  enum { MF = 1000 };
  duo_t d;
  size_t sizes[] = {0, 1, MF - 1, MF, MF + 1, 3 * MF, 3 * MF + 7, 100000};
  unsigned char *s = malloc(100000), *r = malloc(100000);
  duo_up(&d, MF, 2000);
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t n = sizes[i], got = 12345;
    fill(s, n, 1 + i);
    ck_assert_int_eq(net_send(d.a, 0, s, n), 0);
    memset(r, 0, 100000);
    ck_assert_int_eq(net_recv(d.b, 0, r, n), 0);
    ck_assert_msg(memcmp(s, r, n) == 0, "size %zu", n);
    ck_assert_int_eq(net_msg_send(d.b, 0, 0, s, n), 0);
    ck_assert_int_eq(net_msg_recv(d.a, 0, 0, r, 100000, &got, 2000), 0);
    ck_assert_uint_eq(got, n);
    ck_assert(memcmp(s, r, n) == 0);
  }
  /* Above max_msg of the sender. */
  duo_free(&d);
  free(s);
  free(r);
}
END_TEST

/* One net_msg_send_consume of want[0..n) from s (copied there first) to
 * d's b, checked: delivered whole, every byte of s zero and reported wiped,
 * the canary bytes either side of s untouched and, when `look`, the pages
 * wholly inside s not resident (mincore, before anything reads s again). */
static void consume_one(duo_t *d, unsigned char *s, const unsigned char *want, size_t n,
                        unsigned char *r, size_t rcap, int look) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t got = 0, wiped = 7;
  memset(s - 24, 0xA5, 24);
  memcpy(s, want, n);
  memset(s + n, 0x5A, 24);
  ck_assert_int_eq(net_msg_send_consume(d->a, 0, 0, 0, s, n, &wiped), 0);
  ck_assert_uint_eq(wiped, n);
  if (look && n >= 4 * page) {
    uintptr_t a = ((uintptr_t)s + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t e = ((uintptr_t)s + n) & ~(uintptr_t)(page - 1);
    size_t np = (e - a) / page, resident = 0;
    unsigned char *vec = malloc(np);
    ck_assert_ptr_nonnull(vec);
    ck_assert_int_eq(mincore((void *)a, e - a, vec), 0);
    for (size_t k = 0; k < np; k++)
      resident += vec[k] & 1;
    ck_assert_msg(resident == 0, "%zu of %zu pages still resident", resident, np);
    free(vec);
  }
  ck_assert_int_eq(net_msg_recv(d->b, 0, 0, r, rcap, &got, 5000), 0);
  ck_assert_uint_eq(got, n);
  ck_assert_msg(memcmp(r, want, n) == 0, "%zu bytes: delivered otherwise", n);
  for (size_t k = 0; k < n; k++)
    ck_assert_msg(s[k] == 0, "byte %zu of %zu not wiped", k, n);
  for (size_t k = 0; k < 24; k++)
    ck_assert_msg(s[-1 - (long)k] == 0xA5 && s[n + k] == 0x5A, "a canary beside %zu bytes", n);
}

/* net_msg_send_consume from an aligned and an unaligned start, empty, in one
 * seal piece and in several (1 MiB each), and with frames of 1,000 bytes
 * (pieces of 1,048,000: their ends fall inside pages). */
START_TEST(send_consume_wipes) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE), big = ((size_t)3 << 20) + 12345;
  size_t sizes[] = {0, 1, 5000, big};
  size_t offs[] = {page, page + 24};
  unsigned char *r = malloc(big), *want = malloc(big);
  void *mem = NULL; /* page-aligned, so offs[0] starts a page */
  ck_assert_int_eq(posix_memalign(&mem, page, big + 3 * page), 0);
  ck_assert(r && want);
  for (int frames = 0; frames < 2; frames++) {
    duo_t d;
    duo_up(&d, frames ? 1000 : 0, 5000);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      for (size_t o = 0; o < 2; o++) {
        fill(want, sizes[i], 40 + i + 10 * o);
        consume_one(&d, (unsigned char *)mem + offs[o], want, sizes[i], r, big, 1);
      }
    duo_free(&d);
  }
  free(mem);
  free(r);
  free(want);
}
END_TEST

/* A consuming send that fails midway: the receiver refuses the message at
 * its first frame (max_msg of 1,000) and ends the link, so the sender's
 * later pieces find it gone. What the call reports wiped is exactly the zero
 * prefix of the buffer, and the rest is as it was, for its caller to wipe
 * (mpc_prep_close_part). The sender may seal all 128 pieces before it
 * hears of the refusal (a starved receiver): the call then succeeded, or
 * failed after its last piece, and the whole buffer must be wiped. */
START_TEST(send_consume_fails_midway) {
  const size_t n = (size_t)128 << 20;
  unsigned char *s = malloc(n);
  ck_assert_ptr_nonnull(s);
  memset(s, 0x77, n);
  duo_t d;
  duo_up(&d, 0, 5000);
  net_limits_t lim = {1000, 0, 0};
  ck_assert_int_eq(net_peer_limits(d.b, 0, &lim), 0);
  size_t wiped = 12345;
  int rc = net_msg_send_consume(d.a, 0, 0, 0, s, n, &wiped);
  if (rc == 0) {
    ck_assert_uint_eq(wiped, n);
  } else {
    /* <= n: the refusal may be seen only once the last piece is sealed. */
    ck_assert_msg(wiped > 0 && wiped <= n, "%s with %zu of %zu bytes wiped",
                  tandem_err_name(rc), wiped, n);
  }
  size_t k = 0;
  while (k < wiped && s[k] == 0)
    k++;
  ck_assert_msg(k == wiped, "byte %zu of the %zu reported wiped is not", k, wiped);
  while (k < n && s[k] == 0x77)
    k++;
  ck_assert_msg(k == n, "byte %zu, after the %zu reported wiped, changed", k, wiped);
  duo_free(&d);
  free(s);
}
END_TEST

typedef struct {
  net_node_t *n;
  const unsigned char *s;
  unsigned char *r;
  size_t len;
  int rc;
} xchg_t;

static void xchg_main(void *arg) {
  xchg_t *x = arg;
  x->rc = net_exchange(x->n, 0, x->s, x->len, x->r, x->len);
}

START_TEST(big_full_duplex) {
  const size_t n = (size_t)64 << 20;
  duo_t d;
  unsigned char *sa = malloc(n), *sb = malloc(n), *ra = malloc(n), *rb = malloc(n);
  xchg_t xa, xb;
  uv_thread_t ta, tb;
  net_stats_t st;
  ck_assert(sa && sb && ra && rb);
  fill(sa, n, 11);
  fill(sb, n, 12);
  duo_up(&d, 0, 10000);
  xa = (xchg_t){.n = d.a, .s = sa, .r = ra, .len = n};
  xb = (xchg_t){.n = d.b, .s = sb, .r = rb, .len = n};
  ck_assert_int_eq(uv_thread_create(&ta, xchg_main, &xa), 0);
  ck_assert_int_eq(uv_thread_create(&tb, xchg_main, &xb), 0);
  uv_thread_join(&ta);
  uv_thread_join(&tb);
  ck_assert_msg(xa.rc == 0, "a: %s", tandem_err_name(xa.rc));
  ck_assert_msg(xb.rc == 0, "b: %s", tandem_err_name(xb.rc));
  ck_assert(memcmp(sa, rb, n) == 0);
  ck_assert(memcmp(sb, ra, n) == 0);
  net_peer_stats(d.a, 0, &st);
  ck_assert_uint_eq(st.payload_sent, n);
  ck_assert_uint_eq(st.payload_recvd, n);
  ck_assert_uint_gt(st.wire_sent, n);
  duo_free(&d);
  free(sa);
  free(sb);
  free(ra);
  free(rb);
}
END_TEST

START_TEST(channels_and_order) {
  duo_t d;
  uint32_t v;
  size_t got;
  duo_up(&d, 0, 2000);
  for (uint32_t i = 0; i < 100; i++) {
    ck_assert_int_eq(net_msg_send(d.a, 0, (uint8_t)(i % 3), &i, sizeof(i)), 0);
  }
  /* Channel 2 first, then 0, then 1: each in send order. */
  for (uint8_t c = 3; c-- > 0;) {
    uint8_t ch = c == 2 ? 2 : c == 1 ? 0 : 1;
    for (uint32_t i = ch; i < 100; i += 3) {
      ck_assert_int_eq(net_msg_recv(d.b, 0, ch, &v, sizeof(v), &got, 2000), 0);
      ck_assert_uint_eq(got, sizeof(v));
      ck_assert_uint_eq(v, i);
    }
  }
  ck_assert_int_eq(net_msg_recv(d.b, 0, 7, &v, sizeof(v), &got, 0), TANDEM_ETIMEDOUT);
  duo_free(&d);
}
END_TEST

/* net_msg_take hands the message over: same bytes as sent, a non-NULL buffer
 * for an empty message, a message over cap dropped as TANDEM_EPROTO with the
 * next one still delivered, and a timeout on an empty channel. */
START_TEST(take_hands_over) {
  duo_t d;
  unsigned char big[70000], *got;
  size_t len;
  fill(big, sizeof big, 11);
  duo_up(&d, 4096, 2000);
  ck_assert_int_eq(net_msg_send(d.a, 0, 5, big, sizeof big), 0);
  ck_assert_int_eq(net_msg_send(d.a, 0, 5, big, 0), 0);
  ck_assert_int_eq(net_msg_send(d.a, 0, 5, big, 100), 0);
  ck_assert_int_eq(net_msg_send(d.a, 0, 5, big, 10), 0);
  ck_assert_int_eq(net_msg_take(d.b, 0, 5, sizeof big, &got, &len, 2000), 0);
  ck_assert_uint_eq(len, sizeof big);
  ck_assert_mem_eq(got, big, sizeof big);
  free(got);
  ck_assert_int_eq(net_msg_take(d.b, 0, 5, 0, &got, &len, 2000), 0);
  ck_assert_ptr_nonnull(got);
  ck_assert_uint_eq(len, 0);
  free(got);
  ck_assert_int_eq(net_msg_take(d.b, 0, 5, 99, &got, &len, 2000), TANDEM_EPROTO);
  ck_assert_ptr_null(got);
  ck_assert_int_eq(net_msg_take(d.b, 0, 5, 99, &got, &len, 2000), 0);
  ck_assert_uint_eq(len, 10);
  ck_assert_mem_eq(got, big, 10);
  free(got);
  ck_assert_int_eq(net_msg_take(d.b, 0, 5, 99, &got, &len, 0), TANDEM_ETIMEDOUT);
  ck_assert_int_eq(net_msg_take(d.b, 0, 5, 99, NULL, &len, 0), TANDEM_EINVAL);
  duo_free(&d);
}
END_TEST

START_TEST(timeouts_and_mismatch) {
  duo_t d;
  unsigned char buf[16] = {0};
  size_t got;
  uint64_t t0;
  duo_up(&d, 0, 300);
  /* A stalled peer: nothing arrives. */
  t0 = uv_hrtime();
  ck_assert_int_eq(net_recv(d.a, 0, buf, 8), TANDEM_ETIMEDOUT);
  ck_assert_uint_ge(uv_hrtime() - t0, 250u * 1000000u);
  ck_assert_int_eq(net_peer_up(d.a, 0), 1);
  ck_assert_int_eq(net_msg_recv(d.a, 0, 0, buf, 8, &got, 50), TANDEM_ETIMEDOUT);
  /* A message of another length is taken and reported. */
  ck_assert_int_eq(net_send(d.b, 0, buf, 9), 0);
  ck_assert_int_eq(net_recv(d.a, 0, buf, 8), TANDEM_EPROTO);
  ck_assert_int_eq(net_send(d.b, 0, buf, 16), 0);
  ck_assert_int_eq(net_msg_recv(d.a, 0, 0, buf, 8, &got, 1000), TANDEM_EPROTO);
  /* The link is still good. */
  ck_assert_int_eq(net_send(d.b, 0, "abcdefgh", 8), 0);
  ck_assert_int_eq(net_recv(d.a, 0, buf, 8), 0);
  ck_assert(memcmp(buf, "abcdefgh", 8) == 0);
  duo_free(&d);
}
END_TEST

START_TEST(handshake_timeout) {
  th_id_t ia;
  net_node_t *a;
  net_node_stats_t ns;
  int fd;
  uv_tcp_t *dummy = NULL;
  (void)dummy;
  th_id(&ia);
  a = th_node(&ia, 0, 500);
  /* A client that connects and says nothing is dropped. */
  fd = th_tcp_connect(net_node_port(a));
  ck_assert_int_eq(th_wait_closed(fd, 5000), 1);
  close(fd);
  net_node_stats(a, &ns);
  ck_assert_uint_eq(ns.handshakes_failed, 1);
  net_node_free(a);
}
END_TEST

START_TEST(close_and_reconnect) {
  duo_t d;
  unsigned char buf[4];
  net_stats_t st;
  int id;
  duo_up(&d, 0, 2000);
  ck_assert_int_eq(net_accept_any(d.b, &id, 0), 0);
  ck_assert_int_eq(net_send(d.a, 0, "1234", 4), 0);
  ck_assert_int_eq(net_peer_close(d.a, 0), 0);
  ck_assert_int_eq(net_recv(d.b, 0, buf, 4), 0);
  ck_assert_int_eq(net_recv(d.b, 0, buf, 4), TANDEM_ECLOSED);
  ck_assert_int_eq(net_send(d.a, 0, "1234", 4), TANDEM_ECLOSED);
  /* a restarts with the same identity (and a new port) and dials again. */
  net_node_free(d.a);
  d.a = th_node(&d.ia, 0, 2000);
  ck_assert_int_eq(net_peer_add(d.a, 0, "127.0.0.1", net_node_port(d.b), d.ib.pk), 0);
  ck_assert_int_eq(net_connect(d.a, 0), 0);
  ck_assert_int_eq(net_accept(d.b, 0, 2000), 0);
  ck_assert_int_eq(net_accept_any(d.b, &id, 2000), 0);
  ck_assert_int_eq(id, 0);
  ck_assert_int_eq(net_send(d.b, 0, NULL, 0), 0);
  ck_assert_int_eq(net_exchange(d.a, 0, "abcd", 4, buf, 0), 0);
  ck_assert_int_eq(net_recv(d.b, 0, buf, 4), 0);
  /* A second link from a while the first is up replaces it. */
  ck_assert_int_eq(net_connect(d.a, 0), 0);
  ck_assert_int_eq(net_send(d.a, 0, "wxyz", 4), 0);
  /* b learns of the new link a moment later; a receive blocked across the
   * switch would fail with ECONNRESET, so wait for it. */
  for (int i = 0; i < 200; i++) {
    net_peer_stats(d.b, 0, &st);
    if (st.links == 3)
      break;
    usleep(10000);
  }
  ck_assert_int_eq(net_recv(d.b, 0, buf, 4), 0);
  ck_assert(memcmp(buf, "wxyz", 4) == 0);
  net_peer_stats(d.b, 0, &st);
  ck_assert_uint_eq(st.links, 3);
  duo_free(&d);
}
END_TEST

static void count_log(void *ctx, const char *line) {
  ck_assert_ptr_nonnull(strstr(line, "net: "));
  ++*(int *)ctx;
}

/* queue_bytes bounds what a peer buffers: a receiver that takes nothing
 * pauses reading, the sender's queue fills and net_send times out, the link
 * stays up and everything sent arrives once the receiver reads. */
START_TEST(backpressure) {
  const size_t q = 1 << 20, m = 1 << 20;
  th_id_t ia, ib;
  net_node_t *a, *b;
  int logs = 0, logs_b = 0, r = 0, sent = 0;
  unsigned char *buf = malloc(m), *got = malloc(m);
  th_id(&ia);
  th_id(&ib);
  net_config_t ca = {.listen_host = "127.0.0.1", .pk = ia.pk, .sk = ia.sk, .queue_bytes = q,
                     .timeout_ms = 300, .log = count_log, .log_ctx = &logs};
  net_config_t cb = ca;
  cb.pk = ib.pk;
  cb.sk = ib.sk;
  cb.log_ctx = &logs_b; /* each node logs on its own thread */
  ck_assert_int_eq(net_node_new(&a, &ca), 0);
  ck_assert_int_eq(net_node_new(&b, &cb), 0);
  th_pair(a, &ia, b, &ib);
  ck_assert_int_eq(net_connect(a, 0), 0);
  ck_assert_int_eq(net_accept(b, 0, 1000), 0);
  while (sent < 200) {
    fill(buf, m, (uint64_t)sent);
    r = net_send(a, 0, buf, m);
    if (r)
      break;
    sent++;
  }
  ck_assert_int_eq(r, TANDEM_ETIMEDOUT);
  ck_assert_int_lt(sent, 200);
  ck_assert_int_eq(net_peer_up(a, 0), 1);
  for (int i = 0; i < sent; i++) {
    fill(buf, m, (uint64_t)i);
    ck_assert_int_eq(net_recv(b, 0, got, m), 0);
    ck_assert(memcmp(buf, got, m) == 0);
  }
  ck_assert_int_eq(net_send(a, 0, buf, 1), 0);
  ck_assert_int_eq(net_recv(b, 0, got, 1), 0);
  net_node_free(a);
  net_node_free(b);
  ck_assert_int_ge(logs, 1);
  ck_assert_int_ge(logs_b, 1);
  free(buf);
  free(got);
}
END_TEST

/* Two nodes with queue_bytes q and timeout_ms t; a's link emulation sends
 * rate bytes per second (0: off). Peer 0 of each is the other. */
static void duo_cfg(duo_t *d, size_t q, int t, uint64_t rate) {
  net_config_t ca = {.listen_host = "127.0.0.1", .queue_bytes = q, .timeout_ms = t};
  net_config_t cb = ca;
  th_id(&d->ia);
  th_id(&d->ib);
  ca.pk = d->ia.pk;
  ca.sk = d->ia.sk;
  ca.emu_rate_bps = rate;
  cb.pk = d->ib.pk;
  cb.sk = d->ib.sk;
  ck_assert_int_eq(net_node_new(&d->a, &ca), 0);
  ck_assert_int_eq(net_node_new(&d->b, &cb), 0);
  th_pair(d->a, &d->ia, d->b, &d->ib);
  ck_assert_int_eq(net_connect(d->a, 0), 0);
  ck_assert_int_eq(net_accept(d->b, 0, 2000), 0);
}

/* A message nobody takes, larger than queue_bytes, on channel 0 pauses
 * reading; a receiver that then waits on channel 1, whose message is behind
 * it in the stream, still gets it (reading resumes while it waits), and the
 * large one is delivered intact afterwards. */
START_TEST(starved_channel) {
  const size_t q = 1 << 20, big = 4 << 20;
  duo_t d;
  unsigned char *buf = malloc(big), *got = malloc(big), ctl[16] = "start";
  size_t len = 0;
  duo_cfg(&d, q, 1000, 0);
  fill(buf, big, 7);
  ck_assert_int_eq(net_msg_send(d.a, 0, 0, buf, big), 0);
  usleep(300 * 1000); /* the large message is in and reading paused */
  ck_assert_int_eq(net_msg_send(d.a, 0, 1, ctl, sizeof ctl), 0);
  memset(ctl, 0, sizeof ctl);
  ck_assert_int_eq(net_msg_recv(d.b, 0, 1, ctl, sizeof ctl, &len, 2000), 0);
  ck_assert_uint_eq(len, sizeof ctl);
  ck_assert_str_eq((char *)ctl, "start");
  ck_assert_int_eq(net_msg_recv(d.b, 0, 0, got, big, &len, 2000), 0);
  ck_assert_uint_eq(len, big);
  ck_assert(memcmp(buf, got, big) == 0);
  duo_free(&d);
  free(buf);
  free(got);
}
END_TEST

typedef struct {
  net_node_t *a;
  int n;
  size_t len;
} flood_t;

static void flood_main(void *arg) {
  flood_t *f = arg;
  unsigned char *buf = calloc(1, f->len);
  for (int i = 0; i < f->n; i++)
    if (net_msg_send(f->a, 0, 0, buf, f->len) != 0)
      break;
  free(buf);
}

/* Memory stays bounded against a peer that floods channel 0 while the
 * receiver waits on channel 1: past twice queue_bytes unread, the link ends
 * and the waiting receiver gets the error instead of a hang. */
START_TEST(flood_while_waiting) {
  const size_t q = 1 << 20;
  duo_t d;
  flood_t f;
  uv_thread_t t;
  unsigned char ctl[16];
  size_t len = 0;
  duo_cfg(&d, q, 1000, 0);
  f.a = d.a;
  f.n = 16;
  f.len = q;
  ck_assert_int_eq(uv_thread_create(&t, flood_main, &f), 0);
  ck_assert_int_eq(net_msg_recv(d.b, 0, 1, ctl, sizeof ctl, &len, 5000), TANDEM_EPROTO);
  uv_thread_join(&t);
  ck_assert_int_eq(net_peer_up(d.b, 0), 0);
  duo_free(&d);
}
END_TEST

/* A receive's timeout counts time without progress: a message that takes
 * several timeouts to arrive over a slow link (emulated at 4 MB/s) is
 * received, and so is the send that waits for room in the full queue
 * behind it. */
START_TEST(timeout_is_idle_time) {
  const size_t big = 6 << 20;
  duo_t d;
  unsigned char *buf = malloc(big), *got = malloc(big);
  uint64_t t0;
  duo_cfg(&d, 1 << 20, 300, 4000000);
  fill(buf, big, 11);
  t0 = uv_hrtime();
  ck_assert_int_eq(net_send(d.a, 0, buf, big), 0);
  ck_assert_int_eq(net_send(d.a, 0, buf, 1), 0); /* waits for the queue */
  ck_assert_int_eq(net_recv(d.b, 0, got, big), 0);
  ck_assert(memcmp(buf, got, big) == 0);
  ck_assert_int_eq(net_recv(d.b, 0, got, 1), 0);
  ck_assert_uint_gt(uv_hrtime() - t0, 900000000u); /* three timeouts at least */
  /* With nothing arriving, the timeout still ends a wait. */
  ck_assert_int_eq(net_recv(d.b, 0, got, 1), TANDEM_ETIMEDOUT);
  duo_free(&d);
  free(buf);
  free(got);
}
END_TEST

/* A poll (timeout 0) that finds a message of its channel half arrived waits
 * for the rest while it keeps arriving (over a link emulated at 4 MB/s);
 * with nothing arriving it returns at once. Before, the poll cut such a
 * message off with TANDEM_ETIMEDOUT. */
START_TEST(poll_waits_for_arriving_message) {
  const size_t big = 2 << 20;
  duo_t d;
  unsigned char *buf = malloc(big), *m = NULL;
  size_t len = 0;
  duo_cfg(&d, 4 << 20, 1000, 4000000);
  uint64_t t0 = uv_hrtime();
  ck_assert_int_eq(net_msg_take(d.b, 0, 0, big, &m, &len, 0), TANDEM_ETIMEDOUT);
  ck_assert_uint_lt(uv_hrtime() - t0, 100000000u);
  fill(buf, big, 5);
  ck_assert_int_eq(net_send(d.a, 0, buf, big), 0);
  usleep(150000); /* about half a second to arrive in all; some of it is in */
  ck_assert_int_eq(net_msg_take(d.b, 0, 0, big, &m, &len, 0), 0);
  ck_assert_uint_eq(len, big);
  ck_assert(memcmp(m, buf, big) == 0);
  free(m);
  duo_free(&d);
  free(buf);
}
END_TEST

/* Waits (2 s at most) until node's peer 0 has had `links` links and
 * `msgs` messages have arrived from it (queued, not yet taken). */
static void wait_peer_counts(net_node_t *node, uint64_t links, uint64_t msgs) {
  net_stats_t st;
  for (int i = 0; i < 2000; i++) {
    net_peer_stats(node, 0, &st);
    if (st.links >= links && st.msgs_recvd >= msgs)
      break;
    usleep(1000);
  }
  ck_assert_uint_eq(st.links, links);
  ck_assert_uint_eq(st.msgs_recvd, msgs);
}

/* Takes one message of channel 1 from peer 0 of node bound to link and
 * checks it is want. */
static void take_is(net_node_t *node, uint64_t link, const char *want) {
  unsigned char *m = NULL;
  size_t len = 0;
  ck_assert_int_eq(net_msg_take_on(node, 0, link, 1, 16, &m, &len, 2000), 0);
  ck_assert_msg(len == strlen(want) && memcmp(m, want, len) == 0, "link %llu: got %.*s, want %s",
                (unsigned long long)link, (int)len, (const char *)m, want);
  free(m);
}

/* A receive bound to a link (net_msg_take_on) takes only what arrived on
 * that link: bound to the new link it takes the new link's messages; bound
 * to the old one it fails with ECONNRESET, as what the old link left unread
 * was dropped when the new one came up (kept, it counted against the
 * peer's memory bound, which a peer reconnecting after each message grew
 * for ever); unbound, it takes the new link's in order. Each step waits
 * until b has queued what it is sent, so the order of arrival and take is
 * certain. */
START_TEST(take_stays_on_its_link) {
  duo_t d;
  unsigned char *m = NULL;
  size_t len = 0;
  duo_up(&d, 0, 2000);
  const uint64_t first = 1;
  wait_peer_counts(d.b, first, 0);
  ck_assert_int_eq(net_msg_send(d.a, 0, 1, "old", 3), 0);
  wait_peer_counts(d.b, first, 1);
  ck_assert_int_eq(net_connect(d.a, 0), 0); /* a second link replaces the first */
  wait_peer_counts(d.b, first + 1, 1);
  ck_assert_int_eq(net_msg_send(d.a, 0, 1, "new", 3), 0);
  ck_assert_int_eq(net_msg_send(d.a, 0, 1, "new2", 4), 0);
  wait_peer_counts(d.b, first + 1, 3); /* queued: new, new2 ("old" dropped) */
  take_is(d.b, first + 1, "new");
  ck_assert_int_eq(net_msg_take_on(d.b, 0, first, 1, 16, &m, &len, 2000), TANDEM_ECONNRESET);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(net_msg_take_on(d.b, 0, first + 2, 1, 16, &m, &len, 2000), TANDEM_ECONNRESET);
  take_is(d.b, first + 1, "new2");
  /* Nothing of its own queued, its link up: a bound poll times out. */
  ck_assert_int_eq(net_msg_take_on(d.b, 0, first + 1, 1, 16, &m, &len, 0), TANDEM_ETIMEDOUT);
  /* Unbound (0): what is left after a third link came up, in order. */
  ck_assert_int_eq(net_msg_send(d.a, 0, 1, "old3", 4), 0);
  wait_peer_counts(d.b, first + 1, 4);
  ck_assert_int_eq(net_connect(d.a, 0), 0);
  wait_peer_counts(d.b, first + 2, 4);
  ck_assert_int_eq(net_msg_send(d.a, 0, 1, "new3", 4), 0);
  ck_assert_int_eq(net_msg_send(d.a, 0, 1, "new4", 4), 0);
  wait_peer_counts(d.b, first + 2, 6);
  take_is(d.b, 0, "new3");
  take_is(d.b, 0, "new4");
  ck_assert_int_eq(net_msg_take_on(d.b, 0, first + 1, 1, 16, &m, &len, 0), TANDEM_ECONNRESET);
  /* Everything taken or dropped, some from the middle and the tail of the
   * queue: its byte count (what the memory bounds of read.c compare) is
   * back to 0. */
  uv_mutex_lock(&d.b->mu);
  size_t rq_bytes = d.b->peers[0].rq_bytes;
  int rq_empty = d.b->peers[0].rq_head == NULL && d.b->peers[0].rq_tail == NULL;
  uv_mutex_unlock(&d.b->mu);
  ck_assert_uint_eq(rq_bytes, 0);
  ck_assert(rq_empty);
  duo_free(&d);
}
END_TEST

/* A peer that dials in while the node is starting is never rejected: peers
 * given in the config are declared before the listener accepts (a daemon
 * that declared them after starting could reject the first client). B dials
 * A's port in a loop while A starts there. */
typedef struct {
  net_node_t *b;
  int rc;
} dialer_t;

static void dial_until_answered(void *arg) {
  dialer_t *d = arg;
  for (int i = 0; i < 4000; i++) {
    d->rc = net_connect(d->b, 0);
    if (d->rc != -ECONNREFUSED)
      return;
    usleep(500);
  }
}

/* A send bound to a link (net_msg_send_on) fails once that link is gone,
 * and a send waiting for room in a full queue stays on the link it began
 * with: when the link is replaced meanwhile it fails with ECONNRESET instead
 * of going out on the new link (a restarted peer's, which knows nothing of
 * it). Fails before net_msg_send_on captured the link at its start. */
typedef struct {
  net_node_t *a;
  const unsigned char *buf;
  size_t len;
  int rc, done;
} sender_t;

static void sender_main(void *arg) {
  sender_t *s = arg;
  s->rc = net_send(s->a, 0, s->buf, s->len);
  __atomic_store_n(&s->done, 1, __ATOMIC_SEQ_CST);
}

START_TEST(send_stays_on_its_link) {
  const size_t q = 1 << 20, m = 1 << 20;
  duo_t d;
  net_stats_t st;
  unsigned char got[1], *buf = calloc(1, m);
  duo_cfg(&d, q, 3000, 0);
  net_peer_stats(d.a, 0, &st);
  uint64_t first = st.links;
  ck_assert_uint_eq(first, 1);
  ck_assert_int_eq(net_msg_send_on(d.a, 0, first, 1, "x", 1), 0);
  ck_assert_int_eq(net_msg_send_on(d.a, 0, first + 1, 1, "x", 1), TANDEM_ECONNRESET);
  /* b takes nothing on channel 0: a's queue fills and a sender waits. */
  int r = 0;
  for (int i = 0; i < 64 && r == 0; i++) {
    sender_t probe = {d.a, buf, m, 0, 0};
    uv_thread_t t;
    ck_assert_int_eq(uv_thread_create(&t, sender_main, &probe), 0);
    usleep(300000); /* it has sealed and queued 1 MiB by now, or it waits */
    if (__atomic_load_n(&probe.done, __ATOMIC_SEQ_CST)) {
      uv_thread_join(&t);
      ck_assert_int_eq(probe.rc, 0);
      continue;
    }
    /* This one waits for room: a second link from a replaces the first. */
    ck_assert_int_eq(net_connect(d.a, 0), 0);
    uv_thread_join(&t);
    ck_assert_int_eq(probe.rc, TANDEM_ECONNRESET);
    r = 1;
  }
  ck_assert_msg(r == 1, "no send ever waited for room");
  net_peer_stats(d.a, 0, &st);
  ck_assert_uint_eq(st.links, first + 1);
  ck_assert_int_eq(net_msg_send_on(d.a, 0, first, 1, "y", 1), TANDEM_ECONNRESET);
  ck_assert_int_eq(net_msg_send_on(d.a, 0, first + 1, 1, "z", 1), 0);
  ck_assert_int_eq(net_msg_send_on(d.a, 0, 0, 1, "w", 1), 0);
  /* b: once it has the new link (a receive across the switch fails with
   * ECONNRESET), the second link's messages; the first link's, unread
   * ('x' and the queued megabytes), were dropped when it came up. */
  size_t len;
  for (int i = 0; i < 200; i++) {
    net_peer_stats(d.b, 0, &st);
    if (st.links == 2)
      break;
    usleep(10000);
  }
  ck_assert_int_eq(net_msg_recv(d.b, 0, 1, got, 1, &len, 2000), 0);
  ck_assert(got[0] == 'z');
  ck_assert_int_eq(net_msg_recv(d.b, 0, 1, got, 1, &len, 2000), 0);
  ck_assert(got[0] == 'w');
  duo_free(&d);
  free(buf);
}
END_TEST

START_TEST(peers_declared_at_start) {
  th_id_t ia, ib, ix;
  th_id(&ia);
  th_id(&ib);
  th_id(&ix);
  net_node_t *probe = th_node(&ix, 0, 2000);
  uint16_t port = net_node_port(probe);
  net_node_free(probe);
  net_config_t cb = {.pk = ib.pk, .sk = ib.sk, .timeout_ms = 2000, .handshake_timeout_ms = 2000};
  net_peer_decl_t to_a = {0, "127.0.0.1", port, ia.pk, {0}};
  cb.peers = &to_a;
  cb.npeers = 1;
  net_node_t *a = NULL, *b = NULL;
  ck_assert_int_eq(net_node_new(&b, &cb), 0);
  dialer_t d = {b, 1};
  uv_thread_t t;
  ck_assert_int_eq(uv_thread_create(&t, dial_until_answered, &d), 0);
  usleep(2000);
  net_peer_decl_t to_b = {3, NULL, 0, ib.pk, {0}};
  net_config_t ca = {.listen_host = "127.0.0.1", .listen_port = port, .pk = ia.pk, .sk = ia.sk,
                     .timeout_ms = 2000, .handshake_timeout_ms = 2000, .peers = &to_b,
                     .npeers = 1};
  ck_assert_int_eq(net_node_new(&a, &ca), 0);
  uv_thread_join(&t);
  ck_assert_msg(d.rc == 0, "dial during start: %s", tandem_err_name(d.rc));
  ck_assert_int_eq(net_accept(a, 3, 2000), 0);
  ck_assert_int_eq(net_send(b, 0, "hi", 2), 0);
  char got[2];
  ck_assert_int_eq(net_recv(a, 3, got, 2), 0);
  ck_assert(memcmp(got, "hi", 2) == 0);
  net_node_free(a);
  net_node_free(b);
  /* Bad declarations are refused before anything starts. */
  net_peer_decl_t twice[2] = {{0, NULL, 0, ib.pk, {0}}, {1, NULL, 0, ib.pk, {0}}};
  ca.peers = twice;
  ca.npeers = 2;
  ca.listen_port = 0;
  ck_assert_int_eq(net_node_new(&a, &ca), TANDEM_EINVAL);
  ca.peers = NULL;
  ck_assert_int_eq(net_node_new(&a, &ca), TANDEM_EINVAL);
  net_peer_decl_t bad_id = {NET_MAX_PEERS, NULL, 0, ib.pk, {0}};
  ca.peers = &bad_id;
  ca.npeers = 1;
  ck_assert_int_eq(net_node_new(&a, &ca), TANDEM_EINVAL);
}
END_TEST

Suite *net_suite(void) {
  Suite *s = suite_create("net");
  TCase *tc = tcase_create("links");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, handshake_ok);
  tcase_add_test(tc, unknown_key_rejected);
  tcase_add_test(tc, msg_sizes);
  tcase_add_test(tc, send_consume_wipes);
  tcase_add_test(tc, send_consume_fails_midway);
  tcase_add_test(tc, big_full_duplex);
  tcase_add_test(tc, channels_and_order);
  tcase_add_test(tc, timeouts_and_mismatch);
  tcase_add_test(tc, handshake_timeout);
  tcase_add_test(tc, close_and_reconnect);
  tcase_add_test(tc, backpressure);
  tcase_add_test(tc, starved_channel);
  tcase_add_test(tc, flood_while_waiting);
  tcase_add_test(tc, timeout_is_idle_time);
  tcase_add_test(tc, take_hands_over);
  tcase_add_test(tc, peers_declared_at_start);
  tcase_add_test(tc, send_stays_on_its_link);
  tcase_add_test(tc, poll_waits_for_arriving_message);
  suite_add_tcase(s, tc);
  /* In a case of its own, so that it can be looped alone
   * (CK_RUN_SUITE=net CK_RUN_CASE=take_on). */
  tc = tcase_create("take_on");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, take_stays_on_its_link);
  suite_add_tcase(s, tc);
  return s;
}
