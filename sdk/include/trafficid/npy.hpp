// NumPy .npy files (format 1.0, https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
// what datasets are made of, so that `numpy.load` alone reads them. The writer streams rows
// and fills in the row count when it closes; the reader gives the header and the raw data.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "trafficid/export.hpp"

namespace trafficid {

// NumPy's descr for the element types datasets use.
template <class T>
constexpr const char* npy_descr();
template <>
constexpr const char* npy_descr<std::uint8_t>() {
  return "|u1";
}
template <>
constexpr const char* npy_descr<std::uint16_t>() {
  return "<u2";
}
template <>
constexpr const char* npy_descr<std::uint32_t>() {
  return "<u4";
}
template <>
constexpr const char* npy_descr<std::uint64_t>() {
  return "<u8";
}
template <>
constexpr const char* npy_descr<std::int64_t>() {
  return "<i8";
}
template <>
constexpr const char* npy_descr<float>() {
  return "<f4";
}

class TRAFFICID_SDK_API NpyWriter {
 public:
  // `row_shape`: the shape after the first (row) dimension; empty for a 1-D array.
  NpyWriter(std::filesystem::path path, std::string descr, std::size_t item_size,
            std::vector<std::int64_t> row_shape = {});
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;
  ~NpyWriter();  // closes without syncing when close() was not called; never throws
  // Appends `bytes` (whole items); rows are counted as items / product(row_shape).
  void append(std::span<const std::uint8_t> bytes);
  template <class T>
  void append_value(T value) {
    append({reinterpret_cast<const std::uint8_t*>(&value), sizeof value});
  }
  // Writes the final header; `sync`: fsync before returning. Throws Error on any write failure.
  void close(bool sync = false);
  std::uint64_t items() const { return items_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void write_header();
  void write_out(const void* data, std::size_t size);
  void flush_buffer();
  std::filesystem::path path_;
  std::string descr_;
  std::size_t item_size_;
  std::vector<std::int64_t> row_shape_;
  std::FILE* file_ = nullptr;
  std::vector<std::uint8_t> buffer_;
  std::uint64_t items_ = 0;
};

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
  std::uint64_t data_offset = 0;  // where the data starts in the file
  std::uint64_t items() const {
    std::uint64_t n = 1;
    for (auto d : shape) n *= static_cast<std::uint64_t>(d);
    return n;
  }
};

// Reads and checks the header of a .npy file. Throws Error naming the file and what is wrong.
TRAFFICID_SDK_API NpyHeader read_npy_header(const std::filesystem::path& path);

// The whole array as T, after checking the descr; for index and label arrays.
template <class T>
std::vector<T> read_npy(const std::filesystem::path& path);
extern template TRAFFICID_SDK_API std::vector<std::uint8_t> read_npy(const std::filesystem::path&);
extern template TRAFFICID_SDK_API std::vector<std::uint16_t> read_npy(const std::filesystem::path&);
extern template TRAFFICID_SDK_API std::vector<std::uint32_t> read_npy(const std::filesystem::path&);
extern template TRAFFICID_SDK_API std::vector<std::uint64_t> read_npy(const std::filesystem::path&);
extern template TRAFFICID_SDK_API std::vector<std::int64_t> read_npy(const std::filesystem::path&);
extern template TRAFFICID_SDK_API std::vector<float> read_npy(const std::filesystem::path&);

}  // namespace trafficid
