/* ring.c - element-wise arithmetic over the ring Z_2^64 (kern_add, kern_sub,
 * kern_neg, kern_scale, kern_mul), the portable reference and the only variant.
 *
 * These kernels sit under every share operation of mpc/ (adding masks, forming
 * Beaver corrections, local linear gates). They are memory-bound: one load or
 * two and one store per element, so the plain loops below, which the compiler
 * vectorises at -O2 and above, run at memory speed and need no hand-written
 * AVX2 or AVX-512 variant. Unsigned arithmetic in C wraps modulo 2^64 by
 * definition, which is exactly the ring operation, so no care is needed about
 * overflow. The output may alias an input: each loop reads element i before it
 * writes element i and never touches any other index, so an in-place call
 * (z == x or z == y) is correct. The pointers are therefore not restrict; the
 * compiler adds a run-time overlap check in front of its vector loop.
 */
#include "kern.h"

void kern_add(uint64_t *z, const uint64_t *x, const uint64_t *y, size_t n) {
  for (size_t i = 0; i < n; i++)
    z[i] = x[i] + y[i];
}

void kern_sub(uint64_t *z, const uint64_t *x, const uint64_t *y, size_t n) {
  for (size_t i = 0; i < n; i++)
    z[i] = x[i] - y[i];
}

void kern_neg(uint64_t *z, const uint64_t *x, size_t n) {
  /* 0 - x rather than -x: the same value, without a unary minus on an
   * unsigned operand, which some compilers warn about. */
  for (size_t i = 0; i < n; i++)
    z[i] = 0 - x[i];
}

void kern_scale(uint64_t *z, const uint64_t *x, uint64_t c, size_t n) {
  for (size_t i = 0; i < n; i++)
    z[i] = c * x[i];
}

void kern_mul(uint64_t *z, const uint64_t *x, const uint64_t *y, size_t n) {
  for (size_t i = 0; i < n; i++)
    z[i] = x[i] * y[i];
}
