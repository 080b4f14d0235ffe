/* daemon.h - what the mains share (the daemons `tandem party` and `tandem
 * dealer`; run, demo and bench stop on the same flag):
 * the stop flag set by SIGINT/SIGTERM and one-line logging to stderr, as the
 * cluster services' log hook. */
#ifndef TANDEM_DAEMON_H
#define TANDEM_DAEMON_H

#include <stdatomic.h>

#include "mpc_cluster.h"

/* Set by the signal handler, read by the run loops of the daemons and of
 * run, demo and bench (lock-free on Linux). */
extern atomic_int tandem_stop;

/* Set by SIGHUP: the daemons take the config's client sections again
 * (cl_dealer_reload, cl_party_reload) and clear it. */
extern atomic_int tandem_reload;

/* Installs SIGINT/SIGTERM handlers that set tandem_stop, a SIGHUP handler
 * that sets tandem_reload, ignores SIGPIPE. */
void tandem_signals(void);

/* "<time> tandem <who>: <line>" on stderr; never a secret. */
void tandem_log(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The daemons' --log-level (error, warn, info, debug; NULL: info) and
 * --log-file (appended; NULL: stderr); peers in log lines by cfg's section
 * names (cfg kept). 0, or the exit code after one line on stderr. */
int tandem_log_setup(const char *cmd, const char *level, const char *file,
                     const cl_config_t *cfg);

/* The hooks of a daemon's service: its log lines on stderr (tandem_log),
 * the real clock, no fault. */
extern const cl_hooks_t tandem_daemon_hooks;

/* Long commands' progress on stderr: on a terminal one line updated in
 * place ("[####   ] 300/1000 images  12.0 s, ETA 28 s"), ended with a
 * newline once done reaches total; otherwise (a log) a plain line every
 * 30 s of work ("  300/1000 images, 42.0 s, ETA 98 s"), none for work
 * done within 30 s. secs: since the work began. */
void tandem_progress(const char *what, size_t done, size_t total, double secs);
/* cl_client_t's progress hook for split queries: ctx points at the
 * cl_now() the queries began. */
void tandem_rows_progress(void *ctx, size_t done, size_t total);

#endif
