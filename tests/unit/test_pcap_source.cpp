// The pcap capture source on real captures: packet counts equal capinfos' for every file of the
// shared data, damage keeps the packets before it, pcapng with mixed link types is read whole.
#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <sys/wait.h>

#include "pipeline/capture_stage.hpp"
#include "runtime/host_log.hpp"
#include "runtime/plugin_registry.hpp"
#include "store/hashing.hpp"
#include "config/schema_check.hpp"
#include "test_support.hpp"
#include "trafficid/pcap_writer.hpp"

using namespace trafficid;
using namespace trafficid::host;
namespace fs = std::filesystem;

namespace {

const PluginRegistry& registry() { return test_support::built_plugins(); }

struct ReadResult {
  CaptureSummary summary;
  std::vector<PacketView> packets;  // parsed fields only; data is copied into `bytes`
  std::vector<std::vector<std::uint8_t>> bytes;
};

ReadResult read_capture(const std::vector<fs::path>& paths, bool keep_packets = false) {
  Json list = Json::array();
  for (const auto& p : paths) list.push_back(p.string());
  auto source = test_support::make_plugin<CaptureSource>(PluginKind::capture, "pcap", {{"paths", list}});
  const auto* plugin = registry().find(PluginKind::capture, "pcap");
  HostLog log(LogLevel::error);
  ReadResult result;
  if (keep_packets) {
    PacketView p;
    while (source->next(p)) {
      result.bytes.emplace_back(p.data.begin(), p.data.end());
      result.packets.push_back(p);
    }
    result.summary.files = source->files();
    return result;
  }
  FlowCounter flows;
  read_source(PluginHandle<CaptureSource>(source, *plugin), log, 0, result.summary, flows);
  return result;
}

struct Capinfos {
  std::uint64_t packets = 0;
  bool clean = false;  // exit status 0
};

Capinfos capinfos(const fs::path& file) {
  std::string command = "capinfos -T -r -c -M '" + file.string() + "' 2>/dev/null";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe);
  std::string out;
  std::array<char, 4096> buffer{};
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) out.append(buffer.data(), n);
  int status = ::pclose(pipe);
  Capinfos c;
  c.clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  auto tab = out.rfind('\t');
  if (tab != std::string::npos) c.packets = std::stoull(out.substr(tab + 1));
  return c;
}

bool capinfos_installed() { return std::system("capinfos -h > /dev/null 2>&1") == 0; }

}  // namespace

TEST_CASE("packet counts equal capinfos for every capture of the shared data", "[pcap][data]") {
  auto data = test_support::data_dir_or_empty();
  if (data.empty()) return;
  REQUIRE(capinfos_installed());  // Debian package tshark (wireshark-common)
  std::vector<fs::path> files;
  for (const auto* folder : {"captures", "ndpi-4.2-tests/pcap"})
    for (const auto& e : fs::recursive_directory_iterator(data / folder)) {
      auto ext = e.path().extension();
      if (e.is_regular_file() && (ext == ".pcap" || ext == ".pcapng" || ext == ".cap")) files.push_back(e.path());
    }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 290);
  std::size_t compared = 0, damaged = 0, hashed = 0;
  std::map<std::uint32_t, std::size_t> link_types;
  for (const auto& file : files) {
    INFO(file);
    auto expected = capinfos(file);
    auto result = read_capture({file});
    REQUIRE(result.summary.files.size() == 1);
    const auto& info = result.summary.files[0];
    for (auto t : info.link_types) ++link_types[t];
    CHECK(info.packets == expected.packets);
    // A file read whole through libpcap carries the content hash the host would compute; any other
    // carries none (the host then hashes the file itself).
    if (!info.content_hash.empty()) {
      CHECK(info.content_hash == content_hash_file(file));
      ++hashed;
    }
    if (!info.hashing || !info.warning.empty()) CHECK(info.content_hash.empty());
    if (expected.clean) {
      CHECK(info.warning.empty());
      ++compared;
    } else {
      // capinfos stopped at damage: we keep the same packets and say where it is.
      CHECK_THAT(info.warning, Catch::Contains("damaged at byte"));
      CHECK(info.damaged_at > 0);
      ++damaged;
    }
  }
  CHECK(compared + damaged == files.size());
  CHECK(damaged >= 1);
  CHECK(hashed >= compared * 9 / 10);  // pcapng files whose interfaces libpcap refuses are read otherwise
  // Every link type of the data set was met and parsed.
  for (std::uint32_t t : {linktype::ethernet, linktype::raw, linktype::null_bsd, linktype::linux_sll, linktype::ppp,
                          linktype::c_hdlc, linktype::ipv4})
    CHECK(link_types[t] > 0);
}

TEST_CASE("a damaged capture keeps its packets before the damage and warns with the offset", "[pcap][data]") {
  auto data = test_support::data_dir_or_empty();
  if (data.empty()) return;
  auto result = read_capture({data / "ndpi-4.2-tests/pcap/fuzz-2021-10-13.pcap"});
  const auto& info = result.summary.files.at(0);
  CHECK(info.packets == 1);
  CHECK(info.damaged_at == 24 + 16 + 197);
  CHECK_THAT(info.warning, Catch::Contains("damaged at byte 237 after 1 good packets"));
}

TEST_CASE("a capture cut in the middle of a packet keeps every whole packet and the next file goes on",
          "[pcap][data]") {
  auto data = test_support::data_dir_or_empty();
  if (data.empty()) return;
  for (const char* name : {"captures/SSH/ssh__ssh.pcap", "captures/BitTorrent/big_endian_issue.pcapng"}) {
    INFO(name);
    fs::path original = data / name;
    REQUIRE(fs::exists(original));
    auto whole = read_capture({original}, true);
    auto dir = test_support::temp_dir("truncated");
    fs::path cut = dir / ("a_cut" + original.extension().string());
    auto size = fs::file_size(original);
    {
      std::ifstream in(original, std::ios::binary);
      std::vector<char> bytes(size * 2 / 3);
      in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    fs::copy_file(original, dir / ("b_whole" + original.extension().string()));
    auto partial = read_capture({dir}, true);
    REQUIRE(partial.summary.files.size() == 2);
    const auto& damaged = partial.summary.files[0];
    CHECK(damaged.packets > 0);
    CHECK(damaged.packets < whole.packets.size());
    CHECK(damaged.damaged_at > 0);
    CHECK(damaged.damaged_at <= static_cast<std::int64_t>(size * 2 / 3));
    CHECK_THAT(damaged.warning, Catch::Contains("the packets before it were kept"));
    // Those packets are exactly the original's first ones, and the whole file after it is read whole.
    for (std::size_t i = 0; i < damaged.packets; ++i) {
      CHECK(partial.bytes[i] == whole.bytes[i]);
      CHECK(partial.packets[i].timestamp_ns == whole.packets[i].timestamp_ns);
    }
    CHECK(partial.summary.files[1].packets == whole.packets.size());
    CHECK(partial.summary.files[1].warning.empty());
    fs::remove_all(dir);
  }
}

namespace {
void put32(std::string& s, std::uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void put16(std::string& s, std::uint16_t v) { s.append(reinterpret_cast<const char*>(&v), 2); }

std::string pcapng_block(std::uint32_t type, const std::string& body) {
  std::string padded = body;
  while (padded.size() % 4) padded.push_back('\0');
  std::string b;
  put32(b, type);
  put32(b, static_cast<std::uint32_t>(12 + padded.size()));
  b += padded;
  put32(b, static_cast<std::uint32_t>(12 + padded.size()));
  return b;
}

std::string interface_block(std::uint16_t link_type, std::uint32_t snaplen, std::uint8_t tsresol) {
  std::string body;
  put16(body, link_type);
  put16(body, 0);
  put32(body, snaplen);
  put16(body, 9);  // if_tsresol
  put16(body, 1);
  body.push_back(static_cast<char>(tsresol));
  body.append(3, '\0');
  put16(body, 0);  // opt_endofopt
  put16(body, 0);
  return pcapng_block(1, body);
}

std::string packet_block(std::uint32_t interface, std::uint64_t ticks, const std::vector<std::uint8_t>& data) {
  std::string body;
  put32(body, interface);
  put32(body, static_cast<std::uint32_t>(ticks >> 32));
  put32(body, static_cast<std::uint32_t>(ticks));
  put32(body, static_cast<std::uint32_t>(data.size()));
  put32(body, static_cast<std::uint32_t>(data.size()));
  body.append(data.begin(), data.end());
  return pcapng_block(6, body);
}
}  // namespace

TEST_CASE("a pcapng whose interfaces differ in link type and snapshot length is read whole", "[pcap]") {
  // Interface 0: Ethernet, microseconds; interface 1: raw IP, nanoseconds, another snaplen.
  std::vector<std::uint8_t> ip = {0x45, 0, 0,  28, 0, 1, 0x40, 0,    64,   17,   0, 0, 10, 0,
                                  0,    1, 10, 0,  0, 2, 0x30, 0x39, 0x00, 0x35, 0, 8, 0,  0};
  std::vector<std::uint8_t> eth = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00};
  eth.insert(eth.end(), ip.begin(), ip.end());
  std::string file;
  std::string shb;
  put32(shb, 0x1a2b3c4d);
  put16(shb, 1);
  put16(shb, 0);
  put32(shb, 0xffffffff);
  put32(shb, 0xffffffff);
  file += pcapng_block(0x0a0d0d0a, shb);
  file += interface_block(1, 262144, 6);
  file += packet_block(0, 1700000000123456ull, eth);
  file += interface_block(101, 65535, 9);
  file += packet_block(1, 1700000001123456789ull, ip);
  file += packet_block(0, 1700000002000001ull, eth);
  auto dir = test_support::temp_dir("pcapng");
  auto path = dir / "mixed.pcapng";
  std::ofstream(path, std::ios::binary) << file;

  auto result = read_capture({path}, true);
  const auto& info = result.summary.files.at(0);
  CHECK(info.warning.empty());
  REQUIRE(result.packets.size() == 3);
  CHECK(info.link_types == std::vector<std::uint32_t>{linktype::ethernet, linktype::raw});
  CHECK(result.packets[0].timestamp_ns == 1700000000123456000ll);
  CHECK(result.packets[1].timestamp_ns == 1700000001123456789ll);
  CHECK(result.packets[2].timestamp_ns == 1700000002000001000ll);
  CHECK(result.packets[1].link_type == linktype::raw);
  for (const auto& p : result.packets) {
    CHECK(p.tuple.dst_port == 53);
    CHECK(to_string(p.tuple.src) == "10.0.0.1");
  }
  fs::remove_all(dir);
}

TEST_CASE("nanosecond pcap timestamps survive a write and a read", "[pcap]") {
  auto dir = test_support::temp_dir("ns");
  std::vector<std::uint8_t> ip = {0x45, 0, 0,  28, 0, 1, 0x40, 0,    64,   17,   0, 0, 10, 0,
                                  0,    1, 10, 0,  0, 2, 0x30, 0x39, 0x00, 0x35, 0, 8, 0,  0};
  for (bool nano : {true, false}) {
    auto path = dir / (nano ? "ns.pcap" : "us.pcap");
    PcapWriter writer(path, linktype::raw, nano);
    writer.write(1700000000123456789ll, ip);
    writer.write(1700000000999999999ll, ip);
    writer.close();
    auto result = read_capture({path}, true);
    REQUIRE(result.packets.size() == 2);
    CHECK(result.summary.files[0].format == (nano ? "pcap-ns" : "pcap"));
    CHECK(result.packets[0].timestamp_ns == (nano ? 1700000000123456789ll : 1700000000123456000ll));
    CHECK(result.packets[1].timestamp_ns == (nano ? 1700000000999999999ll : 1700000000999999000ll));
    CHECK(result.packets[0].link_type == linktype::raw);
  }
  fs::remove_all(dir);
}

TEST_CASE("a missing path is a clear error naming it", "[pcap]") {
  try {
    read_capture({"/nonexistent/trafficid/captures"});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("/nonexistent/trafficid/captures: no such file or folder"));
    CHECK_THAT(std::string(e.what()), Catch::Contains("capture plugin 'pcap'"));
  }
}
