#include <xenstream/libstream/source.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace xenstream {

Expected<Bytes> Source::pull(std::size_t min, std::string_view what) {
  auto got = fill(min);
  if (!got) return std::move(got).error();
  if (got->size() < min) {
    return truncated_error(position_, position_ + min, what);
  }
  return got;
}

Expected<Bytes> Source::peek(std::size_t max) {
  auto got = fill(max);
  if (!got) return std::move(got).error();
  return got->first(std::min(max, got->size()));
}

void Source::consume(std::size_t n) {
  advance(n);
  position_ += n;
}

Expected<void> Source::skip(std::uint64_t n, std::string_view what) {
  const std::uint64_t want_end = position_ + n;
  while (n > 0) {
    auto got = fill(1);
    if (!got) return std::move(got).error();
    if (got->empty()) return truncated_error(position_, want_end, what);
    const std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(n, got->size()));
    consume(step);
    n -= step;
  }
  return {};
}

Expected<bool> Source::at_end() {
  auto got = fill(1);
  if (!got) return std::move(got).error();
  return got->empty();
}

// ---------------------------------------------------------------------------

MappedFile::MappedFile(void* base, std::size_t size, std::string name)
    : MemorySource(Bytes(static_cast<const std::byte*>(base), size), std::move(name)),
      base_(base),
      size_(size) {}

MappedFile::~MappedFile() {
  if (base_ != nullptr) munmap(base_, size_);
}

Expected<std::unique_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open " + path, errno);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return io_error("cannot stat " + path, err);
  }
  if (!S_ISREG(st.st_mode) || st.st_size == 0) {
    ::close(fd);
    return make_error(ErrorCode::kUsage, 0, path + ": not a non-empty regular file");
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* base = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);
  if (base == MAP_FAILED) return io_error("cannot map " + path, err);
  madvise(base, size, MADV_SEQUENTIAL);
  return std::unique_ptr<MappedFile>(new MappedFile(base, size, path));
}

void MappedFile::advance(std::size_t n) {
  MemorySource::advance(n);
  // Drop fully consumed 8 MiB stretches from this process's page tables; the
  // page cache keeps them, and the resident set stays flat on big files.
  constexpr std::size_t kRelease = 8u << 20;
  const auto pos = static_cast<std::size_t>(position() + n);
  if (pos >= released_ + 2 * kRelease) {
    const std::size_t upto = (pos - kRelease) & ~(kRelease - 1);
    madvise(static_cast<std::byte*>(base_) + released_, upto - released_, MADV_DONTNEED);
    released_ = upto;
  }
}

// ---------------------------------------------------------------------------

namespace {

// A pipe's default 64 KiB buffer costs the reader a wake-up per 64 KiB; at
// 1 MiB (the unprivileged maximum by default) writer and reader each run
// sixteen times longer between switches. Best effort: anything that is not a
// pipe, or a lower system limit, is left as it is.
void widen_pipe(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) return;
  for (int size = 1 << 20; size >= (1 << 16); size >>= 1) {
    if (::fcntl(fd, F_SETPIPE_SZ, size) >= 0) return;
  }
}

}  // namespace

FdSource::FdSource(int fd, std::string name, std::size_t max_window)
    : fd_(fd), name_(std::move(name)), max_window_(max_window) {
  widen_pipe(fd_);
}

FdSource::~FdSource() {
  if (owned_) ::close(fd_);
}

Expected<std::unique_ptr<FdSource>> FdSource::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open " + path, errno);
  auto src = std::make_unique<FdSource>(fd, path);
  src->owned_ = true;
  return src;
}

Expected<Bytes> FdSource::fill(std::size_t min) {
  if (end_ - begin_ >= min || eof_) {
    return Bytes(buf_.data() + begin_, end_ - begin_);
  }
  if (min > max_window_) {
    return make_error(ErrorCode::kLimit, position_,
                      "a single read of " + hex(min) + " bytes exceeds the window cap of " +
                          hex(max_window_) + " bytes");
  }
  // Make room: slide unconsumed bytes to the front. The window may grow to
  // the largest request (never past max_window_), rounded up to whole read
  // chunks so that reads stay large; it grows only as the bytes arrive
  // (doubling when full), so a header that claims a huge body costs memory
  // in proportion to the input that is really there, not to the claim.
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  std::size_t want = std::max(min, kDefaultChunk);
  want = std::min(max_window_, (want + kDefaultChunk - 1) / kDefaultChunk * kDefaultChunk);
  want = std::max(want, min);
  while (end_ < min) {
    if (end_ == buf_.size()) {
      buf_.resize(std::min(want, std::max(2 * buf_.size(), kDefaultChunk)));
    }
    const ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (n < 0) {
      if (errno == EINTR) continue;
      Error e = io_error("read from " + name_ + " failed", errno);
      e.offset = position_ + end_;
      return e;
    }
    if (n == 0) {
      eof_ = true;
      break;
    }
    end_ += static_cast<std::size_t>(n);
  }
  return Bytes(buf_.data(), end_);
}

// ---------------------------------------------------------------------------

Expected<std::unique_ptr<Source>> open_plain_source(const std::string& path) {
  if (path == "-") return std::unique_ptr<Source>(std::make_unique<FdSource>(0, "<stdin>"));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return io_error("cannot open " + path, errno);
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    auto mapped = MappedFile::open(path);
    if (!mapped) return std::move(mapped).error();
    return std::unique_ptr<Source>(std::move(mapped).value());
  }
  if (S_ISDIR(st.st_mode)) {
    return make_error(ErrorCode::kUsage, 0, path + ": is a directory");
  }
  auto fdsrc = FdSource::open(path);
  if (!fdsrc) return std::move(fdsrc).error();
  return std::unique_ptr<Source>(std::move(fdsrc).value());
}

}  // namespace xenstream
