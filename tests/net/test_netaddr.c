/* test_netaddr.c - Check suite for the addresses a node takes: a link over
 * IPv6 loopback (::1; skipped with a note when lo has no IPv6), and the
 * numeric forms net_peer_add and cfg.listen_host accept or refuse (no
 * hostnames: the cluster's config resolves them before). */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_harness.h"

/* 1 if a socket can bind to ::1 here. */
static int have_ipv6_lo(void) {
  struct sockaddr_in6 sa;
  int ok, fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0)
    return 0;
  memset(&sa, 0, sizeof(sa));
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  close(fd);
  return ok;
}

static net_node_t *node_on(const th_id_t *id, const char *host) {
  net_config_t cfg = {.listen_host = host, .pk = id->pk, .sk = id->sk, .timeout_ms = 2000,
                      .handshake_timeout_ms = 2000};
  net_node_t *n = NULL;
  int r = net_node_new(&n, &cfg);
  ck_assert_msg(r == 0, "net_node_new on %s: %s", host, tandem_err_name(r));
  ck_assert_uint_ne(net_node_port(n), 0);
  return n;
}

START_TEST(ipv6_loopback_link) {
  th_id_t ia, ib;
  net_node_t *a, *b;
  unsigned char got[64];
  net_node_stats_t ns;
  if (!have_ipv6_lo()) {
    printf("netaddr: no IPv6 on lo (cannot bind ::1): ipv6_loopback_link skipped\n");
    return;
  }
  th_id(&ia);
  th_id(&ib);
  a = node_on(&ia, "::1");
  b = node_on(&ib, "::1");
  /* b only accepts (no address for a), a dials b over ::1. */
  ck_assert_int_eq(net_peer_add(a, 0, "::1", net_node_port(b), ib.pk), 0);
  ck_assert_int_eq(net_peer_add(b, 0, NULL, 0, ia.pk), 0);
  ck_assert_int_eq(net_connect(a, 0), 0);
  ck_assert_int_eq(net_accept(b, 0, 2000), 0);
  ck_assert_int_eq(net_send(a, 0, "over ipv6", 9), 0);
  ck_assert_int_eq(net_recv(b, 0, got, 9), 0);
  ck_assert_mem_eq(got, "over ipv6", 9);
  ck_assert_int_eq(net_send(b, 0, "back", 4), 0);
  ck_assert_int_eq(net_recv(a, 0, got, 4), 0);
  ck_assert_mem_eq(got, "back", 4);
  net_node_stats(b, &ns);
  ck_assert_uint_eq(ns.handshakes_ok, 1);
  net_node_free(a);
  net_node_free(b);
}
END_TEST

/* An IPv4 node does not answer on ::1: the address given is the one used. */
START_TEST(ipv6_dial_reaches_only_ipv6) {
  th_id_t ia, ib;
  net_node_t *a, *b;
  if (!have_ipv6_lo()) {
    printf("netaddr: no IPv6 on lo (cannot bind ::1): ipv6_dial_reaches_only_ipv6 skipped\n");
    return;
  }
  th_id(&ia);
  th_id(&ib);
  a = node_on(&ia, "::1");
  b = node_on(&ib, "127.0.0.1");
  ck_assert_int_eq(net_peer_add(a, 0, "::1", net_node_port(b), ib.pk), 0);
  ck_assert_int_ne(net_connect(a, 0), 0);
  ck_assert_int_eq(net_peer_add(a, 0, "127.0.0.1", net_node_port(b), ib.pk), 0);
  ck_assert_int_eq(net_peer_add(b, 0, NULL, 0, ia.pk), 0);
  ck_assert_int_eq(net_connect(a, 0), 0);
  net_node_free(a);
  net_node_free(b);
}
END_TEST

START_TEST(numeric_forms) {
  static const char *good[] = {"127.0.0.1", "::1", "::", "0.0.0.0", "::ffff:127.0.0.1",
                               "2001:db8::7"};
  static const char *bad[] = {"localhost", "[::1]", "1.2.3.4.5", "::1::", "", "127.0.0.1 ",
                              "example.invalid"};
  th_id_t ia, ib;
  net_node_t *a;
  net_config_t cfg;
  th_id(&ia);
  th_id(&ib);
  a = th_node(&ia, 0, 2000);
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    ck_assert_msg(net_peer_add(a, 0, good[i], 7000, ib.pk) == 0, "refused %s", good[i]);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(net_peer_add(a, 1, bad[i], 7000, ib.pk) == TANDEM_EINVAL, "took %s", bad[i]);
  net_node_free(a);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    net_node_t *n = NULL;
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen_host = bad[i];
    cfg.pk = ia.pk;
    cfg.sk = ia.sk;
    ck_assert_int_eq(net_node_new(&n, &cfg), TANDEM_EINVAL);
    ck_assert_ptr_null(n);
  }
}
END_TEST

Suite *netaddr_suite(void) {
  Suite *s = suite_create("netaddr");
  TCase *tc = tcase_create("addr");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, ipv6_loopback_link);
  tcase_add_test(tc, ipv6_dial_reaches_only_ipv6);
  tcase_add_test(tc, numeric_forms);
  suite_add_tcase(s, tc);
  return s;
}
