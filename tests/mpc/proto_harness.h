/* proto_harness.h - runs a graph privately with every role (owner, dealer, P0,
 * P1, client) in its own thread over the in-memory hub, for the protocol
 * tests. Shared by tests/mpc/test_*.c; not part of the library. */
#ifndef TANDEM_PROTO_HARNESS_H
#define TANDEM_PROTO_HARNESS_H

#include "mpc.h"

typedef struct {
  mpc_stats_t stats[MPC_NROLES]; /* counters of each role's endpoint */
  unsigned plan_rounds;
  int rc[MPC_NROLES];            /* each role's return code */
} harness_result_t;

/* Runs `queries` queries of g (weights w) on inputs at batch `batch`; the
 * outputs of the last query go to outputs (initialised by the callee when
 * every role succeeded). tap, if not NULL, sees every message. Returns 0 if
 * every role succeeded, else the first role's error. */
int harness_run(const mpc_graph_t *g, const mpc_weights_t *w, size_t batch,
                const mpc_ftensor_t *inputs, mpc_ftensor_t *outputs, int queries,
                mpc_tap_cb tap, void *tapctx, harness_result_t *res);

/* The same, but the dealer and the parties set the model up under a plan of
 * batch size setup_batch, export their model state, and import it into fresh
 * objects of the batch-`batch` plan for the queries (a daemon's restart). */
int harness_run_reload(const mpc_graph_t *g, const mpc_weights_t *w, size_t setup_batch,
                       size_t batch, const mpc_ftensor_t *inputs, mpc_ftensor_t *outputs,
                       int queries, harness_result_t *res);

/* The error bound of one layer y = W x + b (see test_protocol.c's header):
 * K inputs, |x| <= xmax, |W| <= amax, an input error d_in, at f bits. */
double harness_layer_bound(double d_in, size_t k, double xmax, double amax, unsigned f);
/* max |a - b| over the elements (infinity if any is NaN); shapes must agree. */
double harness_max_abs_diff(const mpc_ftensor_t *a, const mpc_ftensor_t *b);
/* Runs g privately (harness_run) and with mpc_eval_float, and fails the
 * current Check test unless every role succeeded and every output is within
 * tol of the float reference. Returns the harness result. */
harness_result_t harness_check_private(const mpc_graph_t *g, const mpc_weights_t *w,
                                       size_t batch, const mpc_ftensor_t *in, double tol,
                                       int queries);

/* While delta != 0, the client of every harness_run adds delta to the first
 * word of its masked input to P1 only (a client that sends P0 and P1
 * different masked inputs). harness_lying_client(0) turns it off. */
void harness_lying_client(uint64_t delta);
/* While outputs != NULL, the client of a harness_run of two queries or more
 * hands its first query's outputs there (the caller closes them). */
void harness_keep_first(mpc_ftensor_t *outputs);

/* Fixed coins for view tests: while on, every randombytes_buf of a role
 * thread the harness starts draws from a splitmix64 stream seeded by seed and
 * the role, so two runs with the same seed give the dealer and the owner the
 * same seeds whatever the threads' interleaving. Other threads keep the
 * system's randomness. harness_fix_coins(0) turns it off. */
void harness_fix_coins(uint64_t seed);

/* Gemm attributes: alpha = beta = 1, transB as given. */
mpc_attr_t harness_gemm_attr(int trans_b);
/* An MLP sizes[0] -> ... -> sizes[nl-1] (nl <= 9) with ReLU between layers
 * (Gemm with transB = 1, as PyTorch exports Linear), batch rows, f bits;
 * weights and biases uniform in [-wmax, wmax) from *seed. */
void harness_build_mlp(mpc_graph_t *g, mpc_weights_t *w, const size_t *sizes, size_t nl,
                       size_t batch, unsigned f, uint64_t *seed, double wmax);
/* A LeNet-style CNN on x [2, 1, 8, 8]: conv 3x3 (4 channels, pad 1) -> ReLU
 * -> maxpool 2x2 -> flatten -> Gemm to 3; weights uniform in [-0.5, 0.5). */
void harness_build_small_cnn(mpc_graph_t *g, mpc_weights_t *w, uint64_t *seedp);

/* Deterministic test data (splitmix64). */
uint64_t harness_rand(uint64_t *state);
double harness_uniform(uint64_t *state, double lo, double hi);
void harness_fill(mpc_ftensor_t *t, uint64_t *state, double lo, double hi);

#endif
