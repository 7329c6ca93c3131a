// The web application's static files (host/src/serve/web), compiled into the binary by
// cmake/embed_files.cmake: the page needs nothing beside the executable and nothing from a network.
#pragma once
#include <cstddef>
#include <vector>

namespace trafficid::host {

struct WebAsset {
  const char* path;  // "/index.html"
  const char* type;  // its Content-Type
  const unsigned char* data;
  std::size_t size;
};

const std::vector<WebAsset>& web_assets();

}  // namespace trafficid::host
