/* client.h - the model owner's and the client's side of a cluster, used by
 * `tandem share-model`, `tandem infer`, `tandem run` and `tandem demo`. */
#ifndef TANDEM_CLIENT_H
#define TANDEM_CLIENT_H

#include "cluster.h"

typedef struct {
  const cl_config_t *cfg;
  int self;          /* CL_OWNER or a client id */
  net_node_t *node;
} cli_session_t;

/* Loads self's key and connects to the dealer, P0 and P1 (retrying refused
 * connections for up to the config's timeout). Message in err. */
int cli_open(cli_session_t *s, const cl_config_t *cfg, int self, char *err, size_t errlen);
void cli_close(cli_session_t *s);

/* The owner: imports an ONNX model, sends its public graph to the dealer and
 * the weight shares to the parties, and waits until both parties stored it. */
int cli_share_model(cli_session_t *s, const char *onnx_path, const char *name, char *err,
                    size_t errlen);
/* The same for a graph and weights already in memory (not kept). */
int cli_share_graph(cli_session_t *s, const mpc_graph_t *g, const mpc_weights_t *w,
                    const char *name, char *err, size_t errlen);

/* Figures of one query. */
typedef struct {
  unsigned rounds;
  uint64_t online_bytes[2];   /* sent online by P0, P1 */
  uint64_t offline_bytes[2];  /* sent by the dealer to P0, P1 */
  uint64_t client_offline;    /* sent by the dealer to the client */
  double online_s, offline_s; /* the slower party's */
  /* From the moment both parties hold the input and their preprocessing to
   * the last output share sent: the online phase without the wait for the
   * other party's offline work (valid when all run on one host, as bench's
   * cluster does: it compares the parties' clocks). */
  double online_span_s;
  double wall_s;              /* the whole query at the client */
  int waited;                 /* the dealer made the preprocessing on demand */
  size_t queries;             /* cli_query_chunked: queries made (cli_query: 1) */
  /* Per gate of the query's plan (ngates entries, the slower party's), or
   * NULL: malloc'd by cli_query, freed by cli_stats_close. */
  size_t ngates;
  double *gate_offline_s, *gate_online_s;
} cli_stats_t;

/* One private inference of model `name` on the graph's inputs (ninputs
 * tensors, in graph order, each with the batch as its first dimension); the
 * model's noutputs outputs are initialised by the callee. *st is filled (free
 * it with cli_stats_close) whether or not the query succeeds. */
int cli_query(cli_session_t *s, const char *name, const mpc_ftensor_t *inputs, size_t ninputs,
              mpc_ftensor_t *outputs, size_t noutputs, cli_stats_t *st, char *err,
              size_t errlen);
void cli_stats_close(cli_stats_t *st);

/* The largest batch (at most cap) of graph g whose preprocessing fits one
 * message of max_msg bytes for every role; 0 if not even one row does. */
size_t cli_batch_fit(const mpc_graph_t *g, size_t max_msg, size_t cap);

/* cli_query in queries of at most `chunk` rows: every input is split along
 * its first dimension, the outputs are put back together in order. *st sums
 * the bytes, seconds and gate times of the queries; st->rounds is per query,
 * st->queries how many were made. */
int cli_query_chunked(cli_session_t *s, const char *name, size_t chunk,
                      const mpc_ftensor_t *inputs, size_t ninputs, mpc_ftensor_t *outputs,
                      size_t noutputs, cli_stats_t *st, char *err, size_t errlen);

/* Loads n tensor files (.npy or .pb) into t[0..n-1]; on failure none is left
 * open and err names the file. */
int cli_tensors_load(const char *const *paths, size_t n, mpc_ftensor_t *t, char *err,
                     size_t errlen);
/* Saves t[i] to paths[i]; err names a file that failed. Closes nothing. */
int cli_tensors_save(const char *const *paths, size_t n, const mpc_ftensor_t *t, char *err,
                     size_t errlen);
void cli_tensors_close(mpc_ftensor_t *t, size_t n);

/* Writes the --stats JSON object. */
int cli_stats_write(const char *path, const cli_stats_t *st);

#endif
