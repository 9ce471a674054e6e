// What a restore knows about every pfn it has seen: one octet per pfn.
//
//   bits 0-3  the PFINFO type nibble of the last entry for the pfn
//   bit 4     kSeen: some PAGE_DATA entry named the pfn
//   bit 5     kPopulated: memory was allocated for it (a data-carrying type
//             or XALLOC); stays set, as Xen never frees a populated pfn
//   bit 6     kWritten: non-zero data was written to the memory file
//
// Storage is sparse: chunks of 4096 pfns (4 KiB each) created on first use,
// so memory is one octet per pfn in every 16 MiB stretch of guest-physical
// space the stream touches.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

namespace xenstream::restore {

class PageMap {
 public:
  static constexpr std::uint8_t kTypeMask = 0x0F;
  static constexpr std::uint8_t kSeen = 0x10;
  static constexpr std::uint8_t kPopulated = 0x20;
  static constexpr std::uint8_t kWritten = 0x40;
  static constexpr unsigned kChunkShift = 12;
  static constexpr std::uint64_t kChunkPfns = std::uint64_t{1} << kChunkShift;

  // 0 for a pfn never seen.
  std::uint8_t get(std::uint64_t pfn) const;
  // Reference to the pfn's octet, creating its chunk.
  std::uint8_t& at(std::uint64_t pfn);

  // Highest populated pfn + 1, or 0.
  std::uint64_t populated_end() const;

  struct Run {
    std::uint64_t begin = 0;  // first pfn
    std::uint64_t end = 0;    // one past the last pfn
    std::uint8_t value = 0;
  };
  // Maximal runs of consecutive pfns whose octets, masked with `mask`, are
  // equal and non-zero, in pfn order.
  std::vector<Run> runs(std::uint8_t mask) const;
  // Number of seen pfns per type nibble.
  std::vector<std::uint64_t> count_by_type() const;
  std::uint64_t count_populated() const;

  std::size_t chunk_count() const { return chunks_.size(); }

 private:
  using Chunk = std::unique_ptr<std::uint8_t[]>;
  std::map<std::uint64_t, Chunk> chunks_;
  std::uint64_t cached_index_ = ~std::uint64_t{0};
  std::uint8_t* cached_ = nullptr;
};

}  // namespace xenstream::restore
