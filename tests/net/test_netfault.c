/* test_netfault.c - Check suite for hostile input to a node: a raw client
 * sends garbage, a truncated frame, a frame with a flipped ciphertext bit, a
 * replayed frame, an oversized length. Each must end that link (EPROTO or
 * EAUTH for a receiver blocked on it) and leave the node serving a good
 * peer. The raw client runs the real handshake by hand (net_int.h). */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "net_harness.h"

typedef struct {
  th_id_t is, ig, ix; /* server, good peer, attacker (declared as peer 1) */
  net_node_t *srv, *good;
} arena_t;

static void arena_up(arena_t *a) {
  th_id(&a->is);
  th_id(&a->ig);
  th_id(&a->ix);
  a->srv = th_node(&a->is, 1000, 1000);
  a->good = th_node(&a->ig, 1000, 1000);
  th_pair(a->srv, &a->is, a->good, &a->ig);
  ck_assert_int_eq(net_peer_add(a->srv, 1, NULL, 0, a->ix.pk), 0);
}

/* The server still talks to the good peer. */
static void arena_check_and_free(arena_t *a) {
  unsigned char buf[5];
  ck_assert_int_eq(net_connect(a->good, 0), 0);
  ck_assert_int_eq(net_accept(a->srv, 0, 1000), 0);
  ck_assert_int_eq(net_send(a->good, 0, "hello", 5), 0);
  ck_assert_int_eq(net_recv(a->srv, 0, buf, 5), 0);
  ck_assert(memcmp(buf, "hello", 5) == 0);
  net_node_free(a->srv);
  net_node_free(a->good);
}

START_TEST(garbage) {
  arena_t a;
  net_node_stats_t ns;
  unsigned char junk[200];
  int fd;
  arena_up(&a);
  for (size_t i = 0; i < sizeof(junk); i++)
    junk[i] = (unsigned char)(i * 37 + 1);
  fd = th_tcp_connect(net_node_port(a.srv));
  ck_assert_int_eq(th_write(fd, junk, sizeof(junk)), 0);
  ck_assert_int_eq(th_wait_closed(fd, 3000), 1);
  close(fd);
  /* A good-looking header with a huge handshake length. */
  {
    unsigned char hdr[NET_HDR_BYTES];
    net__hdr_t h = {.type = NET_FT_HS1, .len = 0xffffffffu};
    net__hdr_put(hdr, &h);
    fd = th_tcp_connect(net_node_port(a.srv));
    ck_assert_int_eq(th_write(fd, hdr, sizeof(hdr)), 0);
    ck_assert_int_eq(th_wait_closed(fd, 3000), 1);
    close(fd);
  }
  net_node_stats(a.srv, &ns);
  ck_assert_uint_eq(ns.handshakes_failed, 2);
  arena_check_and_free(&a);
}
END_TEST

/* Sends one sealed message of n bytes from the raw peer into out. */
static size_t seal(th_raw_t *r, unsigned char *out, size_t n) {
  unsigned char msg[3000];
  memset(msg, 0x5a, sizeof(msg));
  ck_assert_int_eq(net__msg_seal(&r->tx, 0, msg, n, 1000, out), 0);
  return net__msg_wire_bytes(n, 1000);
}

enum { F_TRUNC, F_FLIP, F_REPLAY, F_REORDER, F_BIGLEN, F_HDRFLIP };

static void attack(int kind, int want) {
  arena_t a;
  th_raw_t r;
  unsigned char w1[4000], w2[4000], buf[3000];
  size_t n1, n2, got;
  arena_up(&a);
  ck_assert_int_eq(th_raw_open(&r, net_node_port(a.srv), &a.ix, a.is.pk), 0);
  ck_assert_int_eq(net_accept(a.srv, 1, 1000), 0);
  /* One good message first: it is delivered even after the link dies. */
  n1 = seal(&r, w1, 10);
  ck_assert_int_eq(th_write(r.fd, w1, n1), 0);
  ck_assert_int_eq(net_msg_recv(a.srv, 1, 0, buf, sizeof(buf), &got, 1000), 0);
  ck_assert_uint_eq(got, 10);
  n2 = seal(&r, w2, 2500); /* three frames */
  switch (kind) {
  case F_TRUNC:
    ck_assert_int_eq(th_write(r.fd, w2, n2 - 100), 0);
    shutdown(r.fd, SHUT_WR);
    break;
  case F_FLIP:
    w2[NET_HDR_BYTES + 5] ^= 0x10;
    ck_assert_int_eq(th_write(r.fd, w2, n2), 0);
    break;
  case F_HDRFLIP:
    w2[6] ^= 1; /* the channel: authenticated as AAD */
    ck_assert_int_eq(th_write(r.fd, w2, n2), 0);
    break;
  case F_REPLAY:
    ck_assert_int_eq(th_write(r.fd, w1, n1), 0);
    break;
  case F_REORDER: {
    size_t f = NET_HDR_BYTES + 1000 + NET_TAG_BYTES;
    ck_assert_int_eq(th_write(r.fd, w2 + f, f), 0);
    ck_assert_int_eq(th_write(r.fd, w2, f), 0);
    break;
  }
  case F_BIGLEN: {
    net__hdr_t h;
    ck_assert_int_eq(net__hdr_get(&h, w2), 0);
    h.len = 5000; /* above max_frame */
    net__hdr_put(w2, &h);
    ck_assert_int_eq(th_write(r.fd, w2, n2), 0);
    break;
  }
  }
  ck_assert_int_eq(th_wait_closed(r.fd, 3000), 1);
  ck_assert_int_eq(net_msg_recv(a.srv, 1, 0, buf, sizeof(buf), &got, 1000), want);
  ck_assert_int_eq(net_peer_up(a.srv, 1), 0);
  ck_assert_int_eq(net_send(a.srv, 1, "x", 1), want);
  th_raw_close(&r);
  {
    net_node_stats_t ns;
    net_node_stats(a.srv, &ns);
    ck_assert_uint_eq(ns.links_failed, 1);
  }
  arena_check_and_free(&a);
}

START_TEST(truncated) { attack(F_TRUNC, TANDEM_EPROTO); }
END_TEST
START_TEST(flipped_bit) { attack(F_FLIP, TANDEM_EAUTH); }
END_TEST
START_TEST(flipped_header) { attack(F_HDRFLIP, TANDEM_EAUTH); }
END_TEST
START_TEST(replayed) { attack(F_REPLAY, TANDEM_EPROTO); }
END_TEST
START_TEST(reordered) { attack(F_REORDER, TANDEM_EPROTO); }
END_TEST
START_TEST(oversized) { attack(F_BIGLEN, TANDEM_EPROTO); }
END_TEST

/* A receiver whose buffer was posted (net_msg_recv) times out while a
 * message is half in it: the part that arrived moves to the node's memory
 * and is wiped from the buffer, and the message, once complete, goes whole
 * to the next receive. */
typedef struct {
  net_node_t *n;
  unsigned char buf[3000];
  size_t got;
  int r;
} late_rx_t;

static void late_rx_main(void *arg) {
  late_rx_t *l = arg;
  l->r = net_msg_recv(l->n, 1, 0, l->buf, sizeof(l->buf), &l->got, 400);
}

START_TEST(posted_recv_timeout) {
  arena_t a;
  th_raw_t r;
  late_rx_t l;
  uv_thread_t t;
  unsigned char w[4000], buf[3000];
  size_t n, got, f = NET_HDR_BYTES + 1000 + NET_TAG_BYTES;
  arena_up(&a);
  ck_assert_int_eq(th_raw_open(&r, net_node_port(a.srv), &a.ix, a.is.pk), 0);
  ck_assert_int_eq(net_accept(a.srv, 1, 1000), 0);
  memset(&l, 0, sizeof(l));
  memset(l.buf, 0xee, sizeof(l.buf));
  l.n = a.srv;
  ck_assert_int_eq(uv_thread_create(&t, late_rx_main, &l), 0);
  uv_sleep(100); /* the receiver is waiting with its buffer posted */
  n = seal(&r, w, 2500); /* three frames */
  ck_assert_int_eq(th_write(r.fd, w, f + 300), 0); /* a frame and a bit */
  uv_thread_join(&t);
  ck_assert_int_eq(l.r, TANDEM_ETIMEDOUT);
  for (size_t i = 0; i < sizeof(l.buf); i++)
    ck_assert_msg(l.buf[i] != 0x5a, "plaintext left in a timed-out buffer at %zu", i);
  ck_assert_int_eq(th_write(r.fd, w + f + 300, n - f - 300), 0);
  ck_assert_int_eq(net_msg_recv(a.srv, 1, 0, buf, sizeof(buf), &got, 1000), 0);
  ck_assert_uint_eq(got, 2500);
  for (size_t i = 0; i < got; i++)
    ck_assert_uint_eq(buf[i], 0x5a);
  ck_assert_int_eq(net_peer_up(a.srv, 1), 1);
  th_raw_close(&r);
  arena_check_and_free(&a);
}
END_TEST

START_TEST(raw_wrong_server_key) {
  arena_t a;
  th_raw_t r;
  arena_up(&a);
  /* The raw client expects the good peer's key at the server: rejected. */
  ck_assert_int_eq(th_raw_open(&r, net_node_port(a.srv), &a.ix, a.ig.pk), TANDEM_EAUTH);
  th_raw_close(&r);
  arena_check_and_free(&a);
}
END_TEST

Suite *netfault_suite(void) {
  Suite *s = suite_create("netfault");
  TCase *tc = tcase_create("faults");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, garbage);
  tcase_add_test(tc, truncated);
  tcase_add_test(tc, flipped_bit);
  tcase_add_test(tc, flipped_header);
  tcase_add_test(tc, replayed);
  tcase_add_test(tc, reordered);
  tcase_add_test(tc, oversized);
  tcase_add_test(tc, raw_wrong_server_key);
  tcase_add_test(tc, posted_recv_timeout);
  suite_add_tcase(s, tc);
  return s;
}
