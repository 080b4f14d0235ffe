/* seeds_net.c - writes the seed corpora of the fuzzers of what strangers and
 * peers send: frames sealed with fuzz_net_frame's key (DIR/net_frame),
 * handshake messages (DIR/net_hs), control messages with stats payloads
 * (DIR/ctrl) and cluster configs (DIR/config).
 *
 * Usage: fuzz_seeds_net DIR. Valid inputs let a fuzzer reach the checks
 * behind the framing (the tag, the MACs, the codec's fields, the config's
 * keys) in seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "mpc_cluster.h"
#include "net_int.h"

static const unsigned char key[32] = "tandem-fuzz-frame-key-0123456789";
#define LINK_ID 0x7a11c0deu

static void put(const char *dir, const char *sub, const char *name, const void *buf, size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, sub);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

/* Messages sealed in sequence from seq 0, as a link's first frames. */
static void frames(const char *dir) {
  static const size_t lens[] = {0, 1, 40, 100};
  static const size_t maxf[] = {16, 64, 256, 32};
  unsigned char msg[100], *w = malloc(8192);
  size_t off = 0;
  net__aead_t tx;
  for (size_t i = 0; i < sizeof msg; i++)
    msg[i] = (unsigned char)(i * 7);
  if (w == NULL || net__aead_init(&tx, key, LINK_ID) != 0)
    exit(1);
  for (size_t i = 0; i < 4; i++) {
    char name[32];
    size_t n = net__msg_wire_bytes(lens[i], maxf[i]);
    if (net__msg_seal(&tx, (uint8_t)i, msg, lens[i], maxf[i], w + off) != 0)
      exit(1);
    off += n;
    snprintf(name, sizeof name, "link%zu", i);
    put(dir, "net_frame", name, w, off); /* the link's frames so far */
  }
  net__aead_free(&tx);
  free(w);
}

static void handshakes(const char *dir) {
  unsigned char pi[32], si[32], pr[32], sr[32], in[1 + NET_HS1_BYTES + NET_HS3_BYTES];
  net__hs_t *hs = NULL;
  crypto_kx_keypair(pi, si);
  crypto_kx_keypair(pr, sr);
  if (net__hs_start(&hs, pi, si, pr, in + 1) != 0)
    exit(1);
  net__hs_free(hs);
  randombytes_buf(in + 1 + NET_HS1_BYTES, NET_HS3_BYTES);
  in[0] = 2; /* responder, the expected key set right */
  put(dir, "net_hs", "hs1", in, sizeof in);
  in[0] = 3; /* initiator: the same bytes as an HS2 */
  put(dir, "net_hs", "hs2", in, 1 + NET_HS2_BYTES);
  char hex[1 + 65];
  hex[0] = (char)0x80;
  net__hex_encode(hex + 1, pr, 32);
  put(dir, "net_hs", "pubkey", hex, 65);
}

static void ctrls(const char *dir) {
  uint8_t b[CL_CTRL_HDR + CL_STATS_BYTES];
  for (uint32_t t = CL_MSG_SHARE; t <= CL_MSG_REMOVE; t++) {
    cl_ctrl_t h;
    cl_party_stats_t s;
    char name[32];
    memset(&h, 0, sizeof h);
    memset(&s, 0, sizeof s);
    h.type = t;
    h.status = t == CL_MSG_ACK ? TANDEM_ETIMEDOUT : 0;
    h.seq = 1000 + t;
    h.batch = 16;
    h.peer = CL_CLIENT0;
    h.flags = t == CL_MSG_ACK ? CL_FLAG_STATS : 0;
    snprintf(h.name, sizeof h.name, "model_%u", t);
    h.tag = 0x0123456789abcdefull * t;
    h.version = 77;
    cl_ctrl_encode(&h, b);
    s.rounds = 9;
    s.online_s = 0.25;
    s.fail_code = TANDEM_EPROTO;
    cl_stats_encode(&s, b + CL_CTRL_HDR);
    snprintf(name, sizeof name, "msg%u", t);
    put(dir, "ctrl", name, b, t == CL_MSG_ACK ? sizeof b : CL_CTRL_HDR);
  }
}

static void configs(const char *dir) {
  char text[4096], hex[65];
  size_t n = 0;
  unsigned char pk[32], sk[32];
  static const char *const sec[] = {"p0", "p1", "dealer", "owner", "client", "client bob"};
  n += (size_t)snprintf(text + n, sizeof text - n,
                        "; a seed\n[cluster]\ntimeout_ms = 30000\nhandshake_timeout_ms = 5000\n"
                        "client_max_msg = 1048576\nmax_frame = 262144\nmax_msg = 1073741824\n"
                        "queue_bytes = 67108864\npool = 2\nthreads = 1\n"
                        "emulate_delay_us = 0\nemulate_rate_bps = 0\n");
  for (int i = 0; i < 6; i++) {
    crypto_kx_keypair(pk, sk);
    net__hex_encode(hex, pk, 32);
    n += (size_t)snprintf(text + n, sizeof text - n, "\n[%s]\n", sec[i]);
    if (i < 3)
      n += (size_t)snprintf(text + n, sizeof text - n, "host = 127.0.0.1\nport = %d\n",
                            7100 + i);
    n += (size_t)snprintf(text + n, sizeof text - n, "pubkey = %s\nkey = keys/%d.key\n", hex, i);
    if (i < 3)
      n += (size_t)snprintf(text + n, sizeof text - n, "data = data/%d\n", i);
  }
  put(dir, "config", "full.ini", text, n);
  put(dir, "config", "bad.ini", "[cluster]\ntimeout_ms = -1\n", 27);
}

int main(int argc, char **argv) {
  if (argc != 2 || sodium_init() < 0) {
    fprintf(stderr, "usage: fuzz_seeds_net DIR\n");
    return 2;
  }
  mkdir(argv[1], 0755);
  frames(argv[1]);
  handshakes(argv[1]);
  ctrls(argv[1]);
  configs(argv[1]);
  return 0;
}
