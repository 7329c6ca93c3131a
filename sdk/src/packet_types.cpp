#include <arpa/inet.h>
#include <endian.h>

#include <cstring>
#include <fmt/format.h>

#include "trafficid/packet.hpp"

namespace trafficid {

const char* linktype_name(std::uint32_t link_type) {
  switch (link_type) {
    case linktype::null_bsd: return "NULL (BSD loopback)";
    case linktype::ethernet: return "Ethernet";
    case linktype::ppp: return "PPP";
    case linktype::raw_dlt:
    case linktype::raw_dlt_bsd:
    case linktype::raw: return "Raw IP";
    case linktype::ppp_hdlc: return "PPP in HDLC framing";
    case linktype::c_hdlc: return "Cisco HDLC";
    case linktype::loop: return "OpenBSD loopback";
    case linktype::linux_sll: return "Linux cooked (SLL)";
    case linktype::ipv4: return "Raw IPv4";
    case linktype::ipv6: return "Raw IPv6";
    case linktype::linux_sll2: return "Linux cooked v2 (SLL2)";
    default: return "unsupported";
  }
}

bool linktype_supported(std::uint32_t link_type) { return std::string_view(linktype_name(link_type)) != "unsupported"; }

std::string to_string(const IpAddress& address) {
  if (address.version == 4) {
    // By hand: glibc's inet_ntop formats IPv4 through sprintf, which costs more than the rest of
    // a flow's row in label/flows.csv.
    char text[16];
    char* at = text;
    for (std::size_t i = 0; i < 4; ++i) {
      const unsigned byte = address.bytes[i];
      if (byte >= 100) *at++ = static_cast<char>('0' + byte / 100);
      if (byte >= 10) *at++ = static_cast<char>('0' + byte / 10 % 10);
      *at++ = static_cast<char>('0' + byte % 10);
      if (i < 3) *at++ = '.';
    }
    return std::string(text, at);
  }
  char text[INET6_ADDRSTRLEN] = "";
  if (address.version == 6) inet_ntop(AF_INET6, address.bytes.data(), text, sizeof text);
  else return "-";
  return text;
}

FiveTuple canonical(const FiveTuple& t) {
  bool swap = std::tie(t.src, t.src_port) > std::tie(t.dst, t.dst_port);
  if (!swap) return t;
  FiveTuple r = t;
  std::swap(r.src, r.dst);
  std::swap(r.src_port, r.dst_port);
  return r;
}

namespace {
std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  // splitmix64 finaliser on an FNV-style accumulation: cheap, well distributed.
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}
std::uint64_t endpoint_hash(const IpAddress& a, std::uint16_t port) {
  // The address as two big-endian words: two loads, where a loop over its bytes (which the
  // compiler kept) cost as much as the mixing. Runs three times per packet read.
  std::uint64_t high = 0, low = 0;
  std::memcpy(&high, a.bytes.data(), 8);
  std::memcpy(&low, a.bytes.data() + 8, 8);
  return mix(mix(mix(a.version, be64toh(high)), be64toh(low)), port);
}
}  // namespace

std::uint64_t symmetric_hash(const FiveTuple& t) {
  // Commutative combination of the two endpoints, then the protocol.
  std::uint64_t a = endpoint_hash(t.src, t.src_port);
  std::uint64_t b = endpoint_hash(t.dst, t.dst_port);
  return mix(a + b, (a ^ b) + t.protocol);
}

std::string to_string(const FiveTuple& t) {
  auto endpoint = [](const IpAddress& a, std::uint16_t port) {
    return a.version == 6 ? fmt::format("[{}]:{}", to_string(a), port) : fmt::format("{}:{}", to_string(a), port);
  };
  return fmt::format("{} {} -> {}", t.protocol, endpoint(t.src, t.src_port), endpoint(t.dst, t.dst_port));
}

}  // namespace trafficid
