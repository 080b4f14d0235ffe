/* lcluster.h - a throw-away cluster on loopback for `tandem run`, `tandem
 * demo` and `tandem bench`: fresh keys and a config in a temporary directory,
 * P0, P1 and the dealer started as separate processes on free ports. */
#ifndef TANDEM_LCLUSTER_H
#define TANDEM_LCLUSTER_H

#include <signal.h>
#include <sys/types.h>

#include "daemon.h"
#include "mpc_cluster.h"

typedef struct {
  char dir[256];
  char config[300];
  pid_t pid[3]; /* p0, p1, dealer */
  cl_config_t cfg;
} tandem_local_t;

/* Makes the directory, keys and config (with `extra`, lines for the
 * [cluster] section, or NULL) and starts the daemons (without waiting for
 * them to listen: clients retry). cmd names the caller in the config. On
 * failure everything made is removed and err says why. */
int tandem_local_start(tandem_local_t *c, const char *cmd, const char *extra, char *err, size_t errlen);
/* Kernel threads each party of a loopback cluster gets: half the cores. */
int tandem_local_threads(void);
/* The config line raising the cluster's timeout for a query whose
 * preprocessing is prep bytes (P0's, P1's and the client's): 30 s per 256 MB,
 * at most an hour, so a large model's preprocessing is made and
 * sent before a party gives up on a loaded machine (the CNN's 1.5 GB at
 * batch 50 took 8 s to make and 23 s to send on a 2-core machine; BERT-tiny
 * at sequence 16, 0.5 GB, over 20 s under ASan). Appended to extra (of
 * extralen bytes) unless TANDEM_TIMEOUT_MS says the timeout or prep is
 * under 256 MB. */
void tandem_local_timeout_for(size_t prep, char *extra, size_t extralen);
/* The largest message (the config's max_msg) a throw-away cluster needs
 * for queries of plan p: NET_DEFAULT_MAX_MSG when p's largest dealer
 * message fits it, else that message with an eighth of headroom (rounded
 * up to a MiB), at most a sixth of this machine's memory (each party holds
 * its message while the dealer holds both and makes the next); 0 if more.
 * BERT-tiny at sequence 128 needs 1.5 GB a party. */
size_t tandem_local_max_msg_for(const mpc_plan_t *p);
/* Stops the daemons (SIGTERM, then SIGKILL after 5 s) and removes the
 * directory (kept if TANDEM_KEEP_TMP is set). */
void tandem_local_stop(tandem_local_t *c);
/* TANDEM_EIO with err set if a daemon has exited (looks for half a second). */
int tandem_local_check(tandem_local_t *c, char *err, size_t errlen);
/* The daemons' logs on stderr (after a failure). */
void tandem_local_logs(const tandem_local_t *c);

#endif
