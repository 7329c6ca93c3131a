// int8 inference (sdk/torch/src/int8.cpp) against the float32 layers it replaces: fully
// connected layers with unsigned and signed inputs, 1-D convolutions with stride, padding and
// dilation, a convolution reading the previous one's channels-last output, a fused ReLU, and the
// layers it must leave in float32.
// REQUIRE only: torch/torch.h defines a CHECK of its own (c10/util/Logging.h) over Catch2's.
#include <catch2/catch.hpp>

#include "int8.hpp"

namespace nn = torch::nn;

namespace {

// The largest difference between the two networks' outputs, relative to the largest output.
double relative_error(nn::Sequential& a, nn::Sequential& b, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  auto ya = a->forward(x), yb = b->forward(x);
  REQUIRE(ya.sizes() == yb.sizes());
  return (ya - yb).abs().max().item<double>() / ya.abs().max().item<double>();
}

}  // namespace

TEST_CASE("int8 fully connected layers follow float32 within 2% of the output's range", "[int8]") {
  torch::manual_seed(3);
  nn::Sequential net(nn::Linear(300, 64), nn::ReLU(), nn::Linear(64, 10));
  REQUIRE(trafficid::int8::quantizable_layers(net) == 2);
  auto q = trafficid::int8::quantize(net);
  REQUIRE(q->size() == 2);                                                 // the ReLU runs inside the first int8 layer
  REQUIRE(relative_error(net, q, torch::randn({7, 300})) < 0.02);          // signed inputs
  REQUIRE(relative_error(net, q, torch::rand({33, 300})) < 0.02);          // unsigned inputs
  REQUIRE(relative_error(net, q, torch::rand({1, 300}) * 1000.0) < 0.02);  // one row, any scale
}

TEST_CASE("int8 1-D convolutions: stride, padding, dilation, channels-last chaining", "[int8]") {
  torch::manual_seed(4);
  nn::Sequential net(nn::Conv1d(nn::Conv1dOptions(3, 16, 5).stride(2).padding(2).dilation(2)), nn::ReLU(),
                     nn::Conv1d(nn::Conv1dOptions(16, 8, 3)), nn::Flatten(), nn::Linear(8 * 21, 4));
  REQUIRE(trafficid::int8::quantizable_layers(net) == 3);
  auto q = trafficid::int8::quantize(net);
  const auto x = torch::randn({5, 3, 50});
  REQUIRE(relative_error(net, q, x) < 0.03);
  torch::NoGradGuard no_grad;
  REQUIRE(torch::equal(net->forward(x).argmax(1), q->forward(x).argmax(1)));
}

TEST_CASE("int8: a row's result does not depend on the rows beside it in its batch", "[int8]") {
  torch::manual_seed(5);
  nn::Sequential net(nn::Conv1d(nn::Conv1dOptions(1, 8, 4).stride(3)), nn::ReLU(), nn::Flatten(),
                     nn::Linear(8 * 33, 5));
  auto q = trafficid::int8::quantize(net);
  auto x = torch::rand({6, 1, 100});
  x[2] *= 50.0;  // a row with a far larger range than the others
  torch::NoGradGuard no_grad;
  const auto together = q->forward(x);
  for (std::int64_t r = 0; r < 6; ++r)
    REQUIRE(torch::allclose(together[r], q->forward(x.narrow(0, r, 1))[0], 1e-5, 1e-6));
}

TEST_CASE("int8 leaves grouped and 'same'-padded convolutions and other layers in float32", "[int8]") {
  nn::Sequential net(nn::Conv1d(nn::Conv1dOptions(4, 4, 3).groups(2)),
                     nn::Conv1d(nn::Conv1dOptions(4, 4, 3).padding(torch::kSame)), nn::BatchNorm1d(4), nn::Flatten());
  REQUIRE(trafficid::int8::quantizable_layers(net) == 0);
  auto q = trafficid::int8::quantize(net);
  REQUIRE(q->size() == net->size());
  net->eval();
  REQUIRE(relative_error(net, q, torch::randn({2, 4, 10})) == 0.0);
}
