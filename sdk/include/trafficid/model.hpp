// Model architectures. A model gets the shape and classes of the data, learns from the
// training split while reporting each epoch, predicts class probabilities, and saves/loads
// itself. LibTorch models implement this through the host's trainer (see the model plugins);
// models on other libraries (gradient-boosted trees) implement fit() themselves.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "trafficid/features.hpp"
#include "trafficid/metrics.hpp"

namespace trafficid {

struct ModelInput {
  FeatureSpec spec;
  std::vector<std::string> class_names;
  std::uint64_t seed = 0;
};

struct ModelInfo {
  std::uint64_t parameters = 0;  // trainable parameters (or tree nodes)
  std::string summary;           // one line per layer
};

class TRAFFICID_SDK_API Model : public Plugin {
 public:
  ~Model() override;
  virtual void build(const ModelInput& input) = 0;
  virtual ModelInfo info() const = 0;
  // Train on `train`, reporting an EpochMetrics per epoch computed on `validation`.
  virtual void fit(const FeatureBatch& train, const FeatureBatch& validation,
                   TrainingObserver& observer) = 0;
  // Row-major probabilities: batch.rows x class count.
  virtual std::vector<float> predict_proba(const FeatureBatch& batch) = 0;
  virtual void save(const std::filesystem::path& file) const = 0;
  virtual void load(const std::filesystem::path& file) = 0;
};

}  // namespace trafficid
