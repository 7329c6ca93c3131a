#include "train/trained_model.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>
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
  std::string rule;
  const std::string chosen = best_model_name(metrics, &rule);
  const fs::path best = chosen.empty() ? candidates.front() : fs::path(chosen);  // runs of earlier versions: the first
  why = fmt::format("{}: of {} model{}, {}", best.string(), candidates.size(), candidates.size() == 1 ? "" : "s",
                    chosen.empty() ? "the first (no validation scores)" : rule);
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
  flow_decision_ = description_.value("flow_decision", "vote");  // models of earlier versions voted
  if (description_.contains("abstain_threshold")) threshold_ = description_["abstain_threshold"].get<double>();
  if (description_.contains("blend")) {
    // A blend: its models are its siblings, RUN_DIR/models/NAME, trained on the same dataset.
    std::vector<std::string> names;
    for (const auto& entry : description_["blend"]) {
      const std::string name = entry.get<std::string>();
      names.push_back(name);
      const fs::path member = dir.parent_path() / name;
      if (fs::exists(member / "model.json") && read_json(member / "model.json").contains("blend"))
        throw Error(fmt::format("{}: its model {} is itself a blend: a blend averages trained models", dir.string(),
                                member.string()));
      auto model = std::make_unique<TrainedModel>(member, registry, host, int8);
      if (model->description()["manifest"].value("config_hash", "") !=
          description_["manifest"].value("config_hash", ""))
        throw Error(fmt::format("{}: its model {} was not trained on the blend's dataset (retrain the run)",
                                dir.string(), member.string()));
      blended_.push_back(std::move(model));
    }
    if (blended_.empty()) throw Error(fmt::format("{}: a blend of no models", (dir / "model.json").string()));
    int8_ = std::all_of(blended_.begin(), blended_.end(), [](const auto& m) { return m->int8(); });
    name_ = fmt::format("blend of {}", fmt::join(names, ", "));
    return;
  }
  name_ = description_.at("plugin").get<std::string>();
  const PluginInfo* plugin = registry.find(PluginKind::model, name_);
  if (!plugin) throw Error(fmt::format("model plugin '{}' is not installed (--plugin-path?)", name_));
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
  auto add = [&](std::vector<float> p) {
    if (mean.empty()) mean = std::move(p);
    else
      for (std::size_t i = 0; i < mean.size(); ++i) mean[i] += p[i];
  };
  for (auto& model : models_) add(model([&](Model& m) { return m.predict_proba(batch); }));
  for (auto& model : blended_) add(model->predict_proba(batch));
  const std::size_t n = models_.size() + blended_.size();
  if (n > 1)
    for (auto& v : mean) v /= static_cast<float>(n);
  return mean;
}

}  // namespace trafficid::host
