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
 * The dealer rounds each piece's coefficients for the integer variable
 * T = U - Z_i, Z_i = 2^(m-1) + c_i 2^q, at the output's fout fractional bits:
 *   P_i(T) = sum_k round(p_ik 2^(fout - q k)) T^k  ~  f(t) 2^fout.
 * In x-space the piece boundaries are the public thresholds
 * (R + 2^(m-1) + b_j 2^q) mod 2^m, and R itself (where w changes); between
 * two of them piece and w are constant, so U = X - A with A known to the
 * dealer, and P_i(X - A) is a cubic in the public X whose coefficient vector
 * V the dealer knows. Sorting the K thresholds t_1 < ... < t_K, the vector at
 * X is V_K + sum_j [X < t_j] (V_(j-1) - V_j): K DCFs on m bits of width 4
 * (payload V_(j-1) - V_j) and V_K shared as constants. Each party sums its
 * DCF outputs and constants into shares of the four coefficients and
 * evaluates sum_k c_k X^k mod 2^64 (Horner on public X): its share of
 * P_i(U - Z_i), exact in the ring. Breakpoints outside the input's bound
 * (the model owner's magnitude analysis) never cross the valid U and are
 * dropped, so a narrow input takes fewer comparisons.
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
                       size_t *nkey, unsigned *dcf_bits, size_t *ncmp) {
  const sm_fn_t *fn = sm_fn(g->fn);
  size_t j0 = 0, j1 = 0;
  if (fn != NULL)
    sm_kept(fn, mpc__smooth_q(f), sm_m(g), &j0, &j1);
  size_t k = j1 - j0 + 1;
  *ncorr = SM_W * n;
  *nkey = kern_dcf_key_bytes(sm_m(g), SM_W) * k * n;
  if (dcf_bits != NULL)
    *dcf_bits = sm_m(g);
  if (ncmp != NULL)
    *ncmp = k;
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
static void sm_expand(const int64_t b[SM_W], uint64_t A, uint64_t *V) {
  uint64_t a = (uint64_t)0 - A, a2 = a * a;
  uint64_t b0 = (uint64_t)b[0], b1 = (uint64_t)b[1], b2 = (uint64_t)b[2], b3 = (uint64_t)b[3];
  V[0] = b0 + b1 * a + b2 * a2 + b3 * a2 * a;
  V[1] = b1 + 2 * b2 * a + 3 * b3 * a2;
  V[2] = b2 + 3 * b3 * a;
  V[3] = b3;
}

/* The dealer's per-gate tables: the kept pieces' coefficients and centres. */
typedef struct {
  const sm_fn_t *fn;
  size_t j0, j1, k;   /* kept breakpoints, DCFs per element */
  unsigned m, s;
  int64_t (*b)[SM_W]; /* pieces j0 .. j1 */
  int64_t *C;
  uint64_t *P;        /* the kept breakpoints in U-space */
} sm_tab_t;

static int sm_tab_init(sm_tab_t *t, const mpc__gate_t *g, unsigned f) {
  unsigned q = mpc__smooth_q(f);
  memset(t, 0, sizeof *t);
  t->fn = sm_fn(g->fn);
  if (t->fn == NULL || q == 0)
    return TANDEM_EINVAL;
  t->m = sm_m(g);
  t->s = g->shift;
  sm_kept(t->fn, q, t->m, &t->j0, &t->j1);
  t->k = t->j1 - t->j0 + 1;
  t->b = calloc(t->k, sizeof *t->b);
  t->C = calloc(t->k, sizeof *t->C);
  t->P = calloc(t->k, sizeof *t->P);
  if (t->b == NULL || t->C == NULL || t->P == NULL)
    return TANDEM_ENOMEM;
  for (size_t i = 0; i < t->k; i++)
    sm_piece(t->fn, g->fn, t->j0 + i, q, g->fout, t->b[i], &t->C[i]);
  for (size_t j = t->j0; j < t->j1; j++)
    t->P[j - t->j0] =
        ((uint64_t)1 << (t->m - 1)) + (uint64_t)(int64_t)llround(ldexp(t->fn->bp[j], (int)q));
  return 0;
}

static void sm_tab_close(sm_tab_t *t) {
  free(t->b);
  free(t->C);
  free(t->P);
}

/* One element: alpha (k thresholds), beta (k x SM_W payloads) and the
 * constants (SM_W) for mask R (the m bits the gate reads). */
static void sm_deal_one(const sm_tab_t *t, uint64_t R, uint64_t *alpha, uint64_t *beta,
                        uint64_t *cst) {
  const uint64_t mm = mask_bits(t->m), two_m = t->m >= 64 ? 0 : (uint64_t)1 << t->m;
  const size_t k = t->k;
  alpha[0] = R;
  for (size_t j = 1; j < k; j++)
    alpha[j] = (R + t->P[j - 1]) & mm;
  for (size_t i = 1; i < k; i++) /* insertion sort: k is small */
    for (size_t j = i; j > 0 && alpha[j] < alpha[j - 1]; j--) {
      uint64_t tmp = alpha[j];
      alpha[j] = alpha[j - 1];
      alpha[j - 1] = tmp;
    }
  uint64_t prev[SM_W], V[SM_W];
  for (size_t iv = 0; iv <= k; iv++) {
    uint64_t X = iv == 0 ? 0 : alpha[iv - 1];
    uint64_t w = X < R, U = (X - R) & mm;
    size_t pc = 0;
    while (pc < k - 1 && t->P[pc] <= U)
      pc++;
    uint64_t Z = ((uint64_t)1 << (t->m - 1)) + (uint64_t)t->C[pc];
    sm_expand(t->b[pc], R - two_m * w + Z, V);
    if (iv > 0)
      for (unsigned c = 0; c < SM_W; c++)
        beta[(iv - 1) * SM_W + c] = prev[c] - V[c];
    memcpy(prev, V, sizeof V);
  }
  memcpy(cst, prev, sizeof prev);
}

static int sm_deal(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d, size_t n,
                   const uint64_t *r) {
  sm_tab_t t;
  uint64_t *alpha = NULL, *beta = NULL, *cst = NULL;
  int rc = sm_tab_init(&t, g, p->f);
  if (rc < 0)
    goto done;
  rc = TANDEM_ENOMEM;
  alpha = mpc__calloc(t.k * n + 1, sizeof *alpha);
  beta = mpc__calloc(SM_W * t.k * n + 1, sizeof *beta);
  cst = mpc__calloc(SM_W * n + 1, sizeof *cst);
  if (alpha == NULL || beta == NULL || cst == NULL)
    goto done;
  const uint64_t mm = mask_bits(t.m);
  for (size_t i = 0; i < n; i++)
    sm_deal_one(&t, (r[i] >> t.s) & mm, alpha + i * t.k, beta + i * t.k * SM_W,
                cst + i * SM_W);
  if ((rc = mpc__deal_fixed(d, cst, SM_W * n)) < 0)
    goto done;
  uint8_t *k0, *k1;
  if ((rc = mpc__deal_keys(d, kern_dcf_key_bytes(t.m, SM_W) * t.k * n, &k0, &k1)) < 0)
    goto done;
  rc = kern_dcf_gen(&d->coins, t.m, SM_W, t.k * n, alpha, beta, k0, k1);
done:
  sm_tab_close(&t);
  mpc__wipe_free(alpha, (t.k * n + 1) * sizeof *alpha);
  mpc__wipe_free(beta, (SM_W * t.k * n + 1) * sizeof *beta);
  mpc__wipe_free(cst, (SM_W * n + 1) * sizeof *cst);
  return rc;
}

int mpc__smooth_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d) {
  size_t n = p->vals[g->out].n;
  if (g->rounds == 0) /* opens nothing: the input's own mask */
    return sm_deal(p, g, d, n, d->mask[g->in[0]]);
  uint64_t *r = mpc__calloc(n + 1, sizeof *r);
  if (r == NULL)
    return TANDEM_ENOMEM;
  int rc = mpc__deal_rand(d, r, n);
  if (rc == 0)
    rc = sm_deal(p, g, d, n, r);
  mpc__wipe_free(r, (n + 1) * sizeof *r);
  return rc;
}

int mpc__smooth_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                        mpc__prep_t *prep) {
  mpc__gstate_t *gs = &pt->gs[g - p->gates];
  size_t n = p->vals[g->out].n;
  int rc;
  if (g->rounds &&
      ((rc = mpc__gstate_pre(gs, n)) < 0 || (rc = mpc__prep_rand(prep, gs->pre, n)) < 0))
    return rc;
  if (gs->consts == NULL) {
    if ((gs->consts = mpc__calloc(SM_W * n + 1, sizeof *gs->consts)) == NULL)
      return TANDEM_ENOMEM;
    gs->nconsts = SM_W * n + 1;
  }
  if ((rc = mpc__prep_fixed(prep, gs->consts, SM_W * n)) < 0)
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

/* The online buffers, kept with the party (as gate_fss.c's): yhat (n), X
 * repeated per comparison (k n) and the DCF outputs (SM_W k n). */
static uint64_t *sm_work(mpc__gstate_t *gs, size_t n, size_t k) {
  size_t words = n + (1 + SM_W) * k * n + 1;
  if (gs->nwork < words) {
    mpc__wipe_free(gs->work, gs->nwork * 8);
    gs->work = mpc__calloc(words, 8);
    gs->nwork = gs->work != NULL ? words : 0;
  }
  return gs->work;
}

int mpc__smooth_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                       const uint64_t *mine, const uint64_t *theirs) {
  mpc__gstate_t *gs = &pt->gs[g - p->gates];
  size_t n = p->vals[g->out].n, nc, nk, k;
  unsigned m;
  mpc__smooth_sizes(g, p->f, n, &nc, &nk, &m, &k);
  uint64_t *work = sm_work(gs, n, k);
  if (work == NULL)
    return TANDEM_ENOMEM;
  uint64_t *yhat = work, *x = work + n, *e = x + k * n;
  if (g->rounds)
    kern_add(yhat, mine, theirs, n);
  else
    memcpy(yhat, pt->slot[g->in[0]].pub, n * sizeof *yhat);
  const uint64_t two_l = (uint64_t)1 << g->bound, mm = mask_bits(m);
  for (size_t i = 0; i < n; i++) {
    uint64_t X = ((yhat[i] + two_l) >> g->shift) & mm;
    yhat[i] = X;
    for (size_t j = 0; j < k; j++)
      x[i * k + j] = X;
  }
  int rc = kern_dcf_eval(pt->self, m, SM_W, k * n, gs->keys, x, e);
  if (rc < 0)
    return rc;
  uint64_t *z = pt->slot[g->out].sh;
  for (size_t i = 0; i < n; i++) {
    uint64_t c[SM_W];
    memcpy(c, gs->consts + SM_W * i, sizeof c);
    for (size_t j = 0; j < k; j++)
      for (unsigned t = 0; t < SM_W; t++)
        c[t] += e[(i * k + j) * SM_W + t];
    uint64_t X = yhat[i];
    z[i] = c[0] + X * (c[1] + X * (c[2] + X * c[3]));
  }
  return 0;
}
