#include "train/workers.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fmt/format.h>
#include <fstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "runtime/child_process.hpp"
#include "runtime/host_log.hpp"
#include "trafficid/dataset_reader.hpp"
#include "trafficid/files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

std::optional<long> env_number(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0') return std::nullopt;
  return n;
}

std::string env_text(const char* name, const char* otherwise) {
  const char* v = std::getenv(name);
  return v && *v ? v : otherwise;
}

fs::path task_file(const fs::path& dir, int seq) { return dir / fmt::format("task-{:04}.json", seq); }

}  // namespace

WorkerPlan worker_plan(unsigned workers, double timeout_seconds) {
  WorkerPlan plan;
  plan.timeout_seconds = timeout_seconds;
  if (workers > 1) {
    plan.world = static_cast<int>(workers);
    plan.session = fmt::format("local-{}", ::getpid());
    return plan;
  }
  // srun sets both for each task of a job step; a batch script or salloc alone is one process.
  const auto rank = env_number("SLURM_PROCID"), tasks = env_number("SLURM_STEP_NUM_TASKS");
  if (workers == 0 && rank && tasks && *tasks > 1 && *rank >= 0 && *rank < *tasks) {
    plan.rank = static_cast<int>(*rank);
    plan.world = static_cast<int>(*tasks);
    plan.slurm = true;
    plan.session = fmt::format("slurm-{}.{}", env_text("SLURM_JOB_ID", "0"), env_text("SLURM_STEP_ID", "0"));
  }
  return plan;
}

fs::path worker_session_dir(const fs::path& run_dir, const WorkerPlan& plan) {
  return fs::absolute(run_dir) / "workers" / plan.session;
}

WorkerPool::WorkerPool(const fs::path& run_dir, WorkerPlan plan, const std::vector<std::string>& plugin_paths)
    : dir_(worker_session_dir(run_dir, plan)), plan_(std::move(plan)) {
  // A session of the same name from an earlier attempt (a reused pid) would hand its tasks on.
  std::error_code ec;
  fs::remove_all(dir_, ec);
  fs::create_directories(dir_);
  if (plan_.slurm) return;  // srun started the others
  std::vector<std::string> args = {"trafficid"};
  for (const auto& p : plugin_paths) args.insert(args.end(), {"--plugin-path", fs::absolute(p).string()});
  args.insert(args.end(), {"worker", dir_.string(), "--world", std::to_string(plan_.world), "--timeout",
                           fmt::format("{}", plan_.timeout_seconds), "--rank"});
  for (int rank = 1; rank < plan_.world; ++rank) {
    auto mine = args;
    mine.push_back(std::to_string(rank));
    // The workers end with worker 0, however it ends.
    children_.push_back(start_child(fmt::format("worker {}", rank), "/proc/self/exe", std::move(mine), SIGTERM));
  }
}

WorkerPool::~WorkerPool() {
  try {
    close();
  } catch (...) {
  }
}

DataParallel WorkerPool::post(Json task) {
  // A local worker that ended already would leave worker 0 waiting for it until the timeout.
  for (std::size_t i = 0; i < children_.size(); ++i) {
    int status = 0;
    if (::waitpid(children_[i], &status, WNOHANG) != children_[i]) continue;
    children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(i));
    throw Error(fmt::format(
        "worker {} of {} ended ({}) before the training of {} began{}; `{}` starts them again", i + 1, plan_.world,
        WIFSIGNALED(status) ? fmt::format("signal {}", WTERMSIG(status))
                            : fmt::format("exit status {}", WEXITSTATUS(status)),
        task.value("model", "a model"), failures().empty() ? "" : " (" + failures() + ")", resume_command()));
  }
  ++posted_;
  DataParallel parallel;
  parallel.rank = 0;
  parallel.world_size = plan_.world;
  parallel.store = dir_ / fmt::format("store-{:04}", posted_);
  parallel.timeout_seconds = plan_.timeout_seconds;
  std::error_code ec;
  fs::remove(parallel.store, ec);
  task["store"] = parallel.store.string();
  task["timeout_seconds"] = plan_.timeout_seconds;
  write_file_atomically(task_file(dir_, posted_), task.dump(2));
  return parallel;
}

std::string WorkerPool::failures() const {
  std::string text;
  for (int rank = 1; rank < plan_.world; ++rank)
    if (std::ifstream in(dir_ / fmt::format("worker-{}.error", rank)); in) {
      std::string line;
      std::getline(in, line);
      text += fmt::format("{}worker {}: {}", text.empty() ? "" : "; ", rank, line);
    }
  return text;
}

std::string WorkerPool::resume_command() const {
  const fs::path run_dir = dir_.parent_path().parent_path();  // RUN_DIR/workers/SESSION
  if (plan_.slurm) return fmt::format("srun trafficid run --resume {}", run_dir.string());
  return fmt::format("trafficid run --resume {} --workers {}", run_dir.string(), plan_.world);
}

void WorkerPool::close() {
  if (closed_) return;
  closed_ = true;
  write_file_atomically(dir_ / "end", "worker 0 ended the session\n");
  // Local workers see the end within a poll; one that does not in 10 s is ended.
  bool all_well = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (const pid_t pid : children_) {
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    all_well = all_well && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  std::error_code ec;
  if (!plan_.slurm && all_well) fs::remove_all(dir_, ec);  // what went wrong stays to be read
}

namespace {

// One training task of worker 0's, on this worker.
void train_task(const Json& task, const WorkerPlan& plan, const PluginRegistry& registry, HostLog& log) {
  const std::string plugin = task.at("plugin").get<std::string>(), name = task.at("model").get<std::string>();
  const PluginInfo* info = registry.find(PluginKind::model, plugin);
  if (!info) throw Error(fmt::format("model plugin {} is not found here (--plugin-path?)", plugin));
  const fs::path dataset = task.at("dataset").get<std::string>();
  const int fold = task.value("fold", 0);
  const DatasetManifest manifest = read_manifest(dataset);
  ModelInput input{manifest.spec, manifest.class_names, task.at("class_weights").get<std::vector<double>>(),
                   task.at("seed").get<std::uint64_t>()};
  auto model = registry.make<Model>(*info, task.at("params"), log, name);
  model([&](Model& m) { m.build(input); });
  DatasetSplit train(dataset, SplitName::train, fold), validation(dataset, SplitName::validation, fold);
  TrainingContext context{task.at("train"), task.at("checkpoints").get<std::string>(), nullptr, &log, {}};
  context.parallel = {plan.rank, plan.world, task.at("store").get<std::string>(),
                      task.value("timeout_seconds", plan.timeout_seconds)};
  model([&](Model& m) { m.fit(train, validation, context); });
}

}  // namespace

int follow_worker_session(const fs::path& session_dir, const WorkerPlan& plan, const PluginRegistry& registry) {
  HostLog log(LogLevel::warning);
  for (int seq = 1;; ++seq) {
    const fs::path file = task_file(session_dir, seq);
    // Worker 0 posts task N before it ends the session: a task is looked for before the end.
    while (!fs::exists(file)) {
      if (fs::exists(session_dir / "end")) return 0;
      if (log.stop_requested()) return 130;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    try {
      train_task(Json::parse(std::ifstream(file)), plan, registry, log);
    } catch (const std::exception& e) {
      std::string why = e.what();
      log.log(LogLevel::error, fmt::format("worker {} of {}: {}", plan.rank, plan.world, why));
      std::replace(why.begin(), why.end(), '\n', ' ');
      write_file_atomically(session_dir / fmt::format("worker-{}.error", plan.rank), why + "\n");
      return 1;
    }
    if (log.stop_requested()) return 130;
  }
}

}  // namespace trafficid::host
