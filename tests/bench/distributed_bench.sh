#!/usr/bin/env bash
# Benchmark (not part of the test suite): data-parallel training over Gloo against one process,
# side by side in one run, on the same machine and the same global batch (128). On the Deep
# Packet application dataset of ../shared/data/captures (balance "cap", MAX_PER_CLASS training
# rows per class), one epoch of: the paper CNN (10.1 M parameters) and a small MLP ([256, 128],
# 0.4 M); each as 1 process x 2 threads and as 2 workers x 1 thread (`run --workers 2`; the
# gradients' all-reduce in buckets of 4 MB overlapping backward, and again as one message after
# it). Prints the training samples/s (the epoch's, without validation), their ratio, the share of
# a step spent waiting for the all-reduce and its time per parameter (from the one-message run),
# then an estimate of the scaling to 8 and 32 machines.
# Then preprocessing of the 1 GB benchmark capture in 8 files, one process against a Slurm job
# array of 2 tasks (below). TRAIN=0 or PREPRO=0 leaves a part out.
# usage: tests/bench/distributed_bench.sh [BUILD_DIR] [DATA_DIR] [WORK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(realpath "${1:-$root/build}") data=$(realpath "${2:-$root/../shared/data}") work=${3:-$(mktemp -d)}
per_class=${MAX_PER_CLASS:-200} bandwidth=${BANDWIDTH_GBIT:-10}
tid="$build/bin/trafficid"
mkdir -p "$work"
cd "$work"
exp="$root/experiments/deep_packet_app.toml"
base=(--set "capture.sources=[\"pcap:$data/captures\"]" --set 'dataset.balance="cap"'
      --set "dataset.max_per_class=$per_class" --set train.epochs=1 --set train.patience=0
      --set "experiment.output_dir=\"$work/runs\"")
if [[ ${TRAIN:-1} == 1 ]]; then
"$tid" prepro "$exp" "${base[@]}" --run-dir prepro > prepro.log 2>&1 || { tail -5 prepro.log; exit 1; }

# The epoch of a run: samples/s, all-reduce share, parameters, training rows.
epoch_of() {  # RUN_DIR MODEL
  /usr/bin/python3 - "$1" "$2" << 'EOF'
import json, sys
run, model = sys.argv[1:]
e = [json.loads(l) for l in open(f"{run}/models/{model}/metrics.jsonl") if l.strip()][-1]
m = json.load(open(f"{run}/models/{model}/metrics.json"))
print(e["samples_per_second"], e.get("allreduce_fraction", 0), m["parameters"],
      json.load(open(f"{run}/run.json"))["dataset"]["rows"]["train"])
EOF
}
declare -A models=([cnn]='models={cnn={}}' [mlp]='models={mlp={layers=[256,128]}}')
printf "%-5s %12s %12s %14s %8s %10s %16s\n" model "1x2 s/s" "2x1 s/s" "ratio (2x1/1x2)" params "wait" "s per param/step"
for model in cnn mlp; do
  rm -rf "one-$model" "two-$model" "single-$model"
  "$tid" run "$exp" "${base[@]}" --set "${models[$model]}" --set train.threads=2 --run-dir "one-$model" > "one-$model.log" 2>&1 \
    || { tail -5 "one-$model.log"; exit 1; }
  "$tid" run "$exp" "${base[@]}" --set "${models[$model]}" --set train.threads=1 --workers 2 --run-dir "two-$model" \
    > "two-$model.log" 2>&1 || { tail -5 "two-$model.log"; exit 1; }
  # The same without overlap: one message after the backward pass.
  TRAFFICID_BUCKET_MB=0 "$tid" run "$exp" "${base[@]}" --set "${models[$model]}" --set train.threads=1 --workers 2 \
    --run-dir "single-$model" > "single-$model.log" 2>&1 || { tail -5 "single-$model.log"; exit 1; }
  read -r one _ params rows < <(epoch_of "one-$model" "$model")
  read -r two share _ _ < <(epoch_of "two-$model" "$model")
  read -r single single_share _ _ < <(epoch_of "single-$model" "$model")
  printf "  %s, 2 workers, one all-reduce after backward (TRAFFICID_BUCKET_MB=0): %.1f samples/s, all-reduce %.1f%%\n" \
    "$model" "$single" "$(awk -v s="$single_share" 'BEGIN {print 100 * s}')"
  # Seconds of all-reduce per step and per parameter: the share of the epoch's training time over its steps.
  read -r step_s per_param < <(awk -v sps="$single" -v share="$single_share" -v p="$params" -v n="$rows" 'BEGIN {
    steps = int((n + 127) / 128); t = n / sps; s = share * t / steps; printf "%.5f %.3e\n", s, s / p }')
  printf "%-5s %12.1f %12.1f %14.3f %8d %9.1f%% %16s\n" "$model" "$one" "$two" "$(awk -v a="$two" -v b="$one" 'BEGIN {print a / b}')" \
    "$params" "$(awk -v s="$share" 'BEGIN {print 100 * s}')" "$per_param"
  # Scaling with a ring all-reduce (Gloo's): each worker sends and receives 2(N-1)/N of the
  # gradients (4 bytes a parameter) per step; the global batch stays 128, so each of N machines
  # computes 1/N of one 2-core machine's step.
  awk -v sps="$one" -v p="$params" -v gbit="$bandwidth" -v model="$model" 'BEGIN {
    compute = 128 / sps
    for (i = 0; i < 2; ++i) {
      n = (i == 0) ? 8 : 32
      comm = 2 * (n - 1) / n * 4 * p / (gbit * 1e9 / 8)
      step = compute / n + comm
      printf "  %s on %d machines of 2 cores at %d Gbit/s: step %.3f s (compute %.3f + all-reduce %.3f), %.0f samples/s, %.1fx one machine, efficiency %.0f%%\n",
        model, n, gbit, step, compute / n, comm, 128 / step, compute / step, 100 * compute / (n * step)
    }
  }'
done
fi
[[ ${PREPRO:-1} == 1 ]] || exit 0

# Preprocessing the 1 GB benchmark capture (37 copies of the Ethernet captures, each with its own
# addresses: new flows), split in 8 files, as 1 process x 2 threads against a Slurm job array of
# 2 tasks x 1 thread (`prepro --emit-slurm --parts 2`, the last task merging), on a single-node
# Slurm of this machine started for the bench. Wall time from start to the dataset, each.
source "$root/tests/bench/big_capture.sh"
source "$root/tests/scripts/slurm_local.sh"
if [[ ! -d "$work/split" ]]; then
  build_big_capture "$data" "$work" pcap
  total=$(capinfos -c -M "$work/big.pcap" | awk '/Number of packets/ {print $NF}')
  mkdir -p "$work/split"
  "$tid" -q split "$work/big.pcap" "$work/split/part.pcap" -c $(((total + 7) / 8))
  rm -f "$work/big.pcap"
fi
packets=$(capinfos -c -M "$work"/split/*.pcap | awk '/Number of packets/ {n += $NF} END {print n}')
cat > "$work/prepro.toml" << TOML
[experiment]
name = "split8"
seed = 1
output_dir = "$work/prepro-runs"
[capture]
sources = ["pcap:$work/split"]
TOML
bench_dataset_sections >> "$work/prepro.toml"
trap 'stop_slurm_cluster "$work/cluster"' EXIT
start_slurm_cluster "$work/cluster"
cat "$work"/split/*.pcap > /dev/null
started=$(date +%s.%N)
"$tid" -q prepro "$work/prepro.toml" --set features.threads=2 --set "dataset.directory=\"$work/one\"" --run-dir "$work/p1"
one=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
"$tid" -q prepro "$work/prepro.toml" --set features.threads=1 --set "dataset.directory=\"$work/two\"" \
  --emit-slurm "$work/prepro.sh" --parts 2 2> /dev/null
# From submission until the array leaves the queue (squeue every 0.1 s: sbatch --wait polls
# more slowly than that).
started=$(date +%s.%N)
job=$(sbatch --parsable "$work/prepro.sh")
while [[ -n $(squeue -h -j "$job" 2> /dev/null) ]]; do sleep 0.1; done
two=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
grep -h "merged\|seconds" "$work"/two/split8-*.parts/slurm-*.log 2> /dev/null | head -4 || true
ls "$work"/two/split8-*/manifest.json > /dev/null
printf "prepro of %s packets in 8 files: 1 process x 2 threads %.2f s (%.0f packets/s), Slurm array of 2 tasks x 1 thread %.2f s (%.0f packets/s): ratio %.2f\n" \
  "$packets" "$one" "$(awk -v p="$packets" -v t="$one" 'BEGIN {print p / t}')" "$two" \
  "$(awk -v p="$packets" -v t="$two" 'BEGIN {print p / t}')" "$(awk -v a="$one" -v b="$two" 'BEGIN {print a / b}')"
