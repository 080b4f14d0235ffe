/* client.c - the client: masks its inputs with the dealer-seeded R_X, sends
 * X + R_X to both parties (neither learns X: each sees X masked by a mask it
 * holds only a share of), then adds the two output shares it alone receives.
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

static int shapes_equal(const mpc_shape_t *a, const mpc_shape_t *b) {
  if (a->ndim != b->ndim)
    return 0;
  for (unsigned d = 0; d < a->ndim; d++)
    if (a->dim[d] != b->dim[d])
      return 0;
  return 1;
}

/* "[1, 784]" */
static void shape_str(char *buf, size_t len, const mpc_shape_t *s) {
  size_t o = (size_t)snprintf(buf, len, "[");
  for (unsigned d = 0; d < s->ndim && d < MPC_MAX_DIMS && o < len; d++)
    o += (size_t)snprintf(buf + o, len - o, "%s%zu", d ? ", " : "", s->dim[d]);
  if (o < len)
    snprintf(buf + o, len - o, "]");
}

int mpc_client_run(const mpc_plan_t *p, mpc_transport_t *t, const mpc_ftensor_t *inputs,
                   mpc_ftensor_t *outputs, char *err, size_t errlen) {
  if (p == NULL || t == NULL || inputs == NULL || outputs == NULL)
    return TANDEM_EINVAL;
  const double bound = p->graph->input_bound;
  for (size_t i = 0; i < p->ninputs; i++) {
    const mpc__val_t *v = &p->vals[p->inputs[i]];
    const char *name = p->graph->nodes[v->node].name;
    if (!shapes_equal(&inputs[i].shape, &v->shape) || inputs[i].data == NULL) {
      if (err != NULL && errlen > 0) {
        char want[96], got[96];
        shape_str(want, sizeof want, &v->shape);
        shape_str(got, sizeof got, &inputs[i].shape);
        snprintf(err, errlen, "input '%s' has shape %s, the model wants %s", name, got, want);
      }
      return TANDEM_ESHAPE;
    }
    /* The model owner's bound: beyond it some value inside the model could
     * leave the fixed-point range, and the result would be garbage. */
    const double lo = p->graph->input_min;
    for (size_t j = 0; (bound > 0 || lo > -HUGE_VAL) && j < v->n; j++) {
      if (!(inputs[i].data[j] >= lo)) {
        if (err != NULL && errlen > 0)
          snprintf(err, errlen,
                   "input '%s' element %zu is %g, below the model's declared least input "
                   "%.6g (tandem.input_min)", name, j, inputs[i].data[j], lo);
        return TANDEM_ERANGE;
      }
      if (bound > 0 && !(fabs(inputs[i].data[j]) <= bound)) {
        if (err != NULL && errlen > 0)
          snprintf(err, errlen,
                   "input '%s' element %zu is %g, beyond the model's safe input range "
                   "+-%.6g (a value inside the model could overflow the fixed-point range)",
                   name, j, inputs[i].data[j], bound);
        return TANDEM_ERANGE;
      }
    }
  }
  size_t nbuf = p->in_words > p->out_words ? p->in_words : p->out_words;
  uint64_t *buf = mpc__calloc(nbuf, 8), *other = mpc__calloc(p->out_words, 8);
  uint64_t *r = mpc__calloc(nbuf, 8);
  uint8_t seed[MPC__SEED_BYTES];
  kern_prg_t prg;
  int rc = TANDEM_ENOMEM, prg_open = 0, nout = 0;
  if (buf == NULL || other == NULL || r == NULL)
    goto done;
  t->phase = MPC_PHASE_OFFLINE;
  if ((rc = mpc_transport_recv(t, MPC_DEALER, seed, sizeof seed)) < 0)
    goto done;
  rc = TANDEM_ECRYPTO;
  if (kern_prg_init(&prg, seed, sizeof seed) != 0)
    goto done;
  prg_open = 1;
  t->phase = MPC_PHASE_ONLINE;
  size_t off = 0;
  for (size_t i = 0; i < p->ninputs; i++) {
    size_t n = p->vals[p->inputs[i]].n, bad = 0;
    if (p->vals[p->inputs[i]].scale == 0) {
      /* Token ids' one-hot rows, integers at scale 0 (plan.c). */
      rc = 0;
      for (size_t j = 0; j < n && rc == 0; j++)
        if (inputs[i].data[j] == 0.0 || inputs[i].data[j] == 1.0)
          buf[off + j] = (uint64_t)inputs[i].data[j];
        else
          rc = TANDEM_ERANGE, bad = j;
    } else {
      rc = kern_fix_encode(buf + off, inputs[i].data, n, p->f, &bad);
    }
    if (rc < 0) {
      if (err != NULL && errlen > 0)
        snprintf(err, errlen, "input '%s' element %zu is outside the fixed-point range",
                 p->graph->nodes[p->vals[p->inputs[i]].node].name, bad);
      goto done;
    }
    if (kern_prg_u64(&prg, r + off, n) != 0) {
      rc = TANDEM_ECRYPTO;
      goto done;
    }
    off += n;
  }
  kern_add(buf, buf, r, p->in_words);
  if ((rc = mpc_transport_send(t, MPC_P0, buf, p->in_words * 8)) < 0 ||
      (rc = mpc_transport_send(t, MPC_P1, buf, p->in_words * 8)) < 0)
    goto done;
  if ((rc = mpc_transport_recv(t, MPC_P0, buf, p->out_words * 8)) < 0 ||
      (rc = mpc_transport_recv(t, MPC_P1, other, p->out_words * 8)) < 0)
    goto done;
  kern_add(buf, buf, other, p->out_words);
  off = 0;
  size_t gi = 0; /* the graph's OUTPUT nodes, in the plan's order */
  for (size_t i = 0; i < p->noutputs; i++, nout++) {
    const mpc__val_t *v = &p->vals[p->outputs[i]];
    if ((rc = mpc_ftensor_init(&outputs[i], &v->shape)) < 0)
      goto done;
    for (size_t j = 0; j < v->n; j++)
      outputs[i].data[j] = mpc__decode(buf[off + j], p->f, v->scale);
    off += v->n;
    while (gi < p->graph->nnodes && p->graph->nodes[gi].op != MPC_OP_OUTPUT)
      gi++;
    if (gi < p->graph->nnodes)
      mpc__output_post(&p->graph->nodes[gi++].attr, &outputs[i]);
  }
  rc = 0;
done:
  if (rc < 0)
    while (nout-- > 0)
      mpc_ftensor_close(&outputs[nout]);
  if (prg_open)
    kern_prg_close(&prg);
  sodium_memzero(seed, sizeof seed);
  mpc__wipe_free(buf, (nbuf ? nbuf : 1) * 8);
  mpc__wipe_free(other, (p->out_words ? p->out_words : 1) * 8);
  mpc__wipe_free(r, (nbuf ? nbuf : 1) * 8);
  return rc;
}
