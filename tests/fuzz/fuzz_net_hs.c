/* fuzz_net_hs.c - libFuzzer target for the handshake of net/
 * (net/src/handshake.c), which every stranger reaches: the responder's
 * answer to a first message (HS1) and its check of the third (HS3), and the
 * initiator's check of a second (HS2), on fuzzed bytes, plus the parser of
 * public keys written in a config (net_pub_parse).
 *
 * The identities are fixed and the ephemeral keys come from a deterministic
 * generator (randombytes_set_implementation), so a run is reproducible.
 * Byte 0 of the input chooses what is fuzzed and whether the fields a node
 * checks first (the key the initiator expects, the responder's static key)
 * are set right, so that the fuzzer reaches the key agreement and the MAC
 * checks behind them. A fuzzed HS2 or HS3 must never pass: the MACs need
 * keys the input cannot hold.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "net_int.h"
#include "../test_rand.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state;

static uint32_t det_random(void) {
  return (uint32_t)(test_splitmix64(&rng_state) >> 32);
}

static void det_buf(void *const buf, const size_t n) {
  for (size_t i = 0; i < n; i++)
    ((unsigned char *)buf)[i] = (unsigned char)det_random();
}

static const char *det_name(void) {
  return "tandem-fuzz";
}

static randombytes_implementation det_impl = {det_name, det_random, NULL, NULL, det_buf, NULL};

static unsigned char r_pk[32], r_sk[32], i_pk[32], i_sk[32];

static void setup(void) {
  static int done;
  if (done)
    return;
  randombytes_set_implementation(&det_impl);
  if (sodium_init() < 0)
    abort();
  rng_state = 1;
  crypto_kx_keypair(r_pk, r_sk);
  crypto_kx_keypair(i_pk, i_sk);
  done = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned char m1[NET_HS1_BYTES], m2[NET_HS2_BYTES], m3[NET_HS3_BYTES];
  net__hs_t *hs = NULL;
  setup();
  rng_state = 7;
  if (size < 1)
    return 0;
  uint8_t mode = data[0];
  data++;
  size--;
  if (mode & 0x80) { /* a public key in a config */
    char hex[129];
    size_t n = size < 128 ? size : 128;
    unsigned char pk[32];
    memcpy(hex, data, n);
    hex[n] = '\0';
    (void)net_pub_parse(hex, pk);
    return 0;
  }
  if (!(mode & 1)) { /* responder: HS1 in, then HS3 */
    if (size < NET_HS1_BYTES)
      return 0;
    memcpy(m1, data, NET_HS1_BYTES);
    if (mode & 2)
      memcpy(m1 + 64, r_pk, 32);
    int r = net__hs_respond(&hs, r_pk, r_sk, m1, m2);
    if (r == 0) {
      if (size >= NET_HS1_BYTES + NET_HS3_BYTES &&
          net__hs_finish_responder(hs, data + NET_HS1_BYTES) == 0)
        abort();
      net__hs_free(hs);
    } else if (r != TANDEM_EAUTH && r != TANDEM_ENOMEM) {
      abort();
    }
    return 0;
  }
  /* initiator: HS2 in */
  if (size < NET_HS2_BYTES)
    return 0;
  if (net__hs_start(&hs, i_pk, i_sk, r_pk, m1) != 0)
    abort();
  memcpy(m2, data, NET_HS2_BYTES);
  if (mode & 2)
    memcpy(m2 + 32, r_pk, 32);
  if (net__hs_finish_initiator(hs, m2, m3) == 0)
    abort();
  net__hs_free(hs);
  return 0;
}
