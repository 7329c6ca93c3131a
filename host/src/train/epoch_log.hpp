// The training's epochs: logged as they end and kept in metrics.jsonl, which a resumed run and
// a tuning study read back.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/host_log.hpp"
#include "trafficid/model.hpp"

namespace trafficid::host {

class EpochJudge;

// Logs each epoch (a line and an `epoch` event), keeps metrics.jsonl (one line per finished
// epoch; after a resume, the lines of epochs that are redone are replaced), then asks the judge.
class EpochLog final : public TrainingObserver {
 public:
  EpochLog(HostLog& log, std::string name, std::filesystem::path file, std::int64_t epochs, EpochJudge* judge)
      : log_(log), name_(std::move(name)), file_(std::move(file)), epochs_(epochs), judge_(judge) {}
  bool on_epoch(const EpochMetrics& m) override;
  // Why training stopped on numbers that are not finite; empty when it did not.
  const std::string& diverged() const { return diverged_; }

 private:
  HostLog& log_;
  std::string diverged_;
  std::string name_;
  std::filesystem::path file_;
  std::int64_t epochs_;
  EpochJudge* judge_;
};

// The lines of a model's metrics.jsonl, one per finished epoch (none when it does not exist yet).
std::vector<Json> read_epoch_lines(const std::filesystem::path& file);
// The best epoch of a metrics.jsonl's lines by validation macro F1 (0: none).
std::int64_t best_epoch_of(const Json& epochs);

}  // namespace trafficid::host
