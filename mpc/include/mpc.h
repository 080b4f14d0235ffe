/* mpc.h - the public interface of Tandem's protocol layer (the glue).
 *
 * Two compute parties P0 and P1 hold additive shares over Z_2^64 of every
 * secret; a dealer supplies correlated randomness from the public plan alone;
 * the client masks its input and alone reconstructs the output; the model owner
 * shares the weights once. A model is a small graph (mpc_graph_t: operators and
 * shapes, no weights) compiled into a plan (mpc_plan_t: an ordered list of
 * gates). Every role runs the same plan:
 *   dealer   mpc_dealer_model / mpc_dealer_query  -> preprocessing messages
 *   owner    mpc_owner_share                      -> one weight share per party
 *   party    mpc_party_new, mpc_party_setup (opens W + R_W once, 1 round),
 *            mpc_party_query (offline from the dealer's message, then online)
 *   client   mpc_client_run (sends X + R_X, adds the output shares)
 * Messages travel through an mpc_transport_t: in-memory here (tests, threads of
 * one process), libuv sockets in net/. The coordinator batches every opening of
 * a round into one exchange per peer.
 *
 * Round budget (checked by tests): 0 online rounds for linear layers; 2 for a
 * ReLU (with the truncation after a product fused in); 1 per comparison level
 * plus 1 for MaxPool; the client's input and the output shares cost no
 * inter-party round.
 *
 * Thread affinity: objects are not shared between threads; distinct objects may
 * be used from distinct threads at once (the in-memory tests run each role in
 * its own thread).
 */
#ifndef TANDEM_MPC_H
#define TANDEM_MPC_H

#include <stddef.h>
#include <stdint.h>

#include "kern.h"
#include "tandem_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Roles and transport                                                       */

typedef enum {
  MPC_P0 = 0,
  MPC_P1 = 1,
  MPC_DEALER = 2,
  MPC_CLIENT = 3,
  MPC_OWNER = 4
} mpc_role_t;
#define MPC_NROLES 5

const char *mpc_role_name(mpc_role_t role);

typedef enum { MPC_PHASE_SETUP = 0, MPC_PHASE_OFFLINE = 1, MPC_PHASE_ONLINE = 2 } mpc_phase_t;
#define MPC_NPHASES 3

/* Traffic counters of one role: bytes by peer and phase, and inter-party
 * rounds (exchanges between P0 and P1) by phase. */
typedef struct {
  uint64_t sent[MPC_NROLES][MPC_NPHASES];
  uint64_t recvd[MPC_NROLES][MPC_NPHASES];
  uint64_t rounds[MPC_NPHASES];
  double seconds[MPC_NPHASES];
  /* The last query's online phase at a party: CLOCK_MONOTONIC seconds at its
   * start (input and preprocessing both in hand) and end (output sent).
   * Comparable across the processes of one host only. */
  double online_start, online_end;
} mpc_stats_t;

/* A transport moves whole messages between roles. Message sizes always follow
 * from the public plan, so a receiver names the length it expects; a message
 * of another length is an error (TANDEM_EPROTO). Implementations: the in-memory
 * one below, and net/'s sockets. Every call blocks until done or failed. */
typedef struct mpc_transport_s mpc_transport_t;
typedef struct {
  /* Sends len bytes to role `to`. */
  int (*send)(mpc_transport_t *t, mpc_role_t to, const void *buf, size_t len);
  /* Receives exactly len bytes from role `from`. */
  int (*recv)(mpc_transport_t *t, mpc_role_t from, void *buf, size_t len);
  /* One round with `peer`: sends sbuf and receives rlen bytes into rbuf, full
   * duplex (both sides may call it at once with large buffers). */
  int (*exchange)(mpc_transport_t *t, mpc_role_t peer, const void *sbuf,
                  size_t slen, void *rbuf, size_t rlen);
  void (*close)(mpc_transport_t *t);
} mpc_transport_ops_t;

struct mpc_transport_s {
  const mpc_transport_ops_t *ops;
  mpc_role_t self;
  mpc_phase_t phase; /* the phase the counters charge; set by the protocol */
  mpc_stats_t stats; /* updated by the mpc_transport_* wrappers below */
};

/* Wrappers that count bytes and rounds (an exchange between P0 and P1 is one
 * round) and forward to the ops. */
TANDEM_WUR int mpc_transport_send(mpc_transport_t *t, mpc_role_t to, const void *buf, size_t len);
TANDEM_WUR int mpc_transport_recv(mpc_transport_t *t, mpc_role_t from, void *buf, size_t len);
TANDEM_WUR int mpc_transport_exchange(mpc_transport_t *t, mpc_role_t peer, const void *sbuf,
                                size_t slen, void *rbuf, size_t rlen);

/* In-memory transport for the roles of one process, each used by one thread.
 * mpc_memnet_new creates a hub; mpc_memnet_endpoint gives the transport of one
 * role (owned by the hub). timeout_ms bounds every blocking wait (a role that
 * never answers becomes TANDEM_ETIMEDOUT, never a hang). Optional tap: every
 * delivered message is also passed to tap(ctx, from, to, buf, len) (view tests).
 * mpc_memnet_free after every thread is done with its endpoint. */
typedef struct mpc_memnet_s mpc_memnet_t;
typedef void (*mpc_tap_cb)(void *ctx, mpc_role_t from, mpc_role_t to,
                           const void *buf, size_t len);
TANDEM_WUR int mpc_memnet_new(mpc_memnet_t **out, int timeout_ms);
mpc_transport_t *mpc_memnet_endpoint(mpc_memnet_t *hub, mpc_role_t role);
void mpc_memnet_set_tap(mpc_memnet_t *hub, mpc_tap_cb tap, void *ctx);
/* Makes every blocked or later call of role `role` fail with TANDEM_ECLOSED
 * (fault tests: a party that dies). */
void mpc_memnet_kill(mpc_memnet_t *hub, mpc_role_t role);
void mpc_memnet_free(mpc_memnet_t *hub);

/* ------------------------------------------------------------------------ */
/* Graphs: operators and shapes only (the public part of a model).           */

#define MPC_MAX_DIMS 6

typedef struct {
  unsigned ndim;
  size_t dim[MPC_MAX_DIMS];
} mpc_shape_t;

size_t mpc_shape_numel(const mpc_shape_t *s);

typedef enum {
  MPC_OP_INPUT,     /* a client input: out shape = shape (dim[0] is the batch
                     * if the node's `batched` is set) */
  MPC_OP_PARAM,     /* a weight or bias of the model owner: out shape = shape */
  MPC_OP_CONST,     /* a public constant (data in the graph) */
  MPC_OP_MATMUL,    /* in0 (B x K) times in1 (K x N); either may be a PARAM */
  MPC_OP_GEMM,      /* alpha*op(in0)*op(in1) + beta*in2 (ONNX Gemm) */
  MPC_OP_CONV,      /* 2-D convolution NCHW, weights in1 (M x C x kh x kw), bias in2 */
  MPC_OP_ADD,       /* in0 + in1 (same shape, or in1 broadcast over leading dims) */
  MPC_OP_SUB,       /* in0 - in1 (same broadcasting) */
  MPC_OP_MULC,      /* in0 * public scalar attr.scalar */
  MPC_OP_RELU,      /* max(in0, 0) */
  MPC_OP_MAXPOOL,   /* 2-D max pooling NCHW */
  MPC_OP_AVGPOOL,   /* 2-D average pooling NCHW (count_include_pad attr) */
  MPC_OP_RESHAPE,   /* same elements, new shape (row-major order kept) */
  MPC_OP_TRANSPOSE, /* permutation of axes attr.perm */
  MPC_OP_OUTPUT,    /* marks in0 as a graph output */
  MPC_OP_MUL,       /* in0 * in1 elementwise, in1 broadcast to in0 (a PARAM: the
                     * owner's scale stays secret; or a computed value) */
  /* Data movement (issue 11): local, no round, a masked value stays masked. */
  MPC_OP_CONCAT,    /* in0 and in1 joined along attr.axis (their other dims agree) */
  MPC_OP_SELECT,    /* out[o] = in0[src(o)], each axis on its own (Slice, Pad with
                     * zeros, nearest Resize, Expand, Gather): see mpc_attr_t */
  /* Smooth functions of one activation, elementwise (mpc/src/gate_smooth.c:
   * piecewise cubics selected by comparisons; each private form is exact to
   * its stated bound on its stated domain, README). */
  MPC_OP_SIGMOID,   /* 1 / (1 + exp(-x)) */
  MPC_OP_TANH,      /* tanh(x) */
  MPC_OP_EXP,       /* exp(x); privately for x <= 0 (x > 0 gives 1) */
  MPC_OP_ERF,       /* erf(x) */
  MPC_OP_GELU,      /* x Phi(x) = x (1 + erf(x / sqrt 2)) / 2 */
  MPC_OP_GELU_TANH, /* x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2 */
  MPC_OP_RECIP,     /* 1 / x; privately for x in [1/4, 64] */
  MPC_OP_RSQRT,     /* 1 / sqrt(x); privately for x in [1/256, 64] */
  MPC_OP_SQRT,      /* sqrt(x); privately for x in [0, 64] */
  MPC_OP_SOFTMAX,   /* softmax along the last axis (at most 256 elements privately) */
  MPC_OP_LNORM,     /* (x - mean) / sqrt(var + eps) along the last axis; eps = in1
                     * (optional, one element: a PARAM or CONST); privately for
                     * var + eps in [1/256, 64] */
  MPC_OP_LINMAP     /* a public linear map along attr.axis: in1 is a CONST matrix
                     * M [m x n] (n = in0's dim[axis]) and out[.., o, ..] =
                     * sum_i M[o][i] in0[.., i, ..], dim[axis] becoming m (linear
                     * and cubic Resize): local, no round, scale +1 */
} mpc_op_t;
#define MPC_OP_LAST MPC_OP_LINMAP
/* 1 for the smooth functions above. */
int mpc_op_is_smooth(mpc_op_t op);

const char *mpc_op_name(mpc_op_t op);

enum {
  MPC_POST_NONE = 0,
  MPC_POST_SOFTMAX = 1,
  MPC_POST_LOGSOFTMAX = 2,
  MPC_POST_FLAT = 4 /* or'ed in: the axes from attr.axis on as one */
};

typedef struct {
  int trans_a, trans_b;              /* GEMM */
  double alpha, beta;                /* GEMM: public scalars */
  double scalar;                     /* MULC: a public number, never the owner's */
  size_t kh, kw;                     /* CONV (from weights), pools */
  size_t pads[4];                    /* top, left, bottom, right */
  size_t strides[2], dilations[2];   /* CONV, pools */
  int count_include_pad;             /* AVGPOOL */
  unsigned perm[MPC_MAX_DIMS];       /* TRANSPOSE */
  /* CONCAT: the axis joined. SELECT: the axis an index table (in1, a CONST
   * of integers, if present) selects on. LINMAP: the axis mapped. */
  int axis;
  /* SELECT (same rank in and out, output shape = node shape): on axis d the
   * output coordinate o reads input coordinate
   *   sel_start[d] + floor(o * sel_step[d] / sel_div[d])
   * (on the table's axis: table[o], -1 for a 0); a coordinate outside the input reads 0
   * (padding). With sel_batch set, axis 0 is the identity (start 0, step 1,
   * div 1, no table) and its size follows the input's (the batch). */
  int64_t sel_start[MPC_MAX_DIMS], sel_step[MPC_MAX_DIMS];
  uint32_t sel_div[MPC_MAX_DIMS];
  int sel_batch;
  /* OUTPUT: a function the client applies to the reconstructed output (the
   * graph's last operator, ONNX Softmax/LogSoftmax): MPC_POST_*, over
   * attr.axis (FLAT: over every axis from it on, ONNX opsets before 13). */
  int post;
  /* Smooth ops: 1 = evaluate sup |f(x)| over |x| <= in0 instead of f (the
   * magnitude graph of bound.c); never persisted, 0 in every model graph. */
  int magnitude;
} mpc_attr_t;

typedef struct {
  mpc_op_t op;
  int in[3];            /* value indices (node indices), -1 where absent */
  mpc_attr_t attr;
  mpc_shape_t shape;    /* output shape, filled by mpc_graph_add / infer */
  const double *cdata;  /* MPC_OP_CONST: numel(shape) values (borrowed) */
  char name[64];        /* for error messages */
  /* MPC_OP_INPUT: 1 if dim[0] is the batch (a symbolic, 0 or -1 first
   * dimension in the ONNX model; mpc_graph_input's inputs): mpc_plan_new
   * and mpc_eval_float take it from the query; 0: the shape is fixed. */
  int batched;
  /* MPC_OP_INPUT: 1 if the client gives token ids (an ONNX integer input
   * read only as Gather indices into the owner's [V, H] table): the node's
   * last axis is the vocabulary (V = dim[ndim - 1]) and the client sends the
   * ids one-hot encoded along it (mpc_inputs_encode_ids), so that the Gather
   * is a product of this input with the secret table (no round). */
  int ids;
} mpc_node_t;

/* A graph is an append-only list of nodes in topological order; a node's
 * value is referred to by its index. */
typedef struct {
  mpc_node_t *nodes;
  size_t nnodes, cap;
  unsigned frac_bits;   /* f: fixed-point fractional bits (default 16) */
  unsigned bound_bits;  /* |activation| * 2^(2f) < 2^bound_bits before truncation (default 62) */
  /* The largest |x| of a client input element for which no value of the
   * graph leaves the fixed-point range (mpc_weights_input_bound, set by the
   * model owner, who knows the weights); the client refuses larger inputs.
   * 0: unknown, not checked. */
  double input_bound;
  /* The least value of a client input element, if the model declares one
   * (metadata "tandem.input_min"; the Fashion-MNIST models declare 0, pixels
   * in [0, 1]): the client refuses a smaller one, and the owner's bounds
   * (mpc_weights_bounds) take the input interval [max(input_min,
   * -input_bound), input_bound]. -HUGE_VAL (mpc_graph_init): none. */
  double input_min;
  /* NULL, or nmag = nnodes entries: mag_log2[i] = e such that node i's value
   * satisfies |v| < 2^e (real units) for every client input within
   * input_bound (mpc_weights_bounds, set by the model owner). The plan sizes
   * each comparison gate from it (fewer DCF bits); without it every gate
   * takes bound_bits. Owned by the graph (freed by mpc_graph_close). */
  int8_t *mag_log2;
  size_t nmag;
  /* 1: exact mode, the owner's public per-model choice. Every truncation is
   * then exact (a query's result is the same bit for bit whatever the
   * dealer's coins and equals the fixed-point reference): a ReLU or a max
   * tree after a product runs on the exactly truncated value or on the
   * untruncated one, at one more round per fused layer (mpc/src/plan.c).
   * 0 (default): the carry of a truncation fused into a ReLU is dropped. */
  int exact;
  double *cstore;       /* constants owned by the graph (mpc_graph_load), or NULL */
  void *cblocks;        /* constants copied in by mpc_graph_const (a list), or NULL */
} mpc_graph_t;

void mpc_graph_init(mpc_graph_t *g);
void mpc_graph_close(mpc_graph_t *g);

/* Appends a node (shape inferred from its inputs; for INPUT/PARAM/CONST the
 * node's shape is given). Returns the new index (>= 0) or a negative error:
 * TANDEM_ESHAPE with a message in err (if not NULL) for incompatible shapes,
 * TANDEM_EINVAL, TANDEM_ENOMEM. */
TANDEM_WUR int mpc_graph_add(mpc_graph_t *g, const mpc_node_t *node, char *err,
                             size_t errlen);

/* Convenience builders over mpc_graph_add. mpc_graph_input's node is
 * batched (dim[0] is the batch). */
TANDEM_WUR int mpc_graph_input(mpc_graph_t *g, const char *name, unsigned ndim,
                               const size_t *dim);
TANDEM_WUR int mpc_graph_param(mpc_graph_t *g, const char *name, unsigned ndim,
                               const size_t *dim);
TANDEM_WUR int mpc_graph_op(mpc_graph_t *g, mpc_op_t op, int in0, int in1, int in2,
                            const mpc_attr_t *attr, const char *name);
/* A public constant (CONST node) of the given shape whose numel(shape)
 * values are copied into memory the graph owns (freed by mpc_graph_close).
 * Returns its index or a negative error as mpc_graph_add. */
TANDEM_WUR int mpc_graph_const(mpc_graph_t *g, const char *name, unsigned ndim,
                               const size_t *dim, const double *data);

/* ------------------------------------------------------------------------ */
/* Plaintext tensors (float64) for the client, the owner and the references. */

typedef struct {
  mpc_shape_t shape;
  double *data; /* numel(shape) values, row-major */
} mpc_ftensor_t;

/* Allocates data (zeroed). 0 or TANDEM_ENOMEM/TANDEM_EINVAL. */
TANDEM_WUR int mpc_ftensor_init(mpc_ftensor_t *t, const mpc_shape_t *shape);
/* Wipes and frees data. */
void mpc_ftensor_close(mpc_ftensor_t *t);

/* Weights of a graph: one tensor per PARAM node (indexed by node), owned by the
 * model owner. */
typedef struct {
  const mpc_graph_t *graph;
  mpc_ftensor_t *param; /* graph->nnodes entries; data NULL for non-params */
} mpc_weights_t;

TANDEM_WUR int mpc_weights_init(mpc_weights_t *w, const mpc_graph_t *g);
void mpc_weights_close(mpc_weights_t *w);

/* The plaintext reference of the graph, in IEEE double (what the private
 * result is compared with, within the fixed point's error). inputs: one
 * tensor per INPUT node in node order; outputs: one per OUTPUT node,
 * initialised by the callee (caller closes). */
TANDEM_WUR int mpc_eval_float(const mpc_graph_t *g, const mpc_weights_t *w,
                              const mpc_ftensor_t *inputs, mpc_ftensor_t *outputs);

/* The largest B such that every client input with all |x| <= B keeps every
 * value of the graph within the fixed-point range the protocol needs
 * (|v| < 2^(bound_bits - 2 frac_bits - 1)), whatever the input: a worst case over
 * the weights' magnitudes (mpc/src/bound.c), for graph.input_bound. Runs the
 * float evaluator a few dozen times at batch 1. Errors: TANDEM_ERANGE (the
 * weights overflow even at input 0), TANDEM_EINVAL, TANDEM_ENOMEM. */
TANDEM_WUR int mpc_weights_input_bound(const mpc_graph_t *g, const mpc_weights_t *w,
                                       double *bound);

/* What the model owner publishes with the graph: the input bound and, per
 * node, the magnitude exponent of its value (mpc_graph_t.mag_log2). The
 * bound is `declared` if > 0 (the range the model's inputs are known to
 * take, e.g. 1 for pixels in [0, 1]; TANDEM_ERANGE if the weights do not
 * allow it), else the largest safe bound (mpc_weights_input_bound). The
 * exponents bound each node's value for every input element in
 * [max(g->input_min, -bound), bound], by interval arithmetic on its positive
 * and negative parts (bound.c; TANDEM_ERANGE if g->input_min > bound). Each
 * exponent covers the fixed-point rounding of the protocol (a relative
 * 1% and an absolute 2^(10-f) of slack). *mag_log2 gets g->nnodes entries,
 * malloc'd, the caller's to free (or to hand to a graph). This reveals, by
 * design, one power of two per node about the weights: its worst-case gain.
 * Errors as mpc_weights_input_bound. */
TANDEM_WUR int mpc_weights_bounds(const mpc_graph_t *g, const mpc_weights_t *w,
                                  double declared, double *input_bound, int8_t **mag_log2);

/* The same into g itself: g->input_bound (declared if it was > 0) and
 * g->mag_log2. 0 or the errors of mpc_weights_bounds (g unchanged). */
TANDEM_WUR int mpc_graph_set_bounds(mpc_graph_t *g, const mpc_weights_t *w);

/* ------------------------------------------------------------------------ */
/* Plans                                                                     */

typedef struct mpc_plan_s mpc_plan_t;

/* The batch size of a query of g on inputs (one tensor per INPUT node, in
 * node order; ninputs must be their number): dim[0] of the batched inputs,
 * which must agree, or 0 when no input is batched. Every input must have its
 * declared shape, but for a batched input's dim[0]. 0 or TANDEM_ESHAPE /
 * TANDEM_EINVAL with one line in err naming the input. */
TANDEM_WUR int mpc_graph_batch(const mpc_graph_t *g, const mpc_ftensor_t *inputs,
                               size_t ninputs, size_t *batch, char *err, size_t errlen);

/* The largest vocabulary of a token-id input (mpc_node_t.ids). */
#define MPC_IDS_VOCAB_MAX ((size_t)1 << 24)

/* The client's token ids into what it sends: every input tensor of an ids
 * INPUT node of g (one tensor per INPUT node, in node order, ninputs of
 * them), given with the node's shape less its last axis (dim 0 any batch if
 * the node is batched), is replaced by its one-hot encoding along a new last
 * axis of V = the node's last dimension (the old tensor wiped and freed).
 * Every id must be an integer in [0, V): checked before anything is
 * replaced. Local, no communication; the ids stay with the caller. Other
 * inputs are left alone. 0, or TANDEM_ESHAPE (a wrong shape), TANDEM_ERANGE
 * (an id outside [0, V) or not an integer), TANDEM_ENOMEM, TANDEM_EINVAL,
 * with one line in err naming the input (and the bad id's position); on
 * an error no tensor is changed. */
TANDEM_WUR int mpc_inputs_encode_ids(const mpc_graph_t *g, mpc_ftensor_t *inputs,
                                     size_t ninputs, char *err, size_t errlen);

/* Compiles g for batch size `batch` (replacing dim[0] of every batched INPUT,
 * the others keep their declared shape; 0 keeps the shapes the graph
 * declares). Also initialises libsodium. The plan
 * keeps a pointer to g (which must outlive it). Errors: TANDEM_EUNSUPOP naming
 * the node in err, TANDEM_ESHAPE, TANDEM_EINVAL, TANDEM_ENOMEM. */
TANDEM_WUR int mpc_plan_new(mpc_plan_t **out, const mpc_graph_t *g, size_t batch,
                            char *err, size_t errlen);
void mpc_plan_free(mpc_plan_t *p);

/* Online inter-party rounds a query of this plan takes. */
unsigned mpc_plan_rounds(const mpc_plan_t *p);
/* Number of INPUT and OUTPUT nodes, and their shapes (for the batch). */
size_t mpc_plan_ninputs(const mpc_plan_t *p);
size_t mpc_plan_noutputs(const mpc_plan_t *p);
const mpc_shape_t *mpc_plan_input_shape(const mpc_plan_t *p, size_t i);
const mpc_shape_t *mpc_plan_output_shape(const mpc_plan_t *p, size_t i);
/* Bytes of the dealer's query message to role (P0, P1 or CLIENT). */
size_t mpc_plan_prep_bytes(const mpc_plan_t *p, mpc_role_t role);
/* An upper estimate of the bytes a plan of graph g at batch size `batch` (0:
 * the declared one) takes once compiled with a party's or the dealer's
 * object, read from the node shapes alone (plan_mem.c): to refuse a graph
 * or a batch over a memory budget before compiling anything. SIZE_MAX when
 * it does not fit a size_t. */
size_t mpc_plan_mem_bytes(const mpc_graph_t *g, size_t batch);

/* The gates of a plan, in execution order: what a per-gate table shows. */
typedef struct {
  const char *kind;      /* "bilinear", "triple", "relu+trunc", "trunc", ... (static) */
  const char *label;     /* the graph node and shape, e.g. "fc1" (owned by the plan) */
  size_t n;              /* elements of its output */
  unsigned rounds;       /* online inter-party rounds it sends in (0 or 1) */
  unsigned round;        /* the round it sends in, if rounds = 1 */
  uint64_t online_bytes; /* bytes each party sends the other for it online */
  uint64_t prep_bytes[2];/* dealer bytes it consumes at P0, P1 (beyond seeds) */
  /* BILIN/TRIPLE: its ring GEMM, gemm_count products of m x k by k x n
   * (a convolution is one per image); zeros for other gates. */
  size_t gemm_m, gemm_k, gemm_n, gemm_count;
  /* NONLIN/MAXLEVEL (FSS gates): the value bound L it assumes (|v| < 2^L
   * at its scale), its first DCF's input bits, the elements it compares and
   * its key bytes per party (key_bytes / compared per element); zeros for
   * other gates. */
  unsigned bound_bits, dcf_bits;
  size_t compared;
  uint64_t key_bytes;
} mpc_gate_info_t;
size_t mpc_plan_ngates(const mpc_plan_t *p);
/* Gate i (0 .. ngates-1) into *out. 0 or TANDEM_EINVAL. */
TANDEM_WUR int mpc_plan_gate(const mpc_plan_t *p, size_t i, mpc_gate_info_t *out);

/* A human-readable listing of the gates (one line each: kind, shape, rounds). */
void mpc_plan_describe(const mpc_plan_t *p, void (*line)(void *ctx, const char *s), void *ctx);

/* ------------------------------------------------------------------------ */
/* Roles                                                                     */

/* The model owner: encodes the weights in fixed point (weights at f bits,
 * biases at 2f, as the plan uses them) and sends one additive share of each to
 * P0 and P1 over t (setup phase). Shares are drawn from a PRG seeded by
 * randombytes_buf. Errors: TANDEM_ERANGE (a weight outside the fixed-point
 * range, named in err), transport errors. */
TANDEM_WUR int mpc_owner_share(const mpc_plan_t *p, const mpc_weights_t *w,
                               mpc_transport_t *t, char *err, size_t errlen);

/* The dealer. A dealer object holds, per model, the seeds of the weight masks
 * R_W (never the weights). mpc_dealer_model sends P0 and P1 their weight-mask
 * seeds (setup phase); mpc_dealer_query generates one query's preprocessing
 * from fresh OS seeds and sends it to P0, P1 and the client (offline phase). */
typedef struct mpc_dealer_s mpc_dealer_t;
TANDEM_WUR int mpc_dealer_new(mpc_dealer_t **out, const mpc_plan_t *p);
void mpc_dealer_free(mpc_dealer_t *d);
TANDEM_WUR int mpc_dealer_model(mpc_dealer_t *d, mpc_transport_t *t);
TANDEM_WUR int mpc_dealer_query(mpc_dealer_t *d, mpc_transport_t *t);

/* One query's preprocessing as the dealer's three messages, without sending
 * them: msg[0] for P0, msg[1] for P1, msg[2] for the client, each with
 * `headroom` bytes (a multiple of 8, else TANDEM_EINVAL) before its len[i]
 * bytes (room for a transport's header,
 * so that a message of hundreds of MB is sent without another copy).
 * mpc_dealer_query is mpc_dealer_prep, then a send of each message. The
 * caller frees the messages with mpc_prep_close (which wipes them). */
typedef struct {
  uint8_t *msg[3];
  size_t len[3];
  size_t headroom;
} mpc_prep_t;
TANDEM_WUR int mpc_dealer_prep(mpc_dealer_t *d, size_t headroom, mpc_prep_t *out);
void mpc_prep_close(mpc_prep_t *p);
/* Closes message i of p alone, of which its sender already wiped the first
 * `wiped` bytes (headroom included): the rest is wiped, then the message is
 * freed. The cluster's dealer sends its parties' large parts with
 * net_msg_send_consume, which wipes them as it seals them and gives their
 * pages back: wiping those again would only fault them in. */
void mpc_prep_close_part(mpc_prep_t *p, int i, size_t wiped);

/* A compute party (P0 or P1). mpc_party_setup receives the owner's weight
 * shares and the dealer's weight-mask seeds, opens W^ = W + R_W with the other
 * party (one setup round) and keeps it for every later query. mpc_party_query
 * receives one query's preprocessing (offline), then the client's masked input,
 * runs the plan online with the other party, and sends its output shares to
 * the client. Time goes to t->stats.seconds: OFFLINE from the call to the end
 * of the offline work, ONLINE from the masked input's arrival to the output
 * shares sent (waiting for the client is not counted). */
typedef struct mpc_party_s mpc_party_t;
TANDEM_WUR int mpc_party_new(mpc_party_t **out, const mpc_plan_t *p, mpc_role_t self);
void mpc_party_free(mpc_party_t *party);
TANDEM_WUR int mpc_party_setup(mpc_party_t *party, mpc_transport_t *t);
TANDEM_WUR int mpc_party_query(mpc_party_t *party, mpc_transport_t *t);
/* Wipes what the last query left in the party's object (masked activations,
 * mask shares, shares of intermediate values, gate offsets and FSS
 * constants, the dealer's message with its seeds and keys, the round
 * buffers), keeping the model state; the next query works as before. Call
 * between queries on a cached object (wipe.c). */
void mpc_party_wipe_query(mpc_party_t *party);
/* The time gate i took in the last query: its offline preparation and its
 * online work (local compute; the exchange it shares with its round is not
 * charged to any gate). 0 or TANDEM_EINVAL. */
TANDEM_WUR int mpc_party_gate_times(const mpc_party_t *party, size_t i, double *offline_s,
                                    double *online_s);

/* The client: receives its preprocessing from the dealer, encodes and masks
 * inputs (one tensor per INPUT node) and sends X + R_X to both parties, then
 * receives both output shares and decodes them. outputs are initialised by the
 * callee. Errors: TANDEM_ESHAPE (wrong input shape), TANDEM_ERANGE (an input
 * outside the fixed-point range, or beyond the graph's input_bound, before
 * anything is sent), transport errors. */
TANDEM_WUR int mpc_client_run(const mpc_plan_t *p, mpc_transport_t *t,
                              const mpc_ftensor_t *inputs, mpc_ftensor_t *outputs,
                              char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* Persistence: the public graph and the model state of a party or dealer.   */

/* The public part of a model (operators, attributes, shapes, public
 * constants; never a weight) as bytes, for the parties and the dealer.
 * *out is malloc'd (caller frees). 0 or TANDEM_ENOMEM/TANDEM_EINVAL. */
TANDEM_WUR int mpc_graph_save(const mpc_graph_t *g, uint8_t **out, size_t *len);
/* Rebuilds a graph saved by mpc_graph_save, re-checking every node through
 * mpc_graph_add. g is initialised by the callee; close it with mpc_graph_close.
 * TANDEM_EPARSE (message in err) for anything malformed. */
TANDEM_WUR int mpc_graph_load(mpc_graph_t *g, const void *buf, size_t len, char *err,
                              size_t errlen);

/* A party's model state after mpc_party_setup (its weight shares, its share of
 * R_W, and W + R_W): exactly mpc_party_state_bytes(plan) bytes. The state
 * does not depend on the plan's batch size, so it imports into a party of any
 * plan of the same graph (then ready for queries, as after setup). Import:
 * TANDEM_EPARSE (not a state), TANDEM_ESHAPE (the state of another model). */
size_t mpc_party_state_bytes(const mpc_plan_t *p);
TANDEM_WUR int mpc_party_export(const mpc_party_t *pt, void *buf, size_t len);
TANDEM_WUR int mpc_party_import(mpc_party_t *pt, const void *buf, size_t len);
/* The dealer's model state after mpc_dealer_model (the weight masks R_W). */
size_t mpc_dealer_state_bytes(const mpc_plan_t *p);
TANDEM_WUR int mpc_dealer_export(const mpc_dealer_t *d, void *buf, size_t len);
TANDEM_WUR int mpc_dealer_import(mpc_dealer_t *d, const void *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* ONNX import and tensor files                                              */

/* The largest model or tensor file read, in bytes (1 GiB). */
#define MPC_FILE_MAX ((size_t)1 << 30)

/* Imports an ONNX model (opsets 9 to 17) into g and its weights into w.
 * g and w are initialised by the callee (any previous content is ignored);
 * on success the caller closes w and then g (mpc_weights_close before
 * mpc_graph_close: w refers to g). On failure both are left closed.
 * Graph inputs that are not initializers become INPUT nodes (the client's),
 * named as in the model, in the model's order; a symbolic, 0 or -1 first
 * dimension is the batch: the node is `batched`, declared as 1 (mpc_plan_new
 * and mpc_eval_float substitute the real one); an input whose dimensions are
 * all fixed keeps them; a rank-0 input is a fixed [1] (a scalar). Initializers and Constant tensors
 * used as operands become PARAM nodes (the model owner's) with their values in
 * w; shape-only tensors (Reshape's shape, axes, pads) are consumed here. Graph
 * outputs become OUTPUT nodes named as in the model, in the model's order.
 * BatchNormalization is folded into a Conv or Gemm it directly follows, Pad
 * into the Conv or AveragePool it feeds. Nothing is sent anywhere.
 * Errors, each with one line in err naming the node and its operator where
 * there is one: TANDEM_EUNSUPOP (an operator, attribute value or opset outside
 * the supported set), TANDEM_EPARSE (not a protobuf ModelProto, dangling
 * names, cycles, wrong data types or lengths), TANDEM_ESHAPE (inconsistent
 * shapes), TANDEM_ERANGE (a weight that is NaN or infinite), TANDEM_ENOMEM,
 * -errno for I/O. mpc_onnx_load_buffer parses len bytes at buf (not kept). */
TANDEM_WUR int mpc_onnx_load(const char *path, mpc_graph_t *g, mpc_weights_t *w,
                             char *err, size_t errlen);
TANDEM_WUR int mpc_onnx_load_buffer(const void *buf, size_t len, mpc_graph_t *g,
                                    mpc_weights_t *w, char *err, size_t errlen);

/* mpc_onnx_load with the model's INT64 graph inputs (shape, axes or pads
 * inputs: the model's structure, public) read at import from tensor files:
 * paths[i] is the file of the i-th graph input that is not an initializer
 * (npaths of them, as `tandem run --input` lists them; NULL entries allowed).
 * Each INT64 input becomes a constant of the import, not an INPUT node, and
 * bound[i] (npaths entries, or NULL) is set to 1 for its file, 0 for the
 * others (the client's; their files are not read here). An INT64 input
 * without a file is refused (TANDEM_EUNSUPOP), as is one used where the
 * value would be an operand. Other errors as mpc_onnx_load. */
TANDEM_WUR int mpc_onnx_load_bound(const char *path, const char *const *paths, size_t npaths,
                                   unsigned char *bound, mpc_graph_t *g, mpc_weights_t *w,
                                   char *err, size_t errlen);

/* Reads a tensor file: an ONNX TensorProto (.pb, FLOAT or DOUBLE, as in the
 * ONNX backend test data) or a NumPy array (.npy, format 1.0 or 2.0, dtype
 * <f4 or <f8, or <i8 or <i4 for token ids, read as reals: exact below 2^53;
 * C order). The format is the .npy magic if present, else
 * TensorProto; a path ending in .npy must have the magic. *out is initialised
 * by the callee (the caller closes it with mpc_ftensor_close); on failure it
 * is left closed. Rank 0 (a scalar) to MPC_MAX_DIMS, at least one element.
 * Errors: TANDEM_EPARSE (malformed, truncated), TANDEM_EUNSUPOP (big-endian,
 * Fortran order, another dtype or version), TANDEM_ESHAPE (rank or size),
 * TANDEM_ENOMEM, -errno; a message in err. mpc_tensor_load_buffer parses len
 * bytes at buf. */
TANDEM_WUR int mpc_tensor_load(const char *path, mpc_ftensor_t *out, char *err,
                               size_t errlen);
TANDEM_WUR int mpc_tensor_load_buffer(const void *buf, size_t len, mpc_ftensor_t *out,
                                      char *err, size_t errlen);

/* Writes t to path as float64, losslessly: a NumPy 1.0 '<f8' array if path
 * ends in .npy, else an ONNX TensorProto of type DOUBLE with little-endian
 * raw_data. The file is written to a temporary name in the same directory,
 * flushed and renamed, so a reader never sees half a file. Returns 0,
 * TANDEM_EINVAL (no data or a bad shape), TANDEM_ENOMEM or -errno. */
TANDEM_WUR int mpc_tensor_save(const char *path, const mpc_ftensor_t *t);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_MPC_H */
