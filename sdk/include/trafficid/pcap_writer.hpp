// Streaming writer of classic pcap files (microsecond or nanosecond timestamps).
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>

#include "trafficid/export.hpp"

namespace trafficid {

class TRAFFICID_SDK_API PcapWriter {
 public:
  PcapWriter(const std::filesystem::path& file, std::uint32_t link_type, bool nanosecond = true,
             std::uint32_t snaplen = 262144);
  ~PcapWriter();
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;

  void write(std::int64_t timestamp_ns, std::span<const std::uint8_t> data,
             std::uint32_t wire_length = 0);
  void close();  // flushes; throws Error naming the file on a write failure
  std::uint64_t packets() const { return packets_; }

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  bool nanosecond_;
  std::uint64_t packets_ = 0;
};

}  // namespace trafficid
