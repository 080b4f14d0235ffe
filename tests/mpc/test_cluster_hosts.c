/* test_cluster_hosts.c - Check suite for the hosts of a cluster config
 * (mpc/src/cluster/config.c): a hostname is resolved at load (localhost to
 * 127.0.0.1), IPv6 literals are taken bare or in brackets, `bind` sets the
 * address a daemon listens on, and a name that does not resolve is one
 * error line naming the section, the key and the value. A daemon's node
 * opens on a config that says `host = localhost` (issue 12). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "mpc_cluster.h"

typedef struct {
  char dir[64];
  char path[128];
  char hex[3][2 * NET_KEY_BYTES + 1];
} hcfg_t;

static const char *const roles[3] = {"p0", "p1", "dealer"};

/* Writes a config: p0, p1, dealer with the given host lines (and extra
 * lines after p0's), ports 7101.., fresh keys; p0's secret key saved. */
static void hcfg_write(hcfg_t *h, const char *host[3], const char *extra) {
  snprintf(h->dir, sizeof h->dir, "/tmp/tandem_hosts_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(h->dir));
  snprintf(h->path, sizeof h->path, "%s/c.ini", h->dir);
  FILE *f = fopen(h->path, "w");
  ck_assert_ptr_nonnull(f);
  for (int i = 0; i < 3; i++) {
    unsigned char pk[NET_KEY_BYTES], sk[NET_KEY_BYTES];
    net_keypair(pk, sk);
    sodium_bin2hex(h->hex[i], sizeof h->hex[i], pk, NET_KEY_BYTES);
    if (i == 0) {
      char kp[160];
      snprintf(kp, sizeof kp, "%s/p0.key", h->dir);
      ck_assert_int_eq(net_key_save(kp, sk), 0);
    }
    fprintf(f, "[%s]\nhost = %s\nport = %d\npubkey = %s\n", roles[i], host[i], 7101 + i,
            h->hex[i]);
    if (i == 0)
      fprintf(f, "key = p0.key\n%s", extra ? extra : "");
  }
  fclose(f);
}

static void hcfg_rm(hcfg_t *h) {
  char p[160];
  snprintf(p, sizeof p, "%s/p0.key", h->dir);
  (void)unlink(p);
  (void)unlink(h->path);
  (void)rmdir(h->dir);
}

START_TEST(hostnames_and_ipv6_resolve) {
  const char *host[3] = {"localhost", "::1", "[::1]"};
  hcfg_t h;
  cl_config_t cfg;
  char err[512] = "";
  hcfg_write(&h, host, "bind = 0.0.0.0\n");
  ck_assert_msg(cl_config_load(h.path, &cfg, err, sizeof err) == 0, "%s", err);
  ck_assert_str_eq(cfg.m[CL_P0].host, "localhost");
  ck_assert_str_eq(cfg.m[CL_P0].addr, "127.0.0.1");
  ck_assert_str_eq(cfg.m[CL_P0].bind, "0.0.0.0");
  ck_assert_str_eq(cfg.m[CL_P1].addr, "::1");
  ck_assert_str_eq(cfg.m[CL_P1].bind, "::1");
  ck_assert_str_eq(cfg.m[CL_DEALER].addr, "::1");
  hcfg_rm(&h);
}
END_TEST

static uint16_t free_port(void) {
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

/* The case of issue 12: a daemon whose host is `localhost` starts its node,
 * listening where its host resolves to (bind defaults to it). */
START_TEST(daemon_listens_on_localhost) {
  const char *host[3] = {"localhost", "127.0.0.1", "127.0.0.1"};
  hcfg_t h;
  cl_config_t cfg;
  char err[512] = "";
  net_node_t *node = NULL;
  hcfg_write(&h, host, NULL);
  ck_assert_msg(cl_config_load(h.path, &cfg, err, sizeof err) == 0, "%s", err);
  /* Port 0 means "dials out only" to cl_node_open: a port free now. */
  cfg.m[CL_P0].port = free_port();
  int rc = cl_node_open(&cfg, CL_P0, 1, &node, NULL, NULL, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_uint_eq(net_node_port(node), cfg.m[CL_P0].port);
  net_node_free(node);
  hcfg_rm(&h);
}
END_TEST

static void load_fails(const char *host[3], const char *extra, const char *const want[],
                       size_t nwant) {
  hcfg_t h;
  cl_config_t cfg;
  char err[512] = "";
  hcfg_write(&h, host, extra);
  ck_assert_int_eq(cl_config_load(h.path, &cfg, err, sizeof err), TANDEM_ECONFIG);
  ck_assert_msg(strchr(err, '\n') == NULL, "not one line: %s", err);
  for (size_t i = 0; i < nwant; i++)
    ck_assert_msg(strstr(err, want[i]) != NULL, "no \"%s\" in: %s", want[i], err);
  hcfg_rm(&h);
}

START_TEST(unresolvable_named) {
  const char *bad_host[3] = {"127.0.0.1", "no-such-host.invalid", "127.0.0.1"};
  const char *ok_host[3] = {"127.0.0.1", "127.0.0.1", "127.0.0.1"};
  static const char *const w1[] = {"[p1]", "host", "no-such-host.invalid"};
  static const char *const w2[] = {"[p0]", "bind", "nowhere.invalid"};
  static const char *const w3[] = {"[p1]", "host", "1.2.3.4.5.6.7.8.invalid"};
  load_fails(bad_host, NULL, w1, 3);
  load_fails(ok_host, "bind = nowhere.invalid\n", w2, 3);
  const char *dots[3] = {"127.0.0.1", "1.2.3.4.5.6.7.8.invalid", "127.0.0.1"};
  load_fails(dots, NULL, w3, 3);
}
END_TEST

START_TEST(bind_only_for_daemons) {
  const char *host[3] = {"127.0.0.1", "127.0.0.1", "127.0.0.1"};
  static const char *const w[] = {"[owner]", "bind"};
  load_fails(host, "[owner]\nbind = 127.0.0.1\n", w, 2);
}
END_TEST

Suite *cluster_hosts_suite(void) {
  Suite *s = suite_create("cluster_hosts");
  TCase *tc = tcase_create("hosts");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, hostnames_and_ipv6_resolve);
  tcase_add_test(tc, daemon_listens_on_localhost);
  tcase_add_test(tc, unresolvable_named);
  tcase_add_test(tc, bind_only_for_daemons);
  suite_add_tcase(s, tc);
  return s;
}
