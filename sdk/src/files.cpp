#include "trafficid/files.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "trafficid/error.hpp"

namespace trafficid {

namespace fs = std::filesystem;

namespace {

std::string why(int error) {
  if (error == ENOSPC || error == EDQUOT) return "the disk is full: free space and run it again";
  if (error == EACCES || error == EPERM || error == EROFS)
    return fmt::format("{}: check the folder's permissions", std::strerror(error));
  return std::strerror(error);
}

void sync_fd(int fd, const fs::path& what) {
  while (::fsync(fd) != 0)
    if (errno != EINTR) {
      // A folder on a file system that cannot sync folders (EINVAL) is as durable as it gets.
      if (errno == EINVAL || errno == EROFS) return;
      throw Error(fmt::format("cannot flush {} to the disk: {}", what.string(), why(errno)));
    }
}

}  // namespace

void sync_file(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("cannot open {} to flush it: {}", file.string(), why(errno)));
  try {
    sync_fd(fd, file);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

void sync_directory(const fs::path& folder) {
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // nothing to flush that we could reach
  sync_fd(fd, folder);
  ::close(fd);
}

void write_file_atomically(const fs::path& file, std::string_view content) {
  // Unique per process and call: two writers of one file never share (and tear) a temporary.
  static std::atomic<std::uint64_t> counter{0};
  fs::path temporary = file;
  temporary += fmt::format(".tmp-{}-{}", ::getpid(), counter.fetch_add(1));
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(fmt::format("cannot write {}: {}", file.string(), why(errno)));
  auto fail = [&](int error) {
    ::close(fd);
    ::unlink(temporary.c_str());
    throw Error(fmt::format("cannot write {}: {}", file.string(), why(error)));
  };
  for (std::size_t done = 0; done < content.size();) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(errno);
    }
    done += static_cast<std::size_t>(n);
  }
  while (::fsync(fd) != 0)
    if (errno != EINTR) fail(errno);
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw Error(fmt::format("cannot write {}: {}", file.string(), why(error)));
  }
  if (::rename(temporary.c_str(), file.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw Error(fmt::format("cannot write {}: {}", file.string(), why(error)));
  }
  sync_directory(file.parent_path());
}

}  // namespace trafficid
