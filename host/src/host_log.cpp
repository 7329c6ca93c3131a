#include "host_log.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <iostream>
#include <unistd.h>

namespace trafficid::host {
namespace {
std::atomic<int> stop_signals{0};

extern "C" void on_stop_signal(int signal) {
  if (stop_signals.fetch_add(1) >= 1) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "";
}
}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

bool stop_flag() { return stop_signals.load() > 0; }

bool HostLog::stop_requested() const { return stop_flag(); }

void HostLog::log(LogLevel level, std::string_view message) {
  std::lock_guard lock(mutex_);
  if (level == LogLevel::warning) ++warnings_;
  if (file_.is_open()) {
    auto now = std::chrono::system_clock::now();
    file_ << fmt::format("{:%Y-%m-%dT%H:%M:%S} {} {}\n", fmt::gmtime(std::chrono::system_clock::to_time_t(now)),
                         level_name(level), message);
    file_.flush();
  }
  if (level < threshold_) return;
  if (level == LogLevel::info) std::cerr << message << '\n';
  else std::cerr << level_name(level) << ": " << message << '\n';
}

void HostLog::open_file(const std::filesystem::path& file) {
  std::lock_guard lock(mutex_);
  file_.open(file, std::ios::app);
}

}  // namespace trafficid::host
