#!/usr/bin/env bash
# Benchmark (not part of the test suite): `trafficid split -c 10000` and `trafficid convert`
# against editcap on a capture of at least 1 GB built from ../shared/data/captures, side by side
# in one run, 3 rounds each, alternating. Prints seconds, MB/s and peak memory; ratio = editcap
# time / trafficid time (above 1: trafficid is faster).
# usage: tests/bench/capture_tools_bench.sh [BUILD_DIR] [DATA_DIR] [WORK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build} data=${2:-${TRAFFICID_DATA_DIR:-$root/../shared/data}} work=${3:-$(mktemp -d)}
tid="$build/bin/trafficid"
mkdir -p "$work"
trap 'rm -rf "$work/out" "$work/big.pcap" "$work/base.pcap"' EXIT

# 1. The input: every Ethernet pcap of the shared captures, concatenated, repeated to >= 1 GB.
source "$root/tests/bench/big_capture.sh"
build_big_capture "$data" "$work" nsecpcap
size=$(stat -c %s "$work/big.pcap")
packets=$(capinfos -T -r -c "$work/big.pcap" | cut -f2)
echo "input: $work/big.pcap, $((size / 1000000)) MB, $packets packets ($copies copies of ${#inputs[@]} captures)"
cat "$work/big.pcap" > /dev/null  # both tools start from a warm page cache

# Runs a command, prints "seconds peak_kb".
measure() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
run() {  # label, then the command; output folder cleared before each run
  rm -rf "$work/out" && mkdir -p "$work/out"
  read -r seconds kb < <(measure "$@")
  echo "$seconds $kb"
}

report() {  # name, trafficid results..., editcap results... (3 each: "s kb")
  local name=$1; shift
  local t=("$1" "$2" "$3") e=("$4" "$5" "$6")
  local tb eb tk ek
  tb=$(printf '%s\n' "${t[@]}" | awk '{print $1}' | sort -n | head -1)
  eb=$(printf '%s\n' "${e[@]}" | awk '{print $1}' | sort -n | head -1)
  tk=$(printf '%s\n' "${t[@]}" | awk '{print $2}' | sort -n | tail -1)
  ek=$(printf '%s\n' "${e[@]}" | awk '{print $2}' | sort -n | tail -1)
  awk -v n="$name" -v tb="$tb" -v eb="$eb" -v tk="$tk" -v ek="$ek" -v size="$size" 'BEGIN {
    printf "%-22s trafficid %6.2f s (%6.0f MB/s, peak %6.1f MB)   editcap %6.2f s (%6.0f MB/s, peak %6.1f MB)   ratio %.2f\n",
      n, tb, size / tb / 1e6, tk / 1024, eb, size / eb / 1e6, ek / 1024, eb / tb }'
}

split_t=() split_e=() conv_t=() conv_e=()
for round in 1 2 3; do
  split_t+=("$(run "$tid" -q split -c 10000 "$work/big.pcap" "$work/out/t.pcap")")
  split_e+=("$(run editcap -F nsecpcap -c 10000 "$work/big.pcap" "$work/out/e.pcap")")
  conv_t+=("$(run "$tid" -q convert "$work/big.pcap" "$work/out/t.pcapng")")
  conv_e+=("$(run editcap -F pcapng "$work/big.pcap" "$work/out/e.pcapng")")
done
echo "best of 3 rounds (peak memory: the largest of the 3):"
report "split -c 10000" "${split_t[@]}" "${split_e[@]}"
report "convert pcap->pcapng" "${conv_t[@]}" "${conv_e[@]}"
