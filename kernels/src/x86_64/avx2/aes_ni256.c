/* aes_ni256.c - the DCF walk of dcf_walk.h on two instances per 256-bit
 * register with AES-NI rounds on each 128-bit lane (compiled with -maes and
 * -mavx2, no VAES; dispatch runs it where cpuid reports AES-NI and AVX2 and
 * the OS saves YMM state, and chooses it for the avx2 and avx512 variants
 * where the CPU lacks VAES: Intel from Haswell to Cascade Lake, AMD Zen 1
 * and 2). The batched ECB is aesni.c's.
 *
 * The walk's arithmetic runs on YMM vectors, where aesni.c's 128-bit walk
 * spends twice the vector operations per instance (its evaluation took
 * 2.2x the raw ECB time of its blocks, this one 1.35x: 211 against 152 ns
 * per instance at the MLP's 24 bits, one thread of a Zen 4, `bench_dcf
 * mlp`). Only the rounds go through AES-NI: dcf_aes_run splits its n
 * vectors into their two lanes once, runs the ten rounds across all the
 * lanes (2n independent blocks in flight) and joins them back, one extract
 * and one insert per vector against twenty AESENC. AES-NI reaches XMM0-15
 * only, so an evaluation group is two registers (12 blocks in flight at
 * w = 3); a generation group of one register has up to 20 blocks, and two
 * were slower (653 against 621 ns per instance), their blocks spilling.
 */
#include <immintrin.h>

#include "kern_int.h"

typedef uint64_t vq __attribute__((vector_size(32)));
#define DCF_VB 32
#define DCF_UE 2
#define DCF_UG 1
#define DCF_NAME(s) s##_ni256

/* The most vectors one dcf_aes_run takes: a generation level's (an
 * evaluation level's are fewer). */
#define NI_MAXV (2 * (2 + KERN_DCF_MAX_WIDTH) * DCF_UG)
_Static_assert(DCF_UE * (1 + (KERN_DCF_MAX_WIDTH + 1) / 2) <= NI_MAXV,
               "an evaluation level's blocks exceed dcf_aes_run's buffer");

typedef struct {
  __m128i k[11];
  vq k0; /* k[0] in both lanes: the first xor on whole vectors */
} dcf_aes_t;

static int dcf_aes_open(dcf_aes_t *a, const kern_aes_ks_t *ks) {
  for (int i = 0; i < 11; i++)
    a->k[i] = _mm_loadu_si128((const __m128i *)ks->rk[i]);
  a->k0 = (vq)_mm256_broadcastsi128_si256(a->k[0]);
  return 0;
}

static void dcf_aes_close(dcf_aes_t *a) { (void)a; }

/* The n vectors of b (n <= NI_MAXV) through the ten rounds, lane by lane. */
static KERN_AI int dcf_aes_run(const dcf_aes_t *a, vq *b, unsigned n) {
  __m128i x[2 * NI_MAXV];
KERN_UNROLL(64)
  for (unsigned j = 0; j < n; j++) {
    const __m256i v = (__m256i)(b[j] ^ a->k0);
    x[2 * j] = _mm256_castsi256_si128(v);
    x[2 * j + 1] = _mm256_extracti128_si256(v, 1);
  }
KERN_UNROLL(16)
  for (int r = 1; r < 10; r++)
KERN_UNROLL(64)
    for (unsigned i = 0; i < 2 * n; i++)
      x[i] = _mm_aesenc_si128(x[i], a->k[r]);
KERN_UNROLL(64)
  for (unsigned j = 0; j < n; j++) {
    __m128i lo = _mm_aesenclast_si128(x[2 * j], a->k[10]);
    __m128i hi = _mm_aesenclast_si128(x[2 * j + 1], a->k[10]);
    b[j] = (vq)_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
  }
  return 0;
}

#include "dcf_lanes256.h"

#include "../../dcf_walk.h"

const kern__aes_impl_t kern__aes_ni256 = {KERN_AES_NI256, kern__aes_ecb_aesni, dcf_eval_ni256,
                                          dcf_gen_ni256};
