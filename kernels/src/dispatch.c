/* dispatch.c - chooses, once, which kernel variant fills each slot.
 *
 * CPUID says what the CPU implements; XGETBV says whether the OS saves the
 * wider register state (an AVX-512 CPU under an OS that does not enable ZMM
 * state must not run AVX-512 code). The environment variable TANDEM_KERNEL
 * forces one variant, validated. GEMM and the AES slot (batched AES and the
 * DCF on it) have optimised variants: the element-wise ring operations are
 * memory-bound and the compiler vectorises the reference loops as well as
 * hand code would. The AES slot follows the chosen variant (aes_for below,
 * documented in kern.h); kern_aes_impl_select overrides it for tests.
 *
 * The table. Its slots (the ISA the GEMM runs, the AES implementation and
 * its functions) are filled once, under pthread_once: first with the
 * reference, then slot by slot with the best variant the CPU and OS run, or
 * the one TANDEM_KERNEL names. Every kernel call reads the slots after the
 * once has run, so no call can see a half-made choice; kern_isa_select and
 * kern_aes_impl_select rewrite slots afterwards and must not race with
 * other kernel calls (kern.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kern_int.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define KERN_X86 1
#endif

static const char *const isa_names[KERN_NISA] = {"ref", "avx2", "avx512"};

typedef struct {
  kern_isa_t isa;                /* GEMM: kern__gemm_impl(isa), NULL = ref */
  kern_aes_impl_t aes_id;        /* the AES slot and the DCF on it */
  const kern__aes_impl_t *aes;
} table_t;

static table_t table = {KERN_REF, KERN_AES_OPENSSL, &kern__aes_openssl};
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static atomic_int init_rc; /* the first kern_init's report of TANDEM_KERNEL */
static int nthreads;
static const char *const aes_names[KERN_AES_NIMPL] = {
    "openssl", "aesni", "vaes256", "vaes512", "aesni256"};

#ifdef KERN_X86
static uint64_t xgetbv0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}
#endif

int kern_isa_supported(kern_isa_t isa) {
  if (isa == KERN_REF)
    return 1;
#ifdef KERN_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d))
    return 0;
  /* OSXSAVE (ecx bit 27) is required before XGETBV may be executed. */
  if (!(c & (1u << 27)) || !(c & (1u << 28)))
    return 0;
  uint64_t xcr0 = xgetbv0();
  if ((xcr0 & 0x6) != 0x6) /* SSE and AVX state */
    return 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
    return 0;
  int avx2 = (b >> 5) & 1;
  if (isa == KERN_AVX2)
    return avx2;
  if (isa == KERN_AVX512) {
    int f = (b >> 16) & 1, dq = (b >> 17) & 1;
    /* opmask, upper ZMM0-15 and ZMM16-31 state */
    return avx2 && f && dq && (xcr0 & 0xe0) == 0xe0;
  }
#endif
  return 0;
}

/* CPUID traps to the hypervisor in a VM (a microsecond or more), and the
 * DCF asks for AES-NI on every call: each answer is probed once and kept
 * (a benign race: every thread stores the same value). */
static int probe_aesni(void) {
#ifdef KERN_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d))
    return 0;
  /* AES-NI (ecx bit 25) and SSE4.1 (bit 19), which the AES-NI file also
   * uses; their XMM state is part of every x86_64 OS. */
  return ((c >> 25) & 1) && ((c >> 19) & 1);
#else
  return 0;
#endif
}

static int probe_vaes(void) {
#ifdef KERN_X86
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
    return 0;
  return (c >> 9) & 1; /* VAES: leaf 7, ecx bit 9 */
#else
  return 0;
#endif
}

int kern__cpu_has_aesni(void) {
  static atomic_int known = -1;
  int v = atomic_load_explicit(&known, memory_order_relaxed);
  if (v < 0) {
    v = probe_aesni();
    atomic_store_explicit(&known, v, memory_order_relaxed);
  }
  return v;
}

int kern__cpu_has_vaes(void) {
  static atomic_int known = -1;
  int v = atomic_load_explicit(&known, memory_order_relaxed);
  if (v < 0) {
    v = probe_vaes();
    atomic_store_explicit(&known, v, memory_order_relaxed);
  }
  return v;
}

int kern_aes_impl_supported(kern_aes_impl_t impl) {
  switch (impl) {
  case KERN_AES_OPENSSL:
    return 1;
  case KERN_AES_AESNI:
    return kern__cpu_has_aesni();
  case KERN_AES_VAES256:
    /* kern_isa_supported checks the OS's YMM (and below, ZMM) state. */
    return kern__cpu_has_aesni() && kern__cpu_has_vaes() &&
           kern_isa_supported(KERN_AVX2);
  case KERN_AES_VAES512:
    return kern__cpu_has_aesni() && kern__cpu_has_vaes() &&
           kern_isa_supported(KERN_AVX512);
  case KERN_AES_NI256:
    return kern__cpu_has_aesni() && kern_isa_supported(KERN_AVX2);
  default:
    return 0;
  }
}

const char *kern_aes_impl_name(kern_aes_impl_t impl) {
  return ((unsigned)impl < KERN_AES_NIMPL) ? aes_names[impl] : "?";
}

/* The AES implementation that goes with a kernel variant (kern.h). */
static kern_aes_impl_t aes_for(kern_isa_t isa) {
  if (isa == KERN_AVX512 && kern_aes_impl_supported(KERN_AES_VAES512))
    return KERN_AES_VAES512;
  if (isa == KERN_AVX2 && kern_aes_impl_supported(KERN_AES_VAES256))
    return KERN_AES_VAES256;
  /* Every CPU with AVX-512 has AVX2, and only those have either variant:
   * KERN_AES_AESNI is reached by kern_aes_impl_select alone. */
  if (isa != KERN_REF && kern_aes_impl_supported(KERN_AES_NI256))
    return KERN_AES_NI256;
  return KERN_AES_OPENSSL;
}

static void table_init(void);

int kern_aes_impl_select(kern_aes_impl_t impl) {
  if ((unsigned)impl >= KERN_AES_NIMPL)
    return TANDEM_EINVAL;
  if (!kern_aes_impl_supported(impl))
    return TANDEM_ENOTSUP;
  pthread_once(&table_once, table_init); /* settle the default choice first */
  table.aes_id = impl;
  table.aes = kern__aes_impl(impl);
  return 0;
}

kern_aes_impl_t kern_aes_impl_active(void) {
  pthread_once(&table_once, table_init);
  return table.aes_id;
}

const kern__aes_impl_t *kern__aes_impl(kern_aes_impl_t impl) {
  switch (impl) {
  case KERN_AES_AESNI:
    return &kern__aes_aesni;
  case KERN_AES_VAES256:
    return &kern__aes_vaes256;
  case KERN_AES_VAES512:
    return &kern__aes_vaes512;
  case KERN_AES_NI256:
    return &kern__aes_ni256;
  default:
    return &kern__aes_openssl;
  }
}

const kern__aes_impl_t *kern__active_aes(void) {
  pthread_once(&table_once, table_init);
  return table.aes;
}

const char *kern_isa_name(kern_isa_t isa) {
  return ((unsigned)isa < KERN_NISA) ? isa_names[isa] : "?";
}

int kern_isa_parse(const char *name, kern_isa_t *out) {
  if (name == NULL)
    return TANDEM_EINVAL;
  for (int i = 0; i < KERN_NISA; i++) {
    if (strcmp(name, isa_names[i]) == 0) {
      *out = (kern_isa_t)i;
      return 0;
    }
  }
  return TANDEM_EINVAL;
}

/* The slots for isa (supported): the reference first, then each slot isa
 * (and the CPU's AES units) improves. */
static void table_fill(table_t *t, kern_isa_t isa) {
  t->isa = KERN_REF;
  t->aes_id = KERN_AES_OPENSSL;
  t->aes = &kern__aes_openssl;
  if (isa != KERN_REF)
    t->isa = isa;
  t->aes_id = aes_for(isa);
  t->aes = kern__aes_impl(t->aes_id);
}

int kern_isa_select(kern_isa_t isa) {
  if ((unsigned)isa >= KERN_NISA)
    return TANDEM_EINVAL;
  if (!kern_isa_supported(isa))
    return TANDEM_ENOTSUP;
  pthread_once(&table_once, table_init);
  table_fill(&table, isa);
  return 0;
}

static kern_isa_t best_isa(void) {
  for (int i = KERN_NISA - 1; i > 0; i--)
    if (kern_isa_supported((kern_isa_t)i))
      return (kern_isa_t)i;
  return KERN_REF;
}

/* Runs once per process. A bad TANDEM_KERNEL leaves the reference and is
 * reported by the first kern_init. */
static void table_init(void) {
  table_t t;
  table_fill(&t, KERN_REF);
  kern_isa_t want = best_isa();
  int rc = 0;
  const char *env = getenv("TANDEM_KERNEL");
  if (env != NULL && env[0] != '\0') {
    if ((rc = kern_isa_parse(env, &want)) == 0 && !kern_isa_supported(want))
      rc = TANDEM_ENOTSUP;
  }
  if (rc == 0)
    table_fill(&t, want);
  table = t;
  atomic_store(&init_rc, rc);
}

int kern_init(void) {
  pthread_once(&table_once, table_init);
  return atomic_exchange(&init_rc, 0); /* later calls: a no-op that succeeds */
}

kern_isa_t kern_isa_active(void) {
  /* An invalid TANDEM_KERNEL leaves the reference; kern_init reports it to
   * the callers that ask (tandem checks it at start-up). */
  pthread_once(&table_once, table_init);
  return table.isa;
}

const kern__gemm_impl_t *kern__gemm_impl(kern_isa_t isa) {
  switch (isa) {
  case KERN_AVX2:
    return &kern__gemm_avx2;
  case KERN_AVX512:
    return &kern__gemm_avx512;
  default:
    return NULL;
  }
}

const kern__gemm_impl_t *kern__active_gemm(void) {
  return kern__gemm_impl(kern_isa_active());
}

int kern_set_threads(int n) {
  if (n < 1 || n > 64)
    return TANDEM_EINVAL;
  nthreads = n;
  return 0;
}

int kern_threads(void) {
  if (nthreads == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    nthreads = cpus < 1 ? 1 : cpus > 64 ? 64 : (int)cpus;
  }
  return nthreads;
}
