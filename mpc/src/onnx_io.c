/* onnx_io.c - the ONNX importer's graph inputs and outputs: each input
 * bound to the client's data, to token ids, to a file of public integers
 * (shapes, axes, pads) or to the scales of a resize; each output made a
 * graph output (a constant one stored as such); the published input bound
 * and the opsets read and checked (onnx.c's file comment). Split from
 * onnx_read.c, which reads the nodes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_imp.h"

#define OPSET_MIN 9
#define OPSET_MAX 21

/* Graph input e, of type INT64 (a shape, axes or pads input), as a constant
 * read from the file given for it at import (position pos among the graph
 * inputs that are not initializers): its values are the model's structure,
 * public, not a client's secret. */
static int bind_input(ctx_t *c, ent_t *e, size_t pos, int dtype) {
  if (c->bind == NULL || pos >= c->nbind || c->bind[pos] == NULL)
    return mpc__onnx_gfail(c, TANDEM_EUNSUPOP,
                           "graph input '%s' has type INT64 (a shape, axes or pads input): "
                           "its values must be known at import (tandem run --input)",
                           e->name);
  uint8_t *buf = NULL;
  size_t len = 0;
  char why[300];
  int rc = mpc__read_file(c->bind[pos], MPC_FILE_MAX, &buf, &len, why, sizeof why);
  if (rc != 0)
    return mpc__onnx_gfail(c, rc, "graph input '%s': %s", e->name, why);
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
  free(buf);
  if (tp == NULL)
    return mpc__onnx_gfail(c, TANDEM_EPARSE, "graph input '%s': %s is not a TensorProto",
                           e->name, c->bind[pos]);
  mpc__ctensor_t t;
  rc = mpc__ctensor_from_proto(tp, &t, why, sizeof why);
  onnx__tensor_proto__free_unpacked(tp, NULL);
  if (rc != 0)
    return mpc__onnx_gfail(c, rc, "graph input '%s': %s", e->name, why);
  if (t.dtype != dtype) {
    char nb[16];
    mpc__ctensor_close(&t);
    return mpc__onnx_gfail(c, TANDEM_EPARSE, "graph input '%s' is %s but %s is not", e->name,
                           mpc__onnx_dtype_name(dtype, nb), c->bind[pos]);
  }
  int ki = mpc__onnx_konst_add(c, &t);
  if (ki < 0)
    return ki;
  e->kind = V_CONST;
  e->kidx = ki;
  if (c->bound != NULL)
    c->bound[pos] = 1;
  return 0;
}

/* 1 if the graph input called name is read only as the scales (or roi) of
 * a Resize or Upsample (the model's structure, like a shape: bound at import when a
 * file is given for it). */
static int scales_only(const ctx_t *c, const char *name) {
  size_t uses = 0;
  for (size_t k = 0; k < c->gp->n_node; k++) {
    const Onnx__NodeProto *n = c->gp->node[k];
    const char *op = str_or(n->op_type, "");
    size_t js = strcmp(op, "Upsample") == 0 || c->opset < 11 ? 1 : 2;
    int resize = strcmp(op, "Resize") == 0 || strcmp(op, "Upsample") == 0;
    for (size_t j = 0; j < n->n_input; j++) {
      if (n->input[j] == NULL || strcmp(n->input[j], name) != 0)
        continue;
      /* Resize's roi (input 1 from opset 11) and Dropout's ratio are
       * structure too. */
      int dropout = strcmp(op, "Dropout") == 0 && j == 1;
      if (!dropout && (!resize || (j != js && !(js == 2 && j == 1))))
        return 0;
      uses++;
    }
  }
  return uses > 0;
}

/* The types a client's input may have: real numbers, FLOAT16, and the
 * integer types but INT64 (a shape's type; see data_only) and BOOL. Integers
 * are computed as real numbers: exact while every value stays an integer
 * below the fixed-point range, without an integer type's wrap-around or
 * rounding division. */
static int is_numeric(int et) {
  switch (et) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    return 1;
  default:
    return 0;
  }
}

/* 1 if the INT64 graph input called name is data, not structure: read only
 * by the variadic elementwise operators (Max, Min, Sum, Mean), never as a
 * shape, axes, pads or indices (or by an operator that may take either). */
static int data_only(const ctx_t *c, const char *name) {
  static const char *const ops[] = {"Max", "Min", "Sum", "Mean", NULL};
  size_t uses = 0;
  for (size_t k = 0; k < c->gp->n_node; k++) {
    const Onnx__NodeProto *n = c->gp->node[k];
    for (size_t j = 0; j < n->n_input; j++) {
      if (n->input[j] == NULL || strcmp(n->input[j], name) != 0)
        continue;
      int data = 0;
      for (size_t i = 0; ops[i] != NULL && !data; i++)
        data = strcmp(str_or(n->op_type, ""), ops[i]) == 0;
      if (!data)
        return 0;
      uses++;
    }
  }
  return uses > 0;
}

/* The rows of the owner's table a Gather (node k) reads by the indices in
 * its input 1: V if its data (input 0) is an initializer [V, H] and its
 * axis 0 (a lookup by token ids), else 0. */
static size_t ids_table(ctx_t *c, size_t k) {
  const char *dn = mpc__onnx_in_name(c, k, 0);
  ent_t *d = dn != NULL ? mpc__onnx_lookup(c, dn) : NULL;
  const Onnx__TensorProto *t =
      d != NULL && d->src == S_INIT && d->idx < c->gp->n_initializer
          ? c->gp->initializer[d->idx] : NULL;
  const attr_t *a = mpc__onnx_attr_find(c, k, "axis");
  int64_t axis = a != NULL && is_type(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a->has_i)
                     ? a->i : a != NULL ? -1 : 0;
  if (t == NULL || t->n_dims != 2 || t->dims[0] <= 0 || t->dims[1] <= 0 ||
      (uint64_t)t->dims[0] > MPC_IDS_VOCAB_MAX || (axis != 0 && axis != -2))
    return 0;
  return (size_t)t->dims[0];
}

/* Graph input e of an integer type (INT64, INT32): 1 if it is the client's
 * token ids, read only as the indices of Gathers of rows of the owner's
 * [V, H] table (*vocab = V, the same for every reader); 0 if no Gather reads
 * such rows by it (it is then what an integer input was before: structure
 * bound at import, or data; below); an error naming the node when a Gather
 * takes it as such ids and anything reads it otherwise (another operator,
 * a Gather of something else, a graph output). */
static int ids_input(ctx_t *c, const ent_t *e, size_t *vocab) {
  size_t tables = 0, other = SIZE_MAX, other_gather = 0;
  *vocab = 0;
  for (size_t k = 0; k < c->gp->n_node; k++) {
    const Onnx__NodeProto *n = c->gp->node[k];
    for (size_t j = 0; j < n->n_input; j++) {
      if (n->input[j] == NULL || strcmp(n->input[j], e->name) != 0)
        continue;
      int gather = strcmp(str_or(n->op_type, ""), "Gather") == 0 && j == 1;
      size_t V = gather ? ids_table(c, k) : 0;
      if (V == 0) {
        if (other == SIZE_MAX) {
          other = k;
          other_gather = (size_t)gather;
        }
        continue;
      }
      if (*vocab != 0 && V != *vocab)
        return mpc__onnx_nfail(c, k, TANDEM_EUNSUPOP,
                               "indices '%s' index a table of %zu rows, another Gather by "
                               "them one of %zu (one vocabulary per token-id input)",
                               e->name, V, *vocab);
      *vocab = V;
      tables++;
    }
  }
  if (tables == 0)
    return 0;
  if (other != SIZE_MAX && other_gather)
    return mpc__onnx_nfail(c, other, TANDEM_EUNSUPOP,
                           "indices '%s' are the client's token ids: a Gather by them must "
                           "take rows (axis 0) of the owner's initializer [V, H]", e->name);
  if (other != SIZE_MAX)
    return mpc__onnx_nfail(c, other, TANDEM_EUNSUPOP,
                           "reads input '%s', the client's token ids (Gather indices into the "
                           "owner's table, one-hot encoded by the client): token ids may only "
                           "be Gather indices", e->name);
  if (e->gout)
    return mpc__onnx_gfail(c, TANDEM_EUNSUPOP,
                           "graph input '%s', the client's token ids, is also a graph output",
                           e->name);
  return 1;
}

int mpc__onnx_add_inputs(ctx_t *c) {
  const Onnx__GraphProto *gp = c->gp;
  char nb[16];
  size_t pos = 0;
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *v = gp->input[i];
    ent_t *e = mpc__onnx_lookup(c, v->name);
    if (e == NULL || e->src != S_INPUT)
      continue;
    size_t here = pos++;
    const Onnx__TypeProto *tp = v->type;
    if (tp == NULL || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        tp->tensor_type == NULL)
      return mpc__onnx_gfail(c, TANDEM_EPARSE, "graph input '%s' is not a tensor", v->name);
    int et = tp->tensor_type->has_elem_type ? tp->tensor_type->elem_type : 0;
    size_t vocab = 0;
    int ids = et == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
                      et == ONNX__TENSOR_PROTO__DATA_TYPE__INT32
                  ? ids_input(c, e, &vocab) : 0;
    if (ids < 0)
      return ids;
    int data64 = et == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && (ids || data_only(c, v->name));
    if ((et == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && !data64) ||
        (et == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL && c->bind != NULL && here < c->nbind &&
         c->bind[here] != NULL) ||
        (et == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && c->bind != NULL && here < c->nbind &&
         c->bind[here] != NULL && scales_only(c, v->name))) {
      int rc = bind_input(c, e, here, et);
      if (rc != 0)
        return rc;
      continue;
    }
    if (!data64 && !is_numeric(et))
      return mpc__onnx_gfail(c, TANDEM_EPARSE,
                             "graph input '%s' has type %s (want FLOAT, DOUBLE, FLOAT16 or an "
                             "integer type)", v->name, mpc__onnx_dtype_name(et, nb));
    const Onnx__TensorShapeProto *sp = tp->tensor_type->shape;
    if (sp == NULL)
      return mpc__onnx_gfail(c, TANDEM_EUNSUPOP, "graph input '%s' has no shape", v->name);
    if (sp->n_dim > MPC_MAX_DIMS)
      return mpc__onnx_gfail(c, TANDEM_EUNSUPOP,
                             "graph input '%s' has rank %zu (supported: 0 to %d)", v->name,
                             sp->n_dim, MPC_MAX_DIMS);
    mpc_node_t nd;
    mpc__onnx_node_init(&nd, MPC_OP_INPUT, -1, -1, -1);
    snprintf(nd.name, sizeof nd.name, "%.63s", v->name);
    nd.shape.ndim = (unsigned)sp->n_dim;
    if (sp->n_dim == 0) {
      /* A scalar: one element of fixed shape [1] (the client's rank-0
       * tensor is the same element; numpy broadcasting is unchanged). */
      nd.shape.ndim = 1;
      nd.shape.dim[0] = 1;
    }
    for (size_t d = 0; d < sp->n_dim; d++) {
      const Onnx__TensorShapeProto__Dimension *dm = sp->dim[d];
      int sym = dm == NULL ||
                dm->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
                dm->dim_value == 0 || (d == 0 && dm->dim_value == -1);
      if (sym && d == 0) {
        nd.shape.dim[0] = 1; /* the batch, substituted later */
        nd.batched = 1;
        c->any_batched = 1;
        continue;
      }
      if (sym)
        return mpc__onnx_gfail(c, TANDEM_EUNSUPOP,
                               "graph input '%s': dimension %zu is symbolic; only the "
                               "first (batch) dimension may be",
                               v->name, d);
      if (dm->dim_value < 0 || (uint64_t)dm->dim_value > MPC__CT_MAX_NUMEL)
        return mpc__onnx_gfail(c, TANDEM_EPARSE, "graph input '%s': dimension %zu is %" PRId64,
                               v->name, d, dm->dim_value);
      nd.shape.dim[d] = (size_t)dm->dim_value;
    }
    if (ids && (sp->n_dim == 0 || sp->n_dim >= MPC_MAX_DIMS))
      return mpc__onnx_gfail(c, TANDEM_EUNSUPOP,
                             "graph input '%s', the client's token ids, has rank %zu "
                             "(supported: 1 to %d)", v->name, sp->n_dim, MPC_MAX_DIMS - 1);
    if (ids) { /* the one-hot axis the client adds */
      nd.ids = 1;
      nd.shape.dim[nd.shape.ndim++] = vocab;
    }
    int r = mpc__onnx_add_node(c, SIZE_MAX, &nd);
    if (r < 0)
      return r;
    e->kind = V_ACT;
    e->node = r;
  }
  return 0;
}

/* A graph output that is a constant (a Constant node's, Dropout's mask):
 * a public CONST node, its values published with the graph (the client
 * learns them as the output anyway; an initializer output is refused, the
 * owner's). Returns the node, -1 if it is none of these, or an error. */
static int const_output(ctx_t *c, ent_t *e) {
  if (e->src == S_INIT)
    return -1;
  if (e->kidx < 0 || (size_t)e->kidx >= c->nkonst)
    return -1;
  const mpc__ctensor_t *t = &c->konst[e->kidx].t;
  if (t->numel == 0 || t->ndim > MPC_MAX_DIMS)
    return -1;
  double *v = malloc(t->numel * sizeof *v);
  if (v == NULL)
    return mpc__onnx_gfail(c, TANDEM_ENOMEM, "out of memory");
  for (size_t i = 0; i < t->numel; i++)
    v[i] = t->f != NULL ? t->f[i] : (double)t->i[i];
  size_t one = 1;
  int r = mpc_graph_const(c->g, e->name, t->ndim ? t->ndim : 1, t->ndim ? t->dim : &one, v);
  free(v);
  return r < 0 ? mpc__onnx_gfail(c, r, "graph output '%s': cannot store it", e->name) : r;
}

int mpc__onnx_add_outputs(ctx_t *c) {
  const Onnx__GraphProto *gp = c->gp;
  if (gp->n_output == 0)
    return mpc__onnx_gfail(c, TANDEM_EPARSE, "the graph has no outputs");
  for (size_t i = 0; i < gp->n_output; i++) {
    const char *nm = gp->output[i]->name;
    ent_t *e = mpc__onnx_lookup(c, nm);
    int src = e->kind == V_ACT ? e->node : e->kind == V_CONST ? const_output(c, e) : -1;
    if (src < -1)
      return src;
    if (src < 0)
      return mpc__onnx_gfail(c, TANDEM_EUNSUPOP,
                             "graph output '%s' is %s; only values computed from the "
                             "inputs can be outputs",
                             nm,
                             e->kind == V_CONST ? "a constant"
                             : e->kind == V_PAD ? "a stand-alone Pad"
                                                : "not computed");
    mpc_node_t nd;
    mpc__onnx_node_init(&nd, MPC_OP_OUTPUT, src, -1, -1);
    nd.attr.post = e->post;
    nd.attr.axis = e->post_axis;
    snprintf(nd.name, sizeof nd.name, "%.63s", nm);
    int r = mpc__onnx_add_node(c, SIZE_MAX, &nd);
    if (r < 0)
      return r;
  }
  return 0;
}

/* The range the model's inputs are known to take, if its author declared it
 * in the model's metadata ("tandem.input_bound", a positive number: every
 * input element satisfies |x| <= it; "tandem.input_min", a number: every
 * input element is at least it). The model owner publishes it as the
 * input bound, and every comparison gate is sized for it (mpc_weights_bounds),
 * so a declared range much smaller than the largest safe one makes the gates
 * narrower. */
int mpc__onnx_read_input_bound(ctx_t *c, const Onnx__ModelProto *m) {
  for (size_t i = 0; i < m->n_metadata_props; i++) {
    const Onnx__StringStringEntryProto *e = m->metadata_props[i];
    if (e == NULL || e->key == NULL)
      continue;
    const char *v = str_or(e->value, "");
    char *end = NULL;
    double b = strtod(v, &end);
    if (strcmp(e->key, "tandem.input_min") == 0) {
      /* The least input element (pixels: 0), checked against the bound by
       * the owner (mpc_weights_bounds) and enforced by the client. */
      if (end == v || *end != '\0' || !(b > -1e300 && b < 1e300))
        return mpc__onnx_gfail(c, TANDEM_EPARSE,
                               "metadata tandem.input_min is '%.40s', not a number", v);
      c->g->input_min = b;
      continue;
    }
    if (strcmp(e->key, "tandem.input_bound") != 0)
      continue;
    if (end == v || *end != '\0' || !(b > 0 && b < 1e300))
      return mpc__onnx_gfail(c, TANDEM_EPARSE,
                             "metadata tandem.input_bound is '%.40s', not a positive number", v);
    c->g->input_bound = b;
  }
  return 0;
}

int mpc__onnx_check_opset(ctx_t *c, const Onnx__ModelProto *m) {
  c->opset = -1;
  for (size_t i = 0; i < m->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = m->opset_import[i];
    if (o == NULL)
      continue;
    if (o->domain == NULL || o->domain[0] == '\0' || strcmp(o->domain, "ai.onnx") == 0)
      c->opset = o->has_version ? (long)(o->version > 1000 ? 1000 : o->version) : 0;
  }
  if (c->opset < 0)
    return mpc__onnx_gfail(c, TANDEM_EPARSE, "the model imports no default-domain opset");
  if (c->opset > OPSET_MAX || c->opset < 1)
    return mpc__onnx_gfail(c, TANDEM_EUNSUPOP, "opset %ld is not supported (%d to %d)", c->opset,
                           OPSET_MIN, OPSET_MAX);
  if (c->opset < OPSET_MIN && m->graph != NULL) {
    /* Older opsets only for operators whose form there is the opset-9 one
     * (what differs is an attribute of theirs, which the handlers refuse). */
    static const char *const same[] = {"AveragePool", "Conv",     "Flatten",   "GlobalAveragePool",
                                       "Identity",    "MatMul",   "MaxPool",   "Relu",
                                       "Transpose",
                                       /* issue 11 */
                                       "Clip",        "Concat",   "ConvTranspose", "GlobalMaxPool",
                                       "HardSigmoid",
                                       "LeakyRelu",   "Max",      "Mean",      "Min",
                                       "PRelu",       "Sum",      "Upsample",  NULL};
    for (size_t i = 0; i < m->graph->n_node; i++) {
      const char *op = m->graph->node[i] != NULL ? m->graph->node[i]->op_type : NULL;
      size_t j = 0;
      while (op != NULL && same[j] != NULL && strcmp(same[j], op) != 0)
        j++;
      if (op == NULL || same[j] == NULL)
        return mpc__onnx_gfail(c, TANDEM_EUNSUPOP,
                               "opset %ld is not supported (%d to %d) for operator %s", c->opset,
                               OPSET_MIN, OPSET_MAX, op != NULL ? op : "(none)");
    }
  }
  return 0;
}
