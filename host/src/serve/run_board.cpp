#include "serve/run_board.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include "config/experiment.hpp"
#include "pipeline/run.hpp"
#include "report/report.hpp"
#include "serve/workspace_files.hpp"
#include "store/file_lock.hpp"
#include "trafficid/error.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

// A model's scores for a list: its headline, test and validation per-flow macro F1, unseen too.
Json model_summary(const fs::path& metrics_file) {
  auto m = read_json_file(metrics_file);
  if (!m) return nullptr;
  Json s = {{"headline", m->value("headline", Json::object())}};
  for (const char* key : {"test_per_flow", "validation_per_flow"})
    if (m->contains(key)) s[key] = (*m)[key].value("macro_f1", 0.0);
  if (m->contains("unseen")) s["unseen_per_flow"] = (*m)["unseen"]["per_flow"].value("macro_f1", 0.0);
  s["members"] = members_summary(*m);
  if (m->contains("blend")) s["blend"] = (*m)["blend"].value("models", Json::array());  // the models it averages
  return s;
}

}  // namespace

struct RunBoard::Active {
  std::unique_ptr<Run> run;
  std::string dir;  // as the run named its folder
  std::atomic<bool> ended{false};
};

RunBoard::RunBoard(fs::path workspace, std::vector<std::string> plugin_paths, const PluginRegistry& registry)
    : workspace_(fs::weakly_canonical(fs::absolute(workspace))),
      plugin_paths_(std::move(plugin_paths)),
      registry_(registry) {}

RunBoard::~RunBoard() {
  std::map<std::string, std::shared_ptr<Active>> runs;
  {
    std::lock_guard lock(mutex_);
    runs.swap(active_);
  }
  for (auto& [id, a] : runs) a->run->stop();
  for (auto& [id, a] : runs) a->run->wait();
}

std::string RunBoard::id_of(const fs::path& dir) const {
  return fs::relative(fs::weakly_canonical(fs::absolute(dir)), workspace_).generic_string();
}

std::optional<fs::path> RunBoard::folder(const std::string& id) const {
  static const std::regex safe(R"([A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*)");
  if (!std::regex_match(id, safe) || id.find("..") != std::string::npos) return std::nullopt;
  const auto dir = inside_workspace(workspace_, id);
  if (!dir || !fs::is_regular_file(*dir / "run.json")) return std::nullopt;
  return dir;
}

Json RunBoard::list() const {
  Json runs = Json::array();
  const fs::path root = workspace_ / "runs";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory() || !fs::is_regular_file(entry.path() / "run.json")) continue;
    auto record = read_json_file(entry.path() / "run.json");
    if (!record) continue;
    const std::string id = id_of(entry.path());
    Json r = {{"id", id},
              {"name", record->value("name", "")},
              {"experiment", record->value("experiment", "")},
              {"status", record->value("status", "")},
              {"started", record->value("started", "")},
              {"seconds", record->value("seconds", 0.0)},
              {"running", running(id)},
              {"variants", record->contains("variants")}};
    const std::string best = record->value("best_model", "");
    r["best_model"] = best;
    if (!best.empty()) r["best"] = model_summary(entry.path() / "models" / best / "metrics.json");
    runs.push_back(std::move(r));
  }
  std::sort(runs.begin(), runs.end(), [](const Json& a, const Json& b) {
    return a.value("started", "") != b.value("started", "") ? a.value("started", "") > b.value("started", "")
                                                            : a.value("id", "") > b.value("id", "");
  });
  return runs;
}

std::optional<Json> RunBoard::describe(const std::string& id) const {
  const auto dir = folder(id);
  if (!dir) return std::nullopt;
  Json d = {{"id", id}, {"record", read_json_file(*dir / "run.json").value_or(Json::object())}};
  d["running"] = running(id);
  {
    std::lock_guard lock(mutex_);
    auto it = active_.find(id);
    d["stoppable"] = it != active_.end() && !it->second->ended;
  }
  Json models = Json::object();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(*dir / "models", ec))
    if (entry.is_directory()) models[entry.path().filename().string()] = model_summary(entry.path() / "metrics.json");
  d["models"] = models;
  d["report"] = fs::is_regular_file(*dir / "report.html");
  return d;
}

bool RunBoard::running(const std::string& id) const {
  {
    std::lock_guard lock(mutex_);
    auto it = active_.find(id);
    if (it != active_.end() && !it->second->ended) return true;
  }
  const fs::path dir = workspace_ / id;
  auto record = read_json_file(dir / "run.json");
  if (!record || record->value("status", "") != "running") return false;
  // "running" in run.json: a live process holds run.lock; a killed one left it free.
  return !FileLock::try_take(dir / "run.lock").held();
}

std::string RunBoard::start(const fs::path& experiment, const std::vector<std::string>& overrides) {
  Diagnostics diagnostics;
  std::vector<std::string> all = overrides;
  // Runs land in the workspace's runs/, where the board lists them.
  all.push_back("experiment.output_dir=" + Json((workspace_ / "runs").string()).dump());
  if (!load_experiment(experiment, all, registry_, diagnostics)) {
    std::string text;
    for (const auto& d : diagnostics.sorted())
      if (!d.warning) text += (text.empty() ? "" : "\n") + d.format();
    throw Error(text);
  }
  RunRequest request;
  request.file = experiment.string();
  request.overrides = std::move(all);
  request.plugin_paths = plugin_paths_;
  return launch(std::make_unique<Run>(std::move(request)));
}

std::string RunBoard::resume(const std::string& id) {
  const auto dir = folder(id);
  if (!dir) throw Error(fmt::format("{}: no such run in the workspace", id));
  if (running(id)) throw Error(fmt::format("{}: it is running", id));
  RunRequest request;
  request.file = (*dir / "config.resolved.toml").string();
  request.run_dir = dir->string();
  request.plugin_paths = plugin_paths_;
  return launch(std::make_unique<Run>(std::move(request)));
}

bool RunBoard::stop(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = active_.find(id);
  if (it == active_.end() || it->second->ended) return false;
  it->second->run->stop();
  return true;
}

std::string RunBoard::launch(std::unique_ptr<Run> run) {
  reap();
  auto active = std::make_shared<Active>();
  auto folder_named = std::make_shared<std::promise<std::string>>();
  std::future<std::string> named = folder_named->get_future();
  // Subscribers run in the run's thread, one event at a time: they only note what they see.
  run->events().subscribe([active, folder_named](const RunEvent& e) {
    const bool before_folder = active->dir.empty();
    if (e.kind == "log" && e.payload.value("level", "") == "error" && before_folder) {
      active->dir = "-";  // no folder: the promise carries the error
      folder_named->set_exception(std::make_exception_ptr(Error(e.payload.value("message", ""))));
    }
    if (e.kind != "run") return;
    const std::string state = e.payload.value("state", ""), dir = e.payload.value("dir", "");
    if (state == "started" && before_folder) {
      active->dir = dir;
      folder_named->set_value(dir);
    } else if (state != "started" && dir == active->dir) {
      active->ended = true;
    }
  });
  Run* started = run.get();
  active->run = std::move(run);
  started->start();
  // Until the run names its folder, or ends without one.
  while (named.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready)
    if (started->finished() && named.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
      started->wait();
      throw Error("the run ended before it made its folder (the server's terminal says why)");
    }
  std::string dir;
  try {
    dir = named.get();
  } catch (...) {
    started->wait();
    throw;
  }
  const std::string id = id_of(dir);
  std::lock_guard lock(mutex_);
  active_[id] = active;
  return id;
}

void RunBoard::reap() {
  std::vector<std::shared_ptr<Active>> ended;
  {
    std::lock_guard lock(mutex_);
    for (auto it = active_.begin(); it != active_.end();)
      if (it->second->ended) {
        ended.push_back(it->second);
        it = active_.erase(it);
      } else {
        ++it;
      }
  }
  for (auto& a : ended) a->run->wait();
}

}  // namespace trafficid::host
