// The `pcap` capture source: .pcap (micro- and nanosecond, either byte order) and .pcapng files
// through libpcap, files or folders (recursively). Damage keeps the packets before it and warns
// with the byte offset; pcapng files with interfaces of different link types or snapshot lengths,
// which libpcap stops at, are finished with our own pcapng reader.
#include <algorithm>
#include <cstring>
#include <fnmatch.h>
#include <stdio_ext.h>
#include <fmt/format.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <fmt/std.h>
#include <memory>
#include <optional>
#include <pcap/pcap.h>

#include "pcapng_reader.hpp"
#include "trafficid/sdk.hpp"

namespace trafficid::pcap_plugin {
namespace {

namespace fs = std::filesystem;

enum class Format { pcap, pcap_ns, pcapng, unknown };

Format sniff(const fs::path& file) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (!f) return Format::unknown;
  std::uint8_t m[4] = {};
  std::size_t got = std::fread(m, 1, 4, f);
  std::fclose(f);
  if (got < 4) return Format::unknown;
  std::uint32_t le =
      std::uint32_t{m[0]} | std::uint32_t{m[1]} << 8 | std::uint32_t{m[2]} << 16 | std::uint32_t{m[3]} << 24;
  if (le == 0xa1b2c3d4 || le == 0xd4c3b2a1) return Format::pcap;
  if (le == 0xa1b23c4d || le == 0x4d3cb2a1) return Format::pcap_ns;
  if (le == 0x0a0d0d0a) return Format::pcapng;
  return Format::unknown;
}

const char* format_name(Format f) {
  switch (f) {
    case Format::pcap: return "pcap";
    case Format::pcap_ns: return "pcap-ns";
    case Format::pcapng: return "pcapng";
    default: return "unknown";
  }
}

// libpcap reports DLT_ values; files and the SDK speak LINKTYPE_ values.
std::uint32_t linktype_of_dlt(int dlt) {
  if (dlt == linktype::raw_dlt || dlt == linktype::raw_dlt_bsd) return linktype::raw;
  return static_cast<std::uint32_t>(dlt);
}

struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};

// The open file's bytes on their way to libpcap (a stdio stream of ours, fopencookie): hashed
// (XXH3-128) while they are in the cache, so the host does not read the file a second time for
// its content hash; that second pass from memory cost a fifth of `trafficid prepro`'s CPU on a
// 1 GB capture. Only forward reads: a seek other than asking the position breaks the hash.
class HashingFile {
 public:
  ~HashingFile() {
    if (fd_ >= 0) ::close(fd_);
    if (state_) XXH3_freeState(state_);
  }
  // A stdio stream over `file` that hashes what it reads (closing it closes the file), or null.
  std::FILE* open(const fs::path& file) {
    fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd_ < 0 || ::fstat(fd_, &st) != 0) return nullptr;
    size_ = static_cast<std::uint64_t>(st.st_size);
    state_ = XXH3_createState();
    if (!state_ || XXH3_128bits_reset(state_) != XXH_OK) return nullptr;
    cookie_io_functions_t io{&HashingFile::read, nullptr, &HashingFile::seek, &HashingFile::close};
    return ::fopencookie(this, "rb", io);
  }
  // The content hash when every byte of the file went through, else "".
  std::string digest() const {
    if (broken_ || hashed_ != size_ || !state_) return "";
    const XXH128_hash_t d = XXH3_128bits_digest(state_);
    return content_hash_text(d.high64, d.low64);
  }

 private:
  static ssize_t read(void* cookie, char* buffer, std::size_t size) {
    auto* self = static_cast<HashingFile*>(cookie);
    ssize_t got;
    do got = ::read(self->fd_, buffer, size);
    while (got < 0 && errno == EINTR);
    if (got > 0) {
      XXH3_128bits_update(self->state_, buffer, static_cast<std::size_t>(got));
      self->hashed_ += static_cast<std::uint64_t>(got);
    }
    return got;
  }
  static int seek(void* cookie, off64_t* offset, int whence) {
    auto* self = static_cast<HashingFile*>(cookie);
    if (whence == SEEK_CUR && *offset == 0 && !self->broken_) {  // ftell: the bytes read so far
      *offset = static_cast<off64_t>(self->hashed_);
      return 0;
    }
    self->broken_ = true;
    const off64_t at = ::lseek64(self->fd_, *offset, whence);
    if (at < 0) return -1;
    *offset = at;
    return 0;
  }
  static int close(void* cookie) {
    auto* self = static_cast<HashingFile*>(cookie);
    const int rc = ::close(self->fd_);
    self->fd_ = -1;
    return rc;
  }
  int fd_ = -1;
  XXH3_state_t* state_ = nullptr;
  std::uint64_t size_ = 0, hashed_ = 0;
  bool broken_ = false;
};

class PcapSource final : public CaptureSource {
 public:
  PcapSource(const PluginArgs& args) : host_(args.host) {
    const auto& p = args.params;
    recursive_ = p.at("recursive").get<bool>();
    extensions_ = p.at("extensions").get<std::vector<std::string>>();
    exclude_ = p.at("exclude").get<std::vector<std::string>>();
    for (const auto& path : p.at("paths").get<std::vector<std::string>>()) add_path(path);
    if (files_.empty())
      throw Error(fmt::format("no capture files found in {} (looked for {})", p.at("paths").dump(),
                              fmt::join(extensions_, ", ")));
  }

  bool next(PacketView& packet) override {
    while (true) {
      if (!open_ && !open_next()) return false;
      if (read_packet(packet)) {
        auto& info = infos_.back();
        packet.file_id = info.id;
        packet.index = info.packets;
        info.count(packet);
        parse_packet(packet);
        return true;
      }
      close_current();
    }
  }

  std::vector<SourceFileInfo> files() const override { return infos_; }
  std::optional<std::vector<std::string>> planned_files() const override {
    std::vector<std::string> paths;
    for (const auto& f : files_) paths.push_back(f.string());
    return paths;
  }

 private:
  void add_path(const fs::path& path) {
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) {
      files_.push_back(path);  // named explicitly: read whatever its extension
    } else if (fs::is_directory(path, ec)) {
      std::vector<fs::path> found;
      auto consider = [&](const fs::directory_entry& e) {
        if (!e.is_regular_file()) return;
        auto name = e.path().filename().string();
        for (const auto& pattern : exclude_)
          if (::fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return;
        for (const auto& ext : extensions_)
          if (name.size() >= ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0) {
            found.push_back(e.path());
            return;
          }
      };
      if (recursive_)
        for (const auto& e : fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec))
          consider(e);
      else
        for (const auto& e : fs::directory_iterator(path, ec)) consider(e);
      std::sort(found.begin(), found.end());
      files_.insert(files_.end(), found.begin(), found.end());
    } else {
      throw Error(fmt::format("{}: no such file or folder (paths are relative to the experiment file)", path.string()));
    }
  }

  bool open_next() {
    while (next_file_ < files_.size()) {
      const fs::path& file = files_[next_file_++];
      SourceFileInfo info;
      info.id = static_cast<std::uint32_t>(infos_.size());
      info.path = file.string();
      Format format = sniff(file);
      info.format = format_name(format);
      info.resolution_ns = format == Format::pcap_ns ? 1 : format == Format::pcapng ? pcapng_resolution_ns(file) : 1000;
      infos_.push_back(info);
      if (format == Format::unknown) {
        std::error_code ec;
        if (::access(file.c_str(), R_OK) != 0)
          infos_.back().warning =
              fmt::format("cannot read it ({}): check its permissions; skipped", std::strerror(errno));
        else if (fs::file_size(file, ec) == 0 && !ec)
          infos_.back().warning = "an empty file (0 bytes): no capture header, no packets; skipped";
        else infos_.back().warning = "not a pcap or pcapng file (unknown magic number); skipped";
        continue;
      }
      char errbuf[PCAP_ERRBUF_SIZE] = "";
      // Our own FILE with a large buffer: libpcap's reads then cost few system calls.
      hashing_ = std::make_unique<HashingFile>();
      std::FILE* stream = hashing_->open(file);
      infos_.back().hashing = stream != nullptr;
      if (!read_buffer_) read_buffer_ = std::make_unique<char[]>(read_buffer_size);
      if (stream) {
        std::setvbuf(stream, read_buffer_.get(), _IOFBF, read_buffer_size);
        // Only this source's thread reads it: without stdio's lock on each of libpcap's two freads
        // per packet, reading a 1 GB capture takes a fifth less time.
        __fsetlocking(stream, FSETLOCKING_BYCALLER);
      }
      pcap_.reset(stream ? pcap_fopen_offline_with_tstamp_precision(stream, PCAP_TSTAMP_PRECISION_NANO, errbuf)
                         : nullptr);
      if (!stream) std::snprintf(errbuf, sizeof errbuf, "%s", std::strerror(errno));
      else if (!pcap_) std::fclose(stream);  // libpcap closes it only when it took it
      if (!pcap_) {
        if (format == Format::pcapng) {  // e.g. the first interfaces already disagree
          switch_to_own_reader(0, errbuf);
          open_ = true;
          return true;
        }
        infos_.back().warning = fmt::format("cannot be read: {}", errbuf);
        infos_.back().damaged_at = 0;
        continue;
      }
      link_type_ = linktype_of_dlt(pcap_datalink(pcap_.get()));
      infos_.back().snaplen = static_cast<std::uint32_t>(pcap_snapshot(pcap_.get()));
      offset_ = 24;
      format_ = format;
      open_ = true;
      return true;
    }
    return false;
  }

  void switch_to_own_reader(std::uint64_t skip, const std::string& libpcap_error) {
    pcap_.reset();
    infos_.back().hashing = false;  // read again from its start by another reader: not hashed
    own_ = std::make_unique<PcapngReader>(files_[next_file_ - 1]);
    own_skip_ = skip;
    host_.log(LogLevel::debug, fmt::format("{}: libpcap stopped ({}); reading on with trafficid's pcapng reader",
                                           infos_.back().path, libpcap_error));
  }

  bool read_packet(PacketView& packet) {
    if (own_) return read_own(packet);
    pcap_pkthdr* header = nullptr;
    const u_char* data = nullptr;
    int rc = pcap_next_ex(pcap_.get(), &header, &data);
    if (rc == 1) {
      packet.timestamp_ns = static_cast<std::int64_t>(header->ts.tv_sec) * 1'000'000'000 + header->ts.tv_usec;
      packet.link_type = link_type_;
      packet.wire_length = header->len;
      packet.data = {data, header->caplen};
      offset_ += 16 + header->caplen;
      return true;
    }
    if (rc == PCAP_ERROR_BREAK) {  // clean end of file
      infos_.back().content_hash = hashing_->digest();
      return false;
    }
    std::string error = pcap_geterr(pcap_.get());
    auto& info = infos_.back();
    if (format_ == Format::pcapng) {
      // libpcap refuses interfaces that differ from the first one; our reader does not.
      switch_to_own_reader(info.packets, error);
      return read_own(packet);
    }
    info.damaged_at = offset_;
    info.warning = fmt::format("damaged at byte {} after {} good packets: {}; the packets before it were kept", offset_,
                               info.packets, error);
    return false;
  }

  bool read_own(PacketView& packet) {
    PcapngPacket p;
    while (own_->next(p)) {
      if (own_skip_ > 0) {  // already delivered through libpcap
        --own_skip_;
        continue;
      }
      packet.timestamp_ns = p.timestamp_ns;
      packet.link_type = p.link_type;
      packet.wire_length = p.wire_length;
      packet.data = {p.data->data(), p.data->size()};
      return true;
    }
    if (!own_->error().empty()) {
      auto& info = infos_.back();
      info.damaged_at = own_->damage_offset();
      info.warning = fmt::format("damaged at byte {} after {} good packets: {}; the packets before it were kept",
                                 own_->damage_offset(), info.packets, own_->error());
    }
    return false;
  }

  void close_current() {
    pcap_.reset();
    own_.reset();
    open_ = false;
  }

  HostServices& host_;
  bool recursive_ = true;
  std::vector<std::string> extensions_;
  std::vector<fs::path> files_;
  std::size_t next_file_ = 0;
  std::vector<SourceFileInfo> infos_;
  static constexpr std::size_t read_buffer_size = 1 << 20;
  std::vector<std::string> exclude_;
  std::unique_ptr<char[]> read_buffer_;   // the open file's stdio buffer: declared before pcap_, freed after it
  std::unique_ptr<HashingFile> hashing_;  // the open file's hashing reader: also outlives pcap_
  std::unique_ptr<pcap_t, PcapCloser> pcap_;
  std::unique_ptr<PcapngReader> own_;
  std::uint64_t own_skip_ = 0;
  bool open_ = false;
  Format format_ = Format::unknown;
  std::uint32_t link_type_ = 0;
  std::int64_t offset_ = 0;
};

Schema schema() {
  return {
      ParamSpec::list("paths", ParamType::path_list, nullptr,
                      "capture files or folders to read (relative to the experiment file)")
          .required()
          .existing(),
      ParamSpec::boolean("recursive", true, "descend into sub-folders of the folders named in paths"),
      ParamSpec::list("extensions", ParamType::string_list, Json::array({".pcap", ".pcapng", ".cap"}),
                      "file name endings read from folders (files named directly are always read)"),
      ParamSpec::list(
          "exclude", ParamType::string_list, Json::array(),
          "glob patterns of file names left out of folders (\"fuzz-*\"); files named directly are always read"),
  };
}

}  // namespace
}  // namespace trafficid::pcap_plugin

TRAFFICID_DEFINE_PLUGIN(trafficid::pcap_plugin::PcapSource, trafficid::PluginKind::capture, "pcap", "1.0.0",
                        "reads .pcap and .pcapng files or folders of them through libpcap", "paths",
                        trafficid::pcap_plugin::schema)
