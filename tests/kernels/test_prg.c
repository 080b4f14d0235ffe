/* test_prg.c - Check suite for the AES-128-CTR PRG (kernels/src/prg.c).
 *
 * Known answers: the keystream for key 00..0f with a zero counter block was
 * computed with the OpenSSL command line,
 *   head -c 48 /dev/zero | openssl enc -aes-128-ctr \
 *     -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000
 * and the 32-byte seed case is the keystream of NIST SP 800-38A F.5.1 (key
 * 2b7e1516..., initial counter f0f1...ff), also checked with openssl enc.
 * Then: the stream does not depend on how requests are split, u64 and bits are
 * the documented views of the same bytes, two parties with the same seed agree
 * under every kernel variant this CPU runs, different seeds differ, and bad
 * arguments are refused.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"

static void unhex(const char *s, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    ck_assert_int_eq(sscanf(s + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
}

static const char kat_key[] = "000102030405060708090a0b0c0d0e0f";
static const char kat_stream[] =
    "c6a13b37878f5b826f4f8162a1c8d879"
    "7346139595c0b41e497bbde365f42d0a"
    "49d68753999ba68ce3897a686081b09d";

static const char nist_seed[] = "2b7e151628aed2a6abf7158809cf4f3c"
                                "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
static const char nist_stream[] = "ec8cdf7398607cb0f2d21675ea9ea1e4"
                                  "362b7c3c6773516318a077d7fc5073ae"
                                  "6a2cc3787889374f";

START_TEST(test_prg_kat_key) {
  uint8_t key[16], want[48], got[48];
  unhex(kat_key, key, 16);
  unhex(kat_stream, want, 48);
  kern_prg_t prg;
  ck_assert_int_eq(kern_prg_init(&prg, key, 16), 0);
  ck_assert_int_eq(kern_prg_bytes(&prg, got, 48), 0);
  kern_prg_close(&prg);
  ck_assert_mem_eq(got, want, 48);
}
END_TEST

START_TEST(test_prg_kat_key_iv) {
  uint8_t seed[32], want[40], got[40];
  unhex(nist_seed, seed, 32);
  unhex(nist_stream, want, 40);
  kern_prg_t prg;
  ck_assert_int_eq(kern_prg_init(&prg, seed, 32), 0);
  ck_assert_int_eq(kern_prg_bytes(&prg, got, 40), 0);
  kern_prg_close(&prg);
  ck_assert_mem_eq(got, want, 40);
}
END_TEST

/* The words are the keystream bytes read little-endian; bits are bit i%8 of
 * byte i/8. */
START_TEST(test_prg_views) {
  uint8_t key[16], bytes[48];
  unhex(kat_key, key, 16);
  unhex(kat_stream, bytes, 48);
  kern_prg_t prg;
  uint64_t w[6];
  ck_assert_int_eq(kern_prg_init(&prg, key, 16), 0);
  ck_assert_int_eq(kern_prg_u64(&prg, w, 6), 0);
  kern_prg_close(&prg);
  for (int i = 0; i < 6; i++) {
    uint64_t v = 0;
    for (int j = 7; j >= 0; j--)
      v = (v << 8) | bytes[8 * i + j];
    ck_assert_uint_eq(w[i], v);
  }
  uint8_t bits[13 * 8 + 3];
  ck_assert_int_eq(kern_prg_init(&prg, key, 16), 0);
  ck_assert_int_eq(kern_prg_bits(&prg, bits, sizeof bits), 0);
  /* ceil(107 / 8) = 14 bytes consumed: the next byte is byte 14. */
  uint8_t next;
  ck_assert_int_eq(kern_prg_bytes(&prg, &next, 1), 0);
  kern_prg_close(&prg);
  for (size_t i = 0; i < sizeof bits; i++)
    ck_assert_uint_eq(bits[i], (bytes[i / 8] >> (i % 8)) & 1u);
  ck_assert_uint_eq(next, bytes[14]);
}
END_TEST

/* The stream is the same whatever the split of the requests, including
 * requests across the 16 KiB internal chunk and partial AES blocks. */
START_TEST(test_prg_split_invariant) {
  const size_t n = 3 * 16384 + 1000;
  uint8_t seed[32];
  for (int i = 0; i < 32; i++)
    seed[i] = (uint8_t)(7 * i + 1);
  uint8_t *whole = malloc(n), *parts = malloc(n);
  ck_assert_ptr_nonnull(whole);
  ck_assert_ptr_nonnull(parts);
  kern_prg_t prg;
  ck_assert_int_eq(kern_prg_init(&prg, seed, 32), 0);
  ck_assert_int_eq(kern_prg_bytes(&prg, whole, n), 0);
  kern_prg_close(&prg);
  ck_assert_int_eq(kern_prg_init(&prg, seed, 32), 0);
  static const size_t steps[] = {1, 15, 16, 17, 0, 3, 16383, 16385, 33, 7};
  size_t off = 0, k = 0;
  while (off < n) {
    size_t len = steps[k++ % (sizeof steps / sizeof steps[0])];
    if (len > n - off)
      len = n - off;
    ck_assert_int_eq(kern_prg_bytes(&prg, parts + off, len), 0);
    off += len;
  }
  kern_prg_close(&prg);
  ck_assert_mem_eq(whole, parts, n);
  free(whole);
  free(parts);
}
END_TEST

static uint64_t fnv(const uint64_t *w, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ w[i]) * 0x100000001b3ull;
  return h;
}

/* Two parties with the same seed draw the same ring elements and bits under
 * every kernel variant this CPU supports; the other variants are skipped (a
 * machine that runs them checks them). */
START_TEST(test_prg_same_seed_every_variant) {
  const size_t n = 20000;
  uint8_t seed[16];
  for (int i = 0; i < 16; i++)
    seed[i] = (uint8_t)(0xa0 + i);
  uint64_t *a = malloc(n * 8), *b = malloc(n * 8);
  uint8_t ba[999], bb[999];
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  uint64_t first = 0;
  int have_first = 0;
  kern_isa_t before = kern_isa_active();
  for (int isa = 0; isa < KERN_NISA; isa++) {
    if (!kern_isa_supported((kern_isa_t)isa))
      continue;
    ck_assert_int_eq(kern_isa_select((kern_isa_t)isa), 0);
    kern_prg_t p0, p1;
    ck_assert_int_eq(kern_prg_init(&p0, seed, 16), 0);
    ck_assert_int_eq(kern_prg_init(&p1, seed, 16), 0);
    ck_assert_int_eq(kern_prg_u64(&p0, a, n), 0);
    ck_assert_int_eq(kern_prg_u64(&p1, b, n), 0);
    ck_assert_int_eq(kern_prg_bits(&p0, ba, sizeof ba), 0);
    ck_assert_int_eq(kern_prg_bits(&p1, bb, sizeof bb), 0);
    kern_prg_close(&p0);
    kern_prg_close(&p1);
    ck_assert_mem_eq(a, b, n * 8);
    ck_assert_mem_eq(ba, bb, sizeof ba);
    uint64_t h = fnv(a, n);
    if (!have_first) {
      first = h;
      have_first = 1;
    }
    ck_assert_uint_eq(h, first);
  }
  ck_assert_int_eq(kern_isa_select(before), 0);
  free(a);
  free(b);
}
END_TEST

/* A different seed (one bit flipped) gives an unrelated stream; the bits are
 * balanced to within a loose bound (a gross bias would mean a broken view). */
START_TEST(test_prg_seeds_differ) {
  uint8_t s0[16] = {0}, s1[16] = {0};
  s1[15] = 1;
  uint64_t a[512], b[512];
  kern_prg_t p;
  ck_assert_int_eq(kern_prg_init(&p, s0, 16), 0);
  ck_assert_int_eq(kern_prg_u64(&p, a, 512), 0);
  kern_prg_close(&p);
  ck_assert_int_eq(kern_prg_init(&p, s1, 16), 0);
  ck_assert_int_eq(kern_prg_u64(&p, b, 512), 0);
  kern_prg_close(&p);
  size_t same = 0, ones = 0;
  for (int i = 0; i < 512; i++) {
    same += a[i] == b[i];
    ones += (size_t)__builtin_popcountll(a[i]);
  }
  ck_assert_uint_eq(same, 0);
  /* 32768 fair bits: mean 16384, sd 90.5; 8 sd either side. */
  ck_assert_uint_gt(ones, 16384 - 724);
  ck_assert_uint_lt(ones, 16384 + 724);
}
END_TEST

START_TEST(test_prg_bad_args) {
  uint8_t seed[32] = {0}, out[4];
  kern_prg_t p;
  ck_assert_int_eq(kern_prg_init(&p, seed, 15), TANDEM_EINVAL);
  ck_assert_ptr_null(p.ctx);
  ck_assert_int_eq(kern_prg_init(&p, seed, 24), TANDEM_EINVAL);
  ck_assert_int_eq(kern_prg_init(&p, NULL, 16), TANDEM_EINVAL);
  ck_assert_int_eq(kern_prg_init(NULL, seed, 16), TANDEM_EINVAL);
  ck_assert_int_eq(kern_prg_bytes(&p, out, 4), TANDEM_EINVAL);
  ck_assert_int_eq(kern_prg_init(&p, seed, 16), 0);
  ck_assert_int_eq(kern_prg_bytes(&p, NULL, 4), TANDEM_EINVAL);
  ck_assert_int_eq(kern_prg_bytes(&p, NULL, 0), 0);
  ck_assert_int_eq(kern_prg_u64(&p, NULL, SIZE_MAX / 4), TANDEM_EINVAL);
  kern_prg_close(&p);
  kern_prg_close(&p); /* a second close is harmless */
  ck_assert_int_eq(kern_prg_bits(&p, out, 4), TANDEM_EINVAL);
}
END_TEST

Suite *prg_suite(void) {
  Suite *s = suite_create("prg");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_prg_kat_key);
  tcase_add_test(tc, test_prg_kat_key_iv);
  tcase_add_test(tc, test_prg_views);
  tcase_add_test(tc, test_prg_split_invariant);
  tcase_add_test(tc, test_prg_same_seed_every_variant);
  tcase_add_test(tc, test_prg_seeds_differ);
  tcase_add_test(tc, test_prg_bad_args);
  suite_add_tcase(s, tc);
  return s;
}
