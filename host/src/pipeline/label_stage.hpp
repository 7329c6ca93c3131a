// The label stage of `trafficid run`: every packet of the capture stage goes to the labeler (one
// labeler and nDPI module per thread, sharded by host pair); each flow gets its experiment class
// from the label map, the capture's folder or its file name; the stage writes label/flows.csv
// and label/classes.json (when it has a folder).
#pragma once
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "config/experiment.hpp"
#include "pipeline/stage_hook.hpp"

namespace trafficid::host {

// A label stage that keeps the labeler's own labels and gives no flow a class (`label`, `predict`).
LabelSpec labels_only(const PluginInfo& labeler, Json params, unsigned threads = 0);

// The log line of a finished label stage, from its summary (LabelStage::finish()).
std::string describe_labels(const Json& summary);

class LabelStage {
 public:
  // `threads`: labelling workers, overriding spec.threads when not 0.
  LabelStage(const LabelSpec& spec, const PluginRegistry& registry, HostServices& host, std::filesystem::path dir,
             StageHook* hook = nullptr, unsigned threads = 0);
  ~LabelStage();
  void on_packet(const PacketView& packet, const CaptureSource& source, std::size_t source_index);
  Json finish();  // flows of the last input, then the summary (also written to classes.json)

 private:
  // A label map's answer for one combination of label fields.
  struct Decision {
    std::optional<std::string> cls;
    bool confident = false;
  };
  void end_file();
  void write_flows_csv(const FlowList& flows, const std::vector<const Decision*>& decisions);
  std::string file_class(const std::string& path) const;
  const LabelSpec& spec_;
  const PluginRegistry& registry_;
  HostServices& host_;
  std::filesystem::path dir_;
  std::ofstream flows_csv_;
  std::unique_ptr<ShardedLabeling> labeling_;
  std::string current_path_;
  std::size_t current_source_ = 0;
  std::uint32_t current_file_ = 0;
  std::uint64_t current_packets_ = 0;
  StageHook* listener_ = nullptr;
  unsigned threads_ = 0;
  struct Counts {
    std::uint64_t flows = 0, packets = 0, bytes = 0;
  };
  std::map<std::string, Counts> classes_;
  Counts dropped_;
  Counts unsure_;  // flows whose label the labeler was not sure enough of (label.confidence)
};

}  // namespace trafficid::host
