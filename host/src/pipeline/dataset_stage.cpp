#include "pipeline/dataset_stage.hpp"
#include "pipeline/pipeline.hpp"

#include <fmt/format.h>
#include <ranges>
#include <thread>

#include "pipeline/capture_stage.hpp"
#include "store/file_lock.hpp"
#include "pipeline/label_stage.hpp"
#include "trafficid/files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

// Only one process builds a given dataset at a time (two runs of one experiment, tuning workers):
// one that finds it being built waits, then reuses it.
FileLock lock_dataset(const fs::path& folder, HostLog& log) {
  fs::create_directories(folder.parent_path());
  fs::path path = folder;
  path += ".lock";
  FileLock lock = FileLock::try_take(path);
  if (lock.held()) return lock;
  log.info(fmt::format("stage dataset: waiting for the trafficid process that is building {} (it holds {})",
                       folder.string(), path.string()));
  return FileLock::wait(path);
}

// The run folder's link to a dataset it used (datasets live outside run folders so that runs
// share them).
void link_dataset(const fs::path& run_dir, const std::string& name, const fs::path& dataset) {
  std::error_code ec;
  fs::remove(run_dir / name, ec);
  fs::create_directory_symlink(fs::absolute(dataset), run_dir / name, ec);
}

}  // namespace

unsigned feature_workers(const Experiment& experiment) {
  return experiment.features->threads ? experiment.features->threads
                                      : std::max(1u, std::thread::hardware_concurrency());
}

Json dataset_summary(const DatasetManifest& m) {
  Json totals = Json::object();
  for (const auto& [split, per_class] : m.counts) {
    std::uint64_t n = 0;
    for (auto c : per_class) n += c;
    totals[split] = n;
  }
  Json j = {{"classes", m.class_names.size()}, {"rows", totals},           {"excluded", m.excluded},
            {"split", m.split_method},         {"leaks", m.split_leaks()}, {"statistics", m.statistics}};
  if (m.folds) j["folds"] = m.folds;
  if (!m.evaluation.is_null()) j["evaluation"] = m.evaluation;
  return j;
}

std::string describe_dataset(const DatasetManifest& m) {
  std::uint64_t rows = 0;
  for (const auto& [split, per_class] : m.counts)
    for (auto n : per_class) rows += n;
  std::string split =
      m.evaluation.is_null() ? fmt::format("split by {}", m.split_method) : std::string("all for testing");
  if (m.folds) split += fmt::format(", {} folds (the counts of fold 0)", m.folds);
  std::string text = fmt::format(
      "{} samples in {} classes: {} of each {}, {} {} ({} storage), {}{}\n", rows, m.class_names.size(), m.extractor,
      m.spec.granularity == Granularity::packet ? "packet" : "flow", fmt::join(m.spec.shape, "x"),
      to_string(m.spec.dtype), m.storage, split, m.split_leaks() ? " (LEAKS: packets of one flow on both sides)" : "");
  for (std::size_t c = 0; c < m.class_names.size(); ++c)
    text += fmt::format("  {:<24} train {:>9}  validation {:>8}  test {:>8}\n", m.class_names[c],
                        m.counts.at("train")[c], m.counts.at("validation")[c], m.counts.at("test")[c]);
  auto excluded = [&](const char* why) { return m.excluded.count(why) ? m.excluded.at(why) : 0; };
  text += fmt::format("  excluded: {} without class, {} duplicates across splits, {} by balancing",
                      excluded("no_class"), excluded("duplicate"), excluded("balancing"));
  if (!m.evaluation.is_null())
    text += fmt::format(", {} of training data ({} training captures, {} training flows); {} flows of no class tested",
                        excluded("training_data"), m.evaluation.value("inputs_left_out", Json::array()).size(),
                        m.evaluation.value("training_flows_left_out", 0), m.evaluation.value("unknown_flows", 0));
  return text;
}

namespace {

// The dataset of the job as an earlier run built it, when its config and inputs are unchanged.
std::optional<DatasetOutcome> reuse(const DatasetJob& job, const PluginRegistry& registry, HostLog& log,
                                    const fs::path& run_dir, std::string& why) {
  const auto& plan = job.plan;
  auto manifest = reusable_dataset(plan, *job.sources, registry, log, why);
  if (!manifest) return std::nullopt;
  log.info(fmt::format("stage {}: reusing {} (same config, inputs unchanged; --rebuild builds it again)", job.name,
                       plan.folder.string()));
  log.event("stage", {{"name", job.name},
                      {"state", "reused"},
                      {"folder", plan.folder.string()},
                      {"summary", dataset_summary(*manifest)}});
  link_dataset(run_dir, job.name, plan.folder);
  DatasetOutcome outcome;
  outcome.stages.push_back({{"name", job.name}, {"output", fs::absolute(plan.folder).string()}, {"reused", true}});
  outcome.manifest = std::move(manifest);
  outcome.reused = true;
  return outcome;
}

// FOLDER.part, empty: what an interrupted run left there is started again.
fs::path fresh_part_folder(const fs::path& folder, HostLog& log) {
  fs::path part = folder;
  part += ".part";
  std::error_code ec;
  if (fs::exists(part, ec)) {
    log.warn(fmt::format("{} is what an interrupted run left: starting that dataset again", part.string()));
    fs::remove_all(part);
  }
  fs::create_directories(part);
  return part;
}

// The capture and label stages' records and events, once the pipeline has read every source.
void record_front_stages(const DatasetJob& job, const PipelineResult& result, const fs::path& run_dir, HostLog& log,
                         DatasetOutcome& outcome) {
  const CaptureSummary& summary = result.capture;
  write_file_atomically(job.stage_dir / "capture" / "summary.json", to_json(summary).dump(2));
  log.event("stage", {{"name", "capture"},
                      {"state", "done"},
                      {"dataset", job.name},
                      {"packets", summary.packets},
                      {"bytes", summary.bytes},
                      {"flows", summary.flows},
                      {"files", summary.files.size()}});
  log.info("stage capture done: " + format_summary(summary));
  std::error_code ec;
  const std::string prefix = fs::relative(job.stage_dir, run_dir, ec).string();
  auto relative = [&](const std::string& file) { return prefix == "." || prefix.empty() ? file : prefix + "/" + file; };
  outcome.stages.push_back(
      {{"name", job.target ? "capture (evaluation)" : "capture"}, {"output", relative("capture/summary.json")}});
  log.info(describe_labels(result.labels));
  log.event("stage", {{"name", "label"}, {"state", "done"}, {"dataset", job.name}, {"summary", result.labels}});
  outcome.stages.push_back(
      {{"name", job.target ? "label (evaluation)" : "label"}, {"output", relative("label/classes.json")}});
}

// FOLDER.part, complete, becomes FOLDER (replacing an earlier dataset of this config whose
// inputs changed), linked from the run folder.
void publish(const DatasetJob& job, const DatasetManifest& manifest, const fs::path& part, bool sync,
             const fs::path& run_dir, HostLog& log, DatasetOutcome& outcome) {
  const auto& folder = job.plan.folder;
  write_file_atomically(part / "manifest.json", to_json(manifest).dump(2));
  if (sync) sync_directory(part);
  std::error_code ec;
  fs::remove_all(folder, ec);
  fs::rename(part, folder);
  if (sync) sync_directory(folder.parent_path());
  link_dataset(run_dir, job.name, folder);
  outcome.stages.push_back({{"name", job.name}, {"output", fs::absolute(folder).string()}, {"reused", false}});
  log.event(
      "stage",
      {{"name", job.name}, {"state", "done"}, {"folder", folder.string()}, {"summary", dataset_summary(manifest)}});
}

}  // namespace

DatasetOutcome obtain_dataset(const DatasetJob& job, const Experiment& experiment, const PluginRegistry& registry,
                              HostLog& log, const fs::path& run_dir, bool rebuild) {
  const auto started = std::chrono::steady_clock::now();
  const auto& plan = job.plan;
  FileLock lock = lock_dataset(plan.folder, log);  // waits while another process builds it
  if (experiment.dataset.reuse && !rebuild) {
    std::string why;
    if (auto reused = reuse(job, registry, log, run_dir, why)) return std::move(*reused);  // only read: no lock needed
    log.info(fmt::format("stage {}: building {} ({})", job.name, plan.folder.string(), why));
  }
  fs::create_directories(job.stage_dir / "capture");
  log.event("stage", {{"name", job.name}, {"state", "started"}, {"folder", plan.folder.string()}});
  log.event("stage", {{"name", "capture"}, {"state", "started"}, {"dataset", job.name}});
  log.info(fmt::format(
      "stage capture{}: {}", job.target ? " (evaluation)" : "",
      fmt::join(*job.sources | std::views::transform([](const SourceSpec& s) { return s.instance; }), ", ")));
  const fs::path part = fresh_part_folder(plan.folder, log);
  const unsigned workers = feature_workers(experiment);
  auto builder = std::make_unique<DatasetBuilder>(experiment, registry, log, part, workers, job.target);
  Pipeline pipeline({*job.sources, job.max_packets, job.label, job.stage_dir / "label", workers}, registry, log,
                    builder.get());
  const PipelineResult result = pipeline.run();
  DatasetOutcome outcome;
  record_front_stages(job, result, run_dir, log, outcome);
  if (result.capture.stopped_early) {
    log.warn(fmt::format("interrupted: the {} was not finished; {} stays incomplete and the next run starts it again",
                         job.name, part.string()));
    return outcome;
  }
  auto manifest = builder->finish(plan.config_hash, plan.config);
  builder.reset();
  manifest.statistics["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  publish(job, manifest, part, experiment.dataset.sync, run_dir, log, outcome);
  outcome.manifest = std::move(manifest);
  return outcome;
}

}  // namespace trafficid::host
