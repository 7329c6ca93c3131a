#include "serve/event_stream.hpp"

#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <httplib.h>
#include <thread>

#include "trafficid/params.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

std::vector<std::string> FileTail::lines() {
  std::vector<std::string> out;
  std::ifstream in(file_, std::ios::binary);
  if (!in) return out;
  in.seekg(static_cast<std::streamoff>(offset_));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t start = 0;
  for (std::size_t end = text.find('\n'); end != std::string::npos; end = text.find('\n', start)) {
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  offset_ += start;
  return out;
}

std::uint64_t last_event_id(const httplib::Request& req) {
  const std::string given =
      req.has_header("Last-Event-ID") ? req.get_header_value("Last-Event-ID") : req.get_param_value("after");
  try {
    return given.empty() ? 0 : std::stoull(given);
  } catch (const std::exception&) {
    return 0;
  }
}

namespace {

using Clock = std::chrono::steady_clock;

// Sends the new events after `last`; false when the client went away.
bool send_new(FileTail& tail, std::uint64_t& last, httplib::DataSink& sink, bool& sent) {
  for (const auto& line : tail.lines()) {
    const Json event = Json::parse(line, nullptr, false);
    if (event.is_discarded() || !event.is_object()) continue;
    const auto seq = event.value("seq", std::uint64_t{0});
    if (seq <= last) continue;
    last = seq;
    const std::string message = fmt::format("id: {}\nevent: {}\ndata: {}\n\n", seq, event.value("kind", "event"), line);
    if (!sink.write(message.data(), message.size())) return false;
    sent = true;
  }
  return true;
}

}  // namespace

void stream_events(const httplib::Request& req, httplib::Response& res, const fs::path& dir,
                   std::function<bool()> running, const std::atomic<bool>& stopping) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  const std::uint64_t after = last_event_id(req);
  res.set_chunked_content_provider(
      "text/event-stream", [dir, running, after, &stopping](std::size_t, httplib::DataSink& sink) {
        FileTail tail(dir / "events.jsonl");
        std::uint64_t last = after;
        auto beat = Clock::now();
        int quiet_rounds = 0;  // rounds with nothing new while the run is not running
        while (sink.is_writable() && !stopping) {
          bool sent = false;
          if (!send_new(tail, last, sink, sent)) return false;
          if (sent) {
            beat = Clock::now();
            quiet_rounds = 0;
            continue;
          }
          // Two quiet rounds after it stopped: its last lines are written (a run's end is
          // announced before the file writer gets it).
          if (!running() && ++quiet_rounds >= 2) {
            const std::string end = fmt::format("event: end\ndata: {{\"last\": {}}}\n\n", last);
            sink.write(end.data(), end.size());
            sink.done();
            return true;
          }
          if (Clock::now() - beat > std::chrono::seconds(15)) {
            const std::string heartbeat = ": heartbeat\n\n";
            if (!sink.write(heartbeat.data(), heartbeat.size())) return false;
            beat = Clock::now();
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(150));
        }
        return false;
      });
}

}  // namespace trafficid::host
