// The web application's Data page: the labels databases of the workspace (`trafficid apps` as
// JSON) and its datasets (classes, splits and counts from each manifest.json).
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include "trafficid/params.hpp"

namespace trafficid::host {

// The labels databases (SQLite files `trafficid label` wrote) in the workspace's top folder,
// labels/ and runs/: [{"id", "bytes"}], ids relative to the workspace.
Json labels_databases(const std::filesystem::path& workspace);
// One database's applications and categories; nullopt when `id` is not one of the list.
std::optional<Json> labels_database(const std::filesystem::path& workspace, const std::string& id);

// The datasets (a manifest.json) in runs/datasets/, datasets/ and each run's folder: id,
// extractor, shape, classes, rows per split and class, split method, balance, folds, inputs.
Json datasets(const std::filesystem::path& workspace);

}  // namespace trafficid::host
