// What a PV restore knows about each pfn at the end of the stream, in
// bounded memory: the page type the pfn was last sent with (the PFINFO
// nibble of its PAGE_DATA entry; 0, NOTAB, when never sent) and whether it
// is populated (sent with a type that allocates memory, or referred to by a
// present entry of a page-table page). Xen's PV restore keeps the same two
// facts (pfn_types and its p2m) and checks the vcpu contexts and the p2m
// frames against them at the end (spec/verify-rules.md, LIBXC-VCPU-14..16,
// LIBXC-P2M-05..06).
//
// Xen sizes its arrays by max_pfn (up to 2^32 from X86_PV_P2M_FRAMES); an
// untrusted max_pfn must not size ours. The tracker is a sparse map of
// 32768-pfn chunks (a 4-bit type plane and a 1-bit populated plane: 20 KiB
// a chunk), created only when a pfn in it is sent or referred to, and never
// more than the configured cap: memory grows with the pfns the stream
// actually touches, at most cap octets. Beyond the cap, pfns in new chunks
// are not tracked: get() answers "unknown" for them and capped() says so;
// the rules that need them are then skipped, never guessed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_set>

#include "tools/verify/chunk_map.h"

namespace xenstream::verify {

class PfnTypes {
 public:
  static constexpr unsigned kChunkShift = 15;  // 32768 pfns per chunk
  static constexpr std::size_t kChunkPfns = std::size_t{1} << kChunkShift;
  static constexpr std::size_t kChunkBytes = kChunkPfns / 2 + kChunkPfns / 8;

  struct State {
    unsigned type = 0;  // PFINFO nibble last sent (0: NOTAB or never sent)
    bool populated = false;
  };

  explicit PfnTypes(std::size_t cap_bytes) : chunks_(cap_bytes / kChunkBytes) {}

  // A PAGE_DATA entry: the pfn now has `type`; types that allocate memory
  // (every known type but XTAB and BROKEN) populate it.
  void sent(std::uint64_t pfn, unsigned type) {
    Chunk* c = chunk(pfn);
    if (c == nullptr) return;
    const std::size_t i = Chunks::index(pfn);
    std::uint8_t& b = c->types[i / 2];
    b = static_cast<std::uint8_t>((i & 1) != 0 ? (b & 0x0f) | ((type & 0xf) << 4)
                                               : (b & 0xf0) | (type & 0xf));
    if (type != kXtab && type != kBroken) set_populated(c, i);
  }

  // A present page-table entry refers to the pfn: Xen populates it.
  void referred(std::uint64_t pfn) {
    Chunk* c = chunk(pfn);
    if (c != nullptr) set_populated(c, Chunks::index(pfn));
  }

  // nullopt: not tracked (the cap was reached before the pfn's chunk).
  std::optional<State> get(std::uint64_t pfn) const {
    const Chunk* found = chunks_.find(pfn);
    if (found == nullptr) {
      if (overflow_ || dropped_.count(pfn >> kChunkShift) != 0) return std::nullopt;
      return State{};
    }
    const Chunk& c = *found;
    const std::size_t i = Chunks::index(pfn);
    State s;
    s.type = (i & 1) != 0 ? c.types[i / 2] >> 4 : c.types[i / 2] & 0xf;
    s.populated = ((c.populated[i / 64] >> (i % 64)) & 1) != 0;
    return s;
  }

  bool capped() const { return overflow_ || !dropped_.empty(); }
  std::size_t bytes() const { return chunks_.size() * kChunkBytes; }
  std::size_t cap_bytes() const { return chunks_.max_chunks() * kChunkBytes; }
  void clear() {
    chunks_.clear();
    dropped_.clear();
    overflow_ = false;
  }

 private:
  static constexpr unsigned kXtab = 0xF;
  static constexpr unsigned kBroken = 0xD;
  // Chunks refused at the cap are remembered by key so get() can tell
  // "never touched" from "not tracked"; at most one key per refused touch,
  // and touches are bounded by the stream, but bound them anyway: past
  // kMaxDropped every untracked chunk answers "unknown".
  static constexpr std::size_t kMaxDropped = 1u << 16;

  struct Chunk {
    std::array<std::uint8_t, kChunkPfns / 2> types{};
    std::array<std::uint64_t, kChunkPfns / 64> populated{};
  };
  static_assert(sizeof(Chunk) == kChunkBytes);

  static void set_populated(Chunk* c, std::size_t i) {
    c->populated[i / 64] |= std::uint64_t{1} << (i % 64);
  }

  using Chunks = ChunkMap<Chunk, kChunkShift>;

  // The pfn's chunk, or nullptr past the cap (the chunk is then remembered
  // as dropped, so get() says "unknown" rather than "never sent").
  Chunk* chunk(std::uint64_t pfn) {
    Chunk* c = chunks_.get_or_create(pfn);
    if (c == nullptr) {
      if (dropped_.size() < kMaxDropped) {
        dropped_.insert(pfn >> kChunkShift);
      } else {
        overflow_ = true;
      }
    }
    return c;
  }

  Chunks chunks_;
  std::unordered_set<std::uint64_t> dropped_;
  bool overflow_ = false;
};

}  // namespace xenstream::verify
