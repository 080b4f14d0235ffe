/* net_int.h - private interface between the sources of the net module: the
 * wire format of a frame (frame.c), the AES-256-GCM record layer (frame.c) and
 * the handshake (handshake.c). node.c builds links from them. Never included
 * from outside net/, except by the net tests, which use it to play a peer by
 * hand and forge frames.
 */
#ifndef TANDEM_NET_INT_H
#define TANDEM_NET_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "net.h"

/* Frame header, 32 bytes, big-endian, sent in clear and authenticated as the
 * AAD of the frame's AES-GCM record:
 *   magic u32 | version u8 | type u8 | chan u8 | flags u8 |
 *   link_id u32 | len u32 | seq u64 | msg_len u64
 * len is the plaintext payload length (a DATA frame carries len + 16 bytes:
 * ciphertext then tag); msg_len is the total length of the message the frame
 * belongs to. Handshake frames have chan = flags = link_id = seq = msg_len = 0.
 */
#define NET_MAGIC 0x544e444du /* "TNDM" */
#define NET_VERSION 1
#define NET_HDR_BYTES 32
#define NET_TAG_BYTES 16

enum { NET_FT_HS1 = 1, NET_FT_HS2 = 2, NET_FT_HS3 = 3, NET_FT_REJECT = 4, NET_FT_DATA = 5 };
#define NET_FF_FIRST 1u
#define NET_FF_LAST 2u

typedef struct {
  uint8_t type, chan, flags;
  uint32_t link_id;
  uint32_t len;
  uint64_t seq;
  uint64_t msg_len;
} net__hdr_t;

void net__hdr_put(unsigned char out[NET_HDR_BYTES], const net__hdr_t *h);
/* Parses a header; TANDEM_EPROTO on a bad magic, version, type or flags. */
TANDEM_WUR int net__hdr_get(net__hdr_t *h, const unsigned char in[NET_HDR_BYTES]);

/* One direction of a link: key (sodium_malloc'd), cipher context, the link id
 * and the sequence number of the next frame. */
typedef struct {
  EVP_CIPHER_CTX *ctx;
  unsigned char *key;
  uint32_t link_id;
  uint64_t seq;
} net__aead_t;

TANDEM_WUR int net__aead_init(net__aead_t *a, const unsigned char key[32], uint32_t link_id);
void net__aead_free(net__aead_t *a);

/* Bytes on the wire of a message of len bytes cut into frames of max_frame. */
size_t net__msg_wire_bytes(size_t len, size_t max_frame);
/* Writes the frames of one message into out (net__msg_wire_bytes long),
 * advancing a->seq once per frame. TANDEM_ECRYPTO on an OpenSSL failure. */
TANDEM_WUR int net__msg_seal(net__aead_t *a, uint8_t chan, const unsigned char *msg, size_t len,
                             size_t max_frame, unsigned char *out);
/* The same for the frames of bytes [off, off + n) of the message only (off a
 * multiple of max_frame; off + n a multiple of it or len; n > 0 unless len is
 * 0), so a long message can be sealed and queued piece by piece; out is
 * net__msg_wire_bytes(n, max_frame) long. */
TANDEM_WUR int net__msg_seal_part(net__aead_t *a, uint8_t chan, const unsigned char *msg,
                                  size_t len, size_t off, size_t n, size_t max_frame,
                                  unsigned char *out);
/* Decrypts one DATA frame in place: raw is its 32-byte header (parsed into h),
 * buf holds its h->len ciphertext bytes and tag its tag (the receiver reads
 * the ciphertext straight into the message it belongs to). Checks h->seq
 * against the expected one (TANDEM_EPROTO) and the tag (TANDEM_EAUTH);
 * advances a->seq. */
TANDEM_WUR int net__frame_open(net__aead_t *a, const net__hdr_t *h,
                               const unsigned char raw[NET_HDR_BYTES], unsigned char *buf,
                               const unsigned char tag[NET_TAG_BYTES]);

/* Handshake (handshake.c). Message payloads, after a frame header: */
#define NET_HS1_BYTES 96 /* E_i | S_i | S_r as the initiator expects it */
#define NET_HS2_BYTES 96 /* E_r | S_r | MAC_r */
#define NET_HS3_BYTES 32 /* MAC_i */

typedef struct net__hs_s net__hs_t; /* sodium_malloc'd; all secrets of a handshake */

/* Initiator: starts a handshake with the responder whose key is peer_pk;
 * writes msg1. */
TANDEM_WUR int net__hs_start(net__hs_t **out, const unsigned char pk[32], const unsigned char sk[32],
                             const unsigned char peer_pk[32], unsigned char msg1[NET_HS1_BYTES]);
/* Responder: answers msg1 (whose sender key, at msg1 + 32, the caller has
 * checked against its declared peers); writes msg2. */
TANDEM_WUR int net__hs_respond(net__hs_t **out, const unsigned char pk[32],
                               const unsigned char sk[32],
                               const unsigned char msg1[NET_HS1_BYTES],
                               unsigned char msg2[NET_HS2_BYTES]);
/* Initiator: checks msg2 (TANDEM_EAUTH), writes msg3. */
TANDEM_WUR int net__hs_finish_initiator(net__hs_t *hs, const unsigned char msg2[NET_HS2_BYTES],
                                        unsigned char msg3[NET_HS3_BYTES]);
/* Responder: checks msg3 (TANDEM_EAUTH). */
TANDEM_WUR int net__hs_finish_responder(net__hs_t *hs, const unsigned char msg3[NET_HS3_BYTES]);
/* After a finish: the keys of this side's two directions and the link id. */
void net__hs_keys(const net__hs_t *hs, const unsigned char **tx, const unsigned char **rx,
                  uint32_t *link_id);
void net__hs_free(net__hs_t *hs);

/* Hex helpers (keyfile.c). */
void net__hex_encode(char *out, const unsigned char *in, size_t n);

#endif /* TANDEM_NET_INT_H */
