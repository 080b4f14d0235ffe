/* persist.c - byte formats for what outlives one process: the public graph
 * (mpc_graph_save/mpc_graph_load), a compute party's model state
 * (mpc_party_export/import) and the dealer's (mpc_dealer_export/import).
 *
 * The public graph is what the model owner sends the parties and the dealer
 * in place of the ONNX file: operators, attributes, shapes and public
 * constants, never a weight. A loaded graph is rebuilt node by node through
 * mpc_graph_add, so every index, attribute and shape is checked again as if
 * the graph were built by hand, and the inferred shapes must equal the ones
 * written: a file that parses is a graph the plan compiler accepts.
 *
 * Model state is everything a party keeps from mpc_party_setup: the pair key
 * P0 and P1 drew together (32 bytes), then per param (in the owner's order)
 * its share, and for a weight also its share of R_W and the
 * opened W + R_W. The params of a graph are the same whatever the batch size
 * of the plan, so the state of one plan imports into the plan of any batch
 * size of the same graph (the daemons compile one plan per batch size they
 * serve). All formats are little-endian with a magic and a version; integrity
 * against corruption on disk is the caller's (the daemons seal files with a
 * hash), this layer checks structure and sizes.
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

#define GRAPH_MAGIC 0x47444d54u /* "TMDG" */
#define PARTY_MAGIC 0x50444d54u /* "TMDP" */
#define DEALER_MAGIC 0x44444d54u /* "TMDD" */
#define PARTY_VERSION 2u       /* a party's model state; 2: the pair key */
#define DEALER_VERSION 1u      /* the dealer's model state */
/* Public graphs; 2: input_bound; 3: mag_log2; 4: per-node flags (an
 * INPUT's `batched`; earlier versions load every INPUT as batched, which is
 * what they meant); 5: the attributes of Concat and Select after each
 * node's flags (axis, per-axis start, step and divisor, whether axis 0
 * follows the batch, and an output's client-side function); 6: graph flags
 * after the magnitudes (bit 0: exact mode; earlier versions load as default
 * mode) and the declared least input (input_min; -infinity: none, as
 * earlier versions load); 7: bit 1 of an INPUT's flags, token ids (`ids`,
 * one-hot along the last axis; earlier versions have none). */
#define GRAPH_VERSION 7u
#define MAX_NODES ((size_t)1 << 20)

/* ---- a growable little-endian writer and a bounded reader ---------------- */

typedef struct {
  uint8_t *buf;
  size_t len, cap;
  int fail;
} wr_t;

static void put(wr_t *w, const void *p, size_t n) {
  if (w->fail)
    return;
  if (w->cap - w->len < n) {
    size_t cap = w->cap ? w->cap : 1024;
    while (cap - w->len < n) {
      if (cap > SIZE_MAX / 2) {
        w->fail = 1;
        return;
      }
      cap *= 2;
    }
    uint8_t *b = realloc(w->buf, cap);
    if (b == NULL) {
      w->fail = 1;
      return;
    }
    w->buf = b;
    w->cap = cap;
  }
  memcpy(w->buf + w->len, p, n);
  w->len += n;
}
static void put_u32(wr_t *w, uint32_t v) { put(w, &v, 4); }
static void put_i32(wr_t *w, int32_t v) { put(w, &v, 4); }
static void put_u64(wr_t *w, uint64_t v) { put(w, &v, 8); }
static void put_f64(wr_t *w, double v) { put(w, &v, 8); }

typedef struct {
  const uint8_t *p;
  size_t left;
  int fail;
} rd_t;

static void get(rd_t *r, void *out, size_t n) {
  if (r->fail || r->left < n) {
    r->fail = 1;
    memset(out, 0, n);
    return;
  }
  memcpy(out, r->p, n);
  r->p += n;
  r->left -= n;
}
static uint32_t get_u32(rd_t *r) { uint32_t v; get(r, &v, 4); return v; }
static int32_t get_i32(rd_t *r) { int32_t v; get(r, &v, 4); return v; }
static uint64_t get_u64(rd_t *r) { uint64_t v; get(r, &v, 8); return v; }
static double get_f64(rd_t *r) { double v; get(r, &v, 8); return v; }

/* ---- the public graph ------------------------------------------------------ */

int mpc_graph_save(const mpc_graph_t *g, uint8_t **out, size_t *len) {
  if (g == NULL || out == NULL || len == NULL)
    return TANDEM_EINVAL;
  *out = NULL;
  *len = 0;
  wr_t w = {0};
  put_u32(&w, GRAPH_MAGIC);
  put_u32(&w, GRAPH_VERSION);
  put_u32(&w, g->frac_bits);
  put_u32(&w, g->bound_bits);
  put_f64(&w, g->input_bound);
  put_u64(&w, g->nnodes);
  for (size_t i = 0; i < g->nnodes; i++) {
    const mpc_node_t *nd = &g->nodes[i];
    const mpc_attr_t *a = &nd->attr;
    put_u32(&w, (uint32_t)nd->op);
    for (int k = 0; k < 3; k++)
      put_i32(&w, nd->in[k]);
    put_i32(&w, a->trans_a);
    put_i32(&w, a->trans_b);
    put_f64(&w, a->alpha);
    put_f64(&w, a->beta);
    put_f64(&w, a->scalar);
    put_u64(&w, a->kh);
    put_u64(&w, a->kw);
    for (int k = 0; k < 4; k++)
      put_u64(&w, a->pads[k]);
    for (int k = 0; k < 2; k++) {
      put_u64(&w, a->strides[k]);
      put_u64(&w, a->dilations[k]);
    }
    put_i32(&w, a->count_include_pad);
    for (int k = 0; k < MPC_MAX_DIMS; k++)
      put_u32(&w, a->perm[k]);
    put_u32(&w, nd->shape.ndim);
    for (int k = 0; k < MPC_MAX_DIMS; k++)
      put_u64(&w, nd->shape.dim[k]);
    put(&w, nd->name, sizeof nd->name);
    put_u32(&w, nd->op != MPC_OP_INPUT ? 0u : (nd->batched ? 1u : 0u) | (nd->ids ? 2u : 0u));
    put_i32(&w, a->axis);
    for (int k = 0; k < MPC_MAX_DIMS; k++) {
      put_u64(&w, (uint64_t)a->sel_start[k]);
      put_u64(&w, (uint64_t)a->sel_step[k]);
      put_u32(&w, a->sel_div[k]);
    }
    put_i32(&w, a->sel_batch);
    put_i32(&w, a->post);
    if (nd->op == MPC_OP_CONST) {
      size_t n = mpc_shape_numel(&nd->shape);
      if (n > 0 && nd->cdata == NULL)
        w.fail = 1;
      else
        for (size_t j = 0; j < n; j++)
          put_f64(&w, nd->cdata[j]);
    }
  }
  /* The per-node magnitude exponents, if the owner computed them. */
  int has_mag = g->mag_log2 != NULL && g->nmag == g->nnodes;
  put_u32(&w, (uint32_t)has_mag);
  if (has_mag)
    put(&w, g->mag_log2, g->nnodes);
  put_u32(&w, g->exact ? 1u : 0u);
  put_f64(&w, g->input_min);
  if (w.fail) {
    free(w.buf);
    return TANDEM_ENOMEM;
  }
  *out = w.buf;
  *len = w.len;
  return 0;
}

static int gload_fail(mpc_graph_t *g, double *store, int rc, char *err, size_t errlen,
                      const char *what, size_t node) {
  if (err != NULL && errlen > 0 && what != NULL)
    snprintf(err, errlen, "public graph, node %zu: %s", node, what);
  free(store);
  mpc_graph_close(g);
  return rc;
}

int mpc_graph_load(mpc_graph_t *g, const void *buf, size_t len, char *err,
                   size_t errlen) {
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (g == NULL || (buf == NULL && len > 0))
    return TANDEM_EINVAL;
  mpc_graph_init(g);
  rd_t r = {buf, len, 0};
  uint32_t magic = get_u32(&r), version = get_u32(&r);
  uint32_t f = get_u32(&r), bound = get_u32(&r);
  double input_bound = get_f64(&r);
  uint64_t nnodes = get_u64(&r);
  if (r.fail || magic != GRAPH_MAGIC)
    return gload_fail(g, NULL, TANDEM_EPARSE, err, errlen, "not a Tandem public graph", 0);
  if (version < 2 || version > GRAPH_VERSION)
    return gload_fail(g, NULL, TANDEM_EPARSE, err, errlen, "unknown format version", 0);
  if (f < KERN_FIX_FRAC_MIN || f > KERN_FIX_FRAC_MAX || bound < 2 * f || bound > 62 ||
      nnodes > MAX_NODES || !(input_bound >= 0 && input_bound < 1e300))
    return gload_fail(g, NULL, TANDEM_EPARSE, err, errlen, "bad header fields", 0);
  g->frac_bits = f;
  g->bound_bits = bound;
  g->input_bound = input_bound;
  /* Constants live in one array owned by the graph; its size is only known
   * once every node is read, so a first pass measures it. */
  size_t nconst = 0;
  double *store = NULL;
  for (int pass = 0; pass < 2; pass++) {
    rd_t q = r;
    size_t cpos = 0;
    if (pass == 1) {
      store = calloc(nconst ? nconst : 1, sizeof *store);
      if (store == NULL)
        return gload_fail(g, NULL, TANDEM_ENOMEM, err, errlen, "out of memory", 0);
    }
    for (size_t i = 0; i < nnodes; i++) {
      mpc_node_t nd;
      memset(&nd, 0, sizeof nd);
      mpc_attr_t *a = &nd.attr;
      uint32_t op = get_u32(&q);
      for (int k = 0; k < 3; k++)
        nd.in[k] = get_i32(&q);
      a->trans_a = get_i32(&q);
      a->trans_b = get_i32(&q);
      a->alpha = get_f64(&q);
      a->beta = get_f64(&q);
      a->scalar = get_f64(&q);
      a->kh = get_u64(&q);
      a->kw = get_u64(&q);
      for (int k = 0; k < 4; k++)
        a->pads[k] = get_u64(&q);
      for (int k = 0; k < 2; k++) {
        a->strides[k] = get_u64(&q);
        a->dilations[k] = get_u64(&q);
      }
      a->count_include_pad = get_i32(&q);
      for (int k = 0; k < MPC_MAX_DIMS; k++)
        a->perm[k] = get_u32(&q);
      nd.shape.ndim = get_u32(&q);
      for (int k = 0; k < MPC_MAX_DIMS; k++)
        nd.shape.dim[k] = get_u64(&q);
      get(&q, nd.name, sizeof nd.name);
      nd.name[sizeof nd.name - 1] = '\0';
      uint32_t flags = version >= 4 ? get_u32(&q) : (op == (uint32_t)MPC_OP_INPUT);
      if (version >= 5) {
        a->axis = get_i32(&q);
        for (int k = 0; k < MPC_MAX_DIMS; k++) {
          a->sel_start[k] = (int64_t)get_u64(&q);
          a->sel_step[k] = (int64_t)get_u64(&q);
          a->sel_div[k] = get_u32(&q);
        }
        a->sel_batch = get_i32(&q);
        a->post = get_i32(&q);
      }
      if (q.fail)
        return gload_fail(g, store, TANDEM_EPARSE, err, errlen, "truncated", i);
      if (op > (uint32_t)MPC_OP_LAST || nd.shape.ndim > MPC_MAX_DIMS)
        return gload_fail(g, store, TANDEM_EPARSE, err, errlen, "bad operator or rank", i);
      if (flags > (version >= 7 ? 3u : 1u) || (flags != 0 && op != (uint32_t)MPC_OP_INPUT))
        return gload_fail(g, store, TANDEM_EPARSE, err, errlen, "bad node flags", i);
      nd.op = (mpc_op_t)op;
      nd.batched = (int)(flags & 1u);
      nd.ids = (int)(flags >> 1);
      if (nd.op == MPC_OP_CONST) {
        size_t n = 1;
        for (unsigned k = 0; k < nd.shape.ndim; k++) {
          if (nd.shape.dim[k] != 0 && n > (q.left / 8) / nd.shape.dim[k])
            return gload_fail(g, store, TANDEM_EPARSE, err, errlen,
                              "constant larger than the file", i);
          n *= nd.shape.dim[k];
        }
        if (n > q.left / 8)
          return gload_fail(g, store, TANDEM_EPARSE, err, errlen,
                            "constant larger than the file", i);
        if (pass == 0) {
          q.p += 8 * n;
          q.left -= 8 * n;
          nconst += n;
          continue;
        }
        get(&q, store + cpos, 8 * n);
        nd.cdata = store + cpos;
        cpos += n;
      }
      if (pass == 0)
        continue;
      mpc_shape_t want = nd.shape;
      char why[200];
      int rc = mpc_graph_add(g, &nd, why, sizeof why);
      if (rc < 0)
        return gload_fail(g, store, rc == TANDEM_ENOMEM ? rc : TANDEM_EPARSE, err, errlen,
                          why[0] ? why : "rejected by the graph builder", i);
      const mpc_shape_t *got = &g->nodes[rc].shape;
      if (got->ndim != want.ndim ||
          memcmp(got->dim, want.dim, want.ndim * sizeof want.dim[0]) != 0)
        return gload_fail(g, store, TANDEM_EPARSE, err, errlen,
                          "stored shape differs from the inferred one", i);
    }
    if (pass == 1 && version >= 3) {
      uint32_t has_mag = get_u32(&q);
      if (q.fail || has_mag > 1 || (has_mag && q.left < nnodes))
        return gload_fail(g, store, TANDEM_EPARSE, err, errlen, "truncated magnitudes",
                          nnodes);
      if (has_mag) {
        if ((g->mag_log2 = malloc(nnodes + 1)) == NULL)
          return gload_fail(g, store, TANDEM_ENOMEM, err, errlen, "out of memory", nnodes);
        get(&q, g->mag_log2, nnodes);
        g->nmag = nnodes;
        for (size_t i = 0; i < nnodes; i++)
          if (g->mag_log2[i] < -64 || g->mag_log2[i] > 64)
            return gload_fail(g, store, TANDEM_EPARSE, err, errlen, "bad magnitude", i);
      }
    }
    if (pass == 1 && version >= 6) {
      uint32_t flags = get_u32(&q);
      double lo = get_f64(&q);
      if (q.fail || flags > 1)
        return gload_fail(g, store, TANDEM_EPARSE, err, errlen, "bad graph flags", nnodes);
      if (!(lo == -HUGE_VAL || (lo > -1e300 && lo < 1e300)) ||
          (g->input_bound > 0 && lo > g->input_bound))
        return gload_fail(g, store, TANDEM_EPARSE, err, errlen, "bad least input", nnodes);
      g->exact = (int)flags;
      g->input_min = lo;
    }
    if (pass == 1 && q.left != 0)
      return gload_fail(g, store, TANDEM_EPARSE, err, errlen, "trailing bytes", nnodes);
  }
  g->cstore = store;
  return 0;
}

/* ---- model state ------------------------------------------------------------ */

/* The 16-byte header of a state: magic, version, words that follow. */
static void state_header_put(uint8_t *b, uint32_t magic, uint64_t words) {
  uint32_t hdr[2] = {magic, magic == PARTY_MAGIC ? PARTY_VERSION : DEALER_VERSION};
  memcpy(b, hdr, 8);
  memcpy(b + 8, &words, 8);
}

/* 0, TANDEM_EPARSE (not a state of this kind) or TANDEM_ESHAPE (a state of
 * another model: `words` or the length differ). */
static int state_header_check(const uint8_t *b, size_t len, uint32_t magic, uint64_t words) {
  uint32_t hdr[2];
  uint64_t got;
  if (len < 16)
    return TANDEM_EPARSE;
  memcpy(hdr, b, 8);
  memcpy(&got, b + 8, 8);
  if (hdr[0] != magic || hdr[1] != (magic == PARTY_MAGIC ? PARTY_VERSION : DEALER_VERSION))
    return TANDEM_EPARSE;
  if (got != words || len != 16 + 8 * words)
    return TANDEM_ESHAPE;
  return 0;
}

/* Words of state per param: the share, and for a weight R_W's share and W^. */
static size_t party_words(const mpc_plan_t *p) {
  size_t words = 4; /* the pair key */
  for (size_t i = 0; i < p->nparams; i++) {
    const mpc__val_t *v = &p->vals[p->params[i]];
    words += v->kind == MPC__V_WEIGHT ? 3 * v->n : v->n;
  }
  return words;
}

size_t mpc_party_state_bytes(const mpc_plan_t *p) {
  return p == NULL ? 0 : 16 + 8 * party_words(p);
}

int mpc_party_export(const mpc_party_t *pt, void *buf, size_t len) {
  if (pt == NULL || buf == NULL || !pt->setup_done)
    return TANDEM_EINVAL;
  const mpc_plan_t *p = pt->plan;
  if (len != mpc_party_state_bytes(p))
    return TANDEM_EINVAL;
  uint8_t *b = buf;
  state_header_put(b, PARTY_MAGIC, party_words(p));
  memcpy(b + 16, pt->pair_key, 32);
  size_t off = 48;
  for (size_t i = 0; i < p->nparams; i++) {
    int v = p->params[i];
    size_t n = p->vals[v].n * 8;
    memcpy(b + off, pt->slot[v].sh, n);
    off += n;
    if (p->vals[v].kind == MPC__V_WEIGHT) {
      memcpy(b + off, pt->slot[v].msh, n);
      memcpy(b + off + n, pt->slot[v].pub, n);
      off += 2 * n;
    }
  }
  return 0;
}

int mpc_party_import(mpc_party_t *pt, const void *buf, size_t len) {
  if (pt == NULL || buf == NULL)
    return TANDEM_EINVAL;
  const mpc_plan_t *p = pt->plan;
  const uint8_t *b = buf;
  int rc = state_header_check(b, len, PARTY_MAGIC, party_words(p));
  if (rc != 0)
    return rc;
  memcpy(pt->pair_key, b + 16, 32);
  size_t off = 48;
  for (size_t i = 0; i < p->nparams; i++) {
    int v = p->params[i];
    size_t n = p->vals[v].n * 8;
    memcpy(pt->slot[v].sh, b + off, n);
    off += n;
    if (p->vals[v].kind == MPC__V_WEIGHT) {
      memcpy(pt->slot[v].msh, b + off, n);
      memcpy(pt->slot[v].pub, b + off + n, n);
      off += 2 * n;
    }
  }
  pt->setup_done = 1;
  return 0;
}

static size_t dealer_words(const mpc_plan_t *p) {
  size_t words = 0;
  for (size_t i = 0; i < p->nparams; i++) {
    const mpc__val_t *v = &p->vals[p->params[i]];
    if (v->kind == MPC__V_WEIGHT)
      words += v->n;
  }
  return words;
}

size_t mpc_dealer_state_bytes(const mpc_plan_t *p) {
  return p == NULL ? 0 : 16 + 8 * dealer_words(p);
}

int mpc_dealer_export(const mpc_dealer_t *d, void *buf, size_t len) {
  if (d == NULL || buf == NULL || !mpc__dealer_ready(d))
    return TANDEM_EINVAL;
  const mpc_plan_t *p = mpc__dealer_plan(d);
  if (len != mpc_dealer_state_bytes(p))
    return TANDEM_EINVAL;
  uint8_t *b = buf;
  state_header_put(b, DEALER_MAGIC, dealer_words(p));
  size_t off = 16;
  for (size_t i = 0; i < p->nparams; i++) {
    int v = p->params[i];
    if (p->vals[v].kind != MPC__V_WEIGHT)
      continue;
    memcpy(b + off, mpc__dealer_mask(d, v), p->vals[v].n * 8);
    off += p->vals[v].n * 8;
  }
  return 0;
}

int mpc_dealer_import(mpc_dealer_t *d, const void *buf, size_t len) {
  if (d == NULL || buf == NULL)
    return TANDEM_EINVAL;
  const mpc_plan_t *p = mpc__dealer_plan(d);
  const uint8_t *b = buf;
  int rc = state_header_check(b, len, DEALER_MAGIC, dealer_words(p));
  if (rc != 0)
    return rc;
  size_t off = 16;
  for (size_t i = 0; i < p->nparams; i++) {
    int v = p->params[i];
    if (p->vals[v].kind != MPC__V_WEIGHT)
      continue;
    memcpy(mpc__dealer_mask(d, v), b + off, p->vals[v].n * 8);
    off += p->vals[v].n * 8;
  }
  mpc__dealer_set_ready(d);
  return 0;
}
