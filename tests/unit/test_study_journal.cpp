// The study journal's reader: a journal written by trafficid reads back; a line cut by a crash is
// found (and left to the caller to drop); any line of the wrong shape is an Error naming the file
// and the line, before a replay could trip on it.
#include "tune/study_journal.hpp"
#include "test_support.hpp"
#include "trafficid/error.hpp"

using namespace trafficid;
using namespace trafficid::host;

namespace {
// A journal as trafficid writes one: the study header, then a trial proposed, started, reported,
// pruned, and a second one failed for good.
std::string corpus_journal() {
  return R"({"event":"study","version":1,"name":"quickstart","experiment":"/x/q.toml","tuner":"asha","tuner_version":"1.0.0",)"
         R"("tuner_params":{"eta":2},"dimensions":[{"path":"train.lr","kind":"loguniform","choices":[],"low":0.0001,"high":0.1},)"
         R"({"path":"models.mlp.layers","kind":"choice","choices":[[16],[64,32]],"low":0,"high":0}],"maximize":true,"seed":7,)"
         R"("max_steps":4,"metric":"val.macro_f1","trials":4,"time_budget":0.0,"retries":1,"pruner":"median","pruner_warmup":1,)"
         R"("pruner_min_trials":2,"base_config":{"experiment":{"name":"quickstart"}},"config_hash":"0123456789abcdef","created_unix":1.7e9})"
         "\n"
         R"({"event":"propose","trial":1,"assignment":{"train.lr":0.001,"models.mlp.layers":[16]},"t":1.7e9})"
         "\n"
         R"({"event":"start","trial":1,"attempt":1,"worker":"host:1","t":1.7e9})"
         "\n"
         R"({"event":"report","trial":1,"step":1,"value":0.5,"decision":"continue","t":1.7e9})"
         "\n"
         R"({"event":"report","trial":1,"step":2,"value":0.25,"decision":"stop","by":"median","t":1.7e9})"
         "\n"
         R"({"event":"end","trial":1,"status":"pruned","attempt":1,"seconds":3.5,"value":0.5,"t":1.7e9})"
         "\n"
         R"({"event":"end","trial":2,"status":"failed","attempt":1,"seconds":1,"error":"diverged","retry":false,"t":1.7e9})"
         "\n";
}

std::string error_of(const std::string& text) {
  try {
    parse_journal(text, "j.jsonl");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("a study journal reads back with its header, events and a line cut by a crash", "[journal]") {
  const std::string text = corpus_journal();
  REQUIRE_FALSE(text.empty());
  auto journal = parse_journal(text, "j.jsonl");
  REQUIRE(journal.events.size() == 7);
  CHECK_FALSE(journal.cut_at);
  const StudyHeader h = parse_study_header(journal.events[0]);
  CHECK(h.tuner == "asha");
  CHECK(h.trials == 4);
  CHECK(h.space.dimensions.size() == 2);
  CHECK(h.retries == 1);
  // A crash while appending leaves a last line without its newline: it never happened.
  auto cut = parse_journal(text + R"({"event": "report", "trial": 1, "st)", "j.jsonl");
  CHECK(cut.events.size() == 7);
  REQUIRE(cut.cut_at);
  CHECK(*cut.cut_at == text.size());
}

TEST_CASE("a journal line of the wrong shape is an error at its line", "[journal]") {
  const std::string text = corpus_journal();
  const std::string header = text.substr(0, text.find('\n') + 1);
  CHECK_THAT(error_of(header + "{\"event\": \"report\", \"trial\": 1, \"step\": \"two\", \"value\": 0.5}\n"),
             Catch::Contains("j.jsonl:2: not a journal event: 'step' is \"two\", not an integer"));
  CHECK_THAT(error_of(header + "{\"event\": \"end\", \"trial\": 1, \"status\": \"finished\", \"attempt\": 1}\n"),
             Catch::Contains("j.jsonl:2: not a journal event: 'status' is 'finished', not done, pruned or failed"));
  CHECK_THAT(error_of(header + "{\"event\": \"start\", \"trial\": -3, \"attempt\": 1}\n"),
             Catch::Contains("j.jsonl:2: not a journal event: 'trial' is -3, not a trial number"));
  CHECK_THAT(error_of(header + "{\"event\": \"vote\", \"trial\": 1}\n"),
             Catch::Contains("j.jsonl:2: not a journal event: an unknown event 'vote'"));
  CHECK_THAT(error_of(header + "not json\n"), Catch::Contains("j.jsonl:2: not a journal event ("));
  CHECK_THAT(error_of("{\"event\": \"propose\", \"trial\": 1, \"assignment\": {}}\n"),
             Catch::Contains("j.jsonl:1: not a journal event: the first line is not the study header"));
  CHECK_THAT(error_of(header + header), Catch::Contains("j.jsonl:2: not a journal event: a second study header"));
  // A null report value (a diverged epoch, as older versions wrote it) is read, for the replay to skip.
  CHECK(error_of(header + "{\"event\": \"report\", \"trial\": 1, \"step\": 1, \"value\": null}\n").empty());
}
