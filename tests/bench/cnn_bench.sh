#!/usr/bin/env bash
# Benchmark (not part of the test suite): the Deep Packet application CNN's training step and
# batched inference, through trafficid's framework (the cnn plugin with its default layers, the
# trainer, predict_proba) and in Python PyTorch (../shared/bench/cnn_torch.py, the same layers
# on the same Debian LibTorch 1.13 and OpenBLAS), side by side in one run, batch 128 of random
# 1500-byte vectors, 17 classes. Best of 3 each; ratio = trafficid samples/s / Python samples/s.
# Python also runs with trafficid's settings (GLIBC_TUNABLES: malloc blocks up to 1 GiB from the
# heap, 256 MiB kept, as runtime/allocator.hpp sets; OPENBLAS_NUM_THREADS=1, as the torch SDK sets),
# and trafficid with glibc's malloc defaults (TRAFFICID_MALLOC=default): what each setting accounts for.
# Also prints where trafficid's training step goes (forward, backward, optimizer, data loading),
# and the same trained weights' inference in int8 (predict --int8: oneDNN, dynamic quantization of
# the convolutions and dense layers), against float32 and Python.
# usage: tests/bench/cnn_bench.sh [BUILD_DIR] [BENCH_DIR] [THREADS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build} bench=${2:-$root/../shared/bench} threads=${3:-2}
/usr/bin/python3 -c "import torch" 2> /dev/null \
  || { echo "the Python peer needs Debian's PyTorch: apt-get install python3-torch" >&2; exit 1; }
ours() { "$build/bin/model_bench" "$build/lib/trafficid/plugins" cnn "$threads" 128 4; }
ours_glibc() { TRAFFICID_MALLOC=default ours; }
theirs() { /usr/bin/python3 "$bench/cnn_torch.py" "$threads"; }
theirs_tuned() {
  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=268435456 OPENBLAS_NUM_THREADS=1 theirs
}
steps=$(mktemp) int8=$(mktemp)
trap 'rm -f "$steps" "$int8"' EXIT
best() {  # command: the best train and inference samples/s of 3 runs, and the last line
  local bt=0 bi=0 line out
  for _ in 1 2 3; do
    out=$("$@")
    line=$(grep 'samples/s, inference' <<< "$out" | tail -1)
    grep '^step:' <<< "$out" >> "$steps" || true
    grep '^int8:' <<< "$out" >> "$int8" || true
    read -r t i < <(sed -n 's/.*train \([0-9.]*\) samples\/s, inference \([0-9.]*\) samples\/s.*/\1 \2/p' <<< "$line")
    bt=$(awk -v a="$bt" -v b="$t" 'BEGIN {print (b > a) ? b : a}'); bi=$(awk -v a="$bi" -v b="$i" 'BEGIN {print (b > a) ? b : a}')
  done
  echo "$bt $bi $line"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
read -r ot oi oline < <(best ours)
ostep=$(tail -1 "$steps")
oint8=$(sed -n 's/^int8: inference \([0-9.]*\) samples.*/\1/p' "$int8" | sort -g | tail -1)
read -r pt pi pline < <(best theirs)
read -r gt gi gline < <(best ours_glibc)
read -r qt qi qline < <(best theirs_tuned)
echo "trafficid cnn plugin:                       $oline"
echo "  where its training step goes:             $ostep"
echo "Python PyTorch peer:                        $pline"
echo "trafficid with glibc's malloc defaults:     $gline"
echo "Python PyTorch with trafficid's settings:   $qline"
printf "best of 3, %s threads: training %.1f vs %.1f samples/s (ratio %s), inference %.1f vs %.1f samples/s (ratio %s)\n" \
  "$threads" "$ot" "$pt" "$(ratio "$ot" "$pt")" "$oi" "$pi" "$(ratio "$oi" "$pi")"
echo "trafficid int8 (predict --int8), best:     $(grep "inference $oint8 " "$int8" | tail -1)"
printf "int8 inference %.1f samples/s: %sx trafficid float32, %sx Python PyTorch\n" "$oint8" "$(ratio "$oint8" "$oi")" "$(ratio "$oint8" "$pi")"
printf "same settings on both sides: training ratio %s; trafficid with glibc's malloc against Python as is: %s; inference %s, %s\n" \
  "$(ratio "$ot" "$qt")" "$(ratio "$gt" "$pt")" "$(ratio "$oi" "$qi")" "$(ratio "$gi" "$pi")"
