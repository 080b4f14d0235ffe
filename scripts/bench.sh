#!/usr/bin/env bash
# bench.sh TANDEM OUTDIR - the standard benchmark set of `make bench`: the
# kernels, the secure channel, private matrix products (128x784x128 and
# 512x512x512, fresh and reused masks) and the Fashion-MNIST MLP and CNN at
# several batch sizes, the ViT and BERT-tiny (sequence 16 and 128) at batch 1,
# with LAN and WAN projections, each over real processes, and PyTorch float
# of the transformers in the same run (scripts/torch_baseline.py)
# on loopback. Writes OUTDIR/results.json (an array of the JSON objects of
# `tandem bench --json`; a workload that cannot run is an object with its
# "error") and OUTDIR/online.png (online time and bytes against batch size,
# gnuplot). Prints one line per workload as it goes.
set -u
TANDEM=${1:?usage: bench.sh TANDEM OUTDIR}
OUT=${2:?usage: bench.sh TANDEM OUTDIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
M=$SRC/models
mkdir -p "$OUT"
LINES=$(mktemp)
trap 'rm -f "$LINES" "$LINES".*' EXIT

# run LABEL ARGS...: one workload; its JSON object (or an error object) is
# appended to the results.
run() {
  local label=$1
  shift
  printf '%-44s ' "$label"
  if "$TANDEM" bench "$@" --json >"$LINES.one" 2>"$LINES.err"; then
    cat "$LINES.one" >>"$LINES"
    python3 - "$LINES.one" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
if o["workload"] in ("matmul", "model"):
    s = "rounds %d, online %.2f ms, %d B/party online, %.1f KB/party offline" % (
        o["rounds"], 1e3 * o["online_s"], max(o["online_bytes"].values()),
        max(o["offline_bytes"].values()) / 1e3)
    if "link" in o:
        s += ", projected %.1f ms on %s" % (1e3 * o["link"]["projected_online_s"], o["link"]["name"])
        if "emulated_online_s" in o["link"]:
            s += " (emulated %.1f ms)" % (1e3 * o["link"]["emulated_online_s"])
    print(s)
elif o["workload"] == "transport":
    print("rtt ratio %.2f, throughput ratio %.2f" % (o["rtt_ratio"], o["throughput_ratio"]))
else:
    print(", ".join("%s %s" % (k, o[k]) for k in ("kernel", "ratio") if k in o))
PY
  else
    local why
    why=$(head -1 "$LINES.err")
    echo "not run: $why"
    python3 -c 'import json,sys; print(json.dumps({"args": sys.argv[2:], "error": sys.argv[1]}))' \
      "$why" "$@" >>"$LINES"
  fi
}

run "gemm 512x512x512, 1 thread" --kernel gemm --shape 512x512x512
run "gemm 128x784x128, 1 thread" --kernel gemm --shape 128x784x128
run "prg" --kernel prg
run "trunc" --kernel trunc
run "secure channel" --transport
for shape in 128x784x128 512x512x512; do
  run "matmul $shape, fresh" --matmul "$shape" --by-gate
  run "matmul $shape, reused weight mask" --matmul "$shape" --mask reused --by-gate
done
for b in 1 10 100; do
  run "MLP batch $b" --model "$M/fashion_mlp.onnx" --batch "$b" --by-gate --link lan
done
run "MLP batch 1, wan (emulated)" --model "$M/fashion_mlp.onnx" --batch 1 --link wan --emulate
run "MLP batch 100, wan" --model "$M/fashion_mlp.onnx" --batch 100 --link wan
for b in 1 4 100; do
  run "CNN batch $b" --model "$M/fashion_cnn.onnx" --batch "$b" --by-gate --link lan --reps 3
done
# The ViT (issue 13): about 25 s with its setup on the 2 vCPU, 50 ms online.
run "ViT batch 1" --model "$M/transformers/fashion_vit.onnx" --batch 1 --by-gate --link lan --reps 3
# BERT-tiny from token ids (issue 13): at sequence 16, 0.14 GB of
# preprocessing a party; at sequence 128, 1.35 GB, over the default 1 GiB
# message, so bench gives its cluster a larger one (about 4 minutes in all).
run "BERT-tiny seq 16 batch 1" --model "$M/transformers/bert_tiny16.onnx" --batch 1 --by-gate --link lan --reps 3
run "BERT-tiny seq 128 batch 1" --model "$M/transformers/bert_tiny.onnx" --batch 1 --by-gate --reps 1

# PyTorch float of the transformers above, in the same run (issue 13: the
# ViT's online phase within 50x of it): scripts/torch_baseline.py, with the
# Python that has torch (Debian's python3-torch is /usr/bin/python3's).
printf '%-44s ' "PyTorch float, batch 1, 1 thread"
TORCH_PY=python3
python3 -c 'import torch' 2>/dev/null || TORCH_PY=/usr/bin/python3
if "$TORCH_PY" "$SRC/scripts/torch_baseline.py" "$M" >"$LINES.torch" 2>"$LINES.err"; then
  cat "$LINES.torch" >>"$LINES"
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    print("%s %.3f ms" % (o["model"], 1e3 * o["float_s"]) if "float_s" in o else o["error"], end="; ")
print()' "$LINES.torch"
else
  echo "not run: $(head -1 "$LINES.err")"
fi

python3 - "$LINES" "$OUT" <<'PY'
import json, os, sys
objs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out = sys.argv[2]
# Each private model run beside PyTorch's float of the same model and run.
torch_s = {o["model"]: o["float_s"] for o in objs
           if o.get("workload") == "pytorch" and "float_s" in o}
for o in objs:
    base = os.path.basename(o.get("model", "")) if o.get("workload") == "model" else ""
    if base in torch_s and o.get("batch") == 1 and "online_s" in o:
        o["pytorch_float_s"] = torch_s[base]
        o["online_over_pytorch"] = o["online_s"] / torch_s[base]
        print("%-44s online %.1f ms, PyTorch float %.3f ms: %.1fx" % (
            base + " batch 1", 1e3 * o["online_s"], 1e3 * torch_s[base], o["online_over_pytorch"]))
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(objs, f, indent=1)
    f.write("\n")
for name in ("mlp", "cnn"):
    # One point per batch size: the LAN runs (the WAN ones repeat a batch).
    rows = sorted((o["batch"], 1e3 * o["online_s"], max(o["online_bytes"].values()))
                  for o in objs if o.get("workload") == "model" and name in o.get("model", "")
                  and o.get("link", {}).get("name", "lan") == "lan")
    with open(os.path.join(out, name + ".dat"), "w") as f:
        f.write("# batch online_ms online_bytes_per_party\n")
        for r in rows:
            f.write("%d %.6g %d\n" % r)
PY
if command -v gnuplot >/dev/null 2>&1; then
  gnuplot <<GP
set terminal pngcairo size 1100,450 noenhanced
set output "$OUT/online.png"
set multiplot layout 1,2 title "Tandem on loopback (2 vCPU): online phase against batch size"
set logscale xy
set grid
set key top left
set xlabel "batch size"
set ylabel "online time per query (ms)"
plot "$OUT/mlp.dat" using 1:2 with linespoints title "MLP 784-128-128-10", \
     "$OUT/cnn.dat" using 1:2 with linespoints title "CNN"
set ylabel "online bytes sent per party"
plot "$OUT/mlp.dat" using 1:3 with linespoints title "MLP 784-128-128-10", \
     "$OUT/cnn.dat" using 1:3 with linespoints title "CNN"
unset multiplot
GP
  echo "wrote $OUT/results.json and $OUT/online.png"
else
  echo "wrote $OUT/results.json (no gnuplot: no plot)"
fi
