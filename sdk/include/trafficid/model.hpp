// Model architectures. A model gets the shape and classes of the data, learns from the training
// split while reporting each epoch, predicts class probabilities, and saves/loads itself.
// LibTorch models derive from TorchModel (trafficid/torch_model.hpp): they define their network
// and schema, and the framework's trainer does the rest. Models on other libraries implement
// fit() themselves.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "trafficid/features.hpp"
#include "trafficid/host_services.hpp"
#include "trafficid/metrics.hpp"
#include "trafficid/params.hpp"

namespace trafficid {

struct ModelInput {
  FeatureSpec spec;
  std::vector<std::string> class_names;
  std::vector<double> class_weights;  // from the dataset (all 1 unless it was balanced by weights)
  std::uint64_t seed = 0;
  // Predict with int8 arithmetic where the model offers it (trafficid predict/evaluate --int8): a
  // trained model's weights quantized once, each batch's inputs as it comes. Training ignores it.
  bool int8_inference = false;
};

struct ModelInfo {
  std::uint64_t parameters = 0;  // trainable parameters (or tree nodes)
  std::string summary;           // one line per layer
  bool data_parallel = false;    // fit() trains across the workers of TrainingContext::parallel
  bool int8_inference = false;   // predict_proba runs in int8 (asked for, and the model has layers to quantize)
};

// The rows of one split of a dataset, in batches, read from its shards without loading them
// whole (they are memory-mapped): labels and flow ids come with the features.
class TRAFFICID_SDK_API SampleBatches {
 public:
  virtual ~SampleBatches();
  virtual std::uint64_t rows() const = 0;
  virtual const FeatureSpec& spec() const = 0;
  // Starts a pass over the rows: in a seeded random order, or in dataset order.
  virtual void rewind(bool shuffle, std::uint64_t seed = 0) = 0;
  // The next batch of at most `max_rows` rows (features in the stored dtype, zero-padded to the
  // full shape); false when the pass is over.
  virtual bool next(std::size_t max_rows, FeatureBatch& batch) = 0;
  // Passes over the next `rows` rows of the pass without reading them (a worker of a data-parallel
  // group reading its share of each batch); the number passed over.
  virtual std::size_t skip(std::size_t rows);
};

// The experiment's [train] section, typed. Its schema (train_settings_schema()) is the one place
// its parameters and their defaults are declared: the host checks [train] against it, and a model
// reads its settings with train_settings(context), never with defaults of its own.
struct TrainSettings {
  std::string optimizer, schedule, device;
  double lr = 0, momentum = 0, weight_decay = 0, gamma = 0;
  std::int64_t batch_size = 0, epochs = 0, patience = 0, step_size = 0, threads = 0, seed = 0;
  bool class_weights = true;
};
TRAFFICID_SDK_API const Schema& train_settings_schema();
// `settings` over the schema's defaults (a key it lacks gets its default), typed. Throws Error
// naming a key whose value has the wrong type.
TRAFFICID_SDK_API TrainSettings train_settings(const Json& settings);

// Early stopping and best-epoch keeping on the validation macro F1, as every model does them: the
// model kept is the epoch with the best score (never chosen on the test split), and training stops
// after `patience` epochs without improvement (0: never). Its state goes into a checkpoint's
// state.json (to_json) and comes back on a resume (restore).
class EarlyStopping {
 public:
  explicit EarlyStopping(std::int64_t patience) : patience_(patience) {}
  // After an epoch: true when its score is the best so far (the epoch whose model to keep).
  bool record(std::int64_t epoch, double score) {
    if (score > best_) {
      best_ = score;
      best_epoch_ = epoch;
      bad_epochs_ = 0;
      return true;
    }
    ++bad_epochs_;
    return false;
  }
  bool should_stop() const { return patience_ > 0 && bad_epochs_ >= patience_; }
  std::int64_t best_epoch() const { return best_epoch_; }  // 0: none yet
  double best() const { return best_; }                    // -1: none yet
  std::int64_t bad_epochs() const { return bad_epochs_; }
  Json to_json() const { return {{"best_epoch", best_epoch_}, {"best_f1", best_}, {"bad_epochs", bad_epochs_}}; }
  void restore(const Json& state) {
    best_epoch_ = state.at("best_epoch").get<std::int64_t>();
    best_ = state.at("best_f1").get<double>();
    bad_epochs_ = state.at("bad_epochs").get<std::int64_t>();
  }

 private:
  std::int64_t patience_ = 0, best_epoch_ = 0, bad_epochs_ = 0;
  double best_ = -1;
};

// Data-parallel training: this process is worker `rank` of `world_size`, which meet through a
// rendezvous file every worker can open (a c10d FileStore). Each worker takes its share of every
// batch of train.batch_size rows (the global batch), the gradients are summed across the workers
// after each backward pass, and worker 0 alone validates, writes checkpoints and tells the
// observer; the others have none. A collective that waits longer than `timeout_seconds` (a worker
// died or hangs) ends every worker with an error.
struct DataParallel {
  int rank = 0, world_size = 1;
  std::filesystem::path store;
  double timeout_seconds = 600;
  bool active() const { return world_size > 1; }
};

// How a model is trained: the experiment's [train] section and where checkpoints go.
struct TrainingContext {
  Json settings = Json::object();        // resolved [train]: optimizer, lr, epochs, batch_size, ...
  std::filesystem::path checkpoint_dir;  // one checkpoint per epoch; fit() resumes from the last one
  TrainingObserver* observer = nullptr;  // told every epoch; may stop training
  HostServices* host = nullptr;
  DataParallel parallel;  // one worker unless the run has several (ModelInfo::data_parallel models only)
};

class TRAFFICID_SDK_API Model : public Plugin {
 public:
  ~Model() override;
  virtual void build(const ModelInput& input) = 0;
  virtual ModelInfo info() const = 0;
  // Trains on `train`, reporting an EpochMetrics per epoch measured on `validation`.
  virtual void fit(SampleBatches& train, SampleBatches& validation, const TrainingContext& context) = 0;
  // Row-major probabilities: batch.rows x class count.
  virtual std::vector<float> predict_proba(const FeatureBatch& batch) = 0;
  virtual void save(const std::filesystem::path& file) const = 0;
  virtual void load(const std::filesystem::path& file) = 0;
};

}  // namespace trafficid
