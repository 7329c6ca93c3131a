// libFuzzer target for the experiment loader: any bytes as an experiment's TOML file, checked as
// `trafficid validate` checks it (with no plugins installed, so every plugin section is unknown).
// It either gives an experiment or diagnostics with file:line; an exception other than
// trafficid::Error (a TOML++ or JSON library error, std::out_of_range) or a crash is a finding.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

#include "diagnostics.hpp"
#include "experiment.hpp"
#include "plugin_registry.hpp"
#include "trafficid/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const int fd = ::memfd_create("experiment", 0);
  if (fd < 0) return 0;
  for (std::size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  static const trafficid::host::PluginRegistry registry;  // no plugins
  trafficid::host::Diagnostics diagnostics;
  try {
    auto experiment = trafficid::host::load_experiment("/proc/self/fd/" + std::to_string(fd), {}, registry, diagnostics);
    if (experiment && diagnostics.has_errors()) std::abort();
    if (!experiment && !diagnostics.has_errors()) std::abort();
    for (const auto& d : diagnostics.sorted()) (void)d.format();
  } catch (const trafficid::Error&) {
  }
  ::close(fd);
  return 0;
}
