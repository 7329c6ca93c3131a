#!/usr/bin/env bash
# Data-parallel training over Gloo (`trafficid run --workers N`) on the quickstart dataset:
# 1. two workers reach what one process reaches with the same global batch (every epoch's train
#    and validation loss within 1e-5, the same validation scores, test predictions within 1e-4),
#    for the MLP and the flow network (dropout off: dropout draws per worker); gbdt trains on
#    worker 0 alone, as it says; the same over TCP (MASTER_ADDR, MASTER_PORT), and an address no
#    worker reaches fails within the timeout, with the reason;
# 2. a worker killed mid-training ends worker 0 at once with an error naming the cause, not a
#    hang; worker 0 killed takes its workers with it; either way `run --resume --workers 2` goes
#    on from the last checkpoint and ends with the numbers of a run never killed; a worker killed
#    before any training is named when the first training would be posted;
# 3. a worker that stops answering (SIGSTOP) ends the run after --worker-timeout;
# 4. srun's environment: tasks 0 and 1 of a step (SLURM_PROCID, SLURM_STEP_NUM_TASKS) started by
#    hand train together in the run folder named after the job (with one all-reduce after
#    backward, TRAFFICID_BUCKET_MB=0, instead of buckets overlapping it).
# usage: data_parallel.sh TRAFFICID SOURCE_DIR
set -euo pipefail
tid=$(realpath "$1") src=$(realpath "$2")
py=/usr/bin/python3
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; pkill -9 -f "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$work"
exp="$src/experiments/quickstart.toml"
common=(--set train.threads=1 --set train.epochs=6 --set train.patience=0)
models='models={mlp={layers=[128,64],dropout=0.0},flow_net={dropout=0.0},gbdt={rounds=10}}'

# The same run's numbers, epoch by epoch and row by row.
same_numbers() {  # RUN_A RUN_B MODEL
  "$py" - "$1" "$2" "$3" << 'EOF' || fail "$1 and $2 differ for $3"
import csv, json, sys
a, b, model = sys.argv[1:]
def epochs(run):
    return [json.loads(l) for l in open(f"{run}/models/{model}/metrics.jsonl") if l.strip()]
ea, eb = epochs(a), epochs(b)
assert len(ea) == len(eb) > 0, (len(ea), len(eb))
for x, y in zip(ea, eb):
    for key in ("train_loss", "val_loss"):
        assert abs(x[key] - y[key]) < 1e-5, (model, x["epoch"], key, x[key], y[key])
    for key in ("val_accuracy", "val_macro_f1"):
        assert x[key] == y[key], (model, x["epoch"], key, x[key], y[key])
rows = lambda run: list(csv.DictReader(open(f"{run}/models/{model}/predictions.csv")))
ra, rb = rows(a), rows(b)
assert len(ra) == len(rb) > 0
for x, y in zip(ra, rb):
    assert x["predicted"] == y["predicted"] and abs(float(x["confidence"]) - float(y["confidence"])) < 1e-4, (x, y)
EOF
}

# 1. One process against two workers, the same global batch (16).
"$tid" run "$exp" --set "$models" "${common[@]}" --run-dir one > one.log 2>&1 || fail "one process: $(tail -5 one.log)"
"$tid" run "$exp" --set "$models" "${common[@]}" --run-dir two --workers 2 > two.log 2>&1 ||
  fail "two workers: $(tail -5 two.log)"
for m in mlp flow_net gbdt; do same_numbers one two "$m"; done
grep -q "model mlp: data-parallel over 2 workers, 8 rows of each batch of 16 per worker" two.log || fail "$(cat two.log)"
grep -q "model gbdt: trains on worker 0 alone" two.log || fail "gbdt: $(cat two.log)"
"$py" -c "
import json
e = [json.loads(l) for l in open('two/models/flow_net/metrics.jsonl')]
assert all(x['workers'] == 2 and 0 < x['allreduce_fraction'] < 1 for x in e), e[-1]
" || fail "the epochs do not tell the workers and the all-reduce share"
[[ ! -e two/workers ]] || [[ -z $(ls two/workers) ]] || fail "a finished session was left: $(ls -R two/workers)"
# The same over TCP: MASTER_ADDR and MASTER_PORT name worker 0's store, as for PyTorch; the
# gradients in buckets of 50 KB (a dozen all-reduces a step, overlapping backward).
port=$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MASTER_ADDR=127.0.0.1 MASTER_PORT=$port TRAFFICID_BUCKET_MB=0.05 "$tid" run "$exp" --set "$models" "${common[@]}" --run-dir tcp --workers 2 \
  > tcp.log 2>&1 || fail "two workers over TCP: $(tail -5 tcp.log)"
for m in mlp flow_net; do same_numbers one tcp "$m"; done
status=0
MASTER_ADDR=192.0.2.1 MASTER_PORT=$port timeout 60 "$tid" run "$exp" --set "$models" "${common[@]}" --run-dir unreachable \
  --workers 2 --worker-timeout 3 > unreachable.log 2>&1 || status=$?
((status == 1)) && grep -q "could not meet the others through MASTER_ADDR=192.0.2.1" unreachable.log ||
  fail "a store nobody serves (status $status): $(tail -5 unreachable.log)"

# 2. A worker killed mid-training: worker 0 fails at once, with the reason; --resume goes on.
long=(--set train.threads=1 --set train.epochs=40 --set train.patience=0 --set 'models={flow_net={dropout=0.0}}')
"$tid" run "$exp" "${long[@]}" --run-dir whole --workers 2 > whole.log 2>&1 || fail "whole: $(tail -5 whole.log)"
# start_run DIR EPOCHS [ARGS...]: the long training into DIR on two workers, in the background
# ($run), returning once it has logged EPOCHS epochs (0: at once).
start_run() {
  local dir=$1 epochs=$2
  shift 2
  "$tid" run "$exp" "${long[@]}" --run-dir "$dir" --workers 2 "$@" > "$dir.log" 2>&1 &
  run=$!
  pids+=("$run")
  ((epochs == 0)) && return 0
  for _ in $(seq 600); do
    [[ -f $dir/models/flow_net/metrics.jsonl ]] && (($(wc -l < "$dir/models/flow_net/metrics.jsonl") >= epochs)) && return 0
    sleep 0.1
  done
  fail "$dir: no epoch $epochs within 60 s: $(tail -5 "$dir.log")"
}
# ends_failing DIR SECONDS: worker 0 ($run) ends with status 1 within SECONDS.
ends_failing() {
  local started status=0
  started=$(date +%s)
  wait "$run" || status=$?
  ((status == 1)) || fail "$1: worker 0 ended with status $status: $(tail -5 "$1.log")"
  (($(date +%s) - started < $2)) || fail "$1: worker 0 took $(($(date +%s) - started)) s to notice (at most $2)"
}
start_run killed 3
worker=$(pgrep -f "worker $work/killed/workers/" | head -1)
[[ -n $worker ]] || fail "no worker process of the run: $(cat killed.log)"
kill -9 "$worker"
ends_failing killed 30
grep -q "another worker died or stopped answering" killed.log || fail "no reason given: $(tail -5 killed.log)"
grep -q "run --resume" killed.log || fail "no way on given: $(tail -5 killed.log)"
done_epochs=$(wc -l < killed/models/flow_net/metrics.jsonl)
((done_epochs < 40)) || fail "the kill came after the training"
"$tid" run --resume killed --workers 2 > resumed.log 2>&1 || fail "resume: $(tail -5 resumed.log)"
grep -q "resuming after epoch" resumed.log || fail "the resume started over: $(head -20 resumed.log)"
same_numbers whole killed flow_net

# Worker 0 killed: its workers end with it (none is left behind), and --resume goes on.
start_run leader 3
{ kill -9 "$run" && wait "$run"; } 2> /dev/null || true
for _ in $(seq 100); do pgrep -f "worker $work/leader/workers/" > /dev/null || break; sleep 0.1; done
! pgrep -f "worker $work/leader/workers/" > /dev/null || fail "a worker outlived worker 0 by 10 s"
"$tid" run --resume leader --workers 2 > leader-resumed.log 2>&1 || fail "resume after worker 0's kill: $(tail -5 leader-resumed.log)"
same_numbers whole leader flow_net

# A worker killed before any training began: worker 0 says so when it would post the first
# training, instead of waiting for it until the timeout.
start_run early 0
for _ in $(seq 600); do pgrep -f "worker $work/early/workers/" > /dev/null && break; sleep 0.01; done
pkill -9 -f "worker $work/early/workers/" || fail "no worker process of the early run: $(cat early.log)"
ends_failing early 30
grep -q "worker 1 of 2 ended (signal 9) before the training of flow_net began" early.log ||
  fail "a worker dead before training: $(tail -5 early.log)"

# 3. A worker that hangs: worker 0 gives up after --worker-timeout.
start_run hung 1 --worker-timeout 4
worker=$(pgrep -f "worker $work/hung/workers/" | head -1)
[[ -n $worker ]] || fail "no worker process of the hung run"
kill -STOP "$worker"
ends_failing hung 40
kill -9 "$worker" 2>/dev/null || true

# 4. srun's tasks: each process is told its rank by Slurm's variables; the run folder is the job's.
for rank in 1 0; do
  SLURM_JOB_ID=4242 SLURM_STEP_ID=0 SLURM_PROCID=$rank SLURM_STEP_NUM_TASKS=2 TRAFFICID_BUCKET_MB=0 \
    "$tid" run "$exp" --set "$models" "${common[@]}" --set "experiment.output_dir=\"$work/out\"" > "srun-$rank.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]: -2}"; do wait "$p" || fail "an srun task failed: $(tail -5 srun-*.log)"; done
[[ -f out/quickstart-slurm-4242.0/report.html ]] || fail "no run folder named after the job: $(ls out)"
for m in mlp flow_net; do same_numbers one out/quickstart-slurm-4242.0 "$m"; done
grep -q "data-parallel over 2 workers" srun-0.log || fail "task 0 trained alone: $(cat srun-0.log)"
echo "data-parallel: 2 workers equal 1 process, a killed worker fails fast and --resume goes on, a hung one times out, srun's tasks train together"
