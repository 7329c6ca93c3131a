#include "store/run_folder.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <sstream>

#include "trafficid/files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

std::string timestamp_now() {
  return fmt::format("{:%Y%m%d-%H%M%S}",
                     fmt::localtime(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now())));
}

RunFolder make_run_dir(const Experiment& experiment, const std::string& requested) {
  fs::path dir = requested;
  std::error_code ec;
  auto cannot = [&](const fs::path& d) {
    return Error(fmt::format("cannot create run folder {}: {} (choose another with --run-dir or experiment.output_dir)",
                             d.string(), ec.message()));
  };
  if (dir.empty()) {
    // A new folder of its own: created atomically (mkdir fails on one that exists), so two runs
    // started in the same second take -2, -3, ... and never share one.
    const fs::path base = experiment.output_dir / fmt::format("{}-{}", experiment.name, timestamp_now());
    fs::create_directories(experiment.output_dir, ec);
    if (ec) throw cannot(experiment.output_dir);
    dir = base;
    for (int n = 2; !fs::create_directory(dir, ec); ++n) {
      if (ec) throw cannot(dir);
      dir = base.string() + "-" + std::to_string(n);
    }
  } else {
    fs::create_directories(dir, ec);
    if (ec) throw cannot(dir);
  }
  // One writer per run folder: a second `run --run-dir` or `run --resume` of a folder that a live
  // process is writing stops here (the lock goes with the process, also on kill -9).
  FileLock lock = FileLock::try_take(dir / "run.lock");
  if (!lock.held())
    throw Error(
        fmt::format("{}: another trafficid process is running in this folder (it holds {}); wait for it to end, "
                    "or stop it, then `trafficid run --resume {}`",
                    dir.string(), (dir / "run.lock").string(), dir.string()));
  return {dir, std::move(lock)};
}

// What a run's models were trained on: each dataset's config hash and the content of each input.
Json dataset_identity(const DatasetManifest& m) {
  Json inputs = Json::array();
  for (const auto& i : m.inputs)
    inputs.push_back({{"path", i.path}, {"content_hash", i.content_hash}, {"size", i.size}});
  return {{"config_hash", m.config_hash}, {"inputs", inputs}};
}

// A dataset models can learn from: two classes with training samples at least, and a validation
// split (early stopping, the best epoch, the abstention threshold and the best model are chosen
// on it). Otherwise an Error that says what the dataset holds and what to change.
void check_trainable(const DatasetManifest& m, const fs::path& folder, const fs::path& experiment) {
  std::vector<std::string> trained;
  std::uint64_t train_rows = 0, validation_rows = 0;
  for (std::size_t c = 0; c < m.class_names.size(); ++c) {
    const auto n = m.counts.count("train") ? m.counts.at("train")[c] : 0;
    train_rows += n;
    if (n > 0) trained.push_back(fmt::format("{} ({})", m.class_names[c], n));
    if (m.counts.count("validation")) validation_rows += m.counts.at("validation")[c];
  }
  auto excluded = [&](const char* why) { return m.excluded.count(why) ? m.excluded.at(why) : std::uint64_t{0}; };
  if (trained.size() < 2)
    throw Error(
        fmt::format("{}: the training split holds {} sample(s) in {} class(es){}{}: a classifier needs two classes "
                    "at least; {} samples had no class. Check capture.sources (do the captures hold IP traffic?), "
                    "label.classes and label.unmatched in {}",
                    folder.string(), train_rows, trained.size(), trained.empty() ? "" : ": ", fmt::join(trained, ", "),
                    excluded("no_class"), experiment.string()));
  if (validation_rows == 0)
    throw Error(
        fmt::format("{}: the validation split is empty ({} training samples): early stopping, the best epoch and "
                    "the best model are chosen on it. Give it a share in dataset.fractions, or more captures "
                    "(split = \"file\" puts whole captures in it) in {}",
                    folder.string(), train_rows, experiment.string()));
}

// The first time: RUN_DIR/inputs.json records the identity. On a resume: the datasets must be
// those the run began on, or checkpoints and finished models would be of another dataset than
// what is trained and tested now (one report, two datasets).
void check_run_inputs(const fs::path& dir, const Json& now) {
  const fs::path file = dir / "inputs.json";
  if (!fs::exists(file)) {
    write_file_atomically(file, now.dump(2));
    return;
  }
  const Json then = Json::parse(std::ifstream(file));
  if (then == now) return;
  // A run begun before inputs.json said "content_hash" said "sha256"; its dataset, reused, holds
  // the same digests.
  auto digest = [](const Json& input) { return input.value("content_hash", input.value("sha256", "")); };
  auto same = [&](const Json& a, const Json& b) {  // of the same path
    return a.value("size", Json()) == b.value("size", Json()) && digest(a) == digest(b);
  };
  std::string what;
  for (const auto& [name, identity] : now.items()) {
    if (!then.contains(name)) {
      what = fmt::format("the run had no {} dataset", name);
      break;
    }
    const Json& old = then[name];
    if (old.value("config_hash", "") != identity.value("config_hash", "")) {
      what = fmt::format("the {} dataset's config changed", name);
      break;
    }
    std::map<std::string, Json> before;
    for (const auto& i : old["inputs"]) before[i.value("path", "")] = i;
    for (const auto& i : identity["inputs"]) {
      auto it = before.find(i.value("path", ""));
      if (it == before.end()) what = fmt::format("{} is a new input of the {} dataset", i.value("path", ""), name);
      else if (!same(it->second, i))
        what = fmt::format("{} changed (content hash {} then, {} now)", it->first, digest(it->second), digest(i));
      if (it != before.end()) before.erase(it);
      if (!what.empty()) break;
    }
    if (what.empty() && !before.empty())
      what = fmt::format("{} is no longer an input of the {} dataset", before.begin()->first, name);
    if (!what.empty()) break;
  }
  if (what.empty() && then.size() == now.size()) return;  // the same inputs, named the older way
  if (what.empty()) what = "the datasets differ";
  throw Error(
      fmt::format("{}: not resumed: {} since this run began ({}), so its checkpoints and finished models belong to "
                  "another dataset; start a new run (`trafficid run EXPERIMENT`) or put the inputs back",
                  dir.string(), what, file.string()));
}

std::string write_resolved_config(const fs::path& dir, const std::string& file, const Experiment& experiment) {
  std::ostringstream text;
  text << "# Resolved configuration of " << fs::absolute(file).string() << "\n# every default filled in; "
       << "`trafficid run` on this file repeats the run"
       << (experiment.variant_names.empty() ? "" : ", each variant in a folder of its own") << ".\n\n"
       << experiment.resolved_toml() << '\n';
  write_file_atomically(dir / "config.resolved.toml", text.str());
  return text.str();
}

RunRecord::RunRecord(fs::path dir, const std::string& file, const Experiment& experiment, const char* parts, Json empty)
    : dir_(std::move(dir)), started_(std::chrono::steady_clock::now()) {
  record_ = {{"experiment", fs::absolute(file).string()},
             {"name", experiment.name},
             {"started", timestamp_now()},
             {"status", "running"},
             {parts, std::move(empty)},
             {"config", experiment.resolved}};
  save();
}

void RunRecord::save() const { write_file_atomically(dir_ / "run.json", record_.dump(2)); }

double RunRecord::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

}  // namespace trafficid::host
