#include "tools/restore/names.h"

#include <array>
#include <string_view>

namespace xenstream::restore {

std::string hvm_param_name(std::uint64_t index) {
  // Indexes 3, 7 and 8 never had a name in a released Xen.
  static constexpr std::array<std::string_view, 39> kNames = {
      "CALLBACK_IRQ",
      "STORE_PFN",
      "STORE_EVTCHN",
      "",
      "PAE_ENABLED",
      "IOREQ_PFN",
      "BUFIOREQ_PFN",
      "",
      "",
      "VIRIDIAN",
      "TIMER_MODE",
      "HPET_ENABLED",
      "IDENT_PT",
      "DM_DOMAIN",
      "ACPI_S_STATE",
      "VM86_TSS",
      "VPT_ALIGN",
      "CONSOLE_PFN",
      "CONSOLE_EVTCHN",
      "ACPI_IOPORTS_LOCATION",
      "MEMORY_EVENT_CR0",
      "MEMORY_EVENT_CR3",
      "MEMORY_EVENT_CR4",
      "MEMORY_EVENT_INT3",
      "NESTEDHVM",
      "MEMORY_EVENT_SINGLE_STEP",
      "BUFIOREQ_EVTCHN",
      "PAGING_RING_PFN",
      "MONITOR_RING_PFN",
      "SHARING_RING_PFN",
      "MEMORY_EVENT_MSR",
      "TRIPLE_FAULT_REASON",
      "IOREQ_SERVER_PFN",
      "NR_IOREQ_SERVER_PAGES",
      "VM_GENERATION_ID_ADDR",
      "ALTP2M",
      "X87_FIP_WIDTH",
      "VM86_TSS_SIZED",
      "MCA_CAP",
  };
  if (index < kNames.size() && !kNames[index].empty()) return std::string(kNames[index]);
  return "PARAM_" + std::to_string(index);
}

std::string page_type_name(unsigned nibble) {
  static constexpr std::array<std::string_view, 16> kNames = {
      "notab",        "l1tab",        "l2tab",        "l3tab",
      "l4tab",        "reserved_5",   "reserved_6",   "reserved_7",
      "reserved_8",   "l1tab_pinned", "l2tab_pinned", "l3tab_pinned",
      "l4tab_pinned", "broken",       "xalloc",       "xtab",
  };
  return std::string(kNames[nibble & 0xF]);
}

std::string tsc_mode_name(std::uint32_t mode) {
  switch (mode) {
    case 0: return "default";
    case 1: return "always_emulate";
    case 2: return "never_emulate";
    case 3: return "pvrdtscp";
    default: return "mode_" + std::to_string(mode);
  }
}

}  // namespace xenstream::restore
