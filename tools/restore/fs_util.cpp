#include "tools/restore/fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace xenstream::restore {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Expected<void> write_all(int fd, Bytes data, const std::string& name) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("write to " + name + " failed", errno);
    }
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return {};
}

Expected<void> pwrite_all(int fd, Bytes data, std::uint64_t offset, const std::string& name) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("write to " + name + " at " + hex(offset) + " failed", errno);
    }
    data = data.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

Expected<void> pread_all(int fd, std::span<std::byte> data, std::uint64_t offset,
                         const std::string& name) {
  while (!data.empty()) {
    const ssize_t n = ::pread(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("read from " + name + " at " + hex(offset) + " failed", errno);
    }
    if (n == 0) {
      return make_error(ErrorCode::kIo, 0,
                        "read from " + name + ": the file ends at " + hex(offset));
    }
    data = data.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

Expected<void> fsync_fd(int fd, const std::string& name) {
  if (::fsync(fd) != 0) return io_error("fsync " + name + " failed", errno);
  return {};
}

Expected<UniqueFd> open_at(int dir, const std::string& name, int flags, unsigned mode) {
  const int fd = ::openat(dir, name.c_str(), flags | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) return io_error("cannot open " + name, errno);
  return UniqueFd(fd);
}

Expected<void> write_file_at(int dir, const std::string& name, std::span<const Bytes> parts,
                             bool durable, unsigned mode) {
  auto fd = open_at(dir, name, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (!fd) return std::move(fd).error();
  for (const Bytes& p : parts) XS_TRY(write_all(fd->get(), p, name));
  if (durable) XS_TRY(fsync_fd(fd->get(), name));
  return {};
}

Expected<std::vector<std::byte>> read_file_at(int dir, const std::string& name, std::uint64_t max) {
  auto fd = open_at(dir, name, O_RDONLY);
  if (!fd) return std::move(fd).error();
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return io_error("cannot stat " + name, errno);
  if (!S_ISREG(st.st_mode)) return make_error(ErrorCode::kIo, 0, name + ": not a regular file");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max) {
    return make_error(ErrorCode::kLimit, 0,
                      name + " is " + std::to_string(size) + " octets, more than the " +
                          std::to_string(max) + " accepted");
  }
  std::vector<std::byte> data(static_cast<std::size_t>(size));
  XS_TRY(pread_all(fd->get(), data, 0, name));
  return data;
}

bool exists_at(int dir, const std::string& name) {
  struct stat st {};
  return ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Expected<void> remove_tree_at(int dir, const std::string& name) {
  struct stat st {};
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return io_error("cannot stat " + name, errno);
  }
  if (S_ISDIR(st.st_mode)) {
    const int sub = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (sub < 0) return io_error("cannot open " + name, errno);
    DIR* d = ::fdopendir(sub);
    if (d == nullptr) {
      const int err = errno;
      ::close(sub);
      return io_error("cannot list " + name, err);
    }
    std::vector<std::string> names;
    while (dirent* ent = ::readdir(d)) {
      const std::string n = ent->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    Expected<void> result;
    for (const auto& n : names) {
      auto r = remove_tree_at(::dirfd(d), n);
      if (!r && result) result = std::move(r);
    }
    ::closedir(d);
    if (!result) return result;
    if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return io_error("cannot remove " + name, errno);
    }
    return {};
  }
  if (::unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT) {
    return io_error("cannot remove " + name, errno);
  }
  return {};
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

}  // namespace xenstream::restore
