// The Remus page-delta codec of legacy (pre-Xen 4.6) checkpointed streams
// (spec/legacy.md, "Remus compression"; XC_SAVE_ID_COMPRESSED_DATA chunks).
//
// One page (4096 octets = 1024 four-octet words) is encoded as:
//   0x00                  EMPTY: the page equals the receiver's copy
//   0x80 + 4096 octets    FULL: literal contents
//   runs...               a sequence of run markers covering exactly 1024
//                         words: marker m, L = m & 0x7F words (1..127);
//                         bit 7 set = SKIP (keep the receiver's words),
//                         clear = COPY (L*4 literal octets follow)
// Runs are applied to the receiver's current copy of the page; nothing is
// XORed, whatever Xen's comments say.
//
// Decoder and Encoder have the same shape: the Encoder turns (pfn, page) into
// octets against the sender's cache of earlier copies; the Decoder turns
// (pfn, octets) back into the page against the receiver's copy, which it
// keeps in a PageStore. The free functions below are the stateless core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include <xenstream/codecs/remus/page_store.h>
#include <xenstream/libstream/error.h>
#include <xenstream/libstream/source.h>

namespace xenstream::codecs::remus {

inline constexpr std::size_t kWordSize = 4;
inline constexpr std::size_t kPageWords = kPageSize / kWordSize;  // 1024
inline constexpr std::uint8_t kMarkerEmpty = 0x00;
inline constexpr std::uint8_t kMarkerFull = 0x80;
inline constexpr std::uint8_t kSkipFlag = 0x80;
inline constexpr std::uint8_t kRunLengthMask = 0x7F;
inline constexpr unsigned kMaxRunWords = 127;
inline constexpr std::size_t kFullEncodingSize = 1 + kPageSize;  // 4097
// The longest encoding a page can have: 1024 one-word COPY runs.
inline constexpr std::size_t kMaxEncodingSize = kPageWords * (1 + kWordSize);  // 5120
// Xen's sender keeps 8192 page copies (DELTA_CACHE_SIZE, 32 MiB).
inline constexpr std::size_t kSenderCacheSlots = 8192;

enum class PageEncoding : std::uint8_t { kEmpty, kFull, kDelta };

// Length of the page encoding at the start of `in`, without applying it.
// `offset` is the absolute stream offset of in[0], for messages.
//   value:       octets the encoding occupies
//   kTruncated:  `in` ends before the encoding is complete (feed more)
//   kMalformed:  a zero-length run, or runs covering more than 1024 words
Expected<std::size_t> encoded_length(Bytes in, std::uint64_t offset);

struct DecodedPage {
  std::size_t length = 0;  // octets of `in` used
  PageEncoding kind = PageEncoding::kFull;
};

// Applies the page encoding at the start of `in` to `page`. When `has_base`
// is false the page has no earlier copy, and only FULL is accepted. On error
// `page` may be partly updated.
//   kTruncated:  as encoded_length
//   kMalformed:  as encoded_length, or EMPTY/runs without a base
Expected<DecodedPage> decode_page(Bytes in, std::span<std::byte, kPageSize> page, bool has_base,
                                  std::uint64_t offset);

// Appends 0x80 and the page.
void encode_full(std::span<const std::byte, kPageSize> page, std::vector<std::byte>& out);

// Appends the encoding of `now` against `base` exactly as Xen's sender
// computed it: maximal SKIP/COPY runs split at 127 words, or the single
// octet EMPTY when nothing changed (never FULL, even when every word
// changed: that costs 9 markers + 4096 octets). Copies every changed word
// into `base`, so afterwards base == now.
PageEncoding encode_delta(std::span<std::byte, kPageSize> base,
                          std::span<const std::byte, kPageSize> now, std::vector<std::byte>& out);

// Sender side: a model of Xen 4.1-4.5's compression context, an LRU cache of
// `slots` page copies keyed by pfn. Page-table pages are always sent FULL and
// dropped from the cache; a cache miss evicts the least recently used copy
// and sends FULL; a hit sends the delta against the cached copy.
class Encoder {
 public:
  explicit Encoder(std::size_t slots = kSenderCacheSlots);

  // Appends the encoding of `page` for `pfn` to `out` and returns its kind.
  PageEncoding encode(std::uint64_t pfn, std::span<const std::byte, kPageSize> page,
                      bool pagetable, std::vector<std::byte>& out);

 private:
  struct Slot {
    std::uint64_t pfn;
    bool used;
    std::vector<std::byte> copy;
  };
  std::list<Slot> lru_;  // front = most recently used, back = next to evict
  std::unordered_map<std::uint64_t, std::list<Slot>::iterator> index_;
};

// Where the Decoder finds the receiver's copy of a page it does not hold
// itself (for instance a page last sent uncompressed): fills `out` and
// returns true, or returns false when no copy exists.
using BaseLookup = std::function<Expected<bool>(std::uint64_t pfn, std::span<std::byte, kPageSize> out)>;

// Receiver side: keeps the latest contents of every page it decoded in a
// PageStore (a sparse temporary file, so memory stays bounded) and applies
// each new encoding to that copy.
class Decoder {
 public:
  // Borrows `store`. `fallback` (optional) is asked for pages the store
  // does not hold.
  explicit Decoder(PageStore& store, BaseLookup fallback = {});

  // Decodes the encoding at the start of `in` for `pfn` into `out` (the new
  // contents), and records them in the store.
  //   value:       length used and kind
  //   kTruncated:  `in` holds only part of the encoding
  //   kMalformed:  bad runs, or a non-FULL page with no earlier copy
  //   kIo:         the store failed
  Expected<DecodedPage> decode(std::uint64_t pfn, Bytes in, std::span<std::byte, kPageSize> out,
                               std::uint64_t offset);

  PageStore& store() { return store_; }

 private:
  PageStore& store_;
  BaseLookup fallback_;
};

// Cuts a byte stream that arrives in arbitrary pieces (the payloads of
// successive COMPRESSED_DATA chunks) into whole page encodings. An encoding
// split across pieces is carried over in a small buffer (at most
// kMaxEncodingSize octets); whole encodings inside a piece are returned as
// views of the piece without copying.
class EncodingSplitter {
 public:
  // Starts on a new piece whose first octet is at absolute `offset`. The
  // piece must stay valid until next() has returned nullopt for it.
  void feed(Bytes piece, std::uint64_t offset);

  // Next whole encoding and its absolute offset (for carried encodings, the
  // offset of their first octet, which lies in an earlier piece).
  //   value:      an encoding; the view lives until the next call
  //   nullopt:    the piece is used up (a partial encoding may be carried)
  //   kMalformed: as encoded_length
  struct Encoded {
    Bytes bytes;
    std::uint64_t offset = 0;
  };
  Expected<std::optional<Encoded>> next();

  // True when part of an encoding is waiting for more input.
  bool has_partial() const { return !carry_.empty() && !emitted_carry_; }
  std::uint64_t partial_offset() const { return carry_offset_; }

 private:
  Bytes piece_;
  std::size_t pos_ = 0;
  std::uint64_t piece_offset_ = 0;
  std::vector<std::byte> carry_;
  std::uint64_t carry_offset_ = 0;
  bool emitted_carry_ = false;  // carry_ holds the encoding last returned
};

}  // namespace xenstream::codecs::remus
