#!/usr/bin/env bash
# Benchmark (not part of the test suite): the whole preprocessing (read, nDPI label, Deep Packet
# extraction, split, write) by `trafficid prepro` on a capture of at least 1 GB built from
# ../shared/data/captures, beside Debian's `ndpiReader -i` on the same file and the scapy
# reference (../shared/bench/deeppacket_scapy.py) on a slice of it, in one run. Prints packets/s,
# ratios, peak memory, the dataset's bytes per packet, and peak memory for a 10x input (the same
# file read 10 times as 10 inputs).
# usage: tests/bench/prepro_bench.sh [BUILD_DIR] [DATA_DIR] [WORK_DIR] [SLICE_PACKETS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build} data=${2:-${TRAFFICID_DATA_DIR:-$root/../shared/data}} work=${3:-$(mktemp -d)}
slice=${4:-20000}
tid=$(realpath "$build/bin/trafficid") data=$(realpath "$data")
mkdir -p "$work" && work=$(realpath "$work")
trap 'rm -rf "$work/big.pcap" "$work/slice" "$work/scapy-out" "$work/runs"' EXIT

source "$root/tests/bench/big_capture.sh"
build_big_capture "$data" "$work" pcap
packets=$(capinfos -T -r -c "$work/big.pcap" | cut -f2)
echo "input: $(( $(stat -c %s "$work/big.pcap") / 1000000 )) MB, $packets packets ($copies copies of ${#inputs[@]} captures)"
cat "$work/big.pcap" > /dev/null

experiment() {  # experiment TOML reading the big capture N times
  local n=$1 sources
  sources=$(for _ in $(seq "$n"); do printf '"%s", ' "$work/big.pcap"; done)
  cat <<TOML
[experiment]
name = "bench$n"
seed = 1
output_dir = "$work/runs"
[capture]
sources = ["pcap"]
[capture.pcap]
paths = [${sources%, }]
TOML
  bench_dataset_sections
}
experiment 1 > "$work/bench1.toml"
experiment 10 > "$work/bench10.toml"

rate() { awk -v p="$1" -v t="$2" 'BEGIN {printf "%.0f", p / t}'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

read -r nt nk < <(best_of_3 'rm -rf "$work/runs"; sync' ndpiReader -q -i "$work/big.pcap")
printf "%-34s %7.2f s  %9s packets/s  peak %7s MB\n" "ndpiReader -i (labels only)" "$nt" "$(rate "$packets" "$nt")" "$(mb "$nk")"
for threads in 1 2; do
  read -r tt tk < <(best_of_3 'rm -rf "$work/runs"; sync' "$tid" -q prepro "$work/bench1.toml" --set features.threads=$threads)
  printf "%-34s %7.2f s  %9s packets/s  peak %7s MB  time vs ndpiReader %.2fx\n" "trafficid prepro ($threads thread$([[ $threads == 1 ]] || echo s))" \
    "$tt" "$(rate "$packets" "$tt")" "$(mb "$tk")" "$(awk -v a="$tt" -v b="$nt" 'BEGIN {print a / b}')"
done
manifest=$(ls "$work"/runs/datasets/*/manifest.json)
python3 - "$manifest" "$packets" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); s = m["statistics"]; n = int(sys.argv[2])
print(f"dataset: {s['rows']} rows, {s['dataset_bytes'] / 1e6:.0f} MB: {s['dataset_bytes'] / n:.0f} bytes per packet read, "
      f"{s['dataset_bytes'] / s['rows']:.0f} per row ({s['feature_bytes'] / s['rows']:.0f} of features; dense 1500-byte rows "
      f"would take {1500 * s['rows'] / 1e6:.0f} MB)")
PY

# The scapy reference on the first $slice packets (it holds everything in memory).
mkdir -p "$work/slice/All"
editcap -r "$work/big.pcap" "$work/slice/All/slice.pcap" "1-$slice" 2>/dev/null
read -r st sk < <(/usr/bin/time -f "%e %M" /usr/bin/python3 "$data/../bench/deeppacket_scapy.py" "$work/slice" "$work/scapy-out" 2>&1 >/dev/null | tail -1)
printf "%-34s %7.2f s  %9s packets/s  peak %7s MB  (%s packets)\n" "scapy reference (slice)" "$st" "$(rate "$slice" "$st")" "$(mb "$sk")" "$slice"
printf "packets/s ratios: trafficid (2 threads) / ndpiReader %.2f, trafficid / scapy %.0f\n" \
  "$(awk -v a="$nt" -v b="$tt" 'BEGIN {print a / b}')" "$(awk -v p="$packets" -v t="$tt" -v s="$slice" -v u="$st" 'BEGIN {print (p / t) / (s / u)}')"

# Peak memory, 1x against 10x (10 inputs, the same file each time).
rm -rf "$work/runs"; sync
read -r t10 k10 < <(/usr/bin/time -f "%e %M" "$tid" -q prepro "$work/bench10.toml" 2>&1 >/dev/null | tail -1)
rows10=$(python3 -c "import json,glob; print(json.load(open(glob.glob('$work/runs/datasets/*/manifest.json')[0]))['statistics']['rows'])")
printf "10x input: %d packets in %.2f s (%s packets/s), %s rows, peak %s MB against %s MB for 1x\n" "$((packets * 10))" "$t10" \
  "$(rate "$((packets * 10))" "$t10")" "$rows10" "$(mb "$k10")" "$(mb "$tk")"
