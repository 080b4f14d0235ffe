#!/usr/bin/env bash
# labels: loopback
#
# test_netns.sh - the cluster as separate machines: P0, P1 and the dealer each
# run in a network namespace of their own with their own address, joined by
# veth pairs to a bridge in a fourth namespace; the client stays in the root
# namespace with an address on the same /24. share-model and infer then cross
# real (virtual) links, never 127.0.0.1, and the private logits must match
# `tandem run --plaintext` (npy_check, tolerance 0.02, argmax per row). The
# test also checks that each daemon listens on its own address only and that
# P0 reached P1 and the dealer at theirs. Needs root and iproute2 with netns,
# veth and bridge support; without them it prints "SKIP: <reason>" and exits
# 77, which CTest reports as skipped (SKIP_RETURN_CODE 77 on the test; the
# automake convention). Every namespace, link and process it made is removed on exit, failure and
# signals included; names carry the PID so parallel runs do not clash. Run as
# `bash test_netns.sh <path-to-tandem>` with TANDEM_SRC the source directory.
set -u
TANDEM=${1:?usage: test_netns.sh <path-to-tandem>}
TANDEM=$(cd "$(dirname "$TANDEM")" && pwd)/$(basename "$TANDEM")
SRC=${TANDEM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/loopback/lib.sh"
M=$SRC/models

SKIP_CODE=77
skip() {
  echo "SKIP: $*"
  exit $SKIP_CODE
}
[ "$(id -u)" = 0 ] || skip "not root (network namespaces need CAP_NET_ADMIN)"
command -v ip >/dev/null 2>&1 || skip "no ip command (iproute2)"
command -v ss >/dev/null 2>&1 || skip "no ss command (iproute2)"

# Names: namespaces tnd<PID>-<role>; the one link in the root namespace is
# tn<PID>c (at most 11 characters, under the 15 of IFNAMSIZ). The other ends
# are created directly inside their namespaces, where names cannot clash.
ID=$$
NS_BR=tnd$ID-br
ROLES="p0 p1 dealer"
ROOT_LINK=tn${ID}c
TMP=$(mktemp -d)
PIDS=()
MADE_NS=()
cleanup() {
  local p ns
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    timeout 3 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null
  done
  # Anything still running inside our namespaces was started by this test.
  for ns in "${MADE_NS[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  done
  ip link del "$ROOT_LINK" 2>/dev/null
  # Deleting a namespace deletes the veth ends in it, and with them their peers.
  for ns in "${MADE_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  [ -n "${TANDEM_KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- can this machine do it? ------------------------------------------------------
ip netns add "$NS_BR" 2>"$TMP/err" || skip "ip netns add failed: $(head -n1 "$TMP/err")"
MADE_NS+=("$NS_BR")
ip -n "$NS_BR" link add br0 type bridge 2>"$TMP/err" ||
  skip "cannot make a bridge: $(head -n1 "$TMP/err")"
ip link add "$ROOT_LINK" type veth peer name client netns "$NS_BR" 2>"$TMP/err" ||
  skip "cannot make a veth pair: $(head -n1 "$TMP/err")"

# A /24 in 10.213.0.0/16 that the root namespace does not route yet, starting
# from one derived from the PID so parallel runs pick different ones.
NET=
for i in $(seq 0 253); do
  x=$(((ID + i) % 254 + 1))
  if ! ip -4 route show | grep -q "^10\.213\.$x\."; then
    NET=10.213.$x
    break
  fi
done
[ -n "$NET" ] || skip "no free /24 in 10.213.0.0/16"

# --- the network: a bridge, three daemon hosts, the client in the root namespace ----
# The probes above passed, so an error from here on is a failure, not a skip.
trap 'echo "FAIL: network setup failed at line $LINENO"' ERR
set -e
ip -n "$NS_BR" link set lo up
ip -n "$NS_BR" link set br0 up
declare -A ADDR
n=1
for r in $ROLES; do
  ns=tnd$ID-$r
  ip netns add "$ns"
  MADE_NS+=("$ns")
  ip -n "$ns" link add eth0 type veth peer name "$r" netns "$NS_BR"
  ip -n "$NS_BR" link set "$r" master br0 up
  ADDR[$r]=$NET.$n
  ip -n "$ns" addr add "${ADDR[$r]}/24" dev eth0
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  n=$((n + 1))
done
ip -n "$NS_BR" link set client master br0 up
CLIENT_ADDR=$NET.254
ip addr add "$CLIENT_ADDR/24" dev "$ROOT_LINK"
ip link set "$ROOT_LINK" up
set +e
trap - ERR
echo "subnet $NET.0/24: p0 ${ADDR[p0]}, p1 ${ADDR[p1]}, dealer ${ADDR[dealer]}, client $CLIENT_ADDR"

# --- keys and config: every member at its own address -----------------------------------
# Each daemon has a port space of its own, so all of them can use one port.
PORT=7300
cd "$TMP"
for id in p0 p1 dealer owner alice; do
  "$TANDEM" keygen --out keys --id $id >/dev/null 2>err || fail "keygen $id: $(cat err)"
done
[ "$failures" -eq 0 ] || finish
declare -A CL_HOST=([p0]=${ADDR[p0]} [p1]=${ADDR[p1]} [dealer]=${ADDR[dealer]})
PORT0=$PORT PORT1=$PORT PORTD=$PORT
cluster_config cluster.ini "timeout_ms = 10000
pool = 2" alice

# `ip netns exec` execs the command itself, so $! is the daemon's PID.
for r in dealer p1 p0; do
  if [ "$r" = dealer ]; then
    ip netns exec "tnd$ID-$r" "$TANDEM" dealer --config cluster.ini 2>"log.$r" &
  else
    ip netns exec "tnd$ID-$r" "$TANDEM" party --config cluster.ini --id "$r" 2>"log.$r" &
  fi
  PIDS+=($!)
done

# Each daemon listens on its own address (not 0.0.0.0, not loopback).
listening() { # ROLE
  ip netns exec "tnd$ID-$1" ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q "${ADDR[$1]}:$PORT"
}
for r in $ROLES; do
  for _ in $(seq 50); do
    listening "$r" && break
    sleep 0.1
  done
  listening "$r" || fail "$r does not listen on ${ADDR[$r]}:$PORT: $(cat "log.$r")"
done
[ "$failures" -eq 0 ] || finish

# --- share, infer from the root namespace, compare ----------------------------------------
timeout 60 "$TANDEM" share-model --config cluster.ini --model "$M/fashion_mlp.onnx" --name mlp \
  >out 2>err || fail "share-model: $(cat err)"
"$TANDEM" run --plaintext --model "$M/fashion_mlp.onnx" --input "$M/fashion_test16.npy" \
  --output plain.npy 2>err || fail "run --plaintext: $(cat err)"
if timeout 60 "$TANDEM" infer --config cluster.ini --model mlp --input "$M/fashion_test16.npy" \
    --output out.npy --stats stats.json --as alice 2>err; then
  npy_check out.npy plain.npy 0.02 1 || fail "private logits differ from the plaintext ones"
else
  fail "infer: $(cat err)"
fi

# The traffic really crossed the namespaces. The client reached the daemons
# through its veth (the only route to the subnet); P0 keeps its links to P1
# and the dealer between queries, and they join P0's address to theirs.
for r in $ROLES; do
  ip route get "${ADDR[$r]}" | grep -q "dev $ROOT_LINK " ||
    fail "the root namespace does not reach $r through $ROOT_LINK: $(ip route get "${ADDR[$r]}")"
done
p0_links=$(ip netns exec "tnd$ID-p0" ss -Htn state established 2>/dev/null)
for r in p1 dealer; do
  grep -Eq "${ADDR[p0]}:[0-9]+ +${ADDR[$r]}:[0-9]+" <<<"$p0_links" ||
    fail "no TCP link from P0 (${ADDR[p0]}) to $r (${ADDR[$r]}): $p0_links"
done
# Each daemon has exactly one listening socket, on its own address.
for r in $ROLES; do
  lines=$(ip netns exec "tnd$ID-$r" ss -Hltn 2>/dev/null | wc -l)
  [ "$lines" -eq 1 ] || fail "$r: $lines listening sockets, want 1 (on ${ADDR[$r]})"
done
for i in "${!PIDS[@]}"; do
  kill -0 "${PIDS[$i]}" 2>/dev/null || fail "daemon ${PIDS[$i]} exited"
done
if [ "$failures" -ne 0 ]; then
  for r in $ROLES; do
    echo "--- log.$r"
    cat "log.$r"
  done
fi
finish
