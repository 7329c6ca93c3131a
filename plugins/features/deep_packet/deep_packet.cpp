// deep_packet: one uint8 vector per packet by Deep Packet's rules (trafficid/deep_packet.hpp), in
// the paper's masking or the strict one that also removes the per-flow shortcut fields.
#include <fmt/format.h>
#include <vector>

#include "trafficid/sdk.hpp"

namespace trafficid::deep_packet_features {
namespace {

class DeepPacket final : public FeatureExtractor {
 public:
  explicit DeepPacket(const PluginArgs& args) : host_(args.host) {
    options_ = deep_packet_options(args.params, static_cast<std::size_t>(args.params.at("length").get<std::int64_t>()));
    vector_.resize(options_.length);
  }

  FeatureSpec spec() const override {
    FeatureSpec s;
    s.dtype = DType::u8;
    s.granularity = Granularity::packet;
    s.shape = {static_cast<std::int64_t>(options_.length)};
    s.variable_length = true;
    return s;
  }

  void process(const PacketView& packet, const PacketFlow& flow, SampleSink& out) override {
    auto r = deep_packet_vector(packet, options_, vector_);
    if (r.kept()) out.add(std::span<const std::uint8_t>(vector_.data(), r.bytes), flow.flow_id);
  }

 private:
  HostServices& host_;
  DeepPacketOptions options_;
  std::vector<std::uint8_t> vector_;
};

Schema schema() {
  Schema s = {
      ParamSpec::integer("length", 1500, "bytes per vector from the IP header on (the paper: 1500)").range(20, 65535)};
  for (auto& rule : deep_packet_rule_params()) s.push_back(std::move(rule));
  return s;
}

}  // namespace
}  // namespace trafficid::deep_packet_features

TRAFFICID_DEFINE_PLUGIN(trafficid::deep_packet_features::DeepPacket, trafficid::PluginKind::features, "deep_packet",
                        "0.1.0", "Deep Packet's per-packet byte vector (arXiv 1709.02656), paper or strict masking", "",
                        trafficid::deep_packet_features::schema)
