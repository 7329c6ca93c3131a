// Deep Packet's per-packet vector (Lotfollahi et al., arXiv 1709.02656), for the `deep_packet`
// and `flow_packets` extractors and for anyone's own: the IP packet with the link layer removed,
// the UDP header zero-padded to 20 bytes, the IP addresses masked, cut to a fixed length.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "trafficid/export.hpp"
#include "trafficid/packet.hpp"
#include "trafficid/params.hpp"

namespace trafficid {

enum class Masking : std::uint8_t {
  paper,   // the paper's rules: IP source and destination zeroed
  strict,  // also every per-flow or per-host shortcut field: ports, IPv4 ID and checksum, TTL / hop
           // limit, IPv6 flow label, TCP sequence and acknowledgement numbers, window, checksum and
           // options (timestamps among them), UDP and ICMP checksums
};

struct DeepPacketOptions {
  std::size_t length = 1500;
  Masking masking = Masking::paper;
  bool drop_empty_tcp = true;  // TCP segments with SYN, ACK or FIN set and no payload
  bool drop_dns = true;        // port 53 (UDP or TCP) and multicast DNS (5353), either side
};

enum class DeepPacketDrop : std::uint8_t { kept, not_ip, empty_tcp, dns };

struct DeepPacketResult {
  DeepPacketDrop drop = DeepPacketDrop::kept;
  std::size_t bytes = 0;  // bytes written at the start of `out`; the vector's other bytes are zero
  bool kept() const { return drop == DeepPacketDrop::kept; }
};

// Writes the vector of a parsed packet to `out` (at least options.length bytes); only the first
// `bytes` of `out` are written. Never reads outside the packet.
TRAFFICID_SDK_API DeepPacketResult deep_packet_vector(const PacketView& packet, const DeepPacketOptions& options,
                                                      std::span<std::uint8_t> out) noexcept;

// The parameters of the rules above (masking, drop_empty_tcp, drop_dns), declared once for every
// extractor built on them, and the options they give (with the vector length).
TRAFFICID_SDK_API Schema deep_packet_rule_params();
TRAFFICID_SDK_API DeepPacketOptions deep_packet_options(const Json& params, std::size_t length);

}  // namespace trafficid
