/* tandem.c - the entry point of the tandem binary: dispatches to subcommands.
 * Exit codes: 0 success, 1 error (one line on stderr), 2 usage. */
#include <getopt.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "apps.h"

typedef struct {
  const char *name;
  int (*main)(int argc, char **argv);
  const char *help;
} subcommand_t;

static const subcommand_t subcommands[] = {
    {"keygen", tandem_keygen_main, "make an identity keypair (NAME.key 0600, NAME.pub)"},
    {"party", tandem_party_main, "run a compute party daemon (p0 or p1)"},
    {"dealer", tandem_dealer_main, "run the dealer daemon"},
    {"share-model", tandem_share_model_main, "secret-share an ONNX model's weights (owner)"},
    {"infer", tandem_infer_main, "run one private inference (client)"},
    {"run", tandem_run_main, "one private inference on a throw-away loopback cluster"},
    {"demo", tandem_demo_main, "private Fashion-MNIST classification on loopback"},
    {"bench", tandem_bench_main, "measure kernels and protocols against baselines"},
};

void tandem_app_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "tandem %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int tandem_opts(int argc, char **argv, const tandem_opt_t *opts, const char *usage,
                const char *help) {
  struct option lo[32];
  size_t n = 0;
  for (; opts[n].name != NULL && n < 30; n++)
    lo[n] = (struct option){opts[n].name, opts[n].value != NULL ? required_argument : no_argument,
                            NULL, (int)n};
  lo[n] = (struct option){"help", no_argument, NULL, (int)n};
  lo[n + 1] = (struct option){NULL, 0, NULL, 0};
  opterr = 0; /* our usage line is the one error message */
  optind = 1;
  int o;
  while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    if (o == (int)n) {
      printf("%s\n%s", usage, help);
      return 0;
    }
    if (o < 0 || o > (int)n) {
      fprintf(stderr, "%s\n", usage);
      return 2;
    }
    if (opts[o].count != NULL) {
      if (*opts[o].count >= opts[o].max) {
        fprintf(stderr, "%s\n(--%s at most %zu times)\n", usage, opts[o].name, opts[o].max);
        return 2;
      }
      opts[o].value[(*opts[o].count)++] = optarg;
    } else if (opts[o].value != NULL)
      *opts[o].value = optarg;
    else
      *opts[o].flag = 1;
  }
  if (optind != argc) {
    fprintf(stderr, "%s\n", usage);
    return 2;
  }
  return -1;
}

static void usage(FILE *out) {
  fprintf(out, "usage: tandem <command> [options]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
    fprintf(out, "  %-12s %s\n", subcommands[i].name, subcommands[i].help);
  fprintf(out, "\n'tandem <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv) {
  /* Protocol messages are tens of megabytes (FSS keys), allocated and freed
   * per query. glibc would map and unmap each from the kernel and fault every
   * page in again (a third of the demo's time, measured with perf); keeping
   * them in the heap lets the next query reuse the same pages. One arena:
   * the net loop threads allocate what the protocol thread frees, and
   * per-thread arenas would return those pages to the kernel (measured: 2.5x
   * the time per image of the demo without this). */
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
    if (strcmp(argv[1], subcommands[i].name) == 0)
      return subcommands[i].main(argc - 1, argv + 1);
  fprintf(stderr, "tandem: unknown command '%s' (try 'tandem --help')\n", argv[1]);
  return 2;
}
