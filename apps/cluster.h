/* cluster.h - what the daemons and the clients of one cluster share: the
 * config file, the peer numbering, the mpc transport over net/, the control
 * messages, and sealed files on disk.
 *
 * Peers are numbered as the mpc roles (P0 = 0, P1 = 1, dealer = 2, owner = 4)
 * and clients from CL_CLIENT0 on, in the order of their config sections.
 * Channel 0 of a link carries the protocol's messages (whose sizes follow
 * from the public plan); channel 1 carries control messages: a fixed header
 * (cl_ctrl_t) and an optional payload (a public graph, an error text).
 */
#ifndef TANDEM_CLUSTER_H
#define TANDEM_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "mpc.h"
#include "net.h"

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

typedef struct {
  char name[CL_NAME_MAX];  /* "p0", "p1", "dealer", "owner", "client NAME" */
  int present;
  char host[64];
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
  size_t max_frame, max_msg, queue_bytes;
  unsigned pool;           /* dealer: preprocessed queries kept per model */
  /* Benchmarks: every link of every process delayed by emulate_delay_us one
   * way and limited to emulate_rate_bps bytes/s (net/'s emulation); 0: off. */
  unsigned long emulate_delay_us;
  /* Kernel threads of each compute party (0: one per core). A cluster whose
   * parties share one machine gives each its half. The dealer keeps every
   * core: it works while the parties wait. */
  unsigned threads;
  unsigned long long emulate_rate_bps;
} cl_config_t;

/* Reads an INI config (inih). Relative paths are taken from the config's
 * directory. TANDEM_ECONFIG (message in err) for anything malformed. */
int cl_config_load(const char *path, cl_config_t *cfg, char *err, size_t errlen);

/* The peer id of "p0", "p1", "dealer", "owner", "client" (the first client)
 * or a client's name; -1 if the config has no such member. */
int cl_member_id(const cl_config_t *cfg, const char *name);

/* Loads self's key (refusing a file others can read), creates the node
 * (listening if self has a port and `listen`), and declares every other
 * member that has a public key. Message in err. */
int cl_node_open(const cl_config_t *cfg, int self, int listen, net_node_t **out,
                 void (*log)(void *ctx, const char *line), void *log_ctx, char *err,
                 size_t errlen);

/* The number of peer id's current link (net_stats_t.links, which counts the
 * links made): what net_msg_send_on and cl_link_t.link take. */
uint64_t cl_peer_link(net_node_t *node, int id);

/* Connects to peer id, retrying refused connections until timeout_ms. */
int cl_connect(net_node_t *node, int id, int timeout_ms);

/* The mpc transport over a node: mpc roles map to peer ids (the client role
 * to the query's client). */
typedef struct {
  mpc_transport_t base;
  net_node_t *node;
  int peer[MPC_NROLES];
  uint64_t link[MPC_NROLES]; /* the link a role's messages go on (net_msg_send_on;
                              * 0: the current one), set after cl_link_init */
  uint64_t tag;
  int timeout_ms; /* bound of one receive, stale messages dropped included */
  double due[MPC_NROLES]; /* cl_now() by which a receive from a role ends at
                           * the latest (0: none), set after cl_link_init */
} cl_link_t;
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
void cl_link_init(cl_link_t *l, net_node_t *node, mpc_role_t self, int client_id,
                  uint64_t tag, int timeout_ms);

/* Sends the cancel message of the link's step to role `to` (see above). */
int cl_link_cancel(cl_link_t *l, mpc_role_t to);

/* Sends one message of the step to role `to` without copying it: buf holds
 * CL_TAG_BYTES of headroom, then the len bytes of the message; the step's
 * tag is written into the headroom. What link's transport send does for a
 * buffer of its own (the dealer keeps its large parts so). */
int cl_link_send_in_place(cl_link_t *l, mpc_role_t to, uint8_t *buf, size_t len);

/* ---- control messages -------------------------------------------------- */

enum {
  CL_MSG_SHARE = 1, /* owner -> dealer: a model's public graph (payload) */
  CL_MSG_SETUP,     /* dealer -> P0, P1: set up a model (payload: graph) */
  CL_MSG_REQ,       /* client -> dealer: one query of model `name`, batch */
  CL_MSG_QUERY,     /* dealer -> P0, P1: serve query seq for client `peer` */
  CL_MSG_REPLY,     /* dealer -> client/owner: accepted (payload: graph) or refused (text) */
  CL_MSG_ACK,       /* P0, P1 -> owner: model stored; -> client: stats (payload) */
  CL_MSG_STOP       /* dealer -> P0, P1: the link is being closed on purpose */
};

#define CL_FLAG_WAITED 1u /* REPLY: the query's preprocessing was made on demand */

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

int cl_ctrl_send(net_node_t *node, int peer, const cl_ctrl_t *h, const void *payload,
                 size_t plen);
/* The same on one link of peer (net_msg_send_on's `link`; 0: the current). */
int cl_ctrl_send_on(net_node_t *node, int peer, uint64_t link, const cl_ctrl_t *h,
                    const void *payload, size_t plen);
/* *payload is malloc'd (NULL when empty); the caller frees it. */
int cl_ctrl_recv(net_node_t *node, int peer, cl_ctrl_t *h, uint8_t **payload, size_t *plen,
                 int timeout_ms);

/* Party stats a compute party sends its client after a query (ACK payload). */
typedef struct {
  uint64_t rounds;         /* inter-party online rounds */
  uint64_t online_sent;    /* bytes sent online (to the other party and the client) */
  uint64_t offline_recvd;  /* bytes received from the dealer for the query */
  double online_s, offline_s;
  double online_start, online_end; /* CLOCK_MONOTONIC (mpc_stats_t) */
} cl_party_stats_t;

/* ---- files ------------------------------------------------------------- */

/* A model name: 1..63 of [A-Za-z0-9_.-], not starting with '.'. */
int cl_name_ok(const char *name);

/* Writes buf plus its BLAKE2b-256 to path, mode 0600, through a temporary
 * file that is fsync'd and renamed (a crash leaves the old file or the new). */
int cl_file_seal(const char *path, const void *buf, size_t len);
/* Reads a sealed file; TANDEM_EPARSE if the hash does not match (message
 * naming the file in err). *buf is sodium_malloc'd: free with sodium_free. */
int cl_file_unseal(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen);

/* mkdir -p with mode 0700. */
int cl_mkdirs(const char *path);

/* Monotonic seconds. */
double cl_now(void);

#endif
