// The `trafficid` subcommands. Each returns the process exit status:
// 0 success, 1 a runtime failure, 2 invalid input (experiment, arguments).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/run.hpp"
#include "serve/server.hpp"
#include "train/workers.hpp"
#include "trafficid/host_services.hpp"
#include "trafficid/params.hpp"

namespace trafficid::host {

struct GlobalOptions {
  std::vector<std::string> plugin_paths;
  bool verbose = false;
  bool quiet = false;
};

int cmd_convert(const GlobalOptions& global, const std::string& in, const std::string& out, const std::string& format);
struct SplitRequest {
  std::string in, prefix;
  std::uint64_t packets = 0;
  double seconds = 0;
  bool by_flow = false;
  double flow_timeout = 120;
};
int cmd_split(const GlobalOptions& global, const SplitRequest& request);
struct CaptureRequest {
  std::string interface, directory, filter, prefix = "trafficid";
  std::int64_t snaplen = 262144, buffer_size_mb = 32;
  bool promiscuous = true, list_interfaces = false;
  std::uint64_t rotate_packets = 0;
  double rotate_seconds = 0, rotate_megabytes = 0;
  std::uint64_t count = 0;
  double duration = 0;
  double progress_seconds = 5;
};
int cmd_capture(const GlobalOptions& global, const CaptureRequest& request);

struct LabelRequest {
  std::vector<std::string> paths, params;
  std::string db, csv, labeler = "ndpi";
  unsigned threads = 0;  // 0: one per core
};
int cmd_label(const GlobalOptions& global, const LabelRequest& request);
int cmd_apps(const GlobalOptions& global, const std::string& db, const std::string& format);

struct PredictRequest {
  std::string model_dir;
  std::vector<std::string> paths;
  std::string interface;               // instead of paths: a live interface
  std::uint64_t count = 0;             // live: stop after this many packets
  double duration = 0;                 // live: stop after this many seconds
  std::string format = "csv";          // "json" (one array at the end) or "jsonl" (an object per row)
  std::string level = "flow";          // or "packet" (one row per sample)
  bool flush = false;                  // stdout flushed after every row
  std::optional<double> idle_timeout;  // live: a flow silent this long is decided
  bool int8 = false;                   // the model's int8 version, where it has one
};
int cmd_predict(const GlobalOptions& global, const PredictRequest& request);

struct EvaluateRequest {
  std::string target;                  // RUN_DIR or RUN_DIR/models/NAME
  std::vector<std::string> paths;      // labelled captures (files or folders)
  std::vector<std::string> overrides;  // --set on the run's resolved experiment
  std::string out;                     // default: RUN_DIR/evaluations/evaluation-TIMESTAMP
  bool int8 = false;                   // the models' int8 versions, where they have one
};
int cmd_evaluate(const GlobalOptions& global, const EvaluateRequest& request);

int cmd_plugins(const GlobalOptions& global, const std::string& name, bool json);
int cmd_validate(const GlobalOptions& global, const std::string& file, const std::vector<std::string>& overrides,
                 bool json);
// `trafficid run` and `trafficid prepro` (request.train false): a Run whose events the terminal prints.
int cmd_run(const GlobalOptions& global, RunRequest request);
// A word for bash: single-quoted, a ' inside as '\''.
std::string shell_quote(const std::string& s);
// This program with the plugin paths of `global`, for a script to run: shell words.
std::string self_command(const GlobalOptions& global);
// A Slurm job array (`trafficid tune --emit-slurm`, `trafficid prepro --emit-slurm`): `tasks`
// tasks, each `exec COMMAND` in the current folder, its log in `logs` (made now: Slurm opens it
// before the task starts, and a missing folder fails every task with no log to say why). Paths
// that an #SBATCH line cannot carry are refused.
struct SlurmArray {
  std::string script;  // the file written (made executable)
  std::string job_name;
  std::string description;  // its comment lines, each "# ...\n"
  unsigned tasks = 1;
  std::int64_t cpus = 1;
  std::filesystem::path logs;
  std::string command;  // shell words
};
void write_slurm_array(const SlurmArray& array);
struct PreproPartsRequest {
  std::string file;
  std::vector<std::string> overrides;
  std::string part;        // --part I/N
  bool merge = false;      // --merge
  std::string emit_slurm;  // --emit-slurm FILE
  unsigned parts = 0;      // with --emit-slurm: the array's size
};
int cmd_prepro_parts(const GlobalOptions& global, const PreproPartsRequest& request);
int cmd_worker(const GlobalOptions& global, const std::string& session_dir, const WorkerPlan& plan);

// `trafficid tune`: runs (or goes on with) the study of an experiment's [tune] section.
struct TuneRequest {
  std::string file, study_dir, emit_slurm;
  std::vector<std::string> overrides;
  unsigned parallel = 0;  // 0: tune.parallel
  unsigned workers = 0;   // --emit-slurm: array size (0: tune.parallel)
};
int cmd_tune(const GlobalOptions& global, const TuneRequest& request);
// One page comparing runs side by side (written to `out`).
int cmd_report(const GlobalOptions& global, const std::vector<std::string>& run_dirs, const std::string& out);
// Serves the web application until Ctrl-C (serve/server.hpp).
int cmd_serve(const GlobalOptions& global, ServeOptions options);
int cmd_synth(const GlobalOptions& global, const std::string& out, const std::vector<std::string>& params);
int cmd_info(const GlobalOptions& global, const std::vector<std::string>& paths, bool json);

// Shared by the commands.
class PluginRegistry;
struct PluginInfo;
// `model_plugins`: false for commands that never train or predict (they skip LibTorch's start-up).
PluginRegistry load_plugins(const GlobalOptions& global, bool report_problems = true, bool model_plugins = true);
// A plugin's parameters from `-p name=value` assignments, checked against its schema, defaults
// filled in; nullopt after printing the problems (the command then exits with status 2).
std::optional<Json> plugin_params_from_cli(const PluginInfo& plugin, const std::vector<std::string>& assignments);
LogLevel log_threshold(const GlobalOptions& global);

}  // namespace trafficid::host
