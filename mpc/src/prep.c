/* prep.c - the preprocessing streams that carry the dealer's correlated
 * randomness, and the small helpers every role shares (wiping allocation,
 * fixed-point encoding at a scale, OS randomness).
 *
 * The dealer's message to P0 is a PRG seed and FSS keys; to P1 a seed, one
 * correction word per dealer-fixed value and FSS keys; nothing a seed could
 * derive is sent. Both sides consume the streams in plan order: a uniform mask
 * is the sum of the two parties' next PRG outputs (deal_rand / prep_rand); a
 * value v the dealer fixes is P0's next PRG output plus P1's correction
 * v - that output (deal_fixed / prep_fixed).
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mpc_int.h"

/* Large buffers (a query's preprocessing, a gate's keys and masks) are
 * fresh pages, and on the 2-vCPU VMs a page fault costs about 2 us: a
 * batch-100 MLP query's 57 MB of dealer messages took 14,000 faults, most
 * of the dealer's generation time (perf: exc_page_fault under the DCF
 * generator). calloc maps such a buffer without touching it, so asking for
 * transparent huge pages on its 2 MiB-aligned interior makes the first
 * touch fault once per 2 MiB instead of once per 4 KiB. Advice only: where
 * THP is off, or madvise fails, nothing changes. */
#define HUGE_BYTES ((size_t)2 << 20)
#define HUGE_MIN ((size_t)4 << 20)

static void *advise_huge(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  if (p != NULL && bytes >= HUGE_MIN) {
    uintptr_t a = ((uintptr_t)p + HUGE_BYTES - 1) & ~(uintptr_t)(HUGE_BYTES - 1);
    uintptr_t e = ((uintptr_t)p + bytes) & ~(uintptr_t)(HUGE_BYTES - 1);
    if (e > a)
      (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
  }
#else
  (void)bytes;
#endif
  return p;
}

void *mpc__calloc(size_t n, size_t size) {
  n = n ? n : 1;
  size = size ? size : 1;
  return advise_huge(calloc(n, size), n * size); /* calloc checked n * size */
}

void *mpc__malloc(size_t bytes) {
  bytes = bytes ? bytes : 1;
  return advise_huge(malloc(bytes), bytes);
}

void mpc__wipe_free(void *ptr, size_t bytes) {
  if (ptr == NULL)
    return;
  sodium_memzero(ptr, bytes);
  free(ptr);
}

void mpc__os_random(void *buf, size_t n) { randombytes_buf(buf, n); }

int mpc__encode(uint64_t *out, const double *in, size_t n, unsigned f, unsigned scale,
                double fold, size_t *bad) {
  double *tmp = malloc((n ? n : 1) * sizeof *tmp);
  if (tmp == NULL)
    return TANDEM_ENOMEM;
  for (size_t i = 0; i < n; i++)
    tmp[i] = in[i] * fold;
  int rc = kern_fix_encode(out, tmp, n, f, bad);
  /* At scale 2 the value carries 2f fractional bits; encoding at f and
   * shifting keeps f bits of precision, which the truncation that follows
   * every scale-2 value would keep anyway. */
  if (rc == 0 && scale == 2)
    kern_scale(out, out, (uint64_t)1 << f, n);
  mpc__wipe_free(tmp, (n ? n : 1) * sizeof *tmp);
  return rc;
}

double mpc__decode(uint64_t v, unsigned f, unsigned scale) {
  return ldexp((double)(int64_t)v, -(int)(f * scale));
}

int mpc__prep_rand(mpc__prep_t *p, uint64_t *share, size_t n) {
  return kern_prg_u64(&p->prg, share, n) == 0 ? 0 : TANDEM_ECRYPTO;
}

int mpc__gstate_pre(mpc__gstate_t *gs, size_t n) {
  if (gs->pre == NULL) {
    if ((gs->pre = mpc__calloc(n + 1, sizeof *gs->pre)) == NULL)
      return TANDEM_ENOMEM;
    gs->npre = n + 1;
  }
  return 0;
}

int mpc__prep_fixed(mpc__prep_t *p, uint64_t *share, size_t n) {
  if (p->party == 0)
    return mpc__prep_rand(p, share, n);
  if (p->ncorr - p->corr_pos < n)
    return TANDEM_EPROTO;
  memcpy(share, p->corr + p->corr_pos, n * sizeof *share);
  p->corr_pos += n;
  return 0;
}

const uint8_t *mpc__prep_keys(mpc__prep_t *p, size_t nbytes) {
  if (p->nkey - p->key_pos < nbytes)
    return NULL;
  const uint8_t *k = p->keys + p->key_pos;
  p->key_pos += nbytes;
  return k;
}

int mpc__deal_rand(mpc__dealer_t *d, uint64_t *r, size_t n) {
  uint64_t *t = malloc((n ? n : 1) * sizeof *t);
  if (t == NULL)
    return TANDEM_ENOMEM;
  int rc = TANDEM_ECRYPTO;
  if (kern_prg_u64(&d->prg[0], r, n) == 0 && kern_prg_u64(&d->prg[1], t, n) == 0) {
    kern_add(r, r, t, n);
    rc = 0;
  }
  mpc__wipe_free(t, (n ? n : 1) * sizeof *t);
  return rc;
}

int mpc__deal_fixed(mpc__dealer_t *d, const uint64_t *v, size_t n) {
  if (d->ncorr - d->corr_pos < n)
    return TANDEM_EINVAL; /* the plan's sizes and the gates disagree: a bug */
  uint64_t *c = d->corr + d->corr_pos;
  if (kern_prg_u64(&d->prg[0], c, n) != 0)
    return TANDEM_ECRYPTO;
  kern_sub(c, v, c, n);
  d->corr_pos += n;
  return 0;
}

int mpc__deal_keys(mpc__dealer_t *d, size_t nbytes, uint8_t **k0, uint8_t **k1) {
  if (d->nkey - d->key_pos < nbytes)
    return TANDEM_EINVAL;
  *k0 = d->keys[0] + d->key_pos;
  *k1 = d->keys[1] + d->key_pos;
  d->key_pos += nbytes;
  return 0;
}
