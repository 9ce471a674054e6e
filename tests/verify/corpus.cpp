#include "tests/verify/corpus.h"

#include <stdexcept>

#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/record_writer.h>
#include <xenstream/libstream/sink.h>

namespace xenstream::verify::testing {

// Record types, short names for the case list.
namespace t {
constexpr std::uint32_t kEnd = 0x00, kPage = 0x01, kPvInfo = 0x02, kP2m = 0x03, kBasic = 0x04,
                        kExt = 0x05, kXsave = 0x06, kSinfo = 0x07, kTsc = 0x08, kHvmCtx = 0x09,
                        kParams = 0x0a, kToolstack = 0x0b, kMsrs = 0x0c, kVerify = 0x0d,
                        kCkpt = 0x0e, kDirty = 0x0f, kSde = 0x10, kCpuid = 0x11, kMsrPol = 0x12;
constexpr std::uint32_t kXlEnd = 0, kLibxc = 1, kXs = 2, kEmu = 3, kCkEnd = 4, kCkState = 5;
}  // namespace t

void put8(Buf& b, std::uint8_t v) { b.push_back(std::byte{v}); }
void put16(Buf& b, std::uint16_t v) {
  for (int i = 0; i < 2; ++i) put8(b, static_cast<std::uint8_t>(v >> (8 * i)));
}
void put32(Buf& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) put8(b, static_cast<std::uint8_t>(v >> (8 * i)));
}
void put64(Buf& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) put8(b, static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_be16(Buf& b, std::uint16_t v) {
  put8(b, static_cast<std::uint8_t>(v >> 8));
  put8(b, static_cast<std::uint8_t>(v));
}
void put_be32(Buf& b, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) put8(b, static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_text(Buf& b, std::string_view s) {
  for (char c : s) put8(b, static_cast<std::uint8_t>(c));
}
void set32(Buf& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.at(at + i) = std::byte{static_cast<std::uint8_t>(v >> (8 * i))};
}
void set64(Buf& b, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b.at(at + i) = std::byte{static_cast<std::uint8_t>(v >> (8 * i))};
}

Item libxl_header(std::uint32_t version, std::uint32_t options) {
  Item i;
  i.kind = Item::Kind::kLibxlHeader;
  i.f1 = version;
  i.f2 = options;
  i.tag = "libxl_header";
  return i;
}
Item image_header(std::uint32_t version, std::uint16_t options) {
  Item i;
  i.kind = Item::Kind::kImageHeader;
  i.f1 = version;
  i.f2 = options;
  i.tag = "image_header";
  return i;
}
Item domain_header(std::uint32_t type, std::uint32_t major, std::uint32_t minor,
                   std::uint16_t page_shift, std::uint16_t reserved) {
  Item i;
  i.kind = Item::Kind::kDomainHeader;
  i.f1 = type;
  i.f2 = page_shift;
  i.f3 = reserved;
  i.f4 = major;
  i.f5 = minor;
  i.tag = "domain_header";
  return i;
}
Item xc(std::uint32_t type, Buf body, std::string tag) {
  Item i;
  i.layer = Layer::kLibxc;
  i.type = type;
  i.body = std::move(body);
  i.tag = std::move(tag);
  return i;
}
Item xl(std::uint32_t type, Buf body, std::string tag) {
  Item i = xc(type, std::move(body), std::move(tag));
  i.layer = Layer::kLibxl;
  return i;
}
Item raw(Buf octets, std::string tag) {
  Item i;
  i.kind = Item::Kind::kRaw;
  i.body = std::move(octets);
  i.tag = std::move(tag);
  return i;
}

namespace {

void check(Expected<void> r) {
  if (!r) throw std::runtime_error(r.error().describe());
}

Buf xl_container_bytes(const XlContainer& c) {
  const ByteOrder o = c.big_endian ? ByteOrder::kBig : ByteOrder::kLittle;
  Buf out;
  put_text(out, format::xl::kMagic);
  Buf config;
  put_text(config, c.config);
  if (c.json_nul && (c.mandatory_flags & 1) != 0 && !c.config.empty()) put8(config, 0);
  Buf data(4);
  put_u32(data.data(), c.config_len.value_or(static_cast<std::uint32_t>(config.size())), o);
  data.insert(data.end(), config.begin(), config.end());
  data.insert(data.end(), c.extra.begin(), c.extra.end());
  const std::uint32_t odl = c.optional_data_len.value_or(static_cast<std::uint32_t>(data.size()));
  std::byte f[16];
  put_u32(f, c.byteorder.value_or(format::xl::kByteOrderMark), o);
  put_u32(f + 4, c.mandatory_flags, o);
  put_u32(f + 8, c.optional_flags, o);
  put_u32(f + 12, odl, o);
  out.insert(out.end(), f, f + 16);
  if (odl < data.size()) data.resize(odl);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Buf libvirt_container_bytes(const LibvirtContainer& c) {
  Buf out;
  put_text(out, format::libvirt::kMagic);
  Buf xml;
  put_text(xml, c.xml);
  if (c.xml_nul) put8(xml, 0);
  put32(out, c.version);
  put32(out, c.xml_len.value_or(static_cast<std::uint32_t>(xml.size())));
  put32(out, c.unused0);
  for (int i = 1; i < 10; ++i) put32(out, 0);
  out.insert(out.end(), xml.begin(), xml.end());
  return out;
}

}  // namespace

Buf Stream::bytes(std::map<std::string, std::uint64_t>* offsets) const {
  BufferSink sink;
  if (xl_container) check(sink.write(Bytes(xl_container_bytes(*xl_container))));
  if (libvirt_container) check(sink.write(Bytes(libvirt_container_bytes(*libvirt_container))));
  if (offsets) (*offsets)["payload"] = sink.position();
  RecordWriter wxl(sink, ByteOrder::kLittle);
  RecordWriter wxc(sink, ByteOrder::kLittle);
  std::unique_ptr<RecordWriter> big_xl, big_xc;
  RecordWriter* pxl = &wxl;
  RecordWriter* pxc = &wxc;
  std::map<std::string, int> seen;
  for (const Item& it : items) {
    if (offsets && !it.tag.empty()) {
      std::string tag = it.tag;
      if (seen[it.tag]++ > 0) tag += "#" + std::to_string(seen[it.tag] - 1);
      (*offsets)[tag] = sink.position();
    }
    switch (it.kind) {
      case Item::Kind::kLibxlHeader:
        if ((it.f2 & 1) != 0) {
          big_xl = std::make_unique<RecordWriter>(sink, ByteOrder::kBig);
          pxl = big_xl.get();
        }
        check(pxl->write_libxl_header(it.f2, it.f1));
        break;
      case Item::Kind::kImageHeader:
        if ((it.f2 & 1) != 0) {
          big_xc = std::make_unique<RecordWriter>(sink, ByteOrder::kBig);
          pxc = big_xc.get();
        }
        check(pxc->write_image_header(it.f1, static_cast<std::uint16_t>(it.f2)));
        break;
      case Item::Kind::kDomainHeader:
        check(pxc->write_domain_header(it.f1, it.f4, it.f5, static_cast<std::uint16_t>(it.f2),
                                       static_cast<std::uint16_t>(it.f3)));
        break;
      case Item::Kind::kRecord: {
        RecordWriter* w = it.layer == Layer::kLibxl ? pxl : pxc;
        w->max_record_length = 0xFFFFFFFFu;
        check(w->append(it.type, {Bytes(it.body)}));
        break;
      }
      case Item::Kind::kRaw:
        check(sink.write(Bytes(it.body)));
        break;
    }
  }
  return sink.data();
}

std::size_t Stream::find(Layer layer, std::uint32_t type, int nth) const {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Item& it = items[i];
    if (it.kind == Item::Kind::kRecord && it.layer == layer && it.type == type && nth-- == 0) return i;
  }
  throw std::runtime_error("corpus: no such record");
}
void Stream::erase(Layer layer, std::uint32_t type, int nth) {
  items.erase(items.begin() + static_cast<std::ptrdiff_t>(find(layer, type, nth)));
}
void Stream::insert_before(Layer layer, std::uint32_t type, Item item, int nth) {
  items.insert(items.begin() + static_cast<std::ptrdiff_t>(find(layer, type, nth)), std::move(item));
}
void Stream::insert_after(Layer layer, std::uint32_t type, Item item, int nth) {
  items.insert(items.begin() + static_cast<std::ptrdiff_t>(find(layer, type, nth)) + 1,
               std::move(item));
}

// ---------------------------------------------------------------------------
// Bodies.

Buf page_data(const std::vector<std::uint64_t>& entries) {
  Buf b;
  put32(b, static_cast<std::uint32_t>(entries.size()));
  put32(b, 0);
  for (std::uint64_t e : entries) put64(b, e);
  for (std::uint64_t e : entries) {
    const unsigned type = static_cast<unsigned>(e >> 60);
    if ((type & 7) >= 1 && (type & 7) <= 4 && type < 0xD) {
      // A page table: one present entry, referring to its own pfn (inside
      // every p2m here); the rest not present (LIBXC-PAGE-11).
      put64(b, ((e & 0x000fffffffffffffull) << 12) | 0x63);
      for (int i = 1; i < 512; ++i) put64(b, 0);
    } else if (type < 5 || (type > 8 && type < 0xD)) {
      for (int i = 0; i < 4096; ++i) put8(b, static_cast<std::uint8_t>(e * 31 + i));
    }
  }
  return b;
}

Buf pv_info(std::uint8_t width, std::uint8_t levels) {
  Buf b(8);
  b[0] = std::byte{width};
  b[1] = std::byte{levels};
  return b;
}

Buf p2m_frames(std::uint32_t start, std::uint32_t end, const std::vector<std::uint64_t>& frames) {
  Buf b;
  put32(b, start);
  put32(b, end);
  for (std::uint64_t f : frames) put64(b, f);
  return b;
}

Buf vcpu(std::uint32_t id, Buf blob) {
  Buf b;
  put32(b, id);
  put32(b, 0);
  b.insert(b.end(), blob.begin(), blob.end());
  return b;
}

Buf vcpu_basic64(std::uint32_t id, std::uint64_t start_info_pfn, std::uint64_t cr3_pfn,
                 std::uint64_t gdt_ents, std::uint64_t gdt_frame) {
  Buf ctx(5168);
  set64(ctx, 616, start_info_pfn);
  set64(ctx, 4832, gdt_frame);
  set64(ctx, 4960, gdt_ents);
  set64(ctx, 5008, cr3_pfn << 12);
  return vcpu(id, std::move(ctx));
}

Buf vcpu_basic32(std::uint32_t id, std::uint32_t start_info_pfn, std::uint32_t cr3_pfn) {
  Buf ctx(2800);
  set32(ctx, 524, start_info_pfn);
  set32(ctx, 2728, (cr3_pfn << 12) | (cr3_pfn >> 20));
  return vcpu(id, std::move(ctx));
}

Buf tsc_info(std::uint32_t mode, std::uint32_t khz, std::uint64_t nsec, std::uint32_t incarnation) {
  Buf b;
  put32(b, mode);
  put32(b, khz);
  put64(b, nsec);
  put32(b, incarnation);
  put32(b, 0);
  return b;
}

Buf hvm_params(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& params) {
  Buf b;
  put32(b, static_cast<std::uint32_t>(params.size()));
  put32(b, 0);
  for (const auto& [i, v] : params) {
    put64(b, i);
    put64(b, v);
  }
  return b;
}

Buf cpuid_policy(const std::vector<std::pair<std::uint32_t, std::uint32_t>>& leaves) {
  Buf b;
  for (const auto& [leaf, sub] : leaves) {
    put32(b, leaf);
    put32(b, sub);
    for (int i = 0; i < 4; ++i) put32(b, 0x01020304u * (leaf + 1));
  }
  return b;
}

Buf msr_policy(const std::vector<std::uint32_t>& indexes) {
  Buf b;
  for (std::uint32_t i : indexes) {
    put32(b, i);
    put32(b, 0);
    put64(b, 0x1234);
  }
  return b;
}

Buf emulator(std::uint32_t id, std::uint32_t index, const Buf& data) {
  Buf b;
  put32(b, id);
  put32(b, index);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

Buf xenstore(const std::vector<std::pair<std::string, std::string>>& pairs) {
  Buf b;
  for (const auto& [k, v] : pairs) {
    put_text(b, k);
    put8(b, 0);
    put_text(b, v);
    put8(b, 0);
  }
  return b;
}

std::vector<HvmEntry> hvm_entries(unsigned vcpus) {
  std::vector<HvmEntry> e;
  Buf header;
  put32(header, 0x54381286);
  put32(header, 1);
  put64(header, 0x0123456789abcdefull);
  put32(header, 0x000806ec);
  put32(header, 2400000);
  e.push_back({1, 0, header});
  auto per_vcpu = [&](std::uint16_t code, std::size_t size) {
    for (std::uint16_t v = 0; v < vcpus; ++v) e.push_back({code, v, Buf(size)});
  };
  auto per_domain = [&](std::uint16_t code, std::size_t size, std::uint16_t inst = 0) {
    e.push_back({code, inst, Buf(size)});
  };
  per_vcpu(2, 1032);      // CPU
  per_domain(3, 8, 0);    // PIC master
  per_domain(3, 8, 1);    // PIC slave
  per_domain(4, 400);     // IOAPIC
  per_vcpu(5, 32);        // LAPIC
  per_vcpu(6, 1024);      // LAPIC_REGS
  per_domain(7, 16);      // PCI_IRQ
  per_domain(8, 8);       // ISA_IRQ
  per_domain(9, 8);       // PCI_LINK
  per_domain(10, 56);     // PIT
  per_domain(11, 24);     // RTC
  per_domain(12, 1048);   // HPET
  per_domain(13, 8);      // PMTIMER
  per_vcpu(14, 240);      // MTRR
  per_vcpu(16, 600);      // CPU_XSAVE
  per_vcpu(18, 32);       // VMCE_VCPU
  per_vcpu(19, 8);        // TSC_ADJUST
  Buf msr;
  put32(msr, 1);
  put32(msr, 0);
  put32(msr, 0xc0000103);
  put32(msr, 0);
  put64(msr, 7);
  for (std::uint16_t v = 0; v < vcpus; ++v) e.push_back({20, v, msr});  // CPU_MSR
  return e;
}

Buf hvm_blob(const std::vector<HvmEntry>& entries, bool with_end) {
  Buf b;
  for (const auto& e : entries) {
    put16(b, e.code);
    put16(b, e.instance);
    put32(b, static_cast<std::uint32_t>(e.body.size()));
    b.insert(b.end(), e.body.begin(), e.body.end());
  }
  if (with_end) put64(b, 0);
  return b;
}

std::vector<QemuTok> qemu_sections() {
  auto payload = [](std::size_t n) {
    Buf p;
    put32(p, 0);  // zeros and small values, as real payloads have
    put32(p, 1);
    for (std::size_t i = 8; i < n; ++i) put8(p, static_cast<std::uint8_t>(0x40 + i % 23));
    return p;
  };
  return {
      {0x04, 0, "timer", 0, 2, payload(24)},
      {0x04, 3, "cpu_common", 0, 1, payload(13)},
      {0x04, 4, "cpu", 0, 12, payload(101)},
      {0x04, 17, "0000:00:01.3/piix4_pm", 0, 3, payload(57)},
      {0x04, 22, "0000:00:02.0/xen-platform", 0, 4, payload(9)},
  };
}

Buf qemu_blob(const std::vector<QemuTok>& toks, bool with_eof) {
  Buf b;
  put_be32(b, 0x5145564D);
  put_be32(b, 3);
  for (const auto& k : toks) {
    put8(b, k.type);
    if (k.type == 0x01 || k.type == 0x04) {
      put_be32(b, k.section_id);
      put8(b, static_cast<std::uint8_t>(k.idstr.size()));
      put_text(b, k.idstr);
      put_be32(b, k.instance);
      put_be32(b, k.version);
    } else if (k.type == 0x02 || k.type == 0x03) {
      put_be32(b, k.section_id);
    }
    b.insert(b.end(), k.payload.begin(), k.payload.end());
    if (k.footer) {
      put8(b, 0x7E);
      put_be32(b, k.section_id);
    }
  }
  if (with_eof) put8(b, 0);
  return b;
}

// ---------------------------------------------------------------------------
// Valid base streams.

namespace {

constexpr std::uint64_t kXtab = 0xFull << 60;

std::vector<Item> hvm_libxc_static() {
  return {xc(t::kCpuid, cpuid_policy({{0, 0xffffffff}, {1, 0xffffffff}, {7, 0}})),
          xc(t::kMsrPol, msr_policy({0xce, 0x10a})), xc(t::kSde)};
}

std::vector<Item> hvm_checkpoint_records(std::uint64_t first_pfn, std::string tag) {
  std::vector<std::uint64_t> pfns;
  for (std::uint64_t p = first_pfn; p < first_pfn + 4; ++p) pfns.push_back(p);
  return {xc(t::kPage, page_data(pfns), tag), xc(t::kTsc, tsc_info()),
          xc(t::kHvmCtx, hvm_blob(hvm_entries(2)), "hvmctx"),
          xc(t::kParams, hvm_params({{1, 0xfeffc}, {5, 0xfeff0}, {6, 0xfeff1}, {17, 0xfefff}}),
             "params")};
}

}  // namespace

std::string xl_json_config(const std::string& type, int max_vcpus) {
  return "{\n    \"c_info\": {\n        \"type\": \"" + type +
         "\",\n        \"name\": \"guest1\"\n    },\n    \"b_info\": {\n        \"max_vcpus\": " +
         std::to_string(max_vcpus) + ",\n        \"max_memkb\": 1048576\n    }\n}\n";
}

Stream hvm_stream() {
  Stream s;
  s.items = {libxl_header(), xl(t::kLibxc, {}, "libxc_context"), image_header(3), domain_header(2)};
  for (auto& i : hvm_libxc_static()) s.items.push_back(i);
  s.items.push_back(xc(t::kPage, page_data({0, 1, 2, 3, 4, 5, 6, 7, kXtab | 0x100}), "pd0"));
  s.items.push_back(xc(t::kPage, page_data({8, 9, 10, 11, 0}), "pd1"));
  s.items.push_back(xc(t::kTsc, tsc_info(), "tsc"));
  s.items.push_back(xc(t::kHvmCtx, hvm_blob(hvm_entries(2)), "hvmctx"));
  s.items.push_back(
      xc(t::kParams, hvm_params({{1, 0xfeffc}, {5, 0xfeff0}, {6, 0xfeff1}, {17, 0xfefff}}), "params"));
  s.items.push_back(xc(t::kEnd, {}, "xc_end"));
  s.items.push_back(xl(t::kEmu, emulator(2, 0, qemu_blob(qemu_sections())), "emuctx"));
  s.items.push_back(xl(t::kXlEnd, {}, "xl_end"));
  return s;
}

Stream pv_stream() {
  Buf ext(64);
  set32(ext, 0, 0);
  set32(ext, 4, 64);
  Buf xsave(16 + 576 + 256);
  Buf msrs;
  for (std::uint32_t m : {0xc0000080u, 0xc0000081u}) {
    put32(msrs, m);
    put32(msrs, 0);
    put64(msrs, 0x55);
  }
  Stream s;
  s.items = {libxl_header(), xl(t::kLibxc, {}, "libxc_context"), image_header(3), domain_header(1),
             xc(t::kPvInfo, pv_info(8, 4), "pvinfo"),
             xc(t::kCpuid, cpuid_policy({{0, 0xffffffff}, {1, 0xffffffff}})),
             xc(t::kMsrPol, msr_policy({0xce})), xc(t::kSde),
             xc(t::kP2m, p2m_frames(0, 0x1ff, {6}), "p2m"),
             xc(t::kPage,
                page_data({0, 1, 2, 3, (0xCull << 60) | 4, (0x1ull << 60) | 5, 6, kXtab | 7}), "pd0"),
             xc(t::kTsc, tsc_info(), "tsc"), xc(t::kSinfo, Buf(4096), "sinfo"),
             xc(t::kBasic, vcpu_basic64(0, 2, 4, 1, 3), "basic"), xc(t::kExt, vcpu(0, ext), "ext"),
             xc(t::kXsave, vcpu(0, xsave), "xsave"), xc(t::kMsrs, vcpu(0, msrs), "msrs"),
             xc(t::kEnd, {}, "xc_end"), xl(t::kXlEnd, {}, "xl_end")};
  return s;
}

Stream pv32_stream() {
  Stream s;
  s.items = {libxl_header(), xl(t::kLibxc), image_header(3), domain_header(1),
             xc(t::kPvInfo, pv_info(4, 3)), xc(t::kSde), xc(t::kP2m, p2m_frames(0, 0x3ff, {6})),
             xc(t::kPage, page_data({0, 1, 2, (0xBull << 60) | 3, 6}), "pd0"),
             xc(t::kTsc, tsc_info()), xc(t::kSinfo, Buf(4096)),
             xc(t::kBasic, vcpu_basic32(0, 2, 3), "basic"), xc(t::kEnd), xl(t::kXlEnd)};
  return s;
}

Stream hvm_v2_bare() {
  Stream s;
  s.items = {image_header(2), domain_header(2, 4, 6),
             xc(t::kPage, page_data({0, 1, 2, 3}), "pd0"), xc(t::kTsc, tsc_info()),
             xc(t::kHvmCtx, hvm_blob(hvm_entries(1)), "hvmctx"),
             xc(t::kParams, hvm_params({{1, 0xfeffc}, {17, 0xfefff}}), "params"), xc(t::kEnd, {}, "xc_end")};
  return s;
}

Stream remus_stream(int checkpoints) {
  Stream s;
  s.items = {libxl_header(), xl(t::kLibxc), image_header(3), domain_header(2)};
  for (auto& i : hvm_libxc_static()) s.items.push_back(i);
  for (int c = 0; c < checkpoints; ++c) {
    for (auto& i : hvm_checkpoint_records(static_cast<std::uint64_t>(c) * 4, "pd")) s.items.push_back(i);
    s.items.push_back(xc(t::kCkpt, {}, "ckpt"));
    s.items.push_back(xl(t::kEmu, emulator(2, 0, qemu_blob(qemu_sections())), "emuctx"));
    s.items.push_back(xl(t::kCkEnd, {}, "ckend"));
  }
  return s;
}

Stream colo_stream(int checkpoints) {
  Stream s = remus_stream(checkpoints);
  for (int c = checkpoints - 1; c >= 0; --c) {
    Buf state;
    put32(state, 0);
    s.insert_after(Layer::kLibxl, t::kCkEnd, xl(t::kCkState, state, "ckstate"), c);
  }
  return s;
}

// ---------------------------------------------------------------------------
// The corpus.

namespace {

using Offsets = std::map<std::string, std::uint64_t>;
using Edit = std::function<void(Buf&, const Offsets&)>;

std::string ref_format_of(const Stream& s) {
  if (s.xl_container) return "xl";
  if (s.libvirt_container) return "libvirt";
  if (!s.items.empty() && s.items[0].kind == Item::Kind::kLibxlHeader) return "libxl";
  return "libxc";
}

struct Builder {
  std::vector<Case> cases;

  void add(std::string name, const Stream& s, std::optional<std::string> rule, Edit edit = {},
           FormatHint hint = FormatHint::kAuto) {
    Case c;
    c.name = std::move(name);
    c.bytes = s.bytes(&c.offsets);
    if (edit) edit(c.bytes, c.offsets);
    c.rule = std::move(rule);
    c.ref_format = ref_format_of(s);
    c.hint = hint;
    cases.push_back(std::move(c));
  }
  void add_mode(std::string name, const Stream& s, std::optional<std::string> rule, std::string mode,
                Edit edit = {}) {
    add(std::move(name), s, std::move(rule), std::move(edit));
    cases.back().mode = std::move(mode);
  }
  void add_bytes(std::string name, Buf bytes, std::optional<std::string> rule,
                 std::string ref_format = "libxc") {
    Case c;
    c.name = std::move(name);
    c.bytes = std::move(bytes);
    c.rule = std::move(rule);
    c.ref_format = std::move(ref_format);
    cases.push_back(std::move(c));
  }
};

// Replaces the body of the n-th (layer, type) record.
Stream with_body(Stream s, Layer layer, std::uint32_t type, Buf body, int nth = 0) {
  s.at(layer, type, nth).body = std::move(body);
  return s;
}

Stream with_hvm_blob(const Buf& blob) {
  return with_body(hvm_stream(), Layer::kLibxc, t::kHvmCtx, blob);
}

Stream with_qemu_blob(const Buf& blob) {
  return with_body(hvm_stream(), Layer::kLibxl, t::kEmu, emulator(2, 0, blob));
}

Stream with_xenstore(const Buf& data) {
  Stream s = hvm_stream();
  s.insert_before(Layer::kLibxl, t::kEmu, xl(t::kXs, emulator(2, 0, data)));
  return s;
}

Buf u32_body(std::uint32_t v) {
  Buf b;
  put32(b, v);
  return b;
}

std::vector<Case> build() {
  Builder b;
  const Layer X = Layer::kLibxc;
  const Layer L = Layer::kLibxl;

  // ---- valid streams
  b.add("valid-hvm", hvm_stream(), std::nullopt);
  b.add("valid-pv", pv_stream(), std::nullopt);
  b.add("valid-pv32", pv32_stream(), std::nullopt);
  b.add("valid-hvm-v2-bare", hvm_v2_bare(), std::nullopt);
  {
    Stream s = hvm_stream();
    s.xl_container = XlContainer{};
    s.xl_container->config = xl_json_config();
    b.add("valid-xl", s, std::nullopt);
  }
  {
    Stream s = hvm_stream();
    s.libvirt_container = LibvirtContainer{};
    s.libvirt_container->xml =
        "<domain type='xen'>\n  <name>guest1</name>\n  <vcpu placement='static'>2</vcpu>\n"
        "  <os>\n    <type arch='x86_64' machine='xenfv'>hvm</type>\n  </os>\n</domain>\n";
    b.add("valid-libvirt", s, std::nullopt);
  }
  b.add("valid-remus", remus_stream(3), std::nullopt);
  b.add("valid-colo", colo_stream(3), std::nullopt);
  b.add("valid-xenstore",
        with_xenstore(xenstore({{"physmap/f0000000/start_addr", "f0000000"},
                                {"physmap/f0000000/size", "800000"},
                                {"physmap/f0000000/name", "vga.vram"}})),
        std::nullopt);
  {
    Stream s = hvm_stream();
    s.items[0] = libxl_header(2, 2);  // LEGACY
    s.items[3] = domain_header(2, 0, 1);
    s.erase(X, t::kCpuid);
    s.erase(X, t::kMsrPol);
    s.at(L, t::kEmu).body = emulator(0, 0, qemu_blob(qemu_sections()));
    b.add("valid-legacy-converted", s, std::nullopt);
  }
  {
    Stream s = hvm_stream();
    std::swap(s.items[s.find(X, t::kHvmCtx)], s.items[s.find(X, t::kParams)]);
    b.add("valid-hvm-params-before-context", s, std::nullopt);
  }
  {
    Stream s = hvm_stream();
    s.insert_before(X, t::kTsc, xc(t::kVerify));
    s.insert_before(X, t::kTsc, xc(t::kPage, page_data({0, 1, 2, 3})));
    b.add("valid-verify-mode", s, std::nullopt);
  }

  // ---- STREAM
  b.add_bytes("stream-01-empty", {}, "STREAM-01");
  {
    Buf legacy;
    put64(legacy, 0x1000);  // p2m_size, 64-bit toolstack
    put32(legacy, 2);       // a page batch of 2
    put64(legacy, 0);
    put64(legacy, 1);
    legacy.resize(legacy.size() + 8192, std::byte{0x11});
    put32(legacy, 0);
    b.add_bytes("stream-02-legacy", legacy, "STREAM-02");
  }
  {
    Buf junk;
    put_text(junk, "this is a text file, not a Xen stream\n");
    b.add_bytes("stream-03-unknown", junk, "STREAM-03");
  }
  b.add("stream-04-truncated-record", hvm_stream(), "STREAM-04",
        [](Buf& d, const Offsets& o) { d.resize(o.at("pd0") + 100); });
  b.add("stream-05-no-end", hvm_stream(), "STREAM-05",
        [](Buf& d, const Offsets& o) { d.resize(o.at("xc_end")); });
  b.add("stream-07-no-libxl-end", hvm_stream(), "STREAM-07",
        [](Buf& d, const Offsets& o) { d.resize(o.at("xl_end")); });
  b.add("stream-06-trailing", hvm_stream(), "STREAM-06",
        [](Buf& d, const Offsets&) { d.resize(d.size() + 8, std::byte{0x5a}); });

  // ---- xl header
  b.add("cont-xl-01-not-xl", hvm_stream(), "CONT-XL-01", {}, FormatHint::kXl);
  auto xl_case = [&](std::string name, std::string rule, std::function<void(XlContainer&)> f,
                     std::string config = xl_json_config()) {
    Stream s = hvm_stream();
    s.xl_container = XlContainer{};
    s.xl_container->config = std::move(config);
    f(*s.xl_container);
    b.add(std::move(name), s, std::move(rule));
  };
  xl_case("cont-xl-02-byteorder", "CONT-XL-02", [](XlContainer& c) { c.byteorder = 0x11223344; });
  xl_case("cont-xl-03-big-endian", "CONT-XL-03", [](XlContainer& c) { c.big_endian = true; });
  xl_case("cont-xl-04-mandatory", "CONT-XL-04", [](XlContainer& c) { c.mandatory_flags = 7; });
  xl_case("cont-xl-05-optional-flags", "CONT-XL-05", [](XlContainer& c) { c.optional_flags = 1; });
  xl_case("cont-xl-06-optional-data-cap", "CONT-XL-06",
          [](XlContainer& c) { c.optional_data_len = (16u << 20) + 1; });
  xl_case("cont-xl-07-optional-data-short", "CONT-XL-07",
          [](XlContainer& c) { c.optional_data_len = 2; });
  xl_case("cont-xl-08-config-len", "CONT-XL-08", [](XlContainer& c) { c.config_len = 100000; });
  xl_case("cont-xl-09-no-nul", "CONT-XL-09", [](XlContainer& c) { c.json_nul = false; });
  xl_case("cont-xl-10-bad-json", "CONT-XL-10", [](XlContainer&) {}, "{\"c_info\": ");
  xl_case("cont-xl-11-extension", "CONT-XL-11", [](XlContainer& c) { c.extra = Buf(8); });
  xl_case("cont-xl-12-streamv2-clear", "CONT-XL-12", [](XlContainer& c) { c.mandatory_flags = 1; });

  // ---- libvirt header
  b.add("cont-lv-01-not-libvirt", hvm_stream(), "CONT-LV-01", {}, FormatHint::kLibvirt);
  auto lv_case = [&](std::string name, std::string rule, std::function<void(LibvirtContainer&)> f) {
    Stream s = hvm_stream();
    s.libvirt_container = LibvirtContainer{};
    s.libvirt_container->xml = "<domain type='xen'><name>g</name><os><type>hvm</type></os></domain>";
    f(*s.libvirt_container);
    b.add(std::move(name), s, std::move(rule));
  };
  lv_case("cont-lv-02-version", "CONT-LV-02", [](LibvirtContainer& c) { c.version = 3; });
  lv_case("cont-lv-03-empty-xml", "CONT-LV-03", [](LibvirtContainer& c) {
    c.xml.clear();
    c.xml_nul = false;
  });
  lv_case("cont-lv-04-xml-cap", "CONT-LV-04", [](LibvirtContainer& c) { c.xml_len = (16u << 20) + 1; });
  lv_case("cont-lv-05-unused", "CONT-LV-05", [](LibvirtContainer& c) { c.unused0 = 1; });
  lv_case("cont-lv-06-no-nul", "CONT-LV-06", [](LibvirtContainer& c) { c.xml_nul = false; });
  lv_case("cont-lv-07-version-1", "CONT-LV-07", [](LibvirtContainer& c) { c.version = 1; });

  // ---- libxl header and framing
  b.add("libxl-hdr-01-not-libxl", hvm_v2_bare(), "LIBXL-HDR-01", {}, FormatHint::kLibxl);
  {
    Stream s = hvm_stream();
    s.items[0] = libxl_header(3, 0);
    b.add("libxl-hdr-02-version", s, "LIBXL-HDR-02");
  }
  {
    Stream s = hvm_stream();  // libxl records written big-endian, libxc little-endian
    s.items[0] = libxl_header(2, 1);
    s.erase(L, t::kEmu);
    b.add("libxl-hdr-03-big-endian", s, "LIBXL-HDR-03");
  }
  {
    Stream s = hvm_stream();
    s.items[0] = libxl_header(2, 4);
    b.add("libxl-hdr-04-reserved-options", s, "LIBXL-HDR-04");
  }
  b.add("libxl-rec-01-length-cap", hvm_stream(), "LIBXL-REC-01",
        [](Buf& d, const Offsets& o) { set32(d, o.at("emuctx") + 4, 0x08000001); });
  b.add("libxl-rec-02-padding", colo_stream(1), "LIBXL-REC-02",
        [](Buf& d, const Offsets& o) { d.at(o.at("ckstate") + 8 + 4 + 1) = std::byte{0x01}; });
  {
    Stream s = hvm_stream();
    s.insert_before(L, t::kXlEnd, xl(6));
    b.add("libxl-rec-03-unknown", s, "LIBXL-REC-03");
  }
  {
    Stream s = hvm_stream();
    s.insert_before(L, t::kXlEnd, xl(0x80000006u));
    b.add("libxl-rec-04-optional", s, "LIBXL-REC-04");
  }
  b.add("libxl-rec-05-end-body", with_body(hvm_stream(), L, t::kXlEnd, Buf(8)), "LIBXL-REC-05");

  // ---- libxl order
  {
    Stream s;
    s.items = {libxl_header(), xl(t::kXlEnd)};
    b.add("libxl-order-01-no-libxc", s, "LIBXL-ORDER-01");
  }
  {
    Stream s = hvm_stream();
    std::vector<Item> again(s.items.begin() + 1, s.items.begin() + s.find(X, t::kEnd) + 1);
    s.items.insert(s.items.begin() + s.find(L, t::kEmu), again.begin(), again.end());
    b.add("libxl-order-02-second-libxc", s, "LIBXL-ORDER-02");
  }
  {
    Stream s = hvm_stream();
    Item emu = s.items[s.find(L, t::kEmu)];
    s.erase(L, t::kEmu);
    s.insert_before(L, t::kLibxc, emu);
    b.add("libxl-order-03-emulator-first", s, "LIBXL-ORDER-03");
  }
  {
    Stream s = pv_stream();
    s.insert_before(L, t::kXlEnd, xl(t::kEmu, emulator(2, 0, qemu_blob(qemu_sections()))));
    b.add("libxl-order-04-emulator-pv", s, "LIBXL-ORDER-04");
  }
  {
    Stream s = remus_stream(1);
    s.at(L, t::kCkEnd).type = t::kXlEnd;
    b.add("libxl-order-05-end-in-checkpoint", s, "LIBXL-ORDER-05");
  }

  // ---- emulator records
  b.add("libxl-emu-01-short", with_body(hvm_stream(), L, t::kEmu, Buf(4)), "LIBXL-EMU-01");
  b.add("libxl-emu-02-id", with_body(hvm_stream(), L, t::kEmu, emulator(3, 0, qemu_blob(qemu_sections()))),
        "LIBXL-EMU-02");
  b.add("libxl-emu-03-id-0", with_body(hvm_stream(), L, t::kEmu, emulator(0, 0, qemu_blob(qemu_sections()))),
        "LIBXL-EMU-03");
  b.add("libxl-emu-04-index", with_body(hvm_stream(), L, t::kEmu, emulator(2, 1, qemu_blob(qemu_sections()))),
        "LIBXL-EMU-04");
  {
    Stream s = hvm_stream();
    s.insert_after(L, t::kEmu, s.items[s.find(L, t::kEmu)]);
    b.add("libxl-emu-05-twice", s, "LIBXL-EMU-05");
  }
  {
    Stream s = hvm_stream();
    s.erase(L, t::kEmu);
    s.xl_container = XlContainer{};
    s.xl_container->config = xl_json_config("hvm");
    b.add("libxl-emu-06-no-context", s, "LIBXL-EMU-06");
  }

  // ---- xenstore data
  auto xs = [&](std::string name, std::string rule, std::string_view data) {
    Buf d;
    put_text(d, data);
    b.add(std::move(name), with_xenstore(d), std::move(rule));
  };
  using namespace std::string_view_literals;
  xs("libxl-xs-01-key-no-nul", "LIBXL-XS-01", "physmap/1/size\0" "800000\0" "physmap/1/name"sv);
  xs("libxl-xs-02-empty-key", "LIBXL-XS-02", "\0" "value\0"sv);
  xs("libxl-xs-03-absolute-key", "LIBXL-XS-03", "/local/domain/0/x\0" "1\0"sv);
  xs("libxl-xs-04-no-value", "LIBXL-XS-04", "physmap/1/size\0" "800000\0" "physmap/1/name\0"sv);
  xs("libxl-xs-05-key-charset", "LIBXL-XS-05", "physmap/1/bad key\0" "1\0"sv);
  xs("libxl-xs-06-value-charset", "LIBXL-XS-06", "physmap/1/name\0" "vga\x01" "ram\0"sv);
  xs("libxl-xs-07-duplicate", "LIBXL-XS-07", "physmap/1/size\0" "1\0" "physmap/1/size\0" "2\0"sv);

  // ---- libxl checkpoint records
  {
    Stream s = hvm_stream();
    s.insert_before(L, t::kXlEnd, xl(t::kCkEnd));
    b.add("libxl-ckpt-01-stray-end", s, "LIBXL-CKPT-01");
  }
  b.add("libxl-ckpt-02-state-length",
        with_body(colo_stream(1), L, t::kCkState, Buf(8)), "LIBXL-CKPT-02");
  {
    Stream s = hvm_stream();
    s.insert_before(L, t::kXlEnd, xl(t::kCkState, u32_body(0)));
    b.add("libxl-ckpt-03-stray-state", s, "LIBXL-CKPT-03");
  }
  b.add("libxl-ckpt-04-state-value", with_body(colo_stream(2), L, t::kCkState, u32_body(2)),
        "LIBXL-CKPT-04");
  {
    Stream s = colo_stream(3);
    s.erase(L, t::kCkState, 1);
    b.add("libxl-ckpt-05-mixed", s, "LIBXL-CKPT-05");
  }

  // ---- libxc headers
  b.add("libxc-ihdr-01-marker", hvm_stream(), "LIBXC-IHDR-01",
        [](Buf& d, const Offsets& o) { d.at(o.at("image_header") + 3) = std::byte{0}; });
  b.add("libxc-ihdr-02-id", hvm_stream(), "LIBXC-IHDR-02",
        [](Buf& d, const Offsets& o) { d.at(o.at("image_header") + 11) = std::byte{'G'}; });
  {
    Stream s = hvm_stream();
    s.items[2] = image_header(4);
    b.add("libxc-ihdr-03-version", s, "LIBXC-IHDR-03");
  }
  {
    Stream s;  // a whole big-endian libxc image; the HVM context blob stays little-endian
    s.items = {image_header(3, 1), domain_header(2), xc(t::kSde),
               xc(t::kHvmCtx, hvm_blob(hvm_entries(1))), xc(t::kEnd)};
    b.add("libxc-ihdr-04-big-endian", s, "LIBXC-IHDR-04");
  }
  {
    Stream s = hvm_stream();
    s.items[2] = image_header(3, 2);
    b.add("libxc-ihdr-05-options", s, "LIBXC-IHDR-05");
  }
  b.add("libxc-ihdr-06-reserved", hvm_stream(), "LIBXC-IHDR-06",
        [](Buf& d, const Offsets& o) { d.at(o.at("image_header") + 23) = std::byte{1}; });
  {
    Stream s = hvm_stream();
    s.items[3] = domain_header(3);
    b.add("libxc-dhdr-01-type", s, "LIBXC-DHDR-01");
  }
  {
    Stream s = hvm_stream();
    s.items[3] = domain_header(2, 4, 17, 13);
    b.add("libxc-dhdr-02-page-shift", s, "LIBXC-DHDR-02");
  }
  {
    Stream s = hvm_stream();
    s.items[3] = domain_header(2, 4, 17, 12, 1);
    b.add("libxc-dhdr-03-reserved", s, "LIBXC-DHDR-03");
  }
  {
    Stream s = hvm_stream();
    s.xl_container = XlContainer{};
    s.xl_container->config = xl_json_config("pv");
    b.add("libxc-dhdr-04-config-type", s, "LIBXC-DHDR-04");
  }

  // ---- libxc framing and types
  b.add("libxc-rec-01-length-cap", hvm_stream(), "LIBXC-REC-01",
        [](Buf& d, const Offsets& o) { set32(d, o.at("pd0") + 4, 0x08000001); });
  {
    Stream s = pv_stream();
    Buf ext(60);
    set32(ext, 4, 60);
    s.at(X, t::kExt).body = vcpu(0, ext);  // 68-octet body: 4 octets of padding
    b.add("libxc-rec-02-padding", s, "LIBXC-REC-02",
          [](Buf& d, const Offsets& o) { d.at(o.at("ext") + 8 + 68 + 2) = std::byte{0x80}; });
  }
  {
    Stream s = hvm_stream();
    s.insert_before(X, t::kEnd, xc(0x13));
    b.add("libxc-rec-03-unknown", s, "LIBXC-REC-03");
  }
  {
    Stream s = hvm_stream();
    s.insert_before(X, t::kEnd, xc(0x80000013u, Buf(16)));
    b.add("libxc-rec-04-optional", s, "LIBXC-REC-04");
  }
  {
    Stream s = remus_stream(2);
    s.insert_before(X, t::kPage, xc(0x80000013u, Buf(16)), 1);
    b.add("libxc-rec-05-optional-after-checkpoint", s, "LIBXC-REC-05");
  }
  {
    Stream s = hvm_stream();
    s.insert_before(X, t::kTsc, xc(t::kPvInfo, pv_info(8, 4)));
    b.add("libxc-rec-06-pv-record-in-hvm", s, "LIBXC-REC-06");
  }
  {
    Stream s = hvm_stream();
    s.insert_before(X, t::kEnd, xc(t::kToolstack, Buf(8)));
    b.add("libxc-rec-07-toolstack", s, "LIBXC-REC-07");
  }
  {
    Stream s = hvm_stream();
    s.insert_before(X, t::kEnd, xc(t::kDirty, Buf(8)));
    b.add("libxc-rec-08-dirty-pfn-list", s, "LIBXC-REC-08");
  }
  b.add("libxc-rec-09-sde-body", with_body(hvm_stream(), X, t::kSde, Buf(8)), "LIBXC-REC-09");
  {
    Stream s = hvm_v2_bare();
    s.insert_before(X, t::kPage, xc(t::kCpuid, cpuid_policy({{0, 0xffffffff}})));
    b.add("libxc-rec-10-policy-in-v2", s, "LIBXC-REC-10");
  }

  // ---- libxc order
  {
    Stream s = hvm_stream();
    s.erase(X, t::kSde);
    b.add("libxc-order-01-no-sde", s, "LIBXC-ORDER-01");
  }
  {
    Stream s = hvm_stream();
    s.insert_before(X, t::kPage, xc(t::kSde), 1);
    b.add("libxc-order-02-second-sde", s, "LIBXC-ORDER-02");
  }
  {
    Stream s = hvm_v2_bare();
    s.insert_before(X, t::kPage, xc(t::kSde));
    b.add("libxc-order-03-sde-in-v2", s, "LIBXC-ORDER-03");
  }
  {
    Stream s = hvm_stream();
    Item msr = s.items[s.find(X, t::kMsrPol)];
    s.erase(X, t::kMsrPol);
    s.insert_after(X, t::kSde, msr);
    b.add("libxc-order-04-late-policy", s, "LIBXC-ORDER-04");
  }
  {
    Stream s = pv_stream();
    s.insert_after(X, t::kPvInfo, xc(t::kPvInfo, pv_info(8, 4)));
    b.add("libxc-order-05-second-pv-info", s, "LIBXC-ORDER-05");
  }
  {
    Stream s = pv_stream();
    Item info = s.items[s.find(X, t::kPvInfo)];
    s.erase(X, t::kPvInfo);
    s.insert_after(X, t::kSde, info);
    b.add("libxc-order-06-late-pv-info", s, "LIBXC-ORDER-06");
  }
  {
    Stream s = pv_stream();
    Item sinfo = s.items[s.find(X, t::kSinfo)];
    s.erase(X, t::kSinfo);
    s.insert_before(X, t::kPvInfo, sinfo);
    b.add("libxc-order-07-shared-info-first", s, "LIBXC-ORDER-07");
  }
  {
    Stream s = pv_stream();
    Item ext = s.items[s.find(X, t::kExt)];
    s.erase(X, t::kExt);
    s.insert_before(X, t::kPvInfo, ext);
    b.add("libxc-order-08-vcpu-before-pv-info", s, "LIBXC-ORDER-08");
  }
  {
    Stream s = pv_stream();
    Item p2m = s.items[s.find(X, t::kP2m)];
    s.erase(X, t::kP2m);
    s.insert_after(X, t::kPage, p2m);
    b.add("libxc-order-09-pages-before-p2m", s, "LIBXC-ORDER-09");
  }
  {
    Stream s = hvm_stream();
    s.erase(X, t::kHvmCtx);
    b.add("libxc-order-10-no-hvm-context", s, "LIBXC-ORDER-10");
  }
  {
    Stream s = hvm_stream();
    s.insert_after(X, t::kHvmCtx, s.items[s.find(X, t::kHvmCtx)]);
    b.add("libxc-order-11-two-hvm-contexts", s, "LIBXC-ORDER-11");
  }
  {
    Stream s = pv_stream();
    s.erase(X, t::kBasic);
    b.add("libxc-order-12-no-vcpu0-basic", s, "LIBXC-ORDER-12");
  }
  {
    Stream s = pv_stream();
    s.erase(X, t::kP2m);
    s.erase(X, t::kPage);
    b.add("libxc-order-13-no-p2m", s, "LIBXC-ORDER-13");
  }
  {
    Stream s = hvm_stream();
    s.insert_before(X, t::kTsc, xc(t::kVerify));
    s.insert_before(X, t::kTsc, xc(t::kVerify));
    b.add("libxc-order-14-two-verify", s, "LIBXC-ORDER-14");
  }

  // ---- PAGE_DATA
  b.add("libxc-page-01-count-0", with_body(hvm_stream(), X, t::kPage, Buf(8)), "LIBXC-PAGE-01");
  {
    Buf body;
    put32(body, 4);
    put32(body, 0);
    put64(body, kXtab | 0x20);
    put64(body, kXtab | 0x21);
    b.add("libxc-page-02-pfns-missing", with_body(hvm_stream(), X, t::kPage, body), "LIBXC-PAGE-02");
  }
  b.add("libxc-page-03-type", with_body(hvm_stream(), X, t::kPage, page_data({0, (5ull << 60) | 0x20})),
        "LIBXC-PAGE-03");
  b.add("libxc-page-04-reserved-bits",
        with_body(hvm_stream(), X, t::kPage, page_data({0, 1, 2, 0x00f0000000000003ull})),
        "LIBXC-PAGE-04");
  {
    Buf body = page_data({0, 1});
    body.resize(body.size() + 8);
    b.add("libxc-page-05-length", with_body(hvm_stream(), X, t::kPage, body), "LIBXC-PAGE-05");
  }
  {
    Buf body = page_data({0, 1});
    set32(body, 4, 1);
    b.add("libxc-page-06-reserved", with_body(hvm_stream(), X, t::kPage, body), "LIBXC-PAGE-06");
  }
  {
    std::vector<std::uint64_t> e;
    for (std::uint64_t p = 0; p < 1025; ++p) e.push_back(kXtab | (0x1000 + p));
    Stream s = hvm_stream();
    s.insert_before(X, t::kTsc, xc(t::kPage, page_data(e)));
    b.add("libxc-page-07-big-batch", s, "LIBXC-PAGE-07");
  }
  b.add("libxc-page-08-duplicate", with_body(hvm_stream(), X, t::kPage, page_data({0x40, 0x41, 0x40})),
        "LIBXC-PAGE-08");
  b.add("libxc-page-09-beyond-max-pfn", with_body(pv_stream(), X, t::kPage, page_data({0, 1, 2, 3, 0x200})),
        "LIBXC-PAGE-09");
  {
    // pv_stream()'s pd0 with its L1 table (pfn 5, the sixth data page)
    // mapping pfn 0x200, one beyond max_pfn 0x1ff.
    Buf pd = page_data({0, 1, 2, 3, (0xCull << 60) | 4, (0x1ull << 60) | 5, 6, kXtab | 7});
    set64(pd, 8 + 8 * 8 + 5 * 4096 + 8 * 7, (0x200ull << 12) | 0x67);
    b.add("libxc-page-11-pte-beyond-max-pfn", with_body(pv_stream(), X, t::kPage, pd), "LIBXC-PAGE-11");
  }
  b.add("libxc-page-10-page-table-in-hvm",
        with_body(hvm_stream(), X, t::kPage, page_data({0, (1ull << 60) | 0x30})), "LIBXC-PAGE-10");

  // ---- X86_PV_INFO
  b.add("libxc-pvinfo-01-short", with_body(pv_stream(), X, t::kPvInfo, Buf(4)), "LIBXC-PVINFO-01");
  {
    Buf body = pv_info(8, 4);
    body.resize(16);
    b.add("libxc-pvinfo-02-long", with_body(pv_stream(), X, t::kPvInfo, body), "LIBXC-PVINFO-02");
  }
  b.add("libxc-pvinfo-03-pair", with_body(pv_stream(), X, t::kPvInfo, pv_info(8, 3)), "LIBXC-PVINFO-03");
  {
    Buf body = pv_info(8, 4);
    body[5] = std::byte{1};
    b.add("libxc-pvinfo-04-reserved", with_body(pv_stream(), X, t::kPvInfo, body), "LIBXC-PVINFO-04");
  }

  // ---- X86_PV_P2M_FRAMES
  b.add("libxc-p2m-01-short", with_body(pv_stream(), X, t::kP2m, Buf(4)), "LIBXC-P2M-01");
  b.add("libxc-p2m-02-start-above-end", with_body(pv_stream(), X, t::kP2m, p2m_frames(0x200, 0x1ff, {6})),
        "LIBXC-P2M-02");
  b.add("libxc-p2m-03-frame-count", with_body(pv_stream(), X, t::kP2m, p2m_frames(0, 0x1ff, {6, 7})),
        "LIBXC-P2M-03");
  b.add("libxc-p2m-04-frame-beyond", with_body(pv_stream(), X, t::kP2m, p2m_frames(0, 0x1ff, {0x300})),
        "LIBXC-P2M-04");
  {
    // max_pfn 0x3ff needs frame indices 0 and 1; the only record gives index 1.
    Stream s = with_body(pv_stream(), X, t::kP2m, p2m_frames(0x200, 0x3ff, {6}));
    b.add("libxc-p2m-05-frame-missing", s, "LIBXC-P2M-05");
  }
  b.add("libxc-p2m-06-frame-l4", with_body(pv_stream(), X, t::kP2m, p2m_frames(0, 0x1ff, {4})),
        "LIBXC-P2M-06");
  b.add("libxc-p2m-06-frame-unpopulated",
        with_body(pv_stream(), X, t::kP2m, p2m_frames(0, 0x1ff, {0x100})), "LIBXC-P2M-06");

  // ---- vcpu records
  b.add("libxc-vcpu-01-short", with_body(pv_stream(), X, t::kExt, Buf(4)), "LIBXC-VCPU-01");
  {
    Buf msrs;
    put32(msrs, 0xc0000080u);
    put32(msrs, 0);
    put64(msrs, 1);
    b.add("libxc-vcpu-02-id", with_body(pv_stream(), X, t::kMsrs, vcpu(5000, msrs)), "LIBXC-VCPU-02");
  }
  {
    Buf body = pv_stream().at(X, t::kExt).body;
    set32(body, 4, 1);
    b.add("libxc-vcpu-03-reserved", with_body(pv_stream(), X, t::kExt, body), "LIBXC-VCPU-03");
  }
  b.add("libxc-vcpu-04-empty", with_body(pv_stream(), X, t::kXsave, vcpu(0, {})), "LIBXC-VCPU-04");
  b.add("libxc-vcpu-05-basic-size", with_body(pv_stream(), X, t::kBasic, vcpu(0, Buf(2800))),
        "LIBXC-VCPU-05");
  b.add("libxc-vcpu-06-extended-size", with_body(pv_stream(), X, t::kExt, vcpu(0, Buf(136))),
        "LIBXC-VCPU-06");
  b.add("libxc-vcpu-07-xsave-size", with_body(pv_stream(), X, t::kXsave, vcpu(0, Buf(8))),
        "LIBXC-VCPU-07");
  b.add("libxc-vcpu-08-msrs-size", with_body(pv_stream(), X, t::kMsrs, vcpu(0, Buf(24))),
        "LIBXC-VCPU-08");
  {
    Buf msrs;
    put32(msrs, 0xc0000080u);
    put32(msrs, 9);
    put64(msrs, 1);
    b.add("libxc-vcpu-09-msrs-reserved", with_body(pv_stream(), X, t::kMsrs, vcpu(0, msrs)),
          "LIBXC-VCPU-09");
  }
  {
    Buf ext(64);
    set32(ext, 0, 1);
    set32(ext, 4, 64);
    b.add("libxc-vcpu-10-extended-vcpu", with_body(pv_stream(), X, t::kExt, vcpu(0, ext)),
          "LIBXC-VCPU-10");
  }
  b.add("libxc-vcpu-11-xsave-short", with_body(pv_stream(), X, t::kXsave, vcpu(0, Buf(32))),
        "LIBXC-VCPU-11");
  b.add("libxc-vcpu-12-gdt-ents", with_body(pv_stream(), X, t::kBasic, vcpu_basic64(0, 2, 4, 8000, 3)),
        "LIBXC-VCPU-12");
  b.add("libxc-vcpu-13-cr3-beyond", with_body(pv_stream(), X, t::kBasic, vcpu_basic64(0, 2, 0x300, 1, 3)),
        "LIBXC-VCPU-13");
  // pv_stream(): pfns 0-3 and 6 NOTAB, 4 a pinned L4, 5 an L1, 7 XTAB, 0x100 never sent.
  b.add("libxc-vcpu-14-start-info-l1", with_body(pv_stream(), X, t::kBasic, vcpu_basic64(0, 5, 4, 1, 3)),
        "LIBXC-VCPU-14");
  b.add("libxc-vcpu-14-start-info-unpopulated",
        with_body(pv_stream(), X, t::kBasic, vcpu_basic64(0, 0x100, 4, 1, 3)), "LIBXC-VCPU-14");
  b.add("libxc-vcpu-15-gdt-frame-l4", with_body(pv_stream(), X, t::kBasic, vcpu_basic64(0, 2, 4, 1, 4)),
        "LIBXC-VCPU-15");
  {
    Buf basic = vcpu_basic64(0, 2, 4, 600, 3);  // two GDT frames: pfn 3, then pfn 7 (XTAB)
    set64(basic, 8 + 4832 + 8, 7);
    b.add("libxc-vcpu-15-gdt-frame-xtab", with_body(pv_stream(), X, t::kBasic, basic), "LIBXC-VCPU-15");
  }
  b.add("libxc-vcpu-16-cr3-notab", with_body(pv_stream(), X, t::kBasic, vcpu_basic64(0, 2, 3, 1, 3)),
        "LIBXC-VCPU-16");
  b.add("libxc-vcpu-16-cr3-l1", with_body(pv_stream(), X, t::kBasic, vcpu_basic64(0, 2, 5, 1, 3)),
        "LIBXC-VCPU-16");
  b.add("libxc-vcpu-16-cr3-xtab", with_body(pv_stream(), X, t::kBasic, vcpu_basic64(0, 2, 7, 1, 3)),
        "LIBXC-VCPU-16");
  {
    Buf basic = vcpu_basic64(0, 2, 4, 1, 3);
    set64(basic, 8 + 4992, (0x3ull << 12) | 1);  // user cr3 (ctrlreg[1]) in use: a NOTAB page
    b.add("libxc-vcpu-16-user-cr3-notab", with_body(pv_stream(), X, t::kBasic, basic), "LIBXC-VCPU-16");
  }
  {
    // pv_stream()'s pd0 with pfn 2 (vcpu 0's start_info, the third data
    // page) made a start_info page: the builder's magic, then store_mfn at
    // 56 and console.domU.mfn at 72.
    auto start_info = [](std::uint64_t store, std::uint64_t console) {
      Buf pd = page_data({0, 1, 2, 3, (0xCull << 60) | 4, (0x1ull << 60) | 5, 6, kXtab | 7});
      const std::size_t page = 8 + 8 * 8 + 2 * 4096;
      const std::string_view magic = "xen-3.0-x86_64";
      for (std::size_t i = 0; i < 32; ++i) pd[page + i] = std::byte(i < magic.size() ? magic[i] : 0);
      set64(pd, page + 56, store);
      set64(pd, page + 72, console);
      return with_body(pv_stream(), X, t::kPage, pd);
    };
    b.add("valid-pv-start-info", start_info(1, 3), std::nullopt);
    b.add("libxc-vcpu-17-store-beyond", start_info(0x200, 3), "LIBXC-VCPU-17");
    b.add("libxc-vcpu-17-console-unpopulated", start_info(1, 0x100), "LIBXC-VCPU-17");
  }
  b.add("libxc-vcpu-16-pv32-cr3-notab", with_body(pv32_stream(), X, t::kBasic, vcpu_basic32(0, 2, 6)),
        "LIBXC-VCPU-16");

  // ---- other libxc records
  b.add("libxc-sinfo-01-size", with_body(pv_stream(), X, t::kSinfo, Buf(2048)), "LIBXC-SINFO-01");
  b.add("libxc-tsc-01-size", with_body(hvm_stream(), X, t::kTsc, Buf(16)), "LIBXC-TSC-01");
  {
    Buf body = tsc_info();
    set32(body, 20, 1);
    b.add("libxc-tsc-02-reserved", with_body(hvm_stream(), X, t::kTsc, body), "LIBXC-TSC-02");
  }
  b.add("libxc-tsc-03-mode", with_body(hvm_stream(), X, t::kTsc, tsc_info(7)), "LIBXC-TSC-03");
  b.add("libxc-hvmctx-01-empty", with_body(hvm_stream(), X, t::kHvmCtx, {}), "LIBXC-HVMCTX-01");
  {
    Buf body = hvm_params({{1, 2}, {5, 6}});
    set32(body, 0, 3);
    b.add("libxc-params-01-count", with_body(hvm_stream(), X, t::kParams, body), "LIBXC-PARAMS-01");
  }
  {
    Buf body = hvm_params({{1, 2}});
    set32(body, 4, 1);
    b.add("libxc-params-02-reserved", with_body(hvm_stream(), X, t::kParams, body), "LIBXC-PARAMS-02");
  }
  b.add("libxc-params-03-empty", with_body(hvm_stream(), X, t::kParams, hvm_params({})), "LIBXC-PARAMS-03");
  b.add("libxc-params-04-index", with_body(hvm_stream(), X, t::kParams, hvm_params({{1, 2}, {39, 1}})),
        "LIBXC-PARAMS-04");
  b.add("libxc-params-05-unusual", with_body(hvm_stream(), X, t::kParams, hvm_params({{1, 2}, {10, 1}})),
        "LIBXC-PARAMS-05");
  b.add("libxc-params-06-deprecated", with_body(hvm_stream(), X, t::kParams, hvm_params({{4, 1}})),
        "LIBXC-PARAMS-06");
  b.add("libxc-policy-01-cpuid-size", with_body(hvm_stream(), X, t::kCpuid, Buf(20)), "LIBXC-POLICY-01");
  b.add("libxc-policy-02-msr-size", with_body(hvm_stream(), X, t::kMsrPol, Buf(8)), "LIBXC-POLICY-02");
  {
    Buf body = msr_policy({0xce, 0x10a});
    set32(body, 16 + 4, 1);
    b.add("libxc-policy-03-msr-flags", with_body(hvm_stream(), X, t::kMsrPol, body), "LIBXC-POLICY-03");
  }
  b.add("libxc-policy-04-cpuid-duplicate",
        with_body(hvm_stream(), X, t::kCpuid, cpuid_policy({{0, 0xffffffff}, {7, 0}, {7, 0}})),
        "LIBXC-POLICY-04");

  // ---- checkpoints
  {
    Stream s = remus_stream(2);
    s.xl_container = XlContainer{};
    s.xl_container->config = xl_json_config();
    // xl remus sends its checkpoints behind an xl header too: the mode
    // decides, not the container.
    b.add("valid-xl-remus-stream", s, std::nullopt);
    b.add_mode("libxc-ckpt-01-checkpoint-in-plain-restore", s, "LIBXC-CKPT-01", "plain");
  }
  {
    Stream s = remus_stream(2);
    s.libvirt_container = LibvirtContainer{};
    s.libvirt_container->xml = "<domain type='xen'><name>g</name><os><type>hvm</type></os></domain>";
    b.add("libxc-ckpt-01-checkpoint-in-libvirt-file", s, "LIBXC-CKPT-01");
  }
  {
    // Remus: the libxc END ends the restore; what follows is never read
    // (here an emulator record that breaks LIBXL-EMU-02 in other modes).
    Stream s = with_body(hvm_stream(), L, t::kEmu, emulator(7, 0, qemu_blob(qemu_sections())));
    b.add_mode("valid-remus-stops-at-libxc-end", s, std::nullopt, "remus");
  }
  b.add_mode("libxl-ckpt-05-state-in-remus", colo_stream(2), "LIBXL-CKPT-05", "remus");
  b.add_mode("libxl-ckpt-05-colo-without-state", remus_stream(2), "LIBXL-CKPT-05", "colo");
  b.add_mode("valid-colo-mode", colo_stream(2), std::nullopt, "colo");
  // COLO: a CHECKPOINT_STATE id with bit 31 set reads as a broken channel:
  // a failover to the last checkpoint, not a bad stream.
  b.add("libxc-ckpt-03-colo-broken-channel", with_body(colo_stream(2), L, t::kCkState, u32_body(0x80000001), 1),
        "LIBXC-CKPT-03");
  // An over-long record header after a checkpoint is a failed read: a failover.
  {
    Stream s = remus_stream(2);
    s.items.push_back(xc(t::kPage, page_data({0x50}), "late"));
    b.add("libxc-ckpt-03-length-cap-after-checkpoint", s, "LIBXC-CKPT-03",
          [](Buf& d, const Offsets& o) { set32(d, o.at("late") + 4, 0x08000001); });
  }
  b.add("libxc-ckpt-02-nothing-committed", remus_stream(1), "LIBXC-CKPT-02",
        [](Buf& d, const Offsets& o) { d.resize(o.at("emuctx")); });
  {
    Stream s = remus_stream(2);
    s.items.push_back(xc(t::kPage, page_data({0x50, 0x51})));
    b.add("libxc-ckpt-03-partial-checkpoint", s, "LIBXC-CKPT-03");
  }
  {
    Stream s = remus_stream(1);
    s.items.push_back(xc(t::kEnd));
    s.items.push_back(xl(t::kXlEnd));
    b.add("libxc-ckpt-04-end-in-checkpointed", s, "LIBXC-CKPT-04");
  }

  // ---- HVM context blob
  auto entries = [] { return hvm_entries(2); };
  auto hvm_case = [&](std::string name, std::string rule, Buf blob) {
    b.add(std::move(name), with_hvm_blob(blob), std::move(rule));
  };
  hvm_case("hvmctx-01-no-end", "HVMCTX-01", hvm_blob(entries(), false));
  {
    auto e = entries();
    e.erase(e.begin());
    hvm_case("hvmctx-02-no-header", "HVMCTX-02", hvm_blob(e));
  }
  {
    auto e = entries();
    set32(e[0].body, 0, 0x12345678);
    hvm_case("hvmctx-03-magic", "HVMCTX-03", hvm_blob(e));
  }
  {
    auto e = entries();
    set32(e[0].body, 4, 2);
    hvm_case("hvmctx-04-version", "HVMCTX-04", hvm_blob(e));
  }
  {
    auto e = entries();
    e.push_back({25, 0, Buf(8)});
    hvm_case("hvmctx-05-typecode", "HVMCTX-05", hvm_blob(e));
  }
  {
    auto e = entries();
    for (auto& x : e) if (x.code == 10) x.body.resize(64);  // PIT is 56 exactly
    hvm_case("hvmctx-06-length", "HVMCTX-06", hvm_blob(e));
  }
  {
    auto e = entries();
    for (auto& x : e) if (x.code == 5) x.body.resize(28);  // LAPIC: 24 or 32
    hvm_case("hvmctx-07-historical-size", "HVMCTX-07", hvm_blob(e));
  }
  {
    auto e = entries();
    std::size_t i = 0;
    while (!(e[i].code == 5 && e[i].instance == 1)) ++i;
    e.insert(e.begin() + static_cast<std::ptrdiff_t>(i) + 1, {5, 4096, Buf(32)});
    hvm_case("hvmctx-08-vcpu-instance", "HVMCTX-08", hvm_blob(e));
  }
  {
    auto e = entries();
    std::size_t i = 0;
    while (!(e[i].code == 3 && e[i].instance == 1)) ++i;
    e.insert(e.begin() + static_cast<std::ptrdiff_t>(i) + 1, {3, 2, Buf(8)});
    hvm_case("hvmctx-09-pic-instance", "HVMCTX-09", hvm_blob(e));
  }
  {
    auto e = entries();
    for (auto& x : e) if (x.code == 4) x.instance = 1;
    hvm_case("hvmctx-10-domain-instance", "HVMCTX-10", hvm_blob(e));
  }
  {
    auto e = entries();
    std::size_t i = 0;
    while (e[i].code != 10) ++i;
    e.insert(e.begin() + static_cast<std::ptrdiff_t>(i), e[i]);
    hvm_case("hvmctx-11-duplicate", "HVMCTX-11", hvm_blob(e));
  }
  {
    auto e = entries();
    std::vector<HvmEntry> pic;
    for (const auto& x : e) if (x.code == 3) pic.push_back(x);
    std::erase_if(e, [](const HvmEntry& x) { return x.code == 3; });
    e.insert(e.begin() + 1, pic.begin(), pic.end());
    hvm_case("hvmctx-12-order", "HVMCTX-12", hvm_blob(e));
  }
  {
    auto e = entries();
    std::size_t i = 0;
    while (!(e[i].code == 5 && e[i].instance == 1)) ++i;
    e.insert(e.begin() + static_cast<std::ptrdiff_t>(i) + 1, {5, 2, Buf(32)});
    hvm_case("hvmctx-13-no-cpu", "HVMCTX-13", hvm_blob(e));
  }
  {
    Buf blob = hvm_blob(entries(), false);
    put64(blob, std::uint64_t{4} << 32);  // END, length 4
    put32(blob, 0);
    hvm_case("hvmctx-14-end-length", "HVMCTX-14", blob);
  }
  {
    Buf blob = hvm_blob(entries());
    put64(blob, 0x1111);
    hvm_case("hvmctx-15-after-end", "HVMCTX-15", blob);
  }
  {
    auto e = entries();
    for (auto& x : e) if (x.code == 16) x.body.resize(512);
    hvm_case("hvmctx-16-xsave", "HVMCTX-16", hvm_blob(e));
  }
  {
    auto e = entries();
    for (auto& x : e) if (x.code == 20) set32(x.body, 0, 2);
    hvm_case("hvmctx-17-msr-count", "HVMCTX-17", hvm_blob(e));
  }

  // ---- QEMU device state
  auto qemu_case = [&](std::string name, std::string rule, Buf blob) {
    b.add(std::move(name), with_qemu_blob(blob), std::move(rule));
  };
  {
    Buf blob = qemu_blob(qemu_sections());
    blob[3] = std::byte{'N'};
    qemu_case("qevm-01-magic", "QEVM-01", blob);
  }
  {
    Buf blob = qemu_blob(qemu_sections());
    blob[7] = std::byte{2};
    qemu_case("qevm-02-version", "QEVM-02", blob);
  }
  {
    auto s = qemu_sections();
    Buf blob = qemu_blob({}, false);
    put8(blob, 0x09);
    Buf rest = qemu_blob(s);
    blob.insert(blob.end(), rest.begin() + 8, rest.end());
    qemu_case("qevm-03-token", "QEVM-03", blob);
  }
  {
    auto s = qemu_sections();
    s.insert(s.begin(), QemuTok{0x02, 7, "", 0, 0, Buf(16, std::byte{0x61})});
    qemu_case("qevm-04-part-without-start", "QEVM-04", qemu_blob(s));
  }
  qemu_case("qevm-05-no-eof", "QEVM-05", qemu_blob(qemu_sections(), false));
  {
    Buf blob = qemu_blob(qemu_sections());
    put8(blob, 0x06);
    put_be32(blob, 100);  // claims 100 octets of JSON, has 2
    put_text(blob, "{}");
    qemu_case("qevm-06-after-eof", "QEVM-06", blob);
  }
  {
    auto s = qemu_sections();
    s[1].footer = true;
    qemu_case("qevm-07-footer", "QEVM-07", qemu_blob(s));
  }
  {
    auto s = qemu_sections();
    s.push_back(QemuTok{0x01, 40, "ram", 0, 4, Buf(24, std::byte{0x62})});
    s.push_back(QemuTok{0x03, 40, "", 0, 0, Buf(8, std::byte{0x63})});
    qemu_case("qevm-08-iterative", "QEVM-08", qemu_blob(s));
  }
  {
    auto s = qemu_sections();
    s.push_back(s[0]);
    s.back().section_id = 30;
    qemu_case("qevm-09-duplicate", "QEVM-09", qemu_blob(s));
  }
  return std::move(b.cases);
}

}  // namespace

const std::vector<Case>& corpus() {
  static const std::vector<Case> cases = build();
  return cases;
}

}  // namespace xenstream::verify::testing
