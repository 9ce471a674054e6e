// Fuzz target: writer round trip.
//
// The input is a list of choices (FuzzedDataProvider): byte order, bare
// libxc or libxl-wrapped, PV or HVM, v2 or v3, an optional xl or libvirt
// container, optional zstd, then a sequence of records with their fields,
// checkpoints included. The target writes that stream with RecordWriter,
// reads it back with read_container + StreamCursor, and aborts unless every
// record comes back with the same layer, type and body (encoded here
// independently of the writer), every typed decoder returns the fields that
// went in, and the stream ends exactly after its END. It also checks that a
// refused append (over the length cap, pages not matching the entries)
// writes nothing.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <xenstream/codecs/zstd/zstd_sink.h>
#include <xenstream/codecs/zstd/zstd_source.h>
#include "fuzz/common/walk.h"
#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/record_writer.h>
#include <xenstream/libstream/records.h>
#include <xenstream/libstream/stream_cursor.h>

namespace {

using namespace xenstream;
namespace xc = format::libxc;
namespace xl = format::libxl;
using Buf = std::vector<std::byte>;

struct Expect {
  Layer layer;
  std::uint32_t type;
  Buf body;
  std::function<void(const RecordView&)> check;  // typed decoder check, may be empty
};

class Enc {
 public:
  explicit Enc(ByteOrder o) : o_(o) {}
  Enc& u32(std::uint32_t v) {
    std::array<std::byte, 4> t{};
    put_u32(t.data(), v, o_);
    b_.insert(b_.end(), t.begin(), t.end());
    return *this;
  }
  Enc& u64(std::uint64_t v) {
    std::array<std::byte, 8> t{};
    put_u64(t.data(), v, o_);
    b_.insert(b_.end(), t.begin(), t.end());
    return *this;
  }
  Enc& raw(Bytes v) {
    b_.insert(b_.end(), v.begin(), v.end());
    return *this;
  }
  Enc& raw(const std::string& s) {
    return raw(Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size()));
  }
  Buf take() { return std::move(b_); }

 private:
  ByteOrder o_;
  Buf b_;
};

Buf bytes_of(FuzzedDataProvider& p, std::size_t max) {
  const auto v = p.ConsumeBytes<std::uint8_t>(p.ConsumeIntegralInRange<std::size_t>(0, max));
  Buf b(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) b[i] = std::byte{v[i]};
  return b;
}

void must(const Expected<void>& r, const char* what) {
  FUZZ_CHECK(r.has_value(), std::string(what) + ": " + r.error().describe());
}

class Builder {
 public:
  Builder(FuzzedDataProvider& p, Sink& sink, ByteOrder order)
      : p_(p), sink_(sink), w_(sink, order), order_(order) {}

  RecordWriter& writer() { return w_; }
  std::vector<Expect>& expected() { return exp_; }

  void add(Layer layer, std::uint32_t type, Buf body,
           std::function<void(const RecordView&)> check = {}) {
    exp_.push_back({layer, type, std::move(body), std::move(check)});
  }

  // A refused append must leave the sink untouched.
  void refused(const Expected<void>& r, ErrorCode code, const char* what) {
    FUZZ_CHECK(!r.has_value(), std::string(what) + " was accepted");
    FUZZ_CHECK(r.error().code == code, std::string(what) + ": " + r.error().describe());
  }

  void page_data() {
    const auto n = p_.ConsumeIntegralInRange<std::uint32_t>(1, 6);
    static constexpr unsigned kTypes[] = {0x0, 0x1, 0x2, 0x3, 0x4, 0x9, 0xA,
                                          0xB, 0xC, 0xD, 0xE, 0xF};
    std::vector<std::uint64_t> entries;
    std::vector<Buf> pages;
    for (std::uint32_t i = 0; i < n; ++i) {
      const unsigned t = kTypes[p_.ConsumeIntegralInRange<std::size_t>(0, 11)];
      const std::uint64_t pfn = p_.ConsumeIntegral<std::uint64_t>() & xc::kPfnMask;
      entries.push_back((std::uint64_t{t} << 60) | pfn);
      if (xc::page_type_has_data(t)) {
        pages.emplace_back(xc::kPageSize, std::byte(p_.ConsumeIntegral<std::uint8_t>()));
      }
    }
    std::vector<Bytes> views(pages.begin(), pages.end());
    if (p_.ConsumeBool()) {
      // One page too many: refused, nothing written.
      const Buf extra(xc::kPageSize);
      auto more = views;
      more.push_back(Bytes(extra));
      const auto before = sink_.position();
      refused(w_.append_page_data(entries, more), ErrorCode::kUsage, "PAGE_DATA with a spare page");
      FUZZ_CHECK(sink_.position() == before, "a refused PAGE_DATA wrote bytes");
    }
    must(w_.append_page_data(entries, views), "append_page_data");
    Enc e(order_);
    e.u32(n).u32(0);
    for (std::uint64_t x : entries) e.u64(x);
    for (const Buf& pg : pages) e.raw(Bytes(pg));
    add(Layer::kLibxc, 1, e.take(), [entries, np = pages.size()](const RecordView& rec) {
      auto v = decode_page_data(rec);
      FUZZ_CHECK(v.has_value(), v.error().describe());
      FUZZ_CHECK(v->count == entries.size() && v->data_pages == np, rec.label());
      for (std::uint32_t i = 0; i < v->count; ++i) FUZZ_CHECK(v->entry(i) == entries[i], rec.label());
    });
  }

  void pv_info() {
    const auto width = p_.ConsumeIntegral<std::uint8_t>();
    const auto levels = p_.ConsumeIntegral<std::uint8_t>();
    must(w_.append_x86_pv_info(width, levels), "append_x86_pv_info");
    Buf b(8);
    b[0] = std::byte{width};
    b[1] = std::byte{levels};
    add(Layer::kLibxc, 2, std::move(b), [width, levels](const RecordView& rec) {
      auto v = decode_x86_pv_info(rec);
      FUZZ_CHECK(v && v->guest_width == width && v->pt_levels == levels && v->reserved == 0,
                 rec.label());
    });
  }

  void p2m() {
    const auto start = p_.ConsumeIntegral<std::uint32_t>();
    const auto end = p_.ConsumeIntegral<std::uint32_t>();
    std::vector<std::uint64_t> frames(p_.ConsumeIntegralInRange<std::size_t>(0, 8));
    for (auto& f : frames) f = p_.ConsumeIntegral<std::uint64_t>();
    must(w_.append_p2m_frames(start, end, frames), "append_p2m_frames");
    Enc e(order_);
    e.u32(start).u32(end);
    for (auto f : frames) e.u64(f);
    add(Layer::kLibxc, 3, e.take(), [start, end, frames](const RecordView& rec) {
      auto v = decode_p2m_frames(rec);
      FUZZ_CHECK(v && v->start_pfn == start && v->end_pfn == end && v->count() == frames.size(),
                 rec.label());
      for (std::size_t i = 0; i < frames.size(); ++i) FUZZ_CHECK(v->frame(i) == frames[i], rec.label());
    });
  }

  void vcpu(bool avoid_type5) {
    static constexpr xc::RecordType kKinds[] = {
        xc::RecordType::kX86PvVcpuBasic, xc::RecordType::kX86PvVcpuExtended,
        xc::RecordType::kX86PvVcpuXsave, xc::RecordType::kX86PvVcpuMsrs};
    auto kind = kKinds[p_.ConsumeIntegralInRange<std::size_t>(0, 3)];
    if (avoid_type5 && kind == xc::RecordType::kX86PvVcpuExtended) {
      kind = xc::RecordType::kX86PvVcpuBasic;
    }
    const auto id = p_.ConsumeIntegral<std::uint32_t>();
    const Buf blob = bytes_of(p_, 300);
    must(w_.append_vcpu(kind, id, Bytes(blob)), "append_vcpu");
    Enc e(order_);
    e.u32(id).u32(0).raw(Bytes(blob));
    add(Layer::kLibxc, static_cast<std::uint32_t>(kind), e.take(), [id, blob](const RecordView& rec) {
      auto v = decode_vcpu_blob(rec);
      FUZZ_CHECK(v && v->vcpu_id == id && v->reserved == 0 && v->blob.size() == blob.size(),
                 rec.label());
    });
  }

  void tsc() {
    const auto mode = p_.ConsumeIntegral<std::uint32_t>();
    const auto khz = p_.ConsumeIntegral<std::uint32_t>();
    const auto nsec = p_.ConsumeIntegral<std::uint64_t>();
    const auto inc = p_.ConsumeIntegral<std::uint32_t>();
    must(w_.append_tsc_info(mode, khz, nsec, inc), "append_tsc_info");
    Enc e(order_);
    e.u32(mode).u32(khz).u64(nsec).u32(inc).u32(0);
    add(Layer::kLibxc, 8, e.take(), [=](const RecordView& rec) {
      auto v = decode_tsc_info(rec);
      FUZZ_CHECK(v && v->mode == mode && v->khz == khz && v->nsec == nsec &&
                     v->incarnation == inc && v->reserved == 0,
                 rec.label());
    });
  }

  void hvm_params() {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> params(
        p_.ConsumeIntegralInRange<std::size_t>(0, 8));
    for (auto& [i, v] : params) {
      i = p_.ConsumeIntegral<std::uint64_t>();
      v = p_.ConsumeIntegral<std::uint64_t>();
    }
    must(w_.append_hvm_params(params), "append_hvm_params");
    Enc e(order_);
    e.u32(static_cast<std::uint32_t>(params.size())).u32(0);
    for (auto [i, v] : params) e.u64(i).u64(v);
    add(Layer::kLibxc, 0x0a, e.take(), [params](const RecordView& rec) {
      auto v = decode_hvm_params(rec);
      FUZZ_CHECK(v && v->count == params.size(), rec.label());
      for (std::uint32_t i = 0; i < v->count; ++i) {
        FUZZ_CHECK(v->index(i) == params[i].first && v->value(i) == params[i].second, rec.label());
      }
    });
  }

  // A record the cursor does not decode: known non-structural types,
  // unknown types and optional ones.
  void raw_libxc() {
    static constexpr std::uint32_t kTypes[] = {0x07, 0x09, 0x0b, 0x0d, 0x0f, 0x10, 0x11,
                                               0x12, 0x13, 0x7fffffff, 0x80000000, 0x80000013};
    const std::uint32_t type = kTypes[p_.ConsumeIntegralInRange<std::size_t>(0, 11)];
    append_raw(Layer::kLibxc, type);
  }

  void append_raw(Layer layer, std::uint32_t type) {
    const Buf body = bytes_of(p_, 300);
    if (p_.ConsumeBool() && !body.empty()) {
      // Over a lowered cap: refused, nothing written.
      const auto saved = w_.max_record_length;
      w_.max_record_length = static_cast<std::uint32_t>(body.size() - 1);
      const auto before = sink_.position();
      refused(w_.append(type, {Bytes(body)}), ErrorCode::kLimit, "a record over the cap");
      FUZZ_CHECK(sink_.position() == before, "a refused record wrote bytes");
      w_.max_record_length = saved;
    }
    // Split the body into up to three parts: framing must not care.
    const std::size_t a = p_.ConsumeIntegralInRange<std::size_t>(0, body.size());
    const std::size_t b = p_.ConsumeIntegralInRange<std::size_t>(a, body.size());
    const Bytes all(body);
    must(w_.append(type, {all.first(a), all.subspan(a, b - a), all.subspan(b)}), "append");
    add(layer, type, body);
  }

  void xenstore() {
    std::vector<std::pair<std::string, std::string>> pairs(
        p_.ConsumeIntegralInRange<std::size_t>(0, 4));
    for (auto& [k, v] : pairs) {
      k = no_nul(p_.ConsumeRandomLengthString(40));
      v = no_nul(p_.ConsumeRandomLengthString(40));
    }
    const auto id = p_.ConsumeIntegral<std::uint32_t>();
    const auto index = p_.ConsumeIntegral<std::uint32_t>();
    must(w_.append_xenstore(id, index, pairs), "append_xenstore");
    Enc e(order_);
    e.u32(id).u32(index);
    for (const auto& [k, v] : pairs) e.raw(k + '\0').raw(v + '\0');
    add(Layer::kLibxl, 2, e.take(), [id, index, pairs](const RecordView& rec) {
      auto em = decode_emulator(rec);
      FUZZ_CHECK(em && em->id == id && em->index == index, rec.label());
      auto got = decode_xenstore_pairs(rec, *em);
      FUZZ_CHECK(got.has_value(), got.error().describe());
      FUZZ_CHECK(*got == pairs, rec.label() + ": xenstore pairs differ");
    });
  }

  void emulator_context() {
    const auto id = p_.ConsumeIntegral<std::uint32_t>();
    const auto index = p_.ConsumeIntegral<std::uint32_t>();
    const Buf a = bytes_of(p_, 200);
    const Buf b = bytes_of(p_, 200);
    const std::array<Bytes, 2> parts{Bytes(a), Bytes(b)};
    must(w_.append_emulator(xl::RecordType::kEmulatorContext, id, index, parts), "append_emulator");
    Enc e(order_);
    e.u32(id).u32(index).raw(Bytes(a)).raw(Bytes(b));
    add(Layer::kLibxl, 3, e.take(), [id, index, n = a.size() + b.size()](const RecordView& rec) {
      auto em = decode_emulator(rec);
      FUZZ_CHECK(em && em->id == id && em->index == index && em->data.size() == n, rec.label());
    });
  }

  void checkpoint_state() {
    const auto v = p_.ConsumeIntegral<std::uint32_t>();
    must(w_.append_checkpoint_state(v), "append_checkpoint_state");
    add(Layer::kLibxl, 5, Enc(order_).u32(v).take(), [v](const RecordView& rec) {
      auto got = decode_checkpoint_state(rec);
      FUZZ_CHECK(got && *got == v, rec.label());
    });
  }

  // Records of the libxl layer that do not change the cursor's structure.
  void libxl_records(std::size_t max) {
    const std::size_t n = p_.ConsumeIntegralInRange<std::size_t>(0, max);
    for (std::size_t i = 0; i < n; ++i) {
      switch (p_.ConsumeIntegralInRange<int>(0, 2)) {
        case 0: xenstore(); break;
        case 1: emulator_context(); break;
        default: append_raw(Layer::kLibxl, p_.ConsumeBool() ? 0x06 : 0x80000001u); break;
      }
    }
  }

  void structural(Layer layer, std::uint32_t type) {
    must(w_.append(type, {}), "append");
    add(layer, type, {});
  }

 private:
  static std::string no_nul(std::string s) {
    for (char& c : s) {
      if (c == '\0') c = '@';
    }
    return s;
  }

  FuzzedDataProvider& p_;
  Sink& sink_;
  RecordWriter w_;
  ByteOrder order_;
  std::vector<Expect> exp_;
};

Buf xl_header(FuzzedDataProvider& p, ByteOrder order) {
  Buf h(format::xl::kMagic.size());
  std::memcpy(h.data(), format::xl::kMagic.data(), h.size());
  const std::string config = p.ConsumeRandomLengthString(64);
  Enc e(order);
  e.u32(format::xl::kByteOrderMark).u32(format::xl::kMandatoryStreamV2).u32(0);
  e.u32(static_cast<std::uint32_t>(config.size() + 4)).u32(static_cast<std::uint32_t>(config.size()));
  e.raw(config);
  const Buf rest = e.take();
  h.insert(h.end(), rest.begin(), rest.end());
  return h;
}

Buf libvirt_header(FuzzedDataProvider& p) {
  Buf h(format::libvirt::kMagic.size());
  std::memcpy(h.data(), format::libvirt::kMagic.data(), h.size());
  const std::string xml = p.ConsumeRandomLengthString(64);
  Enc e(ByteOrder::kLittle);
  e.u32(2).u32(static_cast<std::uint32_t>(xml.size()));
  for (int i = 0; i < 10; ++i) e.u32(0);
  e.raw(xml);
  const Buf rest = e.take();
  h.insert(h.end(), rest.begin(), rest.end());
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider p(data, size);
  const ByteOrder order = p.ConsumeBool() ? ByteOrder::kBig : ByteOrder::kLittle;
  const bool bare = p.ConsumeBool();
  const bool hvm = p.ConsumeBool();
  const std::uint32_t version = p.ConsumeBool() ? 3 : 2;
  const int container = p.ConsumeIntegralInRange<int>(0, 2);
  const bool compress = p.ConsumeBool();

  BufferSink out;
  std::unique_ptr<codecs::ZstdSink> z;
  Sink* sink = &out;
  if (compress) {
    z = std::make_unique<codecs::ZstdSink>(out, 1);
    sink = z.get();
  }
  ContainerKind kind = ContainerKind::kNone;
  if (container == 1) {
    must(sink->write(Bytes(xl_header(p, order))), "xl header");
    kind = ContainerKind::kXl;
  } else if (container == 2) {
    must(sink->write(Bytes(libvirt_header(p))), "libvirt header");
    kind = ContainerKind::kLibvirt;
  }

  Builder b(p, *sink, order);
  RecordWriter& w = b.writer();
  if (!bare) {
    must(w.write_libxl_header(), "libxl header");
    b.libxl_records(2);
    b.structural(Layer::kLibxl, 1);  // LIBXC_CONTEXT
  }
  must(w.write_image_header(version), "image header");
  must(w.write_domain_header(hvm ? 2 : 1, 4, 17), "domain header");
  bool after_checkpoint_end = false;
  const std::size_t n = p.ConsumeIntegralInRange<std::size_t>(0, 24);
  for (std::size_t i = 0; i < n && p.remaining_bytes() > 0; ++i) {
    // Right after CHECKPOINT_END in a nested HVM stream, a libxc record of
    // type 5 would be read as CHECKPOINT_STATE: the format is ambiguous
    // there, and Xen resolves it the same way. Step 8 writes nothing, so it
    // must not forget that position.
    const int step = p.ConsumeIntegralInRange<int>(0, 8);
    if (step == 8) continue;
    const bool avoid5 = after_checkpoint_end && hvm && !bare;
    after_checkpoint_end = false;
    switch (step) {
      case 0: b.page_data(); break;
      case 1: b.pv_info(); break;
      case 2: b.p2m(); break;
      case 3: b.vcpu(avoid5); break;
      case 4: b.tsc(); break;
      case 5: b.hvm_params(); break;
      case 6: b.raw_libxc(); break;
      case 7:
        b.structural(Layer::kLibxc, 0x0e);  // CHECKPOINT
        if (!bare) {
          b.libxl_records(3);
          b.structural(Layer::kLibxl, 4);  // CHECKPOINT_END
          if (hvm && p.ConsumeBool()) {
            b.checkpoint_state();
          } else {
            after_checkpoint_end = true;
          }
        }
        break;
      default: break;  // unreachable: step 8 continued above
    }
  }
  b.structural(Layer::kLibxc, 0);  // libxc END
  if (!bare) {
    b.libxl_records(3);
    auto fin = w.finish();
    FUZZ_CHECK(fin.has_value(), fin.error().describe());
    b.add(Layer::kLibxl, 0, {});
  } else {
    must(sink->flush(), "flush");
  }

  // Read it back.
  const Bytes written(out.data());
  std::unique_ptr<Source> src = std::make_unique<MemorySource>(written);
  if (compress) {
    FUZZ_CHECK(codecs::ZstdSource::sniff(written), "zstd output without the zstd magic");
    src = std::make_unique<codecs::ZstdSource>(std::move(src));
  }
  auto c = read_container(*src);
  FUZZ_CHECK(c.has_value(), c.error().describe());
  FUZZ_CHECK(c->kind == kind, "container kind");
  FUZZ_CHECK(c->payload == (bare ? PayloadKind::kLibxc : PayloadKind::kLibxl), "payload kind");
  StreamCursor cur(*src, c->payload);
  auto s = cur.start();
  FUZZ_CHECK(s.has_value(), s.error().describe());
  const auto& exp = b.expected();
  for (std::size_t i = 0; i < exp.size(); ++i) {
    FUZZ_CHECK(!cur.done(), "the stream ended after " + std::to_string(i) + " of " +
                                std::to_string(exp.size()) + " records");
    auto r = cur.next();
    FUZZ_CHECK(r.has_value(), r.error().describe());
    const Expect& e = exp[i];
    FUZZ_CHECK(r->layer == e.layer && r->type == e.type,
               r->label() + ": expected " + record_display_name(e.layer, e.type) + " in " +
                   std::string(layer_name(e.layer)));
    FUZZ_CHECK(r->body.size() == e.body.size() &&
                   std::equal(r->body.begin(), r->body.end(), e.body.begin()),
               r->label() + ": body differs");
    for (std::byte pad : r->padding) FUZZ_CHECK(pad == std::byte{0}, r->label() + ": padding");
    FUZZ_CHECK(r->end_offset() % 8 == (r->offset % 8), r->label() + ": not padded to 8");
    if (e.check) e.check(*r);
  }
  FUZZ_CHECK(cur.done(), "records after the last one written");
  auto f = cur.finish();
  FUZZ_CHECK(f.has_value(), f.error().describe());
  return 0;
}
