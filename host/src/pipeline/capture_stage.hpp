// The capture stage: reads every packet of every source once and summarises what was read
// (per input, per link type, per protocol, flows). Later stages hang off the same loop.
#pragma once
#include <cstdint>
#include <functional>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "config/experiment.hpp"
#include "runtime/host_log.hpp"
#include "trafficid/capture.hpp"

namespace trafficid::host {

struct CaptureSummary {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t ipv4 = 0, ipv6 = 0, not_ip = 0;
  std::uint64_t tcp = 0, udp = 0, icmp = 0, other_l4 = 0;
  std::uint64_t fragments = 0, truncated = 0, vlan_tagged = 0;
  std::uint64_t flows = 0;
  std::map<std::uint32_t, std::uint64_t> per_link_type;
  std::map<std::uint16_t, std::uint64_t> per_server_port;  // lower port of each TCP/UDP packet
  std::vector<SourceFileInfo> files;
  std::vector<std::string> sources;
  bool stopped_early = false;
};

class FlowCounter;

// Later stages that see every packet in the same pass (the label stage). `source_index` is the
// source's place in the experiment: sources are made one after the other, so a later one may sit
// at the address of an earlier one, and each numbers its files from 0.
using PacketObserver =
    std::function<void(const PacketView& packet, const CaptureSource& source, std::size_t source_index)>;

// Reads `source` to the end (or `max_packets`, or a stop request) into `summary`.
void read_source(const PluginHandle<CaptureSource>& source, HostLog& host, std::uint64_t max_packets,
                 CaptureSummary& summary, FlowCounter& flows, const PacketObserver& observer = {},
                 std::size_t source_index = 0, bool detailed = true);

// Runs a capture stage: every source, in order, `max_packets` in all (0: everything). Without
// `detailed`, the summary has no flow count and no port table (they cost a lookup per packet).
CaptureSummary run_capture_stage(const std::vector<SourceSpec>& sources, std::uint64_t max_packets,
                                 const PluginRegistry& registry, HostLog& host, const PacketObserver& observer = {},
                                 bool detailed = true);

Json to_json(const CaptureSummary& summary);
std::string format_summary(const CaptureSummary& summary);

// Distinct bidirectional flows (canonical 5-tuples).
class FlowCounter {
 public:
  void add(const FiveTuple& tuple);
  std::uint64_t size() const;
  ~FlowCounter();
  FlowCounter();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace trafficid::host
