// Fuzz target: the memview index (tools/memview/guest_memory.h) and page
// walks from the vCPU state it decodes.
//
// Indexes the input as a save image, then checks the index: extents sorted
// and disjoint, never empty, data extents inside the input; every extent's
// first and last page readable exactly when it is data or zero; find() agrees
// with the extents; page-walk translations from every vCPU for a few
// addresses end (with a result of at most five steps, or an error that is
// described). A checkpointed input is indexed again at checkpoint 1, which
// must open (a broken vCPU record there only sets vcpu_error).
#include <cstddef>
#include <cstdint>

#include "fuzz/common/walk.h"
#include "tools/memview/guest_memory.h"

namespace {

using namespace xenstream;
using namespace xenstream::memview;

void check(const GuestMemory& m, std::size_t size) {
  std::uint64_t prev_end = 0;
  bool first = true;
  for (const Extent& x : m.extents()) {
    FUZZ_CHECK(x.count > 0, "empty extent");
    FUZZ_CHECK(first || x.begin >= prev_end, "extents overlap or are unsorted");
    first = false;
    prev_end = x.end();
    if (x.state == PageState::kData) {
      FUZZ_CHECK(x.offset <= size && (size - x.offset) / kPageSize >= x.count, "data extent beyond the input");
    }
    for (std::uint64_t pfn : {x.begin, x.end() - 1}) {
      FUZZ_CHECK(m.find(pfn) == &x, "find() disagrees with the extents");
      auto p = m.page(pfn);
      const bool present = x.state == PageState::kData || x.state == PageState::kZero;
      FUZZ_CHECK(p.has_value() == present, "page() presence disagrees with the extent state");
      if (p) FUZZ_CHECK(p->size() == kPageSize, "page of the wrong size");
    }
  }
  std::vector<std::byte> scratch;
  if (!m.extents().empty()) {
    const Extent& x = m.extents().front();
    auto r = m.read(x.begin * kPageSize + 100, 3 * kPageSize, scratch);
    if (r) FUZZ_CHECK(r->size() == 3 * kPageSize, "read of the wrong size");
  }
  for (const VcpuRegs& v : m.vcpus()) {
    for (std::uint64_t va : {std::uint64_t{0}, v.rip, v.rsp, std::uint64_t{0xffffffff81000000}}) {
      for (bool user : {false, true}) {
        auto t = m.translate(v.id, va, user);
        if (t) {
          FUZZ_CHECK(t->steps.size() <= 5, "walk longer than five levels");
        } else {
          FUZZ_CHECK(!t.error().message.empty(), "error without a message");
        }
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  OpenOptions o;
  o.max_extents = 1u << 16;
  auto m = GuestMemory::open_bytes(in, o);
  if (!m) {
    FUZZ_CHECK(!m.error().message.empty(), "error without a message");
    return 0;
  }
  check(**m, size);
  if ((*m)->info().checkpoints > 1) {
    o.checkpoint = 1;
    auto first = GuestMemory::open_bytes(in, o);
    FUZZ_CHECK(first.has_value(), "checkpoint 1 of a stream with more cannot be opened: " + first.error().message);
    FUZZ_CHECK((*first)->info().checkpoint == 1, "opened at the wrong checkpoint");
    check(**first, size);
  }
  return 0;
}
