#!/usr/bin/env bash
# labels: loopback
#
# test_attacks.sh - the network half of the attack suite, against real
# daemons on free loopback ports (issue 15): a client that trickles its
# input one byte at a time (the parties close its links at the query's due
# time instead of waiting as long as bytes come), a client that leaves a
# large unread message behind and reconnects, round after round (P0 drops
# what earlier links left: its memory stays at one message), a client
# sending on a channel it does not use (refused at the first header), and
# strangers holding half-open connections from one address (those over the
# per-address cap closed unread). Each attack is checked for its log line,
# and an honest client is served after it (after the flood, while the
# flooder still holds its connections). The attacker is net_attack.
set -u
TANDEM=${1:?usage: test_attacks.sh <path-to-tandem>}
SRC=${TANDEM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/loopback/lib.sh"
ATTACK=$(dirname "$TANDEM")/net_attack
[ -x "$ATTACK" ] || { echo "no net_attack next to $TANDEM"; exit 1; }
# Under AddressSanitizer, freed memory waits in a quarantine (256 MB) that
# the resident-memory check would count: none here (no effect otherwise).
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0
TMP=$(mktemp -d)
PIDS=()
trap stop_all EXIT
M=$SRC/models
cd "$TMP"

for id in p0 p1 dealer owner alice mallory; do
  "$TANDEM" keygen --out keys --id $id >/dev/null 2>err || fail "keygen $id: $(cat err)"
done
read -r PORT0 PORT1 PORTD <<<"$(free_ports 3)"
cluster_config cluster.ini "timeout_ms = 3000
handshake_timeout_ms = 20000" alice mallory

declare -A PID
start dealer; start p1; start p0
"$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp >out 2>err ||
  fail "share-model: $(cat err)"
honest() { # TAG: alice's query is served
  "$TANDEM" infer --config cluster.ini --model mlp --input "$M/fashion_test16.npy" \
    --output "out.$1.npy" --as alice 2>"err.$1" || fail "$1: honest query failed: $(cat "err.$1")"
}
honest before

# --- a client trickles its input ----------------------------------------------
from0=$(lines log.p0)
"$ATTACK" slow "$PORTD" "$PORT0" "$PORT1" keys/mallory.key keys/dealer.pub keys/p0.pub \
  keys/p1.pub mlp 20 >out.slow 2>err.slow ||
  fail "slow: the parties kept the trickling client's links: $(cat out.slow err.slow)"
cat out.slow
wait_log log.p0 "$from0" "not in by its due time" 5 ||
  fail "slow: no due-time line in P0's log"
honest slow

# --- unread messages across reconnections --------------------------------------
rss() { awk '/^VmRSS/ {print $2 * 1024}' "/proc/${PID[p0]}/status"; }
from0=$(lines log.p0)
rss0=$(rss)
BYTES=$((48 << 20))
"$ATTACK" requeue "$PORT0" keys/mallory.key keys/p0.pub 6 $BYTES >out.requeue 2>err.requeue ||
  fail "requeue: $(cat out.requeue err.requeue)"
n=$(tail -n +"$((from0 + 1))" log.p0 | grep -c "of its earlier links dropped")
[ "$n" -ge 5 ] || fail "requeue: P0 logged $n drops of earlier links' messages, want 5"
rss1=$(rss)
echo "requeue: P0 resident $((rss0 >> 20)) MiB before, $((rss1 >> 20)) MiB after six ${BYTES}-byte rounds"
[ "$rss1" -le $((rss0 + 2 * BYTES)) ] ||
  fail "requeue: P0 grew from $rss0 to $rss1 bytes resident over six ${BYTES}-byte rounds"
honest requeue

# --- a channel the client does not use ---------------------------------------
from0=$(lines log.p0)
"$ATTACK" channel "$PORT0" keys/mallory.key keys/p0.pub 5 ||
  fail "channel: P0 kept a link that sent on channel 5"
wait_log log.p0 "$from0" "on channel 5 refused \(a channel this peer does not use" 5 ||
  fail "channel: no refusal line in P0's log"

# --- strangers flood P0 with half-open connections from one address ------------
from0=$(lines log.p0)
"$ATTACK" flood "$PORT0" 127.0.0.2 20 12 >out.flood 2>err.flood &
FLOOD=$!
PIDS+=($FLOOD)
wait_log out.flood 0 "closed" 15 || fail "flood: the flooder did not report"
grep -q "closed 1[2-9] of 20\|closed 20 of 20" out.flood ||
  fail "flood: P0 closed too few: $(cat out.flood err.flood)"
wait_log log.p0 "$from0" "refused a connection from 127.0.0.2" 5 ||
  fail "flood: no refusal line in P0's log"
cat out.flood
honest flood
kill "$FLOOD" 2>/dev/null
wait "$FLOOD" 2>/dev/null

for n in dealer p0 p1; do
  kill -0 "${PID[$n]}" 2>/dev/null || fail "$n died"
done
if [ "$failures" -ne 0 ]; then
  for n in dealer p0 p1; do echo "--- log.$n"; tail -n 30 "log.$n"; done
fi
finish
