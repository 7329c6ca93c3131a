// An experiment file: TOML sections wiring plugins together, checked as a whole against the
// host's own sections and each plugin's declared schema before anything runs.
#pragma once
#include <array>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <toml++/toml.h>
#include <vector>

#include "config/diagnostics.hpp"
#include "labels/label_map.hpp"
#include "runtime/plugin_registry.hpp"
#include "trafficid/model.hpp"
#include "trafficid/tuner.hpp"

namespace trafficid::host {

// One capture source of the experiment: a plugin with its resolved parameters.
struct SourceSpec {
  const PluginInfo* plugin = nullptr;
  std::string instance;  // as written in capture.sources: "synth", "pcap:captures/"
  Json params;
};

// The label stage: a labeler plugin, and how flows get their experiment class.
struct LabelSpec {
  const PluginInfo* plugin = nullptr;
  Json params;             // the labeler's resolved parameters
  std::string class_from;  // "map", "directory" or "regex"
  std::string filename_regex;
  std::string unmatched;  // "drop" or "other"
  std::string other_class;
  std::vector<std::string> confidence;  // glob patterns a flow's labeler confidence must match (empty: any)
  unsigned threads = 0;
  LabelMap map;
  // [label.groups]: GROUP = ["ClassA", "ClassB"]; a flow of class ClassA gets class GROUP
  // (traffic characterisation from application folders). Classes in no group keep their name.
  std::map<std::string, std::string> group_of;

  // Whether the labeler was sure enough of the flow's label for it to get a class.
  bool confident(const FlowRecord& flow) const;
  // The flow's experiment class (nullopt: none), `file_class` being its capture's folder or file
  // name class with class_from = "directory" or "regex" (empty when there is none).
  std::optional<std::string> classify(const FlowRecord& flow, const std::string& file_class) const;
};

// The feature stage: an extractor plugin run beside the labeler, in the same workers.
struct FeatureStageSpec {
  const PluginInfo* plugin = nullptr;
  Json params;
  unsigned threads = 0;  // labelling and extraction workers (0: one per core)
};

// How samples become a dataset: split, deduplication, balancing, storage.
struct DatasetSpec {
  std::string split = "flow";  // "flow", "file" or "packet"
  std::array<double, 3> fractions{0.8, 0.1, 0.1};
  std::string balance = "none";
  std::uint64_t max_per_class = 0;
  std::string storage = "auto";
  bool deduplicate = true;
  int folds = 0;  // group k-fold by file (split = "file"): K models each, every capture tested once
  bool reuse = true;
  bool sync = false;
  std::filesystem::path directory;  // where datasets are kept, one folder per config hash
};

// [evaluate]: how models are scored after training, and captures no training sample may come
// from, labelled by the experiment's labeler and label map (classes from [label.classes]), on
// which every model is scored: the headline number of a run.
struct EvaluateSpec {
  std::vector<SourceSpec> sources;  // none: only the test split is scored
  std::uint64_t max_packets = 0;
  bool unknown = false;                   // flows of no class are tested too, for rejection
  std::string flow_decision = "logprob";  // a flow's class from its samples: "logprob" (summed) or "vote"
  std::vector<std::int64_t> early;        // decisions after this many samples / packets
  double abstain_quantile = 0.05;  // of the confidences of correct validation decisions: the abstention threshold
};

// A model to train on the dataset: a model plugin with its resolved parameters.
// [models.NAME]: a model of the experiment. NAME names its folder (models/NAME) and its rows in
// reports; `plugin = "cnn"` in the table picks the plugin (default: the plugin named NAME), so two
// configurations of one plugin can be compared in one experiment.
struct ModelSpec {
  const PluginInfo* plugin = nullptr;
  Json params;
  std::string name;
};

// [blend]: a model that is the mean of other models' probabilities (soft voting), trained on the
// same dataset and scored like any model, in models/NAME. Models of different families err on
// different flows of captures they never saw; their mean carries over better than either.
struct BlendSpec {
  std::string name = "blend";
  std::vector<std::string> models;  // [models.NAME] names, at least two
};

// [tune]: a study over the experiment (`trafficid tune`): a tuner plugin, the metric, the budget,
// and the search space over dotted config paths, every value of which was checked against the
// plugins' schemas.
struct TuneSpec {
  const PluginInfo* plugin = nullptr;
  Json params;    // the tuner's resolved parameters
  Json settings;  // the resolved [tune] table (metric, direction, trials, ...), space included
  SearchSpace space;
  std::string metric;  // "val.macro_f1", "val.accuracy", "val.weighted_f1" or "val.loss"
};

struct Experiment {
  std::filesystem::path file;
  std::string name;
  std::int64_t seed = 0;
  std::filesystem::path output_dir;
  Json resolved;  // the whole config with every default filled in
  std::vector<SourceSpec> sources;
  std::uint64_t max_packets = 0;
  std::optional<LabelSpec> label;
  std::optional<FeatureStageSpec> features;
  DatasetSpec dataset;
  EvaluateSpec evaluation;               // scoring settings, whether or not [evaluate] is there
  std::optional<EvaluateSpec> evaluate;  // [evaluate] with sources: the unseen captures
  std::vector<ModelSpec> models;         // [models.NAME] tables, in name order
  std::optional<BlendSpec> blend;        // [blend], after the models
  Json train = Json::object();           // resolved [train]
  TrainSettings train_settings;          // the same, typed (its defaults declared once, in the SDK)
  // [variants.NAME] tables: each sets some values of the experiment. A run of an experiment with
  // variants runs each of them (RUN_DIR/NAME) and compares them; `variant` names the one this is.
  std::vector<std::string> variant_names;
  std::string variant;
  std::optional<TuneSpec> tune;

  toml::table resolved_toml() const;
};

// The host's own sections, as schemas (shown by `trafficid validate --explain`).
const Schema& experiment_section_schema();
const Schema& capture_section_schema();
const Schema& label_section_schema();
const Schema& features_section_schema();
const Schema& dataset_section_schema();
const Schema& train_section_schema();
const Schema& evaluate_section_schema();
const Schema& tune_section_schema();
const Schema& blend_section_schema();

// Why `name` cannot name an experiment, a variant or a study ("holds '/': use only ..."); empty
// when it can. Names become folders and Slurm job names: letters, digits, '-', '_', '.', starting
// with a letter or digit, 100 characters at most (so never absolute, never "..", never a newline).
std::string name_problem(std::string_view name);

// Reads, overrides (`--set`) and checks an experiment: compose_experiment then check_experiment. Returns nullopt when
// `diagnostics` holds errors; warnings may be present either way. Throws Error only for a file that cannot be read.
// With `variant`, the experiment with that variant's values set (and no variants); without, the
// experiment itself, each of its variants checked too. With `assignment` (dotted path -> value,
// a tuning trial's), the experiment with those values set and without its [tune] section. With
// `document`, that instead of the file's content (and no overrides): a resolved config.
std::optional<Experiment> load_experiment(const std::filesystem::path& file, const std::vector<std::string>& overrides,
                                          const PluginRegistry& registry, Diagnostics& diagnostics,
                                          const std::string& variant = "", const Json& assignment = Json(),
                                          const toml::table* document = nullptr);

// Step two of load_experiment: the composed document (compose.hpp) checked into an Experiment.
struct ComposedExperiment;
struct CompositionRequest;
std::optional<Experiment> check_experiment(const ComposedExperiment& composed, const CompositionRequest& request,
                                           const PluginRegistry& registry, Diagnostics& diagnostics);

// load_experiment for a command: prints every diagnostic to stderr (and the count of errors).
std::optional<Experiment> checked_experiment(const PluginRegistry& registry, const std::string& file,
                                             const std::vector<std::string>& overrides,
                                             const std::string& variant = "");

}  // namespace trafficid::host
