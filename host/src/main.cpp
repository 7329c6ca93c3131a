#include <CLI/CLI.hpp>
#include <iostream>

#include "commands.hpp"
#include "hashing.hpp"
#include "trafficid/error.hpp"

int main(int argc, char** argv) {
  using namespace trafficid::host;
  initialise_crypto();
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
  std::string resume;
  auto* experiment_option = run->add_option("experiment", file, "experiment TOML file");
  run->add_option("--resume", resume, "continue an interrupted run in RUN_DIR (its config.resolved.toml; finished "
                                      "models are kept, a model in training goes on from its last epoch)")
      ->type_name("RUN_DIR")
      ->excludes(experiment_option);
  run->add_option("--set", overrides, "override a value: key.path=value (repeatable)")->type_name("K=V");
  run->add_option("--run-dir", run_dir, "run folder (default: OUTPUT_DIR/NAME-TIMESTAMP)");
  run->add_flag("--json", json, "print the run's summary as JSON on stdout");
  bool rebuild = false;
  run->add_flag("--rebuild", rebuild, "build the dataset again even when an earlier one is current");
  TrialRequest trial;  // set by `trafficid tune` for the trial processes it starts
  run->add_option("--trial-of", trial.study_dir, "the study this run is a trial of")->group("");
  run->add_option("--trial-id", trial.trial, "the trial's number in that study")->group("");

  auto* tune = app.add_subcommand("tune", "tune an experiment's [tune] space: trials in processes of their own, a journal "
                                          "that survives crashes (run the same command again to go on), a study report");
  TuneRequest tune_request;
  tune->add_option("experiment", tune_request.file, "experiment TOML file with a [tune] section")->required();
  tune->add_option("--set", tune_request.overrides, "override a value: key.path=value (repeatable)")->type_name("K=V");
  tune->add_option("--study-dir", tune_request.study_dir, "the study's folder (default tune.study_dir, else OUTPUT_DIR/NAME-study)");
  tune->add_option("--parallel", tune_request.parallel, "trials this process runs at once (default tune.parallel)")
      ->check(CLI::Range(1, 256));
  tune->add_option("--emit-slurm", tune_request.emit_slurm, "write a Slurm job-array script of workers for this study, "
                                                            "and run nothing")->type_name("FILE");
  tune->add_option("--workers", tune_request.workers, "with --emit-slurm: the array's size (default tune.parallel)")
      ->check(CLI::Range(1, 100000));
  auto* predict = app.add_subcommand("predict", "classify captures (or a live interface) with a trained model: per flow or per packet");
  PredictRequest predict_request;
  predict->add_option("model", predict_request.model_dir, "a trained model's folder (RUN_DIR/models/NAME), or a run folder: "
                                                          "its best model by validation per-flow macro F1")->required();
  auto* predict_paths = predict->add_option("paths", predict_request.paths, "capture files or folders");
  auto* predict_interface = predict->add_option("-i,--interface", predict_request.interface, "a live interface instead of files");
  predict_paths->excludes(predict_interface);
  predict->add_option("--count", predict_request.count, "live: stop after this many packets");
  predict->add_option("--duration", predict_request.duration, "live: stop after this many seconds");
  predict->add_option("--format", predict_request.format, "csv or json")->check(CLI::IsMember({"csv", "json"}));
  predict->add_option("--level", predict_request.level, "flow (its samples decide: summed log-probabilities, or the "
                                                       "model's rule) or packet (every sample)")
      ->check(CLI::IsMember({"flow", "packet"}));
  auto* evaluate = app.add_subcommand("evaluate", "score trained models on labelled captures they never saw (per flow and "
                                                  "per sample, per class, confusion matrices): OUT/evaluation.json and .html");
  EvaluateRequest evaluate_request;
  evaluate->add_option("target", evaluate_request.target, "a run folder (all its models; variants too) or a model's folder "
                                                          "RUN_DIR/models/NAME")->required();
  evaluate->add_option("paths", evaluate_request.paths, "capture files or folders, labelled by the run's labeler and "
                                                        "classes from its [label.classes]")->required();
  evaluate->add_option("--set", evaluate_request.overrides, "override a value of the run's experiment: key.path=value "
                                                            "(evaluate.pcap.exclude=[\"fuzz*\"], evaluate.unknown=true)")
      ->type_name("K=V");
  evaluate->add_option("-o,--out", evaluate_request.out, "folder of the results (default RUN_DIR/evaluations/evaluation-TIMESTAMP)");
  auto* prepro = app.add_subcommand("prepro", "run an experiment's stages up to its dataset (capture, label, features)");
  prepro->add_option("experiment", file, "experiment TOML file")->required();
  prepro->add_option("--set", overrides, "override a value: key.path=value (repeatable)")->type_name("K=V");
  prepro->add_option("--run-dir", run_dir, "run folder (default: OUTPUT_DIR/NAME-TIMESTAMP)");
  prepro->add_flag("--rebuild", rebuild, "build the dataset again even when an earlier one is current");
  prepro->add_flag("--json", json, "print the run's summary as JSON on stdout");

  auto* report = app.add_subcommand("report", "compare runs side by side in one self-contained HTML page");
  std::vector<std::string> report_runs;
  std::string report_out = "comparison.html";
  report->add_option("runs", report_runs, "run folders (RUN_DIR made by `trafficid run`)")->required()->check(CLI::ExistingDirectory);
  report->add_option("-o,--out", report_out, "the page to write (default comparison.html)");

  auto* synth = app.add_subcommand("synth", "write the embedded synthetic capture (real protocol exchanges) to a pcap file");
  synth->add_option("--out,-o", out, "pcap file to write")->required();
  synth->add_option("--param,-p", params, "synth plugin parameter: name=value (see `trafficid plugins synth`)")
      ->type_name("K=V");

  auto* info = app.add_subcommand("info", "read capture files and print what they hold (like capinfos)");
  info->add_option("paths", paths, "capture files or folders")->required();
  info->add_flag("--json", json, "machine-readable output");

  auto* convert = app.add_subcommand("convert", "convert pcapng to pcap or pcap to pcapng, by OUT's extension");
  std::string in, format;
  convert->add_option("in", in, "capture file to read")->required();
  convert->add_option("out", out, "file to write (.pcap or .pcapng)")->required();
  convert->add_option("--format,-F", format, "output format whatever OUT's extension")->check(CLI::IsMember({"pcap", "pcapng"}));

  auto* split = app.add_subcommand("split", "split a capture into files of N packets or N seconds (like editcap -c/-i)");
  SplitRequest split_request;
  split->add_option("in", split_request.in, "capture file to read")->required();
  split->add_option("prefix", split_request.prefix, "output path prefix: PREFIX_00000_YYYYMMDDHHMMSS.ext")->required();
  split->add_option("-c", split_request.packets, "packets per file")->check(CLI::PositiveNumber);
  split->add_option("-i", split_request.seconds, "seconds per file")->check(CLI::PositiveNumber);
  split->add_flag("--by-flow", split_request.by_flow, "keep every flow whole in the file where it started");
  split->add_option("--flow-timeout", split_request.flow_timeout, "with --by-flow: seconds of silence that end a flow")
      ->check(CLI::PositiveNumber);

  auto* capture = app.add_subcommand("capture", "record from a network interface into rotating pcap files");
  CaptureRequest capture_request;
  capture->add_option("-i,--interface", capture_request.interface, "interface to capture on");
  capture->add_option("-w,--write-dir", capture_request.directory, "folder for the capture files");
  capture->add_option("-f,--filter", capture_request.filter, "BPF filter (tcpdump syntax)");
  capture->add_option("--snaplen", capture_request.snaplen, "bytes kept of each packet")->check(CLI::Range(64, 262144));
  capture->add_option("--buffer-size", capture_request.buffer_size_mb, "kernel buffer in MiB (libpcap takes at most 2047)")->check(CLI::Range(1, 2047));
  capture->add_flag("!--no-promisc", capture_request.promiscuous, "do not put the interface in promiscuous mode");
  capture->add_option("-c,--rotate-packets", capture_request.rotate_packets, "start a new file every N packets");
  capture->add_option("-G,--rotate-seconds", capture_request.rotate_seconds, "start a new file every N seconds");
  capture->add_option("-C,--rotate-mb", capture_request.rotate_megabytes, "start a new file every N megabytes");
  capture->add_option("--count", capture_request.count, "stop after N packets");
  capture->add_option("--duration", capture_request.duration, "stop after N seconds");
  capture->add_option("--prefix", capture_request.prefix, "file name prefix");
  capture->add_option("--progress", capture_request.progress_seconds, "seconds between progress lines (0: none)");
  capture->add_flag("--list-interfaces,-D", capture_request.list_interfaces, "list the interfaces and exit");

  auto* label = app.add_subcommand("label", "label the flows of captures into an SQLite database (and CSV)");
  LabelRequest label_request;
  label->add_option("paths", label_request.paths, "capture files or folders")->required();
  label->add_option("--db", label_request.db, "labels database (SQLite), created if missing")->required();
  label->add_option("--csv", label_request.csv, "also write the flows labelled in this run as CSV");
  label->add_option("--labeler", label_request.labeler, "labeler plugin");
  label->add_option("--threads,-j", label_request.threads,
                   "labelling threads (default 0: one per core on several files, 1 on one file): whole files each; "
                   "on one file, packets sharded by host pair (a few labels can then differ from one thread's)");
  label->add_option("--param,-p", label_request.params, "labeler parameter: name=value (see `trafficid plugins ndpi`)")
      ->type_name("K=V");

  auto* apps = app.add_subcommand("apps", "the applications and categories in a labels database");
  std::string apps_db, apps_format = "table";
  apps->add_option("db", apps_db, "labels database")->required();
  apps->add_option("--format", apps_format, "table, csv or json")->check(CLI::IsMember({"table", "csv", "json"}));

  CLI11_PARSE(app, argc, argv);
  try {
    if (*plugins) return cmd_plugins(global, name, json);
    if (*validate) return cmd_validate(global, file, overrides, json);
    if (*run) {
      if (!resume.empty()) {
        if (!std::filesystem::exists(std::filesystem::path(resume) / "config.resolved.toml"))
          throw trafficid::Error(resume + ": not a run folder (no config.resolved.toml)");
        return cmd_run(global, (std::filesystem::path(resume) / "config.resolved.toml").string(), overrides, resume, json,
                       rebuild, true);
      }
      if (file.empty()) throw trafficid::Error("run: give an experiment file, or --resume RUN_DIR");
      return cmd_run(global, file, overrides, run_dir, json, rebuild, true, trial.study_dir.empty() ? nullptr : &trial);
    }
    if (*tune) return cmd_tune(global, tune_request);
    if (*predict) {
      if (predict_request.paths.empty() && predict_request.interface.empty())
        throw trafficid::Error("predict: give capture files or folders, or --interface IFACE");
      return cmd_predict(global, predict_request);
    }
    if (*evaluate) return cmd_evaluate(global, evaluate_request);
    if (*prepro) return cmd_run(global, file, overrides, run_dir, json, rebuild, false);
    if (*report) return cmd_report(global, report_runs, report_out);
    if (*synth) return cmd_synth(global, out, params);
    if (*info) return cmd_info(global, paths, json);
    if (*convert) return cmd_convert(global, in, out, format);
    if (*split) return cmd_split(global, split_request);
    if (*capture) return cmd_capture(global, capture_request);
    if (*label) return cmd_label(global, label_request);
    if (*apps) return cmd_apps(global, apps_db, apps_format);
  } catch (const trafficid::Error& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: unexpected failure: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
