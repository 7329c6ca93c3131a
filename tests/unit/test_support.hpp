// Helpers shared by the unit tests: where the shared data and the built plugins are.
#pragma once
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "runtime/host_log.hpp"
#include "runtime/plugin_registry.hpp"
#include "config/schema_check.hpp"

namespace test_support {

// The shared captures folder. Missing: fail under CI=true, otherwise let the caller skip.
inline std::filesystem::path data_dir_or_empty() {
  const char* env = std::getenv("TRAFFICID_DATA_DIR");
  std::filesystem::path dir = env && *env ? env : TRAFFICID_DEFAULT_DATA_DIR;
  if (std::filesystem::is_directory(dir / "captures")) return dir;
  const char* ci = std::getenv("CI");
  if (ci && std::string(ci) == "true")
    FAIL("shared data folder " << dir << " is missing (set TRAFFICID_DATA_DIR or -DTRAFFICID_DATA_DIR)");
  WARN("shared data folder " << dir << " is missing: test not run");
  return {};
}

// The plugins built in this tree, loaded once per test process.
inline const trafficid::host::PluginRegistry& built_plugins() {
  static const trafficid::host::PluginRegistry registry = [] {
    trafficid::host::PluginRegistry loaded;
    loaded.load_directories({TRAFFICID_PLUGIN_DIR}, false);  // no model plugins: no LibTorch start-up per test
    return loaded;
  }();
  return registry;
}

// An object of a built plugin: its schema's defaults with `overrides` on top.
template <class Interface>
std::shared_ptr<Interface> make_plugin(trafficid::PluginKind kind, const std::string& name,
                                       const trafficid::Json& overrides = trafficid::Json::object()) {
  const auto* plugin = built_plugins().find(kind, name);
  REQUIRE(plugin);
  trafficid::Json params = trafficid::host::schema_defaults(plugin->schema);
  params.update(overrides);
  static trafficid::host::HostLog log(trafficid::LogLevel::error);
  return built_plugins().create<Interface>(*plugin, params, log, name);
}

inline std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("trafficid-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace test_support
