# Sourced by the benchmarks: build_big_capture DATA_DIR WORK_DIR FORMAT writes WORK_DIR/big.pcap,
# every Ethernet pcap of DATA_DIR/captures concatenated and repeated to at least 1 GB, in mergecap's
# FORMAT (pcap, nsecpcap). DISTINCT=1 gives each copy its own addresses (tcprewrite --seed, Debian
# package tcpreplay), so every copy's flows are new flows rather than more packets of the first's.
# Sets `copies` and `inputs`.
build_big_capture() {
  local data=$1 work=$2 format=$3
  mapfile -t inputs < <(find "$data/captures" -name '*.pcap' | sort | while read -r f; do
    capinfos -E "$f" 2>/dev/null | grep -q 'Ethernet$\|ether$' && echo "$f"; done)
  mergecap -a -F "$format" -w "$work/base.pcap" "${inputs[@]}"
  local base
  base=$(stat -c %s "$work/base.pcap")
  copies=$(( (1000000000 + base - 1) / base ))
  if [[ "${DISTINCT:-0}" == 1 ]]; then
    for k in $(seq "$copies"); do tcprewrite --seed="$k" --fixcsum -i "$work/base.pcap" -o "$work/copy$k.pcap"; done
    mergecap -a -F "$format" -w "$work/big.pcap" $(for k in $(seq "$copies"); do echo "$work/copy$k.pcap"; done)
    rm -f "$work"/copy*.pcap
  else
    mergecap -a -F "$format" -w "$work/big.pcap" $(for _ in $(seq "$copies"); do echo "$work/base.pcap"; done)
  fi
  rm -f "$work/base.pcap"
}
