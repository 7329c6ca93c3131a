#include "serve/predict_api.hpp"

#include <chrono>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fstream>
#include <httplib.h>

#include "pipeline/predictor.hpp"
#include "runtime/host_log.hpp"
#include "train/trained_model.hpp"
#include "trafficid/error.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

// Every decided flow as a row, and the count per class.
class FlowRows final : public PredictionSink {
 public:
  explicit FlowRows(const std::vector<std::string>& names) : names_(names) {}
  void flow(const FlowPrediction& p) override {
    Json row = to_json(p, names_);
    row["file"] = fs::path(p.file).filename().string();  // the upload's name, not its place in the workspace
    rows_.push_back(std::move(row));
    const std::string& name = names_[p.predicted];
    counts_[name] = counts_.value(name, 0) + 1;
  }
  Json rows() const { return rows_; }
  Json counts() const { return counts_; }

 private:
  const std::vector<std::string>& names_;
  Json rows_ = Json::array();
  Json counts_ = Json::object();
};

std::string safe_name(const std::string& name) {
  std::string out;
  for (char c : fs::path(name).filename().string())
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') out += c;
  return out.empty() || out[0] == '.' ? "capture.pcap" : out;
}

}  // namespace

fs::path receive_upload(const fs::path& folder, const std::string& name, const httplib::ContentReader& content) {
  fs::create_directories(folder);
  const auto now = std::chrono::system_clock::now();
  const fs::path file = folder / fmt::format("{:%Y%m%d-%H%M%S}-{}",
                                             fmt::gmtime(std::chrono::system_clock::to_time_t(now)), safe_name(name));
  std::ofstream out(file, std::ios::binary);
  if (!out) throw Error(fmt::format("cannot write {}", file.string()));
  content([&](const char* data, std::size_t size) { return static_cast<bool>(out.write(data, size)); });
  out.close();
  if (!out) throw Error(fmt::format("cannot write {} (is the disk full?)", file.string()));
  if (fs::file_size(file) == 0) throw Error("the upload is empty: send the capture file as the request body");
  return file;
}

Json predict_upload(const fs::path& run_dir, const std::string& model_name, const fs::path& capture,
                    const PluginRegistry& registry) {
  if (model_name.find('/') != std::string::npos || model_name == "..") throw Error("model: a model's name");
  std::string why = "named";
  const fs::path dir = model_name.empty() ? resolve_model_dir(run_dir, why) : run_dir / "models" / model_name;
  HostLog log(LogLevel::warning);
  TrainedModel model(dir, registry, log);
  FlowRows rows(model.manifest().class_names);
  const auto result = predict_captures(model, pcap_source(registry, {capture.string()}), registry, log, rows);
  Json warnings = Json::array();
  for (const auto& f : result.capture.files)
    if (!f.warning.empty()) warnings.push_back(f.warning);
  if (result.capture.packets == 0)
    throw Error(fmt::format("{}: no packets read{}; send a pcap or pcapng capture", capture.filename().string(),
                            warnings.empty() ? "" : " (" + warnings[0].get<std::string>() + ")"));
  return {{"warnings", warnings},
          {"model", dir.filename().string()},
          {"plugin", model.name()},
          {"why", why},
          {"capture", capture.filename().string()},
          {"packets", result.capture.packets},
          {"classes", model.manifest().class_names},
          {"flows", rows.rows()},
          {"counts", rows.counts()}};
}

}  // namespace trafficid::host
