/* apps.h - the subcommands of the tandem binary, one file each (apps/<name>.c).
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit code: 0 on success, 1 after one
 * clear line on stderr, 2 for a usage error. */
#ifndef TANDEM_APPS_H
#define TANDEM_APPS_H

#include <stddef.h>

int tandem_bench_main(int argc, char **argv);
/* tandem bench --matmul / --model (bench_proto.c), called by tandem_bench_main. */
int tandem_bench_proto_main(int argc, char **argv);
int tandem_keygen_main(int argc, char **argv);
int tandem_party_main(int argc, char **argv);
int tandem_dealer_main(int argc, char **argv);
int tandem_share_model_main(int argc, char **argv);
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

#define TANDEM_MAX_TENSORS 8 /* --input / --output files of one query */

/* Parses argv (getopt_long, long options only) against opts, a table ended
 * by a NULL name. Returns -1 when the command should go on, 0 after printing
 * `usage` and `help` for --help, 2 after printing `usage` on stderr for an
 * unknown option, a missing value or a stray argument. */
int tandem_opts(int argc, char **argv, const tandem_opt_t *opts, const char *usage,
                const char *help);

/* Prints "tandem <cmd>: <message>" on stderr. */
void tandem_app_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
