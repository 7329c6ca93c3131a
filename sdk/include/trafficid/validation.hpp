// An epoch's validation numbers for a model that trains itself (not a TorchModel, whose trainer
// measures them): every row of the split through the model's predict_proba, the mean
// cross-entropy, accuracy and macro F1, into the EpochMetrics its observer gets.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "trafficid/metrics.hpp"
#include "trafficid/model.hpp"

namespace trafficid {

inline void measure_validation(Model& model, SampleBatches& validation, const std::vector<std::string>& class_names,
                               EpochMetrics& m, std::size_t batch_rows = 1024) {
  const std::size_t k = class_names.size();
  std::vector<std::int64_t> truth, predicted;
  double loss = 0;
  FeatureBatch batch;
  validation.rewind(false);
  while (validation.next(batch_rows, batch)) {
    const std::vector<float> p = model.predict_proba(batch);
    for (std::size_t r = 0; r < batch.rows; ++r) {
      const float* row = p.data() + r * k;
      predicted.push_back(std::max_element(row, row + k) - row);
      truth.push_back(batch.labels[r]);
      if (batch.labels[r] >= 0) loss -= std::log(std::max(1e-12f, row[batch.labels[r]]));
    }
  }
  const EvaluationMetrics e = evaluate(truth, predicted, class_names);
  m.val_loss = truth.empty() ? 0.0 : loss / static_cast<double>(truth.size());
  m.val_accuracy = e.accuracy;
  m.val_macro_f1 = e.macro_f1;
  m.extra["val_weighted_f1"] = e.weighted_f1;
}

}  // namespace trafficid
