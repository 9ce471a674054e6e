#include "tools/convert/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace xenstream::convert {

namespace {

Expected<int> anonymous_file(const std::string& dir_hint) {
  std::string dir = dir_hint;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    dir = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  }
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  std::string templ = dir + "/.streamconv-spool-XXXXXX";
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  fd = mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return io_error("cannot create a temporary file in " + dir, errno);
  ::unlink(name.data());
  return fd;
}

Expected<void> write_all(int fd, std::span<const Bytes> parts) {
  if (const int err = write_fully(fd, parts); err != 0) {
    return io_error("cannot write to a temporary spool file", err);
  }
  return {};
}

}  // namespace

Spool::Spool(std::string temp_dir, std::size_t memory_limit)
    : temp_dir_(std::move(temp_dir)), memory_limit_(memory_limit) {}

Spool::~Spool() {
  if (fd_ >= 0) ::close(fd_);
}

Spool::Spool(Spool&& other) noexcept
    : temp_dir_(std::move(other.temp_dir_)),
      memory_limit_(other.memory_limit_),
      memory_(std::move(other.memory_)),
      fd_(other.fd_),
      size_(other.size_) {
  other.fd_ = -1;
  other.size_ = 0;
}

Spool& Spool::operator=(Spool&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    temp_dir_ = std::move(other.temp_dir_);
    memory_limit_ = other.memory_limit_;
    memory_ = std::move(other.memory_);
    fd_ = other.fd_;
    size_ = other.size_;
    other.fd_ = -1;
    other.size_ = 0;
  }
  return *this;
}

Expected<void> Spool::spill() {
  auto fd = anonymous_file(temp_dir_);
  if (!fd) return std::move(fd).error();
  fd_ = *fd;
  const Bytes held(memory_.data(), memory_.size());
  XS_TRY(write_all(fd_, std::span<const Bytes>(&held, 1)));
  memory_.clear();
  memory_.shrink_to_fit();
  return {};
}

Expected<void> Spool::append(std::span<const Bytes> parts) {
  std::uint64_t total = 0;
  for (const Bytes& p : parts) total += p.size();
  if (fd_ < 0 && size_ + total > memory_limit_) XS_TRY(spill());
  if (fd_ >= 0) {
    XS_TRY(write_all(fd_, parts));
  } else {
    for (const Bytes& p : parts) memory_.insert(memory_.end(), p.begin(), p.end());
  }
  size_ += total;
  return {};
}

Expected<void> Spool::copy_to(Sink& out) const {
  if (fd_ < 0) return out.write(Bytes(memory_.data(), memory_.size()));
  std::vector<std::byte> buf(std::min<std::uint64_t>(size_, 1u << 20));
  std::uint64_t at = 0;
  while (at < size_) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size_ - at));
    const ssize_t n = ::pread(fd_, buf.data(), want, static_cast<off_t>(at));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot read back a temporary spool file", errno);
    }
    if (n == 0) return make_error(ErrorCode::kIo, 0, "a temporary spool file is shorter than written");
    XS_TRY(out.write(Bytes(buf.data(), static_cast<std::size_t>(n))));
    at += static_cast<std::uint64_t>(n);
  }
  return {};
}

void Spool::clear() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  memory_.clear();
  size_ = 0;
}

}  // namespace xenstream::convert
