// What the web application reads of a workspace: paths a client names, kept inside it, and the
// JSON files runs write (read leniently: a run may be writing one, or a folder lack it).
#pragma once
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include "trafficid/params.hpp"

namespace trafficid::host {

// `root / relative`, links resolved, when it stays inside `root` (itself canonical); else nullopt.
inline std::optional<std::filesystem::path> inside_workspace(const std::filesystem::path& root,
                                                             const std::filesystem::path& relative) {
  if (relative.empty() || relative.is_absolute()) return std::nullopt;
  const std::filesystem::path path = std::filesystem::weakly_canonical(root / relative);
  const auto [end, _] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  if (end != root.end()) return std::nullopt;  // "..", or a link out of the workspace
  return path;
}

// The file's JSON; nullopt when it is missing or not (yet) valid JSON.
inline std::optional<Json> read_json_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  Json j = Json::parse(in, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

}  // namespace trafficid::host
