// The host's HostServices: every log line is a `log` event on the run's event bus (the terminal,
// run.log and events.jsonl are its subscribers), SIGINT/SIGTERM or the bus's stop request as the
// stop that long loops poll, the thread count, the work folder.
#pragma once
#include <atomic>
#include <filesystem>
#include <memory>

#include "runtime/events.hpp"
#include "trafficid/host_services.hpp"

namespace trafficid::host {

class HostLog : public HostServices {
 public:
  // A bus of its own whose one subscriber prints lines at or above `threshold` to stderr.
  explicit HostLog(LogLevel threshold = LogLevel::info);
  // Publishes on `bus` (its owner chose the subscribers).
  explicit HostLog(EventBus& bus) : bus_(&bus) {}
  void log(LogLevel level, std::string_view message) override;
  bool stop_requested() const override;
  unsigned threads() const override { return threads_; }
  std::filesystem::path work_dir() const override { return work_dir_; }

  EventBus& events() { return *bus_; }
  void event(std::string kind, Json payload) { bus_->publish(std::move(kind), std::move(payload)); }
  void open_file(const std::filesystem::path& file);  // run.log: appends every later line
  void set_threads(unsigned n) { threads_ = n; }
  void set_work_dir(std::filesystem::path dir) { work_dir_ = std::move(dir); }
  std::size_t warnings() const { return warnings_; }

 private:
  std::unique_ptr<EventBus> own_bus_;
  EventBus* bus_;
  unsigned threads_ = 1;
  std::filesystem::path work_dir_;
  std::atomic<std::size_t> warnings_{0};
};

// Installs SIGINT/SIGTERM handlers that set the stop flag (a second signal ends the process).
void install_stop_handlers();
bool stop_flag();

}  // namespace trafficid::host
