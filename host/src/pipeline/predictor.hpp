// Prediction with a trained model: the captures (or a live interface) through the labeler (for
// flows) and the extractor (for samples) its dataset was made with, the model's probabilities per
// sample, and each flow decided by the model's rule when its input ends. What to do with each
// decision is the sink's: `trafficid predict` prints rows, `trafficid serve` answers a page.
#pragma once
#include <cstdint>
#include <string>

#include "pipeline/pipeline.hpp"
#include "train/trained_model.hpp"
#include "trafficid/flow.hpp"

namespace trafficid::host {

struct SamplePrediction {
  std::string file;
  std::uint64_t packet = 0;  // packet samples: index in its capture
  std::uint64_t flow = 0;
  std::size_t predicted = 0;
  float confidence = 0;
};

struct FlowPrediction {
  std::string file;
  const FlowRecord* flow = nullptr;  // 5-tuple, counters, the labeler's label
  std::size_t predicted = 0;
  double confidence = 0;  // the mean probability the flow's samples gave its class
  std::uint64_t samples = 0;
  bool abstains = false;  // below the model's abstention threshold
};

// A flow's decision as a row: file, 5-tuple, packets, bytes, ndpi_label, samples, class,
// confidence, abstains (`trafficid predict --format json`, the web application's Predict).
Json to_json(const FlowPrediction& p, const std::vector<std::string>& class_names);

class PredictionSink {
 public:
  virtual ~PredictionSink() = default;
  virtual bool per_packet() const { return false; }  // samples, not flows
  virtual void sample(const SamplePrediction&) {}
  virtual void flow(const FlowPrediction&) {}
};

// Runs `model` over `source`; `interface` names a live source's rows.
PipelineResult predict_captures(TrainedModel& model, SourceSpec source, const PluginRegistry& registry, HostLog& log,
                                PredictionSink& sink, const std::string& interface = "");

}  // namespace trafficid::host
