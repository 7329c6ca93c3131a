// Validation numbers for a model that trains itself (not a TorchModel, whose trainer measures
// them). score_probabilities scores rows of class probabilities against their labels (the mean
// cross-entropy, the argmax's accuracy and F1s); measure_validation runs every row of a split
// through the model's predict_proba and puts the score into the EpochMetrics its observer gets.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "trafficid/metrics.hpp"
#include "trafficid/model.hpp"

namespace trafficid {

struct ProbabilityScore {
  double loss = 0;  // mean cross-entropy over the rows that have a label (>= 0)
  EvaluationMetrics metrics;
};

// `probabilities`: labels.size() rows of class_names.size() values, row by row.
inline ProbabilityScore score_probabilities(const std::vector<float>& probabilities,
                                            const std::vector<std::int64_t>& labels,
                                            const std::vector<std::string>& class_names) {
  const std::size_t k = class_names.size();
  std::vector<std::int64_t> predicted(labels.size());
  double loss = 0;
  std::size_t labelled = 0;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    const float* row = probabilities.data() + r * k;
    predicted[r] = std::max_element(row, row + k) - row;
    if (labels[r] < 0) continue;
    loss -= std::log(std::max(1e-12f, row[labels[r]]));
    ++labelled;
  }
  ProbabilityScore score;
  score.loss = labelled ? loss / static_cast<double>(labelled) : 0.0;
  score.metrics = evaluate(labels, predicted, class_names);
  return score;
}

// The score as an epoch's validation numbers.
inline void set_validation(EpochMetrics& m, const ProbabilityScore& score) {
  m.val_loss = score.loss;
  m.val_accuracy = score.metrics.accuracy;
  m.val_macro_f1 = score.metrics.macro_f1;
  m.extra["val_weighted_f1"] = score.metrics.weighted_f1;
}

inline void measure_validation(Model& model, SampleBatches& validation, const std::vector<std::string>& class_names,
                               EpochMetrics& m, std::size_t batch_rows = 1024) {
  std::vector<float> probabilities;
  std::vector<std::int64_t> labels;
  FeatureBatch batch;
  validation.rewind(false);
  while (validation.next(batch_rows, batch)) {
    const std::vector<float> p = model.predict_proba(batch);
    probabilities.insert(probabilities.end(), p.begin(), p.end());
    labels.insert(labels.end(), batch.labels.begin(), batch.labels.begin() + static_cast<std::ptrdiff_t>(batch.rows));
  }
  set_validation(m, score_probabilities(probabilities, labels, class_names));
}

}  // namespace trafficid
