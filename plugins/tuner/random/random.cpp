// random: independent draws from every dimension, seeded by the study's seed (Bergstra & Bengio
// 2012: as good as a grid in far fewer trials when few dimensions matter).
#include <trafficid/sdk.hpp>

namespace {

using namespace trafficid;

Schema schema() { return {}; }

class RandomTuner final : public Tuner {
 public:
  explicit RandomTuner(const PluginArgs&) {}

  void start(const SearchSpace& space) override {
    space_ = space;
    rng_.seed(space.seed);
    next_ = 1;
  }
  std::optional<TrialProposal> ask() override { return TrialProposal{next_++, sample_space(space_, rng_)}; }
  TrialDecision report(std::uint64_t, int, double) override { return TrialDecision::keep_going; }
  void tell(std::uint64_t, std::optional<double>) override {}

 private:
  SearchSpace space_;
  std::mt19937_64 rng_;
  std::uint64_t next_ = 1;
};

}  // namespace

TRAFFICID_DEFINE_PLUGIN(RandomTuner, trafficid::PluginKind::tuner, "random", "0.1.0",
                        "independent seeded draws from every dimension", "", schema)
