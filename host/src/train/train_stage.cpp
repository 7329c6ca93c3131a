#include "train/train_stage.hpp"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <thread>
#include <tuple>

#include "train/epoch_log.hpp"
#include "train/model_result.hpp"
#include "train/scoring.hpp"
#include "train/trained_model.hpp"
#include "train/workers.hpp"
#include "trafficid/dataset_reader.hpp"
#include "trafficid/files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

ScoringOptions scoring_options(const Experiment& experiment) {
  ScoringOptions o;
  o.flow_decision = experiment.evaluation.flow_decision;
  o.early = experiment.evaluation.early;
  return o;
}

class TrainStage {
 public:
  TrainStage(const Experiment& experiment, const PluginRegistry& registry, HostLog& log, const fs::path& dataset,
             const fs::path& run_dir, const TrainOptions& options);
  // The model's metrics (or, with a judge, what its training gave); nullopt when a stop was asked.
  std::optional<Json> model(const ModelSpec& spec);
  // [blend]'s metrics: the mean of its models' probabilities, scored as a model. `trained`: the
  // models' metrics.
  Json blend(const BlendSpec& blend, const Json& trained);

 private:
  struct Trained {
    bool stopped = false;
    double seconds = 0;
    std::string diverged;
  };
  Trained train(const PluginHandle<Model>& model, const ModelSpec& spec, const ModelInput& input, int part,
                const fs::path& folder, DatasetSplit& train, DatasetSplit& validation);
  // The training's context: with workers, what they are told (for a model that trains on them).
  TrainingContext context(const PluginHandle<Model>& model, const ModelSpec& spec, const ModelInput& input, int fold,
                          const fs::path& folder, TrainingObserver& observer);
  void measure(const PluginHandle<Model>& model, int part, const fs::path& folder, double seconds, DatasetSplit& test,
               DatasetSplit& validation, ModelResult& result);
  PartPredictions predict_part(const PluginHandle<Model>& model, DatasetSplit& test, DatasetSplit& validation);
  // Part k's predictions into the model's: an ensemble's members averaged, folds' rows appended.
  void combine(int part, PartPredictions&& p, ModelResult& result) const;
  // The predictions of a model trained in an earlier attempt of this run, from its saved parts.
  ModelResult predictions_of(const ModelSpec& spec);
  ModelInput input_of(int part) const;
  // A model is trained `parts_` times: once per fold, once per member of an ensemble, or once.
  // Part k's folder (fold-k, member-k, or the model's own), its name in the log, its record file.
  fs::path part_dir(const fs::path& model_dir, int part) const;
  std::string part_label(const std::string& name, int part) const;
  const char* part_record() const { return folds_ ? "fold.json" : "member.json"; }
  bool ensemble() const { return !folds_ && parts_ > 1; }
  bool members_identical(const fs::path& dir) const;
  // The seed of the weights and the data order: [train] seed (else the experiment's), + k for member k.
  std::uint64_t seed_of(int part) const {
    const std::int64_t train_seed = experiment_.train_settings.seed;
    return static_cast<std::uint64_t>(train_seed ? train_seed : experiment_.seed) +
           static_cast<std::uint64_t>(ensemble() ? part : 0);
  }
  // `description`: model.json's account of what the model is (a plugin and its parameters, or a blend).
  Json metrics(const std::string& name, Json description, const fs::path& dir, ModelResult& result);
  Json score_unseen(const SplitPredictions& unseen, ScoringOptions options, const fs::path& dir);

  const Experiment& experiment_;
  const PluginRegistry& registry_;
  HostLog& log_;
  fs::path dataset_, run_dir_;
  TrainOptions options_;
  DatasetManifest manifest_;
  int folds_;
  int parts_;  // folds_, else [train] ensemble's members (1: one model)
  std::optional<DatasetSplit> unseen_;
  std::optional<DatasetManifest> unseen_manifest_;
  ScoringOptions base_options_, validation_options_;
  std::map<std::string, ModelResult> blended_;  // the predictions of [blend]'s models trained here
};

TrainStage::TrainStage(const Experiment& experiment, const PluginRegistry& registry, HostLog& log,
                       const fs::path& dataset, const fs::path& run_dir, const TrainOptions& options)
    : experiment_(experiment),
      registry_(registry),
      log_(log),
      dataset_(dataset),
      run_dir_(run_dir),
      options_(options),
      manifest_(read_manifest(dataset)),
      folds_(options.judge ? 0 : manifest_.folds),
      parts_(folds_ ? folds_ : (options.judge ? 1 : experiment.train.value("ensemble", 1))) {
  // A tuning trial trains fold 0 (or member 0) and looks at its validation split only.
  if (options.evaluation && !options.judge) {
    unseen_.emplace(*options.evaluation, SplitName::test);
    unseen_manifest_ = unseen_->manifest();
    if (unseen_manifest_->class_names != manifest_.class_names)
      throw Error(fmt::format("{}: its classes are not the training dataset's ({}): build it again with --rebuild",
                              options.evaluation->string(), dataset.string()));
  }
  DatasetSplit train(dataset, SplitName::train), validation(dataset, SplitName::validation),
      test(dataset, SplitName::test);
  log.info(fmt::format(
      "stage train: {} model{} on {} training, {} validation, {} test samples{}{}", experiment.models.size(),
      experiment.models.size() == 1 ? "" : "s", train.rows(), validation.rows(), test.rows(),
      folds_       ? fmt::format(" (fold 0 of {}: each model is trained once per fold)", folds_)
      : parts_ > 1 ? fmt::format(" (each model an ensemble of {} members, each from its own seed)", parts_)
                   : "",
      unseen_ ? fmt::format("; {} samples of unseen captures", unseen_->rows()) : ""));
  base_options_ = scoring_options(experiment);
  validation_options_ = base_options_;  // the validation split gives a score and a threshold, no curves
  validation_options_.early.clear();
}

TrainingContext TrainStage::context(const PluginHandle<Model>& model, const ModelSpec& spec, const ModelInput& input,
                                    int fold, const fs::path& folder, TrainingObserver& observer) {
  TrainingContext context{experiment_.train, folder / "checkpoints", &observer, &log_, {}};
  if (!options_.workers) return context;
  const int world = options_.workers->world();
  if (!model([](Model& m) { return m.info(); }).data_parallel) {
    log_.info(fmt::format("model {}: trains on worker 0 alone ({} does not train across workers)", spec.name,
                          spec.plugin->name));
    return context;
  }
  // Local workers share the cores: train.threads = 0 (one per core) becomes each one's part.
  if (experiment_.train_settings.threads == 0 && options_.workers->local())
    context.settings["threads"] = std::max(1u, std::thread::hardware_concurrency() / static_cast<unsigned>(world));
  context.parallel = options_.workers->post({{"model", spec.name},
                                             {"plugin", spec.plugin->name},
                                             {"params", spec.params},
                                             {"train", context.settings},
                                             {"dataset", fs::absolute(dataset_).string()},
                                             {"fold", fold},
                                             {"checkpoints", fs::absolute(context.checkpoint_dir).string()},
                                             {"class_weights", input.class_weights},
                                             {"seed", input.seed}});
  log_.info(fmt::format("model {}: data-parallel over {} workers, {} rows of each batch of {} per worker", spec.name,
                        world, experiment_.train_settings.batch_size / world, experiment_.train_settings.batch_size));
  return context;
}

fs::path TrainStage::part_dir(const fs::path& model_dir, int part) const {
  return model_part_dir(model_dir, folds_, ensemble() ? parts_ : 1, part);
}

std::string TrainStage::part_label(const std::string& name, int part) const {
  if (folds_) return fmt::format("{} (fold {} of {})", name, part, folds_);
  if (parts_ > 1) return fmt::format("{} (member {} of {})", name, part, parts_);
  return name;
}

// Trains one fold's model (or one member); its checkpoints make a killed run go on from the last epoch.
TrainStage::Trained TrainStage::train(const PluginHandle<Model>& model, const ModelSpec& spec, const ModelInput& input,
                                      int part, const fs::path& folder, DatasetSplit& train, DatasetSplit& validation) {
  const std::string label = part_label(spec.name, part);
  EpochLog observer(log_, label, folder / "metrics.jsonl", experiment_.train_settings.epochs, options_.judge);
  const TrainingContext context = this->context(model, spec, input, folds_ ? part : 0, folder, observer);
  const auto started = Clock::now();
  try {
    model([&](Model& m) { m.fit(train, validation, context); });
  } catch (const Error& e) {
    if (!context.parallel.active()) throw;
    // A worker that failed says why in its session folder: the reason beside worker 0's.
    const std::string others = options_.workers->failures();
    throw Error(fmt::format("{}{}; `{}` goes on from the last checkpoint", e.what(),
                            others.empty() ? "" : " (" + others + ")", options_.workers->resume_command()));
  }
  Trained out{log_.stop_requested(), std::chrono::duration<double>(Clock::now() - started).count(),
              observer.diverged()};
  if (!out.diverged.empty())
    out.diverged = fmt::format("model {}: training {}; lower train.lr (now {}) and run it again", label, out.diverged,
                               experiment_.train_settings.lr);
  return out;
}

// One fold's predictions: the test rows (out of fold), the validation rows, the unseen captures.
// An ensemble's members all predict the same rows: their probabilities are averaged.
void TrainStage::measure(const PluginHandle<Model>& model, int part, const fs::path& folder, double seconds,
                         DatasetSplit& test, DatasetSplit& validation, ModelResult& result) {
  result.training_seconds += seconds;
  PartPredictions predicted = predict_part(model, test, validation);
  const SplitPredictions &tested = predicted.test, &validated = predicted.validation;
  const std::optional<SplitPredictions>& unseen = predicted.unseen;
  Json part_epochs = read_epoch_lines(folder / "metrics.jsonl");
  const std::int64_t part_best = best_epoch_of(part_epochs);
  if (part == 0) {
    result.epochs = part_epochs;
    result.best_epoch = part_best;
  }
  // A fold model predicts alone (its fold's files) and stands for the model; an ensemble predicts
  // with every member: its size and its time at batch 1 are the members' together.
  if (part == 0 || ensemble()) {
    result.model_bytes += fs::file_size(folder / "model.pt");
    result.latency += latency_ms(model, test);
  }
  if (parts_ > 1) {
    Json record = {{folds_ ? "fold" : "member", part}, {"best_epoch", part_best}, {"training_seconds", seconds}};
    record.update(part_scores(validated, tested, validation_options_, base_options_));
    if (ensemble()) record["seed"] = seed_of(part);
    if (unseen && ensemble()) {
      // What this member alone scores on the unseen captures, beside the ensemble's (metrics.json).
      ScoringOptions options = base_options_;
      options.flows_without_samples = flows_without_samples(*unseen_manifest_);
      record["unseen_per_flow_macro_f1"] = score(*unseen, options)["per_flow"].value("macro_f1", 0.0);
    }
    write_file_atomically(folder / part_record(), record.dump(2));
    result.part_records.push_back(record);
  }
  combine(part, std::move(predicted), result);
}

PartPredictions TrainStage::predict_part(const PluginHandle<Model>& model, DatasetSplit& test,
                                         DatasetSplit& validation) {
  PartPredictions p{predict_split(model, test, base_options_.early),
                    predict_split(model, validation, {}),  // its per-flow score and threshold only
                    std::nullopt};
  if (unseen_) p.unseen = predict_split(model, *unseen_, base_options_.early);
  return p;
}

void TrainStage::combine(int part, PartPredictions&& p, ModelResult& result) const {
  if (ensemble() && part > 0) {
    result.test.average_with(p.test);
    result.validation.average_with(p.validation);
  } else {
    result.test.append(p.test);
    result.validation.append(p.validation);
    if (folds_) {
      result.test_ends.push_back(result.test.rows());
      result.validation_ends.push_back(result.validation.rows());
    }
  }
  if (p.unseen) {
    if (result.unseen) result.unseen->average_with(*p.unseen);
    else result.unseen = std::move(p.unseen);
  }
}

ModelInput TrainStage::input_of(int part) const {
  ModelInput input{manifest_.spec, manifest_.class_names, manifest_.class_weights, seed_of(part)};
  const int fold = folds_ ? part : 0;
  if (folds_ && manifest_.balance == "weights" && manifest_.fold_counts.size() == static_cast<std::size_t>(folds_))
    input.class_weights = balanced_class_weights(manifest_.fold_counts[static_cast<std::size_t>(fold)].at("train"));
  return input;
}

ModelResult TrainStage::predictions_of(const ModelSpec& spec) {
  const fs::path dir = run_dir_ / "models" / spec.name;
  ModelResult result;
  for (int part = 0; part < parts_; ++part) {
    const int fold = folds_ ? part : 0;
    DatasetSplit validation(dataset_, SplitName::validation, fold), test(dataset_, SplitName::test, fold);
    const auto model = registry_.make<Model>(*spec.plugin, spec.params, log_, spec.name);
    model([&](Model& m) {
      m.build(input_of(part));
      m.load(part_dir(dir, part) / "model.pt");
    });
    combine(part, predict_part(model, test, validation), result);
  }
  return result;
}

std::optional<Json> TrainStage::model(const ModelSpec& spec) {
  const std::string& name = spec.name;  // the experiment's name for it: its folder and report rows
  const fs::path dir = run_dir_ / "models" / name;
  fs::create_directories(dir);
  if (std::ifstream done(dir / "metrics.json"); done) {
    log_.info(
        fmt::format("model {}: done in an earlier attempt of this run ({})", name, (dir / "metrics.json").string()));
    log_.event("model", {{"name", name}, {"state", "kept"}});
    return Json::parse(done);
  }
  log_.event("model", {{"name", name},
                       {"state", "started"},
                       {"plugin", spec.plugin->name},
                       {"folds", folds_},
                       {"members", ensemble() ? parts_ : 1}});
  ModelResult result;
  for (int part = 0; part < parts_; ++part) {
    const fs::path folder = part_dir(dir, part);
    const std::string label = part_label(name, part);
    const int fold = folds_ ? part : 0;
    const ModelInput input = input_of(part);
    fs::create_directories(folder);
    DatasetSplit train(dataset_, SplitName::train, fold), validation(dataset_, SplitName::validation, fold),
        test(dataset_, SplitName::test, fold);
    const auto model = registry_.make<Model>(*spec.plugin, spec.params, log_, name);
    model([&](Model& m) { m.build(input); });
    result.info = model([](Model& m) { return m.info(); });
    double seconds = 0;
    if (parts_ > 1 && fs::exists(folder / "model.pt") && fs::exists(folder / part_record())) {
      // A fold (or member) finished in an earlier attempt of this run: its model is kept.
      model([&](Model& m) { m.load(folder / "model.pt"); });
      seconds = Json::parse(std::ifstream(folder / part_record())).value("training_seconds", 0.0);
      log_.info(fmt::format("model {}: trained in an earlier attempt of this run", label));
    } else {
      // Trees and kept flows count only after training: such a model says what it became then.
      const bool sized_by_training = result.info.parameters == 0;
      if (!sized_by_training)
        log_.info(fmt::format("model {}: {} trainable parameters", label, result.info.parameters));
      const Trained trained = this->train(model, spec, input, part, folder, train, validation);
      seconds = trained.seconds;
      result.info = model([](Model& m) { return m.info(); });
      if (sized_by_training) log_.info(fmt::format("model {}: {}", label, result.info.summary));
      if (trained.stopped) return std::nullopt;
      if (!trained.diverged.empty() && !options_.judge) {
        log_.event("model", {{"name", name}, {"state", "failed"}, {"error", trained.diverged}});
        throw Error(trained.diverged);
      }
      if (options_.judge) {
        Json out = {{"status", trained.diverged.empty() ? "trained" : "diverged"},
                    {"training_seconds", seconds},
                    {"parameters", result.info.parameters},
                    {"metrics_file", (folder / "metrics.jsonl").string()}};
        if (!trained.diverged.empty()) out["error"] = trained.diverged;
        return out;
      }
      model([&](Model& m) { m.save(folder / "model.pt"); });
      sync_file(folder / "model.pt");  // on the disk before metrics.json or fold.json says it is done
    }
    measure(model, part, folder, seconds, test, validation, result);
  }
  if (ensemble() && members_identical(dir))
    log_.warn(
        fmt::format("model {}: its {} members came out identical ({} drew nothing at random from their seeds "
                    "with these parameters): the ensemble is one model, trained {} times",
                    name, parts_, spec.plugin->name, parts_));
  Json description = {{"plugin", spec.plugin->name}, {"version", spec.plugin->version}, {"params", spec.params}};
  Json out = metrics(name, std::move(description), dir, result);
  if (experiment_.blend) {
    const auto& blended = experiment_.blend->models;
    if (std::find(blended.begin(), blended.end(), name) != blended.end()) blended_[name] = std::move(result);
  }
  return out;
}

Json TrainStage::blend(const BlendSpec& blend, const Json& trained) {
  const fs::path dir = run_dir_ / "models" / blend.name;
  fs::create_directories(dir);
  if (std::ifstream done(dir / "metrics.json"); done) {
    log_.info(fmt::format("model {} (a blend): done in an earlier attempt of this run", blend.name));
    log_.event("model", {{"name", blend.name}, {"state", "kept"}});
    return Json::parse(done);
  }
  log_.event("model", {{"name", blend.name}, {"state", "started"}, {"blend", blend.models}});
  ModelResult result;
  for (const auto& name : blend.models) {
    const auto spec = std::find_if(experiment_.models.begin(), experiment_.models.end(),
                                   [&](const ModelSpec& m) { return m.name == name; });
    if (spec == experiment_.models.end()) throw Error(fmt::format("blend {}: no model {}", blend.name, name));
    auto kept = blended_.find(name);
    if (kept == blended_.end())
      log_.info(
          fmt::format("model {} (a blend): {} was trained in an earlier attempt; it predicts again", blend.name, name));
    blend_into(result, kept != blended_.end() ? std::move(kept->second) : predictions_of(*spec), name,
               trained.at(name));
  }
  blended_.clear();
  result.part_records = fold_records(result, validation_options_, base_options_);
  log_.info(fmt::format("model {} (a blend): the mean of the probabilities of {}", blend.name,
                        fmt::join(blend.models, ", ")));
  return metrics(blend.name, {{"blend", blend.models}}, dir, result);
}

// Whether an ensemble's members saved the very same weights (a plugin that ignores the seed).
bool TrainStage::members_identical(const fs::path& dir) const {
  auto bytes = [&](int part) {
    std::ifstream in(part_dir(dir, part) / "model.pt", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string first = bytes(0);
  for (int part = 1; part < parts_; ++part)
    if (bytes(part) != first) return false;
  return true;
}

// The unseen captures' scores (metrics.json's "unseen"); writes unseen_flows.csv.
Json TrainStage::score_unseen(const SplitPredictions& unseen, ScoringOptions options, const fs::path& dir) {
  options.flows_without_samples = flows_without_samples(*unseen_manifest_);
  std::vector<FlowDecision> decisions;
  Json u = score(unseen, options, &decisions);
  u["captures"] = unseen_manifest_->inputs.size();
  u["dataset"] = fs::absolute(*options_.evaluation).string();
  u["left_out"] = unseen_manifest_->evaluation;
  write_flow_decisions(dir / "unseen_flows.csv", decisions, *unseen_manifest_, options.abstain_threshold);
  return u;
}

// Scores what the folds predicted and writes the model's files: model.json (what `trafficid
// predict` needs), predictions.csv, flows.csv, unseen_flows.csv, and metrics.json last (the mark
// that the model is done).
Json TrainStage::metrics(const std::string& name, Json description, const fs::path& dir, ModelResult& r) {
  const bool blend = !r.blend.is_null();
  Json dataset_manifest = to_json(manifest_);
  dataset_manifest["inputs"] = Json::array();
  ScoringOptions options = base_options_;
  options.abstain_threshold =
      abstain_threshold(r.validation, options.flow_decision, experiment_.evaluation.abstain_quantile);
  description.update({{"name", name},
                      {"classes", manifest_.class_names},
                      {"dataset", fs::absolute(dataset_).string()},
                      {"manifest", dataset_manifest},
                      {"folds", blend ? 0 : folds_},
                      {"members", ensemble() && !blend ? parts_ : 1},
                      {"flow_decision", options.flow_decision}});
  if (options.abstain_threshold) description["abstain_threshold"] = *options.abstain_threshold;
  write_file_atomically(dir / "model.json", description.dump(2));

  std::vector<FlowDecision> test_flows;
  Json tested = score(r.test, options, &test_flows);
  std::vector<FlowDecision> validation_flows;
  Json validated = score(r.validation, validation_options_, &validation_flows);
  write_row_predictions(dir / "predictions.csv", r.test);
  write_flow_decisions(dir / "flows.csv", test_flows, manifest_, options.abstain_threshold);
  const double throughput = r.test.seconds > 0 ? static_cast<double>(r.test.rows()) / r.test.seconds : 0;
  Json metrics = {
      {"model", name},
      {"parameters", r.info.parameters},
      {"model_file_bytes", r.model_bytes},
      {"training_seconds", r.training_seconds},
      {"epochs", r.epochs},
      {"best_epoch", r.best_epoch},
      {"test", tested["per_sample"]},
      {"test_per_flow", tested["per_flow"]},
      {"test_scoring", tested},
      {"validation_per_flow", validated["per_flow"]},
      {"inference", {{"throughput_samples_per_second", throughput}, {"latency_ms_batch_1", r.latency}}},
      {"split", {{"method", manifest_.split_method}, {"leaks", manifest_.split_leaks()}, {"folds", folds_}}},
      {"granularity", to_string(manifest_.spec.granularity)}};
  const double test_f1 = tested["per_flow"]["macro_f1"].get<double>();
  metrics["validation_per_flow"]["decisions"] = decisions_json(validation_flows);  // for the run's choice
  if (blend) metrics["blend"] = r.blend;
  if (folds_) {
    metrics["folds"] = r.part_records;
    metrics["validation_per_flow"].update(fold_mean(r.part_records, "validation_per_flow_macro_f1"));
  }
  if (ensemble() && !blend) metrics["members"] = r.part_records;  // the ensemble's validation is its own (averaged)
  if (r.unseen) metrics["unseen"] = score_unseen(*r.unseen, options, dir);
  std::string headline;
  std::tie(metrics["headline"], headline) =
      headline_of(tested, r.unseen ? &metrics["unseen"] : nullptr, folds_, test_f1);
  write_file_atomically(dir / "metrics.json", metrics.dump(2));
  log_.info(
      fmt::format("model {}: {}; per packet/sample on the test split macro F1 {:.4f}, weighted F1 {:.4f}, accuracy "
                  "{:.4f}; {:.0f} samples/s, {:.2f} ms at batch 1{}",
                  name, headline, tested["per_sample"]["macro_f1"].get<double>(),
                  tested["per_sample"]["weighted_f1"].get<double>(), tested["per_sample"]["accuracy"].get<double>(),
                  throughput, r.latency, manifest_.split_leaks() ? " (PACKET SPLIT: flows leak across splits)" : ""));
  log_.event(
      "model",
      {{"name", name}, {"state", "done"}, {"headline", metrics["headline"]}, {"test_per_flow_macro_f1", test_f1}});
  return metrics;
}

}  // namespace

Json run_train_stage(const Experiment& experiment, const PluginRegistry& registry, HostLog& log,
                     const fs::path& dataset, const fs::path& run_dir, const TrainOptions& options) {
  TrainStage stage(experiment, registry, log, dataset, run_dir, options);
  Json all = Json::object();
  for (const auto& spec : experiment.models) {
    auto metrics = stage.model(spec);
    if (!metrics) return {{"status", "interrupted"}};
    all[spec.name] = std::move(*metrics);
  }
  if (experiment.blend && !options.judge) all[experiment.blend->name] = stage.blend(*experiment.blend, all);
  return all;
}

}  // namespace trafficid::host
