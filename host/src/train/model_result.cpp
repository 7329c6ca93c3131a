#include "train/model_result.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <fstream>

namespace trafficid::host {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double latency_ms(const PluginHandle<Model>& model, DatasetSplit& test) {
  std::vector<double> latencies;
  FeatureBatch batch;
  test.rewind(false);
  while (latencies.size() < 200 && test.next(1, batch)) {
    auto started = Clock::now();
    model([&](Model& m) { return m.predict_proba(batch); });
    latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
  }
  if (latencies.empty()) return 0;
  std::nth_element(latencies.begin(), latencies.begin() + static_cast<std::ptrdiff_t>(latencies.size() / 2),
                   latencies.end());
  return latencies[latencies.size() / 2];
}

void write_row_predictions(const fs::path& file, const SplitPredictions& p) {
  const std::size_t k = p.class_names.size();
  std::ofstream out(file);
  out << "row,flow,file,true,predicted,confidence\n";
  for (std::size_t r = 0; r < p.rows(); ++r) {
    const float* q = p.probabilities.data() + r * k;
    const auto best = std::max_element(q, q + k) - q;
    out << r << ',' << p.flows[r] << ',' << input_of_flow(p.flows[r]) << ','
        << (p.labels[r] >= 0 ? p.class_names[static_cast<std::size_t>(p.labels[r])] : std::string()) << ','
        << p.class_names[static_cast<std::size_t>(best)] << ',' << fmt::format("{:.4f}", q[best]) << '\n';
  }
}

std::vector<std::uint64_t> flows_without_samples(const DatasetManifest& m) {
  std::vector<std::uint64_t> out(m.class_names.size(), 0);
  if (m.evaluation.is_null() || !m.evaluation.contains("flows_without_samples")) return out;
  for (std::size_t c = 0; c < m.class_names.size(); ++c)
    out[c] = m.evaluation["flows_without_samples"].value(m.class_names[c], std::uint64_t{0});
  return out;
}

SplitPredictions rows_of(const SplitPredictions& p, std::size_t begin, std::size_t end) {
  const std::size_t k = p.class_names.size();
  SplitPredictions out;
  out.class_names = p.class_names;
  out.early_packets = p.early_packets;
  out.flows.assign(p.flows.begin() + begin, p.flows.begin() + end);
  out.labels.assign(p.labels.begin() + begin, p.labels.begin() + end);
  auto slice = [&](const std::vector<float>& v) {
    return std::vector<float>(v.begin() + begin * k, v.begin() + end * k);
  };
  out.probabilities = slice(p.probabilities);
  for (const auto& e : p.early_probabilities) out.early_probabilities.push_back(slice(e));
  return out;
}

void blend_into(ModelResult& blend, ModelResult&& model, const std::string& name, const Json& metrics) {
  // Each model weighs alike, whatever the number of members it averages itself.
  model.test.models = model.validation.models = 1;
  if (model.unseen) model.unseen->models = 1;
  if (blend.blend.is_null()) blend.blend = {{"models", Json::array()}, {"members", Json::array()}};
  if (blend.blend["models"].empty()) {
    blend.test = std::move(model.test);
    blend.validation = std::move(model.validation);
    blend.unseen = std::move(model.unseen);
    blend.test_ends = model.test_ends;
    blend.validation_ends = model.validation_ends;
  } else {
    blend.test.average_with(model.test);
    blend.validation.average_with(model.validation);
    if (blend.unseen && model.unseen) blend.unseen->average_with(*model.unseen);
  }
  blend.training_seconds += metrics.value("training_seconds", 0.0);
  blend.model_bytes += metrics.value("model_file_bytes", std::uint64_t{0});
  blend.latency += metrics["inference"].value("latency_ms_batch_1", 0.0);
  blend.info.parameters += metrics.value("parameters", std::uint64_t{0});
  Json record = {{"model", name},
                 {"validation_per_flow_macro_f1", metrics["validation_per_flow"].value("macro_f1", 0.0)},
                 {"test_per_flow_macro_f1", metrics["test_per_flow"].value("macro_f1", 0.0)}};
  if (metrics.contains("unseen"))
    record["unseen_per_flow_macro_f1"] = metrics["unseen"]["per_flow"].value("macro_f1", 0.0);
  blend.blend["models"].push_back(name);
  blend.blend["members"].push_back(std::move(record));
}

Json part_scores(const SplitPredictions& validated, const SplitPredictions& tested, const ScoringOptions& validation,
                 const ScoringOptions& test) {
  return {{"validation_per_flow_macro_f1", score(validated, validation)["per_flow"].value("macro_f1", 0.0)},
          {"test_per_flow_macro_f1", score(tested, test)["per_flow"].value("macro_f1", 0.0)},
          {"test_rows", tested.rows()}};
}

Json fold_records(const ModelResult& r, const ScoringOptions& validation, const ScoringOptions& test) {
  Json records = Json::array();
  for (std::size_t f = 0; f < r.validation_ends.size() && f < r.test_ends.size(); ++f) {
    const std::size_t vb = f ? r.validation_ends[f - 1] : 0, tb = f ? r.test_ends[f - 1] : 0;
    Json record = {{"fold", f}};
    record.update(part_scores(rows_of(r.validation, vb, r.validation_ends[f]), rows_of(r.test, tb, r.test_ends[f]),
                              validation, test));
    records.push_back(std::move(record));
  }
  return records;
}

Json fold_mean(const Json& records, const char* key) {
  std::vector<double> v;
  for (const auto& f : records) v.push_back(f.value(key, 0.0));
  if (v.empty()) return Json::object();
  const double n = static_cast<double>(v.size());
  double mean = 0, squares = 0;
  for (double x : v) mean += x / n;
  for (double x : v) squares += (x - mean) * (x - mean);
  const double error = v.size() > 1 ? std::sqrt(squares / (n - 1) / n) : 0.0;
  return {{"macro_f1", mean},
          {"interval",
           {{"low", std::max(0.0, mean - 1.96 * error)},
            {"high", std::min(1.0, mean + 1.96 * error)},
            {"level", 0.95},
            {"unit", "fold"},
            {"units", v.size()},
            {"method", "mean +- 1.96 standard errors over the folds"}}}};
}

std::pair<Json, std::string> headline_of(const Json& tested, const Json* unseen, int folds, double test_f1) {
  if (unseen) {
    const Json& u = *unseen;
    return {{{"what", "unseen captures, per-flow macro F1"},
             {"macro_f1", u["per_flow"]["macro_f1"]},
             {"interval", u["per_flow"]["interval"]}},
            fmt::format("UNSEEN captures per flow macro F1 {:.4f}{} ({} flows, {} without samples); test split {:.4f}",
                        u["per_flow"]["macro_f1"].get<double>(), describe_interval(u["per_flow"]),
                        u["flows"].get<std::uint64_t>(), u["flows_without_samples"].get<std::uint64_t>(), test_f1)};
  }
  Json headline = {{"what", folds ? "captures held out by fold, per-flow macro F1" : "test split, per-flow macro F1"},
                   {"macro_f1", tested["per_flow"]["macro_f1"]},
                   {"interval", tested["per_flow"]["interval"]}};
  if (folds)
    return {headline, fmt::format("{} folds by capture, per flow macro F1 {:.4f}{} (every capture tested by a model "
                                  "that never saw it)",
                                  folds, test_f1, describe_interval(tested["per_flow"]))};
  return {headline,
          fmt::format("test split per flow macro F1 {:.4f}{}", test_f1, describe_interval(tested["per_flow"]))};
}

}  // namespace trafficid::host
