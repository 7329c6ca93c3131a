#include "runtime/allocator.hpp"

#include <cstdlib>
#include <cstring>
#include <malloc.h>

namespace trafficid::host {

void tune_allocator() {
  const char* choice = std::getenv("TRAFFICID_MALLOC");
  if (choice && std::strcmp(choice, "default") == 0) return;
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace trafficid::host
