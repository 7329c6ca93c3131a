// The `ndpi` labeler: nDPI 4.2 over bidirectional flows, handled the way Debian's ndpiReader
// handles them so that labels agree with it: a flow is keyed by VLAN, protocol and its two
// endpoints; non-first IPv4 fragments are skipped; each packet goes to nDPI until the protocol is
// known and no extra dissection is possible, or until 80 TCP / 24 UDP packets; then nDPI gives up
// (guessing by port). ndpiReader practically never expires a flow while it reads a file, so by
// default neither does this labeler (flows end with their input: 100% agreement on nDPI's suite);
// idle and active timeouts and TCP teardown are there for captures with millions of flows.
// nDPI's headers define PACKAGE, VERSION, HAVE_*: they are included in this file only.
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <memory>
#include <unordered_map>

#include "flow_table.hpp"

extern "C" {
#include <ndpi/ndpi_api.h>
}

#include "trafficid/sdk.hpp"

namespace trafficid::ndpi_labeler {
namespace {

struct ModuleDeleter {
  void operator()(ndpi_detection_module_struct* m) const { ndpi_exit_detection_module(m); }
};
struct FlowDeleter {
  void operator()(ndpi_flow_struct* f) const { ndpi_flow_free(f); }
};

struct Key {
  FiveTuple tuple;  // canonical
  std::uint16_t vlan = 0;
  friend bool operator==(const Key&, const Key&) = default;
};
// The key is canonical already, so its hash need not be symmetric (symmetric_hash costs 14
// multiplications): five words, each multiplied in, then a finaliser that brings the high bits
// (which every input bit reached) down to the low ones (the home bucket).
struct KeyHash {
  std::uint64_t operator()(const Key& k) const {
    std::uint64_t w[4];
    std::memcpy(w, k.tuple.src.bytes.data(), 16);
    std::memcpy(w + 2, k.tuple.dst.bytes.data(), 16);
    const std::uint64_t rest = (std::uint64_t{k.tuple.src_port} << 48) | (std::uint64_t{k.tuple.dst_port} << 32) |
                               (std::uint64_t{k.vlan} << 16) | (std::uint64_t{k.tuple.protocol} << 8) |
                               (std::uint64_t{k.tuple.src.version} << 4) | k.tuple.dst.version;
    std::uint64_t h = 0x9e3779b97f4a7c15ull;
    for (std::uint64_t v : {w[0], w[1], w[2], w[3], rest}) h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 29);
  }
};

// A flow, as small as it can be kept: a file's flows all stay until its end (ndpiReader's
// semantics), most of them long decided, so a decided flow holds only its counters, its
// end-of-connection flags and its labels. nDPI's 688-byte state (and what it allocated) is freed at
// the decision; the five label names, shared by thousands of flows, are one index into the
// labeler's table of the combinations met; the strings only this flow has (server name, JA3s) are
// one string. 120 bytes on x86-64, against 392 when each flow carried a whole FlowRecord; with its
// key and its buckets in the flow table, 167 bytes of heap per decided flow (test_ndpi_labeler:
// 210 in a std::unordered_map, 482 with whole records).
struct Flow {
  std::unique_ptr<ndpi_flow_struct, FlowDeleter> ndpi;  // until decided
  std::uint64_t flow_id = 0;
  std::int64_t first_ns = 0, last_ns = 0;
  std::uint64_t packets[2] = {0, 0}, bytes[2] = {0, 0};  // [0]: client to server
  std::string seen;                                      // server name '\0' JA3 client '\0' JA3 server
  ndpi_protocol protocol{};
  std::uint32_t names = 0;         // index into NdpiLabeler::names_, once decided
  bool client_is_key_src = false;  // the first packet's sender is the key's src
  bool completed = false;
  bool fin_c2s = false, fin_s2c = false, reset = false;
};
static_assert(sizeof(void*) != 8 || sizeof(Flow) <= 120, "a decided flow is kept small: see above");

// What nDPI named a flow, interned: a capture has a few hundred combinations, not one per flow.
struct Names {
  std::string label, master_protocol, app_protocol, category, confidence;
};

class NdpiLabeler final : public Labeler {
  using Table = FlowTable<Key, Flow, KeyHash>;

 public:
  explicit NdpiLabeler(const PluginArgs& args) : host_(args.host) {
    const auto& p = args.params;
    tcp_max_ = static_cast<std::uint64_t>(p.at("tcp_max_packets").get<std::int64_t>());
    udp_max_ = static_cast<std::uint64_t>(p.at("udp_max_packets").get<std::int64_t>());
    idle_s_ = p.at("idle_timeout").get<double>();
    active_s_ = p.at("active_timeout").get<double>();
    max_flows_param_ = p.at("max_flows").get<std::int64_t>();
    teardown_ = p.at("tcp_teardown").get<bool>();
    guess_ = p.at("guess").get<bool>();
    module_.reset(ndpi_init_detection_module(ndpi_no_prefs));
    if (!module_) throw Error("nDPI: cannot initialise the detection module (out of memory?)");
    NDPI_PROTOCOL_BITMASK all;
    NDPI_BITMASK_SET_ALL(all);
    ndpi_set_protocol_detection_bitmask2(module_.get(), &all);
    load(p, "protocols_file", [&](const char* f) { return ndpi_load_protocols_file(module_.get(), f); });
    load(p, "categories_file", [&](const char* f) { return ndpi_load_categories_file(module_.get(), f); });
    load(p, "risky_domains_file", [&](const char* f) { return ndpi_load_risk_domain_file(module_.get(), f); });
    load(p, "ja3_file", [&](const char* f) { return ndpi_load_malicious_ja3_file(module_.get(), f); });
    load(p, "sha1_file", [&](const char* f) { return ndpi_load_malicious_sha1_file(module_.get(), f); });
    ndpi_finalize_initialization(module_.get());
  }

  void begin_file(const SourceFileInfo& file) override {
    file_id_ = file.id;
    pending_flush_ = true;  // flows never span two inputs: the previous file's are emitted first
    // -1 (auto): a live source runs for as long as it is left to, so its flows end after 120 s of
    // silence or 1800 s in all (NFStream's defaults) and its table holds at most a million flows;
    // a file keeps ndpiReader's behaviour (a flow ends with its input, the table is unbounded).
    const bool live = file.format == "live";
    idle_ns_ = static_cast<std::int64_t>((idle_s_ < 0 ? (live ? 120.0 : 0.0) : idle_s_) * 1e9);
    active_ns_ = static_cast<std::int64_t>((active_s_ < 0 ? (live ? 1800.0 : 0.0) : active_s_) * 1e9);
    max_flows_ = static_cast<std::size_t>(max_flows_param_ < 0 ? (live ? 1'000'000 : 0) : max_flows_param_);
  }

  PacketFlow process(const PacketView& packet, FlowSink& out) override {
    if (pending_flush_) {
      flush(out);
      pending_flush_ = false;
    }
    expire(packet.timestamp_ns, out);  // before any flow of the map is referenced below
    if (!packet.has_ip()) return {};
    if (packet.flags & packet_flag::non_first_fragment) return {};  // as ndpiReader: no L4 header
    if ((packet.l4_protocol == 4 || packet.l4_protocol == 41) && packet.has_l4()) {
      // IPv4 or IPv6 inside IP (6in4, 4in6 tunnels): label the inner flow, as ndpiReader does.
      PacketView inner = packet;
      inner.link_type = linktype::raw;
      inner.data = packet.data.subspan(static_cast<std::size_t>(packet.l4_offset));
      if (parse_packet(inner)) return process(inner, out);
    }
    Key key;
    key.tuple = packet.tuple;
    if (key.tuple.protocol != ipproto::tcp && key.tuple.protocol != ipproto::udp)
      key.tuple.src_port = key.tuple.dst_port = 0;
    const FiveTuple oriented = key.tuple;
    key.tuple = canonical(key.tuple);
    key.vlan = vlan_of(packet);
    const bool from_key_src = oriented.src == key.tuple.src && oriented.src_port == key.tuple.src_port;

    Table::Slot slot = flows_.find(key);
    if (slot != Table::none && ended_before(flows_.entry(slot).value, packet.timestamp_ns)) {
      // That flow ended (idle, too long, torn down): this packet starts another.
      end(slot, out);
      slot = Table::none;
    }
    if (slot == Table::none) {
      if (max_flows_ && flows_.size() >= max_flows_) evict(out);
      slot = flows_.insert(key);
      Flow& flow = flows_.entry(slot).value;
      flow.ndpi.reset(static_cast<ndpi_flow_struct*>(ndpi_flow_malloc(SIZEOF_FLOW_STRUCT)));
      if (!flow.ndpi) throw Error("nDPI: out of memory for a new flow");
      std::memset(flow.ndpi.get(), 0, SIZEOF_FLOW_STRUCT);
      flow.flow_id = next_flow_id_++;
      flow.client_is_key_src = from_key_src;  // the first packet's sender is the client
      flow.first_ns = packet.timestamp_ns;
    }
    Flow& flow = flows_.entry(slot).value;
    const bool client_to_server = from_key_src == flow.client_is_key_src;
    flow.packets[client_to_server ? 0 : 1] += 1;
    flow.bytes[client_to_server ? 0 : 1] += packet.wire_length;
    flow.last_ns = packet.timestamp_ns;
    if (oriented.protocol == ipproto::tcp) {
      if (packet.tcp_flags & 0x04) flow.reset = true;
      if (packet.tcp_flags & 0x01) (client_to_server ? flow.fin_c2s : flow.fin_s2c) = true;
    }

    const PacketFlow counted{flow.flow_id, client_to_server};
    if (flow.completed) return counted;
    const std::uint64_t seen = flow.packets[0] + flow.packets[1];
    const bool enough = (oriented.protocol == ipproto::udp && seen > udp_max_) ||
                        (oriented.protocol == ipproto::tcp && seen > tcp_max_);
    auto l3 = packet.l3();
    std::size_t length = packet.l3_length ? std::min<std::size_t>(l3.size(), packet.l3_length) : l3.size();
    length = std::min<std::size_t>(length, 0xffff);
    const auto time_ms = static_cast<std::uint64_t>(packet.timestamp_ns / 1'000'000);
    // nDPI keeps pointers into the packets it dissects (IP, TCP and UDP headers) and may read them
    // on a later call: a packet whose headers it cannot parse leaves the previous packet's there,
    // and ndpi_detection_giveup adds those hosts to its BitTorrent cache. A buffer of our own,
    // allocated once, holds what nDPI dissects, so such reads stay inside it instead of reaching
    // memory a capture source or a labelling queue has freed (the flow-tracker fuzzer's SEGV in
    // libndpi 4.2).
    if (last_packet_.capacity() < 0x10000) last_packet_.reserve(0x10000);  // never moves
    last_packet_.assign(l3.data(), l3.data() + length);
    flow.protocol = ndpi_detection_process_packet(module_.get(), flow.ndpi.get(), last_packet_.data(),
                                                  static_cast<unsigned short>(length), time_ms);
    if (enough || flow.protocol.app_protocol != NDPI_PROTOCOL_UNKNOWN) {
      if (!enough && ndpi_extra_dissection_possible(module_.get(), flow.ndpi.get())) return counted;
      complete(flow);
    }
    return counted;
  }

  // Emits the flows that ended, looked for once per second of capture time (never without a timeout).
  void expire(std::int64_t now, FlowSink& out) {
    if ((!idle_ns_ && !active_ns_ && !teardown_) || now - last_sweep_ns_ < 1'000'000'000) return;
    last_sweep_ns_ = now;
    flows_.for_each([&](Table::Slot slot, Table::Entry& e) {
      if (ended_before(e.value, now)) end(slot, out);
    });
  }

  bool ended_before(const Flow& flow, std::int64_t now) const {
    if (idle_ns_ && now - flow.last_ns > idle_ns_) return true;
    if (active_ns_ && now - flow.first_ns > active_ns_) return true;
    // A torn-down flow still takes the last ACKs that follow its FINs for a moment.
    constexpr std::int64_t teardown_grace_ns = 1'000'000'000;
    return teardown_ && flow.completed && (flow.reset || (flow.fin_c2s && flow.fin_s2c)) &&
           now - flow.last_ns > teardown_grace_ns;
  }

  void flush(FlowSink& out) override {
    // Each flow leaves the table as its record is emitted: the two are never all held at once.
    flows_.drain([&](Table::Entry& e) { finish(e.key, e.value, out); });
    if (evicted_ > evicted_reported_) {
      host_.warn(
          fmt::format("ndpi: {} flows were ended early because the flow table was full (max_flows = {}); each "
                      "was labelled with what nDPI had seen of it",
                      evicted_ - evicted_reported_, max_flows_));
      evicted_reported_ = evicted_;
    }
  }

  // The table is full: the tenth of its flows silent the longest end now (emitted, labelled with
  // what nDPI saw of them), so a long live capture holds a bounded table. Counted and reported.
  void evict(FlowSink& out) {
    std::vector<std::pair<std::int64_t, Table::Slot>> by_age;
    by_age.reserve(flows_.size());
    flows_.for_each([&](Table::Slot slot, Table::Entry& e) { by_age.emplace_back(e.value.last_ns, slot); });
    const std::size_t n = std::max<std::size_t>(1, by_age.size() / 10);
    std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(n - 1), by_age.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 0; i < n; ++i) end(by_age[i].second, out);
    if (evicted_ == 0)
      host_.warn(
          fmt::format("ndpi: the flow table is full (max_flows = {}): the flows silent the longest are ended "
                      "early from now on (counted; raise max_flows or lower idle_timeout)",
                      max_flows_));
    evicted_ += n;
  }

 private:
  template <class Loader>
  void load(const Json& params, const char* name, Loader loader) {
    if (!params.contains(name)) return;
    auto file = params.at(name).get<std::string>();
    if (file.empty()) return;
    if (loader(file.c_str()) < 0)
      throw Error(
          fmt::format("nDPI could not load {} = {} (check its format against nDPI's example files)", name, file));
  }

  static std::uint16_t vlan_of(const PacketView& p) {
    if (p.link_type != linktype::ethernet || p.vlan_count == 0 || p.data.size() < 16) return 0;
    return static_cast<std::uint16_t>(((p.data[14] << 8) | p.data[15]) & 0x0fff);
  }

  void complete(Flow& flow) {
    flow.completed = true;
    if (flow.protocol.app_protocol == NDPI_PROTOCOL_UNKNOWN) {
      std::uint8_t guessed = 0;
      flow.protocol = ndpi_detection_giveup(module_.get(), flow.ndpi.get(), guess_ ? 1 : 0, &guessed);
    }
    describe(flow);
    flow.ndpi.reset();  // what nDPI found is kept now; its state is freed early
  }

  // Emits the flow in `slot` and removes it from the table.
  void end(Table::Slot slot, FlowSink& out) {
    Table::Entry& e = flows_.entry(slot);
    finish(e.key, e.value, out);
    flows_.erase(slot);
  }

  void finish(const Key& key, Flow& flow, FlowSink& out) {
    if (!flow.completed) complete(flow);
    FlowRecord r;
    r.flow_id = flow.flow_id;
    r.file_id = file_id_;
    r.tuple = key.tuple;
    if (!flow.client_is_key_src) {
      std::swap(r.tuple.src, r.tuple.dst);
      std::swap(r.tuple.src_port, r.tuple.dst_port);
    }
    r.first_ns = flow.first_ns;
    r.last_ns = flow.last_ns;
    r.packets_c2s = flow.packets[0];
    r.packets_s2c = flow.packets[1];
    r.bytes_c2s = flow.bytes[0];
    r.bytes_s2c = flow.bytes[1];
    const Names& n = names_[flow.names];
    r.label = n.label;
    r.master_protocol = n.master_protocol;
    r.app_protocol = n.app_protocol;
    r.category = n.category;
    r.confidence = n.confidence;
    const std::string_view seen = flow.seen;
    const std::size_t a = seen.find('\0'), b = seen.find('\0', a + 1);
    r.server_name = seen.substr(0, a);
    r.ja3_client = seen.substr(a + 1, b - a - 1);
    r.ja3_server = seen.substr(b + 1);
    out.emit(r);
  }

  void describe(Flow& flow) {
    Names n;
    char name[128];
    n.label = ndpi_protocol2name(module_.get(), flow.protocol, name, sizeof name);
    // "TLS.YouTube": master TLS, app YouTube. "SSH": nDPI leaves the master unknown; it is SSH for both.
    n.app_protocol = ndpi_get_proto_name(module_.get(), flow.protocol.app_protocol);
    n.master_protocol = flow.protocol.master_protocol == NDPI_PROTOCOL_UNKNOWN
                            ? n.app_protocol
                            : ndpi_get_proto_name(module_.get(), flow.protocol.master_protocol);
    n.category = ndpi_category_get_name(module_.get(), flow.protocol.category);
    const ndpi_flow_struct* f = flow.ndpi.get();
    n.confidence = ndpi_confidence_get_name(f->confidence);
    std::string joined =
        n.label + '\0' + n.master_protocol + '\0' + n.app_protocol + '\0' + n.category + '\0' + n.confidence;
    auto [at, added] = name_index_.try_emplace(std::move(joined), static_cast<std::uint32_t>(names_.size()));
    if (added) names_.push_back(std::move(n));
    flow.names = at->second;
    // host_server_name and the JA3 strings are NUL-terminated arrays inside nDPI's state.
    flow.seen.assign(f->host_server_name);
    flow.seen += '\0';
    flow.seen += f->protos.tls_quic.ja3_client;
    flow.seen += '\0';
    flow.seen += f->protos.tls_quic.ja3_server;
    flow.seen.shrink_to_fit();
  }

  HostServices& host_;
  std::unique_ptr<ndpi_detection_module_struct, ModuleDeleter> module_;
  Table flows_;
  std::vector<Names> names_;                                   // the combinations met, in order
  std::unordered_map<std::string, std::uint32_t> name_index_;  // the five joined by NUL: index
  std::uint64_t tcp_max_ = 80, udp_max_ = 24;
  double idle_s_ = -1, active_s_ = -1;  // as configured (-1: by the input's kind)
  std::int64_t max_flows_param_ = -1;
  std::int64_t idle_ns_ = 0, active_ns_ = 0;  // for the input being read
  std::size_t max_flows_ = 0;                 // 0: no bound
  std::uint64_t evicted_ = 0, evicted_reported_ = 0;
  std::vector<std::uint8_t> last_packet_;  // what nDPI's packet pointers point into (see process())
  bool teardown_ = false;
  std::int64_t last_sweep_ns_ = 0;
  bool guess_ = true;
  std::uint32_t file_id_ = 0;
  std::uint64_t next_flow_id_ = 1;
  bool pending_flush_ = false;
};

Schema schema() {
  auto optional_file = [](const char* name, const char* help) { return ParamSpec::path(name, "", help).existing(); };
  return {
      optional_file("protocols_file", "nDPI custom protocols file (ndpiReader -p)"),
      optional_file("categories_file", "nDPI categories file (ndpiReader -c)"),
      optional_file("risky_domains_file", "nDPI risky domains file (ndpiReader -r)"),
      optional_file("ja3_file", "malicious JA3 fingerprints (ndpiReader -j)"),
      optional_file("sha1_file", "malicious certificate SHA1 fingerprints (ndpiReader -S)"),
      ParamSpec::integer("tcp_max_packets", 80, "TCP packets given to nDPI before it gives up (ndpiReader: 80)")
          .range(1, 10000),
      ParamSpec::integer("udp_max_packets", 24, "UDP packets given to nDPI before it gives up (ndpiReader: 24)")
          .range(1, 10000),
      ParamSpec::real("idle_timeout", -1.0,
                      "seconds of silence that end a flow (0: never, as ndpiReader; -1: 120 on live "
                      "sources, never on files)")
          .range(-1, 1e7),
      ParamSpec::real("active_timeout", -1.0,
                      "seconds after which a flow is cut (0: never; -1: 1800 on live sources, "
                      "never on files)")
          .range(-1, 1e7),
      ParamSpec::integer("max_flows", -1,
                         "flows held at once; when full, the tenth silent longest end early, counted "
                         "(0: no bound, as ndpiReader; -1: 1,000,000 on live sources, none on files)")
          .range(-1, std::nullopt),
      ParamSpec::boolean("tcp_teardown", false, "end a TCP flow at FIN from both sides or RST, once detected"),
      ParamSpec::boolean("guess", true, "when nDPI gives up, guess the protocol from ports and addresses"),
  };
}

}  // namespace
}  // namespace trafficid::ndpi_labeler

TRAFFICID_DEFINE_PLUGIN(trafficid::ndpi_labeler::NdpiLabeler, trafficid::PluginKind::labeler, "ndpi", "0.1.0",
                        "labels bidirectional flows with nDPI 4.2, as ndpiReader does", "",
                        trafficid::ndpi_labeler::schema)
