#include "fuzz/common/sample_streams.h"

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include <xenstream/codecs/zstd/zstd_sink.h>
#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/record_writer.h>

namespace xenstream::fuzz {

namespace {

namespace xc = format::libxc;
namespace xl = format::libxl;
using Buf = std::vector<std::byte>;

// The samples are built by code that cannot fail on a BufferSink; a failure
// here is a bug in the writer, so stop loudly.
void must(const Expected<void>& r) {
  if (!r) std::abort();
}
void must(const Expected<std::uint64_t>& r) {
  if (!r) std::abort();
}

void put_le32(Buf& b, std::uint32_t v) {
  std::array<std::byte, 4> t{};
  put_u32(t.data(), v, ByteOrder::kLittle);
  b.insert(b.end(), t.begin(), t.end());
}
void put_be32(Buf& b, std::uint32_t v) {
  std::array<std::byte, 4> t{};
  put_u32(t.data(), v, ByteOrder::kBig);
  b.insert(b.end(), t.begin(), t.end());
}
void put_le16(Buf& b, std::uint16_t v) {
  std::array<std::byte, 2> t{};
  put_u16(t.data(), v, ByteOrder::kLittle);
  b.insert(b.end(), t.begin(), t.end());
}
void put_le64(Buf& b, std::uint64_t v) {
  std::array<std::byte, 8> t{};
  put_u64(t.data(), v, ByteOrder::kLittle);
  b.insert(b.end(), t.begin(), t.end());
}
void put_text(Buf& b, std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  b.insert(b.end(), p, p + s.size());
}

Buf filled(std::size_t n, std::uint8_t seed) {
  Buf b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = std::byte(static_cast<std::uint8_t>(seed + i * 7));
  return b;
}

std::uint64_t entry(unsigned type, std::uint64_t pfn) {
  return (std::uint64_t{type} << xc::kPfnTypeShift) | pfn;
}

// One data page plus the three entry types that carry none.
void page_batch(RecordWriter& w, std::uint64_t pfn) {
  static const Buf page = filled(xc::kPageSize, 0x11);
  const std::array<std::uint64_t, 4> entries{entry(0x0, pfn), entry(0xF, pfn + 1),
                                             entry(0xE, pfn + 2), entry(0xD, pfn + 3)};
  const std::array<Bytes, 1> pages{Bytes(page)};
  must(w.append_page_data(entries, pages));
}

// Pages without data: keeps checkpoint samples small.
void empty_batch(RecordWriter& w, std::uint64_t pfn) {
  const std::array<std::uint64_t, 2> entries{entry(0xE, pfn), entry(0xF, pfn + 1)};
  must(w.append_page_data(entries, {}));
}

void policies(RecordWriter& w) {
  const Buf cpuid = filled(2 * xc::kCpuidLeafSize, 0x40);
  const Buf msr = filled(xc::kMsrEntrySize, 0x50);
  must(w.append(xc::RecordType::kX86CpuidPolicy, {Bytes(cpuid)}));
  must(w.append(xc::RecordType::kX86MsrPolicy, {Bytes(msr)}));
  must(w.append(xc::RecordType::kStaticDataEnd));
}

void hvm_state(RecordWriter& w) {
  const Buf ctx = sample_hvm_context();
  must(w.append(xc::RecordType::kHvmContext, {Bytes(ctx)}));
  const std::array<std::pair<std::uint64_t, std::uint64_t>, 3> params{
      {{2, 0xfeffc}, {12, 0xfeffd000}, {16, 1}}};
  must(w.append_hvm_params(params));
}

// libxc records of an HVM domain, up to and including END.
void libxc_hvm(RecordWriter& w, std::uint32_t version) {
  must(w.write_image_header(version));
  must(w.write_domain_header(xc::kDomainX86Hvm, 4, 17));
  if (version >= 3) policies(w);
  page_batch(w, 0x100);
  must(w.append_tsc_info(0, 2400000, 123456789, 1));
  hvm_state(w);
  must(w.append(xc::RecordType::kEnd));
}

// libxc records of a 64-bit PV domain, up to and including END.
void libxc_pv(RecordWriter& w, std::uint32_t version) {
  must(w.write_image_header(version));
  must(w.write_domain_header(xc::kDomainX86Pv, 4, 6));
  must(w.append_x86_pv_info(8, 4));
  if (version >= 3) policies(w);
  const std::array<std::uint64_t, 1> frames{0x1234};
  must(w.append_p2m_frames(0, 0x1ff, frames));
  page_batch(w, 0x20);
  must(w.append_tsc_info(1, 3000000, 42, 0));
  const Buf shared = filled(64, 0x60);
  must(w.append(xc::RecordType::kSharedInfo, {Bytes(shared)}));
  const Buf basic = filled(64, 0x70);
  const Buf ext = filled(16, 0x71);
  const Buf xsave = filled(xc::kVcpuXsaveMin, 0x72);
  const Buf msrs = filled(2 * xc::kMsrEntrySize, 0x73);
  must(w.append_vcpu(xc::RecordType::kX86PvVcpuBasic, 0, Bytes(basic)));
  must(w.append_vcpu(xc::RecordType::kX86PvVcpuExtended, 0, Bytes(ext)));
  must(w.append_vcpu(xc::RecordType::kX86PvVcpuXsave, 0, Bytes(xsave)));
  must(w.append_vcpu(xc::RecordType::kX86PvVcpuMsrs, 0, Bytes(msrs)));
  must(w.append(xc::RecordType::kEnd));
}

void emulator_records(RecordWriter& w) {
  const std::array<std::pair<std::string, std::string>, 2> pairs{
      {{"physmap/f0000000/start_addr", "f0000000"}, {"physmap/f0000000/size", "800000"}}};
  must(w.append_xenstore(xl::kEmulatorQemuUpstream, 0, pairs));
  const Buf qemu = sample_qemu_blob();
  const std::array<Bytes, 1> parts{Bytes(qemu)};
  must(w.append_emulator(xl::RecordType::kEmulatorContext, xl::kEmulatorQemuUpstream, 0, parts));
}

Buf libxl_hvm(ByteOrder order) {
  BufferSink s;
  RecordWriter w(s, order);
  must(w.write_libxl_header());
  must(w.append(xl::RecordType::kLibxcContext));
  libxc_hvm(w, 3);
  emulator_records(w);
  must(w.finish());
  return s.data();
}

Buf libxl_pv() {
  BufferSink s;
  RecordWriter w(s);
  must(w.write_libxl_header());
  must(w.append(xl::RecordType::kLibxcContext));
  libxc_pv(w, 2);
  must(w.finish());
  return s.data();
}

Buf bare_pv(std::uint32_t version) {
  BufferSink s;
  RecordWriter w(s);
  // libxc_pv ends with END already; no finish() (that would add a second).
  libxc_pv(w, version);
  return s.data();
}

Buf bare_hvm_big_endian() {
  BufferSink s;
  RecordWriter w(s, ByteOrder::kBig);
  libxc_hvm(w, 3);
  return s.data();
}

// Bare libxc with a CHECKPOINT: the stream just continues after it.
Buf bare_checkpointed() {
  BufferSink s;
  RecordWriter w(s);
  must(w.write_image_header(2));
  must(w.write_domain_header(xc::kDomainX86Hvm, 4, 5));
  empty_batch(w, 0x10);
  hvm_state(w);
  must(w.append(xc::RecordType::kCheckpoint));
  empty_batch(w, 0x12);
  must(w.append(xc::RecordType::kEnd));
  return s.data();
}

// Remus (colo=false) or COLO (colo=true) stream with two checkpoints.
Buf libxl_checkpointed(bool colo) {
  BufferSink s;
  RecordWriter w(s);
  must(w.write_libxl_header());
  must(w.append(xl::RecordType::kLibxcContext));
  must(w.write_image_header(3));
  must(w.write_domain_header(xc::kDomainX86Hvm, 4, 17));
  policies(w);
  page_batch(w, 0x100);
  for (int cp = 0; cp < 2; ++cp) {
    if (cp > 0) empty_batch(w, 0x200 + cp);
    hvm_state(w);
    must(w.append(xc::RecordType::kCheckpoint));
    emulator_records(w);
    must(w.append(xl::RecordType::kCheckpointEnd));
    if (colo) must(w.append_checkpoint_state(xl::kCheckpointSvmSuspended));
  }
  must(w.append(xc::RecordType::kEnd));
  must(w.finish());
  return s.data();
}

Buf xl_header(ByteOrder order, std::uint32_t mandatory, std::string_view config) {
  XlHeaderSpec h;
  h.order = order;
  h.mandatory_flags = mandatory;
  h.config = config;
  h.config_nul = false;
  return xl_header_bytes(h);
}

Buf libvirt_header(std::uint32_t version, std::string_view xml) {
  LibvirtHeaderSpec h;
  h.version = version;
  h.xml = xml;
  h.xml_nul = false;
  return libvirt_header_bytes(h);
}

Buf concat(Buf a, const Buf& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A legacy image's first octets as a 64-bit toolstack writes them: p2m_size,
// then the all-ones marker of the PV extended info. Not a whole image; enough
// for detection to say "legacy".
Buf legacy_head() {
  Buf b;
  put_le64(b, 0x8000);
  put_le64(b, ~std::uint64_t{0});
  put_le32(b, 0x10);
  put_text(b, "extv");
  put_le32(b, 0);
  put_text(b, "xcnt");
  put_le32(b, 4);
  put_le32(b, 0x240);
  return b;
}

constexpr std::string_view kJsonConfig =
    "{\"c_info\":{\"type\":\"pv\",\"name\":\"guest\"},\"b_info\":{\"max_vcpus\":1}}";
constexpr std::string_view kXml =
    "<domain type='xen'><name>guest</name><memory>65536</memory></domain>";

}  // namespace

std::vector<std::byte> sample_hvm_context() {
  Buf b;
  // HEADER: typecode 1, instance 0, 24 octets.
  put_le16(b, 1);
  put_le16(b, 0);
  put_le32(b, 24);
  put_le32(b, 0x54381286);  // HVM_FILE_MAGIC
  put_le32(b, 1);           // version
  put_le64(b, ~std::uint64_t{0});
  put_le32(b, 0x000306c3);  // cpuid
  put_le32(b, 0);           // gtsc_khz
  // PIC master (typecode 3, 8 octets) and PMTIMER (13, 8 octets).
  put_le16(b, 3);
  put_le16(b, 0);
  put_le32(b, 8);
  b.resize(b.size() + 8);
  put_le16(b, 13);
  put_le16(b, 0);
  put_le32(b, 8);
  b.resize(b.size() + 8);
  // END.
  put_le16(b, 0);
  put_le16(b, 0);
  put_le32(b, 0);
  return b;
}

std::vector<std::byte> sample_qemu_blob() {
  Buf b;
  put_be32(b, 0x5145564D);  // "QEVM"
  put_be32(b, 3);
  // SECTION_FULL: id, counted idstr, instance, version, payload, footer.
  b.push_back(std::byte{0x04});
  put_be32(b, 2);
  constexpr std::string_view kId = "timer";
  b.push_back(std::byte{static_cast<std::uint8_t>(kId.size())});
  put_text(b, kId);
  put_be32(b, 0);
  put_be32(b, 2);
  const Buf payload = filled(24, 0x30);
  b.insert(b.end(), payload.begin(), payload.end());
  b.push_back(std::byte{0x7E});
  put_be32(b, 2);
  b.push_back(std::byte{0x00});  // EOF
  return b;
}

std::vector<Sample> sample_streams() {
  std::vector<Sample> out;
  out.push_back({"libxl-hvm-v3.bin", libxl_hvm(ByteOrder::kLittle)});
  out.push_back({"libxl-hvm-be.bin", libxl_hvm(ByteOrder::kBig)});
  out.push_back({"libxl-pv-v2.bin", libxl_pv()});
  out.push_back({"libxc-pv-v2.bin", bare_pv(2)});
  out.push_back({"libxc-pv-v3.bin", bare_pv(3)});
  out.push_back({"libxc-hvm-be.bin", bare_hvm_big_endian()});
  out.push_back({"libxc-checkpointed.bin", bare_checkpointed()});
  out.push_back({"libxl-remus.bin", libxl_checkpointed(false)});
  out.push_back({"libxl-colo.bin", libxl_checkpointed(true)});
  out.push_back({"xl-pv.bin", concat(xl_header(ByteOrder::kLittle,
                                               format::xl::kMandatoryJson |
                                                   format::xl::kMandatoryStreamV2,
                                               std::string(kJsonConfig) + '\0'),
                                     libxl_pv())});
  out.push_back({"xl-be-hvm.bin",
                 concat(xl_header(ByteOrder::kBig, format::xl::kMandatoryStreamV2, "name='g'\n"),
                        libxl_hvm(ByteOrder::kLittle))});
  out.push_back({"xl-legacy.bin",
                 concat(xl_header(ByteOrder::kLittle, 0, "name='old'\n"), legacy_head())});
  out.push_back({"libvirt-v2-hvm.bin",
                 concat(libvirt_header(format::libvirt::kVersionV2, std::string(kXml) + '\0'),
                        libxl_hvm(ByteOrder::kLittle))});
  out.push_back({"libvirt-v1-legacy.bin",
                 concat(libvirt_header(format::libvirt::kVersionLegacy, kXml), legacy_head())});
  out.push_back({"legacy-head.bin", legacy_head()});
  return out;
}

std::vector<Sample> compressed_samples() {
  std::vector<Sample> out;
  for (const Sample& s : sample_streams()) {
    BufferSink plain;
    codecs::ZstdSink z(plain, 3);
    must(z.write(Bytes(s.bytes)));
    must(z.flush());
    out.push_back({s.name + ".zst", plain.data()});
  }
  return out;
}

}  // namespace xenstream::fuzz
