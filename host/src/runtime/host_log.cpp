#include "runtime/host_log.hpp"

#include <csignal>

namespace trafficid::host {
namespace {
std::atomic<int> stop_signals{0};

extern "C" void on_stop_signal(int signal) {
  if (stop_signals.fetch_add(1) >= 1) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}
}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

bool stop_flag() { return stop_signals.load() > 0; }

HostLog::HostLog(LogLevel threshold) : own_bus_(std::make_unique<EventBus>()), bus_(own_bus_.get()) {
  bus_->subscribe(terminal_printer(threshold));
}

bool HostLog::stop_requested() const { return stop_flag() || bus_->stop_requested(); }

void HostLog::log(LogLevel level, std::string_view message) {
  if (level == LogLevel::warning) ++warnings_;
  bus_->publish("log", {{"level", level_name(level)}, {"message", std::string(message)}});
}

void HostLog::open_file(const std::filesystem::path& file) {
  auto writer = std::make_shared<LogFileWriter>(file);
  bus_->subscribe([writer](const RunEvent& e) { (*writer)(e); });
}

}  // namespace trafficid::host
