/* config.c - the cluster's config file (inih), its members' nodes and
 * links, the clock, and the hooks' defaults (mpc_cluster.h). */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cluster_int.h"

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

/* A host or bind value: an IPv4 address, an IPv6 literal (bare or in
 * brackets) or a hostname, resolved here once (getaddrinfo) into the numeric
 * address net/ takes, written to out. A name with both takes its first IPv4
 * address, else its first IPv6 one (write the address to choose). 0, or -1
 * with the error naming the section, key and value. */
static int resolve_host(parse_t *p, const char *section, const char *key, const char *value,
                        char *out, size_t cap) {
  char name[64];
  size_t len = strlen(value);
  if (len == 0 || len >= sizeof name) {
    set_err(p, "[%s] %s = %s: %s", section, key, value, len ? "too long" : "empty");
    return -1;
  }
  if (value[0] == '[' && len > 2 && value[len - 1] == ']')
    snprintf(name, sizeof name, "%.*s", (int)(len - 2), value + 1);
  else
    snprintf(name, sizeof name, "%s", value);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
#ifdef TANDEM_FUZZING
  hints.ai_flags = AI_NUMERICHOST; /* the fuzz tree: no DNS (CMakeLists.txt) */
#endif
  int rc = getaddrinfo(name, NULL, &hints, &res);
  if (rc != 0 || res == NULL) {
    set_err(p, "[%s] %s = %s: cannot resolve the address: %s", section, key, value,
            rc != 0 ? gai_strerror(rc) : "no address");
    return -1;
  }
  const struct addrinfo *v4 = NULL, *v6 = NULL;
  for (const struct addrinfo *a = res; a != NULL; a = a->ai_next) {
    if (a->ai_family == AF_INET && v4 == NULL)
      v4 = a;
    else if (a->ai_family == AF_INET6 && v6 == NULL)
      v6 = a;
  }
  const struct addrinfo *pick = v4 != NULL ? v4 : v6;
  rc = pick == NULL ? EAI_FAMILY
                    : getnameinfo(pick->ai_addr, pick->ai_addrlen, out, (socklen_t)cap, NULL, 0,
                                  NI_NUMERICHOST);
  freeaddrinfo(res);
  if (rc != 0) {
    set_err(p, "[%s] %s = %s: no IPv4 or IPv6 address: %s", section, key, value,
            gai_strerror(rc));
    return -1;
  }
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
    else if (strcmp(key, "plan_mem_max") == 0 && parse_uint(value, (size_t)1 << 44, &u) == 0)
      c->plan_mem_max = (size_t)u;
    else if (strcmp(key, "plan_keep") == 0 && parse_uint(value, (size_t)1 << 44, &u) == 0)
      c->plan_keep = (size_t)u;
    else if (strcmp(key, "pool_mem_max") == 0 && parse_uint(value, (size_t)1 << 44, &u) == 0 &&
             u > 0)
      c->pool_mem_max = (size_t)u;
    else if (strcmp(key, "queue_max") == 0 && parse_uint(value, 1 << 20, &u) == 0 && u > 0)
      c->queue_max = (unsigned)u;
    else if (strcmp(key, "queue_bytes") == 0 && parse_uint(value, (size_t)1 << 34, &u) == 0)
      c->queue_bytes = (size_t)u;
    else if (strcmp(key, "handshake_timeout_ms") == 0 && parse_uint(value, 600000, &u) == 0 &&
             u > 0)
      c->handshake_timeout_ms = (int)u;
    else if (strcmp(key, "client_max_msg") == 0 && parse_uint(value, (size_t)1 << 34, &u) == 0 &&
             u > 0)
      c->client_max_msg = (size_t)u;
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
    if (resolve_host(p, section, key, value, m->addr, sizeof m->addr) != 0)
      return 0;
    snprintf(m->host, sizeof m->host, "%s", value);
  } else if (strcmp(key, "bind") == 0) {
    if (id != CL_P0 && id != CL_P1 && id != CL_DEALER)
      return set_err(p, "[%s] bind: only the daemons (p0, p1, dealer) listen", section);
    if (resolve_host(p, section, key, value, m->bind, sizeof m->bind) != 0)
      return 0;
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

size_t cl_default_pool_mem(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0)
    return (size_t)1 << 30;
  return (size_t)pages / 4 * (size_t)page;
}

int cl_config_load(const char *path, cl_config_t *cfg, char *err, size_t errlen) {
  memset(cfg, 0, sizeof *cfg);
  cfg->timeout_ms = NET_DEFAULT_TIMEOUT_MS;
  cfg->pool = 2;
  cfg->plan_mem_max = (size_t)4 << 30;
  cfg->plan_keep = CL_PLAN_KEEP;
  cfg->pool_mem_max = cl_default_pool_mem();
  cfg->queue_max = CL_QUEUE_MAX;
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
    if (cfg->m[id].present && cfg->m[id].bind[0] == '\0')
      snprintf(cfg->m[id].bind, sizeof cfg->m[id].bind, "%s", cfg->m[id].addr);
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

/* What a daemon takes from each member (net_limits_t): the channels its role
 * sends on (the data channel between the parties and from the owner and
 * clients to them, control messages to the dealer), and from clients and the
 * owner, the least trusted, a smaller message limit and deadlines that
 * progress cannot extend. A client or the owner takes anything from the
 * daemons it dials. */
static net_limits_t peer_limits(const cl_config_t *cfg, int self, int id) {
  net_limits_t l = {0};
  int daemon_peer = id == CL_P0 || id == CL_P1 || id == CL_DEALER;
  if (self != CL_P0 && self != CL_P1 && self != CL_DEALER)
    return l;
  if (!daemon_peer) {
    l.max_msg = cfg->client_max_msg ? cfg->client_max_msg : CL_CLIENT_MAX_MSG;
    l.strict = 1;
  }
  if (self == CL_DEALER)
    l.chans = daemon_peer ? 0 : 1u << CL_CHAN_CTRL;
  else if (id == CL_DEALER)
    l.chans = 1u << CL_CHAN_DATA | 1u << CL_CHAN_CTRL;
  else
    l.chans = 1u << CL_CHAN_DATA;
  return l;
}

int cl_config_reload_clients(cl_config_t *cfg, int self, net_node_t *node, int *added,
                             char *err, size_t errlen) {
  *added = 0;
  cl_config_t *fresh = malloc(sizeof *fresh);
  if (fresh == NULL)
    return TANDEM_ENOMEM;
  int rc = cl_config_load(cfg->path, fresh, err, errlen);
  if (rc == 0 && fresh->nclients < cfg->nclients) {
    snprintf(err, errlen, "%s: %d client sections, fewer than the %d loaded (a client is "
             "removed by a restart)", cfg->path, fresh->nclients, cfg->nclients);
    rc = TANDEM_ECONFIG;
  }
  for (int i = 0; rc == 0 && i < cfg->nclients; i++)
    if (strcmp(fresh->m[CL_CLIENT0 + i].name, cfg->m[CL_CLIENT0 + i].name) != 0) {
      snprintf(err, errlen, "%s: [%s] is where [%s] was; add new clients after the others "
               "(reordering them takes a restart)", cfg->path, fresh->m[CL_CLIENT0 + i].name,
               cfg->m[CL_CLIENT0 + i].name);
      rc = TANDEM_ECONFIG;
    }
  /* The keys first, then the config: a daemon's threads read a client's
   * section only once its key is declared. */
  for (int id = CL_CLIENT0; rc == 0 && id < CL_CLIENT0 + fresh->nclients; id++) {
    const cl_member_t *m = &fresh->m[id];
    if (!m->has_pk)
      continue;
    int known = id < CL_CLIENT0 + cfg->nclients && cfg->m[id].has_pk;
    if (known && memcmp(cfg->m[id].pk, m->pk, NET_KEY_BYTES) == 0)
      continue;
    net_limits_t lim = peer_limits(fresh, self, id);
    if ((rc = net_peer_limits(node, id, &lim)) == 0)
      rc = net_peer_add(node, id, NULL, 0, m->pk);
    if (rc != 0)
      snprintf(err, errlen, "%s: [%s]: its key is another member's", cfg->path, m->name);
    else
      (*added)++;
  }
  if (rc == 0) {
    for (int id = CL_CLIENT0; id < CL_CLIENT0 + fresh->nclients; id++)
      cfg->m[id] = fresh->m[id];
    cfg->nclients = fresh->nclients;
  }
  free(fresh);
  return rc;
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
    nc.listen_host = me->bind;
    nc.listen_port = me->port;
  }
  nc.pk = pk;
  nc.sk = sk;
  nc.max_frame = cfg->max_frame;
  nc.max_msg = cfg->max_msg;
  nc.queue_bytes = cfg->queue_bytes;
  nc.timeout_ms = cfg->timeout_ms;
  nc.handshake_timeout_ms = cfg->handshake_timeout_ms;
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
    decl[nc.npeers++] = (net_peer_decl_t){id, m->port ? m->addr : NULL, m->port, m->pk,
                                          peer_limits(cfg, self, id)};
  }
  nc.peers = decl;
  net_node_t *node;
  rc = net_node_new(&node, &nc);
  sodium_free(sk);
  if (rc != 0) {
    if (rc == TANDEM_EADDRINUSE)
      snprintf(err, errlen, "cannot listen on %s port %u: address already in use", me->bind,
               (unsigned)me->port);
    else if (nc.listen_host != NULL && rc != TANDEM_ENOMEM)
      snprintf(err, errlen, "[%s] cannot listen on %s port %u (bind, default its host): %s",
               me->name, me->bind, (unsigned)me->port, tandem_strerror(rc));
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

/* ---- hooks ------------------------------------------------------------------ */

__attribute__((format(printf, 4, 0))) static void log_v(const cl_hooks_t *h, int level,
                                                        const char *who, const char *fmt,
                                                        va_list ap) {
  if (h == NULL || (h->log == NULL && h->log_at == NULL))
    return;
  char line[1024];
  vsnprintf(line, sizeof line, fmt, ap);
  if (h->log_at != NULL)
    h->log_at(h->ctx, level, who, line);
  else
    h->log(h->ctx, who, line);
}

void cl__log(const cl_hooks_t *h, const char *who, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_v(h, CL_LOG_INFO, who, fmt, ap);
  va_end(ap);
}

void cl__logl(const cl_hooks_t *h, int level, const char *who, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_v(h, level, who, fmt, ap);
  va_end(ap);
}

void cl__net_log(void *ctx, const char *line) {
  const cl__netlog_t *nl = ctx;
  static const char *const bad[] = {"failed", "rejected", "refused", "dropped", "not in by",
                                    "error"};
  int level = CL_LOG_INFO;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (strstr(line, bad[i]) != NULL)
      level = CL_LOG_WARN;
  cl__logl(nl->hooks, level, nl->who, "%s", line);
}

double cl__now(const cl_hooks_t *h) {
  return h != NULL && h->now != NULL ? h->now(h->ctx) : cl_now();
}

int cl__fault(const cl_hooks_t *h, cl_fault_t where, uint64_t seq, int peer) {
  return h != NULL && h->fault != NULL ? h->fault(h->ctx, where, seq, peer) : 0;
}
