/* tandem_err.h - the one error list shared by every Tandem module.
 *
 * Header-only (CMake target tandem_common). Every fallible function in kernels/,
 * net/, mpc/ and apps/ returns 0 on success or one negative code from this list.
 * Codes that have an errno meaning are -errno, as libuv does on Unix, so a system
 * error passes through unchanged; Tandem's own conditions live below -4000.
 * tandem_strerror() is generated from the same X-macro, so the list and its
 * messages cannot drift apart.
 */
#ifndef TANDEM_ERR_H
#define TANDEM_ERR_H

#include <errno.h>
#include <string.h>

#if defined(__GNUC__)
#define TANDEM_WUR __attribute__((warn_unused_result))
#else
#define TANDEM_WUR
#endif

/* XX(name, value, message) */
#define TANDEM_ERR_MAP(XX)                                                   \
  XX(EINVAL, -EINVAL, "invalid argument")                                    \
  XX(ENOMEM, -ENOMEM, "out of memory")                                       \
  XX(ERANGE, -ERANGE, "value outside the fixed-point range")                 \
  XX(ENOTSUP, -ENOTSUP, "not supported on this CPU or build")                \
  XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                     \
  XX(EPROTO, -EPROTO, "protocol error")                                      \
  XX(EIO, -EIO, "input/output error")                                        \
  XX(ENOENT, -ENOENT, "no such file or entry")                               \
  XX(EADDRINUSE, -EADDRINUSE, "address already in use")                      \
  XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                    \
  XX(ECANCELED, -ECANCELED, "cancelled by the dealer or the other party")    \
  XX(EAUTH, -4001, "authentication failed")                                  \
  XX(ESHAPE, -4002, "tensor shape mismatch")                                 \
  XX(EPARSE, -4003, "malformed input")                                       \
  XX(EUNSUPOP, -4004, "unsupported operator or attribute")                   \
  XX(EKEYPERM, -4005, "key file is readable by others (want mode 0600)")     \
  XX(ECONFIG, -4006, "invalid configuration")                                \
  XX(ECRYPTO, -4007, "cryptographic library failure")                        \
  XX(ECLOSED, -4008, "peer closed the connection")                          \
  XX(EINPUTS, -4009, "the client sent the parties different masked inputs")

enum tandem_err {
#define TANDEM_ERR_ENUM(name, val, msg) TANDEM_##name = (val),
  TANDEM_ERR_MAP(TANDEM_ERR_ENUM)
#undef TANDEM_ERR_ENUM
  TANDEM_OK = 0
};

/* The message of an error code; never NULL. Codes not in the list but in the
 * errno range (a system error passed through) get the C library's message. */
static inline const char *tandem_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define TANDEM_ERR_CASE(name, val, msg) \
  case (val):                           \
    return (msg);
    TANDEM_ERR_MAP(TANDEM_ERR_CASE)
#undef TANDEM_ERR_CASE
  default:
    break;
  }
  if (err < 0 && err > -4000)
    return strerror(-err);
  return "unknown error";
}

/* The symbolic name ("TANDEM_EINVAL") of an error code, for logs and tests. */
static inline const char *tandem_err_name(int err) {
  switch (err) {
  case 0:
    return "TANDEM_OK";
#define TANDEM_ERR_NAME(name, val, msg) \
  case (val):                           \
    return "TANDEM_" #name;
    TANDEM_ERR_MAP(TANDEM_ERR_NAME)
#undef TANDEM_ERR_NAME
  default:
    return "TANDEM_E?";
  }
}

#endif /* TANDEM_ERR_H */
