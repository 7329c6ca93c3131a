"""Reads a trafficid dataset folder with NumPy alone.

    import trafficid_dataset as td
    X, y = td.load("runs/datasets/NAME-HASH", "train")   # X: [rows, *shape], y: int64 class indices
    names = td.manifest("runs/datasets/NAME-HASH")["classes"]
    X, y = td.load("runs/datasets/NAME-HASH", "test", fold=2)   # with dataset.folds: fold 2's test files

Each shard is a set of .npy files (see the manifest's "shards"); a "ragged" dataset stores only
the bytes each sample has (shard-*.bytes.npy, lengths in shard-*.len.npy) and is padded with
zeros back to the sample shape here. Without this file, the same in four lines:

    lens = np.load(f"{s}.len.npy"); flat = np.load(f"{s}.bytes.npy")
    X = np.zeros((len(lens), 1500), np.uint8)
    X[np.arange(1500) < lens[:, None]] = flat      # row-major fill: row i gets its lens[i] bytes
    keep = np.load(f"{s}.split.npy") == 0          # 0 train, 1 validation, 2 test, 255 excluded
"""
import json
import os

import numpy as np

SPLITS = {"train": 0, "validation": 1, "test": 2}


def manifest(folder):
    with open(os.path.join(folder, "manifest.json")) as f:
        return json.load(f)


def shard_features(folder, m, name):
    """All rows of one shard as an array of the sample shape (excluded rows included)."""
    base = os.path.join(folder, name)
    shape = tuple(m["features"]["shape"])
    if m["features"]["storage"] == "dense":
        return np.load(base + ".x.npy", mmap_mode="r")
    lengths = np.load(base + ".len.npy")
    flat = np.load(base + ".bytes.npy")
    width = int(np.prod(shape))
    X = np.zeros((len(lengths), width), dtype=np.uint8)
    X[np.arange(width) < lengths[:, None]] = flat
    return X.reshape((len(lengths),) + shape)


def split_file(base, fold):
    """The split column of a fold: fold 0's (and a dataset without folds') is .split.npy."""
    return base + (".split.npy" if not fold else ".split-f%d.npy" % fold)


def load(folder, split="train", fold=0):
    """X and y of one split ("train", "validation", "test", or None for every row) of a fold."""
    m = manifest(folder)
    xs, ys = [], []
    for shard in m["shards"]:
        base = os.path.join(folder, shard["name"])
        keep = np.load(split_file(base, fold))
        keep = keep != 255 if split is None else keep == SPLITS[split]
        xs.append(np.asarray(shard_features(folder, m, shard["name"]))[keep])
        ys.append(np.load(base + ".y.npy")[keep])
    shape = tuple(m["features"]["shape"])
    dtype = np.uint8 if m["features"]["dtype"] == "uint8" else np.float32
    X = np.concatenate(xs) if xs else np.zeros((0,) + shape, dtype)
    y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    return X, y


def column(folder, name, split="train", fold=0):
    """Another per-row column of one split: "flow", "file", "packet" (packet datasets)."""
    m = manifest(folder)
    parts = []
    for shard in m["shards"]:
        base = os.path.join(folder, shard["name"])
        keep = np.load(split_file(base, fold))
        keep = keep != 255 if split is None else keep == SPLITS[split]
        parts.append(np.load(base + "." + name + ".npy")[keep])
    return np.concatenate(parts) if parts else np.zeros(0)
