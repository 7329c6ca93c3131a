// The train stage: every model of the experiment trained on the dataset's training split
// (early stopping on the validation split), then measured on the test split: per-class precision,
// recall, F1 and support, accuracy, macro and weighted F1, confusion matrix, per-flow results by
// majority vote, inference throughput and latency, parameter count, model size. Each model gets
// RUN_DIR/models/NAME/ (metrics.json, metrics.jsonl, predictions.csv, model.pt, checkpoints/); a
// model whose metrics.json exists is done, so `--resume` goes on with the others.
#pragma once
#include <filesystem>
#include <vector>

#include "experiment.hpp"
#include "host_log.hpp"

namespace trafficid::host {

class Study;
// A tuning trial: each epoch's value goes to the study, which may stop the trial; the test split
// is never touched (RUN_DIR/trial.json holds the trial's best validation value).
struct TrialContext {
  Study* study = nullptr;
  std::uint64_t trial = 0;
  std::string metric;
  bool maximize = true;
};

// Returns the models' metrics ({"cnn": {...}, ...}); status "interrupted" when a stop was asked.
Json run_train_stage(const Experiment& experiment, const PluginRegistry& registry, HostLog& log,
                     const std::filesystem::path& dataset, const std::filesystem::path& run_dir,
                     const TrialContext* trial = nullptr);

// RUN_DIR/report.html: one self-contained page (inline SVG, no network) comparing the models.
void write_report(const std::filesystem::path& run_dir, const Json& run_record, const Json& models,
                  const std::string& resolved_config);

// One self-contained page comparing runs (`trafficid report RUN_DIR...`): every model's test
// numbers, what differs in the resolved configurations, validation curves, per-class F1.
void write_comparison_report(const std::filesystem::path& out, const std::vector<std::filesystem::path>& run_dirs,
                             const std::string& title);

}  // namespace trafficid::host
