/* cluster_harness.c - a whole cluster in one process (cluster_harness.h). */
#define _GNU_SOURCE /* nftw, memmem */
#include <check.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cluster_harness.h"
#include "kern.h"
#include "net_int.h" /* node->mem: the cluster really is on memory nodes */

static const char *const member[4] = {"p0", "p1", "dealer", "owner"};

/* n distinct loopback ports free now (the kernel picks them; each stays
 * bound until all are picked, so two services never get the same one). The
 * services listen as soon as they are made, before anyone dials, so a port
 * is not lost meanwhile but to another process. */
static void free_ports(int *port, int n) {
  int fd[8];
  ck_assert_int_le(n, 8);
  for (int i = 0; i < n; i++) {
    fd[i] = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd[i], 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd[i], (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd[i], (struct sockaddr *)&a, &len), 0);
    port[i] = ntohs(a.sin_port);
  }
  for (int i = 0; i < n; i++)
    close(fd[i]);
}

static void make_key(const char *dir, const char *name, char hex[2 * NET_KEY_BYTES + 1]) {
  unsigned char pk[NET_KEY_BYTES];
  unsigned char *sk = sodium_malloc(NET_KEY_BYTES);
  ck_assert_ptr_nonnull(sk);
  net_keypair(pk, sk);
  char path[400];
  snprintf(path, sizeof path, "%s/%s.key", dir, name);
  ck_assert_int_eq(net_key_save(path, sk), 0);
  sodium_free(sk);
  sodium_bin2hex(hex, 2 * NET_KEY_BYTES + 1, pk, NET_KEY_BYTES);
}

/* ---- hooks -------------------------------------------------------------------- */

static void log_hook(void *ctx, const char *who, const char *line) {
  ch_cluster_t *c = ((ch_svc_t *)ctx)->c;
  void (*on_log)(ch_cluster_t *, const char *, const char *) = c->on_log;
  if (on_log != NULL)
    on_log(c, who, line);
  pthread_mutex_lock(&c->mu);
  size_t n = strlen(who) + strlen(line) + 3;
  if (c->log_len + n + 1 > c->log_cap) {
    size_t cap = (c->log_cap + n + 1) * 2;
    char *b = realloc(c->log, cap);
    if (b == NULL) {
      pthread_mutex_unlock(&c->mu);
      return;
    }
    c->log = b;
    c->log_cap = cap;
  }
  c->log_len += (size_t)snprintf(c->log + c->log_len, c->log_cap - c->log_len, "%s: %s\n",
                                 who, line);
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  if (getenv("CH_VERBOSE") != NULL)
    fprintf(stderr, "%s: %s\n", who, line);
}

static double clock_hook(void *ctx) {
  ch_cluster_t *c = ((ch_svc_t *)ctx)->c;
  return cl_now() + (double)atomic_load(&c->offset_us) / 1e6;
}

static int fault_hook(void *ctx, cl_fault_t where, uint64_t seq, int peer) {
  ch_svc_t *s = ctx;
  int (*fault)(ch_cluster_t *, int, cl_fault_t, uint64_t, int) = s->c->fault;
  return fault != NULL ? fault(s->c, s->who, where, seq, peer) : 0;
}

size_t ch_mark(ch_cluster_t *c) {
  pthread_mutex_lock(&c->mu);
  size_t n = c->log_len;
  pthread_mutex_unlock(&c->mu);
  return n;
}

/* A line after `from` of service `who` (its log prefix, NULL: any) that
 * contains `what`. */
static int seen_locked(ch_cluster_t *c, size_t from, const char *who, const char *what) {
  if (c->log == NULL || from > c->log_len)
    return 0;
  size_t wl = who != NULL ? strlen(who) : 0;
  for (const char *line = c->log + from; *line != '\0';) {
    const char *end = strchr(line, '\n');
    size_t n = end != NULL ? (size_t)(end - line) : strlen(line);
    if ((who == NULL || (n > wl && strncmp(line, who, wl) == 0 && line[wl] == ':')) &&
        memmem(line, n, what, strlen(what)) != NULL)
      return 1;
    line += n + (end != NULL);
  }
  return 0;
}

int ch_seen(ch_cluster_t *c, size_t from, const char *what) {
  pthread_mutex_lock(&c->mu);
  int r = seen_locked(c, from, NULL, what);
  pthread_mutex_unlock(&c->mu);
  return r;
}

int ch_wait_log(ch_cluster_t *c, size_t from, const char *what, int ms) {
  return ch_wait_line(c, from, NULL, what, ms);
}

int ch_wait_line(ch_cluster_t *c, size_t from, const char *who, const char *what, int ms) {
  struct timespec end;
  clock_gettime(CLOCK_REALTIME, &end);
  end.tv_sec += ms / 1000;
  end.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (end.tv_nsec >= 1000000000L) {
    end.tv_sec++;
    end.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&c->mu);
  int r;
  while (!(r = seen_locked(c, from, who, what)))
    if (pthread_cond_timedwait(&c->cv, &c->mu, &end) != 0) {
      r = seen_locked(c, from, who, what);
      break;
    }
  pthread_mutex_unlock(&c->mu);
  return r;
}

/* ---- services ------------------------------------------------------------------- */

static void *party_main(void *arg) {
  ch_party_t *p = arg;
  while (!atomic_load(&p->stop))
    cl_party_step(p->party, 50);
  return NULL;
}

void ch_party_start(ch_cluster_t *c, int id) {
  ch_party_t *p = &c->party[id];
  char err[512] = "";
  p->c = c;
  p->self = id;
  atomic_store(&p->stop, 0);
  ck_assert_msg(cl_party_new(&p->party, &c->svc_cfg[id], id, &c->hooks[id], err, sizeof err) == 0, "%s",
                err);
  ck_assert_int_eq(pthread_create(&p->thread, NULL, party_main, p), 0);
  p->running = 1;
}

void ch_party_stop(ch_cluster_t *c, int id) {
  ch_party_t *p = &c->party[id];
  if (!p->running)
    return;
  atomic_store(&p->stop, 1);
  pthread_join(p->thread, NULL);
  cl_party_free(p->party);
  p->party = NULL;
  p->running = 0;
}

static const char *src_root(void) {
#ifdef TANDEM_SRC_DIR
  return TANDEM_SRC_DIR;
#else
  return ".";
#endif
}

void ch_start(ch_cluster_t *c, int timeout_ms, unsigned pool, int share) {
  ch_start_opts(c, timeout_ms, pool, share, NULL);
}

void ch_start_opts(ch_cluster_t *c, int timeout_ms, unsigned pool, int share,
                   const ch_opts_t *o) {
  memset(c, 0, sizeof *c);
  ck_assert_int_ge(sodium_init(), 0);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  atomic_init(&c->offset_us, 0);
  for (int i = 0; i < 3; i++) {
    c->svc[i] = (ch_svc_t){c, i};
    c->hooks[i] = (cl_hooks_t){log_hook, clock_hook, fault_hook, &c->svc[i], NULL};
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(c->dir, sizeof c->dir, "%s/tandem-ch-XXXXXX", tmp != NULL ? tmp : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(c->dir));
  char hex[4 + CH_CLIENTS][2 * NET_KEY_BYTES + 1];
  for (int i = 0; i < 4; i++)
    make_key(c->dir, member[i], hex[i]);
  for (int k = 0; k < CH_CLIENTS; k++) {
    char name[16];
    snprintf(name, sizeof name, "client%c", 'a' + k);
    make_key(c->dir, name, hex[4 + k]);
  }
  snprintf(c->config, sizeof c->config, "%s/cluster.ini", c->dir);
  FILE *f = fopen(c->config, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f, "[cluster]\ntimeout_ms = %d\npool = %u\nthreads = 1\n%s", timeout_ms, pool,
          o != NULL && o->cluster_lines != NULL ? o->cluster_lines : "");
  int port[3] = {1, 2, 3}; /* over memory, names only */
  int mem = o != NULL && o->mem;
  if (!mem)
    free_ports(port, 3);
  for (int i = 0; i < 3; i++)
    fprintf(f, "[%s]\nhost = 127.0.0.1\nport = %d\npubkey = %s\nkey = %s.key\ndata = %s\n",
            member[i], port[i], hex[i], member[i], member[i]);
  fprintf(f, "[owner]\npubkey = %s\nkey = owner.key\n", hex[3]);
  for (int k = 0; k < CH_CLIENTS; k++)
    fprintf(f, "[client %c]\npubkey = %s\nkey = client%c.key\n", 'a' + k, hex[4 + k], 'a' + k);
  fclose(f);
  char err[512] = "";
  ck_assert_msg(cl_config_load(c->config, &c->cfg, err, sizeof err) == 0, "%s", err);
  if (mem) /* after the load, which resolves hosts: "mem:" is net's, not a host */
    for (int i = 0; i < 3; i++) {
      snprintf(c->cfg.m[i].addr, sizeof c->cfg.m[i].addr, "mem:%s", strrchr(c->dir, '/') + 1);
      snprintf(c->cfg.m[i].bind, sizeof c->cfg.m[i].bind, "%s", c->cfg.m[i].addr);
    }
  /* The config's kernel threads, as `tandem party` sets them (one: the
   * suites run under ThreadSanitizer too, which cannot see into libgomp's
   * thread pool; two parties entering parallel regions at once hung there). */
  ck_assert_int_eq(kern_set_threads((int)c->cfg.threads), 0);
  for (int i = 0; i < 3; i++) {
    c->svc_cfg[i] = c->cfg;
    if (o != NULL && o->plan_mem_max[i] != 0)
      c->svc_cfg[i].plan_mem_max = o->plan_mem_max[i];
  }
  ck_assert_msg(cl_dealer_new(&c->dealer, &c->svc_cfg[CL_DEALER], &c->hooks[CL_DEALER], err,
                              sizeof err) == 0, "%s", err);
  ck_assert_int_eq(cl_dealer_start(c->dealer), 0);
  /* Over memory, really: a "mem:" address makes net's memory node. */
  ck_assert_int_eq(cl_dealer_node(c->dealer)->mem != NULL, mem);
  ch_party_start(c, CL_P1);
  ch_party_start(c, CL_P0);
  char path[600];
  snprintf(path, sizeof path, "%s/models/fashion_test16.npy", src_root());
  ck_assert_msg(mpc_tensor_load(path, &c->images, err, sizeof err) == 0, "%s", err);
  if (share) {
    cl_client_t owner;
    ck_assert_msg(cl_client_open(&owner, &c->cfg, CL_OWNER, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/models/fashion_mlp.onnx", src_root());
    ck_assert_msg(cl_client_share_model(&owner, path, "mlp", CL_SHARE_REPLACE, err, sizeof err) == 0, "%s", err);
    cl_client_close(&owner);
  }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

void ch_stop(ch_cluster_t *c) {
  for (int id = 0; id < 2; id++)
    ch_party_stop(c, id);
  cl_dealer_free(c->dealer);
  c->dealer = NULL;
  mpc_ftensor_close(&c->images);
  if (getenv("TANDEM_KEEP_TMP") == NULL)
    nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(c->log);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
}

void ch_client_open(ch_cluster_t *c, int k, cl_client_t *out) {
  char err[512] = "";
  ck_assert_msg(cl_client_open(out, &c->cfg, CL_CLIENT0 + k, err, sizeof err) == 0, "%s", err);
}

int ch_query(ch_cluster_t *c, cl_client_t *cl, size_t r0, size_t n, mpc_ftensor_t *y,
             cl_query_stats_t *st, char *err, size_t errlen) {
  mpc_ftensor_t x = c->images;
  size_t row = mpc_shape_numel(&x.shape) / x.shape.dim[0];
  ck_assert_uint_le(r0 + n, x.shape.dim[0]);
  x.shape.dim[0] = n;
  x.data = c->images.data + r0 * row;
  return cl_client_query(cl, "mlp", &x, 1, y, 1, st, err, errlen);
}

void ch_query_ok(ch_cluster_t *c, cl_client_t *cl, size_t r0, size_t n) {
  mpc_ftensor_t y;
  cl_query_stats_t st;
  char err[512] = "";
  ck_assert_msg(ch_query(c, cl, r0, n, &y, &st, err, sizeof err) == 0, "%s", err);
  mpc_ftensor_close(&y);
  cl_query_stats_close(&st);
}

/* The query's output y for rows r0 .. r0+n of the test images matches the
 * float evaluator of the MLP within 0.05. */
void ch_check_output(ch_cluster_t *c, size_t r0, size_t n, const mpc_ftensor_t *y) {
  char path[600], err[512] = "";
#ifdef TANDEM_SRC_DIR
  snprintf(path, sizeof path, "%s/models/fashion_mlp.onnx", TANDEM_SRC_DIR);
#else
  snprintf(path, sizeof path, "models/fashion_mlp.onnx");
#endif
  mpc_graph_t g;
  mpc_weights_t w;
  ck_assert_msg(mpc_onnx_load(path, &g, &w, err, sizeof err) == 0, "%s", err);
  mpc_ftensor_t x = c->images, ref;
  size_t row = mpc_shape_numel(&x.shape) / x.shape.dim[0];
  x.shape.dim[0] = n;
  x.data = c->images.data + r0 * row;
  ck_assert_int_eq(mpc_eval_float(&g, &w, &x, &ref), 0);
  ck_assert_uint_eq(mpc_shape_numel(&ref.shape), mpc_shape_numel(&y->shape));
  for (size_t i = 0; i < mpc_shape_numel(&ref.shape); i++)
    ck_assert_msg(fabs(ref.data[i] - y->data[i]) < 0.05, "output %zu: %f, float %f", i,
                  y->data[i], ref.data[i]);
  mpc_ftensor_close(&ref);
  mpc_weights_close(&w);
  mpc_graph_close(&g);
}
