// `trafficid convert`, `split` and `capture`: the capture-file tools. All stream packet by packet.
#include <chrono>
#include <csignal>
#include <cstring>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <iostream>
#include <optional>
#include <unistd.h>

#include "pipeline/capture_files.hpp"
#include "pipeline/capture_stage.hpp"
#include "cli/commands.hpp"
#include "pipeline/pipeline.hpp"
#include "runtime/host_log.hpp"
#include "runtime/plugin_registry.hpp"
#include "config/schema_check.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

// The pcap source on one capture file.
PluginHandle<CaptureSource> open_file(const PluginRegistry& registry, const fs::path& file, HostServices& host) {
  if (!fs::is_regular_file(file)) throw Error(fmt::format("{}: no such capture file", file.string()));
  const SourceSpec spec = pcap_source(registry, {file.string()});
  return registry.make<CaptureSource>(*spec.plugin, spec.params, host, spec.instance);
}

// Reports damage of the input; returns the exit status (1 when the input was damaged).
int report_input(const CaptureSource& source, std::uint64_t packets, const std::string& what, bool quiet) {
  auto info = source.files();
  int status = 0;
  for (const auto& f : info)
    if (!f.warning.empty()) {
      std::cerr << "warning: " << f.path << ": " << f.warning << '\n';
      status = 1;
    }
  if (!quiet) std::cerr << fmt::format("{}: {} packets\n", what, packets);
  return status;
}

}  // namespace

int cmd_convert(const GlobalOptions& global, const std::string& in, const std::string& out,
                const std::string& format_name) {
  auto registry = load_plugins(global, true, false);
  HostLog log(log_threshold(global));
  const auto source = open_file(registry, in, log);
  FileFormat format = format_name.empty()       ? format_of_extension(out)
                      : format_name == "pcapng" ? FileFormat::pcapng
                                                : FileFormat::pcap;
  fs::path target = out;

  // pcap holds one link type: a file per link type when the input has several.
  std::vector<std::pair<std::uint32_t, std::unique_ptr<PendingFile>>> outputs;
  auto path_for = [&](std::uint32_t link_type) {
    return target.parent_path() /
           (target.stem().string() + "." + linktype_slug(link_type) + target.extension().string());
  };
  PacketView packet;
  std::uint64_t packets = 0;
  bool nanosecond = false;
  std::uint32_t snaplen = 0;
  while (source([&](CaptureSource& s) { return s.next(packet); })) {
    if (packets++ == 0) {
      auto info = source.get().files().at(0);
      nanosecond = info.resolution_ns < 1000;
      snaplen = info.snaplen;
    }
    PendingFile* file = nullptr;
    for (auto& [type, f] : outputs)
      if (format == FileFormat::pcapng || type == packet.link_type) file = f.get();
    if (!file) {
      fs::path path = outputs.empty() ? target : path_for(packet.link_type);
      outputs.emplace_back(packet.link_type,
                           std::make_unique<PendingFile>(path, format, packet.link_type, nanosecond, snaplen));
      file = outputs.back().second.get();
    }
    file->write(packet);
  }
  int status = report_input(source.get(), packets, in, global.quiet);
  for (auto& [type, f] : outputs) f->finish();
  if (outputs.size() > 1) {
    // Name the first output after its link type too, so that no file claims to be the whole input.
    fs::rename(target, path_for(outputs[0].first));
    for (auto& [type, f] : outputs)
      std::cerr << fmt::format("{}: {} packets of link type {} ({})\n", path_for(type).string(), f->packets(), type,
                               linktype_name(type));
    std::cerr << fmt::format(
        "{} holds {} link types: a pcap file holds one, so each went to its own file "
        "(or convert to .pcapng to keep them in one)\n",
        in, outputs.size());
  } else if (outputs.empty()) {
    std::cerr << "error: " << in << " holds no packets; nothing written\n";
    return 1;
  }
  return status;
}

int cmd_split(const GlobalOptions& global, const SplitRequest& request) {
  if ((request.packets > 0) == (request.seconds > 0)) {
    std::cerr << "error: split needs exactly one of -c PACKETS or -i SECONDS\n";
    return 2;
  }
  auto registry = load_plugins(global, true, false);
  HostLog log(log_threshold(global));
  const auto source = open_file(registry, request.in, log);
  SplitOptions options;
  options.prefix = request.prefix;
  options.packets_per_file = request.packets;
  options.interval_ns = static_cast<std::int64_t>(request.seconds * 1e9);
  options.by_flow = request.by_flow;
  options.flow_timeout_ns = static_cast<std::int64_t>(request.flow_timeout * 1e9);
  fs::path prefix = request.prefix;
  std::unique_ptr<Splitter> splitter;
  PacketView packet;
  std::uint64_t packets = 0;
  while (source([&](CaptureSource& s) { return s.next(packet); })) {
    if (!splitter) {
      auto info = source.get().files().at(0);
      // The prefix's extension (.pcap, .pcapng) picks the format; without one, the input's format is kept.
      auto ext = prefix.extension().string();
      options.format = ext == ".pcapng"          ? FileFormat::pcapng
                       : ext == ".pcap"          ? FileFormat::pcap
                       : info.format == "pcapng" ? FileFormat::pcapng
                                                 : FileFormat::pcap;
      options.nanosecond = info.resolution_ns < 1000;
      options.snaplen = info.snaplen;
      options.extension = prefix.has_extension() ? ext : (options.format == FileFormat::pcapng ? ".pcapng" : ".pcap");
      splitter = std::make_unique<Splitter>(options);
    }
    splitter->add(packet);
    ++packets;
  }
  if (splitter) splitter->finish();
  int status = report_input(source.get(), packets, request.in, global.quiet);
  if (!global.quiet) std::cerr << fmt::format("wrote {} files\n", splitter ? splitter->files_written() : 0);
  return status;
}

namespace {

int list_interfaces() {
  for (const auto& i : capture_interfaces())
    std::cout << fmt::format("{:<16} {}{}{}  {}{}\n", i.name, i.up ? "up" : "down", i.running ? ",running" : "",
                             i.loopback ? ",loopback" : "", fmt::join(i.addresses, " "),
                             i.description.empty() ? "" : "  (" + i.description + ")");
  return 0;
}

// Packets of a live source into rotating pcap files, each valid on disk at every moment.
class Recorder {
 public:
  Recorder(const CaptureRequest& request, CaptureSource& source, const SourceFileInfo& live)
      : request_(request), source_(source), live_(live), nanosecond_(live.resolution_ns < 1000) {}
  void write(const PacketView& packet) {
    if (rotate_due(packet)) {
      if (file_) {
        file_->finish();
        finished_packets_ += file_->packets();
      }
      file_started_ns_ = packet.timestamp_ns;
      auto seconds = static_cast<std::time_t>(packet.timestamp_ns / 1'000'000'000);
      fs::path name = fs::path(request_.directory) /
                      fmt::format("{}_{:05}_{:%Y%m%d%H%M%S}.pcap", request_.prefix, index_++, fmt::gmtime(seconds));
      file_ = std::make_unique<PendingFile>(name, FileFormat::pcap, packet.link_type, nanosecond_, live_.snaplen);
    }
    file_->write(packet);
    auto now = std::chrono::steady_clock::now();
    if (now - last_flush_ >= std::chrono::seconds(1)) {
      last_flush_ = now;
      file_->flush();  // a full disk is found within a second, and a kill loses a second at most
    }
    if (request_.progress_seconds > 0 &&
        std::chrono::duration<double>(now - last_progress_).count() >= request_.progress_seconds) {
      last_progress_ = now;
      progress(false);
    }
  }
  void finish() {
    if (file_) file_->finish();
  }
  void progress(bool final) {
    auto info = source_.files().at(0);
    const std::uint64_t written = finished_packets_ + (file_ ? file_->packets() : 0);  // on disk or about to be
    std::cerr << fmt::format(
        "{}capture {}: {} captured, {} written, {} dropped by the kernel, {} by the interface, "
        "{} file{}\n",
        final ? "" : "  ", request_.interface, info.packets, written, info.dropped_kernel, info.dropped_interface,
        index_, index_ == 1 ? "" : "s");
  }

 private:
  bool rotate_due(const PacketView& p) const {
    if (!file_) return true;
    if (request_.rotate_packets && file_->packets() >= request_.rotate_packets) return true;
    if (request_.rotate_megabytes > 0 && static_cast<double>(file_->bytes()) >= request_.rotate_megabytes * 1e6)
      return true;
    return request_.rotate_seconds > 0 &&
           static_cast<double>(p.timestamp_ns - file_started_ns_) >= request_.rotate_seconds * 1e9;
  }

  const CaptureRequest& request_;
  CaptureSource& source_;
  SourceFileInfo live_;
  bool nanosecond_;
  std::unique_ptr<PendingFile> file_;
  std::uint64_t index_ = 0, finished_packets_ = 0;  // packets in the files already finished
  std::int64_t file_started_ns_ = 0;
  std::chrono::steady_clock::time_point last_progress_ = std::chrono::steady_clock::now(), last_flush_ = last_progress_;
};

}  // namespace

int cmd_capture(const GlobalOptions& global, const CaptureRequest& request) {
  if (request.list_interfaces) return list_interfaces();
  if (request.interface.empty() || request.directory.empty()) {
    std::cerr << "error: capture needs -i INTERFACE and -w DIR (or --list-interfaces)\n";
    return 2;
  }
  fs::path directory = request.directory;
  std::error_code ec;
  fs::create_directories(directory, ec);
  if (ec || ::access(directory.c_str(), W_OK) != 0)
    throw Error(fmt::format("cannot write to {}: {} (choose another -w folder, or fix its permissions)",
                            directory.string(), ec ? ec.message() : std::strerror(errno)));
  auto registry = load_plugins(global, true, false);
  SourceSpec spec = live_source(registry, request.interface, request.count, request.duration);
  spec.params["filter"] = request.filter;
  spec.params["snaplen"] = request.snaplen;
  spec.params["promiscuous"] = request.promiscuous;
  spec.params["buffer_size_mb"] = request.buffer_size_mb;
  install_stop_handlers();
  HostLog log(log_threshold(global));
  const auto source = registry.make<CaptureSource>(*spec.plugin, spec.params, log, "live:" + request.interface);
  const SourceFileInfo live = source([](CaptureSource& s) { return s.files(); }).at(0);
  // Like tcpdump's "listening on": from here on the kernel keeps every matching packet for us, so
  // a script (or a person) knows when traffic sent will be captured.
  if (!global.quiet)
    std::cerr << fmt::format("capture {}: listening, link type {}, snapshot length {} bytes{}\n", request.interface,
                             linktype_name(live.link_types.at(0)), live.snaplen,
                             request.filter.empty() ? "" : ", filter '" + request.filter + "'");
  Recorder recorder(request, source.get(), live);
  PacketView packet;
  std::string failure;
  try {
    while (source([&](CaptureSource& s) { return s.next(packet); })) recorder.write(packet);
  } catch (const Error& e) {
    failure = e.what();  // a full disk: keep every file valid, report, fail
  }
  try {
    recorder.finish();
  } catch (const Error& e) {
    if (failure.empty()) failure = e.what();
  }
  recorder.progress(true);
  if (!failure.empty()) {
    std::cerr << "error: " << failure << '\n';
    return 1;
  }
  return 0;
}

}  // namespace trafficid::host
