/* apps.h - the subcommands of the tandem binary, one file each (apps/<name>.c).
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit code: 0 on success, 1 after one
 * clear line on stderr, 2 for a usage error. */
#ifndef TANDEM_APPS_H
#define TANDEM_APPS_H

int tandem_bench_main(int argc, char **argv);
int tandem_keygen_main(int argc, char **argv);
int tandem_party_main(int argc, char **argv);
int tandem_dealer_main(int argc, char **argv);
int tandem_share_model_main(int argc, char **argv);
int tandem_infer_main(int argc, char **argv);
int tandem_run_main(int argc, char **argv);
int tandem_demo_main(int argc, char **argv);

/* One option of a command: --name VALUE into *value, or the flag --name
 * setting *flag to 1 (value NULL). */
typedef struct {
  const char *name;
  const char **value;
  int *flag;
} tandem_opt_t;

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
