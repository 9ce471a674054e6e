// Rule table of streamverify (spec/verify-rules.md).
//
// Stream-level rules come from rules.def; the blob rules (HVMCTX-*, QEVM-*)
// from the walkers in libstream/blobs/. Every problem the verifier reports
// names one of these rules.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <xenstream/libstream/blobs/blob_finding.h>

namespace xenstream::verify {

using blobs::Enforcement;
using blobs::RuleInfo;
using Severity = blobs::FindingSeverity;

enum class Rule : std::uint16_t {
#define RULE(name, id, severity, enforcement, check) name,
#include "tools/verify/rules.def"
#undef RULE
  kCount
};

const RuleInfo& rule_info(Rule rule);

// Every rule: stream rules in rules.def order, then HVMCTX-*, then QEVM-*.
const std::vector<RuleInfo>& all_rules();

// The rule with this id, or nullptr.
const RuleInfo* find_rule(std::string_view id);

std::string_view severity_name(Severity s);        // "error" / "warning"
std::string_view enforcement_name(Enforcement e);  // "xen" / "qemu" / "strict"

}  // namespace xenstream::verify
