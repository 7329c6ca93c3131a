// The tuner plugins through the host's registry, as `trafficid tune` uses them: grid enumerates
// the cartesian product exactly, random reproduces from its seed, asha stops what successive
// halving says on a scripted sequence of metric values.
#include <set>

#include "test_support.hpp"
#include "trafficid/tuner.hpp"

using namespace trafficid;

namespace {

SearchDimension choice(std::string path, std::vector<Json> values) {
  SearchDimension d;
  d.path = std::move(path);
  d.kind = SearchDimension::Kind::choice;
  d.choices = std::move(values);
  return d;
}

SearchDimension range(std::string path, SearchDimension::Kind kind, double low, double high) {
  SearchDimension d;
  d.path = std::move(path);
  d.kind = kind;
  d.low = low;
  d.high = high;
  return d;
}

std::vector<TrialProposal> ask_all(Tuner& tuner, std::size_t limit) {
  std::vector<TrialProposal> out;
  while (out.size() < limit)
    if (auto p = tuner.ask()) out.push_back(*p);
    else break;
  return out;
}

}  // namespace

TEST_CASE("grid: every combination once, the last dimension fastest, then nothing", "[tuners]") {
  SearchSpace space;
  space.dimensions = {choice("models.cnn.conv.0.filters", {64, 128, 200}),
                      range("models.cnn.conv.0.stride", SearchDimension::Kind::int_uniform, 1, 3),
                      choice("train.optimizer", {"adam", "sgd"})};
  auto grid = test_support::make_plugin<Tuner>(PluginKind::tuner, "grid");
  grid->start(space);
  auto points = ask_all(*grid, 100);
  REQUIRE(points.size() == 3 * 3 * 2);
  std::set<std::string> distinct;
  for (std::size_t i = 0; i < points.size(); ++i) {
    CHECK(points[i].trial_id == i + 1);
    distinct.insert(points[i].assignment.dump());
  }
  CHECK(distinct.size() == points.size());
  CHECK(points[0].assignment ==
        Json{{"models.cnn.conv.0.filters", 64}, {"models.cnn.conv.0.stride", 1}, {"train.optimizer", "adam"}});
  CHECK(points[1].assignment ==
        Json{{"models.cnn.conv.0.filters", 64}, {"models.cnn.conv.0.stride", 1}, {"train.optimizer", "sgd"}});
  CHECK(points[2].assignment ==
        Json{{"models.cnn.conv.0.filters", 64}, {"models.cnn.conv.0.stride", 2}, {"train.optimizer", "adam"}});
  CHECK(points.back().assignment ==
        Json{{"models.cnn.conv.0.filters", 200}, {"models.cnn.conv.0.stride", 3}, {"train.optimizer", "sgd"}});
  CHECK_FALSE(grid->ask().has_value());

  // Shuffled: the same points in another order, the same order for the same seed.
  auto shuffled = test_support::make_plugin<Tuner>(PluginKind::tuner, "grid", {{"shuffle", true}});
  space.seed = 11;
  shuffled->start(space);
  auto again = ask_all(*shuffled, 100);
  std::set<std::string> same;
  for (const auto& p : again) same.insert(p.assignment.dump());
  CHECK(same == distinct);
  CHECK(again[0].assignment != points[0].assignment);
  shuffled->start(space);
  CHECK(ask_all(*shuffled, 100)[5].assignment == again[5].assignment);

  SearchSpace continuous;
  continuous.dimensions = {range("train.lr", SearchDimension::Kind::loguniform, 1e-4, 1e-2)};
  CHECK_THROWS_WITH(grid->start(continuous), Catch::Contains("train.lr is continuous"));
}

TEST_CASE("random: the same proposals for the same seed, others for another, inside the bounds", "[tuners]") {
  SearchSpace space;
  space.dimensions = {range("train.lr", SearchDimension::Kind::loguniform, 1e-4, 1e-2),
                      range("models.mlp.dropout", SearchDimension::Kind::uniform, 0.0, 0.5),
                      range("train.batch_size", SearchDimension::Kind::int_uniform, 16, 256),
                      choice("models.mlp.activation", {"relu", "tanh", "gelu"})};
  space.seed = 42;
  auto a = test_support::make_plugin<Tuner>(PluginKind::tuner, "random");
  auto b = test_support::make_plugin<Tuner>(PluginKind::tuner, "random");
  a->start(space);
  b->start(space);
  auto first = ask_all(*a, 200), second = ask_all(*b, 200);
  REQUIRE(first.size() == 200);
  std::set<std::string> activations;
  for (std::size_t i = 0; i < first.size(); ++i) {
    CHECK(first[i].assignment == second[i].assignment);
    const auto& x = first[i].assignment;
    CHECK(x["train.lr"].get<double>() >= 1e-4);
    CHECK(x["train.lr"].get<double>() < 1e-2);
    CHECK(x["models.mlp.dropout"].get<double>() >= 0.0);
    CHECK(x["models.mlp.dropout"].get<double>() < 0.5);
    CHECK(x["train.batch_size"].is_number_integer());
    CHECK(x["train.batch_size"].get<int>() >= 16);
    CHECK(x["train.batch_size"].get<int>() <= 256);
    activations.insert(x["models.mlp.activation"].get<std::string>());
  }
  CHECK(activations.size() == 3);
  // Log-uniform: about half the draws below the geometric middle (1e-3), not a tenth as uniform would give.
  const auto below = std::count_if(
      first.begin(), first.end(), [](const TrialProposal& p) { return p.assignment["train.lr"].get<double>() < 1e-3; });
  CHECK(below > 70);
  CHECK(below < 130);
  space.seed = 43;
  b->start(space);
  CHECK(ask_all(*b, 1)[0].assignment != first[0].assignment);
}

TEST_CASE("asha: at each rung only the top 1/eta of the values seen there go on", "[tuners]") {
  SearchSpace space;
  space.dimensions = {range("train.lr", SearchDimension::Kind::loguniform, 1e-4, 1e-2)};
  space.max_steps = 9;
  auto asha = test_support::make_plugin<Tuner>(PluginKind::tuner, "asha", {{"eta", 3}, {"min_steps", 1}});
  asha->start(space);
  auto trials = ask_all(*asha, 6);
  REQUIRE(trials.size() == 6);
  using D = TrialDecision;
  // Rung 0 is epoch 1, rung 1 epoch 3 (epoch 9 is the last: never stopped there).
  CHECK(asha->report(1, 1, 0.50) == D::keep_going);  // [0.50]: the best of one
  CHECK(asha->report(2, 1, 0.40) == D::stop);        // [0.50 0.40]: top 1 is 0.50
  CHECK(asha->report(3, 1, 0.60) == D::keep_going);  // [0.60 0.50 0.40]: top 1 is 0.60
  CHECK(asha->report(4, 1, 0.55) == D::stop);        // 4 values, top 1 (0.60)
  CHECK(asha->report(5, 1, 0.58) == D::stop);        // 5 values, top 1 (0.60)
  CHECK(asha->report(6, 1, 0.59) == D::keep_going);  // 6 values, top 2: 0.60 and 0.59
  CHECK(asha->report(1, 2, 0.10) == D::keep_going);  // epoch 2 is no rung: whatever the value
  CHECK(asha->report(1, 3, 0.70) == D::keep_going);  // rung 1: [0.70]
  CHECK(asha->report(3, 3, 0.65) == D::stop);        // rung 1: [0.70 0.65], top 1
  CHECK(asha->report(6, 3, 0.80) == D::keep_going);
  CHECK(asha->report(6, 9, 0.01) == D::keep_going);  // the last epoch: nothing left to save

  // Minimising (a loss): the smallest values go on.
  space.maximize = false;
  asha->start(space);
  ask_all(*asha, 2);
  CHECK(asha->report(1, 1, 0.9) == D::keep_going);
  CHECK(asha->report(2, 1, 1.2) == D::stop);

  // Hyperband brackets: the even trials belong to bracket 1, whose first rung is epoch eta = 3.
  space.maximize = true;
  auto hyperband = test_support::make_plugin<Tuner>(PluginKind::tuner, "asha", {{"eta", 3}, {"brackets", 2}});
  hyperband->start(space);
  ask_all(*hyperband, 4);
  CHECK(hyperband->report(1, 1, 0.5) == D::keep_going);
  CHECK(hyperband->report(3, 1, 0.1) == D::stop);        // bracket 0, rung at epoch 1
  CHECK(hyperband->report(2, 1, 0.1) == D::keep_going);  // bracket 1 does not judge at epoch 1
  CHECK(hyperband->report(2, 3, 0.6) == D::keep_going);
  CHECK(hyperband->report(4, 3, 0.2) == D::stop);
}
