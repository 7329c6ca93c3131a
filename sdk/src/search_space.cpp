// Sampling and enumerating search spaces, shared by the tuner plugins.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "trafficid/error.hpp"
#include "trafficid/tuner.hpp"

namespace trafficid {

namespace {

// A double in [0, 1) from the generator's 53 high bits: the same on every platform.
double unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

namespace {
constexpr SearchDimension::Kind all_kinds[] = {SearchDimension::Kind::choice, SearchDimension::Kind::uniform,
                                               SearchDimension::Kind::loguniform, SearchDimension::Kind::int_uniform};
}  // namespace

const char* to_string(SearchDimension::Kind kind) {
  switch (kind) {
    case SearchDimension::Kind::choice: return "choice";
    case SearchDimension::Kind::uniform: return "uniform";
    case SearchDimension::Kind::loguniform: return "loguniform";
    case SearchDimension::Kind::int_uniform: return "int_uniform";
  }
  return "";
}

std::optional<SearchDimension::Kind> search_kind(std::string_view name) {
  for (auto kind : all_kinds)
    if (name == to_string(kind)) return kind;
  return std::nullopt;
}

Json sample_dimension(const SearchDimension& d, std::mt19937_64& rng) {
  switch (d.kind) {
    case SearchDimension::Kind::choice:
      if (d.choices.empty()) throw Error(fmt::format("search space: {} has no choices", d.path));
      return d.choices[static_cast<std::size_t>(rng() % d.choices.size())];
    case SearchDimension::Kind::uniform: return d.low + (d.high - d.low) * unit(rng);
    case SearchDimension::Kind::loguniform:
      return std::exp(std::log(d.low) + (std::log(d.high) - std::log(d.low)) * unit(rng));
    case SearchDimension::Kind::int_uniform: {
      const auto low = static_cast<std::int64_t>(d.low), high = static_cast<std::int64_t>(d.high);
      return low + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(high - low + 1));
    }
  }
  return nullptr;
}

Json sample_space(const SearchSpace& space, std::mt19937_64& rng) {
  Json assignment = Json::object();
  for (const auto& d : space.dimensions) assignment[d.path] = sample_dimension(d, rng);
  return assignment;
}

std::vector<Json> grid_points(const SearchSpace& space) {
  std::vector<std::vector<Json>> axes;
  for (const auto& d : space.dimensions) {
    if (d.kind == SearchDimension::Kind::choice) {
      axes.push_back(d.choices);
    } else if (d.kind == SearchDimension::Kind::int_uniform) {
      std::vector<Json> values;
      for (auto v = static_cast<std::int64_t>(d.low); v <= static_cast<std::int64_t>(d.high); ++v)
        values.emplace_back(v);
      axes.push_back(std::move(values));
    } else {
      throw Error(fmt::format("a grid needs values to enumerate: {} is continuous (give it choice = [...])", d.path));
    }
  }
  std::vector<Json> points;
  std::vector<std::size_t> index(axes.size(), 0);
  if (std::any_of(axes.begin(), axes.end(), [](const auto& a) { return a.empty(); })) return points;
  while (true) {
    Json point = Json::object();
    for (std::size_t i = 0; i < axes.size(); ++i) point[space.dimensions[i].path] = axes[i][index[i]];
    points.push_back(std::move(point));
    std::size_t i = axes.size();
    while (i > 0 && ++index[i - 1] == axes[i - 1].size()) index[--i] = 0;
    if (i == 0) break;
  }
  return points;
}

}  // namespace trafficid
