// The checks of [dataset], [evaluate], [models] and [tune].
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
  Json settings =
      check_table(section, dataset_section_schema(), "dataset", section ? section->source() : doc.source(), context);
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
                            "(e.g. [0.8, 0.1, 0.1]); got {} adding up to {}",
                            Json(fractions).dump(), sum));
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
    if (k < 1)
      diags.error(node && node->as_table() && node->as_table()->get("early") ? node->as_table()->get("early")->source()
                                                                             : doc.source(),
                  "evaluate.early", fmt::format("decisions come after at least 1 sample, not {}", k));
  if (!spec.sources.empty()) {
    if (!experiment.features)
      diags.error(node->source(), "evaluate",
                  "scoring unseen captures needs [features] (and [label]) to turn them into samples");
    else if (experiment.label && experiment.label->class_from != "map" && experiment.label->map.empty())
      diags.error(node->source(), "evaluate",
                  "evaluation captures get their classes from [label.classes] (folders may be named otherwise): define "
                  "the classes there, e.g. Zoom = [\"*Zoom*\"]");
    experiment.evaluate = spec;
  }
  experiment.evaluation = std::move(spec);
  if (node || experiment.features) resolved["evaluate"] = section;
}

void check_models(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry, CheckContext& context,
                  Json& resolved) {
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
    if (auto why = name_problem(name); !why.empty())
      diags.error(key.source(), "models." + name, "a model's name " + why);
    // The plugin: `plugin = "..."` in the table, else the one the table is named after.
    const toml::table& table = *node.as_table();
    const toml::node* chosen = table.get("plugin");
    std::string plugin_name = name;
    if (chosen) {
      if (!chosen->is_string()) {
        diags.error(chosen->source(), "models." + name + ".plugin",
                    "expected the name of a model plugin, e.g. \"cnn\"");
        continue;
      }
      plugin_name = chosen->as_string()->get();
    }
    const PluginInfo* plugin = registry.find(PluginKind::model, plugin_name);
    if (!plugin) {
      diags.error(chosen ? chosen->source() : key.source(), chosen ? "models." + name + ".plugin" : "models." + name,
                  fmt::format("no model plugin named '{}'{} (installed: {}){}", plugin_name,
                              did_you_mean(plugin_name, names), fmt::join(names, ", "),
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
    diags.error(models->source(), "models",
                "models train on a dataset: add [features] (e.g. extractor = \"deep_packet\")");
  const toml::table* train = train_node ? train_node->as_table() : nullptr;
  experiment.train =
      check_table(train, train_section_schema(), "train", train ? train->source() : models->source(), context);
  experiment.train_settings = train_settings(experiment.train);  // checked above: every key typed or defaulted
  if (experiment.train.value("ensemble", 1) > 1 && experiment.dataset.folds > 0) {
    const toml::node* e = train ? train->get("ensemble") : nullptr;
    diags.error(e ? e->source() : models->source(), "train.ensemble",
                fmt::format("ensemble = {} with dataset.folds = {} would train an ensemble per fold: set "
                            "train.ensemble = 1 or dataset.folds = 0",
                            experiment.train.value("ensemble", 1), experiment.dataset.folds));
  }
  resolved["models"] = resolved_models;
  resolved["train"] = experiment.train;
}

void check_blend(const toml::table& doc, Experiment& experiment, CheckContext& context, Json& resolved) {
  auto& diags = context.diagnostics;
  const toml::table* section = optional_section(doc, "blend", diags);
  if (!section) return;
  Json settings = check_table(section, blend_section_schema(), "blend", section->source(), context);
  BlendSpec blend;
  blend.name = settings.value("name", "blend");
  blend.models = settings.value("models", std::vector<std::string>{});
  auto at = [&](const char* key) { return section->get(key) ? section->get(key)->source() : section->source(); };
  if (auto why = name_problem(blend.name); !why.empty()) diags.error(at("name"), "blend.name", "a blend's name " + why);
  std::vector<std::string> names;
  for (const auto& m : experiment.models) names.push_back(m.name);
  if (std::find(names.begin(), names.end(), blend.name) != names.end())
    diags.error(at("name"), "blend.name",
                fmt::format("'{}' is also a [models.{}]: name the blend otherwise (blend.name = \"...\")", blend.name,
                            blend.name));
  std::set<std::string> seen;
  for (const auto& m : blend.models) {
    if (std::find(names.begin(), names.end(), m) == names.end())
      diags.error(at("models"), "blend.models",
                  fmt::format("'{}' is no model of this experiment{} (its models: {})", m, did_you_mean(m, names),
                              names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
    if (!seen.insert(m).second)
      diags.error(at("models"), "blend.models", fmt::format("'{}' is named twice: a blend weighs its models alike", m));
  }
  if (seen.size() < 2)
    diags.error(at("models"), "blend.models",
                "a blend averages at least two models: models = [\"flow_net\", \"gbdt\"] (two [models.NAME])");
  resolved["blend"] = settings;
  experiment.blend = std::move(blend);
}

// [tune]: settings, the tuner plugin and its table, and the search space's form (its values are
// checked against the plugins' schemas by load_experiment, which needs the whole experiment).
// One dimension of [tune.space]: `kind` = values, one of choice, uniform, loguniform, int_uniform.
std::optional<SearchDimension> check_dimension(const std::string& path, const toml::key& kind_key,
                                               const toml::node& values, Diagnostics& diags) {
  const std::string where = "tune.space." + path;
  const std::string kind(kind_key.str());
  const auto known = search_kind(kind);
  if (!known) {
    std::vector<std::string> kinds;
    for (auto k : {SearchDimension::Kind::choice, SearchDimension::Kind::uniform, SearchDimension::Kind::loguniform,
                   SearchDimension::Kind::int_uniform})
      kinds.push_back(to_string(k));
    diags.error(kind_key.source(), where + "." + kind,
                fmt::format("unknown distribution{} ({})", did_you_mean(kind, kinds), fmt::join(kinds, ", ")));
    return std::nullopt;
  }
  const toml::array* list = values.as_array();
  SearchDimension dim;
  dim.path = path;
  dim.kind = *known;
  if (dim.kind == SearchDimension::Kind::choice) {
    if (!list || list->empty()) {
      diags.error(values.source(), where + ".choice", "expected a non-empty list of values");
      return std::nullopt;
    }
    for (const auto& v : *list) dim.choices.push_back(to_json(v));
  } else {
    const bool integers = dim.kind == SearchDimension::Kind::int_uniform;
    if (!list || list->size() != 2 || !(*list)[0].is_number() || !(*list)[1].is_number() ||
        (integers && (!(*list)[0].is_integer() || !(*list)[1].is_integer()))) {
      diags.error(values.source(), where + "." + kind,
                  fmt::format("expected [low, high], two {}", integers ? "integers" : "numbers"));
      return std::nullopt;
    }
    dim.low = *(*list)[0].value<double>();
    dim.high = *(*list)[1].value<double>();
    if (!(dim.low < dim.high)) {
      diags.error(values.source(), where + "." + kind,
                  fmt::format("low ({}) must be below high ({})", dim.low, dim.high));
      return std::nullopt;
    }
    if (dim.kind == SearchDimension::Kind::loguniform && dim.low <= 0) {
      diags.error(values.source(), where + "." + kind, "loguniform needs low > 0");
      return std::nullopt;
    }
  }
  return dim;
}

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
        diags.error(
            node.source(), where,
            "expected one distribution: { choice = [...] }, { uniform = [low, high] }, { loguniform = [low, high] } "
            "or { int_uniform = [low, high] }");
        continue;
      }
      auto only = d->begin();  // its entries are proxies: keep the iterator, not a reference into one
      const toml::key& kind_key = only->first;
      const toml::node& values = only->second;
      const std::string kind(kind_key.str());
      auto dim = check_dimension(path, kind_key, values, diags);
      if (!dim) continue;
      space[path] = {{kind, to_json(values)}};
      spec.space.dimensions.push_back(std::move(*dim));
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

}  // namespace trafficid::host::config_detail
