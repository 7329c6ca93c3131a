#include "tune/study.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <unistd.h>

#include "store/file_lock.hpp"
#include "store/hashing.hpp"
#include "runtime/plugin_registry.hpp"
#include "config/schema_check.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

double now_unix() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

Json dimension_json(const SearchDimension& d) {
  return {{"path", d.path}, {"kind", to_string(d.kind)}, {"choices", d.choices}, {"low", d.low}, {"high", d.high}};
}

}  // namespace

// The journal's lock: a separate file, so the journal itself is only ever appended to.
FileLock Study::lock_journal() const { return FileLock::wait(fs::path(journal_).replace_extension(".lock")); }

StudyHeader make_study_header(const Experiment& experiment) {
  const auto& tune = *experiment.tune;
  Json base = experiment.resolved;
  base.erase("tune");
  Json dimensions = Json::array();
  for (const auto& d : tune.space.dimensions) dimensions.push_back(dimension_json(d));
  const auto& s = tune.settings;
  Json j = {{"event", "study"},
            {"version", 1},
            {"name", experiment.name},
            {"experiment", experiment.file.string()},
            {"tuner", tune.plugin->name},
            {"tuner_version", tune.plugin->version},
            {"tuner_params", tune.params},
            {"dimensions", dimensions},
            {"maximize", tune.space.maximize},
            {"seed", tune.space.seed},
            {"max_steps", tune.space.max_steps},
            {"metric", tune.metric},
            {"trials", s.value("trials", 20)},
            {"time_budget", s.value("time_budget", 0.0)},
            {"retries", s.value("retries", 1)},
            {"pruner", s.value("pruner", "none")},
            {"pruner_warmup", s.value("pruner_warmup", 1)},
            {"pruner_min_trials", s.value("pruner_min_trials", 3)},
            {"base_config", base}};
  Json hashed = j;
  j["config_hash"] = sha256_text(hashed.dump()).substr(0, 16);
  return parse_study_header(j);
}

std::optional<double> StudyState::best_value() const {
  std::optional<double> best;
  for (const auto& [id, t] : trials)
    if (t.status == "done" && t.value && (!best || better(*t.value, *best))) best = t.value;
  return best;
}

std::uint64_t StudyState::best_trial() const {
  auto best = best_value();
  for (const auto& [id, t] : trials)
    if (best && t.status == "done" && t.value == best) return id;
  return 0;
}

Study::Study(fs::path dir, const PluginRegistry& registry, HostServices& host, const std::optional<StudyHeader>& header)
    : dir_(std::move(dir)), journal_(dir_ / "journal.jsonl"), registry_(registry), host_(host) {
  std::error_code ec;
  fs::create_directories(dir_ / "trials", ec);
  if (ec) throw Error(fmt::format("cannot create the study folder {}: {}", dir_.string(), ec.message()));
  const FileLock lock = lock_journal();
  auto existing = events();
  if (existing.empty()) {
    if (!header) throw Error(fmt::format("{}: no study here (no journal.jsonl)", dir_.string()));
    Json first = header->json;
    first["created_unix"] = now_unix();
    append({first});
    return;
  }
  if (existing.front().value("event", "") != "study")
    throw Error(fmt::format("{}: its first line is not a study header; is this a trafficid study?", journal_.string()));
  if (header && existing.front().value("config_hash", "") != header->json.value("config_hash", ""))
    throw Error(
        fmt::format("{} holds a study of another configuration (the experiment, its --set values or the tuner "
                    "changed): give another --study-dir, or remove that folder to start again",
                    dir_.string()));
}

fs::path Study::trial_dir(std::uint64_t id) const { return dir_ / "trials" / fmt::format("{:04}", id); }

std::vector<Json> Study::events() const {
  std::ifstream in(journal_, std::ios::binary);
  if (!in) return {};
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  JournalText journal = parse_journal(text, journal_);
  if (journal.cut_at) {
    // A line cut by a crash while it was written: it never happened. Cut it off (we hold the lock)
    // so the next event starts on a line of its own.
    host_.warn(fmt::format("{}:{}: an incomplete last line (a crash while writing it) is dropped", journal_.string(),
                           journal.events.size() + 1));
    if (::truncate(journal_.c_str(), static_cast<off_t>(*journal.cut_at)) != 0)
      throw Error(fmt::format("cannot repair {}: {}", journal_.string(), std::strerror(errno)));
  }
  return std::move(journal.events);
}

void Study::append(const std::vector<Json>& events) const {
  std::string text;
  for (const auto& e : events) text += e.dump() + "\n";
  int fd = ::open(journal_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(fmt::format("cannot write {}: {}", journal_.string(), std::strerror(errno)));
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      throw Error(fmt::format("cannot write {}: {}", journal_.string(), std::strerror(errno)));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    throw Error(fmt::format("cannot sync {}: {}", journal_.string(), std::strerror(errno)));
  }
  ::close(fd);
}

StudyState Study::replay(const std::vector<Json>& events) const {
  StudyState state;
  state.header = parse_study_header(events.at(0));
  state.started_unix = events.at(0).value("created_unix", 0.0);
  const PluginInfo* plugin = registry_.find(PluginKind::tuner, state.header.tuner);
  if (!plugin) throw Error(fmt::format("the study's tuner plugin '{}' is not installed here", state.header.tuner));
  state.tuner = registry_.make<Tuner>(*plugin, state.header.tuner_params, host_, state.header.tuner);
  state.tuner([&](Tuner& t) { t.start(state.header.space); });
  for (std::size_t i = 1; i < events.size(); ++i) {
    const Json& e = events[i];
    const std::string kind = e.value("event", "");
    const auto id = e.value("trial", std::uint64_t{0});
    if (kind == "propose") {
      auto p = state.tuner([](Tuner& t) { return t.ask(); });
      if (!p || p->trial_id != id || p->assignment != e.at("assignment"))
        throw Error(
            fmt::format("{}:{}: replaying the journal, tuner '{}' proposed {} where the journal holds trial {} {}: "
                        "a tuner must be deterministic (seed it from the search space's seed)",
                        journal_.string(), i + 1, state.header.tuner,
                        p ? fmt::format("trial {} {}", p->trial_id, p->assignment.dump()) : "nothing", id,
                        e.at("assignment").dump()));
      auto& t = state.trials[id];
      t.id = id;
      t.assignment = e.at("assignment");
      ++state.proposed;
    } else if (!state.trials.count(id)) {
      throw Error(
          fmt::format("{}:{}: a '{}' event of trial {}, which was never proposed; the journal was edited or damaged",
                      journal_.string(), i + 1, kind, id));
    } else if (kind == "start") {
      auto& t = state.trials.at(id);
      t.status = "running";
      t.attempts = e.at("attempt").get<int>();
      t.worker = e.value("worker", "");
    } else if (kind == "report") {
      // A journal of an older trafficid may hold a diverged epoch as null: not a report.
      if (!e.contains("value") || !e["value"].is_number()) continue;
      const int step = e.at("step").get<int>();
      const double value = e.at("value").get<double>();
      state.tuner([&](Tuner& t) { return t.report(id, step, value); });
      state.trials.at(id).reports[step] = value;
    } else if (kind == "end") {
      auto& t = state.trials.at(id);
      t.status = e.at("status").get<std::string>();
      t.error = e.value("error", "");
      t.seconds += e.value("seconds", 0.0);
      t.value = e.contains("value") && e["value"].is_number() ? std::optional<double>(e["value"].get<double>())
                                                              : std::nullopt;
      if (t.status == "failed" && t.attempts <= state.header.retries && e.value("retry", true)) {
        t.status = "waiting";  // run again
        continue;
      }
      std::optional<double> told = t.status == "done" ? t.value : std::nullopt;
      state.tuner([&](Tuner& t) { t.tell(id, told); });
    }
  }
  return state;
}

StudyState Study::read() const {
  const FileLock lock = lock_journal();
  return replay(events());
}

std::optional<Study::Claim> Study::claim(const std::string& worker) {
  const FileLock lock = lock_journal();
  auto state = replay(events());
  auto take = [&](std::uint64_t id, const Json& assignment, int attempt, bool proposed) -> std::optional<Claim> {
    fs::create_directories(trial_dir(id));
    FileLock held = FileLock::try_take(trial_dir(id) / ".lock");
    if (!held.held()) return std::nullopt;  // its worker is alive and runs it
    std::vector<Json> out;
    if (proposed) out.push_back({{"event", "propose"}, {"trial", id}, {"assignment", assignment}, {"t", now_unix()}});
    out.push_back({{"event", "start"}, {"trial", id}, {"attempt", attempt}, {"worker", worker}, {"t", now_unix()}});
    append(out);
    return Claim{id, assignment, attempt, std::move(held)};
  };
  // First what was begun: trials to retry, and trials whose process is gone (its lock is free).
  for (const auto& [id, t] : state.trials)
    if (t.status == "waiting" || t.status == "running")
      if (auto c = take(id, t.assignment, t.attempts + 1, false)) return c;
  // Then a new trial, while the budget lasts.
  if (state.proposed >= state.header.trials) return std::nullopt;
  if (state.header.time_budget > 0 && now_unix() - state.started_unix >= state.header.time_budget) return std::nullopt;
  auto proposal = state.tuner([](Tuner& t) { return t.ask(); });
  if (!proposal) return std::nullopt;
  if (state.trials.count(proposal->trial_id))
    throw Error(fmt::format("tuner '{}' proposed trial {} twice", state.header.tuner, proposal->trial_id));
  return take(proposal->trial_id, proposal->assignment, 1, true);
}

void Study::finish(Claim& claim, const std::string& status, std::optional<double> value, const std::string& error,
                   double seconds, bool may_retry) {
  if (value && !std::isfinite(*value))
    throw Error(fmt::format("trial {}: its value {} is not a number", claim.trial, *value));
  {
    const FileLock lock = lock_journal();
    Json e = {{"event", "end"},           {"trial", claim.trial}, {"status", status},
              {"attempt", claim.attempt}, {"seconds", seconds},   {"t", now_unix()}};
    if (value) e["value"] = *value;  // no value (a failed trial): no key, never a null
    if (!error.empty()) e["error"] = error;
    if (!may_retry) e["retry"] = false;
    append({e});
  }
  claim.lock.release();
}

TrialDecision Study::report(std::uint64_t trial, int step, double value) {
  if (!std::isfinite(value))
    throw Error(fmt::format("trial {}: epoch {} reports {}, which the study cannot compare: the trial diverged", trial,
                            step, value));
  const FileLock lock = lock_journal();
  auto journal = events();
  for (const auto& e : journal)
    if (e.value("event", "") == "report" && e.value("trial", std::uint64_t{0}) == trial && e.value("step", 0) == step)
      return e.value("decision", "continue") == "stop" ? TrialDecision::stop : TrialDecision::keep_going;
  auto state = replay(journal);
  TrialDecision decision = state.tuner([&](Tuner& t) { return t.report(trial, step, value); });
  std::string why = decision == TrialDecision::stop ? state.header.tuner : "";
  // The median pruner: below the median of the other trials' values at this epoch.
  if (decision == TrialDecision::keep_going && state.header.pruner == "median" && step > state.header.pruner_warmup &&
      (state.header.space.max_steps <= 0 || step < state.header.space.max_steps)) {
    std::vector<double> others;
    for (const auto& [id, t] : state.trials)
      if (id != trial)
        if (auto r = t.reports.find(step); r != t.reports.end()) others.push_back(r->second);
    if (static_cast<std::int64_t>(others.size()) >= state.header.pruner_min_trials) {
      std::sort(others.begin(), others.end());
      const std::size_t n = others.size();
      const double median = n % 2 ? others[n / 2] : (others[n / 2 - 1] + others[n / 2]) / 2;
      if (state.better(median, value)) {
        decision = TrialDecision::stop;
        why = "median";
      }
    }
  }
  Json e = {{"event", "report"},
            {"trial", trial},
            {"step", step},
            {"value", value},
            {"decision", decision == TrialDecision::stop ? "stop" : "continue"},
            {"t", now_unix()}};
  if (!why.empty()) e["by"] = why;
  append({e});
  return decision;
}

std::string Study::progress(const StudyState& s) {
  std::map<std::string, int> n;
  for (const auto& [id, t] : s.trials) ++n[t.status];
  std::string best = "none yet";
  if (auto b = s.best_value()) best = fmt::format("{:.4f} (trial {})", *b, s.best_trial());
  return fmt::format("{} done, {} running, {} pruned, {} failed, {} waiting of {}; best {} {}", n["done"], n["running"],
                     n["pruned"], n["failed"], n["waiting"], s.header.trials, s.header.metric, best);
}

std::int64_t trial_seed(std::uint64_t study_seed, std::uint64_t trial) {
  std::uint64_t z = study_seed * 0x9E3779B97F4A7C15ull + trial;  // splitmix64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<std::int64_t>(z % 2147483647ull) + 1;
}

Json trial_config(const StudyHeader& header, std::uint64_t trial, const Json& assignment) {
  Json config = header.base_config;
  for (const auto& [path, value] : assignment.items()) set_json_path(config, path, value);
  set_json_path(config, "train.seed", trial_seed(header.space.seed, trial));
  // A trial runs from its own folder, perhaps on another machine: no path may be relative.
  auto& exp = config["experiment"];
  exp["output_dir"] = fs::absolute(exp.value("output_dir", "runs")).lexically_normal().string();
  exp["name"] = header.name;
  return config;
}

double metric_of(const std::string& metric, const Json& epoch) {
  const std::string key = "val_" + metric.substr(metric.find('.') + 1);  // "val.macro_f1" -> "val_macro_f1"
  if (!epoch.contains(key) || !epoch[key].is_number())
    throw Error(fmt::format("the model reports no {} for epoch {} (no '{}' in its epoch metrics)", metric,
                            epoch.value("epoch", 0), key));
  return epoch[key].get<double>();
}

}  // namespace trafficid::host
