/* fuzz_config.c - libFuzzer target for the cluster's config reader
 * (mpc/src/cluster/config.c: cl_config_load over inih), which every daemon
 * and client runs on a file an operator, or whoever could write it, made.
 *
 * The input is the config file's text, read through a memfd (the reader
 * takes a path: /proc/self/fd/N). It must be accepted or refused with
 * TANDEM_ECONFIG and a message; an accepted config names p0, p1 and the
 * dealer with an address, a port and a key, and every member id it
 * resolves is in range.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mpc_cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static cl_config_t cfg;
  char err[512] = "";
  if (fd < 0) {
    fd = memfd_create("tandem-fuzz-config", 0);
    if (fd < 0)
      abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) != 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
    abort();
  int rc = cl_config_load(path, &cfg, err, sizeof err);
  if (rc != 0) {
    if (rc != TANDEM_ECONFIG || err[0] == '\0')
      abort();
    return 0;
  }
  for (int id = 0; id < 3; id++)
    if (!cfg.m[id].present || cfg.m[id].port == 0 || !cfg.m[id].has_pk ||
        cfg.m[id].host[0] == '\0')
      abort();
  if (cfg.nclients < 0 || cfg.nclients > CL_MAX_CLIENTS)
    abort();
  const char *names[] = {"p0", "p1", "dealer", "owner", "client"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    int id = cl_member_id(&cfg, names[i]);
    if (id < -1 || id >= NET_MAX_PEERS)
      abort();
  }
  return 0;
}
