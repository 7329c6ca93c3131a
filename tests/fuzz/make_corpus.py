#!/usr/bin/env python3
"""Writes the seed inputs of the file-format fuzz targets into OUT_DIR/<target>/: small, valid
files of each format (pcapng, .npy, a study journal, experiments), so the fuzzers start from the
structures they must parse. Generated at each fuzz run (tests/scripts/fuzz_target.sh), never kept
in the repository; the same bytes every time.
usage: python3 tests/fuzz/make_corpus.py OUT_DIR"""
import json, os, struct, sys

here = sys.argv[1]


def put(target, name, data):
    os.makedirs(os.path.join(here, target), exist_ok=True)
    with open(os.path.join(here, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- pcapng: section header, interfaces with options, enhanced/simple/obsolete packet blocks ---
def block(e, kind, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(e + "II", kind, n) + body + struct.pack(e + "I", n)


def option(e, code, value):
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


frame = bytes.fromhex("ffffffffffff000102030405080045000020000100004011000a0a0000010a000002"
                      "1f900035000c0000") + b"dns?"
for e, tag in (("<", "le"), (">", "be")):
    shb = block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb_ns = block(e, 1, struct.pack(e + "HHI", 1, 0, 65535) + option(e, 9, b"\x09") +
                   option(e, 14, struct.pack(e + "q", 3600)) + option(e, 0, b""))
    idb_b2 = block(e, 1, struct.pack(e + "HHI", 101, 0, 96) + option(e, 9, b"\x94") + option(e, 0, b""))
    epb = block(e, 6, struct.pack(e + "IIIII", 0, 0x17, 0x9A2B3C4D, len(frame), len(frame)) + frame)
    epb2 = block(e, 6, struct.pack(e + "IIIII", 1, 1, 2, 20, 20) + frame[14:34])
    spb = block(e, 3, struct.pack(e + "I", len(frame)) + frame)
    opb = block(e, 2, struct.pack(e + "HHIIII", 0, 0, 0x17, 5, len(frame), len(frame)) + frame)
    isb = block(e, 5, struct.pack(e + "III", 0, 0, 0))
    put("pcapng_reader", f"two_interfaces_{tag}.pcapng", shb + idb_ns + idb_b2 + epb + epb2 + spb + opb + isb)
    put("pcapng_reader", f"two_sections_{tag}.pcapng", shb + idb_ns + epb + shb + idb_b2 + epb2)
put("pcapng_reader", "truncated.pcapng", (shb + idb_ns + epb)[:-7])


# --- .npy: the versions and element types trafficid writes and reads ---
def npy(descr, shape, payload, version=1):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * (-(len(header) + 11) % 64) + "\n"
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header.encode() + payload


put("npy_reader", "u8_2x3.npy", npy("|u1", "(2, 3)", bytes(range(6))))
put("npy_reader", "f4_rows.npy", npy("<f4", "(2, 2)", struct.pack("<4f", 0, 1.5, -2, 3e9)))
put("npy_reader", "u64_v2.npy", npy("<u8", "(3,)", struct.pack("<3Q", 1, 2, 1 << 63), version=2))
put("npy_reader", "i8_empty.npy", npy("<i8", "(0,)", b""))

# --- the study journal: one JSON event per line ---
dimensions = [{"path": "train.lr", "kind": "loguniform", "choices": [], "low": 1e-4, "high": 0.1},
              {"path": "models.mlp.layers", "kind": "choice", "choices": [[16], [64, 32]], "low": 0, "high": 0}]
events = [
    {"event": "study", "version": 1, "name": "quickstart", "experiment": "/x/q.toml", "tuner": "asha",
     "tuner_version": "1.0.0", "tuner_params": {"eta": 2}, "dimensions": dimensions, "maximize": True, "seed": 7,
     "max_steps": 4, "metric": "val.macro_f1", "trials": 4, "time_budget": 0.0, "retries": 1, "pruner": "median",
     "pruner_warmup": 1, "pruner_min_trials": 2, "base_config": {"experiment": {"name": "quickstart"}},
     "config_hash": "0123456789abcdef", "created_unix": 1.7e9},
    {"event": "propose", "trial": 1, "assignment": {"train.lr": 0.001, "models.mlp.layers": [16]}, "t": 1.7e9},
    {"event": "start", "trial": 1, "attempt": 1, "worker": "host:1", "t": 1.7e9},
    {"event": "report", "trial": 1, "step": 1, "value": 0.5, "decision": "continue", "t": 1.7e9},
    {"event": "report", "trial": 1, "step": 2, "value": 0.25, "decision": "stop", "by": "median", "t": 1.7e9},
    {"event": "end", "trial": 1, "status": "pruned", "attempt": 1, "seconds": 3.5, "value": 0.5, "t": 1.7e9},
    {"event": "end", "trial": 2, "status": "failed", "attempt": 1, "seconds": 1, "error": "diverged", "retry": False, "t": 1.7e9},
]
put("study_journal", "journal.jsonl", "".join(json.dumps(e) + "\n" for e in events))

# --- experiments: the shipped quickstart's shape, and one with variants and a study ---
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(root, "experiments", "quickstart.toml")) as f:
    put("experiment_loader", "quickstart.toml", f.read())
put("experiment_loader", "variants_tune.toml", '''[experiment]
name = "v"
seed = 3
[capture]
sources = ["pcap:data", "synth:2"]
[capture.pcap]
paths = ["a.pcap", "b/"]
[label]
labeler = "ndpi"
class_from = "folder"
[label.classes]
Web = { patterns = ["HTTP*"], exclude = ["HTTP.Foo"] }
[features]
extractor = "deep_packet"
[dataset]
split = "file"
folds = 3
[train]
lr = 1e-3
epochs = 2
[models.mlp]
layers = [16]
[variants.small]
"train.lr" = 0.01
[variants.big.models.mlp]
layers = [64, 32]
[tune]
tuner = "grid"
trials = 2
[tune.space]
"train.lr" = { loguniform = [1e-4, 1e-2] }
''')
