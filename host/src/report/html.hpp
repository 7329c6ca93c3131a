// The pieces the report pages are made of: escaping, SVG line charts and confusion matrices, the
// page head and style, and a model's headline, per-class table and early-decision chart.
// Internal to host/src/report.
#pragma once
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "trafficid/params.hpp"

namespace trafficid::host::html {

// Colours of chart series, in order.
inline constexpr const char* palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

struct Series {
  std::string name, color;
  std::vector<std::pair<double, double>> points;
};

std::string escape(const std::string& text);
std::string line_chart(const std::string& title, const std::vector<Series>& series, bool unit_range,
                       const std::string& x_label = "epoch", bool legend = true, bool lines = true);
std::string confusion_chart(const Json& confusion, const std::vector<std::string>& names);
std::string page_head(const std::string& title);
std::string number(double v);
std::string maybe(const Json& m, std::initializer_list<const char*> path);
std::optional<double> headline_of(const Json& m);
// After a model's name: "ensemble of N" when its probabilities are the mean of N > 1 members.
std::string ensemble_note(std::size_t members);
// A blend's models ([blend]), "A, B", escaped, from its metrics' or scores' "blend"; empty for
// another model. blend_note: after its name, "mean of A, B".
std::string blend_models(const Json& m);
std::string blend_note(const Json& m);
std::string headline_what(const Json& models);
std::string early_chart(const Json& m);
std::string class_table(const Json& m);

}  // namespace trafficid::host::html
