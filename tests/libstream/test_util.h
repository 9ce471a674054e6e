// Helpers shared by the libstream tests: byte buffers, whole-stream walks
// that record what the cursor saw, and pipes fed by a writer thread.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <optional>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/record_writer.h>
#include <xenstream/libstream/source.h>
#include <xenstream/libstream/stream_cursor.h>

namespace xenstream::test {

using Buffer = std::vector<std::byte>;

inline Bytes view(const Buffer& b) { return Bytes(b.data(), b.size()); }
inline Bytes view(std::string_view s) {
  return Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size());
}
inline Buffer bytes_of(std::string_view s) {
  const auto v = view(s);
  return Buffer(v.begin(), v.end());
}
inline Buffer pattern(std::size_t n, std::uint8_t salt = 0) {
  Buffer b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = std::byte(static_cast<std::uint8_t>(i * 31 + salt));
  return b;
}
inline std::string hexdump(Bytes b) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (std::byte x : b) {
    s += digits[std::to_integer<unsigned>(x) >> 4];
    s += digits[std::to_integer<unsigned>(x) & 15];
  }
  return s;
}

// One record as the cursor yielded it, with a copy of its body.
struct SeenRecord {
  Layer layer;
  std::uint32_t type;
  std::uint32_t length;
  std::uint64_t offset;
  std::uint64_t index;
  Buffer body;
  std::size_t padding;
  bool operator==(const SeenRecord&) const = default;
};

// Outcome of a whole walk: every record, then how it ended.
struct Walk {
  bool container_ok = false;
  ContainerInfo container;
  std::vector<SeenRecord> records;
  bool done = false;         // the cursor saw the outermost END
  bool ok = false;           // done and finish() found nothing after it
  std::uint64_t checkpoints = 0;
  std::optional<Error> error;  // the error that stopped the walk

  std::string error_text() const { return error ? error->describe() : std::string("(none)"); }
};

inline bool same_error(const std::optional<Error>& a, const std::optional<Error>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  return a->code == b->code && a->offset == b->offset && a->message == b->message;
}

inline bool operator==(const Walk& a, const Walk& b) {
  return a.container_ok == b.container_ok && a.records == b.records && a.done == b.done &&
         a.ok == b.ok && a.checkpoints == b.checkpoints && same_error(a.error, b.error);
}

// Reads the container, then walks every record with a StreamCursor.
// `keep_bodies` = false skips copying bodies (large streams).
inline Walk walk(Source& src, bool keep_bodies = true, ReaderLimits limits = {}) {
  Walk w;
  auto c = read_container(src);
  if (!c) {
    w.error = c.error();
    return w;
  }
  w.container_ok = true;
  w.container = *c;
  StreamCursor cur(src, c->payload, limits);
  if (auto s = cur.start(); !s) {
    w.error = s.error();
    return w;
  }
  while (!cur.done()) {
    auto r = cur.next();
    if (!r) {
      w.error = r.error();
      w.checkpoints = cur.checkpoints();
      return w;
    }
    SeenRecord s{r->layer, r->type, r->length, r->offset, r->index, {}, r->padding.size()};
    if (keep_bodies) s.body.assign(r->body.begin(), r->body.end());
    w.records.push_back(std::move(s));
  }
  w.done = true;
  w.checkpoints = cur.checkpoints();
  auto f = cur.finish();
  if (!f) {
    w.error = f.error();
    return w;
  }
  w.ok = true;
  return w;
}

inline Walk walk_memory(const Buffer& b, bool keep_bodies = true) {
  MemorySource src(view(b));
  return walk(src, keep_bodies);
}

// A pipe whose write end is fed from a thread. Chunk sizes cycle through
// `chunks`; with `lockstep`, each chunk is written only after the reader has
// drained the previous one, so the reader's read() calls see exactly these
// boundaries (for chunks up to the pipe's capacity).
class PipeFeeder {
 public:
  PipeFeeder(Buffer data, std::vector<std::size_t> chunks, bool lockstep)
      : data_(std::move(data)), chunks_(std::move(chunks)), lockstep_(lockstep) {
    std::signal(SIGPIPE, SIG_IGN);  // a reader that stops early must not kill us
    if (::pipe2(fds_, O_CLOEXEC) != 0) std::abort();
    thread_ = std::thread([this] { run(); });
  }
  ~PipeFeeder() {
    stop_ = true;
    close_read();
    thread_.join();
  }
  int read_fd() const { return fds_[0]; }
  // Lets the feeder give up if the reader stops early.
  void close_read() {
    if (fds_[0] >= 0) {
      stop_ = true;
      ::close(fds_[0]);
      fds_[0] = -1;
    }
  }
  bool wrote_all() const { return wrote_all_; }

 private:
  void run() {
    std::size_t pos = 0, k = 0;
    while (pos < data_.size() && !stop_) {
      std::size_t n = chunks_.empty() ? data_.size() : chunks_[k++ % chunks_.size()];
      n = std::min(std::max<std::size_t>(n, 1), data_.size() - pos);
      std::size_t done = 0;
      while (done < n) {
        const ssize_t w = ::write(fds_[1], data_.data() + pos + done, n - done);
        if (w < 0) {
          if (errno == EINTR) continue;
          ::close(fds_[1]);  // EPIPE: the reader went away
          return;
        }
        done += static_cast<std::size_t>(w);
      }
      pos += n;
      if (lockstep_) {
        int queued = 1;
        while (!stop_ && ::ioctl(fds_[1], FIONREAD, &queued) == 0 && queued > 0) std::this_thread::yield();
      }
    }
    wrote_all_ = pos == data_.size();
    ::close(fds_[1]);
  }

  Buffer data_;
  std::vector<std::size_t> chunks_;
  bool lockstep_;
  int fds_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<bool> wrote_all_{false};
  std::thread thread_;
};

}  // namespace xenstream::test
