#include "train/train_stage.hpp"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <optional>
#include <thread>
#include <tuple>

#include "train/scoring.hpp"
#include "train/workers.hpp"
#include "trafficid/dataset_reader.hpp"
#include "trafficid/files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::vector<Json> read_epoch_lines(const fs::path& file) {
  std::vector<Json> lines;
  if (std::ifstream in(file); in)
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) lines.push_back(Json::parse(line));
  return lines;
}

namespace {

// Logs each epoch (a line and an `epoch` event), keeps metrics.jsonl (one line per finished
// epoch; after a resume, the lines of epochs that are redone are replaced), then asks the judge.
class EpochLog final : public TrainingObserver {
 public:
  EpochLog(HostLog& log, std::string name, fs::path file, std::int64_t epochs, EpochJudge* judge)
      : log_(log), name_(std::move(name)), file_(std::move(file)), epochs_(epochs), judge_(judge) {}
  bool on_epoch(const EpochMetrics& m) override {
    // A diverged epoch stops training and is kept out of every file (JSON has no NaN: it would be
    // written as null, which no reader of metrics.jsonl, the study journal or the report expects).
    if (auto why = divergence(m); !why.empty()) {
      diverged_ = fmt::format("diverged at epoch {} ({})", m.epoch, why);
      log_.warn(fmt::format("model {}: {}", name_, diverged_));
      return false;
    }
    std::string text;
    const Json line = to_json(m);
    bool known = false;
    for (const auto& kept : read_epoch_lines(file_)) {
      if (kept.value("epoch", 0) < m.epoch) text += kept.dump() + "\n";
      if (kept == line) known = true;
    }
    // A resumed trainer tells of its checkpoint's epoch again, the very numbers (the kill may have
    // come before this observer heard of it). When the file has them, they were logged and
    // published then: only the judge hears of them again. (An epoch trained anew differs at least
    // in its seconds.)
    if (known) {
      if (judge_ && !judge_->go_on(m, file_)) return false;
      return !log_.stop_requested();
    }
    text += line.dump() + "\n";
    write_file_atomically(file_, text);
    log_.info(
        fmt::format("model {} epoch {}/{}: train loss {:.4f}, validation loss {:.4f}, accuracy {:.4f}, macro F1 "
                    "{:.4f}; {:.0f} samples/s, {:.1f} s",
                    name_, m.epoch, epochs_, m.train_loss, m.val_loss, m.val_accuracy, m.val_macro_f1,
                    m.samples_per_second, m.seconds));
    Json payload = line;
    payload["model"] = name_;
    payload["epochs"] = epochs_;
    log_.event("epoch", payload);
    if (judge_ && !judge_->go_on(m, file_)) return false;
    return !log_.stop_requested();
  }
  // Why training stopped on numbers that are not finite; empty when it did not.
  const std::string& diverged() const { return diverged_; }

 private:
  HostLog& log_;
  std::string diverged_;
  std::string name_;
  fs::path file_;
  std::int64_t epochs_;
  EpochJudge* judge_;
};

// Inference speed on the test split: samples/s in batches of 512 (from the scoring pass) and the
// median latency of single-sample predictions (up to 200).
double latency_ms(const PluginHandle<Model>& model, DatasetSplit& test) {
  std::vector<double> latencies;
  FeatureBatch batch;
  test.rewind(false);
  while (latencies.size() < 200 && test.next(1, batch)) {
    auto started = Clock::now();
    model([&](Model& m) { return m.predict_proba(batch); });
    latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
  }
  if (latencies.empty()) return 0;
  std::nth_element(latencies.begin(), latencies.begin() + static_cast<std::ptrdiff_t>(latencies.size() / 2),
                   latencies.end());
  return latencies[latencies.size() / 2];
}

// predictions.csv: every test row, its flow and file, true and predicted class, confidence.
void write_row_predictions(const fs::path& file, const SplitPredictions& p) {
  const std::size_t k = p.class_names.size();
  std::ofstream out(file);
  out << "row,flow,file,true,predicted,confidence\n";
  for (std::size_t r = 0; r < p.rows(); ++r) {
    const float* q = p.probabilities.data() + r * k;
    const auto best = std::max_element(q, q + k) - q;
    out << r << ',' << p.flows[r] << ',' << input_of_flow(p.flows[r]) << ','
        << (p.labels[r] >= 0 ? p.class_names[static_cast<std::size_t>(p.labels[r])] : std::string()) << ','
        << p.class_names[static_cast<std::size_t>(best)] << ',' << fmt::format("{:.4f}", q[best]) << '\n';
  }
}

ScoringOptions scoring_options(const Experiment& experiment) {
  ScoringOptions o;
  o.flow_decision = experiment.evaluation.flow_decision;
  o.early = experiment.evaluation.early;
  return o;
}

// The flows of an evaluation dataset that gave no sample, per class: the model cannot decide them.
std::vector<std::uint64_t> flows_without_samples(const DatasetManifest& m) {
  std::vector<std::uint64_t> out(m.class_names.size(), 0);
  if (m.evaluation.is_null() || !m.evaluation.contains("flows_without_samples")) return out;
  for (std::size_t c = 0; c < m.class_names.size(); ++c)
    out[c] = m.evaluation["flows_without_samples"].value(m.class_names[c], std::uint64_t{0});
  return out;
}

// What one model's folds add up to.
struct ModelResult {
  SplitPredictions test, validation;
  std::optional<SplitPredictions> unseen;
  Json fold_records = Json::array();
  double training_seconds = 0, latency = 0;
  ModelInfo info;
  Json epochs = Json::array();
  std::int64_t best_epoch = 0;
  std::uint64_t model_bytes = 0;
};

// The best epoch of a metrics.jsonl by validation macro F1.
std::int64_t best_epoch_of(const Json& epochs) {
  std::int64_t best = 0;
  double best_f1 = -1;
  for (const auto& e : epochs)
    if (e.value("val_macro_f1", 0.0) > best_f1) {
      best_f1 = e.value("val_macro_f1", 0.0);
      best = e.value("epoch", std::int64_t{0});
    }
  return best;
}

class TrainStage {
 public:
  TrainStage(const Experiment& experiment, const PluginRegistry& registry, HostLog& log, const fs::path& dataset,
             const fs::path& run_dir, const TrainOptions& options);
  // The model's metrics (or, with a judge, what its training gave); nullopt when a stop was asked.
  std::optional<Json> model(const ModelSpec& spec);

 private:
  struct Trained {
    bool stopped = false;
    double seconds = 0;
    std::string diverged;
  };
  Trained train(const PluginHandle<Model>& model, const ModelSpec& spec, const ModelInput& input, int fold,
                const fs::path& fold_dir, DatasetSplit& train, DatasetSplit& validation);
  // The training's context: with workers, what they are told (for a model that trains on them).
  TrainingContext context(const PluginHandle<Model>& model, const ModelSpec& spec, const ModelInput& input, int fold,
                          const fs::path& fold_dir, TrainingObserver& observer);
  void measure(const PluginHandle<Model>& model, int fold, const fs::path& fold_dir, double seconds, DatasetSplit& test,
               DatasetSplit& validation, ModelResult& result);
  Json metrics(const ModelSpec& spec, const fs::path& dir, ModelResult& result);
  Json score_unseen(const SplitPredictions& unseen, ScoringOptions options, const fs::path& dir);

  const Experiment& experiment_;
  const PluginRegistry& registry_;
  HostLog& log_;
  fs::path dataset_, run_dir_;
  TrainOptions options_;
  DatasetManifest manifest_;
  int folds_;
  std::optional<DatasetSplit> unseen_;
  std::optional<DatasetManifest> unseen_manifest_;
  ScoringOptions base_options_, validation_options_;
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
      folds_(options.judge ? 0 : manifest_.folds) {
  // A tuning trial trains fold 0 and looks at its validation split only.
  if (options.evaluation && !options.judge) {
    unseen_.emplace(*options.evaluation, SplitName::test);
    unseen_manifest_ = unseen_->manifest();
    if (unseen_manifest_->class_names != manifest_.class_names)
      throw Error(fmt::format("{}: its classes are not the training dataset's ({}): build it again with --rebuild",
                              options.evaluation->string(), dataset.string()));
  }
  DatasetSplit train(dataset, SplitName::train), validation(dataset, SplitName::validation),
      test(dataset, SplitName::test);
  log.info(fmt::format("stage train: {} model{} on {} training, {} validation, {} test samples{}{}",
                       experiment.models.size(), experiment.models.size() == 1 ? "" : "s", train.rows(),
                       validation.rows(), test.rows(),
                       folds_ ? fmt::format(" (fold 0 of {}: each model is trained once per fold)", folds_) : "",
                       unseen_ ? fmt::format("; {} samples of unseen captures", unseen_->rows()) : ""));
  base_options_ = scoring_options(experiment);
  validation_options_ = base_options_;  // the validation split gives a score and a threshold, no curves
  validation_options_.early.clear();
}

TrainingContext TrainStage::context(const PluginHandle<Model>& model, const ModelSpec& spec, const ModelInput& input,
                                    int fold, const fs::path& fold_dir, TrainingObserver& observer) {
  TrainingContext context{experiment_.train, fold_dir / "checkpoints", &observer, &log_, {}};
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

// Trains the model of one fold; its checkpoints make a killed run go on from the last epoch.
TrainStage::Trained TrainStage::train(const PluginHandle<Model>& model, const ModelSpec& spec, const ModelInput& input,
                                      int fold, const fs::path& fold_dir, DatasetSplit& train,
                                      DatasetSplit& validation) {
  const std::string label = folds_ ? fmt::format("{} (fold {} of {})", spec.name, fold, folds_) : spec.name;
  EpochLog observer(log_, label, fold_dir / "metrics.jsonl", experiment_.train_settings.epochs, options_.judge);
  const TrainingContext context = this->context(model, spec, input, fold, fold_dir, observer);
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
void TrainStage::measure(const PluginHandle<Model>& model, int fold, const fs::path& fold_dir, double seconds,
                         DatasetSplit& test, DatasetSplit& validation, ModelResult& result) {
  result.training_seconds += seconds;
  auto tested = predict_split(model, test, base_options_.early);
  auto validated = predict_split(model, validation, {});  // its per-flow score and threshold only
  Json fold_epochs = read_epoch_lines(fold_dir / "metrics.jsonl");
  const std::int64_t fold_best = best_epoch_of(fold_epochs);
  if (fold == 0) {
    result.epochs = fold_epochs;
    result.best_epoch = fold_best;
    result.model_bytes = fs::file_size(fold_dir / "model.pt");
    result.latency = latency_ms(model, test);
  }
  if (folds_) {
    Json record = {
        {"fold", fold},
        {"best_epoch", fold_best},
        {"training_seconds", seconds},
        {"validation_per_flow_macro_f1", score(validated, validation_options_)["per_flow"].value("macro_f1", 0.0)},
        {"test_per_flow_macro_f1", score(tested, base_options_)["per_flow"].value("macro_f1", 0.0)},
        {"test_rows", tested.rows()}};
    write_file_atomically(fold_dir / "fold.json", record.dump(2));
    result.fold_records.push_back(record);
  }
  result.test.append(tested);
  result.validation.append(validated);
  if (unseen_) {
    auto p = predict_split(model, *unseen_, base_options_.early);
    if (result.unseen) result.unseen->average_with(p);
    else result.unseen = std::move(p);
  }
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
  log_.event("model", {{"name", name}, {"state", "started"}, {"plugin", spec.plugin->name}, {"folds", folds_}});
  const std::int64_t train_seed = experiment_.train_settings.seed;
  ModelInput input{manifest_.spec, manifest_.class_names, manifest_.class_weights,
                   static_cast<std::uint64_t>(train_seed ? train_seed : experiment_.seed)};
  ModelResult result;
  for (int fold = 0; fold < std::max(1, folds_); ++fold) {
    const fs::path fold_dir = folds_ ? dir / fmt::format("fold-{}", fold) : dir;
    const std::string label = folds_ ? fmt::format("{} (fold {} of {})", name, fold, folds_) : name;
    fs::create_directories(fold_dir);
    DatasetSplit train(dataset_, SplitName::train, fold), validation(dataset_, SplitName::validation, fold),
        test(dataset_, SplitName::test, fold);
    if (folds_ && manifest_.balance == "weights" && manifest_.fold_counts.size() == static_cast<std::size_t>(folds_))
      input.class_weights = balanced_class_weights(manifest_.fold_counts[static_cast<std::size_t>(fold)].at("train"));
    const auto model = registry_.make<Model>(*spec.plugin, spec.params, log_, name);
    model([&](Model& m) { m.build(input); });
    result.info = model([](Model& m) { return m.info(); });
    double seconds = 0;
    if (folds_ && fs::exists(fold_dir / "model.pt") && fs::exists(fold_dir / "fold.json")) {
      // A fold finished in an earlier attempt of this run: its model is kept.
      model([&](Model& m) { m.load(fold_dir / "model.pt"); });
      seconds = Json::parse(std::ifstream(fold_dir / "fold.json")).value("training_seconds", 0.0);
      log_.info(fmt::format("model {}: trained in an earlier attempt of this run", label));
    } else {
      log_.info(fmt::format("model {}: {} trainable parameters", label, result.info.parameters));
      const Trained trained = this->train(model, spec, input, fold, fold_dir, train, validation);
      seconds = trained.seconds;
      result.info = model([](Model& m) { return m.info(); });  // trees count only after training
      if (trained.stopped) return std::nullopt;
      if (!trained.diverged.empty() && !options_.judge) {
        log_.event("model", {{"name", name}, {"state", "failed"}, {"error", trained.diverged}});
        throw Error(trained.diverged);
      }
      if (options_.judge) {
        Json out = {{"status", trained.diverged.empty() ? "trained" : "diverged"},
                    {"training_seconds", seconds},
                    {"parameters", result.info.parameters},
                    {"metrics_file", (fold_dir / "metrics.jsonl").string()}};
        if (!trained.diverged.empty()) out["error"] = trained.diverged;
        return out;
      }
      model([&](Model& m) { m.save(fold_dir / "model.pt"); });
      sync_file(fold_dir / "model.pt");  // on the disk before metrics.json or fold.json says it is done
    }
    measure(model, fold, fold_dir, seconds, test, validation, result);
  }
  return metrics(spec, dir, result);
}

// metrics.json's headline and the log's words for it: the unseen captures' per-flow macro F1 where
// there are any, else the test split's (with folds: the captures each fold held out).
std::pair<Json, std::string> headline_of(const Json& tested, const Json* unseen, int folds, double test_f1) {
  if (unseen) {
    const Json& u = *unseen;
    return {{{"what", "unseen captures, per-flow macro F1"},
             {"macro_f1", u["per_flow"]["macro_f1"]},
             {"interval", u["per_flow"]["interval"]}},
            fmt::format("UNSEEN captures per flow macro F1 {:.4f}{} ({} flows, {} without samples); test split {:.4f}",
                        u["per_flow"]["macro_f1"].get<double>(), describe_interval(u["per_flow"]),
                        u["flows"].get<std::uint64_t>(), u["flows_without_samples"].get<std::uint64_t>(), test_f1)};
  }
  Json headline = {{"what", folds ? "captures held out by fold, per-flow macro F1" : "test split, per-flow macro F1"},
                   {"macro_f1", tested["per_flow"]["macro_f1"]},
                   {"interval", tested["per_flow"]["interval"]}};
  if (folds)
    return {headline, fmt::format("{} folds by capture, per flow macro F1 {:.4f}{} (every capture tested by a model "
                                  "that never saw it)",
                                  folds, test_f1, describe_interval(tested["per_flow"]))};
  return {headline,
          fmt::format("test split per flow macro F1 {:.4f}{}", test_f1, describe_interval(tested["per_flow"]))};
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
Json TrainStage::metrics(const ModelSpec& spec, const fs::path& dir, ModelResult& r) {
  const std::string& name = spec.name;
  Json dataset_manifest = to_json(manifest_);
  dataset_manifest["inputs"] = Json::array();
  ScoringOptions options = base_options_;
  options.abstain_threshold =
      abstain_threshold(r.validation, options.flow_decision, experiment_.evaluation.abstain_quantile);
  Json description = {{"plugin", spec.plugin->name},           {"name", name},
                      {"version", spec.plugin->version},       {"params", spec.params},
                      {"classes", manifest_.class_names},      {"dataset", fs::absolute(dataset_).string()},
                      {"manifest", dataset_manifest},          {"folds", folds_},
                      {"flow_decision", options.flow_decision}};
  if (options.abstain_threshold) description["abstain_threshold"] = *options.abstain_threshold;
  write_file_atomically(dir / "model.json", description.dump(2));

  std::vector<FlowDecision> test_flows;
  Json tested = score(r.test, options, &test_flows);
  Json validated = score(r.validation, validation_options_);
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
  if (folds_) {
    double mean = 0;
    for (const auto& f : r.fold_records) mean += f["validation_per_flow_macro_f1"].get<double>();
    metrics["folds"] = r.fold_records;
    metrics["validation_per_flow"]["macro_f1"] = mean / folds_;  // the mean of the folds' validation
  }
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
  return all;
}

}  // namespace trafficid::host
