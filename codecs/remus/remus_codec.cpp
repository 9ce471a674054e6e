#include <xenstream/codecs/remus/remus_codec.h>

#include <algorithm>
#include <cstring>

namespace xenstream::codecs::remus {

namespace {

std::uint8_t octet(Bytes in, std::size_t i) { return static_cast<std::uint8_t>(in[i]); }

bool word_differs(const std::byte* a, const std::byte* b, std::size_t word) {
  return std::memcmp(a + word * kWordSize, b + word * kWordSize, kWordSize) != 0;
}

}  // namespace

Expected<std::size_t> encoded_length(Bytes in, std::uint64_t offset) {
  if (in.empty()) return truncated_error(offset, offset + 1, "a compressed page");
  const std::uint8_t first = octet(in, 0);
  if (first == kMarkerEmpty) return std::size_t{1};
  if (first == kMarkerFull) {
    if (in.size() < kFullEncodingSize) {
      return truncated_error(offset + in.size(), offset + kFullEncodingSize, "a FULL compressed page");
    }
    return kFullEncodingSize;
  }
  std::size_t pos = 0;
  std::size_t words = 0;
  while (words < kPageWords) {
    if (pos >= in.size()) {
      return truncated_error(offset + pos, offset + pos + 1, "a compressed page run marker");
    }
    const std::uint8_t marker = octet(in, pos);
    const unsigned length = marker & kRunLengthMask;
    if (length == 0) {
      return make_error(ErrorCode::kMalformed, offset + pos,
                        "compressed page at " + hex(offset) + ": zero-length run marker " +
                            hex(marker) + " at " + hex(offset + pos) + " after " +
                            std::to_string(words) + " words");
    }
    ++pos;
    if ((marker & kSkipFlag) == 0) {
      const std::size_t literal = length * kWordSize;
      if (in.size() - pos < literal) {
        return truncated_error(offset + in.size(), offset + pos + literal,
                               "a compressed page COPY run");
      }
      pos += literal;
    }
    words += length;
    if (words > kPageWords) {
      return make_error(ErrorCode::kMalformed, offset + pos - 1,
                        "compressed page at " + hex(offset) + ": runs cover " +
                            std::to_string(words) + " words, more than the 1024 of a page");
    }
  }
  return pos;
}

Expected<DecodedPage> decode_page(Bytes in, std::span<std::byte, kPageSize> page, bool has_base,
                                  std::uint64_t offset) {
  auto length = encoded_length(in, offset);
  if (!length) return std::move(length).error();
  const std::uint8_t first = octet(in, 0);
  if (first == kMarkerFull) {
    std::memcpy(page.data(), in.data() + 1, kPageSize);
    return DecodedPage{*length, PageEncoding::kFull};
  }
  if (!has_base) {
    return make_error(ErrorCode::kMalformed, offset,
                      std::string("compressed page at ") + hex(offset) + ": " +
                          (first == kMarkerEmpty ? "EMPTY (unchanged)" : "a delta") +
                          " for a page that has no earlier copy");
  }
  if (first == kMarkerEmpty) return DecodedPage{1, PageEncoding::kEmpty};
  std::size_t pos = 0;
  std::size_t at = 0;  // octet offset in the page
  while (at < kPageSize) {
    const std::uint8_t marker = octet(in, pos++);
    const std::size_t bytes = (marker & kRunLengthMask) * kWordSize;
    if ((marker & kSkipFlag) == 0) {
      std::memcpy(page.data() + at, in.data() + pos, bytes);
      pos += bytes;
    }
    at += bytes;
  }
  return DecodedPage{*length, PageEncoding::kDelta};
}

void encode_full(std::span<const std::byte, kPageSize> page, std::vector<std::byte>& out) {
  out.push_back(std::byte{kMarkerFull});
  out.insert(out.end(), page.begin(), page.end());
}

PageEncoding encode_delta(std::span<std::byte, kPageSize> base,
                          std::span<const std::byte, kPageSize> now, std::vector<std::byte>& out) {
  const std::size_t start = out.size();
  bool copied = false;
  std::size_t word = 0;
  while (word < kPageWords) {
    const bool copy = word_differs(base.data(), now.data(), word);
    std::size_t end = word + 1;
    while (end < kPageWords && end - word < kMaxRunWords &&
           word_differs(base.data(), now.data(), end) == copy) {
      ++end;
    }
    const auto length = static_cast<std::uint8_t>(end - word);
    out.push_back(std::byte(copy ? length : (length | kSkipFlag)));
    if (copy) {
      const std::size_t from = word * kWordSize;
      const std::size_t bytes = (end - word) * kWordSize;
      out.insert(out.end(), now.begin() + static_cast<std::ptrdiff_t>(from),
                 now.begin() + static_cast<std::ptrdiff_t>(from + bytes));
      std::memcpy(base.data() + from, now.data() + from, bytes);
      copied = true;
    }
    word = end;
  }
  if (!copied) {
    out.resize(start);
    out.push_back(std::byte{kMarkerEmpty});
    return PageEncoding::kEmpty;
  }
  return PageEncoding::kDelta;
}

// ---------------------------------------------------------------------------

Encoder::Encoder(std::size_t slots) {
  for (std::size_t i = 0; i < std::max<std::size_t>(slots, 1); ++i) lru_.push_back(Slot{0, false, {}});
}

PageEncoding Encoder::encode(std::uint64_t pfn, std::span<const std::byte, kPageSize> page,
                             bool pagetable, std::vector<std::byte>& out) {
  auto hit = index_.find(pfn);
  if (pagetable) {
    // Xen drops page tables from the cache (the slot becomes the next one
    // to reuse) and always sends them whole.
    if (hit != index_.end()) {
      hit->second->used = false;
      lru_.splice(lru_.end(), lru_, hit->second);
      index_.erase(hit);
    }
    encode_full(page, out);
    return PageEncoding::kFull;
  }
  if (hit == index_.end()) {
    auto slot = std::prev(lru_.end());
    if (slot->used) index_.erase(slot->pfn);
    slot->pfn = pfn;
    slot->used = true;
    slot->copy.assign(page.begin(), page.end());
    lru_.splice(lru_.begin(), lru_, slot);
    index_.emplace(pfn, lru_.begin());
    encode_full(page, out);
    return PageEncoding::kFull;
  }
  lru_.splice(lru_.begin(), lru_, hit->second);
  return encode_delta(std::span<std::byte, kPageSize>(hit->second->copy.data(), kPageSize), page, out);
}

// ---------------------------------------------------------------------------

Decoder::Decoder(PageStore& store, BaseLookup fallback)
    : store_(store), fallback_(std::move(fallback)) {}

Expected<DecodedPage> Decoder::decode(std::uint64_t pfn, Bytes in,
                                      std::span<std::byte, kPageSize> out, std::uint64_t offset) {
  auto length = encoded_length(in, offset);
  if (!length) return std::move(length).error();
  bool has_base = false;
  bool base_in_store = false;
  if (octet(in, 0) != kMarkerFull) {
    auto loaded = store_.load(pfn, out);
    if (!loaded) return std::move(loaded).error();
    has_base = base_in_store = *loaded;
    if (!has_base && fallback_) {
      auto found = fallback_(pfn, out);
      if (!found) return std::move(found).error();
      has_base = *found;
    }
  }
  auto decoded = decode_page(in.first(*length), out, has_base, offset);
  if (!decoded) {
    Error e = std::move(decoded).error();
    e.message = "pfn " + hex(pfn) + ": " + e.message;
    return e;
  }
  if (!(decoded->kind == PageEncoding::kEmpty && base_in_store)) {
    auto saved = store_.save(pfn, out);
    if (!saved) return std::move(saved).error();
  }
  return decoded;
}

// ---------------------------------------------------------------------------

void EncodingSplitter::feed(Bytes piece, std::uint64_t offset) {
  piece_ = piece;
  pos_ = 0;
  piece_offset_ = offset;
}

Expected<std::optional<EncodingSplitter::Encoded>> EncodingSplitter::next() {
  if (emitted_carry_) {
    carry_.clear();
    emitted_carry_ = false;
  }
  if (!carry_.empty()) {
    // Complete the carried encoding with octets from the new piece. It never
    // needs more than kMaxEncodingSize octets in all.
    const std::size_t old = carry_.size();
    const std::size_t take = std::min(kMaxEncodingSize - std::min(old, kMaxEncodingSize),
                                      piece_.size() - pos_);
    carry_.insert(carry_.end(), piece_.begin() + static_cast<std::ptrdiff_t>(pos_),
                  piece_.begin() + static_cast<std::ptrdiff_t>(pos_ + take));
    auto length = encoded_length(Bytes(carry_), carry_offset_);
    if (!length) {
      if (length.error().code == ErrorCode::kTruncated) {
        pos_ += take;  // everything went into the carry; wait for more
        return std::optional<Encoded>{};
      }
      return std::move(length).error();
    }
    pos_ += *length - old;
    carry_.resize(*length);
    emitted_carry_ = true;
    return std::optional<Encoded>{Encoded{Bytes(carry_), carry_offset_}};
  }
  if (pos_ >= piece_.size()) return std::optional<Encoded>{};
  const Bytes rest = piece_.subspan(pos_);
  const std::uint64_t at = piece_offset_ + pos_;
  auto length = encoded_length(rest, at);
  if (!length) {
    if (length.error().code == ErrorCode::kTruncated) {
      carry_.assign(rest.begin(), rest.end());
      carry_offset_ = at;
      pos_ = piece_.size();
      return std::optional<Encoded>{};
    }
    return std::move(length).error();
  }
  pos_ += *length;
  return std::optional<Encoded>{Encoded{rest.first(*length), at}};
}

}  // namespace xenstream::codecs::remus
