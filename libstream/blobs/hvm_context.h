// Walker for the HVM context blob (spec/hvm-context.md §A): the body of a
// libxc HVM_CONTEXT record and of the legacy HVM tail's context.
//
// The blob is a packed chain of descriptors {u16 typecode, u16 instance,
// u32 length} each followed by `length` octets, little-endian, starting with
// HEADER and ending with END. The walker checks the chain without loading
// anything: framing, HEADER fields, known typecodes, length rules (exact or
// zero-extended, current and historical sizes), instance rules, duplicates,
// save order, per-vcpu entries backed by a CPU entry, the END descriptor.
// It stops at the first error (see blob_finding.h).
//
// Memory: a fixed 21 x 65536-bit table for (typecode, instance) pairs, plus
// the summary; nothing grows with the blob.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include <xenstream/libstream/blobs/blob_finding.h>
#include <xenstream/libstream/source.h>

namespace xenstream::blobs {

inline constexpr std::uint32_t kHvmFileMagic = 0x54381286;
inline constexpr std::uint32_t kHvmFileVersion = 1;
inline constexpr std::uint16_t kHvmCodeEnd = 0;
inline constexpr std::uint16_t kHvmCodeHeader = 1;
inline constexpr std::uint16_t kHvmCodeCpu = 2;
inline constexpr std::uint16_t kHvmCodeMax = 20;
// Project cap on vcpu ids (spec/README.md §4).
inline constexpr std::uint32_t kMaxVcpus = 4096;

// Name of a typecode ("CPU", "LAPIC_REGS"), or nullopt when not known.
std::optional<std::string_view> hvm_typecode_name(std::uint16_t code);

struct HvmContextOptions {
  // The domain's vcpu count when known (e.g. from the embedded config);
  // per-vcpu instances must be below it. Otherwise the project cap applies.
  std::optional<std::uint32_t> vcpu_count;
};

struct HvmContextSummary {
  bool header_valid = false;  // a HEADER descriptor with its 24-octet body
  std::uint32_t magic = 0;
  std::uint32_t version = 0;
  std::uint64_t changeset = 0;
  std::uint32_t cpuid = 0;
  std::uint32_t gtsc_khz = 0;
  std::uint64_t entries = 0;                 // descriptors before END
  std::array<std::uint32_t, kHvmCodeMax + 1> count_by_code{};  // [typecode]
  std::uint32_t vcpus = 0;                   // distinct CPU instances
  std::optional<std::uint64_t> end_offset;   // blob offset of END
  std::uint64_t trailing = 0;                // octets after END
};

struct HvmContextReport {
  HvmContextSummary summary;
  std::vector<BlobFinding> findings;
  bool ok() const { return !has_error(findings); }
};

// Checks `blob`; `file_offset` is the absolute offset of its first octet.
HvmContextReport check_hvm_context(Bytes blob, std::uint64_t file_offset,
                                   const HvmContextOptions& options = {});

// Same walk; the first error as an Error (kMalformed) located in the file.
Expected<HvmContextSummary> walk_hvm_context(Bytes blob, std::uint64_t file_offset,
                                             const HvmContextOptions& options = {});

// Rules the walker can report (ids HVMCTX-*), for rule tables and docs.
std::span<const RuleInfo> hvm_context_rules();

}  // namespace xenstream::blobs
