// GuestMemory over streams built here (bare libxc, RecordWriter), over
// streamgen's libxl checkpoint streams, and over restored directories.
#include "tools/memview/guest_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "image_builder.h"
#include "tools/gen/synth.h"

namespace fs = std::filesystem;
namespace mv = xenstream::memview;
using namespace xenstream::memview::testing;
using xenstream::Bytes;
using xenstream::ErrorCode;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "xs-memview-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

fs::path write_file(const fs::path& p, const std::vector<std::byte>& data) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  return p;
}

bool same(Bytes a, const Page& b) { return a.size() == b.size() && std::memcmp(a.data(), b.data(), b.size()) == 0; }

constexpr unsigned kNotab = 0x0, kL1 = 0x1, kL2 = 0x2, kL3 = 0x3, kL4p = 0xC, kBroken = 0xD, kXalloc = 0xE,
                   kXtab = 0xF;

}  // namespace

TEST(GuestMemory, LaterPageDataWinsAndTypesWithoutDataNeverReplaceContents) {
  TempDir t;
  ImageBuilder b(true);
  b.page_data({entry(kNotab, 0), entry(kNotab, 1), entry(kNotab, 2), entry(kNotab, 3)},
              {filled(0), filled(1), filled(2), filled(3)});
  b.page_data({entry(kNotab, 2), entry(kXtab, 5), entry(kBroken, 6), entry(kXalloc, 7)}, {filled(2, 1)});
  // XTAB, BROKEN and XALLOC over contents leave the contents; XALLOC over
  // XTAB populates (zeros).
  b.page_data({entry(kXtab, 0), entry(kBroken, 1), entry(kXalloc, 3), entry(kXalloc, 5)}, {});
  b.hvm_cpus({TestRegs{}});
  const auto path = write_file(t.path / "s.xen", b.finish());

  auto m = mv::GuestMemory::open_stream(path.string());
  ASSERT_TRUE(m.has_value()) << m.error().describe();
  const auto& mem = **m;
  EXPECT_TRUE(same(*mem.page(0), filled(0)));
  EXPECT_TRUE(same(*mem.page(1), filled(1)));
  EXPECT_TRUE(same(*mem.page(2), filled(2, 1)));
  EXPECT_TRUE(same(*mem.page(3), filled(3)));
  EXPECT_TRUE(same(*mem.page(5), Page{}));
  EXPECT_TRUE(same(*mem.page(7), Page{}));
  auto x = mem.page(6);
  ASSERT_FALSE(x.has_value());
  EXPECT_EQ(x.error().code, ErrorCode::kUsage);
  EXPECT_EQ(x.error().message, "pfn 0x6 is not present (BROKEN: lost on the saving host)");
  EXPECT_EQ(mem.page(4).error().message, "pfn 0x4 is not present (never sent)");
  EXPECT_EQ(mem.page(0x99).error().message, "pfn 0x99 is not present (never sent)");
  EXPECT_EQ(mem.info().pages_present, 6u);  // 0-3, 5, 7
}

TEST(GuestMemory, XtabIsNotPresentAndSaysSo) {
  TempDir t;
  ImageBuilder b(true);
  b.page_data({entry(kNotab, 0), entry(kXtab, 1)}, {filled(0)});
  b.hvm_cpus({TestRegs{}});
  auto m = mv::GuestMemory::open_stream(write_file(t.path / "s", b.finish()).string());
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ((*m)->page(1).error().message, "pfn 0x1 is not present (XTAB: no page behind it)");
  std::vector<std::byte> scratch;
  auto r = (*m)->read(0xFF0, 0x20, scratch);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "pfn 0x1 is not present (XTAB: no page behind it)");
}

TEST(GuestMemory, ReadsInsideARunAreSpansIntoTheMappingAcrossRunsACopy) {
  TempDir t;
  ImageBuilder b(true);
  b.page_data({entry(kNotab, 10), entry(kNotab, 11), entry(kNotab, 12)}, {filled(10), filled(11), filled(12)});
  b.page_data({entry(kNotab, 13)}, {filled(13)});
  b.hvm_cpus({TestRegs{}});
  const auto data = b.finish();
  auto m = mv::GuestMemory::open_stream(write_file(t.path / "s", data).string());
  ASSERT_TRUE(m.has_value());
  const auto& mem = **m;
  ASSERT_EQ(mem.extents().size(), 2u);
  EXPECT_EQ(mem.extents()[0].begin, 10u);
  EXPECT_EQ(mem.extents()[0].count, 3u);

  std::vector<std::byte> scratch;
  auto in_run = mem.read(10 * 4096 + 100, 2 * 4096, scratch);
  ASSERT_TRUE(in_run.has_value());
  EXPECT_TRUE(scratch.empty());  // no copy
  EXPECT_EQ(std::memcmp(in_run->data(), filled(10).data() + 100, 4096 - 100), 0);
  // The span's bytes are the stream's bytes at the indexed offset.
  const std::uint64_t off = mem.extents()[0].offset + 100;
  EXPECT_EQ(std::memcmp(in_run->data(), data.data() + off, 2 * 4096), 0);

  auto across = mem.read(12 * 4096 + 4000, 200, scratch);
  ASSERT_TRUE(across.has_value());
  EXPECT_EQ(across->data(), scratch.data());
  EXPECT_EQ(std::memcmp(across->data(), filled(12).data() + 4000, 96), 0);
  EXPECT_EQ(std::memcmp(across->data() + 96, filled(13).data(), 104), 0);
}

TEST(GuestMemory, CheckpointsCountOnlyWhenComplete) {
  TempDir t;
  ImageBuilder b(true);
  b.hvm_cpus({TestRegs{}});
  b.page_data({entry(kNotab, 0), entry(kNotab, 1)}, {filled(0, 0), filled(1, 0)});
  b.checkpoint();
  b.page_data({entry(kNotab, 1)}, {filled(1, 1)});
  b.checkpoint();
  b.page_data({entry(kNotab, 0), entry(kNotab, 2)}, {filled(0, 2), filled(2, 2)});  // never completed
  const auto path = write_file(t.path / "s", b.unfinished());

  auto last = mv::GuestMemory::open_stream(path.string());
  ASSERT_TRUE(last.has_value()) << last.error().describe();
  EXPECT_EQ((*last)->info().checkpoint, 2u);
  EXPECT_TRUE((*last)->info().truncated);
  EXPECT_TRUE(same(*(*last)->page(0), filled(0, 0)));
  EXPECT_TRUE(same(*(*last)->page(1), filled(1, 1)));
  EXPECT_FALSE((*last)->page(2).has_value());

  mv::OpenOptions o;
  o.checkpoint = 1;
  auto first = mv::GuestMemory::open_stream(path.string(), o);
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(same(*(*first)->page(1), filled(1, 0)));

  o.checkpoint = 3;
  auto none = mv::GuestMemory::open_stream(path.string(), o);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kUsage);
  EXPECT_NE(none.error().message.find("holds only 2 complete checkpoint(s); --checkpoint 3 does not exist"),
            std::string::npos)
      << none.error().message;
}

TEST(GuestMemory, StreamgenCheckpointsMatchTheGeneratorsGenerations) {
  TempDir t;
  namespace gen = xenstream::gen;
  gen::SynthOptions so;
  so.guest = gen::GuestType::kHvm;
  so.pages = 600;
  so.batch = 100;
  so.checkpoints = 3;
  so.dirty_pages = 50;
  const auto path = (t.path / "c.xen").string();
  ASSERT_TRUE(gen::write_stream_to_path(path, so).has_value());
  for (std::uint32_t k = 1; k <= 3; ++k) {
    mv::OpenOptions o;
    o.checkpoint = k;
    auto m = mv::GuestMemory::open_stream(path, o);
    ASSERT_TRUE(m.has_value()) << m.error().describe();
    const auto gens = gen::page_generations(so, k - 1);
    for (std::uint64_t pfn = 0; pfn < so.pages; ++pfn) {
      const auto want = gen::expected_page(so, pfn, gens[pfn]);
      auto p = (*m)->page(pfn);
      ASSERT_TRUE(p.has_value()) << p.error().message;
      ASSERT_EQ(std::memcmp(p->data(), want.data(), 4096), 0) << "checkpoint " << k << " pfn " << pfn;
    }
  }
}

TEST(GuestMemory, IndexStaysBoundedOnAOneTiBSparseGuest) {
  TempDir t;
  ImageBuilder b(true);
  b.hvm_cpus({TestRegs{}});
  // 1 TiB of guest-physical space (2^28 pfns); 2048 runs of 2 pages spread
  // over it, plus the last pfn, each batch of 64 runs one PAGE_DATA record.
  const std::uint64_t kPfns = std::uint64_t{1} << 28;
  const std::uint64_t kRuns = 2048;
  std::vector<std::uint64_t> entries;
  std::vector<Page> pages;
  for (std::uint64_t r = 0; r < kRuns; ++r) {
    const std::uint64_t base = r * (kPfns / kRuns);
    for (std::uint64_t k = 0; k < 2; ++k) {
      entries.push_back(entry(kNotab, base + k));
      pages.push_back(filled(base + k));
    }
    if (entries.size() == 128) {
      b.page_data(entries, pages);
      entries.clear();
      pages.clear();
    }
  }
  b.page_data({entry(kNotab, kPfns - 1)}, {filled(kPfns - 1)});
  auto m = mv::GuestMemory::open_stream(write_file(t.path / "sparse.xen", b.finish()).string());
  ASSERT_TRUE(m.has_value()) << m.error().describe();
  const auto& mem = **m;
  EXPECT_EQ(mem.info().max_pfn, kPfns - 1);
  EXPECT_EQ(mem.info().pages_present, 2 * kRuns + 1);
  EXPECT_EQ(mem.extents().size(), kRuns + 1);
  EXPECT_LE(mem.index_bytes(), (kRuns + 1) * 24);  // 24 octets per run, nothing per page
  EXPECT_TRUE(same(*mem.page(kPfns - 1), filled(kPfns - 1)));
  EXPECT_TRUE(same(*mem.page(1000 * (kPfns / kRuns) + 1), filled(1000 * (kPfns / kRuns) + 1)));
  EXPECT_EQ(mem.page(kPfns / 2 + 7).error().message, "pfn 0x8000007 is not present (never sent)");
}

namespace {

// A 64-bit PV guest whose kernel text page holds a banner at
// 0xffffffff81000123 through L4 0x10 -> L3 0x11 -> L2 0x12 -> L1 0x13 -> 0x20.
std::vector<std::byte> pv_banner_image(unsigned l4_type = kL4p) {
  ImageBuilder b(false);
  Page l4{}, l3{}, l2{}, l1{}, text = filled(0x20);
  put64(l4.data() + 511 * 8, (0x11 << 12) | 0x3);
  put64(l3.data() + 510 * 8, (0x12 << 12) | 0x3);
  put64(l2.data() + 8 * 8, (0x13 << 12) | 0x3);
  put64(l1.data() + 0, (0x20 << 12) | 0x1);
  const char banner[] = "Linux version 6.1.0-test (synthetic)";
  std::memcpy(text.data() + 0x123, banner, sizeof banner);
  b.page_data({entry(l4_type, 0x10), entry(kL3, 0x11), entry(kL2, 0x12), entry(kL1, 0x13), entry(kNotab, 0x20)},
              {l4, l3, l2, l1, text});
  TestRegs r0;
  r0.cr3 = 0x10 << 12;
  r0.rip = 0xffffffff81000000ull;
  r0.rsp = 0xffffc90000003f00ull;
  r0.rax = 0x1111;
  r0.r15 = 0xf15;
  r0.cs = 0xe033;
  TestRegs r1 = r0;
  r1.rip = 0xffffffff81000100ull;
  r1.rax = 0x2222;
  b.pv_vcpu(0, r0);
  b.pv_vcpu(1, r1);
  return b.finish();
}

}  // namespace

TEST(GuestMemory, PvGuestVirtualReadThroughTheStreamsPageTables) {
  TempDir t;
  auto m = mv::GuestMemory::open_stream(write_file(t.path / "pv", pv_banner_image()).string());
  ASSERT_TRUE(m.has_value()) << m.error().describe();
  const auto& mem = **m;
  ASSERT_EQ(mem.vcpus().size(), 2u);
  EXPECT_EQ(mem.vcpus()[0].rax, 0x1111u);
  EXPECT_EQ(mem.vcpus()[0].r15, 0xf15u);
  EXPECT_EQ(mem.vcpus()[0].cs, 0xe033u);
  EXPECT_EQ(mem.vcpus()[1].rip, 0xffffffff81000100ull);
  auto tr = mem.translate(0, 0xffffffff81000123ull);
  ASSERT_TRUE(tr.has_value()) << tr.error().message;
  EXPECT_EQ(tr->gpa, (0x20u << 12) | 0x123);
  std::vector<std::byte> scratch;
  auto b = mem.read(tr->gpa, 13, scratch);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b->data()), 13), "Linux version");

  auto unmapped = mem.translate(0, 0xffffffff80000000ull);
  ASSERT_FALSE(unmapped.has_value());
  // 0xffffffff80000000: L4 511, L3 510, L2 0 (empty).
  EXPECT_EQ(unmapped.error().message, "L2 entry 0x0 at pfn 0x12 not present");
}

TEST(GuestMemory, PvCr3ThatIsNotAnL4TableIsRefused) {
  TempDir t;
  auto m = mv::GuestMemory::open_stream(write_file(t.path / "pv", pv_banner_image(kNotab)).string());
  ASSERT_TRUE(m.has_value());
  auto tr = (*m)->translate(0, 0xffffffff81000123ull);
  ASSERT_FALSE(tr.has_value());
  EXPECT_EQ(tr.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(tr.error().message, "vcpu 0: cr3 pfn 0x10 is not an L4 page table (its PAGE_DATA type is 0x0)");
}

TEST(GuestMemory, HvmPagingModeComesFromTheCpuRecord) {
  TempDir t;
  ImageBuilder b(true);
  Page pml4{}, pdpt{}, data = filled(0x300);
  put64(pml4.data(), (0x2 << 12) | 0x3);
  put64(pdpt.data() + 1 * 8, 0x40000000 | 0x83);  // 1 GiB page at 1 GiB
  b.page_data({entry(kNotab, 1), entry(kNotab, 2)}, {pml4, pdpt});
  b.page_data({entry(kNotab, 0x40000 + 0x300)}, {data});
  TestRegs longmode;
  longmode.cr0 = 0x80000011;
  longmode.cr3 = 0x1000;
  longmode.cr4 = 0x20;
  longmode.efer = 0x500;
  longmode.rip = 0x1234;
  TestRegs real;  // paging off
  real.rip = 0xfff0;
  b.hvm_cpus({longmode, real});
  auto m = mv::GuestMemory::open_stream(write_file(t.path / "hvm", b.finish()).string());
  ASSERT_TRUE(m.has_value()) << m.error().describe();
  ASSERT_EQ((*m)->vcpus().size(), 2u);
  auto tr = (*m)->translate(0, 0x40300010);
  ASSERT_TRUE(tr.has_value()) << tr.error().message;
  EXPECT_EQ(tr->gpa, 0x40300010u);
  EXPECT_EQ(tr->page_size, 1u << 30);
  EXPECT_EQ(tr->steps.size(), 2u);
  auto id = (*m)->translate(1, 0x2010);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->gpa, 0x2010u);
  EXPECT_TRUE(id->steps.empty());
  EXPECT_EQ((*m)->vcpu(2).error().message, "no vcpu 2 in the image (it has 2)");
}

TEST(GuestMemory, RestoredDirectory) {
  TempDir t;
  const fs::path d = t.path / "d";
  fs::create_directories(d);
  {
    const int fd = ::open((d / "memory.raw").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 0x40 * 4096), 0);
    for (std::uint64_t pfn : {0x3, 0x4, 0x3f}) {
      const Page p = filled(pfn);
      ASSERT_EQ(::pwrite(fd, p.data(), 4096, static_cast<off_t>(pfn * 4096)), 4096);
    }
    ::close(fd);
  }
  nlohmann::json mj = {{"format", "xenstream-restored-domain"},
                       {"version", 1},
                       {"domain", {{"type", "pv"}}},
                       {"pv", {{"guest_width", 8}, {"pt_levels", 4}}},
                       {"memory",
                        {{"file", "memory.raw"},
                         {"pfn_ranges", {{3, 5}, {0x3f, 0x40}}},
                         {"typed_ranges", {{4, 5, "l4tab_pinned"}, {0x10, 0x12, "xtab"}}}}}};
  std::ofstream(d / "manifest.json") << mj.dump();
  TestRegs r;
  r.rax = 0xabc;
  r.cr3 = 4 << 12;
  const auto ctx = pv64_context(r);
  write_file(d / "vcpu0-basic.bin", ctx);

  auto m = mv::GuestMemory::open(d.string());
  ASSERT_TRUE(m.has_value()) << m.error().describe();
  const auto& mem = **m;
  EXPECT_EQ(mem.info().source, "dir");
  EXPECT_TRUE(same(*mem.page(3), filled(3)));
  EXPECT_TRUE(same(*mem.page(0x3f), filled(0x3f)));
  EXPECT_EQ(mem.page(0x10).error().message, "pfn 0x10 is not present (XTAB: no page behind it)");
  EXPECT_EQ(mem.page(0x20).error().message, "pfn 0x20 is not present (never sent)");
  ASSERT_NE(mem.find(4), nullptr);
  EXPECT_EQ(mem.find(4)->type, 0xC);
  ASSERT_EQ(mem.vcpus().size(), 1u);
  EXPECT_EQ(mem.vcpus()[0].rax, 0xabcu);

  fs::create_directory(d / ".xenstream");
  auto busy = mv::GuestMemory::open(d.string());
  ASSERT_FALSE(busy.has_value());
  EXPECT_NE(busy.error().message.find("unfinished restore"), std::string::npos);
}

TEST(GuestMemory, RefusesWhatItCannotMap) {
  TempDir t;
  // zstd frame magic.
  const std::vector<std::byte> z = {std::byte{0x28}, std::byte{0xB5}, std::byte{0x2F}, std::byte{0xFD}, std::byte{0}};
  auto c = mv::GuestMemory::open(write_file(t.path / "z", z).string());
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, ErrorCode::kUsage);
  EXPECT_NE(c.error().message.find("zstd-compressed"), std::string::npos);

  // A plain stream cut before END has nothing complete.
  ImageBuilder b(true);
  b.page_data({entry(kNotab, 0)}, {filled(0)});
  auto cut = mv::GuestMemory::open(write_file(t.path / "cut", b.unfinished()).string());
  ASSERT_FALSE(cut.has_value());
  EXPECT_EQ(cut.error().code, ErrorCode::kTruncated);

  auto missing = mv::GuestMemory::open((t.path / "nope").string());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kIo);
}

TEST(GuestMemory, BrokenVcpuStateLeavesMemoryReadable) {
  // The fuzzer's find (testdata/regress/fuzz_memview): checkpoint 1 carries
  // an HVM context whose CPU entry runs past its end; checkpoint 2 a good one.
  TempDir t;
  ImageBuilder b(true);
  auto broken = hvm_context({TestRegs{}});
  put32(broken.data() + 8 + 24 + 4, 0xFFFFFF00);  // the CPU descriptor's length
  b.record(0x09, broken);
  b.page_data({entry(kNotab, 0)}, {filled(0)});
  b.checkpoint();
  b.hvm_cpus({TestRegs{}});
  b.checkpoint();
  const auto path = write_file(t.path / "s", b.unfinished()).string();
  mv::OpenOptions o;
  o.checkpoint = 1;
  auto m = mv::GuestMemory::open_stream(path, o);
  ASSERT_TRUE(m.has_value()) << m.error().describe();
  EXPECT_TRUE(same(*(*m)->page(0), filled(0)));
  EXPECT_TRUE((*m)->vcpus().empty());
  EXPECT_NE((*m)->info().vcpu_error.find("runs past the blob's end"), std::string::npos) << (*m)->info().vcpu_error;
  auto v = (*m)->translate(0, 0x1000);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(v.error().message.rfind("no vcpu state: offset 0x", 0), 0u) << v.error().message;
  o.checkpoint = 2;
  auto good = mv::GuestMemory::open_stream(path, o);
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ((*good)->vcpus().size(), 1u);
  EXPECT_TRUE((*good)->info().vcpu_error.empty());
}
