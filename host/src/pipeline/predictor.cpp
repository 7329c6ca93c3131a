#include "pipeline/predictor.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <unordered_map>

#include "pipeline/label_stage.hpp"
#include "train/scoring.hpp"

namespace trafficid::host {

namespace {

// The stage after labelling for `predict`: the extractor's samples, predicted in batches; each
// labelled flow decided by its samples' votes at the end of its input (a file), or when the
// labeler ends it (`live`).
class Predictor final : public StageHook, public PacketHook, public SampleSink {
 public:
  Predictor(TrainedModel& model, PluginHandle<FeatureExtractor> extractor, PredictionSink& out, std::string interface)
      : live_(!interface.empty()),
        model_(model),
        extractor_(std::move(extractor)),
        spec_(model.manifest().spec),
        classes_(model.manifest().class_names.size()),
        out_(out),
        interface_(std::move(interface)) {
    batch_.dtype = spec_.dtype;
    batch_.shape = spec_.shape;
  }

  // StageHook: one labelling worker per input, this object its packet hook.
  std::vector<PacketHook*> begin_input(const SourceFileInfo& file, unsigned workers) override {
    if (workers != 1) throw Error("predict labels with one worker per input");
    file_ = file.path.empty() ? interface_ : file.path;
    decided_ = false;
    return {this};
  }
  // Live: each flow is decided as it ends, and only the open ones are held.
  bool streams_flows() const override { return live_; }
  void labelled(const FlowRecord& flow, const std::optional<std::string>&) override {
    if (live_) return;         // decided as it ended (on_flow)
    if (!decided_) predict();  // every sample of the input has its probabilities before flows are decided
    decided_ = true;
    if (out_.per_packet()) return;
    if (auto v = vote(flow)) out_.flow(*v);
  }
  void end_input(std::uint64_t) override {
    predict();
    votes_.clear();
  }

  // PacketHook: the extractor, in the labelling worker's thread (one worker: no lock).
  void on_packet(const PacketView& p, const PacketFlow& f) override {
    packet_ = p.index;
    extractor_([&](FeatureExtractor& e) { e.process(p, f, *this); });
  }
  void on_flow(const FlowRecord& f) override {
    packet_ = 0;
    extractor_([&](FeatureExtractor& e) { e.end_flow(f, *this); });
    if (!live_) return;
    // Its last samples may wait in the batch: only then is the batch predicted now (a busy
    // interface ends many flows whose samples were predicted already).
    if (std::find(batch_.flow_ids.begin(), batch_.flow_ids.end(), f.flow_id) != batch_.flow_ids.end()) predict();
    if (!out_.per_packet())
      if (auto v = vote(f)) out_.flow(*v);
    votes_.erase(f.flow_id);  // a live capture holds only the votes of open flows
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

 private:
  void predict() {
    if (batch_.rows == 0) return;
    auto p = model_.predict_proba(batch_);
    for (std::size_t r = 0; r < batch_.rows; ++r) {
      const float* first = p.data() + r * classes_;
      auto best = std::max_element(first, first + classes_);
      SamplePrediction out{file_, packets_[r], batch_.flow_ids[r], static_cast<std::size_t>(best - first), *best};
      votes_[out.flow].add(first, classes_);
      if (out_.per_packet()) out_.sample(out);
    }
    batch_.rows = 0;
    batch_.data.clear();
    batch_.labels.clear();
    batch_.flow_ids.clear();
    batch_.file_ids.clear();
    packets_.clear();
  }
  // The flow's class by the model's decision rule (summed log-probabilities, or majority vote).
  std::optional<FlowPrediction> vote(const FlowRecord& flow) const {
    auto it = votes_.find(flow.flow_id);
    if (it == votes_.end()) return std::nullopt;
    auto [cls, confidence] = it->second.decide(model_.flow_decision());
    const auto threshold = model_.abstain_threshold();
    return FlowPrediction{file_,
                          &flow,
                          static_cast<std::size_t>(cls),
                          confidence,
                          it->second.samples(),
                          threshold && confidence < *threshold};
  }

  bool live_;
  TrainedModel& model_;
  PluginHandle<FeatureExtractor> extractor_;
  FeatureSpec spec_;
  std::size_t classes_;
  PredictionSink& out_;
  std::string interface_;
  FeatureBatch batch_;
  std::vector<std::uint64_t> packets_;
  std::uint64_t packet_ = 0;
  std::string file_;
  bool decided_ = false;
  std::unordered_map<std::uint64_t, FlowVotes> votes_;
};

bool declares(const PluginInfo& plugin, const std::string& param) {
  return std::any_of(plugin.schema.begin(), plugin.schema.end(), [&](const ParamSpec& p) { return p.name == param; });
}

// The labeler the model's dataset was labelled with, from its manifest: one worker per input. On
// a live interface, TCP flows also end at their teardown (FIN both ways or RST) where the labeler
// can tell, so their rows need not wait for the idle timeout.
LabelSpec model_labeler(const PluginRegistry& registry, const Json& config, const PredictOptions& options) {
  const std::string name = config.at("label").value("labeler", "ndpi");
  const PluginInfo* labeler = registry.find(PluginKind::labeler, name);
  if (!labeler) throw Error(fmt::format("labeler plugin '{}' is not installed", name));
  Json params = config.at("label").at(name);
  if (!options.interface.empty() && declares(*labeler, "tcp_teardown")) params["tcp_teardown"] = true;
  if (options.idle_timeout) {
    if (!declares(*labeler, "idle_timeout"))
      throw Error(fmt::format("--idle-timeout: the model's labeler '{}' has no idle timeout", name));
    params["idle_timeout"] = *options.idle_timeout;
  }
  return labels_only(*labeler, std::move(params), 1);
}

}  // namespace

Json to_json(const FlowPrediction& p, const std::vector<std::string>& class_names) {
  const FlowRecord& f = *p.flow;
  return {{"file", p.file},
          {"protocol", f.tuple.protocol},
          {"src_ip", to_string(f.tuple.src)},
          {"src_port", f.tuple.src_port},
          {"dst_ip", to_string(f.tuple.dst)},
          {"dst_port", f.tuple.dst_port},
          {"packets", f.packets_c2s + f.packets_s2c},
          {"bytes", f.bytes_c2s + f.bytes_s2c},
          {"ndpi_label", f.label},
          {"samples", p.samples},
          {"class", class_names[p.predicted]},
          {"confidence", p.confidence},
          {"abstains", p.abstains}};
}

PipelineResult predict_captures(TrainedModel& model, SourceSpec source, const PluginRegistry& registry, HostLog& log,
                                PredictionSink& sink, const PredictOptions& options) {
  const DatasetManifest& manifest = model.manifest();
  const PluginInfo* extractor_plugin = registry.find(PluginKind::features, manifest.extractor);
  if (!extractor_plugin) throw Error(fmt::format("features plugin '{}' is not installed", manifest.extractor));
  auto extractor = registry.make<FeatureExtractor>(
      *extractor_plugin, manifest.config.at("features").at(manifest.extractor), log, manifest.extractor);
  PipelineSpec spec;
  spec.sources = {std::move(source)};
  spec.label = model_labeler(registry, manifest.config, options);
  spec.threads = 1;
  Predictor predictor(model, extractor, sink, options.interface);
  return Pipeline(std::move(spec), registry, log, &predictor).run();
}

}  // namespace trafficid::host
