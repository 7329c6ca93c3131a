#!/usr/bin/env bash
# Benchmark (not part of the test suite): tuning the Deep Packet application CNN on
# ../shared/data/captures (19 classes, flow split, paper masking, the training split capped at CAP
# packets per class) with `random` and with `asha` (eta 3), the same space and seeds, side by side.
# Random search runs TRIALS trials of EPOCHS epochs; ASHA gets 3 x TRIALS trials and the same
# budget of trial-epochs (TRIALS x EPOCHS): its study is stopped (SIGINT) once it has spent them.
# For each seed it prints the best validation macro F1 each reached against the trial-epochs
# spent, and how many epochs ASHA needed to reach random search's best (goal: at most a third of
# random's). A study already in WORKDIR is gone on with, a finished one reused.
# usage: tests/bench/tune_bench.sh [BUILD] [DATA] [WORKDIR] [SEEDS] [TRIALS] [EPOCHS] [CAP]
# ASHA_MIN_STEPS=N: ASHA's first rung at epoch N (default 1); its studies are asha-mN-SEED.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build} data=$(realpath "${2:-$root/../shared/data}") work=${3:-/tmp/tune-bench}
seeds=${4:-"1 2"} trials=${5:-6} epochs=${6:-4} cap=${7:-100}
tid=$build/bin/trafficid
mkdir -p "$work"
work=$(realpath "$work")

experiment() {  # SEED TUNER TRIALS: the app experiment, one CNN, a [tune] section
  sed -n '1,/^\[train\]/p' "$root/experiments/deep_packet_app.toml" | sed '$d' \
    | sed -e "s|^seed = 1|seed = $1|" -e "s|^balance = \"weights\"|balance = \"cap\"\nmax_per_class = $cap|"
  cat <<TOML
[train]
epochs = $epochs
patience = 0
threads = 2

[models.cnn]   # the paper's application network; its first convolution, lr and batch size searched

[tune]
tuner = "$2"
trials = $3
[tune.asha]
eta = 3
min_steps = ${ASHA_MIN_STEPS:-1}
[tune.space]
"models.cnn.conv.0.filters" = { choice = [32, 64, 128, 200] }
"models.cnn.conv.0.kernel" = { choice = [3, 4, 5] }
"train.lr" = { loguniform = [1e-4, 3e-3] }
"train.batch_size" = { choice = [64, 128] }
TOML
}

budget=$((trials * epochs))
reports() { grep -c '"event":"report"' "$1/journal.jsonl" 2> /dev/null || true; }
for seed in $seeds; do
  for tuner in random asha; do
    n=$trials study=$tuner-$seed
    [[ $tuner == asha ]] && n=$((trials * 3)) study=asha-m${ASHA_MIN_STEPS:-1}-$seed
    experiment "$seed" "$tuner" "$n" > "$work/$study.toml"
    start=$(date +%s.%N)
    "$tid" -q tune "$work/$study.toml" --study-dir "$work/$study" \
      --set "capture.sources=[\"pcap:$data/captures\"]" --set "experiment.output_dir=\"$work/out\"" >> "$work/$study.log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2> /dev/null; do
      if [[ $tuner == asha && $(reports "$work/$study") -ge $budget ]]; then kill -INT "$pid"; break; fi
      sleep 2
    done
    wait "$pid" || true  # 130 when stopped at the budget; a failed study shows in its log and journal
    echo "seed $seed, $tuner: $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.0f", e - s}') s, $(reports "$work/$study") trial-epochs"
  done
  /usr/bin/python3 - "$work/random-$seed/journal.jsonl" "$work/asha-m${ASHA_MIN_STEPS:-1}-$seed/journal.jsonl" "$budget" "$seed" <<'PY'
import json, sys
def curve(path, budget):
    spent, best, points = 0, 0.0, []
    for line in open(path):
        e = json.loads(line)
        if e["event"] != "report": continue
        spent += 1
        if spent > budget: break
        best = max(best, e["value"])
        points.append((spent, best))
    return points
budget, seed = int(sys.argv[3]), sys.argv[4]
r, a = curve(sys.argv[1], budget), curve(sys.argv[2], budget)
target = r[-1][1]
reached = next((s for s, b in a if b >= target), None)
print(f"seed {seed}: random best {target:.4f} after {r[-1][0]} trial-epochs; asha best {a[-1][1]:.4f} after {a[-1][0]}")
print("  best by trial-epochs spent (random | asha):", " ".join(f"{s}:{rb:.3f}|{ab:.3f}" for (s, rb), (_, ab) in zip(r, a)))
print(f"  asha reached random's best after {reached} trial-epochs" + (f" ({reached / r[-1][0]:.2f} of random's)" if reached else " (not within the budget)"))
PY
done
