#!/usr/bin/env bash
# Benchmark (not part of the test suite): `trafficid label` against Debian's `ndpiReader -i FILE`
# on a capture of at least 1 GB built from ../shared/data/captures, side by side in one run,
# best of 3 rounds each. Prints packets/s and peak memory; ratio = ndpiReader time / trafficid time.
# usage: tests/bench/label_bench.sh [BUILD_DIR] [DATA_DIR] [WORK_DIR] [THREADS...]
# DISTINCT=1: give each copy its own addresses (tcprewrite --seed, Debian package tcpreplay), so that
# every copy's flows are new flows for nDPI instead of more packets of the first copy's flows.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build} data=${2:-${TRAFFICID_DATA_DIR:-$root/../shared/data}} work=${3:-$(mktemp -d)}
shift $(( $# < 3 ? $# : 3 ))
threads=("${@:-1}")
tid="$build/bin/trafficid"
mkdir -p "$work"
trap 'rm -f "$work/big.pcap" "$work/base.pcap" "$work"/labels.sqlite*' EXIT

mapfile -t inputs < <(find "$data/captures" -name '*.pcap' | sort | while read -r f; do
  capinfos -E "$f" 2>/dev/null | grep -q 'Ethernet$\|ether$' && echo "$f"; done)
mergecap -a -F pcap -w "$work/base.pcap" "${inputs[@]}"
base=$(stat -c %s "$work/base.pcap")
copies=$(( (1000000000 + base - 1) / base ))
if [[ "${DISTINCT:-0}" == 1 ]]; then
  for k in $(seq "$copies"); do tcprewrite --seed="$k" --fixcsum -i "$work/base.pcap" -o "$work/copy$k.pcap"; done
  mergecap -a -F pcap -w "$work/big.pcap" $(for k in $(seq "$copies"); do echo "$work/copy$k.pcap"; done)
  rm -f "$work"/copy*.pcap
else
  mergecap -a -F pcap -w "$work/big.pcap" $(for _ in $(seq "$copies"); do echo "$work/base.pcap"; done)
fi
packets=$(capinfos -T -r -c "$work/big.pcap" | cut -f2)
echo "input: $(( $(stat -c %s "$work/big.pcap") / 1000000 )) MB, $packets packets ($copies copies of ${#inputs[@]} captures)"
cat "$work/big.pcap" > /dev/null

best() {  # command...: best wall time of 3 and the largest peak RSS, "seconds kb"
  local b=999999 m=0
  for _ in 1 2 3; do
    rm -f "$work"/labels.sqlite*
    read -r s k < <(/usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1)
    b=$(awk -v a="$b" -v c="$s" 'BEGIN {print (c < a) ? c : a}'); (( k > m )) && m=$k
  done
  echo "$b $m"
}
read -r nt nk < <(best ndpiReader -q -i "$work/big.pcap")
printf "%-26s %6.2f s  %9.0f packets/s  peak %6.1f MB\n" "ndpiReader (1 thread)" "$nt" "$(awk -v p="$packets" -v t="$nt" 'BEGIN {print p / t}')" "$(awk -v k="$nk" 'BEGIN {print k / 1024}')"
for n in "${threads[@]}"; do
  read -r tt tk < <(best "$tid" -q label "$work/big.pcap" --db "$work/labels.sqlite" --threads "$n")
  printf "%-26s %6.2f s  %9.0f packets/s  peak %6.1f MB  ratio %.2f\n" "trafficid label ($n thread$([[ $n == 1 ]] || echo s))" "$tt" \
    "$(awk -v p="$packets" -v t="$tt" 'BEGIN {print p / t}')" "$(awk -v k="$tk" 'BEGIN {print k / 1024}')" "$(awk -v a="$nt" -v b="$tt" 'BEGIN {print a / b}')"
done
