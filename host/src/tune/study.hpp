// A tuning study lives in a folder: an append-only journal (journal.jsonl, one JSON event a line,
// fsync'd) and one run folder per trial (trials/0001/...). Everything else is rebuilt from the
// journal: the tuner (replayed through ask/report/tell), and which trials are done, pruned,
// failed, running or waiting. Every change happens under an exclusive lock of the journal, so
// several `trafficid tune` processes (on one machine or on a cluster's shared file system) share
// a study; a process holds a lock on each trial it runs, so a trial whose process died is
// claimed again by the next one that looks.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/experiment.hpp"
#include "store/file_lock.hpp"
#include "tune/study_journal.hpp"
#include "trafficid/host_services.hpp"
#include "trafficid/tuner.hpp"

namespace trafficid::host {

struct TrialRecord {
  std::uint64_t id = 0;
  Json assignment = Json::object();
  std::string status = "waiting";  // waiting (proposed or to be retried), running, done, pruned, failed
  int attempts = 0;                // starts so far
  std::map<int, double> reports;   // epoch -> metric value
  std::optional<double> value;     // done: its best value; pruned: the best it reached
  std::string worker, error;
  double seconds = 0;
};

StudyHeader make_study_header(const Experiment& experiment);

// The journal's state at one moment, the tuner replayed to it.
struct StudyState {
  StudyHeader header;
  PluginHandle<Tuner> tuner;  // every call guarded
  std::map<std::uint64_t, TrialRecord> trials;
  std::uint64_t proposed = 0;
  double started_unix = 0;  // when the study's first line was written

  std::optional<double> best_value() const;
  std::uint64_t best_trial() const;  // 0: none yet
  bool better(double a, double b) const { return header.space.maximize ? a > b : a < b; }
};

class Study {
 public:
  // Opens (creating when absent) the study in `dir`. With `header`, a study that exists must have
  // been made from the same configuration (else Error); without, it must exist.
  Study(std::filesystem::path dir, const PluginRegistry& registry, HostServices& host,
        const std::optional<StudyHeader>& header);

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path trial_dir(std::uint64_t id) const;

  // Under the journal's lock: the state, replayed from the journal.
  StudyState read() const;

  // What a worker runs next: a waiting trial, a running one whose process is gone, or a new
  // proposal while the budget allows; its lock is held (in `lock`) until finish().
  struct Claim {
    std::uint64_t trial = 0;
    Json assignment;
    int attempt = 0;
    FileLock lock;
  };
  std::optional<Claim> claim(const std::string& worker);
  // The trial's process ended: done (value), pruned (best value seen), or failed (error). A failure
  // that would recur (training diverged) is not retried. A value must be finite.
  void finish(Claim& claim, const std::string& status, std::optional<double> value, const std::string& error,
              double seconds, bool may_retry = true);
  // In a trial's own process, after each epoch: journals the value and says whether to go on
  // (the tuner's decision, then the median pruner's). A step journaled already (a resumed trial)
  // gets its journaled decision.
  TrialDecision report(std::uint64_t trial, int step, double value);

  // "5 done, 1 running, 2 pruned, 0 failed of 20; best 0.8123 (trial 3)"
  static std::string progress(const StudyState& state);

 private:
  StudyState replay(const std::vector<Json>& events) const;
  void append(const std::vector<Json>& events) const;
  std::vector<Json> events() const;

  std::filesystem::path dir_, journal_;
  const PluginRegistry& registry_;
  HostServices& host_;
  FileLock lock_journal() const;
};

// The trial's experiment: the base config with the trial's values, its own seed, absolute paths.
Json trial_config(const StudyHeader& header, std::uint64_t trial, const Json& assignment);
// A trial's seed from the study's and the trial's number (never 0, which means "the experiment's").
std::int64_t trial_seed(std::uint64_t study_seed, std::uint64_t trial);
// STUDY_DIR/report.html: every trial's config and value, the best configuration, the optimisation
// history and the intermediate values, in the run report's style.
void write_study_report(const std::filesystem::path& study_dir, const StudyState& state);
// The value the study judges an epoch by, from the epoch's JSON (to_json(EpochMetrics), a line
// of metrics.jsonl): "val.macro_f1" is its "val_macro_f1"; Error when the model does not report it.
double metric_of(const std::string& metric, const Json& epoch);

}  // namespace trafficid::host
