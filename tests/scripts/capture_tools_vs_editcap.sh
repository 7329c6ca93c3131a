#!/usr/bin/env bash
# `trafficid convert` and `trafficid split` against editcap on real captures: the outputs must be
# the same packets (bytes and timestamps). pcap outputs are compared byte for byte with editcap's
# writing the same pcap flavour; pcapng outputs are compared after editcap rewrites both as pcap.
# usage: capture_tools_vs_editcap.sh TRAFFICID DATA_DIR
set -euo pipefail
tid=$1 data=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -d "$data/captures" ]] || fail "shared data folder $data is missing (set TRAFFICID_DATA_DIR)"
command -v editcap > /dev/null || fail "editcap is missing (Debian package tshark)"

# The pcap flavour a file's timestamps need, as editcap names it.
flavour() { capinfos -M "$1" 2>/dev/null | grep -q 'nanoseconds' && echo nsecpcap || echo pcap; }
# Two pcap files: equal but for the snapshot length of the header, which editcap sets to 262144
# when the input is pcapng (where it is per interface) and trafficid copies from the interface.
same_pcap() {
  cmp -s <(head -c 16 "$1") <(head -c 16 "$2") && cmp -s <(head -c 24 "$1" | tail -c 4) <(head -c 24 "$2" | tail -c 4) \
    && cmp -s <(tail -c +25 "$1") <(tail -c +25 "$2")
}
same_packets() {  # two capture files, any format: same packets, bytes and timestamps
  editcap -F nsecpcap "$1" "$work/a.pcap" && editcap -F nsecpcap "$2" "$work/b.pcap" && same_pcap "$work/a.pcap" "$work/b.pcap"
}

files=()
while IFS= read -r f; do files+=("$f"); done < <(find "$data/captures" -name '*.pcapng' | sort; \
  find "$data/captures" -name '*.pcap' | sort | head -12; echo "$data/ndpi-4.2-tests/pcap/z3950.pcapng")
checked=0
for f in "${files[@]}"; do
  name=$(basename "$f")
  # convert to pcap: byte for byte what `editcap -F pcap|nsecpcap` writes.
  "$tid" -q convert "$f" "$work/ours.pcap"
  editcap -F "$(flavour "$f")" "$f" "$work/theirs.pcap"
  same_pcap "$work/ours.pcap" "$work/theirs.pcap" || fail "convert $name differs from editcap -F $(flavour "$f")"
  # and back to pcapng: the same packets.
  "$tid" -q convert "$work/ours.pcap" "$work/ours.pcapng"
  same_packets "$work/ours.pcapng" "$f" || fail "pcap -> pcapng of $name lost or changed packets"
  # split -c: the same files with the same packets as editcap -c.
  rm -rf "$work/t" "$work/e" && mkdir "$work/t" "$work/e"
  ext=${name##*.}
  "$tid" -q split -c 100 "$f" "$work/t/part.$ext"
  editcap -F "$([[ $ext == pcapng ]] && echo pcapng || flavour "$f")" -c 100 "$f" "$work/e/part.$ext"
  ours=$(ls "$work/t" | tr '\n' ' ') theirs=$(ls "$work/e" | tr '\n' ' ')
  [[ "$ours" == "$theirs" ]] || fail "split -c 100 $name: files [$ours] vs editcap's [$theirs]"
  for p in "$work"/t/*; do
    if [[ $ext == pcapng ]]; then same_packets "$p" "$work/e/$(basename "$p")" || fail "split $name: $(basename "$p")"
    else same_pcap "$p" "$work/e/$(basename "$p")" || fail "split $name: $(basename "$p") differs from editcap's"; fi
  done
  checked=$((checked + 1))
done
# split -i (seconds) on a long capture.
long="$data/captures/RDP/rdp.pcap"
rm -rf "$work/t" "$work/e" && mkdir "$work/t" "$work/e"
"$tid" -q split -i 10 "$long" "$work/t/s.pcap"
editcap -F "$(flavour "$long")" -i 10 "$long" "$work/e/s.pcap"
[[ "$(ls "$work/t")" == "$(ls "$work/e")" ]] || fail "split -i 10: other files than editcap's"
for p in "$work"/t/*; do cmp -s "$p" "$work/e/$(basename "$p")" || fail "split -i: $(basename "$p")"; done
echo "split -i 10: $(ls "$work/t" | wc -l) files equal to editcap's"

# Damaged input: the good packets are kept, the damage is reported with its offset, status 1.
set +e
"$tid" convert "$data/ndpi-4.2-tests/pcap/fuzz-2021-10-13.pcap" "$work/damaged.pcap" 2> "$work/err"; status=$?
set -e
[[ $status -eq 1 ]] || fail "convert of a damaged file: status $status"
grep -q "damaged at byte 237" "$work/err" || fail "damage not reported: $(cat "$work/err")"
[[ "$(capinfos -T -r -c "$work/damaged.pcap" | cut -f2)" == 1 ]] || fail "the good packet before the damage was not kept"
[[ -z "$(ls -A "$work" | grep '\.part$' || true)" ]] || fail "temporary files left behind"
# A full disk: the output is cut back to its last whole packet and stays a valid capture.
mkdir "$work/full"
if mount -t tmpfs -o size=256k tmpfs "$work/full" 2> /dev/null; then
  set +e
  "$tid" -q convert "$data/captures/AnyDesk/anydesk.pcap" "$work/full/out.pcap" 2> "$work/err"; status=$?
  set -e
  kept=$(capinfos -T -r -c "$work/full/out.pcap" 2>/dev/null | cut -f2) || kept=invalid
  umount "$work/full"
  [[ $status -eq 1 ]] || fail "convert onto a full disk: status $status"
  grep -q "cut back to its last whole packet" "$work/err" || fail "full disk not reported: $(cat "$work/err")"
  [[ "$kept" =~ ^[0-9]+$ && $kept -gt 0 ]] || fail "the output on the full disk is not a valid capture ($kept)"
  echo "full disk: status 1, $kept whole packets kept in a valid file"
else
  echo "full disk: not checked (cannot mount a small tmpfs here)"
fi
echo "capture_tools_vs_editcap: $checked captures converted and split exactly as editcap does"
