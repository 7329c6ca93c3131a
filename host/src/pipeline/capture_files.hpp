// Capture-file tools that stream: conversion between pcap and pcapng, splitting by packet count
// or time (optionally keeping each flow whole), and the rotating writer of `trafficid capture`.
// Each output is written under a temporary name and renamed once complete, so a folder never
// holds a half-written capture.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "trafficid/capture.hpp"
#include "trafficid/pcap_writer.hpp"

namespace trafficid::host {

enum class FileFormat { pcap, pcapng };

// "out.pcapng" -> pcapng; anything else -> pcap.
FileFormat format_of_extension(const std::filesystem::path& file);
// "Ethernet" -> "ethernet", "Linux cooked (SLL)" -> "linux-cooked-sll", unknown -> "linktype-147".
std::string linktype_slug(std::uint32_t link_type);

// A capture file being written to `final_path` through a temporary name beside it.
class PendingFile {
 public:
  PendingFile(std::filesystem::path final_path, FileFormat format, std::uint32_t link_type, bool nanosecond,
              std::uint32_t snaplen);
  ~PendingFile();  // an unfinished file is closed and renamed as well: what it holds is valid
  void write(const PacketView& packet);
  void finish();  // close and rename; idempotent
  void flush();   // what it holds to the disk; on failure (a full disk) as write()
  std::uint64_t packets() const { return writer_->packets(); }
  std::uint64_t bytes() const { return writer_->bytes(); }
  const std::filesystem::path& path() const { return final_path_; }

 private:
  // Runs a write; on failure the writer kept a valid file: it is renamed, and the Error names it.
  template <class Body>
  void guard(Body&& body);
  std::filesystem::path final_path_, temporary_;
  std::unique_ptr<CaptureWriter> writer_;
  bool finished_ = false;
};

struct SplitOptions {
  FileFormat format = FileFormat::pcap;
  bool nanosecond = false;
  std::uint32_t snaplen = 262144;
  std::filesystem::path prefix;                    // folder and stem of the outputs
  std::string extension;                           // ".pcap", ".pcapng" or "" (as editcap: the prefix's own)
  std::uint64_t packets_per_file = 0;              // -c
  std::int64_t interval_ns = 0;                    // -i
  bool by_flow = false;                            // keep each flow in the file where it started
  std::int64_t flow_timeout_ns = 120'000'000'000;  // a flow idle this long has ended
};

class Splitter {
 public:
  explicit Splitter(SplitOptions options);
  ~Splitter();
  void add(const PacketView& packet);
  void finish();
  std::uint64_t files_written() const { return next_index_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::uint64_t next_index_ = 0;
};

}  // namespace trafficid::host
