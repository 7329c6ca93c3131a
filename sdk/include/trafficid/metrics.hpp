// Metrics records: per-epoch progress (what tuners prune on) and final evaluation.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "trafficid/params.hpp"

namespace trafficid {

struct EpochMetrics {
  int epoch = 0;  // 1-based
  double train_loss = 0;
  double val_loss = 0;
  double val_accuracy = 0;
  double val_macro_f1 = 0;
  double seconds = 0;  // wall time of the epoch
  double samples_per_second = 0;
  std::map<std::string, double> extra;
};

struct ClassMetrics {
  std::string name;
  double precision = 0, recall = 0, f1 = 0;
  std::uint64_t support = 0;
  std::uint64_t abstained = 0;  // of the support: left undecided
};

struct EvaluationMetrics {
  double accuracy = 0;
  double macro_f1 = 0;
  double weighted_f1 = 0;
  std::uint64_t abstained = 0;  // rows left undecided: they count against recall, never for precision
  std::vector<ClassMetrics> per_class;
  std::vector<std::vector<std::uint64_t>> confusion;  // [true][predicted]
};

// A prediction that abstains (no class decided): it counts in the true class's support and
// against its recall, and in no class's precision.
inline constexpr std::int64_t abstain = -1;

// Computes everything above from true and predicted class indices (a prediction may be `abstain`).
TRAFFICID_SDK_API EvaluationMetrics evaluate(const std::vector<std::int64_t>& truth,
                                             const std::vector<std::int64_t>& predicted,
                                             const std::vector<std::string>& class_names);

TRAFFICID_SDK_API Json to_json(const EpochMetrics& metrics);
// The inverse of to_json: a line of metrics.jsonl, or an epoch a trainer kept in its checkpoint.
TRAFFICID_SDK_API EpochMetrics epoch_metrics_from_json(const Json& line);
// Why an epoch's numbers cannot be kept ("validation loss is nan", ...): a loss or score that is
// NaN or infinite means training diverged. Empty when every number is finite.
TRAFFICID_SDK_API std::string divergence(const EpochMetrics& metrics);
TRAFFICID_SDK_API Json to_json(const EvaluationMetrics& metrics);

// What a trainer tells whoever watches it (the run's log, a tuner): per epoch, and whether to stop.
class TRAFFICID_SDK_API TrainingObserver {
 public:
  virtual ~TrainingObserver();
  // Returns false to stop training early (a tuner pruning the trial, a user's SIGINT).
  virtual bool on_epoch(const EpochMetrics& metrics) = 0;
};

}  // namespace trafficid
