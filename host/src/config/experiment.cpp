#include "config/experiment.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <fmt/std.h>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "config/schema_check.hpp"
#include "config/compose.hpp"
#include "config/section_checks.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

const Schema& experiment_section_schema() {
  static const Schema schema = {
      ParamSpec::string("name", "",
                        "name of the experiment; run folders are named after it (default: the file's name)"),
      ParamSpec::string("description", "", "what the experiment is for"),
      ParamSpec::integer("seed", 1, "seed of every random choice in the run (splits, initialisation, generators)")
          .range(0, 9.0e15),
      ParamSpec::string("output_dir", "runs",
                        "folder receiving one run folder per run (relative to the working directory)"),
  };
  return schema;
}

const Schema& capture_section_schema() {
  static const Schema schema = {
      ParamSpec::list("sources", ParamType::string_list, nullptr,
                      "capture sources: plugin names, or 'plugin:value' to set the plugin's main parameter "
                      "(pcap:captures/, live:eth0)")
          .required(),
      ParamSpec::integer("max_packets", 0, "stop after this many packets in all (0: read everything)")
          .range(0, std::nullopt),
  };
  return schema;
}

const Schema& label_section_schema() {
  static const Schema schema = {
      ParamSpec::string("labeler", "ndpi", "labeler plugin that names each flow's application"),
      ParamSpec::choice("class_from", "map", {"map", "directory", "regex"},
                        "a flow's class: from [label.classes] over its label, the folder of its capture, or "
                        "filename_regex's first group on the capture's file name"),
      ParamSpec::string("filename_regex", "",
                        "with class_from = \"regex\": a regular expression whose first group is the class"),
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
      ParamSpec::string("extractor", "deep_packet",
                        "features plugin: deep_packet, flow_stats, flow_packets, or your own"),
      ParamSpec::integer("threads", 0,
                         "workers that label and extract side by side, flows sharded by host pair "
                         "(0: one per core)")
          .range(0, 256),
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
      ParamSpec::integer("max_per_class", 0, "with balance = \"cap\": training samples kept per class")
          .range(0, std::nullopt),
      ParamSpec::choice("storage", "auto", {"auto", "dense", "ragged"},
                        "dense: [rows, *shape] arrays; ragged: only the bytes each sample has, padded when "
                        "loaded (auto: ragged for variable-length byte features)"),
      ParamSpec::boolean("deduplicate", true,
                         "identical samples never on two sides: validation and test copies of a "
                         "training sample (and test copies of a validation one) are excluded"),
      ParamSpec::integer("folds", 0,
                         "with split = \"file\": group k-fold by capture file, K models of each model, "
                         "fold f tested on its files, validated on the next fold's: every capture is tested "
                         "once by a model that never saw it (0: one split)")
          .range(0, 100),
      ParamSpec::boolean("reuse", true,
                         "reuse the dataset of an earlier run with the same config and unchanged inputs"),
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
      ParamSpec::boolean("unknown", false,
                         "also test the flows that no class claims (their label known to the "
                         "labeler): how many a model forces into a class, how many it abstains on"),
      ParamSpec::choice("flow_decision", "logprob", {"logprob", "vote"},
                        "a flow's class from its samples' probabilities: the largest sum of log-probabilities, or "
                        "the majority of the samples' classes"),
      ParamSpec::list("early", ParamType::integer_list, Json::array({1, 2, 3, 4, 6, 8}),
                      "report per-flow macro F1 when deciding after this many samples (packet models) or packets "
                      "(flow models whose samples are packet sequences)"),
      ParamSpec::real("abstain_quantile", 0.05,
                      "abstaining: a flow is left undecided when its confidence is below "
                      "this quantile of the confidences of correct validation decisions")
          .range(0, 1),
  };
  return schema;
}

const Schema& blend_section_schema() {
  static const Schema schema = {
      ParamSpec::list("models", ParamType::string_list, Json::array(),
                      "[models.NAME] names whose probabilities are averaged into one more model (soft voting), "
                      "scored and picked like any model; at least two"),
      ParamSpec::string("name", "blend", "the blend's name: its folder models/NAME and its rows in reports"),
  };
  return schema;
}

const Schema& tune_section_schema() {
  static const Schema schema = {
      ParamSpec::string("tuner", "random", "tuner plugin: grid, random, asha, or your own"),
      ParamSpec::choice("metric", "val.macro_f1", {"val.macro_f1", "val.accuracy", "val.weighted_f1", "val.loss"},
                        "what a trial is judged by, on the validation split (never the test split)"),
      ParamSpec::choice("direction", "auto", {"auto", "maximize", "minimize"},
                        "auto: minimize a loss, maximize the rest"),
      ParamSpec::integer("trials", 20, "trials proposed in all (retries of a failed trial do not count)")
          .range(1, 1000000),
      ParamSpec::real("time_budget", 0, "seconds from the study's start after which no trial is started (0: none)")
          .range(0, std::nullopt),
      ParamSpec::integer("parallel", 1, "trials run at once by one `trafficid tune` process").range(1, 256),
      ParamSpec::integer("retries", 1, "times a failed (crashed) trial is run again before it counts as failed")
          .range(0, 100),
      ParamSpec::choice("pruner", "none", {"none", "median"},
                        "median: stop a trial whose value is below the median of the others' at the same epoch "
                        "(with any tuner; asha prunes by itself)"),
      ParamSpec::integer("pruner_warmup", 1, "epochs before the median pruner judges a trial").range(0, 100000),
      ParamSpec::integer("pruner_min_trials", 3,
                         "other trials that must have reached an epoch before the median pruner "
                         "judges at it")
          .range(1, 100000),
      ParamSpec::string("study_dir", "",
                        "the study's folder (default: OUTPUT_DIR/NAME-study); the same folder resumes"),
  };
  return schema;
}

toml::table Experiment::resolved_toml() const { return to_toml(resolved); }

std::string name_problem(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > 100) return fmt::format("is {} characters long (100 at most)", name.size());
  if (!std::isalnum(static_cast<unsigned char>(name[0])))
    return fmt::format("'{}' must start with a letter or a digit", name);
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return fmt::format(
          "'{}' holds {}: use only letters, digits, '-', '_' and '.' (it names a folder and a Slurm job)", name,
          std::isprint(static_cast<unsigned char>(c))
              ? fmt::format("'{}'", c)
              : fmt::format("the byte {:#04x}", static_cast<unsigned>(static_cast<unsigned char>(c))));
  return "";
}

namespace {

using namespace config_detail;

// Every section checked into `experiment` and the resolved JSON.
Json check_sections(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry,
                    CheckContext& context, std::vector<toml::source_region>& dimension_sources) {
  Diagnostics& diagnostics = context.diagnostics;
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
  check_blend(doc, experiment, context, resolved);
  check_tune(doc, experiment, registry, context, resolved, dimension_sources);
  return resolved;
}

// Every value the space can give, set in the resolved experiment (as a trial will be) and
// checked there: a mistake is reported at the space's line, before anything runs.
void check_space_values(const CompositionRequest& request, const PluginRegistry& registry, const Experiment& experiment,
                        const Json& resolved, const std::vector<toml::source_region>& dimension_sources,
                        Diagnostics& diagnostics) {
  Json base = resolved;
  base.erase("tune");
  const toml::table base_doc = to_toml(base);
  for (std::size_t i = 0; i < experiment.tune->space.dimensions.size(); ++i) {
    const auto& d = experiment.tune->space.dimensions[i];
    std::vector<Json> candidates = d.choices;
    if (d.kind == SearchDimension::Kind::int_uniform)
      candidates = {static_cast<std::int64_t>(d.low), static_cast<std::int64_t>(d.high)};
    else if (d.kind != SearchDimension::Kind::choice) candidates = {d.low, d.high};
    std::set<std::string> reported;  // a problem that every value has is told once
    for (const auto& value : candidates) {
      Diagnostics of_value;
      load_experiment(request.file, request.overrides, registry, of_value, "", Json{{d.path, value}}, &base_doc);
      Diagnostics remapped;
      for (const auto& problem : of_value.all()) {
        if (problem.warning || !reported.insert(problem.key_path + "\n" + problem.message).second) continue;
        toml::source_region where = dimension_sources[i];
        remapped.error(where, "tune.space." + d.path,
                       fmt::format("with {} = {}: {}{}", d.path, value.dump(),
                                   problem.key_path.empty() ? "" : problem.key_path + ": ", problem.message));
      }
      diagnostics.merge(remapped);
    }
  }
}

// What a study needs of the experiment it tunes: one experiment, one model, a space whose values
// all make valid experiments.
void check_study(const toml::table& doc, const CompositionRequest& request, const PluginRegistry& registry,
                 const ComposedExperiment& composed, const Experiment& experiment, const Json& resolved,
                 const std::vector<toml::source_region>& dimension_sources, Diagnostics& diagnostics) {
  if (!composed.variant_names.empty())
    diagnostics.error(doc.get("tune")->source(), "tune",
                      "a study tunes one experiment: remove [variants] (or tune each variant's values in tune.space)");
  if (experiment.models.size() != 1)
    diagnostics.error(
        doc.get("tune")->source(), "tune",
        fmt::format("a study tunes one model and this experiment trains {}: keep one [models.NAME], or choose "
                    "between models in the space (\"models\" = {{ choice = [{{ cnn = {{}} }}, {{ mlp = {{}} }}] }})",
                    experiment.models.size()));
  const bool only_space_errors =
      std::all_of(diagnostics.all().begin(), diagnostics.all().end(),
                  [](const Diagnostic& d) { return d.warning || d.key_path.rfind("tune.space.", 0) == 0; });
  if (only_space_errors) check_space_values(request, registry, experiment, resolved, dimension_sources, diagnostics);
}

// The name becomes a folder (OUTPUT_DIR/NAME-TIME) and a Slurm job name: a restricted set of characters.
void check_name(const toml::table& doc, const fs::path& file, Diagnostics& diagnostics) {
  if (const toml::node* name = doc.at_path("experiment.name").node(); name && name->is_string()) {
    if (auto why = name_problem(name->as_string()->get()); !why.empty())
      diagnostics.error(name->source(), "experiment.name", "the experiment's name " + why);
  } else if (auto why = name_problem(file.stem().string()); !why.empty()) {
    diagnostics.error(doc.source(), "experiment.name",
                      fmt::format("no experiment.name, and the file's name {}: set experiment.name", why));
  }
}

}  // namespace

std::optional<Experiment> check_experiment(const ComposedExperiment& composed, const CompositionRequest& request,
                                           const PluginRegistry& registry, Diagnostics& diagnostics) {
  const toml::table& doc = composed.document;
  const bool whole = request.variant.empty() && request.assignment.is_null();  // not a variant or a trial of it
  Experiment experiment;
  experiment.file = fs::absolute(request.file);
  experiment.variant = request.variant;
  if (request.variant.empty()) experiment.variant_names = composed.variant_names;
  CheckContext context{diagnostics, experiment.file.parent_path()};
  std::vector<toml::source_region> dimension_sources;
  Json resolved = check_sections(doc, experiment, registry, context, dimension_sources);
  if (experiment.tune)
    check_study(doc, request, registry, composed, experiment, resolved, dimension_sources, diagnostics);
  if (whole) check_name(doc, request.file, diagnostics);
  if (diagnostics.has_errors()) return std::nullopt;
  auto& exp = resolved["experiment"];
  if (exp["name"].get<std::string>().empty()) exp["name"] = request.file.stem().string();
  experiment.name = exp["name"].get<std::string>();
  experiment.seed = exp["seed"].get<std::int64_t>();
  experiment.output_dir = exp["output_dir"].get<std::string>();
  if (experiment.dataset.directory.empty()) experiment.dataset.directory = experiment.output_dir / "datasets";
  if (request.variant.empty() && !composed.variants.empty()) resolved["variants"] = composed.variants;
  if (experiment.tune) {
    experiment.tune->space.seed = static_cast<std::uint64_t>(experiment.seed);
    experiment.tune->space.max_steps = experiment.train_settings.epochs;
  }
  experiment.resolved = std::move(resolved);
  return experiment;
}

std::optional<Experiment> load_experiment(const fs::path& file, const std::vector<std::string>& overrides,
                                          const PluginRegistry& registry, Diagnostics& diagnostics,
                                          const std::string& variant, const Json& assignment,
                                          const toml::table* document) {
  const CompositionRequest request{file, overrides, variant, assignment, document};
  auto composed = compose_experiment(request, diagnostics);
  if (!composed) return std::nullopt;
  // [variants]: every variant is checked as the experiment it makes.
  if (variant.empty() && assignment.is_null())
    for (const auto& name : composed->variant_names) {
      Diagnostics of_variant;
      load_experiment(file, overrides, registry, of_variant, name);
      diagnostics.merge(of_variant);
    }
  return check_experiment(*composed, request, registry, diagnostics);
}

}  // namespace trafficid::host
