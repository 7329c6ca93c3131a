#!/usr/bin/env bash
# `trafficid label` into an SQLite database and `trafficid apps` on ../shared/data/captures:
# the per-label flow counts equal those of Debian's ndpiReader 4.2 (flows-ndpi-4.2.tsv), a second
# run skips every unchanged file, and a changed labeler configuration labels them again.
# usage: label_apps.sh TRAFFICID DATA_DIR
set -euo pipefail
tid=$1 data=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -f "$data/flows-ndpi-4.2.tsv" ]] || fail "shared data folder $data is missing (set TRAFFICID_DATA_DIR)"

"$tid" -q label "$data/captures" --db "$work/labels.sqlite" --csv "$work/flows.csv" --threads 1
# Per label: flows in the reference (every flow, so every in-class flow too) and in our database.
awk -F'\t' 'NR > 1 {n[$7]++} END {for (l in n) print l "\t" n[l]}' "$data/flows-ndpi-4.2.tsv" | sort > "$work/reference"
"$tid" apps "$work/labels.sqlite" --format csv | awk -F, '$1 == "application" {print $2 "\t" $4}' | sort > "$work/ours"
diff "$work/reference" "$work/ours" > "$work/diff" || { cat "$work/diff"; fail "per-label flow counts differ from ndpiReader's"; }
# In-class flows (label of the folder's class) per label, as the reference counts them.
awk -F'\t' 'NR > 1 && $12 == 1 {n[$7]++} END {for (l in n) print l "\t" n[l]}' "$data/flows-ndpi-4.2.tsv" | sort > "$work/inclass"
join -t $'\t' "$work/inclass" "$work/ours" | awk -F'\t' '$2 > $3 {bad = 1; print} END {exit bad}' \
  || fail "fewer flows of an in-class label than the reference"
flows=$(($(wc -l < "$work/flows.csv") - 1))
[[ $flows -eq $(($(wc -l < "$data/flows-ndpi-4.2.tsv") - 1)) ]] || fail "CSV holds $flows flows"

# Two threads on a folder (whole files per thread, written in input order) give the same
# database: the same rows with the same ids.
"$tid" -q label "$data/captures" --db "$work/parallel.sqlite" --threads 2
rows='SELECT f.path, l.id, l.protocol, l.src_ip, l.src_port, l.dst_ip, l.dst_port, l.first_ns, l.last_ns, l.packets_c2s,
  l.packets_s2c, l.bytes_c2s, l.bytes_s2c, l.label, l.category FROM flows l JOIN files f ON f.id = l.file_id ORDER BY l.id'
cmp <(sqlite3 "$work/labels.sqlite" "$rows") <(sqlite3 "$work/parallel.sqlite" "$rows") || fail "--threads 2 on a folder labelled differently"
# Two threads on one file (packets sharded by host pair, an nDPI module each) give its flows and
# labels too: the capture with the most flows.
biggest=$(sqlite3 "$work/labels.sqlite" 'SELECT f.path FROM flows l JOIN files f ON f.id = l.file_id GROUP BY 1 ORDER BY COUNT(*) DESC LIMIT 1')
"$tid" -q label "$biggest" --db "$work/one1.sqlite" --threads 1
"$tid" -q label "$biggest" --db "$work/one2.sqlite" --threads 2
[[ $(sqlite3 "$work/one1.sqlite" 'SELECT COUNT(*) FROM flows') -gt 1000 ]] || fail "$biggest: too few flows to tell"
cmp <(sqlite3 "$work/one1.sqlite" "$rows") <(sqlite3 "$work/one2.sqlite" "$rows") || fail "--threads 2 on $biggest labelled differently"
# Flow ids follow the first packet's time, also in a capture whose time goes back: the biggest
# capture moved to a day after another one ends, then that other one appended after it.
other=$(sqlite3 "$work/labels.sqlite" "SELECT f.path FROM flows l JOIN files f ON f.id = l.file_id WHERE f.link_types = '1'
  AND f.path <> '$biggest' GROUP BY 1 ORDER BY COUNT(*) DESC LIMIT 1")
first_ns() { sqlite3 "$work/labels.sqlite" "SELECT $1(l.first_ns) FROM flows l JOIN files f ON f.id = l.file_id WHERE f.path = '$2'"; }
editcap -t $(( ($(first_ns MAX "$other") - $(first_ns MIN "$biggest")) / 1000000000 + 86400 )) "$biggest" "$work/later.pcap"
mergecap -a -F nsecpcap -w "$work/back.pcap" "$work/later.pcap" "$other"
for j in 1 2; do "$tid" -q label "$work/back.pcap" --db "$work/back$j.sqlite" --threads $j; done
for j in 1 2; do
  [[ $(sqlite3 "$work/back$j.sqlite" 'SELECT COUNT(*) FROM flows a JOIN flows b ON b.id = a.id + 1 WHERE b.first_ns < a.first_ns') -eq 0 ]] \
    || fail "--threads $j: flow ids out of first-packet order in a capture whose time goes back"
  [[ $(sqlite3 "$work/back$j.sqlite" 'SELECT first_ns FROM flows ORDER BY id LIMIT 1') == \
     $(first_ns MIN "$other") ]] \
    || fail "--threads $j: the first flow is not the appended earlier capture's first"
done
cmp <(sqlite3 "$work/back1.sqlite" "$rows") <(sqlite3 "$work/back2.sqlite" "$rows") || fail "--threads 2 on a capture going back in time"

# SIGINT in the middle of a two-thread run: the database holds whole files only, each as a full
# run has it, and the next run labels the rest, ending where an uninterrupted run ends.
"$tid" label "$data/captures" --db "$work/stopped.sqlite" --threads 2 2> "$work/stopped.log" &
pid=$!
for _ in $(seq 400); do grep -q 'packets, .* flows' "$work/stopped.log" && break; sleep 0.01; done
kill -INT "$pid"
rc=0; wait "$pid" || rc=$?
complete=$(sqlite3 "$work/stopped.sqlite" 'SELECT COUNT(*) FROM files WHERE complete = 1')
[[ $rc -eq 130 && $complete -ge 1 && $complete -lt 52 ]] || fail "SIGINT: exit $rc, $complete complete files (expected 130 and 1-51)"
[[ $(sqlite3 "$work/stopped.sqlite" 'SELECT COUNT(*) FROM files WHERE complete = 0') -eq 0 ]] || fail "SIGINT left a partial file"
per_file='SELECT f.path, COUNT(*), SUM(l.packets_c2s + l.packets_s2c) FROM flows l JOIN files f ON f.id = l.file_id GROUP BY 1 ORDER BY 1'
join -t '|' <(sqlite3 "$work/stopped.sqlite" "$per_file") <(sqlite3 "$work/labels.sqlite" "$per_file") |
  awk -F'|' '$2 != $4 || $3 != $5 {bad = 1; print} END {exit bad}' || fail "SIGINT: a file's flows differ from a full run's"
"$tid" label "$data/captures" --db "$work/stopped.sqlite" --threads 2 2> "$work/resumed.log"
grep -q "$((52 - complete)) files labelled, $complete unchanged and skipped" "$work/resumed.log" || fail "resume: $(tail -1 "$work/resumed.log")"
# Each file's line says where its time went.
[[ $(grep -Ec 'packets, [0-9]+ flows.*; labelled in [0-9.]+ s \([0-9.]+ s after the last packet\), written in [0-9.]+ s$' "$work/resumed.log") \
   -eq $((52 - complete)) ]] || fail "per-file timings: $(head -1 "$work/resumed.log")"
cmp <(sqlite3 "$work/stopped.sqlite" "$per_file") <(sqlite3 "$work/labels.sqlite" "$per_file") || fail "resumed run differs from a full run"

# A database of layout 1 (SHA-256 digests in files.sha256) is carried over: every file is labelled
# again once, then skipped.
cp "$work/parallel.sqlite" "$work/old.sqlite"
sqlite3 "$work/old.sqlite" 'ALTER TABLE files RENAME COLUMN content_hash TO sha256; UPDATE files SET sha256 = "0123"; PRAGMA user_version = 1'
"$tid" label "$data/captures" --db "$work/old.sqlite" --threads 2 2> "$work/old.log"
grep -q "52 files labelled, 0 unchanged" "$work/old.log" || fail "layout 1: $(tail -1 "$work/old.log")"
[[ $(sqlite3 "$work/old.sqlite" 'PRAGMA user_version') -eq 2 && \
   $(sqlite3 "$work/old.sqlite" "SELECT COUNT(*) FROM files WHERE content_hash LIKE 'xxh3-128:%'") -eq 52 ]] || fail "layout 1 not carried over"

# A second run skips every unchanged file; another labeler configuration labels them again.
"$tid" label "$data/captures" --db "$work/labels.sqlite" 2> "$work/second"
grep -q "0 files labelled, 52 unchanged and skipped" "$work/second" || fail "second run: $(tail -1 "$work/second")"
"$tid" label "$data/captures" --db "$work/labels.sqlite" -p udp_max_packets=30 2> "$work/third"
grep -q "52 files labelled, 0 unchanged" "$work/third" || fail "changed config: $(tail -1 "$work/third")"
[[ $(sqlite3 "$work/labels.sqlite" 'SELECT COUNT(*) FROM files WHERE complete = 1') -eq 52 ]] || fail "files table"
# Odd packets are counted per file, never a reason to stop: fragments and non-IP frames of the DNS captures.
[[ $(sqlite3 "$work/labels.sqlite" "SELECT fragments FROM files WHERE path LIKE '%dns_fragmented.pcap'") -gt 0 ]] \
  || fail "fragments not counted"
[[ $(sqlite3 "$work/labels.sqlite" "SELECT SUM(not_ip_packets) FROM files") -gt 0 ]] || fail "non-IP frames not counted"
"$tid" apps "$work/labels.sqlite" --format json > "$work/apps.json"
grep -q '"name": "TLS.AnyDesk"' "$work/apps.json" || fail "apps --format json"
"$tid" apps "$work/labels.sqlite" > "$work/apps.txt"
grep -Eq '^BitTorrent +Download +8[0-9]{2} ' "$work/apps.txt" || fail "apps table: $(head -3 "$work/apps.txt")"
# An experiment's label stage: class from the folder, kept only where nDPI's label belongs to the
# class. With the classes defined by the labels the reference counts in-class, the flows kept per
# class are exactly the reference's in-class flows.
{
  echo '[capture]'
  echo "sources = [\"pcap:$data/captures\"]"
  echo '[label]'
  echo 'class_from = "directory"'
  echo 'threads = 2'
  echo '[label.classes]'
  awk -F'\t' 'NR > 1 && $12 == 1 {print $2 "\t" $7}' "$data/flows-ndpi-4.2.tsv" | sort -u |
    awk -F'\t' '{p[$1] = p[$1] (p[$1] ? ", " : "") "\"" $2 "\""} END {for (c in p) print c " = { patterns = [" p[c] "] }"}'
} > "$work/directory.toml"
"$tid" -q run "$work/directory.toml" --run-dir "$work/run"
awk -F, 'NR > 1 && $NF != "" {n[$NF]++} END {for (c in n) print c "\t" n[c]}' "$work/run/label/flows.csv" | sort > "$work/kept"
awk -F'\t' 'NR > 1 && $12 == 1 {n[$2]++} END {for (c in n) print c "\t" n[c]}' "$data/flows-ndpi-4.2.tsv" | sort > "$work/expected"
# A folder whose class the map does not define keeps all its flows: Facetime (USTC-TFC, addresses
# randomised per packet, so nDPI calls it Unknown and the reference has no in-class flow for it).
grep -qx $'Facetime\t6000' "$work/kept" || fail "Facetime: $(grep Facetime "$work/kept")"
diff "$work/expected" <(grep -v '^Facetime' "$work/kept") || fail "in-class flows per class differ from the reference"

echo "label_apps: $(wc -l < "$work/ours") labels with ndpiReader's flow counts; unchanged files skipped"
