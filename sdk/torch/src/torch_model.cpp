// The framework's trainer for LibTorch model plugins.
#include "trafficid/torch_model.hpp"

#include <chrono>
#include <dlfcn.h>
#include <mutex>
#include <cstdio>
#include <cstdlib>
#include <fmt/format.h>
#include <fstream>
#include <thread>
#include <unistd.h>

#include "trafficid/error.hpp"
#include "trafficid/files.hpp"
#include "data_parallel.hpp"
#include "int8.hpp"

namespace trafficid {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

torch::Tensor to_tensor(const FeatureBatch& batch) {
  std::vector<std::int64_t> shape = {static_cast<std::int64_t>(batch.rows)};
  shape.insert(shape.end(), batch.shape.begin(), batch.shape.end());
  auto* data = const_cast<std::uint8_t*>(batch.data.data());
  if (batch.dtype == DType::u8) return torch::from_blob(data, shape, torch::kUInt8).to(torch::kFloat32).div_(255.0);
  return torch::from_blob(data, shape, torch::kFloat32).clone();
}

struct TorchModel::State {
  HostServices& host;
  std::string name;
  ModelInput input;
  torch::nn::Sequential module{nullptr};
  torch::nn::Sequential int8_module{nullptr};  // module's int8 copy (ModelInput::int8_inference), made once loaded
  bool built = false;
  torch::Device device = torch::kCPU;
  explicit State(HostServices& h, std::string n) : host(h), name(std::move(n)) {}
};

TorchModel::TorchModel(const PluginArgs& args) : state_(std::make_unique<State>(args.host, args.instance_name)) {}
TorchModel::~TorchModel() = default;
HostServices& TorchModel::host() const { return state_->host; }
const ModelInput& TorchModel::input() const { return state_->input; }
torch::nn::Sequential& TorchModel::module() { return state_->module; }

void TorchModel::build(const ModelInput& input) {
  state_->input = input;
  torch::manual_seed(input.seed);
  state_->module = network(input);
  if (state_->module.is_empty()) throw Error(fmt::format("model {}: network() returned no module", state_->name));
  state_->built = true;
}

ModelInfo TorchModel::info() const {
  ModelInfo info;
  if (!state_->built) return info;
  for (const auto& p : state_->module.ptr()->parameters())
    if (p.requires_grad()) info.parameters += static_cast<std::uint64_t>(p.numel());
  std::ostringstream text;
  state_->module.ptr()->pretty_print(text);
  info.summary = text.str();
  for (const auto& child : state_->module.ptr()->named_children()) {
    std::ostringstream line;
    child.value()->pretty_print(line);
    info.summary += "\n  " + child.key() + ": " + line.str();
  }
  info.data_parallel = true;
  info.int8_inference = state_->input.int8_inference && int8::quantizable_layers(state_->module) > 0;
  return info;
}

namespace {

// LibTorch runs each operator over its own threads (OpenMP); Debian's libtorch also calls OpenBLAS,
// whose own pool (a thread per core) then runs beside them, its idle workers spinning in
// sched_yield: two pools on the same cores. OpenBLAS is kept to the calling thread, and the
// parallelism is LibTorch's (train.threads): 1.9x the paper CNN's training samples/s on this
// 2-core machine (tests/bench/cnn_bench.sh). Looked up at run time: no link to OpenBLAS, and
// nothing to do with another BLAS.
void single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] {
    using SetThreads = void (*)(int);
    if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(1);
  });
}

// [train] as the trainer uses it: the SDK's typed settings (defaults declared there, once) and
// the seed this model was built with (ModelInput::seed: train.seed, or the experiment's; not the
// base's `seed`, which is 0 when train.seed is unset).
struct Settings : TrainSettings {
  std::uint64_t model_seed = 1;
  Settings(const Json& j, std::uint64_t s) : TrainSettings(train_settings(j)), model_seed(s) {}
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Settings& s, std::vector<torch::Tensor> params) {
  if (s.optimizer == "adamw")
    return std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(s.lr).weight_decay(s.weight_decay));
  if (s.optimizer == "sgd")
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(s.lr).momentum(s.momentum).weight_decay(s.weight_decay));
  return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(s.lr).weight_decay(s.weight_decay));
}

double scheduled_lr(const Settings& s, std::int64_t epoch) {  // epoch 1-based
  if (s.schedule == "step")
    return s.lr * std::pow(s.gamma, static_cast<double>((epoch - 1) / std::max<std::int64_t>(1, s.step_size)));
  if (s.schedule == "cosine")
    return s.lr * 0.5 *
           (1.0 +
            std::cos(M_PI * static_cast<double>(epoch - 1) / static_cast<double>(std::max<std::int64_t>(1, s.epochs))));
  return s.lr;
}

// Progress on a terminal: one line redrawn; elsewhere nothing per batch (the epoch line is logged).
class Progress {
 public:
  // `shown`: worker 0 of a data-parallel group draws it, the others do not.
  Progress(std::string name, bool shown) : name_(std::move(name)), terminal_(shown && ::isatty(STDERR_FILENO) == 1) {}
  void update(std::int64_t epoch, std::int64_t epochs, std::uint64_t done, std::uint64_t total, double loss,
              double rate, double last_f1) {
    if (!terminal_) return;
    auto now = Clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const int width = 24;
    const int filled = total ? static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total)) : width;
    const double remaining_epoch = rate > 0 ? static_cast<double>(total - done) / rate : 0;
    const double eta = remaining_epoch +
                       (rate > 0 ? static_cast<double>((epochs - epoch) * static_cast<std::int64_t>(total)) / rate : 0);
    std::fprintf(stderr, "\r%s epoch %lld/%lld [%s%s] loss %.4f  val macro F1 %s  %.0f samples/s  ETA %d:%02d   ",
                 name_.c_str(), static_cast<long long>(epoch), static_cast<long long>(epochs),
                 std::string(static_cast<std::size_t>(filled), '#').c_str(),
                 std::string(static_cast<std::size_t>(width - filled), '.').c_str(), loss,
                 last_f1 < 0 ? "-" : fmt::format("{:.4f}", last_f1).c_str(), rate, static_cast<int>(eta) / 60,
                 static_cast<int>(eta) % 60);
    std::fflush(stderr);
  }
  void end_epoch() {
    if (terminal_) std::fputc('\n', stderr);
  }

 private:
  std::string name_;
  bool terminal_;
  Clock::time_point last_{};
};

}  // namespace

namespace {

// What the trainer gets of the model it trains.
struct Network {
  HostServices& host;
  const std::string& name;
  const ModelInput& input;
  torch::nn::Sequential& module;
  torch::Device device;
  std::function<std::vector<PretrainStage>()> pretraining;
  std::function<void(SampleBatches&)> prepare;
};

// One fit(): a training run over its epochs, on one worker of its group.
class Trainer {
 public:
  Trainer(Network network, SampleBatches& train, SampleBatches& validation, const TrainingContext& context,
          const Settings& s, WorkerGroup& group)
      : nw_(std::move(network)),
        net_(*nw_.module.ptr()),
        train_(train),
        validation_(validation),
        context_(context),
        s_(s),
        group_(group),
        leader_(group.rank() == 0),
        dir_(context.checkpoint_dir),
        params_(net_.parameters()),
        optimizer_(make_optimizer(s, params_)),
        stopping_(s.patience),
        progress_(nw_.name, leader_) {}
  void run();

 private:
  fs::path checkpoint(std::int64_t epoch, const char* what) const {
    return dir_ / fmt::format("epoch-{:04}.{}.pt", epoch, what);
  }
  void resume(const Json& saved);
  bool pretrain();
  bool epoch(std::int64_t epoch);  // false: training ends
  EpochMetrics validate();
  bool record(EpochMetrics& m);  // worker 0, after validating: false ends training
  void save_checkpoint(std::int64_t epoch);
  // This worker's loss weight of its share of a batch (what its loss is the mean over).
  double share_weight(const FeatureBatch& batch) const;
  // Worker 0's weights and buffers on every worker.
  void same_model();
  // One step over this worker's share of a global batch: the batch's mean loss.
  double step(const FeatureBatch& batch, double& loaded_at, double& forward, double& backward, double& optimizer);

  Network nw_;
  torch::nn::Module& net_;
  SampleBatches& train_;
  SampleBatches& validation_;
  const TrainingContext& context_;
  const Settings& s_;
  WorkerGroup& group_;
  bool leader_;
  fs::path dir_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::int64_t first_epoch_ = 1;
  EarlyStopping stopping_;
  Json history_ = Json::array();
  torch::Tensor weights_;
  std::vector<double> weight_of_class_;
  Progress progress_;
  bool overlap_ = false;  // the gradients' all-reduce overlaps the backward pass (in buckets)
  bool stopped_ = false;  // a stop was asked, on any worker
  std::string diverged_;  // worker 0: why training ended on numbers that are not finite
};

void Trainer::same_model() {
  std::vector<torch::Tensor> all = net_.parameters();
  for (const auto& b : net_.buffers()) all.push_back(b);
  group_.broadcast(all);
}

double Trainer::share_weight(const FeatureBatch& batch) const {
  if (weight_of_class_.empty()) return static_cast<double>(batch.rows);
  double w = 0;
  for (std::size_t i = 0; i < batch.rows; ++i) w += weight_of_class_[static_cast<std::size_t>(batch.labels[i])];
  return w;
}

void Trainer::resume(const Json& saved) {
  const std::int64_t epoch = saved.is_null() ? 0 : saved.at("epoch").get<std::int64_t>();
  if (group_.active()) {
    // Every worker reads the checkpoint: they must all see worker 0's.
    const auto leaders = group_.broadcast(std::vector<double>{static_cast<double>(epoch)});
    if (static_cast<std::int64_t>(leaders[0]) != epoch)
      throw Error(
          fmt::format("model {}: worker {} finds the checkpoint of epoch {} in {}, worker 0 that of epoch {}: "
                      "the run folder must be one folder shared by every worker",
                      nw_.name, group_.rank(), epoch, dir_.string(), static_cast<std::int64_t>(leaders[0])));
  }
  if (saved.is_null()) return;
  torch::serialize::InputArchive model_archive, optimizer_archive;
  model_archive.load_from(checkpoint(epoch, "model").string());
  net_.load(model_archive);
  optimizer_archive.load_from(checkpoint(epoch, "optimizer").string());
  optimizer_->load(optimizer_archive);
  first_epoch_ = epoch + 1;
  stopping_.restore(saved);
  if (stopping_.should_stop()) first_epoch_ = s_.epochs + 1;  // killed just after an early stop
  history_ = saved.at("history");
  if (leader_) nw_.host.info(fmt::format("model {}: resuming after epoch {} from {}", nw_.name, epoch, dir_.string()));
  // The checkpoint is written before the observer hears of its epoch: a run killed between the
  // two has the epoch in its checkpoint and not in metrics.jsonl nor in a study's journal (a
  // trial killed then resumed as done one epoch short, tune_study found). The observer hears of
  // it again (it replaces an epoch it has), and may still stop training there.
  bool go_on = true;
  if (leader_ && context_.observer && !history_.empty())
    go_on = context_.observer->on_epoch(epoch_metrics_from_json(history_.back()));
  if (group_.broadcast(std::vector<double>{go_on ? 1.0 : 0.0})[0] == 0) first_epoch_ = s_.epochs + 1;
}

// The model's own phases before supervised training; false when a stop was asked.
bool Trainer::pretrain() {
  for (auto& stage : nw_.pretraining()) {
    torch::manual_seed(s_.model_seed + 7919 + static_cast<std::uint64_t>(group_.rank()) * 104729);
    torch::optim::Adam pre(stage.parameters, torch::optim::AdamOptions(stage.learning_rate));
    GlobalBatches batches(train_, static_cast<std::size_t>(s_.batch_size), group_.rank(), group_.world());
    for (int e = 1; e <= stage.epochs; ++e) {
      net_.train();
      batches.rewind(true, s_.model_seed * 31 + static_cast<std::uint64_t>(e));
      FeatureBatch batch;
      std::size_t n = 0;
      double total = 0, rows = 0;
      while (batches.next(batch, n)) {
        pre.zero_grad();
        double loss = 0;
        if (batch.rows > 0) {
          auto l = stage.loss(to_tensor(batch).to(nw_.device));
          l.backward();
          loss = l.item<double>();
        }
        const double mine = static_cast<double>(batch.rows);
        const auto sums =
            group_.reduce_gradients(stage.parameters, mine, {mine, loss * mine, nw_.host.stop_requested() ? 1.0 : 0.0});
        pre.step();
        total += sums[1];
        rows += sums[0];
        stopped_ = stopped_ || sums[2] > 0;
        if (stopped_) return false;
      }
      if (leader_)
        nw_.host.info(fmt::format("model {}: pretraining {} epoch {}/{}: reconstruction loss {:.5f}", nw_.name,
                                  stage.name, e, stage.epochs, rows > 0 ? total / rows : 0.0));
    }
  }
  return true;
}

void Trainer::run() {
  Json saved;
  if (std::ifstream in(dir_ / "state.json"); in) saved = Json::parse(in);
  resume(saved);
  if (saved.is_null()) {
    nw_.prepare(train_);
    same_model();
    if (!pretrain()) return;
  } else {
    same_model();
  }
  if (s_.class_weights && !nw_.input.class_weights.empty()) {
    weight_of_class_ = nw_.input.class_weights;
    std::vector<float> w(weight_of_class_.begin(), weight_of_class_.end());
    weights_ = torch::tensor(w).to(nw_.device);
  }
  // Buckets of TRAFFICID_BUCKET_MB (4 by default; 0: one message after backward).
  const char* bucket = std::getenv("TRAFFICID_BUCKET_MB");
  const double bucket_mb = bucket && *bucket ? std::strtod(bucket, nullptr) : 4.0;
  if (group_.active() && bucket_mb > 0) {
    group_.watch(params_, static_cast<std::size_t>(bucket_mb * (1 << 20)), 3);
    overlap_ = true;
  }
  for (std::int64_t e = first_epoch_; e <= s_.epochs; ++e)
    if (!epoch(e)) break;
  if (!diverged_.empty()) throw Error(diverged_);
  // The model kept is the one with the best validation macro F1 (never chosen on the test split).
  if (leader_ && !stopped_ && stopping_.best_epoch() > 0) {
    torch::serialize::InputArchive archive;
    archive.load_from(checkpoint(stopping_.best_epoch(), "model").string());
    net_.load(archive);
  }
}

double Trainer::step(const FeatureBatch& batch, double& loader, double& forward, double& backward, double& optimizer) {
  const auto before = Clock::now();
  torch::Tensor x, y, loss;
  if (batch.rows > 0) {
    x = to_tensor(batch).to(nw_.device);
    y = torch::tensor(batch.labels, torch::kInt64).to(nw_.device);
  }
  const auto loaded = Clock::now();
  optimizer_->zero_grad();
  const auto zeroed = Clock::now();
  if (batch.rows > 0) {
    auto logits = nw_.module->forward(x);
    auto options = torch::nn::functional::CrossEntropyFuncOptions();
    if (weights_.defined()) options.weight(weights_);
    loss = torch::nn::functional::cross_entropy(logits, y, options);
  }
  const auto forwarded = Clock::now();
  double mean_loss = loss.defined() ? loss.item<double>() : 0.0;
  // With workers: this share's loss weight, its loss and a stop request, summed with the gradients.
  double mine = 0;
  std::vector<double> numbers;
  if (group_.active()) {
    mine = share_weight(batch);
    numbers = {mine, mean_loss * mine, nw_.host.stop_requested() ? 1.0 : 0.0};
    if (overlap_) group_.begin_step(mine, numbers);
  }
  if (loss.defined()) loss.backward();
  if (group_.active()) {
    const auto sums = overlap_ ? group_.finish_step() : group_.reduce_gradients(params_, mine, numbers);
    mean_loss = sums[0] > 0 ? sums[1] / sums[0] : 0.0;
    stopped_ = stopped_ || sums[2] > 0;
  } else {
    stopped_ = nw_.host.stop_requested();
  }
  const auto backwarded = Clock::now();
  optimizer_->step();
  const auto stepped = Clock::now();
  loader += std::chrono::duration<double>(loaded - before).count();
  forward += std::chrono::duration<double>(forwarded - zeroed).count();
  backward += std::chrono::duration<double>(backwarded - forwarded).count();
  optimizer += std::chrono::duration<double>((stepped - backwarded) + (zeroed - loaded)).count();
  return mean_loss;
}

bool Trainer::epoch(std::int64_t epoch) {
  const auto started = Clock::now();
  const double lr = scheduled_lr(s_, epoch);
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
  // Re-seeded each epoch, so a resumed run draws what an uninterrupted one would have (worker 0
  // as one process would; the other workers' dropout draws from streams of their own).
  torch::manual_seed(s_.model_seed * 1000003 + static_cast<std::uint64_t>(epoch) +
                     static_cast<std::uint64_t>(group_.rank()) * 0x9E3779B9ull);
  GlobalBatches batches(train_, static_cast<std::size_t>(s_.batch_size), group_.rank(), group_.world());
  batches.rewind(true, s_.model_seed * 7777 + static_cast<std::uint64_t>(epoch));
  net_.train();
  FeatureBatch batch;
  // Where a step's time goes. On a GPU the calls return before the work is done, so the split
  // is only kept on the CPU.
  double loss_sum = 0, loader = 0, forward = 0, backward = 0, optimizer = 0;
  std::uint64_t seen = 0;
  std::size_t n = 0;
  group_.take_seconds();
  while (batches.next(batch, n)) {
    loss_sum += step(batch, loader, forward, backward, optimizer) * static_cast<double>(n);
    seen += n;
    const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    progress_.update(epoch, s_.epochs, seen, train_.rows(), loss_sum / static_cast<double>(seen),
                     elapsed > 0 ? static_cast<double>(seen) / elapsed : 0, stopping_.best());
    if (stopped_) break;
  }
  const double train_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  const double collective = group_.take_seconds();
  progress_.end_epoch();
  if (stopped_) {
    if (leader_)
      nw_.host.warn(fmt::format("model {}: stopped during epoch {}; `trafficid run --resume` continues after epoch {}",
                                nw_.name, epoch, epoch - 1));
    return false;
  }
  bool go_on = true;
  if (leader_) {
    EpochMetrics m = validate();
    m.epoch = static_cast<int>(epoch);
    m.train_loss = seen ? loss_sum / static_cast<double>(seen) : 0;
    m.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    m.samples_per_second = train_seconds > 0 ? static_cast<double>(seen) / train_seconds : 0;
    m.extra["lr"] = lr;
    m.extra["loader_fraction"] = train_seconds > 0 ? loader / train_seconds : 0;
    if (nw_.device.is_cpu() && train_seconds > 0) {
      m.extra["forward_fraction"] = forward / train_seconds;
      m.extra["backward_fraction"] = backward / train_seconds;  // with the gradients' all-reduce, if any
      m.extra["optimizer_fraction"] = optimizer / train_seconds;
    }
    if (group_.active()) {
      m.extra["workers"] = group_.world();
      m.extra["allreduce_fraction"] = train_seconds > 0 ? collective / train_seconds : 0;
    }
    go_on = record(m);
  }
  // Worker 0's decision (its validation, its observer, a divergence) is every worker's.
  return group_.broadcast(std::vector<double>{go_on ? 1.0 : 0.0})[0] != 0;
}

// Worker 0: loss, accuracy and macro F1 on the validation split.
EpochMetrics Trainer::validate() {
  net_.eval();
  std::vector<std::int64_t> truth, predicted;
  double val_loss = 0;
  {
    torch::NoGradGuard no_grad;
    FeatureBatch batch;
    validation_.rewind(false);
    while (validation_.next(512, batch)) {
      auto logits = nw_.module->forward(to_tensor(batch).to(nw_.device));
      auto y = torch::tensor(batch.labels, torch::kInt64).to(nw_.device);
      val_loss += torch::nn::functional::cross_entropy(logits, y).item<double>() * static_cast<double>(batch.rows);
      auto best = logits.argmax(1).to(torch::kCPU);
      auto* p = best.data_ptr<std::int64_t>();
      predicted.insert(predicted.end(), p, p + batch.rows);
      truth.insert(truth.end(), batch.labels.begin(), batch.labels.end());
    }
  }
  auto evaluation = evaluate(truth, predicted, nw_.input.class_names);
  EpochMetrics m;
  m.val_loss = truth.empty() ? 0 : val_loss / static_cast<double>(truth.size());
  m.val_accuracy = evaluation.accuracy;
  m.val_macro_f1 = evaluation.macro_f1;
  m.extra["val_weighted_f1"] = evaluation.weighted_f1;
  return m;
}

bool Trainer::record(EpochMetrics& m) {
  if (auto why = divergence(m); !why.empty()) {
    // No checkpoint of a diverged network: the host hears of it (and fails the model, with the reason).
    if (!context_.observer)
      diverged_ = fmt::format("model {}: training diverged at epoch {} ({})", nw_.name, m.epoch, why);
    else context_.observer->on_epoch(m);
    return false;
  }
  stopping_.record(m.epoch, m.val_macro_f1);
  history_.push_back(to_json(m));
  save_checkpoint(m.epoch);
  if (context_.observer && !context_.observer->on_epoch(m)) return false;
  if (stopping_.should_stop()) {
    nw_.host.info(fmt::format("model {}: early stop after epoch {}: validation macro F1 has not improved for {} epochs",
                              nw_.name, m.epoch, stopping_.bad_epochs()));
    return false;
  }
  return true;
}

// The checkpoint: model and optimiser of this epoch, then state.json naming it (the commit).
void Trainer::save_checkpoint(std::int64_t epoch) {
  torch::serialize::OutputArchive model_archive, optimizer_archive;
  net_.save(model_archive);
  model_archive.save_to(checkpoint(epoch, "model").string());
  optimizer_->save(optimizer_archive);
  optimizer_archive.save_to(checkpoint(epoch, "optimizer").string());
  // On the disk before state.json names them: a power loss never leaves state.json pointing at a torn file.
  sync_file(checkpoint(epoch, "model"));
  sync_file(checkpoint(epoch, "optimizer"));
  Json state = stopping_.to_json();
  state["epoch"] = epoch;
  state["history"] = history_;
  write_file_atomically(dir_ / "state.json", state.dump(2));
  // Older checkpoints go, except the best model's.
  for (std::int64_t old = 1; old < epoch; ++old) {
    std::error_code ec;
    fs::remove(checkpoint(old, "optimizer"), ec);
    if (old != stopping_.best_epoch()) fs::remove(checkpoint(old, "model"), ec);
  }
}

}  // namespace

void TorchModel::fit(SampleBatches& train, SampleBatches& validation, const TrainingContext& context) {
  auto& st = *state_;
  if (!st.built) throw Error(fmt::format("model {}: fit() before build()", st.name));
  st.int8_module = torch::nn::Sequential(nullptr);  // quantized anew from the trained weights
  Settings s(context.settings, st.input.seed);
  if (s.device == "cuda") {
    if (!torch::cuda::is_available())
      throw Error(
          fmt::format("model {}: device = \"cuda\", but this LibTorch has no CUDA or sees no GPU (Debian's "
                      "libtorch is CPU-only); use device = \"cpu\"",
                      st.name));
    st.device = torch::Device(torch::kCUDA);
  }
  const auto threads =
      s.threads > 0 ? s.threads : static_cast<std::int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(static_cast<int>(threads));
  single_threaded_blas();
  st.module.ptr()->to(st.device);
  if (train.rows() == 0) throw Error(fmt::format("model {}: the training split is empty", st.name));
  fs::create_directories(context.checkpoint_dir);
  WorkerGroup group(context.parallel, st.name);
  Network network{st.host,
                  st.name,
                  st.input,
                  st.module,
                  st.device,
                  [this] { return pretraining(); },
                  [this](SampleBatches& rows) { prepare(rows); }};
  Trainer(std::move(network), train, validation, context, s, group).run();
}

std::vector<float> TorchModel::predict_proba(const FeatureBatch& batch) {
  single_threaded_blas();
  auto& st = *state_;
  torch::NoGradGuard no_grad;
  st.module.ptr()->eval();
  if (st.input.int8_inference && st.int8_module.is_empty()) {
    if (!st.device.is_cpu()) throw Error(fmt::format("model {}: int8 inference runs on the CPU only", st.name));
    st.int8_module = int8::quantize(st.module);
  }
  auto& network = st.int8_module.is_empty() ? st.module : st.int8_module;
  auto probabilities = torch::softmax(network->forward(to_tensor(batch).to(st.device)), 1).to(torch::kCPU).contiguous();
  const float* p = probabilities.data_ptr<float>();
  return std::vector<float>(p, p + probabilities.numel());
}

void TorchModel::save(const fs::path& file) const {
  torch::serialize::OutputArchive archive;
  state_->module.ptr()->save(archive);
  archive.save_to(file.string());
}

void TorchModel::load(const fs::path& file) {
  if (!state_->built) throw Error(fmt::format("model {}: load() before build()", state_->name));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string());
    state_->module.ptr()->load(archive);
    state_->int8_module = torch::nn::Sequential(nullptr);  // quantized anew from these weights
  } catch (const c10::Error& e) {
    throw Error(
        fmt::format("{}: not a model of this architecture and config ({})", file.string(), e.what_without_backtrace()));
  }
}

}  // namespace trafficid
