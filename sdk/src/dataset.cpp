#include "trafficid/dataset.hpp"

#include <fmt/format.h>
#include <fstream>

#include "trafficid/error.hpp"

namespace trafficid {

std::vector<double> balanced_class_weights(const std::vector<std::uint64_t>& train_rows) {
  std::uint64_t total = 0, present = 0;
  for (auto n : train_rows) {
    total += n;
    present += n > 0;
  }
  std::vector<double> w(train_rows.size(), 0.0);
  for (std::size_t c = 0; c < w.size(); ++c)
    if (train_rows[c])
      w[c] = static_cast<double>(total) / (static_cast<double>(present) * static_cast<double>(train_rows[c]));
  return w;
}

Json to_json(const DatasetInput& i) {
  return {{"id", i.id},
          {"path", i.path},
          {"size", i.size},
          {"mtime_ns", i.mtime_ns},
          {"content_hash", i.content_hash},
          {"packets", i.packets}};
}

Json to_json(const DatasetManifest& m) {
  Json shards = Json::array();
  for (const auto& s : m.shards) shards.push_back({{"name", s.name}, {"rows", s.rows}});
  Json inputs = Json::array();
  for (const auto& i : m.inputs) inputs.push_back(to_json(i));
  return {
      {"format", "trafficid-dataset"},
      {"version", m.version},
      {"config_hash", m.config_hash},
      {"features",
       {{"extractor", m.extractor},
        {"dtype", to_string(m.spec.dtype)},
        {"granularity", to_string(m.spec.granularity)},
        {"shape", m.spec.shape},
        {"columns", m.spec.column_names},
        {"sequence", m.spec.sequence},
        {"storage", m.storage}}},
      {"classes", m.class_names},
      {"split",
       {{"method", m.split_method}, {"seed", m.split_seed}, {"fractions", m.fractions}, {"leaks", m.split_leaks()}}},
      {"balance", {{"method", m.balance}, {"class_weights", m.class_weights}}},
      {"counts", m.counts},
      {"excluded", m.excluded},
      {"inputs", inputs},
      {"shards", shards},
      {"statistics", m.statistics},
      {"folds", {{"count", m.folds}, {"counts", m.fold_counts}}},
      {"evaluation", m.evaluation},
      {"config", m.config}};
}

DatasetManifest manifest_from_json(const Json& j) {
  try {
    DatasetManifest m;
    if (j.value("format", "") != "trafficid-dataset")
      throw Error("not a trafficid dataset manifest (no \"format\": \"trafficid-dataset\")");
    m.version = j.at("version").get<int>();
    if (m.version != 1)
      throw Error(fmt::format("dataset format version {} (this trafficid reads version 1)", m.version));
    m.config_hash = j.at("config_hash").get<std::string>();
    const auto& f = j.at("features");
    m.extractor = f.at("extractor").get<std::string>();
    m.spec.dtype = f.at("dtype").get<std::string>() == "uint8" ? DType::u8 : DType::f32;
    m.spec.granularity = f.at("granularity").get<std::string>() == "packet" ? Granularity::packet : Granularity::flow;
    m.spec.shape = f.at("shape").get<std::vector<std::int64_t>>();
    m.spec.column_names = f.value("columns", std::vector<std::string>{});
    m.spec.sequence = f.value("sequence", false);
    m.storage = f.at("storage").get<std::string>();
    m.spec.variable_length = m.storage == "ragged";
    m.class_names = j.at("classes").get<std::vector<std::string>>();
    m.split_method = j.at("split").at("method").get<std::string>();
    m.split_seed = j.at("split").at("seed").get<std::uint64_t>();
    m.fractions = j.at("split").at("fractions").get<std::array<double, 3>>();
    m.balance = j.at("balance").at("method").get<std::string>();
    m.class_weights = j.at("balance").at("class_weights").get<std::vector<double>>();
    m.counts = j.at("counts").get<std::map<std::string, std::vector<std::uint64_t>>>();
    m.excluded = j.value("excluded", std::map<std::string, std::uint64_t>{});
    for (const auto& i : j.at("inputs"))
      m.inputs.push_back(
          {i.at("id").get<std::uint32_t>(), i.at("path").get<std::string>(), i.at("size").get<std::uint64_t>(),
           i.at("mtime_ns").get<std::int64_t>(),
           i.contains("content_hash") ? i.at("content_hash").get<std::string>() : i.at("sha256").get<std::string>(),
           i.value("packets", std::uint64_t{0})});
    for (const auto& s : j.at("shards"))
      m.shards.push_back({s.at("name").get<std::string>(), s.at("rows").get<std::uint64_t>()});
    m.statistics = j.value("statistics", Json::object());
    m.config = j.value("config", Json::object());
    if (j.contains("folds")) {
      m.folds = j.at("folds").value("count", 0);
      m.fold_counts = j.at("folds").value("counts", decltype(m.fold_counts){});
    }
    m.evaluation = j.value("evaluation", Json());
    return m;
  } catch (const Json::exception& e) {
    throw Error(std::string("dataset manifest is incomplete or malformed: ") + e.what() +
                " (run `trafficid prepro` again to rewrite the dataset)");
  }
}

DatasetManifest read_manifest(const std::filesystem::path& folder) {
  const auto file = folder / "manifest.json";
  std::ifstream in(file);
  if (!in)
    throw Error(
        fmt::format("{}: no manifest.json, so not a complete dataset (`trafficid prepro EXPERIMENT.toml` "
                    "writes one)",
                    folder.string()));
  try {
    return manifest_from_json(Json::parse(in));
  } catch (const Json::parse_error& e) {
    throw Error(fmt::format("{}: {}", file.string(), e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", file.string(), e.what()));
  }
}

}  // namespace trafficid
