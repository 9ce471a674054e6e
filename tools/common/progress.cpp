#include "tools/common/progress.h"

#include <unistd.h>

#include <utility>

namespace xenstream::cli {

namespace {
constexpr auto kRedrawInterval = std::chrono::milliseconds(250);
}

ProgressLine::ProgressLine(std::string tool, bool enabled, std::FILE* out, Clock clock)
    : tool_(std::move(tool)), enabled_(enabled), out_(out), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
}

ProgressLine::~ProgressLine() { clear(); }

bool ProgressLine::wanted(bool quiet) { return !quiet && ::isatty(STDERR_FILENO) != 0; }

void ProgressLine::update(std::uint64_t done, std::uint64_t total, std::string_view detail) {
  if (!enabled_) return;
  const auto now = clock_();
  if (!started_) {
    started_ = true;
    start_ = last_ = now;
    return;
  }
  if (now - last_ < kRedrawInterval) return;
  last_ = now;
  std::string line = "\r" + tool_ + ": " + human_bytes(done);
  if (total > 0) {
    line += " of " + human_bytes(total);
    line += " (" + std::to_string(done >= total ? 100 : done * 100 / total) + "%)";
  }
  const double secs = std::chrono::duration<double>(now - start_).count();
  if (secs > 0) line += ", " + human_bytes(static_cast<std::uint64_t>(static_cast<double>(done) / secs)) + "/s";
  if (!detail.empty()) {
    line += ", ";
    line += detail;
  }
  line += "\x1b[K";
  std::fputs(line.c_str(), out_);
  std::fflush(out_);
  shown_ = true;
}

void ProgressLine::clear() {
  if (!shown_) return;
  std::fputs("\r\x1b[K", out_);
  std::fflush(out_);
  shown_ = false;
}

std::string human_bytes(std::uint64_t n) {
  char buf[32];
  const auto d = static_cast<double>(n);
  if (n >= (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", d / (1ull << 30));
  } else if (n >= (1ull << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", d / (1ull << 20));
  } else if (n >= (1ull << 10)) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", d / (1ull << 10));
  } else {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  }
  return buf;
}

}  // namespace xenstream::cli
