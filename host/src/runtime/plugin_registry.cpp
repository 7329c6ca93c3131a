#include "runtime/plugin_registry.hpp"

#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <cstdlib>
#include <fmt/format.h>
#include <fmt/std.h>
#include <mutex>
#include <regex>

#include "runtime/plugin_cache.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

std::string PluginInfo::label() const {
  return fmt::format("{} plugin '{}' ({})", to_string(kind), name, file.string());
}

fs::path builtin_plugin_dir() {
  fs::path exe = boost::dll::program_location().string();
  return (exe.parent_path() / ".." / "lib" / "trafficid" / "plugins").lexically_normal();
}

std::optional<std::pair<std::string, std::string>> plugin_file_name(const std::string& file_name) {
  static const std::regex pattern("trafficid_(capture|labeler|features|model|tuner)_([a-z][a-z0-9_]*)\\.so");
  std::smatch m;
  if (!std::regex_match(file_name, m, pattern)) return std::nullopt;
  return std::make_pair(m[1].str(), m[2].str());
}

std::vector<fs::path> plugin_search_path(const std::vector<std::string>& cli_paths) {
  std::vector<fs::path> out;
  auto add_list = [&](const std::string& list) {
    std::size_t start = 0;
    while (start <= list.size()) {
      auto end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      if (end > start) out.emplace_back(list.substr(start, end - start));
      start = end + 1;
    }
  };
  // Folders typed on the command line are the user's own choice: relative ones are taken from
  // the current folder, said out loud by making them absolute.
  for (const auto& p : cli_paths) add_list(p);
  for (auto& p : out) p = fs::absolute(p);
  // The environment is not: a relative entry there would load whatever a folder the user happens
  // to stand in holds (the current folder is never searched), so it is refused.
  if (const char* env = std::getenv("TRAFFICID_PLUGIN_PATH")) {
    const std::size_t from = out.size();
    add_list(env);
    for (std::size_t i = from; i < out.size(); ++i)
      if (out[i].is_relative())
        throw Error(
            fmt::format("TRAFFICID_PLUGIN_PATH holds the relative folder '{}': plugins are loaded only from "
                        "absolute folders (a relative one would depend on the current folder); write it as an "
                        "absolute path",
                        out[i].string()));
  }
  out.push_back(builtin_plugin_dir());
  std::vector<fs::path> unique;
  for (auto& p : out) {
    std::error_code ec;
    auto canonical = fs::weakly_canonical(p, ec);
    if (ec) canonical = p;
    if (std::find(unique.begin(), unique.end(), canonical) == unique.end()) unique.push_back(canonical);
  }
  return unique;
}

void PluginRegistry::load_directories(const std::vector<fs::path>& folders, bool model_plugins) {
  PluginCache cache;
  for (const auto& folder : folders) {
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) {
      if (folder != builtin_plugin_dir())
        problems_.push_back({folder, "plugin folder does not exist or is not a folder"});
      continue;
    }
    // Only files named like plugins are opened: loading a library runs its constructors, so any
    // other library in the folder (a plugin's own dependency, something dropped there) is never loaded.
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(folder, ec))
      if (plugin_file_name(entry.path().filename().string()) && entry.is_regular_file() &&
          (model_plugins || !entry.path().filename().string().starts_with("trafficid_model_")))
        files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      if (auto entry = cache.find(file)) {
        add_cached(file, *entry);
        continue;
      }
      const std::size_t before = plugins_.size();
      load_file(file);
      if (plugins_.size() == before) continue;  // a problem, recorded: never cached
      const PluginInfo& p = *plugins_.back();
      cache.put(file, {{"kind", static_cast<int>(p.kind)},
                       {"name", p.name},
                       {"version", p.version},
                       {"description", p.description},
                       {"primary_param", p.primary_param},
                       {"schema", encode_schema(p.schema)}});
    }
  }
  cache.save();
}

void PluginRegistry::add_cached(const fs::path& file, const Json& entry) {
  auto info = std::make_unique<PluginInfo>();
  try {
    info->file = file;
    info->kind = static_cast<PluginKind>(entry.at("kind").get<int>());
    info->name = entry.at("name").get<std::string>();
    info->version = entry.at("version").get<std::string>();
    info->description = entry.at("description").get<std::string>();
    info->primary_param = entry.at("primary_param").get<std::string>();
    info->schema = decode_schema(entry.at("schema"));
  } catch (const std::exception&) {
    load_file(file);  // an entry this host cannot read: the file itself says
    return;
  }
  admit(std::move(info));
}

void PluginRegistry::open_library(const PluginInfo& info) const {
  static std::mutex opening;
  std::lock_guard lock(opening);
  if (info.descriptor) return;
  std::shared_ptr<boost::dll::shared_library> library;
  const PluginDescriptor* d = nullptr;
  try {
    library = std::make_shared<boost::dll::shared_library>(
        info.file.string(), boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    d = library->get_alias<EntryPoint>("trafficid_plugin")();
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: cannot load: {}", info.label(), e.what()));
  }
  if (!d || d->abi_version != TRAFFICID_ABI_VERSION || d->kind != static_cast<std::uint32_t>(info.kind) || !d->name ||
      info.name != d->name || !d->create)
    throw Error(
        fmt::format("{}: the file no longer holds the plugin it held when it was described; run the "
                    "command again (it is then loaded afresh)",
                    info.label()));
  info.library = std::move(library);
  info.descriptor = d;
}

void PluginRegistry::load_file(const fs::path& file) {
  auto fail = [&](std::string message) { problems_.push_back({file, std::move(message)}); };
  std::shared_ptr<boost::dll::shared_library> library;
  try {
    // rtld_now: an undefined symbol fails here, with its name, not in the middle of a run.
    library = std::make_shared<boost::dll::shared_library>(
        file.string(), boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    fail(fmt::format("cannot load: {}", e.what()));
    return;
  }
  if (!library->has("trafficid_plugin")) {
    fail("not a trafficid plugin: it exports no 'trafficid_plugin' entry point (declare one with TRAFFICID_PLUGIN)");
    return;
  }
  const PluginDescriptor* d = nullptr;
  try {
    // get_alias, not import_alias: this registry already owns the library handle.
    d = library->get_alias<EntryPoint>("trafficid_plugin")();
  } catch (const std::exception& e) {
    fail(fmt::format("its entry point failed: {}", e.what()));
    return;
  }
  if (!d) {
    fail("its entry point returned no descriptor");
    return;
  }
  if (d->abi_version != TRAFFICID_ABI_VERSION) {
    fail(
        fmt::format("wrong ABI version on plugin '{}': got version {}, supported version is {} "
                    "(rebuild it against this trafficid SDK)",
                    file.string(), d->abi_version, TRAFFICID_ABI_VERSION));
    return;
  }
  if (!is_known_kind(d->kind)) {
    fail(fmt::format("unknown plugin kind {} (known: 1 capture, 2 labeler, 3 features, 4 model, 5 tuner)", d->kind));
    return;
  }
  auto info = std::make_unique<PluginInfo>();
  info->file = file;
  info->kind = static_cast<PluginKind>(d->kind);
  info->name = d->name ? d->name : "";
  info->version = d->version ? d->version : "";
  info->description = d->description ? d->description : "";
  info->primary_param = d->primary_param ? d->primary_param : "";
  info->descriptor = d;
  info->library = library;
  if (!d->schema || !d->create) {
    fail(fmt::format("{}: its descriptor has no {} function", info->label(), d->schema ? "factory" : "schema"));
    return;
  }
  try {
    info->schema = d->schema();
  } catch (const std::exception& e) {
    fail(fmt::format("{}: its schema function failed: {}", info->label(), e.what()));
    return;
  }
  admit(std::move(info));
}

void PluginRegistry::admit(std::unique_ptr<PluginInfo> info) {
  const fs::path file = info->file;
  auto fail = [&](std::string message) { problems_.push_back({file, std::move(message)}); };
  static const std::regex valid_name("[a-z][a-z0-9_]*");
  if (!std::regex_match(info->name, valid_name)) {
    fail(fmt::format("invalid plugin name '{}' (use lower case letters, digits and _)", info->name));
    return;
  }
  if (const auto named = plugin_file_name(file.filename().string());
      named && (named->first != to_string(info->kind) || named->second != info->name)) {
    fail(
        fmt::format("its file name says {} plugin '{}' but it declares {} plugin '{}': name the file "
                    "trafficid_{}_{}.so (trafficid_add_plugin does)",
                    named->first, named->second, to_string(info->kind), info->name, to_string(info->kind), info->name));
    return;
  }
  if (const auto* existing = find(info->kind, info->name)) {
    fail(
        fmt::format("duplicate {} plugin '{}': also declared by {} (version {}); keeping that one, "
                    "ignoring this one (version {})",
                    to_string(info->kind), info->name, existing->file.string(), existing->version, info->version));
    return;
  }
  plugins_.push_back(std::move(info));
}

const PluginInfo* PluginRegistry::find(PluginKind kind, std::string_view name) const {
  for (const auto& p : plugins_)
    if (p->kind == kind && p->name == name) return p.get();
  return nullptr;
}

std::vector<const PluginInfo*> PluginRegistry::find_any(std::string_view name) const {
  std::vector<const PluginInfo*> out;
  for (const auto& p : plugins_)
    if (p->name == name) out.push_back(p.get());
  return out;
}

std::vector<std::string> PluginRegistry::names(PluginKind kind) const {
  std::vector<std::string> out;
  for (const auto& p : plugins_)
    if (p->kind == kind) out.push_back(p->name);
  return out;
}

std::unique_ptr<Plugin> PluginRegistry::create_object(const PluginInfo& info, const Json& params, HostServices& host,
                                                      std::string instance_name) const {
  // Parameters stored by an earlier trafficid (a model's manifest, a run's config) lack those
  // added since: their defaults apply, as they would to an experiment that does not set them.
  Json filled = params;
  if (filled.is_object())
    for (const auto& spec : info.schema)
      if (!filled.contains(spec.name) && !spec.default_value.is_null()) filled[spec.name] = spec.default_value;
  PluginArgs args{filled, host, std::move(instance_name)};
  open_library(info);  // under its lock, also when loaded: other threads may be loading it
  std::unique_ptr<Plugin> object;
  try {
    object = info.descriptor->create(args);
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: could not be created: {}", info.label(), e.what()));
  } catch (...) {
    throw Error(fmt::format("{}: could not be created: an exception that is not a std::exception", info.label()));
  }
  if (!object) throw Error(fmt::format("{}: its factory returned nothing", info.label()));
  return object;
}

Json schema_json(const Schema& schema) {
  Json out = Json::array();
  for (const auto& spec : schema) {
    Json j{{"name", spec.name}, {"type", to_string(spec.type)}, {"help", spec.help}};
    if (!spec.default_value.is_null()) j["default"] = spec.default_value;
    else j["required"] = !spec.optional;
    if (spec.min) j["min"] = *spec.min;
    if (spec.max) j["max"] = *spec.max;
    if (!spec.choices.empty()) j["choices"] = spec.choices;
    if (!spec.fields.empty()) j["fields"] = schema_json(spec.fields);
    out.push_back(std::move(j));
  }
  return out;
}

Json plugin_json(const PluginInfo& p, bool with_schema) {
  Json j{{"kind", to_string(p.kind)},
         {"name", p.name},
         {"version", p.version},
         {"file", p.file.string()},
         {"description", p.description}};
  if (!p.primary_param.empty()) j["primary_param"] = p.primary_param;
  if (with_schema) j["parameters"] = schema_json(p.schema);
  return j;
}

}  // namespace trafficid::host
