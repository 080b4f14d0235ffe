/* onnx.c - the ONNX importer: a ModelProto (opsets 9 to 17) into an
 * mpc_graph_t and the model owner's mpc_weights_t.
 *
 * This is where a user's PyTorch export meets the protocol: everything the
 * parties, the dealer and the client later agree on comes from the graph
 * built here, so every operator and attribute outside the supported set is
 * refused here, with the node and operator named, before any party does
 * work. The model file is input like any other: protobuf-c (code generated at
 * build time from Debian's onnx.proto) parses it, and every name, length,
 * type and shape is checked before use; the importer is fuzzed
 * (tests/fuzz/fuzz_onnx.c).
 *
 * The import runs in three steps. (1) Index every value name (initializers,
 * graph inputs, node outputs) in a hash table, counting readers, and refuse
 * dangling or twice-defined names. (2) Order the nodes topologically (Kahn),
 * refusing cycles; ONNX requires files to be sorted already, but exporters
 * and hand-edited files are not always right and the IR needs the order.
 * (3) Walk the nodes. A value is an activation (an IR node), a constant
 * known at import (an initializer or a Constant node, kept as an array until
 * an operator needs it as a weight, when it becomes a PARAM node), or a
 * pending zero padding (a Pad, folded into the Conv or AveragePool that reads
 * it). Shape-only constants (Reshape's shape, axes, pads) are consumed here
 * and never reach the graph. A BatchNormalization that directly follows a
 * Conv or Gemm with constant weights, as the only reader of its output, is
 * folded into that layer's weights and bias when the layer is emitted;
 * otherwise it becomes a per-channel affine map written as a 1x1 convolution
 * (or a Gemm) with a diagonal weight, since the IR has no per-channel scale.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "mpc.h"
#include "onnx_int.h"

#define OPSET_MIN 9
#define OPSET_MAX 17
/* Windows, pads and strides above this are refused (graph.c has the same bound). */
#define MAX_WIN ((int64_t)1 << 16)
/* A BatchNormalization that cannot be folded becomes a C x C diagonal weight;
 * above this many channels that is too wasteful to be worth it. */
#define MAX_AFFINE_CH 1024

/* ---- values -------------------------------------------------------------- */

typedef enum { S_INIT, S_INPUT, S_NODE } src_t;
typedef enum { V_UNDEF, V_ACT, V_CONST, V_PAD } vkind_t;

/* A constant known at import, and the PARAM node made from it (-1 until an
 * operator first needs it as an operand). */
typedef struct {
  mpc__ctensor_t t;
  int param;
} konst_t;

/* One named value. */
typedef struct {
  const char *name;
  src_t src;
  size_t idx;   /* initializer, graph input or node index */
  size_t nuse;  /* readers: node inputs and graph outputs */
  size_t user;  /* the last node that reads it */
  int gout;     /* also a graph output */
  int folded;   /* read only by a BatchNormalization folded into its producer */
  vkind_t kind;
  int node;     /* V_ACT, V_PAD: the IR node */
  int kidx;     /* V_CONST: index into ctx.konst, -1 for an initializer not yet read */
  size_t pads[4];        /* V_PAD: top, left, bottom, right */
  const char *pad_from;  /* V_PAD: the Pad node's name, for messages */
} ent_t;

typedef struct {
  int node;
  double *data;
} pdata_t;

typedef struct {
  const Onnx__GraphProto *gp;
  long opset;
  mpc_graph_t *g;
  char *err;
  size_t errlen;

  ent_t *ents;
  size_t nents, capents;
  int *tab; /* open addressing: ents index or -1 */
  size_t tabmask;

  konst_t *konst;
  size_t nkonst, capkonst;
  pdata_t *pdat;
  size_t npdat, cappdat;

  unsigned char *done; /* per node: already handled (Constant pre-pass, folded BN) */
  char nbuf[96];       /* a node's display name */
} ctx_t;

/* ---- messages ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
static int gfail(ctx_t *c, int code, const char *fmt, ...) {
  if (c->err != NULL && c->errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

static const char *str_or(const char *s, const char *dflt) {
  return s != NULL && s[0] != '\0' ? s : dflt;
}

static const Onnx__NodeProto *nodep(const ctx_t *c, size_t k) { return c->gp->node[k]; }

static const char *op_type(const ctx_t *c, size_t k) {
  return str_or(nodep(c, k)->op_type, "?");
}

/* The node's name, or "<op>_<index>" for an unnamed one (PyTorch's style). */
static const char *node_name(ctx_t *c, size_t k) {
  const Onnx__NodeProto *n = nodep(c, k);
  if (n->name != NULL && n->name[0] != '\0')
    return n->name;
  snprintf(c->nbuf, sizeof c->nbuf, "%.60s_%zu", op_type(c, k), k);
  return c->nbuf;
}

__attribute__((format(printf, 4, 5)))
static int nfail(ctx_t *c, size_t k, int code, const char *fmt, ...) {
  if (c->err != NULL && c->errlen > 0) {
    char what[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "node '%.200s' (%.60s): %s", node_name(c, k), op_type(c, k),
             what);
  }
  return code;
}

/* ---- the name table ------------------------------------------------------ */

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

static ent_t *lookup(ctx_t *c, const char *name) {
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

/* ---- constants and parameters -------------------------------------------- */

static int konst_add(ctx_t *c, mpc__ctensor_t *t) {
  if (c->nkonst == c->capkonst) {
    size_t cap = c->capkonst ? 2 * c->capkonst : 16;
    konst_t *k = realloc(c->konst, cap * sizeof *k);
    if (k == NULL)
      return TANDEM_ENOMEM;
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
static int add_node(ctx_t *c, size_t k, mpc_node_t *nd) {
  char m[600];
  if (nd->name[0] == '\0' && k != SIZE_MAX)
    snprintf(nd->name, sizeof nd->name, "%.63s", node_name(c, k));
  int r = mpc_graph_add(c->g, nd, m, sizeof m);
  if (r >= 0)
    return r;
  int code = r == TANDEM_EINVAL ? TANDEM_EPARSE : r;
  char pre[128];
  snprintf(pre, sizeof pre, "node '%s' (%s): ", nd->name, mpc_op_name(nd->op));
  const char *rest = strncmp(m, pre, strlen(pre)) == 0 ? m + strlen(pre) : m;
  if (k == SIZE_MAX)
    return gfail(c, code, "%s", m);
  return nfail(c, k, code, "%s", rest);
}

static void node_init(mpc_node_t *nd, mpc_op_t op, int in0, int in1, int in2) {
  memset(nd, 0, sizeof *nd);
  nd->op = op;
  nd->in[0] = in0;
  nd->in[1] = in1;
  nd->in[2] = in2;
  nd->attr.alpha = nd->attr.beta = nd->attr.scalar = 1.0;
}

/* A PARAM node holding data (ownership passes to the importer, then to the
 * weights; freed here on failure). A scalar becomes shape [1]. */
static int make_param(ctx_t *c, size_t k, const char *name, unsigned ndim, const size_t *dim,
                      double *data) {
  mpc_node_t nd;
  node_init(&nd, MPC_OP_PARAM, -1, -1, -1);
  snprintf(nd.name, sizeof nd.name, "%.63s", name);
  if (ndim > MPC_MAX_DIMS) {
    free(data);
    return k != SIZE_MAX
               ? nfail(c, k, TANDEM_EUNSUPOP, "weight '%s' has %u dimensions (at most %d)", name,
                       ndim, MPC_MAX_DIMS)
               : gfail(c, TANDEM_EUNSUPOP, "weight '%s' has %u dimensions", name, ndim);
  }
  nd.shape.ndim = ndim ? ndim : 1;
  nd.shape.dim[0] = 1;
  for (unsigned d = 0; d < ndim; d++)
    nd.shape.dim[d] = dim[d];
  size_t n = mpc_shape_numel(&nd.shape);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(data[i])) {
      free(data);
      return nfail(c, k, TANDEM_ERANGE, "weight '%s' holds NaN or infinity", name);
    }
  if (c->npdat == c->cappdat) {
    size_t cap = c->cappdat ? 2 * c->cappdat : 16;
    pdata_t *p = realloc(c->pdat, cap * sizeof *p);
    if (p == NULL) {
      free(data);
      return gfail(c, TANDEM_ENOMEM, "out of memory");
    }
    c->pdat = p;
    c->cappdat = cap;
  }
  int r = add_node(c, k, &nd);
  if (r < 0) {
    free(data);
    return r;
  }
  c->pdat[c->npdat].node = r;
  c->pdat[c->npdat].data = data;
  c->npdat++;
  return r;
}

static double *dup_doubles(const double *src, size_t n) {
  double *d = malloc((n ? n : 1) * sizeof *d);
  if (d != NULL && n > 0)
    memcpy(d, src, n * sizeof *d);
  return d;
}

/* Reads an initializer's data on first use. */
static int load_init(ctx_t *c, size_t k, ent_t *e) {
  if (e->kidx >= 0)
    return 0;
  mpc__ctensor_t t;
  char why[300];
  int rc = mpc__ctensor_from_proto(c->gp->initializer[e->idx], &t, why, sizeof why);
  if (rc != 0)
    return k != SIZE_MAX ? nfail(c, k, rc, "initializer '%s': %s", e->name, why)
                         : gfail(c, rc, "initializer '%s': %s", e->name, why);
  int ki = konst_add(c, &t);
  if (ki < 0) {
    mpc__ctensor_close(&t);
    return gfail(c, TANDEM_ENOMEM, "out of memory");
  }
  e->kidx = ki;
  return 0;
}

/* ---- attributes ---------------------------------------------------------- */

typedef Onnx__AttributeProto attr_t;

static const attr_t *attr_find(const ctx_t *c, size_t k, const char *name) {
  const Onnx__NodeProto *n = nodep(c, k);
  for (size_t i = 0; i < n->n_attribute; i++)
    if (n->attribute[i] != NULL && n->attribute[i]->name != NULL &&
        strcmp(n->attribute[i]->name, name) == 0)
      return n->attribute[i];
  return NULL;
}

/* Every attribute must be one this importer understands: an attribute it
 * would silently ignore could change the result. known is NULL-terminated. */
static int attr_check(ctx_t *c, size_t k, const char *const *known) {
  const Onnx__NodeProto *n = nodep(c, k);
  for (size_t i = 0; i < n->n_attribute; i++) {
    const attr_t *a = n->attribute[i];
    if (a == NULL || a->name == NULL || a->name[0] == '\0')
      return nfail(c, k, TANDEM_EPARSE, "attribute %zu has no name", i);
    if (a->ref_attr_name != NULL && a->ref_attr_name[0] != '\0')
      return nfail(c, k, TANDEM_EUNSUPOP, "attribute '%s' refers to a function attribute",
                   a->name);
    int ok = 0;
    for (const char *const *p = known; *p != NULL; p++)
      ok |= strcmp(*p, a->name) == 0;
    if (!ok)
      return nfail(c, k, TANDEM_EUNSUPOP, "attribute '%s' is not supported", a->name);
    for (size_t j = 0; j < i; j++)
      if (n->attribute[j]->name != NULL && strcmp(n->attribute[j]->name, a->name) == 0)
        return nfail(c, k, TANDEM_EPARSE, "attribute '%s' is given twice", a->name);
  }
  return 0;
}

static int is_type(const attr_t *a, Onnx__AttributeProto__AttributeType t, int has_field) {
  return a->has_type ? a->type == t : has_field;
}

static int attr_int(ctx_t *c, size_t k, const char *name, int64_t dflt, int64_t *out) {
  const attr_t *a = attr_find(c, k, name);
  *out = dflt;
  if (a == NULL)
    return 0;
  if (!is_type(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a->has_i))
    return nfail(c, k, TANDEM_EPARSE, "attribute '%s' is not an integer", name);
  *out = a->i;
  return 0;
}

static int attr_float(ctx_t *c, size_t k, const char *name, double dflt, double *out) {
  const attr_t *a = attr_find(c, k, name);
  *out = dflt;
  if (a == NULL)
    return 0;
  if (!is_type(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, a->has_f))
    return nfail(c, k, TANDEM_EPARSE, "attribute '%s' is not a float", name);
  *out = (double)a->f;
  return 0;
}

/* *n = SIZE_MAX when the attribute is absent. */
static int attr_ints(ctx_t *c, size_t k, const char *name, const int64_t **v, size_t *n) {
  const attr_t *a = attr_find(c, k, name);
  *v = NULL;
  *n = SIZE_MAX;
  if (a == NULL)
    return 0;
  if (!is_type(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, a->n_ints > 0))
    return nfail(c, k, TANDEM_EPARSE, "attribute '%s' is not a list of integers", name);
  *v = a->ints;
  *n = a->n_ints;
  return 0;
}

/* A string attribute into out (dflt when absent). */
static int attr_str(ctx_t *c, size_t k, const char *name, const char *dflt, char *out,
                    size_t outlen) {
  const attr_t *a = attr_find(c, k, name);
  snprintf(out, outlen, "%s", dflt);
  if (a == NULL)
    return 0;
  if (!is_type(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, a->has_s))
    return nfail(c, k, TANDEM_EPARSE, "attribute '%s' is not a string", name);
  size_t n = a->s.len < outlen - 1 ? a->s.len : outlen - 1;
  if (n > 0)
    memcpy(out, a->s.data, n);
  out[n] = '\0';
  if (memchr(out, '\0', n) != NULL || a->s.len >= outlen)
    return nfail(c, k, TANDEM_EUNSUPOP, "attribute '%s' has an unexpected value", name);
  return 0;
}

/* ---- inputs and outputs of a node ---------------------------------------- */

static const char *in_name(const ctx_t *c, size_t k, size_t j) {
  const Onnx__NodeProto *n = nodep(c, k);
  if (j >= n->n_input || n->input[j] == NULL || n->input[j][0] == '\0')
    return NULL;
  return n->input[j];
}

/* The value of input j; NULL (and an error) when a required input is absent. */
static ent_t *in_ent(ctx_t *c, size_t k, size_t j, int required, int *rc) {
  const char *nm = in_name(c, k, j);
  *rc = 0;
  if (nm == NULL) {
    if (required)
      *rc = nfail(c, k, TANDEM_EPARSE, "input %zu is missing", j);
    return NULL;
  }
  ent_t *e = lookup(c, nm);
  if (e == NULL || e->kind == V_UNDEF) {
    /* The indexing pass saw every name and the walk is in topological
     * order, so this is an output a supported node does not produce. */
    *rc = nfail(c, k, TANDEM_EUNSUPOP, "input '%s' is not computed (an unsupported output of "
                "the node that defines it)", nm);
    return NULL;
  }
  if (e->kind == V_CONST && e->src == S_INIT) {
    *rc = load_init(c, k, e);
    if (*rc != 0)
      return NULL;
  }
  return e;
}

static int pad_error(ctx_t *c, size_t k, const ent_t *e) {
  return nfail(c, k, TANDEM_EUNSUPOP,
               "its input '%s' is zero padding from Pad node '%s', which can only be folded into "
               "a directly following Conv or AveragePool; a stand-alone Pad is not supported",
               e->name, e->pad_from);
}

/* Input j as an activation (an IR node computed from the client's input). */
static int in_act(ctx_t *c, size_t k, size_t j, int *node) {
  int rc;
  ent_t *e = in_ent(c, k, j, 1, &rc);
  if (e == NULL)
    return rc;
  if (e->kind == V_PAD)
    return pad_error(c, k, e);
  if (e->kind == V_CONST)
    return nfail(c, k, TANDEM_EUNSUPOP,
                 "input '%s' is a constant; this operator on constants is not supported (export "
                 "with constant folding)", e->name);
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
    return nfail(c, k, TANDEM_EPARSE, "constant '%s' has data type %s where a FLOAT or DOUBLE "
                 "tensor is needed", name, mpc__onnx_dtype_name(kt->t.dtype, nb));
  if (kt->t.numel == 0)
    return nfail(c, k, TANDEM_ESHAPE, "constant '%s' is empty", name);
  double *d = dup_doubles(kt->t.f, kt->t.numel);
  if (d == NULL)
    return gfail(c, TANDEM_ENOMEM, "out of memory");
  int r = make_param(c, k, name, kt->t.ndim, kt->t.dim, d);
  if (r < 0)
    return r;
  kt = &c->konst[kidx];
  kt->param = r;
  *node = r;
  return 0;
}

/* Input j as an operand: an activation, or a constant as the owner's PARAM. */
static int in_operand(ctx_t *c, size_t k, size_t j, int required, int *node) {
  int rc;
  *node = -1;
  ent_t *e = in_ent(c, k, j, required, &rc);
  if (e == NULL)
    return rc;
  if (e->kind == V_PAD)
    return pad_error(c, k, e);
  if (e->kind == V_ACT) {
    *node = e->node;
    return 0;
  }
  return konst_param(c, k, e->kidx, e->name, node);
}

/* Input j as a constant known at import (NULL when absent and optional). */
static int in_const(ctx_t *c, size_t k, size_t j, int required, const mpc__ctensor_t **t) {
  int rc;
  *t = NULL;
  ent_t *e = in_ent(c, k, j, required, &rc);
  if (e == NULL)
    return rc;
  if (e->kind != V_CONST)
    return nfail(c, k, TANDEM_EUNSUPOP,
                 "input %zu ('%s') must be a constant (an initializer or a Constant node); "
                 "computed values are not supported there", j, e->name);
  *t = &c->konst[e->kidx].t;
  return 0;
}

/* Input j as a list of integers (shape, axes, pads): a constant INT64 tensor
 * of rank 0 or 1. */
static int in_ints(ctx_t *c, size_t k, size_t j, int required, const int64_t **v, size_t *n) {
  const mpc__ctensor_t *t;
  char nb[16];
  *v = NULL;
  *n = SIZE_MAX;
  int rc = in_const(c, k, j, required, &t);
  if (rc != 0 || t == NULL)
    return rc;
  if (t->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || t->ndim > 1)
    return nfail(c, k, TANDEM_EPARSE, "input %zu must be a 1-D INT64 tensor, got %s of rank %u",
                 j, mpc__onnx_dtype_name(t->dtype, nb), t->ndim);
  *v = t->i;
  *n = t->numel;
  return 0;
}

static ent_t *out_ent(ctx_t *c, size_t k, size_t j) {
  const Onnx__NodeProto *n = nodep(c, k);
  if (j >= n->n_output || n->output[j] == NULL || n->output[j][0] == '\0')
    return NULL;
  return lookup(c, n->output[j]);
}

static void def_act(ctx_t *c, size_t k, size_t j, int node) {
  ent_t *e = out_ent(c, k, j);
  if (e != NULL) {
    e->kind = V_ACT;
    e->node = node;
  }
}

static void def_const(ctx_t *c, size_t k, size_t j, int kidx) {
  ent_t *e = out_ent(c, k, j);
  if (e != NULL) {
    e->kind = V_CONST;
    e->kidx = kidx;
  }
}

/* Output j becomes another name for value src (Identity, Dropout). */
static void def_alias(ctx_t *c, size_t k, size_t j, const ent_t *src) {
  ent_t *e = out_ent(c, k, j);
  if (e == NULL)
    return;
  e->kind = src->kind;
  e->node = src->node;
  e->kidx = src->kidx;
  memcpy(e->pads, src->pads, sizeof e->pads);
  e->pad_from = src->pad_from;
}

static const mpc_shape_t *shape_of(const ctx_t *c, int node) { return &c->g->nodes[node].shape; }

/* ---- shape-only operators ------------------------------------------------ */

/* Dimensions of an input that may be an activation or a constant. */
typedef struct {
  unsigned ndim;
  size_t dim[MPC__CT_MAX_DIMS];
} dims_t;

static int in_dims(ctx_t *c, size_t k, size_t j, ent_t **ep, dims_t *d) {
  int rc;
  ent_t *e = in_ent(c, k, j, 1, &rc);
  if (e == NULL)
    return rc;
  if (e->kind == V_PAD)
    return pad_error(c, k, e);
  memset(d, 0, sizeof *d);
  if (e->kind == V_ACT) {
    const mpc_shape_t *s = shape_of(c, e->node);
    d->ndim = s->ndim;
    for (unsigned i = 0; i < s->ndim; i++)
      d->dim[i] = s->dim[i];
  } else {
    const mpc__ctensor_t *t = &c->konst[e->kidx].t;
    d->ndim = t->ndim;
    for (unsigned i = 0; i < t->ndim; i++)
      d->dim[i] = t->dim[i];
  }
  *ep = e;
  return 0;
}

/* Output 0 of node k is input value e with new dimensions (same elements in
 * the same order): a RESHAPE node for an activation, a relabelled copy for a
 * constant. */
static int emit_reshape(ctx_t *c, size_t k, const ent_t *e, const dims_t *to) {
  if (e->kind == V_CONST) {
    const mpc__ctensor_t *src = &c->konst[e->kidx].t;
    mpc__ctensor_t t = *src;
    t.ndim = to->ndim;
    memcpy(t.dim, to->dim, sizeof t.dim);
    t.f = NULL;
    t.i = NULL;
    size_t n = src->numel ? src->numel : 1;
    if (src->f != NULL)
      t.f = dup_doubles(src->f, src->numel);
    else if ((t.i = malloc(n * sizeof *t.i)) != NULL)
      memcpy(t.i, src->i, src->numel * sizeof *t.i);
    if (t.f == NULL && t.i == NULL)
      return gfail(c, TANDEM_ENOMEM, "out of memory");
    int ki = konst_add(c, &t);
    if (ki < 0) {
      mpc__ctensor_close(&t);
      return gfail(c, TANDEM_ENOMEM, "out of memory");
    }
    def_const(c, k, 0, ki);
    return 0;
  }
  if (to->ndim < 1 || to->ndim > MPC_MAX_DIMS)
    return nfail(c, k, TANDEM_EUNSUPOP, "result of rank %u (supported: 1 to %d)", to->ndim,
                 MPC_MAX_DIMS);
  const mpc_shape_t *s = shape_of(c, e->node);
  int same = s->ndim == to->ndim;
  for (unsigned i = 0; same && i < to->ndim; i++)
    same = s->dim[i] == to->dim[i];
  if (same) { /* nothing to do: keep the value */
    def_act(c, k, 0, e->node);
    return 0;
  }
  mpc_node_t nd;
  node_init(&nd, MPC_OP_RESHAPE, e->node, -1, -1);
  nd.shape.ndim = to->ndim;
  for (unsigned i = 0; i < to->ndim; i++)
    nd.shape.dim[i] = to->dim[i];
  int r = add_node(c, k, &nd);
  if (r < 0)
    return r;
  def_act(c, k, 0, r);
  return 0;
}

static size_t dims_numel(const dims_t *d) {
  size_t n = 1;
  for (unsigned i = 0; i < d->ndim; i++)
    n *= d->dim[i]; /* bounded: every stored shape has at most 2^40 elements */
  return n;
}

static int op_reshape(ctx_t *c, size_t k) {
  static const char *const known[] = {"allowzero", NULL};
  int rc = attr_check(c, k, known);
  if (rc != 0)
    return rc;
  int64_t allowzero;
  if ((rc = attr_int(c, k, "allowzero", 0, &allowzero)) != 0)
    return rc;
  ent_t *e;
  dims_t in, to;
  if ((rc = in_dims(c, k, 0, &e, &in)) != 0)
    return rc;
  const int64_t *sv;
  size_t sn;
  if ((rc = in_ints(c, k, 1, 1, &sv, &sn)) != 0)
    return rc;
  if (sn > MPC__CT_MAX_DIMS)
    return nfail(c, k, TANDEM_EUNSUPOP, "target shape has %zu dimensions", sn);
  memset(&to, 0, sizeof to);
  to.ndim = (unsigned)sn;
  int infer = -1;
  size_t known_n = 1, total = dims_numel(&in);
  for (size_t i = 0; i < sn; i++) {
    int64_t v = sv[i];
    if (v == 0 && allowzero)
      return nfail(c, k, TANDEM_EUNSUPOP, "allowzero=1 with a zero dimension (empty tensors are "
                   "not supported)");
    if (v == 0) {
      if (i >= in.ndim)
        return nfail(c, k, TANDEM_ESHAPE, "shape[%zu] = 0 copies a dimension the input (rank "
                     "%u) does not have", i, in.ndim);
      to.dim[i] = in.dim[i];
    } else if (v == -1) {
      if (infer >= 0)
        return nfail(c, k, TANDEM_ESHAPE, "more than one -1 in the target shape");
      infer = (int)i;
      continue;
    } else if (v < 0 || (uint64_t)v > MPC__CT_MAX_NUMEL) {
      return nfail(c, k, TANDEM_ESHAPE, "target dimension %" PRId64 " is invalid", v);
    } else {
      to.dim[i] = (size_t)v;
    }
    /* known_n * dim > total exactly when dim > floor(total / known_n), a
     * test that cannot overflow. */
    if (to.dim[i] == 0 || to.dim[i] > total / known_n)
      return nfail(c, k, TANDEM_ESHAPE, "target shape has more elements than the input (%zu)",
                   total);
    known_n *= to.dim[i];
  }
  if (infer >= 0) {
    if (total % known_n != 0)
      return nfail(c, k, TANDEM_ESHAPE, "cannot infer the -1 dimension: %zu elements are not "
                   "a multiple of %zu", total, known_n);
    to.dim[infer] = total / known_n;
  } else if (known_n != total) {
    return nfail(c, k, TANDEM_ESHAPE, "target shape has %zu elements, the input %zu", known_n,
                 total);
  }
  return emit_reshape(c, k, e, &to);
}

static int op_flatten(ctx_t *c, size_t k) {
  static const char *const known[] = {"axis", NULL};
  int rc = attr_check(c, k, known);
  if (rc != 0)
    return rc;
  int64_t axis;
  if ((rc = attr_int(c, k, "axis", 1, &axis)) != 0)
    return rc;
  ent_t *e;
  dims_t in, to;
  if ((rc = in_dims(c, k, 0, &e, &in)) != 0)
    return rc;
  int64_t r = (int64_t)in.ndim;
  if (axis < -r || axis > r)
    return nfail(c, k, TANDEM_EPARSE, "axis %" PRId64 " is outside [-%u, %u]", axis, in.ndim,
                 in.ndim);
  if (axis < 0)
    axis += r;
  memset(&to, 0, sizeof to);
  to.ndim = 2;
  to.dim[0] = to.dim[1] = 1;
  for (unsigned i = 0; i < in.ndim; i++)
    to.dim[(int64_t)i < axis ? 0 : 1] *= in.dim[i];
  return emit_reshape(c, k, e, &to);
}

/* Axes from the attribute (opset < 13) or the second input (opset >= 13). */
static int get_axes(ctx_t *c, size_t k, const int64_t **v, size_t *n) {
  if (c->opset >= 13) {
    if (attr_find(c, k, "axes") != NULL)
      return nfail(c, k, TANDEM_EPARSE, "axes is an input from opset 13 on, not an attribute");
    return in_ints(c, k, 1, 0, v, n);
  }
  if (in_name(c, k, 1) != NULL)
    return nfail(c, k, TANDEM_EPARSE, "axes is an attribute before opset 13, not an input");
  return attr_ints(c, k, "axes", v, n);
}

static int op_squeeze(ctx_t *c, size_t k, int unsq) {
  static const char *const known[] = {"axes", NULL};
  int rc = attr_check(c, k, known);
  if (rc != 0)
    return rc;
  ent_t *e;
  dims_t in, to;
  if ((rc = in_dims(c, k, 0, &e, &in)) != 0)
    return rc;
  const int64_t *ax;
  size_t na;
  if ((rc = get_axes(c, k, &ax, &na)) != 0)
    return rc;
  if (unsq && na == SIZE_MAX)
    return nfail(c, k, TANDEM_EPARSE, "axes are required");
  int64_t r = (int64_t)in.ndim + (unsq ? (int64_t)(na == SIZE_MAX ? 0 : na) : 0);
  if (r > MPC__CT_MAX_DIMS)
    return nfail(c, k, TANDEM_EUNSUPOP, "result would have %" PRId64 " dimensions", r);
  unsigned mark = 0; /* bit d: axis d is listed */
  for (size_t i = 0; na != SIZE_MAX && i < na; i++) {
    int64_t a = ax[i];
    if (a < -r || a >= r)
      return nfail(c, k, TANDEM_EPARSE, "axis %" PRId64 " is outside [-%" PRId64 ", %" PRId64
                   "]", a, r, r - 1);
    if (a < 0)
      a += r;
    if ((mark >> a) & 1u)
      return nfail(c, k, TANDEM_EPARSE, "axis %" PRId64 " is listed twice", a);
    mark |= 1u << a;
  }
  /* The graph's first dimension is the batch; an activation whose batch axis
   * is removed or displaced could not be evaluated at another batch size. */
  if (e->kind == V_ACT && (mark & 1u))
    return nfail(c, k, TANDEM_EUNSUPOP, "%s axis 0, the batch dimension, is not supported",
                 unsq ? "inserting a dimension at" : "squeezing");
  memset(&to, 0, sizeof to);
  if (unsq) {
    unsigned src = 0;
    for (unsigned d = 0; d < (unsigned)r; d++)
      to.dim[d] = (mark >> d) & 1u ? 1 : in.dim[src++];
    to.ndim = (unsigned)r;
  } else {
    for (unsigned d = 0; d < in.ndim; d++) {
      int listed = (mark >> d) & 1u;
      if (listed && in.dim[d] != 1)
        return nfail(c, k, TANDEM_ESHAPE, "cannot squeeze axis %u of size %zu", d, in.dim[d]);
      /* Without axes every dimension of 1 goes, except an activation's batch. */
      int drop = na == SIZE_MAX ? in.dim[d] == 1 && !(e->kind == V_ACT && d == 0) : listed;
      if (!drop)
        to.dim[to.ndim++] = in.dim[d];
    }
  }
  return emit_reshape(c, k, e, &to);
}

static int op_transpose(ctx_t *c, size_t k) {
  static const char *const known[] = {"perm", NULL};
  int rc = attr_check(c, k, known);
  if (rc != 0)
    return rc;
  ent_t *e;
  dims_t in;
  if ((rc = in_dims(c, k, 0, &e, &in)) != 0)
    return rc;
  const int64_t *pv;
  size_t pn;
  if ((rc = attr_ints(c, k, "perm", &pv, &pn)) != 0)
    return rc;
  unsigned perm[MPC__CT_MAX_DIMS], seen = 0;
  if (pn != SIZE_MAX && pn != in.ndim)
    return nfail(c, k, TANDEM_EPARSE, "perm has %zu entries for an input of rank %u", pn,
                 in.ndim);
  for (unsigned d = 0; d < in.ndim; d++) {
    int64_t p = pn == SIZE_MAX ? (int64_t)(in.ndim - 1 - d) : pv[d];
    if (p < 0 || p >= (int64_t)in.ndim || ((seen >> p) & 1u))
      return nfail(c, k, TANDEM_EPARSE, "perm is not a permutation of %u axes", in.ndim);
    seen |= 1u << p;
    perm[d] = (unsigned)p;
  }
  if (e->kind == V_ACT) {
    mpc_node_t nd;
    node_init(&nd, MPC_OP_TRANSPOSE, e->node, -1, -1);
    for (unsigned d = 0; d < in.ndim; d++)
      nd.attr.perm[d] = perm[d];
    int r = add_node(c, k, &nd);
    if (r < 0)
      return r;
    def_act(c, k, 0, r);
    return 0;
  }
  /* A constant (a weight stored the other way round): permute it here. */
  const mpc__ctensor_t *src = &c->konst[e->kidx].t;
  mpc__ctensor_t t = *src;
  size_t n = src->numel, sst[MPC__CT_MAX_DIMS], s = 1;
  for (int d = (int)in.ndim - 1; d >= 0; d--) {
    sst[d] = s;
    s *= in.dim[d];
  }
  for (unsigned d = 0; d < in.ndim; d++)
    t.dim[d] = in.dim[perm[d]];
  t.f = src->f != NULL ? malloc((n ? n : 1) * sizeof *t.f) : NULL;
  t.i = src->i != NULL ? malloc((n ? n : 1) * sizeof *t.i) : NULL;
  if (t.f == NULL && t.i == NULL)
    return gfail(c, TANDEM_ENOMEM, "out of memory");
  size_t coord[MPC__CT_MAX_DIMS] = {0};
  for (size_t o = 0; o < n; o++) {
    size_t si = 0;
    for (unsigned d = 0; d < in.ndim; d++)
      si += coord[d] * sst[perm[d]];
    if (t.f != NULL)
      t.f[o] = src->f[si];
    else
      t.i[o] = src->i[si];
    for (int d = (int)in.ndim - 1; d >= 0; d--) {
      if (++coord[d] < t.dim[d])
        break;
      coord[d] = 0;
    }
  }
  int ki = konst_add(c, &t);
  if (ki < 0) {
    mpc__ctensor_close(&t);
    return gfail(c, TANDEM_ENOMEM, "out of memory");
  }
  def_const(c, k, 0, ki);
  return 0;
}

/* ---- BatchNormalization -------------------------------------------------- */

/* Per-channel y = s*x + t for BatchNormalization node k with ch channels:
 * s = scale / sqrt(var + eps), t = bias - mean * s. Validates the node
 * (attributes, constant parameters of length ch, one output). With quiet, a
 * failure leaves no message (the caller only asks whether folding is
 * possible; the node reports its own error later). */
static int bn_params(ctx_t *c, size_t k, size_t ch, int quiet, double **sp, double **tp) {
  static const char *const known[] = {"epsilon", "momentum", "spatial", "training_mode", NULL};
  char *save = c->err;
  if (quiet)
    c->err = NULL;
  double *s = NULL, *t = NULL, eps;
  int64_t tm, spatial;
  int rc = attr_check(c, k, known);
  if (rc == 0)
    rc = attr_float(c, k, "epsilon", 1e-5, &eps);
  if (rc == 0)
    rc = attr_int(c, k, "training_mode", 0, &tm);
  if (rc == 0)
    rc = attr_int(c, k, "spatial", 1, &spatial);
  if (rc == 0 && tm != 0)
    rc = nfail(c, k, TANDEM_EUNSUPOP, "training_mode=%" PRId64 " is not supported (inference "
               "only)", tm);
  if (rc == 0 && spatial != 1)
    rc = nfail(c, k, TANDEM_EUNSUPOP, "spatial=%" PRId64 " is not supported", spatial);
  for (size_t j = 1; rc == 0 && j < nodep(c, k)->n_output; j++)
    if (out_ent(c, k, j) != NULL && out_ent(c, k, j)->nuse > 0)
      rc = nfail(c, k, TANDEM_EUNSUPOP, "output %zu (running statistics) is not supported", j);
  const mpc__ctensor_t *p[4] = {NULL, NULL, NULL, NULL};
  for (size_t j = 0; rc == 0 && j < 4; j++) {
    rc = in_const(c, k, j + 1, 1, &p[j]);
    if (rc == 0 && (p[j]->f == NULL || p[j]->numel != ch || p[j]->ndim != 1))
      rc = nfail(c, k, TANDEM_ESHAPE, "parameter %zu must be a 1-D float tensor of %zu values "
                 "(one per channel)", j + 1, ch);
  }
  if (rc == 0 && (s = malloc(ch * sizeof *s)) == NULL)
    rc = gfail(c, TANDEM_ENOMEM, "out of memory");
  if (rc == 0 && (t = malloc(ch * sizeof *t)) == NULL)
    rc = gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t i = 0; rc == 0 && i < ch; i++) {
    double v = p[3]->f[i] + eps;
    if (!(v > 0.0) || !isfinite(v))
      rc = nfail(c, k, TANDEM_ERANGE, "variance + epsilon of channel %zu is not positive", i);
    else {
      s[i] = p[0]->f[i] / sqrt(v);
      t[i] = p[1]->f[i] - p[2]->f[i] * s[i];
      if (!isfinite(s[i]) || !isfinite(t[i]))
        rc = nfail(c, k, TANDEM_ERANGE, "channel %zu has a non-finite scale or shift", i);
    }
  }
  c->err = save;
  if (rc != 0) {
    free(s);
    free(t);
    return rc;
  }
  *sp = s;
  *tp = t;
  return 0;
}

/* The BatchNormalization node that may be folded into node k (a Conv or a
 * Gemm): the only reader of k's output, not a graph output itself. SIZE_MAX
 * when there is none. */
static size_t bn_after(ctx_t *c, size_t k) {
  ent_t *e = out_ent(c, k, 0);
  if (e == NULL || e->nuse != 1 || e->gout)
    return SIZE_MAX;
  const Onnx__NodeProto *u = nodep(c, e->user);
  if (u->op_type == NULL || strcmp(u->op_type, "BatchNormalization") != 0 ||
      (u->domain != NULL && u->domain[0] != '\0' && strcmp(u->domain, "ai.onnx") != 0))
    return SIZE_MAX;
  const char *x = in_name(c, e->user, 0);
  if (x == NULL || strcmp(x, e->name) != 0)
    return SIZE_MAX;
  return e->user;
}

/* The constant behind input j, or NULL when it is not a float constant. */
static const mpc__ctensor_t *peek_const(ctx_t *c, size_t k, size_t j) {
  const char *nm = in_name(c, k, j);
  ent_t *e = nm != NULL ? lookup(c, nm) : NULL;
  if (e == NULL || e->kind != V_CONST)
    return NULL;
  if (e->src == S_INIT) {
    char *save = c->err;
    c->err = NULL;
    int rc = load_init(c, k, e);
    c->err = save;
    if (rc != 0)
      return NULL;
  }
  const mpc__ctensor_t *t = &c->konst[e->kidx].t;
  return t->f != NULL ? t : NULL;
}

/* Output 0 of BatchNormalization node bk, folded into IR node r, which
 * node k (the Conv or Gemm) emitted. */
static void bn_folded(ctx_t *c, size_t k, size_t bk, int r) {
  def_act(c, bk, 0, r);
  out_ent(c, k, 0)->folded = 1;
  c->done[bk] = 1;
}

static int op_batchnorm(ctx_t *c, size_t k) {
  int x, rc;
  if ((rc = in_act(c, k, 0, &x)) != 0)
    return rc;
  mpc_shape_t xs = *shape_of(c, x);
  if (xs.ndim < 2 || xs.ndim > 4)
    return nfail(c, k, TANDEM_EUNSUPOP, "input of rank %u (supported: 2 to 4)", xs.ndim);
  size_t ch = xs.dim[1];
  double *s, *t;
  if ((rc = bn_params(c, k, ch, 0, &s, &t)) != 0)
    return rc;
  if (ch > MAX_AFFINE_CH) {
    free(s);
    free(t);
    return nfail(c, k, TANDEM_EUNSUPOP,
                 "cannot be folded into a preceding Conv or Gemm, and as a stand-alone per-channel "
                 "affine map it is supported for at most %d channels (got %zu)",
                 MAX_AFFINE_CH, ch);
  }
  /* The IR has no per-channel scale, so y = s*x + t is a layer with a
   * diagonal weight: a Gemm for [N, C], a 1x1 Conv for [N, C, H, W] (and
   * for [N, C, L] through a reshape to [N, C, L, 1]). */
  double *diag = calloc(ch * ch, sizeof *diag);
  if (diag == NULL) {
    free(s);
    free(t);
    return gfail(c, TANDEM_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < ch; i++)
    diag[i * ch + i] = s[i];
  free(s);
  char pn[80];
  size_t wd[4] = {ch, ch, 1, 1};
  snprintf(pn, sizeof pn, "%.60s.scale", node_name(c, k));
  int wn = make_param(c, k, pn, xs.ndim == 2 ? 2 : 4, wd, diag);
  if (wn < 0) {
    free(t);
    return wn;
  }
  snprintf(pn, sizeof pn, "%.60s.shift", node_name(c, k));
  int bn = make_param(c, k, pn, 1, wd, t);
  if (bn < 0)
    return bn;
  mpc_node_t nd;
  int r;
  if (xs.ndim == 2) {
    node_init(&nd, MPC_OP_GEMM, x, wn, bn);
    r = add_node(c, k, &nd);
  } else {
    int xin = x;
    if (xs.ndim == 3) {
      node_init(&nd, MPC_OP_RESHAPE, x, -1, -1);
      nd.shape = xs;
      nd.shape.ndim = 4;
      nd.shape.dim[3] = 1;
      if ((xin = add_node(c, k, &nd)) < 0)
        return xin;
    }
    node_init(&nd, MPC_OP_CONV, xin, wn, bn);
    r = add_node(c, k, &nd);
    if (r >= 0 && xs.ndim == 3) {
      node_init(&nd, MPC_OP_RESHAPE, r, -1, -1);
      nd.shape = xs;
      r = add_node(c, k, &nd);
    }
  }
  if (r < 0)
    return r;
  def_act(c, k, 0, r);
  return 0;
}

/* ---- Conv, Gemm, MatMul -------------------------------------------------- */

/* Reads a list attribute of exactly n non-negative values, each < MAX_WIN,
 * with a lower bound lo (1 for strides). */
static int attr_list(ctx_t *c, size_t k, const char *name, size_t n, int64_t lo, size_t *out) {
  const int64_t *v;
  size_t m;
  int rc = attr_ints(c, k, name, &v, &m);
  if (rc != 0 || m == SIZE_MAX)
    return rc;
  if (m != n)
    return nfail(c, k, TANDEM_EUNSUPOP, "%s has %zu values (want %zu: only 2-D is supported)",
                 name, m, n);
  for (size_t i = 0; i < n; i++) {
    if (v[i] < lo || v[i] > MAX_WIN)
      return nfail(c, k, TANDEM_EUNSUPOP, "%s[%zu] = %" PRId64 " is not supported", name, i,
                   v[i]);
    out[i] = (size_t)v[i];
  }
  return 0;
}

/* auto_pad must be NOTSET or VALID (explicit pads, or none). */
static int check_autopad(ctx_t *c, size_t k, int *valid) {
  char ap[32];
  int rc = attr_str(c, k, "auto_pad", "NOTSET", ap, sizeof ap);
  if (rc != 0)
    return rc;
  *valid = strcmp(ap, "VALID") == 0;
  if (strcmp(ap, "NOTSET") != 0 && !*valid)
    return nfail(c, k, TANDEM_EUNSUPOP, "auto_pad=%s is not supported (NOTSET or VALID; export "
                 "with explicit pads)", ap);
  return 0;
}

/* The window attributes common to Conv and the pools into at. */
static int window_attrs(ctx_t *c, size_t k, int dil, mpc_attr_t *at) {
  int valid, rc = check_autopad(c, k, &valid);
  size_t ks[2] = {0, 0};
  if (rc == 0)
    rc = attr_list(c, k, "kernel_shape", 2, 1, ks);
  at->kh = ks[0];
  at->kw = ks[1];
  at->strides[0] = at->strides[1] = 1;
  at->dilations[0] = at->dilations[1] = 1;
  if (rc == 0)
    rc = attr_list(c, k, "strides", 2, 1, at->strides);
  if (rc == 0 && dil)
    rc = attr_list(c, k, "dilations", 2, 1, at->dilations);
  if (rc == 0 && !valid)
    rc = attr_list(c, k, "pads", 4, 0, at->pads);
  return rc;
}

/* The input of a Conv or pool, with any pending Pad folded into at->pads. */
static int window_input(ctx_t *c, size_t k, int allow_pad, mpc_attr_t *at, int *x, int *padded) {
  int rc;
  ent_t *e = in_ent(c, k, 0, 1, &rc);
  if (e == NULL)
    return rc;
  *padded = 0;
  if (e->kind == V_PAD) {
    if (!allow_pad)
      return pad_error(c, k, e);
    for (int i = 0; i < 4; i++)
      at->pads[i] += e->pads[i];
    *padded = 1;
    *x = e->node;
  } else if ((rc = in_act(c, k, 0, x)) != 0) {
    return rc;
  }
  const mpc_shape_t *s = shape_of(c, *x);
  if (s->ndim != 4)
    return nfail(c, k, TANDEM_EUNSUPOP, "input of rank %u: only 2-D windows over 4-D NCHW "
                 "inputs are supported", s->ndim);
  return 0;
}

/* Emits node nd of node k with a following BatchNormalization (node bk)
 * folded in: nd's weight operand becomes the PARAM "<node>.<wsuffix>" of the
 * folded weights w2 (wndim, wdim) and its bias the PARAM "<node>.<bsuffix>"
 * of the folded bias b2 (length nb). Takes ownership of w2 and b2. */
static int emit_folded(ctx_t *c, size_t k, size_t bk, mpc_node_t *nd, const char *wsuffix,
                       unsigned wndim, const size_t *wdim, double *w2, const char *bsuffix,
                       size_t nb, double *b2) {
  char pn[80];
  size_t bd[1] = {nb};
  snprintf(pn, sizeof pn, "%.60s.%s", node_name(c, k), wsuffix);
  nd->in[1] = make_param(c, k, pn, wndim, wdim, w2);
  if (nd->in[1] < 0) {
    free(b2);
    return nd->in[1];
  }
  snprintf(pn, sizeof pn, "%.60s.%s", node_name(c, k), bsuffix);
  if ((nd->in[2] = make_param(c, k, pn, 1, bd, b2)) < 0)
    return nd->in[2];
  int r = add_node(c, k, nd);
  if (r < 0)
    return r;
  bn_folded(c, k, bk, r);
  return 0;
}

/* Emits node nd of node k with its own weight (input 1, required) and bias
 * (input 2, optional) as operands. */
static int emit_plain(ctx_t *c, size_t k, mpc_node_t *nd) {
  int rc;
  if ((rc = in_operand(c, k, 1, 1, &nd->in[1])) != 0 ||
      (rc = in_operand(c, k, 2, 0, &nd->in[2])) != 0)
    return rc;
  int r = add_node(c, k, nd);
  if (r < 0)
    return r;
  def_act(c, k, 0, r);
  return 0;
}

static int op_conv(ctx_t *c, size_t k) {
  static const char *const known[] = {"auto_pad",     "dilations", "group", "kernel_shape",
                                      "pads",         "strides",   NULL};
  int rc = attr_check(c, k, known);
  if (rc != 0)
    return rc;
  int64_t group;
  if ((rc = attr_int(c, k, "group", 1, &group)) != 0)
    return rc;
  if (group != 1)
    return nfail(c, k, TANDEM_EUNSUPOP, "group=%" PRId64 " is not supported", group);
  mpc_node_t nd;
  node_init(&nd, MPC_OP_CONV, -1, -1, -1);
  int x, padded;
  if ((rc = window_attrs(c, k, 1, &nd.attr)) != 0)
    return rc;
  if ((rc = window_input(c, k, 1, &nd.attr, &x, &padded)) != 0)
    return rc;
  nd.in[0] = x;

  /* Fold a following BatchNormalization into constant weights and bias. */
  size_t bk = bn_after(c, k);
  const mpc__ctensor_t *wt = peek_const(c, k, 1);
  const mpc__ctensor_t *bt = in_name(c, k, 2) != NULL ? peek_const(c, k, 2) : NULL;
  double *s = NULL, *t = NULL;
  if (bk != SIZE_MAX && wt != NULL && wt->ndim == 4 && wt->numel > 0 &&
      (in_name(c, k, 2) == NULL || (bt != NULL && bt->numel == wt->dim[0])) &&
      bn_params(c, bk, wt->dim[0], 1, &s, &t) == 0) {
    size_t m = wt->dim[0], per = wt->numel / m;
    double *w2 = dup_doubles(wt->f, wt->numel), *b2 = malloc(m * sizeof *b2);
    if (w2 == NULL || b2 == NULL) {
      free(w2);
      free(b2);
      free(s);
      free(t);
      return gfail(c, TANDEM_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < m; i++) {
      for (size_t j = 0; j < per; j++)
        w2[i * per + j] *= s[i];
      b2[i] = (bt != NULL ? bt->f[i] : 0.0) * s[i] + t[i];
    }
    free(s);
    free(t);
    return emit_folded(c, k, bk, &nd, "W_bn", 4, wt->dim, w2, "B_bn", m, b2);
  }
  return emit_plain(c, k, &nd);
}

static int op_gemm(ctx_t *c, size_t k) {
  static const char *const known[] = {"alpha", "beta", "transA", "transB", NULL};
  int rc = attr_check(c, k, known);
  if (rc != 0)
    return rc;
  mpc_node_t nd;
  node_init(&nd, MPC_OP_GEMM, -1, -1, -1);
  int64_t ta, tb;
  if ((rc = attr_float(c, k, "alpha", 1.0, &nd.attr.alpha)) != 0 ||
      (rc = attr_float(c, k, "beta", 1.0, &nd.attr.beta)) != 0 ||
      (rc = attr_int(c, k, "transA", 0, &ta)) != 0 || (rc = attr_int(c, k, "transB", 0, &tb)) != 0)
    return rc;
  nd.attr.trans_a = ta != 0;
  nd.attr.trans_b = tb != 0;
  if ((rc = in_operand(c, k, 0, 1, &nd.in[0])) != 0)
    return rc;

  /* Fold a following BatchNormalization (over the N output columns) into a
   * constant B and a bias that is a row vector, scalar or absent. */
  size_t bk = bn_after(c, k);
  const mpc__ctensor_t *bt = peek_const(c, k, 1);
  const mpc__ctensor_t *ct = in_name(c, k, 2) != NULL ? peek_const(c, k, 2) : NULL;
  size_t n = bt != NULL && bt->ndim == 2 ? bt->dim[nd.attr.trans_b ? 0 : 1] : 0;
  int c_ok = in_name(c, k, 2) == NULL ||
             (ct != NULL && ct->ndim <= 2 &&
              (ct->numel == 1 || (ct->numel == n && (ct->ndim == 1 || ct->dim[0] == 1))));
  double *s = NULL, *t = NULL;
  if (bk != SIZE_MAX && n > 0 && c_ok && bn_params(c, bk, n, 1, &s, &t) == 0) {
    size_t kk = bt->numel / n;
    double *b2 = dup_doubles(bt->f, bt->numel), *c2 = malloc(n * sizeof *c2);
    if (b2 == NULL || c2 == NULL) {
      free(b2);
      free(c2);
      free(s);
      free(t);
      return gfail(c, TANDEM_ENOMEM, "out of memory");
    }
    for (size_t j = 0; j < n; j++) {
      double f = nd.attr.alpha * s[j];
      for (size_t i = 0; i < kk; i++)
        b2[nd.attr.trans_b ? j * kk + i : i * n + j] *= f;
      double cv = ct == NULL ? 0.0 : ct->f[ct->numel == 1 ? 0 : j];
      c2[j] = s[j] * nd.attr.beta * cv + t[j];
    }
    free(s);
    free(t);
    nd.attr.alpha = nd.attr.beta = 1.0;
    return emit_folded(c, k, bk, &nd, "B_bn", 2, bt->dim, b2, "C_bn", n, c2);
  }
  return emit_plain(c, k, &nd);
}

static int op_matmul(ctx_t *c, size_t k) {
  static const char *const known[] = {NULL};
  int rc = attr_check(c, k, known);
  if (rc != 0)
    return rc;
  mpc_node_t nd;
  node_init(&nd, MPC_OP_MATMUL, -1, -1, -1);
  if ((rc = in_operand(c, k, 0, 1, &nd.in[0])) != 0 ||
      (rc = in_operand(c, k, 1, 1, &nd.in[1])) != 0)
    return rc;
  int r = add_node(c, k, &nd);
  if (r < 0)
    return r;
  def_act(c, k, 0, r);
  return 0;
}

/* ---- pools and Pad ------------------------------------------------------- */

/* ceil_mode=1 is accepted where it gives the floor's output size. */
static int check_ceil(ctx_t *c, size_t k, int x, const mpc_attr_t *at) {
  int64_t ceil_mode;
  int rc = attr_int(c, k, "ceil_mode", 0, &ceil_mode);
  if (rc != 0 || ceil_mode == 0)
    return rc;
  const mpc_shape_t *s = shape_of(c, x);
  for (int a = 0; a < 2; a++) {
    size_t in = s->dim[2 + a], kk = a ? at->kw : at->kh, st = at->strides[a];
    size_t ext = (kk - 1) * at->dilations[a] + 1, padded = in + at->pads[a] + at->pads[a + 2];
    if (ext <= padded && (padded - ext) % st != 0)
      return nfail(c, k, TANDEM_EUNSUPOP, "ceil_mode=1 changes the output size here; only "
                   "ceil_mode=0 is supported");
  }
  return 0;
}

static int op_pool(ctx_t *c, size_t k, int is_max) {
  static const char *const kmax[] = {"auto_pad", "ceil_mode", "dilations", "kernel_shape",
                                     "pads", "storage_order", "strides", NULL};
  static const char *const kavg[] = {"auto_pad", "ceil_mode", "count_include_pad",
                                     "kernel_shape", "pads", "strides", NULL};
  int rc = attr_check(c, k, is_max ? kmax : kavg);
  if (rc != 0)
    return rc;
  mpc_node_t nd;
  node_init(&nd, is_max ? MPC_OP_MAXPOOL : MPC_OP_AVGPOOL, -1, -1, -1);
  if ((rc = window_attrs(c, k, is_max, &nd.attr)) != 0)
    return rc;
  if (nd.attr.kh == 0)
    return nfail(c, k, TANDEM_EPARSE, "kernel_shape is required");
  int64_t cip, so;
  if ((rc = attr_int(c, k, "count_include_pad", 0, &cip)) != 0 ||
      (rc = attr_int(c, k, "storage_order", 0, &so)) != 0)
    return rc;
  if (so != 0)
    return nfail(c, k, TANDEM_EUNSUPOP, "storage_order=%" PRId64 " is not supported", so);
  /* Zero padding from a Pad counts in every average, so it folds into an
   * AveragePool only when the pool's own padding counts too (or it has none):
   * the result is one padding with count_include_pad=1. */
  int own_pads = nd.attr.pads[0] | nd.attr.pads[1] | nd.attr.pads[2] | nd.attr.pads[3];
  int x, padded;
  if ((rc = window_input(c, k, !is_max && (cip != 0 || !own_pads), &nd.attr, &x, &padded)) != 0)
    return rc;
  nd.attr.count_include_pad = cip != 0 || padded;
  nd.in[0] = x;
  if ((rc = check_ceil(c, k, x, &nd.attr)) != 0)
    return rc;
  for (size_t j = 1; j < nodep(c, k)->n_output; j++)
    if (out_ent(c, k, j) != NULL && out_ent(c, k, j)->nuse > 0)
      return nfail(c, k, TANDEM_EUNSUPOP, "the Indices output is not supported");
  int r = add_node(c, k, &nd);
  if (r < 0)
    return r;
  def_act(c, k, 0, r);
  return 0;
}

static int op_gap(ctx_t *c, size_t k) {
  static const char *const known[] = {NULL};
  int rc = attr_check(c, k, known);
  int x, padded;
  mpc_node_t nd;
  node_init(&nd, MPC_OP_AVGPOOL, -1, -1, -1);
  if (rc == 0)
    rc = window_input(c, k, 0, &nd.attr, &x, &padded);
  if (rc != 0)
    return rc;
  const mpc_shape_t *s = shape_of(c, x);
  nd.in[0] = x;
  nd.attr.kh = s->dim[2];
  nd.attr.kw = s->dim[3];
  nd.attr.strides[0] = nd.attr.strides[1] = 1;
  nd.attr.dilations[0] = nd.attr.dilations[1] = 1;
  if (nd.attr.kh > (size_t)MAX_WIN || nd.attr.kw > (size_t)MAX_WIN)
    return nfail(c, k, TANDEM_EUNSUPOP, "plane %zux%zu is too large", nd.attr.kh, nd.attr.kw);
  int r = add_node(c, k, &nd);
  if (r < 0)
    return r;
  def_act(c, k, 0, r);
  return 0;
}

static int op_pad(ctx_t *c, size_t k) {
  static const char *const known[] = {"mode", "pads", "value", NULL};
  int rc = attr_check(c, k, known);
  if (rc != 0)
    return rc;
  char mode[32];
  if ((rc = attr_str(c, k, "mode", "constant", mode, sizeof mode)) != 0)
    return rc;
  if (strcmp(mode, "constant") != 0)
    return nfail(c, k, TANDEM_EUNSUPOP, "mode=%s is not supported (only constant)", mode);
  const int64_t *pv;
  size_t pn;
  double value = 0.0;
  if (c->opset >= 11) {
    if (attr_find(c, k, "pads") != NULL || attr_find(c, k, "value") != NULL)
      return nfail(c, k, TANDEM_EPARSE, "pads and value are inputs from opset 11 on");
    if ((rc = in_ints(c, k, 1, 1, &pv, &pn)) != 0)
      return rc;
    const mpc__ctensor_t *cv;
    if ((rc = in_const(c, k, 2, 0, &cv)) != 0)
      return rc;
    if (cv != NULL) {
      if (cv->numel != 1)
        return nfail(c, k, TANDEM_EPARSE, "constant_value must be a scalar");
      value = cv->f != NULL ? cv->f[0] : (double)cv->i[0];
    }
    if (in_name(c, k, 3) != NULL)
      return nfail(c, k, TANDEM_EUNSUPOP, "the axes input is not supported");
  } else {
    if ((rc = attr_ints(c, k, "pads", &pv, &pn)) != 0 ||
        (rc = attr_float(c, k, "value", 0.0, &value)) != 0)
      return rc;
    if (pn == SIZE_MAX)
      return nfail(c, k, TANDEM_EPARSE, "pads is required");
  }
  if (value != 0.0)
    return nfail(c, k, TANDEM_EUNSUPOP, "padding value %g is not supported (only 0)", value);
  int rc2;
  ent_t *e = in_ent(c, k, 0, 1, &rc2);
  if (e == NULL)
    return rc2;
  if (e->kind == V_CONST)
    return nfail(c, k, TANDEM_EUNSUPOP, "padding a constant is not supported");
  const mpc_shape_t *s = shape_of(c, e->node);
  if (s->ndim != 4 || pn != 8)
    return nfail(c, k, TANDEM_EUNSUPOP, "only padding of the two spatial axes of a 4-D NCHW "
                 "input is supported (input rank %u, %zu pads)", s->ndim,
                 pn == SIZE_MAX ? (size_t)0 : pn);
  for (int i = 0; i < 8; i++) {
    if (pv[i] < 0 || pv[i] > MAX_WIN)
      return nfail(c, k, TANDEM_EUNSUPOP, "pads[%d] = %" PRId64 " is not supported", i, pv[i]);
    if ((i % 4) < 2 && pv[i] != 0)
      return nfail(c, k, TANDEM_EUNSUPOP, "padding the batch or channel axis is not supported");
  }
  ent_t *o = out_ent(c, k, 0);
  if (o == NULL)
    return 0;
  size_t add[4] = {(size_t)pv[2], (size_t)pv[3], (size_t)pv[6], (size_t)pv[7]};
  if (!(add[0] | add[1] | add[2] | add[3])) {
    def_alias(c, k, 0, e);
    return 0;
  }
  o->kind = V_PAD;
  o->node = e->node;
  for (int i = 0; i < 4; i++) {
    o->pads[i] = (e->kind == V_PAD ? e->pads[i] : 0) + add[i];
    if (o->pads[i] > (size_t)MAX_WIN)
      return nfail(c, k, TANDEM_EUNSUPOP, "total padding %zu is too large", o->pads[i]);
  }
  /* node_name may return a scratch buffer: keep the model's own string where
   * there is one, else name the padded value, which lives as long. */
  if (e->kind == V_PAD)
    o->pad_from = e->pad_from;
  else
    o->pad_from = str_or(nodep(c, k)->name, o->name);
  return 0;
}

/* ---- elementwise --------------------------------------------------------- */

static int emit_mulc(ctx_t *c, size_t k, int x, double v) {
  mpc_node_t nd;
  node_init(&nd, MPC_OP_MULC, x, -1, -1);
  nd.attr.scalar = v;
  return add_node(c, k, &nd);
}

static int op_addsub(ctx_t *c, size_t k, int sub) {
  static const char *const known[] = {NULL};
  int rc = attr_check(c, k, known);
  if (rc != 0)
    return rc;
  ent_t *a = in_ent(c, k, 0, 1, &rc);
  if (a == NULL)
    return rc;
  ent_t *b = in_ent(c, k, 1, 1, &rc);
  if (b == NULL)
    return rc;
  if (a->kind == V_PAD)
    return pad_error(c, k, a);
  if (b->kind == V_PAD)
    return pad_error(c, k, b);
  if (a->kind == V_CONST && b->kind == V_CONST)
    return nfail(c, k, TANDEM_EUNSUPOP, "both inputs are constants (export with constant "
                 "folding)");
  int an, bn;
  if ((rc = in_operand(c, k, 0, 1, &an)) != 0 || (rc = in_operand(c, k, 1, 1, &bn)) != 0)
    return rc;
  /* The IR broadcasts only its second operand. When the first is the
   * smaller one (a constant bias on the left, or a broadcast activation),
   * swap them; for Sub that computes b - a, so negate after. */
  const mpc_shape_t *as = shape_of(c, an), *bs = shape_of(c, bn);
  int swap = a->kind == V_CONST || mpc_shape_numel(as) < mpc_shape_numel(bs);
  if (b->kind == V_CONST)
    swap = 0;
  mpc_node_t nd;
  node_init(&nd, sub ? MPC_OP_SUB : MPC_OP_ADD, swap ? bn : an, swap ? an : bn, -1);
  int r = add_node(c, k, &nd);
  if (r >= 0 && swap && sub)
    r = emit_mulc(c, k, r, -1.0);
  if (r < 0)
    return r;
  def_act(c, k, 0, r);
  return 0;
}

static int op_muldiv(ctx_t *c, size_t k, int div) {
  static const char *const known[] = {NULL};
  int rc = attr_check(c, k, known);
  if (rc != 0)
    return rc;
  ent_t *a = in_ent(c, k, 0, 1, &rc);
  if (a == NULL)
    return rc;
  ent_t *b = in_ent(c, k, 1, 1, &rc);
  if (b == NULL)
    return rc;
  if (a->kind == V_CONST && b->kind == V_CONST)
    return nfail(c, k, TANDEM_EUNSUPOP, "both inputs are constants (export with constant "
                 "folding)");
  if (a->kind != V_CONST && b->kind != V_CONST)
    return nfail(c, k, TANDEM_EUNSUPOP, "the product of two computed values is not supported "
                 "(only multiplication or division by a constant scalar)");
  if (div && a->kind == V_CONST)
    return nfail(c, k, TANDEM_EUNSUPOP, "division by a computed value is not supported");
  ent_t *x = a->kind == V_CONST ? b : a, *kc = a->kind == V_CONST ? a : b;
  if (x->kind == V_PAD)
    return pad_error(c, k, x);
  const mpc__ctensor_t *t = &c->konst[kc->kidx].t;
  char nb[16];
  if (t->f == NULL)
    return nfail(c, k, TANDEM_EPARSE, "constant '%s' has data type %s (want FLOAT or DOUBLE)",
                 kc->name, mpc__onnx_dtype_name(t->dtype, nb));
  if (t->numel != 1)
    return nfail(c, k, TANDEM_EUNSUPOP, "multiplication by a constant tensor of %zu elements is "
                 "not supported (only by a scalar)", t->numel);
  const mpc_shape_t *xs = shape_of(c, x->node);
  if (t->ndim > xs->ndim)
    return nfail(c, k, TANDEM_ESHAPE, "the constant has more dimensions than the input");
  double v = t->f[0];
  if (div) {
    if (v == 0.0)
      return nfail(c, k, TANDEM_ERANGE, "division by zero");
    v = 1.0 / v;
  }
  if (!isfinite(v))
    return nfail(c, k, TANDEM_ERANGE, "the scalar is not finite");
  int r = emit_mulc(c, k, x->node, v);
  if (r < 0)
    return r;
  def_act(c, k, 0, r);
  return 0;
}

static int op_relu(ctx_t *c, size_t k) {
  static const char *const known[] = {NULL};
  int rc = attr_check(c, k, known), x;
  if (rc != 0 || (rc = in_act(c, k, 0, &x)) != 0)
    return rc;
  mpc_node_t nd;
  node_init(&nd, MPC_OP_RELU, x, -1, -1);
  int r = add_node(c, k, &nd);
  if (r < 0)
    return r;
  def_act(c, k, 0, r);
  return 0;
}

static int op_identity(ctx_t *c, size_t k, int dropout) {
  static const char *const kid[] = {NULL};
  static const char *const kdrop[] = {"ratio", "seed", "is_test", NULL};
  int rc = attr_check(c, k, dropout ? kdrop : kid);
  if (rc != 0)
    return rc;
  if (dropout) {
    int64_t is_test;
    if ((rc = attr_int(c, k, "is_test", 1, &is_test)) != 0)
      return rc;
    const mpc__ctensor_t *tm = NULL;
    if (in_name(c, k, 2) != NULL && (rc = in_const(c, k, 2, 0, &tm)) != 0)
      return rc;
    if (tm != NULL && (tm->numel != 1 || (tm->i != NULL ? tm->i[0] : tm->f[0]) != 0))
      return nfail(c, k, TANDEM_EUNSUPOP, "training_mode=true is not supported (inference only)");
    for (size_t j = 1; j < nodep(c, k)->n_output; j++)
      if (out_ent(c, k, j) != NULL && out_ent(c, k, j)->nuse > 0)
        return nfail(c, k, TANDEM_EUNSUPOP, "the mask output is not supported");
  }
  ent_t *e = in_ent(c, k, 0, 1, &rc);
  if (e == NULL)
    return rc;
  def_alias(c, k, 0, e);
  return 0;
}

/* Constant: a tensor (or a float or int, or lists of them) known at import. */
static int op_constant(ctx_t *c, size_t k) {
  static const char *const known[] = {"value", "value_float", "value_floats", "value_int",
                                      "value_ints", NULL};
  int rc = attr_check(c, k, known);
  if (rc != 0)
    return rc;
  const Onnx__NodeProto *n = nodep(c, k);
  if (n->n_attribute != 1)
    return nfail(c, k, TANDEM_EPARSE, "needs exactly one value attribute, has %zu",
                 n->n_attribute);
  const attr_t *a = n->attribute[0];
  mpc__ctensor_t t;
  memset(&t, 0, sizeof t);
  if (strcmp(a->name, "value") == 0) {
    char why[300];
    if (!is_type(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR, a->t != NULL) || a->t == NULL)
      return nfail(c, k, TANDEM_EPARSE, "value is not a tensor");
    if ((rc = mpc__ctensor_from_proto(a->t, &t, why, sizeof why)) != 0)
      return nfail(c, k, rc, "value: %s", why);
  } else {
    int isf = strcmp(a->name, "value_float") == 0 || strcmp(a->name, "value_floats") == 0;
    int list = a->name[strlen(a->name) - 1] == 's';
    int ok = list ? is_type(a, isf ? ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
                                   : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS,
                            isf ? a->n_floats > 0 : a->n_ints > 0)
                  : is_type(a, isf ? ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
                                   : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT,
                            isf ? a->has_f : a->has_i);
    if (!ok)
      return nfail(c, k, TANDEM_EPARSE, "attribute '%s' has the wrong type", a->name);
    size_t cnt = list ? (isf ? a->n_floats : a->n_ints) : 1;
    t.dtype = isf ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t.ndim = list ? 1 : 0;
    t.dim[0] = cnt;
    t.numel = cnt;
    if (isf)
      t.f = malloc((cnt ? cnt : 1) * sizeof *t.f);
    else
      t.i = malloc((cnt ? cnt : 1) * sizeof *t.i);
    if (t.f == NULL && t.i == NULL)
      return gfail(c, TANDEM_ENOMEM, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
      if (isf)
        t.f[i] = list ? (double)a->floats[i] : (double)a->f;
      else
        t.i[i] = list ? a->ints[i] : a->i;
    }
  }
  int ki = konst_add(c, &t);
  if (ki < 0) {
    mpc__ctensor_close(&t);
    return gfail(c, TANDEM_ENOMEM, "out of memory");
  }
  def_const(c, k, 0, ki);
  return 0;
}

/* ---- the walk ------------------------------------------------------------ */

static int run_node(ctx_t *c, size_t k) {
  const Onnx__NodeProto *n = nodep(c, k);
  const char *op = str_or(n->op_type, "");
  if (n->domain != NULL && n->domain[0] != '\0' && strcmp(n->domain, "ai.onnx") != 0)
    return nfail(c, k, TANDEM_EUNSUPOP, "operator %.80s.%.80s is not supported (only the "
                 "default ONNX domain)", n->domain, op);
  if (strcmp(op, "Gemm") == 0)
    return op_gemm(c, k);
  if (strcmp(op, "MatMul") == 0)
    return op_matmul(c, k);
  if (strcmp(op, "Conv") == 0)
    return op_conv(c, k);
  if (strcmp(op, "Add") == 0 || strcmp(op, "Sub") == 0)
    return op_addsub(c, k, op[0] == 'S');
  if (strcmp(op, "Mul") == 0 || strcmp(op, "Div") == 0)
    return op_muldiv(c, k, op[0] == 'D');
  if (strcmp(op, "Relu") == 0)
    return op_relu(c, k);
  if (strcmp(op, "Flatten") == 0)
    return op_flatten(c, k);
  if (strcmp(op, "Reshape") == 0)
    return op_reshape(c, k);
  if (strcmp(op, "Transpose") == 0)
    return op_transpose(c, k);
  if (strcmp(op, "Squeeze") == 0 || strcmp(op, "Unsqueeze") == 0)
    return op_squeeze(c, k, op[0] == 'U');
  if (strcmp(op, "MaxPool") == 0 || strcmp(op, "AveragePool") == 0)
    return op_pool(c, k, op[0] == 'M');
  if (strcmp(op, "GlobalAveragePool") == 0)
    return op_gap(c, k);
  if (strcmp(op, "Pad") == 0)
    return op_pad(c, k);
  if (strcmp(op, "BatchNormalization") == 0)
    return op_batchnorm(c, k);
  if (strcmp(op, "Identity") == 0 || strcmp(op, "Dropout") == 0)
    return op_identity(c, k, op[0] == 'D');
  if (strcmp(op, "Constant") == 0)
    return op_constant(c, k);
  return nfail(c, k, TANDEM_EUNSUPOP, "operator %.80s is not supported", op[0] ? op : "(empty)");
}

/* Steps 1 and 2: the name table, reader counts, and a topological order. */
static int index_and_sort(ctx_t *c, size_t **order_out) {
  const Onnx__GraphProto *gp = c->gp;
  size_t cap = gp->n_initializer + gp->n_input;
  for (size_t k = 0; k < gp->n_node; k++) {
    if (gp->node[k] == NULL)
      return gfail(c, TANDEM_EPARSE, "node %zu is empty", k);
    cap += gp->node[k]->n_output;
  }
  size_t tcap = 16;
  while (tcap < 2 * cap + 1)
    tcap *= 2;
  c->ents = calloc(cap ? cap : 1, sizeof *c->ents);
  c->tab = malloc(tcap * sizeof *c->tab);
  c->done = calloc(gp->n_node ? gp->n_node : 1, 1);
  if (c->ents == NULL || c->tab == NULL || c->done == NULL)
    return gfail(c, TANDEM_ENOMEM, "out of memory");
  c->capents = cap;
  c->tabmask = tcap - 1;
  for (size_t i = 0; i < tcap; i++)
    c->tab[i] = -1;

  for (size_t i = 0; i < gp->n_initializer; i++) {
    const Onnx__TensorProto *t = gp->initializer[i];
    if (t == NULL || t->name == NULL || t->name[0] == '\0')
      return gfail(c, TANDEM_EPARSE, "initializer %zu has no name", i);
    ent_t *e = insert(c, t->name, S_INIT, i);
    if (e == NULL)
      return gfail(c, TANDEM_EPARSE, "initializer '%s' is defined twice", t->name);
    e->kind = V_CONST;
  }
  if (gp->n_sparse_initializer > 0)
    return gfail(c, TANDEM_EUNSUPOP, "sparse initializers are not supported");
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *v = gp->input[i];
    if (v == NULL || v->name == NULL || v->name[0] == '\0')
      return gfail(c, TANDEM_EPARSE, "graph input %zu has no name", i);
    ent_t *e = lookup(c, v->name);
    if (e != NULL && e->src == S_INIT)
      continue; /* IR < 4 lists initializers among the inputs: the initializer wins */
    if (e != NULL || insert(c, v->name, S_INPUT, i) == NULL)
      return gfail(c, TANDEM_EPARSE, "graph input '%s' is listed twice", v->name);
  }
  for (size_t k = 0; k < gp->n_node; k++) {
    const Onnx__NodeProto *n = gp->node[k];
    for (size_t j = 0; j < n->n_output; j++) {
      const char *nm = n->output[j];
      if (nm == NULL || nm[0] == '\0')
        continue;
      if (insert(c, nm, S_NODE, k) == NULL)
        return nfail(c, k, TANDEM_EPARSE, "output '%s' is already defined elsewhere", nm);
    }
  }

  /* Readers, dangling names, and the dependency graph in CSR form. */
  size_t nn = gp->n_node, nedge = 0;
  size_t *indeg = calloc(nn ? nn : 1, sizeof *indeg);
  size_t *start = calloc(nn + 1, sizeof *start);
  size_t *order = malloc((nn ? nn : 1) * sizeof *order);
  size_t *adj = NULL;
  int rc = 0;
  if (indeg == NULL || start == NULL || order == NULL) {
    rc = gfail(c, TANDEM_ENOMEM, "out of memory");
    goto out;
  }
  for (size_t k = 0; k < nn; k++) {
    const Onnx__NodeProto *n = gp->node[k];
    for (size_t j = 0; j < n->n_input; j++) {
      const char *nm = n->input[j];
      if (nm == NULL || nm[0] == '\0')
        continue;
      ent_t *e = lookup(c, nm);
      if (e == NULL) {
        rc = nfail(c, k, TANDEM_EPARSE, "input '%s' is not produced by any node, initializer or "
                   "graph input", nm);
        goto out;
      }
      e->nuse++;
      e->user = k;
      if (e->src == S_NODE) {
        if (e->idx == k) {
          rc = nfail(c, k, TANDEM_EPARSE, "reads its own output '%s' (a cycle)", nm);
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
    ent_t *e = v != NULL ? lookup(c, v->name) : NULL;
    if (e == NULL) {
      rc = gfail(c, TANDEM_EPARSE, "graph output '%s' is not produced by any node or input",
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
    rc = gfail(c, TANDEM_ENOMEM, "out of memory");
    goto out;
  }
  for (size_t k = 0; k < nn; k++) {
    const Onnx__NodeProto *n = gp->node[k];
    for (size_t j = 0; j < n->n_input; j++) {
      ent_t *e = lookup(c, n->input[j]);
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
        rc = nfail(c, k, TANDEM_EPARSE, "is part of a cycle");
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

static int add_inputs(ctx_t *c) {
  const Onnx__GraphProto *gp = c->gp;
  char nb[16];
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *v = gp->input[i];
    ent_t *e = lookup(c, v->name);
    if (e == NULL || e->src != S_INPUT)
      continue;
    const Onnx__TypeProto *tp = v->type;
    if (tp == NULL || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        tp->tensor_type == NULL)
      return gfail(c, TANDEM_EPARSE, "graph input '%s' is not a tensor", v->name);
    int et = tp->tensor_type->has_elem_type ? tp->tensor_type->elem_type : 0;
    if (et != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && et != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
      return gfail(c, TANDEM_EPARSE, "graph input '%s' has type %s (want FLOAT or DOUBLE)",
                   v->name, mpc__onnx_dtype_name(et, nb));
    const Onnx__TensorShapeProto *sp = tp->tensor_type->shape;
    if (sp == NULL)
      return gfail(c, TANDEM_EUNSUPOP, "graph input '%s' has no shape", v->name);
    if (sp->n_dim < 1 || sp->n_dim > MPC_MAX_DIMS)
      return gfail(c, TANDEM_EUNSUPOP, "graph input '%s' has rank %zu (supported: 1 to %d)",
                   v->name, sp->n_dim, MPC_MAX_DIMS);
    mpc_node_t nd;
    node_init(&nd, MPC_OP_INPUT, -1, -1, -1);
    snprintf(nd.name, sizeof nd.name, "%.63s", v->name);
    nd.shape.ndim = (unsigned)sp->n_dim;
    for (size_t d = 0; d < sp->n_dim; d++) {
      const Onnx__TensorShapeProto__Dimension *dm = sp->dim[d];
      int sym = dm == NULL || dm->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
                dm->dim_value == 0;
      if (sym && d == 0) {
        nd.shape.dim[0] = 1; /* the batch, substituted later */
        continue;
      }
      if (sym)
        return gfail(c, TANDEM_EUNSUPOP, "graph input '%s': dimension %zu is symbolic; only the "
                     "first (batch) dimension may be", v->name, d);
      if (dm->dim_value < 0 || (uint64_t)dm->dim_value > MPC__CT_MAX_NUMEL)
        return gfail(c, TANDEM_EPARSE, "graph input '%s': dimension %zu is %" PRId64, v->name, d,
                     dm->dim_value);
      nd.shape.dim[d] = (size_t)dm->dim_value;
    }
    int r = add_node(c, SIZE_MAX, &nd);
    if (r < 0)
      return r;
    e->kind = V_ACT;
    e->node = r;
  }
  return 0;
}

static int add_outputs(ctx_t *c) {
  const Onnx__GraphProto *gp = c->gp;
  if (gp->n_output == 0)
    return gfail(c, TANDEM_EPARSE, "the graph has no outputs");
  for (size_t i = 0; i < gp->n_output; i++) {
    const char *nm = gp->output[i]->name;
    ent_t *e = lookup(c, nm);
    if (e->kind != V_ACT)
      return gfail(c, TANDEM_EUNSUPOP, "graph output '%s' is %s; only values computed from the "
                   "inputs can be outputs", nm,
                   e->kind == V_CONST ? "a constant" : e->kind == V_PAD ? "a stand-alone Pad"
                                                                        : "not computed");
    mpc_node_t nd;
    node_init(&nd, MPC_OP_OUTPUT, e->node, -1, -1);
    snprintf(nd.name, sizeof nd.name, "%.63s", nm);
    int r = add_node(c, SIZE_MAX, &nd);
    if (r < 0)
      return r;
  }
  return 0;
}

/* The range the model's inputs are known to take, if its author declared it
 * in the model's metadata ("tandem.input_bound", a positive number: every
 * input element satisfies |x| <= it). The model owner publishes it as the
 * input bound, and every comparison gate is sized for it (mpc_weights_bounds),
 * so a declared range much smaller than the largest safe one makes the gates
 * narrower. */
static int read_input_bound(ctx_t *c, const Onnx__ModelProto *m) {
  for (size_t i = 0; i < m->n_metadata_props; i++) {
    const Onnx__StringStringEntryProto *e = m->metadata_props[i];
    if (e == NULL || e->key == NULL || strcmp(e->key, "tandem.input_bound") != 0)
      continue;
    const char *v = str_or(e->value, "");
    char *end = NULL;
    double b = strtod(v, &end);
    if (end == v || *end != '\0' || !(b > 0 && b < 1e300))
      return gfail(c, TANDEM_EPARSE,
                   "metadata tandem.input_bound is '%.40s', not a positive number", v);
    c->g->input_bound = b;
  }
  return 0;
}

static int check_opset(ctx_t *c, const Onnx__ModelProto *m) {
  c->opset = -1;
  for (size_t i = 0; i < m->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = m->opset_import[i];
    if (o == NULL)
      continue;
    if (o->domain == NULL || o->domain[0] == '\0' || strcmp(o->domain, "ai.onnx") == 0)
      c->opset = o->has_version ? (long)(o->version > 1000 ? 1000 : o->version) : 0;
  }
  if (c->opset < 0)
    return gfail(c, TANDEM_EPARSE, "the model imports no default-domain opset");
  if (c->opset < OPSET_MIN || c->opset > OPSET_MAX)
    return gfail(c, TANDEM_EUNSUPOP, "opset %ld is not supported (%d to %d)", c->opset,
                 OPSET_MIN, OPSET_MAX);
  return 0;
}

static void ctx_free(ctx_t *c) {
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

int mpc_onnx_load_buffer(const void *buf, size_t len, mpc_graph_t *g, mpc_weights_t *w,
                         char *err, size_t errlen) {
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (g == NULL || w == NULL || (buf == NULL && len > 0)) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "mpc_onnx_load: no buffer, graph or weights");
    return TANDEM_EINVAL;
  }
  mpc_graph_init(g);
  memset(w, 0, sizeof *w);
  ctx_t c;
  memset(&c, 0, sizeof c);
  c.g = g;
  c.err = err;
  c.errlen = errlen;
  if (len > MPC_FILE_MAX)
    return gfail(&c, TANDEM_EINVAL, "model of %zu bytes exceeds the limit of %zu", len,
                 MPC_FILE_MAX);
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
  if (m == NULL)
    return gfail(&c, TANDEM_EPARSE, "not an ONNX model (protobuf parse failed)");
  size_t *order = NULL;
  int rc = check_opset(&c, m);
  if (rc != 0)
    goto fail;
  if (m->graph == NULL) {
    rc = gfail(&c, TANDEM_EPARSE, "the model has no graph");
    goto fail;
  }
  c.gp = m->graph;
  if ((rc = index_and_sort(&c, &order)) != 0 || (rc = add_inputs(&c)) != 0)
    goto fail;
  /* Constants first: a BatchNormalization folded into the layer before it
   * needs its parameters when that layer is emitted. */
  for (size_t i = 0; i < c.gp->n_node; i++) {
    size_t k = order[i];
    const char *op = str_or(nodep(&c, k)->op_type, "");
    if (strcmp(op, "Constant") == 0 && str_or(nodep(&c, k)->domain, "")[0] == '\0') {
      if ((rc = run_node(&c, k)) != 0)
        goto fail;
      c.done[k] = 1;
    }
  }
  for (size_t i = 0; i < c.gp->n_node; i++) {
    size_t k = order[i];
    if (c.done[k])
      continue;
    if ((rc = run_node(&c, k)) != 0)
      goto fail;
    /* An output someone reads must have been produced. */
    const Onnx__NodeProto *n = nodep(&c, k);
    for (size_t j = 0; j < n->n_output; j++) {
      ent_t *e = out_ent(&c, k, j);
      if (e != NULL && e->nuse > 0 && e->kind == V_UNDEF && !e->folded) {
        rc = nfail(&c, k, TANDEM_EUNSUPOP, "output %zu ('%s') is not supported", j, e->name);
        goto fail;
      }
    }
  }
  if ((rc = add_outputs(&c)) != 0 || (rc = read_input_bound(&c, m)) != 0)
    goto fail;
  if ((rc = mpc_weights_init(w, g)) != 0) {
    gfail(&c, rc, "cannot allocate the weights: %s", tandem_strerror(rc));
    goto fail;
  }
  /* Hand the parameter arrays to w (same shape, same allocator). */
  for (size_t i = 0; i < c.npdat; i++) {
    mpc_ftensor_t *t = &w->param[c.pdat[i].node];
    free(t->data);
    t->data = c.pdat[i].data;
    c.pdat[i].data = NULL;
  }
  free(order);
  ctx_free(&c);
  onnx__model_proto__free_unpacked(m, NULL);
  return 0;

fail:
  free(order);
  ctx_free(&c);
  onnx__model_proto__free_unpacked(m, NULL);
  mpc_weights_close(w);
  mpc_graph_close(g);
  return rc;
}

int mpc_onnx_load(const char *path, mpc_graph_t *g, mpc_weights_t *w, char *err, size_t errlen) {
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (g == NULL || w == NULL || path == NULL)
    return TANDEM_EINVAL;
  mpc_graph_init(g);
  memset(w, 0, sizeof *w);
  uint8_t *buf;
  size_t len;
  int rc = mpc__read_file(path, MPC_FILE_MAX, &buf, &len, err, errlen);
  if (rc != 0)
    return rc;
  char why[800];
  rc = mpc_onnx_load_buffer(buf, len, g, w, why, sizeof why);
  free(buf);
  if (rc != 0 && err != NULL && errlen > 0)
    snprintf(err, errlen, "%s: %s", path, why);
  return rc;
}
