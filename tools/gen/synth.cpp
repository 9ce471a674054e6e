#include "tools/gen/synth.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include <xenstream/codecs/zstd/zstd_sink.h>
#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/record_writer.h>

namespace xenstream::gen {

namespace xc = format::libxc;
namespace xl = format::libxl;

std::string_view guest_type_name(GuestType t) { return t == GuestType::kPv ? "pv" : "hvm"; }

std::string_view outer_layer_name(OuterLayer l) { return l == OuterLayer::kLibxl ? "libxl" : "libxc"; }

namespace {

// splitmix64: one multiply-xorshift round per output word; fast, and every
// seed gives an independent-looking stream, which is all page filling needs.
struct SplitMix {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
};

std::uint64_t mix(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  SplitMix m{a ^ 0x5851F42D4C957F2Dull};
  m.state ^= m.next() ^ b;
  m.state ^= m.next() ^ (c * 0xD1B54A32D192ED03ull);
  return m.next();
}

// PV guests get two pages with fixed roles (spec/libxc.md, X86_PV_VCPU_BASIC
// normalisation): the top pfn is vcpu0's pinned L4 page table and the one
// below it the start_info page. Both are sent as zero pages (an empty table,
// a blank start_info), everything else as generated data.
std::uint64_t pv_l4_pfn(const SynthOptions& o) { return o.pages - 1; }
std::uint64_t pv_start_info_pfn(const SynthOptions& o) { return o.pages - 2; }
constexpr std::uint64_t kPinnedL4 = 0xC;  // XEN_DOMCTL_PFINFO_L4TAB | LPINTAB

bool pv_zero_page(const SynthOptions& o, std::uint64_t pfn) {
  return o.guest == GuestType::kPv && (pfn == pv_l4_pfn(o) || pfn == pv_start_info_pfn(o));
}

std::uint64_t page_entry(const SynthOptions& o, std::uint64_t pfn) {
  if (o.guest == GuestType::kPv && pfn == pv_l4_pfn(o)) return (kPinnedL4 << 60) | pfn;
  return pfn;  // NOTAB
}

void put_le16(std::vector<std::byte>& v, std::size_t off, std::uint16_t x) {
  put_u16(v.data() + off, x, ByteOrder::kLittle);
}
void put_le32(std::vector<std::byte>& v, std::size_t off, std::uint32_t x) {
  put_u32(v.data() + off, x, ByteOrder::kLittle);
}
void put_le64(std::vector<std::byte>& v, std::size_t off, std::uint64_t x) {
  put_u64(v.data() + off, x, ByteOrder::kLittle);
}

Bytes as_bytes(const std::vector<std::byte>& v) { return Bytes(v.data(), v.size()); }

Error usage(std::string message) { return make_error(ErrorCode::kUsage, 0, std::move(message)); }

class Generator {
 public:
  Generator(Sink& sink, const SynthOptions& opts)
      : sink_(sink), o_(opts), w_(sink, opts.order) {}

  Expected<SynthSummary> run() {
    const std::uint64_t start = sink_.position();
    if (o_.container == ContainerKind::kXl) XS_TRY(write_xl_header());
    if (o_.container == ContainerKind::kLibvirt) XS_TRY(write_libvirt_header());
    sum_.payload_offset = sink_.position() - start;
    const bool libxl = o_.layer == OuterLayer::kLibxl;
    if (libxl) {
      XS_TRY(w_.write_libxl_header());
      XS_TRY(rec(w_.append(xl::RecordType::kLibxcContext)));
    }
    XS_TRY(w_.write_image_header(o_.version));
    XS_TRY(w_.write_domain_header(o_.guest == GuestType::kPv ? xc::kDomainX86Pv : xc::kDomainX86Hvm,
                                  o_.xen_major, o_.xen_minor));
    XS_TRY(write_static_data());
    if (o_.optional_record) {
      std::array<std::byte, 8> body{};
      put_u64(body.data(), SynthConstants::kOptionalBody, o_.order);
      XS_TRY(rec(w_.append(SynthConstants::kOptionalType, {Bytes(body)})));
    }
    if (o_.checkpoints == 0) {
      XS_TRY(write_pages(all_pfns(), 0));
      XS_TRY(write_end_of_checkpoint());
      XS_TRY(rec(w_.append(xc::RecordType::kEnd)));
      if (libxl) XS_TRY(write_libxl_emulator_records());
      // The outermost END: libxl's, or nothing more for a bare libxc image.
      if (libxl) XS_TRY(rec(w_.append(xl::RecordType::kEnd)));
    } else {
      for (std::uint32_t k = 0; k < o_.checkpoints; ++k) {
        if (k > 0 && o_.colo) {
          XS_TRY(rec(w_.append_checkpoint_state(xl::kCheckpointNew)));
        }
        XS_TRY(write_pages(k == 0 ? all_pfns() : dirty_pfns(o_, k), k));
        XS_TRY(write_end_of_checkpoint());
        XS_TRY(rec(w_.append(xc::RecordType::kCheckpoint)));
        ++sum_.checkpoints;
        if (libxl) {
          XS_TRY(write_libxl_emulator_records());
          XS_TRY(rec(w_.append(xl::RecordType::kCheckpointEnd)));
        }
      }
    }
    XS_TRY(sink_.flush());
    sum_.bytes = sink_.position() - start;
    return sum_;
  }

 private:
  Expected<void> rec(Expected<void> r) {
    if (r) ++sum_.records;
    return r;
  }

  std::vector<std::uint64_t> all_pfns() const {
    std::vector<std::uint64_t> v(o_.pages);
    for (std::uint64_t i = 0; i < o_.pages; ++i) v[i] = i;
    return v;
  }

  Expected<void> write_xl_header() {
    const std::string config = xl_config_json(o_);
    XlHeaderSpec h;
    h.order = o_.xl_order;
    h.mandatory_flags = format::xl::kMandatoryJson |
                        (o_.layer == OuterLayer::kLibxl ? format::xl::kMandatoryStreamV2 : 0);
    h.config = config;
    const auto bytes = xl_header_bytes(h);
    return sink_.write(Bytes(bytes));
  }

  Expected<void> write_libvirt_header() {
    const std::string xml = libvirt_xml(o_);
    LibvirtHeaderSpec h;
    h.version = o_.layer == OuterLayer::kLibxl ? format::libvirt::kVersionV2 : format::libvirt::kVersionLegacy;
    h.xml = xml;
    const auto bytes = libvirt_header_bytes(h);
    return sink_.write(Bytes(bytes));
  }

  // Static data (spec/libxc.md "What the saver writes", steps 2-3).
  Expected<void> write_static_data() {
    const bool pv = o_.guest == GuestType::kPv;
    if (pv) XS_TRY(rec(w_.append_x86_pv_info(8, 4)));
    if (o_.version >= 3) {
      // Two CPUID leaves {leaf, subleaf, a, b, c, d} and two MSRs {idx,
      // flags, value}: small, well-formed policies.
      std::vector<std::byte> cpuid(2 * xc::kCpuidLeafSize);
      const std::uint32_t leaves[2][6] = {
          {0x0, 0xFFFFFFFF, 0xD, 0x756E6547, 0x6C65746E, 0x49656E69},  // "GenuineIntel"
          {0x1, 0xFFFFFFFF, 0x000906EA, 0x00100800, 0xF7FA3223, 0x0F8BFBFF}};
      for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 6; ++j) put_u32(cpuid.data() + 24 * i + 4 * j, leaves[i][j], o_.order);
      std::vector<std::byte> msr(2 * xc::kMsrEntrySize);
      put_u32(msr.data(), 0xCE, o_.order);  // MSR_INTEL_PLATFORM_INFO
      put_u64(msr.data() + 8, 0, o_.order);
      put_u32(msr.data() + 16, 0x10A, o_.order);  // MSR_ARCH_CAPABILITIES
      put_u64(msr.data() + 24, 0, o_.order);
      XS_TRY(rec(w_.append(xc::RecordType::kX86CpuidPolicy, {as_bytes(cpuid)})));
      XS_TRY(rec(w_.append(xc::RecordType::kX86MsrPolicy, {as_bytes(msr)})));
      XS_TRY(rec(w_.append(xc::RecordType::kStaticDataEnd)));
    }
    if (pv) {
      // One P2M_FRAMES covering pfns 0..max_pfn; 512 entries per frame for a
      // 64-bit guest. The frames live in the lowest pfns.
      const std::uint64_t max_pfn = o_.pages - 1;
      const std::uint64_t k = max_pfn / 512 + 1;
      std::vector<std::uint64_t> frames(k);
      for (std::uint64_t i = 0; i < k; ++i) frames[i] = i;
      XS_TRY(rec(w_.append_p2m_frames(0, static_cast<std::uint32_t>(max_pfn), frames)));
    }
    return {};
  }

  Expected<void> write_pages(const std::vector<std::uint64_t>& pfns, std::uint32_t generation) {
    const std::size_t batch = o_.batch;
    if (buf_.size() < batch * kPageSize) buf_.resize(batch * kPageSize);
    std::vector<std::uint64_t> entries;
    std::vector<Bytes> pages;
    entries.reserve(batch);
    pages.reserve(batch);
    for (std::size_t i = 0; i < pfns.size(); i += batch) {
      const std::size_t n = std::min(batch, pfns.size() - i);
      entries.clear();
      pages.clear();
      for (std::size_t j = 0; j < n; ++j) {
        const std::uint64_t pfn = pfns[i + j];
        std::byte* page = buf_.data() + j * kPageSize;
        if (pv_zero_page(o_, pfn)) {
          std::memset(page, 0, kPageSize);
        } else {
          fill_page(o_.seed, pfn, generation, std::span<std::byte, kPageSize>(page, kPageSize));
        }
        entries.push_back(page_entry(o_, pfn));
        pages.push_back(Bytes(page, kPageSize));
      }
      XS_TRY(rec(w_.append_page_data(entries, pages)));
      ++sum_.page_data_records;
      sum_.pages_written += n;
      if (o_.progress) o_.progress(sum_.pages_written, total_pages());
    }
    return {};
  }

  std::uint64_t total_pages() const {
    if (o_.checkpoints <= 1) return o_.pages;
    const std::uint64_t d = std::min<std::uint64_t>(o_.dirty_pages, o_.pages);
    return o_.pages + d * (o_.checkpoints - 1);
  }

  // End-of-checkpoint records (spec/libxc.md "What the saver writes" step 5).
  Expected<void> write_end_of_checkpoint() {
    XS_TRY(rec(w_.append_tsc_info(SynthConstants::kTscMode, SynthConstants::kTscKhz,
                                  SynthConstants::kTscNsec, SynthConstants::kTscIncarnation)));
    if (o_.guest == GuestType::kHvm) {
      const auto ctx = hvm_context_blob(o_.vcpus);
      XS_TRY(rec(w_.append(xc::RecordType::kHvmContext, {as_bytes(ctx)})));
      const auto params = hvm_params(o_.pages);
      XS_TRY(rec(w_.append_hvm_params(params)));
      return {};
    }
    std::vector<std::byte> shared(kPageSize);
    XS_TRY(rec(w_.append(xc::RecordType::kSharedInfo, {as_bytes(shared)})));
    for (std::uint32_t v = 0; v < o_.vcpus; ++v) {
      // vcpu_guest_context, 64-bit layout (spec/hvm-context.md part B).
      std::vector<std::byte> basic(xc::kVcpuBasicSize64);
      put_u64(basic.data() + 512, 0x25, o_.order);  // flags: i387_valid, in_kernel, online
      if (v == 0) put_u64(basic.data() + 616, pv_start_info_pfn(o_), o_.order);  // rdx
      put_u64(basic.data() + 4984 + 3 * 8, pv_l4_pfn(o_) << 12, o_.order);     // ctrlreg[3]
      XS_TRY(rec(w_.append_vcpu(xc::RecordType::kX86PvVcpuBasic, v, as_bytes(basic))));
      // xen_domctl_ext_vcpucontext cut to its size (64 octets today).
      std::vector<std::byte> ext(64);
      put_u32(ext.data(), v, o_.order);
      put_u32(ext.data() + 4, 64, o_.order);
      XS_TRY(rec(w_.append_vcpu(xc::RecordType::kX86PvVcpuExtended, v, as_bytes(ext))));
      // xcr0 = x87|SSE, then the 576-octet legacy region + XSAVE header.
      std::vector<std::byte> xsave(16 + 576);
      put_u64(xsave.data(), 3, o_.order);
      put_u64(xsave.data() + 8, 3, o_.order);
      XS_TRY(rec(w_.append_vcpu(xc::RecordType::kX86PvVcpuXsave, v, as_bytes(xsave))));
      std::vector<std::byte> msrs(16);
      put_u32(msrs.data(), 0xC0000103, o_.order);  // MSR_TSC_AUX
      put_u64(msrs.data() + 8, v, o_.order);
      XS_TRY(rec(w_.append_vcpu(xc::RecordType::kX86PvVcpuMsrs, v, as_bytes(msrs))));
    }
    return {};
  }

  Expected<void> write_libxl_emulator_records() {
    if (o_.xenstore_data) {
      const auto pairs = xenstore_pairs();
      XS_TRY(rec(w_.append_xenstore(SynthConstants::kEmulatorId, 0, pairs)));
    }
    if (o_.emulator_context) {
      const auto blob = qemu_blob();
      const Bytes b = as_bytes(blob);
      XS_TRY(rec(w_.append_emulator(xl::RecordType::kEmulatorContext, SynthConstants::kEmulatorId, 0,
                                    std::span<const Bytes>(&b, 1))));
    }
    return {};
  }

  Sink& sink_;
  const SynthOptions& o_;
  RecordWriter w_;
  SynthSummary sum_;
  std::vector<std::byte> buf_;
};

}  // namespace

Expected<void> validate(const SynthOptions& o) {
  if (o.pages == 0) return usage("--pages: the guest needs at least one page");
  if (o.guest == GuestType::kPv && o.pages < 3) {
    return usage("--pages: a PV guest needs at least 3 pages (p2m frame, start_info, L4 table)");
  }
  if (o.pages > (std::uint64_t{1} << 40)) return usage("--pages: more than 2^40 pages");
  if (o.batch == 0 || o.batch > kMaxBatch) {
    return usage("--batch: must be between 1 and " + std::to_string(kMaxBatch));
  }
  if (o.version != 2 && o.version != 3) return usage("--stream-version: must be 2 or 3");
  if (o.vcpus == 0 || o.vcpus > 128) return usage("--vcpus: must be between 1 and 128");
  const bool hvm_libxl = o.guest == GuestType::kHvm && o.layer == OuterLayer::kLibxl;
  if ((o.emulator_context || o.xenstore_data) && !hvm_libxl) {
    return usage("emulator records need an HVM guest and the libxl layer");
  }
  if (o.colo && (!hvm_libxl || o.checkpoints == 0)) {
    return usage("--colo needs an HVM guest, the libxl layer and at least one checkpoint");
  }
  if (o.container != ContainerKind::kNone && o.name.empty()) return usage("--name: empty");
  return {};
}

Expected<SynthSummary> write_stream(Sink& sink, const SynthOptions& opts) {
  XS_TRY(validate(opts));
  Generator g(sink, opts);
  return g.run();
}

Expected<SynthSummary> write_stream_to_path(const std::string& path, const SynthOptions& opts,
                                            bool zstd, int zstd_level) {
  XS_TRY(validate(opts));
  auto out = open_output(path);
  if (!out) return std::move(out).error();
  Expected<SynthSummary> sum = make_error(ErrorCode::kUsage, 0, "not run");
  if (zstd) {
    codecs::ZstdSink z(*out->sink, zstd_level);
    sum = write_stream(z, opts);
  } else {
    sum = write_stream(*out->sink, opts);
  }
  if (!sum) return sum;
  XS_TRY(out->commit());
  return sum;
}

// ---------------------------------------------------------------------------

void fill_page(std::uint64_t seed, std::uint64_t pfn, std::uint32_t generation,
               std::span<std::byte, kPageSize> out) {
  std::byte* p = out.data();
  put_u64(p, pfn, ByteOrder::kLittle);
  put_u32(p + 8, generation, ByteOrder::kLittle);
  put_u32(p + 12, static_cast<std::uint32_t>(seed), ByteOrder::kLittle);
  SplitMix r{mix(seed, pfn, generation)};
  for (std::size_t off = 16; off < kPageSize; off += 8) {
    put_u64(p + off, r.next(), ByteOrder::kLittle);
  }
}

std::array<std::byte, kPageSize> page_contents(std::uint64_t seed, std::uint64_t pfn,
                                               std::uint32_t generation) {
  std::array<std::byte, kPageSize> a;
  fill_page(seed, pfn, generation, a);
  return a;
}

std::vector<std::uint64_t> dirty_pfns(const SynthOptions& o, std::uint32_t checkpoint) {
  std::vector<std::uint64_t> out;
  if (checkpoint == 0 || checkpoint >= o.checkpoints || o.pages == 0) return out;
  const std::uint64_t d = std::min<std::uint64_t>(o.dirty_pages, o.pages);
  if (d == o.pages) {
    out.resize(d);
    for (std::uint64_t i = 0; i < d; ++i) out[i] = i;
    return out;
  }
  // Floyd's sampling: d distinct pfns in O(d).
  SplitMix r{mix(o.seed, checkpoint, 0xD1127)};
  std::unordered_set<std::uint64_t> chosen;
  chosen.reserve(d * 2);
  for (std::uint64_t j = o.pages - d; j < o.pages; ++j) {
    const std::uint64_t t = r.below(j + 1);
    if (!chosen.insert(t).second) chosen.insert(j);
  }
  out.assign(chosen.begin(), chosen.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::uint32_t> page_generations(const SynthOptions& o, std::uint32_t upto) {
  std::vector<std::uint32_t> gen(o.pages, 0);
  for (std::uint32_t k = 1; k <= upto && k < o.checkpoints; ++k) {
    for (std::uint64_t pfn : dirty_pfns(o, k)) gen[pfn] = k;
  }
  return gen;
}

std::array<std::byte, kPageSize> expected_page(const SynthOptions& o, std::uint64_t pfn,
                                               std::uint32_t generation) {
  if (pv_zero_page(o, pfn)) return std::array<std::byte, kPageSize>{};
  return page_contents(o.seed, pfn, generation);
}

std::uint64_t expected_entry(const SynthOptions& o, std::uint64_t pfn) { return page_entry(o, pfn); }

std::vector<std::uint64_t> special_pfns(const SynthOptions& o) {
  if (o.guest == GuestType::kPv) return {pv_start_info_pfn(o), pv_l4_pfn(o)};
  std::vector<std::uint64_t> v;
  for (const auto& [index, value] : hvm_params(o.pages)) v.push_back(value);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// ---------------------------------------------------------------------------

std::vector<std::byte> hvm_context_blob(std::uint32_t vcpus) {
  // Descriptors {u16 typecode, u16 instance, u32 length} + body, packed,
  // little-endian (spec/hvm-context.md part A); lengths are today's sizes.
  std::vector<std::byte> b;
  auto entry = [&](std::uint16_t code, std::uint16_t instance, std::uint32_t length) {
    const std::size_t at = b.size();
    b.resize(at + 8 + length);
    put_le16(b, at, code);
    put_le16(b, at + 2, instance);
    put_le32(b, at + 4, length);
    return at + 8;
  };
  std::size_t h = entry(1, 0, 24);  // HEADER
  put_le32(b, h, SynthConstants::kHvmMagic);
  put_le32(b, h + 4, 1);
  put_le64(b, h + 8, 0xFFFFFFFFFFFFFFFFull);  // changeset: unknown
  put_le32(b, h + 16, 0x000906EA);            // cpuid leaf 1 eax
  put_le32(b, h + 20, SynthConstants::kTscKhz);
  for (std::uint32_t v = 0; v < vcpus; ++v) {  // CPU
    const std::size_t c = entry(2, static_cast<std::uint16_t>(v), SynthConstants::kCpuRecordSize);
    put_le64(b, c + 640, 0xFFF0);        // rip
    put_le64(b, c + 648, 0x2);           // rflags
    put_le64(b, c + 656, 0x60000010);    // cr0: CD, NW, ET (reset state)
    put_le32(b, c + 1024, 1);            // flags: FPU initialised
  }
  entry(3, 0, 8);  // PIC master
  entry(3, 1, 8);  // PIC slave
  const std::size_t io = entry(4, 0, 400);  // IOAPIC
  put_le64(b, io, 0xFEC00000);
  for (std::size_t pin = 0; pin < 48; ++pin) put_le64(b, io + 16 + 8 * pin, 0x10000);  // masked
  for (std::uint32_t v = 0; v < vcpus; ++v) {  // LAPIC
    const std::size_t l = entry(5, static_cast<std::uint16_t>(v), 32);
    put_le64(b, l, 0xFEE00800 | (v == 0 ? 0x100 : 0));  // enabled, BSP on vcpu 0
  }
  for (std::uint32_t v = 0; v < vcpus; ++v) {  // LAPIC_REGS
    const std::size_t r = entry(6, static_cast<std::uint16_t>(v), 1024);
    put_le32(b, r + 0x20, (2 * v) << 24);  // APIC ID
    put_le32(b, r + 0x30, 0x50014);        // version
  }
  entry(10, 0, 56);  // PIT
  entry(11, 0, 24);  // RTC
  for (std::uint32_t v = 0; v < vcpus; ++v) {  // MTRR
    const std::size_t m = entry(14, static_cast<std::uint16_t>(v), 240);
    put_le64(b, m, 0x0007040600070406ull);  // PAT reset value
    put_le64(b, m + 224, 0x508);            // cap: 8 variable ranges, fixed, WC
    put_le64(b, m + 232, 0xC06);            // def_type: enabled, WB
  }
  entry(0, 0, 0);  // END
  return b;
}

std::vector<std::byte> qemu_blob() {
  // QEVM v3: one SECTION_FULL for the "timer" device (version 1: i64
  // cpu_ticks_offset, 8 unused octets), then EOF (spec/hvm-context.md C).
  std::vector<std::byte> b;
  auto be32 = [&](std::uint32_t x) {
    const std::size_t at = b.size();
    b.resize(at + 4);
    put_u32(b.data() + at, x, ByteOrder::kBig);
  };
  auto u8 = [&](std::uint8_t x) { b.push_back(std::byte{x}); };
  be32(0x5145564D);  // "QEVM"
  be32(3);
  u8(0x04);  // SECTION_FULL
  be32(0);   // section id
  const std::string_view id = "timer";
  u8(static_cast<std::uint8_t>(id.size()));
  for (char ch : id) u8(static_cast<std::uint8_t>(ch));
  be32(0);  // instance
  be32(1);  // version
  const std::size_t at = b.size();
  b.resize(at + 16);
  put_u64(b.data() + at, 0x0000000012345678ull, ByteOrder::kBig);
  u8(0x00);  // EOF
  return b;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> hvm_params(std::uint64_t pages) {
  // The special pages sit at the top of the guest, as Xen's domain builder
  // puts them below its special-page area; clamp for tiny guests.
  auto top = [&](std::uint64_t k) { return pages > k ? pages - 1 - k : 0; };
  // Saver order (spec/libxc.md HVM_PARAMS): STORE, IOREQ, BUFIOREQ, CONSOLE.
  return {{1, top(0)}, {5, top(2)}, {6, top(3)}, {17, top(1)}};
}

std::vector<std::pair<std::string, std::string>> xenstore_pairs() {
  return {{"physmap/f0000000/start_addr", "f0000000"},
          {"physmap/f0000000/size", "800000"},
          {"physmap/f0000000/name", "vga.vram"}};
}

std::string xl_config_json(const SynthOptions& o) {
  nlohmann::ordered_json c;
  const std::string type(guest_type_name(o.guest));
  c["c_info"]["type"] = type;
  c["c_info"]["name"] = o.name;
  c["b_info"]["max_vcpus"] = o.vcpus;
  c["b_info"]["max_memkb"] = o.pages * 4;
  c["b_info"]["target_memkb"] = o.pages * 4;
  c["b_info"]["type." + type] = nlohmann::ordered_json::object();
  return c.dump(4);
}

std::string libvirt_xml(const SynthOptions& o) {
  std::string name;
  for (char ch : o.name) {
    switch (ch) {
      case '&': name += "&amp;"; break;
      case '<': name += "&lt;"; break;
      case '>': name += "&gt;"; break;
      case '\'': name += "&apos;"; break;
      case '"': name += "&quot;"; break;
      default: name += ch;
    }
  }
  return "<domain type='xen'>\n  <name>" + name + "</name>\n  <memory unit='KiB'>" +
         std::to_string(o.pages * 4) + "</memory>\n  <vcpu>" + std::to_string(o.vcpus) +
         "</vcpu>\n  <os>\n    <type>" + (o.guest == GuestType::kPv ? "linux" : "hvm") +
         "</type>\n  </os>\n</domain>\n";
}

}  // namespace xenstream::gen
