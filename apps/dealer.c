/* dealer.c - `tandem dealer --config FILE`: the dealer daemon, the dealer
 * service of mpc_cluster.h (cl_dealer_t) run until SIGINT or SIGTERM. What the
 * dealer does (sequencing, the pool of preprocessing, cancels) is told in
 * mpc/src/cluster/dealer.c. */
#include <stdio.h>

#include <sodium.h>

#include "apps.h"
#include "daemon.h"
#include "kern.h"

int tandem_dealer_main(int argc, char **argv) {
  static const char use[] = "usage: tandem dealer --config FILE "
                            "[--log-level error|warn|info|debug] [--log-file PATH]";
  const char *config = NULL, *level = NULL, *logfile = NULL;
  const tandem_opt_t opts[] = {{"config", &config, NULL, NULL, 0},
                               {"log-level", &level, NULL, NULL, 0},
                               {"log-file", &logfile, NULL, NULL, 0},
                               {NULL, NULL, NULL, NULL, 0}};
  int rc = tandem_opts(argc, argv, opts, use,
                       "Runs the dealer until SIGINT or SIGTERM. SIGHUP: take the config's\n"
                       "client sections again (add a client without a restart).\n");
  if (rc >= 0)
    return rc;
  if (config == NULL) {
    fprintf(stderr, "%s\n", use);
    return 2;
  }
  if (sodium_init() < 0) {
    tandem_app_error("dealer", "libsodium failed to initialise");
    return 1;
  }
  static cl_config_t cfg;
  char err[1024];
  if (cl_config_load(config, &cfg, err, sizeof err) != 0) {
    tandem_app_error("dealer", "%s", err);
    return 1;
  }
  /* The dealer's key generation runs on as many kernel threads as a party's
   * evaluation (the config's threads), as the benchmark's figures assume. */
  if (cfg.threads > 0 && kern_set_threads((int)cfg.threads) != 0) {
    tandem_app_error("dealer", "%s: bad threads = %u", config, cfg.threads);
    return 1;
  }
  if ((rc = tandem_log_setup("dealer", level, logfile, &cfg)) != 0)
    return rc;
  tandem_signals();
  cl_dealer_t *d;
  if (cl_dealer_new(&d, &cfg, &tandem_daemon_hooks, err, sizeof err) != 0) {
    tandem_app_error("dealer", "%s", err);
    return 1;
  }
  if ((rc = cl_dealer_start(d)) != 0) {
    tandem_app_error("dealer", "cannot start its threads: %s", tandem_strerror(rc));
    cl_dealer_free(d);
    return 1;
  }
  while (!atomic_load(&tandem_stop)) {
    cl_dealer_step(d, 200);
    if (atomic_exchange(&tandem_reload, 0))
      if (cl_dealer_reload(d, err, sizeof err) != 0) {
        /* logged by the service; the daemon keeps its clients */
      }
  }
  cl_dealer_free(d);
  return 0;
}
