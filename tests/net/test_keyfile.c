/* test_keyfile.c - Check suite for the key files of net.h: round trips,
 * modes, the permission check before reading, parse errors. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "net_harness.h"

static char dir[64];

static void mkdir_tmp(void) {
  strcpy(dir, "/tmp/tandem-keyXXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void path_of(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", dir, name);
}

static void write_file(const char *path, const char *text, mode_t mode) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(roundtrip) {
  unsigned char pk[32], sk[32], pk2[32], sk2[32];
  char p[128], q[128];
  struct stat st;
  mkdir_tmp();
  path_of(p, sizeof(p), "id.key");
  path_of(q, sizeof(q), "id.pub");
  net_keypair(pk, sk);
  ck_assert_int_eq(net_key_save(p, sk), 0);
  ck_assert_int_eq(net_pub_save(q, pk), 0);
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(stat(q, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0644);
  ck_assert_int_eq(net_key_load(p, pk2, sk2), 0);
  ck_assert(memcmp(sk, sk2, 32) == 0 && memcmp(pk, pk2, 32) == 0);
  ck_assert_int_eq(net_pub_load(q, pk2), 0);
  ck_assert(memcmp(pk, pk2, 32) == 0);
  /* Saving again replaces the file. */
  net_keypair(pk, sk);
  ck_assert_int_eq(net_key_save(p, sk), 0);
  ck_assert_int_eq(net_key_load(p, NULL, sk2), 0);
  ck_assert(memcmp(sk, sk2, 32) == 0);
  /* Wrong kinds. */
  ck_assert_int_eq(net_key_load(q, pk2, sk2), TANDEM_EKEYPERM); /* 0644 */
  ck_assert_int_eq(net_pub_load(p, pk2), TANDEM_EPARSE);
  unlink(p);
  unlink(q);
  ck_assert_int_eq(net_key_load(p, pk2, sk2), TANDEM_ENOENT);
  /* A directory that does not exist: an error, nothing written. */
  path_of(p, sizeof(p), "none/id.key");
  ck_assert_int_eq(net_key_save(p, sk), TANDEM_ENOENT);
  /* No temporary file was left behind, so the directory is empty. */
  ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(permissions) {
  unsigned char pk[32], sk[32];
  char p[128];
  mkdir_tmp();
  path_of(p, sizeof(p), "open.key");
  net_keypair(pk, sk);
  ck_assert_int_eq(net_key_save(p, sk), 0);
  ck_assert_int_eq(chmod(p, 0644), 0);
  ck_assert_int_eq(net_key_load(p, pk, sk), TANDEM_EKEYPERM);
  ck_assert_int_eq(chmod(p, 0640), 0);
  ck_assert_int_eq(net_key_load(p, pk, sk), TANDEM_EKEYPERM);
  /* Checked before reading: even garbage gives EKEYPERM. */
  write_file(p, "garbage", 0604);
  ck_assert_int_eq(net_key_load(p, pk, sk), TANDEM_EKEYPERM);
  unlink(p);
  rmdir(dir);
}
END_TEST

START_TEST(parse_errors) {
  unsigned char pk[32], sk[32];
  char p[128];
  const char *hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
  const char *bad[] = {
      "",
      "tandem-x25519-sk ",
      "tandem-x25519-sk 0011",
      "tandem-x25519-sk 00112233445566778899aabbccddeeff00112233445566778899aabbccddeefg\n",
      "tandem-x25519-sk 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00\n",
      "tandem-x25519-pk 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
      "tandem-x25519-sk00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
  };
  ck_assert_int_eq(net_pub_parse(hex, pk), 0);
  ck_assert_uint_eq(pk[0], 0x00);
  ck_assert_uint_eq(pk[31], 0xff);
  ck_assert_int_eq(net_pub_parse("0011", pk), TANDEM_EPARSE);
  ck_assert_int_eq(net_pub_parse("", pk), TANDEM_EPARSE);
  ck_assert_int_eq(net_pub_parse("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", pk),
                   TANDEM_EPARSE);
  mkdir_tmp();
  path_of(p, sizeof(p), "bad.key");
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    write_file(p, bad[i], 0600);
    ck_assert_msg(net_key_load(p, pk, sk) == TANDEM_EPARSE, "case %zu", i);
  }
  write_file(p, "tandem-x25519-sk 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
             0600);
  ck_assert_int_eq(net_key_load(p, pk, sk), 0);
  /* A very long file. */
  {
    char *big = malloc(10000);
    memset(big, 'a', 9999);
    big[9999] = 0;
    write_file(p, big, 0600);
    free(big);
    ck_assert_int_eq(net_key_load(p, pk, sk), TANDEM_EPARSE);
  }
  unlink(p);
  rmdir(dir);
}
END_TEST

Suite *keyfile_suite(void) {
  Suite *s = suite_create("keyfile");
  TCase *tc = tcase_create("keyfile");
  tcase_add_test(tc, roundtrip);
  tcase_add_test(tc, permissions);
  tcase_add_test(tc, parse_errors);
  suite_add_tcase(s, tc);
  return s;
}
