// Child processes that end with the process that started them: a study's trials, the local
// workers of a data-parallel run, the studies `trafficid serve` starts.
#pragma once
#include <string>
#include <sys/types.h>
#include <vector>

namespace trafficid::host {

// Starts `program` with `args` (args[0] is its name) as a child that gets `death_signal` when
// this process ends, however it ends (PR_SET_PDEATHSIG; a child whose parent is already gone exits
// with 128 + death_signal). With `output`, its stdout and stderr are appended to that file and its
// stdin is /dev/null; otherwise it shares this process's. It starts with no signal blocked. Only
// async-signal-safe calls run between fork and exec (the caller may have threads). Throws Error
// ("cannot start WHAT: ...") when fork fails; a child that cannot exec exits with 127.
pid_t start_child(const std::string& what, const std::string& program, std::vector<std::string> args, int death_signal,
                  const std::string& output = "");

}  // namespace trafficid::host
