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
