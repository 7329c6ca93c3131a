#include "store/hashing.hpp"

#include <algorithm>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <gcrypt.h>
#include <memory>
#include <mutex>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>
#include <xxhash.h>

#include <cerrno>
#include <cstring>

#include "trafficid/capture.hpp"
#include "trafficid/error.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

std::string content_hash_file(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    throw Error(fmt::format("cannot read {} to hash it: {}", file.string(), std::strerror(error)));
  }
  // Mapped in windows, each unmapped before the next: no copy out of the page cache, and the
  // process's resident memory stays at one window whatever the file's size.
  constexpr std::size_t window = std::size_t{16} << 20;
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), &XXH3_freeState);
  XXH3_128bits_reset(state.get());
  const auto size = static_cast<std::size_t>(st.st_size);
  for (std::size_t offset = 0; offset < size; offset += window) {
    const std::size_t length = std::min(window, size - offset);
    void* map = ::mmap(nullptr, length, PROT_READ, MAP_PRIVATE, fd, static_cast<off_t>(offset));
    if (map == MAP_FAILED) {
      ::close(fd);
      throw Error(fmt::format("cannot map {} to hash it", file.string()));
    }
    ::madvise(map, length, MADV_SEQUENTIAL);
    XXH3_128bits_update(state.get(), map, length);
    ::munmap(map, length);
  }
  ::close(fd);
  const XXH128_hash_t digest = XXH3_128bits_digest(state.get());
  return content_hash_text(digest.high64, digest.low64);
}

// libgcrypt must be initialised by the application before its first use, once; without it,
// gcry_md_open can fail when a hashing thread starts while nDPI (which also links libgcrypt)
// is setting up its module in another thread (seen: "cannot start a SHA-256 digest").
void initialise_crypto() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!gcry_check_version(GCRYPT_VERSION)) throw Error("libgcrypt is older than the one trafficid was built with");
    gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
    gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
  });
}

std::string sha256_file(const fs::path& file) {
  initialise_crypto();
  gcry_md_hd_t md = nullptr;
  if (gcry_md_open(&md, GCRY_MD_SHA256, 0) != 0) throw Error("cannot start a SHA-256 digest (libgcrypt)");
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    gcry_md_close(md);
    throw Error(fmt::format("cannot read {}", file.string()));
  }
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    gcry_md_write(md, buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  const unsigned char* digest = gcry_md_read(md, GCRY_MD_SHA256);
  std::string hex;
  for (int i = 0; i < 32; ++i) hex += fmt::format("{:02x}", digest[i]);
  gcry_md_close(md);
  return hex;
}

std::string sha256_text(std::string_view text) {
  initialise_crypto();
  unsigned char digest[32];
  gcry_md_hash_buffer(GCRY_MD_SHA256, digest, text.data(), text.size());
  std::string hex;
  for (unsigned char byte : digest) hex += fmt::format("{:02x}", byte);
  return hex;
}

bool is_sha256_digest(const std::string& digest) {
  return digest.size() == 64 && std::all_of(digest.begin(), digest.end(),
                                            [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace trafficid::host
