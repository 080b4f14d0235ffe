/* gate_fss.c - nonlinear gates by function secret sharing: ReLU (with the
 * truncation after a product fused in), truncation alone, and one level of a
 * max tree (max(a, b) = a + ReLU(b - a)).
 *
 * The parties open y^ = y + r (one round; none when y is already a masked
 * value whose mask the dealer knows). Everything else is local: each party
 * evaluates DCF keys (kernels/dcf.c) at bits of the public y^ and combines
 * the outputs with dealer-shared constants into a share of the result.
 *
 * The arithmetic. L is the gate's own value bound (|y| < 2^(L-1) with one
 * bit of margin, from the model owner's magnitude analysis: plan.c), s the
 * truncation shift (0 or f), u = y + 2^L in [0, 2^(L+1)), m = L + 1 - s.
 * The public x = y^ + 2^L equals u + r mod 2^64. Write X = (x >> s) mod 2^m
 * and R = (r >> s) mod 2^m, and let c_s = [x mod 2^s < r mod 2^s] be the
 * carry out of the low s bits. Then, exactly,
 *   u >> s = H - c_s,   H = X - R + 2^m c_m,   c_m = [X < R]
 * (H < 2^m needs u >> s < 2^m - 1, which the margin bit gives), and
 * trunc(y) = floor(y / 2^s) = (u >> s) - 2^(m-1).
 *
 * Truncation alone is exact: one DCF on m bits gives c_m, one on s bits
 * gives c_s, and z = X - 2^(m-1) - R + 2^m c_m - c_s, so a query's result
 * does not depend on the dealer's coins.
 *
 * ReLU with truncation computes ReLU(H - 2^(m-1)) = ReLU(trunc(y) + c_s):
 * the carry is dropped (at most one ulp, as SecureML and CrypTen), because
 * ReLU(trunc(y)) needs the product of the sign with c_s, two bits the two
 * DCFs give as independent shares, and a product of shares costs a round.
 * ReLU without truncation (s = 0, c_s = 0) is exact; in exact mode
 * (mpc_graph_t.exact) the plan never fuses: it truncates exactly first and
 * gives the ReLU s = 0, one round more. H - 2^(m-1) is an
 * m-bit two's-complement value masked by R, so one DCF on the low m - 1 bits
 * does everything: with chi = bit m-1 of X, rho = bit m-1 of R and
 * c = [X mod 2^(m-1) < R mod 2^(m-1)],
 *   sign = chi XOR rho XOR c,   c_m = [chi < rho] + [chi = rho] c,
 * and z = sign (X - 2^(m-1) - R + 2^m c_m) is, for public chi,
 *   chi = 0:  (P + 2^m) (rho + c - 2 rho c) - rho R - (1 - 2 rho) R c
 *   chi = 1:  P (1 - rho - c + 2 rho c) - R + rho R + (1 - 2 rho) R c + 2^m rho c
 * with P = X - 2^(m-1): linear in the DCF's output once its payload is
 * (1, rho, (1 - 2 rho) R) and the dealer shares rho, rho R and R. Per
 * element, ReLU costs one DCF of m - 1 bits and width 3 (at the MLP's
 * widths about a third of the two 63-bit DCFs of widths 2 and 1 it took
 * before per-gate widths), truncation two DCFs of width 1.
 *
 * Why width 3 and not 2. The DCF's only secret-dependent contribution is c
 * times its payload words; the rest of z is public or the dealer's. The
 * c-part of z is (P + 2^m)(1 - 2 rho) c - (1 - 2 rho) R c for chi = 0 and
 * -P (1 - 2 rho) c + (1 - 2 rho) R c + 2^m rho c for chi = 1, where a
 * party may only weight the words by public numbers (of chi and X). R is
 * uniform and P takes every value, so two words must be (1 - 2 rho) and
 * (1 - 2 rho) R up to public factors, and 2^m rho = a (1 - 2 rho) has no
 * public solution a (rho = 0 forces a = 0, rho = 1 a = -2^m): the wrap term
 * needs a third word. A width-2 DCF on all m bits (alpha = R), evaluated at
 * X with its top bit 0 and at X with it 1, gives rho c and rho + c - rho c,
 * hence all three, for 16 + (m - 1) 32 + 32 bytes instead of 16 + (m - 2) 40
 * + 48 (816 against 984 at the MLP's 24 bits), but two walks that part at
 * the root: 2 (2 (m - 1) + 1) AES blocks per element against 3 (m - 2) + 2
 * (98 against 71). Evaluation time is the other target, so it is not done.
 *
 * A max tree's level computes z = sign' (y) for y = b - a, untruncated: y
 * itself is Y - r with Y = y^ public (mod 2^64, no wrap term), and sign' =
 * chi XOR rho XOR c from the same m - 1 high bits as above, so
 *   z = (a + (1 - 2a) c)(Y - r),  a = chi XOR rho,  1 - 2a = (1-2chi)(1-2rho),
 * linear in the DCF's output with payload ((1 - 2 rho), (1 - 2 rho) r) and
 * the dealer sharing rho, r and rho r: one DCF of width 2. When the values
 * compared are untruncated products (scale 2f) the plan gives the level
 * s = f: sign' is then the sign of trunc(y) + c_s, wrong only for
 * -2^s <= y < 0, where the level keeps b for a, less than one ulp at scale
 * f below the true maximum, and the DCF takes f fewer bits (in exact mode
 * the plan gives it s = 0: exact, f bits more, the same rounds).
 */
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

static uint64_t mask_bits(unsigned b) { return b >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << b) - 1; }

/* The gates of this file: a MAXALL gate is two, its comparisons and its
 * selection. */
enum { FSS_TRUNC = 0, FSS_RELU = 1, FSS_MAX = 2, FSS_CMP = 3, FSS_PICK = 4 };

/* Dealer-shared constants per element: ReLU rho, rho R, R; max and pick
 * rho, r, rho r; comparison rho; truncation R. */
static size_t nconsts(int mode) { return mode == FSS_TRUNC || mode == FSS_CMP ? 1 : 3; }
static unsigned width(int mode) {
  return mode == FSS_RELU ? 3 : mode == FSS_MAX || mode == FSS_PICK ? 2 : 1;
}

/* m = L + 1 - s: the bits of (u >> s). plan.c keeps L >= s + 1. */
static unsigned fss_m(unsigned shift, unsigned bound) { return bound + 1 - shift; }

void mpc__fss_sizes(int mode, unsigned shift, unsigned bound, size_t n, size_t *ncorr,
                    size_t *nkey) {
  unsigned m = fss_m(shift, bound);
  size_t kb;
  if (mode != FSS_TRUNC)
    kb = kern_dcf_key_bytes(m - 1, width(mode));
  else
    kb = kern_dcf_key_bytes(m, 1) + (shift ? kern_dcf_key_bytes(shift, 1) : 0);
  *ncorr = nconsts(mode) * n;
  *nkey = kb * n;
}

unsigned mpc__fss_dcf_bits(int mode, unsigned shift, unsigned bound) {
  unsigned m = fss_m(shift, bound);
  return mode != FSS_TRUNC ? m - 1 : m;
}

/* The dealer's half for n elements whose opened values are masked by r (a
 * pick's selected values by rv). */
static int fss_deal(mpc__dealer_t *d, int mode, unsigned shift, unsigned bound, size_t n,
                    const uint64_t *r, const uint64_t *rv) {
  const int relu = mode != FSS_TRUNC;
  const unsigned m = fss_m(shift, bound);
  const uint64_t mm = mask_bits(m), ml = mask_bits(m - 1), ms = mask_bits(shift);
  const size_t nc = nconsts(mode), w = width(mode);
  uint64_t *c = mpc__calloc(nc * n + 1, sizeof *c);
  uint64_t *alpha = mpc__calloc(n + 1, sizeof *alpha);
  uint64_t *beta = mpc__calloc(w * n + 1, sizeof *beta);
  uint64_t *alo = NULL, *blo = NULL;
  int rc = TANDEM_ENOMEM;
  if (c == NULL || alpha == NULL || beta == NULL)
    goto done;
  if (!relu && shift) {
    alo = mpc__calloc(n + 1, sizeof *alo);
    blo = mpc__calloc(n + 1, sizeof *blo);
    if (alo == NULL || blo == NULL)
      goto done;
  }
  for (size_t i = 0; i < n; i++) {
    uint64_t R = (r[i] >> shift) & mm;
    if (mode == FSS_MAX || mode == FSS_PICK) {
      uint64_t rho = R >> (m - 1), v = mode == FSS_PICK ? rv[i] : r[i];
      alpha[i] = R & ml;
      beta[2 * i] = 1 - 2 * rho;
      beta[2 * i + 1] = (1 - 2 * rho) * v;
      c[i] = rho;
      c[n + i] = v;
      c[2 * n + i] = rho * v;
    } else if (mode == FSS_CMP) {
      uint64_t rho = R >> (m - 1);
      alpha[i] = R & ml;
      beta[i] = 1 - 2 * rho;
      c[i] = rho;
    } else if (relu) {
      uint64_t rho = R >> (m - 1);
      alpha[i] = R & ml;
      beta[3 * i] = 1;
      beta[3 * i + 1] = rho;
      beta[3 * i + 2] = (1 - 2 * rho) * R;
      c[i] = rho;
      c[n + i] = rho * R;
      c[2 * n + i] = R;
    } else {
      alpha[i] = R;
      beta[i] = 1;
      c[i] = R;
      if (alo != NULL) {
        alo[i] = r[i] & ms;
        blo[i] = 1;
      }
    }
  }
  if ((rc = mpc__deal_fixed(d, c, nc * n)) < 0)
    goto done;
  uint8_t *k0, *k1;
  unsigned bits = relu ? m - 1 : m;
  if ((rc = mpc__deal_keys(d, kern_dcf_key_bytes(bits, (unsigned)w) * n, &k0, &k1)) < 0)
    goto done;
  if ((rc = kern_dcf_gen(&d->coins, bits, (unsigned)w, n, alpha, beta, k0, k1)) < 0)
    goto done;
  if (alo != NULL) {
    if ((rc = mpc__deal_keys(d, kern_dcf_key_bytes(shift, 1) * n, &k0, &k1)) < 0)
      goto done;
    if ((rc = kern_dcf_gen(&d->coins, shift, 1, n, alo, blo, k0, k1)) < 0)
      goto done;
  }
  rc = 0;
done:
  mpc__wipe_free(c, (nc * n + 1) * sizeof *c);
  mpc__wipe_free(alpha, (n + 1) * sizeof *alpha);
  mpc__wipe_free(beta, (w * n + 1) * sizeof *beta);
  mpc__wipe_free(alo, (n + 1) * sizeof *alo);
  mpc__wipe_free(blo, (n + 1) * sizeof *blo);
  return rc;
}

/* A party's half: z = its share of the gate's output, from the opened yhat
 * (a pick's: times the public masked values Yv, not yhat). work: (2 +
 * width) n words of scratch (fss_work). */
static int fss_eval(int party, int mode, unsigned shift, unsigned bound, size_t n,
                    const uint64_t *yhat, const uint64_t *Yv, const uint64_t *consts,
                    const uint8_t *keys, uint64_t *z, uint64_t *work) {
  const int relu = mode != FSS_TRUNC;
  const unsigned m = fss_m(shift, bound);
  const uint64_t mm = mask_bits(m), ml = mask_bits(m - 1), ms = mask_bits(shift);
  const uint64_t two_l = (uint64_t)1 << bound, half = (uint64_t)1 << (m - 1);
  const uint64_t two_m = m >= 64 ? 0 : (uint64_t)1 << m;
  const uint64_t p0 = party == 0;
  const size_t w = width(mode);
  uint64_t *x = work, *e = work + n, *lo = !relu && shift ? work + n + w * n : NULL;
  int rc;
  const unsigned bits = relu ? m - 1 : m;
  const uint64_t mx = relu ? ml : mm;
  for (size_t i = 0; i < n; i++)
    x[i] = ((yhat[i] + two_l) >> shift) & mx;
  if ((rc = kern_dcf_eval(party, bits, (unsigned)w, n, keys, x, e)) < 0)
    goto done;
  if (lo != NULL) {
    for (size_t i = 0; i < n; i++)
      x[i] = yhat[i] & ms; /* 2^L is a multiple of 2^s */
    if ((rc = kern_dcf_eval(party, shift, 1, n, keys + kern_dcf_key_bytes(m, 1) * n, x,
                            lo)) < 0)
      goto done;
  }
  if (mode == FSS_CMP) {
    /* [y >= 0] = a + (1 - 2 a) c, a = chi XOR rho = chi + (1 - 2 chi) rho. */
    for (size_t i = 0; i < n; i++) {
      uint64_t chi = (((yhat[i] + two_l) >> shift) & mm) >> (m - 1);
      z[i] = p0 * chi + (1 - 2 * chi) * (consts[i] + e[i]);
    }
  } else if (mode == FSS_MAX || mode == FSS_PICK) {
    const uint64_t *rho = consts, *r = consts + n, *rhor = consts + 2 * n;
    for (size_t i = 0; i < n; i++) {
      uint64_t X = ((yhat[i] + two_l) >> shift) & mm, Y = Yv != NULL ? Yv[i] : yhat[i];
      uint64_t d1 = e[2 * i], d2 = e[2 * i + 1];
      if ((X >> (m - 1)) == 0)
        z[i] = Y * (rho[i] + d1) - rhor[i] - d2;
      else
        z[i] = Y * (p0 - rho[i] - d1) - r[i] + rhor[i] + d2;
    }
  } else if (relu) {
    const uint64_t *rho = consts, *rhoR = consts + n, *R = consts + 2 * n;
    for (size_t i = 0; i < n; i++) {
      uint64_t X = ((yhat[i] + two_l) >> shift) & mm, P = X - half;
      uint64_t c = e[3 * i], q = e[3 * i + 1], t = e[3 * i + 2];
      if ((X >> (m - 1)) == 0)
        z[i] = (P + two_m) * (rho[i] + c - 2 * q) - rhoR[i] - t;
      else
        z[i] = P * (p0 - rho[i] - c + 2 * q) - R[i] + rhoR[i] + t + two_m * q;
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      uint64_t X = ((yhat[i] + two_l) >> shift) & mm;
      z[i] = p0 * (X - half) - consts[i] + two_m * e[i] - (lo != NULL ? lo[i] : 0);
    }
  }
  rc = 0;
done:
  return rc;
}

/* Elements the gate compares: NONLIN its output, MAXLEVEL its pairs, a
 * MAXALL's comparisons every pair of a row, its selection every candidate. */
static size_t fss_n(const mpc_plan_t *p, const mpc__gate_t *g) {
  if (g->kind == MPC__G_MAXLEVEL)
    return (g->levelm / 2) * g->levelp;
  if (g->kind == MPC__G_MAXALL)
    return g->pick ? g->levelm * g->levelp : g->levelm * (g->levelm - 1) / 2 * g->levelp;
  return p->vals[g->out].n;
}

static int fss_mode(const mpc__gate_t *g) {
  if (g->kind == MPC__G_MAXALL)
    return g->pick ? FSS_PICK : FSS_CMP;
  return g->kind == MPC__G_MAXLEVEL ? FSS_MAX : g->relu ? FSS_RELU : FSS_TRUNC;
}

/* A MAXALL comparison's opened value, y = x_j - x_i for the pair (i < j) of
 * row q (candidate c of row q at c P + q), masked by a[j] - a[i] when a are
 * the candidates' (masked values or masks): the pairs row by row, i, then
 * j. */
static void pair_diffs(const mpc__gate_t *g, const uint64_t *a, uint64_t *y) {
  size_t n = g->levelm, P = g->levelp, t = 0;
  for (size_t q = 0; q < P; q++)
    for (size_t i = 0; i < n; i++)
      for (size_t j = i + 1; j < n; j++)
        y[t++] = a[j * P + q] - a[i * P + q];
}

int mpc__fss_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d) {
  size_t n = fss_n(p, g);
  int mode = fss_mode(g);
  if (mode == FSS_CMP) { /* the pairs' masks from the candidates' */
    uint64_t *r = mpc__calloc(n + 1, sizeof *r);
    if (r == NULL)
      return TANDEM_ENOMEM;
    pair_diffs(g, d->mask[g->in[0]], r);
    int rc = fss_deal(d, mode, g->shift, g->bound, n, r, NULL);
    mpc__wipe_free(r, (n + 1) * sizeof *r);
    return rc;
  }
  if (g->rounds == 0) /* opens nothing: the input's own mask */
    return fss_deal(d, mode, g->shift, g->bound, n, d->mask[g->in[0]], NULL);
  uint64_t *r = mpc__calloc(n + 1, sizeof *r);
  if (r == NULL)
    return TANDEM_ENOMEM;
  int rc = mpc__deal_rand(d, r, n);
  if (rc == 0)
    rc = fss_deal(d, mode, g->shift, g->bound, n, r,
                  mode == FSS_PICK ? d->mask[g->in[1]] : NULL);
  mpc__wipe_free(r, (n + 1) * sizeof *r);
  return rc;
}

int mpc__fss_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                     mpc__prep_t *prep) {
  mpc__gstate_t *gs = &pt->gs[g - p->gates];
  size_t n = fss_n(p, g);
  int rc;
  if (g->rounds &&
      ((rc = mpc__gstate_pre(gs, n)) < 0 || (rc = mpc__prep_rand(prep, gs->pre, n)) < 0))
    return rc;
  size_t nc = nconsts(fss_mode(g)) * n;
  if (gs->consts == NULL) {
    if ((gs->consts = mpc__calloc(nc + 1, sizeof *gs->consts)) == NULL)
      return TANDEM_ENOMEM;
    gs->nconsts = nc + 1;
  }
  if ((rc = mpc__prep_fixed(prep, gs->consts, nc)) < 0)
    return rc;
  gs->keys = mpc__prep_keys(prep, g->nkey);
  return gs->keys == NULL && g->nkey ? TANDEM_EPROTO : 0;
}

/* The gate's online working buffers, made at its first query and kept with
 * the party (wiped when it is freed, like the shares in its slots): yhat,
 * then fss_eval's x, DCF outputs and low carries ((2 + width) n words), then
 * a max level's input share (levelm levelp). Fresh buffers per query cost a
 * page fault per 4 KiB on the 2-vCPU VMs: about 30 MB, thousands of faults,
 * per query for the CNN's first max level. NULL when out of memory. */
static uint64_t *fss_work(const mpc_plan_t *p, const mpc__gate_t *g, mpc__gstate_t *gs) {
  size_t n = fss_n(p, g);
  size_t words = (3 + width(fss_mode(g))) * n + 1;
  if (g->kind == MPC__G_MAXLEVEL || g->kind == MPC__G_MAXALL)
    words += (size_t)g->levelm * g->levelp;
  if (g->kind == MPC__G_MAXALL)
    words += n; /* the comparisons' or the selection's outputs */
  if (gs->nwork < words) {
    mpc__wipe_free(gs->work, gs->nwork * 8);
    gs->work = mpc__calloc(words, 8);
    gs->nwork = gs->work != NULL ? words : 0;
  }
  return gs->work;
}

/* A max level's input share, in the gate's work buffers past yhat and
 * fss_eval's scratch. */
static uint64_t *fss_work_in(const mpc_plan_t *p, const mpc__gate_t *g, uint64_t *work) {
  return work + (3 + width(fss_mode(g))) * fss_n(p, g);
}

/* The value whose comparison is opened: NONLIN its input; MAXLEVEL b - a. */
static int fss_operand(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                       uint64_t *out) {
  if (g->kind == MPC__G_NONLIN || g->kind == MPC__G_MAXALL) { /* a pick: its counts */
    mpc__share_of(p, pt, g->in[0], out);
    return 0;
  }
  size_t P = g->levelp, q = g->levelm / 2;
  uint64_t *work = fss_work(p, g, &pt->gs[g - p->gates]);
  if (work == NULL)
    return TANDEM_ENOMEM;
  uint64_t *in = fss_work_in(p, g, work);
  mpc__share_of(p, pt, g->in[0], in);
  for (size_t j = 0; j < q; j++)
    kern_sub(out + j * P, in + (2 * j + 1) * P, in + 2 * j * P, P);
  return 0;
}

int mpc__fss_send(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                  uint64_t *out) {
  const mpc__gstate_t *gs = &pt->gs[g - p->gates];
  int rc = fss_operand(p, g, pt, out);
  if (rc == 0)
    kern_add(out, out, gs->pre, fss_n(p, g));
  return rc;
}

/* A MAXALL gate's local half, yhat (in work) its opened values: the
 * comparisons' [x_j >= x_i] for every pair (i < j) of a row, and each
 * candidate's count of those it beats (x_i beats x_j when x_i > x_j, or
 * equal and i > j: a strict order, so exactly one beats n - 1), SHARED; or
 * the selection: [count = n - 1] times the candidate (from its masked
 * value), summed over the row. */
static int maxall_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                         size_t n, uint64_t *work) {
  const mpc__gstate_t *gs = &pt->gs[g - p->gates];
  size_t c = g->levelm, P = g->levelp;
  uint64_t *yhat = work, *z = work + (3 + width(fss_mode(g))) * n + c * P;
  uint64_t *out = pt->slot[g->out].sh;
  const uint64_t p0 = pt->self == 0;
  int rc;
  if (!g->pick) {
    pair_diffs(g, pt->slot[g->in[0]].pub, yhat);
    if ((rc = fss_eval(pt->self, FSS_CMP, g->shift, g->bound, n, yhat, NULL, gs->consts,
                       gs->keys, z, work + n)) < 0)
      return rc;
    memset(out, 0, c * P * sizeof *out);
    size_t t = 0;
    for (size_t q = 0; q < P; q++)
      for (size_t i = 0; i < c; i++)
        for (size_t j = i + 1; j < c; j++, t++) {
          out[i * P + q] += p0 - z[t]; /* i beats j: x_j < x_i */
          out[j * P + q] += z[t];
        }
    return 0;
  }
  for (size_t i = 0; i < n; i++)
    yhat[i] -= (uint64_t)(c - 1); /* y = count - (n - 1) <= 0, public */
  if ((rc = fss_eval(pt->self, FSS_PICK, g->shift, g->bound, n, yhat, pt->slot[g->in[1]].pub,
                     gs->consts, gs->keys, z, work + n)) < 0)
    return rc;
  memset(out, 0, P * sizeof *out);
  for (size_t i = 0; i < c; i++)
    kern_add(out, out, z + i * P, P);
  return 0;
}

int mpc__fss_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                    const uint64_t *mine, const uint64_t *theirs) {
  mpc__gstate_t *gs = &pt->gs[g - p->gates];
  size_t n = fss_n(p, g);
  uint64_t *work = fss_work(p, g, gs);
  if (work == NULL)
    return TANDEM_ENOMEM;
  uint64_t *yhat = work;
  if (g->kind == MPC__G_MAXALL && !g->pick) /* no opening: the pairs' differences */
    return maxall_finish(p, g, pt, n, work);
  if (g->rounds)
    kern_add(yhat, mine, theirs, n);
  else
    memcpy(yhat, pt->slot[g->in[0]].pub, n * sizeof *yhat);
  int rc;
  if (g->kind == MPC__G_NONLIN) {
    return fss_eval(pt->self, fss_mode(g), g->shift, g->bound, n, yhat, NULL, gs->consts,
                    gs->keys, pt->slot[g->out].sh, work + n);
  }
  if (g->kind == MPC__G_MAXALL)
    return maxall_finish(p, g, pt, n, work);
  /* Max level: out[j] = a_j + ReLU(b_j - a_j); an odd last candidate passes. */
  size_t P = g->levelp, q = g->levelm / 2, m = g->levelm;
  uint64_t *in = fss_work_in(p, g, work);
  uint64_t *out = pt->slot[g->out].sh;
  mpc__share_of(p, pt, g->in[0], in);
  rc = fss_eval(pt->self, FSS_MAX, g->shift, g->bound, n, yhat, NULL, gs->consts, gs->keys, out,
                work + n);
  if (rc == 0) {
    for (size_t j = 0; j < q; j++)
      kern_add(out + j * P, out + j * P, in + 2 * j * P, P);
    if (m % 2)
      memcpy(out + q * P, in + (m - 1) * P, P * sizeof *out);
  }
  return rc;
}
