// Scoring against numbers worked out by hand: per-flow decisions by summed log-probabilities and by
// vote, flows without samples counted as undecided, abstention, early decisions, unknown traffic,
// and the threshold calibrated on validation decisions.
#include <cmath>

#include "train/scoring.hpp"
#include "test_support.hpp"

using namespace trafficid;
using namespace trafficid::host;

namespace {

// Rows: (flow, label, probabilities of A, B, C).
SplitPredictions predictions(const std::vector<std::tuple<std::uint64_t, std::int64_t, std::array<float, 3>>>& rows) {
  SplitPredictions p;
  p.class_names = {"A", "B", "C"};
  for (const auto& [flow, label, probabilities] : rows) {
    p.flows.push_back(flow);
    p.labels.push_back(label);
    p.probabilities.insert(p.probabilities.end(), probabilities.begin(), probabilities.end());
  }
  return p;
}

}  // namespace

TEST_CASE("a flow's class from summed log-probabilities differs from the majority vote where it should", "[scoring]") {
  // Flow 1 (true A): two samples lean B a little, one says A with certainty. Votes: B 2, A 1. Summed
  // log-probabilities: A: ln .45 + ln .45 + ln .98 = -1.617, B: ln .55 + ln .55 + ln .01 = -5.801: A.
  // Flow 2 (true B): one sample, B. Flow 3 (true C): two samples, both A.
  auto p = predictions({{1, 0, {0.45f, 0.55f, 0.0f}},
                        {2, 1, {0.1f, 0.8f, 0.1f}},
                        {1, 0, {0.45f, 0.55f, 0.0f}},
                        {3, 2, {0.7f, 0.2f, 0.1f}},
                        {1, 0, {0.98f, 0.01f, 0.01f}},
                        {3, 2, {0.6f, 0.3f, 0.1f}}});
  ScoringOptions logprob;
  std::vector<FlowDecision> decisions;
  Json s = score(p, logprob, &decisions);
  REQUIRE(decisions.size() == 3);
  CHECK(decisions[0].flow == 1);
  CHECK(decisions[0].predicted == 0);
  CHECK(decisions[0].samples == 3);
  CHECK(decisions[0].confidence == Approx((0.45 + 0.45 + 0.98) / 3));  // the mean probability of the class decided
  CHECK(decisions[1].predicted == 1);
  CHECK(decisions[2].predicted == 0);
  // Per flow, log-probabilities: confusion A: 1 0 0 / B: 0 1 0 / C: 1 0 0. A: precision 1/2, recall 1, F1 2/3;
  // B: 1, 1, 1; C: 0. Macro F1 (2/3 + 1 + 0) / 3.
  CHECK(s["per_flow"]["confusion"] == Json::parse("[[1,0,0],[0,1,0],[1,0,0]]"));
  CHECK(s["per_flow"]["macro_f1"].get<double>() == Approx((2.0 / 3 + 1 + 0) / 3));
  // By vote flow 1 is B: confusion A: 0 1 0 / B: 0 1 0 / C: 1 0 0. A: F1 0; B: precision 1/2, recall 1, 2/3; C: 0.
  CHECK(s["per_flow_vote"]["confusion"] == Json::parse("[[0,1,0],[0,1,0],[1,0,0]]"));
  CHECK(s["per_flow_vote"]["macro_f1"].get<double>() == Approx((0 + 2.0 / 3 + 0) / 3));
  // Per sample: argmax of each row, 6 rows: A,A,B rows of flow 1 predicted B,B,A -> 1 of 3; flow 2: 1 of 1; flow 3: 0
  // of 2.
  CHECK(s["per_sample"]["accuracy"].get<double>() == Approx(2.0 / 6));
  ScoringOptions vote;
  vote.flow_decision = "vote";
  CHECK(score(p, vote)["per_flow"]["macro_f1"].get<double>() == Approx((0 + 2.0 / 3 + 0) / 3));
}

TEST_CASE("flows without samples, abstentions and unknown traffic are counted, not hidden", "[scoring]") {
  auto p = predictions({{1, 0, {0.9f, 0.05f, 0.05f}},     // A, sure: right
                        {2, 1, {0.3f, 0.4f, 0.3f}},       // B, unsure: right, abstained at 0.5
                        {3, 1, {0.2f, 0.7f, 0.1f}},       // B: right
                        {4, -1, {0.1f, 0.2f, 0.7f}},      // unknown traffic, forced into C
                        {5, -1, {0.4f, 0.35f, 0.25f}}});  // unknown traffic, abstained
  ScoringOptions o;
  o.flows_without_samples = {0, 0, 2};  // two C flows gave no sample: undecided
  o.abstain_threshold = 0.5;
  Json s = score(p, o);
  CHECK(s["flows"] == 5);  // 3 decided with a class + 2 without samples; unknown traffic apart
  CHECK(s["flows_without_samples"] == 2);
  // Without abstaining: A 1/1, B 2/2, C 0/2 (undecided): C's recall 0, F1 0. Macro over A, B, C: 2/3.
  CHECK(s["per_flow"]["macro_f1"].get<double>() == Approx(2.0 / 3));
  CHECK(s["per_flow"]["abstained"] == 2);
  CHECK(s["per_flow"]["per_class"][2]["support"] == 2);
  CHECK(s["per_flow"]["per_class"][2]["abstained"] == 2);
  // Abstaining below 0.5: flow 2 undecided, B recall 1/2, precision 1: F1 2/3. Macro (1 + 2/3 + 0) / 3.
  CHECK(s["abstaining"]["macro_f1"].get<double>() == Approx((1 + 2.0 / 3 + 0) / 3));
  CHECK(s["abstaining"]["abstained"] == 3);
  CHECK(s["unknown"]["flows"] == 2);
  CHECK(s["unknown"]["abstained"] == 1);
  CHECK(s["unknown"]["forced_into"]["C"] == 1);
}

TEST_CASE("early decisions of packet models use each flow's first k samples", "[scoring]") {
  // Flow 1 (A): its first sample says B, then two say A. Flow 2 (B): one sample, B.
  auto p = predictions(
      {{1, 0, {0.2f, 0.7f, 0.1f}}, {2, 1, {0.1f, 0.8f, 0.1f}}, {1, 0, {0.8f, 0.1f, 0.1f}}, {1, 0, {0.8f, 0.1f, 0.1f}}});
  ScoringOptions o;
  o.early = {1, 2, 3};
  Json s = score(p, o);
  REQUIRE(s["early"].size() == 3);
  // After 1 sample flow 1 is B: A F1 0, B precision 1/2 recall 1: 2/3 -> macro 1/3.
  CHECK(s["early"][0]["samples"] == 1);
  CHECK(s["early"][0]["macro_f1"].get<double>() == Approx(1.0 / 3));
  // After 2: ln .2 + ln .8 = -1.83 (A) against ln .7 + ln .1 = -2.66 (B): A, both flows right.
  CHECK(s["early"][1]["macro_f1"].get<double>() == Approx(1.0));
  CHECK(s["early"][2]["macro_f1"].get<double>() == Approx(1.0));
}

TEST_CASE("the abstention threshold is a quantile of the confidences of correct validation decisions", "[scoring]") {
  auto p = predictions({{1, 0, {0.9f, 0.05f, 0.05f}},
                        {2, 0, {0.6f, 0.3f, 0.1f}},
                        {3, 1, {0.2f, 0.7f, 0.1f}},
                        {4, 1, {0.8f, 0.1f, 0.1f}},
                        {5, 2, {0.1f, 0.1f, 0.8f}}});
  // Correct decisions: flows 1, 2, 3, 5 with confidences 0.9, 0.6, 0.7, 0.8; flow 4 is wrong.
  CHECK(*abstain_threshold(p, "logprob", 0.0) == Approx(0.6));
  CHECK(*abstain_threshold(p, "logprob", 0.5) == Approx(0.7));  // floor(0.5 x 3) = 1: the second smallest
  CHECK(*abstain_threshold(p, "logprob", 1.0) == Approx(0.9));
  CHECK_FALSE(abstain_threshold(predictions({{1, 0, {0.1f, 0.8f, 0.1f}}}), "logprob", 0.05).has_value());
}

TEST_CASE("fold models' probabilities are averaged row by row, and out-of-fold rows appended", "[scoring]") {
  auto a = predictions({{1, 0, {0.9f, 0.1f, 0.0f}}});
  auto b = predictions({{1, 0, {0.3f, 0.7f, 0.0f}}});
  a.average_with(b);
  CHECK(a.models == 2);
  CHECK(a.probabilities[0] == Approx(0.6));
  CHECK(a.probabilities[1] == Approx(0.4));
  auto c = predictions({{2, 1, {0.0f, 1.0f, 0.0f}}});
  a.append(c);
  CHECK(a.rows() == 2);
  CHECK(a.flows[1] == 2);
  CHECK_THROWS(a.average_with(b));  // different rows
}

TEST_CASE("evaluation counts an abstaining prediction against recall and never for precision", "[metrics]") {
  auto m = evaluate({0, 0, 1, 1}, {0, abstain, 1, 0}, {"A", "B"});
  CHECK(m.abstained == 1);
  CHECK(m.per_class[0].support == 2);
  CHECK(m.per_class[0].abstained == 1);
  CHECK(m.per_class[0].recall == Approx(0.5));
  CHECK(m.per_class[0].precision == Approx(0.5));  // predicted A twice, once right
  CHECK(m.per_class[1].recall == Approx(0.5));
  CHECK(m.accuracy == Approx(0.5));
  CHECK(m.confusion == std::vector<std::vector<std::uint64_t>>{{1, 0}, {1, 1}});
}

TEST_CASE("the headline's interval resamples captures, not flows, and is the same for the same predictions",
          "[scoring]") {
  // Captures 0 and 1: their flows right (A, B); capture 2: its two C flows taken for A.
  auto flow = [](std::uint32_t capture, std::uint64_t n) { return dataset_flow_id(capture, n); };
  auto p = predictions({{flow(0, 1), 0, {0.9f, 0.05f, 0.05f}},
                        {flow(0, 2), 0, {0.8f, 0.1f, 0.1f}},
                        {flow(1, 1), 1, {0.1f, 0.8f, 0.1f}},
                        {flow(2, 1), 2, {0.7f, 0.2f, 0.1f}},
                        {flow(2, 2), 2, {0.6f, 0.3f, 0.1f}}});
  const Json s = score(p, {});
  const Json& interval = s["per_flow"]["interval"];
  REQUIRE(interval.is_object());
  CHECK(interval["units"] == 3);  // three captures, five flows
  CHECK(interval["unit"] == "capture");
  const double point = s["per_flow"]["macro_f1"].get<double>();
  CHECK(point == Approx((2.0 / 3 + 1 + 0) / 3));  // A: precision 2/4, recall 1; B: 1; C: 0
  // A resample of capture 0 (or 1) alone scores 1; one of capture 2 alone scores 0.
  CHECK(interval["low"].get<double>() == Approx(0.0));
  CHECK(interval["high"].get<double>() == Approx(1.0));
  CHECK(score(p, {})["per_flow"]["interval"] == interval);
  CHECK(describe_interval(s["per_flow"]) == " (95% interval 0.00-1.00, bootstrap over 3 captures)");
  // Every capture right: every resample scores 1.
  auto right = predictions({{flow(0, 1), 0, {0.9f, 0.05f, 0.05f}},
                            {flow(1, 1), 1, {0.1f, 0.8f, 0.1f}},
                            {flow(2, 1), 2, {0.1f, 0.1f, 0.8f}}});
  const Json all = score(right, {})["per_flow"]["interval"];
  CHECK(all["low"].get<double>() == Approx(1.0));
  CHECK(all["high"].get<double>() == Approx(1.0));
  // One capture: no interval, and a flow without samples is a unit of its own.
  auto one = predictions({{flow(4, 1), 0, {0.9f, 0.05f, 0.05f}}, {flow(4, 2), 1, {0.1f, 0.8f, 0.1f}}});
  CHECK(score(one, {})["per_flow"]["interval"].is_null());
  CHECK(describe_interval(score(one, {})["per_flow"]).empty());
  ScoringOptions undecided;
  undecided.flows_without_samples = {0, 0, 1};
  CHECK(score(one, undecided)["per_flow"]["interval"]["units"] == 2);
}

TEST_CASE("the run's model: the best by validation, or a blend that validation cannot tell from it", "[scoring]") {
  auto model = [](double f1, double low, bool blend = false) {
    Json m = {{"validation_per_flow", {{"macro_f1", f1}, {"interval", {{"low", low}, {"high", 1.0}}}}}};
    if (blend) m["blend"] = {{"models", {"flow_net", "gbdt"}}};
    return m;
  };
  std::string why;
  // gbdt is best (0.99, interval 0.87-1); the blend's 0.98 lies inside it: the blend.
  Json models = {{"flow_net", model(0.97, 0.86)}, {"gbdt", model(0.99, 0.87)}, {"blend", model(0.98, 0.88, true)}};
  CHECK(best_model_name(models, &why) == "blend");
  CHECK(why.find("within the 95% interval of the best single model's (gbdt 0.9900, interval 0.87-1.00)") !=
        std::string::npos);
  // Below the best's interval: the best single model, whatever the blend's name sorts as.
  models["blend"] = model(0.80, 0.70, true);
  CHECK(best_model_name(models, &why) == "gbdt");
  CHECK(why == "the best per-flow macro F1 on the validation split (0.9900)");
  // Without a blend, ties go to the first in name order; a blend above every model is taken.
  Json tied = {{"b", model(0.9, 0.8)}, {"a", model(0.9, 0.8)}};
  CHECK(best_model_name(tied) == "a");
  tied["z_blend"] = model(0.95, 0.9, true);
  CHECK(best_model_name(tied) == "z_blend");
  // Runs of earlier versions (no interval): a blend must match the best exactly.
  Json bare = {{"gbdt", {{"validation_per_flow", {{"macro_f1", 0.9}}}}},
               {"blend", {{"validation_per_flow", {{"macro_f1", 0.89}}}, {"blend", Json::array({"a", "b"})}}}};
  CHECK(best_model_name(bare) == "gbdt");
  // A validation split too small for an interval (null): the same.
  bare["gbdt"]["validation_per_flow"]["interval"] = nullptr;
  bare["blend"]["validation_per_flow"]["macro_f1"] = 0.9;
  CHECK(best_model_name(bare, &why) == "blend");
  CHECK(why.find("(gbdt 0.9000, interval 0.90-0.90)") != std::string::npos);
  CHECK(best_model_name(Json::object()).empty());
}

TEST_CASE("the run's model: a blend unless the best single model beats it on most resamples of validation captures",
          "[scoring]") {
  // Ten validation captures of three flows each (A, B, C). gbdt decides every flow right: a
  // perfect 1.0, whose interval is 1.0-1.0. The blend errs on `wrong` flows (one per capture,
  // in the first `wrong` captures).
  auto metrics = [](int wrong, bool blend) {
    std::vector<std::tuple<std::uint64_t, std::int64_t, std::array<float, 3>>> rows;
    for (std::uint32_t capture = 0; capture < 10; ++capture)
      for (std::int64_t c = 0; c < 3; ++c) {
        std::array<float, 3> p = {0.1f, 0.1f, 0.1f};
        const bool err = blend && c == 0 && static_cast<int>(capture) < wrong;
        p[static_cast<std::size_t>(err ? 1 : c)] = 0.8f;
        rows.emplace_back(dataset_flow_id(capture, static_cast<std::uint64_t>(c)), c, p);
      }
    std::vector<FlowDecision> decisions;
    Json m = {{"validation_per_flow", score(predictions(rows), {}, &decisions)["per_flow"]}};
    m["validation_per_flow"]["decisions"] = decisions_json(decisions);
    if (blend) m["blend"] = {{"models", {"flow_net", "gbdt"}}};
    return m;
  };
  Json models = {{"gbdt", metrics(0, false)}, {"blend", metrics(1, true)}};
  REQUIRE(models["gbdt"]["validation_per_flow"]["macro_f1"].get<double>() == Approx(1.0));
  REQUIRE(models["gbdt"]["validation_per_flow"]["interval"]["low"].get<double>() == Approx(1.0));
  // One flow in one capture: gbdt is better only in the resamples that draw that capture (about
  // 1 - 0.9^10 = 65% of them), though the blend lies below its interval: the blend.
  std::string why;
  CHECK(best_model_name(models, &why) == "blend");
  CHECK(why.find("that the best single model (gbdt 1.0000) beats in 6") != std::string::npos);
  CHECK(why.find("% of 1000 resamples of the validation captures, short of 97.5%") != std::string::npos);
  // A flow wrong in every capture: gbdt is better in every resample.
  models["blend"] = metrics(10, true);
  CHECK(best_model_name(models, &why) == "gbdt");
  CHECK(why ==
        "the best per-flow macro F1 on the validation split (1.0000), above the blend's in 100.0% of 1000 "
        "resamples of the validation captures");
  // The same draws give the same choice; decisions of other classes fall back to the interval.
  CHECK(best_model_name(models) == "gbdt");
  models["blend"]["validation_per_flow"]["decisions"]["predicted"][0] = 7;
  models["blend"]["validation_per_flow"]["macro_f1"] = 1.0;
  CHECK(best_model_name(models, &why) == "blend");
  CHECK(why.find("lies within the 95% interval") != std::string::npos);
}
