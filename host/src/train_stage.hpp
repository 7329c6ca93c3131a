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
// With `evaluation` (the evaluation dataset of [evaluate]), every model is also scored on its
// captures: the "unseen" numbers, the headline. With folds, each model is trained once per fold.
Json run_train_stage(const Experiment& experiment, const PluginRegistry& registry, HostLog& log,
                     const std::filesystem::path& dataset, const std::filesystem::path& run_dir,
                     const TrialContext* trial = nullptr, const std::filesystem::path* evaluation = nullptr);

}  // namespace trafficid::host
