#include <xenstream/libstream/source.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

namespace {

// /dev/null for skip(), opened once per process; -1 when it cannot be.
int dev_null() {
  static const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  return fd;
}

// The destination refused octets: at destination offset *off (or at its
// own position), stream offset `at`.
Error write_error(const std::optional<std::uint64_t>& off, int err, std::uint64_t at) {
  Error e = io_error(off ? "writing to the destination at offset " + hex(*off) + " failed"
                         : std::string("writing to the destination failed"),
                     err);
  e.offset = at;
  return e;
}

// Writes `data` to fd at *off (advancing it) or at the fd's position.
// `at` is the stream offset of data[0], for the error.
Expected<void> write_out(int fd, std::optional<std::uint64_t>& off, Bytes data, std::uint64_t at) {
  while (!data.empty()) {
    const ssize_t w = off ? ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(*off))
                          : ::write(fd, data.data(), data.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return write_error(off, w < 0 ? errno : EIO, at);
    const auto k = static_cast<std::size_t>(w);
    data = data.subspan(k);
    at += k;
    if (off) *off += k;
  }
  return {};
}

// Largest piece transfer() copies through a window at once.
constexpr std::size_t kCopyChunk = 1u << 20;

}  // namespace

// skip() and transfer() in one loop: what is buffered already goes first
// (written out, or for skip() just consumed); then, while the input can,
// the rest moves straight from it to `fd` inside the kernel (skip() moves
// it to /dev/null); else it comes through the window. `fd` < 0 discards.
Expected<void> Source::move(std::uint64_t n, int fd, std::optional<std::uint64_t> fd_offset,
                            std::string_view what) {
  const std::uint64_t want_end = position_ + n;
  const bool discard = fd < 0;
  const int to = discard ? dev_null() : fd;
  bool direct = to >= 0;
  while (n > 0) {
    auto got = fill(0);
    if (!got) return std::move(got).error();
    if (got->empty() && direct) {
      std::uint64_t off = fd_offset.value_or(0);
      auto moved = move_direct(n, to, fd_offset ? &off : nullptr);
      if (!moved) return std::move(moved).error();
      if (*moved) {
        if (**moved == 0) return truncated_error(position_, want_end, what);
        position_ += **moved;
        n -= **moved;
        if (fd_offset) fd_offset = off;
        continue;
      }
      direct = false;
    }
    if (got->empty()) {
      got = fill(discard ? 1 : static_cast<std::size_t>(std::min<std::uint64_t>(n, kCopyChunk)));
      if (!got) return std::move(got).error();
      if (got->empty()) return truncated_error(position_, want_end, what);
    }
    const std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(n, got->size()));
    if (!discard) XS_TRY(write_out(fd, fd_offset, got->first(step), position_));
    consume(step);
    n -= step;
  }
  return {};
}

Expected<void> Source::skip(std::uint64_t n, std::string_view what) {
  return move(n, -1, std::nullopt, what);
}

Expected<void> Source::transfer(std::uint64_t n, int fd, std::optional<std::uint64_t> fd_offset,
                                std::string_view what) {
  if (fd < 0) return io_error("transfer to an invalid descriptor", EBADF);
  return move(n, fd, fd_offset, what);
}

// Whole pages through the window (what is buffered first), else straight
// from the input (move_pages_direct) while it can.
Expected<void> Source::transfer_pages(std::uint64_t pages, int fd, std::uint64_t fd_offset,
                                      const PageFilter& keep, std::string_view what) {
  if (fd < 0) return io_error("transfer to an invalid descriptor", EBADF);
  constexpr std::size_t kPage = kPageOctets;
  const std::uint64_t want_end = position_ + pages * kPage;
  std::uint64_t index = 0;  // pages moved so far
  bool direct = true;
  while (index < pages) {
    auto got = fill(0);
    if (!got) return std::move(got).error();
    if (got->empty() && direct) {
      auto moved = move_pages_direct(pages - index, fd, fd_offset + index * kPage, index, keep);
      if (!moved) return std::move(moved).error();
      if (*moved) {
        const std::uint64_t k = **moved;
        position_ += k;
        if (k == 0 || k % kPage != 0) return truncated_error(position_, want_end, what);
        index += k / kPage;
        continue;
      }
      direct = false;
    }
    if (got->size() < kPage) {
      // Less than a page buffered: complete it, or with nothing buffered,
      // read up to kCopyChunk of pages.
      const std::uint64_t ask = got->empty() ? std::min<std::uint64_t>(pages - index, kCopyChunk / kPage) * kPage
                                             : kPage;
      got = fill(static_cast<std::size_t>(ask));
      if (!got) return std::move(got).error();
      if (got->size() < kPage) {
        consume(got->size());
        return truncated_error(position_, want_end, what);
      }
    }
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(pages - index, got->size() / kPage));
    std::size_t run = 0;  // pages kept just before page i, written at once
    std::optional<std::uint64_t> off;
    auto flush = [&](std::size_t i) -> Expected<void> {
      if (run == 0) return {};
      const std::size_t from = (i - run) * kPage;
      off = fd_offset + (index + i - run) * kPage;
      XS_TRY(write_out(fd, off, got->subspan(from, run * kPage), position_ + from));
      run = 0;
      return {};
    };
    for (std::size_t i = 0; i < n; ++i) {
      if (keep(index + i, got->subspan(i * kPage, kPage))) {
        ++run;
      } else {
        XS_TRY(flush(i));
      }
    }
    XS_TRY(flush(n));
    consume(n * kPage);
    index += n;
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

// ---------------------------------------------------------------------------

namespace {

std::size_t round_to_pages(std::size_t n) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

}  // namespace

WindowSource::WindowSource(std::size_t max_window, std::size_t chunk)
    : max_window_(max_window), chunk_(chunk) {}

WindowSource::~WindowSource() {
  if (base_ != nullptr) ::munmap(base_, 2 * cap_);
}

Bytes WindowSource::view() const {
  if (cap_ == 0) return {};
  return Bytes(base_ + begin_ % cap_, buffered());
}

// A ring of `cap` octets (a page multiple) mapped twice, back to back, from
// one memory file: base[i] and base[cap + i] are the same octet.
Expected<void> WindowSource::grow(std::size_t cap) {
  cap = round_to_pages(cap);
  const int mfd = ::memfd_create("xenstream-window", MFD_CLOEXEC);
  if (mfd < 0) return io_error("cannot create the read window", errno);
  void* area = MAP_FAILED;
  int err = 0;
  if (::ftruncate(mfd, static_cast<off_t>(cap)) != 0) {
    err = errno;
  } else {
    area = ::mmap(nullptr, 2 * cap, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) err = errno;
  }
  if (area != MAP_FAILED) {
    auto* b = static_cast<std::byte*>(area);
    if (::mmap(b, cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mfd, 0) == MAP_FAILED ||
        ::mmap(b + cap, cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mfd, 0) == MAP_FAILED) {
      err = errno;
      ::munmap(area, 2 * cap);
      area = MAP_FAILED;
    }
  }
  ::close(mfd);
  if (area == MAP_FAILED) {
    Error e = io_error("cannot map a read window of " + hex(cap) + " octets", err);
    e.offset = position_;
    return e;
  }
  auto* fresh = static_cast<std::byte*>(area);
  if (buffered() > 0) std::memcpy(fresh + begin_ % cap, base_ + begin_ % cap_, buffered());
  if (base_ != nullptr) ::munmap(base_, 2 * cap_);
  base_ = fresh;
  cap_ = cap;
  return {};
}

Expected<Bytes> WindowSource::fill(std::size_t min) {
  if (buffered() >= min || eof_) return view();
  if (min > max_window_) {
    return make_error(ErrorCode::kLimit, position_,
                      "a single read of " + hex(min) + " bytes exceeds the window cap of " +
                          hex(max_window_) + " bytes");
  }
  // The window may grow to the largest request (never past max_window_),
  // rounded up to whole chunks so that reads stay large; it grows only when
  // full, as the bytes arrive.
  std::size_t want = std::max(min, chunk_);
  want = std::min(max_window_, (want + chunk_ - 1) / chunk_ * chunk_);
  want = std::max(want, min);
  while (buffered() < min) {
    if (buffered() == cap_) XS_TRY(grow(std::min(want, std::max(2 * cap_, chunk_))));
    const std::size_t room = cap_ - buffered();
    const std::size_t ask = read_ahead_ ? room : std::min(room, min - buffered());
    auto n = read_some(base_ + end_ % cap_, ask);
    if (!n) return std::move(n).error();
    if (*n == 0) {
      eof_ = true;
      break;
    }
    end_ += *n;
  }
  return view();
}

// ---------------------------------------------------------------------------

FdSource::FdSource(int fd, std::string name, std::size_t max_window)
    : WindowSource(max_window, kDefaultChunk), fd_(fd), name_(std::move(name)) {
  widen_pipe(fd_);
  struct stat st {};
  if (::fstat(fd_, &st) == 0) {
    in_pipe_ = S_ISFIFO(st.st_mode);
    in_file_ = S_ISREG(st.st_mode);
  }
}

FdSource::~FdSource() {
  close_relay();
  if (owned_) ::close(fd_);
}

Expected<std::unique_ptr<FdSource>> FdSource::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open " + path, errno);
  auto src = std::make_unique<FdSource>(fd, path);
  src->owned_ = true;
  return src;
}

Expected<std::size_t> FdSource::read_some(std::byte* dst, std::size_t max) {
  for (;;) {
    const ssize_t n = ::read(fd_, dst, max);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    Error e = io_error("read from " + name_ + " failed", errno);
    e.offset = position_ + buffered();
    return e;
  }
}

Expected<std::optional<std::uint64_t>> FdSource::move_direct(std::uint64_t n, int fd,
                                                             std::uint64_t* fd_offset) {
  // One call moves at most this much, so that a short move is continued by
  // the caller and the offsets stay exact.
  constexpr std::uint64_t kMaxMove = 1u << 30;
  const auto len = static_cast<std::size_t>(std::min(n, kMaxMove));
  struct stat out {};
  const bool out_known = ::fstat(fd, &out) == 0;
  const bool out_pipe = out_known && S_ISFIFO(out.st_mode);
  const bool out_file = out_known && S_ISREG(out.st_mode);
  if (in_file_ && out_known && S_ISCHR(out.st_mode) && out.st_rdev == makedev(1, 3)) {
    // Skipping in a regular file (to /dev/null): seek past, up to its end.
    struct stat in {};
    const off_t at = ::lseek(fd_, 0, SEEK_CUR);
    if (at >= 0 && ::fstat(fd_, &in) == 0) {
      const std::uint64_t left = in.st_size > at ? static_cast<std::uint64_t>(in.st_size - at) : 0;
      const std::uint64_t k = std::min<std::uint64_t>(len, left);
      if (::lseek(fd_, static_cast<off_t>(k), SEEK_CUR) >= 0) {
        bypassed_ += k;
        return std::optional<std::uint64_t>(k);
      }
    }
  }
  if (in_pipe_ && out_file && splice_ok_ && relay_ok_) return relay_into_file(len, fd, fd_offset);
  for (;;) {
    if ((in_pipe_ || out_pipe) && splice_ok_) {
      loff_t off = fd_offset ? static_cast<loff_t>(*fd_offset) : 0;
      const ssize_t k = ::splice(fd_, nullptr, fd, fd_offset ? &off : nullptr, len, SPLICE_F_MOVE);
      if (k >= 0) {
        if (fd_offset) *fd_offset = static_cast<std::uint64_t>(off);
        bypassed_ += static_cast<std::uint64_t>(k);
        return std::optional<std::uint64_t>(static_cast<std::uint64_t>(k));
      }
      if (errno == EINTR) continue;
      if (errno != EINVAL) {
        Error e = io_error("splice from " + name_ + " failed", errno);
        e.offset = position_;
        return e;
      }
      splice_ok_ = false;  // this kernel or file system refuses: copy from now on
    }
    if (in_file_ && out_file && copy_ok_) {
      loff_t off = fd_offset ? static_cast<loff_t>(*fd_offset) : 0;
      const ssize_t k = ::copy_file_range(fd_, nullptr, fd, fd_offset ? &off : nullptr, len, 0);
      if (k >= 0) {
        if (fd_offset) *fd_offset = static_cast<std::uint64_t>(off);
        bypassed_ += static_cast<std::uint64_t>(k);
        return std::optional<std::uint64_t>(static_cast<std::uint64_t>(k));
      }
      if (errno == EINTR) continue;
      if (errno != EINVAL && errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP &&
          errno != EBADF) {
        Error e = io_error("copy_file_range from " + name_ + " failed", errno);
        e.offset = position_;
        return e;
      }
      copy_ok_ = false;
    }
    return std::optional<std::uint64_t>{};
  }
}

// From the input pipe into a file, through the relay pipe. splice(2) into a
// file holds the source pipe's lock for the whole write into the page cache,
// so splicing the input pipe straight into the file stalls whoever feeds it
// (a cat, an ssh, xl) for as long as the file system takes. Moving the pages
// to the relay first only hands over page references, and the input's lock
// is held for that alone; the copy into the file then holds the relay's
// lock, and the feeder writes on meanwhile. On a 2-core VM this took a pipe
// to file copy from 1.2x to 1.6x the speed of `cat | cat > file`.
Expected<std::optional<std::uint64_t>> FdSource::relay_into_file(std::size_t len, int fd,
                                                                 std::uint64_t* fd_offset) {
  if (!open_relay()) return move_direct(len, fd, fd_offset);  // relay_ok_ is cleared
  ssize_t k;
  do {
    k = ::splice(fd_, nullptr, relay_[1], nullptr, std::min(len, relay_size_), 0);
  } while (k < 0 && errno == EINTR);
  if (k < 0) {
    if (errno == EINVAL) {  // the input refuses splice; nothing was taken from it
      splice_ok_ = false;
      return std::optional<std::uint64_t>{};
    }
    Error e = io_error("splice from " + name_ + " failed", errno);
    e.offset = position_;
    return e;
  }
  // The k octets have left the input: from here on they must reach the file
  // or the move fails.
  auto left = static_cast<std::size_t>(k);
  std::optional<std::uint64_t> off;
  if (fd_offset) off = *fd_offset;
  while (left > 0) {
    loff_t at = off ? static_cast<loff_t>(*off) : 0;
    const ssize_t m = ::splice(relay_[0], nullptr, fd, off ? &at : nullptr, left, 0);
    if (m > 0) {
      left -= static_cast<std::size_t>(m);
      bypassed_ += static_cast<std::uint64_t>(m);
      if (off) off = static_cast<std::uint64_t>(at);
      continue;
    }
    if (m < 0 && errno == EINTR) continue;
    const std::uint64_t at_octet = position_ + (static_cast<std::size_t>(k) - left);
    if (m < 0 && errno == EINVAL) {
      // The file refuses splice (an O_APPEND file, a file system without
      // it): what is in the relay goes through a buffer, and later moves
      // through the window.
      splice_ok_ = false;
      auto copied = copy_out_of_relay(left, fd, off, at_octet);
      if (!copied) return std::move(copied).error();
      break;
    }
    close_relay();  // whatever it still holds belongs to a failed move
    return write_error(off, m < 0 ? errno : EIO, at_octet);
  }
  if (fd_offset) *fd_offset = *off;
  return std::optional<std::uint64_t>(static_cast<std::uint64_t>(k));
}

// Makes the relay pipe and the look pipe beside it, the look pipe no
// smaller than the relay (tee(2) duplicates buffer by buffer, so then it
// always takes all the relay holds). False, for good, when it cannot.
bool FdSource::open_relay() {
  if (relay_[0] >= 0) return true;
  if (!relay_ok_) return false;
  if (::pipe2(relay_, O_CLOEXEC) != 0 || ::pipe2(look_, O_CLOEXEC) != 0) {
    close_relay();
    relay_ok_ = false;
    return false;
  }
  widen_pipe(relay_[1]);
  widen_pipe(look_[1]);
  const int relay = ::fcntl(relay_[1], F_GETPIPE_SZ);
  const int look = ::fcntl(look_[1], F_GETPIPE_SZ);
  if (relay > 0 && look > 0 && look < relay) ::fcntl(relay_[1], F_SETPIPE_SZ, look);
  const int size = ::fcntl(relay_[1], F_GETPIPE_SZ);
  relay_size_ = size > 0 ? static_cast<std::size_t>(size) : (64u << 10);
  return true;
}

// Duplicates what the relay holds (`held` octets) into the look pipe and
// reads it into look_buf_; returns how much that is (all of it but for a
// system that splits buffers differently than it says).
Expected<std::size_t> FdSource::look_into_relay(std::size_t held) {
  ssize_t t;
  do {
    t = ::tee(relay_[0], look_[1], held, 0);
  } while (t < 0 && errno == EINTR);
  if (t <= 0) return io_error("tee from the relay pipe failed", t < 0 ? errno : EIO);
  if (look_buf_.size() < relay_size_) look_buf_.resize(relay_size_);
  const auto teed = static_cast<std::size_t>(t);
  std::size_t got = 0;
  while (got < teed) {
    const ssize_t r = ::read(look_[0], look_buf_.data() + got, std::min(teed - got, look_buf_.size() - got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return io_error("reading the look pipe failed", r < 0 ? errno : EIO);
    got += static_cast<std::size_t>(r);
  }
  return teed;
}

// transfer_pages() from the input pipe into a file. Round by round: the
// relay takes up to its size from the input (splice, page references only);
// what it holds is duplicated with tee(2) and read for the look; then each
// whole page leaves the relay into the file at its offset, or into
// /dev/null when `keep` refuses it. A page the input has not finished yet
// stays in the relay for the next round. Octets go through look_buf_ only
// if the file refuses splice (EINVAL), for the rest of this call.
Expected<std::optional<std::uint64_t>> FdSource::move_pages_direct(std::uint64_t pages, int fd,
                                                                   std::uint64_t fd_offset,
                                                                   std::uint64_t first,
                                                                   const PageFilter& keep) {
  constexpr std::size_t kPage = kPageOctets;
  struct stat out {};
  if (!in_pipe_ || !splice_ok_ || ::fstat(fd, &out) != 0 || !S_ISREG(out.st_mode) || !open_relay()) {
    return std::optional<std::uint64_t>{};
  }
  const std::size_t room = std::max(relay_size_ / kPage, std::size_t{1}) * kPage;
  const std::uint64_t total = pages * kPage;
  std::uint64_t done = 0;  // octets of whole pages moved or dropped
  std::size_t held = 0;    // octets in the relay, taken from the input
  bool splice_out = true;  // cleared when the file refuses splice
  // The relay's first `n` octets leave it: into the file at `at` (or with
  // at == nullopt, into /dev/null), spliced or, for a file that refused
  // splice, written from look_buf_ at `from`.
  auto leave = [&](std::size_t n, std::optional<std::uint64_t> at, std::size_t from) -> Expected<void> {
    const std::uint64_t stream_at = position_ + done + from;
    const int null_fd = dev_null();
    bool bypass = true;  // false once the octets went to the file from look_buf_
    std::size_t left = n;
    auto write_from_look = [&]() -> Expected<void> {
      auto w = write_out(fd, at, Bytes(look_buf_.data() + from + (n - left), left), stream_at + (n - left));
      if (!w) close_relay();
      at.reset();  // written: what the relay holds of it is dropped
      bypass = false;
      return w;
    };
    if (at && !splice_out) XS_TRY(write_from_look());
    while (left > 0) {
      ssize_t m;
      if (at || null_fd >= 0) {
        loff_t o = at ? static_cast<loff_t>(*at) : 0;
        m = ::splice(relay_[0], nullptr, at ? fd : null_fd, at ? &o : nullptr, left, 0);
        if (m > 0 && at) at = static_cast<std::uint64_t>(o);
      } else {  // no /dev/null: read it away (the same octets look_buf_ holds)
        m = ::read(relay_[0], look_buf_.data() + from + (n - left), left);
      }
      if (m > 0) {
        left -= static_cast<std::size_t>(m);
        if (bypass) bypassed_ += static_cast<std::uint64_t>(m);
        continue;
      }
      if (m < 0 && errno == EINTR) continue;
      if (m < 0 && errno == EINVAL && at) {  // the file refuses splice
        splice_out = false;
        XS_TRY(write_from_look());
        continue;
      }
      const int err = m < 0 ? errno : EIO;
      close_relay();  // what it still holds belongs to a failed move
      if (at) return write_error(at, err, stream_at + (n - left));
      Error e = io_error("dropping pages from the relay pipe failed", err);
      e.offset = stream_at + (n - left);
      return e;
    }
    return {};
  };
  while (done < total) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(total - done, room)) - held;
    const ssize_t k = ::splice(fd_, nullptr, relay_[1], nullptr, want, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      const int err = errno;
      if (err == EINVAL && done == 0 && held == 0) {  // the input refuses splice; nothing taken
        splice_ok_ = false;
        return std::optional<std::uint64_t>{};
      }
      close_relay();
      Error e = io_error("splice from " + name_ + " failed", err);
      e.offset = position_ + done + held;
      return e;
    }
    if (k == 0) {  // end of input: a cut page is dropped with the relay
      close_relay();
      if (!splice_out) splice_ok_ = false;
      return std::optional<std::uint64_t>(done + held);
    }
    held += static_cast<std::size_t>(k);
    if (held < kPage) continue;
    auto teed = look_into_relay(held);
    if (!teed) {
      close_relay();
      Error e = std::move(teed).error();
      e.offset = position_ + done;
      return e;
    }
    const std::size_t n = std::min(held, *teed) / kPage;
    if (n == 0) {
      close_relay();
      return make_error(ErrorCode::kIo, position_ + done, "tee duplicated less than a page of the relay pipe");
    }
    // Runs of pages kept, and of pages dropped, leave the relay at once.
    std::size_t run = 0;
    bool run_kept = false;
    for (std::size_t i = 0; i <= n; ++i) {
      const bool kept =
          i < n && keep(first + done / kPage + i, Bytes(look_buf_.data() + i * kPage, kPage));
      if (i < n && run > 0 && kept == run_kept) {
        ++run;
        continue;
      }
      if (run > 0) {
        const std::size_t from = (i - run) * kPage;
        XS_TRY(leave(run * kPage, run_kept ? std::optional<std::uint64_t>(fd_offset + done + from) : std::nullopt,
                     from));
      }
      run = 1;
      run_kept = kept;
    }
    done += n * kPage;
    held -= n * kPage;
  }
  if (!splice_out) splice_ok_ = false;
  return std::optional<std::uint64_t>(done);
}

Expected<void> FdSource::copy_out_of_relay(std::size_t n, int fd, std::optional<std::uint64_t>& off,
                                           std::uint64_t at) {
  std::byte buf[64 << 10];
  while (n > 0) {
    const ssize_t r = ::read(relay_[0], buf, std::min(n, sizeof buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {  // cannot happen: the relay holds n octets
      close_relay();
      Error e = io_error("reading back the relay pipe failed", r < 0 ? errno : EIO);
      e.offset = at;
      return e;
    }
    const auto got = static_cast<std::size_t>(r);
    auto written = write_out(fd, off, Bytes(buf, got), at);
    if (!written) {
      close_relay();
      return written;
    }
    n -= got;
    at += got;
  }
  return {};
}

void FdSource::close_relay() {
  for (int* p : {relay_, look_}) {
    for (int i = 0; i < 2; ++i) {
      if (p[i] >= 0) ::close(p[i]);
      p[i] = -1;
    }
  }
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
