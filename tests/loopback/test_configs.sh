#!/usr/bin/env bash
# labels: loopback
#
# test_configs.sh - the shipped configs: configs/local.ini runs as documented
# in its header (keys made with keygen beside a copy of it, its ports moved
# to free ones), and configs/demo.ini parses (its placeholder keys are
# rejected only where a key is loaded: here, as a missing key file).
set -u
TANDEM=${1:?usage: test_configs.sh <path-to-tandem>}
SRC=${TANDEM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/loopback/lib.sh"
TMP=$(mktemp -d)
PIDS=()
trap 'kill ${PIDS[*]} 2>/dev/null; sleep 0.2; rm -rf "$TMP"' EXIT
cd "$TMP"
mkdir configs
read -r PD P0 P1 <<<"$(free_ports 3)"
sed -e "s/^port = 7100/port = $PD/" -e "s/^port = 7101/port = $P0/" -e "s/^port = 7102/port = $P1/" \
  "$SRC/configs/local.ini" >configs/local.ini
# The README's first step: install, then call tandem from the PATH.
if [ -f "$(dirname "$TANDEM")/cmake_install.cmake" ]; then
  cmake --install "$(dirname "$TANDEM")" --prefix "$TMP/inst" >/dev/null || fail "cmake --install"
  PATH="$TMP/inst/bin:$PATH" tandem --version | grep -q '^tandem ' || fail "installed tandem not on PATH"
fi
for id in p0 p1 dealer owner client; do
  "$TANDEM" keygen --out configs/keys --id $id >keygen.out || fail "keygen $id"
  grep -qx "\[$id\]" keygen.out && grep -qx "pub = configs/keys/$id.pub" keygen.out ||
    fail "keygen $id prints no config lines: $(cat keygen.out)"
done
"$TANDEM" dealer --config configs/local.ini 2>dealer.log & PIDS+=($!)
"$TANDEM" party --config configs/local.ini --id p1 2>p1.log & PIDS+=($!)
"$TANDEM" party --config configs/local.ini --id p0 2>p0.log & PIDS+=($!)
"$TANDEM" share-model --config configs/local.ini --model "$SRC/models/fashion_mlp.onnx" --name mlp \
  >/dev/null 2>err || fail "share-model: $(cat err)"
"$TANDEM" infer --config configs/local.ini --model mlp --input "$SRC/models/fashion_test16.npy" \
  --output logits.npy --stats stats.json 2>err || fail "infer: $(cat err)"
"$TANDEM" run --plaintext --model "$SRC/models/fashion_mlp.onnx" --input "$SRC/models/fashion_test16.npy" \
  --output plain.npy || fail "plaintext"
npy_check logits.npy plain.npy 0.02 1 || fail "local.ini: private logits differ"
# Secrets stay in memory: a result is readable by its owner only, and no
# daemon can dump core.
[ "$(stat -c %a logits.npy)" = 600 ] || fail "the result is mode $(stat -c %a logits.npy), not 600"
for pid in "${PIDS[@]}"; do
  grep -q "^Max core file size *0 *0 " /proc/$pid/limits || fail "daemon $pid may dump core"
done
# lan.ini (the three-machine walk-through's) parses: here its first host
# name does not resolve (or, where it does, a key is missing), named either way.
if "$TANDEM" party --config "$SRC/configs/lan.ini" --id p0 2>err; then
  fail "lan.ini: party started"
fi
one_line err && grep -q 'dealer\.lan\|keys/' err || fail "lan.ini: unexpected error: $(cat err)"
# A section line without its bracket is named by its line, not by the key
# after it that it leaves in the wrong section.
sed -e 's/^\[p1\]$/[p1/' configs/local.ini >broken.ini
want=$(grep -n '^\[p1$' broken.ini | cut -d: -f1)
if "$TANDEM" party --config broken.ini --id p0 2>err; then
  fail "broken.ini: accepted"
fi
one_line err && grep -q "broken.ini: line $want: malformed" err || fail "broken.ini: $(cat err)"
finish
