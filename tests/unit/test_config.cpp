// Experiments are checked as a whole against the plugins' schemas; every problem is reported at
// once with FILE:LINE:COL, the dotted key path and, for typos, the nearest valid name.
#include <fstream>

#include "config/experiment.hpp"
#include "config/schema_check.hpp"
#include "test_support.hpp"

using namespace trafficid;
using namespace trafficid::host;
namespace fs = std::filesystem;

namespace {

const PluginRegistry& registry() { return test_support::built_plugins(); }

fs::path write_experiment(const std::string& name, const std::string& text) {
  static const auto dir = test_support::temp_dir("config");  // one folder for the whole process
  fs::create_directories(dir / "captures");
  auto file = dir / name;
  std::ofstream(file) << text;
  return file;
}

std::vector<std::string> formatted(const Diagnostics& d) {
  std::vector<std::string> out;
  for (const auto& x : d.sorted()) out.push_back(x.format());
  return out;
}

}  // namespace

TEST_CASE("edit distance and did-you-mean", "[config]") {
  CHECK(edit_distance("dropuot", "dropout") == 1);  // a transposition is one edit
  CHECK(edit_distance("synht", "synth") == 1);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(did_you_mean("flows_per_ap", {"seed", "flows_per_app", "apps"}) == " (did you mean 'flows_per_app'?)");
  CHECK(did_you_mean("completely_else", {"seed", "apps"}).empty());
}

TEST_CASE("every problem of an experiment is reported at once, in file order", "[config]") {
  auto file = write_experiment("bad.toml", R"([experiment]
name = "bad"
sede = 3

[capture]
sources = ["synht", "pcap:does-not-matter"]
max_packets = -5

[capture.synth]
flows_per_app = "many"
clients = 1000
apps = ["youtube", "netflx"]
colour = "blue"

[captures.cnn]
dropout = 0.1
)");
  Diagnostics diagnostics;
  auto experiment = load_experiment(file, {}, registry(), diagnostics);
  CHECK_FALSE(experiment.has_value());
  auto lines = formatted(diagnostics);
  const std::string f = file.string();
  std::vector<std::string> expected = {
      f + ":3:1: experiment.sede: unknown key (did you mean 'seed'?)",
      f + ":6:12: capture.sources.0: no capture plugin named 'synht' (did you mean 'synth'?) (installed: live, pcap, "
          "synth)",
      f + ":6:21: capture.pcap.paths.0: no such file or folder: " + (file.parent_path() / "does-not-matter").string() +
          " (relative paths start at the experiment file's folder)",
      f + ":7:15: capture.max_packets: -5 is out of range >= 0",
      f + ":10:17: capture.synth.flows_per_app: expected an integer, got string 'many'",
      f + ":11:11: capture.synth.clients: 1000 is out of range [1, 200]",
      f + ":12:20: capture.synth.apps.1: 'netflx' is not one of: youtube, netflix, whatsapp, zoom, wikipedia, dns, "
          "ssh, bittorrent, stun, ntp (did you mean 'netflix'?)",
      f + ":13:1: capture.synth.colour: unknown key",
      f + ":15:2: captures: unknown section (did you mean 'capture'?)",
  };
  // The synth table is not used by any source (synht is misspelt): that is a warning.
  std::vector<std::string> errors;
  for (const auto& d : diagnostics.sorted())
    if (!d.warning) errors.push_back(d.format());
  for (const auto& e : expected) CHECK(std::find(errors.begin(), errors.end(), e) != errors.end());
  CHECK(errors.size() == expected.size());
  INFO(Catch::Detail::stringify(lines));
}

TEST_CASE("a valid experiment resolves every default and path", "[config]") {
  auto file = write_experiment("ok.toml", R"([capture]
sources = ["synth", "pcap:captures"]
[capture.synth]
flows_per_app = 2
)");
  Diagnostics diagnostics;
  auto experiment = load_experiment(file, {}, registry(), diagnostics);
  REQUIRE(experiment.has_value());
  CHECK(experiment->name == "ok");  // from the file name
  CHECK(experiment->seed == 1);
  REQUIRE(experiment->sources.size() == 2);
  CHECK(experiment->sources[0].params.at("flows_per_app") == 2);
  CHECK(experiment->sources[0].params.at("clients") == 4);
  // The shorthand sets the main parameter, relative to the experiment's folder.
  CHECK(experiment->sources[1].params.at("paths") == Json::array({(file.parent_path() / "captures").string()}));
  CHECK(experiment->sources[1].params.at("recursive") == true);
  CHECK(experiment->resolved.at("experiment").at("output_dir") == "runs");  // outputs go where the user is
  // The resolved TOML holds the defaults and validates again as it is.
  std::ostringstream text;
  text << experiment->resolved_toml();
  auto again = write_experiment("again.toml", text.str());
  Diagnostics second;
  auto reloaded = load_experiment(again, {}, registry(), second);
  REQUIRE(reloaded.has_value());
  CHECK(reloaded->resolved.at("capture") == experiment->resolved.at("capture"));
  // ... from any folder (a run's own for --resume, a tuning trial's): its source names the
  // resolved path, not the relative one written.
  CHECK(experiment->resolved.at("capture").at("sources") ==
        Json::array({"synth", "pcap:" + (file.parent_path() / "captures").string()}));
  fs::create_directories(file.parent_path() / "elsewhere" / "deeper");
  auto moved = file.parent_path() / "elsewhere" / "deeper" / "again.toml";
  std::ofstream(moved) << text.str();
  Diagnostics third;
  auto from_elsewhere = load_experiment(moved, {}, registry(), third);
  REQUIRE(from_elsewhere.has_value());
  CHECK(from_elsewhere->sources[1].params.at("paths") == experiment->sources[1].params.at("paths"));
}

TEST_CASE("overrides from --set change values, create tables and report bad paths", "[config]") {
  auto file = write_experiment("set.toml", "[capture]\nsources = [\"synth\"]\n");
  Diagnostics diagnostics;
  auto experiment = load_experiment(
      file, {"capture.synth.seed=42", "capture.synth.apps=[\"dns\", \"ntp\"]", "experiment.name=renamed"}, registry(),
      diagnostics);
  REQUIRE(experiment.has_value());
  CHECK(experiment->sources[0].params.at("seed") == 42);
  CHECK(experiment->sources[0].params.at("apps") == Json::array({"dns", "ntp"}));
  CHECK(experiment->name == "renamed");

  Diagnostics bad;
  auto failed =
      load_experiment(file, {"capture.synth.seed=minus", "capture.sources.0.x=1", "novalue"}, registry(), bad);
  CHECK_FALSE(failed.has_value());
  auto lines = formatted(bad);
  REQUIRE(lines.size() == 3);
  CHECK_THAT(lines[0], Catch::StartsWith(
                           "--set:1:1: capture.sources.0.x: --set capture.sources.0.x: the parent of 'x' is a value"));
  CHECK_THAT(lines[1], Catch::StartsWith("--set:1:1: novalue: --set 'novalue': expected key.path=value"));
  CHECK(lines[2] == "--set:1:9: capture.synth.seed: expected an integer, got string 'minus'");
}

TEST_CASE("invalid TOML is reported with its position", "[config]") {
  auto file = write_experiment("syntax.toml", "[capture]\nsources = [\"synth\"\n");
  Diagnostics diagnostics;
  CHECK_FALSE(load_experiment(file, {}, registry(), diagnostics).has_value());
  auto lines = formatted(diagnostics);
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], Catch::StartsWith(file.string() + ":2:"));  // the array opened on line 2 never closes
  CHECK_THAT(lines[0], Catch::Contains("not valid TOML"));
}

TEST_CASE("the label section is checked like the rest: labeler, settings, class definitions", "[config]") {
  auto file = write_experiment("label.toml", R"([capture]
sources = ["synth"]
[label]
labeler = "ndpii"
class_from = "folder"
[label.classes]
Video = { pattern = ["*YouTube*"] }
Chat = "WhatsApp"
)");
  Diagnostics diagnostics;
  CHECK_FALSE(load_experiment(file, {}, registry(), diagnostics).has_value());
  const std::string f = file.string();
  std::vector<std::string> lines = formatted(diagnostics);
  std::vector<std::string> expected = {
      f + ":4:11: label.labeler: no labeler plugin named 'ndpii' (did you mean 'ndpi'?) (installed: ndpi)",
      f + ":5:14: label.class_from: 'folder' is not one of: map, directory, regex",
      f + ":7:11: label.classes.Video.pattern: unknown key (did you mean 'patterns'?)",
      f + ":8:8: label.classes.Chat: expected a table (apps, masters, categories, patterns) or a list of patterns",
  };
  for (const auto& e : expected) CHECK(std::find(lines.begin(), lines.end(), e) != lines.end());
  CHECK(lines.size() == expected.size());
  INFO(Catch::Detail::stringify(lines));

  auto ok = write_experiment("label-ok.toml", R"([capture]
sources = ["synth"]
[label]
[label.classes]
P2P = ["BitTorrent*"]
Secure = { masters = ["SSH"] }
[label.ndpi]
udp_max_packets = 30
)");
  Diagnostics fine;
  auto experiment = load_experiment(ok, {}, registry(), fine);
  REQUIRE(experiment.has_value());
  REQUIRE(experiment->label.has_value());
  CHECK(experiment->label->class_from == "map");
  CHECK(experiment->label->params.at("udp_max_packets") == 30);
  CHECK(experiment->label->params.at("tcp_max_packets") == 80);
  CHECK(experiment->label->map.classes().size() == 2);
  CHECK(experiment->resolved.at("label").at("classes").at("P2P").at("patterns") == Json::array({"BitTorrent*"}));
  // The list form resolves to the long form's table: config.resolved.toml (the long form) gives the
  // same config, so a resumed run finds its dataset unchanged.
  const Json& resolved = experiment->resolved.at("label").at("classes");
  CHECK(resolved.at("P2P") == Json({{"apps", Json::array()},
                                    {"categories", Json::array()},
                                    {"exclude", Json::array()},
                                    {"masters", Json::array()},
                                    {"patterns", {"BitTorrent*"}}}));
  CHECK(resolved.at("P2P").size() == resolved.at("Secure").size());
}

TEST_CASE("label groups: coarser classes from finer ones, each class in one group", "[config]") {
  const std::string head = R"([capture]
sources = ["synth"]
[label]
class_from = "directory"
)";
  auto good = write_experiment("groups.toml", head + R"([label.groups]
RemoteAccess = ["AnyDesk", "SSH"]
"Chat/IM" = ["WhatsApp"]
)");
  Diagnostics ok;
  auto experiment = load_experiment(good, {}, registry(), ok);
  REQUIRE(experiment.has_value());
  CHECK(experiment->label->group_of == std::map<std::string, std::string>{{"AnyDesk", "RemoteAccess"},
                                                                          {"SSH", "RemoteAccess"},
                                                                          {"WhatsApp", "Chat/IM"}});
  CHECK(experiment->resolved["label"]["groups"]["Chat/IM"] == Json::array({"WhatsApp"}));

  auto bad = write_experiment("groups-bad.toml", head + R"([label.groups]
RemoteAccess = ["AnyDesk", "SSH"]
Tunnels = ["SSH"]
Web = "QUIC"
)");
  Diagnostics diagnostics;
  CHECK_FALSE(load_experiment(bad, {}, registry(), diagnostics).has_value());
  const std::string f = bad.string();
  CHECK(formatted(diagnostics) ==
        std::vector<std::string>{
            f + ":7:11: label.groups.Tunnels: class 'SSH' is already in group 'RemoteAccess': a class belongs to one "
                "group",
            f + ":8:7: label.groups.Web: expected a list of class names, e.g. Web = [\"AnyDesk\", \"SSH\"]"});
}

TEST_CASE("[train] settings: defaults declared once, read typed by models and the host alike", "[config]") {
  // An empty [train] and a resolved one give the same settings: the schema's defaults.
  const auto defaults = trafficid::train_settings(trafficid::Json::object());
  CHECK(defaults.patience == 3);  // it was 0 in the LibTorch trainer and 3 in the host before
  CHECK(defaults.epochs == 10);
  CHECK(defaults.optimizer == "adam");
  CHECK(defaults.lr == Approx(1e-3));
  CHECK(defaults.class_weights);
  const auto set = trafficid::train_settings({{"patience", 0}, {"epochs", 4}, {"optimizer", "sgd"}});
  CHECK(set.patience == 0);
  CHECK(set.epochs == 4);
  CHECK(set.optimizer == "sgd");
  CHECK(set.batch_size == 64);
  CHECK_THROWS_WITH(trafficid::train_settings({{"epochs", "many"}}),
                    Catch::Contains("[train]: a setting of the wrong type"));
  // The host checks [train] against the same schema: every key of it has a default there.
  for (const auto& spec : trafficid::train_settings_schema()) CHECK_FALSE(spec.default_value.is_null());
}
