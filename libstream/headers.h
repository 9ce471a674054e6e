// Stream and container headers: reading them from a Source.
//
// These readers decode what is there and refuse only what makes the rest of
// the stream unreadable (wrong magic, truncation, a length past a cap). Field
// values that Xen would refuse (version 4, reserved bits, big-endian) are
// returned as found; judging them is the verifier's job (spec/verify-rules.md).
// Each reader consumes exactly the header's bytes on success.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/source.h>

namespace xenstream {

// libxc image header (spec/libxc.md). Always big-endian on disk.
struct ImageHeaderInfo {
  std::uint64_t offset = 0;
  std::uint32_t version = 0;
  std::uint16_t options = 0;
  std::uint16_t reserved1 = 0;
  std::uint32_t reserved2 = 0;
  ByteOrder order() const {
    return (options & 1) ? ByteOrder::kBig : ByteOrder::kLittle;
  }
};

// libxc domain header, in the image's byte order.
struct DomainHeaderInfo {
  std::uint64_t offset = 0;
  std::uint32_t type = 0;
  std::uint16_t page_shift = 0;
  std::uint16_t reserved = 0;
  std::uint32_t xen_major = 0;
  std::uint32_t xen_minor = 0;
  bool is_pv() const { return type == 1; }
  bool is_hvm() const { return type == 2; }
};

// libxl stream header (spec/libxl.md). Always big-endian on disk.
struct LibxlHeaderInfo {
  std::uint64_t offset = 0;
  std::uint32_t version = 0;
  std::uint32_t options = 0;
  ByteOrder order() const {
    return (options & 1) ? ByteOrder::kBig : ByteOrder::kLittle;
  }
  bool legacy() const { return (options & 2) != 0; }
};

// Refuses a wrong marker or id (kMalformed); reads any version.
Expected<ImageHeaderInfo> read_image_header(Source& src);
Expected<DomainHeaderInfo> read_domain_header(Source& src, ByteOrder order);
// Refuses a wrong ident (kMalformed); reads any version.
Expected<LibxlHeaderInfo> read_libxl_header(Source& src);

// ---------------------------------------------------------------------------
// Containers (spec/containers.md)

enum class ContainerKind : std::uint8_t { kNone, kXl, kLibvirt };
// The guest a stream or legacy image saves: the libxc domain types x86 PV
// (1) and x86 HVM (2; PVH guests are HVM to libxc).
enum class GuestType : std::uint8_t { kPv, kHvm };
enum class PayloadKind : std::uint8_t { kLibxl, kLibxc, kLegacy };

std::string_view container_name(ContainerKind kind);  // "none", "xl", "libvirt"
std::string_view payload_name(PayloadKind kind);      // "libxl", "libxc", "legacy"

// Caps on what a container header may make us allocate.
inline constexpr std::uint32_t kMaxXlOptionalData = 16u << 20;
inline constexpr std::uint32_t kMaxLibvirtXml = 16u << 20;

struct XlHeaderInfo {
  std::uint64_t offset = 0;
  ByteOrder order = ByteOrder::kLittle;  // the saving host's
  std::uint32_t byteorder = 0;           // as read in `order`: 0x01020304
  std::uint32_t mandatory_flags = 0;
  std::uint32_t optional_flags = 0;
  std::uint32_t optional_data_len = 0;
  // From the optional data: u32 config_len then the config. Absent when the
  // optional data is shorter than 4 octets.
  std::optional<std::uint32_t> config_len;
  std::string config;  // config_len octets (JSON includes its NUL)
  bool json() const { return (mandatory_flags & 1) != 0; }
  bool stream_v2() const { return (mandatory_flags & 2) != 0; }
};

struct LibvirtHeaderInfo {
  std::uint64_t offset = 0;
  std::uint32_t version = 0;
  std::uint32_t xml_len = 0;
  bool unused_zero = true;
  std::string xml;  // xml_len octets, NUL included when present
};

struct ContainerInfo {
  ContainerKind kind = ContainerKind::kNone;
  std::optional<XlHeaderInfo> xl;
  std::optional<LibvirtHeaderInfo> libvirt;
  PayloadKind payload = PayloadKind::kLegacy;
  std::uint64_t payload_offset = 0;
};

enum class FormatHint : std::uint8_t { kAuto, kXl, kLibvirt, kLibxl, kLibxc };

// Reads any container header (or, with a hint, the one named) and classifies
// the payload that follows by its first octets, without consuming them. A
// payload that is neither libxl nor libxc is reported as kLegacy: that is a
// best-effort answer ("looks like a legacy image"); the legacy parser decides.
// An input that ends inside a container, libxl or libxc magic (a non-empty
// proper prefix of it) is that header truncated: kTruncated, as if the
// header had been read, e.g. "unexpected end of data while reading the xl
// save header [0x0, 0x30)".
Expected<ContainerInfo> read_container(Source& src, FormatHint hint = FormatHint::kAuto);

// Classifies bytes at the start of a stream (no container): what
// read_container would say for a payload starting with `head`.
PayloadKind classify_payload(Bytes head);

// ---------------------------------------------------------------------------
// Writing container headers: what read_container reads back. One home for
// every writer of them (streamgen, streamsave, the test builders).

// An xl save header with its optional data: config_len, the config, then
// `extra` (which xl never writes; a test may).
struct XlHeaderSpec {
  ByteOrder order = ByteOrder::kLittle;  // the saving host's
  std::uint32_t mandatory_flags = 0;     // format::xl::kMandatory*
  std::uint32_t optional_flags = 0;
  std::string_view config;  // the text; xl stores a JSON config with its NUL
  bool config_nul = true;   // store (and count in config_len) a NUL after it
  Bytes extra;
};
std::vector<std::byte> xl_header_bytes(const XlHeaderSpec& spec);

// A libvirt-libxl save header and its XML (little-endian, as on every host
// libvirt's libxl driver runs on).
struct LibvirtHeaderSpec {
  std::uint32_t version = 2;  // format::libvirt::kVersion*
  std::string_view xml;
  bool xml_nul = true;  // libvirt stores the XML with its NUL
};
std::vector<std::byte> libvirt_header_bytes(const LibvirtHeaderSpec& spec);

}  // namespace xenstream
