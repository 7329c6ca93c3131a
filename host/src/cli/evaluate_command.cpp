// `trafficid evaluate RUN_DIR[/models/NAME] PATHS...`: trained models scored on labelled captures
// after the fact, the way a run scores them on its [evaluate] captures: the captures go through
// the run's own labeler, label map (classes from [label.classes]) and extractor into an evaluation
// dataset that leaves out the run's training captures and training flows; every model decides
// each flow; per-flow and per-sample scores, per class, confusion matrices, early decisions and
// abstentions land in OUT/evaluation.json and OUT/evaluation.html.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fstream>
#include <iostream>

#include "cli/commands.hpp"
#include "pipeline/dataset_stage.hpp"
#include "runtime/host_log.hpp"
#include "train/scoring.hpp"
#include "report/report.hpp"
#include "train/trained_model.hpp"
#include "trafficid/files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

// The runs and models a target names: a model's folder, a run folder, or a run of variants.
struct RunModels {
  fs::path run;
  std::vector<fs::path> models;
};

std::vector<RunModels> runs_of(const fs::path& target) {
  auto models_of = [](const fs::path& run) {
    std::vector<fs::path> out;
    std::error_code ec;
    if (fs::is_directory(run / "models", ec))
      for (const auto& e : fs::directory_iterator(run / "models", ec))
        if (fs::exists(e.path() / "model.json")) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  };
  if (fs::exists(target / "model.json")) {
    const fs::path run = fs::absolute(target).lexically_normal().parent_path().parent_path();
    return {{run, {target}}};
  }
  if (!fs::is_directory(target))
    throw Error(
        fmt::format("{}: no such folder (give a run folder or a model's folder RUN_DIR/models/NAME)", target.string()));
  std::vector<RunModels> runs;
  if (auto m = models_of(target); !m.empty()) runs.push_back({target, m});
  std::error_code ec;
  std::vector<fs::path> variants;
  for (const auto& e : fs::directory_iterator(target, ec))
    if (e.is_directory() && fs::exists(e.path() / "config.resolved.toml") && !models_of(e.path()).empty())
      variants.push_back(e.path());
  std::sort(variants.begin(), variants.end());
  for (const auto& v : variants) runs.push_back({v, models_of(v)});
  if (runs.empty())
    throw Error(fmt::format("{}: no trained model (models/NAME/model.json) in it or in its variants' folders",
                            target.string()));
  return runs;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// One trained model's scores on the evaluation dataset (and its flows.csv in `out`).
Json score_model(const fs::path& dir, const PluginRegistry& registry, HostLog& log, const Experiment& experiment,
                 const DatasetManifest& eval_manifest, DatasetSplit& split, const fs::path& out,
                 const std::string& label, bool int8, Json& trained) {
  std::vector<std::uint64_t> without(eval_manifest.class_names.size(), 0);
  for (std::size_t c = 0; c < without.size(); ++c)
    without[c] =
        eval_manifest.evaluation["flows_without_samples"].value(eval_manifest.class_names[c], std::uint64_t{0});
  TrainedModel model(dir, registry, log, int8);
  if (model.manifest().class_names != eval_manifest.class_names)
    throw Error(fmt::format("{}: trained on other classes than its run's dataset", dir.string()));
  ScoringOptions options;
  options.flow_decision = model.flow_decision();
  options.early = experiment.evaluation.early;
  options.abstain_threshold = model.abstain_threshold();
  options.flows_without_samples = without;
  auto predictions =
      predict_split([&](const FeatureBatch& b) { return model.predict_proba(b); }, model.name(), split, options.early);
  std::vector<FlowDecision> decisions;
  Json scores = score(predictions, options, &decisions);
  const std::string name = dir.filename().string();
  fs::create_directories(out / name);
  write_flow_decisions(out / name / "flows.csv", decisions, eval_manifest, options.abstain_threshold);
  Json metrics;
  if (std::ifstream in(dir / "metrics.json"); in) metrics = Json::parse(in);
  const bool has_validation = metrics.is_object() && metrics.contains("validation_per_flow");
  if (has_validation) trained[name] = metrics;
  scores["validation_per_flow_macro_f1"] = has_validation ? metrics["validation_per_flow"].value("macro_f1", 0.0) : 0.0;
  scores["folds"] = model.folds();
  if (model.description().contains("blend")) scores["blend"] = model.description()["blend"];
  scores["members"] = model.members();
  scores["precision"] = model.precision();
  std::cout << fmt::format(
      "{:<40} per-flow macro F1 {:.4f}{}  accuracy {:.4f}  ({} flows, {} without samples, {} abstained "
      "below {:.3f}); per sample macro F1 {:.4f}{}\n",
      label + name, scores["per_flow"]["macro_f1"].get<double>(), describe_interval(scores["per_flow"]),
      scores["per_flow"]["accuracy"].get<double>(), scores["flows"].get<std::uint64_t>(),
      scores["flows_without_samples"].get<std::uint64_t>(),
      scores.contains("abstaining") ? scores["abstaining"]["abstained"].get<std::uint64_t>() : 0,
      options.abstain_threshold.value_or(0.0), scores["per_sample"]["macro_f1"].get<double>(),
      model.int8() ? "; int8" : "");
  return scores;
}

// The evaluation dataset of one run: the captures through the run's labeler, label map and
// extractor, the run's training captures and flows left out. nullopt when a stop was asked.
std::optional<DatasetManifest> evaluation_dataset(const Experiment& experiment, const RunModels& run,
                                                  const fs::path& config, const fs::path& run_out,
                                                  const PluginRegistry& registry, HostLog& log,
                                                  EvaluationTarget& target) {
  if (!experiment.features || !experiment.label)
    throw Error(fmt::format("{}: the run has no [features] and [label]: nothing to score", run.run.string()));
  const fs::path training = run.run / "dataset";
  if (!fs::exists(training / "manifest.json"))
    throw Error(
        fmt::format("{}: its dataset ({}) is gone; evaluation leaves out the training data, so it needs it "
                    "(`trafficid prepro {}` builds it again)",
                    run.run.string(), training.string(), config.string()));
  target = evaluation_target(training);
  target.keep_unknown = experiment.evaluation.unknown;
  DatasetPlan training_plan;
  training_plan.folder = training;
  training_plan.config_hash = target.training_config_hash;
  LabelSpec label = *experiment.label;
  label.class_from = "map";
  DatasetPlan plan = plan_evaluation_dataset(experiment, training_plan);
  plan.folder = run_out / "dataset";
  DatasetJob job{
      "evaluation", plan,   &experiment.evaluate->sources, experiment.evaluate->max_packets, std::move(label),
      &target,      run_out};
  auto outcome = obtain_dataset(job, experiment, registry, log, run_out, false);
  if (outcome.manifest) log.info(describe_dataset(*outcome.manifest));
  return outcome.manifest;
}

// The captures as the TOML list of evaluate.sources.
std::string sources_list(const std::vector<std::string>& paths) {
  std::string sources = "[";
  for (const auto& p : paths) {
    if (!fs::exists(p)) throw Error(fmt::format("{}: no such file or folder", p));
    sources += (sources.size() > 1 ? ", " : "") + toml_string("pcap:" + fs::absolute(p).lexically_normal().string());
  }
  return sources + "]";
}

}  // namespace

int cmd_evaluate(const GlobalOptions& global, const EvaluateRequest& request) {
  auto registry = load_plugins(global);
  HostLog log(log_threshold(global));
  install_stop_handlers();
  const auto runs = runs_of(request.target);
  fs::path out = request.out;
  if (out.empty())
    out = runs.front().run / "evaluations" /
          fmt::format("evaluation-{:%Y%m%d-%H%M%S}",
                      fmt::localtime(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now())));
  fs::create_directories(out);
  log.open_file(out / "evaluate.log");
  const std::string sources = sources_list(request.paths);
  Json result = {{"captures", request.paths}, {"runs", Json::array()}};
  for (const auto& run : runs) {
    const fs::path config = run.run / "config.resolved.toml";
    // The run's experiment, with the given captures as its evaluation sources (the [evaluate.pcap]
    // settings of the run reset, so folders are read whole unless --set says otherwise).
    std::vector<std::string> overrides = {"evaluate.sources=" + sources, "evaluate.pcap={}"};
    overrides.insert(overrides.end(), request.overrides.begin(), request.overrides.end());
    auto experiment = checked_experiment(registry, config.string(), overrides);
    if (!experiment) return 2;
    const fs::path run_out = runs.size() > 1 ? out / run.run.filename() : out;
    EvaluationTarget target;
    auto eval_manifest = evaluation_dataset(*experiment, run, config, run_out, registry, log, target);
    if (!eval_manifest) return 130;
    DatasetSplit split(run_out / "dataset", SplitName::test);
    Json models = Json::object(), trained = Json::object();  // scores here; the models' own metrics.json
    const std::string label = runs.size() > 1 ? run.run.filename().string() + "/" : "";
    for (const auto& dir : run.models)
      models[dir.filename().string()] =
          score_model(dir, registry, log, *experiment, *eval_manifest, split, run_out, label, request.int8, trained);
    result["runs"].push_back({{"run", fs::absolute(run.run).lexically_normal().string()},
                              {"best_model", best_model_name(trained)},
                              {"dataset", dataset_summary(*eval_manifest)},
                              {"classes", eval_manifest->class_names},
                              {"models", models}});
  }
  write_file_atomically(out / "evaluation.json", result.dump(2));
  write_evaluation_report(out / "evaluation.html", result);
  log.info(
      fmt::format("evaluation: {} and {}", (out / "evaluation.json").string(), (out / "evaluation.html").string()));
  return 0;
}

}  // namespace trafficid::host
