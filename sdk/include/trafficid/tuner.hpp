// Tuners are ask/tell: they propose configurations and are told intermediate and final results.
// The host runs trials in worker processes, journals everything and survives crashes; a tuner
// never deals with processes or files.
//
// The host rebuilds a tuner from its journal whenever it needs it (after a crash, in another
// worker process, on another machine): it constructs the plugin, calls start(), then replays every
// ask(), report() and tell() in the order the journal holds them. So a tuner must be a
// deterministic function of its parameters, the space (with its seed) and that sequence of calls:
// seed its random numbers from SearchSpace::seed, never from time or addresses. The host checks
// that a replayed ask() proposes what the journal holds.
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "trafficid/plugin.hpp"

namespace trafficid {

// One searched parameter: its dotted config path and its distribution.
struct SearchDimension {
  enum class Kind { choice, uniform, loguniform, int_uniform };
  std::string path;  // e.g. "models.cnn.conv.0.filters"
  Kind kind = Kind::choice;
  std::vector<Json> choices;
  double low = 0, high = 0;  // uniform, loguniform: [low, high); int_uniform: [low, high], integers
};

// "choice", "uniform", "loguniform", "int_uniform": the names experiments write.
TRAFFICID_SDK_API const char* to_string(SearchDimension::Kind kind);
// The kind a name means; nullopt for another name.
TRAFFICID_SDK_API std::optional<SearchDimension::Kind> search_kind(std::string_view name);

struct SearchSpace {
  std::vector<SearchDimension> dimensions;
  bool maximize = true;
  std::uint64_t seed = 0;
  std::uint64_t max_trials = 0;  // 0: unbounded (until the tuner is exhausted or time runs out)
  std::int64_t max_steps = 0;    // steps (epochs) a trial runs when nothing stops it
};

struct TrialProposal {
  std::uint64_t trial_id = 0;  // unique in the study; the host's journal refuses a reused one
  Json assignment;             // object: dotted path -> value
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

// One value of a dimension, drawn with `rng` (the same sequence on every platform: the
// distributions are computed here, not by <random>'s implementation-defined ones).
TRAFFICID_SDK_API Json sample_dimension(const SearchDimension& dimension, std::mt19937_64& rng);
// A whole assignment {path: value}, one draw per dimension in the space's order.
TRAFFICID_SDK_API Json sample_space(const SearchSpace& space, std::mt19937_64& rng);
// Every point of a space whose dimensions are all choices (int_uniform counts as its integers),
// the last dimension varying fastest; throws Error for a continuous dimension.
TRAFFICID_SDK_API std::vector<Json> grid_points(const SearchSpace& space);

}  // namespace trafficid
