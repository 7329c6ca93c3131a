#include "runtime/events.hpp"

#include <chrono>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <iostream>

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

void EventBus::publish(std::string kind, Json payload) {
  std::lock_guard lock(mutex_);
  RunEvent event{++seq_, std::move(kind), run_, utc_now(), std::move(payload)};
  for (const auto& [handle, subscriber] : subscribers_) subscriber(event);
}

EventBus::Subscriber terminal_printer(LogLevel threshold) {
  return [threshold](const RunEvent& event) {
    if (event.kind != "log") return;
    const std::string level = event.payload.value("level", "info");
    const std::string& message = event.payload["message"].get_ref<const std::string&>();
    const LogLevel l = level == "debug"     ? LogLevel::debug
                       : level == "info"    ? LogLevel::info
                       : level == "warning" ? LogLevel::warning
                                            : LogLevel::error;
    if (l < threshold) return;
    if (l == LogLevel::info) std::cerr << message << '\n';
    else std::cerr << level << ": " << message << '\n';
  };
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

EventFileWriter::EventFileWriter(const std::filesystem::path& file) : out_(file, std::ios::app) {
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
