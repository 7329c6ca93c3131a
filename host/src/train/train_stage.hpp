// The train stage: every model of the experiment trained on the dataset's training split
// (early stopping on the validation split), then measured on the test split: per-class precision,
// recall, F1 and support, accuracy, macro and weighted F1, confusion matrix, per-flow results by
// majority vote, inference throughput and latency, parameter count, model size. Each model gets
// RUN_DIR/models/NAME/ (metrics.json, metrics.jsonl, predictions.csv, model.pt, checkpoints/); a
// model whose metrics.json exists is done, so `--resume` goes on with the others. Every model
// and epoch is an event on the run's bus.
#pragma once
#include <filesystem>
#include <vector>

#include "config/experiment.hpp"
#include "runtime/host_log.hpp"
#include "trafficid/model.hpp"

namespace trafficid::host {

// Watches a model's epochs after the stage has logged and recorded them, and may end training
// early: a tuning study's trial (tune/trial.hpp). With a judge, the stage trains fold 0 only
// and never touches the test split or the unseen captures.
class EpochJudge {
 public:
  virtual ~EpochJudge() = default;
  // `metrics_file`: the model's metrics.jsonl, holding this epoch and those before it (also
  // from before a resume). False ends training.
  virtual bool go_on(const EpochMetrics& epoch, const std::filesystem::path& metrics_file) = 0;
};

class WorkerPool;

struct TrainOptions {
  EpochJudge* judge = nullptr;
  const std::filesystem::path* evaluation = nullptr;  // the evaluation dataset of [evaluate]
  WorkerPool* workers = nullptr;                      // data-parallel training's other workers (train/workers.hpp)
};

// Returns the models' metrics ({"cnn": {...}, ...}); status "interrupted" when a stop was asked.
// With an evaluation dataset, every model is also scored on its captures: the "unseen" numbers,
// the headline. With folds, each model is trained once per fold. With a judge, each model's entry
// is what its training gave: {"status": "trained"|"diverged", "error"?, "training_seconds",
// "parameters", "metrics_file"}.
Json run_train_stage(const Experiment& experiment, const PluginRegistry& registry, HostLog& log,
                     const std::filesystem::path& dataset, const std::filesystem::path& run_dir,
                     const TrainOptions& options = {});

}  // namespace trafficid::host
