// The study journal's format, read without a tuner: its header (the first line) and each event's
// shape. Everything here is checked before a study is replayed, so a journal that was edited,
// damaged or written by another version fails with its file, line and what is wrong, never with
// a JSON library's type error in the middle of a replay.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trafficid/tuner.hpp"

namespace trafficid::host {

// The study's fixed part, the journal's first line: what it tunes and how.
struct StudyHeader {
  Json json;  // as journaled
  std::string name, tuner, metric, pruner;
  Json tuner_params;
  SearchSpace space;
  std::uint64_t trials = 0;
  double time_budget = 0;
  int retries = 1;
  std::int64_t pruner_warmup = 1, pruner_min_trials = 3;
  Json base_config;  // the experiment's resolved config without [tune]
};

// Throws Error saying which field is missing or of the wrong type.
StudyHeader parse_study_header(const Json& event);

struct JournalText {
  std::vector<Json> events;           // one per complete line, line i + 1 holding events[i]
  std::optional<std::size_t> cut_at;  // the byte where an incomplete last line (a crash while writing it) starts
};

// Splits and parses the journal's lines and checks each event's shape (check_journal_event).
// Throws Error naming `file` and the line of the first one that is not a journal event.
JournalText parse_journal(std::string_view text, const std::filesystem::path& file);

// The fields each kind of event must hold (study, propose, start, report, end), with their types.
// Throws Error naming `file`, `line` and the problem.
void check_journal_event(const Json& event, const std::filesystem::path& file, std::size_t line);

}  // namespace trafficid::host
