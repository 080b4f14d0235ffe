# lib.sh - helpers shared by the loopback tests (sourced, not run): failure
# counting, free ports, .npy comparison in plain Python (no NumPy), and
# starting and stopping daemons with their logs kept for failures.

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
  fi
  echo "all passed"
  exit 0
}

# free_ports N: N distinct ports free now, below the kernel's ephemeral range
# (a dial to a port in that range can connect a socket to itself).
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = []
while len(ports) < int(sys.argv[1]):
    p = random.randrange(1024, lo)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    if p not in ports:
        ports.append(p)
print(" ".join(map(str, ports)))
PY
}

# npy_check A B TOL [ARGMAX]: the float tensors in A and B have the same
# shape and differ by at most TOL everywhere; with ARGMAX=1 the argmax of
# every row agrees too. Reads float32/float64 little-endian C-order .npy.
npy_check() {
  python3 - "$@" <<'PY'
import ast, struct, sys
def load(path):
    b = open(path, "rb").read()
    if b[:6] != b"\x93NUMPY":
        sys.exit("%s: not .npy" % path)
    hl = struct.unpack("<H", b[8:10])[0] if b[6] == 1 else struct.unpack("<I", b[8:12])[0]
    off = 10 if b[6] == 1 else 12
    h = ast.literal_eval(b[off:off + hl].decode())
    fmt = {"<f4": "f", "<f8": "d"}[h["descr"]]
    n = 1
    for d in h["shape"]:
        n *= d
    vals = struct.unpack("<%d%s" % (n, fmt), b[off + hl:off + hl + n * struct.calcsize(fmt)])
    return h["shape"], vals
sa, a = load(sys.argv[1])
sb, b = load(sys.argv[2])
tol = float(sys.argv[3])
if tuple(sa) != tuple(sb):
    sys.exit("shapes differ: %s vs %s" % (sa, sb))
err = max(abs(x - y) for x, y in zip(a, b)) if a else 0.0
if err > tol:
    sys.exit("max difference %g > %g" % (err, tol))
if len(sys.argv) > 4 and sys.argv[4] == "1":
    k = sa[-1]
    for r in range(len(a) // k):
        ra, rb = a[r*k:(r+1)*k], b[r*k:(r+1)*k]
        if ra.index(max(ra)) != rb.index(max(rb)):
            sys.exit("row %d: argmax differs" % r)
PY
}

# npy_rows SRC DST N: N rows of SRC (any float .npy) into DST, row i being
# row i mod rows(SRC): the first N rows when SRC has that many.
npy_rows() {
  python3 - "$@" <<'PY'
import ast, struct, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
b = open(src, "rb").read()
hl = struct.unpack("<H", b[8:10])[0]
h = ast.literal_eval(b[10:10 + hl].decode())
shape = list(h["shape"])
row = 1
for d in shape[1:]:
    row *= d
size = 4 if h["descr"] == "<f4" else 8
shape[0] = n
hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
    h["descr"], ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else ""))
hdr = hdr + " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
out = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode()
data, rows = b[10 + hl:], max(h["shape"][0], 1)
open(dst, "wb").write(out + b"".join(
    data[(i % rows) * row * size:(i % rows + 1) * row * size] for i in range(n)))
PY
}

# json_get FILE EXPR: evaluates EXPR on the JSON object in FILE (as `o`).
json_get() {
  python3 -c "import json,sys; o=json.load(open(sys.argv[1])); print($2)" "$1"
}

# one_line FILE: FILE has exactly one line (the error contract).
one_line() {
  [ "$(wc -l <"$1")" -eq 1 ]
}

# seen FILE FROM PATTERN: a line after line FROM of FILE matches PATTERN
# (grep -E) now.
seen() {
  tail -n +"$(($2 + 1))" "$1" 2>/dev/null | grep -Eq -- "$3"
}

# wait_log FILE FROM PATTERN SECS: the same within SECS seconds.
wait_log() {
  local end=$(($(date +%s) + $4))
  while [ "$(date +%s)" -le "$end" ]; do
    seen "$1" "$2" "$3" && return 0
    sleep 0.05
  done
  seen "$1" "$2" "$3"
}

# lines FILE: how many lines FILE has now (a log's position for wait_log).
lines() { wc -l <"$1"; }

# start NAME: starts the dealer or party NAME (p0, p1) of cluster.ini in the
# current directory, its stderr appended to log.NAME; its pid goes to
# PID[NAME] and PIDS (the caller declares `declare -A PID` and PIDS=()).
start() {
  if [ "$1" = dealer ]; then
    "$TANDEM" dealer --config cluster.ini 2>>"log.$1" &
  else
    "$TANDEM" party --config cluster.ini --id "$1" 2>>"log.$1" &
  fi
  PID[$1]=$!
  PIDS+=($!)
}

# dump_stacks NAME...: on a failure, where each daemon NAME still running is:
# its threads' stacks, Tandem's own frames only (gdb, where it can attach).
# A party stuck in a query shows where without reproducing it.
dump_stacks() {
  command -v gdb >/dev/null || return 0
  local n
  for n in "$@"; do
    kill -0 "${PID[$n]}" 2>/dev/null || continue
    echo "--- $n: threads in Tandem's code"
    # Frames of the tandem binary itself: without debug information gdb
    # shows them with no arguments and no library, with it, at a source
    # file of Tandem's.
    timeout 30 gdb -p "${PID[$n]}" -batch -ex "thread apply all bt" 2>/dev/null |
      grep -E "^Thread |^#[0-9]+ +0x[0-9a-f]+ in [^ ]+ \(\)\$|/(apps|net|mpc|kernels)/" |
      grep -v -E "in (_start|clone3) " | grep -B1 "^#" | grep -v "^--\$" | cut -c1-160
  done
}

# stop NAME [SIGNAL]: signals the daemon NAME (TERM by default) and reaps it.
stop() {
  kill -"${2:-TERM}" "${PID[$1]}" 2>/dev/null
  wait "${PID[$1]}" 2>/dev/null
}

# stop_all: the EXIT trap of a test that starts processes: every pid in PIDS
# is resumed (one may be stopped on purpose) and terminated, killed after a
# moment if it lingers, and $TMP removed (kept if TANDEM_KEEP_TMP is set).
stop_all() {
  for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [ -n "${TANDEM_KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}

# cluster_config FILE CLUSTER_LINES CLIENT...: a cluster's config (the one
# writer of the loopback tests), from the current directory (keys/ID.key and
# keys/ID.pub made by keygen, data/ID): P0, P1 and the dealer on $PORT0,
# $PORT1 and $PORTD, at 127.0.0.1 or at CL_HOST[ID] when the caller declares
# that associative array (test_netns.sh), the owner, and a [client NAME]
# section for each CLIENT. CLUSTER_LINES go under [cluster] (e.g.
# "timeout_ms = 3000").
cluster_config() {
  local file=$1 extra=$2 d id host
  shift 2
  {
    printf '[cluster]\n%s\n' "$extra"
    for d in "p0:$PORT0" "p1:$PORT1" "dealer:$PORTD"; do
      id=${d%%:*}
      host=127.0.0.1
      if declare -p CL_HOST >/dev/null 2>&1 && [ -n "${CL_HOST[$id]:-}" ]; then
        host=${CL_HOST[$id]}
      fi
      printf '[%s]\nhost = %s\nport = %s\npubkey = %s\nkey = keys/%s.key\ndata = data/%s\n' \
        "$id" "$host" "${d#*:}" "$(cut -d' ' -f2 "keys/$id.pub")" "$id" "$id"
    done
    printf '[owner]\npubkey = %s\nkey = keys/owner.key\n' "$(cut -d' ' -f2 keys/owner.pub)"
    for id in "$@"; do
      printf '[client %s]\npubkey = %s\nkey = keys/%s.key\n' "$id" "$(cut -d' ' -f2 "keys/$id.pub")" "$id"
    done
  } >"$file"
}
