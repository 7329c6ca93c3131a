#include "trafficid/pcap_writer.hpp"

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <fmt/std.h>

#include "trafficid/error.hpp"

namespace trafficid {
namespace {
struct FileHeader {
  std::uint32_t magic;
  std::uint16_t version_major = 2, version_minor = 4;
  std::int32_t thiszone = 0;
  std::uint32_t sigfigs = 0;
  std::uint32_t snaplen;
  std::uint32_t network;
};
struct RecordHeader {
  std::uint32_t seconds, fraction, caplen, len;
};
}  // namespace

PcapWriter::PcapWriter(const std::filesystem::path& file, std::uint32_t link_type, bool nanosecond,
                       std::uint32_t snaplen)
    : path_(file), nanosecond_(nanosecond) {
  file_ = std::fopen(file.c_str(), "wb");
  if (!file_)
    throw Error(fmt::format("cannot create {}: {} (check that the folder exists and is writable)",
                            file.string(), std::strerror(errno)));
  FileHeader header{nanosecond ? 0xa1b23c4du : 0xa1b2c3d4u};
  header.snaplen = snaplen;
  header.network = link_type;
  if (std::fwrite(&header, sizeof header, 1, file_) != 1)
    throw Error(fmt::format("cannot write {}: {}", file.string(), std::strerror(errno)));
}

PcapWriter::~PcapWriter() {
  if (file_) std::fclose(file_);
}

void PcapWriter::write(std::int64_t timestamp_ns, std::span<const std::uint8_t> data,
                       std::uint32_t wire_length) {
  if (!file_) throw Error(fmt::format("{}: write after close", path_.string()));
  std::int64_t seconds = timestamp_ns / 1'000'000'000;
  std::int64_t rest = timestamp_ns % 1'000'000'000;
  RecordHeader record{static_cast<std::uint32_t>(seconds),
                      static_cast<std::uint32_t>(nanosecond_ ? rest : rest / 1000),
                      static_cast<std::uint32_t>(data.size()),
                      wire_length ? wire_length : static_cast<std::uint32_t>(data.size())};
  if (std::fwrite(&record, sizeof record, 1, file_) != 1 ||
      (!data.empty() && std::fwrite(data.data(), data.size(), 1, file_) != 1))
    throw Error(fmt::format("cannot write {}: {} (disk full?)", path_.string(), std::strerror(errno)));
  ++packets_;
}

void PcapWriter::close() {
  if (!file_) return;
  bool failed = std::fflush(file_) != 0;
  failed |= std::fclose(file_) != 0;
  file_ = nullptr;
  if (failed) throw Error(fmt::format("cannot finish {}: {}", path_.string(), std::strerror(errno)));
}

}  // namespace trafficid
