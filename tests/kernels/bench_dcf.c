/* bench_dcf.c - a small benchmark of the batched AES kernel and the DCF
 * (kernels/src/aes.c, dcf.c, dcf_walk.h), built with the tests but not
 * registered as one: `build/bench_dcf [quick]`. For every AES implementation
 * the CPU runs it prints the raw ECB rate against OpenSSL EVP in the same run,
 * then DCF generation (both keys) and evaluation (one party) in ns per
 * instance at nbits 41 and 63, widths 1 and 3, 25,600 and 256,000 instances,
 * on one thread and on two, and the AES blocks each instance costs. Each
 * figure is the best of three runs (two at 256,000 instances), key pages
 * touched beforehand, as wall time and as the process's CPU time (summed
 * over threads; on a shared machine the wall time includes waiting).
 * `bench_dcf mlp [aes]`: the MLP's ReLU shapes only (nbits 24 and 27, width
 * 3, 12,800 instances, best of 9), for one AES implementation if named. The
 * last two columns divide the CPU time per instance and thread by the time
 * raw ECB of the same run takes for the same number of blocks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kern.h"
#include "../test_rand.h"

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

/* CPU time of the whole process (all threads): on a machine shared with
 * other jobs, wall time also counts the time this process waited. */
static double cpu_s(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

static uint64_t sm_state = 0x5eed;
static uint64_t sm_next(void) {
  return test_splitmix64(&sm_state);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL) {
    fprintf(stderr, "bench_dcf: out of memory\n");
    exit(1);
  }
  return p;
}

static void check(int rc, const char *what) {
  if (rc != 0) {
    fprintf(stderr, "bench_dcf: %s: %s\n", what, tandem_strerror(rc));
    exit(1);
  }
}

/* Raw ECB rate per implementation (blocks per ns), for the DCF's ratio to
 * raw AES in the same run. */
static double raw_bpns[KERN_AES_NIMPL];

static void bench_aes(void) {
  const size_t nblk = 1u << 16; /* 1 MiB, stays in L2 */
  uint8_t *buf = xmalloc(nblk * 16);
  for (size_t i = 0; i < nblk * 2; i++) {
    uint64_t v = sm_next();
    memcpy(buf + 8 * i, &v, 8);
  }
  uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  kern_aes_ks_t ks;
  kern_aes128_init(&ks, key);
  printf("raw AES-128-ECB, 1 MiB in place, one thread:\n");
  double base = 0;
  for (int im = 0; im < KERN_AES_NIMPL; im++) {
    if (!kern_aes_impl_supported((kern_aes_impl_t)im)) {
      printf("  %-8s skipped (not supported by this CPU/OS)\n",
             kern_aes_impl_name((kern_aes_impl_t)im));
      continue;
    }
    double best = 1e30;
    for (int r = 0; r < 20; r++) {
      double t0 = now_s();
      check(kern_aes128_ecb_impl((kern_aes_impl_t)im, &ks, buf, buf, nblk),
            "ecb");
      double t = now_s() - t0;
      if (t < best)
        best = t;
    }
    double gbs = (double)nblk * 16 / best / 1e9;
    raw_bpns[im] = gbs / 16;
    if (im == 0)
      base = gbs;
    printf("  %-8s %6.2f GB/s  %6.0f M blocks/s  %.2fx openssl\n",
           kern_aes_impl_name((kern_aes_impl_t)im), gbs, gbs * 1e3 / 16,
           gbs / base);
  }
  free(buf);
}

static size_t blocks_eval(unsigned n, unsigned w) {
  size_t h = (w + 1) / 2;
  return (size_t)(n - 1) * (1 + h) + h;
}

static size_t blocks_gen(unsigned n, unsigned w) {
  return 2 * ((size_t)(n - 1) * (2 + w) + w);
}

int main(int argc, char **argv) {
  int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
  /* mlp: the ReLU gates of models/fashion_mlp.onnx at batch 100 (12,800
   * instances of width 3 at the DCF widths its bounds give, 24 and 27:
   * `tandem bench --by-gate`'s bits column). */
  int mlp = argc > 1 && strcmp(argv[1], "mlp") == 0;
  /* An optional second argument names the one AES implementation to run. */
  const char *only = argc > 2 ? argv[2] : NULL;
  check(kern_init(), "kern_init");
  bench_aes();

  const unsigned nbs[] = {mlp ? 24u : 41u, mlp ? 27u : 63u};
  const unsigned wds[] = {mlp ? 3u : 1u, 3};
  const size_t counts[] = {mlp ? 12800u : 25600u, 256000};
  quick |= mlp;
  const size_t maxc = quick ? counts[0] : counts[1];
  uint64_t *alpha = xmalloc(maxc * 8), *x = xmalloc(maxc * 8);
  uint64_t *beta = xmalloc(maxc * 3 * 8), *y = xmalloc(maxc * 3 * 8);
  for (size_t i = 0; i < maxc; i++) {
    alpha[i] = sm_next();
    x[i] = sm_next();
  }
  for (size_t i = 0; i < maxc * 3; i++)
    beta[i] = sm_next();

  printf("\nDCF, ns per instance (gen: both keys; eval: one party)\n");
  printf("(gen/raw, eval/raw: CPU time over the same blocks' time in raw ECB"
         " of the same run)\n");
  printf("%-8s %5s %2s %7s %3s %8s %8s %8s %8s %7s %8s %6s %7s %8s\n",
         "aes", "nbits", "w", "count", "thr", "gen ns", "gen cpu", "eval ns",
         "eval cpu", "blk/gen", "blk/eval", "key B", "gen/raw", "eval/raw");
  for (int im = 0; im < KERN_AES_NIMPL; im++) {
    if (!kern_aes_impl_supported((kern_aes_impl_t)im)) {
      printf("%-8s skipped (not supported by this CPU/OS)\n",
             kern_aes_impl_name((kern_aes_impl_t)im));
      continue;
    }
    if (only != NULL && strcmp(only, kern_aes_impl_name((kern_aes_impl_t)im)))
      continue;
    check(kern_aes_impl_select((kern_aes_impl_t)im), "select");
    for (size_t a = 0; a < 2; a++)
      for (size_t b = 0; b < (mlp ? 1u : 2u); b++)
        for (size_t c = 0; c < (quick ? 1u : 2u); c++)
          for (int thr = 1; thr <= 2; thr++) {
            const unsigned nbits = nbs[a], w = wds[b];
            const size_t count = counts[c];
            const uint64_t m = (1ull << nbits) - 1;
            for (size_t i = 0; i < count; i++)
              alpha[i] &= m;
            const size_t kb = kern_dcf_key_bytes(nbits, w);
            uint8_t *k0 = xmalloc(count * kb), *k1 = xmalloc(count * kb);
            /* Touch the pages first: first-touch faults are not the DCF's. */
            memset(k0, 0xff, count * kb);
            memset(k1, 0xff, count * kb);
            check(kern_set_threads(thr), "threads");
            const int reps = mlp ? 9 : count > 100000 ? 2 : 3;
            double bg = 1e30, be = 1e30, cg = 1e30, ce = 1e30;
            for (int r = 0; r < reps; r++) {
              uint8_t seed[16] = {7};
              kern_prg_t prg;
              check(kern_prg_init(&prg, seed, 16), "prg");
              double t0 = now_s(), c0 = cpu_s();
              check(kern_dcf_gen(&prg, nbits, w, count, alpha, beta, k0, k1),
                    "gen");
              double t1 = now_s(), c1 = cpu_s();
              kern_prg_close(&prg);
              double t2 = now_s(), c2 = cpu_s();
              check(kern_dcf_eval(0, nbits, w, count, k0, x, y), "eval");
              double t3 = now_s(), c3 = cpu_s();
              bg = t1 - t0 < bg ? t1 - t0 : bg;
              cg = c1 - c0 < cg ? c1 - c0 : cg;
              be = t3 - t2 < be ? t3 - t2 : be;
              ce = c3 - c2 < ce ? c3 - c2 : ce;
            }
            const double per = 1e9 / (double)count;
            const double rg = (double)blocks_gen(nbits, w) / raw_bpns[im];
            const double re = (double)blocks_eval(nbits, w) / raw_bpns[im];
            printf("%-8s %5u %2u %7zu %3d %8.1f %8.1f %8.1f %8.1f %7zu %8zu "
                   "%6zu %7.2f %8.2f\n",
                   kern_aes_impl_name((kern_aes_impl_t)im), nbits, w, count,
                   thr, bg * per, cg * per, be * per, ce * per,
                   blocks_gen(nbits, w), blocks_eval(nbits, w), kb,
                   cg * per / thr / rg, ce * per / thr / re);
            fflush(stdout);
            free(k0);
            free(k1);
          }
  }
  free(alpha);
  free(x);
  free(beta);
  free(y);
  return 0;
}
