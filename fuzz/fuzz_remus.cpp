// Fuzz target: the Remus page-delta decoder (codecs/remus).
//
// The input's first octet picks a piece size; the rest is a stream of page
// encodings, cut into pieces of that size and reassembled by
// EncodingSplitter, as COMPRESSED_DATA chunks arrive. Each encoding is
// decoded for pfn (k mod 3) by a Decoder over a real PageStore, and checked
// against a reference model of the format written here from the spec
// (spec/legacy.md, "Remus compression"): same verdict, same length, same
// page. Every decoded page is then re-encoded as a delta against its
// previous contents and decoded back, which must give the page again.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>

#include <xenstream/codecs/remus/page_store.h>
#include <xenstream/codecs/remus/remus_codec.h>
#include "fuzz/common/walk.h"

namespace {

using namespace xenstream;
namespace remus = xenstream::codecs::remus;
using Page = std::array<std::byte, remus::kPageSize>;

// The reference: applies one encoding to `page` (nullopt = no earlier copy).
// Returns the octets used, or nullopt when the encoding is malformed.
std::optional<std::size_t> model_decode(Bytes in, std::optional<Page>& page) {
  if (in.empty()) return std::nullopt;
  const auto first = static_cast<std::uint8_t>(in[0]);
  if (first == 0x80) {
    if (in.size() < 1 + remus::kPageSize) return std::nullopt;
    page.emplace();
    std::memcpy(page->data(), in.data() + 1, remus::kPageSize);
    return 1 + remus::kPageSize;
  }
  if (!page) return std::nullopt;  // EMPTY and runs need an earlier copy
  if (first == 0x00) return 1;
  std::size_t pos = 0;
  std::size_t words = 0;
  while (words < remus::kPageWords) {
    if (pos >= in.size()) return std::nullopt;
    const auto m = static_cast<std::uint8_t>(in[pos++]);
    const std::size_t len = m & 0x7F;
    if (len == 0 || words + len > remus::kPageWords) return std::nullopt;
    if ((m & 0x80) == 0) {
      if (in.size() - pos < 4 * len) return std::nullopt;
      std::memcpy(page->data() + 4 * words, in.data() + pos, 4 * len);
      pos += 4 * len;
    }
    words += len;
  }
  return pos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static constexpr std::size_t kPieces[] = {1, 3, 64, 4096, 4097, 5120, 1u << 16, 7};
  const std::size_t piece = kPieces[data[0] % 8];
  const Bytes in(reinterpret_cast<const std::byte*>(data + 1), size - 1);

  auto store = remus::PageStore::create();
  FUZZ_CHECK(store.has_value(), store.error().describe());
  remus::Decoder decoder(**store);
  std::map<std::uint64_t, std::optional<Page>> model;
  remus::EncodingSplitter splitter;
  std::uint64_t k = 0;
  std::uint64_t next_start = 1;  // input offset of the next encoding
  for (std::size_t at = 0; at < in.size(); at += piece) {
    const Bytes p = in.subspan(at, std::min(piece, in.size() - at));
    splitter.feed(p, 1 + at);
    for (;;) {
      auto enc = splitter.next();
      if (!enc) {
        // The splitter refuses what encoded_length refuses; the model must
        // agree that the encoding after the last one returned is malformed.
        const std::size_t from = static_cast<std::size_t>(next_start) - 1;
        FUZZ_CHECK(enc.error().code == ErrorCode::kMalformed, enc.error().describe());
        std::optional<Page> scratch = Page{};
        FUZZ_CHECK(from < in.size() && !model_decode(in.subspan(from), scratch),
                   "splitter refused an encoding the model accepts: " + enc.error().describe());
        return 0;
      }
      if (!enc->has_value()) break;
      const Bytes e = (*enc)->bytes;
      next_start = (*enc)->offset + e.size();
      auto len = remus::encoded_length(e, (*enc)->offset);
      FUZZ_CHECK(len && *len == e.size(), "encoded_length disagrees with the splitter");

      const std::uint64_t pfn = k++ % 3;
      std::optional<Page>& want = model[pfn];
      const std::optional<Page> before = want;
      const auto used = model_decode(e, want);
      Page got{};
      auto d = decoder.decode(pfn, e, got, (*enc)->offset);
      FUZZ_CHECK(d.has_value() == used.has_value(),
                 "decoder and model disagree at " + hex((*enc)->offset) +
                     (d ? std::string(": decoder accepted") : ": " + d.error().describe()));
      if (!d) {
        FUZZ_CHECK(d.error().code == ErrorCode::kMalformed, d.error().describe());
        return 0;  // a malformed encoding ends the stream
      }
      FUZZ_CHECK(d->length == *used, "decoded length");
      FUZZ_CHECK(std::memcmp(got.data(), want->data(), remus::kPageSize) == 0,
                 "decoded page differs from the model at " + hex((*enc)->offset));
      Page stored{};
      auto loaded = (*store)->load(pfn, stored);
      FUZZ_CHECK(loaded && *loaded && stored == got, "the store does not hold the new page");

      // Re-encode against the previous contents and decode back.
      if (before) {
        Page base = *before;
        std::vector<std::byte> re;
        remus::encode_delta(base, got, re);
        FUZZ_CHECK(base == got, "encode_delta must leave base equal to the new page");
        Page back = *before;
        auto rd = remus::decode_page(re, back, true, 0);
        FUZZ_CHECK(rd && rd->length == re.size() && back == got, "delta round trip");
        FUZZ_CHECK(re.size() <= remus::kMaxEncodingSize, "delta longer than the longest encoding");
      }
    }
  }
  return 0;
}
