// Run events: every stage, epoch, trial, warning and log line of a run is one event on one bus,
// in one JSON shape {"seq", "kind", "run", "time", "payload"}. Subscribers see each event in
// order, in the publishing thread, under the bus's lock: they must be quick (a front end queues
// what it gets and returns). The terminal, RUN_DIR/run.log and RUN_DIR/events.jsonl are subscribers.
//
// Kinds and their payloads:
//   run      {"state": "started"|"done"|"failed"|"interrupted", "dir", "experiment", "name", ...}
//   stage    {"name": "capture"|"label"|"features"|"dataset"|"evaluation"|"train"|"report",
//             "state": "started"|"progress"|"done"|"reused", ...counts}; the capture stage also
//             sends "read" {"source", "packets", "bytes"} when one of its sources is read to its end
//   model    {"name", "state": "started"|"done"|"kept"|"failed", ...headline}
//   epoch    {"model", "epoch", "epochs", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", ...}
//   trial    {"trial", "state": "started"|"reported"|"stopped"|"done"|"failed"|"pruned", "value", ...}
//   log      {"level": "debug"|"info"|"warning"|"error", "message"}
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "trafficid/host_services.hpp"
#include "trafficid/error.hpp"
#include "trafficid/params.hpp"

namespace trafficid::host {

struct RunEvent {
  std::uint64_t seq = 0;  // 1, 2, ... in the order the bus delivered them
  std::string kind;
  std::string run;   // the run folder (empty before it exists)
  std::string time;  // UTC, ISO 8601 with milliseconds
  Json payload;
  Json to_json() const;
  static RunEvent from_json(const Json& j);  // throws Error on another shape
};

class EventBus {
 public:
  using Subscriber = std::function<void(const RunEvent&)>;
  std::uint64_t subscribe(Subscriber subscriber);  // returns a handle for unsubscribe
  void unsubscribe(std::uint64_t handle);
  void publish(std::string kind, Json payload);
  void set_run(std::string run);
  const std::string& run() const { return run_; }
  // The next event's seq is above `seq` (a resumed run goes on after the events its folder holds).
  void continue_after(std::uint64_t seq);

  // A cooperative stop: long loops poll it (with SIGINT/SIGTERM) and end leaving a resumable run.
  void request_stop() { stop_ = true; }
  bool stop_requested() const { return stop_; }

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::uint64_t, Subscriber>> subscribers_;
  std::uint64_t next_handle_ = 1;
  std::uint64_t seq_ = 0;
  std::string run_;
  std::atomic<bool> stop_{false};
};

// Subscribers the host ships.
// The terminal: log lines at or above `threshold` to `out` ("warning: ..." prefixes). When `live`
// (stderr is a terminal, by default, and info lines are shown) a stage's progress events also draw
// one status line, redrawn in place each second ("capture: 1,204,736 packets, 512.3 MB, 330 k
// packets/s, 0:04") and cleared before a log line and when the stage ends.
EventBus::Subscriber terminal_printer(LogLevel threshold);
EventBus::Subscriber terminal_printer(LogLevel threshold, std::ostream& out, bool live);
// Whether stderr is a terminal that can redraw a line (not TERM=dumb).
bool stderr_is_live_terminal();
// A run.log of timestamped log lines, appended.
class LogFileWriter {
 public:
  explicit LogFileWriter(const std::filesystem::path& file);
  void operator()(const RunEvent& event);

 private:
  std::ofstream out_;
};
// RUN_DIR/events.jsonl: every event, one JSON object per line, appended (a resumed run goes on).
class EventFileWriter {
 public:
  explicit EventFileWriter(const std::filesystem::path& file);
  void operator()(const RunEvent& event);
  // The largest seq the file held when it was opened (0: none): a resumed run's bus continues after it.
  std::uint64_t last_seq() const { return last_seq_; }

 private:
  std::ofstream out_;
  std::uint64_t last_seq_ = 0;
};

// Reads an events.jsonl (a cut last line, from a kill, is left out).
std::vector<RunEvent> read_events(const std::filesystem::path& file);

const char* level_name(LogLevel level);

}  // namespace trafficid::host
