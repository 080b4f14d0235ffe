/* cluster_int.h - what the cluster's sources share and nobody else sees: the
 * hooks' defaults (log, clock, faults) as the services call them. */
#ifndef TANDEM_CLUSTER_INT_H
#define TANDEM_CLUSTER_INT_H

#include "mpc_cluster.h"

/* "line" through hooks->log_at, else hooks->log (nothing when both are
 * NULL): cl__log at CL_LOG_INFO, cl__logl at `level`. */
void cl__log(const cl_hooks_t *h, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cl__logl(const cl_hooks_t *h, int level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The net log adapter of a service: ctx is a cl__netlog_t. */
typedef struct {
  const cl_hooks_t *hooks;
  const char *who;
} cl__netlog_t;
void cl__net_log(void *ctx, const char *line);
/* hooks->now, or cl_now. */
double cl__now(const cl_hooks_t *h);
/* hooks->fault, or 0. */
int cl__fault(const cl_hooks_t *h, cl_fault_t where, uint64_t seq, int peer);

/* Whether freed memory goes back to glibc's heap, whose free pages the
 * services give back to the system (malloc_trim) after large work. Under a
 * sanitizer the allocator is the sanitizer's: glibc's heap holds nothing
 * of ours, and malloc_trim or mallinfo2 would only set that unused heap
 * up from a service's worker thread, which glibc's own bookkeeping of
 * arenas per thread does not expect (a glibc malloc assertion at a
 * thread's exit in the ASan build's cluster_faults, once in 40 CI runs,
 * 2026-12-07). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CL_GLIBC_HEAP 0
#else
#define CL_GLIBC_HEAP 1
#endif

/* The services' model stores, for the cluster suites' white-box checks
 * (nothing else reads another service's store). */
cl_store_t *cl__party_store(cl_party_t *p);
cl_store_t *cl__dealer_store(cl_dealer_t *d);

#endif
