// Dynamic int8 quantization of a trained network for inference, on oneDNN (Debian's libdnnl, the
// library LibTorch itself links): the weights of its fully connected and 1-D convolution layers
// become signed 8-bit with one scale per output channel, once; each batch's input to such a
// layer is quantized on the fly with one scale per row (unsigned 8-bit when the batch holds no
// negative value, as after a ReLU or for bytes, else signed), so a sample's result depends on
// the rest of its batch only through that choice; the layer accumulates in 32-bit integers and
// writes floats. This is PyTorch's quantize_dynamic extended to convolutions. Debian's LibTorch
// has no quantized engine of its own (supportedQEngines() is empty).
#pragma once
#include <torch/torch.h>

namespace trafficid::int8 {

// A copy of `network` for inference whose Linear layers and Conv1d layers (zero padding, one
// group) run in int8; the other layers are shared with `network`. With no such layer
// (quantizable_layers() 0), the copy computes what `network` does. A ReLU right after such a
// layer is applied inside it.
torch::nn::Sequential quantize(const torch::nn::Sequential& network);
// How many layers quantize() replaces.
int quantizable_layers(const torch::nn::Sequential& network);

}  // namespace trafficid::int8
