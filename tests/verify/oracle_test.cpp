// Differential tests: streamverify against Xen's own verify-stream-v2 on the
// whole corpus. Where the two verdicts differ, the difference must be
// explained: either a rule only streamverify checks (derived from the rule
// the stream breaks and whether the reference checks it), or an entry in
// kExplained naming the reference's bug (numbers from tests/oracle/README.md).
//
// The reference is fetched by the CTest fixture verify_oracle_fetch; if it is
// missing these tests fail, they are never skipped. It runs once for the
// whole corpus inside one interpreter (oracle_batch.py, through the
// wrapper's XEN_ORACLE_PYTHON hook); BatchMatchesPlainRuns checks that this
// gives the statuses of plain command-line runs.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <xenstream/libstream/source.h>
#include "tests/verify/corpus.h"
#include "tools/verify/verifier.h"

namespace xenstream::verify {
namespace {

using testing::Case;
using testing::corpus;

// Rules whose violation verify-stream-v2 also detects (it refuses the
// stream, possibly with another message). Everything else is a rule only
// streamverify checks.
const std::set<std::string> kReferenceChecks = {
    "STREAM-01", "STREAM-02", "STREAM-03", "STREAM-04", "STREAM-05", "STREAM-07",
    "CONT-XL-01", "CONT-XL-06",  // -f xl: no magic; an optional_data_len past the end of the file
    "CONT-XL-12",                // a clear STREAMv2 flag makes it parse the libxl stream as libxc
    "LIBXL-HDR-01", "LIBXL-HDR-02", "LIBXL-HDR-04",
    "LIBXL-REC-01",  // it tries to read the whole body and runs out of input
    "LIBXL-REC-02", "LIBXL-REC-03", "LIBXL-REC-04", "LIBXL-REC-05",
    "LIBXL-EMU-01", "LIBXL-EMU-02",
    "LIBXC-IHDR-01", "LIBXC-IHDR-02", "LIBXC-IHDR-03", "LIBXC-IHDR-05", "LIBXC-IHDR-06",
    "LIBXC-DHDR-01", "LIBXC-DHDR-02", "LIBXC-DHDR-03",
    "LIBXC-REC-01", "LIBXC-REC-02", "LIBXC-REC-03",
    "LIBXC-REC-07",  // bug 6: as a script error (exit 2)
    "LIBXC-REC-08", "LIBXC-REC-09", "LIBXC-REC-10",
    "LIBXC-PAGE-01", "LIBXC-PAGE-02", "LIBXC-PAGE-03", "LIBXC-PAGE-04", "LIBXC-PAGE-05", "LIBXC-PAGE-06",
    "LIBXC-PVINFO-01", "LIBXC-PVINFO-02", "LIBXC-PVINFO-04",
    "LIBXC-P2M-01", "LIBXC-VCPU-01", "LIBXC-VCPU-03", "LIBXC-SINFO-01", "LIBXC-TSC-01", "LIBXC-TSC-02",
    "LIBXC-HVMCTX-01", "LIBXC-PARAMS-01", "LIBXC-PARAMS-02", "LIBXC-POLICY-01", "LIBXC-POLICY-02",
};

struct Explained {
  bool reference_accepts;
  const char* reason;
};

constexpr const char* kBug1 =
    "reference bug 1 (Python 3 bytes/str): every non-empty EMULATOR_XENSTORE_DATA is refused as "
    "\"Data not NUL terminated\"";
constexpr const char* kBug8 =
    "reference bug 8: checkpointed streams cannot be verified (after CHECKPOINT it parses the libxl "
    "CHECKPOINT_END as a libxc record)";

// Cases whose reference verdict is not what kReferenceChecks predicts.
const std::map<std::string, Explained> kExplained = {
    {"valid-remus", {false, kBug8}},
    {"valid-colo", {false, kBug8}},
    {"valid-xenstore", {false, kBug1}},
    {"libxl-xs-01-key-no-nul", {false, kBug1}},
    {"libxl-xs-02-empty-key", {false, kBug1}},
    {"libxl-xs-03-absolute-key", {false, kBug1}},
    {"libxl-xs-04-no-value", {false, kBug1}},
    {"libxl-xs-05-key-charset", {false, kBug1}},
    {"libxl-xs-06-value-charset", {false, kBug1}},
    {"libxl-xs-07-duplicate", {false, kBug1}},
    {"libxl-order-05-end-in-checkpoint", {false, kBug8}},
    {"libxl-ckpt-02-state-length", {false, kBug8}},
    {"libxl-ckpt-04-state-value", {false, kBug8}},
    {"libxl-ckpt-05-mixed", {false, kBug8}},
    {"libxc-rec-04-optional",
     {false, "reference bug 9: optional records (bit 31) are refused as unknown; Xen skips them"}},
    {"libxc-rec-05-optional-after-checkpoint", {false, kBug8}},
    {"valid-xl-remus-stream", {false, kBug8}},
    {"valid-colo-mode", {false, kBug8}},
    {"libxc-ckpt-01-checkpoint-in-plain-restore", {false, kBug8}},
    {"libxc-ckpt-01-checkpoint-in-libvirt-file", {false, kBug8}},
    {"libxl-ckpt-05-state-in-remus", {false, kBug8}},
    {"libxl-ckpt-05-colo-without-state", {false, kBug8}},
    {"libxc-ckpt-03-colo-broken-channel", {false, kBug8}},
    {"libxc-ckpt-03-length-cap-after-checkpoint", {false, kBug8}},
    {"valid-remus-stops-at-libxc-end",
     {false, "the reference has no modes: it reads on past the libxc END, where a Remus secondary stops, "
             "and refuses the emulator record there (LIBXL-EMU-02)"}},
    {"libxc-ckpt-02-nothing-committed", {false, kBug8}},
    {"libxc-ckpt-03-partial-checkpoint", {false, kBug8}},
    {"libxc-ckpt-04-end-in-checkpointed", {false, kBug8}},
    {"libxc-order-03-sde-in-v2",
     {false, "the reference refuses an explicit STATIC_DATA_END in a v2 stream; Xen's restorer accepts "
             "it (streamverify warns)"}},
    {"cont-xl-03-big-endian",
     {false, "the reference reads the xl header in the host's byte order without looking at byteorder: "
             "it sees mandatory_flags 0x03000000, takes the payload for a libxc image and fails"}},
    {"libxl-hdr-03-big-endian",
     {false, "reference bugs 2-3: it never notices the big-endian bit and then misreads the big-endian "
             "records"}},
    {"libxc-ihdr-04-big-endian",
     {false, "reference bugs 2-3: it never notices the big-endian bit; it fails later on the domain type "
             "read in the wrong byte order"}},
};

std::string ref_format(const Case& c) {
  switch (c.hint) {
    case FormatHint::kXl: return "xl";
    case FormatHint::kLibxl: return "libxl";
    case FormatHint::kLibxc: return "libxc";
    case FormatHint::kLibvirt: return "libxl";  // the reference knows no libvirt header
    case FormatHint::kAuto: break;
  }
  return c.ref_format == "libvirt" ? "libxl" : c.ref_format;
}

// A directory of this test's own: CTest runs the tests of this file in
// parallel processes.
std::string test_dir() {
  const std::string dir = std::string(VERIFY_TEST_TMP) + "/" +
                          ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::filesystem::create_directories(dir);
  return dir;
}

std::string write_case(const Case& c) {
  const std::string path = test_dir() + "/" + c.name + ".bin";
  std::size_t skip = 0;
  if (c.ref_format == "libvirt" && c.hint == FormatHint::kAuto) skip = c.offsets.at("payload");
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(c.bytes.data() + skip),
          static_cast<std::streamsize>(c.bytes.size() - skip));
  return path;
}

int exit_status(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : -1; }

// One plain run of the reference, as an operator would start it.
int reference_status(const Case& c) {
  const std::string cmd = std::string(VERIFY_ORACLE) + " -q -f " + ref_format(c) + " -i " +
                          write_case(c) + " >/dev/null 2>&1";
  return exit_status(std::system(cmd.c_str()));
}

// The reference on many cases in one interpreter (oracle_batch.py); the
// statuses in the order of `cases`.
std::vector<int> reference_statuses(const std::vector<const Case*>& cases) {
  const std::string dir = test_dir();
  {
    std::ofstream list(dir + "/list.txt");
    for (const Case* c : cases) list << ref_format(*c) << ' ' << write_case(*c) << '\n';
  }
  const std::string cmd = "XEN_ORACLE_PYTHON=" + std::string(ORACLE_BATCH) + " " + VERIFY_ORACLE +
                          " batch < " + dir + "/list.txt > " + dir + "/statuses.txt";
  EXPECT_EQ(exit_status(std::system(cmd.c_str())), 0) << cmd;
  std::ifstream in(dir + "/statuses.txt");
  std::vector<int> out;
  for (int st; in >> st;) out.push_back(st);
  return out;
}

TEST(Oracle, ReferenceIsInstalled) {
  ASSERT_EQ(access(VERIFY_ORACLE, X_OK), 0)
      << VERIFY_ORACLE << " is missing: the verify_oracle_fetch fixture must run first";
}

// The batch driver must give the statuses the plain command gives.
TEST(Oracle, BatchMatchesPlainRuns) {
  ASSERT_EQ(access(VERIFY_ORACLE, X_OK), 0) << VERIFY_ORACLE << " is missing";
  std::vector<const Case*> sample;
  for (const Case& c : corpus()) {
    if (c.name == "valid-hvm" || c.name == "valid-xenstore" || c.name == "libxc-page-04-reserved-bits" ||
        c.name == "libxc-rec-07-toolstack" || c.name == "cont-xl-06-optional-data-cap") {
      sample.push_back(&c);
    }
  }
  ASSERT_EQ(sample.size(), 5u);
  const std::vector<int> batch = reference_statuses(sample);
  ASSERT_EQ(batch.size(), sample.size());
  std::set<int> seen;
  for (std::size_t i = 0; i < sample.size(); ++i) {
    EXPECT_EQ(batch[i], reference_status(*sample[i])) << sample[i]->name;
    seen.insert(batch[i]);
  }
  EXPECT_EQ(seen, (std::set<int>{0, 1, 2}));  // the sample covers every status
}

TEST(Oracle, WholeCorpusAgreesOrExplains) {
  ASSERT_EQ(access(VERIFY_ORACLE, X_OK), 0) << VERIFY_ORACLE << " is missing";
  std::vector<const Case*> cases;
  for (const Case& c : corpus()) cases.push_back(&c);
  const std::vector<int> ref = reference_statuses(cases);
  ASSERT_EQ(ref.size(), cases.size());
  std::size_t differences = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = *cases[i];
    SCOPED_TRACE(c.name);
    MemorySource src(Bytes(c.bytes), c.name);
    VerifyOptions o;
    o.format = c.hint;
    o.mode = *parse_mode(c.mode);
    const VerifyResult ours = verify(src, o);
    const bool we_accept = ours.exit_status() == 0;
    ASSERT_TRUE(ref[i] == 0 || ref[i] == 1 || ref[i] == 2) << "reference exit status " << ref[i];
    const bool ref_accepts = ref[i] == 0;

    bool expected_ref = true;
    std::string reason;
    if (auto it = kExplained.find(c.name); it != kExplained.end()) {
      expected_ref = it->second.reference_accepts;
      reason = it->second.reason;
    } else if (c.rule) {
      const RuleInfo* info = find_rule(*c.rule);
      ASSERT_NE(info, nullptr);
      const bool ref_checks = kReferenceChecks.count(*c.rule) != 0;
      expected_ref = !ref_checks;
      if (ref_checks && info->severity == Severity::kWarning) {
        reason = "the reference treats " + *c.rule + " as an error; Xen ignores it (streamverify warns)";
      } else if (!ref_checks && info->severity == Severity::kError) {
        reason = "a rule only streamverify checks: " + *c.rule + " (" +
                 std::string(enforcement_name(info->enforcement)) + ": " + std::string(info->check) + ")";
      }
    }
    EXPECT_EQ(ref_accepts, expected_ref)
        << c.name << ": verify-stream-v2 exit " << ref[i] << ", expected it to "
        << (expected_ref ? "accept" : "refuse") << " the stream";
    if (we_accept != ref_accepts) {
      ++differences;
      EXPECT_FALSE(reason.empty()) << c.name << ": the verdicts differ and no reason is recorded";
      std::cout << "[difference] " << c.name << ": streamverify " << (we_accept ? "accepts" : "refuses")
                << ", verify-stream-v2 " << (ref_accepts ? "accepts" : "refuses") << ": " << reason << "\n";
    } else if (kExplained.count(c.name)) {
      // An explanation where the verdicts agree is kept only for streams
      // both refuse (the reference for its own reason).
      EXPECT_FALSE(we_accept) << c.name << ": stale kExplained entry, the verdicts agree";
    }
  }
  std::cout << "[summary] " << cases.size() << " streams, " << differences
            << " verdicts differ, each with its reason above\n";
}

TEST(Oracle, ExplainedEntriesNameCorpusCases) {
  std::set<std::string> names;
  for (const Case& c : corpus()) names.insert(c.name);
  for (const auto& [name, e] : kExplained) EXPECT_TRUE(names.count(name)) << name;
}

}  // namespace
}  // namespace xenstream::verify
