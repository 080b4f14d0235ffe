#!/bin/bash
# run.sh - runs every libFuzzer target of a TANDEM_FUZZ build tree for a
# bounded time each, from the seeds the build's seed programs write (make
# fuzz, called by make test). Usage: run.sh BUILD_DIR [SECONDS]. New inputs
# go to BUILD_DIR/fuzz-corpus/NAME (kept between runs), crashes to
# BUILD_DIR/fuzz-crashes. Exit non-zero if a target crashed.
# The mutations come from a fixed seed (-seed=1) and stop after FUZZ_RUNS
# inputs or at the time cap, whichever is first: from the same corpus a run is
# the same on every machine, so make test never fails at random. A longer
# campaign: FUZZ_RUNS=-1 run.sh BUILD 3600 (-1: no bound on inputs).
set -u
build=$1
secs=${2:-12}
seeds=$build/fuzz-seeds
mkdir -p "$seeds" "$build/fuzz-crashes"
"$build/fuzz_seeds" "$seeds" >/dev/null || exit 1
"$build/fuzz_seeds_net" "$seeds" || exit 1
fail=0
for name in onnx tensor graph net_frame net_hs ctrl config; do
  bin=$build/fuzz_$name
  corpus=$build/fuzz-corpus/$name
  mkdir -p "$corpus"
  extra=()
  [ "$name" = onnx ] && extra=(-dict="$(dirname "$0")/onnx.dict")
  seed=$seeds/$name
  [ -d "$seed" ] || mkdir -p "$seed"
  if "$bin" -seed=1 -runs="${FUZZ_RUNS:-20000}" -max_total_time="$secs" -timeout=10 \
       -rss_limit_mb=2048 -print_final_stats=0 \
       -artifact_prefix="$build/fuzz-crashes/$name-" "${extra[@]}" "$corpus" "$seed" \
       >"$build/fuzz-$name.log" 2>&1; then
    echo "fuzz_$name: ok ($(ls "$corpus" | wc -l) inputs in its corpus, ${secs} s)"
  else
    echo "fuzz_$name: FAILED (log: $build/fuzz-$name.log)"
    tail -n 30 "$build/fuzz-$name.log"
    fail=1
  fi
done
exit $fail
