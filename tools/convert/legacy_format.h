// Constants of the legacy (Xen 4.5 and older) libxc save format
// (spec/legacy.md). Layout facts only; the reader is legacy_reader.h.
#pragma once

#include <cstdint>
#include <string_view>

namespace xenstream::convert::legacy {

// Chunk ids (XC_SAVE_ID_*), spec/legacy.md "Metadata chunks". Positive ids
// are page batches of that many entries; 0 ends a checkpoint's body.
enum class ChunkId : std::int32_t {
  kEnd = 0,
  kEnableVerifyMode = -1,
  kVcpuInfo = -2,
  kHvmIdentPt = -3,
  kHvmVm86Tss = -4,
  kTmem = -5,
  kTmemExtra = -6,
  kTscInfo = -7,
  kHvmConsolePfn = -8,
  kLastCheckpoint = -9,
  kHvmAcpiIoportsLocation = -10,
  kHvmViridian = -11,
  kCompressedData = -12,
  kEnableCompression = -13,
  kHvmGenerationIdAddr = -14,
  kHvmPagingRingPfn = -15,
  kHvmMonitorRingPfn = -16,
  kHvmSharingRingPfn = -17,
  kToolstack = -18,
  kHvmIoreqServerPfn = -19,
  kHvmNrIoreqServerPages = -20,
};
inline constexpr std::int32_t kLowestChunkId = -20;

// Name of a chunk id for messages ("VCPU_INFO"), or "" when unknown.
std::string_view chunk_name(std::int32_t id);

// The HVM parameter a "u32 pad; u64 value" chunk carries, or -1 when `id`
// is not such a chunk (xen/include/public/hvm/params.h numbers).
int hvm_param_of_chunk(std::int32_t id);

inline constexpr std::uint32_t kMaxBatch = 1024;          // MAX_BATCH_SIZE
inline constexpr std::int32_t kMaxVcpuId = 4095;          // XC_SR_MAX_VCPUS - 1
inline constexpr std::uint64_t kMaxPvP2mSize = 0x0FFFFFFF;  // the saver's limit
inline constexpr std::uint32_t kPageSize = 4096;

// Page batch entries: type in bits 31-28, pfn in bits 27-0, whatever the
// toolstack width (bits 63-32 of 8-octet entries are ignored).
inline constexpr std::uint32_t kEntryTypeMask = 0xF0000000u;
inline constexpr std::uint32_t kEntryPfnMask = 0x0FFFFFFFu;
// The bare XTAB entry the saver writes for pages it could not map.
inline constexpr std::uint32_t kXtabPadding = 0xF0000000u;
// Entries whose type nibble is below this carry 4096 octets of data.
inline constexpr unsigned kFirstDatalessType = 0xD;

// PV extended info (spec/legacy.md "PV extended info").
inline constexpr std::uint32_t kVcpuContextSize32 = 0xAF0;   // 2800
inline constexpr std::uint32_t kVcpuContextSize64 = 0x1430;  // 5168
inline constexpr std::uint32_t kExtendedVcpuSize = 128;
inline constexpr std::uint32_t kXsaveHeaderSize = 16;  // u64 mask + u64 size

// HVM tail qemu record signatures, 21 octets, no NUL.
inline constexpr std::size_t kQemuSignatureSize = 21;
inline constexpr std::string_view kQemuSigXend{"QemuDeviceModelRecord"};
inline constexpr std::string_view kQemuSigLibxl{"DeviceModelRecord0002"};
inline constexpr std::string_view kQemuSigRemus{"RemusDeviceModelState"};

// HVM params of the HVM tail's magic pfns.
inline constexpr std::uint64_t kHvmParamStorePfn = 1;
inline constexpr std::uint64_t kHvmParamIoreqPfn = 5;
inline constexpr std::uint64_t kHvmParamBufioreqPfn = 6;

// libxl toolstack chunk, physmap version 1 (spec/legacy.md "libxl
// TOOLSTACK chunk payload").
inline constexpr std::uint32_t kPhysmapVersion = 1;
inline constexpr std::uint32_t kPhysmapEntryHeader = 28;  // 3 x u64 + u32 namelen
inline constexpr std::uint32_t kPhysmapPadding64 = 4;

// tmem (spec/legacy.md "TMEM chunks").
inline constexpr std::uint32_t kTmemEndMarker = 0xFFFFFFFFu;
inline constexpr std::uint32_t kTmemPoolPersist = 0x1;
inline constexpr unsigned kTmemPageSizeShift = 4;

}  // namespace xenstream::convert::legacy
