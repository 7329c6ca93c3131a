// flow_stats: one float32 vector per flow, the classic statistical flow features: for all packets
// and for each direction, packet-size and inter-arrival statistics (count, min, max, mean, std,
// percentiles), the flow's duration, packets and bytes, and the signed sizes of its first N
// packets (positive from the client, negative from the server). Sizes are IP lengths, so the link
// type does not matter; times are in seconds. Percentiles are over each direction's first
// `percentile_window` packets; everything else is over the whole flow.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <unordered_map>
#include <vector>

#include "trafficid/sdk.hpp"

namespace trafficid::flow_stats_features {
namespace {

constexpr double percentiles[] = {10, 25, 50, 75, 90};
const char* const direction_names[] = {"all", "fwd", "bwd"};

// Count, min, max, mean and variance in one pass (Welford), plus the first values for percentiles.
struct Series {
  std::uint64_t count = 0;
  double min = 0, max = 0, mean = 0, m2 = 0;
  std::vector<float> window;

  void add(double x, std::size_t keep) {
    ++count;
    if (count == 1) min = max = x;
    min = std::min(min, x);
    max = std::max(max, x);
    double delta = x - mean;
    mean += delta / static_cast<double>(count);
    m2 += delta * (x - mean);
    if (window.size() < keep) window.push_back(static_cast<float>(x));
  }

  void write(std::vector<float>& out) {
    out.push_back(static_cast<float>(count));
    out.push_back(static_cast<float>(min));
    out.push_back(static_cast<float>(max));
    out.push_back(static_cast<float>(mean));
    out.push_back(static_cast<float>(count > 1 ? std::sqrt(m2 / static_cast<double>(count - 1)) : 0.0));
    std::sort(window.begin(), window.end());
    for (double p : percentiles) {
      if (window.empty()) {
        out.push_back(0);
        continue;
      }
      // Linear interpolation between closest ranks, as numpy.percentile's default.
      double rank = p / 100.0 * static_cast<double>(window.size() - 1);
      auto lo = static_cast<std::size_t>(std::floor(rank));
      auto hi = std::min(lo + 1, window.size() - 1);
      double frac = rank - static_cast<double>(lo);
      out.push_back(static_cast<float>(window[lo] + (window[hi] - window[lo]) * frac));
    }
  }
};

struct FlowState {
  Series size[3], gap[3];
  std::int64_t first_ns = 0, last_ns[3] = {0, 0, 0};
  double bytes[3] = {0, 0, 0};
  std::vector<float> first_sizes;
};

class FlowStats final : public FeatureExtractor {
 public:
  explicit FlowStats(const PluginArgs& args) {
    first_ = static_cast<std::size_t>(args.params.at("first_packets").get<std::int64_t>());
    window_ = static_cast<std::size_t>(args.params.at("percentile_window").get<std::int64_t>());
  }

  static std::vector<std::string> columns(std::size_t first) {
    std::vector<std::string> names = {"duration_s"};
    for (const char* d : direction_names) {
      names.push_back(fmt::format("{}_bytes", d));
      for (const char* what : {"size", "iat"}) {
        for (const char* stat : {"count", "min", "max", "mean", "std"})
          names.push_back(fmt::format("{}_{}_{}", d, what, stat));
        for (double p : percentiles) names.push_back(fmt::format("{}_{}_p{}", d, what, static_cast<int>(p)));
      }
    }
    for (std::size_t i = 0; i < first; ++i) names.push_back(fmt::format("size_{}", i));
    return names;
  }

  FeatureSpec spec() const override {
    FeatureSpec s;
    s.dtype = DType::f32;
    s.granularity = Granularity::flow;
    s.column_names = columns(first_);
    s.shape = {static_cast<std::int64_t>(s.column_names.size())};
    return s;
  }

  void process(const PacketView& packet, const PacketFlow& flow, SampleSink&) override {
    auto [it, fresh] = flows_.try_emplace(flow.flow_id);
    FlowState& s = it->second;
    const std::int64_t t = packet.timestamp_ns;
    if (fresh) s.first_ns = t;
    const double size =
        packet.l3_length ? packet.l3_length : static_cast<double>(packet.wire_length) - std::max(0, packet.l3_offset);
    const int direction = flow.from_client ? 1 : 2;
    for (int d : {0, direction}) {
      if (s.size[d].count > 0) s.gap[d].add(static_cast<double>(t - s.last_ns[d]) / 1e9, window_);
      s.size[d].add(size, window_);
      s.bytes[d] += size;
      s.last_ns[d] = t;
    }
    if (s.first_sizes.size() < first_) s.first_sizes.push_back(static_cast<float>(flow.from_client ? size : -size));
  }

  void end_flow(const FlowRecord& flow, SampleSink& out) override {
    auto it = flows_.find(flow.flow_id);
    if (it == flows_.end()) return;
    FlowState& s = it->second;
    sample_.clear();
    sample_.push_back(static_cast<float>(static_cast<double>(s.last_ns[0] - s.first_ns) / 1e9));
    for (int d = 0; d < 3; ++d) {
      sample_.push_back(static_cast<float>(s.bytes[d]));
      s.size[d].write(sample_);
      s.gap[d].write(sample_);
    }
    s.first_sizes.resize(first_, 0.0f);
    sample_.insert(sample_.end(), s.first_sizes.begin(), s.first_sizes.end());
    out.add({reinterpret_cast<const std::uint8_t*>(sample_.data()), sample_.size() * sizeof(float)}, flow.flow_id);
    flows_.erase(it);
  }

 private:
  std::size_t first_ = 20, window_ = 1024;
  std::unordered_map<std::uint64_t, FlowState> flows_;
  std::vector<float> sample_;
};

Schema schema() {
  return {
      ParamSpec::integer("first_packets", 20, "signed sizes of the first N packets (+ client, - server)")
          .range(0, 4096),
      ParamSpec::integer("percentile_window", 1024, "percentiles over each direction's first N packets")
          .range(1, 1 << 20),
  };
}

}  // namespace
}  // namespace trafficid::flow_stats_features

TRAFFICID_DEFINE_PLUGIN(trafficid::flow_stats_features::FlowStats, trafficid::PluginKind::features, "flow_stats",
                        "0.1.0", "per-flow size and inter-arrival statistics and first packet sizes (float32)", "",
                        trafficid::flow_stats_features::schema)
