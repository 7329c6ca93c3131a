// A run of an experiment, startable in-process (the command line, a front end): it loads the
// plugins once, checks the experiment, and drives the pipeline (capture -> label -> features ->
// dataset -> models -> report) into a run folder. Everything it does is an event on its bus
// (RUN_DIR/events.jsonl and run.log are subscribers; add your own before start()). stop() asks
// it to end at the next check, leaving a run that `trafficid run --resume RUN_DIR` continues.
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/events.hpp"

namespace trafficid::host {

// A run that is one trial of a tuning study (`trafficid run ... --trial-of STUDY_DIR --trial-id N`).
struct TrialRequest {
  std::string study_dir;
  std::uint64_t trial = 0;
};

struct RunRequest {
  std::string file;                    // the experiment (for a resume: RUN_DIR/config.resolved.toml)
  std::vector<std::string> overrides;  // --set key.path=value
  std::string run_dir;                 // empty: OUTPUT_DIR/NAME-TIMESTAMP
  bool rebuild = false;                // build the dataset even when an earlier one is current
  bool train = true;                   // false: up to the dataset (`trafficid prepro`)
  bool print_json = false;             // the run's summary on stdout at the end
  std::optional<TrialRequest> trial;
  std::vector<std::string> plugin_paths;
  unsigned workers = 0;         // data-parallel training: N local worker processes (else srun's tasks)
  double worker_timeout = 600;  // seconds any worker waits for the others (train/workers.hpp)
};

class Run {
 public:
  explicit Run(RunRequest request) : request_(std::move(request)) {}
  ~Run();  // a started run is asked to stop and waited for
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  EventBus& events() { return bus_; }
  // Runs in this thread; the exit status (0 done, 1 failed, 2 invalid experiment, 130 interrupted).
  int execute();
  void start();  // execute() in a thread of its own
  void stop() { bus_.request_stop(); }
  int wait();                                  // the exit status of a started run
  bool finished() const { return finished_; }  // execute() has returned

 private:
  RunRequest request_;
  EventBus bus_;
  std::thread thread_;
  int status_ = -1;
  std::atomic<bool> finished_{false};
};

}  // namespace trafficid::host
