// A full disk under the sink: an AtomicFile written past RLIMIT_FSIZE (in a
// forked child, SIGXFSZ ignored so the write fails with EFBIG instead of
// killing the process) reports a clean kIo error, and no file is left in
// place: neither the target nor the temporary.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <xenstream/codecs/zstd/zstd_sink.h>
#include <xenstream/libstream/record_writer.h>
#include <xenstream/libstream/sink.h>

namespace xenstream {
namespace {

namespace fs = std::filesystem;
constexpr rlim_t kLimitBytes = 64u << 10;

// Runs `body` in a child with RLIMIT_FSIZE set; the child's exit status is
// what body returns (0 = every check held, else the number of the check that
// failed). Returns that status, or -1 if the child died otherwise.
int in_limited_child(const std::function<int()>& body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    const rlimit lim{kLimitBytes, kLimitBytes};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(100);
    _exit(body());
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class FullDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("xenstream-fulldisk-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    return out;
  }
  fs::path dir_;
};

// Writes a libxl stream of PAGE_DATA records (32 pages each) until the sink
// refuses; checks the refusal. Returns 0 when every check held.
int write_until_refused(Sink& sink, const std::string& path) {
  RecordWriter w(sink);
  if (!w.write_libxl_header()) return 1;
  std::vector<std::byte> page(4096, std::byte{0x5a});
  std::vector<std::uint64_t> entries;
  std::vector<Bytes> pages;
  for (std::uint64_t pfn = 0; pfn < 32; ++pfn) {
    entries.push_back(pfn);
    pages.push_back(Bytes(page));
  }
  for (int batch = 0; batch < 16; ++batch) {
    const std::uint64_t before = sink.position();
    auto r = w.append_page_data(entries, pages);
    if (r) continue;
    const Error& e = r.error();
    if (e.code != ErrorCode::kIo) return 2;
    if (e.message != "write to " + path + " failed: File too large") return 3;
    if (e.offset != before) return 4;
    if (sink.position() != before) return 5;
    return 0;
  }
  return 6;  // never refused
}

TEST_F(FullDisk, AtomicFileLeavesNothingBehind) {
  const std::string path = (dir_ / "out.bin").string();
  const int status = in_limited_child([&] {
    auto f = AtomicFile::create(path);
    if (!f) return 10;
    const int r = write_until_refused(**f, path);
    if (r != 0) return r;
    // The temporary exists until the AtomicFile goes away uncommitted.
    if (!fs::exists((*f)->temp_path())) return 11;
    f->reset();
    return 0;
  });
  EXPECT_EQ(status, 0);
  EXPECT_TRUE(entries().empty()) << entries().front();
}

TEST_F(FullDisk, OutputThroughZstdLeavesNothingBehind) {
  // The same through open_output() and a compressing layer: the error comes
  // out of ZstdSink unchanged, and the uncommitted output disappears.
  const std::string path = (dir_ / "out.bin.zst").string();
  const int status = in_limited_child([&] {
    auto out = open_output(path);
    if (!out) return 10;
    // Incompressible pages, so the compressed stream outgrows the limit too.
    codecs::ZstdSink z(*out->sink, 1);
    RecordWriter w(z);
    if (!w.write_libxl_header()) return 11;
    std::vector<std::byte> page(4096);
    std::uint32_t x = 1;
    for (int i = 0; i < 64; ++i) {
      for (auto& b : page) {
        x = x * 1103515245u + 12345u;
        b = std::byte(static_cast<std::uint8_t>(x >> 24));
      }
      const std::array<std::uint64_t, 1> e{static_cast<std::uint64_t>(i)};
      const std::array<Bytes, 1> p{Bytes(page)};
      auto r = w.append_page_data(e, p);
      if (!r) {
        if (r.error().code != ErrorCode::kIo) return 12;
        if (r.error().message != "write to " + path + " failed: File too large") return 13;
        return 0;  // `out` goes away uncommitted
      }
    }
    auto fin = w.finish();
    if (fin) return 14;
    if (fin.error().code != ErrorCode::kIo) return 15;
    return 0;
  });
  EXPECT_EQ(status, 0);
  EXPECT_TRUE(entries().empty()) << entries().front();
}

TEST_F(FullDisk, CommitAfterASuccessfulWriteStillWorks) {
  // Control: under the same limit, a stream that fits is committed in place.
  const std::string path = (dir_ / "small.bin").string();
  const int status = in_limited_child([&] {
    auto f = AtomicFile::create(path);
    if (!f) return 10;
    RecordWriter w(**f);
    if (!w.write_libxl_header()) return 11;
    if (!w.finish()) return 12;
    if (!(*f)->commit()) return 13;
    return 0;
  });
  EXPECT_EQ(status, 0);
  ASSERT_EQ(entries(), std::vector<std::string>{"small.bin"});
  EXPECT_EQ(fs::file_size(dir_ / "small.bin"), 24u);
}

}  // namespace
}  // namespace xenstream
