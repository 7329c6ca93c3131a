// What the host offers every plugin object: logging (warnings reach the run log and stderr),
// cooperative cancellation, thread count, and the folder where a plugin may keep files.
#pragma once
#include <filesystem>
#include <string_view>

#include "trafficid/export.hpp"

namespace trafficid {

enum class LogLevel { debug, info, warning, error };

class TRAFFICID_SDK_API HostServices {
 public:
  virtual ~HostServices();
  virtual void log(LogLevel level, std::string_view message) = 0;
  // True once the user asked to stop (SIGINT/SIGTERM): long loops return early, keeping what is done.
  virtual bool stop_requested() const = 0;
  virtual unsigned threads() const = 0;
  virtual std::filesystem::path work_dir() const = 0;

  void warn(std::string_view message) { log(LogLevel::warning, message); }
  void info(std::string_view message) { log(LogLevel::info, message); }
};

}  // namespace trafficid
