// libFuzzer target for the ndpi labeler's flow tracking: the input is a sequence of frames
// ([link type byte][length, 2 bytes][bytes]), each parsed and fed to one labeler with rising
// timestamps (and an idle timeout and teardown, so flows also end and restart), then flushed.
#include <cstdint>
#include <vector>

#include "trafficid/sdk.hpp"

extern "C" const void* trafficid_plugin;  // the labeler's entry point, compiled into this binary

namespace {
struct Discard : trafficid::FlowSink {
  std::size_t flows = 0;
  void emit(const trafficid::FlowRecord& flow) override { flows += !flow.label.empty(); }
};
struct Quiet : trafficid::HostServices {
  void log(trafficid::LogLevel, std::string_view) override {}
  bool stop_requested() const override { return false; }
  unsigned threads() const override { return 1; }
  std::filesystem::path work_dir() const override { return "/tmp"; }
};
constexpr std::uint32_t link_types[] = {trafficid::linktype::ethernet, trafficid::linktype::raw,
                                        trafficid::linktype::linux_sll, trafficid::linktype::null_bsd};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace trafficid;
  static Quiet host;
  static const PluginDescriptor* descriptor =
      reinterpret_cast<const PluginDescriptor* (*)()>(const_cast<void*>(trafficid_plugin))();
  static const Json params = {{"protocols_file", ""},  {"categories_file", ""}, {"risky_domains_file", ""},
                              {"ja3_file", ""},        {"sha1_file", ""},       {"tcp_max_packets", 80},
                              {"udp_max_packets", 24}, {"idle_timeout", 2.0},   {"active_timeout", 0.0},
                              {"max_flows", 64},       {"tcp_teardown", true},  {"guess", true}};
  // One labeler for the whole run (building nDPI's automata takes ~60 ms); each input is a new
  // file for it: begin_file, its packets, flush.
  static PluginArgs args{params, host, "ndpi"};
  static std::unique_ptr<Plugin> plugin = descriptor->create(args);
  static auto* labeler = dynamic_cast<Labeler*>(plugin.get());
  if (!labeler) __builtin_trap();
  Discard sink;
  SourceFileInfo file;
  labeler->begin_file(file);
  std::int64_t now = 1'700'000'000'000'000'000;
  std::vector<std::vector<std::uint8_t>> frames;
  for (std::size_t at = 0; at + 3 <= size;) {
    std::uint32_t link = link_types[data[at] % 4];
    std::size_t length = static_cast<std::size_t>(data[at + 1] << 8 | data[at + 2]);
    at += 3;
    if (length > size - at) length = size - at;
    frames.emplace_back(data + at, data + at + length);  // exactly its length: ASan sees overreads
    at += length;
    PacketView p;
    p.link_type = link;
    p.data = frames.back();
    p.wire_length = static_cast<std::uint32_t>(length);
    p.timestamp_ns = now += 700'000'000;  // 0.7 s apart: idle timeouts and teardown grace happen
    parse_packet(p);
    labeler->process(p, sink);
  }
  labeler->flush(sink);
  return 0;
}
