// Where a dataset lives (its folder named by the hash of what decides its content), what an
// evaluation dataset leaves out, and whether a dataset already built can be reused.
#include "pipeline/dataset_builder.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <unordered_set>

#include "pipeline/dataset_detail.hpp"
#include "store/hashing.hpp"
#include "trafficid/npy.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;
using namespace dataset_detail;

DatasetPlan plan_dataset(const Experiment& experiment) {
  // Everything that decides the samples, and nothing that does not (names, folders, fsync).
  Json config = experiment.resolved;
  config.erase("experiment");
  config.erase("models");  // the stages after the dataset do not change it
  config.erase("train");
  config.erase("blend");     // a mean of the models, after them
  config.erase("evaluate");  // scores models; the evaluation dataset has a plan of its own
  config["seed"] = experiment.seed;
  if (config.contains("dataset"))
    for (const char* key : {"reuse", "sync", "directory"}) config["dataset"].erase(key);
  if (config.contains("features")) config["features"].erase("threads");
  if (config.contains("label")) config["label"].erase("threads");
  Json versions = Json::object();
  for (const auto& s : experiment.sources) versions["capture." + s.plugin->name] = s.plugin->version;
  if (experiment.label) versions["labeler." + experiment.label->plugin->name] = experiment.label->plugin->version;
  if (experiment.features)
    versions["features." + experiment.features->plugin->name] = experiment.features->plugin->version;
  // format 2: flow_keys.npy, folds, label confidence
  Json hashed = {{"config", config}, {"plugins", versions}, {"format", 2}};
  DatasetPlan plan;
  plan.config_hash = sha256_text(hashed.dump());
  plan.config = config;
  plan.folder = experiment.dataset.directory / fmt::format("{}-{}", experiment.name, plan.config_hash.substr(0, 16));
  return plan;
}

DatasetPlan plan_evaluation_dataset(const Experiment& experiment, const DatasetPlan& training) {
  Json config = Json::object();
  for (const char* section : {"label", "features"})
    if (experiment.resolved.contains(section)) config[section] = experiment.resolved[section];
  if (config.contains("features")) config["features"].erase("threads");
  if (config.contains("label")) config["label"].erase("threads");
  config["evaluate"] = experiment.resolved.at("evaluate");
  for (const char* key : {"flow_decision", "early", "abstain_quantile"}) config["evaluate"].erase(key);  // scoring only
  config["seed"] = experiment.seed;
  config["training_dataset"] = training.config_hash;
  Json versions = Json::object();
  for (const auto& s : experiment.evaluate->sources) versions["capture." + s.plugin->name] = s.plugin->version;
  if (experiment.label) versions["labeler." + experiment.label->plugin->name] = experiment.label->plugin->version;
  if (experiment.features)
    versions["features." + experiment.features->plugin->name] = experiment.features->plugin->version;
  Json hashed = {{"config", config}, {"plugins", versions}, {"format", 2}, {"kind", "evaluation"}};
  DatasetPlan plan;
  plan.config_hash = sha256_text(hashed.dump());
  plan.config = config;
  plan.folder =
      experiment.dataset.directory / fmt::format("{}-eval-{}", experiment.name, plan.config_hash.substr(0, 16));
  return plan;
}

EvaluationTarget evaluation_target(const fs::path& training_dataset) {
  const DatasetManifest m = read_manifest(training_dataset);
  EvaluationTarget target;
  target.training_config_hash = m.config_hash;
  target.class_names = m.class_names;
  for (const auto& i : m.inputs)
    if (!i.content_hash.empty()) target.input_hashes.insert(i.content_hash);
  const fs::path keys = training_dataset / "flow_keys.npy";
  if (!fs::exists(keys))
    throw Error(fmt::format("{}: no flow_keys.npy (a dataset from an older trafficid): build it again with --rebuild",
                            training_dataset.string()));
  for (auto key : read_npy<std::uint64_t>(keys)) target.flow_keys.insert(key);
  return target;
}

std::uint64_t flow_identity(const FiveTuple& tuple, std::int64_t first_ns) {
  // Microseconds: a capture converted from pcap to pcapng (or back) keeps them.
  return combine(tuple_hash(tuple), static_cast<std::uint64_t>(first_ns / 1000));
}

std::optional<DatasetManifest> reusable_dataset(const DatasetPlan& plan, const std::vector<SourceSpec>& sources,
                                                const PluginRegistry& registry, HostServices& host, std::string& why) {
  std::error_code ec;
  if (!fs::exists(plan.folder / "manifest.json", ec)) {
    why = "no dataset built from this config yet";
    return std::nullopt;
  }
  DatasetManifest m;
  try {
    m = read_manifest(plan.folder);
  } catch (const Error& e) {
    why = e.what();
    return std::nullopt;
  }
  if (m.config_hash != plan.config_hash) {
    why = "its config differs";
    return std::nullopt;
  }
  // The files the sources would read now, against those it was built from.
  std::vector<std::string> planned;
  for (const auto& s : sources) {
    auto source = registry.create<CaptureSource>(*s.plugin, s.params, host, s.instance);
    auto files = source->planned_files();
    if (!files) {
      why = fmt::format("source {} is live: its packets are new each time", s.instance);
      return std::nullopt;
    }
    planned.insert(planned.end(), files->begin(), files->end());
  }
  // A generated input (synth: no size, no modification time, no hash) is decided by its source's
  // parameters, which the config hash holds already; only files can change under the dataset.
  auto generated = [](const DatasetInput& i) { return i.size == 0 && i.mtime_ns == 0 && i.content_hash.empty(); };
  std::vector<std::string> built;
  for (const auto& i : m.inputs)
    if (!i.path.empty() && !generated(i)) built.push_back(i.path);
  if (planned != built) {
    why = fmt::format("the inputs changed ({} files now, {} then)", planned.size(), built.size());
    return std::nullopt;
  }
  for (const auto& i : m.inputs) {
    if (i.path.empty() || generated(i)) continue;
    auto size = fs::file_size(i.path, ec);
    if (ec || size != i.size || mtime_ns(i.path) != i.mtime_ns) {
      why = fmt::format("{} changed since the dataset was built", i.path);
      return std::nullopt;
    }
  }
  return m;
}

}  // namespace trafficid::host
