/* tandem.c - the entry point of the tandem binary: dispatches to subcommands.
 * Exit codes: 0 success, 1 error (one line on stderr), 2 usage. */
#include <getopt.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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
    {"remove-model", tandem_remove_model_main, "remove a shared model (owner)"},
    {"models", tandem_models_main, "list the models shared with a cluster"},
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

/* The option of opts named exactly by arg ("--name" or "--name=value"):
 * its index, n for --help, n + 1 for --version, or -1. getopt_long alone
 * would take any unique prefix (--nam for --name) without a word. */
static int opt_exact(const char *arg, const tandem_opt_t *opts, size_t n) {
  size_t len = strcspn(arg + 2, "=");
  for (size_t i = 0; i < n; i++)
    if (strlen(opts[i].name) == len && strncmp(arg + 2, opts[i].name, len) == 0)
      return (int)i;
  if (len == 4 && strncmp(arg + 2, "help", 4) == 0)
    return (int)n;
  if (len == 7 && strncmp(arg + 2, "version", 7) == 0)
    return (int)n + 1;
  return -1;
}

/* Every "--word" of argv names an option exactly, and every option that
 * takes a value has one: else one line naming the argument. */
static int opts_check(int argc, char **argv, const tandem_opt_t *opts, size_t n,
                      const char *usage) {
  const char *cmd = argv[0];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0)
      break;
    if (a[0] != '-')
      continue;
    int o = a[1] == '-' ? opt_exact(a, opts, n) : -1;
    if (o < 0) {
      fprintf(stderr, "tandem %s: unknown option '%s' (try 'tandem %s --help')\n%s\n", cmd, a,
              cmd, usage);
      return 2;
    }
    int takes = o < (int)n && opts[o].value != NULL;
    int inline_value = strchr(a, '=') != NULL;
    if (!takes && inline_value) {
      fprintf(stderr, "tandem %s: option '--%s' takes no value\n", cmd,
              o < (int)n ? opts[o].name : o == (int)n ? "help" : "version");
      return 2;
    }
    if (takes && !inline_value && ++i >= argc) {
      fprintf(stderr, "tandem %s: option '--%s' needs a value\n%s\n", cmd, opts[o].name, usage);
      return 2;
    }
  }
  return -1;
}

int tandem_opts(int argc, char **argv, const tandem_opt_t *opts, const char *usage,
                const char *help) {
  struct option lo[32];
  size_t n = 0;
  for (; opts[n].name != NULL && n < 29; n++)
    lo[n] = (struct option){opts[n].name, opts[n].value != NULL ? required_argument : no_argument,
                            NULL, (int)n};
  lo[n] = (struct option){"help", no_argument, NULL, (int)n};
  lo[n + 1] = (struct option){"version", no_argument, NULL, (int)n + 1};
  lo[n + 2] = (struct option){NULL, 0, NULL, 0};
  int rc = opts_check(argc, argv, opts, n, usage);
  if (rc >= 0)
    return rc;
  opterr = 0; /* opts_check wrote the one error message */
  optind = 1;
  int o;
  while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    if (o == (int)n) {
      printf("%s\n%s", usage, help);
      return 0;
    }
    if (o == (int)n + 1) {
      printf("tandem %s\n", TANDEM_VERSION);
      return 0;
    }
    if (o < 0 || o > (int)n) {
      fprintf(stderr, "%s\n", usage);
      return 2;
    }
    if (opts[o].count != NULL) {
      if (*opts[o].count >= opts[o].max) {
        fprintf(stderr, "tandem %s: --%s at most %zu times\n", argv[0], opts[o].name,
                opts[o].max);
        return 2;
      }
      opts[o].value[(*opts[o].count)++] = optarg;
    } else if (opts[o].value != NULL)
      *opts[o].value = optarg;
    else
      *opts[o].flag = 1;
  }
  if (optind != argc) {
    fprintf(stderr, "tandem %s: unexpected argument '%s'\n%s\n", argv[0], argv[optind], usage);
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

/* Every command holds a secret (a key, a share, an input or a result): no
 * core dump may write one to disk, and no other process of the user may read
 * our memory (ptrace, /proc/PID/mem). Under LeakSanitizer, which needs to
 * ptrace the process it checks, the process stays dumpable. */
static void harden(void) {
  struct rlimit no_core = {0, 0};
  (void)setrlimit(RLIMIT_CORE, &no_core);
#if !defined(__SANITIZE_ADDRESS__) && !defined(TANDEM_LSAN)
  (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
}

int main(int argc, char **argv) {
  harden();
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
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
    printf("tandem %s\n", TANDEM_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
    if (strcmp(argv[1], subcommands[i].name) == 0)
      return subcommands[i].main(argc - 1, argv + 1);
  fprintf(stderr, "tandem: unknown command '%s' (try 'tandem --help')\n", argv[1]);
  return 2;
}
