// Tuners are ask/tell: they propose configurations and are told intermediate and final results.
// The host runs trials in worker processes, journals everything and survives crashes; a tuner
// never deals with processes or files.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trafficid/params.hpp"

namespace trafficid {

// One searched parameter: its dotted config path and its distribution.
struct SearchDimension {
  enum class Kind { choice, uniform, loguniform, int_uniform };
  std::string path;     // e.g. "models.cnn.conv.0.filters"
  Kind kind = Kind::choice;
  std::vector<Json> choices;
  double low = 0, high = 0;
};

struct SearchSpace {
  std::vector<SearchDimension> dimensions;
  bool maximize = true;
  std::uint64_t seed = 0;
  std::uint64_t max_trials = 0;  // 0: unbounded (until the tuner is exhausted or time runs out)
};

struct TrialProposal {
  std::uint64_t trial_id = 0;
  Json assignment;  // object: dotted path -> value
};

enum class TrialDecision { keep_going, stop };

class TRAFFICID_SDK_API Tuner : public Plugin {
 public:
  ~Tuner() override;
  virtual void start(const SearchSpace& space) = 0;
  // nullopt: nothing more to propose now (exhausted, or waiting on running trials).
  virtual std::optional<TrialProposal> ask() = 0;
  // An intermediate value (validation metric after `step` epochs): keep the trial or stop it.
  virtual TrialDecision report(std::uint64_t trial_id, int step, double value) = 0;
  // The trial ended: its final value, or nullopt when it failed or was stopped.
  virtual void tell(std::uint64_t trial_id, std::optional<double> value) = 0;
};

}  // namespace trafficid
