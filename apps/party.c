/* party.c - `tandem party --config FILE --id p0|p1`: a compute party daemon,
 * the party service of mpc_cluster.h (cl_party_t) stepped until SIGINT or
 * SIGTERM. What a party does with the dealer's SETUP and QUERY messages, and
 * which links it drops after a failed step, is told in
 * mpc/src/cluster/party.c. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "apps.h"
#include "daemon.h"
#include "kern.h"

int tandem_party_main(int argc, char **argv) {
  static const char use[] = "usage: tandem party --config FILE --id p0|p1 "
                            "[--log-level error|warn|info|debug] [--log-file PATH]";
  const char *config = NULL, *id = NULL, *level = NULL, *logfile = NULL;
  const tandem_opt_t opts[] = {{"config", &config, NULL, NULL, 0}, {"id", &id, NULL, NULL, 0},
                               {"log-level", &level, NULL, NULL, 0},
                               {"log-file", &logfile, NULL, NULL, 0},
                               {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "Runs a compute party until SIGINT or SIGTERM. SIGHUP: take the\n"
                       "config's client sections again (add a client without a restart).\n");
  if (rc >= 0)
    return rc;
  if (config == NULL || id == NULL) {
    fprintf(stderr, "%s\n", use);
    return 2;
  }
  if (sodium_init() < 0) {
    tandem_app_error("party", "libsodium failed to initialise");
    return 1;
  }
  static cl_config_t cfg;
  char err[1024];
  if (cl_config_load(config, &cfg, err, sizeof err) != 0) {
    tandem_app_error("party", "%s", err);
    return 1;
  }
  if (cfg.threads > 0 && kern_set_threads((int)cfg.threads) != 0) {
    tandem_app_error("party", "%s: bad threads = %u", config, cfg.threads);
    return 1;
  }
  int self;
  if (strcmp(id, "p0") == 0)
    self = CL_P0;
  else if (strcmp(id, "p1") == 0)
    self = CL_P1;
  else {
    tandem_app_error("party", "--id must be p0 or p1, not '%s'", id);
    return 2;
  }
  if ((rc = tandem_log_setup("party", level, logfile, &cfg)) != 0)
    return rc;
  tandem_signals();
  cl_party_t *p;
  if (cl_party_new(&p, &cfg, self, &tandem_daemon_hooks, err, sizeof err) != 0) {
    tandem_app_error("party", "%s", err);
    return 1;
  }
  while (!atomic_load(&tandem_stop)) {
    cl_party_step(p, 200);
    if (atomic_exchange(&tandem_reload, 0))
      if (cl_party_reload(p, err, sizeof err) != 0) {
        /* logged by the service; the daemon keeps its clients */
      }
  }
  cl_party_free(p);
  return 0;
}
