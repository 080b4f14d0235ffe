/* fuzz_tensor.c - libFuzzer target for the tensor-file readers
 * (mpc/src/tensor_io.c: NumPy .npy and ONNX TensorProto .pb).
 *
 * Every input is a candidate tensor file; mpc_tensor_load_buffer must refuse
 * it with a message or return a tensor whose every element can be read (the
 * sum below makes AddressSanitizer check the whole allocation), and the
 * format detection by magic is exercised along with both parsers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "mpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mpc_ftensor_t t;
  char err[256];
  if (mpc_tensor_load_buffer(data, size, &t, err, sizeof err) != 0) {
    if (err[0] == '\0' || t.data != NULL)
      abort();
    return 0;
  }
  size_t n = mpc_shape_numel(&t.shape);
  if (n == 0)
    abort();
  volatile double sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += t.data[i];
  (void)sum;
  mpc_ftensor_close(&t);
  return 0;
}
