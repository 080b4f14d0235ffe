#!/usr/bin/env bash
# labels: loopback
#
# test_onnx_conformance.sh - a few ONNX backend node tests (libonnx-testdata)
# through `tandem run`, the path a user takes: the model shared by the owner,
# the batch derived by the cluster client from the model's declared
# dimensions, INT64 shape inputs read at import. The cases are the ones that
# once failed there: two inputs of different leading sizes broadcast
# (add_bcast: "input 2 has another batch size than input 1"), a Gemm of three
# fixed-shape inputs ("inner dimensions differ"), a Reshape whose shape is an
# input file, a Conv whose weights are an input, a 3-D MatMul of two inputs;
# and a model without inputs (constant: its output the graph's public
# constant), a cubic Resize, UINT8 inputs, a Div by an input, an edge Pad.
# Each private result must equal `--plaintext`'s within 1e-2 (the numerics of
# every case against the expected outputs are the Check suite
# onnx_conformance's, test unit_mpc_onnx_conformance). Skipped (77) without the data.
set -u
TANDEM=${1:?usage: test_onnx_conformance.sh <path-to-tandem>}
SRC=${TANDEM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/loopback/lib.sh"
DATA=/usr/share/libonnx-testdata/data/node
if [ ! -d "$DATA" ]; then
  echo "skipped: $DATA absent (install libonnx-testdata)"
  exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export TANDEM_TIMEOUT_MS=20000
export TMPDIR=$TMP/t
mkdir -p "$TMPDIR"

for c in add_bcast gemm_default_matrix_bias reshape_negative_dim basic_conv_with_padding \
         matmul_3d constant resize_upsample_scales_cubic max_uint8 div edge_pad; do
  d=$DATA/test_$c
  [ -d "$d" ] || { fail "$c: missing from $DATA"; continue; }
  args=(--model "$d/model.onnx")
  for f in "$d"/test_data_set_0/input_*.pb; do
    [ -e "$f" ] && args+=(--input "$f") # none for constant
  done
  if ! "$TANDEM" run --plaintext "${args[@]}" --output "$TMP/$c.plain.npy" 2>"$TMP/err"; then
    fail "$c --plaintext: $(cat "$TMP/err")"; continue
  fi
  if ! "$TANDEM" run "${args[@]}" --output "$TMP/$c.priv.npy" 2>"$TMP/err"; then
    fail "$c private: $(cat "$TMP/err")"; continue
  fi
  npy_check "$TMP/$c.priv.npy" "$TMP/$c.plain.npy" 1e-2 || fail "$c: private differs from plaintext"
done

# A shape input left out is refused at import, naming it, before any process starts.
d=$DATA/test_reshape_negative_dim
if "$TANDEM" run --model "$d/model.onnx" --input "$d/test_data_set_0/input_0.pb" \
    --output "$TMP/x.npy" 2>"$TMP/err"; then
  fail "a missing shape input was accepted"
fi
grep -q "graph input 'shape' has type INT64" "$TMP/err" || fail "unclear message: $(cat "$TMP/err")"
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "more than one line: $(cat "$TMP/err")"
[ -z "$(ls -A "$TMPDIR")" ] || fail "temporary clusters left behind: $(ls "$TMPDIR")"
finish
