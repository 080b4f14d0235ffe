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

/* Unrolling and forced inlining in the hand-written AES and DCF kernels
 * (dcf_walk.h, x86_64/aes_x86.h), both off under AddressSanitizer. Fully
 * unrolled and inlined, each of aes_vaes512.c's 16 walks (eval and gen at
 * widths 1..8) is one function of thousands of vector operations whose
 * every stack access ASan instruments: that one file took about 250 s to
 * compile in the ASan tree. Built plain, the arithmetic is the same, so the
 * sanitised tests still check every variant against the reference. */
#if defined(__SANITIZE_ADDRESS__)
#define KERN_AI inline
#define KERN_UNROLL(n)
#else
#define KERN_AI __attribute__((always_inline)) inline
#define KERN_PRAGMA(x) _Pragma(#x)
#define KERN_UNROLL(n) KERN_PRAGMA(GCC unroll n)
#endif

/* A blocked GEMM implementation: the register tile, the cache blocks and the
 * micro-kernel the generic driver (gemm.c) calls. The reference has no
 * descriptor: it is the plain loop in ref/gemm_ref.c. */
/* The small-m path of an implementation: C = op(A) op(B) (or C +=, with
 * accumulate) for 1 <= m <= small_m, n >= 1, k >= 1, arguments already
 * checked, read straight from the operands with no packing and on the
 * calling thread. A matrix-vector product (a batch-1 layer) touches each
 * element of B once, so packing B, which the blocked path does, would cost
 * as much as the product; and a register tile mr rows tall would waste
 * mr - m of its rows. */
typedef void (*kern__gemm_small_fn)(kern_trans_t ta, kern_trans_t tb, size_t m,
                                    size_t n, size_t k, const uint64_t *a,
                                    size_t lda, const uint64_t *b, size_t ldb,
                                    int accumulate, uint64_t *c, size_t ldc);

typedef struct {
  kern_isa_t isa;
  size_t mr, nr;     /* register tile: C block of mr x nr */
  size_t mc, kc, nc; /* cache blocks (multiples of mr, -, nr) */
  kern_ukr_fn ukr;   /* c[mr x nr] += ap (kc x mr packed) * bp (kc x nr packed) */
  size_t small_m;    /* products with m <= small_m take small (0: none) */
  kern__gemm_small_fn small;
} kern__gemm_impl_t;

extern const kern__gemm_impl_t kern__gemm_avx2;
extern const kern__gemm_impl_t kern__gemm_avx512;

/* The AVX2 small-m path (x86_64/avx2/gemm_avx2.c); the AVX-512 descriptor
 * uses it too, since every AVX-512 CPU runs AVX2. */
void kern__gemm_small_avx2(kern_trans_t ta, kern_trans_t tb, size_t m, size_t n,
                           size_t k, const uint64_t *a, size_t lda,
                           const uint64_t *b, size_t ldb, int accumulate,
                           uint64_t *c, size_t ldc);

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

/* The AES slot: one descriptor per implementation (aes.c for OpenSSL,
 * x86_64/aesni.c, x86_64/avx2/aes_vaes256.c, x86_64/avx512/aes_vaes512.c,
 * and x86_64/avx2/aes_ni256.c, the 256-bit walk with AES-NI rounds).
 * Each carries the batched ECB kernel and the DCF walk built on it, with
 * the Matyas-Meyer-Oseas feed-forward and the correction words applied to
 * the AES output while it is still in registers (dcf_walk.h).
 *
 * dcf_eval: party's shares for n instances, keys (kb bytes each) and x as in
 *   kern_dcf_eval, arguments already checked; single-threaded.
 * dcf_gen: n instances as in kern_dcf_gen, except that the root seeds come
 *   in roots, 32 bytes per instance (party 0's 16 then party 1's, two low
 *   bits clear): dcf.c draws them serially, so the keys do not depend on how
 *   instances are split over threads. */
typedef struct {
  kern_aes_impl_t id;
  int (*ecb)(const kern_aes_ks_t *ks, const uint8_t *in, uint8_t *out,
             size_t nblocks);
  int (*dcf_eval)(const kern_aes_ks_t *ks, int party, unsigned nbits,
                  unsigned width, size_t n, const uint8_t *keys, size_t kb,
                  const uint64_t *x, uint64_t *y);
  int (*dcf_gen)(const kern_aes_ks_t *ks, unsigned nbits, unsigned width,
                 size_t n, const uint8_t *roots, const uint64_t *alpha,
                 const uint64_t *beta, uint8_t *k0, uint8_t *k1, size_t kb);
} kern__aes_impl_t;

extern const kern__aes_impl_t kern__aes_openssl;
extern const kern__aes_impl_t kern__aes_aesni;
extern const kern__aes_impl_t kern__aes_vaes256;
extern const kern__aes_impl_t kern__aes_vaes512;
extern const kern__aes_impl_t kern__aes_ni256;

/* The reference ECB kernel (aes.c); its descriptor, with the reference DCF
 * walk, is in dcf.c. */
int kern__aes_ecb_openssl(const kern_aes_ks_t *ks, const uint8_t *in,
                          uint8_t *out, size_t nblocks);

/* The AES-NI key expansion (x86_64/aesni.c); only called where the CPU has
 * AES-NI. */
void kern__aes128_expand_aesni(kern_aes_ks_t *ks);
/* AES-NI's batched ECB (x86_64/aesni.c), also aes_ni256.c's. */
int kern__aes_ecb_aesni(const kern_aes_ks_t *ks, const uint8_t *in, uint8_t *out,
                        size_t nblocks);

/* The descriptor for impl (caller checked support), and the active one
 * (calls kern_init with the default choice if nothing was chosen yet). */
const kern__aes_impl_t *kern__aes_impl(kern_aes_impl_t impl);
const kern__aes_impl_t *kern__active_aes(void);

/* CPU features for the AES slot (dispatch.c). */
int kern__cpu_has_aesni(void);
int kern__cpu_has_vaes(void);

#endif /* TANDEM_KERN_INT_H */
