#include "train/epoch_log.hpp"

#include <fmt/format.h>
#include <fstream>

#include "train/train_stage.hpp"
#include "trafficid/files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

std::vector<Json> read_epoch_lines(const fs::path& file) {
  std::vector<Json> lines;
  if (std::ifstream in(file); in)
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) lines.push_back(Json::parse(line));
  return lines;
}

std::int64_t best_epoch_of(const Json& epochs) {
  std::int64_t best = 0;
  double best_f1 = -1;
  for (const auto& e : epochs)
    if (e.value("val_macro_f1", 0.0) > best_f1) {
      best_f1 = e.value("val_macro_f1", 0.0);
      best = e.value("epoch", std::int64_t{0});
    }
  return best;
}

bool EpochLog::on_epoch(const EpochMetrics& m) {
  // A diverged epoch stops training and is kept out of every file (JSON has no NaN: it would be
  // written as null, which no reader of metrics.jsonl, the study journal or the report expects).
  if (auto why = divergence(m); !why.empty()) {
    diverged_ = fmt::format("diverged at epoch {} ({})", m.epoch, why);
    log_.warn(fmt::format("model {}: {}", name_, diverged_));
    return false;
  }
  std::string text;
  const Json line = to_json(m);
  bool known = false;
  for (const auto& kept : read_epoch_lines(file_)) {
    if (kept.value("epoch", 0) < m.epoch) text += kept.dump() + "\n";
    if (kept == line) known = true;
  }
  // A resumed trainer tells of its checkpoint's epoch again, the very numbers (the kill may have
  // come before this observer heard of it). When the file has them, they were logged and
  // published then: only the judge hears of them again. (An epoch trained anew differs at least
  // in its seconds.)
  if (known) {
    if (judge_ && !judge_->go_on(m, file_)) return false;
    return !log_.stop_requested();
  }
  text += line.dump() + "\n";
  write_file_atomically(file_, text);
  log_.info(
      fmt::format("model {} epoch {}/{}: train loss {:.4f}, validation loss {:.4f}, accuracy {:.4f}, macro F1 "
                  "{:.4f}; {:.0f} samples/s, {:.1f} s",
                  name_, m.epoch, epochs_, m.train_loss, m.val_loss, m.val_accuracy, m.val_macro_f1,
                  m.samples_per_second, m.seconds));
  Json payload = line;
  payload["model"] = name_;
  payload["epochs"] = epochs_;
  log_.event("epoch", payload);
  if (judge_ && !judge_->go_on(m, file_)) return false;
  return !log_.stop_requested();
}

}  // namespace trafficid::host
