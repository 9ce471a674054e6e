// Counts pfns sent with data and how many were sent more than once, in
// bounded memory.
//
// A pfn is up to 2^52, so a flat bitmap is out of the question. The tracker
// keeps a sparse map of 32768-pfn chunks (two 4 KiB bit planes each:
// "sent", "sent again"), created on first use. Once the chunks would exceed
// the configured cap, pfns in new chunks are no longer tracked: capped()
// says so and the counts become lower bounds.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "tools/verify/chunk_map.h"

namespace xenstream::verify {

class PfnTracker {
 public:
  static constexpr unsigned kChunkShift = 15;  // 32768 pfns per chunk
  static constexpr std::size_t kChunkBytes = 2 * (std::size_t{1} << kChunkShift) / 8;

  explicit PfnTracker(std::size_t cap_bytes) : chunks_(cap_bytes / kChunkBytes) {}

  // Records one sending of `pfn`.
  void add(std::uint64_t pfn) {
    Chunk* c = chunks_.get_or_create(pfn);
    if (c == nullptr) {
      capped_ = true;
      return;
    }
    const std::uint64_t bit = Chunks::index(pfn);
    const std::uint64_t mask = std::uint64_t{1} << (bit & 63);
    std::uint64_t& sent = c->sent[bit >> 6];
    if ((sent & mask) == 0) {
      sent |= mask;
      ++distinct_;
      return;
    }
    std::uint64_t& again = c->again[bit >> 6];
    if ((again & mask) == 0) {
      again |= mask;
      ++again_;
    }
  }

  std::uint64_t distinct() const { return distinct_; }
  std::uint64_t sent_more_than_once() const { return again_; }
  bool capped() const { return capped_; }
  std::size_t cap_bytes() const { return chunks_.max_chunks() * kChunkBytes; }
  std::size_t bytes() const { return chunks_.size() * kChunkBytes; }

 private:
  struct Chunk {
    std::array<std::uint64_t, (1u << kChunkShift) / 64> sent{};
    std::array<std::uint64_t, (1u << kChunkShift) / 64> again{};
  };
  static_assert(sizeof(Chunk) == kChunkBytes);

  using Chunks = ChunkMap<Chunk, kChunkShift>;
  Chunks chunks_;
  std::uint64_t distinct_ = 0;
  std::uint64_t again_ = 0;
  bool capped_ = false;
};

}  // namespace xenstream::verify
