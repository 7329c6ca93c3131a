#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "runtime/allocator.hpp"
#include "store/hashing.hpp"
#include "trafficid/error.hpp"

namespace {

using namespace trafficid::host;
namespace fs = std::filesystem;

// A subcommand and what it runs once the command line is parsed (its exit status).
struct Command {
  CLI::App* app;
  std::function<int()> action;
};
using Commands = std::vector<Command>;

// What several subcommands take alike.
struct ExperimentArgs {
  std::string file, run_dir;
  std::vector<std::string> overrides;
  bool json = false, rebuild = false;
};

void add_overrides(CLI::App* sub, std::vector<std::string>& overrides) {
  sub->add_option("--set", overrides, "override a value: key.path=value (repeatable)")->type_name("K=V");
}

void add_plugins(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto a = std::make_shared<ExperimentArgs>();
  auto* sub = app.add_subcommand("plugins", "list plugins, or show one plugin's parameters");
  sub->add_option("name", a->file, "plugin name: print its parameter table");
  sub->add_flag("--json", a->json, "machine-readable output");
  commands.push_back({sub, [a, &global] { return cmd_plugins(global, a->file, a->json); }});
}

void add_validate(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto a = std::make_shared<ExperimentArgs>();
  auto* sub = app.add_subcommand("validate", "check an experiment against the plugins' schemas");
  sub->add_option("experiment", a->file, "experiment TOML file")->required();
  add_overrides(sub, a->overrides);
  sub->add_flag("--json", a->json, "print the resolved config as JSON");
  commands.push_back({sub, [a, &global] { return cmd_validate(global, a->file, a->overrides, a->json); }});
}

void add_run(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto a = std::make_shared<ExperimentArgs>();
  auto resume = std::make_shared<std::string>();
  auto trial = std::make_shared<TrialRequest>();  // set by `trafficid tune` for the trial processes it starts
  auto* sub = app.add_subcommand("run", "validate an experiment, then run its stages into a run folder");
  auto* experiment = sub->add_option("experiment", a->file, "experiment TOML file");
  sub->add_option("--resume", *resume,
                  "continue an interrupted run in RUN_DIR (its config.resolved.toml; finished "
                  "models are kept, a model in training goes on from its last epoch)")
      ->type_name("RUN_DIR")
      ->excludes(experiment);
  add_overrides(sub, a->overrides);
  sub->add_option("--run-dir", a->run_dir, "run folder (default: OUTPUT_DIR/NAME-TIMESTAMP)");
  sub->add_flag("--json", a->json, "print the run's summary as JSON on stdout");
  sub->add_flag("--rebuild", a->rebuild, "build the dataset again even when an earlier one is current");
  auto parallel = std::make_shared<std::pair<unsigned, double>>(0, 600.0);
  sub->add_option("--workers", parallel->first,
                  "train LibTorch models data-parallel over N local worker processes (Gloo); under srun, "
                  "srun's tasks are the workers")
      ->type_name("N")
      ->check(CLI::Range(1, 256));
  sub->add_option("--worker-timeout", parallel->second,
                  "seconds a worker waits for the others before it fails the run (a worker died or hangs)")
      ->type_name("SECONDS")
      ->default_val(600)
      ->check(CLI::Range(1.0, 86400.0));
  sub->add_option("--trial-of", trial->study_dir, "the study this run is a trial of")->group("");
  sub->add_option("--trial-id", trial->trial, "the trial's number in that study")->group("");
  commands.push_back({sub, [a, resume, trial, parallel, &global] {
                        RunRequest request{.file = a->file,
                                           .overrides = a->overrides,
                                           .run_dir = a->run_dir,
                                           .rebuild = a->rebuild,
                                           .print_json = a->json,
                                           .workers = parallel->first,
                                           .worker_timeout = parallel->second};
                        if (!resume->empty()) {
                          request.file = (fs::path(*resume) / "config.resolved.toml").string();
                          request.run_dir = *resume;
                          if (!fs::exists(request.file))
                            throw trafficid::Error(*resume + ": not a run folder (no config.resolved.toml)");
                        } else if (a->file.empty()) {
                          throw trafficid::Error("run: give an experiment file, or --resume RUN_DIR");
                        }
                        if (!trial->study_dir.empty()) request.trial = *trial;
                        return cmd_run(global, std::move(request));
                      }});
}

// The processes `run --workers N` starts: workers 1..N-1 of its data-parallel training.
void add_worker(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto plan = std::make_shared<WorkerPlan>();
  auto dir = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("worker", "a worker of `trafficid run --workers N` (started by it)");
  sub->group("");
  sub->add_option("session", *dir, "RUN_DIR/workers/SESSION")->required();
  sub->add_option("--rank", plan->rank)->required()->check(CLI::Range(1, 255));
  sub->add_option("--world", plan->world)->required()->check(CLI::Range(2, 256));
  sub->add_option("--timeout", plan->timeout_seconds)->required();
  commands.push_back({sub, [plan, dir, &global] { return cmd_worker(global, *dir, *plan); }});
}

void add_prepro(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto a = std::make_shared<ExperimentArgs>();
  auto* sub = app.add_subcommand("prepro", "run an experiment's stages up to its dataset (capture, label, features)");
  sub->add_option("experiment", a->file, "experiment TOML file")->required();
  add_overrides(sub, a->overrides);
  sub->add_option("--run-dir", a->run_dir, "run folder (default: OUTPUT_DIR/NAME-TIMESTAMP)");
  sub->add_flag("--rebuild", a->rebuild, "build the dataset again even when an earlier one is current");
  sub->add_flag("--json", a->json, "print the run's summary as JSON on stdout");
  auto parts = std::make_shared<PreproPartsRequest>();
  auto* part = sub->add_option("--part", parts->part,
                               "build part I of N of the dataset (every Nth capture file); the last part to end "
                               "merges them")
                   ->type_name("I/N");
  auto* merge =
      sub->add_flag("--merge", parts->merge, "join the parts of the dataset built with --part")->excludes(part);
  auto* emit = sub->add_option("--emit-slurm", parts->emit_slurm, "write a Slurm job array that builds the parts")
                   ->type_name("FILE")
                   ->excludes(part)
                   ->excludes(merge);
  sub->add_option("--parts", parts->parts, "with --emit-slurm: the number of parts")
      ->needs(emit)
      ->check(CLI::Range(1, 100000));
  commands.push_back({sub, [a, parts, &global] {
                        if (!parts->part.empty() || parts->merge || !parts->emit_slurm.empty()) {
                          parts->file = a->file;
                          parts->overrides = a->overrides;
                          return cmd_prepro_parts(global, *parts);
                        }
                        return cmd_run(global, {.file = a->file,
                                                .overrides = a->overrides,
                                                .run_dir = a->run_dir,
                                                .rebuild = a->rebuild,
                                                .train = false,
                                                .print_json = a->json});
                      }});
}

void add_tune(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto r = std::make_shared<TuneRequest>();
  auto* sub = app.add_subcommand("tune",
                                 "tune an experiment's [tune] space: trials in processes of their own, a journal "
                                 "that survives crashes (run the same command again to go on), a study report");
  sub->add_option("experiment", r->file, "experiment TOML file with a [tune] section")->required();
  add_overrides(sub, r->overrides);
  sub->add_option("--study-dir", r->study_dir,
                  "the study's folder (default tune.study_dir, else OUTPUT_DIR/NAME-study)");
  sub->add_option("--parallel", r->parallel, "trials this process runs at once (default tune.parallel)")
      ->check(CLI::Range(1, 256));
  sub->add_option("--emit-slurm", r->emit_slurm,
                  "write a Slurm job-array script of workers for this study, "
                  "and run nothing")
      ->type_name("FILE");
  sub->add_option("--workers", r->workers, "with --emit-slurm: the array's size (default tune.parallel)")
      ->check(CLI::Range(1, 100000));
  commands.push_back({sub, [r, &global] { return cmd_tune(global, *r); }});
}

void add_predict(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto r = std::make_shared<PredictRequest>();
  auto* sub = app.add_subcommand(
      "predict", "classify captures (or a live interface) with a trained model: per flow or per packet");
  sub->add_option("model", r->model_dir,
                  "a trained model's folder (RUN_DIR/models/NAME), or a run folder: "
                  "its best model by validation per-flow macro F1")
      ->required();
  auto* paths = sub->add_option("paths", r->paths, "capture files or folders");
  auto* interface = sub->add_option("-i,--interface", r->interface, "a live interface instead of files");
  paths->excludes(interface);
  sub->add_option("--count", r->count, "live: stop after this many packets");
  sub->add_option("--duration", r->duration, "live: stop after this many seconds");
  sub->add_option("--format", r->format,
                  "csv (a row per line, as decided), jsonl (a JSON object per line, as decided) or json (one "
                  "array at the end)")
      ->check(CLI::IsMember({"csv", "json", "jsonl"}));
  sub->add_flag("--flush", r->flush,
                "write every row out the moment it is decided (stdout flushed per row, as tcpdump -l), "
                "for a pipe into another program; a terminal gets each line at once anyway");
  sub->add_option("--idle-timeout", r->idle_timeout,
                  "live: seconds of silence after which a flow is decided (default: the labeler's, 120 s for "
                  "nDPI; TCP flows are also decided at their FIN/RST teardown)")
      ->check(CLI::Range(0.001, 1e7))
      ->needs(interface);
  sub->add_option("--level", r->level,
                  "flow (its samples decide: summed log-probabilities, or the "
                  "model's rule) or packet (every sample)")
      ->check(CLI::IsMember({"flow", "packet"}));
  sub->add_flag("--int8", r->int8,
                "predict with the model's int8 version (dynamic quantization of a LibTorch model's fully connected "
                "and 1-D convolution layers; other models predict in float32)");
  commands.push_back({sub, [r, &global] {
                        if (r->paths.empty() && r->interface.empty())
                          throw trafficid::Error("predict: give capture files or folders, or --interface IFACE");
                        return cmd_predict(global, *r);
                      }});
}

void add_evaluate(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto r = std::make_shared<EvaluateRequest>();
  auto* sub = app.add_subcommand("evaluate",
                                 "score trained models on labelled captures they never saw (per flow and "
                                 "per sample, per class, confusion matrices): OUT/evaluation.json and .html");
  sub->add_option("target", r->target,
                  "a run folder (all its models; variants too) or a model's folder "
                  "RUN_DIR/models/NAME")
      ->required();
  sub->add_option("paths", r->paths,
                  "capture files or folders, labelled by the run's labeler and "
                  "classes from its [label.classes]")
      ->required();
  sub->add_option("--set", r->overrides,
                  "override a value of the run's experiment: key.path=value "
                  "(evaluate.pcap.exclude=[\"fuzz*\"], evaluate.unknown=true)")
      ->type_name("K=V");
  sub->add_option("-o,--out", r->out, "folder of the results (default RUN_DIR/evaluations/evaluation-TIMESTAMP)");
  sub->add_flag("--int8", r->int8,
                "score the models' int8 versions (dynamic quantization of LibTorch models' fully connected and 1-D "
                "convolution layers; other models in float32)");
  commands.push_back({sub, [r, &global] { return cmd_evaluate(global, *r); }});
}

void add_report(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto runs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>("comparison.html");
  auto* sub = app.add_subcommand("report", "compare runs side by side in one self-contained HTML page");
  sub->add_option("runs", *runs, "run folders (RUN_DIR made by `trafficid run`)")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("-o,--out", *out, "the page to write (default comparison.html)");
  commands.push_back({sub, [runs, out, &global] { return cmd_report(global, *runs, *out); }});
}

void add_serve(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto options = std::make_shared<trafficid::host::ServeOptions>();
  auto* sub = app.add_subcommand("serve", "the web application: runs, live training, reports, in a browser");
  sub->add_option("--workspace", options->workspace, "the folder of experiments/ and runs/ (default: this one)")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--host", options->host,
                  "address to listen on (default 127.0.0.1; another one is reachable by others)");
  sub->add_option("--port", options->port, "port (default 8080; 0: any free port)")->check(CLI::Range(0, 65535));
  commands.push_back({sub, [options, &global] { return cmd_serve(global, *options); }});
}

void add_capture_files(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto a = std::make_shared<ExperimentArgs>();  // file: the output, overrides: parameters or paths
  auto* synth =
      app.add_subcommand("synth", "write the embedded synthetic capture (real protocol exchanges) to a pcap file");
  synth->add_option("--out,-o", a->file, "pcap file to write")->required();
  synth->add_option("--param,-p", a->overrides, "synth plugin parameter: name=value (see `trafficid plugins synth`)")
      ->type_name("K=V");
  commands.push_back({synth, [a, &global] { return cmd_synth(global, a->file, a->overrides); }});

  auto b = std::make_shared<ExperimentArgs>();
  auto* info = app.add_subcommand("info", "read capture files and print what they hold (like capinfos)");
  info->add_option("paths", b->overrides, "capture files or folders")->required();
  info->add_flag("--json", b->json, "machine-readable output");
  commands.push_back({info, [b, &global] { return cmd_info(global, b->overrides, b->json); }});

  auto c = std::make_shared<std::array<std::string, 3>>();  // in, out, format
  auto* convert = app.add_subcommand("convert", "convert pcapng to pcap or pcap to pcapng, by OUT's extension");
  convert->add_option("in", (*c)[0], "capture file to read")->required();
  convert->add_option("out", (*c)[1], "file to write (.pcap or .pcapng)")->required();
  convert->add_option("--format,-F", (*c)[2], "output format whatever OUT's extension")
      ->check(CLI::IsMember({"pcap", "pcapng"}));
  commands.push_back({convert, [c, &global] { return cmd_convert(global, (*c)[0], (*c)[1], (*c)[2]); }});
}

void add_split(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto r = std::make_shared<SplitRequest>();
  auto* sub = app.add_subcommand("split", "split a capture into files of N packets or N seconds (like editcap -c/-i)");
  sub->add_option("in", r->in, "capture file to read")->required();
  sub->add_option("prefix", r->prefix, "output path prefix: PREFIX_00000_YYYYMMDDHHMMSS.ext")->required();
  sub->add_option("-c", r->packets, "packets per file")->check(CLI::PositiveNumber);
  sub->add_option("-i", r->seconds, "seconds per file")->check(CLI::PositiveNumber);
  sub->add_flag("--by-flow", r->by_flow, "keep every flow whole in the file where it started");
  sub->add_option("--flow-timeout", r->flow_timeout, "with --by-flow: seconds of silence that end a flow")
      ->check(CLI::PositiveNumber);
  commands.push_back({sub, [r, &global] { return cmd_split(global, *r); }});
}

void add_capture(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto r = std::make_shared<CaptureRequest>();
  auto* sub = app.add_subcommand("capture", "record from a network interface into rotating pcap files");
  sub->add_option("-i,--interface", r->interface, "interface to capture on");
  sub->add_option("-w,--write-dir", r->directory, "folder for the capture files");
  sub->add_option("-f,--filter", r->filter, "BPF filter (tcpdump syntax)");
  sub->add_option("--snaplen", r->snaplen, "bytes kept of each packet")->check(CLI::Range(64, 262144));
  sub->add_option("--buffer-size", r->buffer_size_mb, "kernel buffer in MiB (libpcap takes at most 2047)")
      ->check(CLI::Range(1, 2047));
  sub->add_flag("!--no-promisc", r->promiscuous, "do not put the interface in promiscuous mode");
  sub->add_option("-c,--rotate-packets", r->rotate_packets, "start a new file every N packets");
  sub->add_option("-G,--rotate-seconds", r->rotate_seconds, "start a new file every N seconds");
  sub->add_option("-C,--rotate-mb", r->rotate_megabytes, "start a new file every N megabytes");
  sub->add_option("--count", r->count, "stop after N packets");
  sub->add_option("--duration", r->duration, "stop after N seconds");
  sub->add_option("--prefix", r->prefix, "file name prefix");
  sub->add_option("--progress", r->progress_seconds, "seconds between progress lines (0: none)");
  sub->add_flag("--list-interfaces,-D", r->list_interfaces, "list the interfaces and exit");
  commands.push_back({sub, [r, &global] { return cmd_capture(global, *r); }});
}

void add_label(CLI::App& app, Commands& commands, const GlobalOptions& global) {
  auto r = std::make_shared<LabelRequest>();
  auto* sub = app.add_subcommand("label", "label the flows of captures into an SQLite database (and CSV)");
  sub->add_option("paths", r->paths, "capture files or folders")->required();
  sub->add_option("--db", r->db, "labels database (SQLite), created if missing")->required();
  sub->add_option("--csv", r->csv, "also write the flows labelled in this run as CSV");
  sub->add_option("--labeler", r->labeler, "labeler plugin");
  sub->add_option("--threads,-j", r->threads,
                  "labelling threads (default 0: one per core on several files, 1 on one file): whole files each; "
                  "on one file, packets sharded by host pair (a few labels can then differ from one thread's)");
  sub->add_option("--param,-p", r->params, "labeler parameter: name=value (see `trafficid plugins ndpi`)")
      ->type_name("K=V");
  commands.push_back({sub, [r, &global] { return cmd_label(global, *r); }});

  auto db = std::make_shared<std::array<std::string, 2>>(std::array<std::string, 2>{"", "table"});
  auto* apps = app.add_subcommand("apps", "the applications and categories in a labels database");
  apps->add_option("db", (*db)[0], "labels database")->required();
  apps->add_option("--format", (*db)[1], "table, csv or json")->check(CLI::IsMember({"table", "csv", "json"}));
  commands.push_back({apps, [db, &global] { return cmd_apps(global, (*db)[0], (*db)[1]); }});
}

}  // namespace

int main(int argc, char** argv) {
  trafficid::host::tune_allocator(argv);
  initialise_crypto();
  CLI::App app{
      "trafficid: identify network traffic with deep learning.\n"
      "Plugins come from --plugin-path, TRAFFICID_PLUGIN_PATH (colon-separated) and the host's own folder."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("trafficid ") + TRAFFICID_VERSION);
  GlobalOptions global;
  app.add_option("--plugin-path", global.plugin_paths, "folder of plugin .so files (repeatable, or colon-separated)")
      ->type_name("DIR");
  app.add_flag("-v,--verbose", global.verbose, "also print debug messages");
  app.add_flag("-q,--quiet", global.quiet, "print warnings and errors only");
  Commands commands;
  for (auto add : {add_plugins, add_validate, add_run, add_worker, add_tune, add_predict, add_evaluate, add_prepro,
                   add_report, add_serve, add_capture_files, add_split, add_capture, add_label})
    add(app, commands, global);
  CLI11_PARSE(app, argc, argv);
  try {
    for (const auto& command : commands)
      if (command.app->parsed()) return command.action();
  } catch (const trafficid::Error& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: unexpected failure: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
