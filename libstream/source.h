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
//                  window (WindowSource, shared with codecs::ZstdSource);
//                  memory stays bounded by the largest single pull (never
//                  more than its max_window), whatever the stream size
//
// Bulk data a reader does not need to look at (page contents on their way
// to a file, bodies being skipped) can bypass user space: transfer() moves
// octets to a file descriptor and skip() discards them, with splice(2) from
// a pipe or copy_file_range(2) from a file where the kernel allows it, and
// through the window otherwise.
//
// Truncation is kept apart from malformation: a pull() that hits end of input
// early returns ErrorCode::kTruncated with the byte range it wanted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
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

  // Advances by n bytes without holding them all at once; from a pipe the
  // octets not buffered yet go to /dev/null with splice(2), never through
  // user space.
  //   kTruncated:  input ended first; offset and range start where it ended
  Expected<void> skip(std::uint64_t n, std::string_view what = "data");

  // Moves the next n octets of input to `fd`: at `fd_offset` (pwrite
  // semantics, the fd's own offset untouched) or, without one, at the fd's
  // position (a pipe, /dev/null, an O_APPEND file). Whatever is buffered
  // goes out with write(2) from the buffer; the rest straight from the input
  // where the source can (splice from a pipe, copy_file_range from a file;
  // a kernel or file system that refuses with EINVAL makes the source fall
  // back for good), else through the window. Short moves are continued.
  //   value:       all n octets moved; position() advanced by n
  //   kTruncated:  input ended first: the error's offset is the first octet
  //                missing and its range [that, position() + n wanted);
  //                every octet before it was moved and consumed
  //   kIo:         reading or writing failed; offset is the stream offset of
  //                the first octet not moved
  Expected<void> transfer(std::uint64_t n, int fd, std::optional<std::uint64_t> fd_offset,
                          std::string_view what = "data");

  // Pages as transfer_pages() moves them.
  static constexpr std::size_t kPageOctets = 4096;
  // Says whether transfer_pages() writes a page: `index` counts the pages of
  // that one call from 0, `page` holds the page's octets. Called once for
  // every page, in order, before the page is written.
  using PageFilter = std::function<bool(std::uint64_t index, Bytes page)>;

  // transfer() of `pages` pages into a file at `fd_offset`, each shown to
  // `keep` first: a page it refuses is taken from the input but not written,
  // so the file keeps what it had there (a hole stays a hole). From a pipe
  // the pages still go to the file inside the kernel: spliced into a relay
  // pipe, duplicated with tee(2) for the look (one copy of each page into a
  // scratch buffer), then spliced into the file or dropped; a page refused
  // is never copied into the file. Errors as transfer(); the octets of a
  // page the input ends inside are taken and neither shown nor written.
  Expected<void> transfer_pages(std::uint64_t pages, int fd, std::uint64_t fd_offset,
                                const PageFilter& keep, std::string_view what = "data");

  // True when transfer() and skip() can move octets from this source's input
  // without a copy in user space (a pipe or file read through FdSource whose
  // kernel has not refused yet). A reader that would otherwise pull data
  // only to hand it on uses this to choose transfer().
  virtual bool moves_directly() const { return false; }

  // The reader will move bulk data with transfer() and skip(): with `off`,
  // the source reads no further ahead than pull() asks, so that what follows
  // can bypass user space. A window source reads big chunks otherwise.
  virtual void set_read_ahead(bool) {}

  // Octets transfer(), transfer_pages() and skip() moved (or dropped)
  // without passing through user space. transfer_pages()'s look at a page
  // is a copy apart and does not count against it.
  std::uint64_t bypassed() const { return bypassed_; }

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
  // Called by transfer() and skip() with nothing buffered: moves up to n
  // octets from the input straight to `fd` (at *fd_offset, advancing it, or
  // at the fd's position when null), and adds to bypassed_ what it moved
  // without passing it through user space.
  //   nullopt:     no direct path; the caller copies through fill()
  //   0:           end of input
  //   k > 0:       k octets moved
  virtual Expected<std::optional<std::uint64_t>> move_direct(std::uint64_t, int, std::uint64_t*) {
    return std::optional<std::uint64_t>{};
  }

  // Called by transfer_pages() with nothing buffered: moves up to `pages`
  // whole pages from the input straight into the file `fd` at fd_offset,
  // those `keep` takes (page i of this call has index first + i), and adds
  // to bypassed_ what it moved or dropped without a copy in user space.
  //   nullopt:     no direct path; the caller goes through fill()
  //   k:           octets taken from the input: whole pages moved, or at end
  //                of input (k == 0 or not a whole number of pages) what
  //                came before it, the octets of a cut page dropped
  virtual Expected<std::optional<std::uint64_t>> move_pages_direct(std::uint64_t, int, std::uint64_t,
                                                                   std::uint64_t, const PageFilter&) {
    return std::optional<std::uint64_t>{};
  }

  std::uint64_t position_ = 0;
  std::uint64_t bypassed_ = 0;

 private:
  // skip() (fd < 0) and transfer().
  Expected<void> move(std::uint64_t n, int fd, std::optional<std::uint64_t> fd_offset,
                      std::string_view what);
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

// A bounded window over input read piece by piece: FdSource and
// codecs::ZstdSource share it. The window is a ring of memory mapped twice
// back to back, so every view of up to its capacity is contiguous and
// consuming never moves a byte (no compaction). It grows (doubling, in whole
// chunks) only when full and only as bytes really arrive, up to the largest
// single pull, never past max_window: a header that claims a huge body
// costs memory in proportion to the input that is really there. Growing
// copies the buffered bytes once; nothing else does.
class WindowSource : public Source {
 public:
  ~WindowSource() override;
  WindowSource(const WindowSource&) = delete;
  WindowSource& operator=(const WindowSource&) = delete;

  // Largest window the source ever held: its memory high-water mark.
  std::size_t peak_window() const { return cap_; }
  void set_read_ahead(bool on) override { read_ahead_ = on; }

 protected:
  // `chunk`: the smallest window and the unit it grows by.
  WindowSource(std::size_t max_window, std::size_t chunk);

  // Reads up to `max` (> 0) octets of input into `dst`.
  //   0:      end of input
  //   error:  its offset is the caller's to fix (position_ + buffered())
  virtual Expected<std::size_t> read_some(std::byte* dst, std::size_t max) = 0;

  Expected<Bytes> fill(std::size_t min) final;
  void advance(std::size_t n) final { begin_ += n; }
  std::size_t buffered() const { return static_cast<std::size_t>(end_ - begin_); }

 private:
  Expected<void> grow(std::size_t cap);
  Bytes view() const;

  std::size_t max_window_;
  std::size_t chunk_;
  std::byte* base_ = nullptr;  // 2 * cap_ octets of address space
  std::size_t cap_ = 0;
  std::uint64_t begin_ = 0;  // octets consumed since the start
  std::uint64_t end_ = 0;    // octets read since the start
  bool eof_ = false;
  bool read_ahead_ = true;
};

class FdSource : public WindowSource {
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
  bool moves_directly() const override { return in_pipe_ ? splice_ok_ : (in_file_ && copy_ok_); }

 protected:
  Expected<std::size_t> read_some(std::byte* dst, std::size_t max) override;
  Expected<std::optional<std::uint64_t>> move_direct(std::uint64_t n, int fd,
                                                     std::uint64_t* fd_offset) override;
  Expected<std::optional<std::uint64_t>> move_pages_direct(std::uint64_t pages, int fd,
                                                           std::uint64_t fd_offset, std::uint64_t first,
                                                           const PageFilter& keep) override;

 private:
  bool open_relay();
  Expected<std::size_t> look_into_relay(std::size_t held);
  Expected<std::optional<std::uint64_t>> relay_into_file(std::size_t len, int fd,
                                                         std::uint64_t* fd_offset);
  Expected<void> copy_out_of_relay(std::size_t n, int fd, std::optional<std::uint64_t>& off,
                                   std::uint64_t at);
  void close_relay();

  int fd_;
  bool owned_ = false;
  bool in_pipe_ = false;  // fd is a pipe or FIFO
  bool in_file_ = false;  // fd is a regular file
  bool splice_ok_ = true;  // cleared when splice(2) says EINVAL
  bool copy_ok_ = true;    // cleared when copy_file_range(2) cannot
  // The pipe that moves from the input pipe into a file pass through (see
  // relay_into_file), made at the first such move.
  int relay_[2] = {-1, -1};
  std::size_t relay_size_ = 0;
  bool relay_ok_ = true;  // cleared when no pipe could be made for it
  // What the relay holds is duplicated into this pipe with tee(2) and read
  // into look_buf_ for move_pages_direct's look (made with the relay, at
  // most its size, so that tee always duplicates all the relay holds).
  int look_[2] = {-1, -1};
  std::vector<std::byte> look_buf_;
  std::string name_;
};

// Opens a path as the best plain source: "-" is stdin through FdSource, a
// non-empty regular file is mapped, anything else (FIFO, device, socket)
// goes through FdSource. Decompression is layered on top by
// codecs/open_input.h.
Expected<std::unique_ptr<Source>> open_plain_source(const std::string& path);

}  // namespace xenstream
