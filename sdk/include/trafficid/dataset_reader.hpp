// Reading a dataset folder: the rows of one split as SampleBatches, memory-mapped, so a dataset
// larger than memory trains without being loaded. The index of a split costs 16 bytes per row.
#pragma once
#include <filesystem>
#include <memory>

#include "trafficid/dataset.hpp"
#include "trafficid/model.hpp"

namespace trafficid {

class TRAFFICID_SDK_API DatasetSplit final : public SampleBatches {
 public:
  // Throws Error naming the folder when it is not a complete dataset. `fold`: with folds, the
  // split of that fold (0 .. folds - 1).
  DatasetSplit(const std::filesystem::path& folder, SplitName split, int fold = 0);
  ~DatasetSplit() override;
  std::uint64_t rows() const override;
  const FeatureSpec& spec() const override;
  void rewind(bool shuffle, std::uint64_t seed = 0) override;
  bool next(std::size_t max_rows, FeatureBatch& batch) override;
  std::size_t skip(std::size_t rows) override;
  const DatasetManifest& manifest() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace trafficid
