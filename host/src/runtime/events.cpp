#include "runtime/events.hpp"

#include <algorithm>
#include <chrono>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string_view>
#include <unistd.h>

namespace trafficid::host {

namespace {

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(now)), ms);
}

}  // namespace

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "";
}

Json RunEvent::to_json() const {
  return {{"seq", seq}, {"kind", kind}, {"run", run}, {"time", time}, {"payload", payload}};
}

RunEvent RunEvent::from_json(const Json& j) {
  if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned() || !j.contains("kind") ||
      !j["kind"].is_string() || !j.contains("run") || !j["run"].is_string() || !j.contains("time") ||
      !j["time"].is_string() || !j.contains("payload") || !j["payload"].is_object())
    throw Error("not a run event: it needs seq (a count), kind, run, time (strings) and payload (an object)");
  return {j["seq"].get<std::uint64_t>(), j["kind"].get<std::string>(), j["run"].get<std::string>(),
          j["time"].get<std::string>(), j["payload"]};
}

std::uint64_t EventBus::subscribe(Subscriber subscriber) {
  std::lock_guard lock(mutex_);
  subscribers_.emplace_back(next_handle_, std::move(subscriber));
  return next_handle_++;
}

void EventBus::unsubscribe(std::uint64_t handle) {
  std::lock_guard lock(mutex_);
  std::erase_if(subscribers_, [&](const auto& s) { return s.first == handle; });
}

void EventBus::set_run(std::string run) {
  std::lock_guard lock(mutex_);
  run_ = std::move(run);
}

void EventBus::continue_after(std::uint64_t seq) {
  std::lock_guard lock(mutex_);
  seq_ = std::max(seq_, seq);
}

void EventBus::publish(std::string kind, Json payload) {
  std::lock_guard lock(mutex_);
  RunEvent event{++seq_, std::move(kind), run_, utc_now(), std::move(payload)};
  for (const auto& [handle, subscriber] : subscribers_) subscriber(event);
}

namespace {

LogLevel level_of(const std::string& level) {
  return level == "debug"     ? LogLevel::debug
         : level == "info"    ? LogLevel::info
         : level == "warning" ? LogLevel::warning
                              : LogLevel::error;
}

// 1234567 -> "1,234,567"
std::string grouped(std::uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

class TerminalPrinter {
 public:
  TerminalPrinter(LogLevel threshold, std::ostream& out, bool live)
      : threshold_(threshold), out_(out), live_(live && threshold <= LogLevel::info) {}

  void operator()(const RunEvent& event) {
    if (event.kind == "log") return print_log(event.payload);
    if (!live_) return;
    if (event.kind == "stage") {
      const std::string state = event.payload.value("state", "");
      if (state == "progress") draw(event.payload);
      else if (state == "started") started_ = std::chrono::steady_clock::now();
      else end_status();
    } else if (event.kind == "run" && event.payload.value("state", "") != "started") {
      end_status();
    }
  }

 private:
  void print_log(const Json& payload) {
    const std::string level = payload.value("level", "info");
    const LogLevel l = level_of(level);
    if (l < threshold_) return;
    erase();
    const std::string& message = payload["message"].get_ref<const std::string&>();
    if (l == LogLevel::info) out_ << message << '\n';
    else out_ << level << ": " << message << '\n';
    show();
  }

  void draw(const Json& p) {
    const auto now = std::chrono::steady_clock::now();
    if (!started_) started_ = now;
    const double seconds = std::chrono::duration<double>(now - *started_).count();
    const auto packets = p.value("packets", std::uint64_t{0});
    const auto bytes = p.value("bytes", std::uint64_t{0});
    const auto whole = static_cast<std::uint64_t>(seconds);
    std::string line = fmt::format("{}: {} packets, {:.1f} MB", p.value("name", "stage"), grouped(packets),
                                   static_cast<double>(bytes) / 1e6);
    if (seconds >= 0.5) line += fmt::format(", {:.0f} k packets/s", static_cast<double>(packets) / seconds / 1e3);
    line += fmt::format(", {}:{:02}", whole / 60, whole % 60);
    erase();
    status_ = std::move(line);
    show();
  }

  // The status line on the screen (a log line erases it and draws it again below itself).
  void show() {
    if (!status_.empty()) {
      out_ << status_;
      shown_ = true;
    }
    out_.flush();
  }

  void erase() {
    if (!shown_) return;
    out_ << "\r\033[K";  // back to the line's start, erase to its end
    shown_ = false;
  }

  void end_status() {
    erase();
    status_.clear();
    out_.flush();
  }

  LogLevel threshold_;
  std::ostream& out_;
  bool live_;
  std::string status_;
  bool shown_ = false;
  std::optional<std::chrono::steady_clock::time_point> started_;
};

}  // namespace

bool stderr_is_live_terminal() {
  const char* term = std::getenv("TERM");
  return ::isatty(STDERR_FILENO) == 1 && !(term && std::string_view(term) == "dumb");
}

EventBus::Subscriber terminal_printer(LogLevel threshold, std::ostream& out, bool live) {
  auto printer = std::make_shared<TerminalPrinter>(threshold, out, live);
  return [printer](const RunEvent& event) { (*printer)(event); };
}

EventBus::Subscriber terminal_printer(LogLevel threshold) {
  return terminal_printer(threshold, std::cerr, stderr_is_live_terminal());
}

LogFileWriter::LogFileWriter(const std::filesystem::path& file) : out_(file, std::ios::app) {
  if (!out_) throw Error(fmt::format("cannot write {}", file.string()));
}

void LogFileWriter::operator()(const RunEvent& event) {
  if (event.kind != "log") return;
  // The time to the second, as run.log always had it.
  out_ << event.time.substr(0, 19) << ' ' << event.payload.value("level", "info") << ' '
       << event.payload.value("message", "") << '\n';
  out_.flush();
}

EventFileWriter::EventFileWriter(const std::filesystem::path& file) {
  {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      const Json j = Json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("seq") && j["seq"].is_number_unsigned())
        last_seq_ = std::max(last_seq_, j["seq"].get<std::uint64_t>());
    }
  }
  out_.open(file, std::ios::app);
  if (!out_) throw Error(fmt::format("cannot write {}", file.string()));
}

void EventFileWriter::operator()(const RunEvent& event) {
  out_ << event.to_json().dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
  out_.flush();
}

std::vector<RunEvent> read_events(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(fmt::format("{}: cannot read it", file.string()));
  std::vector<RunEvent> events;
  std::size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    const bool last = in.peek() == std::char_traits<char>::eof();
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      if (last) break;  // cut by a kill while it was written
      throw Error(fmt::format("{}:{}: not JSON", file.string(), line_no));
    }
    try {
      events.push_back(RunEvent::from_json(j));
    } catch (const Error& e) {
      throw Error(fmt::format("{}:{}: {}", file.string(), line_no, e.what()));
    }
  }
  return events;
}

}  // namespace trafficid::host
