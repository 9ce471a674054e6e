// streammem end to end: output formats, exit codes and error messages, and
// the same bytes read from the stream, from the restored directory and,
// through gdb, from the ELF core streamrestore writes.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "image_builder.h"

namespace fs = std::filesystem;
using namespace xenstream::memview::testing;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "xs-streammem-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

struct Run {
  int status = -1;
  std::string out, err;
};

Run run(const std::string& args, const fs::path& tmp) {
  const fs::path err = tmp / "stderr.txt";
  const std::string cmd = std::string(STREAMMEM) + " " + args + " 2>" + err.string();
  Run r;
  FILE* f = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) r.out.append(buf.data(), n);
  const int st = ::pclose(f);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err);
  r.err.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
  return r;
}

std::string sh(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  ::pclose(f);
  return out;
}

const char kBanner[] = "Linux version 6.1.0-test (synthetic) #1 SMP";

// A 64-bit PV guest: kernel text at 0xffffffff81000000 (pfn 0x20) through
// L4 0x10 -> L3 0x11 -> L2 0x12 -> L1 0x13; the banner at +0x123. A second
// PAGE_DATA resends pfn 0x21 (the later copy wins), which is also
// start_info. pfn 0x30 is XTAB.
fs::path pv_image(const fs::path& dir, bool hostile = false) {
  ImageBuilder b(false);
  Page l4{}, l3{}, l2{}, l1{}, text = filled(0x20);
  put64(l4.data() + 511 * 8, (0x11 << 12) | 0x3);
  put64(l3.data() + 510 * 8, (hostile ? (std::uint64_t{0xFFFFFF} << 12) : (0x12 << 12)) | 0x3);
  put64(l2.data() + 8 * 8, (0x13 << 12) | 0x3);
  put64(l1.data() + 0, (0x20 << 12) | 0x1);
  put64(l1.data() + 8, (0x21 << 12) | 0x1);
  std::memcpy(text.data() + 0x123, kBanner, sizeof kBanner);
  b.page_data({entry(0xC, 0x10), entry(3, 0x11), entry(2, 0x12), entry(1, 0x13), entry(0, 0x20), entry(0, 0x21),
               entry(0xF, 0x30)},
              {l4, l3, l2, l1, text, filled(0x21, 0)});
  b.page_data({entry(0, 0x21)}, {filled(0x21, 1)});
  TestRegs r0;
  r0.cr3 = 0x10 << 12;
  r0.rdx = 0x21;  // start_info: a populated NOTAB pfn, as Xen wants
  r0.rip = 0xffffffff81000123ull;
  r0.rax = 0xaaaa;
  TestRegs r1 = r0;
  r1.rax = 0xbbbb;
  b.pv_vcpu(0, r0);
  b.pv_vcpu(1, r1);
  const auto& data = b.finish();
  const fs::path p = dir / (hostile ? "hostile.xen" : "pv.xen");
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  return p;
}

}  // namespace

TEST(StreammemCli, ReadsTheBannerByVirtualAddressInEveryFormat) {
  TempDir t;
  const auto img = pv_image(t.path).string();
  auto raw = run("read " + img + " 0xffffffff81000123 " + std::to_string(std::strlen(kBanner)) + " --vcpu 0 -f raw", t.path);
  EXPECT_EQ(raw.status, 0) << raw.err;
  EXPECT_EQ(raw.out, kBanner);

  auto hex = run("read " + img + " 0xffffffff81000123 16 --vcpu 0", t.path);
  EXPECT_EQ(hex.status, 0) << hex.err;
  EXPECT_EQ(hex.out, "ffffffff81000123: 4c69 6e75 7820 7665 7273 696f 6e20 362e  Linux version 6.\n");

  auto js = run("read " + img + " 0x20123 5 -f json", t.path);
  EXPECT_EQ(js.status, 0) << js.err;
  const auto j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["hex"], "4c696e7578");
  EXPECT_EQ(j["space"], "physical");

  // A read crossing from pfn 0x20 into 0x21 (virtually contiguous): the
  // second page is the later copy.
  auto cross = run("read " + img + " 0xffffffff81000ff8 16 --vcpu 0 -f raw", t.path);
  EXPECT_EQ(cross.status, 0) << cross.err;
  const Page later = filled(0x21, 1);
  ASSERT_EQ(cross.out.size(), 16u);
  EXPECT_EQ(std::memcmp(cross.out.data() + 8, later.data(), 8), 0);
}

TEST(StreammemCli, TranslateShowsEveryLevel) {
  TempDir t;
  const auto img = pv_image(t.path).string();
  auto r = run("translate " + img + " 0xffffffff81000123", t.path);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "L4 table pfn 0x10 entry 0x1ff = 0x11003\n"
            "L3 table pfn 0x11 entry 0x1fe = 0x12003\n"
            "L2 table pfn 0x12 entry 0x8 = 0x13003\n"
            "L1 table pfn 0x13 entry 0x0 = 0x20001 (leaf)\n"
            "0xffffffff81000123 -> 0x20123 (4 KiB page, read-only, supervisor)\n");
  auto j = run("translate " + img + " 0xffffffff81000123 --json --vcpu 1", t.path);
  EXPECT_EQ(j.status, 0);
  const auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["gpa"], "0x20123");
  EXPECT_EQ(doc["steps"].size(), 4u);
}

TEST(StreammemCli, RunsAndRegs) {
  TempDir t;
  const auto img = pv_image(t.path).string();
  auto r = run("runs " + img, t.path);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "[0x10, 0x14) 4 pages at gpa 0x10000\n[0x20, 0x22) 2 pages at gpa 0x20000\n");
  auto all = run("runs " + img + " --all --json", t.path);
  EXPECT_EQ(all.status, 0);
  const auto a = nlohmann::json::parse(all.out);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a.back()["state"], "xtab");
  auto regs = run("regs " + img + " --json", t.path);
  EXPECT_EQ(regs.status, 0);
  const auto rj = nlohmann::json::parse(regs.out);
  ASSERT_EQ(rj.size(), 2u);
  EXPECT_EQ(rj[0]["rax"], "0xaaaa");
  EXPECT_EQ(rj[1]["rax"], "0xbbbb");
  EXPECT_EQ(rj[0]["cr3"], "0x10000");
}

TEST(StreammemCli, ExitCodesAndMessages) {
  TempDir t;
  const auto img = pv_image(t.path).string();
  auto unmapped = run("read " + img + " 0xffffffff80000000 8 --vcpu 0", t.path);
  EXPECT_EQ(unmapped.status, 2);
  EXPECT_EQ(unmapped.err, "streammem: L2 entry 0x0 at pfn 0x12 not present\n");
  EXPECT_TRUE(unmapped.out.empty());

  auto absent = run("read " + img + " 0x400000 8", t.path);
  EXPECT_EQ(absent.status, 2);
  EXPECT_EQ(absent.err, "streammem: pfn 0x400 is not present (never sent)\n");
  auto xtab = run("read " + img + " 0x30000 8", t.path);
  EXPECT_EQ(xtab.status, 2);
  EXPECT_EQ(xtab.err, "streammem: pfn 0x30 is not present (XTAB: no page behind it)\n");

  auto novcpu = run("translate " + img + " 0 --vcpu 7", t.path);
  EXPECT_EQ(novcpu.status, 2);
  EXPECT_EQ(novcpu.err, "streammem: no vcpu 7 in the image (it has 2)\n");

  EXPECT_EQ(run("read " + img + " banana", t.path).status, 2);
  EXPECT_EQ(run("read " + img + " 0 8 --phys --vcpu 0", t.path).status, 2);
  EXPECT_EQ(run("frobnicate " + img, t.path).status, 2);
  EXPECT_EQ(run("read " + (t.path / "missing").string() + " 0", t.path).status, 2);
  EXPECT_EQ(run("read " + img + " 0 8 --checkpoint 2", t.path).status, 2);
  auto stdin_img = run("info - < " + img, t.path);
  EXPECT_EQ(stdin_img.status, 2);
  EXPECT_NE(stdin_img.err.find("not stdin"), std::string::npos) << stdin_img.err;

  // A hostile table (an L3 entry beyond max_pfn, the highest present pfn;
  // XTAB pfns are not present) is a bad image: exit 1.
  const auto hostile = pv_image(t.path, true).string();
  auto h = run("translate " + hostile + " 0xffffffff81000123", t.path);
  EXPECT_EQ(h.status, 1);
  EXPECT_EQ(h.err, "streammem: L3 entry 0x1fe at pfn 0x11 points at pfn 0xffffff, beyond max_pfn 0x21\n");

  // A stream cut short: exit 1, with the offset.
  const auto full = sh("cat " + img);
  std::ofstream(t.path / "cut.xen", std::ios::binary) << full.substr(0, full.size() - 100);
  auto cut = run("info " + (t.path / "cut.xen").string(), t.path);
  EXPECT_EQ(cut.status, 1) << cut.err;
  EXPECT_NE(cut.err.find("offset 0x"), std::string::npos) << cut.err;

  auto help = run("--help", t.path);
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("translate"), std::string::npos);
}

TEST(StreammemCli, SameBytesFromTheStreamTheRestoredDirAndTheElfCore) {
  TempDir t;
  const auto img = pv_image(t.path).string();
  const auto dir = (t.path / "d").string();
  const auto core = (t.path / "core.elf").string();
  ASSERT_EQ(std::system((std::string(STREAMRESTORE) + " -q " + img + " --out " + dir + " --elf " + core).c_str()), 0);
  const std::string args = " 0xffffffff81000123 " + std::to_string(std::strlen(kBanner)) + " --vcpu 0 -f raw";
  auto from_stream = run("read " + img + args, t.path);
  auto from_dir = run("read " + dir + args, t.path);
  EXPECT_EQ(from_stream.status, 0);
  EXPECT_EQ(from_dir.status, 0) << from_dir.err;
  EXPECT_EQ(from_stream.out, kBanner);
  EXPECT_EQ(from_dir.out, from_stream.out);
  // The whole present memory, run by run.
  for (const char* range : {"0x10000 0x4000", "0x20000 0x2000"}) {
    auto a = run(std::string("read ") + img + " " + range + " -f raw", t.path);
    auto b = run(std::string("read ") + dir + " " + range + " -f raw", t.path);
    EXPECT_EQ(a.status, 0);
    EXPECT_EQ(a.out, b.out) << range;
  }
  // gdb reads the banner from the core at its guest-physical address (the
  // translation streammem printed), and vCPU 0's registers.
  const std::string g = sh("gdb -nx -batch -ex 'x/s 0x20123' -ex 'info registers rax' -c " + core + " 2>&1");
  EXPECT_NE(g.find(std::string("0x20123:\t\"") + kBanner + "\""), std::string::npos) << g;
  EXPECT_NE(g.find("0xaaaa"), std::string::npos) << g;
}
