// One progress line on a terminal, shared by every tool: redrawn in place at
// most four times a second on stderr, erased when the work ends so that the
// next message starts on a clean line. Nothing is ever drawn when stderr is
// not a terminal or the user asked for quiet (-q).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace xenstream::cli {

class ProgressLine {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `tool` prefixes the line ("streamrestore: ..."). `enabled` false makes
  // every call a no-op; use ProgressLine::wanted(quiet) for the usual rule.
  // `out` and `clock` are for tests.
  explicit ProgressLine(std::string tool, bool enabled, std::FILE* out = stderr, Clock clock = {});
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // True when a progress line should be drawn: stderr is a terminal and
  // the user did not ask for quiet.
  static bool wanted(bool quiet);

  // Reports `done` of `total` octets (total 0: unknown) and an optional
  // detail ("4096 pages, checkpoint 2"). Draws at most every 250 ms; the
  // first call only starts the clock, so short jobs never draw.
  void update(std::uint64_t done, std::uint64_t total, std::string_view detail = {});

  // Erases the line if one is shown. Idempotent; the destructor calls it.
  void clear();

  bool enabled() const { return enabled_; }

 private:
  std::string tool_;
  bool enabled_;
  std::FILE* out_;
  Clock clock_;
  bool started_ = false;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_{};
  std::chrono::steady_clock::time_point last_{};
};

// "512.0 MiB", "1.50 GiB", "4.0 KiB": for progress lines and summaries.
std::string human_bytes(std::uint64_t n);

}  // namespace xenstream::cli
