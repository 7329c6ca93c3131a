// The web application's live Predict: a run's model (its best, or a named one) on a network
// interface, each flow decided as the labeler ends it (pipeline/predictor.hpp), its row kept in
// memory and streamed to the page: `flow` events numbered from 1 (a reloaded page resumes after
// Last-Event-ID), then one `end` event with the outcome. Stopped by the page, its duration, or the
// server's end.
#pragma once
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "trafficid/params.hpp"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace trafficid::host {

class PluginRegistry;

struct LivePredictRequest {
  std::filesystem::path run_dir;
  std::string run;    // its id, for the page
  std::string model;  // empty: the run's best
  std::string interface;
  double duration = 0;  // seconds; 0: until stopped
  std::optional<double> idle_timeout;
};

// The interfaces of this machine (/sys/class/net) with their state: [{"name", "state"}].
Json network_interfaces();

class LivePredictions {
 public:
  explicit LivePredictions(const PluginRegistry& registry);
  ~LivePredictions();  // stops every capture and waits for it
  // Starts one; Error when the interface is unknown, the model cannot be loaded, or too many run.
  std::string start(const LivePredictRequest& request);
  bool stop(const std::string& id);
  std::optional<Json> describe(const std::string& id) const;  // without the rows
  Json list() const;
  std::optional<std::string> csv(const std::string& id) const;
  // The rows as server-sent events; false when there is no such prediction.
  bool stream(const httplib::Request& req, httplib::Response& res, const std::string& id,
              const std::atomic<bool>& stopping) const;

  static constexpr std::size_t max_running = 4;
  static constexpr std::size_t max_rows = 100'000;  // kept per prediction (counts go on beyond)
  static constexpr std::size_t max_kept = 32;       // predictions listed, finished ones dropped first

 private:
  struct Job;
  std::shared_ptr<Job> find(const std::string& id) const;
  const PluginRegistry& registry_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::uint64_t next_ = 1;
};

}  // namespace trafficid::host
