// The web application's Predict: a capture uploaded by the page, classified by a run's best model
// (or a named one) through its own labeler and extractor (pipeline/predictor.hpp).
#pragma once
#include <filesystem>
#include <string>

#include "trafficid/params.hpp"

namespace httplib {
class ContentReader;
}

namespace trafficid::host {

class PluginRegistry;

// Writes the request body to FOLDER/TIMESTAMP-NAME (NAME kept to letters, digits, '.', '-', '_').
std::filesystem::path receive_upload(const std::filesystem::path& folder, const std::string& name,
                                     const httplib::ContentReader& content);
// {"model", "why", "classes", "flows": [...], "counts": {class: flows}, "packets"}; Error when the
// capture cannot be read or the run has no model.
Json predict_upload(const std::filesystem::path& run_dir, const std::string& model,
                    const std::filesystem::path& capture, const PluginRegistry& registry);

}  // namespace trafficid::host
