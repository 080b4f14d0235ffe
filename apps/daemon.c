/* daemon.c - signals and logging of the daemon mains (daemon.h). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

atomic_int tandem_stop;
atomic_int tandem_reload;

static void on_signal(int sig) {
  if (sig == SIGHUP)
    atomic_store(&tandem_reload, 1);
  else
    atomic_store(&tandem_stop, 1);
}

void tandem_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* The daemons' log: its level, file (NULL: stderr) and the config whose
 * section names stand for peer numbers. */
static int log_level = CL_LOG_INFO;
static FILE *log_file;
static const cl_config_t *log_cfg;
static const char *const level_names[4] = {"error", "warn", "info", "debug"};

int tandem_log_setup(const char *cmd, const char *level, const char *file,
                     const cl_config_t *cfg) {
  log_cfg = cfg;
  if (level != NULL) {
    int l = -1;
    for (int i = 0; i < 4; i++)
      if (strcmp(level, level_names[i]) == 0)
        l = i;
    if (l < 0) {
      fprintf(stderr, "tandem %s: --log-level %s: want error, warn, info or debug\n", cmd,
              level);
      return 2;
    }
    log_level = l;
  }
  if (file != NULL) {
    FILE *f = fopen(file, "a");
    if (f == NULL) {
      fprintf(stderr, "tandem %s: --log-file %s: %s\n", cmd, file, strerror(errno));
      return 1;
    }
    setvbuf(f, NULL, _IOLBF, 0);
    log_file = f;
  }
  return 0;
}

/* line with "peer N" and "client N" written as the config's section names
 * ("peer 9" -> "client bob", "peer 2" -> "dealer"), into out. */
static void with_names(const char *line, char *out, size_t outlen) {
  size_t o = 0;
  while (*line && o + 1 < outlen) {
    int id = -1, used = 0;
    if (log_cfg != NULL && (strncmp(line, "peer ", 5) == 0 || strncmp(line, "client ", 7) == 0)) {
      const char *num = line + (line[0] == 'p' ? 5 : 7);
      if (sscanf(num, "%d%n", &id, &used) == 1 && id >= 0 && id < NET_MAX_PEERS &&
          log_cfg->m[id].present && log_cfg->m[id].name[0]) {
        o += (size_t)snprintf(out + o, outlen - o, "%s", log_cfg->m[id].name);
        line = num + used;
        continue;
      }
    }
    out[o++] = *line++;
  }
  out[o < outlen ? o : outlen - 1] = '\0';
}

static void log_write(int level, const char *who, const char *line) {
  if (level > log_level)
    return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char named[1200];
  with_names(line, named, sizeof named);
  fprintf(log_file != NULL ? log_file : stderr,
          "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ tandem %s: %s%s%s\n", tm.tm_year + 1900,
          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
          who, level == CL_LOG_INFO ? "" : level_names[level], level == CL_LOG_INFO ? "" : ": ",
          named);
}

void tandem_log(const char *who, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  log_write(CL_LOG_INFO, who, line);
}

static void log_hook(void *ctx, const char *who, const char *line) {
  (void)ctx;
  log_write(CL_LOG_INFO, who, line);
}

static void log_at_hook(void *ctx, int level, const char *who, const char *line) {
  (void)ctx;
  log_write(level < 0 ? 0 : level > 3 ? 3 : level, who, line);
}

const cl_hooks_t tandem_daemon_hooks = {log_hook, NULL, NULL, NULL, log_at_hook};

void tandem_progress(const char *what, size_t done, size_t total, double secs) {
  char eta[32] = "";
  if (done > 0 && done < total)
    snprintf(eta, sizeof eta, ", ETA %.0f s", secs / (double)done * (double)(total - done));
  if (!isatty(2)) {
    /* A log, not a terminal: a plain line every 30 s of a long run (a
     * 25-minute demo said nothing until its end), and its last one. */
    static double next = 30;
    if (secs + 30 < next) /* a new run: its clock started again */
      next = 30;
    if (secs < next)
      return;
    next = secs + 30;
    fprintf(stderr, "  %zu/%zu %s, %.1f s%s\n", done, total, what, secs, eta);
    return;
  }
  int width = 30, fill = total ? (int)((size_t)width * done / total) : width;
  fprintf(stderr, "\r  [%.*s%*s] %zu/%zu %s  %.1f s%s   ", fill,
          "##############################", width - fill, "", done, total, what, secs, eta);
  if (done >= total)
    fputc('\n', stderr);
  fflush(stderr);
}

void tandem_rows_progress(void *ctx, size_t done, size_t total) {
  tandem_progress("rows", done, total, cl_now() - *(const double *)ctx);
}
