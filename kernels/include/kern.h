/* kern.h - the public interface of Tandem's kernels (the coprocessor).
 *
 * Pure arithmetic over plain arrays: ring Z_2^64 element-wise operations, GEMM,
 * im2col, fixed-point encoding and truncation, the AES-CTR PRG, batched
 * fixed-key AES and the batched distributed comparison function (DCF). No I/O,
 * no sockets, no logging; the only allocations are the packing buffers of a
 * GEMM call and the root seeds of a DCF generation, made once per call outside
 * the hot loops. Ring values are uint64_t and every operation wraps mod 2^64.
 *
 * Variants: each hot kernel has a portable reference (kernels/src/ref, the
 * definition of correctness; OpenSSL for AES) and optimised x86_64 variants
 * (AVX2, AVX-512; AES-NI and VAES for the AES slot). A
 * dispatch table is filled once, first with the reference, then slot by slot
 * with the best variant the CPU and OS support; TANDEM_KERNEL=ref|avx2|avx512
 * forces one. Every variant gives bit-identical results, so parties on
 * different CPUs always agree.
 *
 * Thread affinity: all functions are safe to call from any thread at once,
 * except kern_init(), kern_isa_select() and kern_set_threads(), which change
 * process-wide state and must not race with other kernel calls.
 */
#ifndef TANDEM_KERN_H
#define TANDEM_KERN_H

#include <stddef.h>
#include <stdint.h>

#include "tandem_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */

typedef enum {
  KERN_REF = 0,   /* portable C, always available */
  KERN_AVX2 = 1,  /* x86_64 AVX2 (64-bit products emulated from 32x32) */
  KERN_AVX512 = 2 /* x86_64 AVX-512F + DQ (vpmullq) */
} kern_isa_t;

#define KERN_NISA 3

/* Chooses the variants once: the best the CPU and OS support, or the one named
 * by the environment variable TANDEM_KERNEL. Idempotent; every other kernel
 * function calls it implicitly (with the default choice) when it was not called.
 * Returns 0, TANDEM_EINVAL for an unknown TANDEM_KERNEL value, TANDEM_ENOTSUP
 * for a variant this CPU or OS cannot run. On error the reference stays active. */
TANDEM_WUR int kern_init(void);

/* 1 if the CPU and OS (XSAVE state enabled by the kernel) can run isa, else 0. */
int kern_isa_supported(kern_isa_t isa);

/* Forces isa for every slot it implements (the others keep the reference).
 * Returns 0 or TANDEM_ENOTSUP / TANDEM_EINVAL. Meant for tests and benchmarks. */
TANDEM_WUR int kern_isa_select(kern_isa_t isa);

/* The variant currently selected. */
kern_isa_t kern_isa_active(void);

/* "ref", "avx2", "avx512"; "?" for a value out of range. */
const char *kern_isa_name(kern_isa_t isa);

/* Parses a variant name as accepted by TANDEM_KERNEL. 0 or TANDEM_EINVAL. */
TANDEM_WUR int kern_isa_parse(const char *name, kern_isa_t *out);

/* Worker threads for GEMM and the DCF (1..64; default: the number of online
 * CPUs, capped at 64). Results never depend on the thread count. 0 or
 * TANDEM_EINVAL. */
TANDEM_WUR int kern_set_threads(int n);
int kern_threads(void);

/* ------------------------------------------------------------------------ */
/* Ring Z_2^64, element-wise. z may alias x or y. n in elements.             */

void kern_add(uint64_t *z, const uint64_t *x, const uint64_t *y, size_t n);
void kern_sub(uint64_t *z, const uint64_t *x, const uint64_t *y, size_t n);
void kern_neg(uint64_t *z, const uint64_t *x, size_t n);
/* z = c * x */
void kern_scale(uint64_t *z, const uint64_t *x, uint64_t c, size_t n);
/* z = x * y (Hadamard) */
void kern_mul(uint64_t *z, const uint64_t *x, const uint64_t *y, size_t n);

/* ------------------------------------------------------------------------ */
/* GEMM over Z_2^64                                                          */

typedef enum { KERN_NOTRANS = 0, KERN_TRANS = 1 } kern_trans_t;

/* C = op(A) * op(B)      (accumulate == 0)
 * C = C + op(A) * op(B)  (accumulate != 0)
 * Row-major with leading dimensions (element strides between rows). op(A) is
 * m x k: A is stored m x k (lda >= k) or, with KERN_TRANS, k x m (lda >= m).
 * op(B) is k x n: B is stored k x n (ldb >= n) or, with KERN_TRANS, n x k
 * (ldb >= k). C is m x n with ldc >= n and must not overlap A or B. Any of m, n,
 * k may be 0 (k == 0 sets C to 0 unless accumulating). Uses kern_threads()
 * threads; the result is bit-identical for every variant and thread count.
 * Returns 0, TANDEM_EINVAL (a leading dimension too small) or TANDEM_ENOMEM
 * (packing buffers). */
TANDEM_WUR int kern_gemm(kern_trans_t ta, kern_trans_t tb, size_t m, size_t n,
                         size_t k, const uint64_t *a, size_t lda,
                         const uint64_t *b, size_t ldb, int accumulate,
                         uint64_t *c, size_t ldc);

/* The same with an explicit variant, ignoring the dispatch choice (tests and
 * benchmarks). TANDEM_ENOTSUP where the CPU cannot run isa. */
TANDEM_WUR int kern_gemm_isa(kern_isa_t isa, kern_trans_t ta, kern_trans_t tb,
                             size_t m, size_t n, size_t k, const uint64_t *a,
                             size_t lda, const uint64_t *b, size_t ldb,
                             int accumulate, uint64_t *c, size_t ldc);

/* A variant's register-tile micro-kernel, for the benchmark's peak figure:
 * c[0..mr) x [0..nr) (row stride ldc) += sum over p < k of ap[p*mr + i] *
 * bp[p*nr + j], with ap and bp packed panels (64-byte aligned). */
typedef void (*kern_ukr_fn)(size_t k, const uint64_t *ap, const uint64_t *bp,
                            uint64_t *c, size_t ldc);
typedef struct {
  size_t mr, nr;   /* register tile */
  size_t mc, kc, nc; /* cache blocks */
  kern_ukr_fn ukr;
} kern_gemm_info_t;

/* Fills *info for isa. 0, TANDEM_ENOTSUP or TANDEM_EINVAL. */
TANDEM_WUR int kern_gemm_info(kern_isa_t isa, kern_gemm_info_t *info);

/* ------------------------------------------------------------------------ */
/* im2col / col2im for 2-D convolution, so a convolution is a GEMM.          */

typedef struct {
  size_t c, h, w;                         /* input channels and plane */
  size_t kh, kw;                          /* kernel */
  size_t pad_t, pad_l, pad_b, pad_r;      /* zero padding */
  size_t stride_h, stride_w;              /* >= 1 */
  size_t dil_h, dil_w;                    /* >= 1 */
} kern_conv2d_t;

/* Output plane size; 0 or TANDEM_EINVAL (zero stride/dilation/kernel, or a
 * kernel larger than the padded input). */
TANDEM_WUR int kern_conv2d_out(const kern_conv2d_t *p, size_t *oh, size_t *ow);

/* cols[(ci*kh + i)*kw + j][oy*ow + ox] = x[ci][oy*sh + i*dh - pt][ox*sw + j*dw - pl]
 * (0 in the padding). x is c*h*w, cols is (c*kh*kw) x (oh*ow), both dense.
 * p must have passed kern_conv2d_out. */
void kern_im2col(const kern_conv2d_t *p, const uint64_t *x, uint64_t *cols);

/* The adjoint: x[...] += cols[...] over the same index map (x is not cleared). */
void kern_col2im(const kern_conv2d_t *p, const uint64_t *cols, uint64_t *x);

/* ------------------------------------------------------------------------ */
/* Fixed point: a real v is the ring element round(v * 2^f), two's complement. */

#define KERN_FIX_FRAC_DEFAULT 16u
#define KERN_FIX_FRAC_MIN 1u
#define KERN_FIX_FRAC_MAX 30u
/* Encodable reals satisfy |v| * 2^f < 2^KERN_FIX_BOUND_BITS: one bit of headroom
 * below the sign, so the sum or difference of two encodable values never wraps. */
#define KERN_FIX_BOUND_BITS 62u

/* z[i] = round-half-even(x[i] * 2^f). Returns 0, TANDEM_EINVAL (f outside
 * [KERN_FIX_FRAC_MIN, KERN_FIX_FRAC_MAX]) or TANDEM_ERANGE (a NaN, infinity or
 * out-of-range value; *bad, if not NULL, gets its index and z is unspecified). */
TANDEM_WUR int kern_fix_encode(uint64_t *z, const double *x, size_t n,
                               unsigned f, size_t *bad);
TANDEM_WUR int kern_fix_encode_f32(uint64_t *z, const float *x, size_t n,
                                   unsigned f, size_t *bad);

/* x[i] = (int64_t)z[i] / 2^f. 0 or TANDEM_EINVAL (f out of range). */
TANDEM_WUR int kern_fix_decode(double *x, const uint64_t *z, size_t n,
                               unsigned f);
TANDEM_WUR int kern_fix_decode_f32(float *x, const uint64_t *z, size_t n,
                                   unsigned f);

/* Arithmetic right shift of plain ring values: z = (int64_t)x >> s, s < 64.
 * z may alias x. */
void kern_trunc(uint64_t *z, const uint64_t *x, size_t n, unsigned s);

/* ------------------------------------------------------------------------ */
/* PRG: AES-128-CTR (OpenSSL EVP, AES-NI where present).                     */

/* A 16-byte seed is the AES key with a zero initial counter block; a 32-byte
 * seed is key (bytes 0..15) then initial counter block (bytes 16..31, big-endian
 * 128-bit counter, as `openssl enc -aes-128-ctr -K .. -iv ..`). The stream is
 * the CTR keystream. Seeds come from the caller; fresh ones only from
 * randombytes_buf (libsodium), never from this module. */
#define KERN_PRG_SEED_BYTES 16u
#define KERN_PRG_SEED_IV_BYTES 32u

typedef struct {
  void *ctx; /* EVP_CIPHER_CTX *; the key schedule is wiped by kern_prg_close */
} kern_prg_t;

/* 0, TANDEM_EINVAL (seed length not 16 or 32) or TANDEM_ECRYPTO. The caller
 * allocates prg and must call kern_prg_close on success. The seed is not kept. */
TANDEM_WUR int kern_prg_init(kern_prg_t *prg, const uint8_t *seed, size_t len);
void kern_prg_close(kern_prg_t *prg);

/* The next n bytes of keystream. 0 or TANDEM_ECRYPTO. */
TANDEM_WUR int kern_prg_bytes(kern_prg_t *prg, uint8_t *out, size_t n);
/* The next 8n bytes as n ring elements, little-endian on every CPU. */
TANDEM_WUR int kern_prg_u64(kern_prg_t *prg, uint64_t *out, size_t n);
/* The next ceil(n/8) bytes as n bits: out[i] = bit (i % 8) of byte i / 8, in
 * {0, 1}. */
TANDEM_WUR int kern_prg_bits(kern_prg_t *prg, uint8_t *out, size_t n);

/* ------------------------------------------------------------------------ */
/* Batched AES-128 (encryption only), for fixed-key constructions.           */

/* Implementations of the AES slot of the dispatch table. The reference is
 * OpenSSL's EVP AES-128-ECB (no C table AES: kernels index no table with a
 * secret). The others are hand-written and chosen by the kernel variant:
 *   TANDEM_KERNEL=ref     -> KERN_AES_OPENSSL
 *   TANDEM_KERNEL=avx2    -> KERN_AES_VAES256 if the CPU has VAES, else
 *                            KERN_AES_NI256 if it has AES-NI, else OpenSSL
 *   TANDEM_KERNEL=avx512  -> KERN_AES_VAES512 if the CPU has VAES, else
 *                            KERN_AES_NI256 if it has AES-NI, else OpenSSL
 * (KERN_AES_AESNI, the 128-bit walk, is chosen by kern_aes_impl_select
 * only: a CPU without AVX2 runs the ref variant, hence OpenSSL. A 512-bit
 * walk with AES-NI rounds was measured slower than KERN_AES_NI256 on Zen 4,
 * 180 against 152 ns per DCF evaluation at the MLP's widths, and is not
 * kept).
 * and the default choice follows the variant chosen for the GEMM the same
 * way. Every implementation is bit-identical to OpenSSL's AES-128. */
typedef enum {
  KERN_AES_OPENSSL = 0, /* EVP AES-128-ECB, the reference */
  KERN_AES_AESNI = 1,   /* AES-NI, 8 blocks in flight */
  KERN_AES_VAES256 = 2, /* VAES on 256-bit vectors (2 blocks per register) */
  KERN_AES_VAES512 = 3, /* VAES on 512-bit vectors (4 blocks per register) */
  KERN_AES_NI256 = 4    /* the DCF on 256-bit vectors, AES-NI rounds per lane */
} kern_aes_impl_t;

#define KERN_AES_NIMPL 5

/* An expanded AES-128 key. The caller allocates it (any alignment); it holds
 * the key itself (for OpenSSL) and the eleven round keys (for the AES-NI and
 * VAES code, filled when the CPU has AES-NI). Wipe it after use if the key
 * is secret. */
typedef struct {
  uint8_t key[16];
  uint8_t rk[11][16];
} kern_aes_ks_t;

/* Expands key (16 bytes) into ks. Never fails. */
void kern_aes128_init(kern_aes_ks_t *ks, const uint8_t *key);

/* out[16 i .. 16 i + 16) = AES-128_K(in[16 i .. 16 i + 16)) for i < nblocks
 * (ECB, no padding), with the implementation the dispatch chose. in and out
 * are byte buffers of any alignment; out may equal in but must not overlap it
 * otherwise. nblocks may be 0. Returns 0, TANDEM_EINVAL (NULL with nblocks >
 * 0) or TANDEM_ECRYPTO (OpenSSL failed; out is then unspecified). Local,
 * single-threaded, safe to call from any thread. */
TANDEM_WUR int kern_aes128_ecb(const kern_aes_ks_t *ks, const uint8_t *in,
                               uint8_t *out, size_t nblocks);

/* The same with an explicit implementation (tests, benchmarks).
 * TANDEM_ENOTSUP where this CPU or OS cannot run it. */
TANDEM_WUR int kern_aes128_ecb_impl(kern_aes_impl_t impl,
                                    const kern_aes_ks_t *ks, const uint8_t *in,
                                    uint8_t *out, size_t nblocks);

/* 1 if this CPU and OS can run impl (cpuid AES-NI / VAES, and the OS saving
 * the vector state), else 0. KERN_AES_OPENSSL is always 1. */
int kern_aes_impl_supported(kern_aes_impl_t impl);

/* "openssl", "aesni", "vaes256", "vaes512", "aesni256"; "?" out of range. */
const char *kern_aes_impl_name(kern_aes_impl_t impl);

/* The implementation kern_aes128_ecb and the DCF use now. */
kern_aes_impl_t kern_aes_impl_active(void);

/* Test and benchmark hook: makes impl the AES (and DCF) implementation until
 * the next kern_isa_select. 0, TANDEM_EINVAL or TANDEM_ENOTSUP. Same thread
 * rules as kern_isa_select. */
TANDEM_WUR int kern_aes_impl_select(kern_aes_impl_t impl);

/* ------------------------------------------------------------------------ */
/* DCF: distributed comparison function (Boyle et al., Eurocrypt 2021),      */
/* on the batched fixed-key AES kernel above (OpenSSL, AES-NI or VAES, as    */
/* dispatched). Key generation and evaluation are batched over `count`       */
/* independent instances and spread over kern_threads() threads.             */

/* For alpha in [0, 2^nbits) and a payload beta in (Z_2^64)^width, the function
 *   f(x) = beta  if x < alpha (unsigned, x in [0, 2^nbits)),  else 0.
 * kern_dcf_gen gives two keys; evaluating key b at x gives y_b with
 * y_0 + y_1 = f(x) mod 2^64, component-wise. Each key alone is pseudorandom:
 * it reveals neither alpha nor beta (126-bit seeds). 1 <= nbits <= 64,
 * 1 <= width <= 8.
 *
 * Key of one party for one instance, w = width, little-endian on every CPU,
 * as a list of fields (offsets in this one-instance layout):
 *   [0, 16)                        root seed (its two low bits 0)
 *   16 + l (16 + 8w), l < nbits-1: s_CW (16 bytes; bit 0 = t_CW^L,
 *                                  bit 1 = t_CW^R), V_CW (w words of 8)
 *   16 + (nbits-1)(16 + 8w):       CW_L (w words), CW_R (w words)
 * so kern_dcf_key_bytes = 16 + (nbits - 1)(16 + 8 width) + 16 width:
 * 1544 at nbits = 64, width 1; 992 at nbits = 41, width 1. Evaluation costs
 * (nbits-1)(1 + ceil(w/2)) + ceil(w/2) AES blocks per instance, generation
 * 2((nbits-1)(2 + w) + w).
 *
 * The fields are the 16-byte seeds (root, s_CW) and the words of each of
 * V_CW, CW_L and CW_R by pairs (16 bytes: words 2p and 2p + 1; 8 bytes for
 * the last word of an odd w). A batch of count keys (count *
 * kern_dcf_key_bytes bytes) is stored by quads: instances 4q .. 4q + m - 1
 * (m = 4, or count mod 4 for the last quad) take the m * kb bytes from
 * 4 q kb on, field by field: the field at offset off and of size sz of the
 * quad's instance j sits at m off + j sz in it (so the four root seeds come
 * first, then the four s_CW of level 0, the four pairs V_CW[0..1], ...). A
 * vector load then takes a field of one level for four instances at once. A sub-batch of a batch's keys is a batch of
 * its own only if it starts at a multiple of KERN_DCF_QUAD instances and
 * ends at one or at the batch's end. */
#define KERN_DCF_MAX_WIDTH 8u
#define KERN_DCF_QUAD 4u

/* Bytes of one party's key for one instance (count keys of a batch take
 * count times this, stored by quads as above). 0 for parameters out of
 * range. */
size_t kern_dcf_key_bytes(unsigned nbits, unsigned width);

/* Generates count instances: alpha[i], beta[i*width .. i*width+width). Keys
 * are written to k0 and k1 (count * kern_dcf_key_bytes each, by quads). Root
 * seeds are drawn from prg (seeded by the caller from the OS), 32 bytes per instance in
 * instance order before any other work, so the keys depend only on prg's
 * stream, alpha and beta: never on the thread count or the AES
 * implementation. High bits of alpha above nbits must be 0. Returns 0,
 * TANDEM_EINVAL, TANDEM_ENOMEM (32 * count bytes for the root seeds, once per
 * call) or TANDEM_ECRYPTO; on error both key buffers are wiped. Wipe the keys
 * after use (they are secrets of the dealer's recipients). Uses
 * kern_threads() OpenMP threads (one inside another OpenMP region). */
TANDEM_WUR int kern_dcf_gen(kern_prg_t *prg, unsigned nbits, unsigned width,
                            size_t count, const uint64_t *alpha,
                            const uint64_t *beta, uint8_t *k0, uint8_t *k1);

/* Party b (0 or 1) evaluates its keys (a batch of count, by quads) at x[i]
 * (taken mod 2^nbits):
 * y[i*width .. i*width+width) = its share of f_i(x[i]). Returns 0,
 * TANDEM_EINVAL or TANDEM_ECRYPTO (y is then wiped); allocates nothing.
 * Local: no communication. Uses kern_threads() OpenMP threads; y is the same
 * for every thread count and AES implementation. */
TANDEM_WUR int kern_dcf_eval(int party, unsigned nbits, unsigned width,
                             size_t count, const uint8_t *keys,
                             const uint64_t *x, uint64_t *y);

/* Party b evaluates each of its count keys (a batch, by quads) at pts
 * points: key i at x[j * count + i] for j < pts (taken mod 2^nbits), its
 * share into y[(j * count + i) * width .. + width). One key answers several
 * comparisons against the same secret alpha at public points, as the
 * multiple interval containment gate of Boyle et al. (Eurocrypt 2021) does:
 * the smooth gates read one key an element where they read one per
 * breakpoint. y equals kern_dcf_eval on pts copies of the batch; the keys
 * are walked by slices of KERN_DCF_PTS_SLICE, each slice at every point
 * while it is in cache. Returns 0, TANDEM_EINVAL or TANDEM_ECRYPTO (y is
 * then wiped); allocates nothing; kern_threads() OpenMP threads. */
#define KERN_DCF_PTS_SLICE 128u
TANDEM_WUR int kern_dcf_eval_pts(int party, unsigned nbits, unsigned width,
                                 size_t count, size_t pts, const uint8_t *keys,
                                 const uint64_t *x, uint64_t *y);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_KERN_H */
