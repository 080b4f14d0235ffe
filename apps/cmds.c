/* cmds.c - the short-lived commands: `tandem keygen`, `tandem share-model`
 * and `tandem infer`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "apps.h"
#include "client.h"

int tandem_keygen_main(int argc, char **argv) {
  static const char use[] = "usage: tandem keygen --out DIR --id NAME";
  const char *out = NULL, *id = NULL;
  const tandem_opt_t opts[] = {{"out", &out, NULL, NULL, 0}, {"id", &id, NULL, NULL, 0}, {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "Writes DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub.\n");
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
  printf("%s %s\n", id, hex);
  return 0;
}

int tandem_share_model_main(int argc, char **argv) {
  static const char use[] = "usage: tandem share-model --config FILE --model M.onnx --name NAME";
  const char *config = NULL, *model = NULL, *name = NULL, *as = "owner";
  const tandem_opt_t opts[] = {{"config", &config, NULL, NULL, 0}, {"model", &model, NULL, NULL, 0},
                               {"name", &name, NULL, NULL, 0},     {"as", &as, NULL, NULL, 0},
                               {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "The model owner secret-shares the weights of M.onnx between the parties;\n"
                       "only the public graph reaches the dealer.\n");
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
  cli_session_t s;
  if (cli_open(&s, &cfg, self, err, sizeof err) != 0) {
    tandem_app_error("share-model", "%s", err);
    return 1;
  }
  rc = cli_share_model(&s, model, name, err, sizeof err);
  cli_close(&s);
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
  if (cli_tensors_load(in, nin, x, err, sizeof err) != 0) {
    tandem_app_error("infer", "%s", err);
    return 1;
  }
  cli_session_t s;
  if (cli_open(&s, &cfg, self, err, sizeof err) != 0) {
    cli_tensors_close(x, nin);
    tandem_app_error("infer", "%s", err);
    return 1;
  }
  cli_stats_t st;
  rc = cli_query(&s, model, x, nin, y, nout, &st, err, sizeof err);
  cli_close(&s);
  cli_tensors_close(x, nin);
  cli_stats_close(&st);
  if (rc != 0) {
    tandem_app_error("infer", "%s", err);
    return 1;
  }
  if (st.waited)
    fprintf(stderr, "tandem infer: note: the dealer had no preprocessing ready for this "
                    "query and made it on demand\n");
  rc = cli_tensors_save(out, nout, y, err, sizeof err);
  cli_tensors_close(y, nout);
  if (rc != 0) {
    tandem_app_error("infer", "%s", err);
    return 1;
  }
  if (stats != NULL && (rc = cli_stats_write(stats, &st)) != 0) {
    tandem_app_error("infer", "%s: %s", stats, tandem_strerror(rc));
    return 1;
  }
  return 0;
}
