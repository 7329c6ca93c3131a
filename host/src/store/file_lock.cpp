#include "store/file_lock.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include "trafficid/error.hpp"

namespace trafficid::host {

namespace {
int open_lock_file(const std::filesystem::path& file) {
  // O_CLOEXEC: a child process (a tuning trial) must not inherit, and so keep, the lock.
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(fmt::format("cannot create {}: {}", file.string(), std::strerror(errno)));
  return fd;
}
}  // namespace

FileLock FileLock::wait(const std::filesystem::path& file) {
  const int fd = open_lock_file(file);
  while (::flock(fd, LOCK_EX) != 0)
    if (errno != EINTR) {
      const int error = errno;
      ::close(fd);
      throw Error(fmt::format("cannot lock {}: {}", file.string(), std::strerror(error)));
    }
  return FileLock(fd);
}

FileLock FileLock::try_take(const std::filesystem::path& file) {
  const int fd = open_lock_file(file);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd);
    if (error == EWOULDBLOCK) return FileLock();
    throw Error(fmt::format("cannot lock {}: {}", file.string(), std::strerror(error)));
  }
  return FileLock(fd);
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void FileLock::release() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace trafficid::host
