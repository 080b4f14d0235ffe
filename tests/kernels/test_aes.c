/* test_aes.c - Check suite for the batched AES-128 kernel (kernels/src/aes.c
 * and the AES-NI / VAES variants under kernels/src/x86_64/): every
 * implementation this CPU runs is compared byte for byte with OpenSSL's EVP
 * AES-128-ECB, called here directly, on random keys and blocks, on the block
 * counts around each variant's batch and tail (0, 1, 7, 8, 9, 31, 33, 1000),
 * on unaligned and in-place buffers; OpenSSL itself is pinned to the FIPS-197
 * example; the dispatch mapping and the select hook are checked. Variants the
 * CPU lacks are reported on stderr as skipped. Data from fixed seeds.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kern.h"
#include "../test_rand.h"

static uint64_t sm_state;
static uint64_t sm_next(void) {
  return test_splitmix64(&sm_state);
}

static void fill(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)sm_next();
}

/* The test's own OpenSSL call, independent of the kernel's. */
static void evp_ecb(const uint8_t *key, const uint8_t *in, uint8_t *out,
                    size_t nblocks) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  ck_assert_ptr_nonnull(ctx);
  ck_assert_int_eq(EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, key, NULL), 1);
  ck_assert_int_eq(EVP_CIPHER_CTX_set_padding(ctx, 0), 1);
  int outl = 0;
  if (nblocks > 0)
    ck_assert_int_eq(EVP_EncryptUpdate(ctx, out, &outl, in, (int)(16 * nblocks)), 1);
  ck_assert_int_eq(outl, (int)(16 * nblocks));
  EVP_CIPHER_CTX_free(ctx);
}

/* Lists once which implementations this CPU lacks. */
static int supported_or_skip(kern_aes_impl_t im) {
  if (kern_aes_impl_supported(im))
    return 1;
  fprintf(stderr, "test_aes: %s not supported by this CPU/OS: SKIPPED\n",
          kern_aes_impl_name(im));
  return 0;
}

START_TEST(test_aes_fips197) {
  /* FIPS-197 appendix C.1. */
  uint8_t key[16], pt[16], ct[16];
  static const uint8_t want[16] = {0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b,
                                   0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80,
                                   0x70, 0xb4, 0xc5, 0x5a};
  for (int i = 0; i < 16; i++) {
    key[i] = (uint8_t)i;
    pt[i] = (uint8_t)(0x11 * i);
  }
  kern_aes_ks_t ks;
  kern_aes128_init(&ks, key);
  for (int im = 0; im < KERN_AES_NIMPL; im++) {
    if (!supported_or_skip((kern_aes_impl_t)im))
      continue;
    memset(ct, 0, sizeof ct);
    ck_assert_int_eq(kern_aes128_ecb_impl((kern_aes_impl_t)im, &ks, pt, ct, 1), 0);
    ck_assert_msg(memcmp(ct, want, 16) == 0, "%s: FIPS-197 C.1 mismatch",
                  kern_aes_impl_name((kern_aes_impl_t)im));
  }
}
END_TEST

/* Every implementation against EVP on the counts and alignments above, out
 * of place and in place, with a new random key per count. */
START_TEST(test_aes_matches_openssl) {
  static const size_t counts[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17,
                                  31, 32, 33, 1000};
  const size_t maxn = 1000;
  uint8_t *in = malloc(16 * maxn + 8), *out = malloc(16 * maxn + 8);
  uint8_t *want = malloc(16 * maxn + 8);
  ck_assert(in && out && want);
  sm_state = 0xae5;
  int tested = 0;
  for (int im = 0; im < KERN_AES_NIMPL; im++) {
    if (!supported_or_skip((kern_aes_impl_t)im))
      continue;
    tested++;
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
      const size_t n = counts[c];
      for (size_t ai = 0; ai < 3; ai++) {
        static const size_t align[3][2] = {{0, 0}, {1, 3}, {7, 5}};
        uint8_t key[16];
        fill(key, 16);
        kern_aes_ks_t ks;
        kern_aes128_init(&ks, key);
        uint8_t *pi = in + align[ai][0], *po = out + align[ai][1];
        fill(pi, 16 * n);
        evp_ecb(key, pi, want, n);
        /* A guard byte after the output must survive. */
        po[16 * n] = 0xa5;
        ck_assert_int_eq(kern_aes128_ecb_impl((kern_aes_impl_t)im, &ks, pi, po, n), 0);
        ck_assert_msg(n == 0 || memcmp(po, want, 16 * n) == 0,
                      "%s: %zu blocks, offsets %zu/%zu differ from OpenSSL",
                      kern_aes_impl_name((kern_aes_impl_t)im), n,
                      align[ai][0], align[ai][1]);
        ck_assert_int_eq(po[16 * n], 0xa5);
        /* In place. */
        ck_assert_int_eq(kern_aes128_ecb_impl((kern_aes_impl_t)im, &ks, pi, pi, n), 0);
        ck_assert(n == 0 || memcmp(pi, want, 16 * n) == 0);
      }
    }
  }
  ck_assert_int_ge(tested, 1);
  free(in);
  free(out);
  free(want);
}
END_TEST

/* The dispatched entry uses the selected implementation, which follows the
 * kernel variant as kern.h documents, and the hook overrides it. */
START_TEST(test_aes_dispatch) {
  ck_assert_int_eq(kern_aes_impl_supported(KERN_AES_OPENSSL), 1);
  ck_assert_str_eq(kern_aes_impl_name(KERN_AES_VAES512), "vaes512");
  ck_assert_str_eq(kern_aes_impl_name(KERN_AES_NI256), "aesni256");
  ck_assert_str_eq(kern_aes_impl_name((kern_aes_impl_t)KERN_AES_NIMPL), "?");
  ck_assert_int_eq(kern_aes_impl_select((kern_aes_impl_t)KERN_AES_NIMPL),
                   TANDEM_EINVAL);
  uint8_t key[16] = {0}, blk[16] = {0};
  kern_aes_ks_t ks;
  kern_aes128_init(&ks, key);
  ck_assert_int_eq(kern_aes128_ecb_impl((kern_aes_impl_t)9, &ks, blk, blk, 1),
                   TANDEM_EINVAL);
  ck_assert_int_eq(kern_aes128_ecb(&ks, NULL, blk, 1), TANDEM_EINVAL);
  ck_assert_int_eq(kern_aes128_ecb(&ks, NULL, NULL, 0), 0);

  ck_assert_int_eq(kern_isa_select(KERN_REF), 0);
  ck_assert_int_eq(kern_aes_impl_active(), KERN_AES_OPENSSL);
  int vaes = kern_aes_impl_supported(KERN_AES_VAES256) ||
             kern_aes_impl_supported(KERN_AES_VAES512);
  int ni = kern_aes_impl_supported(KERN_AES_AESNI);
  /* Without VAES, the AVX2 walk with AES-NI rounds (AVX2 is there). */
  if (kern_isa_supported(KERN_AVX2)) {
    ck_assert_int_eq(kern_aes_impl_supported(KERN_AES_NI256), ni);
    ck_assert_int_eq(kern_isa_select(KERN_AVX2), 0);
    ck_assert_int_eq(kern_aes_impl_active(),
                     vaes ? KERN_AES_VAES256 : ni ? KERN_AES_NI256
                                                  : KERN_AES_OPENSSL);
  }
  if (kern_isa_supported(KERN_AVX512)) {
    ck_assert_int_eq(kern_isa_select(KERN_AVX512), 0);
    ck_assert_int_eq(kern_aes_impl_active(),
                     vaes ? KERN_AES_VAES512 : ni ? KERN_AES_NI256
                                                  : KERN_AES_OPENSSL);
  }
  uint8_t in[16 * 40], a[16 * 40], b[16 * 40];
  sm_state = 0xd15;
  fill(in, sizeof in);
  for (int im = 0; im < KERN_AES_NIMPL; im++) {
    if (!kern_aes_impl_supported((kern_aes_impl_t)im)) {
      ck_assert_int_eq(kern_aes_impl_select((kern_aes_impl_t)im), TANDEM_ENOTSUP);
      ck_assert_int_eq(kern_aes128_ecb_impl((kern_aes_impl_t)im, &ks, in, a, 40),
                       TANDEM_ENOTSUP);
      continue;
    }
    ck_assert_int_eq(kern_aes_impl_select((kern_aes_impl_t)im), 0);
    ck_assert_int_eq((int)kern_aes_impl_active(), im);
    ck_assert_int_eq(kern_aes128_ecb(&ks, in, a, 40), 0);
    evp_ecb(key, in, b, 40);
    ck_assert(memcmp(a, b, sizeof a) == 0);
  }
  ck_assert_int_eq(kern_isa_select(KERN_REF), 0);
}
END_TEST

Suite *aes_suite(void) {
  Suite *s = suite_create("aes");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_aes_fips197);
  tcase_add_test(tc, test_aes_matches_openssl);
  tcase_add_test(tc, test_aes_dispatch);
  suite_add_tcase(s, tc);
  return s;
}
