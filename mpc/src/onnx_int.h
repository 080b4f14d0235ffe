/* onnx_int.h - private helpers shared by the ONNX importer (onnx.c and the
 * files of onnx_imp.h) and the tensor-file reader and writer (tensor_io.c).
 *
 * Both read ONNX TensorProto messages, so the one careful conversion of a
 * TensorProto into plain arrays lives in tensor_io.c and is used by both. The
 * header includes the protobuf-c code generated at build time from Debian's
 * onnx.proto; it is never included from outside mpc/src (and the tests'
 * model builder).
 */
#ifndef TANDEM_ONNX_INT_H
#define TANDEM_ONNX_INT_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

/* Ranks of constants read at import (a shape tensor is 1-D, but a weight that
 * is reshaped before use may have a few more dimensions than the graph holds). */
#define MPC__CT_MAX_DIMS 8
/* The most elements any tensor read from a file may claim. */
#define MPC__CT_MAX_NUMEL ((uint64_t)1 << 40)

/* A constant tensor: values of a FLOAT or DOUBLE tensor in f (as double), of
 * an INT64 or BOOL one in i. numel may be 0 (an empty shape list); the array
 * is then still allocated (one element) so that callers need no NULL case. */
typedef struct {
  int dtype; /* ONNX__TENSOR_PROTO__DATA_TYPE__* */
  unsigned ndim;
  size_t dim[MPC__CT_MAX_DIMS];
  size_t numel;
  double *f;
  int64_t *i;
} mpc__ctensor_t;

/* Converts tp (dtype FLOAT, DOUBLE, INT64 or BOOL; data in raw_data, little
 * endian, or in the typed field) into *out. Every length is checked against
 * the dimensions before anything is allocated, so the allocation is bounded
 * by the size of the message. Errors: TANDEM_EPARSE or TANDEM_EUNSUPOP with
 * the reason in why, TANDEM_ENOMEM. On failure *out is empty. */
int mpc__ctensor_from_proto(const Onnx__TensorProto *tp, mpc__ctensor_t *out, char *why,
                            size_t whylen);
void mpc__ctensor_close(mpc__ctensor_t *t);

/* The name of an ONNX data type ("FLOAT", "INT64", "type 99"), for messages.
 * buf holds the fallback text for unknown codes. */
const char *mpc__onnx_dtype_name(int dtype, char buf[16]);

/* Reads a whole file of at most max bytes into a malloc'd buffer. Errors:
 * -errno, TANDEM_EINVAL (larger than max, or not a regular file), with the
 * reason in err. */
int mpc__read_file(const char *path, size_t max, uint8_t **buf, size_t *len, char *err,
                   size_t errlen);

#endif /* TANDEM_ONNX_INT_H */
