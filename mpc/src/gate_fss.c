/* gate_fss.c - nonlinear gates by function secret sharing: ReLU (with the
 * truncation after a product fused in), truncation alone, and one level of a
 * max tree (max(a, b) = a + ReLU(b - a)).
 *
 * The parties open y^ = y + r (one round; none when y is already a masked
 * value whose mask the dealer knows). Everything else is local: each party
 * evaluates DCF keys (kernels/dcf.c) at the public y^ and combines the outputs
 * with dealer-shared constants into a share of the result.
 *
 * The arithmetic. Let L be the value bound (|y| < 2^L), s the truncation shift
 * (0 or f), N = 2^64 and u = y + 2^L in [0, 2^(L+1)). The public u^ = y^ + 2^L
 * equals u + r mod N. Write a_h = u^ >> s, r_h = r >> s, w = [u + r >= N].
 * Then floor(u / 2^s) = a_h - r_h + 2^(64-s) w - [u^ mod 2^s < r mod 2^s]; we
 * drop the last term (a one-ulp truncation error, as SecureML and CrypTen), so
 *   trunc(y) ~ P - r_h + 2^(64-s) w,   P = a_h - 2^(L-s);
 *   ReLU(trunc(y)) ~ I1 (P - r_h) + 2^(64-s) [u >= T],
 * with I1 = [u >= 2^L] (y >= 0) and T = max(N - r, 2^L) (u wraps and y >= 0;
 * T = 2^(L+1), never, when N - r is out of u's range).
 * An indicator [u >= T] for a threshold T in [0, 2^(L+1)] the dealer knows:
 * with n = L + 2 bits, v = u - T fits n-bit two's complement and is masked by
 * r' = r + T mod 2^n (v + r' = u^ mod 2^n), so
 *   [u >= T] = k XOR m XOR c,  k = 1 - msb_n(u^) (public), m = msb_n(r'),
 *   c = [low_{n-1}(u^) < low_{n-1}(r')]  -- one DCF on n-1 = L+1 bits.
 * With e = m XOR c = m + c (1 - 2m), [u >= T] = k + (1 - 2k) e, linear in the
 * DCF output once the dealer puts (1 - 2m) (times whatever multiplies it) in
 * the DCF payload and shares the constants. Per element, ReLU with truncation
 * costs two DCFs (payload widths 2 and 1), ReLU alone one (width 2), truncation
 * alone one (width 1); P1 receives 3 (ReLU) or 2 (truncation) correction words.
 */
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

/* Per-element layout of the dealer-shared constants: c0 = r_h; ReLU: c1 = m1,
 * c2 = -r_h m1 + W mT; truncation: c1 = W mT. */
static size_t nconsts(int relu) { return relu ? 3 : 2; }

void mpc__fss_sizes(int relu, unsigned shift, unsigned bound, size_t n, size_t *ncorr,
                    size_t *nkey) {
  unsigned bits = bound + 1;
  size_t kb = 0;
  if (relu)
    kb += kern_dcf_key_bytes(bits, 2);
  if (shift > 0)
    kb += kern_dcf_key_bytes(bits, 1);
  *ncorr = nconsts(relu) * n;
  *nkey = kb * n;
}

/* The dealer's half for n elements whose opened values are masked by r. */
static int fss_deal(mpc__dealer_t *d, int relu, unsigned shift, unsigned bound, size_t n,
                    const uint64_t *r) {
  const unsigned bits = bound + 1; /* DCF input bits, n - 1 */
  const uint64_t low = ((uint64_t)1 << bits) - 1;
  const uint64_t two_l = (uint64_t)1 << bound, two_l1 = (uint64_t)1 << (bound + 1);
  const uint64_t W = shift ? (uint64_t)1 << (64 - shift) : 0;
  size_t nc = nconsts(relu);
  uint64_t *c = mpc__calloc(nc * n + 1, sizeof *c);
  uint64_t *a1 = mpc__calloc(n + 1, sizeof *a1), *b1 = mpc__calloc(2 * n + 1, sizeof *b1);
  uint64_t *at = mpc__calloc(n + 1, sizeof *at), *bt = mpc__calloc(n + 1, sizeof *bt);
  int rc = TANDEM_ENOMEM;
  if (c == NULL || a1 == NULL || b1 == NULL || at == NULL || bt == NULL)
    goto done;
  for (size_t i = 0; i < n; i++) {
    uint64_t ri = r[i], rh = ri >> shift;
    uint64_t m1 = 0, mt = 0;
    if (relu) {
      uint64_t r1 = ri + two_l;
      m1 = (r1 >> bits) & 1;
      a1[i] = r1 & low;
      b1[2 * i] = 1 - 2 * m1;
      b1[2 * i + 1] = rh * (1 - 2 * m1);
    }
    if (shift) {
      uint64_t negr = (uint64_t)0 - ri;
      uint64_t t = (ri != 0 && negr < two_l1) ? negr : two_l1;
      if (relu && t < two_l)
        t = two_l;
      uint64_t rt = ri + t;
      mt = (rt >> bits) & 1;
      at[i] = rt & low;
      bt[i] = W * (1 - 2 * mt);
    }
    c[i] = rh;
    if (relu) {
      c[n + i] = m1;
      c[2 * n + i] = W * mt - rh * m1;
    } else {
      c[n + i] = W * mt;
    }
  }
  rc = mpc__deal_fixed(d, c, nc * n);
  if (rc < 0)
    goto done;
  uint8_t *k0, *k1;
  if (relu) {
    size_t kb = kern_dcf_key_bytes(bits, 2) * n;
    if ((rc = mpc__deal_keys(d, kb, &k0, &k1)) < 0)
      goto done;
    if ((rc = kern_dcf_gen(&d->coins, bits, 2, n, a1, b1, k0, k1)) < 0)
      goto done;
  }
  if (shift) {
    size_t kb = kern_dcf_key_bytes(bits, 1) * n;
    if ((rc = mpc__deal_keys(d, kb, &k0, &k1)) < 0)
      goto done;
    if ((rc = kern_dcf_gen(&d->coins, bits, 1, n, at, bt, k0, k1)) < 0)
      goto done;
  }
  rc = 0;
done:
  mpc__wipe_free(c, (nc * n + 1) * sizeof *c);
  mpc__wipe_free(a1, (n + 1) * sizeof *a1);
  mpc__wipe_free(b1, (2 * n + 1) * sizeof *b1);
  mpc__wipe_free(at, (n + 1) * sizeof *at);
  mpc__wipe_free(bt, (n + 1) * sizeof *bt);
  return rc;
}

/* A party's half: z = its share of the gate's output, from the opened yhat. */
static int fss_eval(int party, int relu, unsigned shift, unsigned bound, size_t n,
                    const uint64_t *yhat, const uint64_t *consts, const uint8_t *keys,
                    uint64_t *z) {
  const unsigned bits = bound + 1;
  const uint64_t low = ((uint64_t)1 << bits) - 1;
  const uint64_t two_l = (uint64_t)1 << bound;
  const uint64_t W = shift ? (uint64_t)1 << (64 - shift) : 0;
  const uint64_t off = two_l >> shift;
  const uint64_t *c0 = consts, *c1 = consts + n, *c2 = consts + 2 * n;
  uint64_t *x = malloc((n + 1) * sizeof *x);
  uint64_t *e = mpc__calloc(2 * n + 1, sizeof *e), *gt = mpc__calloc(n + 1, sizeof *gt);
  int rc = TANDEM_ENOMEM;
  if (x == NULL || e == NULL || gt == NULL)
    goto done;
  for (size_t i = 0; i < n; i++)
    x[i] = (yhat[i] + two_l) & low;
  const uint8_t *kp = keys;
  if (relu) {
    if ((rc = kern_dcf_eval(party, bits, 2, n, kp, x, e)) < 0)
      goto done;
    kp += kern_dcf_key_bytes(bits, 2) * n;
  }
  if (shift && (rc = kern_dcf_eval(party, bits, 1, n, kp, x, gt)) < 0)
    goto done;
  const uint64_t p0 = party == 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t u = yhat[i] + two_l;
    uint64_t k = 1 - ((u >> bits) & 1);
    uint64_t sgn = 1 - 2 * k; /* 1 - 2k: +1 or -1 */
    uint64_t P = (u >> shift) - off;
    if (relu)
      z[i] = p0 * k * (P + W) - k * c0[i] +
             sgn * (P * (c1[i] + e[2 * i]) + c2[i] - e[2 * i + 1] + gt[i]);
    else
      z[i] = p0 * (P + W * k) - c0[i] + sgn * (c1[i] + gt[i]);
  }
  rc = 0;
done:
  free(x);
  mpc__wipe_free(e, (2 * n + 1) * sizeof *e);
  mpc__wipe_free(gt, (n + 1) * sizeof *gt);
  return rc;
}

/* Elements the gate compares: NONLIN its output, MAXLEVEL its pairs. */
static size_t fss_n(const mpc_plan_t *p, const mpc__gate_t *g) {
  if (g->kind == MPC__G_MAXLEVEL)
    return (g->levelm / 2) * g->levelp;
  return p->vals[g->out].n;
}

static int fss_relu(const mpc__gate_t *g) { return g->kind == MPC__G_MAXLEVEL ? 1 : g->relu; }
static unsigned fss_shift(const mpc__gate_t *g) { return g->kind == MPC__G_MAXLEVEL ? 0 : g->shift; }

int mpc__fss_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d) {
  size_t n = fss_n(p, g);
  if (g->rounds == 0) /* opens nothing: the input's own mask */
    return fss_deal(d, fss_relu(g), fss_shift(g), g->bound, n, d->mask[g->in[0]]);
  uint64_t *r = mpc__calloc(n + 1, sizeof *r);
  if (r == NULL)
    return TANDEM_ENOMEM;
  int rc = mpc__deal_rand(d, r, n);
  if (rc == 0)
    rc = fss_deal(d, fss_relu(g), fss_shift(g), g->bound, n, r);
  mpc__wipe_free(r, (n + 1) * sizeof *r);
  return rc;
}

int mpc__fss_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                     mpc__prep_t *prep) {
  mpc__gstate_t *gs = &pt->gs[g - p->gates];
  size_t n = fss_n(p, g);
  int rc;
  if (g->rounds) {
    if (gs->pre == NULL) {
      if ((gs->pre = mpc__calloc(n + 1, sizeof *gs->pre)) == NULL)
        return TANDEM_ENOMEM;
      gs->npre = n + 1;
    }
    if ((rc = mpc__prep_rand(prep, gs->pre, n)) < 0)
      return rc;
  }
  size_t nc = nconsts(fss_relu(g)) * n;
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

/* The value whose comparison is opened: NONLIN its input; MAXLEVEL b - a. */
static int fss_operand(const mpc_plan_t *p, const mpc__gate_t *g, const mpc_party_t *pt,
                       uint64_t *out) {
  if (g->kind == MPC__G_NONLIN) {
    mpc__share_of(p, pt, g->in[0], out);
    return 0;
  }
  size_t P = g->levelp, q = g->levelm / 2, m = g->levelm;
  uint64_t *in = malloc(m * P * sizeof *in + 1);
  if (in == NULL)
    return TANDEM_ENOMEM;
  mpc__share_of(p, pt, g->in[0], in);
  for (size_t j = 0; j < q; j++)
    kern_sub(out + j * P, in + (2 * j + 1) * P, in + 2 * j * P, P);
  mpc__wipe_free(in, m * P * sizeof *in + 1);
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

int mpc__fss_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                    const uint64_t *mine, const uint64_t *theirs) {
  mpc__gstate_t *gs = &pt->gs[g - p->gates];
  size_t n = fss_n(p, g);
  uint64_t *yhat = malloc((n + 1) * sizeof *yhat);
  if (yhat == NULL)
    return TANDEM_ENOMEM;
  if (g->rounds)
    kern_add(yhat, mine, theirs, n);
  else
    memcpy(yhat, pt->slot[g->in[0]].pub, n * sizeof *yhat);
  int rc;
  if (g->kind == MPC__G_NONLIN) {
    rc = fss_eval(pt->self, g->relu, g->shift, g->bound, n, yhat, gs->consts, gs->keys,
                  pt->slot[g->out].sh);
    free(yhat);
    return rc;
  }
  /* Max level: out[j] = a_j + ReLU(b_j - a_j); an odd last candidate passes. */
  size_t P = g->levelp, q = g->levelm / 2, m = g->levelm;
  uint64_t *in = malloc(m * P * sizeof *in + 1);
  uint64_t *out = pt->slot[g->out].sh;
  if (in == NULL) {
    free(yhat);
    return TANDEM_ENOMEM;
  }
  mpc__share_of(p, pt, g->in[0], in);
  rc = fss_eval(pt->self, 1, 0, g->bound, n, yhat, gs->consts, gs->keys, out);
  if (rc == 0) {
    for (size_t j = 0; j < q; j++)
      kern_add(out + j * P, out + j * P, in + 2 * j * P, P);
    if (m % 2)
      memcpy(out + q * P, in + (m - 1) * P, P * sizeof *out);
  }
  free(yhat);
  mpc__wipe_free(in, m * P * sizeof *in + 1);
  return rc;
}
