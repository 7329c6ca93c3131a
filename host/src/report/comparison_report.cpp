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
#include "train/train_stage.hpp"
#include "report/html.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;
using namespace html;

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
  if (!record)
    throw Error(
        fmt::format("{}: not a run folder (no run.json); give folders that `trafficid run` made", dir.string()));
  try {
    run.record = Json::parse(record);
  } catch (const Json::exception& e) {
    throw Error(fmt::format("{}: unreadable ({}); the run was perhaps killed while writing it",
                            (dir / "run.json").string(), e.what()));
  }
  run.models = run.record.value("models", Json::object());
  if (run.models.empty() && fs::is_directory(dir / "models"))  // a run still training, or stopped: its finished models
    for (const auto& entry : fs::directory_iterator(dir / "models"))
      if (std::ifstream m(entry.path() / "metrics.json"); m)
        run.models[entry.path().filename().string()] = Json::parse(m);
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

namespace {

// What differs between the runs' resolved configurations.
std::string differences(const std::vector<ComparedRun>& runs) {
  std::string html;
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

  return html;
}

// Seeds in numeric order: shorter first, as integers are.
struct SeedOrder {
  bool operator()(const std::string& a, const std::string& b) const {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  }
};
using SeedScores = std::map<std::string, double, SeedOrder>;  // seed -> a model's headline

// Runs whose settings are the same but for the seed, in the order they come.
struct SeedGroups {
  std::vector<std::map<std::string, std::string>> settings;
  std::vector<std::vector<const ComparedRun*>> runs;

  explicit SeedGroups(const std::vector<ComparedRun>& all) {
    for (const auto& r : all) {
      std::map<std::string, std::string> rest;
      for (const auto& [k, v] : r.config)
        if (k != "experiment.seed" && k != "experiment.name" && k != "experiment.description" &&
            k != "experiment.output_dir" && k.rfind("variants.", 0) != 0)
          rest[k] = v;
      auto it = std::find(settings.begin(), settings.end(), rest);
      if (it == settings.end()) {
        settings.push_back(rest);
        runs.emplace_back();
        it = settings.end() - 1;
      }
      runs[static_cast<std::size_t>(it - settings.begin())].push_back(&r);
    }
  }

  // A group is named by the settings in which it differs from the others.
  std::string name(std::size_t g) const {
    std::set<std::string> keys;
    for (const auto& s : settings)
      for (const auto& [k, v] : s) keys.insert(k);
    auto value = [](const std::map<std::string, std::string>& s, const std::string& k) {
      return s.count(k) ? s.at(k) : std::string("(absent)");
    };
    std::vector<std::string> parts;
    for (const auto& k : keys) {
      std::set<std::string> values;
      for (const auto& s : settings) values.insert(value(s, k));
      if (values.size() > 1) parts.push_back(k + " = " + value(settings[g], k));
    }
    return parts.empty() ? std::string("all runs") : fmt::format("{}", fmt::join(parts, ", "));
  }

  SeedScores scores(std::size_t g, const std::string& model) const {
    SeedScores out;
    for (const auto* r : runs[g])
      if (r->models.contains(model))
        if (auto h = headline_of(r->models[model]))
          out[r->config.count("experiment.seed") ? r->config.at("experiment.seed") : ""] = *h;
    return out;
  }
};

double mean_of(const SeedScores& values) {
  double mean = 0;
  for (const auto& [seed, v] : values) mean += v / static_cast<double>(values.size());
  return mean;
}

// One setting's model across seeds: runs, mean, sample standard deviation, range, and against the
// first setting's scores (when given) the difference of means and the shared seeds where it is higher.
std::string spread_row(const std::string& setting, const std::string& model, const SeedScores& values,
                       const SeedScores* first) {
  const double mean = mean_of(values);
  double low = 1, high = 0, squares = 0;
  std::vector<std::string> seeds;
  for (const auto& [seed, v] : values) {
    low = std::min(low, v);
    high = std::max(high, v);
    squares += (v - mean) * (v - mean);
    seeds.push_back(seed);
  }
  std::string against;
  if (first && first->size() >= 2) {
    int paired = 0, higher = 0;
    for (const auto& [seed, v] : values)
      if (first->count(seed)) {
        ++paired;
        higher += v > first->at(seed);
      }
    against = fmt::format("{:+.4f}", mean - mean_of(*first)) +
              (paired ? fmt::format(", higher in {} of {} seeds", higher, paired) : "");
  }
  return fmt::format(
      "<tr><td>{}</td><td>{}</td><td>{} ({})</td><td><b>{}</b></td><td>{}</td><td>{}&ndash;{}</td><td>{}</td></tr>",
      escape(setting), escape(model), values.size(), escape(fmt::format("{}", fmt::join(seeds, ", "))), number(mean),
      number(std::sqrt(squares / static_cast<double>(values.size() - 1))), number(low), number(high), against);
}

// Runs that differ in their seed, grouped by the rest of their settings: per group and model, the
// headline's spread across seeds, and against the first group the difference. A difference between
// settings smaller than a setting's spread across seeds is no finding.
std::string seed_spread(const std::vector<ComparedRun>& runs) {
  std::set<std::string> seeds, model_names;
  for (const auto& r : runs) {
    seeds.insert(r.config.count("experiment.seed") ? r.config.at("experiment.seed") : "");
    for (const auto& [name, m] : r.models.items()) model_names.insert(name);
  }
  if (seeds.size() < 2) return "";
  const SeedGroups groups(runs);
  std::string rows;
  for (std::size_t g = 0; g < groups.runs.size(); ++g) {
    const std::string setting = groups.name(g);
    for (const auto& model : model_names) {
      const auto values = groups.scores(g, model);
      if (values.size() < 2) continue;
      const auto first = g > 0 ? groups.scores(0, model) : SeedScores();
      rows += spread_row(setting, model, values, g > 0 ? &first : nullptr);
    }
  }
  if (rows.empty()) return "";
  return "<h2>Across seeds</h2><p>Runs that differ in their seed, grouped by the rest of their settings: the "
         "headline's mean, standard deviation and range over the seeds, and against the first group the "
         "difference of means and the seeds where the model scored higher. A difference between settings smaller "
         "than their spread across seeds is no finding.</p><table><tr><th>settings</th><th>model</th><th>runs "
         "(seeds)</th><th>mean</th><th>standard deviation</th><th>range</th><th>against the first</th></tr>" +
         rows + "</table>";
}

// Every model of every run: headline and test-split numbers, a link to its run's report.
std::string model_table(const std::vector<ComparedRun>& runs, const fs::path& out) {
  std::string html;
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
  html += fmt::format("<h2>Models</h2><p>Headline: {}.</p>",
                      escape(what.empty() ? std::string("per-flow macro F1") : what));
  html +=
      "<table><tr><th>run</th><th>model</th><th>headline per-flow macro F1</th><th>validation per-flow macro F1</th>"
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
      html += fmt::format(
          "<tr><td>{}</td><td>{}{}{}{}</td><td>{}{}{}</td><td>{}</td><td>{}{}{}</td><td>{}</td><td>{}</td><td>{}</"
          "td><td>{}</td><td>{:.1f}</td>"
          "<td>{}</td><td>{:.0f}</td><td>{}</td></tr>",
          escape(r.label), escape(name), r.record.value("best_model", "") == name ? " (best)" : "",
          ensemble_note(m.value("members", Json::array()).size()), blend_note(m), top ? "<b>" : "", h ? number(*h) : "",
          top ? "</b>" : "", maybe(m, {"validation_per_flow", "macro_f1"}), f1 == best ? "<b>" : "", number(f1),
          f1 == best ? "</b>" : "", number(m["test"]["weighted_f1"].get<double>()),
          number(m["test"]["accuracy"].get<double>()), number(m["test_per_flow"]["macro_f1"].get<double>()),
          m["parameters"].get<std::uint64_t>(), m["training_seconds"].get<double>(),
          m["best_epoch"].get<std::int64_t>(), m["inference"]["throughput_samples_per_second"].get<double>(),
          fs::exists(r.dir / "report.html") && !ec ? fmt::format("<a href=\"{}\">run report</a>", escape(page.string()))
                                                   : "");
    }
  }
  html += "</table>";

  return html;
}

// Validation macro F1 per epoch: one chart per model name, one line per run.
std::string validation_curves(const std::vector<ComparedRun>& runs) {
  std::string html;
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

  return html;
}

// Per-class F1: a row per class, a column per (run, model).
std::string per_class_table(const std::vector<ComparedRun>& runs) {
  std::string html;
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
            cell = fmt::format("<span title=\"support {}\">{}</span>", c["support"].get<std::uint64_t>(),
                               number(c["f1"].get<double>()));
        html += "<td>" + cell + "</td>";
      }
      html += "</tr>";
    }
    html += "</table>";
  }
  return html;
}

// The runs: folder, status, start, dataset.
std::string run_table(const std::vector<ComparedRun>& runs) {
  std::string html;
  html += "<h2>Runs</h2><table><tr><th>run</th><th>folder</th><th>status</th><th>started</th><th>dataset</th></tr>";
  for (const auto& r : runs) {
    const Json& d = r.record.contains("dataset") ? r.record["dataset"] : Json::object();
    std::string dataset =
        d.contains("rows")
            ? fmt::format("{} classes, split by {}: {} / {} / {}", d.value("classes", 0), d.value("split", ""),
                          d["rows"].value("train", 0), d["rows"].value("validation", 0), d["rows"].value("test", 0))
            : "";
    html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", escape(r.label),
                        escape(fs::absolute(r.dir).lexically_normal().string()), escape(r.record.value("status", "")),
                        escape(r.record.value("started", "")), escape(dataset));
  }
  return html;
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
  html += fmt::format(
      "<h1>{}</h1><p>{} run{} compared: the test split's numbers of every model, what differs in their "
      "configurations, validation curves, and per-class F1.</p>",
      escape(title), runs.size(), runs.size() == 1 ? "" : "s");
  std::vector<std::string> leaking;
  for (const auto& r : runs)
    if (r.record.contains("dataset") && r.record["dataset"].value("leaks", false)) leaking.push_back(r.label);
  if (!leaking.empty())
    html += fmt::format(
        R"(<p class="warn"><b>Packet split</b> in {}: packets of one flow sit in training and test; their numbers overstate what the models do on new traffic and are not comparable with a flow split.</p>)",
        escape(fmt::format("{}", fmt::join(leaking, ", "))));
  html += differences(runs) + model_table(runs, out) + seed_spread(runs) + validation_curves(runs) +
          per_class_table(runs) + run_table(runs);
  html += "</table></body></html>\n";
  write_file_atomically(out, html);
}

}  // namespace trafficid::host
