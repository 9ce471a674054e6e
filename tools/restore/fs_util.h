// Small POSIX file helpers for the restore library: an owning fd, complete
// reads and writes that resume after short transfers and EINTR, and a
// directory-relative tree removal. Errors are ErrorCode::kIo with the
// operation, the name and strerror in the message.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/source.h>

namespace xenstream::restore {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// `name` is used in messages only.
Expected<void> write_all(int fd, Bytes data, const std::string& name);
Expected<void> pwrite_all(int fd, Bytes data, std::uint64_t offset, const std::string& name);
// Reads exactly data.size() octets at offset; a short file is kIo.
Expected<void> pread_all(int fd, std::span<std::byte> data, std::uint64_t offset,
                         const std::string& name);
Expected<void> fsync_fd(int fd, const std::string& name);

// Opens `name` under directory fd `dir` (O_CLOEXEC is always added).
Expected<UniqueFd> open_at(int dir, const std::string& name, int flags, unsigned mode = 0644);

// Writes a whole file under `dir` (truncating), optionally fsynced.
Expected<void> write_file_at(int dir, const std::string& name, std::span<const Bytes> parts,
                             bool durable, unsigned mode = 0644);
// Reads a whole regular file under `dir`, refusing one larger than `max`.
Expected<std::vector<std::byte>> read_file_at(int dir, const std::string& name, std::uint64_t max);

// Removes `name` under `dir` and, if it is a directory, everything in it.
// A missing name is not an error.
Expected<void> remove_tree_at(int dir, const std::string& name);

bool exists_at(int dir, const std::string& name);

// Quotes a string for /bin/sh: 'it'\''s'.
std::string shell_quote(const std::string& s);

}  // namespace xenstream::restore
