// grid: every combination of the space's choices (the cartesian product, last dimension fastest),
// like Deep Packet's own search over filter sizes and strides; optionally in a seeded random order.
#include <algorithm>
#include <trafficid/sdk.hpp>

namespace {

using namespace trafficid;

Schema schema() {
  return {ParamSpec::boolean("shuffle", false, "visit the points in a seeded random order instead of in order")};
}

class GridTuner final : public Tuner {
 public:
  explicit GridTuner(const PluginArgs& args) : shuffle_(args.params.at("shuffle").get<bool>()) {}

  void start(const SearchSpace& space) override {
    points_ = grid_points(space);
    if (shuffle_) {
      std::mt19937_64 rng(space.seed);
      for (std::size_t i = points_.size(); i > 1; --i) std::swap(points_[i - 1], points_[rng() % i]);
    }
    next_ = 0;
  }
  std::optional<TrialProposal> ask() override {
    if (next_ >= points_.size()) return std::nullopt;
    TrialProposal p{next_ + 1, points_[next_]};
    ++next_;
    return p;
  }
  TrialDecision report(std::uint64_t, int, double) override { return TrialDecision::keep_going; }
  void tell(std::uint64_t, std::optional<double>) override {}

 private:
  bool shuffle_;
  std::vector<Json> points_;
  std::uint64_t next_ = 0;
};

}  // namespace

TRAFFICID_DEFINE_PLUGIN(GridTuner, trafficid::PluginKind::tuner, "grid", "0.1.0",
                        "every combination of the space's choices (cartesian product)", "", schema)
