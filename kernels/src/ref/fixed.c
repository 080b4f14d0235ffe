/* fixed.c - fixed-point encoding, decoding and plain truncation (kern_fix_*,
 * kern_trunc), the portable reference and the only variant.
 *
 * A real v is carried through the MPC layers as the ring element
 * round-half-even(v * 2^f) in two's complement. The client encodes its inputs
 * and the model owner its weights here, and the client decodes the result, so
 * every party and every CPU must produce the same bits from the same doubles.
 * The encoder therefore never depends on the floating-point environment: it
 * multiplies by an exact power of two, splits off the integer part by a C
 * conversion (which truncates whatever the rounding mode), and rounds the exact
 * fractional remainder by explicit comparisons. Each of these operations is
 * exact in IEEE double, so neither x87 excess precision nor a fused
 * multiply-add could change a result; the build's -std=c11 also turns GCC's
 * contraction off (GCC ignores `#pragma STDC FP_CONTRACT` and warns about it,
 * so the pragma is not used). kern_trunc is the arithmetic right shift used
 * on values already opened in the clear, written with unsigned operations
 * because a right shift of a negative signed integer is implementation-defined
 * in C.
 */
#include "kern.h"

/* 2^KERN_FIX_BOUND_BITS as a double: the first scaled magnitude out of range. */
#define FIX_BOUND ((double)((uint64_t)1 << KERN_FIX_BOUND_BITS))

static int frac_ok(unsigned f) {
  return f >= KERN_FIX_FRAC_MIN && f <= KERN_FIX_FRAC_MAX;
}

/* Rounds the already scaled value v to the nearest integer, ties to even, as
 * a ring element. Returns 0, or TANDEM_ERANGE for a NaN, an infinity or
 * |v| >= 2^62. The single negated comparison catches all three: it is false
 * for NaN and for +-Inf. Inside the bound the conversion to int64_t is defined
 * and exact up to the discarded fraction, and v - t is exact because t holds
 * the leading bits of v. Above 2^52 every double is an integer, so the largest
 * in-range value, 2^62 - 512, cannot round up out of range. */
static int round_one(double v, uint64_t *out) {
  double a = v < 0 ? -v : v;
  if (!(a < FIX_BOUND))
    return TANDEM_ERANGE;
  int64_t i = (int64_t)v; /* truncates toward zero */
  double fr = v - (double)i;
  double af = fr < 0 ? -fr : fr;
  /* Away from zero by one when the remainder exceeds one half, or equals it
   * and the truncated integer is odd (ties to even). The parity is read
   * through the modular conversion to uint64_t, which is exact for negative
   * values too. */
  uint64_t up = (uint64_t)(af > 0.5) |
                ((uint64_t)(af == 0.5) & ((uint64_t)i & 1u));
  /* Conditional negation without a branch: (up ^ m) - m is -up when m is all
   * ones and up when m is zero. */
  uint64_t m = 0 - (uint64_t)(fr < 0);
  *out = (uint64_t)i + ((up ^ m) - m);
  return 0;
}

int kern_fix_encode(uint64_t *z, const double *x, size_t n, unsigned f,
                    size_t *bad) {
  if (!frac_ok(f))
    return TANDEM_EINVAL;
  const double scale = (double)((uint64_t)1 << f);
  for (size_t i = 0; i < n; i++) {
    if (round_one(x[i] * scale, &z[i]) != 0) {
      if (bad != NULL)
        *bad = i;
      return TANDEM_ERANGE;
    }
  }
  return 0;
}

int kern_fix_encode_f32(uint64_t *z, const float *x, size_t n, unsigned f,
                        size_t *bad) {
  if (!frac_ok(f))
    return TANDEM_EINVAL;
  const double scale = (double)((uint64_t)1 << f);
  for (size_t i = 0; i < n; i++) {
    /* float to double is exact, so a float input encodes exactly as the
     * double of the same value would. */
    if (round_one((double)x[i] * scale, &z[i]) != 0) {
      if (bad != NULL)
        *bad = i;
      return TANDEM_ERANGE;
    }
  }
  return 0;
}

/* The two's-complement reading of a ring element. Converting a uint64_t above
 * INT64_MAX to int64_t is implementation-defined, so negative values are
 * rebuilt from their one's complement, which is at most INT64_MAX. */
static int64_t as_signed(uint64_t v) {
  return v <= (uint64_t)INT64_MAX ? (int64_t)v : -(int64_t)~v - 1;
}

int kern_fix_decode(double *x, const uint64_t *z, size_t n, unsigned f) {
  if (!frac_ok(f))
    return TANDEM_EINVAL;
  /* 2^-f is exact and multiplying by it is exact (no result can be
   * subnormal), so the only rounding is the int64_t to double conversion:
   * the result is the correctly rounded quotient. */
  const double inv = 1.0 / (double)((uint64_t)1 << f);
  for (size_t i = 0; i < n; i++)
    x[i] = (double)as_signed(z[i]) * inv;
  return 0;
}

int kern_fix_decode_f32(float *x, const uint64_t *z, size_t n, unsigned f) {
  if (!frac_ok(f))
    return TANDEM_EINVAL;
  /* Converting straight to float (not through double) rounds once, so the
   * result is the correctly rounded quotient here too. */
  const float inv = 1.0f / (float)((uint64_t)1 << f);
  for (size_t i = 0; i < n; i++)
    x[i] = (float)as_signed(z[i]) * inv;
  return 0;
}

void kern_trunc(uint64_t *z, const uint64_t *x, size_t n, unsigned s) {
  /* The contract asks for s < 64 and the function cannot return an error. A
   * larger shift would be undefined behaviour in C, so it is clamped to 63,
   * which gives the mathematically right floor(x / 2^s) (0 or -1) for every
   * s >= 63 as well. */
  if (s > 63)
    s = 63;
  for (size_t i = 0; i < n; i++) {
    /* m is all ones for a negative value. For those, ~x is non-negative, its
     * logical shift equals its arithmetic shift, and complementing again
     * gives the arithmetic shift of x (floor division by 2^s). */
    uint64_t m = 0 - (x[i] >> 63);
    z[i] = ((x[i] ^ m) >> s) ^ m;
  }
}
