/* fuzz_net_frame.c - libFuzzer target for what a peer's bytes reach in the
 * record layer of net/ (net/src/frame.c): the frame header parser and the
 * AES-GCM opening of a DATA frame, as the receiver runs them on every frame
 * of an authenticated link, and whose header strangers also reach before
 * their handshake ends.
 *
 * The input is read as frames: a 32-byte header, then (for a DATA header)
 * its len ciphertext bytes and a tag, opened with a fixed key in sequence as
 * a link would (the seeds, from fuzz_seeds_net, are frames sealed with that
 * key). A header that parses writes back to the same bytes; a frame that
 * opens is then sealed again from its plaintext and must give the same
 * bytes. Then the input as a plaintext message is sealed and opened frame by
 * frame with a fuzz-chosen frame size and channel, and must come back whole.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "net_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char key[32] = "tandem-fuzz-frame-key-0123456789";
#define LINK_ID 0x7a11c0deu

static void parse_frames(const uint8_t *data, size_t size) {
  net__aead_t rx, tx;
  unsigned char buf[4096], out[NET_HDR_BYTES + 4096 + NET_TAG_BYTES];
  if (net__aead_init(&rx, key, LINK_ID) != 0 || net__aead_init(&tx, key, LINK_ID) != 0)
    abort();
  while (size >= NET_HDR_BYTES) {
    net__hdr_t h;
    unsigned char raw[NET_HDR_BYTES];
    if (net__hdr_get(&h, data) != 0)
      break;
    net__hdr_put(raw, &h);
    if (memcmp(raw, data, NET_HDR_BYTES) != 0)
      abort();
    data += NET_HDR_BYTES;
    size -= NET_HDR_BYTES;
    if (h.type != NET_FT_DATA || h.len > sizeof buf || size < (size_t)h.len + NET_TAG_BYTES)
      break;
    memcpy(buf, data, h.len);
    int r = net__frame_open(&rx, &h, raw, buf, data + h.len);
    if (r == 0) {
      /* The same frame sealed again from what it opened to. */
      uint8_t first = (h.flags & NET_FF_FIRST) != 0, last = (h.flags & NET_FF_LAST) != 0;
      if (first && last && h.msg_len == h.len) {
        tx.seq = h.seq;
        if (net__msg_seal(&tx, h.chan, buf, h.len, h.len ? h.len : 1, out) != 0 ||
            memcmp(out, raw, NET_HDR_BYTES) != 0 ||
            memcmp(out + NET_HDR_BYTES, data, (size_t)h.len + NET_TAG_BYTES) != 0)
          abort();
      }
    } else if (r != TANDEM_EAUTH && r != TANDEM_EPROTO) {
      abort();
    }
    data += h.len + NET_TAG_BYTES;
    size -= h.len + NET_TAG_BYTES;
    if (r != 0)
      break;
  }
  net__aead_free(&rx);
  net__aead_free(&tx);
}

static void round_trip(const uint8_t *data, size_t size) {
  if (size < 2 || size > 8192)
    return;
  size_t max_frame = 1 + data[0] * 16u;
  uint8_t chan = data[1];
  const uint8_t *msg = data + 2;
  size_t len = size - 2, wire = net__msg_wire_bytes(len, max_frame), off = 0, got = 0;
  unsigned char *w = malloc(wire), *back = malloc(len + 1);
  net__aead_t tx, rx;
  if (!w || !back || net__aead_init(&tx, key, LINK_ID) != 0 ||
      net__aead_init(&rx, key, LINK_ID) != 0)
    abort();
  if (net__msg_seal(&tx, chan, msg, len, max_frame, w) != 0)
    abort();
  while (off < wire) {
    net__hdr_t h;
    if (net__hdr_get(&h, w + off) != 0 || h.chan != chan || h.msg_len != len ||
        h.len > max_frame || got + h.len > len)
      abort();
    memcpy(back + got, w + off + NET_HDR_BYTES, h.len);
    if (net__frame_open(&rx, &h, w + off, back + got, w + off + NET_HDR_BYTES + h.len) != 0)
      abort();
    got += h.len;
    off += NET_HDR_BYTES + h.len + NET_TAG_BYTES;
  }
  if (got != len || (len && memcmp(back, msg, len) != 0))
    abort();
  net__aead_free(&tx);
  net__aead_free(&rx);
  free(w);
  free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (sodium_init() < 0)
    abort();
  parse_frames(data, size);
  round_trip(data, size);
  return 0;
}
