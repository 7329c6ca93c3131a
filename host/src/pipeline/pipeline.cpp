#include "pipeline/pipeline.hpp"

#include <fmt/format.h>

#include "config/schema_check.hpp"
#include "pipeline/label_stage.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

PipelineResult Pipeline::run() {
  std::unique_ptr<LabelStage> label_stage;
  if (spec_.label)
    label_stage = std::make_unique<LabelStage>(*spec_.label, registry_, log_, spec_.label_dir, hook_, spec_.threads);
  PacketObserver observer;
  if (label_stage || hook_)
    observer = [&](const PacketView& p, const CaptureSource& s, std::size_t i) {
      if (hook_) hook_->on_read(p);
      if (label_stage) label_stage->on_packet(p, s, i);
    };
  PipelineResult result;
  result.capture = run_capture_stage(spec_.sources, spec_.max_packets, registry_, log_, observer, spec_.summary);
  if (label_stage) result.labels = label_stage->finish();
  if (hook_) hook_->files_read(result.capture.files);
  return result;
}

namespace {
const PluginInfo& capture_plugin(const PluginRegistry& registry, const std::string& name) {
  const PluginInfo* plugin = registry.find(PluginKind::capture, name);
  if (!plugin)
    throw Error(fmt::format("the {} capture plugin is not installed (`trafficid plugins` lists what is)", name));
  return *plugin;
}
}  // namespace

SourceSpec pcap_source(const PluginRegistry& registry, const std::vector<std::string>& paths) {
  const PluginInfo& plugin = capture_plugin(registry, "pcap");
  Json params = schema_defaults(plugin.schema);
  params["paths"] = Json::array();
  for (const auto& p : paths) params["paths"].push_back(fs::absolute(p).lexically_normal().string());
  params["recursive"] = true;
  return SourceSpec{&plugin, "pcap", params};
}

SourceSpec live_source(const PluginRegistry& registry, const std::string& interface, std::uint64_t count,
                       double duration) {
  const PluginInfo& plugin = capture_plugin(registry, "live");
  Json params = schema_defaults(plugin.schema);
  params["interface"] = interface;
  params["count"] = count;
  params["duration"] = duration;
  return SourceSpec{&plugin, "live", params};
}

}  // namespace trafficid::host
