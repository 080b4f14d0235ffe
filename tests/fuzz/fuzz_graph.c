/* fuzz_graph.c - libFuzzer target for the public graph reader
 * (mpc/src/persist.c: mpc_graph_load), which parties and the dealer run on
 * bytes from the network.
 *
 * Every input is a candidate public graph; mpc_graph_load must refuse it
 * with a message or return a graph that compiles to a plan or is refused by
 * the plan compiler with an error. Loading rebuilds every node through
 * mpc_graph_add, which may normalise fields an operator does not use; what
 * it saves then loads again and saves to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mpc_graph_t g;
  char err[256];
  if (mpc_graph_load(&g, data, size, err, sizeof err) != 0) {
    if (err[0] == '\0' || g.nnodes != 0)
      abort();
    return 0;
  }
  uint8_t *b1 = NULL, *b2 = NULL;
  size_t n1 = 0, n2 = 0;
  mpc_graph_t h;
  if (mpc_graph_save(&g, &b1, &n1) != 0 || mpc_graph_load(&h, b1, n1, err, sizeof err) != 0)
    abort();
  if (mpc_graph_save(&h, &b2, &n2) != 0 || n1 != n2 || memcmp(b1, b2, n1) != 0)
    abort();
  mpc_graph_close(&h);
  free(b1);
  free(b2);
  mpc_plan_t *p = NULL;
  if (mpc_plan_new(&p, &g, 1, err, sizeof err) == 0)
    mpc_plan_free(p);
  mpc_graph_close(&g);
  return 0;
}
