// The legacy stream reader (tools/convert/legacy_reader.h): the events of
// each layout, checkpoints, and exact messages and offsets for bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/convert/legacy_builder.h"
#include "tests/convert/test_support.h"
#include "tools/convert/legacy_format.h"
#include "tools/convert/legacy_reader.h"

namespace xenstream::convert::testing {
namespace {

using K = LegacyEventKind;

struct Walk {
  std::vector<K> kinds;
  std::vector<LegacyEvent> events;  // views are not kept valid
  std::optional<Error> error;
};

Walk walk(const Buffer& in, LegacyLayout layout, LegacyReaderOptions opt = {}) {
  MemorySource src(view(in));
  LegacyReader r(src, layout, opt);
  Walk w;
  for (int i = 0; i < 100000; ++i) {
    auto ev = r.next();
    if (!ev) {
      w.error = ev.error();
      return w;
    }
    w.kinds.push_back(ev->kind);
    w.events.push_back(*ev);
    if (ev->kind == K::kStreamEnd) break;
  }
  return w;
}

Error walk_error(const Buffer& in, LegacyLayout layout) {
  Walk w = walk(in, layout);
  EXPECT_TRUE(w.error.has_value());
  return w.error.value_or(Error{});
}

const LegacyLayout kHvm64{8, GuestType::kHvm};
const LegacyLayout kPv64{8, GuestType::kPv};
const LegacyLayout kPv32{4, GuestType::kPv};

TEST(LegacyReader, HvmEvents) {
  ScenarioOptions o;
  o.pages = 20;
  o.batch = 16;
  o.hvm_chunks = false;
  const Scenario s = build_scenario(o);
  const Walk w = walk(s.bytes, kHvm64);
  ASSERT_FALSE(w.error) << w.error->describe();
  EXPECT_EQ(w.kinds, (std::vector<K>{K::kP2mSize, K::kTscInfo, K::kPageBatch, K::kPageBatch, K::kVcpuInfo,
                                     K::kMarker, K::kBodyEnd, K::kHvmMagicPfns, K::kHvmContext, K::kQemuBegin,
                                     K::kQemuData, K::kCheckpointEnd, K::kStreamEnd}));
  EXPECT_EQ(w.events[0].value, 36u);
  EXPECT_EQ(w.events[2].count, 16u);
  EXPECT_EQ(w.events[2].value, 16u);  // data pages
  EXPECT_EQ(w.events[3].count, 4u);
  EXPECT_EQ(w.events[5].chunk, -9);
  EXPECT_EQ(w.events[9].qemu, QemuKind::kLibxl);
  EXPECT_EQ(w.events[9].length, std::optional<std::uint64_t>(3000));
}

TEST(LegacyReader, PvEventsWithExtendedContexts) {
  ScenarioOptions o;
  o.guest = GuestType::kPv;
  o.width = 4;
  o.guest_width = 4;
  o.pages = 10;
  o.xsave_size = 64;
  o.vcpus = {0, 2};
  o.qemu = QemuSig::kNone;
  o.tsc = false;
  const Scenario s = build_scenario(o);
  MemorySource src(view(s.bytes));
  LegacyReader r(src, kPv32);
  std::vector<K> kinds;
  for (;;) {
    auto ev = r.next();
    ASSERT_TRUE(ev) << ev.error().describe();
    kinds.push_back(ev->kind);
    if (ev->kind == K::kExtInfoBlock && ev->block_id() == "xcnt") {
      EXPECT_EQ(r.xsave_length(), 80u);
    }
    if (ev->kind == K::kVcpuXsave) {
      EXPECT_EQ(ev->value, 7u);  // the xfeature mask
      EXPECT_EQ(ev->data.size(), 64u);
    }
    if (ev->kind == K::kStreamEnd) break;
  }
  EXPECT_EQ(r.guest_width(), 4u);
  EXPECT_EQ(r.pt_levels(), 3u);
  EXPECT_EQ(r.online_vcpus(), (std::vector<std::uint32_t>{0, 2}));
  EXPECT_EQ(kinds, (std::vector<K>{K::kP2mSize, K::kExtInfoBlock, K::kExtInfoBlock, K::kExtInfoBlock, K::kP2mFrames,
                                   K::kPageBatch, K::kVcpuInfo, K::kMarker, K::kBodyEnd, K::kUnmappedPfns,
                                   K::kVcpuBasic, K::kVcpuExtended, K::kVcpuXsave, K::kVcpuBasic,
                                   K::kVcpuExtended, K::kVcpuXsave, K::kSharedInfo, K::kCheckpointEnd,
                                   K::kStreamEnd}));
}

TEST(LegacyReader, CheckpointsAndCompressedBodies) {
  ScenarioOptions o;
  o.pages = 8;
  o.batch = 8;
  o.checkpoints = 3;
  o.dirty = 2;
  o.compress = true;
  o.last_checkpoint = false;
  o.hvm_chunks = false;
  const Scenario s = build_scenario(o);
  MemorySource src(view(s.bytes));
  LegacyReader r(src, kHvm64);
  std::vector<std::uint64_t> ends;
  std::uint64_t compressed_batches = 0, compressed_pieces = 0;
  for (;;) {
    auto ev = r.next();
    ASSERT_TRUE(ev) << ev.error().describe();
    if (ev->kind == K::kCheckpointEnd) ends.push_back(ev->value);
    if (ev->kind == K::kPageBatch && r.compressed_body()) {
      ++compressed_batches;
      EXPECT_TRUE(ev->data.empty());
    }
    if (ev->kind == K::kCompressedData) ++compressed_pieces;
    if (ev->kind == K::kStreamEnd) break;
  }
  EXPECT_EQ(ends, (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(compressed_batches, 2u);
  EXPECT_GE(compressed_pieces, 2u);
}

TEST(LegacyReader, TrailingDataAfterLastCheckpoint) {
  ScenarioOptions o;
  o.pages = 4;
  Scenario s = build_scenario(o);
  const std::size_t end = s.bytes.size();
  s.bytes.resize(end + 5, std::byte{0x42});
  const Walk w = walk(s.bytes, kHvm64);
  ASSERT_FALSE(w.error);
  ASSERT_GE(w.kinds.size(), 2u);
  EXPECT_EQ(w.kinds[w.kinds.size() - 2], K::kTrailingData);
  EXPECT_EQ(w.events[w.events.size() - 2].offset, end);
  EXPECT_EQ(w.events[w.events.size() - 2].value, 5u);  // a memory source knows its size
}

TEST(LegacyReader, SingleCheckpointEndsAfterTheFirstWithoutProbing) {
  // A Remus stream (no LAST_CHECKPOINT): with single_checkpoint the reader
  // ends after checkpoint 1, as Xen's convert-legacy-stream reads one image,
  // and does not look at what follows (a waiting peer's next message).
  ScenarioOptions o;
  o.pages = 8;
  o.batch = 8;
  o.checkpoints = 3;
  o.dirty = 2;
  o.last_checkpoint = false;
  const Scenario s = build_scenario(o);
  MemorySource src(view(s.bytes));
  LegacyReader r(src, kHvm64, LegacyReaderOptions{.input_continues = true, .single_checkpoint = true});
  std::vector<std::uint64_t> ends;
  std::uint64_t end_offset = 0;
  for (;;) {
    auto ev = r.next();
    ASSERT_TRUE(ev) << ev.error().describe();
    if (ev->kind == K::kCheckpointEnd) {
      ends.push_back(ev->value);
      end_offset = src.position();
    }
    ASSERT_NE(ev->kind, K::kTrailingData);
    if (ev->kind == K::kStreamEnd) break;
  }
  EXPECT_EQ(ends, (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(src.position(), end_offset);  // nothing after checkpoint 1 was read
  EXPECT_LT(src.position(), s.bytes.size());
  EXPECT_FALSE(r.last_checkpoint_seen());
  // Without the option the same stream has three checkpoints.
  const Walk w = walk(s.bytes, kHvm64);
  ASSERT_FALSE(w.error);
  EXPECT_EQ(std::count(w.kinds.begin(), w.kinds.end(), K::kCheckpointEnd), 3);
}

TEST(LegacyReader, ExtendedInfoErrors) {
  {
    LegacyBuilder b(8);
    b.p2m_size(16).ext_info({{"vcpu", std::vector<std::byte>(100), {}}});
    const Error e = walk_error(b.bytes(), kPv64);
    EXPECT_EQ(e.code, ErrorCode::kMalformed);
    EXPECT_EQ(e.offset, 0x14u);
    EXPECT_EQ(e.message, "vcpu block at 0x14 holds 0x64 octets: expected 0xaf0 (32-bit guest) or 0x1430 (64-bit guest)");
  }
  {
    LegacyBuilder b(8);
    b.p2m_size(16).ext_info({{"extv", {}, {}}});
    const Error e = walk_error(b.bytes(), kPv64);
    EXPECT_EQ(e.message, "PV extended info at 0x14 has no vcpu block: the guest's width is unknown");
  }
  {
    LegacyBuilder b(4);
    b.p2m_size(16).ext_info({{"extv", {}, {}}, {"xcnt", std::vector<std::byte>(2), {}}});
    const Error e = walk_error(b.bytes(), kPv32);
    EXPECT_EQ(e.offset, 0x14u);
    EXPECT_EQ(e.message, "xcnt block at 0x14 holds 2 octets: expected at least 4");
  }
  {
    LegacyBuilder b(4);
    b.p2m_size(16).ext_info({{"vcpu", std::vector<std::byte>(0xAF0), {}}}, 0xAF0);
    const Error e = walk_error(b.bytes(), kPv32);
    EXPECT_EQ(e.message, "PV extended-info blocks run 8 octets past the declared total of 0xaf0 (blocks at [0xc, 0xb04))");
  }
  {
    LegacyBuilder b(8);
    b.p2m_size(16).ulong(5).ulong(6);  // a p2m frame list without extended info
    const Error e = walk_error(b.bytes(), kPv64);
    EXPECT_EQ(e.code, ErrorCode::kUnsupported);
    EXPECT_EQ(e.message, "no PV extended-info marker at 0x8 (found 0x5): PV images saved by Xen before 3.2 are not supported");
  }
  {
    LegacyBuilder b(8);
    b.p2m_size(0x10000000);
    const Error e = walk_error(b.bytes(), kPv64);
    EXPECT_EQ(e.message, "p2m size 0x10000000 at 0x0 exceeds 0xfffffff, the largest a legacy saver writes");
  }
}

TEST(LegacyReader, UnknownExtendedBlockIsReported) {
  LegacyBuilder b(8);
  b.p2m_size(1).ext_info({{"vcpu", std::vector<std::byte>(0x1430), {}}, {"abcd", std::vector<std::byte>(3), {}}});
  b.ulong(0).end_body();
  const Walk w = walk(b.bytes(), kPv64);
  ASSERT_GE(w.events.size(), 3u);
  EXPECT_EQ(w.events[2].kind, K::kExtInfoBlock);
  EXPECT_EQ(w.events[2].block_id(), "abcd");
  EXPECT_EQ(w.events[2].value, 3u);
}

TEST(LegacyReader, BodyErrors) {
  {
    LegacyBuilder b(8);
    b.p2m_size(16).i32(1025);
    const Error e = walk_error(b.bytes(), kHvm64);
    EXPECT_EQ(e.offset, 8u);
    EXPECT_EQ(e.message, "page batch at 0x8 has 1025 entries, more than 1024 (MAX_BATCH_SIZE)");
  }
  {
    LegacyBuilder b(8);
    b.p2m_size(16).i32(-21);
    const Error e = walk_error(b.bytes(), kHvm64);
    EXPECT_EQ(e.message, "unknown chunk id -21 at 0x8");
  }
  {
    LegacyBuilder b(8);
    b.p2m_size(16).vcpu_info(-1, {});
    const Error e = walk_error(b.bytes(), kHvm64);
    EXPECT_EQ(e.message, "VCPU_INFO at 0x8: max vcpu id -1 is negative");
  }
  {
    LegacyBuilder b(8);
    b.p2m_size(16).vcpu_info(4096, {});
    const Error e = walk_error(b.bytes(), kHvm64);
    EXPECT_EQ(e.message, "VCPU_INFO at 0x8: max vcpu id 4096 exceeds 4095");
  }
  {
    // A batch whose page data is cut short: a truncation with its range.
    LegacyBuilder b(8);
    b.p2m_size(16).i32(2).ulong(0).ulong(1).page(make_page(0));
    const Error e = walk_error(b.bytes(), kHvm64);
    EXPECT_EQ(e.code, ErrorCode::kTruncated);
    EXPECT_EQ(e.offset, 0xcu);
    EXPECT_EQ(e.message, "unexpected end of data while reading page batch data [0xc, 0x201c)");
  }
}

TEST(LegacyReader, TailErrors) {
  {
    LegacyBuilder b(8);
    b.p2m_size(1).ext_info({{"vcpu", std::vector<std::byte>(0x1430), {}},
                            {"xcnt", std::vector<std::byte>{std::byte{80}, {}, {}, {}}, {}}});
    b.ulong(0).end_body().unmapped({}).raw(std::vector<std::byte>(0x1430)).xsave(3, std::vector<std::byte>(32));
    const Error e = walk_error(b.bytes(), kPv64);
    const std::uint64_t at = 8 + 8 + 4 + 8 + 0x1430 + 8 + 4 + 8 + 4 + 4 + 0x1430;
    EXPECT_EQ(e.offset, at + 8);
    EXPECT_EQ(e.message, "vcpu 0 xsave state at " + hex(at) +
                             " has size 0x20 but the xcnt block says every vcpu has 0x50 octets (16 + size)");
  }
  {
    LegacyBuilder b(8);
    b.p2m_size(16).end_body().hvm_tail(1, 2, 3, std::vector<std::byte>(8)).text("NotAQemuRecord\n\x01xxxxxx");
    const Error e = walk_error(b.bytes(), kHvm64);
    EXPECT_EQ(e.offset, 0x30u);
    EXPECT_EQ(e.message,
              "unknown qemu record signature 'NotAQemuRecord\\n\\x01xxxxx' at 0x30 (expected "
              "DeviceModelRecord0002, RemusDeviceModelState or QemuDeviceModelRecord)");
  }
  {
    // Without qemu_optional, end of input where the signature should be
    // is a truncation; with it, the stream simply ends there.
    LegacyBuilder b(8);
    b.p2m_size(16).end_body().hvm_tail(1, 2, 3, std::vector<std::byte>(8));
    EXPECT_EQ(walk_error(b.bytes(), kHvm64).code, ErrorCode::kTruncated);
    LegacyReaderOptions opt;
    opt.qemu_optional = true;
    const Walk w = walk(b.bytes(), kHvm64, opt);
    ASSERT_FALSE(w.error);
    EXPECT_EQ(w.kinds.back(), K::kStreamEnd);
  }
}

TEST(LegacyReader, TmemChunksAreWalked) {
  LegacyBuilder b(8);
  b.p2m_size(16).i32(-5);
  b.u32(1).u32(2).u32(0xFFFFFFFF).u32(0).u32(1).u32(0).u32(0xFFFFFFFF);
  // Pool 0: persistent, 2 pages of 4 KiB announced, one sent, then the end marker.
  b.u32(0).u32(1).u32(2).u64(11).u64(12);
  b.u64(1).u64(2).u64(3).u32(9).page(make_page(3));
  b.u64(~0ull).u64(~0ull).u64(~0ull);
  // Pool 1: ephemeral, no pages.
  b.u32(1).u32(0).u32(0).u64(0).u64(0);
  b.u32(0xFFFFFFFF);
  b.i32(-6).u32(0).u64(1).u64(2).u64(3).u32(4).u32(0xFFFFFFFF);
  b.end_body();
  const Walk w = walk(b.bytes(), kHvm64);
  ASSERT_GE(w.events.size(), 3u);
  EXPECT_EQ(w.events[1].kind, K::kTmem);
  EXPECT_EQ(w.events[1].count, 2u);  // pools
  EXPECT_EQ(w.events[1].value, 1u);  // pages
  EXPECT_EQ(w.events[2].kind, K::kTmem);
  EXPECT_EQ(w.events[2].chunk, -6);
  EXPECT_EQ(w.events[2].count, 1u);
  EXPECT_EQ(w.kinds[3], K::kBodyEnd);
}

// Whatever pieces the input arrives in, the reader sees the same events.
TEST(LegacyReader, SplitPointsDoNotMatter) {
  ScenarioOptions o;
  o.guest = GuestType::kPv;
  o.qemu = QemuSig::kNone;
  o.pages = 40;
  o.batch = 7;
  o.all_page_types = true;
  o.xsave_size = 100;
  o.checkpoints = 3;
  o.compress = true;
  o.split_encodings = true;
  o.last_checkpoint = false;
  const Scenario s = build_scenario(o);
  auto digest = [&](Source& src) {
    LegacyReader r(src, kPv64, LegacyReaderOptions{.piece = 1000});
    std::vector<std::string> seen;
    for (;;) {
      auto ev = r.next();
      if (!ev) {
        seen.push_back("error " + ev.error().describe());
        break;
      }
      std::string line = std::string(event_name(ev->kind)) + " @" + hex(ev->offset) + " " + hex(ev->value) +
                         " n" + std::to_string(ev->count) + " d" + std::to_string(ev->data.size());
      std::uint64_t sum = 0;
      for (std::byte x : ev->data) sum = sum * 31 + static_cast<unsigned>(x);
      seen.push_back(line + " " + hex(sum));
      if (ev->kind == K::kStreamEnd) break;
    }
    return seen;
  };
  MemorySource whole(view(s.bytes));
  const auto expected = digest(whole);
  EXPECT_EQ(expected.back().rfind("end of stream", 0), 0u);
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    TrickleSource trickle(view(s.bytes), seed, seed * 10);
    EXPECT_EQ(digest(trickle), expected) << "seed " << seed;
  }
}

}  // namespace
}  // namespace xenstream::convert::testing
