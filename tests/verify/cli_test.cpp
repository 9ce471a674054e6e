// The streamverify command line: exit statuses, output forms, stdin.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/verify/corpus.h"

namespace xenstream::verify {
namespace {

struct Outcome {
  int status = -1;
  std::string out;
};

Outcome sh(const std::string& cmd) {
  Outcome r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// Writes a corpus case into a directory of this test's own (CTest runs the
// tests in parallel processes) and returns its path.
std::string file_of(const std::string& name) {
  const std::string dir = std::string(VERIFY_TEST_TMP) + "/" +
                          ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name + ".bin";
  for (const auto& c : testing::corpus()) {
    if (c.name != name) continue;
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(c.bytes.data()), static_cast<std::streamsize>(c.bytes.size()));
    return path;
  }
  ADD_FAILURE() << "no corpus case " << name;
  return path;
}

const std::string kBin = STREAMVERIFY_BIN;

TEST(Cli, ValidStream) {
  const std::string f = file_of("valid-hvm");
  const Outcome r = sh(kBin + " " + f + " 2>&1");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, f + ": valid (libxl + libxc v3, x86 HVM, Xen 4.17), 0 warnings\n");
}

TEST(Cli, InvalidStreamListsProblemsThenVerdict) {
  const std::string f = file_of("libxc-page-08-duplicate");
  const Outcome r = sh(kBin + " --strict " + f + " 2>&1");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("record #4 PAGE_DATA: pfn 0x40 appears twice in this record (pfn[0] and pfn[2]) "
                       "[LIBXC-PAGE-08]\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(f + ": INVALID: 1 error, 0 warnings\n"), std::string::npos) << r.out;
}

// A rule Xen does not enforce is a warning; --strict makes it an error.
TEST(Cli, StrictRulesAreWarningsWithoutStrict) {
  const std::string f = file_of("libxc-page-08-duplicate");
  const Outcome r = sh(kBin + " " + f + " 2>&1");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("warning: offset "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[LIBXC-PAGE-08]\n"), std::string::npos) << r.out;
}

// --mode: a COLO stream judged as a Remus secondary's is refused.
TEST(Cli, Mode) {
  const std::string f = file_of("valid-colo");
  EXPECT_EQ(sh(kBin + " -q --mode colo " + f).status, 0);
  EXPECT_EQ(sh(kBin + " -q --mode auto " + f).status, 0);
  const Outcome r = sh(kBin + " --mode remus " + f + " 2>&1");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("[LIBXL-CKPT-05]"), std::string::npos) << r.out;
  EXPECT_EQ(sh(kBin + " -q --mode plain " + f).status, 1);
  EXPECT_EQ(sh(kBin + " -q --mode bogus " + f + " 2>/dev/null").status, 2);
}

TEST(Cli, WarningsDoNotFail) {
  const Outcome r = sh(kBin + " " + file_of("libxc-tsc-02-reserved") + " 2>&1");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.rfind("warning: offset ", 0), 0u) << r.out;
}

TEST(Cli, Stdin) {
  const Outcome r = sh("cat " + file_of("valid-colo") + " | " + kBin + " - 2>&1");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "<stdin>: valid (libxl + libxc v3, x86 HVM, Xen 4.17, 3 committed checkpoints), 0 warnings\n");
}

TEST(Cli, Quiet) {
  const Outcome r = sh(kBin + " -q --strict " + file_of("libxc-page-08-duplicate") + " 2>&1");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
}

TEST(Cli, Verbose) {
  const Outcome r = sh(kBin + " -v " + file_of("valid-xl") + " 2>&1");
  EXPECT_EQ(r.status, 0);
  for (const char* s : {"Container:    xl save header", "Config:       xl JSON", "\"max_vcpus\": 2",
                        "Guest type:   x86 HVM", "Records:", "Pages:", "HVM params:", "HVM context:",
                        "Emulators:", "QEMU state v3: 5 sections"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
}

TEST(Cli, Json) {
  const Outcome r = sh(kBin + " --json " + file_of("libxc-rec-04-optional"));
  EXPECT_EQ(r.status, 0);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["schema"], "xenstream-streamverify/1");
  EXPECT_EQ(j["valid"], true);
  EXPECT_EQ(j["warnings"], 1);
  EXPECT_EQ(j["problems"][0]["rule"], "LIBXC-REC-04");
  EXPECT_EQ(j["problems"][0]["severity"], "warning");
}

TEST(Cli, FormatOption) {
  const Outcome r = sh(kBin + " --format libvirt " + file_of("valid-hvm") + " 2>&1");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("[CONT-LV-01]"), std::string::npos) << r.out;
}

TEST(Cli, UsageAndIoErrorsExit2) {
  EXPECT_EQ(sh(kBin + " 2>/dev/null").status, 2);
  EXPECT_EQ(sh(kBin + " --format nonsense x 2>/dev/null").status, 2);
  EXPECT_EQ(sh(kBin + " --bogus x 2>/dev/null").status, 2);
  const Outcome missing = sh(kBin + " /nonexistent/file 2>&1");
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.out.find("cannot open /nonexistent/file"), std::string::npos) << missing.out;
  EXPECT_EQ(sh(kBin + " --help >/dev/null 2>&1").status, 0);
}

TEST(Cli, LegacyImage) {
  const Outcome r = sh(kBin + " " + file_of("stream-02-legacy") + " 2>&1");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("legacy (pre-Xen 4.6) image: streamverify checks v2/v3 streams; convert it with "
                       "streamconv first [STREAM-02]"),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace xenstream::verify
