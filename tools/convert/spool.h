// A holding area for bytes the converter must keep before it may write them:
// a qemu record (its length or its place in the output is known only once
// the whole checkpoint is read) and the output of a Remus checkpoint (written
// only once the checkpoint is known to be complete).
//
// Bytes stay in memory up to a limit and then move to an unlinked temporary
// file, so a spool never costs more than `memory_limit` of RAM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/sink.h>

namespace xenstream::convert {

class Spool {
 public:
  // `temp_dir` empty: $TMPDIR, else /tmp.
  explicit Spool(std::string temp_dir = {}, std::size_t memory_limit = 8u << 20);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;
  Spool(Spool&& other) noexcept;
  Spool& operator=(Spool&& other) noexcept;

  //   kIo: the temporary file could not be created or written
  Expected<void> append(std::span<const Bytes> parts);
  Expected<void> append(Bytes part) { return append(std::span<const Bytes>(&part, 1)); }

  std::uint64_t size() const { return size_; }
  bool in_file() const { return fd_ >= 0; }

  // Writes everything to `out` in order (in pieces of at most 1 MiB when the
  // bytes are in a file). The spool keeps its contents.
  Expected<void> copy_to(Sink& out) const;

  // Empties the spool (and drops the temporary file).
  void clear();

 private:
  Expected<void> spill();

  std::string temp_dir_;
  std::size_t memory_limit_;
  std::vector<std::byte> memory_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// A Sink that appends to a Spool (borrowed).
class SpoolSink : public Sink {
 public:
  explicit SpoolSink(Spool& spool) : spool_(spool) {}

 protected:
  Expected<void> do_write(std::span<const Bytes> parts, std::size_t) override {
    return spool_.append(parts);
  }

 private:
  Spool& spool_;
};

}  // namespace xenstream::convert
