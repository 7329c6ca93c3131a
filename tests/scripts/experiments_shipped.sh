#!/usr/bin/env bash
# The experiments in experiments/ as shipped: every one validates, and the label stage of
# deep_packet_traffic.toml on ../shared/data/captures gives each traffic type exactly the packets
# that MANIFEST.tsv counts in class for its applications (ndpi42_inclass_pkts), the Facetime
# capture (Unknown to nDPI, no class definition) kept whole. deep_packet_app.toml and compare.toml
# share its class definitions: the same check per application.
# usage: experiments_shipped.sh TRAFFICID DATA_DIR SOURCE_DIR
set -euo pipefail
tid=$(realpath "$1") data=$(realpath "$2") src=$(realpath "$3")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -f "$data/MANIFEST.tsv" ]] || fail "shared data folder $data is missing (set TRAFFICID_DATA_DIR)"
at_data=(--set "capture.sources=[\"pcap:$data/captures\"]" --set "experiment.output_dir=\"$work/out\"")

for e in "$src"/experiments/*.toml; do
  "$tid" validate "$e" "${at_data[@]}" > /dev/null 2> "$work/err" || fail "$(basename "$e") does not validate: $(cat "$work/err")"
done

check() {  # EXPERIMENT GROUP_COLUMN: classes.json against MANIFEST.tsv grouped by that column
  "$tid" -q prepro "$src/experiments/$1" "${at_data[@]}" --run-dir "$work/$1" > "$work/log" 2>&1 \
    || { cat "$work/log"; fail "prepro $1"; }
  /usr/bin/python3 - "$work/$1/label/classes.json" "$data/MANIFEST.tsv" "$2" <<'PY' || fail "$1: classes"
import collections, csv, json, sys
classes = json.load(open(sys.argv[1]))["classes"]
expected = collections.Counter()
for r in csv.DictReader(open(sys.argv[2]), delimiter="\t"):
    whole = r["app_class"] == "Facetime"  # no definition: every flow of its folder
    expected[r[sys.argv[3]]] += int(r["packets"] if whole else r["ndpi42_inclass_pkts"])
got = {name: c["packets"] for name, c in classes.items()}
assert got == dict(expected), f"\n ours      {sorted(got.items())}\n reference {sorted(expected.items())}"
print(f"{len(got)} classes, {sum(got.values())} packets, as MANIFEST.tsv counts them")
PY
}
check deep_packet_traffic.toml traffic_type
check deep_packet_app.toml app_class
echo "experiments_shipped: every experiment validates; traffic types and applications match MANIFEST.tsv"
