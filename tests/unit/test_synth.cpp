// The synth source: deterministic for a seed, valid checksums, and real enough that nDPI
// (Debian's ndpiReader 4.2) labels every flow as the application it imitates.
#include <array>
#include <map>
#include <regex>

#include "runtime/host_log.hpp"
#include "runtime/plugin_registry.hpp"
#include "config/schema_check.hpp"
#include "test_support.hpp"
#include "trafficid/capture.hpp"
#include "trafficid/pcap_writer.hpp"

using namespace trafficid;
using namespace trafficid::host;
namespace fs = std::filesystem;

namespace {

struct Capture {
  std::vector<std::int64_t> timestamps;
  std::vector<std::vector<std::uint8_t>> frames;
};

Capture generate(Json overrides) {
  auto source = test_support::make_plugin<CaptureSource>(PluginKind::capture, "synth", overrides);
  Capture c;
  PacketView p;
  while (source->next(p)) {
    c.timestamps.push_back(p.timestamp_ns);
    c.frames.emplace_back(p.data.begin(), p.data.end());
  }
  return c;
}

std::uint16_t ones_complement(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

std::uint32_t add_words(std::uint32_t sum, const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  if (n % 2) sum += static_cast<std::uint32_t>(p[n - 1] << 8);
  return sum;
}

}  // namespace

TEST_CASE("the same seed gives the same capture, another seed another one", "[synth]") {
  auto a = generate({{"seed", 11}, {"flows_per_app", 3}});
  auto b = generate({{"seed", 11}, {"flows_per_app", 3}});
  auto c = generate({{"seed", 12}, {"flows_per_app", 3}});
  CHECK(a.frames.size() > 500);
  CHECK(a.frames == b.frames);
  CHECK(a.timestamps == b.timestamps);
  CHECK(a.frames != c.frames);
  CHECK(std::is_sorted(a.timestamps.begin(), a.timestamps.end()));
}

TEST_CASE("IPv4 header and TCP/UDP checksums are correct on every packet", "[synth]") {
  auto capture = generate({{"flows_per_app", 2}});
  for (const auto& f : capture.frames) {
    PacketView p;
    p.link_type = linktype::ethernet;
    p.data = f;
    REQUIRE(parse_packet(p));
    const std::uint8_t* ip = f.data() + p.l3_offset;
    CHECK(ones_complement(add_words(0, ip, 20)) == 0xffff);
    std::size_t l4_length = p.l3_length - 20;
    std::uint32_t sum = add_words(0, ip + 12, 8) + p.l4_protocol + static_cast<std::uint32_t>(l4_length);
    sum = add_words(sum, f.data() + p.l4_offset, l4_length);
    CHECK(ones_complement(sum) == 0xffff);
    CHECK(p.l3_length + 14 == f.size());
  }
}

TEST_CASE("nDPI labels every synthetic flow as the application it imitates", "[synth][ndpi]") {
  REQUIRE(std::system("command -v ndpiReader > /dev/null") == 0);  // Debian package libndpi-bin
  auto capture = generate({{"seed", 5}, {"flows_per_app", 6}});
  auto dir = test_support::temp_dir("synth-ndpi");
  auto file = dir / "synth.pcap";
  PcapWriter writer(file, linktype::ethernet);
  for (std::size_t i = 0; i < capture.frames.size(); ++i) writer.write(capture.timestamps[i], capture.frames[i]);
  writer.close();

  std::string command = "ndpiReader -q -i '" + file.string() + "' -v 2 2>/dev/null";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe);
  std::map<std::string, int> labels;
  std::array<char, 8192> line{};
  static const std::regex flow_line(R"(^\s+\d+\s+(TCP|UDP)\s.*\[proto: [0-9.]+/([^\]]+)\])");
  while (std::fgets(line.data(), line.size(), pipe)) {
    std::cmatch m;
    if (std::regex_search(line.data(), m, flow_line)) ++labels[m[2].str()];
  }
  ::pclose(pipe);
  fs::remove_all(dir);
  const std::map<std::string, int> expected = {
      {"TLS.YouTube", 6}, {"TLS.NetFlix", 6}, {"TLS.WhatsApp", 6}, {"TLS.Zoom", 6}, {"HTTP.Wikipedia", 6},
      {"DNS", 6},         {"SSH", 6},         {"BitTorrent", 6},   {"STUN", 6},     {"NTP", 6}};
  // DNS flows asking for a domain nDPI knows get a sub-label such as DNS.Google: count by master.
  std::map<std::string, int> merged;
  for (const auto& [label, count] : labels) merged[label.rfind("DNS", 0) == 0 ? "DNS" : label] += count;
  CHECK(merged == expected);
}
