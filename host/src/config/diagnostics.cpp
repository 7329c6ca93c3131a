#include "config/diagnostics.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <numeric>

namespace trafficid::host {

std::string Diagnostic::format() const {
  return fmt::format("{}:{}:{}: {}{}{}", file, line, column, key_path, key_path.empty() ? "" : ": ",
                     warning ? "warning: " + message : message);
}

void Diagnostics::add(const toml::source_region& where, std::string key_path, std::string message, bool warning) {
  Diagnostic d;
  d.file = where.path ? *where.path : default_file_;
  d.line = where.begin.line;
  d.column = where.begin.column;
  d.key_path = std::move(key_path);
  d.message = std::move(message);
  d.warning = warning;
  items_.push_back(std::move(d));
}

void Diagnostics::error(const toml::source_region& where, std::string key_path, std::string message) {
  add(where, std::move(key_path), std::move(message), false);
}

void Diagnostics::warning(const toml::source_region& where, std::string key_path, std::string message) {
  add(where, std::move(key_path), std::move(message), true);
}

bool Diagnostics::has_errors() const {
  return std::any_of(items_.begin(), items_.end(), [](const Diagnostic& d) { return !d.warning; });
}

std::vector<Diagnostic> Diagnostics::sorted() const {
  auto out = items_;
  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.file, a.line, a.column) < std::tie(b.file, b.line, b.column);
  });
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i)
    for (std::size_t j = 1; j <= m; ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  // Allow about one edit per three characters, at least one and at most three.
  const std::size_t limit = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  const std::string* best = nullptr;
  std::size_t best_distance = limit + 1;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = &c;
    }
  }
  return best ? fmt::format(" (did you mean '{}'?)", *best) : "";
}

void Diagnostics::merge(const Diagnostics& other) {
  for (const auto& d : other.items_) {
    bool known = std::any_of(items_.begin(), items_.end(),
                             [&](const Diagnostic& e) { return e.warning == d.warning && e.format() == d.format(); });
    if (!known) items_.push_back(d);
  }
}

}  // namespace trafficid::host
