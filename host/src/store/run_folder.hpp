// A run folder: made (atomically, never shared), locked for its one writer, its run.json record,
// its config.resolved.toml, and RUN_DIR/inputs.json, the identity of the datasets its models
// were trained on (checked on every resume).
#pragma once
#include <chrono>
#include <filesystem>
#include <string>

#include "config/experiment.hpp"
#include "store/file_lock.hpp"
#include "trafficid/dataset.hpp"

namespace trafficid::host {

struct RunFolder {
  std::filesystem::path path;
  FileLock lock;  // held until the run ends
};

std::string timestamp_now();  // local time, YYYYmmdd-HHMMSS
// `requested` empty: a new folder OUTPUT_DIR/NAME-TIMESTAMP[-N] of its own.
RunFolder make_run_dir(const Experiment& experiment, const std::string& requested);
// RUN_DIR/config.resolved.toml: the experiment with every default filled in; returns its text.
std::string write_resolved_config(const std::filesystem::path& dir, const std::string& file,
                                  const Experiment& experiment);

// RUN_DIR/run.json, written atomically as the run goes.
class RunRecord {
 public:
  // `parts` names what the run fills in as it goes ("stages", "variants").
  RunRecord(std::filesystem::path dir, const std::string& file, const Experiment& experiment, const char* parts,
            Json empty);
  Json& json() { return record_; }
  void save() const;
  double seconds() const;

 private:
  std::filesystem::path dir_;
  Json record_;
  std::chrono::steady_clock::time_point started_;
};

// What a run's models were trained on: each dataset's config hash and the content of each input.
Json dataset_identity(const DatasetManifest& manifest);
// The first time: RUN_DIR/inputs.json records the identity. On a resume: an Error unless the
// datasets are those the run began on.
void check_run_inputs(const std::filesystem::path& dir, const Json& now);
// A dataset models can learn from (two classes, a validation split), or an Error saying what to change.
void check_trainable(const DatasetManifest& m, const std::filesystem::path& folder,
                     const std::filesystem::path& experiment);

}  // namespace trafficid::host
