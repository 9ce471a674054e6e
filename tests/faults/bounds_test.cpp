// Resource bounds (fuzz/README.md, "Bounds"): tiny inputs whose headers
// claim huge sizes are refused with kLimit (over a cap) or kTruncated (under
// the cap, but the bytes are not there) at the offset of the claim, and the
// library allocates memory in proportion to the input, not to the claim,
// whether the input is in memory, comes through a pipe, or is compressed.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "alloc_counter.h"
#include <xenstream/codecs/zstd/zstd_sink.h>
#include <xenstream/codecs/zstd/zstd_source.h>
#include "feeder.h"
#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/record_reader.h>
#include <xenstream/libstream/records.h>
#include <xenstream/libstream/stream_cursor.h>

namespace xenstream {
namespace {

using testing::AllocWatch;
using testing::Feeder;
using Buf = std::vector<std::byte>;

// What one read of the input allocates at most, whatever the claim: the
// first read chunk of FdSource or ZstdSource (1 MiB) plus bookkeeping.
constexpr std::size_t kSmall = 2u << 20;
// For inputs read straight from memory: no window at all.
constexpr std::size_t kTiny = 64u << 10;

void le32(Buf& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(std::byte(static_cast<std::uint8_t>(v >> (8 * i))));
}
void be32(Buf& b, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) b.push_back(std::byte(static_cast<std::uint8_t>(v >> (8 * i))));
}
void text(Buf& b, std::string_view s) {
  for (char c : s) b.push_back(std::byte(static_cast<unsigned char>(c)));
}

// libxl stream header (little-endian stream), then one record header.
Buf libxl_with_record(std::uint32_t type, std::uint32_t length) {
  Buf b;
  text(b, "LibxlFmt");
  be32(b, 2);
  be32(b, 0);
  le32(b, type);
  le32(b, length);
  return b;
}

// Bare libxc image (v3, HVM, little-endian) and one record header + body.
Buf libxc_with_record(std::uint32_t type, std::uint32_t length, const Buf& body) {
  Buf b;
  for (int i = 0; i < 8; ++i) b.push_back(std::byte{0xff});
  text(b, "XENF");
  be32(b, 3);
  be32(b, 0);
  be32(b, 0);
  le32(b, 2);
  le32(b, 12);
  le32(b, 4);
  le32(b, 17);
  le32(b, type);
  le32(b, length);
  b.insert(b.end(), body.begin(), body.end());
  return b;
}

Buf xl_with_optional_len(std::uint32_t len) {
  Buf b;
  text(b, format::xl::kMagic);
  le32(b, format::xl::kByteOrderMark);
  le32(b, 3);
  le32(b, 0);
  le32(b, len);
  return b;
}

Buf libvirt_with_xml_len(std::uint32_t len) {
  Buf b;
  text(b, format::libvirt::kMagic);
  le32(b, 2);
  le32(b, len);
  for (int i = 0; i < 10; ++i) le32(b, 0);
  return b;
}

Buf zstd_of(const Buf& plain) {
  BufferSink out;
  codecs::ZstdSink z(out);
  EXPECT_TRUE(z.write(Bytes(plain)));
  EXPECT_TRUE(z.flush());
  return out.data();
}

// Walks container + records to the first error (the inputs here all fail).
Error first_error(Source& src) {
  auto c = read_container(src);
  if (!c) return c.error();
  StreamCursor cur(src, c->payload);
  if (auto s = cur.start(); !s) return s.error();
  while (!cur.done()) {
    auto r = cur.next();
    if (!r) return r.error();
  }
  return make_error(ErrorCode::kUsage, 0, "no error");
}

enum class Via { kMemory, kPipe, kZstd };

struct Outcome {
  Error error;
  std::size_t peak = 0;
};

Outcome run(const Buf& input, Via via) {
  AllocWatch watch;
  Outcome out;
  if (via == Via::kMemory) {
    MemorySource src{Bytes(input)};
    out.error = first_error(src);
  } else if (via == Via::kPipe) {
    Feeder feed(input, 4096);
    FdSource src(feed.read_fd(), "<pipe>");
    out.error = first_error(src);
  } else {
    const Buf z = zstd_of(input);
    codecs::ZstdSource src(std::make_unique<MemorySource>(Bytes(z)));
    out.error = first_error(src);
  }
  out.peak = watch.stats().peak_live;
  return out;
}

void expect_error(const Error& e, ErrorCode code, std::uint64_t offset, std::string_view message) {
  EXPECT_EQ(error_code_name(e.code), error_code_name(code)) << e.describe();
  EXPECT_EQ(e.offset, offset) << e.describe();
  EXPECT_EQ(e.message, message);
}

// Every way of feeding the input: same error, small memory.
void expect_everywhere(const Buf& input, ErrorCode code, std::uint64_t offset,
                       std::string_view message) {
  for (Via via : {Via::kMemory, Via::kPipe, Via::kZstd}) {
    SCOPED_TRACE(via == Via::kMemory ? "memory" : via == Via::kPipe ? "pipe" : "zstd");
    const Outcome o = run(input, via);
    expect_error(o.error, code, offset, message);
    EXPECT_LT(o.peak, via == Via::kMemory ? kTiny : kSmall);
  }
}

TEST(Bounds, RecordLengthAllOnesIsOverTheCap) {
  expect_everywhere(libxl_with_record(1, 0xFFFFFFFFu), ErrorCode::kLimit, 0x14,
                    "record #0 LIBXC_CONTEXT at 0x10: body_length 0xffffffff exceeds the cap of "
                    "0x8000000");
}

TEST(Bounds, RecordLengthOneOverTheCap) {
  expect_everywhere(libxl_with_record(3, 0x08000001u), ErrorCode::kLimit, 0x14,
                    "record #0 EMULATOR_CONTEXT at 0x10: body_length 0x8000001 exceeds the cap of "
                    "0x8000000");
}

TEST(Bounds, RecordAtTheCapWithNoBodyCostsNoMemory) {
  // 0x8000000 is accepted by the cap; the 24-octet input ends right after the
  // header. Before FdSource and ZstdSource grew their window only as bytes
  // arrived, this allocated 128 MiB through a pipe.
  expect_everywhere(libxl_with_record(3, 0x08000000u), ErrorCode::kTruncated, 0x18,
                    "record #0 EMULATOR_CONTEXT at 0x10: truncated: the record needs [0x10, "
                    "0x8000018) but the input ends at 0x18");
}

TEST(Bounds, LowerCapIsHonoured) {
  const Buf in = libxl_with_record(2, 4097);
  MemorySource src{Bytes(in)};
  ASSERT_TRUE(read_libxl_header(src));
  RecordReader reader(src, ReaderLimits{4096});
  auto r = reader.next(Layer::kLibxl, ByteOrder::kLittle);
  ASSERT_FALSE(r);
  expect_error(r.error(), ErrorCode::kLimit, 0x14,
               "record #0 EMULATOR_XENSTORE_DATA at 0x10: body_length 0x1001 exceeds the cap of "
               "0x1000");
  ASSERT_TRUE(r.error().range);
  EXPECT_EQ(r.error().range->begin, 0x14u);
  EXPECT_EQ(r.error().range->end, 0x18u);
}

TEST(Bounds, XlOptionalDataLenAllOnes) {
  expect_everywhere(xl_with_optional_len(0xFFFFFFFFu), ErrorCode::kLimit, 0x2c,
                    "xl save header: optional_data_len 0xffffffff exceeds the cap of 0x1000000");
}

TEST(Bounds, XlOptionalDataAtTheCapWithNoData) {
  expect_everywhere(xl_with_optional_len(16u << 20), ErrorCode::kTruncated, 0x30,
                    "unexpected end of data while reading the xl optional data [0x30, 0x1000030)");
}

TEST(Bounds, LibvirtXmlLenAllOnes) {
  expect_everywhere(libvirt_with_xml_len(0xFFFFFFFFu), ErrorCode::kLimit, 0x14,
                    "libvirt save header: xmlLen 0xffffffff exceeds the cap of 0x1000000");
}

TEST(Bounds, LibvirtXmlAtTheCapWithNoXml) {
  expect_everywhere(libvirt_with_xml_len(16u << 20), ErrorCode::kTruncated, 0x40,
                    "unexpected end of data while reading the libvirt domain XML [0x40, "
                    "0x1000040)");
}

TEST(Bounds, PageDataClaimingAHugeBatchInAShortRecord) {
  // count 0xFFFFFFFF in an 8-octet body: refused by the decoder, at the count.
  Buf body;
  le32(body, 0xFFFFFFFFu);
  le32(body, 0);
  const Buf in = libxc_with_record(1, 8, body);
  AllocWatch watch;
  MemorySource src{Bytes(in)};
  StreamCursor cur(src, PayloadKind::kLibxc);
  ASSERT_TRUE(cur.start());
  auto rec = cur.next();
  ASSERT_TRUE(rec) << rec.error().describe();
  auto pd = decode_page_data(*rec);
  ASSERT_FALSE(pd);
  expect_error(pd.error(), ErrorCode::kMalformed, 0x30,
               "record #0 PAGE_DATA at 0x28: count 4294967295 needs 34359738368 octets of header "
               "and pfns, body has 8");
  EXPECT_LT(watch.stats().largest, kTiny);
}

TEST(Bounds, PageDataRecordClaimingTheCapIsTruncated) {
  // A PAGE_DATA header claiming a full-size batch; the input stops after the
  // count. Through any source: kTruncated at the input's end, small memory.
  Buf body;
  le32(body, 0x7FFFu);
  le32(body, 0);
  expect_everywhere(libxc_with_record(1, 0x07FFFFF8u, body), ErrorCode::kTruncated, 0x38,
                    "record #0 PAGE_DATA at 0x28: truncated: the record needs [0x28, 0x8000028) "
                    "but the input ends at 0x38");
}

TEST(Bounds, HvmParamsClaimingAHugeCount) {
  Buf body;
  le32(body, 0xFFFFFFFFu);
  le32(body, 0);
  const Buf in = libxc_with_record(0x0a, 8, body);
  MemorySource src{Bytes(in)};
  StreamCursor cur(src, PayloadKind::kLibxc);
  ASSERT_TRUE(cur.start());
  auto rec = cur.next();
  ASSERT_TRUE(rec);
  auto hp = decode_hvm_params(*rec);
  ASSERT_FALSE(hp);
  expect_error(hp.error(), ErrorCode::kMalformed, 0x30,
               "record #0 HVM_PARAMS at 0x28: count 4294967295 needs a body of 68719476728 "
               "octets, body has 8");
}

TEST(Bounds, FdSourceWindowCap) {
  // A pull above the window cap is refused before anything is read or
  // allocated.
  const Buf in(64, std::byte{1});
  Feeder feed(in, 64);
  FdSource src(feed.read_fd(), "<pipe>", 1u << 20);
  AllocWatch watch;
  auto got = src.pull((1u << 20) + 1);
  ASSERT_FALSE(got);
  expect_error(got.error(), ErrorCode::kLimit, 0,
               "a single read of 0x100001 bytes exceeds the window cap of 0x100000 bytes");
  EXPECT_LT(watch.stats().largest, kTiny);
}

TEST(Bounds, ZstdBombStaysInsideItsWindow) {
  // 64 MiB of zeros compress to a few KiB; reading it through a 1 MiB window
  // never holds more than the window.
  BufferSink out;
  {
    codecs::ZstdSink z(out);
    const Buf zeros(1u << 20);
    for (int i = 0; i < 64; ++i) ASSERT_TRUE(z.write(Bytes(zeros)));
    ASSERT_TRUE(z.flush());
  }
  ASSERT_LT(out.data().size(), 64u << 10);
  AllocWatch watch;
  codecs::ZstdSource src(std::make_unique<MemorySource>(Bytes(out.data())), 1u << 20);
  auto big = src.pull((1u << 20) + 1);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::kLimit);
  std::uint64_t total = 0;
  for (;;) {
    auto got = src.peek(1u << 20);
    ASSERT_TRUE(got);
    if (got->empty()) break;
    total += got->size();
    src.consume(got->size());
  }
  EXPECT_EQ(total, 64u << 20);
  EXPECT_LE(src.peak_window(), 1u << 20);
  EXPECT_LT(watch.stats().peak_live, 2u << 20);
}

}  // namespace
}  // namespace xenstream
