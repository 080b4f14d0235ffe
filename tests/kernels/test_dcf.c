/* test_dcf.c - Check suite for the batched DCF (kernels/src/dcf.c and
 * dcf_walk.h): the two shares always add up to beta below alpha and 0
 * elsewhere, on edge and random points, exhaustively for 8-bit inputs and
 * across groups, slices and ragged tails, under every AES implementation this
 * CPU runs (those it lacks are reported on stderr as skipped); every
 * implementation and thread count gives the same keys and the same shares;
 * batched evaluation and evaluation by quad-aligned sub-batches agree; every
 * variant matches the reference walk bit for bit at every bit count, widths
 * 1..3 and odd batch sizes; a scalar evaluator written from kern.h's key
 * layout alone gives the kernel's shares (it pins the layout); keys are deterministic in the PRG
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

/* Every variant this CPU has against the reference walk (OpenSSL), gen and
 * eval, at every bit count 1..64, widths 1..3 and odd batch sizes (ragged
 * quads, vectors and groups): byte-identical keys and shares, and shares
 * that add up to the comparison. The variants this CPU lacks are named on
 * stderr as skipped. */
START_TEST(test_dcf_variants_every_nbits) {
  static const size_t counts[] = {1, 3, 5, 7, 9, 15, 17, 31, 33, 37, 63};
  const size_t maxc = 63;
  for (int im = 1; im < KERN_AES_NIMPL; im++)
    if (!kern_aes_impl_supported((kern_aes_impl_t)im))
      (void)use_impl(im);
  uint64_t *alpha = xmalloc(maxc * 8), *x = xmalloc(maxc * 8);
  uint64_t *beta = xmalloc(maxc * 3 * 8);
  uint64_t *ry0 = xmalloc(maxc * 3 * 8), *ry1 = xmalloc(maxc * 3 * 8);
  uint64_t *y0 = xmalloc(maxc * 3 * 8), *y1 = xmalloc(maxc * 3 * 8);
  for (unsigned nbits = 1; nbits <= 64; nbits++) {
    for (unsigned width = 1; width <= 3; width++) {
      const size_t count = counts[(nbits + width) % 11];
      const size_t kb = kern_dcf_key_bytes(nbits, width);
      uint8_t *r0 = xmalloc(count * kb), *r1 = xmalloc(count * kb);
      uint8_t *k0 = xmalloc(count * kb), *k1 = xmalloc(count * kb);
      const uint64_t m = mask_of(nbits);
      sm_state = 0xa11 + 16 * nbits + width;
      for (size_t i = 0; i < count; i++) {
        alpha[i] = sm_next() & m;
        x[i] = (i % 4 == 1) ? alpha[i] : (i % 4 == 2) ? alpha[i] - 1 : sm_next();
        for (unsigned k = 0; k < width; k++)
          beta[i * width + k] = sm_next();
      }
      gen_eval(KERN_AES_OPENSSL, 1, nbits, width, count, alpha, beta, x, r0,
               r1, ry0, ry1);
      for (size_t i = 0; i < count; i++)
        for (unsigned k = 0; k < width; k++)
          ck_assert_msg(ry0[i * width + k] + ry1[i * width + k] ==
                            ((x[i] & m) < alpha[i] ? beta[i * width + k] : 0),
                        "reference: nbits %u width %u count %zu instance %zu",
                        nbits, width, count, i);
      for (int im = 1; im < KERN_AES_NIMPL; im++) {
        if (!kern_aes_impl_supported((kern_aes_impl_t)im))
          continue;
        gen_eval(im, 1, nbits, width, count, alpha, beta, x, k0, k1, y0, y1);
        ck_assert_msg(memcmp(k0, r0, count * kb) == 0 &&
                          memcmp(k1, r1, count * kb) == 0,
                      "%s: keys differ from the reference at nbits %u width "
                      "%u count %zu",
                      kern_aes_impl_name((kern_aes_impl_t)im), nbits, width,
                      count);
        ck_assert_msg(memcmp(y0, ry0, count * width * 8) == 0 &&
                          memcmp(y1, ry1, count * width * 8) == 0,
                      "%s: shares differ from the reference at nbits %u "
                      "width %u count %zu",
                      kern_aes_impl_name((kern_aes_impl_t)im), nbits, width,
                      count);
      }
      free(r0);
      free(r1);
      free(k0);
      free(k1);
    }
  }
  ck_assert_int_eq(kern_set_threads(1), 0);
  free(alpha);
  free(x);
  free(beta);
  free(ry0);
  free(ry1);
  free(y0);
  free(y1);
}
END_TEST

/* A scalar evaluator written from kern.h's key layout and dcf.c's PRG alone
 * (one AES block at a time through kern_aes128_ecb_impl, OpenSSL): the
 * field at one-instance offset off and size sz of instance i of a batch of
 * count sits at 4 q kb + m off + j sz, q = i / 4, j = i % 4, m the quad's
 * size; the fields are the seeds (16 bytes) and the value words by pairs. */
static const uint8_t pi_key[16] = {0x24, 0x3f, 0x6a, 0x88, 0x85, 0xa3,
                                   0x08, 0xd3, 0x13, 0x19, 0x8a, 0x2e,
                                   0x03, 0x70, 0x73, 0x44};

static const uint8_t *field(const uint8_t *keys, size_t count, size_t kb,
                            size_t i, size_t off, size_t sz) {
  const size_t qb = i & ~(size_t)3, m = count - qb < 4 ? count - qb : 4;
  return keys + qb * kb + m * off + (i - qb) * sz;
}

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int b = 7; b >= 0; b--)
    v = v << 8 | p[b];
  return v;
}

/* Word k of the w words from one-instance offset base (V_CW, CW_L or
 * CW_R): fields of two words, the last of one if w is odd. */
static uint64_t key_word(const uint8_t *keys, size_t count, size_t kb,
                         size_t i, size_t base, unsigned w, unsigned k) {
  const size_t sz = 2 * (k / 2) + 1 < w ? 16 : 8;
  return le64(field(keys, count, kb, i, base + 16 * (k / 2), sz) + 8 * (k & 1));
}

/* G_j(s) = AES(s ^ j) ^ (s ^ j), j in the low byte. */
static void mmo(const kern_aes_ks_t *ks, const uint8_t s[16], unsigned j,
                uint8_t out[16]) {
  uint8_t in[16];
  memcpy(in, s, 16);
  in[0] ^= (uint8_t)j;
  ck_assert_int_eq(kern_aes128_ecb_impl(KERN_AES_OPENSSL, ks, in, out, 1), 0);
  for (int b = 0; b < 16; b++)
    out[b] ^= in[b];
}

/* Value word q of the children of seed s: half q&1 of block 2 + q/2. */
static uint64_t child_word(const kern_aes_ks_t *ks, const uint8_t s[16],
                           unsigned q) {
  uint8_t o[16];
  mmo(ks, s, 2 + q / 2, o);
  return le64(o + 8 * (q & 1));
}

static void eval_scalar(int party, unsigned nbits, unsigned w,
                        const uint8_t *keys, size_t count, size_t i,
                        uint64_t x, uint64_t *y) {
  const size_t kb = kern_dcf_key_bytes(nbits, w);
  kern_aes_ks_t ks;
  kern_aes128_init(&ks, pi_key);
  uint8_t s[16], o[16];
  memcpy(s, field(keys, count, kb, i, 0, 16), 16);
  s[0] &= 0xfc;
  unsigned t = (unsigned)party;
  uint64_t v[3] = {0, 0, 0};
  size_t off = 16;
  for (unsigned l = 0; l + 1 < nbits; l++, off += 16 + 8 * (size_t)w) {
    const unsigned xb = (unsigned)(x >> (nbits - 1 - l)) & 1;
    for (unsigned k = 0; k < w; k++) {
      v[k] += child_word(&ks, s, xb * w + k);
      if (t)
        v[k] += key_word(keys, count, kb, i, off + 16, w, k);
    }
    mmo(&ks, s, xb, o);
    const uint8_t *cw = field(keys, count, kb, i, off, 16);
    const unsigned nt = (o[0] & 1) ^ (t & (cw[0] >> xb) & 1);
    for (int b = 0; b < 16; b++)
      s[b] = o[b] ^ (t ? cw[b] : 0);
    s[0] &= 0xfc;
    t = nt;
  }
  const unsigned xb = (unsigned)x & 1;
  for (unsigned k = 0; k < w; k++) {
    v[k] += child_word(&ks, s, xb * w + k);
    if (t)
      v[k] += key_word(keys, count, kb, i, off + 8 * xb * w, w, k);
    y[k] = party ? (uint64_t)0 - v[k] : v[k];
  }
}

/* The scalar evaluator equals every variant's shares on a batch of 7 (a
 * full quad and a quad of 3), widths 1..3: it fails on any other layout. */
START_TEST(test_dcf_layout) {
  const size_t count = 7;
  static const unsigned nb[] = {1, 2, 9, 25, 29, 64};
  for (size_t a = 0; a < sizeof nb / sizeof nb[0]; a++) {
    for (unsigned width = 1; width <= 3; width++) {
      const unsigned nbits = nb[a];
      const size_t kb = kern_dcf_key_bytes(nbits, width);
      uint64_t alpha[7], x[7], beta[21], y0[21], y1[21];
      uint8_t *k0 = xmalloc(count * kb), *k1 = xmalloc(count * kb);
      sm_state = 0x1a4 + nbits * 4 + width;
      for (size_t i = 0; i < count; i++) {
        alpha[i] = sm_next() & mask_of(nbits);
        x[i] = i == 3 ? alpha[i] : sm_next() & mask_of(nbits);
        for (unsigned k = 0; k < width; k++)
          beta[i * width + k] = sm_next();
      }
      for (int im = 0; im < KERN_AES_NIMPL; im++) {
        if (!kern_aes_impl_supported((kern_aes_impl_t)im))
          continue;
        gen_eval(im, 1, nbits, width, count, alpha, beta, x, k0, k1, y0, y1);
        for (size_t i = 0; i < count; i++) {
          uint64_t s0[3], s1[3];
          eval_scalar(0, nbits, width, k0, count, i, x[i], s0);
          eval_scalar(1, nbits, width, k1, count, i, x[i], s1);
          for (unsigned k = 0; k < width; k++)
            ck_assert_msg(s0[k] == y0[i * width + k] &&
                              s1[k] == y1[i * width + k],
                          "%s: scalar evaluator differs at nbits %u width %u "
                          "instance %zu word %u",
                          kern_aes_impl_name((kern_aes_impl_t)im), nbits,
                          width, i, k);
        }
      }
      free(k0);
      free(k1);
    }
  }
  ck_assert_int_eq(kern_set_threads(1), 0);
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
 * evaluation equals evaluating the same keys one, three or five quads at a
 * time (partial groups) and the ragged last quad alone. */
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
      /* A few quads at a time on a stride that hits both slice edges, and
       * the ragged last quad alone: a sub-batch may start at any multiple
       * of KERN_DCF_QUAD and end at one or at the batch's end. */
      for (size_t i = 0; i < count;
           i += (i % 512 < 8 || i % 512 > 500) ? KERN_DCF_QUAD : 96) {
        static const size_t few[] = {4, 12, 20};
        size_t nf = few[(i / KERN_DCF_QUAD) % 3];
        if (count - i <= KERN_DCF_QUAD)
          nf = count - i;
        else if (nf > count - i)
          nf = (count - i) & ~(size_t)(KERN_DCF_QUAD - 1);
        uint64_t yi[20];
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

/* kern_dcf_eval_pts: one key evaluated at several points gives, under
 * every AES implementation, the comparison at each point and exactly what
 * kern_dcf_eval gives on the same keys point by point. Counts straddle the
 * slice and end off a quad; points 0, alpha - 1, alpha, alpha + 1 occur. */
START_TEST(test_dcf_eval_pts) {
  static const unsigned nb[] = {1, 13, 25, 64};
  static const size_t counts[] = {1, 7, KERN_DCF_PTS_SLICE + 5};
  const size_t pts = 6;
  const unsigned width = 4;
  for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++)
    for (size_t bi = 0; bi < sizeof nb / sizeof nb[0]; bi++) {
      const unsigned nbits = nb[bi];
      const size_t count = counts[ci], kb = kern_dcf_key_bytes(nbits, width);
      const uint64_t m = mask_of(nbits);
      uint64_t *alpha = xmalloc(count * 8), *beta = xmalloc(count * width * 8);
      uint64_t *x = xmalloc(count * pts * 8);
      uint64_t *y0 = xmalloc(count * pts * width * 8), *y1 = xmalloc(count * pts * width * 8);
      uint64_t *yr = xmalloc(count * width * 8);
      uint8_t *k0 = xmalloc(count * kb), *k1 = xmalloc(count * kb);
      sm_state = 0x5eed + ci * 7 + bi;
      for (size_t i = 0; i < count; i++) {
        alpha[i] = sm_next() & m;
        for (unsigned k = 0; k < width; k++)
          beta[i * width + k] = sm_next();
        for (size_t j = 0; j < pts; j++)
          x[j * count + i] = j == 0 ? 0 : j < 4 ? (alpha[i] + j - 2) & m : sm_next();
      }
      kern_prg_t prg;
      prg_open(&prg, 0x33);
      ck_assert_int_eq(kern_dcf_gen(&prg, nbits, width, count, alpha, beta, k0, k1), 0);
      kern_prg_close(&prg);
      for (int im = 0; im < KERN_AES_NIMPL; im++) {
        if (!use_impl(im))
          continue;
        ck_assert_int_eq(kern_dcf_eval_pts(0, nbits, width, count, pts, k0, x, y0), 0);
        ck_assert_int_eq(kern_dcf_eval_pts(1, nbits, width, count, pts, k1, x, y1), 0);
        for (size_t j = 0; j < pts; j++) {
          ck_assert_int_eq(kern_dcf_eval(1, nbits, width, count, k1, x + j * count, yr), 0);
          ck_assert(memcmp(yr, y1 + j * count * width, count * width * 8) == 0);
          for (size_t i = 0; i < count; i++) {
            int below = (x[j * count + i] & m) < alpha[i];
            for (unsigned k = 0; k < width; k++) {
              size_t o = (j * count + i) * width + k;
              ck_assert_msg(y0[o] + y1[o] == (below ? beta[i * width + k] : 0),
                            "%s nbits %u count %zu key %zu point %zu word %u",
                            kern_aes_impl_name((kern_aes_impl_t)im), nbits, count, i, j, k);
            }
          }
        }
      }
      free(alpha);
      free(beta);
      free(x);
      free(y0);
      free(y1);
      free(yr);
      free(k0);
      free(k1);
    }
  uint64_t xx[2] = {0, 0}, yy[8];
  uint8_t kk[256];
  ck_assert_int_eq(kern_dcf_eval_pts(2, 8, 1, 1, 2, kk, xx, yy), TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_eval_pts(0, 8, 1, 1, 2, NULL, xx, yy), TANDEM_EINVAL);
  ck_assert_int_eq(kern_dcf_eval_pts(0, 8, 1, 1, 0, kk, xx, yy), 0);
}
END_TEST

Suite *dcf_suite(void) {
  Suite *s = suite_create("dcf");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_dcf_correct);
  tcase_add_test(tc, test_dcf_same_everywhere);
  tcase_add_test(tc, test_dcf_variants_every_nbits);
  tcase_add_test(tc, test_dcf_layout);
  tcase_add_test(tc, test_dcf_key_size);
  tcase_add_test(tc, test_dcf_exhaustive8);
  tcase_add_test(tc, test_dcf_batch_chunks);
  tcase_add_test(tc, test_dcf_threads);
  tcase_add_test(tc, test_dcf_deterministic);
  tcase_add_test(tc, test_dcf_keys_look_random);
  tcase_add_test(tc, test_dcf_invalid);
  tcase_add_test(tc, test_dcf_eval_pts);
  suite_add_tcase(s, tc);
  return s;
}
