// A run's (or a study's) events as server-sent events, read from DIR/events.jsonl as it grows: one
// `id: SEQ / event: KIND / data: EVENT` message per event, from after `Last-Event-ID` (or
// `?after=SEQ`) so a reloaded page picks the stream up where it was; a comment line as heartbeat
// every 15 s; `event: end` once it is no longer running and every event has been sent.
#pragma once
#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace trafficid::host {

// The complete lines appended to a file since the last call (a line still being written waits).
class FileTail {
 public:
  explicit FileTail(std::filesystem::path file) : file_(std::move(file)) {}
  std::vector<std::string> lines();

 private:
  std::filesystem::path file_;
  std::uint64_t offset_ = 0;
};

// The id a reconnecting client last had: `Last-Event-ID`, else `?after=`; 0 for none.
std::uint64_t last_event_id(const httplib::Request& req);

// `running` says whether the events may still grow (asked from the stream's thread).
void stream_events(const httplib::Request& req, httplib::Response& res, const std::filesystem::path& dir,
                   std::function<bool()> running, const std::atomic<bool>& stopping);

}  // namespace trafficid::host
