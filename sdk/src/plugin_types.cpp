// Out-of-line members of the SDK's interfaces: their vtables and typeinfo live here, once, in
// libtrafficid_sdk.so, so dynamic_cast and exceptions work between the host and every plugin.
#include <fmt/format.h>

#include "trafficid/sdk.hpp"
#include "trafficid/dataset.hpp"

namespace trafficid {

Error::Error(const std::string& message) : std::runtime_error(message) {}
Error::~Error() = default;
HostServices::~HostServices() = default;
Plugin::~Plugin() = default;
CaptureSource::~CaptureSource() = default;
FlowSink::~FlowSink() = default;
Labeler::~Labeler() = default;
SampleSink::~SampleSink() = default;
FeatureExtractor::~FeatureExtractor() = default;
void FeatureExtractor::end_flow(const FlowRecord&, SampleSink&) {}

const char* to_string(DType dtype) { return dtype == DType::u8 ? "uint8" : "float32"; }
const char* to_string(Granularity granularity) { return granularity == Granularity::packet ? "packet" : "flow"; }
std::size_t dtype_size(DType dtype) { return dtype == DType::u8 ? 1 : 4; }
TrainingObserver::~TrainingObserver() = default;
Model::~Model() = default;
SampleBatches::~SampleBatches() = default;

std::size_t SampleBatches::skip(std::size_t rows) {
  FeatureBatch scratch;
  return next(rows, scratch) ? scratch.rows : 0;
}
Tuner::~Tuner() = default;

const char* to_string(PluginKind kind) {
  switch (kind) {
    case PluginKind::capture: return "capture";
    case PluginKind::labeler: return "labeler";
    case PluginKind::features: return "features";
    case PluginKind::model: return "model";
    case PluginKind::tuner: return "tuner";
  }
  return "unknown";
}

bool is_known_kind(std::uint32_t kind) {
  return kind >= static_cast<std::uint32_t>(PluginKind::capture) &&
         kind <= static_cast<std::uint32_t>(PluginKind::tuner);
}

const char* to_string(ParamType type) {
  switch (type) {
    case ParamType::boolean: return "bool";
    case ParamType::integer: return "int";
    case ParamType::real: return "float";
    case ParamType::string: return "string";
    case ParamType::path: return "path";
    case ParamType::choice: return "choice";
    case ParamType::integer_list: return "int list";
    case ParamType::real_list: return "float list";
    case ParamType::string_list: return "string list";
    case ParamType::path_list: return "path list";
    case ParamType::table: return "table";
    case ParamType::table_list: return "table list";
  }
  return "?";
}

const char* to_string(SplitName split) {
  switch (split) {
    case SplitName::train: return "train";
    case SplitName::validation: return "validation";
    case SplitName::test: return "test";
  }
  return "?";
}

namespace {
ParamSpec make(std::string name, ParamType type, Json def, std::string help) {
  ParamSpec spec;
  spec.name = std::move(name);
  spec.type = type;
  spec.default_value = std::move(def);
  spec.help = std::move(help);
  return spec;
}

std::string number(double v) {
  if (v == static_cast<double>(static_cast<long long>(v))) return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{:g}", v);
}
}  // namespace

ParamSpec ParamSpec::boolean(std::string name, bool def, std::string help) {
  return make(std::move(name), ParamType::boolean, def, std::move(help));
}
ParamSpec ParamSpec::integer(std::string name, std::int64_t def, std::string help) {
  return make(std::move(name), ParamType::integer, def, std::move(help));
}
ParamSpec ParamSpec::real(std::string name, double def, std::string help) {
  return make(std::move(name), ParamType::real, def, std::move(help));
}
ParamSpec ParamSpec::string(std::string name, std::string def, std::string help) {
  return make(std::move(name), ParamType::string, std::move(def), std::move(help));
}
ParamSpec ParamSpec::path(std::string name, std::string def, std::string help) {
  return make(std::move(name), ParamType::path, std::move(def), std::move(help));
}
ParamSpec ParamSpec::choice(std::string name, std::string def, std::vector<std::string> choices, std::string help) {
  auto spec = make(std::move(name), ParamType::choice, std::move(def), std::move(help));
  spec.choices = std::move(choices);
  return spec;
}
ParamSpec ParamSpec::list(std::string name, ParamType type, Json def, std::string help) {
  return make(std::move(name), type, std::move(def), std::move(help));
}
ParamSpec ParamSpec::table(std::string name, std::vector<ParamSpec> fields, std::string help) {
  auto spec = make(std::move(name), ParamType::table, Json::object(), std::move(help));
  spec.fields = std::move(fields);
  return spec;
}
ParamSpec ParamSpec::table_list(std::string name, std::vector<ParamSpec> fields, Json def, std::string help) {
  auto spec = make(std::move(name), ParamType::table_list, std::move(def), std::move(help));
  spec.fields = std::move(fields);
  return spec;
}

std::string describe_constraint(const ParamSpec& spec) {
  if (!spec.choices.empty()) return fmt::format("one of: {}", fmt::join(spec.choices, ", "));
  if (spec.min && spec.max) return fmt::format("[{}, {}]", number(*spec.min), number(*spec.max));
  if (spec.min) return fmt::format(">= {}", number(*spec.min));
  if (spec.max) return fmt::format("<= {}", number(*spec.max));
  return "";
}

}  // namespace trafficid
