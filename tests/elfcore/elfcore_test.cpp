// ELF core writer: checked with binutils' readelf and by reading every page
// back through the program headers.
#include <elf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

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

#include "tools/elfcore/elfcore.h"

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
