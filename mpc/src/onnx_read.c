/* onnx_read.c - the reader of the ONNX importer: the messages that name a
 * node, the table of value names, steps 1 and 2 of the import (every name
 * indexed, the nodes ordered), a node's attributes and its inputs (as an
 * activation, an operand, a constant, a list of integers) and outputs, the
 * constants read from initializers and the PARAM nodes made from them (the
 * graph's inputs and outputs: onnx_io.c). Every name, length and type of
 * the model is checked here before use (onnx.c's file comment).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "onnx_imp.h"

int mpc__onnx_gfail(ctx_t *c, int code, const char *fmt, ...) {
  if (c->err != NULL && c->errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

static const char *op_type(const ctx_t *c, size_t k) {
  return str_or(nodep(c, k)->op_type, "?");
}

/* The node's name, or "<op>_<index>" for an unnamed one (PyTorch's style). */
const char *mpc__onnx_node_name(ctx_t *c, size_t k) {
  const Onnx__NodeProto *n = nodep(c, k);
  if (n->name != NULL && n->name[0] != '\0')
    return n->name;
  snprintf(c->nbuf, sizeof c->nbuf, "%.60s_%zu", op_type(c, k), k);
  return c->nbuf;
}

int mpc__onnx_nfail(ctx_t *c, size_t k, int code, const char *fmt, ...) {
  if (c->err != NULL && c->errlen > 0) {
    char what[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "node '%.200s' (%.60s): %s", mpc__onnx_node_name(c, k),
             op_type(c, k), what);
  }
  return code;
}

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

ent_t *mpc__onnx_lookup(ctx_t *c, const char *name) {
  if (name == NULL || name[0] == '\0')
    return NULL;
  for (size_t i = hash_str(name) & c->tabmask;; i = (i + 1) & c->tabmask) {
    int e = c->tab[i];
    if (e < 0)
      return NULL;
    if (strcmp(c->ents[e].name, name) == 0)
      return &c->ents[e];
  }
}

/* Adds a name; NULL if it is already there. The table was sized for every
 * name the model can define, so it never fills. */
static ent_t *insert(ctx_t *c, const char *name, src_t src, size_t idx) {
  size_t i = hash_str(name) & c->tabmask;
  for (; c->tab[i] >= 0; i = (i + 1) & c->tabmask)
    if (strcmp(c->ents[c->tab[i]].name, name) == 0)
      return NULL;
  ent_t *e = &c->ents[c->nents];
  memset(e, 0, sizeof *e);
  e->name = name;
  e->src = src;
  e->idx = idx;
  e->kind = V_UNDEF;
  e->node = -1;
  e->kidx = -1;
  c->tab[i] = (int)c->nents++;
  return e;
}

int mpc__onnx_konst_add(ctx_t *c, mpc__ctensor_t *t) {
  if (c->nkonst == c->capkonst) {
    size_t cap = c->capkonst ? 2 * c->capkonst : 16;
    konst_t *k = realloc(c->konst, cap * sizeof *k);
    if (k == NULL) {
      mpc__ctensor_close(t);
      return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
    }
    c->konst = k;
    c->capkonst = cap;
  }
  c->konst[c->nkonst].t = *t;
  c->konst[c->nkonst].param = -1;
  memset(t, 0, sizeof *t);
  return (int)c->nkonst++;
}

/* Appends an IR node for ONNX node k (k == SIZE_MAX: none) and rewrites the
 * IR's message ("node 'x' (Reshape): ...") to name the ONNX operator instead
 * (Flatten, Squeeze...). Returns the node index or a negative code. */
int mpc__onnx_add_node(ctx_t *c, size_t k, mpc_node_t *nd) {
  char m[600];
  if (nd->name[0] == '\0' && k != SIZE_MAX)
    snprintf(nd->name, sizeof nd->name, "%.63s", mpc__onnx_node_name(c, k));
  int r = mpc_graph_add(c->g, nd, m, sizeof m);
  if (r >= 0)
    return r;
  int code = r == TANDEM_EINVAL ? TANDEM_EPARSE : r;
  char pre[128];
  snprintf(pre, sizeof pre, "node '%s' (%s): ", nd->name, mpc_op_name(nd->op));
  const char *rest = strncmp(m, pre, strlen(pre)) == 0 ? m + strlen(pre) : m;
  if (k == SIZE_MAX)
    return mpc__onnx_gfail(c, code, "%s", m);
  return mpc__onnx_nfail(c, k, code, "%s", rest);
}

void mpc__onnx_node_init(mpc_node_t *nd, mpc_op_t op, int in0, int in1, int in2) {
  memset(nd, 0, sizeof *nd);
  nd->op = op;
  nd->in[0] = in0;
  nd->in[1] = in1;
  nd->in[2] = in2;
  nd->attr.alpha = nd->attr.beta = nd->attr.scalar = 1.0;
}

/* A PARAM node holding data (ownership passes to the importer, then to the
 * weights; freed here on failure). A scalar becomes shape [1]. */
int mpc__onnx_make_param(ctx_t *c, size_t k, const char *name, unsigned ndim, const size_t *dim,
                         double *data) {
  mpc_node_t nd;
  mpc__onnx_node_init(&nd, MPC_OP_PARAM, -1, -1, -1);
  snprintf(nd.name, sizeof nd.name, "%.63s", name);
  if (ndim > MPC_MAX_DIMS) {
    free(data);
    return k != SIZE_MAX
               ? mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                                 "weight '%s' has %u dimensions (at most %d)", name, ndim,
                                 MPC_MAX_DIMS)
               : mpc__onnx_gfail(c, TANDEM_EUNSUPOP, "weight '%s' has %u dimensions", name, ndim);
  }
  nd.shape.ndim = ndim ? ndim : 1;
  nd.shape.dim[0] = 1;
  for (unsigned d = 0; d < ndim; d++)
    nd.shape.dim[d] = dim[d];
  size_t n = mpc_shape_numel(&nd.shape);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(data[i])) {
      free(data);
      return mpc__onnx_nfail(c, k, TANDEM_ERANGE, "weight '%s' holds NaN or infinity", name);
    }
  if (c->npdat == c->cappdat) {
    size_t cap = c->cappdat ? 2 * c->cappdat : 16;
    pdata_t *p = realloc(c->pdat, cap * sizeof *p);
    if (p == NULL) {
      free(data);
      return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
    }
    c->pdat = p;
    c->cappdat = cap;
  }
  int r = mpc__onnx_add_node(c, k, &nd);
  if (r < 0) {
    free(data);
    return r;
  }
  c->pdat[c->npdat].node = r;
  c->pdat[c->npdat].data = data;
  c->npdat++;
  return r;
}

double *mpc__onnx_dup_doubles(const double *src, size_t n) {
  double *d = malloc((n ? n : 1) * sizeof *d);
  if (d != NULL && n > 0)
    memcpy(d, src, n * sizeof *d);
  return d;
}

/* Reads an initializer's data on first use. */
int mpc__onnx_load_init(ctx_t *c, size_t k, ent_t *e) {
  if (e->kidx >= 0)
    return 0;
  mpc__ctensor_t t;
  char why[300];
  int rc = mpc__ctensor_from_proto(c->gp->initializer[e->idx], &t, why, sizeof why);
  if (rc != 0)
    return k != SIZE_MAX ? mpc__onnx_nfail(c, k, rc, "initializer '%s': %s", e->name, why)
                         : mpc__onnx_gfail(c, rc, "initializer '%s': %s", e->name, why);
  int ki = mpc__onnx_konst_add(c, &t);
  if (ki < 0)
    return ki;
  e->kidx = ki;
  return 0;
}

const attr_t *mpc__onnx_attr_find(const ctx_t *c, size_t k, const char *name) {
  const Onnx__NodeProto *n = nodep(c, k);
  for (size_t i = 0; i < n->n_attribute; i++)
    if (n->attribute[i] != NULL && n->attribute[i]->name != NULL &&
        strcmp(n->attribute[i]->name, name) == 0)
      return n->attribute[i];
  return NULL;
}

/* Every attribute must be one this importer understands: an attribute it
 * would silently ignore could change the result. known is NULL-terminated. */
int mpc__onnx_attr_check(ctx_t *c, size_t k, const char *const *known) {
  const Onnx__NodeProto *n = nodep(c, k);
  for (size_t i = 0; i < n->n_attribute; i++) {
    const attr_t *a = n->attribute[i];
    if (a == NULL || a->name == NULL || a->name[0] == '\0')
      return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "attribute %zu has no name", i);
    if (a->ref_attr_name != NULL && a->ref_attr_name[0] != '\0')
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "attribute '%s' refers to a function attribute",
                             a->name);
    int ok = 0;
    for (const char *const *p = known; *p != NULL; p++)
      ok |= strcmp(*p, a->name) == 0;
    if (!ok)
      return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "attribute '%s' is not supported", a->name);
    for (size_t j = 0; j < i; j++)
      if (n->attribute[j]->name != NULL && strcmp(n->attribute[j]->name, a->name) == 0)
        return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "attribute '%s' is given twice", a->name);
  }
  return 0;
}

int mpc__onnx_attr_int(ctx_t *c, size_t k, const char *name, int64_t dflt, int64_t *out) {
  const attr_t *a = mpc__onnx_attr_find(c, k, name);
  *out = dflt;
  if (a == NULL)
    return 0;
  if (!is_type(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a->has_i))
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "attribute '%s' is not an integer", name);
  *out = a->i;
  return 0;
}

int mpc__onnx_attr_float(ctx_t *c, size_t k, const char *name, double dflt, double *out) {
  const attr_t *a = mpc__onnx_attr_find(c, k, name);
  *out = dflt;
  if (a == NULL)
    return 0;
  if (!is_type(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, a->has_f))
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "attribute '%s' is not a float", name);
  *out = (double)a->f;
  return 0;
}

/* *n = SIZE_MAX when the attribute is absent. */
int mpc__onnx_attr_ints(ctx_t *c, size_t k, const char *name, const int64_t **v, size_t *n) {
  const attr_t *a = mpc__onnx_attr_find(c, k, name);
  *v = NULL;
  *n = SIZE_MAX;
  if (a == NULL)
    return 0;
  if (!is_type(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, a->n_ints > 0))
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "attribute '%s' is not a list of integers", name);
  *v = a->ints;
  *n = a->n_ints;
  return 0;
}

/* A string attribute into out (dflt when absent). */
int mpc__onnx_attr_str(ctx_t *c, size_t k, const char *name, const char *dflt, char *out,
                       size_t outlen) {
  const attr_t *a = mpc__onnx_attr_find(c, k, name);
  snprintf(out, outlen, "%s", dflt);
  if (a == NULL)
    return 0;
  if (!is_type(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, a->has_s))
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "attribute '%s' is not a string", name);
  size_t n = a->s.len < outlen - 1 ? a->s.len : outlen - 1;
  if (n > 0)
    memcpy(out, a->s.data, n);
  out[n] = '\0';
  if (memchr(out, '\0', n) != NULL || a->s.len >= outlen)
    return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP, "attribute '%s' has an unexpected value", name);
  return 0;
}

const char *mpc__onnx_in_name(const ctx_t *c, size_t k, size_t j) {
  const Onnx__NodeProto *n = nodep(c, k);
  if (j >= n->n_input || n->input[j] == NULL || n->input[j][0] == '\0')
    return NULL;
  return n->input[j];
}

/* The value of input j; NULL (and an error) when a required input is absent. */
ent_t *mpc__onnx_in_ent(ctx_t *c, size_t k, size_t j, int required, int *rc) {
  const char *nm = mpc__onnx_in_name(c, k, j);
  *rc = 0;
  if (nm == NULL) {
    if (required)
      *rc = mpc__onnx_nfail(c, k, TANDEM_EPARSE, "input %zu is missing", j);
    return NULL;
  }
  ent_t *e = mpc__onnx_lookup(c, nm);
  if (e == NULL || e->kind == V_UNDEF) {
    /* The indexing pass saw every name and the walk is in topological
     * order, so this is an output a supported node does not produce. */
    *rc = mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                          "input '%s' is not computed (an unsupported output of "
                          "the node that defines it)",
                          nm);
    return NULL;
  }
  if (e->kind == V_CONST && e->src == S_INIT) {
    *rc = mpc__onnx_load_init(c, k, e);
    if (*rc != 0)
      return NULL;
  }
  return e;
}

int mpc__onnx_pad_error(ctx_t *c, size_t k, const ent_t *e) {
  return mpc__onnx_nfail(
      c, k, TANDEM_EUNSUPOP,
      "its input '%s' is zero padding from Pad node '%s', which can only be folded into "
      "a directly following Conv or AveragePool; a stand-alone Pad is not supported",
      e->name, e->pad_from);
}

/* Input j as an activation (an IR node computed from the client's input). */
int mpc__onnx_in_act(ctx_t *c, size_t k, size_t j, int *node) {
  int rc;
  ent_t *e = mpc__onnx_in_ent(c, k, j, 1, &rc);
  if (e == NULL)
    return rc;
  if (e->kind == V_PAD)
    return mpc__onnx_pad_error(c, k, e);
  if (e->kind == V_CONST)
    return mpc__onnx_nfail(
        c, k, TANDEM_EUNSUPOP,
        "input '%s' is a constant; this operator on constants is not supported (export "
        "with constant folding)",
        e->name);
  *node = e->node;
  return 0;
}

/* The PARAM node of constant kidx, made on first use. */
static int konst_param(ctx_t *c, size_t k, int kidx, const char *name, int *node) {
  konst_t *kt = &c->konst[kidx];
  char nb[16];
  if (kt->param >= 0) {
    *node = kt->param;
    return 0;
  }
  if (kt->t.f == NULL)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE,
                           "constant '%s' has data type %s where a FLOAT or DOUBLE "
                           "tensor is needed",
                           name, mpc__onnx_dtype_name(kt->t.dtype, nb));
  if (kt->t.numel == 0)
    return mpc__onnx_nfail(c, k, TANDEM_ESHAPE, "constant '%s' is empty", name);
  double *d = mpc__onnx_dup_doubles(kt->t.f, kt->t.numel);
  if (d == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  int r = mpc__onnx_make_param(c, k, name, kt->t.ndim, kt->t.dim, d);
  if (r < 0)
    return r;
  kt = &c->konst[kidx];
  kt->param = r;
  *node = r;
  return 0;
}

/* Input j as an operand: an activation, or a constant as the owner's PARAM. */
int mpc__onnx_in_operand(ctx_t *c, size_t k, size_t j, int required, int *node) {
  int rc;
  *node = -1;
  ent_t *e = mpc__onnx_in_ent(c, k, j, required, &rc);
  if (e == NULL)
    return rc;
  if (e->kind == V_PAD)
    return mpc__onnx_pad_error(c, k, e);
  if (e->kind == V_ACT) {
    *node = e->node;
    return 0;
  }
  return konst_param(c, k, e->kidx, e->name, node);
}

/* Input j as a constant known at import (NULL when absent and optional). */
int mpc__onnx_in_const(ctx_t *c, size_t k, size_t j, int required, const mpc__ctensor_t **t) {
  int rc;
  *t = NULL;
  ent_t *e = mpc__onnx_in_ent(c, k, j, required, &rc);
  if (e == NULL)
    return rc;
  if (e->kind != V_CONST)
    return mpc__onnx_nfail(
        c, k, TANDEM_EUNSUPOP,
        "input %zu ('%s') must be a constant (an initializer or a Constant node); "
        "computed values are not supported there",
        j, e->name);
  *t = &c->konst[e->kidx].t;
  return 0;
}

/* Input j as a list of integers (shape, axes, pads): a constant INT64 tensor
 * of rank 0 or 1. */
int mpc__onnx_in_ints(ctx_t *c, size_t k, size_t j, int required, const int64_t **v, size_t *n) {
  const mpc__ctensor_t *t;
  char nb[16];
  *v = NULL;
  *n = SIZE_MAX;
  int rc = mpc__onnx_in_const(c, k, j, required, &t);
  if (rc != 0 || t == NULL)
    return rc;
  if (t->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || t->ndim > 1)
    return mpc__onnx_nfail(c, k, TANDEM_EPARSE,
                           "input %zu must be a 1-D INT64 tensor, got %s of rank %u", j,
                           mpc__onnx_dtype_name(t->dtype, nb), t->ndim);
  *v = t->i;
  *n = t->numel;
  return 0;
}

ent_t *mpc__onnx_out_ent(ctx_t *c, size_t k, size_t j) {
  const Onnx__NodeProto *n = nodep(c, k);
  if (j >= n->n_output || n->output[j] == NULL || n->output[j][0] == '\0')
    return NULL;
  return mpc__onnx_lookup(c, n->output[j]);
}

void mpc__onnx_def_act(ctx_t *c, size_t k, size_t j, int node) {
  ent_t *e = mpc__onnx_out_ent(c, k, j);
  if (e != NULL) {
    e->kind = V_ACT;
    e->node = node;
  }
}

void mpc__onnx_def_const(ctx_t *c, size_t k, size_t j, int kidx) {
  ent_t *e = mpc__onnx_out_ent(c, k, j);
  if (e != NULL) {
    e->kind = V_CONST;
    e->kidx = kidx;
  }
}

int mpc__onnx_def_new_const(ctx_t *c, size_t k, size_t j, mpc__ctensor_t *t) {
  int ki = mpc__onnx_konst_add(c, t);
  if (ki < 0)
    return ki;
  mpc__onnx_def_const(c, k, j, ki);
  return 0;
}

/* Output j becomes another name for value src (Identity, Dropout). */
void mpc__onnx_def_alias(ctx_t *c, size_t k, size_t j, const ent_t *src) {
  ent_t *e = mpc__onnx_out_ent(c, k, j);
  if (e == NULL)
    return;
  e->kind = src->kind;
  e->node = src->node;
  e->kidx = src->kidx;
  memcpy(e->pads, src->pads, sizeof e->pads);
  e->pad_from = src->pad_from;
}

/* Step 1: every value name (initializers, graph inputs, node outputs) in
 * the name table, refusing twice-defined names. */
static int index_names(ctx_t *c) {
  const Onnx__GraphProto *gp = c->gp;
  size_t cap = gp->n_initializer + gp->n_input;
  for (size_t k = 0; k < gp->n_node; k++) {
    if (gp->node[k] == NULL)
      return mpc__onnx_gfail(c, TANDEM_EPARSE, "node %zu is empty", k);
    cap += gp->node[k]->n_output;
  }
  size_t tcap = 16;
  while (tcap < 2 * cap + 1)
    tcap *= 2;
  c->ents = calloc(cap ? cap : 1, sizeof *c->ents);
  c->tab = malloc(tcap * sizeof *c->tab);
  c->done = calloc(gp->n_node ? gp->n_node : 1, 1);
  if (c->ents == NULL || c->tab == NULL || c->done == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  c->capents = cap;
  c->tabmask = tcap - 1;
  for (size_t i = 0; i < tcap; i++)
    c->tab[i] = -1;

  for (size_t i = 0; i < gp->n_initializer; i++) {
    const Onnx__TensorProto *t = gp->initializer[i];
    if (t == NULL || t->name == NULL || t->name[0] == '\0')
      return mpc__onnx_gfail(c, TANDEM_EPARSE, "initializer %zu has no name", i);
    ent_t *e = insert(c, t->name, S_INIT, i);
    if (e == NULL)
      return mpc__onnx_gfail(c, TANDEM_EPARSE, "initializer '%s' is defined twice", t->name);
    e->kind = V_CONST;
  }
  if (gp->n_sparse_initializer > 0)
    return mpc__onnx_gfail(c, TANDEM_EUNSUPOP, "sparse initializers are not supported");
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *v = gp->input[i];
    if (v == NULL || v->name == NULL || v->name[0] == '\0')
      return mpc__onnx_gfail(c, TANDEM_EPARSE, "graph input %zu has no name", i);
    ent_t *e = mpc__onnx_lookup(c, v->name);
    if (e != NULL && e->src == S_INIT)
      continue; /* IR < 4 lists initializers among the inputs: the initializer wins */
    if (e != NULL || insert(c, v->name, S_INPUT, i) == NULL)
      return mpc__onnx_gfail(c, TANDEM_EPARSE, "graph input '%s' is listed twice", v->name);
  }
  for (size_t k = 0; k < gp->n_node; k++) {
    const Onnx__NodeProto *n = gp->node[k];
    for (size_t j = 0; j < n->n_output; j++) {
      const char *nm = n->output[j];
      if (nm == NULL || nm[0] == '\0')
        continue;
      if (insert(c, nm, S_NODE, k) == NULL)
        return mpc__onnx_nfail(c, k, TANDEM_EPARSE, "output '%s' is already defined elsewhere", nm);
    }
  }
  return 0;
}

/* Step 2: the readers of every value (refusing dangling names), and the
 * nodes in topological order (refusing cycles). */
static int sort_nodes(ctx_t *c, size_t **order_out) {
  const Onnx__GraphProto *gp = c->gp;
  /* Readers, dangling names, and the dependency graph in CSR form. */
  size_t nn = gp->n_node, nedge = 0;
  size_t *indeg = calloc(nn ? nn : 1, sizeof *indeg);
  size_t *start = calloc(nn + 1, sizeof *start);
  size_t *order = malloc((nn ? nn : 1) * sizeof *order);
  size_t *adj = NULL;
  int rc = 0;
  if (indeg == NULL || start == NULL || order == NULL) {
    rc = mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
    goto out;
  }
  for (size_t k = 0; k < nn; k++) {
    const Onnx__NodeProto *n = gp->node[k];
    for (size_t j = 0; j < n->n_input; j++) {
      const char *nm = n->input[j];
      if (nm == NULL || nm[0] == '\0')
        continue;
      ent_t *e = mpc__onnx_lookup(c, nm);
      if (e == NULL) {
        rc = mpc__onnx_nfail(c, k, TANDEM_EPARSE,
                             "input '%s' is not produced by any node, initializer or "
                             "graph input",
                             nm);
        goto out;
      }
      e->nuse++;
      e->user = k;
      if (e->src == S_NODE) {
        if (e->idx == k) {
          rc = mpc__onnx_nfail(c, k, TANDEM_EPARSE, "reads its own output '%s' (a cycle)", nm);
          goto out;
        }
        start[e->idx + 1]++;
        indeg[k]++;
        nedge++;
      }
    }
  }
  for (size_t i = 0; i < gp->n_output; i++) {
    const Onnx__ValueInfoProto *v = gp->output[i];
    ent_t *e = v != NULL ? mpc__onnx_lookup(c, v->name) : NULL;
    if (e == NULL) {
      rc = mpc__onnx_gfail(c, TANDEM_EPARSE,
                           "graph output '%s' is not produced by any node or input",
                           v != NULL && v->name != NULL ? v->name : "");
      goto out;
    }
    e->nuse++;
    e->gout = 1;
  }
  for (size_t k = 0; k < nn; k++)
    start[k + 1] += start[k];
  adj = malloc((nedge ? nedge : 1) * sizeof *adj);
  size_t *fill = calloc(nn ? nn : 1, sizeof *fill);
  if (adj == NULL || fill == NULL) {
    free(fill);
    rc = mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
    goto out;
  }
  for (size_t k = 0; k < nn; k++) {
    const Onnx__NodeProto *n = gp->node[k];
    for (size_t j = 0; j < n->n_input; j++) {
      ent_t *e = mpc__onnx_lookup(c, n->input[j]);
      if (e != NULL && e->src == S_NODE)
        adj[start[e->idx] + fill[e->idx]++] = k;
    }
  }
  free(fill);
  /* Kahn's algorithm with a FIFO seeded in file order keeps a sorted file's
   * order unchanged. */
  size_t head = 0, tail = 0;
  for (size_t k = 0; k < nn; k++)
    if (indeg[k] == 0)
      order[tail++] = k;
  while (head < tail) {
    size_t k = order[head++];
    for (size_t i = start[k]; i < start[k + 1]; i++)
      if (--indeg[adj[i]] == 0)
        order[tail++] = adj[i];
  }
  if (tail < nn) {
    for (size_t k = 0; k < nn; k++)
      if (indeg[k] > 0) {
        rc = mpc__onnx_nfail(c, k, TANDEM_EPARSE, "is part of a cycle");
        break;
      }
  }
out:
  free(indeg);
  free(start);
  free(adj);
  if (rc != 0)
    free(order);
  else
    *order_out = order;
  return rc;
}

/* Steps 1 and 2: the name table, reader counts, and a topological order. */
int mpc__onnx_index_and_sort(ctx_t *c, size_t **order_out) {
  int rc = index_names(c);
  return rc != 0 ? rc : sort_nodes(c, order_out);
}

void mpc__onnx_ctx_free(ctx_t *c) {
  for (size_t i = 0; i < c->nkonst; i++)
    mpc__ctensor_close(&c->konst[i].t);
  free(c->konst);
  for (size_t i = 0; i < c->npdat; i++) {
    /* Weights are the owner's secret: wipe copies that did not reach w. */
    if (c->pdat[i].data != NULL) {
      sodium_memzero(c->pdat[i].data,
                     mpc_shape_numel(&c->g->nodes[c->pdat[i].node].shape) * sizeof(double));
      free(c->pdat[i].data);
    }
  }
  free(c->pdat);
  free(c->ents);
  free(c->tab);
  free(c->done);
}
