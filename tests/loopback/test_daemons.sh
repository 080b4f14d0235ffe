#!/usr/bin/env bash
# labels: loopback
#
# test_daemons.sh - the long-running daemons and the commands around them, as
# separate processes on free loopback ports: keygen (0600 keys), a config for
# P0, P1, the dealer, an owner and two clients; share-model (and --exact:
# two queries give the same bytes); infer (.npy and
# .pb) checked against the plaintext evaluator; restarts (a restarted party
# still serves the stored model; P1 killed between queries, then back; faults
# in the middle of a query are test_faults.sh's); faults (garbage and a
# wrong key on a party's port; a client with a good key whose frames are
# truncated, flipped, replayed or reordered, forged by net_forge; the dealer
# down, a corrupt stored model) and operator errors (world-readable key, port
# in use, malformed config, unknown model): each ends in a clear error, never
# a hang, and the daemons go on.
set -u
TANDEM=${1:?usage: test_daemons.sh <path-to-tandem>}
SRC=${TANDEM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/loopback/lib.sh"
TMP=$(mktemp -d)
PIDS=()
trap stop_all EXIT
M=$SRC/models
cd "$TMP"

# --- keys and config ---------------------------------------------------------
for id in p0 p1 dealer owner alice bob; do
  "$TANDEM" keygen --out keys --id $id >/dev/null 2>"$TMP/err" || fail "keygen $id: $(cat err)"
done
[ "$(stat -c %a keys/p0.key)" = 600 ] || fail "p0.key mode is $(stat -c %a keys/p0.key)"
"$TANDEM" keygen --out keys --id p0 >/dev/null 2>err && fail "keygen overwrote a key"
read -r PORT0 PORT1 PORTD <<<"$(free_ports 3)"
write_config() { # FILE TIMEOUT
  cluster_config "$1" "timeout_ms = $2
pool = 2" alice bob
}
write_config cluster.ini 5000

declare -A PID
start dealer; start p1; start p0

# --- share and infer -------------------------------------------------------------
"$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp >out 2>err ||
  fail "share-model: $(cat err)"
ls -l data/p0/mlp.p0 2>/dev/null | grep -q '^-rw-------' || fail "stored share not 0600"
grep -c . log.dealer >/dev/null
"$TANDEM" run --plaintext --model "$M/fashion_mlp.onnx" --input "$M/fashion_test16.npy" --output plain.npy
infer_ok() { # TAG [CLIENT]
  if "$TANDEM" infer --config cluster.ini --model mlp --input "$M/fashion_test16.npy" \
      --output "out.$1.npy" --stats "stats.$1" --as "${2:-alice}" 2>"err.$1"; then
    npy_check "out.$1.npy" plain.npy 0.02 1 || fail "$1: private output differs"
  else
    fail "$1: infer failed: $(cat "err.$1")"
  fi
}
infer_ok first
[ "$(json_get stats.first "o['rounds']")" -le 4 ] || fail "more than 4 rounds"
# Exact mode, the owner's choice at share-model: the daemons compile the
# published graph's plan (6 rounds), and two queries give the same bytes.
"$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlpx --exact \
  >out 2>err || fail "share-model --exact: $(cat err)"
for i in 1 2; do
  "$TANDEM" infer --config cluster.ini --model mlpx --input "$M/fashion_test16.npy" \
    --output "outx.$i.npy" --stats "statsx.$i" 2>"err.x$i" || fail "exact infer $i: $(cat "err.x$i")"
done
[ "$(json_get statsx.1 "o['rounds']")" = 6 ] || fail "exact mode: not 6 rounds"
cmp -s outx.1.npy outx.2.npy || fail "exact mode: two queries differ"
npy_check outx.1.npy plain.npy 0.02 1 || fail "exact mode: private output differs"
# Several clients at once (one link per identity: a second process with the
# same key replaces the first one's link, so each runs as its own client).
infer_ok a alice >q.a & qa=$!
infer_ok b bob >q.b & qb=$!
wait $qa $qb
cat q.a q.b
grep -q FAIL q.a q.b && failures=$((failures + 1))
# .pb output (ONNX TensorProto) too.
"$TANDEM" infer --config cluster.ini --model mlp --input "$M/fashion_test16.npy" --output out.pb \
  2>err || fail "infer to .pb: $(cat err)"
[ -s out.pb ] || fail "no .pb output"

# --- a restarted party still serves the stored model --------------------------------
stop p0; start p0
infer_ok restart_p0
# --- P1 killed between queries: an error within the timeout, then service again ---
stop p1 KILL
t0=$(date +%s)
if "$TANDEM" infer --config cluster.ini --model mlp --input "$M/fashion_test16.npy" --output x.npy \
    2>err.dead; then
  fail "infer succeeded with P1 dead"
fi
t1=$(date +%s)
[ $((t1 - t0)) -le 15 ] || fail "P1 dead: error after $((t1 - t0)) s (timeout 5 s)"
one_line err.dead || fail "P1 dead: not one line: $(cat err.dead)"
# Sharing a model while P1 is down: a clear error, and no half-stored model.
if "$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp4 2>err.s4; then
  fail "share-model succeeded with P1 dead"
fi
one_line err.s4 && grep -q "p1" err.s4 || fail "share with P1 dead: $(cat err.s4)"
ls data/*/mlp4.* >/dev/null 2>&1 && fail "a half-shared model was stored: $(ls data/*/mlp4.*)"
start p1
sleep 0.5
infer_ok p1_back

# --- garbage, a wrong key: the connection is dropped, the daemon goes on --------------
head -c 5000 /dev/urandom >/dev/tcp/127.0.0.1/$PORT0 2>/dev/null
printf 'GET / HTTP/1.0\r\n\r\n' >/dev/tcp/127.0.0.1/$PORT1 2>/dev/null
"$TANDEM" keygen --out keys --id mallory >/dev/null
sed "s#keys/alice.key#keys/mallory.key#" cluster.ini >mallory.ini
# mallory's key does not match alice's pubkey: refused before any traffic.
"$TANDEM" infer --config mallory.ini --model mlp --input "$M/fashion_test16.npy" --output x.npy \
  2>err.m && fail "a wrong key was accepted"
infer_ok after_garbage
# An authenticated client (bob's key) that breaks the channel: P0 ends that
# link and logs why, and serves the next query.
FORGE=$(dirname "$TANDEM")/net_forge
for attack in truncated flipped replayed reordered; do
  from=$(lines log.p0)
  "$FORGE" "$PORT0" keys/bob.key keys/p0.pub $attack 2>err.f ||
    fail "forged frames ($attack): $(cat err.f)"
  wait_log log.p0 "$from" "link to peer 9 ended: (authentication failed|protocol error)" 5 ||
    fail "P0 did not log the end of the $attack link: $(tail -n 2 log.p0)"
done
kill -0 "${PID[p0]}" 2>/dev/null || fail "P0 died of forged frames"
infer_ok after_forged

# --- operator errors: one line, non-zero -------------------------------------------------
expect_fail() { # WHAT PATTERN CMD...
  local what=$1 pat=$2
  shift 2
  if timeout 30 "$@" >out.e 2>err.e; then
    fail "$what: succeeded"
  elif ! one_line err.e || ! grep -qi -- "$pat" err.e; then
    fail "$what: want one line with '$pat', got: $(cat err.e)"
  fi
}
expect_fail "unknown model" "unknown model" "$TANDEM" infer --config cluster.ini --model nope \
  --input "$M/fashion_test16.npy" --output x.npy
cp keys/p0.key keys/loose.key; chmod 644 keys/loose.key
sed "s#keys/p0.key#keys/loose.key#" cluster.ini >loose.ini
expect_fail "world-readable key" "0600" "$TANDEM" party --config loose.ini --id p0
mkdir -m 755 open-data
read -r PORTX <<<"$(free_ports 1)"
sed -e "s#data/p0#open-data#" -e "s/^port = $PORT0\$/port = $PORTX/" cluster.ini >opendata.ini
expect_fail "data directory open to others" "open to others" "$TANDEM" party --config opendata.ini --id p0
sed "s#keys/p0.key#keys/none.key#" cluster.ini >nokey.ini
expect_fail "missing key" "none.key" "$TANDEM" party --config nokey.ini --id p0
expect_fail "port in use" "in use" "$TANDEM" party --config cluster.ini --id p0
printf '[p0\nhost=1\n' >bad.ini
expect_fail "malformed config" "bad.ini" "$TANDEM" party --config bad.ini --id p0
expect_fail "missing config" "nope.ini" "$TANDEM" dealer --config nope.ini
expect_fail "bad id" "p0 or p1" "$TANDEM" party --config cluster.ini --id p2

# --- a corrupt stored model is reported by name ---------------------------------------------
"$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp2 2>err ||
  fail "share mlp2: $(cat err)"
stop p1
printf 'X' | dd of=data/p1/mlp2.p1 bs=1 seek=100 conv=notrunc 2>/dev/null
start p1
sleep 0.3
expect_fail "corrupt model" "mlp2" "$TANDEM" infer --config cluster.ini --model mlp2 \
  --input "$M/fashion_test16.npy" --output x.npy
grep -q "mlp2.p1: corrupt" log.p1 || fail "p1 did not log the corrupt file by name"
infer_ok after_corrupt

# --- a party holding the state of an older setup refuses, never mixes two setups -------------------
# (what a setup that failed at one party leaves behind; here P1 is given its
# files of the first setup back after a second one).
"$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp3 2>err ||
  fail "share mlp3: $(cat err)"
mkdir old3 && cp data/p1/mlp3.graph data/p1/mlp3.p1 old3/
"$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp3 2>err ||
  fail "share mlp3 again: $(cat err)"
stop p1
cp old3/* data/p1/
start p1
sleep 0.3
expect_fail "stale setup at p1" "share it again" "$TANDEM" infer --config cluster.ini --model mlp3 \
  --input "$M/fashion_test16.npy" --output stale.npy
[ -e stale.npy ] && fail "a failed query wrote its output"
"$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp3 2>err ||
  fail "share mlp3 a third time: $(cat err)"
"$TANDEM" infer --config cluster.ini --model mlp3 --input "$M/fashion_test16.npy" --output fresh3.npy \
  2>err || fail "mlp3 after sharing again: $(cat err)"
npy_check fresh3.npy plain.npy 0.02 1 || fail "mlp3: private output differs"

# --- the dealer down: a clear error after the timeout; the parties keep running -------------------
stop dealer
expect_fail "dealer down" "dealer" "$TANDEM" infer --config cluster.ini --model mlp \
  --input "$M/fashion_test16.npy" --output x.npy
kill -0 "${PID[p0]}" && kill -0 "${PID[p1]}" || fail "a party died with the dealer"
start dealer
sleep 0.5
infer_ok dealer_back

# --- clean stop on SIGTERM --------------------------------------------------------------------------
for n in p0 p1 dealer; do
  kill -TERM "${PID[$n]}"
  if ! timeout 10 tail --pid="${PID[$n]}" -f /dev/null; then fail "$n did not stop on SIGTERM"; fi
done
# No secret in any log: no secret key (nor its first 16 hex digits), and no
# line longer than a log line should be (a dumped buffer).
for k in keys/*.key; do
  hex=$(cut -d' ' -f2 "$k" | cut -c1-16)
  grep -q "$hex" log.p0 log.p1 log.dealer && fail "the secret key $k appears in a log"
done
awk 'length > 400 { bad = 1 } END { exit bad }' log.p0 log.p1 log.dealer || fail "an overlong log line"
finish
