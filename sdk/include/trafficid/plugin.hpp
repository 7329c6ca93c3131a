// The plugin ABI. A plugin shared object exports one entry point, `trafficid_plugin`, through
// TRAFFICID_PLUGIN(...). It returns a descriptor whose first two fields (ABI version, kind) keep
// their layout in every ABI version, so the host can refuse a mismatch before touching the rest.
#pragma once
#include <boost/dll/alias.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "trafficid/host_services.hpp"
#include "trafficid/params.hpp"

// Bump on any change to a type that crosses the plugin boundary (descriptor, interfaces, data types).
// 3: data-parallel training (TrainingContext::parallel, SampleBatches::skip); 4: a file's content
// hash from its source (SourceFileInfo::hashing, content_hash); 5: int8 inference
// (ModelInput::int8_inference, ModelInfo::int8_inference).
#define TRAFFICID_ABI_VERSION 5u

namespace trafficid {

enum class PluginKind : std::uint32_t {
  capture = 1,   // packets in: files, live interfaces, generators
  labeler = 2,   // flows out, with application labels
  features = 3,  // labelled packets/flows to fixed-size samples
  model = 4,     // classifiers
  tuner = 5,     // hyperparameter search (ask/tell)
};

TRAFFICID_SDK_API const char* to_string(PluginKind kind);
// Returns false for a value outside the enum (a plugin from a newer SDK, or garbage).
TRAFFICID_SDK_API bool is_known_kind(std::uint32_t kind);

// Base of every object a plugin creates. The host hands these out with a deleter that keeps the
// plugin's library loaded for as long as the object lives.
class TRAFFICID_SDK_API Plugin {
 public:
  virtual ~Plugin();
};

// What a factory receives: the plugin's resolved parameters (every default filled in, already
// validated against its schema), the host's services, and the name it has in the experiment.
struct PluginArgs {
  const Json& params;
  HostServices& host;
  std::string instance_name;
};

using SchemaFn = Schema (*)();
using FactoryFn = std::unique_ptr<Plugin> (*)(const PluginArgs& args);

struct PluginDescriptor {
  std::uint32_t abi_version;  // TRAFFICID_ABI_VERSION the plugin was built with
  std::uint32_t kind;         // a PluginKind
  const char* name;           // unique within its kind, [a-z0-9_]+
  const char* version;        // the plugin's own version
  const char* description;    // one line
  const char* primary_param;  // parameter set by the `name:value` shorthand ("" when none)
  SchemaFn schema;
  FactoryFn create;
};

using EntryPoint = const PluginDescriptor*();

}  // namespace trafficid

// Use once per shared object, in one source file, at namespace scope:
//   static const trafficid::PluginDescriptor* descriptor() { static const ... d{...}; return &d; }
//   TRAFFICID_PLUGIN(descriptor)
#define TRAFFICID_PLUGIN(descriptor_function) BOOST_DLL_ALIAS(descriptor_function, trafficid_plugin)

// The usual case in one line, at namespace scope of one source file: a plugin class constructible
// from `const PluginArgs&`, and a function returning its Schema.
//   TRAFFICID_DEFINE_PLUGIN(NearestCentroid, trafficid::PluginKind::model, "nearest_centroid", "0.1.0",
//                           "nearest-centroid classifier", "", schema)
#define TRAFFICID_DEFINE_PLUGIN(Class, kind, name, version, description, primary_param, schema_function)    \
  namespace {                                                                                               \
  std::unique_ptr<::trafficid::Plugin> trafficid_create_plugin(const ::trafficid::PluginArgs& args) {       \
    return std::make_unique<Class>(args);                                                                   \
  }                                                                                                         \
  const ::trafficid::PluginDescriptor* trafficid_plugin_descriptor() {                                      \
    static const ::trafficid::PluginDescriptor descriptor{                                                  \
        TRAFFICID_ABI_VERSION, static_cast<std::uint32_t>(kind), name, version, description, primary_param, \
        &schema_function,      &trafficid_create_plugin};                                                   \
    return &descriptor;                                                                                     \
  }                                                                                                         \
  }                                                                                                         \
  TRAFFICID_PLUGIN(trafficid_plugin_descriptor)
