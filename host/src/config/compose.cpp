#include "config/compose.hpp"

#include <fmt/format.h>
#include <fstream>
#include <sstream>

#include "config/experiment.hpp"
#include "config/schema_check.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

// A variant's values as dotted paths: its nested tables are walked (`features.deep_packet.masking =
// "strict"` and `"features.deep_packet.masking" = "strict"` say the same); an inline table or a list
// is one value.
void variant_values(toml::table& table, const std::string& prefix,
                    std::vector<std::pair<std::string, toml::node*>>& out) {
  for (auto& [k, v] : table) {
    std::string path = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (auto* t = v.as_table(); t && !t->is_inline()) variant_values(*t, path, out);
    else out.emplace_back(path, &v);
  }
}

struct TextProblem {
  std::size_t line = 1, column = 1;
  std::string message;
};

// The first byte of `text` that no TOML document may hold where it stands: NUL anywhere, a
// non-ASCII byte outside strings and comments. A small scan of TOML's strings and comments.
std::optional<TextProblem> toml_text_problem(std::string_view text) {
  enum class In { code, comment, basic, literal, multi_basic, multi_literal } in = In::code;
  std::size_t line = 1, line_start = 0;
  auto at = [&](std::size_t i, std::string message) {
    return TextProblem{line, i - line_start + 1, std::move(message)};
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\0') return at(i, "a NUL byte (is this a text file?)");
    if (c == '\n') {
      ++line;
      line_start = i + 1;
      if (in == In::comment || in == In::basic || in == In::literal)
        in = In::code;  // (a string cut by a newline: TOML++ says so)
      continue;
    }
    const auto starts = [&](std::string_view s) { return text.substr(i, s.size()) == s; };
    switch (in) {
      case In::code:
        if (static_cast<unsigned char>(c) >= 0x80)
          return at(i, "a non-ASCII character outside a string or a comment (quote it: \"...\")");
        if (c == '#') in = In::comment;
        else if (starts("\"\"\"")) in = In::multi_basic, i += 2;
        else if (starts("\'\'\'")) in = In::multi_literal, i += 2;
        else if (c == '"') in = In::basic;
        else if (c == '\'') in = In::literal;
        break;
      case In::comment: break;
      case In::basic:
        if (c == '\\') ++i;
        else if (c == '"') in = In::code;
        break;
      case In::literal:
        if (c == '\'') in = In::code;
        break;
      case In::multi_basic:
        if (c == '\\') ++i;
        else if (starts("\"\"\"")) in = In::code, i += 2;
        break;
      case In::multi_literal:
        if (starts("\'\'\'")) in = In::code, i += 2;
        break;
    }
  }
  return std::nullopt;
}

toml::source_region region_of(const std::string& file, std::size_t line, std::size_t column) {
  toml::source_region where;
  where.begin = {static_cast<toml::source_index>(line), static_cast<toml::source_index>(column)};
  where.end = where.begin;
  where.path = std::make_shared<const std::string>(file);
  return where;
}

// The file as a TOML document; nullopt (and an error) when it is not TOML.
std::optional<toml::table> read_document(const fs::path& file, Diagnostics& diagnostics) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read {}", file.string()));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_experiment_text(text, file, diagnostics);
}

void apply_overrides(toml::table& doc, const std::vector<std::string>& overrides, Diagnostics& diagnostics) {
  for (const auto& text : overrides) {
    try {
      apply_override(doc, text);
    } catch (const Error& e) {
      diagnostics.error(region_of("--set", 1, 1), text.substr(0, text.find('=')), e.what());
    }
  }
}

// [variants]: each variant's values recorded; those of `variant` set in the document. False
// when `variant` is not one of them.
bool apply_variants(toml::table& doc, const std::string& variant, ComposedExperiment& out, Diagnostics& diagnostics) {
  toml::node* variants_node = doc.get("variants");
  if (!variants_node) {
    if (variant.empty()) return true;
    diagnostics.error(doc.source(), "variants",
                      fmt::format("no variant '{}': the experiment has no [variants]", variant));
    return false;
  }
  toml::table* table = variants_node->as_table();
  if (!table)
    diagnostics.error(variants_node->source(), "variants", "expected tables: [variants.NAME], one per variant");
  toml::table none;
  for (auto& [key, node] : table ? *table : none) {
    std::string name(key.str());
    if (auto why = name_problem(name); !why.empty())
      diagnostics.error(node.source(), "variants." + name, "a variant's name " + why);
    toml::table* values = node.as_table();
    if (!values) {
      diagnostics.error(node.source(), "variants." + name,
                        "expected a table of the values this variant sets, e.g. [variants.strict] "
                        "features.deep_packet.masking = \"strict\"");
      continue;
    }
    out.variant_names.push_back(name);
    std::vector<std::pair<std::string, toml::node*>> set;
    variant_values(*values, "", set);
    out.variants[name] = Json::object();
    for (const auto& [path, value] : set) out.variants[name][path] = to_json(*value);
    if (name != variant) continue;
    for (const auto& [path, value] : set) {
      toml::source_region where = value->source();
      try {
        set_at_path(doc, path, *value, "variants." + name);
      } catch (const Error& e) {
        diagnostics.error(where, "variants." + name + "." + path, e.what());
      }
    }
  }
  if (!variant.empty() && !out.variants.contains(variant)) {
    diagnostics.error(variants_node->source(), "variants",
                      fmt::format("no variant '{}'{}", variant, did_you_mean(variant, out.variant_names)));
    return false;
  }
  doc.erase("variants");
  return true;
}

// A tuning trial's values, each parsed as TOML from its JSON text under the name "tune.space"
// (the caller maps problems found there to the space's own lines); [tune] goes.
void apply_assignment(toml::table& doc, const Json& assignment, Diagnostics& diagnostics) {
  for (const auto& [path, value] : assignment.items()) {
    Json wrapped = Json::object();
    wrapped["value"] = value;
    std::ostringstream text;
    text << to_toml(wrapped);
    try {
      toml::table holder = toml::parse(text.str(), std::string_view("tune.space"));
      set_at_path(doc, path, *holder.get("value"), "tune.space");
    } catch (const toml::parse_error& e) {
      diagnostics.error(e.source(), path, fmt::format("cannot set {}: {}", value.dump(), e.description()));
    } catch (const Error& e) {
      diagnostics.error(region_of("tune.space", 1, 1), path, e.what());
    }
  }
  doc.erase("tune");
}

}  // namespace

std::optional<toml::table> parse_experiment_text(const std::string& text, const fs::path& file,
                                                 Diagnostics& diagnostics) {
  // Refused before TOML++ sees them: a NUL byte (its parser asserts on one in a key) and a
  // non-ASCII character outside strings and comments (TOML++ 3.3.0's whitespace test reaches
  // __builtin_unreachable for many of them: undefined behaviour). TOML allows neither.
  if (auto problem = toml_text_problem(text)) {
    diagnostics.error(region_of(file.string(), problem->line, problem->column), "",
                      "not valid TOML: " + problem->message);
    return std::nullopt;
  }
  try {
    return toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    diagnostics.error(e.source(), "", fmt::format("not valid TOML: {}", e.description()));
    return std::nullopt;
  }
}

std::optional<ComposedExperiment> compose_experiment(const CompositionRequest& request, Diagnostics& diagnostics) {
  diagnostics.set_default_file(request.file.string());
  ComposedExperiment out;
  if (request.document) {
    out.document = *request.document;  // a resolved config has had its overrides applied
  } else {
    auto doc = request.text ? parse_experiment_text(*request.text, request.file, diagnostics)
                            : read_document(request.file, diagnostics);
    if (!doc) return std::nullopt;
    out.document = std::move(*doc);
    apply_overrides(out.document, request.overrides, diagnostics);
  }
  if (!apply_variants(out.document, request.variant, out, diagnostics)) return std::nullopt;
  if (!request.assignment.is_null()) apply_assignment(out.document, request.assignment, diagnostics);
  return out;
}

}  // namespace trafficid::host
