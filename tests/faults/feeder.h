// Feeds a byte string into a pipe or a socket from a writer thread, in pieces
// of a fixed size with an optional pause between them: the reader on the
// other end sees short reads, and blocks between pieces long enough for a
// signal to interrupt it. SIGALRM is blocked in the writer thread, so an
// interval timer interrupts the reader, never the writer.
#pragma once

#include <cstddef>
#include <span>
#include <thread>
#include <vector>

namespace xenstream::testing {

class Feeder {
 public:
  enum class Kind { kPipe, kSocket };
  Feeder(std::span<const std::byte> data, std::size_t piece, Kind kind = Kind::kPipe,
         unsigned pause_us = 0);
  ~Feeder();  // closes the read end first, so a writer blocked on a full pipe ends too
  Feeder(const Feeder&) = delete;
  Feeder& operator=(const Feeder&) = delete;

  int read_fd() const { return read_fd_; }

 private:
  void run();
  std::vector<std::byte> data_;
  std::size_t piece_;
  unsigned pause_us_;
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::thread writer_;
};

}  // namespace xenstream::testing
