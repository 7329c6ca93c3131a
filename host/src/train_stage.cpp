#include "train_stage.hpp"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <unordered_map>

#include "scoring.hpp"
#include "study.hpp"
#include "trafficid/dataset_reader.hpp"
#include "trafficid/files.hpp"
#include "trafficid/model.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// The lines of a model's metrics.jsonl, one per finished epoch (none when it does not exist yet).
std::vector<Json> read_epoch_lines(const fs::path& file) {
  std::vector<Json> lines;
  if (std::ifstream in(file); in)
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) lines.push_back(Json::parse(line));
  return lines;
}

// Logs each epoch and keeps metrics.jsonl: one line per finished epoch (after a resume, the
// lines of epochs that are redone are replaced).
class EpochLog final : public TrainingObserver {
 public:
  EpochLog(HostLog& log, std::string name, fs::path file, std::int64_t epochs)
      : log_(log), name_(std::move(name)), file_(std::move(file)), epochs_(epochs) {}
  bool on_epoch(const EpochMetrics& m) override {
    // A diverged epoch stops training and is kept out of every file (JSON has no NaN: it would be
    // written as null, which no reader of metrics.jsonl, the study journal or the report expects).
    if (auto why = divergence(m); !why.empty()) {
      diverged_ = fmt::format("diverged at epoch {} ({})", m.epoch, why);
      log_.warn(fmt::format("model {}: {}", name_, diverged_));
      return false;
    }
    std::string text;
    for (const auto& line : read_epoch_lines(file_))
      if (line.value("epoch", 0) < m.epoch) text += line.dump() + "\n";
    text += to_json(m).dump() + "\n";
    write_file_atomically(file_, text);
    log_.info(fmt::format("model {} epoch {}/{}: train loss {:.4f}, validation loss {:.4f}, accuracy {:.4f}, macro F1 "
                          "{:.4f}; {:.0f} samples/s, {:.1f} s", name_, m.epoch, epochs_, m.train_loss, m.val_loss,
                          m.val_accuracy, m.val_macro_f1, m.samples_per_second, m.seconds));
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
};

// A tuning trial's epochs: logged as usual, then reported to the study, which may stop the trial.
class TrialObserver final : public TrainingObserver {
 public:
  TrialObserver(EpochLog& inner, HostLog& log, const TrialContext& trial, fs::path metrics)
      : inner_(inner), log_(log), trial_(trial), metrics_(std::move(metrics)) {}
  bool on_epoch(const EpochMetrics& m) override {
    const bool go_on = inner_.on_epoch(m);
    if (!inner_.diverged().empty()) return false;  // nothing to report: the trial fails
    // A resumed trial first reports the epochs its checkpoint holds that this process has not
    // (the journal may lack them after a kill; the study ignores a step it has).
    std::vector<std::pair<int, double>> epochs;
    if (m.epoch > reported_ + 1)
      for (const auto& line : read_epoch_lines(metrics_))
        if (const int epoch = line.value("epoch", 0); epoch > reported_ && epoch < m.epoch)
          epochs.emplace_back(epoch, metric_of(trial_.metric, line));
    epochs.emplace_back(m.epoch, metric_of(trial_.metric, to_json(m)));
    for (const auto& [epoch, value] : epochs) {
      reported_ = epoch;
      if (trial_.study->report(trial_.trial, epoch, value) == TrialDecision::stop) {
        log_.info(fmt::format("trial {}: stopped after epoch {} ({} {:.4f})", trial_.trial, epoch, trial_.metric, value));
        stopped_at_ = epoch;
        return false;
      }
    }
    return go_on;
  }
  bool pruned() const { return stopped_at_ > 0; }
  // The epoch at which the study stopped the trial (0: not stopped); a resumed trial may have
  // trained past it before it heard, and those epochs do not count.
  int stopped_at() const { return stopped_at_; }

 private:
  EpochLog& inner_;
  HostLog& log_;
  const TrialContext& trial_;
  fs::path metrics_;
  int reported_ = 0;
  int stopped_at_ = 0;
};

// Inference speed on the test split: samples/s in batches of 512 (from the scoring pass) and the
// median latency of single-sample predictions (up to 200).
double latency_ms(Model& model, const PluginInfo& plugin, DatasetSplit& test) {
  std::vector<double> latencies;
  FeatureBatch batch;
  test.rewind(false);
  while (latencies.size() < 200 && test.next(1, batch)) {
    auto started = Clock::now();
    guarded(plugin, [&] { return model.predict_proba(batch); });
    latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
  }
  if (latencies.empty()) return 0;
  std::nth_element(latencies.begin(), latencies.begin() + static_cast<std::ptrdiff_t>(latencies.size() / 2), latencies.end());
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
    out << r << ',' << p.flows[r] << ',' << (p.flows[r] >> 40) << ','
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

}  // namespace

Json run_train_stage(const Experiment& experiment, const PluginRegistry& registry, HostLog& log, const fs::path& dataset,
                     const fs::path& run_dir, const TrialContext* trial, const fs::path* evaluation) {
  Json all = Json::object();
  const DatasetManifest manifest = read_manifest(dataset);
  const int folds = trial ? 0 : manifest.folds;  // a tuning trial trains fold 0 and looks at its validation split
  std::optional<DatasetSplit> unseen;
  std::optional<DatasetManifest> unseen_manifest;
  if (evaluation && !trial) {
    unseen.emplace(*evaluation, SplitName::test);
    unseen_manifest = unseen->manifest();
    if (unseen_manifest->class_names != manifest.class_names)
      throw Error(fmt::format("{}: its classes are not the training dataset's ({}): build it again with --rebuild",
                              evaluation->string(), dataset.string()));
  }
  {
    DatasetSplit train(dataset, SplitName::train), validation(dataset, SplitName::validation), test(dataset, SplitName::test);
    log.info(fmt::format("stage train: {} model{} on {} training, {} validation, {} test samples{}{}", experiment.models.size(),
                         experiment.models.size() == 1 ? "" : "s", train.rows(), validation.rows(), test.rows(),
                         folds ? fmt::format(" (fold 0 of {}: each model is trained once per fold)", folds) : "",
                         unseen ? fmt::format("; {} samples of unseen captures", unseen->rows()) : ""));
  }
  const ScoringOptions base_options = scoring_options(experiment);
  ScoringOptions validation_options = base_options;  // the validation split gives a score and a threshold, no curves
  validation_options.early.clear();
  for (const auto& spec : experiment.models) {
    const std::string& name = spec.name;  // the experiment's name for it: its folder and report rows
    const fs::path dir = run_dir / "models" / name;
    fs::create_directories(dir);
    if (std::ifstream done(dir / "metrics.json"); done) {
      log.info(fmt::format("model {}: done in an earlier attempt of this run ({})", name, (dir / "metrics.json").string()));
      all[name] = Json::parse(done);
      continue;
    }
    const std::int64_t train_seed = experiment.train_settings.seed;
    ModelInput input{manifest.spec, manifest.class_names, manifest.class_weights,
                     static_cast<std::uint64_t>(train_seed ? train_seed : experiment.seed)};
    SplitPredictions test_predictions, validation_predictions;
    std::optional<SplitPredictions> unseen_predictions;
    Json fold_records = Json::array();
    double training_seconds = 0, latency = 0;
    ModelInfo info;
    Json epochs = Json::array();
    std::int64_t best_epoch = 0;
    std::uint64_t model_bytes = 0;
    for (int fold = 0; fold < std::max(1, folds); ++fold) {
      const fs::path fold_dir = folds ? dir / fmt::format("fold-{}", fold) : dir;
      const std::string label = folds ? fmt::format("{} (fold {} of {})", name, fold, folds) : name;
      fs::create_directories(fold_dir);
      DatasetSplit train(dataset, SplitName::train, fold), validation(dataset, SplitName::validation, fold),
          test(dataset, SplitName::test, fold);
      if (folds && manifest.balance == "weights" && manifest.fold_counts.size() == static_cast<std::size_t>(folds))
        input.class_weights = balanced_class_weights(manifest.fold_counts[static_cast<std::size_t>(fold)].at("train"));
      auto model = registry.create<Model>(*spec.plugin, spec.params, log, name);
      guarded(*spec.plugin, [&] { model->build(input); });
      info = guarded(*spec.plugin, [&] { return model->info(); });
      double seconds = 0;
      if (folds && fs::exists(fold_dir / "model.pt") && fs::exists(fold_dir / "fold.json")) {
        // A fold finished in an earlier attempt of this run: its model is kept.
        guarded(*spec.plugin, [&] { model->load(fold_dir / "model.pt"); });
        seconds = Json::parse(std::ifstream(fold_dir / "fold.json")).value("training_seconds", 0.0);
        log.info(fmt::format("model {}: trained in an earlier attempt of this run", label));
      } else {
        log.info(fmt::format("model {}: {} trainable parameters", label, info.parameters));
        EpochLog observer(log, label, fold_dir / "metrics.jsonl", experiment.train_settings.epochs);
        std::optional<TrialObserver> trial_observer;
        if (trial) trial_observer.emplace(observer, log, *trial, fold_dir / "metrics.jsonl");
        TrainingContext context{experiment.train, fold_dir / "checkpoints",
                                trial_observer ? static_cast<TrainingObserver*>(&*trial_observer) : &observer, &log};
        auto started = Clock::now();
        guarded(*spec.plugin, [&] { model->fit(train, validation, context); });
        seconds = std::chrono::duration<double>(Clock::now() - started).count();
        info = guarded(*spec.plugin, [&] { return model->info(); });  // trees count only after training
        if (log.stop_requested()) {
          all["status"] = "interrupted";
          return all;
        }
        if (!observer.diverged().empty()) {
          const std::string why = fmt::format("model {}: training {}; lower train.lr (now {}) and run it again", label, observer.diverged(),
                                              experiment.train_settings.lr);
          if (!trial) throw Error(why);
          // A diverged trial fails for good (the same seed diverges again): no retry.
          Json result = {{"trial", trial->trial}, {"model", name}, {"metric", trial->metric}, {"status", "failed"},
                         {"error", why}, {"retry", false}, {"value", nullptr}, {"training_seconds", seconds}};
          write_file_atomically(run_dir / "trial.json", result.dump(2));
          all[name] = result;
          break;
        }
        if (trial) {
          // The trial's value: its best epoch's (all epochs, also those before a resume).
          std::optional<double> best;
          std::int64_t trial_epochs = 0;
          for (const auto& line : read_epoch_lines(fold_dir / "metrics.jsonl")) {
            if (trial_observer->stopped_at() > 0 && line.value("epoch", 0) > trial_observer->stopped_at()) continue;
            const double v = metric_of(trial->metric, line);
            ++trial_epochs;
            if (!best || (trial->maximize ? v > *best : v < *best)) best = v;
          }
          Json result = {{"trial", trial->trial}, {"model", name}, {"metric", trial->metric},
                         {"status", trial_observer->pruned() ? "pruned" : "done"}, {"epochs", trial_epochs},
                         {"training_seconds", seconds}, {"parameters", info.parameters}};
          result["value"] = best ? Json(*best) : Json(nullptr);
          write_file_atomically(run_dir / "trial.json", result.dump(2));
          all[name] = result;
          break;
        }
        guarded(*spec.plugin, [&] { model->save(fold_dir / "model.pt"); });
        sync_file(fold_dir / "model.pt");  // on the disk before metrics.json or fold.json says it is done
      }
      training_seconds += seconds;
      // This fold's predictions: the test rows (out of fold), the validation rows, the unseen captures.
      auto tested = predict_split(*model, *spec.plugin, test, base_options.early);
      auto validated = predict_split(*model, *spec.plugin, validation, {});  // its per-flow score and threshold only
      Json fold_epochs = read_epoch_lines(fold_dir / "metrics.jsonl");
      std::int64_t fold_best = 0;
      double best_f1 = -1;
      for (const auto& e : fold_epochs)
        if (e.value("val_macro_f1", 0.0) > best_f1) {
          best_f1 = e.value("val_macro_f1", 0.0);
          fold_best = e.value("epoch", std::int64_t{0});
        }
      if (fold == 0) {
        epochs = fold_epochs;
        best_epoch = fold_best;
        model_bytes = fs::file_size(fold_dir / "model.pt");
        latency = latency_ms(*model, *spec.plugin, test);
      }
      if (folds) {
        Json record = {{"fold", fold}, {"best_epoch", fold_best}, {"training_seconds", seconds},
                       {"validation_per_flow_macro_f1", score(validated, validation_options)["per_flow"].value("macro_f1", 0.0)},
                       {"test_per_flow_macro_f1", score(tested, base_options)["per_flow"].value("macro_f1", 0.0)},
                       {"test_rows", tested.rows()}};
        write_file_atomically(fold_dir / "fold.json", record.dump(2));
        fold_records.push_back(record);
      }
      test_predictions.append(tested);
      validation_predictions.append(validated);
      if (unseen) {
        auto p = predict_split(*model, *spec.plugin, *unseen, base_options.early);
        if (unseen_predictions) unseen_predictions->average_with(p);
        else unseen_predictions = std::move(p);
      }
    }
    if (trial) continue;

    // Everything `trafficid predict` needs to turn new captures into this model's inputs: the
    // plugin and its parameters, and the dataset's manifest (classes, features, labeler config).
    Json dataset_manifest = to_json(manifest);
    dataset_manifest["inputs"] = Json::array();
    ScoringOptions options = base_options;
    options.abstain_threshold = abstain_threshold(validation_predictions, options.flow_decision,
                                                  experiment.evaluation.abstain_quantile);
    Json description = {{"plugin", spec.plugin->name}, {"name", name}, {"version", spec.plugin->version}, {"params", spec.params},
                        {"classes", manifest.class_names}, {"dataset", fs::absolute(dataset).string()},
                        {"manifest", dataset_manifest}, {"folds", folds}, {"flow_decision", options.flow_decision}};
    if (options.abstain_threshold) description["abstain_threshold"] = *options.abstain_threshold;
    write_file_atomically(dir / "model.json", description.dump(2));

    std::vector<FlowDecision> test_flows, unseen_flows;
    Json tested = score(test_predictions, options, &test_flows);
    Json validated = score(validation_predictions, validation_options);
    write_row_predictions(dir / "predictions.csv", test_predictions);
    write_flow_decisions(dir / "flows.csv", test_flows, manifest, options.abstain_threshold);
    const double throughput = test_predictions.seconds > 0 ? static_cast<double>(test_predictions.rows()) / test_predictions.seconds : 0;
    Json metrics = {{"model", name},
                    {"parameters", info.parameters},
                    {"model_file_bytes", model_bytes},
                    {"training_seconds", training_seconds},
                    {"epochs", epochs},
                    {"best_epoch", best_epoch},
                    {"test", tested["per_sample"]},
                    {"test_per_flow", tested["per_flow"]},
                    {"test_scoring", tested},
                    {"validation_per_flow", validated["per_flow"]},
                    {"inference", {{"throughput_samples_per_second", throughput}, {"latency_ms_batch_1", latency}}},
                    {"split", {{"method", manifest.split_method}, {"leaks", manifest.split_leaks()}, {"folds", folds}}},
                    {"granularity", to_string(manifest.spec.granularity)}};
    if (folds) {
      double mean = 0;
      for (const auto& f : fold_records) mean += f["validation_per_flow_macro_f1"].get<double>();
      metrics["folds"] = fold_records;
      metrics["validation_per_flow"]["macro_f1"] = mean / folds;  // the mean of the folds' validation
    }
    std::string headline = fmt::format("test split per flow macro F1 {:.4f}", tested["per_flow"]["macro_f1"].get<double>());
    if (folds) headline = fmt::format("{} folds by capture, per flow macro F1 {:.4f} (every capture tested by a model that "
                                      "never saw it)", folds, tested["per_flow"]["macro_f1"].get<double>());
    if (unseen_predictions) {
      ScoringOptions unseen_options = options;
      unseen_options.flows_without_samples = flows_without_samples(*unseen_manifest);
      Json u = score(*unseen_predictions, unseen_options, &unseen_flows);
      u["captures"] = unseen_manifest->inputs.size();
      u["dataset"] = fs::absolute(*evaluation).string();
      u["left_out"] = unseen_manifest->evaluation;
      write_flow_decisions(dir / "unseen_flows.csv", unseen_flows, *unseen_manifest, options.abstain_threshold);
      metrics["unseen"] = u;
      metrics["headline"] = {{"what", "unseen captures, per-flow macro F1"}, {"macro_f1", u["per_flow"]["macro_f1"]}};
      headline = fmt::format("UNSEEN captures per flow macro F1 {:.4f} ({} flows, {} without samples); test split {:.4f}",
                             u["per_flow"]["macro_f1"].get<double>(), u["flows"].get<std::uint64_t>(),
                             u["flows_without_samples"].get<std::uint64_t>(), tested["per_flow"]["macro_f1"].get<double>());
    } else {
      metrics["headline"] = {{"what", folds ? "captures held out by fold, per-flow macro F1" : "test split, per-flow macro F1"},
                             {"macro_f1", tested["per_flow"]["macro_f1"]}};
    }
    write_file_atomically(dir / "metrics.json", metrics.dump(2));
    log.info(fmt::format("model {}: {}; per packet/sample on the test split macro F1 {:.4f}, weighted F1 {:.4f}, accuracy "
                         "{:.4f}; {:.0f} samples/s, {:.2f} ms at batch 1{}", name, headline,
                         tested["per_sample"]["macro_f1"].get<double>(), tested["per_sample"]["weighted_f1"].get<double>(),
                         tested["per_sample"]["accuracy"].get<double>(), throughput, latency,
                         manifest.split_leaks() ? " (PACKET SPLIT: flows leak across splits)" : ""));
    all[name] = metrics;
  }
  return all;
}

}  // namespace trafficid::host
