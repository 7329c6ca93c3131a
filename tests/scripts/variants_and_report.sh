#!/usr/bin/env bash
# Experiments with [variants] and `trafficid report`: a variant's mistakes are reported at its own
# line; a run runs every variant into RUN_DIR/NAME (each a run of its own that repeats from its
# config.resolved.toml) and compares them in RUN_DIR/report.html; `run --resume` keeps what is
# done; `trafficid report A B` compares runs made apart; the page renders in headless Chromium;
# two models of one plugin ([models.NAME] with plugin = "...") in one experiment; a seed sweep
# as variants, and the report's spread across seeds.
# usage: variants_and_report.sh TRAFFICID SOURCE_DIR
set -euo pipefail
tid=$(realpath "$1") src=$(realpath "$2")
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$work"
base='[experiment]
name = "v"
seed = 5
[capture]
sources = ["synth"]
[capture.synth]
flows_per_app = 4
[label]
labeler = "ndpi"
class_from = "map"
[label.classes]
Web = { patterns = ["HTTP*"] }
Streaming = { patterns = ["TLS.YouTube", "TLS.NetFlix"] }
P2P = { apps = ["BitTorrent"] }
[features]
extractor = "deep_packet"
[dataset]
fractions = [0.6, 0.2, 0.2]
[train]
epochs = 2
threads = 1
[models.mlp]
layers = [32]'

# 1. Mistakes inside variants, each at its line and column.
cat > bad.toml <<TOML
$base
[variants]
odd = 7
[variants.strict]
features.deep_packet.masking = "strikt"
[variants.wide]
"models.mlp.dropuot" = 0.1
TOML
set +e
"$tid" validate bad.toml 2> bad.err; status=$?
set -e
[[ $status -eq 2 ]] || fail "a bad variant validated (status $status)"
grep -q "^bad.toml:27:32: features.deep_packet.masking: 'strikt' is not one of: paper, strict (did you mean 'strict'?)" bad.err \
  || fail "bad value in a variant: $(cat bad.err)"
grep -q "^bad.toml:29:24: models.mlp.dropuot: unknown key (did you mean 'dropout'?)" bad.err || fail "unknown key in a variant: $(cat bad.err)"
grep -q "^bad.toml:25:7: variants.odd: expected a table of the values this variant sets" bad.err \
  || fail "a variant that is not a table: $(cat bad.err)"

# 2. Two variants, run and compared.
cat > v.toml <<TOML
$base
[variants.paper]
[variants.strict]
features.deep_packet.masking = "strict"
models.mlp.layers = [48]
TOML
"$tid" validate v.toml > /dev/null || fail "valid variants rejected"
"$tid" -q run v.toml --run-dir run > run.log 2>&1 || { cat run.log; fail "run with variants"; }
for v in paper strict; do
  [[ -s run/$v/models/mlp/metrics.json && -s run/$v/report.html ]] || fail "variant $v: no trained model or report"
  "$tid" validate "run/$v/config.resolved.toml" > /dev/null || fail "variant $v: its resolved config does not validate"
done
grep -q "masking = 'strict'" run/strict/config.resolved.toml && grep -q "masking = 'paper'" run/paper/config.resolved.toml \
  || fail "the variants' resolved configs do not hold their masking"
$py - run <<'PY' || fail "run record or report"
import json, re, sys
d = sys.argv[1]
r = json.load(open(f"{d}/run.json"))
assert r["status"] == "done" and sorted(r["variants"]) == ["paper", "strict"], r
assert all(v["exit_status"] == 0 for v in r["variants"].values()), r["variants"]
html = open(f"{d}/report.html").read()
differs = html.split("<h2>What differs</h2>")[1].split("<h2>")[0]
rows = re.findall(r"<tr><td>([^<]+)</td>((?:<td>[^<]*</td>)+)</tr>", differs)
table = {k: re.findall(r"<td>([^<]*)</td>", v) for k, v in rows}
assert table == {"features.deep_packet.masking": ["paper", "strict"], "models.mlp.layers": ["[32]", "[48]"]}, table
for v in ("paper", "strict"):
    m = json.load(open(f"{d}/{v}/models/mlp/metrics.json"))
    row = re.search(rf"<tr><td>{v}</td><td>mlp(?: \(best\))?</td>(.*?)</tr>", html).group(1)
    cells = re.findall(r"<td>(?:<b>)?([^<]*)(?:</b>)?</td>", row)
    # headline (the test split's per-flow macro F1: no unseen captures here), validation, test per sample
    assert cells[:3] == [f"{m['headline']['macro_f1']:.4f}", f"{m['validation_per_flow']['macro_f1']:.4f}",
                         f"{m['test']['macro_f1']:.4f}"], (v, cells)
PY
# The two variants built two datasets (masking changes the features).
[[ $(ls -d runs/datasets/v-*/ | wc -l) -eq 2 ]] || fail "datasets: $(ls runs/datasets)"

# 3. --resume on the variants' folder: finished models are kept, the report is written again.
rm run/report.html
"$tid" run --resume run > resume.log 2>&1 || { cat resume.log; fail "resume"; }
[[ $(grep -c "model mlp: done in an earlier attempt" resume.log) -eq 2 && -s run/report.html ]] || fail "resume: $(cat resume.log)"
[[ $(grep -c "stage dataset: reusing" resume.log) -eq 2 ]] || fail "resume rebuilt a dataset: $(cat resume.log)"

# 4. `trafficid report` on runs made apart, and its errors.
"$tid" -q run v.toml --run-dir apart --set 'variants={}' --set models.mlp.layers=[16] > apart.log 2>&1 \
  || { cat apart.log; fail "run without variants"; }
"$tid" report run/paper apart -o cmp.html 2> report.err || fail "report: $(cat report.err)"
grep -q "<td>apart</td><td>mlp" cmp.html && grep -q "<td>paper</td><td>mlp" cmp.html || fail "report: runs missing"
grep -q "<td>models.mlp.layers</td><td>\[32\]</td><td>\[16\]</td>" cmp.html || fail "report: the differing layers are not shown"
set +e
"$tid" report run/paper "$work" -o x.html 2> err; status=$?
set -e
[[ $status -eq 1 ]] && grep -q "$work: not a run folder (no run.json)" err || fail "report on a folder that is no run: $(cat err)"

# 5. The page in a real browser: it renders, with a validation chart per model.
browser=$(command -v chromium || true)
[[ -n "$browser" ]] || fail "chromium is not installed (scripts/setup.sh installs it)"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --proxy-server=127.0.0.1:9 \
  --dump-dom "file://$work/run/report.html" > dom.html 2> chromium.log || { tail chromium.log; fail "chromium could not open the report"; }
$py - dom.html <<'PY' || fail "rendered report"
import sys
dom = open(sys.argv[1]).read()
assert dom.count('<svg class="chart"') == 1, dom.count('<svg class="chart"')
assert dom.count("<path ") == 2, "one validation line per variant"
assert "F1 per class (test split)" in dom
PY
# 6. Two configurations of one plugin in one experiment: [models.NAME] with plugin = "mlp". Each
#    has its folder and report rows; the resolved config keeps the plugin and runs again; predict
#    loads each by its name; a mistyped plugin is an error at its line.
two=(--set 'models={small={plugin="mlp",layers=[16]},big={plugin="mlp",layers=[64,32]}}' --set train.epochs=3
     --set evaluate.sources=[] --set train.threads=1)
"$tid" -q run "$src/experiments/quickstart.toml" "${two[@]}" --run-dir "$work/two" > two.log 2>&1 || { cat two.log; fail "two MLPs"; }
$py - "$work/two" <<'PY' || fail "two MLPs: outputs"
import json, sys
d = sys.argv[1]
for name, layers in (("small", [16]), ("big", [64, 32])):
    m = json.load(open(f"{d}/models/{name}/model.json"))
    assert m["plugin"] == "mlp" and m["name"] == name and m["params"]["layers"] == layers, m
    assert json.load(open(f"{d}/models/{name}/metrics.json"))["model"] == name
run = json.load(open(f"{d}/run.json"))
assert sorted(k for k in run["models"] if isinstance(run["models"][k], dict)) == ["big", "small"], run["models"].keys()
PY
grep -q "<h2>small</h2>" two/report.html && grep -q "<h2>big</h2>" two/report.html || fail "the report lacks a model"
grep -A1 "^\[models.small\]" two/config.resolved.toml > /dev/null && grep -q "^plugin = 'mlp'" two/config.resolved.toml \
  || fail "the resolved config lost the plugin: $(cat two/config.resolved.toml)"
"$tid" -q run --resume "$work/two" > two-resume.log 2>&1 || { cat two-resume.log; fail "--resume of two MLPs"; }
"$tid" -q synth -o new.pcap -p seed=77 -p flows_per_app=2 > /dev/null 2>&1
for name in small big; do
  [[ $("$tid" -q predict "$work/two/models/$name" new.pcap | wc -l) -gt 10 ]] || fail "predict with $name"
done
printf '[capture]\nsources = ["synth"]\n[label]\nlabeler = "ndpi"\nclass_from = "map"\n[label.classes]\nWeb = ["HTTP*"]\nDNS = ["DNS*"]\n[features]\nextractor = "flow_start"\n[models.small]\nplugin = "mpl"\n' > typo.toml
status=0
"$tid" validate typo.toml 2> typo.err || status=$?
[[ $status -eq 2 ]] && grep -qF "typo.toml:12:10: models.small.plugin: no model plugin named 'mpl' (did you mean 'mlp'?)" typo.err \
  || fail "a mistyped plugin: $(cat typo.err)"

# 7. A seed sweep as variants: the report groups the runs by the rest of their settings and gives
#    each group's mean, sample standard deviation and range over its seeds, and the second group
#    against the first, from the variants' own metrics.
cat > seeds.toml <<TOML
$base
[variants.s5]
[variants.s6]
experiment.seed = 6
[variants.s5_small]
models.mlp.layers = [16]
[variants.s6_small]
experiment.seed = 6
models.mlp.layers = [16]
TOML
"$tid" -q run seeds.toml --run-dir seeds > seeds.log 2>&1 || { cat seeds.log; fail "seed sweep"; }
$py - seeds <<'PY' || fail "the report's spread across seeds"
import json, re, statistics, sys
d = sys.argv[1]
h = {v: json.load(open(f"{d}/{v}/models/mlp/metrics.json"))["headline"]["macro_f1"] for v in ("s5", "s6", "s5_small", "s6_small")}
html = open(f"{d}/report.html").read()
section = html.split("<h2>Across seeds</h2>")[1].split("<h2>")[0]
rows = [re.findall(r"<td>(?:<b>)?([^<]*)(?:</b>)?</td>", r) for r in re.findall(r"<tr>(<td>.*?)</tr>", section)]
def expect(setting, a, b, against):
    mean = (a + b) / 2
    return [setting, "mlp", "2 (5, 6)", f"{mean:.4f}", f"{statistics.stdev([a, b]):.4f}", f"{min(a, b):.4f}", f"{max(a, b):.4f}", against]
first = (h["s5"] + h["s6"]) / 2
higher = (h["s5_small"] > h["s5"]) + (h["s6_small"] > h["s6"])
want = [expect("models.mlp.layers = [32]", h["s5"], h["s6"], ""),
        expect("models.mlp.layers = [16]", h["s5_small"], h["s6_small"],
               f"{(h['s5_small'] + h['s6_small']) / 2 - first:+.4f}, higher in {higher} of 2 seeds")]
got = [r[:5] + re.split("&ndash;|\u2013", r[5]) + r[6:] for r in rows]
assert got == want, (got, want)
print(f"seeds: {got}")
PY

echo "variants_and_report: variant diagnostics, runs, resume, comparison, rendering, two models of one plugin and a seed sweep checked"
