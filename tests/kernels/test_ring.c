/* test_ring.c - Check suite for the element-wise ring operations over
 * Z_2^64 (kernels/src/ref/ring.c).
 *
 * Each operation is compared with the obvious scalar formula on random
 * vectors of lengths around the vector widths the compiler may use (0, 1,
 * 3, 4, 7, 8, 9, ..., 1001), on the values where wrapping matters (0, 1,
 * 2^63, 2^64 - 1, 2^32), and called in place with the output aliasing one or
 * both inputs. A guard element after each output checks that nothing past n
 * is written. Operands come from splitmix64 with fixed seeds.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "../test_rand.h"

#define GUARD 0xa5a5a5a5a5a5a5a5ull

enum { OP_ADD, OP_SUB, OP_NEG, OP_SCALE, OP_MUL, NOPS };
static const char *const op_names[NOPS] = {"add", "sub", "neg", "scale", "mul"};

/* The scalar definition of each operation. */
static uint64_t scalar(int op, uint64_t x, uint64_t y, uint64_t c) {
  switch (op) {
  case OP_ADD:
    return x + y;
  case OP_SUB:
    return x - y;
  case OP_NEG:
    return (uint64_t)0 - x;
  case OP_SCALE:
    return c * x;
  default:
    return x * y;
  }
}

static void run(int op, uint64_t *z, const uint64_t *x, const uint64_t *y,
                uint64_t c, size_t n) {
  switch (op) {
  case OP_ADD:
    kern_add(z, x, y, n);
    break;
  case OP_SUB:
    kern_sub(z, x, y, n);
    break;
  case OP_NEG:
    kern_neg(z, x, n);
    break;
  case OP_SCALE:
    kern_scale(z, x, c, n);
    break;
  default:
    kern_mul(z, x, y, n);
    break;
  }
}

static const size_t lengths[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31,
                                 32, 33, 63, 64, 65, 1000, 1001};
#define NLEN (sizeof lengths / sizeof lengths[0])

/* Random operands, every operation, every length, out of place. */
START_TEST(test_random) {
  for (size_t li = 0; li < NLEN; li++) {
    size_t n = lengths[li];
    uint64_t seed = 0x1234 + li;
    uint64_t *x = malloc((n + 1) * sizeof *x);
    uint64_t *y = malloc((n + 1) * sizeof *y);
    uint64_t *z = malloc((n + 1) * sizeof *z);
    ck_assert(x && y && z);
    for (size_t i = 0; i < n; i++) {
      x[i] = test_splitmix64(&seed);
      y[i] = test_splitmix64(&seed);
    }
    uint64_t c = test_splitmix64(&seed);
    for (int op = 0; op < NOPS; op++) {
      z[n] = GUARD;
      run(op, z, x, y, c, n);
      for (size_t i = 0; i < n; i++)
        ck_assert_msg(z[i] == scalar(op, x[i], y[i], c),
                      "%s n=%zu i=%zu seed=0x%zx", op_names[op], n, i,
                      (size_t)(0x1234 + li));
      ck_assert_msg(z[n] == GUARD, "%s n=%zu wrote past the end",
                    op_names[op], n);
    }
    free(x);
    free(y);
    free(z);
  }
}
END_TEST

/* Every pair of edge values, so each wraparound case is met. */
START_TEST(test_wrap_edges) {
  static const uint64_t e[] = {0,
                               1,
                               2,
                               0x7fffffffffffffffull,
                               0x8000000000000000ull,
                               0x8000000000000001ull,
                               0xfffffffffffffffeull,
                               0xffffffffffffffffull,
                               0x100000000ull,
                               0xffffffffull};
  enum { NE = sizeof e / sizeof e[0], N = NE * NE };
  uint64_t x[N], y[N], z[N];
  for (size_t i = 0; i < NE; i++)
    for (size_t j = 0; j < NE; j++) {
      x[i * NE + j] = e[i];
      y[i * NE + j] = e[j];
    }
  for (int op = 0; op < NOPS; op++) {
    for (size_t ci = 0; ci < NE; ci++) {
      run(op, z, x, y, e[ci], N);
      for (size_t i = 0; i < N; i++)
        ck_assert_msg(z[i] == scalar(op, x[i], y[i], e[ci]), "%s i=%zu c=%zu",
                      op_names[op], i, ci);
    }
  }
  /* A few results written out by hand, not through the scalar helper. */
  uint64_t a = UINT64_MAX, b = 1, r;
  kern_add(&r, &a, &b, 1);
  ck_assert_uint_eq(r, 0);
  a = 0;
  kern_sub(&r, &a, &b, 1);
  ck_assert_uint_eq(r, UINT64_MAX);
  a = 0x8000000000000000ull;
  kern_neg(&r, &a, 1);
  ck_assert_uint_eq(r, 0x8000000000000000ull);
  a = 0;
  kern_neg(&r, &a, 1);
  ck_assert_uint_eq(r, 0);
  a = 0x100000000ull;
  kern_mul(&r, &a, &a, 1);
  ck_assert_uint_eq(r, 0);
  a = 5;
  kern_scale(&r, &a, UINT64_MAX, 1);
  ck_assert_uint_eq(r, (uint64_t)0 - 5);
  a = 3;
  b = 0xaaaaaaaaaaaaaaabull; /* the inverse of 3 mod 2^64 */
  kern_mul(&r, &a, &b, 1);
  ck_assert_uint_eq(r, 1);
}
END_TEST

/* In place: z == x, z == y, and z == x == y. */
START_TEST(test_alias) {
  enum { N = 257 };
  uint64_t seed = 0xa11a5;
  uint64_t x0[N], y0[N], z[N], w[N];
  for (size_t i = 0; i < N; i++) {
    x0[i] = test_splitmix64(&seed);
    y0[i] = test_splitmix64(&seed);
  }
  const uint64_t c = 0x9e3779b97f4a7c15ull;
  for (int op = 0; op < NOPS; op++) {
    /* z aliases x */
    memcpy(z, x0, sizeof z);
    run(op, z, z, y0, c, N);
    for (size_t i = 0; i < N; i++)
      ck_assert_msg(z[i] == scalar(op, x0[i], y0[i], c), "%s z==x i=%zu",
                    op_names[op], i);
    /* z aliases y (only the binary operations read y) */
    if (op != OP_NEG && op != OP_SCALE) {
      memcpy(z, y0, sizeof z);
      run(op, z, x0, z, c, N);
      for (size_t i = 0; i < N; i++)
        ck_assert_msg(z[i] == scalar(op, x0[i], y0[i], c), "%s z==y i=%zu",
                      op_names[op], i);
    }
    /* z, x and y all the same array */
    memcpy(w, x0, sizeof w);
    run(op, w, w, w, c, N);
    for (size_t i = 0; i < N; i++)
      ck_assert_msg(w[i] == scalar(op, x0[i], x0[i], c), "%s z==x==y i=%zu",
                    op_names[op], i);
  }
}
END_TEST

/* Algebraic identities over a long vector: (x + y) - y == x, -(-x) == x,
 * x + (-x) == 0, scale by c equals mul by a vector of c. */
START_TEST(test_identities) {
  enum { N = 4099 };
  uint64_t *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  uint64_t *t = malloc(N * sizeof *t), *u = malloc(N * sizeof *u);
  ck_assert(x && y && t && u);
  uint64_t seed = 77;
  for (size_t i = 0; i < N; i++) {
    x[i] = test_splitmix64(&seed);
    y[i] = test_splitmix64(&seed);
  }
  kern_add(t, x, y, N);
  kern_sub(t, t, y, N);
  ck_assert(memcmp(t, x, N * sizeof *x) == 0);
  kern_neg(t, x, N);
  kern_neg(t, t, N);
  ck_assert(memcmp(t, x, N * sizeof *x) == 0);
  kern_neg(t, x, N);
  kern_add(t, t, x, N);
  for (size_t i = 0; i < N; i++)
    ck_assert_uint_eq(t[i], 0);
  const uint64_t c = 0xdeadbeefcafef00dull;
  for (size_t i = 0; i < N; i++)
    u[i] = c;
  kern_scale(t, x, c, N);
  kern_mul(u, u, x, N);
  ck_assert(memcmp(t, u, N * sizeof *t) == 0);
  free(x);
  free(y);
  free(t);
  free(u);
}
END_TEST

Suite *ring_suite(void) {
  Suite *s = suite_create("ring");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_random);
  tcase_add_test(tc, test_wrap_edges);
  tcase_add_test(tc, test_alias);
  tcase_add_test(tc, test_identities);
  suite_add_tcase(s, tc);
  return s;
}
