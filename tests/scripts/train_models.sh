#!/usr/bin/env bash
# The train stage on the quickstart's synthetic dataset: CNN, MLP and SAE train and are tested;
# every output is there and consistent (metrics, per-epoch lines, predictions, model, report);
# the same seed and threads give the same numbers; kill -9 in the middle of training and
# `trafficid run --resume` reach the same final metrics as an uninterrupted run (gbdt too).
# usage: train_models.sh TRAFFICID SOURCE_DIR
set -euo pipefail
tid=$(realpath "$1") src=$(realpath "$2")
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$work"
exp="$src/experiments/quickstart.toml"
# The quickstart's capture, labels and unseen capture, with Deep Packet vectors and the packet models.
common=(--set train.threads=2 --set features.extractor=\"deep_packet\" --set train.batch_size=64 --set train.epochs=6
        --set train.patience=3 --set train.lr=0.001
        --set 'models={cnn={conv=[{filters=32,kernel=5,stride=3},{filters=32,kernel=5,stride=2}],fc=[64,32]},mlp={layers=[128,64]},sae={layers=[128,64],pretrain_epochs=1},gbdt={rounds=60}}')
run_dir() { realpath "$(sed -n "s/.*run folder: \([^ ]*\) .*/\1/p" "$1" | tail -1)"; }

"$tid" run "$exp" "${common[@]}" > first.log 2>&1 || { cat first.log; fail "run"; }
first=$(run_dir first.log)
for m in cnn mlp sae gbdt; do
  for f in metrics.json metrics.jsonl predictions.csv model.pt model.json; do
    [[ -s "$first/models/$m/$f" ]] || fail "$m: no $f"
  done
done
[[ -s "$first/report.html" ]] || fail "no report.html"
$py - "$first" <<'PY' || fail "outputs"
import csv, json, sys
d = sys.argv[1]
run = json.load(open(f"{d}/run.json"))
m = json.load(open(f"{d}/dataset/manifest.json"))
test_rows = sum(m["counts"]["test"])
for name in ("cnn", "mlp", "sae", "gbdt"):
    r = json.load(open(f"{d}/models/{name}/metrics.json"))
    t = r["test"]
    assert sum(c["support"] for c in t["per_class"]) == test_rows, name
    assert sum(map(sum, t["confusion"])) == test_rows, name
    assert 0 <= t["macro_f1"] <= 1 and r["parameters"] > 0, name
    if name != "gbdt":  # LibTorch models: float32 weights; gbdt counts boosting rounds
        assert r["parameters"] > 1000 and r["model_file_bytes"] > 4 * r["parameters"], name
    lines = [json.loads(l) for l in open(f"{d}/models/{name}/metrics.jsonl")]
    assert [l["epoch"] for l in lines] == list(range(1, len(lines) + 1)) and r["best_epoch"] >= 1, name
    rows = list(csv.DictReader(open(f"{d}/models/{name}/predictions.csv")))
    assert len(rows) == test_rows
    correct = sum(r_["true"] == r_["predicted"] for r_ in rows)
    assert abs(correct / test_rows - t["accuracy"]) < 1e-9, name
    if name == "gbdt":
        continue
    assert all(0 <= l["loader_fraction"] < 0.5 for l in lines), (name, [l["loader_fraction"] for l in lines])
# Each trained model (not only the best: one could carry another stuck at chance) beats always
# answering the largest class on the test split, in accuracy and in macro F1.
largest = max(m["counts"]["test"]) / test_rows
majority_f1 = 2 * largest / (1 + largest) / len(m["classes"])
for name in ("cnn", "mlp", "sae", "gbdt"):
    t = json.load(open(f"{d}/models/{name}/metrics.json"))["test"]
    print(f"{name}: accuracy {t['accuracy']:.3f} (largest class {largest:.3f}), macro F1 {t['macro_f1']:.3f} (majority {majority_f1:.3f})")
    assert t["accuracy"] > largest and t["macro_f1"] > 2 * majority_f1, (name, t["accuracy"], largest, t["macro_f1"], majority_f1)
PY
# The report in a real browser (Debian's chromium, headless), with no network: it renders, and the
# rendered page holds each model's two learning-curve charts and its confusion matrix.
browser=$(command -v chromium || true)
[[ -n "$browser" ]] || fail "chromium is not installed (scripts/setup.sh installs it)"
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --proxy-server=127.0.0.1:9 --window-size=1280,3000)
timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$first/report.html" > dom.html 2> chromium.log \
  || { tail chromium.log; fail "chromium could not open the report"; }
count() { { grep -o "$1" dom.html || true; } | wc -l; }
[[ $(count '<svg class="chart"') -eq 12 ]] || fail "rendered report: $(count '<svg class="chart"') charts, not 3 per model (loss, validation, early decisions)"
[[ $(count '<svg class="confusion"') -eq 8 ]] || fail "rendered report: not two confusion matrices per model (unseen flows, test samples)"
grep -q 'class="headline"' dom.html || fail "rendered report: no headline"
[[ $(count '<path d="M') -ge 16 ]] || fail "rendered report: learning curves without lines"
timeout 120 "$browser" "${flags[@]}" --screenshot="$work/report.png" "file://$first/report.html" 2>> chromium.log \
  || fail "chromium could not render the report"
[[ $(stat -c %s "$work/report.png") -gt 50000 ]] || fail "the rendered report is (nearly) blank"

# `predict` on a capture the models never saw: every flow with samples classified, per flow and per packet.
"$tid" synth -o "$work/new.pcap" -p seed=99 -p flows_per_app=3 > /dev/null 2>&1
"$tid" -q predict "$first/models/cnn" "$work/new.pcap" > flows.csv || fail "predict"
"$tid" -q predict "$first/models/mlp" "$work/new.pcap" --level packet --format json > packets.json || fail "predict --level packet"
# The CNN's int8 version (predict --int8: its convolutions and dense layers on oneDNN in int8)
# decides the flows as its float32 self does.
"$tid" predict "$first/models/cnn" "$work/new.pcap" --int8 > flows8.csv 2> int8.err || { cat int8.err; fail "predict --int8"; }
grep -q "flows decided by logprob, int8)" int8.err || { cat int8.err; fail "predict --int8 did not run in int8"; }
$py - "$first" <<'PY' || fail "predictions of a new capture"
import csv, json, sys
classes = json.load(open(f"{sys.argv[1]}/models/cnn/model.json"))["classes"]
flows = list(csv.DictReader(open("flows.csv")))
packets = json.load(open("packets.json"))
assert len(flows) >= 20, len(flows)
assert all(f["class"] in classes and 0 < float(f["confidence"]) <= 1 for f in flows)
assert sum(int(f["samples"]) for f in flows) == len(packets), (sum(int(f["samples"]) for f in flows), len(packets))
assert all(p["class"] in classes for p in packets)
# The flows nDPI calls HTTP.Wikipedia are Web in the quickstart's classes: the CNN says so for most.
web = [f for f in flows if f["ndpi_label"] == "HTTP.Wikipedia"]
assert web and sum(f["class"] == "Web" for f in web) >= len(web) / 2, [f["class"] for f in web]
int8 = list(csv.DictReader(open("flows8.csv")))
key = lambda f: (f["file"], f["protocol"], f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"])
assert sorted(map(key, int8)) == sorted(map(key, flows))
same = sum(a["class"] == b["class"] for a, b in zip(sorted(flows, key=key), sorted(int8, key=key)))
assert same >= 0.95 * len(flows), ("the int8 CNN decides flows differently", same, len(flows))
PY

# Same seed, same threads: the same numbers.
"$tid" run "$exp" "${common[@]}" > second.log 2>&1 || { cat second.log; fail "second run"; }
second=$(run_dir second.log)
for m in cnn mlp sae gbdt; do
  cmp <($py -c "import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps(r['test']), [e['val_macro_f1'] for e in r['epochs']])" "$first/models/$m/metrics.json") \
      <($py -c "import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps(r['test']), [e['val_macro_f1'] for e in r['epochs']])" "$second/models/$m/metrics.json") \
    || fail "$m: two runs with one seed differ"
done

# kill -9 after the CNN's second epoch, then --resume: the same final metrics.
"$tid" run "$exp" "${common[@]}" --run-dir "$work/killed" > killed.log 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [[ -f killed/models/cnn/checkpoints/state.json ]] && grep -q '"epoch": [2-9]' killed/models/cnn/checkpoints/state.json && break
  sleep 0.05
done
kill -9 $pid 2>/dev/null || fail "the run ended before it could be killed"
wait $pid 2>/dev/null || true
[[ -f killed/models/cnn/metrics.json ]] && fail "killed too late: the CNN had finished"
# A kill between a checkpoint and the epoch's line in metrics.jsonl (the observer hears of an
# epoch after its checkpoint is written) leaves the line out: taken out here, the resume brings it
# back (a study's trial killed there ended one epoch short).
drop_checkpoint_epoch() {  # MODEL_DIR
  $py - "$1" <<'PY'
import json, sys
d = sys.argv[1]
epoch = json.load(open(f"{d}/checkpoints/state.json"))["epoch"]
lines = [l for l in open(f"{d}/metrics.jsonl") if json.loads(l)["epoch"] < epoch]
open(f"{d}/metrics.jsonl", "w").writelines(lines)
PY
}
drop_checkpoint_epoch killed/models/cnn
"$tid" run --resume "$work/killed" > resumed.log 2>&1 || { cat resumed.log; fail "--resume"; }
grep -q "model cnn: resuming after epoch" resumed.log || { cat resumed.log; fail "did not resume from a checkpoint"; }
cmp <($py -c "import json,sys; print([(e['epoch'], e['val_macro_f1']) for e in map(json.loads, open(sys.argv[1]))])" "$first/models/cnn/metrics.jsonl") \
    <($py -c "import json,sys; print([(e['epoch'], e['val_macro_f1']) for e in map(json.loads, open(sys.argv[1]))])" killed/models/cnn/metrics.jsonl) \
  || fail "cnn: the resumed run's metrics.jsonl lacks an epoch of the uninterrupted run's"
for m in cnn mlp sae gbdt; do
  cmp <($py -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['test']))" "$first/models/$m/metrics.json") \
      <($py -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['test']))" "killed/models/$m/metrics.json") \
    || fail "$m: resumed run's test metrics differ from an uninterrupted run's"
done
# gbdt resumes too: kill -9 after its 10th epoch (of 2 boosting rounds each), then --resume: every
# epoch's losses and the test metrics are an uninterrupted run's (and it did not start over).
g=(--set train.threads=2 --set train.patience=0 --set 'models={gbdt={rounds=400,rounds_per_epoch=2,max_depth=8}}')
"$tid" run "$exp" "${g[@]}" --run-dir "$work/gbdt-whole" > gbdt-whole.log 2>&1 || { cat gbdt-whole.log; fail "gbdt run"; }
"$tid" run "$exp" "${g[@]}" --run-dir "$work/gbdt-killed" > gbdt-killed.log 2>&1 &
pid=$!
state=gbdt-killed/models/gbdt/checkpoints/state.json
for _ in $(seq 1 1000); do
  [[ -f $state ]] && grep -q '"epoch": [1-9][0-9]' $state && break
  sleep 0.01
done
kill -9 $pid 2>/dev/null || fail "the gbdt run ended before it could be killed"
wait $pid 2>/dev/null || true
[[ -f gbdt-killed/models/gbdt/metrics.json ]] && fail "killed too late: gbdt had finished"
drop_checkpoint_epoch gbdt-killed/models/gbdt
"$tid" run --resume "$work/gbdt-killed" > gbdt-resumed.log 2>&1 || { cat gbdt-resumed.log; fail "gbdt --resume"; }
grep -q "gbdt: resuming after epoch [1-9][0-9]" gbdt-resumed.log || { cat gbdt-resumed.log; fail "gbdt did not resume from a checkpoint"; }
$py - gbdt-whole/models/gbdt gbdt-killed/models/gbdt <<'PY' || fail "gbdt: the resumed run differs from an uninterrupted one"
import json, sys
a, b = ([json.loads(l) for l in open(f"{d}/metrics.jsonl")] for d in sys.argv[1:])
assert len(a) == len(b) == 200, (len(a), len(b))
for x, y in zip(a, b):
    assert (x["epoch"], x["train_loss"], x["val_loss"]) == (y["epoch"], y["train_loss"], y["val_loss"]), (x, y)
ma, mb = (json.load(open(f"{d}/metrics.json")) for d in sys.argv[1:])
assert ma["test"] == mb["test"] and ma["best_epoch"] == mb["best_epoch"]
PY
echo "train_models: outputs, determinism and kill -9 resume (LibTorch models and gbdt) checked"
