// report.html: a self-contained page (inline CSS and SVG, no script, no network) with the models
// side by side, each model's per-class table, learning curves and confusion matrix, and the config;
// and `trafficid evaluate`'s page.
#include "report/report.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
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
#include "train/scoring.hpp"
#include "train/train_stage.hpp"
#include "report/html.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;
using namespace html;

namespace {

// The headline (the best model's unseen or test number), the dataset, the unseen captures.
std::string summary_section(const Json& run_record, const Json& models) {
  std::string html;
  const std::string best = run_record.value("best_model", "");
  const std::string what = headline_what(models);
  if (!best.empty() && models.contains(best)) {
    const Json& m = models[best];
    std::string line = fmt::format("Best model (per-flow macro F1 on the validation split): <b>{}</b>. ", escape(best));
    if (m.contains("blend"))
      line = fmt::format("Best model: <b>{}</b>, the mean of the probabilities of {} ({}). ", escape(best),
                         blend_models(m),
                         escape(run_record.value("best_model_rule", std::string("picked on the validation split"))));
    if (m.contains("unseen"))
      line += fmt::format(
          "On captures it never saw ({} flows in {} capture{}): per-flow macro F1 <b "
          "class=\"headline-value\">{}</b>{}, "
          "accuracy {}; on the test split {}.",
          m["unseen"].value("flows", 0), m["unseen"].value("captures", 0),
          m["unseen"].value("captures", 0) == 1 ? "" : "s", number(m["unseen"]["per_flow"]["macro_f1"].get<double>()),
          escape(describe_interval(m["unseen"]["per_flow"])), number(m["unseen"]["per_flow"]["accuracy"].get<double>()),
          number(m["test_per_flow"]["macro_f1"].get<double>()));
    else if (auto h = headline_of(m))
      line += fmt::format("{}: <b class=\"headline-value\">{}</b>{}.", escape(what), number(*h),
                          escape(describe_interval(m.value("test_per_flow", Json::object()))));
    html += "<p class=\"headline\">" + line + "</p>";
    if (!m.contains("unseen") && m.value("split", Json::object()).value("folds", 0) == 0)
      html +=
          R"(<p class="warn">The test split shares captures with training (the same networks, hosts and sessions): it overstates what the models do on traffic they never saw. Add <code>[evaluate] sources</code> (captures no training sample comes from) or <code>dataset.folds</code> (group k-fold by capture) for that number.</p>)";
  }
  const Json& dataset = run_record.contains("dataset") ? run_record["dataset"] : Json::object();
  if (dataset.value("leaks", false))
    html +=
        R"(<p class="warn"><b>Packet split:</b> packets of one flow sit in training and test; these numbers are not comparable with a flow split and overstate what the models do on new traffic.</p>)";
  if (dataset.contains("rows"))
    html += fmt::format(
        "<p>Dataset: {} classes, split by {}{}: {} training, {} validation, {} test samples.</p>",
        dataset.value("classes", 0), escape(dataset.value("split", "")),
        dataset.value("folds", 0) ? fmt::format(" in {} folds (fold 0's counts)", dataset.value("folds", 0)) : "",
        dataset["rows"].value("train", 0), dataset["rows"].value("validation", 0), dataset["rows"].value("test", 0));
  if (run_record.contains("evaluation")) {
    const Json& e = run_record["evaluation"];
    const Json& left = e.value("evaluation", Json::object());
    html += fmt::format(
        "<p>Unseen captures: {} test samples; left out as training data: {} capture{} with a training "
        "capture's content, {} flow{} also in a training capture.</p>",
        e.value("rows", Json::object()).value("test", 0), left.value("inputs_left_out", Json::array()).size(),
        left.value("inputs_left_out", Json::array()).size() == 1 ? "" : "s", left.value("training_flows_left_out", 0),
        left.value("training_flows_left_out", 0) == 1 ? "" : "s");
  }
  return html;
}

// A score's 95% interval under it, small ("" without one).
std::string interval_cell(const Json& per_flow) {
  if (!per_flow.is_object() || !per_flow.contains("interval") || !per_flow["interval"].is_object()) return "";
  const Json& i = per_flow["interval"];
  return fmt::format("<br><small title=\"95% bootstrap interval over {} captures\">{}&ndash;{}</small>",
                     i.value("units", 0), number(i.value("low", 0.0)), number(i.value("high", 0.0)));
}

// The models side by side.
std::string models_table(const Json& models, const std::string& best) {
  std::string html;
  const bool any_unseen =
      std::any_of(models.begin(), models.end(), [](const Json& m) { return m.is_object() && m.contains("unseen"); });
  html += "<h2>Models</h2><table><tr><th>model</th>";
  if (any_unseen) html += "<th>unseen captures per-flow macro F1</th><th>unseen per-flow accuracy</th>";
  html +=
      "<th>test per-flow macro F1</th><th>validation per-flow macro F1</th><th>test per-sample macro F1</th>"
      "<th>weighted F1</th><th>accuracy</th><th>parameters</th><th>model file</th><th>training s</th><th>best "
      "epoch</th>"
      "<th>inference samples/s</th><th>latency ms (batch 1)</th></tr>";
  for (const auto& [name, m] : models.items()) {
    if (!m.is_object() || !m.contains("test")) continue;
    html += fmt::format("<tr><td>{}{}{}{}</td>", escape(name), name == best ? " (best)" : "",
                        ensemble_note(m.value("members", Json::array()).size()), blend_note(m));
    if (any_unseen)
      html += fmt::format("<td><b>{}</b>{}</td><td>{}</td>", maybe(m, {"unseen", "per_flow", "macro_f1"}),
                          interval_cell(m.value("unseen", Json::object()).value("per_flow", Json::object())),
                          maybe(m, {"unseen", "per_flow", "accuracy"}));
    html += fmt::format(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1f} KB</td><td>{:.1f}</td>"
        "<td>{}</td><td>{:.0f}</td><td>{:.2f}</td></tr>",
        maybe(m, {"test_per_flow", "macro_f1"}), maybe(m, {"validation_per_flow", "macro_f1"}),
        number(m["test"]["macro_f1"].get<double>()), number(m["test"]["weighted_f1"].get<double>()),
        number(m["test"]["accuracy"].get<double>()), m["parameters"].get<std::uint64_t>(),
        m["model_file_bytes"].get<double>() / 1024, m["training_seconds"].get<double>(),
        m["best_epoch"].get<std::int64_t>(), m["inference"]["throughput_samples_per_second"].get<double>(),
        m["inference"]["latency_ms_batch_1"].get<double>());
  }
  html += "</table>";
  return html;
}

// An ensemble's members, each alone, beside what their averaged probabilities score.
std::string members_paragraph(const Json& m) {
  const Json s = members_summary(m);
  if (s.is_null()) return "";
  auto range = [](const Json& r) {
    return fmt::format("{}&ndash;{}", number(r["low"].get<double>()), number(r["high"].get<double>()));
  };
  std::string html = fmt::format(
      "<p>An ensemble of {} members, trained on the same split from seeds {} to {}; it averages their "
      "probabilities. Each member alone: validation per-flow macro F1 {}",
      s["count"].get<std::size_t>(), s["first_seed"].get<std::int64_t>(), s["last_seed"].get<std::int64_t>(),
      range(s["validation"]));
  if (s.contains("unseen"))
    html += fmt::format(", unseen captures {} (the ensemble: {})", range(s["unseen"]),
                        maybe(m, {"unseen", "per_flow", "macro_f1"}));
  return html + ".</p>";
}

// One model: learning curves, early decisions, abstention, per-class table, confusion matrices.
std::string model_section(const std::string& name, const Json& m) {
  std::string html;
  html += fmt::format("<h2>{}</h2>", escape(name));
  html += members_paragraph(m);
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
    html += fmt::format(
        "<p>Abstaining below confidence {:.3f} (calibrated on the validation split): unseen per-flow macro F1 "
        "{}, {} of {} flows left undecided.</p>",
        a.value("threshold", 0.0), number(a.value("macro_f1", 0.0)), a.value("abstained", 0),
        m["unseen"].value("flows", 0));
  }
  if (m.contains("unseen") && m["unseen"].contains("unknown")) {
    const Json& u = m["unseen"]["unknown"];
    html += fmt::format(
        "<p>Flows of no class in the unseen captures: {}; abstained on {} ({:.1f}%), the rest forced into a "
        "class.</p>",
        u.value("flows", 0), u.value("abstained", 0), 100 * u.value("rejection_rate", 0.0));
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
  return html;
}

}  // namespace

Json members_summary(const Json& metrics) {
  if (!metrics.is_object() || !metrics.contains("members") || !metrics["members"].is_array() ||
      metrics["members"].size() < 2)
    return nullptr;
  const Json& members = metrics["members"];
  auto range = [&](const char* key) {
    double low = 1, high = 0;
    for (const auto& r : members) {
      low = std::min(low, r.value(key, 0.0));
      high = std::max(high, r.value(key, 0.0));
    }
    return Json{{"low", low}, {"high", high}};
  };
  Json s = {{"count", members.size()},
            {"first_seed", members.front().value("seed", std::int64_t{0})},
            {"last_seed", members.back().value("seed", std::int64_t{0})},
            {"validation", range("validation_per_flow_macro_f1")}};
  if (members.front().contains("unseen_per_flow_macro_f1")) s["unseen"] = range("unseen_per_flow_macro_f1");
  return s;
}

void write_report(const fs::path& run_dir, const Json& run_record, const Json& models,
                  const std::string& resolved_config) {
  std::string html = page_head("trafficid report");
  html += fmt::format("<h1>trafficid run: {}</h1><p>{} &middot; started {} &middot; status {}</p>",
                      escape(run_record.value("name", "")), escape(run_record.value("experiment", "")),
                      escape(run_record.value("started", "")), escape(run_record.value("status", "")));
  html += summary_section(run_record, models);
  html += models_table(models, run_record.value("best_model", ""));
  for (const auto& [name, m] : models.items())
    if (m.is_object() && m.contains("test")) html += model_section(name, m);
  html += "<h2>Configuration</h2><pre>" + escape(resolved_config) + "</pre></body></html>\n";
  std::ofstream out(run_dir / "report.html", std::ios::trunc);
  out << html;
  if (!out) throw Error(fmt::format("cannot write {}", (run_dir / "report.html").string()));
}

void write_evaluation_report(const fs::path& file, const Json& evaluation) {
  std::string html = page_head("trafficid evaluation");
  html += fmt::format(
      "<h1>trafficid evaluate</h1><p>Captures: {}. Each flow gets its class from the run's labeler and "
      "[label.classes]; captures and flows the run trained on are left out; a flow that gave no sample "
      "counts as undecided.</p>",
      escape(fmt::format("{}", fmt::join(evaluation.value("captures", std::vector<std::string>{}), ", "))));
  for (const auto& run : evaluation["runs"]) {
    const std::string best = run.value("best_model", "");
    html += fmt::format("<h2>{}</h2>", escape(run.value("run", "")));
    const Json& d = run.value("dataset", Json::object());
    const Json& left = d.value("evaluation", Json::object());
    html += fmt::format(
        "<p>{} test samples; left out: {} training capture{}, {} training flow{}; {} flows of no class.</p>",
        d.value("rows", Json::object()).value("test", 0), left.value("inputs_left_out", Json::array()).size(),
        left.value("inputs_left_out", Json::array()).size() == 1 ? "" : "s", left.value("training_flows_left_out", 0),
        left.value("training_flows_left_out", 0) == 1 ? "" : "s", left.value("unknown_flows", 0));
    html +=
        "<table><tr><th>model</th><th>per-flow macro F1</th><th>per-flow accuracy</th><th>flows</th><th>without "
        "samples</th>"
        "<th>abstaining: macro F1</th><th>undecided</th><th>per-sample macro F1</th><th>validation per-flow macro "
        "F1</th></tr>";
    for (const auto& [name, s] : run["models"].items())
      html += fmt::format(
          "<tr><td>{}{}{}{}</td><td><b>{}</b>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</"
          "td><td>{}</td></tr>",
          escape(name), name == best ? " (best)" : "", ensemble_note(s.value("members", std::size_t{1})), blend_note(s),
          number(s["per_flow"]["macro_f1"].get<double>()), interval_cell(s["per_flow"]),
          number(s["per_flow"]["accuracy"].get<double>()), s.value("flows", 0), s.value("flows_without_samples", 0),
          maybe(s, {"abstaining", "macro_f1"}),
          s.contains("abstaining") ? std::to_string(s["abstaining"].value("abstained", 0)) : "",
          number(s["per_sample"]["macro_f1"].get<double>()), number(s.value("validation_per_flow_macro_f1", 0.0)));
    html += "</table>";
    const auto names = run["classes"].get<std::vector<std::string>>();
    for (const auto& [name, s] : run["models"].items()) {
      html += fmt::format(
          "<h3>{}: per class (flows)</h3><table><tr><th>class</th><th>F1</th><th>precision</th><th>recall</th>"
          "<th>flows</th><th>undecided</th></tr>",
          escape(name));
      for (const auto& c : s["per_flow"]["per_class"])
        if (c.value("support", 0) > 0)
          html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                              escape(c["class"].get<std::string>()), number(c["f1"].get<double>()),
                              number(c["precision"].get<double>()), number(c["recall"].get<double>()),
                              c.value("support", 0), c.value("abstained", 0));
      html += "</table><div class=\"charts\">" + confusion_chart(s["per_flow"]["confusion"], names) + "</div>";
    }
  }
  html += "</body></html>\n";
  write_file_atomically(file, html);
}

}  // namespace trafficid::host
