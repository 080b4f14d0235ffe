/* net_forge.c - net_forge, a hostile but authenticated peer for the loopback
 * tests: it runs the real handshake with a daemon's port under a key the
 * daemon knows (a client's), then breaks the channel in one of the ways a
 * man in the middle or a broken peer would, and checks that the daemon ends
 * the connection. The daemon's own log and its next query are the test
 * script's to check (tests/loopback/test_daemons.sh).
 *
 *   net_forge PORT KEY PEER_PUB ATTACK [MAX_FRAME]
 *
 * KEY is a secret key file of `tandem keygen`, PEER_PUB the daemon's public
 * key file, MAX_FRAME the cluster's max_frame (default net's). ATTACK:
 * truncated (half a frame, then end of stream), flipped (one ciphertext bit
 * flipped), replayed (a good frame sent again), reordered (the second of two
 * good frames first). Exit 0 when the daemon closed the connection within 5
 * seconds, 1 when it did not, 2 on a usage or set-up error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

#include "net_harness.h"

static int usage(void) {
  fprintf(stderr, "usage: net_forge PORT KEY PEER_PUB truncated|flipped|replayed|reordered "
                  "[MAX_FRAME]\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 5 || argc > 6 || sodium_init() < 0)
    return usage();
  long port = strtol(argv[1], NULL, 10);
  size_t max_frame = argc == 6 ? strtoul(argv[5], NULL, 10) : NET_DEFAULT_MAX_FRAME;
  const char *attack = argv[4];
  if (port <= 0 || port > 65535 || max_frame == 0 || max_frame > NET_DEFAULT_MAX_FRAME)
    return usage();
  th_id_t me;
  unsigned char peer[NET_KEY_BYTES];
  int e = net_key_load(argv[2], me.pk, me.sk);
  if (e == 0)
    e = net_pub_load(argv[3], peer);
  if (e != 0) {
    fprintf(stderr, "net_forge: keys: %s\n", tandem_strerror(e));
    return 2;
  }
  th_raw_t r;
  if ((e = th_raw_open(&r, (uint16_t)port, &me, peer)) != 0) {
    fprintf(stderr, "net_forge: handshake: %s\n", tandem_strerror(e));
    sodium_memzero(&me, sizeof me);
    return 2;
  }
  sodium_memzero(&me, sizeof me);
  /* Two one-frame messages of channel 0 (protocol data, which a daemon drops
   * unread when it carries no step tag of its), sealed in sequence. */
  unsigned char msg[64], w1[256], w2[256];
  memset(msg, 0x5a, sizeof msg);
  size_t n = net__msg_wire_bytes(sizeof msg, max_frame);
  if (n > sizeof w1 || net__msg_seal(&r.tx, 0, msg, sizeof msg, max_frame, w1) != 0 ||
      net__msg_seal(&r.tx, 0, msg, sizeof msg, max_frame, w2) != 0) {
    fprintf(stderr, "net_forge: sealing failed\n");
    th_raw_close(&r);
    return 2;
  }
  if (strcmp(attack, "truncated") == 0) {
    e = th_write(r.fd, w1, n / 2);
    shutdown(r.fd, SHUT_WR);
  } else if (strcmp(attack, "flipped") == 0) {
    w1[n - NET_TAG_BYTES - 3] ^= 0x04;
    e = th_write(r.fd, w1, n);
  } else if (strcmp(attack, "replayed") == 0) {
    if ((e = th_write(r.fd, w1, n)) == 0)
      e = th_write(r.fd, w1, n);
  } else if (strcmp(attack, "reordered") == 0) {
    if ((e = th_write(r.fd, w2, n)) == 0)
      e = th_write(r.fd, w1, n);
  } else {
    th_raw_close(&r);
    return usage();
  }
  /* A write the daemon cut short (it closed first) counts as closed. */
  int closed = e != 0 || th_wait_closed(r.fd, 5000);
  th_raw_close(&r);
  if (!closed) {
    fprintf(stderr, "net_forge: %s: the daemon kept the connection open\n", attack);
    return 1;
  }
  return 0;
}
