// Deliberately broken and duplicate plugins for the registry tests. One source, compiled once per
// variant with a different TEST_VARIANT; each variant is its own shared object.
#include <cstdlib>
#include <stdexcept>

#include "trafficid/sdk.hpp"

namespace {

class Echo final : public trafficid::CaptureSource {
 public:
  bool next(trafficid::PacketView&) override { return false; }
  std::vector<trafficid::SourceFileInfo> files() const override { return {}; }
};

trafficid::Schema schema() { return {trafficid::ParamSpec::integer("level", 1, "a parameter").range(0, 9)}; }

#if TEST_VARIANT == 3
// Declared, never defined: the library cannot be loaded with RTLD_NOW.
extern "C" int trafficid_test_symbol_that_does_not_exist(int);
#endif

std::unique_ptr<trafficid::Plugin> create(const trafficid::PluginArgs& args) {
#if TEST_VARIANT == 2
  (void)args;
  throw std::runtime_error("cannot open the device: permission denied");
#elif TEST_VARIANT == 3
  if (args.params.is_null()) return nullptr;
  trafficid_test_symbol_that_does_not_exist(1);
  return std::make_unique<Echo>();
#else
  (void)args;
  return std::make_unique<Echo>();
#endif
}

#if TEST_VARIANT == 1
constexpr std::uint32_t abi = TRAFFICID_ABI_VERSION + 41;
#else
constexpr std::uint32_t abi = TRAFFICID_ABI_VERSION;
#endif
#if TEST_VARIANT == 6
constexpr std::uint32_t kind = 77;
#else
constexpr std::uint32_t kind = static_cast<std::uint32_t>(trafficid::PluginKind::capture);
#endif

const trafficid::PluginDescriptor* descriptor() {
  static const trafficid::PluginDescriptor d{abi, kind, TEST_NAME, TEST_VERSION, "a test plugin", "", &schema, &create};
  return &d;
}

}  // namespace

#if TEST_VARIANT == 7
// Code that runs as soon as the library is loaded: the host must not load a file that is not
// named like a plugin, so this must never run in the registry's tests.
namespace {
[[maybe_unused]] const int constructor_ran = [] { return ::setenv("TRAFFICID_TEST_CONSTRUCTOR_RAN", "1", 1); }();
}  // namespace
#endif

#if TEST_VARIANT != 5
TRAFFICID_PLUGIN(descriptor)
#else
// No entry point at all: a shared object that is not a plugin.
extern "C" BOOST_SYMBOL_EXPORT int trafficid_test_not_a_plugin() { return descriptor() != nullptr; }
#endif
