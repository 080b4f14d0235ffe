#!/usr/bin/env bash
# labels: loopback
#
# test_netns.sh - the README's "Three machines" walk-through, run as written:
# the dealer, P0, P1 and the laptop (the model owner and the client) are each
# a network namespace of their own, with their own address, joined by veth
# pairs to a bridge in a fifth namespace, and with their own /etc/hosts (ip
# netns exec mounts /etc/netns/<ns>/hosts there), which gives the config's
# host names (configs/lan.ini: dealer.lan, p0.lan, p1.lan). Each machine has
# a directory of its own (its HOME; the laptop's holds a checkout with
# configs/lan.ini and models/), `tandem` on its PATH, and `scp` copies
# between those directories. Each line of the README's block after the
# walkthrough marker runs on the machine its prompt names; a line ending in
# `&` starts a daemon. Then: the private logits must match `tandem run
# --plaintext` (npy_check, tolerance 0.02, argmax per row), each daemon
# listens on its own address only, the laptop reached every daemon through
# its link, and P0 reached P1 and the dealer at theirs. So traffic crosses
# real (virtual) links, never 127.0.0.1, and the README's commands are the
# ones that work.
#
# Needs root and iproute2 with netns, veth and bridge support; without them
# it prints "SKIP: <reason>" and exits 77, which CTest reports as skipped
# (SKIP_RETURN_CODE 77 on the test; the automake convention). Every
# namespace, link, /etc/netns entry and process it made is removed on exit,
# failure and signals included; names carry the PID so parallel runs do not
# clash. Run as `bash test_netns.sh <path-to-tandem>` with TANDEM_SRC the
# source directory.
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

# Names: namespaces tnd<PID>-<machine>; interfaces are created inside their
# namespaces, where names cannot clash.
ID=$$
NS_BR=tnd$ID-br
DAEMONS="dealer p0 p1"
MACHINES="$DAEMONS laptop"
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
  # Deleting a namespace deletes the veth ends in it, and with them their peers.
  for ns in "${MADE_NS[@]}"; do
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
  done
  [ -n "${TANDEM_KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- can this machine do it? ------------------------------------------------------
ip netns add "$NS_BR" 2>"$TMP/err" || skip "ip netns add failed: $(head -n1 "$TMP/err")"
MADE_NS+=("$NS_BR")
ip -n "$NS_BR" link add br0 type bridge 2>"$TMP/err" ||
  skip "cannot make a bridge: $(head -n1 "$TMP/err")"
mkdir -p "/etc/netns/$NS_BR" 2>"$TMP/err" || skip "cannot write /etc/netns: $(head -n1 "$TMP/err")"

# The namespaces reach nothing but each other, so any /24 will do; one
# derived from the PID keeps parallel runs apart in logs.
NET=10.213.$((ID % 254 + 1))

# --- the network: a bridge and four machines ----------------------------------------
# The probes above passed, so an error from here on is a failure, not a skip.
trap 'echo "FAIL: network setup failed at line $LINENO"' ERR
set -e
ip -n "$NS_BR" link set lo up
ip -n "$NS_BR" link set br0 up
declare -A ADDR
n=1
for r in $MACHINES; do
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
for r in $MACHINES; do
  mkdir -p "/etc/netns/tnd$ID-$r"
  {
    echo "127.0.0.1 localhost"
    for h in $MACHINES; do echo "${ADDR[$h]} $h.lan"; done
  } >"/etc/netns/tnd$ID-$r/hosts"
done
set +e
trap - ERR
echo "subnet $NET.0/24: dealer ${ADDR[dealer]}, p0 ${ADDR[p0]}, p1 ${ADDR[p1]}, laptop ${ADDR[laptop]}"

# --- the machines' directories, PATH and scp -----------------------------------------------
BIN=$TMP/bin
mkdir -p "$BIN" "$TMP/laptop/tandem/configs"
for r in $DAEMONS; do mkdir -p "$TMP/$r"; done
ln -s "$TANDEM" "$BIN/tandem"
cp "$SRC/configs/lan.ini" "$TMP/laptop/tandem/configs/"
ln -s "$M" "$TMP/laptop/tandem/models"
# scp SRC... HOST.lan:PATH: a copy into HOST's directory (PATH from its HOME).
cat >"$BIN/scp" <<'EOF'
#!/usr/bin/env bash
set -eu
dest=${!#}
host=${dest%%:*}
host=${host%.lan}
[ -d "$WALK_ROOT/$host" ] || { echo "scp: no machine $host" >&2; exit 1; }
cp -- "${@:1:$#-1}" "$WALK_ROOT/$host/${dest#*:}"
EOF
chmod +x "$BIN/scp"

# on MACHINE CMD: runs CMD with bash on MACHINE, in its directory (the
# laptop's checkout), in the foreground, or as a daemon when it ends in `&`.
on() {
  local m=$1 cmd=$2 dir bg=0
  dir=$TMP/$m
  [ "$m" = laptop ] && dir=$TMP/laptop/tandem
  if [[ $cmd =~ ^(.*[^[:space:]])[[:space:]]*\&$ ]]; then
    cmd=${BASH_REMATCH[1]}
    bg=1
  fi
  [ $bg = 1 ] && cmd="exec $cmd"
  local run=(ip netns exec "tnd$ID-$m" env PATH="$BIN:$PATH" HOME="$TMP/$m" WALK_ROOT="$TMP"
    bash -c "cd \"$dir\" && $cmd")
  if [ $bg = 1 ]; then
    # `ip netns exec` and bash exec the daemon itself, so $! is its PID.
    "${run[@]}" 2>"$TMP/$m.stderr" &
    PIDS+=($!)
  else
    timeout 120 "${run[@]}" >"$TMP/out" 2>"$TMP/err"
  fi
}

# The port of MACHINE's section in lan.ini.
port_of() {
  awk -v s="[$1]" '$0 == s {f = 1; next} /^\[/ {f = 0} f && $1 == "port" {print $3; exit}' \
    "$SRC/configs/lan.ini"
}
# Whether MACHINE listens on its own address and port.
listening() {
  ip netns exec "tnd$ID-$1" ss -Hltn "sport = :$(port_of "$1")" 2>/dev/null |
    grep -q "${ADDR[$1]}:$(port_of "$1")"
}

# --- the walk-through, line by line -----------------------------------------------------------
# The lines of the first ```sh block after the marker, "machine$ command".
mapfile -t LINES < <(awk '/<!-- walkthrough:/ {m = 1; next}
  m == 1 && /^```/ {m = 2; next}
  m == 2 && /^```/ {exit}
  m == 2 {print}' "$SRC/README.md")
[ "${#LINES[@]}" -ge 10 ] || fail "README: the walk-through block has ${#LINES[@]} lines"
for line in "${LINES[@]}"; do
  [[ $line =~ ^([a-z0-9]+)\$[[:space:]]+(.*)$ ]] || { fail "README: not 'machine\$ command': $line"; continue; }
  m=${BASH_REMATCH[1]}
  cmd=${BASH_REMATCH[2]}
  [[ " $MACHINES " == *" $m "* ]] || { fail "README: unknown machine $m"; continue; }
  echo "$m\$ $cmd"
  if ! on "$m" "$cmd"; then
    fail "$m\$ $cmd: $(cat "$TMP/err")"
    break
  fi
  # A daemon is up once it listens (on its own address) before the next line.
  if [[ $cmd =~ \&[[:space:]]*$ ]]; then
    for _ in $(seq 100); do
      listening "$m" && break
      sleep 0.1
    done
    listening "$m" || fail "$m does not listen on ${ADDR[$m]}:$(port_of "$m"): $(cat "$TMP/$m.stderr" "$TMP/$m/$m.log" 2>/dev/null)"
  fi
  [ "$failures" -eq 0 ] || break
done

# --- the result and where the traffic went ----------------------------------------------------
if [ "$failures" -eq 0 ]; then
  "$TANDEM" run --plaintext --model "$M/fashion_mlp.onnx" --input "$M/fashion_test16.npy" \
    --output "$TMP/plain.npy" 2>"$TMP/err" || fail "run --plaintext: $(cat "$TMP/err")"
  npy_check "$TMP/laptop/tandem/logits.npy" "$TMP/plain.npy" 0.02 1 ||
    fail "private logits differ from the plaintext ones"
  for m in $MACHINES; do
    for k in "$TMP/$m"/keys/*.key "$TMP/$m"/tandem/configs/keys/*.key; do
      [ -e "$k" ] || continue
      [ "$(stat -c %a "$k")" = 600 ] || fail "$k is mode $(stat -c %a "$k")"
      [ "$(basename "$k" .key)" = "$m" ] || [ "$m" = laptop ] ||
        fail "$m holds another machine's secret key: $k"
    done
  done
  # The laptop reached each daemon through its link (the only route there).
  for r in $DAEMONS; do
    ip -n "tnd$ID-laptop" route get "${ADDR[$r]}" | grep -q "dev eth0 " ||
      fail "the laptop does not reach $r through its link: $(ip -n "tnd$ID-laptop" route get "${ADDR[$r]}")"
  done
  # P0 keeps its links to P1 and the dealer between queries, and they join
  # P0's address to theirs.
  p0_links=$(ip netns exec "tnd$ID-p0" ss -Htn state established 2>/dev/null)
  for r in p1 dealer; do
    grep -Eq "${ADDR[p0]}:[0-9]+ +${ADDR[$r]}:[0-9]+" <<<"$p0_links" ||
      fail "no TCP link from P0 (${ADDR[p0]}) to $r (${ADDR[$r]}): $p0_links"
  done
  # Each daemon has exactly one listening socket, on its own address.
  for r in $DAEMONS; do
    lines=$(ip netns exec "tnd$ID-$r" ss -Hltn 2>/dev/null | wc -l)
    [ "$lines" -eq 1 ] || fail "$r: $lines listening sockets, want 1 (on ${ADDR[$r]})"
  done
  for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || fail "daemon ${PIDS[$i]} exited"
  done
fi
if [ "$failures" -ne 0 ]; then
  for r in $DAEMONS; do
    echo "--- $r"
    cat "$TMP/$r.stderr" "$TMP/$r/$r.log" 2>/dev/null
  done
fi
finish
