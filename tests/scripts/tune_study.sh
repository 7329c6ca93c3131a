#!/usr/bin/env bash
# `trafficid tune` on the quickstart's synthetic traffic with a small MLP: the space checked
# against the plugins' schemas before anything runs; an ASHA study killed with kill -9 and run
# again reaches the trials of an uninterrupted one (same proposals, values, decisions) and leaves
# no trial process behind; two workers share one study and no trial runs twice; a trial that
# crashes is retried, then counted failed; the median pruner stops exactly the trials below the
# median; the Slurm script; the study report in headless Chromium and best.toml that runs.
# usage: tune_study.sh TRAFFICID SOURCE_DIR
set -euo pipefail
tid=$(realpath "$1") src=$(realpath "$2")
py=/usr/bin/python3
work=$(mktemp -d)
trap 'pkill -9 -f "trial-of $work" 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$work"

# The quickstart's synthetic capture and labels, Deep Packet vectors; one small MLP trained on one thread.
cat > base.toml <<'TOML'
[experiment]
name = "quickstart"
description = "Seeded synthetic traffic of ten applications, read, labelled by nDPI and put in classes"
seed = 7

[capture]
sources = ["synth"]

[capture.synth]
flows_per_app = 6
apps = ["youtube", "netflix", "whatsapp", "zoom", "wikipedia", "dns", "ssh", "bittorrent", "stun", "ntp"]

[label]
labeler = "ndpi"
class_from = "map"
unmatched = "drop"

[label.classes]
Streaming = { patterns = ["TLS.YouTube", "TLS.NetFlix"] }
Chat = { apps = ["WhatsApp"] }
VideoConference = { apps = ["Zoom"] }
Web = { patterns = ["HTTP*"] }
RemoteAccess = { masters = ["SSH"] }
P2P = { apps = ["BitTorrent"] }
Infrastructure = { masters = ["DNS", "NTP", "STUN"] }

[features]
extractor = "deep_packet"

[features.deep_packet]
length = 1500
masking = "paper"

[dataset]
split = "flow"
fractions = [0.7, 0.15, 0.15]

[train]
optimizer = "adam"
lr = 0.001
batch_size = 64
epochs = 4
threads = 1
patience = 0


[models.mlp]
layers = [128, 64]
TOML
study() {  # FILE TUNER TRIALS [EXTRA TUNE LINES]: base.toml with a [tune] section
  { cat base.toml; printf '\n[tune]\ntuner = "%s"\ntrials = %s\n%s\n' "$2" "$3" "${4:-}"
    printf '[tune.space]\n"train.lr" = { loguniform = [1e-4, 3e-2] }\n"models.mlp.layers" = { choice = [[16], [64, 32]] }\n'
  } > "$1"
}
journal_rows() {  # STUDY_DIR: one line per trial: id, assignment, status, value, reports
  $py - "$1/journal.jsonl" <<'PY'
import json, sys
trials = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    t = trials.setdefault(e.get("trial"), {"reports": {}})
    if e["event"] == "propose": t["assignment"] = e["assignment"]
    if e["event"] == "report": t["reports"][e["step"]] = (e["value"], e["decision"])
    if e["event"] == "end": t["status"], t["value"] = e["status"], e["value"]
for k in sorted(k for k in trials if k is not None):
    t = trials[k]
    print(k, json.dumps(t.get("assignment"), sort_keys=True), t.get("status"), t.get("value"), sorted(t["reports"].items()))
PY
}

# 1. The space is checked against the schemas first: each mistake at its line.
study bad.toml random 4 ''
printf '"train.batch_size" = { choice = [32, "big"] }\n"models.mlp.dropuot" = { uniform = [0.0, 0.5] }\n"train.momentum" = { unifrom = [0.1, 0.9] }\n' >> bad.toml
set +e
"$tid" tune bad.toml 2> bad.err; status=$?
set -e
n=$(grep -n '"train.batch_size"' bad.toml | cut -d: -f1)
[[ $status -eq 2 ]] || fail "a bad space ran (status $status)"
grep -q "^bad.toml:$n:22: tune.space.train.batch_size: with train.batch_size = \"big\": train.batch_size: expected an integer" bad.err \
  || fail "bad choice: $(cat bad.err)"
grep -q "^bad.toml:$((n + 1)):24: tune.space.models.mlp.dropuot: with models.mlp.dropuot = 0.0: models.mlp.dropuot: unknown key (did you mean 'dropout'?)" bad.err \
  || fail "unknown key: $(cat bad.err)"
grep -q "^bad.toml:$((n + 2)):22: tune.space.train.momentum.unifrom: unknown distribution (did you mean 'uniform'?)" bad.err \
  || fail "unknown distribution: $(cat bad.err)"
[[ ! -e runs/quickstart-study ]] || fail "a study folder was made for an invalid experiment"

# 2. ASHA, uninterrupted, one trial at a time (so its decisions do not depend on timing).
study asha.toml asha 8 $'[tune.asha]\neta = 2'
"$tid" -q tune asha.toml --study-dir whole > whole.log 2>&1 || { cat whole.log; fail "the uninterrupted study"; }
journal_rows whole > whole.rows
[[ $(grep -c " done \| pruned " whole.rows) -eq 8 ]] || fail "uninterrupted: $(cat whole.rows)"
grep -q " pruned " whole.rows || fail "ASHA stopped no trial: $(cat whole.rows)"

# 3. The same study killed with kill -9 twice while trials run, then run to the end.
for round in 1 2; do
  "$tid" -q tune asha.toml --study-dir killed > "killed-$round.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do  # until the round's second trial has reported an epoch
    [[ $(grep -c '"event": *"report"' killed/journal.jsonl 2>/dev/null || true) -ge $((round * 7)) ]] && break
    sleep 0.05
  done
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  sleep 0.3
  if pgrep -f "trial-of $work/killed" > /dev/null; then fail "trial processes outlived their killed study"; fi
done
"$tid" -q tune asha.toml --study-dir killed > killed-3.log 2>&1 || { cat killed-3.log; fail "resuming the killed study"; }
journal_rows killed > killed.rows
diff whole.rows killed.rows > rows.diff || { cat rows.diff; fail "the resumed study reached other trials than the uninterrupted one"; }
[[ $(grep -c '"event":"start"' killed/journal.jsonl) -gt 8 ]] || fail "the kills interrupted no trial (nothing was resumed)"
[[ -s killed/report.html && -s killed/best.toml ]] || fail "no study report or best.toml"

# 4. Two workers on one study (as a cluster's job array would): every trial runs once.
study shared.toml random 6 ''
"$tid" -q tune shared.toml --study-dir shared > w1.log 2>&1 &
p1=$!
"$tid" -q tune shared.toml --study-dir shared > w2.log 2>&1 &
p2=$!
wait $p1 || { cat w1.log; fail "worker 1"; }
wait $p2 || { cat w2.log; fail "worker 2"; }
$py - shared/journal.jsonl <<'PY' || fail "two workers"
import collections, json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
starts = collections.Counter(e["trial"] for e in events if e["event"] == "start")
proposals = collections.Counter(e["trial"] for e in events if e["event"] == "propose")
ends = [e for e in events if e["event"] == "end"]
assert sorted(proposals) == list(range(1, 7)) and set(proposals.values()) == {1}, proposals
assert set(starts.values()) == {1}, f"a trial ran twice: {starts}"
assert len(ends) == 6 and all(e["status"] == "done" for e in ends), ends
workers = {e["worker"] for e in events if e["event"] == "start"}
assert len(workers) == 2, f"one worker did everything: {workers}"
PY

# 5. A trial that fails at run time (LibTorch without CUDA) is retried once, then counted failed.
{ cat base.toml; printf '\n[tune]\ntuner = "grid"\ntrials = 10\nretries = 1\n[tune.space]\n"train.device" = { choice = ["cpu", "cuda"] }\n'; } > crash.toml
"$tid" -q tune crash.toml --study-dir crash > crash.log 2>&1 || { cat crash.log; fail "a failing trial took the study down"; }
$py - crash/journal.jsonl <<'PY' || fail "retry"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
ends = {}
for e in events:
    if e["event"] == "end": ends.setdefault(e["trial"], []).append(e)
assert [e["status"] for e in ends[1]] == ["done"], ends[1]
assert [e["status"] for e in ends[2]] == ["failed", "failed"], ends[2]
assert "cuda" in ends[2][-1]["error"].lower(), ends[2][-1]["error"]
PY
grep -q "<td>2</td><td>failed</td>" crash/report.html || fail "the report does not list the failed trial"

# 5b. A trial that diverges (SGD, momentum 0.9, batches of 8, lr 10: NaN) fails once, with its reason, and is not
#     retried (its seed would diverge again); no NaN or null reaches the journal, which replays; a
#     journal of an older trafficid holding a null report still replays.
{ sed 's/optimizer = "adam"/optimizer = "sgd"\nmomentum = 0.9/; s/batch_size = 64/batch_size = 8/' base.toml
  printf '\n[tune]\ntuner = "grid"\ntrials = 2\nretries = 1\n[tune.space]\n"train.lr" = { choice = [0.001, 10.0] }\n'; } > nan.toml
"$tid" -q tune nan.toml --study-dir nan > nan.log 2>&1 || { cat nan.log; fail "a diverging trial took the study down"; }
$py - nan/journal.jsonl <<'PY' || fail "diverged trial"
import json, sys
def no_nan(word): raise ValueError(f"{word} in the journal")
events = [json.loads(l, parse_constant=no_nan) for l in open(sys.argv[1])]
def no_null(v):
    assert v is not None, "null in the journal"
    for x in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else []): no_null(x)
for e in events: no_null(e)
ends = {}
for e in events:
    if e["event"] == "end": ends.setdefault(e["trial"], []).append(e)
assert [e["status"] for e in ends[1]] == ["done"], ends[1]
assert [e["status"] for e in ends[2]] == ["failed"], ends[2]
assert "diverged at epoch" in ends[2][0]["error"] and "lower train.lr" in ends[2][0]["error"], ends[2][0]
assert ends[2][0]["retry"] is False
PY
printf '{"event":"report","trial":2,"step":1,"value":null,"decision":"continue","t":0}\n' >> nan/journal.jsonl
"$tid" -q tune nan.toml --study-dir nan > nan2.log 2>&1 || { cat nan2.log; fail "a journal with a null report does not replay"; }
grep -q "<td>2</td><td>failed</td>" nan/report.html || fail "the report does not list the diverged trial"

# 6. The median pruner (with random search): a trial stops exactly when it is below the median of
#    the other trials' values at that epoch (after the warm-up, with enough others).
study median.toml random 8 $'pruner = "median"\npruner_warmup = 1\npruner_min_trials = 2'
"$tid" -q tune median.toml --study-dir median > median.log 2>&1 || { cat median.log; fail "median study"; }
$py - median/journal.jsonl <<'PY' || fail "median pruner"
import json, statistics, sys
events = [json.loads(l) for l in open(sys.argv[1])]
seen = {}  # step -> values reported so far by each trial
stopped = 0
for e in events:
    if e["event"] != "report": continue
    others = [v for t, v in seen.get(e["step"], {}).items() if t != e["trial"]]
    judged = e["step"] > 1 and e["step"] < 4 and len(others) >= 2
    below = judged and e["value"] < statistics.median(others)
    assert (e["decision"] == "stop") == below, (e, others)
    stopped += e["decision"] == "stop"
    seen.setdefault(e["step"], {})[e["trial"]] = e["value"]
assert stopped >= 1, "the median pruner stopped nothing in 8 trials"
PY

# 7. A Slurm job array of workers for the study.
"$tid" tune asha.toml --study-dir "$work/cluster" --emit-slurm job.sh --workers 4 2> slurm.err || fail "emit-slurm: $(cat slurm.err)"
bash -n job.sh || fail "the Slurm script is not valid bash"
grep -q "^#SBATCH --array=1-4$" job.sh && grep -q "tune '$work/asha.toml' --study-dir '$work/cluster' --parallel 1" job.sh \
  || fail "Slurm script: $(cat job.sh)"

# 8. The study report in a real browser, and best.toml, a ready-to-run experiment.
browser=$(command -v chromium || true)
[[ -n "$browser" ]] || fail "chromium is not installed (scripts/setup.sh installs it)"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --proxy-server=127.0.0.1:9 \
  --dump-dom "file://$work/whole/report.html" > dom.html 2> chromium.log || { tail chromium.log; fail "chromium could not open the report"; }
[[ $(grep -o '<svg class="chart"' dom.html | wc -l) -eq 3 ]] || fail "the study report does not render its three charts"
"$tid" -q run whole/best.toml --run-dir best > best.log 2>&1 || { cat best.log; fail "best.toml does not run"; }
[[ -s best/models/mlp/metrics.json ]] || fail "best.toml trained nothing"
echo "tune_study: space checks, kill -9 and resume, two workers, retries, median pruner, Slurm, report checked"
