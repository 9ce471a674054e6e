// Byte sources: where a reader's bytes come from.
//
// A Source hands out views of buffered input without copying it (riegeli's
// Pull/cursor idea): pull(n) makes at least n bytes available at the current
// position and returns a view of everything buffered there; consume(n)
// advances. Views stay valid until the next call to pull(), consume() or
// skip() on the same source.
//
// Implementations:
//   MemorySource   a caller-owned span (tests, already mapped data)
//   MappedFile     a read-only mmap of a regular file; views point straight
//                  into the mapping
//   FdSource       a pipe, socket, terminal or file read through a bounded
//                  window; memory stays bounded by the largest single pull
//                  (never more than Limits::max_window), whatever the stream
//                  size
//
// Truncation is kept apart from malformation: a pull() that hits end of input
// early returns ErrorCode::kTruncated with the byte range it wanted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <xenstream/libstream/error.h>

namespace xenstream {

using Bytes = std::span<const std::byte>;

class Source {
 public:
  virtual ~Source() = default;

  // Returns a view of at least `min` buffered bytes at position().
  //   value:           size() >= min (often more)
  //   kTruncated:      input ended first; the error names the range wanted
  //   kLimit:          min exceeds the source's window cap
  //   kIo:             the read failed
  // `what` names the structure being read, for the truncation message.
  Expected<Bytes> pull(std::size_t min, std::string_view what = "data");

  // Returns up to `max` buffered bytes at position(), fewer only at end of
  // input (an empty view means end of input). Never a truncation error.
  Expected<Bytes> peek(std::size_t max);

  // Advances by n bytes, which must already have been pulled.
  void consume(std::size_t n);

  // Advances by n bytes, pulling as needed without holding them all at once.
  Expected<void> skip(std::uint64_t n, std::string_view what = "data");

  // True when no byte is left.
  Expected<bool> at_end();

  // Absolute offset of the next unread byte.
  std::uint64_t position() const { return position_; }

  // Short name for progress and messages, e.g. the path or "<stdin>".
  virtual std::string name() const = 0;

  // Total size when known (regular files), else 0.
  virtual std::uint64_t size_hint() const { return 0; }

 protected:
  // Fills so that at least `min` bytes are buffered, if the input has them.
  // Returns the buffered view (possibly shorter at end of input).
  virtual Expected<Bytes> fill(std::size_t min) = 0;
  virtual void advance(std::size_t n) = 0;

  std::uint64_t position_ = 0;
};

class MemorySource : public Source {
 public:
  explicit MemorySource(Bytes data, std::string name = "<memory>")
      : data_(data), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  std::uint64_t size_hint() const override { return data_.size(); }

 protected:
  Expected<Bytes> fill(std::size_t) override { return data_.subspan(cursor_); }
  void advance(std::size_t n) override { cursor_ += n; }
  void reset(Bytes data) { data_ = data; cursor_ = 0; }

 private:
  Bytes data_;
  std::size_t cursor_ = 0;
  std::string name_;
};

// A regular file mapped read-only. Pages behind the cursor are released from
// the page tables as the reader moves on, so a sequential walk does not pin
// the whole file in the resident set.
class MappedFile : public MemorySource {
 public:
  static Expected<std::unique_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile() override;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

 protected:
  void advance(std::size_t n) override;

 private:
  MappedFile(void* base, std::size_t size, std::string name);
  void* base_;
  std::size_t size_;
  std::size_t released_ = 0;
};

class FdSource : public Source {
 public:
  static constexpr std::size_t kDefaultChunk = 1 << 20;
  // Big enough for the largest record body Xen accepts plus its header.
  static constexpr std::size_t kDefaultMaxWindow = (128u << 20) + 64;

  // Borrows fd (never closes it). A pipe's buffer is widened to 1 MiB where
  // the system allows, so that fewer, larger reads move the stream.
  explicit FdSource(int fd, std::string name,
                    std::size_t max_window = kDefaultMaxWindow);
  // Owns fd: closes it on destruction.
  static Expected<std::unique_ptr<FdSource>> open(const std::string& path);
  ~FdSource() override;
  FdSource(const FdSource&) = delete;
  FdSource& operator=(const FdSource&) = delete;

  std::string name() const override { return name_; }
  // Largest window the source ever held: its memory high-water mark.
  std::size_t peak_window() const { return buf_.size(); }

 protected:
  Expected<Bytes> fill(std::size_t min) override;
  void advance(std::size_t n) override { begin_ += n; }

 private:
  int fd_;
  bool owned_ = false;
  bool eof_ = false;
  std::string name_;
  std::size_t max_window_;
  std::vector<std::byte> buf_;
  std::size_t begin_ = 0;  // first unconsumed byte in buf_
  std::size_t end_ = 0;    // one past the last valid byte in buf_
};

// Opens a path as the best plain source: "-" is stdin through FdSource, a
// non-empty regular file is mapped, anything else (FIFO, device, socket)
// goes through FdSource. Decompression is layered on top by
// codecs/open_input.h.
Expected<std::unique_ptr<Source>> open_plain_source(const std::string& path);

}  // namespace xenstream
