// x86 page walks: see page_walk.h.
#include "tools/memview/page_walk.h"

namespace xenstream::memview {
namespace {

constexpr std::uint64_t kPresent = 1u << 0;
constexpr std::uint64_t kRw = 1u << 1;
constexpr std::uint64_t kUser = 1u << 2;
constexpr std::uint64_t kPs = 1u << 7;
constexpr std::uint64_t kNx = std::uint64_t{1} << 63;
constexpr std::uint64_t kAddr52 = 0x000FFFFFFFFFF000ull;

std::string where(unsigned level, std::uint64_t index, std::uint64_t table_pfn) {
  return "L" + std::to_string(level) + " entry " + hex(index) + " at pfn " + hex(table_pfn);
}

Error not_mapped(std::string m) { return make_error(ErrorCode::kUsage, 0, std::move(m)); }
Error bad(std::string m) { return make_error(ErrorCode::kMalformed, 0, std::move(m)); }

}  // namespace

std::string_view paging_mode_name(PagingMode m) {
  switch (m) {
    case PagingMode::kNone: return "none";
    case PagingMode::kTwoLevel: return "2-level";
    case PagingMode::kPae: return "pae";
    case PagingMode::kLong4: return "4-level";
    case PagingMode::kLong5: return "5-level";
  }
  return "?";
}

Expected<Translation> translate(const PagingRoot& root, std::uint64_t gva, const EntryReader& read_entry) {
  Translation t;
  t.gva = gva;
  if (root.mode == PagingMode::kNone) {
    t.gpa = gva;
    return t;
  }

  unsigned levels = 0;
  unsigned entry_size = 8;
  std::uint64_t table = 0;  // guest-physical address of the current table
  switch (root.mode) {
    case PagingMode::kTwoLevel:
      levels = 2;
      entry_size = 4;
      if (gva > 0xFFFFFFFFull) return not_mapped("address " + hex(gva) + " is beyond 4 GiB (2-level paging)");
      table = root.cr3 & 0xFFFFF000ull;
      break;
    case PagingMode::kPae:
      levels = 3;
      if (gva > 0xFFFFFFFFull) return not_mapped("address " + hex(gva) + " is beyond 4 GiB (PAE paging)");
      table = root.cr3 & 0xFFFFFFE0ull;
      break;
    case PagingMode::kLong4:
    case PagingMode::kLong5: {
      levels = root.mode == PagingMode::kLong4 ? 4 : 5;
      const unsigned top = levels == 4 ? 47 : 56;
      const auto high = static_cast<std::int64_t>(gva) >> top;
      if (high != 0 && high != -1) return not_mapped("address " + hex(gva) + " is not canonical");
      table = root.cr3 & kAddr52;
      break;
    }
    case PagingMode::kNone: break;
  }

  for (unsigned level = levels; level >= 1; --level) {
    // Index bits: 8-octet entries take 9 bits per level above bit 12 (PAE's
    // top level takes the 2 bits 31:30); 4-octet entries take 10.
    const unsigned shift = entry_size == 4 ? 12 + 10 * (level - 1) : 12 + 9 * (level - 1);
    std::uint64_t index = entry_size == 4 ? (gva >> shift) & 0x3FF : (gva >> shift) & 0x1FF;
    if (root.mode == PagingMode::kPae && level == 3) index = (gva >> 30) & 3;
    const std::uint64_t table_pfn = table >> 12;
    if (table_pfn > root.max_pfn) {
      // Only reachable for cr3 itself: deeper tables are checked where their
      // entry is read.
      return bad("cr3 " + hex(root.cr3) + " points at pfn " + hex(table_pfn) + ", beyond max_pfn " +
                 hex(root.max_pfn));
    }
    const std::uint64_t entry_gpa = table + index * entry_size;
    auto e = read_entry(entry_gpa, entry_size);
    if (!e) {
      return std::move(e).error().with_context("L" + std::to_string(level) + " table at pfn " + hex(table_pfn) +
                                               " (entry " + hex(index) + ")");
    }
    const std::uint64_t entry = *e;
    WalkStep step{level, table_pfn, index, entry, false};
    t.steps.push_back(step);
    if ((entry & kPresent) == 0) return not_mapped(where(level, index, table_pfn) + " not present");

    // Reserved bits.
    if (entry_size == 8) {
      if ((entry & kNx) != 0 && !root.nxe) return bad(where(level, index, table_pfn) + " has NX set without EFER.NXE: " + hex(entry));
      if (root.mode == PagingMode::kPae && level == 3 && (entry & 0x80000000000001E6ull) != 0) {
        return bad(where(level, index, table_pfn) + " (PDPT) has reserved bits set: " + hex(entry));
      }
      if (level >= 4 && (entry & kPs) != 0) return bad(where(level, index, table_pfn) + " has PS set (reserved at this level): " + hex(entry));
    }
    if ((entry & kRw) == 0) t.writable = false;
    if ((entry & kUser) == 0 && !(root.mode == PagingMode::kPae && level == 3)) t.user = false;
    if (entry_size == 8 && (entry & kNx) != 0) t.nx = true;

    const bool large = level > 1 && (entry & kPs) != 0 &&
                       ((entry_size == 4 && level == 2 && root.pse) ||
                        (entry_size == 8 && (level == 2 || (level == 3 && root.mode != PagingMode::kPae))));
    if (level == 1 || large) {
      t.steps.back().leaf = true;
      std::uint64_t frame = 0;
      if (entry_size == 4) {
        if (large) {
          // PSE-36: bits 20:13 of the entry are address bits 39:32.
          frame = (entry & 0xFFC00000ull) | ((entry >> 13) & 0xFFull) << 32;
          t.page_size = std::uint64_t{1} << 22;
        } else {
          frame = entry & 0xFFFFF000ull;
        }
      } else {
        t.page_size = std::uint64_t{1} << shift;
        const std::uint64_t mask = kAddr52 & ~(t.page_size - 1);
        // Bits between 12 (PAT) and the page size must be zero.
        if (large && (entry & kAddr52 & (t.page_size - 1) & ~0x1FFFull) != 0) {
          return bad(where(level, index, table_pfn) + " maps a " + (level == 3 ? "1 GiB" : "2 MiB") +
                     " page with reserved address bits set: " + hex(entry));
        }
        frame = entry & mask;
      }
      t.gpa = frame | (gva & (t.page_size - 1));
      return t;
    }
    const std::uint64_t next = entry_size == 4 ? entry & 0xFFFFF000ull : entry & kAddr52;
    if ((next >> 12) > root.max_pfn) {
      return bad(where(level, index, table_pfn) + " points at pfn " + hex(next >> 12) + ", beyond max_pfn " +
                 hex(root.max_pfn));
    }
    table = next;
  }
  return bad("page walk of " + hex(gva) + " ended without a leaf");  // not reached: L1 is always a leaf
}

}  // namespace xenstream::memview
