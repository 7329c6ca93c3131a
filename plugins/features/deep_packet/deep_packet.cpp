// deep_packet: one uint8 vector per packet by Deep Packet's rules (trafficid/deep_packet.hpp), in
// the paper's masking or the strict one that also removes the per-flow shortcut fields.
#include <fmt/format.h>
#include <vector>

#include "trafficid/sdk.hpp"

namespace trafficid::deep_packet_features {
namespace {

Masking masking_from(const std::string& name) { return name == "strict" ? Masking::strict : Masking::paper; }

class DeepPacket final : public FeatureExtractor {
 public:
  explicit DeepPacket(const PluginArgs& args) : host_(args.host) {
    const auto& p = args.params;
    options_.length = static_cast<std::size_t>(p.at("length").get<std::int64_t>());
    options_.masking = masking_from(p.at("masking").get<std::string>());
    options_.drop_empty_tcp = p.at("drop_empty_tcp").get<bool>();
    options_.drop_dns = p.at("drop_dns").get<bool>();
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
  return {
      ParamSpec::integer("length", 1500, "bytes per vector from the IP header on (the paper: 1500)").range(20, 65535),
      ParamSpec::choice("masking", "paper", {"paper", "strict"},
                        "paper: IP addresses zeroed; strict: also ports, IP ID, TTL/hop limit, IPv6 flow label, "
                        "checksums, TCP sequence/ack numbers, window and options"),
      ParamSpec::boolean("drop_empty_tcp", true, "drop TCP segments with SYN, ACK or FIN and no payload (the paper)"),
      ParamSpec::boolean("drop_dns", true, "drop DNS and multicast DNS packets, port 53 or 5353 (the paper)"),
  };
}

}  // namespace
}  // namespace trafficid::deep_packet_features

TRAFFICID_DEFINE_PLUGIN(trafficid::deep_packet_features::DeepPacket, trafficid::PluginKind::features, "deep_packet",
                        "0.1.0", "Deep Packet's per-packet byte vector (arXiv 1709.02656), paper or strict masking", "",
                        trafficid::deep_packet_features::schema)
