// CSV as trafficid writes it (RFC 4180): a field is quoted, its quotes doubled, only when it holds
// a comma, a quote or a line break. `trafficid apps --format csv`, the web application's exports.
#pragma once
#include <string>
#include <string_view>

#include "trafficid/params.hpp"

namespace trafficid::host {

inline std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\n") == std::string_view::npos) return std::string(text);
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// A JSON value as a field: a string as itself, null as nothing, anything else as its JSON text.
inline std::string csv_value(const Json& v) {
  return csv_field(v.is_string() ? v.get<std::string>() : v.is_null() ? std::string() : v.dump());
}

// A header of `columns`, then one line per JSON object of `rows` (a missing key: an empty field).
template <class Columns, class Rows>
std::string csv_table(const Columns& columns, const Rows& rows) {
  std::string out;
  for (const char* c : columns) out += std::string(out.empty() ? "" : ",") + c;
  out += '\n';
  for (const Json& row : rows) {
    std::string line;
    for (const char* c : columns) line += (line.empty() ? "" : ",") + csv_value(row.value(c, Json()));
    out += line + '\n';
  }
  return out;
}

}  // namespace trafficid::host
