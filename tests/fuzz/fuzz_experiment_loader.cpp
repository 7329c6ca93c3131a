// libFuzzer target for the experiment loader: any bytes as an experiment's TOML file, checked as
// `trafficid validate` checks it (with no plugins installed, so every plugin section is unknown).
// It either gives an experiment or diagnostics with file:line; an exception other than
// trafficid::Error (a TOML++ or JSON library error, std::out_of_range) or a crash is a finding.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/diagnostics.hpp"
#include "config/experiment.hpp"
#include "runtime/plugin_registry.hpp"
#include "trafficid/error.hpp"
#include "memory_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const MemoryFile input(data, size);
  if (!input.ok()) return 0;
  static const trafficid::host::PluginRegistry registry;  // no plugins
  trafficid::host::Diagnostics diagnostics;
  try {
    auto experiment = trafficid::host::load_experiment(input.path(), {}, registry, diagnostics);
    if (experiment && diagnostics.has_errors()) std::abort();
    if (!experiment && !diagnostics.has_errors()) std::abort();
    for (const auto& d : diagnostics.sorted()) (void)d.format();
  } catch (const trafficid::Error&) {
  }
  return 0;
}
