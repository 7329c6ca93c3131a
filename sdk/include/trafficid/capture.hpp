// Capture sources: pcap/pcapng files, live interfaces, generators. Pull model: the host calls
// next() until it returns false, so a source never holds more than its current packet.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trafficid/packet.hpp"
#include "trafficid/plugin.hpp"

namespace trafficid {

// What a source learnt about one of its inputs (a file, an interface, a generator run).
struct SourceFileInfo {
  std::uint32_t id = 0;
  std::string path;
  std::string format;  // "pcap", "pcap-ns", "pcapng", "live", "synth"
  std::vector<std::uint32_t> link_types;
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;  // captured bytes
  std::int64_t first_ns = 0;
  std::int64_t last_ns = 0;
  std::string warning;                 // empty when the input was read whole
  std::int64_t damaged_at = -1;        // byte offset of the damage, -1 when none
  std::uint32_t resolution_ns = 1000;  // finest timestamp resolution the input records (1: ns)
  std::uint32_t snaplen = 262144;      // snapshot length the input declares
  // Live sources: what the kernel and the interface report (pcap_stats).
  std::uint64_t received = 0;
  std::uint64_t dropped_kernel = 0;
  std::uint64_t dropped_interface = 0;
  // A source that hashes a file's bytes as it reads them says so when it opens it (`hashing`), and
  // gives the hash (content_hash_text) once it has read every byte: the host then does not read
  // the file a second time for its identity. Empty when it did not read it whole (damaged,
  // stopped early) or does not hash; the host hashes the file itself then.
  bool hashing = false;
  std::string content_hash;

  // Counts one packet delivered from this input: timestamps, packets, bytes, link types.
  void count(const PacketView& packet) {
    if (packets == 0) first_ns = packet.timestamp_ns;
    last_ns = packet.timestamp_ns;
    ++packets;
    bytes += packet.data.size();
    if (std::find(link_types.begin(), link_types.end(), packet.link_type) == link_types.end())
      link_types.push_back(packet.link_type);
  }
};

// A file's content hash as trafficid writes it: XXH3-128 of its bytes, "xxh3-128:" and the 32 hex
// digits `xxh128sum FILE` prints (the high half first).
inline std::string content_hash_text(std::uint64_t high, std::uint64_t low) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string text = "xxh3-128:";
  for (std::uint64_t half : {high, low})
    for (int shift = 60; shift >= 0; shift -= 4) text += hex[(half >> shift) & 15];
  return text;
}

// A network interface that can be captured on.
struct CaptureInterface {
  std::string name;
  std::string description;
  std::vector<std::string> addresses;
  bool up = false, running = false, loopback = false;
};

// The interfaces libpcap can open (pcap_findalldevs). Throws Error when it cannot list them.
TRAFFICID_SDK_API std::vector<CaptureInterface> capture_interfaces();
TRAFFICID_SDK_API std::string interface_names();  // "lo, eth0, ..." for messages

class TRAFFICID_SDK_API CaptureSource : public Plugin {
 public:
  ~CaptureSource() override;
  // Fills `packet` (already parsed with parse_packet) and returns true; false at the end.
  // The view stays valid until the next call.
  virtual bool next(PacketView& packet) = 0;
  // The inputs opened so far with their counters; complete once next() returned false.
  virtual std::vector<SourceFileInfo> files() const = 0;
  // The files this source will read, known before reading: what the host needs to tell whether
  // a dataset built earlier from the same config is still current. An empty list: the config
  // alone decides the packets (a seeded generator). nullopt (the default): the packets cannot be
  // known in advance (a live interface), so nothing built from them is ever reused.
  virtual std::optional<std::vector<std::string>> planned_files() const { return std::nullopt; }
};

}  // namespace trafficid
