#!/usr/bin/env bash
# `trafficid prepro` on ../shared/data/captures: the dataset loads with NumPy alone and matches its
# manifest; the flow split keeps every flow, and every identical sample, on one side; it does not
# depend on the thread count; a packet split is flagged as leaking; balancing touches the training
# split only; strict masking zeroes the shortcut fields; flow-level extractors give one row per
# flow; an unchanged second run reuses the dataset, a changed input rebuilds it; kill -9 in the
# middle leaves no complete-looking dataset and the next run builds it again; a dataset in parts
# (--part I/N): a damaged or killed part, built again, merges into one process's dataset.
# usage: prepro_dataset.sh TRAFFICID DATA_DIR SOURCE_DIR
set -euo pipefail
tid=$(realpath "$1") data=$(realpath "$2") src=$(realpath "$3")
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -d "$data/captures" ]] || fail "shared data folder $data is missing (set TRAFFICID_DATA_DIR)"
$py -c 'import numpy' || fail "python3-numpy is not installed (scripts/setup.sh installs it)"

cat > "$work/app.toml" <<TOML
[experiment]
name = "app"
seed = 11
output_dir = "$work/runs"
[capture]
sources = ["pcap:$data/captures"]
[capture.pcap]
recursive = true
[label]
class_from = "directory"
[label.classes]
DNS = { masters = ["DNS"] }
[features]
extractor = "deep_packet"
threads = 2
[dataset]
split = "flow"
TOML
dataset_of() { sed -n 's/.*stage dataset[^/]*\(\/[^ ]*\).*/\1/p' "$1" | head -1; }

"$tid" prepro "$work/app.toml" > "$work/first.log" 2>&1 || { cat "$work/first.log"; fail "prepro"; }
ds=$(dataset_of "$work/first.log")
[[ -f "$ds/manifest.json" ]] || { cat "$work/first.log"; fail "no dataset folder in the log"; }

# NumPy alone: the module and the four-line recipe of its docstring agree with the manifest.
$py - "$ds" "$src/python" <<'PY' || fail "dataset checks"
import json, os, sys
import numpy as np
ds, lib = sys.argv[1:3]
sys.path.insert(0, lib)
import trafficid_dataset as td
m = td.manifest(ds)
assert m["features"]["storage"] == "ragged" and m["features"]["shape"] == [1500], m["features"]
k = len(m["classes"])
flows_by_split, hashes_by_split = [set(), set(), set()], [set(), set(), set()]
for split, code in td.SPLITS.items():
    X, y = td.load(ds, split)
    assert X.shape == (sum(m["counts"][split]), 1500) and X.dtype == np.uint8, (split, X.shape)
    assert np.array_equal(np.bincount(y, minlength=k), np.array(m["counts"][split])), split
    flows_by_split[code] = set(td.column(ds, "flow", split).tolist())
    hashes_by_split[code] = {row.tobytes() for row in X}
    # IP addresses are masked in every row (IPv4: bytes 12-19; IPv6: 8-39).
    v4 = X[:, 0] >> 4 == 4
    assert not X[v4, 12:20].any() and not X[~v4, 8:40].any(), "addresses not masked"
for a in range(3):
    for b in range(a + 1, 3):
        assert not flows_by_split[a] & flows_by_split[b], f"a flow in splits {a} and {b}"
        assert not hashes_by_split[a] & hashes_by_split[b], f"identical samples in splits {a} and {b}"
# The recipe of the module's docstring, on the first shard.
s = os.path.join(ds, m["shards"][0]["name"])
lens = np.load(f"{s}.len.npy"); flat = np.load(f"{s}.bytes.npy")
X = np.zeros((len(lens), 1500), np.uint8)
X[np.arange(1500) < lens[:, None]] = flat
assert np.array_equal(X, td.shard_features(ds, m, m["shards"][0]["name"]))
assert int(lens.sum()) == flat.size
# DNS is a class of its own here, yet Deep Packet drops DNS packets: it has flows but no rows.
assert sum(m["counts"][s][m["classes"].index("DNS")] for s in td.SPLITS) == 0
st = m["statistics"]
assert st["packets_read"] == 87366 and 60000 < st["rows"] <= st["packets_in_flows"] <= 87366, st
assert not m["split"]["leaks"] and m["split"]["method"] == "flow"
print(json.dumps({"rows": st["rows"], "bytes_per_row": round(st["bytes_per_row"], 1),
                  "excluded": m["excluded"], "train": sum(m["counts"]["train"]), "test": sum(m["counts"]["test"])}))
PY

# Every packet both keep equals the scapy reference's vector.
[[ -f "$data/../bench/deeppacket_scapy.py" ]] || fail "reference peer $data/../bench/deeppacket_scapy.py is missing"
$py -c 'import scapy' || fail "python3-scapy is not installed (scripts/setup.sh installs it)"
$py "$src/tests/scripts/deep_packet_vs_scapy.py" "$data/../bench/deeppacket_scapy.py" "$ds" "$data/captures" \
  > "$work/scapy.log" 2>&1 || { cat "$work/scapy.log"; fail "vectors differ from the scapy reference"; }
grep -v WARNING "$work/scapy.log"

# One thread gives the same rows, labels and splits (rows come in another order).
rows_of() {
  $py - "$1" "$src/python" <<'PY'
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
import trafficid_dataset as td
m = td.manifest(sys.argv[1])
out = []
for s in m["shards"]:
    b = f"{sys.argv[1]}/{s['name']}"
    f, p, y, sp = (np.load(f"{b}.{c}.npy") for c in ("file", "packet", "y", "split"))
    out += [(int(a), int(c), int(d), int(e)) for a, c, d, e in zip(f, p, y, sp)]
for r in sorted(out):
    print(*r)
PY
}
"$tid" prepro "$work/app.toml" --set features.threads=1 --set dataset.directory="$work/one" > "$work/one.log" 2>&1 \
  || { cat "$work/one.log"; fail "prepro with one thread"; }
cmp <(rows_of "$ds") <(rows_of "$(dataset_of "$work/one.log")") || fail "one and two threads split differently"

# Unchanged config and inputs: reused without reading a packet.
"$tid" prepro "$work/app.toml" > "$work/second.log" 2>&1
grep -q "reusing $ds" "$work/second.log" || { cat "$work/second.log"; fail "unchanged run did not reuse the dataset"; }
grep -q "stage capture" "$work/second.log" && fail "a reused dataset read the captures again"

# A packet split is allowed by name only, and flagged.
"$tid" prepro "$work/app.toml" --set dataset.split=packet > "$work/packet.log" 2>&1
grep -q "LEAKS" "$work/packet.log" || { cat "$work/packet.log"; fail "packet split not flagged"; }
$py -c "import json,sys; m=json.load(open(sys.argv[1]+'/manifest.json')); assert m['split']['leaks'] is True" \
  "$(dataset_of "$work/packet.log")" || fail "manifest of a packet split does not say it leaks"

# Balancing changes the training split only; validation and test keep their natural distribution.
"$tid" prepro "$work/app.toml" --set dataset.balance=cap --set dataset.max_per_class=1000 > "$work/cap.log" 2>&1
$py - "$ds" "$(dataset_of "$work/cap.log")" <<'PY' || fail "cap balancing"
import json, sys
a, b = (json.load(open(d + "/manifest.json")) for d in sys.argv[1:3])
assert b["counts"]["train"] == [min(n, 1000) for n in a["counts"]["train"]], b["counts"]["train"]
assert b["counts"]["validation"] == a["counts"]["validation"] and b["counts"]["test"] == a["counts"]["test"]
assert b["excluded"]["balancing"] == sum(a["counts"]["train"]) - sum(b["counts"]["train"])
PY
"$tid" prepro "$work/app.toml" --set dataset.balance=undersample > "$work/under.log" 2>&1
$py - "$(dataset_of "$work/under.log")" <<'PY' || fail "undersampling"
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
train = [n for n in m["counts"]["train"] if n > 0]
assert len(set(train)) == 1, m["counts"]["train"]
PY

# Strict masking: ports, IP ID, TTL, checksums, TCP sequence/ack/window/options are zero.
"$tid" prepro "$work/app.toml" --set features.deep_packet.masking=strict > "$work/strict.log" 2>&1
$py - "$(dataset_of "$work/strict.log")" "$src/python" <<'PY' || fail "strict masking"
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
import trafficid_dataset as td
X, _ = td.load(sys.argv[1], None)
v4 = X[X[:, 0] == 0x45]                       # IPv4 without options
assert len(v4) > 10000
assert not v4[:, [4, 5, 8, 10, 11]].any(), "IPv4 ID, TTL or checksum left"
tcp = v4[v4[:, 9] == 6]
assert len(tcp) > 5000 and not tcp[:, 20:32].any() and not tcp[:, 34:38].any(), "TCP ports/seq/ack/window/checksum left"
opts = tcp[(tcp[:, 32] >> 4) > 5]
for row in opts[:500]:
    assert not row[40:20 + (row[32] >> 4) * 4].any(), "TCP options left"
udp = v4[v4[:, 9] == 17]
assert len(udp) > 5000 and not udp[:, 20:24].any() and not udp[:, 26:28].any() and not udp[:, 28:40].any()
PY

# Flow-level extractors: one row per flow with samples; flow_stats is dense float32.
"$tid" prepro "$work/app.toml" --set features.extractor=flow_stats > "$work/stats.log" 2>&1 || { cat "$work/stats.log"; fail "flow_stats"; }
"$tid" prepro "$work/app.toml" --set features.extractor=flow_packets > "$work/fp.log" 2>&1 || { cat "$work/fp.log"; fail "flow_packets"; }
$py - "$(dataset_of "$work/stats.log")" "$(dataset_of "$work/fp.log")" "$src/python" <<'PY' || fail "flow-level datasets"
import sys, numpy as np
sys.path.insert(0, sys.argv[3])
import trafficid_dataset as td
stats, fp = sys.argv[1:3]
m = td.manifest(stats)
assert m["features"]["dtype"] == "float32" and m["features"]["storage"] == "dense"
assert len(m["features"]["columns"]) == m["features"]["shape"][0]
X, y = td.load(stats, None)
assert X.dtype == np.float32 and np.isfinite(X).all()
flows = td.column(stats, "flow", None)
assert len(np.unique(flows)) == len(flows) and m["statistics"]["rows"] == m["statistics"]["flows"], "one row per flow"
cols = m["features"]["columns"]
count, fwd, bwd = (X[:, cols.index(c)] for c in ("all_size_count", "fwd_size_count", "bwd_size_count"))
assert np.array_equal(count, fwd + bwd) and (count >= 1).all()
assert (X[:, cols.index("all_size_min")] <= X[:, cols.index("all_size_p50")]).all()
assert (X[:, cols.index("all_size_p50")] <= X[:, cols.index("all_size_max")]).all()
assert (X[:, cols.index("size_0")] > 0).all(), "a flow's first packet comes from its client"
mp = td.manifest(fp)
assert mp["features"]["shape"] == [8, 256] and mp["features"]["storage"] == "ragged"
Xp, _ = td.load(fp, None)
assert Xp.shape[1:] == (8, 256) and len(np.unique(td.column(fp, "flow", None))) == len(Xp)
assert not Xp[:, 0, 12:20][Xp[:, 0, 0] >> 4 == 4].any()
PY

# A changed input rebuilds: a folder of three captures, one of them touched.
mkdir -p "$work/small/SSH" "$work/small/Tor"
cp "$data"/captures/SSH/*.pcap "$work/small/SSH/" && cp "$data"/captures/Tor/* "$work/small/Tor/"
sed "s|pcap:$data/captures|pcap:$work/small|" "$work/app.toml" > "$work/small.toml"
"$tid" prepro "$work/small.toml" > "$work/s1.log" 2>&1
"$tid" prepro "$work/small.toml" > "$work/s2.log" 2>&1
grep -q reusing "$work/s2.log" || fail "small dataset not reused"
touch "$work"/small/Tor/*
"$tid" prepro "$work/small.toml" > "$work/s3.log" 2>&1
grep -q "changed since the dataset was built" "$work/s3.log" || { cat "$work/s3.log"; fail "touched input not noticed"; }

# kill -9 while writing: no manifest, the .part folder stays, the next run starts it again.
# kill_once_written GLOB LOG COMMAND...: COMMAND in the background, killed with kill -9 once a file
# matches GLOB (which must happen within 10 s).
kill_once_written() {
  local glob=$1 log=$2 pid
  shift 2
  "$@" > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    compgen -G "$glob" > /dev/null && break
    sleep 0.05
  done
  compgen -G "$glob" > /dev/null || fail "$* wrote no $glob: $(cat "$log")"
  kill -9 $pid
  wait $pid 2> /dev/null || true
}
rm -rf "$work/runs/datasets"
kill_once_written "$work/runs/datasets/*.part/shard-00-0000.bytes.npy" "$work/killed.log" \
  "$tid" prepro "$work/app.toml" --set features.threads=1
compgen -G "$work/runs/datasets/*/manifest.json" > /dev/null && fail "a killed run left a complete-looking dataset"
"$tid" prepro "$work/app.toml" --set features.threads=1 > "$work/after.log" 2>&1 || { cat "$work/after.log"; fail "run after kill"; }
grep -q "interrupted run left" "$work/after.log" || fail "the leftover .part folder was not noticed"
cmp <(rows_of "$ds") <(rows_of "$(dataset_of "$work/after.log")") || fail "the rebuilt dataset differs"
# A dataset in parts (the Slurm array's parts, here run by hand): a damaged part stops the merge
# naming its file and the way on; built again, it merges into the dataset one process builds; a
# part killed while it writes leaves no part that counts.
parts=(--set "experiment.output_dir=\"$work/parted\"")
"$tid" prepro "$work/app.toml" "${parts[@]}" --part 1/2 > "$work/part1.log" 2>&1 || { cat "$work/part1.log"; fail "part 1/2"; }
grep -q "1 of 2 parts are built, the last to end merges them" "$work/part1.log" || fail "part 1/2: $(cat "$work/part1.log")"
part1=$(ls -d "$work"/parted/datasets/*.parts/part-1-of-2)
echo '{"config_hash": ' > "$part1/part.json"
status=0
"$tid" prepro "$work/app.toml" "${parts[@]}" --part 2/2 > "$work/part2.log" 2>&1 || status=$?
((status == 1)) && grep -q "$part1/part.json: not a part of a dataset (.*): build that part again" "$work/part2.log" ||
  fail "a damaged part (status $status): $(cat "$work/part2.log")"
kill_once_written "$part1.building/shard-00-0000.bytes.npy" "$work/part1.log" \
  "$tid" prepro "$work/app.toml" "${parts[@]}" --set features.threads=1 --part 1/2
[[ $(cat "$part1/part.json") == '{"config_hash": ' && ! -e $part1.building/part.json ]] ||
  fail "a killed part build left a part that counts"
"$tid" prepro "$work/app.toml" "${parts[@]}" --part 1/2 > "$work/part1.log" 2>&1 || { cat "$work/part1.log"; fail "part 1/2 again"; }
grep -q "stage dataset: 2 parts merged" "$work/part1.log" || fail "part 1/2 again did not merge: $(cat "$work/part1.log")"
merged=$(ls -d "$work"/parted/datasets/*[0-9a-f] | head -1)
cmp <(rows_of "$ds") <(rows_of "$merged") || fail "the dataset merged from parts differs from one process's"
# Content hashes: the pcap source hashes a file's bytes as it reads them; a file it cannot read
# whole (cut inside a packet) the dataset builder hashes itself. Each equals what `trafficid label`
# records for the same file (its database keeps content hashes as well).
mkdir -p "$work/hashes/Remote"
cp "$data/captures/SSH/ssh__single-conn.pcap" "$work/hashes/Remote/whole.pcap"
head -c 3000 "$data/captures/SSH/ssh__ssh.pcap" > "$work/hashes/Remote/cut.pcap"
"$tid" -q prepro "$work/app.toml" --set "capture.sources=[\"pcap:$work/hashes\"]" --set features.threads=1 \
  --set "experiment.output_dir=\"$work/hash-runs\"" > "$work/hashes.log" 2>&1 || { cat "$work/hashes.log"; fail "prepro of the hash captures"; }
status=0
"$tid" -q label "$work/hashes" --db "$work/hashes.sqlite" > /dev/null 2>&1 || status=$?
[[ $status -le 1 ]] || fail "label of the hash captures: status $status"
$py - "$work/hash-runs/datasets" "$work/hashes.sqlite" <<'PY' || fail "content hashes"
import glob, json, re, sqlite3, sys
m = json.load(open(glob.glob(f"{sys.argv[1]}/*/manifest.json")[0]))
manifest = {i["path"].rsplit("/", 1)[1]: i["content_hash"] for i in m["inputs"]}
db = {p.rsplit("/", 1)[1]: h for p, h in sqlite3.connect(sys.argv[2]).execute("select path, content_hash from files")}
assert set(manifest) == {"whole.pcap", "cut.pcap"} and manifest == db, (manifest, db)
assert all(re.fullmatch("xxh3-128:[0-9a-f]{32}", h) for h in manifest.values()), manifest
assert manifest["whole.pcap"] != manifest["cut.pcap"]
print("content hashes: from the source for a whole file, from the builder for a cut one; as label's")
PY

echo "prepro dataset checks passed"
