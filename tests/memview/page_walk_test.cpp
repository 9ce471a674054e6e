// Page walks over synthetic page tables of every shape, and hostile ones.
#include "tools/memview/page_walk.h"

#include <gtest/gtest.h>

#include <array>
#include <map>

namespace mv = xenstream::memview;
using mv::PagingMode;
using mv::PagingRoot;
using xenstream::ErrorCode;

namespace {

// Guest-physical memory as a map of pages; a pfn not in it is not present.
struct FakeMemory {
  std::map<std::uint64_t, std::array<std::uint8_t, 4096>> pages;
  void set64(std::uint64_t pfn, std::uint64_t index, std::uint64_t v) {
    auto& p = pages[pfn];
    for (int i = 0; i < 8; ++i) p[index * 8 + i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
  void set32(std::uint64_t pfn, std::uint64_t index, std::uint32_t v) {
    auto& p = pages[pfn];
    for (int i = 0; i < 4; ++i) p[index * 4 + i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
  // A PAE PDPT lives at a 32-octet-aligned address inside a page.
  void set64_at(std::uint64_t gpa, std::uint64_t v) {
    auto& p = pages[gpa >> 12];
    for (int i = 0; i < 8; ++i) p[(gpa & 0xFFF) + i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
  mv::EntryReader reader() const {
    return [this](std::uint64_t gpa, unsigned size) -> xenstream::Expected<std::uint64_t> {
      auto it = pages.find(gpa >> 12);
      if (it == pages.end()) {
        return xenstream::make_error(ErrorCode::kUsage, 0, "pfn " + xenstream::hex(gpa >> 12) + " is not present");
      }
      std::uint64_t v = 0;
      for (unsigned i = 0; i < size; ++i) v |= std::uint64_t{it->second[(gpa & 0xFFF) + i]} << (8 * i);
      return v;
    };
  }
};

constexpr std::uint64_t P = 1, RW = 2, US = 4, PS = 0x80;
constexpr std::uint64_t NX = std::uint64_t{1} << 63;

PagingRoot root(PagingMode m, std::uint64_t cr3, std::uint64_t max_pfn = 0xFFFFF) {
  PagingRoot r;
  r.mode = m;
  r.cr3 = cr3;
  r.max_pfn = max_pfn;
  r.pse = true;
  return r;
}

// 0xffffffff81000123: L4 511, L3 510, L2 8, L1 0, offset 0x123.
constexpr std::uint64_t kKernelVa = 0xffffffff81000123ull;

FakeMemory long4_tables() {
  FakeMemory m;
  m.set64(0x10, 511, (0x11 << 12) | P | RW);
  m.set64(0x11, 510, (0x12 << 12) | P | RW);
  m.set64(0x12, 8, (0x13 << 12) | P | RW);
  m.set64(0x13, 0, (0x20 << 12) | P | NX);
  m.pages[0x20];
  return m;
}

}  // namespace

TEST(PageWalk, NoPagingIsIdentity) {
  FakeMemory m;
  auto t = mv::translate(root(PagingMode::kNone, 0), 0x12345, m.reader());
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->gpa, 0x12345u);
  EXPECT_TRUE(t->steps.empty());
}

TEST(PageWalk, FourLevelFourKiB) {
  const FakeMemory m = long4_tables();
  auto t = mv::translate(root(PagingMode::kLong4, 0x10 << 12), kKernelVa, m.reader());
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->gpa, (0x20u << 12) | 0x123);
  EXPECT_EQ(t->page_size, 4096u);
  ASSERT_EQ(t->steps.size(), 4u);
  EXPECT_EQ(t->steps[0].level, 4u);
  EXPECT_EQ(t->steps[0].table_pfn, 0x10u);
  EXPECT_EQ(t->steps[0].index, 511u);
  EXPECT_EQ(t->steps[1].index, 510u);
  EXPECT_EQ(t->steps[2].index, 8u);
  EXPECT_EQ(t->steps[3].index, 0u);
  EXPECT_TRUE(t->steps[3].leaf);
  EXPECT_TRUE(t->nx);
  EXPECT_FALSE(t->user);
  EXPECT_FALSE(t->writable);  // the L1 entry lacks R/W
}

TEST(PageWalk, FourLevelTwoMiBAndOneGiB) {
  FakeMemory m = long4_tables();
  m.set64(0x12, 8, (std::uint64_t{0x40000000} + 0x200000 * 3) | P | PS);  // 2 MiB
  auto t = mv::translate(root(PagingMode::kLong4, 0x10 << 12), kKernelVa + 0x54321, m.reader());
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->page_size, 2u << 20);
  EXPECT_EQ(t->gpa, 0x40000000u + 0x200000 * 3 + 0x54321 + 0x123);
  EXPECT_EQ(t->steps.size(), 3u);
  EXPECT_FALSE(t->writable);

  m.set64(0x11, 510, (std::uint64_t{5} << 30) | P | RW | PS);  // 1 GiB
  t = mv::translate(root(PagingMode::kLong4, 0x10 << 12), kKernelVa, m.reader());
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->page_size, 1u << 30);
  EXPECT_EQ(t->gpa, (std::uint64_t{5} << 30) + 0x1000123);
  EXPECT_EQ(t->steps.size(), 2u);

  // A 1 GiB entry with address bits inside the page set is reserved.
  m.set64(0x11, 510, (std::uint64_t{5} << 30) | 0x200000 | P | PS);
  t = mv::translate(root(PagingMode::kLong4, 0x10 << 12), kKernelVa, m.reader());
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(t.error().message, "L3 entry 0x1fe at pfn 0x11 maps a 1 GiB page with reserved address bits set: 0x140200081");
}

TEST(PageWalk, FiveLevel) {
  FakeMemory m = long4_tables();
  m.set64(0x9, 0x1FF, (0x10 << 12) | P);
  // With LA57 the kernel address needs bits 56:48 set too.
  auto t = mv::translate(root(PagingMode::kLong5, 0x9 << 12), kKernelVa, m.reader());
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->gpa, (0x20u << 12) | 0x123);
  EXPECT_EQ(t->steps.size(), 5u);
}

TEST(PageWalk, PaeFourKiBAndTwoMiB) {
  FakeMemory m;
  // cr3 = 0x3020: the PDPT is 32-octet aligned inside pfn 3.
  const std::uint64_t va = 0xC0401234;  // PDPT 3, PD 2, PT 1, offset 0x234
  m.set64_at(0x3020 + 3 * 8, (0x4 << 12) | P);
  m.set64(0x4, 2, (0x5 << 12) | P | RW | US);
  m.set64(0x5, 1, (0x77 << 12) | P | RW | US);
  auto t = mv::translate(root(PagingMode::kPae, 0x3020), va, m.reader());
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->gpa, (0x77u << 12) | 0x234);
  ASSERT_EQ(t->steps.size(), 3u);
  EXPECT_EQ(t->steps[0].level, 3u);
  EXPECT_EQ(t->steps[0].index, 3u);
  EXPECT_TRUE(t->user);

  m.set64(0x4, 2, 0x1600000 | P | PS);
  t = mv::translate(root(PagingMode::kPae, 0x3020), va, m.reader());
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->page_size, 2u << 20);
  EXPECT_EQ(t->gpa, 0x1600000u + 0x1234);

  // Reserved bits in a PDPT entry.
  m.set64_at(0x3020 + 3 * 8, (0x4 << 12) | P | 0x2);
  t = mv::translate(root(PagingMode::kPae, 0x3020), va, m.reader());
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().message, "L3 entry 0x3 at pfn 0x3 (PDPT) has reserved bits set: 0x4003");
}

TEST(PageWalk, TwoLevelWithPse) {
  FakeMemory m;
  const std::uint64_t va = 0x80C05678;  // PD 0x203, PT 0x5, offset 0x678
  m.set32(0x7, 0x203, (0x8 << 12) | P | RW);
  m.set32(0x8, 0x5, (0x99 << 12) | P);
  auto t = mv::translate(root(PagingMode::kTwoLevel, 0x7 << 12), va, m.reader());
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->gpa, (0x99u << 12) | 0x678);
  EXPECT_EQ(t->steps.size(), 2u);
  EXPECT_EQ(t->steps[0].level, 2u);
  EXPECT_FALSE(t->writable);

  // 4 MiB page, with PSE-36 bits 20:13 = 0x3 giving address bits 33:32.
  m.set32(0x7, 0x203, 0x00C00000 | (0x3 << 13) | P | PS);
  t = mv::translate(root(PagingMode::kTwoLevel, 0x7 << 12), va, m.reader());
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->page_size, 4u << 20);
  EXPECT_EQ(t->gpa, (std::uint64_t{3} << 32) | 0x00C00000 | 0x5678);

  // Without cr4.PSE the PS bit is ignored: the entry names a page table.
  PagingRoot r = root(PagingMode::kTwoLevel, 0x7 << 12);
  r.pse = false;
  m.set32(0x7, 0x203, (0x8 << 12) | P | PS);
  t = mv::translate(r, va, m.reader());
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->gpa, (0x99u << 12) | 0x678);

  t = mv::translate(r, 0x100000000ull, m.reader());
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().message, "address 0x100000000 is beyond 4 GiB (2-level paging)");
}

TEST(PageWalk, NotPresentNamesTheLevel) {
  FakeMemory m = long4_tables();
  m.set64(0x11, 510, 0x12000);  // present bit clear
  auto t = mv::translate(root(PagingMode::kLong4, 0x10 << 12), kKernelVa, m.reader());
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, ErrorCode::kUsage);
  EXPECT_EQ(t.error().message, "L3 entry 0x1fe at pfn 0x11 not present");
}

TEST(PageWalk, TableMissingFromTheImage) {
  FakeMemory m = long4_tables();
  m.pages.erase(0x12);
  auto t = mv::translate(root(PagingMode::kLong4, 0x10 << 12), kKernelVa, m.reader());
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().message, "L2 table at pfn 0x12 (entry 0x8): pfn 0x12 is not present");
}

TEST(PageWalk, NonCanonical) {
  FakeMemory m = long4_tables();
  auto t = mv::translate(root(PagingMode::kLong4, 0x10 << 12), 0x0000800000000000ull, m.reader());
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().message, "address 0x800000000000 is not canonical");
}

TEST(PageWalk, HostileLoopEndsInAResultNotAHang) {
  // Every L4 entry points back at the L4 itself: the walk reads the same
  // table four times and the last read is taken as the leaf.
  FakeMemory m;
  for (int i = 0; i < 512; ++i) m.set64(0x10, i, (0x10 << 12) | P | RW);
  auto t = mv::translate(root(PagingMode::kLong4, 0x10 << 12), 0xffff804020100abcull, m.reader());
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->gpa, (0x10u << 12) | 0xabc);
  EXPECT_EQ(t->steps.size(), 4u);
}

TEST(PageWalk, HostileEntryBeyondMaxPfn) {
  FakeMemory m = long4_tables();
  m.set64(0x10, 511, (std::uint64_t{0x123456789} << 12) | P);
  auto t = mv::translate(root(PagingMode::kLong4, 0x10 << 12, 0x1000), kKernelVa, m.reader());
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(t.error().message, "L4 entry 0x1ff at pfn 0x10 points at pfn 0x123456789, beyond max_pfn 0x1000");

  auto c = mv::translate(root(PagingMode::kLong4, std::uint64_t{0x5000} << 12, 0x1000), kKernelVa, m.reader());
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().message, "cr3 0x5000000 points at pfn 0x5000, beyond max_pfn 0x1000");
}

TEST(PageWalk, HostileCr3ThatIsNotAPageTable) {
  // cr3 names a page of text: its "entries" either fail with an error that
  // names a level, or translate; never a crash.
  FakeMemory m;
  auto& p = m.pages[0x10];
  const std::string text = "Linux version 6.1.0 (not a page table) ";
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::uint8_t>(text[i % text.size()]);
  for (std::uint64_t va : {std::uint64_t{0}, std::uint64_t{0x7fffffffffff}, kKernelVa, std::uint64_t{0xffff888000000000}}) {
    auto t = mv::translate(root(PagingMode::kLong4, 0x10 << 12, 0x100), va, m.reader());
    if (!t.has_value()) {
      EXPECT_EQ(t.error().message.rfind("L", 0), 0u) << t.error().message;
    }
  }
  // The PS bit is reserved at L4.
  m.set64(0x10, 0, (0x11 << 12) | P | PS);
  auto t = mv::translate(root(PagingMode::kLong4, 0x10 << 12, 0x100), 0x1000, m.reader());
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().message, "L4 entry 0x0 at pfn 0x10 has PS set (reserved at this level): 0x11081");
}

TEST(PageWalk, NxWithoutNxeIsReserved) {
  FakeMemory m = long4_tables();
  PagingRoot r = root(PagingMode::kLong4, 0x10 << 12);
  r.nxe = false;
  auto t = mv::translate(r, kKernelVa, m.reader());
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().message, "L1 entry 0x0 at pfn 0x13 has NX set without EFER.NXE: 0x8000000000020001");
}
