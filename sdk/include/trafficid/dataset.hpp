// A dataset folder, as `trafficid prepro` writes it and models read it:
//
//   manifest.json            this, written last: a folder without it is not a dataset
//   shard-NNNN.x.npy         features, [rows, *shape] (storage "dense")
//   shard-NNNN.bytes.npy     or: the stored bytes of every row, concatenated (storage "ragged",
//   shard-NNNN.len.npy           variable-length u8 features), and each row's stored length (uint16);
//                                a row is its bytes followed by zeros up to the shape
//   shard-NNNN.y.npy         class index (int64), -1 for rows no class claims
//   shard-NNNN.split.npy     0 train, 1 validation, 2 test, 255 excluded (no class, duplicate, balancing);
//                            with K folds by file, fold 0's, and shard-NNNN.split-fK.npy fold K's
//   flow_keys.npy            every classed flow's identity (5-tuple and first timestamp), sorted: an
//                            evaluation dataset leaves out the flows a training dataset holds
//   shard-NNNN.flow.npy      flow id (uint64): input id << 40 | the labeler's flow number
//   shard-NNNN.file.npy      input id (uint32), an index into manifest "inputs"
//   shard-NNNN.packet.npy    packet granularity: the packet's 0-based index in its input (uint64)
//
// Every file loads with numpy.load alone.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "trafficid/features.hpp"
#include "trafficid/params.hpp"

namespace trafficid {

enum class SplitName : std::uint8_t { train = 0, validation = 1, test = 2 };
inline constexpr std::uint8_t excluded_split = 255;

// A dataset's flow id: the input (capture file) in its high bits, the labeler's flow number below.
inline constexpr int flow_input_shift = 40;
inline constexpr std::uint64_t dataset_flow_id(std::uint32_t input, std::uint64_t flow) {
  return (std::uint64_t{input} << flow_input_shift) | flow;
}
inline constexpr std::uint32_t input_of_flow(std::uint64_t flow_id) {
  return static_cast<std::uint32_t>(flow_id >> flow_input_shift);
}
TRAFFICID_SDK_API const char* to_string(SplitName split);

struct DatasetShard {
  std::string name;  // "shard-0000"; its files are name + ".x.npy", ".y.npy", ...
  std::uint64_t rows = 0;
};

struct DatasetInput {
  std::uint32_t id = 0;
  std::string path;  // as the capture source named it (a generator: its description, e.g. "synth(seed=1, ...)")
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  // Of the file's content: "xxh3-128:" and 32 hex digits (`xxh128sum FILE` prints them); an older
  // dataset's manifest holds SHA-256's 64 hex digits (as "sha256"). Empty (and size, mtime_ns 0)
  // for a generator.
  std::string content_hash;
  std::uint64_t packets = 0;
};

struct DatasetManifest {
  int version = 1;
  std::string config_hash;  // of the resolved config that made it
  std::string extractor;    // the features plugin
  FeatureSpec spec;
  std::string storage = "dense";         // "dense" or "ragged"
  std::vector<std::string> class_names;  // label index -> name
  std::string split_method = "flow";     // "flow", "file" or "packet" (leaks; flagged in reports)
  std::uint64_t split_seed = 0;
  std::array<double, 3> fractions{0.8, 0.1, 0.1};
  std::string balance = "none";                              // "none", "undersample", "cap" or "weights" (train only)
  std::vector<double> class_weights;                         // per class, for the training loss ("weights"; else 1)
  std::map<std::string, std::vector<std::uint64_t>> counts;  // split name -> rows per class
  std::map<std::string, std::uint64_t> excluded;             // reason -> rows
  // Group k-fold by file: fold f tests the files of fold f, validates on those of fold (f + 1) % K
  // and trains on the rest; every capture is tested once by a model that never saw it. 0: no folds.
  int folds = 0;
  std::vector<std::map<std::string, std::vector<std::uint64_t>>> fold_counts;  // per fold, like counts
  // An evaluation dataset (captures no training sample came from, all rows in the test split):
  // the training dataset it scores, what was left out for being training data, flows without
  // samples per class. Null for a training dataset.
  Json evaluation;
  std::vector<DatasetInput> inputs;
  std::vector<DatasetShard> shards;
  Json config;                       // the resolved config that made it
  Json statistics = Json::object();  // packets read, kept, dropped by rule, seconds

  bool split_leaks() const { return split_method == "packet"; }
  std::filesystem::path shard_file(const std::filesystem::path& folder, std::size_t shard, const char* part) const {
    return folder / (shards.at(shard).name + "." + part + ".npy");
  }
  // The split column of a fold ("split" for fold 0 or without folds, "split-f2" for fold 2).
  static std::string split_part(int fold) { return fold <= 0 ? "split" : "split-f" + std::to_string(fold); }
};

// Class weights that balance a training split (dataset.balance = "weights"): its rows over
// (classes present x the class's rows), 0 for a class it lacks.
TRAFFICID_SDK_API std::vector<double> balanced_class_weights(const std::vector<std::uint64_t>& train_rows);

TRAFFICID_SDK_API Json to_json(const DatasetManifest& manifest);
// One input as manifest.json's "inputs" and a builder part's part.json hold it.
TRAFFICID_SDK_API Json to_json(const DatasetInput& input);
TRAFFICID_SDK_API DatasetManifest manifest_from_json(const Json& json);
// Reads folder/manifest.json; throws Error naming the folder when it is not a complete dataset.
TRAFFICID_SDK_API DatasetManifest read_manifest(const std::filesystem::path& folder);

}  // namespace trafficid
