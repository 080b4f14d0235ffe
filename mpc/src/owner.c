/* owner.c - the model owner: encodes every parameter in fixed point at the
 * scale the plan uses it (weights at f bits with Gemm's alpha folded in,
 * addends at the scale of what they are added to, with beta folded in) and
 * sends P0 a PRG seed and P1 the values minus P0's PRG stream, so that each
 * party alone holds a uniformly random share.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "mpc_int.h"

int mpc_owner_share(const mpc_plan_t *p, const mpc_weights_t *w, mpc_transport_t *t,
                    char *err, size_t errlen) {
  if (p == NULL || w == NULL || w->param == NULL)
    return TANDEM_EINVAL;
  t->phase = MPC_PHASE_SETUP;
  uint8_t *seed = sodium_malloc(MPC__SEED_BYTES);
  uint64_t *out = mpc__calloc(p->owner_words, 8);
  kern_prg_t prg;
  int rc = TANDEM_ENOMEM, prg_open = 0;
  if (seed == NULL || out == NULL)
    goto done;
  mpc__os_random(seed, MPC__SEED_BYTES);
  rc = TANDEM_ECRYPTO;
  if (kern_prg_init(&prg, seed, MPC__SEED_BYTES) != 0)
    goto done;
  prg_open = 1;
  size_t off = 0;
  for (size_t i = 0; i < p->nparams; i++) {
    const mpc__val_t *v = &p->vals[p->params[i]];
    const mpc_ftensor_t *src = &w->param[v->node];
    if (src->data == NULL || mpc_shape_numel(&src->shape) != v->n) {
      if (err != NULL && errlen > 0)
        snprintf(err, errlen, "parameter '%s' is missing or has the wrong size",
                 p->graph->nodes[v->node].name);
      rc = TANDEM_ESHAPE;
      goto done;
    }
    size_t bad = 0;
    rc = mpc__encode(out + off, src->data, v->n, p->f, v->scale, v->fold, &bad);
    if (rc < 0) {
      if (err != NULL && errlen > 0)
        snprintf(err, errlen, "parameter '%s' element %zu is outside the fixed-point range",
                 p->graph->nodes[v->node].name, bad);
      goto done;
    }
    off += v->n;
  }
  /* P1's share: the values minus P0's stream. */
  for (size_t i = 0; i < p->owner_words; i++) {
    uint64_t r;
    if (kern_prg_u64(&prg, &r, 1) != 0) {
      rc = TANDEM_ECRYPTO;
      goto done;
    }
    out[i] -= r;
  }
  if ((rc = mpc_transport_send(t, MPC_P0, seed, MPC__SEED_BYTES)) == 0)
    rc = mpc_transport_send(t, MPC_P1, out, p->owner_words * 8);
done:
  if (prg_open)
    kern_prg_close(&prg);
  if (seed != NULL)
    sodium_free(seed);
  mpc__wipe_free(out, (p->owner_words ? p->owner_words : 1) * 8);
  return rc;
}
