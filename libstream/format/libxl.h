// On-disk layout of the libxl migration stream v2 (spec/libxl.md).
#pragma once

#include <cstdint>

#include <xenstream/libstream/format/endian.h>

namespace xenstream::format::libxl {

inline constexpr std::uint64_t kIdent = 0x4C6962786C466D74ull;  // "LibxlFmt"
inline constexpr std::uint32_t kVersion = 2;
inline constexpr std::uint32_t kOptionBigEndian = 0x1;
inline constexpr std::uint32_t kOptionLegacy = 0x2;
inline constexpr std::uint32_t kOptionReservedMask = 0xFFFFFFFCu;

// Always big-endian.
struct Header {
  u64_buf<order::big> ident;
  u32_buf<order::big> version;
  u32_buf<order::big> options;
};
static_assert(sizeof(Header) == 16, "spec/libxl.md, Stream header");

enum class RecordType : std::uint32_t {
#define LIBXL_RECORD(name, value, spec, json) name = (value),
#include <xenstream/libstream/format/record_types.def>
#undef LIBXL_RECORD
};

// Sub-header of EMULATOR_XENSTORE_DATA and EMULATOR_CONTEXT.
template <order O>
struct EmulatorHeader {
  u32_buf<O> id;
  u32_buf<O> index;
};
static_assert(sizeof(EmulatorHeader<order::little>) == 8, "spec/libxl.md, emulator sub-header");

inline constexpr std::uint32_t kEmulatorUnknown = 0;
inline constexpr std::uint32_t kEmulatorQemuTraditional = 1;
inline constexpr std::uint32_t kEmulatorQemuUpstream = 2;

// CHECKPOINT_STATE control ids (COLO).
inline constexpr std::uint32_t kCheckpointNew = 0;
inline constexpr std::uint32_t kCheckpointSvmSuspended = 1;
inline constexpr std::uint32_t kCheckpointSvmReady = 2;
inline constexpr std::uint32_t kCheckpointSvmResumed = 3;

}  // namespace xenstream::format::libxl
