#!/usr/bin/env bash
# trafficid on a real Slurm: Debian's slurm-wlm 22.05 and munge, started by this test as its own
# processes (munged, slurmctld, slurmd; this host the one node, proctrack/linuxproc, task/none,
# no cgroups, free ports, everything under a temporary folder) and stopped at the end whatever
# happened. On it:
# 1. `trafficid tune --emit-slurm job.sh --workers 3` and `sbatch --wait job.sh`: every trial
#    of the study runs once, the journal is whole, the report is written;
# 2. a worker job cancelled (scancel) in the middle of a trial: the study completes when the
#    array is submitted again, the interrupted trial resumed from its checkpoint, no trial run
#    twice to its end;
# 3. `srun -n 2 trafficid run EXP`: the two tasks train the LibTorch models data-parallel in the
#    run folder named after the job, and reach one process's numbers;
# 4. `trafficid prepro --emit-slurm job.sh --parts 3` on the shared captures: the array builds
#    the parts (one built before is kept) and the last merges them into the dataset one process
#    builds (rows, features, flow keys, manifest); --merge names the parts that are missing.
# If the daemons cannot start, the test fails with their logs; it never skips.
# usage: slurm_cluster.sh TRAFFICID SOURCE_DIR DATA_DIR
set -euo pipefail
tid=$(realpath "$1") src=$(realpath "$2") data=$3
py=/usr/bin/python3
work=$(mktemp -d)
cluster="$work/cluster"
fail() { echo "FAIL: $*" >&2; exit 1; }
source "$(dirname "$(realpath "$0")")/slurm_local.sh"
trap 'stop_slurm_cluster "$cluster"; pkill -9 -f "$work" 2> /dev/null || true; [[ -n ${KEEP_WORK:-} ]] || rm -rf "$work"' EXIT
cd "$work"
start_slurm_cluster "$cluster" || fail "the single-node Slurm cluster could not start (above)"

# A small study: the quickstart's synthetic traffic, Deep Packet vectors, an MLP on one thread.
base() {  # EPOCHS TRIALS
  cat "$src/experiments/quickstart.toml"
  printf '\n[tune]\ntuner = "random"\ntrials = %s\n[tune.space]\n"train.lr" = { loguniform = [1e-4, 3e-2] }\n' "$2"
}
settings=(--set 'features.extractor="deep_packet"' --set 'models={mlp={layers=[256,128]}}' --set train.threads=1
          --set train.patience=0)
journal_check() {  # STUDY_DIR TRIALS: every trial ended done once; prints the trials started more than once
  $py - "$1/journal.jsonl" "$2" << 'EOF'
import collections, json, sys
events = [json.loads(l) for l in open(sys.argv[1])]  # a torn line would fail here
trials = int(sys.argv[2])
ends = collections.Counter(e["trial"] for e in events if e["event"] == "end")
assert sorted(ends) == list(range(1, trials + 1)) and set(ends.values()) == {1}, f"trials ended: {ends}"
assert all(e["status"] == "done" for e in events if e["event"] == "end"), [e for e in events if e["event"] == "end"]
starts = collections.Counter(e["trial"] for e in events if e["event"] == "start")
print(" ".join(str(t) for t, n in starts.items() if n > 1))
print(len({e["worker"] for e in events if e["event"] == "start"}))
EOF
}

# 1. A study over a job array of 3 workers.
base 3 6 > study.toml
"$tid" tune study.toml "${settings[@]}" --set train.epochs=3 --study-dir "$work/study" --emit-slurm job.sh --workers 3 \
  2> emit.log || fail "emit-slurm: $(cat emit.log)"
sbatch --wait job.sh > sbatch.out 2>&1 || fail "sbatch --wait: $(cat sbatch.out; tail -n 5 study/slurm-*.log)"
{ read -r _; read -r workers; } < <(journal_check study 6) || fail "the study on Slurm: $(tail -n 5 study/slurm-*.log)"
((workers >= 2)) || fail "one array task ran every trial ($workers worker)"
[[ -s study/report.html && -s study/best.toml ]] || fail "no report: $(ls study)"

# 2. A worker job cancelled in the middle of a trial; the array submitted again completes the study.
base 40 4 > long.toml
"$tid" tune long.toml "${settings[@]}" --set train.epochs=40 --study-dir "$work/long" --emit-slurm long.sh --workers 2 \
  2> emit.log || fail "emit-slurm: $(cat emit.log)"
job=$(sbatch --parsable long.sh) || fail "sbatch long.sh"
running_trial() {  # EXCEPT: a trial past its second epoch and not ended (not EXCEPT), and its worker's pid
  for _ in $(seq 600); do
    $py - long/journal.jsonl "$1" << 'EOF' 2> /dev/null && return 0
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
ended = {e["trial"] for e in events if e["event"] == "end"}
reports, worker = {}, {}
for e in events:
    if e["event"] == "report": reports[e["trial"]] = reports.get(e["trial"], 0) + 1
    if e["event"] == "start": worker[e["trial"]] = e["worker"].rsplit(":", 1)[1]
for t, w in worker.items():
    if t not in ended and str(t) != sys.argv[2] and reports.get(t, 0) >= 2:
        print(t, w); sys.exit(0)
sys.exit(1)
EOF
    sleep 0.1
  done
  fail "no trial got to its second epoch: $(tail -n 5 long/slurm-*.log)"
}
# One task of the array cancelled: the other takes its trial on.
read -r trial pid < <(running_trial none)
victim_env=$(tr '\0' '\n' < "/proc/$pid/environ")
victim_job=$(sed -n 's/^SLURM_ARRAY_JOB_ID=//p' <<< "$victim_env")_$(sed -n 's/^SLURM_ARRAY_TASK_ID=//p' <<< "$victim_env")
[[ $victim_job == [0-9]*_[0-9]* ]] || fail "worker $pid is not a task of a Slurm job array"
scancel "$victim_job"
# Then the whole array, in the middle of another trial: the study goes on when it is submitted again.
read -r second _ < <(running_trial "$trial")
scancel "$job"
for _ in $(seq 1200); do [[ -z $(squeue -h -j "$job" 2> /dev/null) ]] && break; sleep 0.1; done
before=$(wc -l < long/journal.jsonl)
sbatch --wait long.sh > sbatch2.out 2>&1 || fail "the array submitted again: $(cat sbatch2.out; tail -n 5 long/slurm-*.log)"
{ read -r twice; read -r _; } < <(journal_check long 4) || fail "the study after scancel"
for t in "$trial" "$second"; do
  [[ " $twice " == *" $t "* ]] || fail "trial $t, cancelled, was not started again (started more than once: '$twice')"
  grep -q "resuming after epoch" "long/trials/$(printf %04d "$t")/trial.log" ||
    fail "trial $t started over instead of resuming: $(head -n 20 "long/trials/$(printf %04d "$t")/trial.log")"
done
tail -n +"$((before + 1))" long/journal.jsonl | grep -q '"event":"start"' || fail "the resubmitted array had nothing to do"
[[ -s long/report.html ]] || fail "no report after the resubmission"

# 3. srun's two tasks train together, against one process.
one=(--set 'models={mlp={layers=[128,64],dropout=0.0}}' --set train.threads=1 --set train.epochs=4
     --set "experiment.output_dir=\"$work/runs\"")
"$tid" run "$src/experiments/quickstart.toml" "${one[@]}" --run-dir single > single.log 2>&1 || fail "one process: $(tail -n 5 single.log)"
srun -n 2 --cpus-per-task=1 "$tid" run "$src/experiments/quickstart.toml" "${one[@]}" > srun.log 2>&1 ||
  fail "srun -n 2: $(tail -n 20 srun.log)"
run=$(ls -d runs/quickstart-slurm-* 2> /dev/null | head -1)
[[ -n $run && -s $run/report.html ]] || fail "no run folder named after the job: $(ls runs; tail -n 5 srun.log)"
grep -q "model mlp: data-parallel over 2 workers" srun.log || fail "srun's tasks did not train together: $(cat srun.log)"
$py - single "$run" << 'EOF' || fail "srun's two tasks differ from one process"
import json, sys
a, b = ([json.loads(l) for l in open(f"{r}/models/mlp/metrics.jsonl")] for r in sys.argv[1:])
assert len(a) == len(b) == 4
for x, y in zip(a, b):
    assert abs(x["train_loss"] - y["train_loss"]) < 1e-5 and x["val_macro_f1"] == y["val_macro_f1"], (x, y)
    assert y["workers"] == 2
EOF
# 4. The dataset of the shared captures built by a job array of 3 parts (the last merges) equals
#    the dataset one process builds: the same rows (input, packet, flow, class, split) with the
#    same feature bytes, the same flow keys, the same manifest but for its list of shards.
[[ -d "$data/captures" ]] || fail "$data/captures is missing (TRAFFICID_DATA_DIR)"
app=("$src/experiments/deep_packet_app.toml" --set "capture.sources=[\"pcap:$data/captures\"]")
"$tid" prepro "${app[@]}" --set "dataset.directory=\"$work/whole\"" --run-dir prepro-one > prepro-one.log 2>&1 ||
  fail "prepro: $(tail -n 5 prepro-one.log)"
parted=(--set "dataset.directory=\"$work/parted\"")
status=0
"$tid" prepro "${app[@]}" "${parted[@]}" --merge > merge-early.log 2>&1 || status=$?
((status == 1)) && grep -q "no parts of this dataset" merge-early.log || fail "a merge of no parts: $(cat merge-early.log)"
"$tid" prepro "${app[@]}" "${parted[@]}" --part 2/3 > part2.log 2>&1 || fail "part 2/3: $(tail -n 5 part2.log)"
status=0
"$tid" prepro "${app[@]}" "${parted[@]}" --merge > merge-early.log 2>&1 || status=$?
((status == 1)) && grep -q "parts 1, 3 of 3 are not built yet" merge-early.log || fail "a merge of 1 of 3 parts: $(cat merge-early.log)"
"$tid" prepro "${app[@]}" "${parted[@]}" --emit-slurm prepro.sh --parts 3 2> emit.log || fail "emit-slurm: $(cat emit.log)"
grep -q '^#SBATCH --array=1-3$' prepro.sh || fail "the prepro array: $(cat prepro.sh)"
sbatch --wait prepro.sh > sbatch3.out 2>&1 || fail "the prepro array: $(cat sbatch3.out; cat "$work"/parted/*.parts/slurm-*.log)"
grep -q "part 2 of 3 is built already" "$work"/parted/*.parts/slurm-*_2.log ||
  fail "part 2, built before the array, was built again: $(cat "$work"/parted/*.parts/slurm-*_2.log)"
whole=$(ls -d "$work"/whole/deep_packet_app-*[0-9a-f] | head -1) parted_ds=$(ls -d "$work"/parted/deep_packet_app-*[0-9a-f] | head -1)
[[ -f $parted_ds/manifest.json ]] || fail "the array merged nothing: $(ls -R "$work/parted")"
! ls -d "$parted_ds".parts/part-* 2> /dev/null || fail "the parts were left after the merge"
cmp "$whole/flow_keys.npy" "$parted_ds/flow_keys.npy" || fail "the flow keys differ"
$py - "$whole" "$parted_ds" "$src/python" << 'EOF' || fail "the merged dataset differs from one process's"
import hashlib, json, sys
import numpy as np
sys.path.insert(0, sys.argv[3])
import trafficid_dataset as td
def rows(d):
    m = td.manifest(d)
    out = []
    for s in m["shards"]:
        b = f"{d}/{s['name']}"
        cols = [np.load(f"{b}.{c}.npy") for c in ("file", "packet", "flow", "y", "split")]
        raw, length = np.load(f"{b}.bytes.npy"), np.load(f"{b}.len.npy").astype(np.int64)
        offset = np.concatenate([[0], np.cumsum(length)])
        for i in range(len(cols[0])):
            out.append(tuple(int(c[i]) for c in cols) + (hashlib.md5(raw[offset[i]:offset[i + 1]].tobytes()).hexdigest(),))
    return sorted(out), m
a, ma = rows(sys.argv[1])
b, mb = rows(sys.argv[2])
assert len(a) == len(b) > 60000 and a == b, (len(a), len(b))
for key in set(ma) | set(mb):
    if key not in ("shards", "statistics"):
        assert ma.get(key) == mb.get(key), key
for key in ("packets_read", "packets_in_flows", "rows", "flows"):
    assert ma["statistics"][key] == mb["statistics"][key], key
assert mb["statistics"]["parts"] == 3
EOF

echo "slurm: a study over a job array, a cancelled worker resumed on resubmission, srun's tasks training together, a dataset built by a job array of parts"
