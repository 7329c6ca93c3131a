// Problems found in an experiment, each pinned to FILE:LINE:COL and a dotted key path, all
// collected before anything runs so a user fixes them in one go.
#pragma once
#include <string>
#include <string_view>
#include <toml++/toml.h>
#include <vector>

namespace trafficid::host {

struct Diagnostic {
  std::string file;
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string key_path;
  std::string message;
  bool warning = false;

  std::string format() const;  // "FILE:LINE:COL: key.path: message"
};

class Diagnostics {
 public:
  void error(const toml::source_region& where, std::string key_path, std::string message);
  void warning(const toml::source_region& where, std::string key_path, std::string message);
  bool has_errors() const;
  // Sorted by file, line and column.
  std::vector<Diagnostic> sorted() const;
  const std::vector<Diagnostic>& all() const { return items_; }
  // Adds the other's diagnostics that this one does not hold already.
  void merge(const Diagnostics& other);

  // The file named in diagnostics whose region carries no path.
  void set_default_file(std::string file) { default_file_ = std::move(file); }

 private:
  void add(const toml::source_region& where, std::string key_path, std::string message, bool warning);
  std::vector<Diagnostic> items_;
  std::string default_file_;
};

// " (did you mean 'x'?)" for the closest candidate within a small edit distance, else "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);
// Optimal-string-alignment distance (a transposition counts as one edit).
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace trafficid::host
