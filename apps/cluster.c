/* cluster.c - config, peers, the mpc transport over net/, control messages
 * and sealed files (see cluster.h). */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cluster.h"

double cl_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- config ----------------------------------------------------------------- */

typedef struct {
  cl_config_t *cfg;
  char dir[1024];
  char err[512];
} parse_t;

static int set_err(parse_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_err(parse_t *p, const char *fmt, ...) {
  if (p->err[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
  }
  return 0;
}

static int section_id(parse_t *p, const char *section) {
  cl_config_t *c = p->cfg;
  if (strcmp(section, "p0") == 0)
    return CL_P0;
  if (strcmp(section, "p1") == 0)
    return CL_P1;
  if (strcmp(section, "dealer") == 0)
    return CL_DEALER;
  if (strcmp(section, "owner") == 0)
    return CL_OWNER;
  if (strcmp(section, "client") == 0 || strncmp(section, "client ", 7) == 0) {
    for (int i = 0; i < c->nclients; i++)
      if (strcmp(c->m[CL_CLIENT0 + i].name, section) == 0)
        return CL_CLIENT0 + i;
    if (c->nclients == CL_MAX_CLIENTS)
      return -1;
    int id = CL_CLIENT0 + c->nclients++;
    snprintf(c->m[id].name, sizeof c->m[id].name, "%s", section);
    return id;
  }
  return -1;
}

static void resolve(const parse_t *p, const char *value, char *out, size_t cap) {
  if (value[0] == '/' || p->dir[0] == '\0')
    snprintf(out, cap, "%s", value);
  else
    snprintf(out, cap, "%s/%s", p->dir, value);
}

static int parse_uint(const char *v, unsigned long long max, unsigned long long *out) {
  char *end;
  errno = 0;
  if (v[0] == '-' || v[0] == '\0')
    return -1;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno != 0 || *end != '\0' || x > max)
    return -1;
  *out = x;
  return 0;
}

static int on_entry(void *user, const char *section, const char *key, const char *value) {
  parse_t *p = user;
  cl_config_t *c = p->cfg;
  unsigned long long u;
  if (strcmp(section, "cluster") == 0) {
    if (strcmp(key, "timeout_ms") == 0 && parse_uint(value, 3600000, &u) == 0 && u > 0)
      c->timeout_ms = (int)u;
    else if (strcmp(key, "max_frame") == 0 && parse_uint(value, NET_FRAME_LIMIT, &u) == 0 &&
             u > 0)
      c->max_frame = (size_t)u;
    else if (strcmp(key, "max_msg") == 0 && parse_uint(value, (size_t)1 << 34, &u) == 0 &&
             u > 0)
      c->max_msg = (size_t)u;
    else if (strcmp(key, "queue_bytes") == 0 && parse_uint(value, (size_t)1 << 34, &u) == 0)
      c->queue_bytes = (size_t)u;
    else if (strcmp(key, "pool") == 0 && parse_uint(value, 64, &u) == 0)
      c->pool = (unsigned)u;
    else if (strcmp(key, "threads") == 0 && parse_uint(value, 64, &u) == 0)
      c->threads = (unsigned)u;
    else if (strcmp(key, "emulate_delay_us") == 0 && parse_uint(value, 10000000, &u) == 0)
      c->emulate_delay_us = (unsigned long)u;
    else if (strcmp(key, "emulate_rate_bps") == 0 &&
             parse_uint(value, 1000000000000ull, &u) == 0)
      c->emulate_rate_bps = u;
    else
      return set_err(p, "[cluster] %s = %s: unknown key or bad value", key, value);
    return 1;
  }
  int id = section_id(p, section);
  if (id < 0)
    return set_err(p, "unknown section [%s]", section);
  cl_member_t *m = &c->m[id];
  m->present = 1;
  if (m->name[0] == '\0')
    snprintf(m->name, sizeof m->name, "%s", section);
  if (strcmp(key, "host") == 0) {
    if (strlen(value) >= sizeof m->host)
      return set_err(p, "[%s] host %s: too long", section, value);
    snprintf(m->host, sizeof m->host, "%s", value);
  } else if (strcmp(key, "port") == 0) {
    if (parse_uint(value, 65535, &u) != 0)
      return set_err(p, "[%s] port = %s: not a port number", section, value);
    m->port = (uint16_t)u;
  } else if (strcmp(key, "pubkey") == 0) {
    if (net_pub_parse(value, m->pk) != 0)
      return set_err(p, "[%s] pubkey: not 64 hex digits (%s)", section, value);
    m->has_pk = 1;
  } else if (strcmp(key, "pub") == 0) {
    char path[1024];
    resolve(p, value, path, sizeof path);
    if (net_pub_load(path, m->pk) != 0)
      return set_err(p, "[%s] pub: cannot read public key file %s", section, path);
    m->has_pk = 1;
  } else if (strcmp(key, "key") == 0) {
    resolve(p, value, m->key_path, sizeof m->key_path);
  } else if (strcmp(key, "data") == 0) {
    resolve(p, value, m->data_dir, sizeof m->data_dir);
  } else {
    return set_err(p, "[%s] unknown key %s", section, key);
  }
  return 1;
}

int cl_config_load(const char *path, cl_config_t *cfg, char *err, size_t errlen) {
  memset(cfg, 0, sizeof *cfg);
  cfg->timeout_ms = NET_DEFAULT_TIMEOUT_MS;
  cfg->pool = 2;
  snprintf(cfg->path, sizeof cfg->path, "%s", path);
  parse_t p;
  memset(&p, 0, sizeof p);
  p.cfg = cfg;
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s", path);
  snprintf(p.dir, sizeof p.dir, "%s", dirname(tmp));
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return TANDEM_ECONFIG;
  }
  /* Debian's inih splits lines longer than its buffer (200 bytes) and
   * parses the rest as a new line; refuse them instead. Malformed lines are
   * named here too: inih skips them and goes on, so the error it reports
   * can be a later key that the bad line left in the wrong section. */
  char lb[256];
  for (int lineno = 1; fgets(lb, sizeof lb, f) != NULL; lineno++) {
    size_t n = strlen(lb);
    if (n >= 199 && lb[n - 1] != '\n') {
      fclose(f);
      snprintf(err, errlen, "%s: line %d: longer than 198 characters", path, lineno);
      return TANDEM_ECONFIG;
    }
    const char *t = lb;
    while (*t == ' ' || *t == '\t')
      t++;
    int blank = *t == '\0' || *t == '\n' || *t == '\r' || *t == ';' || *t == '#';
    int ok = blank || (*t == '[' ? strchr(t, ']') != NULL : strpbrk(t, "=:") != NULL);
    if (!ok) {
      fclose(f);
      snprintf(err, errlen, "%s: line %d: malformed (want [section] or key = value)", path,
               lineno);
      return TANDEM_ECONFIG;
    }
  }
  rewind(f);
  int line = ini_parse_file(f, on_entry, &p);
  fclose(f);
  /* inih gives the line of the first error: here, one the handler refused. */
  if (p.err[0] != '\0') {
    snprintf(err, errlen, "%s: line %d: %s", path, line, p.err);
    return TANDEM_ECONFIG;
  }
  if (line != 0) {
    snprintf(err, errlen, "%s: line %d: malformed", path, line);
    return TANDEM_ECONFIG;
  }
  static const int need[] = {CL_P0, CL_P1, CL_DEALER};
  for (size_t i = 0; i < 3; i++) {
    const cl_member_t *m = &cfg->m[need[i]];
    const char *name = need[i] == CL_P0 ? "p0" : need[i] == CL_P1 ? "p1" : "dealer";
    if (!m->present || m->host[0] == '\0' || m->port == 0 || !m->has_pk) {
      snprintf(err, errlen, "%s: [%s] needs host, port and pubkey", path, name);
      return TANDEM_ECONFIG;
    }
  }
  for (int id = 0; id < NET_MAX_PEERS; id++)
    if (cfg->m[id].present && !cfg->m[id].has_pk) {
      snprintf(err, errlen, "%s: [%s] has no pubkey", path, cfg->m[id].name);
      return TANDEM_ECONFIG;
    }
  return 0;
}

int cl_member_id(const cl_config_t *cfg, const char *name) {
  static const char *fixed[] = {"p0", "p1", "dealer", NULL, "owner"};
  for (int i = 0; i < 5; i++)
    if (fixed[i] != NULL && strcmp(name, fixed[i]) == 0)
      return cfg->m[i].present ? i : -1;
  if (strcmp(name, "client") == 0)
    return cfg->nclients > 0 ? CL_CLIENT0 : -1;
  for (int i = 0; i < cfg->nclients; i++) {
    const char *n = cfg->m[CL_CLIENT0 + i].name;
    if (strcmp(n, name) == 0 || (strncmp(n, "client ", 7) == 0 && strcmp(n + 7, name) == 0))
      return CL_CLIENT0 + i;
  }
  return -1;
}

int cl_node_open(const cl_config_t *cfg, int self, int listen, net_node_t **out,
                 void (*log)(void *ctx, const char *line), void *log_ctx, char *err,
                 size_t errlen) {
  *out = NULL;
  const cl_member_t *me = &cfg->m[self];
  if (me->key_path[0] == '\0') {
    snprintf(err, errlen, "%s: [%s] has no key file", cfg->path, me->name);
    return TANDEM_ECONFIG;
  }
  unsigned char *sk = sodium_malloc(NET_KEY_BYTES);
  unsigned char pk[NET_KEY_BYTES];
  if (sk == NULL)
    return TANDEM_ENOMEM;
  int rc = net_key_load(me->key_path, pk, sk);
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", me->key_path, tandem_strerror(rc));
    sodium_free(sk);
    return rc;
  }
  if (memcmp(pk, me->pk, NET_KEY_BYTES) != 0) {
    snprintf(err, errlen, "%s: the key does not match [%s] pubkey in %s", me->key_path,
             me->name, cfg->path);
    sodium_free(sk);
    return TANDEM_ECONFIG;
  }
  net_config_t nc;
  memset(&nc, 0, sizeof nc);
  if (listen && me->port != 0) {
    nc.listen_host = me->host;
    nc.listen_port = me->port;
  }
  nc.pk = pk;
  nc.sk = sk;
  nc.max_frame = cfg->max_frame;
  nc.max_msg = cfg->max_msg;
  nc.queue_bytes = cfg->queue_bytes;
  nc.timeout_ms = cfg->timeout_ms;
  nc.log = log;
  nc.log_ctx = log_ctx;
  nc.emu_delay_us = (uint32_t)cfg->emulate_delay_us;
  nc.emu_rate_bps = cfg->emulate_rate_bps;
  /* Every peer is declared inside net_node_new, before the listener accepts:
   * a peer that dials in the moment this daemon starts is then never
   * rejected as an unknown key. Two members with one key are refused first,
   * by name. */
  net_peer_decl_t decl[NET_MAX_PEERS];
  for (int id = 0; id < NET_MAX_PEERS; id++) {
    const cl_member_t *m = &cfg->m[id];
    if (id == self || !m->present || !m->has_pk)
      continue;
    for (size_t j = 0; j < nc.npeers; j++) {
      if (memcmp(decl[j].pk, m->pk, NET_KEY_BYTES) == 0) {
        snprintf(err, errlen, "%s: [%s] and [%s] have the same public key", cfg->path,
                 cfg->m[decl[j].id].name, m->name);
        sodium_free(sk);
        return TANDEM_ECONFIG;
      }
    }
    decl[nc.npeers++] = (net_peer_decl_t){id, m->port ? m->host : NULL, m->port, m->pk};
  }
  nc.peers = decl;
  net_node_t *node;
  rc = net_node_new(&node, &nc);
  sodium_free(sk);
  if (rc != 0) {
    if (rc == TANDEM_EADDRINUSE)
      snprintf(err, errlen, "cannot listen on %s port %u: address already in use", me->host,
               (unsigned)me->port);
    else
      snprintf(err, errlen, "cannot start the network node: %s", tandem_strerror(rc));
    return rc;
  }
  *out = node;
  return 0;
}

uint64_t cl_peer_link(net_node_t *node, int id) {
  net_stats_t st;
  net_peer_stats(node, id, &st);
  return st.links;
}

int cl_connect(net_node_t *node, int id, int timeout_ms) {
  double end = cl_now() + timeout_ms / 1000.0;
  for (;;) {
    if (net_peer_up(node, id))
      return 0;
    int rc = net_connect(node, id);
    if (rc == 0)
      return 0;
    if (rc == TANDEM_EAUTH || cl_now() >= end)
      return rc;
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

/* ---- the mpc transport --------------------------------------------------------- */

int cl_link_send_in_place(cl_link_t *l, mpc_role_t to, uint8_t *buf, size_t len) {
  if (l->peer[to] < 0 || len > SIZE_MAX - CL_TAG_BYTES)
    return TANDEM_EINVAL;
  memcpy(buf, &l->tag, CL_TAG_BYTES);
  return net_msg_send_on(l->node, l->peer[to], l->link[to], CL_CHAN_DATA, buf,
                         len + CL_TAG_BYTES);
}

static int link_send(mpc_transport_t *t, mpc_role_t to, const void *buf, size_t len) {
  cl_link_t *l = (cl_link_t *)t;
  if (len > SIZE_MAX - CL_TAG_BYTES)
    return TANDEM_EINVAL;
  uint8_t *m = malloc(len + CL_TAG_BYTES);
  if (m == NULL)
    return TANDEM_ENOMEM;
  if (len > 0)
    memcpy(m + CL_TAG_BYTES, buf, len);
  int rc = cl_link_send_in_place(l, to, m, len);
  sodium_memzero(m, len + CL_TAG_BYTES); /* shares, seeds and keys pass through here */
  free(m);
  return rc;
}

static int link_recv(mpc_transport_t *t, mpc_role_t from, void *buf, size_t len) {
  cl_link_t *l = (cl_link_t *)t;
  if (l->peer[from] < 0 || len > SIZE_MAX - CL_TAG_BYTES)
    return TANDEM_EINVAL;
  /* One deadline for the receive, however many messages of other steps are
   * dropped on the way: a fresh timeout per dropped message let a party wait
   * forever for a message that never came while later steps' messages kept
   * arriving (and were dropped unread by it). */
  double end = cl_now() + l->timeout_ms / 1000.0;
  if (l->due[from] > 0 && l->due[from] < end)
    end = l->due[from];
  for (;;) {
    unsigned char *m;
    size_t got;
    /* Past the deadline, what is already queued is still taken (a poll).
     * No length limit here: a message of another step may be longer, and is
     * dropped below like any other; every error of net_msg_take is then the
     * link's (a peer that died mid-message ends it with TANDEM_EPROTO, which
     * read as "a longer message, dropped" made this loop spin for ever). */
    double left_ms = (end - cl_now()) * 1000.0;
    int rc = net_msg_take_on(l->node, l->peer[from], l->link[from], CL_CHAN_DATA, SIZE_MAX, &m,
                             &got, left_ms < 1 ? 0 : (int)left_ms);
    if (rc != 0)
      return rc;
    int mine = got >= CL_TAG_BYTES && memcmp(m, &l->tag, CL_TAG_BYTES) == 0;
    if (mine && got == len + CL_TAG_BYTES && len > 0)
      memcpy(buf, m + CL_TAG_BYTES, len);
    sodium_memzero(m, got);
    free(m);
    if (mine)
      return got == len + CL_TAG_BYTES ? 0 : got == CL_TAG_BYTES ? TANDEM_ECANCELED : TANDEM_EPROTO;
    /* else another step's message: dropped */
  }
}

/* A round: the message is queued (net sends while this side waits), then the
 * peer's is received, so both sides may call this at once. */
static int link_exchange(mpc_transport_t *t, mpc_role_t peer, const void *sbuf, size_t slen,
                         void *rbuf, size_t rlen) {
  int rc = link_send(t, peer, sbuf, slen);
  return rc != 0 ? rc : link_recv(t, peer, rbuf, rlen);
}

static void link_close(mpc_transport_t *t) { (void)t; }

int cl_link_cancel(cl_link_t *l, mpc_role_t to) {
  if (l->peer[to] < 0)
    return TANDEM_EINVAL;
  return net_msg_send_on(l->node, l->peer[to], l->link[to], CL_CHAN_DATA, &l->tag, CL_TAG_BYTES);
}

static const mpc_transport_ops_t link_ops = {link_send, link_recv, link_exchange, link_close};

void cl_link_init(cl_link_t *l, net_node_t *node, mpc_role_t self, int client_id,
                  uint64_t tag, int timeout_ms) {
  memset(l, 0, sizeof *l);
  l->tag = tag;
  l->timeout_ms = timeout_ms > 0 ? timeout_ms : NET_DEFAULT_TIMEOUT_MS;
  l->base.ops = &link_ops;
  l->base.self = self;
  l->node = node;
  l->peer[MPC_P0] = CL_P0;
  l->peer[MPC_P1] = CL_P1;
  l->peer[MPC_DEALER] = CL_DEALER;
  l->peer[MPC_OWNER] = CL_OWNER;
  l->peer[MPC_CLIENT] = client_id;
}

/* ---- control messages ------------------------------------------------------------ */

#define CTRL_HDR 112

static void ctrl_pack(const cl_ctrl_t *h, uint8_t *b) {
  memset(b, 0, CTRL_HDR);
  memcpy(b, &h->type, 4);
  memcpy(b + 4, &h->status, 4);
  memcpy(b + 8, &h->seq, 8);
  memcpy(b + 16, &h->batch, 8);
  memcpy(b + 24, &h->peer, 4);
  memcpy(b + 28, &h->flags, 4);
  memcpy(b + 32, h->name, CL_NAME_MAX);
  memcpy(b + 96, &h->tag, 8);
  memcpy(b + 104, &h->version, 8);
}

int cl_ctrl_send(net_node_t *node, int peer, const cl_ctrl_t *h, const void *payload,
                 size_t plen) {
  return cl_ctrl_send_on(node, peer, 0, h, payload, plen);
}

int cl_ctrl_send_on(net_node_t *node, int peer, uint64_t link, const cl_ctrl_t *h,
                    const void *payload, size_t plen) {
  if (plen > CL_CTRL_MAX)
    return TANDEM_EINVAL;
  uint8_t *b = malloc(CTRL_HDR + plen);
  if (b == NULL)
    return TANDEM_ENOMEM;
  ctrl_pack(h, b);
  if (plen > 0)
    memcpy(b + CTRL_HDR, payload, plen);
  int rc = net_msg_send_on(node, peer, link, CL_CHAN_CTRL, b, CTRL_HDR + plen);
  free(b);
  return rc;
}

int cl_ctrl_recv(net_node_t *node, int peer, cl_ctrl_t *h, uint8_t **payload, size_t *plen,
                 int timeout_ms) {
  *payload = NULL;
  *plen = 0;
  unsigned char *b;
  size_t len;
  int rc = net_msg_take(node, peer, CL_CHAN_CTRL, CTRL_HDR + CL_CTRL_MAX, &b, &len, timeout_ms);
  if (rc != 0)
    return rc;
  if (len < CTRL_HDR) {
    free(b);
    return TANDEM_EPROTO;
  }
  memset(h, 0, sizeof *h);
  memcpy(&h->type, b, 4);
  memcpy(&h->status, b + 4, 4);
  memcpy(&h->seq, b + 8, 8);
  memcpy(&h->batch, b + 16, 8);
  memcpy(&h->peer, b + 24, 4);
  memcpy(&h->flags, b + 28, 4);
  memcpy(h->name, b + 32, CL_NAME_MAX);
  h->name[CL_NAME_MAX - 1] = '\0';
  memcpy(&h->tag, b + 96, 8);
  memcpy(&h->version, b + 104, 8);
  if (len > CTRL_HDR) {
    /* The payload, NUL-terminated for the texts among them. */
    *plen = len - CTRL_HDR;
    *payload = malloc(*plen + 1);
    if (*payload == NULL) {
      free(b);
      return TANDEM_ENOMEM;
    }
    memcpy(*payload, b + CTRL_HDR, *plen);
    (*payload)[*plen] = '\0';
  }
  free(b);
  return 0;
}

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

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int cl_file_seal(const char *path, const void *buf, size_t len) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  uint8_t hash[32];
  crypto_generichash(hash, sizeof hash, buf, len, NULL, 0);
  int rc = write_all(fd, buf, len);
  if (rc == 0)
    rc = write_all(fd, hash, sizeof hash);
  if (rc == 0 && fsync(fd) != 0)
    rc = -errno;
  close(fd);
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -errno;
  if (rc != 0) {
    unlink(tmp);
    return rc;
  }
  /* The rename is durable once the directory is synced. */
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", path);
  int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  return 0;
}

int cl_file_unseal(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen) {
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
    snprintf(err, errlen, "%s: corrupt (not a sealed Tandem file)", path);
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
