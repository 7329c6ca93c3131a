// The plugin host refuses broken plugins with a message naming the file and the reason, and
// keeps loading the others.
#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "runtime/host_log.hpp"
#include "runtime/plugin_cache.hpp"
#include "runtime/plugin_registry.hpp"
#include "test_support.hpp"
#include "trafficid/capture.hpp"

using namespace trafficid;
using namespace trafficid::host;
namespace fs = std::filesystem;

namespace {
std::string problem_for(const PluginRegistry& registry, const std::string& file_name) {
  for (const auto& p : registry.problems())
    if (p.file.filename() == file_name) return p.message;
  return "";
}
}  // namespace

TEST_CASE("broken plugins are refused one by one and the good ones still load", "[registry]") {
  PluginRegistry registry;
  registry.load_directories({fs::path(TRAFFICID_TEST_PLUGIN_DIR) / "broken", TRAFFICID_PLUGIN_DIR});

  SECTION("wrong ABI version names the file and both versions") {
    auto message = problem_for(registry, "trafficid_capture_bad_abi.so");
    CHECK_THAT(message, Catch::Contains("wrong ABI version on plugin"));
    CHECK_THAT(message, Catch::Contains("trafficid_capture_bad_abi.so"));
    CHECK_THAT(message, Catch::Contains("got version " + std::to_string(TRAFFICID_ABI_VERSION + 41)));
    CHECK_THAT(message, Catch::Contains("supported version is " + std::to_string(TRAFFICID_ABI_VERSION)));
    CHECK(registry.find(PluginKind::capture, "bad_abi") == nullptr);
  }
  SECTION("a missing symbol fails at load time and says which") {
    auto message = problem_for(registry, "trafficid_capture_missing.so");
    CHECK_THAT(message, Catch::Contains("cannot load"));
    CHECK_THAT(message, Catch::Contains("trafficid_test_symbol_that_does_not_exist"));
  }
  SECTION("a shared object without the entry point is not a plugin") {
    CHECK_THAT(problem_for(registry, "trafficid_capture_none.so"),
               Catch::Contains("no 'trafficid_plugin' entry point"));
  }
  SECTION("an unknown kind is refused") {
    CHECK_THAT(problem_for(registry, "trafficid_capture_strange.so"), Catch::Contains("unknown plugin kind 77"));
  }
  SECTION("a file whose name says another kind or name than its descriptor is refused") {
    CHECK_THAT(problem_for(registry, "trafficid_capture_alias.so"),
               Catch::Contains("its file name says capture plugin 'alias' but it declares capture plugin 'other'"));
    CHECK(registry.find(PluginKind::capture, "other") == nullptr);
  }
  SECTION("a library not named like a plugin is never opened, so none of its code runs") {
    CHECK(std::getenv("TRAFFICID_TEST_CONSTRUCTOR_RAN") == nullptr);
    CHECK(problem_for(registry, "libhelper.so").empty());
    CHECK(registry.find(PluginKind::capture, "helper") == nullptr);
  }
  SECTION("the other plugins are loaded") {
    CHECK(registry.find(PluginKind::capture, "pcap") != nullptr);
    CHECK(registry.find(PluginKind::capture, "synth") != nullptr);
    CHECK(registry.find(PluginKind::capture, "throwing") != nullptr);
    CHECK(registry.problems().size() == 5);
  }
  SECTION("an exception from a factory becomes a host error naming the plugin") {
    const auto* plugin = registry.find(PluginKind::capture, "throwing");
    REQUIRE(plugin);
    HostLog log;
    try {
      registry.create<CaptureSource>(*plugin, Json::object({{"level", 1}}), log, "throwing");
      FAIL("the factory's exception was swallowed");
    } catch (const Error& e) {
      std::string what = e.what();
      CHECK_THAT(what, Catch::Contains("capture plugin 'throwing'"));
      CHECK_THAT(what, Catch::Contains("trafficid_capture_throwing.so"));
      CHECK_THAT(what, Catch::Contains("cannot open the device: permission denied"));
    }
  }
}

TEST_CASE("two plugins of the same kind and name: the second is refused naming both files", "[registry]") {
  PluginRegistry registry;
  const fs::path first = fs::path(TRAFFICID_TEST_PLUGIN_DIR) / "twins",
                 second = fs::path(TRAFFICID_TEST_PLUGIN_DIR) / "twins-again";
  registry.load_directories({first, second});
  REQUIRE(registry.plugins().size() == 1);
  CHECK(registry.plugins()[0]->file == first / "trafficid_capture_twin.so");
  REQUIRE(registry.problems().size() == 1);
  const auto& problem = registry.problems()[0];
  CHECK(problem.file == second / "trafficid_capture_twin.so");
  CHECK_THAT(problem.message, Catch::Contains("duplicate capture plugin 'twin'"));
  CHECK_THAT(problem.message, Catch::Contains((first / "trafficid_capture_twin.so").string()));
  CHECK_THAT(problem.message, Catch::Contains("version 1.0.0"));
  CHECK_THAT(problem.message, Catch::Contains("version 2.0.0"));
}

TEST_CASE("objects keep their plugin's library loaded after the registry is gone", "[registry]") {
  HostLog log;
  std::shared_ptr<CaptureSource> source;
  {
    PluginRegistry registry;
    registry.load_directories({TRAFFICID_PLUGIN_DIR});
    const auto* synth = registry.find(PluginKind::capture, "synth");
    REQUIRE(synth);
    Json params = {{"seed", 3},    {"flows_per_app", 1},       {"apps", {"dns"}},
                   {"clients", 1}, {"start_time", 1700000000}, {"duration", 10}};
    source = registry.create<CaptureSource>(*synth, params, log, "synth");
  }
  // The registry and its handles are destroyed; the object's deleter still holds the library.
  PacketView packet;
  int packets = 0;
  while (source->next(packet)) ++packets;
  CHECK(packets == 4);  // A and AAAA, query and answer
  CHECK(source->files().at(0).packets == 4);
  source.reset();
}

TEST_CASE("the plugin search path puts explicit folders first and never the current directory", "[registry]") {
  ::setenv("TRAFFICID_PLUGIN_PATH", "/tmp/trafficid-a:/tmp/trafficid-b", 1);
  auto path = plugin_search_path({"/tmp/trafficid-cli"});
  ::unsetenv("TRAFFICID_PLUGIN_PATH");
  REQUIRE(path.size() == 4);
  CHECK(path[0] == "/tmp/trafficid-cli");
  CHECK(path[1] == "/tmp/trafficid-a");
  CHECK(path[2] == "/tmp/trafficid-b");
  CHECK(path[3] == builtin_plugin_dir());
  CHECK(std::find(path.begin(), path.end(), fs::current_path()) == path.end());
}

TEST_CASE("a relative folder in TRAFFICID_PLUGIN_PATH is refused, one on the command line is made absolute",
          "[registry]") {
  ::setenv("TRAFFICID_PLUGIN_PATH", "/tmp/trafficid-a:plugins", 1);
  try {
    plugin_search_path({});
    ::unsetenv("TRAFFICID_PLUGIN_PATH");
    FAIL("a relative TRAFFICID_PLUGIN_PATH entry was accepted");
  } catch (const Error& e) {
    ::unsetenv("TRAFFICID_PLUGIN_PATH");
    CHECK_THAT(std::string(e.what()), Catch::Contains("TRAFFICID_PLUGIN_PATH holds the relative folder 'plugins'"));
  }
  auto path = plugin_search_path({"my-plugins"});
  REQUIRE(path.size() == 2);
  CHECK(path[0] == fs::current_path() / "my-plugins");
}

TEST_CASE("plugin file names: trafficid_<kind>_<name>.so and nothing else", "[registry]") {
  CHECK(plugin_file_name("trafficid_model_cnn.so") == std::make_pair(std::string("model"), std::string("cnn")));
  CHECK(plugin_file_name("trafficid_features_flow_start.so") ==
        std::make_pair(std::string("features"), std::string("flow_start")));
  CHECK_FALSE(plugin_file_name("libtorch.so"));
  CHECK_FALSE(plugin_file_name("trafficid_model_cnn.so.1"));
  CHECK_FALSE(plugin_file_name("trafficid_widget_x.so"));
  CHECK_FALSE(plugin_file_name("trafficid_model_.so"));
}

TEST_CASE("plugins the cache describes load their code only when an object of theirs is made", "[registry]") {
  const fs::path dir = test_support::temp_dir("plugin-cache");
  const fs::path plugins = dir / "plugins";
  fs::create_directories(plugins);
  for (const char* name : {"trafficid_capture_synth.so", "trafficid_labeler_ndpi.so", "trafficid_tuner_grid.so"})
    fs::copy_file(fs::path(TRAFFICID_PLUGIN_DIR) / name, plugins / name);
  ::setenv("TRAFFICID_PLUGIN_CACHE", (dir / "plugins.json").c_str(), 1);
  PluginRegistry loaded, cached;
  loaded.load_directories({plugins});  // loads each, describes it in the cache
  REQUIRE(fs::exists(dir / "plugins.json"));
  cached.load_directories({plugins});
  REQUIRE(loaded.plugins().size() == 3);
  REQUIRE(cached.plugins().size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    const PluginInfo& a = *loaded.plugins()[i];
    const PluginInfo& b = *cached.plugins()[i];
    CHECK(a.descriptor != nullptr);
    CHECK(b.descriptor == nullptr);  // not loaded
    CHECK(plugin_json(a, true) == plugin_json(b, true));
    CHECK(encode_schema(a.schema) == encode_schema(b.schema));  // every field, not only what is shown
  }
  // Its first object loads it.
  HostLog log;
  const PluginInfo* synth = cached.find(PluginKind::capture, "synth");
  REQUIRE(synth);
  Json params = {{"seed", 3}, {"flows_per_app", 1}, {"apps", {"dns"}}, {"clients", 1}};
  auto source = cached.create<CaptureSource>(*synth, params, log, "synth");
  CHECK(synth->descriptor != nullptr);
  PacketView packet;
  int packets = 0;
  while (source->next(packet)) ++packets;
  CHECK(packets == 4);
  // A file that changed is loaded again, not taken from the cache.
  fs::last_write_time(plugins / "trafficid_tuner_grid.so",
                      fs::last_write_time(plugins / "trafficid_tuner_grid.so") + std::chrono::seconds(5));
  PluginRegistry after;
  after.load_directories({plugins});
  CHECK(after.find(PluginKind::tuner, "grid")->descriptor != nullptr);
  CHECK(after.find(PluginKind::capture, "synth")->descriptor == nullptr);
  // A cache that is not one is ignored.
  std::ofstream(dir / "plugins.json") << "{not json";
  PluginRegistry damaged;
  damaged.load_directories({plugins});
  CHECK(damaged.plugins().size() == 3);
  CHECK(damaged.problems().empty());
  ::unsetenv("TRAFFICID_PLUGIN_CACHE");
  source.reset();
  fs::remove_all(dir);
}
