// Fuzz target: zstd-compressed input.
//
// Opens the input the way a tool does (codecs::wrap_input sniffs the zstd
// magic) and walks the decompressed stream with the record cursor and every
// decoder. The decompressing window is capped at 256 KiB and the walk at a
// bounded number of records, so a small frame that expands enormously
// costs bounded memory and time. Then drains what is left of the
// decompressed bytes, at most 1 MiB, in pulls of varying size.
#include <cstddef>
#include <cstdint>
#include <memory>

#include <xenstream/codecs/open_input.h>
#include <xenstream/codecs/zstd/zstd_source.h>
#include "fuzz/common/walk.h"

namespace {
constexpr std::size_t kWindow = 256u << 10;
constexpr std::uint64_t kDrainMax = 1u << 20;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace xenstream;
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  const bool zstd = codecs::ZstdSource::sniff(in);

  {
    // As a tool opens it (window at its default cap).
    auto opened = codecs::wrap_input(std::make_unique<MemorySource>(in));
    if (!opened) return 0;
    FUZZ_CHECK(opened->compressed == zstd, "wrap_input and sniff disagree");
  }

  codecs::ZstdSource src(std::make_unique<MemorySource>(in), kWindow);
  (void)fuzz::walk_stream(src, 0, FormatHint::kAuto, 4096);
  FUZZ_CHECK(src.peak_window() <= kWindow, "zstd window above its cap");

  // Drain the rest with pulls of 1, 7, 4096, ... octets.
  static constexpr std::size_t kSteps[] = {1, 7, 4096, 65536, 13};
  std::size_t step = 0;
  while (src.position() < kDrainMax) {
    const std::uint64_t before = src.position();
    auto got = src.peek(kSteps[step++ % 5]);
    if (!got || got->empty()) break;
    src.consume(got->size());
    FUZZ_CHECK(src.position() == before + got->size(), "position does not follow consume");
  }
  FUZZ_CHECK(src.peak_window() <= kWindow, "zstd window above its cap");
  return 0;
}
