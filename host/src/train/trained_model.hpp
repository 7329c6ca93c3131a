// A trained model as `predict` and `evaluate` load it from RUN_DIR/models/NAME: its plugin, its
// dataset's manifest (classes, features, labeler config), its flow decision and abstention
// threshold; with folds, the fold models, whose probabilities are averaged; a blend ([blend]):
// its models, loaded from their folders beside it, whose probabilities are averaged.
#pragma once
#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/plugin_registry.hpp"
#include "trafficid/dataset.hpp"
#include "trafficid/model.hpp"

namespace trafficid::host {

// The model folder `path` names: a model's own folder (it holds model.json), or a run folder
// (variants included) whose best model is taken: the best per-flow macro F1 on the validation
// split, never the test split nor unseen captures. `why` says which and why.
std::filesystem::path resolve_model_dir(const std::filesystem::path& path, std::string& why);

// Where part `part` of a model trained in RUN_DIR/models/NAME (`model_dir`) is kept: fold-k/ with
// `folds`, member-k/ for an ensemble of `members` > 1, else the model's own folder. The train
// stage writes there and TrainedModel reads from there.
std::filesystem::path model_part_dir(const std::filesystem::path& model_dir, int folds, int members, int part);

class TrainedModel {
 public:
  // `int8`: predict with the model's int8 version where it has one (ModelInput::int8_inference).
  TrainedModel(const std::filesystem::path& dir, const PluginRegistry& registry, HostServices& host, bool int8 = false);
  const std::filesystem::path& dir() const { return dir_; }
  const Json& description() const { return description_; }
  const DatasetManifest& manifest() const { return manifest_; }
  // The plugin's name, or "blend of A, B" for a blend.
  const std::string& name() const { return name_; }
  // The models a blend averages (empty for a plugin's model).
  const std::vector<std::unique_ptr<TrainedModel>>& blended() const { return blended_; }
  const std::string& flow_decision() const { return flow_decision_; }
  std::optional<double> abstain_threshold() const { return threshold_; }
  int folds() const { return members_ > 1 ? 1 : std::max(1, static_cast<int>(models_.size())); }  // a blend: 1
  int members() const { return members_; }  // an ensemble's ([train] ensemble), else 1
  // Whether predict_proba runs in int8 (asked, and the model has an int8 version), and as a word.
  bool int8() const { return int8_; }
  const char* precision() const { return int8_ ? "int8" : "float32"; }
  // Row-major probabilities, batch.rows x classes (the mean of the fold models' or the members').
  std::vector<float> predict_proba(const FeatureBatch& batch);

 private:
  std::filesystem::path dir_;
  Json description_;
  DatasetManifest manifest_;
  std::string name_, flow_decision_ = "logprob";
  std::optional<double> threshold_;
  bool int8_ = false;
  std::vector<PluginHandle<Model>> models_;  // one, or one per fold, or one per member
  std::vector<std::unique_ptr<TrainedModel>> blended_;
  int members_ = 1;
};

}  // namespace trafficid::host
