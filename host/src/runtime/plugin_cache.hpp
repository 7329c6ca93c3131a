// What the registry knows of each plugin file without loading it: kind, name, version,
// description and schema, kept in a cache file and trusted while the file's size and modification
// time (and the host's version and ABI) are the same. A command that never creates a model then
// never loads LibTorch (0.7 s and ~150 MB at every start); a plugin's code is loaded when its
// first object is made.
// The cache: TRAFFICID_PLUGIN_CACHE (a file; empty: none), else $XDG_CACHE_HOME/trafficid/
// plugins.json, else ~/.cache/trafficid/plugins.json. Written atomically, merged with what other
// processes wrote; one that cannot be written costs only the speed.
#pragma once
#include <filesystem>
#include <optional>

#include "trafficid/params.hpp"

namespace trafficid::host {

// A complete encoding of a schema (every field of each ParamSpec), and its inverse.
Json encode_schema(const Schema& schema);
Schema decode_schema(const Json& encoded);

class PluginCache {
 public:
  PluginCache();  // reads the cache file, if there is one
  // The entry of `file` when it still describes the file on disk.
  std::optional<Json> find(const std::filesystem::path& file) const;
  void put(const std::filesystem::path& file, Json entry);  // stamped with the file's size and time
  void save();                                              // when something was put

 private:
  std::filesystem::path path_;
  Json entries_ = Json::object();
  bool changed_ = false;
};

}  // namespace trafficid::host
