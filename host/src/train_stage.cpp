#include "train_stage.hpp"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <unordered_map>

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

 private:
  HostLog& log_;
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

struct TestResults {
  EvaluationMetrics packets, flows;
  double throughput = 0;     // samples/s, batches of 512
  double latency_ms = 0;     // median of single-sample predictions
};

TestResults test_model(Model& model, DatasetSplit& test, const PluginInfo& plugin, const fs::path& predictions_file) {
  const auto& names = test.manifest().class_names;
  const std::size_t k = names.size();
  std::vector<std::int64_t> truth, predicted;
  std::unordered_map<std::uint64_t, std::pair<std::int64_t, std::vector<std::uint32_t>>> votes;  // flow -> truth, votes
  std::ofstream out(predictions_file);
  out << "row,flow,file,true,predicted,confidence\n";
  FeatureBatch batch;
  test.rewind(false);
  double seconds = 0;
  std::uint64_t row = 0;
  while (test.next(512, batch)) {
    auto started = Clock::now();
    auto p = guarded(plugin, [&] { return model.predict_proba(batch); });
    seconds += std::chrono::duration<double>(Clock::now() - started).count();
    for (std::size_t r = 0; r < batch.rows; ++r, ++row) {
      auto first = p.begin() + static_cast<std::ptrdiff_t>(r * k);
      auto best = std::max_element(first, first + static_cast<std::ptrdiff_t>(k));
      const std::int64_t guess = best - first;
      truth.push_back(batch.labels[r]);
      predicted.push_back(guess);
      auto& v = votes[batch.flow_ids[r]];
      v.first = batch.labels[r];
      if (v.second.empty()) v.second.assign(k, 0);
      ++v.second[static_cast<std::size_t>(guess)];
      out << row << ',' << batch.flow_ids[r] << ',' << batch.file_ids[r] << ',' << names[static_cast<std::size_t>(batch.labels[r])]
          << ',' << names[static_cast<std::size_t>(guess)] << ',' << fmt::format("{:.4f}", *best) << '\n';
    }
  }
  TestResults results;
  results.packets = evaluate(truth, predicted, names);
  results.throughput = seconds > 0 ? static_cast<double>(truth.size()) / seconds : 0;
  std::vector<std::int64_t> flow_truth, flow_predicted;
  for (const auto& [flow, v] : votes) {
    flow_truth.push_back(v.first);
    flow_predicted.push_back(std::max_element(v.second.begin(), v.second.end()) - v.second.begin());
  }
  results.flows = evaluate(flow_truth, flow_predicted, names);
  // Latency: one sample at a time, the median of up to 200.
  std::vector<double> latencies;
  test.rewind(false);
  while (latencies.size() < 200 && test.next(1, batch)) {
    auto started = Clock::now();
    guarded(plugin, [&] { return model.predict_proba(batch); });
    latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
  }
  if (!latencies.empty()) {
    std::nth_element(latencies.begin(), latencies.begin() + static_cast<std::ptrdiff_t>(latencies.size() / 2), latencies.end());
    results.latency_ms = latencies[latencies.size() / 2];
  }
  return results;
}

}  // namespace

Json run_train_stage(const Experiment& experiment, const PluginRegistry& registry, HostLog& log, const fs::path& dataset,
                     const fs::path& run_dir, const TrialContext* trial) {
  Json all = Json::object();
  DatasetSplit train(dataset, SplitName::train), validation(dataset, SplitName::validation), test(dataset, SplitName::test);
  const auto& manifest = train.manifest();
  log.info(fmt::format("stage train: {} model{} on {} training, {} validation, {} test samples", experiment.models.size(),
                       experiment.models.size() == 1 ? "" : "s", train.rows(), validation.rows(), test.rows()));
  for (const auto& spec : experiment.models) {
    const std::string& name = spec.plugin->name;
    const fs::path dir = run_dir / "models" / name;
    fs::create_directories(dir);
    if (std::ifstream done(dir / "metrics.json"); done) {
      log.info(fmt::format("model {}: done in an earlier attempt of this run ({})", name, (dir / "metrics.json").string()));
      all[name] = Json::parse(done);
      continue;
    }
    auto model = registry.create<Model>(*spec.plugin, spec.params, log, name);
    const std::int64_t train_seed = experiment.train.value("seed", std::int64_t{0});
    ModelInput input{manifest.spec, manifest.class_names, manifest.class_weights,
                     static_cast<std::uint64_t>(train_seed ? train_seed : experiment.seed)};
    guarded(*spec.plugin, [&] { model->build(input); });
    auto info = guarded(*spec.plugin, [&] { return model->info(); });
    log.info(fmt::format("model {}: {} trainable parameters", name, info.parameters));
    EpochLog observer(log, name, dir / "metrics.jsonl", experiment.train.value("epochs", std::int64_t{10}));
    std::optional<TrialObserver> trial_observer;
    if (trial) trial_observer.emplace(observer, log, *trial, dir / "metrics.jsonl");
    TrainingContext context{experiment.train, dir / "checkpoints",
                            trial_observer ? static_cast<TrainingObserver*>(&*trial_observer) : &observer, &log};
    auto started = Clock::now();
    guarded(*spec.plugin, [&] { model->fit(train, validation, context); });
    const double training_seconds = std::chrono::duration<double>(Clock::now() - started).count();
    info = guarded(*spec.plugin, [&] { return model->info(); });  // trees count only after training
    if (log.stop_requested()) {
      all["status"] = "interrupted";
      return all;
    }
    if (trial) {
      // The trial's value: its best epoch's (all epochs, also those before a resume).
      std::optional<double> best;
      std::int64_t epochs = 0;
      for (const auto& line : read_epoch_lines(dir / "metrics.jsonl")) {
        if (trial_observer->stopped_at() > 0 && line.value("epoch", 0) > trial_observer->stopped_at()) continue;
        const double v = metric_of(trial->metric, line);
        ++epochs;
        if (!best || (trial->maximize ? v > *best : v < *best)) best = v;
      }
      Json result = {{"trial", trial->trial}, {"model", name}, {"metric", trial->metric},
                     {"status", trial_observer->pruned() ? "pruned" : "done"}, {"epochs", epochs},
                     {"training_seconds", training_seconds}, {"parameters", info.parameters}};
      result["value"] = best ? Json(*best) : Json(nullptr);
      write_file_atomically(run_dir / "trial.json", result.dump(2));
      all[name] = result;
      continue;
    }
    guarded(*spec.plugin, [&] { model->save(dir / "model.pt"); });
    // Everything `trafficid predict` needs to turn new captures into this model's inputs: the
    // plugin and its parameters, and the dataset's manifest (classes, features, labeler config).
    Json dataset_manifest = to_json(manifest);
    dataset_manifest["inputs"] = Json::array();
    Json description = {{"plugin", name}, {"version", spec.plugin->version}, {"params", spec.params},
                        {"classes", manifest.class_names}, {"dataset", fs::absolute(dataset).string()},
                        {"manifest", dataset_manifest}};
    write_file_atomically(dir / "model.json", description.dump(2));
    auto results = test_model(*model, test, *spec.plugin, dir / "predictions.csv");
    Json epochs = read_epoch_lines(dir / "metrics.jsonl");
    std::int64_t best_epoch = 0;
    double best = -1;
    for (const auto& e : epochs)
      if (e.value("val_macro_f1", 0.0) > best) {
        best = e.value("val_macro_f1", 0.0);
        best_epoch = e.value("epoch", std::int64_t{0});
      }
    Json metrics = {{"model", name},
                    {"parameters", info.parameters},
                    {"model_file_bytes", fs::file_size(dir / "model.pt")},
                    {"training_seconds", training_seconds},
                    {"epochs", epochs},
                    {"best_epoch", best_epoch},
                    {"test", to_json(results.packets)},
                    {"test_per_flow", to_json(results.flows)},
                    {"inference", {{"throughput_samples_per_second", results.throughput}, {"latency_ms_batch_1", results.latency_ms}}},
                    {"split", {{"method", manifest.split_method}, {"leaks", manifest.split_leaks()}}},
                    {"granularity", to_string(manifest.spec.granularity)}};
    write_file_atomically(dir / "metrics.json", metrics.dump(2));
    log.info(fmt::format("model {} on the test split: macro F1 {:.4f}, weighted F1 {:.4f}, accuracy {:.4f}; per flow macro F1 "
                         "{:.4f}; {:.0f} samples/s, {:.2f} ms at batch 1{}", name, results.packets.macro_f1,
                         results.packets.weighted_f1, results.packets.accuracy, results.flows.macro_f1,
                         results.throughput, results.latency_ms,
                         manifest.split_leaks() ? " (PACKET SPLIT: flows leak across splits)" : ""));
    all[name] = metrics;
  }
  return all;
}

}  // namespace trafficid::host
