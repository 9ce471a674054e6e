#include "tools/verify/rules.h"

#include <xenstream/libstream/blobs/hvm_context.h>
#include <xenstream/libstream/blobs/qemu_state.h>

namespace xenstream::verify {

namespace {

constexpr RuleInfo kStreamRules[] = {
#define RULE(name, id, severity, enforcement, check) \
  {id, Severity::k##severity, Enforcement::k##enforcement, check},
#include "tools/verify/rules.def"
#undef RULE
};
static_assert(std::size(kStreamRules) == static_cast<std::size_t>(Rule::kCount));

}  // namespace

const RuleInfo& rule_info(Rule rule) { return kStreamRules[static_cast<std::size_t>(rule)]; }

const std::vector<RuleInfo>& all_rules() {
  static const std::vector<RuleInfo> all = [] {
    std::vector<RuleInfo> v(std::begin(kStreamRules), std::end(kStreamRules));
    for (const RuleInfo& r : blobs::hvm_context_rules()) v.push_back(r);
    for (const RuleInfo& r : blobs::qemu_state_rules()) v.push_back(r);
    return v;
  }();
  return all;
}

const RuleInfo* find_rule(std::string_view id) {
  for (const RuleInfo& r : all_rules()) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

std::string_view severity_name(Severity s) {
  return s == Severity::kError ? "error" : "warning";
}

std::string_view enforcement_name(Enforcement e) {
  switch (e) {
    case Enforcement::kXen: return "xen";
    case Enforcement::kQemu: return "qemu";
    case Enforcement::kStrict: return "strict";
  }
  return "?";
}

}  // namespace xenstream::verify
