// The feature and dataset stages: an extractor runs beside each labelling worker and streams its
// samples into that worker's .npy shards (nothing is held in memory but open flows); when the
// capture is read, samples get their flow's class, a split (by flow, file or packet, stratified
// by class, seeded), deduplication across splits and training-set balancing, all by streaming
// passes over small per-row columns. The dataset is written into FOLDER.part and renamed when
// complete, so a killed run never leaves a folder that looks like a dataset.
#pragma once
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <unordered_map>
#include <vector>

#include "pipeline/flow_index.hpp"
#include "pipeline/label_stage.hpp"
#include "pipeline/stage_hook.hpp"
#include "trafficid/dataset.hpp"

namespace trafficid::host {

// What an evaluation dataset takes from the training dataset whose models it scores: its classes
// (in its order) and what it was made of, which the evaluation leaves out: captures with the same
// content, and flows with the same 5-tuple and first timestamp (the same traffic in another file,
// as a cut or a conversion of a training capture).
struct EvaluationTarget {
  std::string training_config_hash;
  std::vector<std::string> class_names;
  std::set<std::string> input_hashes;           // content hashes of the training inputs
  std::unordered_set<std::uint64_t> flow_keys;  // the training dataset's flow_keys.npy
  bool keep_unknown = false;  // flows no class claims (the labeler sure of their label) stay, labelled -1
};
// The training dataset's side of EvaluationTarget, read from its folder.
EvaluationTarget evaluation_target(const std::filesystem::path& training_dataset);

class DatasetBuilder final : public StageHook {
 public:
  // With `target`, an evaluation dataset: its classes are the target's, every row with a class
  // is in the test split, and nothing of the target's training data is kept.
  DatasetBuilder(const Experiment& experiment, const PluginRegistry& registry, HostServices& host,
                 std::filesystem::path folder, unsigned workers, const EvaluationTarget* target = nullptr);
  ~DatasetBuilder() override;

  std::vector<PacketHook*> begin_input(const SourceFileInfo& file, unsigned workers) override;
  void labelled(const FlowRecord& flow, const std::optional<std::string>& cls) override;
  void end_input(std::uint64_t packets) override;
  void files_read(const std::vector<SourceFileInfo>& files) override;

  // Labels, splits and describes what was written; returns the manifest (also in the folder).
  DatasetManifest finish(const std::string& config_hash, const Json& config);

  // A dataset built in parts (pipeline/dataset_parts.hpp). A part numbers its inputs as the whole
  // collection does: `ids`, the places of the files it reads, in the order it reads them.
  void number_inputs(std::vector<std::uint32_t> ids);
  // A part, after its capture: its shards stay in the folder, its inputs and flows (what finish()
  // needs of them) are written beside them (part.json, flows.*.npy), with `header`.
  void save_part(Json header);
  // Merging: a part's inputs, flows and shards (linked into this builder's folder), `header`
  // its part.json...
  void adopt_part(const std::filesystem::path& part_folder, const Json& header, unsigned part);
  // ...then, once every part is adopted, in the order one process has them; then finish().
  void end_adoption();

 private:
  struct Worker;
  struct FlowEntry {
    std::uint64_t key = 0;       // seeded, from the input, 5-tuple and start: independent of threads
    std::uint64_t identity = 0;  // from the 5-tuple and start alone: the same flow in any capture
    std::uint64_t rows = 0;
    std::int32_t cls = -1;  // index into class_seen_
    std::uint32_t input = 0;
    std::uint8_t split = excluded_split;
    bool unknown = false;   // no class claims it, though the labeler was sure of its label
    bool repeated = false;  // an earlier input holds it (the same capture twice, or a cut of one)
  };
  // Marks the flows of inputs whose content an earlier input has, and the flows an earlier input
  // holds: a dataset keeps each capture and each flow once.
  void mark_repeats();
  // A capture file's rows per class, for splits and folds by file (its main class: the most rows),
  // in a seeded order (`salt` varies it).
  struct FileGroup {
    std::uint64_t key = 0, rows = 0;
    std::size_t input = 0;
    std::uint8_t split = 0;
    std::vector<std::uint64_t> per_class;
  };
  std::vector<FileGroup> file_groups(const std::vector<std::string>& classes, const std::vector<std::int32_t>& remap,
                                     std::uint64_t salt) const;
  // The files with rows, by main class, each class's in the seeded order.
  static std::vector<std::vector<FileGroup*>> by_main_class(std::vector<FileGroup>& files, std::size_t classes);
  // Each flow's split; with folds, each input's fold (returned); an evaluation dataset's flows.
  void assign_splits(const std::vector<std::string>& classes, const std::vector<std::int32_t>& remap);
  std::vector<int> assign_folds(const std::vector<std::string>& classes, const std::vector<std::int32_t>& remap);
  void assign_evaluation(DatasetManifest& m, const std::vector<std::int32_t>& remap);

  // How rows are read and split after the capture (finish()).
  struct RowPlan {
    std::vector<std::string> classes;
    std::vector<std::int32_t> remap;  // class id as seen -> index in classes (-1: none)
    int folds = 0;
    std::vector<int> fold_of;  // per input, with folds
    bool by_packet = false, packet_rows = false;
    std::uint64_t seed = 0;
  };
  struct Row {
    std::int32_t cls = -1;
    std::uint8_t split = excluded_split;
    std::uint32_t input = 0;
    std::uint64_t identity = 0;
    bool repeated = false;
  };
  // Rows' content hashes, for deduplication: gathered, then sorted once and looked up in the block
  // their top 16 bits name. (An unordered_set, a node per hash, took 15% of `trafficid prepro`'s
  // CPU on the 1 GB benchmark capture: 2.1 M rows.) Most rows looked up are in no other split: a
  // bitmap of the hashes' top bits, four bits per hash, turns most of them away in one read.
  class HashSet {
   public:
    void add(std::uint64_t hash) { hashes_.push_back(hash); }
    void seal();  // after the last add, before the first contains
    bool contains(std::uint64_t hash) const;

   private:
    std::vector<std::uint64_t> hashes_;
    std::vector<std::size_t> start_;   // where each block of hashes_ begins
    std::vector<std::uint64_t> seen_;  // bit (hash >> seen_shift_): some hash has these top bits
    int seen_shift_ = 64;
  };
  // What a fold's training split keeps: deduplication sets and per-class balancing thresholds.
  struct FoldFilter {
    bool deduplicate = false;
    HashSet train_hashes, validation_hashes;
    std::vector<std::uint64_t> threshold;  // keep a training row when identity <= threshold
  };
  // The workers' shards closed: their shards, and the packets they saw in flows.
  std::vector<DatasetShard> close_workers(std::uint64_t& packets);
  void hash_input(std::size_t index, const std::string& path);  // in the background
  void await_hashes();                                          // the inputs' content hashes in inputs_
  RowPlan row_plan() const;
  void count_rows(const std::vector<DatasetShard>& shards);
  void write_flow_keys(const RowPlan& plan) const;
  std::filesystem::path shard_path(const DatasetShard& s, const std::string& part) const;
  FlowEntry* entry_of(std::uint64_t flow_id);
  void rows_of(const DatasetShard& s, const RowPlan& plan, const std::function<void(const Row&, std::uint64_t)>& visit);
  static std::uint8_t split_of(const Row& r, const RowPlan& plan, int fold);
  struct FilterTally;                                  // one thread's share of fold_filter's pass
  std::size_t pass_threads(std::size_t shards) const;  // for a pass over the shards: a worker's, a shard each
  FoldFilter fold_filter(const std::vector<DatasetShard>& shards, const RowPlan& plan, int fold);
  void balance_thresholds(const std::vector<DatasetShard>& shards, const RowPlan& plan, int fold,
                          std::vector<FilterTally>& tallies, const std::vector<std::uint64_t>& train_rows,
                          FoldFilter& out);
  std::uint64_t write_fold(DatasetManifest& m, const RowPlan& plan, int fold);
  void describe(DatasetManifest& m, const RowPlan& plan, const std::string& config_hash, const Json& config,
                std::uint64_t total_rows) const;

  const Experiment& experiment_;
  const EvaluationTarget* target_ = nullptr;
  HostServices& host_;
  std::filesystem::path folder_;
  FeatureSpec spec_;
  bool ragged_ = false;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<DatasetInput> inputs_;
  class Hasher;
  std::unique_ptr<Hasher> hasher_;          // content hashes of the inputs, one at a time, beside the work
  bool sha256_inputs_ = false;              // an evaluation against a dataset whose inputs have SHA-256 digests
  std::vector<std::size_t> source_hashed_;  // inputs whose source hashes them as it reads them
  FlowIndex flow_index_;                    // dataset flow id -> flows_
  std::vector<FlowEntry> flows_;
  std::vector<std::string> class_seen_;
  std::unordered_map<std::string, std::int32_t> class_ids_;
  // Parts: a part's input numbers; a merge's adopted shards, packets and flows.
  std::vector<std::uint32_t> input_ids_;
  std::vector<DatasetShard> adopted_shards_;
  std::uint64_t adopted_packets_ = 0;
  struct AdoptedFlow {
    std::uint64_t id = 0;  // its dataset flow id
    FlowEntry entry;
    std::string cls;  // empty: none
  };
  std::vector<AdoptedFlow> adopted_flows_;
};

// The dataset folder of an experiment: DIRECTORY/NAME-HASH, HASH over everything that decides
// its content (sources, labels, features, dataset settings, plugin versions, seed).
struct DatasetPlan {
  std::filesystem::path folder;
  std::string config_hash;
  Json config;
};
DatasetPlan plan_dataset(const Experiment& experiment);
// The evaluation dataset of an experiment with [evaluate]: DIRECTORY/NAME-eval-HASH, HASH over the
// evaluation sources, labels, features and the training dataset it scores.
DatasetPlan plan_evaluation_dataset(const Experiment& experiment, const DatasetPlan& training);

// The complete dataset already in plan.folder, if the files `sources` would read are those it was
// built from and unchanged (same sizes and modification times); nullopt when it must be built.
// `why` says what changed.
std::optional<DatasetManifest> reusable_dataset(const DatasetPlan& plan, const std::vector<SourceSpec>& sources,
                                                const PluginRegistry& registry, HostServices& host, std::string& why);

// A flow's identity across captures: its canonical 5-tuple and its first timestamp (microseconds).
std::uint64_t flow_identity(const FiveTuple& tuple, std::int64_t first_ns);

}  // namespace trafficid::host
