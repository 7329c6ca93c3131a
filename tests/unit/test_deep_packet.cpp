// Deep Packet vectors, byte for byte, on hand-built packets: the paper's rules (link layer gone,
// UDP header padded to 20 bytes, addresses masked, empty TCP control segments and DNS dropped)
// and the strict masking's extra zeroed fields, for every link type and IP version.
#include <vector>

#include "test_support.hpp"
#include "trafficid/deep_packet.hpp"
#include "trafficid/features.hpp"

using namespace trafficid;
using Bytes = std::vector<std::uint8_t>;

namespace {

void set16(Bytes& b, std::size_t at, std::size_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}

Bytes tcp_header(std::uint8_t flags, bool timestamps) {
  Bytes tcp = {0x04, 0xd2, 0x01, 0xbb,  0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
               0x77, 0x88, 0x50, flags, 0xfa, 0xf0, 0xab, 0xcd, 0x00, 0x07};
  if (timestamps) {
    tcp[12] = 0x80;
    tcp.insert(tcp.end(), {1, 1, 8, 10, 0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe});
  }
  return tcp;
}

Bytes udp_header(std::uint16_t sport, std::uint16_t dport, std::size_t payload) {
  Bytes udp = {0, 0, 0, 0, 0, 0, 0x5a, 0xa5};
  set16(udp, 0, sport);
  set16(udp, 2, dport);
  set16(udp, 4, 8 + payload);
  return udp;
}

// IPv4: 20-byte header (or 24 with options) before `l4` and `payload`.
Bytes ipv4(std::uint8_t protocol, const Bytes& l4, const Bytes& payload, bool options = false) {
  Bytes ip = {0x45, 0x00, 0, 0, 0x12, 0x34, 0x40, 0x00, 64, protocol, 0xbe, 0xef, 10, 0, 0, 1, 192, 168, 1, 2};
  if (options) {
    ip[0] = 0x46;
    ip.insert(ip.end(), {0x94, 0x04, 0x00, 0x00});  // router alert
  }
  ip.insert(ip.end(), l4.begin(), l4.end());
  ip.insert(ip.end(), payload.begin(), payload.end());
  set16(ip, 2, ip.size());
  return ip;
}

// IPv6 with a hop-by-hop header (8 bytes) before the transport header.
Bytes ipv6(std::uint8_t protocol, const Bytes& l4, const Bytes& payload) {
  Bytes ip = {0x6a, 0xb1, 0x23, 0x45, 0, 0, 0 /* hop-by-hop */, 57};
  for (int i = 0; i < 16; ++i) ip.push_back(static_cast<std::uint8_t>(0x20 + i));
  for (int i = 0; i < 16; ++i) ip.push_back(static_cast<std::uint8_t>(0xf0 + i));
  ip.insert(ip.end(), {protocol, 0, 1, 4, 0, 0, 0, 0});
  ip.insert(ip.end(), l4.begin(), l4.end());
  ip.insert(ip.end(), payload.begin(), payload.end());
  set16(ip, 4, ip.size() - 40);
  return ip;
}

Bytes ethernet(const Bytes& ip, std::uint16_t ethertype, bool vlan = false, std::size_t trailer = 0) {
  Bytes frame = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  if (vlan) frame.insert(frame.end(), {0x81, 0x00, 0x00, 0x2a});
  frame.push_back(static_cast<std::uint8_t>(ethertype >> 8));
  frame.push_back(static_cast<std::uint8_t>(ethertype));
  frame.insert(frame.end(), ip.begin(), ip.end());
  frame.insert(frame.end(), trailer, 0xee);
  return frame;
}

Bytes linux_sll(const Bytes& ip) {
  Bytes frame = {0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00};
  frame.insert(frame.end(), ip.begin(), ip.end());
  return frame;
}

struct Vector {
  DeepPacketDrop drop;
  Bytes bytes;  // the whole vector, zeros included
};

Vector vectorise(const Bytes& frame, std::uint32_t link_type, Masking masking, std::size_t length = 1500) {
  PacketView p;
  p.link_type = link_type;
  p.data = frame;
  p.wire_length = static_cast<std::uint32_t>(frame.size());
  parse_packet(p);
  DeepPacketOptions options;
  options.masking = masking;
  options.length = length;
  Bytes out(length, 0xcc);  // the function writes only its `bytes`; the rest is implied zero
  auto r = deep_packet_vector(p, options, out);
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(r.bytes), out.end(), 0);
  return {r.drop, out};
}

Bytes padded(Bytes b, std::size_t length = 1500) {
  b.resize(length, 0);
  return b;
}

Bytes zeroed(Bytes b, std::initializer_list<std::pair<std::size_t, std::size_t>> ranges) {
  for (auto [from, to] : ranges)
    for (std::size_t i = from; i < to; ++i) b[i] = 0;
  return b;
}

const Bytes payload = {'G', 'E', 'T', ' ', '/', 'x'};

}  // namespace

TEST_CASE("deep_packet: TCP over IPv4 with IP and TCP options, paper and strict", "[deep_packet]") {
  Bytes ip = ipv4(6, tcp_header(0x18, true), payload, true);  // 24-byte IP header, 32-byte TCP header
  Bytes frame = ethernet(ip, 0x0800, false, 6);               // with a 6-byte Ethernet trailer
  auto paper = vectorise(frame, linktype::ethernet, Masking::paper);
  REQUIRE(paper.drop == DeepPacketDrop::kept);
  CHECK(paper.bytes == padded(zeroed(ip, {{12, 20}})));
  auto strict = vectorise(frame, linktype::ethernet, Masking::strict);
  // IP ID 4-5, TTL 8, checksum 10-11, addresses 12-19; TCP at 24: ports 24-27, seq/ack 28-35,
  // window and checksum 38-41, options 44-55. Flags, urgent pointer and payload stay.
  CHECK(strict.bytes ==
        padded(zeroed(ip, {{4, 6}, {8, 9}, {10, 12}, {12, 20}, {24, 28}, {28, 36}, {38, 42}, {44, 56}})));
  CHECK(strict.bytes[37] == 0x18);
  CHECK(strict.bytes[42] == 0x00);
  CHECK(strict.bytes[43] == 0x07);
  CHECK(strict.bytes[56] == 'G');
}

TEST_CASE("deep_packet: UDP over IPv4 gets 12 zero bytes after its header", "[deep_packet]") {
  Bytes ip = ipv4(17, udp_header(40000, 443, payload.size()), payload);
  Bytes expected(ip.begin(), ip.begin() + 28);
  expected.insert(expected.end(), 12, 0);
  expected.insert(expected.end(), payload.begin(), payload.end());
  auto paper = vectorise(ethernet(ip, 0x0800), linktype::ethernet, Masking::paper);
  REQUIRE(paper.drop == DeepPacketDrop::kept);
  CHECK(paper.bytes == padded(zeroed(expected, {{12, 20}})));
  auto strict = vectorise(ethernet(ip, 0x0800), linktype::ethernet, Masking::strict);
  CHECK(strict.bytes == padded(zeroed(expected, {{4, 6}, {8, 9}, {10, 12}, {12, 20}, {20, 24}, {26, 28}})));
  CHECK(strict.bytes[24] == 0);  // UDP length stays
  CHECK(strict.bytes[25] == 14);
}

TEST_CASE("deep_packet: TCP and UDP over IPv6 behind an extension header", "[deep_packet]") {
  Bytes tcp_ip = ipv6(6, tcp_header(0x18, false), payload);
  auto paper = vectorise(ethernet(tcp_ip, 0x86dd), linktype::ethernet, Masking::paper);
  REQUIRE(paper.drop == DeepPacketDrop::kept);
  CHECK(paper.bytes == padded(zeroed(tcp_ip, {{8, 40}})));
  auto strict = vectorise(ethernet(tcp_ip, 0x86dd), linktype::ethernet, Masking::strict);
  // Flow label (low nibble of byte 1, bytes 2-3), hop limit 7, addresses 8-39; TCP at 48.
  Bytes expected = zeroed(tcp_ip, {{2, 4}, {7, 8}, {8, 40}, {48, 52}, {52, 60}, {62, 66}});
  expected[1] = 0xb0;
  CHECK(strict.bytes == padded(expected));

  Bytes udp_ip = ipv6(17, udp_header(5004, 5005, payload.size()), payload);
  Bytes expected_udp(udp_ip.begin(), udp_ip.begin() + 56);  // padding after the real UDP header, at 48 + 8
  expected_udp.insert(expected_udp.end(), 12, 0);
  expected_udp.insert(expected_udp.end(), payload.begin(), payload.end());
  auto udp = vectorise(ethernet(udp_ip, 0x86dd), linktype::ethernet, Masking::paper);
  REQUIRE(udp.drop == DeepPacketDrop::kept);
  CHECK(udp.bytes == padded(zeroed(expected_udp, {{8, 40}})));
  auto udp_strict = vectorise(ethernet(udp_ip, 0x86dd), linktype::ethernet, Masking::strict);
  Bytes expected_strict = zeroed(expected_udp, {{2, 4}, {7, 8}, {8, 40}, {48, 52}, {54, 56}});
  expected_strict[1] = 0xb0;
  CHECK(udp_strict.bytes == padded(expected_strict));
}

TEST_CASE("deep_packet: the link layer goes whatever it is (VLAN Ethernet, Linux SLL, raw IP)", "[deep_packet]") {
  Bytes ip = ipv4(6, tcp_header(0x18, false), payload);
  const Bytes expected = padded(zeroed(ip, {{12, 20}}));
  CHECK(vectorise(ethernet(ip, 0x0800, true), linktype::ethernet, Masking::paper).bytes == expected);
  CHECK(vectorise(linux_sll(ip), linktype::linux_sll, Masking::paper).bytes == expected);
  CHECK(vectorise(ip, linktype::raw, Masking::paper).bytes == expected);
}

TEST_CASE("deep_packet: TCP control segments without payload and DNS are dropped", "[deep_packet]") {
  for (std::uint8_t flags : {0x02, 0x12, 0x10, 0x11}) {  // SYN, SYN-ACK, ACK, FIN-ACK
    INFO("flags " << int(flags));
    CHECK(
        vectorise(ethernet(ipv4(6, tcp_header(flags, true), {}), 0x0800, false, 6), linktype::ethernet, Masking::paper)
            .drop == DeepPacketDrop::empty_tcp);
  }
  // A RST has none of SYN, ACK, FIN: kept, as the paper's rule reads.
  CHECK(vectorise(ethernet(ipv4(6, tcp_header(0x04, false), {}), 0x0800), linktype::ethernet, Masking::paper).drop ==
        DeepPacketDrop::kept);
  const Bytes query = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w', 'w', 0, 0, 1, 0, 1};
  CHECK(vectorise(ethernet(ipv4(17, udp_header(40000, 53, query.size()), query), 0x0800), linktype::ethernet,
                  Masking::paper)
            .drop == DeepPacketDrop::dns);
  CHECK(vectorise(ethernet(ipv4(17, udp_header(5353, 5353, query.size()), query), 0x0800), linktype::ethernet,
                  Masking::strict)
            .drop == DeepPacketDrop::dns);
  CHECK(vectorise(ethernet(ipv4(6, tcp_header(0x18, false), query), 0x0800), linktype::ethernet, Masking::paper).drop ==
        DeepPacketDrop::kept);  // port 443, not DNS
  Bytes arp = {0, 1, 8, 0, 6, 4, 0, 1};
  CHECK(vectorise(ethernet(arp, 0x0806), linktype::ethernet, Masking::paper).drop == DeepPacketDrop::not_ip);
}

TEST_CASE("deep_packet: vectors are cut to their length, and the plugin hands over only the bytes it has",
          "[deep_packet]") {
  Bytes ip = ipv4(6, tcp_header(0x18, true), Bytes(200, 0x61));
  auto cut = vectorise(ethernet(ip, 0x0800), linktype::ethernet, Masking::paper, 64);
  CHECK(cut.bytes == zeroed(Bytes(ip.begin(), ip.begin() + 64), {{12, 20}}));

  auto plugin = test_support::make_plugin<FeatureExtractor>(PluginKind::features, "deep_packet", {{"length", 100}});
  auto spec = plugin->spec();
  CHECK(spec.shape == std::vector<std::int64_t>{100});
  CHECK(spec.variable_length);
  struct Collect : SampleSink {
    std::vector<Bytes> samples;
    std::vector<std::uint64_t> flows;
    void add(std::span<const std::uint8_t> s, std::uint64_t flow) override {
      samples.emplace_back(s.begin(), s.end());
      flows.push_back(flow);
    }
  } sink;
  Bytes small = ipv4(17, udp_header(1000, 2000, 4), {1, 2, 3, 4});  // 32 bytes, 44 as a vector
  Bytes frame = ethernet(small, 0x0800);
  PacketView p;
  p.data = frame;
  parse_packet(p);
  plugin->process(p, PacketFlow{42, true}, sink);
  Bytes big = ethernet(ip, 0x0800);
  p.data = big;
  parse_packet(p);
  plugin->process(p, PacketFlow{43, false}, sink);
  REQUIRE(sink.samples.size() == 2);
  CHECK(sink.samples[0].size() == 44);
  CHECK(sink.samples[1].size() == 100);
  CHECK(sink.flows == std::vector<std::uint64_t>{42, 43});
}
