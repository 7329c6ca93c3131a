#!/usr/bin/env bash
# The web application in Debian's chromium, driven by playwright-core (npm, pinned by
# tests/browser/package-lock.json; no browser download): tests/browser/web_app.mjs starts the
# quickstart from the page, watches its curve, stops, resumes and opens its report, classifies an
# uploaded capture and the loopback interface on the Predict page, compares, browses the Data page
# (a labels database, the datasets) and runs a small tuning study, then its best configuration.
# Screenshots: BUILD/tests/web_app/*.png.
# usage: web_app_browser.sh TRAFFICID SOURCE_DIR
set -euo pipefail
tid=$1 src=$2
work=$(mktemp -d)
shots="$(dirname "$tid")/../tests/web_app"
server=""
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v node > /dev/null || fail "node is not installed (scripts/setup.sh installs nodejs)"
[[ -x /usr/bin/chromium ]] || fail "chromium is not installed (scripts/setup.sh installs it)"
cp "$src/tests/browser/package.json" "$src/tests/browser/package-lock.json" "$src/tests/browser/web_app.mjs" "$work/"
(cd "$work" && npm ci --no-audit --no-fund --loglevel=error > npm.log 2>&1) || fail "npm ci: $(tail -5 "$work/npm.log")"

mkdir -p "$work/ws/experiments" "$shots"
cp "$src/experiments/quickstart.toml" "$work/ws/experiments/"
{ cat "$src/experiments/quickstart.toml"
  printf '\n[tune]\ntuner = "random"\ntrials = 3\nmetric = "val.macro_f1"\n[tune.space]\n"train.lr" = { loguniform = [1e-3, 3e-2] }\n'
} > "$work/ws/experiments/study.toml"
# A finished run whose models are ensembles of two (MLPs, gbdts) and their blend, for the Compare
# page to show the members and what the blend averages.
(cd "$work/ws" && "$tid" -q run experiments/quickstart.toml --run-dir runs/ensemble --set train.ensemble=2 \
  --set capture.synth.flows_per_app=6 --set evaluate.synth.flows_per_app=3 \
  --set 'models={ mlp = { layers = [32] }, gbdt = { rounds = 20 } }' --set 'blend={ models = ["gbdt", "mlp"] }' \
  --set train.epochs=5 --set train.patience=0 > "$work/ensemble.log" 2>&1) || fail "ensemble run: $(tail -5 "$work/ensemble.log")"
"$tid" serve --workspace "$work/ws" --port 0 > "$work/serve.out" 2> "$work/serve.err" &
server=$!
for _ in $(seq 100); do grep -q "^serving " "$work/serve.out" && break; sleep 0.1; done
url=$(sed -n 's/^serving //p' "$work/serve.out")
[[ -n $url ]] || fail "serve printed no URL: $(cat "$work/serve.err")"
"$tid" synth -o "$work/other.pcap" -p seed=7 -p flows_per_app=2 2> /dev/null || fail "synth wrote no capture"
"$tid" -q label --db "$work/ws/labels.db" "$work/other.pcap" > /dev/null || fail "label wrote no database"
node "$work/web_app.mjs" "$url" "$shots" "$work/other.pcap" || fail "the browser test failed; server said: $(tail -20 "$work/serve.err")"
ls "$shots"/*.png > /dev/null || fail "no screenshots"
echo "web_app_browser: started, watched, stopped, resumed, opened the report, predicted (file and live), compared (ensembles' members and a blend among them), browsed data and ran a study in chromium; screenshots in $shots"
