/* fuzz_ctrl.c - libFuzzer target for the cluster's control codec
 * (mpc/src/cluster/link.c: cl_ctrl_decode, cl_stats_decode), which the
 * dealer runs on every client's request and the parties and clients on the
 * dealer's and parties' messages.
 *
 * The input is a control message: its header decodes to a struct whose name
 * is a NUL-terminated string, and encoding that struct and decoding it again
 * gives the same struct; the stats at the start of a payload round-trip to
 * the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpc_cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= CL_CTRL_HDR) {
    cl_ctrl_t a, b;
    uint8_t enc[CL_CTRL_HDR];
    cl_ctrl_decode(data, &a);
    if (memchr(a.name, '\0', sizeof a.name) == NULL)
      abort();
    (void)cl_name_ok(a.name);
    cl_ctrl_encode(&a, enc);
    cl_ctrl_decode(enc, &b);
    if (a.type != b.type || a.status != b.status || a.seq != b.seq || a.batch != b.batch ||
        a.peer != b.peer || a.flags != b.flags || a.tag != b.tag || a.version != b.version ||
        strcmp(a.name, b.name) != 0)
      abort();
    data += CL_CTRL_HDR;
    size -= CL_CTRL_HDR;
  }
  if (size >= CL_STATS_BYTES) {
    cl_party_stats_t s;
    uint8_t enc[CL_STATS_BYTES];
    cl_stats_decode(data, &s);
    cl_stats_encode(&s, enc);
    if (memcmp(enc, data, CL_STATS_BYTES) != 0)
      abort();
  }
  return 0;
}
