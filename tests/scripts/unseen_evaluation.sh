#!/usr/bin/env bash
# Scoring models on captures they never saw, on real captures (../shared/data):
# 1. [evaluate]: a capture that is also a training input (same content) and the flows of a
#    converted training capture (same 5-tuple and start, other bytes) are left out and reported;
#    the unseen flows scored are exactly the classed flows of the other captures, re-derived here
#    from the two label stages' flows.csv; metrics.json leads with them; the report shows them.
# 2. `trafficid evaluate` on the same captures gives the run's numbers; its confusion matrix is
#    the one its flows.csv adds up to; flow_net's training augmentation changes its weights and
#    never its inference.
# 3. `trafficid predict` works with every model kind (gbdt, flow_net, mlp) and with a run folder,
#    which takes the model with the best validation score.
# 4. Group k-fold by file: every capture is in the test split of exactly one fold, all its rows
#    together, and each model is trained once per fold.
# 5. `trafficid predict -i lo`: rows stream as flows end (idle timeout), while the capture goes on,
#    one JSON object per line, flushed (needs root or CAP_NET_RAW, as CI has).
# 6. An ensemble ([train] ensemble): members from successive seeds, averaged alike by the run,
#    `evaluate` and `predict`; refused with folds.
# 7. flow_start's server names (TLS SNI, HTTP Host) as tokens: on the quickstart's synthetic
#    capture without payload bytes or ports, gbdt tells its TLS applications apart with them and
#    not without; flow_net's bag of name tokens scores alike in the run and in `evaluate`.
# 8. A blend ([blend]): the mean of two models' probabilities, scored like a model, the same in the
#    run, in `evaluate`, after a resume and with folds; `predict` takes it by its rule (a paired
#    bootstrap over the validation captures).
# usage: unseen_evaluation.sh TRAFFICID DATA_DIR
set -euo pipefail
tid=$(realpath "$1")
data=$(realpath -m "$2")
src=$(cd "$(dirname "$0")/../.." && pwd)
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -d "$data/captures" && -d "$data/ndpi-4.2-tests/pcap" ]] || fail "shared data folder $data is missing (set TRAFFICID_DATA_DIR)"
cd "$work"

# The unseen pool: other captures of the same protocols, a copy of a training capture, and a
# training capture converted to pcapng (the same flows in other bytes).
mkdir pool
for f in ssh.pcap dns_doh.pcap dns-invalid-chars.pcap googledns_android10.pcap quic-23.pcap quic-29.pcap quic_q46.pcap gquic.pcap; do
  ln -s "$data/ndpi-4.2-tests/pcap/$f" pool/
done
cp "$data/captures/SSH/ssh__single-conn.pcap" pool/copy-of-training.pcap
"$tid" -q convert "$data/captures/QUIC/quic_t51.pcap" pool/converted-training.pcapng || fail "convert"

cat > exp.toml <<TOML
[experiment]
name = "unseen"
seed = 3
output_dir = "$work/runs"
[capture]
sources = ["pcap:$data/captures/SSH", "pcap:$data/captures/DNS", "pcap:$data/captures/QUIC"]
[label]
labeler = "ndpi"
class_from = "map"
confidence = ["DPI*"]
[label.classes]
SSH = ["SSH"]
DNS = { masters = ["DNS"] }
QUIC = { masters = ["QUIC"] }
[features]
extractor = "flow_start"
[features.flow_start]
packets = 4
payload_bytes = 64
[dataset]
fractions = [0.6, 0.2, 0.2]
[evaluate]
sources = ["pcap:$work/pool"]
[train]
epochs = 3
threads = 1
batch_size = 32
[models.gbdt]
rounds = 20
[models.flow_net]
channels = 8
packet_units = 16
hidden = 16
byte_drop = 0.2
truncate = 0.3
port_drop = 0.3
gap_noise = 0.3
[models.mlp]
layers = [32]
TOML

# 1. The run with [evaluate].
"$tid" run exp.toml --run-dir run > run.log 2>&1 || { cat run.log; fail "run"; }
grep -q "copy-of-training.pcap is also a training input (same content): left out" run.log || fail "the copied capture was not left out"
grep -Eq "[0-9]+ flows? of .*converted-training.pcapng (is|are) training flows" run.log || fail "the converted capture's flows were not left out"
$py - run "$data" <<'PY' || fail "unseen flows"
import csv, hashlib, json, sys
run, data = sys.argv[1], sys.argv[2]
def flows(path):  # classed flows: (file, canonical 5-tuple, first microsecond) -> class
    out = {}
    for r in csv.DictReader(open(path)):
        if not r["class"]:
            continue
        a, b = (r["src_ip"], int(r["src_port"])), (r["dst_ip"], int(r["dst_port"]))
        key = (r["protocol"],) + tuple(sorted([a, b])) + (int(r["first_ns"]) // 1000,)
        out[(r["file"], key)] = r["class"]
    return out
train = flows(f"{run}/label/flows.csv")
unseen = flows(f"{run}/evaluate/label/flows.csv")
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
train_hashes = {sha(f) for f in {f for f, _ in train}}
train_keys = {k for _, k in train}
expected = {}
for (f, k), c in unseen.items():
    if sha(f) in train_hashes or k in train_keys:
        continue
    expected[c] = expected.get(c, 0) + 1
m = json.load(open(f"{run}/models/gbdt/metrics.json"))
u = m["unseen"]
got = {c["class"]: c["support"] for c in u["per_flow"]["per_class"] if c["support"]}
assert got == expected, (got, expected)
assert u["flows"] == sum(expected.values())
left = u["left_out"]
assert any(p.endswith("copy-of-training.pcap") for p in left["inputs_left_out"]), left
assert left["training_flows_left_out"] >= 1, left
# Scored flows never come from a left-out capture.
rows = list(csv.DictReader(open(f"{run}/models/gbdt/unseen_flows.csv")))
assert len(rows) == u["flows"] - u["flows_without_samples"]
assert not any(r["file"].endswith("copy-of-training.pcap") for r in rows)
assert m["headline"]["what"].startswith("unseen captures"), m["headline"]
# Its 95% interval: captures resampled, around the value, over the scored captures.
interval = m["headline"]["interval"]
assert interval["low"] <= m["headline"]["macro_f1"] <= interval["high"], interval
assert interval["unit"] == "capture" and 2 <= interval["units"] <= u["captures"] + u["flows_without_samples"], (interval, u["captures"])
run_json = json.load(open(f"{run}/run.json"))
assert run_json["best_model"] in ("gbdt", "flow_net", "mlp")
best = max(("gbdt", "flow_net", "mlp"), key=lambda n: json.load(open(f"{run}/models/{n}/metrics.json"))["validation_per_flow"]["macro_f1"])
assert run_json["best_model"] == best, (run_json["best_model"], best)
print(f"unseen: {u['flows']} flows in classes {got}; left out {len(left['inputs_left_out'])} capture(s), {left['training_flows_left_out']} flow(s)")
PY
grep -q 'class="headline"' run/report.html || fail "the report has no headline"
grep -q '95% interval' run/report.html || fail "the report's headline has no interval"
grep -q "unseen captures per-flow macro F1" run/report.html || fail "the report's table has no unseen column"

# 2. `trafficid evaluate` on the same pool: the run's numbers, and a confusion matrix its flows add up to.
"$tid" -q evaluate run pool -o eval > eval.out 2> eval.err || { cat eval.err; fail "evaluate"; }
[[ -s eval/evaluation.json && -s eval/evaluation.html ]] || fail "evaluate wrote no evaluation.json / .html"
$py - run eval <<'PY' || fail "evaluate's numbers"
import csv, json, sys
run, ev = sys.argv[1], sys.argv[2]
e = json.load(open(f"{ev}/evaluation.json"))["runs"][0]
classes = e["classes"]
for name in ("gbdt", "flow_net", "mlp"):
    s = e["models"][name]
    m = json.load(open(f"{run}/models/{name}/metrics.json"))["unseen"]
    assert abs(s["per_flow"]["macro_f1"] - m["per_flow"]["macro_f1"]) < 1e-9, (name, s["per_flow"]["macro_f1"], m["per_flow"]["macro_f1"])
    confusion = [[0] * len(classes) for _ in classes]
    for r in csv.DictReader(open(f"{ev}/{name}/flows.csv")):
        if r["true"]:
            confusion[classes.index(r["true"])][classes.index(r["predicted"])] += 1
    assert confusion == s["per_flow"]["confusion"], (name, confusion, s["per_flow"]["confusion"])
# flow_net trains on augmented samples and scores them as they are: evaluate (another process,
# another random state) gives each flow the run's confidence to the last digit.
scored = lambda path: {(r["file"], r["flow"]): (r["predicted"], r["confidence"]) for r in csv.DictReader(open(path))}
a, b = scored(f"{run}/models/flow_net/unseen_flows.csv"), scored(f"{ev}/flow_net/flows.csv")
assert a and all(b[k] == v for k, v in a.items()), "flow_net's augmentation reached its inference"
print("evaluate: the run's unseen numbers, confusion matrices from its flows")
PY
# The augmentation does change training: the same seed without it gives other weights.
"$tid" -q run exp.toml --run-dir plain --set 'models={flow_net={channels=8,packet_units=16,hidden=16}}' > plain.log 2>&1 ||
  { cat plain.log; fail "flow_net without augmentation"; }
cmp -s run/models/flow_net/model.pt plain/models/flow_net/model.pt && fail "flow_net's augmentation changed nothing in training"
# 2a. `evaluate --int8`: the MLP's int8 version (oneDNN) scores within half a point of per-flow
# macro F1 of its float32 self, and agrees with it on most flows; gbdt and flow_net (no fully
# connected or convolution layer at the top of its network) have no int8 version and say so.
"$tid" -q evaluate run pool -o eval8 --int8 > eval8.out 2> eval8.err || { cat eval8.err; fail "evaluate --int8"; }
grep -q "model gbdt (gbdt) has no int8 version; it predicts in float32" eval8.err || { cat eval8.err; fail "evaluate --int8: no word that gbdt stays float32"; }
$py - eval eval8 <<'PY' || fail "evaluate --int8"
import csv, json, sys
f32, i8 = (json.load(open(f"{d}/evaluation.json"))["runs"][0]["models"] for d in sys.argv[1:])
assert i8["mlp"]["precision"] == "int8" and f32["mlp"]["precision"] == "float32", (i8["mlp"]["precision"], f32["mlp"]["precision"])
assert i8["gbdt"]["precision"] == "float32" and i8["flow_net"]["precision"] == "float32"
assert i8["gbdt"]["per_flow"] == f32["gbdt"]["per_flow"]
a, b = f32["mlp"]["per_flow"]["macro_f1"], i8["mlp"]["per_flow"]["macro_f1"]
assert abs(a - b) <= 0.005, ("int8 moved the MLP's per-flow macro F1 by more than half a point", a, b)
rows = lambda d: {r["flow"]: r["predicted"] for r in csv.DictReader(open(f"{d}/mlp/flows.csv"))}
x, y = rows(sys.argv[1]), rows(sys.argv[2])
same = sum(x[k] == y[k] for k in x) / len(x)
assert x.keys() == y.keys() and same >= 0.95, ("int8 and float32 MLP decide flows differently", same)
print(f"evaluate --int8: MLP per-flow macro F1 {b:.4f} against {a:.4f} in float32, {100 * same:.1f}% of flows decided alike")
PY

# 2b. A training dataset built before manifests held XXH3 content hashes (SHA-256 digests under
# "sha256"): evaluate still finds the copied training capture by its content, and leaves it out.
manifest=$(realpath run/dataset)/manifest.json
cp "$manifest" manifest.saved
$py - "$manifest" <<'PY' || fail "making the manifest an older one"
import hashlib, json, sys
m = json.load(open(sys.argv[1]))
for i in m["inputs"]:
    assert i.pop("content_hash").startswith("xxh3-128:"), i
    i["sha256"] = hashlib.sha256(open(i["path"], "rb").read()).hexdigest()
json.dump(m, open(sys.argv[1], "w"))
PY
"$tid" evaluate run pool -o eval-older > eval-older.log 2>&1 || { cat eval-older.log; fail "evaluate against an older dataset"; }
cp manifest.saved "$manifest"
grep -q "copy-of-training.pcap is also a training input (same content): left out" eval-older.log ||
  fail "against a dataset with SHA-256 digests the copied capture was not left out: $(cat eval-older.log)"
grep -q '"content_hash": "[0-9a-f]\{64\}"' eval-older/dataset/manifest.json ||
  fail "the evaluation inputs were not hashed with SHA-256 to compare with the older dataset"

# 3. predict with every model kind, and with the run folder (its best model).
for m in gbdt flow_net mlp; do
  "$tid" -q predict "run/models/$m" pool/ssh.pcap > "predict-$m.csv" || fail "predict with $m"
  [[ $(wc -l < "predict-$m.csv") -ge 2 ]] || fail "predict with $m classified no flow"
done
"$tid" predict run pool/ssh.pcap > predict-run.csv 2> predict-run.err || { cat predict-run.err; fail "predict RUN_DIR"; }
best=$($py -c "import json; print(json.load(open('run/run.json'))['best_model'])")
grep -q "models/$best: of 3 models, the best per-flow macro F1 on the validation split" predict-run.err \
  || { cat predict-run.err; fail "predict RUN_DIR did not take the best model ($best)"; }
cmp predict-run.csv "predict-$best.csv" || fail "predict RUN_DIR differs from predict RUN_DIR/models/$best"

# 5. Live: datagrams to a port on lo, each from its own socket (a flow of one packet). With
# --idle-timeout 1 a flow is decided once a packet a second later sweeps it out: its row must be
# in the file while predict is still capturing.
port=$((40000 + RANDOM % 20000))
"$tid" predict run/models/gbdt -i lo --format jsonl --flush --idle-timeout 1 --duration 120 > live.jsonl 2> live.err &
pid=$!
rows() { grep -c "\"dst_port\":$port," live.jsonl || true; }
for _ in $(seq 1 300); do
  [[ $(rows) -ge 3 ]] && break
  kill -0 "$pid" 2>/dev/null || { cat live.err; fail "predict -i lo ended early"; }
  printf "trafficid-live" > "/dev/udp/127.0.0.1/$port"
  sleep 0.2
done
[[ $(rows) -ge 3 ]] || { kill "$pid"; cat live.err; fail "predict -i lo: no rows while capturing after 60 s"; }
kill -0 "$pid" 2>/dev/null || fail "predict -i lo ended before its rows were checked: they did not stream"
kill -INT "$pid"
wait "$pid" || { cat live.err; fail "predict -i lo after SIGINT"; }
$py - live.jsonl "$port" <<'PY' || fail "live rows"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
ours = [r for r in rows if r["dst_port"] == int(sys.argv[2])]
assert all(r["file"] == "live:lo" and r["protocol"] == 17 and r["packets"] == 1 for r in ours), ours[:3]
assert len({r["src_port"] for r in ours}) == len(ours), "a flow was decided twice"
print(f"predict -i lo: {len(ours)} of our flows streamed as they ended, {len(rows)} rows in all")
PY
grep -q "flows classified by gbdt" live.err || fail "predict -i lo summary: $(tail -1 live.err)"
s=0; "$tid" predict run/models/gbdt pool/ssh.pcap --idle-timeout 1 2> idle.err || s=$?
[[ $s -ne 0 ]] && grep -q "idle-timeout requires --interface\|--idle-timeout.*interface" idle.err || fail "--idle-timeout on files: $(cat idle.err)"

# 4. Group k-fold by capture file.
"$tid" run exp.toml --run-dir folds --set dataset.split=\"file\" --set dataset.folds=3 \
  --set 'models={gbdt={rounds=20}}' --set 'evaluate.sources=[]' > folds.log 2>&1 || { cat folds.log; fail "k-fold run"; }
$py - folds <<'PY' || fail "folds"
import glob, json, numpy as np, sys
d = sys.argv[1]
m = json.load(open(f"{d}/dataset/manifest.json"))
k = m["folds"]["count"]
assert k == 3
files, tested = [], []
for shard in m["shards"]:
    s = f"{d}/dataset/{shard['name']}"
    y = np.load(f"{s}.y.npy")
    splits = np.stack([np.load(f"{s}.split.npy")] + [np.load(f"{s}.split-f{f}.npy") for f in range(1, k)])
    files.append(np.load(f"{s}.file.npy")[y >= 0])
    tested.append(splits[:, y >= 0])
files, tested = np.concatenate(files), np.concatenate(tested, axis=1)
kept = (tested != 255).all(axis=0)
per_row = (tested[:, kept] == 2).sum(axis=0)
assert (per_row == 1).all(), "a row is tested in other than exactly one fold"
fold_of_row = (tested[:, kept] == 2).argmax(axis=0)
for f in np.unique(files[kept]):
    assert len(set(fold_of_row[files[kept] == f])) == 1, f"file {f} is tested in several folds"
assert len(np.unique(files[kept])) >= 3 * 2
metrics = json.load(open(f"{d}/models/gbdt/metrics.json"))
assert [f["fold"] for f in metrics["folds"]] == [0, 1, 2]
assert all(len(glob.glob(f"{d}/models/gbdt/fold-{f}/model.pt")) == 1 for f in range(3))
assert sum(f["test_rows"] for f in metrics["folds"]) == int(kept.sum())
assert metrics["headline"]["what"].startswith("captures held out by fold"), metrics["headline"]
print(f"folds: {len(np.unique(files[kept]))} captures, each tested in one of {k} folds; {int(kept.sum())} rows")
PY
"$tid" -q predict folds pool/quic-29.pcap > predict-folds.csv || fail "predict with fold models"
grep -q "QUIC" predict-folds.csv || fail "the fold models' ensemble did not classify QUIC flows"

# 6. An ensemble ([train] ensemble = 3): three members from seeds 3, 4, 5 (the experiment's seed
# and the next), each scored alone; the model's probabilities are their mean, the same in the run,
# in `evaluate` and in `predict`. With folds it is refused before anything runs.
"$tid" run exp.toml --run-dir ensemble --set train.ensemble=3 --set 'models={mlp={layers=[32]},gbdt={rounds=20}}' \
  > ensemble.log 2>&1 || { cat ensemble.log; fail "ensemble run"; }
grep -q "each model an ensemble of 3 members" ensemble.log || fail "the run does not say it trains ensembles"
# gbdt without subsampling draws nothing at random: its members are one model, and the run says so.
grep -q "model gbdt: its 3 members came out identical" ensemble.log || fail "no warning that gbdt's members are identical"
! grep -q "model mlp: its 3 members came out identical" ensemble.log || fail "the MLP's members were called identical"
"$tid" -q evaluate ensemble pool -o eval-ensemble > /dev/null 2> eval-ensemble.err || { cat eval-ensemble.err; fail "evaluate an ensemble"; }
$py - ensemble eval-ensemble <<'PY' || fail "ensemble"
import hashlib, json, sys
run, ev = sys.argv[1:]
m = json.load(open(f"{run}/models/mlp/metrics.json"))
assert [r["member"] for r in m["members"]] == [0, 1, 2] and [r["seed"] for r in m["members"]] == [3, 4, 5], m["members"]
assert all("unseen_per_flow_macro_f1" in r for r in m["members"]), m["members"]
assert json.load(open(f"{run}/models/mlp/model.json"))["members"] == 3
weights = {hashlib.md5(open(f"{run}/models/mlp/member-{k}/model.pt", "rb").read()).hexdigest() for k in range(3)}
assert len(weights) == 3, "members trained from different seeds came out the same"
e = json.load(open(f"{ev}/evaluation.json"))["runs"][0]["models"]["mlp"]
assert e["members"] == 3 and e["folds"] == 1, (e["members"], e["folds"])
a, b = e["per_flow"]["macro_f1"], m["unseen"]["per_flow"]["macro_f1"]
assert abs(a - b) < 1e-9, ("evaluate and the run average the members differently", a, b)
alone = [r["unseen_per_flow_macro_f1"] for r in m["members"]]
print(f"ensemble: members alone {alone}, the ensemble {b:.4f} on the unseen captures")
PY
grep -q "ensemble of 3" ensemble/report.html || fail "the report does not say the model is an ensemble"
grep -q "mlp (best)<br><small>ensemble of 3\|mlp<br><small>ensemble of 3" eval-ensemble/evaluation.html ||
  fail "evaluate's page does not say the model is an ensemble"
"$tid" predict ensemble pool/quic-29.pcap > predict-ensemble.csv 2> predict-ensemble.err || { cat predict-ensemble.err; fail "predict with an ensemble"; }
grep -q "the mean of its 3 ensemble members" predict-ensemble.err || fail "predict: $(tail -1 predict-ensemble.err)"
grep -q "QUIC" predict-ensemble.csv || fail "the ensemble did not classify QUIC flows"
s=0; "$tid" validate exp.toml --set train.ensemble=3 --set dataset.split=\"file\" --set dataset.folds=3 > ensemble-folds.err 2>&1 || s=$?
[[ $s -eq 2 ]] && grep -q "train.ensemble: ensemble = 3 with dataset.folds = 3" ensemble-folds.err ||
  fail "an ensemble with folds was not refused: $(cat ensemble-folds.err)"

# 7. Server names. The quickstart's flows with nothing of their payload bytes or ports: its TLS
# applications (Streaming, Chat, VideoConference) differ in little but the names they ask for.
"$tid" -q synth -o names-unseen.pcap -p seed=2 -p flows_per_app=6 || fail "synth"
bare=(--set features.flow_start.payload_bytes=0 --set features.flow_start.ports=false --set train.epochs=5
      --set "evaluate={sources=[\"pcap:$work/names-unseen.pcap\"]}" --set "experiment.output_dir=\"$work/runs\"")
"$tid" -q run "$src/experiments/quickstart.toml" "${bare[@]}" --run-dir nameless --set 'models={gbdt={rounds=60}}' \
  > nameless.log 2>&1 || { cat nameless.log; fail "quickstart without bytes, ports or names"; }
"$tid" -q run "$src/experiments/quickstart.toml" "${bare[@]}" --run-dir named --set features.flow_start.names=64 \
  --set 'models={gbdt={rounds=60},flow_net={channels=8,packet_units=16,hidden=16}}' > named.log 2>&1 ||
  { cat named.log; fail "quickstart with names"; }
"$tid" -q evaluate named names-unseen.pcap -o eval-named > /dev/null 2> eval-named.err || { cat eval-named.err; fail "evaluate with names"; }
$py - nameless named eval-named <<'PY' || fail "server names"
import csv, json, sys
nameless, named, ev = sys.argv[1:]
unseen = lambda run, m: json.load(open(f"{run}/models/{m}/metrics.json"))["unseen"]["per_flow"]["macro_f1"]
columns = json.load(open(f"{named}/dataset/manifest.json"))["features"]["columns"]
assert [c for c in columns if c.startswith("name_")] == [f"name_{k}" for k in range(64)], columns
assert not any(c.startswith("name_") for c in json.load(open(f"{nameless}/dataset/manifest.json"))["features"]["columns"])
a, b = unseen(nameless, "gbdt"), unseen(named, "gbdt")
assert b >= 0.99 and b >= a + 0.05, ("the names did not tell the applications apart", a, b)
scored = lambda path: {r["flow"]: (r["predicted"], r["confidence"]) for r in csv.DictReader(open(path))}
x, y = scored(f"{named}/models/flow_net/unseen_flows.csv"), scored(f"{ev}/flow_net/flows.csv")
assert x and all(y[k] == v for k, v in x.items()), "flow_net with names scores otherwise in evaluate"
print(f"server names: gbdt without payload bytes or ports {a:.4f} without names, {b:.4f} with them")
PY

# 8. A blend of flow_net and gbdt, trained in this run.
"$tid" run exp.toml --run-dir blended --set 'blend={models=["flow_net","gbdt"]}' > blended.log 2>&1 ||
  { cat blended.log; fail "a run with a blend"; }
grep -q "model blend (a blend): the mean of the probabilities of flow_net, gbdt" blended.log || fail "the run does not say it blends"
"$tid" -q evaluate blended pool -o eval-blended > /dev/null 2> eval-blended.err || { cat eval-blended.err; fail "evaluate a blend"; }
cp blended/models/blend/metrics.json blend-metrics.json
rm -r blended/models/blend
"$tid" run --resume blended > blended-resumed.log 2>&1 || { cat blended-resumed.log; fail "resuming a run for its blend"; }
grep -q "flow_net was trained in an earlier attempt; it predicts again" blended-resumed.log || fail "the resumed blend did not predict again"
"$tid" predict blended pool/ssh.pcap > predict-blended.csv 2> predict-blended.err || { cat predict-blended.err; fail "predict RUN_DIR with a blend"; }
"$tid" predict blended/models/blend pool/ssh.pcap > predict-blend.csv 2> predict-blend.err || fail "predict with a blend's folder"
$py - blended eval-blended blend-metrics.json predict-blended.err <<'PY' || fail "blend"
import csv, json, sys
run, ev, before, predicted = sys.argv[1:]
m = json.load(open(f"{run}/models/blend/metrics.json"))
assert m["blend"]["models"] == ["flow_net", "gbdt"], m["blend"]
assert json.load(open(f"{run}/models/blend/model.json"))["blend"] == ["flow_net", "gbdt"]
members = {n: json.load(open(f"{run}/models/{n}/metrics.json")) for n in ("flow_net", "gbdt")}
for r in m["blend"]["members"]:
    assert r["unseen_per_flow_macro_f1"] == members[r["model"]]["unseen"]["per_flow"]["macro_f1"], r
# Resumed, the blend predicts its models again from their files: the same numbers.
assert json.load(open(before))["unseen"] == m["unseen"], "the resumed blend scores otherwise"
# Each flow of flow_start is one sample: where flow_net, gbdt and the blend pick one class (test
# split and unseen captures), the blend's confidence is the mean of theirs (4 decimals each).
flows = {n: {(f, r["flow"]): r for f in ("flows.csv", "unseen_flows.csv") for r in csv.DictReader(open(f"{run}/models/{n}/{f}"))}
         for n in ("flow_net", "gbdt", "blend")}
agree = [k for k, r in flows["blend"].items() if flows["flow_net"][k]["predicted"] == flows["gbdt"][k]["predicted"] == r["predicted"]]
assert len(agree) >= 10, len(agree)
for k in agree:
    mean = (float(flows["flow_net"][k]["confidence"]) + float(flows["gbdt"][k]["confidence"])) / 2
    assert abs(float(flows["blend"][k]["confidence"]) - mean) <= 1.5e-4, (k, flows["blend"][k]["confidence"], mean)
# evaluate loads the blend's models from their folders and averages them alike.
e = json.load(open(f"{ev}/evaluation.json"))["runs"][0]["models"]["blend"]
assert e["blend"] == ["flow_net", "gbdt"] and e["per_flow"] == m["unseen"]["per_flow"], (e["per_flow"]["macro_f1"], m["unseen"]["per_flow"]["macro_f1"])
# predict RUN_DIR: the blend unless the best single model beats it in 97.5% of the resamples of
# the validation captures, both scored on the flows of each draw (paired).
singles = {n: json.load(open(f"{run}/models/{n}/metrics.json"))["validation_per_flow"] for n in ("flow_net", "gbdt", "mlp")}
best = max(singles, key=lambda n: singles[n]["macro_f1"])  # the first of equals, in name order, as the run
d = m["validation_per_flow"]["decisions"]
support = sum(c["support"] for c in m["validation_per_flow"]["per_class"])
assert len(d["flow"]) == len(d["predicted"]) == support > 0, (len(d["flow"]), support)
assert sorted(d["flow"]) == sorted(singles[best]["decisions"]["flow"]), "the blend and its models decided other validation flows"
line = open(predicted).read()
import re
share = re.search(r"(?:beats in|above the blend's in) ([0-9.]+)% of 1000 resamples of the validation captures", line)
assert share, line
if float(share.group(1)) < 97.5:
    assert f"models/blend: of 4 models, a blend ({m['validation_per_flow']['macro_f1']:.4f} per-flow macro F1" in line, line
    assert f"best single model ({run}/models/{best} " in line, line
else:
    assert f"models/{best}: of 4 models, the best per-flow macro F1" in line, line
print(f"blend: unseen per-flow macro F1 {m['unseen']['per_flow']['macro_f1']:.4f} (flow_net {members['flow_net']['unseen']['per_flow']['macro_f1']:.4f}, gbdt {members['gbdt']['unseen']['per_flow']['macro_f1']:.4f}); {len(agree)} flows checked for the mean")
PY
grep -q "mean of flow_net, gbdt" blended/report.html || fail "the report does not say what the blend averages"
grep -q "blend of flow_net, gbdt (the mean of their probabilities)" predict-blend.err || fail "predict with a blend: $(tail -1 predict-blend.err)"
grep -q SSH predict-blend.csv || fail "the blend classified no SSH flow"
# With folds: each fold's rows scored alone, as its models' are; a validation score's interval
# is the folds' spread.
"$tid" run exp.toml --run-dir blended-folds --set dataset.split=\"file\" --set dataset.folds=3 --set 'evaluate.sources=[]' \
  --set 'models={gbdt={rounds=20},mlp={layers=[32]}}' --set 'blend={models=["gbdt","mlp"],name="trees_and_mlp"}' \
  > blended-folds.log 2>&1 || { cat blended-folds.log; fail "a blend with folds"; }
$py - blended-folds <<'PY' || fail "a blend with folds"
import json, sys
d = sys.argv[1]
m = json.load(open(f"{d}/models/trees_and_mlp/metrics.json"))
g = json.load(open(f"{d}/models/gbdt/metrics.json"))
assert [f["fold"] for f in m["folds"]] == [0, 1, 2], m.get("folds")
assert [f["test_rows"] for f in m["folds"]] == [f["test_rows"] for f in g["folds"]]
for x in (m, g):
    v = [f["validation_per_flow_macro_f1"] for f in x["folds"]]
    mean = sum(v) / 3
    assert abs(x["validation_per_flow"]["macro_f1"] - mean) < 1e-12, (x["validation_per_flow"]["macro_f1"], mean)
    # Its interval: the folds' spread, mean +- 1.96 standard errors.
    error = (sum((y - mean) ** 2 for y in v) / 2 / 3) ** 0.5
    i = x["validation_per_flow"]["interval"]
    assert i["unit"] == "fold" and i["units"] == 3, i
    assert abs(i["low"] - max(0, mean - 1.96 * error)) < 1e-12 and abs(i["high"] - min(1, mean + 1.96 * error)) < 1e-12, (i, mean, error)
mean = m["validation_per_flow"]["macro_f1"]
print(f"blend with folds: validation {mean:.4f} (the mean of its folds'), gbdt's {g['validation_per_flow']['macro_f1']:.4f}")
PY
# A blend of what the experiment does not train is refused before anything runs.
for bad in '{models=["flow_net","cnn"]}' '{models=["gbdt"]}' '{models=["gbdt","mlp"],name="gbdt"}'; do
  s=0; "$tid" validate exp.toml --set "blend=$bad" > blend-bad.err 2>&1 || s=$?
  [[ $s -eq 2 ]] && grep -q "blend\.\(models\|name\)" blend-bad.err || fail "blend = $bad was not refused: $(cat blend-bad.err)"
done

echo "unseen_evaluation: leaks left out, evaluate agrees with the run, predict for every model kind and live on lo, folds cover every capture once, ensembles average their members, server names carry, blends average their models"
