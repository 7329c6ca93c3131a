// Dynamic int8 quantization on oneDNN; see int8.hpp.
#include "int8.hpp"

#include <map>
#include <optional>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>

namespace trafficid::int8 {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using DT = memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A layer's geometry: an inner product (fully connected) or a 1-D convolution.
struct Shape {
  bool conv = false;
  std::int64_t out = 0, in = 0, kernel = 1, stride = 1, padding = 0, dilation = 1;
};

// What one input shape (batch rows, width, sign, layout) needs: the primitive, its reorders in and
// out. oneDNN 2.6 fixes a convolution's or inner product's shapes when it makes the primitive.
struct Prepared {
  dnnl::primitive compute, quantize_input;
  dnnl::reorder reorder_output;
  memory::desc src_f32, src_q, dst, dst_torch, scratchpad;
  memory weights;
  bool dst_direct = true;
};

class Int8LayerImpl : public torch::nn::Module {
 public:
  Int8LayerImpl(const Shape& shape, const torch::Tensor& weight, const torch::Tensor& bias, bool relu)
      : shape_(shape), relu_(relu) {
    // One scale per output channel: the largest |weight| of the channel maps to 127.
    auto w = weight.detach().to(torch::kFloat32).reshape({shape.out, -1});
    auto channel_max = w.abs().amax(1).clamp_min(1e-12f);
    weight_scales_ = (channel_max / 127.0f).contiguous();
    weight_q_ = w.div(weight_scales_.unsqueeze(1)).round().clamp(-127, 127).to(torch::kInt8).contiguous();
    bias_ = bias.defined() ? bias.detach().to(torch::kFloat32).contiguous() : torch::zeros({shape.out});
  }

  torch::Tensor forward(const torch::Tensor& input) {
    // A convolution's output is channels-last in memory (oneDNN's layout for int8, no reorder),
    // viewed as [rows, channels, width]; a following int8 convolution reads it as it is.
    auto x = input.to(torch::kFloat32);
    if (!shape_.conv) x = x.reshape({x.size(0), -1}).contiguous();
    const bool channels_last = shape_.conv && x.stride(1) == 1 && x.stride(2) == x.size(1);
    if (shape_.conv && !channels_last) x = x.contiguous();
    // One scale per row (sample), so that a sample's result does not depend on the others of its
    // batch: its largest |value| maps to 255 (no negative value in the whole batch) or 127.
    const std::int64_t rows = x.size(0);
    const std::vector<std::int64_t> within_row =
        shape_.conv ? std::vector<std::int64_t>{1, 2} : std::vector<std::int64_t>{1};
    auto high = x.amax(within_row), low = x.amin(within_row);
    const bool is_signed = rows > 0 && low.min().item<float>() < 0;
    auto scales = torch::maximum(high, -low).div_(is_signed ? 127.0f : 255.0f);
    scales.masked_fill_(scales <= 0, 1.0f);
    const auto inverse = scales.reciprocal().contiguous();
    const std::int64_t width = shape_.conv ? x.size(2) : 1;
    auto out_rows =
        shape_.conv ? output({x.size(0), out_width(width), shape_.out}) : torch::empty({x.size(0), shape_.out});
    auto out = shape_.conv ? out_rows.permute({0, 2, 1}) : out_rows;
    // In chunks of a power of two rows (200 = 128 + 64 + 8): a primitive is made for each shape,
    // and a predictor's batches come in every size from 1 to 256.
    const std::int64_t in_row = x.numel() / std::max<std::int64_t>(rows, 1),
                       out_row = out_rows.numel() / std::max<std::int64_t>(rows, 1);
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::int64_t done = 0; done < rows;) {
      const std::int64_t chunk = std::int64_t{1} << (63 - __builtin_clzll(static_cast<std::uint64_t>(rows - done)));
      const Prepared& p = prepared(chunk, width, is_signed, channels_last);
      run(p, x.data_ptr<float>() + done * in_row, out_rows.data_ptr<float>() + done * out_row,
          inverse.data_ptr<float>() + done);
      done += chunk;
    }
    finish(out_rows, scales);
    return out;
  }

 private:
  // Quantizes `rows` rows of input, then the layer's int8 product into `out` (floats).
  // `inverse`: 1 / each row's scale.
  void run(const Prepared& p, float* in, float* out, float* inverse) {
    dnnl::stream stream(cpu_engine());
    memory inverse_mem({{p.src_f32.dims()[0]}, DT::f32, Tag::a}, cpu_engine(), inverse);
    memory src_f32(p.src_f32, cpu_engine(), in);
    memory src_q(p.src_q, cpu_engine(), buffer(quantized_, p.src_q.get_size()));
    p.quantize_input.execute(
        stream, {{DNNL_ARG_FROM, src_f32}, {DNNL_ARG_TO, src_q}, {DNNL_ARG_ATTR_OUTPUT_SCALES, inverse_mem}});
    memory out_torch(p.dst_torch, cpu_engine(), out);
    memory dst = p.dst_direct ? out_torch : memory(p.dst, cpu_engine());
    memory scratchpad(p.scratchpad, cpu_engine(), buffer(scratchpad_, p.scratchpad.get_size()));
    p.compute.execute(
        stream,
        {{DNNL_ARG_SRC, src_q}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
    if (!p.dst_direct) p.reorder_output.execute(stream, dst, out_torch);
    stream.wait();
  }

  // The layer's large buffers (quantized input, working memory, a convolution's output) are kept
  // from batch to batch and grow only. Taken and given back at every batch (100 MB each for the
  // paper CNN), they fragmented the heap, which trafficid keeps rather than unmaps: predict on
  // captures/ peaked at 6.4 GB, against 2.0 GB in float32.
  static void* buffer(torch::Tensor& kept, std::size_t bytes) {
    if (!kept.defined() || static_cast<std::size_t>(kept.numel()) < bytes)
      kept = torch::empty({static_cast<std::int64_t>(std::max<std::size_t>(bytes, 1))}, torch::kUInt8);
    return kept.data_ptr();
  }
  // The output, in the kept buffer unless the last batch's output is still held (a view of it).
  torch::Tensor output(const std::vector<std::int64_t>& sizes) {
    std::int64_t n = 1;
    for (auto s : sizes) n *= s;
    if (!output_.defined() || output_.storage().use_count() > 1 || output_.numel() < n) output_ = torch::empty({n});
    return output_.narrow(0, 0, n).view(sizes);
  }

  // The primitive scaled each channel's sum by its weights' scale. The rows' scales, known only
  // now, the bias and the ReLU follow, on the output's rows of a value per channel (oneDNN 2.6
  // takes output scales given at run time for matmul and reorders only, not for convolutions or
  // inner products).
  void finish(torch::Tensor& rows, const torch::Tensor& scales) const {
    rows.mul_(shape_.conv ? scales.view({-1, 1, 1}) : scales.view({-1, 1})).add_(bias_);
    if (relu_) rows.relu_();
  }

  std::int64_t out_width(std::int64_t width) const {
    return (width + 2 * shape_.padding - shape_.dilation * (shape_.kernel - 1) - 1) / shape_.stride + 1;
  }

  const Prepared& prepared(std::int64_t rows, std::int64_t width, bool is_signed, bool channels_last) {
    const auto key = std::make_tuple(rows, width, is_signed, channels_last);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    Prepared p;
    const DT src_type = is_signed ? DT::s8 : DT::u8;
    dnnl::primitive_attr attr;
    const float* scale = weight_scales_.data_ptr<float>();
    attr.set_output_scales(1 << 1, std::vector<float>(scale, scale + shape_.out));  // per output channel
    // The primitive's working memory (an int32 sum of a convolution's whole output: 100 MB for
    // 256 rows of the paper CNN) is the layer's, one buffer for all of its primitives.
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    memory::desc weights_any;
    if (shape_.conv) {
      const memory::dims src_dims{rows, shape_.in, width}, dst_dims{rows, shape_.out, out_width(width)};
      p.src_f32 = memory::desc(src_dims, DT::f32, channels_last ? Tag::acb : Tag::abc);
      p.dst_torch = memory::desc(dst_dims, DT::f32, Tag::acb);
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                        memory::desc(src_dims, src_type, Tag::any),
                                        memory::desc({shape_.out, shape_.in, shape_.kernel}, DT::s8, Tag::any),
                                        memory::desc(dst_dims, DT::f32, Tag::any), {shape_.stride},
                                        {shape_.dilation - 1}, {shape_.padding}, {shape_.padding});
      weights_any = adopt<dnnl::convolution_forward>(p, {d, attr, cpu_engine()});
    } else {
      const memory::dims src_dims{rows, shape_.in}, dst_dims{rows, shape_.out};
      p.src_f32 = memory::desc(src_dims, DT::f32, Tag::ab);
      p.dst_torch = memory::desc(dst_dims, DT::f32, Tag::ab);
      dnnl::inner_product_forward::desc d(
          dnnl::prop_kind::forward_inference, memory::desc(src_dims, src_type, Tag::any),
          memory::desc({shape_.out, shape_.in}, DT::s8, Tag::any), memory::desc(dst_dims, DT::f32, Tag::any));
      weights_any = adopt<dnnl::inner_product_forward>(p, {d, attr, cpu_engine()});
    }
    p.weights = reordered_weights(weights_any);
    dnnl::primitive_attr quantize;
    quantize.set_output_scales(1 << 0, {DNNL_RUNTIME_F32_VAL});  // per row
    p.quantize_input =
        dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), p.src_f32, cpu_engine(), p.src_q, quantize));
    p.dst_direct = p.dst == p.dst_torch;
    if (!p.dst_direct)
      p.reorder_output = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), p.dst, cpu_engine(), p.dst_torch));
    return cache_.emplace(key, std::move(p)).first->second;
  }

  // The primitive of `pd` and the layouts it chose for its input, output and working memory into
  // `p`; the layout it chose for the weights.
  template <class Primitive>
  static memory::desc adopt(Prepared& p, const typename Primitive::primitive_desc& pd) {
    p.compute = Primitive(pd);
    p.src_q = pd.src_desc();
    p.dst = pd.dst_desc();
    p.scratchpad = pd.scratchpad_desc();
    return pd.weights_desc();
  }

  // The weights in the layout the primitive chose, kept once per layout.
  memory reordered_weights(const memory::desc& layout) {
    for (const auto& [desc, mem] : weights_)
      if (desc == layout) return mem;
    const memory::dims dims =
        shape_.conv ? memory::dims{shape_.out, shape_.in, shape_.kernel} : memory::dims{shape_.out, shape_.in};
    memory plain({dims, DT::s8, shape_.conv ? Tag::abc : Tag::ab}, cpu_engine(), weight_q_.data_ptr());
    memory chosen(layout, cpu_engine());
    dnnl::stream stream(cpu_engine());
    dnnl::reorder(plain, chosen).execute(stream, plain, chosen);
    stream.wait();
    weights_.emplace_back(layout, chosen);
    return chosen;
  }

  Shape shape_;
  bool relu_ = false;
  torch::Tensor weight_scales_, weight_q_, bias_;
  torch::Tensor quantized_, scratchpad_, output_;  // kept buffers: buffer(), output()
  std::mutex mutex_;
  std::map<std::tuple<std::int64_t, std::int64_t, bool, bool>, Prepared> cache_;
  std::vector<std::pair<memory::desc, memory>> weights_;
};
TORCH_MODULE(Int8Layer);

// The geometry of a Linear or Conv1d layer that has an int8 version, or nothing for other kinds
// and for convolutions with groups, a padding mode other than zeros, or computed ("same") padding.
std::optional<Shape> int8_shape(const std::shared_ptr<torch::nn::Module>& module) {
  Shape s;
  if (auto linear = std::dynamic_pointer_cast<torch::nn::LinearImpl>(module)) {
    s.out = linear->options.out_features();
    s.in = linear->options.in_features();
    return s;
  }
  auto conv = std::dynamic_pointer_cast<torch::nn::Conv1dImpl>(module);
  if (!conv) return std::nullopt;
  const auto& o = conv->options;
  const auto* padding = c10::get_if<torch::ExpandingArray<1>>(&o.padding());
  if (o.groups() != 1 || padding == nullptr || !c10::holds_alternative<torch::enumtype::kZeros>(o.padding_mode()))
    return std::nullopt;
  s.conv = true;
  s.out = o.out_channels();
  s.in = o.in_channels();
  s.kernel = (*o.kernel_size())[0];
  s.stride = (*o.stride())[0];
  s.padding = (**padding)[0];
  s.dilation = (*o.dilation())[0];
  return s;
}

bool is_relu(const torch::nn::AnyModule& module) {
  return std::dynamic_pointer_cast<torch::nn::ReLUImpl>(module.ptr()) != nullptr;
}

}  // namespace

torch::nn::Sequential quantize(const torch::nn::Sequential& network) {
  const std::vector<torch::nn::AnyModule> layers(network->begin(), network->end());
  torch::nn::Sequential out;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto module = layers[i].ptr();
    const bool relu_next = i + 1 < layers.size() && is_relu(layers[i + 1]);
    if (auto shape = int8_shape(module)) {
      const auto weights = module->named_parameters(false);
      const auto* bias = weights.find("bias");
      out->push_back(Int8Layer(*shape, weights["weight"], bias ? *bias : torch::Tensor(), relu_next));
      if (relu_next) ++i;  // applied inside the int8 layer
    } else {
      out->push_back(layers[i]);
    }
  }
  return out;
}

int quantizable_layers(const torch::nn::Sequential& network) {
  int count = 0;
  for (const auto& layer : *network) count += int8_shape(layer.ptr()).has_value() ? 1 : 0;
  return count;
}

}  // namespace trafficid::int8
