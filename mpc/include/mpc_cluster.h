/* mpc_cluster.h - the network half of the glue: a cluster of two compute
 * parties, a dealer, a model owner and clients over net/.
 *
 * It holds what the daemons and the clients of one cluster share: the config
 * file, the peer numbering, the mpc transport over net (cl_step_t), the
 * control and stats codec (fixed little-endian offsets, never a raw struct on
 * the wire), the model store (checksummed files written atomically), and the
 * three services as objects: the dealer (cl_dealer_t), a compute party
 * (cl_party_t) and a client or model owner (cl_client_t). A service is
 * created with _new, started or stepped, and freed with _free, as a libuv
 * handle is; none keeps static state, so several dealers, parties and
 * clients can live in one process (the Check suite runs a whole cluster so).
 * Hooks (cl_hooks_t) carry the log, the clock and fault injection.
 *
 * Peers are numbered as the mpc roles (P0 = 0, P1 = 1, dealer = 2, owner = 4)
 * and clients from CL_CLIENT0 on, in the order of their config sections.
 * Channel 0 of a link carries the protocol's messages (whose sizes follow
 * from the public plan); channel 1 carries control messages: a fixed header
 * (cl_ctrl_t, CL_CTRL_HDR bytes) and an optional payload (a public graph, the
 * party's stats, an error text).
 *
 * The mpc core (mpc.h) never includes this header: it knows no sockets.
 */
#ifndef TANDEM_MPC_CLUSTER_H
#define TANDEM_MPC_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "mpc.h"
#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CL_P0 0
#define CL_P1 1
#define CL_DEALER 2
#define CL_OWNER 4
#define CL_CLIENT0 8
#define CL_MAX_CLIENTS 16
#define CL_CHAN_DATA 0
#define CL_CHAN_CTRL 1
#define CL_CTRL_MAX ((size_t)64 << 20) /* the largest control payload */
#define CL_NAME_MAX 64
#define CL_TAG_BYTES 8 /* a step's tag, first in each of its protocol messages */
#define CL_MAX_BATCH 100000u
#define CL_CLIENT_MAX_MSG ((size_t)256 << 20) /* client_max_msg's default */

/* ---- config ----------------------------------------------------------------- */

typedef struct {
  char name[CL_NAME_MAX];  /* "p0", "p1", "dealer", "owner", "client NAME" */
  int present;
  char host[64];           /* as written: an address or a hostname */
  char addr[64];           /* host resolved at load (numeric, IPv4 or IPv6) */
  char bind[64];           /* the numeric address it listens on (default addr) */
  uint16_t port;           /* 0: dials out only */
  unsigned char pk[NET_KEY_BYTES];
  int has_pk;
  char key_path[1024];     /* secret key file (used by that member only) */
  char data_dir[1024];     /* P0, P1, dealer: where models are stored */
} cl_member_t;

typedef struct {
  char path[1024];
  cl_member_t m[NET_MAX_PEERS];
  int nclients;
  int timeout_ms;          /* every blocking wait (default 30000) */
  int handshake_timeout_ms; /* a connection's handshake (0: net's default) */
  size_t client_max_msg;   /* the longest message a daemon takes from a
                            * client or the owner (0: CL_CLIENT_MAX_MSG) */
  size_t max_frame, max_msg, queue_bytes;
  unsigned pool;           /* dealer: preprocessed queries kept per model */
  /* The dealer's memory budget for preprocessing, in bytes: the queries it
   * holds ready in its pools, makes and sends, all at once. Pools are
   * evicted least recently used to stay under it, and a query whose own
   * preprocessing exceeds it is refused. Default: a quarter of the host's
   * memory (cl_default_pool_mem). */
  size_t pool_mem_max;
  /* Dealer: the most queries waiting in its FIFO from all clients together
   * (each client key also has at most JOBS_PER_PEER, 4, of its own): a
   * query past it is refused at once with the reason, rather than left to
   * wait out its client's timeout behind the others. Default CL_QUEUE_MAX. */
  unsigned queue_max;
  /* The memory budget of one plan with its party or dealer object, in bytes
   * (mpc_plan_mem_bytes' estimate from the graph): a graph or a batch size
   * over it is refused before anything is compiled. 0: no budget. */
  size_t plan_mem_max;
  /* The most memory a compute party keeps cached for one plan between
   * queries, in bytes (CL_PLAN_KEEP by default): a larger plan is freed after
   * its query and compiled again for the next of its batch size, so an idle
   * party holds little more than its models and at most CL_PLANS plans of
   * this size per model; a smaller one stays, so its next query does not
   * fault its buffers in again. */
  size_t plan_keep;
  /* Benchmarks: every link of every process delayed by emulate_delay_us one
   * way and limited to emulate_rate_bps bytes/s (net/'s emulation); 0: off. */
  unsigned long emulate_delay_us;
  /* Kernel threads of each compute party (0: one per core). A cluster whose
   * parties share one machine gives each its half. The dealer keeps every
   * core: it works while the parties wait. */
  unsigned threads;
  unsigned long long emulate_rate_bps;
} cl_config_t;

/* queue_max's default. The worker serves one query at a time: 32 queries
 * of a CNN at batch 8 (about a second each on a 2-vCPU machine) are already
 * about the 30 s a client waits by default, so a query further back would
 * wait only to time out. */
#define CL_QUEUE_MAX 32

/* A quarter of the host's physical memory (1 GiB when it cannot tell):
 * pool_mem_max's default. */
size_t cl_default_pool_mem(void);

/* Reads an INI config (inih). Relative paths are taken from the config's
 * directory. TANDEM_ECONFIG (message in err) for anything malformed. */
TANDEM_WUR int cl_config_load(const char *path, cl_config_t *cfg, char *err, size_t errlen);

/* Reads cfg->path again and takes its client sections into *cfg, declaring
 * on node (of member self) each client key that is new or changed, so a
 * client is added without a restart (the daemons do it on SIGHUP, through
 * cl_dealer_reload / cl_party_reload). The clients loaded must stay, in
 * their order (removing or reordering one takes a restart); everything
 * else of the file is left as loaded. *added: the keys declared. Message in
 * err; *cfg is unchanged on error. */
TANDEM_WUR int cl_config_reload_clients(cl_config_t *cfg, int self, net_node_t *node,
                                        int *added, char *err, size_t errlen);

/* The peer id of "p0", "p1", "dealer", "owner", "client" (the first client)
 * or a client's name; -1 if the config has no such member. */
TANDEM_WUR int cl_member_id(const cl_config_t *cfg, const char *name);

/* Loads self's key (refusing a file others can read), creates the node
 * (listening if self has a port and `listen`), and declares every other
 * member that has a public key. Message in err. */
TANDEM_WUR int cl_node_open(const cl_config_t *cfg, int self, int listen, net_node_t **out,
                            void (*log)(void *ctx, const char *line), void *log_ctx,
                            char *err, size_t errlen);

/* The number of peer id's current link (net_stats_t.links, which counts the
 * links made): what net_msg_send_on and cl_step_t.link take. */
uint64_t cl_peer_link(net_node_t *node, int id);

/* Frees whatever data-channel messages (CL_CHAN_DATA) of peer id's link
 * `link` are still queued, once that link was closed after a failed step:
 * net keeps a replaced link's messages for the receives bound to it, and
 * none will come, so they would hold memory (and count against the node's
 * queue bound) until the peer's next link ends. No effect for link 0. */
void cl_link_drain(net_node_t *node, int id, uint64_t link);

/* Connects to peer id, retrying refused connections until timeout_ms. */
TANDEM_WUR int cl_connect(net_node_t *node, int id, int timeout_ms);

/* Monotonic seconds (CLOCK_MONOTONIC). */
double cl_now(void);

/* ---- hooks ------------------------------------------------------------------ */

/* Where a service may be made to fail or wait (cl_hooks_t.fault). */
typedef enum {
  /* Dealer: the parties were told of query `seq` of client `peer`; its
   * preprocessing is not sent yet (a client that dies here leaves the
   * parties told of a query it will never send an input for). */
  CL_FAULT_DEALER_BEFORE_PREP = 1,
  /* Party: query `seq` is about to run (links up, offline phase next). A
   * non-zero return makes the party act as if it died there: it closes all
   * its links and abandons the query. */
  CL_FAULT_PARTY_BEFORE_QUERY,
  /* Dealer: a generator is about to make one query's preprocessing of batch
   * size `seq`; `peer` is 1 for the on-demand generator (a query waits for
   * it), 0 for the one refilling the pools ahead. May block (a slow
   * generation); the return value is ignored. */
  CL_FAULT_DEALER_GENERATE,
  /* Dealer: the reader of owner or client `peer` is about to look for its
   * next control message, on the peer's link number `seq` (net's count; 0:
   * none yet), as it does at least every half second. May
   * block (a reader that is slow to get to a message); the return value is
   * ignored. */
  CL_FAULT_DEALER_READ,
  /* Dealer: a generator is about to compile the plan of batch size `seq`
   * (without the dealer's lock). May block (a large plan); the return
   * value is ignored. */
  CL_FAULT_DEALER_COMPILE,
  /* Party: query `seq` of client `peer` is about to run one online round
   * with the other party (every round of the query). May block (a party
   * that stalls mid-step while its links stay up); the return value is
   * ignored. */
  CL_FAULT_PARTY_ROUND,
  /* Dealer: query `seq` of client `peer` was told to P0 and not yet to P1.
   * May block (a dealer slow between the two); the return value is
   * ignored. */
  CL_FAULT_DEALER_TELL
} cl_fault_t;

/* Hooks of a service; any may be NULL. They run on the service's threads
 * (the dealer has several) and must be thread-safe. */
typedef struct {
  /* One log line of the service `who` ("dealer", "party p0", ...), never
   * holding a secret. NULL: no log. */
  void (*log)(void *ctx, const char *who, const char *line);
  /* The clock of the service's own deadlines, in seconds (NULL: cl_now).
   * net's timeouts run on the real clock. */
  double (*now)(void *ctx);
  /* Fault injection at `where` (cl_fault_t) for step `seq` of peer `peer`;
   * returns 0 to go on. May block (a pause). */
  int (*fault)(void *ctx, cl_fault_t where, uint64_t seq, int peer);
  void *ctx;
  /* The same line with its level (CL_LOG_*); when set, it is called
   * instead of log. Lines of net/ are warnings when they tell of a refusal
   * or failure, else information. */
  void (*log_at)(void *ctx, int level, const char *who, const char *line);
} cl_hooks_t;
enum { CL_LOG_ERROR = 0, CL_LOG_WARN, CL_LOG_INFO, CL_LOG_DEBUG };

/* ---- the mpc transport over net -------------------------------------------- */

/* The mpc transport of one step (a model setup or a query) over a node: mpc
 * roles map to peer ids (the client role to the query's client). Words: a
 * *link* is always one authenticated connection of net/ to a peer (numbered
 * per peer by net_stats_t.links, a reconnection makes a new one); a *step*
 * is one setup or query, and its transport pins each role to a link. */
typedef struct {
  mpc_transport_t base;
  net_node_t *node;
  int peer[MPC_NROLES];
  uint64_t link[MPC_NROLES]; /* the link a role's messages go on (net_msg_send_on;
                              * 0: the current one), set after cl_step_init */
  uint64_t tag;
  int timeout_ms; /* bound of one receive, stale messages dropped included */
  double due[MPC_NROLES]; /* cl_now() by which a receive from a role ends at
                           * the latest (0: none), set after cl_step_init */
} cl_step_t;
/* Every protocol message carries the 8-byte tag of its step (a query or a
 * model setup), chosen at random by the dealer: a receiver drops messages of
 * any other tag. After a failed step, messages of it may still be queued on a
 * link (net keeps what arrived before a link was replaced); the tag keeps
 * them from ever being read as part of a later step.
 *
 * A message of the step's tag alone, where a body was expected, cancels the
 * step: the receive fails with TANDEM_ECANCELED at once. The dealer sends it
 * to a party in place of its preprocessing when it cannot send that after
 * telling the party of the query (the client left), so the party neither
 * waits out its timeout nor has to drop a link that holds nothing stale. */
void cl_step_init(cl_step_t *l, net_node_t *node, mpc_role_t self, int client_id,
                  uint64_t tag, int timeout_ms);

/* Sends the cancel message of the step to role `to` (see above). */
TANDEM_WUR int cl_step_cancel(cl_step_t *l, mpc_role_t to);

/* Sends one message of the step to role `to` without copying it: buf holds
 * CL_TAG_BYTES of headroom, then the len bytes of the message; the step's
 * tag is written into the headroom. What the step transport's send does for a
 * buffer of its own (the dealer sends its large parts so). */
TANDEM_WUR int cl_step_send_in_place(cl_step_t *l, mpc_role_t to, uint8_t *buf, size_t len);
/* cl_step_send_in_place of a buffer the caller is done with: the message,
 * headroom included, is wiped as it is sealed (net_msg_send_consume);
 * *wiped says how many of its bytes from the start are. */
TANDEM_WUR int cl_step_send_consume(cl_step_t *l, mpc_role_t to, uint8_t *buf, size_t len,
                                    size_t *wiped);

/* ---- control messages and stats --------------------------------------------- */

enum {
  CL_MSG_SHARE = 1, /* owner -> dealer: a model's public graph (payload) */
  CL_MSG_SETUP,     /* dealer -> P0, P1: set up a model (payload: graph) */
  CL_MSG_REQ,       /* client -> dealer: one query of model `name`, batch */
  CL_MSG_QUERY,     /* dealer -> P0, P1: serve query seq for client `peer` */
  CL_MSG_REPLY,     /* dealer -> client/owner: accepted (payload: graph) or refused (text) */
  CL_MSG_ACK,       /* P0, P1 -> owner: model stored (or text); -> client: stats */
  CL_MSG_STOP,      /* dealer -> P0, P1: the link is being closed on purpose */
  CL_MSG_LIST,      /* owner/client -> dealer: the models (REPLY payload: one
                     * line per model, cl_client_models' format) */
  CL_MSG_GRAPH,     /* owner/client -> dealer: model `name`'s public graph
                     * (REPLY payload), to check inputs before a REQ */
  CL_MSG_REMOVE     /* owner -> dealer -> P0, P1: remove model `name` (the
                     * parties ACK to the owner, as for a SETUP) */
};

#define CL_FLAG_WAITED 1u /* REPLY: the query's preprocessing was made on demand */
#define CL_FLAG_REPLACE 4u /* SHARE: replace a model of that name (else refused) */
#define CL_FLAG_STATS 2u  /* ACK of a query: the payload starts with the party's
                           * stats (cl_stats_encode), then on success each
                           * gate's offline and online seconds (little-endian
                           * binary64 pairs), on failure a text */

typedef struct {
  uint32_t type;
  int32_t status;          /* 0 or a tandem error code */
  uint64_t seq;            /* the dealer's query sequence number */
  uint64_t batch;
  uint32_t peer;           /* QUERY: the client; SETUP: the owner */
  uint32_t flags;
  char name[CL_NAME_MAX];  /* the model */
  uint64_t tag;            /* SETUP, QUERY, REPLY: the step's message tag */
  uint64_t version;        /* QUERY: the model's version (its setup's tag);
                            * REQ: the client's nonce, which the REPLY echoes */
} cl_ctrl_t;

#define CL_CTRL_HDR 112 /* bytes of cl_ctrl_t on the wire */

/* The header at fixed little-endian offsets: type 0, status 4, seq 8,
 * batch 16, peer 24, flags 28, name 32 (64 bytes, NUL-padded), tag 96,
 * version 104. */
void cl_ctrl_encode(const cl_ctrl_t *h, uint8_t out[CL_CTRL_HDR]);
void cl_ctrl_decode(const uint8_t in[CL_CTRL_HDR], cl_ctrl_t *h);

TANDEM_WUR int cl_ctrl_send(net_node_t *node, int peer, const cl_ctrl_t *h,
                            const void *payload, size_t plen);
/* The same on one link of peer (net_msg_send_on's `link`; 0: the current). */
TANDEM_WUR int cl_ctrl_send_on(net_node_t *node, int peer, uint64_t link, const cl_ctrl_t *h,
                               const void *payload, size_t plen);
/* *payload is malloc'd and NUL-terminated (NULL when empty); the caller frees it. */
TANDEM_WUR int cl_ctrl_recv(net_node_t *node, int peer, cl_ctrl_t *h, uint8_t **payload,
                            size_t *plen, int timeout_ms);
/* The same bound to one link of peer (net_msg_take_on's `link`; 0: any):
 * only a message that arrived on that link, TANDEM_ECONNRESET once the peer
 * is on another link and none of that link's is left. */
TANDEM_WUR int cl_ctrl_recv_on(net_node_t *node, int peer, uint64_t link, cl_ctrl_t *h,
                               uint8_t **payload, size_t *plen, int timeout_ms);

/* Where a party's step failed (cl_party_stats_t.fail_where). */
typedef enum {
  CL_FAIL_NONE = 0,
  CL_FAIL_BEFORE = 1,  /* before the protocol ran: unknown model, other setup,
                        * a peer that did not connect */
  CL_FAIL_OFFLINE = 2, /* in the offline phase (the dealer's preprocessing) */
  CL_FAIL_ONLINE = 3   /* in the online phase (input, rounds, output) */
} cl_fail_where_t;

/* What a compute party sends its client after a query (the ACK's payload,
 * CL_STATS_BYTES at fixed little-endian offsets, then for a successful query
 * each gate's offline and online seconds, for a failed one a text). */
typedef struct {
  uint64_t rounds;         /* inter-party online rounds */
  uint64_t online_sent;    /* bytes sent online (to the other party and the client) */
  uint64_t offline_recvd;  /* bytes received from the dealer for the query */
  double online_s, offline_s;
  double online_start, online_end; /* CLOCK_MONOTONIC (mpc_stats_t) */
  /* A failed query: which party (CL_P0, CL_P1), where, and its error code. */
  uint32_t fail_party;
  uint32_t fail_where;     /* cl_fail_where_t */
  int32_t fail_code;       /* a tandem error code, 0 when the query succeeded */
} cl_party_stats_t;

#define CL_STATS_BYTES 68
/* rounds 0, online_sent 8, offline_recvd 16, online_s 24, offline_s 32,
 * online_start 40, online_end 48 (doubles as IEEE 754 binary64), fail_party
 * 56, fail_where 60, fail_code 64. */
void cl_stats_encode(const cl_party_stats_t *s, uint8_t out[CL_STATS_BYTES]);
void cl_stats_decode(const uint8_t in[CL_STATS_BYTES], cl_party_stats_t *s);

/* ---- files and the model store -------------------------------------------- */

/* A model name: 1..63 of [A-Za-z0-9_.-], not starting with '.'. */
int cl_name_ok(const char *name);

/* Writes buf plus its BLAKE2b-256 to path, mode 0600, through the atomic
 * writer (tandem_file.h: a fresh temporary file, fsync'd and renamed, the
 * directory fsync'd; a crash leaves the old file or the new). The hash
 * detects a damaged file; it is no seal against someone who can write it. */
TANDEM_WUR int cl_file_write(const char *path, const void *buf, size_t len);
/* Reads such a file; TANDEM_EPARSE if the hash does not match (message
 * naming the file in err). *buf is sodium_malloc'd: free with sodium_free. */
TANDEM_WUR int cl_file_read(const char *path, uint8_t **buf, size_t *len, char *err,
                            size_t errlen);

/* mkdir -p with mode 0700. */
TANDEM_WUR int cl_mkdirs(const char *path);
/* A daemon's data directory: made (0700) if missing, then checked: a real
 * directory (not a link), owned by this user, closed to group and others;
 * else err says which and how to fix it. */
TANDEM_WUR int cl_data_dir(const char *dir, char *err, size_t errlen);

#define CL_PLANS 4

typedef struct {
  size_t batch;
  mpc_plan_t *plan;
  void *obj; /* mpc_party_t or mpc_dealer_t with the model state imported */
  int busy;  /* in use by a thread of the caller's: never the one replaced */
} cl_plan_t;

typedef struct cl_model_s {
  char name[CL_NAME_MAX];
  mpc_graph_t graph;
  uint8_t *graph_bytes;
  size_t graph_len;
  uint8_t *state; /* sodium_malloc'd */
  size_t state_len;
  uint64_t version; /* the tag of the setup that made the state */
  cl_plan_t plans[CL_PLANS];
  unsigned next; /* round-robin replacement */
  /* One query's preprocessing bytes for P0, P1 and the client are
   * prep_base + batch * prep_row (cl_model_prep_bytes), once prep_known. */
  int prep_known;
  size_t prep_base[3], prep_row[3];
  struct cl_model_s *next_model;
} cl_model_t;

/* The models of one role under a data directory: the public graph
 * (NAME.graph) and the role's model state (NAME.p0, NAME.p1, NAME.dealer),
 * with plans compiled per batch size. Not thread-safe. */
typedef struct {
  char dir[1024];
  const char *suffix; /* "p0", "p1", "dealer" */
  int role;           /* MPC_P0, MPC_P1 or MPC_DEALER */
  size_t mem_max;     /* a plan's memory budget (config plan_mem_max; 0: none) */
  cl_model_t *models;
} cl_store_t;

void cl_store_init(cl_store_t *s, const char *dir, int role);
void cl_store_close(cl_store_t *s);
/* Finds a model, loading it from disk if needed (errors name the file). */
TANDEM_WUR int cl_store_get(cl_store_t *s, const char *name, cl_model_t **out, char *err,
                            size_t errlen);
/* Saves graph and state (the state file starts with the 8-byte version, the
 * tag of the setup that made it) and replaces the cached model. The dealer
 * names the version in every query, so a party whose setup of a model failed
 * refuses queries instead of mixing two setups' states. */
TANDEM_WUR int cl_store_put(cl_store_t *s, const char *name, const uint8_t *graph,
                            size_t glen, uint64_t version, const uint8_t *state, size_t slen,
                            char *err, size_t errlen);
/* The plan of batch size `batch` with a party/dealer object holding the state
 * (cl_model_plan_find, else cl_model_plan_make then cl_model_plan_put).
 * TANDEM_ENOMEM, before anything is compiled, when the plan's estimated
 * memory (mpc_plan_mem_bytes) exceeds the store's mem_max. */
TANDEM_WUR int cl_model_plan(cl_store_t *s, cl_model_t *m, size_t batch, cl_plan_t **out,
                             char *err, size_t errlen);
/* plan_keep's default: the most memory a plan with its object may keep
 * between queries (its mpc_plan_mem_bytes estimate plus the dealer's
 * message(s) it holds). The CNN at batch 50 (over 1 GB) is freed after its
 * query; at batch 4, and a 512-cube matrix product, stay (freed, their next
 * queries' online phases took 3-4x as long, faulting their buffers in). */
#define CL_PLAN_KEEP ((size_t)1 << 30)
/* Frees the cached plans of every model that are not busy and whose memory
 * (as above) exceeds keep bytes; returns how many it freed. */
unsigned cl_store_release(cl_store_t *s, size_t keep);
/* Removes model `name`: its cached copy (no plan of it may be busy) and
 * its files, the graph first (a model is visible while its graph is).
 * TANDEM_ENOENT when there is none. Message in err. */
TANDEM_WUR int cl_store_remove(cl_store_t *s, const char *name, char *err, size_t errlen);
/* The models under the store's directory, one line each, "NAME\tINPUTS\t
 * BOUND\tPARAMS\tSHARED\n" (INPUTS: "name[N,1,28,28]" joined by spaces, N
 * the batch; BOUND: the largest input magnitude, "-" if unknown; PARAMS:
 * weight elements; SHARED: when it was stored, UTC ISO 8601), sorted by
 * name, into *text (malloc'd, NUL-terminated; caller frees). A model whose
 * files cannot be read is listed with its error as INPUTS. */
TANDEM_WUR int cl_store_list(cl_store_t *s, char **text, size_t *len);
/* The cached plan of that batch size, or NULL. */
cl_plan_t *cl_model_plan_find(cl_model_t *m, size_t batch);
/* Compiles a plan with its object into *out, outside the store: it reads
 * only m's graph and state, so the caller may run it without the lock that
 * guards the store, as long as m is not replaced meanwhile. The budget is
 * checked first. Free *out with cl_model_plan_discard or hand it to
 * cl_model_plan_put. */
TANDEM_WUR int cl_model_plan_make(const cl_store_t *s, const cl_model_t *m, size_t batch,
                                  cl_plan_t *out, char *err, size_t errlen);
void cl_model_plan_discard(const cl_store_t *s, cl_plan_t *p);
/* Caches *fresh in m (replacing a plan not in use; *fresh is emptied) and
 * points *out at it; TANDEM_ENOMEM (fresh discarded) when every plan is busy. */
TANDEM_WUR int cl_model_plan_put(cl_store_t *s, cl_model_t *m, cl_plan_t *fresh,
                                 cl_plan_t **out, char *err, size_t errlen);
/* One query's preprocessing bytes at `batch` for P0, P1 and the client
 * (bytes[0..2]), tag headroom not included: linear in the batch, from the
 * plans at batch 1 and 2, compiled once per model (not kept), so a batch
 * is checked against max_msg before its plan is compiled or a pool made. */
TANDEM_WUR int cl_model_prep_bytes(cl_store_t *s, cl_model_t *m, size_t batch,
                                   size_t bytes[3], char *err, size_t errlen);
/* 0 if graph g's plan at `batch` with its object fits a memory budget of
 * mem_max bytes (0: no budget): mpc_plan_mem_bytes plus `prep`, the bytes
 * of the dealer's messages the object holds (0 before a plan says them);
 * else TANDEM_ENOMEM with the reason. */
TANDEM_WUR int cl_plan_mem_check(const mpc_graph_t *g, size_t batch, size_t prep,
                                 size_t mem_max, char *err, size_t errlen);

/* Does a query's preprocessing of plan p fit one message of max_msg bytes
 * (0: net's default) for every role, with the tag's headroom? 1 if so; 0
 * with *role and *bytes naming the first role that does not. */
int cl_prep_fits(const mpc_plan_t *p, size_t max_msg, mpc_role_t *role, size_t *bytes);

/* The largest batch (at most cap) of graph g whose preprocessing fits one
 * message of max_msg bytes for every role, with a tenth of headroom; 0 if not
 * even one row does. */
size_t cl_batch_fit(const mpc_graph_t *g, size_t max_msg, size_t cap);
/* The largest of a plan's dealer messages (P0's, P1's, the client's). */
size_t cl_prep_largest(const mpc_plan_t *p);
/* The same from a plan of g at batch 1 the caller already has. */
size_t cl_batch_fit_plan(const mpc_plan_t *one, size_t max_msg, size_t cap);

/* The largest batch (at most cap) of graph g whose masked inputs, the
 * message the client sends each party, fit max_msg bytes (the daemons'
 * client_max_msg) with a tenth of headroom; 0 if not even one row does.
 * Token ids count as what is sent: their one-hot rows, V elements per id. */
size_t cl_input_fit(const mpc_graph_t *g, size_t max_msg, size_t cap);

/* ---- the dealer -------------------------------------------------------------- */

/* The dealer service: listens, sequences the cluster (one FIFO of owners'
 * SHAREs and clients' REQs, served in order by one worker thread, so both
 * parties see the same SETUP and QUERY messages in the same order), and makes
 * preprocessing ahead in a pool (see dealer.c for the pool's bound).
 *
 * cl_dealer_new opens the node (listening) and the store under the config's
 * [dealer] data directory; cl_dealer_start starts its threads; cl_dealer_step
 * waits up to timeout_ms and logs the parties' comings and goings (the
 * caller's run loop); cl_dealer_stop stops and joins the threads;
 * cl_dealer_free (after stop, or instead of it) releases everything. The
 * config is copied. Message in err. */
typedef struct cl_dealer_s cl_dealer_t;
TANDEM_WUR int cl_dealer_new(cl_dealer_t **out, const cl_config_t *cfg,
                             const cl_hooks_t *hooks, char *err, size_t errlen);
TANDEM_WUR int cl_dealer_start(cl_dealer_t *d);
void cl_dealer_step(cl_dealer_t *d, int timeout_ms);
void cl_dealer_stop(cl_dealer_t *d);
void cl_dealer_free(cl_dealer_t *d);
/* Takes the config file's client sections again (cl_config_reload_clients)
 * and starts a reader for each new client. Any thread. Message in err. */
TANDEM_WUR int cl_dealer_reload(cl_dealer_t *d, char *err, size_t errlen);
/* The dealer's node (its port, for tests). */
net_node_t *cl_dealer_node(cl_dealer_t *d);
/* The bytes of preprocessing the dealer holds now (ready, being made or
 * sent) and the most it has held at once, both within pool_mem_max. Any
 * thread. */
void cl_dealer_mem(cl_dealer_t *d, size_t *held, size_t *peak);

/* ---- a compute party ----------------------------------------------------------- */

/* A compute party (self CL_P0 or CL_P1): takes SETUP and QUERY messages from
 * the dealer and runs each step to its end. cl_party_step dials what is down
 * (the dealer; P0 also dials P1), then waits up to timeout_ms for the
 * dealer's next message and serves it; one thread calls it in a loop. After
 * a failed step the party drops only the links that may hold that step's
 * messages (see party.c). The config is copied; the caller sets the kernel
 * threads (config `threads`). */
typedef struct cl_party_s cl_party_t;
TANDEM_WUR int cl_party_new(cl_party_t **out, const cl_config_t *cfg, int self,
                            const cl_hooks_t *hooks, char *err, size_t errlen);
void cl_party_step(cl_party_t *p, int timeout_ms);
/* The same as cl_dealer_reload for a party; call it from the thread that
 * steps the party, between steps. */
TANDEM_WUR int cl_party_reload(cl_party_t *p, char *err, size_t errlen);
void cl_party_free(cl_party_t *p);
net_node_t *cl_party_node(cl_party_t *p);

/* ---- a client or the model owner ------------------------------------------------ */

typedef struct {
  const cl_config_t *cfg; /* the caller's, kept until cl_client_close */
  int self;               /* CL_OWNER or a client id */
  net_node_t *node;
  /* Called by cl_client_query_chunked after each query with the rows done
   * and the total (NULL: none); the caller sets it after cl_client_open. */
  void (*progress)(void *ctx, size_t done, size_t total);
  void *progress_ctx;
} cl_client_t;

/* Loads self's key and connects to the dealer, P0 and P1, retrying refused
 * connections for up to CL_DOWN_GRACE_MS (the config's timeout if shorter);
 * a daemon still refusing then is named in err by its config section. */
#define CL_DOWN_GRACE_MS 5000
TANDEM_WUR int cl_client_open(cl_client_t *c, const cl_config_t *cfg, int self, char *err,
                              size_t errlen);
void cl_client_close(cl_client_t *c);

/* The owner: imports an ONNX model, sends its public graph to the dealer and
 * the weight shares to the parties, and waits until both parties stored it.
 * A model of that name is refused unless flags has CL_SHARE_REPLACE (then
 * queries already sent finish on the old one, later ones run on the new). */
#define CL_SHARE_REPLACE 1u
TANDEM_WUR int cl_client_share_model(cl_client_t *c, const char *onnx_path, const char *name,
                                     unsigned flags, char *err, size_t errlen);
/* The same for a graph and weights already in memory (not kept). */
TANDEM_WUR int cl_client_share_graph(cl_client_t *c, const mpc_graph_t *g,
                                     const mpc_weights_t *w, const char *name,
                                     unsigned flags, char *err, size_t errlen);
/* The owner: removes model `name` from the dealer and both parties (their
 * pools, plans and files), waiting for both parties. Message in err. */
TANDEM_WUR int cl_client_remove_model(cl_client_t *c, const char *name, char *err,
                                      size_t errlen);
/* Any client or the owner: the dealer's models as cl_store_list's lines
 * (*text malloc'd; caller frees). */
TANDEM_WUR int cl_client_models(cl_client_t *c, char **text, char *err, size_t errlen);
/* A query's inputs against model `name`'s public graph g, with no network:
 * their number and shapes (one line naming the input, the shape the model
 * declares and the one given), the outputs' number (noutputs), every element
 * finite, within the owner's input bound (g->input_bound, when > 0) and not
 * under the declared least input (g->input_min). *batch: the rows to ask
 * for (1 when no input is batched). 0, TANDEM_ESHAPE or TANDEM_ERANGE with
 * the line in err. cl_client_query calls it before it asks the dealer;
 * `tandem run` before it starts its cluster. */
TANDEM_WUR int cl_inputs_check(const mpc_graph_t *g, const char *name,
                               const mpc_ftensor_t *inputs, size_t ninputs, size_t noutputs,
                               size_t *batch, char *err, size_t errlen);
/* Any client or the owner: model `name`'s public graph from the dealer,
 * initialised by the callee (close with mpc_graph_close). */
TANDEM_WUR int cl_client_graph(cl_client_t *c, const char *name, mpc_graph_t *g, char *err,
                               size_t errlen);

/* Figures of one query. */
typedef struct {
  unsigned rounds;
  uint64_t online_bytes[2];   /* sent online by P0, P1 */
  uint64_t offline_bytes[2];  /* sent by the dealer to P0, P1 */
  uint64_t client_offline;    /* sent by the dealer to the client */
  double online_s, offline_s; /* the slower party's */
  /* From the moment both parties hold the input and their preprocessing to
   * the last output share sent: the online phase without the wait for the
   * other party's offline work (valid when all run on one host, as bench's
   * cluster does: it compares the parties' clocks). */
  double online_span_s;
  double wall_s;              /* the whole query at the client */
  int waited;                 /* the dealer made the preprocessing on demand */
  size_t queries;             /* cl_client_query_chunked: queries made (else 1) */
  /* A failed query that a party gave up: the party whose failure caused it
   * (-1: none said), where and its code (cl_party_stats_t). */
  int fail_party;
  cl_fail_where_t fail_where;
  int fail_code;
  /* Per gate of the query's plan (ngates entries, the slower party's), or
   * NULL: malloc'd by cl_client_query, freed by cl_query_stats_close. */
  size_t ngates;
  double *gate_offline_s, *gate_online_s;
} cl_query_stats_t;

/* One private inference of model `name` on the graph's inputs (ninputs
 * tensors, in graph order, each with the batch as its first dimension); the
 * model's noutputs outputs are initialised by the callee. *st is filled (free
 * it with cl_query_stats_close) whether or not the query succeeds. */
TANDEM_WUR int cl_client_query(cl_client_t *c, const char *name, const mpc_ftensor_t *inputs,
                               size_t ninputs, mpc_ftensor_t *outputs, size_t noutputs,
                               cl_query_stats_t *st, char *err, size_t errlen);
void cl_query_stats_close(cl_query_stats_t *st);

#define CL_MAX_TENSORS 8 /* inputs or outputs of one chunked query */

/* cl_client_query in queries of at most `chunk` rows: every input is split
 * along its first dimension, the outputs are put back together in order. *st
 * sums the bytes, seconds and gate times of the queries; st->rounds is per
 * query, st->queries how many were made. */
TANDEM_WUR int cl_client_query_chunked(cl_client_t *c, const char *name, size_t chunk,
                                       const mpc_ftensor_t *inputs, size_t ninputs,
                                       mpc_ftensor_t *outputs, size_t noutputs,
                                       cl_query_stats_t *st, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
