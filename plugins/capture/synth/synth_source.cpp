// The `synth` capture source, the embedded default: a deterministic (seeded) capture of real
// protocol exchanges — TLS ClientHellos with the SNI of named services, HTTP/1.1, DNS, SSH,
// BitTorrent, STUN, NTP — over Ethernet/IPv4 with correct lengths, sequence numbers and
// checksums, so that nDPI labels each flow as its application.
#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <queue>

#include "protocols.hpp"
#include "trafficid/sdk.hpp"

namespace trafficid::synth {
namespace {

struct App {
  const char* name;
  const char* expected_label;  // what nDPI 4.2 calls these flows
  std::vector<std::string> hosts;
};

const std::vector<App>& apps() {
  static const std::vector<App> list = {
      {"youtube", "TLS.YouTube", {"www.youtube.com", "i.ytimg.com", "rr4---sn-4g5e6nzz.googlevideo.com"}},
      {"netflix", "TLS.NetFlix", {"www.netflix.com", "assets.nflxext.com", "occ-0-2433-1432.1.nflxso.net"}},
      {"whatsapp", "TLS.WhatsApp", {"web.whatsapp.com", "mmg.whatsapp.net", "static.whatsapp.net"}},
      {"zoom", "TLS.Zoom", {"us02web.zoom.us", "us04web.zoom.us", "us05web.zoom.us"}},
      {"wikipedia", "HTTP.Wikipedia", {"en.wikipedia.org", "de.wikipedia.org", "fr.wikipedia.org"}},
      {"dns", "DNS", {"www.debian.org", "ftp.debian.org", "www.example.com", "security.debian.org"}},
      {"ssh", "SSH", {}},
      {"bittorrent", "BitTorrent", {}},
      {"stun", "STUN", {}},
      {"ntp", "NTP", {}},
  };
  return list;
}

std::vector<std::string> app_names() {
  std::vector<std::string> names;
  for (const auto& a : apps()) names.push_back(a.name);
  return names;
}

constexpr std::int64_t ms = 1'000'000;

// Writes the frames of one flow. Each flow has its own generator seeded from the capture's seed
// and the flow's number, so flows can be made one at a time, in any order, with the same bytes.
class FlowGenerator {
 public:
  explicit FlowGenerator(std::uint64_t seed) : random_(seed) {}
  std::vector<Frame>& frames() { return frames_; }
  Random& random() { return random_; }

 public:
  Endpoint client_endpoint(std::uint32_t index) {
    Endpoint e;
    e.mac = {0x02, 0x00, 0x5e, 0x10, 0x00, static_cast<std::uint8_t>(index + 10)};
    e.ip = {192, 0, 2, static_cast<std::uint8_t>(index + 10)};  // TEST-NET-1 (RFC 5737)
    e.port = static_cast<std::uint16_t>(32768 + random_.below(28000));
    e.ttl = 64;
    return e;
  }

  Endpoint server_endpoint(std::size_t app, std::uint32_t flow) {
    Endpoint e;
    e.mac = {0x02, 0x00, 0x5e, 0x00, 0x01, 0x01};  // the gateway
    // TEST-NET-2 and -3 (RFC 5737): no address list of nDPI matches them, so labels come from payloads.
    e.ip = flow % 2 ? std::array<std::uint8_t, 4>{198, 51, 100, static_cast<std::uint8_t>(10 + app * 8 + flow % 8)}
                    : std::array<std::uint8_t, 4>{203, 0, 113, static_cast<std::uint8_t>(10 + app * 8 + flow % 8)};
    e.ttl = static_cast<std::uint8_t>(52 + random_.below(8));
    return e;
  }

  void generate(const App& app, Endpoint client, Endpoint server, std::int64_t begin, std::int64_t rtt) {
    std::string name = app.name;
    if (name == "wikipedia") return http(app, client, server, begin, rtt);
    if (name == "dns") return dns(app, client, server, begin, rtt);
    if (name == "ssh") return ssh(client, server, begin, rtt);
    if (name == "bittorrent") return bittorrent(client, server, begin, rtt);
    if (name == "stun") return stun(client, server, begin, rtt);
    if (name == "ntp") return ntp(client, server, begin, rtt);
    return tls(app, client, server, begin, rtt);
  }

  void tls(const App& app, Endpoint client, Endpoint server, std::int64_t begin, std::int64_t rtt) {
    server.port = 443;
    Conversation c(frames_, random_, client, server, 6, begin, rtt);
    c.handshake();
    c.send(true, tls_client_hello(random_, random_.pick(app.hosts)));
    Bytes hello = tls_server_hello(random_);
    Bytes encrypted = tls_application_data(random_, 2800 + random_.below(1800));  // certificate chain, finished
    hello.insert(hello.end(), encrypted.begin(), encrypted.end());
    c.send(false, hello);
    c.send(true, tls_application_data(random_, 74));  // client Finished
    bool streaming = std::string_view(app.name) == "youtube" || std::string_view(app.name) == "netflix";
    int rounds = 1 + static_cast<int>(random_.below(streaming ? 4 : 3));
    for (int r = 0; r < rounds; ++r) {
      c.send(true, tls_application_data(random_, 180 + random_.below(500)));
      std::size_t response = streaming ? 16000 + random_.below(48000) : 300 + random_.below(6000);
      Bytes data;
      while (response > 0) {
        std::size_t record = std::min<std::size_t>(response, 16384);
        Bytes r2 = tls_application_data(random_, record);
        data.insert(data.end(), r2.begin(), r2.end());
        response -= record;
      }
      c.send(false, data);
      c.wait((50 + static_cast<std::int64_t>(random_.below(900))) * ms);
    }
    c.close();
  }

  void http(const App& app, Endpoint client, Endpoint server, std::int64_t begin, std::int64_t rtt) {
    server.port = 80;
    Conversation c(frames_, random_, client, server, 6, begin, rtt);
    c.handshake();
    const char* pages[] = {"/wiki/Network_traffic", "/wiki/Deep_packet_inspection", "/wiki/Packet_analyzer",
                           "/wiki/Main_Page"};
    int requests = 1 + static_cast<int>(random_.below(2));
    for (int r = 0; r < requests; ++r) {
      c.send(true, http_request(random_.pick(app.hosts), pages[random_.below(4)]));
      c.send(false, http_response(random_, 1500 + random_.below(20000)));
      c.wait((100 + static_cast<std::int64_t>(random_.below(2000))) * ms);
    }
    c.close();
  }

  void dns(const App& app, Endpoint client, Endpoint server, std::int64_t begin, std::int64_t rtt) {
    server.port = 53;
    Conversation c(frames_, random_, client, server, 17, begin, rtt);
    const std::string& name = random_.pick(app.hosts);
    for (std::uint16_t type : {std::uint16_t{1}, std::uint16_t{28}}) {  // A, then AAAA
      auto id = static_cast<std::uint16_t>(random_.next());
      c.datagram(true, dns_query(random_, id, name, type));
      c.datagram(false, dns_response(random_, id, name, type));
      c.wait(ms);
    }
  }

  void ssh(Endpoint client, Endpoint server, std::int64_t begin, std::int64_t rtt) {
    server.port = 22;
    Conversation c(frames_, random_, client, server, 6, begin, rtt);
    c.handshake();
    c.send(true, ssh_banner(true));
    c.send(false, ssh_banner(false));
    c.send(true, ssh_kexinit(random_, true));
    c.send(false, ssh_kexinit(random_, false));
    c.send(true, ssh_ecdh_init(random_));
    c.send(false, ssh_ecdh_reply(random_));
    c.send(true, ssh_newkeys(random_));
    int rounds = 4 + static_cast<int>(random_.below(12));
    for (int r = 0; r < rounds; ++r) {  // encrypted: interactive keystrokes and echoes
      Bytes keystroke(36 + 8 * random_.below(4));
      random_.fill(keystroke);
      c.send(true, keystroke);
      Bytes echo(36 + 8 * random_.below(40));
      random_.fill(echo);
      c.send(false, echo);
      c.wait((30 + static_cast<std::int64_t>(random_.below(400))) * ms);
    }
    c.close();
  }

  void bittorrent(Endpoint client, Endpoint server, std::int64_t begin, std::int64_t rtt) {
    server.port = static_cast<std::uint16_t>(random_.below(2) ? 6881 : 51413);
    Conversation c(frames_, random_, client, server, 6, begin, rtt);
    c.handshake();
    Bytes info_hash(20);
    random_.fill(info_hash);
    c.send(true, bittorrent_handshake(random_, info_hash));
    c.send(false, bittorrent_handshake(random_, info_hash));
    c.send(false, bittorrent_message(random_, 5, 40));  // bitfield
    c.send(true, bittorrent_message(random_, 2, 0));    // interested
    c.send(false, bittorrent_message(random_, 1, 0));   // unchoke
    int pieces = 1 + static_cast<int>(random_.below(4));
    for (int i = 0; i < pieces; ++i) {
      c.send(true, bittorrent_message(random_, 6, 12));          // request
      c.send(false, bittorrent_message(random_, 7, 8 + 16384));  // piece: index, begin, block
    }
    c.close();
  }

  void stun(Endpoint client, Endpoint server, std::int64_t begin, std::int64_t rtt) {
    server.port = 3478;
    Conversation c(frames_, random_, client, server, 17, begin, rtt);
    int exchanges = 2 + static_cast<int>(random_.below(3));
    for (int i = 0; i < exchanges; ++i) {
      std::array<std::uint8_t, 12> transaction{};
      c.datagram(true, stun_binding_request(random_, transaction));
      Endpoint mapped = client;
      mapped.ip = {198, 18, 0, client.ip[3]};  // the address a NAT would map to (RFC 2544 benchmark range)
      c.datagram(false, stun_binding_response(transaction, mapped));
      c.wait((500 + static_cast<std::int64_t>(random_.below(2000))) * ms);
    }
  }

  void ntp(Endpoint client, Endpoint server, std::int64_t begin, std::int64_t rtt) {
    server.port = 123;  // clients such as chrony send from an ephemeral port
    Conversation c(frames_, random_, client, server, 17, begin, rtt);
    c.datagram(true, ntp_packet(random_, true, c.now()));
    c.datagram(false, ntp_packet(random_, false, c.now()));
  }

  Random random_;
  std::vector<Frame> frames_;
};

// Plans every flow up front (application, start, endpoints: a few bytes each), then generates
// flows as their start time comes up and merges their frames in time order through a heap, so
// memory holds only the flows in progress, whatever the capture's size.
class SynthSource final : public CaptureSource {
 public:
  explicit SynthSource(const PluginArgs& args) {
    const auto& p = args.params;
    const auto seed = static_cast<std::uint64_t>(p.at("seed").get<std::int64_t>());
    const auto flows = p.at("flows_per_app").get<std::int64_t>();
    const auto clients = static_cast<std::uint64_t>(p.at("clients").get<std::int64_t>());
    const std::int64_t start = p.at("start_time").get<std::int64_t>() * 1'000'000'000;
    const std::int64_t window = p.at("duration").get<std::int64_t>() * 1'000'000'000;
    auto selected = p.at("apps").get<std::vector<std::string>>();
    if (selected.empty())
      throw Error("apps is empty: name at least one of " + fmt::format("{}", fmt::join(app_names(), ", ")));
    Random planner(seed);
    for (std::size_t a = 0; a < apps().size(); ++a) {
      if (std::find(selected.begin(), selected.end(), apps()[a].name) == selected.end()) continue;
      for (std::int64_t f = 0; f < flows; ++f) {
        PlannedFlow flow;
        flow.app = a;
        flow.number = static_cast<std::uint32_t>(f);
        flow.client = static_cast<std::uint32_t>(planner.below(clients));
        flow.begin = start + static_cast<std::int64_t>(planner.unit() * static_cast<double>(window));
        flow.seed = planner.next();
        plan_.push_back(flow);
      }
    }
    std::stable_sort(plan_.begin(), plan_.end(),
                     [](const PlannedFlow& x, const PlannedFlow& y) { return x.begin < y.begin; });
    info_.path = fmt::format("synth(seed={}, flows_per_app={}, apps={})", seed, flows, fmt::join(selected, ","));
    info_.format = "synth";
    info_.link_types = {linktype::ethernet};
  }

  bool next(PacketView& packet) override {
    // Every flow starting before the earliest pending frame may have an earlier frame: make it.
    while (next_flow_ < plan_.size() &&
           (pending_.empty() || plan_[next_flow_].begin <= pending_.top().frame.timestamp_ns))
      generate(plan_[next_flow_++]);
    if (pending_.empty()) return false;
    current_ = std::move(const_cast<Pending&>(pending_.top()).frame);
    pending_.pop();
    packet.timestamp_ns = current_.timestamp_ns;
    packet.link_type = linktype::ethernet;
    packet.wire_length = static_cast<std::uint32_t>(current_.bytes.size());
    packet.data = current_.bytes;
    packet.file_id = 0;
    packet.index = info_.packets;
    parse_packet(packet);
    info_.count(packet);
    return true;
  }

  std::vector<SourceFileInfo> files() const override { return {info_}; }
  std::optional<std::vector<std::string>> planned_files() const override { return std::vector<std::string>{}; }

 private:
  struct PlannedFlow {
    std::size_t app = 0;
    std::uint32_t number = 0;
    std::uint32_t client = 0;
    std::int64_t begin = 0;
    std::uint64_t seed = 0;
  };
  struct Pending {
    Frame frame;
    std::uint64_t order;  // ties in time keep generation order
    bool operator>(const Pending& other) const {
      return std::tie(frame.timestamp_ns, order) > std::tie(other.frame.timestamp_ns, other.order);
    }
  };

  void generate(const PlannedFlow& flow) {
    FlowGenerator g(flow.seed);
    Endpoint client = g.client_endpoint(flow.client);
    Endpoint server = g.server_endpoint(flow.app, flow.number);
    std::int64_t rtt = (8 + static_cast<std::int64_t>(g.random().below(70))) * ms;
    g.generate(apps()[flow.app], client, server, flow.begin, rtt);
    for (auto& f : g.frames()) pending_.push({std::move(f), order_++});
  }

  std::vector<PlannedFlow> plan_;
  std::size_t next_flow_ = 0;
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> pending_;
  std::uint64_t order_ = 0;
  Frame current_;
  SourceFileInfo info_;
};

Schema schema() {
  ParamSpec apps_param =
      ParamSpec::list("apps", ParamType::string_list, app_names(), "applications to generate flows of");
  apps_param.choices = app_names();
  return {
      ParamSpec::integer("seed", 1, "seed: the same seed gives the same capture, byte for byte").range(0, 9.0e15),
      ParamSpec::integer("flows_per_app", 12, "flows generated per application").range(1, 100000),
      apps_param,
      ParamSpec::integer("clients", 4, "client hosts the flows come from").range(1, 200),
      ParamSpec::integer("start_time", 1700000000, "Unix time of the capture's start").range(0, 4.0e9),
      ParamSpec::integer("duration", 120, "seconds over which flow starts are spread").range(1, 86400),
  };
}

}  // namespace
}  // namespace trafficid::synth

TRAFFICID_DEFINE_PLUGIN(
    trafficid::synth::SynthSource, trafficid::PluginKind::capture, "synth", "1.0.0",
    "generates a seeded capture of real protocol exchanges (TLS, HTTP, DNS, SSH, BitTorrent, STUN, NTP)", "seed",
    trafficid::synth::schema)
