// A complete LibTorch model plugin written outside the trafficid tree: softmax regression (one
// linear layer, optionally one hidden layer). A LibTorch model is its network and its schema;
// the framework's trainer (optimisers, early stopping, checkpoints, resume, evaluation) does the
// rest, driven by the experiment's [train] section.
#include <trafficid/sdk.hpp>
#include <trafficid/torch_model.hpp>

namespace {

using namespace trafficid;

class SoftmaxRegression final : public TorchModel {
 public:
  explicit SoftmaxRegression(const PluginArgs& args)
      : TorchModel(args), hidden_(args.params.at("hidden").get<std::int64_t>()) {}

  torch::nn::Sequential network(const ModelInput& input) override {
    const auto width = static_cast<std::int64_t>(input.spec.elements());
    const auto classes = static_cast<std::int64_t>(input.class_names.size());
    torch::nn::Sequential net{torch::nn::Flatten()};
    if (hidden_ > 0) {
      net->push_back(torch::nn::Linear(width, hidden_));
      net->push_back(torch::nn::ReLU());
      net->push_back(torch::nn::Linear(hidden_, classes));
    } else {
      net->push_back(torch::nn::Linear(width, classes));
    }
    return net;
  }

 private:
  std::int64_t hidden_;
};

Schema schema() {
  return {ParamSpec::integer("hidden", 0, "units of one hidden layer (0: plain softmax regression)").range(0, 65536)};
}

}  // namespace

TRAFFICID_DEFINE_PLUGIN(SoftmaxRegression, trafficid::PluginKind::model, "softmax_regression", "0.1.0",
                        "softmax regression on LibTorch: an example model plugin built outside the tree", "", schema)
