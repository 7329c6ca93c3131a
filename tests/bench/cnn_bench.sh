#!/usr/bin/env bash
# Benchmark (not part of the test suite): the Deep Packet application CNN's training step and
# batched inference, through trafficid's framework (the cnn plugin with its default layers, the
# trainer, predict_proba) and in Python PyTorch (../shared/bench/cnn_torch.py, the same layers
# on the same Debian LibTorch 1.13 and OpenBLAS), side by side in one run, batch 128 of random
# 1500-byte vectors, 17 classes. Best of 3 each; ratio = trafficid samples/s / Python samples/s.
# usage: tests/bench/cnn_bench.sh [BUILD_DIR] [BENCH_DIR] [THREADS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build} bench=${2:-$root/../shared/bench} threads=${3:-2}
/usr/bin/python3 -c "import torch" 2> /dev/null \
  || { echo "the Python peer needs Debian's PyTorch: apt-get install python3-torch" >&2; exit 1; }
ours() { "$build/bin/model_bench" "$build/lib/trafficid/plugins" cnn "$threads" 128 4; }
theirs() { /usr/bin/python3 "$bench/cnn_torch.py" "$threads"; }
best() {  # command: the best train and inference samples/s of 3 runs, and the last line
  local bt=0 bi=0 line
  for _ in 1 2 3; do
    line=$("$@" | tail -1)
    read -r t i < <(sed -n 's/.*train \([0-9.]*\) samples\/s, inference \([0-9.]*\) samples\/s.*/\1 \2/p' <<< "$line")
    bt=$(awk -v a="$bt" -v b="$t" 'BEGIN {print (b > a) ? b : a}'); bi=$(awk -v a="$bi" -v b="$i" 'BEGIN {print (b > a) ? b : a}')
  done
  echo "$bt $bi $line"
}
read -r ot oi oline < <(best ours)
read -r pt pi pline < <(best theirs)
echo "trafficid cnn plugin: $oline"
echo "Python PyTorch peer:  $pline"
printf "best of 3, %s threads: training %.1f vs %.1f samples/s (ratio %.2f), inference %.1f vs %.1f samples/s (ratio %.2f)\n" \
  "$threads" "$ot" "$pt" "$(awk -v a="$ot" -v b="$pt" 'BEGIN {print a / b}')" "$oi" "$pi" "$(awk -v a="$oi" -v b="$pi" 'BEGIN {print a / b}')"
