/* bench.c - `tandem bench`, the benchmark subcommand of the tandem binary.
 *
 * It measures one workload against a baseline timed in the same run, on the
 * same data, and prints a few aligned lines or, with --json, one JSON object on
 * one line. The workloads are rows of a table (name, accepted options, run
 * function); today they are the kernels (GEMM over Z_2^64 against OpenBLAS
 * dgemm, the AES-CTR PRG against raw OpenSSL AES-128-CTR, truncation against
 * memcpy), and the protocol workloads of later issues become further rows that
 * reuse the same option parser, timer and report printer. Every rate comes from
 * the median of R timed repetitions after a warm-up. A kernel whose result is
 * wrong never gets a speed: each workload checks its output before timing it.
 * The --transport workload is the transport's: tandem_net_bench_run times small round trips
 * and full-duplex exchanges through the secure channel and over plain TCP on
 * loopback in one run, and the report gives both and their ratios (its
 * figures are means over the iterations, as tandem_net_bench_run measures them).
 */
#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apps.h"
#include "kern.h"
#include "net.h"
#include "tandem_err.h"

/* Debian's OpenBLAS cblas.h declares it; reference CBLAS headers do not. */
#ifndef OPENBLAS_VERSION
void openblas_set_num_threads(int n);
#endif

#define CMD "bench"

/* Exit codes of the subcommand (apps.h). */
#define EXIT_OK 0
#define EXIT_ERR 1
#define EXIT_USAGE 2

/* Timing policy: one rep lasts at least REP_MIN_S (short operations run
 * several times per rep so the clock's resolution does not matter), and a
 * measurement is about TARGET_S of timed reps unless --reps says otherwise. */
#define REP_MIN_S 2e-3
#define TARGET_S 0.4
#define REPS_AUTO_MAX 400
#define REPS_MAX 10000

#define SHAPE_DIM_MAX 65536u
#define THREADS_MAX 64
/* Up to this many MACs the GEMM result is compared with the reference in
 * full; above it, Freivalds' test (FREIVALDS_TRIALS random vectors). Over
 * Z_2^64 one trial misses a wrong product with probability at most 1/2 (an
 * error of 2^63 survives every even vector), so several trials are run. */
#define VERIFY_FULL_MACS (1ull << 27)
#define FREIVALDS_TRIALS 16
/* The micro-kernel's packed panels for the peak figure fit in half of a
 * 32 KiB L1 data cache together. */
#define PEAK_PANEL_BYTES 16384u
/* The reference's kern_gemm is a plain loop, not a micro-kernel: its peak
 * is kern_gemm on this cube. */
#define PEAK_REF_DIM 32u

#define PRG_CALL_BYTES (1u << 20)
#define PRG_TOTAL_BYTES (64u << 20)
#define TRUNC_ELEMS (16u << 20)
#define TRUNC_SHIFT 16u

/* --transport: the bounds of its options, and the targets its ratios are read
 * against (printed with the figures; missing one is not an error). The
 * defaults are tandem_net_bench_run's own (net.h): 2000 round trips of 64 bytes and
 * 20 exchanges of 8 MiB each way. The exchange size stays within the node's
 * default per-peer queue bound, and the four buffers it needs stay modest. */
#define NET_RTT_ITERS_MAX 1000000
#define NET_XCHG_BYTES_MAX NET_DEFAULT_QUEUE_BYTES
#define NET_XCHG_BYTES_DEFAULT ((size_t)8 << 20)
#define NET_RTT_ITERS_DEFAULT 2000
#define NET_XCHG_ITERS_DEFAULT 20
#define NET_SMALL_BYTES 64
#define NET_TARGET_THROUGHPUT 0.5 /* secure / plain, at least */
#define NET_TARGET_RTT 2.0        /* secure / plain, at most */

/* ------------------------------------------------------------------------ */
/* Options and the workload table                                            */

enum {
  OPT_SHAPE = 1u << 0,
  OPT_THREADS = 1u << 1,
  OPT_ITERS = 1u << 2,
  OPT_BYTES = 1u << 3
};

typedef struct {
  const char *kernel; /* --kernel value, NULL if absent */
  int have_shape;
  size_t m, k, n; /* --shape MxKxN */
  int have_threads;
  int threads; /* --threads, default 1 */
  int reps;    /* --reps, 0: automatic */
  int json;
  int transport;    /* --transport */
  unsigned iters;   /* --iters (transport round trips), 0: default */
  size_t bytes;     /* --bytes (transport exchange size), 0: default */
  kern_isa_t isa;   /* after kern_init */
  int isa_from_env; /* TANDEM_KERNEL chose it */
} bench_opts_t;

/* A report: the figures a workload measured, printed as aligned lines or as
 * one JSON object. A field with no key is human output only; one with no
 * label is JSON only. */
typedef enum { FIELD_STR, FIELD_INT, FIELD_NUM } field_kind_t;

typedef struct {
  const char *key;
  int human;      /* printed in human output, under label */
  char label[32];
  field_kind_t kind;
  char str[48];
  long long i;
  double d;
  int digits;     /* decimals in human output */
  char note[128]; /* human output: unit and context */
} field_t;

#define REPORT_MAX 24
typedef struct {
  field_t f[REPORT_MAX];
  int n;
} report_t;

/* A workload fills the report and returns an exit code; on error it has
 * already printed its one line on stderr. */
typedef struct {
  const char *name;
  unsigned opts; /* OPT_* accepted besides --reps and --json */
  int (*run)(const bench_opts_t *o, report_t *r);
  const char *help;
} workload_t;

static int run_gemm(const bench_opts_t *o, report_t *r);
static int run_prg(const bench_opts_t *o, report_t *r);
static int run_trunc(const bench_opts_t *o, report_t *r);
static int run_net(const bench_opts_t *o, report_t *r);

static const workload_t kernel_workloads[] = {
    {"gemm", OPT_SHAPE | OPT_THREADS, run_gemm,
     "C = A*B over Z_2^64 with kern_gemm vs OpenBLAS cblas_dgemm"},
    {"prg", 0, run_prg,
     "kern_prg_u64 vs raw OpenSSL EVP AES-128-CTR over the same bytes"},
    {"trunc", 0, run_trunc, "kern_trunc vs memcpy of the same bytes"},
};
#define N_KERNEL_WORKLOADS (sizeof kernel_workloads / sizeof kernel_workloads[0])

static const workload_t net_workload = {
    "transport", OPT_ITERS | OPT_BYTES, run_net,
    "secure channel vs plain TCP on loopback: round trip and exchange rate"};

static void usage(FILE *out) {
  fprintf(out,
          "usage: tandem bench --kernel gemm --shape MxKxN [--threads N] [--reps R] [--json]\n"
          "       tandem bench --kernel prg|trunc [--reps R] [--json]\n"
          "       tandem bench --transport [--iters N] [--bytes B] [--reps R] [--json]\n"
          "       tandem bench --matmul MxKxN [--mask fresh|reused] [protocol options]\n"
          "       tandem bench --model M.onnx [--batch B] [protocol options]\n"
          "       protocol options: [--reps R] [--by-gate] [--exact] [--json]\n"
          "                         [--link RTT_MS:GBPS|lan|wan [--emulate]]\n"
          "\n"
          "Measures one workload against a baseline timed in the same run on the same data.\n"
          "Every output is checked before it is timed: a wrong result gets an error, not a\n"
          "speed.\n"
          "\n"
          "workloads (give exactly one):\n"
          "  --kernel gemm    C = A*B over Z_2^64 with kern_gemm vs OpenBLAS cblas_dgemm\n"
          "  --kernel prg     kern_prg_u64 vs raw OpenSSL EVP AES-128-CTR, same bytes\n"
          "  --kernel trunc   kern_trunc vs memcpy of the same bytes\n"
          "  --transport      the secure channel vs plain TCP on loopback (round trips, rate)\n"
          "  --matmul MxKxN   a private X (MxK) times Y (KxN) on a loopback cluster (P0, P1,\n"
          "                   the dealer) vs OpenBLAS dgemm and kern_gemm; each 1..65536\n"
          "  --model M.onnx   a private inference of an ONNX model on a loopback cluster, on\n"
          "                   random inputs in [0, 1], vs OpenBLAS dgemm of its linear layers\n"
          "\n"
          "options:\n"
          "  --shape MxKxN    gemm: the product's shape, each 1..%u (required)\n"
          "  --threads N      gemm: kern_set_threads(N) and N OpenBLAS threads for the\n"
          "                   threaded baseline (1..%d, default 1)\n"
          "  --iters N        transport: %d-byte round trips timed (1..%d, default %d)\n"
          "  --bytes B        transport: bytes per exchange each way (1..%zu MiB, default %zu\n"
          "                   MiB)\n"
          "  --mask M         matmul: fresh (default): X and Y both the client's, masked per\n"
          "                   query; reused: Y is the model owner's, its mask opened at setup\n"
          "  --batch B        model: the batch size (1..100000, default 1)\n"
          "  --by-gate        matmul, model: a table per gate (kind, shape, rounds, bytes,\n"
          "                   online and offline ms)\n"
          "  --exact          model: exact mode (every truncation exact, one more round per\n"
          "                   ReLU or max pool after a product); the report gives the\n"
          "                   default mode's rounds and bytes beside (from its plan)\n"
          "  --link SPEC      matmul, model: project the online time on a network link,\n"
          "                   RTT_MS:GBPS, lan (0.3:3) or wan (40:0.4) (default: none)\n"
          "  --emulate        with --link: also measure on that link, emulated by net/'s\n"
          "                   per-link delay and rate limit, and compare (within 20%%)\n"
          "  --reps R         timed repetitions: kernels 1..%d (default: enough for about\n"
          "                   %.1f s); transport: the exchanges timed (default %d);\n"
          "                   matmul, model: queries after one warm-up (1..1000, default 5)\n"
          "  --json           one JSON object on one line on stdout\n"
          "  --help           this text\n"
          "  --version        the version\n"
          "\n"
          "figures (kernels: from the MEDIAN time of R reps after one warm-up rep):\n"
          "  gmacs            M*K*N / seconds / 1e9\n"
          "  ratio            Tandem rate / baseline rate; for gemm the baseline is OpenBLAS\n"
          "                   with the same thread count (baseline_gmacs; baseline_gmacs_1t\n"
          "                   is 1 thread)\n"
          "  peak_gmacs       mr*nr*k*calls / seconds of the selected variant's register-tile\n"
          "                   micro-kernel on L1-resident packed panels, 1 thread (for the\n"
          "                   reference, whose kern_gemm is a plain loop: kern_gemm on a\n"
          "                   %ux%ux%u product)\n"
          "  efficiency       gmacs / (peak_gmacs * threads), per-core efficiency\n"
          "  gbps             bytes written / seconds / 1e9\n"
          "  transport (MEANS over the iterations, not medians):\n"
          "  rtt_us_*         microseconds per round trip, secure channel and plain TCP\n"
          "  xchg_mbps_*      1e6 bytes per second each way during the exchanges\n"
          "  rtt_ratio        rtt_us_secure / rtt_us_plain (target <= %.1f)\n"
          "  throughput_ratio xchg_mbps_secure / xchg_mbps_plain (target >= %.1f)\n"
          "  matmul, model (medians of R queries):\n"
          "  online_s         the online time: from the moment both parties hold the masked\n"
          "                   input and their preprocessing to the last output share sent\n"
          "  online_party_s   the slower party's own online time, from its masked input's\n"
          "                   arrival (includes waiting for the other party)\n"
          "  offline_s        the slower party's offline phase\n"
          "\n"
          "  gemm:  A is MxK, B is KxN, uniform ring elements from kern_prg, compared with\n"
          "         the reference variant (up to 2^27 MACs) or checked with %d rounds of\n"
          "         Freivalds' test.\n"
          "  prg:   %u MiB per rep in %u MiB calls, checked equal to EVP's stream first;\n"
          "         the ratio is the wrapper's overhead.\n"
          "  trunc: arithmetic shift by %u of %u Mi elements, out of place.\n"
          "  transport: two nodes of this process with fresh keys on 127.0.0.1: N round\n"
          "         trips, then R full-duplex exchanges of B bytes each way, through the\n"
          "         secure channel (AES-256-GCM frames), then over plain blocking TCP\n"
          "         sockets (TCP_NODELAY, length-prefixed) as the baseline.\n"
          "\n"
          "environment: TANDEM_KERNEL=ref|avx2|avx512 forces a variant (default: the best\n"
          "this CPU and OS support); TANDEM_MAX_MSG lowers the cluster's largest message.\n",
          SHAPE_DIM_MAX, THREADS_MAX, NET_SMALL_BYTES, NET_RTT_ITERS_MAX,
          NET_RTT_ITERS_DEFAULT, (size_t)NET_XCHG_BYTES_MAX >> 20, NET_XCHG_BYTES_DEFAULT >> 20,
          REPS_MAX,
          TARGET_S, NET_XCHG_ITERS_DEFAULT, PEAK_REF_DIM, PEAK_REF_DIM, PEAK_REF_DIM,
          NET_TARGET_RTT, NET_TARGET_THROUGHPUT, FREIVALDS_TRIALS, PRG_TOTAL_BYTES >> 20,
          PRG_CALL_BYTES >> 20, TRUNC_SHIFT, TRUNC_ELEMS >> 20);
}

/* Parses a decimal integer in [lo, hi] made of digits only (no sign, no
 * spaces) from s up to the first character not a digit; *end gets it. */
static int parse_uint(const char *s, unsigned long lo, unsigned long hi,
                      unsigned long *out, const char **end) {
  unsigned long v = 0;
  const char *p = s;
  if (*p < '0' || *p > '9')
    return TANDEM_EINVAL;
  for (; *p >= '0' && *p <= '9'; p++) {
    v = v * 10 + (unsigned long)(*p - '0');
    if (v > hi)
      return TANDEM_EINVAL; /* also stops before v can overflow */
  }
  if (v < lo)
    return TANDEM_EINVAL;
  *out = v;
  *end = p;
  return 0;
}

static int parse_int_arg(const char *s, int lo, int hi, int *out) {
  unsigned long v;
  const char *end;
  if (parse_uint(s, (unsigned long)lo, (unsigned long)hi, &v, &end) != 0 ||
      *end != '\0')
    return TANDEM_EINVAL;
  *out = (int)v;
  return 0;
}

static int parse_shape(const char *s, size_t *m, size_t *k, size_t *n) {
  unsigned long d[3];
  const char *p = s;
  for (int i = 0; i < 3; i++) {
    if (parse_uint(p, 1, SHAPE_DIM_MAX, &d[i], &p) != 0)
      return TANDEM_EINVAL;
    if (*p != (i < 2 ? 'x' : '\0'))
      return TANDEM_EINVAL;
    p++;
  }
  *m = d[0];
  *k = d[1];
  *n = d[2];
  return 0;
}

static int usage_error(const char *msg, const char *arg) {
  if (arg != NULL)
    tandem_app_error(CMD, "%s '%s' (try 'tandem bench --help')", msg, arg);
  else
    tandem_app_error(CMD, "%s (try 'tandem bench --help')", msg);
  return EXIT_USAGE;
}

/* ------------------------------------------------------------------------ */
/* Reports                                                                   */

static field_t *report_add(report_t *r, const char *key, const char *label,
                           field_kind_t kind) {
  assert(r->n < REPORT_MAX);
  field_t *f = &r->f[r->n++];
  memset(f, 0, sizeof *f);
  f->key = key;
  if (label != NULL) {
    f->human = 1;
    snprintf(f->label, sizeof f->label, "%s", label);
  }
  f->kind = kind;
  f->digits = 2;
  return f;
}

static void field_note(field_t *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void field_note(field_t *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->note, sizeof f->note, fmt, ap);
  va_end(ap);
}

static field_t *report_str(report_t *r, const char *key, const char *label,
                           const char *s) {
  field_t *f = report_add(r, key, label, FIELD_STR);
  snprintf(f->str, sizeof f->str, "%s", s);
  return f;
}

static field_t *report_int(report_t *r, const char *key, const char *label,
                           long long v) {
  field_t *f = report_add(r, key, label, FIELD_INT);
  f->i = v;
  return f;
}

static field_t *report_num(report_t *r, const char *key, const char *label,
                           double v, int digits) {
  field_t *f = report_add(r, key, label, FIELD_NUM);
  f->d = v;
  f->digits = digits;
  return f;
}

static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(out, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(out, "\\u%04x", ch);
    else
      fputc(ch, out);
  }
  fputc('"', out);
}

static void report_print_json(const report_t *r, FILE *out) {
  int first = 1;
  fputc('{', out);
  for (int i = 0; i < r->n; i++) {
    const field_t *f = &r->f[i];
    if (f->key == NULL)
      continue;
    if (!first)
      fputc(',', out);
    first = 0;
    json_string(out, f->key);
    fputc(':', out);
    switch (f->kind) {
    case FIELD_STR:
      json_string(out, f->str);
      break;
    case FIELD_INT:
      fprintf(out, "%lld", f->i);
      break;
    case FIELD_NUM:
      /* JSON has no NaN or infinity. */
      if (isfinite(f->d))
        fprintf(out, "%.6g", f->d);
      else
        fputs("null", out);
      break;
    }
  }
  fputs("}\n", out);
}

static void report_print_human(const report_t *r, FILE *out) {
  int width = 0;
  for (int i = 0; i < r->n; i++)
    if (r->f[i].human && (int)strlen(r->f[i].label) > width)
      width = (int)strlen(r->f[i].label);
  for (int i = 0; i < r->n; i++) {
    const field_t *f = &r->f[i];
    char val[64];
    if (!f->human)
      continue;
    switch (f->kind) {
    case FIELD_STR:
      snprintf(val, sizeof val, "%s", f->str);
      break;
    case FIELD_INT:
      snprintf(val, sizeof val, "%lld", f->i);
      break;
    case FIELD_NUM:
      snprintf(val, sizeof val, "%.*f", f->digits, f->d);
      break;
    }
    if (f->note[0] != '\0')
      fprintf(out, "%-*s  %-10s %s\n", width, f->label, val, f->note);
    else
      fprintf(out, "%-*s  %s\n", width, f->label, val);
  }
}

/* The selected variant, and who selected it. */
static void report_kernel(report_t *r, const bench_opts_t *o) {
  field_t *f = report_str(r, "kernel", "kernel", kern_isa_name(o->isa));
  field_note(f, "(%s)",
             o->isa_from_env ? "forced by TANDEM_KERNEL"
                             : "the best this CPU and OS support");
}

/* ------------------------------------------------------------------------ */
/* Timing                                                                    */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One operation to time; returns 0 or a negative Tandem error code. */
typedef int (*bench_op_fn)(void *ctx);

typedef struct {
  double sec; /* median seconds of one operation */
  int reps;   /* timed reps */
  long inner; /* operations per rep */
} timing_t;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Runs op once to warm up (page faults, packing buffers, caches), once more
 * to calibrate, then reps timed reps of `inner` operations each; t gets the
 * median time of one operation. reps_opt 0 picks reps for about TARGET_S. */
static int time_op(bench_op_fn op, void *ctx, int reps_opt, timing_t *t) {
  int rc = op(ctx);
  if (rc != 0)
    return rc;
  double t0 = now_s();
  rc = op(ctx);
  double one = now_s() - t0;
  if (rc != 0)
    return rc;
  if (one < 1e-9)
    one = 1e-9;
  long inner = 1;
  if (one < REP_MIN_S)
    inner = (long)ceil(REP_MIN_S / one);
  int reps;
  if (reps_opt > 0) {
    reps = reps_opt;
  } else if (one >= TARGET_S) {
    /* One operation is a whole measurement already: the calibration run is
     * the measurement. */
    t->sec = one;
    t->reps = 1;
    t->inner = 1;
    return 0;
  } else {
    double r = TARGET_S / (one * (double)inner);
    reps = r < 1 ? 1 : r > REPS_AUTO_MAX ? REPS_AUTO_MAX : (int)r;
  }
  double *times = malloc((size_t)reps * sizeof *times);
  if (times == NULL)
    return TANDEM_ENOMEM;
  for (int i = 0; i < reps && rc == 0; i++) {
    t0 = now_s();
    for (long j = 0; j < inner && rc == 0; j++)
      rc = op(ctx);
    times[i] = (now_s() - t0) / (double)inner;
  }
  if (rc == 0) {
    qsort(times, (size_t)reps, sizeof *times, cmp_double);
    t->sec = (reps % 2) ? times[reps / 2]
                        : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    if (t->sec < 1e-12)
      t->sec = 1e-12;
    t->reps = reps;
    t->inner = inner;
  }
  free(times);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                            */

static int mul_size(size_t a, size_t b, size_t *out) {
  if (b != 0 && a > SIZE_MAX / b)
    return TANDEM_ENOMEM;
  *out = a * b;
  return 0;
}

/* 64-byte aligned storage for n elements of `size` bytes (free with free);
 * NULL on overflow or exhaustion. */
static void *alloc64(size_t n, size_t size) {
  size_t bytes;
  if (mul_size(n, size, &bytes) != 0 || bytes > SIZE_MAX - 63)
    return NULL;
  bytes = (bytes + 63) & ~(size_t)63;
  return aligned_alloc(64, bytes == 0 ? 64 : bytes);
}

/* Physical memory in bytes, 0 if unknown. */
static uint64_t phys_bytes(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0)
    return 0;
  return (uint64_t)pages * (uint64_t)page;
}

/* A PRG with a fresh seed from the OS. The seed lives in sodium_malloc'd
 * memory and is wiped before return; the caller closes prg on success. */
static int prg_fresh(kern_prg_t *prg) {
  uint8_t *seed = sodium_malloc(KERN_PRG_SEED_BYTES);
  if (seed == NULL)
    return TANDEM_ENOMEM;
  randombytes_buf(seed, KERN_PRG_SEED_BYTES);
  int rc = kern_prg_init(prg, seed, KERN_PRG_SEED_BYTES);
  sodium_memzero(seed, KERN_PRG_SEED_BYTES);
  sodium_free(seed);
  return rc;
}

static int fail(const char *what, int rc) {
  tandem_app_error(CMD, "%s: %s", what, tandem_strerror(rc));
  return EXIT_ERR;
}

/* ------------------------------------------------------------------------ */
/* GEMM                                                                      */

typedef struct {
  size_t m, k, n;
  const uint64_t *a, *b;
  uint64_t *c;
  const double *ad, *bd;
  double *cd;
  /* the peak measurement */
  kern_ukr_fn ukr;
  size_t uk, mr, nr;
  const uint64_t *ap, *bp;
  uint64_t *cc;
} gemm_ctx_t;

static int op_kern_gemm(void *p) {
  gemm_ctx_t *g = p;
  return kern_gemm(KERN_NOTRANS, KERN_NOTRANS, g->m, g->n, g->k, g->a, g->k,
                   g->b, g->n, 0, g->c, g->n);
}

static int op_dgemm(void *p) {
  gemm_ctx_t *g = p;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->m, (int)g->n,
              (int)g->k, 1.0, g->ad, (int)g->k, g->bd, (int)g->n, 0.0, g->cd,
              (int)g->n);
  return 0;
}

#define PEAK_CALLS 64
static int op_ukr(void *p) {
  gemm_ctx_t *g = p;
  for (int i = 0; i < PEAK_CALLS; i++)
    g->ukr(g->uk, g->ap, g->bp, g->cc, g->nr);
  return 0;
}

static int op_ref_cube(void *p) {
  gemm_ctx_t *g = p;
  return kern_gemm_isa(KERN_REF, KERN_NOTRANS, KERN_NOTRANS, PEAK_REF_DIM,
                       PEAK_REF_DIM, PEAK_REF_DIM, g->ap, PEAK_REF_DIM, g->bp,
                       PEAK_REF_DIM, 0, g->cc, PEAK_REF_DIM);
}

/* y = X v for row-major X (rows x cols) over Z_2^64. */
static void matvec(uint64_t *y, const uint64_t *x, size_t rows, size_t cols,
                   const uint64_t *v) {
  for (size_t i = 0; i < rows; i++) {
    uint64_t s = 0;
    for (size_t j = 0; j < cols; j++)
      s += x[i * cols + j] * v[j];
    y[i] = s;
  }
}

/* Checks C == A*B: in full against the reference for small products, else by
 * Freivalds' test. 0, 1 for a mismatch (message printed), or an error code. */
static int gemm_verify(const gemm_ctx_t *g, kern_prg_t *prg, char *how,
                       size_t how_len) {
  size_t m = g->m, k = g->k, n = g->n;
  int rc;
  if ((uint64_t)m * k * n <= VERIFY_FULL_MACS) {
    snprintf(how, how_len, "ref");
    uint64_t *want = alloc64(m * n, sizeof *want);
    if (want == NULL)
      return TANDEM_ENOMEM;
    rc = kern_gemm_isa(KERN_REF, KERN_NOTRANS, KERN_NOTRANS, m, n, k, g->a, k,
                       g->b, n, 0, want, n);
    if (rc == 0) {
      for (size_t i = 0; i < m * n; i++) {
        if (want[i] != g->c[i]) {
          tandem_app_error(CMD,
                           "kern_gemm (%s) is wrong: C[%zu][%zu] differs from "
                           "the reference; no speed reported",
                           kern_isa_name(kern_isa_active()), i / n, i % n);
          rc = 1;
          break;
        }
      }
    }
    free(want);
    return rc;
  }
  snprintf(how, how_len, "freivalds");
  size_t len = m > k ? m : k;
  len = len > n ? len : n;
  uint64_t *v = malloc(len * sizeof *v), *bv = malloc(len * sizeof *bv);
  uint64_t *abv = malloc(len * sizeof *abv), *cv = malloc(len * sizeof *cv);
  rc = (v && bv && abv && cv) ? 0 : TANDEM_ENOMEM;
  for (int t = 0; rc == 0 && t < FREIVALDS_TRIALS; t++) {
    rc = kern_prg_u64(prg, v, n);
    if (rc != 0)
      break;
    matvec(bv, g->b, k, n, v);
    matvec(abv, g->a, m, k, bv);
    matvec(cv, g->c, m, n, v);
    for (size_t i = 0; i < m; i++) {
      if (abv[i] != cv[i]) {
        tandem_app_error(CMD,
                         "kern_gemm (%s) is wrong: row %zu of C fails "
                         "Freivalds' test; no speed reported",
                         kern_isa_name(kern_isa_active()), i);
        rc = 1;
        break;
      }
    }
  }
  free(cv);
  free(abv);
  free(bv);
  free(v);
  return rc;
}

/* The single-threaded peak of the active variant's micro-kernel on packed
 * panels that stay in L1, in GMAC/s; *how describes what was measured. */
static int gemm_peak(kern_prg_t *prg, int reps, double *gmacs, char *how,
                     size_t how_len) {
  kern_isa_t isa = kern_isa_active();
  kern_gemm_info_t info;
  gemm_ctx_t g;
  timing_t t;
  int rc;
  memset(&g, 0, sizeof g);
  memset(&info, 0, sizeof info);
  /* The reference's kern_gemm is the plain loop, not the portable
   * micro-kernel kern_gemm_info describes for it, so its peak is the plain
   * loop's rate on L1-resident data (below). */
  rc = isa == KERN_REF ? TANDEM_ENOTSUP : kern_gemm_info(isa, &info);
  if (rc == 0 && info.ukr != NULL && info.mr >= 1 && info.mr <= 64 &&
      info.nr >= 1 && info.nr <= 64) {
    size_t uk = PEAK_PANEL_BYTES / (sizeof(uint64_t) * (info.mr + info.nr));
    uk = uk < 8 ? 8 : uk & ~(size_t)7;
    g.ukr = info.ukr;
    g.uk = uk;
    g.mr = info.mr;
    g.nr = info.nr;
    uint64_t *ap = alloc64(uk * info.mr, sizeof *ap);
    uint64_t *bp = alloc64(uk * info.nr, sizeof *bp);
    uint64_t *cc = alloc64(info.mr * info.nr, sizeof *cc);
    rc = (ap && bp && cc) ? 0 : TANDEM_ENOMEM;
    if (rc == 0)
      rc = kern_prg_u64(prg, ap, uk * info.mr);
    if (rc == 0)
      rc = kern_prg_u64(prg, bp, uk * info.nr);
    if (rc == 0) {
      memset(cc, 0, info.mr * info.nr * sizeof *cc);
      g.ap = ap;
      g.bp = bp;
      g.cc = cc;
      rc = time_op(op_ukr, &g, reps, &t);
    }
    if (rc == 0) {
      *gmacs = (double)(info.mr * info.nr * uk) * PEAK_CALLS / t.sec / 1e9;
      snprintf(how, how_len, "%zux%zu micro-kernel, k=%zu, L1-resident",
               info.mr, info.nr, uk);
    }
    free(cc);
    free(bp);
    free(ap);
    return rc;
  }
  /* The reference (or a variant without a usable micro-kernel): kern_gemm
   * on a product that fits L1. */
  size_t d2 = (size_t)PEAK_REF_DIM * PEAK_REF_DIM;
  uint64_t *ap = alloc64(d2, sizeof *ap), *bp = alloc64(d2, sizeof *bp);
  uint64_t *cc = alloc64(d2, sizeof *cc);
  rc = (ap && bp && cc) ? 0 : TANDEM_ENOMEM;
  if (rc == 0)
    rc = kern_prg_u64(prg, ap, d2);
  if (rc == 0)
    rc = kern_prg_u64(prg, bp, d2);
  if (rc == 0) {
    g.ap = ap;
    g.bp = bp;
    g.cc = cc;
    rc = time_op(op_ref_cube, &g, reps, &t);
  }
  if (rc == 0) {
    *gmacs = (double)d2 * PEAK_REF_DIM / t.sec / 1e9;
    snprintf(how, how_len, "reference loop: kern_gemm %ux%ux%u, L1-resident",
             PEAK_REF_DIM, PEAK_REF_DIM, PEAK_REF_DIM);
  }
  free(cc);
  free(bp);
  free(ap);
  return rc;
}

/* Uniform ring elements, and doubles in [0, 1) from the same bits, so dgemm
 * never meets a NaN or a denormal (which would slow it down). */
static void to_unit_doubles(double *d, const uint64_t *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    d[i] = (double)(x[i] >> 11) * (1.0 / 9007199254740992.0);
}

/* Each matrix in u64 and in double, plus the reference product when the
 * check is in full; refuse what the machine cannot hold rather than let the
 * kernel's out-of-memory killer end the process. 0 or EXIT_ERR (said). */
static int gemm_fits(size_t m, size_t k, size_t n, size_t *mk, size_t *kn, size_t *mn) {
  size_t need;
  if (mul_size(m, k, mk) || mul_size(k, n, kn) || mul_size(m, n, mn) ||
      *mk > SIZE_MAX - *kn || *mk + *kn > SIZE_MAX - 2 * *mn ||
      mul_size(*mk + *kn + 2 * *mn, 2 * sizeof(uint64_t), &need)) {
    tandem_app_error(CMD, "shape %zux%zux%zu: too large for this machine", m,
                     k, n);
    return EXIT_ERR;
  }
  uint64_t phys = phys_bytes();
  if (phys != 0 && (uint64_t)need > phys / 4 * 3) {
    tandem_app_error(CMD,
                     "shape %zux%zux%zu needs %.1f GiB, more than 3/4 of the "
                     "%.1f GiB of memory",
                     m, k, n, (double)need / (1u << 30),
                     (double)phys / (1u << 30));
    return EXIT_ERR;
  }
  return 0;
}

/* The GEMM workload's figures, from the measured timings. */
static void gemm_report(const bench_opts_t *o, report_t *r, const timing_t *tt,
                        const timing_t *tb1, const timing_t *tbn, double peak,
                        const char *peak_how, const char *check) {
  const size_t m = o->m, k = o->k, n = o->n;
  const int threads = o->threads;
  double macs = (double)m * (double)k * (double)n;
  double gmacs = macs / tt->sec / 1e9;
  double base = macs / tbn->sec / 1e9, base1 = macs / tb1->sec / 1e9;
  char shape[48];
  snprintf(shape, sizeof shape, "%zux%zux%zu", m, k, n);
  field_t *f;

  /* JSON keys in the order of the documented example. */
  report_str(r, "workload", NULL, "gemm");
  report_str(r, "shape", NULL, shape);
  report_kernel(r, o);
  report_int(r, "threads", "threads", threads);
  f = report_str(r, NULL, "shape", shape);
  field_note(f, "(M x K x N; result checked: %s)",
             strcmp(check, "ref") == 0 ? "equal to the reference"
                                       : "Freivalds' test");
  f = report_num(r, "gmacs", "tandem", gmacs, 2);
  field_note(f, "GMAC/s  kern_gemm, median of %d reps", tt->reps);
  report_str(r, "baseline", NULL, "openblas-dgemm");
  f = report_num(r, "baseline_gmacs_1t", "openblas 1 thread", base1, 2);
  field_note(f, "GMAC/s  cblas_dgemm, median of %d reps", tb1->reps);
  if (threads > 1) {
    char label[32];
    snprintf(label, sizeof label, "openblas %d threads", threads);
    f = report_num(r, NULL, label, base, 2);
    field_note(f, "GMAC/s  cblas_dgemm, median of %d reps", tbn->reps);
  }
  report_num(r, "baseline_gmacs", NULL, base, 6);
  f = report_num(r, "ratio", "ratio", gmacs / base, 2);
  field_note(f, "tandem / openblas, both with %d thread%s", threads,
             threads > 1 ? "s" : "");
  f = report_num(r, "peak_gmacs", "peak", peak, 2);
  field_note(f, "GMAC/s  1 thread, %s", peak_how);
  f = report_num(r, "efficiency", "efficiency", gmacs / (peak * threads), 2);
  field_note(f, "gmacs / (peak * threads)");
  report_int(r, "reps", NULL, tt->reps);
  report_str(r, "stat", NULL, "median");
  report_str(r, "check", NULL, check);
}

static int run_gemm(const bench_opts_t *o, report_t *r) {
  size_t m = o->m, k = o->k, n = o->n, mk, kn, mn;
  int threads = o->threads, ex = EXIT_ERR, rc;
  gemm_ctx_t g;
  kern_prg_t prg;
  int prg_open = 0;
  uint64_t *a = NULL, *b = NULL, *c = NULL;
  double *ad = NULL, *bd = NULL, *cd = NULL;
  timing_t tt, tb1, tbn;
  double peak = 0;
  char check[16], peak_how[96];

  memset(&g, 0, sizeof g);
  if (gemm_fits(m, k, n, &mk, &kn, &mn) != 0)
    return EXIT_ERR;

  rc = kern_set_threads(threads);
  if (rc != 0) {
    fail("kern_set_threads", rc);
    return EXIT_ERR;
  }
  rc = prg_fresh(&prg);
  if (rc != 0) {
    fail("kern_prg_init", rc);
    return EXIT_ERR;
  }
  prg_open = 1;

  a = alloc64(mk, sizeof *a);
  b = alloc64(kn, sizeof *b);
  c = alloc64(mn, sizeof *c);
  ad = alloc64(mk, sizeof *ad);
  bd = alloc64(kn, sizeof *bd);
  cd = alloc64(mn, sizeof *cd);
  if (!a || !b || !c || !ad || !bd || !cd) {
    fail("matrices", TANDEM_ENOMEM);
    goto out;
  }
  if ((rc = kern_prg_u64(&prg, a, mk)) != 0 ||
      (rc = kern_prg_u64(&prg, b, kn)) != 0) {
    fail("kern_prg_u64", rc);
    goto out;
  }
  to_unit_doubles(ad, a, mk);
  to_unit_doubles(bd, b, kn);
  g.m = m;
  g.k = k;
  g.n = n;
  g.a = a;
  g.b = b;
  g.c = c;
  g.ad = ad;
  g.bd = bd;
  g.cd = cd;

  /* Correctness first: a wrong kernel gets no speed. */
  rc = op_kern_gemm(&g);
  if (rc != 0) {
    fail("kern_gemm", rc);
    goto out;
  }
  rc = gemm_verify(&g, &prg, check, sizeof check);
  if (rc == 1)
    goto out;
  if (rc != 0) {
    fail("verification", rc);
    goto out;
  }

  if ((rc = time_op(op_kern_gemm, &g, o->reps, &tt)) != 0) {
    fail("kern_gemm", rc);
    goto out;
  }
  openblas_set_num_threads(1);
  rc = time_op(op_dgemm, &g, o->reps, &tb1);
  tbn = tb1;
  if (rc == 0 && threads > 1) {
    openblas_set_num_threads(threads);
    rc = time_op(op_dgemm, &g, o->reps, &tbn);
  }
  if (rc != 0) {
    fail("cblas_dgemm timing", rc);
    goto out;
  }
  if ((rc = gemm_peak(&prg, o->reps, &peak, peak_how, sizeof peak_how)) !=
      0) {
    fail("peak measurement", rc);
    goto out;
  }

  gemm_report(o, r, &tt, &tb1, &tbn, peak, peak_how, check);
  ex = EXIT_OK;

out:
  free(cd);
  free(bd);
  free(ad);
  free(c);
  free(b);
  free(a);
  if (prg_open)
    kern_prg_close(&prg);
  return ex;
}

/* ------------------------------------------------------------------------ */
/* PRG                                                                       */

typedef struct {
  kern_prg_t *prg;
  EVP_CIPHER_CTX *evp;
  uint8_t *buf; /* PRG_CALL_BYTES */
} prg_ctx_t;

static int op_prg(void *p) {
  prg_ctx_t *x = p;
  for (size_t i = 0; i < PRG_TOTAL_BYTES / PRG_CALL_BYTES; i++) {
    int rc = kern_prg_u64(x->prg, (uint64_t *)(void *)x->buf,
                          PRG_CALL_BYTES / sizeof(uint64_t));
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* The same keystream straight from OpenSSL, encrypting the buffer in place. */
static int op_evp(void *p) {
  prg_ctx_t *x = p;
  for (size_t i = 0; i < PRG_TOTAL_BYTES / PRG_CALL_BYTES; i++) {
    int len = 0;
    if (EVP_EncryptUpdate(x->evp, x->buf, &len, x->buf, (int)PRG_CALL_BYTES) !=
            1 ||
        len != (int)PRG_CALL_BYTES)
      return TANDEM_ECRYPTO;
  }
  return 0;
}

static int run_prg(const bench_opts_t *o, report_t *r) {
  static const uint8_t zero_iv[16];
  int ex = EXIT_ERR, rc, prg_open = 0;
  kern_prg_t prg;
  prg_ctx_t x = {&prg, NULL, NULL};
  uint8_t *key = NULL, *want = NULL;
  timing_t tp, tb;

  key = sodium_malloc(KERN_PRG_SEED_BYTES);
  x.buf = alloc64(PRG_CALL_BYTES, 1);
  want = alloc64(PRG_CALL_BYTES, 1);
  x.evp = EVP_CIPHER_CTX_new();
  if (key == NULL || x.buf == NULL || want == NULL || x.evp == NULL) {
    fail("buffers", TANDEM_ENOMEM);
    goto out;
  }
  /* One key for both: a 16-byte seed is the AES key with a zero counter
   * block (kern.h), so both must produce the same stream, which is checked
   * before anything is timed. */
  randombytes_buf(key, KERN_PRG_SEED_BYTES);
  if ((rc = kern_prg_init(&prg, key, KERN_PRG_SEED_BYTES)) != 0) {
    fail("kern_prg_init", rc);
    goto out;
  }
  prg_open = 1;
  if (EVP_EncryptInit_ex(x.evp, EVP_aes_128_ctr(), NULL, key, zero_iv) != 1) {
    fail("EVP_EncryptInit_ex", TANDEM_ECRYPTO);
    goto out;
  }
  sodium_memzero(key, KERN_PRG_SEED_BYTES);

  memset(want, 0, PRG_CALL_BYTES);
  int len = 0;
  if (EVP_EncryptUpdate(x.evp, want, &len, want, (int)PRG_CALL_BYTES) != 1 ||
      len != (int)PRG_CALL_BYTES) {
    fail("EVP_EncryptUpdate", TANDEM_ECRYPTO);
    goto out;
  }
  if ((rc = kern_prg_u64(&prg, (uint64_t *)(void *)x.buf,
                         PRG_CALL_BYTES / sizeof(uint64_t))) != 0) {
    fail("kern_prg_u64", rc);
    goto out;
  }
  if (memcmp(x.buf, want, PRG_CALL_BYTES) != 0) {
    tandem_app_error(CMD, "kern_prg_u64 is wrong: its stream differs from "
                          "AES-128-CTR; no speed reported");
    goto out;
  }

  if ((rc = time_op(op_prg, &x, o->reps, &tp)) != 0) {
    fail("kern_prg_u64", rc);
    goto out;
  }
  if ((rc = time_op(op_evp, &x, o->reps, &tb)) != 0) {
    fail("EVP_EncryptUpdate", rc);
    goto out;
  }

  double gbps = PRG_TOTAL_BYTES / tp.sec / 1e9;
  double base = PRG_TOTAL_BYTES / tb.sec / 1e9;
  field_t *f;
  report_str(r, "workload", NULL, "prg");
  report_kernel(r, o);
  f = report_num(r, "gbps", "tandem", gbps, 2);
  field_note(f, "GB/s  kern_prg_u64, %u MiB in %u MiB calls, median of %d reps",
             PRG_TOTAL_BYTES >> 20, PRG_CALL_BYTES >> 20, tp.reps);
  report_str(r, "baseline", NULL, "openssl-evp-aes-128-ctr");
  f = report_num(r, "baseline_gbps", "openssl", base, 2);
  field_note(f, "GB/s  EVP AES-128-CTR in place, same bytes, median of %d reps",
             tb.reps);
  f = report_num(r, "ratio", "ratio", gbps / base, 2);
  field_note(f, "tandem / openssl (1.00: no wrapper overhead)");
  report_int(r, "bytes", NULL, PRG_TOTAL_BYTES);
  report_int(r, "reps", NULL, tp.reps);
  report_str(r, "stat", NULL, "median");
  ex = EXIT_OK;

out:
  if (x.evp != NULL)
    EVP_CIPHER_CTX_free(x.evp); /* cleanses the key schedule */
  if (prg_open)
    kern_prg_close(&prg);
  free(want);
  free(x.buf);
  if (key != NULL) {
    sodium_memzero(key, KERN_PRG_SEED_BYTES);
    sodium_free(key);
  }
  return ex;
}

/* ------------------------------------------------------------------------ */
/* Truncation                                                                */

typedef struct {
  const uint64_t *x;
  uint64_t *z;
  size_t n;
} trunc_ctx_t;

static int op_trunc(void *p) {
  trunc_ctx_t *t = p;
  kern_trunc(t->z, t->x, t->n, TRUNC_SHIFT);
  return 0;
}

static int op_memcpy(void *p) {
  trunc_ctx_t *t = p;
  memcpy(t->z, t->x, t->n * sizeof *t->z);
  return 0;
}

/* The arithmetic shift, written without relying on >> of a negative value. */
static uint64_t sar(uint64_t v, unsigned s) {
  uint64_t fill = (v >> 63) ? ~(~(uint64_t)0 >> s) : 0;
  return (v >> s) | fill;
}

static int run_trunc(const bench_opts_t *o, report_t *r) {
  int ex = EXIT_ERR, rc;
  kern_prg_t prg;
  trunc_ctx_t t;
  timing_t tt, tb;
  uint64_t *x = alloc64(TRUNC_ELEMS, sizeof *x);
  uint64_t *z = alloc64(TRUNC_ELEMS, sizeof *z);

  if (x == NULL || z == NULL) {
    fail("buffers", TANDEM_ENOMEM);
    goto out;
  }
  if ((rc = prg_fresh(&prg)) != 0) {
    fail("kern_prg_init", rc);
    goto out;
  }
  rc = kern_prg_u64(&prg, x, TRUNC_ELEMS);
  kern_prg_close(&prg);
  if (rc != 0) {
    fail("kern_prg_u64", rc);
    goto out;
  }
  t.x = x;
  t.z = z;
  t.n = TRUNC_ELEMS;
  op_trunc(&t);
  for (size_t i = 0; i < TRUNC_ELEMS; i++) {
    if (z[i] != sar(x[i], TRUNC_SHIFT)) {
      tandem_app_error(CMD,
                       "kern_trunc is wrong at element %zu; no speed reported",
                       i);
      goto out;
    }
  }
  if ((rc = time_op(op_trunc, &t, o->reps, &tt)) != 0 ||
      (rc = time_op(op_memcpy, &t, o->reps, &tb)) != 0) {
    fail("timing", rc);
    goto out;
  }

  double bytes = (double)TRUNC_ELEMS * sizeof(uint64_t);
  double eps = TRUNC_ELEMS / tt.sec;
  double gbps = bytes / tt.sec / 1e9, base = bytes / tb.sec / 1e9;
  field_t *f;
  report_str(r, "workload", NULL, "trunc");
  report_kernel(r, o);
  report_int(r, "elements", NULL, TRUNC_ELEMS);
  f = report_num(r, NULL, "tandem", eps / 1e6, 1);
  field_note(f, "Melem/s  kern_trunc by %u, %u Mi elements, median of %d reps",
             TRUNC_SHIFT, TRUNC_ELEMS >> 20, tt.reps);
  report_num(r, "elems_per_s", NULL, eps, 0);
  f = report_num(r, "gbps", "", gbps, 2);
  field_note(f, "GB/s written (8 bytes an element)");
  report_str(r, "baseline", NULL, "memcpy");
  f = report_num(r, "baseline_gbps", "memcpy", base, 2);
  field_note(f, "GB/s  same bytes, median of %d reps", tb.reps);
  f = report_num(r, "ratio", "ratio", gbps / base, 2);
  field_note(f, "tandem / memcpy");
  report_int(r, "reps", NULL, tt.reps);
  report_str(r, "stat", NULL, "median");
  ex = EXIT_OK;

out:
  free(z);
  free(x);
  return ex;
}

/* ------------------------------------------------------------------------ */
/* The transport                                                             */

/* The note of a ratio against its target: "met" or "missed", never an error
 * (a loaded machine can miss it; the figures are still worth printing). */
static void note_target(field_t *f, const char *what, int met,
                        const char *target) {
  field_note(f, "%s (target %s: %s)", what, target, met ? "met" : "missed");
}

static int run_net(const bench_opts_t *o, report_t *r) {
  tandem_net_bench_opts_t nb;
  tandem_net_bench_result_t res;
  field_t *f;
  char target[16];

  memset(&nb, 0, sizeof nb);
  nb.small_bytes = NET_SMALL_BYTES;
  nb.rtt_iters = o->iters ? o->iters : NET_RTT_ITERS_DEFAULT;
  nb.big_bytes = o->bytes ? o->bytes : NET_XCHG_BYTES_DEFAULT;
  nb.big_iters = o->reps > 0 ? (unsigned)o->reps : NET_XCHG_ITERS_DEFAULT;
  int rc = tandem_net_bench_run(&nb, &res);
  if (rc != 0)
    return fail("tandem_net_bench_run", rc);
  /* A figure of zero (a clock that did not move) would make a ratio
   * meaningless: refuse it rather than print an infinity. */
  if (!(res.rtt_us_secure > 0 && res.rtt_us_plain > 0 &&
        res.xchg_mbps_secure > 0 && res.xchg_mbps_plain > 0 &&
        isfinite(res.xchg_mbps_secure) && isfinite(res.xchg_mbps_plain))) {
    tandem_app_error(CMD, "tandem_net_bench_run measured no time; try more --iters "
                          "or --reps");
    return EXIT_ERR;
  }

  double rtt_ratio = res.rtt_us_secure / res.rtt_us_plain;
  double tput_ratio = res.xchg_mbps_secure / res.xchg_mbps_plain;
  /* JSON keys in the order of the documented object, then the run's
   * parameters. */
  report_str(r, "workload", NULL, "transport");
  f = report_num(r, "rtt_us_secure", "rtt secure", res.rtt_us_secure, 1);
  field_note(f, "us  %zu-byte message and reply, secure channel, mean of %u",
             nb.small_bytes, nb.rtt_iters);
  f = report_num(r, "rtt_us_plain", "rtt plain", res.rtt_us_plain, 1);
  field_note(f, "us  the same over plain TCP (TCP_NODELAY)");
  f = report_num(r, "rtt_ratio", "rtt ratio", rtt_ratio, 2);
  snprintf(target, sizeof target, "<= %.1f", NET_TARGET_RTT);
  note_target(f, "secure / plain", rtt_ratio <= NET_TARGET_RTT, target);
  f = report_num(r, "xchg_mbps_secure", "exchange secure",
                 res.xchg_mbps_secure, 1);
  field_note(f, "MB/s each way, %zu-byte full-duplex exchanges, mean of %u",
             nb.big_bytes, nb.big_iters);
  f = report_num(r, "xchg_mbps_plain", "exchange plain", res.xchg_mbps_plain,
                 1);
  field_note(f, "MB/s each way, the same over plain TCP");
  f = report_num(r, "throughput_ratio", "throughput ratio", tput_ratio, 2);
  snprintf(target, sizeof target, ">= %.1f", NET_TARGET_THROUGHPUT);
  note_target(f, "secure / plain", tput_ratio >= NET_TARGET_THROUGHPUT,
              target);
  report_int(r, "small_bytes", NULL, (long long)nb.small_bytes);
  report_int(r, "rtt_iters", NULL, nb.rtt_iters);
  report_int(r, "xchg_bytes", NULL, (long long)nb.big_bytes);
  report_int(r, "xchg_iters", NULL, nb.big_iters);
  report_str(r, "stat", NULL, "mean");
  return EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* Entry point                                                               */

/* Every option of `tandem bench`, of every workload, in one table: each is
 * named exactly (no abbreviations), and an option of the other family of
 * workloads is named as such rather than as unknown. */
enum {
  B_KERNEL, B_SHAPE, B_THREADS, B_TRANSPORT, B_ITERS, B_BYTES, /* kernels, transport */
  B_MATMUL, B_MODEL, B_MASK, B_BATCH, B_BY_GATE, B_LINK, B_EMULATE, B_EXACT, /* protocols */
  B_REPS, B_JSON, B_HELP, B_VERSION, B_NOPTS
};
#define FAM_KERN 1u  /* --kernel, --transport */
#define FAM_PROTO 2u /* --matmul, --model */

static const struct {
  const char *name;
  int takes_value;
  unsigned fam;
} bench_opts[B_NOPTS] = {
    [B_KERNEL] = {"kernel", 1, FAM_KERN},      [B_SHAPE] = {"shape", 1, FAM_KERN},
    [B_THREADS] = {"threads", 1, FAM_KERN},    [B_TRANSPORT] = {"transport", 0, FAM_KERN},
    [B_ITERS] = {"iters", 1, FAM_KERN},        [B_BYTES] = {"bytes", 1, FAM_KERN},
    [B_MATMUL] = {"matmul", 1, FAM_PROTO},     [B_MODEL] = {"model", 1, FAM_PROTO},
    [B_MASK] = {"mask", 1, FAM_PROTO},         [B_BATCH] = {"batch", 1, FAM_PROTO},
    [B_BY_GATE] = {"by-gate", 0, FAM_PROTO},   [B_LINK] = {"link", 1, FAM_PROTO},
    [B_EMULATE] = {"emulate", 0, FAM_PROTO},   [B_EXACT] = {"exact", 0, FAM_PROTO},
    [B_REPS] = {"reps", 1, FAM_KERN | FAM_PROTO},
    [B_JSON] = {"json", 0, FAM_KERN | FAM_PROTO}, [B_HELP] = {"help", 0, FAM_KERN | FAM_PROTO},
    [B_VERSION] = {"version", 0, FAM_KERN | FAM_PROTO},
};

/* argv into val[] (the value of each option given, "" for a flag, NULL if
 * absent): -1 to go on, else the exit code after one line on stderr. */
static int bench_parse(int argc, char **argv, const char *val[B_NOPTS]) {
  for (int i = 0; i < B_NOPTS; i++)
    val[i] = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] != '-' || a[2] == '\0')
      return usage_error("unexpected argument", a);
    size_t len = strcspn(a + 2, "=");
    const char *inl = a[2 + len] == '=' ? a + 3 + len : NULL;
    /* --net once named both the transport workload and a protocol
     * workload's network projection. */
    if (len == 3 && strncmp(a + 2, "net", 3) == 0) {
      tandem_app_error(CMD, "'--net' is gone: --transport for the transport workload, "
                            "--link RTT_MS:GBPS|lan|wan for a protocol workload's network");
      return EXIT_USAGE;
    }
    int o = -1;
    for (int k = 0; k < B_NOPTS && o < 0; k++)
      if (strlen(bench_opts[k].name) == len && strncmp(a + 2, bench_opts[k].name, len) == 0)
        o = k;
    if (o < 0)
      return usage_error("unknown option", a);
    if (val[o] != NULL) {
      tandem_app_error(CMD, "option '--%s' given twice (try 'tandem bench --help')",
                       bench_opts[o].name);
      return EXIT_USAGE;
    }
    if (!bench_opts[o].takes_value) {
      if (inl != NULL) {
        tandem_app_error(CMD, "option '--%s' takes no value (try 'tandem bench --help')",
                         bench_opts[o].name);
        return EXIT_USAGE;
      }
      val[o] = "";
    } else if (inl != NULL) {
      val[o] = inl;
    } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
      val[o] = argv[++i];
    } else {
      tandem_app_error(CMD, "option '--%s' needs a value (try 'tandem bench --help')",
                       bench_opts[o].name);
      return EXIT_USAGE;
    }
  }
  if (val[B_HELP] != NULL) {
    usage(stdout);
    return EXIT_OK;
  }
  if (val[B_VERSION] != NULL) {
    printf("tandem %s\n", TANDEM_VERSION);
    return EXIT_OK;
  }
  /* An option of the other family of workloads is named, not ignored. */
  unsigned fam = val[B_MATMUL] != NULL || val[B_MODEL] != NULL ? FAM_PROTO : FAM_KERN;
  for (int k = 0; k < B_NOPTS; k++)
    if (val[k] != NULL && !(bench_opts[k].fam & fam)) {
      tandem_app_error(CMD, "--%s %s (try 'tandem bench --help')", bench_opts[k].name,
                       fam == FAM_PROTO ? "does not apply to --matmul or --model"
                                        : "applies to --matmul and --model only");
      return EXIT_USAGE;
    }
  return -1;
}

/* The kernel and transport workload's options from val[] into *o and *w:
 * -1 to go on, else the exit code. */
static int kernel_opts(const char *val[B_NOPTS], bench_opts_t *o, const workload_t **wp) {
  const workload_t *w = NULL;
  memset(o, 0, sizeof *o);
  o->threads = 1;
  o->kernel = val[B_KERNEL];
  o->json = val[B_JSON] != NULL;
  o->transport = val[B_TRANSPORT] != NULL;
  if (val[B_REPS] != NULL && parse_int_arg(val[B_REPS], 1, REPS_MAX, &o->reps) != 0)
    return usage_error("--reps wants an integer in 1..10000, not", val[B_REPS]);
  if (o->transport && o->kernel != NULL)
    return usage_error("--transport and --kernel are two workloads; give one, not both", NULL);
  if (o->transport) {
    w = &net_workload;
  } else {
    if (o->kernel == NULL)
      return usage_error("missing the workload: --kernel gemm|prg|trunc, --transport, "
                         "--matmul MxKxN or --model M.onnx",
                         NULL);
    for (size_t i = 0; i < N_KERNEL_WORKLOADS; i++)
      if (strcmp(o->kernel, kernel_workloads[i].name) == 0)
        w = &kernel_workloads[i];
    if (w == NULL)
      return usage_error("unknown --kernel (want gemm, prg or trunc):", o->kernel);
  }
  const char *wname = o->transport ? "--transport" : o->kernel;
  if (val[B_SHAPE] != NULL) {
    if (!(w->opts & OPT_SHAPE))
      return usage_error("--shape applies to --kernel gemm only, not", wname);
    if (parse_shape(val[B_SHAPE], &o->m, &o->k, &o->n) != 0)
      return usage_error("--shape wants MxKxN, each an integer in 1..65536, not", val[B_SHAPE]);
    o->have_shape = 1;
  } else if (w->opts & OPT_SHAPE) {
    return usage_error("missing --shape MxKxN for --kernel", o->kernel);
  }
  if (val[B_THREADS] != NULL) {
    if (!(w->opts & OPT_THREADS))
      return usage_error("--threads applies to --kernel gemm only, not", wname);
    if (parse_int_arg(val[B_THREADS], 1, THREADS_MAX, &o->threads) != 0)
      return usage_error("--threads wants an integer in 1..64, not", val[B_THREADS]);
    o->have_threads = 1;
  }
  if (val[B_ITERS] != NULL) {
    int n;
    if (!(w->opts & OPT_ITERS))
      return usage_error("--iters applies to --transport only, not", wname);
    if (parse_int_arg(val[B_ITERS], 1, NET_RTT_ITERS_MAX, &n) != 0)
      return usage_error("--iters wants an integer in 1..1000000, not", val[B_ITERS]);
    o->iters = (unsigned)n;
  }
  if (val[B_BYTES] != NULL) {
    unsigned long b;
    const char *end;
    if (!(w->opts & OPT_BYTES))
      return usage_error("--bytes applies to --transport only, not", wname);
    if (parse_uint(val[B_BYTES], 1, NET_XCHG_BYTES_MAX, &b, &end) != 0 || *end != '\0')
      return usage_error("--bytes wants an integer in 1..67108864, not", val[B_BYTES]);
    o->bytes = (size_t)b;
  }
  *wp = w;
  return -1;
}

int tandem_bench_main(int argc, char **argv) {
  bench_opts_t o;
  const char *val[B_NOPTS];
  const workload_t *w = NULL;
  report_t *rep = NULL;
  int rc = bench_parse(argc, argv, val);
  if (rc >= 0)
    return rc;
  /* The protocol workloads (bench_proto.c) read their options themselves,
   * from an argv bench_parse has found well formed. */
  if (val[B_MATMUL] != NULL || val[B_MODEL] != NULL)
    return tandem_bench_proto_main(argc, argv);
  if ((rc = kernel_opts(val, &o, &w)) >= 0)
    return rc;

  if (sodium_init() < 0) {
    tandem_app_error(CMD, "libsodium failed to initialise");
    return EXIT_ERR;
  }
  /* The transport does no arithmetic: --transport neither needs nor reports
   * a kernel variant, so a TANDEM_KERNEL meant for other runs does not stop
   * it. */
  if (!o.transport) {
    rc = kern_init();
    if (rc != 0) {
      const char *env = getenv("TANDEM_KERNEL");
      tandem_app_error(CMD, "TANDEM_KERNEL=%s: %s", env ? env : "",
                       tandem_strerror(rc));
      return EXIT_ERR;
    }
    o.isa = kern_isa_active();
    const char *env = getenv("TANDEM_KERNEL");
    o.isa_from_env = env != NULL && env[0] != '\0';
  }

  rep = calloc(1, sizeof *rep);
  if (rep == NULL)
    return fail("report", TANDEM_ENOMEM);
  int ex = w->run(&o, rep);
  if (ex == EXIT_OK) {
    if (o.json)
      report_print_json(rep, stdout);
    else
      report_print_human(rep, stdout);
    if (fflush(stdout) != 0) {
      tandem_app_error(CMD, "writing the report: %s", strerror(errno));
      ex = EXIT_ERR;
    }
  }
  free(rep);
  return ex;
}
