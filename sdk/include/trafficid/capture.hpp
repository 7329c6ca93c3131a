// Capture sources: pcap/pcapng files, live interfaces, generators. Pull model: the host calls
// next() until it returns false, so a source never holds more than its current packet.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "trafficid/packet.hpp"
#include "trafficid/plugin.hpp"

namespace trafficid {

// What a source learnt about one of its inputs (a file, an interface, a generator run).
struct SourceFileInfo {
  std::uint32_t id = 0;
  std::string path;
  std::string format;                   // "pcap", "pcap-ns", "pcapng", "live", "synth"
  std::vector<std::uint32_t> link_types;
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;              // captured bytes
  std::int64_t first_ns = 0;
  std::int64_t last_ns = 0;
  std::string warning;                  // empty when the input was read whole
  std::int64_t damaged_at = -1;         // byte offset of the damage, -1 when none
};

class TRAFFICID_SDK_API CaptureSource : public Plugin {
 public:
  ~CaptureSource() override;
  // Fills `packet` (already parsed with parse_packet) and returns true; false at the end.
  // The view stays valid until the next call.
  virtual bool next(PacketView& packet) = 0;
  // The inputs opened so far with their counters; complete once next() returned false.
  virtual std::vector<SourceFileInfo> files() const = 0;
};

}  // namespace trafficid
