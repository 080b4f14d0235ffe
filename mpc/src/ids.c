/* ids.c - the client's token ids into the one-hot rows it sends.
 *
 * A model that looks a table up by the client's integer ids (ONNX Gather of
 * the owner's embedding [V, H] by `input_ids`) is imported with an INPUT of
 * shape [..., V] marked `ids` (onnx_io.c) and the Gather as the product of
 * that input with the secret table (no round: the input is masked like any
 * other and the table's mask is the weight mask). The ids themselves never
 * leave the client: it checks them and encodes them here, locally, before
 * any check of values or shapes, any batch split and any message; what it
 * sends is the one-hot matrix masked like every input (X + R_X). A one-hot
 * element is 0 or 1, exact at any fixed-point scale, so the product is the
 * table's row exactly.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpc_int.h"

/* "[a, b, ...]" of the n numbers v into buf. */
static void list_str(const size_t *v, unsigned n, char *buf, size_t len) {
  size_t off = 0;
  snprintf(buf, len, "[");
  off = 1;
  for (unsigned d = 0; d < n && off < len; d++) {
    int w = snprintf(buf + off, len - off, "%s%zu", d ? ", " : "", v[d]);
    off += w > 0 ? (size_t)w : 0;
  }
  if (off < len)
    snprintf(buf + off, len - off, "]");
}

/* "[i, j, ...]" of flat index k in shape s, into buf. */
static void position(const mpc_shape_t *s, size_t k, char *buf, size_t len) {
  size_t idx[MPC_MAX_DIMS] = {0};
  for (unsigned d = s->ndim; d-- > 0;) {
    idx[d] = s->dim[d] ? k % s->dim[d] : 0;
    k = s->dim[d] ? k / s->dim[d] : 0;
  }
  list_str(idx, s->ndim, buf, len);
}

/* Checks tensor t against ids node nd (position k among the inputs). */
static int check_ids(const mpc_node_t *nd, size_t k, const mpc_ftensor_t *t, char *err,
                     size_t errlen) {
  size_t V = nd->shape.dim[nd->shape.ndim - 1];
  unsigned r = nd->shape.ndim - 1;
  int ok = t->data != NULL && t->shape.ndim == r;
  for (unsigned d = 0; ok && d < r; d++)
    ok = t->shape.dim[d] == nd->shape.dim[d] || (d == 0 && nd->batched && t->shape.dim[0] > 0);
  if (!ok) {
    char have[160], want[160];
    list_str(t->shape.dim, t->shape.ndim, have, sizeof have);
    list_str(nd->shape.dim, r, want, sizeof want);
    snprintf(err, errlen, "input %zu ('%s') takes token ids of shape %s%s (one-hot encoded "
             "over a vocabulary of %zu by the client), not %s", k + 1, nd->name, want,
             nd->batched ? " (dim 0: any batch size)" : "", V, have);
    return TANDEM_ESHAPE;
  }
  size_t n = mpc_shape_numel(&t->shape);
  for (size_t j = 0; j < n; j++) {
    double x = t->data[j];
    if (!(x >= 0 && x < (double)V && x == floor(x))) {
      char pos[160];
      position(&t->shape, j, pos, sizeof pos);
      snprintf(err, errlen, "input '%s': token id %.17g at position %s is outside the "
               "vocabulary [0, %zu)", nd->name, x, pos, V);
      return TANDEM_ERANGE;
    }
  }
  return 0;
}

/* The one-hot encoding of ids tensor t over V into h (initialised here). */
static int one_hot(const mpc_node_t *nd, const mpc_ftensor_t *t, mpc_ftensor_t *h, char *err,
                   size_t errlen) {
  size_t V = nd->shape.dim[nd->shape.ndim - 1], n = mpc_shape_numel(&t->shape);
  mpc_shape_t s = t->shape;
  s.dim[s.ndim++] = V;
  if (n > (size_t)(((uint64_t)1 << 40) / V) || mpc_ftensor_init(h, &s) != 0) {
    snprintf(err, errlen, "input '%s': no memory for the one-hot encoding of %zu ids over a "
             "vocabulary of %zu", nd->name, n, V);
    return TANDEM_ENOMEM;
  }
  for (size_t j = 0; j < n; j++)
    h->data[j * V + (size_t)t->data[j]] = 1.0;
  return 0;
}

int mpc_inputs_encode_ids(const mpc_graph_t *g, mpc_ftensor_t *inputs, size_t ninputs,
                          char *err, size_t errlen) {
  char scratch[8];
  if (err == NULL || errlen == 0) {
    err = scratch;
    errlen = sizeof scratch;
  }
  err[0] = '\0';
  if (g == NULL || (ninputs > 0 && inputs == NULL))
    return TANDEM_EINVAL;
  size_t nin = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    nin += g->nodes[i].op == MPC_OP_INPUT;
  if (nin != ninputs) {
    snprintf(err, errlen, "the model has %zu inputs, not %zu", nin, ninputs);
    return TANDEM_ESHAPE;
  }
  /* Every ids input is checked and encoded before any is replaced. */
  mpc_ftensor_t *h = calloc(nin + 1, sizeof *h);
  if (h == NULL)
    return TANDEM_ENOMEM;
  int rc = 0;
  size_t k = 0;
  for (size_t i = 0; i < g->nnodes && rc == 0; i++) {
    const mpc_node_t *nd = &g->nodes[i];
    if (nd->op != MPC_OP_INPUT)
      continue;
    if (nd->ids && (rc = check_ids(nd, k, &inputs[k], err, errlen)) == 0)
      rc = one_hot(nd, &inputs[k], &h[k], err, errlen);
    k++;
  }
  for (k = 0; k < nin; k++) {
    if (h[k].data == NULL)
      continue;
    if (rc == 0) {
      mpc_ftensor_close(&inputs[k]); /* wiped: the ids are the client's secret */
      inputs[k] = h[k];
    } else {
      mpc_ftensor_close(&h[k]);
    }
  }
  free(h);
  return rc;
}
