#include "tune/trial.hpp"

#include <fmt/format.h>
#include <optional>

#include "train/epoch_log.hpp"
#include "trafficid/files.hpp"

namespace trafficid::host {

bool TrialJudge::go_on(const EpochMetrics& m, const std::filesystem::path& metrics_file) {
  // A resumed trial first reports the epochs its checkpoint holds that this process has not
  // (the journal may lack them after a kill; the study ignores a step it has).
  std::vector<std::pair<int, double>> epochs;
  if (m.epoch > reported_ + 1)
    for (const auto& line : read_epoch_lines(metrics_file))
      if (const int epoch = line.value("epoch", 0); epoch > reported_ && epoch < m.epoch)
        epochs.emplace_back(epoch, metric_of(metric_, line));
  epochs.emplace_back(m.epoch, metric_of(metric_, to_json(m)));
  for (const auto& [epoch, value] : epochs) {
    reported_ = epoch;
    const bool stop = study_.report(trial_, epoch, value) == TrialDecision::stop;
    log_.event("trial", {{"trial", trial_},
                         {"state", stop ? "stopped" : "reported"},
                         {"epoch", epoch},
                         {"metric", metric_},
                         {"value", value}});
    if (stop) {
      log_.info(fmt::format("trial {}: stopped after epoch {} ({} {:.4f})", trial_, epoch, metric_, value));
      stopped_at_ = epoch;
      return false;
    }
  }
  return true;
}

Json finish_trial(const std::filesystem::path& run_dir, const Json& trained, const std::string& model,
                  const TrialJudge& judge, std::uint64_t trial, const std::string& metric, bool maximize) {
  const double seconds = trained.value("training_seconds", 0.0);
  Json result;
  if (trained.value("status", "") == "diverged") {
    // A diverged trial fails for good (the same seed diverges again): no retry.
    result = {{"trial", trial},
              {"model", model},
              {"metric", metric},
              {"status", "failed"},
              {"error", trained["error"]},
              {"retry", false},
              {"value", nullptr},
              {"training_seconds", seconds}};
  } else {
    // The trial's value: its best epoch's (all epochs, also those before a resume).
    std::optional<double> best;
    std::int64_t epochs = 0;
    for (const auto& line : read_epoch_lines(trained.value("metrics_file", ""))) {
      if (judge.stopped_at() > 0 && line.value("epoch", 0) > judge.stopped_at()) continue;
      const double v = metric_of(metric, line);
      ++epochs;
      if (!best || (maximize ? v > *best : v < *best)) best = v;
    }
    result = {{"trial", trial},
              {"model", model},
              {"metric", metric},
              {"status", judge.stopped_at() > 0 ? "pruned" : "done"},
              {"epochs", epochs},
              {"training_seconds", seconds},
              {"parameters", trained.value("parameters", 0)}};
    result["value"] = best ? Json(*best) : Json(nullptr);
  }
  write_file_atomically(run_dir / "trial.json", result.dump(2));
  return result;
}

}  // namespace trafficid::host
