// The workers of a data-parallel run. Worker 0 is the `trafficid run` process the user started:
// it runs every stage as one process would. The others only help it train: for each LibTorch
// model (and fold) it posts a task into RUN_DIR/workers/SESSION/ (the model, its dataset, its
// checkpoint folder, a rendezvous file), every worker takes its share of each batch and the
// gradients are summed over LibTorch's Gloo process group (libtrafficid_torch). Worker 0 alone
// validates, checkpoints, logs and reports. Models on other libraries train on worker 0 alone.
//
// Workers come from `trafficid run --workers N` (N-1 local processes, `trafficid worker`, that die
// with it) or from Slurm: `srun trafficid run EXP` starts one process per task, and the tasks
// other than 0 (SLURM_PROCID) follow task 0 through the run folder, which must be on a file
// system every node shares (the run folder is then named after the job).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "runtime/plugin_registry.hpp"
#include "trafficid/model.hpp"

namespace trafficid::host {

// Which worker this process is, of how many, and where they meet.
struct WorkerPlan {
  int rank = 0, world = 1;
  std::string session;  // RUN_DIR/workers/SESSION: local-PID or slurm-JOB.STEP
  bool slurm = false;
  double timeout_seconds = 600;
};

// `--workers N` (N > 1: local workers), else srun's task (SLURM_PROCID of SLURM_STEP_NUM_TASKS),
// else one process.
WorkerPlan worker_plan(unsigned workers, double timeout_seconds);

// Worker 0's side: starts the local workers, posts the trainings, ends the session.
class WorkerPool {
 public:
  WorkerPool(const std::filesystem::path& run_dir, WorkerPlan plan, const std::vector<std::string>& plugin_paths);
  ~WorkerPool();  // ends the session (every other worker leaves) and reaps local workers
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int world() const { return plan_.world; }
  bool local() const { return !plan_.slurm; }  // the workers share this machine's cores
  // Posts a training for the other workers: what they need to build the same model and read
  // the same splits (`task`: plugin, params, train, dataset, fold, checkpoints, class_weights,
  // seed). Returns worker 0's part.
  DataParallel post(Json task);
  // What workers that failed wrote before leaving (empty: none did).
  std::string failures() const;
  // How a user goes on with the run after a worker failed (the whole run: its top folder, also
  // when the training was one of its variants').
  std::string resume_command() const;
  void close();

 private:
  std::filesystem::path dir_;
  WorkerPlan plan_;
  std::vector<pid_t> children_;
  int posted_ = 0;
  bool closed_ = false;
};

// A worker other than 0: takes the session's tasks in order until worker 0 ends it; the exit
// status (0, 1 when a training failed here, 130 when stopped).
int follow_worker_session(const std::filesystem::path& session_dir, const WorkerPlan& plan,
                          const PluginRegistry& registry);

// The session folder of a run folder.
std::filesystem::path worker_session_dir(const std::filesystem::path& run_dir, const WorkerPlan& plan);

}  // namespace trafficid::host
