#!/usr/bin/env bash
# Benchmark (not part of the test suite): every model family trained on ../shared/data/captures
# and scored on the unseen pool, the captures of ndpi-4.2-tests/ and ndpi-extra/ (nDPI's fuzzing
# inputs left out; a capture with a training capture's content and a flow also in a training
# capture left out by the evaluation itself), classes from nDPI's DPI labels through
# identify_apps.toml's label map, in one run:
#   packets     Deep Packet vectors: a small CNN (32k5s3, 32k5s2, fc 64), the SAE, an MLP, gbdt,
#               each flow decided by its packets' summed log-probabilities;
#   flow_stats  per-flow statistics: gbdt, an MLP;
#   flow_start  how flows start (8 payload packets, 256 bytes each): flow_net, gbdt, an MLP;
#   no_ports    the same without the ports (an ablation): flow_net, gbdt;
#   byte_drop   flow_net trained with a fifth of the payload bytes hidden (an augmentation);
#   names       flow_start with the server name's tokens (TLS SNI, HTTP Host; 256 buckets):
#               flow_net, gbdt, knn (the nearest training flow per class), and their blend
#               (the mean of the three's probabilities);
# and nDPI itself as the reference labeller, given the first 8 packets of each flow against its
# own labels with every packet. Prints per-flow macro F1 on the unseen pool, the classes at 0,
# the abstention rate at the validation-calibrated threshold, the test split's per-flow macro F1,
# training seconds and inference samples/s per model, and the per-class F1 of the best; a star marks
# the model each run stands by.
# usage: tests/bench/unseen_bench.sh [BUILD_DIR] [DATA_DIR] [WORK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build} data=${2:-${TRAFFICID_DATA_DIR:-$root/../shared/data}} work=${3:-$(mktemp -d)}
tid=$(realpath "$build/bin/trafficid") data=$(realpath "$data")
py=/usr/bin/python3
mkdir -p "$work" && work=$(realpath "$work")
cd "$work"

# identify_apps.toml's classes and labels, trained on captures/ alone, scored on the pool.
classes=$(sed -n '/^\[label\]/,/^\[features\]/p' "$root/experiments/identify_apps.toml" | sed '$d')
cat > unseen.toml <<TOML
[experiment]
name = "unseen_bench"
seed = 1
output_dir = "$work/runs"
[capture]
sources = ["pcap:$data/captures"]
$classes
[features]
extractor = "flow_start"
[features.flow_start]
packets = 8
payload_bytes = 256
[features.deep_packet]
masking = "paper"
[dataset]
split = "flow"
fractions = [0.8, 0.1, 0.1]
balance = "weights"
[evaluate]
sources = ["pcap:$data/ndpi-4.2-tests/pcap", "pcap:$data/ndpi-extra/pcap"]
[evaluate.pcap]
exclude = ["fuzz*", "ossfuzz*"]
[train]
lr = 0.001
batch_size = 32
epochs = 30
patience = 8
[models.flow_net]
[models.gbdt]
rounds = 200
[models.mlp]
layers = [256, 128]
dropout = 0.3
[variants.packets]
features.extractor = "deep_packet"
dataset.balance = "cap"
dataset.max_per_class = 3000
train.batch_size = 128
train.epochs = 8
train.patience = 3
models = { cnn = { conv = [{ filters = 32, kernel = 5, stride = 3 }, { filters = 32, kernel = 5, stride = 2 }], fc = [64] }, sae = { pretrain_epochs = 1 }, mlp = { layers = [256, 128] }, gbdt = { rounds = 200 } }
[variants.flow_stats]
features.extractor = "flow_stats"
models = { gbdt = { rounds = 200 }, mlp = { layers = [256, 128], dropout = 0.3 } }
[variants.flow_start]
[variants.byte_drop]
models = { flow_net = { byte_drop = 0.2 } }
[variants.names]
features.flow_start.names = 256
models = { flow_net = {}, gbdt = { rounds = 200 }, knn = {} }
blend.models = ["flow_net", "gbdt", "knn"]
[variants.no_ports]
features.flow_start.ports = false
models = { flow_net = { ports = false }, gbdt = { rounds = 200 } }
TOML
started=$(date +%s)
if grep -q '"status": "done"' "$work/run/run.json" 2>/dev/null; then
  echo "reusing the finished run in $work/run (remove it to train again)"
else
  "$tid" run unseen.toml --run-dir "$work/run" > run.log 2>&1 || { tail -30 run.log; echo "the run failed" >&2; exit 1; }
  echo "trained and scored in $(( $(date +%s) - started )) s: $work/run/report.html"
fi

# nDPI itself, given the first 8 packets of each flow, against its labels with all of them. (The
# suite holds a truncated capture: label keeps its packets and exits 1, which is no failure here.)
"$tid" -q label "$data/ndpi-4.2-tests/pcap" "$data/ndpi-extra/pcap" --db first8.sqlite -p tcp_max_packets=8 \
  -p udp_max_packets=8 > /dev/null 2>&1 || [[ -s first8.sqlite ]] || { echo "label failed" >&2; exit 1; }

$py - "$work/run" "$root/experiments/identify_apps.toml" first8.sqlite <<'PY'
import csv, fnmatch, json, sqlite3, sys, tomllib
run, exp, first8 = sys.argv[1:4]
families = ["packets", "flow_stats", "flow_start", "no_ports", "byte_drop", "names"]
classes = tomllib.load(open(exp, "rb"))["label"]["classes"]
def classify(label, master):
    for name in sorted(classes):
        d = classes[name]
        if any(fnmatch.fnmatchcase(label, p) for p in d.get("exclude", [])):
            continue
        if master in d.get("masters", []) or any(fnmatch.fnmatchcase(label, p) for p in d.get("patterns", [])):
            return name
    return None

rows, best = [], None
for fam in families:
    picked = json.load(open(f"{run}/{fam}/run.json")).get("best_model")
    for name in sorted(__import__("os").listdir(f"{run}/{fam}/models")):
        m = json.load(open(f"{run}/{fam}/models/{name}/metrics.json"))
        u = m["unseen"]
        zero = [c["class"] for c in u["per_flow"]["per_class"] if c["support"] and c["f1"] == 0]
        a = u.get("abstaining", {})
        r = dict(family=fam, model=name + ("*" if name == picked else ""), unseen=u["per_flow"]["macro_f1"], classes=sum(1 for c in u["per_flow"]["per_class"] if c["support"]),
                 zero=zero, abstain=a.get("abstained", 0) / max(1, u["flows"]), abstain_f1=a.get("macro_f1", 0), vote=u.get("per_flow_vote", {}).get("macro_f1"),
                 test=m["test_per_flow"]["macro_f1"], val=m["validation_per_flow"]["macro_f1"], flows=u["flows"],
                 nosamples=u["flows_without_samples"], train_s=m["training_seconds"], speed=m["inference"]["throughput_samples_per_second"], per_class=u["per_flow"]["per_class"])
        rows.append(r)

# The nDPI reference on the flows the models were scored on: the evaluation's classed flows that
# are not training data (re-derived from the label stages' flows.csv).
# (flow_start and byte_drop share a dataset: whichever ran first labelled the captures.)
fam = next(f"{run}/{v}" for v in ("flow_start", "byte_drop", "names") if __import__("os").path.exists(f"{run}/{v}/label/flows.csv"))
def flows_csv(path):
    out = {}
    for r in csv.DictReader(open(path)):
        a, b = (r["src_ip"], int(r["src_port"])), (r["dst_ip"], int(r["dst_port"]))
        out[(r["file"], r["protocol"]) + tuple(sorted([a, b])) + (int(r["first_ns"]) // 1000,)] = r["class"]
    return out
import hashlib
train = {k: c for k, c in flows_csv(f"{fam}/label/flows.csv").items() if c}
unseen = {k: c for k, c in flows_csv(f"{fam}/evaluate/label/flows.csv").items() if c}
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
train_hashes = {sha(k[0]) for k in train}
train_keys = {k[1:] for k in train}
scored = {k: c for k, c in unseen.items() if k[1:] not in train_keys and sha(k[0]) not in train_hashes}
def labels(db):
    out = {}
    for path, proto, src, sport, dst, dport, first, label, master in sqlite3.connect(db).execute(
            "select path, protocol, src_ip, src_port, dst_ip, dst_port, first_ns, label, master from flows join files on files.id = file_id"):
        a, b = (src, sport), (dst, dport)
        out[(path, str(proto)) + tuple(sorted([a, b])) + (first // 1000,)] = classify(label, master or "")
    return out
short = labels(first8)
names = sorted(classes)
tp, fp, fn = {c: 0 for c in names}, {c: 0 for c in names}, {c: 0 for c in names}
for k, truth in scored.items():
    got = short.get(k)
    if got == truth: tp[truth] += 1
    else:
        fn[truth] += 1
        if got: fp[got] += 1
present = [c for c in names if tp[c] + fn[c]]
f1 = {c: 2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) for c in present}
ndpi8 = sum(f1.values()) / len(f1)

print(f"\nunseen pool: {rows[0]['flows']} flows of {rows[0]['classes']} classes (leaks and fuzzing inputs left out)")
print(f"{'family':<11} {'model':<9} {'unseen F1':>9} {'vote':>6} {'abstain':>8} {'F1 abst.':>8} {'test F1':>8} {'val F1':>7} {'train s':>8} {'samples/s':>10}  classes at 0")
for r in rows:
    print(f"{r['family']:<11} {r['model']:<9} {r['unseen']:>9.3f} {r['vote'] or 0:>6.3f} {100 * r['abstain']:>7.1f}% {r['abstain_f1']:>8.3f} {r['test']:>8.3f} {r['val']:>7.3f} {r['train_s']:>8.1f} {r['speed']:>10.0f}  {len(r['zero'])}: {' '.join(r['zero'])}")
print("* the model the run stands by (validation; a blend unless the best single model beats it in 97.5% of resamples of the validation captures)")
print(f"{'nDPI':<11} {'8 pkts':<9} {ndpi8:>9.3f}   (nDPI given each flow's first 8 packets, against its own labels with all: {len(scored)} flows)")
best = max((r for r in rows if r["family"] != "no_ports"), key=lambda r: r["unseen"])
print(f"\nbest learned model on the unseen pool: {best['family']}/{best['model']} {best['unseen']:.3f}; per class (F1/flows):")
print("  " + "  ".join(f"{c['class']} {c['f1']:.2f}/{c['support']}" for c in best["per_class"] if c["support"]))
print("  nDPI 8 packets: " + "  ".join(f"{c} {f1[c]:.2f}/{tp[c] + fn[c]}" for c in present))
PY
