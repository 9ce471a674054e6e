// On-disk layout of the libxc domain image, migration stream v2 and v3
// (spec/libxc.md). Constants and plain layout structs only; no logic.
#pragma once

#include <cstdint>

#include <xenstream/libstream/format/endian.h>

namespace xenstream::format::libxc {

// spec/libxc.md, "Image header".
inline constexpr std::uint64_t kImageMarker = 0xFFFFFFFFFFFFFFFFull;
inline constexpr std::uint32_t kImageId = 0x58454E46;  // "XENF"
inline constexpr std::uint32_t kVersion2 = 2;
inline constexpr std::uint32_t kVersion3 = 3;
inline constexpr std::uint16_t kOptionBigEndian = 0x0001;
inline constexpr std::uint16_t kOptionReservedMask = 0xFFFE;

// Always big-endian, whatever the stream's byte order.
struct ImageHeader {
  u64_buf<order::big> marker;
  u32_buf<order::big> id;
  u32_buf<order::big> version;
  u16_buf<order::big> options;
  u16_buf<order::big> reserved1;
  u32_buf<order::big> reserved2;
};
static_assert(sizeof(ImageHeader) == 24, "spec/libxc.md, Image header");

// spec/libxc.md, "Domain header". Stream byte order.
inline constexpr std::uint32_t kDomainX86Pv = 1;
inline constexpr std::uint32_t kDomainX86Hvm = 2;
inline constexpr std::uint16_t kPageShiftX86 = 12;
inline constexpr std::uint32_t kPageSize = 4096;

template <order O>
struct DomainHeader {
  u32_buf<O> type;
  u16_buf<O> page_shift;
  u16_buf<O> reserved;
  u32_buf<O> xen_major;
  u32_buf<O> xen_minor;
};
static_assert(sizeof(DomainHeader<order::little>) == 16, "spec/libxc.md, Domain header");

// spec/libxc.md, "Record framing". Shared by the libxl stream.
template <order O>
struct RecordHeader {
  u32_buf<O> type;
  u32_buf<O> length;
};
static_assert(sizeof(RecordHeader<order::little>) == 8, "spec/libxc.md, Record framing");

inline constexpr std::uint32_t kRecordAlign = 8;
inline constexpr std::uint32_t kRecordOptional = 0x80000000u;
// Xen's restorer refuses longer bodies before allocating (REC_LENGTH_MAX).
inline constexpr std::uint32_t kRecordLengthMax = 0x08000000u;

enum class RecordType : std::uint32_t {
#define LIBXC_RECORD(name, value, spec, json) name = (value),
#include <xenstream/libstream/format/record_types.def>
#undef LIBXC_RECORD
};

// PAGE_DATA (spec/libxc.md, "PAGE_DATA").
template <order O>
struct PageDataHeader {
  u32_buf<O> count;
  u32_buf<O> reserved;
};
static_assert(sizeof(PageDataHeader<order::little>) == 8, "spec/libxc.md, PAGE_DATA");

inline constexpr std::uint64_t kPfnMask = 0x000FFFFFFFFFFFFFull;
inline constexpr std::uint64_t kPfnReservedMask = 0x0FF0000000000000ull;
inline constexpr std::uint64_t kPfnTypeMask = 0xF000000000000000ull;
inline constexpr unsigned kPfnTypeShift = 60;
inline constexpr std::uint32_t kSaverBatchMax = 1024;  // MAX_BATCH_SIZE

// Page types: the XEN_DOMCTL_PFINFO_* nibble (bits 63-60 of a PAGE_DATA entry).
enum class PageType : std::uint8_t {
  kNotab = 0x0,
  kL1tab = 0x1,
  kL2tab = 0x2,
  kL3tab = 0x3,
  kL4tab = 0x4,
  kL1tabPinned = 0x9,
  kL2tabPinned = 0xA,
  kL3tabPinned = 0xB,
  kL4tabPinned = 0xC,
  kBroken = 0xD,
  kXalloc = 0xE,
  kXtab = 0xF,
};

// Known types are every nibble except the reserved 0x5-0x8.
constexpr bool page_type_known(unsigned nibble) { return nibble < 5 || (nibble > 8 && nibble < 16); }
// Types whose entry is followed by 4096 octets of page contents.
constexpr bool page_type_has_data(unsigned nibble) { return nibble < 5 || (nibble > 8 && nibble < 0xD); }
// Types the restorer allocates memory for.
constexpr bool page_type_populates(unsigned nibble) { return page_type_has_data(nibble) || nibble == 0xE; }

// X86_PV_INFO.
struct X86PvInfo {
  std::uint8_t guest_width;
  std::uint8_t pt_levels;
  std::uint8_t reserved[6];
};
static_assert(sizeof(X86PvInfo) == 8, "spec/libxc.md, X86_PV_INFO");

// X86_PV_P2M_FRAMES header (followed by u64 pfns).
template <order O>
struct X86PvP2mFramesHeader {
  u32_buf<O> start_pfn;
  u32_buf<O> end_pfn;
};
static_assert(sizeof(X86PvP2mFramesHeader<order::little>) == 8, "spec/libxc.md, X86_PV_P2M_FRAMES");

// Header of the four X86_PV_VCPU_* records.
template <order O>
struct VcpuHeader {
  u32_buf<O> vcpu_id;
  u32_buf<O> reserved;
};
static_assert(sizeof(VcpuHeader<order::little>) == 8, "spec/libxc.md, X86_PV_VCPU_*");

inline constexpr std::uint32_t kVcpuBasicSize64 = 0x1430;
inline constexpr std::uint32_t kVcpuBasicSize32 = 0xAF0;
inline constexpr std::uint32_t kVcpuExtendedMax = 128;
inline constexpr std::uint32_t kVcpuXsaveMin = 16;

// X86_TSC_INFO.
template <order O>
struct X86TscInfo {
  u32_buf<O> mode;
  u32_buf<O> khz;
  u64_buf<O> nsec;
  u32_buf<O> incarnation;
  u32_buf<O> reserved;
};
static_assert(sizeof(X86TscInfo<order::little>) == 24, "spec/libxc.md, X86_TSC_INFO");

// HVM_PARAMS header and entry.
template <order O>
struct HvmParamsHeader {
  u32_buf<O> count;
  u32_buf<O> reserved;
};
template <order O>
struct HvmParamEntry {
  u64_buf<O> index;
  u64_buf<O> value;
};
static_assert(sizeof(HvmParamsHeader<order::little>) == 8, "spec/libxc.md, HVM_PARAMS");
static_assert(sizeof(HvmParamEntry<order::little>) == 16, "spec/libxc.md, HVM_PARAMS");

inline constexpr std::uint32_t kHvmNrParams = 39;
inline constexpr std::uint32_t kCpuidLeafSize = 24;
inline constexpr std::uint32_t kMsrEntrySize = 16;

}  // namespace xenstream::format::libxc
