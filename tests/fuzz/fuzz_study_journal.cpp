// libFuzzer target for the study journal's reader: any bytes as journal.jsonl. It either gives
// events whose every field a replay reads has its type, or throws trafficid::Error naming the
// line; any other exception (a JSON library type error, std::out_of_range) is a finding.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tune/study_journal.hpp"
#include "trafficid/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto journal = trafficid::host::parse_journal(text, "journal.jsonl");
    if (journal.cut_at && *journal.cut_at > size) std::abort();
    // What a replay reads of each event, read the way it reads it.
    for (const auto& e : journal.events) {
      const std::string kind = e.at("event").get<std::string>();
      if (kind == "study") {
        auto h = trafficid::host::parse_study_header(e);
        (void)h;
        continue;
      }
      (void)e.at("trial").get<std::uint64_t>();
      if (kind == "start") (void)e.at("attempt").get<int>();
      if (kind == "report") (void)e.at("step").get<int>();
      if (kind == "end") (void)e.at("status").get<std::string>();
    }
  } catch (const trafficid::Error&) {
  }
  return 0;
}
