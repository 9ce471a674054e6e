// Byte sinks: where a writer's bytes go.
//
// A Sink takes a list of buffers and writes them in order (vectored I/O on
// file descriptors, so page data goes from the caller's buffers to the kernel
// without an intermediate copy). Sinks never write from a destructor: what
// was not flushed with flush() or commit() is a bug, not a silent loss.
//
//   FdSink        borrows an fd (stdout, a pipe, a socket, an open file)
//   BufferSink    appends to a std::vector (tests)
//   AtomicFile    writes to a temporary file beside the target and renames it
//                 into place on commit(); if never committed, the temporary
//                 is removed, so no half-written output looks finished
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/source.h>

namespace xenstream {

class Sink {
 public:
  virtual ~Sink() = default;

  // Writes every part, in order, completely.
  Expected<void> write(std::span<const Bytes> parts);
  Expected<void> write(std::initializer_list<Bytes> parts) {
    return write(std::span<const Bytes>(parts.begin(), parts.size()));
  }
  Expected<void> write(Bytes part) { return write(std::span<const Bytes>(&part, 1)); }

  // Writes `len` octets of the regular file `fd` from `offset` (the fd's
  // own offset untouched), as write() of them would. An FdSink moves them
  // inside the kernel (splice(2) into a pipe, copy_file_range(2) into a
  // file) while the kernel allows, then for good through a buffer; any
  // other sink reads them through a buffer.
  //   kIo: reading fd or writing failed, or fd ends before offset + len
  Expected<void> write_file_range(int fd, std::uint64_t offset, std::uint64_t len);

  // Writes the next `n` octets of `in`: into an FdSink with
  // Source::transfer() (splice from a pipe, copy_file_range from a file),
  // into any other sink pulled through the source's window. Errors are
  // those of Source::transfer(), offsets in the input.
  Expected<void> write_from(Source& in, std::uint64_t n, std::string_view what = "data");

  // Pushes buffered bytes to the underlying object (for layered sinks).
  virtual Expected<void> flush() { return {}; }

  // Bytes accepted so far.
  std::uint64_t position() const { return position_; }

 protected:
  virtual Expected<void> do_write(std::span<const Bytes> parts, std::size_t total) = 0;
  // Defaults: through a buffer, with do_write().
  virtual Expected<void> do_write_file_range(int fd, std::uint64_t offset, std::uint64_t len);
  virtual Expected<void> do_write_from(Source& in, std::uint64_t n, std::string_view what);

 private:
  std::uint64_t position_ = 0;
};

class BufferSink : public Sink {
 public:
  std::vector<std::byte>& data() { return data_; }
  const std::vector<std::byte>& data() const { return data_; }

 protected:
  Expected<void> do_write(std::span<const Bytes> parts, std::size_t total) override;

 private:
  std::vector<std::byte> data_;
};

// Writes every part to `fd`, in order and completely: writev() in batches of
// at most IOV_MAX, resumed after short writes and EINTR. Returns 0, or the
// errno of the write that failed.
int write_fully(int fd, std::span<const Bytes> parts);

class FdSink : public Sink {
 public:
  explicit FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  int fd() const { return fd_; }

 protected:
  Expected<void> do_write(std::span<const Bytes> parts, std::size_t total) override;
  Expected<void> do_write_file_range(int fd, std::uint64_t offset, std::uint64_t len) override;
  Expected<void> do_write_from(Source& in, std::uint64_t n, std::string_view what) override;

 private:
  int fd_;
  std::string name_;
  // What fd_ is, looked up on the first write_file_range(); cleared for
  // good when the kernel refuses to move octets into it directly.
  enum class Kind : std::uint8_t { kUnknown, kPipe, kFile, kOther } kind_ = Kind::kUnknown;
};

// Output file that appears under its name only when complete.
class AtomicFile : public FdSink {
 public:
  // Creates "<dir>/.<name>.partial-XXXXXX" beside `path`.
  static Expected<std::unique_ptr<AtomicFile>> create(const std::string& path, unsigned mode = 0644);
  ~AtomicFile() override;  // removes the temporary if not committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // fsyncs when `durable`, closes, and renames over `path`.
  Expected<void> commit(bool durable = false);
  const std::string& temp_path() const { return temp_; }

 private:
  AtomicFile(int fd, std::string path, std::string temp);
  std::string path_;
  std::string temp_;
  bool done_ = false;
};

// An FdSink that owns its descriptor and closes it on destruction.
class OwnedFdSink : public FdSink {
 public:
  OwnedFdSink(int fd, std::string name) : FdSink(fd, std::move(name)) {}
  ~OwnedFdSink() override;
  OwnedFdSink(const OwnedFdSink&) = delete;
  OwnedFdSink& operator=(const OwnedFdSink&) = delete;
};

// Output for a tool: "-" is stdout (FdSink); an existing path that is not a
// regular file (a FIFO, /dev/null, a device) is opened and written in place,
// since renaming over it would replace the special file; anything else is an
// AtomicFile.
// commit_output() commits an AtomicFile and flushes anything else.
struct Output {
  std::unique_ptr<Sink> sink;
  AtomicFile* atomic = nullptr;  // non-owning; set when sink is an AtomicFile
  Expected<void> commit(bool durable = false);
};
Expected<Output> open_output(const std::string& path);

}  // namespace xenstream
