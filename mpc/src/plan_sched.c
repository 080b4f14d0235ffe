/* plan_sched.c - the second half of compiling a plan (plan.c lowers the
 * graph to gates): the schedule, which gives every one-round gate the
 * earliest round at which its inputs exist and sizes each gate's messages and
 * preprocessing, and the public queries on a compiled plan (its rounds,
 * shapes, message sizes, and the per-gate table that `tandem bench` and the
 * tests read).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

/* ---- schedule and sizes --------------------------------------------------- */

int mpc__plan_schedule(mpc_plan_t *p) {
  unsigned *ready = calloc(p->nvals ? p->nvals : 1, sizeof *ready);
  if (ready == NULL)
    return TANDEM_ENOMEM;
  unsigned rounds = 0;
  for (size_t i = 0; i < p->ngates; i++) {
    mpc__gate_t *g = &p->gates[i];
    unsigned start = 0;
    for (int j = 0; j < 2; j++)
      if (g->in[j] >= 0 && ready[g->in[j]] > start)
        start = ready[g->in[j]];
    size_t n = g->out >= 0 ? p->vals[g->out].n : 0;
    g->rounds = 0;
    g->nsend = g->ncorr = g->nkey = 0;
    switch (g->kind) {
    case MPC__G_INPUT:
      g->ncorr = n;
      break;
    case MPC__G_BILIN:
    case MPC__G_TRIPLE:
      g->ncorr = n;
      break;
    case MPC__G_OPEN:
      g->rounds = 1;
      g->nsend = n;
      break;
    case MPC__G_NONLIN:
      g->rounds = p->vals[g->in[0]].kind == MPC__V_MASKED ? 0 : 1;
      g->nsend = g->rounds ? n : 0;
      mpc__fss_sizes(g->relu, g->shift, g->bound, n, &g->ncorr, &g->nkey);
      break;
    case MPC__G_SMOOTH:
      g->rounds = p->vals[g->in[0]].kind == MPC__V_MASKED ? 0 : 1;
      g->nsend = g->rounds ? n : 0;
      mpc__smooth_sizes(g, p->f, n, &g->ncorr, &g->nkey, NULL, NULL);
      break;
    case MPC__G_MAXLEVEL: {
      size_t pairs = (g->levelm / 2) * g->levelp;
      g->rounds = 1;
      g->nsend = pairs;
      mpc__fss_sizes(2, g->shift, g->bound, pairs, &g->ncorr, &g->nkey);
      break;
    }
    case MPC__G_MAXALL: {
      size_t m = g->levelm * g->levelp;
      if (!g->pick)
        m = g->levelm * (g->levelm - 1) / 2 * g->levelp;
      g->rounds = g->pick ? 1 : 0;
      g->nsend = g->pick ? m : 0;
      mpc__fss_sizes(g->pick ? 4 : 3, g->shift, g->bound, m, &g->ncorr, &g->nkey);
      break;
    }
    default:
      break;
    }
    g->round = start;
    g->ready = start + g->rounds;
    if (g->out >= 0)
      ready[g->out] = g->ready;
    if (g->rounds && start + 1 > rounds)
      rounds = start + 1;
    p->ncorr += g->ncorr;
    p->nkey += g->nkey;
  }
  free(ready);
  p->rounds = rounds;
  p->round_words = calloc(rounds ? rounds : 1, sizeof *p->round_words);
  if (p->round_words == NULL)
    return TANDEM_ENOMEM;
  for (size_t i = 0; i < p->ngates; i++)
    if (p->gates[i].rounds)
      p->round_words[p->gates[i].round] += p->gates[i].nsend;
  for (size_t i = 0; i < p->ninputs; i++)
    p->in_words += p->vals[p->inputs[i]].n;
  for (size_t i = 0; i < p->noutputs; i++)
    p->out_words += p->vals[p->outputs[i]].n;
  for (size_t i = 0; i < p->nparams; i++) {
    const mpc__val_t *v = &p->vals[p->params[i]];
    p->owner_words += v->n;
    if (v->kind == MPC__V_WEIGHT)
      p->weight_words += v->n;
  }
  return 0;
}

unsigned mpc_plan_rounds(const mpc_plan_t *p) { return p->rounds; }
size_t mpc_plan_ninputs(const mpc_plan_t *p) { return p->ninputs; }
size_t mpc_plan_noutputs(const mpc_plan_t *p) { return p->noutputs; }

const mpc_shape_t *mpc_plan_input_shape(const mpc_plan_t *p, size_t i) {
  return i < p->ninputs ? &p->vals[p->inputs[i]].shape : NULL;
}

const mpc_shape_t *mpc_plan_output_shape(const mpc_plan_t *p, size_t i) {
  return i < p->noutputs ? &p->vals[p->outputs[i]].shape : NULL;
}

size_t mpc_plan_prep_bytes(const mpc_plan_t *p, mpc_role_t role) {
  switch (role) {
  case MPC_P0:
    return MPC__SEED_BYTES + p->nkey;
  case MPC_P1:
    return MPC__SEED_BYTES + 8 * p->ncorr + p->nkey;
  case MPC_CLIENT:
    return MPC__SEED_BYTES;
  default:
    return 0;
  }
}

static const char *gate_kind_name(mpc__gkind_t k) {
  static const char *const names[] = {"input", "bilinear", "triple", "open", "fss",
                                      "max-level", "add", "sub", "mulc", "layout",
                                      "avgpool", "output", "smooth", "max-all"};
  return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

size_t mpc_plan_ngates(const mpc_plan_t *p) {
  return p->ngates;
}

static const char *gate_what(const mpc__gate_t *g) {
  if (g->kind == MPC__G_SMOOTH)
    return g->fn == (int)MPC__FN_EXP_WIDE       ? "Exp"
           : g->fn == (int)MPC__FN_RECIP_SIGNED ? "Reciprocal"
           : g->fn == (int)MPC__FN_GELU_IN      ? "Gelu"
           : g->fn == (int)MPC__FN_GELUT_IN     ? "GeluTanh"
           : g->fn == (int)MPC__FN_RAMP6        ? "Gelu ramp"
                                                : mpc_op_name((mpc_op_t)g->fn);
  if (g->kind == MPC__G_NONLIN)
    return g->relu ? (g->shift ? "relu+trunc" : "relu") : "trunc";
  if (g->kind == MPC__G_MAXALL)
    return g->pick ? "max-pick" : "max-pairs";
  return gate_kind_name(g->kind);
}

int mpc_plan_gate(const mpc_plan_t *p, size_t i, mpc_gate_info_t *out) {
  if (p == NULL || out == NULL || i >= p->ngates)
    return TANDEM_EINVAL;
  const mpc__gate_t *g = &p->gates[i];
  memset(out, 0, sizeof *out);
  out->kind = gate_what(g);
  out->label = g->label;
  out->n = g->out >= 0 ? p->vals[g->out].n : p->vals[g->in[0]].n;
  out->rounds = g->rounds;
  out->round = g->round;
  out->online_bytes = (uint64_t)g->nsend * 8;
  out->prep_bytes[0] = g->nkey;
  out->prep_bytes[1] = g->nkey + (uint64_t)g->ncorr * 8;
  if (g->kind == MPC__G_NONLIN || g->kind == MPC__G_MAXLEVEL || g->kind == MPC__G_MAXALL) {
    int mode = g->kind == MPC__G_MAXLEVEL ? 2
               : g->kind == MPC__G_MAXALL ? (g->pick ? 4 : 3)
                                          : g->relu;
    out->bound_bits = g->bound;
    out->dcf_bits = mpc__fss_dcf_bits(mode, g->shift, g->bound);
    out->compared = g->kind == MPC__G_MAXLEVEL ? (g->levelm / 2) * g->levelp
                    : g->kind == MPC__G_MAXALL && !g->pick
                        ? g->levelm * (g->levelm - 1) / 2 * g->levelp
                        : out->n;
    out->key_bytes = g->nkey;
  }
  if (g->kind == MPC__G_SMOOTH) {
    size_t nc, nk;
    mpc__smooth_sizes(g, p->f, out->n, &nc, &nk, &out->dcf_bits, NULL);
    out->bound_bits = g->bound;
    out->compared = out->n; /* one DCF key each, whatever its points */
    out->key_bytes = g->nkey;
  }
  if (g->kind == MPC__G_BILIN || g->kind == MPC__G_TRIPLE) {
    const mpc__lin_t *l = &g->lin;
    if (l->form == MPC__L_CONV) {
      out->gemm_m = l->cout;
      out->gemm_k = l->k;
      out->gemm_n = l->ohw;
      out->gemm_count = l->batch;
    } else if (l->form == MPC__L_BMM) {
      out->gemm_m = l->m;
      out->gemm_k = l->k;
      out->gemm_n = l->n;
      out->gemm_count = l->batch;
    } else {
      out->gemm_m = l->m;
      out->gemm_k = l->k;
      out->gemm_n = l->n;
      out->gemm_count = 1;
    }
  }
  return 0;
}

void mpc_plan_describe(const mpc_plan_t *p, void (*line)(void *ctx, const char *s), void *ctx) {
  char buf[256];
  for (size_t i = 0; i < p->ngates; i++) {
    const mpc__gate_t *g = &p->gates[i];
    const char *what = gate_what(g);
    size_t n = g->out >= 0 ? p->vals[g->out].n : p->vals[g->in[0]].n;
    snprintf(buf, sizeof buf, "%3zu %-10s %-24s n=%-8zu round=%u%s", i, what, g->label, n,
             g->round, g->rounds ? " (1 round)" : "");
    line(ctx, buf);
  }
}
