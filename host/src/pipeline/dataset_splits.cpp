// How a dataset's rows are split: flows, files or folds to splits (stratified, seeded), repeats
// left out, an evaluation's training data left out. The passes over the shards' columns that
// follow are in dataset_passes.cpp.
#include "pipeline/dataset_builder.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <functional>
#include <optional>
#include <unordered_set>

#include "pipeline/dataset_detail.hpp"
#include "store/hashing.hpp"
#include "trafficid/npy.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;
using namespace dataset_detail;

namespace {
// Gives each group (flow or file, already in seeded order) to the split furthest below its share
// of the class's rows: stratified, every split served before any gets a second helping.
template <class Group>
void deficit_assign(std::vector<Group*>& groups, const std::array<double, 3>& fractions) {
  double total = 0;
  for (auto* g : groups) total += static_cast<double>(g->rows);
  std::array<double, 3> assigned{0, 0, 0};
  for (auto* g : groups) {
    int best = 0;
    double best_deficit = -1e300;
    for (int s : {0, 2, 1}) {  // on a tie: train, then test, then validation
      double deficit = fractions[static_cast<std::size_t>(s)] * total - assigned[static_cast<std::size_t>(s)];
      if (fractions[static_cast<std::size_t>(s)] > 0 && deficit > best_deficit) {
        best = s;
        best_deficit = deficit;
      }
    }
    g->split = static_cast<std::uint8_t>(best);
    assigned[static_cast<std::size_t>(best)] += static_cast<double>(g->rows);
  }
}
}  // namespace

std::vector<DatasetBuilder::FileGroup> DatasetBuilder::file_groups(const std::vector<std::string>& classes,
                                                                   const std::vector<std::int32_t>& remap,
                                                                   std::uint64_t salt) const {
  std::vector<FileGroup> files(inputs_.size());
  for (std::size_t i = 0; i < files.size(); ++i) {
    files[i].input = i;
    files[i].per_class.assign(classes.size(), 0);
    files[i].key = combine(
        static_cast<std::uint64_t>(experiment_.seed) ^ salt,
        std::hash<std::string>{}(inputs_[i].content_hash.empty() ? inputs_[i].path : inputs_[i].content_hash) + i);
  }
  for (const auto& f : flows_)
    if (f.cls >= 0 && f.rows > 0) {
      files[f.input].rows += f.rows;
      files[f.input].per_class[static_cast<std::size_t>(remap[static_cast<std::size_t>(f.cls)])] += f.rows;
    }
  return files;
}

std::vector<std::vector<DatasetBuilder::FileGroup*>> DatasetBuilder::by_main_class(std::vector<FileGroup>& files,
                                                                                   std::size_t classes) {
  std::vector<std::vector<FileGroup*>> per_class(classes);
  for (auto& g : files)
    if (g.rows > 0)
      per_class[static_cast<std::size_t>(std::max_element(g.per_class.begin(), g.per_class.end()) -
                                         g.per_class.begin())]
          .push_back(&g);
  for (auto& group : per_class)
    std::sort(group.begin(), group.end(), [](const FileGroup* a, const FileGroup* b) { return a->key < b->key; });
  return per_class;
}

void DatasetBuilder::assign_splits(const std::vector<std::string>& classes, const std::vector<std::int32_t>& remap) {
  const auto& d = experiment_.dataset;
  if (d.split == "flow") {
    std::vector<std::vector<FlowEntry*>> per_class(classes.size());
    for (auto& f : flows_)
      if (f.cls >= 0 && f.rows > 0)
        per_class[static_cast<std::size_t>(remap[static_cast<std::size_t>(f.cls)])].push_back(&f);
    for (std::size_t c = 0; c < classes.size(); ++c) {
      auto& group = per_class[c];
      std::sort(group.begin(), group.end(), [](const FlowEntry* a, const FlowEntry* b) { return a->key < b->key; });
      deficit_assign(group, d.fractions);
      if (group.size() < 3 && !group.empty())
        host_.warn(fmt::format("class {} has {} flow{} with samples: a flow split cannot give it all three splits",
                               classes[c], group.size(), group.size() == 1 ? "" : "s"));
    }
  } else if (d.split == "file") {
    // A file goes where its main class (most rows) needs it; all its flows follow.
    auto files = file_groups(classes, remap, 0);
    auto per_class = by_main_class(files, classes.size());
    for (std::size_t c = 0; c < classes.size(); ++c) {
      auto& group = per_class[c];
      deficit_assign(group, d.fractions);
      if (group.size() < 3 && !group.empty())
        host_.warn(fmt::format("class {} is the main class of {} file{}: a file split cannot give it all three splits",
                               classes[c], group.size(), group.size() == 1 ? "" : "s"));
    }
    for (auto& f : flows_) f.split = files[f.input].split;
  }
  // "packet": decided per row in the passes below.
}

void DatasetBuilder::mark_repeats() {
  std::map<std::string, std::size_t> first_with_content;
  std::vector<bool> repeated_input(inputs_.size(), false);
  for (std::size_t i = 0; i < inputs_.size(); ++i) {
    if (inputs_[i].content_hash.empty()) continue;
    auto [it, fresh] = first_with_content.try_emplace(inputs_[i].content_hash, i);
    if (!fresh) {
      repeated_input[i] = true;
      host_.warn(
          fmt::format("{} has the content of {}: its flows are kept once", inputs_[i].path, inputs_[it->second].path));
    }
  }
  std::unordered_map<std::uint64_t, std::uint32_t> first_input;  // flow identity -> the input it was first seen in
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> repeats;
  for (auto& f : flows_) {
    if (repeated_input[f.input]) {
      f.repeated = true;
      continue;
    }
    auto [it, fresh] = first_input.try_emplace(f.identity, f.input);
    if (!fresh && it->second != f.input) {
      f.repeated = true;
      ++repeats[{f.input, it->second}];
    }
  }
  for (const auto& [inputs, n] : repeats)
    host_.warn(fmt::format("{} flow{} of {} are also in {} (same 5-tuple and start): kept once", n, n == 1 ? "" : "s",
                           inputs_[inputs.first].path, inputs_[inputs.second].path));
}

std::vector<int> DatasetBuilder::assign_folds(const std::vector<std::string>& classes,
                                              const std::vector<std::int32_t>& remap) {
  // Each file goes to the fold furthest below its share of its main class's rows (most rows),
  // files in a seeded order: every fold gets files of every class that has enough of them.
  const int k = experiment_.dataset.folds;
  auto files = file_groups(classes, remap, 0xf01d);
  auto per_class = by_main_class(files, classes.size());
  std::vector<int> fold_of(inputs_.size(), -1);
  for (std::size_t c = 0; c < classes.size(); ++c) {
    auto& group = per_class[c];
    std::vector<double> assigned(static_cast<std::size_t>(k), 0.0);
    std::vector<int> count(static_cast<std::size_t>(k), 0);
    for (auto* g : group) {
      // The fold with the fewest files of this class, then the fewest rows: a class of K files
      // gets one in each fold.
      int best = 0;
      for (int f = 1; f < k; ++f) {
        auto fi = static_cast<std::size_t>(f), bi = static_cast<std::size_t>(best);
        if (count[fi] < count[bi] || (count[fi] == count[bi] && assigned[fi] < assigned[bi])) best = f;
      }
      fold_of[g->input] = best;
      ++count[static_cast<std::size_t>(best)];
      assigned[static_cast<std::size_t>(best)] += static_cast<double>(g->rows);
    }
    if (!group.empty() && group.size() < static_cast<std::size_t>(std::min(k, 3)))
      host_.warn(
          fmt::format("class {} is the main class of {} file{}: with {} folds by file it is tested in {} of them "
                      "and validated in as few",
                      classes[c], group.size(), group.size() == 1 ? "" : "s", k, group.size()));
  }
  return fold_of;
}

void DatasetBuilder::assign_evaluation(DatasetManifest& m, const std::vector<std::int32_t>& remap) {
  // Every flow of a class (and, when kept, of no class) is tested, except training data.
  std::vector<bool> training_input(inputs_.size(), false);
  Json left_out = Json::array();
  for (std::size_t i = 0; i < inputs_.size(); ++i)
    if (!inputs_[i].content_hash.empty() && target_->input_hashes.contains(inputs_[i].content_hash)) {
      training_input[i] = true;
      left_out.push_back(inputs_[i].path);
      host_.warn(fmt::format("evaluation: {} is also a training input (same content): left out", inputs_[i].path));
    }
  const std::size_t k = target_->class_names.size();
  std::vector<std::uint64_t> without_samples(k, 0), training_flows(k, 0);
  std::uint64_t flows_left_out = 0, unknown_flows = 0, unknown_without_samples = 0, unknown_left_out = 0;
  std::map<std::string, std::uint64_t> flows_per_input;
  for (auto& f : flows_) {
    const std::int32_t cls = f.cls >= 0 ? remap[static_cast<std::size_t>(f.cls)] : -1;
    f.split = excluded_split;
    if (f.repeated) continue;
    if (cls < 0 && f.unknown && !target_->keep_unknown) ++unknown_left_out;
    if (cls < 0 && !(f.unknown && target_->keep_unknown)) continue;
    if (training_input[f.input]) continue;
    if (target_->flow_keys.contains(f.identity)) {
      ++flows_left_out;
      ++flows_per_input[inputs_[f.input].path];
      if (cls >= 0) ++training_flows[static_cast<std::size_t>(cls)];
      continue;
    }
    if (cls < 0) {
      ++unknown_flows;
      if (f.rows == 0) ++unknown_without_samples;
    } else if (f.rows == 0) {
      ++without_samples[static_cast<std::size_t>(cls)];
    }
    f.split = 2;
  }
  for (const auto& [path, n] : flows_per_input)
    host_.warn(
        fmt::format("evaluation: {} flow{} of {} are training flows (same 5-tuple and start in a training "
                    "capture): left out",
                    n, n == 1 ? "" : "s", path));
  Json per_class = Json::object();
  for (std::size_t c = 0; c < k; ++c) per_class[target_->class_names[c]] = without_samples[c];
  Json training_per_class = Json::object();
  for (std::size_t c = 0; c < k; ++c)
    if (training_flows[c]) training_per_class[target_->class_names[c]] = training_flows[c];
  m.evaluation = {{"training_dataset", target_->training_config_hash},
                  {"inputs_left_out", left_out},
                  {"training_flows_left_out", flows_left_out},
                  {"training_flows_left_out_per_class", training_per_class},
                  {"flows_without_samples", per_class},
                  {"unknown_flows", unknown_flows},
                  {"flows_of_no_class_left_out", unknown_left_out},  // evaluate.unknown = true tests them
                  {"unknown_flows_without_samples", unknown_without_samples},
                  {"keep_unknown", target_->keep_unknown}};
}

}  // namespace trafficid::host
