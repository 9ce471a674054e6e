// Fuzz target: the record cursor over libxl and libxc streams.
//
// Walks the input from its container header to the outermost END (or the
// first error), handing every record to the decoder for its type (all of
// libstream/records.h), and checks the cursor's invariants as it goes
// (fuzz/common/walk.h). The same bytes are then walked through a source that
// reallocates its window on every read: both walks must agree exactly, and a
// view used past its lifetime shows up as a use-after-free under ASan. A
// third walk reads every record as a short head first and then extends it
// (StreamCursor::next_head/extend), and must agree as well.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/common/walk.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace xenstream;
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  MemorySource mem(in);
  const fuzz::WalkResult a = fuzz::walk_stream(mem, size);
  fuzz::TrickleSource trickle(in);
  const fuzz::WalkResult b = fuzz::walk_stream(trickle, size);
  fuzz::check_same_walk(a, b, "memory vs trickle source");
  // Heads first, then the rest: the same walk, whatever the head's size.
  fuzz::TrickleSource heads(in);
  const std::size_t prefix = size == 0 ? 0 : data[size / 2] * std::size_t{7};
  const fuzz::WalkResult c = fuzz::walk_stream(heads, size, FormatHint::kAuto, 100000,
                                               fuzz::kFuzzMaxRecord, prefix);
  const std::string what = "whole records vs heads of " + std::to_string(prefix) + " octets";
  fuzz::check_same_walk(a, c, what.c_str());
  return 0;
}
