// ELF core writer: checked with binutils' readelf and by reading every page
// back through the program headers.
#include <elf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "image_builder.h"
#include "tools/elfcore/elfcore.h"
#include "tools/memview/vcpu_state.h"

namespace fs = std::filesystem;
using xenstream::elfcore::PfnRun;
namespace ec = xenstream::elfcore;

namespace {

constexpr std::size_t kPage = 4096;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "xs-elf-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string capture(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  ::pclose(f);
  return out;
}

// A restored-domain directory: memory.raw with distinct page contents at the
// pfns of `runs` (sparse elsewhere) and a manifest naming those runs.
void make_domain(const fs::path& dir, const std::vector<PfnRun>& runs, std::uint64_t size_pages) {
  fs::create_directories(dir);
  const int fd = ::open((dir / "memory.raw").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size_pages * kPage)), 0);
  std::vector<char> page(kPage);
  nlohmann::json ranges = nlohmann::json::array();
  for (const auto& r : runs) {
    ranges.push_back({r.begin, r.end});
    for (std::uint64_t pfn = r.begin; pfn < r.end; ++pfn) {
      for (std::size_t i = 0; i < kPage; ++i) page[i] = static_cast<char>((pfn * 131 + i * 7 + 1) & 0xFF);
      ASSERT_EQ(::pwrite(fd, page.data(), kPage, static_cast<off_t>(pfn * kPage)), static_cast<ssize_t>(kPage));
    }
  }
  ::close(fd);
  nlohmann::json m = {{"format", "xenstream-restored-domain"},
                      {"version", 1},
                      {"memory", {{"file", "memory.raw"}, {"page_size", 4096}, {"pfn_ranges", ranges}}}};
  std::ofstream(dir / "manifest.json") << m.dump();
}

struct Segment {
  std::uint64_t offset, paddr, vaddr, filesz, memsz;
};

std::vector<Segment> parse_loads(const std::string& core) {
  std::vector<Segment> out;
  Elf64_Ehdr eh;
  std::memcpy(&eh, core.data(), sizeof eh);
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, core.data() + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type == PT_LOAD) out.push_back({ph.p_offset, ph.p_paddr, ph.p_vaddr, ph.p_filesz, ph.p_memsz});
  }
  return out;
}

}  // namespace

TEST(ElfCore, OneLoadPerRunReadableByReadelfAndPageByPage) {
  TempDir t;
  const std::vector<PfnRun> runs = {{0, 3}, {10, 11}, {16, 40}, {0x100, 0x102}};
  make_domain(t.path / "d", runs, 0x102);
  const auto core_path = t.path / "core.elf";
  auto sum = ec::write_elf_core((t.path / "d").string(), core_path.string());
  ASSERT_TRUE(sum.has_value()) << sum.error().message;
  EXPECT_EQ(sum->segments, 4u);
  EXPECT_EQ(sum->pages, 3u + 1 + 24 + 2);
  EXPECT_EQ(sum->bytes, fs::file_size(core_path));

  // readelf: an x86-64 core file with exactly these four LOADs.
  const std::string hdr = capture("readelf -h " + core_path.string() + " 2>&1");
  EXPECT_NE(hdr.find("CORE (Core file)"), std::string::npos) << hdr;
  EXPECT_NE(hdr.find("Advanced Micro Devices X86-64"), std::string::npos) << hdr;
  const std::string ph = capture("readelf -lW " + core_path.string() + " 2>&1");
  EXPECT_EQ(ph.find("Warning"), std::string::npos) << ph;
  std::regex load(R"(LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+RWE\s+0x1000)");
  std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;  // paddr, size
  for (auto it = std::sregex_iterator(ph.begin(), ph.end(), load); it != std::sregex_iterator(); ++it) {
    EXPECT_EQ(std::stoull((*it)[2], nullptr, 16), std::stoull((*it)[3], nullptr, 16));  // vaddr == paddr
    EXPECT_EQ(std::stoull((*it)[4], nullptr, 16), std::stoull((*it)[5], nullptr, 16));  // filesz == memsz
    seen.emplace_back(std::stoull((*it)[3], nullptr, 16), std::stoull((*it)[4], nullptr, 16));
  }
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> want = {
      {0, 3 * kPage}, {10 * kPage, kPage}, {16 * kPage, 24 * kPage}, {0x100 * kPage, 2 * kPage}};
  EXPECT_EQ(seen, want) << ph;

  // Every page read back through the program headers equals memory.raw.
  const std::string core = slurp(core_path);
  const std::string mem = slurp(t.path / "d" / "memory.raw");
  const auto segs = parse_loads(core);
  ASSERT_EQ(segs.size(), 4u);
  for (const auto& s : segs) {
    EXPECT_EQ(s.offset % kPage, 0u);
    ASSERT_LE(s.offset + s.filesz, core.size());
    EXPECT_EQ(core.substr(s.offset, s.filesz), mem.substr(s.paddr, s.filesz)) << "paddr 0x" << std::hex << s.paddr;
  }
}

TEST(ElfCore, RunsFromTheSparseFile) {
  TempDir t;
  make_domain(t.path / "d", {{3, 6}, {20, 21}}, 64);
  const int fd = ::open((t.path / "d" / "memory.raw").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  auto runs = ec::runs_from_sparse_file(fd);
  ::close(fd);
  ASSERT_TRUE(runs.has_value());
  const std::vector<PfnRun> want = {{3, 6}, {20, 21}};
  EXPECT_EQ(*runs, want);
  ec::ElfCoreOptions o;
  o.from_sparse_file = true;
  auto sum = ec::write_elf_core((t.path / "d").string(), (t.path / "c").string(), o);
  ASSERT_TRUE(sum.has_value());
  EXPECT_EQ(sum->segments, 2u);
  EXPECT_EQ(sum->pages, 4u);
}

TEST(ElfCore, ManifestRunsAreMergedAndSorted) {
  TempDir t;
  make_domain(t.path / "d", {{8, 9}, {0, 2}, {2, 4}}, 9);
  auto runs = ec::runs_from_manifest((t.path / "d").string());
  ASSERT_TRUE(runs.has_value());
  const std::vector<PfnRun> want = {{0, 4}, {8, 9}};
  EXPECT_EQ(*runs, want);
}

TEST(ElfCore, RefusesAnUnfinishedRestoreAndWritesNothing) {
  TempDir t;
  make_domain(t.path / "d", {{0, 1}}, 1);
  fs::create_directory(t.path / "d" / ".xenstream");
  auto sum = ec::write_elf_core((t.path / "d").string(), (t.path / "c").string());
  ASSERT_FALSE(sum.has_value());
  EXPECT_NE(sum.error().message.find("unfinished restore"), std::string::npos);
  EXPECT_FALSE(fs::exists(t.path / "c"));
  auto missing = ec::write_elf_core((t.path / "nope").string(), (t.path / "c").string());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, xenstream::ErrorCode::kUsage);
  EXPECT_FALSE(fs::exists(t.path / "c"));
}

namespace {

// A PV vcpu_guest_context_x86_64 file for vcpu `id` of a restored DIR.
void write_pv_vcpu(const fs::path& dir, std::uint32_t id, const xenstream::memview::testing::TestRegs& r) {
  const auto ctx = xenstream::memview::testing::pv64_context(r);
  std::ofstream f(dir / ("vcpu" + std::to_string(id) + "-basic.bin"), std::ios::binary);
  f.write(reinterpret_cast<const char*>(ctx.data()), static_cast<std::streamsize>(ctx.size()));
}

std::string gdb(const fs::path& core, const std::string& commands) {
  return capture("gdb -nx -batch " + commands + " -c " + core.string() + " 2>&1");
}

}  // namespace

TEST(ElfCore, GdbShowsEveryVcpusSavedRegisters) {
  TempDir t;
  make_domain(t.path / "d", {{0, 4}, {0x20, 0x21}}, 0x21);
  xenstream::memview::testing::TestRegs r0;
  r0.rax = 0x1111222233334444ull;
  r0.rbx = 0xb0b0;
  r0.r15 = 0xf15f15;
  r0.rip = 0xffffffff81000123ull;
  r0.rsp = 0xffffc90000003f00ull;
  r0.rflags = 0x246;
  r0.cs = 0xe033;
  r0.ss = 0xe02b;
  r0.cr3 = 0x3000;
  r0.fs_base = 0x7f0000001000ull;
  auto r1 = r0;
  r1.rax = 0x5555;
  r1.rip = 0xffffffff81000456ull;
  write_pv_vcpu(t.path / "d", 0, r0);
  write_pv_vcpu(t.path / "d", 1, r1);
  const auto core = t.path / "core.elf";
  auto sum = ec::write_elf_core((t.path / "d").string(), core.string());
  ASSERT_TRUE(sum.has_value()) << sum.error().message;
  EXPECT_EQ(sum->vcpus, 2u);
  EXPECT_EQ(sum->segments, 2u);

  const std::string notes = capture("readelf -nW " + core.string() + " 2>&1");
  EXPECT_EQ(std::count(notes.begin(), notes.end(), '\n') >= 4, true) << notes;
  EXPECT_NE(notes.find("NT_PRSTATUS"), std::string::npos) << notes;

  const std::string out = gdb(core, "-ex 'info threads' -ex 'info registers'");
  EXPECT_NE(out.find("LWP 1"), std::string::npos) << out;
  EXPECT_NE(out.find("LWP 2"), std::string::npos) << out;
  EXPECT_EQ(out.find("LWP 3"), std::string::npos) << out;
  EXPECT_EQ(out.find("Couldn't find general-purpose registers"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(rax\s+0x1111222233334444)"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(rbx\s+0xb0b0)"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(r15\s+0xf15f15)"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(rip\s+0xffffffff81000123)"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(rsp\s+0xffffc90000003f00)"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(eflags\s+0x246)"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(cs\s+0xe033)"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(ss\s+0xe02b)"))) << out;

  const std::string second = gdb(core, "-ex 'thread 2' -ex 'info registers rax rip'");
  EXPECT_TRUE(std::regex_search(second, std::regex(R"(rax\s+0x5555)"))) << second;
  EXPECT_TRUE(std::regex_search(second, std::regex(R"(rip\s+0xffffffff81000456)"))) << second;

  // gdb reads guest-physical memory through the PT_LOADs (p_vaddr = p_paddr).
  const std::string mem = gdb(core, "-ex 'x/1bx 0x20005'");
  char want[32];
  std::snprintf(want, sizeof want, "0x%02x", static_cast<unsigned>((0x20 * 131 + 5 * 7 + 1) & 0xFF));
  EXPECT_NE(mem.find(want), std::string::npos) << mem;
}

TEST(ElfCore, MoreThan65535RunsUsePnXnumAndReadelfAndGdbAcceptIt) {
  TempDir t;
  // 70000 single-page runs (every other pfn); memory.raw holds real pages
  // for the first runs only, the rest of the core stays a hole.
  constexpr std::uint64_t kRuns = 70000;
  std::vector<PfnRun> runs;
  for (std::uint64_t i = 0; i < kRuns; ++i) runs.push_back({2 * i, 2 * i + 1});
  make_domain(t.path / "d", {{0, 1}, {2, 3}, {4, 5}}, 5);
  xenstream::memview::testing::TestRegs r;
  r.rax = 0xabcdef;
  write_pv_vcpu(t.path / "d", 0, r);
  const int fd = ::open((t.path / "d" / "memory.raw").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  auto vcpus = xenstream::memview::read_dir_vcpus((t.path / "d").string());
  ASSERT_TRUE(vcpus.has_value());
  const auto core = t.path / "big.elf";
  auto sum = ec::write_elf_core(fd, runs, core.string(), false, *vcpus);
  ::close(fd);
  ASSERT_TRUE(sum.has_value()) << sum.error().message;
  EXPECT_EQ(sum->segments, kRuns);

  const std::string raw = slurp(core).substr(0, 64 + (kRuns + 1) * sizeof(Elf64_Phdr) + sizeof(Elf64_Shdr));
  Elf64_Ehdr eh;
  std::memcpy(&eh, raw.data(), sizeof eh);
  EXPECT_EQ(eh.e_phnum, PN_XNUM);
  EXPECT_EQ(eh.e_shnum, 1u);
  Elf64_Shdr sh;
  std::memcpy(&sh, raw.data() + eh.e_shoff, sizeof sh);
  EXPECT_EQ(sh.sh_info, kRuns + 1);  // the PT_NOTE and every PT_LOAD

  const std::string hdr = capture("readelf -hW " + core.string() + " 2>&1");
  EXPECT_NE(hdr.find("Number of program headers:         65535 (70001)"), std::string::npos) << hdr;
  const std::string ph = capture("readelf -lW " + core.string() + " 2>&1 | grep -c ' LOAD '");
  EXPECT_EQ(std::stoull(ph), kRuns);
  const std::string warn = capture("readelf -lW " + core.string() + " 2>&1 | grep -ci warning");
  EXPECT_EQ(std::stoull(warn), 0u);

  const std::string out = gdb(core, "-ex 'info registers rax' -ex 'x/1bx 0x4003' -ex 'x/1bx 0x222e0'");
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(rax\s+0xabcdef)"))) << out;
  char want[32];
  std::snprintf(want, sizeof want, "0x%02x", static_cast<unsigned>((4 * 131 + 3 * 7 + 1) & 0xFF));
  EXPECT_NE(out.find(std::string("0x4003:\t") + want), std::string::npos) << out;
  // pfn 0x22 is run 0x11, a hole in memory.raw: present in the core as zeros.
  EXPECT_NE(out.find("0x222e0:\t0x00"), std::string::npos) << out;
}
