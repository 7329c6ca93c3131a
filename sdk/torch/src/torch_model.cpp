// The framework's trainer for LibTorch model plugins.
#include "trafficid/torch_model.hpp"

#include <chrono>
#include <dlfcn.h>
#include <mutex>
#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <thread>
#include <unistd.h>

#include "trafficid/error.hpp"
#include "trafficid/files.hpp"

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
  explicit Progress(std::string name) : name_(std::move(name)), terminal_(::isatty(STDERR_FILENO) == 1) {}
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

void TorchModel::fit(SampleBatches& train, SampleBatches& validation, const TrainingContext& context) {
  auto& st = *state_;
  if (!st.built) throw Error(fmt::format("model {}: fit() before build()", st.name));
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
  auto& net = *st.module.ptr();
  net.to(st.device);
  if (train.rows() == 0) throw Error(fmt::format("model {}: the training split is empty", st.name));

  const fs::path dir = context.checkpoint_dir;
  fs::create_directories(dir);
  Json saved;
  if (std::ifstream in(dir / "state.json"); in) saved = Json::parse(in);
  auto params = net.parameters();
  auto optimizer = make_optimizer(s, params);
  std::int64_t first_epoch = 1;
  EarlyStopping stopping(s.patience);
  Json history = Json::array();
  auto checkpoint = [&](std::int64_t epoch, const char* what) {
    return dir / fmt::format("epoch-{:04}.{}.pt", epoch, what);
  };

  if (!saved.is_null()) {
    const std::int64_t epoch = saved.at("epoch").get<std::int64_t>();
    torch::serialize::InputArchive model_archive, optimizer_archive;
    model_archive.load_from(checkpoint(epoch, "model").string());
    net.load(model_archive);
    optimizer_archive.load_from(checkpoint(epoch, "optimizer").string());
    optimizer->load(optimizer_archive);
    first_epoch = epoch + 1;
    stopping.restore(saved);
    if (stopping.should_stop()) first_epoch = s.epochs + 1;  // killed just after an early stop
    history = saved.at("history");
    st.host.info(fmt::format("model {}: resuming after epoch {} from {}", st.name, epoch, dir.string()));
    // The checkpoint is written before the observer hears of its epoch: a run killed between the
    // two has the epoch in its checkpoint and not in metrics.jsonl nor in a study's journal (a
    // trial killed then resumed as done one epoch short, tune_study found). The observer hears of
    // it again (it replaces an epoch it has), and may still stop training there.
    if (context.observer && !history.empty() && !context.observer->on_epoch(epoch_metrics_from_json(history.back())))
      first_epoch = s.epochs + 1;
  } else {
    prepare(train);
    for (auto& stage : pretraining()) {
      torch::manual_seed(s.model_seed + 7919);
      torch::optim::Adam pre(stage.parameters, torch::optim::AdamOptions(stage.learning_rate));
      for (int e = 1; e <= stage.epochs; ++e) {
        net.train();
        train.rewind(true, s.model_seed * 31 + static_cast<std::uint64_t>(e));
        FeatureBatch batch;
        double total = 0;
        std::uint64_t n = 0;
        while (train.next(static_cast<std::size_t>(s.batch_size), batch)) {
          auto x = to_tensor(batch).to(st.device);
          pre.zero_grad();
          auto loss = stage.loss(x);
          loss.backward();
          pre.step();
          total += loss.item<double>() * static_cast<double>(batch.rows);
          n += batch.rows;
        }
        st.host.info(fmt::format("model {}: pretraining {} epoch {}/{}: reconstruction loss {:.5f}", st.name,
                                 stage.name, e, stage.epochs, n ? total / static_cast<double>(n) : 0.0));
        if (st.host.stop_requested()) return;
      }
    }
  }

  torch::Tensor weights;
  if (s.class_weights && !st.input.class_weights.empty()) {
    std::vector<float> w(st.input.class_weights.begin(), st.input.class_weights.end());
    weights = torch::tensor(w).to(st.device);
  }
  Progress progress(st.name);
  const std::size_t classes = st.input.class_names.size();
  for (std::int64_t epoch = first_epoch; epoch <= s.epochs; ++epoch) {
    const auto started = Clock::now();
    const double lr = scheduled_lr(s, epoch);
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
    // Re-seeded each epoch, so a resumed run draws what an uninterrupted one would have.
    torch::manual_seed(s.model_seed * 1000003 + static_cast<std::uint64_t>(epoch));
    train.rewind(true, s.model_seed * 7777 + static_cast<std::uint64_t>(epoch));
    net.train();
    FeatureBatch batch;
    double loss_sum = 0, loader_seconds = 0;
    // Where a step's time goes. On a GPU the calls return before the work is done, so the split
    // is only kept on the CPU.
    double forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
    std::uint64_t seen = 0;
    while (true) {
      const auto before = Clock::now();
      if (!train.next(static_cast<std::size_t>(s.batch_size), batch)) break;
      auto x = to_tensor(batch).to(st.device);
      auto y = torch::tensor(batch.labels, torch::kInt64).to(st.device);
      const auto loaded = Clock::now();
      loader_seconds += std::chrono::duration<double>(loaded - before).count();
      optimizer->zero_grad();
      const auto zeroed = Clock::now();
      auto logits = st.module->forward(x);
      auto options = torch::nn::functional::CrossEntropyFuncOptions();
      if (weights.defined()) options.weight(weights);
      auto loss = torch::nn::functional::cross_entropy(logits, y, options);
      const auto forwarded = Clock::now();
      loss.backward();
      const auto backwarded = Clock::now();
      optimizer->step();
      const auto stepped = Clock::now();
      forward_seconds += std::chrono::duration<double>(forwarded - zeroed).count();
      backward_seconds += std::chrono::duration<double>(backwarded - forwarded).count();
      optimizer_seconds += std::chrono::duration<double>((stepped - backwarded) + (zeroed - loaded)).count();
      loss_sum += loss.item<double>() * static_cast<double>(batch.rows);
      seen += batch.rows;
      const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
      progress.update(epoch, s.epochs, seen, train.rows(), loss_sum / static_cast<double>(seen),
                      elapsed > 0 ? static_cast<double>(seen) / elapsed : 0, stopping.best());
      if (st.host.stop_requested()) break;
    }
    const double train_seconds = std::chrono::duration<double>(Clock::now() - started).count();
    progress.end_epoch();
    if (st.host.stop_requested()) {
      st.host.warn(fmt::format("model {}: stopped during epoch {}; `trafficid run --resume` continues after epoch {}",
                               st.name, epoch, epoch - 1));
      return;
    }

    // Validation: loss, accuracy, macro F1.
    net.eval();
    std::vector<std::int64_t> truth, predicted;
    double val_loss = 0;
    {
      torch::NoGradGuard no_grad;
      validation.rewind(false);
      while (validation.next(512, batch)) {
        auto logits = st.module->forward(to_tensor(batch).to(st.device));
        auto y = torch::tensor(batch.labels, torch::kInt64).to(st.device);
        val_loss += torch::nn::functional::cross_entropy(logits, y).item<double>() * static_cast<double>(batch.rows);
        auto best = logits.argmax(1).to(torch::kCPU);
        auto* p = best.data_ptr<std::int64_t>();
        predicted.insert(predicted.end(), p, p + batch.rows);
        truth.insert(truth.end(), batch.labels.begin(), batch.labels.end());
      }
    }
    auto evaluation = evaluate(truth, predicted, st.input.class_names);
    EpochMetrics m;
    m.epoch = static_cast<int>(epoch);
    m.train_loss = seen ? loss_sum / static_cast<double>(seen) : 0;
    m.val_loss = truth.empty() ? 0 : val_loss / static_cast<double>(truth.size());
    m.val_accuracy = evaluation.accuracy;
    m.val_macro_f1 = evaluation.macro_f1;
    m.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    m.samples_per_second = train_seconds > 0 ? static_cast<double>(seen) / train_seconds : 0;
    m.extra["lr"] = lr;
    m.extra["loader_fraction"] = train_seconds > 0 ? loader_seconds / train_seconds : 0;
    if (st.device.is_cpu() && train_seconds > 0) {
      m.extra["forward_fraction"] = forward_seconds / train_seconds;
      m.extra["backward_fraction"] = backward_seconds / train_seconds;
      m.extra["optimizer_fraction"] = optimizer_seconds / train_seconds;
    }
    m.extra["val_weighted_f1"] = evaluation.weighted_f1;
    (void)classes;
    if (auto why = divergence(m); !why.empty()) {
      // No checkpoint of a diverged network: the host hears of it (and fails the model, with the reason).
      if (!context.observer)
        throw Error(fmt::format("model {}: training diverged at epoch {} ({})", st.name, epoch, why));
      context.observer->on_epoch(m);
      break;
    }

    stopping.record(epoch, m.val_macro_f1);
    history.push_back(to_json(m));
    // The checkpoint: model and optimiser of this epoch, then state.json naming it (the commit).
    torch::serialize::OutputArchive model_archive, optimizer_archive;
    net.save(model_archive);
    model_archive.save_to(checkpoint(epoch, "model").string());
    optimizer->save(optimizer_archive);
    optimizer_archive.save_to(checkpoint(epoch, "optimizer").string());
    // On the disk before state.json names them: a power loss never leaves state.json pointing at a torn file.
    sync_file(checkpoint(epoch, "model"));
    sync_file(checkpoint(epoch, "optimizer"));
    Json state = stopping.to_json();
    state["epoch"] = epoch;
    state["history"] = history;
    write_file_atomically(dir / "state.json", state.dump(2));
    // Older checkpoints go, except the best model's.
    for (std::int64_t old = 1; old < epoch; ++old) {
      std::error_code ec;
      fs::remove(checkpoint(old, "optimizer"), ec);
      if (old != stopping.best_epoch()) fs::remove(checkpoint(old, "model"), ec);
    }
    const bool keep_going = context.observer ? context.observer->on_epoch(m) : true;
    if (!keep_going) break;
    if (stopping.should_stop()) {
      st.host.info(
          fmt::format("model {}: early stop after epoch {}: validation macro F1 has not improved for {} epochs",
                      st.name, epoch, stopping.bad_epochs()));
      break;
    }
  }
  // The model kept is the one with the best validation macro F1 (never chosen on the test split).
  if (stopping.best_epoch() > 0) {
    torch::serialize::InputArchive archive;
    archive.load_from(checkpoint(stopping.best_epoch(), "model").string());
    net.load(archive);
  }
}

std::vector<float> TorchModel::predict_proba(const FeatureBatch& batch) {
  single_threaded_blas();
  auto& st = *state_;
  torch::NoGradGuard no_grad;
  st.module.ptr()->eval();
  auto probabilities =
      torch::softmax(st.module->forward(to_tensor(batch).to(st.device)), 1).to(torch::kCPU).contiguous();
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
  } catch (const c10::Error& e) {
    throw Error(
        fmt::format("{}: not a model of this architecture and config ({})", file.string(), e.what_without_backtrace()));
  }
}

}  // namespace trafficid
