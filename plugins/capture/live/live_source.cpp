// The `live` capture source: packets from a network interface through libpcap, promiscuous by
// default (SPAN ports), with a BPF filter, snapshot length, kernel buffer size, and limits by
// packet count or duration. Polls the host's stop flag so SIGINT/SIGTERM end it cleanly.
#include <chrono>
#include <poll.h>
#include <thread>
#include <fmt/format.h>
#include <limits>
#include <pcap/pcap.h>

#include "trafficid/sdk.hpp"

namespace trafficid::live {
namespace {

struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};

std::uint32_t linktype_of_dlt(int dlt) {
  if (dlt == linktype::raw_dlt || dlt == linktype::raw_dlt_bsd) return linktype::raw;
  return static_cast<std::uint32_t>(dlt);
}

class LiveSource final : public CaptureSource {
 public:
  explicit LiveSource(const PluginArgs& args) : host_(args.host) {
    const auto& p = args.params;
    interface_ = p.at("interface").get<std::string>();
    count_ = static_cast<std::uint64_t>(p.at("count").get<std::int64_t>());
    duration_ = p.at("duration").get<double>();
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    pcap_.reset(pcap_create(interface_.c_str(), errbuf));
    if (!pcap_) throw Error(fmt::format("cannot open interface '{}': {}", interface_, errbuf));
    pcap_set_snaplen(pcap_.get(), static_cast<int>(p.at("snaplen").get<std::int64_t>()));
    pcap_set_promisc(pcap_.get(), p.at("promiscuous").get<bool>() ? 1 : 0);
    // libpcap takes the size in bytes as an int (and silently ignores one <= 0): the schema keeps
    // it below 2 GiB, and the product is formed in 64 bits.
    const std::int64_t buffer_bytes = p.at("buffer_size_mb").get<std::int64_t>() * (std::int64_t{1} << 20);
    if (buffer_bytes <= 0 || buffer_bytes > std::numeric_limits<int>::max())
      throw Error(fmt::format("capture {}: buffer_size_mb {} is beyond libpcap's 2047 MiB", interface_,
                              p.at("buffer_size_mb").get<std::int64_t>()));
    pcap_set_buffer_size(pcap_.get(), static_cast<int>(buffer_bytes));
    pcap_set_timeout(pcap_.get(), 100);  // a ring block is handed over at most 100 ms after its first packet
    pcap_set_immediate_mode(pcap_.get(), p.at("immediate").get<bool>() ? 1 : 0);
    nanosecond_ = pcap_set_tstamp_precision(pcap_.get(), PCAP_TSTAMP_PRECISION_NANO) == 0;
    activate();
    std::string filter = p.at("filter").get<std::string>();
    if (!filter.empty()) {
      bpf_program program{};
      if (pcap_compile(pcap_.get(), &program, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
        throw Error(fmt::format("bad capture filter '{}': {} (the syntax is tcpdump's: man 7 pcap-filter)", filter,
                                pcap_geterr(pcap_.get())));
      int rc = pcap_setfilter(pcap_.get(), &program);
      pcap_freecode(&program);
      if (rc != 0) throw Error(fmt::format("cannot apply filter '{}': {}", filter, pcap_geterr(pcap_.get())));
    }
    // Non-blocking reads, waited for here with poll(): a blocking read can sleep past the stop.
    // With TPACKET_V3, libpcap polls without a timeout once the ring holds no block in progress
    // (the 100 ms timeout is the kernel's, per block), and it restarts that poll when a signal
    // interrupts it: after the last packet before Ctrl-C, the capture never woke up (seen in
    // live_capture.sh's SIGINT step, now and then).
    char nonblock_error[PCAP_ERRBUF_SIZE] = "";
    if (pcap_setnonblock(pcap_.get(), 1, nonblock_error) != 0)
      throw Error(fmt::format("cannot read '{}' without blocking: {}", interface_, nonblock_error));
    fd_ = pcap_get_selectable_fd(pcap_.get());
    info_.path = "live:" + interface_;
    info_.format = "live";
    info_.link_types = {linktype_of_dlt(pcap_datalink(pcap_.get()))};
    info_.resolution_ns = nanosecond_ ? 1 : 1000;
    info_.snaplen = static_cast<std::uint32_t>(pcap_snapshot(pcap_.get()));
    started_ = std::chrono::steady_clock::now();
  }

  bool next(PacketView& packet) override {
    if (!pcap_) return false;
    while (true) {
      if ((count_ && info_.packets >= count_) ||
          (duration_ > 0 &&
           std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count() >= duration_)) {
        finish();
        return false;
      }
      if (host_.stop_requested() && !draining_) {
        // Stop, but first take what the kernel already holds: nothing it delivered is lost. With
        // TPACKET_V3 the packets of the ring's current block only become readable once the block's
        // timeout (100 ms) retires it, and on a busy machine packets sent before the stop can still
        // wait in the network stack's backlog: the drain ends after 300 ms without a packet, and
        // at most 2 s after the stop if traffic never pauses.
        draining_ = true;
        drain_started_ = std::chrono::steady_clock::now();
        drain_until_ = drain_started_ + std::chrono::milliseconds(300);
      }
      if (draining_ && std::chrono::steady_clock::now() >= drain_until_) {
        finish();
        return false;
      }
      pcap_pkthdr* header = nullptr;
      const u_char* data = nullptr;
      int rc = pcap_next_ex(pcap_.get(), &header, &data);
      if (rc == 0) {  // nothing readable yet: wait a little, then look at the limits and the stop again
        if (draining_ || fd_ < 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));  // draining: until drain_until_
        } else {
          pollfd ready{fd_, POLLIN, 0};
          ::poll(&ready, 1, 100);  // the ring's next block, or 100 ms
        }
        continue;
      }
      if (rc == PCAP_ERROR_BREAK) {
        finish();
        return false;
      }
      if (rc < 0) {
        std::string error = pcap_geterr(pcap_.get());
        finish();
        throw Error(fmt::format("capture on '{}' failed: {}", interface_, error));
      }
      if (draining_)
        drain_until_ = std::min(std::chrono::steady_clock::now() + std::chrono::milliseconds(300),
                                drain_started_ + std::chrono::seconds(2));
      packet.timestamp_ns = static_cast<std::int64_t>(header->ts.tv_sec) * 1'000'000'000 +
                            static_cast<std::int64_t>(header->ts.tv_usec) * (nanosecond_ ? 1 : 1000);
      packet.link_type = info_.link_types[0];
      packet.wire_length = header->len;
      packet.data = {data, header->caplen};
      packet.file_id = 0;
      packet.index = info_.packets;
      parse_packet(packet);
      info_.count(packet);
      return true;
    }
  }

  std::vector<SourceFileInfo> files() const override {
    auto info = info_;
    if (pcap_) read_stats(info);
    return {info};
  }

 private:
  void activate() {
    int rc = pcap_activate(pcap_.get());
    if (rc > 0) host_.warn(fmt::format("interface '{}': {}", interface_, pcap_geterr(pcap_.get())));
    if (rc >= 0) return;
    std::string detail = pcap_geterr(pcap_.get());
    switch (rc) {
      case PCAP_ERROR_NO_SUCH_DEVICE:
        throw Error(fmt::format("no such interface '{}' (interfaces: {})", interface_, interface_names()));
      case PCAP_ERROR_PERM_DENIED:
      case PCAP_ERROR_PROMISC_PERM_DENIED:
        throw Error(fmt::format(
            "no permission to capture on '{}' ({}): run as root, or grant the capture capabilities once with "
            "`sudo setcap cap_net_raw,cap_net_admin=eip $(command -v trafficid)`",
            interface_, detail));
      case PCAP_ERROR_IFACE_NOT_UP:
        throw Error(
            fmt::format("interface '{}' is down (bring it up with `ip link set {} up`)", interface_, interface_));
      default: throw Error(fmt::format("cannot capture on '{}': {}", interface_, detail));
    }
  }

  void read_stats(SourceFileInfo& info) const {
    pcap_stat stats{};
    if (pcap_stats(pcap_.get(), &stats) == 0) {
      info.received = stats.ps_recv;
      info.dropped_kernel = stats.ps_drop;
      info.dropped_interface = stats.ps_ifdrop;
    }
  }

  void finish() {
    if (!pcap_) return;
    read_stats(info_);
    pcap_.reset();
  }

  HostServices& host_;
  std::string interface_;
  std::uint64_t count_ = 0;
  double duration_ = 0;
  bool nanosecond_ = false;
  bool draining_ = false;
  int fd_ = -1;  // the capture's file descriptor for poll(), -1 if it has none
  std::chrono::steady_clock::time_point drain_started_{}, drain_until_{};
  std::unique_ptr<pcap_t, PcapCloser> pcap_;
  SourceFileInfo info_;
  std::chrono::steady_clock::time_point started_;
};

Schema schema() {
  return {
      ParamSpec::string("interface", "", "network interface to capture on (trafficid capture --list-interfaces)")
          .required(),
      ParamSpec::string("filter", "", "BPF capture filter, tcpdump syntax (empty: everything)"),
      ParamSpec::integer("snaplen", 262144, "bytes kept of each packet").range(64, 262144),
      ParamSpec::boolean("promiscuous", true, "capture traffic not addressed to this host (SPAN ports)"),
      ParamSpec::integer("buffer_size_mb", 32, "kernel capture buffer; larger drops less in bursts").range(1, 2047),
      ParamSpec::boolean("immediate", false, "deliver each packet at once instead of in batches"),
      ParamSpec::integer("count", 0, "stop after this many packets (0: no limit)").range(0, std::nullopt),
      ParamSpec::real("duration", 0.0, "stop after this many seconds (0: no limit)").range(0, std::nullopt),
  };
}

}  // namespace
}  // namespace trafficid::live

TRAFFICID_DEFINE_PLUGIN(trafficid::live::LiveSource, trafficid::PluginKind::capture, "live", "1.0.0",
                        "captures from a network interface through libpcap", "interface", trafficid::live::schema)
