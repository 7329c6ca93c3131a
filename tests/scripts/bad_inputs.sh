#!/usr/bin/env bash
# Bad input gets a clear message and loses nothing already good. One section per row of the
# README's "Bad input" table: an empty capture, a capture of only non-IP frames, a capture this
# user may not read, a dataset of one class, an empty validation split, kill -9 during `trafficid
# label` then a re-run, a full disk under a dataset, a labels database and a live capture.
# Needs root for the small tmpfs and setpriv (CI runs as root); without, those rows say so.
# usage: bad_inputs.sh TRAFFICID SOURCE_DIR
set -euo pipefail
tid=$(realpath "$1") src=$(realpath "$2")
py=/usr/bin/python3
work=$(mktemp -d)
mounted=()
trap 'for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || true; done; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$work"
exp="$src/experiments/quickstart.toml"
expect() {  # STATUS LOG MESSAGE COMMAND...: runs COMMAND, wants STATUS and MESSAGE in its output
  local want=$1 log=$2 message=$3 status=0
  shift 3
  "$@" > "$log" 2>&1 || status=$?
  [[ $status -eq $want ]] || { cat "$log"; fail "$* ended with status $status, not $want"; }
  grep -qF -- "$message" "$log" || { cat "$log"; fail "$*: no '$message'"; }
}
db_count() {  # DB SQL: one number
  $py -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" "$1" "$2"
}
tiny_disk() {  # FOLDER SIZE: a tmpfs of SIZE there, or status 1 where one cannot be mounted
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2" tmpfs "$1" 2> /dev/null || return 1
  mounted+=("$1")
}

# Captures: three of the quickstart's kind, an empty file, a header without packets, ARP only.
mkdir caps
for i in 1 2 3; do "$tid" synth -o "caps/c$i.pcap" -p seed=$i -p flows_per_app=30 > /dev/null 2>&1; done
: > empty.pcap
$py - <<'PY'
import struct
header = struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)
open('header_only.pcap', 'wb').write(header)
arp = bytes.fromhex('ffffffffffff00010203040508060001080006040001000102030405c0a80001000000000000c0a80002')
open('arp_only.pcap', 'wb').write(header + b''.join(struct.pack('<IIII', 1700000000 + i, 0, len(arp), len(arp)) + arp
                                                    for i in range(5)))
PY

# 1. An empty capture and a header without packets: said, labelled as holding nothing, exit 1 / 0.
expect 1 empty.log "empty.pcap: an empty file (0 bytes): no capture header, no packets; skipped" \
  "$tid" label empty.pcap --db empty.sqlite
expect 0 header.log "header_only.pcap: 0 packets, 0 flows" "$tid" label header_only.pcap --db header.sqlite
# 2. Only non-IP frames: counted as such; a run on it stops before training, saying why.
expect 0 arp.log "arp_only.pcap: 5 packets, 0 flows, 5 not IP" "$tid" label arp_only.pcap --db arp.sqlite
expect 1 arp-run.log "the training split holds 0 sample(s) in 0 class(es): a classifier needs two classes at least" \
  "$tid" run "$exp" --set 'capture.sources=["pcap"]' --set "capture.pcap={paths=[\"$work/arp_only.pcap\"]}" \
  --set evaluate.sources=[] --set experiment.output_dir=\""$work/out"\"
grep -qF "do the captures hold IP traffic?" arp-run.log || fail "no hint for a capture without IP: $(cat arp-run.log)"

# 3. A capture this user may not read: left out with the reason, the others labelled, exit 1.
mkdir -m 777 shared && cp caps/c1.pcap shared/mine.pcap && cp caps/c2.pcap shared/secret.pcap
chmod 644 shared/mine.pcap && chmod 600 shared/secret.pcap && chmod 711 "$work"
if setpriv --reuid=65534 --regid=65534 --clear-groups "$tid" --version > /dev/null 2>&1; then
  expect 1 perm.log "secret.pcap: cannot read it (Permission denied): check its permissions" \
    setpriv --reuid=65534 --regid=65534 --clear-groups "$tid" label "$work/shared" --db "$work/shared/labels.sqlite"
  grep -qF "1 files labelled, 0 unchanged and skipped, 1 unreadable and left out" perm.log || fail "perm: $(cat perm.log)"
  [[ $(db_count shared/labels.sqlite "select count(*) from files where path like '%mine.pcap'") -eq 1 ]] \
    || fail "the readable capture was not labelled"
else
  echo "permission denied: not checked (an unprivileged user cannot run $tid from this folder)"
fi

# 4. One class, and 5. an empty validation split: the run stops before training, the dataset kept.
expect 1 one-class.log "the training split holds 8 sample(s) in 1 class(es): Web (8): a classifier needs two classes" \
  "$tid" run "$exp" --set 'label.classes={Web={patterns=["HTTP*"]}}' --set evaluate.sources=[] \
  --set experiment.output_dir=\""$work/out"\"
expect 1 no-validation.log "the validation split is empty" \
  "$tid" run "$exp" --set 'dataset.fractions=[0.8,0.0,0.2]' --set evaluate.sources=[] --set experiment.output_dir=\""$work/out"\"
grep -qF "Give it a share in dataset.fractions" no-validation.log || fail "no fix named: $(cat no-validation.log)"

# 6. kill -9 during `trafficid label` of a folder, then the same command: the database holds
#    whole files only, then all of them, as an uninterrupted run does.
mkdir many
for i in $(seq 1 12); do "$tid" synth -o "many/m$i.pcap" -p seed=$((i + 10)) -p flows_per_app=100 > /dev/null 2>&1; done
"$tid" -q label many --db whole.sqlite -j 1 || fail "label"
"$tid" label many --db killed.sqlite -j 1 > killed.log 2>&1 &
pid=$!
for _ in $(seq 1 2000); do grep -q "m2.pcap:\|m3.pcap:" killed.log 2>/dev/null && break; sleep 0.005; done
kill -9 $pid 2>/dev/null || fail "label ended before it could be killed"
wait $pid 2>/dev/null || true
before=$(db_count killed.sqlite "select count(*) from files")
[[ $before -lt 12 ]] || fail "killed too late: $before files"
[[ $(db_count killed.sqlite "pragma integrity_check") == ok ]] || fail "the killed database is damaged"
$py - killed.sqlite whole.sqlite <<'PY' || fail "a killed run left a file half written"
import sqlite3, sys
k, w = (sqlite3.connect(p) for p in sys.argv[1:])
for (path,) in k.execute("select path from files"):
    n = lambda db: db.execute("select count(*) from flows join files on flows.file_id = files.id where files.path = ?", (path,)).fetchone()[0]
    assert n(k) == n(w), (path, n(k), n(w))
PY
expect 0 rerun.log "$before unchanged and skipped" "$tid" label many --db killed.sqlite -j 1
[[ $(db_count killed.sqlite "select count(*) from flows") -eq $(db_count whole.sqlite "select count(*) from flows") ]] \
  || fail "the re-run did not complete the database"

# 7-9. A full disk.
if tiny_disk full-ds 200k && tiny_disk full-db 300k && tiny_disk full-live 300k; then
  # 7. Under a dataset: the file and the cause named; with room again, the same run builds it.
  ds=(--set evaluate.sources=[] --set dataset.directory=\""$work/full-ds/datasets"\" --set 'features.flow_start.payload_bytes=1024'
      --set 'models={gbdt={rounds=10}}' --set experiment.output_dir=\""$work/out"\")
  expect 1 full-ds.log "No space left on device (is the disk full?)" "$tid" run "$exp" "${ds[@]}"
  grep -qF "$work/full-ds/datasets/quickstart-" full-ds.log || fail "the dataset file is not named: $(cat full-ds.log)"
  mount -o remount,size=64m "$work/full-ds"
  expect 0 room.log "run folder:" "$tid" run "$exp" "${ds[@]}"
  # 8. Under a labels database: what to do said; the files written before are whole; the re-run with room completes it.
  expect 1 full-db.log "the disk is full (or failing): free space and run the same command again" \
    "$tid" label many --db "$work/full-db/labels.sqlite" -j 1
  [[ $(db_count full-db/labels.sqlite "pragma integrity_check") == ok ]] || fail "the database on a full disk is damaged"
  kept=$(db_count full-db/labels.sqlite "select count(*) from files")
  mount -o remount,size=64m "$work/full-db"
  expect 0 full-db2.log "$kept unchanged and skipped" "$tid" label many --db "$work/full-db/labels.sqlite" -j 1
  [[ $(db_count full-db/labels.sqlite "select count(*) from flows") -eq $(db_count whole.sqlite "select count(*) from flows") ]] \
    || fail "the database completed after a full disk differs"
  # 9. Under a live capture: it stops at once (exit 1), the file cut back to its last whole packet.
  port=$((40000 + RANDOM % 20000))
  "$tid" capture -i lo -w "$work/full-live" -f "udp and dst port $port" --count 5000 --progress 0 > live.log 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do grep -q "listening" live.log && break; sleep 0.1; done
  for i in $(seq 1 3000); do
    kill -0 $pid 2>/dev/null || break
    head -c 1000 /dev/zero > "/dev/udp/127.0.0.1/$port" || true
    sleep 0.002
  done
  status=0
  for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -0 $pid 2>/dev/null && { kill -9 $pid; fail "the capture went on after the disk was full: $(cat live.log)"; }
  wait $pid || status=$?
  [[ $status -eq 1 ]] || fail "a live capture on a full disk ended with $status: $(cat live.log)"
  grep -q "No space left on device; the file was cut back to its last whole packet" live.log || fail "live: $(cat live.log)"
  file=$(ls full-live/*.pcap)
  kept=$(sed -n 's/.*cut back to its last whole packet (\([0-9]*\) packets).*/\1/p' live.log)
  expect 0 live-label.log "$(basename "$file"): $kept packets" "$tid" label "$file" --db live.sqlite
else
  echo "full disk: not checked (cannot mount a small tmpfs here)"
fi
echo "bad_inputs: empty, non-IP, unreadable captures; one class; no validation split; kill -9 during label; full disks"
