// The front half of every command that reads traffic — `run`, `prepro`, `predict`, `label`: capture
// sources read in order, every packet labelled (one labeler and nDPI module per worker, sharded by
// host pair), each flow given its experiment class, and the stages after labelling (features into
// a dataset, predictions, a labels database) fed through one interface, StageHook.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/experiment.hpp"
#include "pipeline/capture_stage.hpp"
#include "pipeline/stage_hook.hpp"
#include "runtime/host_log.hpp"

namespace trafficid::host {

struct PipelineSpec {
  std::vector<SourceSpec> sources;
  std::uint64_t max_packets = 0;    // 0: everything
  std::optional<LabelSpec> label;   // none: capture only
  std::filesystem::path label_dir;  // label/flows.csv and classes.json go here (empty: not written)
  unsigned threads = 0;             // labelling workers per input (0: label.threads, else one per core)
  bool summary = true;              // the capture summary's flow count and port table (a cost per packet)
};

struct PipelineResult {
  CaptureSummary capture;
  Json labels;  // the label stage's summary (null without labels)
};

class Pipeline {
 public:
  Pipeline(PipelineSpec spec, const PluginRegistry& registry, HostLog& log, StageHook* hook = nullptr)
      : spec_(std::move(spec)), registry_(registry), log_(log), hook_(hook) {}
  // Reads every source to the end (or max_packets, or a stop request: capture.stopped_early).
  PipelineResult run();

 private:
  PipelineSpec spec_;
  const PluginRegistry& registry_;
  HostLog& log_;
  StageHook* hook_;
};

// A capture source of the pcap plugin reading `paths` (files or folders, recursively, as an
// experiment's pcap source finds them), or of the live plugin on `interface`.
SourceSpec pcap_source(const PluginRegistry& registry, const std::vector<std::string>& paths);
SourceSpec live_source(const PluginRegistry& registry, const std::string& interface, std::uint64_t count,
                       double duration);

}  // namespace trafficid::host
