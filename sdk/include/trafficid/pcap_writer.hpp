// Streaming writers of capture files: classic pcap (one link type, micro- or nanosecond
// timestamps) and pcapng (an interface per link type, nanosecond timestamps). On a write error
// (a full disk) the file is cut back to its last whole packet before the error is thrown, so what
// is on disk stays a valid capture.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "trafficid/export.hpp"

namespace trafficid {

class TRAFFICID_SDK_API CaptureWriter {
 public:
  virtual ~CaptureWriter();
  CaptureWriter(const CaptureWriter&) = delete;
  CaptureWriter& operator=(const CaptureWriter&) = delete;
  // wire_length 0 means "as captured".
  virtual void write(std::int64_t timestamp_ns, std::uint32_t link_type, std::span<const std::uint8_t> data,
                     std::uint32_t wire_length = 0) = 0;
  void close();  // flushes; throws Error naming the file on a write failure
  // Writes the whole records held so far (a live capture does once a second, so a full disk is
  // found at once and little is held in memory). On a write failure the file is cut back to its
  // last whole packet, closed, and an Error names it.
  void flush();
  std::uint64_t packets() const { return packets_; }
  std::uint64_t bytes() const { return flushed_ + buffer_.size(); }  // whole records written so far
  const std::filesystem::path& path() const { return path_; }

 protected:
  explicit CaptureWriter(const std::filesystem::path& file);
  void append(const void* data, std::size_t size);  // part of a record
  void commit(bool packet);                         // the record appended since the last commit is whole

 private:
  int fd_ = -1;
  std::filesystem::path path_;
  std::vector<std::uint8_t> buffer_;  // our own buffer: after a failed write we know what reached the disk
  std::vector<std::pair<std::uint64_t, bool>> record_ends_;  // in the buffer: (file offset, is a packet)
  std::size_t record_start_ = 0;                             // in buffer_: where the record being appended begins
  std::uint64_t flushed_ = 0;
  std::uint64_t packets_ = 0;
};

class TRAFFICID_SDK_API PcapWriter final : public CaptureWriter {
 public:
  PcapWriter(const std::filesystem::path& file, std::uint32_t link_type, bool nanosecond = true,
             std::uint32_t snaplen = 262144);
  ~PcapWriter() override;
  // Throws Error when `link_type` differs from the file's: a pcap file holds one link type.
  void write(std::int64_t timestamp_ns, std::uint32_t link_type, std::span<const std::uint8_t> data,
             std::uint32_t wire_length = 0) override;
  // The file's own link type.
  void write(std::int64_t timestamp_ns, std::span<const std::uint8_t> data, std::uint32_t wire_length = 0) {
    write(timestamp_ns, link_type_, data, wire_length);
  }
  std::uint32_t link_type() const { return link_type_; }

 private:
  std::uint32_t link_type_;
  bool nanosecond_;
};

class TRAFFICID_SDK_API PcapngWriter final : public CaptureWriter {
 public:
  explicit PcapngWriter(const std::filesystem::path& file, std::uint32_t snaplen = 262144);
  ~PcapngWriter() override;
  void write(std::int64_t timestamp_ns, std::uint32_t link_type, std::span<const std::uint8_t> data,
             std::uint32_t wire_length = 0) override;

 private:
  std::uint32_t interface_for(std::uint32_t link_type);
  std::uint32_t snaplen_;
  std::vector<std::uint32_t> interfaces_;  // link type of each interface description block
};

}  // namespace trafficid
