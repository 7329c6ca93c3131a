// Prediction with a trained model: the captures (or a live interface) through the labeler (for
// flows) and the extractor (for samples) its dataset was made with, the model's probabilities per
// sample, and each flow decided by the model's rule: in a file when the file ends (all its flows
// in the order of their first packets, as ndpiReader lists them), on a live interface as soon as
// the labeler ends the flow (TCP teardown, idle timeout, the end of the capture). What to do with
// each decision is the sink's: `trafficid predict` prints rows, `trafficid serve` answers a page.
#pragma once
#include <cstdint>
#include <optional>
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

struct PredictOptions {
  std::string interface;  // a live source: its name in the rows, and flows decided as they end
  // Live: seconds of silence after which a flow ends and is decided (the labeler's idle_timeout;
  // nDPI's default on a live source is 120 s).
  std::optional<double> idle_timeout;
};

// Runs `model` over `source`. Sinks are called from the labelling thread, one call at a time.
PipelineResult predict_captures(TrainedModel& model, SourceSpec source, const PluginRegistry& registry, HostLog& log,
                                PredictionSink& sink, const PredictOptions& options = {});

}  // namespace trafficid::host
