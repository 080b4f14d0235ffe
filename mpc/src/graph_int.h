/* graph_int.h - what the two halves of graph.c share: graph.c (names,
 * shapes, shape inference and the graph builders) and eval_float.c (the
 * plaintext floating-point evaluator, which infers the shapes of the
 * actual inputs with the same function). Private to mpc/src.
 */
#ifndef TANDEM_GRAPH_INT_H
#define TANDEM_GRAPH_INT_H

#include "mpc_int.h"

/* "[100, 784]" for error messages. Returned by value so that several shapes
 * can appear in one printf call (the temporary lives to the end of the full
 * expression). */
typedef struct {
  char s[MPC_MAX_DIMS * 22 + 4];
} mpc__sstr_t;

/* Where a message goes and which node it names. buf may be NULL (the builders
 * and the evaluator have no message buffer). */
typedef struct {
  char *buf;
  size_t len;
  const char *name;
  mpc_op_t op;
} mpc__ectx_t;

int mpc__shape_eq(const mpc_shape_t *a, const mpc_shape_t *b);
mpc__sstr_t mpc__sstr(const mpc_shape_t *s);
/* Writes "node 'name' (Op): <message>" to e's buffer (if any); returns code. */
__attribute__((format(printf, 3, 4)))
int mpc__efail(const mpc__ectx_t *e, int code, const char *fmt, ...);
/* A shape a graph may hold: 1..MPC_MAX_DIMS dimensions, each at least 1, at
 * most 2^40 elements. */
int mpc__check_shape(const mpc__ectx_t *e, const mpc_shape_t *s, const char *what);
/* The operator of nd known and its inputs earlier nodes than idx. */
int mpc__check_inputs(const mpc_node_t *nd, size_t idx, const mpc__ectx_t *e);
/* The output shape of node nd on input shapes in (NULL: absent) and its
 * attributes with defaults filled in (graph.c says more). */
int mpc__infer(const mpc_node_t *nd, const mpc_shape_t *const in[3], int follow_batch,
               mpc_shape_t *out, mpc_attr_t *attr, const mpc__ectx_t *e);

#endif
