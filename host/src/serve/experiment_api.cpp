#include "serve/experiment_api.hpp"

#include <fmt/format.h>
#include <regex>

#include "config/compose.hpp"
#include "config/diagnostics.hpp"
#include "config/experiment.hpp"
#include "runtime/plugin_registry.hpp"
#include "serve/web_assets.hpp"
#include "trafficid/error.hpp"
#include "trafficid/files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

Json diagnostics_json(const Diagnostics& diagnostics) {
  Json out = Json::array();
  for (const auto& d : diagnostics.sorted())
    out.push_back({{"file", d.file},
                   {"line", d.line},
                   {"column", d.column},
                   {"key", d.key_path},
                   {"message", d.message},
                   {"warning", d.warning}});
  return out;
}

// The value at a dotted path of the resolved config (null where there is none).
Json value_at(const Json& config, const std::string& section, const std::string& name) {
  const Json* at = &config;
  std::string path = section + "." + name;
  for (std::size_t start = 0; start <= path.size();) {
    const std::size_t dot = std::min(path.find('.', start), path.size());
    const std::string key = path.substr(start, dot - start);
    if (!at->is_object() || !at->contains(key)) return nullptr;
    at = &(*at)[key];
    start = dot + 1;
  }
  return *at;
}

// One group of the form: a section (or a plugin's table) and its parameters, nested tables left
// to the editor.
void add_group(Json& out, const std::string& title, const std::string& section, const Schema& schema,
               const Json& resolved) {
  Json fields = schema_json(schema);
  for (auto& f : fields) {
    if (f.contains("fields")) continue;
    const std::string name = f["name"];
    f["section"] = title;
    f["key"] = section + "." + name;
    f["value"] = value_at(resolved, section, name);
    out.push_back(std::move(f));
  }
}

}  // namespace

CheckedDraft check_draft(const ExperimentDraft& draft, const PluginRegistry& registry) {
  Diagnostics diagnostics;
  diagnostics.set_default_file(draft.file.string());
  std::optional<Experiment> experiment;
  if (draft.text) {
    CompositionRequest request{draft.file, draft.overrides, "", Json(), nullptr, &*draft.text};
    if (auto composed = compose_experiment(request, diagnostics))
      experiment = check_experiment(*composed, request, registry, diagnostics);
  } else {
    experiment = load_experiment(draft.file, draft.overrides, registry, diagnostics);
  }
  CheckedDraft out;
  out.valid = experiment.has_value();
  out.diagnostics = diagnostics_json(diagnostics);
  if (experiment) out.experiment = std::make_shared<Experiment>(std::move(*experiment));
  return out;
}

Json experiment_settings(const Experiment& e) {
  Json out = Json::array();
  add_group(out, "train", "train", train_section_schema(), e.resolved);
  add_group(out, "dataset", "dataset", dataset_section_schema(), e.resolved);
  for (const auto& m : e.models)
    add_group(out, fmt::format("model {} ({})", m.name, m.plugin->name), "models." + m.name, m.plugin->schema,
              e.resolved);
  if (e.features)
    add_group(out, "features " + e.features->plugin->name, "features." + e.features->plugin->name,
              e.features->plugin->schema, e.resolved);
  if (e.label)
    add_group(out, "labeler " + e.label->plugin->name, "label." + e.label->plugin->name, e.label->plugin->schema,
              e.resolved);
  std::vector<std::string> sources;  // two sources of one plugin share its table
  for (const auto& s : e.sources)
    if (std::find(sources.begin(), sources.end(), s.plugin->name) == sources.end()) {
      sources.push_back(s.plugin->name);
      add_group(out, "capture " + s.plugin->name, "capture." + s.plugin->name, s.plugin->schema, e.resolved);
    }
  return out;
}

Json shipped_experiments() {
  Json out = Json::array();
  for (const auto& asset : web_assets()) {
    const std::string path = asset.path;
    if (path.rfind("/shipped/", 0) == 0) out.push_back({{"name", path.substr(9)}, {"url", path}});
  }
  return out;
}

fs::path save_experiment(const fs::path& workspace, const std::string& relative, const std::string& text,
                         bool overwrite) {
  static const std::regex name(R"(experiments/[A-Za-z0-9_][A-Za-z0-9_.\-]*\.toml)");
  if (!std::regex_match(relative, name)) throw Error("path: experiments/NAME.toml (letters, digits, '_', '-', '.')");
  const fs::path file = workspace / relative;
  if (fs::exists(file) && !overwrite)
    throw Error(fmt::format("{} exists: open it to change it, or save under another name", relative));
  fs::create_directories(file.parent_path());
  write_file_atomically(file, text);
  return file;
}

}  // namespace trafficid::host
