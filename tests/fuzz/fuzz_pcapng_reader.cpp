// libFuzzer target for the pcapng reader (the plugin's own, for files libpcap refuses): any bytes
// as a file. It must end at the file's end or at damage with an offset inside the file, and never
// hand out a packet larger than the block that held it.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "pcapng_reader.hpp"
#include "memory_file.hpp"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The input as a file without touching the disk: an anonymous memory file, opened by its path.
  const MemoryFile input(data, size);
  if (!input.ok()) return 0;
  try {
    trafficid::pcap_plugin::PcapngReader reader(input.path());
    trafficid::pcap_plugin::PcapngPacket packet;
    std::size_t packets = 0;
    while (reader.next(packet)) {
      check(packet.data && packet.data->size() <= size);
      volatile std::uint64_t sum = static_cast<std::uint64_t>(packet.timestamp_ns);
      for (auto b : *packet.data) sum = sum + b;
      check(++packets <= size / 12);  // every packet takes a block of 12 bytes at least
    }
    check(reader.error().empty() == (reader.damage_offset() < 0));
    check(reader.damage_offset() < static_cast<std::int64_t>(size) + 1);
    volatile std::uint32_t resolution = reader.finest_resolution_ns();
    (void)resolution;
  } catch (const std::exception&) {
  }
  return 0;
}
