/* onnx_build.c - the test-side ONNX model builder (see onnx_build.h).
 *
 * Messages are plain protobuf-c structs filled by hand: every allocation goes
 * on one list owned by the builder (the structs never come from
 * protobuf-c's unpacker, so its free function must not be used on them), and
 * repeated fields live in fixed arrays sized for the tests' small models.
 */
#include "onnx_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OB_MAX 128 /* nodes, initializers, inputs, outputs, attributes per node */

struct ob_s {
  void **allocs;
  size_t nallocs, capallocs;
  Onnx__ModelProto model;
  Onnx__GraphProto graph;
  Onnx__OperatorSetIdProto opset;
  Onnx__OperatorSetIdProto *opsets[1];
  Onnx__NodeProto *nodes[OB_MAX];
  Onnx__TensorProto *inits[OB_MAX];
  Onnx__ValueInfoProto *inputs[OB_MAX];
  Onnx__ValueInfoProto *outputs[OB_MAX];
};

static void *ob_alloc(ob_t *b, size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (p == NULL)
    abort();
  if (b->nallocs == b->capallocs) {
    size_t cap = b->capallocs ? 2 * b->capallocs : 64;
    void **a = realloc(b->allocs, cap * sizeof *a);
    if (a == NULL)
      abort();
    b->allocs = a;
    b->capallocs = cap;
  }
  b->allocs[b->nallocs++] = p;
  return p;
}

static char *ob_strdup(ob_t *b, const char *s) {
  size_t n = strlen(s);
  char *d = ob_alloc(b, n + 1);
  memcpy(d, s, n);
  return d;
}

ob_t *ob_new(int64_t opset) {
  ob_t *b = calloc(1, sizeof *b);
  if (b == NULL)
    abort();
  Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
  Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
  Onnx__OperatorSetIdProto o = ONNX__OPERATOR_SET_ID_PROTO__INIT;
  b->model = m;
  b->graph = g;
  b->opset = o;
  b->opset.domain = ob_strdup(b, "");
  b->opset.has_version = 1;
  b->opset.version = opset;
  b->opsets[0] = &b->opset;
  b->model.has_ir_version = 1;
  b->model.ir_version = 8;
  b->model.n_opset_import = 1;
  b->model.opset_import = b->opsets;
  b->model.producer_name = ob_strdup(b, "tandem-tests");
  b->model.graph = &b->graph;
  b->graph.name = ob_strdup(b, "g");
  b->graph.node = b->nodes;
  b->graph.initializer = b->inits;
  b->graph.input = b->inputs;
  b->graph.output = b->outputs;
  return b;
}

void ob_free(ob_t *b) {
  if (b == NULL)
    return;
  for (size_t i = 0; i < b->nallocs; i++)
    free(b->allocs[i]);
  free(b->allocs);
  free(b);
}

void ob_input(ob_t *b, const char *name, int elem, unsigned ndim, const int64_t *dims) {
  Onnx__ValueInfoProto *v = ob_alloc(b, sizeof *v);
  Onnx__ValueInfoProto vi = ONNX__VALUE_INFO_PROTO__INIT;
  *v = vi;
  v->name = ob_strdup(b, name);
  Onnx__TypeProto *tp = ob_alloc(b, sizeof *tp);
  Onnx__TypeProto tpi = ONNX__TYPE_PROTO__INIT;
  *tp = tpi;
  Onnx__TypeProto__Tensor *tt = ob_alloc(b, sizeof *tt);
  Onnx__TypeProto__Tensor tti = ONNX__TYPE_PROTO__TENSOR__INIT;
  *tt = tti;
  tt->has_elem_type = 1;
  tt->elem_type = elem;
  Onnx__TensorShapeProto *sp = ob_alloc(b, sizeof *sp);
  Onnx__TensorShapeProto spi = ONNX__TENSOR_SHAPE_PROTO__INIT;
  *sp = spi;
  sp->n_dim = ndim;
  sp->dim = ob_alloc(b, (ndim ? ndim : 1) * sizeof *sp->dim);
  for (unsigned d = 0; d < ndim; d++) {
    Onnx__TensorShapeProto__Dimension *dm = ob_alloc(b, sizeof *dm);
    Onnx__TensorShapeProto__Dimension dmi = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    *dm = dmi;
    if (dims[d] < 0) {
      dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      dm->dim_param = ob_strdup(b, "N");
    } else {
      dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      dm->dim_value = dims[d];
    }
    sp->dim[d] = dm;
  }
  tt->shape = sp;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  v->type = tp;
  b->inputs[b->graph.n_input++] = v;
}

void ob_output(ob_t *b, const char *name) {
  Onnx__ValueInfoProto *v = ob_alloc(b, sizeof *v);
  Onnx__ValueInfoProto vi = ONNX__VALUE_INFO_PROTO__INIT;
  *v = vi;
  v->name = ob_strdup(b, name);
  b->outputs[b->graph.n_output++] = v;
}

static Onnx__TensorProto *tensor_head(ob_t *b, const char *name, int dtype, unsigned ndim,
                                      const int64_t *dims, size_t *numel) {
  Onnx__TensorProto *t = ob_alloc(b, sizeof *t);
  Onnx__TensorProto ti = ONNX__TENSOR_PROTO__INIT;
  *t = ti;
  if (name != NULL)
    t->name = ob_strdup(b, name);
  t->has_data_type = 1;
  t->data_type = dtype;
  t->n_dims = ndim;
  t->dims = ob_alloc(b, (ndim ? ndim : 1) * sizeof *t->dims);
  size_t n = 1;
  for (unsigned d = 0; d < ndim; d++) {
    t->dims[d] = dims[d];
    n *= (size_t)dims[d];
  }
  *numel = n;
  return t;
}

Onnx__TensorProto *ob_tensor(ob_t *b, const char *name, int dtype, int raw, unsigned ndim,
                             const int64_t *dims, const double *vals) {
  size_t n;
  Onnx__TensorProto *t = tensor_head(b, name, dtype, ndim, dims, &n);
  int isf = dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  if (raw) {
    /* x86_64 is little-endian, the layout raw_data wants. */
    size_t es = isf ? 4 : 8;
    uint8_t *r = ob_alloc(b, n * es);
    for (size_t i = 0; i < n; i++) {
      float f = (float)vals[i];
      if (isf)
        memcpy(r + 4 * i, &f, 4);
      else
        memcpy(r + 8 * i, &vals[i], 8);
    }
    t->has_raw_data = 1;
    t->raw_data.data = r;
    t->raw_data.len = n * es;
  } else if (isf) {
    t->n_float_data = n;
    t->float_data = ob_alloc(b, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
      t->float_data[i] = (float)vals[i];
  } else {
    t->n_double_data = n;
    t->double_data = ob_alloc(b, n * sizeof(double));
    memcpy(t->double_data, vals, n * sizeof(double));
  }
  return t;
}

Onnx__TensorProto *ob_tensor_i64(ob_t *b, const char *name, int raw, unsigned ndim,
                                 const int64_t *dims, const int64_t *vals) {
  size_t n;
  Onnx__TensorProto *t = tensor_head(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, ndim, dims, &n);
  if (raw) {
    uint8_t *r = ob_alloc(b, n * 8);
    memcpy(r, vals, n * 8);
    t->has_raw_data = 1;
    t->raw_data.data = r;
    t->raw_data.len = n * 8;
  } else {
    t->n_int64_data = n;
    t->int64_data = ob_alloc(b, n * sizeof(int64_t));
    memcpy(t->int64_data, vals, n * sizeof(int64_t));
  }
  return t;
}

void ob_add_init(ob_t *b, Onnx__TensorProto *t) { b->inits[b->graph.n_initializer++] = t; }

void ob_init_f(ob_t *b, const char *name, unsigned ndim, const int64_t *dims, const double *vals) {
  ob_add_init(b, ob_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, ndim, dims, vals));
}

void ob_init_i64(ob_t *b, const char *name, size_t n, const int64_t *vals) {
  int64_t d = (int64_t)n;
  ob_add_init(b, ob_tensor_i64(b, name, 1, 1, &d, vals));
}

/* Splits "a,,b" into {"a", "", "b"}. */
static size_t split(ob_t *b, const char *s, char ***out) {
  size_t n = 1;
  for (const char *p = s; *p; p++)
    n += *p == ',';
  if (*s == '\0')
    n = 0;
  char **v = ob_alloc(b, (n ? n : 1) * sizeof *v);
  const char *p = s;
  for (size_t i = 0; i < n; i++) {
    const char *q = strchr(p, ',');
    size_t len = q != NULL ? (size_t)(q - p) : strlen(p);
    v[i] = ob_alloc(b, len + 1);
    memcpy(v[i], p, len);
    p = q != NULL ? q + 1 : p + len;
  }
  *out = v;
  return n;
}

Onnx__NodeProto *ob_node(ob_t *b, const char *op, const char *name, const char *inputs,
                         const char *outputs) {
  Onnx__NodeProto *n = ob_alloc(b, sizeof *n);
  Onnx__NodeProto ni = ONNX__NODE_PROTO__INIT;
  *n = ni;
  n->op_type = ob_strdup(b, op);
  if (name != NULL)
    n->name = ob_strdup(b, name);
  n->n_input = split(b, inputs, &n->input);
  n->n_output = split(b, outputs, &n->output);
  n->attribute = ob_alloc(b, OB_MAX * sizeof *n->attribute);
  b->nodes[b->graph.n_node++] = n;
  return n;
}

static Onnx__AttributeProto *attr_new(ob_t *b, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
  Onnx__AttributeProto *a = ob_alloc(b, sizeof *a);
  Onnx__AttributeProto ai = ONNX__ATTRIBUTE_PROTO__INIT;
  *a = ai;
  a->name = ob_strdup(b, name);
  a->has_type = 1;
  a->type = type;
  n->attribute[n->n_attribute++] = a;
  return a;
}

void ob_attr_i(ob_t *b, Onnx__NodeProto *n, const char *name, int64_t v) {
  Onnx__AttributeProto *a = attr_new(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  a->has_i = 1;
  a->i = v;
}

void ob_attr_f(ob_t *b, Onnx__NodeProto *n, const char *name, float v) {
  Onnx__AttributeProto *a = attr_new(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  a->has_f = 1;
  a->f = v;
}

void ob_attr_ints(ob_t *b, Onnx__NodeProto *n, const char *name, size_t cnt, const int64_t *v) {
  Onnx__AttributeProto *a = attr_new(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  a->n_ints = cnt;
  a->ints = ob_alloc(b, (cnt ? cnt : 1) * sizeof *a->ints);
  memcpy(a->ints, v, cnt * sizeof *a->ints);
}

void ob_attr_s(ob_t *b, Onnx__NodeProto *n, const char *name, const char *s) {
  Onnx__AttributeProto *a = attr_new(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
  a->has_s = 1;
  a->s.data = (uint8_t *)ob_strdup(b, s);
  a->s.len = strlen(s);
}

void ob_attr_t(ob_t *b, Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t) {
  Onnx__AttributeProto *a = attr_new(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
  a->t = t;
}

uint8_t *ob_pack(ob_t *b, size_t *len) {
  size_t n = onnx__model_proto__get_packed_size(&b->model);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL)
    abort();
  *len = onnx__model_proto__pack(&b->model, buf);
  return buf;
}
