// A pcapng reader for what libpcap refuses: files whose interfaces differ in link type or
// snapshot length (libpcap stops at the first such interface). Streams block by block.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace trafficid::pcap_plugin {

struct PcapngPacket {
  std::int64_t timestamp_ns = 0;
  std::uint32_t link_type = 0;
  std::uint32_t wire_length = 0;
  const std::vector<std::uint8_t>* data = nullptr;
};

class PcapngReader {
 public:
  explicit PcapngReader(const std::filesystem::path& file);
  ~PcapngReader();
  PcapngReader(const PcapngReader&) = delete;
  PcapngReader& operator=(const PcapngReader&) = delete;

  // Next packet; false at the end or at damage (then error() says what and damage_offset() where).
  bool next(PcapngPacket& packet);
  const std::string& error() const { return error_; }
  // The finest timestamp resolution of the interfaces declared so far, in nanoseconds (1000: µs).
  std::uint32_t finest_resolution_ns() const;
  std::int64_t damage_offset() const { return damage_offset_; }

 private:
  struct Interface {
    std::uint32_t link_type = 0;
    std::uint32_t snaplen = 0;
    bool base2 = false;
    std::uint8_t resolution = 6;
    std::int64_t offset_seconds = 0;
  };
  bool fail(std::int64_t offset, std::string message);
  std::uint32_t u32(const std::uint8_t* p) const;
  std::uint16_t u16(const std::uint8_t* p) const;
  std::int64_t to_ns(const Interface& i, std::uint64_t ticks) const;
  void read_interface(const std::vector<std::uint8_t>& body);

  std::FILE* file_ = nullptr;
  std::int64_t offset_ = 0;
  std::int64_t file_size_ = -1;  // -1: unknown (not a regular file)
  bool swapped_ = false;
  bool in_section_ = false;
  std::vector<Interface> interfaces_;
  std::vector<std::uint8_t> block_;
  std::vector<std::uint8_t> packet_;
  std::string error_;
  std::int64_t damage_offset_ = -1;
};

// The finest timestamp resolution a pcapng file declares before its first packet.
std::uint32_t pcapng_resolution_ns(const std::filesystem::path& file);

}  // namespace trafficid::pcap_plugin
