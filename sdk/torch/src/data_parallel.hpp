// The trainer's side of data-parallel training (TrainingContext::parallel): a Gloo process group
// of LibTorch's c10d, met through a FileStore, and the batches a worker takes its share of.
// Private to libtrafficid_torch: only data_parallel.cpp includes the c10d and gloo headers.
#pragma once
#include <memory>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "trafficid/model.hpp"

namespace trafficid {

class WorkerGroup {
 public:
  // One worker: nothing is sent. Several: meets the others (within the timeout) or throws Error.
  WorkerGroup(const DataParallel& parallel, std::string model);
  ~WorkerGroup();
  WorkerGroup(const WorkerGroup&) = delete;
  WorkerGroup& operator=(const WorkerGroup&) = delete;

  bool active() const { return world_ > 1; }
  int rank() const { return rank_; }
  int world() const { return world_; }

  // The gradients of this worker's rows, each weighted by `weight` (its share of the global
  // batch's loss weight), are summed over the workers, with `sums` (per-worker numbers: weights,
  // losses, stop requests) in the same message; then the gradients are divided by the sum of the
  // weights, the gradient of the global batch's mean loss. Returns `sums` summed.
  std::vector<double> reduce_gradients(const std::vector<torch::Tensor>& params, double weight,
                                       std::vector<double> sums);
  // The same sum, overlapped with the backward pass: `params`' gradients in buckets of about
  // `bucket_bytes` (the last layers' first, as backward computes them), each bucket's all-reduce
  // started as soon as its last gradient is computed (a hook on each parameter), in the same
  // order on every worker; `sums` go with the last bucket. watch() once; then each step
  // begin_step(weight, sums) before backward and finish_step() after it, which returns what
  // reduce_gradients would.
  void watch(const std::vector<torch::Tensor>& params, std::size_t bucket_bytes, std::size_t sums);
  void begin_step(double weight, const std::vector<double>& sums);
  std::vector<double> finish_step();
  // Worker 0's values of `tensors` (weights, buffers), in place on every worker.
  void broadcast(const std::vector<torch::Tensor>& tensors);
  // Worker 0's numbers (what it decided after validating), on every worker.
  std::vector<double> broadcast(std::vector<double> values);
  // Seconds spent in collectives since the last call (the all-reduce share of a step).
  double take_seconds();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_ = 1;
  std::string model_;
};

// The batches of a pass as the workers of a group take them: every worker draws the same order,
// each global batch of `batch_size` rows is cut in `world` contiguous shares, and a worker reads
// only its own (possibly none, at the end of a pass smaller than the group).
class GlobalBatches {
 public:
  GlobalBatches(SampleBatches& rows, std::size_t batch_size, int rank, int world)
      : rows_(rows), batch_size_(batch_size), rank_(rank), world_(world) {}
  void rewind(bool shuffle, std::uint64_t seed) {
    rows_.rewind(shuffle, seed);
    left_ = rows_.rows();
  }
  // False when the pass is over; else `share` holds this worker's rows of the next global batch
  // (rows 0: none) and `global_rows` the batch's size.
  bool next(FeatureBatch& share, std::size_t& global_rows);

 private:
  SampleBatches& rows_;
  std::size_t batch_size_;
  int rank_, world_;
  std::uint64_t left_ = 0;
};

}  // namespace trafficid
