// The runs of a workspace as the web application sees them: those in runs/ (whoever started
// them) and those this server started in-process (pipeline/run.hpp), which it can stop. A run's
// id is its folder's path under the workspace ("runs/quickstart-20261205-091500").
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

class Run;
class PluginRegistry;

class RunBoard {
 public:
  // `registry` checks experiments before they start (each run loads its own plugins).
  RunBoard(std::filesystem::path workspace, std::vector<std::string> plugin_paths, const PluginRegistry& registry);
  ~RunBoard();  // stops the runs it started (resumable) and waits for them

  // Every run folder under runs/ (newest first): id, status, experiment, best model, headline.
  Json list() const;
  // One run: its run.json, each model's headline, whether this server runs it. nullopt: no such run.
  std::optional<Json> describe(const std::string& id) const;
  // Starts a run of `experiment` (a file under the workspace) with `overrides`; its id once its
  // folder exists. Error (with the diagnostics' text) when the experiment is not valid.
  std::string start(const std::filesystem::path& experiment, const std::vector<std::string>& overrides);
  std::string resume(const std::string& id);
  bool stop(const std::string& id);  // false: not a run this server is running
  // Whether the run's folder is being written (by this server or another process).
  bool running(const std::string& id) const;
  // The folder of a run id, checked: inside the workspace, an existing run folder.
  std::optional<std::filesystem::path> folder(const std::string& id) const;

 private:
  struct Active;
  std::string launch(std::unique_ptr<Run> run);
  std::string id_of(const std::filesystem::path& dir) const;
  void reap();  // joins runs that ended
  std::filesystem::path workspace_;
  std::vector<std::string> plugin_paths_;
  const PluginRegistry& registry_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Active>> active_;
};

}  // namespace trafficid::host
