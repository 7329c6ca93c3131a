// libFuzzer target for parse_packet: the first input byte picks a link type, the rest is the
// captured frame. Every offset the parser reports must stay inside the frame. flow_start's server
// name parser (TLS SNI, HTTP Host) reads the parsed payload and the frame itself as a payload.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "server_name.hpp"
#include "trafficid/packet.hpp"

namespace {
constexpr std::uint32_t link_types[] = {
    trafficid::linktype::ethernet, trafficid::linktype::raw,       trafficid::linktype::null_bsd,
    trafficid::linktype::loop,     trafficid::linktype::linux_sll, trafficid::linktype::linux_sll2,
    trafficid::linktype::ppp,      trafficid::linktype::ppp_hdlc,  trafficid::linktype::c_hdlc,
    trafficid::linktype::ipv4,     trafficid::linktype::ipv6,      trafficid::linktype::raw_dlt};

void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // A copy of exactly the frame's length, so ASan catches any read past its end.
  std::vector<std::uint8_t> frame(data + 1, data + size);
  trafficid::PacketView p;
  p.link_type = link_types[data[0] % (sizeof link_types / sizeof link_types[0])];
  p.data = frame;
  bool has_ip = trafficid::parse_packet(p);
  const auto n = static_cast<std::int64_t>(frame.size());
  check(has_ip == p.has_ip());
  check(p.l3_offset < 0 || p.l3_offset <= n);
  check(p.l4_offset < 0 || (p.l4_offset >= p.l3_offset && p.l4_offset <= n));
  check(p.payload_offset < 0 || (p.payload_offset >= p.l4_offset && p.payload_offset <= n));
  auto payload = p.payload();
  volatile std::uint32_t sum = 0;
  for (auto b : payload) sum = sum + b;
  check(payload.empty() ||
        (payload.data() >= frame.data() && payload.data() + payload.size() <= frame.data() + frame.size()));
  for (auto bytes : {std::span<const std::uint8_t>(frame), payload}) {
    const auto name = trafficid::flow_start_features::server_name(bytes);
    check(name.size() <= 253 && name.find_first_of(" /:\r\n") == std::string::npos);
    for (auto bucket : trafficid::flow_start_features::name_buckets(name, 64)) check(bucket < 64);
  }
  return 0;
}
