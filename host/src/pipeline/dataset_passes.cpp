// The streaming passes over a dataset's shards once its rows are split: per fold, what training
// and validation hold (deduplication), balancing thresholds, and each row's final split, on the
// labelling workers' threads, a shard each.
#include <algorithm>
#include <atomic>
#include <bit>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "pipeline/dataset_builder.hpp"
#include "pipeline/dataset_detail.hpp"
#include "trafficid/npy.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;
using namespace dataset_detail;
fs::path DatasetBuilder::shard_path(const DatasetShard& s, const std::string& part) const {
  return folder_ / (s.name + "." + part + ".npy");
}

DatasetBuilder::FlowEntry* DatasetBuilder::entry_of(std::uint64_t flow_id) {
  const std::uint32_t place = flow_index_.find(flow_id);
  return place == FlowIndex::none ? nullptr : &flows_[place];
}

// Each row of a shard with its class, split before deduplication and balancing, and an identity
// independent of threads; `visit(row, content hash)`.
void DatasetBuilder::rows_of(const DatasetShard& s, const RowPlan& plan,
                             const std::function<void(const Row&, std::uint64_t)>& visit) {
  const auto& d = experiment_.dataset;
  ColumnReader<std::uint64_t> flow_column(shard_path(s, "flow")), hash_column(shard_path(s, "hash"));
  std::optional<ColumnReader<std::uint64_t>> packet_column;
  if (plan.packet_rows) packet_column.emplace(shard_path(s, "packet"));
  while (true) {
    const auto& flows = flow_column.next();
    const auto& hashes = hash_column.next();
    if (flows.empty()) break;
    const std::vector<std::uint64_t>* packets = packet_column ? &packet_column->next() : nullptr;
    for (std::size_t i = 0; i < flows.size(); ++i) {
      Row r;
      const FlowEntry* f = entry_of(flows[i]);
      if (f && f->cls >= 0) r.cls = plan.remap[static_cast<std::size_t>(f->cls)];
      r.repeated = f && f->repeated;
      if (f && !f->repeated && (r.cls >= 0 || (target_ && f->unknown))) {
        r.input = f->input;
        r.identity =
            packets ? combine(combine(plan.seed, input_of_flow(flows[i])), (*packets)[i]) : combine(plan.seed, f->key);
        r.split =
            plan.by_packet ? split_by_unit(to_unit(combine(plan.seed ^ 0x5eed, r.identity)), d.fractions) : f->split;
      }
      visit(r, hashes[i]);
    }
  }
}

// A row's split in `fold`: its file's fold is tested, the next one validates.
std::uint8_t DatasetBuilder::split_of(const Row& r, const RowPlan& plan, int fold) {
  if (plan.folds == 0 || r.cls < 0 || r.repeated) return r.split;
  const int f = plan.fold_of[r.input];
  if (f < 0) return excluded_split;
  return f == fold ? 2 : f == (fold + 1) % plan.folds ? 1 : 0;
}

void DatasetBuilder::HashSet::seal() {
  // Distributed into the blocks of their top 16 bits first, then each block sorted by itself: the
  // hashes are uniform, so a block holds a few dozen, and this costs a quarter of sorting them all.
  constexpr std::size_t blocks = std::size_t{1} << 16;
  start_.assign(blocks + 1, 0);
  for (auto h : hashes_) ++start_[(h >> 48) + 1];
  for (std::size_t b = 1; b < start_.size(); ++b) start_[b] += start_[b - 1];
  std::vector<std::uint64_t> sorted(hashes_.size());
  std::vector<std::size_t> next(start_.begin(), start_.end() - 1);
  for (auto h : hashes_) sorted[next[h >> 48]++] = h;
  hashes_.clear();
  hashes_.shrink_to_fit();
  std::size_t kept = 0;  // duplicates removed in place; each block moves down to where the last ended
  for (std::size_t b = 0; b < blocks; ++b) {
    const auto first = sorted.begin() + static_cast<std::ptrdiff_t>(start_[b]);
    const auto last = sorted.begin() + static_cast<std::ptrdiff_t>(start_[b + 1]);
    std::sort(first, last);
    const auto unique_end = std::unique(first, last);
    const auto count = static_cast<std::size_t>(unique_end - first);
    if (kept != start_[b]) std::copy(first, unique_end, sorted.begin() + static_cast<std::ptrdiff_t>(kept));
    start_[b] = kept;
    kept += count;
  }
  start_[blocks] = kept;
  sorted.resize(kept);
  hashes_ = std::move(sorted);
  const int bits = std::clamp(static_cast<int>(std::bit_width(hashes_.size())) + 2, 16, 28);
  seen_shift_ = 64 - bits;
  seen_.assign((std::size_t{1} << bits) / 64, 0);
  for (auto h : hashes_) seen_[h >> seen_shift_ >> 6] |= std::uint64_t{1} << (h >> seen_shift_ & 63);
}

bool DatasetBuilder::HashSet::contains(std::uint64_t hash) const {
  if (start_.empty()) throw Error("internal: a row hash set was read before it was sealed");
  if (!(seen_[hash >> seen_shift_ >> 6] >> (hash >> seen_shift_ & 63) & 1)) return false;
  const auto block = static_cast<std::size_t>(hash >> 48);
  const auto first = hashes_.begin() + static_cast<std::ptrdiff_t>(start_[block]);
  const auto last = hashes_.begin() + static_cast<std::ptrdiff_t>(start_[block + 1]);
  return std::binary_search(first, last, hash);
}

namespace {
// visit(shard, slot) for every shard, on up to `threads` threads; `slot` (below `threads`) names
// the calling thread's own tallies. Shards are independent files, and what the passes gather is
// summed or sorted afterwards, so the result does not depend on which thread read which shard.
void for_each_shard(std::size_t shards, std::size_t threads,
                    const std::function<void(std::size_t, std::size_t)>& visit) {
  threads = std::max<std::size_t>(1, std::min(threads, shards));
  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  std::exception_ptr failure;
  auto work = [&](std::size_t slot) {
    try {
      for (std::size_t shard; (shard = next++) < shards;) visit(shard, slot);
    } catch (...) {
      std::lock_guard lock(mutex);
      if (!failure) failure = std::current_exception();
      next = shards;
    }
  };
  std::vector<std::thread> helpers;
  for (std::size_t slot = 1; slot < threads; ++slot) helpers.emplace_back(work, slot);
  work(0);
  for (auto& t : helpers) t.join();
  if (failure) std::rethrow_exception(failure);
}

constexpr int bucket_bits = 16;
}  // namespace

struct DatasetBuilder::FilterTally {
  std::vector<std::uint64_t> train_hashes, validation_hashes, train_rows;
  std::vector<std::vector<std::uint32_t>> histogram;  // per class, training rows per identity bucket
  std::vector<std::vector<std::uint64_t>> at_boundary;
};

// Pass 1: rows per flow, for a split stratified by samples; repeated flows serve no split. Each
// thread counts into its own table (a flow's rows can be in two shards), summed afterwards.
void DatasetBuilder::count_rows(const std::vector<DatasetShard>& shards) {
  std::vector<std::vector<std::uint32_t>> counts(pass_threads(shards.size()),
                                                 std::vector<std::uint32_t>(flows_.size(), 0));
  for_each_shard(shards.size(), counts.size(), [&](std::size_t shard, std::size_t slot) {
    ColumnReader<std::uint64_t> flows(shard_path(shards[shard], "flow"));
    while (true) {
      const auto& block = flows.next();
      if (block.empty()) break;
      for (std::uint64_t id : block)
        if (const std::uint32_t place = flow_index_.find(id); place != FlowIndex::none) ++counts[slot][place];
    }
  });
  for (const auto& c : counts)
    for (std::size_t i = 0; i < flows_.size(); ++i) flows_[i].rows += c[i];
  mark_repeats();
  for (auto& f : flows_)
    if (f.repeated) f.rows = 0;
}

std::size_t DatasetBuilder::pass_threads(std::size_t shards) const {
  return std::max<std::size_t>(1, std::min(workers_.size(), shards));
}

// Pass 2: what training and validation hold (for deduplication) and the training rows per
// class, with a histogram of their identities, for exact, thread-independent balancing: the
// training rows of class c kept are those whose identity is among its `target[c]` smallest.
DatasetBuilder::FoldFilter DatasetBuilder::fold_filter(const std::vector<DatasetShard>& shards, const RowPlan& plan,
                                                       int fold) {
  const auto& d = experiment_.dataset;
  const std::size_t k = plan.classes.size();
  FoldFilter out;
  out.threshold.assign(k, UINT64_MAX);
  if (target_) return out;
  out.deduplicate = d.deduplicate;
  const bool balancing = d.balance == "undersample" || d.balance == "cap";
  std::vector<FilterTally> tallies(pass_threads(shards.size()));
  for (auto& t : tallies) {
    t.train_rows.assign(k, 0);
    t.histogram.assign(balancing ? k : 0, std::vector<std::uint32_t>(1u << bucket_bits, 0));
    t.at_boundary.resize(k);
  }
  for_each_shard(shards.size(), tallies.size(), [&](std::size_t shard, std::size_t slot) {
    FilterTally& t = tallies[slot];
    rows_of(shards[shard], plan, [&](const Row& r, std::uint64_t h) {
      if (r.cls < 0) return;
      const std::uint8_t split = split_of(r, plan, fold);
      if (split == 0) {
        if (out.deduplicate) t.train_hashes.push_back(h);
        ++t.train_rows[static_cast<std::size_t>(r.cls)];
        if (balancing) ++t.histogram[static_cast<std::size_t>(r.cls)][r.identity >> (64 - bucket_bits)];
      } else if (split == 1 && out.deduplicate) {
        t.validation_hashes.push_back(h);
      }
    });
  });
  std::vector<std::uint64_t> train_rows(k, 0);
  for (auto& t : tallies) {
    for (auto h : t.train_hashes) out.train_hashes.add(h);
    for (auto h : t.validation_hashes) out.validation_hashes.add(h);
    t.train_hashes = {};
    t.validation_hashes = {};
    for (std::size_t c = 0; c < k; ++c) train_rows[c] += t.train_rows[c];
  }
  out.train_hashes.seal();
  out.validation_hashes.seal();
  if (balancing) balance_thresholds(shards, plan, fold, tallies, train_rows, out);
  return out;
}

// The identity below which each class keeps `target` training rows (balancing): the bucket where
// the target is reached, from the histograms, then the exact identity inside it (a second pass).
void DatasetBuilder::balance_thresholds(const std::vector<DatasetShard>& shards, const RowPlan& plan, int fold,
                                        std::vector<FilterTally>& tallies, const std::vector<std::uint64_t>& train_rows,
                                        FoldFilter& out) {
  const auto& d = experiment_.dataset;
  const std::size_t k = plan.classes.size();
  std::vector<std::uint64_t> target = train_rows;
  std::uint64_t smallest = UINT64_MAX;
  for (auto n : train_rows)
    if (n > 0) smallest = std::min(smallest, n);
  for (auto& t : target) t = std::min<std::uint64_t>(t, d.balance == "undersample" ? smallest : d.max_per_class);
  std::vector<int> boundary(k, -1);
  std::vector<std::uint64_t> need(k, 0);
  for (std::size_t c = 0; c < k; ++c) {
    if (target[c] >= train_rows[c]) continue;
    if (target[c] == 0) {
      out.threshold[c] = 0;
      boundary[c] = -2;
      continue;
    }
    std::uint64_t below = 0;
    for (std::size_t b = 0; b < (std::size_t{1} << bucket_bits); ++b) {
      std::uint64_t in_bucket = 0;
      for (const auto& t : tallies) in_bucket += t.histogram[c][b];
      if (below + in_bucket >= target[c]) {
        boundary[c] = static_cast<int>(b);
        need[c] = target[c] - below;
        break;
      }
      below += in_bucket;
    }
  }
  for (auto& t : tallies) t.histogram = {};
  for_each_shard(shards.size(), tallies.size(), [&](std::size_t shard, std::size_t slot) {
    rows_of(shards[shard], plan, [&](const Row& r, std::uint64_t) {
      if (r.cls < 0 || split_of(r, plan, fold) != 0) return;
      auto c = static_cast<std::size_t>(r.cls);
      if (boundary[c] >= 0 && static_cast<int>(r.identity >> (64 - bucket_bits)) == boundary[c])
        tallies[slot].at_boundary[c].push_back(r.identity);
    });
  });
  for (std::size_t c = 0; c < k; ++c) {
    if (boundary[c] < 0) continue;
    std::vector<std::uint64_t> ids;
    for (const auto& t : tallies) ids.insert(ids.end(), t.at_boundary[c].begin(), t.at_boundary[c].end());
    std::nth_element(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(need[c] - 1), ids.end());
    out.threshold[c] = ids[need[c] - 1];
  }
}

namespace {
// One thread's share of pass 3.
struct FoldTally {
  std::array<std::vector<std::uint64_t>, 3> counts;  // per split, rows per class
  std::uint64_t no_class = 0, duplicate = 0, balanced_out = 0, unknown = 0, left_out = 0, repeated = 0, rows = 0;
};
}  // namespace

// Pass 3: the final split of every row in `fold` (and, with fold 0, the class column); the
// counts go to the manifest. Returns the number of rows.
std::uint64_t DatasetBuilder::write_fold(DatasetManifest& m, const RowPlan& plan, int fold) {
  const std::size_t k = plan.classes.size();
  const FoldFilter filter = fold_filter(m.shards, plan, fold);
  std::vector<FoldTally> tallies(pass_threads(m.shards.size()));
  for (auto& t : tallies)
    for (auto& c : t.counts) c.assign(k, 0);
  for_each_shard(m.shards.size(), tallies.size(), [&](std::size_t shard, std::size_t slot) {
    const DatasetShard& s = m.shards[shard];
    FoldTally& t = tallies[slot];
    NpyWriter split(shard_path(s, DatasetManifest::split_part(fold)), "|u1", 1);
    std::optional<NpyWriter> y;  // the class column, the same in every fold: written with fold 0's splits
    if (fold == 0) y.emplace(shard_path(s, "y"), npy_descr<std::int64_t>(), 8);
    rows_of(s, plan, [&](const Row& r, std::uint64_t h) {
      ++t.rows;
      if (y) y->append_value(static_cast<std::int64_t>(r.cls));
      std::uint8_t final_split = split_of(r, plan, fold);
      if (r.repeated) {
        final_split = excluded_split;
        ++t.repeated;
      } else if (r.cls < 0) {
        if (final_split == 2) ++t.unknown;  // an evaluation's flow of no class: tested for rejection
        else ++t.no_class;
      } else if (target_ && final_split == excluded_split) {
        ++t.left_out;
      } else if (final_split == 0 && r.identity > filter.threshold[static_cast<std::size_t>(r.cls)]) {
        final_split = excluded_split;
        ++t.balanced_out;
      } else if (filter.deduplicate && ((final_split >= 1 && filter.train_hashes.contains(h)) ||
                                        (final_split == 2 && filter.validation_hashes.contains(h)))) {
        final_split = excluded_split;
        ++t.duplicate;
      }
      if (final_split != excluded_split && r.cls >= 0) ++t.counts[final_split][static_cast<std::size_t>(r.cls)];
      split.append_value(final_split);
    });
    split.close(experiment_.dataset.sync);
    if (y) y->close(experiment_.dataset.sync);
  });
  FoldTally all;
  for (auto& c : all.counts) c.assign(k, 0);
  for (const auto& t : tallies) {
    for (std::size_t split = 0; split < 3; ++split)
      for (std::size_t c = 0; c < k; ++c) all.counts[split][c] += t.counts[split][c];
    all.no_class += t.no_class;
    all.duplicate += t.duplicate;
    all.balanced_out += t.balanced_out;
    all.unknown += t.unknown;
    all.left_out += t.left_out;
    all.repeated += t.repeated;
    all.rows += t.rows;
  }
  std::map<std::string, std::vector<std::uint64_t>> counts;
  for (auto s : {SplitName::train, SplitName::validation, SplitName::test})
    counts[to_string(s)] = all.counts[static_cast<std::size_t>(s)];
  if (fold == 0) {
    m.counts = counts;
    m.excluded = {{"no_class", all.no_class},
                  {"duplicate", all.duplicate},
                  {"balancing", all.balanced_out},
                  {"repeated_flow", all.repeated}};
    if (target_) {
      m.excluded["training_data"] = all.left_out;
      m.excluded["unknown_tested"] = all.unknown;
    }
  }
  if (plan.folds > 0) m.fold_counts.push_back(counts);
  return all.rows;
}

}  // namespace trafficid::host
