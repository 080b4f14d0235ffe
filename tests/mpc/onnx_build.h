/* onnx_build.h - builds small ONNX models in C for the importer's tests.
 *
 * The tests need models with exact, known contents (one operator and one
 * attribute at a time, or a broken one) and must run without Python, so they
 * assemble ModelProto messages with the protobuf-c structs generated from
 * onnx.proto and pack them to bytes. Everything a builder allocates is
 * released by ob_free; allocation failure aborts (test code only).
 */
#ifndef TANDEM_TEST_ONNX_BUILD_H
#define TANDEM_TEST_ONNX_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

typedef struct ob_s ob_t;

ob_t *ob_new(int64_t opset);
void ob_free(ob_t *b);

/* A graph input of element type elem (ONNX__TENSOR_PROTO__DATA_TYPE__*);
 * a dimension of -1 is symbolic ("N"), 0 is stored as dim_value 0. */
void ob_input(ob_t *b, const char *name, int elem, unsigned ndim, const int64_t *dims);
void ob_output(ob_t *b, const char *name);

/* A tensor of dtype FLOAT or DOUBLE from doubles, in raw_data (little
 * endian) when raw, else in float_data / double_data. */
Onnx__TensorProto *ob_tensor(ob_t *b, const char *name, int dtype, int raw, unsigned ndim,
                             const int64_t *dims, const double *vals);
Onnx__TensorProto *ob_tensor_i64(ob_t *b, const char *name, int raw, unsigned ndim,
                                 const int64_t *dims, const int64_t *vals);
/* Adds a tensor to the graph's initializers. */
void ob_add_init(ob_t *b, Onnx__TensorProto *t);
/* Shorthands: a FLOAT initializer (typed field) and an INT64 one. */
void ob_init_f(ob_t *b, const char *name, unsigned ndim, const int64_t *dims, const double *vals);
void ob_init_i64(ob_t *b, const char *name, size_t n, const int64_t *vals);

/* A node; inputs and outputs are comma-separated names ("x,,w" leaves the
 * second input empty). */
Onnx__NodeProto *ob_node(ob_t *b, const char *op, const char *name, const char *inputs,
                         const char *outputs);
void ob_attr_i(ob_t *b, Onnx__NodeProto *n, const char *name, int64_t v);
void ob_attr_f(ob_t *b, Onnx__NodeProto *n, const char *name, float v);
void ob_attr_ints(ob_t *b, Onnx__NodeProto *n, const char *name, size_t cnt, const int64_t *v);
void ob_attr_s(ob_t *b, Onnx__NodeProto *n, const char *name, const char *s);
void ob_attr_t(ob_t *b, Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t);

/* The serialised model (malloc'd; the caller frees it). */
uint8_t *ob_pack(ob_t *b, size_t *len);

#endif /* TANDEM_TEST_ONNX_BUILD_H */
