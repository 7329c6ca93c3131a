#include "pipeline/dataset_parts.hpp"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <map>

#include "pipeline/dataset_builder.hpp"
#include "pipeline/dataset_detail.hpp"
#include "pipeline/dataset_stage.hpp"
#include "pipeline/pipeline.hpp"
#include "store/file_lock.hpp"
#include "trafficid/files.hpp"
#include "trafficid/npy.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

// ---- the builder's side: a part's state saved, parts adopted ----

void DatasetBuilder::number_inputs(std::vector<std::uint32_t> ids) { input_ids_ = std::move(ids); }

namespace {

// Strict where the manifest's reader is lenient (older manifests' "sha256", no "packets"): a
// part.json is this version's own, written by to_json(DatasetInput).
DatasetInput input_of_json(const Json& j) {
  return {j.at("id").get<std::uint32_t>(),         j.at("path").get<std::string>(),
          j.at("size").get<std::uint64_t>(),       j.at("mtime_ns").get<std::int64_t>(),
          j.at("content_hash").get<std::string>(), j.at("packets").get<std::uint64_t>()};
}

template <class T>
void write_column(const fs::path& file, const std::vector<T>& values) {
  NpyWriter out(file, npy_descr<T>(), sizeof(T));
  for (const T& v : values) out.append_value(v);
  out.close(false);
}

// A part's part.json; a damaged one (a disk that filled, an edit) is named with the way on.
Json read_part_header(const fs::path& folder) {
  const fs::path file = folder / "part.json";
  try {
    Json j = Json::parse(std::ifstream(file));
    for (const char* key : {"config_hash", "part", "parts", "inputs", "shards", "classes", "packets_in_flows"})
      if (!j.contains(key)) throw Error(fmt::format("no \"{}\"", key));
    return j;
  } catch (const std::exception& e) {
    throw Error(
        fmt::format("{}: not a part of a dataset ({}): build that part again (`trafficid prepro EXP --part "
                    "I/N`, I/N as the folder's name says), it replaces this folder",
                    file.string(), e.what()));
  }
}

}  // namespace

void DatasetBuilder::save_part(Json header) {
  std::uint64_t packets = 0;
  const std::vector<DatasetShard> shards = close_workers(packets);
  await_hashes();
  if (inputs_.size() != input_ids_.size())
    throw Error(
        fmt::format("{}: the part's {} files gave {} inputs (a file that is several captures cannot be split "
                    "into parts)",
                    folder_.string(), input_ids_.size(), inputs_.size()));
  // The flows, as columns: their dataset ids, keys, identities, classes (the part's class table),
  // inputs and whether they are unknown.
  std::vector<std::uint64_t> ids(flows_.size()), keys, identities;
  std::vector<std::int64_t> classes;
  std::vector<std::uint32_t> inputs;
  std::vector<std::uint8_t> unknown;
  flow_index_.for_each([&](std::uint64_t id, std::uint32_t index) { ids[index] = id; });
  for (const auto& f : flows_) {
    keys.push_back(f.key);
    identities.push_back(f.identity);
    classes.push_back(f.cls);
    inputs.push_back(f.input);
    unknown.push_back(f.unknown ? 1 : 0);
  }
  write_column(folder_ / "flows.id.npy", ids);
  write_column(folder_ / "flows.key.npy", keys);
  write_column(folder_ / "flows.identity.npy", identities);
  write_column(folder_ / "flows.class.npy", classes);
  write_column(folder_ / "flows.input.npy", inputs);
  write_column(folder_ / "flows.unknown.npy", unknown);
  Json shard_list = Json::array(), input_list = Json::array();
  for (const auto& s : shards) shard_list.push_back({{"name", s.name}, {"rows", s.rows}});
  for (const auto& i : inputs_) input_list.push_back(to_json(i));
  header["shards"] = shard_list;
  header["inputs"] = input_list;
  header["classes"] = class_seen_;
  header["packets_in_flows"] = packets;
  write_file_atomically(folder_ / "part.json", header.dump(2));
}

void DatasetBuilder::adopt_part(const fs::path& part_folder, const Json& j, unsigned part) {
  for (const auto& i : j.at("inputs")) inputs_.push_back(input_of_json(i));
  const auto names = j.at("classes").get<std::vector<std::string>>();
  const auto ids = read_npy<std::uint64_t>(part_folder / "flows.id.npy");
  const auto keys = read_npy<std::uint64_t>(part_folder / "flows.key.npy");
  const auto identities = read_npy<std::uint64_t>(part_folder / "flows.identity.npy");
  const auto classes = read_npy<std::int64_t>(part_folder / "flows.class.npy");
  const auto inputs = read_npy<std::uint32_t>(part_folder / "flows.input.npy");
  const auto unknown = read_npy<std::uint8_t>(part_folder / "flows.unknown.npy");
  for (std::size_t i = 0; i < ids.size(); ++i) {
    AdoptedFlow a;
    a.id = ids[i];
    a.entry.key = keys[i];
    a.entry.identity = identities[i];
    a.entry.input = inputs[i];
    a.entry.unknown = unknown[i] != 0;
    if (classes[i] >= 0) a.cls = names.at(static_cast<std::size_t>(classes[i]));
    adopted_flows_.push_back(std::move(a));
  }
  // The part's shards, linked into the dataset under names of their own (the part stays whole
  // until the dataset is published).
  for (const auto& s : j.at("shards")) {
    const std::string name = s.at("name").get<std::string>();
    const std::string renamed = fmt::format("shard-{:03}{}", part, name.substr(5));
    for (const auto& e : fs::directory_iterator(part_folder)) {
      const std::string file = e.path().filename().string();
      if (!file.starts_with(name + ".")) continue;
      const fs::path target = folder_ / (renamed + file.substr(name.size()));
      std::error_code ec;
      fs::create_hard_link(e.path(), target, ec);
      if (ec) fs::copy_file(e.path(), target, fs::copy_options::overwrite_existing);
    }
    adopted_shards_.push_back({renamed, s.at("rows").get<std::uint64_t>()});
  }
  adopted_packets_ += j.at("packets_in_flows").get<std::uint64_t>();
}

void DatasetBuilder::end_adoption() {
  // The inputs in the collection's order: each numbered by its place in it, none missing.
  std::sort(inputs_.begin(), inputs_.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (std::size_t i = 0; i < inputs_.size(); ++i)
    if (inputs_[i].id != i)
      throw Error(fmt::format("the parts hold inputs {} where input {} belongs: parts of different file lists",
                              inputs_[i].id, i));
  // The flows as one process labels them: input after input, each input's in its part's order,
  // the classes numbered as they are first seen.
  std::stable_sort(adopted_flows_.begin(), adopted_flows_.end(),
                   [](const auto& a, const auto& b) { return a.entry.input < b.entry.input; });
  for (auto& a : adopted_flows_) {
    if (!a.cls.empty()) {
      auto [it, fresh] = class_ids_.try_emplace(a.cls, static_cast<std::int32_t>(class_seen_.size()));
      if (fresh) class_seen_.push_back(a.cls);
      a.entry.cls = it->second;
    }
    flow_index_.insert(a.id, static_cast<std::uint32_t>(flows_.size()));
    flows_.push_back(a.entry);
  }
  adopted_flows_.clear();
  adopted_flows_.shrink_to_fit();
}

// ---- building and merging parts ----

PartRequest parse_part(const std::string& text) {
  PartRequest r;
  unsigned part = 0, parts = 0;
  char slash = 0, extra = 0;
  if (std::sscanf(text.c_str(), "%u%c%u%c", &part, &slash, &parts, &extra) != 3 || slash != '/' || part == 0 ||
      parts == 0 || part > parts)
    throw Error(fmt::format("--part {}: expected I/N with 1 <= I <= N (\"3/8\": the third of eight parts)", text));
  r.part = part;
  r.parts = parts;
  return r;
}

namespace {

// The capture files of the experiment's sources, in the order one process reads them: a file's
// place is its input number. Every source must read files (not a live interface, not generated).
std::vector<std::pair<std::size_t, std::string>> collection_files(const Experiment& experiment,
                                                                  const PluginRegistry& registry, HostLog& log) {
  std::vector<std::pair<std::size_t, std::string>> files;
  for (std::size_t s = 0; s < experiment.sources.size(); ++s) {
    const auto& spec = experiment.sources[s];
    auto source = registry.create<CaptureSource>(*spec.plugin, spec.params, log, spec.instance);
    auto planned = source->planned_files();
    if (!planned || planned->empty())
      throw Error(
          fmt::format("capture source {}: a dataset is built in parts by its capture files, and {} reads no "
                      "files (a live interface or generated traffic): build it with `trafficid prepro` alone",
                      spec.instance, spec.instance));
    for (auto& f : *planned) files.emplace_back(s, std::move(f));
  }
  return files;
}

fs::path parts_folder(const DatasetPlan& plan) { return fs::path(plan.folder.string() + ".parts"); }
fs::path part_folder(const DatasetPlan& plan, unsigned part, unsigned parts) {
  return parts_folder(plan) / fmt::format("part-{}-of-{}", part, parts);
}

// A part built earlier from this configuration and these files (same sizes and times): kept.
bool part_is_current(const fs::path& folder, const DatasetPlan& plan, const std::vector<std::string>& paths) {
  std::error_code ec;
  if (!fs::exists(folder / "part.json", ec)) return false;
  try {
    const Json header = read_part_header(folder);
    if (header.value("config_hash", "") != plan.config_hash || header.at("inputs").size() != paths.size()) return false;
    for (std::size_t i = 0; i < paths.size(); ++i) {
      const DatasetInput input = input_of_json(header.at("inputs")[i]);
      if (input.path != paths[i] || fs::file_size(paths[i], ec) != input.size || ec ||
          dataset_detail::mtime_ns(paths[i]) != input.mtime_ns)
        return false;
    }
    // Its flow columns and shards are there (a part whose files went is built again).
    for (const char* column : {"id", "key", "identity", "class", "input", "unknown"})
      if (!fs::exists(folder / fmt::format("flows.{}.npy", column), ec)) return false;
    return true;
  } catch (const std::exception&) {
    return false;  // damaged: built again
  }
}

// Builds part `request.part` into its folder (unless it is current); false when a stop was asked.
bool build_part(const Experiment& experiment, const PluginRegistry& registry, HostLog& log, const DatasetPlan& plan,
                const PartRequest& request) {
  const auto files = collection_files(experiment, registry, log);
  std::vector<SourceSpec> sources;
  std::vector<std::uint32_t> ids;
  std::vector<std::string> paths;
  for (std::size_t k = request.part - 1; k < files.size(); k += request.parts) {
    const auto& [source, path] = files[k];
    if (sources.empty() || sources.back().instance != experiment.sources[source].instance) {
      sources.push_back(experiment.sources[source]);
      sources.back().params["paths"] = Json::array();
    }
    sources.back().params["paths"].push_back(path);
    ids.push_back(static_cast<std::uint32_t>(k));
    paths.push_back(path);
  }
  const fs::path folder = part_folder(plan, request.part, request.parts);
  if (part_is_current(folder, plan, paths)) {
    log.info(fmt::format("stage dataset: part {} of {} is built already ({}), its files unchanged", request.part,
                         request.parts, folder.string()));
    return true;
  }
  fs::path building = folder;
  building += ".building";
  std::error_code ec;
  fs::remove_all(building, ec);
  fs::create_directories(building);
  log.info(fmt::format("stage dataset: part {} of {}: {} of the {} capture files, into {}", request.part, request.parts,
                       ids.size(), files.size(), folder.string()));
  const unsigned workers = feature_workers(experiment);
  DatasetBuilder builder(experiment, registry, log, building, workers);
  builder.number_inputs(ids);
  if (!ids.empty()) {
    Pipeline pipeline({sources, 0, *experiment.label, building / "label", workers}, registry, log, &builder);
    if (pipeline.run().capture.stopped_early) return false;
  }
  builder.save_part({{"config_hash", plan.config_hash}, {"part", request.part}, {"parts", request.parts}});
  fs::remove_all(folder, ec);
  fs::rename(building, folder);
  return true;
}

// The parts of the dataset there are: their N, and which of 1..N are complete.
std::map<unsigned, std::vector<unsigned>> parts_present(const DatasetPlan& plan) {
  std::map<unsigned, std::vector<unsigned>> out;
  std::error_code ec;
  if (!fs::exists(parts_folder(plan), ec)) return out;
  for (const auto& e : fs::directory_iterator(parts_folder(plan))) {
    unsigned part = 0, parts = 0;
    char extra = 0;
    const std::string name = e.path().filename().string();
    if (std::sscanf(name.c_str(), "part-%u-of-%u%c", &part, &parts, &extra) == 2 &&
        fs::exists(e.path() / "part.json", ec))
      out[parts].push_back(part);
  }
  return out;
}

DatasetManifest merge_locked(const Experiment& experiment, const PluginRegistry& registry, HostLog& log,
                             const DatasetPlan& plan) {
  const auto started = std::chrono::steady_clock::now();
  const auto present = parts_present(plan);
  if (present.empty())
    throw Error(fmt::format("{}: no parts of this dataset (build them with `trafficid prepro EXP --part I/N`)",
                            parts_folder(plan).string()));
  if (present.size() > 1)
    throw Error(
        fmt::format("{} holds parts of different splits ({} of them): remove the folder and build the parts "
                    "again",
                    parts_folder(plan).string(), present.size()));
  const auto& [parts, done] = *present.begin();
  std::vector<unsigned> missing;
  for (unsigned p = 1; p <= parts; ++p)
    if (std::find(done.begin(), done.end(), p) == done.end()) missing.push_back(p);
  if (!missing.empty())
    throw Error(fmt::format("{}: parts {} of {} are not built yet (`trafficid prepro EXP --part I/{}` each)",
                            parts_folder(plan).string(), fmt::join(missing, ", "), parts, parts));
  fs::path building = plan.folder;
  building += ".part";
  std::error_code ec;
  fs::remove_all(building, ec);
  fs::create_directories(building);
  DatasetBuilder builder(experiment, registry, log, building, 1);
  for (unsigned p = 1; p <= parts; ++p) {
    const fs::path folder = part_folder(plan, p, parts);
    const Json header = read_part_header(folder);
    if (header.value("config_hash", "") != plan.config_hash)
      throw Error(
          fmt::format("{}: built from another configuration of the experiment: build it again", folder.string()));
    builder.adopt_part(folder, header, p);
  }
  builder.end_adoption();
  auto manifest = builder.finish(plan.config_hash, plan.config);
  // The files one process would read now are the parts' files: else a part is stale.
  const auto files = collection_files(experiment, registry, log);
  bool same = files.size() == manifest.inputs.size();
  for (std::size_t i = 0; same && i < files.size(); ++i) same = files[i].second == manifest.inputs[i].path;
  if (!same)
    throw Error(
        fmt::format("the capture files changed since the parts were built ({} files now, {} in the parts): "
                    "build the parts again",
                    files.size(), manifest.inputs.size()));
  manifest.statistics["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  manifest.statistics["parts"] = parts;
  write_file_atomically(building / "manifest.json", to_json(manifest).dump(2));
  fs::remove_all(plan.folder, ec);
  fs::rename(building, plan.folder);
  // The parts go; the folder stays while it holds anything else (a job array's logs).
  for (unsigned p = 1; p <= parts; ++p) fs::remove_all(part_folder(plan, p, parts), ec);
  fs::remove(parts_folder(plan), ec);
  log.info(fmt::format("stage dataset: {} parts merged into {}", parts, plan.folder.string()));
  return manifest;
}

}  // namespace

DatasetManifest merge_dataset_parts(const Experiment& experiment, const PluginRegistry& registry, HostLog& log) {
  const DatasetPlan plan = plan_dataset(experiment);
  fs::create_directories(plan.folder.parent_path());
  FileLock lock = FileLock::wait(fs::path(plan.folder.string() + ".lock"));
  return merge_locked(experiment, registry, log, plan);
}

std::optional<DatasetManifest> build_dataset_part(const Experiment& experiment, const PluginRegistry& registry,
                                                  HostLog& log, const PartRequest& request) {
  if (experiment.max_packets > 0)
    throw Error(
        "capture.max_packets: a dataset built in parts reads every packet of its files (a budget of packets "
        "cannot be shared between parts); remove it");
  const DatasetPlan plan = plan_dataset(experiment);
  if (!build_part(experiment, registry, log, plan, request)) return std::nullopt;
  // The last part to end merges (one process at a time: the dataset's lock).
  FileLock lock = FileLock::wait(fs::path(plan.folder.string() + ".lock"));
  std::string why;
  if (auto merged = reusable_dataset(plan, experiment.sources, registry, log, why)) return merged;
  const auto present = parts_present(plan);
  const auto it = present.find(request.parts);
  const std::size_t done = it == present.end() ? 0 : it->second.size();
  if (done < request.parts) {
    log.info(fmt::format("stage dataset: part {} of {} done; {} of {} parts are built, the last to end merges them",
                         request.part, request.parts, done, request.parts));
    return std::nullopt;
  }
  return merge_locked(experiment, registry, log, plan);
}

fs::path dataset_parts_folder(const Experiment& experiment) {
  return fs::absolute(parts_folder(plan_dataset(experiment)));
}

}  // namespace trafficid::host
