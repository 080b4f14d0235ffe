/* apps.h - the subcommands of the tandem binary, one file each (apps/<name>.c).
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit code: 0 on success, 1 after one
 * clear line on stderr, 2 for a usage error. */
#ifndef TANDEM_APPS_H
#define TANDEM_APPS_H

#include <stddef.h>

#include "mpc_cluster.h"

int tandem_bench_main(int argc, char **argv);
/* tandem bench --matmul / --model (bench_proto.c), called by tandem_bench_main. */
int tandem_bench_proto_main(int argc, char **argv);
int tandem_keygen_main(int argc, char **argv);
int tandem_party_main(int argc, char **argv);
int tandem_dealer_main(int argc, char **argv);
int tandem_share_model_main(int argc, char **argv);
int tandem_remove_model_main(int argc, char **argv);
int tandem_models_main(int argc, char **argv);
int tandem_infer_main(int argc, char **argv);
int tandem_run_main(int argc, char **argv);
int tandem_demo_main(int argc, char **argv);

/* One option of a command: --name VALUE into *value, or the flag --name
 * setting *flag to 1 (value NULL). With count set, the option may be given up
 * to max times: value is then an array of max strings, filled in order, and
 * *count says how many were given (one more is a usage error). */
typedef struct {
  const char *name;
  const char **value;
  int *flag;
  size_t *count;
  size_t max;
} tandem_opt_t;

#define TANDEM_MAX_TENSORS CL_MAX_TENSORS /* --input / --output files of one query */

/* Parses argv (getopt_long, long options only, each named exactly: no
 * abbreviations) against opts, a table ended by a NULL name. Returns -1 when
 * the command should go on, 0 after printing `usage` and `help` for --help
 * (or the version for --version), 2 after one line on stderr naming an
 * unknown option, a missing or unwanted value or a stray argument. */
int tandem_opts(int argc, char **argv, const tandem_opt_t *opts, const char *usage,
                const char *help);

/* Prints "tandem <cmd>: <message>" on stderr. */
void tandem_app_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Loads n tensor files (.npy or .pb) into t[0..n-1], every value finite;
 * on failure none is left open and err names the file. */
int tandem_tensors_load(const char *const *paths, size_t n, mpc_ftensor_t *t, char *err,
                        size_t errlen);
/* Every path can be written (not a directory, its directory writable), so
 * that a typo is found before any work; err names the first that cannot. */
int tandem_paths_writable(const char *const *paths, size_t n, char *err, size_t errlen);
/* Saves t[i] to paths[i]; err names a file that failed. Closes nothing. */
int tandem_tensors_save(const char *const *paths, size_t n, const mpc_ftensor_t *t, char *err,
                        size_t errlen);
void tandem_tensors_close(mpc_ftensor_t *t, size_t n);

/* tandem bench --transport (bench_net.c): the transport's own figures. */

typedef struct {
  size_t small_bytes;   /* round-trip message size (0: 64) */
  unsigned rtt_iters;   /* round trips timed (0: 2000) */
  size_t big_bytes;     /* exchanged each way per round (0: 8 MiB) */
  unsigned big_iters;   /* exchanges timed (0: 20) */
} tandem_net_bench_opts_t;

typedef struct {
  double rtt_us_secure, rtt_us_plain;       /* mean round trip, microseconds */
  double xchg_mbps_secure, xchg_mbps_plain; /* MB/s (1e6 bytes) each way */
} tandem_net_bench_result_t;

/* Runs two nodes with fresh keys on 127.0.0.1 in this process and measures
 * the round trip of small messages and the throughput of full-duplex
 * exchanges through the secure channel, and the same patterns over plain TCP
 * sockets (blocking, TCP_NODELAY, length-prefixed). Takes a few seconds with
 * the defaults. Errors: any of the calls above. */
int tandem_net_bench_run(const tandem_net_bench_opts_t *opts, tandem_net_bench_result_t *out);

/* Writes the --stats JSON object of a query. */
int tandem_stats_write(const char *path, const cl_query_stats_t *st);

#endif
