// Presenting a VerifyResult: the -v text summary and the --json document
// (schema in spec/verify-json.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tools/verify/verifier.h"

namespace xenstream::verify {

// Name of an HVM param index ("STORE_PFN"), or nullopt when Xen never
// defined one there.
std::optional<std::string_view> hvm_param_name(std::uint64_t index);

// Name of a PFINFO page-type nibble ("NOTAB", "L1TAB|PINNED", "XTAB", ...).
std::string_view page_type_name(unsigned nibble);

// The -v summary: several lines, each ending in '\n'.
std::string format_summary(const Summary& s);

// The --json document for `r` (spec/verify-json.md).
nlohmann::json to_json(const VerifyResult& r);

inline constexpr std::string_view kJsonSchema = "xenstream-streamverify/1";

}  // namespace xenstream::verify
