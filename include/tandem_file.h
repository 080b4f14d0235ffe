/* tandem_file.h - the one atomic file writer of every module (keys in net,
 * tensor files in mpc, the cluster's model files): header-only, like the
 * error list, so that the modules share it without depending on each other.
 *
 * tandem_file_write writes the n buffers bufs[i] (lens[i] bytes each), one
 * after the other, as the file path with mode `mode`: through a fresh
 * temporary file beside it (O_CREAT|O_EXCL|O_NOFOLLOW, close-on-exec: never a
 * file or a link someone put there, never handed to a child that execs),
 * fsync'd and renamed over path, then the directory fsync'd, so that a crash
 * leaves the old file or the new one, never half of one. 0, -errno, or
 * TANDEM_EINVAL (a path too long). */
#ifndef TANDEM_FILE_H
#define TANDEM_FILE_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tandem_err.h"

static inline int tandem_file_tmp(const char *path, char *tmp, size_t cap) {
  for (int tries = 0; tries < 16; tries++) {
    /* A name nobody can predict (the OS's randomness), so nobody can plant
     * a file or a link there first; O_EXCL|O_NOFOLLOW refuse one anyway. */
    uint64_t x;
    if (getrandom(&x, sizeof x, 0) != (ssize_t)sizeof x)
      return errno ? -errno : TANDEM_EINVAL;
    int n = snprintf(tmp, cap, "%s.tmp%016llx", path, (unsigned long long)x);
    if (n < 0 || (size_t)n >= cap)
      return TANDEM_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0)
      return fd;
    if (errno != EEXIST)
      return -errno;
  }
  return -EEXIST;
}

static inline int tandem_file_write(const char *path, const void *const *bufs,
                                    const size_t *lens, size_t n, unsigned mode) {
  char tmp[4096], dir[4096];
  if (path == NULL || (n > 0 && (bufs == NULL || lens == NULL)))
    return TANDEM_EINVAL;
  int fd = tandem_file_tmp(path, tmp, sizeof tmp), r = 0;
  if (fd < 0)
    return fd;
  if (fchmod(fd, (mode_t)mode) != 0) {
    r = -errno;
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    const unsigned char *p = (const unsigned char *)bufs[i];
    for (size_t off = 0; off < lens[i];) {
      ssize_t w = write(fd, p + off, lens[i] - off);
      if (w < 0) {
        if (errno == EINTR)
          continue;
        r = -errno;
        goto fail;
      }
      off += (size_t)w;
    }
  }
  if (fsync(fd) != 0) {
    r = -errno;
    goto fail;
  }
  if (close(fd) != 0) {
    fd = -1;
    r = -errno;
    goto fail;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    r = -errno;
    goto fail;
  }
  /* Make the rename itself durable. */
  const char *slash = strrchr(path, '/');
  size_t dl = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
  if (slash == NULL)
    snprintf(dir, sizeof dir, ".");
  else if (dl < sizeof dir)
    snprintf(dir, sizeof dir, "%.*s", (int)dl, path);
  else
    dir[0] = '\0';
  if (dir[0] != '\0') {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)fsync(dfd);
      close(dfd);
    }
  }
  return 0;
fail:
  if (fd >= 0)
    close(fd);
  unlink(tmp);
  return r;
}

#endif
