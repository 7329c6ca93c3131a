#include "experiment.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <fmt/std.h>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

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

const Schema& label_section_schema() {
  static const Schema schema = {
      ParamSpec::string("labeler", "ndpi", "labeler plugin that names each flow's application"),
      ParamSpec::choice("class_from", "map", {"map", "directory", "regex"},
                        "a flow's class: from [label.classes] over its label, the folder of its capture, or "
                        "filename_regex's first group on the capture's file name"),
      ParamSpec::string("filename_regex", "", "with class_from = \"regex\": a regular expression whose first group is the class"),
      ParamSpec::choice("unmatched", "drop", {"drop", "other"},
                        "flows no class claims (with directory/regex: whose label the folder's class does not claim): "
                        "drop them, or put them in other_class"),
      ParamSpec::string("other_class", "Other", "the class of unmatched flows when unmatched = \"other\""),
      ParamSpec::list("confidence", ParamType::string_list, Json::array(),
                      "glob patterns of the labeler's confidence a flow needs to get a class (nDPI: [\"DPI*\"] "
                      "leaves out labels guessed by port or IP); the others are dropped, never Other (empty: any)"),
      ParamSpec::integer("threads", 1, "labelling threads, flows sharded by host pair (0: one per core)").range(0, 256),
  };
  return schema;
}

const Schema& features_section_schema() {
  static const Schema schema = {
      ParamSpec::string("extractor", "deep_packet", "features plugin: deep_packet, flow_stats, flow_packets, or your own"),
      ParamSpec::integer("threads", 0, "workers that label and extract side by side, flows sharded by host pair "
                                       "(0: one per core)").range(0, 256),
  };
  return schema;
}

const Schema& dataset_section_schema() {
  static const Schema schema = {
      ParamSpec::choice("split", "flow", {"flow", "file", "packet"},
                        "what stays together in one split: a flow (default), a capture file, or nothing "
                        "(\"packet\": leaks flows across splits; reports flag it)"),
      ParamSpec::list("fractions", ParamType::real_list, Json::array({0.8, 0.1, 0.1}),
                      "train, validation and test shares, stratified by class"),
      ParamSpec::choice("balance", "none", {"none", "undersample", "cap", "weights"},
                        "training split only: undersample every class to the smallest, cap each at "
                        "max_per_class, or keep all and write class weights for the loss"),
      ParamSpec::integer("max_per_class", 0, "with balance = \"cap\": training samples kept per class").range(0, std::nullopt),
      ParamSpec::choice("storage", "auto", {"auto", "dense", "ragged"},
                        "dense: [rows, *shape] arrays; ragged: only the bytes each sample has, padded when "
                        "loaded (auto: ragged for variable-length byte features)"),
      ParamSpec::boolean("deduplicate", true, "identical samples never on two sides: validation and test copies of a "
                                              "training sample (and test copies of a validation one) are excluded"),
      ParamSpec::integer("folds", 0, "with split = \"file\": group k-fold by capture file, K models of each model, "
                                     "fold f tested on its files, validated on the next fold's: every capture is tested "
                                     "once by a model that never saw it (0: one split)").range(0, 100),
      ParamSpec::boolean("reuse", true, "reuse the dataset of an earlier run with the same config and unchanged inputs"),
      ParamSpec::boolean("sync", false, "fsync the dataset before marking it complete (survives power loss)"),
      ParamSpec::string("directory", "", "where datasets are kept (default: OUTPUT_DIR/datasets)"),
  };
  return schema;
}

// Declared once, in the SDK, where models read it (train_settings()).
const Schema& train_section_schema() { return train_settings_schema(); }

const Schema& evaluate_section_schema() {
  static const Schema schema = {
      ParamSpec::list("sources", ParamType::string_list, Json::array(),
                      "captures no training sample may come from, labelled by [label]'s labeler with classes from "
                      "[label.classes]; every model is scored on them after training (pcap:other/captures/). A capture "
                      "that is also a training input, or a flow also in a training capture, is left out"),
      ParamSpec::integer("max_packets", 0, "stop reading the evaluation captures after this many packets (0: all)")
          .range(0, std::nullopt),
      ParamSpec::boolean("unknown", false, "also test the flows that no class claims (their label known to the "
                                           "labeler): how many a model forces into a class, how many it abstains on"),
      ParamSpec::choice("flow_decision", "logprob", {"logprob", "vote"},
                        "a flow's class from its samples' probabilities: the largest sum of log-probabilities, or "
                        "the majority of the samples' classes"),
      ParamSpec::list("early", ParamType::integer_list, Json::array({1, 2, 3, 4, 6, 8}),
                      "report per-flow macro F1 when deciding after this many samples (packet models) or packets "
                      "(flow models whose samples are packet sequences)"),
      ParamSpec::real("abstain_quantile", 0.05, "abstaining: a flow is left undecided when its confidence is below "
                                                "this quantile of the confidences of correct validation decisions")
          .range(0, 1),
  };
  return schema;
}

const Schema& tune_section_schema() {
  static const Schema schema = {
      ParamSpec::string("tuner", "random", "tuner plugin: grid, random, asha, or your own"),
      ParamSpec::choice("metric", "val.macro_f1", {"val.macro_f1", "val.accuracy", "val.weighted_f1", "val.loss"},
                        "what a trial is judged by, on the validation split (never the test split)"),
      ParamSpec::choice("direction", "auto", {"auto", "maximize", "minimize"}, "auto: minimize a loss, maximize the rest"),
      ParamSpec::integer("trials", 20, "trials proposed in all (retries of a failed trial do not count)").range(1, 1000000),
      ParamSpec::real("time_budget", 0, "seconds from the study's start after which no trial is started (0: none)")
          .range(0, std::nullopt),
      ParamSpec::integer("parallel", 1, "trials run at once by one `trafficid tune` process").range(1, 256),
      ParamSpec::integer("retries", 1, "times a failed (crashed) trial is run again before it counts as failed").range(0, 100),
      ParamSpec::choice("pruner", "none", {"none", "median"},
                        "median: stop a trial whose value is below the median of the others' at the same epoch "
                        "(with any tuner; asha prunes by itself)"),
      ParamSpec::integer("pruner_warmup", 1, "epochs before the median pruner judges a trial").range(0, 100000),
      ParamSpec::integer("pruner_min_trials", 3, "other trials that must have reached an epoch before the median pruner "
                                                 "judges at it").range(1, 100000),
      ParamSpec::string("study_dir", "", "the study's folder (default: OUTPUT_DIR/NAME-study); the same folder resumes"),
  };
  return schema;
}

toml::table Experiment::resolved_toml() const { return to_toml(resolved); }


std::string name_problem(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > 100) return fmt::format("is {} characters long (100 at most)", name.size());
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return fmt::format("'{}' must start with a letter or a digit", name);
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return fmt::format("'{}' holds {}: use only letters, digits, '-', '_' and '.' (it names a folder and a Slurm job)",
                         name, std::isprint(static_cast<unsigned char>(c)) ? fmt::format("'{}'", c) : fmt::format("the byte {:#04x}", static_cast<unsigned>(static_cast<unsigned char>(c))));
  return "";
}

namespace {

const std::vector<std::string> known_sections = {"experiment", "capture", "label", "features", "dataset", "evaluate",
                                                 "train", "models", "variants", "tune"};

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
    if (required) diags.error(doc.source(), name, fmt::format("missing section [{}] (e.g. sources = [\"synth\"])", name));
    return nullptr;
  }
  auto capture_plugins = registry.names(PluginKind::capture);

  // Keys of [capture] are its own settings or tables of capture plugin parameters.
  std::vector<std::string> candidates = capture_plugins;
  for (const auto& s : schema) candidates.push_back(s.name);
  for (const auto& [key, node] : *section) {
    std::string k(key.str());
    if (is_section_key(schema, k)) continue;
    const PluginInfo* plugin = registry.find(PluginKind::capture, k);
    if (!plugin)
      diags.error(key.source(), name + "." + k,
                  fmt::format("unknown key: neither a [{}] setting nor a capture plugin", name) + did_you_mean(k, candidates));
    else if (!node.is_table())
      diags.error(node.source(), name + "." + k, fmt::format("expected a table of {} parameters", plugin->label()));
  }
  Json section_resolved = check_table(section, schema, name, section->source(), context, TableCheck{.report_unknown = false});

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
      const auto* table_node = section->get(plugin_name);
      const toml::table* table = table_node ? table_node->as_table() : nullptr;
      const toml::source_region& where = table_node ? table_node->source() : entry.source();
      const std::string table_path = name + "." + plugin_name;
      if (!value) {
        out.push_back({plugin, text, check_table(table, plugin->schema, table_path, where, context)});
        continue;
      }
      // 'plugin:value' sets the plugin's main parameter on top of its table.
      if (plugin->primary_param.empty()) {
        diags.error(entry.source(), path,
                    fmt::format("{} takes no 'name:value' shorthand; set its parameters in [{}.{}]",
                                plugin->label(), name, plugin_name));
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
      out.push_back({plugin, text, std::move(params)});
    }
  }
  // The resolved sources name resolved paths ("pcap:../data" -> "pcap:/abs/data"), so the resolved
  // config runs from any folder: a run's own (`run --resume`), a tuning trial's.
  if (section_resolved.contains("sources") && section_resolved["sources"].size() == out.size()) {
    Json sources = Json::array();
    for (const auto& s : out) {
      auto [source_name, value] = split_source(s.instance);
      const auto* plugin = s.plugin;
      auto spec = std::find_if(plugin->schema.begin(), plugin->schema.end(),
                               [&](const ParamSpec& p) { return p.name == plugin->primary_param; });
      const bool is_path = spec != plugin->schema.end() && (spec->type == ParamType::path || spec->type == ParamType::path_list);
      if (value && is_path && s.params.contains(spec->name)) {
        const Json& v = s.params[spec->name];
        if (v.is_string()) value = v.get<std::string>();
        else if (v.is_array() && v.size() == 1 && v[0].is_string()) value = v[0].get<std::string>();
      }
      sources.push_back(value ? source_name + ":" + *value : source_name);
    }
    section_resolved["sources"] = sources;
  }
  // Tables of plugins that no source uses are still checked, so a typo there is caught.
  for (const auto& [key, node] : *section) {
    std::string k(key.str());
    const PluginInfo* plugin = registry.find(PluginKind::capture, k);
    if (!plugin || !node.is_table() || listed.count(k)) continue;
    section_resolved[k] = check_table(node.as_table(), plugin->schema, name + "." + k, node.source(), context);
    diags.warning(key.source(), name + "." + k, fmt::format("'{}' is configured but not listed in {}.sources", k, name));
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
    bool host_key = std::any_of(host_schema.begin(), host_schema.end(), [&](const ParamSpec& s) { return s.name == k; });
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

void check_label(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry,
                 CheckContext& context, Json& resolved) {
  auto& diags = context.diagnostics;
  const toml::table* section = optional_section(doc, "label", diags);
  if (!section) return;
  check_section_keys(*section, "label", label_section_schema(), {"classes", "groups"}, PluginKind::labeler, registry, diags);
  Json settings = check_table(section, label_section_schema(), "label", section->source(), context,
                              TableCheck{.report_unknown = false});
  LabelSpec spec;
  // The classes: [label.classes.NAME] tables, or NAME = ["pattern", ...] for patterns alone.
  Json classes = Json::object();
  if (const toml::node* classes_node = section->get("classes")) {
    if (const toml::table* table = classes_node->as_table()) {
      for (const auto& [key, node] : *table) {
        std::string name(key.str());
        std::string path = "label.classes." + name;
        if (node.is_array()) {
          ParamSpec patterns = ParamSpec::list("patterns", ParamType::string_list, Json::array(), "");
          Json v = check_value(node, patterns, path, context);
          if (!v.is_null()) classes[name] = Json{{"patterns", v}};
        } else if (node.is_table()) {
          classes[name] = check_table(node.as_table(), class_definition_schema(), path, node.source(), context);
        } else {
          diags.error(node.source(), path, "expected a table (apps, masters, categories, patterns) or a list of patterns");
        }
      }
    } else {
      diags.error(classes_node->source(), "label.classes", "expected a table of classes");
    }
  }
  spec.map = label_map_from_json(classes);
  settings["classes"] = classes;
  // The groups: GROUP = ["Class", ...], each class in one group at most.
  Json groups = Json::object();
  if (const toml::node* groups_node = section->get("groups")) {
    if (const toml::table* table = groups_node->as_table()) {
      for (const auto& [key, node] : *table) {
        std::string group(key.str());
        std::string path = "label.groups." + group;
        if (!node.is_array()) {
          diags.error(node.source(), path, fmt::format("expected a list of class names, e.g. {} = [\"AnyDesk\", \"SSH\"]", group));
          continue;
        }
        Json v = check_value(node, ParamSpec::list("classes", ParamType::string_list, Json::array(), ""), path, context);
        if (v.is_null()) continue;
        groups[group] = v;
        for (const auto& member : v) {
          auto name = member.get<std::string>();
          auto [it, inserted] = spec.group_of.emplace(name, group);
          if (!inserted && it->second != group)
            diags.error(node.source(), path, fmt::format("class '{}' is already in group '{}': a class belongs to one group", name, it->second));
        }
      }
    } else {
      diags.error(groups_node->source(), "label.groups", "expected a table of groups (GROUP = [\"Class\", ...])");
    }
  }
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
  spec.plugin = chosen_plugin(*section, "label", "labeler", labeler, PluginKind::labeler, registry, context, spec.params);
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
  spec.plugin = chosen_plugin(*section, "features", "extractor", name, PluginKind::features, registry, context, spec.params);
  if (spec.plugin) settings[name] = spec.params;
  if (!experiment.label)
    diags.error(section->source(), "features",
                "features need labelled flows: add a [label] section (e.g. labeler = \"ndpi\", class_from = \"directory\")");
  resolved["features"] = settings;
  experiment.features = std::move(spec);
}

void check_dataset(const toml::table& doc, Experiment& experiment, CheckContext& context, Json& resolved) {
  auto& diags = context.diagnostics;
  const toml::node* section_node = doc.get("dataset");
  if (section_node && !section_node->is_table()) {
    diags.error(section_node->source(), "dataset", "expected a table ([dataset])");
    return;
  }
  const toml::table* section = section_node ? section_node->as_table() : nullptr;
  if (section && !experiment.features)
    diags.warning(section->source(), "dataset", "[dataset] has no effect without a [features] section");
  Json settings = check_table(section, dataset_section_schema(), "dataset", section ? section->source() : doc.source(), context);
  auto& d = experiment.dataset;
  d.split = settings.value("split", "flow");
  d.balance = settings.value("balance", "none");
  d.max_per_class = settings.value("max_per_class", std::uint64_t{0});
  d.storage = settings.value("storage", "auto");
  d.deduplicate = settings.value("deduplicate", true);
  d.reuse = settings.value("reuse", true);
  d.sync = settings.value("sync", false);
  d.directory = settings.value("directory", "");
  d.folds = settings.value("folds", 0);
  if (d.folds == 1 || (d.folds > 1 && d.split != "file")) {
    const toml::node* f = section ? section->get("folds") : nullptr;
    diags.error(f ? f->source() : (section ? section->source() : doc.source()), "dataset.folds",
                d.folds == 1 ? std::string("one fold is no cross-validation: folds = 0 (one split) or at least 2")
                             : fmt::format("folds group capture files: set split = \"file\" (it is \"{}\")", d.split));
  }
  auto fractions = settings.value("fractions", std::vector<double>{0.8, 0.1, 0.1});
  const toml::node* where = section ? section->get("fractions") : nullptr;
  const auto& at = where ? where->source() : (section ? section->source() : doc.source());
  double sum = 0;
  for (double f : fractions) sum += f;
  if (fractions.size() != 3 || std::any_of(fractions.begin(), fractions.end(), [](double f) { return f < 0; }) ||
      std::abs(sum - 1.0) > 1e-6 || fractions[0] <= 0) {
    diags.error(at, "dataset.fractions",
                fmt::format("expected three shares for train, validation and test, none negative, adding up to 1 "
                            "(e.g. [0.8, 0.1, 0.1]); got {} adding up to {}", Json(fractions).dump(), sum));
  } else {
    d.fractions = {fractions[0], fractions[1], fractions[2]};
  }
  if (d.balance == "cap" && d.max_per_class == 0) {
    const toml::node* b = section ? section->get("balance") : nullptr;
    diags.error(b ? b->source() : at, "dataset.max_per_class", "balance = \"cap\" needs max_per_class > 0");
  }
  if (experiment.features) resolved["dataset"] = settings;
}

void check_evaluate(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry,
                    CheckContext& context, Json& resolved) {
  auto& diags = context.diagnostics;
  std::vector<SourceSpec> sources;
  Json section = check_sources(doc, "evaluate", evaluate_section_schema(), false, sources, registry, context);
  if (section.is_null()) section = check_table(nullptr, evaluate_section_schema(), "evaluate", doc.source(), context);
  EvaluateSpec spec;
  spec.sources = std::move(sources);
  spec.max_packets = section.value("max_packets", std::uint64_t{0});
  spec.unknown = section.value("unknown", false);
  spec.flow_decision = section.value("flow_decision", "logprob");
  spec.early = section.value("early", std::vector<std::int64_t>{});
  spec.abstain_quantile = section.value("abstain_quantile", 0.05);
  const toml::node* node = doc.get("evaluate");
  for (auto k : spec.early)
    if (k < 1) diags.error(node && node->as_table() && node->as_table()->get("early") ? node->as_table()->get("early")->source() : doc.source(),
                           "evaluate.early", fmt::format("decisions come after at least 1 sample, not {}", k));
  if (!spec.sources.empty()) {
    if (!experiment.features)
      diags.error(node->source(), "evaluate", "scoring unseen captures needs [features] (and [label]) to turn them into samples");
    else if (experiment.label && experiment.label->class_from != "map" && experiment.label->map.empty())
      diags.error(node->source(), "evaluate",
                  "evaluation captures get their classes from [label.classes] (folders may be named otherwise): define "
                  "the classes there, e.g. Zoom = [\"*Zoom*\"]");
    experiment.evaluate = spec;
  }
  experiment.evaluation = std::move(spec);
  if (node || experiment.features) resolved["evaluate"] = section;
}

void check_models(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry,
                  CheckContext& context, Json& resolved) {
  auto& diags = context.diagnostics;
  const toml::node* models_node = doc.get("models");
  const toml::node* train_node = doc.get("train");
  if (train_node && !train_node->is_table()) diags.error(train_node->source(), "train", "expected a table ([train])");
  if (!models_node) {
    if (train_node) diags.warning(train_node->source(), "train", "[train] has no effect without [models.NAME] tables");
    return;
  }
  const toml::table* models = models_node->as_table();
  if (!models) {
    diags.error(models_node->source(), "models", "expected tables of model plugins ([models.cnn], [models.mlp])");
    return;
  }
  auto names = registry.names(PluginKind::model);
  Json resolved_models = Json::object();
  for (const auto& [key, node] : *models) {
    std::string name(key.str());
    if (!node.is_table()) {
      diags.error(node.source(), "models." + name, "expected a table of the model's parameters ([models.NAME])");
      continue;
    }
    if (auto why = name_problem(name); !why.empty()) diags.error(key.source(), "models." + name, "a model's name " + why);
    // The plugin: `plugin = "..."` in the table, else the one the table is named after.
    const toml::table& table = *node.as_table();
    const toml::node* chosen = table.get("plugin");
    std::string plugin_name = name;
    if (chosen) {
      if (!chosen->is_string()) {
        diags.error(chosen->source(), "models." + name + ".plugin", "expected the name of a model plugin, e.g. \"cnn\"");
        continue;
      }
      plugin_name = chosen->as_string()->get();
    }
    const PluginInfo* plugin = registry.find(PluginKind::model, plugin_name);
    if (!plugin) {
      diags.error(chosen ? chosen->source() : key.source(), chosen ? "models." + name + ".plugin" : "models." + name,
                  fmt::format("no model plugin named '{}'{} (installed: {}){}", plugin_name, did_you_mean(plugin_name, names),
                              fmt::join(names, ", "),
                              chosen ? "" : "; a model named otherwise says which plugin it is: plugin = \"cnn\""));
      continue;
    }
    TableCheck options;
    options.extra_keys = {"plugin"};
    Json params = check_table(&table, plugin->schema, "models." + name, node.source(), context, options);
    resolved_models[name] = params;
    if (plugin_name != name) resolved_models[name]["plugin"] = plugin_name;
    experiment.models.push_back({plugin, std::move(params), name});
  }
  if (!experiment.features)
    diags.error(models->source(), "models", "models train on a dataset: add [features] (e.g. extractor = \"deep_packet\")");
  const toml::table* train = train_node ? train_node->as_table() : nullptr;
  experiment.train = check_table(train, train_section_schema(), "train", train ? train->source() : models->source(), context);
  experiment.train_settings = train_settings(experiment.train);  // checked above: every key typed or defaulted
  resolved["models"] = resolved_models;
  resolved["train"] = experiment.train;
}

// [tune]: settings, the tuner plugin and its table, and the search space's form (its values are
// checked against the plugins' schemas by load_experiment, which needs the whole experiment).
void check_tune(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry, CheckContext& context,
                Json& resolved, std::vector<toml::source_region>& dimension_sources) {
  auto& diags = context.diagnostics;
  const toml::table* section = optional_section(doc, "tune", diags);
  if (!section) return;
  check_section_keys(*section, "tune", tune_section_schema(), {"space"}, PluginKind::tuner, registry, diags);
  Json settings = check_table(section, tune_section_schema(), "tune", section->source(), context,
                              TableCheck{.report_unknown = false});
  TuneSpec spec;
  const std::string tuner = settings.value("tuner", "random");
  spec.plugin = chosen_plugin(*section, "tune", "tuner", tuner, PluginKind::tuner, registry, context, spec.params);
  if (spec.plugin) settings[tuner] = spec.params;
  Json space = Json::object();
  const toml::table* space_table = section->get("space") ? section->get("space")->as_table() : nullptr;
  if (!space_table || space_table->empty()) {
    diags.error(section->get("space") ? section->get("space")->source() : section->source(), "tune.space",
                "a study needs a search space: [tune.space] with e.g. \"train.lr\" = { loguniform = [1e-4, 1e-2] }");
  } else {
    for (const auto& [key, node] : *space_table) {
      const std::string path(key.str());
      const std::string where = "tune.space." + path;
      const toml::table* d = node.as_table();
      if (!d || d->size() != 1) {
        diags.error(node.source(), where,
                    "expected one distribution: { choice = [...] }, { uniform = [low, high] }, { loguniform = [low, high] } "
                    "or { int_uniform = [low, high] }");
        continue;
      }
      auto only = d->begin();  // its entries are proxies: keep the iterator, not a reference into one
      const toml::key& kind_key = only->first;
      const toml::node& values = only->second;
      const std::string kind(kind_key.str());
      const auto known = search_kind(kind);
      if (!known) {
        std::vector<std::string> kinds;
        for (auto k : {SearchDimension::Kind::choice, SearchDimension::Kind::uniform, SearchDimension::Kind::loguniform,
                       SearchDimension::Kind::int_uniform})
          kinds.push_back(to_string(k));
        diags.error(kind_key.source(), where + "." + kind,
                    fmt::format("unknown distribution{} ({})", did_you_mean(kind, kinds), fmt::join(kinds, ", ")));
        continue;
      }
      const toml::array* list = values.as_array();
      SearchDimension dim;
      dim.path = path;
      dim.kind = *known;
      if (dim.kind == SearchDimension::Kind::choice) {
        if (!list || list->empty()) {
          diags.error(values.source(), where + ".choice", "expected a non-empty list of values");
          continue;
        }
        for (const auto& v : *list) dim.choices.push_back(to_json(v));
      } else {
        const bool integers = dim.kind == SearchDimension::Kind::int_uniform;
        if (!list || list->size() != 2 || !(*list)[0].is_number() || !(*list)[1].is_number() ||
            (integers && (!(*list)[0].is_integer() || !(*list)[1].is_integer()))) {
          diags.error(values.source(), where + "." + kind,
                      fmt::format("expected [low, high], two {}", integers ? "integers" : "numbers"));
          continue;
        }
        dim.low = *(*list)[0].value<double>();
        dim.high = *(*list)[1].value<double>();
        if (!(dim.low < dim.high)) {
          diags.error(values.source(), where + "." + kind, fmt::format("low ({}) must be below high ({})", dim.low, dim.high));
          continue;
        }
        if (dim.kind == SearchDimension::Kind::loguniform && dim.low <= 0) {
          diags.error(values.source(), where + "." + kind, "loguniform needs low > 0");
          continue;
        }
      }
      space[path] = {{kind, to_json(values)}};
      spec.space.dimensions.push_back(std::move(dim));
      dimension_sources.push_back(node.source());
    }
  }
  settings["space"] = space;
  spec.metric = settings.value("metric", "val.macro_f1");
  const std::string direction = settings.value("direction", "auto");
  spec.space.maximize = direction == "maximize" || (direction == "auto" && spec.metric != "val.loss");
  spec.space.max_trials = settings.value("trials", std::uint64_t{20});
  spec.settings = settings;
  resolved["tune"] = settings;
  experiment.tune = std::move(spec);
}

// A variant's values as dotted paths: its nested tables are walked (`features.deep_packet.masking =
// "strict"` and `"features.deep_packet.masking" = "strict"` say the same); an inline table or a list
// is one value.
void variant_values(toml::table& table, const std::string& prefix, std::vector<std::pair<std::string, toml::node*>>& out) {
  for (auto& [k, v] : table) {
    std::string path = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (auto* t = v.as_table(); t && !t->is_inline()) variant_values(*t, path, out);
    else out.emplace_back(path, &v);
  }
}

struct TextProblem {
  std::size_t line = 1, column = 1;
  std::string message;
};

// The first byte of `text` that no TOML document may hold where it stands: NUL anywhere, a
// non-ASCII byte outside strings and comments. A small scan of TOML's strings and comments.
std::optional<TextProblem> toml_text_problem(std::string_view text) {
  enum class In { code, comment, basic, literal, multi_basic, multi_literal } in = In::code;
  std::size_t line = 1, line_start = 0;
  auto at = [&](std::size_t i, std::string message) {
    return TextProblem{line, i - line_start + 1, std::move(message)};
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\0') return at(i, "a NUL byte (is this a text file?)");
    if (c == '\n') {
      ++line;
      line_start = i + 1;
      if (in == In::comment || in == In::basic || in == In::literal) in = In::code;  // (a string cut by a newline: TOML++ says so)
      continue;
    }
    const auto starts = [&](std::string_view s) { return text.substr(i, s.size()) == s; };
    switch (in) {
      case In::code:
        if (static_cast<unsigned char>(c) >= 0x80)
          return at(i, "a non-ASCII character outside a string or a comment (quote it: \"...\")");
        if (c == '#') in = In::comment;
        else if (starts("\"\"\"")) in = In::multi_basic, i += 2;
        else if (starts("\'\'\'")) in = In::multi_literal, i += 2;
        else if (c == '"') in = In::basic;
        else if (c == '\'') in = In::literal;
        break;
      case In::comment: break;
      case In::basic:
        if (c == '\\') ++i;
        else if (c == '"') in = In::code;
        break;
      case In::literal:
        if (c == '\'') in = In::code;
        break;
      case In::multi_basic:
        if (c == '\\') ++i;
        else if (starts("\"\"\"")) in = In::code, i += 2;
        break;
      case In::multi_literal:
        if (starts("\'\'\'")) in = In::code, i += 2;
        break;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<Experiment> load_experiment(const fs::path& file, const std::vector<std::string>& overrides,
                                          const PluginRegistry& registry, Diagnostics& diagnostics, const std::string& variant,
                                          const Json& assignment, const toml::table* document) {
  diagnostics.set_default_file(file.string());
  toml::table doc;
  if (document) {
    doc = *document;
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error(fmt::format("cannot read {}", file.string()));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Refused before TOML++ sees them: a NUL byte (its parser asserts on one in a key) and a
    // non-ASCII character outside strings and comments (TOML++ 3.3.0's whitespace test reaches
    // __builtin_unreachable for many of them: undefined behaviour). TOML allows neither.
    if (auto problem = toml_text_problem(text)) {
      toml::source_region where;
      where.begin = {static_cast<toml::source_index>(problem->line), static_cast<toml::source_index>(problem->column)};
      where.end = where.begin;
      where.path = std::make_shared<const std::string>(file.string());
      diagnostics.error(where, "", "not valid TOML: " + problem->message);
      return std::nullopt;
    }
    try {
      doc = toml::parse(text, file.string());
    } catch (const toml::parse_error& e) {
      diagnostics.error(e.source(), "", fmt::format("not valid TOML: {}", e.description()));
      return std::nullopt;
    }
  }
  if (!document)  // a resolved config has had its overrides applied
    for (const auto& text : overrides) {
      try {
        apply_override(doc, text);
      } catch (const Error& e) {
        toml::source_region where;
        where.path = std::make_shared<const std::string>("--set");
        where.begin = {1, 1};
        diagnostics.error(where, text.substr(0, text.find('=')), e.what());
      }
    }

  // [variants]: every variant is checked as the experiment it makes; with `variant`, this is it.
  std::vector<std::string> variant_names;
  Json variants = Json::object();
  if (toml::node* variants_node = doc.get("variants")) {
    if (toml::table* table = variants_node->as_table()) {
      for (auto& [key, node] : *table) {
        std::string name(key.str());
        if (auto why = name_problem(name); !why.empty())
          diagnostics.error(node.source(), "variants." + name, "a variant's name " + why);
        if (toml::table* values = node.as_table()) {
          variant_names.push_back(name);
          std::vector<std::pair<std::string, toml::node*>> set;
          variant_values(*values, "", set);
          variants[name] = Json::object();
          for (const auto& [path, value] : set) variants[name][path] = to_json(*value);
          if (name != variant) continue;
          for (const auto& [path, value] : set) {
            toml::source_region where = value->source();
            try {
              set_at_path(doc, path, *value, "variants." + name);
            } catch (const Error& e) {
              diagnostics.error(where, "variants." + name + "." + path, e.what());
            }
          }
        } else {
          diagnostics.error(node.source(), "variants." + name,
                            "expected a table of the values this variant sets, e.g. [variants.strict] "
                            "features.deep_packet.masking = \"strict\"");
        }
      }
    } else {
      diagnostics.error(variants_node->source(), "variants", "expected tables: [variants.NAME], one per variant");
    }
    if (!variant.empty() && !variants.contains(variant)) {
      diagnostics.error(variants_node->source(), "variants", fmt::format("no variant '{}'{}", variant, did_you_mean(variant, variant_names)));
      return std::nullopt;
    }
    doc.erase("variants");
  } else if (!variant.empty()) {
    diagnostics.error(doc.source(), "variants", fmt::format("no variant '{}': the experiment has no [variants]", variant));
    return std::nullopt;
  }
  // A tuning trial's values, each parsed as TOML from its JSON text under the name "tune.space" (the
  // caller maps problems found there to the space's own lines).
  if (!assignment.is_null()) {
    for (const auto& [path, value] : assignment.items()) {
      toml::table holder;
      Json wrapped = Json::object();
      wrapped["value"] = value;
      std::ostringstream text;
      text << to_toml(wrapped);
      try {
        holder = toml::parse(text.str(), std::string_view("tune.space"));
        set_at_path(doc, path, *holder.get("value"), "tune.space");
      } catch (const toml::parse_error& e) {
        diagnostics.error(e.source(), path, fmt::format("cannot set {}: {}", value.dump(), e.description()));
      } catch (const Error& e) {
        toml::source_region where;
        where.path = std::make_shared<const std::string>("tune.space");
        where.begin = {1, 1};
        diagnostics.error(where, path, e.what());
      }
    }
    doc.erase("tune");
  }
  if (variant.empty() && assignment.is_null())
    for (const auto& name : variant_names) {
      Diagnostics of_variant;
      load_experiment(file, overrides, registry, of_variant, name);
      diagnostics.merge(of_variant);
    }

  Experiment experiment;
  experiment.file = fs::absolute(file);
  experiment.variant = variant;
  if (variant.empty()) experiment.variant_names = variant_names;
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
  check_label(doc, experiment, registry, context, resolved);
  check_features(doc, experiment, registry, context, resolved);
  check_dataset(doc, experiment, context, resolved);
  check_evaluate(doc, experiment, registry, context, resolved);
  check_models(doc, experiment, registry, context, resolved);
  std::vector<toml::source_region> dimension_sources;
  check_tune(doc, experiment, registry, context, resolved, dimension_sources);
  if (experiment.tune && !variant_names.empty())
    diagnostics.error(doc.get("tune")->source(), "tune",
                      "a study tunes one experiment: remove [variants] (or tune each variant's values in tune.space)");
  if (experiment.tune && experiment.models.size() != 1)
    diagnostics.error(doc.get("tune")->source(), "tune",
                      fmt::format("a study tunes one model and this experiment trains {}: keep one [models.NAME], or choose "
                                  "between models in the space (\"models\" = {{ choice = [{{ cnn = {{}} }}, {{ mlp = {{}} }}] }})",
                                  experiment.models.size()));
  // Every value the space can give, set in the resolved experiment (as a trial will be) and
  // checked there: a mistake is reported at the space's line, before anything runs.
  const bool only_space_errors = std::all_of(diagnostics.all().begin(), diagnostics.all().end(), [](const Diagnostic& d) {
    return d.warning || d.key_path.rfind("tune.space.", 0) == 0;
  });
  if (experiment.tune && only_space_errors) {
    Json base = resolved;
    base.erase("tune");
    const toml::table base_doc = to_toml(base);
    for (std::size_t i = 0; i < experiment.tune->space.dimensions.size(); ++i) {
      const auto& d = experiment.tune->space.dimensions[i];
      std::vector<Json> candidates = d.choices;
      if (d.kind == SearchDimension::Kind::int_uniform) candidates = {static_cast<std::int64_t>(d.low), static_cast<std::int64_t>(d.high)};
      else if (d.kind != SearchDimension::Kind::choice) candidates = {d.low, d.high};
      std::set<std::string> reported;  // a problem that every value has is told once
      for (const auto& value : candidates) {
        Diagnostics of_value;
        load_experiment(file, overrides, registry, of_value, "", Json{{d.path, value}}, &base_doc);
        Diagnostics remapped;
        for (const auto& problem : of_value.all()) {
          if (problem.warning || !reported.insert(problem.key_path + "\n" + problem.message).second) continue;
          toml::source_region where = dimension_sources[i];
          remapped.error(where, "tune.space." + d.path,
                         fmt::format("with {} = {}: {}{}", d.path, value.dump(), problem.key_path.empty() ? "" : problem.key_path + ": ",
                                     problem.message));
        }
        diagnostics.merge(remapped);
      }
    }
  }

  // The name becomes a folder (OUTPUT_DIR/NAME-TIME) and a Slurm job name: a restricted set of characters.
  if (variant.empty() && assignment.is_null()) {
    if (const toml::node* name = doc.at_path("experiment.name").node(); name && name->is_string()) {
      if (auto why = name_problem(name->as_string()->get()); !why.empty())
        diagnostics.error(name->source(), "experiment.name", "the experiment's name " + why);
    } else if (auto why = name_problem(file.stem().string()); !why.empty()) {
      diagnostics.error(doc.source(), "experiment.name",
                        fmt::format("no experiment.name, and the file's name {}: set experiment.name", why));
    }
  }
  if (diagnostics.has_errors()) return std::nullopt;
  auto& exp = resolved["experiment"];
  if (exp["name"].get<std::string>().empty()) exp["name"] = file.stem().string();
  experiment.name = exp["name"].get<std::string>();
  experiment.seed = exp["seed"].get<std::int64_t>();
  experiment.output_dir = exp["output_dir"].get<std::string>();
  if (experiment.dataset.directory.empty()) experiment.dataset.directory = experiment.output_dir / "datasets";
  if (variant.empty() && !variants.empty()) resolved["variants"] = variants;
  if (experiment.tune) {
    experiment.tune->space.seed = static_cast<std::uint64_t>(experiment.seed);
    experiment.tune->space.max_steps = experiment.train_settings.epochs;
  }
  experiment.resolved = std::move(resolved);
  return experiment;
}

}  // namespace trafficid::host
