// flow_net: a flow-level network over the start of a flow, for samples that are packet sequences
// with named columns (the flow_start extractor's): each packet's payload bytes go through a byte
// embedding and two 1-D convolutions whose maximum over positions finds byte patterns wherever
// they sit (an SNI, a banner, a magic number), beside the packet's first bytes by position (the
// protocol header) and its numbers (direction, sizes, gap, flags); a GRU reads the packets in
// order; the flow's server and client ports are embeddings that start at zero, so a port never
// seen in training adds nothing; so do the tokens of the server name the client asked for (TLS SNI,
// HTTP Host), a bag whose weights start at zero. Columns are found by name: `byte_I` (0 = no byte,
// else value + 1), `name_K` (hashed name tokens), `server_port` / `client_port`, `present`, and the
// rest as numbers.
#include <fmt/format.h>
#include <trafficid/sdk.hpp>
#include <trafficid/sequence_columns.hpp>
#include <trafficid/torch_model.hpp>

namespace trafficid::flow_net_model {
namespace {

namespace nn = torch::nn;

struct Layout {
  std::vector<std::int64_t> numbers;  // column indices of the numeric features
  std::int64_t first_byte = -1, bytes = 0;
  std::int64_t first_name = -1, names = 0;
  std::int64_t server_port = -1, client_port = -1, present = -1, gap = -1;
  std::int64_t packets = 0, columns = 0;
};

Layout layout_of(const FeatureSpec& spec) {
  const SequenceColumns c = sequence_columns(spec, "flow_net");
  Layout l{{},
           c.first_byte,
           c.bytes,
           c.first_name,
           c.names,
           c.at("server_port"),
           c.at("client_port"),
           c.at("present"),
           c.at("gap"),
           c.packets,
           c.columns};
  for (const auto& [name, i] : c.others)
    if (name != "server_port" && name != "client_port") l.numbers.push_back(i);
  return l;
}

struct Options {
  std::int64_t embedding = 16, channels = 32, kernel = 3, head_bytes = 16, packet_units = 64, hidden = 64,
               port_units = 8, name_units = 8;
  double dropout = 0.3;
  bool ports = true;
  // Training-time augmentation: what differs between one network's captures and another's.
  double gap_noise = 0;  // a gap times 10^N(0, gap_noise): other round trips
  double port_drop = 0;  // share of training flows shown without their ports
  double byte_drop = 0;  // share of payload bytes hidden (as if absent)
  double truncate = 0;   // share of training flows cut after a random number of their packets
};

struct FlowNetImpl : nn::Module {
  FlowNetImpl(const Layout& layout, const Options& o, std::int64_t classes) : l(layout), opt(o) {
    numbers = register_buffer("numbers", torch::tensor(l.numbers, torch::kInt64));
    const std::int64_t per_packet_in =
        static_cast<std::int64_t>(l.numbers.size()) + (l.bytes > 0 ? o.channels + o.packet_units : 0);
    if (l.bytes > 0) {
      embed = register_module("embed", nn::Embedding(nn::EmbeddingOptions(257, o.embedding).padding_idx(0)));
      conv1 = register_module("conv1",
                              nn::Conv1d(nn::Conv1dOptions(o.embedding, o.channels, o.kernel).padding(o.kernel / 2)));
      conv2 = register_module("conv2",
                              nn::Conv1d(nn::Conv1dOptions(o.channels, o.channels, o.kernel).padding(o.kernel / 2)));
      head = register_module("head", nn::Linear(std::min(o.head_bytes, l.bytes) * o.embedding, o.packet_units));
    }
    packet = register_module("packet", nn::Linear(per_packet_in, o.packet_units));
    gru = register_module("gru", nn::GRU(nn::GRUOptions(o.packet_units, o.hidden).batch_first(true)));
    std::int64_t flow_in = o.hidden + o.packet_units;
    if (o.ports && (l.server_port >= 0 || l.client_port >= 0)) {
      port = register_module("port", nn::Embedding(65536, o.port_units));
      torch::NoGradGuard no_grad;
      port->weight.zero_();
      flow_in += 2 * o.port_units;
    }
    if (l.names > 0) {
      name = register_module("name", nn::Linear(nn::LinearOptions(l.names, o.name_units).bias(false)));
      torch::NoGradGuard no_grad;
      name->weight.zero_();  // a token never seen in training adds nothing
      flow_in += o.name_units;
    }
    drop = register_module("drop", nn::Dropout(o.dropout));
    hidden = register_module("hidden", nn::Linear(flow_in, o.hidden));
    out = register_module("out", nn::Linear(o.hidden, classes));
  }

  // The training batch as another network or another version of the application might give it
  // (training only; evaluation sees the samples as they are): other round trips (gaps scaled by a
  // log-normal factor), ports not seen, payload bytes missing, the flow seen only up to a random
  // packet. A class learned from one or two training flows then cannot rest on one exact value.
  torch::Tensor augment(torch::Tensor x) {
    const auto b = x.size(0), n = x.size(1);
    x = x.clone();
    // A view of x where the samples have a `present` column: it sees the cut below.
    auto present = l.present >= 0 ? x.select(2, l.present) : torch::ones({b, n}, x.options());
    if (opt.truncate > 0 && n > 1) {
      auto count = present.sum(1);
      auto kept = (torch::rand({b}, x.options()) * count).floor() + 1;  // 1..count packets
      auto cut = torch::rand({b}, x.options()).lt(opt.truncate);
      auto position = torch::arange(n, x.options()).unsqueeze(0);
      auto keep = position.lt(kept.unsqueeze(1)).logical_or(cut.logical_not().unsqueeze(1));
      x.mul_(keep.unsqueeze(2).to(x.dtype()));
    }
    if (opt.gap_noise > 0 && l.gap >= 0) {
      auto gap = x.select(2, l.gap);
      gap.add_(torch::randn({b, n}, x.options()) * (opt.gap_noise / 6.0) * present).clamp_min_(0);
    }
    if (opt.port_drop > 0) {
      auto keep = torch::rand({b, 1}, x.options()).ge(opt.port_drop).to(x.dtype());
      for (auto column : {l.server_port, l.client_port})
        if (column >= 0) x.select(2, column).mul_(keep);
    }
    if (opt.byte_drop > 0 && l.bytes > 0) {
      auto bytes = x.narrow(2, l.first_byte, l.bytes);
      bytes.mul_(torch::rand(bytes.sizes(), x.options()).ge(opt.byte_drop).to(x.dtype()));
    }
    return x;
  }

  torch::Tensor forward(torch::Tensor x) {
    const bool augmenting = opt.gap_noise > 0 || opt.port_drop > 0 || opt.byte_drop > 0 || opt.truncate > 0;
    if (is_training() && augmenting) x = augment(x);
    const auto b = x.size(0), n = x.size(1);
    std::vector<torch::Tensor> parts = {x.index_select(2, numbers)};
    if (l.bytes > 0) {
      auto bytes = x.narrow(2, l.first_byte, l.bytes).round().clamp(0, 256).to(torch::kInt64).reshape({b * n, l.bytes});
      auto e = embed(bytes);  // [B*N, bytes, E]
      auto h = torch::relu(conv1(e.transpose(1, 2)));
      h = torch::relu(conv2(h));                            // [B*N, C, bytes]
      auto valid = bytes.gt(0).unsqueeze(1).to(h.dtype());  // positions holding a byte
      auto pooled = (h * valid).amax(2);                    // 0 where the packet has no byte
      const auto first = std::min(opt.head_bytes, l.bytes);
      auto lead = torch::relu(head(e.narrow(1, 0, first).reshape({b * n, first * opt.embedding})));
      parts.push_back(pooled.reshape({b, n, -1}));
      parts.push_back(lead.reshape({b, n, -1}));
    }
    auto p = torch::relu(packet(torch::cat(parts, 2)));  // [B, N, P]
    torch::Tensor present = l.present >= 0 ? x.select(2, l.present).unsqueeze(2) : torch::ones({b, n, 1}, x.options());
    p = p * present;
    auto [states, last] = gru(p);
    // The state after the flow's last packet (rows after it are absent).
    auto count = present.squeeze(2).sum(1).clamp_min(1).to(torch::kInt64) - 1;
    auto gathered = states.gather(1, count.view({b, 1, 1}).expand({b, 1, states.size(2)})).squeeze(1);
    std::vector<torch::Tensor> flow = {gathered, std::get<0>(p.max(1))};
    if (!port.is_empty()) {
      auto ids = [&](std::int64_t column) {
        return column < 0 ? torch::zeros({b}, torch::kInt64)
                          : x.select(1, 0).select(1, column).round().clamp(0, 65535).to(torch::kInt64);
      };
      flow.push_back(port(ids(l.server_port)));
      flow.push_back(port(ids(l.client_port)));
    }
    if (!name.is_empty()) flow.push_back(name(x.narrow(2, l.first_name, l.names).amax(1)));  // tokens of any row
    auto f = torch::relu(hidden(drop(torch::cat(flow, 1))));
    return out(drop(f));
  }

  Layout l;
  Options opt;
  torch::Tensor numbers;
  nn::Embedding embed{nullptr}, port{nullptr};
  nn::Conv1d conv1{nullptr}, conv2{nullptr};
  nn::Linear head{nullptr}, packet{nullptr}, hidden{nullptr}, out{nullptr}, name{nullptr};
  nn::GRU gru{nullptr};
  nn::Dropout drop{nullptr};
};
TORCH_MODULE(FlowNet);

class FlowNetModel final : public TorchModel {
 public:
  explicit FlowNetModel(const PluginArgs& args) : TorchModel(args) {
    const auto& p = args.params;
    o_.embedding = p.at("embedding").get<std::int64_t>();
    o_.channels = p.at("channels").get<std::int64_t>();
    o_.kernel = p.at("kernel").get<std::int64_t>();
    o_.head_bytes = p.at("head_bytes").get<std::int64_t>();
    o_.packet_units = p.at("packet_units").get<std::int64_t>();
    o_.hidden = p.at("hidden").get<std::int64_t>();
    o_.port_units = p.at("port_units").get<std::int64_t>();
    o_.name_units = p.at("name_units").get<std::int64_t>();
    o_.dropout = p.at("dropout").get<double>();
    o_.ports = p.at("ports").get<bool>();
    o_.gap_noise = p.at("gap_noise").get<double>();
    o_.port_drop = p.at("port_drop").get<double>();
    o_.byte_drop = p.at("byte_drop").get<double>();
    o_.truncate = p.at("truncate").get<double>();
  }

  torch::nn::Sequential network(const ModelInput& input) override {
    return torch::nn::Sequential(
        FlowNet(layout_of(input.spec), o_, static_cast<std::int64_t>(input.class_names.size())));
  }

 private:
  Options o_;
};

Schema schema() {
  return {
      ParamSpec::integer("embedding", 16, "width of the byte embedding").range(1, 1024),
      ParamSpec::integer("channels", 32, "filters of each byte convolution").range(1, 4096),
      ParamSpec::integer("kernel", 3, "width of the byte convolutions (odd)").range(1, 63),
      ParamSpec::integer("head_bytes", 16, "a packet's first bytes also read by position (the protocol header)")
          .range(1, 4096),
      ParamSpec::integer("packet_units", 64, "width of each packet's representation").range(1, 4096),
      ParamSpec::integer("hidden", 64, "units of the GRU over packets and of the flow layer").range(1, 4096),
      ParamSpec::integer("port_units", 8, "width of the port embeddings").range(1, 256),
      ParamSpec::integer("name_units", 8, "width of the server name's token bag (with flow_start's names)")
          .range(1, 256),
      ParamSpec::real("dropout", 0.3, "dropout before the flow layers").range(0, 0.95),
      ParamSpec::boolean("ports", true, "use the flow's ports (false: bytes, sizes and timing alone)"),
      ParamSpec::real("gap_noise", 0, "training only: noise on the gaps, standard deviation in decades").range(0, 3),
      ParamSpec::real("port_drop", 0, "training only: share of flows shown without their ports").range(0, 1),
      ParamSpec::real("byte_drop", 0, "training only: share of payload bytes hidden").range(0, 0.95),
      ParamSpec::real("truncate", 0, "training only: share of flows cut after a random number of packets").range(0, 1),
  };
}

}  // namespace
}  // namespace trafficid::flow_net_model

TRAFFICID_DEFINE_PLUGIN(
    trafficid::flow_net_model::FlowNetModel, trafficid::PluginKind::model, "flow_net", "0.1.0",
    "flow-level network over the first packets: byte convolutions, GRU over packets, port embeddings", "",
    trafficid::flow_net_model::schema)
