// report.html: a self-contained page (inline CSS and SVG, no script, no network) with the models
// side by side, each model's per-class table, learning curves and confusion matrix, and the config.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "schema_check.hpp"
#include "study.hpp"
#include "trafficid/files.hpp"

#include "report.hpp"
#include "train_stage.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

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

struct Series {
  std::string name, color;
  std::vector<std::pair<double, double>> points;
};

// A line chart of several series against the epoch.
std::string line_chart(const std::string& title, const std::vector<Series>& series, bool unit_range,
                       const std::string& x_label = "epoch", bool legend = true, bool lines = true) {
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
  std::string svg = fmt::format(R"(<svg class="chart" role="img" aria-label="{0}" width="{1}" height="{2}" viewBox="0 0 {1} {2}" xmlns="http://www.w3.org/2000/svg">)"
                                R"(<text x="{3}" y="14" class="title">{0}</text>)", escape(title), w, h, left);
  for (int i = 0; i <= 4; ++i) {
    double y = y_min + (y_max - y_min) * i / 4.0;
    svg += fmt::format(R"(<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="grid"/><text x="{}" y="{:.1f}" class="tick" text-anchor="end">{:.3g}</text>)",
                       left, w - right, py(y), py(y), left - 4, py(y) + 4, y);
  }
  const int ticks = static_cast<int>(std::min(x_max, 10.0));
  for (int i = 0; i < ticks; ++i) {
    double x = 1 + (x_max - 1) * (ticks > 1 ? i / static_cast<double>(ticks - 1) : 0);
    svg += fmt::format(R"(<text x="{:.1f}" y="{}" class="tick" text-anchor="middle">{:.0f}</text>)", px(x), h - bottom + 14, x);
  }
  svg += fmt::format(R"(<text x="{:.1f}" y="{}" class="tick" text-anchor="middle">{}</text>)", (left + w - right) / 2, h - 4,
                     escape(x_label));
  double legend_x = left + 8;
  for (const auto& s : series) {
    std::string path;
    for (auto [x, y] : s.points) path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", px(x), py(y));
    if (lines && s.points.size() > 1) svg += fmt::format(R"(<path d="{}" fill="none" stroke="{}" stroke-width="2"/>)", path, s.color);
    for (auto [x, y] : s.points) svg += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}"/>)", px(x), py(y), s.color);
    if (!legend) continue;
    svg += fmt::format(R"(<rect x="{:.1f}" y="22" width="10" height="10" fill="{}"/><text x="{:.1f}" y="31" class="tick">{}</text>)",
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
  std::string svg = fmt::format(R"(<svg class="confusion" role="img" aria-label="confusion matrix" width="{0}" height="{1}" viewBox="0 0 {0} {1}" xmlns="http://www.w3.org/2000/svg">)",
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
      svg += fmt::format(R"~(<rect x="{:.1f}" y="{:.1f}" width="{}" height="{}" fill="rgb({},{},255)" stroke="#ddd"><title>true {} predicted {}: {} ({:.1f}%)</title></rect>)~",
                         label + cell * static_cast<double>(p), top + cell * static_cast<double>(t), cell, cell, shade, shade,
                         escape(names[t]), escape(names[p]), n, 100 * share);
      if (n > 0)
        svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="cell" text-anchor="middle" fill="{}">{}</text>)",
                           label + cell * (static_cast<double>(p) + 0.5), top + cell * (static_cast<double>(t) + 0.62),
                           share > 0.5 ? "#fff" : "#222", n >= 10000 ? fmt::format("{:.0f}k", n / 1000) : fmt::format("{:.0f}", n));
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

const char* const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string number(double v) { return fmt::format("{:.4f}", v); }

}  // namespace

namespace {

// A number of a metrics.json that may lack it (a run of an earlier version): "" then.
std::string maybe(const Json& m, std::initializer_list<const char*> path) {
  const Json* j = &m;
  for (const char* key : path) {
    if (!j->is_object() || !j->contains(key)) return "";
    j = &(*j)[key];
  }
  return j->is_number() ? number(j->get<double>()) : "";
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
    for (const auto& e : scoring["early"]) s.points.emplace_back(e.value("packets", e.value("samples", 0)), e.value("macro_f1", 0.0));
    series.push_back(std::move(s));
  };
  if (m.contains("unseen")) add("unseen captures", m["unseen"], "#d62728");
  if (m.contains("test_scoring")) add("test split", m["test_scoring"], "#1f77b4");
  if (series.empty()) return "";
  const bool packets = m.contains("test_scoring") && !m["test_scoring"]["early"].empty() &&
                       m["test_scoring"]["early"][0].contains("packets");
  return line_chart("Per-flow macro F1, deciding early", series, true, packets ? "packets of the flow" : "samples of the flow");
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
      html += fmt::format("<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>", present ? number(u["f1"].get<double>()) : "",
                          present ? number(u["precision"].get<double>()) : "", present ? number(u["recall"].get<double>()) : "",
                          u.value("support", 0), u.value("abstained", 0));
    }
    const Json& f = m.contains("test_per_flow") ? m["test_per_flow"]["per_class"][c] : Json::object();
    html += fmt::format("<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", f.value("support", 0) ? number(f["f1"].get<double>()) : "",
                        f.value("support", 0), number(samples[c]["f1"].get<double>()), samples[c]["support"].get<std::uint64_t>());
  }
  return html + "</table>";
}

}  // namespace

void write_report(const fs::path& run_dir, const Json& run_record, const Json& models, const std::string& resolved_config) {
  std::string html = page_head("trafficid report");
  html += fmt::format("<h1>trafficid run: {}</h1><p>{} &middot; started {} &middot; status {}</p>",
                      escape(run_record.value("name", "")), escape(run_record.value("experiment", "")),
                      escape(run_record.value("started", "")), escape(run_record.value("status", "")));
  const std::string best = run_record.value("best_model", "");
  const std::string what = headline_what(models);
  if (!best.empty() && models.contains(best)) {
    const Json& m = models[best];
    std::string line = fmt::format("Best model (per-flow macro F1 on the validation split): <b>{}</b>. ", escape(best));
    if (m.contains("unseen"))
      line += fmt::format("On captures it never saw ({} flows in {} capture{}): per-flow macro F1 <b class=\"headline-value\">{}</b>, "
                          "accuracy {}; on the test split {}.", m["unseen"].value("flows", 0), m["unseen"].value("captures", 0), m["unseen"].value("captures", 0) == 1 ? "" : "s",
                          number(m["unseen"]["per_flow"]["macro_f1"].get<double>()),
                          number(m["unseen"]["per_flow"]["accuracy"].get<double>()), number(m["test_per_flow"]["macro_f1"].get<double>()));
    else if (auto h = headline_of(m))
      line += fmt::format("{}: <b class=\"headline-value\">{}</b>.", escape(what), number(*h));
    html += "<p class=\"headline\">" + line + "</p>";
    if (!m.contains("unseen") && m.value("split", Json::object()).value("folds", 0) == 0)
      html += R"(<p class="warn">The test split shares captures with training (the same networks, hosts and sessions): it overstates what the models do on traffic they never saw. Add <code>[evaluate] sources</code> (captures no training sample comes from) or <code>dataset.folds</code> (group k-fold by capture) for that number.</p>)";
  }
  const Json& dataset = run_record.contains("dataset") ? run_record["dataset"] : Json::object();
  if (dataset.value("leaks", false))
    html += R"(<p class="warn"><b>Packet split:</b> packets of one flow sit in training and test; these numbers are not comparable with a flow split and overstate what the models do on new traffic.</p>)";
  if (dataset.contains("rows"))
    html += fmt::format("<p>Dataset: {} classes, split by {}{}: {} training, {} validation, {} test samples.</p>",
                        dataset.value("classes", 0), escape(dataset.value("split", "")),
                        dataset.value("folds", 0) ? fmt::format(" in {} folds (fold 0's counts)", dataset.value("folds", 0)) : "",
                        dataset["rows"].value("train", 0), dataset["rows"].value("validation", 0), dataset["rows"].value("test", 0));
  if (run_record.contains("evaluation")) {
    const Json& e = run_record["evaluation"];
    const Json& left = e.value("evaluation", Json::object());
    html += fmt::format("<p>Unseen captures: {} test samples; left out as training data: {} capture{} with a training "
                        "capture's content, {} flow{} also in a training capture.</p>",
                        e.value("rows", Json::object()).value("test", 0), left.value("inputs_left_out", Json::array()).size(),
                        left.value("inputs_left_out", Json::array()).size() == 1 ? "" : "s", left.value("training_flows_left_out", 0),
                        left.value("training_flows_left_out", 0) == 1 ? "" : "s");
  }
  // Comparison.
  const bool any_unseen = std::any_of(models.begin(), models.end(), [](const Json& m) { return m.is_object() && m.contains("unseen"); });
  html += "<h2>Models</h2><table><tr><th>model</th>";
  if (any_unseen) html += "<th>unseen captures per-flow macro F1</th><th>unseen per-flow accuracy</th>";
  html += "<th>test per-flow macro F1</th><th>validation per-flow macro F1</th><th>test per-sample macro F1</th>"
          "<th>weighted F1</th><th>accuracy</th><th>parameters</th><th>model file</th><th>training s</th><th>best epoch</th>"
          "<th>inference samples/s</th><th>latency ms (batch 1)</th></tr>";
  for (const auto& [name, m] : models.items()) {
    if (!m.is_object() || !m.contains("test")) continue;
    html += fmt::format("<tr><td>{}{}</td>", escape(name), name == best ? " (best)" : "");
    if (any_unseen)
      html += fmt::format("<td><b>{}</b></td><td>{}</td>", maybe(m, {"unseen", "per_flow", "macro_f1"}), maybe(m, {"unseen", "per_flow", "accuracy"}));
    html += fmt::format("<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1f} KB</td><td>{:.1f}</td>"
                        "<td>{}</td><td>{:.0f}</td><td>{:.2f}</td></tr>",
                        maybe(m, {"test_per_flow", "macro_f1"}), maybe(m, {"validation_per_flow", "macro_f1"}),
                        number(m["test"]["macro_f1"].get<double>()), number(m["test"]["weighted_f1"].get<double>()),
                        number(m["test"]["accuracy"].get<double>()), m["parameters"].get<std::uint64_t>(),
                        m["model_file_bytes"].get<double>() / 1024, m["training_seconds"].get<double>(),
                        m["best_epoch"].get<std::int64_t>(), m["inference"]["throughput_samples_per_second"].get<double>(),
                        m["inference"]["latency_ms_batch_1"].get<double>());
  }
  html += "</table>";
  for (const auto& [name, m] : models.items()) {
    if (!m.is_object() || !m.contains("test")) continue;
    html += fmt::format("<h2>{}</h2>", escape(name));
    std::vector<Series> losses = {{"train loss", "#1f77b4", {}}, {"validation loss", "#ff7f0e", {}}};
    std::vector<Series> scores = {{"validation macro F1", "#2ca02c", {}}, {"validation accuracy", "#9467bd", {}}};
    for (const auto& e : m["epochs"]) {
      const double x = e.value("epoch", 0);
      // A number that is missing or null (a diverged epoch written by an older trafficid) is no point.
      auto add = [&](Series& series, const char* key) {
        if (e.contains(key) && e[key].is_number()) series.points.emplace_back(x, e[key].get<double>());
      };
      add(losses[0], "train_loss");
      add(losses[1], "val_loss");
      add(scores[0], "val_macro_f1");
      add(scores[1], "val_accuracy");
    }
    html += "<div class=\"charts\">" + line_chart("Loss", losses, false) + line_chart("Validation", scores, true) +
            early_chart(m) + "</div>";
    if (m.contains("unseen") && m["unseen"].contains("abstaining")) {
      const Json& a = m["unseen"]["abstaining"];
      html += fmt::format("<p>Abstaining below confidence {:.3f} (calibrated on the validation split): unseen per-flow macro F1 "
                          "{}, {} of {} flows left undecided.</p>", a.value("threshold", 0.0), number(a.value("macro_f1", 0.0)),
                          a.value("abstained", 0), m["unseen"].value("flows", 0));
    }
    if (m.contains("unseen") && m["unseen"].contains("unknown")) {
      const Json& u = m["unseen"]["unknown"];
      html += fmt::format("<p>Flows of no class in the unseen captures: {}; abstained on {} ({:.1f}%), the rest forced into a "
                          "class.</p>", u.value("flows", 0), u.value("abstained", 0), 100 * u.value("rejection_rate", 0.0));
    }
    html += "<h3>Per class</h3>" + class_table(m);
    std::vector<std::string> names;
    for (const auto& c : m["test"]["per_class"]) names.push_back(c["class"].get<std::string>());
    if (m.contains("unseen")) {
      html += "<h3>Confusion matrix, flows of the unseen captures (rows: true class, shade: share of the row)</h3>";
      html += confusion_chart(m["unseen"]["per_flow"]["confusion"], names);
    }
    html += "<h3>Confusion matrix, test split samples (rows: true class, shade: share of the row)</h3>";
    html += confusion_chart(m["test"]["confusion"], names);
  }
  html += "<h2>Configuration</h2><pre>" + escape(resolved_config) + "</pre></body></html>\n";
  std::ofstream out(run_dir / "report.html", std::ios::trunc);
  out << html;
  if (!out) throw Error(fmt::format("cannot write {}", (run_dir / "report.html").string()));
}

void write_evaluation_report(const fs::path& file, const Json& evaluation) {
  std::string html = page_head("trafficid evaluation");
  html += fmt::format("<h1>trafficid evaluate</h1><p>Captures: {}. Each flow gets its class from the run's labeler and "
                      "[label.classes]; captures and flows the run trained on are left out; a flow that gave no sample "
                      "counts as undecided.</p>", escape(fmt::format("{}", fmt::join(evaluation.value("captures", std::vector<std::string>{}), ", "))));
  for (const auto& run : evaluation["runs"]) {
    const std::string best = run.value("best_model", "");
    html += fmt::format("<h2>{}</h2>", escape(run.value("run", "")));
    const Json& d = run.value("dataset", Json::object());
    const Json& left = d.value("evaluation", Json::object());
    html += fmt::format("<p>{} test samples; left out: {} training capture{}, {} training flow{}; {} flows of no class.</p>",
                        d.value("rows", Json::object()).value("test", 0), left.value("inputs_left_out", Json::array()).size(),
                        left.value("inputs_left_out", Json::array()).size() == 1 ? "" : "s", left.value("training_flows_left_out", 0),
                        left.value("training_flows_left_out", 0) == 1 ? "" : "s", left.value("unknown_flows", 0));
    html += "<table><tr><th>model</th><th>per-flow macro F1</th><th>per-flow accuracy</th><th>flows</th><th>without samples</th>"
            "<th>abstaining: macro F1</th><th>undecided</th><th>per-sample macro F1</th><th>validation per-flow macro F1</th></tr>";
    for (const auto& [name, s] : run["models"].items())
      html += fmt::format("<tr><td>{}{}</td><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                          escape(name), name == best ? " (best)" : "", number(s["per_flow"]["macro_f1"].get<double>()),
                          number(s["per_flow"]["accuracy"].get<double>()), s.value("flows", 0), s.value("flows_without_samples", 0),
                          maybe(s, {"abstaining", "macro_f1"}), s.contains("abstaining") ? std::to_string(s["abstaining"].value("abstained", 0)) : "",
                          number(s["per_sample"]["macro_f1"].get<double>()), number(s.value("validation_per_flow_macro_f1", 0.0)));
    html += "</table>";
    const auto names = run["classes"].get<std::vector<std::string>>();
    for (const auto& [name, s] : run["models"].items()) {
      html += fmt::format("<h3>{}: per class (flows)</h3><table><tr><th>class</th><th>F1</th><th>precision</th><th>recall</th>"
                          "<th>flows</th><th>undecided</th></tr>", escape(name));
      for (const auto& c : s["per_flow"]["per_class"])
        if (c.value("support", 0) > 0)
          html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                              escape(c["class"].get<std::string>()), number(c["f1"].get<double>()),
                              number(c["precision"].get<double>()), number(c["recall"].get<double>()), c.value("support", 0),
                              c.value("abstained", 0));
      html += "</table><div class=\"charts\">" + confusion_chart(s["per_flow"]["confusion"], names) + "</div>";
    }
  }
  html += "</body></html>\n";
  write_file_atomically(file, html);
}

// ---- Several runs side by side (`trafficid report RUN_DIR...`, and a run with variants). ----

namespace {

// Dotted paths to leaf values ("models.cnn.conv.0.filters" -> "200"); a list of plain values is one leaf.
void flatten(const Json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  auto child = [&](const std::string& key) { return prefix.empty() ? key : prefix + "." + key; };
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) flatten(v, child(k), out);
  } else if (j.is_array() && std::any_of(j.begin(), j.end(), [](const Json& e) { return e.is_structured(); })) {
    for (std::size_t i = 0; i < j.size(); ++i) flatten(j[i], child(std::to_string(i)), out);
  } else {
    out[prefix] = j.is_string() ? j.get<std::string>() : j.dump();
  }
}

struct ComparedRun {
  std::string label;
  fs::path dir;
  Json record, models;
  std::map<std::string, std::string> config;
};

ComparedRun load_compared_run(const fs::path& dir) {
  ComparedRun run;
  run.dir = dir;
  run.label = fs::absolute(dir).lexically_normal().filename().string();
  if (run.label.empty()) run.label = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  std::ifstream record(dir / "run.json");
  if (!record) throw Error(fmt::format("{}: not a run folder (no run.json); give folders that `trafficid run` made", dir.string()));
  try {
    run.record = Json::parse(record);
  } catch (const Json::exception& e) {
    throw Error(fmt::format("{}: unreadable ({}); the run was perhaps killed while writing it", (dir / "run.json").string(), e.what()));
  }
  run.models = run.record.value("models", Json::object());
  if (run.models.empty() && fs::is_directory(dir / "models"))  // a run still training, or stopped: its finished models
    for (const auto& entry : fs::directory_iterator(dir / "models"))
      if (std::ifstream m(entry.path() / "metrics.json"); m) run.models[entry.path().filename().string()] = Json::parse(m);
  Json config;
  if (run.record.contains("config")) {
    config = run.record["config"];
  } else if (fs::exists(dir / "config.resolved.toml")) {
    try {
      config = to_json(toml::parse_file((dir / "config.resolved.toml").string()));
    } catch (const toml::parse_error& e) {
      throw Error(fmt::format("{}: not valid TOML: {}", (dir / "config.resolved.toml").string(), e.description()));
    }
  }
  flatten(config, "", run.config);
  return run;
}

}  // namespace

void write_comparison_report(const fs::path& out, const std::vector<fs::path>& run_dirs, const std::string& title) {
  std::vector<ComparedRun> runs;
  for (const auto& d : run_dirs) runs.push_back(load_compared_run(d));
  // Labels must tell runs apart: two folders of one name get their parent's name too.
  for (auto& r : runs)
    if (std::count_if(runs.begin(), runs.end(), [&](const ComparedRun& o) { return o.label == r.label; }) > 1)
      r.label = fs::absolute(r.dir).lexically_normal().parent_path().filename().string() + "/" + r.label;

  std::string html = page_head(title);
  html += fmt::format("<h1>{}</h1><p>{} run{} compared: the test split's numbers of every model, what differs in their "
                      "configurations, validation curves, and per-class F1.</p>", escape(title), runs.size(), runs.size() == 1 ? "" : "s");
  std::vector<std::string> leaking;
  for (const auto& r : runs)
    if (r.record.contains("dataset") && r.record["dataset"].value("leaks", false)) leaking.push_back(r.label);
  if (!leaking.empty())
    html += fmt::format(R"(<p class="warn"><b>Packet split</b> in {}: packets of one flow sit in training and test; their numbers overstate what the models do on new traffic and are not comparable with a flow split.</p>)",
                        escape(fmt::format("{}", fmt::join(leaking, ", "))));

  // What differs between the configurations.
  std::set<std::string> keys;
  for (const auto& r : runs)
    for (const auto& [k, v] : r.config) keys.insert(k);
  std::vector<std::string> differing;
  for (const auto& k : keys) {
    std::set<std::string> values;
    for (const auto& r : runs) values.insert(r.config.count(k) ? r.config.at(k) : "\x01");
    if (values.size() > 1) differing.push_back(k);
  }
  html += "<h2>What differs</h2>";
  if (runs.size() < 2) {
    html += "<p>One run: nothing to compare it with.</p>";
  } else if (differing.empty()) {
    html += "<p>The runs' resolved configurations are identical, seeds included.</p>";
  } else {
    html += "<table><tr><th>setting</th>";
    for (const auto& r : runs) html += "<th>" + escape(r.label) + "</th>";
    html += "</tr>";
    for (const auto& k : differing) {
      html += "<tr><td>" + escape(k) + "</td>";
      for (const auto& r : runs) html += "<td>" + escape(r.config.count(k) ? r.config.at(k) : "(absent)") + "</td>";
      html += "</tr>";
    }
    html += "</table>";
  }

  // Every model of every run on its test split.
  double best = -1;
  for (const auto& r : runs)
    for (const auto& [name, m] : r.models.items())
      if (m.is_object() && m.contains("test")) best = std::max(best, m["test"]["macro_f1"].get<double>());
  double best_headline = -1;
  for (const auto& r : runs)
    for (const auto& [name, m] : r.models.items())
      if (m.is_object())
        if (auto h = headline_of(m)) best_headline = std::max(best_headline, *h);
  std::string what;
  for (const auto& r : runs)
    if (what.empty()) what = headline_what(r.models);
  html += fmt::format("<h2>Models</h2><p>Headline: {}.</p>", escape(what.empty() ? std::string("per-flow macro F1") : what));
  html += "<table><tr><th>run</th><th>model</th><th>headline per-flow macro F1</th><th>validation per-flow macro F1</th>"
          "<th>test per-sample macro F1</th><th>weighted F1</th>"
          "<th>accuracy</th><th>test per-flow macro F1</th><th>parameters</th><th>training s</th><th>best epoch</th>"
          "<th>inference samples/s</th><th>report</th></tr>";
  for (const auto& r : runs) {
    if (r.models.empty())
      html += fmt::format("<tr><td>{}</td><td colspan=\"12\">no trained model (status {})</td></tr>", escape(r.label),
                          escape(r.record.value("status", "unknown")));
    for (const auto& [name, m] : r.models.items()) {
      if (!m.is_object() || !m.contains("test")) continue;
      const double f1 = m["test"]["macro_f1"].get<double>();
      std::error_code ec;
      fs::path page = fs::relative(fs::absolute(r.dir / "report.html"), fs::absolute(out).parent_path(), ec);
      const auto h = headline_of(m);
      const bool top = h && *h == best_headline;
      html += fmt::format("<tr><td>{}</td><td>{}{}</td><td>{}{}{}</td><td>{}</td><td>{}{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1f}</td>"
                          "<td>{}</td><td>{:.0f}</td><td>{}</td></tr>",
                          escape(r.label), escape(name), r.record.value("best_model", "") == name ? " (best)" : "",
                          top ? "<b>" : "", h ? number(*h) : "", top ? "</b>" : "", maybe(m, {"validation_per_flow", "macro_f1"}),
                          f1 == best ? "<b>" : "", number(f1), f1 == best ? "</b>" : "",
                          number(m["test"]["weighted_f1"].get<double>()), number(m["test"]["accuracy"].get<double>()),
                          number(m["test_per_flow"]["macro_f1"].get<double>()), m["parameters"].get<std::uint64_t>(),
                          m["training_seconds"].get<double>(), m["best_epoch"].get<std::int64_t>(),
                          m["inference"]["throughput_samples_per_second"].get<double>(),
                          fs::exists(r.dir / "report.html") && !ec ? fmt::format("<a href=\"{}\">run report</a>", escape(page.string())) : "");
    }
  }
  html += "</table>";

  // Validation macro F1 per epoch: one chart per model name, one line per run.
  std::set<std::string> model_names;
  for (const auto& r : runs)
    for (const auto& [name, m] : r.models.items())
      if (m.is_object() && m.contains("epochs")) model_names.insert(name);
  if (!model_names.empty()) {
    html += "<h2>Validation macro F1 by epoch</h2><div class=\"charts\">";
    for (const auto& name : model_names) {
      std::vector<Series> series;
      for (std::size_t i = 0; i < runs.size(); ++i) {
        const auto& models = runs[i].models;
        if (!models.contains(name) || !models[name].contains("epochs")) continue;
        Series s{runs[i].label, palette[i % std::size(palette)], {}};
        for (const auto& e : models[name]["epochs"])
          if (e.contains("val_macro_f1") && e["val_macro_f1"].is_number())
            s.points.emplace_back(e.value("epoch", 0), e["val_macro_f1"].get<double>());
        series.push_back(std::move(s));
      }
      html += line_chart(name, series, true);
    }
    html += "</div>";
  }

  // Per-class F1: a row per class, a column per (run, model).
  std::vector<std::pair<std::string, const Json*>> columns;
  std::vector<std::string> classes;
  for (const auto& r : runs)
    for (const auto& [name, m] : r.models.items()) {
      if (!m.is_object() || !m.contains("test")) continue;
      columns.emplace_back(r.label + " / " + name, &m);
      for (const auto& c : m["test"]["per_class"]) {
        auto cls = c["class"].get<std::string>();
        if (std::find(classes.begin(), classes.end(), cls) == classes.end()) classes.push_back(cls);
      }
    }
  if (!columns.empty()) {
    html += "<h2>F1 per class (test split)</h2><table><tr><th>class</th>";
    for (const auto& [label, m] : columns) html += "<th>" + escape(label) + "</th>";
    html += "</tr>";
    for (const auto& cls : classes) {
      html += "<tr><td>" + escape(cls) + "</td>";
      for (const auto& [label, m] : columns) {
        std::string cell;
        for (const auto& c : (*m)["test"]["per_class"])
          if (c["class"] == cls)
            cell = fmt::format("<span title=\"support {}\">{}</span>", c["support"].get<std::uint64_t>(), number(c["f1"].get<double>()));
        html += "<td>" + cell + "</td>";
      }
      html += "</tr>";
    }
    html += "</table>";
  }
  html += "<h2>Runs</h2><table><tr><th>run</th><th>folder</th><th>status</th><th>started</th><th>dataset</th></tr>";
  for (const auto& r : runs) {
    const Json& d = r.record.contains("dataset") ? r.record["dataset"] : Json::object();
    std::string dataset = d.contains("rows") ? fmt::format("{} classes, split by {}: {} / {} / {}", d.value("classes", 0),
                                                           d.value("split", ""), d["rows"].value("train", 0),
                                                           d["rows"].value("validation", 0), d["rows"].value("test", 0))
                                             : "";
    html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", escape(r.label),
                        escape(fs::absolute(r.dir).lexically_normal().string()), escape(r.record.value("status", "")),
                        escape(r.record.value("started", "")), escape(dataset));
  }
  html += "</table></body></html>\n";
  write_file_atomically(out, html);
}

// ---- A tuning study (`trafficid tune`): STUDY_DIR/report.html. ----

void write_study_report(const fs::path& study_dir, const StudyState& state) {
  const auto& h = state.header;
  std::map<std::string, int> counts;
  for (const auto& [id, t] : state.trials) ++counts[t.status];
  std::string html = page_head("trafficid study: " + h.name);
  html += fmt::format("<h1>trafficid study: {}</h1><p>Tuner <b>{}</b> {}, {} {} on the validation split (the test split is "
                      "never looked at), {} trials budgeted; {} done, {} pruned, {} failed, {} running, {} waiting.</p>",
                      escape(h.name), escape(h.tuner), escape(h.tuner_params.dump()), h.space.maximize ? "maximizing" : "minimizing",
                      escape(h.metric), h.trials, counts["done"], counts["pruned"], counts["failed"], counts["running"],
                      counts["waiting"]);
  const auto best = state.best_trial();
  if (best) {
    const auto& b = state.trials.at(best);
    html += fmt::format("<h2>Best: trial {}, {} {}</h2><table><tr><th>setting</th><th>value</th></tr>", best, escape(h.metric),
                        number(*b.value));
    for (const auto& [path, value] : b.assignment.items())
      html += fmt::format("<tr><td>{}</td><td>{}</td></tr>", escape(path), escape(value.dump()));
    html += "</table><p><a href=\"best.toml\">best.toml</a> is its experiment, ready to run: <code>trafficid run " +
            escape((study_dir / "best.toml").string()) + "</code> trains it and tests it on the test split.</p>";
  }
  // Optimisation history: every trial's value, and the best so far.
  Series values{"trial value", palette[0], {}}, pruned{"pruned (best reached)", palette[3], {}}, best_so_far{"best so far", palette[2], {}};
  std::optional<double> running_best;
  double epochs = 0;
  for (const auto& [id, t] : state.trials) {
    epochs += static_cast<double>(t.reports.size());
    if (!t.value) continue;
    (t.status == "done" ? values : pruned).points.emplace_back(static_cast<double>(id), *t.value);
    if (t.status == "done" && (!running_best || state.better(*t.value, *running_best))) running_best = t.value;
    if (running_best) best_so_far.points.emplace_back(static_cast<double>(id), *running_best);
  }
  const bool unit = h.metric != "val.loss";
  html += "<h2>Optimisation history</h2><div class=\"charts\">";
  html += line_chart("value per trial", {values, pruned}, unit, "trial", true, false);
  html += line_chart("best so far", {best_so_far}, unit, "trial");
  // Intermediate values: each trial's metric by epoch.
  std::vector<Series> curves;
  std::size_t i = 0;
  for (const auto& [id, t] : state.trials) {
    Series s{fmt::format("trial {}", id), palette[i++ % std::size(palette)], {}};
    for (const auto& [step, v] : t.reports) s.points.emplace_back(step, v);
    if (!s.points.empty()) curves.push_back(std::move(s));
  }
  html += line_chart("intermediate values (" + h.metric + " by epoch)", curves, unit, "epoch", curves.size() <= 6);
  html += fmt::format("</div><p>{:.0f} trial-epochs spent in all.</p>", epochs);
  // Every trial.
  html += "<h2>Trials</h2><table><tr><th>trial</th><th>status</th><th>" + escape(h.metric) +
          "</th><th>epochs</th><th>attempts</th>";
  for (const auto& d : h.space.dimensions) html += "<th>" + escape(d.path) + "</th>";
  html += "<th>seconds</th><th>worker</th><th>error</th></tr>";
  for (const auto& [id, t] : state.trials) {
    html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>", id, escape(t.status),
                        t.value ? (id == best ? "<b>" + number(*t.value) + "</b>" : number(*t.value)) : "", t.reports.size(),
                        t.attempts);
    for (const auto& d : h.space.dimensions)
      html += "<td>" + escape(t.assignment.contains(d.path) ? t.assignment[d.path].dump() : "") + "</td>";
    html += fmt::format("<td>{:.1f}</td><td>{}</td><td>{}</td></tr>", t.seconds, escape(t.worker), escape(t.error));
  }
  html += "</table><h2>Search space</h2><table><tr><th>setting</th><th>distribution</th></tr>";
  for (const auto& d : h.space.dimensions) {
    std::string what = d.kind == SearchDimension::Kind::choice ? "choice " + Json(d.choices).dump()
                                                               : fmt::format("{} [{}, {}]", to_string(d.kind), d.low, d.high);
    html += fmt::format("<tr><td>{}</td><td>{}</td></tr>", escape(d.path), escape(what));
  }
  html += "</table></body></html>\n";
  write_file_atomically(study_dir / "report.html", html);
}

}  // namespace trafficid::host
