// Label maps: experiment classes defined by nDPI application names, master protocols, categories
// or glob patterns over the full label ("TLS.*Zoom*"), replacing a hand-edited list of classes.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "trafficid/flow.hpp"
#include "trafficid/params.hpp"

namespace trafficid::host {

struct ClassDefinition {
  std::string name;
  std::vector<std::string> apps, masters, categories, patterns;
  std::vector<std::string> exclude;  // glob patterns over the full label that never are this class ("DNS.*")
  bool matches(const FlowRecord& flow) const;
};

class LabelMap {
 public:
  LabelMap() = default;
  explicit LabelMap(std::vector<ClassDefinition> classes) : classes_(std::move(classes)) {}
  // The first class (in name order) whose definition the flow matches.
  std::optional<std::string> classify(const FlowRecord& flow) const;
  const ClassDefinition* find(const std::string& name) const;
  bool empty() const { return classes_.empty(); }
  const std::vector<ClassDefinition>& classes() const { return classes_; }

 private:
  std::vector<ClassDefinition> classes_;
};

// The schema of one class definition in [label.classes.NAME].
const Schema& class_definition_schema();
LabelMap label_map_from_json(const Json& classes);

}  // namespace trafficid::host
