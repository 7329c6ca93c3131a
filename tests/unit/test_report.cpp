// The report's numbers: a run's page shows the scores its models' metrics hold, the headline first
// (unseen captures when scored, else the test split with a warning), each to 4 decimals, the best
// model marked; the comparison of runs lists the settings that differ.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fstream>
#include <sstream>

#include "report/report.hpp"
#include "test_support.hpp"
#include "train/scoring.hpp"

using namespace trafficid;
using namespace trafficid::host;
namespace fs = std::filesystem;

namespace {

// Rows: (flow, label, probabilities of A, B).
SplitPredictions predictions(const std::vector<std::tuple<std::uint64_t, std::int64_t, std::array<float, 2>>>& rows) {
  SplitPredictions p;
  p.class_names = {"A", "B"};
  for (const auto& [flow, label, probabilities] : rows) {
    p.flows.push_back(flow);
    p.labels.push_back(label);
    p.probabilities.insert(p.probabilities.end(), probabilities.begin(), probabilities.end());
  }
  return p;
}

// A model's metrics.json as the train stage writes it, from scored predictions.
Json metrics(const SplitPredictions& test, const SplitPredictions* unseen) {
  const Json tested = score(test, ScoringOptions{});
  Json m = {{"parameters", 1234},
            {"model_file_bytes", 2048},
            {"training_seconds", 1.5},
            {"epochs", Json::parse(R"([{"epoch": 1, "train_loss": 0.7, "val_loss": 0.6, "val_accuracy": 0.5,
                                        "val_macro_f1": 0.5}])")},
            {"best_epoch", 1},
            {"test", tested["per_sample"]},
            {"test_per_flow", tested["per_flow"]},
            {"validation_per_flow", {{"macro_f1", 0.5}}},
            {"inference", {{"throughput_samples_per_second", 1000.0}, {"latency_ms_batch_1", 0.25}}},
            {"split", {{"method", "flow"}, {"leaks", false}, {"folds", 0}}},
            {"headline", {{"what", "test split, per-flow macro F1"}, {"macro_f1", tested["per_flow"]["macro_f1"]}}}};
  if (unseen) {
    Json u = score(*unseen, ScoringOptions{});
    u["captures"] = 1;
    m["unseen"] = u;
    m["headline"] = {{"what", "unseen captures, per-flow macro F1"}, {"macro_f1", u["per_flow"]["macro_f1"]}};
  }
  return m;
}

std::string read(const fs::path& file) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("the run report shows its models' scores, the unseen captures' first", "[report]") {
  const fs::path dir = test_support::temp_dir("report");
  // Test split, per flow: flows 1, 2 (A) right, flow 3 (B) right, flow 4 (B) wrong: macro F1 of
  // A (P 2/3, R 1, F1 0.8) and B (P 1, R 1/2, F1 2/3) = 0.7333.
  const auto test =
      predictions({{1, 0, {0.9f, 0.1f}}, {2, 0, {0.8f, 0.2f}}, {3, 1, {0.1f, 0.9f}}, {4, 1, {0.6f, 0.4f}}});
  // Unseen: flow 7 (A) right, flow 8 (B) wrong: A (P 1/2, R 1, F1 2/3), B (F1 0): 0.3333.
  const auto unseen = predictions({{7, 0, {0.7f, 0.3f}}, {8, 1, {0.55f, 0.45f}}});
  Json models = {{"good", metrics(test, &unseen)}, {"plain", metrics(test, nullptr)}};
  Json run = {
      {"name", "r"},
      {"experiment", "e.toml"},
      {"started", "now"},
      {"status", "done"},
      {"best_model", "good"},
      {"dataset", {{"classes", 2}, {"split", "flow"}, {"rows", {{"train", 10}, {"validation", 2}, {"test", 4}}}}}};
  write_report(dir, run, models, "[experiment]\nname = \"r\"");
  const std::string html = read(dir / "report.html");
  CHECK_THAT(html, Catch::Contains("Best model (per-flow macro F1 on the validation split): <b>good</b>"));
  CHECK_THAT(html, Catch::Contains("per-flow macro F1 <b class=\"headline-value\">0.3333</b>"));
  CHECK_THAT(html, Catch::Contains("on the test split 0.7333"));
  CHECK_THAT(html, Catch::Contains("<td>good (best)</td><td><b>0.3333</b></td>"));
  CHECK_THAT(html, Catch::Contains("10 training, 2 validation, 4 test samples"));
  // A run without unseen captures: the test split is the headline, with the warning that it shares captures.
  Json plain_run = run;
  plain_run["best_model"] = "plain";
  write_report(dir, plain_run, Json{{"plain", models["plain"]}}, "");
  const std::string plain = read(dir / "report.html");
  CHECK_THAT(plain, Catch::Contains("<b class=\"headline-value\">0.7333</b>"));
  CHECK_THAT(plain, Catch::Contains("shares captures with training"));
  CHECK_THAT(plain, !Catch::Contains("unseen captures per-flow macro F1"));
  fs::remove_all(dir);
}

TEST_CASE("the comparison of runs lists what differs and marks the best headline", "[report]") {
  const fs::path dir = test_support::temp_dir("compare");
  const auto test = predictions({{1, 0, {0.9f, 0.1f}}, {2, 1, {0.2f, 0.8f}}});
  const auto worse = predictions({{1, 0, {0.9f, 0.1f}}, {2, 1, {0.8f, 0.2f}}});
  for (const auto& [name, lr, p] : {std::tuple{"fast", 0.01, test}, std::tuple{"slow", 0.001, worse}}) {
    fs::create_directories(dir / name);
    Json record = {{"name", name},
                   {"status", "done"},
                   {"config", {{"train", {{"lr", lr}, {"epochs", 3}}}}},
                   {"models", {{"mlp", metrics(p, nullptr)}}}};
    std::ofstream(dir / name / "run.json") << record.dump();
  }
  write_comparison_report(dir / "comparison.html", {dir / "fast", dir / "slow"}, "two runs");
  const std::string html = read(dir / "comparison.html");
  CHECK_THAT(html, Catch::Contains("<tr><td>train.lr</td><td>0.01</td><td>0.001</td></tr>"));
  CHECK_THAT(html, !Catch::Contains("<td>train.epochs</td>"));  // the same in both: not a difference
  CHECK_THAT(html, Catch::Contains("<td>fast</td><td>mlp</td><td><b>1.0000</b></td>"));
  CHECK_THAT(html, Catch::Contains("<td>slow</td><td>mlp</td><td>0.3333</td>"));
  CHECK_THAT(html, !Catch::Contains("Across seeds"));  // one seed: no spread to give
  fs::remove_all(dir);
}

TEST_CASE("an ensemble's members are summarised by their range, each scored alone", "[report]") {
  const auto test = predictions({{1, 0, {0.9f, 0.1f}}, {2, 1, {0.2f, 0.8f}}});
  const auto unseen = predictions({{7, 0, {0.7f, 0.3f}}, {8, 1, {0.55f, 0.45f}}});
  Json m = metrics(test, &unseen);
  CHECK(members_summary(m).is_null());  // one model
  m["members"] = Json::array();
  for (const auto& [seed, validation, alone] :
       {std::tuple{4, 0.91, 0.52}, std::tuple{5, 0.88, 0.61}, std::tuple{6, 0.95, 0.47}})
    m["members"].push_back({{"member", seed - 4},
                            {"seed", seed},
                            {"validation_per_flow_macro_f1", validation},
                            {"unseen_per_flow_macro_f1", alone}});
  const Json s = members_summary(m);
  CHECK(s["count"] == 3);
  CHECK(s["first_seed"] == 4);
  CHECK(s["last_seed"] == 6);
  CHECK(s["validation"]["low"].get<double>() == Approx(0.88));
  CHECK(s["validation"]["high"].get<double>() == Approx(0.95));
  CHECK(s["unseen"]["low"].get<double>() == Approx(0.47));
  CHECK(s["unseen"]["high"].get<double>() == Approx(0.61));
  // Without [evaluate] the members have no unseen score, and the summary none either.
  for (auto& r : m["members"]) r.erase("unseen_per_flow_macro_f1");
  CHECK_FALSE(members_summary(m).contains("unseen"));

  const fs::path dir = test_support::temp_dir("members");
  m = metrics(test, &unseen);
  m["members"] = Json::array({{{"seed", 4}, {"validation_per_flow_macro_f1", 0.9}, {"unseen_per_flow_macro_f1", 0.4}},
                              {{"seed", 5}, {"validation_per_flow_macro_f1", 0.8}, {"unseen_per_flow_macro_f1", 0.2}}});
  write_report(dir, Json{{"name", "r"}, {"status", "done"}, {"best_model", "e"}}, Json{{"e", m}}, "");
  const std::string html = read(dir / "report.html");
  CHECK_THAT(html, Catch::Contains("ensemble of 2"));
  CHECK_THAT(html, Catch::Contains("from seeds 4 to 5"));
  CHECK_THAT(html, Catch::Contains("validation per-flow macro F1 0.8000&ndash;0.9000"));
  CHECK_THAT(html, Catch::Contains("unseen captures 0.2000&ndash;0.4000 (the ensemble: 0.3333)"));
  // The comparison of runs says so too.
  std::ofstream(dir / "run.json") << Json{{"name", "r"}, {"status", "done"}, {"models", {{"e", m}}}}.dump();
  write_comparison_report(dir / "comparison.html", {dir, dir}, "the same run twice");
  CHECK_THAT(read(dir / "comparison.html"), Catch::Contains("<td>e<br><small>ensemble of 2</small></td>"));
  fs::remove_all(dir);
}

TEST_CASE("the comparison gives each setting's spread across seeds, and the difference against the first", "[report]") {
  const fs::path dir = test_support::temp_dir("seeds");
  const auto test = predictions({{1, 0, {0.9f, 0.1f}}, {2, 1, {0.2f, 0.8f}}});
  const auto unseen = predictions({{7, 0, {0.7f, 0.3f}}, {8, 1, {0.55f, 0.45f}}});
  std::vector<fs::path> dirs;
  // dropout 0.1 scores 0.5 and 0.7 on the unseen captures with seeds 1 and 2; dropout 0.2, 0.6 and 0.9.
  for (const auto& [dropout, seed, headline] :
       {std::tuple{0.1, 1, 0.5}, std::tuple{0.1, 2, 0.7}, std::tuple{0.2, 1, 0.6}, std::tuple{0.2, 2, 0.9}}) {
    Json m = metrics(test, &unseen);
    m["unseen"]["per_flow"]["macro_f1"] = headline;
    const std::string name = fmt::format("d{}-s{}", dropout, seed);
    fs::create_directories(dir / name);
    Json record = {
        {"name", name},
        {"status", "done"},
        {"config", {{"experiment", {{"seed", seed}, {"name", name}}}, {"models", {{"mlp", {{"dropout", dropout}}}}}}},
        {"models", {{"mlp", m}}}};
    std::ofstream(dir / name / "run.json") << record.dump();
    dirs.push_back(dir / name);
  }
  write_comparison_report(dir / "comparison.html", dirs, "four runs");
  const std::string html = read(dir / "comparison.html");
  CHECK_THAT(html, Catch::Contains("<h2>Across seeds</h2>"));
  // Mean, sample standard deviation, range; the second setting against the first, seed by seed.
  CHECK_THAT(html, Catch::Contains("<tr><td>models.mlp.dropout = 0.1</td><td>mlp</td><td>2 (1, 2)</td><td><b>0.6000</b>"
                                   "</td><td>0.1414</td><td>0.5000&ndash;0.7000</td><td></td></tr>"));
  CHECK_THAT(html, Catch::Contains("<tr><td>models.mlp.dropout = 0.2</td><td>mlp</td><td>2 (1, 2)</td><td><b>0.7500</b>"
                                   "</td><td>0.2121</td><td>0.6000&ndash;0.9000</td><td>+0.1500, higher in 2 of 2 "
                                   "seeds</td></tr>"));
  fs::remove_all(dir);
}
