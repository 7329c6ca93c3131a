#include "dataset_builder.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "hashing.hpp"
#include "trafficid/npy.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t shard_feature_bytes = 512ull << 20;  // a new shard after this many feature bytes
constexpr int input_shift = 40;                              // flow id = input << 40 | labeler's flow id

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
std::uint64_t combine(std::uint64_t seed, std::uint64_t value) { return mix(seed ^ (value + 0x9e3779b97f4a7c15ull)); }

// A 64-bit hash of a sample's content, trailing zero bytes ignored (they are implied padding).
std::uint64_t content_hash(std::span<const std::uint8_t> bytes) {
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
std::int64_t mtime_ns(const fs::path& path) {
  std::error_code ec;
  auto t = fs::last_write_time(path, ec);
  if (ec) return 0;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::file_clock::to_sys(t).time_since_epoch()).count();
}

std::uint64_t tuple_hash(const FiveTuple& t) {
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

double to_unit(std::uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

std::uint8_t split_by_unit(double u, const std::array<double, 3>& f) {
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
      throw Error(fmt::format("{}: cut short (the dataset folder was changed while it was being built?)", path_.string()));
    remaining_ -= block_.size();
    return block_;
  }

 private:
  fs::path path_;
  std::ifstream in_;
  std::uint64_t remaining_ = 0;
  std::vector<T> block_;
};

}  // namespace

// Hashes the inputs' content in one background thread, in order: one file read at a time,
// whatever the number of inputs.
class DatasetBuilder::Hasher {
 public:
  Hasher() : thread_([this] { run(); }) {}
  ~Hasher() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    ready_.notify_one();
    thread_.join();
  }
  void add(std::size_t index, fs::path path) {
    {
      std::lock_guard lock(mutex_);
      queue_.emplace_back(index, std::move(path));
    }
    ready_.notify_one();
  }
  // Waits for every hash; index -> hex digest.
  std::map<std::size_t, std::string> results() {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return queue_.empty() && !busy_; });
    if (failure_) std::rethrow_exception(failure_);
    return results_;
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      ready_.wait(lock, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;
      auto [index, path] = queue_.front();
      queue_.pop_front();
      busy_ = true;
      lock.unlock();
      std::string digest;
      std::exception_ptr failure;
      try {
        digest = sha256_file(path);
      } catch (...) {
        failure = std::current_exception();
      }
      lock.lock();
      busy_ = false;
      if (failure) failure_ = failure;
      results_[index] = digest;
      if (queue_.empty()) idle_.notify_all();
    }
  }
  std::mutex mutex_;
  std::condition_variable ready_, idle_;
  std::deque<std::pair<std::size_t, fs::path>> queue_;
  std::map<std::size_t, std::string> results_;
  std::exception_ptr failure_;
  bool busy_ = false, closing_ = false;
  std::thread thread_;
};

// One labelling worker's extractor and shard writer: a PacketHook for the labeller, a SampleSink
// for the extractor. Used by one thread only.
struct DatasetBuilder::Worker final : PacketHook, SampleSink {
  DatasetBuilder& owner;
  unsigned index;
  const PluginInfo& plugin;
  std::shared_ptr<FeatureExtractor> extractor;
  std::uint32_t input = 0;
  std::uint64_t packet_index = 0;
  std::uint64_t packets = 0, rows = 0;
  int shard_number = 0;
  std::uint64_t shard_rows = 0, shard_bytes = 0;
  std::string shard_name;
  std::unique_ptr<NpyWriter> x, bytes, lengths, flow, file, packet, hash;
  std::vector<DatasetShard> shards;
  std::vector<std::uint8_t> padded;

  Worker(DatasetBuilder& o, unsigned i, const PluginInfo& p, std::shared_ptr<FeatureExtractor> e)
      : owner(o), index(i), plugin(p), extractor(std::move(e)) {}

  void on_packet(const PacketView& p, const PacketFlow& f) override {
    packet_index = p.index;
    ++packets;
    guarded(plugin, [&] { extractor->process(p, f, *this); });
  }
  void on_flow(const FlowRecord& f) override { guarded(plugin, [&] { extractor->end_flow(f, *this); }); }

  void open_shard() {
    shard_name = fmt::format("shard-{:02}-{:04}", index, shard_number++);
    auto path = [&](const char* part) { return owner.folder_ / (shard_name + "." + part + ".npy"); };
    const auto& spec = owner.spec_;
    if (owner.ragged_) {
      bytes = std::make_unique<NpyWriter>(path("bytes"), "|u1", 1);
      lengths = std::make_unique<NpyWriter>(path("len"), npy_descr<std::uint32_t>(), 4);
    } else {
      x = std::make_unique<NpyWriter>(path("x"), spec.dtype == DType::u8 ? "|u1" : "<f4", dtype_size(spec.dtype), spec.shape);
    }
    flow = std::make_unique<NpyWriter>(path("flow"), npy_descr<std::uint64_t>(), 8);
    file = std::make_unique<NpyWriter>(path("file"), npy_descr<std::uint32_t>(), 4);
    if (spec.granularity == Granularity::packet) packet = std::make_unique<NpyWriter>(path("packet"), npy_descr<std::uint64_t>(), 8);
    hash = std::make_unique<NpyWriter>(path("hash"), npy_descr<std::uint64_t>(), 8);
    shard_rows = shard_bytes = 0;
  }

  void close_shard(bool sync) {
    if (!flow) return;
    for (auto* w : {&x, &bytes, &lengths, &flow, &file, &packet, &hash})
      if (*w) {
        (*w)->close(sync);
        w->reset();
      }
    shards.push_back({shard_name, shard_rows});
  }

  void add(std::span<const std::uint8_t> sample, std::uint64_t flow_id) override {
    const auto& spec = owner.spec_;
    const std::size_t full = spec.bytes();
    if (sample.size() > full || (!spec.variable_length && sample.size() != full))
      throw Error(fmt::format("{} gave a sample of {} bytes where its spec ({} of {}) says {}{}", plugin.label(),
                              sample.size(), fmt::join(spec.shape, "x"), to_string(spec.dtype),
                              spec.variable_length ? "at most " : "", full));
    if (!flow) open_shard();
    if (owner.ragged_) {
      bytes->append(sample);
      lengths->append_value(static_cast<std::uint32_t>(sample.size()));
    } else if (sample.size() == full) {
      x->append(sample);
    } else {
      padded.assign(full, 0);
      std::memcpy(padded.data(), sample.data(), sample.size());
      x->append(padded);
    }
    flow->append_value((std::uint64_t{input} << input_shift) | flow_id);
    file->append_value(input);
    if (packet) packet->append_value(packet_index);
    hash->append_value(content_hash(sample));
    ++rows;
    ++shard_rows;
    shard_bytes += sample.size();
    if (shard_bytes >= shard_feature_bytes) close_shard(false);
  }
};

DatasetBuilder::DatasetBuilder(const Experiment& experiment, const PluginRegistry& registry, HostServices& host,
                               fs::path folder, unsigned workers, const EvaluationTarget* target)
    : experiment_(experiment), target_(target), host_(host), folder_(std::move(folder)) {
  const auto& features = *experiment.features;
  for (unsigned i = 0; i < std::max(1u, workers); ++i) {
    auto extractor = registry.create<FeatureExtractor>(*features.plugin, features.params, host, features.plugin->name);
    if (i == 0) spec_ = guarded(*features.plugin, [&] { return extractor->spec(); });
    workers_.push_back(std::make_unique<Worker>(*this, i, *features.plugin, std::move(extractor)));
  }
  if (spec_.shape.empty() || spec_.elements() == 0)
    throw Error(fmt::format("{} declares an empty sample shape", features.plugin->label()));
  const auto& storage = experiment.dataset.storage;
  if (storage == "ragged" && (spec_.dtype != DType::u8 || !spec_.variable_length))
    throw Error(fmt::format("dataset.storage = \"ragged\" needs variable-length byte features; {} gives fixed {} "
                            "samples (use storage = \"dense\" or \"auto\")", features.plugin->name, to_string(spec_.dtype)));
  ragged_ = storage == "ragged" || (storage == "auto" && spec_.variable_length && spec_.dtype == DType::u8);
}

DatasetBuilder::~DatasetBuilder() = default;

std::vector<PacketHook*> DatasetBuilder::begin_input(const SourceFileInfo& info, unsigned workers) {
  if (workers != workers_.size())
    throw Error(fmt::format("internal: {} labelling workers for {} feature workers", workers, workers_.size()));
  DatasetInput input;
  input.id = static_cast<std::uint32_t>(inputs_.size());
  input.path = info.path;
  std::error_code ec;
  if (!info.path.empty() && fs::is_regular_file(info.path, ec)) {
    input.size = fs::file_size(info.path, ec);
    input.mtime_ns = mtime_ns(info.path);
    if (!hasher_) hasher_ = std::make_unique<Hasher>();
    hasher_->add(input.id, info.path);
  }
  inputs_.push_back(input);
  std::vector<PacketHook*> hooks;
  for (auto& w : workers_) {
    w->input = input.id;
    hooks.push_back(w.get());
  }
  return hooks;
}

void DatasetBuilder::labelled(const FlowRecord& f, const std::optional<std::string>& cls) {
  const std::uint32_t input = static_cast<std::uint32_t>(inputs_.size() - 1);
  FlowEntry entry;
  entry.input = input;
  entry.key = combine(combine(combine(static_cast<std::uint64_t>(experiment_.seed), input), tuple_hash(f.tuple)),
                      static_cast<std::uint64_t>(f.first_ns));
  entry.identity = flow_identity(f.tuple, f.first_ns);
  entry.unknown = !cls && experiment_.label && experiment_.label->confident(f);
  if (cls) {
    auto [it, fresh] = class_ids_.try_emplace(*cls, static_cast<std::int32_t>(class_seen_.size()));
    if (fresh) class_seen_.push_back(*cls);
    entry.cls = it->second;
  }
  flow_index_[(std::uint64_t{input} << input_shift) | f.flow_id] = static_cast<std::uint32_t>(flows_.size());
  flows_.push_back(entry);
}

void DatasetBuilder::end_input(std::uint64_t packets) { inputs_.back().packets = packets; }

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
                                                                    const std::vector<std::int32_t>& remap, std::uint64_t salt) const {
  std::vector<FileGroup> files(inputs_.size());
  for (std::size_t i = 0; i < files.size(); ++i) {
    files[i].input = i;
    files[i].per_class.assign(classes.size(), 0);
    files[i].key = combine(static_cast<std::uint64_t>(experiment_.seed) ^ salt,
                           std::hash<std::string>{}(inputs_[i].sha256.empty() ? inputs_[i].path : inputs_[i].sha256) + i);
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
      per_class[static_cast<std::size_t>(std::max_element(g.per_class.begin(), g.per_class.end()) - g.per_class.begin())].push_back(&g);
  for (auto& group : per_class)
    std::sort(group.begin(), group.end(), [](const FileGroup* a, const FileGroup* b) { return a->key < b->key; });
  return per_class;
}

void DatasetBuilder::assign_splits(const std::vector<std::string>& classes, const std::vector<std::int32_t>& remap) {
  const auto& d = experiment_.dataset;
  if (d.split == "flow") {
    std::vector<std::vector<FlowEntry*>> per_class(classes.size());
    for (auto& f : flows_)
      if (f.cls >= 0 && f.rows > 0) per_class[static_cast<std::size_t>(remap[static_cast<std::size_t>(f.cls)])].push_back(&f);
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
    if (inputs_[i].sha256.empty()) continue;
    auto [it, fresh] = first_with_content.try_emplace(inputs_[i].sha256, i);
    if (!fresh) {
      repeated_input[i] = true;
      host_.warn(fmt::format("{} has the content of {}: its flows are kept once", inputs_[i].path, inputs_[it->second].path));
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

std::vector<int> DatasetBuilder::assign_folds(const std::vector<std::string>& classes, const std::vector<std::int32_t>& remap) {
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
      host_.warn(fmt::format("class {} is the main class of {} file{}: with {} folds by file it is tested in {} of them "
                             "and validated in as few", classes[c], group.size(), group.size() == 1 ? "" : "s", k, group.size()));
  }
  return fold_of;
}

void DatasetBuilder::assign_evaluation(DatasetManifest& m, const std::vector<std::int32_t>& remap) {
  // Every flow of a class (and, when kept, of no class) is tested, except training data.
  std::vector<bool> training_input(inputs_.size(), false);
  Json left_out = Json::array();
  for (std::size_t i = 0; i < inputs_.size(); ++i)
    if (!inputs_[i].sha256.empty() && target_->input_hashes.contains(inputs_[i].sha256)) {
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
    host_.warn(fmt::format("evaluation: {} flow{} of {} are training flows (same 5-tuple and start in a training "
                           "capture): left out", n, n == 1 ? "" : "s", path));
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

DatasetManifest DatasetBuilder::finish(const std::string& config_hash, const Json& config) {
  const auto started = std::chrono::steady_clock::now();
  const auto& d = experiment_.dataset;
  DatasetManifest m;
  for (auto& w : workers_) {
    // Flows still open in the extractor were ended by the labeler's flush; close the files.
    w->close_shard(d.sync);
    m.shards.insert(m.shards.end(), w->shards.begin(), w->shards.end());
  }
  if (hasher_)
    for (const auto& [index, digest] : hasher_->results()) inputs_[index].sha256 = digest;

  // Classes: in name order, or an evaluation's training classes; their ids as seen -> final index
  // (-1: a class the training dataset does not have).
  std::vector<std::string> classes = class_seen_;
  std::sort(classes.begin(), classes.end());
  if (target_) classes = target_->class_names;
  std::vector<std::int32_t> remap(class_seen_.size(), -1);
  for (std::size_t i = 0; i < class_seen_.size(); ++i) {
    auto at = std::find(classes.begin(), classes.end(), class_seen_[i]);
    if (at != classes.end()) remap[i] = static_cast<std::int32_t>(at - classes.begin());
  }
  const std::size_t k = classes.size();

  auto shard_path = [&](const DatasetShard& s, const std::string& part) { return folder_ / (s.name + "." + part + ".npy"); };
  auto entry_of = [&](std::uint64_t flow_id) -> FlowEntry* {
    auto it = flow_index_.find(flow_id);
    return it == flow_index_.end() ? nullptr : &flows_[it->second];
  };

  // Pass 1: rows per flow, for a split stratified by samples.
  for (const auto& s : m.shards) {
    ColumnReader<std::uint64_t> flows(shard_path(s, "flow"));
    while (true) {
      const auto& block = flows.next();
      if (block.empty()) break;
      for (std::uint64_t id : block)
        if (FlowEntry* f = entry_of(id)) ++f->rows;
    }
  }
  mark_repeats();
  for (auto& f : flows_)
    if (f.repeated) f.rows = 0;  // no split is served by them
  // The identities of the flows with a class: what an evaluation dataset must not hold.
  {
    std::vector<std::uint64_t> keys;
    for (const auto& f : flows_)
      if (f.cls >= 0 && remap[static_cast<std::size_t>(f.cls)] >= 0) keys.push_back(f.identity);
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    NpyWriter out(folder_ / "flow_keys.npy", npy_descr<std::uint64_t>(), 8);
    for (auto key : keys) out.append_value(key);
    out.close(d.sync);
  }
  std::vector<int> fold_of;  // per input, with folds
  const int folds = target_ ? 0 : d.folds;
  if (target_) assign_evaluation(m, remap);
  else if (folds > 0) fold_of = assign_folds(classes, remap);
  else assign_splits(classes, remap);

  const bool by_packet = !target_ && d.split == "packet";
  const bool packet_rows = spec_.granularity == Granularity::packet;
  const auto seed = static_cast<std::uint64_t>(experiment_.seed);
  // Each row's split before deduplication and balancing, and an identity independent of threads.
  struct Row {
    std::int32_t cls = -1;
    std::uint8_t split = excluded_split;
    std::uint32_t input = 0;
    std::uint64_t identity = 0;
    bool repeated = false;
  };
  auto rows_of = [&](const DatasetShard& s, auto&& visit) {
    ColumnReader<std::uint64_t> flow_column(shard_path(s, "flow")), hash_column(shard_path(s, "hash"));
    std::optional<ColumnReader<std::uint64_t>> packet_column;
    if (packet_rows) packet_column.emplace(shard_path(s, "packet"));
    while (true) {
      const auto& flows = flow_column.next();
      const auto& hashes = hash_column.next();
      if (flows.empty()) break;
      const std::vector<std::uint64_t>* packets = packet_column ? &packet_column->next() : nullptr;
      for (std::size_t i = 0; i < flows.size(); ++i) {
        Row r;
        const FlowEntry* f = entry_of(flows[i]);
        if (f && f->cls >= 0) r.cls = remap[static_cast<std::size_t>(f->cls)];
        r.repeated = f && f->repeated;
        if (f && !f->repeated && (r.cls >= 0 || (target_ && f->unknown))) {
          r.input = f->input;
          r.identity = packets ? combine(combine(seed, flows[i] >> input_shift), (*packets)[i]) : combine(seed, f->key);
          r.split = by_packet ? split_by_unit(to_unit(combine(seed ^ 0x5eed, r.identity)), d.fractions) : f->split;
        }
        visit(i, r, hashes[i]);
      }
    }
  };

  std::uint64_t total_rows = 0;
  for (int fold = 0; fold < std::max(1, folds); ++fold) {
    // A row's split in this fold: its file's fold is tested, the next one validates.
    auto split_of = [&](const Row& r) -> std::uint8_t {
      if (folds == 0 || r.cls < 0 || r.repeated) return r.split;
      const int f = fold_of[r.input];
      if (f < 0) return excluded_split;
      return f == fold ? 2 : f == (fold + 1) % folds ? 1 : 0;
    };
    // Pass 2: what training and validation hold (for deduplication) and the training rows per
    // class, with a histogram of their identities (for exact, thread-independent balancing).
    std::unordered_set<std::uint64_t> train_hashes, validation_hashes;
    std::vector<std::uint64_t> train_rows(k, 0);
    const bool balancing = !target_ && (d.balance == "undersample" || d.balance == "cap");
    const bool deduplicate = !target_ && d.deduplicate;
    constexpr int bucket_bits = 16;
    std::vector<std::vector<std::uint32_t>> histogram(balancing ? k : 0, std::vector<std::uint32_t>(1u << bucket_bits, 0));
    if (!target_)
      for (const auto& s : m.shards)
        rows_of(s, [&](std::size_t, const Row& r, std::uint64_t h) {
          if (r.cls < 0) return;
          const std::uint8_t split = split_of(r);
          if (split == 0) {
            if (deduplicate) train_hashes.insert(h);
            ++train_rows[static_cast<std::size_t>(r.cls)];
            if (balancing) ++histogram[static_cast<std::size_t>(r.cls)][r.identity >> (64 - bucket_bits)];
          } else if (split == 1 && deduplicate) {
            validation_hashes.insert(h);
          }
        });

    // Balancing: keep the training rows of class c whose identity is among its `target[c]` smallest.
    std::vector<std::uint64_t> target = train_rows;
    if (d.balance == "undersample") {
      std::uint64_t smallest = UINT64_MAX;
      for (auto n : train_rows)
        if (n > 0) smallest = std::min(smallest, n);
      for (auto& t : target) t = std::min(t, smallest);
    } else if (d.balance == "cap") {
      for (auto& t : target) t = std::min<std::uint64_t>(t, d.max_per_class);
    }
    std::vector<std::uint64_t> threshold(k, UINT64_MAX);  // keep identity <= threshold
    if (balancing) {
      std::vector<int> boundary(k, -1);
      std::vector<std::uint64_t> need(k, 0);
      for (std::size_t c = 0; c < k; ++c) {
        if (target[c] >= train_rows[c]) continue;
        if (target[c] == 0) {
          threshold[c] = 0;
          boundary[c] = -2;
          continue;
        }
        std::uint64_t below = 0;
        for (int b = 0; b < (1 << bucket_bits); ++b) {
          if (below + histogram[c][static_cast<std::size_t>(b)] >= target[c]) {
            boundary[c] = b;
            need[c] = target[c] - below;
            break;
          }
          below += histogram[c][static_cast<std::size_t>(b)];
        }
      }
      histogram.clear();
      std::vector<std::vector<std::uint64_t>> at_boundary(k);
      for (const auto& s : m.shards)
        rows_of(s, [&](std::size_t, const Row& r, std::uint64_t) {
          if (r.cls < 0 || split_of(r) != 0) return;
          auto c = static_cast<std::size_t>(r.cls);
          if (boundary[c] >= 0 && static_cast<int>(r.identity >> (64 - bucket_bits)) == boundary[c])
            at_boundary[c].push_back(r.identity);
        });
      for (std::size_t c = 0; c < k; ++c) {
        if (boundary[c] < 0) continue;
        auto& ids = at_boundary[c];
        std::nth_element(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(need[c] - 1), ids.end());
        threshold[c] = ids[need[c] - 1];
      }
    }

    // Pass 3: the final split of every row.
    std::map<std::string, std::vector<std::uint64_t>> counts;
    for (auto s : {SplitName::train, SplitName::validation, SplitName::test}) counts[to_string(s)].assign(k, 0);
    std::uint64_t no_class = 0, duplicate = 0, balanced_out = 0, unknown = 0, left_out = 0, repeated = 0;
    total_rows = 0;
    for (const auto& s : m.shards) {
      NpyWriter split(shard_path(s, DatasetManifest::split_part(fold)), "|u1", 1);
      std::optional<NpyWriter> y;  // the class column, the same in every fold: written with fold 0's splits
      if (fold == 0) y.emplace(shard_path(s, "y"), npy_descr<std::int64_t>(), 8);
      rows_of(s, [&](std::size_t, const Row& r, std::uint64_t h) {
        ++total_rows;
        if (y) y->append_value(static_cast<std::int64_t>(r.cls));
        std::uint8_t final_split = split_of(r);
        if (r.repeated) {
          final_split = excluded_split;
          ++repeated;
        } else if (r.cls < 0) {
          if (final_split == 2) ++unknown;  // an evaluation's flow of no class: tested for rejection
          else ++no_class;
        } else if (target_ && final_split == excluded_split) {
          ++left_out;
        } else if (final_split == 0 && r.identity > threshold[static_cast<std::size_t>(r.cls)]) {
          final_split = excluded_split;
          ++balanced_out;
        } else if (deduplicate && ((final_split >= 1 && train_hashes.contains(h)) ||
                                   (final_split == 2 && validation_hashes.contains(h)))) {
          final_split = excluded_split;
          ++duplicate;
        }
        if (final_split != excluded_split && r.cls >= 0)
          ++counts[to_string(static_cast<SplitName>(final_split))][static_cast<std::size_t>(r.cls)];
        split.append_value(final_split);
      });
      split.close(d.sync);
      if (y) y->close(d.sync);
    }
    if (fold == 0) {
      m.counts = counts;
      m.excluded = {{"no_class", no_class}, {"duplicate", duplicate}, {"balancing", balanced_out}, {"repeated_flow", repeated}};
      if (target_) {
        m.excluded["training_data"] = left_out;
        m.excluded["unknown_tested"] = unknown;
      }
    }
    if (folds > 0) m.fold_counts.push_back(counts);
  }
  for (const auto& s : m.shards) fs::remove(shard_path(s, "hash"));  // content hashes served deduplication

  m.config_hash = config_hash;
  m.extractor = experiment_.features->plugin->name;
  m.spec = spec_;
  m.storage = ragged_ ? "ragged" : "dense";
  m.class_names = classes;
  m.split_method = target_ ? "evaluation" : d.split;
  m.folds = folds;
  m.split_seed = seed;
  m.fractions = d.fractions;
  m.balance = target_ ? "none" : d.balance;
  m.class_weights.assign(k, 1.0);
  if (!target_ && d.balance == "weights") m.class_weights = balanced_class_weights(m.counts["train"]);
  m.inputs = inputs_;
  m.config = config;
  std::uint64_t packets = 0, packets_in_flows = 0, feature_bytes = 0, dataset_bytes = 0;
  for (const auto& i : inputs_) packets += i.packets;
  for (const auto& w : workers_) packets_in_flows += w->packets;
  for (const auto& e : fs::directory_iterator(folder_))
    if (e.is_regular_file()) {
      dataset_bytes += e.file_size();
      auto name = e.path().filename().string();
      if (name.ends_with(".x.npy") || name.ends_with(".bytes.npy")) feature_bytes += e.file_size();
    }
  m.statistics = {{"packets_read", packets},
                  {"packets_in_flows", packets_in_flows},
                  {"rows", total_rows},
                  {"flows", flows_.size()},
                  {"feature_bytes", feature_bytes},
                  {"dataset_bytes", dataset_bytes},
                  {"bytes_per_row", total_rows ? static_cast<double>(dataset_bytes) / static_cast<double>(total_rows) : 0.0},
                  {"finish_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()}};
  return m;
}

DatasetPlan plan_dataset(const Experiment& experiment) {
  // Everything that decides the samples, and nothing that does not (names, folders, fsync).
  Json config = experiment.resolved;
  config.erase("experiment");
  config.erase("models");  // the stages after the dataset do not change it
  config.erase("train");
  config.erase("evaluate");  // scores models; the evaluation dataset has a plan of its own
  config["seed"] = experiment.seed;
  if (config.contains("dataset"))
    for (const char* key : {"reuse", "sync", "directory"}) config["dataset"].erase(key);
  if (config.contains("features")) config["features"].erase("threads");
  if (config.contains("label")) config["label"].erase("threads");
  Json versions = Json::object();
  for (const auto& s : experiment.sources) versions["capture." + s.plugin->name] = s.plugin->version;
  if (experiment.label) versions["labeler." + experiment.label->plugin->name] = experiment.label->plugin->version;
  if (experiment.features) versions["features." + experiment.features->plugin->name] = experiment.features->plugin->version;
  // format 2: flow_keys.npy, folds, label confidence
  Json hashed = {{"config", config}, {"plugins", versions}, {"format", 2}};
  DatasetPlan plan;
  plan.config_hash = sha256_text(hashed.dump());
  plan.config = config;
  plan.folder = experiment.dataset.directory / fmt::format("{}-{}", experiment.name, plan.config_hash.substr(0, 16));
  return plan;
}

DatasetPlan plan_evaluation_dataset(const Experiment& experiment, const DatasetPlan& training) {
  Json config = Json::object();
  for (const char* section : {"label", "features"})
    if (experiment.resolved.contains(section)) config[section] = experiment.resolved[section];
  if (config.contains("features")) config["features"].erase("threads");
  if (config.contains("label")) config["label"].erase("threads");
  config["evaluate"] = experiment.resolved.at("evaluate");
  for (const char* key : {"flow_decision", "early", "abstain_quantile"}) config["evaluate"].erase(key);  // scoring only
  config["seed"] = experiment.seed;
  config["training_dataset"] = training.config_hash;
  Json versions = Json::object();
  for (const auto& s : experiment.evaluate->sources) versions["capture." + s.plugin->name] = s.plugin->version;
  if (experiment.label) versions["labeler." + experiment.label->plugin->name] = experiment.label->plugin->version;
  if (experiment.features) versions["features." + experiment.features->plugin->name] = experiment.features->plugin->version;
  Json hashed = {{"config", config}, {"plugins", versions}, {"format", 2}, {"kind", "evaluation"}};
  DatasetPlan plan;
  plan.config_hash = sha256_text(hashed.dump());
  plan.config = config;
  plan.folder = experiment.dataset.directory / fmt::format("{}-eval-{}", experiment.name, plan.config_hash.substr(0, 16));
  return plan;
}

EvaluationTarget evaluation_target(const fs::path& training_dataset) {
  const DatasetManifest m = read_manifest(training_dataset);
  EvaluationTarget target;
  target.training_config_hash = m.config_hash;
  target.class_names = m.class_names;
  for (const auto& i : m.inputs)
    if (!i.sha256.empty()) target.input_hashes.insert(i.sha256);
  const fs::path keys = training_dataset / "flow_keys.npy";
  if (!fs::exists(keys))
    throw Error(fmt::format("{}: no flow_keys.npy (a dataset from an older trafficid): build it again with --rebuild",
                            training_dataset.string()));
  for (auto key : read_npy<std::uint64_t>(keys)) target.flow_keys.insert(key);
  return target;
}

std::uint64_t flow_identity(const FiveTuple& tuple, std::int64_t first_ns) {
  // Microseconds: a capture converted from pcap to pcapng (or back) keeps them.
  return combine(tuple_hash(tuple), static_cast<std::uint64_t>(first_ns / 1000));
}

std::optional<DatasetManifest> reusable_dataset(const DatasetPlan& plan, const std::vector<SourceSpec>& sources,
                                                const PluginRegistry& registry, HostServices& host, std::string& why) {
  std::error_code ec;
  if (!fs::exists(plan.folder / "manifest.json", ec)) {
    why = "no dataset built from this config yet";
    return std::nullopt;
  }
  DatasetManifest m;
  try {
    m = read_manifest(plan.folder);
  } catch (const Error& e) {
    why = e.what();
    return std::nullopt;
  }
  if (m.config_hash != plan.config_hash) {
    why = "its config differs";
    return std::nullopt;
  }
  // The files the sources would read now, against those it was built from.
  std::vector<std::string> planned;
  for (const auto& s : sources) {
    auto source = registry.create<CaptureSource>(*s.plugin, s.params, host, s.instance);
    auto files = source->planned_files();
    if (!files) {
      why = fmt::format("source {} is live: its packets are new each time", s.instance);
      return std::nullopt;
    }
    planned.insert(planned.end(), files->begin(), files->end());
  }
  // A generated input (synth: no size, no modification time, no hash) is decided by its source's
  // parameters, which the config hash holds already; only files can change under the dataset.
  auto generated = [](const DatasetInput& i) { return i.size == 0 && i.mtime_ns == 0 && i.sha256.empty(); };
  std::vector<std::string> built;
  for (const auto& i : m.inputs)
    if (!i.path.empty() && !generated(i)) built.push_back(i.path);
  if (planned != built) {
    why = fmt::format("the inputs changed ({} files now, {} then)", planned.size(), built.size());
    return std::nullopt;
  }
  for (const auto& i : m.inputs) {
    if (i.path.empty() || generated(i)) continue;
    auto size = fs::file_size(i.path, ec);
    if (ec || size != i.size || mtime_ns(i.path) != i.mtime_ns) {
      why = fmt::format("{} changed since the dataset was built", i.path);
      return std::nullopt;
    }
  }
  return m;
}

}  // namespace trafficid::host
