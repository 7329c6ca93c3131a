#include "trafficid/dataset_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <numeric>
#include <random>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trafficid/error.hpp"
#include "trafficid/npy.hpp"

namespace trafficid {

namespace fs = std::filesystem;

namespace {
// A read-only memory map of a whole file.
class Mapping {
 public:
  explicit Mapping(const fs::path& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
    struct stat st {};
    ::fstat(fd, &st);
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw Error(fmt::format("cannot map {}: {}", path.string(), std::strerror(errno)));
      }
      data_ = static_cast<const std::uint8_t*>(p);
    }
    ::close(fd);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (data_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
  }
  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  fs::path path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

struct Shard {
  std::unique_ptr<Mapping> features;  // x.npy or bytes.npy
  std::uint64_t data_offset = 0;
  std::vector<std::uint64_t> row_offset;  // ragged: where each row starts in bytes.npy's data
  std::vector<std::uint32_t> row_length;
};

struct RowRef {
  std::uint32_t shard = 0;
  std::uint32_t row_high = 0;  // row index, split to keep RowRef at 16 bytes
  std::uint32_t row_low = 0;
  std::int32_t label = 0;
  std::uint64_t row() const { return (std::uint64_t{row_high} << 32) | row_low; }
};
}  // namespace

struct DatasetSplit::Impl {
  fs::path folder;
  DatasetManifest manifest;
  std::vector<Shard> shards;
  std::vector<RowRef> rows;
  std::vector<std::uint64_t> flows;  // per row, same order as rows
  std::vector<std::uint32_t> order;
  std::size_t position = 0;
  std::size_t row_bytes = 0;
};

DatasetSplit::DatasetSplit(const fs::path& folder, SplitName split, int fold) : impl_(std::make_unique<Impl>()) {
  auto& d = *impl_;
  d.folder = folder;
  d.manifest = read_manifest(folder);
  if (fold < 0 || (fold > 0 && fold >= d.manifest.folds))
    throw Error(
        fmt::format("{}: no fold {} (the dataset has {})", folder.string(), fold,
                    d.manifest.folds ? fmt::format("folds 0 to {}", d.manifest.folds - 1) : std::string("no folds")));
  const std::string split_part = DatasetManifest::split_part(fold);
  d.row_bytes = d.manifest.spec.bytes();
  const bool ragged = d.manifest.storage == "ragged";
  for (std::size_t s = 0; s < d.manifest.shards.size(); ++s) {
    Shard shard;
    auto splits = read_npy<std::uint8_t>(d.manifest.shard_file(folder, s, split_part.c_str()));
    auto labels = read_npy<std::int64_t>(d.manifest.shard_file(folder, s, "y"));
    auto flows = read_npy<std::uint64_t>(d.manifest.shard_file(folder, s, "flow"));
    const auto features = d.manifest.shard_file(folder, s, ragged ? "bytes" : "x");
    auto header = read_npy_header(features);
    shard.data_offset = header.data_offset;
    shard.features = std::make_unique<Mapping>(features);
    if (ragged) {
      shard.row_length = read_npy<std::uint32_t>(d.manifest.shard_file(folder, s, "len"));
      shard.row_offset.resize(shard.row_length.size());
      std::uint64_t at = 0;
      for (std::size_t r = 0; r < shard.row_length.size(); ++r) {
        shard.row_offset[r] = at;
        at += shard.row_length[r];
      }
      if (shard.data_offset + at > shard.features->size())
        throw Error(
            fmt::format("{}: {} bytes of data, its lengths say {} (dataset damaged: build it again with "
                        "`trafficid prepro --rebuild`)",
                        features.string(), shard.features->size() - shard.data_offset, at));
    } else if (shard.data_offset + splits.size() * d.row_bytes > shard.features->size()) {
      throw Error(
          fmt::format("{}: shorter than its {} rows (dataset damaged: build it again with `trafficid prepro "
                      "--rebuild`)",
                      features.string(), splits.size()));
    }
    if (labels.size() != splits.size() || flows.size() != splits.size())
      throw Error(fmt::format("{}: shard {} has columns of different lengths (dataset damaged)", folder.string(),
                              d.manifest.shards[s].name));
    for (std::size_t r = 0; r < splits.size(); ++r) {
      if (splits[r] != static_cast<std::uint8_t>(split)) continue;
      d.rows.push_back({static_cast<std::uint32_t>(s), static_cast<std::uint32_t>(r >> 32),
                        static_cast<std::uint32_t>(r & 0xffffffffu), static_cast<std::int32_t>(labels[r])});
      d.flows.push_back(flows[r]);
    }
    d.shards.push_back(std::move(shard));
  }
  d.order.resize(d.rows.size());
  std::iota(d.order.begin(), d.order.end(), 0u);
}

DatasetSplit::~DatasetSplit() = default;
std::uint64_t DatasetSplit::rows() const { return impl_->rows.size(); }
const FeatureSpec& DatasetSplit::spec() const { return impl_->manifest.spec; }
const DatasetManifest& DatasetSplit::manifest() const { return impl_->manifest; }

void DatasetSplit::rewind(bool shuffle, std::uint64_t seed) {
  auto& d = *impl_;
  std::iota(d.order.begin(), d.order.end(), 0u);
  if (shuffle) {
    std::mt19937_64 rng(seed);
    std::shuffle(d.order.begin(), d.order.end(), rng);
  }
  d.position = 0;
}

std::size_t DatasetSplit::skip(std::size_t rows) {
  auto& d = *impl_;
  const std::size_t n = std::min<std::size_t>(rows, d.order.size() - d.position);
  d.position += n;
  return n;
}

bool DatasetSplit::next(std::size_t max_rows, FeatureBatch& batch) {
  auto& d = *impl_;
  const std::size_t n = std::min<std::size_t>(max_rows, d.order.size() - d.position);
  if (n == 0) return false;
  batch.dtype = d.manifest.spec.dtype;
  batch.shape = d.manifest.spec.shape;
  batch.rows = n;
  batch.data.assign(n * d.row_bytes, 0);
  batch.labels.resize(n);
  batch.flow_ids.resize(n);
  batch.file_ids.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t index = d.order[d.position + i];
    const RowRef& ref = d.rows[index];
    const Shard& shard = d.shards[ref.shard];
    const std::uint64_t row = ref.row();
    const std::uint8_t* base = shard.features->data() + shard.data_offset;
    if (!shard.row_length.empty()) {
      std::memcpy(batch.data.data() + i * d.row_bytes, base + shard.row_offset[row],
                  std::min<std::size_t>(shard.row_length[row], d.row_bytes));
    } else {
      std::memcpy(batch.data.data() + i * d.row_bytes, base + row * d.row_bytes, d.row_bytes);
    }
    batch.labels[i] = ref.label;
    batch.flow_ids[i] = d.flows[index];
    batch.file_ids[i] = static_cast<std::uint32_t>(d.flows[index] >> 40);
  }
  d.position += n;
  return true;
}

}  // namespace trafficid
