// Guest-virtual to guest-physical translation by walking the guest's own x86
// page tables (spec/memview.md, "Page walks").
//
// Four shapes, chosen by the caller from the vCPU state (vcpu_state.h):
//   kNone     paging off: the address is the guest-physical address
//   kTwoLevel 32-bit paging: 4-octet entries, L2 (page directory) and L1;
//             4 MiB pages when the L2 entry has PS and cr4.PSE is on (PSE-36
//             address bits 39:32 from entry bits 20:13)
//   kPae      3 levels, 8-octet entries: a 4-entry L3 (PDPT) at cr3 bits
//             31:5, then L2 (PS: 2 MiB pages) and L1
//   kLong4    4 levels: L4, L3 (PS: 1 GiB pages), L2 (PS: 2 MiB), L1;
//             the address must be canonical (bits 63:47 all equal)
//   kLong5    the same under an L5 (cr4.LA57), canonical at bit 56
// A PV guest's tables in a save image hold pfns where the live tables hold
// mfns (Xen's saver rewrites them); both read the same here, since a pfn
// shifted by 12 is the guest-physical address of the frame.
//
// The walk reads at most one entry per level (at most five reads), so a
// hostile table (a loop back to itself, an entry beyond max_pfn, a cr3 that
// points at data) ends in a result or an error, never a hang. Every error
// names the level, the entry index and the pfn of the table that failed:
//   "L3 entry 0x1f at pfn 0x1234 not present".
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <xenstream/libstream/error.h>

namespace xenstream::memview {

enum class PagingMode : std::uint8_t { kNone, kTwoLevel, kPae, kLong4, kLong5 };

std::string_view paging_mode_name(PagingMode m);  // "none", "2-level", "pae", "4-level", "5-level"

struct PagingRoot {
  PagingMode mode = PagingMode::kNone;
  std::uint64_t cr3 = 0;  // as the CPU holds it (PV: a pfn << 12 here too)
  bool pse = false;       // cr4.PSE: 4 MiB pages in 2-level paging
  bool nxe = true;        // EFER.NXE: bit 63 is NX, not reserved (PAE/long)
  std::uint64_t max_pfn = (std::uint64_t{1} << 40) - 1;  // entries beyond are errors
};

// One level of a walk, for `translate` output.
struct WalkStep {
  unsigned level = 0;           // 5..1 (L5..L1)
  std::uint64_t table_pfn = 0;  // the table read at this level
  std::uint64_t index = 0;      // entry index in that table
  std::uint64_t entry = 0;      // its value
  bool leaf = false;            // maps the page (PS at L2/L3, or L1)
};

struct Translation {
  std::uint64_t gva = 0;
  std::uint64_t gpa = 0;
  std::uint64_t page_size = 4096;  // 4 KiB, 2 MiB, 4 MiB or 1 GiB
  bool writable = true;            // R/W on every level
  bool user = true;                // U/S on every level
  bool nx = false;                 // NX on any level
  std::vector<WalkStep> steps;     // top level first
};

// Reads one page-table entry of `size` octets (4 or 8) at guest-physical
// `gpa` (naturally aligned, inside one page). The memory's error is passed
// through with the level's context.
using EntryReader = std::function<Expected<std::uint64_t>(std::uint64_t gpa, unsigned size)>;

// Translates `gva`.
//   value:   the guest-physical address and the walk
//   kUsage:  not mapped: a non-canonical address, an entry not present, or a
//            table the memory cannot supply (never sent, XTAB) -- the message
//            names the level
//   kMalformed: an entry with reserved bits set, or pointing beyond max_pfn
Expected<Translation> translate(const PagingRoot& root, std::uint64_t gva, const EntryReader& read_entry);

}  // namespace xenstream::memview
