// The host's HostServices: log lines to stderr and to the run's log file, SIGINT/SIGTERM as a
// stop request that long loops poll, the thread count, the work folder.
#pragma once
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "trafficid/host_services.hpp"

namespace trafficid::host {

class HostLog : public HostServices {
 public:
  explicit HostLog(LogLevel threshold = LogLevel::info) : threshold_(threshold) {}
  void log(LogLevel level, std::string_view message) override;
  bool stop_requested() const override;
  unsigned threads() const override { return threads_; }
  std::filesystem::path work_dir() const override { return work_dir_; }

  void open_file(const std::filesystem::path& file);  // appends; every later line goes there too
  void set_threads(unsigned n) { threads_ = n; }
  void set_work_dir(std::filesystem::path dir) { work_dir_ = std::move(dir); }
  std::size_t warnings() const { return warnings_; }

 private:
  LogLevel threshold_;
  std::mutex mutex_;
  std::ofstream file_;
  unsigned threads_ = 1;
  std::filesystem::path work_dir_;
  std::size_t warnings_ = 0;
};

// Installs SIGINT/SIGTERM handlers that set the stop flag (a second signal ends the process).
void install_stop_handlers();
bool stop_flag();

}  // namespace trafficid::host
