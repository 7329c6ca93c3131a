// `trafficid predict MODEL_DIR PATHS...`: a trained model on new captures (or a live interface),
// through the same labeler (for flows) and extractor (for samples) its dataset was made with:
// per packet (or per flow-level sample) the class and confidence, and per flow the model's decision:
// a file's flows when the file ends, a live interface's flows as each ends (rows stream).
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
#include "pipeline/predictor.hpp"
#include "trafficid/dataset.hpp"
#include "trafficid/model.hpp"
#include "train/scoring.hpp"
#include "train/trained_model.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

// Output of the predictions: CSV or JSON-lines rows as they come, or one JSON array at the end.
class PredictionWriter final : public PredictionSink {
 public:
  PredictionWriter(const PredictRequest& request, std::vector<std::string> names)
      : json_(request.format == "json"),
        lines_(request.format == "jsonl"),
        flush_(request.flush),
        per_packet_(request.level == "packet"),
        names_(std::move(names)) {
    if (!json_ && !lines_)
      std::cout << (per_packet_
                        ? "file,packet,flow,class,confidence\n"
                        : "file,protocol,src_ip,src_port,dst_ip,dst_port,packets,bytes,ndpi_label,samples,class,"
                          "confidence,abstains\n");
  }
  bool per_packet() const override { return per_packet_; }
  std::uint64_t rows() const { return rows_; }
  void sample(const SamplePrediction& p) override {
    ++rows_;
    if (json_ || lines_)
      write({{"file", p.file},
             {"packet", p.packet},
             {"flow", p.flow},
             {"class", names_[p.predicted]},
             {"confidence", p.confidence}});
    else
      std::cout << fmt::format("\"{}\",{},{},{},{:.4f}\n", p.file, p.packet, p.flow, names_[p.predicted], p.confidence);
    if (flush_) std::cout.flush();
  }
  void flow(const FlowPrediction& vote) override {
    ++rows_;
    const FlowRecord& f = *vote.flow;
    const std::string& file = vote.file;
    const std::uint64_t packets = f.packets_c2s + f.packets_s2c, bytes = f.bytes_c2s + f.bytes_s2c;
    if (json_ || lines_) write(to_json(vote, names_));
    else
      std::cout << fmt::format("\"{}\",{},{},{},{},{},{},{},{},{},{},{:.4f},{}\n", file, f.tuple.protocol,
                               to_string(f.tuple.src), f.tuple.src_port, to_string(f.tuple.dst), f.tuple.dst_port,
                               packets, bytes, f.label, vote.samples, names_[vote.predicted], vote.confidence,
                               vote.abstains ? 1 : 0);
    if (flush_) std::cout.flush();
  }
  void close() {
    if (json_) std::cout << rows_json_.dump(2) << '\n';
  }

 private:
  void write(Json row) {
    if (lines_) std::cout << row.dump() << '\n';
    else rows_json_.push_back(std::move(row));
  }
  bool json_, lines_, flush_, per_packet_;
  std::vector<std::string> names_;
  std::uint64_t rows_ = 0;
  Json rows_json_ = Json::array();
};

}  // namespace

int cmd_predict(const GlobalOptions& global, const PredictRequest& request) {
  auto registry = load_plugins(global);
  HostLog log(log_threshold(global));
  install_stop_handlers();
  std::string why;
  const fs::path dir = resolve_model_dir(request.model_dir, why);
  if (dir != fs::path(request.model_dir)) log.info("model " + why);
  TrainedModel model(dir, registry, log, request.int8);
  PredictionWriter out(request, model.manifest().class_names);
  auto result = predict_captures(model,
                                 request.interface.empty()
                                     ? pcap_source(registry, request.paths)
                                     : live_source(registry, request.interface, request.count, request.duration),
                                 registry, log, out, PredictOptions{request.interface, request.idle_timeout});
  out.close();
  log.info(fmt::format("{} packets read; {} {} classified by {}{} ({}, flows decided by {}, {})",
                       result.capture.packets, out.rows(), out.per_packet() ? "samples" : "flows", model.name(),
                       !model.blended().empty() ? std::string(" (the mean of their probabilities)")
                       : model.folds() > 1      ? fmt::format(" (the mean of its {} fold models)", model.folds())
                       : model.members() > 1    ? fmt::format(" (the mean of its {} ensemble members)", model.members())
                                                : "",
                       dir.string(), model.flow_decision(), model.precision()));
  return 0;
}

}  // namespace trafficid::host
