/* net.h - the public interface of Tandem's transport: authenticated, encrypted
 * message links between the processes of a cluster (P0, P1, the dealer, the
 * model owner, clients).
 *
 * A node is one process's endpoint. It owns a libuv loop that runs in its own
 * thread; every public call below is made from the caller's threads, hands its
 * work to the loop (uv_async) and blocks on a condition variable until the work
 * is done, fails, or times out. Peers are numbered by the caller (0 to
 * NET_MAX_PEERS-1, typically the MPC role) and are known by their static
 * X25519 public key: a node only ever talks to keys it was given. A link to a
 * peer is one TCP connection, secured by a mutual-authentication handshake and
 * then AES-256-GCM frames with per-direction keys and counter nonces
 * (the design is in net/src/handshake.c and net/src/frame.c). Messages keep
 * their boundaries: a message of any size (up to max_msg) is split into frames
 * of at most max_frame payload bytes and delivered whole. Each message carries
 * a channel tag (0-255) so several logical streams can share a link; receivers
 * take the next message of the channel they ask for.
 *
 * Errors (every call): 0, or one negative code of tandem_err.h. A link that
 * sees a forged frame ends with TANDEM_EAUTH, a replayed, reordered, truncated
 * or malformed one with TANDEM_EPROTO, a peer that closes with TANDEM_ECLOSED;
 * the caller blocked on that peer gets the code, and so does every later call
 * to the peer until a new link is made (net_connect, or the peer connecting
 * again: a new authenticated link from a peer replaces the old one, and calls
 * blocked on the old one fail with TANDEM_ECONNRESET). A call that waits longer
 * than its timeout fails with TANDEM_ETIMEDOUT and leaves the link up. The
 * timeout counts time without progress: a receive whose message is arriving
 * waits while its bytes keep coming (one large message is not bounded by the
 * timeout of the whole transfer), and a send or net_peer_close waiting for a
 * full queue waits while the queue's writes keep completing; except on a
 * peer declared strict (net_limits_t), whose every wait ends at its
 * deadline, set when the call starts, however many bytes move meanwhile (a
 * peer sending or reading one byte a second holds a call for one timeout,
 * not for ever), and each of whose messages is due a timeout after its
 * first bytes came: its link is closed then if the message is not whole.
 *
 * Strangers: an inbound connection is half-open until its handshake ends. At
 * most max_halfopen are kept in all (over it the oldest is dropped, so a
 * stranger holding connections open cannot keep declared peers out) and at
 * most max_halfopen_per_addr from one source address (over it the new one is
 * closed at once, before it is read: no key agreement is computed for it);
 * each is dropped after handshake_timeout_ms. A listening node raises its
 * process's RLIMIT_NOFILE to the hard limit and keeps descriptors for its
 * declared peers' links out of the half-open budget (NET_FD_RESERVE).
 *
 * Peers' messages are checked at their first frame header, before any of
 * the body is buffered: a message on a channel the peer may not use, longer
 * than its max_msg, or that would take the peer's unread messages past its
 * bound (max_msg + queue_bytes, counted across all its links) ends the link
 * with TANDEM_EPROTO and a log line. When a new link of a peer comes up,
 * what its older links left unread is dropped.
 *
 * Thread affinity: a node may be used from any number of threads at once,
 * except net_node_free (no other call may run or start once it is called).
 * Messages to one peer on one channel are delivered in the order their
 * net_*send calls returned.
 *
 * In-memory nodes (tests): a node whose listen_host, or a declared peer's
 * host, is "mem:<name>" links only with other such nodes of the same
 * process, through memory (net/src/mem.c): (name, port) is its address. The
 * calls above keep their semantics (link numbers, a new link replacing the
 * old one and dropping its unread messages, the error codes, timeouts on
 * the real clock, queue_bytes and the peers' limits, and identity by key: a
 * link only between declared keys), but there is no handshake, no
 * encryption and no framing (nothing crosses a wire; wire counters count
 * payload bytes), no emulation, and one lock for all memory nodes, under
 * which the log hook is called: it must call into no memory node.
 */
#ifndef TANDEM_NET_H
#define TANDEM_NET_H

#include <stddef.h>
#include <stdint.h>

#include "tandem_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NET_KEY_BYTES 32         /* an X25519 public or secret key */
#define NET_MAX_PEERS 32         /* peer ids are 0 .. NET_MAX_PEERS-1 */
#define NET_FRAME_LIMIT (16u << 20) /* the largest max_frame a config may ask */

/* Defaults used where a config field is 0. */
#define NET_DEFAULT_MAX_FRAME (256u << 10)       /* payload bytes per frame */
#define NET_DEFAULT_MAX_MSG ((size_t)1 << 30)    /* bytes per message */
#define NET_DEFAULT_QUEUE_BYTES ((size_t)64 << 20)
#define NET_DEFAULT_TIMEOUT_MS 30000
#define NET_DEFAULT_HANDSHAKE_MS 5000
#define NET_DEFAULT_MAX_HALFOPEN 64
#define NET_DEFAULT_MAX_HALFOPEN_ADDR 8
/* Descriptors a listening node keeps out of the half-open budget: the
 * process's own files plus two per declared peer (a link and its
 * replacement). */
#define NET_FD_RESERVE 64

/* A timeout argument below 0 means the node's configured default. */
#define NET_TIMEOUT_DEFAULT (-1)

typedef struct net_node_s net_node_t;

/* What a node accepts from one peer (all zero: the node's defaults, every
 * channel, deadlines extended by progress). */
typedef struct {
  size_t max_msg; /* the longest message accepted from it (0: the node's
                     max_msg; never more than it) */
  uint64_t chans; /* bit c set: it may send on channel c (0..63; no channel
                     above 63 then); 0: every channel */
  int strict;     /* 1: every wait on it ends at its deadline, progress or
                     not, and a message of it not whole a timeout after its
                     first bytes came closes the link (for clients and
                     other least-trusted peers) */
} net_limits_t;

/* A peer declared when the node is made (see net_peer_add for the fields). */
typedef struct {
  int id;
  const char *host; /* NULL for a peer that only dials in */
  uint16_t port;
  const unsigned char *pk;
  net_limits_t limits;
} net_peer_decl_t;

typedef struct {
  /* Numeric IPv4 or IPv6 address to listen on ("0.0.0.0", "::1", "::"; an
   * IPv6 literal without brackets, "fe80::1%eth0" for a link-local one; no
   * hostnames: resolve them first), "mem:<name>" for an in-memory node (see
   * above), or NULL for a node that only dials out. Port 0 lets the kernel choose (read it with net_node_port). */
  const char *listen_host;
  uint16_t listen_port;
  /* The node's own static identity (NET_KEY_BYTES each); copied into locked
   * memory by net_node_new, so the caller may wipe its copy afterwards. */
  const unsigned char *pk;
  const unsigned char *sk;
  size_t max_frame;   /* payload bytes per frame, 1 .. NET_FRAME_LIMIT */
  size_t max_msg;     /* the largest message accepted from a peer */
  size_t queue_bytes; /* per peer: bound of queued outbound bytes (a sender
                         waits while its queue is over it) and of received
                         messages not yet taken (reading pauses above it,
                         except while a receiver waits on the peer: what it
                         waits for is behind the unread bytes; then a
                         message of a channel nobody waits on that takes
                         the unread messages past twice queue_bytes ends
                         the link with TANDEM_EPROTO) */
  int timeout_ms;     /* default bound of every blocking call */
  int handshake_timeout_ms; /* connect plus handshake, and an inbound
                               connection's handshake */
  unsigned max_halfopen;          /* inbound connections before their
                                     handshake ends, in all */
  unsigned max_halfopen_per_addr; /* the same from one source address */
  /* Optional: one line per event (connections, rejections, link errors; never
   * a secret). Called on the loop thread, so it must not call into the node. */
  void (*log)(void *ctx, const char *line);
  void *log_ctx;
  /* Optional: peers declared before the listener accepts anything, so that a
   * peer dialling in the moment the node starts is never taken for an unknown
   * key (declaring them with net_peer_add after net_node_new leaves a window
   * in which an inbound handshake is rejected). */
  const net_peer_decl_t *peers;
  size_t npeers;
  /* Optional link emulation, for benchmarks on loopback or a LAN (the
   * kernel's netem may be missing): applied in user space to every frame
   * this node sends, on every link, handshakes included. 0 turns each off
   * (the default; nothing is added then). A frame of s wire bytes leaves at
   * max(now, the previous frame's departure) + s / emu_rate_bps seconds and
   * reaches the socket emu_delay_us after it leaves; frames keep their order
   * and stay counted in queue_bytes until then, so senders still wait on a
   * full queue (the rate limits them). Set both on both ends for a
   * symmetric link: the round trip grows by 2 * emu_delay_us. A frame's
   * time starts when its sender queues it; the loop sleeps until then on a
   * timerfd (Linux, CLOCK_MONOTONIC, nanosecond deadlines), so a frame
   * reaches the socket never before its time and typically within a few
   * tens of microseconds after it (the scheduler's wake-up latency; more
   * on a loaded machine). Each connection then holds one more file
   * descriptor. Long messages are queued a frame at a time (the emulated
   * wire's unit) and senders never write to the socket themselves. */
  uint32_t emu_delay_us; /* one-way delay added to each frame (half an RTT) */
  uint64_t emu_rate_bps; /* bytes per second each link may send */
} net_config_t;

/* Counters of one peer, summed over every link to it. Payload bytes are
 * message bytes as the caller sees them; wire bytes are what crossed the
 * socket (frame headers, tags and handshakes included). */
typedef struct {
  uint64_t payload_sent, payload_recvd;
  uint64_t wire_sent, wire_recvd;
  uint64_t msgs_sent, msgs_recvd;
  uint64_t links;       /* authenticated links made (reconnections + 1) */
} net_stats_t;

/* Node-wide counters (tests and logs). */
typedef struct {
  uint64_t handshakes_ok;
  uint64_t handshakes_failed; /* rejected keys, garbage, timeouts */
  uint64_t links_failed;      /* established links ended by an error */
  uint64_t halfopen_refused;  /* inbound connections closed unread: over a cap */
  uint64_t halfopen_dropped;  /* half-open ones dropped for a newer one */
  uint64_t msgs_refused;      /* messages refused at their first header */
  uint64_t links_due;         /* strict links closed at a receive's deadline */
} net_node_stats_t;

/* ---- nodes ------------------------------------------------------------- */

/* Creates a node: copies cfg (0 fields take the defaults above), declares
 * cfg->peers, binds and listens if cfg->listen_host is set, and starts the
 * loop thread (the first connection is handled after every peer is declared).
 * *out is the caller's to free with net_node_free. Errors: TANDEM_EINVAL (a
 * bad field or peer, an address that is not numeric), TANDEM_EADDRINUSE, TANDEM_ENOMEM,
 * -errno. Not blocking beyond the bind. */
TANDEM_WUR int net_node_new(net_node_t **out, const net_config_t *cfg);

/* Stops the loop: closes every link and the listener, joins the thread, wipes
 * every key and frees the node. Messages still queued for sending may be lost
 * (net_peer_close first to flush). No call on the node may be running. */
void net_node_free(net_node_t *node);

/* The port the node listens on (the kernel's choice if cfg asked for 0), or 0
 * for a node without a listener. */
uint16_t net_node_port(const net_node_t *node);

void net_node_stats(net_node_t *node, net_node_stats_t *out);

/* ---- peers ------------------------------------------------------------- */

/* Declares peer `id`: its static public key (NET_KEY_BYTES, copied), and the
 * numeric IPv4 or IPv6 address (as cfg.listen_host) and port it listens on
 * (host may be NULL for a peer that only dials in). Only declared keys pass the handshake. Redeclaring an id
 * changes its address and key for later links (a live link is dropped if the
 * key changes). Errors: TANDEM_EINVAL (id out of range, a key already used by
 * another id). Does not block. */
TANDEM_WUR int net_peer_add(net_node_t *node, int id, const char *host, uint16_t port,
                            const unsigned char *pk);

/* Sets what the node accepts from peer id (declared or not yet). From the
 * next message header on; a message under way is not cut. Errors:
 * TANDEM_EINVAL. Does not block. */
TANDEM_WUR int net_peer_limits(net_node_t *node, int id, const net_limits_t *lim);

/* Dials peer id, runs the handshake as initiator and makes the result the
 * peer's link (replacing any previous one). Blocks for at most the handshake
 * timeout. Errors: TANDEM_EAUTH (the peer's key is not the declared one, or it
 * rejected ours), TANDEM_ETIMEDOUT, TANDEM_ECLOSED (closed during the
 * handshake), TANDEM_EPROTO (not a Tandem peer), -errno such as -ECONNREFUSED. */
TANDEM_WUR int net_connect(net_node_t *node, int id);

/* Waits until peer id has an authenticated link (made by either side).
 * Returns at once if it has one. Errors: TANDEM_ETIMEDOUT, TANDEM_EINVAL. */
TANDEM_WUR int net_accept(net_node_t *node, int id, int timeout_ms);

/* Waits until some peer has an authenticated link made after this call's
 * previous return, and returns its id in *id (daemons: "who connected").
 * Returns TANDEM_ETIMEDOUT if none. */
TANDEM_WUR int net_accept_any(net_node_t *node, int *id, int timeout_ms);

/* 1 if peer id has a link up, else 0. Does not block. */
int net_peer_up(net_node_t *node, int id);

/* Waits (up to the default timeout) until everything sent to peer id has been
 * handed to the kernel, then closes the link. The peer's next receive sees
 * TANDEM_ECLOSED after the messages already sent. Returns 0 if there was no
 * link; TANDEM_ETIMEDOUT if the queue did not drain (the link is closed
 * anyway). Not warn_unused_result, as close(2) is not: the link is closed
 * whatever it returns, and a caller dropping a link has nothing to undo. */
int net_peer_close(net_node_t *node, int id);

/* Counters of peer id (zeros for an unknown id). */
void net_peer_stats(net_node_t *node, int id, net_stats_t *out);

/* ---- messages ---------------------------------------------------------- */

/* Sends len bytes (0 allowed) as one message on channel 0 (net_send) or on
 * `chan`. The message is encrypted on the calling thread and queued (a long
 * one piece by piece, the loop writing the first pieces while the rest are
 * sealed; a short one to an idle link is written to the socket by this
 * thread); the call returns once it is queued, after first waiting (up to
 * the default timeout) while more than queue_bytes are already queued to
 * that peer. buf is not kept. An error of the link that happens after the return is reported by
 * the next call on that peer. Errors: TANDEM_ECLOSED (no link), the error that
 * ended the link, TANDEM_ETIMEDOUT (queue stayed full), TANDEM_EINVAL (len
 * above max_msg), TANDEM_ENOMEM. */
TANDEM_WUR int net_send(net_node_t *node, int peer, const void *buf, size_t len);
TANDEM_WUR int net_msg_send(net_node_t *node, int peer, uint8_t chan, const void *buf,
                            size_t len);

/* net_msg_send on one link of peer: `link` is the value of the peer's
 * net_stats_t.links while that link was up (0: the link up at the call).
 * TANDEM_ECONNRESET when the peer's link is another one by then, so a
 * message meant for a link that ended (the peer restarted meanwhile) never
 * reaches the newer link. Either way, a send that waits for room in a full
 * queue stays on the link it began with: TANDEM_ECONNRESET if that link is
 * replaced during the wait. */
TANDEM_WUR int net_msg_send_on(net_node_t *node, int peer, uint64_t link, uint8_t chan,
                               const void *buf, size_t len);

/* net_msg_send_on for a buffer the caller is done with: each piece of buf
 * is wiped once it is sealed, and the whole pages wiped give their memory
 * back to the system (madvise MADV_DONTNEED where there is one), so the
 * plaintext shrinks as the sealed copy grows instead of the two coexisting
 * whole (the dealer's parts are hundreds of MB). buf must be private
 * anonymous memory (malloc's; not a file mapping, where the pages given
 * back would show the file again, nor locked memory, which keeps them) and
 * stays the caller's to free. *wiped (wiped may be NULL) is set to the
 * bytes from buf's start that are wiped: len on success, nothing left to
 * wipe (writing to those pages again would only fault them back in); on an
 * error, the caller wipes the rest. */
TANDEM_WUR int net_msg_send_consume(net_node_t *node, int peer, uint64_t link, uint8_t chan,
                                    void *buf, size_t len, size_t *wiped);

/* Receives the next message of channel 0 from peer into buf, which must be
 * exactly len bytes long: a message of another length is taken, dropped and
 * reported as TANDEM_EPROTO. Waits up to the default timeout. Messages that
 * arrived before the link ended are still delivered. Errors: TANDEM_ETIMEDOUT
 * (the link stays up), TANDEM_ECLOSED, TANDEM_ECONNRESET (the link was replaced
 * while waiting), TANDEM_EAUTH/TANDEM_EPROTO (the link ended on a bad frame). */
TANDEM_WUR int net_recv(net_node_t *node, int peer, void *buf, size_t len);

/* Receives the next message of channel chan from peer, of any length up to
 * cap, into buf; its length goes to *len. A longer message is dropped and
 * reported as TANDEM_EPROTO. timeout_ms: NET_TIMEOUT_DEFAULT, 0 to poll, or
 * milliseconds; while a message of chan is arriving the wait goes on as long
 * as it makes progress within the timeout (a poll's, the node's timeout),
 * except from a strict peer (net_limits_t), whose wait ends at the timeout.
 * While the call waits, the
 * loop may decrypt the message straight into buf (no copy); after an error buf holds nothing of it (a
 * part that arrived is moved back and wiped). Errors as net_recv. */
TANDEM_WUR int net_msg_recv(net_node_t *node, int peer, uint8_t chan, void *buf, size_t cap,
                            size_t *len, int timeout_ms);

/* The same without a copy: the next message of channel chan from peer (at
 * most cap bytes) is handed over in *buf (malloc'd; never NULL on success,
 * *len may be 0), which the caller wipes if secret and frees. For messages
 * whose size the receiver cannot know in advance, and to avoid copying large
 * ones. Errors as net_msg_recv. */
TANDEM_WUR int net_msg_take(net_node_t *node, int peer, uint8_t chan, size_t cap,
                            unsigned char **buf, size_t *len, int timeout_ms);

/* net_msg_take on one link of peer (`link` as net_msg_send_on's; 0: any,
 * which is net_msg_take): takes only a message of chan that arrived on that
 * link, so a receive of a step that ended cannot take the next step's
 * messages off a newer link, nor a receive on the newer link the older
 * one's; messages of other links stay queued for the receives that may take
 * them. Messages that arrived on the link before it ended are still taken;
 * once the peer's link is another one and none of them is left, the call
 * fails with TANDEM_ECONNRESET (at once, whatever newer link's messages are
 * queued). Until another link replaces it, errors as net_msg_take. */
TANDEM_WUR int net_msg_take_on(net_node_t *node, int peer, uint64_t link, uint8_t chan,
                               size_t cap, unsigned char **buf, size_t *len, int timeout_ms);

/* One full-duplex round on channel 0: queues sbuf (slen bytes) to peer and
 * receives exactly rlen bytes from it into rbuf. Both sides may call it at
 * once with messages of any size (the loop always reads while sends are
 * queued), which is how an MPC round is run. rbuf is offered to the loop
 * before the send, so the reply is decrypted straight into it even if it
 * starts arriving while sbuf is being sealed. If the send fails, a reply
 * already received stays queued for the next receive. Errors as net_send and
 * net_recv. */
TANDEM_WUR int net_exchange(net_node_t *node, int peer, const void *sbuf, size_t slen,
                            void *rbuf, size_t rlen);

/* ---- key files --------------------------------------------------------- */

/* A key file holds one line, "tandem-x25519-sk <64 hex digits>" (secret) or
 * "tandem-x25519-pk <64 hex digits>" (public). */

/* Makes a fresh identity keypair (crypto_kx_keypair). Secret into sk. */
void net_keypair(unsigned char pk[NET_KEY_BYTES], unsigned char sk[NET_KEY_BYTES]);

/* Reads a secret key file into sk and derives the public key into pk (may be
 * NULL). The file must be a regular file not readable or writable by group or
 * others: else TANDEM_EKEYPERM, before anything is read. Other errors:
 * TANDEM_EPARSE (not a secret key file), -errno (TANDEM_ENOENT...). The caller
 * should keep sk in sodium_malloc'd memory; the read buffer is wiped. */
TANDEM_WUR int net_key_load(const char *path, unsigned char pk[NET_KEY_BYTES],
                            unsigned char sk[NET_KEY_BYTES]);

/* Writes sk as a secret key file, mode 0600, through a temporary file in the
 * same directory that is fsync'd and renamed over path (a crash leaves the old
 * file or the new one, never half of one). Errors: -errno. */
TANDEM_WUR int net_key_save(const char *path, const unsigned char sk[NET_KEY_BYTES]);

/* Public key files: the same, mode 0644, no permission check on load. */
TANDEM_WUR int net_pub_load(const char *path, unsigned char pk[NET_KEY_BYTES]);
TANDEM_WUR int net_pub_save(const char *path, const unsigned char pk[NET_KEY_BYTES]);

/* Parses 64 hex digits (a public key written in a config). TANDEM_EPARSE. */
TANDEM_WUR int net_pub_parse(const char *hex, unsigned char pk[NET_KEY_BYTES]);


#ifdef __cplusplus
}
#endif

#endif /* TANDEM_NET_H */
