/* coord.c - a compute party and the coordinator that runs a plan round by
 * round.
 *
 * mpc_party_setup takes the owner's weight shares and the dealer's weight-mask
 * seed and opens W + R_W with the other party once (one setup round for all
 * weights together). mpc_party_query takes one query's preprocessing, the
 * client's masked input, and then walks the schedule: in round r it first runs
 * every local gate whose inputs exist at r, then writes the words of every
 * one-round gate scheduled at r into ONE frame, exchanges it with the other
 * party, and lets each of those gates finish on the two halves. The output
 * shares go to the client in one message.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpc_int.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- gate dispatch -------------------------------------------------------- */

int mpc__gate_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d) {
  switch (g->kind) {
  case MPC__G_BILIN:
  case MPC__G_TRIPLE:
    return mpc__bilin_dealer(p, g, d);
  case MPC__G_NONLIN:
  case MPC__G_MAXLEVEL:
  case MPC__G_MAXALL:
    return mpc__fss_dealer(p, g, d);
  case MPC__G_SMOOTH:
    return mpc__smooth_dealer(p, g, d);
  default:
    return mpc__linear_dealer(p, g, d);
  }
}

int mpc__gate_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                      mpc__prep_t *prep) {
  switch (g->kind) {
  case MPC__G_BILIN:
  case MPC__G_TRIPLE:
    return mpc__bilin_offline(p, g, pt, prep);
  case MPC__G_NONLIN:
  case MPC__G_MAXLEVEL:
  case MPC__G_MAXALL:
    return mpc__fss_offline(p, g, pt, prep);
  case MPC__G_SMOOTH:
    return mpc__smooth_offline(p, g, pt, prep);
  default:
    return mpc__linear_offline(p, g, pt, prep);
  }
}

int mpc__gate_send(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                   uint64_t *out) {
  switch (g->kind) {
  case MPC__G_NONLIN:
  case MPC__G_MAXLEVEL:
  case MPC__G_MAXALL:
    return mpc__fss_send(p, g, pt, out);
  case MPC__G_SMOOTH:
    return mpc__smooth_send(p, g, pt, out);
  default:
    return mpc__linear_send(p, g, pt, out);
  }
}

int mpc__gate_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                     const uint64_t *mine, const uint64_t *theirs) {
  switch (g->kind) {
  case MPC__G_BILIN:
  case MPC__G_TRIPLE:
    return mpc__bilin_finish(p, g, pt);
  case MPC__G_NONLIN:
  case MPC__G_MAXLEVEL:
  case MPC__G_MAXALL:
    return mpc__fss_finish(p, g, pt, mine, theirs);
  case MPC__G_SMOOTH:
    return mpc__smooth_finish(p, g, pt, mine, theirs);
  default:
    return mpc__linear_finish(p, g, pt, mine, theirs);
  }
}

/* ---- party object ---------------------------------------------------------- */

/* The hash of the client's masked input each party adds to its first
 * round's frame (32 bytes). */
#define IN_HASH_WORDS 4

size_t mpc__max_round_words(const mpc_plan_t *p) {
  size_t m = 0;
  for (unsigned r = 0; r < p->rounds; r++)
    if (p->round_words[r] > m)
      m = p->round_words[r];
  if (p->weight_words > m)
    m = p->weight_words;
  if (p->in_words > m)
    m = p->in_words;
  if (p->out_words > m)
    m = p->out_words;
  if (p->owner_words > m)
    m = p->owner_words;
  return m + IN_HASH_WORDS; /* round 0 carries the masked input's hash too */
}

int mpc_party_new(mpc_party_t **out, const mpc_plan_t *p, mpc_role_t self) {
  *out = NULL;
  if (p == NULL || (self != MPC_P0 && self != MPC_P1))
    return TANDEM_EINVAL;
  mpc_party_t *pt = calloc(1, sizeof *pt);
  if (pt == NULL)
    return TANDEM_ENOMEM;
  pt->plan = p;
  pt->self = self == MPC_P0 ? 0 : 1;
  pt->slot = calloc(p->nvals ? p->nvals : 1, sizeof *pt->slot);
  pt->gs = calloc(p->ngates ? p->ngates : 1, sizeof *pt->gs);
  size_t mw = mpc__max_round_words(p);
  pt->sendbuf = mpc__calloc(mw, sizeof *pt->sendbuf);
  pt->recvbuf = mpc__calloc(mw, sizeof *pt->recvbuf);
  pt->prepbytes = mpc_plan_prep_bytes(p, self);
  pt->prepbuf = mpc__calloc(pt->prepbytes, 1);
  if (pt->slot == NULL || pt->gs == NULL || pt->sendbuf == NULL || pt->recvbuf == NULL ||
      pt->prepbuf == NULL)
    goto fail;
  for (size_t v = 0; v < p->nvals; v++) {
    const mpc__val_t *val = &p->vals[v];
    mpc__slot_t *s = &pt->slot[v];
    int need_pub = val->kind == MPC__V_MASKED || val->kind == MPC__V_WEIGHT ||
                   val->kind == MPC__V_PUBLIC;
    int need_msh = val->kind == MPC__V_MASKED || val->kind == MPC__V_WEIGHT;
    int need_sh = val->kind != MPC__V_MASKED && val->kind != MPC__V_PUBLIC;
    if ((need_pub && (s->pub = mpc__calloc(val->n, 8)) == NULL) ||
        (need_msh && (s->msh = mpc__calloc(val->n, 8)) == NULL) ||
        (need_sh && (s->sh = mpc__calloc(val->n, 8)) == NULL))
      goto fail;
    if (val->kind == MPC__V_PUBLIC) {
      const mpc_node_t *nd = &p->graph->nodes[val->node];
      if (mpc__encode(s->pub, nd->cdata, val->n, p->f, val->scale, val->fold, NULL) != 0)
        goto fail_range;
    }
  }
  *out = pt;
  return 0;
fail_range:
  mpc_party_free(pt);
  return TANDEM_ERANGE;
fail:
  mpc_party_free(pt);
  return TANDEM_ENOMEM;
}

void mpc_party_free(mpc_party_t *pt) {
  if (pt == NULL)
    return;
  const mpc_plan_t *p = pt->plan;
  if (pt->slot != NULL)
    for (size_t v = 0; v < p->nvals; v++) {
      size_t b = (p->vals[v].n ? p->vals[v].n : 1) * 8;
      mpc__wipe_free(pt->slot[v].pub, b);
      mpc__wipe_free(pt->slot[v].msh, b);
      mpc__wipe_free(pt->slot[v].sh, b);
    }
  if (pt->gs != NULL)
    for (size_t i = 0; i < p->ngates; i++) {
      mpc__wipe_free(pt->gs[i].pre, pt->gs[i].npre * 8);
      mpc__wipe_free(pt->gs[i].consts, pt->gs[i].nconsts * 8);
      mpc__wipe_free(pt->gs[i].work, pt->gs[i].nwork * 8);
    }
  free(pt->slot);
  free(pt->gs);
  size_t mw = mpc__max_round_words(p);
  sodium_memzero(pt->pair_key, sizeof pt->pair_key);
  mpc__wipe_free(pt->sendbuf, (mw ? mw : 1) * 8);
  mpc__wipe_free(pt->recvbuf, (mw ? mw : 1) * 8);
  mpc__wipe_free(pt->prepbuf, pt->prepbytes ? pt->prepbytes : 1);
  free(pt);
}

/* ---- setup: weights, once per model ------------------------------------------ */

int mpc_party_setup(mpc_party_t *pt, mpc_transport_t *t) {
  const mpc_plan_t *p = pt->plan;
  double t0 = now_s();
  t->phase = MPC_PHASE_SETUP;
  uint8_t seed[MPC__SEED_BYTES];
  kern_prg_t prg;
  int rc;
  /* The owner's shares: P0 gets a seed, P1 the corrected values. */
  if (pt->self == 0) {
    /* The seed is wiped on every path, the failed ones too (a transport
     * may have written part of it before failing). */
    rc = mpc_transport_recv(t, MPC_OWNER, seed, sizeof seed);
    if (rc >= 0 && kern_prg_init(&prg, seed, sizeof seed) != 0)
      rc = TANDEM_ECRYPTO;
    sodium_memzero(seed, sizeof seed);
    if (rc < 0)
      return rc;
    for (size_t i = 0; i < p->nparams && rc == 0; i++) {
      int v = p->params[i];
      if (kern_prg_u64(&prg, pt->slot[v].sh, p->vals[v].n) != 0)
        rc = TANDEM_ECRYPTO;
    }
    kern_prg_close(&prg);
  } else {
    uint64_t *buf = pt->sendbuf;
    if ((rc = mpc_transport_recv(t, MPC_OWNER, buf, p->owner_words * 8)) < 0)
      return rc;
    size_t off = 0;
    for (size_t i = 0; i < p->nparams; i++) {
      int v = p->params[i];
      memcpy(pt->slot[v].sh, buf + off, p->vals[v].n * 8);
      off += p->vals[v].n;
    }
  }
  if (rc < 0)
    return rc;
  /* The dealer's weight masks. */
  rc = mpc_transport_recv(t, MPC_DEALER, seed, sizeof seed);
  if (rc >= 0 && kern_prg_init(&prg, seed, sizeof seed) != 0)
    rc = TANDEM_ECRYPTO;
  sodium_memzero(seed, sizeof seed);
  if (rc < 0)
    return rc;
  size_t off = 0;
  for (size_t i = 0; i < p->nparams && rc == 0; i++) {
    int v = p->params[i];
    const mpc__val_t *val = &p->vals[v];
    if (val->kind != MPC__V_WEIGHT)
      continue;
    if (kern_prg_u64(&prg, pt->slot[v].msh, val->n) != 0)
      rc = TANDEM_ECRYPTO;
    kern_add(pt->sendbuf + off, pt->slot[v].sh, pt->slot[v].msh, val->n);
    off += val->n;
  }
  kern_prg_close(&prg);
  if (rc < 0)
    return rc;
  /* Open W^ = W + R_W: one round for every weight of the model, which also
   * carries each party's half of the pair key. */
  mpc_role_t other = pt->self == 0 ? MPC_P1 : MPC_P0;
  uint8_t *half = (uint8_t *)(pt->sendbuf + p->weight_words);
  randombytes_buf(half, IN_HASH_WORDS * 8);
  size_t sb = (p->weight_words + IN_HASH_WORDS) * 8;
  if ((rc = mpc_transport_exchange(t, other, pt->sendbuf, sb, pt->recvbuf, sb)) < 0) {
    /* This party's half of the pair key, and whatever came of the other's. */
    sodium_memzero(half, IN_HASH_WORDS * 8);
    sodium_memzero(pt->recvbuf + p->weight_words, IN_HASH_WORDS * 8);
    return rc;
  }
  const uint8_t *theirs = (const uint8_t *)(pt->recvbuf + p->weight_words);
  crypto_generichash_state hs;
  crypto_generichash_init(&hs, NULL, 0, sizeof pt->pair_key);
  crypto_generichash_update(&hs, pt->self == 0 ? half : theirs, IN_HASH_WORDS * 8);
  crypto_generichash_update(&hs, pt->self == 0 ? theirs : half, IN_HASH_WORDS * 8);
  crypto_generichash_final(&hs, pt->pair_key, sizeof pt->pair_key);
  sodium_memzero(&hs, sizeof hs);
  sodium_memzero(half, IN_HASH_WORDS * 8);
  sodium_memzero(pt->recvbuf + p->weight_words, IN_HASH_WORDS * 8);
  off = 0;
  for (size_t i = 0; i < p->nparams; i++) {
    int v = p->params[i];
    if (p->vals[v].kind != MPC__V_WEIGHT)
      continue;
    kern_add(pt->slot[v].pub, pt->sendbuf + off, pt->recvbuf + off, p->vals[v].n);
    off += p->vals[v].n;
  }
  pt->setup_done = 1;
  t->stats.seconds[MPC_PHASE_SETUP] += now_s() - t0;
  return 0;
}

/* ---- one query ----------------------------------------------------------------- */

static int offline(mpc_party_t *pt, mpc_transport_t *t) {
  const mpc_plan_t *p = pt->plan;
  t->phase = MPC_PHASE_OFFLINE;
  int rc = mpc_transport_recv(t, MPC_DEALER, pt->prepbuf, pt->prepbytes);
  if (rc < 0)
    return rc;
  mpc__prep_t prep;
  memset(&prep, 0, sizeof prep);
  prep.party = pt->self;
  if (kern_prg_init(&prep.prg, pt->prepbuf, MPC__SEED_BYTES) != 0)
    return TANDEM_ECRYPTO;
  uint8_t *cur = pt->prepbuf + MPC__SEED_BYTES;
  if (pt->self == 1) {
    prep.corr = (uint64_t *)(void *)cur; /* 8-aligned: calloc'd, seed is 32 bytes */
    prep.ncorr = p->ncorr;
    cur += 8 * p->ncorr;
  }
  prep.keys = cur;
  prep.nkey = p->nkey;
  for (size_t i = 0; i < p->ngates; i++)
    pt->gs[i].online_s = 0;
  for (size_t i = 0; i < p->ngates && rc == 0; i++) {
    double g0 = now_s();
    rc = mpc__gate_offline(p, &p->gates[i], pt, &prep);
    pt->gs[i].offline_s = now_s() - g0;
  }
  if (rc == 0 && (prep.corr_pos != prep.ncorr || prep.key_pos != prep.nkey))
    rc = TANDEM_EPROTO;
  kern_prg_close(&prep.prg);
  return rc;
}

static int run_local(mpc_party_t *pt, unsigned r) {
  const mpc_plan_t *p = pt->plan;
  for (size_t i = 0; i < p->ngates; i++) {
    const mpc__gate_t *g = &p->gates[i];
    if (g->rounds || g->ready != r)
      continue;
    double g0 = now_s();
    int rc = mpc__gate_finish(p, g, pt, NULL, NULL);
    pt->gs[i].online_s += now_s() - g0;
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* out (32 bytes) = a MAC of the client's masked input x (len bytes) under
 * the pair key, which the client does not know, so it cannot make two inputs
 * with one MAC: PMAC-style on the batched AES kernel, T = AES_K1(len ^ XOR_i
 * AES_K1(x_i ^ AES_K2(i))) over the 16-byte blocks x_i (the last one
 * zero-padded), then hashed to 32 bytes. BLAKE2b of the whole input cost
 * 2.4 ms for the 1.6 MB of a 128x784 input; this is three AES passes. */
static int input_mac(const mpc_party_t *pt, const uint8_t *x, size_t len, uint8_t *out) {
  enum { CHUNK = 1024 };
  uint8_t k[32], off[CHUNK * 16], blk[CHUNK * 16];
  crypto_generichash(k, sizeof k, (const uint8_t *)"tandem input mac", 16, pt->pair_key,
                     sizeof pt->pair_key);
  kern_aes_ks_t ks1, ks2;
  kern_aes128_init(&ks1, k);
  kern_aes128_init(&ks2, k + 16);
  uint64_t acc[2] = {0, 0};
  size_t nb = (len + 15) / 16;
  int rc = 0;
  for (size_t b0 = 0; b0 < nb && rc == 0; b0 += CHUNK) {
    size_t n = nb - b0 < CHUNK ? nb - b0 : CHUNK;
    memset(off, 0, n * 16);
    for (size_t i = 0; i < n; i++) {
      uint64_t idx = b0 + i;
      memcpy(off + 16 * i, &idx, 8);
    }
    size_t bytes = len - b0 * 16 < n * 16 ? len - b0 * 16 : n * 16;
    memcpy(blk, x + b0 * 16, bytes);
    memset(blk + bytes, 0, n * 16 - bytes);
    if ((rc = kern_aes128_ecb(&ks2, off, off, n)) != 0)
      break;
    for (size_t i = 0; i < n * 16; i++)
      blk[i] ^= off[i];
    if ((rc = kern_aes128_ecb(&ks1, blk, blk, n)) != 0)
      break;
    for (size_t i = 0; i < n; i++) {
      uint64_t w[2];
      memcpy(w, blk + 16 * i, 16);
      acc[0] ^= w[0];
      acc[1] ^= w[1];
    }
  }
  uint8_t fin[16];
  acc[1] ^= (uint64_t)len;
  memcpy(fin, acc, 16);
  if (rc == 0 && (rc = kern_aes128_ecb(&ks1, fin, fin, 1)) == 0)
    crypto_generichash(out, IN_HASH_WORDS * 8, fin, sizeof fin, NULL, 0);
  sodium_memzero(k, sizeof k);
  sodium_memzero(&ks1, sizeof ks1);
  sodium_memzero(&ks2, sizeof ks2);
  sodium_memzero(off, sizeof off);
  sodium_memzero(blk, sizeof blk);
  sodium_memzero(fin, sizeof fin);
  return rc;
}

/* sendbuf's out_words output shares +- PRF_K(in_hash) (see online). */
static int pad_outputs(mpc_party_t *pt, const uint8_t *in_hash, size_t hlen) {
  const mpc_plan_t *p = pt->plan;
  uint8_t seed[32];
  crypto_generichash(seed, sizeof seed, in_hash, hlen, pt->pair_key, sizeof pt->pair_key);
  kern_prg_t prg;
  int rc = kern_prg_init(&prg, seed, sizeof seed) != 0 ? TANDEM_ECRYPTO : 0;
  sodium_memzero(seed, sizeof seed);
  if (rc != 0)
    return rc;
  uint64_t *pad = pt->recvbuf; /* free once the input is in the slots */
  if (kern_prg_u64(&prg, pad, p->out_words) != 0)
    rc = TANDEM_ECRYPTO;
  kern_prg_close(&prg);
  if (rc == 0) {
    if (pt->self == 0)
      kern_add(pt->sendbuf, pt->sendbuf, pad, p->out_words);
    else
      kern_sub(pt->sendbuf, pt->sendbuf, pad, p->out_words);
  }
  sodium_memzero(pad, p->out_words * 8);
  return rc;
}

static int online(mpc_party_t *pt, mpc_transport_t *t) {
  const mpc_plan_t *p = pt->plan;
  t->phase = MPC_PHASE_ONLINE;
  /* The client's masked inputs, concatenated in input order. */
  int rc = mpc_transport_recv(t, MPC_CLIENT, pt->recvbuf, p->in_words * 8);
  if (rc < 0)
    return rc;
  /* The online phase is timed from the masked input's arrival: how long the
   * client takes to send it is not the protocol's work. */
  double t_in = now_s();
  t->stats.online_start = t_in;
  size_t off = 0;
  for (size_t i = 0; i < p->ninputs; i++) {
    int v = p->inputs[i];
    memcpy(pt->slot[v].pub, pt->recvbuf + off, p->vals[v].n * 8);
    off += p->vals[v].n;
  }
  /* P0 and P1 must hold the same masked input: a client that sent them
   * different ones (X^_1 = X^_0 + D) would get outputs that depend on the
   * weights beyond the model's result (L(D, <W>_1) in the first layer). Each
   * adds a MAC of its X^ under the pair key (input_mac; X^ is public to both,
   * so it tells the other nothing new) to its first round's frame, no extra
   * round, and no output share leaves before the two agree. A plan with no round sends nothing between the
   * parties: there each pads its output shares with PRF_K(hash), P0 adding
   * and P1 subtracting, K the pair key the client does not know; the pads
   * cancel when the hashes agree and leave the client noise when not. */
  uint8_t in_hash[IN_HASH_WORDS * 8];
  if ((rc = input_mac(pt, (const uint8_t *)pt->recvbuf, p->in_words * 8, in_hash)) < 0)
    return rc;
  mpc_role_t other = pt->self == 0 ? MPC_P1 : MPC_P0;
  for (unsigned r = 0; r <= p->rounds; r++) {
    if ((rc = run_local(pt, r)) < 0)
      return rc;
    if (r == p->rounds)
      break;
    off = 0;
    for (size_t i = 0; i < p->ngates; i++) {
      const mpc__gate_t *g = &p->gates[i];
      if (!g->rounds || g->round != r)
        continue;
      double g0 = now_s();
      rc = mpc__gate_send(p, g, pt, pt->sendbuf + off);
      pt->gs[i].online_s += now_s() - g0;
      if (rc < 0)
        return rc;
      off += g->nsend;
    }
    size_t bytes = p->round_words[r] * 8;
    if (r == 0) {
      memcpy(pt->sendbuf + p->round_words[0], in_hash, sizeof in_hash);
      bytes += sizeof in_hash;
    }
    if ((rc = mpc_transport_exchange(t, other, pt->sendbuf, bytes, pt->recvbuf, bytes)) < 0)
      return rc;
    if (r == 0 &&
        sodium_memcmp(pt->recvbuf + p->round_words[0], in_hash, sizeof in_hash) != 0)
      return TANDEM_EINPUTS;
    off = 0;
    for (size_t i = 0; i < p->ngates; i++) {
      const mpc__gate_t *g = &p->gates[i];
      if (!g->rounds || g->round != r)
        continue;
      double g0 = now_s();
      rc = mpc__gate_finish(p, g, pt, pt->sendbuf + off, pt->recvbuf + off);
      pt->gs[i].online_s += now_s() - g0;
      if (rc < 0)
        return rc;
      off += g->nsend;
    }
  }
  /* Output shares to the client. */
  off = 0;
  for (size_t i = 0; i < p->noutputs; i++) {
    int v = p->outputs[i];
    mpc__share_of(p, pt, v, pt->sendbuf + off);
    off += p->vals[v].n;
  }
  if (p->rounds == 0 && (rc = pad_outputs(pt, in_hash, sizeof in_hash)) < 0)
    return rc;
  rc = mpc_transport_send(t, MPC_CLIENT, pt->sendbuf, p->out_words * 8);
  t->stats.online_end = now_s();
  t->stats.seconds[MPC_PHASE_ONLINE] += t->stats.online_end - t_in;
  return rc;
}

int mpc_party_query(mpc_party_t *pt, mpc_transport_t *t) {
  if (!pt->setup_done)
    return TANDEM_EINVAL;
  double t0 = now_s();
  int rc = offline(pt, t);
  t->stats.seconds[MPC_PHASE_OFFLINE] += now_s() - t0;
  if (rc == 0)
    rc = online(pt, t);
  return rc;
}

int mpc_party_gate_times(const mpc_party_t *pt, size_t i, double *offline_s, double *online_s) {
  if (pt == NULL || i >= pt->plan->ngates)
    return TANDEM_EINVAL;
  *offline_s = pt->gs[i].offline_s;
  *online_s = pt->gs[i].online_s;
  return 0;
}
