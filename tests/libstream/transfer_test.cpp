// Source::transfer() and skip() on every path: splice from a pipe (into a
// file at an offset, through the relay pipe; into a pipe; to /dev/null),
// copy_file_range from a file, the copy fallbacks (a mapped or memory source, zstd input, a
// destination the kernel refuses to splice into), short splices, and input
// that ends mid-run with the exact offset in the error. Also the shared
// window (WindowSource) without read-ahead, and views across the ring's wrap.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <random>

#include <xenstream/codecs/zstd/zstd_sink.h>
#include <xenstream/codecs/zstd/zstd_source.h>
#include <xenstream/libstream/sink.h>
#include "test_util.h"

namespace xenstream {
namespace {

using namespace xenstream::test;
namespace fs = std::filesystem;

// A scratch file, removed at the end.
class TempFile {
 public:
  explicit TempFile(int extra_flags = 0) {
    path_ = (fs::temp_directory_path() / ("xs-transfer-" + std::to_string(::getpid()) + "-" +
                                          std::to_string(counter()++)))
                .string();
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | extra_flags, 0600);
    if (fd_ < 0) std::abort();
  }
  ~TempFile() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  Buffer contents() const {
    Buffer b(static_cast<std::size_t>(fs::file_size(path_)));
    if (!b.empty() && ::pread(fd_, b.data(), b.size(), 0) != static_cast<ssize_t>(b.size())) std::abort();
    return b;
  }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string path_;
  int fd_ = -1;
};

Buffer slice(const Buffer& b, std::size_t at, std::size_t n) {
  return Buffer(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
}

// What the test reads back from a file where `n` octets of `data` from
// `from` were written at `at` (holes before `at` read as zeros).
void expect_file_holds(const TempFile& f, std::size_t at, const Buffer& data, std::size_t from, std::size_t n) {
  const Buffer got = f.contents();
  ASSERT_EQ(got.size(), at + n);
  EXPECT_EQ(hexdump(Bytes(got).first(at)), hexdump(view(Buffer(at))));
  EXPECT_TRUE(slice(got, at, n) == slice(data, from, n)) << "the moved octets differ";
}

TEST(Transfer, PipeIntoAFileAtAnOffsetSplices) {
  const Buffer data = pattern((6u << 20) + 24, 3);
  PipeFeeder feed(data, {}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  src.set_read_ahead(false);
  ASSERT_TRUE(src.moves_directly());
  auto head = src.pull(24);  // a header, read into the window
  ASSERT_TRUE(head);
  EXPECT_EQ(head->size(), 24u);  // no read-ahead: nothing more was read
  EXPECT_EQ(hexdump(head->first(24)), hexdump(view(data).first(24)));
  src.consume(24);
  TempFile out;
  ASSERT_TRUE(src.transfer(6u << 20, out.fd(), 8192, "pages"));
  EXPECT_EQ(src.position(), data.size());
  EXPECT_EQ(src.bypassed(), 6u << 20);  // not one octet through user space
  // The fd's own offset was not used.
  EXPECT_EQ(::lseek(out.fd(), 0, SEEK_CUR), 0);
  expect_file_holds(out, 8192, data, 24, 6u << 20);
  auto end = src.at_end();
  ASSERT_TRUE(end);
  EXPECT_TRUE(*end);
}

TEST(Transfer, BufferedOctetsGoFirstThenTheRestIsSpliced) {
  // With read-ahead (the default), a pull buffers more than it asked for;
  // transfer() writes that part from the window and splices the rest.
  const Buffer data = pattern(3u << 20, 5);
  PipeFeeder feed(data, {}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  ASSERT_TRUE(src.pull(100));
  src.consume(100);
  TempFile out;
  ASSERT_TRUE(src.transfer(data.size() - 100, out.fd(), 0));
  EXPECT_LT(src.bypassed(), data.size() - 100);
  expect_file_holds(out, 0, data, 100, data.size() - 100);
}

TEST(Transfer, ShortSplicesAreContinued) {
  // The feeder writes 4097 octets at a time and waits until the pipe is
  // empty: every splice returns a short piece.
  const Buffer data = pattern(300000, 9);
  PipeFeeder feed(data, {4097}, true);
  FdSource src(feed.read_fd(), "<pipe>");
  src.set_read_ahead(false);
  TempFile out;
  ASSERT_TRUE(src.transfer(data.size(), out.fd(), 4096));
  EXPECT_EQ(src.bypassed(), data.size());
  EXPECT_EQ(src.position(), data.size());
  expect_file_holds(out, 4096, data, 0, data.size());
}

TEST(Transfer, PipeClosedMidRunGivesTheExactOffset) {
  // The writer sends 1 MiB + 123 of a 2 MiB run and closes the pipe.
  const Buffer data = pattern((1u << 20) + 123 + 16, 1);
  PipeFeeder feed(data, {65536}, true);
  FdSource src(feed.read_fd(), "<pipe>");
  src.set_read_ahead(false);
  ASSERT_TRUE(src.skip(16));
  TempFile out;
  auto r = src.transfer(2u << 20, out.fd(), 0, "the pages of record #3");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTruncated);
  EXPECT_EQ(r.error().offset, data.size());
  ASSERT_TRUE(r.error().range);
  EXPECT_EQ(r.error().range->begin, data.size());
  EXPECT_EQ(r.error().range->end, 16u + (2u << 20));
  EXPECT_EQ(r.error().message,
            "unexpected end of data while reading the pages of record #3 [0x10008b, 0x200010)");
  EXPECT_EQ(src.position(), data.size());
  // Every octet before the end was moved.
  expect_file_holds(out, 0, data, 16, data.size() - 16);
}

TEST(Transfer, PipeClosedMidRunOnTheCopyPathGivesTheSameOffset) {
  const Buffer data = pattern(70000, 2);
  PipeFeeder feed(data, {4096}, true);
  FdSource src(feed.read_fd(), "<pipe>");
  TempFile out(O_APPEND);  // refuses splice: the copy path
  auto r = src.transfer(100000, out.fd(), std::nullopt, "a body");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTruncated);
  EXPECT_EQ(r.error().offset, 70000u);
  EXPECT_EQ(r.error().message, "unexpected end of data while reading a body [0x11170, 0x186a0)");
  EXPECT_EQ(src.bypassed(), 0u);
  expect_file_holds(out, 0, data, 0, data.size());
}

TEST(Transfer, SpliceRefusedWithEinvalFallsBackToCopying) {
  // splice(2) refuses an O_APPEND destination with EINVAL: the source
  // copies through its window from then on, and the result is the same.
  const Buffer data = pattern((2u << 20) + 5, 4);
  PipeFeeder feed(data, {100000}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  src.set_read_ahead(false);
  ASSERT_TRUE(src.moves_directly());
  TempFile out(O_APPEND);
  ASSERT_TRUE(src.transfer(1u << 20, out.fd(), std::nullopt));
  EXPECT_FALSE(src.moves_directly());
  EXPECT_EQ(src.bypassed(), 0u);
  // A later transfer, even to a file that would take splice, copies too.
  TempFile out2;
  ASSERT_TRUE(src.transfer((1u << 20) + 5, out2.fd(), 0));
  EXPECT_EQ(src.bypassed(), 0u);
  expect_file_holds(out, 0, data, 0, 1u << 20);
  expect_file_holds(out2, 0, data, 1u << 20, (1u << 20) + 5);
}

TEST(Transfer, AFileThatCannotBeWrittenNamesTheOctetThatFailed) {
  // From a pipe into a file the octets pass through the source's relay
  // pipe; when the file then refuses them, the error is the destination's,
  // at the stream offset of the first octet not written.
  const Buffer data = pattern(1u << 20, 6);
  PipeFeeder feed(data, {}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  src.set_read_ahead(false);
  ASSERT_TRUE(src.skip(100));
  TempFile file;
  const int ro = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(ro, 0);
  auto r = src.transfer(4096, ro, 8192, "a page");
  ::close(ro);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  EXPECT_EQ(r.error().offset, 100u);
  EXPECT_NE(r.error().message.find("writing to the destination at offset 0x2000 failed"),
            std::string::npos)
      << r.error().message;
  EXPECT_EQ(src.bypassed(), 100u);  // the skip's, none of the page's
}

TEST(Transfer, FilesAndPipesInTurnGetExactlyTheirOctets) {
  // Runs into a file (through the relay pipe) and into a pipe (straight)
  // alternate: nothing meant for one destination is left behind for the
  // next, and every octet is moved inside the kernel.
  const Buffer data = pattern(3u << 20, 8);
  PipeFeeder feed(data, {70000}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  src.set_read_ahead(false);
  TempFile file;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  // Each run into the pipe is read back before the next; it stays well
  // under the pipe's 64 KiB so that the move never waits for the reader.
  struct Run {
    bool to_file;
    std::size_t n;
  };
  const Run runs[] = {{true, 300001}, {false, 5000},  {true, 1u << 20}, {false, 77},
                      {true, 700000}, {false, 40000}, {true, 3},        {false, 4096},
                      {true, 1000000}};
  Buffer expect_file, expect_pipe, got_pipe;
  std::size_t at = 0;
  for (const Run& run : runs) {
    const Buffer part = slice(data, at, run.n);
    if (run.to_file) {
      ASSERT_TRUE(src.transfer(run.n, file.fd(), expect_file.size()));
      expect_file.insert(expect_file.end(), part.begin(), part.end());
    } else {
      ASSERT_TRUE(src.transfer(run.n, p[1], std::nullopt));
      Buffer got(run.n);
      ASSERT_EQ(::read(p[0], got.data(), run.n), static_cast<ssize_t>(run.n));
      got_pipe.insert(got_pipe.end(), got.begin(), got.end());
      expect_pipe.insert(expect_pipe.end(), part.begin(), part.end());
    }
    at += run.n;
  }
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_EQ(src.bypassed(), at);
  EXPECT_EQ(src.position(), at);
  EXPECT_TRUE(file.contents() == expect_file) << "the file got octets meant for the pipe";
  EXPECT_TRUE(got_pipe == expect_pipe) << "the pipe got octets meant for the file";
}

TEST(Transfer, IntoAPipeAndSkipToDevNullSplice) {
  const Buffer data = pattern(600000, 6);
  PipeFeeder feed(data, {}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  src.set_read_ahead(false);
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ASSERT_EQ(::fcntl(p[1], F_SETPIPE_SZ, 1 << 20), 1 << 20);
  ASSERT_TRUE(src.transfer(200000, p[1], std::nullopt));
  EXPECT_EQ(src.bypassed(), 200000u);
  Buffer got(200000);
  std::size_t have = 0;
  while (have < got.size()) {
    const ssize_t k = ::read(p[0], got.data() + have, got.size() - have);
    ASSERT_GT(k, 0);
    have += static_cast<std::size_t>(k);
  }
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_TRUE(got == slice(data, 0, 200000));
  ASSERT_TRUE(src.skip(300000));
  EXPECT_EQ(src.bypassed(), 500000u);
  auto tail = src.pull(100000);
  ASSERT_TRUE(tail);
  EXPECT_EQ(hexdump(tail->first(100000)), hexdump(view(data).subspan(500000)));
  src.consume(100000);
  auto over = src.skip(1, "padding");
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().offset, 600000u);
}

TEST(Transfer, SkipPastTheEndOfAPipeGivesTheExactOffset) {
  const Buffer data = pattern(3u << 20, 8);
  PipeFeeder feed(data, {50000}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  src.set_read_ahead(false);
  auto r = src.skip(4u << 20, "a body");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTruncated);
  EXPECT_EQ(r.error().offset, 3u << 20);
  EXPECT_EQ(r.error().message, "unexpected end of data while reading a body [0x300000, 0x400000)");
  EXPECT_EQ(src.bypassed(), 3u << 20);
}

TEST(Transfer, FromAFileNotAPipeUsesCopyFileRange) {
  const Buffer data = pattern((2u << 20) + 77, 7);
  TempFile in;
  ASSERT_EQ(::write(in.fd(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  auto src = FdSource::open(in.path());
  ASSERT_TRUE(src);
  (*src)->set_read_ahead(false);
  ASSERT_TRUE((*src)->moves_directly());
  ASSERT_TRUE((*src)->pull(77));
  (*src)->consume(77);
  TempFile out;
  ASSERT_TRUE((*src)->transfer(2u << 20, out.fd(), 12288));
  EXPECT_EQ((*src)->bypassed(), 2u << 20);
  expect_file_holds(out, 12288, data, 77, 2u << 20);
  auto r = (*src)->transfer(1, out.fd(), 0, "one more");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTruncated);
  EXPECT_EQ(r.error().offset, data.size());
}

TEST(Transfer, SkipInAFileSeeks) {
  const Buffer data = pattern(3u << 20, 14);
  TempFile in;
  ASSERT_EQ(::write(in.fd(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  auto src = FdSource::open(in.path());
  ASSERT_TRUE(src);
  (*src)->set_read_ahead(false);
  ASSERT_TRUE((*src)->skip(2u << 20));
  EXPECT_EQ((*src)->bypassed(), 2u << 20);
  auto got = (*src)->pull(16);
  ASSERT_TRUE(got);
  EXPECT_EQ(hexdump(got->first(16)), hexdump(view(data).subspan(2u << 20, 16)));
  (*src)->consume(16);
  auto r = (*src)->skip(1u << 20, "the rest");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().offset, data.size());
  EXPECT_EQ(r.error().message, "unexpected end of data while reading the rest [0x300000, 0x300010)");
}

TEST(Transfer, MappedAndMemorySourcesWriteFromTheirView) {
  const Buffer data = pattern(1u << 20, 11);
  TempFile in;
  ASSERT_EQ(::write(in.fd(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  auto mapped = MappedFile::open(in.path());
  ASSERT_TRUE(mapped);
  EXPECT_FALSE((*mapped)->moves_directly());
  ASSERT_TRUE((*mapped)->skip(4096));
  TempFile out;
  ASSERT_TRUE((*mapped)->transfer(data.size() - 4096, out.fd(), 0));
  EXPECT_EQ((*mapped)->bypassed(), 0u);
  expect_file_holds(out, 0, data, 4096, data.size() - 4096);

  MemorySource mem(view(data));
  TempFile out2;
  auto r = mem.transfer(data.size() + 10, out2.fd(), 4096, "all of it");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().offset, data.size());
  EXPECT_EQ(r.error().message, "unexpected end of data while reading all of it [0x100000, 0x10000a)");
  expect_file_holds(out2, 4096, data, 0, data.size());
}

TEST(Transfer, ZstdInputCopiesThroughItsWindow) {
  const Buffer data = pattern((3u << 20) + 999, 12);
  BufferSink packed;
  {
    codecs::ZstdSink z(packed);
    ASSERT_TRUE(z.write(view(data)));
    ASSERT_TRUE(z.flush());
  }
  PipeFeeder feed(packed.data(), {7777}, false);
  codecs::ZstdSource src(std::make_unique<FdSource>(feed.read_fd(), "<pipe>"));
  EXPECT_FALSE(src.moves_directly());
  src.set_read_ahead(false);
  ASSERT_TRUE(src.skip(999));
  TempFile out;
  ASSERT_TRUE(src.transfer(3u << 20, out.fd(), 4096));
  EXPECT_EQ(src.bypassed(), 0u);
  expect_file_holds(out, 4096, data, 999, 3u << 20);
  auto r = src.transfer(1, out.fd(), 0, "past the end");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTruncated);
  EXPECT_EQ(r.error().offset, data.size());
}

TEST(Transfer, WriteErrorNamesTheStreamOffset) {
  const Buffer data = pattern(10000, 1);
  MemorySource mem(view(data));
  ASSERT_TRUE(mem.skip(100));
  const int ro = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // cannot be written
  ASSERT_GE(ro, 0);
  auto r = mem.transfer(5000, ro, std::nullopt);
  ::close(ro);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  EXPECT_EQ(r.error().offset, 100u);
}

TEST(WindowSource, ViewsAcrossTheRingsWrapWithoutReadAhead) {
  // Pulls of odd sizes through a 1 MiB window: the views cross the end of
  // the ring again and again and must read as the input does.
  const Buffer data = pattern(5u << 20, 13);
  for (bool ahead : {false, true}) {
    PipeFeeder feed(data, {65537}, false);
    FdSource src(feed.read_fd(), "<pipe>", 1u << 20);
    src.set_read_ahead(ahead);
    std::mt19937 rng(42);
    std::size_t at = 0;
    while (at < data.size()) {
      const std::size_t n = std::min<std::size_t>(data.size() - at, 1 + rng() % 300000);
      auto got = src.pull(n);
      ASSERT_TRUE(got) << got.error().describe();
      ASSERT_EQ(hexdump(got->first(n)), hexdump(view(data).subspan(at, n))) << "at " << at;
      if (!ahead) {
        EXPECT_EQ(got->size(), n);
      }
      src.consume(n);
      at += n;
    }
    EXPECT_EQ(src.peak_window(), 1u << 20);
    auto end = src.at_end();
    ASSERT_TRUE(end);
    EXPECT_TRUE(*end);
  }
}

// ---------------------------------------------------------------------------
// The sink side: Sink::write_file_range() and Sink::write_from().

// Reads everything a pipe holds until its write end is closed.
Buffer drain(int fd) {
  Buffer got;
  std::byte buf[65536];
  for (;;) {
    const ssize_t k = ::read(fd, buf, sizeof buf);
    if (k <= 0) return got;
    got.insert(got.end(), buf, buf + k);
  }
}

TEST(SinkFileRange, IntoAPipeIntoAFileAndThroughABuffer) {
  const Buffer data = pattern(700000, 21);
  TempFile in;
  ASSERT_EQ(::write(in.fd(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  const Buffer head = pattern(13, 22);
  Buffer want = head;
  want.insert(want.end(), data.begin() + 4096, data.begin() + 4096 + 600000);
  want.insert(want.end(), head.begin(), head.end());
  auto fill = [&](Sink& sink) {
    ASSERT_TRUE(sink.write(view(head)));
    ASSERT_TRUE(sink.write_file_range(in.fd(), 4096, 600000));
    ASSERT_TRUE(sink.write(view(head)));
    EXPECT_EQ(sink.position(), want.size());
  };
  {  // a pipe: splice
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    ASSERT_EQ(::fcntl(p[1], F_SETPIPE_SZ, 1 << 20), 1 << 20);
    FdSink sink(p[1], "<pipe>");
    fill(sink);
    ::close(p[1]);
    EXPECT_TRUE(drain(p[0]) == want);
    ::close(p[0]);
  }
  for (const int flags : {0, O_APPEND}) {  // a file: copy_file_range; O_APPEND refuses it
    TempFile out(flags);
    FdSink sink(out.fd(), out.path());
    fill(sink);
    EXPECT_TRUE(out.contents() == want) << "flags " << flags;
  }
  {  // any other sink reads through a buffer
    BufferSink sink;
    fill(sink);
    EXPECT_TRUE(sink.data() == want);
  }
  // The input's own offset is untouched.
  EXPECT_EQ(::lseek(in.fd(), 0, SEEK_CUR), static_cast<off_t>(data.size()));
}

TEST(SinkFileRange, AFileEndingEarlyIsAnError) {
  const Buffer data = pattern(10000, 23);
  TempFile in;
  ASSERT_EQ(::write(in.fd(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  TempFile out;
  FdSink file(out.fd(), out.path());
  BufferSink buffer;
  for (Sink* sink : {static_cast<Sink*>(&file), static_cast<Sink*>(&buffer)}) {
    auto r = sink->write_file_range(in.fd(), 8192, 4096);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kIo);
    EXPECT_NE(r.error().message.find("ends at 0x2710"), std::string::npos) << r.error().message;
  }
}

TEST(SinkWriteFrom, PipeToPipeBypassesAndOtherSinksPull) {
  const Buffer data = pattern(900000, 24);
  {
    PipeFeeder feed(data, {70000}, false);
    FdSource src(feed.read_fd(), "<pipe>");
    src.set_read_ahead(false);
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    ASSERT_EQ(::fcntl(p[1], F_SETPIPE_SZ, 1 << 20), 1 << 20);
    FdSink sink(p[1], "<pipe>");
    ASSERT_TRUE(sink.write_from(src, 800000, "pages"));
    EXPECT_EQ(sink.position(), 800000u);
    EXPECT_EQ(src.bypassed(), 800000u);
    ::close(p[1]);
    EXPECT_TRUE(drain(p[0]) == slice(data, 0, 800000));
    ::close(p[0]);
    // Past the end: the source's truncation error, with its offsets.
    BufferSink rest;
    auto r = rest.write_from(src, 200000, "pages");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kTruncated);
    EXPECT_TRUE(rest.data() == slice(data, 800000, 100000) || rest.data().empty());
  }
  {
    PipeFeeder feed(data, {70000}, false);
    FdSource src(feed.read_fd(), "<pipe>");
    BufferSink sink;
    ASSERT_TRUE(sink.write_from(src, data.size(), "pages"));
    EXPECT_EQ(src.bypassed(), 0u);
    EXPECT_TRUE(sink.data() == data);
  }
}

// Source::transfer_pages(): pages shown to a filter before they are written.

constexpr std::size_t kPg = Source::kPageOctets;

// A file of `n` octets of 0xEE: what a refused page must leave in place.
void fill_ee(const TempFile& f, std::size_t n) {
  const Buffer ee(n, std::byte{0xEE});
  ASSERT_EQ(::pwrite(f.fd(), ee.data(), ee.size(), 0), static_cast<ssize_t>(n));
}

// What `transfer_pages` of data's pages from `from` at `at` leaves in a file
// filled with 0xEE when the pages whose index is refused(index) are refused.
Buffer expected_pages(const Buffer& data, std::size_t from, std::size_t pages, std::size_t at,
                      std::size_t size, bool (*refused)(std::uint64_t)) {
  Buffer want(size, std::byte{0xEE});
  for (std::size_t i = 0; i < pages; ++i) {
    if (refused(i)) continue;
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(from + i * kPg), kPg,
                want.begin() + static_cast<std::ptrdiff_t>(at + i * kPg));
  }
  return want;
}

// Every page in order, as the filter saw it, against the input.
struct Looker {
  const Buffer* data;
  std::size_t from;
  bool (*refused)(std::uint64_t);
  std::uint64_t next = 0;
  std::size_t wrong = 0;
  Source::PageFilter filter() {
    return [this](std::uint64_t index, Bytes page) {
      if (index != next++ || page.size() != kPg ||
          !std::equal(page.begin(), page.end(), data->begin() + static_cast<std::ptrdiff_t>(from + index * kPg))) {
        ++wrong;
      }
      return !refused(index);
    };
  }
};

bool every_third(std::uint64_t i) { return i % 3 == 1; }
bool none(std::uint64_t) { return false; }

TEST(TransferPages, FromAPipeRefusedPagesAreNeverWrittenAndTheRestAreSpliced) {
  // The feeder writes 4097 octets at a time, so pages arrive cut across
  // splices and a relay round ends inside a page.
  constexpr std::size_t kPages = 700;
  const Buffer data = pattern(24 + kPages * kPg, 7);
  PipeFeeder feed(data, {4097}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  src.set_read_ahead(false);
  ASSERT_TRUE(src.skip(24));
  TempFile out;
  fill_ee(out, kPg + kPages * kPg);
  Looker look{&data, 24, every_third};
  ASSERT_TRUE(src.transfer_pages(kPages, out.fd(), kPg, look.filter(), "pages"));
  EXPECT_EQ(look.next, kPages);
  EXPECT_EQ(look.wrong, 0u);
  EXPECT_EQ(src.position(), data.size());
  // Written pages spliced, refused ones dropped to /dev/null: none through
  // the window (the skip's 24 count too).
  EXPECT_EQ(src.bypassed(), data.size());
  EXPECT_TRUE(out.contents() == expected_pages(data, 24, kPages, kPg, kPg + kPages * kPg, every_third));
  auto end = src.at_end();
  ASSERT_TRUE(end);
  EXPECT_TRUE(*end);
}

TEST(TransferPages, MemoryAndBufferedPipeSourcesLeaveTheSameFile) {
  constexpr std::size_t kPages = 300;
  const Buffer data = pattern(100 + kPages * kPg, 8);
  const Buffer want = expected_pages(data, 100, kPages, 0, kPages * kPg, every_third);
  // Moves the pages after a 100-octet header; returns what was bypassed.
  auto run = [&](Source& src) -> std::uint64_t {
    EXPECT_TRUE(src.pull(100));
    src.consume(100);
    TempFile out;
    fill_ee(out, kPages * kPg);
    Looker look{&data, 100, every_third};
    EXPECT_TRUE(src.transfer_pages(kPages, out.fd(), 0, look.filter()));
    EXPECT_EQ(look.next, kPages);
    EXPECT_EQ(look.wrong, 0u);
    EXPECT_TRUE(out.contents() == want);
    return src.bypassed();
  };
  MemorySource mem(view(data));
  EXPECT_EQ(run(mem), 0u);
  // With read-ahead a pull buffers more than asked: the buffered pages go
  // from the window, and completing the page cut at its end reads ahead
  // again (what streamrestore avoids by turning read-ahead off).
  PipeFeeder feed(data, {}, false);
  FdSource pipe(feed.read_fd(), "<pipe>");
  EXPECT_LT(run(pipe), kPages * kPg);
}

TEST(TransferPages, InputEndingInsideAPageGivesTheSameOffsetFromAPipeAndFromMemory) {
  // 10 pages and 1000 octets of a 20-page run: the 10 pages are shown and
  // written, the cut one is neither, and the error is where the input ends.
  const Buffer data = pattern(24 + 10 * kPg + 1000, 9);
  const std::string want_message =
      "unexpected end of data while reading the data pages [0xa400, 0x14018)";
  auto check = [&](Source& src, const char* name) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(src.skip(24));
    TempFile out;
    Looker look{&data, 24, none};
    auto r = src.transfer_pages(20, out.fd(), 0, look.filter(), "the data pages");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kTruncated);
    EXPECT_EQ(r.error().offset, data.size());
    EXPECT_EQ(r.error().message, want_message);
    EXPECT_EQ(src.position(), data.size());
    EXPECT_EQ(look.next, 10u);
    EXPECT_EQ(look.wrong, 0u);
    expect_file_holds(out, 0, data, 24, 10 * kPg);
  };
  MemorySource mem(view(data));
  check(mem, "memory");
  PipeFeeder feed(data, {5000}, true);
  FdSource pipe(feed.read_fd(), "<pipe>");
  pipe.set_read_ahead(false);
  check(pipe, "pipe");
}

TEST(TransferPages, AFileThatRefusesSpliceGetsItsPagesFromTheLook) {
  // splice(2) into an O_APPEND file fails with EINVAL after the pages are in
  // the relay: they are written from the copy made for the look, and later
  // moves go through the window.
  constexpr std::size_t kPages = 600;
  const Buffer data = pattern(kPages * kPg, 10);
  PipeFeeder feed(data, {100000}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  src.set_read_ahead(false);
  TempFile out(O_APPEND);
  Looker look{&data, 0, none};
  ASSERT_TRUE(src.transfer_pages(kPages, out.fd(), 0, look.filter()));
  EXPECT_EQ(look.next, kPages);
  EXPECT_EQ(look.wrong, 0u);
  EXPECT_EQ(src.bypassed(), 0u);
  EXPECT_FALSE(src.moves_directly());
  EXPECT_TRUE(out.contents() == data);
}

TEST(TransferPages, AFileThatCannotBeWrittenNamesTheFirstPageKept) {
  // Page 0 is refused (dropped, not written); page 1 is the first the file
  // must take, and it refuses.
  const Buffer data = pattern(24 + 8 * kPg, 11);
  PipeFeeder feed(data, {}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  src.set_read_ahead(false);
  ASSERT_TRUE(src.skip(24));
  TempFile file;
  const int ro = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(ro, 0);
  auto first_only = [](std::uint64_t i) { return i == 0; };
  Looker look{&data, 24, first_only};
  auto r = src.transfer_pages(8, ro, 2 * kPg, look.filter(), "pages");
  ::close(ro);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  EXPECT_EQ(r.error().offset, 24u + kPg);
  EXPECT_NE(r.error().message.find("writing to the destination at offset 0x3000 failed"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(src.bypassed(), 24u + kPg);  // the skip's and the dropped page's
}

}  // namespace
}  // namespace xenstream
