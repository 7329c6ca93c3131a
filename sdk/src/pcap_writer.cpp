#include "trafficid/pcap_writer.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <unistd.h>

#include "trafficid/error.hpp"
#include "trafficid/packet.hpp"

namespace trafficid {

CaptureWriter::CaptureWriter(const std::filesystem::path& file) : path_(file) {
  file_ = std::fopen(file.c_str(), "wb");
  if (!file_)
    throw Error(fmt::format("cannot create {}: {} (check that the folder exists and is writable)", file.string(),
                            std::strerror(errno)));
}

CaptureWriter::~CaptureWriter() {
  if (file_) std::fclose(file_);
}

void CaptureWriter::append(const void* data, std::size_t size) {
  if (!file_) throw Error(fmt::format("{}: write after close", path_.string()));
  if (size && std::fwrite(data, size, 1, file_) != 1) {
    int error = errno;
    // Cut the file back to its last whole packet so that it stays a valid capture.
    std::fflush(file_);
    if (::ftruncate(::fileno(file_), static_cast<off_t>(good_size_)) != 0) { /* keep the first error */ }
    std::fclose(file_);
    file_ = nullptr;
    throw Error(fmt::format("cannot write {}: {}; the file was cut back to its last whole packet ({} packets)",
                            path_.string(), std::strerror(error), packets_));
  }
  pending_ += size;
}

void CaptureWriter::commit() {
  good_size_ += pending_;
  pending_ = 0;
}

void CaptureWriter::close() {
  if (!file_) return;
  bool failed = std::fflush(file_) != 0;
  int error = errno;
  if (failed) (void)::ftruncate(::fileno(file_), static_cast<off_t>(good_size_));
  failed |= std::fclose(file_) != 0;
  file_ = nullptr;
  if (failed)
    throw Error(fmt::format("cannot finish {}: {}; the file was cut back to its last whole packet", path_.string(),
                            std::strerror(error)));
}

namespace {
struct PcapFileHeader {
  std::uint32_t magic;
  std::uint16_t version_major = 2, version_minor = 4;
  std::int32_t thiszone = 0;
  std::uint32_t sigfigs = 0;
  std::uint32_t snaplen;
  std::uint32_t network;
};
struct PcapRecordHeader {
  std::uint32_t seconds, fraction, caplen, len;
};
}  // namespace

PcapWriter::PcapWriter(const std::filesystem::path& file, std::uint32_t link_type, bool nanosecond,
                       std::uint32_t snaplen)
    : CaptureWriter(file), link_type_(link_type), nanosecond_(nanosecond) {
  PcapFileHeader header{nanosecond ? 0xa1b23c4du : 0xa1b2c3d4u};
  header.snaplen = snaplen;
  header.network = link_type;
  append(&header, sizeof header);
  commit();
}

PcapWriter::~PcapWriter() = default;

void PcapWriter::write(std::int64_t timestamp_ns, std::uint32_t link_type, std::span<const std::uint8_t> data,
                       std::uint32_t wire_length) {
  if (link_type != link_type_)
    throw Error(fmt::format("{}: a pcap file holds one link type ({}), this packet is {} (write pcapng instead)",
                            path_.string(), linktype_name(link_type_), linktype_name(link_type)));
  std::int64_t seconds = timestamp_ns / 1'000'000'000;
  std::int64_t rest = timestamp_ns % 1'000'000'000;
  PcapRecordHeader record{static_cast<std::uint32_t>(seconds),
                          static_cast<std::uint32_t>(nanosecond_ ? rest : rest / 1000),
                          static_cast<std::uint32_t>(data.size()),
                          wire_length ? wire_length : static_cast<std::uint32_t>(data.size())};
  append(&record, sizeof record);
  append(data.data(), data.size());
  commit();
  ++packets_;
}

namespace {
void block(std::vector<std::uint8_t>& out, std::uint32_t type, const std::vector<std::uint8_t>& body) {
  std::uint32_t length = static_cast<std::uint32_t>(12 + ((body.size() + 3) & ~std::size_t{3}));
  auto put32 = [&](std::uint32_t v) {
    auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    out.insert(out.end(), p, p + 4);
  };
  put32(type);
  put32(length);
  out.insert(out.end(), body.begin(), body.end());
  out.resize(out.size() + ((4 - body.size() % 4) % 4), 0);
  put32(length);
}

template <class T>
void put(std::vector<std::uint8_t>& out, T value) {
  auto* p = reinterpret_cast<const std::uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof value);
}
}  // namespace

PcapngWriter::PcapngWriter(const std::filesystem::path& file, std::uint32_t snaplen)
    : CaptureWriter(file), snaplen_(snaplen) {
  std::vector<std::uint8_t> body, out;
  put<std::uint32_t>(body, 0x1a2b3c4d);
  put<std::uint16_t>(body, 1);
  put<std::uint16_t>(body, 0);
  put<std::int64_t>(body, -1);  // section length not known
  // shb_userappl option
  const std::string application = "trafficid";
  put<std::uint16_t>(body, 4);
  put<std::uint16_t>(body, static_cast<std::uint16_t>(application.size()));
  body.insert(body.end(), application.begin(), application.end());
  body.resize((body.size() + 3) & ~std::size_t{3}, 0);
  put<std::uint32_t>(body, 0);  // opt_endofopt
  block(out, 0x0a0d0d0a, body);
  append(out.data(), out.size());
  commit();
}

PcapngWriter::~PcapngWriter() = default;

std::uint32_t PcapngWriter::interface_for(std::uint32_t link_type) {
  auto it = std::find(interfaces_.begin(), interfaces_.end(), link_type);
  if (it != interfaces_.end()) return static_cast<std::uint32_t>(it - interfaces_.begin());
  std::vector<std::uint8_t> body, out;
  put<std::uint16_t>(body, static_cast<std::uint16_t>(link_type));
  put<std::uint16_t>(body, 0);
  put<std::uint32_t>(body, snaplen_);
  put<std::uint16_t>(body, 9);  // if_tsresol: nanoseconds
  put<std::uint16_t>(body, 1);
  body.insert(body.end(), {9, 0, 0, 0});
  put<std::uint32_t>(body, 0);
  block(out, 1, body);
  append(out.data(), out.size());
  commit();
  interfaces_.push_back(link_type);
  return static_cast<std::uint32_t>(interfaces_.size() - 1);
}

void PcapngWriter::write(std::int64_t timestamp_ns, std::uint32_t link_type, std::span<const std::uint8_t> data,
                         std::uint32_t wire_length) {
  std::uint32_t interface = interface_for(link_type);
  std::vector<std::uint8_t> body, out;
  body.reserve(20 + data.size() + 3);
  auto ticks = static_cast<std::uint64_t>(timestamp_ns);
  put<std::uint32_t>(body, interface);
  put<std::uint32_t>(body, static_cast<std::uint32_t>(ticks >> 32));
  put<std::uint32_t>(body, static_cast<std::uint32_t>(ticks));
  put<std::uint32_t>(body, static_cast<std::uint32_t>(data.size()));
  put<std::uint32_t>(body, wire_length ? wire_length : static_cast<std::uint32_t>(data.size()));
  body.insert(body.end(), data.begin(), data.end());
  block(out, 6, body);
  append(out.data(), out.size());
  commit();
  ++packets_;
}

}  // namespace trafficid
