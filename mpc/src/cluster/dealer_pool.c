/* dealer_pool.c - the dealer's preprocessing made ahead (dealer_int.h): the
 * pools of ready queries per (model, batch size), their two generator
 * threads, and the wait of a query for its preprocessing. dealer.c's file
 * comment says how long a query may wait and why. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dealer_int.h"

size_t cl__prep_size(const prep_t *p) {
  return p->len[0] + p->len[1] + p->len[2] + 3 * CL_TAG_BYTES;
}

void cl__prep_free(cl_dealer_t *d, prep_t *p) {
  atomic_fetch_sub(&d->mem_held, cl__prep_size(p));
  mpc_prep_close(p);
  free(p);
}

/* ---- the memory budget (pool_mem_max) ---------------------------------------- */

/* Free heap the dealer keeps for its next preprocessing before it gives the
 * rest back to the system. */
#define HEAP_SLACK ((size_t)64 << 20)

void cl__heap_trim(cl_dealer_t *d) {
  /* tandem's main keeps freed memory in the heap (M_TRIM_THRESHOLD 1 GiB,
   * no mmap: the next query reuses the pages without faulting them in).
   * In the dealer that kept every byte it had ever held resident: in the
   * soak (pool_mem_max 384 MB, CNN at 8 rows) the heap had 755 MB from the
   * system of which 402 MB were in use, and malloc_trim(0) took the
   * resident size from 731 MB to 395 MB. Its preprocessing is within the
   * budget; once the heap it holds from the system is over the budget by
   * more than HEAP_SLACK, the free heap beyond HEAP_SLACK goes back. Within
   * it nothing is trimmed: trimming after every job made each next
   * preprocessing fault its pages in again (what the heap setting avoids). */
  if (!CL_GLIBC_HEAP)
    return;
  struct mallinfo2 mi = mallinfo2();
  if (mi.fordblks <= HEAP_SLACK || mi.arena <= d->cfg->pool_mem_max + HEAP_SLACK)
    return;
  (void)malloc_trim(HEAP_SLACK);
  cl__logl(&d->hooks, CL_LOG_DEBUG, WHO, "memory: %.0f MB of preprocessing held (pool_mem_max "
           "%.0f MB), heap %.0f MB in use; %.0f MB of free heap given back",
           (double)atomic_load(&d->mem_held) / 1e6, (double)d->cfg->pool_mem_max / 1e6,
           (double)mi.uordblks / 1e6, (double)(mi.fordblks - HEAP_SLACK) / 1e6);
}

/* One query's preprocessing of pool p as the dealer holds it (the tag's
 * headroom included); 0 while not known. */
static size_t pool_one(const pool_t *p) {
  return p->bytes ? p->bytes + 3 * CL_TAG_BYTES : 0;
}

/* Whether pool q's ready queries may be evicted for pool p: nobody waits
 * for q, and q was asked for less recently than p, or p is a query's (the
 * on-demand generator's: a waiting query comes before any pool). */
static int evictable(const pool_t *q, const pool_t *p, int for_query) {
  return q != p && q->n > 0 && q->waiting == 0 && (for_query || q->used < p->used);
}

/* Whether `need` more bytes fit pool_mem_max once every ready query that
 * may go for p (evictable) is freed. Under d->mu. */
static int mem_could_fit(cl_dealer_t *d, const pool_t *p, size_t need, int for_query) {
  size_t budget = d->cfg->pool_mem_max, held = atomic_load(&d->mem_held), spare = 0;
  /* A query beyond the whole budget is refused by its generator (with the
   * reason, for the client), not left waiting. */
  if (budget == 0 || need > budget)
    return 1;
  for (unsigned i = 0; i < d->npools; i++)
    if (evictable(&d->pools[i], p, for_query))
      spare += d->pools[i].n * pool_one(&d->pools[i]);
  return held - (spare < held ? spare : held) + need <= budget;
}

/* Frees ready queries of the pools asked for least recently (evictable for
 * p), one at a time, until `need` more bytes fit pool_mem_max; 1 if they
 * fit then (0: nothing is freed). Logs each pool it empties. Under d->mu. */
static int mem_make_room(cl_dealer_t *d, const pool_t *p, size_t need, int for_query) {
  size_t budget = d->cfg->pool_mem_max;
  if (budget == 0)
    return 1;
  if (!mem_could_fit(d, p, need, for_query))
    return 0;
  while (atomic_load(&d->mem_held) + need > budget) {
    pool_t *old = NULL;
    for (unsigned i = 0; i < d->npools; i++)
      if (evictable(&d->pools[i], p, for_query) && (old == NULL || d->pools[i].used < old->used))
        old = &d->pools[i];
    if (old == NULL)
      return 0;
    cl__prep_free(d, old->ready[--old->n]);
    old->was_full = 0;
    if (old->n == 0)
      LOG(d, "%s at batch %zu: prepared queries evicted to stay within pool_mem_max "
             "(%.1f MB)", old->name, old->batch, (double)budget / 1e6);
  }
  return 1;
}

/* Counts `add` more bytes held (a generator starting one). Under d->mu. */
static void mem_add(cl_dealer_t *d, size_t add) {
  size_t now = atomic_fetch_add(&d->mem_held, add) + add;
  if (now > d->mem_peak)
    d->mem_peak = now;
}

pool_t *cl__pool_find(cl_dealer_t *d, const char *name, size_t batch, int create) {
  for (unsigned i = 0; i < d->npools; i++)
    if (d->pools[i].batch == batch && strcmp(d->pools[i].name, name) == 0)
      return &d->pools[i];
  if (!create)
    return NULL;
  if (d->npools == POOLS_CAP) {
    /* Evict the pool asked for least recently, of those nobody is making
     * or waiting for (with two generators and one worker, one always is). */
    pool_t *old = NULL;
    for (unsigned i = 0; i < d->npools; i++) {
      pool_t *q = &d->pools[i];
      if (!q->making && q->waiting == 0 && (old == NULL || q->used < old->used))
        old = q;
    }
    if (old == NULL)
      return NULL;
    LOG(d, "%s at batch %zu: pool evicted (%u pools at most)", old->name, old->batch,
        (unsigned)POOLS_CAP);
    for (unsigned i = 0; i < old->n; i++)
      cl__prep_free(d, old->ready[i]);
    *old = d->pools[--d->npools];
  }
  pool_t *p = &d->pools[d->npools++];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->batch = batch;
  return p;
}

void cl__pools_drop_model(cl_dealer_t *d, const char *name) {
  for (unsigned i = 0; i < d->npools;) {
    if (strcmp(d->pools[i].name, name) == 0) {
      for (unsigned j = 0; j < d->pools[i].n; j++)
        cl__prep_free(d, d->pools[i].ready[j]);
      d->pools[i] = d->pools[--d->npools];
    } else {
      i++;
    }
  }
}

/* Drops the pool of one (model, batch). Under d->mu. */
static void pool_drop(cl_dealer_t *d, const char *name, size_t batch) {
  for (unsigned i = 0; i < d->npools; i++)
    if (d->pools[i].batch == batch && strcmp(d->pools[i].name, name) == 0) {
      for (unsigned j = 0; j < d->pools[i].n; j++)
        cl__prep_free(d, d->pools[i].ready[j]);
      d->pools[i] = d->pools[--d->npools];
      return;
    }
}

/* Records why a (model, batch) cannot be prepared. Under d->mu. */
static void failure_note(cl_dealer_t *d, const char *name, size_t batch, const char *why) {
  unsigned i = d->nfailed++ % 8;
  snprintf(d->failed[i].name, sizeof d->failed[i].name, "%s", name);
  d->failed[i].batch = batch;
  snprintf(d->failed[i].why, sizeof d->failed[i].why, "%s", why);
}

static const char *failure_find(cl_dealer_t *d, const char *name, size_t batch) {
  for (unsigned k = 0; k < 8 && k < d->nfailed; k++) {
    unsigned i = (d->nfailed - 1 - k) % 8;
    if (d->failed[i].batch == batch && strcmp(d->failed[i].name, name) == 0)
      return d->failed[i].why;
  }
  return NULL;
}

static unsigned pool_target(cl_dealer_t *d) {
  unsigned target = d->cfg->pool ? d->cfg->pool : 1;
  return target > POOL_MAX ? POOL_MAX : target;
}

/* The generator's seconds per byte of preprocessing for a model (0: not
 * measured yet). Under d->mu. */
double *cl__rate_slot(cl_dealer_t *d, const char *name, int create) {
  for (unsigned i = 0; i < d->nrate && i < 8; i++)
    if (strcmp(d->rate[i].name, name) == 0)
      return &d->rate[i].s_per_byte;
  if (!create)
    return NULL;
  unsigned i = d->nrate++ % 8;
  snprintf(d->rate[i].name, sizeof d->rate[i].name, "%s", name);
  d->rate[i].s_per_byte = 0;
  return &d->rate[i].s_per_byte;
}

/* Seconds until the generator has one query's preprocessing ready for p,
 * from its measured rate on that model; -1 when it cannot tell (no rate yet,
 * or the size is not known until the generator first looks at the pool).
 * Under d->mu. */
static double pool_eta(cl_dealer_t *d, const pool_t *p) {
  const double *r = cl__rate_slot(d, p->name, 0);
  if (r == NULL || *r <= 0 || p->bytes == 0)
    return -1;
  double one = *r * (double)p->bytes;
  return p->making ? one - (cl__now(&d->hooks) - p->since) : one;
}

/* The pool a generator should work on, none being made already: for the
 * on-demand generator one a query waits for; for the refill generator the
 * emptiest below the target, and none while a query waits (the cores are the
 * on-demand one's then). Under d->mu. */
static pool_t *pool_pick(cl_dealer_t *d, int on_demand) {
  pool_t *best = NULL;
  unsigned target = pool_target(d);
  for (unsigned i = 0; i < d->npools; i++) {
    pool_t *p = &d->pools[i];
    if (p->waiting > 0 && p->n == 0) {
      if (!on_demand)
        return NULL;
      if (!p->making && mem_could_fit(d, p, pool_one(p), 1))
        return p;
    } else if (!on_demand && !p->making && p->n < target && (best == NULL || p->n < best->n) &&
               mem_could_fit(d, p, pool_one(p), 0)) {
      best = p;
    }
  }
  return on_demand ? NULL : best;
}

void cl__timed_wait_ms(cl_dealer_t *d, long ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += ms * 1000 * 1000;
  ts.tv_sec += ts.tv_nsec / 1000000000;
  ts.tv_nsec %= 1000000000;
  pthread_cond_timedwait(&d->cv, &d->mu, &ts);
}

/* The plan of (name, batch) for a generator, with *pool the pool it makes
 * it for: the cached one, or one compiled without d->mu (a large plan takes
 * seconds, and every query and generator waits on d->mu; the model is not
 * replaced meanwhile, as the generator holds its gen_mu) and then cached.
 * The pool is marked `making` meanwhile, so the other generator leaves it
 * alone; *pool is looked up again after (NULL when it was dropped or
 * evicted meanwhile). Called and returns under d->mu. */
static int gen_plan(cl_dealer_t *d, pool_t **pool, const char *name, size_t batch,
                    cl_plan_t **pl, char *err, size_t errlen) {
  cl_model_t *m;
  int rc = cl_store_get(&d->store, name, &m, err, errlen);
  if (rc != 0 || (*pl = cl_model_plan_find(m, batch)) != NULL)
    return rc;
  (*pool)->making = 1;
  pthread_mutex_unlock(&d->mu);
  (void)cl__fault(&d->hooks, CL_FAULT_DEALER_COMPILE, batch, 0);
  cl_plan_t fresh;
  rc = cl_model_plan_make(&d->store, m, batch, &fresh, err, errlen);
  pthread_mutex_lock(&d->mu);
  if ((*pool = cl__pool_find(d, name, batch, 0)) != NULL)
    (*pool)->making = 0;
  if (rc != 0)
    return rc;
  if (*pool == NULL) {
    cl_model_plan_discard(&d->store, &fresh);
    return 0;
  }
  return cl_model_plan_put(&d->store, m, &fresh, pl, err, errlen);
}

/* Two generators: one refills the pools ahead, the other makes only what a
 * query waits for, so a query of a batch size with no pool never waits
 * behind another size's refill (it shares the cores with it instead; the
 * refill starts nothing new while a query waits). They never work on the
 * same pool (`making`), so never on the same plan's dealer object, and the
 * plan they use is marked busy, so the store never replaces it under them.
 *
 * Lock order: gen_mu[0], gen_mu[1], then mu. Generator g holds gen_mu[g]
 * only while it makes keys from a model (never while idle), so a SHARE
 * (which takes both) never replaces the model under it.
 *
 * It starts nothing while the worker sends a query's preprocessing: the
 * parties wait for that message under their timeout, and on a small machine
 * a generator filling the pool ahead takes the cores that seal it (and that
 * the parties need to open it). No query waits for the pool meanwhile (the
 * worker serves one job at a time). */
void *cl__generator_main(void *arg) {
  gen_arg_t *ga = arg;
  cl_dealer_t *d = ga->d;
  while (!atomic_load(&d->stop)) {
    pthread_mutex_lock(&d->mu);
    if (d->sending || pool_pick(d, ga->on_demand) == NULL)
      cl__timed_wait_ms(d, ga->on_demand ? 50 : 200);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_lock(&d->gen_mu[ga->on_demand]);
    pthread_mutex_lock(&d->mu);
    pool_t *best = d->sending ? NULL : pool_pick(d, ga->on_demand);
    if (best == NULL) {
      pthread_mutex_unlock(&d->mu);
      pthread_mutex_unlock(&d->gen_mu[ga->on_demand]);
      continue;
    }
    char name[CL_NAME_MAX], err[512];
    snprintf(name, sizeof name, "%s", best->name);
    size_t batch = best->batch;
    cl_plan_t *pl = NULL;
    int rc = gen_plan(d, &best, name, batch, &pl, err, sizeof err);
    mpc_role_t big;
    size_t big_bytes;
    if (rc == 0 && best == NULL) { /* the pool went while the plan was compiled */
      pthread_mutex_unlock(&d->mu);
      pthread_mutex_unlock(&d->gen_mu[ga->on_demand]);
      continue;
    }
    if (rc == 0 && !cl_prep_fits(pl->plan, d->cfg->max_msg, &big, &big_bytes)) {
      /* A query whose preprocessing exceeds the largest message is refused
       * here, before any key is made. */
      rc = TANDEM_EINVAL;
      snprintf(err, sizeof err, "its preprocessing (%zu bytes for %s) exceeds max_msg",
               big_bytes, mpc_role_name(big));
    }
    size_t one = 0;
    if (rc == 0) {
      static const mpc_role_t roles[3] = {MPC_P0, MPC_P1, MPC_CLIENT};
      for (int i = 0; i < 3; i++)
        one += mpc_plan_prep_bytes(pl->plan, roles[i]);
      one += 3 * CL_TAG_BYTES;
    }
    if (rc == 0 && d->cfg->pool_mem_max && one > d->cfg->pool_mem_max) {
      rc = TANDEM_ENOMEM;
      snprintf(err, sizeof err, "its preprocessing (%.1f MB) exceeds the dealer's "
               "pool_mem_max (%.1f MB)", (double)one / 1e6, (double)d->cfg->pool_mem_max / 1e6);
    }
    if (rc != 0) {
      LOGW(d, "cannot prepare %s at batch %zu: %s", name, batch, err);
      failure_note(d, name, batch, err);
      pool_drop(d, name, batch);
      pthread_cond_broadcast(&d->cv);
      pthread_mutex_unlock(&d->mu);
      pthread_mutex_unlock(&d->gen_mu[ga->on_demand]);
      continue;
    }
    mpc_dealer_t *dl = pl->obj;
    /* What a waiting query reads to tell whether it can still be served,
     * and what the budget counts. */
    best->bytes = one - 3 * CL_TAG_BYTES;
    if (!mem_make_room(d, best, one, ga->on_demand)) {
      /* Not now: what is being made or sent meanwhile takes the budget.
       * pool_pick passes this pool over until memory is freed. */
      pthread_mutex_unlock(&d->mu);
      pthread_mutex_unlock(&d->gen_mu[ga->on_demand]);
      continue;
    }
    mem_add(d, one);
    best->making = 1;
    pl->busy = 1;
    double t0 = best->since = cl__now(&d->hooks);
    pthread_mutex_unlock(&d->mu);
    (void)cl__fault(&d->hooks, CL_FAULT_DEALER_GENERATE, batch, ga->on_demand);
    prep_t *prep = calloc(1, sizeof *prep);
    rc = prep == NULL ? TANDEM_ENOMEM : mpc_dealer_prep(dl, CL_TAG_BYTES, prep);
    double took = cl__now(&d->hooks) - t0;
    pthread_mutex_lock(&d->mu);
    /* The reservation becomes what was made (the same, by construction). */
    atomic_fetch_sub(&d->mem_held, one);
    if (rc == 0)
      mem_add(d, cl__prep_size(prep));
    pool_t *p = cl__pool_find(d, name, batch, 0);
    if (p != NULL)
      p->making = 0;
    pl->busy = 0;
    if (rc == 0 && p != NULL && p->bytes > 0) {
      /* The latest measure counts most: the machine's load changes. */
      double *r = cl__rate_slot(d, name, 1), now = took / (double)p->bytes;
      *r = *r > 0 ? 0.5 * *r + 0.5 * now : now;
    }
    if (rc != 0) {
      /* Not retried: the next query of this batch size asks again. */
      LOGW(d, "preprocessing for %s at batch %zu failed: %s", name, batch,
             tandem_strerror(rc));
      free(prep); /* mpc_dealer_prep released its messages */
      failure_note(d, name, batch, tandem_strerror(rc));
      pool_drop(d, name, batch);
    } else if (p == NULL || p->n == POOL_MAX) {
      cl__prep_free(d, prep);
    } else {
      p->ready[p->n++] = prep;
      if (!p->was_full && p->n >= pool_target(d)) {
        p->was_full = 1;
        LOG(d, "%s at batch %zu: %u queries prepared ahead (%.1f MB, %.2f s each)", name,
               batch, p->n, (double)p->bytes / 1e6, took);
      }
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_unlock(&d->gen_mu[ga->on_demand]);
    cl__heap_trim(d); /* what it evicted for this one, in other sizes' holes */
  }
  return NULL;
}

/* Puts an unused preprocessing back at the front of its pool (it was never
 * sent, so another query may use it), or frees it. Under d->mu. */
void cl__pool_return(cl_dealer_t *d, const char *name, size_t batch, prep_t *prep) {
  pool_t *p = cl__pool_find(d, name, batch, 0);
  if (p == NULL || p->n == POOL_MAX) {
    cl__prep_free(d, prep);
    return;
  }
  memmove(p->ready + 1, p->ready, p->n * sizeof p->ready[0]);
  p->ready[0] = prep;
  p->n++;
}

/* The requester of j is still connected on the link its request came on (a
 * client that died and started again under its name is another query). */
int cl__requester_here(cl_dealer_t *d, const job_t *j) {
  return net_peer_up(d->node, j->from) && cl_peer_link(d->node, j->from) == j->links;
}

/* Takes one query's preprocessing for j out of its pool, waiting for the
 * generators while they can still make it before `deadline` (cl__now).
 * Under d->mu. 0 with *prep set, or an error with the reason in err. */
int cl__prep_take(cl_dealer_t *d, const job_t *j, size_t batch, double deadline,
                  prep_t **prep, uint32_t *flags, double *t_wait, char *err,
                  size_t errlen) {
  int rc = 0;
  pool_t *p = cl__pool_find(d, j->h.name, batch, 1);
  int no_room = p == NULL;
  if (p != NULL)
    p->used = cl__now(&d->hooks);
  /* A new request clears an old failure: memory or limits may have changed. */
  for (unsigned k = 0; k < 8; k++)
    if (d->failed[k].batch == batch && strcmp(d->failed[k].name, j->h.name) == 0)
      d->failed[k].name[0] = '\0';
  double t0 = cl__now(&d->hooks), eta = -1;
  if (p != NULL && p->n == 0) {
    *flags |= CL_FLAG_WAITED;
    LOG(d, "query from client %d (%s, batch %zu): no preprocessing ready, waiting for it",
           j->from, j->h.name, batch);
  }
  /* Wait while the generator can still make it in time: it is making it
   * now or will next (a waiting pool comes first), it has not given up on
   * it (the pool is gone then), and its rate does not say it takes far
   * longer than the time left. */
  int hopeless = 0, left = 0;
  while (p != NULL && p->n == 0 && !atomic_load(&d->stop) && cl__now(&d->hooks) < deadline) {
    eta = pool_eta(d, p);
    if (eta > 4.0 * (deadline - cl__now(&d->hooks)) + 1.0) {
      hopeless = 1;
      break;
    }
    if (!cl__requester_here(d, j)) {
      left = 1;
      break;
    }
    p->waiting++;
    pthread_cond_broadcast(&d->cv);
    cl__timed_wait_ms(d, 100);
    /* The generator may have dropped or moved the pool meanwhile. */
    p = cl__pool_find(d, j->h.name, batch, 0);
    if (p != NULL)
      p->waiting--;
  }
  *t_wait = cl__now(&d->hooks) - t0;
  if (p == NULL || p->n == 0) {
    const char *why = p == NULL ? failure_find(d, j->h.name, batch) : NULL;
    if (no_room) {
      rc = TANDEM_ENOMEM;
      snprintf(err, errlen, "the dealer is making preprocessing for %u other batch "
               "sizes at once; ask again later", (unsigned)POOLS_CAP);
    } else if (why != NULL) {
      rc = TANDEM_EINVAL;
      snprintf(err, errlen, "no preprocessing for %s at batch %zu: %s", j->h.name, batch,
               why);
    } else if (left) {
      rc = TANDEM_ECLOSED;
      snprintf(err, errlen, "the client left while its preprocessing was being made");
    } else {
      rc = TANDEM_ETIMEDOUT;
      char est[96] = "";
      if (eta >= 0)
        snprintf(est, sizeof est, ", about %.0f s more at its current rate", eta);
      snprintf(err, errlen,
               "no preprocessing for %s at batch %zu %s within the timeout (%.0f s): the "
               "dealer is still making it%s; ask again later, or raise timeout_ms",
               j->h.name, batch, hopeless ? "can be made" : "was made",
               d->cfg->timeout_ms / 1000.0, est);
    }
  } else {
    *prep = p->ready[0];
    memmove(p->ready, p->ready + 1, (p->n - 1) * sizeof p->ready[0]);
    p->n--;
    pthread_cond_broadcast(&d->cv);
  }
  return rc;
}
