// The dataset manifest: what a preprocessing run wrote and how it was split. Shards are NumPy
// .npy files so a researcher can load them with numpy.load alone.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "trafficid/features.hpp"
#include "trafficid/params.hpp"

namespace trafficid {

enum class SplitName : std::uint8_t { train, validation, test };
TRAFFICID_SDK_API const char* to_string(SplitName split);

struct DatasetShard {
  SplitName split = SplitName::train;
  std::string features_file;  // relative to the dataset folder
  std::string labels_file;    // int64
  std::string flow_ids_file;  // uint64
  std::string file_ids_file;  // uint32
  std::uint64_t rows = 0;
};

struct DatasetManifest {
  std::string config_hash;                 // of the resolved preprocessing config
  FeatureSpec spec;
  std::vector<std::string> class_names;    // label index -> name
  std::string split_method = "flow";       // "flow", "file" or "packet" (leaks; flagged in reports)
  std::uint64_t split_seed = 0;
  std::map<std::string, std::string> input_hashes;  // input file -> sha256
  std::vector<DatasetShard> shards;
  // counts[split][class] samples
  std::map<std::string, std::vector<std::uint64_t>> counts;
  Json config;                             // the resolved config that made it
};

TRAFFICID_SDK_API Json to_json(const DatasetManifest& manifest);
TRAFFICID_SDK_API DatasetManifest manifest_from_json(const Json& json);

}  // namespace trafficid
