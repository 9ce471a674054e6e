#include <xenstream/libstream/sink.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace xenstream {

Expected<void> Sink::write(std::span<const Bytes> parts) {
  std::size_t total = 0;
  for (const Bytes& p : parts) total += p.size();
  if (total == 0) return {};
  XS_TRY(do_write(parts, total));
  position_ += total;
  return {};
}

Expected<void> Sink::write_file_range(int fd, std::uint64_t offset, std::uint64_t len) {
  if (len == 0) return {};
  XS_TRY(do_write_file_range(fd, offset, len));
  position_ += len;
  return {};
}

Expected<void> Sink::write_from(Source& in, std::uint64_t n, std::string_view what) {
  if (n == 0) return {};
  XS_TRY(do_write_from(in, n, what));
  position_ += n;
  return {};
}

namespace {
// Largest piece the buffered defaults hold at once.
constexpr std::size_t kBufferedChunk = 1u << 20;
}  // namespace

Expected<void> Sink::do_write_file_range(int fd, std::uint64_t offset, std::uint64_t len) {
  std::vector<std::byte> buf(static_cast<std::size_t>(std::min<std::uint64_t>(len, kBufferedChunk)));
  while (len > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(len, buf.size()));
    const ssize_t got = ::pread(fd, buf.data(), want, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      Error e = got < 0 ? io_error("reading the file to write at " + hex(offset) + " failed", errno)
                        : make_error(ErrorCode::kIo, 0, "the file to write ends at " + hex(offset));
      e.offset = position_;
      return e;
    }
    const Bytes part(buf.data(), static_cast<std::size_t>(got));
    XS_TRY(do_write(std::span<const Bytes>(&part, 1), part.size()));
    offset += static_cast<std::uint64_t>(got);
    len -= static_cast<std::uint64_t>(got);
  }
  return {};
}

Expected<void> Sink::do_write_from(Source& in, std::uint64_t n, std::string_view what) {
  while (n > 0) {
    auto got = in.pull(static_cast<std::size_t>(std::min<std::uint64_t>(n, kBufferedChunk)), what);
    if (!got) return std::move(got).error();
    const Bytes part = got->first(static_cast<std::size_t>(std::min<std::uint64_t>(n, got->size())));
    XS_TRY(do_write(std::span<const Bytes>(&part, 1), part.size()));
    in.consume(part.size());
    n -= part.size();
  }
  return {};
}

Expected<void> BufferSink::do_write(std::span<const Bytes> parts, std::size_t total) {
  data_.reserve(data_.size() + total);
  for (const Bytes& p : parts) data_.insert(data_.end(), p.begin(), p.end());
  return {};
}

int write_fully(int fd, std::span<const Bytes> parts) {
  // `i` indexes parts, `done` counts octets of parts[i] already written.
  std::size_t i = 0;
  std::size_t done = 0;
  iovec iov[IOV_MAX];
  while (i < parts.size()) {
    int n = 0;
    for (std::size_t j = i; j < parts.size() && n < IOV_MAX; ++j) {
      const std::size_t skip = (j == i) ? done : 0;
      if (parts[j].size() == skip) continue;
      iov[n].iov_base = const_cast<std::byte*>(parts[j].data() + skip);
      iov[n].iov_len = parts[j].size() - skip;
      ++n;
    }
    if (n == 0) break;
    const ssize_t w = ::writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    auto left = static_cast<std::size_t>(w);
    while (i < parts.size() && left >= parts[i].size() - done) {
      left -= parts[i].size() - done;
      ++i;
      done = 0;
    }
    done += left;
  }
  return 0;
}

Expected<void> FdSink::do_write(std::span<const Bytes> parts, std::size_t) {
  if (const int err = write_fully(fd_, parts); err != 0) {
    Error e = io_error("write to " + name_ + " failed", err);
    e.offset = position();
    return e;
  }
  return {};
}

Expected<void> FdSink::do_write_file_range(int fd, std::uint64_t offset, std::uint64_t len) {
  if (kind_ == Kind::kUnknown) {
    struct stat st {};
    kind_ = ::fstat(fd_, &st) != 0 ? Kind::kOther
            : S_ISFIFO(st.st_mode) ? Kind::kPipe
            : S_ISREG(st.st_mode)  ? Kind::kFile
                                   : Kind::kOther;
  }
  // One call moves at most this much, so that a short move is continued.
  constexpr std::uint64_t kMaxMove = 1u << 30;
  std::uint64_t done = 0;
  while (done < len && (kind_ == Kind::kPipe || kind_ == Kind::kFile)) {
    auto from = static_cast<loff_t>(offset + done);
    const auto step = static_cast<std::size_t>(std::min(len - done, kMaxMove));
    const ssize_t k = kind_ == Kind::kPipe ? ::splice(fd, &from, fd_, nullptr, step, SPLICE_F_MOVE)
                                           : ::copy_file_range(fd, &from, fd_, nullptr, step, 0);
    if (k > 0) {
      done += static_cast<std::uint64_t>(k);
      continue;
    }
    if (k == 0) {
      Error e = make_error(ErrorCode::kIo, 0, "the file to write ends at " + hex(offset + done));
      e.offset = position() + done;
      return e;
    }
    if (errno == EINTR) continue;
    if (errno == EINVAL || errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP ||
        (errno == EBADF && kind_ == Kind::kFile)) {
      kind_ = Kind::kOther;  // this kernel, file system or open mode refuses: buffer from now on
      break;
    }
    Error e = io_error("write to " + name_ + " failed", errno);
    e.offset = position() + done;
    return e;
  }
  if (done == len) return {};
  return Sink::do_write_file_range(fd, offset + done, len - done);
}

Expected<void> FdSink::do_write_from(Source& in, std::uint64_t n, std::string_view what) {
  return in.transfer(n, fd_, std::nullopt, what);
}

AtomicFile::AtomicFile(int fd, std::string path, std::string temp)
    : FdSink(fd, path), path_(std::move(path)), temp_(std::move(temp)) {}

Expected<std::unique_ptr<AtomicFile>> AtomicFile::create(const std::string& path, unsigned mode) {
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string temp = dir + "/." + base + ".partial-XXXXXX";
  std::vector<char> name(temp.begin(), temp.end());
  name.push_back('\0');
  const int fd = mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return io_error("cannot create a temporary file in " + dir, errno);
  fchmod(fd, static_cast<mode_t>(mode));
  return std::unique_ptr<AtomicFile>(new AtomicFile(fd, path, std::string(name.data())));
}

AtomicFile::~AtomicFile() {
  if (!done_) {
    ::close(fd());
    ::unlink(temp_.c_str());
  }
}

Expected<void> AtomicFile::commit(bool durable) {
  if (done_) return {};
  if (durable && ::fsync(fd()) != 0) return io_error("fsync " + temp_ + " failed", errno);
  if (::close(fd()) != 0) {
    done_ = true;
    const int err = errno;
    ::unlink(temp_.c_str());
    return io_error("close " + temp_ + " failed", err);
  }
  done_ = true;
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    return io_error("cannot rename " + temp_ + " to " + path_, err);
  }
  if (durable) {
    const auto slash = path_.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  return {};
}

OwnedFdSink::~OwnedFdSink() { ::close(fd()); }

Expected<void> Output::commit(bool durable) {
  XS_TRY(sink->flush());
  if (atomic != nullptr) return atomic->commit(durable);
  return {};
}

Expected<Output> open_output(const std::string& path) {
  Output out;
  if (path == "-") {
    out.sink = std::make_unique<FdSink>(1, "<stdout>");
    return out;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) {
      return make_error(ErrorCode::kUsage, 0, path + ": is a directory");
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open " + path, errno);
    out.sink = std::make_unique<OwnedFdSink>(fd, path);
    return out;
  }
  auto file = AtomicFile::create(path);
  if (!file) return std::move(file).error();
  out.atomic = file->get();
  out.sink = std::move(file).value();
  return out;
}

}  // namespace xenstream
