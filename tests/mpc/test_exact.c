/* test_exact.c - Check suite "exact": exact mode (mpc_graph_t.exact), in
 * which every truncation is exact, so that a query's result is the same bit
 * for bit whatever the dealer's coins and equals the fixed-point reference.
 *
 * The reference is computed here in integers, as the protocol's fixed-point
 * semantics define it: inputs and weights encoded at f bits by the encoder
 * (round to nearest), biases at scale 2f (encoded at f, shifted by f), a
 * product's sum exact in Z_2^64, every truncation a floor (arithmetic shift by
 * f), ReLU and max exact, the last layer decoded at scale 2f. Each network
 * runs privately (every role a thread over the in-memory hub) under several
 * dealer coin streams (harness_fix_coins). In default mode the truncation
 * fused into a ReLU drops its carry, so some hidden value is one ulp off or
 * not depending on the mask: there only the round counts are asserted (what
 * is deterministic); the tests below fail with exact mode off (checked when
 * they were written: several outputs differ from the reference).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "proto_harness.h"

Suite *exact_suite(void);

#define NCOINS 4

static int64_t enc(double v, unsigned f) {
  uint64_t z;
  ck_assert_int_eq(kern_fix_encode(&z, &v, 1, f, NULL), 0);
  return (int64_t)z;
}

/* y[b][j] = sum_k x[b][k] W[j][k] + (bias_j << f) over Z_2^64 (Gemm with
 * transB: W is out x in), x already encoded. */
static void ref_gemm(const int64_t *x, size_t batch, size_t in, const mpc_ftensor_t *w,
                     const mpc_ftensor_t *b, size_t out, unsigned f, int64_t *y) {
  for (size_t r = 0; r < batch; r++)
    for (size_t j = 0; j < out; j++) {
      uint64_t acc = (uint64_t)enc(b->data[j], f) << f;
      for (size_t k = 0; k < in; k++)
        acc += (uint64_t)x[r * in + k] * (uint64_t)enc(w->data[j * in + k], f);
      y[r * out + j] = (int64_t)acc;
    }
}

static int64_t relu_trunc(int64_t v, unsigned f) {
  int64_t t = v >> f; /* floor: an arithmetic shift */
  return t > 0 ? t : 0;
}

/* Runs g under NCOINS dealer coin streams and checks every output against
 * want (n values) bit for bit; the rounds against `rounds`. */
static void check_runs(const mpc_graph_t *g, const mpc_weights_t *w, size_t batch,
                       const mpc_ftensor_t *in, const double *want, size_t n,
                       unsigned rounds) {
  for (uint64_t coins = 1; coins <= NCOINS; coins++) {
    harness_fix_coins(0xe7ac7000 + coins * 104729);
    harness_result_t r;
    mpc_ftensor_t out[1];
    int rc = harness_run(g, w, batch, in, out, 1, NULL, NULL, &r);
    harness_fix_coins(0);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(r.plan_rounds, rounds);
    ck_assert_uint_eq(r.stats[MPC_P0].rounds[MPC_PHASE_ONLINE], rounds);
    ck_assert_uint_eq(mpc_shape_numel(&out[0].shape), n);
    for (size_t i = 0; i < n; i++)
      ck_assert_msg(out[0].data[i] == want[i], "coins %llu, output %zu: %.17g, want %.17g",
                    (unsigned long long)coins, i, out[0].data[i], want[i]);
    mpc_ftensor_close(&out[0]);
  }
}

/* The plan's rounds of g in default and exact mode. */
static void plan_rounds(mpc_graph_t *g, size_t batch, unsigned *dflt, unsigned *exact) {
  int keep = g->exact;
  mpc_plan_t *p;
  g->exact = 0;
  ck_assert_int_eq(mpc_plan_new(&p, g, batch, NULL, 0), 0);
  *dflt = mpc_plan_rounds(p);
  mpc_plan_free(p);
  g->exact = 1;
  ck_assert_int_eq(mpc_plan_new(&p, g, batch, NULL, 0), 0);
  *exact = mpc_plan_rounds(p);
  mpc_plan_free(p);
  g->exact = keep;
}

/* The MLP of the Fashion model's shape (784-128-128-10, ReLU between), two
 * rows of inputs in [0, 1] as the model declares them, with the per-gate
 * widths the owner publishes: 4 rounds by default, 6 in exact mode. */
START_TEST(test_exact_mlp) {
  const unsigned f = 16;
  const size_t batch = 2, sizes[4] = {784, 128, 128, 10};
  uint64_t seed = 4242;
  mpc_graph_t g;
  mpc_weights_t w;
  harness_build_mlp(&g, &w, sizes, 4, batch, f, &seed, 0.05);
  g.input_bound = 1;
  ck_assert_int_eq(mpc_graph_set_bounds(&g, &w), 0);
  mpc_ftensor_t in;
  mpc_shape_t s = {2, {batch, 784}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  harness_fill(&in, &seed, 0, 1);
  /* The integer reference. Parameters in node order: w0 b0 w1 b1 w2 b2. */
  const mpc_ftensor_t *par[6];
  size_t np = 0;
  for (size_t i = 0; i < g.nnodes && np < 6; i++)
    if (g.nodes[i].op == MPC_OP_PARAM)
      par[np++] = &w.param[i];
  ck_assert_uint_eq(np, 6);
  int64_t *a = calloc(batch * 784, sizeof *a), *y = calloc(batch * 128, sizeof *y);
  ck_assert(a != NULL && y != NULL);
  for (size_t i = 0; i < batch * 784; i++)
    a[i] = enc(in.data[i], f);
  size_t width = 784;
  for (size_t l = 0; l < 3; l++) {
    ref_gemm(a, batch, width, par[2 * l], par[2 * l + 1], sizes[l + 1], f, y);
    width = sizes[l + 1];
    if (l < 2)
      for (size_t i = 0; i < batch * width; i++)
        a[i] = relu_trunc(y[i], f);
  }
  double want[2 * 10];
  for (size_t i = 0; i < batch * 10; i++)
    want[i] = ldexp((double)y[i], -2 * (int)f);
  unsigned rd, re;
  plan_rounds(&g, batch, &rd, &re);
  ck_assert_uint_eq(rd, 4);
  ck_assert_uint_eq(re, 6);
  g.exact = 1;
  check_runs(&g, &w, batch, &in, want, batch * 10, 6);
  free(a);
  free(y);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* A small CNN (conv 3x3 pad 1 -> ReLU -> maxpool 2x2 -> Gemm): in exact mode
 * the max tree compares the untruncated products on all their bits, then the
 * pooled value is truncated exactly and the ReLU runs on it (s = 0):
 * relu(floor(max y / 2^f)) = max relu(floor(y / 2^f)), the reference. */
START_TEST(test_exact_cnn) {
  const unsigned f = 16;
  uint64_t seed = 99;
  mpc_graph_t g;
  mpc_weights_t w;
  harness_build_small_cnn(&g, &w, &seed);
  mpc_ftensor_t in;
  mpc_shape_t s = {4, {2, 1, 8, 8}};
  ck_assert_int_eq(mpc_ftensor_init(&in, &s), 0);
  harness_fill(&in, &seed, 0, 1);
  const mpc_ftensor_t *par[4]; /* cw cb fw fb */
  size_t np = 0;
  for (size_t i = 0; i < g.nnodes && np < 4; i++)
    if (g.nodes[i].op == MPC_OP_PARAM)
      par[np++] = &w.param[i];
  ck_assert_uint_eq(np, 4);
  /* conv: [2, 4, 8, 8] at scale 2f. */
  int64_t conv[2 * 4 * 64], pooled[2 * 64], out[2 * 3];
  for (size_t b = 0; b < 2; b++)
    for (size_t c = 0; c < 4; c++)
      for (int oy = 0; oy < 8; oy++)
        for (int ox = 0; ox < 8; ox++) {
          uint64_t acc = (uint64_t)enc(par[1]->data[c], f) << f;
          for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
              int iy = oy + ky - 1, ix = ox + kx - 1;
              if (iy < 0 || ix < 0 || iy >= 8 || ix >= 8)
                continue;
              acc += (uint64_t)enc(in.data[b * 64 + (size_t)(iy * 8 + ix)], f) *
                     (uint64_t)enc(par[0]->data[c * 9 + (size_t)(ky * 3 + kx)], f);
            }
          conv[(b * 4 + c) * 64 + (size_t)(oy * 8 + ox)] = (int64_t)acc;
        }
  /* maxpool 2x2 stride 2, then floor and ReLU: [2, 4, 4, 4] flattened to 64. */
  for (size_t b = 0; b < 2; b++)
    for (size_t c = 0; c < 4; c++)
      for (size_t py = 0; py < 4; py++)
        for (size_t px = 0; px < 4; px++) {
          const int64_t *p = conv + (b * 4 + c) * 64;
          int64_t m = p[(2 * py) * 8 + 2 * px];
          for (size_t d = 1; d < 4; d++) {
            int64_t v = p[(2 * py + d / 2) * 8 + 2 * px + d % 2];
            m = v > m ? v : m;
          }
          pooled[b * 64 + c * 16 + py * 4 + px] = relu_trunc(m, f);
        }
  ref_gemm(pooled, 2, 64, par[2], par[3], 3, f, out);
  double want[6];
  for (size_t i = 0; i < 6; i++)
    want[i] = ldexp((double)out[i], -2 * (int)f);
  /* Default: ReLU+trunc (1) + two max levels (2) + the opening (1); exact:
   * one more (the truncation before the ReLU). */
  unsigned rd, re;
  plan_rounds(&g, 2, &rd, &re);
  ck_assert_uint_eq(rd, 4);
  ck_assert_uint_eq(re, 5);
  g.exact = 1;
  check_runs(&g, &w, 2, &in, want, 6, 5);
  mpc_ftensor_close(&in);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

/* The plan of exact mode: a ReLU after a product becomes a truncation and a
 * ReLU without shift; a max level compares all bits (shift 0); default mode
 * keeps the fused gate and the shifted levels. */
START_TEST(test_exact_plan_gates) {
  uint64_t seed = 5;
  mpc_graph_t g;
  mpc_weights_t w;
  harness_build_small_cnn(&g, &w, &seed);
  for (int exact = 0; exact <= 1; exact++) {
    g.exact = exact;
    mpc_plan_t *p;
    ck_assert_int_eq(mpc_plan_new(&p, &g, 2, NULL, 0), 0);
    size_t fused = 0, trunc = 0, relu = 0, levels = 0;
    for (size_t i = 0; i < mpc_plan_ngates(p); i++) {
      mpc_gate_info_t gi;
      ck_assert_int_eq(mpc_plan_gate(p, i, &gi), 0);
      fused += strcmp(gi.kind, "relu+trunc") == 0;
      trunc += strcmp(gi.kind, "trunc") == 0;
      relu += strcmp(gi.kind, "relu") == 0;
      if (strcmp(gi.kind, "max-level") == 0) {
        levels++;
        /* Exact: the level's DCF takes the value's whole bound, f more bits. */
        ck_assert_uint_eq(gi.dcf_bits, exact ? gi.bound_bits : gi.bound_bits - 16);
      }
    }
    ck_assert_uint_eq(levels, 2);
    ck_assert_uint_eq(fused, exact ? 0 : 1);
    ck_assert_uint_eq(trunc, exact ? 1 : 0);
    ck_assert_uint_eq(relu, exact ? 1 : 0);
    mpc_plan_free(p);
  }
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
END_TEST

Suite *exact_suite(void) {
  Suite *s = suite_create("exact");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_exact_mlp);
  tcase_add_test(tc, test_exact_cnn);
  tcase_add_test(tc, test_exact_plan_gates);
  suite_add_tcase(s, tc);
  return s;
}
