#include "report/html.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "config/schema_check.hpp"
#include "tune/study.hpp"
#include "trafficid/files.hpp"

#include "report/report.hpp"
#include "train/train_stage.hpp"

namespace trafficid::host::html {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// A line chart of several series against the epoch.
std::string line_chart(const std::string& title, const std::vector<Series>& series, bool unit_range,
                       const std::string& x_label, bool legend, bool lines) {
  const double w = 420, h = 256, left = 48, right = 12, top = 40, bottom = 36;
  double x_max = 1, y_min = unit_range ? 0 : 1e300, y_max = unit_range ? 1 : -1e300;
  for (const auto& s : series)
    for (auto [x, y] : s.points) {
      x_max = std::max(x_max, x);
      if (!unit_range) {
        y_min = std::min(y_min, y);
        y_max = std::max(y_max, y);
      }
    }
  if (!unit_range) {
    if (y_min > y_max) y_min = 0, y_max = 1;
    if (y_max - y_min < 1e-9) y_max = y_min + 1;
    y_min = std::min(0.0, y_min);
  }
  auto px = [&](double x) { return left + (x_max > 1 ? (x - 1) / (x_max - 1) : 0.5) * (w - left - right); };
  auto py = [&](double y) { return top + (1 - (y - y_min) / (y_max - y_min)) * (h - top - bottom); };
  std::string svg = fmt::format(
      R"(<svg class="chart" role="img" aria-label="{0}" width="{1}" height="{2}" viewBox="0 0 {1} {2}" xmlns="http://www.w3.org/2000/svg">)"
      R"(<text x="{3}" y="14" class="title">{0}</text>)",
      escape(title), w, h, left);
  for (int i = 0; i <= 4; ++i) {
    double y = y_min + (y_max - y_min) * i / 4.0;
    svg += fmt::format(
        R"(<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="grid"/><text x="{}" y="{:.1f}" class="tick" text-anchor="end">{:.3g}</text>)",
        left, w - right, py(y), py(y), left - 4, py(y) + 4, y);
  }
  const int ticks = static_cast<int>(std::min(x_max, 10.0));
  for (int i = 0; i < ticks; ++i) {
    double x = 1 + (x_max - 1) * (ticks > 1 ? i / static_cast<double>(ticks - 1) : 0);
    svg += fmt::format(R"(<text x="{:.1f}" y="{}" class="tick" text-anchor="middle">{:.0f}</text>)", px(x),
                       h - bottom + 14, x);
  }
  svg += fmt::format(R"(<text x="{:.1f}" y="{}" class="tick" text-anchor="middle">{}</text>)", (left + w - right) / 2,
                     h - 4, escape(x_label));
  double legend_x = left + 8;
  for (const auto& s : series) {
    std::string path;
    for (auto [x, y] : s.points) path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", px(x), py(y));
    if (lines && s.points.size() > 1)
      svg += fmt::format(R"(<path d="{}" fill="none" stroke="{}" stroke-width="2"/>)", path, s.color);
    for (auto [x, y] : s.points)
      svg += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}"/>)", px(x), py(y), s.color);
    if (!legend) continue;
    svg += fmt::format(
        R"(<rect x="{:.1f}" y="22" width="10" height="10" fill="{}"/><text x="{:.1f}" y="31" class="tick">{}</text>)",
        legend_x, s.color, legend_x + 14, escape(s.name));
    legend_x += 24 + 7.0 * static_cast<double>(s.name.size());
  }
  return svg + "</svg>";
}

// A confusion matrix, rows normalised to recall, with the counts written in the cells.
std::string confusion_chart(const Json& confusion, const std::vector<std::string>& names) {
  const std::size_t k = names.size();
  const double cell = k > 12 ? 26 : 34, label = 110, top = 110;
  const double size = label + cell * static_cast<double>(k) + 10;
  std::string svg = fmt::format(
      R"(<svg class="confusion" role="img" aria-label="confusion matrix" width="{0}" height="{1}" viewBox="0 0 {0} {1}" xmlns="http://www.w3.org/2000/svg">)",
      size, top + cell * static_cast<double>(k) + 20);
  for (std::size_t c = 0; c < k; ++c) {
    svg += fmt::format(R"(<text x="{}" y="{:.1f}" class="tick" text-anchor="end">{}</text>)", label - 4,
                       top + cell * (static_cast<double>(c) + 0.65), escape(names[c]));
    svg += fmt::format(R"~(<text transform="translate({:.1f},{}) rotate(-60)" class="tick">{}</text>)~",
                       label + cell * (static_cast<double>(c) + 0.5), top - 4, escape(names[c]));
  }
  for (std::size_t t = 0; t < k; ++t) {
    double total = 0;
    for (std::size_t p = 0; p < k; ++p) total += confusion[t][p].get<double>();
    for (std::size_t p = 0; p < k; ++p) {
      const double n = confusion[t][p].get<double>();
      const double share = total > 0 ? n / total : 0;
      const int shade = static_cast<int>(255 - 200 * share);
      svg += fmt::format(
          R"~(<rect x="{:.1f}" y="{:.1f}" width="{}" height="{}" fill="rgb({},{},255)" stroke="#ddd"><title>true {} predicted {}: {} ({:.1f}%)</title></rect>)~",
          label + cell * static_cast<double>(p), top + cell * static_cast<double>(t), cell, cell, shade, shade,
          escape(names[t]), escape(names[p]), n, 100 * share);
      if (n > 0)
        svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="cell" text-anchor="middle" fill="{}">{}</text>)",
                           label + cell * (static_cast<double>(p) + 0.5), top + cell * (static_cast<double>(t) + 0.62),
                           share > 0.5 ? "#fff" : "#222",
                           n >= 10000 ? fmt::format("{:.0f}k", n / 1000) : fmt::format("{:.0f}", n));
    }
  }
  return svg + "</svg>";
}

// The page's head and style, shared by a run's report and the comparison of runs.
std::string page_head(const std::string& title) {
  return "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + escape(title) + "</title><style>" +
         R"(
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.warn{background:#fff3cd;padding:8px;border:1px solid #e0c060}
.charts{display:flex;flex-wrap:wrap;gap:16px}.title{font-size:13px;font-weight:600}.tick{font-size:10px;fill:#444}
.cell{font-size:9px}.grid{stroke:#eee}pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
.headline{font-size:16px;background:#eef6ee;padding:8px;border:1px solid #9c9}
)" + "</style></head><body>";
}

std::string number(double v) { return fmt::format("{:.4f}", v); }

// A number of a metrics.json that may lack it (a run of an earlier version): "" then.
std::string maybe(const Json& m, std::initializer_list<const char*> path) {
  const Json* j = &m;
  for (const char* key : path) {
    if (!j->is_object() || !j->contains(key)) return "";
    j = &(*j)[key];
  }
  return j->is_number() ? number(j->get<double>()) : "";
}

std::string ensemble_note(std::size_t members) {
  return members > 1 ? fmt::format("<br><small>ensemble of {}</small>", members) : "";
}

std::string blend_models(const Json& m) {
  if (!m.is_object() || !m.contains("blend")) return "";
  const Json& b = m["blend"];
  const Json models = b.is_object() ? b.value("models", Json::array()) : b;
  std::vector<std::string> names;
  for (const auto& n : models)
    if (n.is_string()) names.push_back(escape(n.get<std::string>()));
  return fmt::format("{}", fmt::join(names, ", "));
}

std::string blend_note(const Json& m) {
  const std::string models = blend_models(m);
  return models.empty() ? "" : fmt::format("<br><small>mean of {}</small>", models);
}

// The headline of a model: per-flow macro F1 on unseen captures, else the test split's (which is
// "captures held out by fold" with folds).
std::optional<double> headline_of(const Json& m) {
  if (m.contains("unseen")) return m["unseen"]["per_flow"].value("macro_f1", 0.0);
  if (m.contains("headline")) return m["headline"].value("macro_f1", 0.0);
  return std::nullopt;
}

std::string headline_what(const Json& models) {
  for (const auto& [name, m] : models.items())
    if (m.is_object() && m.contains("headline")) return m["headline"].value("what", "");
  return "";
}

// Per-flow macro F1 against the flow's first k samples or packets.
std::string early_chart(const Json& m) {
  std::vector<Series> series;
  auto add = [&](const char* what, const Json& scoring, const char* color) {
    if (!scoring.is_object() || !scoring.contains("early") || scoring["early"].empty()) return;
    Series s{what, color, {}};
    for (const auto& e : scoring["early"])
      s.points.emplace_back(e.value("packets", e.value("samples", 0)), e.value("macro_f1", 0.0));
    series.push_back(std::move(s));
  };
  if (m.contains("unseen")) add("unseen captures", m["unseen"], "#d62728");
  if (m.contains("test_scoring")) add("test split", m["test_scoring"], "#1f77b4");
  if (series.empty()) return "";
  const bool packets = m.contains("test_scoring") && !m["test_scoring"]["early"].empty() &&
                       m["test_scoring"]["early"][0].contains("packets");
  return line_chart("Per-flow macro F1, deciding early", series, true,
                    packets ? "packets of the flow" : "samples of the flow");
}

// Per class: per-flow F1 on unseen captures and on the test split, per-sample F1 on the test split.
std::string class_table(const Json& m) {
  std::string html = "<table><tr><th>class</th>";
  const bool unseen = m.contains("unseen");
  if (unseen) html += "<th>unseen per-flow F1</th><th>precision</th><th>recall</th><th>flows</th><th>undecided</th>";
  html += "<th>test per-flow F1</th><th>flows</th><th>test per-sample F1</th><th>samples</th></tr>";
  const Json& samples = m["test"]["per_class"];
  for (std::size_t c = 0; c < samples.size(); ++c) {
    html += "<tr><td>" + escape(samples[c]["class"].get<std::string>()) + "</td>";
    if (unseen) {
      const Json& u = m["unseen"]["per_flow"]["per_class"][c];
      const bool present = u.value("support", 0) > 0;
      html +=
          fmt::format("<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                      present ? number(u["f1"].get<double>()) : "", present ? number(u["precision"].get<double>()) : "",
                      present ? number(u["recall"].get<double>()) : "", u.value("support", 0), u.value("abstained", 0));
    }
    const Json& f = m.contains("test_per_flow") ? m["test_per_flow"]["per_class"][c] : Json::object();
    html += fmt::format("<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        f.value("support", 0) ? number(f["f1"].get<double>()) : "", f.value("support", 0),
                        number(samples[c]["f1"].get<double>()), samples[c]["support"].get<std::uint64_t>());
  }
  return html + "</table>";
}

}  // namespace trafficid::host::html
