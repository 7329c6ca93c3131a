// flow_start's server names (TLS SNI, HTTP Host) against nDPI's on real captures, and their tokens.
#include <cstring>
#include <fmt/format.h>
#include <map>
#include <set>

#include "server_name.hpp"
#include "test_support.hpp"
#include "trafficid/capture.hpp"
#include "trafficid/features.hpp"
#include "trafficid/labeler.hpp"

using namespace trafficid;
using namespace trafficid::flow_start_features;
namespace fs = std::filesystem;

namespace {

std::span<const std::uint8_t> bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// A flow's key that both directions share: protocol and the two endpoints in order.
std::string flow_key(const FiveTuple& t) {
  auto a = fmt::format("{}:{}", to_string(t.src), t.src_port), b = fmt::format("{}:{}", to_string(t.dst), t.dst_port);
  if (b < a) std::swap(a, b);
  return fmt::format("{} {} {}", t.protocol, a, b);
}

struct Names : FlowSink {
  std::map<std::string, FlowRecord> flows;  // the last flow of each key
  void emit(const FlowRecord& f) override { flows[flow_key(f.tuple)] = f; }
};

struct Agreement {
  std::size_t named = 0, found = 0, wrong = 0;  // flows nDPI names; of them, we find the same; we find another
  std::vector<std::string> misses;
};

// Every TLS or HTTP flow that nDPI gives a host name: does a packet of the flow give the same?
void compare(const fs::path& capture, Agreement& a) {
  auto source = test_support::make_plugin<CaptureSource>(PluginKind::capture, "pcap",
                                                         {{"paths", Json::array({capture.string()})}});
  auto labeler = test_support::make_plugin<Labeler>(PluginKind::labeler, "ndpi");
  Names names;
  std::map<std::string, std::set<std::string>> ours;
  PacketView packet;
  bool started = false;
  while (source->next(packet)) {
    if (!started) labeler->begin_file(source->files().back());
    started = true;
    labeler->process(packet, names);
    if (packet.l4_protocol != ipproto::tcp) continue;
    if (auto name = server_name(packet.payload()); !name.empty()) ours[flow_key(packet.tuple)].insert(name);
  }
  labeler->flush(names);
  for (const auto& [key, flow] : names.flows) {
    const bool tls_or_http = flow.master_protocol == "TLS" || flow.master_protocol == "HTTP" ||
                             flow.label.rfind("TLS", 0) == 0 || flow.label.rfind("HTTP", 0) == 0;
    const std::string theirs = detail::host_name(flow.server_name);
    if (!tls_or_http || theirs.empty() || theirs.find_first_not_of("0123456789.") == std::string::npos) continue;
    ++a.named;
    const auto& found = ours[key];
    if (found.count(theirs)) ++a.found;
    else {
      if (!found.empty()) ++a.wrong;
      a.misses.push_back(fmt::format("{}: {} {}: nDPI {}, ours {}", capture.filename().string(), flow.label, key,
                                     theirs, found.empty() ? "(none)" : *found.begin()));
    }
  }
}

}  // namespace

// A ClientHello cut after its extensions: record and handshake headers, version, random, no
// session id, one cipher suite, one compression method, then an empty extension and server_name.
static std::string client_hello(std::string_view name, std::uint8_t extensions_length) {
  std::string h = std::string("\x16\x03\x01\x00\x40\x01\x00\x00\x3c\x03\x03", 11) + std::string(32, 'r');
  h += std::string("\x00\x00\x02\x13\x01\x01\x00\x00", 8);
  h.push_back(static_cast<char>(extensions_length));
  h += std::string("\x00\x0a\x00\x00", 4);  // supported_groups, empty
  // server_name: type 0, its length, the list's length, one entry of type host_name and the name
  for (std::size_t b : {0ul, 0ul, 0ul, name.size() + 5, 0ul, name.size() + 3, 0ul, 0ul, name.size()})
    h.push_back(static_cast<char>(b));
  return h + std::string(name);
}

TEST_CASE("server names: TLS ClientHello SNI and HTTP Host, and nothing from other payloads", "[flow_start]") {
  const std::string hello = client_hello("Zoom.US", 4 + 4 + 5 + 7);
  CHECK(server_name(bytes(hello)) == "zoom.us");
  for (std::size_t cut = 0; cut < hello.size(); ++cut)  // a name only when the whole name is there
    CHECK(server_name(bytes(hello).first(cut)) == "");
  CHECK(server_name(bytes(client_hello("Zoom.US", 4 + 4 + 5 + 6))) == "");  // the extensions end inside the name
  CHECK(server_name(bytes(client_hello("zoom/us", 20))) == "");             // not a host name
  std::string not_hello = hello;
  not_hello[5] = 0x02;  // a ServerHello
  CHECK(server_name(bytes(not_hello)) == "");
  CHECK(server_name(bytes("GET /x HTTP/1.1\r\nUser-Agent: a\r\nhost:  api.Netflix.com:8080\r\n\r\n")) ==
        "api.netflix.com");
  CHECK(server_name(bytes("GET /x HTTP/1.1\r\nHost: evil.com/../\r\n\r\n")) == "");  // not a host name
  CHECK(server_name(bytes("GET /x HTTP/1.1\r\nHost: cut.exam")) == "");              // the line goes on
  CHECK(server_name(bytes("HTTP/1.1 200 OK\r\nHost: reply.com\r\n\r\n")) == "");     // a reply, not a request
  CHECK(server_name(bytes("SSH-2.0-OpenSSH_9.6\r\n")) == "");
}

TEST_CASE("name tokens: labels split at dots and dashes, numbers left out, the same buckets every time",
          "[flow_start]") {
  const auto a = name_buckets("zoomfr84zc.zoom.us", 128), b = name_buckets("log.zoom.us", 128);
  REQUIRE(a.size() == 3);
  REQUIRE(b.size() == 3);
  CHECK(a[1] == b[1]);  // "zoom"
  CHECK(a[2] == b[2]);  // "us"
  CHECK(a[0] != a[1]);
  CHECK(name_buckets("mmg-fna.whatsapp.net", 128).size() == 4);
  CHECK(name_buckets("23.246.11.145", 128).empty());
  CHECK(name_buckets("335.0.7.7.3.rst6.r.skype.net", 128).size() == 4);
  CHECK(name_buckets("zoom.us", 0).empty());
  // FNV-1a of "zoom" is 3750945330: the buckets are part of a trained model's input, fixed for good.
  CHECK(name_buckets("zoom", 128) == std::vector<std::size_t>{3750945330u % 128});
}

TEST_CASE("server names agree with nDPI's on the TLS and HTTP flows of real captures", "[flow_start][data]") {
  const auto data = test_support::data_dir_or_empty();
  if (data.empty()) return;
  Agreement a;
  for (const char* folder : {"captures/Zoom", "captures/Skype_Teams", "captures/Netflix", "captures/Tor",
                             "captures/WhatsApp", "captures/Viber", "captures/QUIC"})
    for (const auto& entry : fs::directory_iterator(data / folder)) compare(entry.path(), a);
  for (const char* file : {"zoom.pcap", "teams.pcap", "tls_esni_sni_both.pcap", "http_ipv6.pcap", "aimini-http.pcap"})
    compare(data / "ndpi-4.2-tests/pcap" / file, a);
  for (const auto& m : a.misses) UNSCOPED_INFO(m);
  INFO(fmt::format("{} flows named by nDPI, {} found alike, {} found otherwise", a.named, a.found, a.wrong));
  CHECK(a.named > 100);
  CHECK(a.wrong == 0);
  CHECK(a.found == a.named);
}

TEST_CASE("flow_start with names: the tokens of the client's server name, in the row of the packet that gave it",
          "[flow_start][data]") {
  const auto data = test_support::data_dir_or_empty();
  if (data.empty()) return;
  constexpr std::size_t header = 15, names = 64, bytes_per_row = 16, rows = 4;
  auto extractor = test_support::make_plugin<FeatureExtractor>(
      PluginKind::features, "flow_start", {{"names", names}, {"packets", rows}, {"payload_bytes", bytes_per_row}});
  const auto spec = extractor->spec();
  REQUIRE(spec.shape == std::vector<std::int64_t>{rows, header + names + bytes_per_row});
  CHECK(spec.column_names[header - 1] == "client_port");
  CHECK(spec.column_names[header] == "name_0");
  CHECK(spec.column_names[header + names - 1] == "name_63");
  CHECK(spec.column_names[header + names] == "byte_0");

  struct Flow {
    std::uint64_t id = 0;
    FiveTuple client;  // the first packet's sender as src
    std::size_t rows = 0;
    bool named = false;
    std::vector<std::set<std::size_t>> expected;  // per row, the name buckets it must hold
  };
  struct Samples : SampleSink {
    std::map<std::uint64_t, std::vector<float>> by_flow;
    void add(std::span<const std::uint8_t> s, std::uint64_t flow) override {
      auto& v = by_flow[flow];
      v.resize(s.size() / sizeof(float));
      std::memcpy(v.data(), s.data(), s.size());
    }
  } samples;
  std::map<std::string, Flow> flows;
  auto source = test_support::make_plugin<CaptureSource>(
      PluginKind::capture, "pcap",
      {{"paths", Json::array({(data / "ndpi-4.2-tests/pcap/zoom.pcap").string(),
                              (data / "ndpi-4.2-tests/pcap/teams.pcap").string()})}});
  PacketView packet;
  while (source->next(packet)) {
    if (packet.l4_protocol != ipproto::tcp && packet.l4_protocol != ipproto::udp) continue;
    auto [it, fresh] = flows.try_emplace(flow_key(packet.tuple));
    Flow& f = it->second;
    if (fresh) f = {flows.size(), packet.tuple, 0, false, {}};
    const bool from_client = packet.tuple == f.client;
    const auto payload = packet.payload();
    if (!payload.empty() && f.rows < rows) {  // a row of the first sample
      std::set<std::size_t> buckets;
      if (from_client && !f.named) {
        const auto name = server_name(payload);
        for (auto b : name_buckets(name, names)) buckets.insert(b);
        f.named = !name.empty();
      }
      f.expected.push_back(buckets);
      ++f.rows;
    }
    extractor->process(packet, PacketFlow{f.id, from_client}, samples);
  }
  for (const auto& [key, f] : flows) {
    FlowRecord record;
    record.flow_id = f.id;
    extractor->end_flow(record, samples);
  }
  std::size_t named_flows = 0;
  for (const auto& [key, f] : flows) {
    if (f.rows == 0) continue;
    REQUIRE(samples.by_flow.count(f.id));
    const auto& x = samples.by_flow.at(f.id);
    for (std::size_t r = 0; r < rows; ++r) {
      std::set<std::size_t> got;
      for (std::size_t b = 0; b < names; ++b)
        if (x[r * spec.shape[1] + header + b] != 0.0f) got.insert(b);
      INFO(key << " row " << r);
      CHECK(got == (r < f.expected.size() ? f.expected[r] : std::set<std::size_t>{}));
    }
    named_flows += f.named;
  }
  CHECK(named_flows >= 20);  // zoom.pcap's and teams.pcap's TLS flows
}
