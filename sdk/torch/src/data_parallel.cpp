#include "data_parallel.hpp"

#include <chrono>
#include <cstdlib>
#include <fmt/format.h>
#include <map>
#include <mutex>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "trafficid/error.hpp"

namespace trafficid {

using Clock = std::chrono::steady_clock;

struct WorkerGroup::Impl {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  double seconds = 0;
  // Overlapped gradients (watch()).
  struct Bucket {
    std::vector<std::size_t> params;
    torch::Tensor flat;
    std::size_t pending = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<torch::Tensor> watched;
  std::vector<unsigned> hooks;
  std::vector<std::pair<std::size_t, std::int64_t>> place;  // parameter -> bucket, offset
  std::vector<bool> arrived;
  std::vector<Bucket> buckets;
  std::size_t next_launch = 0, sums = 0;  // sums: numbers at the end of the last bucket
  double weight = 0;
  bool stepping = false;
  void on_gradient(std::size_t i, const torch::Tensor& g);
  void launch_ready();
};

namespace {

// Runs a collective; a peer that died (its connection reset) or that does not answer within the
// timeout ends this worker too, with the reason.
template <typename Body>
void collective(const std::string& model, int rank, int world, const char* what, double& seconds, Body&& body) {
  const auto started = Clock::now();
  try {
    body()->wait();
  } catch (const std::exception& e) {
    throw Error(fmt::format("model {}: worker {} of {}: {} failed, another worker died or stopped answering ({})",
                            model, rank, world, what, e.what()));
  }
  seconds += std::chrono::duration<double>(Clock::now() - started).count();
}

// A parameter's gradient after the all-reduce: the workers' weighted sum over the global batch's
// weight (the gradient of its mean loss); zero when the batch weighed nothing.
void set_gradient(const torch::Tensor& p, const torch::Tensor& summed, double total_weight) {
  auto param = p;
  if (!param.grad().defined()) param.mutable_grad() = torch::zeros_like(param);
  if (total_weight > 0) param.mutable_grad().copy_(summed.view(param.sizes()) / total_weight);
  else param.mutable_grad().zero_();
}

// MASTER_ADDR, when set (the workers then meet over TCP): empty otherwise.
std::string master_address() {
  const char* address = std::getenv("MASTER_ADDR");
  return address ? address : "";
}

}  // namespace

void WorkerGroup::Impl::on_gradient(std::size_t i, const torch::Tensor& g) {
  if (!stepping || arrived[i]) return;
  arrived[i] = true;
  const auto& [b, offset] = place[i];
  auto& bucket = buckets[b];
  bucket.flat.narrow(0, offset, watched[i].numel()).copy_(g.reshape({-1})).mul_(weight);
  --bucket.pending;
  launch_ready();
}

// Buckets start in their order, on every worker alike: a bucket ready before an earlier one waits.
void WorkerGroup::Impl::launch_ready() {
  while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
    std::vector<torch::Tensor> tensors{buckets[next_launch].flat};
    buckets[next_launch].work = group->allreduce(tensors);
    ++next_launch;
  }
}

namespace {

// The network device Gloo talks over: GLOO_SOCKET_IFNAME names an interface (as for PyTorch);
// else the address this host's name resolves to (the cluster's network on a cluster node).
std::shared_ptr<::gloo::transport::Device> gloo_device() {
  if (const char* name = std::getenv("GLOO_SOCKET_IFNAME"); name && *name)
    return c10d::ProcessGroupGloo::createDeviceForInterface(name);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// MASTER_ADDR and MASTER_PORT (as for PyTorch): the workers meet at worker 0's TCP store there,
// one for the process's life (worker 0 serves it), each training under a prefix of its own.
// Without them, at the rendezvous file in the run folder.
c10::intrusive_ptr<c10d::Store> rendezvous(const DataParallel& parallel, std::chrono::milliseconds timeout) {
  const std::string address = master_address();
  if (address.empty()) {
    auto store = c10::make_intrusive<c10d::FileStore>(parallel.store.string(), parallel.world_size);
    store->setTimeout(timeout);
    return store;
  }
  const char* port_text = std::getenv("MASTER_PORT");
  const long port = port_text && *port_text ? std::strtol(port_text, nullptr, 10) : 29500;
  if (port <= 0 || port > 65535) throw Error(fmt::format("MASTER_PORT={}: not a TCP port", port_text));
  static std::mutex mutex;
  static std::map<std::string, c10::intrusive_ptr<c10d::Store>> stores;
  std::lock_guard lock(mutex);
  auto& store = stores[fmt::format("{}:{}", address, port)];
  if (!store) {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(port);
    options.isServer = parallel.rank == 0;
    options.numWorkers = parallel.world_size;
    options.waitWorkers = false;
    options.timeout = timeout;
    store = c10::make_intrusive<c10d::TCPStore>(address, options);
  }
  store->setTimeout(timeout);
  return c10::make_intrusive<c10d::PrefixStore>(parallel.store.filename().string() + "/", store);
}

}  // namespace

WorkerGroup::WorkerGroup(const DataParallel& parallel, std::string model)
    : impl_(std::make_unique<Impl>()), rank_(parallel.rank), world_(parallel.world_size), model_(std::move(model)) {
  if (world_ <= 1) return;
  if (rank_ < 0 || rank_ >= world_)
    throw Error(fmt::format("model {}: worker {} of a group of {}: no such worker", model_, rank_, world_));
  const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(parallel.timeout_seconds * 1000));
  try {
    auto store = rendezvous(parallel, timeout);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(gloo_device());
    options->threads = 1;
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank_, world_, options);
  } catch (const std::exception& e) {
    const std::string address = master_address();
    const bool tcp = !address.empty();
    throw Error(fmt::format(
        "model {}: worker {} of {} could not meet the others through {} within {:.0f} s ({}); a "
        "worker that did not start, or {}",
        model_, rank_, world_, tcp ? fmt::format("MASTER_ADDR={}", address) : parallel.store.string(),
        parallel.timeout_seconds, e.what(),
        tcp ? "an address or port the others cannot reach" : "a folder that is not shared between the machines"));
  }
}

WorkerGroup::~WorkerGroup() {
  // The parameters outlive the group: their hooks go with it.
  for (std::size_t i = 0; i < impl_->hooks.size(); ++i) impl_->watched[i].remove_hook(impl_->hooks[i]);
}

void WorkerGroup::watch(const std::vector<torch::Tensor>& params, std::size_t bucket_bytes, std::size_t sums) {
  auto& d = *impl_;
  if (!active() || !d.watched.empty()) return;
  d.sums = sums;
  d.watched = params;
  d.place.resize(params.size());
  d.arrived.assign(params.size(), false);
  // The last parameters first: backward computes their gradients first.
  std::int64_t filled = 0;
  for (std::size_t k = params.size(); k-- > 0;) {
    if (d.buckets.empty() || filled * 4 >= static_cast<std::int64_t>(bucket_bytes)) {
      d.buckets.emplace_back();
      filled = 0;
    }
    d.buckets.back().params.push_back(k);
    d.place[k] = {d.buckets.size() - 1, filled};
    filled += params[k].numel();
  }
  for (auto& b : d.buckets) {
    std::int64_t n = 0;
    for (auto k : b.params) n += params[k].numel();
    if (&b == &d.buckets.back()) n += static_cast<std::int64_t>(sums);
    b.flat = torch::zeros({n}, torch::kFloat32);
  }
  for (std::size_t k = 0; k < params.size(); ++k)
    d.hooks.push_back(
        d.watched[k].register_hook([impl = impl_.get(), k](torch::Tensor g) { impl->on_gradient(k, g); }));
}

void WorkerGroup::begin_step(double weight, const std::vector<double>& sums) {
  auto& d = *impl_;
  if (!active()) return;
  if (sums.size() != d.sums)
    throw Error(fmt::format("model {}: {} numbers to sum, {} watched", model_, sums.size(), d.sums));
  auto tail = d.buckets.back().flat.narrow(0, d.buckets.back().flat.numel() - static_cast<std::int64_t>(d.sums),
                                           static_cast<std::int64_t>(d.sums));
  for (std::size_t i = 0; i < d.sums; ++i) tail[static_cast<std::int64_t>(i)] = sums[i];
  d.weight = weight;
  d.next_launch = 0;
  std::fill(d.arrived.begin(), d.arrived.end(), false);
  for (auto& b : d.buckets) {
    b.pending = b.params.size();
    b.work.reset();
  }
  d.stepping = true;
}

std::vector<double> WorkerGroup::finish_step() {
  auto& d = *impl_;
  if (!active()) return {};
  d.stepping = false;
  // Gradients backward did not give (a share of no rows, a parameter this step did not use): zeros.
  for (std::size_t k = 0; k < d.watched.size(); ++k)
    if (!d.arrived[k]) {
      auto& b = d.buckets[d.place[k].first];
      b.flat.narrow(0, d.place[k].second, d.watched[k].numel()).zero_();
      --b.pending;
    }
  d.launch_ready();
  collective(model_, rank_, world_, "summing the gradients", d.seconds, [&] {
    for (std::size_t b = 0; b + 1 < d.buckets.size(); ++b) d.buckets[b].work->wait();
    return d.buckets.back().work;
  });
  const auto& last = d.buckets.back().flat;
  const float* tail = last.data_ptr<float>() + last.numel() - static_cast<std::int64_t>(d.sums);
  std::vector<double> sums(tail, tail + d.sums);
  for (std::size_t k = 0; k < d.watched.size(); ++k)
    set_gradient(d.watched[k], d.buckets[d.place[k].first].flat.narrow(0, d.place[k].second, d.watched[k].numel()),
                 sums[0]);
  return sums;
}

std::vector<double> WorkerGroup::reduce_gradients(const std::vector<torch::Tensor>& params, double weight,
                                                  std::vector<double> sums) {
  if (!active()) return sums;
  // One message for the whole step: every gradient, flattened, then the numbers to sum.
  std::vector<torch::Tensor> parts;
  parts.reserve(params.size() + 1);
  for (const auto& p : params) {
    auto g = p.grad();
    parts.push_back(g.defined() ? g.reshape({-1}) * weight : torch::zeros({p.numel()}, p.options()));
  }
  parts.push_back(torch::tensor(std::vector<float>(sums.begin(), sums.end()), torch::kFloat32));
  std::vector<torch::Tensor> flat{torch::cat(parts)};
  collective(model_, rank_, world_, "summing the gradients", impl_->seconds,
             [&] { return impl_->group->allreduce(flat); });
  const auto total_weight = flat[0][flat[0].numel() - static_cast<std::int64_t>(sums.size())].item<double>();
  std::int64_t offset = 0;
  for (const auto& p : params) {
    set_gradient(p, flat[0].narrow(0, offset, p.numel()), total_weight);
    offset += p.numel();
  }
  auto* tail = flat[0].narrow(0, offset, static_cast<std::int64_t>(sums.size())).contiguous().data_ptr<float>();
  for (std::size_t i = 0; i < sums.size(); ++i) sums[i] = tail[i];
  return sums;
}

void WorkerGroup::broadcast(const std::vector<torch::Tensor>& tensors) {
  if (!active() || tensors.empty()) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (const auto& t : tensors) parts.push_back(t.detach().reshape({-1}).to(torch::kFloat64));
  std::vector<torch::Tensor> flat{torch::cat(parts)};
  collective(model_, rank_, world_, "receiving worker 0's model", impl_->seconds,
             [&] { return impl_->group->broadcast(flat); });
  std::int64_t offset = 0;
  for (const auto& t : tensors) {
    auto mutable_t = t;
    mutable_t.detach().copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()).to(t.dtype()));
    offset += t.numel();
  }
}

std::vector<double> WorkerGroup::broadcast(std::vector<double> values) {
  if (!active() || values.empty()) return values;
  std::vector<torch::Tensor> flat{torch::tensor(values, torch::kFloat64)};
  collective(model_, rank_, world_, "hearing worker 0's decision", impl_->seconds,
             [&] { return impl_->group->broadcast(flat); });
  const double* v = flat[0].data_ptr<double>();
  return std::vector<double>(v, v + values.size());
}

double WorkerGroup::take_seconds() {
  const double s = impl_->seconds;
  impl_->seconds = 0;
  return s;
}

bool GlobalBatches::next(FeatureBatch& share, std::size_t& global_rows) {
  if (left_ == 0) return false;
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(batch_size_, left_));
  const std::size_t world = static_cast<std::size_t>(world_), rank = static_cast<std::size_t>(rank_);
  const std::size_t lo = n * rank / world, hi = n * (rank + 1) / world;
  rows_.skip(lo);
  if (hi == lo || !rows_.next(hi - lo, share)) {
    share.rows = 0;
    share.labels.clear();
  }
  rows_.skip(n - hi);
  left_ -= n;
  global_rows = n;
  return true;
}

}  // namespace trafficid
