// mlp: a multilayer perceptron on Deep Packet vectors or flow_stats features: configurable layers,
// activation and dropout, inputs standardised with the mean and deviation of the training split
// only (kept in the network's buffers, so saved with it).
#include <fmt/format.h>
#include <trafficid/declared_params.hpp>
#include <trafficid/sdk.hpp>
#include <trafficid/torch_model.hpp>

namespace trafficid::mlp_model {
namespace {

// (x - mean) / std, with mean and std as buffers of the module.
struct StandardizeImpl : torch::nn::Module {
  explicit StandardizeImpl(std::int64_t width) {
    mean = register_buffer("mean", torch::zeros({width}));
    scale = register_buffer("scale", torch::ones({width}));
  }
  torch::Tensor forward(const torch::Tensor& x) { return (x.reshape({x.size(0), -1}) - mean) * scale; }
  torch::Tensor mean, scale;
};
TORCH_MODULE(Standardize);

// Each parameter once: its schema entry beside the member it is read into.
struct Params {
  std::vector<std::int64_t> layers;
  std::string activation;
  double dropout = 0;
  bool standardize = true;
  template <class Bind>
  void fields(Bind& bind) {
    bind(layers, ParamSpec::list("layers", ParamType::integer_list, Json::array({256, 128}), "hidden layer sizes"));
    bind(activation,
         ParamSpec::choice("activation", "relu", {"relu", "tanh", "gelu"}, "activation after each hidden layer"));
    bind(dropout, ParamSpec::real("dropout", 0.1, "dropout after each hidden layer").range(0, 0.95));
    bind(standardize,
         ParamSpec::boolean("standardize", true, "standardise inputs with the training split's mean and deviation"));
  }
};

class Mlp final : public TorchModel {
 public:
  explicit Mlp(const PluginArgs& args) : TorchModel(args), p_(read_params<Params>(args.params)) {}

  torch::nn::Sequential network(const ModelInput& input) override {
    namespace nn = torch::nn;
    const auto width = static_cast<std::int64_t>(input.spec.elements());
    standardizer_ = Standardize(width);
    nn::Sequential net;
    net->push_back("standardize", standardizer_);
    std::int64_t in = width;
    for (auto units : p_.layers) {
      net->push_back(nn::Linear(in, units));
      if (p_.activation == "tanh") net->push_back(nn::Tanh());
      else if (p_.activation == "gelu") net->push_back(nn::GELU());
      else net->push_back(nn::ReLU());
      if (p_.dropout > 0) net->push_back(nn::Dropout(p_.dropout));
      in = units;
    }
    net->push_back("output", nn::Linear(in, static_cast<std::int64_t>(input.class_names.size())));
    return net;
  }

  void prepare(SampleBatches& train) override {
    if (!p_.standardize) return;
    // Mean and variance per input value over the training split, in one streaming pass.
    torch::NoGradGuard no_grad;
    const auto width = static_cast<std::int64_t>(train.spec().elements());
    auto sum = torch::zeros({width}, torch::kFloat64), squares = torch::zeros({width}, torch::kFloat64);
    double n = 0;
    FeatureBatch batch;
    train.rewind(false);
    while (train.next(4096, batch)) {
      auto x = to_tensor(batch).reshape({static_cast<std::int64_t>(batch.rows), -1}).to(torch::kFloat64);
      sum += x.sum(0);
      squares += (x * x).sum(0);
      n += static_cast<double>(batch.rows);
    }
    if (n == 0) return;
    auto mean = sum / n;
    auto deviation = (squares / n - mean * mean).clamp_min(0).sqrt();
    // Constant inputs (always-zero padding bytes) are left as they are, not divided by zero.
    auto scale = torch::where(deviation > 1e-8, 1.0 / deviation, torch::ones_like(deviation));
    standardizer_->mean.copy_(mean.to(torch::kFloat32));
    standardizer_->scale.copy_(scale.to(torch::kFloat32));
  }

 private:
  const Params p_;
  Standardize standardizer_{nullptr};
};

Schema schema() { return schema_of<Params>(); }

}  // namespace
}  // namespace trafficid::mlp_model

TRAFFICID_DEFINE_PLUGIN(trafficid::mlp_model::Mlp, trafficid::PluginKind::model, "mlp", "0.1.0",
                        "multilayer perceptron on LibTorch with training-split standardisation", "",
                        trafficid::mlp_model::schema)
