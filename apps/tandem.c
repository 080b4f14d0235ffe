/* tandem.c - the entry point of the tandem binary: dispatches to subcommands.
 * Exit codes: 0 success, 1 error (one line on stderr), 2 usage. */
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
