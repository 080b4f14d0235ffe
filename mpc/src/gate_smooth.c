/* gate_smooth.c - smooth functions (sigmoid, tanh, exp, erf, GELU in both
 * forms, reciprocal, inverse square root, square root) as one FSS gate each:
 * a piecewise cubic selected by comparisons on the public masked input, after
 * Boyle et al. (Eurocrypt 2021, FSS splines), LLAMA (PETS 2022) and Sigma
 * (PETS 2024). It sits beside gate_fss.c (ReLU, truncation, max) and uses the
 * same DCF kernel and the same opening.
 *
 * The arithmetic. As in gate_fss.c, the parties hold the public
 * x = y^ + 2^L = u + r mod 2^(L+1), u = y + 2^L, |y| < 2^(L-1) (one bit of
 * margin), y at scale 2^(scale f). The pieces read q = min(f, 16) fractional
 * bits of the input, so the gate drops s = scale f - q low bits: with
 * m = L + 1 - s, X = (x >> s) mod 2^m and R = (r >> s) mod 2^m,
 *   U = X - R + 2^m w,  w = [X < R],
 * equals (u >> s) + c_s (c_s the carry of the low s bits, 0 when s = 0), an
 * exact integer in [2^(m-2) - 1, 3 2^(m-2) + 1]: the input to within one
 * unit of 2^-q (exact when s = 0, i.e. a scale-1 input at f <= 16).
 *
 * Each function is a list of breakpoints b_0 < ... < b_n (multiples of
 * 2^-10): below b_0 and from b_n on it is a line a + b t (a clamp, or the
 * identity for GELU), on each [b_(i-1), b_i) a cubic fitted by Chebyshev
 * interpolation in tau = t - c_i (c_i the piece's centre on the 2^-q grid).
 * The pieces are public: the dealer and both parties round each one's
 * coefficients alike, for the integer variable T = U - Z_i, Z_i = 2^(m-1) + c_i 2^q, at the output's fout fractional bits:
 *   P_i(T) = sum_k round(p_ik 2^(fout - q k)) T^k  ~  f(t) 2^fout.
 * As polynomials in U, Q_i(U) = P_i(U - Z_i) (exact integers in the ring),
 * the output is, with thresholds T_j = 2^(m-1) + b_j 2^q and
 * L_j = [U < T_j] (j = 1 .. k-1 over the k kept pieces),
 *   Q_(k-1)(U) + sum_j L_j G_j(U),   G_j = Q_(j-1) - Q_j.
 * One key answers every comparison (the multiple interval containment of
 * Boyle et al., Eurocrypt 2021): with X_j = (X - T_j) mod 2^m and
 * c_j = [X < T_j] public, L_j = c_j + [X_j < R] - w, and U is X - R when
 * w = 0, X + 2^m - R when w = 1. So
 *   c_j = 1:  L_j (1 - w) = 1 - w,             L_j w = [X_j < R]
 *   c_j = 0:  L_j (1 - w) = [X_j < R] - w,     L_j w = 0
 * (X_j > X exactly when c_j = 1, and then [X_j < R][X < R] = [X_j < R];
 * when c_j = 0, X_j < X and the product is w). Every term is a comparison
 * with R at a public point times a power of R, times a polynomial of
 * public coefficients: G_j(X - R) = sum_s A_js(X) R^s. The dealer gives
 * each element ONE DCF on m bits, alpha = R, payload (1, R, R^2, R^3), and
 * shares of R, R^2 and R^3; each party evaluates its key at X (which gives
 * w R^s) and at the k - 1 points X_j, and adds, with j* the first j whose
 * c_j is 1,
 *   Q_(j*-1)(X - R) (1 - w) + Q_(k-1)(X + 2^m - R) w
 *   + sum_(j < j*) G_j(X - R) ([X_j < R] - w) + sum_(j >= j*) G_j(X + 2^m - R) [X_j < R]
 * term by term in the shares of R^s, w R^s and [X_j < R] R^s (the first
 * two sums telescope Q_(k-1) + sum_(j >= j*) G_j (1 - w)). The result is
 * P_i(U - Z_i) exactly, as when each threshold had its own DCF of payload
 * V_(j-1) - V_j (the form before 2026-12-07), with one key where there
 * were k: 16 + (m - 1) 48 + 64 bytes an element (1,232 at m = 25) against
 * k times that (GELU: k = 17). Evaluation is the same k walks of the tree
 * (kern_dcf_eval_pts reads the key k times while it is in cache);
 * generation is one key's where it was k. Breakpoints outside the input's
 * bound (the model owner's magnitude analysis) never cross the valid U and
 * are dropped, so a narrow input takes fewer points. A key evaluated at
 * several points reveals no more than at one: alone it is pseudorandom
 * whatever it is evaluated at (dcf.c), and the points are public.
 *
 * Rounds: the opening of y (none when y is already a masked value), then the
 * plan truncates the result exactly from fout to f bits (gate_fss.c's
 * truncation, one round): two in all, like a ReLU followed by its opening.
 * The error over the whole domain is the fit's (breakpoint tables below
 * were made for it), the coefficients' rounding (included when the tables
 * were made, at fout), one unit of 2^-q in the input when s > 0, and the
 * final floor: the README and tests/mpc/test_smooth.c state and check each.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

#define SM_W 4u /* coefficients per piece (cubic) */

static uint64_t mask_bits(unsigned b) { return b >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << b) - 1; }

/* Breakpoints, chosen greedily (widest pieces whose fitted cubic with its
 * rounded coefficients stays within 1e-4 absolute, or 1e-3 relative for
 * the reciprocal and inverse square root, 1e-3 absolute for the square
 * root) on the 2^-10 grid. */
static const double bp_sigmoid[] = {-16,   -8.625, -6.625, -5.5, -4.25, -2.75, -1.5, -0.5,
                                    0.75,  1.75,   3.125,  4.75, 6.125, 7.75,  11.625, 16};
static const double bp_tanh[] = {-8,  -4.625, -3.25, -2.125, -1.375, -0.75, -0.25,
                                 0.25, 0.75,  1.625, 2.5,    3.625,  4.875, 8};
static const double bp_exp[] = {-16,    -8.625, -6.625, -5.5, -4.25,
                                -3.125, -2.125, -1.125, -0.375, 0};
static const double bp_erf[] = {-4, -2.75, -2, -1.375, -0.75, -0.25, 0.375, 0.875,
                                1.625, 2.25, 3.375, 4};
static const double bp_gelu[] = {-6,    -4,    -3.375, -2.75, -2,    -1.375, -0.875, -0.25,
                                 0.375, 1.25,  1.875,  2.5,   3.125, 3.75,   4.875,  6};
static const double bp_gelut[] = {-6,    -3.875, -3.375, -2.75, -2,    -1.375, -0.875, -0.25,
                                  0.375, 1.25,   1.875,  2.5,   3.125, 3.75,   5.125,  6};
static const double bp_recip[] = {0.25,  0.453125, 0.8125, 1.4375, 2.25,  3.5,   4.25,  5,
                                  6,     7.25,     8.75,   10.25,  12.25, 14.75, 17.75, 20.75,
                                  24.75, 29.75,    35.75,  41.75,  49.75, 59.75, 64};
static const double bp_rsqrt[] = {0.00390625,    0.005859375,   0.009765625,
                                  0.015625,      0.0341796875,  0.0751953125,  0.1650390625,
                                  0.3681640625,  0.8212890625,  1.5712890625,  2.5087890625,
                                  3.2587890625,  4.2587890625,  5.5087890625,  7.2587890625,
                                  9.5087890625,  12.5087890625, 16.5087890625, 21.5087890625,
                                  28.5087890625, 37.5087890625, 49.5087890625, 64};
static const double bp_sqrt[] = {0,             0.0009765625,  0.0107421875,  0.0712890625,
                                 0.2861328125,  0.5361328125,  0.9111328125,  1.4736328125,
                                 2.2861328125,  3.4111328125,  5.0361328125,  7.2861328125,
                                 10.2861328125, 14.2861328125, 19.2861328125, 25.2861328125,
                                 33.2861328125, 43.2861328125, 55.2861328125, 64};

/* Exp on [-16, 4] (a graph's Exp node): the output's range (e^4 ~ 55)
 * leaves fout = 54 bits, so the cubic coefficient's resolution is 2^-6 of
 * its unit: pieces of 1/2 (1/4 on [-2, 0], where the cubic term is
 * largest against the 2e-4 bound) keep its rounding under 1.2e-4 (relative
 * on (0, 4]); exp(4) from 4 on. */
static const double bp_exp_wide[] = {-16,  -12,   -10,  -8,    -7,   -6,    -5.5, -5,
                                     -4.5, -4,    -3.5, -3,    -2.5, -2,    -1.75, -1.5,
                                     -1.25, -1,   -0.75, -0.5, -0.25, 0,    0.5,  1,
                                     1.5,  2,     2.5,  3,     3.5,  4};
/* The reciprocal on both signs: bp_recip mirrored (pieces hold their left
 * end, so the negative side's last one ends 2^-10 past -1/4; the piece
 * across 0 is outside the domain). */
static const double bp_recip_signed[] = {
    -64,   -59.75, -49.75, -41.75, -35.75,   -29.75, -24.75, -20.75, -17.75, -14.75,
    -12.25, -10.25, -8.75,  -7.25,  -6,       -5,     -4.25,  -3.5,   -2.25,  -1.4375,
    -0.8125, -0.453125, -0.2490234375, 0.25, 0.453125, 0.8125, 1.4375, 2.25,  3.5,    4.25,
    5,      6,     7.25,   8.75,   10.25,    12.25,  14.75,  17.75,  20.75,  24.75,
    29.75,  35.75, 41.75,  49.75,  59.75,    64};

typedef struct {
  const double *bp;
  size_t nbp;
  double la, lb, ra, rb; /* t < bp[0]: la + lb t; t >= bp[n-1]: ra + rb t */
} sm_fn_t;

#define BP(a) a, sizeof a / sizeof a[0]

/* NULL for an op that is not smooth. */
static const sm_fn_t *sm_fn(int op) {
  static const sm_fn_t fns[] = {
      {BP(bp_sigmoid), 0, 0, 1, 0}, /* SIGMOID */
      {BP(bp_tanh), -1, 0, 1, 0},   /* TANH */
      {BP(bp_exp), 0, 0, 1, 0},     /* EXP: 0 below -16, 1 for x > 0 */
      {BP(bp_erf), -1, 0, 1, 0},    /* ERF */
      {BP(bp_gelu), 0, 0, 0, 1},    /* GELU: 0, then the identity */
      {BP(bp_gelut), 0, 0, 0, 1},   /* GELU_TANH */
      {BP(bp_recip), 4, 0, 1.0 / 64, 0},
      {BP(bp_rsqrt), 16, 0, 0.125, 0},
      {BP(bp_sqrt), 0, 0, 8, 0},
  };
  static const double bp_ramp6[] = {6};
  static const sm_fn_t wide[] = {
      {BP(bp_exp_wide), 0, 0, 54.598150033144236, 0}, /* 0 below -16, exp(4) above 4 */
      {BP(bp_recip_signed), -1.0 / 64, 0, 1.0 / 64, 0},
      {BP(bp_gelu), 0, 0, 0, 0},  /* GELU_IN: GELU's pieces, 0 outside */
      {BP(bp_gelut), 0, 0, 0, 0}, /* GELUT_IN */
      {BP(bp_ramp6), 0, 0, 0, 1}, /* RAMP6: 0, then the identity from 6 */
  };
  if (op >= (int)MPC__FN_EXP_WIDE && op <= (int)MPC__FN_RAMP6)
    return &wide[op - (int)MPC__FN_EXP_WIDE];
  if (op < (int)MPC_OP_SIGMOID || op > (int)MPC_OP_SQRT)
    return NULL;
  return &fns[op - (int)MPC_OP_SIGMOID];
}

mpc_op_t mpc__smooth_node_fn(mpc_op_t op) {
  return op == MPC_OP_EXP     ? MPC__FN_EXP_WIDE
         : op == MPC_OP_RECIP ? MPC__FN_RECIP_SIGNED
                              : op;
}

int mpc_op_is_smooth(mpc_op_t op) {
  return op >= MPC_OP_SIGMOID && op <= MPC_OP_SQRT;
}

static double gelu_tanh(double x) {
  return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

double mpc__smooth_float(mpc_op_t op, double x) {
  if (op == MPC__FN_EXP_WIDE)
    return exp(x);
  if (op == MPC__FN_RECIP_SIGNED)
    return 1 / x;
  if (op == MPC__FN_GELU_IN)
    return x < 6 ? mpc__smooth_float(MPC_OP_GELU, x) : 0;
  if (op == MPC__FN_GELUT_IN)
    return x < 6 ? gelu_tanh(x) : 0;
  if (op == MPC__FN_RAMP6)
    return x < 6 ? 0 : x;
  switch (op) {
  case MPC_OP_SIGMOID:
    return 1 / (1 + exp(-x));
  case MPC_OP_TANH:
    return tanh(x);
  case MPC_OP_EXP:
    return exp(x);
  case MPC_OP_ERF:
    return erf(x);
  case MPC_OP_GELU:
    return 0.5 * x * (1 + erf(x / sqrt(2.0)));
  case MPC_OP_GELU_TANH:
    return gelu_tanh(x);
  case MPC_OP_RECIP:
    return 1 / x;
  case MPC_OP_RSQRT:
    return 1 / sqrt(x);
  case MPC_OP_SQRT:
    return sqrt(x);
  default:
    return NAN;
  }
}

/* The private form's domains bound these: exp is taken on x <= 0 (a graph's
 * Exp node on x <= 4), the reciprocal on [1/4, 64] (a graph's on both
 * signs), the inverse square root on [1/256, 64] (the gate clamps outside
 * them). */
double mpc__smooth_mag(mpc_op_t op, double b) {
  b = fabs(b);
  if (op == MPC__FN_EXP_WIDE)
    return exp(b < 4 ? b : 4);
  if (op == MPC__FN_RECIP_SIGNED)
    return 4;
  if (op == MPC__FN_GELU_IN || op == MPC__FN_GELUT_IN)
    return b < 6 ? (b > 0.17 ? b : 0.17) : 6; /* |GELU(x)| <= |x| for x > 0 */
  if (op == MPC__FN_RAMP6)
    return b < 6 ? 0 : b;
  switch (op) {
  case MPC_OP_TANH:
    return tanh(b);
  case MPC_OP_ERF:
    return erf(b);
  case MPC_OP_GELU:
  case MPC_OP_GELU_TANH:
    return b > 0.17 ? b : 0.17; /* |GELU(x)| <= max(|x|, 0.17) */
  case MPC_OP_RECIP:
    return 4;
  case MPC_OP_RSQRT:
    return 16;
  case MPC_OP_SQRT:
    return sqrt(b);
  case MPC_OP_SIGMOID:
  case MPC_OP_EXP:
    return 1;
  default:
    return NAN;
  }
}

unsigned mpc__smooth_q(unsigned f) { return f < 10 ? 0 : f > 16 ? 16 : f; }

/* At most 58 (the tables' precision), and the output plus the truncation's
 * margin within 61 bits. */
unsigned mpc__smooth_fout(mpc_op_t op, int out_log2, unsigned f) {
  (void)op;
  int e = out_log2 < 1 ? 1 : out_log2;
  int fo = 60 - e;
  if (fo > 58)
    fo = 58;
  return fo > (int)f ? (unsigned)fo : 0;
}

/* The kept breakpoints [*j0, *j1) of fn: those the input, |y| < 2^(L-1) at
 * s dropped bits, can cross (|b_j| 2^q <= 2^(m-2) + 1). */
static void sm_kept(const sm_fn_t *fn, unsigned q, unsigned m, size_t *j0, size_t *j1) {
  double lim = ldexp(1.0, (int)m - 2) + 1;
  size_t a = 0, b = fn->nbp;
  while (a < fn->nbp && fabs(ldexp(fn->bp[a], (int)q)) > lim && fn->bp[a] < 0)
    a++;
  while (b > a && fabs(ldexp(fn->bp[b - 1], (int)q)) > lim && fn->bp[b - 1] > 0)
    b--;
  *j0 = a;
  *j1 = b;
}

static unsigned sm_m(const mpc__gate_t *g) { return g->bound + 1 - g->shift; }

void mpc__smooth_sizes(const mpc__gate_t *g, unsigned f, size_t n, size_t *ncorr,
                       size_t *nkey, unsigned *dcf_bits, size_t *npts) {
  const sm_fn_t *fn = sm_fn(g->fn);
  size_t j0 = 0, j1 = 0;
  if (fn != NULL)
    sm_kept(fn, mpc__smooth_q(f), sm_m(g), &j0, &j1);
  *ncorr = g->keyfrom ? 0 : (SM_W - 1) * n; /* R, R^2, R^3 */
  *nkey = g->keyfrom ? 0 : kern_dcf_key_bytes(sm_m(g), SM_W) * n;
  if (dcf_bits != NULL)
    *dcf_bits = sm_m(g);
  if (npts != NULL)
    *npts = j1 - j0 + 1;
}

/* The integer coefficients of piece i (0: the left line, nbp: the right
 * line) in T = U - Z_i at fout bits, and its centre C_i = c_i 2^q. */
static void sm_piece(const sm_fn_t *fn, int op, size_t i, unsigned q, unsigned fout,
                     int64_t b[SM_W], int64_t *C) {
  double p[SM_W] = {0, 0, 0, 0};
  double c = 0;
  if (i == 0 || i == fn->nbp) {
    p[0] = i == 0 ? fn->la : fn->ra;
    p[1] = i == 0 ? fn->lb : fn->rb;
  } else {
    double lo = fn->bp[i - 1], hi = fn->bp[i], xs[SM_W], d[SM_W];
    c = ldexp(round(ldexp(0.5 * (lo + hi), (int)q)), -(int)q);
    for (unsigned j = 0; j < SM_W; j++) {
      xs[j] = 0.5 * (lo + hi) + 0.5 * (hi - lo) * cos(M_PI * (2 * j + 1) / (2 * SM_W)) - c;
      d[j] = mpc__smooth_float((mpc_op_t)op, xs[j] + c);
    }
    /* Newton's divided differences, then the monomial form in tau. */
    for (unsigned j = 1; j < SM_W; j++)
      for (unsigned k = SM_W - 1; k >= j; k--)
        d[k] = (d[k] - d[k - 1]) / (xs[k] - xs[k - j]);
    p[0] = d[SM_W - 1];
    for (int j = (int)SM_W - 2; j >= 0; j--) {
      for (int k = (int)SM_W - 1; k >= 1; k--)
        p[k] = p[k - 1] - p[k] * xs[j];
      p[0] = d[j] - p[0] * xs[j];
    }
  }
  for (unsigned k = 0; k < SM_W; k++)
    b[k] = (int64_t)llround(ldexp(p[k], (int)fout - (int)(q * k)));
  *C = (int64_t)llround(ldexp(c, (int)q));
}

/* V = the coefficients in X of P(X - A), P with coefficients b. */
static void sm_expand(const uint64_t b[SM_W], uint64_t A, uint64_t V[SM_W]) {
  uint64_t a = (uint64_t)0 - A, a2 = a * a;
  V[0] = b[0] + b[1] * a + b[2] * a2 + b[3] * a2 * a;
  V[1] = b[1] + 2 * b[2] * a + 3 * b[3] * a2;
  V[2] = b[2] + 3 * b[3] * a;
  V[3] = b[3];
}

/* A = the coefficients in R of H(X - R), H with coefficients h in U:
 * A_s = (-1)^s sum_(t >= s) binom(t, s) h_t X^(t - s). */
static void sm_at(const uint64_t h[SM_W], uint64_t X, uint64_t A[SM_W]) {
  uint64_t X2 = X * X;
  A[0] = h[0] + h[1] * X + h[2] * X2 + h[3] * X2 * X;
  A[1] = (uint64_t)0 - (h[1] + 2 * h[2] * X + 3 * h[3] * X2);
  A[2] = h[2] + 3 * h[3] * X;
  A[3] = (uint64_t)0 - h[3];
}

/* The public tables of a gate, the same at both parties: the kept
 * thresholds in U-space T_1 < ... < T_(k-1) and the pieces Q_0 .. Q_(k-1)
 * as polynomials in U (Q_i(U) = P_i(U - Z_i), exact in the ring), with
 * G_j = Q_(j-1) - Q_j for j = 1 .. k-1. */
typedef struct {
  size_t k;            /* pieces, = points evaluated per element */
  unsigned m, s;
  uint64_t (*Q)[SM_W]; /* k pieces */
  uint64_t (*G)[SM_W]; /* G[j], j = 1 .. k-1 (G[0] unused) */
  uint64_t *T;         /* T[j], j = 1 .. k-1 (T[0] unused) */
} sm_tab_t;

static void sm_tab_close(sm_tab_t *t) {
  free(t->Q);
  free(t->G);
  free(t->T);
}

static int sm_tab_init(sm_tab_t *t, const mpc__gate_t *g, unsigned f) {
  unsigned q = mpc__smooth_q(f);
  const sm_fn_t *fn = sm_fn(g->fn);
  size_t j0, j1;
  memset(t, 0, sizeof *t);
  if (fn == NULL || q == 0)
    return TANDEM_EINVAL;
  t->m = sm_m(g);
  t->s = g->shift;
  sm_kept(fn, q, t->m, &j0, &j1);
  t->k = j1 - j0 + 1;
  t->Q = calloc(t->k, sizeof *t->Q);
  t->G = calloc(t->k, sizeof *t->G);
  t->T = calloc(t->k, sizeof *t->T);
  if (t->Q == NULL || t->G == NULL || t->T == NULL) {
    sm_tab_close(t);
    return TANDEM_ENOMEM;
  }
  const uint64_t half = (uint64_t)1 << (t->m - 1);
  for (size_t i = 0; i < t->k; i++) {
    int64_t b[SM_W], C;
    uint64_t bu[SM_W];
    sm_piece(fn, g->fn, j0 + i, q, g->fout, b, &C);
    for (unsigned c = 0; c < SM_W; c++)
      bu[c] = (uint64_t)b[c];
    sm_expand(bu, half + (uint64_t)C, t->Q[i]);
    if (i > 0) {
      t->T[i] = half + (uint64_t)(int64_t)llround(ldexp(fn->bp[j0 + i - 1], (int)q));
      for (unsigned c = 0; c < SM_W; c++)
        t->G[i][c] = t->Q[i - 1][c] - t->Q[i][c];
    }
  }
  return 0;
}

/* The dealer's half: per element one DCF of m bits, alpha = R, payload
 * (1, R, R^2, R^3), and P1's shares of R, R^2, R^3 (P0's come from its
 * PRG). */
static int sm_deal(const mpc__gate_t *g, mpc__dealer_t *d, size_t n,
                   const uint64_t *r) {
  const unsigned m = sm_m(g);
  const uint64_t mm = mask_bits(m);
  uint64_t *alpha = mpc__calloc(n + 1, sizeof *alpha);
  uint64_t *beta = mpc__calloc(SM_W * n + 1, sizeof *beta);
  uint64_t *cst = mpc__calloc((SM_W - 1) * n + 1, sizeof *cst);
  int rc = TANDEM_ENOMEM;
  if (alpha == NULL || beta == NULL || cst == NULL)
    goto done;
  for (size_t i = 0; i < n; i++) {
    uint64_t R = (r[i] >> g->shift) & mm;
    alpha[i] = R;
    beta[SM_W * i] = 1;
    for (unsigned c = 1; c < SM_W; c++)
      beta[SM_W * i + c] = cst[(SM_W - 1) * i + c - 1] = beta[SM_W * i + c - 1] * R;
  }
  if ((rc = mpc__deal_fixed(d, cst, (SM_W - 1) * n)) < 0)
    goto done;
  uint8_t *k0, *k1;
  if ((rc = mpc__deal_keys(d, kern_dcf_key_bytes(m, SM_W) * n, &k0, &k1)) < 0)
    goto done;
  rc = kern_dcf_gen(&d->coins, m, SM_W, n, alpha, beta, k0, k1);
done:
  mpc__wipe_free(alpha, (n + 1) * sizeof *alpha);
  mpc__wipe_free(beta, (SM_W * n + 1) * sizeof *beta);
  mpc__wipe_free(cst, ((SM_W - 1) * n + 1) * sizeof *cst);
  return rc;
}

int mpc__smooth_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d) {
  size_t n = p->vals[g->out].n;
  if (g->keyfrom) /* the earlier gate's key serves */
    return 0;
  if (g->rounds == 0) /* opens nothing: the input's own mask */
    return sm_deal(g, d, n, d->mask[g->in[0]]);
  uint64_t *r = mpc__calloc(n + 1, sizeof *r);
  if (r == NULL)
    return TANDEM_ENOMEM;
  int rc = mpc__deal_rand(d, r, n);
  if (rc == 0)
    rc = sm_deal(g, d, n, r);
  mpc__wipe_free(r, (n + 1) * sizeof *r);
  return rc;
}

int mpc__smooth_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                        mpc__prep_t *prep) {
  mpc__gstate_t *gs = &pt->gs[g - p->gates];
  size_t n = p->vals[g->out].n;
  int rc;
  if (g->keyfrom)
    return 0;
  if (g->rounds &&
      ((rc = mpc__gstate_pre(gs, n)) < 0 || (rc = mpc__prep_rand(prep, gs->pre, n)) < 0))
    return rc;
  if (gs->consts == NULL) {
    if ((gs->consts = mpc__calloc((SM_W - 1) * n + 1, sizeof *gs->consts)) == NULL)
      return TANDEM_ENOMEM;
    gs->nconsts = (SM_W - 1) * n + 1;
  }
  if ((rc = mpc__prep_fixed(prep, gs->consts, (SM_W - 1) * n)) < 0)
    return rc;
  gs->keys = mpc__prep_keys(prep, g->nkey);
  return gs->keys == NULL && g->nkey ? TANDEM_EPROTO : 0;
}

int mpc__smooth_send(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                     uint64_t *out) {
  const mpc__gstate_t *gs = &pt->gs[g - p->gates];
  mpc__share_of(p, pt, g->in[0], out);
  kern_add(out, out, gs->pre, p->vals[g->out].n);
  return 0;
}

/* The online buffers, kept with the party (as gate_fss.c's): X (n), the
 * points point by point (k n) and the DCF outputs (SM_W k n). */
static uint64_t *sm_work(mpc__gstate_t *gs, size_t n, size_t k) {
  size_t words = n + (1 + SM_W) * k * n + 1;
  if (gs->nwork < words) {
    mpc__wipe_free(gs->work, gs->nwork * 8);
    gs->work = mpc__calloc(words, 8);
    gs->nwork = gs->work != NULL ? words : 0;
  }
  return gs->work;
}

/* One element's share of Q_pc(U) from its DCF outputs e (point j's four
 * words at e + j * SM_W * n), its shares rs of (1, R, R^2, R^3) and the
 * public X; the sums are the header's, j* the first threshold above X. */
static uint64_t sm_combine(const sm_tab_t *t, uint64_t X, const uint64_t *e, size_t n,
                           const uint64_t rs[SM_W]) {
  const uint64_t XM = X + ((uint64_t)1 << t->m);
  uint64_t A[SM_W], ex[SM_W], acc = 0;
  size_t js = 1;
  while (js < t->k && X >= t->T[js])
    js++;
  memcpy(ex, e, sizeof ex);
  /* Q_(j*-1)(X - R) (1 - w) and Q_(k-1)(X + 2^m - R) w. */
  sm_at(t->Q[js - 1], X, A);
  for (unsigned c = 0; c < SM_W; c++)
    acc += A[c] * (rs[c] - ex[c]);
  sm_at(t->Q[t->k - 1], XM, A);
  for (unsigned c = 0; c < SM_W; c++)
    acc += A[c] * ex[c];
  for (size_t j = 1; j < t->k; j++) {
    const uint64_t *ej = e + j * SM_W * n;
    if (j < js) { /* X >= T_j: G_j(X - R) [U < T_j] (1 - w) */
      sm_at(t->G[j], X, A);
      for (unsigned c = 0; c < SM_W; c++)
        acc += A[c] * (ej[c] - ex[c]);
    } else { /* X < T_j: G_j(X + 2^m - R) [U < T_j] w */
      sm_at(t->G[j], XM, A);
      for (unsigned c = 0; c < SM_W; c++)
        acc += A[c] * ej[c];
    }
  }
  return acc;
}

int mpc__smooth_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                       const uint64_t *mine, const uint64_t *theirs) {
  mpc__gstate_t *gs = &pt->gs[g - p->gates];
  size_t n = p->vals[g->out].n;
  sm_tab_t t;
  int rc = sm_tab_init(&t, g, p->f);
  if (rc < 0)
    return rc;
  const size_t k = t.k;
  uint64_t *work = sm_work(gs, n, k);
  if (work == NULL) {
    sm_tab_close(&t);
    return TANDEM_ENOMEM;
  }
  uint64_t *yhat = work, *x = work + n, *e = x + k * n;
  if (g->rounds)
    kern_add(yhat, mine, theirs, n);
  else
    memcpy(yhat, pt->slot[g->in[0]].pub, n * sizeof *yhat);
  const uint64_t two_l = (uint64_t)1 << g->bound, mm = mask_bits(t.m);
  for (size_t i = 0; i < n; i++) {
    uint64_t X = ((yhat[i] + two_l) >> g->shift) & mm;
    yhat[i] = X;
    x[i] = X;
    for (size_t j = 1; j < k; j++)
      x[j * n + i] = (X - t.T[j]) & mm;
  }
  /* A gate sharing an earlier one's key: the same mask, so the same key. */
  const mpc__gstate_t *ks = g->keyfrom ? &pt->gs[g->keyfrom - 1] : gs;
  rc = kern_dcf_eval_pts(pt->self, t.m, SM_W, n, k, ks->keys, x, e);
  if (rc == 0) {
    uint64_t *z = pt->slot[g->out].sh;
    for (size_t i = 0; i < n; i++) {
      uint64_t rs[SM_W];
      rs[0] = pt->self == 0;
      memcpy(rs + 1, ks->consts + (SM_W - 1) * i, (SM_W - 1) * sizeof *rs);
      z[i] = sm_combine(&t, yhat[i], e + SM_W * i, n, rs);
    }
  }
  sm_tab_close(&t);
  return rc;
}
