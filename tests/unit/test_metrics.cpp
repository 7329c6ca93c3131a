// evaluate() against values computed by hand from a known confusion matrix.
#include <cmath>

#include "test_support.hpp"
#include "trafficid/metrics.hpp"
#include "trafficid/model.hpp"

using namespace trafficid;

TEST_CASE("evaluation metrics equal the hand-computed values of a known confusion matrix", "[metrics]") {
  // true:      A A A A B B B C C C      confusion [true][predicted]:  A: 3 1 0 0
  // predicted: A A A B B B C C C A                                    B: 0 2 1 0
  //                                                                   C: 1 0 2 0
  // D has no sample and is never predicted.                           D: 0 0 0 0
  const std::vector<std::int64_t> truth = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
  const std::vector<std::int64_t> predicted = {0, 0, 0, 1, 1, 1, 2, 2, 2, 0};
  auto m = evaluate(truth, predicted, {"A", "B", "C", "D"});
  CHECK(m.confusion == std::vector<std::vector<std::uint64_t>>{{3, 1, 0, 0}, {0, 2, 1, 0}, {1, 0, 2, 0}, {0, 0, 0, 0}});
  CHECK(m.accuracy == Approx(0.7));
  // A: precision 3/4, recall 3/4; B and C: precision 2/3, recall 2/3.
  CHECK(m.per_class[0].precision == Approx(0.75));
  CHECK(m.per_class[0].recall == Approx(0.75));
  CHECK(m.per_class[0].f1 == Approx(0.75));
  CHECK(m.per_class[1].precision == Approx(2.0 / 3));
  CHECK(m.per_class[2].recall == Approx(2.0 / 3));
  CHECK(m.per_class[0].support == 4);
  CHECK(m.per_class[3].support == 0);
  CHECK(m.per_class[3].f1 == 0);
  // Macro F1 over the classes the split holds (D has none): (3/4 + 2/3 + 2/3) / 3.
  CHECK(m.macro_f1 == Approx((0.75 + 2.0 / 3 + 2.0 / 3) / 3));
  // Weighted by support: (4 x 3/4 + 3 x 2/3 + 3 x 2/3) / 10.
  CHECK(m.weighted_f1 == Approx(0.7));
  auto j = to_json(m);
  CHECK(j["per_class"][1]["class"] == "B");
  CHECK(j["confusion"][2][0] == 1);
}

TEST_CASE("evaluation refuses labels outside the classes and mismatched lengths", "[metrics]") {
  CHECK_THROWS_WITH(evaluate({0, 1}, {0}, {"A", "B"}), Catch::Contains("2 true labels but 1 predictions"));
  CHECK_THROWS_WITH(evaluate({0, 2}, {0, 1}, {"A", "B"}), Catch::Contains("label out of range at row 1"));
}

TEST_CASE("early stopping keeps the best epoch and stops after patience epochs without improvement", "[metrics]") {
  trafficid::EarlyStopping stopping(2);
  const std::vector<double> scores = {0.5, 0.6, 0.6, 0.55, 0.7};
  std::int64_t stopped_at = 0;
  for (std::size_t i = 0; i < scores.size() && !stopped_at; ++i) {
    const auto epoch = static_cast<std::int64_t>(i + 1);
    const bool best = stopping.record(epoch, scores[i]);
    CHECK(best == (epoch == 1 || epoch == 2));  // a tie is no improvement
    if (stopping.should_stop()) stopped_at = epoch;
  }
  CHECK(stopped_at == 4);  // 0.6 (tie) and 0.55: two epochs without improvement
  CHECK(stopping.best_epoch() == 2);
  CHECK(stopping.best() == Approx(0.6));
  // Through a checkpoint and back, as a resumed run does.
  trafficid::EarlyStopping resumed(2);
  resumed.restore(stopping.to_json());
  CHECK(resumed.should_stop());
  CHECK(resumed.best_epoch() == 2);
  CHECK(resumed.record(5, 0.7));
  CHECK_FALSE(resumed.should_stop());
  // Patience 0: never stops.
  trafficid::EarlyStopping never(0);
  for (int e = 1; e <= 50; ++e) never.record(e, 0.1);
  CHECK_FALSE(never.should_stop());
  CHECK(never.best_epoch() == 1);
}
