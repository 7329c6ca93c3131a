#include "serve/data_api.hpp"

#include <algorithm>

#include "labels/label_db.hpp"
#include "serve/workspace_files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

const char* const database_folders[] = {"", "labels", "runs"};

bool database_name(const fs::path& p) {
  const auto e = p.extension();
  return e == ".db" || e == ".sqlite" || e == ".sqlite3";
}

// A dataset's manifest as a row of the page: what it holds, not its config.
Json dataset_row(const std::string& id, const Json& m) {
  Json per_split = Json::object();
  std::uint64_t rows = 0;
  const Json all_counts = m.value("counts", Json::object());
  for (const auto& [split, counts] : all_counts.items()) {
    std::uint64_t n = 0;
    for (const auto& c : counts) n += c.get<std::uint64_t>();
    per_split[split] = n;
    rows += n;
  }
  const Json features = m.value("features", Json::object());
  const Json split = m.value("split", Json::object());
  return {{"id", id},
          {"extractor", features.value("extractor", "")},
          {"shape", features.value("shape", Json::array())},
          {"classes", m.value("classes", Json::array())},
          {"counts", all_counts},
          {"rows", rows},
          {"per_split", per_split},
          {"split", split.value("method", "")},
          {"fractions", split.value("fractions", Json::array())},
          {"balance", m.value("balance", Json::object()).value("method", "")},
          {"folds", m.value("folds", Json::object()).value("count", 0)},
          {"inputs", m.value("inputs", Json::array()).size()},
          {"flows", m.value("statistics", Json::object()).value("flows", 0)},
          {"evaluation", !m.value("evaluation", Json()).is_null()}};
}

}  // namespace

Json labels_databases(const fs::path& workspace) {
  Json out = Json::array();
  for (const char* folder : database_folders) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(workspace / folder, ec)) {
      if (!entry.is_regular_file() || !database_name(entry.path())) continue;
      if (!LabelDb::is_labels_database(entry.path())) continue;
      out.push_back({{"id", fs::relative(entry.path(), workspace).generic_string()}, {"bytes", entry.file_size()}});
    }
  }
  return out;
}

std::optional<Json> labels_database(const fs::path& workspace, const std::string& id) {
  // One of the list: in one of its folders, named like a database, and one `trafficid label` wrote
  // (checked for this file alone, not by listing them all again).
  const fs::path named(id);
  const std::string folder = named.parent_path().generic_string();
  if (std::find(std::begin(database_folders), std::end(database_folders), folder) == std::end(database_folders) ||
      !database_name(named))
    return std::nullopt;
  const auto file = inside_workspace(workspace, named);
  if (!file || !fs::is_regular_file(*file) || !LabelDb::is_labels_database(*file)) return std::nullopt;
  Json out = LabelDb(*file).summary();
  out["id"] = id;
  return out;
}

Json datasets(const fs::path& workspace) {
  std::vector<fs::path> manifests;
  std::error_code ec;
  for (const char* folder : {"runs/datasets", "datasets"})
    for (const auto& entry : fs::directory_iterator(workspace / folder, ec))
      if (fs::is_regular_file(entry.path() / "manifest.json")) manifests.push_back(entry.path() / "manifest.json");
  for (const auto& run : fs::directory_iterator(workspace / "runs", ec))
    if (fs::is_regular_file(run.path() / "dataset" / "manifest.json"))
      manifests.push_back(run.path() / "dataset" / "manifest.json");
  std::sort(manifests.begin(), manifests.end());
  Json out = Json::array();
  for (const auto& file : manifests) {
    auto m = read_json_file(file);
    if (!m || m->value("format", "") != "trafficid-dataset") continue;
    out.push_back(dataset_row(fs::relative(file.parent_path(), workspace).generic_string(), *m));
  }
  return out;
}

}  // namespace trafficid::host
