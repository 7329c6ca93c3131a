// cnn: Deep Packet's 1-D convolutional network (Lotfollahi et al.), every layer configurable.
// Defaults: the application-identification network of the public PyTorch reproduction:
// Conv1d(1, 200, k=4, s=3), Conv1d(200, 200, k=5, s=1), max pooling, fully connected 200-100-50,
// dropout 0.05. A sample of any shape is read as one channel of all its values.
#include <fmt/format.h>
#include <trafficid/declared_params.hpp>
#include <trafficid/sdk.hpp>
#include <trafficid/torch_model.hpp>

namespace trafficid::cnn_model {
namespace {

// One convolution: its fields declared once, as the whole model's are.
struct Conv {
  std::int64_t filters = 0, kernel = 0, stride = 0;
  template <class Bind>
  void fields(Bind& bind) {
    bind(filters, ParamSpec::integer("filters", 200, "output channels").range(1, 4096));
    bind(kernel, ParamSpec::integer("kernel", 4, "kernel size").range(1, 1024));
    bind(stride, ParamSpec::integer("stride", 1, "stride").range(1, 1024));
  }
};
void from_json(const Json& j, Conv& c) { c = read_params<Conv>(j); }

struct Params {
  std::vector<Conv> conv;
  std::int64_t pool_kernel = 0, pool_stride = 0;
  std::vector<std::int64_t> fc;
  double dropout = 0;
  bool batch_norm = false;
  template <class Bind>
  void fields(Bind& bind) {
    bind(conv, ParamSpec::table_list("conv", schema_of<Conv>(),
                                     Json::array({{{"filters", 200}, {"kernel", 4}, {"stride", 3}},
                                                  {{"filters", 200}, {"kernel", 5}, {"stride", 1}}}),
                                     "1-D convolutions in order, each followed by ReLU (traffic characterisation in "
                                     "the paper: kernel 5 stride 3, then kernel 4 stride 3)"));
    bind(pool_kernel,
         ParamSpec::integer("pool_kernel", 2, "max pooling after the convolutions (0: none)").range(0, 1024));
    bind(pool_stride, ParamSpec::integer("pool_stride", 2, "max pooling stride").range(1, 1024));
    bind(fc, ParamSpec::list("fc", ParamType::integer_list, Json::array({200, 100, 50}),
                             "fully connected layers (ReLU, dropout)"));
    bind(dropout, ParamSpec::real("dropout", 0.05, "dropout after each fully connected layer").range(0, 0.95));
    bind(batch_norm, ParamSpec::boolean("batch_norm", false, "batch normalisation after each convolution"));
  }
};

class Cnn final : public TorchModel {
 public:
  explicit Cnn(const PluginArgs& args)
      : TorchModel(args),
        p_(read_params<Params>(args.params)),
        conv_(p_.conv),
        pool_kernel_(p_.pool_kernel),
        pool_stride_(p_.pool_stride),
        fc_(p_.fc),
        dropout_(p_.dropout),
        batch_norm_(p_.batch_norm) {}

  torch::nn::Sequential network(const ModelInput& input) override {
    namespace nn = torch::nn;
    nn::Sequential features;
    features->push_back(nn::Functional([](const torch::Tensor& x) { return x.reshape({x.size(0), 1, -1}); }));
    std::int64_t channels = 1;
    for (const auto& c : conv_) {
      features->push_back(nn::Conv1d(nn::Conv1dOptions(channels, c.filters, c.kernel).stride(c.stride)));
      if (batch_norm_) features->push_back(nn::BatchNorm1d(c.filters));
      features->push_back(nn::ReLU());
      channels = c.filters;
    }
    if (pool_kernel_ > 0) features->push_back(nn::MaxPool1d(nn::MaxPool1dOptions(pool_kernel_).stride(pool_stride_)));
    features->push_back(nn::Flatten());
    std::vector<std::int64_t> probe_shape = {1};
    probe_shape.insert(probe_shape.end(), input.spec.shape.begin(), input.spec.shape.end());
    std::int64_t width = 0;
    try {
      torch::NoGradGuard no_grad;
      width = features->forward(torch::zeros(probe_shape)).size(1);
    } catch (const c10::Error&) {
      throw Error(
          fmt::format("cnn: the convolutions and pooling leave nothing of a {}-value sample; use smaller "
                      "kernels or strides (models.cnn.conv)",
                      input.spec.elements()));
    }
    nn::Sequential net;
    for (const auto& layer : *features)
      net->push_back(layer);  // one flat Sequential: checkpoints name layers 0, 1, ...
    std::int64_t in = width;
    for (auto units : fc_) {
      net->push_back(nn::Linear(in, units));
      net->push_back(nn::ReLU());
      if (dropout_ > 0) net->push_back(nn::Dropout(dropout_));
      in = units;
    }
    net->push_back("output", nn::Linear(in, static_cast<std::int64_t>(input.class_names.size())));
    return net;
  }

 private:
  const Params p_;
  const std::vector<Conv>& conv_;
  const std::int64_t pool_kernel_, pool_stride_;
  const std::vector<std::int64_t>& fc_;
  const double dropout_;
  const bool batch_norm_;
};

Schema schema() { return schema_of<Params>(); }

}  // namespace
}  // namespace trafficid::cnn_model

TRAFFICID_DEFINE_PLUGIN(trafficid::cnn_model::Cnn, trafficid::PluginKind::model, "cnn", "0.1.0",
                        "Deep Packet's 1-D CNN on LibTorch, every layer configurable", "", trafficid::cnn_model::schema)
