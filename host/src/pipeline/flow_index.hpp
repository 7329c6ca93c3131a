// Dataset flow id (input << 40 | the labeler's flow number) -> the flow's place in the dataset
// builder's table. Every row of every shard is looked up here two or three times when a dataset
// is finished, which made the node-per-entry hash map it replaces 12% of `trafficid prepro`.
// Labelers number an input's flows 1, 2, 3, ... (nDPI's, across its workers, nearly so): those
// numbers index a table per input directly. Any other number (a sparse or hashed one) goes to a
// hash map, so a table never grows past about twice the highest number it holds.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "trafficid/dataset.hpp"

namespace trafficid::host {

class FlowIndex {
 public:
  static constexpr std::uint32_t none = UINT32_MAX;

  void insert(std::uint64_t id, std::uint32_t place) {
    const std::uint32_t input = input_of_flow(id);
    const std::uint64_t number = number_of(id);
    if (input >= direct_.size()) direct_.resize(input + std::size_t{1});
    auto& table = direct_[input];
    if (number < 2 * table.size() + 1024) {
      if (number >= table.size())
        table.resize(std::max<std::size_t>(number + 1, table.size() + table.size() / 2), none);
      table[number] = place;
      return;
    }
    other_.insert_or_assign(id, place);
  }
  // The place of `id`, or `none`.
  std::uint32_t find(std::uint64_t id) const {
    const std::uint32_t input = input_of_flow(id);
    const std::uint64_t number = number_of(id);
    if (input < direct_.size() && number < direct_[input].size() && direct_[input][number] != none)
      return direct_[input][number];
    if (other_.empty()) return none;
    auto it = other_.find(id);
    return it == other_.end() ? none : it->second;
  }
  // visit(id, place) for every entry, in no particular order.
  template <typename Visit>
  void for_each(Visit visit) const {
    for (std::uint32_t input = 0; input < direct_.size(); ++input)
      for (std::uint64_t number = 0; number < direct_[input].size(); ++number)
        if (direct_[input][number] != none) visit(dataset_flow_id(input, number), direct_[input][number]);
    for (const auto& [id, place] : other_) visit(id, place);
  }

 private:
  std::vector<std::vector<std::uint32_t>> direct_;  // per input, flow number -> place (none: no flow)
  std::unordered_map<std::uint64_t, std::uint32_t> other_;

  static std::uint64_t number_of(std::uint64_t id) { return id & ((std::uint64_t{1} << flow_input_shift) - 1); }
};

}  // namespace trafficid::host
