// parse_packet on hand-built packets of every supported link type, with the awkward cases:
// VLAN and QinQ tags, IPv4 options and fragments, IPv6 extension headers, truncation.
#include <arpa/inet.h>

#include <array>
#include <vector>

#include "test_support.hpp"
#include "trafficid/packet.hpp"

using namespace trafficid;
using Bytes = std::vector<std::uint8_t>;

namespace {

Bytes ipv4_tcp(std::uint16_t fragment = 0x4000, bool options = false, std::size_t payload = 5) {
  Bytes ip = {0x45,
              0,
              0,
              0,
              0x12,
              0x34,
              static_cast<std::uint8_t>(fragment >> 8),
              static_cast<std::uint8_t>(fragment),
              64,
              6,
              0,
              0,
              10,
              0,
              0,
              1,
              192,
              168,
              1,
              2};
  if (options) {
    ip[0] = 0x46;
    ip.insert(ip.end(), {1, 1, 1, 0});  // NOP NOP NOP EOL
  }
  Bytes tcp = {0x04, 0xd2, 0x01, 0xbb, 0, 0, 0, 1,  0, 0, 0, 0, 0x80, 0x18, 0xff, 0xff,
               0,    0,    0,    0,    1, 1, 8, 10, 0, 0, 0, 1, 0,    0,    0,    2};  // 32-byte header with timestamps
  ip.insert(ip.end(), tcp.begin(), tcp.end());
  for (std::size_t i = 0; i < payload; ++i) ip.push_back(static_cast<std::uint8_t>('a' + i));
  ip[2] = static_cast<std::uint8_t>(ip.size() >> 8);
  ip[3] = static_cast<std::uint8_t>(ip.size());
  return ip;
}

Bytes ipv6_udp_with_extensions() {
  Bytes ip = {0x60, 0, 0, 0, 0, 0, 0 /*next: hop-by-hop*/, 64};
  for (int i = 0; i < 16; ++i) ip.push_back(i == 0 ? 0x20 : i == 1 ? 0x01 : static_cast<std::uint8_t>(i));
  for (int i = 0; i < 16; ++i) ip.push_back(i == 0 ? 0xfe : i == 1 ? 0x80 : static_cast<std::uint8_t>(0x10 + i));
  // hop-by-hop (8 bytes) -> destination options (16 bytes) -> UDP
  ip.insert(ip.end(), {60, 0, 1, 4, 0, 0, 0, 0});
  ip.insert(ip.end(), {17, 1, 1, 4, 0, 0, 0, 0, 1, 6, 0, 0, 0, 0, 0, 0});
  ip.insert(ip.end(), {0x00, 0x35, 0xc0, 0x01, 0, 12, 0, 0, 'd', 'n', 's', '!'});
  std::size_t payload_length = ip.size() - 40;
  ip[4] = static_cast<std::uint8_t>(payload_length >> 8);
  ip[5] = static_cast<std::uint8_t>(payload_length);
  return ip;
}

Bytes with_prefix(Bytes prefix, const Bytes& l3) {
  prefix.insert(prefix.end(), l3.begin(), l3.end());
  return prefix;
}

const Bytes ethernet_ipv4 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00};

PacketView parsed(const Bytes& bytes, std::uint32_t link_type) {
  PacketView p;
  p.link_type = link_type;
  p.data = bytes;
  parse_packet(p);
  return p;
}

void check_ipv4_tcp(const PacketView& p, std::int32_t l3) {
  REQUIRE(p.has_ip());
  CHECK(p.l3_offset == l3);
  CHECK(p.ip_version == 4);
  CHECK(p.l4_protocol == ipproto::tcp);
  CHECK(p.l4_offset == l3 + 20);
  CHECK(p.payload_offset == l3 + 52);
  CHECK(p.tuple.src_port == 1234);
  CHECK(p.tuple.dst_port == 443);
  CHECK(to_string(p.tuple.src) == "10.0.0.1");
  CHECK(to_string(p.tuple.dst) == "192.168.1.2");
  CHECK(p.tcp_flags == 0x18);
  CHECK((p.flags & packet_flag::tcp_options));
  auto payload = p.payload();
  CHECK(std::string(payload.begin(), payload.end()) == "abcde");
}

}  // namespace

TEST_CASE("Ethernet, VLAN and QinQ", "[parser]") {
  check_ipv4_tcp(parsed(with_prefix(ethernet_ipv4, ipv4_tcp()), linktype::ethernet), 14);

  Bytes vlan = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00};
  auto p = parsed(with_prefix(vlan, ipv4_tcp()), linktype::ethernet);
  check_ipv4_tcp(p, 18);
  CHECK(p.vlan_count == 1);

  Bytes qinq = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00};
  p = parsed(with_prefix(qinq, ipv4_tcp()), linktype::ethernet);
  check_ipv4_tcp(p, 22);
  CHECK(p.vlan_count == 2);
  CHECK((p.flags & packet_flag::vlan));

  // Ethernet padding after a short IP packet is not payload.
  auto padded = with_prefix(ethernet_ipv4, ipv4_tcp(0x4000, false, 0));
  padded.insert(padded.end(), 6, 0);
  CHECK(parsed(padded, linktype::ethernet).payload().empty());
}

TEST_CASE("the other link types", "[parser]") {
  const auto ip = ipv4_tcp();
  check_ipv4_tcp(parsed(ip, linktype::raw), 0);
  check_ipv4_tcp(parsed(ip, linktype::raw_dlt), 0);
  check_ipv4_tcp(parsed(ip, linktype::ipv4), 0);
  check_ipv4_tcp(parsed(with_prefix({2, 0, 0, 0}, ip), linktype::null_bsd), 4);  // little-endian AF_INET
  check_ipv4_tcp(parsed(with_prefix({0, 0, 0, 2}, ip), linktype::null_bsd), 4);  // written big-endian
  check_ipv4_tcp(parsed(with_prefix({0, 0, 0, 2}, ip), linktype::loop), 4);
  check_ipv4_tcp(parsed(with_prefix({0, 0, 3, 4, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00}, ip), linktype::linux_sll),
                 16);
  Bytes sll2 = {0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0};
  check_ipv4_tcp(parsed(with_prefix(sll2, ip), linktype::linux_sll2), 20);
  check_ipv4_tcp(parsed(with_prefix({0xff, 0x03, 0x00, 0x21}, ip), linktype::ppp), 4);
  check_ipv4_tcp(parsed(with_prefix({0x00, 0x21}, ip), linktype::ppp), 2);
  check_ipv4_tcp(parsed(with_prefix({0x0f, 0x00, 0x08, 0x00}, ip), linktype::c_hdlc), 4);
  check_ipv4_tcp(parsed(with_prefix({0x8f, 0x00, 0x08, 0x00}, ip), linktype::ppp), 4);  // Cisco HDLC stored as PPP
  // MPLS under Cisco HDLC (nDPI's BGP_redist.pcap) and under Linux cooked capture: two labels, the
  // second the bottom of the stack.
  const Bytes labels = {0x00, 0x01, 0x20, 0x40, 0x00, 0x01, 0x2d, 0xfe};
  check_ipv4_tcp(parsed(with_prefix(with_prefix({0x0f, 0x00, 0x88, 0x47}, labels), ip), linktype::c_hdlc), 12);
  check_ipv4_tcp(parsed(with_prefix(with_prefix({0, 0, 3, 4, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x88, 0x47}, labels), ip),
                        linktype::linux_sll),
                 24);
  // PPPoE session inside Ethernet.
  Bytes pppoe = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x88, 0x64, 0x11, 0, 0, 1, 0, 0, 0x00, 0x21};
  check_ipv4_tcp(parsed(with_prefix(pppoe, ip), linktype::ethernet), 22);
  // An unsupported link type yields no IP layer.
  CHECK_FALSE(parsed(ip, 147).has_ip());
}

TEST_CASE("IPv4 options and fragments", "[parser]") {
  auto p = parsed(ipv4_tcp(0x4000, true), linktype::raw);
  CHECK((p.flags & packet_flag::ipv4_options));
  CHECK(p.l4_offset == 24);
  CHECK(p.tuple.dst_port == 443);

  p = parsed(ipv4_tcp(0x2000), linktype::raw);  // first fragment: MF set, offset 0
  CHECK((p.flags & packet_flag::fragment));
  CHECK_FALSE((p.flags & packet_flag::non_first_fragment));
  CHECK(p.tuple.dst_port == 443);

  p = parsed(ipv4_tcp(0x00b9), linktype::raw);  // a later fragment: no TCP header inside
  CHECK((p.flags & packet_flag::non_first_fragment));
  CHECK(p.l4_protocol == ipproto::tcp);
  CHECK_FALSE(p.has_l4());
  CHECK(p.tuple.dst_port == 0);
}

TEST_CASE("IPv6 with extension headers", "[parser]") {
  auto bytes = ipv6_udp_with_extensions();
  Bytes eth6 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x86, 0xdd};
  auto p = parsed(with_prefix(eth6, bytes), linktype::ethernet);
  REQUIRE(p.has_ip());
  CHECK(p.ip_version == 6);
  CHECK((p.flags & packet_flag::ipv6_extensions));
  CHECK(p.l4_protocol == ipproto::udp);
  CHECK(p.l4_offset == 14 + 40 + 8 + 16);
  CHECK(p.tuple.src_port == 53);
  CHECK(p.tuple.dst_port == 0xc001);
  CHECK(to_string(p.tuple.src) == "2001:203:405:607:809:a0b:c0d:e0f");
  auto payload = p.payload();
  CHECK(std::string(payload.begin(), payload.end()) == "dns!");
  // The same packet on a raw-IPv6 link type.
  CHECK(parsed(bytes, linktype::ipv6).l4_offset == 64);
}

TEST_CASE("truncated and malformed packets never read past the capture", "[parser]") {
  auto full = with_prefix(ethernet_ipv4, ipv4_tcp());
  for (std::size_t cut = 0; cut < full.size(); ++cut) {
    Bytes part(full.begin(), full.begin() + static_cast<long>(cut));
    auto p = parsed(part, linktype::ethernet);
    if (cut < 34) {
      CHECK_FALSE(p.has_l4());
    } else if (cut < 66) {
      CHECK((p.flags & packet_flag::truncated));
      CHECK(p.payload().empty());
    }
    if (p.payload_offset >= 0) CHECK(static_cast<std::size_t>(p.payload_offset) <= part.size());
  }
  auto bad = ipv4_tcp();
  bad[0] = 0x43;  // header length 12 bytes: impossible
  auto p = parsed(bad, linktype::raw);
  CHECK_FALSE(p.has_ip());
  CHECK((p.flags & packet_flag::malformed));
}

TEST_CASE("flow keys are direction-free", "[parser]") {
  auto a = parsed(ipv4_tcp(), linktype::raw).tuple;
  FiveTuple b = a;
  std::swap(b.src, b.dst);
  std::swap(b.src_port, b.dst_port);
  CHECK(canonical(a) == canonical(b));
  CHECK(symmetric_hash(a) == symmetric_hash(b));
  FiveTuple c = a;
  c.src_port = 1235;
  CHECK(symmetric_hash(a) != symmetric_hash(c));
}

TEST_CASE("flow hashes keep their values", "[parser]") {
  // Workers are chosen and flows counted by these values: a faster hash must give the same ones.
  FiveTuple v4;
  v4.src = {{192, 168, 1, 20}, 4};
  v4.dst = {{10, 0, 100, 9}, 4};
  v4.src_port = 51234;
  v4.dst_port = 443;
  v4.protocol = ipproto::tcp;
  CHECK(symmetric_hash(v4) == 0x8af08d333717fb35ull);
  FiveTuple v6;
  v6.src.version = v6.dst.version = 6;
  for (std::uint8_t i = 0; i < 16; ++i) {
    v6.src.bytes[i] = static_cast<std::uint8_t>(i * 17);
    v6.dst.bytes[i] = static_cast<std::uint8_t>(255 - i * 3);
  }
  v6.src_port = 5353;
  v6.dst_port = 53;
  v6.protocol = ipproto::udp;
  CHECK(symmetric_hash(v6) == 0x985888f9384910c4ull);
}

TEST_CASE("addresses are written as inet_ntop writes them", "[parser]") {
  for (std::array<std::uint8_t, 4> bytes : {std::array<std::uint8_t, 4>{0, 0, 0, 0},
                                            {255, 255, 255, 255},
                                            {10, 0, 100, 9},
                                            {192, 168, 1, 20},
                                            {1, 99, 100, 109}}) {
    IpAddress a;
    a.version = 4;
    std::copy(bytes.begin(), bytes.end(), a.bytes.begin());
    char expected[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, bytes.data(), expected, sizeof expected);
    CHECK(to_string(a) == expected);
  }
  IpAddress none;
  CHECK(to_string(none) == "-");
}
