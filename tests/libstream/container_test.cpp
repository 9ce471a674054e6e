// Container detection (xl in both byte orders, libvirt, bare libxl, bare
// libxc, legacy-looking, zstd-wrapped, empty) and refusal of malformed
// headers with the exact message and offset, including truncation at every
// byte of every header.
#include <gtest/gtest.h>

#include <xenstream/codecs/open_input.h>
#include <xenstream/codecs/zstd/zstd_sink.h>
#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include "test_util.h"

namespace xenstream {
namespace {

using namespace xenstream::test;
namespace xc = format::libxc;
namespace xl = format::libxl;

const std::string kConfig = R"({"c_info":{"type":"hvm","name":"guest"}})";

// A complete small libxl stream: header, LIBXC_CONTEXT, libxc headers,
// STATIC_DATA_END, libxc END, libxl END.
Buffer libxl_stream(ByteOrder order = ByteOrder::kLittle) {
  BufferSink sink;
  RecordWriter w(sink, order);
  EXPECT_TRUE(w.write_libxl_header());
  EXPECT_TRUE(w.append(xl::RecordType::kLibxcContext));
  EXPECT_TRUE(w.write_image_header(3));
  EXPECT_TRUE(w.write_domain_header(xc::kDomainX86Hvm, 4, 17));
  EXPECT_TRUE(w.append(xc::RecordType::kStaticDataEnd));
  EXPECT_TRUE(w.append(xc::RecordType::kEnd));
  EXPECT_TRUE(w.finish());
  return sink.data();
}

Buffer libxc_image() {
  BufferSink sink;
  RecordWriter w(sink);
  EXPECT_TRUE(w.write_image_header(3));
  EXPECT_TRUE(w.write_domain_header(xc::kDomainX86Pv, 4, 17));
  EXPECT_TRUE(w.append(xc::RecordType::kStaticDataEnd));
  EXPECT_TRUE(w.finish());
  return sink.data();
}

// xl header: magic, 4 u32 in `order`, then optional data = u32 config_len +
// config (+ NUL). `extra` octets are appended to the optional data.
Buffer xl_header(ByteOrder order, std::uint32_t flags = 3, const std::string& config = kConfig,
                 std::size_t extra = 0) {
  const Buffer tail(extra, std::byte{0x5A});
  XlHeaderSpec h;
  h.order = order;
  h.mandatory_flags = flags;
  h.config = config;
  h.extra = view(tail);
  return xl_header_bytes(h);
}

Buffer libvirt_header(const std::string& xml, std::uint32_t version = 2) {
  LibvirtHeaderSpec h;
  h.version = version;
  h.xml = xml;
  return libvirt_header_bytes(h);
}

Buffer cat(Buffer a, const Buffer& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Expected<ContainerInfo> container_of(const Buffer& b, FormatHint hint = FormatHint::kAuto) {
  MemorySource src(view(b));
  return read_container(src, hint);
}

void expect_error(const std::optional<Error>& e, ErrorCode code, std::uint64_t offset,
                  const std::string& message) {
  ASSERT_TRUE(e.has_value()) << "expected: " << message;
  EXPECT_EQ(e->code, code) << e->describe();
  EXPECT_EQ(e->offset, offset) << e->describe();
  EXPECT_EQ(e->message, message);
}

// ---------------------------------------------------------------------------
// Detection

class XlByteOrder : public ::testing::TestWithParam<ByteOrder> {};
INSTANTIATE_TEST_SUITE_P(Both, XlByteOrder, ::testing::Values(ByteOrder::kLittle, ByteOrder::kBig),
                         [](const auto& i) { return i.param == ByteOrder::kLittle ? "Little" : "Big"; });

TEST_P(XlByteOrder, DetectsXlHeaderAndConfig) {
  const Buffer header = xl_header(GetParam(), 3, kConfig, 5);
  const Buffer file = cat(header, libxl_stream());
  MemorySource src(view(file));
  auto c = read_container(src);
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(c->kind, ContainerKind::kXl);
  ASSERT_TRUE(c->xl);
  const XlHeaderInfo& h = *c->xl;
  EXPECT_EQ(h.offset, 0u);
  EXPECT_EQ(h.order, GetParam());
  EXPECT_EQ(h.byteorder, 0x01020304u);
  EXPECT_EQ(h.mandatory_flags, 3u);
  EXPECT_TRUE(h.json());
  EXPECT_TRUE(h.stream_v2());
  EXPECT_EQ(h.optional_flags, 0u);
  EXPECT_EQ(h.optional_data_len, 4 + kConfig.size() + 1 + 5);
  ASSERT_TRUE(h.config_len);
  EXPECT_EQ(*h.config_len, kConfig.size() + 1);
  EXPECT_EQ(h.config, kConfig + std::string(1, '\0'));
  EXPECT_EQ(c->payload, PayloadKind::kLibxl);
  EXPECT_EQ(c->payload_offset, header.size());
  EXPECT_EQ(src.position(), header.size());
  EXPECT_FALSE(c->libvirt);
  // The payload walks on from there.
  StreamCursor cur(src, c->payload);
  ASSERT_TRUE(cur.start());
  int n = 0;
  while (!cur.done()) {
    auto r = cur.next();
    ASSERT_TRUE(r) << r.error().describe();
    ++n;
  }
  EXPECT_EQ(n, 4);  // LIBXC_CONTEXT, STATIC_DATA_END, libxc END, libxl END
  EXPECT_TRUE(cur.finish());
}

TEST_P(XlByteOrder, XlWithoutStreamV2FlagAndLibxcPayload) {
  const Buffer header = xl_header(GetParam(), 1, "");
  auto c = container_of(cat(header, libxc_image()));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, ContainerKind::kXl);
  EXPECT_TRUE(c->xl->json());
  EXPECT_FALSE(c->xl->stream_v2());
  EXPECT_EQ(*c->xl->config_len, 1u);
  EXPECT_EQ(c->xl->config, std::string(1, '\0'));
  EXPECT_EQ(c->payload, PayloadKind::kLibxc);
}

TEST(Container, XlOptionalDataShorterThanConfigLength) {
  // optional_data_len 2: no room for config_len.
  Buffer h = xl_header(ByteOrder::kLittle);
  h.resize(48);
  put_u32(h.data() + 44, 2, ByteOrder::kLittle);
  h.push_back(std::byte{1});
  h.push_back(std::byte{2});
  auto c = container_of(cat(h, libxl_stream()));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->xl->optional_data_len, 2u);
  EXPECT_FALSE(c->xl->config_len);
  EXPECT_TRUE(c->xl->config.empty());
  EXPECT_EQ(c->payload_offset, 50u);
  // No optional data at all.
  put_u32(h.data() + 44, 0, ByteOrder::kLittle);
  h.resize(48);
  c = container_of(cat(h, libxl_stream()));
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->xl->config_len);
  EXPECT_EQ(c->payload_offset, 48u);
}

TEST(Container, XlConfigLengthPastOptionalDataIsClipped) {
  Buffer h = xl_header(ByteOrder::kLittle);
  put_u32(h.data() + 48, 1000, ByteOrder::kLittle);  // says more than is there
  auto c = container_of(cat(h, libxl_stream()));
  ASSERT_TRUE(c);
  EXPECT_EQ(*c->xl->config_len, 1000u);
  EXPECT_EQ(c->xl->config, kConfig + std::string(1, '\0'));
}

TEST(Container, DetectsLibvirtHeader) {
  const std::string xml = "<domain type='xen'><name>g</name></domain>\n";
  const Buffer header = libvirt_header(xml);
  auto c = container_of(cat(header, libxl_stream()));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, ContainerKind::kLibvirt);
  ASSERT_TRUE(c->libvirt);
  EXPECT_EQ(c->libvirt->offset, 0u);
  EXPECT_EQ(c->libvirt->version, 2u);
  EXPECT_EQ(c->libvirt->xml_len, xml.size() + 1);
  EXPECT_EQ(c->libvirt->xml, xml + std::string(1, '\0'));
  EXPECT_TRUE(c->libvirt->unused_zero);
  EXPECT_EQ(c->payload, PayloadKind::kLibxl);
  EXPECT_EQ(c->payload_offset, 64 + xml.size() + 1);
  EXPECT_FALSE(c->xl);

  Buffer dirty = header;
  dirty[60] = std::byte{1};
  c = container_of(cat(dirty, libxl_stream()));
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->libvirt->unused_zero);
}

TEST(Container, DetectsBareLibxlAndLibxc) {
  auto c = container_of(libxl_stream());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, ContainerKind::kNone);
  EXPECT_EQ(c->payload, PayloadKind::kLibxl);
  EXPECT_EQ(c->payload_offset, 0u);
  c = container_of(libxc_image());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, ContainerKind::kNone);
  EXPECT_EQ(c->payload, PayloadKind::kLibxc);
  // Big-endian streams are recognised by their (always big-endian) idents.
  c = container_of(libxl_stream(ByteOrder::kBig));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->payload, PayloadKind::kLibxl);
}

TEST(Container, LegacyLookingInput) {
  // A 64-bit toolstack's legacy PV image: u64 p2m_size, then ~0 (extended
  // info marker), ...
  Buffer legacy(64);
  put_u64(legacy.data(), 0x40000, ByteOrder::kLittle);
  put_u64(legacy.data() + 8, ~0ull, ByteOrder::kLittle);
  MemorySource src(view(legacy));
  auto c = read_container(src);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, ContainerKind::kNone);
  EXPECT_EQ(c->payload, PayloadKind::kLegacy);
  EXPECT_EQ(src.position(), 0u) << "classification must not consume the payload";
  StreamCursor cur(src, c->payload);
  auto s = cur.start();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(s.error().message,
            "a legacy (pre-Xen 4.6) image is not a v2 stream; convert it with streamconv");
  // A libxc marker with a wrong id is not a v2 image either.
  Buffer bad = libxc_image();
  bad[11] = std::byte{'G'};
  EXPECT_EQ(container_of(bad)->payload, PayloadKind::kLegacy);
  // A short input that matches no magic.
  EXPECT_EQ(container_of(bytes_of("abc"))->payload, PayloadKind::kLegacy);
  // classify_payload() on its own.
  EXPECT_EQ(classify_payload(view(libxl_stream())), PayloadKind::kLibxl);
  EXPECT_EQ(classify_payload(view(libxc_image())), PayloadKind::kLibxc);
  EXPECT_EQ(classify_payload(Bytes()), PayloadKind::kLegacy);
}

TEST(Container, ZstdWrappedInputIsDetectedAndDecoded) {
  const Buffer plain = cat(xl_header(ByteOrder::kLittle), libxl_stream());
  BufferSink compressed;
  {
    codecs::ZstdSink z(compressed);
    ASSERT_TRUE(z.write(view(plain)));
    ASSERT_TRUE(z.flush());
  }
  ASSERT_GE(compressed.data().size(), 4u);
  EXPECT_EQ(std::memcmp(compressed.data().data(), format::kZstdMagic, 4), 0);
  auto in = codecs::wrap_input(std::make_unique<MemorySource>(view(compressed.data())));
  ASSERT_TRUE(in);
  EXPECT_TRUE(in->compressed);
  const Walk z = walk(*in->source);
  const Walk p = walk_memory(plain);
  EXPECT_TRUE(z.ok) << z.error_text();
  EXPECT_EQ(z.container.kind, ContainerKind::kXl);
  EXPECT_EQ(z.container.payload, PayloadKind::kLibxl);
  EXPECT_TRUE(z == p);
  // Uncompressed input passes through untouched.
  auto raw = codecs::wrap_input(std::make_unique<MemorySource>(view(plain)));
  ASSERT_TRUE(raw);
  EXPECT_FALSE(raw->compressed);
  EXPECT_TRUE(walk(*raw->source) == p);
}

TEST(Container, EmptyInput) {
  Buffer empty;
  MemorySource src(view(empty));
  auto c = read_container(src);
  ASSERT_FALSE(c);
  expect_error(c.error(), ErrorCode::kTruncated, 0, "the input is empty");
  auto in = codecs::wrap_input(std::make_unique<MemorySource>(view(empty)));
  ASSERT_TRUE(in);
  EXPECT_FALSE(in->compressed);
  auto c2 = read_container(*in->source);
  ASSERT_FALSE(c2);
  expect_error(c2.error(), ErrorCode::kTruncated, 0, "the input is empty");
}

TEST(Container, HeaderWithoutPayload) {
  const Buffer h = xl_header(ByteOrder::kLittle);
  auto c = container_of(h);
  ASSERT_FALSE(c);
  expect_error(c.error(), ErrorCode::kTruncated, h.size(),
               "the stream ends after the xl header: no payload");
  const Buffer v = libvirt_header("<domain/>");
  c = container_of(v);
  ASSERT_FALSE(c);
  expect_error(c.error(), ErrorCode::kTruncated, v.size(),
               "the stream ends after the libvirt header: no payload");
}

TEST(Container, HintsForceAHeaderKind) {
  const Buffer bare = libxl_stream();
  auto c = container_of(bare, FormatHint::kXl);
  ASSERT_FALSE(c);
  expect_error(c.error(), ErrorCode::kMalformed, 0, "xl save header: magic does not match");
  ASSERT_TRUE(c.error().range);
  EXPECT_EQ(c.error().range->end, 32u);
  c = container_of(cat(bare, Buffer(64)), FormatHint::kLibvirt);
  ASSERT_FALSE(c);
  expect_error(c.error(), ErrorCode::kMalformed, 0, "libvirt save header: magic does not match");
  c = container_of(libxc_image(), FormatHint::kLibxl);
  ASSERT_FALSE(c);
  expect_error(c.error(), ErrorCode::kMalformed, 0, "expected a libxl stream (\"LibxlFmt\") here");
  c = container_of(bare, FormatHint::kLibxc);
  ASSERT_FALSE(c);
  expect_error(c.error(), ErrorCode::kMalformed, 0,
               "expected a libxc image (marker and \"XENF\") here");
  c = container_of(bare, FormatHint::kLibxl);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->payload, PayloadKind::kLibxl);
}

// ---------------------------------------------------------------------------
// Malformed headers

TEST(MalformedHeader, LibxcBadMarker) {
  Buffer img = libxc_image();
  img[3] = std::byte{0xFE};
  MemorySource src(view(img));
  auto h = read_image_header(src);
  ASSERT_FALSE(h);
  expect_error(h.error(), ErrorCode::kMalformed, 0,
               "libxc image header: marker is 0xfffffffeffffffff, expected 0xffffffffffffffff");
  ASSERT_TRUE(h.error().range);
  EXPECT_EQ(h.error().range->begin, 0u);
  EXPECT_EQ(h.error().range->end, 8u);
  EXPECT_EQ(src.position(), 0u);
}

TEST(MalformedHeader, LibxcBadId) {
  Buffer img = libxc_image();
  img[8] = std::byte{'Y'};
  MemorySource src(view(img));
  auto h = read_image_header(src);
  ASSERT_FALSE(h);
  expect_error(h.error(), ErrorCode::kMalformed, 8,
               "libxc image header: id is 0x59454e46, expected 0x58454e46 (\"XENF\")");
  EXPECT_EQ(h.error().range->begin, 8u);
  EXPECT_EQ(h.error().range->end, 12u);
}

TEST(MalformedHeader, NestedLibxcBadMarkerAndId) {
  // Inside a libxl stream the image header sits after LIBXC_CONTEXT at 0x18.
  Buffer s = libxl_stream();
  s[0x18] = std::byte{0};
  Walk w = walk_memory(s);
  expect_error(w.error, ErrorCode::kMalformed, 0x18,
               "libxc image header: marker is 0xffffffffffffff, expected 0xffffffffffffffff");
  EXPECT_EQ(w.records.size(), 1u);
  s = libxl_stream();
  s[0x18 + 11] = std::byte{'X'};
  w = walk_memory(s);
  expect_error(w.error, ErrorCode::kMalformed, 0x20,
               "libxc image header: id is 0x58454e58, expected 0x58454e46 (\"XENF\")");
}

TEST(MalformedHeader, LibxlBadIdent) {
  Buffer s = libxl_stream();
  s[7] = std::byte{'X'};
  MemorySource src(view(s));
  auto h = read_libxl_header(src);
  ASSERT_FALSE(h);
  expect_error(h.error(), ErrorCode::kMalformed, 0,
               "libxl stream header: ident is 0x4c6962786c466d58, expected 0x4c6962786c466d74 (\"LibxlFmt\")");
  EXPECT_EQ(h.error().range->end, 8u);
  // After an xl header, the cursor reports it at the payload's offset.
  const Buffer header = xl_header(ByteOrder::kLittle);
  const Buffer file = cat(header, s);
  MemorySource src2(view(file));
  auto c = read_container(src2, FormatHint::kXl);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->payload, PayloadKind::kLegacy);
  StreamCursor cur(src2, PayloadKind::kLibxl);
  auto st = cur.start();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().offset, header.size());
  EXPECT_EQ(st.error().code, ErrorCode::kMalformed);
}

TEST(MalformedHeader, XlOptionalDataOverCap) {
  Buffer h = xl_header(ByteOrder::kBig);
  put_u32(h.data() + 44, kMaxXlOptionalData + 1, ByteOrder::kBig);
  auto c = container_of(h);
  ASSERT_FALSE(c);
  expect_error(c.error(), ErrorCode::kLimit, 44,
               "xl save header: optional_data_len 0x1000001 exceeds the cap of 0x1000000");
  EXPECT_EQ(c.error().range->begin, 44u);
  EXPECT_EQ(c.error().range->end, 48u);
  // At the cap it is read (and here truncated).
  put_u32(h.data() + 44, kMaxXlOptionalData, ByteOrder::kBig);
  c = container_of(h);
  ASSERT_FALSE(c);
  expect_error(c.error(), ErrorCode::kTruncated, 48,
               "unexpected end of data while reading the xl optional data [0x30, 0x1000030)");
}

TEST(MalformedHeader, LibvirtXmlOverCap) {
  Buffer h = libvirt_header("<domain/>");
  put_u32(h.data() + 20, 0xFFFFFFFF, ByteOrder::kLittle);
  auto c = container_of(h);
  ASSERT_FALSE(c);
  expect_error(c.error(), ErrorCode::kLimit, 20,
               "libvirt save header: xmlLen 0xffffffff exceeds the cap of 0x1000000");
  EXPECT_EQ(c.error().range->begin, 20u);
  EXPECT_EQ(c.error().range->end, 24u);
}

TEST(MalformedHeader, OverCapLengthsAllocateNothingOnAPipe) {
  // Read through a pipe, the window never grows past one read chunk before
  // the cap check refuses the length.
  auto check = [](Buffer data, ErrorCode code, std::uint64_t offset, const std::string& message) {
    PipeFeeder feed(std::move(data), {}, false);
    FdSource src(feed.read_fd(), "<pipe>");
    Walk w = walk(src);
    expect_error(w.error, code, offset, message);
    EXPECT_LE(src.peak_window(), FdSource::kDefaultChunk);
  };
  Buffer xlh = xl_header(ByteOrder::kLittle);
  put_u32(xlh.data() + 44, 0xFFFFFFF0, ByteOrder::kLittle);
  check(xlh, ErrorCode::kLimit, 44,
        "xl save header: optional_data_len 0xfffffff0 exceeds the cap of 0x1000000");
  Buffer lv = libvirt_header("<domain/>");
  put_u32(lv.data() + 20, kMaxLibvirtXml + 1, ByteOrder::kLittle);
  check(lv, ErrorCode::kLimit, 20, "libvirt save header: xmlLen 0x1000001 exceeds the cap of 0x1000000");
  // A libxl record whose body_length is past REC_LENGTH_MAX.
  Buffer s = libxl_stream();
  put_u32(s.data() + 16 + 4, xc::kRecordLengthMax + 1, ByteOrder::kLittle);
  check(s, ErrorCode::kLimit, 20,
        "record #0 LIBXC_CONTEXT at 0x10: body_length 0x8000001 exceeds the cap of 0x8000000");
  // The same in the nested libxc layer (STATIC_DATA_END at 0x40).
  s = libxl_stream();
  put_u32(s.data() + 0x40 + 4, 0xFFFFFFFF, ByteOrder::kLittle);
  check(s, ErrorCode::kLimit, 0x44,
        "record #1 STATIC_DATA_END at 0x40: body_length 0xffffffff exceeds the cap of 0x8000000");
}

TEST(MalformedHeader, RecordCapIsConfigurable) {
  Buffer s = libxl_stream();
  put_u32(s.data() + 16 + 4, 4097, ByteOrder::kLittle);
  MemorySource src(view(s));
  StreamCursor cur(src, PayloadKind::kLibxl, ReaderLimits{4096});
  ASSERT_TRUE(cur.start());
  auto r = cur.next();
  ASSERT_FALSE(r);
  expect_error(r.error(), ErrorCode::kLimit, 20,
               "record #0 LIBXC_CONTEXT at 0x10: body_length 0x1001 exceeds the cap of 0x1000");
  EXPECT_EQ(r.error().record_index, 0u);
  EXPECT_EQ(r.error().record_type, 1u);
  ASSERT_TRUE(r.error().range);
  EXPECT_EQ(r.error().range->begin, 20u);
  EXPECT_EQ(r.error().range->end, 24u);
}

// ---------------------------------------------------------------------------
// Truncation at every byte of every header

struct Region {
  std::uint64_t begin, end;  // prefix lengths L in [begin, end) give...
  ErrorCode code;
  std::uint64_t offset;      // ...this error
  std::string message;
};

std::string trunc_msg(const std::string& what, std::uint64_t b, std::uint64_t e) {
  return "unexpected end of data while reading " + what + " [" + hex(b) + ", " + hex(e) + ")";
}

// The libxl payload at `p`: header [p, p+16), LIBXC_CONTEXT [p+16, p+24),
// image header [p+24, p+48), domain header [p+48, p+64), first record.
std::vector<Region> libxl_regions(std::uint64_t p) {
  return {
      {p + 1, p + 16, ErrorCode::kTruncated, p, trunc_msg("the libxl stream header", p, p + 16)},
      {p + 16, p + 17, ErrorCode::kTruncated, p + 16,
       "the stream ends at " + hex(p + 16) + " without an END record"},
      {p + 17, p + 24, ErrorCode::kTruncated, p + 16, trunc_msg("a record header", p + 16, p + 24)},
      {p + 24, p + 48, ErrorCode::kTruncated, p + 24, trunc_msg("the libxc image header", p + 24, p + 48)},
      {p + 48, p + 64, ErrorCode::kTruncated, p + 48, trunc_msg("the libxc domain header", p + 48, p + 64)},
      {p + 64, p + 65, ErrorCode::kTruncated, p + 64,
       "the stream ends at " + hex(p + 64) + " without an END record"},
  };
}

void check_every_prefix(const Buffer& full, const std::vector<Region>& regions) {
  for (const Region& r : regions) {
    for (std::uint64_t len = r.begin; len < r.end; ++len) {
      SCOPED_TRACE("prefix of " + std::to_string(len) + " bytes");
      const Buffer prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
      const Walk w = walk_memory(prefix);
      expect_error(w.error, r.code, r.offset, r.message);
      // The same through a pipe, at each region's first and last length.
      if (len != r.begin && len + 1 != r.end) continue;
      PipeFeeder feed(prefix, {}, false);
      FdSource src(feed.read_fd(), "<pipe>");
      const Walk p = walk(src);
      EXPECT_TRUE(same_error(w.error, p.error)) << p.error_text();
    }
  }
}

TEST(Truncation, EveryByteOfBareLibxlHeaders) {
  const Buffer s = libxl_stream();
  std::vector<Region> regions = {{0, 1, ErrorCode::kTruncated, 0, "the input is empty"}};
  for (auto& r : libxl_regions(0)) regions.push_back(r);
  check_every_prefix(s, regions);
}

TEST(Truncation, EveryByteOfBareLibxcHeaders) {
  const Buffer s = libxc_image();
  check_every_prefix(s, {
      {0, 1, ErrorCode::kTruncated, 0, "the input is empty"},
      {1, 24, ErrorCode::kTruncated, 0, trunc_msg("the libxc image header", 0, 24)},
      {24, 40, ErrorCode::kTruncated, 24, trunc_msg("the libxc domain header", 24, 40)},
      {40, 41, ErrorCode::kTruncated, 40, "the stream ends at 0x28 without an END record"},
      {41, 48, ErrorCode::kTruncated, 40, trunc_msg("a record header", 40, 48)},
  });
}

TEST(Truncation, EveryByteOfXlHeaders) {
  for (ByteOrder order : {ByteOrder::kLittle, ByteOrder::kBig}) {
    SCOPED_TRACE(order == ByteOrder::kLittle ? "little" : "big");
    const Buffer h = xl_header(order);
    const std::uint64_t p = h.size();
    std::vector<Region> regions = {
        {1, 48, ErrorCode::kTruncated, 0, trunc_msg("the xl save header", 0, 48)},
        {48, p, ErrorCode::kTruncated, 48, trunc_msg("the xl optional data", 48, p)},
        {p, p + 1, ErrorCode::kTruncated, p, "the stream ends after the xl header: no payload"},
    };
    for (auto& r : libxl_regions(p)) regions.push_back(r);
    check_every_prefix(cat(h, libxl_stream()), regions);
  }
}

TEST(Truncation, EveryByteOfLibvirtHeaders) {
  const Buffer h = libvirt_header("<domain type='xen'/>");
  const std::uint64_t p = h.size();
  std::vector<Region> regions = {
      {1, 64, ErrorCode::kTruncated, 0, trunc_msg("the libvirt save header", 0, 64)},
      {64, p, ErrorCode::kTruncated, 64, trunc_msg("the libvirt domain XML", 64, p)},
      {p, p + 1, ErrorCode::kTruncated, p, "the stream ends after the libvirt header: no payload"},
  };
  // A libvirt header followed by a bare libxc image.
  const Buffer img = libxc_image();
  regions.push_back({p + 1, p + 24, ErrorCode::kTruncated, p, trunc_msg("the libxc image header", p, p + 24)});
  regions.push_back(
      {p + 24, p + 40, ErrorCode::kTruncated, p + 24, trunc_msg("the libxc domain header", p + 24, p + 40)});
  check_every_prefix(cat(h, img), regions);
}


// The writers, octet by octet as spec/containers.md lays the headers out
// (written here by hand, not through the reader).
TEST(ContainerWriter, XlHeaderOctets) {
  const Buffer tail{std::byte{0xAA}};
  XlHeaderSpec h;
  h.order = ByteOrder::kBig;
  h.mandatory_flags = 3;
  h.optional_flags = 1;
  h.config = "{}";
  h.extra = view(tail);
  Buffer want = bytes_of(format::xl::kMagic);
  for (int v : std::initializer_list<int>{1, 2, 3, 4, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 3, '{', '}', 0, 0xAA}) {
    want.push_back(static_cast<std::byte>(v));
  }
  EXPECT_EQ(xl_header_bytes(h), want);

  h.order = ByteOrder::kLittle;
  h.config_nul = false;
  h.extra = {};
  want = bytes_of(format::xl::kMagic);
  for (int v : std::initializer_list<int>{4, 3, 2, 1, 3, 0, 0, 0, 1, 0, 0, 0, 6, 0, 0, 0, 2, 0, 0, 0, '{', '}'}) {
    want.push_back(static_cast<std::byte>(v));
  }
  EXPECT_EQ(xl_header_bytes(h), want);
}

TEST(ContainerWriter, LibvirtHeaderOctets) {
  LibvirtHeaderSpec h;
  h.version = 1;
  h.xml = "<a>";
  Buffer want = bytes_of(format::libvirt::kMagic);
  for (int v : std::initializer_list<int>{1, 0, 0, 0, 4, 0, 0, 0}) want.push_back(static_cast<std::byte>(v));
  want.resize(64);
  for (int v : std::initializer_list<int>{'<', 'a', '>', 0}) want.push_back(static_cast<std::byte>(v));
  EXPECT_EQ(libvirt_header_bytes(h), want);
}

}  // namespace
}  // namespace xenstream
