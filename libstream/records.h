// Typed views of record bodies (spec/libxc.md, spec/libxl.md).
//
// Each decode_*() checks the structural length rule of its record (enough
// octets for the fixed part, arrays that fit exactly) and returns a view or
// an error located at the offending byte. Value rules (allowed widths, known
// page types, param indexes) are the verifier's. Views borrow the record's
// body and live as long as the RecordView they came from.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/record_reader.h>

namespace xenstream {

// PAGE_DATA: u32 count, u32 reserved, u64 entry[count], then 4096 octets for
// every entry whose type carries data.
struct PageDataView {
  std::uint32_t count = 0;
  std::uint32_t reserved = 0;
  Fields entries;  // 8 * count octets
  Bytes pages;     // the page contents, in entry order
  std::uint32_t data_pages = 0;

  std::uint64_t entry(std::uint32_t i) const { return entries.u64(8 * std::size_t{i}); }
  static std::uint64_t pfn_of(std::uint64_t e) { return e & 0x000FFFFFFFFFFFFFull; }
  static unsigned type_of(std::uint64_t e) { return static_cast<unsigned>(e >> 60); }
  std::uint64_t pfn(std::uint32_t i) const { return pfn_of(entry(i)); }
  unsigned type(std::uint32_t i) const { return type_of(entry(i)); }
};
// Checks: body >= 8, count >= 1, entries fit, every type known, and the body
// length equals 8 + 8*count + 4096*(data-carrying entries).
// Unlike the other decoders (which want a complete view), this one also takes
// a view from next_head() as long as it covers the entries: `pages` then
// holds only the pages pulled so far (kUsage when the entries are cut).
Expected<PageDataView> decode_page_data(const RecordView& rec);

struct X86PvInfoView {
  std::uint8_t guest_width = 0;
  std::uint8_t pt_levels = 0;
  std::uint64_t reserved = 0;  // octets 2-7, as a little-endian integer of 6 octets
};
Expected<X86PvInfoView> decode_x86_pv_info(const RecordView& rec);  // length >= 8

struct P2mFramesView {
  std::uint32_t start_pfn = 0;
  std::uint32_t end_pfn = 0;
  Fields frames;  // u64 each
  std::size_t count() const { return frames.size() / 8; }
  std::uint64_t frame(std::size_t i) const { return frames.u64(8 * i); }
};
// Checks: length >= 8, (length - 8) a multiple of 8.
Expected<P2mFramesView> decode_p2m_frames(const RecordView& rec);

// The four X86_PV_VCPU_* records.
struct VcpuBlobView {
  std::uint32_t vcpu_id = 0;
  std::uint32_t reserved = 0;
  Fields blob;
};
Expected<VcpuBlobView> decode_vcpu_blob(const RecordView& rec);  // length >= 8

struct TscInfoView {
  std::uint32_t mode = 0;
  std::uint32_t khz = 0;
  std::uint64_t nsec = 0;
  std::uint32_t incarnation = 0;
  std::uint32_t reserved = 0;
};
Expected<TscInfoView> decode_tsc_info(const RecordView& rec);  // length == 24

struct HvmParamsView {
  std::uint32_t count = 0;
  std::uint32_t reserved = 0;
  Fields entries;
  std::uint64_t index(std::uint32_t i) const { return entries.u64(16 * std::size_t{i}); }
  std::uint64_t value(std::uint32_t i) const { return entries.u64(16 * std::size_t{i} + 8); }
};
Expected<HvmParamsView> decode_hvm_params(const RecordView& rec);  // length == 8 + 16*count

// EMULATOR_XENSTORE_DATA and EMULATOR_CONTEXT.
struct EmulatorView {
  std::uint32_t id = 0;
  std::uint32_t index = 0;
  Fields data;  // after the sub-header
};
Expected<EmulatorView> decode_emulator(const RecordView& rec);  // length >= 8

// Splits EMULATOR_XENSTORE_DATA strings into (key, value) pairs. Checks every
// string is NUL-terminated inside the data and that no key lacks a value.
Expected<std::vector<std::pair<std::string, std::string>>> decode_xenstore_pairs(
    const RecordView& rec, const EmulatorView& em);

Expected<std::uint32_t> decode_checkpoint_state(const RecordView& rec);  // length == 4

}  // namespace xenstream
