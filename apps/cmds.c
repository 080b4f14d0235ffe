/* cmds.c - the short-lived commands: `tandem keygen`, `tandem share-model`
 * and `tandem infer`, and the tensor files and stats JSON of the commands. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "apps.h"
#include "daemon.h"
#include "mpc_cluster.h"
#include "tandem_file.h"

int tandem_keygen_main(int argc, char **argv) {
  static const char use[] = "usage: tandem keygen --out DIR --id NAME";
  const char *out = NULL, *id = NULL;
  const tandem_opt_t opts[] = {{"out", &out, NULL, NULL, 0}, {"id", &id, NULL, NULL, 0}, {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "Writes DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub, and prints\n"
                       "the config lines of this identity's section.\n");
  if (rc >= 0)
    return rc;
  if (out == NULL || id == NULL) {
    fprintf(stderr, "%s\n", use);
    return 2;
  }
  if (!cl_name_ok(id)) {
    tandem_app_error("keygen", "bad id '%s' (letters, digits, '_', '-', '.')", id);
    return 1;
  }
  if (sodium_init() < 0) {
    tandem_app_error("keygen", "libsodium failed to initialise");
    return 1;
  }
  rc = cl_mkdirs(out);
  if (rc != 0) {
    tandem_app_error("keygen", "%s: %s", out, tandem_strerror(rc));
    return 1;
  }
  char kpath[1200], ppath[1200];
  snprintf(kpath, sizeof kpath, "%s/%s.key", out, id);
  snprintf(ppath, sizeof ppath, "%s/%s.pub", out, id);
  struct stat st;
  if (stat(kpath, &st) == 0) {
    tandem_app_error("keygen", "%s exists; remove it first to make a new identity", kpath);
    return 1;
  }
  unsigned char pk[NET_KEY_BYTES];
  unsigned char *sk = sodium_malloc(NET_KEY_BYTES);
  if (sk == NULL)
    return 1;
  net_keypair(pk, sk);
  rc = net_key_save(kpath, sk);
  sodium_free(sk);
  if (rc == 0)
    rc = net_pub_save(ppath, pk);
  if (rc != 0) {
    tandem_app_error("keygen", "cannot write the keys in %s: %s", out, tandem_strerror(rc));
    return 1;
  }
  char hex[2 * NET_KEY_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, pk, NET_KEY_BYTES);
  /* What a config needs: the lines of this identity's section (a client's
   * or the owner's section takes only pub; a daemon's host and port too). */
  printf("; %s's identity, public key %s\n[%s]\npub = %s\nkey = %s  ; only on %s's host\n",
         id, hex, id, ppath, kpath, id);
  return 0;
}

/* Loads the config and connects as member `as` (must be the owner when
 * owner is set): 0, or 1 after one line on stderr. */
static int member_open(const char *cmd, const char *config, const char *as, int owner,
                       cl_config_t *cfg, cl_client_t *c) {
  char err[1024];
  if (sodium_init() < 0) {
    tandem_app_error(cmd, "libsodium failed to initialise");
    return 1;
  }
  if (cl_config_load(config, cfg, err, sizeof err) != 0) {
    tandem_app_error(cmd, "%s", err);
    return 1;
  }
  int self = cl_member_id(cfg, as);
  if (owner && self != CL_OWNER) {
    tandem_app_error(cmd, "%s: no [owner] section", config);
    return 1;
  }
  if (self != CL_OWNER && self < CL_CLIENT0) {
    tandem_app_error(cmd, "%s: no client or owner named '%s'", config, as);
    return 1;
  }
  if (cl_client_open(c, cfg, self, err, sizeof err) != 0) {
    tandem_app_error(cmd, "%s", err);
    return 1;
  }
  return 0;
}

int tandem_share_model_main(int argc, char **argv) {
  static const char use[] = "usage: tandem share-model --config FILE --model M.onnx --name NAME "
                            "[--exact] [--replace]";
  const char *config = NULL, *model = NULL, *name = NULL, *as = "owner";
  int exact = 0, replace = 0;
  const tandem_opt_t opts[] = {{"config", &config, NULL, NULL, 0}, {"model", &model, NULL, NULL, 0},
                               {"name", &name, NULL, NULL, 0},     {"as", &as, NULL, NULL, 0},
                               {"exact", NULL, &exact, NULL, 0},
                               {"replace", NULL, &replace, NULL, 0},
                               {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "The model owner secret-shares the weights of M.onnx between the parties;\n"
                       "only the public graph reaches the dealer. --exact publishes the model in\n"
                       "exact mode: every truncation exact (a query's result the same bit for bit\n"
                       "whatever the dealer's coins), one more round per ReLU or max pool after a\n"
                       "product. A model of that name is refused unless --replace is given\n"
                       "(queries already sent then finish on the old model).\n");
  if (rc >= 0)
    return rc;
  if (config == NULL || model == NULL || name == NULL) {
    fprintf(stderr, "%s\n", use);
    return 2;
  }
  static cl_config_t cfg;
  char err[1024];
  cl_client_t s;
  if (member_open("share-model", config, as, 1, &cfg, &s) != 0)
    return 1;
  /* The import of cl_client_share_model, with the mode set in the graph it
   * publishes. */
  mpc_graph_t g;
  mpc_weights_t w;
  rc = mpc_onnx_load(model, &g, &w, err, sizeof err);
  if (rc == 0) {
    g.exact = exact;
    rc = cl_client_share_graph(&s, &g, &w, name, replace ? CL_SHARE_REPLACE : 0, err,
                               sizeof err);
    mpc_weights_close(&w);
    mpc_graph_close(&g);
  }
  cl_client_close(&s);
  if (rc != 0) {
    tandem_app_error("share-model", "%s", err);
    return 1;
  }
  printf("model %s %s\n", name, replace ? "shared (replacing any of that name)" : "shared");
  return 0;
}

int tandem_remove_model_main(int argc, char **argv) {
  static const char use[] = "usage: tandem remove-model --config FILE --name NAME";
  const char *config = NULL, *name = NULL, *as = "owner";
  const tandem_opt_t opts[] = {{"config", &config, NULL, NULL, 0}, {"name", &name, NULL, NULL, 0},
                               {"as", &as, NULL, NULL, 0},         {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "The model owner removes a model from the dealer and both parties\n"
                       "(its preprocessing, plans and files).\n");
  if (rc >= 0)
    return rc;
  if (config == NULL || name == NULL) {
    fprintf(stderr, "%s\n", use);
    return 2;
  }
  static cl_config_t cfg;
  char err[1024];
  cl_client_t s;
  if (member_open("remove-model", config, as, 1, &cfg, &s) != 0)
    return 1;
  rc = cl_client_remove_model(&s, name, err, sizeof err);
  cl_client_close(&s);
  if (rc != 0) {
    tandem_app_error("remove-model", "%s", err);
    return 1;
  }
  printf("model %s removed\n", name);
  return 0;
}

int tandem_models_main(int argc, char **argv) {
  static const char use[] = "usage: tandem models --config FILE [--as NAME]";
  const char *config = NULL, *as = "client";
  const tandem_opt_t opts[] = {{"config", &config, NULL, NULL, 0}, {"as", &as, NULL, NULL, 0},
                               {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "Lists the models shared with the cluster (asked of the dealer): name,\n"
                       "inputs' shapes (N: the batch), the largest safe input magnitude,\n"
                       "weight elements, and when it was shared (UTC). --as: the config member\n"
                       "to connect as (a client's name, or owner).\n");
  if (rc >= 0)
    return rc;
  if (config == NULL) {
    fprintf(stderr, "%s\n", use);
    return 2;
  }
  static cl_config_t cfg;
  char err[1024];
  cl_client_t s;
  if (member_open("models", config, as, 0, &cfg, &s) != 0)
    return 1;
  char *text = NULL;
  rc = cl_client_models(&s, &text, err, sizeof err);
  cl_client_close(&s);
  if (rc != 0) {
    tandem_app_error("models", "%s", err);
    return 1;
  }
  printf("%-20s %-28s %-8s %-10s %s\n", "NAME", "INPUTS", "BOUND", "PARAMS", "SHARED");
  for (char *line = text, *next; line != NULL && *line; line = next) {
    next = strchr(line, '\n');
    if (next != NULL)
      *next++ = '\0';
    char *f[5] = {line, "", "", "", ""};
    for (int k = 1; k < 5 && f[k - 1] != NULL; k++) {
      char *tab = strchr(f[k - 1], '\t');
      if (tab == NULL)
        break;
      *tab = '\0';
      f[k] = tab + 1;
    }
    printf("%-20s %-28s %-8s %-10s %s\n", f[0], f[1], f[2], f[3], f[4]);
  }
  free(text);
  return 0;
}

/* How many rows of the inputs one query of `model` may take: its
 * preprocessing within one message of max_msg for every role (as `run`
 * splits), its masked inputs within client_max_msg, and, all roles together, within the config's pool_mem_max (the
 * dealer refuses more). *rows: the inputs' rows; *chunk = *rows when the
 * batch fits or the model's inputs cannot be split (an input of fixed
 * shape: the query itself then says what is wrong). Token ids in x are
 * one-hot encoded first (x replaced). */
static int infer_chunk(cl_client_t *s, const cl_config_t *cfg, const char *model,
                       mpc_ftensor_t *x, size_t nin, size_t *rows, size_t *chunk,
                       char *err, size_t errlen) {
  *rows = *chunk = nin > 0 && x[0].shape.ndim > 0 ? x[0].shape.dim[0] : 1;
  mpc_graph_t g;
  int rc = cl_client_graph(s, model, &g, err, errlen);
  if (rc != 0)
    return rc;
  /* Token ids: checked and one-hot encoded here, before any other check, any
   * split and any message (they never leave this process). */
  char why[512];
  if ((rc = mpc_inputs_encode_ids(&g, x, nin, why, sizeof why)) != 0) {
    snprintf(err, errlen, "model %s: %s", model, why);
    mpc_graph_close(&g);
    return rc;
  }
  int fixed = 0;
  for (size_t i = 0; i < g.nnodes; i++)
    fixed |= g.nodes[i].op == MPC_OP_INPUT && !g.nodes[i].batched;
  if (!fixed) {
    size_t max_msg = cfg->max_msg ? cfg->max_msg : NET_DEFAULT_MAX_MSG;
    *chunk = cl_batch_fit(&g, max_msg, *rows);
    size_t cmax = cfg->client_max_msg ? cfg->client_max_msg : CL_CLIENT_MAX_MSG;
    size_t in = cl_input_fit(&g, cmax, *rows);
    *chunk = in < *chunk ? in : *chunk;
    if (cfg->pool_mem_max > 0) {
      size_t pool = cl_batch_fit(&g, cfg->pool_mem_max / 3, *rows);
      *chunk = pool < *chunk ? pool : *chunk;
    }
    if (*chunk == 0)
      *chunk = 1; /* one row over the limits: the dealer says which */
  }
  mpc_graph_close(&g);
  return 0;
}

int tandem_infer_main(int argc, char **argv) {
  static const char use[] = "usage: tandem infer --config FILE --model NAME --input X "
                            "[--input X2 ...] --output Y [--output Y2 ...] [--stats FILE] "
                            "[--as CLIENT]";
  const char *config = NULL, *model = NULL, *stats = NULL, *as = "client";
  const char *in[TANDEM_MAX_TENSORS], *out[TANDEM_MAX_TENSORS];
  size_t nin = 0, nout = 0;
  const tandem_opt_t opts[] = {{"config", &config, NULL, NULL, 0},
                               {"model", &model, NULL, NULL, 0},
                               {"input", in, NULL, &nin, TANDEM_MAX_TENSORS},
                               {"output", out, NULL, &nout, TANDEM_MAX_TENSORS},
                               {"stats", &stats, NULL, NULL, 0},
                               {"as", &as, NULL, NULL, 0},
                               {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "Runs one private inference; X and Y are .npy or .pb (ONNX TensorProto),\n"
                       "one --input per graph input and one --output per graph output, in the\n"
                       "graph's order.\n");
  if (rc >= 0)
    return rc;
  if (config == NULL || model == NULL || nin == 0 || nout == 0) {
    fprintf(stderr, "%s\n", use);
    return 2;
  }
  if (sodium_init() < 0)
    return 1;
  static cl_config_t cfg;
  char err[1024];
  if (cl_config_load(config, &cfg, err, sizeof err) != 0) {
    tandem_app_error("infer", "%s", err);
    return 1;
  }
  int self = cl_member_id(&cfg, as);
  if (self < CL_CLIENT0) {
    tandem_app_error("infer", "%s: no client section named '%s'", config, as);
    return 1;
  }
  mpc_ftensor_t x[TANDEM_MAX_TENSORS], y[TANDEM_MAX_TENSORS];
  if (tandem_paths_writable(out, nout, err, sizeof err) != 0 ||
      tandem_tensors_load(in, nin, x, err, sizeof err) != 0) {
    tandem_app_error("infer", "%s", err);
    return 1;
  }
  cl_client_t s;
  if (cl_client_open(&s, &cfg, self, err, sizeof err) != 0) {
    tandem_tensors_close(x, nin);
    tandem_app_error("infer", "%s", err);
    return 1;
  }
  cl_query_stats_t st;
  memset(&st, 0, sizeof st); /* closed below even when no query ran */
  size_t rows = 0, chunk = 0;
  rc = infer_chunk(&s, &cfg, model, x, nin, &rows, &chunk, err, sizeof err);
  if (rc == 0 && chunk < rows) {
    fprintf(stderr, "tandem infer: note: %zu rows in queries of at most %zu (one query's "
                    "preprocessing must fit max_msg and the dealer's pool_mem_max)\n",
            rows, chunk);
    double t0 = cl_now();
    s.progress = tandem_rows_progress;
    s.progress_ctx = &t0;
    rc = cl_client_query_chunked(&s, model, chunk, x, nin, y, nout, &st, err, sizeof err);
    if (rc == 0)
      fprintf(stderr, "tandem infer: %zu rows in %zu queries, %.2f s\n", rows, st.queries,
              cl_now() - t0);
  } else if (rc == 0) {
    rc = cl_client_query(&s, model, x, nin, y, nout, &st, err, sizeof err);
  }
  cl_client_close(&s);
  tandem_tensors_close(x, nin);
  cl_query_stats_close(&st);
  if (rc != 0) {
    tandem_app_error("infer", "%s", err);
    return 1;
  }
  if (st.waited)
    fprintf(stderr, "tandem infer: note: the dealer had no preprocessing ready for this "
                    "query and made it on demand\n");
  rc = tandem_tensors_save(out, nout, y, err, sizeof err);
  tandem_tensors_close(y, nout);
  if (rc != 0) {
    tandem_app_error("infer", "%s", err);
    return 1;
  }
  if (stats != NULL && (rc = tandem_stats_write(stats, &st)) != 0) {
    tandem_app_error("infer", "%s: %s", stats, tandem_strerror(rc));
    return 1;
  }
  return 0;
}

int tandem_tensors_load(const char *const *paths, size_t n, mpc_ftensor_t *t, char *err,
                     size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    int rc = mpc_tensor_load(paths[i], &t[i], err, errlen);
    if (rc != 0) {
      tandem_tensors_close(t, i);
      return rc;
    }
    size_t m = mpc_shape_numel(&t[i].shape);
    for (size_t j = 0; j < m; j++)
      if (!isfinite(t[i].data[j])) {
        snprintf(err, errlen, "%s: element %zu is %g (want finite numbers)", paths[i], j,
                 t[i].data[j]);
        tandem_tensors_close(t, i + 1);
        return TANDEM_ERANGE;
      }
  }
  return 0;
}

int tandem_paths_writable(const char *const *paths, size_t n, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      snprintf(err, errlen, "%s: is a directory (want a file to write the result to)", paths[i]);
      return TANDEM_EINVAL;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", paths[i]);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
      snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
      dir[1] = '\0';
    else
      *slash = '\0';
    if (access(dir, W_OK | X_OK) != 0) {
      int e = errno;
      snprintf(err, errlen, "%s: cannot write in %s: %s", paths[i], dir, strerror(e));
      return -e;
    }
  }
  return 0;
}

int tandem_tensors_save(const char *const *paths, size_t n, const mpc_ftensor_t *t, char *err,
                     size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    int rc = mpc_tensor_save(paths[i], &t[i]);
    if (rc != 0) {
      snprintf(err, errlen, "%s: %s", paths[i], tandem_strerror(rc));
      return rc;
    }
  }
  return 0;
}

void tandem_tensors_close(mpc_ftensor_t *t, size_t n) {
  for (size_t i = 0; i < n; i++)
    mpc_ftensor_close(&t[i]);
}

/* The online time has one definition, bench's and the README's: from the
 * moment both parties hold the masked input and their preprocessing to the
 * last output share sent (online_s). It compares the two parties' clocks,
 * which only one host shares: it can never be negative nor exceed the slower
 * party's own online time (online_party_s, from its own input's arrival,
 * which includes waiting for the other party), so a span outside those bounds
 * comes from two hosts' clocks and is written as null. */
int tandem_stats_write(const char *path, const cl_query_stats_t *st) {
  char online[32] = "null", json[1024];
  if (st->online_span_s >= 0 && st->online_span_s <= st->online_s * (1 + 1e-9))
    snprintf(online, sizeof online, "%.6f", st->online_span_s);
  /* Written as every output file is, by the atomic writer (tandem_file.h). */
  int n = snprintf(json, sizeof json,
          "{\"rounds\":%u,\"online_bytes\":{\"p0\":%llu,\"p1\":%llu},"
          "\"offline_bytes\":{\"p0\":%llu,\"p1\":%llu,\"client\":%llu},"
          "\"online_s\":%s,\"online_party_s\":%.6f,\"offline_s\":%.6f,\"wall_s\":%.6f,"
          "\"waited\":%s,"
          "\"queries\":%zu}\n",
          st->rounds, (unsigned long long)st->online_bytes[0],
          (unsigned long long)st->online_bytes[1], (unsigned long long)st->offline_bytes[0],
          (unsigned long long)st->offline_bytes[1], (unsigned long long)st->client_offline,
          online, st->online_s, st->offline_s, st->wall_s,
          st->waited ? "true" : "false",
          st->queries ? st->queries : 1);
  if (n < 0 || (size_t)n >= sizeof json)
    return TANDEM_EINVAL;
  const void *bufs[1] = {json};
  size_t len = (size_t)n;
  return tandem_file_write(path, bufs, &len, 1, 0600);
}
