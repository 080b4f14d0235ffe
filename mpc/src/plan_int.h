/* plan_int.h - what the parts of the plan compiler share: plan.c (values,
 * gates, the linear operators and the walk over the graph), plan_rows.c
 * (the operators along a row: the smooth functions, Softmax,
 * LayerNormalization) and plan_layout.c (the layout operators and the
 * pools). Private to mpc/src. The compiler's state
 * is one cc_t for the lowering of one graph; every function returns a plan
 * value index (or 0) or a negative error code, and fail() writes the
 * message that names the node.
 */
#ifndef TANDEM_PLAN_INT_H
#define TANDEM_PLAN_INT_H

#include "mpc_int.h"

typedef struct {
  mpc_plan_t *p;
  const mpc_graph_t *g;
  int *act;    /* node -> value for activations and constants, -1 */
  int *weight; /* node -> WEIGHT value, -1 */
  int *addend; /* node -> ADDEND value, -1 */
  char *relu_later; /* node -> 1: a ReLU whose only consumer is a MaxPool (see lower_relu) */
  int *rowf;   /* LNORM or SOFTMAX node -> the masked factor of each of its
                * rows (1 / sqrt(v + eps), 1 / sum) when the MatMul that
                * reads it takes the product (lower_lnorm, lower_softmax),
                * its act then the rows before it; -1 */
  char *err;
  size_t errlen;
} cc_t;

/* ---- plan.c: values and gates ------------------------------------------- */

/* Writes "node 'name' (op): what" (or what alone when node < 0) to the
 * caller's error buffer; returns code. */
int mpc__pc_fail(cc_t *cc, int code, int node, const char *what);
/* A new plan value of shape, kind and scale (in units of f) attributed to
 * graph node `node` (-1: none); its index or TANDEM_ENOMEM. */
int mpc__pc_new_val(cc_t *cc, const mpc_shape_t *shape, mpc__vkind_t kind, unsigned scale,
                    int node);
/* A new gate (zeroed but for these fields); NULL when out of memory. */
mpc__gate_t *mpc__pc_new_gate(cc_t *cc, mpc__gkind_t kind, int in0, int in1, int out,
                              const char *label);
/* 2^s in the ring (0 from 64 on). */
uint64_t mpc__pc_pow2(unsigned s);
/* The bound L of a comparison gate on value v dropping `shift` low bits,
 * its values' differences needing `extra` bits more. */
unsigned mpc__pc_gate_bound(const cc_t *cc, int v, unsigned shift, unsigned extra);
/* v / 2^shift exactly, SHARED at scale 1 (a truncation gate). */
int mpc__pc_trunc_by(cc_t *cc, int v, unsigned shift, unsigned extra, const char *label);
/* v MASKED at scale 1 (truncated and opened as needed). */
int mpc__pc_masked_s1(cc_t *cc, int v, const char *label);
/* v MASKED at its own scale: an opening (one round), v itself when it is
 * MASKED already. */
int mpc__pc_open(cc_t *cc, int v, const char *label);
/* The least k with 2^k >= n. */
unsigned mpc__pc_log2_ceil(size_t n);
/* v at scale 1 (truncated when at 2), any form. */
int mpc__pc_scale1(cc_t *cc, int v, const char *label);
/* The SHARED scale-2 product x w of form `form` (m x k x n) and its gate. */
int mpc__pc_matrix_gate(cc_t *cc, int node, mpc__gkind_t kind, int x, int w,
                        const mpc_shape_t *vshape, mpc__lform_t form, size_t m, size_t k,
                        size_t n);
/* y + fold * the owner's parameter (or public constant) at bnode. */
int mpc__pc_add_bias(cc_t *cc, int node, int y, int bnode, double fold, int channel);
/* v times the public number c. */
int mpc__pc_mulc_val(cc_t *cc, int node, int v, double c);
/* A value that changes per query (MASKED or SHARED), not the owner's or a
 * public constant. */
static inline int mpc__pc_is_dynamic(const mpc__val_t *v) {
  return v->kind == MPC__V_MASKED || v->kind == MPC__V_SHARED;
}
/* ReLU of v (truncated inside when v is a product's, at scale 2): one FSS
 * gate, its output attributed to node. */
int mpc__pc_relu_gate(cc_t *cc, int node, int v);

/* ---- plan_layout.c: layout operators and pools -------------------------- */

/* v moved to shape by map (NULL: a reshape), a local gate; map is taken. */
int mpc__pc_lower_layout(cc_t *cc, int node, int v, const mpc_shape_t *shape, uint32_t *map);
/* The lowering of node for Slice, Pad, Resize-nearest, Expand, Gather
 * (select); linear and cubic Resize (linmap); Concat; Transpose; MaxPool
 * and GlobalMaxPool; AveragePool and GlobalAveragePool. */
int mpc__pc_lower_select(cc_t *cc, int node);
int mpc__pc_lower_linmap(cc_t *cc, int node);
int mpc__pc_lower_concat(cc_t *cc, int node);
int mpc__pc_lower_transpose(cc_t *cc, int node);
int mpc__pc_lower_maxpool(cc_t *cc, int node);
int mpc__pc_lower_avgpool(cc_t *cc, int node);

/* ---- plan_rows.c: the operators along a row ----------------------------- */

/* Sigmoid, Tanh, Exp, Erf, Reciprocal, Sqrt, GELU (both forms) of node. */
int mpc__pc_lower_smooth(cc_t *cc, int node);
/* Softmax along the last axis of node's input. */
int mpc__pc_lower_softmax(cc_t *cc, int node);
/* LayerNormalization along the last axis. */
int mpc__pc_lower_lnorm(cc_t *cc, int node);
/* A MatMul's product y (|y| < 2^mag) times the masked row factor rm of the
 * LayerNorm or Softmax it reads (cc->rowf), ncols columns a row. */
int mpc__pc_row_rescale(cc_t *cc, int node, int y, int mag, int rm, size_t ncols);
/* The exponents that bound d W (LayerNorm ln, MatMul mm) and e V (Softmax
 * sm, V at graph node v). */
int mpc__pc_ln_dw_mag(const cc_t *cc, int ln, int mm);
int mpc__pc_sm_ev_mag(const cc_t *cc, int sm, int v);

#endif /* TANDEM_PLAN_INT_H */
