// The shared progress line: when it draws, what it draws, and that it
// leaves a clean line behind.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "tools/common/progress.h"

namespace {

using namespace std::chrono_literals;
using xenstream::cli::human_bytes;
using xenstream::cli::ProgressLine;

struct Captured {
  std::FILE* f = std::tmpfile();
  ~Captured() { std::fclose(f); }
  std::string text() {
    std::fflush(f);
    std::string s;
    std::rewind(f);
    for (int c; (c = std::fgetc(f)) != EOF;) s.push_back(static_cast<char>(c));
    return s;
  }
};

struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  ProgressLine::Clock fn() {
    return [this] { return now; };
  }
};

TEST(ProgressLine, ShortJobsNeverDraw) {
  Captured out;
  FakeClock clock;
  {
    ProgressLine p("tool", true, out.f, clock.fn());
    p.update(1 << 20, 4 << 20);
    clock.now += 100ms;
    p.update(2 << 20, 4 << 20);
  }
  EXPECT_EQ(out.text(), "");
}

TEST(ProgressLine, DrawsAtMostFourTimesASecondAndClearsAtTheEnd) {
  Captured out;
  FakeClock clock;
  {
    ProgressLine p("streamtool", true, out.f, clock.fn());
    p.update(0, 4 << 20);  // starts the clock
    clock.now += 1s;
    p.update(1 << 20, 4 << 20, "256 pages");
    clock.now += 100ms;
    p.update(2 << 20, 4 << 20);  // too soon: not drawn
    clock.now += 200ms;
    p.update(3 << 20, 4 << 20);
  }
  EXPECT_EQ(out.text(),
            "\rstreamtool: 1.0 MiB of 4.0 MiB (25%), 1.0 MiB/s, 256 pages\x1b[K"
            "\rstreamtool: 3.0 MiB of 4.0 MiB (75%), 2.3 MiB/s\x1b[K"
            "\r\x1b[K");
}

TEST(ProgressLine, UnknownTotalShowsOnlyWhatWasDone) {
  Captured out;
  FakeClock clock;
  ProgressLine p("t", true, out.f, clock.fn());
  p.update(0, 0);
  clock.now += 2s;
  p.update(3u << 30, 0);
  EXPECT_EQ(out.text(), "\rt: 3.00 GiB, 1.50 GiB/s\x1b[K");
  p.clear();
  p.clear();  // idempotent
  EXPECT_EQ(out.text(), "\rt: 3.00 GiB, 1.50 GiB/s\x1b[K\r\x1b[K");
}

TEST(ProgressLine, DisabledDrawsNothing) {
  Captured out;
  FakeClock clock;
  {
    ProgressLine p("t", false, out.f, clock.fn());
    p.update(0, 10);
    clock.now += 5s;
    p.update(5, 10);
    p.clear();
  }
  EXPECT_EQ(out.text(), "");
}

TEST(ProgressLine, HumanBytes) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(5u << 20), "5.0 MiB");
  EXPECT_EQ(human_bytes(std::uint64_t{3} << 40), "3072.00 GiB");
}

}  // namespace
