// libFuzzer target for the .npy reader (datasets' features, labels, flow keys): any bytes as a
// file. It either reads values whose count matches the header, or throws trafficid::Error with a
// message; any other exception (std::invalid_argument from a number, std::bad_alloc from a
// damaged shape) is a finding.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "trafficid/error.hpp"
#include "trafficid/npy.hpp"
#include "memory_file.hpp"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

template <class T>
void read_as(const std::string& path, const trafficid::NpyHeader& h) {
  try {
    auto values = trafficid::read_npy<T>(path);
    check(values.size() == h.items());
  } catch (const trafficid::Error&) {
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const MemoryFile input(data, size);
  if (!input.ok()) return 0;
  const std::string path = input.path();
  try {
    const trafficid::NpyHeader h = trafficid::read_npy_header(path);
    check(h.data_offset <= size);
    read_as<std::uint8_t>(path, h);
    read_as<float>(path, h);
    read_as<std::uint64_t>(path, h);
  } catch (const trafficid::Error&) {
  }
  return 0;
}
