#include "config/schema_check.hpp"

#include <algorithm>
#include <charconv>
#include <sstream>
#include <cmath>
#include <fmt/format.h>

#include "trafficid/error.hpp"

namespace trafficid::host {
namespace {

std::string type_of(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    default: return "date/time";
  }
}

std::string shown(const toml::node& node) {
  std::ostringstream out;
  node.visit([&](auto&& v) {
    if constexpr (toml::is_string<decltype(v)>) out << '\'' << v.get() << '\'';
    else if constexpr (toml::is_number<decltype(v)> || toml::is_boolean<decltype(v)>) out << v.get();
    else out << type_of(node);
  });
  return out.str();
}

const toml::source_region& where(const toml::node& node, const CheckContext& context) {
  if (node.source().begin.line == 0 && context.fallback) return *context.fallback;
  return node.source();
}

bool in_range(double value, const ParamSpec& spec) {
  return (!spec.min || value >= *spec.min) && (!spec.max || value <= *spec.max);
}

ParamType element_type(ParamType list) {
  switch (list) {
    case ParamType::integer_list: return ParamType::integer;
    case ParamType::real_list: return ParamType::real;
    case ParamType::path_list: return ParamType::path;
    default: return ParamType::string;
  }
}

// Scalar check shared by single values and list elements.
Json check_scalar(const toml::node& node, ParamType type, const ParamSpec& spec, const std::string& path,
                  CheckContext& context) {
  auto& diags = context.diagnostics;
  auto wrong_type = [&](const char* expected) {
    diags.error(where(node, context), path,
                fmt::format("expected {}, got {} {}", expected, type_of(node), shown(node)));
    return Json();
  };
  auto out_of_range = [&](const std::string& value) {
    diags.error(where(node, context), path, fmt::format("{} is out of range {}", value, describe_constraint(spec)));
    return Json();
  };
  switch (type) {
    case ParamType::boolean:
      if (!node.is_boolean()) return wrong_type("a boolean (true or false)");
      return *node.value<bool>();
    case ParamType::integer: {
      if (!node.is_integer()) return wrong_type("an integer");
      auto v = *node.value<std::int64_t>();
      if (!in_range(static_cast<double>(v), spec)) return out_of_range(std::to_string(v));
      return v;
    }
    case ParamType::real: {
      if (!node.is_number()) return wrong_type("a number");
      double v = *node.value<double>();
      if (!std::isfinite(v)) return wrong_type("a finite number");
      if (!in_range(v, spec)) return out_of_range(fmt::format("{:g}", v));
      return v;
    }
    case ParamType::choice: {
      if (!node.is_string()) return wrong_type("a string");
      auto v = *node.value<std::string>();
      for (const auto& c : spec.choices)
        if (c == v) return v;
      diags.error(
          where(node, context), path,
          fmt::format("'{}' is not one of: {}{}", v, fmt::join(spec.choices, ", "), did_you_mean(v, spec.choices)));
      return Json();
    }
    case ParamType::path: {
      if (!node.is_string()) return wrong_type("a path string");
      std::filesystem::path p = *node.value<std::string>();
      if (p.empty()) return p.string();
      // Values given on the command line are relative to the working directory.
      const auto& file = node.source().path;
      auto base = file && *file == "--set" ? std::filesystem::current_path() : context.base_dir;
      auto resolved = p.is_absolute() ? p : (base / p).lexically_normal();
      std::error_code ec;
      if (spec.must_exist && !std::filesystem::exists(resolved, ec)) {
        context.diagnostics.error(
            where(node, context), path,
            fmt::format("no such file or folder: {}{}", resolved.string(),
                        p.is_absolute() ? "" : " (relative paths start at the experiment file's folder)"));
        return Json();
      }
      return resolved.string();
    }
    case ParamType::string:
    default:
      if (!node.is_string()) return wrong_type("a string");
      if (!spec.choices.empty()) return check_scalar(node, ParamType::choice, spec, path, context);
      return *node.value<std::string>();
  }
}

}  // namespace

std::string join_key_path(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

std::vector<std::string> split_key_path(const std::string& path) {
  std::vector<std::string> out;
  std::string current;
  bool quoted = false;
  for (char c : path) {
    if (c == '"') quoted = !quoted;
    else if (c == '.' && !quoted) {
      out.push_back(current);
      current.clear();
    } else current += c;
  }
  out.push_back(current);
  return out;
}

Json check_value(const toml::node& node, const ParamSpec& spec, const std::string& path, CheckContext& context) {
  auto& diags = context.diagnostics;
  switch (spec.type) {
    case ParamType::table:
      if (!node.is_table()) {
        diags.error(where(node, context), path, fmt::format("expected a table, got {}", type_of(node)));
        return Json();
      }
      return check_table(node.as_table(), spec.fields, path, where(node, context), context);
    case ParamType::table_list: {
      if (!node.is_array()) {
        diags.error(where(node, context), path, fmt::format("expected an array of tables, got {}", type_of(node)));
        return Json();
      }
      Json out = Json::array();
      std::size_t i = 0;
      for (const auto& element : *node.as_array()) {
        auto element_path = fmt::format("{}.{}", path, i++);
        if (!element.is_table()) {
          diags.error(where(element, context), element_path, fmt::format("expected a table, got {}", type_of(element)));
          continue;
        }
        out.push_back(check_table(element.as_table(), spec.fields, element_path, where(element, context), context));
      }
      if (!in_range(static_cast<double>(out.size()), spec))
        diags.error(where(node, context), path,
                    fmt::format("{} entries, expected {}", out.size(), describe_constraint(spec)));
      return out;
    }
    case ParamType::integer_list:
    case ParamType::real_list:
    case ParamType::string_list:
    case ParamType::path_list: {
      if (!node.is_array()) {
        diags.error(where(node, context), path,
                    fmt::format("expected an array, got {} {}", type_of(node), shown(node)));
        return Json();
      }
      Json out = Json::array();
      std::size_t i = 0;
      for (const auto& element : *node.as_array()) {
        Json v = check_scalar(element, element_type(spec.type), spec, fmt::format("{}.{}", path, i++), context);
        if (!v.is_null()) out.push_back(std::move(v));
      }
      return out;
    }
    default: return check_scalar(node, spec.type, spec, path, context);
  }
}

Json check_table(const toml::table* table, const Schema& schema, const std::string& path,
                 const toml::source_region& where, CheckContext& context, const TableCheck& options) {
  auto& diags = context.diagnostics;
  Json out = Json::object();
  std::vector<std::string> names;
  for (const auto& spec : schema) names.push_back(spec.name);
  if (table && options.report_unknown) {
    for (const auto& [key, node] : *table) {
      std::string k(key.str());
      bool known = std::any_of(schema.begin(), schema.end(), [&](const ParamSpec& s) { return s.name == k; }) ||
                   std::find(options.extra_keys.begin(), options.extra_keys.end(), k) != options.extra_keys.end();
      if (!known) diags.error(key.source(), join_key_path(path, k), "unknown key" + did_you_mean(k, names));
    }
  }
  for (const auto& spec : schema) {
    if (std::find(options.handled_elsewhere.begin(), options.handled_elsewhere.end(), spec.name) !=
        options.handled_elsewhere.end())
      continue;
    auto key_path = join_key_path(path, spec.name);
    const toml::node* node = table ? table->get(spec.name) : nullptr;
    if (node) {
      Json v = check_value(*node, spec, key_path, context);
      if (!v.is_null()) out[spec.name] = std::move(v);
    } else if (spec.type == ParamType::table) {
      out[spec.name] = check_table(nullptr, spec.fields, key_path, where, context);
    } else if (!spec.default_value.is_null()) {
      out[spec.name] = spec.default_value;
    } else if (!spec.optional) {
      diags.error(where, key_path,
                  fmt::format("missing required parameter ({}{}{})", to_string(spec.type),
                              spec.help.empty() ? "" : ": ", spec.help));
    }
  }
  return out;
}

Json schema_defaults(const Schema& schema) {
  Json out = Json::object();
  for (const auto& spec : schema) {
    if (spec.type == ParamType::table) out[spec.name] = schema_defaults(spec.fields);
    else if (!spec.default_value.is_null()) out[spec.name] = spec.default_value;
  }
  return out;
}

namespace {
void append_json(toml::array& array, const Json& value);

void insert_json(toml::table& table, const std::string& key, const Json& value) {
  switch (value.type()) {
    case Json::value_t::object: table.insert_or_assign(key, to_toml(value)); break;
    case Json::value_t::array: {
      toml::array array;
      for (const auto& element : value) append_json(array, element);
      table.insert_or_assign(key, std::move(array));
      break;
    }
    case Json::value_t::boolean: table.insert_or_assign(key, value.get<bool>()); break;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: table.insert_or_assign(key, value.get<std::int64_t>()); break;
    case Json::value_t::number_float: table.insert_or_assign(key, value.get<double>()); break;
    case Json::value_t::string: table.insert_or_assign(key, value.get<std::string>()); break;
    default: break;
  }
}

void append_json(toml::array& array, const Json& value) {
  switch (value.type()) {
    case Json::value_t::object: array.push_back(to_toml(value)); break;
    case Json::value_t::array: {
      toml::array inner;
      for (const auto& element : value) append_json(inner, element);
      array.push_back(std::move(inner));
      break;
    }
    case Json::value_t::boolean: array.push_back(value.get<bool>()); break;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: array.push_back(value.get<std::int64_t>()); break;
    case Json::value_t::number_float: array.push_back(value.get<double>()); break;
    case Json::value_t::string: array.push_back(value.get<std::string>()); break;
    default: break;
  }
}
}  // namespace

toml::table to_toml(const Json& object) {
  toml::table table;
  for (const auto& [key, value] : object.items()) insert_json(table, key, value);
  return table;
}

Json to_json(const toml::node& node) {
  if (auto t = node.as_table()) {
    Json out = Json::object();
    for (const auto& [k, v] : *t) out[std::string(k.str())] = to_json(v);
    return out;
  }
  if (auto a = node.as_array()) {
    Json out = Json::array();
    for (const auto& v : *a) out.push_back(to_json(v));
    return out;
  }
  if (auto v = node.value<bool>(); node.is_boolean()) return *v;
  if (node.is_integer()) return *node.value<std::int64_t>();
  if (node.is_floating_point()) return *node.value<double>();
  if (node.is_string()) return *node.value<std::string>();
  std::ostringstream text;  // dates and times: their TOML text
  node.visit([&](auto&& v) { text << v; });
  return text.str();
}

void apply_override(toml::table& document, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error(fmt::format("--set '{}': expected key.path=value, e.g. --set capture.synth.seed=7", assignment));
  std::string key = assignment.substr(0, eq);
  std::string text = assignment.substr(eq + 1);
  toml::table holder;
  try {
    holder = toml::parse("value = " + text, std::string_view("--set"));
  } catch (const toml::parse_error&) {
    // Not TOML (a bare word, a path): take it as a string, still located on the command line.
    std::string quoted = "\"";
    for (char c : text) {
      if (c == '"' || c == '\\') quoted += '\\';
      quoted += c;
    }
    quoted += '"';
    try {
      holder = toml::parse("value = " + quoted, std::string_view("--set"));
    } catch (const toml::parse_error& e) {
      throw Error(fmt::format("--set {}: cannot read the value: {}", key, e.description()));
    }
  }
  set_at_path(document, key, *holder.get("value"), "--set");
}

std::optional<std::size_t> array_index(std::string_view segment, std::size_t size) {
  std::size_t index = 0;
  auto [ptr, ec] = std::from_chars(segment.data(), segment.data() + segment.size(), index);
  if (ec != std::errc() || ptr != segment.data() + segment.size() || index >= size) return std::nullopt;
  return index;
}

void set_json_path(Json& config, const std::string& path, const Json& value) {
  Json* current = &config;
  for (const auto& segment : split_key_path(path)) {
    if (current->is_array()) {
      auto index = array_index(segment, current->size());
      if (!index) throw Error(fmt::format("{}: '{}' is not an index of the array there", path, segment));
      current = &(*current)[*index];
    } else {
      if (!current->is_object()) *current = Json::object();
      current = &(*current)[segment];
    }
  }
  *current = value;
}

void set_at_path(toml::table& document, const std::string& key, toml::node& value, const std::string& what) {
  auto segments = split_key_path(key);
  toml::node* current = &document;
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    const auto& segment = segments[i];
    if (auto* table = current->as_table()) {
      auto* next = table->get(segment);
      if (!next)
        next = &table->insert(toml::key(segment, toml::source_region(value.source())), toml::table{}).first->second;
      current = next;
    } else if (auto* array = current->as_array()) {
      auto index = array_index(segment, array->size());
      if (!index)
        throw Error(fmt::format("{} {}: '{}' is not an index of the array at that place (it has {} entries)", what, key,
                                segment, array->size()));
      current = array->get(*index);
    } else {
      throw Error(fmt::format("{} {}: '{}' is a value, not a table, in the experiment", what, key,
                              fmt::join(segments.begin(), segments.begin() + static_cast<long>(i) + 1, ".")));
    }
  }
  toml::key leaf(segments.back(), toml::source_region(value.source()));
  if (auto* table = current->as_table()) {
    value.visit([&](auto& v) { table->insert_or_assign(leaf, std::move(v)); });  // a move keeps the source position
  } else if (auto* array = current->as_array()) {
    const auto& segment = segments.back();
    auto index = array_index(segment, array->size());
    if (!index)
      throw Error(fmt::format("{} {}: '{}' is not an index of the array (it has {} entries)", what, key, segment,
                              array->size()));
    value.visit([&](auto& v) { array->replace(array->begin() + static_cast<long>(*index), std::move(v)); });
  } else {
    throw Error(fmt::format("{} {}: the parent of '{}' is a value, not a table", what, key, segments.back()));
  }
}

}  // namespace trafficid::host
