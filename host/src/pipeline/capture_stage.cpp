#include "pipeline/capture_stage.hpp"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <vector>

namespace trafficid::host {

// The flows' 64-bit symmetric hashes in an open-addressing table: 8 bytes a flow, one probe in
// the common case, no node to allocate (an unordered_set of 5-tuples, a 64-byte node per flow, was
// 3% of prepro's samples in the reading thread). Two flows whose hashes collide count as one: at
// a million flows, a chance of about 3e-8.
struct FlowCounter::Impl {
  std::vector<std::uint64_t> slots = std::vector<std::uint64_t>(1 << 12, 0);  // 0: empty
  std::uint64_t count = 0;

  void insert(std::uint64_t hash) {
    if (hash == 0) hash = 1;
    if (2 * (count + 1) > slots.size()) grow();
    if (place(slots, hash)) ++count;
  }
  static bool place(std::vector<std::uint64_t>& table, std::uint64_t hash) {
    const std::size_t mask = table.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      if (table[i] == hash) return false;
      if (table[i] == 0) {
        table[i] = hash;
        return true;
      }
    }
  }
  void grow() {
    std::vector<std::uint64_t> bigger(slots.size() * 2, 0);
    for (auto h : slots)
      if (h) place(bigger, h);
    slots = std::move(bigger);
  }
};
FlowCounter::FlowCounter() : impl_(std::make_unique<Impl>()) {}
FlowCounter::~FlowCounter() = default;
void FlowCounter::add(const FiveTuple& tuple) { impl_->insert(symmetric_hash(tuple)); }
std::uint64_t FlowCounter::size() const { return impl_->count; }

void read_source(const PluginHandle<CaptureSource>& source, HostLog& host, std::uint64_t max_packets,
                 CaptureSummary& summary, FlowCounter& flows, const PacketObserver& observer, std::size_t source_index,
                 bool detailed) {
  PacketView packet;
  auto last_event = std::chrono::steady_clock::now(), last_line = last_event;
  while (true) {
    if (max_packets && summary.packets >= max_packets) break;
    if (host.stop_requested()) {
      summary.stopped_early = true;
      break;
    }
    if (!source([&](CaptureSource& s) { return s.next(packet); })) break;
    ++summary.packets;
    summary.bytes += packet.data.size();
    if (observer) observer(packet, source.get(), source_index);
    ++summary.per_link_type[packet.link_type];
    if (packet.flags & packet_flag::fragment) ++summary.fragments;
    if (packet.flags & packet_flag::truncated) ++summary.truncated;
    if (packet.vlan_count) ++summary.vlan_tagged;
    if (!packet.has_ip()) {
      ++summary.not_ip;
      continue;
    }
    (packet.ip_version == 4 ? summary.ipv4 : summary.ipv6) += 1;
    switch (packet.l4_protocol) {
      case ipproto::tcp: ++summary.tcp; break;
      case ipproto::udp: ++summary.udp; break;
      case ipproto::icmp:
      case ipproto::icmpv6: ++summary.icmp; break;
      default: ++summary.other_l4;
    }
    if (detailed) {
      if ((packet.l4_protocol == ipproto::tcp || packet.l4_protocol == ipproto::udp) && packet.has_l4())
        ++summary.per_server_port[std::min(packet.tuple.src_port, packet.tuple.dst_port)];
      flows.add(packet.tuple);
    }
    // Progress: an event each second (a front end's counters), a log line each 5 seconds.
    if ((summary.packets & 1023) == 0) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_event >= std::chrono::seconds(1)) {
        last_event = now;
        host.event("stage", {{"name", "capture"},
                             {"state", "progress"},
                             {"packets", summary.packets},
                             {"bytes", summary.bytes},
                             {"source", source_index}});
      }
      if (now - last_line > std::chrono::seconds(5)) {
        last_line = now;
        host.info(fmt::format("capture: {} packets read", summary.packets));
      }
    }
  }
  // The source read to its end (or stopped): a front end's final counts, the terminal's status line ends.
  host.event("stage", {{"name", "capture"},
                       {"state", "read"},
                       {"packets", summary.packets},
                       {"bytes", summary.bytes},
                       {"source", source_index}});
  auto files = source([](CaptureSource& s) { return s.files(); });
  for (auto& f : files) {
    if (!f.warning.empty()) host.warn(fmt::format("{}: {}", f.path, f.warning));
    summary.files.push_back(std::move(f));
  }
}

CaptureSummary run_capture_stage(const std::vector<SourceSpec>& sources, std::uint64_t max_packets,
                                 const PluginRegistry& registry, HostLog& host, const PacketObserver& observer,
                                 bool detailed) {
  CaptureSummary summary;
  FlowCounter flows;
  for (std::size_t index = 0; index < sources.size(); ++index) {
    const auto& spec = sources[index];
    summary.sources.push_back(spec.instance);
    const auto source = registry.make<CaptureSource>(*spec.plugin, spec.params, host, spec.instance);
    read_source(source, host, max_packets, summary, flows, observer, index, detailed);
    if (summary.stopped_early) break;
  }
  summary.flows = flows.size();
  return summary;
}

Json to_json(const CaptureSummary& s) {
  Json link_types = Json::object();
  for (const auto& [type, count] : s.per_link_type)
    link_types[std::to_string(type)] = {{"name", linktype_name(type)}, {"packets", count}};
  std::vector<std::pair<std::uint16_t, std::uint64_t>> ports(s.per_server_port.begin(), s.per_server_port.end());
  std::sort(ports.begin(), ports.end(), [](auto& a, auto& b) { return a.second > b.second; });
  Json top_ports = Json::array();
  for (std::size_t i = 0; i < ports.size() && i < 20; ++i)
    top_ports.push_back({{"port", ports[i].first}, {"packets", ports[i].second}});
  Json files = Json::array();
  for (const auto& f : s.files) {
    Json j{{"id", f.id},           {"path", f.path},   {"format", f.format},     {"link_types", f.link_types},
           {"packets", f.packets}, {"bytes", f.bytes}, {"first_ns", f.first_ns}, {"last_ns", f.last_ns}};
    if (!f.warning.empty()) j["warning"] = f.warning;
    if (f.damaged_at >= 0) j["damaged_at"] = f.damaged_at;
    if (!f.content_hash.empty()) j["content_hash"] = f.content_hash;
    files.push_back(std::move(j));
  }
  return {{"sources", s.sources},
          {"packets", s.packets},
          {"bytes", s.bytes},
          {"flows", s.flows},
          {"ipv4", s.ipv4},
          {"ipv6", s.ipv6},
          {"not_ip", s.not_ip},
          {"tcp", s.tcp},
          {"udp", s.udp},
          {"icmp", s.icmp},
          {"other_l4", s.other_l4},
          {"fragments", s.fragments},
          {"truncated", s.truncated},
          {"vlan_tagged", s.vlan_tagged},
          {"stopped_early", s.stopped_early},
          {"link_types", link_types},
          {"top_ports", top_ports},
          {"files", files}};
}

std::string format_summary(const CaptureSummary& s) {
  std::string out = fmt::format(
      "packets {}  bytes {}  flows {}\n  IPv4 {}  IPv6 {}  not IP {}\n  TCP {}  UDP {}  ICMP {}  other {}\n"
      "  fragments {}  truncated {}  VLAN-tagged {}\n",
      s.packets, s.bytes, s.flows, s.ipv4, s.ipv6, s.not_ip, s.tcp, s.udp, s.icmp, s.other_l4, s.fragments, s.truncated,
      s.vlan_tagged);
  for (const auto& [type, count] : s.per_link_type)
    out += fmt::format("  link type {} ({}): {} packets\n", type, linktype_name(type), count);
  std::size_t damaged = 0;
  for (const auto& f : s.files) damaged += !f.warning.empty();
  out += fmt::format("  inputs {} ({} with warnings)\n", s.files.size(), damaged);
  return out;
}

}  // namespace trafficid::host
