// The checks of an experiment's sections, shared by the files of host/src/config: each reads its
// section from the composed TOML document, reports every problem to the context's diagnostics,
// fills in the typed Experiment and the section's resolved JSON. Internal to host/src/config.
#pragma once
#include <string>
#include <vector>

#include "config/experiment.hpp"
#include "config/schema_check.hpp"

namespace trafficid::host::config_detail {

extern const std::vector<std::string> known_sections;

void check_capture(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry,
                   CheckContext& context, Json& resolved);
void check_label(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry, CheckContext& context,
                 Json& resolved);
void check_features(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry,
                    CheckContext& context, Json& resolved);
void check_dataset(const toml::table& doc, Experiment& experiment, CheckContext& context, Json& resolved);
void check_evaluate(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry,
                    CheckContext& context, Json& resolved);
void check_models(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry, CheckContext& context,
                  Json& resolved);
// [blend]: models of the experiment averaged into one more (after check_models).
void check_blend(const toml::table& doc, Experiment& experiment, CheckContext& context, Json& resolved);
// [tune]: settings, the tuner plugin and its table, and the search space's form; the sources of
// the space's dimensions go to `dimension_sources` (their values are checked by check_experiment).
void check_tune(const toml::table& doc, Experiment& experiment, const PluginRegistry& registry, CheckContext& context,
                Json& resolved, std::vector<toml::source_region>& dimension_sources);
// An optional section: nullptr when absent, or (with an error) when it is not a table.
const toml::table* optional_section(const toml::table& doc, const std::string& name, Diagnostics& diags);
// The section check of a list of capture sources ([capture], [evaluate]).
Json check_sources(const toml::table& doc, const std::string& name, const Schema& schema, bool required,
                   std::vector<SourceSpec>& out, const PluginRegistry& registry, CheckContext& context);

// A section's keys: host settings, `extra_keys`, or tables of parameters of plugins of `kind`;
// every other key is an error with a suggestion.
void check_section_keys(const toml::table& section, const std::string& name, const Schema& host_schema,
                        const std::vector<std::string>& extra_keys, PluginKind kind, const PluginRegistry& registry,
                        Diagnostics& diags);
// The plugin a section names in `setting`, its [SECTION.PLUGIN] table checked into `params`.
const PluginInfo* chosen_plugin(const toml::table& section, const std::string& name, const std::string& setting,
                                const std::string& plugin_name, PluginKind kind, const PluginRegistry& registry,
                                CheckContext& context, Json& params);

}  // namespace trafficid::host::config_detail
