// The web application's New run page: experiment files of the workspace read and saved (only
// experiments/NAME.toml), the shipped experiments (compiled in, /shipped/NAME), an experiment (its
// file, or the text the page holds, with --set overrides) checked with every diagnostic at its
// line, and the settings a form can offer for it: each parameter of the host's sections and of the
// plugins it uses, with type, range, choices, help and its value.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "trafficid/params.hpp"

namespace trafficid::host {

class PluginRegistry;
struct Experiment;

// The experiment as the page has it: `file` (inside the workspace; it need not exist when `text`
// is given, whose relative paths then count from the file's folder) and `overrides`.
struct ExperimentDraft {
  std::filesystem::path file;
  std::optional<std::string> text;
  std::vector<std::string> overrides;
};

struct CheckedDraft {
  bool valid = false;
  Json diagnostics = Json::array();        // [{file, line, column, key, message, warning}]
  std::shared_ptr<Experiment> experiment;  // when valid
};
CheckedDraft check_draft(const ExperimentDraft& draft, const PluginRegistry& registry);

// [{"section", "key" (dotted, as --set takes it), "type", "help", "default", "min", "max",
// "choices", "value"}] for an experiment that checked.
Json experiment_settings(const Experiment& experiment);

// The shipped experiments: [{"name", "url"}].
Json shipped_experiments();

// Writes `text` to WORKSPACE/experiments/NAME.toml (`relative` must name such a file); an existing
// file only with `overwrite`. Error says why not.
std::filesystem::path save_experiment(const std::filesystem::path& workspace, const std::string& relative,
                                      const std::string& text, bool overwrite);

}  // namespace trafficid::host
