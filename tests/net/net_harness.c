/* net_harness.c - see net_harness.h. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "net_harness.h"

void th_id(th_id_t *id) {
  net_keypair(id->pk, id->sk);
}

net_node_t *th_node(const th_id_t *id, size_t max_frame, int timeout_ms) {
  net_config_t cfg = {.listen_host = "127.0.0.1",
                      .pk = id->pk,
                      .sk = id->sk,
                      .max_frame = max_frame,
                      .timeout_ms = timeout_ms,
                      .handshake_timeout_ms = 2000};
  net_node_t *n = NULL;
  int r = net_node_new(&n, &cfg);
  ck_assert_msg(r == 0, "net_node_new: %s", tandem_err_name(r));
  ck_assert_uint_ne(net_node_port(n), 0);
  return n;
}

void th_pair(net_node_t *a, const th_id_t *ia, net_node_t *b, const th_id_t *ib) {
  ck_assert_int_eq(net_peer_add(a, 0, "127.0.0.1", net_node_port(b), ib->pk), 0);
  ck_assert_int_eq(net_peer_add(b, 0, "127.0.0.1", net_node_port(a), ia->pk), 0);
}

int th_tcp_dial(uint16_t port) {
  struct sockaddr_in sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -errno;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

int th_tcp_connect(uint16_t port) {
  int fd = th_tcp_dial(port);
  ck_assert_msg(fd >= 0, "connect to port %u: %s", (unsigned)port, tandem_strerror(fd));
  return fd;
}

int th_write(int fd, const void *p, size_t n) {
  const unsigned char *b = p;
  while (n > 0) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w < 0)
      return -errno;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_n(int fd, unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r <= 0)
      return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

int th_raw_open(th_raw_t *r, uint16_t port, const th_id_t *me, const unsigned char *peer_pk) {
  unsigned char frame[NET_HDR_BYTES + NET_HS1_BYTES], m3[NET_HS3_BYTES];
  net__hdr_t h = {.type = NET_FT_HS1, .len = NET_HS1_BYTES};
  net__hs_t *hs = NULL;
  const unsigned char *tx, *rx;
  uint32_t link_id;
  int e;
  memset(r, 0, sizeof(*r));
  if ((r->fd = th_tcp_dial(port)) < 0)
    return r->fd;
  if ((e = net__hs_start(&hs, me->pk, me->sk, peer_pk, frame + NET_HDR_BYTES)) != 0)
    goto fail;
  net__hdr_put(frame, &h);
  if ((e = th_write(r->fd, frame, sizeof(frame))) != 0)
    goto fail;
  if (read_n(r->fd, frame, NET_HDR_BYTES) != 0 || net__hdr_get(&h, frame) != 0 ||
      h.type != NET_FT_HS2 || read_n(r->fd, frame + NET_HDR_BYTES, NET_HS2_BYTES) != 0) {
    e = TANDEM_EAUTH;
    goto fail;
  }
  if ((e = net__hs_finish_initiator(hs, frame + NET_HDR_BYTES, m3)) != 0)
    goto fail;
  h = (net__hdr_t){.type = NET_FT_HS3, .len = NET_HS3_BYTES};
  net__hdr_put(frame, &h);
  memcpy(frame + NET_HDR_BYTES, m3, NET_HS3_BYTES);
  if ((e = th_write(r->fd, frame, NET_HDR_BYTES + NET_HS3_BYTES)) != 0)
    goto fail;
  net__hs_keys(hs, &tx, &rx, &link_id);
  if ((e = net__aead_init(&r->tx, tx, link_id)) != 0)
    goto fail;
  if ((e = net__aead_init(&r->rx, rx, link_id)) != 0) {
    net__aead_free(&r->tx);
    goto fail;
  }
  net__hs_free(hs);
  return 0;
fail:
  net__hs_free(hs);
  close(r->fd);
  r->fd = -1;
  return e;
}

void th_raw_close(th_raw_t *r) {
  if (r->fd >= 0)
    close(r->fd);
  r->fd = -1;
  net__aead_free(&r->tx);
  net__aead_free(&r->rx);
}

int th_wait_closed(int fd, int ms) {
  unsigned char buf[4096];
  struct pollfd p = {.fd = fd, .events = POLLIN};
  for (;;) {
    int r = poll(&p, 1, ms);
    if (r <= 0)
      return 0;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      return 1;
  }
}
