// The pages a run leaves: RUN_DIR/report.html (its models side by side, the headline first: per-flow
// macro F1 on captures the models never saw), the comparison of runs (`trafficid report`, a run of
// variants) and an evaluation's page (`trafficid evaluate`). Self-contained: inline CSS and SVG, no
// script, no network.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "trafficid/params.hpp"

namespace trafficid::host {

// RUN_DIR/report.html: one self-contained page comparing the models of a run.
void write_report(const std::filesystem::path& run_dir, const Json& run_record, const Json& models,
                  const std::string& resolved_config);

// One self-contained page comparing runs (`trafficid report RUN_DIR...`): every model's headline
// and test numbers, what differs in the resolved configurations, validation curves, per-class F1.
void write_comparison_report(const std::filesystem::path& out, const std::vector<std::filesystem::path>& run_dirs,
                             const std::string& title);

// An ensemble's members in a model's metrics.json, each scored alone: null for a single model, else
// {"count", "first_seed", "last_seed", "validation": {"low", "high"}, "unseen": {"low", "high"}}
// (per-flow macro F1; "unseen" only when the run had [evaluate]). What the report, the web pages and
// the comparison show beside the ensemble's own score.
Json members_summary(const Json& metrics);

// `trafficid evaluate`'s page: per run, every model's scores on the given captures.
void write_evaluation_report(const std::filesystem::path& out, const Json& evaluation);

}  // namespace trafficid::host
