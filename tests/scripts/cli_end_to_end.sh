#!/usr/bin/env bash
# The trafficid command line as a user types it: plugins, validate (errors and exit status 2),
# run (run folder contents, --set), synth and info (against capinfos).
# usage: cli_end_to_end.sh TRAFFICID SOURCE_DIR
set -euo pipefail
tid=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$work"  # runs/ (and its datasets) of this test only: an earlier test's dataset would be reused

# plugins: list, one plugin's table, JSON. (Each output is read whole before grep looks at it: a
# grep -q that stops at its first match would end the writer with SIGPIPE, failing under pipefail.)
grep -Eq '^capture +pcap +1\.0\.0 +/.*trafficid_capture_pcap\.so +reads' <<< "$("$tid" plugins)" || fail "plugins list"
grep -Eq '^flows_per_app +int +12 +\[1, 100000\] +flows generated per application' <<< "$("$tid" plugins synth)" || fail "plugins synth table"
grep -q '"kind": "capture"' <<< "$("$tid" plugins --json)" || fail "plugins --json"
grep -q '"primary_param": "paths"' <<< "$("$tid" plugins pcap --json)" || fail "plugins pcap --json"
set +e
"$tid" plugins synht 2> "$work/err"; status=$?
set -e
[[ $status -eq 2 ]] && grep -q "did you mean 'synth'" "$work/err" || fail "unknown plugin name: status $status"

# validate: every problem at once, FILE:LINE:COL: key.path: message, status 2.
cat > "$work/bad.toml" <<'TOML'
[experiment]
nmae = "x"
[capture]
sources = ["synth"]
[capture.synth]
flows_per_app = 0
TOML
set +e
"$tid" validate "$work/bad.toml" 2> "$work/err"; status=$?
set -e
[[ $status -eq 2 ]] || fail "validate status $status"
grep -qx "$work/bad.toml:2:1: experiment.nmae: unknown key (did you mean 'name'?)" "$work/err" || { cat "$work/err"; fail "typo line"; }
grep -qx "$work/bad.toml:6:17: capture.synth.flows_per_app: 0 is out of range \[1, 100000\]" "$work/err" || { cat "$work/err"; fail "range line"; }
grep -q "2 errors" "$work/err" || fail "error count"
# run refuses the same file with the same messages and writes nothing.
set +e
(cd "$work" && "$tid" run bad.toml 2> "$work/err"); status=$?
set -e
[[ $status -eq 2 && ! -d "$work/runs" ]] || fail "run of an invalid experiment: status $status"
# --set repairs it from the command line.
"$tid" validate "$work/bad.toml" --set capture.synth.flows_per_app=2 > "$work/out" 2>&1 && fail "still invalid"
grep -q "unknown key" "$work/out" && ! grep -q "out of range" "$work/out" || fail "--set fixes one error, not the other"

# run: the quickstart with an override, into a named folder. Two flows per application are too
# few for a validation split (a run would refuse to train on them): the stages up to the dataset.
"$tid" -q run "$src/experiments/quickstart.toml" --set capture.synth.flows_per_app=2 --set capture.synth.seed=9 \
  --set 'models={}' --run-dir "$work/run"
for f in config.resolved.toml run.log run.json capture/summary.json; do [[ -s "$work/run/$f" ]] || fail "run folder lacks $f"; done
grep -qx "    flows_per_app = 2" "$work/run/config.resolved.toml" || fail "override not in the resolved config"
grep -qx "    clients = 4" "$work/run/config.resolved.toml" || fail "defaults not filled in"
grep -q '"status": "done"' "$work/run/run.json" || fail "run status"
grep -q '"flows": 20,' "$work/run/capture/summary.json" || fail "2 flows x 10 applications expected"
# The label stage: all 20 flows labelled by nDPI and put in one of the quickstart's classes.
[[ -s "$work/run/label/classes.json" ]] || fail "no label/classes.json"
[[ $(awk -F, 'NR > 1 && $NF != ""' "$work/run/label/flows.csv" | wc -l) -eq 20 ]] || fail "flows without a class: $(cat "$work/run/label/flows.csv")"
grep -q ',TLS.YouTube,.*,Streaming$' "$work/run/label/flows.csv" || fail "YouTube flows not in Streaming"
# The resolved config runs again as it is and gives the same capture (--rebuild: read it again
# rather than reuse the dataset the first run made).
"$tid" -q run "$work/run/config.resolved.toml" --run-dir "$work/again" --rebuild
cmp "$work/run/capture/summary.json" "$work/again/capture/summary.json" || fail "resolved config does not repeat the run"
# A default run folder lands under ./runs of the working directory.
(cd "$work" && "$tid" -q run "$src/experiments/quickstart.toml" --set capture.synth.flows_per_app=1 --set 'models={}')
ls -d "$work"/runs/quickstart-* > /dev/null || fail "default run folder"

# synth + info: the written capture reads back with the packet count capinfos finds.
"$tid" -q synth -o "$work/synth.pcap" -p seed=3 -p flows_per_app=2
packets=$("$tid" info "$work/synth.pcap" --json | grep -m1 -Eo '"packets": [0-9]+' | grep -Eo '[0-9]+')
if command -v capinfos > /dev/null; then
  expected=$(capinfos -T -r -c -M "$work/synth.pcap" | cut -f2)
  [[ "$packets" == "$expected" ]] || fail "info says $packets packets, capinfos $expected"
fi
[[ "$packets" -gt 100 ]] || fail "synth wrote $packets packets"
set +e
"$tid" synth -o "$work/x.pcap" -p flows_per_app=zero 2> "$work/err"; status=$?
set -e
[[ $status -eq 2 ]] && grep -q "synth.flows_per_app: expected an integer" "$work/err" || fail "synth parameter check"
echo "cli_end_to_end: all checks passed"
