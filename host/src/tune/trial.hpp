// A run that is a trial of a tuning study: its models' epochs go to the study (which may stop
// the trial, ASHA), and RUN_DIR/trial.json records the trial's value, its best validation epoch.
#pragma once
#include <filesystem>
#include <string>

#include "runtime/host_log.hpp"
#include "train/train_stage.hpp"
#include "tune/study.hpp"

namespace trafficid::host {

class TrialJudge final : public EpochJudge {
 public:
  TrialJudge(Study& study, std::uint64_t trial, std::string metric, HostLog& log)
      : study_(study), trial_(trial), metric_(std::move(metric)), log_(log) {}
  bool go_on(const EpochMetrics& epoch, const std::filesystem::path& metrics_file) override;
  // The epoch at which the study stopped the trial (0: not stopped); a resumed trial may have
  // trained past it before it heard, and those epochs do not count.
  int stopped_at() const { return stopped_at_; }

 private:
  Study& study_;
  std::uint64_t trial_;
  std::string metric_;
  HostLog& log_;
  int reported_ = 0;
  int stopped_at_ = 0;
};

// The trial's result from what the train stage returned for its model; written to RUN_DIR/trial.json.
Json finish_trial(const std::filesystem::path& run_dir, const Json& trained, const std::string& model,
                  const TrialJudge& judge, std::uint64_t trial, const std::string& metric, bool maximize);

}  // namespace trafficid::host
