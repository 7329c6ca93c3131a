#include "serve/compare_api.hpp"

#include <fmt/format.h>
#include <fstream>
#include <unistd.h>

#include "report/report.hpp"
#include "serve/workspace_files.hpp"
#include "trafficid/error.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

double number_at(const Json& j, const char* key, const char* field) {
  return j.contains(key) && j[key].is_object() ? j[key].value(field, 0.0) : 0.0;
}

// A CSV field: quoted when it holds a comma, a quote or a line break.
std::string csv_field(const Json& v) {
  std::string text = v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump();
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
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
  std::string out;
  for (const char* c : columns) out += std::string(out.empty() ? "" : ",") + c;
  out += '\n';
  for (const auto& row : rows) {
    std::string line;
    for (const char* c : columns) line += (line.empty() ? "" : ",") + csv_field(row.value(c, Json()));
    out += line + '\n';
  }
  return out;
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
