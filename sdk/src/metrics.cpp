#include "trafficid/metrics.hpp"

#include <cmath>
#include <fmt/format.h>

#include "trafficid/error.hpp"

namespace trafficid {

EvaluationMetrics evaluate(const std::vector<std::int64_t>& truth, const std::vector<std::int64_t>& predicted,
                           const std::vector<std::string>& class_names) {
  if (truth.size() != predicted.size())
    throw Error(fmt::format("evaluate: {} true labels but {} predictions", truth.size(), predicted.size()));
  const std::size_t k = class_names.size();
  EvaluationMetrics m;
  m.confusion.assign(k, std::vector<std::uint64_t>(k, 0));
  std::uint64_t correct = 0;
  std::vector<std::uint64_t> abstained(k, 0);
  for (std::size_t i = 0; i < truth.size(); ++i) {
    auto t = truth[i], p = predicted[i];
    if (t < 0 || p < abstain || static_cast<std::size_t>(t) >= k || (p >= 0 && static_cast<std::size_t>(p) >= k))
      throw Error(
          fmt::format("evaluate: label out of range at row {} (true {}, predicted {}, {} classes)", i, t, p, k));
    if (p == abstain) {
      ++abstained[static_cast<std::size_t>(t)];
      ++m.abstained;
      continue;
    }
    ++m.confusion[static_cast<std::size_t>(t)][static_cast<std::size_t>(p)];
    correct += t == p;
  }
  m.accuracy = truth.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(truth.size());
  double f1_sum = 0, weighted = 0;
  std::size_t present = 0;
  for (std::size_t c = 0; c < k; ++c) {
    std::uint64_t tp = m.confusion[c][c], support = abstained[c], predicted_c = 0;
    for (std::size_t j = 0; j < k; ++j) {
      support += m.confusion[c][j];
      predicted_c += m.confusion[j][c];
    }
    ClassMetrics cm{class_names[c]};
    cm.support = support;
    cm.abstained = abstained[c];
    cm.precision = predicted_c ? static_cast<double>(tp) / static_cast<double>(predicted_c) : 0.0;
    cm.recall = support ? static_cast<double>(tp) / static_cast<double>(support) : 0.0;
    cm.f1 = cm.precision + cm.recall > 0 ? 2 * cm.precision * cm.recall / (cm.precision + cm.recall) : 0.0;
    if (support > 0) {  // macro F1 over the classes present in the evaluated split
      f1_sum += cm.f1;
      ++present;
      weighted += cm.f1 * static_cast<double>(support);
    }
    m.per_class.push_back(cm);
  }
  m.macro_f1 = present ? f1_sum / static_cast<double>(present) : 0.0;
  m.weighted_f1 = truth.empty() ? 0.0 : weighted / static_cast<double>(truth.size());
  return m;
}

Json to_json(const EpochMetrics& e) {
  Json j{{"epoch", e.epoch},
         {"train_loss", e.train_loss},
         {"val_loss", e.val_loss},
         {"val_accuracy", e.val_accuracy},
         {"val_macro_f1", e.val_macro_f1},
         {"seconds", e.seconds},
         {"samples_per_second", e.samples_per_second}};
  for (const auto& [key, value] : e.extra) j[key] = value;
  return j;
}

EpochMetrics epoch_metrics_from_json(const Json& line) {
  EpochMetrics e;
  e.epoch = line.at("epoch").get<int>();
  e.train_loss = line.value("train_loss", 0.0);
  e.val_loss = line.value("val_loss", 0.0);
  e.val_accuracy = line.value("val_accuracy", 0.0);
  e.val_macro_f1 = line.value("val_macro_f1", 0.0);
  e.seconds = line.value("seconds", 0.0);
  e.samples_per_second = line.value("samples_per_second", 0.0);
  const Json named = to_json(EpochMetrics{});  // the keys above; the other numbers are extras
  for (const auto& [key, value] : line.items())
    if (value.is_number() && !named.contains(key)) e.extra[key] = value.get<double>();
  return e;
}

std::string divergence(const EpochMetrics& e) {
  std::vector<std::pair<std::string, double>> numbers = {{"training loss", e.train_loss},
                                                         {"validation loss", e.val_loss},
                                                         {"validation accuracy", e.val_accuracy},
                                                         {"validation macro F1", e.val_macro_f1}};
  for (const auto& [key, value] : e.extra) numbers.emplace_back(key, value);
  std::string why;
  for (const auto& [what, value] : numbers)
    if (!std::isfinite(value)) why += fmt::format("{}{} is {}", why.empty() ? "" : ", ", what, value);
  return why;
}

Json to_json(const EvaluationMetrics& m) {
  Json classes = Json::array();
  for (const auto& c : m.per_class)
    classes.push_back({{"class", c.name},
                       {"precision", c.precision},
                       {"recall", c.recall},
                       {"f1", c.f1},
                       {"support", c.support},
                       {"abstained", c.abstained}});
  return {{"accuracy", m.accuracy},   {"macro_f1", m.macro_f1}, {"weighted_f1", m.weighted_f1},
          {"abstained", m.abstained}, {"per_class", classes},   {"confusion", m.confusion}};
}

}  // namespace trafficid
