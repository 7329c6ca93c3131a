#include "cli/commands.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fmt/std.h>
#include <fstream>
#include <iostream>
#include <thread>

#include "config/experiment.hpp"
#include "config/schema_check.hpp"
#include "pipeline/capture_stage.hpp"
#include "pipeline/pipeline.hpp"
#include "report/report.hpp"
#include "runtime/host_log.hpp"
#include "runtime/plugin_registry.hpp"
#include "serve/server.hpp"
#include "trafficid/files.hpp"
#include "trafficid/pcap_writer.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

PluginRegistry load_plugins(const GlobalOptions& global, bool report_problems, bool model_plugins) {
  PluginRegistry registry;
  registry.load_directories(plugin_search_path(global.plugin_paths), model_plugins);
  if (report_problems)
    for (const auto& p : registry.problems())
      std::cerr << "warning: plugin " << p.file.string() << ": " << p.message << '\n';
  return registry;
}

std::optional<Json> plugin_params_from_cli(const PluginInfo& plugin, const std::vector<std::string>& assignments) {
  toml::table document;
  Diagnostics diagnostics;
  diagnostics.set_default_file("--param");
  for (const auto& assignment : assignments) {
    try {
      apply_override(document, assignment);
    } catch (const Error& e) {
      std::cerr << "error: --param " << e.what() << '\n';
      return std::nullopt;
    }
  }
  CheckContext context{diagnostics, fs::current_path()};
  Json resolved = check_table(&document, plugin.schema, plugin.name, document.source(), context);
  for (const auto& d : diagnostics.sorted()) std::cerr << d.format() << '\n';
  if (diagnostics.has_errors()) return std::nullopt;
  return resolved;
}

LogLevel log_threshold(const GlobalOptions& global) {
  return global.verbose ? LogLevel::debug : global.quiet ? LogLevel::warning : LogLevel::info;
}

namespace {

std::string default_text(const ParamSpec& spec) {
  if (spec.default_value.is_null()) return spec.optional ? "(none)" : "(required)";
  if (spec.type == ParamType::table) return "";
  return spec.default_value.dump();
}

void schema_rows(const Schema& schema, const std::string& prefix, std::vector<std::array<std::string, 5>>& rows) {
  for (const auto& spec : schema) {
    std::string name = prefix + spec.name + (spec.type == ParamType::table_list ? "[]" : "");
    rows.push_back({name, to_string(spec.type), default_text(spec), describe_constraint(spec), spec.help});
    if (!spec.fields.empty()) schema_rows(spec.fields, name + ".", rows);
  }
}

std::string table(const std::vector<std::string>& header, const std::vector<std::array<std::string, 5>>& rows) {
  std::array<std::size_t, 5> width{};
  for (std::size_t i = 0; i < 5; ++i) width[i] = header[i].size();
  for (const auto& r : rows)
    for (std::size_t i = 0; i < 4; ++i) width[i] = std::max(width[i], r[i].size());
  std::string out;
  auto line = [&](const auto& cells) {
    for (std::size_t i = 0; i < 4; ++i) out += fmt::format("{:<{}}  ", cells[i], width[i]);
    out += std::string(cells[4]) + "\n";
  };
  line(header);
  line(std::vector<std::string>{std::string(width[0], '-'), std::string(width[1], '-'), std::string(width[2], '-'),
                                std::string(width[3], '-'),
                                std::string(std::max<std::size_t>(header[4].size(), 4), '-')});
  for (const auto& r : rows) line(r);
  return out;
}

void print_diagnostics(const Diagnostics& diagnostics) {
  for (const auto& d : diagnostics.sorted()) std::cerr << d.format() << '\n';
}

}  // namespace

// Loads and checks an experiment, printing every diagnostic and, when it is invalid, the count.
std::optional<Experiment> checked_experiment(const PluginRegistry& registry, const std::string& file,
                                             const std::vector<std::string>& overrides, const std::string& variant) {
  if (!fs::is_regular_file(file)) {
    std::cerr << "error: experiment file " << file << " does not exist or is not a file\n";
    return std::nullopt;
  }
  Diagnostics diagnostics;
  auto experiment = load_experiment(file, overrides, registry, diagnostics, variant);
  print_diagnostics(diagnostics);
  if (!experiment) {
    std::size_t errors = 0;
    for (const auto& d : diagnostics.all()) errors += !d.warning;
    std::cerr << fmt::format("{}: {} error{}\n", file, errors, errors == 1 ? "" : "s");
  }
  return experiment;
}

int cmd_plugins(const GlobalOptions& global, const std::string& name, bool json) {
  auto registry = load_plugins(global, !json);
  if (name.empty()) {
    if (json) {
      Json out{{"plugins", Json::array()}, {"problems", Json::array()}};
      for (const auto& p : registry.plugins()) out["plugins"].push_back(plugin_json(*p, false));
      for (const auto& p : registry.problems())
        out["problems"].push_back({{"file", p.file.string()}, {"message", p.message}});
      std::cout << out.dump(2) << '\n';
      return 0;
    }
    std::vector<std::array<std::string, 5>> rows;
    for (const auto& p : registry.plugins())
      rows.push_back({to_string(p->kind), p->name, p->version, p->file.string(), p->description});
    std::sort(rows.begin(), rows.end());
    std::cout << table({"KIND", "NAME", "VERSION", "FILE", "DESCRIPTION"}, rows);
    if (registry.plugins().empty())
      std::cout << "(no plugins found; searched: "
                << fmt::format("{}", fmt::join(plugin_search_path(global.plugin_paths), ", ")) << ")\n";
    return 0;
  }
  auto found = registry.find_any(name);
  if (found.empty()) {
    std::vector<std::string> names;
    for (const auto& p : registry.plugins()) names.push_back(p->name);
    std::cerr << "error: no plugin named '" << name << "'" << did_you_mean(name, names)
              << " (`trafficid plugins` lists them)\n";
    return 2;
  }
  if (json) {
    Json out = Json::array();
    for (const auto* p : found) out.push_back(plugin_json(*p, true));
    std::cout << (out.size() == 1 ? out[0] : out).dump(2) << '\n';
    return 0;
  }
  for (const auto* p : found) {
    std::cout << fmt::format("{} {} {} — {}\nfile: {}\n", to_string(p->kind), p->name, p->version, p->description,
                             p->file.string());
    if (!p->primary_param.empty())
      std::cout << fmt::format("shorthand: '{}:VALUE' sets {}\n", p->name, p->primary_param);
    std::vector<std::array<std::string, 5>> rows;
    schema_rows(p->schema, "", rows);
    std::cout << '\n' << table({"PARAMETER", "TYPE", "DEFAULT", "RANGE / CHOICES", "HELP"}, rows) << '\n';
  }
  return 0;
}

int cmd_validate(const GlobalOptions& global, const std::string& file, const std::vector<std::string>& overrides,
                 bool json) {
  auto registry = load_plugins(global);
  auto experiment = checked_experiment(registry, file, overrides);
  if (!experiment) return 2;
  if (json) std::cout << experiment->resolved.dump(2) << '\n';
  else if (!global.quiet)
    std::cout << fmt::format("{}: valid ({} capture source{})\n", file, experiment->sources.size(),
                             experiment->sources.size() == 1 ? "" : "s");
  return 0;
}

int cmd_run(const GlobalOptions& global, RunRequest request) {
  request.plugin_paths = global.plugin_paths;
  Run run(std::move(request));
  run.events().subscribe(terminal_printer(log_threshold(global)));
  return run.execute();
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string self_command(const GlobalOptions& global) {
  std::string command = shell_quote(fs::canonical("/proc/self/exe").string());
  for (const auto& p : global.plugin_paths) command += " --plugin-path " + shell_quote(fs::absolute(p).string());
  return command;
}

void write_slurm_array(const SlurmArray& a) {
  const fs::path logs = fs::absolute(a.logs);
  // #SBATCH lines and comments are not shell-quoted: a path there must not end the line (or split it).
  for (const std::string& path : {logs.string(), a.script})
    if (auto bad = path.find_first_of("\n\r\t \"'\\%"); bad != std::string::npos)
      throw Error(
          fmt::format("{}: the path holds a character that a Slurm #SBATCH line cannot carry ({}): choose a path of "
                      "letters, digits and '/-_.'",
                      Json(path).dump(), Json(std::string(1, path[bad])).dump()));
  const std::string script = fmt::format(
      "#!/bin/bash\n"
      "{}"
      "#SBATCH --job-name={}\n"
      "#SBATCH --array=1-{}\n"
      "#SBATCH --ntasks=1\n"
      "#SBATCH --cpus-per-task={}\n"
      "#SBATCH --output={}/slurm-%A_%a.log\n"
      "set -euo pipefail\n"
      "cd {}\n"
      "exec {}\n",
      a.description, a.job_name, a.tasks, a.cpus, logs.string(), shell_quote(fs::current_path().string()), a.command);
  fs::create_directories(logs);
  write_file_atomically(a.script, script);
  fs::permissions(a.script, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
}

int cmd_worker(const GlobalOptions& global, const std::string& session_dir, const WorkerPlan& plan) {
  install_stop_handlers();
  PluginRegistry registry;
  registry.load_directories(plugin_search_path(global.plugin_paths), true);
  return follow_worker_session(session_dir, plan, registry);
}

int cmd_report(const GlobalOptions& global, const std::vector<std::string>& run_dirs, const std::string& out) {
  std::vector<fs::path> dirs(run_dirs.begin(), run_dirs.end());
  write_comparison_report(out, dirs, fmt::format("trafficid: {} runs compared", dirs.size()));
  if (!global.quiet) std::cerr << fmt::format("report: {} ({} runs)\n", out, dirs.size());
  return 0;
}

int cmd_serve(const GlobalOptions& global, ServeOptions options) {
  options.plugin_paths = global.plugin_paths;
  if (options.host != "127.0.0.1" && options.host != "localhost" && options.host != "::1")
    std::cerr << fmt::format(
        "warning: listening on {}: anyone who reaches it and has the token can run experiments in {}\n", options.host,
        fs::absolute(options.workspace).string());
  Server server(options);
  server.bind();
  std::cout << "serving " << server.url() << std::endl;
  install_stop_handlers();
  std::atomic<bool> served{false};
  std::thread watcher([&server, &served] {
    while (!stop_flag() && !served) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    server.stop();  // Ctrl-C: the runs it started end resumable
  });
  server.listen();
  served = true;
  watcher.join();
  return 0;
}

int cmd_synth(const GlobalOptions& global, const std::string& out, const std::vector<std::string>& params) {
  auto registry = load_plugins(global, true, false);
  const PluginInfo* plugin = registry.find(PluginKind::capture, "synth");
  if (!plugin) throw Error("the synth capture plugin is not installed (`trafficid plugins` lists what is)");
  auto resolved = plugin_params_from_cli(*plugin, params);
  if (!resolved) return 2;
  HostLog log(log_threshold(global));
  const auto source = registry.make<CaptureSource>(*plugin, *resolved, log, "synth");
  std::unique_ptr<PcapWriter> writer;
  PacketView packet;
  fs::path temporary = out + ".part";
  std::uint32_t link_type = 0;
  while (source([&](CaptureSource& s) { return s.next(packet); })) {
    if (!writer) {
      link_type = packet.link_type;
      writer = std::make_unique<PcapWriter>(temporary, link_type, true);
    }
    writer->write(packet.timestamp_ns, packet.data, packet.wire_length);
  }
  if (!writer) throw Error("the synth plugin produced no packets (check its parameters)");
  writer->close();
  fs::rename(temporary, out);
  log.info(fmt::format("{}: {} packets ({})", out, writer->packets(), linktype_name(link_type)));
  return 0;
}

int cmd_info(const GlobalOptions& global, const std::vector<std::string>& paths, bool json) {
  auto registry = load_plugins(global, true, false);
  HostLog log(LogLevel::error);  // warnings are part of the output below
  const SourceSpec spec = pcap_source(registry, paths);
  const auto source = registry.make<CaptureSource>(*spec.plugin, spec.params, log, spec.instance);
  CaptureSummary summary;
  FlowCounter flows;
  read_source(source, log, 0, summary, flows);
  summary.flows = flows.size();
  summary.sources = paths;
  if (json) {
    std::cout << to_json(summary).dump(2) << '\n';
  } else {
    for (const auto& f : summary.files) {
      std::vector<std::string> types;
      for (auto t : f.link_types) types.push_back(fmt::format("{} ({})", t, linktype_name(t)));
      std::cout << fmt::format("{}\n  format {}  link types {}  packets {}  bytes {}\n", f.path, f.format,
                               fmt::join(types, ", "), f.packets, f.bytes);
      if (!f.warning.empty()) std::cout << "  warning: " << f.warning << '\n';
    }
    std::cout << "total: " << format_summary(summary);
  }
  bool damaged = std::any_of(summary.files.begin(), summary.files.end(),
                             [](const SourceFileInfo& f) { return !f.warning.empty(); });
  return damaged ? 1 : 0;
}

}  // namespace trafficid::host
