// The run-event bus and the in-process run API: subscribers see every event in order,
// RUN_DIR/events.jsonl holds the same events, and a run stopped through the API ends resumable.
#include <catch2/catch.hpp>
#include <fstream>
#include <mutex>
#include <sstream>

#include "pipeline/run.hpp"
#include "runtime/events.hpp"
#include "test_support.hpp"
#include "trafficid/error.hpp"

using namespace trafficid;
using namespace trafficid::host;
namespace fs = std::filesystem;

TEST_CASE("the event bus delivers each event to every subscriber in order, and events.jsonl reads back", "[events]") {
  const fs::path dir = test_support::temp_dir("events");
  EventBus bus;
  std::vector<RunEvent> first, second;
  bus.subscribe([&](const RunEvent& e) { first.push_back(e); });
  const auto handle = bus.subscribe([&](const RunEvent& e) { second.push_back(e); });
  auto writer = std::make_shared<EventFileWriter>(dir / "events.jsonl");
  bus.subscribe([writer](const RunEvent& e) { (*writer)(e); });
  bus.set_run("runs/a");
  bus.publish("stage", {{"name", "capture"}, {"state", "started"}});
  bus.publish("log", {{"level", "info"}, {"message", "a line with \xff, not UTF-8"}});
  bus.unsubscribe(handle);
  bus.publish("run", {{"state", "done"}});
  REQUIRE(first.size() == 3);
  CHECK(second.size() == 2);
  CHECK(first[0].seq == 1);
  CHECK(first[2].seq == 3);
  CHECK(first[0].run == "runs/a");
  CHECK(first[0].time.size() == 24);  // 2026-12-05T05:29:45.797Z
  auto read = read_events(dir / "events.jsonl");
  REQUIRE(read.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(read[i].seq == first[i].seq);
    CHECK(read[i].kind == first[i].kind);
    CHECK(read[i].payload.value("state", "") == first[i].payload.value("state", ""));
  }
  // A line cut by a kill at the end is left out; a bad line before the end is an error at its line.
  { std::ofstream(dir / "events.jsonl", std::ios::app) << R"({"seq": 4, "kind": "lo)"; }
  CHECK(read_events(dir / "events.jsonl").size() == 3);
  {
    std::ofstream(dir / "events.jsonl", std::ios::app) << "\n"
                                                       << R"({"seq": 5, "kind": "log"})"
                                                       << "\n";
  }
  CHECK_THROWS_WITH(read_events(dir / "events.jsonl"), Catch::Contains("events.jsonl:4: not JSON"));
  fs::remove_all(dir);
}

TEST_CASE("the terminal draws a stage's progress as one line redrawn in place, only on a live terminal", "[events]") {
  std::ostringstream live_out, plain_out;
  EventBus bus;
  bus.subscribe(terminal_printer(LogLevel::info, live_out, true));
  bus.subscribe(terminal_printer(LogLevel::info, plain_out, false));
  bus.publish("stage", {{"name", "capture"}, {"state", "started"}});
  bus.publish("stage", {{"name", "capture"}, {"state", "progress"}, {"packets", 1234567}, {"bytes", 512300000}});
  bus.publish("log", {{"level", "warning"}, {"message", "a.pcap: cut short"}});
  bus.publish("stage", {{"name", "capture"}, {"state", "progress"}, {"packets", 2000000}, {"bytes", 600000000}});
  bus.publish("stage", {{"name", "capture"}, {"state", "done"}});
  bus.publish("log", {{"level", "info"}, {"message", "done"}});
  bus.publish("log", {{"level", "debug"}, {"message", "not shown"}});
  CHECK(plain_out.str() == "warning: a.pcap: cut short\ndone\n");
  const std::string erase = "\r\033[K";
  const std::string live = live_out.str();
  // The status line, erased before the warning and drawn again after it, replaced by the next
  // progress, erased when the stage is done; log lines always start on a clean line.
  CHECK(live.rfind("capture: 1,234,567 packets, 512.3 MB, 0:00", 0) == 0);
  CHECK_THAT(live, Catch::Contains(erase + "warning: a.pcap: cut short\ncapture: 1,234,567 packets"));
  CHECK_THAT(live, Catch::Contains(erase + "capture: 2,000,000 packets, 600.0 MB"));
  CHECK_THAT(live, Catch::EndsWith(erase + "done\n"));
  CHECK_THAT(live, !Catch::Contains("not shown"));
  // Quiet (warnings only) draws no progress either.
  std::ostringstream quiet_out;
  EventBus quiet;
  quiet.subscribe(terminal_printer(LogLevel::warning, quiet_out, true));
  quiet.publish("stage", {{"name", "capture"}, {"state", "progress"}, {"packets", 1}, {"bytes", 60}});
  CHECK(quiet_out.str().empty());
}

namespace {

RunRequest tiny_run(const fs::path& dir) {
  RunRequest request;
  request.file = fs::path(TRAFFICID_SOURCE_DIR) / "experiments" / "quickstart.toml";
  request.run_dir = (dir / "run").string();
  request.overrides = {"experiment.output_dir=\"" + dir.string() + "\"",
                       "capture.synth.flows_per_app=6",
                       "evaluate.synth.flows_per_app=3",
                       "models={ mlp = { layers = [32] } }",
                       "train.epochs=4",
                       "train.patience=0"};
  request.plugin_paths = {TRAFFICID_PLUGIN_DIR};
  return request;
}

}  // namespace

TEST_CASE("a run started in-process publishes its stages, epochs and end, and stops resumable on request", "[events]") {
  const fs::path dir = test_support::temp_dir("run-api");
  std::mutex mutex;
  std::vector<RunEvent> events;
  {
    Run run(tiny_run(dir));
    run.events().subscribe([&](const RunEvent& e) {
      std::lock_guard lock(mutex);
      events.push_back(e);
      if (e.kind == "epoch" && e.payload.value("epoch", 0) == 2) run.stop();  // from the publishing thread
    });
    run.start();
    CHECK(run.wait() == 130);
  }
  auto kinds = [&](const std::string& kind, const std::string& state) {
    return std::count_if(events.begin(), events.end(), [&](const RunEvent& e) {
      return e.kind == kind && (state.empty() || e.payload.value("state", "") == state);
    });
  };
  CHECK(kinds("run", "started") == 1);
  CHECK(kinds("run", "interrupted") == 1);
  CHECK(kinds("stage", "done") >= 2);  // capture and dataset
  CHECK(kinds("epoch", "") == 2);
  CHECK(events.back().kind == "run");
  for (std::size_t i = 1; i < events.size(); ++i) CHECK(events[i].seq == events[i - 1].seq + 1);
  // events.jsonl holds the run's events as the subscriber saw them.
  const fs::path run_dir = dir / "run";
  auto written = read_events(run_dir / "events.jsonl");
  REQUIRE(!written.empty());
  CHECK(written.back().seq == events.back().seq);
  CHECK(written.back().payload.value("state", "") == "interrupted");
  CHECK(Json::parse(std::ifstream(run_dir / "run.json")).value("status", "") == "interrupted");

  // Resumed through the same API: it goes on from the checkpoint of epoch 2 and ends done.
  RunRequest resume;
  resume.file = (run_dir / "config.resolved.toml").string();
  resume.run_dir = run_dir.string();
  resume.plugin_paths = {TRAFFICID_PLUGIN_DIR};
  std::vector<int> epochs;
  Run again(resume);
  again.events().subscribe([&](const RunEvent& e) {
    if (e.kind == "epoch") epochs.push_back(e.payload.value("epoch", 0));
  });
  CHECK(again.execute() == 0);
  CHECK(epochs == std::vector<int>{3, 4});
  CHECK(Json::parse(std::ifstream(run_dir / "run.json")).value("status", "") == "done");
  const auto all = read_events(run_dir / "events.jsonl");
  CHECK(all.back().payload.value("state", "") == "done");
  // The resumed run's events go on after the first run's: a seq (Last-Event-ID) names one event.
  for (std::size_t i = 1; i < all.size(); ++i) CHECK(all[i].seq > all[i - 1].seq);
  fs::remove_all(dir);
}
