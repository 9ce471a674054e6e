// RapidCheck properties of the reader and writer:
//   - arbitrary record sequences round-trip writer -> reader byte-exact;
//   - arbitrary bytes (random, or a valid stream mutated, plain or inside
//     zstd) fed to read_container + StreamCursor + every decoder never crash
//     and never read out of bounds (the suite runs under ASan in CI);
//   - split-point invariance: a stream fed through a pipe in arbitrary chunk
//     sizes, tiny ones included, walks exactly as the in-memory walk does.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <xenstream/codecs/open_input.h>
#include <xenstream/codecs/zstd/zstd_sink.h>
#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/records.h>
#include "test_util.h"

namespace xenstream {
namespace {

using namespace xenstream::test;
namespace xc = format::libxc;
namespace xl = format::libxl;

// A uniform choice in [0, n), whatever RapidCheck's current size (plain
// inRange favours small values while the size is small).
int choice(int n) { return *rc::gen::resize(100, rc::gen::inRange(0, n)); }

Buffer gen_bytes(std::size_t max) {
  const auto n = *rc::gen::inRange<std::size_t>(0, max + 1);
  const auto v = *rc::gen::container<std::vector<std::uint8_t>>(n, rc::gen::arbitrary<std::uint8_t>());
  Buffer b(v.size());
  if (!v.empty()) std::memcpy(b.data(), v.data(), v.size());
  return b;
}

// Splits `body` into 1-4 parts at random points.
std::vector<Bytes> gen_parts(const Buffer& body) {
  std::vector<std::size_t> cuts =
      *rc::gen::container<std::vector<std::size_t>>(*rc::gen::inRange<std::size_t>(0, 4),
                                                    rc::gen::inRange<std::size_t>(0, body.size() + 1));
  std::sort(cuts.begin(), cuts.end());
  std::vector<Bytes> parts;
  std::size_t at = 0;
  for (std::size_t c : cuts) {
    parts.push_back(view(body).subspan(at, c - at));
    at = c;
  }
  parts.push_back(view(body).subspan(at));
  return parts;
}

RC_GTEST_PROP(Properties, RecordSequencesRoundTripByteExact, ()) {
  const ByteOrder order = *rc::gen::element(ByteOrder::kLittle, ByteOrder::kBig);
  const auto types = *rc::gen::container<std::vector<std::uint32_t>>(rc::gen::arbitrary<std::uint32_t>());
  std::vector<Buffer> bodies;
  for (std::size_t i = 0; i < types.size(); ++i) {
    const bool big = choice(10) == 0;
    bodies.push_back(gen_bytes(big ? 2000 : 40));
  }

  BufferSink sink;
  RecordWriter w(sink, order);
  Buffer reference;  // the same records framed by hand
  for (std::size_t i = 0; i < types.size(); ++i) {
    RC_ASSERT(w.append(types[i], gen_parts(bodies[i])).has_value());
    std::byte head[8];
    put_u32(head, types[i], order);
    put_u32(head + 4, static_cast<std::uint32_t>(bodies[i].size()), order);
    reference.insert(reference.end(), head, head + 8);
    reference.insert(reference.end(), bodies[i].begin(), bodies[i].end());
    reference.resize(reference.size() + (8 - bodies[i].size() % 8) % 8, std::byte{0});
  }
  RC_ASSERT(sink.data() == reference);
  RC_ASSERT(sink.position() == reference.size());

  MemorySource src(view(sink.data()));
  RecordReader r(src);
  BufferSink again;
  RecordWriter w2(again, order);
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < types.size(); ++i) {
    auto rec = r.next(*rc::gen::element(Layer::kLibxc, Layer::kLibxl), order);
    RC_ASSERT(rec.has_value());
    RC_ASSERT(rec->type == types[i]);
    RC_ASSERT(rec->length == bodies[i].size());
    RC_ASSERT(Buffer(rec->body.begin(), rec->body.end()) == bodies[i]);
    RC_ASSERT(rec->offset == offset);
    RC_ASSERT(rec->index == i);
    for (std::byte b : rec->padding) RC_ASSERT(b == std::byte{0});
    offset = rec->end_offset();
    RC_ASSERT(w2.append(rec->type, {rec->body}).has_value());
  }
  r.release();
  RC_ASSERT(*src.at_end());
  RC_ASSERT(again.data() == sink.data());
}

// ---------------------------------------------------------------------------
// A generator of structurally valid streams of every shape.

void put_container(BufferSink& sink, ContainerKind kind, PayloadKind payload) {
  if (kind == ContainerKind::kXl) {
    const ByteOrder o = *rc::gen::element(ByteOrder::kLittle, ByteOrder::kBig);
    const Buffer config = gen_bytes(60);
    const std::size_t extra = *rc::gen::inRange<std::size_t>(0, 5);
    const Buffer tail(extra);
    XlHeaderSpec x;
    x.order = o;
    x.mandatory_flags = payload == PayloadKind::kLibxl ? 3 : 1;
    x.config = std::string_view(reinterpret_cast<const char*>(config.data()), config.size());
    x.config_nul = false;
    x.extra = view(tail);
    const Buffer h = xl_header_bytes(x);
    RC_ASSERT(sink.write(view(h)).has_value());
  } else if (kind == ContainerKind::kLibvirt) {
    const Buffer xml = gen_bytes(60);
    LibvirtHeaderSpec v;
    v.xml = std::string_view(reinterpret_cast<const char*>(xml.data()), xml.size());
    v.xml_nul = false;
    const Buffer h = libvirt_header_bytes(v);
    RC_ASSERT(sink.write(view(h)).has_value());
  }
}

void put_libxc_records(RecordWriter& w, std::size_t max) {
  const auto n = *rc::gen::inRange<std::size_t>(0, max + 1);
  for (std::size_t i = 0; i < n; ++i) {
    if (choice(4) == 0) {
      // A well-formed PAGE_DATA with 1-2 data pages and maybe a hole.
      std::vector<std::uint64_t> entries = {*rc::gen::inRange<std::uint64_t>(0, 1 << 20)};
      if (*rc::gen::arbitrary<bool>()) entries.push_back(*rc::gen::inRange<std::uint64_t>(0, 1 << 20));
      if (*rc::gen::arbitrary<bool>()) entries.push_back((0xFull << 60) | 5);
      std::vector<Buffer> pages;
      std::vector<Bytes> views;
      for (std::uint64_t e : entries)
        if (xc::page_type_has_data(static_cast<unsigned>(e >> 60))) pages.push_back(pattern(4096, static_cast<std::uint8_t>(e)));
      for (const auto& p : pages) views.push_back(view(p));
      RC_ASSERT(w.append_page_data(entries, views).has_value());
      continue;
    }
    // Any type but END (0) and CHECKPOINT (0xE), which shape the stream.
    std::uint32_t type = *rc::gen::oneOf(rc::gen::inRange<std::uint32_t>(1, 0xE),
                                         rc::gen::inRange<std::uint32_t>(0xF, 0x14),
                                         rc::gen::just(0x80000013u));
    const Buffer body = gen_bytes(48);
    RC_ASSERT(w.append(type, {view(body)}).has_value());
  }
}

void put_libxl_records(RecordWriter& w, std::size_t max) {
  const auto n = *rc::gen::inRange<std::size_t>(0, max + 1);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t type = *rc::gen::element(2u, 3u, 0x80000006u);
    const Buffer body = gen_bytes(40);
    RC_ASSERT(w.append(type, {view(body)}).has_value());
  }
}

Buffer gen_stream() {
  BufferSink sink;
  const auto kind = *rc::gen::element(ContainerKind::kNone, ContainerKind::kXl, ContainerKind::kLibvirt);
  const auto payload = *rc::gen::element(PayloadKind::kLibxl, PayloadKind::kLibxc);
  const ByteOrder order = *rc::gen::element(ByteOrder::kLittle, ByteOrder::kBig);
  const bool hvm = *rc::gen::arbitrary<bool>();
  const bool libxl = payload == PayloadKind::kLibxl;
  put_container(sink, kind, payload);
  RecordWriter w(sink, order);
  if (libxl) {
    RC_ASSERT(w.write_libxl_header().has_value());
    RC_ASSERT(w.append(xl::RecordType::kLibxcContext).has_value());
  }
  RC_ASSERT(w.write_image_header(*rc::gen::element(2u, 3u)).has_value());
  RC_ASSERT(w.write_domain_header(hvm ? xc::kDomainX86Hvm : xc::kDomainX86Pv, 4, 17).has_value());
  put_libxc_records(w, 6);
  const auto checkpoints = choice(4);
  if (checkpoints == 0) {
    RC_ASSERT(w.append(xc::RecordType::kEnd).has_value());
    if (libxl) {
      put_libxl_records(w, 3);
      RC_ASSERT(w.append(xl::RecordType::kEnd).has_value());
    }
  } else {
    for (int k = 0; k < checkpoints; ++k) {
      if (k > 0) {
        if (libxl && hvm && *rc::gen::arbitrary<bool>()) {
          RC_ASSERT(w.append_checkpoint_state(xl::kCheckpointNew).has_value());
        }
        put_libxc_records(w, 3);
      }
      RC_ASSERT(w.append(xc::RecordType::kCheckpoint).has_value());
      if (libxl) {
        put_libxl_records(w, 2);
        RC_ASSERT(w.append(xl::RecordType::kCheckpointEnd).has_value());
      }
    }
  }
  Buffer out = std::move(sink.data());
  switch (choice(4)) {
    case 0: {  // trailing bytes
      const Buffer junk = gen_bytes(20);
      out.insert(out.end(), junk.begin(), junk.end());
      break;
    }
    case 1:  // truncated anywhere
      out.resize(*rc::gen::inRange<std::size_t>(0, out.size() + 1));
      break;
    default:
      break;
  }
  return out;
}

// Walks with every decoder applied to every record, whatever its type: they
// must bounds-check on their own. Small record cap: nothing big is pulled.
Walk walk_decoding(Source& src) {
  Walk w = walk(src, true, ReaderLimits{1u << 20});
  for (const SeenRecord& s : w.records) {
    RecordView v;
    v.layer = s.layer;
    v.type = s.type;
    v.length = s.length;
    v.body = view(s.body);
    v.offset = s.offset;
    v.index = s.index;
    for (ByteOrder o : {ByteOrder::kLittle, ByteOrder::kBig}) {
      v.order = o;
      if (auto pd = decode_page_data(v)) {
        std::uint64_t sum = 0;
        for (std::uint32_t i = 0; i < pd->count; ++i) sum += pd->pfn(i) + pd->type(i);
        for (std::size_t i = 0; i < pd->pages.size(); i += 4096) sum += std::to_integer<unsigned>(pd->pages[i]);
        RC_ASSERT(pd->pages.size() == std::size_t{pd->data_pages} * 4096 || sum == ~0ull);
      }
      (void)decode_x86_pv_info(v);
      if (auto p2m = decode_p2m_frames(v)) {
        for (std::size_t i = 0; i < p2m->count(); ++i) (void)p2m->frame(i);
      }
      (void)decode_vcpu_blob(v);
      (void)decode_tsc_info(v);
      if (auto hp = decode_hvm_params(v)) {
        for (std::uint32_t i = 0; i < hp->count; ++i) (void)(hp->index(i) + hp->value(i));
      }
      if (auto em = decode_emulator(v)) (void)decode_xenstore_pairs(v, *em);
      (void)decode_checkpoint_state(v);
      (void)v.label();
    }
  }
  return w;
}

// A position to edit: anywhere, or (more often) past the first 96 octets,
// so that most mutants keep their headers and reach the record code.
std::size_t gen_pos(std::size_t size) {
  const std::size_t low = (size > 96 && choice(3) > 0) ? 96 : 0;
  return *rc::gen::inRange<std::size_t>(low, size);
}

Buffer mutate(Buffer b) {
  const auto edits = *rc::gen::inRange(1, 4);
  for (int i = 0; i < edits; ++i) {
    switch (choice(9)) {
      case 0: case 1: case 2:  // change a byte
        if (!b.empty()) b[gen_pos(b.size())] = std::byte(*rc::gen::arbitrary<std::uint8_t>());
        break;
      case 3: case 4: case 5:  // overwrite a 32-bit field with an interesting value
        if (b.size() >= 4) {
          const std::size_t at = gen_pos(b.size() - 3) & ~std::size_t{3};
          const std::uint32_t v = *rc::gen::element(0u, 1u, 5u, 8u, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu,
                                                   0x08000000u, 0x08000001u, 4096u);
          put_u32(b.data() + at, v, *rc::gen::element(ByteOrder::kLittle, ByteOrder::kBig));
        }
        break;
      case 6:  // truncate
        b.resize(b.empty() ? 0 : gen_pos(b.size()));
        break;
      default: {  // insert bytes
        const std::size_t at = b.empty() ? 0 : gen_pos(b.size());
        const Buffer ins = gen_bytes(9);
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), ins.begin(), ins.end());
      }
    }
  }
  return b;
}

RC_GTEST_PROP(Properties, ArbitraryBytesNeverCrashTheReader, ()) {
  Buffer input;
  const int kind = choice(3);
  switch (kind) {
    case 0: {  // random bytes, often behind a magic so that parsing goes on
      static const Buffer magics[] = {
          bytes_of(format::xl::kMagic), bytes_of(format::libvirt::kMagic), bytes_of("LibxlFmt"),
          bytes_of(std::string_view("\xff\xff\xff\xff\xff\xff\xff\xffXENF", 12)), Buffer{}};
      input = magics[choice(5)];
      const Buffer rest = gen_bytes(300);
      input.insert(input.end(), rest.begin(), rest.end());
      break;
    }
    case 1: input = mutate(gen_stream()); break;
    default: {  // a valid stream's first octets with random bytes after
      Buffer head = gen_stream();
      head.resize(std::min<std::size_t>(head.size(), *rc::gen::inRange<std::size_t>(0, 120)));
      const Buffer tail = gen_bytes(100);
      head.insert(head.end(), tail.begin(), tail.end());
      input = std::move(head);
    }
  }
  MemorySource src(view(input));
  const Walk w = walk_decoding(src);
  RC_ASSERT(w.ok || w.error.has_value());
  if (w.error) RC_ASSERT(!w.error->message.empty());
  RC_TAG(kind, w.ok ? std::string("walked") : std::string(error_code_name(w.error->code)),
         w.records.size() > 3 ? "> 3 records" : "<= 3 records");
  for (const auto& r : w.records) RC_ASSERT(r.offset + 8 + r.length <= input.size());
}

RC_GTEST_PROP(Properties, ArbitraryZstdInputNeverCrashesTheReader, ()) {
  Buffer plain = *rc::gen::arbitrary<bool>() ? gen_stream() : mutate(gen_stream());
  BufferSink z;
  {
    codecs::ZstdSink sink(z, 1);
    RC_ASSERT(sink.write(view(plain)).has_value());
    RC_ASSERT(sink.flush().has_value());
  }
  Buffer input = *rc::gen::arbitrary<bool>() ? z.data() : mutate(z.data());
  auto in = codecs::wrap_input(std::make_unique<MemorySource>(view(input)));
  RC_ASSERT(in.has_value());
  const Walk w = walk_decoding(*in->source);
  RC_ASSERT(w.ok || w.error.has_value());
  if (input == z.data()) {
    // Intact compression: same walk as the plain bytes.
    MemorySource p(view(plain));
    RC_ASSERT(w == walk(p, true, ReaderLimits{1u << 20}));
  }
}

RC_GTEST_PROP(Properties, PipeChunkingDoesNotChangeTheWalk, ()) {
  const Buffer stream = gen_stream();
  const auto chunks = *rc::gen::nonEmpty(rc::gen::container<std::vector<std::size_t>>(
      rc::gen::weightedOneOf<std::size_t>({{5, rc::gen::inRange<std::size_t>(1, 9)},
                                           {3, rc::gen::inRange<std::size_t>(9, 513)},
                                           {2, rc::gen::inRange<std::size_t>(513, 20000)}})));
  const Walk expected = walk_memory(stream);
  PipeFeeder feed(stream, chunks, /*lockstep=*/true);
  FdSource src(feed.read_fd(), "<pipe>");
  const Walk got = walk(src);
  RC_ASSERT(got == expected);
  if (expected.ok) RC_ASSERT(feed.wrote_all());
  RC_TAG(expected.ok ? "complete stream"
                     : std::string(error_code_name(expected.error->code)) + " stream");
}

// Fixed examples of the same invariance, one chunk size at a time, so a
// failure names the size.
TEST(SplitPoints, EveryTinyChunkSize) {
  BufferSink sink;
  RecordWriter w(sink);
  ASSERT_TRUE(w.write_libxl_header());
  ASSERT_TRUE(w.append(xl::RecordType::kLibxcContext));
  ASSERT_TRUE(w.write_image_header(3));
  ASSERT_TRUE(w.write_domain_header(xc::kDomainX86Hvm, 4, 17));
  const Buffer page = pattern(4096);
  const std::uint64_t entries[] = {1, (0xFull << 60) | 2};
  const Bytes pages[] = {view(page)};
  ASSERT_TRUE(w.append_page_data(entries, pages));
  const Buffer odd = pattern(13);
  ASSERT_TRUE(w.append(xc::RecordType::kHvmContext, {view(odd)}));
  ASSERT_TRUE(w.append(xc::RecordType::kEnd));
  ASSERT_TRUE(w.finish());
  const Walk expected = walk_memory(sink.data());
  ASSERT_TRUE(expected.ok);
  for (std::size_t chunk : {1u, 2u, 3u, 5u, 7u, 8u, 9u, 16u, 17u, 4095u, 4097u}) {
    PipeFeeder feed(sink.data(), {chunk}, chunk < 64);
    FdSource src(feed.read_fd(), "<pipe>");
    EXPECT_TRUE(walk(src) == expected) << "chunk " << chunk;
  }
}

}  // namespace
}  // namespace xenstream
