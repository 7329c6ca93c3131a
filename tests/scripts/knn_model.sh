#!/usr/bin/env bash
# The knn model (nearest training flow per class) on real captures (../shared/data):
# 1. A class of one training flow: captures/RDP holds a single RDP flow (TCP 3389). knn, trained
#    beside SSH, DNS and QUIC, finds the RDP flows of captures it never saw (ndpi-extra's rdp3 and
#    rdp_over_tls) by their port and header, and every flow of the pool it scores gets a class.
# 2. Saved and loaded: `evaluate` (another process, from model.pt) gives every unseen flow the
#    run's class and confidence to the last digit. Nothing in it is drawn at random: the same
#    split gives the same model file byte for byte; flows alike in all it reads are kept once.
# 3. Its temperature is fitted with each training flow scored by the other captures' flows (one of
#    a grid), and a given `temperature` is taken as it is. Tokens are weighed by how few classes
#    have them unless `idf = "none"`, which weighs them alike: the same flows, other scores.
# 4. Bad input: features that are not flow_start's are refused before training, with the fix; a
#    cut model file is refused by `predict`, naming the file and the byte.
# usage: knn_model.sh TRAFFICID DATA_DIR
set -euo pipefail
tid=$(realpath "$1")
data=$(realpath -m "$2")
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -d "$data/captures/RDP" && -d "$data/ndpi-extra/pcap" ]] || fail "shared data folder $data is missing (set TRAFFICID_DATA_DIR)"
cd "$work"

mkdir pool
for f in rdp3.pcap rdp_over_tls.pcap; do ln -s "$data/ndpi-extra/pcap/$f" pool/; done
for f in ssh.pcap quic-23.pcap dns_doh.pcap; do ln -s "$data/ndpi-4.2-tests/pcap/$f" pool/; done

cat > exp.toml <<TOML
[experiment]
name = "knn"
seed = 2
output_dir = "$work/runs"
[capture]
sources = ["pcap:$data/captures/SSH", "pcap:$data/captures/DNS", "pcap:$data/captures/QUIC", "pcap:$data/captures/RDP"]
[label]
labeler = "ndpi"
class_from = "map"
confidence = ["DPI*"]
[label.classes]
SSH = ["*SSH*"]
DNS = { masters = ["DNS"] }
QUIC = { masters = ["QUIC"] }
RDP = ["*RDP*"]
[features]
extractor = "flow_start"
[features.flow_start]
names = 64
[dataset]
fractions = [0.8, 0.1, 0.1]
[evaluate]
sources = ["pcap:$work/pool"]
[models.knn]
TOML

# 1. One RDP flow to learn from.
"$tid" run exp.toml --run-dir run > run.log 2>&1 || { cat run.log; fail "run"; }
$py - run <<'PY' || fail "knn on unseen captures"
import csv, json, sys
run = sys.argv[1]
m = json.load(open(f"{run}/models/knn/metrics.json"))
rows = list(csv.DictReader(open(f"{run}/models/knn/unseen_flows.csv")))
rdp = [r for r in rows if r["true"] == "RDP"]
assert len(rdp) >= 2, rdp
found = [r for r in rdp if r["predicted"] == "RDP"]
assert found, ("no unseen RDP flow found", rdp)
assert all(r["true"] == "RDP" for r in rows if r["predicted"] == "RDP"), ("flows of other classes taken for RDP", rows)
assert len(set(r["true"] for r in rows)) >= 2 and m["unseen"]["per_flow"]["macro_f1"] >= 0.9, m["unseen"]["per_flow"]["macro_f1"]
assert m["unseen"]["flows_without_samples"] == 0 and len(rows) == m["unseen"]["flows"], m["unseen"]
print(f"knn: {len(found)} of {len(rdp)} unseen RDP flows from one training flow; unseen per-flow macro F1 {m['unseen']['per_flow']['macro_f1']:.4f}")
PY
grep -q "knn: [0-9]* distinct training flows, temperature" run.log || fail "knn does not say what it keeps"

# 2. evaluate from the saved model: the run's decisions, digit for digit.
"$tid" -q evaluate run pool -o eval > /dev/null 2> eval.err || { cat eval.err; fail "evaluate"; }
$py - run eval <<'PY' || fail "evaluate with knn"
import csv, sys
run, ev = sys.argv[1:]
scored = lambda path: {(r["file"], r["flow"]): (r["predicted"], r["confidence"]) for r in csv.DictReader(open(path))}
a, b = scored(f"{run}/models/knn/unseen_flows.csv"), scored(f"{ev}/knn/flows.csv")
assert a and a == b, "evaluate's knn decides otherwise than the run's"
PY
"$tid" -q predict run/models/knn pool/rdp3.pcap > predict.csv || fail "predict with knn"
grep -Eq ",RDP,[0-9.]+,[01]$" predict.csv || { cat predict.csv; fail "predict with knn found no RDP flow in rdp3.pcap"; }
"$tid" -q run exp.toml --run-dir again > again.log 2>&1 || { cat again.log; fail "second run"; }
cmp run/models/knn/model.pt again/models/knn/model.pt || fail "the same split gave another knn model"
# Flows alike in all knn reads are kept once: with one packet and no payload bytes or names, the
# DNS and QUIC flows come down to a few ports and sizes.
"$tid" run exp.toml --run-dir alike --set features.flow_start.packets=1 --set features.flow_start.payload_bytes=0 \
  --set features.flow_start.names=0 > alike.log 2>&1 || { cat alike.log; fail "run with one packet per flow"; }
rows=$(grep -o "on [0-9]* training" alike.log | grep -o "[0-9]*")
kept=$(grep -o "knn: [0-9]* distinct" alike.log | grep -o "[0-9]*")
((kept < rows / 2)) || fail "flows alike were kept again and again ($kept of $rows training flows)"
grep -q "knn: $rows distinct" run.log || fail "distinct flows of the full samples were merged"

# 3. The temperature: from the grid, fitted across captures; or as given.
$py - run <<'PY' || fail "temperature"
import json, sys
e = [json.loads(l) for l in open(f"{sys.argv[1]}/models/knn/metrics.jsonl")]
t = e[-1]["temperature"]
assert t in (0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0), t
PY
"$tid" run exp.toml --run-dir fixed --set models.knn.temperature=0.25 > fixed.log 2>&1 || { cat fixed.log; fail "fixed temperature"; }
grep -q "temperature 0.25" fixed.log || fail "a given temperature was not taken"
grep -q "shape 0; idf classes)" fixed.log || fail "the summary does not name the tokens' weighting"
"$tid" run exp.toml --run-dir alike-weights --set models.knn.temperature=0.25 --set 'models.knn.idf="none"' \
  > alike-weights.log 2>&1 || { cat alike-weights.log; fail "idf = none"; }
grep -q "shape 0; idf none)" alike-weights.log || fail "idf = none was not taken"
cmp -s fixed/models/knn/model.pt alike-weights/models/knn/model.pt || fail "the weighting changed the flows kept"
$py - fixed alike-weights <<'PY' || fail "idf"
import csv, sys
conf = lambda run: {(r["file"], r["flow"]): r["confidence"] for r in csv.DictReader(open(f"{run}/models/knn/unseen_flows.csv"))}
a, b = conf(sys.argv[1]), conf(sys.argv[2])
assert a.keys() == b.keys() and sum(a[k] != b[k] for k in a) > len(a) // 2, "weighing tokens alike scored the flows the same"
PY

# 4. Bad input.
s=0; "$tid" run exp.toml --run-dir packets --set features.extractor=\"deep_packet\" > packets.log 2>&1 || s=$?
[[ $s -ne 0 ]] && grep -q 'knn reads float32 samples of \[packets, columns\].*use features.extractor = "flow_start"' packets.log ||
  { cat packets.log; fail "knn on deep_packet features was not refused with the fix"; }
cp -r run cut && head -c 100 run/models/knn/model.pt > cut/models/knn/model.pt
s=0; "$tid" predict cut/models/knn pool/ssh.pcap > /dev/null 2> cut.err || s=$?
[[ $s -ne 0 ]] && grep -q "cut/models/knn/model.pt: not a knn model (cut at byte" cut.err || { cat cut.err; fail "a cut model file"; }

echo "knn_model: a class of one training flow found in unseen captures, evaluate agrees with the run, deterministic, flows alike kept once, temperature fitted across captures, bad input refused"
