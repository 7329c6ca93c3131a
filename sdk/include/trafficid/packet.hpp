// The packet view: what a capture source hands downstream. It points into the source's buffer
// (valid until the source's next call) and carries the layers parse_packet() found.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "trafficid/export.hpp"

namespace trafficid {

// LINKTYPE_* values as stored in pcap/pcapng files (https://www.tcpdump.org/linktypes.html).
namespace linktype {
inline constexpr std::uint32_t null_bsd = 0;  // 4-byte address family, host byte order of the writer
inline constexpr std::uint32_t ethernet = 1;
inline constexpr std::uint32_t ppp = 9;
inline constexpr std::uint32_t raw_dlt = 12;      // DLT_RAW as some platforms (and libpcap) report it
inline constexpr std::uint32_t raw_dlt_bsd = 14;  // DLT_RAW on OpenBSD
inline constexpr std::uint32_t ppp_hdlc = 50;
inline constexpr std::uint32_t raw = 101;
inline constexpr std::uint32_t c_hdlc = 104;
inline constexpr std::uint32_t loop = 108;  // like null_bsd but network byte order
inline constexpr std::uint32_t linux_sll = 113;
inline constexpr std::uint32_t ipv4 = 228;
inline constexpr std::uint32_t ipv6 = 229;
inline constexpr std::uint32_t linux_sll2 = 276;
}  // namespace linktype

TRAFFICID_SDK_API const char* linktype_name(std::uint32_t link_type);
TRAFFICID_SDK_API bool linktype_supported(std::uint32_t link_type);

// An IPv4 or IPv6 address; IPv4 is kept in the first four bytes.
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};
  std::uint8_t version = 0;  // 0 when there is no IP layer

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
};

TRAFFICID_SDK_API std::string to_string(const IpAddress& address);

namespace ipproto {
inline constexpr std::uint8_t icmp = 1;
inline constexpr std::uint8_t tcp = 6;
inline constexpr std::uint8_t udp = 17;
inline constexpr std::uint8_t icmpv6 = 58;
}  // namespace ipproto

struct FiveTuple {
  IpAddress src;
  IpAddress dst;
  std::uint16_t src_port = 0;  // ICMP: type << 8 | code in src_port, identifier in dst_port
  std::uint16_t dst_port = 0;
  std::uint8_t protocol = 0;

  friend bool operator==(const FiveTuple&, const FiveTuple&) = default;
  friend auto operator<=>(const FiveTuple&, const FiveTuple&) = default;
};

// The same key for both directions of a flow (lower endpoint first).
TRAFFICID_SDK_API FiveTuple canonical(const FiveTuple& tuple);
// Equal for a tuple and its reverse: shard flows across workers without splitting a flow.
TRAFFICID_SDK_API std::uint64_t symmetric_hash(const FiveTuple& tuple);
TRAFFICID_SDK_API std::string to_string(const FiveTuple& tuple);

namespace packet_flag {
inline constexpr std::uint32_t fragment = 1u << 0;            // IPv4 MF/offset or IPv6 fragment header
inline constexpr std::uint32_t non_first_fragment = 1u << 1;  // no L4 header in this packet
inline constexpr std::uint32_t truncated = 1u << 2;           // captured bytes end inside a header
inline constexpr std::uint32_t ipv4_options = 1u << 3;
inline constexpr std::uint32_t ipv6_extensions = 1u << 4;
inline constexpr std::uint32_t malformed = 1u << 5;  // a length or version field is impossible
inline constexpr std::uint32_t vlan = 1u << 6;       // at least one 802.1Q/802.1ad tag
inline constexpr std::uint32_t tcp_options = 1u << 7;
}  // namespace packet_flag

struct PacketView {
  // Where the packet comes from.
  std::int64_t timestamp_ns = 0;  // since the Unix epoch
  std::uint32_t link_type = linktype::ethernet;
  std::uint32_t wire_length = 0;       // length on the wire (may exceed data.size() when snapped)
  std::span<const std::uint8_t> data;  // captured bytes, link-layer header first
  std::uint32_t file_id = 0;           // index into the source's file list
  std::uint64_t index = 0;             // 0-based position of the packet within its file

  // Filled by parse_packet(). Offsets are into `data`; -1 where the layer is absent.
  std::int32_t l3_offset = -1;
  std::int32_t l4_offset = -1;
  std::int32_t payload_offset = -1;
  std::uint16_t ethertype = 0;  // of the L3 layer (0x0800, 0x86dd), 0 when unknown
  std::uint16_t vlan_count = 0;
  std::uint8_t ip_version = 0;
  std::uint8_t l4_protocol = 0;  // final next-header / protocol value
  std::uint8_t tcp_flags = 0;
  std::uint32_t flags = 0;      // packet_flag bits
  std::uint32_t l3_length = 0;  // IP total length as the header says (0 when no IP)
  FiveTuple tuple;

  bool has_ip() const { return l3_offset >= 0; }
  bool has_l4() const { return l4_offset >= 0; }
  // Payload bytes after the L4 header, bounded by both the capture and the IP length.
  TRAFFICID_SDK_API std::span<const std::uint8_t> payload() const;
  std::span<const std::uint8_t> l3() const {
    return l3_offset < 0 ? std::span<const std::uint8_t>{} : data.subspan(static_cast<std::size_t>(l3_offset));
  }
};

// Fills the parsed fields of `packet` from its link type and bytes. Never reads outside
// `packet.data`; never throws. Returns false when no IP layer could be found.
TRAFFICID_SDK_API bool parse_packet(PacketView& packet) noexcept;

}  // namespace trafficid
