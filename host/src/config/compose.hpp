// Step one of reading an experiment: the TOML document it is, composed from its file (or a
// resolved document), the `--set` overrides, one variant's values and a tuning trial's values.
// Step two, check_experiment (experiment.hpp), turns the document into a typed Experiment.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/diagnostics.hpp"
#include "trafficid/params.hpp"

namespace trafficid::host {

struct ComposedExperiment {
  toml::table document;                    // without [variants]; without [tune] for a trial
  std::vector<std::string> variant_names;  // the file's [variants], in order
  Json variants = Json::object();          // each variant's values by dotted path
};

// What to compose: with `variant`, that variant's values set; with `assignment` (dotted path ->
// value), a trial's values set and [tune] dropped; with `document`, that instead of the file's
// content and no overrides (a resolved config). nullopt when `diagnostics` got an error that
// stops here (not TOML, no such variant); Error only for a file that cannot be read.
struct CompositionRequest {
  std::filesystem::path file;
  std::vector<std::string> overrides;
  std::string variant;
  Json assignment;
  const toml::table* document = nullptr;
  const std::string* text = nullptr;  // the file's content as typed (the web page), read in its place
};
// An experiment's text as a TOML document (`file` names it in diagnostics); nullopt and an error
// when it is not TOML (or holds what TOML++ must not see: a NUL, a stray non-ASCII character).
std::optional<toml::table> parse_experiment_text(const std::string& text, const std::filesystem::path& file,
                                                 Diagnostics& diagnostics);
std::optional<ComposedExperiment> compose_experiment(const CompositionRequest& request, Diagnostics& diagnostics);

}  // namespace trafficid::host
