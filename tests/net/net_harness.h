/* net_harness.h - helpers shared by the net test suites: key pairs, nodes on
 * 127.0.0.1 with kernel-chosen ports, and a raw peer that runs the handshake
 * by hand over a blocking socket so tests can forge frames. */
#ifndef TANDEM_TEST_NET_HARNESS_H
#define TANDEM_TEST_NET_HARNESS_H

#include "net_int.h"

typedef struct {
  unsigned char pk[NET_KEY_BYTES], sk[NET_KEY_BYTES];
} th_id_t;

void th_id(th_id_t *id);
/* A node listening on 127.0.0.1:0 with the given limits (0: defaults). */
net_node_t *th_node(const th_id_t *id, size_t max_frame, int timeout_ms);
/* Declares each to the other as peer 0 (a's peer id for b is 0 and vice versa). */
void th_pair(net_node_t *a, const th_id_t *ia, net_node_t *b, const th_id_t *ib);

typedef struct {
  int fd;
  net__aead_t tx, rx;
} th_raw_t;

/* A blocking TCP socket connected to 127.0.0.1:port, or -errno. The raw
 * peer's functions below use no Check assertion (tests/loopback/net_forge.c
 * and net_attack.c run them outside a suite); th_tcp_connect asserts that
 * the connect succeeded. */
int th_tcp_dial(uint16_t port);
int th_tcp_connect(uint16_t port);
/* Handshake as initiator with identity me to a node with key peer_pk: 0, or
 * an error with nothing left open. */
int th_raw_open(th_raw_t *r, uint16_t port, const th_id_t *me, const unsigned char *peer_pk);
void th_raw_close(th_raw_t *r);
int th_write(int fd, const void *p, size_t n);
/* 1 if the node closed the socket within ms milliseconds. */
int th_wait_closed(int fd, int ms);

#endif
