// The tuning studies of a workspace as the web application sees them: every study folder (a
// journal.jsonl) under studies/ or runs/, whoever started it, its trials replayed from the journal
// (tune/study.hpp); and studies this server starts, each a `trafficid tune` process of its own (the
// program's path and an argument list, no shell), which it can stop (SIGTERM: the running trials
// end resumable) and resume. A study's id is its folder's path under the workspace.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "trafficid/params.hpp"

namespace trafficid::host {

class PluginRegistry;

class StudyBoard {
 public:
  // `program`: the trafficid executable the studies run in.
  StudyBoard(std::filesystem::path workspace, std::filesystem::path program, std::vector<std::string> plugin_paths,
             const PluginRegistry& registry);
  ~StudyBoard();  // stops the studies it started and waits for them

  // Every study (newest first): id, name, tuner, metric, progress counts, best value and trial.
  Json list() const;
  // One study: its header, every trial (status, assignment, value, per-epoch values, seconds,
  // error), the best, whether best.toml and report.html exist, whether it runs.
  std::optional<Json> describe(const std::string& id) const;
  // Starts `trafficid tune EXPERIMENT --set ...` in studies/NAME-TIMESTAMP; its id. Error (with the
  // diagnostics' text) when the experiment is not valid or has no [tune].
  std::string start(const std::filesystem::path& experiment, const std::vector<std::string>& overrides);
  std::string resume(const std::string& id);  // the same command again: the journal goes on
  bool stop(const std::string& id);           // false: not a study this server is running
  // Whether its process (this server's) or one of its trials' processes (anyone's) is alive.
  bool running(const std::string& id) const;
  std::optional<std::filesystem::path> folder(const std::string& id) const;

 private:
  struct Process;
  std::string launch(const std::filesystem::path& dir, const std::filesystem::path& experiment,
                     const std::vector<std::string>& overrides);
  std::filesystem::path workspace_, program_;
  std::vector<std::string> plugin_paths_;
  const PluginRegistry& registry_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Process>> processes_;
};

}  // namespace trafficid::host
