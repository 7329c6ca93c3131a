#include "pipeline/run.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <iostream>
#include <ranges>

#include "config/experiment.hpp"
#include "pipeline/capture_stage.hpp"
#include "pipeline/dataset_stage.hpp"
#include "pipeline/label_stage.hpp"
#include "pipeline/pipeline.hpp"
#include "report/report.hpp"
#include "runtime/host_log.hpp"
#include "runtime/plugin_registry.hpp"
#include "store/run_folder.hpp"
#include "train/scoring.hpp"
#include "train/train_stage.hpp"
#include "train/workers.hpp"
#include "trafficid/files.hpp"
#include "tune/trial.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

// While a run (or one variant of it) writes its folder: its run.log and events.jsonl subscribe
// to the bus, and its events carry the folder's name.
class FolderSubscribers {
 public:
  FolderSubscribers(EventBus& bus, const fs::path& dir) : bus_(bus), previous_(bus.run()) {
    auto log = std::make_shared<LogFileWriter>(dir / "run.log");
    auto events = std::make_shared<EventFileWriter>(dir / "events.jsonl");
    bus.continue_after(events->last_seq());  // a resumed run: seq goes on, Last-Event-ID still means one event
    handles_ = {bus.subscribe([log](const RunEvent& e) { (*log)(e); }),
                bus.subscribe([events](const RunEvent& e) { (*events)(e); })};
    bus.set_run(dir.string());
  }
  ~FolderSubscribers() {
    for (auto h : handles_) bus_.unsubscribe(h);
    bus_.set_run(previous_);
  }

 private:
  EventBus& bus_;
  std::string previous_;
  std::vector<std::uint64_t> handles_;
};

// One run (or variant) of a checked experiment in its folder.
class RunSession {
 public:
  RunSession(const RunRequest& request, const PluginRegistry& registry, EventBus& bus, const Experiment& experiment,
             RunFolder& folder, const char* parts, Json empty, WorkerPool* workers)
      : request_(request),
        registry_(registry),
        experiment_(experiment),
        dir_(folder.path),
        subscribers_(bus, dir_),
        log_(bus),
        resolved_(write_resolved_config(dir_, request.file, experiment)),
        record_(dir_, request.file, experiment, parts, std::move(empty)),
        workers_(workers) {
    log_.set_threads(std::max(1u, std::thread::hardware_concurrency()));
    log_.set_work_dir(dir_);
  }

  int single();
  int variants(const std::vector<std::string>& names,
               const std::function<int(const std::string&, const fs::path&)>& one);

 private:
  void started(Json extra = Json::object());
  int finish(const std::string& status, bool print_record = true);
  int capture_only();
  bool build_datasets(fs::path& dataset, std::optional<fs::path>& evaluation);
  void train_and_report(const fs::path& dataset, const std::optional<fs::path>& evaluation);

  const RunRequest& request_;
  const PluginRegistry& registry_;
  const Experiment& experiment_;
  fs::path dir_;
  FolderSubscribers subscribers_;
  HostLog log_;
  std::string resolved_;
  RunRecord record_;
  WorkerPool* workers_;
};

void RunSession::started(Json extra) {
  Json payload = {{"state", "started"},
                  {"dir", dir_.string()},
                  {"experiment", fs::absolute(request_.file).string()},
                  {"name", experiment_.name}};
  payload.update(extra);
  log_.event("run", payload);
}

// Writes run.json with `status` and ends: the exit status.
int RunSession::finish(const std::string& status, bool print_record) {
  Json& record = record_.json();
  record["status"] = status;
  record["seconds"] = record_.seconds();
  record["warnings"] = log_.warnings();
  record_.save();
  if (status == "interrupted")
    log_.warn(fmt::format("interrupted: `trafficid run --resume {}` continues where it stopped", dir_.string()));
  log_.info(fmt::format("run folder: {} ({:.2f} s, {} warning{})", dir_.string(), record_.seconds(), log_.warnings(),
                        log_.warnings() == 1 ? "" : "s"));
  Json payload = {
      {"state", status}, {"dir", dir_.string()}, {"seconds", record_.seconds()}, {"warnings", log_.warnings()}};
  if (record.contains("error")) payload["error"] = record["error"];
  if (record.contains("best_model")) payload["best_model"] = record["best_model"];
  log_.event("run", payload);
  if (print_record && request_.print_json && status != "failed") std::cout << record.dump(2) << '\n';
  return status == "interrupted" ? 130 : status == "failed" ? 1 : 0;
}

// An experiment without features: capture (and labels) only, no dataset.
int RunSession::capture_only() {
  fs::create_directories(dir_ / "capture");
  log_.info("stage capture: " +
            fmt::format("{}", fmt::join(experiment_.sources |
                                            std::views::transform([](const SourceSpec& s) { return s.instance; }),
                                        ", ")));
  log_.event("stage", {{"name", "capture"}, {"state", "started"}});
  Pipeline pipeline({experiment_.sources, experiment_.max_packets, experiment_.label, dir_ / "label"}, registry_, log_);
  PipelineResult result = pipeline.run();
  const CaptureSummary& summary = result.capture;
  auto summary_json = to_json(summary);
  write_file_atomically(dir_ / "capture" / "summary.json", summary_json.dump(2));
  log_.event("stage", {{"name", "capture"}, {"state", "done"}, {"packets", summary.packets}, {"flows", summary.flows}});
  log_.info("stage capture done: " + format_summary(summary));
  Json& record = record_.json();
  record["stages"].push_back({{"name", "capture"}, {"output", "capture/summary.json"}});
  if (experiment_.label) {
    log_.info(describe_labels(result.labels));
    record["stages"].push_back({{"name", "label"}, {"output", "label/classes.json"}});
  }
  if (request_.print_json) std::cout << summary_json.dump(2) << '\n';  // the summary is the output
  return finish(summary.stopped_early ? "interrupted" : "done", false);
}

// The dataset (reused when nothing it depends on changed), then the evaluation dataset of
// [evaluate]; false when a stop was asked.
bool RunSession::build_datasets(fs::path& dataset, std::optional<fs::path>& evaluation) {
  Json& record = record_.json();
  auto add_stages = [&](const Json& stages) {
    for (const auto& s : stages) record["stages"].push_back(s);
  };
  DatasetJob job{
      "dataset", plan_dataset(experiment_), &experiment_.sources, experiment_.max_packets, *experiment_.label, nullptr,
      dir_};
  auto outcome = obtain_dataset(job, experiment_, registry_, log_, dir_, request_.rebuild);
  add_stages(outcome.stages);
  if (!outcome.manifest) return false;
  record["dataset"] = dataset_summary(*outcome.manifest);
  log_.info((outcome.reused ? "" : "stage dataset done: ") + describe_dataset(*outcome.manifest));
  // Before the evaluation dataset is built: a dataset no model can learn from stops the run here.
  if (request_.train && !experiment_.models.empty())
    check_trainable(*outcome.manifest, job.plan.folder, experiment_.file);
  Json identity = {{"dataset", dataset_identity(*outcome.manifest)}};
  dataset = job.plan.folder;
  if (experiment_.evaluate && !request_.trial) {
    EvaluationTarget target = evaluation_target(job.plan.folder);
    target.keep_unknown = experiment_.evaluate->unknown;
    LabelSpec label = *experiment_.label;
    label.class_from = "map";  // evaluation captures are not sorted into folders by class
    DatasetJob eval{"evaluation",
                    plan_evaluation_dataset(experiment_, job.plan),
                    &experiment_.evaluate->sources,
                    experiment_.evaluate->max_packets,
                    std::move(label),
                    &target,
                    dir_ / "evaluate"};
    auto evaluated = obtain_dataset(eval, experiment_, registry_, log_, dir_, request_.rebuild);
    add_stages(evaluated.stages);
    if (!evaluated.manifest) return false;
    record["evaluation"] = dataset_summary(*evaluated.manifest);
    identity["evaluation"] = dataset_identity(*evaluated.manifest);
    log_.info(fmt::format("{}evaluation captures: {}",
                          evaluated.reused ? "" : "stage evaluation done: ", describe_dataset(*evaluated.manifest)));
    evaluation = eval.plan.folder;
  }
  check_run_inputs(dir_, identity);
  return true;
}

// The stages after the dataset: models trained and tested, then the report. A tuning trial
// reports each epoch to its study (which may stop it) and skips the test split.
void RunSession::train_and_report(const fs::path& dataset, const std::optional<fs::path>& evaluation) {
  if (!request_.train || experiment_.models.empty()) return;
  Json& record = record_.json();
  std::unique_ptr<Study> study;
  std::unique_ptr<TrialJudge> judge;
  StudyHeader header;
  TrainOptions options;
  if (request_.trial) {
    study = std::make_unique<Study>(request_.trial->study_dir, registry_, log_, std::nullopt);
    header = study->read().header;
    judge = std::make_unique<TrialJudge>(*study, request_.trial->trial, header.metric, log_);
    options.judge = judge.get();
  }
  if (evaluation) options.evaluation = &*evaluation;
  options.workers = workers_;
  log_.event("stage", {{"name", "train"}, {"state", "started"}, {"models", experiment_.models.size()}});
  auto models = run_train_stage(experiment_, registry_, log_, dataset, dir_, options);
  if (models.value("status", "") == "interrupted") {
    record["status"] = "interrupted";
    return;
  }
  log_.event("stage", {{"name", "train"}, {"state", "done"}});
  record["stages"].push_back({{"name", "train"}, {"output", "models/"}});
  if (request_.trial) {
    for (const auto& [name, trained] : models.items())
      record["trial"][name] =
          finish_trial(dir_, trained, name, *judge, request_.trial->trial, header.metric, header.space.maximize);
    return;
  }
  record["models"] = models;
  std::string rule;
  record["best_model"] = best_model_name(models, &rule);
  record["best_model_rule"] = rule;
  write_report(dir_, record, models, resolved_);
  record["stages"].push_back({{"name", "report"}, {"output", "report.html"}});
  log_.event("stage", {{"name", "report"}, {"state", "done"}, {"output", (dir_ / "report.html").string()}});
  log_.info(fmt::format("report: {}", (dir_ / "report.html").string()));
}

int RunSession::single() {
  log_.info(fmt::format("run {} of {} in {}", experiment_.name, request_.file, dir_.string()));
  started();
  try {
    if (!experiment_.features) return capture_only();
    fs::path dataset;
    std::optional<fs::path> evaluation;
    if (!build_datasets(dataset, evaluation)) return finish("interrupted");
    record_.json()["status"] = "done";
    train_and_report(dataset, evaluation);
    return finish(record_.json()["status"].get<std::string>());
  } catch (const Error& e) {
    log_.log(LogLevel::error, e.what());
    record_.json()["error"] = e.what();
    return finish("failed");
  }
}

// Each variant runs into RUN_DIR/NAME as a run of its own, then RUN_DIR/report.html compares
// them. `run --resume RUN_DIR` runs them again in the same folders, where finished variants and
// models are kept.
int RunSession::variants(const std::vector<std::string>& names,
                         const std::function<int(const std::string&, const fs::path&)>& one) {
  log_.info(fmt::format("run {} of {} in {}: {} variants ({})", experiment_.name, request_.file, dir_.string(),
                        names.size(), fmt::join(names, ", ")));
  started({{"variants", names}});
  Json& record = record_.json();
  std::vector<fs::path> finished;
  std::string status = "done";
  for (const auto& name : names) {
    log_.info(fmt::format("variant {}: {}", name, (dir_ / name).string()));
    const int rc = one(name, dir_ / name);
    record["variants"][name] = {{"folder", name}, {"exit_status", rc}};
    if (rc == 130) {
      status = "interrupted";
      break;
    }
    if (rc != 0) status = "failed";
    else finished.push_back(dir_ / name);
    record_.save();
  }
  if (request_.train && !finished.empty() && status != "interrupted") {
    write_comparison_report(dir_ / "report.html", finished,
                            fmt::format("trafficid run: {}, {} variants", experiment_.name, names.size()));
    log_.info(fmt::format("report: {}", (dir_ / "report.html").string()));
  }
  return finish(status);
}

// The run folder of srun's tasks: one they all name alike (the job's), unless one was given.
std::string slurm_run_dir(const Experiment& experiment, const WorkerPlan& plan, const std::string& requested) {
  if (!requested.empty() || !plan.slurm) return requested;
  return (experiment.output_dir / fmt::format("{}-{}", experiment.name, plan.session)).string();
}

// Loads and checks the experiment (a variant of it) and runs it into `run_dir`. Worker 0 of a
// data-parallel run starts its session of workers with the (top) run folder.
int run_experiment(const RunRequest& request, const PluginRegistry& registry, EventBus& bus, const std::string& variant,
                   const std::string& run_dir, const WorkerPlan& plan, WorkerPool* workers) {
  auto experiment = checked_experiment(registry, request.file, request.overrides, variant);
  if (!experiment) {
    std::cerr << request.file << ": not run (`trafficid validate` checks an experiment without running it)\n";
    return 2;
  }
  RunFolder folder = make_run_dir(*experiment, slurm_run_dir(*experiment, plan, run_dir));
  std::optional<WorkerPool> pool;
  if (!workers && plan.world > 1) workers = &pool.emplace(folder.path, plan, request.plugin_paths);
  if (experiment->variant_names.empty())
    return RunSession(request, registry, bus, *experiment, folder, "stages", Json::array(), workers).single();
  RunSession session(request, registry, bus, *experiment, folder, "variants", Json::object(), workers);
  return session.variants(experiment->variant_names, [&](const std::string& name, const fs::path& dir) {
    return run_experiment(request, registry, bus, name, dir.string(), plan, workers);
  });
}

// srun's tasks other than 0: they follow task 0's session in the run folder it makes.
int follow_run(const RunRequest& request, const PluginRegistry& registry, const WorkerPlan& plan) {
  auto experiment = checked_experiment(registry, request.file, request.overrides, "");
  if (!experiment) return 2;
  return follow_worker_session(worker_session_dir(slurm_run_dir(*experiment, plan, request.run_dir), plan), plan,
                               registry);
}

}  // namespace

int Run::execute() {
  install_stop_handlers();
  PluginRegistry registry;
  registry.load_directories(plugin_search_path(request_.plugin_paths), true);
  {
    HostLog log(bus_);
    for (const auto& p : registry.problems()) log.warn(fmt::format("plugin {}: {}", p.file.string(), p.message));
  }
  try {
    const WorkerPlan plan = worker_plan(request_.workers, request_.worker_timeout);
    status_ = plan.rank > 0 ? follow_run(request_, registry, plan)
                            : run_experiment(request_, registry, bus_, "", request_.run_dir, plan, nullptr);
  } catch (const Error& e) {
    // Before the run folder exists (it cannot be made, another process holds it).
    HostLog(bus_).log(LogLevel::error, e.what());
    status_ = 1;
  }
  finished_ = true;
  return status_;
}

void Run::start() {
  thread_ = std::thread([this] { execute(); });
}

int Run::wait() {
  if (thread_.joinable()) thread_.join();
  return status_;
}

Run::~Run() {
  if (thread_.joinable()) {
    stop();
    thread_.join();
  }
}

}  // namespace trafficid::host
