// LibTorch models: a plugin defines its network (and, if it has one, a pretraining phase or
// statistics of the training split); the framework's trainer in libtrafficid_torch.so does the
// rest: optimiser, schedule, class weights, early stopping on validation macro F1, a checkpoint
// every epoch and resuming from it, progress, prediction, saving and loading. A new model
// plugin is a class deriving from TorchModel, a schema, and TRAFFICID_DEFINE_PLUGIN.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "trafficid/model.hpp"
#include "trafficid/plugin.hpp"

#if defined(TRAFFICID_TORCH_BUILDING)
#define TRAFFICID_TORCH_API BOOST_SYMBOL_EXPORT
#else
#define TRAFFICID_TORCH_API BOOST_SYMBOL_VISIBLE
#endif

namespace trafficid {

// A phase before supervised training (a stacked autoencoder's greedy layer-wise pretraining):
// `loss` of a batch of inputs, minimised over `parameters` with Adam for `epochs` epochs.
struct PretrainStage {
  std::string name;
  int epochs = 0;
  double learning_rate = 1e-3;
  std::vector<torch::Tensor> parameters;
  std::function<torch::Tensor(const torch::Tensor& inputs)> loss;
};

// A batch's features as a float tensor [rows, *shape]: bytes scaled to [0, 1], floats as stored.
TRAFFICID_TORCH_API torch::Tensor to_tensor(const FeatureBatch& batch);

class TRAFFICID_TORCH_API TorchModel : public Model {
 public:
  explicit TorchModel(const PluginArgs& args);
  ~TorchModel() override;

  // What a model plugin defines. The network, a Sequential (wrap anything else in one), maps [rows, *shape] floats to
  // [rows, classes] logits.
  virtual torch::nn::Sequential network(const ModelInput& input) = 0;
  // Optional: phases before supervised training (none by default).
  virtual std::vector<PretrainStage> pretraining() { return {}; }
  // Optional: statistics of the training split, before any training (input standardisation);
  // keep them in the network's buffers so they are saved with it.
  virtual void prepare(SampleBatches& train) { (void)train; }

  // Done by the framework.
  void build(const ModelInput& input) final;
  ModelInfo info() const final;
  void fit(SampleBatches& train, SampleBatches& validation, const TrainingContext& context) final;
  std::vector<float> predict_proba(const FeatureBatch& batch) final;
  void save(const std::filesystem::path& file) const final;
  void load(const std::filesystem::path& file) final;

 protected:
  HostServices& host() const;
  const ModelInput& input() const;
  torch::nn::Sequential& module();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace trafficid
