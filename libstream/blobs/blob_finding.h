// Findings of the inner-blob walkers (HVM context, QEMU device state).
//
// The blobs inside HVM_CONTEXT and EMULATOR_CONTEXT records are opaque to
// the record layer. The walkers in this folder check their framing and
// report what they find as BlobFindings: a rule id from
// spec/verify-rules.md, a severity, where it happened (offset inside the
// blob and absolute offset in the input) and an operator's message.
//
// A walker stops at the first error-level finding ("the first
// inconsistency"); warnings found before it are kept.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <xenstream/libstream/error.h>

namespace xenstream::blobs {

enum class FindingSeverity : std::uint8_t { kError, kWarning };

// How a rule is enforced: by Xen (or QEMU for device state) when restoring,
// or only by xenstream (stricter than the restorer).
enum class Enforcement : std::uint8_t { kXen, kQemu, kStrict };

struct RuleInfo {
  std::string_view id;  // "HVMCTX-05"
  FindingSeverity severity;
  Enforcement enforcement;
  std::string_view check;  // one line: what is checked
};

struct BlobFinding {
  std::string_view rule;  // points into a static RuleInfo table
  FindingSeverity severity = FindingSeverity::kError;
  std::uint64_t blob_offset = 0;  // offset inside the blob
  std::uint64_t file_offset = 0;  // absolute offset in the input
  std::string message;            // without location or rule id
};

// "blob offset 0x10 (file offset 0x2a10): <message> [RULE]".
std::string describe(const BlobFinding& f);

// Turns the first error-level finding into an Error located at its file
// offset (message as describe()). Precondition: `findings` holds one.
Error first_error(const std::vector<BlobFinding>& findings, std::string_view what);

bool has_error(const std::vector<BlobFinding>& findings);

}  // namespace xenstream::blobs
