// Parameter schemas: every plugin declares its parameters once; the same table drives
// validation of experiments, `trafficid plugins NAME`, the resolved config of each run,
// and the search spaces of tuners (dotted paths such as `models.cnn.conv.0.filters`).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "trafficid/export.hpp"

namespace trafficid {

using Json = nlohmann::json;

enum class ParamType {
  boolean,
  integer,
  real,
  string,
  path,    // a string naming a file or folder, resolved against the experiment file's folder
  choice,  // a string from `choices`
  integer_list,
  real_list,
  string_list,
  path_list,   // strings naming files or folders, each resolved like `path`
  table,       // nested parameters: `fields`
  table_list,  // an array of tables, each with `fields` (e.g. the convolution layers of a CNN)
};

TRAFFICID_SDK_API const char* to_string(ParamType type);

struct TRAFFICID_VISIBLE ParamSpec {
  std::string name;
  ParamType type = ParamType::string;
  Json default_value;  // null: no default (the parameter is required unless `optional` is set)
  std::string help;
  std::optional<double> min;
  std::optional<double> max;
  std::vector<std::string> choices;
  std::vector<ParamSpec> fields;  // for table and table_list
  bool optional = false;          // may be absent without a default
  bool must_exist = false;        // path / path_list: checked before anything runs

  // Builders, so a plugin's schema reads as a table.
  static ParamSpec boolean(std::string name, bool def, std::string help);
  static ParamSpec integer(std::string name, std::int64_t def, std::string help);
  static ParamSpec real(std::string name, double def, std::string help);
  static ParamSpec string(std::string name, std::string def, std::string help);
  static ParamSpec path(std::string name, std::string def, std::string help);
  static ParamSpec choice(std::string name, std::string def, std::vector<std::string> choices, std::string help);
  static ParamSpec list(std::string name, ParamType type, Json def, std::string help);
  static ParamSpec table(std::string name, std::vector<ParamSpec> fields, std::string help);
  static ParamSpec table_list(std::string name, std::vector<ParamSpec> fields, Json def, std::string help);

  ParamSpec& range(std::optional<double> lo, std::optional<double> hi) {
    min = lo;
    max = hi;
    return *this;
  }
  ParamSpec& required() {
    default_value = nullptr;
    optional = false;
    return *this;
  }
  ParamSpec& existing() {
    must_exist = true;
    return *this;
  }
  ParamSpec& may_be_absent() {
    default_value = nullptr;
    optional = true;
    return *this;
  }
};

using Schema = std::vector<ParamSpec>;

// "int in [1, 262144]", "one of: a, b" — the range-or-choices column of parameter tables.
TRAFFICID_SDK_API std::string describe_constraint(const ParamSpec& spec);

}  // namespace trafficid
