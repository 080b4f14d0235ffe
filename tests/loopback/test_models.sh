#!/usr/bin/env bash
# labels: loopback
#
# test_models.sh - model management against running daemons (issue 12):
# `tandem models` lists each shared model (name, inputs' shapes, bound,
# weights, when shared); share-model refuses a name in use unless --replace;
# remove-model removes a model from the dealer and both parties (files and
# all), after which a query of it is refused by name. BERT-tiny16 answers
# `tandem infer` on its int64 token ids (listed as ids with their
# vocabulary); an id outside it is refused in one line naming its position.
set -u
TANDEM=${1:?usage: test_models.sh <path-to-tandem>}
SRC=${TANDEM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/loopback/lib.sh"
TMP=$(mktemp -d)
PIDS=()
trap stop_all EXIT
M=$SRC/models
cd "$TMP"

for id in p0 p1 dealer owner alice; do
  "$TANDEM" keygen --out keys --id $id >/dev/null 2>err || fail "keygen $id: $(cat err)"
done
read -r PORT0 PORT1 PORTD <<<"$(free_ports 3)"
cluster_config cluster.ini "timeout_ms = 120000
pool = 1" alice
declare -A PID
start dealer; start p1; start p0

share() { "$TANDEM" share-model --config cluster.ini "$@"; }
share --model "$M/fashion_mlp.onnx" --name mlp >/dev/null 2>err || fail "share mlp: $(cat err)"
share --model "$M/fashion_cnn.onnx" --name cnn >/dev/null 2>err || fail "share cnn: $(cat err)"
share --model "$M/transformers/bert_tiny16.onnx" --name bert >/dev/null 2>err ||
  fail "share bert: $(cat err)"

# --- the list ------------------------------------------------------------------------
"$TANDEM" models --config cluster.ini --as alice >list 2>err || fail "models: $(cat err)"
grep -q "^NAME" list || fail "models: no header: $(cat list)"
grep -Eq "^mlp +input\[N,1,28,28\] +[0-9.e+-]+ +[0-9]+ +20[0-9]{2}-[0-9]{2}-[0-9]{2}T" list ||
  fail "models: no mlp line with its input [N,1,28,28]: $(cat list)"
grep -Eq "^cnn +[^ ]*\[N,1,28,28\]" list || fail "models: no cnn line: $(cat list)"
grep -Eq "^bert +input_ids\[N,16\]:ids<1024 " list || fail "models: no bert line with its ids: $(cat list)"
[ "$(grep -c . list)" -eq 4 ] || fail "models: not 3 models: $(cat list)"

# --- token ids: BERT-tiny16 by its int64 input_ids, one-hot encoded by infer --------
# One sequence (0.5 GB of preprocessing a party; the cluster's 120 s timeout
# leaves room to make and send it under ASan on a loaded 2-core machine).
B=$M/transformers/bert_tiny16
npy_rows "${B}_ids.npy" ids1.npy 1
npy_rows "${B}_logits.npy" logits1.npy 1
"$TANDEM" infer --config cluster.ini --model bert --input ids1.npy --output bert.npy \
  2>err || fail "bert: $(cat err)"
npy_check bert.npy logits1.npy 2e-3 || fail "bert: private logits differ from PyTorch's"
python3 - "${B}_ids.npy" badids.npy <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
off = 10 + struct.unpack("<H", b[8:10])[0]
b[off:off + 8] = struct.pack("<q", -3)  # row 0, position 0
open(sys.argv[2], "wb").write(b)
PY
if "$TANDEM" infer --config cluster.ini --model bert --input badids.npy --output x.npy 2>err; then
  fail "bert: an id of -3 accepted"
fi
one_line err && grep -q "input 'input_ids': token id -3 at position \[0, 0\] is outside" err ||
  fail "bert, bad id: $(cat err)"

# --- a name in use: refused, unless --replace -----------------------------------------
if share --model "$M/fashion_cnn.onnx" --name mlp >/dev/null 2>err; then
  fail "share-model replaced mlp without --replace"
fi
one_line err && grep -q "already shared.*--replace" err || fail "refusal: $(cat err)"
"$TANDEM" run --plaintext --model "$M/fashion_mlp.onnx" --input "$M/fashion_test16.npy" \
  --output plain.npy 2>err || fail "plaintext: $(cat err)"
"$TANDEM" infer --config cluster.ini --model mlp --input "$M/fashion_test16.npy" \
  --output still.npy 2>err || fail "mlp after the refusal: $(cat err)"
npy_check still.npy plain.npy 0.02 1 || fail "mlp changed after a refused share"
share --model "$M/fashion_mlp.onnx" --name mlp --replace >/dev/null 2>err ||
  fail "share --replace: $(cat err)"
"$TANDEM" infer --config cluster.ini --model mlp --input "$M/fashion_test16.npy" \
  --output again.npy 2>err || fail "mlp after --replace: $(cat err)"
npy_check again.npy plain.npy 0.02 1 || fail "mlp after --replace: output differs"

# --- removal ---------------------------------------------------------------------------
"$TANDEM" remove-model --config cluster.ini --name mlp >/dev/null 2>err ||
  fail "remove-model: $(cat err)"
for r in p0 p1 dealer; do
  ls data/$r/mlp.* >/dev/null 2>&1 && fail "data/$r still holds mlp: $(ls data/$r)"
done
"$TANDEM" models --config cluster.ini >list 2>err || fail "models: $(cat err)"
grep -q "^mlp " list && fail "mlp still listed: $(cat list)"
grep -q "^cnn " list || fail "cnn no longer listed: $(cat list)"
if "$TANDEM" infer --config cluster.ini --model mlp --input "$M/fashion_test16.npy" \
    --output gone.npy 2>err; then
  fail "a removed model answered"
fi
one_line err && grep -q "unknown model 'mlp'" err || fail "query of a removed model: $(cat err)"
if "$TANDEM" remove-model --config cluster.ini --name mlp 2>err; then
  fail "removed a model twice"
fi
one_line err && grep -q "unknown model 'mlp'" err || fail "second removal: $(cat err)"
# Shared again under the freed name, without --replace.
share --model "$M/fashion_mlp.onnx" --name mlp >/dev/null 2>err || fail "share after removal: $(cat err)"
"$TANDEM" infer --config cluster.ini --model mlp --input "$M/fashion_test16.npy" \
  --output back.npy 2>err || fail "mlp shared again: $(cat err)"
npy_check back.npy plain.npy 0.02 1 || fail "mlp shared again: output differs"
finish
