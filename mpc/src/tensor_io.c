/* tensor_io.c - tensors in and out of files: ONNX TensorProto (.pb) and
 * NumPy (.npy), plus the TensorProto conversion the ONNX importer shares.
 *
 * These are the formats `tandem run` and the client read inputs from and
 * write outputs to (the ONNX backend test data uses .pb; .npy is what NumPy
 * users have). Every byte read here comes from a file a user handed over, so
 * every length is checked before it is used and malformed input ends in an
 * error code and one line of explanation, never a crash; the readers are
 * fuzzed (tests/fuzz/fuzz_tensor.c). Values become IEEE doubles, the
 * plaintext type of the rest of mpc/; writing is always float64, so a saved
 * tensor reads back bit for bit.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpc.h"
#include "onnx_int.h"
#include "tandem_file.h"

/* ---- small helpers ------------------------------------------------------- */

__attribute__((format(printf, 4, 5)))
static int tfail(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* Little-endian loads and stores through memcpy: the file layout is fixed
 * whatever the host's byte order, and the buffers are not aligned. */
static int host_is_le(void) {
  const uint16_t one = 1;
  uint8_t b;
  memcpy(&b, &one, 1);
  return b == 1;
}

static void bswap_n(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n / 2; i++) {
    uint8_t t = p[i];
    p[i] = p[n - 1 - i];
    p[n - 1 - i] = t;
  }
}

static double load_le_f32(const uint8_t *p) {
  uint8_t b[4];
  float v;
  memcpy(b, p, 4);
  if (!host_is_le())
    bswap_n(b, 4);
  memcpy(&v, b, 4);
  return (double)v;
}

static double load_le_f64(const uint8_t *p) {
  uint8_t b[8];
  double v;
  memcpy(b, p, 8);
  if (!host_is_le())
    bswap_n(b, 8);
  memcpy(&v, b, 8);
  return v;
}

static int64_t load_le_i64(const uint8_t *p) {
  uint8_t b[8];
  int64_t v;
  memcpy(b, p, 8);
  if (!host_is_le())
    bswap_n(b, 8);
  memcpy(&v, b, 8);
  return v;
}

static int32_t load_le_i32(const uint8_t *p) {
  uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  int32_t v;
  memcpy(&v, &u, 4);
  return v;
}

static void store_le_f64(uint8_t *p, double v) {
  memcpy(p, &v, 8);
  if (!host_is_le())
    bswap_n(p, 8);
}

const char *mpc__onnx_dtype_name(int dtype, char buf[16]) {
  static const char *const names[] = {"UNDEFINED", "FLOAT",  "UINT8",     "INT8",      "UINT16",
                                      "INT16",     "INT32",  "INT64",     "STRING",    "BOOL",
                                      "FLOAT16",   "DOUBLE", "UINT32",    "UINT64",    "COMPLEX64",
                                      "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ",
                                      "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4"};
  if (dtype >= 0 && (size_t)dtype < sizeof names / sizeof names[0])
    return names[dtype];
  snprintf(buf, 16, "type %d", dtype);
  return buf;
}

/* ---- files --------------------------------------------------------------- */

int mpc__read_file(const char *path, size_t max, uint8_t **buf, size_t *len, char *err,
                   size_t errlen) {
  *buf = NULL;
  *len = 0;
  if (path == NULL)
    return tfail(err, errlen, TANDEM_EINVAL, "no file name");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return tfail(err, errlen, -e, "%s: %s", path, strerror(e));
  }
  int rc;
  uint8_t *b = NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = -errno;
    tfail(err, errlen, rc, "%s: %s", path, strerror(-rc));
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = tfail(err, errlen, TANDEM_EINVAL, "%s: not a regular file", path);
    goto fail;
  }
  if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)max) {
    rc = tfail(err, errlen, TANDEM_EINVAL, "%s: %lld bytes, more than the limit of %zu", path,
               (long long)st.st_size, max);
    goto fail;
  }
  size_t n = (size_t)st.st_size;
  b = malloc(n ? n : 1);
  if (b == NULL) {
    rc = tfail(err, errlen, TANDEM_ENOMEM, "%s: out of memory", path);
    goto fail;
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, b + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = -errno;
      tfail(err, errlen, rc, "%s: %s", path, strerror(-rc));
      goto fail;
    }
    if (r == 0)
      break; /* the file shrank under us: parse what is there */
    got += (size_t)r;
  }
  close(fd);
  *buf = b;
  *len = got;
  return 0;

fail:
  free(b);
  close(fd);
  return rc;
}

/* Writes len bytes through the one atomic writer (tandem_file.h): readers
 * see the old file or the new one, never a part. A tensor file holds a
 * client's input or result, so only its owner may read it (0600), whatever
 * the umask. */
static int write_atomic(const char *path, const uint8_t *data, size_t len) {
  const void *bufs[1] = {data};
  return tandem_file_write(path, bufs, &len, 1, 0600);
}

/* ---- TensorProto --------------------------------------------------------- */

void mpc__ctensor_close(mpc__ctensor_t *t) {
  if (t == NULL)
    return;
  free(t->f);
  free(t->i);
  memset(t, 0, sizeof *t);
}

/* The element size of the numeric types read as real numbers besides FLOAT
 * and DOUBLE: FLOAT16 and the integer types but INT64 (a shape's type, kept
 * as integers); 0 for any other type. */
static size_t numeric_size(int dt) {
  switch (dt) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    return 1;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
    return 2;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
    return 4;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    return 8;
  default:
    return 0;
  }
}

/* IEEE half precision to double. */
static double half_value(uint16_t h) {
  int e = (h >> 10) & 31;
  double m = h & 1023, v;
  if (e == 0)
    v = ldexp(m, -24);
  else if (e == 31)
    v = m != 0 ? NAN : INFINITY;
  else
    v = ldexp(m + 1024, e - 25);
  return (h & 0x8000) ? -v : v;
}

/* Element k of a tensor of numeric type dt (numeric_size), as a real: raw
 * bytes little endian, or the typed field ONNX stores it in (int32_data,
 * FLOAT16 as its bits; uint64_data for UINT32 and UINT64). */
static double numeric_value(const Onnx__TensorProto *tp, int dt, int raw, size_t k) {
  const uint8_t *p = tp->raw_data.data;
  uint64_t u = 0;
  size_t sz = numeric_size(dt);
  if (raw)
    for (size_t b = 0; b < sz; b++)
      u |= (uint64_t)p[sz * k + b] << (8 * b);
  else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__UINT32 || dt == ONNX__TENSOR_PROTO__DATA_TYPE__UINT64)
    u = tp->uint64_data[k];
  else
    u = (uint64_t)(uint32_t)tp->int32_data[k] & (sz == 4 ? 0xffffffffu : sz == 2 ? 0xffffu : 0xffu);
  switch (dt) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    return (double)(int8_t)u;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
    return (double)(int16_t)u;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    return (double)(int32_t)u;
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
    return half_value((uint16_t)u);
  default:
    return (double)u;
  }
}

int mpc__ctensor_from_proto(const Onnx__TensorProto *tp, mpc__ctensor_t *out, char *why,
                            size_t whylen) {
  char nb[16];
  memset(out, 0, sizeof *out);
  if (tp == NULL)
    return tfail(why, whylen, TANDEM_EPARSE, "no tensor");
  if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    return tfail(why, whylen, TANDEM_EUNSUPOP,
                 "data stored in an external file is not supported (save the model with its "
                 "weights inside)");
  if (tp->segment != NULL)
    return tfail(why, whylen, TANDEM_EUNSUPOP, "segmented tensors are not supported");
  int dt = tp->has_data_type ? tp->data_type : 0;
  size_t esz = numeric_size(dt);
  switch (dt) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    esz = 4;
    break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    esz = 8;
    break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
    esz = 1;
    break;
  default:
    if (esz == 0)
      return tfail(why, whylen, TANDEM_EPARSE,
                   "data type %s is not supported (want FLOAT, DOUBLE, FLOAT16, an integer type, "
                   "or BOOL)", mpc__onnx_dtype_name(dt, nb));
  }
  if (tp->n_dims > MPC__CT_MAX_DIMS)
    return tfail(why, whylen, TANDEM_ESHAPE, "%zu dimensions (at most %d supported)", tp->n_dims,
                 MPC__CT_MAX_DIMS);
  uint64_t n = 1;
  for (size_t d = 0; d < tp->n_dims; d++) {
    int64_t v = tp->dims[d];
    if (v < 0)
      return tfail(why, whylen, TANDEM_EPARSE, "dimension %zu is negative (%" PRId64 ")", d, v);
    if (v != 0 && n > MPC__CT_MAX_NUMEL / (uint64_t)v)
      return tfail(why, whylen, TANDEM_ESHAPE, "more than 2^40 elements");
    n *= (uint64_t)v;
    out->dim[d] = (size_t)v;
  }
  out->ndim = (unsigned)tp->n_dims;
  out->numel = (size_t)n;
  out->dtype = dt;

  /* Exactly one source of data, holding exactly numel elements: a shorter or
   * longer field is a malformed file, not something to pad or cut. */
  size_t typed = 0;
  const char *field = "";
  switch (dt) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    typed = tp->n_float_data, field = "float_data";
    break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    typed = tp->n_double_data, field = "double_data";
    break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    typed = tp->n_int64_data, field = "int64_data";
    break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    typed = tp->n_uint64_data, field = "uint64_data";
    break;
  default:
    typed = tp->n_int32_data, field = "int32_data";
    break;
  }
  int raw = tp->has_raw_data && tp->raw_data.len > 0;
  if (raw && typed > 0)
    return tfail(why, whylen, TANDEM_EPARSE, "both raw_data and %s are set", field);
  if (raw) {
    if (tp->raw_data.len / esz != n || tp->raw_data.len % esz != 0)
      return tfail(why, whylen, TANDEM_EPARSE,
                   "raw_data has %zu bytes, want %" PRIu64 " (%" PRIu64 " elements of %zu bytes)",
                   tp->raw_data.len, n * esz, n, esz);
  } else if (typed != n) {
    return tfail(why, whylen, TANDEM_EPARSE, "%s tensor: %s has %zu values, want %" PRIu64,
                 mpc__onnx_dtype_name(dt, nb), field, typed, n);
  }

  size_t alloc = n ? (size_t)n : 1;
  int isf = dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
            dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE || numeric_size(dt) != 0;
  if (isf)
    out->f = malloc(alloc * sizeof *out->f);
  else
    out->i = malloc(alloc * sizeof *out->i);
  if (out->f == NULL && out->i == NULL) {
    memset(out, 0, sizeof *out);
    return tfail(why, whylen, TANDEM_ENOMEM, "out of memory");
  }
  const uint8_t *rd = tp->raw_data.data;
  for (size_t k = 0; k < (size_t)n; k++) {
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
      out->f[k] = raw ? load_le_f32(rd + 4 * k) : (double)tp->float_data[k];
      break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
      out->f[k] = raw ? load_le_f64(rd + 8 * k) : tp->double_data[k];
      break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
      out->i[k] = raw ? load_le_i64(rd + 8 * k) : tp->int64_data[k];
      break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
      out->i[k] = (raw ? rd[k] : tp->int32_data[k]) != 0;
      break;
    default:
      out->f[k] = numeric_value(tp, dt, raw, k);
      break;
    }
  }
  return 0;
}

/* A float tensor from a parsed TensorProto into an mpc_ftensor_t. */
static int ftensor_from_proto(const Onnx__TensorProto *tp, mpc_ftensor_t *out, char *err,
                              size_t errlen) {
  mpc__ctensor_t ct;
  char why[200], nb[16];
  int rc = mpc__ctensor_from_proto(tp, &ct, why, sizeof why);
  if (rc != 0)
    return tfail(err, errlen, rc, "TensorProto: %s", why);
  if (ct.f == NULL && (ct.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
                      ct.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL)) {
    /* INT64 data (a Max of two INT64 inputs): reals, exact below 2^53; BOOL
     * (Dropout's mask) as 0 and 1. */
    ct.f = malloc((ct.numel ? ct.numel : 1) * sizeof *ct.f);
    if (ct.f == NULL) {
      rc = tfail(err, errlen, TANDEM_ENOMEM, "out of memory");
      goto done;
    }
    for (size_t k = 0; k < ct.numel; k++)
      ct.f[k] = (double)ct.i[k];
  }
  if (ct.f == NULL) {
    rc = tfail(err, errlen, TANDEM_EPARSE,
               "TensorProto: data type %s (want FLOAT, DOUBLE, FLOAT16 or an integer type)",
               mpc__onnx_dtype_name(ct.dtype, nb));
    goto done;
  }
  if (ct.ndim > MPC_MAX_DIMS) {
    rc = tfail(err, errlen, TANDEM_ESHAPE, "TensorProto: %u dimensions (at most %d)", ct.ndim,
               MPC_MAX_DIMS);
    goto done;
  }
  if (ct.numel == 0) {
    rc = tfail(err, errlen, TANDEM_ESHAPE, "TensorProto: empty tensor (a zero dimension)");
    goto done;
  }
  mpc_shape_t s;
  memset(&s, 0, sizeof s);
  s.ndim = ct.ndim;
  for (unsigned d = 0; d < ct.ndim; d++)
    s.dim[d] = ct.dim[d];
  rc = mpc_ftensor_init(out, &s);
  if (rc != 0) {
    tfail(err, errlen, rc, "TensorProto: %s", tandem_strerror(rc));
    goto done;
  }
  memcpy(out->data, ct.f, ct.numel * sizeof *out->data);
done:
  mpc__ctensor_close(&ct);
  return rc;
}

static int pb_load(const uint8_t *buf, size_t len, mpc_ftensor_t *out, char *err, size_t errlen) {
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
  if (tp == NULL)
    return tfail(err, errlen, TANDEM_EPARSE,
                 "not a .npy file and not a valid ONNX TensorProto (protobuf parse failed)");
  int rc = ftensor_from_proto(tp, out, err, errlen);
  onnx__tensor_proto__free_unpacked(tp, NULL);
  return rc;
}

/* ---- NumPy .npy ---------------------------------------------------------- */

/* The header is a Python dict literal, e.g.
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ended by a newline. This is a small scanner for
 * exactly that grammar (any key order, either quote, optional trailing
 * commas), not a Python parser: anything else is refused. */
typedef struct {
  const char *p, *end;
} scan_t;

static void skip_ws(scan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static int accept_ch(scan_t *s, char c) {
  skip_ws(s);
  if (s->p < s->end && *s->p == c) {
    s->p++;
    return 1;
  }
  return 0;
}

/* A quoted string into out (at most outlen - 1 characters, no escapes). */
static int scan_str(scan_t *s, char *out, size_t outlen) {
  skip_ws(s);
  if (s->p >= s->end || (*s->p != '\'' && *s->p != '"'))
    return 0;
  char q = *s->p++;
  size_t n = 0;
  while (s->p < s->end && *s->p != q) {
    if (*s->p == '\\' || n + 1 >= outlen)
      return 0;
    out[n++] = *s->p++;
  }
  if (s->p >= s->end)
    return 0;
  s->p++;
  out[n] = '\0';
  return 1;
}

static int scan_word(scan_t *s, const char *w) {
  skip_ws(s);
  size_t n = strlen(w);
  if ((size_t)(s->end - s->p) >= n && memcmp(s->p, w, n) == 0) {
    s->p += n;
    return 1;
  }
  return 0;
}

typedef struct {
  char descr[32];
  int fortran;
  unsigned ndim;
  size_t dim[MPC_MAX_DIMS];
} npy_hdr_t;

static int scan_shape(scan_t *s, npy_hdr_t *h, char *err, size_t errlen) {
  if (!accept_ch(s, '('))
    return tfail(err, errlen, TANDEM_EPARSE, ".npy header: shape is not a tuple");
  h->ndim = 0;
  for (;;) {
    if (accept_ch(s, ')'))
      return 0;
    skip_ws(s);
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
      return tfail(err, errlen, TANDEM_EPARSE, ".npy header: bad shape tuple");
    uint64_t v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
      v = v * 10 + (uint64_t)(*s->p++ - '0');
      if (v > MPC__CT_MAX_NUMEL)
        return tfail(err, errlen, TANDEM_ESHAPE, ".npy header: dimension above 2^40");
    }
    if (s->p < s->end && *s->p == 'L')
      s->p++; /* Python 2's long literal, in files from old NumPy */
    if (h->ndim >= MPC_MAX_DIMS)
      return tfail(err, errlen, TANDEM_ESHAPE, ".npy: more than %d dimensions", MPC_MAX_DIMS);
    h->dim[h->ndim++] = (size_t)v;
    if (!accept_ch(s, ',')) {
      if (accept_ch(s, ')'))
        return 0;
      return tfail(err, errlen, TANDEM_EPARSE, ".npy header: bad shape tuple");
    }
  }
}

static int npy_header(const char *txt, size_t n, npy_hdr_t *h, char *err, size_t errlen) {
  scan_t s = {txt, txt + n};
  int have_d = 0, have_f = 0, have_s = 0;
  memset(h, 0, sizeof *h);
  if (!accept_ch(&s, '{'))
    return tfail(err, errlen, TANDEM_EPARSE, ".npy header: not a dict");
  for (;;) {
    if (accept_ch(&s, '}'))
      break;
    char key[32];
    if (!scan_str(&s, key, sizeof key) || !accept_ch(&s, ':'))
      return tfail(err, errlen, TANDEM_EPARSE, ".npy header: bad dict entry");
    int rc;
    if (strcmp(key, "descr") == 0 && !have_d) {
      if (!scan_str(&s, h->descr, sizeof h->descr))
        return tfail(err, errlen, TANDEM_EUNSUPOP,
                     ".npy: descr is not a simple type string (structured dtypes are not "
                     "supported; want '<f4' or '<f8')");
      have_d = 1;
    } else if (strcmp(key, "fortran_order") == 0 && !have_f) {
      if (scan_word(&s, "True"))
        h->fortran = 1;
      else if (scan_word(&s, "False"))
        h->fortran = 0;
      else
        return tfail(err, errlen, TANDEM_EPARSE, ".npy header: fortran_order is not a bool");
      have_f = 1;
    } else if (strcmp(key, "shape") == 0 && !have_s) {
      rc = scan_shape(&s, h, err, errlen);
      if (rc != 0)
        return rc;
      have_s = 1;
    } else {
      return tfail(err, errlen, TANDEM_EPARSE, ".npy header: unexpected or repeated key '%s'",
                   key);
    }
    if (!accept_ch(&s, ',')) {
      if (accept_ch(&s, '}'))
        break;
      return tfail(err, errlen, TANDEM_EPARSE, ".npy header: missing ',' or '}'");
    }
  }
  skip_ws(&s);
  if (s.p != s.end)
    return tfail(err, errlen, TANDEM_EPARSE, ".npy header: text after the dict");
  if (!have_d || !have_f || !have_s)
    return tfail(err, errlen, TANDEM_EPARSE, ".npy header: missing %s",
                 !have_d ? "descr" : !have_f ? "fortran_order" : "shape");
  return 0;
}

static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static int npy_load(const uint8_t *buf, size_t len, mpc_ftensor_t *out, char *err,
                    size_t errlen) {
  if (len < 10)
    return tfail(err, errlen, TANDEM_EPARSE, ".npy: truncated header (%zu bytes)", len);
  unsigned major = buf[6], minor = buf[7];
  size_t hlen, off;
  if (major == 1 && minor == 0) {
    hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
    off = 10;
  } else if (major == 2 && minor == 0) {
    if (len < 12)
      return tfail(err, errlen, TANDEM_EPARSE, ".npy: truncated header (%zu bytes)", len);
    hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    off = 12;
  } else {
    return tfail(err, errlen, TANDEM_EUNSUPOP, ".npy: format version %u.%u (want 1.0 or 2.0)",
                 major, minor);
  }
  if (hlen > len - off)
    return tfail(err, errlen, TANDEM_EPARSE, ".npy: truncated header (%zu of %zu bytes)",
                 len - off, hlen);
  npy_hdr_t h;
  int rc = npy_header((const char *)buf + off, hlen, &h, err, errlen);
  if (rc != 0)
    return rc;
  /* Reals, and the integers of token ids (an int64 or int32 array, numpy's
   * default for ids): as reals, exact below 2^53 (an id is checked against
   * its vocabulary, mpc_inputs_encode_ids). */
  size_t esz;
  int isint = 0;
  if (strcmp(h.descr, "<f4") == 0)
    esz = 4;
  else if (strcmp(h.descr, "<f8") == 0)
    esz = 8;
  else if (strcmp(h.descr, "<i8") == 0)
    esz = 8, isint = 1;
  else if (strcmp(h.descr, "<i4") == 0)
    esz = 4, isint = 1;
  else if (h.descr[0] == '>' && strchr("fi", h.descr[1]) != NULL)
    return tfail(err, errlen, TANDEM_EUNSUPOP,
                 ".npy: big-endian dtype '%s' is not supported (want '<f4', '<f8', '<i4' or "
                 "'<i8'; convert with arr.astype('<f8'))", h.descr);
  else
    return tfail(err, errlen, TANDEM_EUNSUPOP, ".npy: dtype '%s' is not supported (want '<f4', "
                 "'<f8', '<i4' or '<i8')", h.descr);
  if (h.fortran)
    return tfail(err, errlen, TANDEM_EUNSUPOP,
                 ".npy: Fortran order is not supported (save a C-ordered array, "
                 "np.ascontiguousarray)");
  mpc_shape_t s;
  memset(&s, 0, sizeof s);
  s.ndim = h.ndim;
  uint64_t n = 1;
  for (unsigned d = 0; d < h.ndim; d++) {
    if (h.dim[d] == 0)
      return tfail(err, errlen, TANDEM_ESHAPE, ".npy: empty array (dimension %u is 0)", d);
    if (n > MPC__CT_MAX_NUMEL / h.dim[d])
      return tfail(err, errlen, TANDEM_ESHAPE, ".npy: more than 2^40 elements");
    n *= h.dim[d];
    s.dim[d] = h.dim[d];
  }
  const uint8_t *data = buf + off + hlen;
  size_t have = len - off - hlen;
  if (have / esz < n)
    return tfail(err, errlen, TANDEM_EPARSE,
                 ".npy: truncated data (%zu bytes, want %" PRIu64 ")", have, n * esz);
  if (have != n * esz)
    return tfail(err, errlen, TANDEM_EPARSE, ".npy: %zu bytes after the data",
                 have - (size_t)(n * esz));
  rc = mpc_ftensor_init(out, &s);
  if (rc != 0)
    return tfail(err, errlen, rc, ".npy: %s", tandem_strerror(rc));
  for (size_t k = 0; k < (size_t)n; k++) {
    if (!isint)
      out->data[k] = esz == 4 ? load_le_f32(data + 4 * k) : load_le_f64(data + 8 * k);
    else if (esz == 8)
      out->data[k] = (double)load_le_i64(data + 8 * k);
    else
      out->data[k] = (double)load_le_i32(data + 4 * k);
  }
  return 0;
}

/* ---- public -------------------------------------------------------------- */

int mpc_tensor_load_buffer(const void *buf, size_t len, mpc_ftensor_t *out, char *err,
                           size_t errlen) {
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (out == NULL || (buf == NULL && len > 0))
    return tfail(err, errlen, TANDEM_EINVAL, "no buffer or no output tensor");
  memset(out, 0, sizeof *out);
  if (len > MPC_FILE_MAX)
    return tfail(err, errlen, TANDEM_EINVAL, "tensor of %zu bytes exceeds the limit of %zu", len,
                 MPC_FILE_MAX);
  const uint8_t *b = buf;
  if (len >= sizeof npy_magic && memcmp(b, npy_magic, sizeof npy_magic) == 0)
    return npy_load(b, len, out, err, errlen);
  return pb_load(b, len, out, err, errlen);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

int mpc_tensor_load(const char *path, mpc_ftensor_t *out, char *err, size_t errlen) {
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (out == NULL || path == NULL)
    return tfail(err, errlen, TANDEM_EINVAL, "no path or no output tensor");
  memset(out, 0, sizeof *out);
  uint8_t *buf;
  size_t len;
  int rc = mpc__read_file(path, MPC_FILE_MAX, &buf, &len, err, errlen);
  if (rc != 0)
    return rc;
  if (ends_with(path, ".npy") &&
      (len < sizeof npy_magic || memcmp(buf, npy_magic, sizeof npy_magic) != 0)) {
    free(buf);
    return tfail(err, errlen, TANDEM_EPARSE, "%s: not a .npy file (no \\x93NUMPY magic)", path);
  }
  char why[400];
  rc = mpc_tensor_load_buffer(buf, len, out, why, sizeof why);
  free(buf);
  if (rc != 0)
    tfail(err, errlen, rc, "%s: %s", path, why);
  return rc;
}

static int npy_encode(const mpc_ftensor_t *t, size_t n, uint8_t **out, size_t *outlen) {
  char hdr[256];
  int w = snprintf(hdr, sizeof hdr, "{'descr': '<f8', 'fortran_order': False, 'shape': (");
  for (unsigned d = 0; d < t->shape.ndim; d++)
    w += snprintf(hdr + w, sizeof hdr - (size_t)w, "%zu,%s", t->shape.dim[d],
                  d + 1 < t->shape.ndim ? " " : "");
  /* NumPy writes (3,) for one dimension and (2, 3) for two. */
  if (t->shape.ndim > 1)
    w--;
  w += snprintf(hdr + w, sizeof hdr - (size_t)w, "), }");
  /* Pad with spaces so that the data starts at a multiple of 64 bytes, as
   * NumPy does, and end the header with a newline. */
  size_t hl = (size_t)w + 1;
  size_t total = 10 + hl;
  size_t pad = (64 - total % 64) % 64;
  hl += pad;
  uint8_t *b = malloc(10 + hl + n * 8);
  if (b == NULL)
    return TANDEM_ENOMEM;
  memcpy(b, npy_magic, 6);
  b[6] = 1;
  b[7] = 0;
  b[8] = (uint8_t)(hl & 0xff);
  b[9] = (uint8_t)(hl >> 8);
  memcpy(b + 10, hdr, (size_t)w);
  memset(b + 10 + w, ' ', pad);
  b[10 + hl - 1] = '\n';
  for (size_t k = 0; k < n; k++)
    store_le_f64(b + 10 + hl + 8 * k, t->data[k]);
  *out = b;
  *outlen = 10 + hl + n * 8;
  return 0;
}

static int pb_encode(const mpc_ftensor_t *t, size_t n, uint8_t **out, size_t *outlen) {
  Onnx__TensorProto tp = ONNX__TENSOR_PROTO__INIT;
  int64_t dims[MPC_MAX_DIMS];
  for (unsigned d = 0; d < t->shape.ndim; d++)
    dims[d] = (int64_t)t->shape.dim[d];
  tp.n_dims = t->shape.ndim;
  tp.dims = dims;
  tp.has_data_type = 1;
  tp.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
  uint8_t *raw = malloc(n * 8);
  if (raw == NULL)
    return TANDEM_ENOMEM;
  for (size_t k = 0; k < n; k++)
    store_le_f64(raw + 8 * k, t->data[k]);
  tp.has_raw_data = 1;
  tp.raw_data.data = raw;
  tp.raw_data.len = n * 8;
  size_t sz = onnx__tensor_proto__get_packed_size(&tp);
  uint8_t *b = malloc(sz ? sz : 1);
  if (b == NULL) {
    free(raw);
    return TANDEM_ENOMEM;
  }
  *outlen = onnx__tensor_proto__pack(&tp, b);
  *out = b;
  free(raw);
  return 0;
}

int mpc_tensor_save(const char *path, const mpc_ftensor_t *t) {
  if (path == NULL || t == NULL || t->data == NULL || t->shape.ndim > MPC_MAX_DIMS)
    return TANDEM_EINVAL;
  size_t n = mpc_shape_numel(&t->shape);
  if (n == 0 || (uint64_t)n > MPC__CT_MAX_NUMEL)
    return TANDEM_EINVAL;
  uint8_t *b = NULL;
  size_t len = 0;
  int rc = ends_with(path, ".npy") ? npy_encode(t, n, &b, &len) : pb_encode(t, n, &b, &len);
  if (rc != 0)
    return rc;
  rc = write_atomic(path, b, len);
  free(b);
  return rc;
}
