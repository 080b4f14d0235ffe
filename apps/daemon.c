/* daemon.c - signals and logging of the daemon mains (daemon.h). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

void tandem_log(const char *who, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ tandem %s: %s\n", tm.tm_year + 1900,
          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
          who, line);
}

static void log_hook(void *ctx, const char *who, const char *line) {
  (void)ctx;
  tandem_log(who, "%s", line);
}

const cl_hooks_t tandem_daemon_hooks = {log_hook, NULL, NULL, NULL};
