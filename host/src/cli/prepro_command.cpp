// `trafficid prepro EXP --part I/N | --merge | --emit-slurm FILE --parts N`: a dataset built in
// parts (pipeline/dataset_parts.hpp), on one machine or as a Slurm job array.
#include <filesystem>
#include <fmt/format.h>
#include <iostream>

#include "cli/commands.hpp"
#include "config/experiment.hpp"
#include "pipeline/dataset_parts.hpp"
#include "pipeline/dataset_stage.hpp"
#include "runtime/host_log.hpp"
#include "runtime/plugin_registry.hpp"
#include "trafficid/files.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

// The job array: task I builds part I/N; the last to end merges.
void write_prepro_slurm(const PreproPartsRequest& request, const Experiment& experiment, const GlobalOptions& global) {
  const fs::path logs = dataset_parts_folder(experiment);
  std::string command = self_command(global) + " prepro " + shell_quote(fs::absolute(request.file).string());
  for (const auto& o : request.overrides) command += " --set " + shell_quote(o);
  const auto threads = experiment.features->threads;
  write_slurm_array({.script = request.emit_slurm,
                     .job_name = "trafficid-prepro-" + experiment.name,
                     .description = fmt::format(
                         "# Slurm job array: the dataset of {0} in {1} parts (part I reads capture files I, I+{1},\n"
                         "# I+2x{1}, ... of the experiment's sources), built in {2}; the last part to end merges\n"
                         "# them into the dataset one process would build. Submit with: sbatch {3}\n"
                         "# A task that fails or is cancelled leaves its part to build again: resubmit (parts that\n"
                         "# are built and whose files are unchanged are kept).\n",
                         experiment.name, request.parts, logs.string(), request.emit_slurm),
                     .tasks = request.parts,
                     .cpus = threads > 0 ? threads : 2,
                     .logs = logs,
                     .command = command + fmt::format(" --part \"$SLURM_ARRAY_TASK_ID/{}\"", request.parts)});
}

}  // namespace

int cmd_prepro_parts(const GlobalOptions& global, const PreproPartsRequest& request) {
  install_stop_handlers();
  PluginRegistry registry;
  registry.load_directories(plugin_search_path(global.plugin_paths), true);
  auto experiment = checked_experiment(registry, request.file, request.overrides, "");
  if (!experiment) {
    std::cerr << request.file << ": not run (`trafficid validate` checks an experiment without running it)\n";
    return 2;
  }
  if (!experiment->features || !experiment->label)
    throw Error(fmt::format("{}: a dataset needs [label] and [features]", request.file));
  if (!request.emit_slurm.empty()) {
    if (request.parts < 1) throw Error("--emit-slurm: give the number of parts with --parts N");
    write_prepro_slurm(request, *experiment, global);
    std::cerr << fmt::format("{}: a Slurm job array of {} parts of the dataset (sbatch {})\n", request.emit_slurm,
                             request.parts, request.emit_slurm);
    return 0;
  }
  HostLog log(log_threshold(global));
  std::optional<DatasetManifest> manifest;
  if (request.merge) {
    manifest = merge_dataset_parts(*experiment, registry, log);
  } else {
    manifest = build_dataset_part(*experiment, registry, log, parse_part(request.part));
    if (!manifest && log.stop_requested()) return 130;
  }
  if (manifest) log.info(describe_dataset(*manifest));
  return 0;
}

}  // namespace trafficid::host
