// A sparse map of per-pfn state in fixed-size chunks, never more than a cap.
//
// A pfn is up to 2^52 and an untrusted stream names whichever it likes, so
// per-pfn state lives in chunks of 2^kShift pfns, created on first use, and
// the map refuses to create more than `max_chunks` of them: memory grows
// with the pfns a stream really touches, up to a bound its caller chose.
// What a caller does with a refused chunk (count less, judge less) is its
// own business; the map only says "no room".
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

namespace xenstream::verify {

template <typename Chunk, unsigned kShift = 15>
class ChunkMap {
 public:
  static constexpr unsigned kChunkShift = kShift;
  static constexpr std::size_t kChunkPfns = std::size_t{1} << kShift;

  explicit ChunkMap(std::size_t max_chunks) : max_chunks_(max_chunks) {}

  // The chunk holding `pfn`, created if there is room; nullptr when the
  // cap is reached.
  Chunk* get_or_create(std::uint64_t pfn) {
    const std::uint64_t key = pfn >> kShift;
    if (key == last_key_) return last_;
    Chunk* c = nullptr;
    if (auto it = chunks_.find(key); it != chunks_.end()) {
      c = it->second.get();
    } else if (chunks_.size() < max_chunks_) {
      c = chunks_.emplace(key, std::make_unique<Chunk>()).first->second.get();
    } else {
      return nullptr;
    }
    last_key_ = key;
    last_ = c;
    return c;
  }
  // The chunk holding `pfn` if it exists.
  const Chunk* find(std::uint64_t pfn) const {
    auto it = chunks_.find(pfn >> kShift);
    return it == chunks_.end() ? nullptr : it->second.get();
  }
  static std::size_t index(std::uint64_t pfn) { return pfn & (kChunkPfns - 1); }

  std::size_t size() const { return chunks_.size(); }
  std::size_t max_chunks() const { return max_chunks_; }
  void clear() {
    chunks_.clear();
    last_key_ = ~std::uint64_t{0};
    last_ = nullptr;
  }

 private:
  std::size_t max_chunks_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Chunk>> chunks_;
  std::uint64_t last_key_ = ~std::uint64_t{0};
  Chunk* last_ = nullptr;
};

}  // namespace xenstream::verify
