#include "tools/restore/page_map.h"

#include <cstring>

namespace xenstream::restore {

namespace {

// Index of the next non-zero octet at or after i, or kChunkPfns. Skips
// zeros eight at a time: most of a sparse chunk is zero.
std::uint64_t next_nonzero(const std::uint8_t* chunk, std::uint64_t i) {
  while (i < PageMap::kChunkPfns && (i & 7) != 0) {
    if (chunk[i] != 0) return i;
    ++i;
  }
  while (i < PageMap::kChunkPfns) {
    std::uint64_t w;
    std::memcpy(&w, chunk + i, 8);
    if (w != 0) break;
    i += 8;
  }
  while (i < PageMap::kChunkPfns && chunk[i] == 0) ++i;
  return i;
}

}  // namespace

std::uint8_t PageMap::get(std::uint64_t pfn) const {
  const std::uint64_t index = pfn >> kChunkShift;
  if (index == cached_index_) return cached_[pfn & (kChunkPfns - 1)];
  auto it = chunks_.find(index);
  if (it == chunks_.end()) return 0;
  return it->second[pfn & (kChunkPfns - 1)];
}

std::uint8_t& PageMap::at(std::uint64_t pfn) {
  const std::uint64_t index = pfn >> kChunkShift;
  if (index != cached_index_) {
    auto [it, inserted] = chunks_.try_emplace(index);
    if (inserted) it->second = std::make_unique<std::uint8_t[]>(kChunkPfns);  // zeroed
    cached_index_ = index;
    cached_ = it->second.get();
  }
  return cached_[pfn & (kChunkPfns - 1)];
}

std::uint64_t PageMap::populated_end() const {
  for (auto it = chunks_.rbegin(); it != chunks_.rend(); ++it) {
    const std::uint8_t* c = it->second.get();
    for (std::uint64_t w = kChunkPfns; w > 0; w -= 8) {
      std::uint64_t word;
      std::memcpy(&word, c + w - 8, 8);
      if ((word & 0x2020202020202020ull) == 0) continue;  // kPopulated in any octet
      for (std::uint64_t i = w; i-- > w - 8;) {
        if (c[i] & kPopulated) return (it->first << kChunkShift) + i + 1;
      }
    }
  }
  return 0;
}

std::vector<PageMap::Run> PageMap::runs(std::uint8_t mask) const {
  std::vector<Run> out;
  for (const auto& [index, chunk] : chunks_) {
    const std::uint64_t base = index << kChunkShift;
    for (std::uint64_t i = next_nonzero(chunk.get(), 0); i < kChunkPfns;
         i = next_nonzero(chunk.get(), i + 1)) {
      const std::uint8_t v = chunk[i] & mask;
      if (v == 0) continue;
      const std::uint64_t pfn = base + i;
      if (!out.empty() && out.back().end == pfn && out.back().value == v) {
        ++out.back().end;
      } else {
        out.push_back(Run{pfn, pfn + 1, v});
      }
    }
  }
  return out;
}

std::vector<std::uint64_t> PageMap::count_by_type() const {
  std::vector<std::uint64_t> counts(16, 0);
  for (const auto& [index, chunk] : chunks_) {
    for (std::uint64_t i = next_nonzero(chunk.get(), 0); i < kChunkPfns;
         i = next_nonzero(chunk.get(), i + 1)) {
      if (chunk[i] & kSeen) ++counts[chunk[i] & kTypeMask];
    }
  }
  return counts;
}

std::uint64_t PageMap::count_populated() const {
  std::uint64_t n = 0;
  for (const auto& [index, chunk] : chunks_) {
    for (std::uint64_t i = next_nonzero(chunk.get(), 0); i < kChunkPfns;
         i = next_nonzero(chunk.get(), i + 1)) {
      n += (chunk[i] & kPopulated) ? 1 : 0;
    }
  }
  return n;
}

}  // namespace xenstream::restore
