// `trafficid predict MODEL_DIR PATHS...`: a trained model on new captures (or a live interface),
// through the same labeler (for flows) and extractor (for samples) its dataset was made with:
// per packet (or per flow-level sample) the class and confidence, and per flow the majority vote.
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <map>
#include <unordered_map>

#include "capture_stage.hpp"
#include "commands.hpp"
#include "host_log.hpp"
#include "plugin_registry.hpp"
#include "schema_check.hpp"
#include "sharded_labeling.hpp"
#include "trafficid/dataset.hpp"
#include "trafficid/model.hpp"
#include "scoring.hpp"
#include "trained_model.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

struct Prediction {
  std::string file;
  std::uint64_t packet = 0;  // packet samples: index in its capture
  std::uint64_t flow = 0;
  std::size_t predicted = 0;
  float confidence = 0;
};

// Collects samples from the extractor, predicts them in batches, keeps each flow's votes.
class Predictor final : public PacketHook, public SampleSink {
 public:
  Predictor(TrainedModel& model, FeatureExtractor& extractor, const PluginInfo& extractor_plugin,
            std::function<void(const Prediction&)> emit)
      : model_(model), extractor_(extractor), extractor_plugin_(extractor_plugin), spec_(model.manifest().spec),
        classes_(model.manifest().class_names.size()), emit_(std::move(emit)) {
    batch_.dtype = spec_.dtype;
    batch_.shape = spec_.shape;
  }
  void set_file(std::string file) { file_ = std::move(file); }

  void on_packet(const PacketView& p, const PacketFlow& f) override {
    packet_ = p.index;
    guarded(extractor_plugin_, [&] { extractor_.process(p, f, *this); });
  }
  void on_flow(const FlowRecord& f) override {
    packet_ = 0;
    guarded(extractor_plugin_, [&] { extractor_.end_flow(f, *this); });
  }
  void add(std::span<const std::uint8_t> sample, std::uint64_t flow) override {
    const std::size_t row = spec_.bytes();
    batch_.data.resize((batch_.rows + 1) * row, 0);
    std::copy(sample.begin(), sample.end(), batch_.data.begin() + static_cast<std::ptrdiff_t>(batch_.rows * row));
    batch_.labels.push_back(-1);
    batch_.flow_ids.push_back(flow);
    batch_.file_ids.push_back(0);
    packets_.push_back(packet_);
    if (++batch_.rows == 256) predict();
  }
  void predict() {
    if (batch_.rows == 0) return;
    auto p = model_.predict_proba(batch_);
    for (std::size_t r = 0; r < batch_.rows; ++r) {
      const float* first = p.data() + r * classes_;
      auto best = std::max_element(first, first + classes_);
      Prediction out{file_, packets_[r], batch_.flow_ids[r], static_cast<std::size_t>(best - first), *best};
      votes_[out.flow].add(first, classes_);
      emit_(out);
    }
    batch_.rows = 0;
    batch_.data.clear();
    batch_.labels.clear();
    batch_.flow_ids.clear();
    batch_.file_ids.clear();
    packets_.clear();
  }
  struct Vote {
    std::size_t predicted = 0;
    double confidence = 0;  // the mean probability the flow's samples gave its class
    std::uint64_t samples = 0;
    bool abstains = false;  // below the model's abstention threshold
  };
  // The flow's class by the model's decision rule (summed log-probabilities, or majority vote).
  std::optional<Vote> vote(std::uint64_t flow) const {
    auto it = votes_.find(flow);
    if (it == votes_.end()) return std::nullopt;
    auto [cls, confidence] = it->second.decide(model_.flow_decision());
    const auto threshold = model_.abstain_threshold();
    return Vote{static_cast<std::size_t>(cls), confidence, it->second.samples(), threshold && confidence < *threshold};
  }
  void forget_votes() { votes_.clear(); }

 private:
  TrainedModel& model_;
  FeatureExtractor& extractor_;
  const PluginInfo& extractor_plugin_;
  FeatureSpec spec_;
  std::size_t classes_;
  std::function<void(const Prediction&)> emit_;
  FeatureBatch batch_;
  std::vector<std::uint64_t> packets_;
  std::uint64_t packet_ = 0;
  std::string file_;
  std::unordered_map<std::uint64_t, FlowVotes> votes_;
};

}  // namespace

int cmd_predict(const GlobalOptions& global, const PredictRequest& request) {
  auto registry = load_plugins(global);
  HostLog log(log_threshold(global));
  install_stop_handlers();
  std::string why;
  const fs::path dir = resolve_model_dir(request.model_dir, why);
  if (dir != fs::path(request.model_dir)) log.info("model " + why);
  TrainedModel model(dir, registry, log);
  const DatasetManifest& manifest = model.manifest();
  const Json& config = manifest.config;
  const std::string model_name = model.name();
  const PluginInfo* extractor_plugin = registry.find(PluginKind::features, manifest.extractor);
  if (!extractor_plugin) throw Error(fmt::format("features plugin '{}' is not installed", manifest.extractor));
  const std::string labeler_name = config.at("label").value("labeler", "ndpi");
  const PluginInfo* labeler_plugin = registry.find(PluginKind::labeler, labeler_name);
  if (!labeler_plugin) throw Error(fmt::format("labeler plugin '{}' is not installed", labeler_name));
  auto extractor = registry.create<FeatureExtractor>(*extractor_plugin, config.at("features").at(manifest.extractor), log,
                                                     manifest.extractor);
  const Json labeler_params = config.at("label").at(labeler_name);

  // The source: capture files, or a live interface.
  const PluginInfo* source_plugin = registry.find(PluginKind::capture, request.interface.empty() ? "pcap" : "live");
  if (!source_plugin) throw Error("the pcap / live capture plugins are not installed");
  Json source_params = schema_defaults(source_plugin->schema);
  if (request.interface.empty()) {
    std::vector<std::string> paths;
    for (const auto& p : request.paths) paths.push_back(fs::absolute(p).string());
    source_params["paths"] = paths;
    source_params["recursive"] = true;
  } else {
    source_params["interface"] = request.interface;
    source_params["duration"] = request.duration;
    source_params["count"] = request.count;
  }
  auto source = registry.create<CaptureSource>(*source_plugin, source_params, log, source_plugin->name);

  const bool json = request.format == "json";
  const bool per_packet = request.level == "packet";
  const auto& names = manifest.class_names;
  Json json_rows = Json::array();
  std::uint64_t sample_rows = 0;
  if (!json)
    std::cout << (per_packet ? "file,packet,flow,class,confidence\n"
                             : "file,protocol,src_ip,src_port,dst_ip,dst_port,packets,bytes,ndpi_label,samples,class,confidence,abstains\n");
  Predictor predictor(model, *extractor, *extractor_plugin, [&](const Prediction& p) {
    if (!per_packet) return;
    ++sample_rows;
    if (json)
      json_rows.push_back({{"file", p.file}, {"packet", p.packet}, {"flow", p.flow}, {"class", names[p.predicted]}, {"confidence", p.confidence}});
    else
      std::cout << fmt::format("\"{}\",{},{},{},{:.4f}\n", p.file, p.packet, p.flow, names[p.predicted], p.confidence);
  });

  std::unique_ptr<ShardedLabeling> labeling;
  std::string current;
  std::uint32_t current_id = UINT32_MAX;
  std::uint64_t flows_out = 0, packets_read = 0;
  auto end_file = [&] {
    if (!labeling) return;
    auto flows = labeling->finish();
    labeling.reset();
    predictor.predict();
    for (const auto& f : flows) {
      auto vote = predictor.vote(f.flow_id);
      if (!vote || per_packet) continue;
      ++flows_out;
      const std::uint64_t packets = f.packets_c2s + f.packets_s2c, bytes = f.bytes_c2s + f.bytes_s2c;
      if (json)
        json_rows.push_back({{"file", current}, {"protocol", f.tuple.protocol}, {"src_ip", to_string(f.tuple.src)},
                             {"src_port", f.tuple.src_port}, {"dst_ip", to_string(f.tuple.dst)}, {"dst_port", f.tuple.dst_port},
                             {"packets", packets}, {"bytes", bytes}, {"ndpi_label", f.label}, {"samples", vote->samples},
                             {"class", names[vote->predicted]}, {"confidence", vote->confidence}, {"abstains", vote->abstains}});
      else
        std::cout << fmt::format("\"{}\",{},{},{},{},{},{},{},{},{},{},{:.4f},{}\n", current, f.tuple.protocol, to_string(f.tuple.src),
                                 f.tuple.src_port, to_string(f.tuple.dst), f.tuple.dst_port, packets, bytes, f.label,
                                 vote->samples, names[vote->predicted], vote->confidence, vote->abstains ? 1 : 0);
    }
    predictor.forget_votes();
  };
  PacketView packet;
  while (guarded(*source_plugin, [&] { return source->next(packet); })) {
    if (!labeling || packet.file_id != current_id) {
      end_file();
      current_id = packet.file_id;
      SourceFileInfo info;
      for (const auto& f : source->files())
        if (f.id == packet.file_id) info = f;
      current = info.path.empty() ? request.interface : info.path;
      predictor.set_file(current);
      labeling = std::make_unique<ShardedLabeling>(
          *labeler_plugin, [&] { return registry.create<Labeler>(*labeler_plugin, labeler_params, log, labeler_name); }, 1,
          info, std::vector<PacketHook*>{&predictor});
    }
    labeling->process(packet);
    ++packets_read;
    if (log.stop_requested()) break;
  }
  end_file();
  if (json) std::cout << json_rows.dump(2) << '\n';
  log.info(fmt::format("{} packets read; {} {} classified by {}{} ({}, flows decided by {})", packets_read,
                       per_packet ? sample_rows : flows_out, per_packet ? "samples" : "flows", model_name,
                       model.folds() > 1 ? fmt::format(" (the mean of its {} fold models)", model.folds()) : "", dir.string(),
                       model.flow_decision()));
  return 0;
}

}  // namespace trafficid::host
