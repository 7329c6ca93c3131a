// flow_start: how a flow begins, the input that carries over to captures a model never saw
// (EVALUATION.md): its first N packets that carry payload, one row each, with the packet's
// direction, sizes, gap since the flow's previous packet, transport and TCP flags, the flow's
// ports, and the first B bytes of the packet's transport payload (the handshake: TLS
// ClientHello / ServerHello with SNI, ALPN and cipher lists, QUIC Initial, protocol banners).
// Nothing of the IP or transport headers but these fields: no addresses, TTL, IP id, sequence
// numbers, windows or checksums, the per-capture shortcuts. With `names` = K > 0, K columns more
// hold the server name the client asks for (TLS SNI, HTTP Host) as hashed tokens, in the row of
// the packet that carried it: `name_K` is 1 where a token of the name falls in bucket K.
//
// One float32 sample [N, C] per window of N payload packets: the flow's start (window 0), and
// with `windows` > 1 the next windows of the same flow too (packets N..2N-1, ...), each a sample
// of the flow. Column names (the manifest's `columns`) say what each column is, and models read
// them by name: `byte_I` is the I-th payload byte plus one (1..256; 0 past the payload's end);
// `server_port` and `client_port` are port numbers (categorical; 0 when `ports = false`); every
// other column is a number of order 1. A row of zeros is no packet: a flow shorter than N packets
// ends in such rows, and the sample cut after k rows is what the flow's first k packets give
// (the spec says `sequence`, and reports draw the early-decision curve from it).
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <unordered_map>
#include <vector>

#include "server_name.hpp"
#include "trafficid/sdk.hpp"

namespace trafficid::flow_start_features {
namespace {

// The header columns of a row, before the payload bytes.
const char* const header_columns[] = {
    "present", "from_server", "ip_length", "payload_length", "gap",         "tcp",        "udp", "syn", "ack",
    "fin",     "rst",         "psh",       "window",         "server_port", "client_port"};
constexpr std::size_t header_count = std::size(header_columns);

namespace tcp_flag {
constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10;
}

class FlowStart final : public FeatureExtractor {
 public:
  explicit FlowStart(const PluginArgs& args) {
    const auto& p = args.params;
    packets_ = static_cast<std::size_t>(p.at("packets").get<std::int64_t>());
    bytes_ = static_cast<std::size_t>(p.at("payload_bytes").get<std::int64_t>());
    windows_ = static_cast<std::size_t>(p.at("windows").get<std::int64_t>());
    skip_empty_ = p.at("skip_empty").get<bool>();
    ports_ = p.at("ports").get<bool>();
    names_ = static_cast<std::size_t>(p.at("names").get<std::int64_t>());
    columns_ = header_count + names_ + bytes_;
  }

  FeatureSpec spec() const override {
    FeatureSpec s;
    s.dtype = DType::f32;
    s.granularity = Granularity::flow;
    s.shape = {static_cast<std::int64_t>(packets_), static_cast<std::int64_t>(columns_)};
    s.sequence = true;
    for (const char* c : header_columns) s.column_names.push_back(c);
    for (std::size_t i = 0; i < names_; ++i) s.column_names.push_back(fmt::format("name_{}", i));
    for (std::size_t i = 0; i < bytes_; ++i) s.column_names.push_back(fmt::format("byte_{}", i));
    return s;
  }

  void process(const PacketView& packet, const PacketFlow& flow, SampleSink& out) override {
    auto [it, fresh] = open_.try_emplace(flow.flow_id);
    State& s = it->second;
    const std::int64_t t = packet.timestamp_ns;
    const double gap =
        fresh ? 0.0 : static_cast<double>(std::max<std::int64_t>(0, t - s.last_ns)) / 1e3;  // microseconds
    s.last_ns = t;
    if (fresh) {
      s.server_port = packet.tuple.dst_port;  // the first packet's sender is the client
      s.client_port = packet.tuple.src_port;
      if (!flow.from_client) std::swap(s.server_port, s.client_port);
    }
    if (s.window >= windows_) return;
    const auto payload = packet.payload();
    if (skip_empty_ && payload.empty()) return;
    if (s.rows.empty()) s.rows.assign(packets_ * columns_, 0.0f);
    float* row = s.rows.data() + s.count * columns_;
    const bool tcp = packet.l4_protocol == ipproto::tcp;
    const double ip_length =
        packet.l3_length ? packet.l3_length : static_cast<double>(packet.wire_length) - std::max(0, packet.l3_offset);
    const std::uint8_t flags = tcp ? packet.tcp_flags : 0;
    const float header[header_count] = {
        1.0f,
        flow.from_client ? 0.0f : 1.0f,
        static_cast<float>(ip_length / 1500.0),
        static_cast<float>(static_cast<double>(payload.size()) / 1500.0),
        static_cast<float>(std::log10(1.0 + gap) / 6.0),
        tcp ? 1.0f : 0.0f,
        packet.l4_protocol == ipproto::udp ? 1.0f : 0.0f,
        (flags & tcp_flag::syn) ? 1.0f : 0.0f,
        (flags & tcp_flag::ack) ? 1.0f : 0.0f,
        (flags & tcp_flag::fin) ? 1.0f : 0.0f,
        (flags & tcp_flag::rst) ? 1.0f : 0.0f,
        (flags & tcp_flag::psh) ? 1.0f : 0.0f,
        s.window == 0 ? 0.0f : 1.0f,
        ports_ ? static_cast<float>(s.server_port) : 0.0f,
        ports_ ? static_cast<float>(s.client_port) : 0.0f,
    };
    std::copy(std::begin(header), std::end(header), row);
    std::fill(row + header_count, row + header_count + names_, 0.0f);
    if (names_ > 0 && !s.named && s.window == 0 && flow.from_client) {
      const std::string name = server_name(payload);
      for (std::size_t bucket : name_buckets(name, names_)) row[header_count + bucket] = 1.0f;
      s.named = !name.empty();
    }
    float* bytes = row + header_count + names_;
    const std::size_t n = std::min(bytes_, payload.size());
    for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<float>(payload[i]) + 1.0f;
    std::fill(bytes + n, row + columns_, 0.0f);
    if (++s.count == packets_) emit(s, flow.flow_id, out);
  }

  void end_flow(const FlowRecord& flow, SampleSink& out) override {
    auto it = open_.find(flow.flow_id);
    if (it == open_.end()) return;
    if (it->second.count > 0) emit(it->second, flow.flow_id, out);
    open_.erase(it);
  }

 private:
  struct State {
    std::vector<float> rows;  // the window being filled, allocated at its first packet
    std::size_t count = 0, window = 0;
    std::int64_t last_ns = 0;
    std::uint16_t server_port = 0, client_port = 0;
    bool named = false;  // the client's server name was found
  };

  // The window's rows leave as a sample; rows past its packets are zeros (no packet).
  void emit(State& s, std::uint64_t flow_id, SampleSink& out) {
    std::fill(s.rows.begin() + static_cast<std::ptrdiff_t>(s.count * columns_), s.rows.end(), 0.0f);
    out.add({reinterpret_cast<const std::uint8_t*>(s.rows.data()), s.rows.size() * sizeof(float)}, flow_id);
    s.count = 0;
    ++s.window;
    if (s.window >= windows_) s.rows = {};  // nothing more of this flow is kept
  }

  std::size_t packets_ = 8, bytes_ = 256, windows_ = 1, names_ = 0, columns_ = 0;
  bool skip_empty_ = true, ports_ = true;
  std::unordered_map<std::uint64_t, State> open_;
};

Schema schema() {
  return {
      ParamSpec::integer("packets", 8, "packets per sample (N): the flow's first N packets (of each window)")
          .range(1, 1024),
      ParamSpec::integer("payload_bytes", 256, "first payload bytes of each packet (B)").range(0, 65535),
      ParamSpec::integer("windows", 1,
                         "samples per flow: its start, and with more the next windows of N packets, "
                         "each a sample of the flow")
          .range(1, 1 << 20),
      ParamSpec::boolean("skip_empty", true, "leave out packets without payload (TCP handshake and pure ACKs)"),
      ParamSpec::boolean("ports", true,
                         "give the flow's server and client ports (false: zeros, to measure without them)"),
      ParamSpec::integer("names", 0,
                         "hashed buckets for the server name the client asks for (TLS SNI, HTTP Host), "
                         "its tokens as columns name_0..name_{K-1} (0: no name columns)")
          .range(0, 4096),
  };
}

}  // namespace
}  // namespace trafficid::flow_start_features

TRAFFICID_DEFINE_PLUGIN(
    trafficid::flow_start_features::FlowStart, trafficid::PluginKind::features, "flow_start", "0.1.0",
    "the first N payload packets of each flow: direction, sizes, gaps, flags, ports and first bytes", "",
    trafficid::flow_start_features::schema)
