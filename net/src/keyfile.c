/* keyfile.c - identity keys and the one-line key files of net.h:
 * "tandem-x25519-sk <64 hex>" (mode 0600, checked before reading) and
 * "tandem-x25519-pk <64 hex>" (mode 0644), written through the one atomic
 * file writer of every module (tandem_file.h), so a crash leaves the old
 * file or the new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "net_int.h"
#include "tandem_file.h"

static const char sk_tag[] = "tandem-x25519-sk ";
static const char pk_tag[] = "tandem-x25519-pk ";
#define LINE_MAX_BYTES 128 /* tag + 64 hex + newline, with room to spare */

void net__hex_encode(char *out, const unsigned char *in, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Exactly 64 hex digits at s, then only whitespace. Branches on the digits,
 * which is acceptable for key files read once at start-up. */
static int parse_hex32(const char *s, size_t n, unsigned char out[32]) {
  size_t i;
  if (n < 64)
    return TANDEM_EPARSE;
  for (i = 0; i < 32; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return TANDEM_EPARSE;
    out[i] = (unsigned char)(hi << 4 | lo);
  }
  for (i = 64; i < n; i++)
    if (s[i] != '\n' && s[i] != '\r' && s[i] != ' ' && s[i] != '\t')
      return TANDEM_EPARSE;
  return 0;
}

int net_pub_parse(const char *hex, unsigned char pk[NET_KEY_BYTES]) {
  unsigned char tmp[32];
  if (!hex || !pk)
    return TANDEM_EINVAL;
  if (parse_hex32(hex, strlen(hex), tmp))
    return TANDEM_EPARSE;
  memcpy(pk, tmp, 32);
  return 0;
}

void net_keypair(unsigned char pk[NET_KEY_BYTES], unsigned char sk[NET_KEY_BYTES]) {
  if (sodium_init() < 0)
    return;
  crypto_kx_keypair(pk, sk);
}

/* Reads the whole (short) file into buf; checks the mode first if secret. */
static int read_line(const char *path, int secret, char *buf, size_t cap, size_t *n) {
  struct stat st;
  ssize_t got;
  size_t have = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return secret ? TANDEM_EKEYPERM : TANDEM_EPARSE;
  }
  if (secret && (st.st_mode & 077)) {
    close(fd);
    return TANDEM_EKEYPERM;
  }
  while (have < cap) {
    got = read(fd, buf + have, cap - have);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      int e = -errno;
      close(fd);
      return e;
    }
    if (got == 0)
      break;
    have += (size_t)got;
  }
  close(fd);
  if (have == cap)
    return TANDEM_EPARSE; /* longer than any key file */
  *n = have;
  return 0;
}

static int load(const char *path, const char *tag, int secret, unsigned char out[32]) {
  char buf[LINE_MAX_BYTES];
  unsigned char key[32];
  size_t n = 0, tl = strlen(tag);
  int r = read_line(path, secret, buf, sizeof(buf), &n);
  if (r == 0) {
    if (n < tl || memcmp(buf, tag, tl) != 0)
      r = TANDEM_EPARSE;
    else
      r = parse_hex32(buf + tl, n - tl, key);
  }
  /* A file that fails half way leaves no part of its key in out. */
  if (r == 0)
    memcpy(out, key, 32);
  sodium_memzero(key, sizeof(key));
  sodium_memzero(buf, sizeof(buf));
  return r;
}

int net_key_load(const char *path, unsigned char pk[NET_KEY_BYTES],
                 unsigned char sk[NET_KEY_BYTES]) {
  int r;
  if (!path || !sk)
    return TANDEM_EINVAL;
  if (sodium_init() < 0)
    return TANDEM_ECRYPTO;
  r = load(path, sk_tag, 1, sk);
  if (r == 0 && pk)
    crypto_scalarmult_base(pk, sk);
  return r;
}

int net_pub_load(const char *path, unsigned char pk[NET_KEY_BYTES]) {
  if (!path || !pk)
    return TANDEM_EINVAL;
  return load(path, pk_tag, 0, pk);
}

static int save(const char *path, const char *tag, const unsigned char key[32], mode_t mode) {
  char line[LINE_MAX_BYTES];
  size_t len = strlen(tag);
  memcpy(line, tag, len);
  net__hex_encode(line + len, key, 32);
  len += 64;
  line[len++] = '\n';
  const void *bufs[1] = {line};
  int r = tandem_file_write(path, bufs, &len, 1, (unsigned)mode);
  sodium_memzero(line, sizeof(line));
  return r;
}

int net_key_save(const char *path, const unsigned char sk[NET_KEY_BYTES]) {
  return save(path, sk_tag, sk, 0600);
}

int net_pub_save(const char *path, const unsigned char pk[NET_KEY_BYTES]) {
  return save(path, pk_tag, pk, 0644);
}
