/* net_attack.c - net_attack, the network half of the attack suite against
 * real daemons (tests/loopback/test_attacks.sh): a client that trickles its
 * input, an unauthenticated flooder, a client that leaves a large unread
 * message behind and reconnects, again and again, and a client that sends
 * on a channel it does not use. Authenticated attacks run the real handshake
 * by hand with the net tests' harness under a client's key. Each attack
 * reports what the daemon did; the script checks the daemon's log and that
 * an honest client is still served.
 *
 *   net_attack slow DEALER_PORT P0_PORT P1_PORT KEY DEALER_PUB P0_PUB P1_PUB MODEL SECS
 *     Asks the dealer for a query of MODEL (batch 1), then sends P0 and P1
 *     the header of an input message and its body one byte every 50 ms.
 *     Exit 0 once both parties closed the connection, 1 if either kept it
 *     open for SECS seconds (the trickle held the query).
 *   net_attack flood PORT SRC N EXPECT
 *     Opens N TCP connections to 127.0.0.1:PORT from the loopback address
 *     SRC and says nothing. Prints "closed K of N" once EXPECT of them were
 *     closed by the daemon (exit 1 if that takes over 10 s), then holds the
 *     rest open until it is killed.
 *   net_attack requeue PORT KEY PEER_PUB ROUNDS BYTES
 *     ROUNDS times: connects, sends one message of BYTES on channel 0 that
 *     nobody takes, and leaves once the daemon has read it (it closes its
 *     end after the end of stream). Exit 0 when all rounds ran.
 *   net_attack channel PORT KEY PEER_PUB CHAN
 *     Sends one short message on channel CHAN. Exit 0 if the daemon closed
 *     the connection within 5 s, 1 if not.
 * Exit 2 on a usage or set-up error.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "mpc_cluster.h"
#include "net_harness.h"

static int usage(void) {
  fprintf(stderr,
          "usage: net_attack slow DPORT P0PORT P1PORT KEY DEALER_PUB P0_PUB P1_PUB MODEL SECS\n"
          "       net_attack flood PORT SRC N EXPECT\n"
          "       net_attack requeue PORT KEY PEER_PUB ROUNDS BYTES\n"
          "       net_attack channel PORT KEY PEER_PUB CHAN\n");
  return 2;
}

static long num(const char *s, long lo, long hi) {
  char *end;
  long v = strtol(s, &end, 10);
  return *end || v < lo || v > hi ? -1 : v;
}

/* 1 if fd was closed by the other end (or failed), 0 if it is still open
 * after ms milliseconds. */
static int closed_within(int fd, int ms) {
  return th_wait_closed(fd, ms);
}

/* Opens an authenticated link to port as the holder of KEY. */
static int open_as(th_raw_t *r, long port, const char *key, const char *peer_pub) {
  th_id_t me;
  unsigned char peer[NET_KEY_BYTES];
  int e = net_key_load(key, me.pk, me.sk);
  if (e == 0)
    e = net_pub_load(peer_pub, peer);
  if (e == 0)
    e = th_raw_open(r, (uint16_t)port, &me, peer);
  sodium_memzero(&me, sizeof me);
  if (e != 0)
    fprintf(stderr, "net_attack: link to port %ld: %s\n", port, tandem_strerror(e));
  return e;
}

/* Seals and writes one message; 0 or an error. */
static int send_msg(th_raw_t *r, uint8_t chan, const unsigned char *msg, size_t len) {
  size_t n = net__msg_wire_bytes(len, NET_DEFAULT_MAX_FRAME);
  unsigned char *w = malloc(n);
  int e = w == NULL ? TANDEM_ENOMEM : net__msg_seal(&r->tx, chan, msg, len, NET_DEFAULT_MAX_FRAME, w);
  if (e == 0)
    e = th_write(r->fd, w, n);
  free(w);
  return e;
}

static int slow(char **a) {
  long dport = num(a[0], 1, 65535), p0 = num(a[1], 1, 65535), p1 = num(a[2], 1, 65535);
  long secs = num(a[8], 1, 3600);
  if (dport < 0 || p0 < 0 || p1 < 0 || secs < 0)
    return usage();
  th_raw_t rd, r[2];
  if (open_as(&r[0], p0, a[3], a[5]) || open_as(&r[1], p1, a[3], a[6]) ||
      open_as(&rd, dport, a[3], a[4]))
    return 2;
  /* The request, as cl_client_query makes it. */
  cl_ctrl_t h;
  uint8_t req[CL_CTRL_HDR];
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_REQ;
  h.batch = 1;
  snprintf(h.name, sizeof h.name, "%s", a[7]);
  h.version = 42;
  cl_ctrl_encode(&h, req);
  if (send_msg(&rd, CL_CHAN_CTRL, req, sizeof req) != 0)
    return 2;
  /* An input message's header and first frame's body, a byte at a time. */
  const size_t len = 1 << 16;
  unsigned char *msg = calloc(1, len), *w[2];
  size_t n = net__msg_wire_bytes(len, NET_DEFAULT_MAX_FRAME), sent[2] = {0, 0};
  int shut[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    w[i] = malloc(n);
    if (!msg || !w[i] || net__msg_seal(&r[i].tx, CL_CHAN_DATA, msg, len, NET_DEFAULT_MAX_FRAME,
                                       w[i]) != 0)
      return 2;
    if (th_write(r[i].fd, w[i], NET_HDR_BYTES) != 0)
      shut[i] = 1;
    sent[i] = NET_HDR_BYTES;
  }
  uint64_t t0 = uv_hrtime(), end = t0 + (uint64_t)secs * 1000000000u;
  while ((!shut[0] || !shut[1]) && uv_hrtime() < end) {
    for (int i = 0; i < 2; i++) {
      if (shut[i])
        continue;
      if (closed_within(r[i].fd, 0) || th_write(r[i].fd, w[i] + sent[i], 1) != 0)
        shut[i] = 1;
      else
        sent[i]++;
    }
    usleep(50000); /* the attacker's pace */
  }
  double el = (double)(uv_hrtime() - t0) / 1e9;
  printf("slow: P0 %s after %zu bytes, P1 %s after %zu bytes, %.1f s\n",
         shut[0] ? "closed" : "open", sent[0], shut[1] ? "closed" : "open", sent[1], el);
  for (int i = 0; i < 2; i++) {
    th_raw_close(&r[i]);
    free(w[i]);
  }
  th_raw_close(&rd);
  free(msg);
  return shut[0] && shut[1] ? 0 : 1;
}

static int flood(char **a) {
  long port = num(a[0], 1, 65535), n = num(a[2], 1, 4096), expect = num(a[3], 0, 4096);
  struct sockaddr_in sa, me;
  if (port < 0 || n < 0 || expect < 0)
    return usage();
  int *fds = calloc((size_t)n, sizeof *fds), *gone = calloc((size_t)n, sizeof *gone);
  if (!fds || !gone)
    return 2;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  memset(&me, 0, sizeof me);
  me.sin_family = AF_INET;
  if (inet_pton(AF_INET, a[1], &me.sin_addr) != 1)
    return usage();
  for (long i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&me, sizeof me) != 0 ||
        connect(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0) {
      perror("net_attack: flood");
      return 2;
    }
  }
  long closed = 0;
  uint64_t end = uv_hrtime() + 10000000000u;
  while (closed < expect && uv_hrtime() < end) {
    for (long i = 0; i < n; i++)
      if (!gone[i] && closed_within(fds[i], 0)) {
        gone[i] = 1;
        closed++;
      }
    if (closed < expect)
      usleep(10000);
  }
  printf("closed %ld of %ld\n", closed, n);
  fflush(stdout);
  if (closed < expect)
    return 1;
  for (;;)
    pause(); /* holds the rest until killed */
}

static int requeue(char **a) {
  long port = num(a[0], 1, 65535), rounds = num(a[3], 1, 1000), bytes = num(a[4], 1, 1L << 30);
  if (port < 0 || rounds < 0 || bytes < 0)
    return usage();
  unsigned char *msg = calloc(1, (size_t)bytes);
  if (!msg)
    return 2;
  for (long i = 0; i < rounds; i++) {
    th_raw_t r;
    if (open_as(&r, port, a[1], a[2]) != 0 || send_msg(&r, CL_CHAN_DATA, msg, (size_t)bytes) != 0)
      return 2;
    /* The daemon closes its end once it has read everything up to ours. */
    shutdown(r.fd, SHUT_WR);
    if (!closed_within(r.fd, 10000)) {
      fprintf(stderr, "net_attack: requeue: round %ld: the daemon kept the link\n", i);
      return 1;
    }
    th_raw_close(&r);
  }
  free(msg);
  printf("requeue: %ld rounds of %ld bytes\n", rounds, bytes);
  return 0;
}

static int channel(char **a) {
  long port = num(a[0], 1, 65535), chan = num(a[3], 0, 255);
  th_raw_t r;
  if (port < 0 || chan < 0)
    return usage();
  if (open_as(&r, port, a[1], a[2]) != 0)
    return 2;
  int e = send_msg(&r, (uint8_t)chan, (const unsigned char *)"hello", 5);
  int closed = e != 0 || closed_within(r.fd, 5000);
  th_raw_close(&r);
  return closed ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 2 || sodium_init() < 0)
    return usage();
  if (strcmp(argv[1], "slow") == 0 && argc == 11)
    return slow(argv + 2);
  if (strcmp(argv[1], "flood") == 0 && argc == 6)
    return flood(argv + 2);
  if (strcmp(argv[1], "requeue") == 0 && argc == 7)
    return requeue(argv + 2);
  if (strcmp(argv[1], "channel") == 0 && argc == 6)
    return channel(argv + 2);
  return usage();
}
