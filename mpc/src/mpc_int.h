/* mpc_int.h - private structures of the protocol layer: plan values, gates,
 * the preprocessing streams and the per-role runtime state. Never included
 * from outside mpc/.
 *
 * How the pieces fit. plan.c (with plan_rows.c and plan_layout.c) lowers a
 * graph to gates over plan values. A value is MASKED (both parties hold the
 * same public v^ = v + R and additive shares of the mask R, which the dealer
 * knows), SHARED (additive shares only) or a model parameter. Each gate kind
 * has four hooks, run in plan order by every role:
 *   dealer   generate this gate's correlated randomness (mpc__dealer_t);
 *   offline  a party reads it (mpc__prep_t) and precomputes what it can;
 *   send     (1-round gates) the party's words for the round's single frame;
 *   finish   local work once the round's frame (if any) has arrived.
 * The dealer and the parties draw from their preprocessing streams in the same
 * order, so a party's share of a dealer random value is the next output of its
 * PRG (P0: every share; P1: shares of uniform masks) or, for a value the dealer
 * fixes (a product of masks, an FSS constant), P1's next correction word.
 */
#ifndef TANDEM_MPC_INT_H
#define TANDEM_MPC_INT_H

#include <stdint.h>

#include "mpc.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Tandem's wire format is little-endian; big-endian hosts need byte swaps"
#endif

#define MPC__SEED_BYTES 32u

/* ---- plan values -------------------------------------------------------- */

typedef enum {
  MPC__V_MASKED,  /* pub = v + R (same at both parties), msh = share of R */
  MPC__V_SHARED,  /* sh = additive share */
  MPC__V_WEIGHT,  /* param used as a bilinear operand: sh, pub = W + R_W, msh */
  MPC__V_ADDEND,  /* param added to an activation: sh */
  MPC__V_PUBLIC   /* public constant: pub */
} mpc__vkind_t;

typedef struct {
  mpc_shape_t shape;
  size_t n;            /* elements */
  mpc__vkind_t kind;
  unsigned scale;      /* fixed-point scale in units of f: 0, 1 or 2 */
  int node;            /* graph node it comes from, or -1 */
  int magset, mag;     /* magset: |value| < 2^mag (real units), in place of
                        * node's bound (an intermediate no node has) */
  double fold;         /* params: factor the owner folds in (Gemm alpha/beta) */
  int pidx;            /* params: index among params (owner stream order) */
} mpc__val_t;

/* ---- gates -------------------------------------------------------------- */

typedef enum {
  MPC__G_INPUT,    /* client input -> MASKED s1 */
  MPC__G_BILIN,    /* MASKED s1 x WEIGHT -> SHARED s2: 0 rounds */
  MPC__G_TRIPLE,   /* MASKED s1 x MASKED s1 -> SHARED s2: 0 rounds */
  MPC__G_OPEN,     /* SHARED -> MASKED, same scale: 1 round */
  MPC__G_NONLIN,   /* ReLU and/or truncation by FSS: 1 round (0 on MASKED) */
  MPC__G_MAXLEVEL, /* one level of a max tree: 1 round */
  MPC__G_ADD,      /* a + b (b broadcast by an index map), SHARED */
  MPC__G_SUB,
  MPC__G_MULC,     /* times a public ring constant (scale may grow) */
  MPC__G_LAYOUT,   /* out[i] = in[map[i]] (reshape, transpose, gather); with
                    * in[1], map indexes in[0] then in[1] (concat); MAP_ZERO: 0 */
  MPC__G_AVGPOOL,  /* window sums times public 1/count, or with public
                    * coefficients per entry (wtap): scale +1 */
  MPC__G_OUTPUT,   /* shares to the client */
  MPC__G_SMOOTH,   /* a smooth function by FSS (gate_smooth.c): SHARED at fout
                    * fractional bits; 1 round (0 on MASKED) */
  MPC__G_MAXALL    /* a row maximum in two stages (gate_fss.c): !pick, every
                    * pair of a MASKED [n x P] compared, SHARED counts of the
                    * candidates each beats (no round); pick, the counts
                    * opened (1 round), the one that beats n - 1 selected:
                    * SHARED [1 x P] */
} mpc__gkind_t;

/* Bilinear forms, evaluated by kernels on any operands (public or shares). */
typedef enum {
  MPC__L_XW,  /* X [B x K] * W [K x N] */
  MPC__L_XWT, /* X [B x K] * W^T, W [N x K] */
  MPC__L_WX,  /* W [M x K] * X [K x N] */
  MPC__L_CONV, /* per image: W [M x CKK] * im2col(X_n) [CKK x OHW] */
  MPC__L_EW,   /* X [m] (*) W [k], elementwise, W[bmap[i]] (or W[i]) at i; n = 1 */
  MPC__L_BMM   /* batch products: Y_t [m x n] = X_{bmap[2t]} [m x k] W_{bmap[2t+1]} [k x n],
                * t < batch (MatMul with batch dimensions, broadcast) */
} mpc__lform_t;

typedef struct {
  mpc__lform_t form;
  size_t m, k, n;       /* XW: B,K,N; XWT: B,K,N; WX: M,K,N */
  kern_conv2d_t conv;   /* CONV geometry (per image) */
  size_t batch, cout, ohw; /* CONV: images, output channels, output plane */
} mpc__lin_t;

/* The matrix of an operand of shape xs (rank >= 2) that the ob-th matrix of
 * a batched MatMul's output (shape os) reads: numpy broadcasting of the
 * leading dimensions (eval_float.c). */
size_t mpc__bmm_index(const mpc_shape_t *os, const mpc_shape_t *xs, size_t ob);

/* The input index that element i of a Select's output (shape os) reads from
 * its input (shape is), or -1 for a zero (graph.c; table: the node's index
 * table or NULL). */
long mpc__select_src(const mpc_attr_t *at, const double *table, const mpc_shape_t *is,
                     const mpc_shape_t *os, size_t i);

/* Applies an OUTPUT node's client-side function (attr post, axis) to the
 * reconstructed output t in place (eval_float.c). */
void mpc__output_post(const mpc_attr_t *at, mpc_ftensor_t *t);

/* A LAYOUT map entry that reads zero (a Select's padding). */
#define MPC__MAP_ZERO UINT32_MAX

typedef struct mpc__gate_s {
  mpc__gkind_t kind;
  int in[2];            /* plan value indices, -1 where absent */
  int out;
  unsigned rounds;      /* 0 or 1 */
  unsigned round;       /* for 1-round gates: the round it sends in */
  unsigned ready;       /* round at which its output is available */
  size_t nsend;         /* words sent in its round */
  size_t ncorr;         /* P1 correction words it consumes */
  size_t nkey;          /* FSS key bytes per party it consumes */
  mpc__lin_t lin;       /* BILIN, TRIPLE */
  /* NONLIN / MAXLEVEL */
  int relu;             /* NONLIN: 1 = ReLU (truncating if shift > 0), 0 = truncation only */
  unsigned shift;       /* NONLIN: truncation shift s (0 or f); MAXLEVEL: low bits
                         * its comparisons ignore (f for untruncated products) */
  unsigned bound;       /* L: |input| < 2^L */
  size_t levelm, levelp; /* MAXLEVEL, MAXALL: candidates in, positions */
  int pick;             /* MAXALL: 0 the comparisons, 1 the selection (in[1]:
                         * the MASKED candidates) */
  /* SMOOTH: the function (an mpc_op_t), shift = the input's low bits it
   * ignores, bound = L of its input, fout = its output's fractional bits */
  int fn;
  unsigned fout;
  size_t keyfrom;       /* SMOOTH: 0, or 1 + an earlier SMOOTH gate on the same
                         * MASKED input and m whose DCF key and constants
                         * this one evaluates (both read alpha = R, payload
                         * powers of R: gate_smooth.c); it takes none */
  /* ADD/SUB: b index = bmap ? bmap[i] : i; b may be an ADDEND or PUBLIC */
  uint32_t *bmap;
  uint64_t bscale;      /* multiply b by this (aligning scales), 1 if none */
  uint64_t ascale;      /* multiply a by this, 1 if none */
  /* MULC */
  uint64_t cmul;
  /* LAYOUT */
  uint32_t *map;        /* NULL: identity (reshape) */
  /* AVGPOOL: window index lists flattened; -1 entries skipped */
  int32_t *win;         /* [npos][wsize] */
  uint64_t *wcoef;      /* [npos] public 1/count at f bits */
  uint64_t *wtap;       /* [npos][wsize] public coefficients at f bits, one per
                         * window entry (LINMAP), in place of wcoef; else NULL */
  size_t wsize;
  char label[80];       /* "Gemm fc1 1x784x128" for stats */
} mpc__gate_t;

struct mpc_plan_s {
  const mpc_graph_t *graph;
  size_t batch;
  unsigned f;           /* fractional bits */
  unsigned bound;       /* L */
  mpc__val_t *vals;
  size_t nvals, capvals;
  mpc__gate_t *gates;
  size_t ngates, capgates;
  int *inputs, *outputs;       /* value indices of INPUT / OUTPUT (in node order) */
  size_t ninputs, noutputs;
  int *params;                 /* value indices of params, owner order */
  size_t nparams;
  unsigned rounds;             /* online inter-party rounds */
  size_t *round_words;         /* words each party sends in round r */
  size_t ncorr, nkey;          /* totals of P1 corrections and key bytes */
  size_t in_words, out_words;  /* client input / output words */
  size_t weight_words;         /* sum of WEIGHT sizes (setup exchange) */
  size_t owner_words;          /* sum of param sizes (owner to P1) */
};

/* Schedules the lowered gates of p (plan_sched.c): each one-round gate its
 * round, the rounds' words, and the preprocessing and message sizes. 0 or
 * TANDEM_ENOMEM. */
int mpc__plan_schedule(mpc_plan_t *p);

/* ---- preprocessing streams ---------------------------------------------- */

/* One party's view of a query's (or model's) preprocessing: its PRG and, for
 * P1, the correction words; both parties get FSS key bytes. */
typedef struct {
  int party;            /* 0 or 1 */
  kern_prg_t prg;
  int prg_open;
  uint64_t *corr;       /* P1 only */
  size_t ncorr, corr_pos;
  uint8_t *keys;
  size_t nkey, key_pos;
} mpc__prep_t;

/* The dealer's side: both parties' PRGs, and the buffers it fills. */
typedef struct {
  kern_prg_t prg[2];
  kern_prg_t client;    /* the client's input masks */
  kern_prg_t coins;     /* the dealer's own randomness (FSS root seeds) */
  int open;
  uint64_t *corr;       /* to P1 */
  size_t ncorr, corr_pos;
  uint8_t *keys[2];
  size_t nkey, key_pos;
  uint64_t **mask;      /* per plan value: the full mask of MASKED values and weights */
} mpc__dealer_t;

/* P_i's share of a fresh uniform mask (n words). */
int mpc__prep_rand(mpc__prep_t *p, uint64_t *share, size_t n);
/* P_i's share of a value fixed by the dealer (P0: PRG, P1: correction). */
int mpc__prep_fixed(mpc__prep_t *p, uint64_t *share, size_t n);
/* The next nbytes of FSS keys (pointer into the stream). */
const uint8_t *mpc__prep_keys(mpc__prep_t *p, size_t nbytes);

/* Dealer: a fresh uniform mask R (both parties' PRG shares summed). */
int mpc__deal_rand(mpc__dealer_t *d, uint64_t *r, size_t n);
/* Dealer: shares a value v it fixed (P0 share from its PRG, P1 correction). */
int mpc__deal_fixed(mpc__dealer_t *d, const uint64_t *v, size_t n);
/* Dealer: room for the next nbytes of keys of each party. */
int mpc__deal_keys(mpc__dealer_t *d, size_t nbytes, uint8_t **k0, uint8_t **k1);

/* ---- party runtime ------------------------------------------------------ */

typedef struct {
  uint64_t *pub;   /* MASKED: v^; WEIGHT: W^; PUBLIC: value */
  uint64_t *msh;   /* MASKED: share of R; WEIGHT: share of R_W */
  uint64_t *sh;    /* SHARED, WEIGHT, ADDEND: share of the value */
} mpc__slot_t;

/* Per-gate state a party precomputes offline. */
typedef struct {
  uint64_t *pre;        /* BILIN/TRIPLE: offset; NONLIN/MAXLEVEL: the round mask share */
  uint64_t *consts;     /* NONLIN/MAXLEVEL: shares of the FSS constants */
  size_t npre, nconsts; /* their allocated words (for wiping) */
  const uint8_t *keys;  /* NONLIN/MAXLEVEL: this party's FSS keys */
  uint64_t *work;       /* NONLIN/MAXLEVEL: online working buffers, kept */
  size_t nwork;         /* its words */
  double offline_s, online_s; /* time spent on the last query, by phase */
} mpc__gstate_t;

/* The gate state's input-mask buffer (gs->pre) holding at least n words,
 * allocated on first use and kept across queries (wiped by
 * mpc_party_wipe_query). */
int mpc__gstate_pre(mpc__gstate_t *gs, size_t n);

struct mpc_party_s {
  const mpc_plan_t *plan;
  int self;             /* 0 or 1 */
  mpc__slot_t *slot;    /* per value */
  mpc__gstate_t *gs;    /* per gate */
  uint64_t *sendbuf, *recvbuf; /* max round words */
  uint8_t *prepbuf;     /* the dealer's query message */
  size_t prepbytes;
  int setup_done;
  /* A key only P0 and P1 know (each drew half at setup): pads the outputs of
   * a plan with no round, so that different masked inputs from a client give
   * it noise (coord.c). Part of the model state. */
  uint8_t pair_key[32];
};

/* Words of a party's round buffers (sendbuf, recvbuf): the largest of its
 * messages, plus the masked input's hash of the first round (coord.c). */
size_t mpc__max_round_words(const mpc_plan_t *p);

/* Gate hooks (gate_*.c, dispatched by kind in coord.c). */
int mpc__gate_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d);
int mpc__gate_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                      mpc__prep_t *prep);
/* Writes g->nsend words to out. */
int mpc__gate_send(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                    uint64_t *out);
/* mine/theirs: the two halves of this gate's opening (NULL for 0-round gates). */
int mpc__gate_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                     const uint64_t *mine, const uint64_t *theirs);

/* Per-kind hooks. */
int mpc__bilin_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d);
int mpc__bilin_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                       mpc__prep_t *prep);
int mpc__bilin_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt);
/* Y (=|+=) L(X, W) for the gate's form; X, W any ring operands. */
int mpc__bilin_apply(const mpc__gate_t *g, const uint64_t *x, const uint64_t *w,
                     uint64_t *y, int accumulate);

int mpc__fss_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d);
int mpc__fss_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                     mpc__prep_t *prep);
int mpc__fss_send(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                   uint64_t *out);
int mpc__fss_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                    const uint64_t *mine, const uint64_t *theirs);
/* FSS sizes for n elements: correction words and key bytes per party. */
/* mode: 0 truncation, 1 ReLU (truncating by shift), 2 a max-tree level,
 * 3 a MAXALL gate's pair comparisons, 4 its selection.
 * Input bits of the gate's (first) DCF: what `bench --by-gate` shows. */
unsigned mpc__fss_dcf_bits(int mode, unsigned shift, unsigned bound);
void mpc__fss_sizes(int mode, unsigned shift, unsigned bound, size_t n,
                    size_t *ncorr, size_t *nkey);

/* Smooth functions (gate_smooth.c). The double reference of op at x, and
 * sup |op(t)| over |t| <= b (bound.c's magnitude graph; on the private
 * domain for the ops defined on one). */
double mpc__smooth_float(mpc_op_t op, double x);
double mpc__smooth_mag(mpc_op_t op, double b);
/* Gate functions beyond the operators: Exp on [-16, 4] (a graph's Exp node;
 * Softmax keeps MPC_OP_EXP, x <= 0) and the Reciprocal on 1/4 <= |x| <= 64
 * (a graph's Reciprocal and Div; Softmax and LayerNorm keep MPC_OP_RECIP,
 * positive). The function a graph node of op runs on. */
#define MPC__FN_EXP_WIDE ((mpc_op_t)((int)MPC_OP_LAST + 1))
#define MPC__FN_RECIP_SIGNED ((mpc_op_t)((int)MPC_OP_LAST + 2))
/* GELU as two gates on one input (plan_rows.c): its pieces below 6, 0 from 6 on
 * (an output under 6 in magnitude, so the cubic terms keep 57 fractional
 * bits whatever the input's range), and the ramp, x from 6 on and 0 below
 * (exact at f bits, no truncation); their sum is GELU. */
#define MPC__FN_GELU_IN ((mpc_op_t)((int)MPC_OP_LAST + 3))
#define MPC__FN_GELUT_IN ((mpc_op_t)((int)MPC_OP_LAST + 4))
#define MPC__FN_RAMP6 ((mpc_op_t)((int)MPC_OP_LAST + 5))
mpc_op_t mpc__smooth_node_fn(mpc_op_t op);
/* The gate's output fractional bits for op when its output satisfies
 * |v| < 2^out_log2 (real units), at f input bits. */
unsigned mpc__smooth_fout(mpc_op_t op, int out_log2, unsigned f);
/* The input bits q (<= f) the pieces read; 0 when f is too small. */
unsigned mpc__smooth_q(unsigned f);
/* Sizes for n elements: P1 correction words, key bytes per party, and the
 * DCF input bits and the points its one key per element is evaluated at. */
void mpc__smooth_sizes(const mpc__gate_t *g, unsigned f, size_t n, size_t *ncorr,
                       size_t *nkey, unsigned *dcf_bits, size_t *npts);
int mpc__smooth_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d);
int mpc__smooth_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                        mpc__prep_t *prep);
int mpc__smooth_send(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                     uint64_t *out);
int mpc__smooth_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                       const uint64_t *mine, const uint64_t *theirs);

/* Local linear gates (gate_linear.c). */
int mpc__linear_dealer(const mpc_plan_t *p, const mpc__gate_t *g, mpc__dealer_t *d);
int mpc__linear_offline(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                        mpc__prep_t *prep);
int mpc__linear_finish(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                       const uint64_t *mine, const uint64_t *theirs);
int mpc__linear_send(const mpc_plan_t *p, const mpc__gate_t *g, mpc_party_t *pt,
                      uint64_t *out);

/* A party's additive share of value v whatever its kind (MASKED: [i=0]v^ - <R>;
 * PUBLIC: [i=0]v), written to out (n words). */
void mpc__share_of(const mpc_plan_t *p, const mpc_party_t *pt, int v, uint64_t *out);

/* Fixed-point encoding of n reals times `fold` at scale*f fractional bits
 * (scale 1 or 2). 0, TANDEM_ERANGE (index in *bad) or TANDEM_ENOMEM. */
int mpc__encode(uint64_t *out, const double *in, size_t n, unsigned f, unsigned scale,
                double fold, size_t *bad);
/* The inverse for one value at scale*f bits. */
double mpc__decode(uint64_t v, unsigned f, unsigned scale);

/* Fresh OS randomness (libsodium randombytes_buf). */
void mpc__os_random(void *buf, size_t n);

/* The dealer's internals, for persist.c. */
int mpc__dealer_ready(const mpc_dealer_t *d);
void mpc__dealer_set_ready(mpc_dealer_t *d);
const mpc_plan_t *mpc__dealer_plan(const mpc_dealer_t *d);
uint64_t *mpc__dealer_mask(const mpc_dealer_t *d, int v);

/* Allocation that wipes on free (shares, masks, keys); mpc__malloc does not
 * zero (for buffers the caller writes whole). Both ask for huge pages on
 * large buffers. */
void *mpc__calloc(size_t n, size_t size);
void *mpc__malloc(size_t bytes);
/* Test hook of mpc_dealer_prep (dealer.c): -1, or a byte to fill messages. */
extern int mpc__prep_poison;
void mpc__wipe_free(void *ptr, size_t bytes);

#endif /* TANDEM_MPC_INT_H */
