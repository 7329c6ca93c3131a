#include "pipeline/dataset_builder.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <unordered_set>

#include "pipeline/dataset_detail.hpp"
#include "store/hashing.hpp"
#include "trafficid/npy.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;
using namespace dataset_detail;

// Hashes the content of the inputs whose source did not hash them as it read them (a damaged or
// stopped file, a source that does not hash), in one background thread, one file at a time.
// XXH3-128, as the labels database: SHA-256 cost 0.4 s of the 3.3 s `trafficid prepro` took on a
// 1 GB capture. SHA-256 only to check an evaluation's captures against a training dataset built
// before datasets used XXH3 (its manifest holds SHA-256 digests): then every input comes here.
class DatasetBuilder::Hasher {
 public:
  explicit Hasher(bool sha256) : sha256_(sha256), thread_([this] { run(); }) {}
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
        digest = sha256_ ? sha256_file(path) : content_hash_file(path);
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
  const bool sha256_;
  std::thread thread_;
};

// One labelling worker's extractor and shard writer: a PacketHook for the labeller, a SampleSink
// for the extractor. Used by one thread only.
struct DatasetBuilder::Worker final : PacketHook, SampleSink {
  DatasetBuilder& owner;
  unsigned index;
  PluginHandle<FeatureExtractor> extractor;
  std::uint32_t input = 0;
  std::uint64_t packet_index = 0;
  std::uint64_t packets = 0, rows = 0;
  int shard_number = 0;
  std::uint64_t shard_rows = 0, shard_bytes = 0;
  std::string shard_name;
  std::unique_ptr<NpyWriter> x, bytes, lengths, flow, file, packet, hash;
  std::vector<DatasetShard> shards;
  std::vector<std::uint8_t> padded;

  Worker(DatasetBuilder& o, unsigned i, PluginHandle<FeatureExtractor> e)
      : owner(o), index(i), extractor(std::move(e)) {}

  void on_packet(const PacketView& p, const PacketFlow& f) override {
    packet_index = p.index;
    ++packets;
    extractor([&](FeatureExtractor& x) { x.process(p, f, *this); });
  }
  void on_flow(const FlowRecord& f) override {
    extractor([&](FeatureExtractor& x) { x.end_flow(f, *this); });
  }

  void open_shard() {
    shard_name = fmt::format("shard-{:02}-{:04}", index, shard_number++);
    auto path = [&](const char* part) { return owner.folder_ / (shard_name + "." + part + ".npy"); };
    const auto& spec = owner.spec_;
    if (owner.ragged_) {
      bytes = std::make_unique<NpyWriter>(path("bytes"), "|u1", 1);
      lengths = std::make_unique<NpyWriter>(path("len"), npy_descr<std::uint32_t>(), 4);
    } else {
      x = std::make_unique<NpyWriter>(path("x"), spec.dtype == DType::u8 ? "|u1" : "<f4", dtype_size(spec.dtype),
                                      spec.shape);
    }
    flow = std::make_unique<NpyWriter>(path("flow"), npy_descr<std::uint64_t>(), 8);
    file = std::make_unique<NpyWriter>(path("file"), npy_descr<std::uint32_t>(), 4);
    if (spec.granularity == Granularity::packet)
      packet = std::make_unique<NpyWriter>(path("packet"), npy_descr<std::uint64_t>(), 8);
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
      throw Error(fmt::format("{} gave a sample of {} bytes where its spec ({} of {}) says {}{}",
                              extractor.info().label(), sample.size(), fmt::join(spec.shape, "x"),
                              to_string(spec.dtype), spec.variable_length ? "at most " : "", full));
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
    flow->append_value(dataset_flow_id(input, flow_id));
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
  sha256_inputs_ = target_ && std::any_of(target_->input_hashes.begin(), target_->input_hashes.end(), is_sha256_digest);
  const auto& features = *experiment.features;
  for (unsigned i = 0; i < std::max(1u, workers); ++i) {
    auto extractor = registry.make<FeatureExtractor>(*features.plugin, features.params, host, features.plugin->name);
    if (i == 0) spec_ = extractor([](FeatureExtractor& x) { return x.spec(); });
    workers_.push_back(std::make_unique<Worker>(*this, i, std::move(extractor)));
  }
  if (spec_.shape.empty() || spec_.elements() == 0)
    throw Error(fmt::format("{} declares an empty sample shape", features.plugin->label()));
  const auto& storage = experiment.dataset.storage;
  if (storage == "ragged" && (spec_.dtype != DType::u8 || !spec_.variable_length))
    throw Error(
        fmt::format("dataset.storage = \"ragged\" needs variable-length byte features; {} gives fixed {} "
                    "samples (use storage = \"dense\" or \"auto\")",
                    features.plugin->name, to_string(spec_.dtype)));
  ragged_ = storage == "ragged" || (storage == "auto" && spec_.variable_length && spec_.dtype == DType::u8);
}

DatasetBuilder::~DatasetBuilder() = default;

std::vector<PacketHook*> DatasetBuilder::begin_input(const SourceFileInfo& info, unsigned workers) {
  if (workers != workers_.size())
    throw Error(fmt::format("internal: {} labelling workers for {} feature workers", workers, workers_.size()));
  DatasetInput input;
  // Its number: its place among the inputs (in a part, among the whole collection's files).
  if (input_ids_.empty()) {
    input.id = static_cast<std::uint32_t>(inputs_.size());
  } else if (inputs_.size() < input_ids_.size()) {
    input.id = input_ids_[inputs_.size()];
  } else {
    throw Error(
        fmt::format("{}: more inputs than the part's {} files (a file that is several captures cannot be "
                    "split into parts)",
                    info.path, input_ids_.size()));
  }
  input.path = info.path;
  std::error_code ec;
  if (!info.path.empty() && fs::is_regular_file(info.path, ec)) {
    input.size = fs::file_size(info.path, ec);
    input.mtime_ns = mtime_ns(info.path);
    if (info.hashing && !sha256_inputs_) source_hashed_.push_back(inputs_.size());  // files_read() brings it
    else hash_input(inputs_.size(), info.path);
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
  const std::uint32_t input = inputs_.back().id;
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
  flow_index_.insert(dataset_flow_id(input, f.flow_id), static_cast<std::uint32_t>(flows_.size()));
  flows_.push_back(entry);
}

void DatasetBuilder::end_input(std::uint64_t packets) { inputs_.back().packets = packets; }

void DatasetBuilder::hash_input(std::size_t index, const std::string& path) {
  if (!hasher_) hasher_ = std::make_unique<Hasher>(sha256_inputs_);
  hasher_->add(index, path);  // by its place in inputs_
}

// The content hashes the sources computed as they read; a file a source did not read whole
// (damaged, stopped) is hashed here.
void DatasetBuilder::files_read(const std::vector<SourceFileInfo>& files) {
  std::map<std::string, std::string> by_path;
  for (const auto& f : files)
    if (!f.content_hash.empty()) by_path[f.path] = f.content_hash;
  for (std::size_t index : source_hashed_) {
    auto it = by_path.find(inputs_[index].path);
    if (it != by_path.end()) inputs_[index].content_hash = it->second;
    else hash_input(index, inputs_[index].path);
  }
  source_hashed_.clear();
}

// The classes in name order (or an evaluation's training classes) and each class id as seen ->
// its final index (-1: a class the training dataset does not have).
DatasetBuilder::RowPlan DatasetBuilder::row_plan() const {
  RowPlan plan;
  plan.classes = class_seen_;
  std::sort(plan.classes.begin(), plan.classes.end());
  if (target_) plan.classes = target_->class_names;
  plan.remap.assign(class_seen_.size(), -1);
  for (std::size_t i = 0; i < class_seen_.size(); ++i) {
    auto at = std::find(plan.classes.begin(), plan.classes.end(), class_seen_[i]);
    if (at != plan.classes.end()) plan.remap[i] = static_cast<std::int32_t>(at - plan.classes.begin());
  }
  plan.folds = target_ ? 0 : experiment_.dataset.folds;
  plan.by_packet = !target_ && experiment_.dataset.split == "packet";
  plan.packet_rows = spec_.granularity == Granularity::packet;
  plan.seed = static_cast<std::uint64_t>(experiment_.seed);
  return plan;
}

// flow_keys.npy: the identities of the flows with a class, what an evaluation dataset must not hold.
void DatasetBuilder::write_flow_keys(const RowPlan& plan) const {
  std::vector<std::uint64_t> keys;
  for (const auto& f : flows_)
    if (f.cls >= 0 && plan.remap[static_cast<std::size_t>(f.cls)] >= 0) keys.push_back(f.identity);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  NpyWriter out(folder_ / "flow_keys.npy", npy_descr<std::uint64_t>(), 8);
  for (auto key : keys) out.append_value(key);
  out.close(experiment_.dataset.sync);
}

DatasetManifest DatasetBuilder::finish(const std::string& config_hash, const Json& config) {
  const auto started = std::chrono::steady_clock::now();
  DatasetManifest m;
  std::uint64_t packets = 0;
  m.shards = close_workers(packets);
  m.shards.insert(m.shards.end(), adopted_shards_.begin(), adopted_shards_.end());
  await_hashes();
  RowPlan plan = row_plan();
  count_rows(m.shards);
  write_flow_keys(plan);
  if (target_) assign_evaluation(m, plan.remap);
  else if (plan.folds > 0) plan.fold_of = assign_folds(plan.classes, plan.remap);
  else assign_splits(plan.classes, plan.remap);
  std::uint64_t total_rows = 0;
  for (int fold = 0; fold < std::max(1, plan.folds); ++fold) total_rows = write_fold(m, plan, fold);
  for (const auto& s : m.shards) fs::remove(shard_path(s, "hash"));  // content hashes served deduplication
  describe(m, plan, config_hash, config, total_rows);
  m.statistics["finish_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return m;
}

std::vector<DatasetShard> DatasetBuilder::close_workers(std::uint64_t& packets) {
  std::vector<DatasetShard> shards;
  for (auto& w : workers_) {
    // Flows still open in the extractor were ended by the labeler's flush; close the files.
    w->close_shard(experiment_.dataset.sync);
    shards.insert(shards.end(), w->shards.begin(), w->shards.end());
    packets += w->packets;
  }
  return shards;
}

void DatasetBuilder::await_hashes() {
  for (std::size_t index : source_hashed_) hash_input(index, inputs_[index].path);  // files_read() never came
  source_hashed_.clear();
  if (hasher_)
    for (const auto& [index, digest] : hasher_->results()) inputs_[index].content_hash = digest;
}

// The manifest's description of the dataset: settings, classes, inputs, statistics.
void DatasetBuilder::describe(DatasetManifest& m, const RowPlan& plan, const std::string& config_hash,
                              const Json& config, std::uint64_t total_rows) const {
  const auto& d = experiment_.dataset;
  m.config_hash = config_hash;
  m.extractor = experiment_.features->plugin->name;
  m.spec = spec_;
  m.storage = ragged_ ? "ragged" : "dense";
  m.class_names = plan.classes;
  m.split_method = target_ ? "evaluation" : d.split;
  m.folds = plan.folds;
  m.split_seed = plan.seed;
  m.fractions = d.fractions;
  m.balance = target_ ? "none" : d.balance;
  m.class_weights.assign(plan.classes.size(), 1.0);
  if (!target_ && d.balance == "weights") m.class_weights = balanced_class_weights(m.counts["train"]);
  m.inputs = inputs_;
  m.config = config;
  std::uint64_t packets = 0, packets_in_flows = adopted_packets_, feature_bytes = 0, dataset_bytes = 0;
  for (const auto& i : inputs_) packets += i.packets;
  for (const auto& w : workers_) packets_in_flows += w->packets;
  for (const auto& e : fs::directory_iterator(folder_))
    if (e.is_regular_file()) {
      dataset_bytes += e.file_size();
      auto name = e.path().filename().string();
      if (name.ends_with(".x.npy") || name.ends_with(".bytes.npy")) feature_bytes += e.file_size();
    }
  m.statistics = {
      {"packets_read", packets},
      {"packets_in_flows", packets_in_flows},
      {"rows", total_rows},
      {"flows", flows_.size()},
      {"feature_bytes", feature_bytes},
      {"dataset_bytes", dataset_bytes},
      {"bytes_per_row", total_rows ? static_cast<double>(dataset_bytes) / static_cast<double>(total_rows) : 0.0}};
}

}  // namespace trafficid::host
