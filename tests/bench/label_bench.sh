#!/usr/bin/env bash
# Benchmark (not part of the test suite): `trafficid label` against Debian's `ndpiReader -i FILE`
# on a capture of at least 1 GB built from ../shared/data/captures, side by side in one run,
# best of 3 rounds each. Prints packets/s and peak memory; ratio = ndpiReader time / trafficid time.
# usage: tests/bench/label_bench.sh [BUILD_DIR] [DATA_DIR] [WORK_DIR] [THREADS...]
# DISTINCT=1: give each copy its own addresses, so its flows are new to nDPI (see big_capture.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build} data=${2:-${TRAFFICID_DATA_DIR:-$root/../shared/data}} work=${3:-$(mktemp -d)}
shift $(( $# < 3 ? $# : 3 ))
threads=("${@:-1}")
tid="$build/bin/trafficid"
mkdir -p "$work"
trap 'rm -f "$work/big.pcap" "$work/base.pcap" "$work"/labels.sqlite*' EXIT

source "$root/tests/bench/big_capture.sh"
build_big_capture "$data" "$work" pcap
packets=$(capinfos -T -r -c "$work/big.pcap" | cut -f2)
echo "input: $(( $(stat -c %s "$work/big.pcap") / 1000000 )) MB, $packets packets ($copies copies of ${#inputs[@]} captures)"
cat "$work/big.pcap" > /dev/null

read -r nt nk < <(best_of_3 'rm -f "$work"/labels.sqlite*' ndpiReader -q -i "$work/big.pcap")
printf "%-26s %6.2f s  %9.0f packets/s  peak %6.1f MB\n" "ndpiReader (1 thread)" "$nt" "$(awk -v p="$packets" -v t="$nt" 'BEGIN {print p / t}')" "$(awk -v k="$nk" 'BEGIN {print k / 1024}')"
for n in "${threads[@]}"; do
  read -r tt tk < <(best_of_3 'rm -f "$work"/labels.sqlite*' "$tid" -q label "$work/big.pcap" --db "$work/labels.sqlite" --threads "$n")
  printf "%-26s %6.2f s  %9.0f packets/s  peak %6.1f MB  ratio %.2f\n" "trafficid label ($n thread$([[ $n == 1 ]] || echo s))" "$tt" \
    "$(awk -v p="$packets" -v t="$tt" 'BEGIN {print p / t}')" "$(awk -v k="$tk" 'BEGIN {print k / 1024}')" "$(awk -v a="$nt" -v b="$tt" 'BEGIN {print a / b}')"
done
