#include "runtime/plugin_cache.hpp"

#include <cstdlib>
#include <fstream>
#include <unistd.h>

#include "trafficid/error.hpp"
#include "trafficid/files.hpp"
#include "trafficid/plugin.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

constexpr const char* format_name = "trafficid-plugin-cache";

fs::path cache_file() {
  if (const char* chosen = std::getenv("TRAFFICID_PLUGIN_CACHE")) return chosen;  // "": no cache
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fs::path(xdg) / "trafficid/plugins.json";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache/trafficid/plugins.json";
  return {};
}

// The file as it is now: size and modification time; null when it cannot be read.
Json stamp(const fs::path& file) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) return nullptr;
  const auto time = fs::last_write_time(file, ec);
  if (ec) return nullptr;
  return {{"size", size}, {"mtime", time.time_since_epoch().count()}};
}

ParamType type_named(const std::string& name) {
  for (int t = 0; t <= static_cast<int>(ParamType::table_list); ++t)
    if (name == to_string(static_cast<ParamType>(t))) return static_cast<ParamType>(t);
  throw Error("unknown parameter type '" + name + "'");
}

}  // namespace

Json encode_schema(const Schema& schema) {
  Json out = Json::array();
  for (const auto& p : schema)
    out.push_back({{"name", p.name},
                   {"type", to_string(p.type)},
                   {"default", p.default_value},
                   {"help", p.help},
                   {"min", p.min ? Json(*p.min) : Json()},
                   {"max", p.max ? Json(*p.max) : Json()},
                   {"choices", p.choices},
                   {"fields", encode_schema(p.fields)},
                   {"optional", p.optional},
                   {"must_exist", p.must_exist}});
  return out;
}

Schema decode_schema(const Json& encoded) {
  Schema out;
  for (const auto& j : encoded) {
    ParamSpec p;
    p.name = j.at("name").get<std::string>();
    p.type = type_named(j.at("type").get<std::string>());
    p.default_value = j.at("default");
    p.help = j.at("help").get<std::string>();
    if (!j.at("min").is_null()) p.min = j.at("min").get<double>();
    if (!j.at("max").is_null()) p.max = j.at("max").get<double>();
    p.choices = j.at("choices").get<std::vector<std::string>>();
    p.fields = decode_schema(j.at("fields"));
    p.optional = j.at("optional").get<bool>();
    p.must_exist = j.at("must_exist").get<bool>();
    out.push_back(std::move(p));
  }
  return out;
}

PluginCache::PluginCache() : path_(cache_file()) {
  if (path_.empty()) return;
  std::ifstream in(path_);
  if (!in) return;
  Json j = Json::parse(in, nullptr, false);
  // Another host version or ABI: every entry is stale.
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != format_name ||
      j.value("host", "") != TRAFFICID_VERSION || j.value("abi", 0u) != TRAFFICID_ABI_VERSION ||
      !j["plugins"].is_object())
    return;
  entries_ = std::move(j["plugins"]);
}

std::optional<Json> PluginCache::find(const fs::path& file) const {
  auto it = entries_.find(file.string());
  if (it == entries_.end() || !it->is_object() || it->value("stamp", Json()) != stamp(file)) return std::nullopt;
  return *it;
}

void PluginCache::put(const fs::path& file, Json entry) {
  entry["stamp"] = stamp(file);
  if (entry["stamp"].is_null()) return;
  entries_[file.string()] = std::move(entry);
  changed_ = true;
}

void PluginCache::save() {
  if (!changed_ || path_.empty()) return;
  changed_ = false;
  try {
    PluginCache on_disk;  // what other processes wrote since: kept, ours replacing theirs
    Json merged = on_disk.entries_;
    for (const auto& [file, entry] : entries_.items()) merged[file] = entry;
    fs::create_directories(path_.parent_path());
    write_file_atomically(
        path_,
        Json{{"format", format_name}, {"host", TRAFFICID_VERSION}, {"abi", TRAFFICID_ABI_VERSION}, {"plugins", merged}}
                .dump() +
            "\n");
  } catch (const std::exception&) {
    // A cache that cannot be written (a read-only home) only costs the next start its speed.
  }
}

}  // namespace trafficid::host
