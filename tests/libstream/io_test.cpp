// Sources and sinks on real file descriptors: FdSource over a pipe fed in
// pieces (records larger than a read chunk included), FdSink with more parts
// than IOV_MAX and with short writes, AtomicFile commit and abandon,
// open_plain_source and open_output.
#include <gtest/gtest.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <random>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include "test_util.h"

namespace xenstream {
namespace {

using namespace xenstream::test;
namespace xc = format::libxc;
namespace xl = format::libxl;
namespace fs = std::filesystem;

// A libxl stream with records of every size class: empty, odd-sized, a
// PAGE_DATA of 600 pages (2.4 MiB) and an EMULATOR_CONTEXT of 3 MiB + 5,
// both larger than FdSource's 1 MiB read chunk.
Buffer big_stream() {
  BufferSink sink;
  RecordWriter w(sink);
  EXPECT_TRUE(w.write_libxl_header());
  EXPECT_TRUE(w.append(xl::RecordType::kLibxcContext));
  EXPECT_TRUE(w.write_image_header(3));
  EXPECT_TRUE(w.write_domain_header(xc::kDomainX86Hvm, 4, 17));
  EXPECT_TRUE(w.append(xc::RecordType::kStaticDataEnd));
  std::vector<std::uint64_t> entries;
  std::vector<Buffer> pages;
  std::vector<Bytes> views;
  for (std::uint64_t pfn = 0; pfn < 600; ++pfn) {
    entries.push_back(pfn);
    pages.push_back(pattern(4096, static_cast<std::uint8_t>(pfn)));
  }
  for (const auto& p : pages) views.push_back(view(p));
  EXPECT_TRUE(w.append_page_data(entries, views));
  const Buffer ctx = pattern(1001, 3);
  EXPECT_TRUE(w.append(xc::RecordType::kHvmContext, {view(ctx)}));
  EXPECT_TRUE(w.append(xc::RecordType::kEnd));
  const Buffer blob = pattern((3u << 20) + 5, 9);
  const Bytes one[] = {view(blob)};
  EXPECT_TRUE(w.append_emulator(xl::RecordType::kEmulatorContext, 2, 0, one));
  EXPECT_TRUE(w.finish());
  return sink.data();
}

TEST(FdSource, PipeWalkMatchesMemoryWalk) {
  const Buffer data = big_stream();
  const Walk expected = walk_memory(data);
  ASSERT_TRUE(expected.ok) << expected.error_text();
  ASSERT_EQ(expected.records.size(), 7u);
  // Whole writes, then writes in odd pieces, then 1-byte pieces at first.
  const std::vector<std::vector<std::size_t>> plans = {
      {}, {1, 7, 4096, 3, 65536, 100000, 13}, {1, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 1 << 20}};
  for (const auto& plan : plans) {
    PipeFeeder feed(data, plan, false);
    FdSource src(feed.read_fd(), "<pipe>");
    const Walk got = walk(src);
    EXPECT_TRUE(got == expected) << got.error_text();
    EXPECT_TRUE(feed.wrote_all());
    // The window grew to the largest record (3 MiB + 5 + header and
    // padding) rounded to whole chunks, and no further.
    EXPECT_GE(src.peak_window(), (3u << 20) + 24);
    EXPECT_LE(src.peak_window(), (3u << 20) + 24 + FdSource::kDefaultChunk);
  }
}

TEST(FdSource, WindowCapRefusesLargerRecords) {
  const Buffer data = big_stream();
  PipeFeeder feed(data, {4096}, false);
  FdSource src(feed.read_fd(), "<pipe>", 2u << 20);
  const Walk got = walk(src);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->code, ErrorCode::kLimit);
  // PAGE_DATA of 600 pages is the first record that does not fit.
  EXPECT_EQ(got.error->message, "a single read of 0x2592d0 bytes exceeds the window cap of 0x200000 bytes");
  EXPECT_EQ(got.error->offset, 0x48u);
  EXPECT_EQ(got.records.size(), 2u);
  EXPECT_LE(src.peak_window(), 2u << 20);
}

TEST(FdSource, SkipAndAtEndOverAPipe) {
  const Buffer data = pattern(5u << 20, 1);
  PipeFeeder feed(data, {12345}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  ASSERT_TRUE(src.skip(3u << 20));
  EXPECT_EQ(src.position(), 3u << 20);
  auto got = src.pull(16);
  ASSERT_TRUE(got);
  EXPECT_EQ(hexdump(got->first(16)), hexdump(view(data).subspan(3u << 20, 16)));
  auto over = src.skip(3u << 20, "the rest");
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kTruncated);
  EXPECT_EQ(over.error().message, "unexpected end of data while reading the rest [0x500000, 0x600000)");
  auto end = src.at_end();
  ASSERT_TRUE(end);
  EXPECT_TRUE(*end);
  EXPECT_EQ(src.position(), 5u << 20);
}

TEST(FdSource, WidensAPipeButLeavesOtherFdsAlone) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::fcntl(fds[0], F_SETPIPE_SZ, 1 << 16), 1 << 16);
  {
    FdSource src(fds[0], "<pipe>");
    // 1 MiB is within the default unprivileged limit (fs.pipe-max-size).
    EXPECT_GE(::fcntl(fds[0], F_GETPIPE_SZ), 1 << 20);
  }
  ::close(fds[0]);
  ::close(fds[1]);

  const int fd = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);  // not a pipe: left alone
  ASSERT_GE(fd, 0);
  {
    FdSource src(fd, "/dev/zero");
    auto got = src.pull(100);
    ASSERT_TRUE(got);
    EXPECT_EQ(hexdump(got->first(100)), hexdump(view(Buffer(100))));
  }
  ::close(fd);
}

TEST(FdSource, ReadErrorIsIoError) {
  // A write-only descriptor cannot be read.
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  FdSource src(fds[1], "<write end>");
  auto got = src.pull(8);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kIo);
  EXPECT_EQ(got.error().message, "read from <write end> failed: Bad file descriptor");
  ::close(fds[0]);
  ::close(fds[1]);
}

// Reads everything from `fd` into `out`, slowly when `slow`.
std::thread drain(int fd, Buffer& out, bool slow) {
  return std::thread([fd, &out, slow] {
    std::byte buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, slow ? 1024 : sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      out.insert(out.end(), buf, buf + n);
      if (slow) std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    ::close(fd);
  });
}

TEST(FdSink, MoreThanIovMaxParts) {
  std::mt19937 rng(7);
  std::vector<Buffer> parts;
  Buffer expected;
  for (int i = 0; i < 3 * IOV_MAX + 17; ++i) {
    const std::size_t n = (i % 11 == 0) ? 0 : rng() % 300;  // empty parts too
    parts.push_back(pattern(n, static_cast<std::uint8_t>(i)));
    expected.insert(expected.end(), parts.back().begin(), parts.back().end());
  }
  std::vector<Bytes> views;
  for (const auto& p : parts) views.push_back(view(p));
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Buffer got;
  std::thread reader = drain(fds[0], got, false);
  FdSink sink(fds[1], "<pipe>");
  auto r = sink.write(std::span<const Bytes>(views));
  ::close(fds[1]);
  reader.join();
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(sink.position(), expected.size());
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
}

volatile std::sig_atomic_t g_signals = 0;
void count_signal(int) { g_signals = g_signals + 1; }

TEST(FdSink, ShortWritesAndInterruptionsToASlowReader) {
  // A slow reader keeps the pipe full; signals without SA_RESTART interrupt
  // the blocked writev(), which then returns a short count (or EINTR when
  // nothing was written yet). Every byte must still arrive once, in order.
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = count_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);

  const Buffer a = pattern(340000, 1), b = pattern(3, 2), c = pattern(300001, 3);
  std::vector<Bytes> views;
  for (int i = 0; i < 20; ++i) {
    views.push_back(view(a).subspan(static_cast<std::size_t>(i) * 17000, 17000));
    views.push_back(view(b));
  }
  views.push_back(view(c));
  Buffer expected;
  for (Bytes v : views) expected.insert(expected.end(), v.begin(), v.end());

  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Buffer got;
  std::thread reader = drain(fds[0], got, true);
  std::atomic<bool> done{false};
  Expected<void> result;
  std::thread writer([&] {
    FdSink sink(fds[1], "<pipe>");
    result = sink.write(std::span<const Bytes>(views));
    done = true;
  });
  const pthread_t handle = writer.native_handle();
  while (!done) {
    pthread_kill(handle, SIGUSR1);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  writer.join();
  ::close(fds[1]);
  reader.join();
  sigaction(SIGUSR1, &old, nullptr);
  ASSERT_TRUE(result) << result.error().describe();
  EXPECT_GT(g_signals, 0);
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
}

TEST(FdSink, BrokenPipeIsIoError) {
  std::signal(SIGPIPE, SIG_IGN);
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ::close(fds[0]);
  FdSink sink(fds[1], "<closed pipe>");
  const Buffer data = pattern(10);
  auto r = sink.write(view(data));
  ::close(fds[1]);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  EXPECT_EQ(r.error().message, "write to <closed pipe> failed: Broken pipe");
  EXPECT_EQ(sink.position(), 0u);
}

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "xenstream-io-XXXXXX").string();
    if (::mkdtemp(t.data()) == nullptr) std::abort();
    path_ = t;
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  std::vector<std::string> entries() const {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(path_)) v.push_back(e.path().filename().string());
    std::sort(v.begin(), v.end());
    return v;
  }

 private:
  fs::path path_;
};

Buffer read_file(const fs::path& p) {
  auto src = MappedFile::open(p.string());
  if (!src) return {};
  auto all = (*src)->pull(static_cast<std::size_t>(fs::file_size(p)));
  return all ? Buffer(all->begin(), all->end()) : Buffer{};
}

TEST(AtomicFile, CommitRenamesIntoPlace) {
  TempDir dir;
  const std::string target = (dir.path() / "out.bin").string();
  auto f = AtomicFile::create(target);
  ASSERT_TRUE(f) << f.error().describe();
  const std::string temp = (*f)->temp_path();
  EXPECT_EQ(fs::path(temp).parent_path(), dir.path());
  EXPECT_EQ(fs::path(temp).filename().string().rfind(".out.bin.partial-", 0), 0u) << temp;
  const Buffer data = pattern(10000);
  ASSERT_TRUE((*f)->write(view(data)));
  EXPECT_FALSE(fs::exists(target)) << "the target must not appear before commit";
  ASSERT_TRUE((*f)->commit(true));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.bin"});
  EXPECT_TRUE(read_file(target) == data);
  EXPECT_EQ(fs::status(target).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
  EXPECT_TRUE((*f)->commit()) << "a second commit is a no-op";
  f->reset();
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFile, DestroyWithoutCommitLeavesNothing) {
  TempDir dir;
  const std::string target = (dir.path() / "out.bin").string();
  {
    auto f = AtomicFile::create(target);
    ASSERT_TRUE(f);
    const Buffer data = pattern(5000);
    ASSERT_TRUE((*f)->write(view(data)));
    EXPECT_EQ(dir.entries().size(), 1u);
  }
  EXPECT_TRUE(dir.entries().empty());
  // An existing file is left as it was when the replacement is abandoned.
  {
    auto f = AtomicFile::create(target);
    ASSERT_TRUE(f);
    const Buffer data = pattern(10);
    ASSERT_TRUE((*f)->write(view(data)));
    ASSERT_TRUE((*f)->commit());
  }
  {
    auto f = AtomicFile::create(target);
    ASSERT_TRUE(f);
    const Buffer other = pattern(20, 5);
    ASSERT_TRUE((*f)->write(view(other)));
  }
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.bin"});
  EXPECT_TRUE(read_file(target) == pattern(10));
}

TEST(AtomicFile, MissingDirectoryIsIoError) {
  TempDir dir;
  auto f = AtomicFile::create((dir.path() / "no" / "such.bin").string());
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, ErrorCode::kIo);
  EXPECT_EQ(f.error().message,
            "cannot create a temporary file in " + (dir.path() / "no").string() +
                ": No such file or directory");
}

TEST(OpenOutput, DashIsStdoutAnythingElseAtomic) {
  auto out = open_output("-");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->atomic, nullptr);
  ASSERT_NE(dynamic_cast<FdSink*>(out->sink.get()), nullptr);
  EXPECT_EQ(static_cast<FdSink*>(out->sink.get())->fd(), 1);
  TempDir dir;
  const std::string target = (dir.path() / "x").string();
  auto file = open_output(target);
  ASSERT_TRUE(file);
  ASSERT_NE(file->atomic, nullptr);
  const Buffer data = pattern(3);
  ASSERT_TRUE(file->sink->write(view(data)));
  ASSERT_TRUE(file->commit());
  EXPECT_TRUE(read_file(target) == data);
}

TEST(OpenPlainSource, PicksTheRightSource) {
  TempDir dir;
  const fs::path file = dir.path() / "s.bin";
  const Buffer data = big_stream();
  {
    auto f = AtomicFile::create(file.string());
    ASSERT_TRUE(f);
    ASSERT_TRUE((*f)->write(view(data)));
    ASSERT_TRUE((*f)->commit());
  }
  auto src = open_plain_source(file.string());
  ASSERT_TRUE(src);
  EXPECT_NE(dynamic_cast<MappedFile*>(src->get()), nullptr);
  EXPECT_EQ((*src)->size_hint(), data.size());
  EXPECT_EQ((*src)->name(), file.string());
  EXPECT_TRUE(walk(**src) == walk_memory(data));

  const fs::path empty = dir.path() / "empty";
  { std::FILE* f = std::fopen(empty.c_str(), "w"); std::fclose(f); }
  auto e = open_plain_source(empty.string());
  ASSERT_TRUE(e);
  EXPECT_NE(dynamic_cast<FdSource*>(e->get()), nullptr);
  auto c = read_container(**e);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message, "the input is empty");

  auto d = open_plain_source(dir.path().string());
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, ErrorCode::kUsage);
  EXPECT_EQ(d.error().message, dir.path().string() + ": is a directory");

  auto m = open_plain_source((dir.path() / "missing").string());
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ErrorCode::kIo);
  EXPECT_EQ(m.error().message, "cannot open " + (dir.path() / "missing").string() + ": No such file or directory");

  auto in = open_plain_source("-");
  ASSERT_TRUE(in);
  EXPECT_EQ((*in)->name(), "<stdin>");

  // A FIFO goes through FdSource.
  const fs::path fifo = dir.path() / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::thread writer([&] {
    FILE* f = std::fopen(fifo.c_str(), "w");
    std::fwrite(data.data(), 1, data.size(), f);
    std::fclose(f);
  });
  auto p = open_plain_source(fifo.string());
  ASSERT_TRUE(p);
  EXPECT_NE(dynamic_cast<FdSource*>(p->get()), nullptr);
  EXPECT_TRUE(walk(**p) == walk_memory(data));
  writer.join();
}

TEST(MappedFile, LargeFileWalkReleasesBehindTheCursor) {
  // 20 MiB: past the point (16 MiB) where consumed stretches are released.
  TempDir dir;
  const fs::path file = dir.path() / "big.bin";
  Buffer data;
  {
    BufferSink sink;
    RecordWriter w(sink);
    ASSERT_TRUE(w.write_image_header(3));
    ASSERT_TRUE(w.write_domain_header(xc::kDomainX86Hvm, 4, 17));
    const Buffer page = pattern(4096);
    std::vector<std::uint64_t> entries(1024);
    std::vector<Bytes> pages(1024, view(page));
    for (std::uint64_t batch = 0; batch < 5; ++batch) {
      for (std::uint64_t i = 0; i < 1024; ++i) entries[i] = batch * 1024 + i;
      ASSERT_TRUE(w.append_page_data(entries, pages));
    }
    ASSERT_TRUE(w.finish());
    data = std::move(sink.data());
  }
  {
    auto f = AtomicFile::create(file.string());
    ASSERT_TRUE(f);
    ASSERT_TRUE((*f)->write(view(data)));
    ASSERT_TRUE((*f)->commit());
  }
  auto src = MappedFile::open(file.string());
  ASSERT_TRUE(src);
  const Walk got = walk(**src, false);
  EXPECT_TRUE(got.ok) << got.error_text();
  EXPECT_EQ(got.records.size(), 6u);
  EXPECT_TRUE(got == walk_memory(data, false));
}

}  // namespace
}  // namespace xenstream

namespace xenstream {
namespace {

// Renaming a finished temporary over /dev/null (or a FIFO) would replace the
// special file with a regular one; open_output must write in place instead.
TEST(OpenOutput, WritesIntoSpecialFilesInPlace) {
  auto out = open_output("/dev/null");
  ASSERT_TRUE(out) << out.error().describe();
  EXPECT_EQ(out->atomic, nullptr);
  const std::byte b[3] = {};
  ASSERT_TRUE(out->sink->write(Bytes(b, 3)));
  ASSERT_TRUE(out->commit());
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST(OpenOutput, RefusesADirectory) {
  auto out = open_output("/tmp");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kUsage);
  EXPECT_EQ(out.error().message, "/tmp: is a directory");
}

}  // namespace
}  // namespace xenstream
