#include "train/scoring.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <tuple>
#include <unordered_map>

#include "runtime/plugin_registry.hpp"
#include "trafficid/metrics.hpp"

namespace trafficid::host {

namespace {

using Clock = std::chrono::steady_clock;

constexpr double probability_floor = 1e-7;  // log(0) would let one sample veto a class

std::int64_t argmax(const float* p, std::size_t k) { return std::max_element(p, p + k) - p; }

// The sample of a flow's first `packets` packets: the rows after them zeroed (sequence samples).
void keep_first_packets(FeatureBatch& batch, std::int64_t packets) {
  const std::size_t sample = batch.row_elements() * dtype_size(batch.dtype);
  const std::size_t per_packet = sample / static_cast<std::size_t>(batch.shape.at(0));
  const std::size_t keep = per_packet * static_cast<std::size_t>(packets);
  for (std::size_t r = 0; r < batch.rows; ++r) std::memset(batch.data.data() + r * sample + keep, 0, sample - keep);
}

}  // namespace

void SplitPredictions::average_with(const SplitPredictions& other) {
  if (other.rows() != rows() || other.class_names != class_names)
    throw Error("internal: averaging the predictions of fold models over different rows");
  const double n = models;
  auto mix = [&](std::vector<float>& mine, const std::vector<float>& theirs) {
    for (std::size_t i = 0; i < mine.size(); ++i) mine[i] = static_cast<float>((mine[i] * n + theirs[i]) / (n + 1));
  };
  mix(probabilities, other.probabilities);
  for (std::size_t e = 0; e < early_probabilities.size() && e < other.early_probabilities.size(); ++e)
    mix(early_probabilities[e], other.early_probabilities[e]);
  seconds += other.seconds;
  ++models;
}

void SplitPredictions::append(const SplitPredictions& other) {
  if (class_names.empty()) {
    *this = other;
    return;
  }
  flows.insert(flows.end(), other.flows.begin(), other.flows.end());
  labels.insert(labels.end(), other.labels.begin(), other.labels.end());
  probabilities.insert(probabilities.end(), other.probabilities.begin(), other.probabilities.end());
  for (std::size_t e = 0; e < early_probabilities.size() && e < other.early_probabilities.size(); ++e)
    early_probabilities[e].insert(early_probabilities[e].end(), other.early_probabilities[e].begin(),
                                  other.early_probabilities[e].end());
  seconds += other.seconds;
}

SplitPredictions predict_split(const PluginHandle<Model>& model, DatasetSplit& split,
                               const std::vector<std::int64_t>& early) {
  return predict_split([&](const FeatureBatch& b) { return model([&](Model& m) { return m.predict_proba(b); }); },
                       model.info().label(), split, early);
}

SplitPredictions predict_split(const PredictFunction& predict, const std::string& what, DatasetSplit& split,
                               const std::vector<std::int64_t>& early) {
  SplitPredictions out;
  const auto& m = split.manifest();
  out.class_names = m.class_names;
  const std::size_t k = m.class_names.size();
  if (m.spec.sequence)
    for (auto packets : early)
      if (packets < m.spec.shape.at(0)) out.early_packets.push_back(packets);
  out.early_probabilities.resize(out.early_packets.size());
  FeatureBatch batch, cut;
  split.rewind(false);
  while (split.next(512, batch)) {
    const auto started = Clock::now();
    auto p = predict(batch);
    out.seconds += std::chrono::duration<double>(Clock::now() - started).count();
    if (p.size() != batch.rows * k)
      throw Error(fmt::format("{} returned {} probabilities for {} rows of {} classes", what, p.size(), batch.rows, k));
    out.probabilities.insert(out.probabilities.end(), p.begin(), p.end());
    out.flows.insert(out.flows.end(), batch.flow_ids.begin(), batch.flow_ids.end());
    out.labels.insert(out.labels.end(), batch.labels.begin(), batch.labels.end());
    for (std::size_t e = 0; e < out.early_packets.size(); ++e) {
      cut = batch;
      keep_first_packets(cut, out.early_packets[e]);
      auto q = predict(cut);
      out.early_probabilities[e].insert(out.early_probabilities[e].end(), q.begin(), q.end());
    }
  }
  return out;
}

void FlowVotes::add(const float* p, std::size_t k) {
  if (log_sum_.empty()) {
    log_sum_.assign(k, 0.0);
    sum_.assign(k, 0.0);
    votes_.assign(k, 0);
  }
  for (std::size_t c = 0; c < k; ++c) {
    log_sum_[c] += std::log(std::max<double>(p[c], probability_floor));
    sum_[c] += p[c];
  }
  ++votes_[static_cast<std::size_t>(argmax(p, k))];
  ++samples_;
}

std::int64_t FlowVotes::decide_class(const std::string& rule) const {
  if (rule == "vote") {
    // The most votes; a tie goes to the class with the larger summed probability.
    std::size_t best = 0;
    for (std::size_t c = 1; c < votes_.size(); ++c)
      if (votes_[c] > votes_[best] || (votes_[c] == votes_[best] && sum_[c] > sum_[best])) best = c;
    return static_cast<std::int64_t>(best);
  }
  return std::max_element(log_sum_.begin(), log_sum_.end()) - log_sum_.begin();
}

std::pair<std::int64_t, double> FlowVotes::decide(const std::string& rule) const {
  const std::int64_t cls = decide_class(rule);
  return {cls, samples_ ? sum_[static_cast<std::size_t>(cls)] / static_cast<double>(samples_) : 0.0};
}

namespace {

struct FlowSums {
  std::int64_t truth = -1;
  std::size_t first_row = 0;
  FlowVotes votes;
};

// Flow sums in order of first appearance.
std::vector<FlowSums> sum_flows(const SplitPredictions& p) {
  const std::size_t k = p.class_names.size();
  std::unordered_map<std::uint64_t, std::size_t> index;
  std::vector<FlowSums> flows;
  for (std::size_t r = 0; r < p.rows(); ++r) {
    auto [it, fresh] = index.try_emplace(p.flows[r], flows.size());
    if (fresh) {
      flows.emplace_back();
      flows.back().truth = p.labels[r];
      flows.back().first_row = r;
    }
    flows[it->second].votes.add(p.probabilities.data() + r * k, k);
  }
  return flows;
}

FlowDecision decision_of(std::uint64_t flow, const FlowSums& f, const std::string& rule) {
  FlowDecision d;
  d.flow = flow;
  d.truth = f.truth;
  std::tie(d.predicted, d.confidence) = f.votes.decide(rule);
  d.samples = f.votes.samples();
  return d;
}

// Per-flow metrics of decisions on flows with a class, with the flows without samples undecided.
EvaluationMetrics flow_metrics(const std::vector<std::int64_t>& truth, const std::vector<std::int64_t>& predicted,
                               const SplitPredictions& p, const ScoringOptions& options) {
  std::vector<std::int64_t> t, q;
  for (std::size_t i = 0; i < truth.size(); ++i)
    if (truth[i] >= 0) {
      t.push_back(truth[i]);
      q.push_back(predicted[i]);
    }
  for (std::size_t c = 0; c < options.flows_without_samples.size() && c < p.class_names.size(); ++c)
    for (std::uint64_t n = 0; n < options.flows_without_samples[c]; ++n) {
      t.push_back(static_cast<std::int64_t>(c));
      q.push_back(abstain);
    }
  return evaluate(t, q, p.class_names);
}

// A flow's true class and the classes M models gave it.
template <std::size_t M>
struct Decided {
  std::int64_t truth;
  std::array<std::int64_t, M> predicted;
};
template <std::size_t M>
using Units = std::vector<std::vector<Decided<M>>>;  // the flows of each capture
constexpr int resamples = 1000;

// A cluster bootstrap: `resamples` draws of as many units as there are, with replacement, from a
// fixed seed (the same units, the same draws); `on_draw(truth, predicted)` gets each draw's flows,
// predicted[m] the classes of model m.
template <std::size_t M, class OnDraw>
void resample_units(const Units<M>& units, std::uint64_t seed, OnDraw on_draw) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> draw(0, units.size() - 1);
  std::vector<std::int64_t> truth;
  std::array<std::vector<std::int64_t>, M> predicted;
  for (int b = 0; b < resamples; ++b) {
    truth.clear();
    for (auto& q : predicted) q.clear();
    for (std::size_t u = 0; u < units.size(); ++u)
      for (const Decided<M>& f : units[draw(rng)]) {
        truth.push_back(f.truth);
        for (std::size_t m = 0; m < M; ++m) predicted[m].push_back(f.predicted[m]);
      }
    on_draw(truth, predicted);
  }
}

// The 95% interval of the per-flow macro F1, by resampling captures (a cluster bootstrap): flows
// of one capture share its network, hosts and session, so the capture, not the flow, is the unit
// drawn. A flow without samples (its capture not known here) is a unit of its own. Null with fewer
// than two units. The seed is fixed: the same predictions give the same interval.
Json macro_f1_interval(const std::vector<std::int64_t>& truth, const std::vector<std::int64_t>& predicted,
                       const std::vector<std::uint64_t>& flow_ids, const SplitPredictions& p,
                       const ScoringOptions& options) {
  std::map<std::uint32_t, std::vector<Decided<1>>> by_capture;
  for (std::size_t i = 0; i < truth.size(); ++i)
    if (truth[i] >= 0) by_capture[input_of_flow(flow_ids[i])].push_back({truth[i], {predicted[i]}});
  Units<1> units;
  for (auto& [capture, flows] : by_capture) units.push_back(std::move(flows));
  for (std::size_t c = 0; c < options.flows_without_samples.size(); ++c)
    for (std::uint64_t n = 0; n < options.flows_without_samples[c]; ++n)
      units.push_back({{static_cast<std::int64_t>(c), {abstain}}});
  if (units.size() < 2) return nullptr;
  std::vector<double> values;
  resample_units(units, 0x7261666669636964ull,
                 [&](const auto& t, const auto& q) { values.push_back(evaluate(t, q[0], p.class_names).macro_f1); });
  std::sort(values.begin(), values.end());
  return {{"level", 0.95},
          {"low", values[static_cast<std::size_t>(std::floor(0.025 * (resamples - 1)))]},
          {"high", values[static_cast<std::size_t>(std::ceil(0.975 * (resamples - 1)))]},
          {"resamples", resamples},
          {"unit", "capture"},
          {"units", units.size()}};
}

}  // namespace

std::vector<FlowDecision> decide_flows(const SplitPredictions& p, const std::string& rule) {
  std::vector<FlowDecision> out;
  for (const auto& f : sum_flows(p)) out.push_back(decision_of(p.flows[f.first_row], f, rule));
  return out;
}

std::optional<double> abstain_threshold(const SplitPredictions& validation, const std::string& rule, double quantile) {
  std::vector<double> correct;
  for (const auto& d : decide_flows(validation, rule))
    if (d.truth >= 0 && d.predicted == d.truth) correct.push_back(d.confidence);
  if (correct.empty()) return std::nullopt;
  std::sort(correct.begin(), correct.end());
  const auto at = static_cast<std::size_t>(std::floor(quantile * static_cast<double>(correct.size() - 1)));
  return correct[std::min(at, correct.size() - 1)];
}

namespace {

// Per-flow scores of early decisions: after each flow's first k packets (flow models) or first
// k samples (packet models).
Json early_decisions(const SplitPredictions& p, const std::vector<FlowSums>& flows,
                     const std::vector<std::int64_t>& truth, const std::vector<std::int64_t>& predicted,
                     const ScoringOptions& options) {
  const std::size_t k = p.class_names.size();
  Json early = Json::array();
  if (!p.early_packets.empty()) {
    for (std::size_t e = 0; e < p.early_packets.size(); ++e) {
      // The flow's first sample (its start), cut to its first k packets.
      std::vector<std::int64_t> at_k;
      for (const auto& f : flows) at_k.push_back(argmax(p.early_probabilities[e].data() + f.first_row * k, k));
      auto m = flow_metrics(truth, at_k, p, options);
      early.push_back({{"packets", p.early_packets[e]}, {"macro_f1", m.macro_f1}, {"accuracy", m.accuracy}});
    }
  } else if (!options.early.empty()) {
    // Packet models: the decision after each flow's first k samples (all of them when it has fewer).
    std::unordered_map<std::uint64_t, std::size_t> index;
    std::vector<FlowVotes> running(flows.size());
    std::vector<std::vector<std::int64_t>> at_k(options.early.size(), predicted);
    for (std::size_t i = 0; i < flows.size(); ++i) index[p.flows[flows[i].first_row]] = i;
    for (std::size_t r = 0; r < p.rows(); ++r) {
      const std::size_t i = index.at(p.flows[r]);
      running[i].add(p.probabilities.data() + r * k, k);
      for (std::size_t e = 0; e < options.early.size(); ++e)
        if (static_cast<std::int64_t>(running[i].samples()) == options.early[e])
          at_k[e][i] = running[i].decide_class(options.flow_decision);
    }
    for (std::size_t e = 0; e < options.early.size(); ++e) {
      auto m = flow_metrics(truth, at_k[e], p, options);
      early.push_back({{"samples", options.early[e]}, {"macro_f1", m.macro_f1}, {"accuracy", m.accuracy}});
    }
  }
  return early;
}

// Unknown traffic: flows of no class, which a model can only get right by abstaining (null: none).
Json unknown_traffic(const SplitPredictions& p, const std::vector<std::int64_t>& truth,
                     const std::vector<std::int64_t>& predicted, const std::vector<FlowDecision>& decisions,
                     const ScoringOptions& options) {
  std::uint64_t unknown = 0, rejected = 0;
  std::map<std::string, std::uint64_t> forced;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    if (truth[i] >= 0) continue;
    ++unknown;
    if (options.abstain_threshold && decisions[i].confidence < *options.abstain_threshold) ++rejected;
    else ++forced[p.class_names[static_cast<std::size_t>(predicted[i])]];
  }
  if (!unknown) return nullptr;
  return {{"flows", unknown},
          {"abstained", rejected},
          {"rejection_rate", static_cast<double>(rejected) / static_cast<double>(unknown)},
          {"forced_into", forced}};
}

}  // namespace

Json score(const SplitPredictions& p, const ScoringOptions& options, std::vector<FlowDecision>* decisions_out) {
  const std::size_t k = p.class_names.size();
  Json out = Json::object();
  // Per sample: the rows with a class.
  {
    std::vector<std::int64_t> truth, predicted;
    for (std::size_t r = 0; r < p.rows(); ++r)
      if (p.labels[r] >= 0) {
        truth.push_back(p.labels[r]);
        predicted.push_back(argmax(p.probabilities.data() + r * k, k));
      }
    out["per_sample"] = to_json(evaluate(truth, predicted, p.class_names));
  }
  const auto flows = sum_flows(p);
  const std::string other_rule = options.flow_decision == "vote" ? "logprob" : "vote";
  std::vector<std::int64_t> truth, predicted, predicted_other;
  std::vector<std::uint64_t> flow_ids;
  std::vector<FlowDecision> decisions;
  for (const auto& f : flows) {
    flow_ids.push_back(p.flows[f.first_row]);
    decisions.push_back(decision_of(p.flows[f.first_row], f, options.flow_decision));
    truth.push_back(f.truth);
    predicted.push_back(decisions.back().predicted);
    predicted_other.push_back(f.votes.decide_class(other_rule));
  }
  std::uint64_t classed = 0, without = 0;
  for (auto t : truth) classed += t >= 0;
  for (auto n : options.flows_without_samples) without += n;
  out["flow_decision"] = options.flow_decision;
  out["flows"] = classed + without;
  out["flows_without_samples"] = without;
  out["per_flow"] = to_json(flow_metrics(truth, predicted, p, options));
  out["per_flow"]["interval"] = macro_f1_interval(truth, predicted, flow_ids, p, options);
  out["per_flow_" + other_rule] = to_json(flow_metrics(truth, predicted_other, p, options));

  out["early"] = early_decisions(p, flows, truth, predicted, options);

  // Abstaining below the validation-calibrated threshold.
  if (options.abstain_threshold) {
    std::vector<std::int64_t> held = predicted;
    for (std::size_t i = 0; i < held.size(); ++i)
      if (decisions[i].confidence < *options.abstain_threshold) held[i] = abstain;
    auto m = to_json(flow_metrics(truth, held, p, options));
    m["threshold"] = *options.abstain_threshold;
    out["abstaining"] = m;
  }
  if (Json unknown = unknown_traffic(p, truth, predicted, decisions, options); !unknown.is_null())
    out["unknown"] = unknown;
  if (decisions_out) *decisions_out = std::move(decisions);
  return out;
}

void write_flow_decisions(const std::filesystem::path& file, const std::vector<FlowDecision>& decisions,
                          const DatasetManifest& m, std::optional<double> threshold) {
  std::ofstream out(file);
  out << "flow,file,true,predicted,confidence,samples,abstains\n";
  for (const auto& d : decisions) {
    const auto input = static_cast<std::size_t>(input_of_flow(d.flow));
    out << d.flow << ",\"" << (input < m.inputs.size() ? m.inputs[input].path : std::string()) << "\","
        << (d.truth >= 0 ? m.class_names[static_cast<std::size_t>(d.truth)] : std::string()) << ','
        << m.class_names[static_cast<std::size_t>(d.predicted)] << ',' << fmt::format("{:.4f}", d.confidence) << ','
        << d.samples << ',' << (threshold && d.confidence < *threshold ? 1 : 0) << '\n';
  }
  if (!out) throw Error(fmt::format("cannot write {}", file.string()));
}

std::string describe_interval(const Json& per_flow) {
  if (!per_flow.is_object() || !per_flow.contains("interval") || !per_flow["interval"].is_object()) return "";
  const Json& i = per_flow["interval"];
  const auto units = i.value("units", std::uint64_t{0});
  return fmt::format(" ({:.0f}% interval {:.2f}-{:.2f}, bootstrap over {} capture{})", 100 * i.value("level", 0.95),
                     i.value("low", 0.0), i.value("high", 0.0), units, units == 1 ? "" : "s");
}

Json decisions_json(const std::vector<FlowDecision>& decisions) {
  Json flow = Json::array(), truth = Json::array(), predicted = Json::array();
  for (const auto& d : decisions) {
    flow.push_back(d.flow);
    truth.push_back(d.truth);
    predicted.push_back(d.predicted);
  }
  return {{"flow", flow}, {"truth", truth}, {"predicted", predicted}};
}

namespace {

// In what share of 1,000 resamples of the validation captures model `a` has a higher per-flow
// macro F1 than model `b` on the flows both decided: a paired cluster bootstrap over their
// validation decisions (metrics.json's validation_per_flow.decisions). Both models are drawn on
// the same captures, so what the captures share cancels out. None without decisions.
std::optional<double> share_better(const Json& a, const Json& b) {
  const Json& da = a["validation_per_flow"].value("decisions", Json());
  const Json& db = b["validation_per_flow"].value("decisions", Json());
  if (!da.is_object() || !db.is_object()) return std::nullopt;
  std::map<std::uint64_t, std::int64_t> of_b;
  for (std::size_t i = 0; i < db["flow"].size(); ++i) of_b[db["flow"][i].get<std::uint64_t>()] = db["predicted"][i];
  std::map<std::uint32_t, std::vector<Decided<2>>> by_capture;
  for (std::size_t i = 0; i < da["flow"].size(); ++i) {
    const auto flow = da["flow"][i].get<std::uint64_t>();
    const auto truth = da["truth"][i].get<std::int64_t>();
    if (auto it = of_b.find(flow); truth >= 0 && it != of_b.end())
      by_capture[input_of_flow(flow)].push_back({truth, {da["predicted"][i].get<std::int64_t>(), it->second}});
  }
  std::vector<std::string> classes;
  for (const auto& c : a["validation_per_flow"].value("per_class", Json::array()))
    classes.push_back(c.value("class", ""));
  const auto k = static_cast<std::int64_t>(classes.size());
  for (const auto& [capture, flows] : by_capture)
    for (const auto& f : flows)
      if (f.truth >= k || std::any_of(f.predicted.begin(), f.predicted.end(), [k](auto c) { return c < 0 || c >= k; }))
        return std::nullopt;  // not this run's classes
  if (by_capture.empty()) return std::nullopt;
  Units<2> units;
  for (auto& [capture, flows] : by_capture) units.push_back(std::move(flows));
  int better = 0;
  resample_units(units, 0x7061697265640a00ull, [&](const auto& t, const auto& q) {
    better += evaluate(t, q[0], classes).macro_f1 > evaluate(t, q[1], classes).macro_f1;
  });
  return static_cast<double>(better) / resamples;
}

}  // namespace

std::string best_model_name(const Json& models, std::string* why) {
  auto scored = [](const Json& m) { return m.is_object() && m.contains("validation_per_flow"); };
  auto validation = [](const Json& m) { return m["validation_per_flow"].value("macro_f1", 0.0); };
  // The best of the models that are no blend, then a blend that validation cannot tell from it.
  std::string best;
  double best_value = -1;
  for (const auto& [name, m] : models.items())
    if (scored(m) && !m.contains("blend") && validation(m) > best_value) {
      best_value = validation(m);
      best = name;
    }
  const Json interval = best.empty() ? Json() : models[best]["validation_per_flow"].value("interval", Json::object());
  const double low = interval.is_object() ? interval.value("low", best_value) : best_value;
  const double high = interval.is_object() ? interval.value("high", best_value) : best_value;
  std::optional<double> beaten;  // the share of resamples in which the best single model beat a blend
  for (const auto& [name, m] : models.items()) {
    if (!scored(m) || !m.contains("blend")) continue;
    const auto share = best.empty() ? std::nullopt : share_better(models[best], m);
    if (share ? *share >= 0.975 : validation(m) < low) {
      if (share) beaten = *share;
      continue;
    }
    if (why)
      *why = best.empty() ? fmt::format("per-flow macro F1 on the validation split {:.4f}", validation(m))
             : share      ? fmt::format(
                                "a blend ({:.4f} per-flow macro F1 on the validation split) that the best "
                                     "single model ({} {:.4f}) beats in {:.1f}% of 1000 resamples of the "
                                     "validation captures, short of 97.5%",
                                validation(m), best, best_value, 100 * *share)
                     : fmt::format(
                           "a blend whose per-flow macro F1 on the validation split ({:.4f}) lies within "
                           "the 95% interval of the best single model's ({} {:.4f}, interval {:.2f}-{:.2f})",
                           validation(m), best, best_value, low, high);
    return name;
  }
  if (why && !best.empty())
    *why = beaten ? fmt::format(
                        "the best per-flow macro F1 on the validation split ({:.4f}), above the blend's in "
                        "{:.1f}% of 1000 resamples of the validation captures",
                        best_value, 100 * *beaten)
                  : fmt::format("the best per-flow macro F1 on the validation split ({:.4f})", best_value);
  return best;
}

}  // namespace trafficid::host
