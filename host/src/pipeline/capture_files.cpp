#include "pipeline/capture_files.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <map>
#include <unordered_map>

#include "trafficid/error.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

FileFormat format_of_extension(const fs::path& file) {
  return file.extension() == ".pcapng" ? FileFormat::pcapng : FileFormat::pcap;
}

std::string linktype_slug(std::uint32_t link_type) {
  if (!linktype_supported(link_type)) return fmt::format("linktype-{}", link_type);
  std::string slug;
  for (char c : std::string(linktype_name(link_type))) {
    if (std::isalnum(static_cast<unsigned char>(c)))
      slug += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!slug.empty() && slug.back() != '-') slug += '-';
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  return slug;
}

PendingFile::PendingFile(fs::path final_path, FileFormat format, std::uint32_t link_type, bool nanosecond,
                         std::uint32_t snaplen)
    : final_path_(std::move(final_path)) {
  temporary_ = final_path_.parent_path() / ("." + final_path_.filename().string() + ".part");
  if (format == FileFormat::pcapng) writer_ = std::make_unique<PcapngWriter>(temporary_, snaplen);
  else writer_ = std::make_unique<PcapWriter>(temporary_, link_type, nanosecond, snaplen);
}

PendingFile::~PendingFile() {
  try {
    finish();
  } catch (...) {
  }
}

void PendingFile::write(const PacketView& packet) {
  guard([&] { writer_->write(packet.timestamp_ns, packet.link_type, packet.data, packet.wire_length); });
}

void PendingFile::flush() {
  guard([&] { writer_->flush(); });
}

template <class Body>
void PendingFile::guard(Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    // The writer kept a valid file: give it its final name, and that name in the message.
    std::string message = e.what();
    auto at = message.find(temporary_.string());
    if (at != std::string::npos) message.replace(at, temporary_.string().size(), final_path_.string());
    try {
      finish();
    } catch (const Error&) {
    }
    throw Error(message);
  }
}

void PendingFile::finish() {
  if (finished_) return;
  finished_ = true;
  std::string failure;
  try {
    writer_->close();
  } catch (const Error& e) {
    failure = e.what();  // the file was cut back to its last whole packet: still rename it
  }
  std::error_code ec;
  fs::rename(temporary_, final_path_, ec);
  if (ec)
    throw Error(fmt::format("cannot rename {} to {}: {}", temporary_.string(), final_path_.string(), ec.message()));
  if (!failure.empty()) throw Error(failure);
}

namespace {
std::string utc_stamp(std::int64_t ns) {
  auto seconds = static_cast<std::time_t>(ns / 1'000'000'000);
  return fmt::format("{:%Y%m%d%H%M%S}", fmt::gmtime(seconds));
}

struct TupleHash {
  std::size_t operator()(const FiveTuple& t) const { return symmetric_hash(t); }
};
}  // namespace

struct Splitter::Impl {
  SplitOptions options;
  std::map<std::uint64_t, std::unique_ptr<PendingFile>> open;  // by file index
  std::map<std::uint64_t, std::uint64_t> live_flows;           // file index -> flows still going
  std::uint64_t current = 0;
  bool has_current = false;
  std::int64_t block_end = 0;
  struct Flow {
    std::uint64_t file;
    std::int64_t last_ns;
  };
  std::unordered_map<FiveTuple, Flow, TupleHash> flows;
  std::uint64_t since_sweep = 0;
};

Splitter::Splitter(SplitOptions options) : impl_(std::make_unique<Impl>()) { impl_->options = std::move(options); }
Splitter::~Splitter() = default;

void Splitter::add(const PacketView& packet) {
  auto& s = *impl_;
  const auto& o = s.options;
  // Does a packet that starts something new (any packet, or a new flow with --by-flow) need a new file?
  auto current_full = [&] {
    if (!s.has_current) return true;
    if (o.packets_per_file) return s.open.at(s.current)->packets() >= o.packets_per_file;
    return packet.timestamp_ns > s.block_end;  // editcap -i: a packet on the boundary stays
  };
  auto close_if_done = [&](std::uint64_t index) {
    if (index == s.current || s.live_flows[index] > 0) return;
    auto it = s.open.find(index);
    if (it == s.open.end()) return;
    it->second->finish();
    s.open.erase(it);
    s.live_flows.erase(index);
  };
  auto start_file = [&] {
    if (o.interval_ns) {
      // Blocks of interval_ns from the first packet's exact time; empty blocks make no file.
      if (!s.has_current) s.block_end = packet.timestamp_ns + o.interval_ns;
      while (packet.timestamp_ns > s.block_end) s.block_end += o.interval_ns;
    }
    std::uint64_t previous = s.current;
    bool had = s.has_current;
    s.current = next_index_++;
    s.has_current = true;
    // Named like editcap's outputs: PREFIX_NNNNN_YYYYMMDDHHMMSS (first packet, UTC).
    fs::path name = o.prefix.parent_path() / fmt::format("{}_{:05}_{}{}", o.prefix.stem().string(), s.current,
                                                         utc_stamp(packet.timestamp_ns), o.extension);
    s.open.emplace(s.current, std::make_unique<PendingFile>(name, o.format, packet.link_type, o.nanosecond, o.snaplen));
    if (had) close_if_done(previous);
  };

  std::uint64_t target;
  bool flow_packet = o.by_flow && packet.has_ip();
  if (flow_packet) {
    FiveTuple key = canonical(packet.tuple);
    auto it = s.flows.find(key);
    if (it != s.flows.end() && packet.timestamp_ns - it->second.last_ns > o.flow_timeout_ns) {
      // The old flow ended long ago: this is a new one with the same 5-tuple.
      if (--s.live_flows[it->second.file] == 0) close_if_done(it->second.file);
      s.flows.erase(it);
      it = s.flows.end();
    }
    if (it == s.flows.end()) {
      if (current_full()) start_file();
      it = s.flows.emplace(key, Impl::Flow{s.current, packet.timestamp_ns}).first;
      ++s.live_flows[s.current];
    }
    it->second.last_ns = packet.timestamp_ns;
    target = it->second.file;
  } else {
    if (current_full()) start_file();
    target = s.current;
  }
  s.open.at(target)->write(packet);

  // Now and then, end the flows that have been idle past the timeout and close finished files.
  if (o.by_flow && ++s.since_sweep >= 4096) {
    s.since_sweep = 0;
    for (auto it = s.flows.begin(); it != s.flows.end();) {
      if (packet.timestamp_ns - it->second.last_ns > o.flow_timeout_ns) {
        std::uint64_t file = it->second.file;
        it = s.flows.erase(it);
        if (--s.live_flows[file] == 0) close_if_done(file);
      } else {
        ++it;
      }
    }
  }
}

void Splitter::finish() {
  for (auto& [index, file] : impl_->open) file->finish();
  impl_->open.clear();
  impl_->flows.clear();
}

}  // namespace trafficid::host
