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

/* Prints "tandem <cmd>: <message>" on stderr. */
void tandem_app_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
