/* net_int.h - private interface between the sources of the net module: the
 * wire format of a frame (frame.c), the AES-256-GCM record layer (frame.c),
 * the handshake (handshake.c), and the node that builds links from them: its
 * types and the net__ functions its sources (node.c, conn.c, read.c, recv.c,
 * write.c, emu.c) call in one another. Never included from outside net/,
 * except by the net tests, which use it to play a peer by hand and forge
 * frames.
 */
#ifndef TANDEM_NET_INT_H
#define TANDEM_NET_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include <openssl/evp.h>
#include <uv.h>

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

/* ---- the node ------------------------------------------------------------
 * node.c's file comment says how its threads share this state: node->mu
 * guards all of it. The net__ functions below that take a connection, a peer
 * or the node are called with node->mu held, except the libuv callbacks
 * (net__*_cb), which take it themselves where they need it, and net__wake
 * (any thread). */

typedef struct net__rmsg_s {
  struct net__rmsg_s *next;
  uint8_t chan;
  int user; /* data is a posted receiver's buffer, not ours */
  /* The number of the link it arrived on (its connection's gen): a receive
   * bound to a link (net_msg_take_on) takes only that link's messages out of
   * the peer's queue, which the peer's old and new links share. */
  uint64_t link;
  size_t len;
  unsigned char *data;
} net__rmsg_t;

typedef struct net__conn_s net__conn_t;
typedef struct net__mnode_s net__mnode_t; /* mem.c's part of a memory node */

typedef struct net__wreq_s {
  uv_write_t req;
  struct net__wreq_s *next;
  net__conn_t *c;
  size_t len;    /* bytes at buf */
  size_t off;    /* bytes of buf the sender already wrote to the socket */
  size_t qbytes; /* bytes counted in c->queued (0 for handshake frames) */
  uint64_t due;  /* link emulation: when it may reach the socket (emu_now) */
  unsigned char buf[];
} net__wreq_t;

typedef struct net__creq_s {
  struct net__creq_s *next;
  int id;
  int result;
  int done;
  net__conn_t *c;
} net__creq_t;

typedef enum {
  NET_C_CONNECTING,
  NET_C_WAIT1,
  NET_C_WAIT2,
  NET_C_WAIT3,
  NET_C_UP,
  NET_C_CLOSING
} net__cstate_t;

struct net__conn_s {
  net_node_t *node;
  net__conn_t *next;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect;
  uv_shutdown_t shutdown;
  int handles; /* open libuv handles */
  int refs;    /* senders using tx */
  net__cstate_t state;
  int peer; /* -1 until the handshake names it */
  int halfopen; /* an inbound connection counted in node->halfopen */
  struct sockaddr_storage src; /* an inbound connection's source address */
  uint64_t born; /* its place in the order of accepted connections */
  uint64_t gen; /* its number as its peer's link (net__peer_t.gen), once up */
  int initiator;
  int want_close; /* 1 graceful (flush then FIN), 2 hard */
  int kill_err;
  net__creq_t *cr;
  net__hs_t *hs;
  net__aead_t tx, rx;
  uv_mutex_t send_mu;
  /* receive parser */
  unsigned char hdr_raw[NET_HDR_BYTES];
  size_t hdr_have;
  int have_hdr;
  net__hdr_t h;
  unsigned char hsbuf[NET_HS1_BYTES];
  /* Where the current frame's body goes: hsbuf for a handshake frame, the
   * message being reassembled (c->cur->data + c->cur_off) for a DATA frame,
   * whose ciphertext is decrypted in place there; its tag goes to tag. */
  unsigned char *fdst;
  size_t fhave, fneed;
  int fmsg;    /* fdst is in c->cur */
  int in_read; /* a read into a posted buffer is under way (net__alloc_cb to net__read_cb) */
  unsigned char tag[NET_TAG_BYTES];
  size_t thave, tneed;
  unsigned char *rbuf;
  net__rmsg_t *cur;
  size_t cur_off;
  uint64_t cur_prog; /* uv_hrtime of the last bytes read of cur */
  uint64_t wprog;    /* uv_hrtime of the last write that completed */
  int paused;
  int fd; /* the socket, for senders' direct writes (valid while NET_C_UP) */
  /* send queue: frames not yet handed to uv_write */
  net__wreq_t *pend_head, *pend_tail;
  unsigned inflight; /* uv_write requests not yet completed */
  size_t queued;
  /* link emulation (node->emu): frames held until their due time, and a
   * timerfd (emu_fd, watched by emu_poll) armed for the first one's */
  uv_poll_t emu_poll;
  int emu_fd;
  net__wreq_t *emu_head, *emu_tail;
  uint64_t emu_busy; /* when the emulated wire is free again (emu_now) */
  int emu_shut;      /* a graceful close waits for the held frames */
  uint64_t wire_in, wire_out;
};

/* A receiver's buffer offered to the loop (net_msg_recv): the next message
 * of chan that starts while nothing of chan is queued, and fits in cap, is
 * decrypted straight into buf instead of a malloc'd message that the
 * receiver would copy out and wipe. One per peer; other receivers queue. */
typedef struct {
  int active;
  uint8_t chan;
  unsigned char *buf;
  size_t cap;
  net__rmsg_t *m;  /* the message being received into buf, or NULL */
  net__conn_t *c;  /* its connection */
  int done;   /* buf holds a whole, authenticated message of len bytes */
  size_t len;
  uint64_t link; /* the link it arrived on, once done */
  int cancelling; /* the receiver waits for a read into buf to end */
} net__post_t;

typedef struct {
  int declared;
  unsigned char pk[NET_KEY_BYTES];
  int has_addr;
  struct sockaddr_storage addr;
  net__conn_t *link;
  int err;
  uint64_t gen;
  uint64_t up_seq;
  net__rmsg_t *rq_head, *rq_tail;
  size_t rq_bytes;
  /* Receivers blocked on this peer, in all and per channel: each has nothing
   * of its channel queued that it may take (a receive bound to a link may
   * leave other links' messages of its channel there), so what it waits for
   * is behind the unread bytes and reading must go on while there is one. */
  unsigned rwaiters;
  unsigned rwait[256];
  net__post_t post;
  net_stats_t st;
  net_limits_t lim; /* net_peer_limits; max_msg filled in */
} net__peer_t;

struct net_node_s {
  net_config_t cfg;
  unsigned char *keys; /* sodium_malloc'd: pk | sk */
  uv_loop_t loop;
  uv_thread_t thread;
  int thread_started;
  uv_async_t async;
  uv_tcp_t listener;
  int listening;
  uint16_t port;
  uv_mutex_t mu;
  uv_cond_t cv;
  net__peer_t peers[NET_MAX_PEERS];
  net__conn_t *conns;
  net__creq_t *creqs;
  int stopping;
  uint64_t up_seq, any_seen;
  int qwaiters; /* callers waiting for a send queue to drain */
  int emu;      /* link emulation on (cfg.emu_delay_us or cfg.emu_rate_bps) */
  net_node_stats_t st;
  unsigned halfopen;        /* inbound connections whose handshake is under way */
  uint64_t accepted;        /* inbound connections accepted (net__conn_t.born) */
  size_t fd_budget;         /* half-open connections the descriptors allow */
  uint64_t caplog_at;       /* uv_hrtime of the last line about the caps */
  uint64_t caplog_quiet;    /* refusals since that line not logged */
  net__mnode_t *mem;        /* non-NULL: an in-memory node (mem.c), whose
                               calls all go there; none of the above but
                               cfg, keys, peers, port, up_seq, any_seen, st */
};

/* node.c: helpers. */
/* Copies cfg into out with the defaults of net.h for its 0 fields (no
 * listen host, no peers: the caller declares them). */
void net__config_defaults(net_config_t *out, const net_config_t *cfg);
/* Calls the node's log hook with one formatted line (no-op without one). */
void net__log(net_node_t *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first 8 bytes of a key in hex, for log lines. */
void net__key_hint(char out[17], const unsigned char *pk);
uint64_t net__deadline_of(int timeout_ms);
/* Moves *deadline on to timeout_ms after `prog` (a uv_hrtime of the last
 * progress) if that is later; returns nonzero if it did. */
int net__extend(uint64_t *deadline, uint64_t prog, int timeout_ms);
/* Waits on node->cv until the deadline; returns nonzero once it has passed. */
int net__wait_until(net_node_t *n, uint64_t deadline);
/* Wakes the loop thread (uv_async_send; any thread, with or without mu). */
void net__wake(net_node_t *n);
/* Frees a received message, wiping its plaintext first. */
void net__rmsg_free(net__rmsg_t *m);
int net__bad_id(int id);
int net__timeout_or_default(net_node_t *n, int timeout_ms);
/* The error a call on p's link returns when it has none. */
int net__link_error(net__peer_t *p);

/* conn.c: a connection's life cycle. */
void net__wreq_list_free(net__conn_t *c, net__wreq_t **head, net__wreq_t **tail);
/* Frees c once no libuv handle and no sender holds it. */
void net__conn_maybe_free(net__conn_t *c);
void net__conn_close_handles(net__conn_t *c);
void net__shutdown_cb(uv_shutdown_t *req, int status);
/* Ends connection c with err (0 for a local close). graceful: send what is
 * queued, then FIN. Wakes every caller that waits on it. */
void net__conn_close(net__conn_t *c, int err, int graceful);
/* A handshake failed (err) or an established link broke: count and log it. */
void net__conn_fail(net__conn_t *c, int err);
/* The connection timer's callback (handshake timeout, a strict peer's
 * message due time). */
void net__timer_cb(uv_timer_t *t);
/* c leaves the half-open count (its handshake ended either way). */
void net__halfopen_done(net__conn_t *c);
/* Makes c, whose handshake just finished, the link of its peer. */
TANDEM_WUR int net__link_up(net__conn_t *c);
/* Starts the outbound connection of a connect request (loop thread). */
void net__start_connect(net_node_t *n, net__creq_t *cr);
/* The listener's callback: accepts an inbound connection. */
void net__connection_cb(uv_stream_t *server, int status);

/* read.c: the parser (loop thread). */
/* Bytes of the message being reassembled on c that are in place so far. */
size_t net__msg_got(const net__conn_t *c);
/* Nonzero if a message of chan is queued from p. */
int net__chan_queued(const net__peer_t *p, uint8_t chan);
void net__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void net__read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* recv.c: the receiving calls. */
/* Takes the message being received on c out of its posted buffer po (with
 * detach_only, drops it); TANDEM_ENOMEM if no memory could hold it. */
int net__post_detach(net__conn_t *c, net__post_t *po, int detach_only);
/* malloc for a received message of len bytes (at least 1). From 4 MiB on,
 * its 2 MiB-aligned interior is advised to transparent huge pages: a
 * message is written once, front to back, by read(2), and in 4 KiB pages a
 * 1.4 GB preprocessing message took 350,000 page faults, more of the
 * receiving party's time than the bytes' decryption. */
void *net__msg_alloc(size_t len);

/* write.c: the write queue. */
/* Hands w to libuv (which frees it through its callback); on failure frees it. */
TANDEM_WUR int net__start_write(net__conn_t *c, net__wreq_t *w);
/* Hands the queued frames of c to libuv (or to the emulated wire). */
TANDEM_WUR int net__conn_flush(net__conn_t *c);
/* Writes one handshake frame (type, payload of len bytes) from the loop. */
int net__send_hs(net__conn_t *c, uint8_t type, const unsigned char *payload, size_t len);

/* emu.c: link emulation. */
/* Sends w now, or with link emulation on, when the emulated wire would
 * deliver it. */
int net__emit(net__conn_t *c, net__wreq_t *w);
void net__emu_poll_cb(uv_poll_t *h, int status, int events);

/* mem.c: the in-memory backend. Each public call of net.h on a node with
 * node->mem set goes to its net__mem_ twin (one test at the call's top,
 * after its arguments are checked); mem.c's file comment says what it keeps
 * of the socket path's semantics and what it leaves out. */
/* 1 if host is a memory address, "mem:<name>". */
int net__mem_host(const char *host);
/* 1 if cfg asks for a memory node (its listen host or a peer's host is one). */
int net__mem_config(const net_config_t *cfg);
TANDEM_WUR int net__mem_node_new(net_node_t **out, const net_config_t *cfg);
void net__mem_node_free(net_node_t *n);
void net__mem_node_stats(net_node_t *n, net_node_stats_t *out);
TANDEM_WUR int net__mem_peer_add(net_node_t *n, int id, const char *host, uint16_t port,
                                 const unsigned char *pk);
TANDEM_WUR int net__mem_peer_limits(net_node_t *n, int id, const net_limits_t *lim);
TANDEM_WUR int net__mem_connect(net_node_t *n, int id);
TANDEM_WUR int net__mem_accept(net_node_t *n, int id, int timeout_ms);
TANDEM_WUR int net__mem_accept_any(net_node_t *n, int *id, int timeout_ms);
int net__mem_peer_up(net_node_t *n, int id);
int net__mem_peer_close(net_node_t *n, int id);
void net__mem_peer_stats(net_node_t *n, int id, net_stats_t *out);
TANDEM_WUR int net__mem_send(net_node_t *n, int id, uint64_t link, uint8_t chan,
                             const void *buf, size_t len);
TANDEM_WUR int net__mem_take(net_node_t *n, int id, uint64_t link, uint8_t chan, size_t cap,
                             unsigned char **buf, size_t *len, int timeout_ms);
TANDEM_WUR int net__mem_recv(net_node_t *n, int id, uint8_t chan, void *buf, size_t cap,
                             size_t *len, int timeout_ms);
TANDEM_WUR int net__mem_exchange(net_node_t *n, int id, const void *sbuf, size_t slen,
                                 void *rbuf, size_t rlen);

#endif /* TANDEM_NET_INT_H */
