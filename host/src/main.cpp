#include <CLI/CLI.hpp>
#include <iostream>

#include "commands.hpp"
#include "trafficid/error.hpp"

int main(int argc, char** argv) {
  using namespace trafficid::host;
  CLI::App app{"trafficid: identify network traffic with deep learning.\n"
               "Plugins come from --plugin-path, TRAFFICID_PLUGIN_PATH (colon-separated) and the host's own folder."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("trafficid ") + TRAFFICID_VERSION);
  GlobalOptions global;
  app.add_option("--plugin-path", global.plugin_paths, "folder of plugin .so files (repeatable, or colon-separated)")
      ->type_name("DIR");
  app.add_flag("-v,--verbose", global.verbose, "also print debug messages");
  app.add_flag("-q,--quiet", global.quiet, "print warnings and errors only");

  std::string name, file, run_dir, out;
  std::vector<std::string> overrides, params, paths;
  bool json = false;

  auto* plugins = app.add_subcommand("plugins", "list plugins, or show one plugin's parameters");
  plugins->add_option("name", name, "plugin name: print its parameter table");
  plugins->add_flag("--json", json, "machine-readable output");

  auto* validate = app.add_subcommand("validate", "check an experiment against the plugins' schemas");
  validate->add_option("experiment", file, "experiment TOML file")->required();
  validate->add_option("--set", overrides, "override a value: key.path=value (repeatable)")->type_name("K=V");
  validate->add_flag("--json", json, "print the resolved config as JSON");

  auto* run = app.add_subcommand("run", "validate an experiment, then run its stages into a run folder");
  run->add_option("experiment", file, "experiment TOML file")->required();
  run->add_option("--set", overrides, "override a value: key.path=value (repeatable)")->type_name("K=V");
  run->add_option("--run-dir", run_dir, "run folder (default: OUTPUT_DIR/NAME-TIMESTAMP)");
  run->add_flag("--json", json, "print the run's summary as JSON on stdout");

  auto* synth = app.add_subcommand("synth", "write the embedded synthetic capture (real protocol exchanges) to a pcap file");
  synth->add_option("--out,-o", out, "pcap file to write")->required();
  synth->add_option("--param,-p", params, "synth plugin parameter: name=value (see `trafficid plugins synth`)")
      ->type_name("K=V");

  auto* info = app.add_subcommand("info", "read capture files and print what they hold (like capinfos)");
  info->add_option("paths", paths, "capture files or folders")->required();
  info->add_flag("--json", json, "machine-readable output");

  CLI11_PARSE(app, argc, argv);
  try {
    if (*plugins) return cmd_plugins(global, name, json);
    if (*validate) return cmd_validate(global, file, overrides, json);
    if (*run) return cmd_run(global, file, overrides, run_dir, json);
    if (*synth) return cmd_synth(global, out, params);
    if (*info) return cmd_info(global, paths, json);
  } catch (const trafficid::Error& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: unexpected failure: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
