#!/usr/bin/env bash
# labels: loopback
#
# test_clients.sh - clients of a running cluster (issue 12): a client added
# to the config is refused until the daemons get SIGHUP, then served without
# a restart; each client its own key, several at once, each answer right;
# a batch over max_msg split by infer into several queries; a daemon down
# named within seconds.
set -u
TANDEM=${1:?usage: test_clients.sh <path-to-tandem>}
SRC=${TANDEM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/loopback/lib.sh"
TMP=$(mktemp -d)
PIDS=()
trap stop_all EXIT
M=$SRC/models
FORGE=$(dirname "$TANDEM")/net_forge
cd "$TMP"

for id in p0 p1 dealer owner alice bob carol; do
  "$TANDEM" keygen --out keys --id $id >/dev/null 2>err || fail "keygen $id: $(cat err)"
done
read -r PORT0 PORT1 PORTD <<<"$(free_ports 3)"
# max_msg is small enough that a query of the 16 test rows does not fit one
# message: infer splits it as run does.
cluster_config cluster.ini "timeout_ms = 5000
max_msg = 2000000
pool = 2" alice bob
declare -A PID
start dealer; start p1; start p0
"$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp >/dev/null 2>err ||
  fail "share mlp: $(cat err)"
"$TANDEM" run --plaintext --model "$M/fashion_mlp.onnx" --input "$M/fashion_test16.npy" \
  --output plain.npy 2>err || fail "plaintext: $(cat err)"
infer() { # CLIENT OUT
  "$TANDEM" infer --config cluster.ini --model mlp --input "$M/fashion_test16.npy" --output "$2" \
    --as "$1"
}

# --- carol added to the config: refused until SIGHUP, then served ----------------------
printf '[client carol]\npubkey = %s\nkey = keys/carol.key\n' "$(cut -d' ' -f2 keys/carol.pub)" \
  >>cluster.ini
if infer carol early.npy 2>err; then fail "a client unknown to the daemons was served"; fi
one_line err || fail "carol before the reload: not one line: $(cat err)"
declare -A AT
for d in dealer p0 p1; do AT[$d]=$(lines "log.$d"); kill -HUP "${PID[$d]}"; done
for d in dealer p0 p1; do
  wait_log "log.$d" "${AT[$d]}" "config reloaded: 3 clients, 1 keys new" 10 ||
    fail "$d did not reload its config: $(tail -3 "log.$d")"
done
infer carol carol.npy 2>err || fail "carol after SIGHUP: $(cat err)"
npy_check carol.npy plain.npy 0.02 1 || fail "carol: private output differs"
grep -q "note: 16 rows in queries of at most" err || fail "infer did not split 16 rows: $(cat err)"
# Not a terminal: a one-line summary, no progress line.
grep -q "tandem infer: 16 rows in [0-9]* queries" err || fail "no summary of the split: $(cat err)"
grep -q $'\r' err && fail "a progress line on a stderr that is no terminal"
# A terminal (script(1) gives one): the progress line is updated in place with an ETA.
if command -v script >/dev/null; then
  script -qec "$TANDEM infer --config cluster.ini --model mlp --input $M/fashion_test16.npy \
    --output tty.npy --as carol" /dev/null >tty.out 2>&1 || fail "infer on a terminal: $(cat tty.out)"
  grep -aq "ETA" tty.out && grep -aq "16/16 rows" tty.out || fail "no progress on a terminal: $(cat -A tty.out)"
fi

# --- three clients at once, each with its own key ------------------------------------
infer alice a.npy 2>err.a & qa=$!
infer bob b.npy 2>err.b & qb=$!
infer carol c.npy 2>err.c & qc=$!
for k in a b c; do
  eval "wait \$q$k" || fail "client $k at once: $(cat err.$k)"
  npy_check $k.npy plain.npy 0.02 1 || fail "client $k at once: output differs"
done
for d in dealer p0 p1; do kill -0 "${PID[$d]}" 2>/dev/null || fail "$d died"; done

# --- a daemon down: named within seconds, p0 logs it once and its return -----------------
AT[p0]=$(lines log.p0)
stop p1
t0=$(date +%s)
if infer alice down.npy 2>err; then fail "a query with p1 down succeeded"; fi
t1=$(date +%s)
[ $((t1 - t0)) -le 8 ] || fail "p1 down: named after $((t1 - t0)) s"
one_line err && grep -q "cannot reach p1 at 127.0.0.1 port $PORT1" err || fail "p1 down: $(cat err)"
start p1
wait_log log.p0 "${AT[p0]}" "p1 reachable again" 20 || fail "p0 did not log p1's return"
[ "$(tail -n +$((AT[p0] + 1)) log.p0 | grep -c "cannot reach p1")" -eq 1 ] ||
  fail "p0 logged p1's absence more than once: $(grep "cannot reach p1" log.p0)"
infer alice back.npy 2>err || fail "alice with p1 back: $(cat err)"

# --- a reordered config is refused by name, the daemons keep their clients -------------
sed -i 's/^\[client alice\]/[client alicia]/' cluster.ini
AT[dealer]=$(lines log.dealer)
kill -HUP "${PID[dealer]}"
wait_log log.dealer "${AT[dealer]}" "config not reloaded: .*\[client alicia\] is where \[client alice\] was" 10 ||
  fail "dealer: no refusal of a reordered config: $(tail -2 log.dealer)"
sed -i 's/^\[client alicia\]/[client alice]/' cluster.ini
infer alice a2.npy 2>err || fail "alice after a refused reload: $(cat err)"
# --- logs: levels, a file, peers by name -------------------------------------------------
stop p1
"$TANDEM" party --config cluster.ini --id p1 --log-level shout 2>err && fail "a bad log level was taken"
one_line err && grep -q "want error, warn, info or debug" err || fail "bad level: $(cat err)"
"$TANDEM" party --config cluster.ini --id p1 --log-level warn --log-file p1.log 2>p1.stderr &
PID[p1]=$!; PIDS+=($!)
infer alice l.npy 2>err || fail "with p1 logging to a file: $(cat err)"
"$FORGE" "$PORT1" keys/bob.key keys/p1.pub truncated 2>/dev/null
wait_log p1.log 0 "warn: net: link to client bob ended" 10 || fail "p1.log: $(cat p1.log)"
grep -q "ok, 4 rounds" p1.log && fail "an info line was logged at --log-level warn"
grep -q "peer [0-9]\|client [0-9]" p1.log && fail "a peer by number: $(grep 'peer [0-9]\|client [0-9]' p1.log)"
[ -s p1.stderr ] && fail "p1 wrote to stderr with --log-file: $(cat p1.stderr)"
finish
