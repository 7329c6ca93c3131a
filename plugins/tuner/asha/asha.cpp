// asha: asynchronous successive halving, stop-only (Li et al., "A System for Massively Parallel
// Hyperparameter Tuning", MLSys 2020), with Hyperband brackets as an option (Li et al., JMLR 2018).
// Configurations are drawn at random (seeded); a trial's value at a rung (min_steps * eta^k
// epochs) is compared with every value recorded at that rung so far, and the trial goes on only
// when it is among the top 1/eta of them (at least the best one). With `brackets` = B, trial i
// belongs to bracket i mod B, whose first rung is min_steps * eta^b: the later brackets judge later
// and so hedge against metrics that rank configurations badly early on.
#include <algorithm>
#include <map>
#include <trafficid/sdk.hpp>

namespace {

using namespace trafficid;

Schema schema() {
  return {
      ParamSpec::integer("eta", 3, "reduction factor: the top 1/eta of a rung go on").range(2, 16),
      ParamSpec::integer("min_steps", 1, "epochs before the first rung (the smallest budget a trial gets)")
          .range(1, 100000),
      ParamSpec::integer("brackets", 1, "Hyperband brackets (1: plain ASHA)").range(1, 16),
  };
}

class AshaTuner final : public Tuner {
 public:
  explicit AshaTuner(const PluginArgs& args)
      : eta_(args.params.at("eta").get<std::int64_t>()),
        min_steps_(args.params.at("min_steps").get<std::int64_t>()),
        brackets_(args.params.at("brackets").get<std::int64_t>()) {}

  void start(const SearchSpace& space) override {
    space_ = space;
    rng_.seed(space.seed);
    next_ = 1;
    rungs_.clear();
  }
  std::optional<TrialProposal> ask() override { return TrialProposal{next_++, sample_space(space_, rng_)}; }
  TrialDecision report(std::uint64_t trial, int step, double value) override {
    const std::int64_t bracket = static_cast<std::int64_t>((trial - 1) % static_cast<std::uint64_t>(brackets_));
    std::int64_t rung_step = min_steps_;
    for (std::int64_t b = 0; b < bracket; ++b) rung_step *= eta_;
    int rung = 0;
    while (rung_step < step) rung_step *= eta_, ++rung;
    // Not a rung of its bracket, or the last epoch (nothing left to save): go on.
    if (rung_step != step || (space_.max_steps > 0 && step >= space_.max_steps)) return TrialDecision::keep_going;
    auto& values = rungs_[{bracket, rung}];
    values.push_back(space_.maximize ? value : -value);
    std::vector<double> sorted = values;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    const std::size_t keep = std::max<std::size_t>(1, values.size() / static_cast<std::size_t>(eta_));
    return (space_.maximize ? value : -value) >= sorted[keep - 1] ? TrialDecision::keep_going : TrialDecision::stop;
  }
  void tell(std::uint64_t, std::optional<double>) override {}

 private:
  std::int64_t eta_, min_steps_, brackets_;
  SearchSpace space_;
  std::mt19937_64 rng_;
  std::uint64_t next_ = 1;
  std::map<std::pair<std::int64_t, int>, std::vector<double>> rungs_;  // (bracket, rung) -> values seen
};

}  // namespace

TRAFFICID_DEFINE_PLUGIN(AshaTuner, trafficid::PluginKind::tuner, "asha", "0.1.0",
                        "asynchronous successive halving (stop-only), Hyperband brackets optional", "", schema)
