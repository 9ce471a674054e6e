// A reader fed in arbitrary small pieces gives the same answer as one that
// has the whole input: pipes and sockets written one octet at a time, reads
// interrupted by signals (EINTR, no SA_RESTART), zstd over a pipe, and every
// sample stream cut at every record boundary and inside records, from a
// mapped file and through a pipe.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <xenstream/codecs/zstd/zstd_source.h>
#include "feeder.h"
#include "fuzz/common/sample_streams.h"
#include "fuzz/common/walk.h"

namespace xenstream {
namespace {

using fuzz::WalkResult;
using testing::Feeder;
using Buf = std::vector<std::byte>;

WalkResult walk_memory(const Buf& in) {
  MemorySource src{Bytes(in)};
  return fuzz::walk_stream(src, in.size());
}

WalkResult walk_pipe(const Buf& in, std::size_t piece, Feeder::Kind kind = Feeder::Kind::kPipe,
                     unsigned pause_us = 0) {
  Feeder feed(in, piece, kind, pause_us);
  FdSource src(feed.read_fd(), "<pipe>");
  return fuzz::walk_stream(src, in.size());
}

::testing::AssertionResult same(const WalkResult& a, const WalkResult& b) {
  bool eq = a.records == b.records && a.finished == b.finished &&
            a.error.has_value() == b.error.has_value();
  if (eq && a.error) eq = fuzz::same_error(*a.error, *b.error);
  if (eq) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "first:\n" << a.describe() << "second:\n" << b.describe();
}

TEST(ShortReads, SamplesWalkToTheirEnd) {
  // The samples themselves are whole, valid streams (apart from the legacy
  // ones, which the cursor does not walk).
  for (const auto& s : fuzz::sample_streams()) {
    SCOPED_TRACE(s.name);
    const WalkResult w = walk_memory(s.bytes);
    ASSERT_FALSE(w.error) << w.describe();
    ASSERT_TRUE(w.container);
    if (w.container->payload == PayloadKind::kLegacy) continue;
    EXPECT_TRUE(w.finished) << w.describe();
    EXPECT_GE(w.records.size(), 4u);
  }
}

TEST(ShortReads, PipeOneOctetAtATime) {
  for (const auto& s : fuzz::sample_streams()) {
    SCOPED_TRACE(s.name);
    EXPECT_TRUE(same(walk_memory(s.bytes), walk_pipe(s.bytes, 1)));
  }
}

TEST(ShortReads, SocketInOddPieces) {
  for (const auto& s : fuzz::sample_streams()) {
    SCOPED_TRACE(s.name);
    for (std::size_t piece : {3u, 7u, 13u, 4095u}) {
      EXPECT_TRUE(same(walk_memory(s.bytes), walk_pipe(s.bytes, piece, Feeder::Kind::kSocket)));
    }
  }
}

TEST(ShortReads, ZstdThroughAPipeOneOctetAtATime) {
  const auto plain = fuzz::sample_streams();
  const auto packed = fuzz::compressed_samples();
  ASSERT_EQ(plain.size(), packed.size());
  for (std::size_t i = 0; i < plain.size(); ++i) {
    SCOPED_TRACE(packed[i].name);
    Feeder feed(packed[i].bytes, 1);
    codecs::ZstdSource src(std::make_unique<FdSource>(feed.read_fd(), "<pipe>"));
    EXPECT_TRUE(same(walk_memory(plain[i].bytes), fuzz::walk_stream(src, 0)));
  }
}

std::atomic<int> g_alarms{0};
extern "C" void on_alarm(int) { g_alarms.fetch_add(1, std::memory_order_relaxed); }

TEST(ShortReads, ReadsInterruptedBySignals) {
  // SIGALRM every 100 us, installed without SA_RESTART so that a blocked
  // read() returns EINTR; the writer pauses 50 us between octets, so the
  // reader spends its time blocked in read().
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  ASSERT_EQ(sigaction(SIGALRM, &sa, &old), 0);
  const itimerval every{{0, 100}, {0, 100}};
  const itimerval off{};
  g_alarms = 0;
  const auto samples = fuzz::sample_streams();
  const Buf& in = samples[6].bytes;  // libxc-checkpointed: small, with records of every size
  ASSERT_LT(in.size(), 4096u);
  const WalkResult want = walk_memory(in);
  ASSERT_EQ(setitimer(ITIMER_REAL, &every, nullptr), 0);
  const WalkResult got = walk_pipe(in, 1, Feeder::Kind::kPipe, 50);
  setitimer(ITIMER_REAL, &off, nullptr);
  sigaction(SIGALRM, &old, nullptr);
  EXPECT_TRUE(same(want, got));
  EXPECT_GT(g_alarms.load(), 10) << "the timer never interrupted the reader";
}

// Offsets to cut a stream at: every record boundary (and the headers'
// ends), plus a few offsets inside each record.
std::vector<std::size_t> cut_points(const Buf& in) {
  const WalkResult w = walk_memory(in);
  std::vector<std::size_t> cuts{1, 8};
  std::mt19937 rng(1234);
  if (w.container) cuts.push_back(static_cast<std::size_t>(w.container->payload_offset));
  for (const auto& r : w.records) {
    cuts.push_back(static_cast<std::size_t>(r.offset));
    cuts.push_back(static_cast<std::size_t>(r.offset) + 4);
    const std::size_t len = 8 + r.length;
    cuts.push_back(static_cast<std::size_t>(r.offset) + 1 + rng() % len);
  }
  cuts.push_back(in.size() - 1);
  std::vector<std::size_t> out;
  for (std::size_t c : cuts) {
    if (c > 0 && c < in.size()) out.push_back(c);
  }
  return out;
}

TEST(Truncation, FileAndPipeAgreeAtEveryCut) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("xenstream-trunc-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::size_t cuts_tried = 0;
  for (const auto& s : fuzz::sample_streams()) {
    SCOPED_TRACE(s.name);
    for (std::size_t cut : cut_points(s.bytes)) {
      SCOPED_TRACE("cut at " + std::to_string(cut));
      const Buf head(s.bytes.begin(), s.bytes.begin() + static_cast<std::ptrdiff_t>(cut));
      const auto path = dir / "cut.bin";
      {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(head.data()), static_cast<std::streamsize>(cut));
      }
      auto mapped = MappedFile::open(path.string());
      ASSERT_TRUE(mapped) << mapped.error().describe();
      const WalkResult from_file = fuzz::walk_stream(**mapped, cut);
      const WalkResult from_pipe = walk_pipe(head, 5);
      EXPECT_TRUE(same(from_file, from_pipe));
      // A cut stream never looks finished; a v2 payload cut anywhere is
      // reported as truncated, at or before the cut.
      EXPECT_FALSE(from_file.finished);
      if (from_file.container && from_file.container->payload != PayloadKind::kLegacy) {
        ASSERT_TRUE(from_file.error);
        EXPECT_EQ(error_code_name(from_file.error->code), "truncated") << from_file.describe();
        EXPECT_LE(from_file.error->offset, cut);
      }
      ++cuts_tried;
    }
  }
  std::filesystem::remove_all(dir);
  EXPECT_GT(cuts_tried, 200u);
}

}  // namespace
}  // namespace xenstream
