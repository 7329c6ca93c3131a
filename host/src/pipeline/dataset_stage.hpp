// The stages up to a dataset, for `trafficid run` and `prepro`: capture, label, features and the
// dataset folder's life cycle (a lock while it is built, reuse when its config and inputs are
// unchanged, FOLDER.part renamed when complete, the run folder's link to it). Used for the
// training dataset and for the evaluation dataset of [evaluate] (captures no training sample
// came from, labelled by the label map, all in the test split).
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include "pipeline/dataset_builder.hpp"
#include "config/experiment.hpp"
#include "runtime/host_log.hpp"

namespace trafficid::host {

struct DatasetJob {
  std::string name;  // "dataset" or "evaluation": messages, the run folder's link
  DatasetPlan plan;
  const std::vector<SourceSpec>* sources = nullptr;
  std::uint64_t max_packets = 0;
  LabelSpec label;                           // the evaluation's: classes from the map
  const EvaluationTarget* target = nullptr;  // an evaluation dataset of this training dataset
  std::filesystem::path stage_dir;           // capture/summary.json and label/ go here
};

struct DatasetOutcome {
  std::optional<DatasetManifest> manifest;  // nullopt when interrupted
  bool reused = false;
  Json stages = Json::array();  // run.json's entries for the stages that ran
};

// Builds the job's dataset, or reuses it (unless `rebuild`); links RUN_DIR/NAME to it.
DatasetOutcome obtain_dataset(const DatasetJob& job, const Experiment& experiment, const PluginRegistry& registry,
                              HostLog& log, const std::filesystem::path& run_dir, bool rebuild);

// The feature workers a dataset is built with: features.threads, else one per core.
unsigned feature_workers(const Experiment& experiment);

Json dataset_summary(const DatasetManifest& manifest);
std::string describe_dataset(const DatasetManifest& manifest);

}  // namespace trafficid::host
