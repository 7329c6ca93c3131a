// Link-layer to L4 parsing for every link type found in real captures. Bounds-checked against
// the captured bytes everywhere; fuzzed by tests/fuzz/fuzz_packet_parser.cpp.
#include <cstring>

#include "trafficid/packet.hpp"

namespace trafficid {
namespace {

constexpr std::uint16_t ethertype_ipv4 = 0x0800;
constexpr std::uint16_t ethertype_ipv6 = 0x86dd;
constexpr std::uint16_t ethertype_vlan = 0x8100;
constexpr std::uint16_t ethertype_qinq = 0x88a8;
constexpr std::uint16_t ethertype_qinq_old = 0x9100;
constexpr std::uint16_t ethertype_pppoe_session = 0x8864;
constexpr std::uint16_t ethertype_mpls = 0x8847;
constexpr std::uint16_t ethertype_mpls_multicast = 0x8848;
constexpr int max_vlan_tags = 8;
constexpr int max_mpls_labels = 16;
constexpr int max_ipv6_extensions = 16;

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
std::uint32_t le32(const std::uint8_t* p) {
  return std::uint32_t{p[3]} << 24 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[1]} << 8 | p[0];
}

// The IP version an L2 protocol field announces: 4, 6, or 0 for anything else.
int ip_version_of_ethertype(std::uint16_t type) {
  if (type == ethertype_ipv4) return 4;
  if (type == ethertype_ipv6) return 6;
  return 0;
}

int ip_version_of_ppp(std::uint16_t protocol) {
  if (protocol == 0x0021) return 4;
  if (protocol == 0x0057) return 6;
  return 0;
}

// BSD address families for IPv4 and the IPv6 values of the BSDs, Linux and macOS.
int ip_version_of_bsd_family(std::uint32_t family) {
  if (family == 2) return 4;
  if (family == 10 || family == 24 || family == 28 || family == 30) return 6;
  return 0;
}

struct Cursor {
  const std::uint8_t* data;
  std::size_t size;
  bool has(std::size_t offset, std::size_t length) const { return offset <= size && length <= size - offset; }
};

// PPP header (optional FF 03 address/control, then a 1- or 2-byte protocol field).
bool parse_ppp(const Cursor& c, std::size_t& off, int& version) {
  if (c.has(off, 2) && c.data[off] == 0xff && c.data[off + 1] == 0x03) off += 2;
  if (!c.has(off, 1)) return false;
  if (c.data[off] & 1) {  // protocol-field compression: one odd byte
    version = ip_version_of_ppp(c.data[off]);
    off += 1;
    return true;
  }
  if (!c.has(off, 2)) return false;
  version = ip_version_of_ppp(be16(c.data + off));
  off += 2;
  return true;
}

// An MPLS label stack at `off` (after an Ethernet, Cisco HDLC or Linux cooked header): skipped to
// its bottom label; the payload's IP version is read from its first nibble (MPLS names no type).
bool skip_mpls(const Cursor& c, PacketView& p, std::size_t& off, int& version) {
  for (int i = 0; i < max_mpls_labels; ++i) {
    if (!c.has(off, 4)) return false;
    const bool bottom = c.data[off + 2] & 1;
    off += 4;
    if (bottom) break;
  }
  if (!c.has(off, 1)) return false;
  version = c.data[off] >> 4;
  if (version != 4 && version != 6) return false;
  p.ethertype = version == 4 ? ethertype_ipv4 : ethertype_ipv6;
  return true;
}

// Ethernet II / 802.3 with LLC-SNAP, any number of VLAN tags, PPPoE sessions and MPLS.
bool parse_ethernet(const Cursor& c, PacketView& p, std::size_t& off, int& version) {
  if (!c.has(0, 14)) return false;
  std::uint16_t type = be16(c.data + 12);
  off = 14;
  if (type <= 1500) {  // 802.3 length field: LLC, IP only through SNAP
    if (!c.has(off, 8) || c.data[off] != 0xaa || c.data[off + 1] != 0xaa || c.data[off + 2] != 0x03) return false;
    type = be16(c.data + off + 6);
    off += 8;
  }
  while ((type == ethertype_vlan || type == ethertype_qinq || type == ethertype_qinq_old) &&
         p.vlan_count < max_vlan_tags) {
    if (!c.has(off, 4)) return false;
    type = be16(c.data + off + 2);
    off += 4;
    ++p.vlan_count;
    p.flags |= packet_flag::vlan;
  }
  if (type == ethertype_pppoe_session) {
    if (!c.has(off, 8)) return false;
    version = ip_version_of_ppp(be16(c.data + off + 6));
    off += 8;
    p.ethertype = version == 4 ? ethertype_ipv4 : version == 6 ? ethertype_ipv6 : 0;
    return version != 0;
  }
  if (type == ethertype_mpls || type == ethertype_mpls_multicast) return skip_mpls(c, p, off, version);
  version = ip_version_of_ethertype(type);
  p.ethertype = type;
  return version != 0;
}

// Finds the L3 offset and IP version for the packet's link type.
bool parse_link(const Cursor& c, PacketView& p, std::size_t& off, int& version) {
  off = 0;
  version = 0;
  switch (p.link_type) {
    case linktype::ethernet: return parse_ethernet(c, p, off, version);
    case linktype::null_bsd: {
      if (!c.has(0, 4)) return false;
      std::uint32_t family = le32(c.data);
      if (family > 0xffff) family = be32(c.data);  // written on a big-endian machine
      version = ip_version_of_bsd_family(family);
      off = 4;
      break;
    }
    case linktype::loop:
      if (!c.has(0, 4)) return false;
      version = ip_version_of_bsd_family(be32(c.data));
      off = 4;
      break;
    case linktype::raw:
    case linktype::raw_dlt:
    case linktype::raw_dlt_bsd:
      if (!c.has(0, 1)) return false;
      version = c.data[0] >> 4;
      break;
    case linktype::ipv4: version = 4; break;
    case linktype::ipv6: version = 6; break;
    case linktype::linux_sll:
      if (!c.has(0, 16)) return false;
      p.ethertype = be16(c.data + 14);
      off = 16;
      if (p.ethertype == ethertype_mpls || p.ethertype == ethertype_mpls_multicast)
        return skip_mpls(c, p, off, version);
      version = ip_version_of_ethertype(p.ethertype);
      break;
    case linktype::linux_sll2:
      if (!c.has(0, 20)) return false;
      p.ethertype = be16(c.data);
      version = ip_version_of_ethertype(p.ethertype);
      off = 20;
      break;
    case linktype::ppp:
    case linktype::ppp_hdlc:
      // Cisco HDLC frames (address 0x0f unicast, 0x8f broadcast) are also stored as PPP.
      if (!(c.has(0, 4) && (c.data[0] == 0x0f || c.data[0] == 0x8f))) {
        if (!parse_ppp(c, off, version)) return false;
        break;
      }
      [[fallthrough]];
    case linktype::c_hdlc:
      if (!c.has(0, 4)) return false;
      p.ethertype = be16(c.data + 2);
      off = 4;
      if (p.ethertype == ethertype_mpls || p.ethertype == ethertype_mpls_multicast)
        return skip_mpls(c, p, off, version);
      version = ip_version_of_ethertype(p.ethertype);
      break;
    default: return false;
  }
  if (version != 4 && version != 6) return false;
  if (p.ethertype == 0) p.ethertype = version == 4 ? ethertype_ipv4 : ethertype_ipv6;
  return true;
}

bool parse_ipv4(const Cursor& c, PacketView& p, std::size_t off, std::size_t& l4, std::uint8_t& proto) {
  if (!c.has(off, 20)) {
    p.flags |= packet_flag::truncated;
    return false;
  }
  const std::uint8_t* h = c.data + off;
  if ((h[0] >> 4) != 4) {
    p.flags |= packet_flag::malformed;
    return false;
  }
  std::size_t header_length = std::size_t{h[0] & 0x0fu} * 4;
  p.l3_length = be16(h + 2);
  if (header_length < 20 || p.l3_length < header_length) p.flags |= packet_flag::malformed;
  if (header_length < 20) return false;
  if (header_length > 20) p.flags |= packet_flag::ipv4_options;
  std::uint16_t fragment = be16(h + 6);
  if (fragment & 0x3fff) p.flags |= packet_flag::fragment;
  if (fragment & 0x1fff) p.flags |= packet_flag::non_first_fragment;
  proto = h[9];
  p.tuple.src.version = p.tuple.dst.version = 4;
  std::memcpy(p.tuple.src.bytes.data(), h + 12, 4);
  std::memcpy(p.tuple.dst.bytes.data(), h + 16, 4);
  l4 = off + header_length;
  if (!c.has(off, header_length)) p.flags |= packet_flag::truncated;
  return true;
}

bool is_ipv6_extension(std::uint8_t next) {
  return next == 0 || next == 43 || next == 44 || next == 51 || next == 60 || next == 135 || next == 139 || next == 140;
}

bool parse_ipv6(const Cursor& c, PacketView& p, std::size_t off, std::size_t& l4, std::uint8_t& proto) {
  if (!c.has(off, 40)) {
    p.flags |= packet_flag::truncated;
    return false;
  }
  const std::uint8_t* h = c.data + off;
  if ((h[0] >> 4) != 6) {
    p.flags |= packet_flag::malformed;
    return false;
  }
  p.l3_length = 40u + be16(h + 4);
  p.tuple.src.version = p.tuple.dst.version = 6;
  std::memcpy(p.tuple.src.bytes.data(), h + 8, 16);
  std::memcpy(p.tuple.dst.bytes.data(), h + 24, 16);
  std::uint8_t next = h[6];
  std::size_t pos = off + 40;
  for (int i = 0; i < max_ipv6_extensions && is_ipv6_extension(next); ++i) {
    p.flags |= packet_flag::ipv6_extensions;
    if (!c.has(pos, 8)) {
      p.flags |= packet_flag::truncated;
      l4 = pos;
      proto = next;
      return true;
    }
    const std::uint8_t* e = c.data + pos;
    std::size_t length;
    if (next == 44) {  // fragment header: fixed 8 bytes
      length = 8;
      p.flags |= packet_flag::fragment;
      if (be16(e + 2) & 0xfff8) p.flags |= packet_flag::non_first_fragment;
    } else if (next == 51) {  // authentication header counts 4-byte words
      length = (std::size_t{e[1]} + 2) * 4;
    } else {
      length = (std::size_t{e[1]} + 1) * 8;
    }
    next = e[0];
    pos += length;
  }
  proto = next;
  l4 = pos;
  return true;
}

void parse_l4(const Cursor& c, PacketView& p, std::size_t l4, std::uint8_t proto) {
  p.l4_protocol = proto;
  p.tuple.protocol = proto;
  if (p.flags & packet_flag::non_first_fragment) return;  // the L4 header is in another fragment
  if (!c.has(l4, 0)) {
    p.flags |= packet_flag::truncated;
    return;
  }
  const std::uint8_t* h = c.data + l4;
  std::size_t header_length = 0;
  switch (proto) {
    case ipproto::tcp:
      if (c.has(l4, 4)) {
        p.tuple.src_port = be16(h);
        p.tuple.dst_port = be16(h + 2);
      }
      if (!c.has(l4, 20)) break;
      header_length = static_cast<std::size_t>(h[12] >> 4) * 4;
      p.tcp_flags = h[13];
      if (header_length < 20) {
        p.flags |= packet_flag::malformed;
        header_length = 20;
      }
      if (header_length > 20) p.flags |= packet_flag::tcp_options;
      break;
    case ipproto::udp:
      if (c.has(l4, 4)) {
        p.tuple.src_port = be16(h);
        p.tuple.dst_port = be16(h + 2);
      }
      header_length = 8;
      break;
    case ipproto::icmp:
    case ipproto::icmpv6:
      if (c.has(l4, 2)) p.tuple.src_port = be16(h);      // type, code
      if (c.has(l4, 6)) p.tuple.dst_port = be16(h + 4);  // identifier (echo)
      header_length = proto == ipproto::icmp ? 8 : 4;
      break;
    default: header_length = 0; break;
  }
  p.l4_offset = static_cast<std::int32_t>(l4);
  if (header_length == 0 && (proto == ipproto::tcp)) {
    p.flags |= packet_flag::truncated;
    return;
  }
  if (!c.has(l4, header_length)) {
    p.flags |= packet_flag::truncated;
    return;
  }
  p.payload_offset = static_cast<std::int32_t>(l4 + header_length);
}

}  // namespace

bool parse_packet(PacketView& p) noexcept {
  p.l3_offset = p.l4_offset = p.payload_offset = -1;
  p.ethertype = 0;
  p.vlan_count = 0;
  p.ip_version = 0;
  p.l4_protocol = 0;
  p.tcp_flags = 0;
  p.flags = 0;
  p.l3_length = 0;
  p.tuple = FiveTuple{};

  const Cursor c{p.data.data(), p.data.size()};
  std::size_t off = 0;
  int version = 0;
  if (!parse_link(c, p, off, version)) return false;

  std::size_t l4 = 0;
  std::uint8_t proto = 0;
  bool ok = version == 4 ? parse_ipv4(c, p, off, l4, proto) : parse_ipv6(c, p, off, l4, proto);
  if (!ok) return false;
  p.l3_offset = static_cast<std::int32_t>(off);
  p.ip_version = static_cast<std::uint8_t>(version);
  parse_l4(c, p, l4, proto);
  return true;
}

std::span<const std::uint8_t> PacketView::payload() const {
  if (payload_offset < 0) return {};
  std::size_t end = data.size();
  if (l3_offset >= 0 && l3_length > 0) {
    std::size_t ip_end = static_cast<std::size_t>(l3_offset) + l3_length;
    if (ip_end < end) end = ip_end;  // drop Ethernet padding after the IP packet
  }
  auto start = static_cast<std::size_t>(payload_offset);
  if (start >= end) return {};
  return data.subspan(start, end - start);
}

}  // namespace trafficid
