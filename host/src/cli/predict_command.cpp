// `trafficid predict MODEL_DIR PATHS...`: a trained model on new captures (or a live interface),
// through the same labeler (for flows) and extractor (for samples) its dataset was made with:
// per packet (or per flow-level sample) the class and confidence, and per flow the majority vote.
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <map>
#include <unordered_map>

#include "pipeline/capture_stage.hpp"
#include "cli/commands.hpp"
#include "runtime/host_log.hpp"
#include "runtime/plugin_registry.hpp"
#include "config/schema_check.hpp"
#include "pipeline/label_stage.hpp"
#include "pipeline/pipeline.hpp"
#include "trafficid/dataset.hpp"
#include "trafficid/model.hpp"
#include "train/scoring.hpp"
#include "train/trained_model.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

struct Vote {
  std::size_t predicted = 0;
  double confidence = 0;  // the mean probability the flow's samples gave its class
  std::uint64_t samples = 0;
  bool abstains = false;  // below the model's abstention threshold
};

struct Prediction {
  std::string file;
  std::uint64_t packet = 0;  // packet samples: index in its capture
  std::uint64_t flow = 0;
  std::size_t predicted = 0;
  float confidence = 0;
};

// Output of the predictions: CSV rows as they come, or one JSON array at the end.
class PredictionWriter {
 public:
  PredictionWriter(const PredictRequest& request, std::vector<std::string> names)
      : json_(request.format == "json"), per_packet_(request.level == "packet"), names_(std::move(names)) {
    if (!json_)
      std::cout << (per_packet_
                        ? "file,packet,flow,class,confidence\n"
                        : "file,protocol,src_ip,src_port,dst_ip,dst_port,packets,bytes,ndpi_label,samples,class,"
                          "confidence,abstains\n");
  }
  bool per_packet() const { return per_packet_; }
  std::uint64_t rows() const { return rows_; }
  void sample(const Prediction& p) {
    ++rows_;
    if (json_)
      rows_json_.push_back({{"file", p.file},
                            {"packet", p.packet},
                            {"flow", p.flow},
                            {"class", names_[p.predicted]},
                            {"confidence", p.confidence}});
    else
      std::cout << fmt::format("\"{}\",{},{},{},{:.4f}\n", p.file, p.packet, p.flow, names_[p.predicted], p.confidence);
  }
  void flow(const std::string& file, const FlowRecord& f, const Vote& vote) {
    ++rows_;
    const std::uint64_t packets = f.packets_c2s + f.packets_s2c, bytes = f.bytes_c2s + f.bytes_s2c;
    if (json_)
      rows_json_.push_back({{"file", file},
                            {"protocol", f.tuple.protocol},
                            {"src_ip", to_string(f.tuple.src)},
                            {"src_port", f.tuple.src_port},
                            {"dst_ip", to_string(f.tuple.dst)},
                            {"dst_port", f.tuple.dst_port},
                            {"packets", packets},
                            {"bytes", bytes},
                            {"ndpi_label", f.label},
                            {"samples", vote.samples},
                            {"class", names_[vote.predicted]},
                            {"confidence", vote.confidence},
                            {"abstains", vote.abstains}});
    else
      std::cout << fmt::format("\"{}\",{},{},{},{},{},{},{},{},{},{},{:.4f},{}\n", file, f.tuple.protocol,
                               to_string(f.tuple.src), f.tuple.src_port, to_string(f.tuple.dst), f.tuple.dst_port,
                               packets, bytes, f.label, vote.samples, names_[vote.predicted], vote.confidence,
                               vote.abstains ? 1 : 0);
  }
  void close() {
    if (json_) std::cout << rows_json_.dump(2) << '\n';
  }

 private:
  bool json_, per_packet_;
  std::vector<std::string> names_;
  std::uint64_t rows_ = 0;
  Json rows_json_ = Json::array();
};

// The stage after labelling for `predict`: the extractor's samples, predicted in batches; at the
// end of each input, each labelled flow decided by its samples' votes.
class Predictor final : public StageHook, public PacketHook, public SampleSink {
 public:
  Predictor(TrainedModel& model, PluginHandle<FeatureExtractor> extractor, PredictionWriter& out, std::string interface)
      : model_(model),
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
  void labelled(const FlowRecord& flow, const std::optional<std::string>&) override {
    if (!decided_) predict();  // every sample of the input has its probabilities before flows are decided
    decided_ = true;
    if (out_.per_packet()) return;
    if (auto v = vote(flow.flow_id)) out_.flow(file_, flow, *v);
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
      Prediction out{file_, packets_[r], batch_.flow_ids[r], static_cast<std::size_t>(best - first), *best};
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
  std::optional<Vote> vote(std::uint64_t flow) const {
    auto it = votes_.find(flow);
    if (it == votes_.end()) return std::nullopt;
    auto [cls, confidence] = it->second.decide(model_.flow_decision());
    const auto threshold = model_.abstain_threshold();
    return Vote{static_cast<std::size_t>(cls), confidence, it->second.samples(), threshold && confidence < *threshold};
  }

  TrainedModel& model_;
  PluginHandle<FeatureExtractor> extractor_;
  FeatureSpec spec_;
  std::size_t classes_;
  PredictionWriter& out_;
  std::string interface_;
  FeatureBatch batch_;
  std::vector<std::uint64_t> packets_;
  std::uint64_t packet_ = 0;
  std::string file_;
  bool decided_ = false;
  std::unordered_map<std::uint64_t, FlowVotes> votes_;
};

// The labeler the model's dataset was labelled with, from its manifest: one worker per input.
LabelSpec model_labeler(const PluginRegistry& registry, const Json& config) {
  const std::string name = config.at("label").value("labeler", "ndpi");
  const PluginInfo* labeler = registry.find(PluginKind::labeler, name);
  if (!labeler) throw Error(fmt::format("labeler plugin '{}' is not installed", name));
  return labels_only(*labeler, config.at("label").at(name), 1);
}

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
  const PluginInfo* extractor_plugin = registry.find(PluginKind::features, manifest.extractor);
  if (!extractor_plugin) throw Error(fmt::format("features plugin '{}' is not installed", manifest.extractor));
  auto extractor = registry.make<FeatureExtractor>(
      *extractor_plugin, manifest.config.at("features").at(manifest.extractor), log, manifest.extractor);
  PipelineSpec spec;
  spec.sources = {request.interface.empty()
                      ? pcap_source(registry, request.paths)
                      : live_source(registry, request.interface, request.count, request.duration)};
  spec.label = model_labeler(registry, manifest.config);
  spec.threads = 1;
  PredictionWriter out(request, manifest.class_names);
  Predictor predictor(model, extractor, out, request.interface);
  auto result = Pipeline(std::move(spec), registry, log, &predictor).run();
  out.close();
  log.info(fmt::format("{} packets read; {} {} classified by {}{} ({}, flows decided by {})", result.capture.packets,
                       out.rows(), out.per_packet() ? "samples" : "flows", model.name(),
                       model.folds() > 1 ? fmt::format(" (the mean of its {} fold models)", model.folds()) : "",
                       dir.string(), model.flow_decision()));
  return 0;
}

}  // namespace trafficid::host
