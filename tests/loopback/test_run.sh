#!/usr/bin/env bash
# labels: loopback
#
# test_run.sh - `tandem run`: one private inference on a throw-away cluster
# (P0, P1 and the dealer as separate processes on free loopback ports). The
# private logits of the demo models must match the plaintext evaluator
# (`--plaintext`) within the fixed-point bound with the same predictions, the
# plaintext evaluator must match PyTorch's stored logits, the --stats JSON
# must show the round and byte budget of the MLP at batch 1 (<= 4 rounds,
# <= 8 KiB online per party), BERT-tiny16 must run from its int64 token ids, exact mode (--exact) must give the same logits
# on two runs, and bad input must end in one line on stderr
# and a non-zero exit, leaving no process behind.
set -u
TANDEM=${1:?usage: test_run.sh <path-to-tandem>}
SRC=${TANDEM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/loopback/lib.sh"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export TANDEM_TIMEOUT_MS=20000
# run's temporary clusters go here, so the test can see they are cleaned up.
export TMPDIR=$TMP/t
mkdir -p "$TMPDIR"
M=$SRC/models

# The CNN runs on 2 images: its preprocessing is about 90 MB per party and
# image (FSS keys for 12,544 ReLUs and the max-pool trees), the MLP's 0.75 MB.
npy_rows "$M/fashion_test16.npy" "$TMP/two.npy" 2
for model in fashion_mlp fashion_cnn; do
  [ -f "$M/$model.onnx" ] || { fail "$model.onnx missing"; continue; }
  in=$M/fashion_test16.npy
  [ $model = fashion_cnn ] && in=$TMP/two.npy
  if ! "$TANDEM" run --plaintext --model "$M/$model.onnx" --input "$in" \
      --output "$TMP/$model.plain.npy" 2>"$TMP/err"; then
    fail "$model --plaintext: $(cat "$TMP/err")"; continue
  fi
  npy_rows "$M/${model}_logits16.npy" "$TMP/$model.torch.npy" "$(python3 -c "import sys; print(2 if sys.argv[1] == 'fashion_cnn' else 16)" $model)"
  npy_check "$TMP/$model.plain.npy" "$TMP/$model.torch.npy" 1e-4 1 ||
    fail "$model: plaintext evaluator differs from PyTorch"
  if ! "$TANDEM" run --model "$M/$model.onnx" --input "$in" \
      --output "$TMP/$model.priv.npy" --stats "$TMP/$model.stats" 2>"$TMP/err"; then
    fail "$model private run: $(cat "$TMP/err")"; continue
  fi
  npy_check "$TMP/$model.priv.npy" "$TMP/$model.plain.npy" 0.02 1 ||
    fail "$model: private logits differ from plaintext"
  for k in rounds online_bytes offline_bytes online_s offline_s; do
    json_get "$TMP/$model.stats" "o['$k']" >/dev/null 2>&1 || fail "$model stats lack $k"
  done
done

# The MLP at batch 1: the round and byte budget of the gates issue, measured
# over real sockets.
npy_rows "$M/fashion_test16.npy" "$TMP/one.npy" 1
if "$TANDEM" run --model "$M/fashion_mlp.onnx" --input "$TMP/one.npy" --output "$TMP/one.out.npy" \
    --stats "$TMP/one.stats" 2>"$TMP/err"; then
  r=$(json_get "$TMP/one.stats" "o['rounds']")
  b0=$(json_get "$TMP/one.stats" "o['online_bytes']['p0']")
  b1=$(json_get "$TMP/one.stats" "o['online_bytes']['p1']")
  [ "$r" -le 4 ] || fail "MLP batch 1: $r rounds > 4"
  [ "$b0" -le 8192 ] && [ "$b1" -le 8192 ] || fail "MLP batch 1: online bytes $b0/$b1 > 8 KiB"
  echo "MLP batch 1: $r rounds, online bytes p0 $b0 p1 $b1"
else
  fail "MLP batch 1: $(cat "$TMP/err")"
fi

# BERT-tiny at sequence 16 from its PyTorch export, on its int64 token ids
# (input_ids, one-hot encoded by the client): the plaintext evaluator gives
# PyTorch's logits, the private run (2 sequences, a query each: 0.14 GB of
# preprocessing per party and sequence) the same within 2e-3 in at most 89
# rounds.
B=$M/transformers/bert_tiny16
if "$TANDEM" run --plaintext --model "$B.onnx" --input "${B}_ids.npy" \
    --output "$TMP/bert.plain.npy" 2>"$TMP/err"; then
  npy_check "$TMP/bert.plain.npy" "${B}_logits.npy" 1e-4 || fail "bert16: plaintext differs from PyTorch"
else
  fail "bert16 --plaintext: $(cat "$TMP/err")"
fi
# Each sequence's preprocessing (both parties) must be made and sent
# within the cluster's timeout: `run` raises it for a large query (30 s per
# 256 MB), which this script's 20 s setting would override; under ASan on a
# loaded 2-core machine making it took over 20 s, so this run gets 5 minutes.
if TANDEM_TIMEOUT_MS=300000 "$TANDEM" run --model "$B.onnx" --input "${B}_ids.npy" \
    --output "$TMP/bert.priv.npy" --stats "$TMP/bert.stats" 2>"$TMP/err"; then
  npy_check "$TMP/bert.priv.npy" "${B}_logits.npy" 2e-3 || fail "bert16: private logits differ from PyTorch"
  r=$(json_get "$TMP/bert.stats" "o['rounds']")
  [ "$r" -le 89 ] || fail "bert16: $r rounds > 89"
  echo "BERT-tiny16: $r rounds, online bytes p0 $(json_get "$TMP/bert.stats" "o['online_bytes']['p0']")"
else
  fail "bert16 private run: $(cat "$TMP/err")"
fi

# Exact mode (--exact, published with the graph): every truncation exact, so
# two runs give the same logits byte for byte (default mode differs from run
# to run in the last bits), 6 rounds for the MLP instead of 4.
for i in 1 2; do
  if "$TANDEM" run --exact --model "$M/fashion_mlp.onnx" --input "$M/fashion_test16.npy" \
      --output "$TMP/exact$i.npy" --stats "$TMP/exact$i.stats" 2>"$TMP/err"; then
    r=$(json_get "$TMP/exact$i.stats" "o['rounds']")
    [ "$r" -eq 6 ] || fail "MLP exact mode: $r rounds, want 6"
  else
    fail "MLP exact mode: $(cat "$TMP/err")"
  fi
done
cmp -s "$TMP/exact1.npy" "$TMP/exact2.npy" || fail "MLP exact mode: two runs differ"
npy_check "$TMP/exact1.npy" "$TMP/fashion_mlp.plain.npy" 0.02 1 || fail "MLP exact mode differs from plaintext"

# A batch whose preprocessing exceeds the cluster's largest message runs as
# several queries (here 16 rows under a 2.5 MB limit; about 0.3 MB per row
# with the MLP's narrow gates), with the same result: the note names the
# rows per query, and the stats count ceil(16 / rows) queries.
if TANDEM_MAX_MSG=2500000 "$TANDEM" run --model "$M/fashion_mlp.onnx" --input "$M/fashion_test16.npy" \
    --output "$TMP/chunked.npy" --stats "$TMP/chunked.stats" 2>"$TMP/err"; then
  npy_check "$TMP/chunked.npy" "$TMP/fashion_mlp.plain.npy" 0.02 1 || fail "chunked run differs from plaintext"
  per=$(sed -n 's/.*queries of at most \([0-9]*\).*/\1/p' "$TMP/err" | head -1)
  if [ -n "$per" ] && [ "$per" -lt 16 ]; then
    [ "$(json_get "$TMP/chunked.stats" "o['queries']")" = $(( (16 + per - 1) / per )) ] ||
      fail "chunked run ($per rows a query): $(cat "$TMP/chunked.stats")"
  else
    fail "chunked run: no note of fewer than 16 rows a query: $(cat "$TMP/err")"
  fi
else
  fail "chunked run: $(cat "$TMP/err")"
fi

# Bad input: one line on stderr, exit 1. Found before the cluster starts:
# run's temporary cluster would go under $TMPDIR, here a directory that does
# not exist, so a run that got as far as starting daemons fails otherwise.
expect_error() { # WHAT PATTERN ARGS...
  local what=$1 pat=$2
  shift 2
  if TMPDIR=$TMP/no-cluster "$TANDEM" run "$@" >"$TMP/out" 2>"$TMP/err"; then
    fail "$what: succeeded"
  elif ! one_line "$TMP/err" || ! grep -q "$pat" "$TMP/err"; then
    fail "$what: want one line matching '$pat', got: $(cat "$TMP/err")"
  fi
}
expect_error "missing model" "no-such.onnx" --model "$TMP/no-such.onnx" --input "$TMP/one.npy" --output "$TMP/x.npy"
head -c 1000 /dev/urandom >"$TMP/garbage.onnx"
expect_error "garbage model" "garbage.onnx" --model "$TMP/garbage.onnx" --input "$TMP/one.npy" --output "$TMP/x.npy"
printf 'not a tensor' >"$TMP/bad.npy"
expect_error "bad tensor" "bad.npy" --model "$M/fashion_mlp.onnx" --input "$TMP/bad.npy" --output "$TMP/x.npy"
npy_rows "$M/fashion_mlp_logits16.npy" "$TMP/ten.npy" 1
expect_error "wrong input shape" "shape" --model "$M/fashion_mlp.onnx" --input "$TMP/ten.npy" --output "$TMP/x.npy"
if "$TANDEM" run --model "$M/fashion_mlp.onnx" >/dev/null 2>&1; then fail "usage error accepted"; fi
# The CLI names what is wrong: an unknown or abbreviated option, a missing
# value, a stray argument; --version prints the version.
cli_error() { # WHAT PATTERN ARGS...
  local what=$1 pat=$2
  shift 2
  if "$TANDEM" "$@" >"$TMP/cli.out" 2>"$TMP/cli.err"; then
    fail "$what: accepted"
  elif [ $? -ne 2 ] || ! head -1 "$TMP/cli.err" | grep -q -- "$pat"; then
    fail "$what: want exit 2 and '$pat' first, got: $(cat "$TMP/cli.err")"
  fi
}
cli_error "unknown option" "unknown option '--bogus'" run --bogus
cli_error "abbreviated option" "unknown option '--mod'" run --mod "$M/fashion_mlp.onnx"
cli_error "missing value" "option '--model' needs a value" run --model
cli_error "value to a flag" "option '--plaintext' takes no value" run --plaintext=1
cli_error "stray argument" "unexpected argument 'extra'" keygen --out "$TMP" --id k extra
# Found before any process starts: an output nobody can write, an input
# that is not a number.
expect_error "unwritable output" "cannot write in" --model "$M/fashion_mlp.onnx" --input "$TMP/one.npy" --output "$TMP/no/such/dir/x.npy"
expect_error "output is a directory" "is a directory" --model "$M/fashion_mlp.onnx" --input "$TMP/one.npy" --output "$TMP"
python3 - "$TMP/one.npy" "$TMP/nan.npy" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
off = 10 + struct.unpack("<H", b[8:10])[0]
b[off:off + 4] = struct.pack("<f", float("nan"))
open(sys.argv[2], "wb").write(b)
PY
expect_error "NaN input" "element 0 is nan" --model "$M/fashion_mlp.onnx" --input "$TMP/nan.npy" --output "$TMP/x.npy"
"$TANDEM" --version | grep -qE '^tandem [0-9]+\.[0-9]+\.[0-9]+$' || fail "tandem --version"
"$TANDEM" infer --version | grep -qE '^tandem [0-9]' || fail "tandem infer --version"
TANDEM_MAX_MSG=10 expect_error "bad TANDEM_MAX_MSG" "TANDEM_MAX_MSG" --model "$M/fashion_mlp.onnx" --input "$TMP/one.npy" --output "$TMP/x.npy"
TANDEM_MAX_MSG=5000 expect_error "one row over the message limit" "largest message" --model "$M/fashion_mlp.onnx" --input "$TMP/one.npy" --output "$TMP/x.npy"
# An input that would overflow inside the model (3e9 per pixel: encodable,
# but the first layer's products leave the range) is refused by the client
# against the bound the owner published, not answered with garbage.
python3 - "$TMP/one.npy" "$TMP/huge.npy" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
off = 10 + struct.unpack("<H", b[8:10])[0]
n = (len(b) - off) // 4
open(sys.argv[2], "wb").write(b[:off] + struct.pack("<%df" % n, *([3e9] * n)))
PY
expect_error "overflowing input" "safe input range" --model "$M/fashion_mlp.onnx" --input "$TMP/huge.npy" --output "$TMP/x.npy"
# Below the model's declared least input (tandem.input_min: pixels in [0, 1]).
python3 - "$TMP/one.npy" "$TMP/neg.npy" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
off = 10 + struct.unpack("<H", b[8:10])[0]
b[off + 8:off + 12] = struct.pack("<f", -0.5)
open(sys.argv[2], "wb").write(b)
PY
expect_error "input under input_min" "element 2 is -0.5, below the model's declared least input 0" --model "$M/fashion_mlp.onnx" --input "$TMP/neg.npy" --output "$TMP/x.npy"
expect_error "two inputs for one" "1 inputs" --model "$M/fashion_mlp.onnx" --input "$TMP/one.npy" --input "$TMP/one.npy" --output "$TMP/x.npy"

# Token ids: an id outside the vocabulary is refused, naming the input and
# the id's position; the sequence-128 model's preprocessing (1.35 GB a
# party) is over a smaller largest message (TANDEM_MAX_MSG, kept as given),
# said with its size: both before any process starts. (Under the default
# limit `run` raises it: test_run_large.sh.)
python3 - "${B}_ids.npy" "$TMP/badids.npy" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
off = 10 + struct.unpack("<H", b[8:10])[0]
b[off + 8 * 21:off + 8 * 22] = struct.pack("<q", 1024)  # row 1, position 5
open(sys.argv[2], "wb").write(b)
PY
expect_error "token id out of range" "input 'input_ids': token id 1024 at position \[1, 5\] is outside the vocabulary \[0, 1024)" \
  --model "$B.onnx" --input "$TMP/badids.npy" --output "$TMP/x.npy"
expect_error "token id out of range, plaintext" "token id 1024 at position \[1, 5\]" --plaintext \
  --model "$B.onnx" --input "$TMP/badids.npy" --output "$TMP/x.npy"
TANDEM_MAX_MSG=536870912 expect_error "BERT-tiny at sequence 128" "preprocessing is [0-9.]* GB for p[01], over the largest message (0.54 GB)" \
  --model "$M/transformers/bert_tiny.onnx" --input "$M/transformers/bert_tiny_ids.npy" --output "$TMP/x.npy"

# No daemon left behind by any of the above.
sleep 0.5
if pgrep -f "$TMPDIR/tandem-" >/dev/null 2>&1; then
  fail "daemons left running: $(pgrep -af "$TMPDIR/tandem-")"
fi
[ -z "$(ls -A "$TMPDIR")" ] || fail "temporary clusters left behind: $(ls "$TMPDIR")"
finish
