/* test_dispatch.c - Check suite for the kernel dispatch (kernels/src/dispatch.c).
 *
 * Variant names, forcing a variant the CPU lacks, the thread-count bounds,
 * and the TANDEM_KERNEL environment variable. kern_init reads the variable
 * only once per process, so each environment case runs in a child forked for
 * it, which sets the variable before its first kernel call and reports
 * through its exit status. That needs a test process that has not chosen a
 * variant yet, which Check's default fork mode gives (every test runs in a
 * fresh child of a runner that never calls the kernels); under CK_FORK=no
 * the environment test is skipped with a message.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kern.h"

START_TEST(test_parse_names) {
  static const char *good[] = {"ref", "avx2", "avx512"};
  for (int i = 0; i < KERN_NISA; i++) {
    kern_isa_t isa = (kern_isa_t)99;
    ck_assert_int_eq(kern_isa_parse(good[i], &isa), 0);
    ck_assert_int_eq((int)isa, i);
    ck_assert_str_eq(kern_isa_name(isa), good[i]);
  }
  static const char *bad[] = {"", "AVX2", "avx", "avx512 ", " ref",
                              "avx5120", "neon"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    kern_isa_t isa = KERN_REF;
    ck_assert_msg(kern_isa_parse(bad[i], &isa) == TANDEM_EINVAL, "'%s'",
                  bad[i]);
  }
  kern_isa_t isa;
  ck_assert_int_eq(kern_isa_parse(NULL, &isa), TANDEM_EINVAL);
  ck_assert_str_eq(kern_isa_name((kern_isa_t)KERN_NISA), "?");
  ck_assert_str_eq(kern_isa_name((kern_isa_t)-1), "?");
}
END_TEST

START_TEST(test_select) {
  ck_assert_int_eq(kern_isa_supported(KERN_REF), 1);
  ck_assert_int_eq(kern_isa_select((kern_isa_t)KERN_NISA), TANDEM_EINVAL);
  for (int i = 0; i < KERN_NISA; i++) {
    kern_isa_t isa = (kern_isa_t)i;
    if (!kern_isa_supported(isa)) {
      fprintf(stderr, "test_dispatch: %s not supported here\n",
              kern_isa_name(isa));
      ck_assert_int_eq(kern_isa_select(isa), TANDEM_ENOTSUP);
      continue;
    }
    ck_assert_int_eq(kern_isa_select(isa), 0);
    ck_assert_int_eq((int)kern_isa_active(), i);
  }
}
END_TEST

START_TEST(test_threads) {
  ck_assert_int_eq(kern_set_threads(0), TANDEM_EINVAL);
  ck_assert_int_eq(kern_set_threads(65), TANDEM_EINVAL);
  ck_assert_int_eq(kern_set_threads(-1), TANDEM_EINVAL);
  ck_assert_int_eq(kern_set_threads(1), 0);
  ck_assert_int_eq(kern_threads(), 1);
  ck_assert_int_eq(kern_set_threads(64), 0);
  ck_assert_int_eq(kern_threads(), 64);
}
END_TEST

/* Exit statuses of the child: 0 = as expected, else which check failed. */
enum { CHILD_OK = 0, CHILD_RC = 10, CHILD_ACTIVE = 11, CHILD_SETENV = 12 };

/* Forks a child that sets TANDEM_KERNEL=value (unset if NULL), calls
 * kern_init and checks its return code and the variant that ends up active;
 * returns the child's exit status. */
static int env_case(const char *value, int want_rc, kern_isa_t want_active) {
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int ok = value ? setenv("TANDEM_KERNEL", value, 1) == 0
                   : unsetenv("TANDEM_KERNEL") == 0;
    if (!ok)
      _exit(CHILD_SETENV);
    int rc = kern_init();
    if (rc != want_rc)
      _exit(CHILD_RC);
    if (kern_isa_active() != want_active)
      _exit(CHILD_ACTIVE);
    /* A second call is a no-op that succeeds. */
    if (kern_init() != 0)
      _exit(CHILD_RC);
    _exit(CHILD_OK);
  }
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status));
  return WEXITSTATUS(status);
}

START_TEST(test_env_kernel) {
  const char *ck_fork = getenv("CK_FORK");
  if (ck_fork != NULL && strcmp(ck_fork, "no") == 0) {
    fprintf(stderr, "test_dispatch: CK_FORK=no, skipping the TANDEM_KERNEL "
                    "test (needs a process with no variant chosen yet)\n");
    return;
  }
  /* The default: the best supported variant. */
  kern_isa_t best = KERN_REF;
  for (int i = 0; i < KERN_NISA; i++)
    if (kern_isa_supported((kern_isa_t)i))
      best = (kern_isa_t)i;
  ck_assert_int_eq(env_case(NULL, 0, best), CHILD_OK);
  ck_assert_int_eq(env_case("", 0, best), CHILD_OK);

  /* Unknown names: TANDEM_EINVAL, and the reference stays active. */
  ck_assert_int_eq(env_case("bogus", TANDEM_EINVAL, KERN_REF), CHILD_OK);
  ck_assert_int_eq(env_case("AVX512", TANDEM_EINVAL, KERN_REF), CHILD_OK);

  /* Each valid name selects its variant, or reports ENOTSUP and keeps the
   * reference. */
  for (int i = 0; i < KERN_NISA; i++) {
    kern_isa_t isa = (kern_isa_t)i;
    if (kern_isa_supported(isa))
      ck_assert_int_eq(env_case(kern_isa_name(isa), 0, isa), CHILD_OK);
    else
      ck_assert_int_eq(env_case(kern_isa_name(isa), TANDEM_ENOTSUP, KERN_REF),
                       CHILD_OK);
  }
}
END_TEST

Suite *dispatch_suite(void) {
  Suite *s = suite_create("dispatch");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_parse_names);
  tcase_add_test(tc, test_select);
  tcase_add_test(tc, test_threads);
  tcase_add_test(tc, test_env_kernel);
  suite_add_tcase(s, tc);
  return s;
}
