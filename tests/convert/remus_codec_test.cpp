// The Remus page-delta codec (codecs/remus): exact encodings, decoder
// errors, the sparse page store, and encode-then-decode properties.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstring>

#include <xenstream/codecs/remus/page_store.h>
#include <xenstream/codecs/remus/remus_codec.h>
#include "tests/convert/legacy_builder.h"

namespace xenstream::convert::testing {
namespace {

namespace remus = codecs::remus;
using Buf = std::vector<std::byte>;

void set_word(Page& p, std::size_t word, std::uint32_t v) { std::memcpy(p.data() + 4 * word, &v, 4); }

TEST(RemusCodec, UnchangedPageIsOneEmptyOctet) {
  Page base = make_page(1);
  const Page now = base;
  Buf out;
  EXPECT_EQ(remus::encode_delta(base, now, out), remus::PageEncoding::kEmpty);
  EXPECT_EQ(out, Buf{std::byte{0x00}});
}

TEST(RemusCodec, DeltaRunsAreMaximalAndSplitAt127Words) {
  Page base{};
  Page now{};
  // Words 3-4 changed, then 300 words changed from 500 on.
  set_word(now, 3, 1);
  set_word(now, 4, 2);
  for (std::size_t w = 500; w < 800; ++w) set_word(now, w, static_cast<std::uint32_t>(w));
  Buf out;
  ASSERT_EQ(remus::encode_delta(base, now, out), remus::PageEncoding::kDelta);
  // SKIP 3, COPY 2 (+8 octets), SKIP 127 x3 and 114 (495 words), COPY 127,
  // 127 and 46 (300 words), SKIP 127 and 97 (224 words).
  const std::vector<std::uint8_t> markers{0x83, 0x02, 0xFF, 0xFF, 0xFF, 0x80 | 114,
                                          127,  127,  46,   0xFF, 0x80 | 97};
  std::vector<std::uint8_t> seen;
  std::size_t at = 0;
  while (at < out.size()) {
    const auto m = static_cast<std::uint8_t>(out[at++]);
    seen.push_back(m);
    if ((m & 0x80) == 0) at += 4u * (m & 0x7F);
  }
  EXPECT_EQ(seen, markers);
  EXPECT_EQ(out.size(), markers.size() + 4 * (2 + 300));
  EXPECT_EQ(base, now) << "the cached copy follows the page";
}

TEST(RemusCodec, FullyChangedPageCosts4105Octets) {
  Page base{};
  Page now = make_page(9);
  for (std::size_t w = 0; w < 1024; ++w) {
    if (std::memcmp(base.data() + 4 * w, now.data() + 4 * w, 4) == 0) set_word(now, w, 0xFFFFFFFF);
  }
  Buf out;
  remus::encode_delta(base, now, out);
  EXPECT_EQ(out.size(), 4105u);
}

TEST(RemusCodec, DecoderErrorsNameTheOffset) {
  Page page{};
  const Buf zero_run{std::byte{0x83}, std::byte{0x80}};
  auto r = remus::decode_page(zero_run, page, true, 0x1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(r.error().offset, 0x1001u);
  EXPECT_EQ(r.error().message, "compressed page at 0x1000: zero-length run marker 0x80 at 0x1001 after 3 words");

  const Buf overrun{std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF},
                    std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF},
                    std::byte{0x80 | 10}, std::byte{0x80 | 20}};
  r = remus::decode_page(overrun, page, true, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "compressed page at 0x0: runs cover 1026 words, more than the 1024 of a page");

  const Buf cut{std::byte{0x05}, std::byte{1}, std::byte{2}};
  r = remus::decode_page(cut, page, true, 0x40);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTruncated);

  r = remus::decode_page(Buf{std::byte{0}}, page, false, 0x7);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "compressed page at 0x7: EMPTY (unchanged) for a page that has no earlier copy");
}

TEST(RemusCodec, EncoderFollowsXensCache) {
  remus::Encoder enc(2);  // two slots, to see evictions
  const Page a = make_page(1), b = make_page(2), c = make_page(3);
  Buf out;
  EXPECT_EQ(enc.encode(1, a, false, out), remus::PageEncoding::kFull);
  EXPECT_EQ(enc.encode(2, b, false, out), remus::PageEncoding::kFull);
  EXPECT_EQ(enc.encode(1, a, false, out), remus::PageEncoding::kEmpty);  // hit, unchanged
  EXPECT_EQ(enc.encode(3, c, false, out), remus::PageEncoding::kFull);   // evicts pfn 2 (LRU)
  EXPECT_EQ(enc.encode(1, a, false, out), remus::PageEncoding::kEmpty);
  EXPECT_EQ(enc.encode(2, b, false, out), remus::PageEncoding::kFull);   // was evicted
  EXPECT_EQ(enc.encode(1, a, true, out), remus::PageEncoding::kFull);    // page tables: always full
  EXPECT_EQ(enc.encode(1, a, false, out), remus::PageEncoding::kFull);   // and dropped from the cache
}

TEST(RemusCodec, PageStoreIsSparse) {
  auto store = remus::PageStore::create();
  ASSERT_TRUE(store) << store.error().describe();
  const Page p = make_page(5);
  ASSERT_TRUE((*store)->save(0x0FFFFFFF, p));  // the top of a 1 TiB guest
  ASSERT_TRUE((*store)->save(3, p));
  EXPECT_EQ((*store)->pages(), 2u);
  EXPECT_LT((*store)->allocated_bytes(), 1u << 20);
  Page back{};
  auto got = (*store)->load(0x0FFFFFFF, back);
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got);
  EXPECT_EQ(back, p);
  got = (*store)->load(4, back);
  ASSERT_TRUE(got);
  EXPECT_FALSE(*got);
  EXPECT_FALSE((*store)->save(remus::kMaxStorePfn + 1, p));
}

TEST(RemusCodec, SplitterCarriesEncodingsAcrossPieces) {
  remus::Encoder enc;
  Buf stream;
  std::vector<Page> pages;
  for (unsigned v = 0; v < 3; ++v) {
    for (std::uint64_t pfn = 0; pfn < 4; ++pfn) {
      pages.push_back(page_version(pfn, v));
      enc.encode(pfn, pages.back(), false, stream);
    }
  }
  // Feed one octet at a time: every encoding is carried.
  remus::EncodingSplitter split;
  std::vector<Buf> seen;
  for (std::size_t i = 0; i < stream.size(); ++i) {
    split.feed(Bytes(stream).subspan(i, 1), i);
    for (;;) {
      auto e = split.next();
      ASSERT_TRUE(e);
      if (!*e) break;
      seen.emplace_back((*e)->bytes.begin(), (*e)->bytes.end());
    }
  }
  EXPECT_FALSE(split.has_partial());
  ASSERT_EQ(seen.size(), pages.size());
  Buf joined;
  for (const Buf& b : seen) joined.insert(joined.end(), b.begin(), b.end());
  EXPECT_EQ(joined, stream);
}

// Encode a sequence of page versions, split the stream anywhere, decode
// against a store: every page comes back.
RC_GTEST_PROP(RemusCodecProperty, EncodeThenDecodeRoundTrips, ()) {
  const auto rounds = *rc::gen::inRange(1, 5);
  const auto npfn = *rc::gen::inRange(1, 12);
  remus::Encoder enc(static_cast<std::size_t>(*rc::gen::inRange(1, 16)));
  Buf stream;
  std::vector<std::pair<std::uint64_t, Page>> sent;
  for (int r = 0; r < rounds; ++r) {
    for (int pfn = 0; pfn < npfn; ++pfn) {
      if (!*rc::gen::arbitrary<bool>()) continue;
      Page p = page_version(static_cast<std::uint64_t>(pfn), static_cast<unsigned>(r));
      // Sometimes random words, sometimes an unchanged page.
      const auto edits = *rc::gen::inRange(0, 40);
      for (int e = 0; e < edits; ++e) {
        set_word(p, static_cast<std::size_t>(*rc::gen::inRange(0, 1024)), *rc::gen::arbitrary<std::uint32_t>());
      }
      enc.encode(static_cast<std::uint64_t>(pfn), p, *rc::gen::inRange(0, 10) == 0, stream);
      sent.emplace_back(pfn, p);
    }
  }
  auto store = remus::PageStore::create();
  RC_ASSERT(store.has_value());
  remus::Decoder dec(**store);
  remus::EncodingSplitter split;
  std::size_t at = 0, next = 0;
  bool was_empty = false;
  while (at < stream.size()) {
    // Pieces of any size, empty ones included (never twice in a row, so
    // that shrinking cannot stall the loop).
    auto n = std::min<std::size_t>(stream.size() - at,
                                   static_cast<std::size_t>(*rc::gen::inRange(was_empty ? 1 : 0, 6000)));
    was_empty = n == 0;
    split.feed(Bytes(stream).subspan(at, n), at);
    at += n;
    for (;;) {
      auto e = split.next();
      RC_ASSERT(e.has_value());
      if (!*e) break;
      RC_ASSERT(next < sent.size());
      Page out{};
      auto d = dec.decode(sent[next].first, (*e)->bytes, out, (*e)->offset);
      RC_ASSERT(d.has_value());
      RC_ASSERT(d->length == (*e)->bytes.size());
      RC_ASSERT(out == sent[next].second);
      ++next;
    }
  }
  RC_ASSERT(next == sent.size());
  RC_ASSERT(!split.has_partial());
}

}  // namespace
}  // namespace xenstream::convert::testing
