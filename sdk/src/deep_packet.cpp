#include "trafficid/deep_packet.hpp"

#include <algorithm>
#include <cstring>

namespace trafficid {

namespace {
constexpr std::size_t udp_padding = 12;  // the UDP header padded to a TCP header's 20 bytes

bool is_dns_port(std::uint16_t port) { return port == 53 || port == 5353; }

// Zeroes `count` bytes at `offset` of the written vector, as far as they were written.
void zero(std::span<std::uint8_t> out, std::size_t written, std::size_t offset, std::size_t count) {
  if (offset >= written) return;
  std::memset(out.data() + offset, 0, std::min(count, written - offset));
}
}  // namespace

DeepPacketResult deep_packet_vector(const PacketView& p, const DeepPacketOptions& options,
                                    std::span<std::uint8_t> out) noexcept {
  if (!p.has_ip()) return {DeepPacketDrop::not_ip, 0};
  const bool tcp = p.has_l4() && p.l4_protocol == ipproto::tcp;
  const bool udp = p.has_l4() && p.l4_protocol == ipproto::udp;
  if (options.drop_empty_tcp && tcp && (p.tcp_flags & 0x13) && p.payload().empty())
    return {DeepPacketDrop::empty_tcp, 0};
  if (options.drop_dns && (tcp || udp) && (is_dns_port(p.tuple.src_port) || is_dns_port(p.tuple.dst_port)))
    return {DeepPacketDrop::dns, 0};

  // The IP packet as its header bounds it: an Ethernet trailer is not part of it.
  auto ip = p.l3();
  if (p.l3_length) ip = ip.first(std::min<std::size_t>(ip.size(), p.l3_length));
  const std::size_t length = std::min(options.length, out.size());
  const std::size_t l4 = p.has_l4() ? static_cast<std::size_t>(p.l4_offset - p.l3_offset) : 0;

  std::size_t written = 0;
  if (udp && ip.size() >= l4 + 8) {
    // IP header, UDP header, 12 zero bytes, then the UDP payload.
    const std::size_t head = std::min(length, l4 + 8);
    std::memcpy(out.data(), ip.data(), head);
    written = head;
    if (length > head) {
      const std::size_t pad = std::min(length - head, udp_padding);
      std::memset(out.data() + head, 0, pad);
      written += pad;
      const std::size_t rest = std::min(length - written, ip.size() - (l4 + 8));
      std::memcpy(out.data() + written, ip.data() + l4 + 8, rest);
      written += rest;
    }
  } else {
    written = std::min(length, ip.size());
    std::memcpy(out.data(), ip.data(), written);
  }

  // Mask the addresses (and, in strict mode, every shortcut field), offsets from the IP header.
  const bool strict = options.masking == Masking::strict;
  if (p.ip_version == 4) {
    zero(out, written, 12, 8);
    if (strict) {
      zero(out, written, 4, 2);   // identification
      zero(out, written, 8, 1);   // time to live
      zero(out, written, 10, 2);  // header checksum
    }
  } else {
    zero(out, written, 8, 32);
    if (strict) {
      // Flow label: the low 4 bits of byte 1 and bytes 2-3; the traffic class stays.
      if (written > 1) out[1] &= 0xf0;
      zero(out, written, 2, 2);
      zero(out, written, 7, 1);  // hop limit
    }
  }
  if (strict && p.has_l4()) {
    if (tcp) {
      zero(out, written, l4, 4);       // ports
      zero(out, written, l4 + 4, 8);   // sequence and acknowledgement numbers
      zero(out, written, l4 + 14, 4);  // window, checksum
      const auto data = p.data;
      const std::size_t at = static_cast<std::size_t>(p.l4_offset) + 12;
      const std::size_t header = at < data.size() ? static_cast<std::size_t>(data[at] >> 4) * 4 : 20;
      if (header > 20) zero(out, written, l4 + 20, header - 20);  // options, timestamps among them
    } else if (udp) {
      zero(out, written, l4, 4);      // ports
      zero(out, written, l4 + 6, 2);  // checksum
    } else if (p.l4_protocol == ipproto::icmp || p.l4_protocol == ipproto::icmpv6) {
      zero(out, written, l4 + 2, 2);  // checksum
    }
  }
  return {DeepPacketDrop::kept, written};
}

Schema deep_packet_rule_params() {
  return {
      ParamSpec::choice("masking", "paper", {"paper", "strict"},
                        "paper: IP addresses zeroed; strict: also ports, IP ID, TTL/hop limit, IPv6 flow label, "
                        "checksums, TCP sequence/ack numbers, window and options"),
      ParamSpec::boolean("drop_empty_tcp", true, "drop TCP segments with SYN, ACK or FIN and no payload (the paper)"),
      ParamSpec::boolean("drop_dns", true, "drop DNS and multicast DNS packets, port 53 or 5353 (the paper)"),
  };
}

DeepPacketOptions deep_packet_options(const Json& params, std::size_t length) {
  DeepPacketOptions options;
  options.length = length;
  options.masking = params.at("masking").get<std::string>() == "strict" ? Masking::strict : Masking::paper;
  options.drop_empty_tcp = params.at("drop_empty_tcp").get<bool>();
  options.drop_dns = params.at("drop_dns").get<bool>();
  return options;
}

}  // namespace trafficid
