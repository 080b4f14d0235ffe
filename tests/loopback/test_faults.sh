#!/usr/bin/env bash
# labels: loopback
#
# test_faults.sh - the faults that need a real process killed, against P0,
# P1 and the dealer as separate processes on free loopback ports
# (timeout_ms 6000, pool 2, four clients):
# - a client killed (SIGKILL) while the parties run its query (the kernel
#   ends its connections wherever its frames were): the next client is
#   served;
# - P1 killed while it runs a query of a large batch: the client gets one
#   line on stderr within the timeout, P0 and the dealer keep running, and
#   once P1 is back the next queries succeed (the stored model is not lost,
#   and a large message of the killed query that reaches the new P1, which
#   nobody reads, does not hold up the control messages behind it).
# Each fault's time to an error is bounded by the timeout plus a slack for a
# loaded (or sanitised) build. Every other fault case is the Check suite's
# (tests/mpc/test_cluster_faults.c: one process, the services' fault hooks in
# place of paused or killed daemons): several clients at once, the pool's
# first query waiting, a client gone mid-query, a stalled client, the
# dealer's cancel, a party dying or stalling mid-step, retries with the same
# key. Those two stay here because a killed process is not a hook: its
# connections end wherever its frames were, and a killed P1 comes back as a
# new process that loads its model from disk while the dealer's large part
# of the killed query is still on its way.
set -u
TANDEM=${1:?usage: test_faults.sh <path-to-tandem>}
SRC=${TANDEM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/loopback/lib.sh"
TMP=$(mktemp -d)
PIDS=()
trap stop_all EXIT
M=$SRC/models
cd "$TMP"
TIMEOUT_S=6
# The parties give a stalled query up a timeout after they were told of it,
# or at the end of their offline phase if that is later, which for the
# batch-300 queries below (290 MB of preprocessing) took up to 21 s on a
# loaded 2-core machine running the sanitised build; the dealer may first
# spend up to a timeout making the preprocessing on demand.
SLACK_S=40

# --- keys, config, daemons, one model ------------------------------------------
CLIENTS="alice bob carol dave"
for id in p0 p1 dealer owner $CLIENTS; do
  "$TANDEM" keygen --out keys --id $id >/dev/null 2>err || fail "keygen $id: $(cat err)"
done
read -r PORT0 PORT1 PORTD <<<"$(free_ports 3)"
cluster_config cluster.ini "timeout_ms = $((TIMEOUT_S * 1000))
pool = 2" $CLIENTS
# How the daemons' logs name the clients: by their config sections ("client
# alice"), no longer by peer id.
declare -A CID=([alice]=alice [bob]=bob [carol]=carol [dave]=dave)

declare -A PID FROM
# mark: where each daemon's log stands now (FROM[NAME]), for wait_log and seen.
mark() {
  local n
  for n in dealer p0 p1; do FROM[$n]=$(lines "log.$n"); done
}
# prepared N SECS: the dealer's pool of batch N fills (once, logged once)
# within SECS seconds after mark.
prepared() {
  wait_log log.dealer "${FROM[dealer]}" "mlp at batch $1: 2 queries prepared ahead" "$2" ||
    fail "the dealer did not prepare batch $1 ahead: $(tail -n 3 log.dealer)"
}
alive() { # NAME...
  local n
  for n in "$@"; do kill -0 "${PID[$n]}" 2>/dev/null || return 1; done
}
start dealer
start p1; start p0
"$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp >/dev/null 2>err ||
  fail "share-model: $(cat err)"
[ "$failures" -eq 0 ] || finish

# rows SRC DST FROM N: rows FROM..FROM+N-1 of SRC (cycling through it) into DST.
rows() {
  python3 - "$@" <<'PY'
import ast, struct, sys
src, dst, start, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b = open(src, "rb").read()
hl = struct.unpack("<H", b[8:10])[0]
h = ast.literal_eval(b[10:10 + hl].decode())
shape = list(h["shape"])
size = {"<f4": 4, "<f8": 8}[h["descr"]]
row = size
for d in shape[1:]:
    row *= d
data = b[10 + hl:10 + hl + shape[0] * row]
out = b"".join(data[((start + i) % shape[0]) * row:((start + i) % shape[0] + 1) * row] for i in range(n))
shape[0] = n
hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
    h["descr"], ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else ""))
hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
open(dst, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + out)
PY
}
# plain_check TAG INPUT WHAT: out.TAG.npy against the plaintext evaluator on
# INPUT; fails with WHAT if they differ.
plain_check() {
  "$TANDEM" run --plaintext --model "$M/fashion_mlp.onnx" --input "$2" --output "plain.$1.npy" \
    2>"err.$1.plain" || { fail "$1: plaintext run: $(cat "err.$1.plain")"; return; }
  npy_check "out.$1.npy" "plain.$1.npy" 0.02 1 || fail "$3"
}

# query TAG CLIENT INPUT: a private query, checked against the plaintext
# evaluator on the same rows.
query() {
  if "$TANDEM" infer --config cluster.ini --model mlp --input "$3" --output "out.$1.npy" \
      --stats "stats.$1" --as "$2" 2>"err.$1"; then
    plain_check "$1" "$3" "$1: private output differs"
  else
    fail "$1: infer as $2 failed: $(cat "err.$1")"
  fi
}

# Inputs of the queries that check the cluster after a fault: other rows
# and batch sizes per client.
set -- alice 0 5 bob 5 11 carol 2 16
while [ $# -gt 0 ]; do
  rows "$M/fashion_test16.npy" "in.$1.npy" "$2" "$3"
  shift 3
done

# --- queries of batch 300 ----------------------------------------------------------------
# Queries of batch 300 (290 MB of preprocessing per party) from here on: one
# is asked for first, so that the dealer fills its pool of them (whether
# that one is served does not matter here: on a loaded machine it may be
# refused, or its client give up while the parties take in their parts).
rows "$M/fashion_test16.npy" big.npy 0 300
mark
"$TANDEM" infer --config cluster.ini --model mlp --input big.npy --output out.warm.npy \
  --as bob 2>err.warm
prepared 300 120

# --- a client killed while the parties run its query -------------------------------------
mark
"$TANDEM" infer --config cluster.ini --model mlp --input big.npy --output out.killed.npy \
  --as dave 2>/dev/null &
victim=$!
PIDS+=($victim)
if wait_log log.p0 "${FROM[p0]}" "batch 300, client ${CID[dave]}\): started" 30; then
  kill -KILL $victim
  wait $victim 2>/dev/null
  # Both parties end the query (at the latest at their timeout) and serve
  # the next. (This hung P0 or P1 now and then: a client killed while
  # sending its masked input ends the party's link with a protocol error,
  # which the receive took for a message to drop, and retried.)
  # (A client already gone when a party took the query up, its own
  # timeout passed on a loaded machine, ends it with "did not connect".)
  for n in p0 p1; do
    wait_log "log.$n" "${FROM[$n]}" "batch 300, client ${CID[dave]}\): .*(failed|ok|did not connect)" \
      $((TIMEOUT_S + SLACK_S)) || fail "$n did not end the killed client's query"
  done
  query after_kill alice "in.alice.npy"
else
  fail "P0 never started dave's query: $(tail -n 5 log.p0)"
  kill -KILL $victim 2>/dev/null
fi
alive dealer p0 p1 || fail "a daemon died with a killed client"

# --- P1 killed in the middle of a query ------------------------------------------------------
# The pool of batch 300 may be empty by now (two were taken above): a query
# the dealer refuses, not making it in time on a loaded machine, is asked
# again, up to three times, until P1 starts one.
started="batch 300, client ${CID[alice]}\): started"
for attempt in 1 2 3; do
  mark
  "$TANDEM" infer --config cluster.ini --model mlp --input big.npy --output out.p1dead.npy \
    --as alice 2>err.p1dead &
  q=$!
  while kill -0 $q 2>/dev/null && ! seen log.p1 "${FROM[p1]}" "$started"; do
    sleep 0.05
  done
  seen log.p1 "${FROM[p1]}" "$started" && break
  wait $q
  echo "note: attempt $attempt at the P1-killed query did not start: $(cat err.p1dead)"
done
if seen log.p1 "${FROM[p1]}" "$started"; then
  sleep 0.2 # into its offline or online phase
  seen log.p1 "${FROM[p1]}" "client ${CID[alice]}\): ok" &&
    echo "note: P1 finished the query before it was killed"
  kill -KILL "${PID[p1]}"
  wait "${PID[p1]}" 2>/dev/null
  t0=$(date +%s)
  if timeout $((2 * TIMEOUT_S + SLACK_S)) tail --pid=$q -f /dev/null; then
    t1=$(date +%s)
    if wait $q; then
      # A success means P1 sent its output share before the kill; its "ok"
      # line, written after that send, may not have come (CI41, 2026-12-07).
      # What must hold then is the answer itself.
      if ! seen log.p1 "${FROM[p1]}" "client ${CID[alice]}\): ok"; then
        echo "note: P1 sent its output before it was killed, not its log line"
        plain_check p1dead big.npy \
          "the query succeeded though P1 was killed during it, with a wrong answer"
      fi
    else
      one_line err.p1dead || fail "P1 killed: not one line: $(cat err.p1dead)"
      [ -e out.p1dead.npy ] && fail "a query that failed wrote its output"
      [ $((t1 - t0)) -le $((TIMEOUT_S + SLACK_S)) ] ||
        fail "P1 killed: the client's error came after $((t1 - t0)) s (timeout $TIMEOUT_S s)"
    fi
  else
    fail "P1 killed: the client hangs"
  fi
  alive dealer p0 || fail "P0 or the dealer died with P1"
  mark
  start p1
  # Back once the dealer and P0 have their links to it again.
  wait_log log.dealer "${FROM[dealer]}" "p1 connected" 30 && wait_log log.p0 "${FROM[p0]}" "link up with p1" 30 ||
    fail "P1 did not come back: $(tail -n 5 log.p1)"
  query p1_back bob "in.bob.npy"
  query p1_back2 carol "in.carol.npy"
else
  fail "P1 never started the query: $(tail -n 5 log.p1)"
fi
alive dealer p0 p1 || fail "a daemon is down at the end"

if [ "$failures" -ne 0 ]; then
  for n in dealer p0 p1; do
    echo "--- log.$n (last 30 lines)"
    tail -n 30 "log.$n"
  done
  dump_stacks dealer p0 p1
fi
finish
