// Save-file container headers (spec/containers.md).
#pragma once

#include <cstdint>
#include <string_view>

#include <xenstream/libstream/format/endian.h>

namespace xenstream::format {

namespace xl {
// 32 octets: the text, a newline, a space, a NUL, a space and a CR.
inline constexpr std::string_view kMagic{"Xen saved domain, xl format\n \0 \r", 32};
inline constexpr std::uint32_t kByteOrderMark = 0x01020304;
inline constexpr std::uint32_t kMandatoryJson = 0x1;
inline constexpr std::uint32_t kMandatoryStreamV2 = 0x2;
inline constexpr std::uint32_t kMandatoryKnown = 0x3;
inline constexpr std::uint32_t kHeaderSize = 48;

// The four u32 fields after the magic, in the saving host's byte order.
template <order O>
struct HeaderFields {
  u32_buf<O> byteorder;
  u32_buf<O> mandatory_flags;
  u32_buf<O> optional_flags;
  u32_buf<O> optional_data_len;
};
static_assert(sizeof(HeaderFields<order::little>) == 16, "spec/containers.md, xl header");
}  // namespace xl

namespace libvirt {
inline constexpr std::string_view kMagic{"libvirt-xml\n \0 \r", 16};
inline constexpr std::uint32_t kHeaderSize = 64;
inline constexpr std::uint32_t kVersionLegacy = 1;
inline constexpr std::uint32_t kVersionV2 = 2;

// Host byte order (little-endian on every x86 host libvirt-libxl runs on).
struct Header {
  char magic[16];
  u32_buf<order::little> version;
  u32_buf<order::little> xml_len;
  u32_buf<order::little> unused[10];
};
static_assert(sizeof(Header) == 64, "spec/containers.md, libvirt header");
}  // namespace libvirt

inline constexpr std::uint8_t kZstdMagic[4] = {0x28, 0xB5, 0x2F, 0xFD};

}  // namespace xenstream::format
