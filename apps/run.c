/* run.c - `tandem run` and `tandem demo`: a throw-away cluster on loopback.
 *
 * Both make fresh keys and a config in a temporary directory, start P0, P1
 * and the dealer as separate processes (this binary, re-executed) on free
 * loopback ports, share a model as its owner and run queries as a client, then
 * stop the daemons and delete the directory. `run` does one inference on an
 * input file (or the plaintext evaluator with --plaintext); `demo` classifies
 * the Fashion-MNIST test set privately and compares with the plaintext model.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <sodium.h>

#include "apps.h"
#include "mpc_cluster.h"
#include "lcluster.h"

/* The preprocessing a demo batch is sized to by default (per party). */
#define DEMO_BATCH_BYTES ((size_t)128 << 20)

/* ---- tandem run -------------------------------------------------------------------- */

/* `tandem run`'s model and tensors, before any process starts: the model
 * imported (its INT64 inputs, shapes, axes and pads, are structure: the
 * import reads their files as constants; the others are the client's, loaded
 * into x, *nx of them, a rank-0 one as the [1] the model holds), the counts
 * checked against the model's, and the batch derived from the inputs the
 * model declares batched (0 when none is). *fixed: some input has a fixed
 * shape. 0, or 1 after one error line (g, w and x then closed). */
static int run_load(const char *model, const char *const *in, size_t nin, size_t nout,
                    mpc_graph_t *g, mpc_weights_t *w, mpc_ftensor_t *x, size_t *nx,
                    size_t *batch, int *fixed) {
  char err[1024];
  unsigned char bound[TANDEM_MAX_TENSORS];
  if (mpc_onnx_load_bound(model, in, nin, bound, g, w, err, sizeof err) != 0) {
    tandem_app_error("run", "%s", err);
    return 1;
  }
  const char *cin[TANDEM_MAX_TENSORS];
  size_t nbound = 0;
  for (size_t i = 0; i < nin; i++)
    if (bound[i])
      nbound++;
    else
      cin[i - nbound] = in[i];
  *nx = nin - nbound;
  if (tandem_tensors_load(cin, *nx, x, err, sizeof err) != 0) {
    mpc_weights_close(w);
    mpc_graph_close(g);
    tandem_app_error("run", "%s", err);
    return 1;
  }
  for (size_t i = 0; i < *nx; i++)
    if (x[i].shape.ndim == 0) {
      x[i].shape.ndim = 1;
      x[i].shape.dim[0] = 1;
    }
  size_t gin = 0, gout = 0;
  *fixed = 0;
  for (size_t i = 0; i < g->nnodes; i++) {
    gin += g->nodes[i].op == MPC_OP_INPUT;
    gout += g->nodes[i].op == MPC_OP_OUTPUT;
    *fixed |= g->nodes[i].op == MPC_OP_INPUT && !g->nodes[i].batched;
  }
  int rc = 0;
  if (gin != *nx || gout != nout) {
    tandem_app_error("run", "%s has %zu inputs and %zu outputs: give as many --input and "
                     "--output (got %zu and %zu)", model, gin + nbound, gout, nin, nout);
    rc = 1;
  } else if (mpc_inputs_encode_ids(g, x, *nx, err, sizeof err) != 0) {
    /* Token ids, checked and one-hot encoded here, before anything else. */
    tandem_app_error("run", "%s: %s", model, err);
    rc = 1;
  } else if (mpc_graph_batch(g, x, *nx, batch, err, sizeof err) != 0) {
    tandem_app_error("run", "%s: %s", model, err);
    rc = 1;
  }
  if (rc != 0) {
    tandem_tensors_close(x, *nx);
    mpc_weights_close(w);
    mpc_graph_close(g);
  }
  return rc;
}

/* The inputs' values against the model's safe range, as the client checks
 * them before it asks the dealer (cl_inputs_check, with the bound the owner
 * publishes when it shares the model): found here, a NaN or an input out of
 * range costs no cluster start (issue 12: `tandem run` started its three
 * daemons, 2-3 s, before the same check). 0, or 1 after one error line. */
static int run_check(const mpc_graph_t *g, const mpc_weights_t *w, const char *model,
                     const mpc_ftensor_t *x, size_t nx, size_t nout) {
  char err[1024];
  mpc_graph_t pub = *g;
  int8_t *mag = NULL;
  int rc = mpc_weights_bounds(g, w, g->input_bound, &pub.input_bound, &mag);
  free(mag);
  if (rc != 0) {
    tandem_app_error("run", "%s: %s", model,
                     rc != TANDEM_ERANGE ? tandem_strerror(rc)
                     : g->input_bound > 0 ? "the model's declared input range "
                                            "(tandem.input_bound) is more than its weights "
                                            "allow in the fixed-point range"
                                          : "the model's weights overflow the fixed-point "
                                            "range");
    return 1;
  }
  size_t rows;
  if (cl_inputs_check(&pub, model, x, nx, nout, &rows, err, sizeof err) != 0) {
    tandem_app_error("run", "%s", err);
    return 1;
  }
  return 0;
}

/* The error line of a model whose one row's preprocessing exceeds max_msg:
 * how large it is, and for which role. */
static void run_too_large(const mpc_graph_t *g, const mpc_weights_t *w, const char *model,
                          size_t max_msg) {
  mpc_plan_t *p;
  mpc_role_t role = MPC_P1;
  size_t need = 0;
  /* With the gates' widths the owner publishes, as the dealer sizes them. */
  mpc_graph_t pub = *g;
  int8_t *mag = NULL;
  if (mpc_weights_bounds(g, w, g->input_bound, &pub.input_bound, &mag) == 0) {
    pub.mag_log2 = mag;
    pub.nmag = g->nnodes;
  }
  if (mpc_plan_new(&p, &pub, 1, NULL, 0) == 0) {
    (void)cl_prep_fits(p, max_msg, &role, &need);
    mpc_plan_free(p);
  }
  free(mag);
  tandem_app_error("run", "%s: one row's preprocessing is %.2f GB for %s, over the largest "
                   "message (%.2f GB)", model, need / 1e9, mpc_role_name(role), max_msg / 1e9);
}

/* The rows of one query (*chunk) of a batch of `rows`, and the throw-away
 * cluster's config lines (*extra: TANDEM_MAX_MSG's smaller limit, a timeout
 * raised for a large query's preprocessing): a batch whose
 * preprocessing would not fit one message (the throw-away cluster keeps the
 * default, or that smaller limit) runs as several queries (the CNN's is about 100 MB per
 * image), as does one whose masked inputs would not fit the message a
 * client may send (token ids: V elements per id). A model whose one row
 * exceeds the default message gets a cluster with a larger one, where
 * memory allows (tandem_local_max_msg_for). 0, or 1 after one error
 * line (plaintext: only for a bad TANDEM_MAX_MSG). */
static int run_chunk(const mpc_graph_t *g, const mpc_weights_t *w, const char *model,
                     size_t rows, int fixed_inputs, int plaintext, char *extra, size_t extralen,
                     size_t *chunk) {
  size_t max_msg = NET_DEFAULT_MAX_MSG;
  const char *mm = getenv("TANDEM_MAX_MSG"); /* a smaller cluster limit, e.g. for tests */
  *chunk = 0;
  if (mm != NULL) {
    char *end;
    unsigned long long v = strtoull(mm, &end, 10);
    if (end == mm || *end != '\0' || v < 4096 || v > NET_DEFAULT_MAX_MSG) {
      tandem_app_error("run", "TANDEM_MAX_MSG=%s: want 4096..%zu bytes", mm,
                       (size_t)NET_DEFAULT_MAX_MSG);
      return 1;
    }
    max_msg = (size_t)v;
    snprintf(extra, extralen, "max_msg = %llu\n", v);
  }
  if (plaintext)
    return 0;
  /* One plan at batch 1 sizes a row for everything below. */
  mpc_plan_t *one = NULL;
  if (mpc_plan_new(&one, g, 1, NULL, 0) != 0) {
    *chunk = rows; /* the query itself will say what is wrong */
    return 0;
  }
  size_t fit = cl_batch_fit_plan(one, max_msg, rows);
  size_t in_fit = cl_input_fit(g, CL_CLIENT_MAX_MSG, rows);
  if (fit == 0 && mm == NULL) {
    /* One row over the default message: a larger one where this machine's
     * memory allows. */
    size_t raised = tandem_local_max_msg_for(one);
    if (raised > max_msg) {
      max_msg = raised;
      snprintf(extra, extralen, "max_msg = %zu\n", raised);
      fit = cl_batch_fit_plan(one, max_msg, rows);
    }
  }
  size_t per = mpc_plan_prep_bytes(one, MPC_P0) + mpc_plan_prep_bytes(one, MPC_P1) +
               mpc_plan_prep_bytes(one, MPC_CLIENT);
  mpc_plan_free(one);
  if (fit == 0) {
    run_too_large(g, w, model, max_msg);
    return 1;
  }
  if (in_fit == 0) {
    tandem_app_error("run", "%s: one row's masked inputs exceed the largest message a client "
                     "may send (%zu bytes)", model, (size_t)CL_CLIENT_MAX_MSG);
    return 1;
  }
  *chunk = in_fit < fit ? in_fit : fit;
  if (fixed_inputs && *chunk < rows) {
    tandem_app_error("run", "%s: a query of %zu rows exceeds the largest message, and the "
                     "model's inputs of fixed shape keep it from being split", model, rows);
    return 1;
  }
  /* A large query's preprocessing raises the throw-away cluster's timeout. */
  tandem_local_timeout_for(per * (*chunk < rows ? *chunk : rows), extra, extralen);
  return 0;
}

int tandem_run_main(int argc, char **argv) {
  static const char use[] = "usage: tandem run --model M.onnx --input X [--input X2 ...] "
                            "--output Y [--output Y2 ...] [--plaintext] [--exact] "
                            "[--stats FILE]";
  const char *model = NULL, *stats = NULL;
  const char *in[TANDEM_MAX_TENSORS], *out[TANDEM_MAX_TENSORS];
  size_t nin = 0, nout = 0;
  int plaintext = 0, exact = 0;
  const tandem_opt_t opts[] = {{"model", &model, NULL, NULL, 0},
                               {"input", in, NULL, &nin, TANDEM_MAX_TENSORS},
                               {"output", out, NULL, &nout, TANDEM_MAX_TENSORS},
                               {"stats", &stats, NULL, NULL, 0},
                               {"plaintext", NULL, &plaintext, NULL, 0},
                               {"exact", NULL, &exact, NULL, 0},
                               {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "Starts P0, P1 and the dealer on loopback with throw-away keys, shares the\n"
                       "model, runs one private inference and cleans up. --plaintext evaluates the\n"
                       "model in the clear instead (the reference). One --input per graph input\n"
                       "and one --output per graph output, in the graph's order. --exact shares\n"
                       "the model in exact mode: every truncation exact, the same output bit for\n"
                       "bit on every run, one more round per ReLU or max pool after a product.\n");
  if (rc >= 0)
    return rc;
  if (model == NULL || nout == 0) { /* no --input: a model without inputs */
    fprintf(stderr, "%s\n", use);
    return 2;
  }
  if (sodium_init() < 0)
    return 1;
  char err[1024];
  mpc_ftensor_t x[TANDEM_MAX_TENSORS], y[TANDEM_MAX_TENSORS];
  if (tandem_paths_writable(out, nout, err, sizeof err) != 0) {
    tandem_app_error("run", "%s", err);
    return 1;
  }
  mpc_graph_t g;
  mpc_weights_t w;
  size_t batch = 0;
  int fixed_inputs; /* an input of fixed shape: the query cannot be split */
  if (run_load(model, in, nin, nout, &g, &w, x, &nin, &batch, &fixed_inputs) != 0)
    return 1;
  g.exact = exact; /* published with the graph (cl_client_share_graph) */
  rc = plaintext ? 0 : run_check(&g, &w, model, x, nin, nout);
  if (plaintext) {
    if ((rc = mpc_eval_float(&g, &w, x, y)) != 0) {
      tandem_app_error("run", "%s: %s (input shape or values)", model, tandem_strerror(rc));
      rc = 1;
    } else {
      rc = tandem_tensors_save(out, nout, y, err, sizeof err) != 0;
      if (rc)
        tandem_app_error("run", "%s", err);
      tandem_tensors_close(y, nout);
    }
  }
  size_t rows = batch ? batch : 1, chunk = 0;
  char extra[128] = "";
  if (rc == 0)
    rc = run_chunk(&g, &w, model, rows, fixed_inputs, plaintext, extra, sizeof extra, &chunk);
  if (rc != 0 || plaintext) {
    mpc_weights_close(&w);
    mpc_graph_close(&g);
    tandem_tensors_close(x, nin);
    return rc;
  }
  tandem_signals();
  tandem_local_t c;
  if (tandem_local_start(&c, "run", extra[0] ? extra : NULL, err, sizeof err) != 0) {
    mpc_weights_close(&w);
    mpc_graph_close(&g);
    tandem_tensors_close(x, nin);
    tandem_app_error("run", "%s", err);
    return 1;
  }
  cl_client_t owner, client;
  cl_query_stats_t st;
  memset(&st, 0, sizeof st);
  rc = cl_client_open(&owner, &c.cfg, CL_OWNER, err, sizeof err);
  if (rc == 0) {
    /* The graph imported above (with its bound shape inputs), not the file. */
    rc = cl_client_share_graph(&owner, &g, &w, "model", CL_SHARE_REPLACE, err, sizeof err);
    cl_client_close(&owner);
  }
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  if (rc == 0 && (rc = cl_client_open(&client, &c.cfg, CL_CLIENT0, err, sizeof err)) == 0) {
    if (chunk < rows)
      fprintf(stderr, "tandem run: note: %zu rows in queries of at most %zu (one query's "
                      "preprocessing must fit one message)\n", rows, chunk);
    double t0 = cl_now();
    client.progress = tandem_rows_progress;
    client.progress_ctx = &t0;
    if (fixed_inputs)
      rc = cl_client_query(&client, "model", x, nin, y, nout, &st, err, sizeof err);
    else
      rc = cl_client_query_chunked(&client, "model", chunk, x, nin, y, nout, &st, err,
                                   sizeof err);
    if (rc == 0 && chunk < rows)
      fprintf(stderr, "tandem run: %zu rows in %zu queries, %.2f s\n", rows, st.queries,
              cl_now() - t0);
    cl_client_close(&client);
  }
  cl_query_stats_close(&st);
  if (rc != 0 && tandem_local_check(&c, err, sizeof err) != 0)
    rc = TANDEM_EIO;
  tandem_tensors_close(x, nin);
  if (rc != 0) {
    tandem_app_error("run", "%s", err);
    if (getenv("TANDEM_VERBOSE") != NULL || rc == TANDEM_EIO)
      tandem_local_logs(&c);
    tandem_local_stop(&c);
    return 1;
  }
  tandem_local_stop(&c);
  rc = tandem_tensors_save(out, nout, y, err, sizeof err);
  tandem_tensors_close(y, nout);
  if (rc != 0) {
    tandem_app_error("run", "%s", err);
    return 1;
  }
  if (stats != NULL && (rc = tandem_stats_write(stats, &st)) != 0) {
    tandem_app_error("run", "%s: %s", stats, tandem_strerror(rc));
    return 1;
  }
  return 0;
}

/* ---- tandem demo ----------------------------------------------------------------- */

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Reads a gzip'd IDX file of unsigned bytes: dims and data. */
static int idx_load(const char *path, unsigned want_dims, size_t *dims, uint8_t **data,
                    char *err, size_t errlen) {
  gzFile f = gzopen(path, "rb");
  if (f == NULL) {
    snprintf(err, errlen, "%s: cannot open (install dataset-fashion-mnist)", path);
    return TANDEM_ENOENT;
  }
  uint8_t hdr[4];
  size_t total = 1;
  int rc = 0;
  if (gzread(f, hdr, 4) != 4 || hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 ||
      hdr[3] != want_dims) {
    rc = TANDEM_EPARSE;
    goto out;
  }
  for (unsigned i = 0; i < want_dims; i++) {
    uint8_t b[4];
    if (gzread(f, b, 4) != 4) {
      rc = TANDEM_EPARSE;
      goto out;
    }
    dims[i] = (size_t)b[0] << 24 | (size_t)b[1] << 16 | (size_t)b[2] << 8 | b[3];
    if (dims[i] == 0 || dims[i] > 1000000) {
      rc = TANDEM_EPARSE;
      goto out;
    }
    total *= dims[i];
  }
  if (total > ((size_t)1 << 31) || (*data = malloc(total)) == NULL) {
    rc = TANDEM_ENOMEM;
    goto out;
  }
  if ((size_t)gzread(f, *data, (unsigned)total) != total) {
    free(*data);
    *data = NULL;
    rc = TANDEM_EPARSE;
  }
out:
  gzclose(f);
  if (rc == TANDEM_EPARSE)
    snprintf(err, errlen, "%s: not an IDX file of bytes with %u dimensions", path, want_dims);
  return rc;
}

static size_t argmax(const double *v, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (v[i] > v[best])
      best = i;
  return best;
}

/* A count option: 0 and *out set, or -1 for anything but a number in 1..max. */
static int parse_count(const char *v, size_t max, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long x = v[0] == '-' ? 0 : strtoull(v, &end, 10);
  if (v[0] == '-' || errno != 0 || *end != '\0' || x == 0 || x > max)
    return -1;
  *out = (size_t)x;
  return 0;
}

/* A logit error the demo counts the images over: issue 13's bound for the
 * ViT (the MLP's and CNN's are far below it). */
#define DEMO_LOGIT_TOL 0.05

/* What the demo counts over its batches. */
typedef struct {
  size_t agree, priv_ok, plain_ok, done, batches;
  size_t worst, over; /* the image of the largest logit error; images over DEMO_LOGIT_TOL */
  unsigned rounds;
  uint64_t on_bytes, off_bytes;
  double on_s, off_s, max_err;
} demo_tally_t;

/* One batch of b images from image `t->done` on: the private query and the
 * plaintext model, compared and counted in t. */
static int demo_batch(cl_client_t *client, const mpc_graph_t *g, const mpc_weights_t *w,
                      const mpc_shape_t *in_shape, const uint8_t *pix, const uint8_t *labels,
                      size_t b, demo_tally_t *t, char *err, size_t errlen) {
  mpc_shape_t s = *in_shape;
  s.dim[0] = b;
  mpc_ftensor_t x, y, ref[1];
  int rc;
  if ((rc = mpc_ftensor_init(&x, &s)) != 0)
    return rc;
  for (size_t i = 0; i < b * 784; i++)
    x.data[i] = pix[t->done * 784 + i] / 255.0;
  cl_query_stats_t st;
  rc = cl_client_query(client, "demo", &x, 1, &y, 1, &st, err, errlen);
  cl_query_stats_close(&st);
  if (rc == 0 && (rc = mpc_eval_float(g, w, &x, ref)) != 0) {
    snprintf(err, errlen, "plaintext evaluation failed: %s", tandem_strerror(rc));
    mpc_ftensor_close(&y);
  }
  mpc_ftensor_close(&x);
  if (rc != 0)
    return rc;
  size_t k = mpc_shape_numel(&y.shape) / b;
  for (size_t i = 0; i < b; i++) {
    size_t pp = argmax(y.data + i * k, k), pr = argmax(ref[0].data + i * k, k);
    t->agree += pp == pr;
    t->priv_ok += pp == labels[t->done + i];
    t->plain_ok += pr == labels[t->done + i];
    double ei = 0;
    for (size_t j = 0; j < k; j++) {
      double e = fabs(y.data[i * k + j] - ref[0].data[i * k + j]);
      ei = e > ei || isnan(e) ? e : ei;
    }
    if (!(ei <= t->max_err)) {
      t->max_err = ei;
      t->worst = t->done + i;
    }
    t->over += !(ei <= DEMO_LOGIT_TOL);
  }
  mpc_ftensor_close(&y);
  mpc_ftensor_close(&ref[0]);
  if (st.rounds > t->rounds)
    t->rounds = st.rounds;
  t->on_bytes += st.online_bytes[0] + st.online_bytes[1];
  t->off_bytes += st.offline_bytes[0] + st.offline_bytes[1] + st.client_offline;
  /* Online time as bench and --stats define it: the span from both parties
   * ready to the last share (the slower party's own time where the span is
   * not known, e.g. no clock stamps). */
  t->on_s += st.online_span_s > 0 && st.online_span_s <= st.online_s ? st.online_span_s
                                                                      : st.online_s;
  t->off_s += st.offline_s;
  t->done += b;
  t->batches++;
  return 0;
}

static void demo_report(const demo_tally_t *t, const char *model, size_t batch, int json,
                        double total_s, double t_share) {
  size_t done = t->done;
  double pa = (double)t->priv_ok / (double)done, pl = (double)t->plain_ok / (double)done;
  double ag = (double)t->agree / (double)done;
  if (json) {
    printf("{\"model\":\"%s\",\"images\":%zu,\"batch\":%zu,\"private_accuracy\":%.4f,"
           "\"plaintext_accuracy\":%.4f,\"agreement\":%.4f,\"max_logit_error\":%.6f,"
           "\"max_logit_error_image\":%zu,\"logit_tol\":%g,\"images_over_tol\":%zu,"
           "\"rounds_per_batch\":%u,\"online_bytes\":%llu,\"offline_bytes\":%llu,"
           "\"online_s\":%.3f,\"offline_s\":%.3f,\"total_s\":%.3f,\"share_s\":%.3f,"
           "\"s_per_image\":%.6f}\n",
           model, done, batch, pa, pl, ag, t->max_err, t->worst, DEMO_LOGIT_TOL, t->over, t->rounds,
           (unsigned long long)t->on_bytes, (unsigned long long)t->off_bytes, t->on_s,
           t->off_s, total_s, t_share, total_s / (double)done);
    return;
  }
  printf("images               %zu in %zu batches of %zu\n", done, t->batches, batch);
  printf("private accuracy     %.4f\n", pa);
  printf("plaintext accuracy   %.4f\n", pl);
  printf("agreement            %.4f (%zu of %zu predictions equal)\n", ag, t->agree, done);
  printf("max logit error      %.5f (image %zu; %zu of %zu images over %g)\n", t->max_err,
         t->worst, t->over, done, DEMO_LOGIT_TOL);
  printf("rounds per batch     %u (online, between P0 and P1)\n", t->rounds);
  printf("online bytes         %.2f MB sent by P0 and P1 together (%.1f KB per image)\n",
         t->on_bytes / 1e6, t->on_bytes / 1e3 / (double)done);
  printf("offline bytes        %.2f MB sent by the dealer (%.1f KB per image)\n",
         t->off_bytes / 1e6, t->off_bytes / 1e3 / (double)done);
  printf("time                 %.2f s total, %.2f ms per image (online %.2f s, offline "
         "%.2f s)\n",
         total_s, 1e3 * total_s / (double)done, t->on_s, t->off_s);
  printf("who learns what      the client: its images and the predictions; P0, P1: "
         "masked values only; the dealer: nothing but the model's shape\n");
}

int tandem_demo_main(int argc, char **argv) {
  static const char use[] = "usage: tandem demo [--model M.onnx] [--images N] [--batch B] [--json]";
  const char *model = NULL, *images_s = NULL, *batch_s = NULL;
  size_t images = 10000, batch = 0; /* 0: 100, or fewer where a batch's
                                        preprocessing would not fit a message */
  int json = 0;
  const tandem_opt_t opts[] = {{"model", &model, NULL, NULL, 0},    {"images", &images_s, NULL, NULL, 0},
                               {"batch", &batch_s, NULL, NULL, 0},  {"json", NULL, &json, NULL, 0},
                               {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "Classifies the Fashion-MNIST test set privately (P0, P1 and the dealer as\n"
                       "separate processes on loopback) and compares with the plaintext model.\n"
                       "Defaults: models/fashion_mlp.onnx, all 10,000 images, batches of 100 (or\n"
                       "as many as keep one batch's preprocessing near 128 MB a party).\n");
  if (rc >= 0)
    return rc;
  if (images_s != NULL && parse_count(images_s, SIZE_MAX, &images) != 0) {
    tandem_app_error("demo", "--images wants a positive number");
    return 2;
  }
  if (batch_s != NULL && parse_count(batch_s, 10000, &batch) != 0) {
    tandem_app_error("demo", "--batch wants a number in 1..10000");
    return 2;
  }
  char defmodel[4096];
  if (model == NULL) {
    /* models/fashion_mlp.onnx beside the source tree the binary was built from. */
    snprintf(defmodel, sizeof defmodel, "%s/models/fashion_mlp.onnx", TANDEM_SOURCE_DIR);
    model = defmodel;
  }
  if (sodium_init() < 0)
    return 1;
  char err[1024];
  size_t idims[3], ldims[1];
  uint8_t *pix = NULL, *labels = NULL;
  if (idx_load(FMNIST_DIR "/t10k-images-idx3-ubyte.gz", 3, idims, &pix, err, sizeof err) != 0 ||
      idx_load(FMNIST_DIR "/t10k-labels-idx1-ubyte.gz", 1, ldims, &labels, err, sizeof err) !=
          0) {
    free(pix);
    tandem_app_error("demo", "%s", err);
    return 1;
  }
  if (images > idims[0])
    images = idims[0];
  if (ldims[0] < images || idims[1] != 28 || idims[2] != 28) {
    free(pix);
    free(labels);
    tandem_app_error("demo", "unexpected Fashion-MNIST file shapes");
    return 1;
  }
  mpc_graph_t g;
  mpc_weights_t w;
  if (mpc_onnx_load(model, &g, &w, err, sizeof err) != 0) {
    free(pix);
    free(labels);
    tandem_app_error("demo", "%s", err);
    return 1;
  }
  if (batch == 0) {
    /* Batches whose preprocessing stays near 128 MB a party: larger ones
     * (up to the 1 GiB message) were slower per image on the 2-vCPU
     * machines, the kernel zeroing each fresh page of every copy
     * (2026-12-07, Zen 5, 240 CNN images: 28-30 ms an image at batches of
     * 4 to 16, 75 at 36; the ViT 152 ms at 1, 554 at 11). */
    batch = cl_batch_fit(&g, DEMO_BATCH_BYTES, 100);
    if (batch == 0)
      batch = 1; /* the dealer will say why it cannot */
  }
  /* The model's input shape decides the layout: [B,784] or [B,1,28,28]. */
  mpc_shape_t in_shape;
  memset(&in_shape, 0, sizeof in_shape);
  for (size_t i = 0; i < g.nnodes; i++)
    if (g.nodes[i].op == MPC_OP_INPUT) {
      in_shape = g.nodes[i].shape;
      break;
    }
  if (mpc_shape_numel(&in_shape) / (in_shape.dim[0] ? in_shape.dim[0] : 1) != 784) {
    tandem_app_error("demo", "%s: the input is not one 28x28 image per row", model);
    mpc_weights_close(&w);
    mpc_graph_close(&g);
    free(pix);
    free(labels);
    return 1;
  }
  tandem_signals();
  int tty = isatty(2) && !json;
  if (!json)
    fprintf(stderr, "tandem demo: %s on %zu Fashion-MNIST test images, batches of %zu\n",
            model, images, batch);
  tandem_local_t c;
  rc = tandem_local_start(&c, "demo", NULL, err, sizeof err);
  cl_client_t owner, client;
  double t_share0 = cl_now();
  if (rc == 0 && (rc = cl_client_open(&owner, &c.cfg, CL_OWNER, err, sizeof err)) == 0) {
    rc = cl_client_share_model(&owner, model, "demo", CL_SHARE_REPLACE, err, sizeof err);
    cl_client_close(&owner);
  }
  double t_share = cl_now() - t_share0;
  int client_open = 0;
  if (rc == 0 && (rc = cl_client_open(&client, &c.cfg, CL_CLIENT0, err, sizeof err)) == 0)
    client_open = 1;
  demo_tally_t t;
  memset(&t, 0, sizeof t);
  double t0 = cl_now();
  while (rc == 0 && t.done < images && !atomic_load(&tandem_stop)) {
    size_t b = images - t.done < batch ? images - t.done : batch;
    if ((rc = demo_batch(&client, &g, &w, &in_shape, pix, labels, b, &t, err, sizeof err)) != 0)
      break;
    if (!json)
      tandem_progress("images", t.done, images, cl_now() - t0);
  }
  double total_s = cl_now() - t0;
  if (tty && t.done < images)
    fputc('\n', stderr);
  if (rc == 0 && atomic_load(&tandem_stop)) {
    rc = TANDEM_EIO;
    snprintf(err, sizeof err, "interrupted");
  }
  if (client_open)
    cl_client_close(&client);
  if (rc != 0 && tandem_local_check(&c, err, sizeof err) != 0)
    tandem_local_logs(&c);
  tandem_local_stop(&c);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
  free(pix);
  free(labels);
  if (rc != 0) {
    tandem_app_error("demo", "%s", err);
    return 1;
  }
  demo_report(&t, model, batch, json, total_s, t_share);
  return 0;
}
