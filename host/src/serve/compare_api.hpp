// The web application's Compare: several runs side by side, as the comparison page `trafficid
// report` writes and as rows (one per run and model) for JSON or CSV export.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "trafficid/params.hpp"

namespace trafficid::host {

// One row per model of each run: run, model, best, headline (what, per-flow macro F1, interval),
// test and validation per-flow macro F1, parameters, training seconds.
Json comparison_rows(const std::vector<std::filesystem::path>& run_dirs, const std::vector<std::string>& ids);
std::string comparison_csv(const Json& rows);
// The comparison page's HTML (report/comparison_report), written through a temporary file.
std::string comparison_page(const std::vector<std::filesystem::path>& run_dirs);

}  // namespace trafficid::host
