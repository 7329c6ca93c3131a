// A plugin's parameters declared once: a struct whose `fields` names each parameter's schema
// entry (name, default, range or choices, help) beside the member it is read into. The schema a
// plugin exports and the typed values it reads then come from the same line, so a default or a
// name can never drift between them.
//
//   struct MlpParams {
//     std::vector<std::int64_t> layers;
//     double dropout = 0;
//     template <class Bind> void fields(Bind& bind) {
//       bind(layers, ParamSpec::list("layers", ParamType::integer_list, Json::array({256, 128}), "hidden layer
//       sizes")); bind(dropout, ParamSpec::real("dropout", 0.1, "dropout after each layer").range(0, 0.95));
//     }
//   };
//   Schema schema() { return schema_of<MlpParams>(); }         // for TRAFFICID_DEFINE_PLUGIN
//   const MlpParams p = read_params<MlpParams>(args.params);   // in the constructor
//
// Header-only: nothing of it crosses the plugin ABI.
#pragma once
#include <utility>

#include "trafficid/error.hpp"
#include "trafficid/params.hpp"

namespace trafficid {

namespace declared_params_detail {

struct SchemaBinder {
  Schema schema;
  template <class T>
  void operator()(T&, ParamSpec spec) {
    schema.push_back(std::move(spec));
  }
};

struct ReadBinder {
  const Json& params;
  template <class T>
  void operator()(T& field, const ParamSpec& spec) {
    // The host hands a plugin its parameters checked and with every default filled in; the
    // schema's default covers a caller that passes fewer (a test, an older resolved config).
    const Json& value = params.contains(spec.name) ? params.at(spec.name) : spec.default_value;
    if (value.is_null()) return;
    try {
      field = value.get<T>();
    } catch (const Json::exception& e) {
      throw Error("parameter " + spec.name + ": " + e.what());
    }
  }
};

}  // namespace declared_params_detail

template <class Params>
Schema schema_of() {
  Params p{};
  declared_params_detail::SchemaBinder bind;
  p.fields(bind);
  return std::move(bind.schema);
}

template <class Params>
Params read_params(const Json& params) {
  Params p{};
  declared_params_detail::ReadBinder bind{params};
  p.fields(bind);
  return p;
}

}  // namespace trafficid
