// Every libxc and libxl record type written by RecordWriter reads back field
// for field through RecordReader / StreamCursor and the records.h decoders,
// in both byte orders.
#include <gtest/gtest.h>

#include <set>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/records.h>
#include "test_util.h"

namespace xenstream {
namespace {

using namespace xenstream::test;
namespace xc = format::libxc;
namespace xl = format::libxl;

std::size_t pad_of(std::size_t n) { return (8 - n % 8) % 8; }

class RoundTrip : public ::testing::TestWithParam<ByteOrder> {
 protected:
  ByteOrder order() const { return GetParam(); }

  // Reads the next record and checks framing shared by every type.
  RecordView next(RecordReader& r, Layer layer, std::uint32_t type, std::size_t length) {
    auto rec = r.next(layer, order());
    EXPECT_TRUE(rec) << rec.error().describe();
    if (!rec) return {};
    EXPECT_EQ(rec->layer, layer);
    EXPECT_EQ(rec->type, type) << record_display_name(layer, rec->type);
    EXPECT_EQ(rec->length, length);
    EXPECT_EQ(rec->body.size(), length);
    EXPECT_EQ(rec->padding.size(), pad_of(length));
    for (std::byte b : rec->padding) EXPECT_EQ(b, std::byte{0});
    EXPECT_EQ(rec->order, order());
    seen_.insert(type);
    return *rec;
  }

  std::set<std::uint32_t> seen_;
};

INSTANTIATE_TEST_SUITE_P(ByteOrders, RoundTrip,
                         ::testing::Values(ByteOrder::kLittle, ByteOrder::kBig),
                         [](const auto& info) {
                           return info.param == ByteOrder::kLittle ? "Little" : "Big";
                         });

TEST_P(RoundTrip, EveryLibxcRecordType) {
  BufferSink sink;
  RecordWriter w(sink, order());
  ASSERT_TRUE(w.write_image_header(3));
  ASSERT_TRUE(w.write_domain_header(xc::kDomainX86Pv, 4, 17));

  // PAGE_DATA with every kind of entry: data-carrying (NOTAB, L1, pinned L4,
  // L2), and no-data (XTAB, BROKEN, XALLOC); pfns up to the 52-bit limit.
  const std::vector<std::uint64_t> entries = {
      0x0, (1ull << 60) | 0x12345, (0xFull << 60) | 7, (0xCull << 60) | 8,
      (0xDull << 60) | 9, (0xEull << 60) | 10, (2ull << 60) | 0xFFFFFFFFFFFFFull};
  std::vector<Buffer> page_bufs;
  for (std::uint8_t i = 0; i < 4; ++i) page_bufs.push_back(pattern(4096, i));
  std::vector<Bytes> pages;
  for (const auto& p : page_bufs) pages.push_back(view(p));
  ASSERT_TRUE(w.append_page_data(entries, pages));
  ASSERT_TRUE(w.append_x86_pv_info(8, 4));
  const std::vector<std::uint64_t> frames = {5, 6, 0xFFFFFFFFFFFFFFFFull};
  ASSERT_TRUE(w.append_p2m_frames(0, 0x3FF, frames));
  const Buffer basic = pattern(xc::kVcpuBasicSize64, 1), ext = pattern(64, 2),
               xsave = pattern(592, 3), msrs = pattern(32, 4);
  ASSERT_TRUE(w.append_vcpu(xc::RecordType::kX86PvVcpuBasic, 3, view(basic)));
  ASSERT_TRUE(w.append_vcpu(xc::RecordType::kX86PvVcpuExtended, 3, view(ext)));
  ASSERT_TRUE(w.append_vcpu(xc::RecordType::kX86PvVcpuXsave, 3, view(xsave)));
  const Buffer shared = pattern(4096, 5);
  ASSERT_TRUE(w.append(xc::RecordType::kSharedInfo, {view(shared)}));
  ASSERT_TRUE(w.append_tsc_info(2, 3'000'000, 0x1122334455667788ull, 9));
  const Buffer ctx = pattern(1234, 6);
  ASSERT_TRUE(w.append(xc::RecordType::kHvmContext, {view(ctx)}));
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> params = {{1, 0x1000}, {17, 0xFEFFF},
                                                                       {38, 0xFFFFFFFFFFFFFFFFull}};
  ASSERT_TRUE(w.append_hvm_params(params));
  const Buffer toolstack = pattern(5, 7);
  ASSERT_TRUE(w.append(xc::RecordType::kToolstack, {view(toolstack)}));
  ASSERT_TRUE(w.append_vcpu(xc::RecordType::kX86PvVcpuMsrs, 0, view(msrs)));
  ASSERT_TRUE(w.append(xc::RecordType::kVerify));
  ASSERT_TRUE(w.append(xc::RecordType::kCheckpoint));
  const Buffer dirty = pattern(24, 8);
  ASSERT_TRUE(w.append(xc::RecordType::kCheckpointDirtyPfnList, {view(dirty)}));
  ASSERT_TRUE(w.append(xc::RecordType::kStaticDataEnd));
  const Buffer cpuid = pattern(48, 9), msr = pattern(32, 10);
  // A body made of several parts is one record.
  ASSERT_TRUE(w.append(xc::RecordType::kX86CpuidPolicy, {view(cpuid).first(20), view(cpuid).subspan(20)}));
  ASSERT_TRUE(w.append(xc::RecordType::kX86MsrPolicy, {view(msr)}));
  auto size = w.finish();
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, sink.data().size());

  MemorySource src(view(sink.data()));
  auto ih = read_image_header(src);
  ASSERT_TRUE(ih);
  EXPECT_EQ(ih->offset, 0u);
  EXPECT_EQ(ih->version, 3u);
  EXPECT_EQ(ih->options, order() == ByteOrder::kBig ? 1 : 0);
  EXPECT_EQ(ih->order(), order());
  EXPECT_EQ(ih->reserved1, 0);
  EXPECT_EQ(ih->reserved2, 0u);
  auto dh = read_domain_header(src, ih->order());
  ASSERT_TRUE(dh);
  EXPECT_EQ(dh->offset, 24u);
  EXPECT_TRUE(dh->is_pv());
  EXPECT_EQ(dh->page_shift, 12);
  EXPECT_EQ(dh->reserved, 0);
  EXPECT_EQ(dh->xen_major, 4u);
  EXPECT_EQ(dh->xen_minor, 17u);

  RecordReader r(src);
  {
    auto rec = next(r, Layer::kLibxc, 0x01, 8 + 8 * entries.size() + 4 * 4096);
    EXPECT_EQ(rec.offset, 40u);
    EXPECT_EQ(rec.index, 0u);
    auto pd = decode_page_data(rec);
    ASSERT_TRUE(pd) << pd.error().describe();
    EXPECT_EQ(pd->count, entries.size());
    EXPECT_EQ(pd->reserved, 0u);
    EXPECT_EQ(pd->data_pages, 4u);
    for (std::uint32_t i = 0; i < entries.size(); ++i) {
      EXPECT_EQ(pd->entry(i), entries[i]) << i;
      EXPECT_EQ(pd->pfn(i), entries[i] & xc::kPfnMask) << i;
      EXPECT_EQ(pd->type(i), entries[i] >> 60) << i;
    }
    ASSERT_EQ(pd->pages.size(), 4u * 4096);
    for (std::size_t i = 0; i < 4; ++i) {
      EXPECT_TRUE(std::equal(page_bufs[i].begin(), page_bufs[i].end(), pd->pages.begin() + 4096 * i)) << i;
    }
  }
  {
    auto info = decode_x86_pv_info(next(r, Layer::kLibxc, 0x02, 8));
    ASSERT_TRUE(info);
    EXPECT_EQ(info->guest_width, 8);
    EXPECT_EQ(info->pt_levels, 4);
    EXPECT_EQ(info->reserved, 0u);
  }
  {
    auto p2m = decode_p2m_frames(next(r, Layer::kLibxc, 0x03, 8 + 8 * frames.size()));
    ASSERT_TRUE(p2m);
    EXPECT_EQ(p2m->start_pfn, 0u);
    EXPECT_EQ(p2m->end_pfn, 0x3FFu);
    ASSERT_EQ(p2m->count(), frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(p2m->frame(i), frames[i]);
  }
  auto check_vcpu = [&](std::uint32_t type, std::uint32_t id, const Buffer& blob) {
    auto v = decode_vcpu_blob(next(r, Layer::kLibxc, type, 8 + blob.size()));
    ASSERT_TRUE(v);
    EXPECT_EQ(v->vcpu_id, id);
    EXPECT_EQ(v->reserved, 0u);
    EXPECT_EQ(hexdump(v->blob.bytes()), hexdump(view(blob)));
  };
  check_vcpu(0x04, 3, basic);
  check_vcpu(0x05, 3, ext);
  check_vcpu(0x06, 3, xsave);
  EXPECT_EQ(hexdump(next(r, Layer::kLibxc, 0x07, 4096).body), hexdump(view(shared)));
  {
    auto tsc = decode_tsc_info(next(r, Layer::kLibxc, 0x08, 24));
    ASSERT_TRUE(tsc);
    EXPECT_EQ(tsc->mode, 2u);
    EXPECT_EQ(tsc->khz, 3'000'000u);
    EXPECT_EQ(tsc->nsec, 0x1122334455667788ull);
    EXPECT_EQ(tsc->incarnation, 9u);
    EXPECT_EQ(tsc->reserved, 0u);
  }
  EXPECT_EQ(hexdump(next(r, Layer::kLibxc, 0x09, 1234).body), hexdump(view(ctx)));
  {
    auto hp = decode_hvm_params(next(r, Layer::kLibxc, 0x0A, 8 + 16 * params.size()));
    ASSERT_TRUE(hp);
    EXPECT_EQ(hp->count, params.size());
    EXPECT_EQ(hp->reserved, 0u);
    for (std::uint32_t i = 0; i < params.size(); ++i) {
      EXPECT_EQ(hp->index(i), params[i].first);
      EXPECT_EQ(hp->value(i), params[i].second);
    }
  }
  EXPECT_EQ(hexdump(next(r, Layer::kLibxc, 0x0B, 5).body), hexdump(view(toolstack)));
  check_vcpu(0x0C, 0, msrs);
  next(r, Layer::kLibxc, 0x0D, 0);
  next(r, Layer::kLibxc, 0x0E, 0);
  EXPECT_EQ(hexdump(next(r, Layer::kLibxc, 0x0F, 24).body), hexdump(view(dirty)));
  next(r, Layer::kLibxc, 0x10, 0);
  EXPECT_EQ(hexdump(next(r, Layer::kLibxc, 0x11, 48).body), hexdump(view(cpuid)));
  EXPECT_EQ(hexdump(next(r, Layer::kLibxc, 0x12, 32).body), hexdump(view(msr)));
  {
    auto end = next(r, Layer::kLibxc, 0x00, 0);
    EXPECT_EQ(end.end_offset(), sink.data().size());
  }
  r.release();
  auto at_end = src.at_end();
  ASSERT_TRUE(at_end);
  EXPECT_TRUE(*at_end);

  std::set<std::uint32_t> all;
#define LIBXC_RECORD(name, value, spec, json) all.insert(value);
#include <xenstream/libstream/format/record_types.def>
#undef LIBXC_RECORD
  EXPECT_EQ(seen_, all) << "a libxc record type is missing from this test";
}

TEST_P(RoundTrip, EveryLibxlRecordType) {
  BufferSink sink;
  RecordWriter w(sink, order());
  ASSERT_TRUE(w.write_libxl_header());
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"physmap/f0000000/start_addr", "f0000000"}, {"physmap/f0000000/name", "vga.vram"}, {"k", ""}};
  ASSERT_TRUE(w.append_xenstore(2, 0, pairs));
  const Buffer blob = pattern(37, 11);
  const Bytes parts[] = {view(blob).first(10), view(blob).subspan(10)};
  ASSERT_TRUE(w.append_emulator(xl::RecordType::kEmulatorContext, 2, 1, parts));
  ASSERT_TRUE(w.append_checkpoint_state(xl::kCheckpointSvmResumed));
  ASSERT_TRUE(w.append(xl::RecordType::kCheckpointEnd));
  ASSERT_TRUE(w.append(xl::RecordType::kLibxcContext));
  ASSERT_TRUE(w.write_image_header(2));
  ASSERT_TRUE(w.write_domain_header(xc::kDomainX86Hvm, 4, 6));
  ASSERT_TRUE(w.append(xc::RecordType::kEnd));
  ASSERT_TRUE(w.finish());

  MemorySource src(view(sink.data()));
  auto c = read_container(src);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, ContainerKind::kNone);
  EXPECT_EQ(c->payload, PayloadKind::kLibxl);
  StreamCursor cur(src, c->payload);
  ASSERT_TRUE(cur.start());
  ASSERT_TRUE(cur.libxl_header());
  EXPECT_EQ(cur.libxl_header()->version, 2u);
  EXPECT_EQ(cur.libxl_header()->options, order() == ByteOrder::kBig ? 1u : 0u);
  EXPECT_EQ(cur.libxl_header()->order(), order());
  EXPECT_FALSE(cur.libxl_header()->legacy());

  auto take = [&](Layer layer, std::uint32_t type, std::size_t length) {
    auto rec = cur.next();
    EXPECT_TRUE(rec) << rec.error().describe();
    if (!rec) return RecordView{};
    EXPECT_EQ(rec->layer, layer);
    EXPECT_EQ(rec->type, type);
    EXPECT_EQ(rec->length, length);
    EXPECT_EQ(rec->padding.size(), pad_of(length));
    for (std::byte b : rec->padding) EXPECT_EQ(b, std::byte{0});
    if (layer == Layer::kLibxl) seen_.insert(type);
    return *rec;
  };
  {
    std::size_t data = 0;
    for (const auto& [k, v] : pairs) data += k.size() + v.size() + 2;
    auto rec = take(Layer::kLibxl, 0x02, 8 + data);
    auto em = decode_emulator(rec);
    ASSERT_TRUE(em);
    EXPECT_EQ(em->id, 2u);
    EXPECT_EQ(em->index, 0u);
    auto kv = decode_xenstore_pairs(rec, *em);
    ASSERT_TRUE(kv) << kv.error().describe();
    EXPECT_EQ(*kv, pairs);
  }
  {
    auto rec = take(Layer::kLibxl, 0x03, 8 + blob.size());
    auto em = decode_emulator(rec);
    ASSERT_TRUE(em);
    EXPECT_EQ(em->id, 2u);
    EXPECT_EQ(em->index, 1u);
    EXPECT_EQ(hexdump(em->data.bytes()), hexdump(view(blob)));
    EXPECT_EQ(em->data.offset_of(0), rec.body_offset() + 8);
  }
  {
    auto state = decode_checkpoint_state(take(Layer::kLibxl, 0x05, 4));
    ASSERT_TRUE(state);
    EXPECT_EQ(*state, xl::kCheckpointSvmResumed);
  }
  take(Layer::kLibxl, 0x04, 0);
  take(Layer::kLibxl, 0x01, 0);
  take(Layer::kLibxc, 0x00, 0);
  ASSERT_TRUE(cur.libxc_image());
  EXPECT_EQ(cur.libxc_image()->version, 2u);
  EXPECT_EQ(cur.libxc_image()->order(), order());
  ASSERT_TRUE(cur.libxc_domain());
  EXPECT_TRUE(cur.libxc_domain()->is_hvm());
  EXPECT_EQ(cur.libxc_domain()->xen_minor, 6u);
  take(Layer::kLibxl, 0x00, 0);
  EXPECT_TRUE(cur.done());
  EXPECT_TRUE(cur.finish());

  std::set<std::uint32_t> all;
#define LIBXL_RECORD(name, value, spec, json) all.insert(value);
#include <xenstream/libstream/format/record_types.def>
#undef LIBXL_RECORD
  EXPECT_EQ(seen_, all) << "a libxl record type is missing from this test";
}

TEST_P(RoundTrip, EmptyXenstoreDataAndEmptyVcpuBlob) {
  BufferSink sink;
  RecordWriter w(sink, order());
  ASSERT_TRUE(w.append_xenstore(2, 0, {}));
  ASSERT_TRUE(w.append_vcpu(xc::RecordType::kX86PvVcpuXsave, 1, Bytes()));
  ASSERT_TRUE(w.append_hvm_params({}));
  MemorySource src(view(sink.data()));
  RecordReader r(src);
  {
    auto rec = next(r, Layer::kLibxl, 0x02, 8);
    auto em = decode_emulator(rec);
    ASSERT_TRUE(em);
    auto kv = decode_xenstore_pairs(rec, *em);
    ASSERT_TRUE(kv);
    EXPECT_TRUE(kv->empty());
  }
  {
    auto v = decode_vcpu_blob(next(r, Layer::kLibxc, 0x06, 8));
    ASSERT_TRUE(v);
    EXPECT_EQ(v->vcpu_id, 1u);
    EXPECT_EQ(v->blob.size(), 0u);
  }
  {
    auto hp = decode_hvm_params(next(r, Layer::kLibxc, 0x0A, 8));
    ASSERT_TRUE(hp);
    EXPECT_EQ(hp->count, 0u);
  }
}

TEST(RecordWriter, PageDataCountMismatchIsUsageError) {
  BufferSink sink;
  RecordWriter w(sink);
  const Buffer page = pattern(4096);
  const std::vector<std::uint64_t> entries = {1, 2, (0xFull << 60) | 3};
  const Bytes one[] = {view(page)};
  auto r = w.append_page_data(entries, one);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUsage);
  EXPECT_EQ(r.error().message, "PAGE_DATA: 2 entries carry data but 1 pages were given");
  const Buffer short_page = pattern(100);
  const Bytes two[] = {view(page), view(short_page)};
  r = w.append_page_data(entries, two);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "PAGE_DATA: a page of 100 bytes, expected 4096");
  EXPECT_TRUE(sink.data().empty()) << "a refused record must write nothing";
}

TEST(RecordWriter, BodyOverCapIsRefusedBeforeWriting) {
  BufferSink sink;
  RecordWriter w(sink);
  ASSERT_TRUE(w.append(0x0Du));
  w.max_record_length = 16;
  const Buffer body = pattern(17);
  ASSERT_TRUE(w.append(0x0Bu, {view(body).first(16)}));
  auto r = w.append(0x0Bu, {view(body).first(9), view(body).subspan(9)});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimit);
  EXPECT_EQ(r.error().offset, 32u);
  EXPECT_EQ(r.error().message, "record body of 0x11 bytes exceeds the cap of 0x10");
  EXPECT_EQ(sink.data().size(), 32u);
}

TEST(RecordWriter, PaddingMakesEveryRecordAMultipleOfEight) {
  for (std::size_t n = 0; n <= 17; ++n) {
    BufferSink sink;
    RecordWriter w(sink, ByteOrder::kBig);
    const Buffer body = pattern(n, 0xAA);
    ASSERT_TRUE(w.append(0x80000001u, {view(body)}));
    ASSERT_EQ(sink.data().size(), 8 + n + pad_of(n)) << n;
    EXPECT_EQ(hexdump(view(sink.data()).first(8)),
              "80000001" + hexdump(view(bytes_of(std::string(
                               {0, 0, 0, static_cast<char>(n)})))));
    for (std::size_t i = 8 + n; i < sink.data().size(); ++i) EXPECT_EQ(sink.data()[i], std::byte{0});
  }
}

}  // namespace
}  // namespace xenstream
