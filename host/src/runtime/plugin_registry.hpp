// Finds, loads and checks plugin shared objects; creates plugin objects that keep their library
// loaded for as long as they live. Plugins come only from the folders named explicitly
// (--plugin-path, TRAFFICID_PLUGIN_PATH) and the host's own plugin folder, never from the
// current directory.
#pragma once
#include <boost/dll/shared_library.hpp>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trafficid/error.hpp"
#include "trafficid/plugin.hpp"

namespace trafficid::host {

struct PluginInfo {
  std::filesystem::path file;
  PluginKind kind{};
  std::string name;
  std::string version;
  std::string description;
  std::string primary_param;
  Schema schema;
  // Null while the plugin is known from the cache (runtime/plugin_cache.hpp) and its code not yet
  // loaded: the registry loads it when the plugin's first object is made.
  mutable const PluginDescriptor* descriptor = nullptr;
  mutable std::shared_ptr<boost::dll::shared_library> library;

  std::string label() const;  // "capture plugin 'pcap' (/path/file.so)"
};

struct LoadProblem {
  std::filesystem::path file;
  std::string message;
};

// The kind and name a plugin file's name gives (trafficid_<kind>_<name>.so); nullopt for a file
// that is not named like a plugin, which the registry never opens.
std::optional<std::pair<std::string, std::string>> plugin_file_name(const std::string& file_name);

// Folders searched for plugins, in order: `--plugin-path` (relative ones made absolute),
// TRAFFICID_PLUGIN_PATH (absolute folders only: Error on a relative one), then the folder the host
// was installed with (BINDIR/../lib/trafficid/plugins). Never the current folder.
std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::string>& cli_paths);
std::filesystem::path builtin_plugin_dir();

// A plugin as JSON (`trafficid plugins --json`, the web application): kind, name, version, file,
// description; with its parameters' schema (name, type, help, default or required, range, choices).
Json plugin_json(const PluginInfo& p, bool with_schema);
Json schema_json(const Schema& schema);

template <class Body>
decltype(auto) guarded(const PluginInfo& info, Body&& body);

// A plugin object with the plugin it came from: a call through it, `handle([&](Model& m) { ... })`,
// is guarded (an exception becomes an Error naming the plugin), and the object keeps its library
// loaded for as long as the handle (or a copy) lives.
template <class Interface>
class PluginHandle {
 public:
  PluginHandle() = default;
  PluginHandle(std::shared_ptr<Interface> object, const PluginInfo& info) : object_(std::move(object)), info_(&info) {}
  const PluginInfo& info() const { return *info_; }
  explicit operator bool() const { return object_ != nullptr; }
  template <class F>
  decltype(auto) operator()(F&& f) const {
    return guarded(*info_, [&]() -> decltype(auto) { return f(*object_); });
  }
  // The object itself, for code that guards its own calls (a hot loop's caller).
  Interface& get() const { return *object_; }

 private:
  std::shared_ptr<Interface> object_;
  const PluginInfo* info_ = nullptr;
};

class PluginRegistry {
 public:
  // Finds every plugin file in each folder (not recursively). Problems are recorded, never thrown:
  // one bad plugin does not stop the others from loading. A plugin the cache describes (its file
  // unchanged) is not loaded until an object of it is made; the others are loaded and described
  // in the cache. Without `model_plugins`, files named trafficid_model_*.so (as
  // trafficid_add_plugin names them) are left alone.
  void load_directories(const std::vector<std::filesystem::path>& folders, bool model_plugins = true);
  void load_file(const std::filesystem::path& file);  // loads its code now (no cache)

  const std::vector<LoadProblem>& problems() const { return problems_; }
  const std::vector<std::unique_ptr<PluginInfo>>& plugins() const { return plugins_; }
  const PluginInfo* find(PluginKind kind, std::string_view name) const;
  // Any kind; nullptr when no plugin (or more than one, of different kinds) has the name.
  std::vector<const PluginInfo*> find_any(std::string_view name) const;
  std::vector<std::string> names(PluginKind kind) const;

  // Creates an object of plugin `info` and checks it implements `Interface`. Exceptions from the
  // plugin become trafficid::Error naming it.
  template <class Interface>
  std::shared_ptr<Interface> create(const PluginInfo& info, const Json& params, HostServices& host,
                                    std::string instance_name) const {
    std::unique_ptr<Plugin> object = create_object(info, params, host, std::move(instance_name));
    auto* typed = dynamic_cast<Interface*>(object.get());
    if (!typed)
      throw Error(info.label() + ": the object its factory made does not implement the " + to_string(info.kind) +
                  " interface (was it built against this SDK?)");
    Plugin* owner = object.release();
    // The deleter holds the library: the plugin's code cannot be unloaded under its objects.
    return std::shared_ptr<Interface>(typed, [library = info.library, owner](Interface*) { delete owner; });
  }
  // create() as a handle that guards every call.
  template <class Interface>
  PluginHandle<Interface> make(const PluginInfo& info, const Json& params, HostServices& host,
                               std::string instance_name) const {
    return {create<Interface>(info, params, host, std::move(instance_name)), info};
  }

 private:
  // The checks every plugin passes, loaded or cached (its name, its file's name, no duplicate).
  void admit(std::unique_ptr<PluginInfo> info);
  void add_cached(const std::filesystem::path& file, const Json& entry);
  // A cached plugin's code, on its first object; under a lock, so that the loading thread's
  // descriptor and library are what every later caller sees.
  void open_library(const PluginInfo& info) const;
  std::unique_ptr<Plugin> create_object(const PluginInfo& info, const Json& params, HostServices& host,
                                        std::string instance_name) const;
  std::vector<std::unique_ptr<PluginInfo>> plugins_;
  std::vector<LoadProblem> problems_;
};

// Runs `body`, turning any exception into trafficid::Error prefixed with the plugin's label.
template <class Body>
decltype(auto) guarded(const PluginInfo& info, Body&& body) {
  try {
    return body();
  } catch (const Error& e) {
    throw Error(info.label() + ": " + e.what());
  } catch (const std::exception& e) {
    throw Error(info.label() + " failed: " + e.what());
  } catch (...) {
    throw Error(info.label() + " failed with an exception that is not a std::exception");
  }
}

}  // namespace trafficid::host
