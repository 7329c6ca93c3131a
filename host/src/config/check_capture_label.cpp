// The checks of [capture], [label] and [features]: capture sources and their shorthands, the
// labeler and its class definitions, the feature extractor.
#include "config/section_checks.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <fmt/std.h>
#include <fstream>
#include <regex>
#include <optional>
#include <set>
#include <sstream>

#include "config/schema_check.hpp"

namespace trafficid::host::config_detail {

namespace fs = std::filesystem;

const std::vector<std::string> known_sections = {"experiment", "capture", "label", "features", "dataset", "evaluate",
                                                 "train",      "models",  "blend", "variants", "tune"};

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

bool is_section_key(const Schema& schema, const std::string& key) {
  return std::any_of(schema.begin(), schema.end(), [&](const ParamSpec& s) { return s.name == key; });
}

// One entry of SECTION.sources ("synth", "pcap:some/path") with its plugin's table checked; a
// 'plugin:value' entry sets the plugin's main parameter on top of its table.
std::optional<SourceSpec> check_source_entry(const toml::table& section, const std::string& name,
                                             const toml::node& entry, const std::string& path,
                                             const PluginInfo& plugin_info, const std::optional<std::string>& value,
                                             CheckContext& context) {
  auto& diags = context.diagnostics;
  const PluginInfo* plugin = &plugin_info;
  const std::string text = *entry.value<std::string>();
  const std::string& plugin_name = plugin->name;
  const auto* table_node = section.get(plugin_name);
  const toml::table* table = table_node ? table_node->as_table() : nullptr;
  const toml::source_region& where = table_node ? table_node->source() : entry.source();
  const std::string table_path = name + "." + plugin_name;
  if (!value) return SourceSpec{plugin, text, check_table(table, plugin->schema, table_path, where, context)};
  // 'plugin:value' sets the plugin's main parameter on top of its table.
  if (plugin->primary_param.empty()) {
    diags.error(entry.source(), path,
                fmt::format("{} takes no 'name:value' shorthand; set its parameters in [{}.{}]", plugin->label(), name,
                            plugin_name));
    return std::nullopt;
  }
  auto spec = std::find_if(plugin->schema.begin(), plugin->schema.end(),
                           [&](const ParamSpec& s) { return s.name == plugin->primary_param; });
  if (spec == plugin->schema.end()) {
    diags.error(entry.source(), path,
                fmt::format("{} names '{}' as its main parameter but does not declare it", plugin->label(),
                            plugin->primary_param));
    return std::nullopt;
  }
  Json params =
      check_table(table, plugin->schema, table_path, where, context, TableCheck{.handled_elsewhere = {spec->name}});
  auto shorthand = shorthand_table(*spec, *value);
  CheckContext at_entry{diags, context.base_dir, &entry.source()};
  Json v = check_value(*shorthand.get(spec->name), *spec, join_key_path(table_path, spec->name), at_entry);
  if (!v.is_null()) params[spec->name] = std::move(v);
  return SourceSpec{plugin, text, std::move(params)};
}

// The resolved sources name resolved paths ("pcap:../data" -> "pcap:/abs/data"), so the resolved
// config runs from any folder: a run's own (`run --resume`), a tuning trial's.
Json resolved_sources(const std::vector<SourceSpec>& out) {
  Json sources = Json::array();
  for (const auto& s : out) {
    auto [source_name, value] = split_source(s.instance);
    const auto* plugin = s.plugin;
    auto spec = std::find_if(plugin->schema.begin(), plugin->schema.end(),
                             [&](const ParamSpec& p) { return p.name == plugin->primary_param; });
    const bool is_path =
        spec != plugin->schema.end() && (spec->type == ParamType::path || spec->type == ParamType::path_list);
    if (value && is_path && s.params.contains(spec->name)) {
      const Json& v = s.params[spec->name];
      if (v.is_string()) value = v.get<std::string>();
      else if (v.is_array() && v.size() == 1 && v[0].is_string()) value = v[0].get<std::string>();
    }
    sources.push_back(value ? source_name + ":" + *value : source_name);
  }
  return sources;
}

// Keys of [capture] are its own settings or tables of capture plugin parameters.
void check_source_keys(const toml::table& section, const std::string& name, const Schema& schema,
                       const PluginRegistry& registry, Diagnostics& diags) {
  std::vector<std::string> candidates = registry.names(PluginKind::capture);
  for (const auto& s : schema) candidates.push_back(s.name);
  for (const auto& [key, node] : section) {
    std::string k(key.str());
    if (is_section_key(schema, k)) continue;
    const PluginInfo* plugin = registry.find(PluginKind::capture, k);
    if (!plugin)
      diags.error(
          key.source(), name + "." + k,
          fmt::format("unknown key: neither a [{}] setting nor a capture plugin", name) + did_you_mean(k, candidates));
    else if (!node.is_table())
      diags.error(node.source(), name + "." + k, fmt::format("expected a table of {} parameters", plugin->label()));
  }
}

// A section of capture sources ([capture], [evaluate]): its own settings (`schema`, `sources`
// among them), and tables of capture plugin parameters. Returns the resolved section (null when
// it is absent or not a table).
Json check_sources(const toml::table& doc, const std::string& name, const Schema& schema, bool required,
                   std::vector<SourceSpec>& out, const PluginRegistry& registry, CheckContext& context) {
  auto& diags = context.diagnostics;
  const toml::node* section_node = doc.get(name);
  const toml::table* section = section_node ? section_node->as_table() : nullptr;
  if (section_node && !section) {
    diags.error(section_node->source(), name, fmt::format("expected a table ([{}])", name));
    return nullptr;
  }
  if (!section) {
    if (required)
      diags.error(doc.source(), name, fmt::format("missing section [{}] (e.g. sources = [\"synth\"])", name));
    return nullptr;
  }
  auto capture_plugins = registry.names(PluginKind::capture);

  check_source_keys(*section, name, schema, registry, diags);
  Json section_resolved =
      check_table(section, schema, name, section->source(), context, TableCheck{.report_unknown = false});

  std::set<std::string> listed;
  if (const toml::array* sources = section->get_as<toml::array>("sources")) {
    std::size_t index = 0;
    for (const auto& entry : *sources) {
      auto path = fmt::format("{}.sources.{}", name, index++);
      if (!entry.is_string()) continue;  // reported by check_table
      auto text = *entry.value<std::string>();
      auto [plugin_name, value] = split_source(text);
      const PluginInfo* plugin = registry.find(PluginKind::capture, plugin_name);
      if (!plugin) {
        diags.error(entry.source(), path,
                    fmt::format("no capture plugin named '{}'{} (installed: {})", plugin_name,
                                did_you_mean(plugin_name, capture_plugins), fmt::join(capture_plugins, ", ")));
        continue;
      }
      listed.insert(plugin_name);
      if (auto spec = check_source_entry(*section, name, entry, path, *plugin, value, context))
        out.push_back(std::move(*spec));
    }
  }
  if (section_resolved.contains("sources") && section_resolved["sources"].size() == out.size())
    section_resolved["sources"] = resolved_sources(out);
  // Tables of plugins that no source uses are still checked, so a typo there is caught.
  for (const auto& [key, node] : *section) {
    std::string k(key.str());
    const PluginInfo* plugin = registry.find(PluginKind::capture, k);
    if (!plugin || !node.is_table() || listed.count(k)) continue;
    section_resolved[k] = check_table(node.as_table(), plugin->schema, name + "." + k, node.source(), context);
    diags.warning(key.source(), name + "." + k,
                  fmt::format("'{}' is configured but not listed in {}.sources", k, name));
  }
  // Each plugin's table with every default filled in. A 'plugin:value' source still overrides
  // its main parameter, so the resolved file runs exactly as this one did.
  for (const auto& s : out)
    if (!section_resolved.contains(s.plugin->name)) section_resolved[s.plugin->name] = s.params;
  return section_resolved;
}

void check_capture(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry,
                   CheckContext& context, Json& resolved) {
  Json section = check_sources(doc, "capture", capture_section_schema(), true, experiment.sources, registry, context);
  if (section.is_null()) return;
  experiment.max_packets = section.value("max_packets", std::uint64_t{0});
  resolved["capture"] = std::move(section);
}

// An optional section: nullptr when absent, or (with an error) when it is not a table.
const toml::table* optional_section(const toml::table& doc, const std::string& name, Diagnostics& diags) {
  const toml::node* node = doc.get(name);
  if (node && !node->is_table()) diags.error(node->source(), name, fmt::format("expected a table ([{}])", name));
  return node ? node->as_table() : nullptr;
}

// [label] and [features] hold host settings, a few extra keys, and tables of parameters for plugins
// of one kind: every other key is an error, with a suggestion.
void check_section_keys(const toml::table& section, const std::string& name, const Schema& host_schema,
                        const std::vector<std::string>& extra_keys, PluginKind kind, const PluginRegistry& registry,
                        Diagnostics& diags) {
  std::vector<std::string> candidates = registry.names(kind);
  for (const auto& s : host_schema) candidates.push_back(s.name);
  candidates.insert(candidates.end(), extra_keys.begin(), extra_keys.end());
  const std::string extras = extra_keys.empty() ? "" : fmt::format(", {},", fmt::join(extra_keys, ", "));
  for (const auto& [key, node] : section) {
    std::string k(key.str());
    bool host_key =
        std::any_of(host_schema.begin(), host_schema.end(), [&](const ParamSpec& s) { return s.name == k; });
    bool extra = std::find(extra_keys.begin(), extra_keys.end(), k) != extra_keys.end();
    if (host_key || extra || registry.find(kind, k)) continue;
    diags.error(key.source(), name + "." + k,
                fmt::format("unknown key: neither a [{}] setting{} nor a {} plugin", name, extras, to_string(kind)) +
                    did_you_mean(k, candidates));
  }
}

// The plugin a section names in `setting` (e.g. label.labeler), with its [SECTION.PLUGIN] table
// checked against its schema into `params`; nullptr (and an error) when none is installed.
const PluginInfo* chosen_plugin(const toml::table& section, const std::string& name, const std::string& setting,
                                const std::string& plugin_name, PluginKind kind, const PluginRegistry& registry,
                                CheckContext& context, Json& params) {
  const PluginInfo* plugin = registry.find(kind, plugin_name);
  if (!plugin) {
    auto installed = registry.names(kind);
    const toml::node* where = section.get(setting);
    context.diagnostics.error(where ? where->source() : section.source(), name + "." + setting,
                              fmt::format("no {} plugin named '{}'{} (installed: {})", to_string(kind), plugin_name,
                                          did_you_mean(plugin_name, installed), fmt::join(installed, ", ")));
    return nullptr;
  }
  const toml::node* table = section.get(plugin_name);
  params = check_table(table ? table->as_table() : nullptr, plugin->schema, name + "." + plugin_name,
                       table ? table->source() : section.source(), context);
  return plugin;
}

// [label.classes]: NAME tables (apps, masters, categories, patterns), or NAME = ["pattern", ...].
Json check_classes(const toml::table& section, CheckContext& context) {
  auto& diags = context.diagnostics;
  Json classes = Json::object();
  if (const toml::node* classes_node = section.get("classes")) {
    if (const toml::table* table = classes_node->as_table()) {
      for (const auto& [key, node] : *table) {
        std::string name(key.str());
        std::string path = "label.classes." + name;
        if (node.is_array()) {
          ParamSpec patterns = ParamSpec::list("patterns", ParamType::string_list, Json::array(), "");
          Json v = check_value(node, patterns, path, context);
          if (v.is_null()) continue;
          // The same resolved table as the long form, so that config.resolved.toml (which writes
          // the long form) resolves alike: a resumed run finds its dataset's config unchanged.
          classes[name] = check_table(nullptr, class_definition_schema(), path, node.source(), context);
          classes[name]["patterns"] = v;
        } else if (node.is_table()) {
          classes[name] = check_table(node.as_table(), class_definition_schema(), path, node.source(), context);
        } else {
          diags.error(node.source(), path,
                      "expected a table (apps, masters, categories, patterns) or a list of patterns");
        }
      }
    } else {
      diags.error(classes_node->source(), "label.classes", "expected a table of classes");
    }
  }
  return classes;
}

// [label.groups]: GROUP = ["Class", ...], each class in one group at most (into spec.group_of).
Json check_groups(const toml::table& section, LabelSpec& spec, CheckContext& context) {
  auto& diags = context.diagnostics;
  Json groups = Json::object();
  if (const toml::node* groups_node = section.get("groups")) {
    if (const toml::table* table = groups_node->as_table()) {
      for (const auto& [key, node] : *table) {
        std::string group(key.str());
        std::string path = "label.groups." + group;
        if (!node.is_array()) {
          diags.error(node.source(), path,
                      fmt::format("expected a list of class names, e.g. {} = [\"AnyDesk\", \"SSH\"]", group));
          continue;
        }
        Json v =
            check_value(node, ParamSpec::list("classes", ParamType::string_list, Json::array(), ""), path, context);
        if (v.is_null()) continue;
        groups[group] = v;
        for (const auto& member : v) {
          auto name = member.get<std::string>();
          auto [it, inserted] = spec.group_of.emplace(name, group);
          if (!inserted && it->second != group)
            diags.error(
                node.source(), path,
                fmt::format("class '{}' is already in group '{}': a class belongs to one group", name, it->second));
        }
      }
    } else {
      diags.error(groups_node->source(), "label.groups", "expected a table of groups (GROUP = [\"Class\", ...])");
    }
  }
  return groups;
}

void check_label(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry, CheckContext& context,
                 Json& resolved) {
  auto& diags = context.diagnostics;
  const toml::table* section = optional_section(doc, "label", diags);
  if (!section) return;
  check_section_keys(*section, "label", label_section_schema(), {"classes", "groups"}, PluginKind::labeler, registry,
                     diags);
  Json settings = check_table(section, label_section_schema(), "label", section->source(), context,
                              TableCheck{.report_unknown = false});
  LabelSpec spec;
  Json classes = check_classes(*section, context);
  spec.map = label_map_from_json(classes);
  settings["classes"] = classes;
  Json groups = check_groups(*section, spec, context);
  settings["groups"] = groups;
  if (settings.contains("class_from")) {
    spec.class_from = settings["class_from"].get<std::string>();
    spec.filename_regex = settings.value("filename_regex", "");
    spec.unmatched = settings.value("unmatched", "drop");
    spec.other_class = settings.value("other_class", "Other");
    spec.threads = settings.value("threads", 0u);
    spec.confidence = settings.value("confidence", std::vector<std::string>{});
    if (spec.class_from == "map" && spec.map.empty())
      diags.error(section->source(), "label.classes",
                  "class_from = \"map\" needs classes: add [label.classes] (e.g. YouTube = [\"*YouTube*\"]), "
                  "or take classes from folders with class_from = \"directory\"");
    if (spec.class_from == "regex") {
      const toml::node* where = section->get("filename_regex");
      try {
        std::regex r(spec.filename_regex);
        if (r.mark_count() < 1) throw std::regex_error(std::regex_constants::error_badrepeat);
      } catch (const std::regex_error&) {
        diags.error(where ? where->source() : section->source(), "label.filename_regex",
                    "needs a valid regular expression with a group for the class, e.g. \"^([A-Za-z]+)_\"");
      }
    }
  }
  std::string labeler = settings.value("labeler", "ndpi");
  spec.plugin =
      chosen_plugin(*section, "label", "labeler", labeler, PluginKind::labeler, registry, context, spec.params);
  if (spec.plugin) settings[labeler] = spec.params;
  resolved["label"] = settings;
  experiment.label = std::move(spec);
}

void check_features(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry,
                    CheckContext& context, Json& resolved) {
  auto& diags = context.diagnostics;
  const toml::table* section = optional_section(doc, "features", diags);
  if (!section) return;
  check_section_keys(*section, "features", features_section_schema(), {}, PluginKind::features, registry, diags);
  Json settings = check_table(section, features_section_schema(), "features", section->source(), context,
                              TableCheck{.report_unknown = false});
  FeatureStageSpec spec;
  spec.threads = settings.value("threads", 0u);
  std::string name = settings.value("extractor", "deep_packet");
  spec.plugin =
      chosen_plugin(*section, "features", "extractor", name, PluginKind::features, registry, context, spec.params);
  if (spec.plugin) settings[name] = spec.params;
  if (!experiment.label)
    diags.error(
        section->source(), "features",
        "features need labelled flows: add a [label] section (e.g. labeler = \"ndpi\", class_from = \"directory\")");
  resolved["features"] = settings;
  experiment.features = std::move(spec);
}

}  // namespace trafficid::host::config_detail
