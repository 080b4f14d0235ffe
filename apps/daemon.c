/* daemon.c - signals, logging and the model store of the daemons (daemon.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "daemon.h"

atomic_int dm_stop;

static void on_signal(int sig) {
  (void)sig;
  atomic_store(&dm_stop, 1);
}

void dm_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

void dm_log(const char *who, const char *fmt, ...) {
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

void dm_net_log(void *ctx, const char *line) { dm_log((const char *)ctx, "%s", line); }

void dm_store_init(dm_store_t *s, const char *dir, int role) {
  memset(s, 0, sizeof *s);
  snprintf(s->dir, sizeof s->dir, "%s", dir);
  s->role = role;
  s->suffix = role == MPC_P0 ? "p0" : role == MPC_P1 ? "p1" : "dealer";
}

static void plan_clear(int role, dm_plan_t *p) {
  if (p->obj != NULL) {
    if (role == MPC_DEALER)
      mpc_dealer_free(p->obj);
    else
      mpc_party_free(p->obj);
  }
  mpc_plan_free(p->plan);
  memset(p, 0, sizeof *p);
}

static void model_free(int role, dm_model_t *m) {
  for (int i = 0; i < DM_PLANS; i++)
    plan_clear(role, &m->plans[i]);
  mpc_graph_close(&m->graph);
  free(m->graph_bytes);
  if (m->state != NULL)
    sodium_free(m->state);
  free(m);
}

void dm_store_close(dm_store_t *s) {
  while (s->models != NULL) {
    dm_model_t *m = s->models;
    s->models = m->next_model;
    model_free(s->role, m);
  }
}

/* A cached model from its graph bytes and its state (sodium_malloc'd; owned
 * by the model on success). */
static int model_make(const char *name, const uint8_t *graph, size_t glen, uint64_t version,
                      uint8_t *state, size_t slen, dm_model_t **out, char *err,
                      size_t errlen) {
  dm_model_t *m = calloc(1, sizeof *m);
  if (m == NULL)
    return TANDEM_ENOMEM;
  snprintf(m->name, sizeof m->name, "%s", name);
  m->graph_bytes = malloc(glen ? glen : 1);
  if (m->graph_bytes == NULL) {
    free(m);
    return TANDEM_ENOMEM;
  }
  memcpy(m->graph_bytes, graph, glen);
  m->graph_len = glen;
  char why[512];
  int rc = mpc_graph_load(&m->graph, graph, glen, why, sizeof why);
  if (rc != 0) {
    snprintf(err, errlen, "model %s: %s", name, why);
    free(m->graph_bytes);
    free(m);
    return rc;
  }
  m->state = state;
  m->state_len = slen;
  m->version = version;
  *out = m;
  return 0;
}

static void store_drop(dm_store_t *s, const char *name) {
  for (dm_model_t **pp = &s->models; *pp != NULL; pp = &(*pp)->next_model)
    if (strcmp((*pp)->name, name) == 0) {
      dm_model_t *old = *pp;
      *pp = old->next_model;
      model_free(s->role, old);
      return;
    }
}

static void store_insert(dm_store_t *s, dm_model_t *m) {
  store_drop(s, m->name);
  m->next_model = s->models;
  s->models = m;
}

int dm_store_get(dm_store_t *s, const char *name, dm_model_t **out, char *err,
                 size_t errlen) {
  for (dm_model_t *m = s->models; m != NULL; m = m->next_model)
    if (strcmp(m->name, name) == 0) {
      *out = m;
      return 0;
    }
  if (!cl_name_ok(name)) {
    snprintf(err, errlen, "bad model name");
    return TANDEM_EINVAL;
  }
  char gpath[1200], spath[1200];
  snprintf(gpath, sizeof gpath, "%s/%s.graph", s->dir, name);
  snprintf(spath, sizeof spath, "%s/%s.%s", s->dir, name, s->suffix);
  uint8_t *g = NULL, *st = NULL;
  size_t glen = 0, slen = 0;
  int rc = cl_file_unseal(gpath, &g, &glen, err, errlen);
  if (rc == -ENOENT) {
    snprintf(err, errlen, "unknown model '%s' (not shared with this cluster)", name);
    return TANDEM_ENOENT;
  }
  if (rc != 0)
    return rc;
  if ((rc = cl_file_unseal(spath, &st, &slen, err, errlen)) != 0) {
    sodium_free(g);
    return rc;
  }
  uint64_t version = 0;
  uint8_t *state = NULL;
  if (slen < 8) {
    snprintf(err, errlen, "%s: corrupt (no version)", spath);
    rc = TANDEM_EPARSE;
  } else if ((state = sodium_malloc(slen - 8 ? slen - 8 : 1)) == NULL) {
    rc = TANDEM_ENOMEM;
  } else {
    memcpy(&version, st, 8);
    memcpy(state, st + 8, slen - 8);
  }
  sodium_free(st);
  dm_model_t *m;
  if (rc == 0)
    rc = model_make(name, g, glen, version, state, slen - 8, &m, err, errlen);
  sodium_free(g);
  if (rc != 0) {
    if (state != NULL)
      sodium_free(state);
    return rc;
  }
  store_insert(s, m);
  *out = m;
  return 0;
}

int dm_store_put(dm_store_t *s, const char *name, const uint8_t *graph, size_t glen,
                 uint64_t version, const uint8_t *state, size_t slen, char *err,
                 size_t errlen) {
  int rc = cl_mkdirs(s->dir);
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", s->dir, tandem_strerror(rc));
    return rc;
  }
  char gpath[1200], spath[1200];
  snprintf(gpath, sizeof gpath, "%s/%s.graph", s->dir, name);
  snprintf(spath, sizeof spath, "%s/%s.%s", s->dir, name, s->suffix);
  uint8_t *file = sodium_malloc(slen + 8), *st = sodium_malloc(slen ? slen : 1);
  if (file == NULL || st == NULL) {
    if (file != NULL)
      sodium_free(file);
    if (st != NULL)
      sodium_free(st);
    return TANDEM_ENOMEM;
  }
  memcpy(file, &version, 8);
  memcpy(file + 8, state, slen);
  memcpy(st, state, slen);
  /* State first, graph last: a model is visible once both files exist. */
  if ((rc = cl_file_seal(spath, file, slen + 8)) != 0 ||
      (rc = cl_file_seal(gpath, graph, glen)) != 0)
    snprintf(err, errlen, "cannot store model %s: %s", name, tandem_strerror(rc));
  sodium_free(file);
  dm_model_t *m;
  if (rc == 0)
    rc = model_make(name, graph, glen, version, st, slen, &m, err, errlen);
  if (rc != 0) {
    sodium_free(st);
    /* The cached copy of an older setup must not serve queries any more. */
    store_drop(s, name);
    return rc;
  }
  store_insert(s, m);
  return 0;
}

int dm_model_plan(dm_store_t *s, dm_model_t *m, size_t batch, dm_plan_t **out, char *err,
                  size_t errlen) {
  for (int i = 0; i < DM_PLANS; i++)
    if (m->plans[i].plan != NULL && m->plans[i].batch == batch) {
      *out = &m->plans[i];
      return 0;
    }
  if (batch == 0 || batch > DM_MAX_BATCH) {
    snprintf(err, errlen, "batch size %zu outside 1..%u", batch, DM_MAX_BATCH);
    return TANDEM_EINVAL;
  }
  dm_plan_t *p = &m->plans[m->next++ % DM_PLANS];
  plan_clear(s->role, p);
  int rc = mpc_plan_new(&p->plan, &m->graph, batch, err, errlen);
  if (rc != 0)
    return rc;
  if (s->role == MPC_DEALER) {
    mpc_dealer_t *d;
    if ((rc = mpc_dealer_new(&d, p->plan)) == 0) {
      p->obj = d;
      rc = mpc_dealer_import(d, m->state, m->state_len);
    }
  } else {
    mpc_party_t *pt;
    if ((rc = mpc_party_new(&pt, p->plan, (mpc_role_t)s->role)) == 0) {
      p->obj = pt;
      rc = mpc_party_import(pt, m->state, m->state_len);
    }
  }
  if (rc != 0) {
    snprintf(err, errlen, "model %s: stored state does not fit its graph (%s)", m->name,
             tandem_strerror(rc));
    plan_clear(s->role, p);
    return rc;
  }
  p->batch = batch;
  *out = p;
  return 0;
}
