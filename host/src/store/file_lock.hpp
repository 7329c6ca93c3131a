// An exclusive lock on a lock file (flock(2)). The kernel releases it when the object goes or when
// its process dies, however it dies: that is what lets a later process tell a crashed holder from a
// live one (a dataset left half-built, a study trial whose worker was killed).
#pragma once
#include <filesystem>

namespace trafficid::host {

class FileLock {
 public:
  FileLock() = default;
  // Creates `file` if needed and waits until the lock is ours.
  static FileLock wait(const std::filesystem::path& file);
  // Takes the lock if it is free; otherwise an empty FileLock (held() is false).
  static FileLock try_take(const std::filesystem::path& file);
  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() { release(); }

  bool held() const { return fd_ >= 0; }
  void release();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace trafficid::host
