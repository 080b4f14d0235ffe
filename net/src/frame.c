/* frame.c - the record layer of a Tandem link: the 32-byte frame header
 * (layout in net_int.h) and AES-256-GCM through OpenSSL EVP.
 *
 * Each direction of a link has its own key from the handshake, so a nonce is
 * never reused across directions; the 96-bit nonce is 4 zero bytes followed by
 * the frame's 64-bit sequence number, which both sides count from 0. The
 * receiver does not take the sequence number from the wire: it checks that the
 * header carries the one it expects (a replayed, dropped or reordered frame is
 * TANDEM_EPROTO) and then uses its own counter for the nonce. The whole header
 * is the AAD, so a change to the channel, flags, lengths or link id fails the
 * tag (TANDEM_EAUTH). A message is cut into frames of at most max_frame bytes,
 * the first flagged FIRST and the last LAST; all carry the message length.
 */
#include <string.h>

#include <sodium.h>

#include "net_int.h"

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static void put64(unsigned char *p, uint64_t v) {
  put32(p, (uint32_t)(v >> 32));
  put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get64(const unsigned char *p) {
  return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

void net__hdr_put(unsigned char out[NET_HDR_BYTES], const net__hdr_t *h) {
  put32(out, NET_MAGIC);
  out[4] = NET_VERSION;
  out[5] = h->type;
  out[6] = h->chan;
  out[7] = h->flags;
  put32(out + 8, h->link_id);
  put32(out + 12, h->len);
  put64(out + 16, h->seq);
  put64(out + 24, h->msg_len);
}

int net__hdr_get(net__hdr_t *h, const unsigned char in[NET_HDR_BYTES]) {
  if (get32(in) != NET_MAGIC || in[4] != NET_VERSION)
    return TANDEM_EPROTO;
  if (in[5] < NET_FT_HS1 || in[5] > NET_FT_DATA)
    return TANDEM_EPROTO;
  if (in[7] & ~(NET_FF_FIRST | NET_FF_LAST))
    return TANDEM_EPROTO;
  h->type = in[5];
  h->chan = in[6];
  h->flags = in[7];
  h->link_id = get32(in + 8);
  h->len = get32(in + 12);
  h->seq = get64(in + 16);
  h->msg_len = get64(in + 24);
  return 0;
}

int net__aead_init(net__aead_t *a, const unsigned char key[32], uint32_t link_id) {
  memset(a, 0, sizeof(*a));
  a->key = sodium_malloc(32);
  if (!a->key)
    return TANDEM_ENOMEM;
  memcpy(a->key, key, 32);
  a->link_id = link_id;
  a->ctx = EVP_CIPHER_CTX_new();
  if (!a->ctx || EVP_CipherInit_ex(a->ctx, EVP_aes_256_gcm(), NULL, a->key, NULL, -1) != 1) {
    net__aead_free(a);
    return TANDEM_ECRYPTO;
  }
  return 0;
}

void net__aead_free(net__aead_t *a) {
  if (a->ctx)
    EVP_CIPHER_CTX_free(a->ctx); /* clears the expanded key */
  if (a->key) {
    sodium_memzero(a->key, 32);
    sodium_free(a->key);
  }
  memset(a, 0, sizeof(*a));
}

size_t net__msg_wire_bytes(size_t len, size_t max_frame) {
  size_t nframes = len == 0 ? 1 : (len + max_frame - 1) / max_frame;
  return nframes * (NET_HDR_BYTES + NET_TAG_BYTES) + len;
}

static void make_nonce(unsigned char nonce[12], uint64_t seq) {
  memset(nonce, 0, 4);
  put64(nonce + 4, seq);
}

int net__msg_seal_part(net__aead_t *a, uint8_t chan, const unsigned char *msg, size_t len,
                       size_t off, size_t n, size_t max_frame, unsigned char *out) {
  size_t end = off + n;
  do {
    size_t k = end - off < max_frame ? end - off : max_frame;
    net__hdr_t h = {.type = NET_FT_DATA,
                    .chan = chan,
                    .flags = (uint8_t)((off == 0 ? NET_FF_FIRST : 0) |
                                       (off + k == len ? NET_FF_LAST : 0)),
                    .link_id = a->link_id,
                    .len = (uint32_t)k,
                    .seq = a->seq,
                    .msg_len = len};
    unsigned char nonce[12];
    int outl = 0, tmp = 0;
    net__hdr_put(out, &h);
    make_nonce(nonce, a->seq);
    /* The plaintext is encrypted straight into the send buffer, after the
     * header that is its AAD: one pass over the bytes. */
    if (EVP_EncryptInit_ex(a->ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(a->ctx, NULL, &tmp, out, NET_HDR_BYTES) != 1 ||
        (k > 0 && EVP_EncryptUpdate(a->ctx, out + NET_HDR_BYTES, &outl, msg + off, (int)k) != 1) ||
        EVP_EncryptFinal_ex(a->ctx, out + NET_HDR_BYTES + outl, &tmp) != 1 ||
        EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_GCM_GET_TAG, NET_TAG_BYTES,
                            out + NET_HDR_BYTES + k) != 1)
      return TANDEM_ECRYPTO;
    a->seq++;
    out += NET_HDR_BYTES + k + NET_TAG_BYTES;
    off += k;
  } while (off < end);
  return 0;
}

int net__msg_seal(net__aead_t *a, uint8_t chan, const unsigned char *msg, size_t len,
                  size_t max_frame, unsigned char *out) {
  return net__msg_seal_part(a, chan, msg, len, 0, len, max_frame, out);
}

int net__frame_open(net__aead_t *a, const net__hdr_t *h, const unsigned char raw[NET_HDR_BYTES],
                    unsigned char *buf, const unsigned char tag[NET_TAG_BYTES]) {
  unsigned char nonce[12], t[NET_TAG_BYTES];
  int outl = 0, tmp = 0;
  if (h->seq != a->seq || h->link_id != a->link_id)
    return TANDEM_EPROTO;
  make_nonce(nonce, a->seq);
  memcpy(t, tag, NET_TAG_BYTES); /* OpenSSL's ctrl takes a non-const pointer */
  if (EVP_DecryptInit_ex(a->ctx, NULL, NULL, NULL, nonce) != 1 ||
      EVP_DecryptUpdate(a->ctx, NULL, &tmp, raw, NET_HDR_BYTES) != 1 ||
      (h->len > 0 && EVP_DecryptUpdate(a->ctx, buf, &outl, buf, (int)h->len) != 1) ||
      EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_GCM_SET_TAG, NET_TAG_BYTES, t) != 1)
    return TANDEM_ECRYPTO;
  if (EVP_DecryptFinal_ex(a->ctx, buf + outl, &tmp) != 1)
    return TANDEM_EAUTH;
  a->seq++;
  return 0;
}
