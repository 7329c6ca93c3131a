// Checks TOML values against plugin parameter schemas and resolves them into JSON with every
// default filled in. The same code checks the host's own sections.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <toml++/toml.h>

#include "config/diagnostics.hpp"
#include "trafficid/params.hpp"

namespace trafficid::host {

struct CheckContext {
  Diagnostics& diagnostics;
  std::filesystem::path base_dir;  // relative `path` parameters resolve against it
  // Where to point for values made by the host (e.g. from a 'plugin:value' shorthand).
  const toml::source_region* fallback = nullptr;
};

struct TableCheck {
  bool report_unknown = true;                  // false: the caller reports keys outside the schema
  std::vector<std::string> handled_elsewhere;  // schema keys the caller checks itself
  std::vector<std::string> extra_keys;         // keys outside the schema the caller checks (not "unknown")
};

// Checks `table` (which may be null: all defaults) against `schema`; reports unknown keys,
// wrong types, out-of-range values and missing required parameters; returns the resolved object.
// `where` locates the table for "missing parameter" errors.
Json check_table(const toml::table* table, const Schema& schema, const std::string& path,
                 const toml::source_region& where, CheckContext& context, const TableCheck& options = {});

// Checks one value; returns null after reporting a problem.
Json check_value(const toml::node& node, const ParamSpec& spec, const std::string& path, CheckContext& context);

// Defaults of a schema as a JSON object (parameters without a default are left out).
Json schema_defaults(const Schema& schema);

// JSON (from resolution) back to TOML for config.resolved.toml. Nulls are dropped.
toml::table to_toml(const Json& object);
Json to_json(const toml::node& node);

// Applies `--set key.path=value`. The value is read as TOML (`3`, `0.1`, `true`, `"x"`, `[1, 2]`)
// and taken as a plain string when it is not valid TOML. Numeric segments index arrays.
// Throws trafficid::Error with the reason when the path cannot be set.
void apply_override(toml::table& document, const std::string& assignment);
// Sets `key` (a dotted path) to `value`, moved in (so it keeps its source position); tables on the
// way are created. `what` starts the error messages ("--set", "variants.strict").
void set_at_path(toml::table& document, const std::string& key, toml::node& value, const std::string& what);
// The same in a JSON config (a resolved experiment): objects on the way are created.
void set_json_path(Json& config, const std::string& path, const Json& value);
// A path segment as an index into an array of `size` entries; nullopt when it is not one.
std::optional<std::size_t> array_index(std::string_view segment, std::size_t size);

// "models.cnn.conv.0.filters" -> segments.
std::vector<std::string> split_key_path(const std::string& path);
std::string join_key_path(const std::string& prefix, const std::string& key);

}  // namespace trafficid::host
