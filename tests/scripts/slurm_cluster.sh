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
#    run folder named after the job, and reach one process's numbers.
# If the daemons cannot start, the test fails with their logs; it never skips.
# usage: slurm_cluster.sh TRAFFICID SOURCE_DIR
set -euo pipefail
tid=$(realpath "$1") src=$(realpath "$2")
py=/usr/bin/python3
work=$(mktemp -d)
cluster="$work/cluster"
fail() { echo "FAIL: $*" >&2; exit 1; }
stop_cluster() {
  [[ -n ${SLURM_CONF:-} ]] && scancel --quiet --user=root 2> /dev/null || true
  for daemon in slurmd slurmctld munged; do
    [[ -f "$cluster/$daemon.pid" ]] && kill "$(cat "$cluster/$daemon.pid")" 2> /dev/null || true
  done
  sleep 1
  for daemon in slurmd slurmctld munged; do
    [[ -f "$cluster/$daemon.pid" ]] && kill -9 "$(cat "$cluster/$daemon.pid")" 2> /dev/null || true
  done
  pkill -9 -f "$work" 2> /dev/null || true
}
trap 'stop_cluster; [[ -n ${KEEP_WORK:-} ]] || rm -rf "$work"' EXIT
cd "$work"

# The cluster.
for tool in munged slurmctld slurmd sbatch srun scancel squeue sinfo; do
  command -v "$tool" > /dev/null || fail "$tool is not installed (scripts/setup.sh installs slurm-wlm and munge)"
done
mkdir -p "$cluster"/{state,spool,log} "$cluster/munge"
chmod 755 "$cluster/munge"
head -c 1024 /dev/urandom > "$cluster/munge.key"
chmod 600 "$cluster/munge.key"
munged -F -f --socket="$cluster/munge/socket" --key-file="$cluster/munge.key" --log-file="$cluster/log/munged.log" \
  --pid-file="$cluster/munged.pid.file" --seed-file="$cluster/munge.seed" > "$cluster/log/munged.out" 2>&1 &
echo $! > "$cluster/munged.pid"
read -r ctld_port slurmd_port < <($py -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
node=$(hostname -s)
cat > "$cluster/slurm.conf" << EOF
ClusterName=trafficid
SlurmctldHost=$node(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
AuthInfo=socket=$cluster/munge/socket
CredType=cred/munge
StateSaveLocation=$cluster/state
SlurmdSpoolDir=$cluster/spool
SlurmctldPidFile=$cluster/slurmctld.pid.file
SlurmdPidFile=$cluster/slurmd.pid.file
SlurmctldLogFile=$cluster/log/slurmctld.log
SlurmdLogFile=$cluster/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 CPUs=4 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF="$cluster/slurm.conf"
for _ in $(seq 50); do [[ -S "$cluster/munge/socket" ]] && break; sleep 0.1; done
[[ -S "$cluster/munge/socket" ]] || fail "munged did not start: $(cat "$cluster"/log/munged.*)"
slurmctld -D -c -f "$SLURM_CONF" > "$cluster/log/slurmctld.out" 2>&1 &
echo $! > "$cluster/slurmctld.pid"
sleep 1
slurmd -D -f "$SLURM_CONF" > "$cluster/log/slurmd.out" 2>&1 &
echo $! > "$cluster/slurmd.pid"
for _ in $(seq 100); do [[ $(sinfo -h -o %T 2> /dev/null) == idle ]] && break; sleep 0.2; done
[[ $(sinfo -h -o %T 2> /dev/null) == idle ]] ||
  fail "the single-node cluster did not come up: $(sinfo 2>&1; tail -n 20 "$cluster"/log/*)"

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
echo "slurm: a study over a job array, a cancelled worker resumed on resubmission, srun's tasks training together"
