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

// ---- A tuning study (`trafficid tune`): STUDY_DIR/report.html. ----

void write_study_report(const fs::path& study_dir, const StudyState& state) {
  const auto& h = state.header;
  std::map<std::string, int> counts;
  for (const auto& [id, t] : state.trials) ++counts[t.status];
  std::string html = page_head("trafficid study: " + h.name);
  html += fmt::format(
      "<h1>trafficid study: {}</h1><p>Tuner <b>{}</b> {}, {} {} on the validation split (the test split is "
      "never looked at), {} trials budgeted; {} done, {} pruned, {} failed, {} running, {} waiting.</p>",
      escape(h.name), escape(h.tuner), escape(h.tuner_params.dump()), h.space.maximize ? "maximizing" : "minimizing",
      escape(h.metric), h.trials, counts["done"], counts["pruned"], counts["failed"], counts["running"],
      counts["waiting"]);
  const auto best = state.best_trial();
  if (best) {
    const auto& b = state.trials.at(best);
    html += fmt::format("<h2>Best: trial {}, {} {}</h2><table><tr><th>setting</th><th>value</th></tr>", best,
                        escape(h.metric), number(*b.value));
    for (const auto& [path, value] : b.assignment.items())
      html += fmt::format("<tr><td>{}</td><td>{}</td></tr>", escape(path), escape(value.dump()));
    html += "</table><p><a href=\"best.toml\">best.toml</a> is its experiment, ready to run: <code>trafficid run " +
            escape((study_dir / "best.toml").string()) + "</code> trains it and tests it on the test split.</p>";
  }
  // Optimisation history: every trial's value, and the best so far.
  Series values{"trial value", palette[0], {}}, pruned{"pruned (best reached)", palette[3], {}},
      best_so_far{"best so far", palette[2], {}};
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
                        t.value ? (id == best ? "<b>" + number(*t.value) + "</b>" : number(*t.value)) : "",
                        t.reports.size(), t.attempts);
    for (const auto& d : h.space.dimensions)
      html += "<td>" + escape(t.assignment.contains(d.path) ? t.assignment[d.path].dump() : "") + "</td>";
    html += fmt::format("<td>{:.1f}</td><td>{}</td><td>{}</td></tr>", t.seconds, escape(t.worker), escape(t.error));
  }
  html += "</table><h2>Search space</h2><table><tr><th>setting</th><th>distribution</th></tr>";
  for (const auto& d : h.space.dimensions) {
    std::string what = d.kind == SearchDimension::Kind::choice
                           ? "choice " + Json(d.choices).dump()
                           : fmt::format("{} [{}, {}]", to_string(d.kind), d.low, d.high);
    html += fmt::format("<tr><td>{}</td><td>{}</td></tr>", escape(d.path), escape(what));
  }
  html += "</table></body></html>\n";
  write_file_atomically(study_dir / "report.html", html);
}

}  // namespace trafficid::host
