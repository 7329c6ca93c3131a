#include "runtime/allocator.hpp"

#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <string>
#include <unistd.h>

namespace trafficid::host {

void tune_allocator(char** argv) {
  const char* choice = std::getenv("TRAFFICID_MALLOC");
  if (choice && std::strcmp(choice, "default") == 0) return;
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_TOP_PAD, 64 << 20);
  if (std::getenv("TRAFFICID_MALLOC_SET")) return;  // this process is the one executed again
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  std::string wanted = tunables ? tunables : "";
  if (wanted.find("glibc.malloc.hugetlb") != std::string::npos) return;  // the user's choice
  wanted += std::string(wanted.empty() ? "" : ":") + "glibc.malloc.hugetlb=1";
  ::setenv("GLIBC_TUNABLES", wanted.c_str(), 1);
  ::setenv("TRAFFICID_MALLOC_SET", "1", 1);
  ::execv("/proc/self/exe", argv);  // returns only when it could not: go on as this process
}

}  // namespace trafficid::host
