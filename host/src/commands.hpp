// The `trafficid` subcommands. Each returns the process exit status:
// 0 success, 1 a runtime failure, 2 invalid input (experiment, arguments).
#pragma once
#include <string>
#include <vector>

namespace trafficid::host {

struct GlobalOptions {
  std::vector<std::string> plugin_paths;
  bool verbose = false;
  bool quiet = false;
};

int cmd_plugins(const GlobalOptions& global, const std::string& name, bool json);
int cmd_validate(const GlobalOptions& global, const std::string& file, const std::vector<std::string>& overrides,
                 bool json);
int cmd_run(const GlobalOptions& global, const std::string& file, const std::vector<std::string>& overrides,
            const std::string& run_dir, bool json);
int cmd_synth(const GlobalOptions& global, const std::string& out, const std::vector<std::string>& params);
int cmd_info(const GlobalOptions& global, const std::vector<std::string>& paths, bool json);

}  // namespace trafficid::host
