// Files written whole or not at all, and durable once written: readers (and a run resumed after
// kill -9 or a power loss) never see half of one, and a file that names another (state.json and
// its checkpoint) is never on disk before what it names.
#pragma once
#include <filesystem>
#include <string_view>

#include "trafficid/export.hpp"

namespace trafficid {

// Writes `content` to a temporary file of a unique name beside `file`, flushes it to the disk,
// renames it over `file` and flushes the folder. Throws Error naming the file (and removes the
// temporary) when any step fails: `file` then still holds what it held before.
TRAFFICID_SDK_API void write_file_atomically(const std::filesystem::path& file, std::string_view content);

// Flushes a file written by other means (a LibTorch archive, an XGBoost buffer) to the disk.
TRAFFICID_SDK_API void sync_file(const std::filesystem::path& file);

// Flushes a folder's entries (created, renamed or removed files) to the disk.
TRAFFICID_SDK_API void sync_directory(const std::filesystem::path& folder);

}  // namespace trafficid
