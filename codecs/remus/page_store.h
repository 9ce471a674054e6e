// The receiver's copy of guest memory, for decoding Remus page deltas
// (spec/legacy.md, "Remus compression": a delta applies to the latest
// contents of the page, as the restoring host held them).
//
// Pages live in an unlinked sparse temporary file at offset pfn * 4096, so a
// store holding gigabytes costs disk blocks only for the pages written and
// next to no memory; a chunked bitmap records which pfns are present. The
// file disappears when the store is destroyed (or the process dies).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/source.h>

namespace xenstream::codecs::remus {

inline constexpr std::size_t kPageSize = 4096;
// Largest pfn a store accepts (2^36 pages = 256 TiB of guest memory); legacy
// pfns have 28 bits.
inline constexpr std::uint64_t kMaxStorePfn = (std::uint64_t{1} << 36) - 1;

class PageStore {
 public:
  // Creates the backing file in `dir`, or when empty in $TMPDIR (else /tmp).
  //   kIo: the directory refused a temporary file
  static Expected<std::unique_ptr<PageStore>> create(const std::string& dir = {});
  ~PageStore();
  PageStore(const PageStore&) = delete;
  PageStore& operator=(const PageStore&) = delete;

  // Copies the stored page into `out`.
  //   true:   the page was stored before
  //   false:  never stored; `out` is untouched
  //   kIo:    the read failed
  Expected<bool> load(std::uint64_t pfn, std::span<std::byte, kPageSize> out) const;

  // Stores (or replaces) the page.
  //   kLimit: pfn above kMaxStorePfn
  //   kIo:    the write failed (e.g. the disk is full)
  Expected<void> save(std::uint64_t pfn, std::span<const std::byte, kPageSize> page);

  bool contains(std::uint64_t pfn) const;
  // Number of distinct pfns stored.
  std::uint64_t pages() const { return pages_; }
  // Disk space the backing file really occupies (st_blocks * 512).
  std::uint64_t allocated_bytes() const;

 private:
  explicit PageStore(int fd) : fd_(fd) {}
  static constexpr unsigned kChunkShift = 18;  // 2^18 pfns (1 GiB) per bitmap chunk
  int fd_;
  std::uint64_t pages_ = 0;
  std::vector<std::unique_ptr<std::uint64_t[]>> present_;
};

}  // namespace xenstream::codecs::remus
