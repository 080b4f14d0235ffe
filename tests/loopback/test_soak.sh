#!/usr/bin/env bash
# labels: loopback
#
# test_soak.sh - the daemons' memory across many queries (issue 12): a
# dealer, two parties and two clients as separate processes on loopback run
# SOAK_ROUNDS rounds of MLP queries at several batch sizes (1 to 64 rows, so
# one pool per size), a CNN query at SOAK_CNN_BATCH rows, and a re-share of
# the MLP (--replace) per round, every answer checked against the plaintext
# evaluator. Asserted: the dealer's peak resident size (VmHWM) stays under
# its pool_mem_max plus DEALER_BASE_MB (160 MB), and each idle party's resident size
# (VmRSS) after the last query is under PARTY_IDLE_MB (a party used to keep
# 1.5-3 GB after CNN queries). Reported: latency p50/p99 and the sizes.
# `make test` runs the short version (2 rounds, CNN at 16 rows); `make soak`
# the long one (SOAK_ROUNDS=20 SOAK_CNN_BATCH=100).
set -u
TANDEM=${1:?usage: test_soak.sh <path-to-tandem>}
SRC=${TANDEM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/loopback/lib.sh"
ROUNDS=${SOAK_ROUNDS:-2}
CNN_BATCH=${SOAK_CNN_BATCH:-8}
POOL_MEM_MB=${SOAK_POOL_MEM_MB:-384}
# Above its budget the dealer holds up to 64 MB of free heap (HEAP_SLACK),
# its code, stacks, models and plans (about 10 MB of heap here) and the
# pages freed between two trims. A part of an eighth of the budget or more
# is wiped and its pages given back as net seals it, so it and its sealed
# copy are never held whole side by side: peaks of 403-481 MiB in 16 runs
# with the CNN at 8 rows (236 MB a query), 19-97 over the budget
# (2026-12-07; README, Memory). Held whole, they peaked at 466-553 MiB,
# over this bound in 2 of 14 runs; before the dealer gave free heap back,
# at 731 MiB: this bound fails then.
DEALER_BASE_MB=${SOAK_DEALER_BASE_MB:-160}
PARTY_IDLE_MB=${SOAK_PARTY_IDLE_MB:-160}
TMP=$(mktemp -d)
PIDS=()
trap stop_all EXIT
M=$SRC/models
cd "$TMP"

kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

for id in p0 p1 dealer owner alice bob; do
  "$TANDEM" keygen --out keys --id $id >/dev/null 2>err || fail "keygen $id: $(cat err)"
done
read -r PORT0 PORT1 PORTD <<<"$(free_ports 3)"
cluster_config cluster.ini "timeout_ms = 60000
pool = 2
threads = 1
pool_mem_max = $((POOL_MEM_MB << 20))
plan_keep = $((64 << 20))" alice bob
declare -A PID
start dealer; start p1; start p0

"$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp >/dev/null 2>err ||
  fail "share mlp: $(cat err)"
"$TANDEM" share-model --config cluster.ini --model "$M/fashion_cnn.onnx" --name cnn >/dev/null 2>err ||
  fail "share cnn: $(cat err)"
SIZES="1 3 16 40 64"
for n in $SIZES $CNN_BATCH; do
  npy_rows "$M/fashion_test16.npy" "x$n.npy" "$n"
done
for n in $SIZES; do
  "$TANDEM" run --plaintext --model "$M/fashion_mlp.onnx" --input "x$n.npy" --output "mlp$n.npy"
done
"$TANDEM" run --plaintext --model "$M/fashion_cnn.onnx" --input "x$CNN_BATCH.npy" --output cnn.npy

# query MODEL N CLIENT REF: one private query, checked, its seconds in lat.
query() {
  local t0 t1
  t0=$(date +%s.%N)
  if "$TANDEM" infer --config cluster.ini --model "$1" --input "x$2.npy" --output out.npy \
      --as "$3" 2>err; then
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{print $2 - $1}' >>lat
    npy_check out.npy "$4" 0.05 1 || fail "$1 at $2 rows: private output differs"
  else
    fail "$1 at $2 rows as $3: $(cat err)"
  fi
}
: >lat
for r in $(seq "$ROUNDS"); do
  for n in $SIZES; do
    query mlp "$n" alice "mlp$n.npy"
    query mlp "$n" bob "mlp$n.npy"
  done
  query cnn "$CNN_BATCH" alice cnn.npy
  "$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp --replace \
    >/dev/null 2>err || fail "round $r: re-share mlp: $(cat err)"
done
dealer_hwm=$(($(kb "${PID[dealer]}" VmHWM) / 1024))
p0_rss=$(($(kb "${PID[p0]}" VmRSS) / 1024))
p1_rss=$(($(kb "${PID[p1]}" VmRSS) / 1024))
p0_hwm=$(($(kb "${PID[p0]}" VmHWM) / 1024))
sort -n lat >lat.sorted
q=$(grep -c . lat.sorted)
p50=$(awk -v n="$q" 'NR == int((n + 1) / 2) {print $1}' lat.sorted)
p99=$(awk -v n="$q" 'NR == int((n * 99 + 99) / 100) {print $1}' lat.sorted)
echo "soak: $ROUNDS rounds, $q queries (CNN at $CNN_BATCH rows): latency p50 ${p50} s, p99 ${p99} s;" \
  "dealer peak ${dealer_hwm} MB (pool_mem_max ${POOL_MEM_MB} MB + ${DEALER_BASE_MB});" \
  "idle parties ${p0_rss} / ${p1_rss} MB (bound ${PARTY_IDLE_MB}; p0 peaked at ${p0_hwm} MB)"
# Under AddressSanitizer freed memory waits in its quarantine (256 MB by
# default) and is not given back to the system: the resident sizes are
# checked in the plain build only (the answers are checked in both).
if ldd "$TANDEM" 2>/dev/null | grep -q libasan; then
  echo "note: AddressSanitizer build: the resident-memory bounds are not checked"
else
  [ "$dealer_hwm" -le $((POOL_MEM_MB + DEALER_BASE_MB)) ] ||
    fail "the dealer peaked at $dealer_hwm MB, over $((POOL_MEM_MB + DEALER_BASE_MB)) MB"
  [ "$p0_rss" -le "$PARTY_IDLE_MB" ] || fail "idle p0 holds $p0_rss MB, over $PARTY_IDLE_MB MB"
  [ "$p1_rss" -le "$PARTY_IDLE_MB" ] || fail "idle p1 holds $p1_rss MB, over $PARTY_IDLE_MB MB"
fi
grep -q "evicted to stay within pool_mem_max" log.dealer ||
  echo "note: no pool was evicted (the budget was not reached)"
finish
