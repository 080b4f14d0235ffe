/* store.c - the cluster's files (checksummed, written atomically) and the
 * model store of a party or the dealer: the public graph and the role's
 * model state of each model under a data directory, with plans compiled per
 * batch size (mpc_cluster.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cluster_int.h"
#include "tandem_file.h"

/* ---- files ------------------------------------------------------------------------ */

int cl_name_ok(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n >= CL_NAME_MAX || name[0] == '.')
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-' || c == '.'))
      return 0;
  }
  return 1;
}

int cl_mkdirs(const char *path) {
  char tmp[1024];
  if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
    return TANDEM_EINVAL;
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return -errno;
      *p = '/';
    }
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
    return -errno;
  return 0;
}

int cl_data_dir(const char *dir, char *err, size_t errlen) {
  int rc = cl_mkdirs(dir);
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", dir, tandem_strerror(rc));
    return rc;
  }
  /* The directory holds weight shares and keys' work: only its owner may
   * enter it, as only the owner may read a secret key file. */
  struct stat st;
  if (lstat(dir, &st) != 0) {
    rc = -errno;
    snprintf(err, errlen, "%s: %s", dir, tandem_strerror(rc));
    return rc;
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "data directory %s is not a directory (a link is not taken)", dir);
    return TANDEM_ECONFIG;
  }
  if (st.st_uid != geteuid()) {
    snprintf(err, errlen, "data directory %s belongs to uid %u, not to this user (uid %u)", dir,
             (unsigned)st.st_uid, (unsigned)geteuid());
    return TANDEM_ECONFIG;
  }
  if ((st.st_mode & 077) != 0) {
    snprintf(err, errlen, "data directory %s is open to others (mode %03o; want 0700: chmod 700 %s)",
             dir, (unsigned)(st.st_mode & 0777), dir);
    return TANDEM_EKEYPERM;
  }
  return 0;
}

int cl_file_write(const char *path, const void *buf, size_t len) {
  uint8_t hash[32];
  crypto_generichash(hash, sizeof hash, buf, len, NULL, 0);
  const void *bufs[2] = {buf, hash};
  const size_t lens[2] = {len, sizeof hash};
  return tandem_file_write(path, bufs, lens, 2, 0600);
}

int cl_file_read(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen) {
  *buf = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", path, strerror(e));
    return -e;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 32 ||
      (uint64_t)st.st_size > MPC_FILE_MAX) {
    close(fd);
    snprintf(err, errlen, "%s: corrupt (not a checksummed Tandem file)", path);
    return TANDEM_EPARSE;
  }
  size_t n = (size_t)st.st_size;
  uint8_t *b = sodium_malloc(n);
  if (b == NULL) {
    close(fd);
    return TANDEM_ENOMEM;
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, b + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  uint8_t hash[32];
  if (got == n)
    crypto_generichash(hash, sizeof hash, b, n - 32, NULL, 0);
  if (got != n || sodium_memcmp(hash, b + n - 32, 32) != 0) {
    sodium_free(b);
    snprintf(err, errlen, "%s: corrupt (checksum mismatch); share the model again", path);
    return TANDEM_EPARSE;
  }
  *buf = b;
  *len = n - 32;
  return 0;
}

void cl_store_init(cl_store_t *s, const char *dir, int role) {
  memset(s, 0, sizeof *s);
  snprintf(s->dir, sizeof s->dir, "%s", dir);
  s->role = role;
  s->suffix = role == MPC_P0 ? "p0" : role == MPC_P1 ? "p1" : "dealer";
}

static void plan_clear(int role, cl_plan_t *p) {
  if (p->obj != NULL) {
    if (role == MPC_DEALER)
      mpc_dealer_free(p->obj);
    else
      mpc_party_free(p->obj);
  }
  mpc_plan_free(p->plan);
  memset(p, 0, sizeof *p);
}

static void model_free(int role, cl_model_t *m) {
  for (int i = 0; i < CL_PLANS; i++)
    plan_clear(role, &m->plans[i]);
  mpc_graph_close(&m->graph);
  free(m->graph_bytes);
  if (m->state != NULL)
    sodium_free(m->state);
  free(m);
}

void cl_store_close(cl_store_t *s) {
  while (s->models != NULL) {
    cl_model_t *m = s->models;
    s->models = m->next_model;
    model_free(s->role, m);
  }
}

/* A cached model from its graph bytes and its state (sodium_malloc'd; owned
 * by the model on success). */
static int model_make(const char *name, const uint8_t *graph, size_t glen, uint64_t version,
                      uint8_t *state, size_t slen, cl_model_t **out, char *err,
                      size_t errlen) {
  cl_model_t *m = calloc(1, sizeof *m);
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

static void store_drop(cl_store_t *s, const char *name) {
  for (cl_model_t **pp = &s->models; *pp != NULL; pp = &(*pp)->next_model)
    if (strcmp((*pp)->name, name) == 0) {
      cl_model_t *old = *pp;
      *pp = old->next_model;
      model_free(s->role, old);
      return;
    }
}

static void store_insert(cl_store_t *s, cl_model_t *m) {
  store_drop(s, m->name);
  m->next_model = s->models;
  s->models = m;
}

int cl_store_get(cl_store_t *s, const char *name, cl_model_t **out, char *err,
                 size_t errlen) {
  for (cl_model_t *m = s->models; m != NULL; m = m->next_model)
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
  int rc = cl_file_read(gpath, &g, &glen, err, errlen);
  if (rc == -ENOENT) {
    snprintf(err, errlen, "unknown model '%s' (not shared with this cluster)", name);
    return TANDEM_ENOENT;
  }
  if (rc != 0)
    return rc;
  if ((rc = cl_file_read(spath, &st, &slen, err, errlen)) != 0) {
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
  cl_model_t *m;
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

int cl_store_put(cl_store_t *s, const char *name, const uint8_t *graph, size_t glen,
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
  if ((rc = cl_file_write(spath, file, slen + 8)) != 0 ||
      (rc = cl_file_write(gpath, graph, glen)) != 0)
    snprintf(err, errlen, "cannot store model %s: %s", name, tandem_strerror(rc));
  sodium_free(file);
  cl_model_t *m;
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

int cl_store_remove(cl_store_t *s, const char *name, char *err, size_t errlen) {
  if (!cl_name_ok(name)) {
    snprintf(err, errlen, "bad model name '%s'", name);
    return TANDEM_EINVAL;
  }
  store_drop(s, name);
  char gpath[1200], spath[1200];
  snprintf(gpath, sizeof gpath, "%s/%s.graph", s->dir, name);
  snprintf(spath, sizeof spath, "%s/%s.%s", s->dir, name, s->suffix);
  if (unlink(gpath) != 0) {
    int e = errno;
    if (e == ENOENT) {
      (void)unlink(spath); /* a state left by a setup that failed half-way */
      snprintf(err, errlen, "unknown model '%s' (not shared with this cluster)", name);
      return TANDEM_ENOENT;
    }
    snprintf(err, errlen, "cannot remove %s: %s", gpath, strerror(e));
    return -e;
  }
  if (unlink(spath) != 0 && errno != ENOENT) {
    int e = errno;
    snprintf(err, errlen, "cannot remove %s: %s", spath, strerror(e));
    return -e;
  }
  return 0;
}

/* One model's line of cl_store_list into out (at most outlen bytes). */
static void list_line(cl_store_t *s, const char *name, char *out, size_t outlen) {
  char err[256] = "", when[32] = "-", gpath[1200];
  snprintf(gpath, sizeof gpath, "%s/%s.graph", s->dir, name);
  struct stat st;
  if (stat(gpath, &st) == 0) {
    struct tm tm;
    time_t t = st.st_mtime;
    if (gmtime_r(&t, &tm) != NULL)
      strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  }
  cl_model_t *m;
  if (cl_store_get(s, name, &m, err, sizeof err) != 0) {
    snprintf(out, outlen, "%s\t(%s)\t-\t-\t%s\n", name, err, when);
    return;
  }
  char inputs[512] = "", bound[32] = "-";
  size_t used = 0;
  unsigned long long params = 0;
  for (size_t i = 0; i < m->graph.nnodes; i++) {
    const mpc_node_t *n = &m->graph.nodes[i];
    if (n->op == MPC_OP_PARAM)
      params += mpc_shape_numel(&n->shape);
    if (n->op != MPC_OP_INPUT || used >= sizeof inputs)
      continue;
    used += (size_t)snprintf(inputs + used, sizeof inputs - used, "%s%s[", used ? " " : "",
                             n->name);
    /* Token ids: the shape the client gives (less the one-hot axis), and
     * the vocabulary. */
    unsigned nd = n->ids ? n->shape.ndim - 1 : n->shape.ndim;
    for (unsigned d = 0; d < nd && used < sizeof inputs; d++) {
      if (d == 0 && n->batched)
        used += (size_t)snprintf(inputs + used, sizeof inputs - used, "N");
      else
        used += (size_t)snprintf(inputs + used, sizeof inputs - used, "%s%zu", d ? "," : "",
                                 n->shape.dim[d]);
    }
    if (used < sizeof inputs)
      used += (size_t)snprintf(inputs + used, sizeof inputs - used, "]");
    if (n->ids && used < sizeof inputs)
      used += (size_t)snprintf(inputs + used, sizeof inputs - used, ":ids<%zu",
                               n->shape.dim[nd]);
  }
  if (m->graph.input_bound > 0)
    snprintf(bound, sizeof bound, "%g", m->graph.input_bound);
  snprintf(out, outlen, "%s\t%s\t%s\t%llu\t%s\n", name, inputs, bound, params, when);
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int cl_store_list(cl_store_t *s, char **text, size_t *len) {
  *text = NULL;
  *len = 0;
  DIR *dir = opendir(s->dir);
  if (dir == NULL)
    return errno == ENOENT ? 0 : -errno;
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l <= 6 || strcmp(e->d_name + l - 6, ".graph") != 0)
      continue;
    char name[CL_NAME_MAX];
    if (l - 6 >= sizeof name)
      continue;
    memcpy(name, e->d_name, l - 6);
    name[l - 6] = '\0';
    if (!cl_name_ok(name))
      continue;
    if (n == cap) {
      char **grown = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof *names);
      if (grown == NULL) {
        rc = TANDEM_ENOMEM;
        break;
      }
      names = grown;
    }
    if ((names[n] = strdup(name)) == NULL) {
      rc = TANDEM_ENOMEM;
      break;
    }
    n++;
  }
  closedir(dir);
  if (n > 0)
    qsort(names, n, sizeof *names, name_cmp);
  char *out = rc == 0 ? malloc(n * 1024 + 1) : NULL;
  if (rc == 0 && out == NULL)
    rc = TANDEM_ENOMEM;
  size_t used = 0;
  for (size_t i = 0; i < n; i++) {
    if (out != NULL) {
      list_line(s, names[i], out + used, 1024);
      used += strlen(out + used);
    }
    free(names[i]);
  }
  free(names);
  if (out != NULL) {
    out[used] = '\0';
    *text = out;
    *len = used;
  }
  return rc;
}

int cl_plan_mem_check(const mpc_graph_t *g, size_t batch, size_t prep, size_t mem_max,
                      char *err, size_t errlen) {
  size_t need = mpc_plan_mem_bytes(g, batch);
  need = need > SIZE_MAX - prep ? SIZE_MAX : need + prep;
  if (mem_max == 0 || need <= mem_max)
    return 0;
  snprintf(err, errlen,
           "its plan at batch %zu would take about %.0f MB, over this node's plan_mem_max "
           "(%.0f MB)", batch, (double)need / 1e6, (double)mem_max / 1e6);
  return TANDEM_ENOMEM;
}

/* A cached plan's memory: the plan and its object, with the dealer's
 * message(s) the object holds (cl_model_plan_make's estimate). */
static size_t plan_bytes(const cl_store_t *s, const cl_model_t *m, const cl_plan_t *p) {
  size_t b = mpc_plan_mem_bytes(&m->graph, p->batch);
  static const mpc_role_t roles[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
  for (int r = 0; r < 3; r++)
    if (s->role == MPC_DEALER || (int)roles[r] == s->role)
      b += mpc_plan_prep_bytes(p->plan, roles[r]);
  return b;
}

unsigned cl_store_release(cl_store_t *s, size_t keep) {
  unsigned n = 0;
  for (cl_model_t *m = s->models; m != NULL; m = m->next_model)
    for (int i = 0; i < CL_PLANS; i++) {
      cl_plan_t *p = &m->plans[i];
      if (p->plan != NULL && !p->busy && plan_bytes(s, m, p) > keep) {
        plan_clear(s->role, p);
        n++;
      }
    }
  return n;
}

cl_plan_t *cl_model_plan_find(cl_model_t *m, size_t batch) {
  for (int i = 0; i < CL_PLANS; i++)
    if (m->plans[i].plan != NULL && m->plans[i].batch == batch)
      return &m->plans[i];
  return NULL;
}

int cl_model_plan_make(const cl_store_t *s, const cl_model_t *m, size_t batch, cl_plan_t *out,
                       char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (batch == 0 || batch > CL_MAX_BATCH) {
    snprintf(err, errlen, "batch size %zu outside 1..%u", batch, CL_MAX_BATCH);
    return TANDEM_EINVAL;
  }
  /* Checked before anything is allocated: the graph came from the owner,
   * the batch size from a client. */
  char why[256];
  int rc = cl_plan_mem_check(&m->graph, batch, 0, s->mem_max, why, sizeof why);
  if (rc != 0) {
    snprintf(err, errlen, "model %s: %s", m->name, why);
    return rc;
  }
  if ((rc = mpc_plan_new(&out->plan, &m->graph, batch, err, errlen)) != 0)
    return rc;
  /* Then with the dealer's message(s) the object holds (the party's one;
   * the dealer's three, P0's, P1's and the client's), which dominate (CNN at
   * batch 100: 3.1 GB of the 3.2 GB a plan and its objects allocate), before
   * the object allocates them. */
  size_t prep = 0;
  static const mpc_role_t roles[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
  for (int r = 0; r < 3; r++)
    if (s->role == MPC_DEALER || (int)roles[r] == s->role)
      prep += mpc_plan_prep_bytes(out->plan, roles[r]);
  if ((rc = cl_plan_mem_check(&m->graph, batch, prep, s->mem_max, why, sizeof why)) != 0) {
    snprintf(err, errlen, "model %s: %s", m->name, why);
    plan_clear(s->role, out);
    return rc;
  }
  if (s->role == MPC_DEALER) {
    mpc_dealer_t *d;
    if ((rc = mpc_dealer_new(&d, out->plan)) == 0) {
      out->obj = d;
      rc = mpc_dealer_import(d, m->state, m->state_len);
    }
  } else {
    mpc_party_t *pt;
    if ((rc = mpc_party_new(&pt, out->plan, (mpc_role_t)s->role)) == 0) {
      out->obj = pt;
      rc = mpc_party_import(pt, m->state, m->state_len);
    }
  }
  if (rc != 0) {
    snprintf(err, errlen, "model %s: stored state does not fit its graph (%s)", m->name,
             tandem_strerror(rc));
    plan_clear(s->role, out);
    return rc;
  }
  out->batch = batch;
  return 0;
}

void cl_model_plan_discard(const cl_store_t *s, cl_plan_t *p) { plan_clear(s->role, p); }

int cl_model_plan_put(cl_store_t *s, cl_model_t *m, cl_plan_t *fresh, cl_plan_t **out,
                      char *err, size_t errlen) {
  /* Round-robin replacement, skipping plans in use (busy). */
  cl_plan_t *p = NULL;
  for (int i = 0; i < CL_PLANS && p == NULL; i++) {
    cl_plan_t *q = &m->plans[m->next++ % CL_PLANS];
    if (!q->busy)
      p = q;
  }
  if (p == NULL) {
    snprintf(err, errlen, "model %s: every plan is in use", m->name);
    plan_clear(s->role, fresh);
    return TANDEM_ENOMEM;
  }
  plan_clear(s->role, p);
  *p = *fresh;
  memset(fresh, 0, sizeof *fresh);
  *out = p;
  return 0;
}

int cl_model_plan(cl_store_t *s, cl_model_t *m, size_t batch, cl_plan_t **out, char *err,
                  size_t errlen) {
  if ((*out = cl_model_plan_find(m, batch)) != NULL)
    return 0;
  cl_plan_t fresh;
  int rc = cl_model_plan_make(s, m, batch, &fresh, err, errlen);
  return rc != 0 ? rc : cl_model_plan_put(s, m, &fresh, out, err, errlen);
}

int cl_model_prep_bytes(cl_store_t *s, cl_model_t *m, size_t batch, size_t bytes[3],
                        char *err, size_t errlen) {
  static const mpc_role_t roles[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
  if (!m->prep_known) {
    /* Once per model: the sizes at batch 1 and 2 (plans only, no objects),
     * whose difference is one row's. */
    size_t at[2][3];
    for (size_t b = 1; b <= 2; b++) {
      mpc_plan_t *p;
      char why[256];
      int rc = cl_plan_mem_check(&m->graph, b, 0, s->mem_max, why, sizeof why);
      if (rc != 0) {
        snprintf(err, errlen, "model %s: %s", m->name, why);
        return rc;
      }
      if ((rc = mpc_plan_new(&p, &m->graph, b, err, errlen)) != 0)
        return rc;
      for (int r = 0; r < 3; r++)
        at[b - 1][r] = mpc_plan_prep_bytes(p, roles[r]);
      mpc_plan_free(p);
    }
    for (int r = 0; r < 3; r++) {
      m->prep_row[r] = at[1][r] >= at[0][r] ? at[1][r] - at[0][r] : 0;
      m->prep_base[r] = at[0][r] - (at[0][r] >= m->prep_row[r] ? m->prep_row[r] : at[0][r]);
    }
    m->prep_known = 1;
  }
  for (int r = 0; r < 3; r++) {
    double b = (double)m->prep_base[r] + (double)m->prep_row[r] * (double)batch;
    bytes[r] = b >= (double)SIZE_MAX ? SIZE_MAX : (size_t)b;
  }
  return 0;
}

int cl_prep_fits(const mpc_plan_t *p, size_t max_msg, mpc_role_t *role, size_t *bytes) {
  static const mpc_role_t roles[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
  size_t max = max_msg ? max_msg : NET_DEFAULT_MAX_MSG;
  for (int i = 0; i < 3; i++) {
    size_t b = mpc_plan_prep_bytes(p, roles[i]);
    if (b > max || max - b < CL_TAG_BYTES) {
      if (role != NULL)
        *role = roles[i];
      if (bytes != NULL)
        *bytes = b;
      return 0;
    }
  }
  return 1;
}

size_t cl_prep_largest(const mpc_plan_t *p) {
  static const mpc_role_t roles[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
  size_t most = 0;
  for (int i = 0; i < 3; i++) {
    size_t b = mpc_plan_prep_bytes(p, roles[i]);
    most = b > most ? b : most;
  }
  return most;
}

size_t cl_batch_fit_plan(const mpc_plan_t *one, size_t max_msg, size_t cap) {
  size_t per = cl_prep_largest(one);
  /* A tenth of headroom: a batch's message is a little over batch times
   * one row's (seeds and framing). */
  size_t fit = per > 0 ? (max_msg / 10 * 9) / per : cap;
  return fit < cap ? fit : cap;
}

size_t cl_batch_fit(const mpc_graph_t *g, size_t max_msg, size_t cap) {
  mpc_plan_t *one;
  if (mpc_plan_new(&one, g, 1, NULL, 0) != 0)
    return cap; /* the query itself will say what is wrong */
  size_t fit = cl_batch_fit_plan(one, max_msg, cap);
  mpc_plan_free(one);
  return fit;
}

size_t cl_input_fit(const mpc_graph_t *g, size_t max_msg, size_t cap) {
  /* 8 bytes per element of every input at one row (a batched input is
   * declared with dim 0 = 1); a token-id input counts its one-hot rows, V
   * elements per id, which the client sends. */
  size_t per = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    if (g->nodes[i].op == MPC_OP_INPUT)
      per += 8 * mpc_shape_numel(&g->nodes[i].shape);
  size_t fit = per > 0 ? (max_msg / 10 * 9) / per : cap;
  return fit < cap ? fit : cap;
}
