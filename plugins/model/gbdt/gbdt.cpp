// gbdt: gradient-boosted trees on XGBoost 1.7 (Debian's libxgboost), the strongest shallow peer
// of the literature, as a model plugin that is not LibTorch: it implements fit() itself. An
// "epoch" is a block of boosting rounds, after which the validation macro F1 is reported (so
// early stopping, tuners and reports treat it like any model); the model kept is the number of
// rounds with the best validation macro F1.
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <random>
#include <thread>
#include <trafficid/declared_params.hpp>
#include <trafficid/sdk.hpp>
#include <trafficid/validation.hpp>
#include <xgboost/c_api.h>

namespace trafficid::gbdt_model {
namespace {

void check(int status, const char* what) {
  if (status != 0) throw Error(fmt::format("XGBoost {}: {}", what, XGBGetLastError()));
}

// A split's rows as a dense float matrix (bytes scaled to [0, 1]), at most `limit` rows, chosen
// by a seeded draw when the split holds more.
struct Matrix {
  std::vector<float> values, labels;
  std::size_t rows = 0, columns = 0;
};

Matrix read(SampleBatches& split, std::uint64_t limit, std::uint64_t seed) {
  Matrix m;
  m.columns = split.spec().elements();
  const double keep =
      limit && split.rows() > limit ? static_cast<double>(limit) / static_cast<double>(split.rows()) : 1.0;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> draw(0, 1);
  FeatureBatch batch;
  split.rewind(false);
  while (split.next(4096, batch))
    for (std::size_t r = 0; r < batch.rows; ++r) {
      if (keep < 1.0 && draw(rng) >= keep) continue;
      for (std::size_t j = 0; j < m.columns; ++j) m.values.push_back(batch.value(r * m.columns + j));
      m.labels.push_back(static_cast<float>(batch.labels[r]));
      ++m.rows;
    }
  return m;
}

struct DMatrix {
  DMatrixHandle handle = nullptr;
  DMatrix(const float* values, std::size_t rows, std::size_t columns) {
    check(XGDMatrixCreateFromMat(values, rows, columns, std::numeric_limits<float>::quiet_NaN(), &handle), "matrix");
  }
  ~DMatrix() {
    if (handle) XGDMatrixFree(handle);
  }
  DMatrix(const DMatrix&) = delete;
  DMatrix& operator=(const DMatrix&) = delete;
};

// Each parameter once: its schema entry beside the member it is read into.
struct Params {
  std::int64_t rounds = 0, rounds_per_epoch = 0, max_depth = 0, max_train_rows = 0;
  double eta = 0, subsample = 0, colsample_bytree = 0, min_child_weight = 0;
  template <class Bind>
  void fields(Bind& bind) {
    bind(rounds, ParamSpec::integer("rounds", 200, "boosting rounds at most").range(1, 100000));
    bind(rounds_per_epoch,
         ParamSpec::integer("rounds_per_epoch", 10, "rounds between validation checks (an 'epoch')").range(1, 10000));
    bind(max_depth, ParamSpec::integer("max_depth", 6, "depth of each tree").range(1, 64));
    bind(eta, ParamSpec::real("eta", 0.3, "learning rate").range(1e-4, 1));
    bind(subsample, ParamSpec::real("subsample", 1.0, "rows drawn per tree").range(0.05, 1));
    bind(colsample_bytree, ParamSpec::real("colsample_bytree", 1.0, "features drawn per tree").range(0.05, 1));
    bind(min_child_weight, ParamSpec::real("min_child_weight", 1.0, "smallest hessian sum of a leaf").range(0, 1e6));
    bind(max_train_rows, ParamSpec::integer("max_train_rows", 200000,
                                            "rows read into memory for training (a seeded draw beyond; 0: all)")
                             .range(0, std::nullopt));
  }
};

class Gbdt final : public Model {
 public:
  explicit Gbdt(const PluginArgs& args) : host_(args.host), p_(read_params<Params>(args.params)) {}
  ~Gbdt() override {
    if (booster_) XGBoosterFree(booster_);
  }

  void build(const ModelInput& input) override {
    input_ = input;
    create(nullptr, 0);  // for load(); fit() makes it again over its training data
  }

  // A booster with this model's parameters, caching `dmats` (XGBoost learns the feature count there).
  void create(const DMatrixHandle* dmats, bst_ulong count) {
    if (booster_) XGBoosterFree(booster_);
    booster_ = nullptr;
    check(XGBoosterCreate(dmats, count, &booster_), "booster");
    const auto& input = input_;
    set("objective", "multi:softprob");
    set("num_class", std::to_string(input.class_names.size()));
    set("max_depth", std::to_string(p_.max_depth));
    set("eta", fmt::format("{}", p_.eta));
    set("subsample", fmt::format("{}", p_.subsample));
    set("colsample_bytree", fmt::format("{}", p_.colsample_bytree));
    set("min_child_weight", fmt::format("{}", p_.min_child_weight));
    set("tree_method", "hist");
    set("seed", std::to_string(input.seed));
    set("verbosity", "0");
  }

  ModelInfo info() const override {
    return {static_cast<std::uint64_t>(rounds_), fmt::format("{} rounds of {} trees (one per class), depth <= {}",
                                                             rounds_, input_.class_names.size(), p_.max_depth)};
  }

  void fit(SampleBatches& train, SampleBatches& validation, const TrainingContext& context) override {
    const TrainSettings settings = train_settings(context.settings);
    const std::string threads = std::to_string(
        settings.threads > 0 ? settings.threads
                             : static_cast<std::int64_t>(std::max(1u, std::thread::hardware_concurrency())));
    const auto limit = static_cast<std::uint64_t>(p_.max_train_rows);
    Matrix tm = read(train, limit, input_.seed), vm = read(validation, limit, input_.seed + 1);
    if (tm.rows == 0) throw Error("gbdt: the training split is empty");
    DMatrix dtrain(tm.values.data(), tm.rows, tm.columns), dvalid(vm.values.data(), vm.rows, vm.columns);
    create(&dtrain.handle, 1);
    set("nthread", threads);
    check(XGDMatrixSetFloatInfo(dtrain.handle, "label", tm.labels.data(), tm.rows), "labels");
    if (settings.class_weights && !input_.class_weights.empty()) {
      std::vector<float> w(tm.rows);
      for (std::size_t r = 0; r < tm.rows; ++r)
        w[r] = static_cast<float>(input_.class_weights[static_cast<std::size_t>(tm.labels[r])]);
      check(XGDMatrixSetFloatInfo(dtrain.handle, "weight", w.data(), tm.rows), "weights");
    }
    const std::int64_t per_epoch = p_.rounds_per_epoch;
    const std::int64_t epochs = std::max<std::int64_t>(1, p_.rounds / per_epoch);
    EarlyStopping stopping(settings.patience);
    std::int64_t rounds = 0, first_epoch = 1;
    const std::vector<std::int64_t> truth(vm.labels.begin(), vm.labels.end()),
        train_truth(tm.labels.begin(), tm.labels.end());
    // Checkpoints: after each epoch the trees so far (epoch-N.ubj), then state.json naming them
    // (the commit). `trafficid run --resume` goes on from the last one.
    const std::filesystem::path dir = context.checkpoint_dir;
    auto checkpoint = [&](std::int64_t epoch) { return dir / fmt::format("epoch-{:04}.ubj", epoch); };
    if (!dir.empty()) {
      std::filesystem::create_directories(dir);
      if (std::ifstream in(dir / "state.json"); in) {
        const Json state = Json::parse(in);
        const std::int64_t epoch = state.at("epoch").get<std::int64_t>();
        const std::string bytes = read_bytes(checkpoint(epoch));
        check(XGBoosterLoadModelFromBuffer(booster_, bytes.data(), bytes.size()), "loading a checkpoint");
        set("nthread", threads);  // a loaded model brings its own configuration
        rounds = state.at("rounds").get<std::int64_t>();
        stopping.restore(state);
        first_epoch = epoch + 1;
        rounds_ = rounds;
        host_.info(fmt::format("gbdt: resuming after epoch {} ({} rounds) from {}", epoch, rounds, dir.string()));
        if (stopping.should_stop()) first_epoch = epochs + 1;  // it had stopped early
        // The checkpoint is written before the observer hears of its epoch: after a kill between
        // the two, the observer hears of it now (it replaces an epoch it has) and may stop here.
        if (context.observer && state.contains("metrics") &&
            !context.observer->on_epoch(epoch_metrics_from_json(state.at("metrics"))))
          first_epoch = epochs + 1;
      }
    }
    for (std::int64_t epoch = first_epoch; epoch <= epochs; ++epoch) {
      auto started = std::chrono::steady_clock::now();
      for (std::int64_t i = 0; i < per_epoch; ++i, ++rounds)
        check(XGBoosterUpdateOneIter(booster_, static_cast<int>(rounds), dtrain.handle), "training");
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      rounds_ = rounds;
      const ProbabilityScore validated = score_probabilities(predict(dvalid.handle, rounds), truth, input_.class_names);
      EpochMetrics m;
      m.epoch = static_cast<int>(epoch);
      m.train_loss = score_probabilities(predict(dtrain.handle, rounds), train_truth, input_.class_names).loss;
      set_validation(m, validated);
      m.seconds = seconds;
      m.samples_per_second =
          seconds > 0 ? static_cast<double>(tm.rows * static_cast<std::size_t>(per_epoch)) / seconds : 0;
      m.extra["rounds"] = static_cast<double>(rounds);
      if (!divergence(m).empty()) {
        if (context.observer) context.observer->on_epoch(m);  // the host fails the model, with the reason
        break;
      }
      stopping.record(epoch, m.val_macro_f1);
      if (!dir.empty()) {
        write_file_atomically(checkpoint(epoch), buffer());
        Json state = stopping.to_json();
        state["epoch"] = epoch;
        state["rounds"] = rounds;
        state["metrics"] = to_json(m);
        write_file_atomically(dir / "state.json", state.dump(2));
        std::error_code ec;
        std::filesystem::remove(checkpoint(epoch - 1), ec);
      }
      if (context.observer && !context.observer->on_epoch(m)) break;
      if (stopping.should_stop()) break;
    }
    rounds_ = stopping.best_epoch() * per_epoch;  // predictions use the rounds with the best validation macro F1
  }

  std::vector<float> predict_proba(const FeatureBatch& batch) override {
    std::vector<float> values(batch.rows * batch.row_elements());
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = batch.value(i);
    DMatrix m(values.data(), batch.rows, batch.row_elements());
    return predict(m.handle, rounds_);
  }

  void save(const std::filesystem::path& file) const override {
    const std::int64_t rounds = rounds_;
    std::string content(reinterpret_cast<const char*>(&rounds), sizeof rounds);
    write_file_atomically(file, content + buffer());
  }

  void load(const std::filesystem::path& file) override {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error(fmt::format("{}: cannot be read", file.string()));
    std::int64_t rounds = 0;
    in.read(reinterpret_cast<char*>(&rounds), sizeof rounds);
    const bool whole_count = in.gcount() == sizeof rounds;
    // istreambuf_iterator reads the buffer directly: the stream's state says nothing about the end.
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!whole_count || rounds < 0 || bytes.empty())
      throw Error(fmt::format("{}: not a gbdt model (a gbdt model.pt is a round count and an XGBoost UBJSON model)",
                              file.string()));
    check(XGBoosterLoadModelFromBuffer(booster_, bytes.data(), bytes.size()), "loading");
    rounds_ = rounds;
  }

 private:
  void set(const char* name, const std::string& value) {
    check(XGBoosterSetParam(booster_, name, value.c_str()), name);
  }

  // The booster as XGBoost's UBJSON model (all its trees).
  std::string buffer() const {
    bst_ulong length = 0;
    const char* bytes = nullptr;
    check(XGBoosterSaveModelToBuffer(booster_, R"({"format": "ubj"})", &length, &bytes), "saving");
    return std::string(bytes, length);
  }

  static std::string read_bytes(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) throw Error(fmt::format("{}: cannot be read", file.string()));
    if (bytes.empty())
      throw Error(fmt::format("{}: missing or empty checkpoint; remove its folder's state.json to train from the start",
                              file.string()));
    return bytes;
  }

  std::vector<float> predict(DMatrixHandle m, std::int64_t rounds) const {
    const std::string config = fmt::format(
        R"({{"type": 0, "training": false, "iteration_begin": 0, "iteration_end": {}, "strict_shape": false}})",
        rounds);
    const bst_ulong* shape = nullptr;
    bst_ulong dimension = 0;
    const float* result = nullptr;
    check(XGBoosterPredictFromDMatrix(booster_, m, config.c_str(), &shape, &dimension, &result), "prediction");
    std::size_t n = 1;
    for (bst_ulong i = 0; i < dimension; ++i) n *= shape[i];
    return std::vector<float>(result, result + n);
  }

  HostServices& host_;
  Params p_;
  ModelInput input_;
  BoosterHandle booster_ = nullptr;
  std::int64_t rounds_ = 0;
};

Schema schema() { return schema_of<Params>(); }

}  // namespace
}  // namespace trafficid::gbdt_model

TRAFFICID_DEFINE_PLUGIN(trafficid::gbdt_model::Gbdt, trafficid::PluginKind::model, "gbdt", "0.1.0",
                        "gradient-boosted trees on XGBoost: the shallow baseline (flow_stats or header bytes)", "",
                        trafficid::gbdt_model::schema)
