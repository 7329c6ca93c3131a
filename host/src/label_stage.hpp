// The label stage of `trafficid run`: every packet of the capture stage goes to the labeler (one
// labeler and nDPI module per thread, sharded by host pair); each flow gets its experiment class
// from the label map, the capture's folder or its file name; the stage writes label/flows.csv
// and label/classes.json.
#pragma once
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "experiment.hpp"
#include "sharded_labeling.hpp"

namespace trafficid::host {

class LabelStage {
 public:
  LabelStage(const LabelSpec& spec, const PluginRegistry& registry, HostServices& host, std::filesystem::path dir);
  ~LabelStage();
  void on_packet(const PacketView& packet, const CaptureSource& source);
  Json finish();  // flows of the last input, then the summary (also written to classes.json)

 private:
  void end_file();
  std::string file_class(const std::string& path) const;
  const LabelSpec& spec_;
  const PluginRegistry& registry_;
  HostServices& host_;
  std::filesystem::path dir_;
  std::ofstream flows_csv_;
  std::unique_ptr<ShardedLabeling> labeling_;
  std::string current_path_;
  const CaptureSource* current_source_ = nullptr;
  std::uint32_t current_file_ = 0;
  struct Counts {
    std::uint64_t flows = 0, packets = 0, bytes = 0;
  };
  std::map<std::string, Counts> classes_;
  Counts dropped_;
};

}  // namespace trafficid::host
