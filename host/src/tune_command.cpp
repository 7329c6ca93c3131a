// `trafficid tune EXP.toml`: a study over the experiment's [tune] space. This process is one worker:
// it claims trials from the study's journal and runs each as a `trafficid run` child process of its
// own (a crashing trial cannot take the study down), up to `parallel` at once. Run the same command
// again after a crash, or on other machines against the same --study-dir, and it goes on.
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "commands.hpp"
#include "experiment.hpp"
#include "host_log.hpp"
#include "plugin_registry.hpp"
#include "schema_check.hpp"
#include "study.hpp"
#include "train_stage.hpp"
#include "trafficid/files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

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
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw Error(fmt::format("cannot start a trial process: {}", std::strerror(errno)));
  if (pid == 0) {
    // The trial dies with its worker: a killed study leaves no orphan training on.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(137);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    int fd = ::open((dir / "trial.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    std::fprintf(stderr, "cannot run /proc/self/exe: %s\n", std::strerror(errno));
    ::_exit(127);
  }
  return pid;
}

void write_slurm(const TuneRequest& request, const Experiment& experiment, const fs::path& study_dir, const GlobalOptions& global) {
  const auto& settings = experiment.tune->settings;
  const unsigned workers = request.workers ? request.workers : static_cast<unsigned>(settings.value("parallel", 1));
  const auto threads = experiment.train.value("threads", std::int64_t{0});
  std::string command = shell_quote(fs::canonical("/proc/self/exe").string());
  for (const auto& p : global.plugin_paths) command += " --plugin-path " + shell_quote(fs::absolute(p).string());
  command += " tune " + shell_quote(fs::absolute(request.file).string()) + " --study-dir " +
             shell_quote(fs::absolute(study_dir).string()) + " --parallel 1";
  for (const auto& o : request.overrides) command += " --set " + shell_quote(o);
  // #SBATCH lines and comments are not shell-quoted: a path there must not end the line (or split it).
  for (const std::string& path : {fs::absolute(study_dir).string(), request.emit_slurm})
    if (auto bad = path.find_first_of("\n\r\t \"'\\%"); bad != std::string::npos)
      throw Error(fmt::format("{}: the path holds a character that a Slurm #SBATCH line cannot carry ({}): choose a path of "
                              "letters, digits and '/-_.'", Json(path).dump(), Json(std::string(1, path[bad])).dump()));
  std::string script = fmt::format(
      "#!/bin/bash\n"
      "# Slurm job array: {0} workers of the study {1}, sharing it through its folder on the\n"
      "# cluster's shared file system (its journal is locked for every change; each worker runs one\n"
      "# trial at a time and claims the next). Submit with: sbatch {2}\n"
      "# A worker that dies leaves its trial to the next worker that looks; resubmitting goes on.\n"
      "#SBATCH --job-name=trafficid-{3}\n"
      "#SBATCH --array=1-{0}\n"
      "#SBATCH --ntasks=1\n"
      "#SBATCH --cpus-per-task={4}\n"
      "#SBATCH --output={5}/slurm-%A_%a.log\n"
      "set -euo pipefail\n"
      "cd {6}\n"
      "exec {7}\n",
      workers, shell_quote(fs::absolute(study_dir).string()), request.emit_slurm, experiment.name,
      threads > 0 ? threads : 4, fs::absolute(study_dir).string(), shell_quote(fs::current_path().string()), command);
  write_file_atomically(request.emit_slurm, script);
  fs::permissions(request.emit_slurm, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
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
    std::cerr << fmt::format("error: {} has no [tune] section: add one with a tuner, a metric and [tune.space] "
                             "(README: Tuning), or train it as it is with `trafficid run`\n", request.file);
    return 2;
  }
  const auto& settings = experiment->tune->settings;
  fs::path study_dir = request.study_dir;
  if (study_dir.empty()) study_dir = settings.value("study_dir", "");
  if (study_dir.empty()) study_dir = experiment->output_dir / (experiment->name + "-study");
  if (!request.emit_slurm.empty()) {
    write_slurm(request, *experiment, study_dir, global);
    std::cerr << fmt::format("{}: a Slurm job array of workers for the study {} (sbatch {})\n", request.emit_slurm,
                             study_dir.string(), request.emit_slurm);
    return 0;
  }
  auto header = make_study_header(*experiment);
  // Trials share the machine: unless [train] says, each takes its share of the cores.
  const unsigned parallel = request.parallel ? request.parallel : static_cast<unsigned>(settings.value("parallel", 1));
  if (header.base_config["train"].value("threads", 0) == 0)
    header.base_config["train"]["threads"] = std::max(1u, std::thread::hardware_concurrency() / parallel);
  HostLog log(log_threshold(global));
  fs::create_directories(study_dir);
  log.open_file(study_dir / "study.log");
  Study study(study_dir, registry, log, header);
  install_stop_handlers();
  const std::string worker = worker_name();
  log.info(fmt::format("study {} in {}: tuner {}, {} {}, {} trials, {} at once (worker {})", experiment->name,
                       study_dir.string(), header.tuner, header.space.maximize ? "maximize" : "minimize", header.metric,
                       header.trials, parallel, worker));
  log.info(Study::progress(study.read()));

  std::vector<RunningTrial> running;
  bool exhausted = false;
  while (true) {
    while (!log.stop_requested() && !exhausted && running.size() < parallel) {
      auto claim = study.claim(worker);
      if (!claim) {
        exhausted = true;
        break;
      }
      const fs::path dir = study.trial_dir(claim->trial);
      if (!fs::exists(dir / "trial.toml")) {
        std::ostringstream text;
        text << "# Trial " << claim->trial << " of the study " << study_dir.string() << ": " << claim->assignment.dump()
             << "\n# `trafficid run` on this file trains it again (and tests it on the test split).\n\n"
             << to_toml(trial_config(header, claim->trial, claim->assignment)) << '\n';
        write_file_atomically(dir / "trial.toml", text.str());
      }
      log.info(fmt::format("trial {} (attempt {}): {}", claim->trial, claim->attempt, claim->assignment.dump()));
      const pid_t pid = start_trial(global, study, *claim);
      RunningTrial r{std::move(*claim), pid, std::chrono::steady_clock::now()};
      running.push_back(std::move(r));
    }
    if (running.empty()) break;
    if (log.stop_requested()) {
      // Stop: each trial finishes its epoch and keeps its checkpoint; the next `tune` goes on with it.
      for (auto& r : running) ::kill(r.pid, SIGINT);
      for (auto& r : running) {
        int status = 0;
        while (::waitpid(r.pid, &status, 0) < 0 && errno == EINTR) {}
        r.claim.lock.release();
      }
      log.warn(fmt::format("stopped: {} trial(s) left unfinished; the same `trafficid tune` command goes on with them",
                           running.size()));
      return 130;
    }
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    auto it = std::find_if(running.begin(), running.end(), [&](const RunningTrial& r) { return r.pid == pid; });
    if (it == running.end()) continue;
    RunningTrial r = std::move(*it);
    running.erase(it);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.started).count();
    const fs::path dir = study.trial_dir(r.claim.trial);
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
    study.finish(r.claim, outcome, value, error, seconds, may_retry);
    if (outcome == "failed") log.warn(fmt::format("trial {} failed (attempt {}): {}", r.claim.trial, r.claim.attempt, error));
    else log.info(fmt::format("trial {} {}: {} {} in {:.1f} s", r.claim.trial, outcome, header.metric,
                              value ? fmt::format("{:.4f}", *value) : "none", seconds));
    log.info(Study::progress(study.read()));
    exhausted = false;  // a failed trial may wait for a retry; a tuner may have more to propose now
  }
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
  return 0;
}

}  // namespace trafficid::host
