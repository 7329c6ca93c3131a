#!/usr/bin/env bash
# Run folders hold one run, of one dataset, written by one process: names that would escape the
# output folder or inject into a Slurm script are refused at their line; two processes never
# share a run folder (a second writer, or a --resume of a live run, is refused; runs started in
# the same second get folders of their own); `run --resume` refuses when an input changed since
# the run began, naming it; a diverging model fails the run with its reason and writes no NaN.
# usage: run_folders.sh TRAFFICID SOURCE_DIR
set -euo pipefail
tid=$(realpath "$1") src=$(realpath "$2")
py=/usr/bin/python3
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$work"
exp="$src/experiments/quickstart.toml"

# 1. Names: an experiment or variant name is a folder and a Slurm job name.
bad_name() {  # FILE EXPECTED-MESSAGE: validate fails (status 2) with the message at the name's line
  local status=0
  "$tid" validate "$1" > /dev/null 2> "$1.err" || status=$?
  [[ $status -eq 2 ]] || fail "$1 was accepted (status $status)"
  grep -qF -- "$2" "$1.err" || fail "$1: $(cat "$1.err")"
}
printf '[experiment]\nname = "../../escape"\n[capture]\nsources = ["synth"]\n' > up.toml
bad_name up.toml "up.toml:2:8: experiment.name: the experiment's name '../../escape' must start with a letter or a digit"
printf '[experiment]\nname = "a/../../b"\n[capture]\nsources = ["synth"]\n' > slash.toml
bad_name slash.toml "slash.toml:2:8: experiment.name: the experiment's name 'a/../../b' holds '/'"
printf '[experiment]\nname = "x\\nrm -rf ~"\n[capture]\nsources = ["synth"]\n' > newline.toml
bad_name newline.toml "newline.toml:2:8: experiment.name: the experiment's name"
grep -qF "holds the byte 0x0a" newline.toml.err || fail "newline: $(cat newline.toml.err)"
printf '[capture]\nsources = ["synth"]\n[variants."../v"]\n"capture.synth.seed" = 2\n' > variant.toml
bad_name variant.toml "variant.toml:3:1: variants.../v: a variant's name '../v' must start with a letter or a digit"
printf '[capture]\nsources = ["synth"]\n' > "with space.toml"
bad_name "with space.toml" "no experiment.name, and the file's name 'with space' holds ' '"
"$tid" validate "$exp" --set 'experiment.name="ok-name_1.2"' > /dev/null || fail "a good name was refused"
# The Slurm script: a study folder whose path would break an #SBATCH line is refused.
status=0
{ cat "$exp"; printf '\n[tune]\ntrials = 2\n[tune.space]\n"train.lr" = { choice = [0.001, 0.01] }\n'; } > tune.toml
"$tid" tune tune.toml --set 'models={mlp={}}' --study-dir "$work/my study" --emit-slurm job.sh > /dev/null 2> slurm.err || status=$?
[[ $status -ne 0 && ! -e job.sh ]] || fail "a study path with a space went into #SBATCH lines"
grep -qF "the path holds a character that a Slurm #SBATCH line cannot carry" slurm.err || fail "slurm: $(cat slurm.err)"

# 2. One process per run folder.
slow=(--set train.epochs=400 --set train.patience=0 --set 'models={mlp={layers=[256,128]}}' --set train.threads=1)
"$tid" run "$exp" "${slow[@]}" --run-dir "$work/busy" > busy.log 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do [[ -f busy/models/mlp/metrics.jsonl ]] && break; sleep 0.05; done
[[ -f busy/models/mlp/metrics.jsonl ]] || { cat busy.log; fail "the first run did not start training"; }
for attempt in "run $exp --run-dir $work/busy" "run --resume $work/busy"; do
  status=0
  # shellcheck disable=SC2086
  "$tid" $attempt "${slow[@]}" > second.log 2>&1 || status=$?
  [[ $status -eq 1 ]] || { cat second.log; fail "'$attempt' ran beside a live run (status $status)"; }
  grep -qF "another trafficid process is running in this folder" second.log || fail "'$attempt': $(cat second.log)"
done
kill -9 "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
# The lock went with the killed process: the folder can be taken again (by --resume).
$py -c "import fcntl,sys; fcntl.flock(open(sys.argv[1], 'a'), fcntl.LOCK_EX | fcntl.LOCK_NB)" busy/run.lock \
  || fail "the run folder's lock outlived the killed process"

# Four runs started together with default folder names: four folders, four finished runs.
printf '[experiment]\nname = "same"\noutput_dir = "%s/out"\n[capture]\nsources = ["synth"]\n[capture.synth]\nflows_per_app = 2\n' "$work" > same.toml
for i in 1 2 3 4; do "$tid" -q run same.toml > "same-$i.log" 2>&1 & pids+=($!); done
for p in "${pids[@]:1}"; do wait "$p" || fail "a concurrent run failed: $(cat same-*.log)"; done
[[ $(ls -d out/same-* | wc -l) -eq 4 ]] || fail "four runs, folders: $(ls out)"
for d in out/same-*; do
  $py -c "import json,sys; assert json.load(open(sys.argv[1]))['status'] == 'done'" "$d/run.json" || fail "$d: not done"
done

# 3. --resume after an input changed: refused, naming the file; nothing retrained or mixed.
"$tid" synth -o "$work/in.pcap" -p seed=5 -p flows_per_app=6 > /dev/null 2>&1
inputs=(--set 'capture.sources=["pcap"]' --set "capture.pcap={paths=[\"$work/in.pcap\"]}" --set evaluate.sources=[]
        --set 'models={gbdt={rounds=20}}' --set dataset.directory=\""$work/datasets"\")
"$tid" run "$exp" "${inputs[@]}" --run-dir "$work/changed" > changed.log 2>&1 || { cat changed.log; fail "run on in.pcap"; }
[[ -s changed/inputs.json ]] || fail "the run recorded no inputs.json"
cp changed/models/gbdt/metrics.json before.json
"$tid" run --resume "$work/changed" > same-inputs.log 2>&1 || { cat same-inputs.log; fail "--resume with the same inputs"; }
# A run begun when inputs.json named the digest "sha256" resumes on the same inputs too.
sed -i 's/"content_hash":/"sha256":/' changed/inputs.json
grep -q '"sha256":' changed/inputs.json || fail "inputs.json has no content hash to rename"
"$tid" run --resume "$work/changed" > older-inputs.log 2>&1 || { cat older-inputs.log; fail "--resume of an older inputs.json"; }
"$tid" synth -o "$work/in.pcap" -p seed=6 -p flows_per_app=6 > /dev/null 2>&1
status=0
"$tid" run --resume "$work/changed" > resume-changed.log 2>&1 || status=$?
[[ $status -eq 1 ]] || { cat resume-changed.log; fail "--resume after the input changed ran (status $status)"; }
grep -qF "not resumed: $work/in.pcap changed (content hash" resume-changed.log || fail "the refusal does not name the file: $(cat resume-changed.log)"
cmp -s before.json changed/models/gbdt/metrics.json || fail "the refused resume touched the finished model"

# 4. A diverging model (SGD, momentum 0.9, lr 10 on the Deep Packet vectors) fails the run with its
#    reason; no NaN and no null reaches metrics.jsonl or run.json.
status=0
"$tid" run "$exp" --set 'models={mlp={layers=[16]}}' --set train.lr=10 --set train.optimizer=\"sgd\" --set train.momentum=0.9 \
  --set features.extractor=\"deep_packet\" --set evaluate.sources=[] --run-dir "$work/nan" > nan.log 2>&1 || status=$?
[[ $status -eq 1 ]] || { cat nan.log; fail "a diverging model ended with status $status"; }
grep -qE "model mlp: training diverged at epoch [0-9]+ \(training loss is -?nan.*lower train.lr \(now 10\)" nan.log || fail "reason: $(cat nan.log)"
$py - nan <<'PY' || fail "NaN or null written"
import json, os, sys
def strict(word): raise ValueError(f"{word} written")
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(root, f)
        if f.endswith(".jsonl"):
            for line in open(p): assert "null" not in line, p; json.loads(line, parse_constant=strict)
        elif f in ("run.json", "state.json", "metrics.json"):
            json.load(open(p), parse_constant=strict)
assert json.load(open(f"{sys.argv[1]}/run.json"))["status"] == "failed"
PY
echo "run_folders: names, one writer per folder, concurrent default names, changed inputs on resume, divergence checked"
