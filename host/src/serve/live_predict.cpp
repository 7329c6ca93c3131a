#include "serve/live_predict.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <fmt/format.h>
#include <fstream>
#include <httplib.h>
#include <thread>

#include "pipeline/predictor.hpp"
#include "report/csv.hpp"
#include "serve/event_stream.hpp"
#include "runtime/host_log.hpp"
#include "train/trained_model.hpp"
#include "trafficid/error.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

const char* const csv_columns[] = {"t",       "protocol", "src_ip",     "src_port", "dst_ip",     "dst_port",
                                   "packets", "bytes",    "ndpi_label", "class",    "confidence", "abstains"};

}  // namespace

Json network_interfaces() {
  Json out = Json::array();
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator("/sys/class/net", ec)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    std::ifstream in(fs::path("/sys/class/net") / name / "operstate");
    std::string state;
    std::getline(in, state);
    out.push_back({{"name", name}, {"state", state}});
  }
  return out;
}

struct LivePredictions::Job final : PredictionSink {
  std::string id;
  LivePredictRequest request;
  std::string model;  // the model's folder name
  std::string why;
  std::vector<std::string> classes;
  Clock::time_point started = Clock::now();
  HostLog log{LogLevel::warning};  // its own bus: stop() asks it to stop

  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  std::deque<Json> rows;
  std::uint64_t decided = 0;  // rows made; the first kept is number decided - rows.size() + 1
  Json counts = Json::object();
  std::string state = "capturing";  // then "done" or "failed"
  std::string error;
  std::uint64_t packets = 0;
  std::thread thread;

  void flow(const FlowPrediction& p) override {
    Json row = to_json(p, classes);
    row["t"] = std::round(std::chrono::duration<double>(Clock::now() - started).count() * 1000) / 1000;
    std::lock_guard lock(mutex);
    row["n"] = ++decided;
    const std::string& name = classes[p.predicted];
    counts[name] = counts.value(name, 0) + 1;
    rows.push_back(std::move(row));
    if (rows.size() > max_rows) rows.pop_front();
    changed.notify_all();
  }

  void end(std::string final_state, std::string message, std::uint64_t read) {
    std::lock_guard lock(mutex);
    state = std::move(final_state);
    error = std::move(message);
    packets = read;
    changed.notify_all();
  }

  bool running() const {
    std::lock_guard lock(mutex);
    return state == "capturing";
  }

  Json describe() const {
    std::lock_guard lock(mutex);
    return {{"id", id},
            {"run", request.run},
            {"model", model},
            {"why", why},
            {"interface", request.interface},
            {"duration", request.duration},
            {"classes", classes},
            {"state", state},
            {"error", error},
            {"packets", packets},
            {"flows", decided},
            {"counts", counts},
            {"seconds", std::chrono::duration<double>(Clock::now() - started).count()}};
  }
};

LivePredictions::LivePredictions(const PluginRegistry& registry) : registry_(registry) {}

LivePredictions::~LivePredictions() {
  std::map<std::string, std::shared_ptr<Job>> jobs;
  {
    std::lock_guard lock(mutex_);
    jobs.swap(jobs_);
  }
  for (auto& [id, job] : jobs) job->log.events().request_stop();
  for (auto& [id, job] : jobs)
    if (job->thread.joinable()) job->thread.join();
}

std::string LivePredictions::start(const LivePredictRequest& request) {
  bool known = false;
  std::string names;
  for (const auto& i : network_interfaces()) {
    known = known || i["name"] == request.interface;
    names += (names.empty() ? "" : ", ") + i["name"].get<std::string>();
  }
  if (!known) throw Error(fmt::format("no such interface '{}' (interfaces: {})", request.interface, names));
  if (request.model.find('/') != std::string::npos || request.model == "..") throw Error("model: a model's name");
  {
    std::lock_guard lock(mutex_);
    std::size_t running = 0;
    for (const auto& [id, job] : jobs_) running += job->running() ? 1 : 0;
    if (running >= max_running) throw Error(fmt::format("{} live predictions are running: stop one first", running));
  }
  auto job = std::make_shared<Job>();
  job->request = request;
  job->why = "named";
  const fs::path dir =
      request.model.empty() ? resolve_model_dir(request.run_dir, job->why) : request.run_dir / "models" / request.model;
  job->model = dir.filename().string();
  // The model is loaded here, so that a run without one is refused by the request, not later.
  auto model = std::make_shared<TrainedModel>(dir, registry_, job->log);
  job->classes = model->manifest().class_names;
  {
    std::lock_guard lock(mutex_);
    job->id = fmt::format("live-{:04}", next_++);
    jobs_[job->id] = job;
    // The oldest finished ones go (a page still streaming one keeps it until it closes).
    for (auto it = jobs_.begin(); jobs_.size() > max_kept && it != jobs_.end();) {
      if (it->second->running()) {
        ++it;
        continue;
      }
      if (it->second->thread.joinable()) it->second->thread.join();
      it = jobs_.erase(it);
    }
  }
  // The thread holds no reference: the job outlives it (joined before it is dropped), and is never
  // destroyed in its own thread.
  job->thread = std::thread([this, j = job.get(), model] {
    try {
      auto result =
          predict_captures(*model, live_source(registry_, j->request.interface, 0, j->request.duration), registry_,
                           j->log, *j, PredictOptions{j->request.interface, j->request.idle_timeout});
      j->end("done", "", result.capture.packets);
    } catch (const std::exception& e) {
      j->end("failed", e.what(), 0);
    }
  });
  return job->id;
}

std::shared_ptr<LivePredictions::Job> LivePredictions::find(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

bool LivePredictions::stop(const std::string& id) {
  auto job = find(id);
  if (!job || !job->running()) return false;
  job->log.events().request_stop();
  return true;
}

std::optional<Json> LivePredictions::describe(const std::string& id) const {
  auto job = find(id);
  if (!job) return std::nullopt;
  return job->describe();
}

Json LivePredictions::list() const {
  std::vector<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, job] : jobs_) jobs.push_back(job);
  }
  Json out = Json::array();
  for (const auto& job : jobs) out.push_back(job->describe());
  return out;
}

std::optional<std::string> LivePredictions::csv(const std::string& id) const {
  auto job = find(id);
  if (!job) return std::nullopt;
  std::lock_guard lock(job->mutex);
  return csv_table(csv_columns, job->rows);
}

bool LivePredictions::stream(const httplib::Request& req, httplib::Response& res, const std::string& id,
                             const std::atomic<bool>& stopping) const {
  auto job = find(id);
  if (!job) return false;
  const std::uint64_t after = last_event_id(req);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider("text/event-stream", [job, after, &stopping](std::size_t, httplib::DataSink& sink) {
    std::uint64_t last = after;
    auto beat = Clock::now();
    while (sink.is_writable() && !stopping) {
      std::string messages;
      bool ended = false;
      {
        std::unique_lock lock(job->mutex);
        job->changed.wait_for(lock, std::chrono::milliseconds(500),
                              [&] { return job->decided > last || job->state != "capturing"; });
        const std::uint64_t first_kept = job->decided - job->rows.size() + 1;
        for (std::uint64_t n = std::max(last + 1, first_kept); n <= job->decided; ++n)
          messages += fmt::format("id: {}\nevent: flow\ndata: {}\n\n", n, job->rows[n - first_kept].dump());
        last = job->decided;
        if (job->state != "capturing") {
          ended = true;
          messages += fmt::format(
              "event: end\ndata: {}\n\n",
              Json{{"state", job->state}, {"error", job->error}, {"packets", job->packets}, {"flows", job->decided}}
                  .dump());
        }
      }
      if (messages.empty() && Clock::now() - beat > std::chrono::seconds(15)) messages = ": heartbeat\n\n";
      if (!messages.empty()) {
        if (!sink.write(messages.data(), messages.size())) return false;
        beat = Clock::now();
      }
      if (ended) {
        sink.done();
        return true;
      }
    }
    return false;
  });
  return true;
}

}  // namespace trafficid::host
