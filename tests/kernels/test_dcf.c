/* test_dcf.c - Check suite for the batched DCF (kernels/src/dcf.c and
 * dcf_walk.h): the two shares always add up to beta below alpha and 0
 * elsewhere, on edge and random points, exhaustively for 8-bit inputs and
 * across groups, slices and ragged tails, under every AES implementation this
 * CPU runs (those it lacks are reported on stderr as skipped); every
 * implementation and thread count gives the same keys and the same shares;
 * batched and one-by-one evaluation agree; keys are deterministic in the PRG
 * seed and look random; the key size follows its formula; bad parameters are
 * refused. All randomness comes from fixed seeds (printed in failure
 * messages), never from the OS.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "../test_rand.h"

/* Test data generator (not the DCF's PRG): splitmix64 with a fixed seed. */
static uint64_t sm_state;
static uint64_t sm_next(void) {
  return test_splitmix64(&sm_state);
}

static uint64_t mask_of(unsigned nbits) {
  return nbits == 64 ? ~(uint64_t)0 : (((uint64_t)1 << nbits) - 1);
}

static void prg_open(kern_prg_t *prg, uint8_t fill) {
  uint8_t seed[KERN_PRG_SEED_BYTES];
  memset(seed, fill, sizeof seed);
  ck_assert_int_eq(kern_prg_init(prg, seed, sizeof seed), 0);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  ck_assert_ptr_nonnull(p);
  return p;
}

/* Generates count keys, evaluates both parties at x and checks every
 * component of y0 + y1 against the comparison. */
static void check_batch(unsigned nbits, unsigned width, size_t count,
                        const uint64_t *alpha, const uint64_t *beta,
                        const uint64_t *x, uint8_t prg_fill) {
  size_t kb = kern_dcf_key_bytes(nbits, width);
  ck_assert_uint_gt(kb, 0);
  uint8_t *k0 = xmalloc(count * kb), *k1 = xmalloc(count * kb);
  uint64_t *y0 = xmalloc(count * width * 8), *y1 = xmalloc(count * width * 8);
  kern_prg_t prg;
  prg_open(&prg, prg_fill);
  ck_assert_int_eq(kern_dcf_gen(&prg, nbits, width, count, alpha, beta, k0, k1),
                   0);
  kern_prg_close(&prg);
  ck_assert_int_eq(kern_dcf_eval(0, nbits, width, count, k0, x, y0), 0);
  ck_assert_int_eq(kern_dcf_eval(1, nbits, width, count, k1, x, y1), 0);
  const uint64_t m = mask_of(nbits);
  for (size_t i = 0; i < count; i++) {
    int below = (x[i] & m) < alpha[i];
    for (unsigned k = 0; k < width; k++) {
      uint64_t want = below ? beta[i * width + k] : 0;
      uint64_t got = y0[i * width + k] + y1[i * width + k];
      ck_assert_msg(got == want,
                    "nbits=%u width=%u i=%zu k=%u alpha=%#llx x=%#llx: "
                    "got %#llx want %#llx (data seed %#llx)",
                    nbits, width, i, k, (unsigned long long)alpha[i],
                    (unsigned long long)x[i], (unsigned long long)got,
                    (unsigned long long)want, (unsigned long long)prg_fill);
    }
  }
  free(k0);
  free(k1);
  free(y0);
  free(y1);
}

/* Selects AES implementation im for the DCF; 0 (and a line on stderr) if
 * this CPU cannot run it. */
static int use_impl(int im) {
  if (!kern_aes_impl_supported((kern_aes_impl_t)im)) {
    fprintf(stderr, "test_dcf: %s not supported by this CPU/OS: SKIPPED\n",
            kern_aes_impl_name((kern_aes_impl_t)im));
    return 0;
  }
  ck_assert_int_eq(kern_aes_impl_select((kern_aes_impl_t)im), 0);
  return 1;
}

/* Random and edge alphas, each tried at x in {alpha-1, alpha, alpha+1, 0,
 * 2^nbits-1} and three random points; alpha = 0, 1 and 2^nbits-1 always
 * occur. Every width, under every AES implementation. */
START_TEST(test_dcf_correct) {
  static const unsigned nb[] = {1, 2, 16, 17, 40, 63, 64};
  const size_t nalpha = 24, per = 8, count = nalpha * per;
  uint64_t *alpha = xmalloc(count * 8), *x = xmalloc(count * 8);
  uint64_t *beta = xmalloc(count * KERN_DCF_MAX_WIDTH * 8);
  for (int im = 0; im < KERN_AES_NIMPL; im++) {
    if (!use_impl(im))
      continue;
    for (size_t a = 0; a < sizeof nb / sizeof nb[0]; a++) {
      for (unsigned width = 1; width <= KERN_DCF_MAX_WIDTH; width++) {
        const unsigned nbits = nb[a];
        const uint64_t m = mask_of(nbits);
        sm_state = 0x1234 + 100 * nbits + width;
        for (size_t i = 0; i < nalpha; i++) {
          uint64_t al = sm_next() & m;
          if (i == 0)
            al = 0;
          else if (i == 1)
            al = m;
          else if (i == 2)
            al = 1 & m;
          else if (i == 3)
            al = (m >> 1) + 1; /* top bit only */
          const uint64_t pts[8] = {(al - 1) & m, al, (al + 1) & m, 0, m,
                                   sm_next() & m, sm_next() & m, sm_next()};
          for (size_t j = 0; j < per; j++) {
            alpha[i * per + j] = al;
            /* The last point keeps its high bits: eval takes x mod 2^nbits. */
            x[i * per + j] = pts[j];
            for (unsigned k = 0; k < width; k++)
              beta[(i * per + j) * width + k] = sm_next();
          }
        }
        check_batch(nbits, width, count, alpha, beta, x,
                    (uint8_t)(nbits * 8 + width));
      }
    }
  }
  free(alpha);
  free(beta);
  free(x);
}
END_TEST

/* Generates count instances under AES implementation im and threads, then
 * evaluates both parties the same way. */
static void gen_eval(int im, int threads, unsigned nbits, unsigned width,
                     size_t count, const uint64_t *alpha, const uint64_t *beta,
                     const uint64_t *x, uint8_t *k0, uint8_t *k1, uint64_t *y0,
                     uint64_t *y1) {
  ck_assert_int_eq(kern_aes_impl_select((kern_aes_impl_t)im), 0);
  ck_assert_int_eq(kern_set_threads(threads), 0);
  kern_prg_t prg;
  prg_open(&prg, 0x5a);
  ck_assert_int_eq(kern_dcf_gen(&prg, nbits, width, count, alpha, beta, k0, k1),
                   0);
  kern_prg_close(&prg);
  ck_assert_int_eq(kern_dcf_eval(0, nbits, width, count, k0, x, y0), 0);
  ck_assert_int_eq(kern_dcf_eval(1, nbits, width, count, k1, x, y1), 0);
}

/* Every AES implementation and 1, 2 or 3 threads give byte-identical keys and
 * shares to OpenSSL on one thread, over several slices (512 instances) with a
 * ragged group tail, and the shares are right. */
START_TEST(test_dcf_same_everywhere) {
  static const unsigned nb[] = {41, 63};
  static const unsigned wd[] = {1, 3};
  const size_t count = 3 * 512 + 37;
  for (size_t a = 0; a < 2; a++) {
    const unsigned nbits = nb[a], width = wd[a];
    const size_t kb = kern_dcf_key_bytes(nbits, width);
    uint64_t *alpha = xmalloc(count * 8), *x = xmalloc(count * 8);
    uint64_t *beta = xmalloc(count * width * 8);
    uint8_t *r0 = xmalloc(count * kb), *r1 = xmalloc(count * kb);
    uint8_t *k0 = xmalloc(count * kb), *k1 = xmalloc(count * kb);
    uint64_t *ry0 = xmalloc(count * width * 8), *ry1 = xmalloc(count * width * 8);
    uint64_t *y0 = xmalloc(count * width * 8), *y1 = xmalloc(count * width * 8);
    sm_state = 0xe0e0 + nbits;
    for (size_t i = 0; i < count; i++) {
      alpha[i] = sm_next() & mask_of(nbits);
      x[i] = (i % 3 == 0) ? alpha[i] : sm_next();
      for (unsigned k = 0; k < width; k++)
        beta[i * width + k] = sm_next();
    }
    gen_eval(KERN_AES_OPENSSL, 1, nbits, width, count, alpha, beta, x, r0, r1,
             ry0, ry1);
    for (size_t i = 0; i < count; i++) {
      int below = (x[i] & mask_of(nbits)) < alpha[i];
      for (unsigned k = 0; k < width; k++)
        ck_assert_uint_eq(ry0[i * width + k] + ry1[i * width + k],
                          below ? beta[i * width + k] : 0);
    }
    for (int im = 0; im < KERN_AES_NIMPL; im++) {
      if (!kern_aes_impl_supported((kern_aes_impl_t)im)) {
        (void)use_impl(im);
        continue;
      }
      for (int thr = 1; thr <= 3; thr++) {
        gen_eval(im, thr, nbits, width, count, alpha, beta, x, k0, k1, y0, y1);
        ck_assert_msg(memcmp(k0, r0, count * kb) == 0 &&
                          memcmp(k1, r1, count * kb) == 0,
                      "%s, %d threads: keys differ from openssl, 1 thread",
                      kern_aes_impl_name((kern_aes_impl_t)im), thr);
        ck_assert_msg(memcmp(y0, ry0, count * width * 8) == 0 &&
                          memcmp(y1, ry1, count * width * 8) == 0,
                      "%s, %d threads: shares differ from openssl, 1 thread",
                      kern_aes_impl_name((kern_aes_impl_t)im), thr);
      }
    }
    free(alpha);
    free(x);
    free(beta);
    free(r0);
    free(r1);
    free(k0);
    free(k1);
    free(ry0);
    free(ry1);
    free(y0);
    free(y1);
  }
}
END_TEST

/* The key size: 16 + (nbits - 1)(16 + 8 width) + 16 width bytes. */
START_TEST(test_dcf_key_size) {
  for (unsigned n = 1; n <= 64; n++)
    for (unsigned w = 1; w <= KERN_DCF_MAX_WIDTH; w++)
      ck_assert_uint_eq(kern_dcf_key_bytes(n, w),
                        16 + (n - 1) * (16 + 8 * w) + 16 * w);
  ck_assert_uint_eq(kern_dcf_key_bytes(64, 1), 1544);
  ck_assert_uint_eq(kern_dcf_key_bytes(41, 1), 992);
  ck_assert_uint_eq(kern_dcf_key_bytes(41, 2), 1328);
  ck_assert_uint_eq(kern_dcf_key_bytes(1, 1), 32);
}
END_TEST

/* Every x for 8-bit inputs, at edge and middle alphas, width 2 and 3. */
START_TEST(test_dcf_exhaustive8) {
  static const uint64_t alphas[] = {0, 1, 2, 127, 128, 129, 200, 254, 255};
  const size_t na = sizeof alphas / sizeof alphas[0], count = na * 256;
  for (unsigned width = 2; width <= 3; width++) {
    uint64_t *alpha = xmalloc(count * 8), *x = xmalloc(count * 8);
    uint64_t *beta = xmalloc(count * width * 8);
    sm_state = 0x8888 + width;
    for (size_t a = 0; a < na; a++) {
      uint64_t bv[3] = {sm_next(), sm_next(), sm_next()};
      for (size_t v = 0; v < 256; v++) {
        alpha[a * 256 + v] = alphas[a];
        x[a * 256 + v] = v;
        for (unsigned k = 0; k < width; k++)
          beta[(a * 256 + v) * width + k] = bv[k];
      }
    }
    check_batch(8, width, count, alpha, beta, x, 0x77);
    free(alpha);
    free(beta);
    free(x);
  }
}
END_TEST

/* Many slices (512 instances in dcf.c) and groups (up to 32) with a ragged
 * tail, under every AES implementation, checked for correctness; batched
 * evaluation equals evaluating the same keys one, three or seventeen at a
 * time (partial groups). */
START_TEST(test_dcf_batch_chunks) {
  const unsigned nbits = 16, width = 1;
  const size_t count = 2 * 4096 + 3;
  const size_t kb = kern_dcf_key_bytes(nbits, width);
  uint64_t *alpha = xmalloc(count * 8), *beta = xmalloc(count * 8);
  uint64_t *x = xmalloc(count * 8), *y = xmalloc(count * 8);
  uint8_t *k0 = xmalloc(count * kb), *k1 = xmalloc(count * kb);
  sm_state = 0xc4c4;
  for (size_t i = 0; i < count; i++) {
    alpha[i] = sm_next() & 0xffff;
    beta[i] = sm_next();
    x[i] = (i & 1) ? alpha[i] - (i & 2 ? 1 : 0) : sm_next();
  }
  for (int im = 0; im < KERN_AES_NIMPL; im++) {
    if (!use_impl(im))
      continue;
    check_batch(nbits, width, count, alpha, beta, x, 0x31);

    kern_prg_t prg;
    prg_open(&prg, 0x32);
    ck_assert_int_eq(
        kern_dcf_gen(&prg, nbits, width, count, alpha, beta, k0, k1), 0);
    kern_prg_close(&prg);
    for (int party = 0; party < 2; party++) {
      const uint8_t *keys = party ? k1 : k0;
      ck_assert_int_eq(kern_dcf_eval(party, nbits, width, count, keys, x, y),
                       0);
      /* A few at a time on a stride that hits both slice edges. */
      for (size_t i = 0; i < count;
           i += (i % 512 < 2 || i % 512 > 509) ? 1 : 97) {
        static const size_t few[] = {1, 3, 17};
        size_t nf = few[i % 3];
        if (nf > count - i)
          nf = count - i;
        uint64_t yi[17];
        ck_assert_int_eq(kern_dcf_eval(party, nbits, width, nf, keys + i * kb,
                                       x + i, yi),
                         0);
        for (size_t j = 0; j < nf; j++)
          ck_assert_msg(yi[j] == y[i + j],
                        "%s party %d instance %zu: %#llx vs %#llx",
                        kern_aes_impl_name((kern_aes_impl_t)im), party, i + j,
                        (unsigned long long)yi[j],
                        (unsigned long long)y[i + j]);
      }
    }
  }
  free(alpha);
  free(beta);
  free(x);
  free(y);
  free(k0);
  free(k1);
}
END_TEST

/* Several threads evaluating disjoint slices at once give the serial result
 * (the AES context is per call). */
START_TEST(test_dcf_threads) {
  const unsigned nbits = 40, width = 2;
  const size_t count = 4 * 300;
  const size_t kb = kern_dcf_key_bytes(nbits, width);
  uint64_t *alpha = xmalloc(count * 8), *beta = xmalloc(count * width * 8);
  uint64_t *x = xmalloc(count * 8);
  uint64_t *ys = xmalloc(count * width * 8), *yp = xmalloc(count * width * 8);
  uint8_t *k0 = xmalloc(count * kb), *k1 = xmalloc(count * kb);
  sm_state = 0x7e7e;
  for (size_t i = 0; i < count; i++) {
    alpha[i] = sm_next() & mask_of(nbits);
    x[i] = sm_next() & mask_of(nbits);
    for (unsigned k = 0; k < width; k++)
      beta[i * width + k] = sm_next();
  }
  kern_prg_t prg;
  prg_open(&prg, 0x41);
  ck_assert_int_eq(kern_dcf_gen(&prg, nbits, width, count, alpha, beta, k0, k1),
                   0);
  kern_prg_close(&prg);
  ck_assert_int_eq(kern_dcf_eval(1, nbits, width, count, k1, x, ys), 0);
  int errs = 0;
#pragma omp parallel for num_threads(4) reduction(+ : errs)
  for (int s = 0; s < 4; s++) {
    size_t off = (size_t)s * 300;
    errs += kern_dcf_eval(1, nbits, width, 300, k1 + off * kb, x + off,
                          yp + off * width) != 0;
  }
  ck_assert_int_eq(errs, 0);
  ck_assert(memcmp(ys, yp, count * width * 8) == 0);
  free(alpha);
  free(beta);
  free(x);
  free(ys);
  free(yp);
  free(k0);
  free(k1);
}
END_TEST

/* The same PRG seed gives the same keys; another seed gives other keys. */
START_TEST(test_dcf_deterministic) {
  const unsigned nbits = 40, width = 3;
  const size_t count = 5, kb = kern_dcf_key_bytes(nbits, width);
  uint64_t alpha[5] = {0, 1, 12345, 0xffffffffffull, 1ull << 39};
  uint64_t beta[15];
  for (size_t i = 0; i < 15; i++)
    beta[i] = i * 0x0101010101010101ull;
  uint8_t *a0 = xmalloc(count * kb), *a1 = xmalloc(count * kb);
  uint8_t *b0 = xmalloc(count * kb), *b1 = xmalloc(count * kb);
  kern_prg_t prg;
  prg_open(&prg, 0x55);
  ck_assert_int_eq(kern_dcf_gen(&prg, nbits, width, count, alpha, beta, a0, a1),
                   0);
  kern_prg_close(&prg);
  prg_open(&prg, 0x55);
  ck_assert_int_eq(kern_dcf_gen(&prg, nbits, width, count, alpha, beta, b0, b1),
                   0);
  kern_prg_close(&prg);
  ck_assert(memcmp(a0, b0, count * kb) == 0);
  ck_assert(memcmp(a1, b1, count * kb) == 0);
  prg_open(&prg, 0x56);
  ck_assert_int_eq(kern_dcf_gen(&prg, nbits, width, count, alpha, beta, b0, b1),
                   0);
  kern_prg_close(&prg);
  ck_assert(memcmp(a0, b0, count * kb) != 0);
  ck_assert(memcmp(a1, b1, count * kb) != 0);
  free(a0);
  free(a1);
  free(b0);
  free(b1);
}
END_TEST

static unsigned popcount_bytes(const uint8_t *p, size_t n) {
  unsigned c = 0;
  for (size_t i = 0; i < n; i++)
    c += (unsigned)__builtin_popcount(p[i]);
  return c;
}

/* A statistical sanity check, not a proof: keys for alpha = 0 and alpha =
 * 2^63 from the same root seeds differ in about half their correction bits,
 * each key's bytes take many values with about half the bits set, and the two
 * parties' root seeds differ (their corrections are shared by design). */
START_TEST(test_dcf_keys_look_random) {
  const unsigned nbits = 64, width = 1;
  const size_t kb = kern_dcf_key_bytes(nbits, width);
  uint64_t beta = 0x1111;
  uint64_t al[2] = {0, 1ull << 63};
  uint8_t *k0[2], *k1[2];
  for (int j = 0; j < 2; j++) {
    k0[j] = xmalloc(kb);
    k1[j] = xmalloc(kb);
    kern_prg_t prg;
    prg_open(&prg, 0x99); /* same root seeds for both alphas */
    ck_assert_int_eq(kern_dcf_gen(&prg, nbits, width, 1, &al[j], &beta, k0[j],
                                  k1[j]),
                     0);
    kern_prg_close(&prg);
  }
  ck_assert(memcmp(k0[0], k0[1], 16) == 0); /* same roots ... */
  ck_assert(memcmp(k0[0], k1[0], 16) != 0); /* ... but per party */
  uint8_t *d = xmalloc(kb);
  for (size_t i = 0; i < kb; i++)
    d[i] = k0[0][i] ^ k0[1][i];
  /* Byte 16 + l (16 + 8w) carries the two t_CW bits; counted as the rest. */
  size_t nbitsc = (kb - 16) * 8;
  unsigned diff = popcount_bytes(d + 16, kb - 16);
  ck_assert_msg(diff > nbitsc * 2 / 5 && diff < nbitsc * 3 / 5,
                "alpha=0 vs 2^63 keys differ in %u of %zu bits", diff, nbitsc);
  for (int j = 0; j < 2; j++) {
    int seen[256] = {0}, distinct = 0;
    for (size_t i = 0; i < kb; i++)
      if (!seen[k0[j][i]]++)
        distinct++;
    ck_assert_int_gt(distinct, 200);
    unsigned ones = popcount_bytes(k0[j], kb);
    ck_assert(ones > kb * 8 * 2 / 5 && ones < kb * 8 * 3 / 5);
    free(k0[j]);
    free(k1[j]);
  }
  free(d);
}
END_TEST

START_TEST(test_dcf_invalid) {
  ck_assert_uint_eq(kern_dcf_key_bytes(0, 1), 0);
  ck_assert_uint_eq(kern_dcf_key_bytes(65, 1), 0);
  ck_assert_uint_eq(kern_dcf_key_bytes(8, 0), 0);
  ck_assert_uint_eq(kern_dcf_key_bytes(8, KERN_DCF_MAX_WIDTH + 1), 0);

  const size_t kb = kern_dcf_key_bytes(8, 1);
  uint8_t *k0 = xmalloc(2 * kb), *k1 = xmalloc(2 * kb);
  uint64_t alpha[2] = {3, 255}, beta[2] = {1, 2}, x[2] = {0, 1}, y[2];
  kern_prg_t prg;
  prg_open(&prg, 0x01);
  ck_assert_int_eq(kern_dcf_gen(&prg, 0, 1, 2, alpha, beta, k0, k1),
                   TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_gen(&prg, 65, 1, 2, alpha, beta, k0, k1),
                   TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_gen(&prg, 8, 0, 2, alpha, beta, k0, k1),
                   TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_gen(&prg, 8, 9, 2, alpha, beta, k0, k1),
                   TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_gen(NULL, 8, 1, 2, alpha, beta, k0, k1),
                   TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_gen(&prg, 8, 1, 2, NULL, beta, k0, k1),
                   TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_gen(&prg, 8, 1, 2, alpha, beta, k0, NULL),
                   TANDEM_EINVAL);
  alpha[1] = 256; /* alpha >= 2^nbits */
  ck_assert_int_eq(kern_dcf_gen(&prg, 8, 1, 2, alpha, beta, k0, k1),
                   TANDEM_EINVAL);
  alpha[1] = 255;
  ck_assert_int_eq(kern_dcf_gen(&prg, 8, 1, 0, alpha, beta, k0, k1), 0);
  ck_assert_int_eq(kern_dcf_gen(&prg, 8, 1, 2, alpha, beta, k0, k1), 0);
  kern_prg_close(&prg);

  ck_assert_int_eq(kern_dcf_eval(2, 8, 1, 2, k0, x, y), TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_eval(-1, 8, 1, 2, k0, x, y), TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_eval(0, 0, 1, 2, k0, x, y), TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_eval(0, 65, 1, 2, k0, x, y), TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_eval(0, 8, 0, 2, k0, x, y), TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_eval(0, 8, 9, 2, k0, x, y), TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_eval(0, 8, 1, 2, NULL, x, y), TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_eval(0, 8, 1, 2, k0, NULL, y), TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_eval(0, 8, 1, 2, k0, x, NULL), TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_eval(0, 8, 1, 0, k0, x, y), 0);
  free(k0);
  free(k1);
}
END_TEST

Suite *dcf_suite(void) {
  Suite *s = suite_create("dcf");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_dcf_correct);
  tcase_add_test(tc, test_dcf_same_everywhere);
  tcase_add_test(tc, test_dcf_key_size);
  tcase_add_test(tc, test_dcf_exhaustive8);
  tcase_add_test(tc, test_dcf_batch_chunks);
  tcase_add_test(tc, test_dcf_threads);
  tcase_add_test(tc, test_dcf_deterministic);
  tcase_add_test(tc, test_dcf_keys_look_random);
  tcase_add_test(tc, test_dcf_invalid);
  suite_add_tcase(s, tc);
  return s;
}
