// A complete model plugin written outside the trafficid tree: a nearest-centroid classifier
// (one mean vector per class, optionally shrunk towards the overall mean). Everything it needs
// comes from <trafficid/sdk.hpp>: the schema, the model interface, the metrics, and the one line
// that declares the plugin (TRAFFICID_DEFINE_PLUGIN at the end).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <trafficid/sdk.hpp>
#include <trafficid/validation.hpp>

namespace {

using namespace trafficid;

class NearestCentroid final : public Model {
 public:
  explicit NearestCentroid(const PluginArgs& args)
      : metric_(args.params.at("metric").get<std::string>()), shrink_(args.params.at("shrink").get<double>()) {}

  void build(const ModelInput& input) override {
    classes_ = input.class_names.size();
    names_ = input.class_names;
    dimension_ = 1;
    for (auto d : input.spec.shape) dimension_ *= static_cast<std::size_t>(d);
    if (classes_ == 0) throw Error("nearest_centroid: the dataset has no classes");
  }

  ModelInfo info() const override {
    return {static_cast<std::uint64_t>(classes_ * dimension_),
            std::to_string(classes_) + " centroids of " + std::to_string(dimension_) + " values"};
  }

  // Training streams the split batch by batch: the dataset never has to fit in memory.
  void fit(SampleBatches& train, SampleBatches& validation, const TrainingContext& context) override {
    std::vector<double> sums(classes_ * dimension_, 0.0), overall(dimension_, 0.0);
    std::vector<std::uint64_t> counts(classes_, 0);
    std::uint64_t rows = 0;
    FeatureBatch batch;
    train.rewind(false);
    while (train.next(1024, batch)) {
      for (std::size_t r = 0; r < batch.rows; ++r) {
        auto c = static_cast<std::size_t>(batch.labels.at(r));
        ++counts.at(c);
        for (std::size_t j = 0; j < dimension_; ++j) {
          double v = value(batch, r, j);
          sums[c * dimension_ + j] += v;
          overall[j] += v;
        }
      }
      rows += batch.rows;
    }
    centroids_.assign(classes_ * dimension_, 0.0);
    for (std::size_t c = 0; c < classes_; ++c)
      for (std::size_t j = 0; j < dimension_; ++j) {
        double mean = counts[c] ? sums[c * dimension_ + j] / static_cast<double>(counts[c]) : 0.0;
        double grand = rows ? overall[j] / static_cast<double>(rows) : 0.0;
        centroids_[c * dimension_ + j] = (1.0 - shrink_) * mean + shrink_ * grand;
      }
    // One pass is the whole training: report it as one epoch, measured on the validation split.
    EpochMetrics epoch;
    epoch.epoch = 1;
    measure_validation(*this, validation, names_, epoch);
    if (context.observer) context.observer->on_epoch(epoch);
  }

  std::vector<float> predict_proba(const FeatureBatch& batch) override {
    std::vector<float> out(batch.rows * classes_);
    for (std::size_t r = 0; r < batch.rows; ++r) {
      // Softmax over negative distances: the nearest centroid gets the highest probability.
      std::vector<double> scores(classes_);
      double best = -std::numeric_limits<double>::infinity();
      for (std::size_t c = 0; c < classes_; ++c) {
        scores[c] = -distance(batch, r, c);
        best = std::max(best, scores[c]);
      }
      double total = 0;
      for (auto& s : scores) total += (s = std::exp(s - best));
      for (std::size_t c = 0; c < classes_; ++c) out[r * classes_ + c] = static_cast<float>(scores[c] / total);
    }
    return out;
  }

  void save(const std::filesystem::path& file) const override {
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(centroids_.data()),
              static_cast<std::streamsize>(centroids_.size() * sizeof(double)));
    if (!out) throw Error("nearest_centroid: cannot write " + file.string());
  }

  void load(const std::filesystem::path& file) override {
    std::ifstream in(file, std::ios::binary);
    centroids_.assign(classes_ * dimension_, 0.0);
    in.read(reinterpret_cast<char*>(centroids_.data()),
            static_cast<std::streamsize>(centroids_.size() * sizeof(double)));
    if (!in) throw Error("nearest_centroid: " + file.string() + " is not a model of this shape");
  }

 private:
  double value(const FeatureBatch& b, std::size_t row, std::size_t j) const { return b.value(row * dimension_ + j); }

  double distance(const FeatureBatch& b, std::size_t row, std::size_t c) const {
    double d = 0, dot = 0, norm_x = 0, norm_c = 0;
    for (std::size_t j = 0; j < dimension_; ++j) {
      double x = value(b, row, j), m = centroids_[c * dimension_ + j];
      d += metric_ == "manhattan" ? std::abs(x - m) : (x - m) * (x - m);
      dot += x * m;
      norm_x += x * x;
      norm_c += m * m;
    }
    if (metric_ == "cosine") return 1.0 - dot / (std::sqrt(norm_x * norm_c) + 1e-12);
    return metric_ == "euclidean" ? std::sqrt(d) : d;
  }

  std::string metric_;
  double shrink_;
  std::size_t classes_ = 0, dimension_ = 0;
  std::vector<std::string> names_;
  std::vector<double> centroids_;
};

Schema schema() {
  return {
      ParamSpec::choice("metric", "euclidean", {"euclidean", "manhattan", "cosine"}, "distance to the centroids"),
      ParamSpec::real("shrink", 0.0, "pull each centroid towards the overall mean (0: none, 1: all the way)")
          .range(0, 1),
  };
}

}  // namespace

TRAFFICID_DEFINE_PLUGIN(NearestCentroid, trafficid::PluginKind::model, "nearest_centroid", "0.1.0",
                        "nearest-centroid classifier: an example model plugin built outside the tree", "", schema)
