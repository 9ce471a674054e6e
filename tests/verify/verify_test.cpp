// streamverify's engine against the corpus: every invalid stream breaks
// exactly its one rule, every valid stream passes, every rule of
// spec/verify-rules.md is hit, and a sample of messages is exact.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <xenstream/codecs/zstd/zstd_sink.h>
#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/sink.h>
#include "tests/verify/corpus.h"
#include "tools/verify/pfn_tracker.h"
#include "tools/verify/pfn_types.h"
#include "tools/verify/report.h"
#include "tools/verify/verifier.h"

namespace xenstream::verify {
namespace {

using testing::Buf;
using testing::Case;
using testing::corpus;

VerifyResult run(const Buf& bytes, FormatHint hint = FormatHint::kAuto) {
  MemorySource src(Bytes(bytes), "mem");
  VerifyOptions o;
  o.format = hint;
  return verify(src, o);
}

VerifyResult run(const Case& c, bool strict = false) {
  MemorySource src(Bytes(c.bytes), "mem");
  VerifyOptions o;
  o.format = c.hint;
  o.mode = *parse_mode(c.mode);
  o.strict = strict;
  return verify(src, o);
}

std::string dump(const VerifyResult& r) {
  std::string s;
  for (const auto& p : r.problems) s += "  " + p.format() + "\n";
  s += "  " + r.verdict() + "\n";
  return s;
}

std::set<std::string> rules_of(const VerifyResult& r) {
  std::set<std::string> out;
  for (const auto& p : r.problems) out.emplace(p.rule);
  for (const auto& [rule, n] : r.suppressed) out.emplace(rule);
  return out;
}

const Case& find_case(const std::string& name) {
  for (const Case& c : corpus()) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no corpus case " + name);
}

// ---------------------------------------------------------------------------

class CorpusTest : public ::testing::TestWithParam<std::size_t> {};

TEST_P(CorpusTest, BreaksExactlyItsRule) {
  const Case& c = corpus()[GetParam()];
  const VerifyResult r = run(c);
  ASSERT_FALSE(r.failure) << r.failure->describe();
  if (!c.rule) {
    EXPECT_TRUE(r.problems.empty()) << c.name << ":\n" << dump(r);
    EXPECT_EQ(r.exit_status(), 0);
    return;
  }
  EXPECT_EQ(rules_of(r), std::set<std::string>{*c.rule}) << c.name << ":\n" << dump(r);
  const RuleInfo* info = find_rule(*c.rule);
  ASSERT_NE(info, nullptr) << *c.rule;
  EXPECT_EQ(r.exit_status(), info->severity == Severity::kError ? 1 : 0) << dump(r);
}

// --strict: every rule Xen does not enforce is an error; the others keep
// their severity.
TEST_P(CorpusTest, StrictMakesStrictRulesErrors) {
  const Case& c = corpus()[GetParam()];
  const VerifyResult r = run(c, true);
  ASSERT_FALSE(r.failure) << r.failure->describe();
  if (!c.rule) {
    EXPECT_EQ(r.exit_status(), 0) << dump(r);
    return;
  }
  const RuleInfo* info = find_rule(*c.rule);
  ASSERT_NE(info, nullptr) << *c.rule;
  const bool error = info->severity == Severity::kError || info->enforcement == Enforcement::kStrict;
  EXPECT_EQ(r.exit_status(), error ? 1 : 0) << dump(r);
  bool seen = false;
  for (const auto& p : r.problems) {
    if (p.rule != *c.rule) continue;
    seen = true;
    EXPECT_EQ(p.severity, error ? Severity::kError : Severity::kWarning) << p.format();
  }
  EXPECT_TRUE(seen) << dump(r);
}

std::string case_name(const ::testing::TestParamInfo<std::size_t>& info) {
  std::string n = corpus()[info.param].name;
  for (char& ch : n) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return n;
}

INSTANTIATE_TEST_SUITE_P(Corpus, CorpusTest, ::testing::Range<std::size_t>(0, corpus().size()),
                         case_name);

// ---------------------------------------------------------------------------
// spec/verify-rules.md is the rule list: it must match the code's table,
// and every rule must be broken by at least one corpus stream.

struct DocRule {
  std::string id, enforcement, severity;
};

std::vector<DocRule> read_rules_doc() {
  std::ifstream in(std::string(XENSTREAM_SOURCE_DIR) + "/spec/verify-rules.md");
  EXPECT_TRUE(in.good()) << "cannot read spec/verify-rules.md";
  const std::regex row(R"(^\|\s*([A-Z]+(?:-[A-Z0-9]+)*-\d\d)\s*\|(.*)\|\s*(xen|qemu|strict)\s*\|\s*(error|warning)\s*\|\s*$)");
  std::vector<DocRule> out;
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, row)) out.push_back({m[1], m[3], m[4]});
  }
  return out;
}

TEST(RulesDoc, MatchesTheCodeTable) {
  const auto doc = read_rules_doc();
  ASSERT_GT(doc.size(), 100u);
  std::set<std::string> doc_ids;
  for (const auto& d : doc) {
    EXPECT_TRUE(doc_ids.insert(d.id).second) << "listed twice: " << d.id;
    const RuleInfo* r = find_rule(d.id);
    ASSERT_NE(r, nullptr) << d.id << " is in spec/verify-rules.md but not in the code";
    EXPECT_EQ(d.severity, severity_name(r->severity)) << d.id;
    EXPECT_EQ(d.enforcement, enforcement_name(r->enforcement)) << d.id;
  }
  for (const RuleInfo& r : all_rules()) {
    EXPECT_TRUE(doc_ids.count(std::string(r.id))) << r.id << " is missing from spec/verify-rules.md";
  }
}

TEST(RulesDoc, EveryRuleIsBrokenByACorpusStream) {
  std::set<std::string> hit;
  for (const Case& c : corpus()) {
    if (c.rule) hit.insert(*c.rule);
  }
  for (const auto& d : read_rules_doc()) {
    EXPECT_TRUE(hit.count(d.id)) << d.id << " is not broken by any corpus stream";
  }
}

// ---------------------------------------------------------------------------
// Exact messages and offsets.

std::string first_line(const Case& c) {
  const VerifyResult r = run(c);
  return r.problems.empty() ? std::string("(no problem)") : r.problems.front().format();
}

TEST(Messages, PfnReservedBits) {
  const Case& c = find_case("libxc-page-04-reserved-bits");
  // Records: #0 LIBXC_CONTEXT, #1 X86_CPUID_POLICY, #2 X86_MSR_POLICY,
  // #3 STATIC_DATA_END, #4 PAGE_DATA; entry 3 is 8 + 8 + 3*8 into it.
  const std::uint64_t at = c.offsets.at("pd0") + 8 + 8 + 3 * 8;
  EXPECT_EQ(first_line(c), "warning: offset " + hex(at) +
                               ", record #4 PAGE_DATA: pfn[3] has reserved bits set "
                               "(0x00f0000000000003) [LIBXC-PAGE-04]");
}

TEST(Messages, MissingEnd) {
  const Case& c = find_case("stream-05-no-end");
  const std::string at = hex(c.offsets.at("xc_end"));
  EXPECT_EQ(first_line(c), "offset " + at + ", input: the stream ends at " + at +
                               " without its libxc END record [STREAM-05]");
}

TEST(Messages, MissingLibxlEndIsAWarning) {
  const Case& c = find_case("stream-07-no-libxl-end");
  const std::string at = hex(c.offsets.at("xl_end"));
  EXPECT_EQ(first_line(c), "warning: offset " + at + ", input: the stream ends at " + at +
                               " without its libxl END record: Xen's libxl reads the end of input "
                               "at a record boundary as END [STREAM-07]");
}

TEST(Messages, TruncatedRecord) {
  const Case& c = find_case("stream-04-truncated-record");
  const std::uint64_t pd0 = c.offsets.at("pd0");
  const std::uint64_t len = 8 + 9 * 8 + 8 * 4096;
  EXPECT_EQ(first_line(c), "offset " + hex(pd0 + 100) + ", record #4 PAGE_DATA: truncated: the record needs [" +
                               hex(pd0) + ", " + hex(pd0 + 8 + len) + ") but the input ends at " +
                               hex(pd0 + 100) + " [STREAM-04]");
}

TEST(Messages, OptionalRecordIsAWarning) {
  const Case& c = find_case("libxc-rec-04-optional");
  const VerifyResult r = run(c);
  ASSERT_EQ(r.problems.size(), 1u);
  const std::uint64_t at = c.offsets.at("params") + 8 + 8 + 4 * 16;
  EXPECT_EQ(r.problems[0].format(),
            "warning: offset " + hex(at) +
                ", record #9 OPTIONAL_0x80000013: unknown optional record type 0x80000013 skipped "
                "[LIBXC-REC-04]");
  EXPECT_TRUE(r.valid());
  EXPECT_EQ(r.warnings, 1u);
}

TEST(Messages, LengthCap) {
  const Case& c = find_case("libxc-rec-01-length-cap");
  EXPECT_EQ(first_line(c), "offset " + hex(c.offsets.at("pd0") + 4) +
                               ", record #4 PAGE_DATA: body_length 0x8000001 exceeds the cap of "
                               "0x8000000 [LIBXC-REC-01]");
}

TEST(Messages, PfnBeyondMaxPfn) {
  const Case& c = find_case("libxc-page-09-beyond-max-pfn");
  // #0 LIBXC_CONTEXT #1 X86_PV_INFO #2 CPUID #3 MSR #4 SDE #5 P2M #6 PAGE_DATA
  const std::uint64_t at = c.offsets.at("pd0") + 8 + 8 + 4 * 8;
  EXPECT_EQ(first_line(c), "offset " + hex(at) +
                               ", record #6 PAGE_DATA: pfn[4] 0x200 is beyond max_pfn 0x1ff (Xen: "
                               "\"outside domain maximum\") [LIBXC-PAGE-09]");
}

TEST(Messages, HvmContextUnknownTypecode) {
  const Case& c = find_case("hvmctx-05-typecode");
  // The extra descriptor sits right before END, which ends the blob.
  const std::uint64_t rec = c.offsets.at("hvmctx");
  std::uint64_t blob_len = 0;
  for (const auto& e : testing::hvm_entries(2)) blob_len += 8 + e.body.size();
  EXPECT_EQ(first_line(c), "offset " + hex(rec + 8 + blob_len) +
                               ", record #7 HVM_CONTEXT: HVM context at blob offset " + hex(blob_len) +
                               ": unknown typecode 25 (instance 0, length 8) [HVMCTX-05]");
}

TEST(Messages, QemuStateWithoutEof) {
  const Case& c = find_case("qevm-05-no-eof");
  const auto secs = testing::qemu_sections();
  const Buf blob = testing::qemu_blob(secs, false);
  const std::uint64_t last_payload = blob.size() - secs.back().payload.size();
  const std::uint64_t data = c.offsets.at("emuctx") + 8 + 8;
  EXPECT_EQ(first_line(c),
            "offset " + hex(data + last_payload) + ", record #10 EMULATOR_CONTEXT: QEMU state at blob offset " +
                hex(last_payload) +
                ": no footer, section header or EOF marker follows the payload of SECTION_FULL section 22 "
                "\"0000:00:02.0/xen-platform\" starting at " + hex(last_payload) +
                ": the blob has no EOF marker [QEVM-05]");
}

TEST(Messages, XlByteOrder) {
  const Case& c = find_case("cont-xl-02-byteorder");
  EXPECT_EQ(first_line(c),
            "offset 0x20, xl header: byteorder is 0x11223344 read little-endian, expected 0x01020304 in "
            "the saving host's byte order [CONT-XL-02]");
}

TEST(Messages, Legacy) {
  const Case& c = find_case("stream-02-legacy");
  EXPECT_EQ(first_line(c),
            "offset 0x0, input: legacy (pre-Xen 4.6) image: streamverify checks v2/v3 streams; "
            "convert it with streamconv first [STREAM-02]");
}

TEST(Messages, Verdicts) {
  EXPECT_EQ(run(find_case("valid-hvm")).verdict(),
            "mem: valid (libxl + libxc v3, x86 HVM, Xen 4.17), 0 warnings");
  EXPECT_EQ(run(find_case("valid-remus")).verdict(),
            "mem: valid (libxl + libxc v3, x86 HVM, Xen 4.17, 3 committed checkpoints), 0 warnings");
  // Xen restores a record that names a pfn twice: a warning, an error with --strict.
  EXPECT_EQ(run(find_case("libxc-page-08-duplicate")).verdict(),
            "mem: valid (libxl + libxc v3, x86 HVM, Xen 4.17), 1 warning");
  EXPECT_EQ(run(find_case("libxc-page-08-duplicate"), true).verdict(), "mem: INVALID: 1 error, 0 warnings");
  EXPECT_EQ(run(find_case("stream-04-truncated-record")).verdict(),
            "mem: INVALID: 1 error, 0 warnings (stopped early: the rest of the input is unreadable)");
}

// ---------------------------------------------------------------------------
// Every problem in one pass.

TEST(OnePass, ReportsEveryProblem) {
  testing::Stream s = testing::hvm_stream();
  s.at(Layer::kLibxc, 0x01, 0).body = testing::page_data({0x00f0000000000001ull, 0x00f0000000000002ull});
  s.at(Layer::kLibxc, 0x08).body = testing::tsc_info(9);
  s.at(Layer::kLibxl, 0x03).body = testing::emulator(2, 5, testing::qemu_blob(testing::qemu_sections()));
  const VerifyResult r = run(s.bytes());
  EXPECT_EQ(rules_of(r), (std::set<std::string>{"LIBXC-PAGE-04", "LIBXC-TSC-03", "LIBXL-EMU-04"}))
      << dump(r);
  EXPECT_EQ(r.errors, 2u);    // the emulator index, the TSC mode (Xen refuses 9)
  EXPECT_EQ(r.warnings, 2u);  // two pfns' reserved bits (Xen masks them)
  EXPECT_TRUE(r.complete);
}

TEST(OnePass, CapsListedProblemsPerRule) {
  std::vector<std::uint64_t> entries;
  for (std::uint64_t p = 0; p < 300; ++p) entries.push_back((0xFull << 60) | (1ull << 52) | p);
  testing::Stream s = testing::hvm_stream();
  s.at(Layer::kLibxc, 0x01, 0).body = testing::page_data(entries);
  const VerifyResult r = run(s.bytes());
  EXPECT_EQ(r.warnings, 300u);
  EXPECT_EQ(r.problems.size(), 100u);
  EXPECT_EQ(r.suppressed.at("LIBXC-PAGE-04"), 200u);
}

// ---------------------------------------------------------------------------
// Summary (-v / --json).

TEST(Summary, HvmStream) {
  const VerifyResult r = run(find_case("valid-hvm"));
  const Summary& s = r.summary;
  EXPECT_EQ(s.guest_type, "x86 HVM");
  EXPECT_EQ(s.libxc_records.at("PAGE_DATA"), 2u);
  EXPECT_EQ(s.libxl_records.at("EMULATOR_CONTEXT"), 1u);
  EXPECT_EQ(s.page_entries, 14u);
  EXPECT_EQ(s.pages_by_type[0], 13u);
  EXPECT_EQ(s.pages_by_type[0xF], 1u);
  EXPECT_EQ(s.pfn_min, 0u);
  EXPECT_EQ(s.pfn_max, 0x100u);
  EXPECT_EQ(s.data_pfns, 12u);
  EXPECT_EQ(s.data_pfns_sent_again, 1u);
  EXPECT_EQ(s.hvm_params.size(), 4u);
  EXPECT_EQ(s.hvm_params.at(17), 0xfefffu);
  ASSERT_TRUE(s.hvm_context);
  EXPECT_EQ(s.hvm_context->vcpus, 2u);
  EXPECT_EQ(s.cpuid_leaves, 3u);
  ASSERT_EQ(s.emulators.size(), 1u);
  ASSERT_TRUE(s.emulators[0].qemu);
  EXPECT_EQ(s.emulators[0].qemu->sections_total, 5u);
  EXPECT_EQ(s.emulators[0].qemu->sections[3].idstr, "0000:00:01.3/piix4_pm");
  EXPECT_EQ(s.emulators[0].qemu->sections[3].payload_size, 57u);
  ASSERT_TRUE(s.tsc);
  EXPECT_EQ(s.tsc->khz, 2400000u);

  const std::string text = format_summary(s);
  EXPECT_NE(text.find("Pages:        14 PAGE_DATA entries: NOTAB 13, XTAB 1"), std::string::npos) << text;
  EXPECT_NE(text.find("  CONSOLE_PFN (17) = 0xfefff"), std::string::npos) << text;
  EXPECT_NE(text.find("SECTION_FULL id 17 \"0000:00:01.3/piix4_pm\" instance 0 version 3, 57 octets"),
            std::string::npos)
      << text;
}

TEST(Summary, PvStream) {
  const VerifyResult r = run(find_case("valid-pv"));
  const Summary& s = r.summary;
  EXPECT_EQ(s.guest_type, "x86 PV");
  ASSERT_TRUE(s.pv_info);
  EXPECT_EQ(s.pv_info->first, 8);
  EXPECT_EQ(s.max_pfn, 0x1ffu);
  EXPECT_EQ(s.pv_vcpus, std::vector<std::uint32_t>{0});
  EXPECT_EQ(s.pages_by_type[0xC], 1u);
}

TEST(Summary, Checkpoints) {
  const VerifyResult r = run(find_case("valid-colo"));
  EXPECT_EQ(r.summary.checkpoints, 3u);
  EXPECT_EQ(r.summary.committed, 3u);
  EXPECT_EQ(r.summary.pages_per_checkpoint, (std::vector<std::uint64_t>{4, 4, 4}));
  const VerifyResult p = run(find_case("libxc-ckpt-03-partial-checkpoint"));
  EXPECT_EQ(p.summary.committed, 2u);
  EXPECT_EQ(p.summary.pages_per_checkpoint, (std::vector<std::uint64_t>{4, 4, 2}));
}

TEST(Summary, ConfigFacts) {
  const VerifyResult r = run(find_case("valid-xl"));
  ASSERT_TRUE(r.summary.config);
  EXPECT_EQ(r.summary.config->source, "xl JSON");
  EXPECT_EQ(r.summary.config->guest_type, "hvm");
  EXPECT_EQ(r.summary.config->name, "guest1");
  EXPECT_EQ(r.summary.config->max_vcpus, 2u);
  const VerifyResult v = run(find_case("valid-libvirt"));
  ASSERT_TRUE(v.summary.config);
  EXPECT_EQ(v.summary.config->guest_type, "hvm");
  EXPECT_EQ(v.summary.config->max_vcpus, 2u);
}

TEST(Summary, VcpuLimitFromConfig) {
  // max_vcpus 1 in the config: the second vcpu's HVM context entries are out of range.
  testing::Stream s = testing::hvm_stream();
  s.xl_container = testing::XlContainer{};
  s.xl_container->config = testing::xl_json_config("hvm", 1);
  const VerifyResult r = run(s.bytes());
  EXPECT_EQ(rules_of(r), std::set<std::string>{"HVMCTX-08"}) << dump(r);
}

TEST(Json, Document) {
  const VerifyResult r = run(find_case("libxc-page-04-reserved-bits"), /*strict=*/true);
  const nlohmann::json j = to_json(r);
  EXPECT_EQ(j["schema"], "xenstream-streamverify/1");
  EXPECT_EQ(j["valid"], false);
  EXPECT_EQ(j["exit_status"], 1);
  ASSERT_EQ(j["problems"].size(), 1u);
  EXPECT_EQ(j["problems"][0]["rule"], "LIBXC-PAGE-04");
  EXPECT_EQ(j["problems"][0]["severity"], "error");
  EXPECT_EQ(j["problems"][0]["enforcement"], "strict");
  EXPECT_EQ(j["problems"][0]["record_index"], 4);
  EXPECT_EQ(j["problems"][0]["record_type"], "PAGE_DATA");
  EXPECT_EQ(j["problems"][0]["layer"], "libxc");
  EXPECT_EQ(j["summary"]["pages"]["by_type"]["NOTAB"], 9);  // 4 in pd0, 5 in pd1
  EXPECT_EQ(j["summary"]["libxc_domain_header"]["xen_minor"], 17);
  EXPECT_EQ(j["summary"]["emulators"][0]["qemu"]["sections"].size(), 5u);
  EXPECT_EQ(j["summary"]["hvm_params"][3]["name"], "CONSOLE_PFN");
}

// ---------------------------------------------------------------------------
// Inputs: pipes, chunking, zstd, files.

// Feeds `bytes` through a pipe in pieces of the given sizes (cycled).
VerifyResult run_through_pipe(const Buf& bytes, std::vector<std::size_t> pieces) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  std::thread writer([&] {
    std::size_t at = 0, k = 0;
    while (at < bytes.size()) {
      const std::size_t n = std::min(bytes.size() - at, std::max<std::size_t>(1, pieces[k++ % pieces.size()]));
      const ssize_t w = write(fds[1], bytes.data() + at, n);
      if (w <= 0) break;
      at += static_cast<std::size_t>(w);
    }
    close(fds[1]);
  });
  FdSource src(fds[0], "mem");
  const VerifyResult r = verify(src);
  writer.join();
  close(fds[0]);
  return r;
}

std::vector<std::string> lines(const VerifyResult& r) {
  std::vector<std::string> out;
  for (const auto& p : r.problems) out.push_back(p.format());
  out.push_back(r.verdict());
  return out;
}

TEST(Inputs, PipeGivesTheSameResult) {
  for (const char* name : {"valid-hvm", "valid-colo", "libxc-page-08-duplicate", "stream-04-truncated-record",
                           "libxc-ckpt-03-partial-checkpoint", "stream-06-trailing"}) {
    const Case& c = find_case(name);
    EXPECT_EQ(lines(run_through_pipe(c.bytes, {7, 4096, 1, 65536})), lines(run(c))) << name;
  }
}

TEST(Inputs, PipePagesBypassUserSpaceAndCutsAgree) {
  // From a pipe the pages of PAGE_DATA go to /dev/null inside the kernel;
  // the result is the file's, for the whole stream and for every cut
  // (inside pages, entries, headers), with the same offsets.
  const Case& c = find_case("valid-hvm");
  std::uint64_t data_octets = 0;
  {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    std::thread writer([&] {
      std::size_t at = 0;
      while (at < c.bytes.size()) {
        const ssize_t w = write(fds[1], c.bytes.data() + at, c.bytes.size() - at);
        if (w <= 0) break;
        at += static_cast<std::size_t>(w);
      }
      close(fds[1]);
    });
    FdSource src(fds[0], "mem");
    src.set_read_ahead(false);
    const VerifyResult r = verify(src);
    writer.join();
    close(fds[0]);
    EXPECT_EQ(lines(r), lines(run(c)));
    for (std::size_t t = 0; t < 16; ++t) {
      if (format::libxc::page_type_has_data(static_cast<unsigned>(t))) data_octets += r.summary.pages_by_type[t] * 4096;
    }
    ASSERT_GT(data_octets, 0u);
    EXPECT_EQ(src.bypassed(), data_octets);
  }
  for (std::size_t cut = 1; cut < c.bytes.size(); cut += 509) {
    const Buf part(c.bytes.begin(), c.bytes.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_EQ(lines(run_through_pipe(part, {4096, 3})), lines(run(part))) << "cut at " << cut;
  }
}

RC_GTEST_PROP(Inputs, SplitPointInvariance, ()) {
  const auto& all = corpus();
  const std::size_t i = *rc::gen::inRange<std::size_t>(0, all.size());
  if (all[i].hint != FormatHint::kAuto || all[i].mode != "auto") return;
  const auto pieces = *rc::gen::container<std::vector<std::size_t>>(
      *rc::gen::inRange<std::size_t>(1, 5), rc::gen::inRange<std::size_t>(1, 70000));
  RC_ASSERT(lines(run_through_pipe(all[i].bytes, pieces)) == lines(run(all[i])));
}

TEST(Inputs, ZstdIsDecodedTransparently) {
  std::filesystem::create_directories(VERIFY_TEST_TMP);
  const std::string path = std::string(VERIFY_TEST_TMP) + "/valid-hvm.zst";
  {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    FdSink file(fd, path);
    codecs::ZstdSink z(file);
    ASSERT_TRUE(z.write(Bytes(find_case("valid-hvm").bytes)));
    ASSERT_TRUE(z.flush());
    ::close(fd);
  }
  const VerifyResult r = verify_path(path);
  EXPECT_TRUE(r.valid()) << dump(r);
  EXPECT_TRUE(r.summary.compressed);
  EXPECT_EQ(r.summary.bytes, find_case("valid-hvm").bytes.size());
}

TEST(Inputs, DamagedZstdIsABadStream) {
  std::filesystem::create_directories(VERIFY_TEST_TMP);
  const std::string path = std::string(VERIFY_TEST_TMP) + "/cut.zst";
  BufferSink packed;
  {
    codecs::ZstdSink z(packed);
    ASSERT_TRUE(z.write(Bytes(find_case("valid-hvm").bytes)));
    ASSERT_TRUE(z.flush());
  }
  for (const std::size_t cut : {std::size_t{40}, packed.data().size() / 2, packed.data().size() - 3}) {
    {
      std::ofstream f(path, std::ios::binary);
      f.write(reinterpret_cast<const char*>(packed.data().data()), static_cast<std::streamsize>(cut));
    }
    const VerifyResult r = verify_path(path);
    EXPECT_FALSE(r.failure) << cut << ": " << r.verdict();
    EXPECT_EQ(r.exit_status(), 1) << cut;
    EXPECT_EQ(rules_of(r), std::set<std::string>{"STREAM-04"}) << cut << "\n" << dump(r);
  }
}

TEST(Inputs, MissingFileIsAFailure) {
  const VerifyResult r = verify_path("/nonexistent/streamverify-test");
  ASSERT_TRUE(r.failure);
  EXPECT_EQ(r.exit_status(), 2);
}

// Arbitrary damage to valid streams never crashes or fails with an I/O
// error; the verdict is always 0 or 1.
RC_GTEST_PROP(Robustness, DamagedStreamsNeverCrash, ()) {
  static const std::vector<const Case*> bases = [] {
    std::vector<const Case*> v;
    for (const Case& c : corpus()) {
      if (!c.rule && !c.bytes.empty()) v.push_back(&c);
    }
    return v;
  }();
  Buf bytes = (*rc::gen::elementOf(bases))->bytes;
  const int edits = *rc::gen::inRange(1, 8);
  for (int k = 0; k < edits; ++k) {
    const std::size_t at = *rc::gen::inRange<std::size_t>(0, bytes.size());
    bytes[at] = std::byte{*rc::gen::arbitrary<std::uint8_t>()};
  }
  if (*rc::gen::arbitrary<bool>()) bytes.resize(*rc::gen::inRange<std::size_t>(0, bytes.size() + 1));
  const VerifyResult r = run(bytes);
  RC_ASSERT(!r.failure);
  RC_ASSERT(r.exit_status() == 0 || r.exit_status() == 1);
  (void)to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  (void)format_summary(r.summary);
}

// ---------------------------------------------------------------------------

TEST(PfnTracker, CountsAndCaps) {
  PfnTracker t(2 * PfnTracker::kChunkBytes);
  t.add(1);
  t.add(1);
  t.add(1);
  t.add(40000);            // second chunk
  t.add(1ull << 51);       // third chunk: over the cap
  EXPECT_EQ(t.distinct(), 2u);
  EXPECT_EQ(t.sent_more_than_once(), 1u);
  EXPECT_TRUE(t.capped());
  EXPECT_EQ(t.bytes(), 2 * PfnTracker::kChunkBytes);
}

TEST(PfnTypes, TypesPopulationAndCap) {
  PfnTypes t(2 * PfnTypes::kChunkBytes);
  EXPECT_EQ(t.get(7)->type, 0u);  // never touched: NOTAB, not populated
  EXPECT_FALSE(t.get(7)->populated);
  t.sent(7, 0xC);        // pinned L4
  t.sent(8, 0xF);        // XTAB: typed, not populated
  t.sent(9, 0x0);
  t.referred(10);        // a page-table entry populates it
  t.sent(9, 0x1);        // the last type wins
  EXPECT_EQ(t.get(7)->type, 0xCu);
  EXPECT_TRUE(t.get(7)->populated);
  EXPECT_EQ(t.get(8)->type, 0xFu);
  EXPECT_FALSE(t.get(8)->populated);
  EXPECT_EQ(t.get(9)->type, 0x1u);
  EXPECT_EQ(t.get(10)->type, 0u);
  EXPECT_TRUE(t.get(10)->populated);
  t.sent(40000, 0);         // second chunk
  t.sent(1ull << 40, 0);    // third: over the cap, not tracked
  EXPECT_TRUE(t.capped());
  EXPECT_EQ(t.bytes(), 2 * PfnTypes::kChunkBytes);
  EXPECT_FALSE(t.get(1ull << 40).has_value());      // unknown, not "never sent"
  EXPECT_TRUE(t.get(5ull << 32).has_value());       // a chunk never asked for: untouched
  EXPECT_TRUE(t.get(40000)->populated);
  t.clear();
  EXPECT_FALSE(t.capped());
  EXPECT_FALSE(t.get(7)->populated);
}

// A hostile max_pfn (end_pfn 0xffffffff, one frame: a valid 16-octet
// record) sizes nothing: the frame list past the cap is not judged entry by
// entry, the given ranges still are (LIBXC-P2M-05: indices below the one
// given are missing), and the walk stays within the tracking cap.
TEST(PfnTypes, HostileMaxPfnIsBounded) {
  testing::Stream s = testing::pv_stream();
  s.at(Layer::kLibxc, 0x03) = testing::xc(0x03, testing::p2m_frames(0xfffffe00u, 0xffffffffu, {6}));
  const Buf bytes = s.bytes();
  MemorySource src(Bytes(bytes), "mem");
  VerifyOptions o;
  o.pfn_tracking_cap = 1u << 20;
  const VerifyResult r = verify(src, o);
  EXPECT_EQ(r.exit_status(), 1);
  std::set<std::string> rules;
  for (const auto& p : r.problems) rules.insert(std::string(p.rule));
  EXPECT_EQ(rules, std::set<std::string>{"LIBXC-P2M-05"});
}

TEST(Legacy, Detection) {
  Buf pv32;
  testing::put32(pv32, 0x1000);
  testing::put32(pv32, 0xFFFFFFFFu);
  testing::put32(pv32, 28);
  testing::put_text(pv32, "vcpu");
  EXPECT_TRUE(looks_like_legacy(Bytes(pv32)));
  Buf text;
  testing::put_text(text, "hello, world, not a stream");
  EXPECT_FALSE(looks_like_legacy(Bytes(text)));
}

}  // namespace
}  // namespace xenstream::verify
