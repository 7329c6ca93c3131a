#include "commands.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/std.h>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "capture_stage.hpp"
#include "dataset_builder.hpp"
#include "dataset_stage.hpp"
#include "study.hpp"
#include "report.hpp"
#include "scoring.hpp"
#include "train_stage.hpp"
#include "experiment.hpp"
#include "file_lock.hpp"
#include "host_log.hpp"
#include "label_stage.hpp"
#include "plugin_registry.hpp"
#include "schema_check.hpp"
#include "trafficid/files.hpp"
#include "trafficid/pcap_writer.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

PluginRegistry load_plugins(const GlobalOptions& global, bool report_problems, bool model_plugins) {
  PluginRegistry registry;
  registry.load_directories(plugin_search_path(global.plugin_paths), model_plugins);
  if (report_problems)
    for (const auto& p : registry.problems()) std::cerr << "warning: plugin " << p.file.string() << ": " << p.message << '\n';
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
                                std::string(width[3], '-'), std::string(std::max<std::size_t>(header[4].size(), 4), '-')});
  for (const auto& r : rows) line(r);
  return out;
}

Json plugin_json(const PluginInfo& p, bool with_schema) {
  Json j{{"kind", to_string(p.kind)}, {"name", p.name}, {"version", p.version}, {"file", p.file.string()},
         {"description", p.description}};
  if (!p.primary_param.empty()) j["primary_param"] = p.primary_param;
  if (with_schema) j["parameters"] = schema_json(p.schema);
  return j;
}

void print_diagnostics(const Diagnostics& diagnostics) {
  for (const auto& d : diagnostics.sorted()) std::cerr << d.format() << '\n';
}


std::string timestamp_now() {
  return fmt::format("{:%Y%m%d-%H%M%S}", fmt::localtime(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now())));
}

// A run folder and the lock that makes this process its only writer (held until the run ends).
struct RunFolder {
  fs::path path;
  FileLock lock;
};

RunFolder make_run_dir(const Experiment& experiment, const std::string& requested) {
  fs::path dir = requested;
  std::error_code ec;
  auto cannot = [&](const fs::path& d) {
    return Error(fmt::format("cannot create run folder {}: {} (choose another with --run-dir or experiment.output_dir)",
                             d.string(), ec.message()));
  };
  if (dir.empty()) {
    // A new folder of its own: created atomically (mkdir fails on one that exists), so two runs
    // started in the same second take -2, -3, ... and never share one.
    const fs::path base = experiment.output_dir / fmt::format("{}-{}", experiment.name, timestamp_now());
    fs::create_directories(experiment.output_dir, ec);
    if (ec) throw cannot(experiment.output_dir);
    dir = base;
    for (int n = 2; !fs::create_directory(dir, ec); ++n) {
      if (ec) throw cannot(dir);
      dir = base.string() + "-" + std::to_string(n);
    }
  } else {
    fs::create_directories(dir, ec);
    if (ec) throw cannot(dir);
  }
  // One writer per run folder: a second `run --run-dir` or `run --resume` of a folder that a live
  // process is writing stops here (the lock goes with the process, also on kill -9).
  FileLock lock = FileLock::try_take(dir / "run.lock");
  if (!lock.held())
    throw Error(fmt::format("{}: another trafficid process is running in this folder (it holds {}); wait for it to end, "
                            "or stop it, then `trafficid run --resume {}`", dir.string(), (dir / "run.lock").string(),
                            dir.string()));
  return {dir, std::move(lock)};
}

// What a run's models were trained on: each dataset's config hash and the content of each input.
Json dataset_identity(const DatasetManifest& m) {
  Json inputs = Json::array();
  for (const auto& i : m.inputs)
    inputs.push_back({{"path", i.path}, {"sha256", i.sha256}, {"size", i.size}});
  return {{"config_hash", m.config_hash}, {"inputs", inputs}};
}

// A dataset models can learn from: two classes with training samples at least, and a validation
// split (early stopping, the best epoch, the abstention threshold and the best model are chosen
// on it). Otherwise an Error that says what the dataset holds and what to change.
void check_trainable(const DatasetManifest& m, const fs::path& folder, const fs::path& experiment) {
  std::vector<std::string> trained;
  std::uint64_t train_rows = 0, validation_rows = 0;
  for (std::size_t c = 0; c < m.class_names.size(); ++c) {
    const auto n = m.counts.count("train") ? m.counts.at("train")[c] : 0;
    train_rows += n;
    if (n > 0) trained.push_back(fmt::format("{} ({})", m.class_names[c], n));
    if (m.counts.count("validation")) validation_rows += m.counts.at("validation")[c];
  }
  auto excluded = [&](const char* why) { return m.excluded.count(why) ? m.excluded.at(why) : std::uint64_t{0}; };
  if (trained.size() < 2)
    throw Error(fmt::format("{}: the training split holds {} sample(s) in {} class(es){}{}: a classifier needs two classes "
                            "at least; {} samples had no class. Check capture.sources (do the captures hold IP traffic?), "
                            "label.classes and label.unmatched in {}", folder.string(), train_rows, trained.size(),
                            trained.empty() ? "" : ": ", fmt::join(trained, ", "), excluded("no_class"), experiment.string()));
  if (validation_rows == 0)
    throw Error(fmt::format("{}: the validation split is empty ({} training samples): early stopping, the best epoch and "
                            "the best model are chosen on it. Give it a share in dataset.fractions, or more captures "
                            "(split = \"file\" puts whole captures in it) in {}", folder.string(), train_rows,
                            experiment.string()));
}

// The first time: RUN_DIR/inputs.json records the identity. On a resume: the datasets must be
// those the run began on, or checkpoints and finished models would be of another dataset than
// what is trained and tested now (one report, two datasets).
void check_run_inputs(const fs::path& dir, const Json& now) {
  const fs::path file = dir / "inputs.json";
  if (!fs::exists(file)) {
    write_file_atomically(file, now.dump(2));
    return;
  }
  const Json then = Json::parse(std::ifstream(file));
  if (then == now) return;
  std::string what;
  for (const auto& [name, identity] : now.items()) {
    if (!then.contains(name)) {
      what = fmt::format("the run had no {} dataset", name);
      break;
    }
    const Json& old = then[name];
    if (old.value("config_hash", "") != identity.value("config_hash", "")) {
      what = fmt::format("the {} dataset's config changed", name);
      break;
    }
    std::map<std::string, Json> before;
    for (const auto& i : old["inputs"]) before[i.value("path", "")] = i;
    for (const auto& i : identity["inputs"]) {
      auto it = before.find(i.value("path", ""));
      if (it == before.end()) what = fmt::format("{} is a new input of the {} dataset", i.value("path", ""), name);
      else if (it->second != i)
        what = fmt::format("{} changed (sha256 {} then, {} now)", it->first, it->second.value("sha256", ""), i.value("sha256", ""));
      if (it != before.end()) before.erase(it);
      if (!what.empty()) break;
    }
    if (what.empty() && !before.empty()) what = fmt::format("{} is no longer an input of the {} dataset", before.begin()->first, name);
    if (!what.empty()) break;
  }
  if (what.empty()) what = "the datasets differ";
  throw Error(fmt::format("{}: not resumed: {} since this run began ({}), so its checkpoints and finished models belong to "
                          "another dataset; start a new run (`trafficid run EXPERIMENT`) or put the inputs back",
                          dir.string(), what, file.string()));
}

int finish_run(const fs::path& dir, Json& run_record, HostLog& log, std::chrono::steady_clock::time_point started) {
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  run_record["seconds"] = seconds;
  run_record["warnings"] = log.warnings();
  write_file_atomically(dir / "run.json", run_record.dump(2));
  log.info(fmt::format("run folder: {} ({:.2f} s, {} warning{})", dir.string(), seconds, log.warnings(), log.warnings() == 1 ? "" : "s"));
  return run_record["status"] == "interrupted" ? 130 : 0;
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
      for (const auto& p : registry.problems()) out["problems"].push_back({{"file", p.file.string()}, {"message", p.message}});
      std::cout << out.dump(2) << '\n';
      return 0;
    }
    std::vector<std::array<std::string, 5>> rows;
    for (const auto& p : registry.plugins())
      rows.push_back({to_string(p->kind), p->name, p->version, p->file.string(), p->description});
    std::sort(rows.begin(), rows.end());
    std::cout << table({"KIND", "NAME", "VERSION", "FILE", "DESCRIPTION"}, rows);
    if (registry.plugins().empty()) std::cout << "(no plugins found; searched: " << fmt::format("{}", fmt::join(plugin_search_path(global.plugin_paths), ", ")) << ")\n";
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

int run_one(const GlobalOptions& global, const std::string& file, const std::vector<std::string>& overrides,
            const std::string& run_dir, bool json, bool rebuild, bool train, const std::string& variant,
            const TrialRequest* trial = nullptr);

namespace {

// RUN_DIR/config.resolved.toml: the experiment with every default filled in; returns its text.
std::string write_resolved_config(const fs::path& dir, const std::string& file, const Experiment& experiment) {
  std::ostringstream text;
  text << "# Resolved configuration of " << fs::absolute(file).string() << "\n# every default filled in; "
       << "`trafficid run` on this file repeats the run"
       << (experiment.variant_names.empty() ? "" : ", each variant in a folder of its own") << ".\n\n"
       << experiment.resolved_toml() << '\n';
  write_file_atomically(dir / "config.resolved.toml", text.str());
  return text.str();
}

// RUN_DIR/run.json as a run starts; `parts` names what the run fills in as it goes ("stages", "variants").
Json start_run_record(const fs::path& dir, const std::string& file, const Experiment& experiment, const char* parts,
                      Json empty) {
  Json record{{"experiment", fs::absolute(file).string()}, {"name", experiment.name}, {"started", timestamp_now()},
              {"status", "running"}, {parts, std::move(empty)}, {"config", experiment.resolved}};
  write_file_atomically(dir / "run.json", record.dump(2));
  return record;
}

// An experiment with [variants]: each variant runs into RUN_DIR/NAME as a run of its own, then
// RUN_DIR/report.html compares them. `run --resume RUN_DIR` runs them again in the same folders,
// where finished variants and models are kept.
int run_variants(const GlobalOptions& global, const Experiment& experiment, const std::string& file,
                 const std::vector<std::string>& overrides, const std::string& run_dir, bool rebuild, bool train) {
  RunFolder folder = make_run_dir(experiment, run_dir);
  const fs::path& dir = folder.path;
  HostLog log(log_threshold(global));
  log.open_file(dir / "run.log");
  write_resolved_config(dir, file, experiment);
  auto started = std::chrono::steady_clock::now();
  Json run_record = start_run_record(dir, file, experiment, "variants", Json::object());
  log.info(fmt::format("run {} of {} in {}: {} variants ({})", experiment.name, file, dir.string(),
                       experiment.variant_names.size(), fmt::join(experiment.variant_names, ", ")));
  std::vector<fs::path> finished;
  std::string status = "done";
  for (const auto& name : experiment.variant_names) {
    log.info(fmt::format("variant {}: {}", name, (dir / name).string()));
    const int rc = run_one(global, file, overrides, (dir / name).string(), false, rebuild, train, name);
    run_record["variants"][name] = {{"folder", name}, {"exit_status", rc}};
    if (rc == 130) {
      status = "interrupted";
      break;
    }
    if (rc != 0) status = "failed";
    else finished.push_back(dir / name);
    write_file_atomically(dir / "run.json", run_record.dump(2));
  }
  if (train && !finished.empty() && status != "interrupted") {
    write_comparison_report(dir / "report.html", finished, fmt::format("trafficid run: {}, {} variants", experiment.name,
                                                                       experiment.variant_names.size()));
    log.info(fmt::format("report: {}", (dir / "report.html").string()));
  }
  run_record["status"] = status;
  if (status == "interrupted")
    log.warn(fmt::format("interrupted: `trafficid run --resume {}` continues with the variant that was running", dir.string()));
  int rc = finish_run(dir, run_record, log, started);
  return status == "failed" ? 1 : rc;
}

}  // namespace

int cmd_run(const GlobalOptions& global, const std::string& file, const std::vector<std::string>& overrides,
            const std::string& run_dir, bool json, bool rebuild, bool train, const TrialRequest* trial) {
  return run_one(global, file, overrides, run_dir, json, rebuild, train, "", trial);
}

int run_one(const GlobalOptions& global, const std::string& file, const std::vector<std::string>& overrides,
            const std::string& run_dir, bool json, bool rebuild, bool train, const std::string& variant,
            const TrialRequest* trial) {
  auto registry = load_plugins(global);
  auto experiment = checked_experiment(registry, file, overrides, variant);
  if (!experiment) {
    std::cerr << file << ": not run (`trafficid validate` checks an experiment without running it)\n";
    return 2;
  }
  install_stop_handlers();
  if (!experiment->variant_names.empty()) return run_variants(global, *experiment, file, overrides, run_dir, rebuild, train);
  RunFolder folder = make_run_dir(*experiment, run_dir);
  const fs::path& dir = folder.path;
  HostLog log(log_threshold(global));
  log.open_file(dir / "run.log");
  log.set_threads(std::max(1u, std::thread::hardware_concurrency()));
  log.set_work_dir(dir);

  const std::string resolved = write_resolved_config(dir, file, *experiment);
  log.info(fmt::format("run {} of {} in {}", experiment->name, file, dir.string()));

  auto started = std::chrono::steady_clock::now();
  Json run_record = start_run_record(dir, file, *experiment, "stages", Json::array());
  // The stages after the dataset: models trained and tested, then the report.
  // A tuning trial reports each epoch to its study (which may stop it) and skips the test split.
  std::unique_ptr<Study> study;
  TrialContext trial_context;
  if (trial) {
    study = std::make_unique<Study>(trial->study_dir, registry, log, std::nullopt);
    auto header = study->read().header;
    trial_context = {study.get(), trial->trial, header.metric, header.space.maximize};
  }
  auto train_and_report = [&](const fs::path& dataset, const fs::path* evaluation) {
    if (!train || experiment->models.empty()) return;
    auto models = run_train_stage(*experiment, registry, log, dataset, dir, trial ? &trial_context : nullptr, evaluation);
    if (models.value("status", "") == "interrupted") {
      run_record["status"] = "interrupted";
      log.warn(fmt::format("interrupted: `trafficid run --resume {}` continues from the last finished epoch", dir.string()));
      return;
    }
    run_record["stages"].push_back({{"name", "train"}, {"output", "models/"}});
    if (trial) {
      run_record["trial"] = models;
      return;
    }
    run_record["models"] = models;
    run_record["best_model"] = best_model_name(models);
    write_report(dir, run_record, models, resolved);
    run_record["stages"].push_back({{"name", "report"}, {"output", "report.html"}});
    log.info(fmt::format("report: {}", (dir / "report.html").string()));
  };
  auto add_stages = [&](const Json& stages) {
    for (const auto& s : stages) run_record["stages"].push_back(s);
  };
  auto interrupted = [&] {
    run_record["status"] = "interrupted";
    return finish_run(dir, run_record, log, started);
  };
  try {
    if (!experiment->features) {
      // Capture (and labels) only: no dataset.
      fs::create_directories(dir / "capture");
      log.info("stage capture: " + fmt::format("{}", fmt::join(experiment->sources | std::views::transform([](const SourceSpec& s) { return s.instance; }), ", ")));
      std::unique_ptr<LabelStage> label_stage;
      if (experiment->label) label_stage = std::make_unique<LabelStage>(*experiment->label, registry, log, dir / "label");
      PacketObserver observer;
      if (label_stage) observer = [&](const PacketView& p, const CaptureSource& s, std::size_t i) { label_stage->on_packet(p, s, i); };
      auto summary = run_capture_stage(experiment->sources, experiment->max_packets, registry, log, observer);
      auto summary_json = to_json(summary);
      write_file_atomically(dir / "capture" / "summary.json", summary_json.dump(2));
      log.info("stage capture done: " + format_summary(summary));
      run_record["stages"].push_back({{"name", "capture"}, {"output", "capture/summary.json"}});
      if (label_stage) {
        log.info(describe_labels(label_stage->finish()));
        run_record["stages"].push_back({{"name", "label"}, {"output", "label/classes.json"}});
      }
      run_record["status"] = summary.stopped_early ? "interrupted" : "done";
      if (json) std::cout << summary_json.dump(2) << '\n';
      return finish_run(dir, run_record, log, started);
    }
    // The dataset, reused when nothing it depends on changed; then the evaluation dataset.
    DatasetJob job{"dataset", plan_dataset(*experiment), &experiment->sources, experiment->max_packets, *experiment->label,
                   nullptr, dir};
    auto outcome = obtain_dataset(job, *experiment, registry, log, dir, rebuild);
    add_stages(outcome.stages);
    if (!outcome.manifest) return interrupted();
    run_record["dataset"] = dataset_summary(*outcome.manifest);
    log.info((outcome.reused ? "" : "stage dataset done: ") + describe_dataset(*outcome.manifest));
    // Before the evaluation dataset is built: a dataset no model can learn from stops the run here.
    if (train && !experiment->models.empty()) check_trainable(*outcome.manifest, job.plan.folder, experiment->file);
    Json identity = {{"dataset", dataset_identity(*outcome.manifest)}};
    std::optional<fs::path> evaluation;
    if (experiment->evaluate && !trial) {
      EvaluationTarget target = evaluation_target(job.plan.folder);
      target.keep_unknown = experiment->evaluate->unknown;
      LabelSpec label = *experiment->label;
      label.class_from = "map";  // evaluation captures are not sorted into folders by class
      DatasetJob eval{"evaluation", plan_evaluation_dataset(*experiment, job.plan), &experiment->evaluate->sources,
                      experiment->evaluate->max_packets, std::move(label), &target, dir / "evaluate"};
      auto evaluated = obtain_dataset(eval, *experiment, registry, log, dir, rebuild);
      add_stages(evaluated.stages);
      if (!evaluated.manifest) return interrupted();
      run_record["evaluation"] = dataset_summary(*evaluated.manifest);
      identity["evaluation"] = dataset_identity(*evaluated.manifest);
      log.info(fmt::format("{}evaluation captures: {}", evaluated.reused ? "" : "stage evaluation done: ",
                           describe_dataset(*evaluated.manifest)));
      evaluation = eval.plan.folder;
    }
    check_run_inputs(dir, identity);
    run_record["status"] = "done";
    train_and_report(job.plan.folder, evaluation ? &*evaluation : nullptr);
    if (json) std::cout << run_record.dump(2) << '\n';
  } catch (const Error& e) {
    log.log(LogLevel::error, e.what());
    run_record["status"] = "failed";
    run_record["error"] = e.what();
    write_file_atomically(dir / "run.json", run_record.dump(2));
    return 1;
  }
  return finish_run(dir, run_record, log, started);
}

int cmd_report(const GlobalOptions& global, const std::vector<std::string>& run_dirs, const std::string& out) {
  std::vector<fs::path> dirs(run_dirs.begin(), run_dirs.end());
  write_comparison_report(out, dirs, fmt::format("trafficid: {} runs compared", dirs.size()));
  if (!global.quiet) std::cerr << fmt::format("report: {} ({} runs)\n", out, dirs.size());
  return 0;
}

int cmd_synth(const GlobalOptions& global, const std::string& out, const std::vector<std::string>& params) {
  auto registry = load_plugins(global, true, false);
  const PluginInfo* plugin = registry.find(PluginKind::capture, "synth");
  if (!plugin) throw Error("the synth capture plugin is not installed (`trafficid plugins` lists what is)");
  auto resolved = plugin_params_from_cli(*plugin, params);
  if (!resolved) return 2;
  HostLog log(log_threshold(global));
  auto source = registry.create<CaptureSource>(*plugin, *resolved, log, "synth");
  std::unique_ptr<PcapWriter> writer;
  PacketView packet;
  fs::path temporary = out + ".part";
  std::uint32_t link_type = 0;
  while (guarded(*plugin, [&] { return source->next(packet); })) {
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
  const PluginInfo* plugin = registry.find(PluginKind::capture, "pcap");
  if (!plugin) throw Error("the pcap capture plugin is not installed (`trafficid plugins` lists what is)");
  HostLog log(LogLevel::error);  // warnings are part of the output below
  Json params = schema_defaults(plugin->schema);
  params["paths"] = Json::array();
  for (const auto& p : paths) params["paths"].push_back(fs::absolute(p).lexically_normal().string());
  auto source = registry.create<CaptureSource>(*plugin, params, log, "pcap");
  CaptureSummary summary;
  FlowCounter flows;
  read_source(*source, *plugin, log, 0, summary, flows);
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
  bool damaged = std::any_of(summary.files.begin(), summary.files.end(), [](const SourceFileInfo& f) { return !f.warning.empty(); });
  return damaged ? 1 : 0;
}

}  // namespace trafficid::host
