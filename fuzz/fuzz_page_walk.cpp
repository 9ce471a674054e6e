// Fuzz target: x86 page walks (tools/memview/page_walk.h) over arbitrary
// tables.
//
// The first 32 octets choose the walk: mode (octet 0), pse/nxe (octet 1),
// max_pfn (octets 2-3), cr3 (8-15), the address (16-23), a second address
// (24-31); the rest is guest-physical memory, page i at pfn i (a shorter last
// page is padded with zeros); pfns beyond it are not present. Checks that
// each walk ends, takes at most one step per level, that a leaf's page size
// is one the mode allows and the offset inside the page is the address's,
// and that errors carry a message naming a level or the address.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz/common/walk.h"
#include "tools/memview/page_walk.h"

namespace {

using namespace xenstream;
using namespace xenstream::memview;

std::uint64_t le(const std::uint8_t* p, unsigned n) {
  std::uint64_t v = 0;
  for (unsigned i = 0; i < n; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 32) return 0;
  PagingRoot root;
  const unsigned levels_by_mode[] = {0, 2, 3, 4, 5};
  root.mode = static_cast<PagingMode>(data[0] % 5);
  root.pse = (data[1] & 1) != 0;
  root.nxe = (data[1] & 2) != 0;
  root.max_pfn = le(data + 2, 2);
  root.cr3 = le(data + 8, 8);
  const std::uint8_t* mem = data + 32;
  const std::size_t mem_size = size - 32;
  const std::uint64_t pages = (mem_size + 4095) / 4096;
  EntryReader reader = [&](std::uint64_t gpa, unsigned n) -> Expected<std::uint64_t> {
    FUZZ_CHECK(n == 4 || n == 8, "entry of odd size");
    FUZZ_CHECK(gpa % n == 0, "unaligned entry");
    if ((gpa >> 12) >= pages) return make_error(ErrorCode::kUsage, 0, "pfn " + hex(gpa >> 12) + " is not present");
    std::uint8_t buf[8] = {};
    for (unsigned i = 0; i < n; ++i) {
      const std::uint64_t at = gpa + i;
      if (at < mem_size) buf[i] = mem[at];
    }
    return le(buf, n);
  };
  for (std::uint64_t va : {le(data + 16, 8), le(data + 24, 8)}) {
    auto t = translate(root, va, reader);
    if (!t) {
      const auto& msg = t.error().message;
      FUZZ_CHECK(!msg.empty(), "error without a message");
      continue;
    }
    const unsigned levels = levels_by_mode[static_cast<unsigned>(root.mode)];
    FUZZ_CHECK(t->steps.size() <= levels, "more steps than levels");
    const std::uint64_t ps = t->page_size;
    FUZZ_CHECK(ps == 4096 || ps == (2u << 20) || ps == (4u << 20) || ps == (1u << 30), "odd page size");
    FUZZ_CHECK((t->gpa & (ps - 1)) == (va & (ps - 1)), "offset inside the page changed");
  }
  return 0;
}
