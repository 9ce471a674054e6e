// StreamCursor: layer switching in nested and checkpointed (Remus, COLO)
// streams, bare libxc images, trailing bytes after END, end of input without
// END, sticky failure.
#include <gtest/gtest.h>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/records.h>
#include "test_util.h"

namespace xenstream {
namespace {

using namespace xenstream::test;
namespace xc = format::libxc;
namespace xl = format::libxl;

using Step = std::pair<Layer, std::uint32_t>;
constexpr Layer X = Layer::kLibxc;
constexpr Layer L = Layer::kLibxl;

std::vector<Step> steps(const Walk& w) {
  std::vector<Step> v;
  for (const auto& r : w.records) v.emplace_back(r.layer, r.type);
  return v;
}

std::string show(const std::vector<Step>& v) {
  std::string s;
  for (const auto& [layer, type] : v) {
    s += std::string(layer_name(layer)) + ":" + record_display_name(layer, type) + " ";
  }
  return s;
}

struct Builder {
  BufferSink sink;
  RecordWriter w{sink};
  explicit Builder(ByteOrder order = ByteOrder::kLittle) : w(sink, order) {}
  Builder& libxl() { EXPECT_TRUE(w.write_libxl_header()); return *this; }
  Builder& libxc(std::uint32_t type = xc::kDomainX86Hvm) {
    EXPECT_TRUE(w.write_image_header(3));
    EXPECT_TRUE(w.write_domain_header(type, 4, 17));
    return *this;
  }
  Builder& rec(std::uint32_t type, std::size_t len = 0) {
    const Buffer body = pattern(len, static_cast<std::uint8_t>(type));
    EXPECT_TRUE(w.append(type, {view(body)}));
    return *this;
  }
  Builder& state(std::uint32_t id) { EXPECT_TRUE(w.append_checkpoint_state(id)); return *this; }
  Builder& raw(const Buffer& b) { EXPECT_TRUE(sink.write(view(b))); return *this; }
  Buffer done() { return sink.data(); }
};

TEST(StreamCursor, NestedPlainStream) {
  const Buffer s = Builder().libxl().rec(1).libxc().rec(0x10).rec(0x01 /*bogus but framed*/, 12)
                       .rec(0x08, 24).rec(0x09, 100).rec(0x0A, 8).rec(0).rec(2, 20).rec(3, 30).rec(0).done();
  const Walk w = walk_memory(s);
  ASSERT_TRUE(w.ok) << w.error_text();
  const std::vector<Step> want = {{L, 1}, {X, 0x10}, {X, 1}, {X, 8}, {X, 9}, {X, 0xA},
                                  {X, 0}, {L, 2},    {L, 3}, {L, 0}};
  EXPECT_EQ(steps(w), want) << show(steps(w));
  EXPECT_EQ(w.checkpoints, 0u);
  // Offsets and indexes run across both layers.
  EXPECT_EQ(w.records[0].offset, 16u);
  EXPECT_EQ(w.records[1].offset, 64u);
  for (std::size_t i = 0; i < w.records.size(); ++i) EXPECT_EQ(w.records[i].index, i);
  EXPECT_EQ(w.records.back().offset + 8, s.size());
}

TEST(StreamCursor, HeadersAreExposed) {
  const Buffer s = Builder(ByteOrder::kBig).libxl().rec(1).libxc(xc::kDomainX86Pv).rec(0).rec(0).done();
  MemorySource src(view(s));
  StreamCursor cur(src, PayloadKind::kLibxl);
  ASSERT_TRUE(cur.start());
  ASSERT_TRUE(cur.libxl_header());
  EXPECT_EQ(cur.libxl_header()->order(), ByteOrder::kBig);
  EXPECT_FALSE(cur.libxc_image());
  auto r = cur.next();  // LIBXC_CONTEXT
  ASSERT_TRUE(r);
  EXPECT_FALSE(cur.libxc_image()) << "libxc headers are read just before the first libxc record";
  r = cur.next();  // libxc END
  ASSERT_TRUE(r);
  EXPECT_EQ(r->layer, X);
  EXPECT_EQ(r->order, ByteOrder::kBig);
  ASSERT_TRUE(cur.libxc_image());
  EXPECT_EQ(cur.libxc_image()->offset, 24u);
  ASSERT_TRUE(cur.libxc_domain());
  EXPECT_EQ(cur.libxc_domain()->offset, 48u);
  EXPECT_TRUE(cur.libxc_domain()->is_pv());
  EXPECT_FALSE(cur.done());
  r = cur.next();
  ASSERT_TRUE(r);
  EXPECT_TRUE(cur.done());
  EXPECT_TRUE(cur.finish());
  EXPECT_EQ(cur.position(), s.size());
  auto again = cur.next();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kUsage);
  EXPECT_EQ(again.error().message, "the stream has already ended");
}

TEST(StreamCursor, RemusCheckpointsSwitchLayers) {
  // Full copy, CHECKPOINT, libxl records, CHECKPOINT_END, then two more
  // checkpoints; no END anywhere (the saver never writes one).
  Builder b;
  b.libxl().rec(1).libxc().rec(0x10).rec(1, 16).rec(0x09, 40).rec(0x0E);
  b.rec(2, 9).rec(3, 33).rec(4);
  b.rec(1, 16).rec(0x08, 24).rec(0x0E);
  b.rec(3, 33).rec(4);
  b.rec(1, 16).rec(0x0E);
  b.rec(4);
  const Buffer s = b.done();

  MemorySource src(view(s));
  StreamCursor cur(src, PayloadKind::kLibxl);
  ASSERT_TRUE(cur.start());
  std::vector<Step> got;
  std::vector<bool> inside;
  for (;;) {
    auto r = cur.next();
    if (!r) {
      EXPECT_EQ(r.error().code, ErrorCode::kTruncated);
      EXPECT_EQ(r.error().offset, s.size());
      EXPECT_EQ(r.error().message, "the stream ends at " + hex(s.size()) + " without an END record");
      break;
    }
    got.emplace_back(r->layer, r->type);
    inside.push_back(cur.in_checkpoint());
  }
  const std::vector<Step> want = {{L, 1}, {X, 0x10}, {X, 1}, {X, 9}, {X, 0xE}, {L, 2}, {L, 3}, {L, 4},
                                  {X, 1}, {X, 8},    {X, 0xE}, {L, 3}, {L, 4}, {X, 1}, {X, 0xE}, {L, 4}};
  EXPECT_EQ(got, want) << show(got);
  const std::vector<bool> want_inside = {false, false, false, false, true, true, true, false,
                                         false, false, true, true, false, false, true, false};
  EXPECT_EQ(inside, want_inside);
  EXPECT_EQ(cur.checkpoints(), 3u);
  EXPECT_FALSE(cur.done());
}

TEST(StreamCursor, ColoCheckpointStateIsReadAsLibxl) {
  // In an HVM stream, type 5 right after CHECKPOINT_END is libxl's
  // CHECKPOINT_STATE, not libxc's X86_PV_VCPU_EXTENDED.
  Builder b;
  b.libxl().rec(1).libxc(xc::kDomainX86Hvm).rec(1, 16).rec(0x0E).rec(3, 10).rec(4);
  b.state(xl::kCheckpointNew).rec(1, 16).rec(0x0E).rec(4);
  b.state(xl::kCheckpointNew).rec(0x0E).rec(4);
  const Walk w = walk_memory(b.done());
  const std::vector<Step> want = {{L, 1}, {X, 1}, {X, 0xE}, {L, 3}, {L, 4}, {L, 5}, {X, 1},
                                  {X, 0xE}, {L, 4}, {L, 5}, {X, 0xE}, {L, 4}};
  EXPECT_EQ(steps(w), want) << show(steps(w));
  EXPECT_EQ(w.checkpoints, 3u);
  ASSERT_TRUE(w.error);
  EXPECT_EQ(w.error->message.rfind("the stream ends at ", 0), 0u) << w.error->message;

  // In a PV stream the same octets are libxc's X86_PV_VCPU_EXTENDED.
  Builder p;
  p.libxl().rec(1).libxc(xc::kDomainX86Pv).rec(0x0E).rec(4).rec(5, 16).rec(0x0E).rec(4);
  const Walk pw = walk_memory(p.done());
  const std::vector<Step> pwant = {{L, 1}, {X, 0xE}, {L, 4}, {X, 5}, {X, 0xE}, {L, 4}};
  EXPECT_EQ(steps(pw), pwant) << show(steps(pw));
}

TEST(StreamCursor, BareLibxcCheckpointsStayInLibxc) {
  const Buffer s = Builder().libxc().rec(1, 16).rec(0x0E).rec(1, 16).rec(0x0E).rec(0).done();
  const Walk w = walk_memory(s);
  ASSERT_TRUE(w.ok) << w.error_text();
  const std::vector<Step> want = {{X, 1}, {X, 0xE}, {X, 1}, {X, 0xE}, {X, 0}};
  EXPECT_EQ(steps(w), want);
  EXPECT_EQ(w.checkpoints, 2u);
}

TEST(StreamCursor, CheckpointEndOutsideACheckpointStaysInLibxl) {
  const Buffer s = Builder().libxl().rec(4).rec(1).libxc().rec(0).rec(0).done();
  const Walk w = walk_memory(s);
  ASSERT_TRUE(w.ok) << w.error_text();
  const std::vector<Step> want = {{L, 4}, {L, 1}, {X, 0}, {L, 0}};
  EXPECT_EQ(steps(w), want);
}

TEST(StreamCursor, TrailingBytesAfterEnd) {
  const Buffer stream = Builder().libxl().rec(1).libxc().rec(0).rec(0).done();
  const Buffer junk = pattern(13, 0x77);
  Buffer s = stream;
  s.insert(s.end(), junk.begin(), junk.end());
  const Walk w = walk_memory(s);
  EXPECT_TRUE(w.done);
  EXPECT_FALSE(w.ok);
  ASSERT_TRUE(w.error);
  EXPECT_EQ(w.error->code, ErrorCode::kMalformed);
  EXPECT_EQ(w.error->offset, stream.size());
  EXPECT_EQ(w.error->message, "13 trailing bytes after the END record [" + hex(stream.size()) + ", " +
                                  hex(stream.size() + 13) + ")");
  ASSERT_TRUE(w.error->range);
  EXPECT_EQ(w.error->range->begin, stream.size());
  EXPECT_EQ(w.error->range->end, stream.size() + 13);
  // The same through a pipe, with more trailing bytes than one read.
  Buffer big = stream;
  const Buffer lots = pattern(3u << 20, 1);
  big.insert(big.end(), lots.begin(), lots.end());
  PipeFeeder feed(big, {70000}, false);
  FdSource src(feed.read_fd(), "<pipe>");
  const Walk p = walk(src);
  ASSERT_TRUE(p.error);
  EXPECT_EQ(p.error->message, "3145728 trailing bytes after the END record [" + hex(stream.size()) +
                                  ", " + hex(stream.size() + (3u << 20)) + ")");
  EXPECT_EQ(p.error->offset, stream.size());
}

TEST(StreamCursor, TrailingBytesAfterBareLibxcEnd) {
  Buffer s = Builder().libxc().rec(0).done();
  s.push_back(std::byte{0});
  const Walk w = walk_memory(s);
  ASSERT_TRUE(w.error);
  EXPECT_EQ(w.error->message, "1 trailing bytes after the END record [0x30, 0x31)");
}

TEST(StreamCursor, EndOfInputWithoutEnd) {
  const Buffer full = Builder().libxl().rec(1).libxc().rec(0x10).rec(0x0B, 20).rec(0).rec(0).done();
  // At each record boundary before the last END: a clean "no END" report.
  for (std::size_t cut : {16u, 64u, 72u, 104u, 112u}) {
    const Buffer s(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
    const Walk w = walk_memory(s);
    ASSERT_TRUE(w.error) << cut;
    EXPECT_EQ(w.error->code, ErrorCode::kTruncated);
    EXPECT_EQ(w.error->offset, cut);
    EXPECT_EQ(w.error->message, "the stream ends at " + hex(cut) + " without an END record");
  }
  // Inside a record body: the record is named with what it needed.
  const Buffer s(full.begin(), full.begin() + 90);
  const Walk w = walk_memory(s);
  ASSERT_TRUE(w.error);
  EXPECT_EQ(w.error->code, ErrorCode::kTruncated);
  EXPECT_EQ(w.error->offset, 90u);
  EXPECT_EQ(w.error->message,
            "record #2 TOOLSTACK at 0x48: truncated: the record needs [0x48, 0x68) but the input ends at 0x5a");
  EXPECT_EQ(w.error->record_index, 2u);
  EXPECT_EQ(w.error->record_type, 0x0Bu);
  ASSERT_TRUE(w.error->range);
  EXPECT_EQ(w.error->range->begin, 0x48u);
  EXPECT_EQ(w.error->range->end, 0x68u);
  // Inside the padding only.
  const Buffer p(full.begin(), full.begin() + 0x66);
  const Walk pw = walk_memory(p);
  ASSERT_TRUE(pw.error);
  EXPECT_EQ(pw.error->message,
            "record #2 TOOLSTACK at 0x48: truncated: the record needs [0x48, 0x68) but the input ends at 0x66");
}

TEST(StreamCursor, FailureIsSticky) {
  Buffer s = Builder().libxl().rec(1).libxc().rec(0x10).rec(0).rec(0).done();
  put_u32(s.data() + 64 + 4, 0x7FFFFFFF, ByteOrder::kLittle);
  MemorySource src(view(s));
  StreamCursor cur(src, PayloadKind::kLibxl);
  ASSERT_TRUE(cur.start());
  ASSERT_TRUE(cur.next());
  auto first = cur.next();
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, ErrorCode::kLimit);
  for (int i = 0; i < 3; ++i) {
    auto again = cur.next();
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().message, first.error().message);
    EXPECT_EQ(again.error().offset, first.error().offset);
  }
}

// next_head() + extend(): the same records, offsets and bytes as next(),
// whatever prefix is asked for, and skipping what was never pulled.
TEST(StreamCursor, HeadsWalkLikeWholeRecords) {
  const Buffer s = Builder().libxl().rec(1).libxc().rec(0x10).rec(0x0B, 1000).rec(0x0D, 3).rec(0)
                       .rec(2, 20).rec(0).done();
  const Walk whole = walk_memory(s);
  ASSERT_TRUE(whole.ok) << whole.error_text();
  for (std::size_t prefix : {0u, 1u, 8u, 999u, 1000u, 5000u}) {
    for (bool extend : {false, true}) {
      MemorySource src(view(s));
      StreamCursor cur(src, PayloadKind::kLibxl);
      ASSERT_TRUE(cur.start());
      std::size_t i = 0;
      while (!cur.done()) {
        auto rec = cur.next_head(prefix);
        ASSERT_TRUE(rec) << rec.error().describe();
        ASSERT_LT(i, whole.records.size());
        const auto& want = whole.records[i++];
        EXPECT_EQ(rec->type, want.type);
        EXPECT_EQ(rec->offset, want.offset);
        EXPECT_EQ(rec->length, want.body.size());
        EXPECT_EQ(rec->body.size(), std::min<std::size_t>(prefix, want.body.size()));
        EXPECT_EQ(rec->complete(), prefix >= want.body.size());
        if (!rec->complete()) {
          EXPECT_TRUE(rec->padding.empty());
          if (!extend) continue;  // the next call skips the rest
          auto half = cur.extend(rec->length / 2);
          ASSERT_TRUE(half);
          EXPECT_EQ(half->body.size(), rec->length / 2u);
          rec = cur.extend(RecordReader::kWholeBody);
          ASSERT_TRUE(rec);
          EXPECT_TRUE(rec->complete());
        }
        EXPECT_EQ(hexdump(rec->body.first(rec->body.size())),
                  hexdump(view(want.body).first(rec->body.size())));
      }
      EXPECT_EQ(i, whole.records.size()) << prefix;
      EXPECT_TRUE(cur.finish());
    }
  }
}

TEST(StreamCursor, HeadOfATruncatedRecord) {
  const Buffer full = Builder().libxl().rec(1).libxc().rec(0x10).rec(0x0B, 200).rec(0).rec(0).done();
  // The record #2 TOOLSTACK at 0x48 needs [0x48, 0x118); the input stops at 0x80.
  const Buffer s(full.begin(), full.begin() + 0x80);
  {
    // Its head is there; asking for the whole of it is a truncation.
    MemorySource src(view(s));
    StreamCursor cur(src, PayloadKind::kLibxl);
    ASSERT_TRUE(cur.start());
    ASSERT_TRUE(cur.next());
    ASSERT_TRUE(cur.next());
    auto head = cur.next_head(16);
    ASSERT_TRUE(head) << head.error().describe();
    EXPECT_EQ(head->body.size(), 16u);
    auto whole = cur.extend(RecordReader::kWholeBody);
    ASSERT_FALSE(whole);
    EXPECT_EQ(whole.error().code, ErrorCode::kTruncated);
    EXPECT_EQ(whole.error().message,
              "record #2 TOOLSTACK at 0x48: truncated: the record needs [0x48, 0x118) but the input ends at 0x80");
    EXPECT_EQ(whole.error().record_index, 2u);
    EXPECT_FALSE(cur.next()) << "failure is sticky";
  }
  {
    // Skipping the unread rest runs out of input: the next call says so.
    MemorySource src(view(s));
    StreamCursor cur(src, PayloadKind::kLibxl);
    ASSERT_TRUE(cur.start());
    ASSERT_TRUE(cur.next());
    ASSERT_TRUE(cur.next());
    ASSERT_TRUE(cur.next_head(16));
    auto after = cur.next();
    ASSERT_FALSE(after);
    EXPECT_EQ(after.error().code, ErrorCode::kTruncated);
    EXPECT_EQ(after.error().record_index, 2u);
    EXPECT_NE(after.error().message.find("record #2 TOOLSTACK at 0x48 (its unread part)"), std::string::npos)
        << after.error().message;
  }
}

TEST(StreamCursor, PageDataDecodesFromAHeadThatCoversItsEntries) {
  BufferSink sink;
  RecordWriter w(sink);
  ASSERT_TRUE(w.write_image_header(3));
  ASSERT_TRUE(w.write_domain_header(xc::kDomainX86Hvm, 4, 17));
  const Buffer p0 = pattern(4096, 1), p1 = pattern(4096, 2);
  const std::vector<std::uint64_t> entries = {5, 6, (std::uint64_t{0xF} << 60) | 7};
  const std::vector<Bytes> pages = {view(p0), view(p1)};
  ASSERT_TRUE(w.append_page_data(entries, pages));
  ASSERT_TRUE(w.append(0, {}));
  const Buffer s = sink.data();
  MemorySource src(view(s));
  StreamCursor cur(src, PayloadKind::kLibxc);
  ASSERT_TRUE(cur.start());
  auto short_head = cur.next_head(16);
  ASSERT_TRUE(short_head);
  auto cut = decode_page_data(*short_head);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code, ErrorCode::kUsage);
  auto head = cur.extend(8 + 24 + 100);
  ASSERT_TRUE(head);
  auto v = decode_page_data(*head);
  ASSERT_TRUE(v) << v.error().describe();
  EXPECT_EQ(v->count, 3u);
  EXPECT_EQ(v->data_pages, 2u);
  EXPECT_EQ(v->pfn(2), 7u);
  EXPECT_EQ(v->pages.size(), 100u) << "only the pages pulled so far";
  auto whole = cur.extend(RecordReader::kWholeBody);
  ASSERT_TRUE(whole);
  v = decode_page_data(*whole);
  ASSERT_TRUE(v);
  EXPECT_EQ(hexdump(v->pages.subspan(4096, 4096)), hexdump(view(p1)));
}

TEST(StreamCursor, UnknownAndOptionalTypesAreFramedNotJudged) {
  const Buffer s = Builder().libxl().rec(0x80000006u, 3).rec(0x77, 1).rec(1).libxc()
                       .rec(0x80000013u, 9).rec(0x13, 0).rec(0).rec(0).done();
  const Walk w = walk_memory(s);
  ASSERT_TRUE(w.ok) << w.error_text();
  const std::vector<Step> want = {{L, 0x80000006u}, {L, 0x77}, {L, 1}, {X, 0x80000013u},
                                  {X, 0x13},        {X, 0},    {L, 0}};
  EXPECT_EQ(steps(w), want);
  EXPECT_EQ(record_display_name(L, 0x80000006u), "OPTIONAL_0x80000006");
  EXPECT_EQ(record_display_name(X, 0x13), "UNKNOWN_0x13");
}

}  // namespace
}  // namespace xenstream
