/* test_onnx_conformance.c - Check suite "onnx_conformance": the ONNX
 * project's backend node tests (Debian's libonnx-testdata) of every operator
 * the README claims, imported as `tandem run` does (INT64 shape inputs bound
 * at import, rank-0 inputs as [1], the batch from the declared dimensions),
 * run privately (owner, dealer, P0, P1 and client as threads over the
 * in-memory hub, tests/mpc/harness.c) and in the plaintext evaluator, and
 * compared with the expected outputs shipped with each test:
 *   plaintext |got - want| <= 1e-4 + 1e-4 |want|
 *   private   |got - want| <= 1e-2 + 1e-3 |want|   (f = 16 fixed point)
 * A case is a directory whose model has exactly one node of a claimed
 * operator. Every case not in `excluded` below must pass both ways; an
 * excluded case is still run and reported, never counted as a failure, and
 * the suite says when one starts passing (so that the list shrinks; with
 * TANDEM_CONF_VERBOSE set it prints why each other one fails). The
 * list, with its reasons, is also the README's. The figures are printed. If
 * the data directory is absent (libonnx-testdata not installed) the suite
 * says so and passes.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mpc.h"
#include "onnx.pb-c.h"
#include "proto_harness.h"

Suite *onnx_conformance_suite(void);

#define DATA_DIR "/usr/share/libonnx-testdata/data/node"
#define MAX_T 8

/* The operators the README claims. */
static const char *const claimed[] = {
    "Add",     "AveragePool", "BatchNormalization", "Constant", "Conv",      "Div",
    "Dropout", "Flatten",     "Gemm",               "GlobalAveragePool",    "Identity",
    "MatMul",  "MaxPool",     "Mul",                "Pad",      "Relu",      "Reshape",
    "Squeeze", "Sub",         "Transpose",          "Unsqueeze",
    /* Issue 11: the CNN architectures' operators. */
    "Concat",  "Split",       "Slice",              "Gather",   "Expand",    "Resize",
    "Upsample", "Sum",        "Mean",               "Max",      "Min",       "Clip",
    "LeakyRelu", "PRelu",     "HardSigmoid",        "HardSwish", "ReduceSum", "ReduceMean",
    "ReduceMax", "GlobalMaxPool", "Softmax",        "LogSoftmax", "ConvTranspose",

    /* smooth functions (gate_smooth.c) */
    "Sigmoid", "Tanh", "Exp", "Erf", "Reciprocal", "Sqrt", "Gelu", NULL};

typedef struct {
  const char *name;
  const char *why;
} excl_t;

/* Cases outside what Tandem supports, one reason each (README, operators). */
static const excl_t excluded[] = {
    {"test_div_uint8", "integer division (integers are computed as reals) by a computed value"},
    {"test_batchnorm_epsilon_training_mode", "training_mode=1 (inference only)"},
    {"test_batchnorm_example_training_mode", "training_mode=1 (inference only)"},
    {"test_training_dropout", "training_mode with a random mask (inference only)"},
    {"test_training_dropout_default", "training_mode with a random mask (inference only)"},
    {"test_training_dropout_default_mask", "training_mode with a random mask (inference only)"},
    {"test_training_dropout_mask", "training_mode with a random mask (inference only)"},
    {"test_identity_opt", "optional-typed input (not a tensor)"},
    {"test_identity_sequence", "sequence-typed input (not a tensor)"},
    {"test_maxpool_with_argmax_2d_precomputed_pads", "MaxPool's Indices output"},
    {"test_maxpool_with_argmax_2d_precomputed_strides", "MaxPool's Indices output (storage_order)"},
    {"test_reshape_allowzero_reordered", "empty tensors (a zero dimension)"},
    {"test_slice_start_out_of_bounds", "empty tensors (a zero dimension)"},
    {"test_split_zero_size_splits", "empty tensors (a zero dimension)"},
    {NULL, NULL}};

static const char *excluded_why(const char *name) {
  for (size_t i = 0; excluded[i].name != NULL; i++)
    if (strcmp(excluded[i].name, name) == 0)
      return excluded[i].why;
  return NULL;
}

/* 1 if dir/model.onnx has one node, of a claimed operator. */
static int is_case(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return 0;
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? 2 * cap : 65536;
      buf = realloc(buf, cap);
      ck_assert_ptr_nonnull(buf);
    }
    size_t r = fread(buf + len, 1, cap - len, f);
    len += r;
    if (r == 0)
      break;
  }
  fclose(f);
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
  free(buf);
  int ok = 0;
  if (m != NULL && m->graph != NULL && m->graph->n_node == 1)
    for (size_t i = 0; claimed[i] != NULL && !ok; i++)
      ok = strcmp(claimed[i], m->graph->node[0]->op_type) == 0;
  if (m != NULL)
    onnx__model_proto__free_unpacked(m, NULL);
  return ok;
}

/* The files dir/test_data_set_0/<stem>_<i>.pb, i = 0, 1, ... */
static size_t data_files(const char *dir, const char *stem, char paths[MAX_T][512]) {
  size_t n = 0;
  struct stat st;
  while (n < MAX_T) {
    snprintf(paths[n], sizeof paths[n], "%s/test_data_set_0/%s_%zu.pb", dir, stem, n);
    if (stat(paths[n], &st) != 0)
      break;
    n++;
  }
  return n;
}

/* got against want at |d| <= atol + rtol |want|; a rank-0 want matches a [1]. */
static int close_enough(const mpc_ftensor_t *got, const mpc_ftensor_t *want, double atol,
                        double rtol, char *why, size_t whylen) {
  size_t n = mpc_shape_numel(&want->shape);
  int same = got->shape.ndim == want->shape.ndim ||
             (want->shape.ndim == 0 && got->shape.ndim == 1 && got->shape.dim[0] == 1);
  for (unsigned d = 0; same && d < want->shape.ndim; d++)
    same = got->shape.dim[d] == want->shape.dim[d];
  if (!same || mpc_shape_numel(&got->shape) != n) {
    snprintf(why, whylen, "output shape differs");
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    double d = fabs(got->data[i] - want->data[i]);
    if (!(d <= atol + rtol * fabs(want->data[i]))) {
      snprintf(why, whylen, "element %zu: %g, want %g", i, got->data[i], want->data[i]);
      return 0;
    }
  }
  return 1;
}

/* Runs one case, privately or in plaintext: 1 if it passes, else 0 with
 * the reason in why. */
static int run_case(const char *dir, int priv, char *why, size_t whylen) {
  char ip[MAX_T][512], op[MAX_T][512], model[512], err[512];
  size_t nin = data_files(dir, "input", ip), nout = data_files(dir, "output", op);
  const char *paths[MAX_T];
  for (size_t i = 0; i < nin; i++)
    paths[i] = ip[i];
  snprintf(model, sizeof model, "%s/model.onnx", dir);
  unsigned char bound[MAX_T];
  mpc_graph_t g;
  mpc_weights_t w;
  int rc = mpc_onnx_load_bound(model, paths, nin, bound, &g, &w, err, sizeof err);
  if (rc != 0) {
    snprintf(why, whylen, "import: %s", err);
    return 0;
  }
  mpc_ftensor_t x[MAX_T], y[MAX_T], want;
  harness_result_t res;
  memset(&res, 0, sizeof res);
  size_t nx = 0, ny = 0, batch = 0;
  int ok = 0;
  for (size_t i = 0; i < nin; i++) {
    if (bound[i])
      continue;
    if ((rc = mpc_tensor_load(ip[i], &x[nx], err, sizeof err)) != 0) {
      snprintf(why, whylen, "input: %s", err);
      goto done;
    }
    if (x[nx].shape.ndim == 0) {
      x[nx].shape.ndim = 1;
      x[nx].shape.dim[0] = 1;
    }
    nx++;
  }
  if ((rc = mpc_graph_batch(&g, x, nx, &batch, err, sizeof err)) != 0) {
    snprintf(why, whylen, "inputs: %s", err);
    goto done;
  }
  if (priv) {
    char perr[512];
    mpc_plan_t *p;
    if ((rc = mpc_plan_new(&p, &g, batch, perr, sizeof perr)) != 0) {
      snprintf(why, whylen, "plan: %s", perr);
      goto done;
    }
    mpc_plan_free(p);
    rc = harness_run(&g, &w, batch, x, y, 1, NULL, NULL, &res);
  } else {
    rc = mpc_eval_float(&g, &w, x, y);
  }
  if (rc != 0) {
    snprintf(why, whylen, "%s run: %s", priv ? "private" : "plaintext", tandem_strerror(rc));
    for (int r = 0; priv && r < MPC_NROLES; r++)
      if (res.rc[r] != 0 && strlen(why) + 40 < whylen)
        snprintf(why + strlen(why), whylen - strlen(why), "; %s: %s", mpc_role_name((mpc_role_t)r),
                 tandem_err_name(res.rc[r]));
    goto done;
  }
  for (size_t i = 0; i < g.nnodes; i++)
    ny += g.nodes[i].op == MPC_OP_OUTPUT;
  ok = ny == nout;
  if (!ok)
    snprintf(why, whylen, "%zu outputs, want %zu", ny, nout);
  for (size_t o = 0; o < nout && ok; o++) {
    if (mpc_tensor_load(op[o], &want, err, sizeof err) != 0) {
      snprintf(why, whylen, "expected output: %s", err);
      ok = 0;
      break;
    }
    ok = close_enough(&y[o], &want, priv ? 1e-2 : 1e-4, priv ? 1e-3 : 1e-4, why, whylen);
    mpc_ftensor_close(&want);
  }
  for (size_t o = 0; o < ny; o++)
    mpc_ftensor_close(&y[o]);
done:
  for (size_t i = 0; i < nx; i++)
    mpc_ftensor_close(&x[i]);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  return ok;
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(test_backend_node_tests) {
  DIR *d = opendir(DATA_DIR);
  if (d == NULL) {
    fprintf(stderr, "onnx_conformance: %s absent (install libonnx-testdata): skipped\n",
            DATA_DIR);
    return;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strncmp(de->d_name, "test_", 5) != 0)
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 256;
      names = realloc(names, cap * sizeof *names);
      ck_assert_ptr_nonnull(names);
    }
    names[n++] = strdup(de->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof *names, name_cmp);
  size_t total = 0, pass[2] = {0, 0}, bad = 0, nexcl = 0;
  for (size_t i = 0; i < n; i++) {
    char dir[300], why[600];
    if (strlen(names[i]) > 200)
      continue;
    snprintf(dir, sizeof dir, "%s/%.200s", DATA_DIR, names[i]);
    if (!is_case(dir))
      continue;
    total++;
    const char *ex = excluded_why(names[i]);
    nexcl += ex != NULL;
    int ok[2];
    for (int priv = 0; priv <= 1; priv++) {
      ok[priv] = run_case(dir, priv, why, sizeof why);
      pass[priv] += (size_t)ok[priv];
      if (!ok[priv] && ex == NULL) {
        fprintf(stderr, "onnx_conformance: FAIL %s (%s): %s\n", names[i],
                priv ? "private" : "plaintext", why);
        bad++;
      }
    }
    if (ex != NULL && ok[0] && ok[1])
      fprintf(stderr, "onnx_conformance: note: excluded %s now passes\n", names[i]);
    if (ex != NULL && !(ok[0] && ok[1]) && getenv("TANDEM_CONF_VERBOSE") != NULL)
      fprintf(stderr, "onnx_conformance: excluded %s (%s%s): %s\n", names[i],
              ok[0] ? "" : "plaintext ", ok[1] ? "" : "private", why);
  }
  fprintf(stderr,
          "onnx_conformance: %zu backend node tests of claimed operators: private %zu/%zu, "
          "plaintext %zu/%zu pass (%zu excluded, listed in the README)\n",
          total, pass[1], total, pass[0], total, nexcl);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  ck_assert_msg(bad == 0, "%zu non-excluded runs failed (see stderr)", bad);
}
END_TEST

Suite *onnx_conformance_suite(void) {
  Suite *s = suite_create("onnx_conformance");
  TCase *tc = tcase_create("backend");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_backend_node_tests);
  suite_add_tcase(s, tc);
  return s;
}
