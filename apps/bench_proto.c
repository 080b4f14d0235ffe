/* bench_proto.c - the protocol workloads of `tandem bench`: a private matrix
 * product (--matmul MxKxN) and a model's inference (--model M.onnx --batch B),
 * each over real processes on loopback (P0, P1 and the dealer of a throw-away
 * cluster, lcluster.h), against the plaintext work measured in the same run.
 *
 * One workload: the model is shared once (setup), one query warms up, then
 * --reps queries are timed; the report gives the medians of the online phase
 * (the online time of the README and of `--stats`: from the moment both
 * parties hold the masked input and their preprocessing to the last output
 * share sent, from the parties' clocks: all run on this host) and of the slower party's offline phase, the online
 * rounds and bytes each party sends,
 * the dealer's bytes to each party, and the plaintext time of the same work:
 * the float evaluator (mpc_eval_float, or OpenBLAS dgemm for a matmul) and
 * the ring GEMMs of the plan's bilinear gates with kern_gemm. Every private
 * result is checked against the float reference before any time is printed.
 *
 * --link RTT_MS:GBPS (or lan, wan) projects the online time on that network
 * from what was measured: each online round adds a one-way delay (both
 * parties send at once) and its bytes at the link rate; the dealer's message
 * takes one delay and its bytes (ahead of the query: the dealer works ahead).
 * --emulate runs the same workload with net/'s per-link delay and rate limit
 * on every process of the cluster and measures it: the projection and the
 * measurement must agree within 20% (compared on the fastest query of each
 * run, which the other processes of a shared machine disturb least).
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "apps.h"
#include "daemon.h"
#include "mpc_cluster.h"
#include "kern.h"
#include "lcluster.h"

/* Debian's OpenBLAS cblas.h declares it; reference CBLAS headers do not. */
#ifndef OPENBLAS_VERSION
void openblas_set_num_threads(int n);
#endif

#define CMD "bench"
#define REPS_DEFAULT 5
#define REPS_MAX 1000
#define PLAIN_MIN_S 0.05 /* a plaintext baseline is timed for at least this long */

typedef struct {
  const char *name;
  double rtt_ms, gbps;
} netspec_t;

static const netspec_t named_nets[] = {{"lan", 0.3, 3.0}, {"wan", 40.0, 0.4}};

typedef struct {
  const char *matmul, *model, *mask, *link;
  size_t m, k, n, batch;
  int reps, by_gate, json, emulate, exact;
  netspec_t spec;
  int have_link;
  /* A batch whose preprocessing exceeds one message (max_msg: the cluster's,
   * NET_DEFAULT_MAX_MSG or TANDEM_MAX_MSG) runs as nq queries of at most
   * chunk rows, as `tandem run` does; nq = 1 otherwise. */
  size_t max_msg, chunk, nq;
  size_t prep_bytes; /* one query's dealer messages to P0, P1 and the client */
} popts_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, size_t n) {
  if (n == 0)
    return 0;
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int parse_netspec(const char *s, netspec_t *out) {
  for (size_t i = 0; i < sizeof named_nets / sizeof named_nets[0]; i++)
    if (strcmp(s, named_nets[i].name) == 0) {
      *out = named_nets[i];
      return 0;
    }
  char *end;
  double rtt = strtod(s, &end);
  if (end == s || *end != ':')
    return -1;
  const char *g = end + 1;
  double gbps = strtod(g, &end);
  if (end == g || *end != '\0' || !(rtt >= 0 && rtt <= 10000) || !(gbps > 0 && gbps <= 1000))
    return -1;
  out->name = s;
  out->rtt_ms = rtt;
  out->gbps = gbps;
  return 0;
}

static int parse_size(const char *s, size_t lo, size_t hi, size_t *out) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi)
    return -1;
  *out = (size_t)v;
  return 0;
}

static int parse_mkn(const char *s, size_t *m, size_t *k, size_t *n) {
  unsigned long long d[3];
  char tail;
  if (sscanf(s, "%llux%llux%llu%c", &d[0], &d[1], &d[2], &tail) != 3)
    return -1;
  for (int i = 0; i < 3; i++)
    if (d[i] < 1 || d[i] > 65536)
      return -1;
  *m = d[0];
  *k = d[1];
  *n = d[2];
  return 0;
}

/* ---- the workload's graph and data ------------------------------------------------ */

typedef struct {
  mpc_graph_t g;
  mpc_weights_t w;
  int have_w;
  mpc_ftensor_t in[TANDEM_MAX_TENSORS];
  size_t nin, nout;
  char title[160];
} work_t;

static void work_close(work_t *wk) {
  tandem_tensors_close(wk->in, wk->nin);
  if (wk->have_w)
    mpc_weights_close(&wk->w);
  mpc_graph_close(&wk->g);
}

/* Uniform values in [-1, 1) (benchmark data), from a generator seeded once
 * by libsodium: cheap, and no secret. */
static void fill_uniform(double *d, size_t n) {
  static uint64_t s;
  if (s == 0)
    randombytes_buf(&s, sizeof s);
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    d[i] = (double)(s >> 44) / (double)(1u << 19) - 1.0;
  }
}

static int build_matmul(const popts_t *o, work_t *wk, char *err, size_t errlen) {
  int fresh = strcmp(o->mask, "fresh") == 0;
  /* Every client input's first dimension is the query's batch: a fresh Y
   * is sent as Y^T (N x K, N = M) and transposed back (a local layout gate). */
  if (fresh && o->m != o->n) {
    snprintf(err, errlen, "--mask fresh needs M = N (Y travels as Y^T, batch-first like X)");
    return TANDEM_ESHAPE;
  }
  mpc_graph_init(&wk->g);
  size_t xd[2] = {o->m, o->k}, yd[2] = {o->k, o->n}, ytd[2] = {o->n, o->k};
  int x = mpc_graph_input(&wk->g, "X", 2, xd);
  int y = fresh ? mpc_graph_input(&wk->g, "Yt", 2, ytd) : mpc_graph_param(&wk->g, "W", 2, yd);
  if (fresh && y >= 0) {
    mpc_attr_t at;
    memset(&at, 0, sizeof at);
    at.alpha = at.beta = at.scalar = 1.0;
    at.perm[0] = 1;
    at.perm[1] = 0;
    y = mpc_graph_op(&wk->g, MPC_OP_TRANSPOSE, y, -1, -1, &at, "Y");
  }
  int z = x >= 0 && y >= 0 ? mpc_graph_op(&wk->g, MPC_OP_MATMUL, x, y, -1, NULL, "matmul") : -1;
  if (z < 0 || mpc_graph_op(&wk->g, MPC_OP_OUTPUT, z, -1, -1, NULL, "Z") < 0) {
    snprintf(err, errlen, "cannot build the matmul graph");
    mpc_graph_close(&wk->g);
    return TANDEM_ENOMEM;
  }
  int rc = mpc_weights_init(&wk->w, &wk->g);
  if (rc != 0) {
    mpc_graph_close(&wk->g);
    return rc;
  }
  wk->have_w = 1;
  if (!fresh)
    fill_uniform(wk->w.param[y].data, o->k * o->n);
  wk->nin = fresh ? 2 : 1;
  wk->nout = 1;
  mpc_shape_t xs = {2, {o->m, o->k}}, ys = {2, {o->n, o->k}};
  if ((rc = mpc_ftensor_init(&wk->in[0], &xs)) == 0 && fresh &&
      (rc = mpc_ftensor_init(&wk->in[1], &ys)) != 0)
    mpc_ftensor_close(&wk->in[0]);
  if (rc != 0) {
    wk->nin = 0;
    work_close(wk);
    return rc;
  }
  for (size_t i = 0; i < wk->nin; i++)
    fill_uniform(wk->in[i].data, mpc_shape_numel(&wk->in[i].shape));
  snprintf(wk->title, sizeof wk->title, "matmul %zux%zux%zu, %s", o->m, o->k, o->n,
           fresh ? "both operands fresh per query (client X and Y^T, matrix triple)"
                 : "X from the client, W from the owner (weight mask reused)");
  return 0;
}

/* 1 if the i-th INPUT node of g is token ids (one-hot along its last axis). */
static int input_is_ids(const mpc_graph_t *g, size_t i) {
  for (size_t k = 0; k < g->nnodes; k++)
    if (g->nodes[k].op == MPC_OP_INPUT && i-- == 0)
      return g->nodes[k].ids;
  return 0;
}

/* t (uniform in [0, 1]) into one-hot rows along its last axis, each row's 1
 * where its first element's value points. */
static void one_hot_rows(mpc_ftensor_t *t) {
  size_t V = t->shape.dim[t->shape.ndim - 1], n = mpc_shape_numel(&t->shape) / V;
  for (size_t r = 0; r < n; r++) {
    double *row = t->data + r * V;
    size_t id = (size_t)(row[0] * (double)V);
    memset(row, 0, V * sizeof *row);
    row[id < V ? id : V - 1] = 1.0;
  }
}

static int build_model(const popts_t *o, work_t *wk, char *err, size_t errlen) {
  int rc = mpc_onnx_load(o->model, &wk->g, &wk->w, err, errlen);
  if (rc != 0)
    return rc;
  wk->have_w = 1;
  wk->g.exact = o->exact; /* published with the graph: every role compiles it */
  /* The gates' widths as the owner publishes them (cli_share_graph), so the
   * per-gate table shows what the parties run. */
  if ((rc = mpc_graph_set_bounds(&wk->g, &wk->w)) != 0) {
    snprintf(err, errlen, "%s: cannot bound the model's values: %s", o->model,
             tandem_strerror(rc));
    work_close(wk);
    return rc;
  }
  mpc_plan_t *plan;
  if ((rc = mpc_plan_new(&plan, &wk->g, o->batch, err, errlen)) != 0) {
    work_close(wk);
    return rc;
  }
  wk->nin = 0;
  size_t nin = mpc_plan_ninputs(plan);
  wk->nout = mpc_plan_noutputs(plan);
  if (nin > TANDEM_MAX_TENSORS || wk->nout > TANDEM_MAX_TENSORS) {
    snprintf(err, errlen, "%s: more than %d inputs or outputs", o->model, TANDEM_MAX_TENSORS);
    rc = TANDEM_EUNSUPOP;
  }
  for (size_t i = 0; rc == 0 && i < nin; i++) {
    if ((rc = mpc_ftensor_init(&wk->in[i], mpc_plan_input_shape(plan, i))) != 0)
      break;
    wk->nin++;
    /* Images and activations of the test models lie in [0, 1]; token ids
     * are random ids, one-hot (what the client sends). */
    double *d = wk->in[i].data;
    size_t n = mpc_shape_numel(&wk->in[i].shape);
    fill_uniform(d, n);
    for (size_t j = 0; j < n; j++)
      d[j] = 0.5 * (d[j] + 1.0);
    if (input_is_ids(&wk->g, i))
      one_hot_rows(&wk->in[i]);
  }
  mpc_plan_free(plan);
  if (rc != 0) {
    work_close(wk);
    return rc;
  }
  snprintf(wk->title, sizeof wk->title, "model %s, batch %zu%s", o->model, o->batch,
           o->exact ? ", exact mode" : "");
  return 0;
}

/* ---- plaintext baselines ------------------------------------------------------------- */

typedef struct {
  size_t m, k, n;
  uint64_t *a, *b, *c;
  double *fa, *fb, *fc;
} gemm_buf_t;

/* Median seconds of fn(ctx) over repetitions lasting at least PLAIN_MIN_S
 * (at least 3), after one warm-up call. */
static int time_plain(int (*fn)(void *), void *ctx, double *sec) {
  int rc = fn(ctx);
  if (rc != 0)
    return rc;
  double t[64];
  size_t n = 0;
  double start = now_s();
  while (n < 64 && (n < 3 || now_s() - start < PLAIN_MIN_S)) {
    double t0 = now_s();
    if ((rc = fn(ctx)) != 0)
      return rc;
    t[n++] = now_s() - t0;
  }
  *sec = median(t, n);
  return 0;
}

static int op_ring(void *p) {
  gemm_buf_t *b = p;
  return kern_gemm(KERN_NOTRANS, KERN_NOTRANS, b->m, b->n, b->k, b->a, b->k, b->b, b->n, 0,
                   b->c, b->n);
}

static int op_dgemm(void *p) {
  gemm_buf_t *b = p;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b->m, (int)b->n, (int)b->k, 1.0,
              b->fa, (int)b->k, b->fb, (int)b->n, 0.0, b->fc, (int)b->n);
  return 0;
}

/* One ring GEMM (and, with dgemm set, one OpenBLAS dgemm) of m x k by k x n. */
static int time_gemm(size_t m, size_t k, size_t n, double *ring_s, double *dgemm_s) {
  gemm_buf_t b = {m, k, n, NULL, NULL, NULL, NULL, NULL, NULL};
  int rc = TANDEM_ENOMEM;
  b.a = calloc(m * k, 8);
  b.b = calloc(k * n, 8);
  b.c = calloc(m * n, 8);
  if (b.a == NULL || b.b == NULL || b.c == NULL)
    goto done;
  randombytes_buf(b.a, m * k * 8);
  randombytes_buf(b.b, k * n * 8);
  if ((rc = time_plain(op_ring, &b, ring_s)) != 0 || dgemm_s == NULL)
    goto done;
  rc = TANDEM_ENOMEM;
  b.fa = calloc(m * k, 8);
  b.fb = calloc(k * n, 8);
  b.fc = calloc(m * n, 8);
  if (b.fa == NULL || b.fb == NULL || b.fc == NULL)
    goto done;
  fill_uniform(b.fa, m * k);
  fill_uniform(b.fb, k * n);
  rc = time_plain(op_dgemm, &b, dgemm_s);
done:
  free(b.a), free(b.b), free(b.c), free(b.fa), free(b.fb), free(b.fc);
  return rc;
}

typedef struct {
  work_t *wk;
  mpc_ftensor_t out[TANDEM_MAX_TENSORS];
} float_ctx_t;

static int op_float(void *p) {
  float_ctx_t *f = p;
  int rc = mpc_eval_float(&f->wk->g, &f->wk->w, f->wk->in, f->out);
  if (rc == 0)
    tandem_tensors_close(f->out, f->wk->nout);
  return rc;
}

/* The dealer's work for one query, timed in this process: its messages go to
 * a transport that only counts them. */
static int null_send(mpc_transport_t *t, mpc_role_t to, const void *buf, size_t len) {
  (void)t, (void)to, (void)buf, (void)len;
  return 0;
}
static int null_recv(mpc_transport_t *t, mpc_role_t from, void *buf, size_t len) {
  (void)t, (void)from, (void)buf, (void)len;
  return TANDEM_EPROTO; /* the dealer never receives */
}
static int null_exchange(mpc_transport_t *t, mpc_role_t peer, const void *sbuf, size_t slen,
                         void *rbuf, size_t rlen) {
  (void)t, (void)peer, (void)sbuf, (void)slen, (void)rbuf, (void)rlen;
  return TANDEM_EPROTO;
}
static const mpc_transport_ops_t null_ops = {null_send, null_recv, null_exchange, NULL};

typedef struct {
  mpc_dealer_t *d;
  mpc_transport_t t;
} deal_ctx_t;

static int op_deal(void *p) {
  deal_ctx_t *c = p;
  return mpc_dealer_query(c->d, &c->t);
}

static int time_dealer(const mpc_plan_t *plan, double *sec) {
  deal_ctx_t c;
  memset(&c, 0, sizeof c);
  c.t.ops = &null_ops;
  c.t.self = MPC_DEALER;
  int rc = mpc_dealer_new(&c.d, plan);
  if (rc != 0)
    return rc;
  if ((rc = mpc_dealer_model(c.d, &c.t)) == 0)
    rc = time_plain(op_deal, &c, sec);
  mpc_dealer_free(c.d);
  return rc;
}

/* The dealer's generation for the whole batch: one query, or the nq queries
 * of a chunked batch (nq - 1 of chunk rows and the rest), each timed. */
static int time_dealer_batch(const popts_t *o, const work_t *wk, const mpc_plan_t *plan,
                             double *sec) {
  if (o->nq <= 1)
    return time_dealer(plan, sec);
  size_t last = o->batch - (o->nq - 1) * o->chunk;
  size_t sizes[2] = {o->chunk, last};
  double times[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    if (i == 1 && last == o->chunk) {
      times[1] = times[0];
      break;
    }
    mpc_plan_t *p;
    int rc = mpc_plan_new(&p, &wk->g, sizes[i], NULL, 0);
    if (rc == 0) {
      rc = time_dealer(p, &times[i]);
      mpc_plan_free(p);
    }
    if (rc != 0)
      return rc;
  }
  *sec = (double)(o->nq - 1) * times[0] + times[1];
  return 0;
}

/* ---- the private runs ----------------------------------------------------------------- */

typedef struct {
  unsigned rounds;
  uint64_t online_bytes[2], offline_bytes[2];
  double online_s, offline_s, setup_s, max_err;
  double online_min_s; /* the fastest query: the least disturbed by other work */
  double online_party_s; /* median of the slower party's own online time, which
                           includes waiting for the other party's offline work */
  double deal_s; /* the dealer's generation of one query, in this process */
  size_t ngates;
  double *gate_on, *gate_off; /* medians per gate */
} pres_t;

static void pres_close(pres_t *r) {
  free(r->gate_on);
  free(r->gate_off);
  memset(r, 0, sizeof *r);
}

/* The [cluster] lines that make every process of the cluster delay and
 * rate-limit its links like spec (net/'s emulation). */
static void emu_lines(const netspec_t *spec, char *buf, size_t len) {
  snprintf(buf, len, "emulate_delay_us = %.0f\nemulate_rate_bps = %.0f\n",
           spec->rtt_ms * 1e3 / 2, spec->gbps * 1e9 / 8);
}

/* gap_s: the pause between queries, so that the dealer's refill of its pool
 * after a query does not overlap the next query's online phase (on two cores
 * it would take one from a party). */
static int run_private(const popts_t *o, work_t *wk, const netspec_t *emu, double gap_s,
                       pres_t *res, char *err, size_t errlen) {
  memset(res, 0, sizeof *res);
  char extra[320] = "";
  if (emu != NULL)
    emu_lines(emu, extra, sizeof extra);
  size_t at = strlen(extra);
  if (o->max_msg != NET_DEFAULT_MAX_MSG)
    at += (size_t)snprintf(extra + at, sizeof extra - at, "max_msg = %zu\n", o->max_msg);
  /* The dealer keeps every query of a chunked batch ready (the gap between
   * batches lets it refill them all), so no chunk waits for a generation
   * running beside its online phase. */
  if (o->nq > 2 && at < sizeof extra)
    at += (size_t)snprintf(extra + at, sizeof extra - at, "pool = %zu\n",
                           o->nq < 64 ? o->nq : (size_t)64);
  /* A query waits for its preprocessing, made on demand for the warm-up and
   * sent through the secure channel: a large one raises the timeout. */
  tandem_local_timeout_for(o->prep_bytes, extra, sizeof extra);
  tandem_local_t c;
  int rc = tandem_local_start(&c, "bench", extra[0] ? extra : NULL, err, errlen);
  if (rc != 0)
    return rc;
  size_t reps = (size_t)o->reps;
  double *on = calloc(reps, sizeof *on), *off = calloc(reps, sizeof *off);
  double *onw = calloc(reps, sizeof *onw);
  double **gon = calloc(reps, sizeof *gon), **goff = calloc(reps, sizeof *goff);
  mpc_ftensor_t ref[TANDEM_MAX_TENSORS];
  int have_ref = 0, client_open = 0;
  cl_client_t owner, client;
  if (on == NULL || off == NULL || onw == NULL || gon == NULL || goff == NULL) {
    rc = TANDEM_ENOMEM;
    goto done;
  }
  if ((rc = mpc_eval_float(&wk->g, &wk->w, wk->in, ref)) != 0) {
    snprintf(err, errlen, "the plaintext evaluation failed: %s", tandem_strerror(rc));
    goto done;
  }
  have_ref = 1;
  if ((rc = cl_client_open(&owner, &c.cfg, CL_OWNER, err, errlen)) != 0)
    goto done;
  double t0 = now_s();
  rc = cl_client_share_graph(&owner, &wk->g, &wk->w, "bench", CL_SHARE_REPLACE, err, errlen);
  cl_client_close(&owner);
  if (rc != 0)
    goto done;
  res->setup_s = now_s() - t0;
  if ((rc = cl_client_open(&client, &c.cfg, CL_CLIENT0, err, errlen)) != 0)
    goto done;
  client_open = 1;
  double t_runs = now_s();
  for (size_t r = 0; r <= reps && !atomic_load(&tandem_stop); r++) {
    if (r > 0) /* the warm-up and r - 1 measured runs done */
      tandem_progress("runs", r, reps + 1, now_s() - t_runs);
    mpc_ftensor_t out[TANDEM_MAX_TENSORS];
    cl_query_stats_t st;
    struct timespec gap = {(time_t)gap_s, (long)((gap_s - (double)(time_t)gap_s) * 1e9)};
    nanosleep(&gap, NULL);
    rc = o->nq > 1 ? cl_client_query_chunked(&client, "bench", o->chunk, wk->in, wk->nin, out,
                                             wk->nout, &st, err, errlen)
                   : cl_client_query(&client, "bench", wk->in, wk->nin, out, wk->nout, &st, err,
                                     errlen);
    if (rc != 0) {
      cl_query_stats_close(&st);
      goto done;
    }
    for (size_t i = 0; i < wk->nout; i++) {
      size_t n = mpc_shape_numel(&out[i].shape);
      for (size_t j = 0; j < n; j++) {
        double e = fabs(out[i].data[j] - ref[i].data[j]);
        if (!(e <= res->max_err))
          res->max_err = e;
      }
    }
    tandem_tensors_close(out, wk->nout);
    if (r == 0) { /* the warm-up: counts only */
      res->rounds = st.rounds;
      for (int p = 0; p < 2; p++) {
        res->online_bytes[p] = st.online_bytes[p];
        res->offline_bytes[p] = st.offline_bytes[p];
      }
      res->ngates = st.ngates;
      cl_query_stats_close(&st);
      continue;
    }
    on[r - 1] = st.online_span_s;
    onw[r - 1] = st.online_s;
    off[r - 1] = st.offline_s;
    gon[r - 1] = st.gate_online_s;
    goff[r - 1] = st.gate_offline_s;
    st.gate_online_s = st.gate_offline_s = NULL;
    cl_query_stats_close(&st);
  }
  tandem_progress("runs", reps + 1, reps + 1, now_s() - t_runs);
  if (atomic_load(&tandem_stop)) {
    snprintf(err, errlen, "interrupted");
    rc = TANDEM_EIO;
    goto done;
  }
  res->online_party_s = median(onw, reps);
  res->online_s = median(on, reps); /* sorts on */
  res->online_min_s = on[0];
  res->offline_s = median(off, reps);
  res->gate_on = calloc(res->ngates + 1, sizeof(double));
  res->gate_off = calloc(res->ngates + 1, sizeof(double));
  if (res->gate_on == NULL || res->gate_off == NULL) {
    rc = TANDEM_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < res->ngates; i++) {
    size_t have = 0;
    for (size_t r = 0; r < reps; r++)
      if (gon[r] != NULL && goff[r] != NULL) {
        on[have] = gon[r][i];
        off[have++] = goff[r][i];
      }
    res->gate_on[i] = median(on, have);
    res->gate_off[i] = median(off, have);
  }
done:
  if (client_open)
    cl_client_close(&client);
  if (rc != 0 && tandem_local_check(&c, err, errlen) != 0)
    tandem_local_logs(&c);
  tandem_local_stop(&c);
  if (have_ref)
    tandem_tensors_close(ref, wk->nout);
  for (size_t r = 0; gon != NULL && goff != NULL && r < reps; r++) {
    free(gon[r]);
    free(goff[r]);
  }
  free(gon), free(goff), free(on), free(off), free(onw);
  if (rc != 0)
    pres_close(res);
  return rc;
}

/* ---- projection ---------------------------------------------------------------------- */

typedef struct {
  double online_s;  /* the loopback median plus net_s */
  double net_s;     /* what the network adds to the online phase */
  double offline_s; /* the dealer's message on that network: one delay and its bytes */
} proj_t;

/* The measured loopback times plus, per online round, one one-way delay and
 * the round's bytes at the link rate (the parties send at once, so a round
 * costs one way, not a round trip), and for the offline phase one delay and
 * the dealer's bytes to the party that gets more. */
static void project(const mpc_plan_t *plan, size_t nq, const pres_t *r, const netspec_t *spec,
                    proj_t *out) {
  /* A chunked batch: nq queries one after the other, each with the plan's
   * rounds (its delays nq times, the bytes of the whole batch once). */
  double d = (double)nq * spec->rtt_ms * 1e-3 / 2, rate = spec->gbps * 1e9 / 8;
  unsigned rounds = mpc_plan_rounds(plan);
  double on = r->online_s;
  for (unsigned k = 0; k < rounds; k++) {
    uint64_t bytes = 0;
    for (size_t i = 0; i < mpc_plan_ngates(plan); i++) {
      mpc_gate_info_t gi;
      if (mpc_plan_gate(plan, i, &gi) == 0 && gi.rounds && gi.round == k)
        bytes += gi.online_bytes;
    }
    on += d + (double)bytes / rate;
  }
  uint64_t prep = r->offline_bytes[0] > r->offline_bytes[1] ? r->offline_bytes[0]
                                                            : r->offline_bytes[1];
  out->online_s = on;
  out->net_s = on - r->online_s;
  out->offline_s = d + (double)prep / rate;
}

/* ---- output ------------------------------------------------------------------------- */

typedef struct {
  double float_s, ring_s, dgemm_s;
  double eval_s; /* mpc_eval_float, the reference evaluator (plain loops) */
  const char *float_what;
} plain_t;

/* s as a JSON string. */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

static void print_target(FILE *f, int json, const char *key, const char *what, int met) {
  if (json)
    fprintf(f, ",\"%s\":%s", key, met ? "true" : "false");
  else
    fprintf(f, "  target  %-44s %s\n", what, met ? "met" : "missed");
}

/* The workload's figures: JSON members or the human summary. */
static void print_summary(FILE *f, const popts_t *o, const work_t *wk, const pres_t *r,
                          const plain_t *pl) {
  int json = o->json;
  int is_mm = o->matmul != NULL;
  double ratio_ring = pl->ring_s > 0 ? r->online_s / pl->ring_s : NAN;
  double ratio_float = pl->float_s > 0 ? r->online_s / pl->float_s : NAN;
  if (json) {
    fprintf(f, "{\"workload\":\"%s\",", is_mm ? "matmul" : "model");
    if (is_mm)
      fprintf(f, "\"shape\":\"%zux%zux%zu\",\"mask\":\"%s\",", o->m, o->k, o->n, o->mask);
    else {
      fprintf(f, "\"model\":");
      json_str(f, o->model);
      fprintf(f, ",\"batch\":%zu,", o->batch);
    }
    fprintf(f,
            "\"rounds\":%u,\"queries\":%zu,\"rows_per_query\":%zu,"
            "\"online_bytes\":{\"p0\":%llu,\"p1\":%llu},"
            "\"offline_bytes\":{\"p0\":%llu,\"p1\":%llu},\"online_s\":%.6g,"
            "\"offline_s\":%.6g,\"online_party_s\":%.6g,\"setup_s\":%.6g,"
            "\"dealer_gen_s\":%.6g,\"reps\":%d,\"stat\":\"median\","
            "\"max_abs_error\":%.3g,\"plaintext_float_s\":%.6g,\"plaintext_float\":\"%s\","
            "\"plaintext_ring_gemm_s\":%.6g,\"online_vs_ring_gemm\":%.4g,"
            "\"online_vs_float\":%.4g,\"kernel\":\"%s\",\"threads\":%d",
            r->rounds, o->nq, o->chunk, (unsigned long long)r->online_bytes[0],
            (unsigned long long)r->online_bytes[1], (unsigned long long)r->offline_bytes[0],
            (unsigned long long)r->offline_bytes[1], r->online_s, r->offline_s, r->online_party_s,
            r->setup_s, r->deal_s, o->reps, r->max_err, pl->float_s, pl->float_what, pl->ring_s,
            ratio_ring,
            ratio_float, kern_isa_name(kern_isa_active()), kern_threads());
    fprintf(f, ",\"plaintext_dgemm_s\":%.6g,\"plaintext_eval_s\":%.6g", pl->dgemm_s,
            pl->eval_s);
  } else {
    fprintf(f, "%s\n", wk->title);
    fprintf(f, "  rounds          %u online, between P0 and P1%s\n", r->rounds,
            o->nq > 1 ? ", per query" : "");
    if (o->nq > 1)
      fprintf(f, "  queries         %zu of at most %zu rows, one after the other (one query's "
                 "preprocessing must fit one message of %.2f GB); the bytes and times below "
                 "are their sums\n", o->nq, o->chunk, o->max_msg / 1e9);
    fprintf(f, "  online bytes    P0 %llu, P1 %llu (to the other party and the client)\n",
            (unsigned long long)r->online_bytes[0], (unsigned long long)r->online_bytes[1]);
    fprintf(f, "  offline bytes   P0 %llu, P1 %llu (from the dealer)\n",
            (unsigned long long)r->offline_bytes[0], (unsigned long long)r->offline_bytes[1]);
    fprintf(f, "  online          %.3f ms (median of %d, loopback; from both parties holding "
               "the masked input and their preprocessing to the last output share sent)\n",
            1e3 * r->online_s, o->reps);
    fprintf(f, "  online (party)  %.3f ms, the slower party's own online time (from its "
               "masked input's arrival, with its wait for the other party)\n",
            1e3 * r->online_party_s);
    fprintf(f, "  offline         %.3f ms (median; the dealer's message received and "
               "prepared)\n", 1e3 * r->offline_s);
    fprintf(f, "  setup           %.3f ms (sharing the model, once)\n", 1e3 * r->setup_s);
    fprintf(f, "  dealer          %.3f ms to generate one query's preprocessing (%.2fx the "
               "online phase)\n", 1e3 * r->deal_s, r->online_s > 0 ? r->deal_s / r->online_s : 0);
    fprintf(f, "  max |error|     %.3g against the float evaluator\n", r->max_err);
    fprintf(f, "  plaintext       %.3f ms %s; %.3f ms ring GEMM of the linear layers "
               "(kern_gemm, %s), %d thread(s) as each party\n",
            1e3 * pl->float_s, pl->float_what, 1e3 * pl->ring_s,
            kern_isa_name(kern_isa_active()), kern_threads());
    fprintf(f, "                  %.3f ms Tandem's float evaluator (plain loops, the "
               "reference)\n", 1e3 * pl->eval_s);
    fprintf(f, "  ratios          online / ring GEMM %.2f, online / float %.2f\n", ratio_ring,
            ratio_float);
  }
}

/* The targets of the issues that asked for this benchmark (met or missed). */
static void print_targets(FILE *f, const popts_t *o, const mpc_plan_t *plan, const pres_t *r,
                          const plain_t *pl) {
  int json = o->json;
  int is_mm = o->matmul != NULL;
  double ratio_ring = pl->ring_s > 0 ? r->online_s / pl->ring_s : NAN;
  double ratio_float = pl->float_s > 0 ? r->online_s / pl->float_s : NAN;
  if (is_mm && o->m == 512 && o->k == 512 && o->n == 512) {
    int fresh = strcmp(o->mask, "fresh") == 0;
    print_target(f, json, "target_met",
                 fresh ? "online <= 2.5x one ring GEMM (both fresh)"
                       : "online <= 1.3x one ring GEMM (reused mask)",
                 ratio_ring <= (fresh ? 2.5 : 1.3));
  }
  if (!is_mm && strstr(o->model, "fashion_mlp") != NULL) {
    print_target(f, json, "target_rounds_met", "at most 4 rounds", r->rounds <= 4);
    if (o->batch == 1) {
      uint64_t mx = r->online_bytes[0] > r->online_bytes[1] ? r->online_bytes[0]
                                                            : r->online_bytes[1];
      print_target(f, json, "target_bytes_met", "at most 8 KiB online per party",
                   mx <= 8192);
      print_target(f, json, "target_time_met", "online under 1 ms", r->online_s < 1e-3);
    } else if (o->batch == 100) {
      print_target(f, json, "target_time_met", "online under 10 ms", r->online_s < 10e-3);
      print_target(f, json, "target_float_met", "online within 20x of float",
                   ratio_float <= 20);
    }
    /* The FSS gate issue's targets (issue 10). */
    double kmax = 0;
    for (size_t i = 0; i < mpc_plan_ngates(plan); i++) {
      mpc_gate_info_t gi;
      if (mpc_plan_gate(plan, i, &gi) == 0 && gi.compared && strncmp(gi.kind, "relu", 4) == 0)
        kmax = fmax(kmax, (double)gi.key_bytes / (double)gi.compared);
    }
    print_target(f, json, "target_relu_key_met", "ReLU keys <= 700 B per element and party",
                 kmax <= 700);
    print_target(f, json, "target_dealer_met", "dealer generation <= online phase",
                 r->deal_s <= r->online_s);
    if (o->batch == 1)
      print_target(f, json, "target_fss_time_met", "online under 0.5 ms", r->online_s < 0.5e-3);
    else if (o->batch == 100)
      print_target(f, json, "target_fss_float_met", "online within 10x of float",
                   ratio_float <= 10);
  }
}

/* The network projection and, with --emulate, its check. */
static void print_link(FILE *f, const popts_t *o, const pres_t *r, const proj_t *proj,
                      const pres_t *emu) {
  int json = o->json;
  {
    if (json)
      fprintf(f, ",\"link\":{\"name\":\"%s\",\"rtt_ms\":%g,\"gbps\":%g,"
                 "\"projected_online_s\":%.6g,\"projected_dealer_transfer_s\":%.6g",
              o->spec.name, o->spec.rtt_ms, o->spec.gbps, proj->online_s, proj->offline_s);
    else
      fprintf(f, "  on %s (RTT %g ms, %g Gbps): projected online %.3f ms, the dealer's "
                 "message %.3f ms (a projection from the loopback figures)\n",
              o->spec.name, o->spec.rtt_ms, o->spec.gbps, 1e3 * proj->online_s,
              1e3 * proj->offline_s);
    if (emu != NULL) {
      /* Compared on the fastest query of each run: on a shared machine the
       * other processes only ever add time, and the medians of two short
       * runs differ by that noise more than by the network. */
      double want = r->online_min_s + proj->net_s;
      double dev = fabs(emu->online_min_s - want) / want;
      if (json)
        fprintf(f, ",\"emulated_online_s\":%.6g,\"emulated_online_min_s\":%.6g,"
                   "\"projected_online_min_s\":%.6g,\"emulated_offline_s\":%.6g,"
                   "\"projection_error\":%.4g,\"agree_within_20pct\":%s",
                emu->online_s, emu->online_min_s, want, emu->offline_s, dev,
                dev <= 0.2 ? "true" : "false");
      else
        fprintf(f, "  emulated        online %.3f ms (median; fastest %.3f ms against %.3f ms "
                   "projected), offline %.3f ms (net/ delay and rate limit on every link); "
                   "projection off by %.1f%% (%s 20%%)\n",
                1e3 * emu->online_s, 1e3 * emu->online_min_s, 1e3 * want,
                1e3 * emu->offline_s, 100 * dev, dev <= 0.2 ? "within" : "beyond");
    }
    if (json)
      fputc('}', f);
  }
}

/* The group of a gate's label for --by-gate's summary by layer: its first
 * two path components ("/layers.0/ln1/Mul" -> "/layers.0"), else the label's
 * first component or "(unlabelled)"; written to out. */
static void layer_of(const char *label, char *out, size_t outlen) {
  if (label == NULL || label[0] == '\0') {
    snprintf(out, outlen, "(unlabelled)");
    return;
  }
  const char *a = strchr(label + 1, '/');
  int len = a != NULL ? (int)(a - label) : (int)strlen(label);
  snprintf(out, outlen, "%.*s", len > 40 ? 40 : len, label);
}

typedef struct {
  char name[48];
  size_t gates;
  unsigned rounds;       /* distinct rounds its gates send in */
  uint64_t online, prep; /* bytes: to the other party; from the dealer (P0 + P1) */
  unsigned char *seen;   /* rounds seen, one byte each */
} gsum_t;

/* Adds gate gi to the row named name of sums (appending it), nrounds the
 * plan's. 0, or TANDEM_ENOMEM. */
static int gsum_add(gsum_t **sums, size_t *n, const char *name, const mpc_gate_info_t *gi,
                    unsigned nrounds) {
  size_t i = 0;
  while (i < *n && strcmp((*sums)[i].name, name) != 0)
    i++;
  if (i == *n) {
    gsum_t *t = realloc(*sums, (*n + 1) * sizeof *t);
    if (t == NULL)
      return TANDEM_ENOMEM;
    *sums = t;
    memset(&t[i], 0, sizeof t[i]);
    snprintf(t[i].name, sizeof t[i].name, "%s", name);
    if ((t[i].seen = calloc(nrounds + 1, 1)) == NULL)
      return TANDEM_ENOMEM;
    (*n)++;
  }
  gsum_t *g = &(*sums)[i];
  g->gates++;
  g->online += gi->online_bytes;
  g->prep += gi->prep_bytes[0] + gi->prep_bytes[1];
  if (gi->rounds > 0 && gi->round <= nrounds && !g->seen[gi->round]) {
    g->seen[gi->round] = 1;
    g->rounds++;
  }
  return 0;
}

/* --by-gate's totals by gate kind and by layer (text only). */
static void print_gate_sums(FILE *f, const mpc_plan_t *plan) {
  unsigned nrounds = 0;
  for (size_t i = 0; i < mpc_plan_ngates(plan); i++) {
    mpc_gate_info_t gi;
    if (mpc_plan_gate(plan, i, &gi) == 0 && gi.rounds > 0 && gi.round + 1 > nrounds)
      nrounds = gi.round + 1;
  }
  gsum_t *sums[2] = {NULL, NULL};
  size_t n[2] = {0, 0};
  int rc = 0;
  for (size_t i = 0; i < mpc_plan_ngates(plan) && rc == 0; i++) {
    mpc_gate_info_t gi;
    char layer[48];
    if (mpc_plan_gate(plan, i, &gi) != 0)
      continue;
    layer_of(gi.label, layer, sizeof layer);
    rc = gsum_add(&sums[0], &n[0], gi.kind, &gi, nrounds);
    if (rc == 0)
      rc = gsum_add(&sums[1], &n[1], layer, &gi, nrounds);
  }
  static const char *const head[2] = {"by gate kind", "by layer (label prefix)"};
  for (int t = 0; t < 2 && rc == 0; t++) {
    fprintf(f, "  %-38s %6s %6s %14s %16s\n", head[t], "gates", "rounds", "online bytes",
            "dealer bytes");
    for (size_t i = 0; i < n[t]; i++)
      fprintf(f, "  %-38.38s %6zu %6u %14llu %16llu\n", sums[t][i].name, sums[t][i].gates,
              sums[t][i].rounds, (unsigned long long)sums[t][i].online,
              (unsigned long long)sums[t][i].prep);
  }
  if (rc != 0)
    fprintf(f, "  (no summary: out of memory)\n");
  for (int t = 0; t < 2; t++) {
    for (size_t i = 0; i < n[t]; i++)
      free(sums[t][i].seen);
    free(sums[t]);
  }
}

/* --by-gate: one row (or JSON object) per gate of the plan; in text, then
 * the totals by gate kind and by layer (rounds: the distinct rounds the
 * group's gates send in; online bytes one party's, to the other; dealer
 * bytes P0's and P1's together). */
static void print_gates(FILE *f, const popts_t *o, const mpc_plan_t *plan, const pres_t *r) {
  int json = o->json;
  {
    if (json)
      fprintf(f, ",\"gates\":[");
    else
      fprintf(f, "  %-4s %-11s %-28s %10s %6s %10s %10s %10s %5s %9s %12s\n", "gate", "kind",
              "label", "elements", "rounds", "bytes", "online ms", "offline ms", "bits",
              "key B/el", "dealer B");
    for (size_t i = 0; i < mpc_plan_ngates(plan); i++) {
      mpc_gate_info_t gi;
      if (mpc_plan_gate(plan, i, &gi) != 0)
        continue;
      double gon = i < r->ngates && r->gate_on ? r->gate_on[i] : 0;
      double goff = i < r->ngates && r->gate_off ? r->gate_off[i] : 0;
      if (json) {
        fprintf(f, "%s{\"gate\":%zu,\"kind\":\"%s\",\"label\":", i ? "," : "", i, gi.kind);
        json_str(f, gi.label);
        fprintf(f, ",\"elements\":%zu,\"rounds\":%u,\"online_bytes\":%llu,"
                   "\"online_ms\":%.4g,\"offline_ms\":%.4g,\"bound_bits\":%u,"
                   "\"dcf_bits\":%u,\"key_bytes_per_element\":%.1f,\"dealer_bytes\":[%llu,%llu]}",
                gi.n, gi.rounds, (unsigned long long)gi.online_bytes, 1e3 * gon, 1e3 * goff,
                gi.bound_bits, gi.dcf_bits,
                gi.compared ? (double)gi.key_bytes / (double)gi.compared : 0.0,
                (unsigned long long)gi.prep_bytes[0], (unsigned long long)gi.prep_bytes[1]);
      } else {
        char bits[16] = "", kb[24] = "";
        if (gi.compared) {
          snprintf(bits, sizeof bits, "%u", gi.dcf_bits);
          snprintf(kb, sizeof kb, "%.0f", (double)gi.key_bytes / (double)gi.compared);
        }
        fprintf(f, "  %-4zu %-11s %-28.28s %10zu %6u %10llu %10.3f %10.3f %5s %9s %12llu\n", i,
                gi.kind, gi.label, gi.n, gi.rounds, (unsigned long long)gi.online_bytes,
                1e3 * gon, 1e3 * goff, bits, kb,
                (unsigned long long)(gi.prep_bytes[0] + gi.prep_bytes[1]));
      }
    }
    if (json)
      fputc(']', f);
    else
      print_gate_sums(f, plan);
  }
}

/* A plan's rounds, inter-party online bytes per party and dealer bytes to
 * P0 and P1 (what it sends, whatever the machine). */
static void plan_figures(FILE *f, int json, const char *what, const mpc_plan_t *p) {
  uint64_t on = 0;
  for (size_t i = 0; i < mpc_plan_ngates(p); i++) {
    mpc_gate_info_t gi;
    if (mpc_plan_gate(p, i, &gi) == 0)
      on += gi.online_bytes;
  }
  size_t d0 = mpc_plan_prep_bytes(p, MPC_P0), d1 = mpc_plan_prep_bytes(p, MPC_P1);
  if (json)
    fprintf(f, ",\"%s\":{\"rounds\":%u,\"party_bytes\":%llu,\"dealer_bytes\":{\"p0\":%zu,"
               "\"p1\":%zu}}", what, mpc_plan_rounds(p), (unsigned long long)on, d0, d1);
  else
    fprintf(f, "  %-15s %u rounds, %llu bytes each party sends the other, dealer bytes P0 "
               "%zu, P1 %zu (from its plan)\n", what, mpc_plan_rounds(p),
            (unsigned long long)on, d0, d1);
}

/* --exact: the figures of both modes of the same model and batch. */
static void print_modes(FILE *f, const popts_t *o, const work_t *wk, const mpc_plan_t *plan) {
  mpc_graph_t other = wk->g; /* a shallow copy: only the mode differs */
  other.exact = !wk->g.exact;
  mpc_plan_t *p2 = NULL;
  char err[256];
  plan_figures(f, o->json, wk->g.exact ? "exact_mode" : "default_mode", plan);
  if (mpc_plan_new(&p2, &other, o->batch, err, sizeof err) == 0)
    plan_figures(f, o->json, other.exact ? "exact_mode" : "default_mode", p2);
  mpc_plan_free(p2);
}

static void print_report(const popts_t *o, const work_t *wk, const mpc_plan_t *plan,
                         const pres_t *r, const plain_t *pl, const proj_t *proj,
                         const pres_t *emu) {
  FILE *f = stdout;
  print_summary(f, o, wk, r, pl);
  print_targets(f, o, plan, r, pl);
  if (o->exact)
    print_modes(f, o, wk, plan);
  if (proj != NULL)
    print_link(f, o, r, proj, emu);
  if (o->by_gate)
    print_gates(f, o, plan, r);
  if (o->json)
    fprintf(f, "}\n");
}

static size_t prep_total(const mpc_plan_t *p) {
  return mpc_plan_prep_bytes(p, MPC_P0) + mpc_plan_prep_bytes(p, MPC_P1) +
         mpc_plan_prep_bytes(p, MPC_CLIENT);
}

/* The queries a batch runs as. What the cluster's dealer would refuse is
 * refused here, before this process makes that much preprocessing itself:
 * a matmul (one query), or a model whose one row exceeds the message. A
 * model's larger batch is split into the fewest queries that fit, of equal
 * rows (the last may have fewer): what `tandem run` and `demo` do, and what
 * any client of a cluster with that max_msg must do. */
static int choose_chunks(popts_t *o, const work_t *wk, const mpc_plan_t *plan, char *err,
                         size_t errlen) {
  mpc_role_t big;
  size_t need;
  o->nq = 1;
  o->chunk = o->batch;
  o->prep_bytes = prep_total(plan);
  if (cl_prep_fits(plan, o->max_msg, &big, &need))
    return 0;
  size_t fit = o->matmul != NULL ? 0 : cl_batch_fit(&wk->g, o->max_msg, o->batch);
  while (fit > 0) {
    o->nq = (o->batch + fit - 1) / fit;
    o->chunk = (o->batch + o->nq - 1) / o->nq;
    mpc_plan_t *p;
    int rc = mpc_plan_new(&p, &wk->g, o->chunk, err, errlen);
    if (rc != 0)
      return rc;
    int fits = cl_prep_fits(p, o->max_msg, &big, &need);
    o->prep_bytes = prep_total(p);
    mpc_plan_free(p);
    if (fits)
      return 0;
    fit = o->chunk - 1; /* the per-row estimate was short: one row fewer */
  }
  /* One row over the default message: the throw-away cluster takes a
   * larger one where this machine's memory allows (TANDEM_MAX_MSG, a
   * smaller limit for tests, keeps its own). */
  if (o->matmul == NULL && o->max_msg == NET_DEFAULT_MAX_MSG && getenv("TANDEM_MAX_MSG") == NULL) {
    mpc_plan_t *p1 = NULL;
    size_t raised = 0;
    if (o->batch == 1 || mpc_plan_new(&p1, &wk->g, 1, NULL, 0) == 0)
      raised = tandem_local_max_msg_for(o->batch == 1 ? plan : p1);
    mpc_plan_free(p1);
    if (raised > o->max_msg) {
      o->max_msg = raised;
      return choose_chunks(o, wk, plan, err, errlen);
    }
  }
  snprintf(err, errlen,
           "one query's preprocessing is %.2f GB for %s, over the largest message "
           "(%.2f GB)%s", need / 1e9, mpc_role_name(big), o->max_msg / 1e9,
           o->matmul != NULL ? ": use a smaller shape" : ", even for one row");
  return TANDEM_EINVAL;
}

/* The cluster's max_msg: NET_DEFAULT_MAX_MSG, or TANDEM_MAX_MSG (a smaller
 * limit for tests, as `tandem run` takes it). */
static int max_msg_env(size_t *out) {
  *out = NET_DEFAULT_MAX_MSG;
  const char *mm = getenv("TANDEM_MAX_MSG");
  if (mm == NULL)
    return 0;
  char *end;
  unsigned long long v = strtoull(mm, &end, 10);
  if (end == mm || *end != '\0' || mm[0] == '-' || v < 4096 || v > NET_DEFAULT_MAX_MSG) {
    tandem_app_error(CMD, "TANDEM_MAX_MSG=%s: want 4096..%zu bytes", mm,
                     (size_t)NET_DEFAULT_MAX_MSG);
    return -1;
  }
  *out = (size_t)v;
  return 0;
}

/* The plaintext baselines of the same work, timed first on an idle machine
 * (no cluster yet): the ring GEMMs and OpenBLAS dgemms of the plan's
 * bilinear gates, and Tandem's float evaluator. */
static int time_plaintext(const popts_t *o, work_t *wk, const mpc_plan_t *plan, plain_t *pl,
                          char *err, size_t errlen) {
  int rc;
  for (size_t i = 0; i < mpc_plan_ngates(plan); i++) {
    mpc_gate_info_t gi;
    double s = 0;
    if (mpc_plan_gate(plan, i, &gi) != 0 || gi.gemm_count == 0)
      continue;
    double d = 0; /* set by time_gemm; GCC cannot always tell */
    if ((rc = time_gemm(gi.gemm_m, gi.gemm_k, gi.gemm_n, &s, &d)) != 0) {
      snprintf(err, errlen, "timing the ring GEMM: %s", tandem_strerror(rc));
      return rc;
    }
    pl->ring_s += s * (double)gi.gemm_count;
    pl->dgemm_s += d * (double)gi.gemm_count;
  }
  /* The float baseline is OpenBLAS on the linear layers (what a plaintext
   * inference spends its time on: the rest is elementwise); Tandem's own
   * float evaluator, plain loops, is timed beside it. */
  pl->float_s = pl->dgemm_s;
  if (o->matmul != NULL)
    pl->float_what = "OpenBLAS dgemm";
  float_ctx_t fc;
  memset(&fc, 0, sizeof fc);
  fc.wk = wk;
  if ((rc = time_plain(op_float, &fc, &pl->eval_s)) != 0) {
    snprintf(err, errlen, "the float evaluator failed: %s", tandem_strerror(rc));
    return rc;
  }
  return 0;
}

/* ---- entry ------------------------------------------------------------------------- */

static int usage_error(const char *msg, const char *arg) {
  if (arg != NULL)
    tandem_app_error(CMD, "%s '%s' (try 'tandem bench --help')", msg, arg);
  else
    tandem_app_error(CMD, "%s (try 'tandem bench --help')", msg);
  return 2;
}

/* The options into *o: -1 to go on, else the exit code (0 for --help). */
static int parse_popts(int argc, char **argv, popts_t *o) {
  /* tandem_bench_main has checked argv (names, values, --help, the other
   * workloads' options) with the table of every bench option; this reads
   * the protocol workloads' values from it. */
  static const char use[] = "usage: tandem bench --matmul MxKxN | --model M.onnx [options]";
  memset(o, 0, sizeof *o);
  const char *batch_s = NULL, *reps_s = NULL;
  const tandem_opt_t opts[] = {{"matmul", &o->matmul, NULL, NULL, 0},
                               {"model", &o->model, NULL, NULL, 0},
                               {"mask", &o->mask, NULL, NULL, 0},
                               {"batch", &batch_s, NULL, NULL, 0},
                               {"reps", &reps_s, NULL, NULL, 0},
                               {"by-gate", NULL, &o->by_gate, NULL, 0},
                               {"json", NULL, &o->json, NULL, 0},
                               {"link", &o->link, NULL, NULL, 0},
                               {"emulate", NULL, &o->emulate, NULL, 0},
                               {"exact", NULL, &o->exact, NULL, 0},
                               {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use, "See 'tandem bench --help'.\n");
  if (rc >= 0)
    return rc;
  if ((o->matmul == NULL) == (o->model == NULL))
    return usage_error("give one of --matmul MxKxN and --model M.onnx", NULL);
  if (o->matmul != NULL && parse_mkn(o->matmul, &o->m, &o->k, &o->n) != 0)
    return usage_error("--matmul wants MxKxN, each 1..65536, not", o->matmul);
  if (o->exact && o->model == NULL)
    return usage_error("--exact applies to --model only (a matmul truncates nothing)", NULL);
  if (o->mask == NULL)
    o->mask = "fresh";
  else if (o->matmul == NULL)
    return usage_error("--mask applies to --matmul only", NULL);
  if (strcmp(o->mask, "fresh") != 0 && strcmp(o->mask, "reused") != 0)
    return usage_error("--mask wants fresh or reused, not", o->mask);
  o->batch = 1;
  if (batch_s != NULL && (o->model == NULL || parse_size(batch_s, 1, 100000, &o->batch) != 0))
    return usage_error("--batch (with --model) wants 1..100000, not", batch_s);
  o->reps = REPS_DEFAULT;
  size_t reps;
  if (reps_s != NULL) {
    if (parse_size(reps_s, 1, REPS_MAX, &reps) != 0)
      return usage_error("--reps wants 1..1000, not", reps_s);
    o->reps = (int)reps;
  }
  if (o->link != NULL) {
    if (parse_netspec(o->link, &o->spec) != 0)
      return usage_error("--link wants RTT_MS:GBPS (e.g. 0.3:3), lan or wan, not", o->link);
    o->have_link = 1;
  } else if (o->emulate) {
    return usage_error("--emulate needs --link SPEC", NULL);
  }
  if (max_msg_env(&o->max_msg) != 0)
    return 2;
  return -1;
}

int tandem_bench_proto_main(int argc, char **argv) {
  popts_t o;
  int rc = parse_popts(argc, argv, &o);
  if (rc >= 0)
    return rc;
  if (sodium_init() < 0 || kern_init() != 0) {
    tandem_app_error(CMD, "cannot initialise libsodium or the kernels (TANDEM_KERNEL?)");
    return 1;
  }
  /* The baselines get the threads each party of the cluster gets. */
  int threads = tandem_local_threads();
  if (kern_set_threads(threads) != 0)
    return 1;
  openblas_set_num_threads(threads);
  char err[1024] = "";
  work_t wk;
  memset(&wk, 0, sizeof wk);
  rc = o.matmul != NULL ? build_matmul(&o, &wk, err, sizeof err)
                        : build_model(&o, &wk, err, sizeof err);
  if (rc != 0) {
    tandem_app_error(CMD, "%s", err[0] ? err : tandem_strerror(rc));
    return 1;
  }
  mpc_plan_t *plan = NULL;
  pres_t res, emu;
  memset(&res, 0, sizeof res);
  memset(&emu, 0, sizeof emu);
  int have_emu = 0;
  plain_t pl = {0, 0, 0, 0, "OpenBLAS dgemm of the linear layers"};
  if ((rc = mpc_plan_new(&plan, &wk.g, o.matmul ? 0 : o.batch, err, sizeof err)) != 0)
    goto fail;
  if ((rc = time_plaintext(&o, &wk, plan, &pl, err, sizeof err)) != 0)
    goto fail;
  if ((rc = choose_chunks(&o, &wk, plan, err, sizeof err)) != 0)
    goto fail;
  double deal_s = 0;
  if ((rc = time_dealer_batch(&o, &wk, plan, &deal_s)) != 0) {
    snprintf(err, sizeof err, "timing the dealer: %s", tandem_strerror(rc));
    goto fail;
  }
  double gap_s = 1.5 * deal_s + 0.01;
  tandem_signals();
  if ((rc = run_private(&o, &wk, NULL, gap_s, &res, err, sizeof err)) != 0)
    goto fail;
  res.deal_s = deal_s;
  /* A result beyond the fixed-point bound is a failure, not a speed: at f
   * fractional bits each product term is off by at most 2^-f in each
   * operand. */
  double ulp = ldexp(1.0, -(int)(wk.g.frac_bits ? wk.g.frac_bits : 16));
  double bound = o.matmul != NULL ? 4.0 * (double)o.k * ulp : 0.05;
  if (!(res.max_err <= bound)) {
    snprintf(err, sizeof err, "the private result is off by %g (bound %g): not timed",
             res.max_err, bound);
    rc = TANDEM_EPROTO;
    goto fail;
  }
  proj_t proj;
  if (o.have_link) {
    project(plan, o.nq, &res, &o.spec, &proj);
    if (o.emulate) {
      if ((rc = run_private(&o, &wk, &o.spec, gap_s, &emu, err, sizeof err)) != 0)
        goto fail;
      have_emu = 1;
    }
  }
  print_report(&o, &wk, plan, &res, &pl, o.have_link ? &proj : NULL, have_emu ? &emu : NULL);
  pres_close(&res);
  pres_close(&emu);
  mpc_plan_free(plan);
  work_close(&wk);
  return 0;
fail:
  tandem_app_error(CMD, "%s", err[0] ? err : tandem_strerror(rc));
  pres_close(&res);
  pres_close(&emu);
  mpc_plan_free(plan);
  work_close(&wk);
  return 1;
}
