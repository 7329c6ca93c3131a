// Files written whole or not at all: readers (and a run resumed after kill -9) never see half of one.
#pragma once
#include <filesystem>
#include <string_view>

#include "trafficid/export.hpp"

namespace trafficid {

// Writes `content` to FILE.tmp, then renames it over `file`. Throws Error naming the file.
TRAFFICID_SDK_API void write_file_atomically(const std::filesystem::path& file, std::string_view content);

}  // namespace trafficid
