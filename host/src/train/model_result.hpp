// What a model's training and testing add up to before they are scored and written: its
// predictions of the test and validation splits and of unseen captures (averaged over an
// ensemble's members, appended over folds), its training time, size and speed. A blend
// ([blend]) is made of its models' results. Internal to host/src/train.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "train/scoring.hpp"
#include "trafficid/dataset_reader.hpp"
#include "trafficid/model.hpp"

namespace trafficid::host {

// What one model's folds, or an ensemble's members, add up to.
struct ModelResult {
  SplitPredictions test, validation;
  std::optional<SplitPredictions> unseen;
  Json part_records = Json::array();                    // a record per fold or member
  std::vector<std::size_t> test_ends, validation_ends;  // with folds: where each fold's rows end
  double training_seconds = 0, latency = 0;
  ModelInfo info;
  Json epochs = Json::array();  // of part 0; none for a blend
  std::int64_t best_epoch = 0;
  std::uint64_t model_bytes = 0;
  Json blend;  // a blend's {models, members}: what it averages, each model's own scores; null otherwise
};

// One part's predictions (a fold model's, an ensemble member's, or the one model's).
struct PartPredictions {
  SplitPredictions test, validation;
  std::optional<SplitPredictions> unseen;
};

// Inference speed on the test split: the median latency of single-sample predictions (up to 200).
double latency_ms(const PluginHandle<Model>& model, DatasetSplit& test);

// predictions.csv: every test row, its flow and file, true and predicted class, confidence.
void write_row_predictions(const std::filesystem::path& file, const SplitPredictions& p);

// The flows of an evaluation dataset that gave no sample, per class: the model cannot decide them.
std::vector<std::uint64_t> flows_without_samples(const DatasetManifest& m);

// Rows [begin, end) of a split's predictions (one fold's).
SplitPredictions rows_of(const SplitPredictions& p, std::size_t begin, std::size_t end);

// A blend's model `name` (its metrics.json `metrics`) into the blend's result: its predictions
// averaged in, each model weighing alike; its time, size, latency and parameters added; its
// record appended to blend.blend's members.
void blend_into(ModelResult& blend, ModelResult&& model, const std::string& name, const Json& metrics);

// A part's (a fold's, a member's) per-flow macro F1 on its validation and test rows, and its
// test rows: the record fold.json and member.json share.
Json part_scores(const SplitPredictions& validated, const SplitPredictions& tested, const ScoringOptions& validation,
                 const ScoringOptions& test);

// With folds, each fold's rows scored alone, as a model's folds are (its validation score is
// their mean); empty without folds.
Json fold_records(const ModelResult& r, const ScoringOptions& validation, const ScoringOptions& test);

// The mean of the folds' `key` as {macro_f1, interval}: the interval is the mean +- 1.96 standard
// errors over the folds (their spread, as cross-validation's one-standard-error rule reads it).
Json fold_mean(const Json& records, const char* key);

// metrics.json's headline and the log's words for it: the unseen captures' per-flow macro F1 where
// there are any, else the test split's (with folds: the captures each fold held out).
std::pair<Json, std::string> headline_of(const Json& tested, const Json* unseen, int folds, double test_f1);

}  // namespace trafficid::host
