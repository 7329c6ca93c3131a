#include "experiment.hpp"

#include <fmt/format.h>
#include <fmt/std.h>
#include <set>

#include "schema_check.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

const Schema& experiment_section_schema() {
  static const Schema schema = {
      ParamSpec::string("name", "", "name of the experiment; run folders are named after it (default: the file's name)"),
      ParamSpec::string("description", "", "what the experiment is for"),
      ParamSpec::integer("seed", 1, "seed of every random choice in the run (splits, initialisation, generators)")
          .range(0, 9.0e15),
      ParamSpec::string("output_dir", "runs", "folder receiving one run folder per run (relative to the working directory)"),
  };
  return schema;
}

const Schema& capture_section_schema() {
  static const Schema schema = {
      ParamSpec::list("sources", ParamType::string_list, nullptr,
                      "capture sources: plugin names, or 'plugin:value' to set the plugin's main parameter "
                      "(pcap:captures/, live:eth0)")
          .required(),
      ParamSpec::integer("max_packets", 0, "stop after this many packets in all (0: read everything)").range(0, std::nullopt),
  };
  return schema;
}

toml::table Experiment::resolved_toml() const { return to_toml(resolved); }

namespace {

const std::vector<std::string> known_sections = {"experiment", "capture"};

// Splits "pcap:some/path" into plugin name and value.
std::pair<std::string, std::optional<std::string>> split_source(const std::string& text) {
  auto colon = text.find(':');
  if (colon == std::string::npos) return {text, std::nullopt};
  return {text.substr(0, colon), text.substr(colon + 1)};
}

// The shorthand value as a TOML node of the primary parameter's type (a string, a one-entry
// list of strings, or an integer).
toml::table shorthand_table(const ParamSpec& spec, const std::string& value) {
  toml::table t;
  if (spec.type == ParamType::string_list || spec.type == ParamType::path_list) {
    toml::array a;
    a.push_back(value);
    t.insert(spec.name, std::move(a));
  } else if (spec.type == ParamType::integer) {
    try {
      std::size_t used = 0;
      auto n = std::stoll(value, &used);
      if (used == value.size()) t.insert(spec.name, static_cast<std::int64_t>(n));
      else t.insert(spec.name, value);
    } catch (...) {
      t.insert(spec.name, value);
    }
  } else {
    t.insert(spec.name, value);
  }
  return t;
}

bool is_section_key(const std::string& key) {
  const auto& schema = capture_section_schema();
  return std::any_of(schema.begin(), schema.end(), [&](const ParamSpec& s) { return s.name == key; });
}

void check_capture(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry,
                   CheckContext& context, Json& resolved) {
  auto& diags = context.diagnostics;
  const toml::node* section_node = doc.get("capture");
  const toml::table* section = section_node ? section_node->as_table() : nullptr;
  if (section_node && !section) {
    diags.error(section_node->source(), "capture", "expected a table ([capture])");
    return;
  }
  if (!section) {
    diags.error(doc.source(), "capture", "missing section [capture] (e.g. sources = [\"synth\"])");
    return;
  }
  auto capture_plugins = registry.names(PluginKind::capture);

  // Keys of [capture] are its own settings or tables of capture plugin parameters.
  std::vector<std::string> candidates = capture_plugins;
  for (const auto& s : capture_section_schema()) candidates.push_back(s.name);
  for (const auto& [key, node] : *section) {
    std::string k(key.str());
    if (is_section_key(k)) continue;
    const PluginInfo* plugin = registry.find(PluginKind::capture, k);
    if (!plugin)
      diags.error(key.source(), "capture." + k,
                  "unknown key: neither a [capture] setting nor a capture plugin" + did_you_mean(k, candidates));
    else if (!node.is_table())
      diags.error(node.source(), "capture." + k, fmt::format("expected a table of {} parameters", plugin->label()));
  }
  Json section_resolved = check_table(section, capture_section_schema(), "capture", section->source(), context,
                                      TableCheck{.report_unknown = false});
  experiment.max_packets = section_resolved.value("max_packets", std::uint64_t{0});

  std::set<std::string> listed;
  if (const toml::array* sources = section->get_as<toml::array>("sources")) {
    std::size_t index = 0;
    for (const auto& entry : *sources) {
      auto path = fmt::format("capture.sources.{}", index++);
      if (!entry.is_string()) continue;  // reported by check_table
      auto text = *entry.value<std::string>();
      auto [name, value] = split_source(text);
      const PluginInfo* plugin = registry.find(PluginKind::capture, name);
      if (!plugin) {
        diags.error(entry.source(), path,
                    fmt::format("no capture plugin named '{}'{} (installed: {})", name,
                                did_you_mean(name, capture_plugins), fmt::join(capture_plugins, ", ")));
        continue;
      }
      listed.insert(name);
      const auto* table_node = section->get(name);
      const toml::table* table = table_node ? table_node->as_table() : nullptr;
      const toml::source_region& where = table_node ? table_node->source() : entry.source();
      const std::string table_path = "capture." + name;
      if (!value) {
        experiment.sources.push_back({plugin, text, check_table(table, plugin->schema, table_path, where, context)});
        continue;
      }
      // 'plugin:value' sets the plugin's main parameter on top of its table.
      if (plugin->primary_param.empty()) {
        diags.error(entry.source(), path,
                    fmt::format("{} takes no 'name:value' shorthand; set its parameters in [capture.{}]",
                                plugin->label(), name));
        continue;
      }
      auto spec = std::find_if(plugin->schema.begin(), plugin->schema.end(),
                               [&](const ParamSpec& s) { return s.name == plugin->primary_param; });
      if (spec == plugin->schema.end()) {
        diags.error(entry.source(), path, fmt::format("{} names '{}' as its main parameter but does not declare it",
                                                      plugin->label(), plugin->primary_param));
        continue;
      }
      Json params = check_table(table, plugin->schema, table_path, where, context,
                                TableCheck{.handled_elsewhere = {spec->name}});
      auto shorthand = shorthand_table(*spec, *value);
      CheckContext at_entry{diags, context.base_dir, &entry.source()};
      Json v = check_value(*shorthand.get(spec->name), *spec, join_key_path(table_path, spec->name), at_entry);
      if (!v.is_null()) params[spec->name] = std::move(v);
      experiment.sources.push_back({plugin, text, std::move(params)});
    }
  }
  // Tables of plugins that no source uses are still checked, so a typo there is caught.
  for (const auto& [key, node] : *section) {
    std::string k(key.str());
    const PluginInfo* plugin = registry.find(PluginKind::capture, k);
    if (!plugin || !node.is_table() || listed.count(k)) continue;
    section_resolved[k] = check_table(node.as_table(), plugin->schema, "capture." + k, node.source(), context);
    diags.warning(key.source(), "capture." + k, fmt::format("'{}' is configured but not listed in capture.sources", k));
  }
  // Each plugin's table with every default filled in. A 'plugin:value' source still overrides
  // its main parameter, so the resolved file runs exactly as this one did.
  for (const auto& s : experiment.sources)
    if (!section_resolved.contains(s.plugin->name)) section_resolved[s.plugin->name] = s.params;
  resolved["capture"] = std::move(section_resolved);
}

}  // namespace

std::optional<Experiment> load_experiment(const fs::path& file, const std::vector<std::string>& overrides,
                                          const PluginRegistry& registry, Diagnostics& diagnostics) {
  diagnostics.set_default_file(file.string());
  toml::table doc;
  try {
    doc = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    diagnostics.error(e.source(), "", fmt::format("not valid TOML: {}", e.description()));
    return std::nullopt;
  }
  for (const auto& assignment : overrides) {
    try {
      apply_override(doc, assignment);
    } catch (const Error& e) {
      toml::source_region where;
      where.path = std::make_shared<const std::string>("--set");
      where.begin = {1, 1};
      diagnostics.error(where, assignment.substr(0, assignment.find('=')), e.what());
    }
  }

  Experiment experiment;
  experiment.file = fs::absolute(file);
  CheckContext context{diagnostics, experiment.file.parent_path()};
  Json resolved = Json::object();

  for (const auto& [key, node] : doc) {
    std::string k(key.str());
    if (std::find(known_sections.begin(), known_sections.end(), k) == known_sections.end())
      diagnostics.error(key.source(), k, "unknown section" + did_you_mean(k, known_sections));
  }
  const toml::node* exp_node = doc.get("experiment");
  if (exp_node && !exp_node->is_table()) {
    diagnostics.error(exp_node->source(), "experiment", "expected a table ([experiment])");
  } else {
    resolved["experiment"] = check_table(exp_node ? exp_node->as_table() : nullptr, experiment_section_schema(),
                                         "experiment", doc.source(), context);
  }
  check_capture(doc, experiment, registry, context, resolved);

  if (diagnostics.has_errors()) return std::nullopt;
  auto& exp = resolved["experiment"];
  if (exp["name"].get<std::string>().empty()) exp["name"] = file.stem().string();
  experiment.name = exp["name"].get<std::string>();
  experiment.seed = exp["seed"].get<std::int64_t>();
  experiment.output_dir = exp["output_dir"].get<std::string>();
  experiment.resolved = std::move(resolved);
  return experiment;
}

}  // namespace trafficid::host
