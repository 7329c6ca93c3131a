// The dataset stage on synthetic traffic, in-process: splits by flow (stratified, seeded, no flow
// on two sides), deduplication across splits, and training-set balancing by undersampling and cap.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <set>

#include "config/experiment.hpp"
#include "pipeline/dataset_builder.hpp"
#include "pipeline/dataset_stage.hpp"
#include "test_support.hpp"
#include "trafficid/dataset_reader.hpp"

using namespace trafficid;
using namespace trafficid::host;
namespace fs = std::filesystem;

namespace {

struct Built {
  DatasetManifest manifest;
  fs::path folder;
};

// The quickstart's capture, labels and features with `overrides`, built into a dataset under `dir`.
Built build(const fs::path& dir, std::vector<std::string> overrides) {
  overrides.push_back("experiment.output_dir=\"" + dir.string() + "\"");
  overrides.push_back("models={}");
  Diagnostics diagnostics;
  auto experiment = load_experiment(fs::path(TRAFFICID_SOURCE_DIR) / "experiments" / "quickstart.toml", overrides,
                                    test_support::built_plugins(), diagnostics);
  for (const auto& d : diagnostics.all()) INFO(d.format());
  REQUIRE(experiment);
  HostLog log(LogLevel::error);
  DatasetJob job{"dataset", plan_dataset(*experiment), &experiment->sources, 0, *experiment->label, nullptr, dir};
  auto outcome = obtain_dataset(job, *experiment, test_support::built_plugins(), log, dir, true);
  REQUIRE(outcome.manifest);
  return {*outcome.manifest, job.plan.folder};
}

struct Rows {
  std::vector<std::uint64_t> flows;
  std::vector<std::int64_t> labels;
  std::vector<std::string> contents;  // each row's bytes
};

Rows rows_of(const fs::path& folder, SplitName split) {
  DatasetSplit reader(folder, split);
  Rows out;
  FeatureBatch batch;
  reader.rewind(false);
  while (reader.next(64, batch)) {
    const std::size_t row = batch.data.size() / std::max<std::size_t>(1, batch.rows);
    for (std::size_t r = 0; r < batch.rows; ++r) {
      out.flows.push_back(batch.flow_ids[r]);
      out.labels.push_back(batch.labels[r]);
      out.contents.emplace_back(reinterpret_cast<const char*>(batch.data.data() + r * row), row);
    }
  }
  return out;
}

std::map<std::int64_t, std::uint64_t> per_class(const Rows& rows) {
  std::map<std::int64_t, std::uint64_t> n;
  for (auto l : rows.labels) ++n[l];
  return n;
}

}  // namespace

TEST_CASE("a flow split keeps every flow on one side, serves each class in every split and is seeded", "[dataset]") {
  const fs::path dir = test_support::temp_dir("dataset-split");
  const auto [m, folder] = build(dir / "a", {"capture.synth.flows_per_app=10", "dataset.fractions=[0.6, 0.2, 0.2]"});
  std::map<SplitName, Rows> splits;
  for (auto s : {SplitName::train, SplitName::validation, SplitName::test}) splits[s] = rows_of(folder, s);
  // No flow on two sides.
  std::map<std::uint64_t, std::set<SplitName>> sides;
  for (const auto& [s, rows] : splits)
    for (auto f : rows.flows) sides[f].insert(s);
  for (const auto& [flow, where] : sides) CHECK(where.size() == 1);
  // Stratified: every class has training samples, and the manifest counts what the splits hold.
  const auto train = per_class(splits[SplitName::train]);
  CHECK(train.size() == m.class_names.size());
  for (std::size_t c = 0; c < m.class_names.size(); ++c)
    CHECK(m.counts.at("train")[c] ==
          (train.count(static_cast<std::int64_t>(c)) ? train.at(static_cast<std::int64_t>(c)) : 0));
  // About 60/20/20 of the flows.
  std::map<SplitName, std::size_t> flows;
  for (const auto& [flow, where] : sides) ++flows[*where.begin()];
  const double total = static_cast<double>(sides.size());
  CHECK(static_cast<double>(flows[SplitName::train]) / total == Approx(0.6).margin(0.1));
  CHECK(static_cast<double>(flows[SplitName::test]) / total == Approx(0.2).margin(0.1));
  // The same seed gives the same split; another seed another one.
  const auto again = build(dir / "b", {"capture.synth.flows_per_app=10", "dataset.fractions=[0.6, 0.2, 0.2]"});
  CHECK(again.manifest.counts == m.counts);
  CHECK(rows_of(again.folder, SplitName::test).flows == splits[SplitName::test].flows);
  const auto other =
      build(dir / "c", {"capture.synth.flows_per_app=10", "dataset.fractions=[0.6, 0.2, 0.2]", "experiment.seed=99"});
  CHECK(rows_of(other.folder, SplitName::test).flows != splits[SplitName::test].flows);
  fs::remove_all(dir);
}

TEST_CASE("deduplication keeps no validation or test sample whose content training holds", "[dataset]") {
  const fs::path dir = test_support::temp_dir("dataset-dedupe");
  // The first 20 bytes with strict masking (IP headers without addresses, ID, TTL or checksum):
  // packets of one size and protocol give the same vector, so duplicates exist to remove.
  const std::vector<std::string> base = {"capture.synth.flows_per_app=8", "features.extractor=\"deep_packet\"",
                                         "features.deep_packet.length=20", "features.deep_packet.masking=\"strict\"",
                                         "dataset.split=\"flow\""};
  auto with = base;
  with.push_back("dataset.deduplicate=true");
  const auto [m, folder] = build(dir / "on", with);
  std::set<std::string> train;
  for (const auto& c : rows_of(folder, SplitName::train).contents) train.insert(c);
  std::size_t shared = 0;
  for (auto s : {SplitName::validation, SplitName::test})
    for (const auto& c : rows_of(folder, s).contents) shared += train.count(c);
  CHECK(shared == 0);
  CHECK(m.excluded.at("duplicate") > 0);
  auto without = base;
  without.push_back("dataset.deduplicate=false");
  const auto off = build(dir / "off", without);
  CHECK(off.manifest.excluded.at("duplicate") == 0);
  fs::remove_all(dir);
}

TEST_CASE("balancing undersamples every class to the smallest, or caps each class, in training only", "[dataset]") {
  const fs::path dir = test_support::temp_dir("dataset-balance");
  const std::vector<std::string> base = {"capture.synth.flows_per_app=8", "features.extractor=\"deep_packet\""};
  auto under = base;
  under.push_back("dataset.balance=\"undersample\"");
  const auto [m, folder] = build(dir / "under", under);
  const auto& train = m.counts.at("train");
  std::uint64_t smallest = UINT64_MAX;
  for (auto n : train)
    if (n > 0) smallest = std::min(smallest, n);
  for (auto n : train) CHECK((n == 0 || n == smallest));
  CHECK(m.excluded.at("balancing") > 0);
  // The rows on disk are those counted.
  for (const auto& [cls, n] : per_class(rows_of(folder, SplitName::train))) CHECK(n == smallest);

  auto cap = base;
  cap.push_back("dataset.balance=\"cap\"");
  cap.push_back("dataset.max_per_class=20");
  const auto capped = build(dir / "cap", cap).manifest;
  std::uint64_t over_before = 0;
  const auto none = build(dir / "none", base).manifest;
  for (std::size_t c = 0; c < none.class_names.size(); ++c) {
    CHECK(capped.counts.at("train")[c] == std::min<std::uint64_t>(20, none.counts.at("train")[c]));
    CHECK(capped.counts.at("test")[c] == none.counts.at("test")[c]);  // only training is balanced
    over_before += none.counts.at("train")[c] > 20;
  }
  CHECK(over_before > 0);  // the cap had something to do
  fs::remove_all(dir);
}

TEST_CASE("skip passes over rows of a pass: the shares of a data-parallel batch are the whole batch", "[dataset]") {
  const fs::path dir = test_support::temp_dir("dataset-skip");
  const auto built = build(dir, {"capture.synth.flows_per_app=6"});
  DatasetSplit whole(built.folder, SplitName::train), shares(built.folder, SplitName::train);
  whole.rewind(true, 5);
  shares.rewind(true, 5);
  const std::uint64_t rows = whole.rows();
  REQUIRE(rows > 20);
  // Worker 1 of 3 reading the global batches of 16 rows: its share of each, after skipping the others'.
  FeatureBatch all, mine;
  std::size_t seen = 0;
  while (whole.next(16, all)) {
    const std::size_t n = all.rows, lo = n / 3, hi = 2 * n / 3;
    CHECK(shares.skip(lo) == lo);
    REQUIRE(shares.next(hi - lo, mine));
    CHECK(std::vector<std::uint64_t>(all.flow_ids.begin() + static_cast<std::ptrdiff_t>(lo),
                                     all.flow_ids.begin() + static_cast<std::ptrdiff_t>(hi)) == mine.flow_ids);
    const std::size_t width = all.data.size() / n;
    CHECK(std::equal(mine.data.begin(), mine.data.end(), all.data.begin() + static_cast<std::ptrdiff_t>(lo * width)));
    CHECK(shares.skip(n - hi) == n - hi);
    seen += n;
  }
  CHECK(seen == rows);
  CHECK(shares.skip(10) == 0);  // the pass is over
  CHECK_FALSE(shares.next(1, mine));
  fs::remove_all(dir);
}
