// What the dataset builder's files share: seeded hashing, the split of a unit interval, and a
// reader of .npy columns in blocks. Internal to host/src/pipeline.
#pragma once
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <span>
#include <vector>

#include "trafficid/error.hpp"
#include "trafficid/flow.hpp"
#include "trafficid/npy.hpp"

namespace trafficid::host::dataset_detail {

namespace fs = std::filesystem;

constexpr std::uint64_t shard_feature_bytes = 512ull << 20;  // a new shard after this many feature bytes

inline std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
inline std::uint64_t combine(std::uint64_t seed, std::uint64_t value) {
  return mix(seed ^ (value + 0x9e3779b97f4a7c15ull));
}

// A 64-bit hash of a sample's content, trailing zero bytes ignored (they are implied padding).
inline std::uint64_t content_hash(std::span<const std::uint8_t> bytes) {
  std::size_t n = bytes.size();
  while (n > 0 && bytes[n - 1] == 0) --n;
  std::uint64_t h = 0x243f6a8885a308d3ull ^ n;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    h = (h ^ word) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, bytes.data() + i, n - i);
  return mix(h ^ tail);
}

// Modification time in nanoseconds since the Unix epoch; 0 when it cannot be read.
inline std::int64_t mtime_ns(const fs::path& path) {
  std::error_code ec;
  auto t = fs::last_write_time(path, ec);
  if (ec) return 0;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::file_clock::to_sys(t).time_since_epoch())
      .count();
}

inline std::uint64_t tuple_hash(const FiveTuple& t) {
  const FiveTuple c = canonical(t);
  std::uint64_t h = 0;
  for (std::size_t i = 0; i < 16; i += 8) {
    std::uint64_t a, b;
    std::memcpy(&a, c.src.bytes.data() + i, 8);
    std::memcpy(&b, c.dst.bytes.data() + i, 8);
    h = combine(combine(h, a), b);
  }
  return combine(h, (std::uint64_t{c.src_port} << 24) | (std::uint64_t{c.dst_port} << 8) | c.protocol);
}

inline double to_unit(std::uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

inline std::uint8_t split_by_unit(double u, const std::array<double, 3>& f) {
  if (u < f[0]) return 0;
  if (u < f[0] + f[1]) return 1;
  return 2;
}

// Reads a 1-D .npy column in blocks, so passes over a shard hold 64 Ki rows, not the whole shard.
template <class T>
class ColumnReader {
 public:
  explicit ColumnReader(const fs::path& path) : path_(path), in_(path, std::ios::binary) {
    NpyHeader h = read_npy_header(path);
    if (h.descr != npy_descr<T>() || h.shape.size() != 1)
      throw Error(fmt::format("{}: expected a 1-D {} array, found {} of {} dimensions", path.string(), npy_descr<T>(),
                              h.descr, h.shape.size()));
    remaining_ = h.items();
    in_.seekg(static_cast<std::streamoff>(h.data_offset));
  }
  // The next block (empty at the end).
  const std::vector<T>& next() {
    block_.resize(std::min<std::uint64_t>(remaining_, 65536));
    in_.read(reinterpret_cast<char*>(block_.data()), static_cast<std::streamsize>(block_.size() * sizeof(T)));
    if (static_cast<std::size_t>(in_.gcount()) != block_.size() * sizeof(T))
      throw Error(
          fmt::format("{}: cut short (the dataset folder was changed while it was being built?)", path_.string()));
    remaining_ -= block_.size();
    return block_;
  }

 private:
  fs::path path_;
  std::ifstream in_;
  std::uint64_t remaining_ = 0;
  std::vector<T> block_;
};

}  // namespace trafficid::host::dataset_detail
