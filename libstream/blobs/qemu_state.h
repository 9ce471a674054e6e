// Walker for QEMU device-state / migration streams ("QEVM", version 3),
// spec/hvm-context.md §B: the body of a libxl EMULATOR_CONTEXT record after
// its 8-octet sub-header, or a file written by QMP xen-save-devices-state or
// a migration to a file.
//
// What it checks: magic and version; an optional CONFIGURATION section at
// the start; every section header (START, PART, END, FULL: section id,
// counted idstr, instance and version); COMMAND tokens; section footers;
// the EOF marker; and what may follow EOF (a VMDESCRIPTION).
//
// Payloads are unframed (their layout is known only to the QEMU that wrote
// them), so the end of a payload is found by scanning for the next plausible
// token: a footer for the current section, a well-formed section header with
// a printable idstr, a COMMAND (generic profile only), or an EOF octet that
// is the last octet of the blob or is followed by a well-formed
// VMDESCRIPTION. Payload octets can imitate a header, so section boundaries
// are a heuristic; the header checks themselves are exact.
//
// The walk stops at the first error (blob_finding.h). It never allocates in
// proportion to the blob, only to the number of sections listed (capped).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <xenstream/libstream/blobs/blob_finding.h>
#include <xenstream/libstream/source.h>

namespace xenstream::blobs {

inline constexpr std::uint32_t kQemuMagic = 0x5145564D;  // "QEVM"
inline constexpr std::uint32_t kQemuVersion = 3;

// Token types (spec/hvm-context.md §B.2).
inline constexpr std::uint8_t kQemuEof = 0x00;
inline constexpr std::uint8_t kQemuSectionStart = 0x01;
inline constexpr std::uint8_t kQemuSectionPart = 0x02;
inline constexpr std::uint8_t kQemuSectionEnd = 0x03;
inline constexpr std::uint8_t kQemuSectionFull = 0x04;
inline constexpr std::uint8_t kQemuVmDescription = 0x06;
inline constexpr std::uint8_t kQemuConfiguration = 0x07;
inline constexpr std::uint8_t kQemuCommand = 0x08;
inline constexpr std::uint8_t kQemuSectionFooter = 0x7E;

struct QemuWalkOptions {
  // Check the blob as a Xen device-model state (what QMP
  // xen-save-devices-state writes under accel=xen): CONFIGURATION and
  // footers are errors (QEMU under Xen refuses them), anything but FULL
  // sections, COMMANDs and a VMDESCRIPTION are warnings. Turn it off for
  // streams from a plain QEMU (full migrations, footers on).
  bool xen_device_state = true;
  // Sections kept in the summary; the rest are only counted.
  std::size_t max_sections_listed = 4096;
};

struct QemuSection {
  std::uint8_t type = 0;  // kQemuSection*
  std::uint32_t section_id = 0;
  std::string idstr;      // START and FULL only
  std::uint32_t instance_id = 0;
  std::uint32_t version_id = 0;
  std::uint64_t offset = 0;          // blob offset of the type octet
  std::uint64_t payload_offset = 0;  // blob offset of the payload
  std::uint64_t payload_size = 0;    // up to the footer or the next token
  bool footer = false;
};

struct QemuStateSummary {
  std::uint32_t version = 0;
  bool configuration = false;
  std::string machine_type;  // from CONFIGURATION
  std::vector<QemuSection> sections;  // at most max_sections_listed
  std::uint64_t sections_total = 0;
  std::uint64_t footers = 0;
  std::uint64_t commands = 0;
  std::optional<std::uint64_t> eof_offset;
  std::optional<std::uint64_t> vmdescription_size;  // JSON octets
  std::uint64_t trailing = 0;  // octets after EOF not explained by a VMDESCRIPTION
};

struct QemuStateReport {
  QemuStateSummary summary;
  std::vector<BlobFinding> findings;
  bool ok() const { return !has_error(findings); }
};

// Checks `blob`; `file_offset` is the absolute offset of its first octet.
QemuStateReport check_qemu_state(Bytes blob, std::uint64_t file_offset,
                                 const QemuWalkOptions& options = {});

// Same walk; the first error as an Error (kMalformed) located in the file.
Expected<QemuStateSummary> walk_qemu_state(Bytes blob, std::uint64_t file_offset,
                                           const QemuWalkOptions& options = {});

// "SECTION_FULL", "SECTION_START", ... for a token type.
std::string_view qemu_token_name(std::uint8_t type);

// Rules the walker can report (ids QEVM-*), for rule tables and docs.
std::span<const RuleInfo> qemu_state_rules();

}  // namespace xenstream::blobs
