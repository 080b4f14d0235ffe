/* kern_int.h - private declarations shared by the kernel sources; never
 * included from outside kernels/.
 *
 * The dispatch table has one slot per hot kernel. dispatch.c fills it first with
 * the reference and then overrides the slots the chosen ISA implements
 * (BLIS's bli_cntx_init_<arch>, libsodium's _pick_best_implementation). Each ISA
 * file exports one const descriptor per kernel it implements.
 */
#ifndef TANDEM_KERN_INT_H
#define TANDEM_KERN_INT_H

#include "kern.h"

/* A blocked GEMM implementation: the register tile, the cache blocks and the
 * micro-kernel the generic driver (gemm.c) calls. The reference has no
 * descriptor: it is the plain loop in ref/gemm_ref.c. */
typedef struct {
  kern_isa_t isa;
  size_t mr, nr;     /* register tile: C block of mr x nr */
  size_t mc, kc, nc; /* cache blocks (multiples of mr, -, nr) */
  kern_ukr_fn ukr;   /* c[mr x nr] += ap (kc x mr packed) * bp (kc x nr packed) */
} kern__gemm_impl_t;

extern const kern__gemm_impl_t kern__gemm_avx2;
extern const kern__gemm_impl_t kern__gemm_avx512;

/* The reference GEMM (the definition): straightforward loops, same contract
 * as kern_gemm, single-threaded. */
void kern__gemm_ref(kern_trans_t ta, kern_trans_t tb, size_t m, size_t n,
                    size_t k, const uint64_t *a, size_t lda, const uint64_t *b,
                    size_t ldb, int accumulate, uint64_t *c, size_t ldc);

/* The blocked driver for one implementation (gemm.c). */
int kern__gemm_blocked(const kern__gemm_impl_t *impl, kern_trans_t ta,
                       kern_trans_t tb, size_t m, size_t n, size_t k,
                       const uint64_t *a, size_t lda, const uint64_t *b,
                       size_t ldb, int accumulate, uint64_t *c, size_t ldc);

/* The descriptor for isa, or NULL for KERN_REF. Caller checked support. */
const kern__gemm_impl_t *kern__gemm_impl(kern_isa_t isa);

/* The GEMM descriptor selected by dispatch (NULL: reference). Calls kern_init
 * with the default choice if nothing was chosen yet. */
const kern__gemm_impl_t *kern__active_gemm(void);

#endif /* TANDEM_KERN_INT_H */
