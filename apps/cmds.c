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

int tandem_share_model_main(int argc, char **argv) {
  static const char use[] =
      "usage: tandem share-model --config FILE --model M.onnx --name NAME [--exact]";
  const char *config = NULL, *model = NULL, *name = NULL, *as = "owner";
  int exact = 0;
  const tandem_opt_t opts[] = {{"config", &config, NULL, NULL, 0}, {"model", &model, NULL, NULL, 0},
                               {"name", &name, NULL, NULL, 0},     {"as", &as, NULL, NULL, 0},
                               {"exact", NULL, &exact, NULL, 0},   {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "The model owner secret-shares the weights of M.onnx between the parties;\n"
                       "only the public graph reaches the dealer. --exact publishes the model in\n"
                       "exact mode: every truncation exact (a query's result the same bit for bit\n"
                       "whatever the dealer's coins), one more round per ReLU or max pool after a\n"
                       "product.\n");
  if (rc >= 0)
    return rc;
  if (config == NULL || model == NULL || name == NULL) {
    fprintf(stderr, "%s\n", use);
    return 2;
  }
  if (sodium_init() < 0)
    return 1;
  static cl_config_t cfg;
  char err[1024];
  if (cl_config_load(config, &cfg, err, sizeof err) != 0) {
    tandem_app_error("share-model", "%s", err);
    return 1;
  }
  int self = cl_member_id(&cfg, as);
  if (self != CL_OWNER) {
    tandem_app_error("share-model", "%s: no [owner] section", config);
    return 1;
  }
  cl_client_t s;
  if (cl_client_open(&s, &cfg, self, err, sizeof err) != 0) {
    tandem_app_error("share-model", "%s", err);
    return 1;
  }
  /* The import of cl_client_share_model, with the mode set in the graph it
   * publishes. */
  mpc_graph_t g;
  mpc_weights_t w;
  rc = mpc_onnx_load(model, &g, &w, err, sizeof err);
  if (rc == 0) {
    g.exact = exact;
    rc = cl_client_share_graph(&s, &g, &w, name, err, sizeof err);
    mpc_weights_close(&w);
    mpc_graph_close(&g);
  }
  cl_client_close(&s);
  if (rc != 0) {
    tandem_app_error("share-model", "%s", err);
    return 1;
  }
  printf("model %s shared\n", name);
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
  rc = cl_client_query(&s, model, x, nin, y, nout, &st, err, sizeof err);
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
