// flow_packets: the first N packets of a flow, each its Deep Packet vector of M bytes, one sample
// per flow ([N, M] uint8), for flow-level models. A flow's sample leaves as soon as it has its N
// packets, so open flows cost at most N x M bytes each.
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "trafficid/sdk.hpp"

namespace trafficid::flow_packets_features {
namespace {

class FlowPackets final : public FeatureExtractor {
 public:
  explicit FlowPackets(const PluginArgs& args) {
    const auto& p = args.params;
    packets_ = static_cast<std::size_t>(p.at("packets").get<std::int64_t>());
    options_ = deep_packet_options(p, static_cast<std::size_t>(p.at("bytes").get<std::int64_t>()));
    min_packets_ = static_cast<std::size_t>(p.at("min_packets").get<std::int64_t>());
  }

  FeatureSpec spec() const override {
    FeatureSpec s;
    s.dtype = DType::u8;
    s.granularity = Granularity::flow;
    s.shape = {static_cast<std::int64_t>(packets_), static_cast<std::int64_t>(options_.length)};
    s.variable_length = true;
    return s;
  }

  void process(const PacketView& packet, const PacketFlow& flow, SampleSink& out) override {
    if (done_.contains(flow.flow_id)) return;
    auto& state = open_[flow.flow_id];
    if (state.bytes.empty()) state.bytes.resize(packets_ * options_.length);
    auto slot = std::span<std::uint8_t>(state.bytes).subspan(state.count * options_.length, options_.length);
    auto r = deep_packet_vector(packet, options_, slot);
    if (!r.kept()) return;
    state.used = state.count * options_.length + r.bytes;
    if (r.bytes < options_.length) std::fill(slot.begin() + static_cast<std::ptrdiff_t>(r.bytes), slot.end(), 0);
    if (++state.count == packets_) {
      out.add(std::span<const std::uint8_t>(state.bytes.data(), state.used), flow.flow_id);
      open_.erase(flow.flow_id);
      done_.insert(flow.flow_id);
    }
  }

  void end_flow(const FlowRecord& flow, SampleSink& out) override {
    done_.erase(flow.flow_id);
    auto it = open_.find(flow.flow_id);
    if (it == open_.end()) return;
    if (it->second.count >= min_packets_)
      out.add(std::span<const std::uint8_t>(it->second.bytes.data(), it->second.used), flow.flow_id);
    open_.erase(it);
  }

 private:
  struct State {
    std::vector<std::uint8_t> bytes;
    std::size_t count = 0, used = 0;
  };
  std::size_t packets_ = 8, min_packets_ = 1;
  DeepPacketOptions options_;
  std::unordered_map<std::uint64_t, State> open_;
  std::unordered_set<std::uint64_t> done_;  // flows whose sample has left; 8 bytes each until they end
};

Schema schema() {
  Schema s = {
      ParamSpec::integer("packets", 8, "packets per flow sample (N); shorter flows are zero-padded").range(1, 1024),
      ParamSpec::integer("bytes", 256, "bytes of each packet's Deep Packet vector (M)").range(20, 65535),
      ParamSpec::integer("min_packets", 1, "flows with fewer kept packets give no sample").range(1, 1024),
  };
  for (auto& rule : deep_packet_rule_params()) s.push_back(std::move(rule));
  return s;
}

}  // namespace
}  // namespace trafficid::flow_packets_features

TRAFFICID_DEFINE_PLUGIN(trafficid::flow_packets_features::FlowPackets, trafficid::PluginKind::features, "flow_packets",
                        "0.1.0", "the first N packets of each flow as Deep Packet vectors of M bytes", "",
                        trafficid::flow_packets_features::schema)
