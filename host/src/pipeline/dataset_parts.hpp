// A dataset built in parts, for collections too large for one process: `trafficid prepro EXP
// --part I/N` reads every Nth capture file of the experiment's sources (file K, in the sources'
// order, is in part K mod N + 1) through capture, labels and features, and keeps what the
// dataset builder has before it splits: its shards, its inputs and its flows, in
// DATASET.parts/part-I-of-N. `--merge` (or the last part to finish) joins the parts into the
// dataset one process builds from all the files: the same inputs (numbered in the same order),
// flows, rows, features, classes, splits and manifest; only the rows' grouping into shards
// differs (as between one and two threads). `--emit-slurm` writes the job array that does it.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "config/experiment.hpp"
#include "runtime/host_log.hpp"
#include "trafficid/dataset.hpp"

namespace trafficid::host {

struct PartRequest {
  unsigned part = 0, parts = 0;  // --part I/N (1-based); 0 with --merge alone
  bool merge = false;            // --merge: join the parts (all must be there)
};

// "3/8" -> {3, 8}; throws Error for anything else.
PartRequest parse_part(const std::string& text);

// Builds part I/N of the experiment's dataset; then, if every part is there and the dataset is
// not, merges them. The manifest when this call merged (or found merged) the dataset.
std::optional<DatasetManifest> build_dataset_part(const Experiment& experiment, const PluginRegistry& registry,
                                                  HostLog& log, const PartRequest& request);

// Joins the parts into the dataset; throws Error naming the missing parts.
DatasetManifest merge_dataset_parts(const Experiment& experiment, const PluginRegistry& registry, HostLog& log);

// DATASET.parts: where the parts are built (and a Slurm array's logs go).
std::filesystem::path dataset_parts_folder(const Experiment& experiment);

}  // namespace trafficid::host
