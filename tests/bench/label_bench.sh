#!/usr/bin/env bash
# Benchmark (not part of the test suite): `trafficid label` against Debian's `ndpiReader -i FILE`
# on a capture of at least 1 GB built from ../shared/data/captures, side by side in one run,
# best of 3 rounds each. Prints packets/s and peak memory; ratio = ndpiReader time / trafficid time;
# scaling = one thread's time / N threads' time. Then the same packets as a folder of separate
# captures (the copies the big one is made of): `trafficid label FOLDER` against ndpiReader run on
# each of them, where threads label whole files.
# usage: tests/bench/label_bench.sh [BUILD_DIR] [DATA_DIR] [WORK_DIR] [THREADS...]
# Each copy has its own addresses, so its flows are new to nDPI (DISTINCT=0: the same flows again;
# see big_capture.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build} data=${2:-${TRAFFICID_DATA_DIR:-$root/../shared/data}} work=${3:-$(mktemp -d)}
shift $(( $# < 3 ? $# : 3 ))
threads=("${@:-1}")
tid="$build/bin/trafficid"
mkdir -p "$work"
trap 'rm -rf "$work/big.pcap" "$work/base.pcap" "$work/copies" "$work"/labels.sqlite*' EXIT

source "$root/tests/bench/big_capture.sh"
KEEP_COPIES=1 build_big_capture "$data" "$work" pcap
packets=$(capinfos -T -r -c "$work/big.pcap" | cut -f2)
echo "input: $(( $(stat -c %s "$work/big.pcap") / 1000000 )) MB, $packets packets ($copies copies of ${#inputs[@]} captures)"
cat "$work/big.pcap" > /dev/null

row() {  # row NAME SECONDS KB [EXTRA]
  printf "%-34s %6.2f s  %9.0f packets/s  peak %6.1f MB  %s\n" "$1" "$2" "$(awk -v p="$packets" -v t="$2" 'BEGIN {print p / t}')" \
    "$(awk -v k="$3" 'BEGIN {print k / 1024}')" "${4:-}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# compare NAME PEER_SECONDS INPUT: trafficid label INPUT with each thread count, against the peer.
compare() {
  local name=$1 peer=$2 input=$3 one="" n tt tk
  for n in "${threads[@]}"; do
    read -r tt tk < <(best_of_3 'rm -f "$work"/labels.sqlite*' "$tid" -q label "$input" --db "$work/labels.sqlite" --threads "$n")
    [[ -n $one ]] || one=$tt
    row "$name ($n thread$([[ $n == 1 ]] || echo s))" "$tt" "$tk" "ratio $(ratio "$peer" "$tt")  scaling $(ratio "$one" "$tt")"
    # One capture: where one more run's time went (the part after the last packet and the single
    # database writer are what more threads cannot share).
    if [[ -f $input ]]; then
      rm -f "$work"/labels.sqlite*
      echo "    $("$tid" label "$input" --db "$work/labels.sqlite" --threads "$n" 2>&1 | grep -o 'labelled in .*')"
    fi
  done
}

read -r nt nk < <(best_of_3 'rm -f "$work"/labels.sqlite*' ndpiReader -q -i "$work/big.pcap")
row "ndpiReader (1 thread)" "$nt" "$nk"
compare "trafficid label" "$nt" "$work/big.pcap"

echo "the same packets as $copies separate captures:"
# ndpiReader once per file, as trafficid labels them (its playlist, -i LIST, would keep one flow
# table across the files and so count a flow that goes on in the next file once).
read -r nt nk < <(best_of_3 'rm -f "$work"/labels.sqlite*' bash -c 'for f in "$1"/copies/*.pcap; do ndpiReader -q -i "$f"; done' _ "$work")
row "ndpiReader -i FILE, each file" "$nt" "$nk"
compare "trafficid label folder" "$nt" "$work/copies"
