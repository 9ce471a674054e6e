// The converter (tools/convert/converter.h) and the streamconv CLI, without
// the reference: every result is read back as a restorer would
// (decode_v2) and compared with the memory the legacy input describes.
// Byte identity with Xen's converter is oracle_test.cpp's job.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <xenstream/codecs/remus/remus_codec.h>
#include "tests/convert/legacy_builder.h"
#include "tests/convert/test_support.h"
#include "tools/convert/legacy_format.h"

namespace xenstream::convert::testing {
namespace {

namespace lg = legacy;

ConvertOptions opts(unsigned bits, GuestType g, OutputFormat f = OutputFormat::kLibxc) {
  Flags x;
  x.width = bits;
  x.guest = g;
  x.format = f;
  return options_for(x);
}

// Converts and checks the result against the scenario's model.
Converted convert_and_check(const Scenario& s, const ConvertOptions& o, std::size_t xl_size = 0,
                            bool verify = true) {
  Converted c = convert_bytes(s.bytes, o);
  EXPECT_TRUE(c.result.has_value()) << c.result.error().describe();
  if (!c.result) return c;
  const Decoded d = decode_v2(c.out, xl_size);
  EXPECT_FALSE(d.error.has_value()) << *d.error;
  EXPECT_EQ(d.memory, s.memory);
  EXPECT_EQ(c.result->checkpoints, s.complete_checkpoints);
  if (const auto errors = verify ? verifier_errors(c.out) : std::nullopt) {
    EXPECT_EQ(*errors, "");
  }
  return c;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += x + "\n";
  return s;
}

// --- Remus --------------------------------------------------------------

TEST(Converter, CheckpointedStreamsBecomeCheckpointedV2) {
  for (OutputFormat f : {OutputFormat::kLibxc, OutputFormat::kLibxl}) {
    ScenarioOptions o;
    o.checkpoints = 3;
    o.last_checkpoint = false;
    o.toolstack = true;
    const Scenario s = build_scenario(o);
    const Converted c = convert_and_check(s, opts(64, GuestType::kHvm, f));
    ASSERT_TRUE(c.result);
    EXPECT_TRUE(c.result->checkpointed);
    const Decoded d = decode_v2(c.out);
    EXPECT_EQ(d.checkpoints, 3u);
    EXPECT_EQ(d.committed, 3u);
    std::vector<std::string> tail(d.records.end() - (f == OutputFormat::kLibxl ? 7 : 3), d.records.end());
    if (f == OutputFormat::kLibxl) {
      EXPECT_EQ(tail, (std::vector<std::string>{"libxc:HVM_CONTEXT", "libxc:CHECKPOINT", "libxl:EMULATOR_XENSTORE_DATA",
                                                "libxl:EMULATOR_CONTEXT", "libxl:CHECKPOINT_END", "libxc:END",
                                                "libxl:END"}));
      EXPECT_EQ(d.emulator_context, s.last_qemu);
      EXPECT_EQ(d.xenstore, s.xenstore);
    } else {
      EXPECT_EQ(tail, (std::vector<std::string>{"libxc:HVM_CONTEXT", "libxc:CHECKPOINT", "libxc:END"}));
      // The last checkpoint's qemu record follows END, as for a plain stream.
      ASSERT_EQ(d.trailing.size(), 21 + 4 + s.last_qemu.size());
      EXPECT_EQ(Buffer(d.trailing.begin() + 25, d.trailing.end()), s.last_qemu);
    }
  }
}

TEST(Converter, IncompleteLastCheckpointIsDropped) {
  ScenarioOptions o;
  o.checkpoints = 4;
  o.last_checkpoint = false;
  o.truncate_last = true;
  const Scenario s = build_scenario(o);
  ASSERT_EQ(s.complete_checkpoints, 3u);
  const Converted c = convert_and_check(s, opts(64, GuestType::kHvm, OutputFormat::kLibxl));
  ASSERT_TRUE(c.result);
  EXPECT_EQ(c.result->dropped_checkpoints, 1u);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0].rfind("checkpoint 4 is incomplete and is dropped, as Xen's restorer did: offset ", 0), 0u)
      << c.warnings[0];
  EXPECT_EQ(decode_v2(c.out).checkpoints, 3u);
}

TEST(Converter, GarbageAfterAPlainStreamKeepsItPlain) {
  // No LAST_CHECKPOINT (as pre-4.1 savers): more input could be a second
  // checkpoint; when it is not one, the output is the plain conversion.
  ScenarioOptions o;
  o.last_checkpoint = false;
  Scenario s = build_scenario(o);
  const Converted plain = convert_bytes(s.bytes, opts(64, GuestType::kHvm));
  ASSERT_TRUE(plain.result);
  s.bytes.push_back(std::byte{7});
  s.bytes.push_back(std::byte{0});
  const Converted c = convert_and_check(s, opts(64, GuestType::kHvm));
  ASSERT_TRUE(c.result);
  EXPECT_EQ(c.out, plain.out);
  EXPECT_FALSE(c.result->checkpointed);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0].rfind("the data after checkpoint 1 is not a complete checkpoint, so it is ignored", 0), 0u);
}

TEST(Converter, CompressedCheckpointsDecode) {
  for (bool split : {false, true}) {
    ScenarioOptions o;
    o.guest = GuestType::kPv;
    o.qemu = QemuSig::kNone;
    o.pages = 300;
    o.batch = 64;
    o.checkpoints = 5;
    o.dirty = 150;
    o.compress = true;
    o.split_encodings = split;
    o.compressed_chunk = 20000;
    o.last_checkpoint = false;
    const Scenario s = build_scenario(o);
    const Converted c = convert_and_check(s, opts(64, GuestType::kPv));
    ASSERT_TRUE(c.result);
    EXPECT_EQ(c.result->compressed_pages, s.compressed_pages);
    EXPECT_GT(s.compressed_pages, 0u);
  }
}

TEST(Converter, DeltaAgainstAnUncompressedPageNeedsRandomAccess) {
  ScenarioOptions o;
  o.pages = 20;
  o.checkpoints = 2;
  o.dirty = 5;
  o.compress = true;
  o.delta_against_first = true;
  o.last_checkpoint = false;
  const Scenario s = build_scenario(o);
  // From a file (random access): the base comes from the input again.
  convert_and_check(s, opts(64, GuestType::kHvm));
  // From a pipe: Xen's savers never do this, so the copy was not kept, and
  // the checkpoint is dropped with the reason.
  const Converted c = convert_trickled(s.bytes, opts(64, GuestType::kHvm), 3);
  ASSERT_TRUE(c.result) << c.result.error().describe();
  EXPECT_EQ(c.result->checkpoints, 1u);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find(": a delta for a page that has no earlier copy"), std::string::npos) << c.warnings[0];
}

TEST(Converter, CompressedDataErrors) {
  // COMPRESSED_DATA in checkpoint 1, before any ENABLE_COMPRESSION.
  LegacyBuilder b(8);
  b.p2m_size(16).compressed(std::vector<std::byte>{std::byte{0}});
  const Converted c = convert_bytes(b.bytes(), opts(64, GuestType::kHvm));
  ASSERT_FALSE(c.result);
  EXPECT_EQ(c.result.error().message,
            "COMPRESSED_DATA chunk at 0x8 in checkpoint 1, whose pages are not compressed (no earlier checkpoint "
            "had ENABLE_COMPRESSION)");
}

// A sink that fails once `limit` octets were written (a full disk).
class FullSink : public Sink {
 public:
  explicit FullSink(std::uint64_t limit) : limit_(limit) {}

 protected:
  Expected<void> do_write(std::span<const Bytes>, std::size_t total) override {
    if (written_ + total > limit_) return io_error("write to <full> failed", ENOSPC);
    written_ += total;
    return {};
  }

 private:
  std::uint64_t limit_;
  std::uint64_t written_ = 0;
};

TEST(Converter, OutputFailuresAreFatalEvenInLaterCheckpoints) {
  ScenarioOptions o;
  o.checkpoints = 3;
  o.last_checkpoint = false;
  const Scenario s = build_scenario(o);
  const std::uint64_t total = convert_bytes(s.bytes, opts(64, GuestType::kHvm)).out.size();
  for (std::uint64_t limit : {std::uint64_t{100}, total / 2, total - 10}) {
    MemorySource src(view(s.bytes));
    FullSink sink(limit);
    std::vector<std::string> warnings;
    ConvertOptions opt = opts(64, GuestType::kHvm);
    opt.report = [&](Severity sev, const std::string& m) {
      if (sev == Severity::kWarning) warnings.push_back(m);
    };
    auto r = convert_legacy(src, sink, opt);
    ASSERT_FALSE(r) << limit;
    EXPECT_EQ(r.error().code, ErrorCode::kIo);
    EXPECT_EQ(r.error().message, "write to <full> failed: No space left on device");
    EXPECT_LE(r.error().offset, s.bytes.size());
    EXPECT_TRUE(warnings.empty()) << warnings.front();
  }
}

// --- Where Xen's converter writes what restorers refuse -------------------

TEST(Converter, PaddingOnlyBatchWritesNothing) {
  ScenarioOptions o;
  o.padding_only_batch = true;
  const Scenario s = build_scenario(o);
  const Converted c = convert_and_check(s, opts(64, GuestType::kHvm));
  ASSERT_TRUE(c.result);
  EXPECT_NE(joined(c.notes).find("holds only unmappable-page padding (0xf0000000): nothing to write"),
            std::string::npos);
}

TEST(Converter, PvWithoutVcpuInfoTakesVcpu0) {
  ScenarioOptions o;
  o.guest = GuestType::kPv;
  o.qemu = QemuSig::kNone;
  o.vcpu_info = false;
  const Scenario s = build_scenario(o);
  const Converted c = convert_and_check(s, opts(64, GuestType::kPv));
  EXPECT_EQ(decode_v2(c.out).vcpus, std::vector<std::uint32_t>{0});
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0], "no VCPU_INFO chunk: vcpu 0 alone is taken as online, as Xen's restorer did (Xen's "
                           "converter reads no vcpu at all)");
}

TEST(Converter, PageTypes) {
  auto stream = [](std::uint64_t entry) {
    LegacyBuilder b(8);
    b.p2m_size(16).batch({entry}, {make_page(1)}).end_body().hvm_tail(1, 2, 3, Buffer(8));
    b.qemu(lg::kQemuSigLibxl, Buffer(4));
    return b.bytes();
  };
  // A lone LPINTAB (8) is what Xen's restorer took as an ordinary page.
  const Converted eight = convert_bytes(stream(0x80000005), opts(64, GuestType::kHvm));
  ASSERT_TRUE(eight.result);
  const Decoded d = decode_v2(eight.out);
  ASSERT_FALSE(d.error) << *d.error;
  EXPECT_EQ(d.memory.at(5), make_page(1));
  // Types 5-7 were refused by Xen's restorer ("Bogus page type").
  const Converted six = convert_bytes(stream(0x60000005), opts(64, GuestType::kHvm));
  ASSERT_FALSE(six.result);
  EXPECT_EQ(six.result.error().offset, 0xcu);
  EXPECT_EQ(six.result.error().message, "page batch at 0x8: entry 0 (0x60000005) has the bogus page type 0x6");
  // Bits 63-32 of 8-octet entries are ignored, as everywhere.
  const Converted high = convert_bytes(stream(0x1200000005ull), opts(64, GuestType::kHvm));
  ASSERT_TRUE(high.result);
  EXPECT_EQ(decode_v2(high.out).memory.count(5), 1u);
}

TEST(Converter, DuplicateEntriesAreRefused) {
  LegacyBuilder b(4);
  b.p2m_size(16).batch({5, 6, 5}, {make_page(1), make_page(2), make_page(3)});
  const Converted c = convert_bytes(b.bytes(), opts(32, GuestType::kHvm));
  ASSERT_FALSE(c.result);
  EXPECT_EQ(c.result.error().message, "page batch at 0x4: the entry 0x5 appears twice");
}

TEST(Converter, HvmChunkInPvStream) {
  LegacyBuilder b(8);
  b.p2m_size(1).ext_info({{"vcpu", Buffer(0x1430), {}}}).ulong(0).hvm_chunk(-11, 1);
  const Converted c = convert_bytes(b.bytes(), opts(64, GuestType::kPv));
  ASSERT_FALSE(c.result);
  EXPECT_EQ(c.result.error().message,
            "chunk -11 (HVM_VIRIDIAN) at 0x1454 is for HVM guests only, but this is a PV stream");
}

TEST(Converter, UnknownExtendedBlockIsSkipped) {
  LegacyBuilder b(8);
  b.p2m_size(1).ext_info({{"vcpu", Buffer(0x1430), {}}, {"zzzz", Buffer(12), {}}}).ulong(0);
  b.vcpu_info({0}).end_body().unmapped({}).raw(Buffer(0x1430)).raw(Buffer(4096));
  const Converted c = convert_bytes(b.bytes(), opts(64, GuestType::kPv));
  ASSERT_TRUE(c.result) << c.result.error().describe();
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0], "unknown PV extended-info block at 0x144c (12 octets) skipped, as Xen's restorer did");
}

TEST(Converter, Tmem) {
  auto stream = [](bool with_page) {
    LegacyBuilder b(8);
    b.p2m_size(16).i32(-5).u32(1).u32(1).u32(0xFFFFFFFF).u32(0).u32(0).u32(0).u32(0xFFFFFFFF);
    b.u32(0).u32(1).u32(with_page ? 1 : 0).u64(0).u64(0);
    if (with_page) b.u64(1).u64(2).u64(3).u32(0).page(make_page(1));
    b.u32(0xFFFFFFFF).end_body().hvm_tail(1, 2, 3, Buffer(8)).qemu(lg::kQemuSigLibxl, Buffer(4));
    return b.bytes();
  };
  const Converted empty = convert_bytes(stream(false), opts(64, GuestType::kHvm));
  ASSERT_TRUE(empty.result) << empty.result.error().describe();
  ASSERT_EQ(empty.warnings.size(), 1u);
  EXPECT_EQ(empty.warnings[0], "TMEM chunk at 0x8 skipped (no tmem pages; v2 streams cannot carry tmem)");
  const Converted full = convert_bytes(stream(true), opts(64, GuestType::kHvm));
  ASSERT_FALSE(full.result);
  EXPECT_EQ(full.result.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(full.result.error().message,
            "TMEM chunk at 0x8 carries 1 persistent tmem pages: v2 streams have no place for them (Xen dropped tmem "
            "in 4.13), and leaving them out would lose guest data");
}

TEST(Converter, PhysmapErrorsAndNamelessEntries) {
  // An entry without a name (libxl wrote namelen 0 when xenstore had none).
  ScenarioOptions o;
  o.toolstack = true;
  o.physmap = {{0x1000, 0x2000, 0x3000, ""}, {0xa, 0xb, 0xc, "n"}};
  for (unsigned w : {4u, 8u}) {
    o.width = w;
    const Scenario s = build_scenario(o);
    const Converted c = convert_and_check(s, opts(w * 8, GuestType::kHvm, OutputFormat::kLibxl));
    EXPECT_EQ(decode_v2(c.out).xenstore, s.xenstore);
  }
  // A version other than 1.
  LegacyBuilder b(8);
  b.p2m_size(16).toolstack(physmap_v1(8, {}, 2));
  const Converted bad = convert_bytes(b.bytes(), opts(64, GuestType::kHvm, OutputFormat::kLibxl));
  ASSERT_FALSE(bad.result);
  EXPECT_EQ(bad.result.error().message, "libxl TOOLSTACK data at 0x8: unknown version 2 (expected 1)");
  // A name without its NUL.
  Buffer ts = physmap_v1(4, {{1, 2, 3, "ab"}});
  ts[8 + 28 + 2] = std::byte{'c'};
  LegacyBuilder b2(4);
  b2.p2m_size(16).toolstack(ts);
  const Converted nul = convert_bytes(b2.bytes(), opts(32, GuestType::kHvm, OutputFormat::kLibxl));
  ASSERT_FALSE(nul.result);
  EXPECT_EQ(nul.result.error().message, "libxl TOOLSTACK data at 0x4: physmap entry 0: its name is not NUL-terminated");
}

// --- Qemu records -------------------------------------------------------

TEST(Converter, QemuRecordsOfEveryKind) {
  for (QemuSig q : {QemuSig::kLibxl, QemuSig::kRemus, QemuSig::kXend}) {
    ScenarioOptions o;
    o.qemu = q;
    o.qemu_size = 100000;
    const Scenario s = build_scenario(o);
    ConvertOptions lx = opts(64, GuestType::kHvm, OutputFormat::kLibxl);
    lx.spool_memory = 4096;  // push the record through a temporary file
    const Converted c = convert_and_check(s, lx);
    EXPECT_EQ(decode_v2(c.out).emulator_context, s.last_qemu);
    // libxc format: the record is carried raw after END.
    const Converted raw = convert_and_check(s, opts(64, GuestType::kHvm));
    const Decoded d = decode_v2(raw.out);
    const std::string_view sig = q == QemuSig::kLibxl ? lg::kQemuSigLibxl
                                 : q == QemuSig::kRemus ? lg::kQemuSigRemus
                                                        : lg::kQemuSigXend;
    ASSERT_GE(d.trailing.size(), 21u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(d.trailing.data()), 21), sig);
    EXPECT_EQ(d.trailing.size(), 21 + (q == QemuSig::kXend ? 0 : 4) + s.last_qemu.size());
  }
}

TEST(Converter, SkipQemuIgnoresWhatFollowsTheContext) {
  ScenarioOptions o;
  o.qemu = QemuSig::kNone;
  Scenario s = build_scenario(o);
  s.bytes.insert(s.bytes.end(), {std::byte{'n'}, std::byte{'o'}, std::byte{'p'}, std::byte{'e'}});
  ConvertOptions opt = opts(64, GuestType::kHvm);
  opt.skip_qemu = true;
  const Converted c = convert_and_check(s, opt);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0].rfind("ignoring what follows the HVM context (--skip-qemu): ", 0), 0u);
  EXPECT_TRUE(decode_v2(c.out).trailing.empty());
}

// --- Containers and detection ---------------------------------------------

TEST(Converter, XlHeaderIsCarriedAndDetected) {
  ScenarioOptions o;
  o.xl_header = true;
  const Scenario with_xl = build_scenario(o);
  o.xl_header = false;
  const Scenario bare = build_scenario(o);
  const std::size_t xl_size = 48 + 4 + o.xl_config.size() + 1;
  for (OutputFormat f : {OutputFormat::kLibxc, OutputFormat::kLibxl}) {
    const Converted plain = convert_bytes(bare.bytes, opts(64, GuestType::kHvm, f));
    for (bool flag : {true, false}) {
      ConvertOptions opt = opts(64, GuestType::kHvm, f);
      if (flag) opt.xl_header = true;
      const Converted c = convert_and_check(with_xl, opt, xl_size, f == OutputFormat::kLibxl);
      ASSERT_TRUE(c.result);
      EXPECT_TRUE(c.result->xl_header);
      if (f == OutputFormat::kLibxc) {
        // As Xen's converter does; both we and streamverify say xl cannot
        // restore that.
        ASSERT_EQ(c.warnings.size(), 1u);
        EXPECT_EQ(c.warnings[0].rfind("the xl header is copied without the STREAMv2 flag", 0), 0u);
        if (const auto errors = verifier_errors(c.out)) {
          EXPECT_NE(errors->find("[CONT-XL-12]"), std::string::npos) << *errors;
        }
      }
      // Header (mandatory flags: JSON, plus STREAMv2 for libxl), then the
      // same bytes as without it.
      Buffer expect(with_xl.bytes.begin(), with_xl.bytes.begin() + static_cast<std::ptrdiff_t>(xl_size));
      if (f == OutputFormat::kLibxl) expect[36] = std::byte{3};
      expect.insert(expect.end(), plain.out.begin(), plain.out.end());
      EXPECT_TRUE(c.out == expect) << hexdump_diff(c.out, expect);
    }
  }
  // -x without a header.
  ConvertOptions opt = opts(64, GuestType::kHvm);
  opt.xl_header = true;
  const Converted none = convert_bytes(bare.bytes, opt);
  ASSERT_FALSE(none.result);
  EXPECT_EQ(none.result.error().message,
            "-x: the input does not start with an xl save header (\"Xen saved domain, xl format\")");
}

TEST(Converter, XendHeaderIsSkipped) {
  // xend: "LinuxGuestRecord", a big-endian config length, SXP, the legacy
  // stream, and for HVM a QemuDeviceModelRecord running to the end.
  ScenarioOptions o;
  o.qemu = QemuSig::kXend;
  const Scenario s = build_scenario(o);
  const std::string sxp = "(domain (name guest) (image (hvm (kernel ''))))";
  LegacyBuilder b(8);
  b.text("LinuxGuestRecord").u8(0).u8(0).u8(0).u8(static_cast<std::uint8_t>(sxp.size())).text(sxp).raw(s.bytes);
  const Converted c = convert_bytes(b.bytes(), ConvertOptions{});
  ASSERT_TRUE(c.result) << c.result.error().describe();
  EXPECT_EQ(c.out, convert_bytes(s.bytes, opts(64, GuestType::kHvm)).out);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0], "xend save header with a " + std::to_string(sxp.size()) +
                               "-octet SXP config: the config is not carried over (v2 streams have no place for it)");
}

TEST(Converter, DetectionGivesTheSameOutputAsFlags) {
  for (unsigned w : {4u, 8u}) {
    for (GuestType g : {GuestType::kPv, GuestType::kHvm}) {
      ScenarioOptions o;
      o.width = w;
      o.guest = g;
      o.qemu = g == GuestType::kPv ? QemuSig::kNone : QemuSig::kLibxl;
      o.xl_header = true;
      const Scenario s = build_scenario(o);
      const Converted told = convert_bytes(s.bytes, opts(w * 8, g));
      ConvertOptions none;
      const Converted guessed = convert_bytes(s.bytes, none);
      ASSERT_TRUE(guessed.result) << guessed.result.error().describe();
      EXPECT_TRUE(guessed.result->detected);
      EXPECT_EQ(guessed.out, told.out);
      const std::string note = "detected " + std::to_string(w * 8) + "-bit toolstack, " +
                               (g == GuestType::kPv ? "PV" : "HVM") + " guest";
      EXPECT_NE(std::find(guessed.notes.begin(), guessed.notes.end(), note), guessed.notes.end())
          << joined(guessed.notes);
    }
  }
}

TEST(Converter, UndetectableStreamAsksForFlags) {
  LegacyBuilder b(8);
  b.p2m_size(0x100).ulong(0x55).ulong(0x56);
  const Converted c = convert_bytes(b.bytes(), ConvertOptions{});
  ASSERT_FALSE(c.result);
  EXPECT_EQ(c.result.error().code, ErrorCode::kUsage);
  const std::string& m = c.result.error().message;
  EXPECT_EQ(m.rfind("cannot tell the toolstack width and guest type from the stream: no legacy layout fits", 0), 0u)
      << m;
  EXPECT_NE(m.find("; give -w 32|64 and -g pv|hvm"), std::string::npos) << m;
}

TEST(Converter, WrongFlagsGetAHint) {
  ScenarioOptions o;
  o.guest = GuestType::kPv;
  o.qemu = QemuSig::kNone;
  const Scenario s = build_scenario(o);
  const Converted c = convert_bytes(s.bytes, opts(32, GuestType::kPv));
  ASSERT_FALSE(c.result);
  const std::string& m = c.result.error().message;
  EXPECT_NE(m.find(" (the stream looks like a 64-bit toolstack, PV guest, not a 32-bit toolstack, PV guest as -w/-g "
                   "say)"),
            std::string::npos)
      << m;
}

TEST(Converter, V2InputIsRefused) {
  ScenarioOptions o;
  const Converted v2 = convert_bytes(build_scenario(o).bytes, opts(64, GuestType::kHvm, OutputFormat::kLibxl));
  ASSERT_TRUE(v2.result);
  const Converted again = convert_bytes(v2.out, ConvertOptions{});
  ASSERT_FALSE(again.result);
  EXPECT_EQ(again.result.error().message, "the input is already a v2 stream (libxl); there is nothing to convert");
}

// --- Streaming ------------------------------------------------------------

// Split-point invariance: any chunking of the input gives the same output.
RC_GTEST_PROP(ConverterProperty, OutputDoesNotDependOnHowInputArrives, ()) {
  ScenarioOptions o;
  o.guest = *rc::gen::element(GuestType::kPv, GuestType::kHvm);
  o.width = *rc::gen::element(4u, 8u);
  o.guest_width = *rc::gen::element(4u, 8u);
  o.pages = *rc::gen::inRange<std::uint32_t>(1, 120);
  o.batch = *rc::gen::inRange<std::uint32_t>(1, 70);
  o.seed = *rc::gen::inRange<std::uint64_t>(1, 1000);
  o.xtab_padding = *rc::gen::arbitrary<bool>();
  o.all_page_types = o.pages > 30 && *rc::gen::arbitrary<bool>();
  o.live = *rc::gen::arbitrary<bool>();
  o.toolstack = *rc::gen::arbitrary<bool>();
  o.xsave_size = *rc::gen::element(0u, 64u, 800u);
  o.checkpoints = *rc::gen::inRange(1u, 4u);
  o.last_checkpoint = o.checkpoints == 1;
  o.compress = o.checkpoints > 1 && *rc::gen::arbitrary<bool>();
  o.split_encodings = *rc::gen::arbitrary<bool>();
  o.compressed_chunk = *rc::gen::inRange<std::size_t>(5000, 70000);
  o.dirty = *rc::gen::inRange<std::uint32_t>(1, 40);
  o.qemu = o.guest == GuestType::kPv ? QemuSig::kNone : *rc::gen::element(QemuSig::kLibxl, QemuSig::kRemus);
  o.qemu_size = *rc::gen::inRange<std::size_t>(0, 5000);
  const Scenario s = build_scenario(o);
  const OutputFormat f = *rc::gen::element(OutputFormat::kLibxc, OutputFormat::kLibxl);
  ConvertOptions opt = opts(o.width * 8, o.guest, f);
  opt.reader.piece = *rc::gen::inRange<std::size_t>(1, 5000);
  const Converted whole = convert_bytes(s.bytes, opt);
  RC_ASSERT(whole.result.has_value());
  const Decoded d = decode_v2(whole.out);
  RC_ASSERT(!d.error.has_value());
  RC_ASSERT(d.memory == s.memory);
  const Converted trickled = convert_trickled(s.bytes, opt, *rc::gen::inRange<std::uint64_t>(1, 1u << 30));
  RC_ASSERT(trickled.result.has_value());
  RC_ASSERT(trickled.out == whole.out);
}

// Damaged streams: whatever is flipped or cut, the converter returns (no
// crash, no assertion), an error points inside the input, and a success is
// a stream a restorer can read.
RC_GTEST_PROP(ConverterProperty, DamagedStreamsFailCleanly, ()) {
  ScenarioOptions o;
  o.guest = *rc::gen::element(GuestType::kPv, GuestType::kHvm);
  o.width = *rc::gen::element(4u, 8u);
  o.pages = *rc::gen::inRange<std::uint32_t>(1, 40);
  o.batch = *rc::gen::inRange<std::uint32_t>(1, 20);
  o.all_page_types = o.pages > 30;
  o.toolstack = *rc::gen::arbitrary<bool>();
  o.xsave_size = *rc::gen::element(0u, 64u);
  o.checkpoints = *rc::gen::inRange(1u, 3u);
  o.last_checkpoint = o.checkpoints == 1;
  o.compress = o.checkpoints > 1 && *rc::gen::arbitrary<bool>();
  o.qemu = o.guest == GuestType::kPv ? QemuSig::kNone : QemuSig::kLibxl;
  o.qemu_size = 64;
  o.xl_header = *rc::gen::arbitrary<bool>();
  Buffer bytes = build_scenario(o).bytes;
  const auto flips = *rc::gen::inRange(0, 6);
  for (int i = 0; i < flips; ++i) {
    const auto at = static_cast<std::size_t>(*rc::gen::inRange<std::size_t>(0, bytes.size()));
    bytes[at] = std::byte(*rc::gen::arbitrary<std::uint8_t>());
  }
  if (*rc::gen::arbitrary<bool>()) bytes.resize(*rc::gen::inRange<std::size_t>(0, bytes.size() + 1));
  ConvertOptions opt;  // detect everything
  opt.format = *rc::gen::element(OutputFormat::kLibxc, OutputFormat::kLibxl);
  opt.spool_memory = 4096;
  const Converted c = convert_bytes(bytes, opt);
  if (!c.result) {
    RC_ASSERT(!c.result.error().message.empty());
    RC_ASSERT(c.result.error().code != ErrorCode::kIo);
    RC_ASSERT(c.result.error().offset <= bytes.size());
    return;
  }
  RC_ASSERT(c.result->output_bytes == c.out.size());
  std::size_t xl = 0;
  if (c.result->xl_header) {
    RC_ASSERT(c.out.size() >= 48);
    xl = 48 + Fields(view(c.out), ByteOrder::kLittle, 0).u32(44);
  }
  const Decoded d = decode_v2(c.out, xl);
  RC_ASSERT(!d.error.has_value());
}

// --- The CLI --------------------------------------------------------------

struct Cli {
  TempDir dir;
  std::string in = dir.file("in.save");
  std::string out = dir.file("out.save");
  RunResult run(std::vector<std::string> args) {
    args.insert(args.begin(), streamconv_binary());
    return run_program(args);
  }
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
};

TEST(Cli, ConvertsAndSaysWhatItDetected) {
  Cli cli;
  ScenarioOptions o;
  const Scenario s = build_scenario(o);
  write_file(cli.in, s.bytes);
  const RunResult r = cli.run({cli.in, cli.out});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "streamconv: detected 64-bit toolstack, HVM guest\n");
  EXPECT_EQ(read_file(cli.out), convert_bytes(s.bytes, opts(64, GuestType::kHvm)).out);
  // -v explains why.
  const RunResult v = cli.run({"-v", cli.in, cli.out});
  EXPECT_NE(v.err.find("streamconv: 64-bit toolstack, HVM guest: fits: octets 4-7 are zero"), std::string::npos)
      << v.err;
  // The reference's option spelling works too.
  const RunResult ref = cli.run({"-i", cli.in, "-o", cli.out, "-w", "64", "--guest-type", "hvm", "-f", "libxc"});
  EXPECT_EQ(ref.status, 0) << ref.err;
  EXPECT_EQ(ref.err, "");
}

// --check judges the output with streamverify's rule engine before OUT
// appears: a libxl stream and a bare libxc image of the scenario pass.
TEST(Cli, CheckJudgesTheOutputWithTheRules) {
  Cli cli;
  ScenarioOptions o;
  const Scenario s = build_scenario(o);
  write_file(cli.in, s.bytes);
  for (const char* f : {"libxl", "libxc"}) {
    const RunResult r = cli.run({"--check", "-q", "-f", f, cli.in, cli.out});
    EXPECT_EQ(r.status, 0) << f << ": " << r.err;
    EXPECT_EQ(r.err.find("check: "), std::string::npos) << f << ": " << r.err;
    EXPECT_TRUE(std::filesystem::exists(cli.out)) << f;
    std::filesystem::remove(cli.out);
  }
  // A pipe cannot be read back: refused, not skipped.
  const RunResult p = cli.run({"--check", "-q", cli.in, "-"});
  EXPECT_EQ(p.status, 2) << p.err;
  EXPECT_NE(p.err.find("--check needs OUT to be a regular file"), std::string::npos) << p.err;
}

TEST(Cli, FailureLeavesNoOutputFile) {
  Cli cli;
  ScenarioOptions o;
  Buffer bytes = build_scenario(o).bytes;
  bytes.resize(bytes.size() - 100);  // cut inside the qemu record
  write_file(cli.in, bytes);
  const RunResult r = cli.run({"-q", "-w", "64", "-g", "hvm", cli.in, cli.out});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("streamconv: error: offset "), std::string::npos) << r.err;
  EXPECT_EQ(cli.files(), std::vector<std::string>{"in.save"});
}

TEST(Cli, FailureToStdoutSaysWhereItStopped) {
  Cli cli;
  LegacyBuilder b(8);
  b.p2m_size(16).batch({1}, {make_page(1)}).i32(-77);
  write_file(cli.in, b.bytes());
  const RunResult r = run_program({"/bin/sh", "-c", streamconv_binary() + " -w 64 -g hvm " + cli.in + " - > " + cli.out});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err,
            "streamconv: error: offset 0x1014: unknown chunk id -77 at 0x1014\n"
            "streamconv: error: the output on - is incomplete: conversion stopped at input offset 0x1014 after 4168 "
            "octets were written\n");
}

TEST(Cli, ExitCodes) {
  Cli cli;
  EXPECT_EQ(cli.run({"--help"}).status, 0);
  EXPECT_EQ(cli.run({"-w", "48", cli.in, cli.out}).status, 2);
  EXPECT_EQ(cli.run({cli.dir.file("missing"), cli.out}).status, 2);
  EXPECT_EQ(cli.run({cli.in}).status, 2);
  LegacyBuilder b(8);
  b.p2m_size(0x100).ulong(0x55).ulong(0x56);
  write_file(cli.in, b.bytes());
  const RunResult r = cli.run({cli.in, cli.out});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("give -w 32|64 and -g pv|hvm"), std::string::npos) << r.err;
}

// From a pipe the pages of uncompressed batches go from the input to the
// output inside the kernel (LegacyReaderOptions::defer_pages): the output
// is the one a memory source gives, the pages never pass through the
// converter, and input cut anywhere gives the same error as from memory.
Converted convert_from_pipe(const Buffer& in, ConvertOptions options, std::uint64_t* bypassed) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) std::abort();
  std::thread feeder([&] {
    std::size_t done = 0;
    while (done < in.size()) {
      const ssize_t w = ::write(p[1], in.data() + done, std::min<std::size_t>(in.size() - done, 100000));
      if (w <= 0) break;  // the converter stopped reading
      done += static_cast<std::size_t>(w);
    }
    ::close(p[1]);
  });
  Converted c;
  FILE* out = std::tmpfile();
  {
    FdSource src(p[0], "<pipe>");
    FdSink sink(::fileno(out), "<tmpfile>");
    options.report = [&c](Severity s, const std::string& msg) {
      (s == Severity::kWarning ? c.warnings : c.notes).push_back(msg);
    };
    c.result = convert_legacy(src, sink, options);
    *bypassed = src.bypassed();
  }
  ::close(p[0]);
  feeder.join();
  const auto size = ::lseek(::fileno(out), 0, SEEK_END);
  c.out.resize(static_cast<std::size_t>(size));
  if (size > 0 && ::pread(::fileno(out), c.out.data(), c.out.size(), 0) != size) std::abort();
  std::fclose(out);
  return c;
}

TEST(Converter, PagesFromAPipeBypassUserSpaceAndCutsAgree) {
  for (const GuestType g : {GuestType::kHvm, GuestType::kPv}) {
    ScenarioOptions o;
    o.guest = g;
    o.qemu = g == GuestType::kPv ? QemuSig::kNone : QemuSig::kLibxl;
    o.pages = 1000;
    o.batch = 100;
    o.xtab_padding = true;
    const Scenario s = build_scenario(o);
    ConvertOptions opt = opts(64, g, OutputFormat::kLibxl);
    const Converted whole = convert_bytes(s.bytes, opt);
    ASSERT_TRUE(whole.result) << whole.result.error().describe();
    std::uint64_t bypassed = 0;
    const Converted piped = convert_from_pipe(s.bytes, opt, &bypassed);
    ASSERT_TRUE(piped.result) << piped.result.error().describe();
    EXPECT_TRUE(piped.out == whole.out) << "the output differs from a memory source's";
    // Every page but those in the first window (read ahead, up to 1 MiB,
    // while the layout was detected) went by splice.
    EXPECT_GE(bypassed, 1000u * 4096u - (1u << 20)) << guest_type_name(g);
    // Cuts: inside the first batch's pages, at a batch's end, inside a
    // later batch's entries and pages, and past the pages.
    for (const std::size_t cut : {std::size_t{5000}, std::size_t{200000}, std::size_t{411000},
                                  std::size_t{600001}, s.bytes.size() - 100}) {
      const Buffer head(s.bytes.begin(), s.bytes.begin() + static_cast<std::ptrdiff_t>(cut));
      const Converted m = convert_bytes(head, opt);
      const Converted q = convert_from_pipe(head, opt, &bypassed);
      ASSERT_FALSE(m.result) << "cut " << cut;
      ASSERT_FALSE(q.result) << "cut " << cut;
      EXPECT_EQ(q.result.error().describe(), m.result.error().describe()) << "cut " << cut;
      EXPECT_EQ(q.warnings, m.warnings) << "cut " << cut;
    }
  }
}

TEST(Converter, MemoryAndPipeReportTheSameFirstError) {
  // Found by fuzz_convert comparing the two: a bad entry in a batch whose
  // pages the input ends inside is reported (the first error in stream
  // order) from a file as from a pipe, which cannot see the cut before it
  // judges the entries; and an xcnt block declaring 4 GiB is skipped past
  // its count, not held whole (a pipe's window would refuse the hold with a
  // different error than a mapped file's cut).
  LegacyBuilder bogus(8);
  bogus.p2m_size(16).batch({5, 0x60000006, 7}, {make_page(1), make_page(2), make_page(3)});
  Buffer cut = bogus.bytes();
  cut.resize(cut.size() - 5000);  // inside the second page
  LegacyBuilder xcnt(8);
  xcnt.p2m_size(1).ext_info({{"vcpu", Buffer(0x1430), {}}, {"xcnt", Buffer(16), 0xfffffff0u}});
  struct Case {
    Buffer bytes;
    GuestType guest;
    std::string message;  // how it starts
  };
  const Case cases[] = {
      {cut, GuestType::kHvm, "page batch at 0x8: entry 1 (0x60000006) has the bogus page type 0x6"},
      {xcnt.bytes(), GuestType::kPv, "unexpected end of data while reading an extended-info block 'xcnt' ["},
  };
  for (const Case& c : cases) {
    const ConvertOptions opt = opts(64, c.guest, OutputFormat::kLibxl);
    const Converted m = convert_bytes(c.bytes, opt);
    std::uint64_t bypassed = 0;
    const Converted q = convert_from_pipe(c.bytes, opt, &bypassed);
    ASSERT_FALSE(m.result);
    ASSERT_FALSE(q.result);
    EXPECT_EQ(m.result.error().message.rfind(c.message, 0), 0u) << m.result.error().message;
    EXPECT_EQ(q.result.error().describe(), m.result.error().describe());
  }
}

TEST(Cli, FileDescriptorsAndPipes) {
  Cli cli;
  ScenarioOptions o;
  o.guest = GuestType::kPv;
  o.qemu = QemuSig::kNone;
  const Scenario s = build_scenario(o);
  write_file(cli.in, s.bytes);
  const Buffer expected = convert_bytes(s.bytes, opts(64, GuestType::kPv, OutputFormat::kLibxl)).out;
  // As libxl runs the converter: --in FD --out FD.
  const RunResult fds = run_program({"/bin/sh", "-c",
                                     streamconv_binary() + " --in 5 --out 6 -w 64 -g pv -f libxl 5<" + cli.in +
                                         " 6>" + cli.out});
  EXPECT_EQ(fds.status, 0) << fds.err;
  EXPECT_EQ(read_file(cli.out), expected);
  // From a pipe to a pipe.
  const RunResult pipe = run_program({"/bin/sh", "-c",
                                      "cat " + cli.in + " | " + streamconv_binary() + " -q -f libxl - - | cat > " +
                                          cli.out});
  EXPECT_EQ(pipe.status, 0) << pipe.err;
  EXPECT_EQ(read_file(cli.out), expected);
}

// An OUT that is not a regular file (a FIFO here; /dev/null in real use)
// is written in place, never replaced by a renamed temporary file.
TEST(Cli, NonRegularOutputIsWrittenInPlace) {
  Cli cli;
  ScenarioOptions o;
  const Scenario s = build_scenario(o);
  write_file(cli.in, s.bytes);
  const std::string fifo = cli.dir.file("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const RunResult r = run_program({"/bin/sh", "-c",
                                   "cat " + fifo + " > " + cli.out + " & " + streamconv_binary() + " -q " + cli.in +
                                       " " + fifo + "; s=$?; wait; exit $s"});
  EXPECT_EQ(r.status, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(read_file(cli.out), convert_bytes(s.bytes, opts(64, GuestType::kHvm)).out);
}

// Memory stays bounded from a pipe, whatever the size: a 96 MiB stream
// (with a 12 MiB qemu record) through a pipe must not make the converter
// hold it. rss_probe reports the converter's own peak.
TEST(Cli, BoundedMemoryFromAPipe) {
  Cli cli;
  ScenarioOptions o;
  o.pages = 96 * 256;
  o.batch = 1024;
  o.qemu_size = 12u << 20;  // bigger than the in-memory spool
  write_file(cli.in, build_scenario(o).bytes);
  const RunResult r = run_program({"/bin/sh", "-c",
                                   "cat " + cli.in + " | " + std::string(XS_RSS_PROBE) + " " + streamconv_binary() +
                                       " -q -f libxl - - > /dev/null"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto at = r.err.rfind("maxrss_kib ");
  ASSERT_NE(at, std::string::npos) << r.err;
  const long kib = std::stol(r.err.substr(at + 11));
  EXPECT_GT(kib, 0);
  // The bound is the normal build's; ASan's shadow memory and quarantine add
  // their own tens of MiB, so a sanitizer build only checks it stays bounded.
#ifdef XS_SANITIZED
  EXPECT_LT(kib, 160 * 1024) << "peak RSS in KiB (sanitizer build)";
#else
  EXPECT_LT(kib, 40 * 1024) << "peak RSS in KiB";
#endif
}

}  // namespace
}  // namespace xenstream::convert::testing
