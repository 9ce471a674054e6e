// Display names used in the restored domain's manifest.
#pragma once

#include <cstdint>
#include <string>

namespace xenstream::restore {

// HVM param names as in Xen's public/hvm/params.h without the HVM_PARAM_
// prefix ("STORE_PFN"); "PARAM_<n>" for an index without a name.
std::string hvm_param_name(std::uint64_t index);

// PFINFO type nibble: "notab", "l1tab".."l4tab", "l1tab_pinned".., "broken",
// "xalloc", "xtab", "reserved_5".."reserved_8".
std::string page_type_name(unsigned nibble);

// X86_TSC_INFO mode: "default", "always_emulate", "never_emulate",
// "pvrdtscp", or "mode_<n>".
std::string tsc_mode_name(std::uint32_t mode);

}  // namespace xenstream::restore
