// The inner-blob walkers (libstream/blobs) through their public API, as the
// restore tools use them.
#include <gtest/gtest.h>

#include <xenstream/libstream/blobs/hvm_context.h>
#include <xenstream/libstream/blobs/qemu_state.h>
#include "tests/verify/corpus.h"

namespace xenstream::blobs {
namespace {

using verify::testing::Buf;
using verify::testing::hvm_blob;
using verify::testing::hvm_entries;
using verify::testing::put8;
using verify::testing::put_be16;
using verify::testing::put_be32;
using verify::testing::put_text;
using verify::testing::qemu_blob;
using verify::testing::qemu_sections;
using verify::testing::QemuTok;

TEST(HvmContext, ValidBlob) {
  const Buf blob = hvm_blob(hvm_entries(3));
  auto s = walk_hvm_context(Bytes(blob), 0x1000);
  ASSERT_TRUE(s) << s.error().describe();
  EXPECT_TRUE(s->header_valid);
  EXPECT_EQ(s->magic, kHvmFileMagic);
  EXPECT_EQ(s->cpuid, 0x000806ecu);
  EXPECT_EQ(s->gtsc_khz, 2400000u);
  EXPECT_EQ(s->vcpus, 3u);
  EXPECT_EQ(s->count_by_code[2], 3u);
  EXPECT_EQ(s->count_by_code[3], 2u);
  EXPECT_EQ(s->end_offset, blob.size() - 8);
  EXPECT_EQ(s->trailing, 0u);
}

TEST(HvmContext, FirstErrorAsError) {
  Buf blob = hvm_blob(hvm_entries(1));
  blob.resize(blob.size() - 8);  // drop END
  auto s = walk_hvm_context(Bytes(blob), 0x1000);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().offset, 0x1000 + blob.size());
  EXPECT_EQ(s.error().message, "HVM context at blob offset " + hex(blob.size()) + " (file offset " +
                                   hex(0x1000 + blob.size()) +
                                   "): the blob ends without an END descriptor [HVMCTX-01]");
}

TEST(HvmContext, VcpuCountOption) {
  const Buf blob = hvm_blob(hvm_entries(2));
  HvmContextOptions o;
  o.vcpu_count = 1;
  const HvmContextReport r = check_hvm_context(Bytes(blob), 0, o);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].rule, "HVMCTX-08");
  EXPECT_EQ(r.findings[0].message,
            "CPU instance 1: instance (vcpu id) 1 is not below the vcpu count 1 (from the config)");
}

TEST(HvmContext, HistoricalSizesAccepted) {
  auto e = hvm_entries(1);
  for (auto& x : e) {
    if (x.code == 2) x.body.resize(1024);  // Xen <= 4.6 CPU
    if (x.code == 5) x.body.resize(24);    // Xen <= 4.20 LAPIC
    if (x.code == 11) x.body.resize(16);   // Xen <= 4.13 RTC
  }
  const Buf blob = hvm_blob(e);
  EXPECT_TRUE(check_hvm_context(Bytes(blob), 0).findings.empty());
}

TEST(HvmContext, TruncatedDescriptor) {
  Buf blob = hvm_blob(hvm_entries(1));
  blob.resize(blob.size() - 4);
  const HvmContextReport r = check_hvm_context(Bytes(blob), 0);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].message, "the blob ends inside a descriptor: 4 octets left, a descriptor needs 8");
}

// ---------------------------------------------------------------------------

TEST(QemuState, XenDeviceState) {
  const Buf blob = qemu_blob(qemu_sections());
  auto s = walk_qemu_state(Bytes(blob), 0x2000);
  ASSERT_TRUE(s) << s.error().describe();
  EXPECT_EQ(s->version, 3u);
  EXPECT_EQ(s->sections_total, 5u);
  EXPECT_EQ(s->footers, 0u);
  EXPECT_EQ(s->eof_offset, blob.size() - 1);
  EXPECT_FALSE(s->configuration);
  const QemuSection& cpu = s->sections[2];
  EXPECT_EQ(cpu.type, kQemuSectionFull);
  EXPECT_EQ(cpu.section_id, 4u);
  EXPECT_EQ(cpu.idstr, "cpu");
  EXPECT_EQ(cpu.version_id, 12u);
  EXPECT_EQ(cpu.payload_size, 101u);
  EXPECT_EQ(s->sections[0].offset, 8u);
  EXPECT_EQ(s->sections[0].payload_offset, 8u + 1 + 4 + 1 + 5 + 8);
}

TEST(QemuState, EmptyDeviceState) {
  const Buf blob = qemu_blob({});
  auto s = walk_qemu_state(Bytes(blob), 0);
  ASSERT_TRUE(s) << s.error().describe();
  EXPECT_EQ(s->sections_total, 0u);
  EXPECT_EQ(s->eof_offset, 8u);
}

// A full migration from a plain QEMU: CONFIGURATION, iterative RAM
// sections, footers, a command, and a VMDESCRIPTION after EOF.
Buf full_migration() {
  Buf b;
  put_be32(b, kQemuMagic);
  put_be32(b, 3);
  put8(b, kQemuConfiguration);
  put_be32(b, 8);
  put_text(b, "pc-q35-8");
  auto secs = qemu_sections();
  for (auto& s : secs) s.footer = true;
  secs.insert(secs.begin(), QemuTok{0x01, 2, "ram", 0, 4, Buf(40, std::byte{0x21}), true});
  secs.insert(secs.begin() + 2, QemuTok{0x02, 2, "", 0, 0, Buf(30, std::byte{0x22}), true});
  secs.insert(secs.begin() + 4, QemuTok{0x03, 2, "", 0, 0, Buf(10, std::byte{0x23}), true});
  Buf body = qemu_blob(secs, false);
  b.insert(b.end(), body.begin() + 8, body.end());
  put8(b, kQemuCommand);
  put_be16(b, 3);
  put_be16(b, 4);
  put_be32(b, 0x01020304);
  put8(b, kQemuEof);
  const std::string json = "{\"page_size\": 4096, \"devices\": []}";
  put8(b, kQemuVmDescription);
  put_be32(b, static_cast<std::uint32_t>(json.size()));
  put_text(b, json);
  return b;
}

TEST(QemuState, FullMigrationInGenericProfile) {
  const Buf blob = full_migration();
  QemuWalkOptions o;
  o.xen_device_state = false;
  auto s = walk_qemu_state(Bytes(blob), 0, o);
  ASSERT_TRUE(s) << s.error().describe();
  EXPECT_TRUE(s->configuration);
  EXPECT_EQ(s->machine_type, "pc-q35-8");
  EXPECT_EQ(s->sections_total, 8u);
  EXPECT_EQ(s->footers, 8u);
  EXPECT_EQ(s->commands, 1u);
  EXPECT_EQ(s->vmdescription_size, 34u);  // the JSON text above
  EXPECT_EQ(s->sections[0].idstr, "ram");
  EXPECT_EQ(s->sections[0].payload_size, 40u);
  EXPECT_EQ(s->sections[2].type, kQemuSectionPart);
  EXPECT_EQ(s->sections[2].payload_size, 30u);
}

TEST(QemuState, FullMigrationIsNotAXenDeviceState) {
  const Buf blob = full_migration();
  const QemuStateReport r = check_qemu_state(Bytes(blob), 0x100);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].rule, "QEVM-07");
  EXPECT_EQ(r.findings[0].blob_offset, 8u);
  EXPECT_EQ(r.findings[0].file_offset, 0x108u);
}

TEST(QemuState, FooterWithWrongIdIsPayload) {
  // A 0x7E octet followed by another section's id is payload, not a footer.
  auto secs = qemu_sections();
  secs[0].payload.push_back(std::byte{0x7E});
  for (int i = 0; i < 4; ++i) secs[0].payload.push_back(std::byte{0x09});
  const Buf blob = qemu_blob(secs);
  auto s = walk_qemu_state(Bytes(blob), 0);
  ASSERT_TRUE(s) << s.error().describe();
  EXPECT_EQ(s->sections[0].payload_size, 24u + 5);
  EXPECT_EQ(s->footers, 0u);
}

TEST(QemuState, EofLookalikeInPayloadIsPayload) {
  // 0x00 0x06 inside a payload looks like EOF followed by a VMDESCRIPTION,
  // but the "description" does not reach the end of the blob: the real EOF
  // later wins. QEMU 7.2's device state for Xen has such octets at 0x6e.
  auto secs = qemu_sections();
  const std::byte lookalike[] = {std::byte{0x00}, std::byte{0x06}, std::byte{0x00}, std::byte{0x00},
                                 std::byte{0x00}, std::byte{0x02}, std::byte{0x41}};
  secs[0].payload.insert(secs[0].payload.begin() + 3, std::begin(lookalike), std::end(lookalike));
  const Buf blob = qemu_blob(secs);
  const QemuStateReport r = check_qemu_state(Bytes(blob), 0);
  EXPECT_TRUE(r.findings.empty()) << r.findings[0].rule << ": " << r.findings[0].message;
  EXPECT_EQ(r.summary.sections_total, 5u);
  EXPECT_EQ(r.summary.eof_offset, blob.size() - 1);
  EXPECT_EQ(r.summary.sections[0].payload_size, 24u + sizeof lookalike);
}

TEST(QemuState, OctetsAfterTheOnlyEofStillWarn) {
  // With no stronger candidate, an EOF followed by octets is the EOF (QEVM-06).
  Buf blob = qemu_blob(qemu_sections());
  blob.push_back(std::byte{0x06});
  blob.push_back(std::byte{0x01});
  const QemuStateReport r = check_qemu_state(Bytes(blob), 0);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].rule, "QEVM-06");
  EXPECT_EQ(r.summary.trailing, 2u);
}

TEST(QemuState, CommandLookalikesStayCheap) {
  // A payload full of octets that read as empty COMMAND tokens, then no
  // EOF: the scan must neither recurse per command nor go quadratic.
  Buf blob;
  put_be32(blob, kQemuMagic);
  put_be32(blob, 3);
  Buf sec = qemu_blob({QemuTok{0x04, 1, "dev", 0, 1, Buf(4, std::byte{0x30})}}, false);
  blob.insert(blob.end(), sec.begin() + 8, sec.end());
  for (int i = 0; i < 200000; ++i) {
    put8(blob, kQemuCommand);
    put_be16(blob, 0);
    put_be16(blob, 0);
  }
  put8(blob, 0x55);  // so that the last octet is no EOF either
  QemuWalkOptions o;
  o.xen_device_state = false;
  const QemuStateReport r = check_qemu_state(Bytes(blob), 0, o);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].rule, "QEVM-05");
}

TEST(QemuState, Rules) {
  EXPECT_EQ(qemu_state_rules().size(), 9u);
  EXPECT_EQ(hvm_context_rules().size(), 17u);
  EXPECT_EQ(qemu_token_name(kQemuSectionFooter), "SECTION_FOOTER");
}

}  // namespace
}  // namespace xenstream::blobs
