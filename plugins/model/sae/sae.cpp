// sae: Deep Packet's stacked autoencoder: fully connected encoder layers (400-300-200-100-50 by
// default, dropout 0.05), each pretrained greedily to reconstruct its input (MSE) with its own
// epochs, then the whole encoder and a softmax layer fine-tuned with cross-entropy, as in the paper.
#include <fmt/format.h>
#include <trafficid/declared_params.hpp>
#include <trafficid/sdk.hpp>
#include <trafficid/torch_model.hpp>

namespace trafficid::sae_model {
namespace {

// Each parameter once: its schema entry beside the member it is read into.
struct Params {
  std::vector<std::int64_t> layers;
  double dropout = 0, pretrain_lr = 0;
  std::int64_t pretrain_epochs = 0;
  template <class Bind>
  void fields(Bind& bind) {
    bind(layers, ParamSpec::list("layers", ParamType::integer_list, Json::array({400, 300, 200, 100, 50}),
                                 "encoder layer sizes"));
    bind(dropout, ParamSpec::real("dropout", 0.05, "dropout after each encoder layer").range(0, 0.95));
    bind(pretrain_epochs,
         ParamSpec::integer("pretrain_epochs", 3, "greedy pretraining epochs per layer (0: none)").range(0, 1000));
    bind(pretrain_lr, ParamSpec::real("pretrain_lr", 1e-3, "Adam learning rate of the pretraining").range(1e-7, 1));
  }
};

class Sae final : public TorchModel {
 public:
  explicit Sae(const PluginArgs& args)
      : TorchModel(args),
        p_(read_params<Params>(args.params)),
        layers_(p_.layers),
        dropout_(p_.dropout),
        pretrain_lr_(p_.pretrain_lr),
        pretrain_epochs_(static_cast<int>(p_.pretrain_epochs)) {}

  torch::nn::Sequential network(const ModelInput& input) override {
    namespace nn = torch::nn;
    encoders_.clear();
    decoders_.clear();
    nn::Sequential net;
    net->push_back(nn::Flatten());
    std::int64_t in = static_cast<std::int64_t>(input.spec.elements());
    for (auto units : layers_) {
      nn::Linear encoder(in, units);
      encoders_.push_back(encoder);
      decoders_.emplace_back(units, in);  // used by pretraining only; not part of the saved network
      net->push_back(encoder);
      net->push_back(nn::ReLU());
      if (dropout_ > 0) net->push_back(nn::Dropout(dropout_));
      in = units;
    }
    net->push_back("output", nn::Linear(in, static_cast<std::int64_t>(input.class_names.size())));
    return net;
  }

  std::vector<PretrainStage> pretraining() override {
    std::vector<PretrainStage> stages;
    if (pretrain_epochs_ == 0) return stages;
    for (std::size_t i = 0; i < encoders_.size(); ++i) {
      PretrainStage stage;
      stage.name = fmt::format("layer {} ({} units)", i + 1, layers_[i]);
      stage.epochs = pretrain_epochs_;
      stage.learning_rate = pretrain_lr_;
      for (auto& p : encoders_[i]->parameters()) stage.parameters.push_back(p);
      for (auto& p : decoders_[i]->parameters()) stage.parameters.push_back(p);
      stage.loss = [this, i](const torch::Tensor& inputs) {
        // The input of layer i: the frozen output of the layers below it.
        torch::Tensor h = inputs.reshape({inputs.size(0), -1});
        {
          torch::NoGradGuard no_grad;
          for (std::size_t j = 0; j < i; ++j) h = torch::relu(encoders_[j]->forward(h));
        }
        auto code = torch::dropout(torch::relu(encoders_[i]->forward(h)), dropout_, true);
        return torch::mse_loss(decoders_[i]->forward(code), h);
      };
      stages.push_back(std::move(stage));
    }
    return stages;
  }

 private:
  const Params p_;
  const std::vector<std::int64_t>& layers_;
  const double dropout_, pretrain_lr_;
  const int pretrain_epochs_;
  std::vector<torch::nn::Linear> encoders_, decoders_;
};

Schema schema() { return schema_of<Params>(); }

}  // namespace
}  // namespace trafficid::sae_model

TRAFFICID_DEFINE_PLUGIN(trafficid::sae_model::Sae, trafficid::PluginKind::model, "sae", "0.1.0",
                        "Deep Packet's stacked autoencoder on LibTorch, greedy layer-wise pretraining", "",
                        trafficid::sae_model::schema)
