// Where a packet-sequence sample's columns sit, found by name, for models that read flow_start's
// samples ([packets, columns] of float32 with named columns): the payload bytes `byte_I` and the
// server name's buckets `name_K` as contiguous ranges, every other column by its name. A model
// names itself so that the error for other samples says which model refused them and the fix.
#pragma once
#include <cstdint>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "trafficid/error.hpp"
#include "trafficid/features.hpp"

namespace trafficid {

struct SequenceColumns {
  std::int64_t packets = 0, columns = 0;                     // rows (packets) of a sample, columns of a row
  std::int64_t first_byte = -1, bytes = 0;                   // byte_0 .. byte_{bytes-1}
  std::int64_t first_name = -1, names = 0;                   // name_0 .. name_{names-1}
  std::vector<std::pair<std::string, std::int64_t>> others;  // every other column, in order

  // The index of the column called `name`, or -1.
  std::int64_t at(std::string_view name) const {
    for (const auto& [n, i] : others)
      if (n == name) return i;
    return -1;
  }
};

inline SequenceColumns sequence_columns(const FeatureSpec& spec, std::string_view model) {
  if (spec.dtype != DType::f32 || spec.shape.size() != 2 ||
      spec.column_names.size() != static_cast<std::size_t>(spec.shape[1]))
    throw Error(
        fmt::format("{} reads float32 samples of [packets, columns] with named columns (the flow_start "
                    "extractor's); this dataset's are {} [{}] with {} column names: use "
                    "features.extractor = \"flow_start\"",
                    model, to_string(spec.dtype), fmt::join(spec.shape, ", "), spec.column_names.size()));
  SequenceColumns c;
  c.packets = spec.shape[0];
  c.columns = spec.shape[1];
  auto range = [&](std::int64_t i, std::int64_t& first, std::int64_t& count, const char* what) {
    if (first < 0) first = i;
    if (i != first + count) throw Error(fmt::format("{}: the {} columns must be contiguous and in order", model, what));
    ++count;
  };
  for (std::int64_t i = 0; i < c.columns; ++i) {
    const auto& name = spec.column_names[static_cast<std::size_t>(i)];
    if (name.rfind("byte_", 0) == 0) range(i, c.first_byte, c.bytes, "byte_I");
    else if (name.rfind("name_", 0) == 0) range(i, c.first_name, c.names, "name_K");
    else c.others.emplace_back(name, i);
  }
  return c;
}

}  // namespace trafficid
