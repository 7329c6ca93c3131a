#!/usr/bin/env bash
# A tiny model of each kind (cnn, mlp, sae, gbdt) fits a small batch of real packets: 64 Deep Packet
# vectors of each of four applications from four captures of ../shared/data/captures. Each
# training loss starts near ln 4 = 1.39 (four classes, nothing learnt) and must end below 0.1 and
# below a tenth of its first epoch's: a model, loss, optimiser or data path that cannot learn
# fails here. The packet split is asked for by name: this checks fitting, not generalisation.
# Also checks that four capture sources give four files and four folder classes.
# usage: overfit_small_batch.sh TRAFFICID DATA_DIR
set -euo pipefail
tid=$(realpath "$1") data=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
captures="$data/captures"
[[ -d "$captures" ]] || fail "shared data folder $data is missing (set TRAFFICID_DATA_DIR)"
files=(Mining/mining.pcapng RDP/rdp.pcap Netflix/netflix.pcap WireGuard/wireguard.pcap)
sources=$(for f in "${files[@]}"; do printf '"pcap:%s", ' "$(realpath "$captures/$f")"; done)
cat > "$work/overfit.toml" <<TOML
[experiment]
name = "overfit"
seed = 3
output_dir = "$work/out"
[capture]
sources = [${sources%, }]
[label]
labeler = "ndpi"
class_from = "directory"
[features]
extractor = "deep_packet"
[dataset]
split = "packet"
fractions = [0.8, 0.1, 0.1]
balance = "cap"
max_per_class = 64
[train]
epochs = 40
patience = 0
batch_size = 32
lr = 0.003
threads = 1
[models.cnn]
conv = [{ filters = 16, kernel = 5, stride = 3 }, { filters = 16, kernel = 5, stride = 2 }]
fc = [32]
[models.mlp]
layers = [64]
[models.sae]
layers = [64, 32]
pretrain_epochs = 2
[models.gbdt]
rounds = 50
rounds_per_epoch = 10
TOML
"$tid" -q run "$work/overfit.toml" --run-dir "$work/run" > "$work/log" 2>&1 || { cat "$work/log"; fail "run"; }
/usr/bin/python3 - "$work/run" "$data/MANIFEST.tsv" "${files[@]}" <<'PY' || fail "see above"
import csv, json, sys
run, manifest, files = sys.argv[1], sys.argv[2], sys.argv[3:]
# Every packet of each capture in its folder's class (no class definitions: all flows kept).
packets = {r["path"]: int(r["packets"]) for r in csv.DictReader(open(manifest), delimiter="\t")}
classes = json.load(open(f"{run}/label/classes.json"))["classes"]
expected = {f.split("/")[0]: packets[f"captures/{f}"] for f in files}
got = {name: c["packets"] for name, c in classes.items()}
assert got == expected, f"packets per class {got}, the captures hold {expected}"
counts = json.load(open(f"{run}/dataset/manifest.json"))["counts"]["train"]
assert counts == [64] * 4, f"training rows per class: {counts}"
for name in ("cnn", "mlp", "sae", "gbdt"):
    losses = [json.loads(line)["train_loss"] for line in open(f"{run}/models/{name}/metrics.jsonl")]
    first, last = losses[0], losses[-1]
    print(f"{name}: training loss {first:.4f} after the first epoch, {last:.5f} after the last ({len(losses)} epochs)")
    if name != "gbdt":  # gbdt's first epoch already holds 10 rounds of trees
        assert first > 0.5, f"{name}: a first-epoch loss of {first} on four classes means the batch is not what it seems"
        assert last < first / 10, f"{name}: the training loss only went from {first} to {last}"
    assert last < 0.1, f"{name}: does not fit 256 training packets (loss {last})"
PY
echo "overfit_small_batch: cnn, mlp, sae and gbdt fit 4 x 64 real packets"
