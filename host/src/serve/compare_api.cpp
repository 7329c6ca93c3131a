#include "serve/compare_api.hpp"

#include <fmt/format.h>
#include <fstream>
#include <unistd.h>

#include "report/csv.hpp"
#include "report/report.hpp"
#include "serve/workspace_files.hpp"
#include "trafficid/error.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

double number_at(const Json& j, const char* key, const char* field) {
  return j.contains(key) && j[key].is_object() ? j[key].value(field, 0.0) : 0.0;
}

}  // namespace

Json comparison_rows(const std::vector<fs::path>& run_dirs, const std::vector<std::string>& ids) {
  Json rows = Json::array();
  for (std::size_t i = 0; i < run_dirs.size(); ++i) {
    const Json record = read_json_file(run_dirs[i] / "run.json").value_or(Json());
    const std::string best = record.is_object() ? record.value("best_model", "") : "";
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(run_dirs[i] / "models", ec)) {
      const Json m = read_json_file(entry.path() / "metrics.json").value_or(Json());
      if (!m.is_object()) continue;
      const Json headline = m.value("headline", Json::object());
      const Json interval = headline.value("interval", Json());
      const std::string model = entry.path().filename().string();
      rows.push_back({{"run", ids[i]},
                      {"model", model},
                      {"best", model == best},
                      {"headline_what", headline.value("what", "")},
                      {"headline_macro_f1", headline.value("macro_f1", 0.0)},
                      {"interval_low", interval.is_object() ? Json(interval.value("low", 0.0)) : Json(nullptr)},
                      {"interval_high", interval.is_object() ? Json(interval.value("high", 0.0)) : Json(nullptr)},
                      {"test_per_flow_macro_f1", number_at(m, "test_per_flow", "macro_f1")},
                      {"validation_per_flow_macro_f1", number_at(m, "validation_per_flow", "macro_f1")},
                      {"members", members_summary(m)},
                      {"blend", m.contains("blend") ? m["blend"].value("models", Json::array()) : Json(nullptr)},
                      {"parameters", m.value("parameters", 0)},
                      {"training_seconds", m.value("training_seconds", 0.0)}});
    }
  }
  return rows;
}

std::string comparison_csv(const Json& rows) {
  static const char* const columns[] = {"run",
                                        "model",
                                        "best",
                                        "headline_what",
                                        "headline_macro_f1",
                                        "interval_low",
                                        "interval_high",
                                        "test_per_flow_macro_f1",
                                        "validation_per_flow_macro_f1",
                                        "parameters",
                                        "training_seconds"};
  return csv_table(columns, rows);
}

std::string comparison_page(const std::vector<fs::path>& run_dirs) {
  const fs::path file = fs::temp_directory_path() / fmt::format("trafficid-compare-{}-{}.html", ::getpid(),
                                                                reinterpret_cast<std::uintptr_t>(&run_dirs));
  write_comparison_report(file, run_dirs, fmt::format("trafficid: {} runs compared", run_dirs.size()));
  std::ifstream in(file);
  std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::error_code ec;
  fs::remove(file, ec);
  if (html.empty()) throw Error("the comparison page could not be written");
  return html;
}

}  // namespace trafficid::host
