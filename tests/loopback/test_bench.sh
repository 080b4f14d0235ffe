#!/usr/bin/env bash
# labels: loopback
#
# test_bench.sh - end-to-end test of `tandem bench`, the kernel and transport
# benchmark: runs the binary given as $1 on small shapes with --json and checks
# the object's keys and figures, checks that TANDEM_KERNEL selects the named
# variant (each variant this CPU lacks must be refused, and is reported as
# skipped), runs --transport with small counts and checks its figures and ratios, and
# checks that every bad invocation exits non-zero with exactly one line on
# stderr. Runs as a CTest loopback test (`bash test_bench.sh <path-to-tandem>`),
# in a few seconds.
set -u

TANDEM=${1:?usage: test_bench.sh <path-to-tandem>}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# check_json FILE WORKLOAD KERNEL KEY... : FILE holds exactly one line, a JSON
# object whose workload and kernel are as given (an empty KERNEL: any, or none
# as for --transport), with every KEY present and every number in it positive and
# finite.
check_json() {
  python3 - "$@" <<'EOF'
import json, math, sys
path, workload, kernel, keys = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
lines = open(path).read().splitlines()
if len(lines) != 1:
    sys.exit("want one line of JSON, got %d" % len(lines))
obj = json.loads(lines[0])
if obj.get("workload") != workload:
    sys.exit("workload is %r, want %r" % (obj.get("workload"), workload))
if kernel and obj.get("kernel") != kernel:
    sys.exit("kernel is %r, want %r" % (obj.get("kernel"), kernel))
for k in keys:
    if k not in obj:
        sys.exit("key %r missing from %s" % (k, lines[0]))
for k, v in obj.items():
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if not (math.isfinite(v) and v > 0):
            sys.exit("%s = %r is not a positive number" % (k, v))
EOF
}

GEMM_KEYS="shape kernel threads gmacs baseline baseline_gmacs baseline_gmacs_1t ratio peak_gmacs efficiency"

# --- the workloads, with the default variant ---------------------------------
if "$TANDEM" bench --kernel gemm --shape 64x64x64 --json --reps 2 >"$TMP/out" 2>"$TMP/err"; then
  check_json "$TMP/out" gemm "" $GEMM_KEYS || fail "gemm JSON: $(cat "$TMP/out")"
  grep -q '"shape":"64x64x64"' "$TMP/out" || fail "gemm JSON lacks the shape"
  grep -q '"baseline":"openblas-dgemm"' "$TMP/out" || fail "gemm JSON lacks the baseline"
  grep -q '"threads":1[,}]' "$TMP/out" || fail "gemm default threads is not 1"
else
  fail "gemm 64x64x64 exited $?: $(cat "$TMP/err")"
fi

# A ragged shape (no dimension a multiple of a tile) on two threads.
if "$TANDEM" bench --kernel gemm --shape 33x65x17 --threads 2 --json --reps 2 >"$TMP/out" 2>"$TMP/err"; then
  check_json "$TMP/out" gemm "" $GEMM_KEYS || fail "gemm 2-thread JSON: $(cat "$TMP/out")"
  grep -q '"threads":2[,}]' "$TMP/out" || fail "gemm --threads 2 not reported"
else
  fail "gemm 33x65x17 --threads 2 exited $?: $(cat "$TMP/err")"
fi

if "$TANDEM" bench --kernel prg --json --reps 2 >"$TMP/out" 2>"$TMP/err"; then
  check_json "$TMP/out" prg "" kernel gbps baseline baseline_gbps ratio ||
    fail "prg JSON: $(cat "$TMP/out")"
else
  fail "prg exited $?: $(cat "$TMP/err")"
fi

if "$TANDEM" bench --kernel trunc --json --reps 2 >"$TMP/out" 2>"$TMP/err"; then
  check_json "$TMP/out" trunc "" kernel elems_per_s gbps baseline baseline_gbps ratio ||
    fail "trunc JSON: $(cat "$TMP/out")"
else
  fail "trunc exited $?: $(cat "$TMP/err")"
fi

# --transport: one short run (few round trips, small exchanges). The ratios must be
# the quotients of the figures beside them; the targets (throughput_ratio >=
# 0.5, rtt_ratio <= 2) are printed, not asserted: a loaded machine can miss them.
NET_KEYS="rtt_us_secure rtt_us_plain rtt_ratio xchg_mbps_secure xchg_mbps_plain throughput_ratio"
if "$TANDEM" bench --transport --iters 50 --reps 2 --bytes 262144 --json >"$TMP/out" 2>"$TMP/err"; then
  check_json "$TMP/out" transport "" $NET_KEYS || fail "transport JSON: $(cat "$TMP/out")"
  python3 - "$TMP/out" <<'PY' || fail "transport JSON figures: $(cat "$TMP/out")"
import json, sys
o = json.load(open(sys.argv[1]))
def close(a, b):
    return abs(a - b) <= 1e-3 * max(abs(a), abs(b))
if not close(o["rtt_ratio"], o["rtt_us_secure"] / o["rtt_us_plain"]):
    sys.exit("rtt_ratio is not rtt_us_secure / rtt_us_plain")
if not close(o["throughput_ratio"], o["xchg_mbps_secure"] / o["xchg_mbps_plain"]):
    sys.exit("throughput_ratio is not xchg_mbps_secure / xchg_mbps_plain")
if "kernel" in o:
    sys.exit("--transport reports a kernel variant it does not use")
if (o.get("rtt_iters"), o.get("xchg_iters"), o.get("xchg_bytes")) != (50, 2, 262144):
    sys.exit("--iters/--reps/--bytes are not reported as given")
print("transport (small run): rtt_ratio %.2f, throughput_ratio %.2f"
      % (o["rtt_ratio"], o["throughput_ratio"]))
PY
else
  fail "transport exited $?: $(cat "$TMP/err")"
fi
if "$TANDEM" bench --transport --iters 20 --reps 1 --bytes 65536 >"$TMP/out" 2>"$TMP/err"; then
  for label in "rtt secure" "rtt plain" "rtt ratio" "exchange secure" "exchange plain" \
      "throughput ratio"; do
    grep -q "^$label " "$TMP/out" || fail "transport human output lacks '$label': $(cat "$TMP/out")"
  done
  grep -q '{' "$TMP/out" && fail "transport human output contains JSON"
else
  fail "human transport exited $?: $(cat "$TMP/err")"
fi
# The transport uses no kernel: a bad TANDEM_KERNEL does not stop it.
TANDEM_KERNEL=bogus "$TANDEM" bench --transport --iters 5 --reps 1 --bytes 4096 --json \
  >"$TMP/out" 2>"$TMP/err" || fail "transport with TANDEM_KERNEL=bogus: $(cat "$TMP/err")"

# Human output: aligned lines, no JSON.
if "$TANDEM" bench --kernel gemm --shape 16x16x16 --reps 1 >"$TMP/out" 2>"$TMP/err"; then
  for label in kernel threads shape tandem "openblas 1 thread" ratio peak efficiency; do
    grep -q "^$label " "$TMP/out" || fail "human output lacks '$label': $(cat "$TMP/out")"
  done
  grep -q '{' "$TMP/out" && fail "human output contains JSON"
else
  fail "human gemm exited $?: $(cat "$TMP/err")"
fi

# --- TANDEM_KERNEL picks the variant, or is refused where the CPU lacks it ---
cpu_has() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }
for isa in ref avx2 avx512; do
  case $isa in
    ref) have=1 ;;
    avx2) cpu_has avx2 && have=1 || have=0 ;;
    avx512) cpu_has avx512f && cpu_has avx512dq && have=1 || have=0 ;;
  esac
  TANDEM_KERNEL=$isa "$TANDEM" bench --kernel gemm --shape 40x24x56 --json --reps 1 \
    >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ "$have" = 1 ] && [ $rc -eq 0 ]; then
    check_json "$TMP/out" gemm "$isa" $GEMM_KEYS || fail "TANDEM_KERNEL=$isa: $(cat "$TMP/out")"
  elif [ "$have" = 1 ]; then
    fail "TANDEM_KERNEL=$isa exited $rc on a CPU that has it: $(cat "$TMP/err")"
  elif [ $rc -ne 0 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] &&
       grep -q "TANDEM_KERNEL=$isa" "$TMP/err"; then
    echo "skipped: TANDEM_KERNEL=$isa (this CPU lacks it; refused as it should be)"
  else
    fail "TANDEM_KERNEL=$isa on a CPU without it: exit $rc, stderr: $(cat "$TMP/err")"
  fi
done

# --- errors: non-zero exit, nothing on stdout, exactly one line on stderr ----
# expect_error WANT_RC ENV-ASSIGNMENT ARGS...
expect_error() {
  local want=$1 envset=$2
  shift 2
  env $envset "$TANDEM" bench "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  local what="${envset:+$envset }tandem bench $*"
  if [ $rc -eq 0 ]; then
    fail "$what: exit 0, want $want"
  elif [ $rc -ne "$want" ]; then
    fail "$what: exit $rc, want $want ($(cat "$TMP/err"))"
  fi
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "$what: want one line on stderr, got: $(cat "$TMP/err")"
  [ -s "$TMP/out" ] && fail "$what: printed on stdout: $(cat "$TMP/out")"
  return 0
}
expect_error 2 "" --kernel gemm --shape 0x4x4
expect_error 2 "" --kernel gemm --shape 4x4
expect_error 2 "" --kernel gemm --shape 4x4x65537
expect_error 2 "" --kernel gemm --shape 4xx4x4
expect_error 2 "" --kernel gemm --shape 99999999999999999999999x1x1
expect_error 2 "" --kernel gemm
expect_error 2 "" --kernel bogus
expect_error 2 "" --kernel gemm --shape 8x8x8 --threads 0
expect_error 2 "" --kernel gemm --shape 8x8x8 --threads 65
expect_error 2 "" --kernel gemm --shape 8x8x8 --reps
expect_error 2 "" --kernel gemm --shape 8x8x8 --frobnicate
expect_error 2 ""
expect_error 2 "" --transport --kernel prg
expect_error 2 "" --transport --shape 8x8x8
expect_error 2 "" --transport --threads 2
expect_error 2 "" --transport --iters 0
expect_error 2 "" --transport --iters 1000001
expect_error 2 "" --transport --bytes 0
expect_error 2 "" --transport --bytes 67108865
expect_error 2 "" --transport --bytes 1k
expect_error 2 "" --transport --bytes
expect_error 2 "" --transport --reps 0
expect_error 2 "" --kernel prg --iters 10
expect_error 2 "" --kernel trunc --bytes 4096
expect_error 1 "TANDEM_KERNEL=bogus" --kernel gemm --shape 8x8x8
# The largest shape needs 256 GiB: refused, unless this machine could hold it.
mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)
if [ -n "$mem_kib" ] && [ "$mem_kib" -lt $((300 * 1024 * 1024)) ]; then
  expect_error 1 "" --kernel gemm --shape 65536x65536x65536
fi
grep -q "TANDEM_KERNEL=bogus" <(env TANDEM_KERNEL=bogus "$TANDEM" bench --kernel gemm --shape 8x8x8 2>&1) ||
  fail "TANDEM_KERNEL=bogus: the message does not name the variable"

# --- the command line (issue 12): every option named exactly, every error on
# one line naming it, --net split into --transport and --link ----------------
# expect_msg PATTERN ARGS...: exit 2, one line on stderr matching PATTERN.
expect_msg() {
  local pat=$1
  shift
  expect_error 2 "" "$@"
  grep -q -- "$pat" "$TMP/err" || fail "tandem bench $*: stderr lacks '$pat': $(cat "$TMP/err")"
}
M=$(cd "$(dirname "$0")/../.." && pwd)/models/fashion_mlp.onnx
expect_msg "'--kern'" --kern gemm --shape 8x8x8            # no abbreviations
expect_msg "'--mas'" --matmul 4x4x4 --mas fresh
expect_msg "'--matmulx'" --matmulx 4x4x4
expect_msg "'--frobnicate'" --matmul 4x4x4 --frobnicate
expect_msg "'--jso'" --model "$M" --jso
expect_msg "'--matmul' needs a value" --matmul
expect_msg "'--batch' needs a value" --model "$M" --batch
expect_msg "'--link' needs a value" --model "$M" --link --emulate
expect_msg "'--shape' needs a value" --kernel gemm --shape --json
expect_msg "'--json' takes no value" --kernel prg --json=1
expect_msg "'--kernel' given twice" --kernel gemm --kernel prg
expect_msg "--batch applies to --matmul and --model only" --kernel gemm --shape 8x8x8 --batch 2
expect_msg "--kernel does not apply to --matmul" --matmul 4x4x4 --kernel gemm
expect_msg "--transport does not apply to --matmul" --matmul 4x4x4 --transport
expect_msg "--transport.*--link" --net
expect_msg "--transport.*--link" --model "$M" --net lan
expect_msg "--transport.*--link" --net=lan --model "$M"
expect_msg "missing the workload" --json
if "$TANDEM" bench --version >"$TMP/out" 2>"$TMP/err"; then
  grep -q "^tandem " "$TMP/out" || fail "bench --version: $(cat "$TMP/out")"
else
  fail "bench --version exited non-zero: $(cat "$TMP/err")"
fi
# --help names every workload and option, each on a line of its own.
"$TANDEM" bench --help >"$TMP/out" 2>"$TMP/err" || fail "--help exited non-zero"
for opt in --kernel --transport --matmul --model --shape --threads --iters --bytes --mask \
    --batch --by-gate --link --emulate --reps --json --help --version; do
  grep -q -- "^  $opt " "$TMP/out" || fail "bench --help lacks a line for $opt"
done
grep -q "online_s .*both parties hold the masked" "$TMP/out" ||
  fail "bench --help does not define the online time"

# --help: usage on stdout, exit 0.
if "$TANDEM" bench --help >"$TMP/out" 2>"$TMP/err"; then
  grep -q "usage: tandem bench" "$TMP/out" || fail "--help prints no usage"
  grep -q "efficiency" "$TMP/out" || fail "--help does not define efficiency"
else
  fail "--help exited non-zero"
fi

if [ $failures -ne 0 ]; then
  echo "test_bench: $failures failure(s)"
  exit 1
fi
echo "test_bench: ok"
