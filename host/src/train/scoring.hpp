// Scoring trained models: what a model says about every row of a split, and the numbers made of
// it, per sample and per flow. A flow's class comes from all its samples (summed log-probabilities
// by default, or their majority vote); the early-decision curve says how good the decision is after
// the flow's first k samples (packet models) or first k packets (flow models over packet
// sequences); a model abstains on a flow whose confidence is below a threshold calibrated on the
// validation split; flows that gave no sample at all (a representation that drops them) count as
// undecided; flows of no class (an evaluation's unknown traffic) measure rejection.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/plugin_registry.hpp"
#include "trafficid/dataset_reader.hpp"
#include "trafficid/model.hpp"

namespace trafficid::host {

struct PluginInfo;

// A model's probabilities for each row of a split, in the split's order.
struct SplitPredictions {
  std::vector<std::string> class_names;
  std::vector<std::uint64_t> flows;  // per row
  std::vector<std::int64_t> labels;  // per row; -1: a flow of no class (evaluations' unknown traffic)
  std::vector<float> probabilities;  // rows x classes
  // Sequence samples (flow models over packet sequences): the probabilities after each flow's
  // first early_packets[i] packets, rows x classes each.
  std::vector<std::int64_t> early_packets;
  std::vector<std::vector<float>> early_probabilities;
  double seconds = 0;  // spent in predict_proba (batches of 512)
  int models = 1;      // fold models whose probabilities were averaged

  std::size_t rows() const { return flows.size(); }
  // The same rows as another fold model saw them: probabilities averaged over the models.
  void average_with(const SplitPredictions& other);
  // Other rows (the test files of another fold): the out-of-fold predictions of every row.
  void append(const SplitPredictions& other);
};

// A model's probabilities for a batch, row-major (rows x classes).
using PredictFunction = std::function<std::vector<float>(const FeatureBatch& batch)>;

// Runs `predict` (a model, `what` in messages) over every row of `split` in order. `early`: for
// sequence samples, the packet counts to decide after (those below the sequence length).
SplitPredictions predict_split(const PredictFunction& predict, const std::string& what, DatasetSplit& split,
                               const std::vector<std::int64_t>& early);
SplitPredictions predict_split(const PluginHandle<Model>& model, DatasetSplit& split,
                               const std::vector<std::int64_t>& early);

struct ScoringOptions {
  std::string flow_decision = "logprob";  // or "vote"
  std::vector<std::int64_t> early;        // packet models: samples; sequence models: packets
  std::optional<double> abstain_threshold;
  std::vector<std::uint64_t> flows_without_samples;  // per class: counted as undecided flows
};

// One flow's decision.
struct FlowDecision {
  std::uint64_t flow = 0;
  std::int64_t truth = -1;
  std::int64_t predicted = 0;  // the decision rule's class
  double confidence = 0;       // the mean probability its samples gave that class
  std::uint64_t samples = 0;
};

std::vector<FlowDecision> decide_flows(const SplitPredictions& p, const std::string& rule);

// One flow's samples as they come (`trafficid predict`): the same decision as scoring's.
class FlowVotes {
 public:
  void add(const float* probabilities, std::size_t classes);
  std::uint64_t samples() const { return samples_; }
  // The class the rule decides ("logprob": the largest summed log-probability; "vote": the most
  // votes, a tie to the larger summed probability).
  std::int64_t decide_class(const std::string& rule) const;
  // The decided class and its confidence (the mean probability the samples gave it).
  std::pair<std::int64_t, double> decide(const std::string& rule) const;

 private:
  std::vector<double> log_sum_, sum_;
  std::vector<std::uint32_t> votes_;
  std::uint64_t samples_ = 0;
};

// The abstention threshold: the `quantile` of the confidences of the correct decisions on the
// validation split (so about that share of the flows a model gets right there is given up).
std::optional<double> abstain_threshold(const SplitPredictions& validation, const std::string& rule, double quantile);

// FILE (flows.csv, unseen_flows.csv): every flow's decision, its capture (from the dataset's
// inputs), true class (empty for unknown traffic), confidence, samples, whether it is abstained on.
void write_flow_decisions(const std::filesystem::path& file, const std::vector<FlowDecision>& decisions,
                          const DatasetManifest& manifest, std::optional<double> threshold);

// " (95% interval 0.41-0.79, bootstrap over 25 captures)" from a per-flow score's "interval";
// empty when it has none.
std::string describe_interval(const Json& per_flow);

// The model a run stands by, of {name: metrics.json}: the best per-flow macro F1 on the validation
// split (never the test split nor unseen captures); empty when none has one. A blend ([blend])
// is taken unless that model beats it beyond validation's noise: in at least 97.5% of 1,000
// resamples of the validation captures, both models scored on the same draws (their
// validation_per_flow.decisions); for metrics without decisions, unless the blend's validation
// score lies below the 95% interval of the best's. Validation inside the training captures
// cannot tell such models apart, and a blend of models of different families carries over to
// unseen captures better than its models (README, "Blends"). `why`, if given, says which rule chose.
std::string best_model_name(const Json& models, std::string* why = nullptr);

// A split's flow decisions as metrics.json keeps them: {"flow": [...], "truth": [...], "predicted": [...]}.
Json decisions_json(const std::vector<FlowDecision>& decisions);

// {"per_sample", "per_flow", "per_flow_vote" or "per_flow_logprob" (the other rule), "early",
//  "abstaining" (with its threshold), "flows": count, "flows_without_samples", "unknown" (rejection)}.
Json score(const SplitPredictions& p, const ScoringOptions& options, std::vector<FlowDecision>* decisions = nullptr);

}  // namespace trafficid::host
