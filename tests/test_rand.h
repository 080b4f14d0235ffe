/* test_rand.h - the one generator of test data for every module's tests:
 * splitmix64 (Steele, Lea and Flood, OOPSLA 2014), header-only so that the
 * kernel, mpc and net suites share it without a library. Fixed seeds make a
 * failing case reproducible. It is not the protocols' randomness, which
 * comes from the crypto PRG (kern_prg) or libsodium. */
#ifndef TANDEM_TEST_RAND_H
#define TANDEM_TEST_RAND_H

#include <stdint.h>

/* The next value of the stream whose state is *s (advanced). */
static inline uint64_t test_splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#endif
