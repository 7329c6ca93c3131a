#include "train/trained_model.hpp"

#include <fmt/format.h>
#include <fstream>

#include "train/scoring.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

Json read_json(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(fmt::format("{}: cannot be read", file.string()));
  try {
    return Json::parse(in);
  } catch (const Json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON ({})", file.string(), e.what()));
  }
}

}  // namespace

fs::path resolve_model_dir(const fs::path& path, std::string& why) {
  if (fs::exists(path / "model.json")) return path;
  if (!fs::is_directory(path))
    throw Error(
        fmt::format("{}: no such folder (give a run folder, or a model's folder RUN_DIR/models/NAME)", path.string()));
  // Every trained model of the run and of its variants.
  std::vector<fs::path> candidates;
  auto add_models_of = [&](const fs::path& run) {
    std::error_code ec;
    if (!fs::is_directory(run / "models", ec)) return;
    for (const auto& entry : fs::directory_iterator(run / "models", ec))
      if (fs::exists(entry.path() / "model.json") && fs::exists(entry.path() / "metrics.json"))
        candidates.push_back(entry.path());
  };
  add_models_of(path);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path, ec))
    if (entry.is_directory() && fs::exists(entry.path() / "run.json")) add_models_of(entry.path());
  if (candidates.empty())
    throw Error(
        fmt::format("{}: neither a model's folder (model.json) nor a run folder with trained models (models/NAME/)",
                    path.string()));
  std::sort(candidates.begin(), candidates.end());
  Json metrics = Json::object();
  for (const auto& c : candidates) metrics[c.string()] = read_json(c / "metrics.json");
  const std::string chosen = best_model_name(metrics);
  const fs::path best = chosen.empty() ? candidates.front() : fs::path(chosen);  // runs of earlier versions: the first
  const double best_value = chosen.empty() ? 0.0 : metrics[chosen]["validation_per_flow"].value("macro_f1", 0.0);
  why = fmt::format("{}: the best of {} model{} by per-flow macro F1 on the validation split ({:.4f})", best.string(),
                    candidates.size(), candidates.size() == 1 ? "" : "s", best_value);
  return best;
}

fs::path model_part_dir(const fs::path& model_dir, int folds, int members, int part) {
  if (folds) return model_dir / fmt::format("fold-{}", part);
  if (members > 1) return model_dir / fmt::format("member-{}", part);
  return model_dir;
}

TrainedModel::TrainedModel(const fs::path& dir, const PluginRegistry& registry, HostServices& host, bool int8)
    : dir_(dir) {
  if (!fs::exists(dir / "model.json"))
    throw Error(fmt::format("{}: no model.json (a trained model's folder is RUN_DIR/models/NAME)", dir.string()));
  description_ = read_json(dir / "model.json");
  manifest_ = manifest_from_json(description_.at("manifest"));
  name_ = description_.at("plugin").get<std::string>();
  const PluginInfo* plugin = registry.find(PluginKind::model, name_);
  if (!plugin) throw Error(fmt::format("model plugin '{}' is not installed (--plugin-path?)", name_));
  flow_decision_ = description_.value("flow_decision", "vote");  // models of earlier versions voted
  if (description_.contains("abstain_threshold")) threshold_ = description_["abstain_threshold"].get<double>();
  // Fold models (fold-k/), an ensemble's members (member-k/), or one model.
  const int folds = description_.value("folds", 0);
  members_ = folds ? 1 : std::max(1, description_.value("members", 1));
  ModelInput input{manifest_.spec, manifest_.class_names, manifest_.class_weights, 0, int8};
  for (int part = 0; part < std::max(folds, members_); ++part) {
    const fs::path file = model_part_dir(dir, folds, members_, part) / "model.pt";
    auto model = registry.make<Model>(*plugin, description_.at("params"), host, name_);
    model([&](Model& m) {
      m.build(input);
      m.load(file);
      int8_ = m.info().int8_inference;
    });
    models_.push_back(std::move(model));
  }
  if (int8 && !int8_)
    host.warn(fmt::format("model {} ({}) has no int8 version; it predicts in float32", name_, dir.filename().string()));
}

std::vector<float> TrainedModel::predict_proba(const FeatureBatch& batch) {
  std::vector<float> mean;
  for (auto& model : models_) {
    auto p = model([&](Model& m) { return m.predict_proba(batch); });
    if (mean.empty()) mean = std::move(p);
    else
      for (std::size_t i = 0; i < mean.size(); ++i) mean[i] += p[i];
  }
  if (models_.size() > 1)
    for (auto& v : mean) v /= static_cast<float>(models_.size());
  return mean;
}

}  // namespace trafficid::host
