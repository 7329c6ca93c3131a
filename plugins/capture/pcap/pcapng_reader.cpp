#include "pcapng_reader.hpp"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <limits>

#include "trafficid/error.hpp"

namespace trafficid::pcap_plugin {
namespace {
constexpr std::uint32_t section_header_block = 0x0a0d0d0a;
constexpr std::uint32_t interface_description_block = 1;
constexpr std::uint32_t obsolete_packet_block = 2;
constexpr std::uint32_t simple_packet_block = 3;
constexpr std::uint32_t enhanced_packet_block = 6;
constexpr std::uint32_t byte_order_magic = 0x1a2b3c4d;
constexpr std::uint32_t max_block_length = 256u << 20;

__extension__ typedef __int128 int128;

std::uint32_t swap32(std::uint32_t v) { return __builtin_bswap32(v); }
}  // namespace

PcapngReader::PcapngReader(const std::filesystem::path& file) {
  file_ = std::fopen(file.c_str(), "rb");
  if (!file_) throw Error(fmt::format("cannot open {}: {}", file.string(), std::strerror(errno)));
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (!ec) file_size_ = static_cast<std::int64_t>(size);
}

PcapngReader::~PcapngReader() {
  if (file_) std::fclose(file_);
}

std::uint32_t PcapngReader::u32(const std::uint8_t* p) const {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return swapped_ ? swap32(v) : v;
}

std::uint16_t PcapngReader::u16(const std::uint8_t* p) const {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return swapped_ ? static_cast<std::uint16_t>(__builtin_bswap16(v)) : v;
}

bool PcapngReader::fail(std::int64_t offset, std::string message) {
  damage_offset_ = offset;
  error_ = std::move(message);
  return false;
}

std::int64_t PcapngReader::to_ns(const Interface& i, std::uint64_t ticks) const {
  int128 ns;
  if (i.base2) {
    ns = static_cast<int128>(ticks) * 1'000'000'000 >> i.resolution;
  } else if (i.resolution <= 9) {
    int128 scale = 1;
    for (int k = i.resolution; k < 9; ++k) scale *= 10;
    ns = static_cast<int128>(ticks) * scale;
  } else {
    int128 scale = 1;
    for (int k = 9; k < i.resolution && k < 40; ++k) scale *= 10;
    ns = static_cast<int128>(ticks) / scale;
  }
  // if_tsoffset is any 64-bit count of seconds: the sum is formed in 128 bits (offset_seconds * 1e9
  // overflowed int64 for a crafted offset, which is undefined behaviour) and held to the int64
  // range, the farthest time a packet can carry.
  const int128 total = ns + static_cast<int128>(i.offset_seconds) * 1'000'000'000;
  const int128 low = std::numeric_limits<std::int64_t>::min(), high = std::numeric_limits<std::int64_t>::max();
  return static_cast<std::int64_t>(std::clamp(total, low, high));
}

void PcapngReader::read_interface(const std::vector<std::uint8_t>& body) {
  Interface i;
  if (body.size() >= 8) {
    i.link_type = u16(body.data());
    i.snaplen = u32(body.data() + 4);
  }
  // Options: code, length, value padded to 4 bytes.
  for (std::size_t pos = 8; pos + 4 <= body.size();) {
    std::uint16_t code = u16(body.data() + pos), length = u16(body.data() + pos + 2);
    pos += 4;
    if (code == 0 || pos + length > body.size()) break;
    if (code == 9 && length >= 1) {  // if_tsresol
      i.base2 = body[pos] & 0x80;
      i.resolution = body[pos] & 0x7f;
    } else if (code == 14 && length >= 8) {  // if_tsoffset
      std::uint64_t v;
      std::memcpy(&v, body.data() + pos, 8);
      if (swapped_) v = __builtin_bswap64(v);
      i.offset_seconds = static_cast<std::int64_t>(v);
    }
    pos += (length + 3u) & ~3u;
  }
  interfaces_.push_back(i);
}

bool PcapngReader::next(PcapngPacket& packet) {
  while (true) {
    const std::int64_t start = offset_;
    std::uint8_t header[8];
    std::size_t got = std::fread(header, 1, 8, file_);
    if (got == 0 && std::feof(file_)) return false;  // clean end
    if (got < 8) return fail(start, fmt::format("file ends inside a block header ({} of 8 bytes)", got));
    std::uint32_t type_raw, length_raw;
    std::memcpy(&type_raw, header, 4);
    std::memcpy(&length_raw, header + 4, 4);
    if (type_raw == section_header_block) {
      std::uint8_t magic[4];
      if (std::fread(magic, 1, 4, file_) != 4) return fail(start, "file ends inside a section header");
      std::uint32_t m;
      std::memcpy(&m, magic, 4);
      if (m == byte_order_magic) swapped_ = false;
      else if (swap32(m) == byte_order_magic) swapped_ = true;
      else return fail(start, "section header with an unknown byte-order magic");
      if (std::fseek(file_, -4, SEEK_CUR) != 0) return fail(start, "cannot seek");
      interfaces_.clear();
      in_section_ = true;
    } else if (!in_section_) {
      return fail(start, "not a pcapng file: no section header block first");
    }
    std::uint32_t type = swapped_ ? swap32(type_raw) : type_raw;
    std::uint32_t length = swapped_ ? swap32(length_raw) : length_raw;
    if (length < 12 || length % 4 != 0 || length > max_block_length)
      return fail(start, fmt::format("block of type {:#x} has an impossible length {}", type, length));
    // A length past the file's end is damage found before allocating it (up to 256 MiB otherwise).
    if (file_size_ >= 0 && start + static_cast<std::int64_t>(length) > file_size_)
      return fail(start, fmt::format("file ends inside a block of type {:#x} ({} of {} bytes)", type,
                                     file_size_ - start, length));
    block_.resize(length - 8);
    got = std::fread(block_.data(), 1, block_.size(), file_);
    if (got < block_.size())
      return fail(start, fmt::format("file ends inside a block of type {:#x} ({} of {} bytes)", type, got + 8, length));
    offset_ += length;
    if (u32(block_.data() + block_.size() - 4) != length)
      return fail(start, fmt::format("block of type {:#x}: trailing length differs from the leading one", type));
    std::vector<std::uint8_t> body(block_.begin(), block_.end() - 4);

    std::uint32_t interface_id = 0, captured = 0, wire = 0;
    std::uint64_t ticks = 0;
    std::size_t data_offset = 0;
    bool has_time = true;
    switch (type) {
      case interface_description_block: read_interface(body); continue;
      case enhanced_packet_block:
        if (body.size() < 20) return fail(start, "enhanced packet block too short");
        interface_id = u32(body.data());
        ticks = std::uint64_t{u32(body.data() + 4)} << 32 | u32(body.data() + 8);
        captured = u32(body.data() + 12);
        wire = u32(body.data() + 16);
        data_offset = 20;
        break;
      case obsolete_packet_block:
        if (body.size() < 20) return fail(start, "packet block too short");
        interface_id = u16(body.data());
        ticks = std::uint64_t{u32(body.data() + 4)} << 32 | u32(body.data() + 8);
        captured = u32(body.data() + 12);
        wire = u32(body.data() + 16);
        data_offset = 20;
        break;
      case simple_packet_block:
        if (body.size() < 4) return fail(start, "simple packet block too short");
        wire = u32(body.data());
        captured = static_cast<std::uint32_t>(body.size() - 4);
        if (!interfaces_.empty() && interfaces_[0].snaplen && captured > interfaces_[0].snaplen)
          captured = interfaces_[0].snaplen;
        if (captured > wire) captured = wire;
        data_offset = 4;
        has_time = false;
        break;
      default: continue;  // statistics, name resolution, custom blocks: nothing to deliver
    }
    if (interface_id >= interfaces_.size())
      return fail(start, fmt::format("packet names interface {} but the section declares {}", interface_id,
                                     interfaces_.size()));
    if (data_offset + captured > body.size())
      return fail(start,
                  fmt::format("packet block claims {} captured bytes, holds {}", captured, body.size() - data_offset));
    const Interface& i = interfaces_[interface_id];
    packet_.assign(body.begin() + static_cast<long>(data_offset),
                   body.begin() + static_cast<long>(data_offset + captured));
    packet.data = &packet_;
    packet.link_type = i.link_type;
    packet.wire_length = wire;
    packet.timestamp_ns = has_time ? to_ns(i, ticks) : 0;
    return true;
  }
}

std::uint32_t PcapngReader::finest_resolution_ns() const {
  std::uint32_t finest = 1000;
  for (const auto& i : interfaces_) {
    std::uint64_t ns;
    if (i.base2) ns = i.resolution >= 30 ? 1 : 1'000'000'000ull >> i.resolution;
    else {
      ns = 1;
      for (int k = i.resolution; k < 9; ++k) ns *= 10;
    }
    finest = static_cast<std::uint32_t>(std::min<std::uint64_t>(finest, std::max<std::uint64_t>(ns, 1)));
  }
  return finest;
}

std::uint32_t pcapng_resolution_ns(const std::filesystem::path& file) {
  PcapngReader reader(file);
  PcapngPacket packet;
  reader.next(packet);
  return reader.finest_resolution_ns();
}

}  // namespace trafficid::pcap_plugin
