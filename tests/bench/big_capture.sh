# Sourced by the benchmarks: build_big_capture DATA_DIR WORK_DIR FORMAT writes WORK_DIR/big.pcap,
# every Ethernet pcap of DATA_DIR/captures concatenated and repeated to at least 1 GB, in mergecap's
# FORMAT (pcap, nsecpcap). Each copy gets its own addresses (tcprewrite --seed, Debian package
# tcpreplay), so every copy's flows are new flows, as in real traffic; DISTINCT=0 keeps the
# addresses, so the copies only add packets to the first copy's flows (nDPI decided them long ago).
# KEEP_COPIES=1 also leaves the copies as separate files in WORK_DIR/copies.
# Sets `copies` and `inputs`. Also best_of_3, the benchmarks' timing loop, and
# bench_dataset_sections, the [label], [features] and [dataset] sections of their experiments.
build_big_capture() {
  local data=$1 work=$2 format=$3
  if [[ "${DISTINCT:-1}" == 1 ]] && ! command -v tcprewrite > /dev/null; then
    echo "tcprewrite gives each copy its own addresses: apt-get install tcpreplay (or DISTINCT=0)" >&2
    return 1
  fi
  mapfile -t inputs < <(find "$data/captures" -name '*.pcap' | sort | while read -r f; do
    capinfos -E "$f" 2>/dev/null | grep -q 'Ethernet$\|ether$' && echo "$f"; done)
  mergecap -a -F "$format" -w "$work/base.pcap" "${inputs[@]}"
  local base
  base=$(stat -c %s "$work/base.pcap")
  copies=$(( (1000000000 + base - 1) / base ))
  mkdir -p "$work/copies"
  for k in $(seq "$copies"); do
    if [[ "${DISTINCT:-1}" == 1 ]]; then tcprewrite --seed="$k" --fixcsum -i "$work/base.pcap" -o "$work/copies/copy$k.pcap"
    else cp "$work/base.pcap" "$work/copies/copy$k.pcap"; fi
  done
  mergecap -a -F "$format" -w "$work/big.pcap" $(for k in $(seq "$copies"); do echo "$work/copies/copy$k.pcap"; done)
  # KEEP_COPIES=1: the copies stay in WORK_DIR/copies, the same packets as a folder of captures.
  [[ "${KEEP_COPIES:-0}" == 1 ]] || rm -rf "$work/copies"
  rm -f "$work/base.pcap"
}

# best_of_3 CLEAN command...: the best wall time of 3 runs and the largest peak RSS, "seconds kb";
# CLEAN (shell code) runs before each round, untimed, to remove what the previous round wrote.
best_of_3() {
  local clean=$1 b=999999 m=0 s k
  shift
  for _ in 1 2 3; do
    eval "$clean"
    read -r s k < <(/usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1)
    b=$(awk -v a="$b" -v c="$s" 'BEGIN {print (c < a) ? c : a}'); (( k > m )) && m=$k
  done
  echo "$b $m"
}

# The benchmarks' experiments after their [capture]: nDPI labels mapped to six classes (the rest
# "other"), Deep Packet vectors, a dataset built anew each time.
bench_dataset_sections() {
  cat << 'TOML'
[label]
class_from = "map"
unmatched = "other"
[label.classes]
Web = ["TLS*", "HTTP*", "QUIC*"]
P2P = { apps = ["BitTorrent", "Gnutella"] }
VPN = { apps = ["OpenVPN", "WireGuard", "Tor"] }
Remote = { apps = ["SSH", "RDP", "VNC", "AnyDesk"] }
Chat = ["*WhatsApp*", "*Telegram*", "*Viber*"]
Video = ["*Skype*", "*Zoom*", "*Teams*"]
[features]
extractor = "deep_packet"
[dataset]
reuse = false
TOML
}
