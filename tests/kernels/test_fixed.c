/* test_fixed.c - Check suite for fixed-point encoding, decoding and plain
 * truncation (kernels/src/ref/fixed.c).
 *
 * Encoding is checked on exact ties (which must round half to even, for
 * positive and negative values), on values just off a tie, on the edges of the
 * encodable range (the largest encodable magnitude, the first one out of range,
 * NaN, both infinities, and DBL_MAX whose product overflows), with the index
 * of the first bad element reported, and for f = 1, 16 and 30 and the invalid
 * f = 0 and 31. Random doubles and floats go through a round trip that must
 * land within 2^-(f+1) of the input. Decoding is checked on the extreme ring
 * elements and on a value where rounding through double then float would give
 * a different float than rounding once. Truncation is compared with the
 * compiler's arithmetic shift of int64_t (GCC and Clang define it as
 * arithmetic) for every shift 0..63 on the edge values. Random values come
 * from splitmix64 with fixed seeds.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "../test_rand.h"

/* A uniform double in [0, 1). */
static double unit(uint64_t *s) {
  return (double)(test_splitmix64(s) >> 11) * 0x1p-53;
}

static const unsigned fracs[] = {1, 16, 30};
#define NFRAC (sizeof fracs / sizeof fracs[0])

/* The ring element of a (small) signed integer. */
static uint64_t ring(int64_t v) { return (uint64_t)v; }

static uint64_t enc1(double x, unsigned f) {
  uint64_t z = 0;
  size_t bad = 12345;
  int rc = kern_fix_encode(&z, &x, 1, f, &bad);
  ck_assert_msg(rc == 0, "encode(%a, f=%u) = %s", x, f, tandem_err_name(rc));
  ck_assert_uint_eq(bad, 12345); /* untouched on success */
  return z;
}

static uint64_t enc1f(float x, unsigned f) {
  uint64_t z = 0;
  int rc = kern_fix_encode_f32(&z, &x, 1, f, NULL);
  ck_assert_msg(rc == 0, "encode_f32(%a, f=%u) = %s", (double)x, f,
                tandem_err_name(rc));
  return z;
}

START_TEST(test_encode_simple) {
  ck_assert_uint_eq(enc1(0.0, 16), 0);
  ck_assert_uint_eq(enc1(-0.0, 16), 0);
  ck_assert_uint_eq(enc1(1.0, 16), 65536);
  ck_assert_uint_eq(enc1(-1.0, 16), ring(-65536));
  ck_assert_uint_eq(enc1(1.5, 1), 3);
  ck_assert_uint_eq(enc1(-1.5, 1), ring(-3));
  ck_assert_uint_eq(enc1(0.1, 16), 6554);  /* 6553.6 */
  ck_assert_uint_eq(enc1(-0.1, 16), ring(-6554));
  ck_assert_uint_eq(enc1(1.0, 30), (uint64_t)1 << 30);
  ck_assert_uint_eq(enc1(-3.25, 30), ring(-((int64_t)13 << 28)));
  ck_assert_uint_eq(enc1f(1.0f, 16), 65536);
  ck_assert_uint_eq(enc1f(-0.1f, 16), ring(-6554)); /* float(0.1)*2^16 = 6553.6000... */
  /* Smallest magnitudes: below half an ulp of the fixed-point grid is 0. */
  ck_assert_uint_eq(enc1(DBL_TRUE_MIN, 1), 0);
  ck_assert_uint_eq(enc1(-DBL_TRUE_MIN, 30), 0);
  ck_assert_uint_eq(enc1(DBL_MIN, 30), 0);
}
END_TEST

/* Exact ties round to the even neighbour; anything off a tie rounds to the
 * nearest. */
START_TEST(test_encode_half_even) {
  for (size_t k = 0; k < NFRAC; k++) {
    unsigned f = fracs[k];
    const double u = ldexp(1.0, -(int)f); /* one unit of the grid */
    /* v = x * 2^f is the tie m + 1/2. */
    static const struct {
      double v;
      int64_t want;
    } ties[] = {{0.5, 0},    {1.5, 2},     {2.5, 2},    {3.5, 4},
                {-0.5, 0},   {-1.5, -2},   {-2.5, -2},  {-3.5, -4},
                {1023.5, 1024}, {1024.5, 1024}, {-1023.5, -1024},
                {-1024.5, -1024}};
    for (size_t i = 0; i < sizeof ties / sizeof ties[0]; i++) {
      uint64_t z = enc1(ties[i].v * u, f);
      ck_assert_msg(z == ring(ties[i].want), "f=%u v=%g: got %lld want %lld",
                    f, ties[i].v, (long long)(int64_t)z,
                    (long long)ties[i].want);
      uint64_t zf = enc1f((float)(ties[i].v * u), f);
      ck_assert_msg(zf == ring(ties[i].want), "f32 f=%u v=%g", f, ties[i].v);
    }
    /* Just above and below a tie. */
    ck_assert_uint_eq(enc1(nextafter(0.5, 1.0) * u, f), 1);
    ck_assert_uint_eq(enc1(nextafter(0.5, 0.0) * u, f), 0);
    ck_assert_uint_eq(enc1(nextafter(2.5, 3.0) * u, f), 3);
    ck_assert_uint_eq(enc1(nextafter(-2.5, -3.0) * u, f), ring(-3));
    ck_assert_uint_eq(enc1(nextafter(-0.5, -1.0) * u, f), ring(-1));
    ck_assert_uint_eq(enc1(nextafter(-1.5, 0.0) * u, f), ring(-1));
    /* Ties at magnitudes near 2^52, where the half is the last fractional
     * bit a double can hold. */
    ck_assert_uint_eq(enc1((0x1p51 + 0.5) * u, f), (uint64_t)1 << 51);
    ck_assert_uint_eq(enc1((0x1p51 + 1.5) * u, f), ((uint64_t)1 << 51) + 2);
    ck_assert_uint_eq(enc1(-(0x1p51 + 1.5) * u, f),
                      ring(-((int64_t)1 << 51) - 2));
  }
}
END_TEST

/* The encodable range is |x| * 2^f < 2^62, symmetric in sign. */
START_TEST(test_encode_range) {
  for (size_t k = 0; k < NFRAC; k++) {
    unsigned f = fracs[k];
    const double u = ldexp(1.0, -(int)f);
    /* The largest double below 2^62 is 2^62 - 512: an integer, encodable. */
    double big = nextafter(0x1p62, 0.0) * u;
    ck_assert_uint_eq(enc1(big, f), ((uint64_t)1 << 62) - 512);
    ck_assert_uint_eq(enc1(-big, f), ring(-(((int64_t)1 << 62) - 512)));
    float bigf = nextafterf(0x1p62f, 0.0f) * (float)u;
    ck_assert_uint_eq(enc1f(bigf, f), ((uint64_t)1 << 62) - ((uint64_t)1 << 38));
    ck_assert_uint_eq(enc1f(-bigf, f),
                      ring(-(((int64_t)1 << 62) - ((int64_t)1 << 38))));

    const double bads[] = {0x1p62 * u, -0x1p62 * u, NAN, -NAN, INFINITY,
                           -INFINITY, DBL_MAX, -DBL_MAX, 0x1p70};
    for (size_t b = 0; b < sizeof bads / sizeof bads[0]; b++) {
      /* The bad element sits at index 3 of 6, after good ones. */
      double x[6] = {0.0, 1.0, -1.0, bads[b], 2.0, bads[b]};
      uint64_t z[6];
      size_t bad = 999;
      int rc = kern_fix_encode(z, x, 6, f, &bad);
      ck_assert_msg(rc == TANDEM_ERANGE, "f=%u bad #%zu: %s", f, b,
                    tandem_err_name(rc));
      ck_assert_uint_eq(bad, 3);
      /* The first element is reported, and a NULL index is accepted. */
      ck_assert_int_eq(kern_fix_encode(z, x + 3, 3, f, &bad), TANDEM_ERANGE);
      ck_assert_uint_eq(bad, 0);
      ck_assert_int_eq(kern_fix_encode(z, x, 6, f, NULL), TANDEM_ERANGE);
    }
    /* The float inputs: converting DBL_MAX to float would be undefined, so
     * they have their own list. */
    const float badfs[] = {0x1p62f * (float)u, -0x1p62f * (float)u, NAN,
                           INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, 0x1p70f};
    for (size_t b = 0; b < sizeof badfs / sizeof badfs[0]; b++) {
      float xf[6] = {0.0f, 1.0f, -1.0f, badfs[b], 2.0f, 0.0f};
      uint64_t z[6];
      size_t bad = 999;
      int rc = kern_fix_encode_f32(z, xf, 6, f, &bad);
      ck_assert_msg(rc == TANDEM_ERANGE, "f32 f=%u bad #%zu: %s", f, b,
                    tandem_err_name(rc));
      ck_assert_uint_eq(bad, 3);
      ck_assert_int_eq(kern_fix_encode_f32(z, xf, 6, f, NULL), TANDEM_ERANGE);
    }
    /* The first out-of-range float: 2^62 exactly. */
    float edge = 0x1p62f * (float)u;
    uint64_t z;
    ck_assert_int_eq(kern_fix_encode_f32(&z, &edge, 1, f, NULL),
                     TANDEM_ERANGE);
  }
  /* n == 0 touches nothing and succeeds, whatever the pointers. */
  size_t bad = 7;
  ck_assert_int_eq(kern_fix_encode(NULL, NULL, 0, 16, &bad), 0);
  ck_assert_uint_eq(bad, 7);
}
END_TEST

START_TEST(test_invalid_frac) {
  static const unsigned badf[] = {0, 31, 32, 64, 1000, ~0u};
  double x = 1.0, d;
  float xf = 1.0f, df;
  uint64_t z = 0;
  for (size_t i = 0; i < sizeof badf / sizeof badf[0]; i++) {
    unsigned f = badf[i];
    ck_assert_int_eq(kern_fix_encode(&z, &x, 1, f, NULL), TANDEM_EINVAL);
    ck_assert_int_eq(kern_fix_encode_f32(&z, &xf, 1, f, NULL), TANDEM_EINVAL);
    ck_assert_int_eq(kern_fix_decode(&d, &z, 1, f), TANDEM_EINVAL);
    ck_assert_int_eq(kern_fix_decode_f32(&df, &z, 1, f), TANDEM_EINVAL);
  }
  /* An invalid f is reported before any value is looked at. */
  x = NAN;
  ck_assert_int_eq(kern_fix_encode(&z, &x, 1, 0, NULL), TANDEM_EINVAL);
  /* The bounds themselves are valid. */
  x = 1.0;
  ck_assert_int_eq(kern_fix_encode(&z, &x, 1, KERN_FIX_FRAC_MIN, NULL), 0);
  ck_assert_int_eq(kern_fix_encode(&z, &x, 1, KERN_FIX_FRAC_MAX, NULL), 0);
  ck_assert_int_eq(kern_fix_decode(&d, &z, 1, KERN_FIX_FRAC_MAX), 0);
  ck_assert(d == 1.0);
}
END_TEST

START_TEST(test_decode_edges) {
  const uint64_t z[] = {0,
                        1,
                        UINT64_MAX,
                        0x8000000000000000ull,
                        0x7fffffffffffffffull,
                        ((uint64_t)1 << 62) + 1,
                        ring(-65536)};
  enum { N = sizeof z / sizeof z[0] };
  double d[N];
  float df[N];
  ck_assert_int_eq(kern_fix_decode(d, z, N, 16), 0);
  ck_assert(d[0] == 0.0);
  ck_assert(d[1] == 0x1p-16);
  ck_assert(d[2] == -0x1p-16);
  ck_assert(d[3] == -0x1p47);
  ck_assert(d[4] == 0x1p47); /* 2^63 - 1 rounds to 2^63 */
  ck_assert(d[5] == 0x1p46); /* 2^62 + 1 rounds to 2^62 */
  ck_assert(d[6] == -1.0);
  ck_assert_int_eq(kern_fix_decode_f32(df, z, N, 16), 0);
  ck_assert(df[1] == 0x1p-16f);
  ck_assert(df[2] == -0x1p-16f);
  ck_assert(df[3] == -0x1p47f);
  ck_assert(df[6] == -1.0f);
  /* 2^53 + 2^29 + 1 to float: rounding once gives 2^53 + 2^30; rounding to
   * double first (a tie, to 2^53 + 2^29) and then to float (a tie, to 2^53)
   * would not. */
  uint64_t t = ((uint64_t)1 << 53) + ((uint64_t)1 << 29) + 1;
  float ft;
  ck_assert_int_eq(kern_fix_decode_f32(&ft, &t, 1, 1), 0);
  ck_assert(ft == (0x1p53f + 0x1p30f) * 0.5f);
  /* Against the plain formula on random elements, every valid f. */
  uint64_t seed = 0xdec0de;
  for (unsigned f = KERN_FIX_FRAC_MIN; f <= KERN_FIX_FRAC_MAX; f++) {
    for (int i = 0; i < 64; i++) {
      uint64_t v = test_splitmix64(&seed) >> (i % 64);
      double got;
      float gotf;
      ck_assert_int_eq(kern_fix_decode(&got, &v, 1, f), 0);
      ck_assert_int_eq(kern_fix_decode_f32(&gotf, &v, 1, f), 0);
      ck_assert(got == ldexp((double)(int64_t)v, -(int)f));
      ck_assert(gotf == ldexpf((float)(int64_t)v, -(int)f));
    }
  }
}
END_TEST

/* decode(encode(x)) is within half a grid unit of x. */
START_TEST(test_round_trip) {
  enum { N = 2000 };
  double *x = malloc(N * sizeof *x), *d = malloc(N * sizeof *d);
  float *xf = malloc(N * sizeof *xf), *df = malloc(N * sizeof *df);
  uint64_t *z = malloc(N * sizeof *z);
  ck_assert(x && d && xf && df && z);
  for (size_t k = 0; k < NFRAC; k++) {
    unsigned f = fracs[k];
    uint64_t seed = 0x5eed0000u + f;
    /* Magnitudes spread over the whole range: 2^e for e from -f-4 to just
     * under the bound, times a mantissa in [1, 2). */
    int emax = (int)KERN_FIX_BOUND_BITS - (int)f - 1;
    int emin = -(int)f - 4;
    for (size_t i = 0; i < N; i++) {
      int e = emin + (int)(test_splitmix64(&seed) % (uint64_t)(emax - emin));
      double m = 1.0 + unit(&seed);
      double v = ldexp(m, e);
      x[i] = (test_splitmix64(&seed) & 1) ? -v : v;
      xf[i] = (float)x[i];
    }
    size_t bad = 0;
    ck_assert_int_eq(kern_fix_encode(z, x, N, f, &bad), 0);
    ck_assert_int_eq(kern_fix_decode(d, z, N, f), 0);
    const double tol = ldexp(1.0, -(int)f - 1);
    for (size_t i = 0; i < N; i++)
      ck_assert_msg(fabs(d[i] - x[i]) <= tol, "f=%u x=%a d=%a seed=0x%x", f,
                    x[i], d[i], 0x5eed0000u + f);
    ck_assert_int_eq(kern_fix_encode_f32(z, xf, N, f, &bad), 0);
    ck_assert_int_eq(kern_fix_decode_f32(df, z, N, f), 0);
    for (size_t i = 0; i < N; i++)
      ck_assert_msg(fabs((double)df[i] - (double)xf[i]) <= tol,
                    "f32 f=%u x=%a d=%a", f, (double)xf[i], (double)df[i]);
    /* Encoding is the nearest integer: |z - x*2^f| <= 1/2 exactly. */
    ck_assert_int_eq(kern_fix_encode(z, x, N, f, &bad), 0);
    for (size_t i = 0; i < N; i++) {
      double v = ldexp(x[i], (int)f);
      double zi = (double)(int64_t)z[i];
      if (fabs(v) < 0x1p52)
        ck_assert_msg(fabs(zi - v) <= 0.5, "f=%u x=%a", f, x[i]);
      else
        ck_assert_msg(zi == v, "f=%u x=%a", f, x[i]);
    }
  }
  free(x);
  free(d);
  free(xf);
  free(df);
  free(z);
}
END_TEST

/* The reference: GCC and Clang define >> of a negative int64_t as an
 * arithmetic shift. */
static uint64_t trunc_ref(uint64_t x, unsigned s) {
  return (uint64_t)((int64_t)x >> s);
}

START_TEST(test_trunc) {
  static const uint64_t edges[] = {0x8000000000000000ull,
                                   0x8000000000000001ull,
                                   0xfffffffffffffffeull,
                                   0xffffffffffffffffull,
                                   0,
                                   1,
                                   2,
                                   3,
                                   0x7ffffffffffffffeull,
                                   0x7fffffffffffffffull,
                                   0x4000000000000000ull,
                                   0xc000000000000000ull,
                                   0x00000000ffffffffull,
                                   0xffffffff00000000ull};
  enum { NE = sizeof edges / sizeof edges[0], NR = 61, N = NE + NR };
  uint64_t x[N], z[N + 1];
  memcpy(x, edges, sizeof edges);
  uint64_t seed = 0x7275;
  for (size_t i = NE; i < N; i++)
    x[i] = test_splitmix64(&seed);
  for (unsigned s = 0; s < 64; s++) {
    z[N] = 0xa5a5a5a5a5a5a5a5ull;
    kern_trunc(z, x, N, s);
    for (size_t i = 0; i < N; i++)
      ck_assert_msg(z[i] == trunc_ref(x[i], s), "s=%u x=0x%016llx", s,
                    (unsigned long long)x[i]);
    ck_assert_uint_eq(z[N], 0xa5a5a5a5a5a5a5a5ull);
    /* In place gives the same. */
    uint64_t w[N];
    memcpy(w, x, sizeof w);
    kern_trunc(w, w, N, s);
    ck_assert(memcmp(w, z, sizeof w) == 0);
  }
  /* Hand-written values: floor division by 2^s. */
  uint64_t v[4] = {ring(-1), ring(-7), 7, ring(INT64_MIN)}, r[4];
  kern_trunc(r, v, 4, 1);
  ck_assert_uint_eq(r[0], ring(-1));
  ck_assert_uint_eq(r[1], ring(-4));
  ck_assert_uint_eq(r[2], 3);
  ck_assert_uint_eq(r[3], ring(INT64_MIN / 2));
  kern_trunc(r, v, 4, 63);
  ck_assert_uint_eq(r[0], ring(-1));
  ck_assert_uint_eq(r[1], ring(-1));
  ck_assert_uint_eq(r[2], 0);
  ck_assert_uint_eq(r[3], ring(-1));
  /* Out of contract (s >= 64): clamped to 63, which is still the floor. */
  kern_trunc(r, v, 4, 64);
  ck_assert_uint_eq(r[1], ring(-1));
  ck_assert_uint_eq(r[2], 0);
  kern_trunc(r, v, 4, 1000);
  ck_assert_uint_eq(r[0], ring(-1));
  ck_assert_uint_eq(r[2], 0);
  kern_trunc(NULL, NULL, 0, 5); /* n == 0 */
}
END_TEST

/* Encoding a product's truncation: trunc(enc(a) * enc(b), f) is within one
 * grid unit of enc(a*b), the use the protocols make of it. */
START_TEST(test_trunc_product) {
  uint64_t seed = 0x9a9a;
  const unsigned f = KERN_FIX_FRAC_DEFAULT;
  for (int i = 0; i < 1000; i++) {
    double a = (unit(&seed) - 0.5) * 200.0, b = (unit(&seed) - 0.5) * 200.0;
    double ab = a * b;
    uint64_t za, zb, zab, p;
    ck_assert_int_eq(kern_fix_encode(&za, &a, 1, f, NULL), 0);
    ck_assert_int_eq(kern_fix_encode(&zb, &b, 1, f, NULL), 0);
    ck_assert_int_eq(kern_fix_encode(&zab, &ab, 1, f, NULL), 0);
    kern_mul(&p, &za, &zb, 1);
    kern_trunc(&p, &p, 1, f);
    int64_t diff = (int64_t)(p - zab);
    /* Each input's rounding error (half a unit) is multiplied by the other
     * input (at most 100), plus one unit each for the shift and zab. */
    ck_assert_msg(diff >= -128 && diff <= 128, "a=%a b=%a diff=%lld", a, b,
                  (long long)diff);
  }
}
END_TEST

Suite *fixed_suite(void) {
  Suite *s = suite_create("fixed");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_encode_simple);
  tcase_add_test(tc, test_encode_half_even);
  tcase_add_test(tc, test_encode_range);
  tcase_add_test(tc, test_invalid_frac);
  tcase_add_test(tc, test_decode_edges);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_trunc);
  tcase_add_test(tc, test_trunc_product);
  suite_add_tcase(s, tc);
  return s;
}
