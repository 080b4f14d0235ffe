/* lcluster.c - the throw-away cluster of `tandem run`, `tandem demo` and
 * `tandem bench` (lcluster.h): fresh keys and a config in a temporary
 * directory, P0, P1 and the dealer as separate processes (this binary,
 * re-executed) on free loopback ports, stopped and deleted at the end.
 */
#define _GNU_SOURCE /* nftw, sched_setaffinity */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "lcluster.h"

static const char *const daemon_names[3] = {"p0", "p1", "dealer"};

/* n distinct ports free now, below the kernel's range of ephemeral ports
 * (read from /proc, 32768 by default): a port in that range can be given to
 * an outgoing connection, and a dial to a daemon not yet listening there can
 * then connect the socket to itself. Each chosen port stays bound until all
 * n are chosen, so no two daemons of one cluster get the same port (a test
 * run saw P0 and the dealer drawn on one port). Another process could take a
 * port before the daemon binds; the daemon then fails with a clear "address
 * in use". 0, or -1 if no free ports were found. */
static int free_ports(int *port, int n) {
  unsigned lo = 32768;
  FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
  if (f != NULL) {
    if (fscanf(f, "%u", &lo) != 1 || lo < 2048 || lo > 65535)
      lo = 32768;
    fclose(f);
  }
  int fd[8], got = 0;
  if (n > 8)
    return -1;
  for (int attempt = 0; attempt < 200 && got < n; attempt++) {
    uint32_t r = randombytes_uniform(lo - 1024);
    int p = 1024 + (int)r;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
      break;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)p);
    if (bind(s, (struct sockaddr *)&a, sizeof a) == 0) {
      fd[got] = s;
      port[got++] = p;
    } else {
      close(s);
    }
  }
  for (int i = 0; i < got; i++)
    close(fd[i]);
  return got == n ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static int make_key(const char *dir, const char *name, char *hex) {
  unsigned char pk[NET_KEY_BYTES];
  unsigned char *sk = sodium_malloc(NET_KEY_BYTES);
  if (sk == NULL)
    return TANDEM_ENOMEM;
  net_keypair(pk, sk);
  char path[400];
  snprintf(path, sizeof path, "%s/%s.key", dir, name);
  int rc = net_key_save(path, sk);
  sodium_free(sk);
  sodium_bin2hex(hex, 2 * NET_KEY_BYTES + 1, pk, NET_KEY_BYTES);
  return rc;
}

void tandem_local_stop(tandem_local_t *c) {
  for (int i = 0; i < 3; i++)
    if (c->pid[i] > 0)
      kill(c->pid[i], SIGTERM);
  for (int i = 0; i < 3; i++) {
    if (c->pid[i] <= 0)
      continue;
    int status;
    for (int t = 0; t < 100; t++) {
      if (waitpid(c->pid[i], &status, WNOHANG) != 0)
        goto reaped;
      struct timespec ts = {0, 50 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    kill(c->pid[i], SIGKILL);
    waitpid(c->pid[i], &status, 0);
  reaped:
    c->pid[i] = 0;
  }
  if (c->dir[0] != '\0' && getenv("TANDEM_KEEP_TMP") == NULL)
    nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  c->dir[0] = '\0';
}

/* Prints the tail of a daemon's log (after a failure). */
void tandem_local_logs(const tandem_local_t *c) {
  for (int i = 0; i < 3; i++) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s.log", c->dir, daemon_names[i]);
    FILE *f = fopen(path, "r");
    if (f == NULL)
      continue;
    char line[1024];
    while (fgets(line, sizeof line, f) != NULL)
      fprintf(stderr, "  %s", line);
    fclose(f);
  }
}

/* The CPUs this process may run on (its affinity, which a container or
 * taskset may restrict), else those online. */
static int usable_cpus(void) {
  cpu_set_t all;
  if (sched_getaffinity(0, sizeof all, &all) == 0 && CPU_COUNT(&all) > 0)
    return CPU_COUNT(&all);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)(n < 65536 ? n : 65536) : 1;
}

int tandem_local_threads(void) {
  int cpus = usable_cpus();
  return cpus >= 4 ? (cpus / 2 > 64 ? 64 : cpus / 2) : 1;
}

void tandem_local_timeout_for(size_t prep, char *extra, size_t extralen) {
  if (prep <= ((size_t)256 << 20) || getenv("TANDEM_TIMEOUT_MS") != NULL)
    return;
  size_t at = strlen(extra);
  double ms = 30e3 * (double)prep / (double)((size_t)256 << 20);
  if (at < extralen)
    snprintf(extra + at, extralen - at, "timeout_ms = %.0f\n", ms < 3.6e6 ? ms : 3.6e6);
}

size_t tandem_local_max_msg_for(const mpc_plan_t *p) {
  size_t need = cl_prep_largest(p);
  if (need <= NET_DEFAULT_MAX_MSG - CL_TAG_BYTES)
    return NET_DEFAULT_MAX_MSG;
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  double cap = pages > 0 && psz > 0 ? (double)pages * (double)psz / 6 : 0;
  if (cap > (double)((size_t)1 << 34)) /* the config's own limit */
    cap = (double)((size_t)1 << 34);
  const size_t mib = (size_t)1 << 20;
  if ((double)need + (double)need / 8 + (double)mib > cap)
    return 0;
  size_t want = need + need / 8 + CL_TAG_BYTES;
  return (want + mib - 1) / mib * mib;
}

/* The lowest CPU of cpu's core (its hyperthread siblings share it), or cpu
 * itself where sysfs does not say. */
static int core_of(int cpu) {
  char path[96];
  snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list",
           cpu);
  FILE *f = fopen(path, "r");
  int first = cpu;
  if (f != NULL) {
    if (fscanf(f, "%d", &first) != 1 || first < 0)
      first = cpu;
    fclose(f);
  }
  return first;
}

/* The CPUs this process may run on, cut in two halves for P0 and P1 by
 * whole cores (hyperthread siblings, often numbered N/2 apart, stay in one
 * half), by CPU where all share one core; 0 if there are fewer than two
 * CPUs. `tandem bench` pins each party to its half, as if each had a
 * machine of its own: unpinned, the scheduler at times ran both parties'
 * threads on one core of a 2-core machine while the other waited (the
 * MLP's online phase at batch 100 was 10.9-19.3x OpenBLAS in 5 runs
 * unpinned, 9.9-14.4x pinned, alternating, Zen 4, 2026-12-08). The dealer
 * and the client are not pinned. */
static int party_halves(cpu_set_t half[2]) {
  static int core[CPU_SETSIZE], rank[CPU_SETSIZE];
  cpu_set_t all;
  CPU_ZERO(&half[0]);
  CPU_ZERO(&half[1]);
  int n = sched_getaffinity(0, sizeof all, &all) == 0 ? CPU_COUNT(&all) : 0;
  if (n < 2)
    return 0;
  /* A core is named by its lowest CPU (core_of), so names are CPU numbers:
   * rank[name] numbers the cores in order, -1 for names of no core. */
  for (int c = 0; c < CPU_SETSIZE; c++)
    rank[c] = -1;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &all)) {
      core[c] = core_of(c);
      if (core[c] >= CPU_SETSIZE)
        core[c] = c;
      rank[core[c]] = 0;
    }
  int cores = 0;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (rank[c] >= 0)
      rank[c] = cores++;
  for (int c = 0, i = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &all)) {
      /* Whole cores to each half; one core's CPUs split between them. */
      int first = cores >= 2 ? rank[core[c]] < cores / 2 : i < n / 2;
      CPU_SET(c, &half[first ? 0 : 1]);
      i++;
    }
  return 1;
}

int tandem_local_start(tandem_local_t *c, const char *cmd, const char *extra, char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  const char *tmp = getenv("TMPDIR");
  snprintf(c->dir, sizeof c->dir, "%s/tandem-XXXXXX", tmp != NULL ? tmp : "/tmp");
  if (mkdtemp(c->dir) == NULL) {
    snprintf(err, errlen, "cannot make a temporary directory: %s", strerror(errno));
    c->dir[0] = '\0';
    return -errno;
  }
  static const char *const names[5] = {"p0", "p1", "dealer", "owner", "client"};
  char hex[5][2 * NET_KEY_BYTES + 1];
  for (int i = 0; i < 5; i++)
    if (make_key(c->dir, names[i], hex[i]) != 0) {
      snprintf(err, errlen, "cannot write keys in %s", c->dir);
      tandem_local_stop(c);
      return TANDEM_EIO;
    }
  int port[3];
  if (free_ports(port, 3) != 0) {
    snprintf(err, errlen, "no free loopback port");
    tandem_local_stop(c);
    return TANDEM_EIO;
  }
  snprintf(c->config, sizeof c->config, "%s/cluster.ini", c->dir);
  FILE *f = fopen(c->config, "w");
  if (f == NULL) {
    snprintf(err, errlen, "%s: %s", c->config, strerror(errno));
    tandem_local_stop(c);
    return TANDEM_EIO;
  }
  const char *timeout = getenv("TANDEM_TIMEOUT_MS");
  /* P0 and P1 compute at the same moments: on one machine each gets half
   * of the cores (two parties each running a thread per core would fight
   * over every core). */
  /* The defaults below, unless extra sets the key itself (each key once). */
  const char *ex = extra != NULL ? extra : "";
  fprintf(f, "; made by tandem %s, deleted when it ends\n[cluster]\n", cmd);
  if (strstr(ex, "timeout_ms =") == NULL)
    fprintf(f, "timeout_ms = %s\n", timeout != NULL ? timeout : "30000");
  if (strstr(ex, "pool =") == NULL)
    fprintf(f, "pool = 2\n");
  fprintf(f, "threads = %d\n%s\n", tandem_local_threads(), ex);
  for (int i = 0; i < 3; i++)
    fprintf(f, "[%s]\nhost = 127.0.0.1\nport = %d\npubkey = %s\nkey = %s.key\ndata = %s\n\n",
            names[i], port[i], hex[i], names[i], names[i]);
  fprintf(f, "[owner]\npubkey = %s\nkey = owner.key\n\n[client]\npubkey = %s\nkey = "
             "client.key\n", hex[3], hex[4]);
  fclose(f);
  char why[512];
  if (cl_config_load(c->config, &c->cfg, why, sizeof why) != 0) {
    snprintf(err, errlen, "%s", why);
    tandem_local_stop(c);
    return TANDEM_ECONFIG;
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    snprintf(err, errlen, "cannot find the tandem binary");
    tandem_local_stop(c);
    return TANDEM_EIO;
  }
  self[n] = '\0';
  cpu_set_t half[2];
  int pin = strcmp(cmd, "bench") == 0 && party_halves(half);
  /* The dealer first: the parties dial it. */
  static const int order[3] = {2, 1, 0};
  for (int k = 0; k < 3; k++) {
    int i = order[k];
    char log[400];
    snprintf(log, sizeof log, "%s/%s.log", c->dir, daemon_names[i]);
    pid_t pid = fork();
    if (pid < 0) {
      snprintf(err, errlen, "fork: %s", strerror(errno));
      tandem_local_stop(c);
      return TANDEM_EIO;
    }
    if (pid == 0) {
      int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
      }
      int nul = open("/dev/null", O_RDWR);
      if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        close(nul);
      }
      /* Nothing of the caller's (pipes, sockets) leaks into a daemon. */
      long maxfd = sysconf(_SC_OPEN_MAX);
      for (long cfd = 3; cfd < (maxfd > 0 && maxfd < 65536 ? maxfd : 65536); cfd++)
        close((int)cfd);
      /* The dealer works ahead, refilling its pool while a query runs: on a
       * machine it shares with the parties it must not take their cores
       * during the online phase (measured: the MLP's online phase 3-4x
       * slower at batch 100), so it runs at the lowest priority. */
      if (i == 2 && setpriority(PRIO_PROCESS, 0, 19) != 0)
        _exit(126);
      if (i < 2 && pin)
        (void)sched_setaffinity(0, sizeof half[i], &half[i]);
      if (i == 2)
        execl(self, "tandem", "dealer", "--config", c->config, (char *)NULL);
      else
        execl(self, "tandem", "party", "--config", c->config, "--id", daemon_names[i],
              (char *)NULL);
      _exit(127);
    }
    c->pid[i] = pid;
  }
  return 0;
}

/* A daemon that exited already (a port taken, a bad key) is an error now
 * rather than a timeout later. */
int tandem_local_check(tandem_local_t *c, char *err, size_t errlen) {
  /* A daemon may be exiting just now: look for half a second. */
  for (int t = 0; t < 10; t++) {
    for (int i = 0; i < 3; i++) {
      int status;
      if (c->pid[i] > 0 && waitpid(c->pid[i], &status, WNOHANG) == c->pid[i]) {
        c->pid[i] = 0;
        snprintf(err, errlen, "the %s daemon exited early; its log:", daemon_names[i]);
        return TANDEM_EIO;
      }
    }
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

