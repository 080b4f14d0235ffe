/* bench_net.c - tandem_net_bench_run: the round trip and full-duplex throughput of the
 * secure channel between two nodes of this process on 127.0.0.1, next to the
 * same patterns over plain blocking TCP sockets (TCP_NODELAY, an 8-byte
 * length before each message), so `tandem bench --transport` can show what the
 * framing and AES-GCM cost. It uses net's public interface only (a
 * measurement, not part of the transport).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "apps.h"
#include "net.h"

typedef struct {
  net_node_t *node;
  int fd;           /* plain mode when >= 0 */
  size_t small, big;
  unsigned rtt_iters, big_iters;
  unsigned char *sbuf, *rbuf;
  int result;
} side_t;

/* ---- plain TCP ---- */

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return TANDEM_ECLOSED;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int plain_send(int fd, const unsigned char *p, size_t n) {
  unsigned char len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
  int r = write_all(fd, len, 8);
  return r ? r : write_all(fd, p, n);
}

static int plain_recv(int fd, unsigned char *p, size_t n) {
  unsigned char len[8];
  uint64_t v = 0;
  int r = read_all(fd, len, 8);
  if (r)
    return r;
  for (int i = 0; i < 8; i++)
    v = v << 8 | len[i];
  if (v != n)
    return TANDEM_EPROTO;
  return read_all(fd, p, n);
}

typedef struct {
  int fd;
  const unsigned char *p;
  size_t n;
  int r;
} writer_t;

static void writer_main(void *arg) {
  writer_t *w = arg;
  w->r = plain_send(w->fd, w->p, w->n);
}

/* ---- both modes ---- */

static int side_send(side_t *s, const unsigned char *p, size_t n) {
  return s->fd >= 0 ? plain_send(s->fd, p, n) : net_send(s->node, 0, p, n);
}

static int side_recv(side_t *s, unsigned char *p, size_t n) {
  return s->fd >= 0 ? plain_recv(s->fd, p, n) : net_recv(s->node, 0, p, n);
}

static int side_exchange(side_t *s) {
  if (s->fd < 0)
    return net_exchange(s->node, 0, s->sbuf, s->big, s->rbuf, s->big);
  /* Blocking sockets need a second thread to write while this one reads. */
  writer_t w = {.fd = s->fd, .p = s->sbuf, .n = s->big};
  uv_thread_t t;
  int r;
  if (uv_thread_create(&t, writer_main, &w) != 0)
    return TANDEM_ENOMEM;
  r = plain_recv(s->fd, s->rbuf, s->big);
  uv_thread_join(&t);
  return r ? r : w.r;
}

/* The echo side of the round trips, then its half of the exchanges. */
static void echo_main(void *arg) {
  side_t *s = arg;
  int r = 0;
  for (unsigned i = 0; i < s->rtt_iters && r == 0; i++) {
    r = side_recv(s, s->rbuf, s->small);
    if (r == 0)
      r = side_send(s, s->rbuf, s->small);
  }
  for (unsigned i = 0; i < s->big_iters && r == 0; i++)
    r = side_exchange(s);
  s->result = r;
}

/* Runs the pattern between a (timed, this thread) and b (echo thread). */
static int measure(side_t *a, side_t *b, double *rtt_us, double *mbps) {
  uv_thread_t t;
  uint64_t t0, t1, t2;
  int r = 0;
  if (uv_thread_create(&t, echo_main, b) != 0)
    return TANDEM_ENOMEM;
  t0 = uv_hrtime();
  for (unsigned i = 0; i < a->rtt_iters && r == 0; i++) {
    r = side_send(a, a->sbuf, a->small);
    if (r == 0)
      r = side_recv(a, a->rbuf, a->small);
  }
  t1 = uv_hrtime();
  for (unsigned i = 0; i < a->big_iters && r == 0; i++)
    r = side_exchange(a);
  t2 = uv_hrtime();
  if (r && a->fd >= 0)
    shutdown(a->fd, SHUT_RDWR); /* unblock the echo thread */
  uv_thread_join(&t);
  if (r == 0)
    r = b->result;
  *rtt_us = (double)(t1 - t0) / 1e3 / (a->rtt_iters ? a->rtt_iters : 1);
  *mbps = (double)a->big * a->big_iters / ((double)(t2 - t1) / 1e9) / 1e6;
  return r;
}

static int plain_pair(int fds[2]) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof(sa);
  int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0), r = 0;
  fds[0] = fds[1] = -1;
  if (ls < 0)
    return -errno;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 1) != 0 ||
      getsockname(ls, (struct sockaddr *)&sa, &sl) != 0) {
    r = -errno;
    goto done;
  }
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    r = -errno;
    goto done;
  }
  fds[1] = accept(ls, NULL, NULL);
  if (fds[1] < 0) {
    r = -errno;
    goto done;
  }
  setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
done:
  close(ls);
  if (r) {
    if (fds[0] >= 0)
      close(fds[0]);
    if (fds[1] >= 0)
      close(fds[1]);
  }
  return r;
}

int tandem_net_bench_run(const tandem_net_bench_opts_t *opts, tandem_net_bench_result_t *out) {
  tandem_net_bench_opts_t o = opts ? *opts : (tandem_net_bench_opts_t){0};
  unsigned char *pk = NULL, *sk = NULL;
  net_node_t *na = NULL, *nb = NULL;
  side_t a, b;
  int r, fds[2];
  if (!out)
    return TANDEM_EINVAL;
  memset(out, 0, sizeof(*out));
  if (!o.small_bytes)
    o.small_bytes = 64;
  if (!o.rtt_iters)
    o.rtt_iters = 2000;
  if (!o.big_bytes)
    o.big_bytes = (size_t)8 << 20;
  if (!o.big_iters)
    o.big_iters = 20;
  if (sodium_init() < 0)
    return TANDEM_ECRYPTO;
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  size_t bufsz = o.big_bytes > o.small_bytes ? o.big_bytes : o.small_bytes;
  a.sbuf = malloc(bufsz);
  a.rbuf = malloc(bufsz);
  b.sbuf = malloc(bufsz);
  b.rbuf = malloc(bufsz);
  pk = sodium_malloc(4 * NET_KEY_BYTES); /* pk_a sk_a pk_b sk_b */
  if (!a.sbuf || !a.rbuf || !b.sbuf || !b.rbuf || !pk) {
    r = TANDEM_ENOMEM;
    goto fail;
  }
  sk = pk + NET_KEY_BYTES;
  randombytes_buf(a.sbuf, bufsz);
  randombytes_buf(b.sbuf, bufsz);
  net_keypair(pk, sk);
  net_keypair(pk + 2 * NET_KEY_BYTES, sk + 2 * NET_KEY_BYTES);
  {
    net_config_t ca = {.listen_host = "127.0.0.1", .pk = pk, .sk = sk};
    net_config_t cb = {.listen_host = "127.0.0.1", .pk = pk + 2 * NET_KEY_BYTES,
                       .sk = sk + 2 * NET_KEY_BYTES};
    r = net_node_new(&na, &ca);
    if (r == 0)
      r = net_node_new(&nb, &cb);
    if (r == 0)
      r = net_peer_add(na, 0, "127.0.0.1", net_node_port(nb), pk + 2 * NET_KEY_BYTES);
    if (r == 0)
      r = net_peer_add(nb, 0, "127.0.0.1", net_node_port(na), pk);
    if (r == 0)
      r = net_connect(na, 0);
    if (r == 0)
      r = net_accept(nb, 0, NET_TIMEOUT_DEFAULT);
    if (r)
      goto fail;
  }
  a.small = b.small = o.small_bytes;
  a.big = b.big = o.big_bytes;
  a.rtt_iters = b.rtt_iters = o.rtt_iters;
  a.big_iters = b.big_iters = o.big_iters;
  a.node = na;
  b.node = nb;
  a.fd = b.fd = -1;
  r = measure(&a, &b, &out->rtt_us_secure, &out->xchg_mbps_secure);
  if (r)
    goto fail;
  r = plain_pair(fds);
  if (r)
    goto fail;
  a.fd = fds[0];
  b.fd = fds[1];
  r = measure(&a, &b, &out->rtt_us_plain, &out->xchg_mbps_plain);
  close(fds[0]);
  close(fds[1]);
fail:
  net_node_free(na);
  net_node_free(nb);
  if (pk)
    sodium_free(pk);
  free(a.sbuf);
  free(a.rbuf);
  free(b.sbuf);
  free(b.rbuf);
  return r;
}
