// The feature and dataset stages: an extractor runs beside each labelling worker and streams its
// samples into that worker's .npy shards (nothing is held in memory but open flows); when the
// capture is read, samples get their flow's class, a split (by flow, file or packet, stratified
// by class, seeded), deduplication across splits and training-set balancing, all by streaming
// passes over small per-row columns. The dataset is written into FOLDER.part and renamed when
// complete, so a killed run never leaves a folder that looks like a dataset.
#pragma once
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "label_stage.hpp"
#include "trafficid/dataset.hpp"

namespace trafficid::host {

class DatasetBuilder final : public LabelListener {
 public:
  DatasetBuilder(const Experiment& experiment, const PluginRegistry& registry, HostServices& host,
                 std::filesystem::path folder, unsigned workers);
  ~DatasetBuilder() override;

  std::vector<PacketHook*> begin_input(const SourceFileInfo& file, unsigned workers) override;
  void labelled(const FlowRecord& flow, const std::optional<std::string>& cls) override;
  void end_input(std::uint64_t packets) override;

  // Labels, splits and describes what was written; returns the manifest (also in the folder).
  DatasetManifest finish(const std::string& config_hash, const Json& config);

 private:
  struct Worker;
  struct FlowEntry {
    std::uint64_t key = 0;      // seeded, from the input, 5-tuple and start: independent of threads
    std::uint64_t rows = 0;
    std::int32_t cls = -1;      // index into class_seen_
    std::uint32_t input = 0;
    std::uint8_t split = excluded_split;
  };
  void assign_splits(const std::vector<std::string>& classes, const std::vector<std::int32_t>& remap);

  const Experiment& experiment_;
  HostServices& host_;
  std::filesystem::path folder_;
  FeatureSpec spec_;
  bool ragged_ = false;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<DatasetInput> inputs_;
  class Hasher;
  std::unique_ptr<Hasher> hasher_;  // content hashes of the inputs, one at a time, beside the work
  std::unordered_map<std::uint64_t, std::uint32_t> flow_index_;  // dataset flow id -> flows_
  std::vector<FlowEntry> flows_;
  std::vector<std::string> class_seen_;
  std::unordered_map<std::string, std::int32_t> class_ids_;
};

// The dataset folder of an experiment: DIRECTORY/NAME-HASH, HASH over everything that decides
// its content (sources, labels, features, dataset settings, plugin versions, seed).
struct DatasetPlan {
  std::filesystem::path folder;
  std::string config_hash;
  Json config;
};
DatasetPlan plan_dataset(const Experiment& experiment);

// The complete dataset already in plan.folder, if its inputs are unchanged (same files, sizes and
// modification times); nullopt when it must be built. `why` says what changed.
std::optional<DatasetManifest> reusable_dataset(const DatasetPlan& plan, const Experiment& experiment,
                                                const PluginRegistry& registry, HostServices& host, std::string& why);

}  // namespace trafficid::host
