#include "trafficid/pcap_writer.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "trafficid/error.hpp"
#include "trafficid/packet.hpp"

namespace trafficid {

namespace {
constexpr std::size_t write_buffer_size = 1 << 20;
}

CaptureWriter::CaptureWriter(const std::filesystem::path& file) : path_(file) {
  fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error(fmt::format("cannot create {}: {} (check that the folder exists and is writable)", file.string(),
                            std::strerror(errno)));
  buffer_.reserve(write_buffer_size + 65536);
}

CaptureWriter::~CaptureWriter() {
  try {
    close();
  } catch (...) {
  }
}

void CaptureWriter::append(const void* data, std::size_t size) {
  if (fd_ < 0) throw Error(fmt::format("{}: write after close", path_.string()));
  auto* bytes = static_cast<const std::uint8_t*>(data);
  buffer_.insert(buffer_.end(), bytes, bytes + size);
}

void CaptureWriter::commit(bool packet) {
  record_ends_.emplace_back(flushed_ + buffer_.size(), packet);
  record_start_ = buffer_.size();
  if (packet) ++packets_;
  if (buffer_.size() >= write_buffer_size) flush();
}

void CaptureWriter::flush() {
  // Only whole records go out; a record still being appended stays in the buffer.
  std::size_t whole = record_start_;
  std::size_t done = 0;
  while (done < whole) {
    ssize_t n = ::write(fd_, buffer_.data() + done, whole - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int error = n < 0 ? errno : ENOSPC;
      // Cut the file back to the last record that reached the disk whole: it stays a valid capture.
      std::uint64_t on_disk = flushed_ + done, keep = flushed_;
      std::uint64_t lost_packets = 0;
      for (const auto& [end, is_packet] : record_ends_) {
        if (end <= on_disk) keep = end;
        else lost_packets += is_packet;
      }
      if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0) { /* report the write error below */
      }
      ::close(fd_);
      fd_ = -1;
      packets_ -= lost_packets;
      flushed_ = keep;
      buffer_.clear();
      record_ends_.clear();
      record_start_ = 0;
      throw Error(fmt::format("cannot write {}: {}; the file was cut back to its last whole packet ({} packets)",
                              path_.string(), std::strerror(error), packets_));
    }
    done += static_cast<std::size_t>(n);
  }
  flushed_ += whole;
  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<long>(whole));
  record_start_ = 0;
  record_ends_.clear();
}

void CaptureWriter::close() {
  if (fd_ < 0) return;
  flush();
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw Error(fmt::format("cannot finish {}: {}", path_.string(), std::strerror(errno)));
  }
  fd_ = -1;
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
  commit(false);
}

PcapWriter::~PcapWriter() = default;

void PcapWriter::write(std::int64_t timestamp_ns, std::uint32_t link_type, std::span<const std::uint8_t> data,
                       std::uint32_t wire_length) {
  if (link_type != link_type_)
    throw Error(fmt::format("{}: a pcap file holds one link type ({}), this packet is {} (write pcapng instead)",
                            path().string(), linktype_name(link_type_), linktype_name(link_type)));
  std::int64_t seconds = timestamp_ns / 1'000'000'000;
  std::int64_t rest = timestamp_ns % 1'000'000'000;
  PcapRecordHeader record{
      static_cast<std::uint32_t>(seconds), static_cast<std::uint32_t>(nanosecond_ ? rest : rest / 1000),
      static_cast<std::uint32_t>(data.size()), wire_length ? wire_length : static_cast<std::uint32_t>(data.size())};
  append(&record, sizeof record);
  append(data.data(), data.size());
  commit(true);
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
  commit(false);
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
  commit(false);
  interfaces_.push_back(link_type);
  return static_cast<std::uint32_t>(interfaces_.size() - 1);
}

void PcapngWriter::write(std::int64_t timestamp_ns, std::uint32_t link_type, std::span<const std::uint8_t> data,
                         std::uint32_t wire_length) {
  std::uint32_t interface = interface_for(link_type);
  // Enhanced packet block, written in place: header, data, padding to 4 bytes, trailing length.
  const auto captured = static_cast<std::uint32_t>(data.size());
  const std::uint32_t padding = (4 - captured % 4) % 4;
  const std::uint32_t length = 32 + captured + padding;
  const auto ticks = static_cast<std::uint64_t>(timestamp_ns);
  const std::uint32_t header[7] = {6,
                                   length,
                                   interface,
                                   static_cast<std::uint32_t>(ticks >> 32),
                                   static_cast<std::uint32_t>(ticks),
                                   captured,
                                   wire_length ? wire_length : captured};
  static constexpr std::uint8_t zeros[4] = {};
  append(header, sizeof header);
  append(data.data(), data.size());
  append(zeros, padding);
  append(&length, sizeof length);
  commit(true);
}

}  // namespace trafficid
