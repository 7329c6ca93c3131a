#include "labels/label_map.hpp"

#include <algorithm>
#include <fnmatch.h>

namespace trafficid::host {

bool ClassDefinition::matches(const FlowRecord& f) const {
  auto in = [](const std::vector<std::string>& list, const std::string& value) {
    return !value.empty() && std::find(list.begin(), list.end(), value) != list.end();
  };
  if (std::any_of(exclude.begin(), exclude.end(),
                  [&](const std::string& p) { return fnmatch(p.c_str(), f.label.c_str(), 0) == 0; }))
    return false;
  if (in(apps, f.app_protocol) || in(masters, f.master_protocol) || in(categories, f.category)) return true;
  if (in(apps, f.label)) return true;  // an app without master: "BitTorrent" is both label and app
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return fnmatch(p.c_str(), f.label.c_str(), 0) == 0; });
}

std::optional<std::string> LabelMap::classify(const FlowRecord& flow) const {
  for (const auto& c : classes_)
    if (c.matches(flow)) return c.name;
  return std::nullopt;
}

const ClassDefinition* LabelMap::find(const std::string& name) const {
  for (const auto& c : classes_)
    if (c.name == name) return &c;
  return nullptr;
}

const Schema& class_definition_schema() {
  static const Schema schema = {
      ParamSpec::list("apps", ParamType::string_list, Json::array(), "nDPI application names (YouTube, Zoom)"),
      ParamSpec::list("masters", ParamType::string_list, Json::array(), "nDPI master protocols (TLS, QUIC, STUN)"),
      ParamSpec::list("categories", ParamType::string_list, Json::array(), "nDPI categories (Video, VoIP)"),
      ParamSpec::list("patterns", ParamType::string_list, Json::array(),
                      "glob patterns over the whole label (\"TLS.*Zoom*\", \"STUN.*\")"),
      ParamSpec::list("exclude", ParamType::string_list, Json::array(),
                      "glob patterns over the whole label that are never this class, whatever else matches "
                      "(\"DNS.*\": a DNS lookup of the app's names is DNS traffic)"),
  };
  return schema;
}

LabelMap label_map_from_json(const Json& classes) {
  std::vector<ClassDefinition> out;
  for (const auto& [name, definition] : classes.items()) {
    ClassDefinition c;
    c.name = name;
    c.apps = definition.value("apps", std::vector<std::string>{});
    c.masters = definition.value("masters", std::vector<std::string>{});
    c.categories = definition.value("categories", std::vector<std::string>{});
    c.patterns = definition.value("patterns", std::vector<std::string>{});
    c.exclude = definition.value("exclude", std::vector<std::string>{});
    out.push_back(std::move(c));
  }
  return LabelMap(std::move(out));
}

}  // namespace trafficid::host
