// A counting global allocator for the fault tests: every operator new in the
// test binary goes through it, so a test can ask how many bytes were live at
// the peak while it ran and how large the largest single block was. This
// measures what a hostile header can make the library allocate, exactly and
// without depending on the process's resident set.
#pragma once

#include <cstddef>

namespace xenstream::testing {

struct AllocStats {
  std::size_t peak_live = 0;  // most bytes live at once since the watch began, above its start
  std::size_t largest = 0;    // largest single allocation since the watch began
};

// Starts measuring on construction; stats() reads the figures so far.
class AllocWatch {
 public:
  AllocWatch();
  AllocStats stats() const;

 private:
  std::size_t base_live_;
};

}  // namespace xenstream::testing
