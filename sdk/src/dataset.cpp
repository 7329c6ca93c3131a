#include "trafficid/dataset.hpp"

#include "trafficid/error.hpp"

namespace trafficid {
namespace {
SplitName split_from(const std::string& name) {
  for (auto s : {SplitName::train, SplitName::validation, SplitName::test})
    if (name == to_string(s)) return s;
  throw Error("dataset manifest: unknown split '" + name + "' (expected train, validation or test)");
}
}  // namespace

Json to_json(const DatasetManifest& m) {
  Json shards = Json::array();
  for (const auto& s : m.shards)
    shards.push_back({{"split", to_string(s.split)}, {"features", s.features_file},
                      {"labels", s.labels_file}, {"flow_ids", s.flow_ids_file},
                      {"file_ids", s.file_ids_file}, {"rows", s.rows}});
  return {{"config_hash", m.config_hash},
          {"dtype", m.spec.dtype == DType::u8 ? "uint8" : "float32"},
          {"granularity", m.spec.granularity == Granularity::packet ? "packet" : "flow"},
          {"shape", m.spec.shape},
          {"columns", m.spec.column_names},
          {"classes", m.class_names},
          {"split", {{"method", m.split_method}, {"seed", m.split_seed}}},
          {"inputs", m.input_hashes},
          {"shards", shards},
          {"counts", m.counts},
          {"config", m.config}};
}

DatasetManifest manifest_from_json(const Json& j) {
  try {
    DatasetManifest m;
    m.config_hash = j.at("config_hash").get<std::string>();
    m.spec.dtype = j.at("dtype").get<std::string>() == "uint8" ? DType::u8 : DType::f32;
    m.spec.granularity = j.at("granularity").get<std::string>() == "packet" ? Granularity::packet : Granularity::flow;
    m.spec.shape = j.at("shape").get<std::vector<std::int64_t>>();
    m.spec.column_names = j.value("columns", std::vector<std::string>{});
    m.class_names = j.at("classes").get<std::vector<std::string>>();
    m.split_method = j.at("split").at("method").get<std::string>();
    m.split_seed = j.at("split").at("seed").get<std::uint64_t>();
    m.input_hashes = j.value("inputs", std::map<std::string, std::string>{});
    for (const auto& s : j.at("shards"))
      m.shards.push_back({split_from(s.at("split").get<std::string>()), s.at("features").get<std::string>(),
                          s.at("labels").get<std::string>(), s.at("flow_ids").get<std::string>(),
                          s.at("file_ids").get<std::string>(), s.at("rows").get<std::uint64_t>()});
    m.counts = j.value("counts", std::map<std::string, std::vector<std::uint64_t>>{});
    m.config = j.value("config", Json::object());
    return m;
  } catch (const Json::exception& e) {
    throw Error(std::string("dataset manifest is incomplete or malformed: ") + e.what() +
                " (re-run the prepro stage to rewrite it)");
  }
}

}  // namespace trafficid
