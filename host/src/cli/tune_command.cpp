// `trafficid tune EXP.toml`: a study over the experiment's [tune] space. This process is one worker:
// it claims trials from the study's journal and runs each as a `trafficid run` child process of its
// own (a crashing trial cannot take the study down), up to `parallel` at once. Run the same command
// again after a crash, or on other machines against the same --study-dir, and it goes on.
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "cli/commands.hpp"
#include "config/experiment.hpp"
#include "runtime/child_process.hpp"
#include "runtime/host_log.hpp"
#include "runtime/plugin_registry.hpp"
#include "config/schema_check.hpp"
#include "tune/study.hpp"
#include "train/train_stage.hpp"
#include "trafficid/files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

std::string worker_name() {
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  return fmt::format("{}:{}", host, ::getpid());
}

// The last lines of a trial's log: why it failed.
std::string log_tail(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
    if (lines.size() > 3) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) out += (out.empty() ? "" : " | ") + l;
  return out;
}

struct RunningTrial {
  Study::Claim claim;
  pid_t pid = -1;
  std::chrono::steady_clock::time_point started;
};

pid_t start_trial(const GlobalOptions& global, const Study& study, const Study::Claim& claim) {
  const fs::path dir = study.trial_dir(claim.trial);
  std::vector<std::string> args = {"trafficid"};
  for (const auto& p : global.plugin_paths) args.insert(args.end(), {"--plugin-path", p});
  args.insert(args.end(), {"run", (dir / "trial.toml").string(), "--run-dir", dir.string(), "--trial-of",
                           study.dir().string(), "--trial-id", std::to_string(claim.trial)});
  // The trial dies with its worker: a killed study leaves no orphan training on.
  return start_child("a trial process", "/proc/self/exe", std::move(args), SIGKILL, (dir / "trial.log").string());
}

void write_slurm(const TuneRequest& request, const Experiment& experiment, const fs::path& study_dir,
                 const GlobalOptions& global) {
  const auto& settings = experiment.tune->settings;
  const unsigned workers = request.workers ? request.workers : static_cast<unsigned>(settings.value("parallel", 1));
  const auto threads = experiment.train.value("threads", std::int64_t{0});
  std::string command = self_command(global) + " tune " + shell_quote(fs::absolute(request.file).string()) +
                        " --study-dir " + shell_quote(fs::absolute(study_dir).string()) + " --parallel 1";
  for (const auto& o : request.overrides) command += " --set " + shell_quote(o);
  write_slurm_array(
      {.script = request.emit_slurm,
       .job_name = "trafficid-" + experiment.name,
       .description =
           fmt::format("# Slurm job array: {0} workers of the study {1}, sharing it through its folder on the\n"
                       "# cluster's shared file system (its journal is locked for every change; each worker runs one\n"
                       "# trial at a time and claims the next). Submit with: sbatch {2}\n"
                       "# A worker that dies leaves its trial to the next worker that looks; resubmitting goes on.\n",
                       workers, shell_quote(fs::absolute(study_dir).string()), request.emit_slurm),
       .tasks = workers,
       .cpus = threads > 0 ? threads : 4,
       .logs = study_dir,
       .command = command});
}

// The trials this process runs, `parallel` at a time, each in a process of its own.
class TuneSession {
 public:
  TuneSession(const GlobalOptions& global, Study& study, const StudyHeader& header, HostLog& log, unsigned parallel)
      : global_(global), study_(study), header_(header), log_(log), parallel_(parallel), worker_(worker_name()) {}
  int run();
  const std::string& worker() const { return worker_; }

 private:
  void start_trials();
  void finished(RunningTrial r, int status);
  int stop();

  const GlobalOptions& global_;
  Study& study_;
  const StudyHeader& header_;
  HostLog& log_;
  unsigned parallel_;
  std::string worker_;
  std::vector<RunningTrial> running_;
  bool exhausted_ = false;
};

void TuneSession::start_trials() {
  while (!log_.stop_requested() && !exhausted_ && running_.size() < parallel_) {
    auto claim = study_.claim(worker_);
    if (!claim) {
      exhausted_ = true;
      break;
    }
    const fs::path dir = study_.trial_dir(claim->trial);
    if (!fs::exists(dir / "trial.toml")) {
      std::ostringstream text;
      text << "# Trial " << claim->trial << " of the study " << study_.dir().string() << ": "
           << claim->assignment.dump()
           << "\n# `trafficid run` on this file trains it again (and tests it on the test split).\n\n"
           << to_toml(trial_config(header_, claim->trial, claim->assignment)) << '\n';
      write_file_atomically(dir / "trial.toml", text.str());
    }
    log_.info(fmt::format("trial {} (attempt {}): {}", claim->trial, claim->attempt, claim->assignment.dump()));
    log_.event("trial", {{"trial", claim->trial},
                         {"state", "started"},
                         {"attempt", claim->attempt},
                         {"assignment", claim->assignment},
                         {"worker", worker_}});
    const pid_t pid = start_trial(global_, study_, *claim);
    running_.push_back(RunningTrial{std::move(*claim), pid, std::chrono::steady_clock::now()});
  }
}

// Stop: each trial finishes its epoch and keeps its checkpoint; the next `tune` goes on with it.
int TuneSession::stop() {
  for (auto& r : running_) ::kill(r.pid, SIGINT);
  for (auto& r : running_) {
    int status = 0;
    while (::waitpid(r.pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.claim.lock.release();
  }
  log_.warn(fmt::format("stopped: {} trial(s) left unfinished; the same `trafficid tune` command goes on with them",
                        running_.size()));
  return 130;
}

// A trial process ended with `status`: its trial.json (or why there is none) goes to the journal.
void TuneSession::finished(RunningTrial r, int status) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.started).count();
  const fs::path dir = study_.trial_dir(r.claim.trial);
  std::string outcome = "failed", error;
  std::optional<double> value;
  bool may_retry = true;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    try {
      std::ifstream in(dir / "trial.json");
      Json result = Json::parse(in);
      outcome = result.at("status").get<std::string>();
      error = result.value("error", "");
      may_retry = result.value("retry", true);
      if (result.at("value").is_number()) value = result["value"].get<double>();
    } catch (const std::exception& e) {
      error = fmt::format("the trial ended without a readable {} ({})", (dir / "trial.json").string(), e.what());
    }
  } else {
    error = WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                : fmt::format("exit status {}", WEXITSTATUS(status));
    error += ": " + log_tail(dir / "trial.log");
  }
  study_.finish(r.claim, outcome, value, error, seconds, may_retry);
  Json event = {{"trial", r.claim.trial}, {"state", outcome},         {"attempt", r.claim.attempt},
                {"seconds", seconds},     {"metric", header_.metric}, {"value", value ? Json(*value) : Json(nullptr)}};
  if (!error.empty()) event["error"] = error;
  log_.event("trial", event);
  if (outcome == "failed")
    log_.warn(fmt::format("trial {} failed (attempt {}): {}", r.claim.trial, r.claim.attempt, error));
  else
    log_.info(fmt::format("trial {} {}: {} {} in {:.1f} s", r.claim.trial, outcome, header_.metric,
                          value ? fmt::format("{:.4f}", *value) : "none", seconds));
  log_.info(Study::progress(study_.read()));
  exhausted_ = false;  // a failed trial may wait for a retry; a tuner may have more to propose now
}

int TuneSession::run() {
  while (true) {
    start_trials();
    if (running_.empty()) return 0;
    if (log_.stop_requested()) return stop();
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    auto it = std::find_if(running_.begin(), running_.end(), [&](const RunningTrial& r) { return r.pid == pid; });
    if (it == running_.end()) continue;
    RunningTrial r = std::move(*it);
    running_.erase(it);
    finished(std::move(r), status);
  }
}

// The study report and STUDY_DIR/best.toml, the experiment of the best trial.
void write_study_results(const fs::path& study_dir, const StudyHeader& header, Study& study, HostLog& log) {
  auto state = study.read();
  write_study_report(study_dir, state);
  log.info(fmt::format("study report: {}", (study_dir / "report.html").string()));
  if (auto best = state.best_trial()) {
    std::ostringstream text;
    text << "# The best configuration of the study " << study_dir.string() << ": trial " << best << ", "
         << header.metric << " " << fmt::format("{:.4f}", *state.best_value()) << " on the validation split.\n"
         << "# `trafficid run` on this file trains it and tests it, once, on the test split.\n\n"
         << to_toml(trial_config(header, best, state.trials.at(best).assignment)) << '\n';
    write_file_atomically(study_dir / "best.toml", text.str());
    log.info(fmt::format("best: trial {} ({}), its experiment in {}", best, state.trials.at(best).assignment.dump(),
                         (study_dir / "best.toml").string()));
  }
}

fs::path study_folder(const TuneRequest& request, const Experiment& experiment) {
  fs::path study_dir = request.study_dir;
  if (study_dir.empty()) study_dir = experiment.tune->settings.value("study_dir", "");
  if (study_dir.empty()) study_dir = experiment.output_dir / (experiment.name + "-study");
  return study_dir;
}

}  // namespace

int cmd_tune(const GlobalOptions& global, const TuneRequest& request) {
  auto registry = load_plugins(global);
  auto experiment = checked_experiment(registry, request.file, request.overrides);
  if (!experiment) {
    std::cerr << request.file << ": not tuned (`trafficid validate` checks an experiment without running it)\n";
    return 2;
  }
  if (!experiment->tune) {
    std::cerr << fmt::format(
        "error: {} has no [tune] section: add one with a tuner, a metric and [tune.space] "
        "(README: Tuning), or train it as it is with `trafficid run`\n",
        request.file);
    return 2;
  }
  const fs::path study_dir = study_folder(request, *experiment);
  if (!request.emit_slurm.empty()) {
    write_slurm(request, *experiment, study_dir, global);
    std::cerr << fmt::format("{}: a Slurm job array of workers for the study {} (sbatch {})\n", request.emit_slurm,
                             study_dir.string(), request.emit_slurm);
    return 0;
  }
  auto header = make_study_header(*experiment);
  // Trials share the machine: unless [train] says, each takes its share of the cores.
  const unsigned parallel =
      request.parallel ? request.parallel : static_cast<unsigned>(experiment->tune->settings.value("parallel", 1));
  if (header.base_config["train"].value("threads", 0) == 0)
    header.base_config["train"]["threads"] = std::max(1u, std::thread::hardware_concurrency() / parallel);
  HostLog log(log_threshold(global));
  fs::create_directories(study_dir);
  log.open_file(study_dir / "study.log");
  // STUDY_DIR/events.jsonl: the trials as they start and end (each trial's own run has its events).
  auto events = std::make_shared<EventFileWriter>(study_dir / "events.jsonl");
  log.events().subscribe([events](const RunEvent& e) { (*events)(e); });
  log.events().set_run(study_dir.string());
  Study study(study_dir, registry, log, header);
  install_stop_handlers();
  TuneSession session(global, study, header, log, parallel);
  log.info(fmt::format("study {} in {}: tuner {}, {} {}, {} trials, {} at once (worker {})", experiment->name,
                       study_dir.string(), header.tuner, header.space.maximize ? "maximize" : "minimize", header.metric,
                       header.trials, parallel, session.worker()));
  log.info(Study::progress(study.read()));
  if (const int rc = session.run(); rc != 0) return rc;
  write_study_results(study_dir, header, study, log);
  return 0;
}

}  // namespace trafficid::host
