// Guessing a legacy stream's toolstack width and guest type from its first
// octets (spec/legacy.md, "Auto-detecting toolstack width and guest type").
//
// Four layouts are tried: PV from a 32- or 64-bit toolstack (an all-ones
// extended-info marker right after the p2m size, then a known block id) and
// HVM from a 32- or 64-bit toolstack (a plausible first chunk right after the
// p2m size; page batches must carry HVM page types, and 8-octet entries zero
// upper halves). Real savers' streams match exactly one; a stream that
// matches none or several is reported as such and the caller must ask for
// -w/-g instead of guessing.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <xenstream/libstream/source.h>
#include "tools/convert/legacy_reader.h"

namespace xenstream::convert {

// Octets of the stream start that detection looks at (p2m size, first chunk,
// up to 1024 batch entries of 8 octets).
inline constexpr std::size_t kDetectHead = 16 + 8 * 1024;

struct Detection {
  std::optional<LegacyLayout> layout;   // exactly one layout fits
  std::vector<LegacyLayout> fitting;    // every layout that fits
  std::string summary;                  // "64-bit toolstack, HVM guest" or what went wrong
  std::string reason;                   // why, one line per layout tried
};

// `head` is the start of the legacy stream (after any xl header), as much of
// it as is available up to kDetectHead. A known width or guest type narrows
// the layouts tried.
Detection detect_layout(Bytes head, std::optional<unsigned> width, std::optional<GuestType> guest);

std::string describe_layout(const LegacyLayout& layout);  // "64-bit toolstack, HVM guest"

}  // namespace xenstream::convert
