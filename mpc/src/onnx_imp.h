/* onnx_imp.h - the private interface between the sources of the ONNX
 * importer: onnx.c (the public calls and the walk over the nodes),
 * onnx_read.c (the reader: messages, the name table, attributes, a node's
 * inputs and outputs, constants), onnx_io.c (the graph's inputs and
 * outputs, the input bound and the opsets),
 * onnx_ops.c (the operator handlers, in a table keyed by op_type; the
 * windowed ones in onnx_window.c) and
 * onnx_fold.c (BatchNormalization folding and the constants computed at
 * import; the shape subgraphs in onnx_shape.c).
 * Included by nothing else; tensor_io.c shares onnx_int.h only.
 */
#ifndef TANDEM_ONNX_IMP_H
#define TANDEM_ONNX_IMP_H

#include <stddef.h>
#include <stdint.h>

#include "mpc.h"
#include "onnx_int.h"

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
  int post, post_axis;   /* a graph output's client-side Softmax (mpc_attr_t.post) */
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
  /* Files of the graph inputs known at import (mpc_onnx_load_bound): paths
   * [i] for the i-th graph input that is not an initializer; bound[i] set
   * when an INT64 input's file becomes a constant. NULL: none. */
  int any_batched; /* some graph input's first dimension is the batch */
  const char *const *bind;
  size_t nbind;
  unsigned char *bound;
  char nbuf[96];       /* a node's display name */
} ctx_t;

typedef Onnx__AttributeProto attr_t;

/* Dimensions of an input that may be an activation or a constant. */
typedef struct {
  unsigned ndim;
  size_t dim[MPC__CT_MAX_DIMS];
} dims_t;

static inline const char *str_or(const char *s, const char *dflt) {
  return s != NULL && s[0] != '\0' ? s : dflt;
}

static inline const Onnx__NodeProto *nodep(const ctx_t *c, size_t k) { return c->gp->node[k]; }

static inline int is_type(const attr_t *a, Onnx__AttributeProto__AttributeType t, int has_field) {
  return a->has_type ? a->type == t : has_field;
}

static inline const mpc_shape_t *shape_of(const ctx_t *c, int node) {
  return &c->g->nodes[node].shape;
}

/* ---- onnx_read.c --------------------------------------------------------- */

/* Messages: the error code, with the message in c->err (gfail: of the graph;
 * nfail: "node 'name' (op): ..." of node k). */
__attribute__((format(printf, 3, 4)))
int mpc__onnx_gfail(ctx_t *c, int code, const char *fmt, ...);
__attribute__((format(printf, 4, 5)))
int mpc__onnx_nfail(ctx_t *c, size_t k, int code, const char *fmt, ...);
/* The node's name, or "<op>_<index>" for an unnamed one (in a scratch buffer). */
const char *mpc__onnx_node_name(ctx_t *c, size_t k);

/* Steps 1 and 2 of the import (the name table, reader counts, the order),
 * and the context's memory. */
int mpc__onnx_index_and_sort(ctx_t *c, size_t **order_out);
void mpc__onnx_ctx_free(ctx_t *c);

/* ---- onnx_io.c ----------------------------------------------------------- */

/* The graph's inputs and outputs as IR nodes, the opset check, the declared
 * input range. */
int mpc__onnx_add_inputs(ctx_t *c);
int mpc__onnx_add_outputs(ctx_t *c);
int mpc__onnx_check_opset(ctx_t *c, const Onnx__ModelProto *m);
/* The input range declared in the model's metadata, if any, into c->g. */
int mpc__onnx_read_input_bound(ctx_t *c, const Onnx__ModelProto *m);

/* ---- onnx_read.c, continued ---------------------------------------------- */

/* Values, constants and IR nodes. */
ent_t *mpc__onnx_lookup(ctx_t *c, const char *name);
/* Takes t as a new constant (t is left empty): its index, or
 * TANDEM_ENOMEM with t closed and the message set. mpc__onnx_def_new_const
 * also makes it output j of node k: 0 or TANDEM_ENOMEM. */
int mpc__onnx_konst_add(ctx_t *c, mpc__ctensor_t *t);
int mpc__onnx_def_new_const(ctx_t *c, size_t k, size_t j, mpc__ctensor_t *t);
int mpc__onnx_add_node(ctx_t *c, size_t k, mpc_node_t *nd);
void mpc__onnx_node_init(mpc_node_t *nd, mpc_op_t op, int in0, int in1, int in2);
int mpc__onnx_make_param(ctx_t *c, size_t k, const char *name, unsigned ndim, const size_t *dim,
                         double *data);
double *mpc__onnx_dup_doubles(const double *src, size_t n);
int mpc__onnx_load_init(ctx_t *c, size_t k, ent_t *e);

/* Attributes of node k. */
const attr_t *mpc__onnx_attr_find(const ctx_t *c, size_t k, const char *name);
int mpc__onnx_attr_check(ctx_t *c, size_t k, const char *const *known);
int mpc__onnx_attr_int(ctx_t *c, size_t k, const char *name, int64_t dflt, int64_t *out);
int mpc__onnx_attr_float(ctx_t *c, size_t k, const char *name, double dflt, double *out);
int mpc__onnx_attr_ints(ctx_t *c, size_t k, const char *name, const int64_t **v, size_t *n);
int mpc__onnx_attr_str(ctx_t *c, size_t k, const char *name, const char *dflt, char *out,
                       size_t outlen);

/* Inputs j and outputs of node k. */
const char *mpc__onnx_in_name(const ctx_t *c, size_t k, size_t j);
/* Input j of node k as a constant, loaded if need be, without an error: NULL
 * if it is not one. */
const mpc__ctensor_t *mpc__onnx_peek_const(ctx_t *c, size_t k, size_t j);
/* The same for a constant of any type (integers too). */
const mpc__ctensor_t *mpc__onnx_peek_any_const(ctx_t *c, size_t k, size_t j);
ent_t *mpc__onnx_in_ent(ctx_t *c, size_t k, size_t j, int required, int *rc);
int mpc__onnx_pad_error(ctx_t *c, size_t k, const ent_t *e);
int mpc__onnx_in_act(ctx_t *c, size_t k, size_t j, int *node);
int mpc__onnx_in_operand(ctx_t *c, size_t k, size_t j, int required, int *node);
int mpc__onnx_in_const(ctx_t *c, size_t k, size_t j, int required, const mpc__ctensor_t **t);
int mpc__onnx_in_ints(ctx_t *c, size_t k, size_t j, int required, const int64_t **v, size_t *n);
ent_t *mpc__onnx_out_ent(ctx_t *c, size_t k, size_t j);
void mpc__onnx_def_act(ctx_t *c, size_t k, size_t j, int node);
void mpc__onnx_def_const(ctx_t *c, size_t k, size_t j, int kidx);
void mpc__onnx_def_alias(ctx_t *c, size_t k, size_t j, const ent_t *src);

/* ---- onnx_ops.c ---------------------------------------------------------- */

/* Windows, pads and strides above this are refused (graph.c has the same bound). */
#define MAX_WIN ((int64_t)1 << 16)

/* Handles node k with the handler its op_type names in the table. */
int mpc__onnx_run_node(ctx_t *c, size_t k);
/* Emits node nd of node k with its own weight (input 1, required) and bias
 * (input 2, optional) as operands. */
int mpc__onnx_emit_plain(ctx_t *c, size_t k, mpc_node_t *nd);

/* ---- onnx_window.c ------------------------------------------------------- */

/* The handlers of Conv, MaxPool/AveragePool (variant: is_max),
 * GlobalAveragePool and Pad. */
int mpc__onnx_op_conv(ctx_t *c, size_t k, int variant);
int mpc__onnx_op_pool(ctx_t *c, size_t k, int is_max);
int mpc__onnx_op_gap(ctx_t *c, size_t k, int is_max);
int mpc__onnx_op_pad(ctx_t *c, size_t k, int variant);

/* ---- onnx_move.c --------------------------------------------------------- */
/* Concat, Split, Slice, Gather, Expand, Resize/Upsample (variant 1: Upsample). */
int mpc__onnx_op_concat(ctx_t *c, size_t k, int variant);
int mpc__onnx_op_split(ctx_t *c, size_t k, int variant);
int mpc__onnx_op_slice(ctx_t *c, size_t k, int variant);
int mpc__onnx_op_gather(ctx_t *c, size_t k, int variant);
int mpc__onnx_op_expand(ctx_t *c, size_t k, int variant);
/* A Select node of x with output shape os (start/step/div per axis, NULL:
 * the identity; table >= 0: an index table on axis), and the refusal to move
 * data along a batched graph's axis 0. */
int mpc__onnx_emit_select(ctx_t *c, size_t k, int x, const mpc_shape_t *os, const int64_t *start,
                          const int64_t *step, const uint32_t *div, int table, unsigned axis);
int mpc__onnx_batch_guard(ctx_t *c, size_t k, unsigned axis);
/* ---- onnx_resize.c ------------------------------------------------------- */
/* Resize/Upsample (variant 1: Upsample): nearest, linear, cubic. */
int mpc__onnx_op_resize(ctx_t *c, size_t k, int upsample);
/* ConvTranspose: zeros inserted by Selects, then a Conv of turned weights. */
int mpc__onnx_op_convtranspose(ctx_t *c, size_t k, int variant);
/* A stand-alone Pad of activation x with zeros: pads begins then ends. */
int mpc__onnx_emit_pad(ctx_t *c, size_t k, int x, const int64_t *pv, size_t pn);
/* Pad modes edge (mode 0), reflect (1) and wrap (2) of activation x; and a
 * constant pad whose value is the activation v. */
int mpc__onnx_emit_pad_mode(ctx_t *c, size_t k, int x, const int64_t *pv, size_t pn, int mode);
int mpc__onnx_emit_pad_value(ctx_t *c, size_t k, int x, int v, const int64_t *pv, size_t pn);
/* ---- onnx_elem.c --------------------------------------------------------- */
/* Sum, Mean, Max, Min (variant 0 to 3); Clip; LeakyRelu; PRelu; HardSigmoid
 * and HardSwish (variant 1); ReduceSum, ReduceMean, ReduceMax (0 to 2). */
int mpc__onnx_op_variadic(ctx_t *c, size_t k, int variant);
int mpc__onnx_op_clip(ctx_t *c, size_t k, int variant);
int mpc__onnx_op_leaky(ctx_t *c, size_t k, int variant);
int mpc__onnx_op_prelu(ctx_t *c, size_t k, int variant);
int mpc__onnx_op_hard(ctx_t *c, size_t k, int swish);
int mpc__onnx_op_reduce(ctx_t *c, size_t k, int variant);
/* BatchNormalization of activation x whose scale and statistics are given
 * per query (onnx_ops.c's handler calls it when one of them is computed). */
int mpc__onnx_bn_computed(ctx_t *c, size_t k, int x);
/* Softmax (variant 0) and LogSoftmax (1) as the graph's last operator. */
int mpc__onnx_op_softmax(ctx_t *c, size_t k, int variant);
/* Softmax inside the graph, on the private smooth-function gates (onnx_ops.c). */
int mpc__onnx_op_softmax_private(ctx_t *c, size_t k, int variant);
/* ---- onnx_fold.c --------------------------------------------------------- */

int mpc__onnx_bn_params(ctx_t *c, size_t k, size_t ch, int quiet, double **sp, double **tp);
int mpc__onnx_fold_conv(ctx_t *c, size_t k, mpc_node_t *nd, int *folded);
int mpc__onnx_fold_gemm(ctx_t *c, size_t k, mpc_node_t *nd, int *folded);
int mpc__onnx_const_reshape(ctx_t *c, size_t k, const ent_t *e, const dims_t *to);
int mpc__onnx_const_transpose(ctx_t *c, size_t k, const ent_t *e, dims_t in,
                              const unsigned perm[MPC__CT_MAX_DIMS]);
int mpc__onnx_const_pass(ctx_t *c, const size_t *order);

/* ---- onnx_shape.c -------------------------------------------------------- */

/* Output j of node k: a new constant of the dtype of src[0] (FLOAT/DOUBLE
 * kept as doubles, else integers), dimensions to, element i read from
 * sources: src[s[i]] at index idx[i] (s NULL: one source). Takes nothing. */
int mpc__onnx_const_pick(ctx_t *c, size_t k, size_t j, const mpc__ctensor_t *const *src,
                         const size_t *s, const size_t *idx, const dims_t *to);
/* Shape subgraphs folded at import: Shape, Cast, ConstantOfShape, and
 * Concat / Gather whose data are constants. */
int mpc__onnx_op_shape(ctx_t *c, size_t k, int variant);
int mpc__onnx_op_cast(ctx_t *c, size_t k, int variant);
int mpc__onnx_op_const_of_shape(ctx_t *c, size_t k, int variant);
int mpc__onnx_const_concat(ctx_t *c, size_t k, int64_t axis);
int mpc__onnx_const_gather(ctx_t *c, size_t k, const mpc__ctensor_t *data, int64_t axis);

/* ---- onnx_fold.c, continued ---------------------------------------------- */

/* Node k when every input is a constant and its operator is elementwise
 * arithmetic (Add, Sub, Mul, Div, Equal, Less, Greater, Where) or Expand:
 * evaluated into a new constant (*folded = 1). *folded = 0 leaves the node
 * to its handler. */
int mpc__onnx_fold_node(ctx_t *c, size_t k, int *folded);
/* At a Div node k: the exact GELU written out (Div by sqrt 2, Erf, Add 1,
 * Mul by the input, Mul by 0.5) as one GELU node (*folded = 1). */
int mpc__onnx_fold_gelu(ctx_t *c, size_t k, int *folded);
/* At a Mul node k of an activation by itself: the tanh GELU written out
 * (x^3 by two Muls, 0.044715, Add x, sqrt(2/pi), Tanh, Add 1, Mul by x, Mul
 * by 0.5) as one GELU_TANH node (*folded = 1). */
int mpc__onnx_fold_gelu_tanh(ctx_t *c, size_t k, int *folded);
/* LayerNormalization node k over a last axis of D elements whose only
 * reader is a MatMul by the owner's constant: 1 if its Scale and B can go
 * into that MatMul's weight (ln_foldable); ln_fold_matmul then emits the
 * MatMul of LNORM node ln by the new weight and bias and marks it done. */
int mpc__onnx_ln_foldable(ctx_t *c, size_t k, size_t D);
int mpc__onnx_ln_fold_matmul(ctx_t *c, size_t k, size_t D, int ln);
/* After the import: every Mul of a product of two activations by the
 * owner's scalar that can go into the owner's weights of one operand's
 * columns goes there (onnx_scalar.c, fold_scalar), the Mul left an identity
 * Reshape. 0 or TANDEM_ENOMEM. */
int mpc__onnx_fold_scalars(mpc_graph_t *g, mpc_weights_t *w);
/* Output 0 of node k: constant t with output dims to, element o read from
 * t at start[d] + o_d * step[d] on each axis d (a Slice of a constant). */
int mpc__onnx_const_slice(ctx_t *c, size_t k, const mpc__ctensor_t *t, const dims_t *to,
                          const int64_t *start, const int64_t *step);

#endif /* TANDEM_ONNX_IMP_H */
