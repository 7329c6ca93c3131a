// Times a model plugin's training step and batched inference through the framework (the
// host's registry, the plugin's fit() with the framework's trainer, predict_proba), on random
// data of Deep Packet's shape: the side of tests/bench/cnn_bench.sh that is trafficid.
// usage: model_bench PLUGIN_DIR MODEL THREADS [BATCH] [STEPS] [--set name=json]...
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <unistd.h>

#include "runtime/allocator.hpp"
#include "runtime/host_log.hpp"
#include "runtime/plugin_registry.hpp"
#include "config/schema_check.hpp"
#include "trafficid/model.hpp"

using namespace trafficid;

namespace {

class RandomBatches final : public SampleBatches {
 public:
  RandomBatches(std::size_t rows, std::size_t classes) : rows_(rows) {
    spec_.dtype = DType::u8;
    spec_.shape = {1500};
    std::mt19937_64 rng(42);
    data_.resize(rows * 1500);
    for (auto& b : data_) b = static_cast<std::uint8_t>(rng());
    for (std::size_t i = 0; i < rows; ++i) labels_.push_back(static_cast<std::int64_t>(rng() % classes));
  }
  std::uint64_t rows() const override { return rows_; }
  const FeatureSpec& spec() const override { return spec_; }
  void rewind(bool, std::uint64_t) override { at_ = 0; }
  bool next(std::size_t max_rows, FeatureBatch& batch) override {
    std::size_t n = std::min(max_rows, rows_ - at_);
    if (n == 0) return false;
    batch.dtype = DType::u8;
    batch.shape = spec_.shape;
    batch.rows = n;
    batch.data.assign(data_.begin() + static_cast<std::ptrdiff_t>(at_ * 1500),
                      data_.begin() + static_cast<std::ptrdiff_t>((at_ + n) * 1500));
    batch.labels.assign(labels_.begin() + static_cast<std::ptrdiff_t>(at_),
                        labels_.begin() + static_cast<std::ptrdiff_t>(at_ + n));
    batch.flow_ids.assign(n, 0);
    batch.file_ids.assign(n, 0);
    at_ += n;
    return true;
  }

 private:
  std::size_t rows_, at_ = 0;
  FeatureSpec spec_;
  std::vector<std::uint8_t> data_;
  std::vector<std::int64_t> labels_;
};

struct LastEpoch final : TrainingObserver {
  EpochMetrics last;
  bool on_epoch(const EpochMetrics& m) override {
    last = m;
    return true;
  }
};

}  // namespace

int main(int argc, char** argv) {
  host::tune_allocator(argv);  // as trafficid does
  if (argc < 4) {
    std::fprintf(stderr, "usage: model_bench PLUGIN_DIR MODEL THREADS [BATCH] [STEPS]\n");
    return 2;
  }
  const std::string model_name = argv[2];
  const int threads = std::stoi(argv[3]);
  const std::size_t batch_size = argc > 4 ? std::stoul(argv[4]) : 128, steps = argc > 5 ? std::stoul(argv[5]) : 4;
  const std::size_t classes = 17;
  host::PluginRegistry registry;
  registry.load_directories({argv[1]});
  const auto* plugin = registry.find(PluginKind::model, model_name);
  if (!plugin) {
    std::fprintf(stderr, "no model plugin %s in %s\n", model_name.c_str(), argv[1]);
    return 2;
  }
  host::HostLog log(LogLevel::warning);
  auto model = registry.create<Model>(*plugin, host::schema_defaults(plugin->schema), log, model_name);
  ModelInput input;
  input.spec.dtype = DType::u8;
  input.spec.shape = {1500};
  for (std::size_t c = 0; c < classes; ++c) input.class_names.push_back("c" + std::to_string(c));
  input.seed = 1;
  model->build(input);
  // Two epochs of `steps` batches: the second is timed (the first pays allocation and warm-up).
  RandomBatches train(batch_size * steps, classes), validation(batch_size, classes);
  LastEpoch observer;
  TrainingContext context;
  context.settings = {{"batch_size", batch_size}, {"epochs", 2}, {"patience", 0}, {"threads", threads}, {"lr", 1e-3}};
  context.checkpoint_dir =
      std::filesystem::temp_directory_path() / ("trafficid-model-bench-" + std::to_string(::getpid()));
  context.observer = &observer;
  context.host = &log;
  model->fit(train, validation, context);
  // Batched inference: one warm-up batch, then 8 timed.
  FeatureBatch batch;
  validation.rewind(false, 0);
  validation.next(batch_size, batch);
  auto inference_rate = [&](Model& m) {
    m.predict_proba(batch);
    auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < 8; ++i) m.predict_proba(batch);
    return 8.0 * static_cast<double>(batch.rows) /
           std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  const double inference = inference_rate(*model);
  // The same trained weights in the model's int8 version (trafficid predict --int8), where it has one.
  const auto weights = context.checkpoint_dir / "bench-model.pt";
  model->save(weights);
  auto quantized = registry.create<Model>(*plugin, host::schema_defaults(plugin->schema), log, model_name);
  input.int8_inference = true;
  quantized->build(input);
  quantized->load(weights);
  std::filesystem::remove_all(context.checkpoint_dir);
  auto share = [&](const char* key) { return observer.last.extra.count(key) ? observer.last.extra.at(key) : 0.0; };
  std::printf(
      "train %.1f samples/s, inference %.1f samples/s, loader share of a step %.4f, parameters %llu, threads %d\n"
      "step: forward %.1f%%, backward %.1f%%, optimizer %.1f%%, data loading %.1f%%\n",
      observer.last.samples_per_second, inference, share("loader_fraction"),
      static_cast<unsigned long long>(model->info().parameters), threads, 100 * share("forward_fraction"),
      100 * share("backward_fraction"), 100 * share("optimizer_fraction"), 100 * share("loader_fraction"));
  if (quantized->info().int8_inference) {
    const double int8 = inference_rate(*quantized);
    const auto a = model->predict_proba(batch), b = quantized->predict_proba(batch);
    std::size_t same = 0;
    float largest = 0;
    for (std::size_t i = 0; i < a.size(); ++i) largest = std::max(largest, std::abs(a[i] - b[i]));
    for (std::size_t r = 0; r < batch.rows; ++r) {
      auto top = [&](const std::vector<float>& p) {
        return std::max_element(p.begin() + r * classes, p.begin() + (r + 1) * classes) - p.begin();
      };
      same += top(a) == top(b) ? 1 : 0;
    }
    std::printf(
        "int8: inference %.1f samples/s (%.2fx float32), top class as float32's for %.1f%% of the batch, "
        "probabilities within %.4f\n",
        int8, int8 / inference, 100.0 * static_cast<double>(same) / static_cast<double>(batch.rows), largest);
  }
  return 0;
}
