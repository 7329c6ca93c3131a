#include "serve/study_board.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fstream>
#include <regex>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "runtime/child_process.hpp"
#include "config/experiment.hpp"
#include "runtime/host_log.hpp"
#include "serve/workspace_files.hpp"
#include "store/file_lock.hpp"
#include "trafficid/files.hpp"
#include "tune/study.hpp"
#include "trafficid/error.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

// A trial folder is a run folder: its process holds run.lock while it trains.
bool trial_alive(const fs::path& dir) {
  auto record = read_json_file(dir / "run.json");
  return record && record->value("status", "") == "running" && !FileLock::try_take(dir / "run.lock").held();
}

Json trial_json(const TrialRecord& t) {
  Json reports = Json::array();
  for (const auto& [epoch, value] : t.reports) reports.push_back({epoch, value});
  return {{"id", t.id},
          {"status", t.status},
          {"assignment", t.assignment},
          {"attempts", t.attempts},
          {"reports", reports},
          {"value", t.value ? Json(*t.value) : Json()},
          {"seconds", t.seconds},
          {"worker", t.worker},
          {"error", t.error}};
}

}  // namespace

// A `trafficid tune` process this server started; a thread waits for it.
struct StudyBoard::Process {
  pid_t pid = -1;
  std::atomic<bool> ended{false};
  std::thread waiter;
  ~Process() {
    if (waiter.joinable()) waiter.join();
  }
};

StudyBoard::StudyBoard(fs::path workspace, fs::path program, std::vector<std::string> plugin_paths,
                       const PluginRegistry& registry)
    : workspace_(fs::weakly_canonical(fs::absolute(workspace))),
      program_(std::move(program)),
      plugin_paths_(std::move(plugin_paths)),
      registry_(registry) {}

StudyBoard::~StudyBoard() {
  std::map<std::string, std::shared_ptr<Process>> processes;
  {
    std::lock_guard lock(mutex_);
    processes.swap(processes_);
  }
  for (auto& [id, p] : processes)
    if (!p->ended) ::kill(p->pid, SIGTERM);
  processes.clear();  // each waits for its process
}

std::optional<fs::path> StudyBoard::folder(const std::string& id) const {
  static const std::regex safe(R"((studies|runs)/[A-Za-z0-9_.\-]+)");
  if (!std::regex_match(id, safe) || id.find("..") != std::string::npos) return std::nullopt;
  const auto dir = inside_workspace(workspace_, id);
  if (!dir || !fs::is_regular_file(*dir / "journal.jsonl")) return std::nullopt;
  return dir;
}

bool StudyBoard::running(const std::string& id) const {
  {
    std::lock_guard lock(mutex_);
    auto it = processes_.find(id);
    if (it != processes_.end() && !it->second->ended) return true;
  }
  std::error_code ec;
  for (const auto& trial : fs::directory_iterator(workspace_ / id / "trials", ec))
    if (trial_alive(trial.path())) return true;
  return false;
}

Json StudyBoard::list() const {
  std::vector<std::pair<fs::file_time_type, Json>> found;
  for (const char* root : {"studies", "runs"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(workspace_ / root, ec)) {
      const std::string id = std::string(root) + "/" + entry.path().filename().string();
      if (!folder(id)) continue;
      auto d = describe(id);
      if (!d) continue;
      Json summary = {{"id", id},
                      {"name", (*d)["name"]},
                      {"tuner", (*d)["tuner"]},
                      {"metric", (*d)["metric"]},
                      {"maximize", (*d)["maximize"]},
                      {"budget", (*d)["budget"]},
                      {"counts", (*d)["counts"]},
                      {"best", (*d)["best"]},
                      {"running", (*d)["running"]}};
      found.emplace_back(fs::last_write_time(entry.path() / "journal.jsonl", ec), std::move(summary));
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  Json out = Json::array();
  for (auto& [time, s] : found) out.push_back(std::move(s));
  return out;
}

std::optional<Json> StudyBoard::describe(const std::string& id) const {
  const auto dir = folder(id);
  if (!dir) return std::nullopt;
  HostLog log(LogLevel::error);
  StudyState state;
  try {
    state = Study(*dir, registry_, log, std::nullopt).read();
  } catch (const Error& e) {
    return Json{{"id", id}, {"error", e.what()}, {"running", false}};
  }
  Json counts = {{"done", 0}, {"running", 0}, {"pruned", 0}, {"failed", 0}, {"waiting", 0}};
  Json trials = Json::array();
  for (const auto& [n, t] : state.trials) {
    counts[t.status] = counts.value(t.status, 0) + 1;
    trials.push_back(trial_json(t));
  }
  Json best = nullptr;
  if (const auto value = state.best_value()) best = {{"trial", state.best_trial()}, {"value", *value}};
  const StudyHeader& h = state.header;
  return Json{{"id", id},
              {"name", h.name},
              {"tuner", h.tuner},
              {"metric", h.metric},
              {"maximize", h.space.maximize},
              {"pruner", h.pruner},
              {"budget", h.trials},
              {"space", h.json.value("space", Json())},
              {"counts", counts},
              {"progress", Study::progress(state)},
              {"best", best},
              {"trials", trials},
              {"best_toml", fs::is_regular_file(*dir / "best.toml")},
              {"report", fs::is_regular_file(*dir / "report.html")},
              {"resumable", fs::is_regular_file(*dir / "serve.json")},
              {"running", running(id)}};
}

std::string StudyBoard::start(const fs::path& experiment, const std::vector<std::string>& overrides) {
  Diagnostics diagnostics;
  auto checked = load_experiment(experiment, overrides, registry_, diagnostics);
  if (!checked) {
    std::string text;
    for (const auto& d : diagnostics.sorted())
      if (!d.warning) text += (text.empty() ? "" : "\n") + d.format();
    throw Error(text);
  }
  if (!checked->tune) throw Error(fmt::format("{} has no [tune] section: start it as a run", experiment.string()));
  const auto now = std::chrono::system_clock::now();
  const std::string id =
      fmt::format("studies/{}-{:%Y%m%d-%H%M%S}", checked->name, fmt::gmtime(std::chrono::system_clock::to_time_t(now)));
  const fs::path dir = workspace_ / id;
  if (fs::exists(dir)) throw Error(fmt::format("{} exists: start it again in a second", id));
  fs::create_directories(dir);
  // What resume runs again.
  write_file_atomically(
      dir / "serve.json",
      Json{{"experiment", fs::relative(experiment, workspace_).generic_string()}, {"set", overrides}}.dump(2) + "\n");
  return launch(dir, experiment, overrides);
}

std::string StudyBoard::resume(const std::string& id) {
  const auto dir = folder(id);
  if (!dir) throw Error(fmt::format("{}: no such study in the workspace", id));
  if (running(id)) throw Error(fmt::format("{}: it is running", id));
  auto how = read_json_file(*dir / "serve.json");
  if (!how)
    throw Error(fmt::format("{} was not started here: go on with the `trafficid tune` command that started it", id));
  const auto experiment = inside_workspace(workspace_, how->value("experiment", ""));
  if (!experiment || !fs::is_regular_file(*experiment))
    throw Error(fmt::format("{}: its experiment {} is gone", id, how->value("experiment", "")));
  return launch(*dir, *experiment, how->value("set", std::vector<std::string>()));
}

bool StudyBoard::stop(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = processes_.find(id);
  if (it == processes_.end() || it->second->ended) return false;
  ::kill(it->second->pid, SIGTERM);  // tune stops its trials, resumable, and writes what it has
  return true;
}

std::string StudyBoard::launch(const fs::path& dir, const fs::path& experiment,
                               const std::vector<std::string>& overrides) {
  std::vector<std::string> args = {program_.string(), "--quiet"};
  for (const auto& p : plugin_paths_) args.insert(args.end(), {"--plugin-path", p});
  args.insert(args.end(), {"tune", experiment.string(), "--study-dir", dir.string()});
  for (const auto& o : overrides) args.insert(args.end(), {"--set", o});
  // The study ends (resumable) with the server.
  const std::string output = (dir / "tune.out").string();
  const pid_t pid = start_child("a study process", program_.string(), std::move(args), SIGTERM, output);
  auto process = std::make_shared<Process>();
  process->pid = pid;
  process->waiter = std::thread([p = process.get()] {
    int status = 0;
    while (::waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
    }
    p->ended = true;
  });
  const std::string id = fs::relative(dir, workspace_).generic_string();
  {
    std::lock_guard lock(mutex_);
    for (auto it = processes_.begin(); it != processes_.end();)
      it = it->second->ended ? processes_.erase(it) : std::next(it);
    processes_[id] = process;
  }
  // Until the study's journal exists (its id is then a study), or the process ended without one.
  while (!fs::is_regular_file(dir / "journal.jsonl")) {
    if (process->ended) {
      std::ifstream in(output);
      const std::string said((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      throw Error(fmt::format("the study ended before it began: {}", said.empty() ? "(it said nothing)" : said));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return id;
}

}  // namespace trafficid::host
