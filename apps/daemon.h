/* daemon.h - what the party and dealer daemons share: the stop flag set by
 * SIGINT/SIGTERM, one-line logging to stderr, and the store of models under a
 * data directory (the public graph and the role's sealed model state, with
 * plans compiled per batch size). */
#ifndef TANDEM_DAEMON_H
#define TANDEM_DAEMON_H

#include <signal.h>
#include <stdatomic.h>

#include "cluster.h"

/* Set by the signal handler, read by every thread (lock-free on Linux). */
extern atomic_int dm_stop;

/* Installs SIGINT/SIGTERM handlers that set dm_stop, ignores SIGPIPE. */
void dm_signals(void);

/* "tandem <who>: <line>" on stderr, with a timestamp; never a secret. */
void dm_log(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* net_config_t.log adapter; ctx is the `who` string. */
void dm_net_log(void *ctx, const char *line);

#define DM_MAX_BATCH 100000u
#define DM_PLANS 4

typedef struct {
  size_t batch;
  mpc_plan_t *plan;
  void *obj; /* mpc_party_t or mpc_dealer_t with the model state imported */
} dm_plan_t;

typedef struct dm_model_s {
  char name[CL_NAME_MAX];
  mpc_graph_t graph;
  uint8_t *graph_bytes;
  size_t graph_len;
  uint8_t *state; /* sodium_malloc'd */
  size_t state_len;
  uint64_t version; /* the tag of the setup that made the state */
  dm_plan_t plans[DM_PLANS];
  unsigned next; /* round-robin replacement */
  struct dm_model_s *next_model;
} dm_model_t;

typedef struct {
  char dir[1024];
  const char *suffix; /* "p0", "p1", "dealer" */
  int role;           /* MPC_P0, MPC_P1 or MPC_DEALER */
  dm_model_t *models;
} dm_store_t;

void dm_store_init(dm_store_t *s, const char *dir, int role);
void dm_store_close(dm_store_t *s);
/* Finds a model, loading it from disk if needed (errors name the file). */
int dm_store_get(dm_store_t *s, const char *name, dm_model_t **out, char *err, size_t errlen);
/* Saves graph and state (sealed; the state file starts with the 8-byte
 * version, the tag of the setup that made it) and replaces the cached model.
 * The dealer names the version in every query, so a party whose setup of a
 * model failed refuses queries instead of mixing two setups' states. */
int dm_store_put(dm_store_t *s, const char *name, const uint8_t *graph, size_t glen,
                 uint64_t version, const uint8_t *state, size_t slen, char *err,
                 size_t errlen);
/* The plan of batch size `batch` with a party/dealer object holding the state. */
int dm_model_plan(dm_store_t *s, dm_model_t *m, size_t batch, dm_plan_t **out, char *err,
                  size_t errlen);

#endif
