// The synthetic stream generator: every option combination yields a stream
// that libstream walks cleanly, in the saver's record order, with the page
// contents, generations and records that synth.h promises.
#include "tools/gen/synth.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include <xenstream/codecs/open_input.h>
#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/records.h>
#include <xenstream/libstream/stream_cursor.h>

namespace xenstream::gen {
namespace {

namespace fs = std::filesystem;
using Buffer = std::vector<std::byte>;
using Step = std::pair<Layer, std::uint32_t>;
constexpr Layer X = Layer::kLibxc;
constexpr Layer L = Layer::kLibxl;

// Counts and drops what is written.
class CountingSink : public Sink {
 protected:
  Expected<void> do_write(std::span<const Bytes>, std::size_t) override { return {}; }
};

Buffer make(const SynthOptions& o, SynthSummary* summary = nullptr) {
  BufferSink sink;
  auto s = write_stream(sink, o);
  EXPECT_TRUE(s) << s.error().describe();
  if (s && summary) *summary = *s;
  return sink.data();
}

// Walks a stream, calling `visit` for each record; returns the cursor's
// final error (none for a clean walk with nothing after END).
struct Result {
  ContainerInfo container;
  std::vector<Step> steps;
  std::optional<Error> error;
  std::uint64_t checkpoints = 0;
};

template <typename Visit>
Result walk(Source& src, Visit&& visit) {
  Result r;
  auto c = read_container(src);
  if (!c) {
    r.error = c.error();
    return r;
  }
  r.container = *c;
  StreamCursor cur(src, c->payload);
  if (auto s = cur.start(); !s) {
    r.error = s.error();
    return r;
  }
  while (!cur.done()) {
    auto rec = cur.next();
    if (!rec) {
      r.error = rec.error();
      r.checkpoints = cur.checkpoints();
      return r;
    }
    r.steps.emplace_back(rec->layer, rec->type);
    visit(*rec, cur);
  }
  r.checkpoints = cur.checkpoints();
  if (auto f = cur.finish(); !f) r.error = f.error();
  return r;
}

Result walk(const Buffer& b) {
  MemorySource src(Bytes(b.data(), b.size()));
  return walk(src, [](const RecordView&, const StreamCursor&) {});
}

std::vector<SynthOptions> all_shapes() {
  std::vector<SynthOptions> v;
  for (GuestType g : {GuestType::kPv, GuestType::kHvm})
    for (OuterLayer l : {OuterLayer::kLibxl, OuterLayer::kLibxc})
      for (ContainerKind c : {ContainerKind::kNone, ContainerKind::kXl, ContainerKind::kLibvirt})
        for (std::uint32_t ver : {2u, 3u})
          for (std::uint32_t cp : {0u, 1u, 3u}) {
            SynthOptions o;
            o.guest = g;
            o.layer = l;
            o.container = c;
            o.version = ver;
            o.checkpoints = cp;
            o.pages = 37;
            o.batch = 8;
            o.dirty_pages = 5;
            o.vcpus = 2;
            const bool hvm_libxl = g == GuestType::kHvm && l == OuterLayer::kLibxl;
            o.emulator_context = hvm_libxl;
            o.xenstore_data = hvm_libxl && ver == 3;
            o.colo = hvm_libxl && cp > 1;
            o.optional_record = ver == 2;
            v.push_back(o);
          }
  return v;
}

std::string describe(const SynthOptions& o) {
  return std::string(guest_type_name(o.guest)) + "/" + std::string(outer_layer_name(o.layer)) + "/" +
         std::string(container_name(o.container)) + "/v" + std::to_string(o.version) + "/cp" +
         std::to_string(o.checkpoints);
}

TEST(Synth, EveryShapeWalksCleanly) {
  for (const SynthOptions& o : all_shapes()) {
    SCOPED_TRACE(describe(o));
    SynthSummary sum;
    const Buffer s = make(o, &sum);
    const Result r = walk(s);
    EXPECT_EQ(sum.bytes, s.size());
    EXPECT_EQ(sum.records, r.steps.size());
    EXPECT_EQ(sum.payload_offset, r.container.payload_offset);
    EXPECT_EQ(sum.checkpoints, o.checkpoints);
    EXPECT_EQ(r.checkpoints, o.checkpoints);
    EXPECT_EQ(r.container.payload,
              o.layer == OuterLayer::kLibxl ? PayloadKind::kLibxl : PayloadKind::kLibxc);
    EXPECT_EQ(r.container.kind, o.container == ContainerKind::kXl        ? ContainerKind::kXl
                                : o.container == ContainerKind::kLibvirt ? ContainerKind::kLibvirt
                                                                         : ContainerKind::kNone);
    if (o.checkpoints == 0) {
      EXPECT_FALSE(r.error) << r.error->describe();
    } else {
      // Checkpointed streams have no END: the walk stops at the last byte.
      ASSERT_TRUE(r.error);
      EXPECT_EQ(r.error->message, "the stream ends at " + hex(s.size()) + " without an END record");
    }
    const std::uint64_t data_pages = std::count(r.steps.begin(), r.steps.end(), Step{X, 1});
    EXPECT_EQ(sum.page_data_records, data_pages);
    const std::uint64_t expected_pages =
        o.pages + (o.checkpoints > 1 ? (o.checkpoints - 1) * std::uint64_t{o.dirty_pages} : 0);
    EXPECT_EQ(sum.pages_written, expected_pages);
  }
}

TEST(Synth, HvmLibxlRecordOrder) {
  SynthOptions o;
  o.pages = 2049;
  o.emulator_context = true;
  o.xenstore_data = true;
  const Result r = walk(make(o));
  ASSERT_FALSE(r.error) << r.error->describe();
  const std::vector<Step> want = {{L, 1},   {X, 0x11}, {X, 0x12}, {X, 0x10}, {X, 1},  {X, 1}, {X, 1},
                                  {X, 8},   {X, 9},    {X, 0xA},  {X, 0},    {L, 2},  {L, 3}, {L, 0}};
  EXPECT_EQ(r.steps, want);
}

TEST(Synth, PvLibxcV2RecordOrder) {
  SynthOptions o;
  o.guest = GuestType::kPv;
  o.layer = OuterLayer::kLibxc;
  o.version = 2;
  o.vcpus = 2;
  o.pages = 100;
  o.batch = 64;
  o.optional_record = true;
  const Result r = walk(make(o));
  ASSERT_FALSE(r.error) << r.error->describe();
  const std::vector<Step> want = {{X, 2}, {X, 3}, {X, 0x80000013u}, {X, 1}, {X, 1}, {X, 8}, {X, 7},
                                  {X, 4}, {X, 5}, {X, 6},           {X, 0xC},
                                  {X, 4}, {X, 5}, {X, 6},           {X, 0xC}, {X, 0}};
  EXPECT_EQ(r.steps, want);
}

TEST(Synth, RemusAndColoRecordOrder) {
  SynthOptions o;
  o.pages = 10;
  o.checkpoints = 3;
  o.dirty_pages = 3;
  o.emulator_context = true;
  o.colo = true;
  const Result r = walk(make(o));
  const std::vector<Step> eoc = {{X, 8}, {X, 9}, {X, 0xA}, {X, 0xE}, {L, 3}, {L, 4}};
  std::vector<Step> want = {{L, 1}, {X, 0x11}, {X, 0x12}, {X, 0x10}, {X, 1}};
  want.insert(want.end(), eoc.begin(), eoc.end());
  for (int k = 1; k < 3; ++k) {
    want.push_back({L, 5});
    want.push_back({X, 1});
    want.insert(want.end(), eoc.begin(), eoc.end());
  }
  EXPECT_EQ(r.steps, want);
  EXPECT_EQ(r.checkpoints, 3u);
}

TEST(Synth, PageContentsMatchTheDescriptionInEveryCheckpoint) {
  for (GuestType g : {GuestType::kHvm, GuestType::kPv}) {
    SynthOptions o;
    o.guest = g;
    o.pages = 300;
    o.batch = 7;
    o.checkpoints = 4;
    o.dirty_pages = 40;
    o.seed = 99;
    const Buffer s = make(o);
    std::map<std::uint64_t, std::uint32_t> memory;  // pfn -> generation seen last
    std::uint32_t checkpoint = 0;
    std::uint64_t pages_seen = 0;
    MemorySource src(Bytes(s.data(), s.size()));
    walk(src, [&](const RecordView& rec, const StreamCursor&) {
      if (rec.layer != X) return;
      if (rec.type == 0x0E) {
        // Checkpoint `checkpoint` is complete: memory must be as described.
        const auto gens = page_generations(o, checkpoint);
        ASSERT_EQ(memory.size(), o.pages);
        for (const auto& [pfn, gen] : memory) ASSERT_EQ(gen, gens[pfn]) << pfn;
        ++checkpoint;
        return;
      }
      if (rec.type != 0x01) return;
      auto pd = decode_page_data(rec);
      ASSERT_TRUE(pd) << pd.error().describe();
      const auto dirty = dirty_pfns(o, checkpoint);
      for (std::uint32_t i = 0; i < pd->count; ++i) {
        const std::uint64_t pfn = pd->pfn(i);
        ASSERT_LT(pfn, o.pages);
        if (checkpoint > 0) {
          ASSERT_TRUE(std::binary_search(dirty.begin(), dirty.end(), pfn));
        }
        EXPECT_EQ(pd->entry(i), expected_entry(o, pfn));
        const auto want = expected_page(o, pfn, checkpoint);
        ASSERT_TRUE(std::equal(want.begin(), want.end(), pd->pages.begin() + 4096 * std::size_t{i}))
            << "pfn " << pfn << " generation " << checkpoint;
        memory[pfn] = checkpoint;
        ++pages_seen;
      }
    });
    EXPECT_EQ(checkpoint, 4u);
    EXPECT_EQ(pages_seen, 300u + 3 * 40);
  }
}

TEST(Synth, PageContentsLayout) {
  const auto p = page_contents(0x1122334455667788ull, 0xABCDE, 7);
  const Fields f(Bytes(p.data(), p.size()), ByteOrder::kLittle, 0);
  EXPECT_EQ(f.u64(0), 0xABCDEu);
  EXPECT_EQ(f.u32(8), 7u);
  EXPECT_EQ(f.u32(12), 0x55667788u);
  EXPECT_NE(page_contents(1, 5, 0), page_contents(1, 5, 1));
  EXPECT_NE(page_contents(1, 5, 0), page_contents(2, 5, 0));
  EXPECT_NE(page_contents(1, 5, 0), page_contents(1, 6, 0));
  EXPECT_EQ(page_contents(1, 5, 0), page_contents(1, 5, 0));
  // The random part is not constant.
  EXPECT_NE(f.u64(16), f.u64(24));
}

TEST(Synth, DirtyPfnsAreDistinctSortedAndReproducible) {
  SynthOptions o;
  o.pages = 1000;
  o.checkpoints = 5;
  o.dirty_pages = 200;
  for (std::uint32_t k = 1; k < 5; ++k) {
    const auto d = dirty_pfns(o, k);
    ASSERT_EQ(d.size(), 200u);
    EXPECT_TRUE(std::is_sorted(d.begin(), d.end()));
    EXPECT_EQ(std::adjacent_find(d.begin(), d.end()), d.end());
    EXPECT_LT(d.back(), 1000u);
    EXPECT_EQ(d, dirty_pfns(o, k));
  }
  EXPECT_NE(dirty_pfns(o, 1), dirty_pfns(o, 2));
  EXPECT_TRUE(dirty_pfns(o, 0).empty());
  EXPECT_TRUE(dirty_pfns(o, 5).empty());
  o.dirty_pages = 5000;  // more than the guest: every page
  EXPECT_EQ(dirty_pfns(o, 1).size(), 1000u);
  const auto gens = page_generations(o, 4);
  EXPECT_TRUE(std::all_of(gens.begin(), gens.end(), [](std::uint32_t g) { return g == 4; }));
}

TEST(Synth, HvmRecordsHoldTheDescribedValues) {
  SynthOptions o;
  o.pages = 64;
  o.vcpus = 3;
  o.emulator_context = true;
  o.xenstore_data = true;
  const Buffer s = make(o);
  MemorySource src(Bytes(s.data(), s.size()));
  int seen = 0;
  walk(src, [&](const RecordView& rec, const StreamCursor&) {
    if (rec.layer == X && rec.type == 0x08) {
      auto t = decode_tsc_info(rec);
      ASSERT_TRUE(t);
      EXPECT_EQ(t->mode, SynthConstants::kTscMode);
      EXPECT_EQ(t->khz, SynthConstants::kTscKhz);
      EXPECT_EQ(t->nsec, SynthConstants::kTscNsec);
      EXPECT_EQ(t->incarnation, SynthConstants::kTscIncarnation);
      ++seen;
    } else if (rec.layer == X && rec.type == 0x09) {
      const auto blob = hvm_context_blob(3);
      ASSERT_EQ(rec.length, blob.size());
      EXPECT_TRUE(std::equal(blob.begin(), blob.end(), rec.body.begin()));
      // A well-formed descriptor chain: HEADER first, END last, nothing after.
      const Fields f(rec.body, ByteOrder::kLittle, 0);
      std::size_t at = 0;
      std::vector<std::pair<std::uint16_t, std::uint16_t>> codes;
      for (;;) {
        ASSERT_TRUE(f.fits(at, 8));
        const std::uint16_t code = f.u16(at), inst = f.u16(at + 2);
        const std::uint32_t len = f.u32(at + 4);
        ASSERT_TRUE(f.fits(at + 8, len));
        codes.emplace_back(code, inst);
        if (code == 1) {
          EXPECT_EQ(len, 24u);
          EXPECT_EQ(f.u32(at + 8), SynthConstants::kHvmMagic);
          EXPECT_EQ(f.u32(at + 12), 1u);
        }
        if (code == 2) {
          EXPECT_EQ(len, SynthConstants::kCpuRecordSize);
        }
        at += 8 + len;
        if (code == 0) {
          EXPECT_EQ(len, 0u);
          break;
        }
      }
      EXPECT_EQ(at, rec.length);
      ASSERT_GE(codes.size(), 5u);
      EXPECT_EQ(codes.front(), (std::pair<std::uint16_t, std::uint16_t>{1, 0}));
      EXPECT_EQ(std::count_if(codes.begin(), codes.end(), [](auto c) { return c.first == 2; }), 3);
      EXPECT_TRUE(std::is_sorted(codes.begin(), codes.end() - 1));
      ++seen;
    } else if (rec.layer == X && rec.type == 0x0A) {
      auto hp = decode_hvm_params(rec);
      ASSERT_TRUE(hp);
      const auto want = hvm_params(64);
      ASSERT_EQ(hp->count, want.size());
      for (std::uint32_t i = 0; i < hp->count; ++i) {
        EXPECT_EQ(hp->index(i), want[i].first);
        EXPECT_EQ(hp->value(i), want[i].second);
        EXPECT_LT(hp->value(i), 64u);
      }
      ++seen;
    } else if (rec.layer == L && rec.type == 0x02) {
      auto em = decode_emulator(rec);
      ASSERT_TRUE(em);
      EXPECT_EQ(em->id, SynthConstants::kEmulatorId);
      auto kv = decode_xenstore_pairs(rec, *em);
      ASSERT_TRUE(kv);
      EXPECT_EQ(*kv, xenstore_pairs());
      ++seen;
    } else if (rec.layer == L && rec.type == 0x03) {
      auto em = decode_emulator(rec);
      ASSERT_TRUE(em);
      EXPECT_EQ(em->id, SynthConstants::kEmulatorId);
      EXPECT_EQ(em->index, 0u);
      const auto blob = qemu_blob();
      ASSERT_EQ(em->data.size(), blob.size());
      EXPECT_TRUE(std::equal(blob.begin(), blob.end(), em->data.bytes().begin()));
      ++seen;
    }
  });
  EXPECT_EQ(seen, 5);
  EXPECT_EQ(special_pfns(o), (std::vector<std::uint64_t>{60, 61, 62, 63}));
}

TEST(Synth, QemuBlobIsAQevmStream) {
  const auto b = qemu_blob();
  const Fields f(Bytes(b.data(), b.size()), ByteOrder::kBig, 0);
  EXPECT_EQ(f.u32(0), 0x5145564Du);
  EXPECT_EQ(f.u32(4), 3u);
  EXPECT_EQ(f.u8(8), 0x04);  // SECTION_FULL
  EXPECT_EQ(f.u32(9), 0u);   // section id
  EXPECT_EQ(f.u8(13), 5);    // idstr length
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()) + 14, 5), "timer");
  EXPECT_EQ(f.u32(19), 0u);  // instance
  EXPECT_EQ(f.u32(23), 1u);  // version
  EXPECT_EQ(b.size(), 27u + 16 + 1);
  EXPECT_EQ(f.u8(b.size() - 1), 0x00);  // EOF
}

TEST(Synth, PvRecordsHoldTheDescribedValues) {
  SynthOptions o;
  o.guest = GuestType::kPv;
  o.pages = 1500;
  o.vcpus = 2;
  const Buffer s = make(o);
  MemorySource src(Bytes(s.data(), s.size()));
  int vcpus = 0;
  bool p2m = false;
  walk(src, [&](const RecordView& rec, const StreamCursor&) {
    if (rec.layer != X) return;
    if (rec.type == 0x02) {
      auto info = decode_x86_pv_info(rec);
      ASSERT_TRUE(info);
      EXPECT_EQ(info->guest_width, 8);
      EXPECT_EQ(info->pt_levels, 4);
    } else if (rec.type == 0x03) {
      auto f = decode_p2m_frames(rec);
      ASSERT_TRUE(f);
      EXPECT_EQ(f->start_pfn, 0u);
      EXPECT_EQ(f->end_pfn, 1499u);
      ASSERT_EQ(f->count(), 1499u / 512 + 1);
      for (std::size_t i = 0; i < f->count(); ++i) EXPECT_EQ(f->frame(i), i);
      p2m = true;
    } else if (rec.type == 0x04) {
      auto v = decode_vcpu_blob(rec);
      ASSERT_TRUE(v);
      ASSERT_EQ(v->blob.size(), format::libxc::kVcpuBasicSize64);
      EXPECT_EQ(v->vcpu_id, static_cast<std::uint32_t>(vcpus));
      EXPECT_EQ(v->blob.u64(616), vcpus == 0 ? 1498u : 0u);  // start_info pfn in rdx
      EXPECT_EQ(v->blob.u64(4984 + 24), std::uint64_t{1499} << 12);  // cr3
      ++vcpus;
    } else if (rec.type == 0x07) {
      EXPECT_EQ(rec.length, 4096u);
    }
  });
  EXPECT_TRUE(p2m);
  EXPECT_EQ(vcpus, 2);
  EXPECT_EQ(expected_entry(o, 1499), (std::uint64_t{0xC} << 60) | 1499);
  EXPECT_EQ(expected_entry(o, 5), 5u);
  EXPECT_EQ(expected_page(o, 1498, 0), (std::array<std::byte, kPageSize>{}));
  EXPECT_EQ(expected_page(o, 5, 0), page_contents(o.seed, 5, 0));
  EXPECT_EQ(special_pfns(o), (std::vector<std::uint64_t>{1498, 1499}));
}

TEST(Synth, ContainersCarryTheDomainConfig) {
  for (ByteOrder bo : {ByteOrder::kLittle, ByteOrder::kBig}) {
    SynthOptions o;
    o.container = ContainerKind::kXl;
    o.xl_order = bo;
    o.name = "web \"1\"";
    o.vcpus = 4;
    o.pages = 256;
    const Result r = walk(make(o));
    ASSERT_FALSE(r.error);
    ASSERT_TRUE(r.container.xl);
    const XlHeaderInfo& h = *r.container.xl;
    EXPECT_EQ(h.order, bo);
    EXPECT_EQ(h.mandatory_flags, 3u);
    ASSERT_TRUE(h.config_len);
    ASSERT_EQ(h.config.size(), *h.config_len);
    EXPECT_EQ(h.config.back(), '\0');
    const auto j = nlohmann::json::parse(h.config.substr(0, h.config.size() - 1));
    EXPECT_EQ(j["c_info"]["type"], "hvm");
    EXPECT_EQ(j["c_info"]["name"], "web \"1\"");
    EXPECT_EQ(j["b_info"]["max_vcpus"], 4);
    EXPECT_EQ(j["b_info"]["max_memkb"], 1024);
    EXPECT_EQ(h.config.substr(0, h.config.size() - 1), xl_config_json(o));
  }
  SynthOptions o;
  o.container = ContainerKind::kXl;
  o.layer = OuterLayer::kLibxc;
  EXPECT_EQ(walk(make(o)).container.xl->mandatory_flags, 1u) << "no STREAMv2 flag for a libxc payload";

  SynthOptions v;
  v.container = ContainerKind::kLibvirt;
  v.name = "a<b";
  const Result r = walk(make(v));
  ASSERT_TRUE(r.container.libvirt);
  EXPECT_EQ(r.container.libvirt->version, 2u);
  EXPECT_EQ(r.container.libvirt->xml, libvirt_xml(v) + std::string(1, '\0'));
  EXPECT_NE(r.container.libvirt->xml.find("<name>a&lt;b</name>"), std::string::npos);
}

TEST(Synth, BigEndianStreamsWalk) {
  SynthOptions o;
  o.order = ByteOrder::kBig;
  o.pages = 20;
  o.emulator_context = true;
  const Buffer s = make(o);
  const Result r = walk(s);
  ASSERT_FALSE(r.error) << r.error->describe();
  MemorySource src(Bytes(s.data(), s.size()));
  walk(src, [&](const RecordView& rec, const StreamCursor& cur) {
    EXPECT_EQ(rec.order, ByteOrder::kBig);
    if (rec.layer == X && rec.type == 1) {
      auto pd = decode_page_data(rec);
      ASSERT_TRUE(pd);
      EXPECT_EQ(pd->pfn(3), 3u);
    }
    if (rec.layer == X) {
      EXPECT_EQ(cur.libxc_image()->options, 1);
    }
  });
}

TEST(Synth, ValidateRefusesImpossibleOptions) {
  auto refuse = [](SynthOptions o, const std::string& message) {
    auto v = validate(o);
    ASSERT_FALSE(v) << message;
    EXPECT_EQ(v.error().code, ErrorCode::kUsage);
    EXPECT_EQ(v.error().message, message);
    BufferSink sink;
    EXPECT_FALSE(write_stream(sink, o));
    EXPECT_TRUE(sink.data().empty());
  };
  SynthOptions o;
  o.pages = 0;
  refuse(o, "--pages: the guest needs at least one page");
  o = {};
  o.guest = GuestType::kPv;
  o.pages = 2;
  refuse(o, "--pages: a PV guest needs at least 3 pages (p2m frame, start_info, L4 table)");
  o = {};
  o.batch = 0;
  refuse(o, "--batch: must be between 1 and 32702");
  o.batch = kMaxBatch + 1;
  refuse(o, "--batch: must be between 1 and 32702");
  o = {};
  o.version = 4;
  refuse(o, "--stream-version: must be 2 or 3");
  o = {};
  o.vcpus = 129;
  refuse(o, "--vcpus: must be between 1 and 128");
  o = {};
  o.guest = GuestType::kPv;
  o.emulator_context = true;
  refuse(o, "emulator records need an HVM guest and the libxl layer");
  o = {};
  o.layer = OuterLayer::kLibxc;
  o.xenstore_data = true;
  refuse(o, "emulator records need an HVM guest and the libxl layer");
  o = {};
  o.colo = true;
  refuse(o, "--colo needs an HVM guest, the libxl layer and at least one checkpoint");
  // The largest batch fits under REC_LENGTH_MAX.
  o = {};
  o.pages = kMaxBatch;
  o.batch = kMaxBatch;
  CountingSink counter;
  auto sum = write_stream(counter, o);
  ASSERT_TRUE(sum) << sum.error().describe();
  EXPECT_EQ(sum->page_data_records, 1u);
  EXPECT_EQ(sum->bytes, counter.position());
}

TEST(Synth, WritesZstdFilesThroughAtomicOutput) {
  std::string t = (fs::temp_directory_path() / "xenstream-synth-XXXXXX").string();
  ASSERT_NE(::mkdtemp(t.data()), nullptr);
  const fs::path dir = t;
  SynthOptions o;
  o.pages = 300;
  o.container = ContainerKind::kXl;
  const fs::path plain = dir / "s.xen", packed = dir / "s.xen.zst";
  auto a = write_stream_to_path(plain.string(), o);
  auto b = write_stream_to_path(packed.string(), o, true, 1);
  ASSERT_TRUE(a) << a.error().describe();
  ASSERT_TRUE(b) << b.error().describe();
  EXPECT_EQ(a->bytes, fs::file_size(plain));
  EXPECT_EQ(b->bytes, a->bytes) << "the summary counts uncompressed bytes";
  auto pin = codecs::open_input(plain.string());
  auto zin = codecs::open_input(packed.string());
  ASSERT_TRUE(pin);
  ASSERT_TRUE(zin);
  EXPECT_FALSE(pin->compressed);
  EXPECT_TRUE(zin->compressed);
  const auto none = [](const RecordView&, const StreamCursor&) {};
  const Result rp = walk(*pin->source, none);
  const Result rz = walk(*zin->source, none);
  EXPECT_FALSE(rp.error);
  EXPECT_FALSE(rz.error);
  EXPECT_EQ(rp.steps, rz.steps);
  // Only the two finished files, no temporaries.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"s.xen", "s.xen.zst"}));
  // A refused option leaves no file either.
  o.vcpus = 0;
  EXPECT_FALSE(write_stream_to_path((dir / "bad").string(), o));
  EXPECT_FALSE(fs::exists(dir / "bad"));
  fs::remove_all(dir);
}

TEST(Synth, ProgressReportsEveryBatch) {
  SynthOptions o;
  o.pages = 100;
  o.batch = 30;
  std::vector<std::uint64_t> seen;
  o.progress = [&](std::uint64_t done, std::uint64_t total) {
    EXPECT_EQ(total, 100u);
    seen.push_back(done);
  };
  make(o);
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{30, 60, 90, 100}));
}

}  // namespace
}  // namespace xenstream::gen
