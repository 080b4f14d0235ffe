/* handshake.c - the mutual-authentication handshake that starts every link.
 *
 * Each node has a static X25519 identity (s, S = s*G) and knows the static
 * keys of its peers. The initiator I (s_i, S_i) dials the responder R
 * (s_r, S_r); both make fresh ephemeral keys (e_i, E_i), (e_r, E_r):
 *
 *   1. I -> R  HS1: E_i | S_i | S_r (the key I expects R to have)
 *      R checks S_r is its own key and S_i a declared peer, else it answers
 *      REJECT and closes.
 *   2. R -> I  HS2: E_r | S_r | MAC_r
 *   3. I -> R  HS3: MAC_i
 *
 * Both compute the four X25519 products of an ephemeral-ephemeral,
 * ephemeral-static (both ways) and static-static exchange, as in Noise KK:
 *   ee = DH(e_i, E_r)  es = DH(e_i, S_r)  se = DH(s_i, E_r)  ss = DH(s_i, S_r)
 * and the transcript hash h = BLAKE2b("tandem/hs/v1" | HS1 | E_r | S_r), which
 * binds both static keys and both ephemeral keys. The chaining key is
 * ck = BLAKE2b_key=h(ee | es | se | ss); every other key is
 * BLAKE2b_key=ck(label) for the labels "i2r", "r2i", "confirm-r", "confirm-i",
 * "link-id". MAC_r = BLAKE2b_key=confirm-r(h) proves R knows s_r (es cannot be
 * computed without s_r or e_i) and is fresh (E_i); MAC_i = BLAKE2b_key=confirm-i(h)
 * proves I knows s_i (se needs s_i or e_r) and is fresh (E_r). The two MACs use
 * different keys, so neither can be reflected. Forward secrecy comes from ee:
 * a later theft of both static keys does not reveal the traffic keys. The
 * traffic keys i2r and r2i feed AES-256-GCM (frame.c); link-id names the link
 * in every frame header. An X25519 product that is all zeros (a low-order
 * point) fails the handshake. Identities travel in clear: Tandem hides what is
 * said, not who is talking.
 */
#include <string.h>

#include <sodium.h>

#include "net_int.h"

struct net__hs_s {
  int initiator;
  unsigned char s_pk[32], s_sk[32]; /* own static */
  unsigned char e_pk[32], e_sk[32]; /* own ephemeral */
  unsigned char peer_s[32], peer_e[32];
  unsigned char h[32], ck[32];
  unsigned char i2r[32], r2i[32], conf_r[32], conf_i[32];
  uint32_t link_id;
};

static const char hs_label[] = "tandem/hs/v1";

static net__hs_t *hs_alloc(const unsigned char pk[32], const unsigned char sk[32]) {
  net__hs_t *hs = sodium_malloc(sizeof(*hs));
  if (!hs)
    return NULL;
  memset(hs, 0, sizeof(*hs));
  memcpy(hs->s_pk, pk, 32);
  memcpy(hs->s_sk, sk, 32);
  crypto_kx_keypair(hs->e_pk, hs->e_sk);
  return hs;
}

void net__hs_free(net__hs_t *hs) {
  if (!hs)
    return;
  sodium_memzero(hs, sizeof(*hs));
  sodium_free(hs);
}

static void kdf(unsigned char out[32], const unsigned char ck[32], const char *label) {
  crypto_generichash(out, 32, (const unsigned char *)label, strlen(label), ck, 32);
}

/* Hashes the transcript (msg1 and the first 64 bytes of msg2), runs the four
 * DHs and derives every key. The roles decide which key plays which part. */
static int derive(net__hs_t *hs, const unsigned char msg1[NET_HS1_BYTES],
                  const unsigned char msg2_head[64]) {
  unsigned char dh[128];
  crypto_generichash_state st;
  int bad = 0;
  crypto_generichash_init(&st, NULL, 0, 32);
  crypto_generichash_update(&st, (const unsigned char *)hs_label, sizeof(hs_label) - 1);
  crypto_generichash_update(&st, msg1, NET_HS1_BYTES);
  crypto_generichash_update(&st, msg2_head, 64);
  crypto_generichash_final(&st, hs->h, 32);
  if (hs->initiator) {
    bad |= crypto_scalarmult(dh, hs->e_sk, hs->peer_e);        /* ee */
    bad |= crypto_scalarmult(dh + 32, hs->e_sk, hs->peer_s);   /* es */
    bad |= crypto_scalarmult(dh + 64, hs->s_sk, hs->peer_e);   /* se */
    bad |= crypto_scalarmult(dh + 96, hs->s_sk, hs->peer_s);   /* ss */
  } else {
    bad |= crypto_scalarmult(dh, hs->e_sk, hs->peer_e);        /* ee */
    bad |= crypto_scalarmult(dh + 32, hs->s_sk, hs->peer_e);   /* es */
    bad |= crypto_scalarmult(dh + 64, hs->e_sk, hs->peer_s);   /* se */
    bad |= crypto_scalarmult(dh + 96, hs->s_sk, hs->peer_s);   /* ss */
  }
  crypto_generichash(hs->ck, 32, dh, sizeof(dh), hs->h, 32);
  sodium_memzero(dh, sizeof(dh));
  sodium_memzero(&st, sizeof(st));
  if (bad)
    return TANDEM_EAUTH;
  kdf(hs->i2r, hs->ck, "i2r");
  kdf(hs->r2i, hs->ck, "r2i");
  kdf(hs->conf_r, hs->ck, "confirm-r");
  kdf(hs->conf_i, hs->ck, "confirm-i");
  {
    unsigned char id[32];
    kdf(id, hs->ck, "link-id");
    hs->link_id = ((uint32_t)id[0] << 24) | ((uint32_t)id[1] << 16) | ((uint32_t)id[2] << 8) | id[3];
    sodium_memzero(id, sizeof(id));
  }
  return 0;
}

static void mac(unsigned char out[32], const unsigned char key[32], const unsigned char h[32]) {
  crypto_generichash(out, 32, h, 32, key, 32);
}

int net__hs_start(net__hs_t **out, const unsigned char pk[32], const unsigned char sk[32],
                  const unsigned char peer_pk[32], unsigned char msg1[NET_HS1_BYTES]) {
  net__hs_t *hs = hs_alloc(pk, sk);
  if (!hs)
    return TANDEM_ENOMEM;
  hs->initiator = 1;
  memcpy(hs->peer_s, peer_pk, 32);
  memcpy(msg1, hs->e_pk, 32);
  memcpy(msg1 + 32, pk, 32);
  memcpy(msg1 + 64, peer_pk, 32);
  *out = hs;
  return 0;
}

int net__hs_respond(net__hs_t **out, const unsigned char pk[32], const unsigned char sk[32],
                    const unsigned char msg1[NET_HS1_BYTES], unsigned char msg2[NET_HS2_BYTES]) {
  net__hs_t *hs;
  int r;
  if (sodium_memcmp(msg1 + 64, pk, 32) != 0)
    return TANDEM_EAUTH;
  hs = hs_alloc(pk, sk);
  if (!hs)
    return TANDEM_ENOMEM;
  memcpy(hs->peer_e, msg1, 32);
  memcpy(hs->peer_s, msg1 + 32, 32);
  memcpy(msg2, hs->e_pk, 32);
  memcpy(msg2 + 32, pk, 32);
  r = derive(hs, msg1, msg2);
  if (r) {
    net__hs_free(hs);
    return r;
  }
  mac(msg2 + 64, hs->conf_r, hs->h);
  *out = hs;
  return 0;
}

int net__hs_finish_initiator(net__hs_t *hs, const unsigned char msg2[NET_HS2_BYTES],
                             unsigned char msg3[NET_HS3_BYTES]) {
  unsigned char msg1[NET_HS1_BYTES], want[32];
  int r;
  if (sodium_memcmp(msg2 + 32, hs->peer_s, 32) != 0)
    return TANDEM_EAUTH;
  memcpy(hs->peer_e, msg2, 32);
  memcpy(msg1, hs->e_pk, 32);
  memcpy(msg1 + 32, hs->s_pk, 32);
  memcpy(msg1 + 64, hs->peer_s, 32);
  r = derive(hs, msg1, msg2);
  if (r)
    return r;
  mac(want, hs->conf_r, hs->h);
  r = sodium_memcmp(want, msg2 + 64, 32) == 0 ? 0 : TANDEM_EAUTH;
  sodium_memzero(want, sizeof(want));
  if (r)
    return r;
  mac(msg3, hs->conf_i, hs->h);
  return 0;
}

int net__hs_finish_responder(net__hs_t *hs, const unsigned char msg3[NET_HS3_BYTES]) {
  unsigned char want[32];
  int r;
  mac(want, hs->conf_i, hs->h);
  r = sodium_memcmp(want, msg3, 32) == 0 ? 0 : TANDEM_EAUTH;
  sodium_memzero(want, sizeof(want));
  return r;
}

void net__hs_keys(const net__hs_t *hs, const unsigned char **tx, const unsigned char **rx,
                  uint32_t *link_id) {
  *tx = hs->initiator ? hs->i2r : hs->r2i;
  *rx = hs->initiator ? hs->r2i : hs->i2r;
  *link_id = hs->link_id;
}
